//! The task that keeps the Redis copy healthy: while it is down or stale, it pings every
//! second and rebuilds once Redis answers, backing off after each failed rebuild (so a cache
//! that cannot be rebuilt costs nothing while it waits); every `REDIS_SYNC_INTERVAL` it runs the
//! drift check, which repairs only the entries that differ.

use super::Cache;
use crate::board::Boards;
use crate::db::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the supervisor looks at the cache's health.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The first wait after a failed rebuild; it doubles with each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The supervisor's memory between steps.
#[derive(Debug)]
struct Supervisor {
    last_sync: Instant,
    /// No rebuild is tried before this.
    retry_at: Instant,
    backoff: Duration,
}

impl Supervisor {
    fn new() -> Self {
        Self {
            last_sync: Instant::now(),
            retry_at: Instant::now(),
            backoff: FIRST_BACKOFF,
        }
    }

    /// One step: rebuild a stale cache once Redis answers and the backoff allows, else check
    /// drift when it is due.
    async fn step(&mut self, cache: &Cache, db: &Db, boards: &Boards, sync_interval: Duration) {
        if cache.needs_rebuild() {
            if Instant::now() < self.retry_at || !cache.ping().await {
                return;
            }
            match cache.rebuild(db, boards).await {
                Ok(_) => {
                    self.backoff = FIRST_BACKOFF;
                    self.last_sync = Instant::now();
                    metrics::gauge!("redis_leaderboard_sync_drift").set(0.0);
                }
                Err(e) => {
                    cache.failed(&format!("{e:#}"), "rebuilding");
                    tracing::warn!(
                        retry_in_seconds = self.backoff.as_secs(),
                        "Redis rebuild failed; trying again later"
                    );
                    self.retry_at = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
            return;
        }
        if self.last_sync.elapsed() < sync_interval {
            return;
        }
        match cache.repair_drift(db, boards).await {
            Ok(d) => {
                metrics::gauge!("redis_leaderboard_sync_drift").set(d as f64);
                metrics::counter!("redis_drift_repaired_total").increment(d);
                if d > 0 {
                    tracing::warn!(drift = d, "Redis board drifted from PostgreSQL; repaired");
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "drift check failed"),
        }
        self.last_sync = Instant::now();
    }
}

/// Starts the supervisor task.
pub(crate) fn spawn(
    cache: Arc<Cache>,
    db: Db,
    boards: Arc<Boards>,
    sync_interval: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    // A tokio Mutex: the step holds it across its awaits; only this task takes it.
    let state = Arc::new(tokio::sync::Mutex::new(Supervisor::new()));
    crate::jobs::every(CHECK_EVERY, shutdown, move || {
        let (cache, db, boards, state) = (cache.clone(), db.clone(), boards.clone(), state.clone());
        async move {
            state
                .lock()
                .await
                .step(&cache, &db, &boards, sync_interval)
                .await;
        }
    })
}
