//! The regional aggregator: owns the scoreboard's state in PostgreSQL, applies each score
//! delta exactly once, and streams top-10 changes to edge hubs and browsers.
//!
//! | module | what |
//! | --- | --- |
//! | [`config`] | typed configuration from the environment, refusing every problem at once |
//! | `http` | the route table, middleware, extractors, one file per resource |
//! | `apply` | the group-commit batcher: a pure plan, the SQL of a batch, the queue |
//! | `board` | the live snapshot (`watch`, latest value), the tie rule and board SQL, the poller |
//! | `cache` | the optional Redis copy: scripts, connection and health, rebuild and drift, pub/sub |
//! | `jobs` | timers until shutdown: expired-row clean-up, the `database_up` probe, first statistics |
//! | `prometheus` | the Prometheus recorder, metric descriptions, zeroed series |
//! | [`telemetry`] | JSON log lines, each carrying its request's id |
//! | `names` | when two names are one: NFKC case fold and confusable skeleton; the backfill |
//! | `db` | the database handle, directly or through a transaction pooler (PgBouncer) |
//! | `replica` | where a read goes: the read replica while it is usable, else the primary |
//! | `state`, `error`, `clock`, `ratelimit` | shared state, the error type, the wall clock, the per-IP limiter |

pub mod admin_cli;
mod apply;
mod board;
mod cache;
mod clock;
pub mod config;
mod db;
mod error;
mod http;
mod jobs;
mod names;
mod prometheus;
mod ratelimit;
mod replica;
mod state;
pub mod telemetry;

use anyhow::Context;
use config::Config;
use db::Db;
use scoreboard_protocol::action::ActionTokens;
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use state::{AppState, Inner};
use std::future::Future;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The migrations in `migrations/`, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects (directly, or through a session-mode pool: never a transaction pooler), applies
/// pending migrations, then the data steps they leave to the application.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .context("connecting to the database to migrate it")?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    names::backfill(&Db::new(pool.clone(), false))
        .await
        .context("bringing names to the current rules")?;
    pool.close().await;
    Ok(())
}

/// One sweep of expired sessions and consumed tokens (what the janitor does every minute);
/// returns (tokens, sessions) deleted.
pub async fn sweep_expired_rows(db: &PgPool) -> sqlx::Result<(u64, u64)> {
    jobs::janitor::sweep(&Db::new(db.clone(), false)).await
}

/// What the statistics job does once: analyzes the tables written to but never analyzed;
/// returns them and whether every table has statistics now.
pub async fn analyze_new_tables(db: &PgPool) -> sqlx::Result<(Vec<&'static str>, bool)> {
    jobs::statistics::analyze_new_tables(&Db::new(db.clone(), false)).await
}

/// A built, bound, migrated aggregator, ready to run.
pub struct Application {
    port: u16,
    metrics_port: u16,
    listener: TcpListener,
    metrics_listener: TcpListener,
    state: AppState,
    batcher: tokio::task::JoinHandle<()>,
    /// Background tasks (poller, Redis supervisor and subscriber); they end on shutdown.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .field("metrics_port", &self.metrics_port)
            .finish_non_exhaustive()
    }
}

