//! Benchmark of the player path through the edge: `POST /api/scores` (session JWT + action
//! token, PlayerGate, forwarding) in workerd under `wrangler dev`, against an in-process
//! aggregator with PostgreSQL (fsync on) and Redis. Reports requests/s, latency, the workerd
//! CPU time per request (from /proc) and the wasm size.
//!
//! `cargo run --release -p scoreboard-tests --example edge_bench -- [requests] [concurrency]`
//! (after `scripts/build-edge`).

use futures_util::stream::{self, StreamExt};
use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::Application;
use scoreboard_tests::{EdgeServer, PgServer, RedisServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use scoreboard_tests::stack::{
    aggregator_vars, ACTION_SECRET as ACTION, EDGE_SECRET as EDGE, JWT_SECRET as JWT,
};
const PLAYERS: usize = 50;

/// CPU seconds (user + system) of every workerd process.
fn workerd_cpu_secs() -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = std::fs::read_to_string(entry.path().join("cmdline")) else {
            continue;
        };
        if !cmd.contains("workerd") || !cmd.contains("serve") {
            continue;
        }
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            let utime: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let stime: f64 = fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
            total += (utime + stime) / tick;
        }
    }
    total
}

/// Players come from many addresses, as they would: the per-IP binding (100/min) is not what
/// this measures.
fn client_ip(k: usize) -> String {
    format!("10.{}.{}.{}", (k >> 16) & 255, (k >> 8) & 255, k & 255)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(3000);
    let concurrency = args.get(1).copied().unwrap_or(32);
    let pg = PgServer::start_durable().await?;
    let redis = RedisServer::start().await?;
    let db_url = pg.url("postgres");
    let redis_url = redis.url();
    let mut vars = aggregator_vars(&db_url);
    vars.insert("REDIS_URL".into(), redis_url.clone());
    vars.insert("LOG_LEVEL".into(), "error".into());
    vars.insert("RATE_LIMIT_IP".into(), "1000000".into());
    let app =
        Application::build(Config::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?).await?;
    let agg = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let edge = EdgeServer::start(&[
        ("AGGREGATOR_URL", agg.as_str()),
        ("EDGE_FORWARD_SECRET", EDGE),
        ("JWT_SECRET", JWT),
        ("ACTION_TOKEN_SECRET", ACTION),
        ("RATE_LIMIT_SCORE_UPDATE", "1000000"),
        (
            "ACTION_CATALOG",
            r#"{"tap": {"points": 1, "min_seconds": 0}}"#,
        ),
    ])
    .await?;
    let base = edge.url();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    // Sessions come from the aggregator directly (the per-IP binding limits sign-ins at the
    // edge); action tokens are minted through the edge, before the clock starts.
    let mut sessions = Vec::new();
    for i in 0..PLAYERS {
        let v: Value = http
            .post(format!("{agg}/api/auth/guest"))
            .json(&json!({"name": format!("Bench {i}")}))
            .send()
            .await?
            .json()
            .await?;
        sessions.push(v["token"].as_str().unwrap_or_default().to_owned());
    }
    let mut tokens = Vec::with_capacity(requests);
    for k in 0..requests {
        let s = &sessions[k % PLAYERS];
        let v: Value = http
            .post(format!("{base}/api/actions"))
            .header("cf-connecting-ip", client_ip(k))
            .bearer_auth(s)
            .json(&json!({"action": "tap"}))
            .send()
            .await?
            .json()
            .await?;
        tokens.push((
            s.clone(),
            v["action_token"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    let cpu_before = workerd_cpu_secs();
    let started = Instant::now();
    let results: Vec<(u16, Duration)> = stream::iter(tokens.iter())
        .enumerate()
        .map(|(k, (s, t))| {
            let req = http
                .post(format!("{base}/api/scores"))
                .header("cf-connecting-ip", client_ip(k))
                .bearer_auth(s)
                .json(&json!({"action_token": t}));
            async move {
                let t0 = Instant::now();
                let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
                (status, t0.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = workerd_cpu_secs() - cpu_before;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let mut lat: Vec<f64> = results
        .iter()
        .map(|(_, d)| d.as_secs_f64() * 1000.0)
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    let wasm = std::fs::metadata(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../edge-worker/build/index_bg.wasm"
    ))?
    .len();
    println!("| requests | concurrency | 200s | req/s | p50 ms | p99 ms | workerd CPU ms/request | wasm bytes |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {requests} | {concurrency} | {ok} | {:.0} | {:.1} | {:.1} | {:.2} | {wasm} |",
        ok as f64 / elapsed,
        p(0.5),
        p(0.99),
        cpu * 1000.0 / requests as f64
    );
    let total: i64 = {
        let pool = sqlx::PgPool::connect(&db_url).await?;
        sqlx::query_scalar("SELECT coalesce(sum(score), 0)::bigint FROM scores")
            .fetch_one(&pool)
            .await?
    };
    anyhow::ensure!(
        total == ok as i64,
        "exactly-once check failed: {total} points for {ok} acknowledged"
    );
    println!("\nexactly once: {total} points applied for {ok} acknowledged updates");
    Ok(())
}
