//! The optional Redis copy of the boards. Redis is allowed to fail: every call answers
//! "unavailable" instead of erroring, marks the cache unhealthy, and the supervisor rebuilds
//! the board from PostgreSQL once Redis answers again.
//!
//! | module | what |
//! | --- | --- |
//! | this file | the connection (one server or a cluster), its health, and the one way a call is made (timeout, failure) |
//! | [`scripts`] | the Lua scripts (absolute, version-guarded writes; player reads) and their calls |
//! | [`reads`] | pages and around-me reads, answered as `board::pages` answers them |
//! | [`rebuild`] | the rebuild from PostgreSQL, in pages, beside the live keys, then swapped in |
//! | [`drift`] | the drift check, which repairs only the entries that differ |
//! | [`supervisor`] | the task that rebuilds a stale cache (with backoff) and runs the drift check |
//! | [`pubsub`] | snapshots between instances: publish, subscribe, and [`pubsub::announce`] |

mod drift;
pub(crate) mod pubsub;
pub(crate) mod reads;
mod rebuild;
pub(crate) mod scripts;
pub(crate) mod supervisor;

use crate::config::RedisTarget;
use anyhow::Context;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one Redis call may take before the cache counts as down.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// One server, or a Redis Cluster, whose client follows the slots as they move.
enum Client {
    Server(redis::Client),
    /// The client, and the nodes it was given (the subscriber builds a client of its own).
    Cluster(ClusterClient, Vec<secrecy::SecretString>),
}

/// A connection of either kind; both reconnect by themselves, and every call in this module
/// works on either (each script and pipeline touches one board's keys: one slot).
#[derive(Clone)]
pub(crate) enum Conn {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

pub(crate) struct Cache {
    client: Client,
    prefix: String,
    /// A std Mutex: it is only held to clone the (cheap, shared) connection out, never across
    /// an await.
    conn: Mutex<Option<Conn>>,
    healthy: AtomicBool,
    /// Whether batches copy their rows to Redis. Set before `healthy` at the end of a rebuild:
    /// from the moment writes flow, a catch-up brings in what committed before, and only then
    /// are Redis's reads and ranks trusted.
    writable: AtomicBool,
    /// Set on any failure: what Redis holds may have missed writes until it is rebuilt.
    needs_rebuild: AtomicBool,
    scripts: scripts::Scripts,
    /// Held by the one rebuild that runs (the supervisor's or an operator's).
    rebuilding: tokio::sync::Mutex<()>,
    /// Each (board, period)'s fingerprint at its last drift check that found nothing to
    /// repair. A std Mutex, never held across an await.
    clean: Mutex<HashMap<(String, String), drift::Fingerprint>>,
}

/// What the cache is doing, as `redis_cache_mode{mode}` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Reads and ranks come from Redis.
    Healthy,
    /// Redis failed: PostgreSQL and the rank index answer until it is rebuilt.
    Degraded,
    /// A rebuild runs (reads stay where they were: on Redis if it was healthy).
    Rebuilding,
}

