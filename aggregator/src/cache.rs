//! The Redis copy of the board: absolute scores in a sorted set (never increments, so every
//! write is idempotent), rank and player reads, snapshot fan-out between instances over a
//! channel, health, rebuild from PostgreSQL and the periodic drift check.
//!
//! Redis is optional and allowed to fail: every call here answers "unavailable" instead of
//! erroring, marks the cache unhealthy, and the supervisor task rebuilds the board from
//! PostgreSQL once Redis answers again.

use crate::board::Board;
use anyhow::Context;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use scoreboard_protocol::snapshot::Snapshot;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one Redis call may take before the cache counts as down.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// One player's entry as the board needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRow {
    pub player_id: String,
    pub name: String,
    pub score: i64,
    /// Id of the event that set `score` (the tie-break: smaller ranks higher).
    pub version: i64,
}

/// Sorted-set member for a row. Redis orders equal scores by member, descending under
/// `ZREVRANGE`; leading with `i64::MAX - version`, zero-padded, makes the earlier achiever
/// come first, the same order as PostgreSQL's `score DESC, reached_version ASC`.
pub fn member(player_id: &str, version: i64) -> String {
    format!("{:019}:{player_id}", i64::MAX - version)
}

/// Writes rows (absolute scores), skipping any row older than what Redis has, and returns
/// each row's 0-based rank. KEYS: board, members, names, versions. ARGV: groups of
/// (player, score, member, name, version).
const UPSERT: &str = r#"
local ranks = {}
for i = 1, #ARGV, 5 do
  local p, score, m, name, v = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], tonumber(ARGV[i+4])
  local cur = tonumber(redis.call('HGET', KEYS[4], p) or '-1')
  if v >= cur then
    local old = redis.call('HGET', KEYS[2], p)
    if old then redis.call('ZREM', KEYS[1], old) end
    redis.call('ZADD', KEYS[1], score, m)
    redis.call('HSET', KEYS[2], p, m)
    redis.call('HSET', KEYS[3], p, name)
    redis.call('HSET', KEYS[4], p, v)
  end
  local now = redis.call('HGET', KEYS[2], p)
  table.insert(ranks, redis.call('ZREVRANK', KEYS[1], now))
end
return ranks
"#;

/// Removes a player. KEYS: board, members, names, versions. ARGV: player.
const REMOVE: &str = r#"
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then redis.call('ZREM', KEYS[1], old) end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
"#;

/// A player's name, score and 0-based rank, or nil. KEYS as above. ARGV: player.
const PLAYER: &str = r#"
local m = redis.call('HGET', KEYS[2], ARGV[1])
if not m then return nil end
return {redis.call('HGET', KEYS[3], ARGV[1]), redis.call('ZSCORE', KEYS[1], m), redis.call('ZREVRANK', KEYS[1], m)}
"#;

