//! The test harness every crate's integration tests use: throwaway PostgreSQL and Redis
//! servers started from the machine's binaries on random free ports, a fresh database (and a
//! fresh Redis key prefix) per test, and no leftovers even when a test panics or is killed.
//!
//! | item | what |
//! | --- | --- |
//! | [`fresh_database`] | a new, empty database on the shared throwaway server (or on `DATABASE_URL`) |
//! | [`fresh_redis`] | a Redis for one test: its own server, or a unique key prefix on `REDIS_URL` |
//! | [`PgServer`] | a PostgreSQL cluster of its own (initdb in a temp dir), stoppable and restartable |
//! | [`RedisServer`] | a Redis server of its own, stoppable and restartable on the same port |
//! | [`sse::SseClient`] | reads an SSE stream message by message |
//! | [`stack::aggregator_vars`] | the configuration of an in-process aggregator, with test secrets |
//! | [`EdgeServer`] | the edge worker under `wrangler dev` (workerd) on a random port |
//! | [`client`] | JSON requests, guest sign-in, edge-signed requests, Prometheus text |
//! | [`tokens`] | action tokens minted as a game backend would, and [`tokens::now`] |
//! | [`heavy`] | the lock that keeps heavy tests from running beside each other |
//! | [`env_or`] | a run's knob from the environment (`FAULTS_SECONDS`, `SOAK_SECONDS`, ...) |
//! | [`exactly_once::Ledger`] | what a run sent and was told, checked against PostgreSQL |
//! | [`player_load::PlayerLoad`] | players redeeming fresh and replayed tokens through the edge |
//! | [`AggregatorProcess`] | the aggregator binary as a process: kill, SIGTERM, `/proc` stats |
//! | [`HostsFile`] | a host name the edge resolves, moved between addresses by the test |
//!
//! Servers run under a small shell supervisor that watches the test process: when the test
//! process goes away (panic, `kill -9`, normal exit, whose statics are never dropped), the
//! supervisor stops the server and deletes its directory.

mod aggregator_process;
pub mod client;
mod edge;
pub mod exactly_once;
mod haproxy;
mod hosts;
mod pgbouncer;
pub mod player_load;
mod postgres;
mod process;
mod redis_cluster;
mod redis_server;
pub mod sse;
pub mod stack;
pub mod tokens;

pub use aggregator_process::{AggregatorProcess, ProcStats};
pub use edge::EdgeServer;
pub use haproxy::HaProxy;
pub use hosts::HostsFile;
pub use pgbouncer::PgBouncer;
pub use postgres::{fresh_database, PgServer, TestDatabase};
pub use process::free_port;
pub use redis_cluster::RedisCluster;
pub use redis_server::{fresh_redis, RedisServer, TestRedis};

/// The environment variable `name` parsed, or `default` when it is unset or does not parse
/// (e.g. `FAULTS_SECONDS`, which stretches a run).
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A random lowercase alphanumeric string, for database names and key prefixes.
pub fn random_suffix(len: usize) -> String {
    use rand::{distributions::Alphanumeric, Rng};
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(|c| (c as char).to_ascii_lowercase())
        .collect()
}

/// Held by the heavy tests (soak, faults, failover, abusive clients, the browser, the image
/// build, the load generator) for their whole run. Each crate's integration tests are one
/// binary whose tests run on parallel threads; when they were separate binaries these ran one
/// after another, and two of them at once starve each other on a two-core runner (timing
/// bounds fail, not the product). A tokio mutex: it is held across `.await`, and a test that
/// panics while holding it does not poison it for the others.
pub async fn heavy() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}
