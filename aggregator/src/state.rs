//! Shared application state, cloned cheaply into every handler.

use crate::apply::Applier;
use crate::board::Board;
use crate::config::Config;
use scoreboard_protocol::action::ActionTokens;
use sqlx::PgPool;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub config: Config,
    pub db: PgPool,
    /// Reads go here: `DATABASE_REPLICA_URL` when set, else the primary.
    pub read_db: PgPool,
    pub board: Board,
    /// The Redis copy of the board, when `REDIS_URL` is set.
    pub cache: Option<Arc<crate::cache::Cache>>,
    pub ip_limiter: crate::limit::IpLimiter,
    pub applier: Applier,
    pub actions: ActionTokens,
    /// Open SSE streams on this instance, against `SSE_MAX_CLIENTS_PER_INSTANCE`.
    pub sse_clients: AtomicUsize,
    pub ws_subscribers: AtomicUsize,
    /// Turns true when the instance starts shutting down; streams end on it.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
