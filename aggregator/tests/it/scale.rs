//! The degraded paths on a board of tens of thousands of players, under writers at full
//! concurrency: Redis corrupted behind the aggregator's back (the drift check repairs only what
//! differs), then killed and started empty (the rank index answers ranks meanwhile, and the
//! rebuild converges while writes go on). Writes keep flowing at a bounded latency, the cache
//! returns to healthy and equal to PostgreSQL, exactly once holds, and the idle aggregator
//! afterwards uses almost no CPU.
//!
//! The long form in RELIABILITY.md stretches it: `SCALE_PLAYERS` (the board, default 50,000),
//! `SCALE_WRITERS` (in flight, default 32), `SCALE_WRITER_PLAYERS` (the players they score for,
//! default 16), `SCALE_SECONDS` (the load, default 12),
//! `SCALE_OUTAGES` (Redis killed and started again, default 1), `SCALE_OUTAGE_SECONDS` (default
//! 3), `SCALE_SYNC_SECONDS` (`REDIS_SYNC_INTERVAL`, default 2) and `SCALE_SAMPLES` (a CSV file: applied updates every 5 s and the cache's mode).

use crate::helpers::{descending_board, process_vars, BIN};
use scoreboard_tests::client;
use scoreboard_tests::player_load::{LoadOptions, PlayerLoad};
use scoreboard_tests::{AggregatorProcess, RedisServer};
use std::time::{Duration, Instant};

/// Entries corrupted in Redis to be found by the drift check.
const CORRUPTED: i64 = 300;

/// `n` players with an entry on `global` each, written straight into the database (and their
/// events, so the event log is whole) before the aggregator starts.
async fn seed_global(url: &str, n: i64) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let statements = [
        "INSERT INTO users (player_id, name, name_key, name_rules)
         SELECT 'seed' || i, 'Seed ' || i, 'seed ' || i, 1 FROM generate_series(1, $1) AS i",
        "INSERT INTO score_events (id, player_id, action, pts, score_after, board_id, period)
         SELECT i, 'seed' || i, 'seed', (i::bigint * 7919) % 100000, (i::bigint * 7919) % 100000, 'global', 'all'
         FROM generate_series(1, $1) AS i",
        "INSERT INTO entries (board_id, period, player_id, value, rank_key, reached_version)
         SELECT 'global', 'all', 'seed' || i, (i::bigint * 7919) % 100000, -((i::bigint * 7919) % 100000), i
         FROM generate_series(1, $1) AS i",
        "INSERT INTO board_periods (board_id, period, version) VALUES ('global', 'all', $1)
         ON CONFLICT (board_id, period) DO UPDATE SET version = EXCLUDED.version",
        "SELECT setval('score_events_id_seq', $1)",
        "ANALYZE users, entries, score_events, board_periods",
    ];
    for s in statements {
        let q = sqlx::query(s);
        let q = if s.contains("$1") { q.bind(n) } else { q };
        q.execute(&pool).await.unwrap();
    }
}

/// A gauge's or counter's value on the aggregator's metrics (labels included in `series`).
async fn metric(http: &reqwest::Client, url: &str, series: &str) -> Option<f64> {
    let text = client::get_text(http, url).await;
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// CPU seconds (user + system) the process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn applied(load: &PlayerLoad) -> usize {
    load.statuses().get(&200).copied().unwrap_or(0)
}

/// Applied updates and the cache's mode every 5 s, for the long form's chart.
struct Samples {
    started: Instant,
    rows: Vec<(f64, usize, &'static str)>,
}

impl Samples {
    fn new(load: &PlayerLoad) -> Self {
        Self {
            started: Instant::now(),
            rows: vec![(0.0, applied(load), "healthy")],
        }
    }

    /// Waits `d`, sampling every 5 s (or oftener, to end on time).
    async fn run_for(
        &mut self,
        d: Duration,
        http: &reqwest::Client,
        metrics: &str,
        load: &PlayerLoad,
    ) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            tokio::time::sleep((end - Instant::now()).min(Duration::from_secs(5))).await;
            let mut mode = "healthy";
            for m in ["degraded", "rebuilding"] {
                let series = format!("redis_cache_mode{{mode=\"{m}\"}}");
                if metric(http, metrics, &series).await == Some(1.0) {
                    mode = m;
                }
            }
            self.rows
                .push((self.started.elapsed().as_secs_f64(), applied(load), mode));
        }
    }

    /// The samples as CSV to `SCALE_SAMPLES`, when it is set.
    fn write(&self) {
        let Ok(path) = std::env::var("SCALE_SAMPLES") else {
            return;
        };
        let mut csv = String::from("t,applied,mode\n");
        for (t, n, mode) in &self.rows {
            csv += &format!("{t:.1},{n},{mode}\n");
        }
        std::fs::write(path, csv).unwrap();
    }
}

