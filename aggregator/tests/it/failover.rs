//! Two regions and a DNS-style failover, end to end: two aggregator processes ("regions", each
//! with its own Redis) share one PostgreSQL; the edge (workerd) reaches them through one host
//! name, `AGGREGATOR_URL = http://aggregator.region.test:<port>`, which the test moves from one
//! region's address to the other's as an operator's DNS change would. While players redeem
//! fresh and replayed tokens through the edge, region A is killed as the name moves to B
//! (failover), then A comes back, the name moves back and B is drained with SIGTERM
//! (fail-back). Nothing acknowledged is lost or doubled, the edge's retries hide the switch
//! from players, and the edge's hub follows the name without its SSE client doing anything.
//!
//! The edge resolves the name with a hosts file of the test's own, bind-mounted over
//! `/etc/hosts` in a private mount namespace of `wrangler dev` (needs root or unprivileged user
//! namespaces). `FAILOVER_SECONDS` (default 10) stretches the run.

use crate::helpers::BIN;
use scoreboard_tests::client;
use scoreboard_tests::player_load::{LoadOptions, PlayerLoad};
use scoreboard_tests::sse::SseClient;
use scoreboard_tests::stack::aggregator_vars;
use scoreboard_tests::{AggregatorProcess, EdgeServer, HostsFile, PgServer, RedisServer};
use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

const NAME: &str = "aggregator.region.test";
const REGION_A: &str = "127.0.0.2";
const REGION_B: &str = "127.0.0.3";
const PLAYERS: usize = 12;
const WORKERS: usize = 12;
const REPLAY_SHARE: f64 = 0.35;
const GRACE_SECS: u64 = 3;

