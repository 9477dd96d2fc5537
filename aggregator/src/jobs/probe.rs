//! The `database_up` probe: a `SELECT 1` every few seconds, so the alert on a database that
//! stopped answering fires even when no request arrives.

use crate::db::Db;
use std::time::Duration;

/// How often `database_up` is refreshed: well inside the alert's one minute.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether PostgreSQL answers a trivial query within [`PROBE_TIMEOUT`].
pub(crate) async fn database_answers(db: &Db) -> bool {
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, crate::db::query("SELECT 1").execute(db)).await,
        Ok(Ok(_))
    )
}

/// Keeps `database_up` current until shutdown.
pub(crate) fn spawn(
    db: Db,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    super::every(PROBE_EVERY, shutdown, move || {
        let db = db.clone();
        async move {
            let ok = database_answers(&db).await;
            metrics::gauge!("database_up").set(if ok { 1.0 } else { 0.0 });
        }
    })
}
