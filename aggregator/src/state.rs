//! Shared application state, cloned cheaply into every handler.

use crate::apply::Applier;
use crate::board::Boards;
use crate::cache::Cache;
use crate::config::Config;
use crate::db::Db;
use crate::ratelimit::IpLimiter;
use crate::replica::Reads;
use scoreboard_protocol::action::ActionTokens;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub(crate) struct AppState(pub(crate) Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) db: Db,
    /// Where reads go: the replica (`DATABASE_REPLICA_URL`) while it is usable, else `db`.
    pub(crate) reads: Arc<Reads>,
    /// Every board with its live snapshot.
    pub(crate) boards: Arc<Boards>,
    /// The Redis copy of the boards, when `REDIS_URL` is set.
    pub(crate) cache: Option<Arc<Cache>>,
    pub(crate) ip_limiter: IpLimiter,
    pub(crate) applier: Applier,
    pub(crate) actions: ActionTokens,
    /// Open SSE streams on this instance, against `SSE_MAX_CLIENTS_PER_INSTANCE`.
    pub(crate) sse_clients: AtomicUsize,
    pub(crate) ws_subscribers: AtomicUsize,
    /// Turns true when the instance starts shutting down; streams end on it.
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
