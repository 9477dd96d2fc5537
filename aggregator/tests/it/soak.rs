//! A soak: a steady load through the edge for a while — players redeeming fresh and replayed
//! tokens, readers of the board and of players, SSE clients coming and going through the edge
//! and straight at the aggregator — while the aggregator's resident memory, open descriptors,
//! sockets and connection gauges (and workerd's memory) are sampled over time. Nothing may
//! grow without bound, every connection must be given back when its client leaves, and the
//! run ends exactly once.
//!
//! `SOAK_SECONDS` (default 20) sets the length, `SOAK_SAMPLE_SECONDS` (default 1) the sampling
//! interval, and `SOAK_OUT` a JSON file for the samples, which `bench/soak_chart.py` turns into
//! a chart (`scripts/soak` does both: RELIABILITY.md has the long runs).

use crate::helpers::{process_vars, BIN};
use scoreboard_tests::client;
use scoreboard_tests::player_load::{LoadOptions, PlayerLoad};
use scoreboard_tests::sse::SseClient;
use scoreboard_tests::{fresh_database, AggregatorProcess, EdgeServer, ProcStats, RedisServer};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PLAYERS: usize = 20;
/// Senders, each pausing 100 ms after an answer: a steady ~50–80 updates/s, what the local
/// edge sustains without saturating (a soak is not a benchmark).
const WORKERS: usize = 8;
/// SSE clients kept connected at any time on each path, each replaced after a few messages.
const CHURNING_CLIENTS: usize = 10;
/// Leeway for the pool's connections and the process's own descriptors, which grow with
/// load up to a bound (`DATABASE_POOL_MAX` = 10 here) and are kept.
const FD_SLACK: usize = 16;

#[derive(Debug, Serialize, Clone)]
struct Sample {
    /// Seconds since the load started.
    t: f64,
    aggregator: ProcStats,
    workerd: ProcStats,
    sse_connections_active: f64,
    ws_subscribers_active: f64,
    requests: usize,
    sse_sessions: usize,
    phase: &'static str,
}

/// SSE clients that connect, read one to three messages and leave, over and over.
fn churn(
    url: String,
    stop: Arc<AtomicBool>,
    sessions: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            if let (200, Some(mut c)) = SseClient::connect(&url, None).await {
                sessions.fetch_add(1, Ordering::Relaxed);
                for _ in 0..1 + n % 3 {
                    if c.next_snapshot(Duration::from_secs(5)).await.is_none() {
                        break;
                    }
                }
                // Stays a moment, as a page does, then leaves without a word.
                tokio::time::sleep(Duration::from_millis(300 + n % 700)).await;
            } else {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    })
}