/// A pool that gives up on a connection after 5 s, so a database outage turns into quick
/// 503s instead of piled-up requests.
///
/// Its connections keep one generic plan per prepared statement. Left to choose, PostgreSQL
/// plans some statements afresh on most calls (0.3-0.5 ms each, more than they run): the
/// batch's read and write at small batches, and the changed boards' top 10 after each batch
/// (557 plans in 1,841 calls at 5,000 updates/s, 24 with this). A generic plan still follows
/// the tables' statistics (the statistics job keeps them fresh), so the batch's entries are
/// joined as the planner sees fit (a probe per key was slower at 1,000 players) and board
/// reads from PostgreSQL alone are as fast (BENCHMARKS.md, "The batch's plans", "Generic
/// plans on every connection"). Behind a transaction pooler a session setting would leak to
/// other clients: not set (the batch sets it for its own transaction).
async fn connect_pool(url: &str, max: u32, pooled: bool) -> sqlx::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if !pooled {
                    use sqlx::Executor as _;
                    conn.execute("SET plan_cache_mode = force_generic_plan")
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// The background tasks: clean-up, the database probe, the board poller, and with Redis its
/// supervisor and the subscriber to other instances' snapshots. They end on shutdown.
fn spawn_jobs(
    config: &Config,
    db: &Db,
    boards: &Arc<board::Boards>,
    cache: Option<&Arc<cache::Cache>>,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = vec![
        jobs::janitor::spawn(db.clone(), shutdown.clone()),
        jobs::probe::spawn(db.clone(), shutdown.clone()),
        jobs::statistics::spawn(db.clone(), shutdown.clone()),
        board::poller::spawn(db.clone(), boards.clone(), shutdown.clone()),
        board::ranks::spawn(db.clone(), boards.clone(), shutdown.clone()),
        board::boundary::spawn(
            db.clone(),
            boards.clone(),
            cache.cloned(),
            config.webhook_urls(),
            shutdown.clone(),
        ),
    ];
    if let Some(c) = cache {
        let sync = config.redis_sync_interval;
        tasks.push(cache::supervisor::spawn(
            c.clone(),
            db.clone(),
            boards.clone(),
            sync,
            shutdown.clone(),
        ));
        tasks.push(cache::pubsub::spawn_subscriber(
            c.clone(),
            boards.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(hooks) = &config.webhooks {
        match jobs::webhooks::spawn(db.clone(), hooks.clone(), shutdown.clone()) {
            Ok(task) => tasks.push(task),
            Err(e) => tracing::error!(error = format!("{e:#}"), "webhooks will not be delivered"),
        }
    }
    tasks
}

impl Application {
    /// Connects, migrates, loads the board and binds both ports (`0` picks free ones).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // First: what start-up records (e.g. `redis_up` after the initial rebuild) must reach
        // the exporter, not the no-op recorder that exists before it.
        prometheus::handle();
        migrate(config.migration_url()).await?;
        let db = connect_pool(
            config.database_url(),
            config.database_pool_max,
            config.database_pooled,
        )
        .await
        .context("connecting to the database")?;
        let db = Db::new(db, config.database_pooled);
        let reads = Arc::new(
            replica::Reads::new(
                db.clone(),
                config
                    .database_replica_url
                    .as_ref()
                    .map(|u| u.expose_secret()),
                config.database_pool_max,
                config.database_pooled,
            )
            .context("DATABASE_REPLICA_URL")?,
        );
        let boards = Arc::new(board::Boards::load(&db).await?);
        // The rank index before the first batch: until a board is loaded its batches' ranks
        // are counted in PostgreSQL, which at a million entries takes seconds per batch.
        if let Err(e) = board::ranks::keep(&db, &boards).await {
            tracing::warn!(error = %e, "rank index not loaded at start-up; the keeper retries");
        }
        let cache = match &config.redis {
            // Cold: the supervisor rebuilds it from PostgreSQL as its first step, while the
            // instance already serves (reads from PostgreSQL, ranks from the rank index), so
            // a large board does not hold the start-up back.
            Some(target) => Some(cache::Cache::new(target, &config.redis_key_prefix)?),
            None => None,
        };
        let (applier, batcher) = apply::spawn(
            db.clone(),
            boards.clone(),
            cache.clone(),
            apply::BatchSettings {
                max: config.apply_batch_max,
                wait: config.apply_batch_wait,
                queue: apply::QUEUE_CAPACITY.max(config.apply_batch_max * 2),
                admit_wait: config.request_timeout / 2,
            },
        );
        let listener = TcpListener::bind((config.bind_addr.as_str(), config.port))
            .await
            .with_context(|| format!("binding port {}", config.port))?;
        let metrics_listener = TcpListener::bind((config.bind_addr.as_str(), config.metrics_port))
            .await
            .with_context(|| format!("binding metrics port {}", config.metrics_port))?;
        let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
        let actions = ActionTokens::new(config.action_keys.clone());
        prometheus::register(
            config.sse_max_clients,
            cache.as_ref().map(|c| c.is_healthy()),
            config.database_replica_url.is_some(),
        );
        let mut tasks = spawn_jobs(&config, &db, &boards, cache.as_ref(), &shutdown);
        tasks.extend(reads.spawn_monitor(shutdown.clone()));
        let ip_limiter = ratelimit::IpLimiter::new(
            scoreboard_protocol::gcra::Quota::per_window(
                config.rate_limit_ip,
                config.shared.rate_limit_window_ms,
            )
            .context("RATE_LIMIT_IP and RATE_LIMIT_WINDOW_MS must be positive")?,
        );
        let state = AppState(Arc::new(Inner {
            config,
            db,
            reads,
            boards,
            cache,
            ip_limiter,
            applier,
            actions,
            sse_clients: AtomicUsize::new(0),
            ws_subscribers: AtomicUsize::new(0),
            shutdown,
        }));
        Ok(Self {
            port: listener.local_addr()?.port(),
            metrics_port: metrics_listener.local_addr()?.port(),
            listener,
            metrics_listener,
            state,
            batcher,
            tasks,
            shutdown_tx,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub fn db(&self) -> PgPool {
        self.state.db.pool().clone()
    }

    /// Serves until `stop` resolves, then shuts down gracefully: stop accepting, end the
    /// streams, answer in-flight requests, flush the batcher, all within the grace period.
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            metrics_listener,
            state,
            batcher,
            tasks,
            shutdown_tx,
            ..
        } = self;
        let grace = state.config.shutdown_grace_period;
        let handle = prometheus::handle();
        let metrics_app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let h = handle.clone();
                async move { h.render() }
            }),
        );
        let mut metrics_stop = shutdown_tx.subscribe();
        let metrics_server = tokio::spawn(async move {
            let _ = axum::serve(metrics_listener, metrics_app)
                .with_graceful_shutdown(async move {
                    let _ = metrics_stop.wait_for(|s| *s).await;
                })
                .await;
        });
        let app = http::router(state);
        let mut stopped = shutdown_tx.subscribe();
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            stop.await;
            tracing::info!("shutting down");
            let _ = shutdown_tx.send(true);
        });
        let serving = tokio::spawn(async move { server.await });
        // Wait for the signal, then give the server and the batcher the grace period.
        let _ = stopped.wait_for(|s| *s).await;
        let drained = tokio::time::timeout(grace, async {
            let _ = serving.await;
            // The router (and with it the last Applier) is gone: the batcher drains and ends.
            let _ = batcher.await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("shutdown grace period elapsed with work still in flight");
        }
        metrics_server.abort();
        for t in tasks {
            t.abort();
        }
        Ok(())
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
