//! Keeping the Redis board equal to PostgreSQL's: a full rebuild (at start-up, after an
//! outage, on an operator's request), the drift check, and the supervisor task that runs them.

use super::scripts::{member, member_player};
use super::Cache;
use crate::board::sql::load_rows;
use anyhow::Context;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long a whole rebuild may take before it counts as failed.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the supervisor looks at the cache's health.
const CHECK_EVERY: Duration = Duration::from_secs(1);

impl Cache {
    /// Replaces the Redis board with PostgreSQL's, then re-applies rows that changed while it
    /// was being copied (writes are version-guarded, so that is harmless). Marks the cache
    /// healthy. Returns the number of players written.
    pub(crate) async fn rebuild(&self, db: &PgPool) -> anyhow::Result<usize> {
        let (rows, as_of) = load_rows(db, 0).await?;
        let mut c = self.connection().await.context("Redis is not reachable")?;
        let keys = self.board_keys();
        let tmp: Vec<String> = keys.iter().map(|k| format!("{k}:rebuild")).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for k in &tmp {
            pipe.del(k).ignore();
        }
        for r in &rows {
            let m = member(&r.player_id, r.version);
            pipe.zadd(&tmp[0], &m, r.score).ignore();
            pipe.hset(&tmp[1], &r.player_id, &m).ignore();
            pipe.hset(&tmp[2], &r.player_id, &r.name).ignore();
            pipe.hset(&tmp[3], &r.player_id, r.version).ignore();
        }
        for (t, k) in tmp.iter().zip(&keys) {
            if rows.is_empty() {
                pipe.del(k).ignore();
            } else {
                pipe.rename(t, k).ignore();
            }
        }
        let _: () = tokio::time::timeout(REBUILD_TIMEOUT, pipe.query_async(&mut c))
            .await
            .context("rebuilding timed out")?
            .context("writing the rebuilt board")?;
        self.recovered();
        let (late, _) = load_rows(db, as_of).await?;
        if self.upsert(&late).await.is_none() {
            anyhow::bail!("Redis failed while catching up after the rebuild");
        }
        tracing::info!(players = rows.len(), "Redis board rebuilt from PostgreSQL");
        Ok(rows.len())
    }

    /// How many players differ between Redis and PostgreSQL (missing, extra, or another
    /// score or version).
    pub(crate) async fn drift(&self, db: &PgPool) -> anyhow::Result<u64> {
        let (rows, _) = load_rows(db, 0).await?;
        let [board_key, _, _, versions_key] = self.board_keys();
        let (versions, scored): (HashMap<String, i64>, Vec<(String, f64)>) = self
            .call("checking drift", |mut c| async move {
                redis::pipe()
                    .hgetall(&versions_key)
                    .zrange_withscores(&board_key, 0, -1)
                    .query_async(&mut c)
                    .await
            })
            .await
            .context("Redis is unavailable")?;
        let in_redis: HashMap<&str, (i64, i64)> = scored
            .iter()
            .filter_map(|(m, s)| {
                let p = member_player(m)?;
                Some((p, (*s as i64, *versions.get(p)?)))
            })
            .collect();
        let differing = rows
            .iter()
            .filter(|r| in_redis.get(r.player_id.as_str()) != Some(&(r.score, r.version)))
            .count();
        let known: HashSet<&str> = rows.iter().map(|r| r.player_id.as_str()).collect();
        let extra = in_redis.keys().filter(|p| !known.contains(*p)).count();
        let unreadable = scored.len().saturating_sub(in_redis.len());
        Ok((differing + extra + unreadable) as u64)
    }

    /// One supervisor step: rebuild a stale cache once Redis answers, else check drift when
    /// it is due. Returns whether a sync (rebuild or drift check) ran.
    async fn supervise(&self, db: &PgPool, sync_due: bool) -> bool {
        if self.needs_rebuild.load(Ordering::Relaxed) || !self.is_healthy() {
            if !self.ping().await {
                return false;
            }
            match self.rebuild(db).await {
                Ok(_) => metrics::gauge!("redis_leaderboard_sync_drift").set(0.0),
                Err(e) => self.failed(&format!("{e:#}"), "rebuilding"),
            }
            return true;
        }
        if !sync_due {
            return false;
        }
        match self.drift(db).await {
            Ok(d) => {
                metrics::gauge!("redis_leaderboard_sync_drift").set(d as f64);
                if d > 0 {
                    tracing::warn!(drift = d, "Redis board drifted from PostgreSQL; repairing");
                    if let Err(e) = self.rebuild(db).await {
                        self.failed(&format!("{e:#}"), "repairing drift");
                    }
                }
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "drift check failed"),
        }
        true
    }
}

/// Keeps the cache healthy: while it is down or stale, pings every second and rebuilds once
/// Redis answers; every `sync_interval`, measures drift (`redis_leaderboard_sync_drift`) and
/// repairs it.
pub(crate) fn spawn_supervisor(
    cache: Arc<Cache>,
    db: PgPool,
    sync_interval: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let last_sync = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    crate::jobs::every(CHECK_EVERY, shutdown, move || {
        let (cache, db, last_sync) = (cache.clone(), db.clone(), last_sync.clone());
        async move {
            // A std Mutex: read and written between awaits, never held across one.
            let due = last_sync.lock().expect("not poisoned").elapsed() >= sync_interval;
            if cache.supervise(&db, due).await {
                *last_sync.lock().expect("not poisoned") = tokio::time::Instant::now();
            }
        }
    })
}
