//! Periodic clean-up of rows that can no longer matter: redeemed tokens well past their
//! expiry (an expired token is refused before the replay check, so its row protects nothing)
//! and sessions long past theirs.

use crate::db::Db;
use std::time::Duration;

/// How long past `exp` a consumed token is kept: far beyond the verifier's leeway and any
/// clock skew between the aggregator and the database.
const CONSUMED_TOKEN_MARGIN: &str = "10 minutes";
const EVERY: Duration = Duration::from_secs(60);

/// One sweep; returns (tokens, sessions) deleted.
pub(crate) async fn sweep(db: &Db) -> sqlx::Result<(u64, u64)> {
    let tokens = crate::db::query(&format!(
        "DELETE FROM consumed_tokens WHERE expires_at < now() - interval '{CONSUMED_TOKEN_MARGIN}'"
    ))
    .execute(db)
    .await?
    .rows_affected();
    let sessions =
        crate::db::query("DELETE FROM sessions WHERE expires_at < now() - interval '1 day'")
            .execute(db)
            .await?
            .rows_affected();
    Ok((tokens, sessions))
}

pub(crate) fn spawn(
    db: Db,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    super::every(EVERY, shutdown, move || {
        let db = db.clone();
        async move {
            match sweep(&db).await {
                Ok((t, s)) if t + s > 0 => {
                    tracing::info!(tokens = t, sessions = s, "expired rows deleted")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "database error: clean-up failed"),
            }
        }
    })
}
