//! Faults under load, end to end: while players redeem fresh and replayed tokens through the
//! edge (workerd), the aggregator process is killed with SIGKILL and started again, Redis is
//! stopped and started, PostgreSQL is restarted, and the aggregator is stopped gracefully with
//! SIGTERM and started again. Afterwards every acknowledged update is applied exactly once,
//! nothing refused was applied, totals match, Redis agrees with PostgreSQL, and an SSE client
//! of the edge ends on the final version without reconnecting.
//!
//! `FAULTS_SECONDS` (default 12) stretches the run for the longer form in RELIABILITY.md.

use scoreboard_protocol::action::{ActionTokens, MintRequest};
use scoreboard_protocol::jwt::HmacSecret;
use scoreboard_protocol::{ActionName, PlayerId};
use scoreboard_tests::client;
use scoreboard_tests::exactly_once::Ledger;
use scoreboard_tests::sse::SseClient;
use scoreboard_tests::stack::{aggregator_vars, ACTION_SECRET, EDGE_SECRET, JWT_SECRET};
use scoreboard_tests::{free_port, EdgeServer, PgServer, RedisServer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scoreboard-aggregator");
const PLAYERS: usize = 20;
const WORKERS: usize = 16;
/// Share of requests that resend a token already sent.
const REPLAY_SHARE: f64 = 0.35;
const GRACE_SECS: u64 = 3;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The aggregator as a process of its own, so that it can be killed for real.
fn spawn(vars: &HashMap<String, String>) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .arg("serve")
        .env_clear()
        .envs(vars)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the aggregator binary starts")
}

async fn ready(http: &reqwest::Client, base: &str) {
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/health/ready")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the aggregator at {base} did not become ready");
}

struct Load {
    ledger: Mutex<Ledger>,
    /// (player index, jti, token) of every token sent so far, for replays.
    sent: Mutex<Vec<(usize, String, String)>>,
    requests: AtomicUsize,
    replays: AtomicUsize,
    timed_out: AtomicUsize,
    stop: AtomicBool,
}

