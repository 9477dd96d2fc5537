//! Catches what no channel delivered (no Redis, Redis down, another instance's commit): every
//! second, if PostgreSQL has a newer event than the board, reload the snapshot.

use super::{sql, Board};
use sqlx::PgPool;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);

pub(crate) fn spawn(
    db: PgPool,
    board: Board,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    crate::jobs::every(EVERY, shutdown, move || {
        let (db, board) = (db.clone(), board.clone());
        async move {
            let Ok(newest) = sql::current_version(&db).await else {
                return;
            };
            if newest <= board.current().snapshot.version {
                return;
            }
            if let Ok(mut conn) = db.acquire().await {
                if let Ok(s) = sql::load_snapshot(&mut conn).await {
                    board.offer(s);
                }
            }
        }
    })
}