/// Reads the board and players' pages at a steady pace.
fn reader(base: String, ids: Vec<String>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let url = if n % 2 == 0 {
                format!("{base}/api/leaderboard")
            } else {
                format!("{base}/api/players/{}", ids[n % ids.len()])
            };
            if let Ok(r) = http.get(url).send().await {
                assert_eq!(r.status(), 200, "a read failed under the soak");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// A steady load for `SOAK_SECONDS`: bounded memory and descriptors, everything given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_steady_load_holds_memory_and_descriptors_level_and_gives_back_every_connection() {
    let _heavy = scoreboard_tests::heavy().await;
    let seconds = scoreboard_tests::env_or("SOAK_SECONDS", 20.0);
    let interval = Duration::from_secs_f64(scoreboard_tests::env_or("SOAK_SAMPLE_SECONDS", 1.0));
    let db = fresh_database().await.unwrap();
    let redis = RedisServer::start().await.unwrap();
    let vars = process_vars(
        &db.url,
        &[
            ("REDIS_URL", &redis.url()),
            ("DATABASE_POOL_MAX", "10"),
            ("SSE_PING_INTERVAL", "1000"),
        ],
    );
    let agg = AggregatorProcess::start(BIN, &vars).await;
    let edge = EdgeServer::start_for_load(&agg.base, None).await.unwrap();
    let workerd = edge.workerd_pid();
    let http = reqwest::Client::new();
    let players = client::guests(&http, &agg.base, "Soaker ", PLAYERS).await;
    let ids: Vec<String> = players.iter().map(|p| p.id.clone()).collect();

    // One client on each path stays for the whole run, reading as a page does, and must end
    // on the final board without reconnecting.
    let stream = |base: &str| format!("{base}/api/leaderboard/stream");
    let mut steady = Vec::new();
    for base in [edge.url(), agg.base.clone()] {
        let (status, c) = SseClient::connect(&stream(&base), None).await;
        assert_eq!(status, 200);
        let mut c = c.unwrap();
        let (_, first) = c.next_snapshot(Duration::from_secs(15)).await.unwrap();
        let (tx, rx) = tokio::sync::watch::channel(first["top"].clone());
        tokio::spawn(async move {
            while let Some((_, snap)) = c.next_snapshot(Duration::from_secs(3600)).await {
                let _ = tx.send(snap["top"].clone());
            }
        });
        steady.push((base, rx));
    }
    let idle = agg.stats();

    let stop = Arc::new(AtomicBool::new(false));
    let sessions = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for base in [edge.url(), agg.base.clone()] {
        for _ in 0..CHURNING_CLIENTS {
            tasks.push(churn(stream(&base), stop.clone(), sessions.clone()));
        }
    }
    tasks.push(reader(agg.base.clone(), ids.clone(), stop.clone()));
    let load = PlayerLoad::start(
        &edge.url(),
        &players,
        LoadOptions {
            workers: WORKERS,
            replay_share: 0.3,
            pause: Some(Duration::from_millis(100)),
        },
    );

    let started = Instant::now();
    let mut samples = Vec::new();
    let sample = |phase: &'static str, requests: usize| {
        let agg = &agg;
        let http = &http;
        let sessions = &sessions;
        async move {
            let metrics = client::get_text(http, &agg.metrics).await;
            Sample {
                t: started.elapsed().as_secs_f64(),
                aggregator: agg.stats(),
                workerd: workerd.map(ProcStats::of).unwrap_or_default(),
                sse_connections_active: client::metric(&metrics, "sse_connections_active"),
                ws_subscribers_active: client::metric(&metrics, "ws_subscribers_active"),
                requests,
                sse_sessions: sessions.load(Ordering::Relaxed),
                phase,
            }
        }
    };
    while started.elapsed() < Duration::from_secs_f64(seconds) {
        tokio::time::sleep(interval).await;
        samples.push(sample("load", load.requests()).await);
    }
    stop.store(true, Ordering::Relaxed);
    let report = load.stop().await;
    for t in tasks {
        t.await.unwrap();
    }
    // The departed clients are noticed at the next ping (1 s here); then only the two steady
    // clients remain: one direct stream and the edge hub's WebSocket.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = sample("after", report.requests).await;
    while (after.sse_connections_active, after.ws_subscribers_active) != (1.0, 1.0)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
        after = sample("after", report.requests).await;
    }
    samples.push(after.clone());
    if let Ok(path) = std::env::var("SOAK_OUT") {
        let out = serde_json::json!({
            "seconds": seconds,
            "workers": WORKERS,
            "churning_clients_per_path": CHURNING_CLIENTS,
            "requests": report.requests,
            "replays": report.replays,
            "statuses": report.statuses,
            "idle": idle,
            "samples": samples,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    }

    // Exactly once, whatever the length.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let v = report.ledger.verify(&pool, &ids).await.unwrap();
    println!(
        "{} requests ({} replays), {} SSE sessions, answers {:?}; exactly once: {v}",
        report.requests, report.replays, after.sse_sessions, report.statuses
    );
    assert!(v.ok, "exactly once: {v}");
    assert_eq!(report.timed_out, 0, "a request hung");
    assert!(
        after.sse_sessions > CHURNING_CLIENTS * 2,
        "the SSE clients churned"
    );

    // Every connection was given back: the gauges and the sockets are where they started.
    assert_eq!(
        (after.sse_connections_active, after.ws_subscribers_active),
        (1.0, 1.0),
        "connections left behind"
    );
    assert!(
        after.aggregator.sockets <= idle.sockets + FD_SLACK
            && after.aggregator.fds <= idle.fds + FD_SLACK,
        "descriptors left behind: {idle:?} idle, {:?} after",
        after.aggregator
    );
    // Memory levels off: the second half of the run peaks no higher than the first half's
    // peak plus a margin for the allocator (a leak of the run's size would show as a climb).
    let loaded: Vec<&Sample> = samples.iter().filter(|s| s.phase == "load").collect();
    let half = loaded.len() / 2;
    let peak = |s: &[&Sample]| s.iter().map(|s| s.aggregator.rss_kib).max().unwrap_or(0);
    let (first, second) = (peak(&loaded[..half]), peak(&loaded[half..]));
    println!(
        "aggregator rss: idle {} KiB, first half peak {first} KiB, second half peak {second} KiB, \
         after {} KiB; fds idle {} after {}",
        idle.rss_kib, after.aggregator.rss_kib, idle.fds, after.aggregator.fds
    );
    assert!(
        second <= first + first / 4 + 4096,
        "resident memory kept climbing: {first} KiB then {second} KiB"
    );

    // The steady clients end on the final top 10.
    let board: serde_json::Value =
        client::get_json(&http, &format!("{}/api/leaderboard", agg.base)).await;
    for (base, mut rx) in steady {
        let reached = tokio::time::timeout(
            Duration::from_secs(20),
            rx.wait_for(|top| *top == board["top"]),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        assert!(
            reached,
            "the steady SSE client of {base} missed the end: {} vs {}",
            *rx.borrow(),
            board["top"]
        );
    }
}