/// Kill -9, Redis and PostgreSQL restarts and a graceful restart, all under load.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_updates_survive_crashes_and_restarts_exactly_once() {
    let seconds: f64 = std::env::var("FAULTS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12.0);
    let step = Duration::from_secs_f64(seconds / 8.0);
    let mut pg = PgServer::start_durable().await.unwrap();
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await.unwrap();
    sqlx::query("CREATE DATABASE faults")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let db_url = pg.url("faults");
    let mut redis = RedisServer::start().await.unwrap();
    let port = free_port();
    let mut vars = aggregator_vars(&db_url);
    for (k, v) in [
        ("PORT", port.to_string()),
        ("METRICS_PORT", free_port().to_string()),
        ("REDIS_URL", redis.url()),
        ("REDIS_KEY_PREFIX", "faults:".into()),
        ("REDIS_SYNC_INTERVAL", "2000".into()),
        ("SHUTDOWN_GRACE_PERIOD", format!("{GRACE_SECS}s")),
        ("LOG_LEVEL", "error".into()),
    ] {
        vars.insert(k.into(), v);
    }
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut agg = spawn(&vars);
    ready(&http, &base).await;
    let edge = EdgeServer::start(&[
        ("AGGREGATOR_URL", base.as_str()),
        ("EDGE_FORWARD_SECRET", EDGE_SECRET),
        ("JWT_SECRET", JWT_SECRET),
        ("ACTION_TOKEN_SECRET", ACTION_SECRET),
        ("RATE_LIMIT_SCORE_UPDATE", "1000000"),
        ("SSE_PING_INTERVAL", "1000"),
    ])
    .await
    .unwrap();

    let mut players = Vec::new();
    for i in 0..PLAYERS {
        let g = client::guest(&http, &base, &format!("Faulty {i}")).await;
        players.push((g.id, g.token));
    }
    let players = Arc::new(players);
    let (status, sse) =
        SseClient::connect(&format!("{}/api/leaderboard/stream", edge.url()), None).await;
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    sse.next_snapshot(Duration::from_secs(15)).await.unwrap();

    let load = Arc::new(Load {
        ledger: Mutex::new(Ledger::new()),
        sent: Mutex::new(Vec::new()),
        requests: AtomicUsize::new(0),
        replays: AtomicUsize::new(0),
        timed_out: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let tokens = Arc::new(ActionTokens::from_secret(HmacSecret::new(
        ACTION_SECRET.as_bytes(),
    )));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (load, players, tokens, http) =
            (load.clone(), players.clone(), tokens.clone(), http.clone());
        let url = format!("{}/api/scores", edge.url());
        workers.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !load.stop.load(Ordering::Relaxed) {
                n += 1;
                let replay = rand::random::<f64>() < REPLAY_SHARE;
                let earlier = if replay {
                    let sent = load.sent.lock().unwrap();
                    (!sent.is_empty()).then(|| sent[rand::random::<usize>() % sent.len()].clone())
                } else {
                    None
                };
                let (p, jti, token) = match earlier {
                    Some(e) => {
                        load.replays.fetch_add(1, Ordering::Relaxed);
                        e
                    }
                    None => {
                        let p = (w * 7 + n) % players.len();
                        let pts = 1 + (n as i64 % 9);
                        let m = tokens
                            .mint(
                                &MintRequest {
                                    player: &PlayerId::parse(players[p].0.as_str()).unwrap(),
                                    action: &ActionName::parse("fault").unwrap(),
                                    points: pts,
                                    min_seconds: 0,
                                    ttl_secs: 600,
                                },
                                &rand::random::<[u8; 16]>(),
                                now(),
                            )
                            .unwrap();
                        load.ledger.lock().unwrap().minted(&m.claims.jti);
                        let entry = (p, m.claims.jti, m.token);
                        load.sent.lock().unwrap().push(entry.clone());
                        entry
                    }
                };
                let r = http
                    .post(&url)
                    // A fresh address per request: the per-IP binding is not under test.
                    .header(
                        "cf-connecting-ip",
                        format!("10.{}.{}.{}", w, n / 256 % 256, n % 256),
                    )
                    .bearer_auth(&players[p].1)
                    .json(&json!({"action_token": token}))
                    .send()
                    .await;
                let status = match r {
                    Ok(r) => r.status().as_u16(),
                    Err(e) => {
                        if e.is_timeout() {
                            load.timed_out.fetch_add(1, Ordering::Relaxed);
                        }
                        0
                    }
                };
                load.requests.fetch_add(1, Ordering::Relaxed);
                load.ledger.lock().unwrap().answered(&jti, status);
                if status == 503 || status == 0 {
                    // Back off a little, as a client told Retry-After would.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }

    // The faults, one step apart.
    tokio::time::sleep(step).await;
    agg.start_kill().unwrap(); // SIGKILL
    let _ = agg.wait().await;
    tokio::time::sleep(step / 2).await;
    agg = spawn(&vars);
    ready(&http, &base).await;

    tokio::time::sleep(step).await;
    redis.stop();
    tokio::time::sleep(step / 2).await;
    redis.start_again().await.unwrap();

    tokio::time::sleep(step).await;
    pg.stop();
    tokio::time::sleep(step / 2).await;
    pg.start_again().await.unwrap();
    ready(&http, &base).await;

    tokio::time::sleep(step).await;
    let pid = agg.id().unwrap();
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let stopped = Instant::now();
    let exit = tokio::time::timeout(Duration::from_secs(GRACE_SECS + 5), agg.wait())
        .await
        .expect("SIGTERM ends the aggregator within its grace period");
    assert!(exit.unwrap().success(), "a graceful stop exits 0");
    let took = stopped.elapsed();
    // Kept until the end of the test (killed on drop).
    let _restarted = spawn(&vars);
    ready(&http, &base).await;

    tokio::time::sleep(step).await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    // Every request was answered; none hung until the client gave up.
    let requests = load.requests.load(Ordering::Relaxed);
    let replays = load.replays.load(Ordering::Relaxed);
    assert_eq!(load.timed_out.load(Ordering::Relaxed), 0, "a request hung");
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
    let ids: Vec<String> = players.iter().map(|(id, _)| id.clone()).collect();
    let ledger = std::mem::take(&mut *load.ledger.lock().unwrap());
    let acknowledged = ledger.acknowledged();
    let v = ledger.verify(&db, &ids).await.unwrap();
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
    let metrics = client::get_text(
        &http,
        &format!("http://127.0.0.1:{}/metrics", vars["METRICS_PORT"]),
    )
    .await;
    assert!(
        metrics.lines().any(|l| l == "redis_up 1"),
        "Redis is back in use: {:?}",
        metrics
            .lines()
            .filter(|l| l.contains("redis"))
            .collect::<Vec<_>>()
    );
    let totals: Vec<(String, i64)> =
        sqlx::query_as("SELECT player_id, score FROM scores WHERE player_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&db)
            .await
            .unwrap();
    for (id, score) in &totals {
        let view = client::get_json(&http, &format!("{base}/api/players/{id}")).await;
        assert_eq!(
            view["score"].as_i64(),
            Some(*score),
            "Redis differs for {id}"
        );
    }

    // The SSE client of the edge, never reconnected, ends on the final top 10. (The board's
    // version can be newer than the last snapshot sent: subscribers are woken only when the
    // rows change, so the rows are what must match.)
    let board = client::get_json(&http, &format!("{base}/api/leaderboard")).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while last["top"] != board["top"] && Instant::now() < deadline {
        match sse.next_snapshot(Duration::from_secs(30)).await {
            Some((_, snap)) => last = snap,
            None => break,
        }
    }
    assert_eq!(
        last["top"], board["top"],
        "the SSE client through the edge reached the final top 10"
    );
    assert!(last["version"].as_i64() <= board["version"].as_i64());
}
