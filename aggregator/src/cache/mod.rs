//! The optional Redis copy of the boards. Redis is allowed to fail: every call answers
//! "unavailable" instead of erroring, marks the cache unhealthy, and the supervisor rebuilds
//! the board from PostgreSQL once Redis answers again.
//!
//! | module | what |
//! | --- | --- |
//! | this file | the connection, its health, and the one way a call is made (timeout, failure) |
//! | [`scripts`] | the Lua scripts (absolute, version-guarded writes; player reads) and their calls |
//! | [`reads`] | pages and around-me reads, answered as `board::pages` answers them |
//! | [`rebuild`] | rebuild from PostgreSQL, the drift check, and the supervisor that runs both |
//! | [`pubsub`] | snapshots between instances: publish, subscribe, and [`pubsub::announce`] |

pub(crate) mod pubsub;
pub(crate) mod reads;
pub(crate) mod rebuild;
pub(crate) mod scripts;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one Redis call may take before the cache counts as down.
const CALL_TIMEOUT: Duration = Duration::from_millis(500);

pub(crate) struct Cache {
    client: redis::Client,
    prefix: String,
    /// A std Mutex: it is only held to clone the (cheap, shared) manager out, never across an
    /// await.
    conn: Mutex<Option<ConnectionManager>>,
    healthy: AtomicBool,
    /// Set on any failure: what Redis holds may have missed writes until it is rebuilt.
    needs_rebuild: AtomicBool,
    scripts: scripts::Scripts,
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
    pub(crate) fn new(url: &str, prefix: &str) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            client: redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?,
            prefix: prefix.to_owned(),
            conn: Mutex::new(None),
            healthy: AtomicBool::new(false),
            needs_rebuild: AtomicBool::new(true),
            scripts: scripts::Scripts::new(),
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

    async fn connection(&self) -> Option<ConnectionManager> {
        if let Some(c) = self.conn.lock().expect("not poisoned").clone() {
            return Some(c);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CALL_TIMEOUT)
            .set_response_timeout(CALL_TIMEOUT)
            .set_number_of_retries(1);
        let connecting = ConnectionManager::new_with_config(self.client.clone(), config);
        match tokio::time::timeout(CALL_TIMEOUT * 2, connecting).await {
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

    fn recovered(&self) {
        self.healthy.store(true, Ordering::Relaxed);
        self.needs_rebuild.store(false, Ordering::Relaxed);
        metrics::gauge!("redis_up").set(1.0);
    }

    /// Runs one call with the timeout, recording a failure; `None` while unhealthy.
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