async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_large_board_survives_drift_and_a_redis_restart_under_full_load() {
    let _heavy = scoreboard_tests::heavy().await;
    let players: i64 = scoreboard_tests::env_or("SCALE_PLAYERS", 50_000);
    let database = scoreboard_tests::fresh_database().await.unwrap();
    scoreboard_aggregator::migrate(&database.url).await.unwrap();
    seed_global(&database.url, players).await;
    let mut redis = RedisServer::start().await.unwrap();
    let sync: u64 = scoreboard_tests::env_or("SCALE_SYNC_SECONDS", 2);
    let vars = process_vars(
        &database.url,
        &[
            ("REDIS_URL", &redis.url()),
            ("REDIS_KEY_PREFIX", "scale:"),
            ("REDIS_SYNC_INTERVAL", &format!("{sync}s")),
        ],
    );
    let agg = AggregatorProcess::start(BIN, &vars).await;
    let http = reqwest::Client::new();
    let metrics = agg.metrics.clone();
    let mode = |m: &str| format!("redis_cache_mode{{mode=\"{m}\"}}");
    let healthy = async || metric(&http, &metrics, &mode("healthy")).await == Some(1.0);
    until("the start-up rebuild", Duration::from_secs(60), healthy).await;

    let writer_players = scoreboard_tests::env_or("SCALE_WRITER_PLAYERS", 16);
    let writers = client::guests(&http, &agg.base, "Scaler ", writer_players).await;
    let load = PlayerLoad::start_at_aggregator(
        &agg.base,
        &writers,
        LoadOptions {
            workers: scoreboard_tests::env_or("SCALE_WRITERS", 32),
            replay_share: 0.1,
            pause: None,
        },
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Drift: entries taken out of the sorted set behind the aggregator's back are found and
    // put back, and only they are repaired.
    let r = redis::Client::open(redis.url()).unwrap();
    let mut c = r.get_multiplexed_async_connection().await.unwrap();
    let z = "scale:{global:all}:z";
    let gone: Vec<String> = (1..=CORRUPTED)
        .map(|i| format!("{i:019}:seed{i}"))
        .collect();
    let _: i64 = redis::cmd("ZREM")
        .arg(z)
        .arg(&gone)
        .query_async(&mut c)
        .await
        .unwrap();
    let repaired = async || {
        let n = metric(&http, &metrics, "redis_drift_repaired_total").await;
        n.expect("redis_drift_repaired_total is exported")
    };
    let repaired_before = repaired().await;
    until(
        "the drift check repairs the board",
        Duration::from_secs(30 + 3 * sync),
        async || {
            let back: Vec<Option<f64>> = redis::cmd("ZMSCORE")
                .arg(z)
                .arg(&gone)
                .query_async(&mut c)
                .await
                .unwrap();
            back.iter().all(Option::is_some)
        },
    )
    .await;
    let seen_drift = repaired().await - repaired_before;
    assert!(
        seen_drift >= CORRUPTED as f64 && seen_drift < CORRUPTED as f64 * 2.0,
        "the drift check repaired {seen_drift} entries for {CORRUPTED} corrupted"
    );
    let rebuilds = metric(&http, &metrics, "redis_rebuilds_started_total").await;
    assert_eq!(rebuilds, Some(1.0), "drift is repaired without a rebuild");

    // Redis killed: writes go on, ranked by the rank index; started again empty: rebuilt.
    let outages: u32 = scoreboard_tests::env_or("SCALE_OUTAGES", 1);
    let outage = Duration::from_secs(scoreboard_tests::env_or("SCALE_OUTAGE_SECONDS", 3));
    let seconds = Duration::from_secs(scoreboard_tests::env_or("SCALE_SECONDS", 12));
    let mut samples = Samples::new(&load);
    let step = seconds / (outages + 1);
    let (mut during_outage, mut recovered_in) = (0, Duration::ZERO);
    for _ in 0..outages {
        samples
            .run_for(step.saturating_sub(outage), &http, &metrics, &load)
            .await;
        let before = applied(&load);
        redis.kill();
        samples.run_for(outage, &http, &metrics, &load).await;
        during_outage += applied(&load) - before;
        redis.start_again().await.unwrap();
        let restarted = Instant::now();
        until(
            "the cache is healthy again",
            Duration::from_secs(600),
            healthy,
        )
        .await;
        recovered_in = recovered_in.max(restarted.elapsed());
    }
    samples
        .run_for(
            step.saturating_sub(outage).max(Duration::from_secs(2)),
            &http,
            &metrics,
            &load,
        )
        .await;
    let report = load.stop().await;
    samples.write();

    let p99 = report.latency_quantile(0.99);
    println!(
        "{players} players: {} requests, {during_outage} applied while Redis was down, \
         recovered in {recovered_in:?}, p99 {p99:?}, drift repaired {seen_drift}, statuses {:?}",
        report.requests, report.statuses
    );
    assert!(
        during_outage > 50,
        "writes stalled while Redis was down: {during_outage}"
    );
    assert_eq!(report.timed_out, 0, "a request hung");
    assert!(p99 < Duration::from_secs(3), "p99 {p99:?}");
    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    let ids: Vec<String> = writers.iter().map(|p| p.id.clone()).collect();
    let v = report.ledger.verify(&db, &ids).await.unwrap();
    assert!(v.ok, "exactly once: {v}");

    // Redis equals PostgreSQL, entry for entry, in order.
    let in_pg: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.player_id, e.value FROM entries e JOIN users u USING (player_id)
         WHERE e.board_id = 'global' AND u.banned_at IS NULL
         ORDER BY e.rank_key, e.reached_version",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let mut c = r.get_multiplexed_async_connection().await.unwrap();
    let in_redis = descending_board(&mut c, z).await;
    assert_eq!(in_redis.len(), in_pg.len());
    assert!(
        in_redis == in_pg,
        "Redis differs from PostgreSQL after the rebuild"
    );

    // Idle: nothing loops (the drift check walks the board once more after the last write,
    // then finds it unchanged).
    tokio::time::sleep(Duration::from_secs(2 * sync + 6)).await;
    let (cpu, started) = (cpu_seconds(agg.pid()), Instant::now());
    tokio::time::sleep(Duration::from_secs(6)).await;
    let share = (cpu_seconds(agg.pid()) - cpu) / started.elapsed().as_secs_f64();
    println!("idle aggregator: {:.1}% of a core", share * 100.0);
    assert!(
        share < 0.10,
        "an idle aggregator used {:.1}% of a core",
        share * 100.0
    );
}