pub struct Cache {
    client: redis::Client,
    prefix: String,
    /// A std Mutex: it is only held to clone the (cheap, shared) manager out, never across an
    /// await.
    conn: Mutex<Option<ConnectionManager>>,
    healthy: AtomicBool,
    needs_rebuild: AtomicBool,
    upsert: redis::Script,
    remove: redis::Script,
    player: redis::Script,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.prefix)
            .field("healthy", &self.healthy)
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            client: redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?,
            prefix: prefix.to_owned(),
            conn: Mutex::new(None),
            healthy: AtomicBool::new(false),
            needs_rebuild: AtomicBool::new(true),
            upsert: redis::Script::new(UPSERT),
            remove: redis::Script::new(REMOVE),
            player: redis::Script::new(PLAYER),
        }))
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn keys(&self) -> [String; 4] {
        [
            self.key("board"),
            self.key("members"),
            self.key("names"),
            self.key("versions"),
        ]
    }

    pub fn channel(&self) -> String {
        self.key("snapshots")
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if let Some(c) = self.conn.lock().expect("not poisoned").clone() {
            return Some(c);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(1);
        match tokio::time::timeout(
            CALL_TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                *self.conn.lock().expect("not poisoned") = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string(), "connecting");
                None
            }
            Err(_) => {
                self.failed("timed out", "connecting");
                None
            }
        }
    }

    fn failed(&self, error: &str, what: &str) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::error!(
                error,
                what,
                "Redis error: serving from PostgreSQL until it returns"
            );
        }
        self.needs_rebuild.store(true, Ordering::Relaxed);
        metrics::gauge!("redis_up").set(0.0);
    }

    /// Runs one call with the timeout, recording a failure.
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_healthy() {
            return None;
        }
        let conn = self.connection().await?;
        match tokio::time::timeout(CALL_TIMEOUT, f(conn)).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.failed(&e.to_string(), what);
                None
            }
            Err(_) => {
                self.failed("timed out", what);
                None
            }
        }
    }

    /// Writes absolute scores; returns 1-based ranks when Redis answered.
    pub async fn upsert(&self, rows: &[BoardRow]) -> Option<Vec<u64>> {
        if rows.is_empty() {
            return Some(Vec::new());
        }
        let [board, members, names, versions] = self.keys();
        let ranks: Vec<Option<i64>> = self
            .call("writing scores", |mut c| async move {
                let mut inv = self.upsert.prepare_invoke();
                inv.key(&board).key(&members).key(&names).key(&versions);
                for r in rows {
                    inv.arg(&r.player_id)
                        .arg(r.score)
                        .arg(member(&r.player_id, r.version))
                        .arg(&r.name)
                        .arg(r.version);
                }
                inv.invoke_async(&mut c).await
            })
            .await?;
        Some(
            ranks
                .into_iter()
                .map(|r| r.unwrap_or(0) as u64 + 1)
                .collect(),
        )
    }

    pub async fn remove(&self, player: &str) -> bool {
        let [board, members, names, versions] = self.keys();
        self.call("removing a player", |mut c| async move {
            self.remove
                .key(&board)
                .key(&members)
                .key(&names)
                .key(&versions)
                .arg(player)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .is_some()
    }

    /// `Some(Some((name, score, rank)))` from Redis, `Some(None)` when Redis does not know the
    /// player, `None` when Redis is unavailable.
    pub async fn player(&self, player: &str) -> Option<Option<(String, i64, u64)>> {
        let [board, members, names, versions] = self.keys();
        let v: Option<(String, f64, i64)> = self
            .call("reading a player", |mut c| async move {
                self.player
                    .key(&board)
                    .key(&members)
                    .key(&names)
                    .key(&versions)
                    .arg(player)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Some(v.map(|(name, score, rank)| (name, score as i64, rank as u64 + 1)))
    }

    pub async fn publish(&self, json: &str) {
        let channel = self.channel();
        let _: Option<i64> = self
            .call("publishing a snapshot", |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(json)
                    .query_async(&mut c)
                    .await
            })
            .await;
    }

    /// PING, bypassing the health flag (this is how health is found again).
    pub async fn ping(&self) -> bool {
        let Some(mut c) = self.connection().await else {
            return false;
        };
        matches!(
            tokio::time::timeout(
                CALL_TIMEOUT,
                redis::cmd("PING").query_async::<String>(&mut c)
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// Replaces the Redis board with PostgreSQL's, then re-applies rows that changed while it
    /// was being copied (writes are version-guarded, so that is harmless). Marks the cache
    /// healthy. Returns the number of players written.
    pub async fn rebuild(&self, db: &PgPool) -> anyhow::Result<usize> {
        let (rows, as_of) = load_rows(db, 0).await?;
        let mut c = self.connection().await.context("Redis is not reachable")?;
        let tmp: Vec<String> = self.keys().iter().map(|k| format!("{k}:rebuild")).collect();
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
        for (t, k) in tmp.iter().zip(self.keys()) {
            if rows.is_empty() {
                pipe.del(&k).ignore();
            } else {
                pipe.rename(t, &k).ignore();
            }
        }
        let _: () = tokio::time::timeout(Duration::from_secs(30), pipe.query_async(&mut c))
            .await
            .context("rebuilding timed out")?
            .context("writing the rebuilt board")?;
        self.healthy.store(true, Ordering::Relaxed);
        self.needs_rebuild.store(false, Ordering::Relaxed);
        metrics::gauge!("redis_up").set(1.0);
        let (late, _) = load_rows(db, as_of).await?;
        if self.upsert(&late).await.is_none() {
            anyhow::bail!("Redis failed while catching up after the rebuild");
        }
        tracing::info!(players = rows.len(), "Redis board rebuilt from PostgreSQL");
        Ok(rows.len())
    }

    /// How many players differ between Redis and PostgreSQL (missing, extra, or another
    /// score or version).
    pub async fn drift(&self, db: &PgPool) -> anyhow::Result<u64> {
        let (rows, _) = load_rows(db, 0).await?;
        let versions_key = self.key("versions");
        let board_key = self.key("board");
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
                let p = m.split_once(':')?.1;
                Some((p, (*s as i64, *versions.get(p)?)))
            })
            .collect();
        let mut drift = 0u64;
        for r in &rows {
            if in_redis.get(r.player_id.as_str()) != Some(&(r.score, r.version)) {
                drift += 1;
            }
        }
        let known: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.player_id.as_str()).collect();
        drift += in_redis.keys().filter(|p| !known.contains(*p)).count() as u64;
        drift += (scored.len() as u64).saturating_sub(in_redis.len() as u64);
        Ok(drift)
    }
}

/// Every non-banned scored player with `reached_version > after`, and the newest event id at
/// the time of reading.
async fn load_rows(db: &PgPool, after: i64) -> anyhow::Result<(Vec<BoardRow>, i64)> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.player_id, u.name, s.score, s.reached_version FROM scores s JOIN users u USING (player_id)
         WHERE u.banned_at IS NULL AND s.reached_version > $1",
    )
    .bind(after)
    .fetch_all(&mut *tx)
    .await?;
    let as_of: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM score_events")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((
        rows.into_iter()
            .map(|(player_id, name, score, version)| BoardRow {
                player_id,
                name,
                score,
                version,
            })
            .collect(),
        as_of,
    ))
}

