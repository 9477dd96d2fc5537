//! Faults under load, end to end: while players redeem fresh and replayed tokens through the
//! edge (workerd), the aggregator process is killed with SIGKILL and started again, Redis is
//! stopped and started, PostgreSQL is restarted, and the aggregator is stopped gracefully with
//! SIGTERM and started again. Afterwards every acknowledged update is applied exactly once,
//! nothing refused was applied, totals match, Redis agrees with PostgreSQL, and an SSE client
//! of the edge ends on the final version without reconnecting.
//!
//! `FAULTS_SECONDS` (default 12) stretches the run and `FAULTS_WORKERS` (default 16 concurrent
//! players' clients) raises the load, for the longer form in RELIABILITY.md.

use crate::helpers::{process_vars, BIN};
use scoreboard_protocol::snapshot::PlayerView;
use scoreboard_tests::client;
use scoreboard_tests::player_load::{LoadOptions, PlayerLoad};
use scoreboard_tests::sse::SseClient;
use scoreboard_tests::{AggregatorProcess, EdgeServer, PgServer, RedisServer};
use std::time::Duration;

const PLAYERS: usize = 20;
/// Concurrent senders unless `FAULTS_WORKERS` says otherwise.
const WORKERS: usize = 16;
/// Share of requests that resend a token already sent.
const REPLAY_SHARE: f64 = 0.35;
const GRACE_SECS: u64 = 3;

/// Kill -9, Redis and PostgreSQL restarts and a graceful restart, all under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_updates_survive_crashes_and_restarts_exactly_once() {
    let _heavy = scoreboard_tests::heavy().await;
    let seconds: f64 = scoreboard_tests::env_or("FAULTS_SECONDS", 12.0);
    let step = Duration::from_secs_f64(seconds / 8.0);
    let mut pg = PgServer::start_durable().await.unwrap();
    let db_url = pg.create_database("faults").await.unwrap();
    let mut redis = RedisServer::start().await.unwrap();
    let grace = format!("{GRACE_SECS}s");
    let vars = process_vars(
        &db_url,
        &[
            ("REDIS_URL", &redis.url()),
            ("REDIS_KEY_PREFIX", "faults:"),
            ("REDIS_SYNC_INTERVAL", "2000"),
            ("SHUTDOWN_GRACE_PERIOD", &grace),
        ],
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut agg = AggregatorProcess::start(BIN, &vars).await;
    let base = agg.base.clone();
    let edge = EdgeServer::start_for_load(&base, None).await.unwrap();

    let players = client::guests(&http, &base, "Faulty ", PLAYERS).await;
    let (status, sse) =
        SseClient::connect(&format!("{}/api/leaderboard/stream", edge.url()), None).await;
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    sse.next_snapshot(Duration::from_secs(15)).await.unwrap();

    let load = PlayerLoad::start(
        &edge.url(),
        &players,
        LoadOptions {
            workers: scoreboard_tests::env_or("FAULTS_WORKERS", WORKERS),
            replay_share: REPLAY_SHARE,
            pause: None,
        },
    );

    // The faults, one step apart.
    tokio::time::sleep(step).await;
    agg.kill().await; // SIGKILL
    tokio::time::sleep(step / 2).await;
    agg = AggregatorProcess::start(BIN, &vars).await;

    tokio::time::sleep(step).await;
    redis.stop();
    tokio::time::sleep(step / 2).await;
    redis.start_again().await.unwrap();

    tokio::time::sleep(step).await;
    pg.stop();
    tokio::time::sleep(step / 2).await;
    pg.start_again().await.unwrap();
    agg.ready().await;

    tokio::time::sleep(step).await;
    let (clean, took) = agg.terminate(Duration::from_secs(GRACE_SECS + 5)).await;
    assert!(
        clean,
        "SIGTERM ends the aggregator with 0 within its grace period"
    );
    let restarted = AggregatorProcess::start(BIN, &vars).await;

    tokio::time::sleep(step).await;
    let report = load.stop().await;

    // Every request was answered; none hung until the client gave up.
    let (requests, replays) = (report.requests, report.replays);
    assert_eq!(report.timed_out, 0, "a request hung");
    assert!(
        took < Duration::from_secs(GRACE_SECS + 2),
        "SIGTERM took {took:?}"
    );
    assert!(
        replays * 100 >= requests * 30,
        "{replays} replays of {requests}"
    );

    // Exactly once, against PostgreSQL.
    let db = sqlx::PgPool::connect(&db_url).await.unwrap();
    let ids: Vec<String> = players.iter().map(|p| p.id.clone()).collect();
    let acknowledged = report.ledger.acknowledged();
    let v = report.ledger.verify(&db, &ids).await.unwrap();
    println!(
        "{requests} requests, {replays} replays, {acknowledged} acknowledged; exactly once: {v}"
    );
    assert!(v.ok, "exactly once: {v}");
    assert!(
        acknowledged >= 50,
        "too little load got through: {acknowledged}"
    );

    // Redis agrees with PostgreSQL once the sync has run: player reads come from Redis.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let metrics = client::get_text(&http, &restarted.metrics).await;
    assert!(
        metrics.lines().any(|l| l == "redis_up 1"),
        "Redis is back in use: {:?}",
        metrics
            .lines()
            .filter(|l| l.contains("redis"))
            .collect::<Vec<_>>()
    );
    let totals: Vec<(String, i64)> =
        sqlx::query_as("SELECT player_id, value FROM entries WHERE board_id = 'global' AND period = 'all' AND player_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&db)
            .await
            .unwrap();
    for (id, score) in &totals {
        let view: PlayerView = client::get_json(&http, &format!("{base}/api/players/{id}")).await;
        assert_eq!(view.score, *score, "Redis differs for {id}");
    }

    // The SSE client of the edge, never reconnected, ends on the final top 10. (The board's
    // version can be newer than the last snapshot sent: subscribers are woken only when the
    // rows change, so the rows are what must match.)
    let board: serde_json::Value =
        client::get_json(&http, &format!("{base}/api/leaderboard")).await;
    let last = sse.until_top(&board["top"], Duration::from_secs(30)).await;
    assert_eq!(
        last["top"], board["top"],
        "the SSE client through the edge reached the final top 10"
    );
    assert!(last["version"].as_i64() <= board["version"].as_i64());
}
