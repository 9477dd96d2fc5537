//! Benchmark of the apply path: signed `POST /internal/scores` at a fixed concurrency against
//! two aggregators in the same run, one with group commit (`APPLY_BATCH_MAX=512`) and one
//! without (`APPLY_BATCH_MAX=1`), each on its own database of one throwaway PostgreSQL with
//! fsync on. Prints applied/s and latency percentiles, and verifies exactly-once at the end
//! (acknowledged updates = events, acknowledged points = the sum of totals).
//!
//! `cargo run --release -p scoreboard-aggregator --example apply_bench -- [requests]
//! [unbatched_requests] [concurrency]`

use futures_util::stream::{self, StreamExt};
use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::Application;
use scoreboard_protocol::action::{ActionTokens, MintRequest};
use scoreboard_protocol::jwt::HmacSecret;
use scoreboard_protocol::session::{SessionIssuer, SessionPolicy, SessionSigningKey};
use scoreboard_protocol::{edge_signature, ActionName, PlayerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use scoreboard_tests::stack::{
    aggregator_vars, ACTION_SECRET as ACTION, EDGE_SECRET as EDGE, JWT_SECRET as JWT,
};
const PLAYERS: usize = 500;

struct Run {
    label: &'static str,
    requests: usize,
    ok: usize,
    errors: HashMap<u16, usize>,
    elapsed: Duration,
    latencies: Vec<Duration>,
    exactly_once: bool,
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn run(
    pg: &scoreboard_tests::PgServer,
    redis: Option<&scoreboard_tests::RedisServer>,
    label: &'static str,
    batch_max: usize,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<Run> {
    let db_name = format!("bench_{}", scoreboard_tests::random_suffix(8));
    let admin = sqlx::PgPool::connect(&pg.url("postgres")).await?;
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&admin)
        .await?;
    let url = pg.url(&db_name);
    let redis_url = redis.map(|r| r.url()).unwrap_or_default();
    let prefix = format!("{db_name}:");
    let mut vars = aggregator_vars(&url);
    vars.insert("DATABASE_POOL_MAX".into(), "8".into());
    vars.insert("LOG_LEVEL".into(), "error".into());
    vars.insert("APPLY_BATCH_MAX".into(), batch_max.to_string());
    vars.insert("APPLY_BATCH_WAIT_US".into(), "500".into());
    if redis.is_some() {
        vars.insert("REDIS_URL".into(), redis_url);
        vars.insert("REDIS_KEY_PREFIX".into(), prefix);
    }
    let app =
        Application::build(Config::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.db();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stop_rx.await;
    }));

    // Players straight into the database; sessions signed locally (as the aggregator would).
    let issuer = SessionIssuer {
        key: SessionSigningKey::Hs256(HmacSecret::new(JWT.as_bytes())),
        policy: SessionPolicy::default(),
        ttl_secs: 3600,
    };
    let now = chrono::Utc::now().timestamp();
    let mut sessions = Vec::new();
    for i in 0..PLAYERS {
        let id = format!("bench_{i}");
        sqlx::query("INSERT INTO users (player_id, name, name_key) VALUES ($1, $1, $1)")
            .bind(&id)
            .execute(&db)
            .await?;
        let pid = PlayerId::parse(id).expect("valid");
        let s = issuer.issue(&pid, pid.as_str(), &format!("s{i}"), now);
        sessions.push((pid, s.token));
    }
    let tokens = ActionTokens::from_secret(HmacSecret::new(ACTION.as_bytes()));
    let action = ActionName::parse("bench").expect("valid");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;

    let started = Instant::now();
    let results: Vec<(u16, i64, Duration)> = stream::iter(0..requests)
        .map(|k| {
            let (pid, session) = &sessions[k % PLAYERS];
            let pts = (k % 9) as i64 + 1;
            let mut jti = [0u8; 16];
            jti[..8].copy_from_slice(&(k as u64).to_le_bytes());
            jti[8..].copy_from_slice(&rand::random::<u64>().to_le_bytes());
            let now = chrono::Utc::now().timestamp();
            let token = tokens
                .mint(
                    &MintRequest {
                        player: pid,
                        action: &action,
                        points: pts,
                        min_seconds: 0,
                        ttl_secs: 300,
                    },
                    &jti,
                    now,
                )
                .expect("mintable")
                .token;
            let body =
                serde_json::json!({"action_token": token, "edge_region": "bench"}).to_string();
            let sig = edge_signature::header_value(
                EDGE.as_bytes(),
                now,
                "POST",
                "/internal/scores",
                body.as_bytes(),
            );
            let req = client
                .post(format!("{base}/internal/scores"))
                .bearer_auth(session)
                .header("x-edge-signature", sig)
                .header("content-type", "application/json")
                .body(body);
            async move {
                let t = Instant::now();
                let status = match req.send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                (status, pts, t.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();

    let mut ok = 0;
    let mut acked_pts = 0i64;
    let mut errors = HashMap::new();
    let mut latencies = Vec::with_capacity(results.len());
    for (status, pts, lat) in results {
        latencies.push(lat);
        if status == 200 {
            ok += 1;
            acked_pts += pts;
        } else {
            *errors.entry(status).or_insert(0) += 1;
        }
    }
    latencies.sort();
    let (events, total): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM score_events), (SELECT coalesce(sum(score), 0)::bigint FROM scores)",
    )
    .fetch_one(&db)
    .await?;
    let _ = stop_tx.send(());
    let _ = server.await;
    db.close().await;
    let _ = sqlx::query(&format!("DROP DATABASE {db_name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    Ok(Run {
        label,
        requests,
        ok,
        errors,
        elapsed,
        latencies,
        exactly_once: events == ok as i64 && total == acked_pts,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(20_000);
    let unbatched = args.get(1).copied().unwrap_or(2_000);
    let concurrency = args.get(2).copied().unwrap_or(256);
    let pg = scoreboard_tests::PgServer::start_durable().await?;
    let redis = scoreboard_tests::RedisServer::start().await?;
    let batched = run(
        &pg,
        Some(&redis),
        "group commit (APPLY_BATCH_MAX=512), Redis",
        512,
        requests,
        concurrency,
    )
    .await?;
    let single = run(
        &pg,
        Some(&redis),
        "unbatched (APPLY_BATCH_MAX=1), Redis",
        1,
        unbatched,
        concurrency,
    )
    .await?;
    let pg_only = run(
        &pg,
        None,
        "group commit, PostgreSQL only",
        512,
        unbatched * 2,
        concurrency,
    )
    .await?;
    println!("| configuration | requests | concurrency | applied | errors | applied/s | p50 ms | p95 ms | p99 ms | max ms | exactly once |");
    println!("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    let mut rates = Vec::new();
    for r in [&batched, &single, &pg_only] {
        let rate = r.ok as f64 / r.elapsed.as_secs_f64();
        rates.push(rate);
        println!(
            "| {} | {} | {} | {} | {:?} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r.label,
            r.requests,
            concurrency,
            r.ok,
            r.errors,
            rate,
            pct(&r.latencies, 0.50),
            pct(&r.latencies, 0.95),
            pct(&r.latencies, 0.99),
            r.latencies
                .last()
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0),
            if r.exactly_once { "yes" } else { "NO" }
        );
    }
    println!(
        "\ngroup commit / unbatched throughput: {:.1}x",
        rates[0] / rates[1]
    );
    if !(batched.exactly_once && single.exactly_once && pg_only.exactly_once) {
        anyhow::bail!("exactly-once verification failed");
    }
    Ok(())
}