impl Mode {
    const ALL: [(Mode, &'static str); 3] = [
        (Mode::Healthy, "healthy"),
        (Mode::Degraded, "degraded"),
        (Mode::Rebuilding, "rebuilding"),
    ];
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
    pub(crate) fn new(target: &RedisTarget, prefix: &str) -> anyhow::Result<Arc<Self>> {
        let client = match target {
            RedisTarget::Server(url) => Client::Server(
                redis::Client::open(url.expose_secret())
                    .context("REDIS_URL is not a valid Redis URL")?,
            ),
            RedisTarget::Cluster(nodes) => Client::Cluster(
                cluster_client(nodes, None).context("REDIS_CLUSTER_NODES are not Redis URLs")?,
                nodes.clone(),
            ),
        };
        Ok(Arc::new(Self {
            client,
            prefix: prefix.to_owned(),
            conn: Mutex::new(None),
            healthy: AtomicBool::new(false),
            writable: AtomicBool::new(false),
            needs_rebuild: AtomicBool::new(true),
            scripts: scripts::Scripts::new(),
            rebuilding: tokio::sync::Mutex::new(()),
            clean: Mutex::default(),
        }))
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The keys of one board's period, in the order the scripts take them: the sorted set,
    /// the member, name and version of each player, and the newest version written. They share
    /// one hash tag, so a script that touches them all runs on one Redis Cluster slot.
    fn board_keys(&self, board: &str, period: &str) -> [String; 5] {
        ["z", "members", "names", "versions", "version"]
            .map(|k| format!("{}{{{board}:{period}}}:{k}", self.prefix))
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Whether Redis may have missed writes (a failure since the last rebuild).
    pub(crate) fn needs_rebuild(&self) -> bool {
        self.needs_rebuild.load(Ordering::Relaxed) || !self.is_healthy()
    }

    pub(crate) fn set_mode(&self, mode: Mode) {
        for (m, label) in Mode::ALL {
            let on = if m == mode { 1.0 } else { 0.0 };
            metrics::gauge!("redis_cache_mode", "mode" => label).set(on);
        }
    }

    async fn connect(&self) -> redis::RedisResult<Conn> {
        match &self.client {
            Client::Server(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(CALL_TIMEOUT)
                    .set_response_timeout(CALL_TIMEOUT)
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(Conn::Server)
            }
            Client::Cluster(client, _) => client.get_async_connection().await.map(Conn::Cluster),
        }
    }

    async fn connection(&self) -> Option<Conn> {
        if let Some(c) = self.conn.lock().expect("not poisoned").clone() {
            return Some(c);
        }
        match tokio::time::timeout(CALL_TIMEOUT * 2, self.connect()).await {
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

    pub(crate) fn failed(&self, error: &str, what: &str) {
        self.writable.store(false, Ordering::Relaxed);
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::error!(
                error,
                what,
                "Redis error: serving from PostgreSQL until it returns"
            );
        }
        self.needs_rebuild.store(true, Ordering::Relaxed);
        metrics::gauge!("redis_up").set(0.0);
        self.set_mode(Mode::Degraded);
    }

    /// Batches copy their rows to Redis again (a rebuild's last step before [`recovered`]).
    fn accept_writes(&self) {
        self.writable.store(true, Ordering::Relaxed);
    }

    fn recovered(&self) {
        self.writable.store(true, Ordering::Relaxed);
        self.healthy.store(true, Ordering::Relaxed);
        self.needs_rebuild.store(false, Ordering::Relaxed);
        metrics::gauge!("redis_up").set(1.0);
        self.set_mode(Mode::Healthy);
    }

    /// Runs one read with the timeout, recording a failure; `None` while unhealthy.
    async fn call<T, F, Fut>(&self, what: &str, f: F) -> Option<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_healthy() {
            return None;
        }
        self.call_now(what, f).await
    }

    /// Runs one write with the timeout, recording a failure; `None` while writes are off.
    async fn call_write<T, F, Fut>(&self, what: &str, f: F) -> Option<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.writable.load(Ordering::Relaxed) {
            return None;
        }
        self.call_now(what, f).await
    }

    async fn call_now<T, F, Fut>(&self, what: &str, f: F) -> Option<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
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

    /// PING, bypassing the health flag (this is how health is found again).
    pub(crate) async fn ping(&self) -> bool {
        let Some(mut c) = self.connection().await else {
            return false;
        };
        let ping = redis::cmd("PING");
        let pong = ping.query_async::<String>(&mut c);
        matches!(tokio::time::timeout(CALL_TIMEOUT, pong).await, Ok(Ok(_)))
    }
}

/// A cluster client that retries once within a call's time (a failover takes longer: the
/// call fails, reads go to PostgreSQL, and the supervisor rebuilds once the cluster answers);
/// with `push`, on RESP3, delivering what it is subscribed to there.
fn cluster_client(
    nodes: &[secrecy::SecretString],
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> redis::RedisResult<ClusterClient> {
    let mut builder = ClusterClient::builder(nodes.iter().map(|n| n.expose_secret().to_owned()))
        .connection_timeout(CALL_TIMEOUT)
        .response_timeout(CALL_TIMEOUT)
        .retries(1);
    if let Some(push) = push {
        builder = builder
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(push);
    }
    builder.build()
}
