//! Turns resetting boards to their next period on time: several times a second, each board
//! whose period has ended by this instance's clock gets its new period's snapshot (empty until
//! its first score), which wakes its streams. Every instance does it from its own clock, so
//! streams on all of them turn within a second; a batch that commits in the new period first
//! has already turned the board, and a late snapshot of the old period is refused
//! (`Board::offer`). The same job closes ended periods ([`super::close`]) after each turn and
//! every few seconds besides (after a restart, or when this clock ran ahead of the
//! database's).

use super::{close, sql, Boards};
use crate::cache::Cache;
use crate::db::Db;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(200);
/// How long a closed period stays in Redis (for clients still paging it) before its keys
/// expire; PostgreSQL serves it after that.
const REDIS_GRACE: Duration = Duration::from_secs(3600);
/// How often ended periods are looked for when no board turned.
const CLOSE_EVERY: Duration = Duration::from_secs(2);

pub(crate) fn spawn(
    db: Db,
    boards: Arc<Boards>,
    cache: Option<Arc<Cache>>,
    endpoints: Vec<String>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let endpoints = Arc::new(endpoints);
    let last_close = Arc::new(std::sync::Mutex::new(None::<Instant>));
    crate::jobs::every(EVERY, shutdown, move || {
        let (db, boards, cache, endpoints, last_close) = (
            db.clone(),
            boards.clone(),
            cache.clone(),
            endpoints.clone(),
            last_close.clone(),
        );
        async move {
            let now = crate::clock::now_millis() as i64;
            let turned = match turn(&db, &boards, cache.as_deref(), now).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "database error: turning boards to their new period");
                    0
                }
            };
            // A std Mutex: read and written between awaits, never held across one.
            let due = last_close
                .lock()
                .expect("not poisoned")
                .is_none_or(|t| t.elapsed() >= CLOSE_EVERY);
            if turned > 0 || due {
                *last_close.lock().expect("not poisoned") = Some(Instant::now());
                if let Err(e) = close::close_ended(&db, &boards, &endpoints).await {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "database error: closing ended periods"
                    );
                }
            }
        }
    })
}

/// Turns every board whose period at `now_ms` is later than the one it shows, and lets the
/// old period's Redis keys expire; returns how many turned.
pub(crate) async fn turn(
    db: &Db,
    boards: &Boards,
    cache: Option<&Cache>,
    now_ms: i64,
) -> sqlx::Result<usize> {
    let due: Vec<_> = boards
        .all()
        .into_iter()
        .filter_map(|live| {
            let now = live.def.period_at(now_ms);
            (now != live.period()).then_some((live, now))
        })
        .collect();
    if due.is_empty() {
        return Ok(0);
    }
    let mut conn = db.conn().await?;
    let mut turned = 0;
    for (live, period) in &due {
        let old = live.period();
        if period.is_after(&old) {
            if let Some(cache) = cache {
                cache
                    .expire_period(live.def.id.as_str(), &old.id, REDIS_GRACE)
                    .await;
            }
            live.board
                .offer(sql::load_snapshot(&mut conn, &live.def, period).await?);
            tracing::info!(board = %live.def.id, period = period.id, "a new period began");
            turned += 1;
        } else if period.starts_at.is_none() {
            // The board was given back `never` (possible only while it has no score).
            live.board
                .force(sql::load_snapshot(&mut conn, &live.def, period).await?);
        }
        // Else this clock is behind the database's, by which a batch already turned the
        // board, or the definition here predates an operator's early close: only forward.
    }
    Ok(turned)
}
