//! What the end-to-end test files share: an in-process aggregator that a test can stop and
//! start again on the same port, where the edge expects it, and locally minted action tokens.
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::Application;
use scoreboard_tests::stack::{aggregator_vars, ACTION_SECRET, EDGE_SECRET, JWT_SECRET};
use scoreboard_tests::EdgeServer;

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
    use scoreboard_protocol::action::{ActionTokens, MintRequest};
    use scoreboard_protocol::jwt::HmacSecret;
    ActionTokens::from_secret(HmacSecret::new(secret.as_bytes()))
        .mint(
            &MintRequest {
                player: &scoreboard_protocol::PlayerId::parse(player).unwrap(),
                action: &scoreboard_protocol::ActionName::parse("tap").unwrap(),
                points: 3,
                min_seconds: 0,
                ttl_secs: ttl,
            },
            &rand::random::<[u8; 16]>(),
            iat,
        )
        .unwrap()
        .token
}

/// The worker under `wrangler dev` in front of `aggregator`, with the test secrets and the
/// given variables added (catalog, limits, ...).
pub(crate) async fn edge_with(aggregator: &str, extra: &[(&str, &str)]) -> EdgeServer {
    let mut vars = vec![
        ("AGGREGATOR_URL", aggregator),
        ("EDGE_FORWARD_SECRET", EDGE_SECRET),
        ("JWT_SECRET", JWT_SECRET),
        ("ACTION_TOKEN_SECRET", ACTION_SECRET),
    ];
    vars.extend_from_slice(extra);
    EdgeServer::start(&vars).await.expect("the edge starts")
}
