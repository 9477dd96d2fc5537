//! Keeping the Redis boards equal to PostgreSQL's: a full rebuild (at start-up, after an
//! outage, on an operator's request), the drift check, and the supervisor task that runs them.

use super::scripts::{member, member_player};
use super::Cache;
use crate::board::sql::load_rows;
use crate::board::{BoardDef, Boards};
use crate::db::Db;
use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// How long a whole rebuild may take before it counts as failed.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the supervisor looks at the cache's health.
const CHECK_EVERY: Duration = Duration::from_secs(1);

impl Cache {
    /// Replaces every board's Redis copy with PostgreSQL's, marks the cache healthy, then
    /// re-applies rows that changed while the boards were being copied (writes are
    /// version-guarded, so that is harmless). Returns the number of entries written.
    pub(crate) async fn rebuild(&self, db: &Db, boards: &Boards) -> anyhow::Result<usize> {
        let mut written = 0;
        let mut copied = Vec::new();
        for live in boards.all() {
            let period = live.period().id;
            let (n, as_of) = self.rebuild_board(db, &live.def, &period).await?;
            written += n;
            copied.push((live.def, period, as_of));
        }
        self.recovered();
        for (def, period, as_of) in copied {
            let (late, _) = load_rows(db, def.id.as_str(), &period, as_of).await?;
            if self.upsert(&def, &period, &late).await.is_none() {
                anyhow::bail!("Redis failed while catching up after the rebuild");
            }
        }
        tracing::info!(entries = written, "Redis boards rebuilt from PostgreSQL");
        Ok(written)
    }

    /// Replaces one board's period with PostgreSQL's, atomically; returns the entries written
    /// and the version they were read at.
    async fn rebuild_board(
        &self,
        db: &Db,
        def: &BoardDef,
        period: &str,
    ) -> anyhow::Result<(usize, i64)> {
        let board = def.id.as_str();
        let (rows, as_of) = load_rows(db, board, period, 0).await?;
        let mut c = self.connection().await.context("Redis is not reachable")?;
        let keys = self.board_keys(board, period);
        let tmp: Vec<String> = keys.iter().map(|k| format!("{k}:rebuild")).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for k in &tmp {
            pipe.del(k).ignore();
        }
        for r in &rows {
            let m = member(&r.player_id, r.version);
            pipe.zadd(&tmp[0], &m, def.order.rank_key(r.value)).ignore();
            pipe.hset(&tmp[1], &r.player_id, &m).ignore();
            pipe.hset(&tmp[2], &r.player_id, &r.name).ignore();
            pipe.hset(&tmp[3], &r.player_id, r.version).ignore();
        }
        pipe.set(&tmp[4], as_of).ignore();
        for (i, (t, k)) in tmp.iter().zip(&keys).enumerate() {
            // An empty set or hash is no key at all: nothing to rename.
            if rows.is_empty() && i < 4 {
                pipe.del(k).ignore();
            } else {
                pipe.rename(t, k).ignore();
            }
        }
        let _: () = tokio::time::timeout(REBUILD_TIMEOUT, pipe.query_async(&mut c))
            .await
            .context("rebuilding timed out")?
            .context("writing the rebuilt board")?;
        Ok((rows.len(), as_of))
    }

    /// How many entries differ between Redis and PostgreSQL over every board's current
    /// period (missing, extra, or another value or version).
    pub(crate) async fn drift(&self, db: &Db, boards: &Boards) -> anyhow::Result<u64> {
        let mut total = 0;
        for live in boards.all() {
            total += self.board_drift(db, &live.def, &live.period().id).await?;
        }
        Ok(total)
    }

    async fn board_drift(&self, db: &Db, def: &BoardDef, period: &str) -> anyhow::Result<u64> {
        let (rows, _) = load_rows(db, def.id.as_str(), period, 0).await?;
        let [board_key, _, _, versions_key, _] = self.board_keys(def.id.as_str(), period);
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
                Some((p, (def.order.value(*s as i64), *versions.get(p)?)))
            })
            .collect();
        let differing = rows
            .iter()
            .filter(|r| in_redis.get(r.player_id.as_str()) != Some(&(r.value, r.version)))
            .count();
        let known: HashSet<&str> = rows.iter().map(|r| r.player_id.as_str()).collect();
        let extra = in_redis.keys().filter(|p| !known.contains(*p)).count();
        let unreadable = scored.len().saturating_sub(in_redis.len());
        Ok((differing + extra + unreadable) as u64)
    }

    /// One supervisor step: rebuild a stale cache once Redis answers, else check drift when
    /// it is due. Returns whether a sync (rebuild or drift check) ran.
    async fn supervise(&self, db: &Db, boards: &Boards, sync_due: bool) -> bool {
        if self.needs_rebuild.load(Ordering::Relaxed) || !self.is_healthy() {
            if !self.ping().await {
                return false;
            }
            match self.rebuild(db, boards).await {
                Ok(_) => metrics::gauge!("redis_leaderboard_sync_drift").set(0.0),
                Err(e) => self.failed(&format!("{e:#}"), "rebuilding"),
            }
            return true;
        }
        if !sync_due {
            return false;
        }
        match self.drift(db, boards).await {
            Ok(d) => {
                metrics::gauge!("redis_leaderboard_sync_drift").set(d as f64);
                if d > 0 {
                    tracing::warn!(drift = d, "Redis board drifted from PostgreSQL; repairing");
                    if let Err(e) = self.rebuild(db, boards).await {
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
    db: Db,
    boards: Arc<Boards>,
    sync_interval: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let last_sync = Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
    crate::jobs::every(CHECK_EVERY, shutdown, move || {
        let (cache, db, boards, last_sync) =
            (cache.clone(), db.clone(), boards.clone(), last_sync.clone());
        async move {
            // A std Mutex: read and written between awaits, never held across one.
            let due = last_sync.lock().expect("not poisoned").elapsed() >= sync_interval;
            if cache.supervise(&db, &boards, due).await {
                *last_sync.lock().expect("not poisoned") = tokio::time::Instant::now();
            }
        }
    })
}
