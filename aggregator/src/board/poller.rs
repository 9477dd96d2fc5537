//! Catches what no channel delivered (no Redis, Redis down, another instance's commit or
//! board change): every second, take the boards' definitions, and reload the snapshot of each
//! board for which PostgreSQL has a newer event.

use super::{sql, Boards};
use crate::db::Db;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);

pub(crate) fn spawn(
    db: Db,
    boards: Arc<Boards>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    crate::jobs::every(EVERY, shutdown, move || {
        let (db, boards) = (db.clone(), boards.clone());
        async move {
            if let Err(e) = poll(&db, &boards).await {
                tracing::debug!(error = %e, "board poll failed; trying again in a second");
            }
        }
    })
}

async fn poll(db: &Db, boards: &Boards) -> sqlx::Result<()> {
    let mut conn = db.conn().await?;
    for def in sql::load_defs(&mut *conn).await? {
        boards.take(&mut conn, def).await?;
    }
    let live = boards.all();
    let periods: Vec<_> = live.iter().map(|l| l.period()).collect();
    let pairs: Vec<(&str, &str)> = live
        .iter()
        .zip(&periods)
        .map(|(l, p)| (l.def.id.as_str(), p.id.as_str()))
        .collect();
    let newest = sql::versions(&mut *conn, &pairs).await?;
    for ((l, period), version) in live.iter().zip(&periods).zip(newest) {
        if version > l.board.current().version() {
            let snapshot = sql::load_snapshot(&mut conn, &l.def, period).await?;
            l.board.offer(snapshot);
        }
    }
    Ok(())
}
