//! What the end-to-end test files share: an in-process aggregator that a test can stop and
//! start again on the same port, where the edge expects it.

use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::Application;
use scoreboard_tests::stack::aggregator_vars;

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
    let mut vars = aggregator_vars(db_url);
    vars.insert("PORT".into(), port.to_string());
    vars.insert("REDIS_URL".into(), redis.url.clone());
    vars.insert("REDIS_KEY_PREFIX".into(), redis.key_prefix.clone());
    vars.insert("SHUTDOWN_GRACE_PERIOD".into(), "2s".into());
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
