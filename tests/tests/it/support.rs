//! What the end-to-end test modules share: an in-process aggregator that a test can stop and
//! start again on the same port, where the edge expects it, and locally minted action tokens.

use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::Application;
use scoreboard_tests::stack::aggregator_vars;
use scoreboard_tests::{fresh_database, fresh_redis, EdgeServer, TestDatabase, TestRedis};

/// A running aggregator: its base URL, the sender that stops it, and its task.
pub(crate) type Running = (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

pub(crate) async fn aggregator(db_url: &str, redis: &scoreboard_tests::TestRedis) -> Running {
    aggregator_on(db_url, redis, 0).await
}

/// An aggregator on `port` (0 for a free one), e.g. to restart one where the edge expects it.
pub(crate) async fn aggregator_on(
    db_url: &str,
    redis: &scoreboard_tests::TestRedis,
    port: u16,
) -> Running {
    aggregator_with(db_url, redis, port, &[]).await
}

/// Like `aggregator_on`, with variables added or replaced (e.g. secrets being rotated).
pub(crate) async fn aggregator_with(
    db_url: &str,
    redis: &scoreboard_tests::TestRedis,
    port: u16,
    overrides: &[(&str, &str)],
) -> Running {
    let mut vars = aggregator_vars(db_url);
    vars.insert("PORT".into(), port.to_string());
    vars.insert("REDIS_URL".into(), redis.url.clone());
    vars.insert("REDIS_KEY_PREFIX".into(), redis.key_prefix.clone());
    vars.insert("SHUTDOWN_GRACE_PERIOD".into(), "2s".into());
    for (k, v) in overrides {
        vars.insert((*k).into(), (*v).into());
    }
    let app = Application::build(Config::from_vars(&vars).unwrap())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (url, tx, handle)
}

/// A 3-point `tap` action token signed with `secret`, as a game backend would mint it.
pub(crate) fn local_token(secret: &str, player: &str, iat: i64, ttl: i64) -> String {
    scoreboard_tests::tokens::mint_action(secret, "tap", player, 3, 0, ttl, iat).token
}

/// The worker under `wrangler dev` in front of `aggregator`, with the test secrets and the
/// given variables added (catalog, limits, ...).
pub(crate) async fn edge_with(aggregator: &str, extra: &[(&str, &str)]) -> EdgeServer {
    EdgeServer::in_front_of(aggregator, extra)
        .await
        .expect("the edge starts")
}

/// A fresh database and Redis with an in-process aggregator on them.
pub(crate) async fn stack() -> (TestDatabase, TestRedis, Running) {
    let db = fresh_database().await.expect("a fresh database");
    let redis = fresh_redis().await.expect("a fresh Redis");
    let running = aggregator(&db.url, &redis).await;
    (db, redis, running)
}
