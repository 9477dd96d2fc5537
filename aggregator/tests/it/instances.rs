//! Three aggregator instances of one region behind one address (a real HAProxy, round robin,
//! health-checked on `/health/ready`), the edge (workerd) pointed at it: one instance is killed
//! under load through the edge, the one holding the edge hub's upstream WebSocket. Nothing
//! acknowledged is lost, the hub reconnects to a live instance by itself, and its SSE clients
//! end on the final board.

use crate::helpers::{process_vars, BIN};
use scoreboard_tests::client;
use scoreboard_tests::player_load::{LoadOptions, PlayerLoad};
use scoreboard_tests::sse::SseClient;
use scoreboard_tests::{AggregatorProcess, EdgeServer, HaProxy, PgServer, RedisServer};
use std::time::{Duration, Instant};

const INSTANCES: usize = 3;
const WORKERS: usize = 12;

async fn subscribers(http: &reqwest::Client, agg: &AggregatorProcess) -> f64 {
    client::metric(
        &client::get_text(http, &agg.metrics).await,
        "ws_subscribers_active",
    )
}

/// The index of the instance the hub's upstream WebSocket is on, once there is one.
async fn hub_upstream(http: &reqwest::Client, instances: &[AggregatorProcess]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for (i, agg) in instances.iter().enumerate() {
            if subscribers(http, agg).await >= 1.0 {
                return i;
            }
        }
        assert!(Instant::now() < deadline, "the hub never subscribed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The board every instance of `live` serves, once they all serve the same one.
async fn agreed_board(http: &reqwest::Client, live: &[&AggregatorProcess]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut boards = Vec::new();
        for agg in live {
            let url = format!("{}/api/leaderboard", agg.base);
            boards.push(client::get_json::<serde_json::Value>(http, &url).await);
        }
        if boards.windows(2).all(|w| w[0]["top"] == w[1]["top"]) {
            return boards.swap_remove(0);
        }
        assert!(
            Instant::now() < deadline,
            "the instances never agreed: {boards:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_behind_the_balancer_loses_nothing_and_the_hub_reconnects() {
    let _heavy = scoreboard_tests::heavy().await;
    let pg = PgServer::start_durable().await.unwrap();
    let db_url = pg.create_database("instances").await.unwrap();
    let redis = RedisServer::start().await.unwrap();
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        let vars = process_vars(
            &db_url,
            &[("REDIS_URL", &redis.url()), ("SSE_PING_INTERVAL", "1000")],
        );
        instances.push(AggregatorProcess::start(BIN, &vars).await);
    }
    let backends: Vec<String> = instances
        .iter()
        .map(|a| a.base.trim_start_matches("http://").to_owned())
        .collect();
    let balancer = HaProxy::start(&backends).await.unwrap();
    // In workerd directly: what is under test is the hub's failover, not wrangler's dev proxy,
    // which relays every stream through a second workerd of its own.
    let edge = EdgeServer::start_in_workerd(&balancer.url()).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    let stream = format!("{}/api/leaderboard/stream", edge.url());
    let mut streams = Vec::new();
    for _ in 0..2 {
        let (status, sse) = SseClient::connect(&stream, None).await;
        assert_eq!(status, 200);
        let mut sse = sse.unwrap();
        sse.next_snapshot(Duration::from_secs(15)).await.unwrap();
        streams.push(sse);
    }
    let players = client::guests(&http, &edge.url(), "Balanced ", 12).await;
    let load = PlayerLoad::start(
        &edge.url(),
        &players,
        LoadOptions {
            workers: WORKERS,
            replay_share: 0.3,
            pause: None,
        },
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let victim = hub_upstream(&http, &instances).await;
    let before_kill = load.statuses();
    instances[victim].kill().await;
    let killed = Instant::now();
    let live: Vec<&AggregatorProcess> = instances
        .iter()
        .enumerate()
        .filter_map(|(i, a)| (i != victim).then_some(a))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reconnected = None;
    while reconnected.is_none() {
        let mut total = 0.0;
        for a in &live {
            total += subscribers(&http, a).await;
        }
        if total >= 1.0 {
            reconnected = Some(killed.elapsed());
        }
        assert!(Instant::now() < deadline, "the hub never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = load.stop().await;

    let answered: usize = report.statuses.values().sum();
    let fine = report.statuses.get(&200).copied().unwrap_or(0)
        + report.statuses.get(&409).copied().unwrap_or(0);
    println!(
        "killed instance {victim} of {INSTANCES} (the hub's upstream) under load: the hub \
         reconnected after {:?}; answers {:?} (before the kill {before_kill:?}); p50 {:?}, \
         p99 {:?}",
        reconnected.unwrap(),
        report.statuses,
        report.latency_quantile(0.5),
        report.latency_quantile(0.99),
    );
    assert_eq!(report.timed_out, 0, "a request hung");
    // At most the requests in flight on the killed instance may fail (the edge tells the
    // player to retry, with the token kept); everything else is applied or a replay.
    assert!(
        answered - fine <= WORKERS,
        "more answers than the requests in flight were neither applied nor a replay: {:?}",
        report.statuses
    );
    assert!(fine >= 100, "too little got through: {:?}", report.statuses);
    report.assert_exactly_once(&db_url, &players, 100).await;

    // The SSE clients, never reconnected, end on the final top 10 (rows, not the version:
    // subscribers are woken only when the rows change), once the live instances agree on it
    // (one that did not commit the last batch learns it from Redis or its poller).
    let board = agreed_board(&http, &live).await;
    for (i, sse) in streams.iter_mut().enumerate() {
        let last = sse.until_top(&board["top"], Duration::from_secs(30)).await;
        assert_eq!(
            last["top"],
            board["top"],
            "stream {i} did not reach the final top 10 (version {} of {}; the stream {})",
            last["version"],
            board["version"],
            if sse.ended { "ended" } else { "stayed open" }
        );
    }
}