/// Keeps the cache healthy: while it is down or stale, pings every second and rebuilds once
/// Redis answers; every `sync_interval`, measures drift (`redis_leaderboard_sync_drift`) and
/// repairs it.
pub fn spawn_supervisor(
    cache: Arc<Cache>,
    db: PgPool,
    sync_interval: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_sync = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            if cache.needs_rebuild.load(Ordering::Relaxed) || !cache.is_healthy() {
                if cache.ping().await {
                    if let Err(e) = cache.rebuild(&db).await {
                        cache.failed(&format!("{e:#}"), "rebuilding");
                    } else {
                        metrics::gauge!("redis_leaderboard_sync_drift").set(0.0);
                        last_sync = tokio::time::Instant::now();
                    }
                }
                continue;
            }
            if last_sync.elapsed() >= sync_interval {
                last_sync = tokio::time::Instant::now();
                match cache.drift(&db).await {
                    Ok(d) => {
                        metrics::gauge!("redis_leaderboard_sync_drift").set(d as f64);
                        if d > 0 {
                            tracing::warn!(
                                drift = d,
                                "Redis board drifted from PostgreSQL; repairing"
                            );
                            if let Err(e) = cache.rebuild(&db).await {
                                cache.failed(&format!("{e:#}"), "repairing drift");
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = format!("{e:#}"), "drift check failed"),
                }
            }
        }
    })
}

/// Offers every snapshot published by any instance to this instance's board; reconnects
/// when Redis goes away.
pub fn spawn_subscriber(
    cache: Arc<Cache>,
    board: Board,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let connected =
                tokio::time::timeout(CALL_TIMEOUT * 2, cache.client.get_async_pubsub()).await;
            if let Ok(Ok(mut ps)) = connected {
                if ps.subscribe(cache.channel()).await.is_ok() {
                    let mut messages = ps.on_message();
                    loop {
                        tokio::select! {
                            m = messages.next() => match m {
                                Some(msg) => {
                                    let payload: String = msg.get_payload().unwrap_or_default();
                                    if let Ok(s) = serde_json::from_str::<Snapshot>(&payload) {
                                        board.offer(s);
                                    }
                                }
                                None => break,
                            },
                            _ = shutdown.wait_for(|s| *s) => return,
                        }
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Catches what no channel delivered (no Redis, Redis down, another instance's commit):
/// every second, if PostgreSQL has a newer event than the board, reload the snapshot.
pub fn spawn_poller(
    db: PgPool,
    board: Board,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let newest: Result<i64, _> =
                sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM score_events")
                    .fetch_one(&db)
                    .await;
            if let Ok(v) = newest {
                if v > board.current().snapshot.version {
                    if let Ok(mut conn) = db.acquire().await {
                        if let Ok(s) = crate::board::load_snapshot(&mut conn).await {
                            board.offer(s);
                        }
                    }
                }
            }
        }
    })
}