/// A port free on both regions' addresses: the name moves, the port in the URL does not.
fn port_free_on_both() -> u16 {
    for _ in 0..100 {
        let a = TcpListener::bind((REGION_A, 0)).expect("127.0.0.2 is a loopback address");
        let port = a.local_addr().unwrap().port();
        if TcpListener::bind((REGION_B, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both {REGION_A} and {REGION_B}");
}

fn free_port_on(address: &str) -> u16 {
    TcpListener::bind((address, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A metric's value (the sum over its label sets), 0 when absent.
async fn metric(http: &reqwest::Client, metrics_url: &str, name: &str) -> f64 {
    client::metric(&client::get_text(http, metrics_url).await, name)
}

/// Waits until `metric` on the region is `want` (hubs reconnect with backoff and jitter).
async fn wait_metric(http: &reqwest::Client, region: &AggregatorProcess, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = metric(http, &region.metrics, name).await;
    while seen != want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        seen = metric(http, &region.metrics, name).await;
    }
    assert_eq!(seen, want, "{name} at {}", region.base);
}

/// How long a forwarded request may keep retrying (three attempts, backoff ~0.1 and ~0.3 s,
/// connection refusals answered at once), with a margin for a loaded machine.
const RETRY_BUDGET: Duration = Duration::from_millis(1500);

/// Polls the edge's `/health` until it reaches the aggregator again; returns how long it took.
async fn edge_recovers(http: &reqwest::Client, edge: &str) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = http.get(format!("{edge}/health")).send().await {
            if r.status() == 200 {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the edge never reached the aggregator through the moved name");
}

/// Failover to region B while A dies, then fail-back to A while B drains: exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_edge_follows_a_dns_failover_between_regions_and_loses_nothing() {
    let _heavy = scoreboard_tests::heavy().await;
    let seconds: f64 = scoreboard_tests::env_or("FAILOVER_SECONDS", 10.0);
    let step = Duration::from_secs_f64(seconds / 4.0);
    let pg = PgServer::start_durable().await.unwrap();
    let db_url = pg.create_database("failover").await.unwrap();
    let (redis_a, redis_b) = (
        RedisServer::start().await.unwrap(),
        RedisServer::start().await.unwrap(),
    );
    let port = port_free_on_both();
    let region = |address: &str, redis: &RedisServer| -> HashMap<String, String> {
        let mut vars = aggregator_vars(&db_url);
        for (k, v) in [
            ("BIND_ADDR", address.to_owned()),
            ("PORT", port.to_string()),
            ("METRICS_PORT", free_port_on(address).to_string()),
            ("REDIS_URL", redis.url()),
            ("SHUTDOWN_GRACE_PERIOD", format!("{GRACE_SECS}s")),
            ("SSE_PING_INTERVAL", "1000".into()),
            ("LOG_LEVEL", "error".into()),
        ] {
            vars.insert(k.into(), v);
        }
        vars
    };
    let (vars_a, vars_b) = (region(REGION_A, &redis_a), region(REGION_B, &redis_b));
    let mut a = AggregatorProcess::start(BIN, &vars_a).await;
    let mut b = AggregatorProcess::start(BIN, &vars_b).await;

    let hosts = HostsFile::new(NAME, REGION_A).unwrap();
    let url = format!("http://{NAME}:{port}");
    let edge = EdgeServer::start_for_load(&url, Some(&hosts))
        .await
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let players = client::guests(&http, &edge.url(), "Traveller ", PLAYERS).await;
    let (status, sse) =
        SseClient::connect(&format!("{}/api/leaderboard/stream", edge.url()), None).await;
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    sse.next_snapshot(Duration::from_secs(15)).await.unwrap();
    // The name points at A: the edge's hub is A's subscriber, B has none.
    wait_metric(&http, &a, "ws_subscribers_active", 1.0).await;
    assert_eq!(
        metric(&http, &b.metrics, "ws_subscribers_active").await,
        0.0
    );

    let load = PlayerLoad::start(
        &edge.url(),
        &players,
        LoadOptions {
            workers: WORKERS,
            replay_share: REPLAY_SHARE,
            pause: None,
        },
    );
    tokio::time::sleep(step).await;

    // Failover: the name moves to B and region A dies at once, with requests in flight. The
    // edge reaches B as soon as its resolver returns the new address; until then it retries
    // within its budget and answers 503 + Retry-After, with the token kept for the retry.
    hosts.point(REGION_B).unwrap();
    a.kill().await;
    let failed_over = Instant::now();
    let recovered = edge_recovers(&http, &edge.url()).await;
    tokio::time::sleep(step).await;
    // The hub followed the name; B applies what players send.
    wait_metric(&http, &b, "ws_subscribers_active", 1.0).await;
    assert!(
        metric(&http, &b.metrics, "score_updates_total").await > 0.0,
        "region B took over the updates"
    );

    // Fail-back: A returns and the name moves back. The edge keeps using the connections it
    // has open to B (it resolves the name again only for new ones), so B is drained with
    // SIGTERM: it answers what it has in flight and closes them, and the edge follows.
    a = AggregatorProcess::start(BIN, &vars_a).await;
    hosts.point(REGION_A).unwrap();
    let moved_back = metric(&http, &b.metrics, "score_updates_total").await;
    tokio::time::sleep(step / 2).await;
    let kept_on_b = metric(&http, &b.metrics, "score_updates_total").await - moved_back;
    let drained = Instant::now();
    let (clean, took) = b.terminate(Duration::from_secs(GRACE_SECS + 5)).await;
    assert!(clean, "region B drains and exits 0 on SIGTERM");
    assert!(
        took < Duration::from_secs(GRACE_SECS + 2),
        "draining B took {took:?}"
    );
    let recovered_back = drained.elapsed() + edge_recovers(&http, &edge.url()).await;
    wait_metric(&http, &a, "ws_subscribers_active", 1.0).await;
    tokio::time::sleep(step).await;
    let report = load.stop().await;

    // When players were told to come back later: only after a region's connections went
    // away and until the edge's next look-up of the name found the other region (plus one
    // retry budget for requests in flight).
    let count = |from: Instant, to: Instant| {
        report
            .unavailable_at
            .iter()
            .filter(|t| **t >= from && **t < to)
            .count()
    };
    let (over_until, back_until) = (
        failed_over + recovered + RETRY_BUDGET,
        drained + recovered_back + RETRY_BUDGET,
    );
    let (during_failover, during_failback) =
        (count(failed_over, over_until), count(drained, back_until));
    println!(
        "failover: the edge reached region B {recovered:?} after region A died and the name \
         moved ({during_failover} requests answered 503 meanwhile); fail-back: {kept_on_b} \
         updates still went to B on open connections after the name moved back, the edge \
         reached A {recovered_back:?} after B began to drain ({during_failback} answered 503); \
         answers {:?}",
        report.statuses
    );
    assert_eq!(
        report.unavailable_at.len(),
        during_failover + during_failback,
        "503s outside the two switches: {:?}",
        report.statuses
    );
    assert_eq!(report.timed_out, 0, "a request hung");
    assert!(
        report.replays * 100 >= report.requests * 30,
        "{} replays of {}",
        report.replays,
        report.requests
    );
    assert!(
        report.statuses.get(&200).copied().unwrap_or(0) > 100,
        "too little load got through: {:?}",
        report.statuses
    );

    let db = sqlx::PgPool::connect(&db_url).await.unwrap();
    let ids: Vec<String> = players.iter().map(|p| p.id.clone()).collect();
    let acknowledged = report.ledger.acknowledged();
    let v = report.ledger.verify(&db, &ids).await.unwrap();
    println!(
        "{} requests, {} replays, {acknowledged} acknowledged; exactly once: {v}",
        report.requests, report.replays
    );
    assert!(v.ok, "exactly once: {v}");

    // The SSE client of the edge, never reconnected, ends on the final top 10 (rows, not the
    // version: subscribers are woken only when the rows change).
    let board: serde_json::Value =
        client::get_json(&http, &format!("{}/api/leaderboard", a.base)).await;
    let last = sse.until_top(&board["top"], Duration::from_secs(30)).await;
    assert_eq!(
        last["top"], board["top"],
        "the SSE client through the edge reached the final top 10"
    );
}
