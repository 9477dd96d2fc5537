//! The read replica against a real streaming standby (`pg_basebackup -R` of the test's own
//! primary): the aggregator starts without it, reads go to it while it is usable and to the
//! primary otherwise, a player's own standing never comes from a standby that has not replayed
//! it, a standby that dies under load turns no read into an error, and a failover to the
//! promoted standby (synchronous replication) loses nothing acknowledged.

use crate::helpers::{
    assert_every_read_ok, process_vars, readers, spawn_process_with, writers_at, BIN,
};
use scoreboard_tests::client::{self, Guest};
use scoreboard_tests::player_load::{LoadOptions, PlayerLoad};
use scoreboard_tests::tokens::{mint, now};
use scoreboard_tests::{AggregatorProcess, PgServer};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DATABASE: &str = "replica";

/// A primary with a database and a standby streaming it.
async fn primary_and_standby() -> (PgServer, String, PgServer) {
    let primary = PgServer::start().await.unwrap();
    let url = primary.create_database(DATABASE).await.unwrap();
    let standby = PgServer::standby_of(&primary).await.unwrap();
    (primary, url, standby)
}

async fn metrics(http: &reqwest::Client, agg: &AggregatorProcess) -> String {
    client::get_text(http, &agg.metrics).await
}

/// Waits (20 s at most) until `database_replica_up` reads `want`.
async fn replica_up_is(http: &reqwest::Client, agg: &AggregatorProcess, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = client::metric(&metrics(http, agg).await, "database_replica_up");
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "database_replica_up stayed {seen}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn reads_by(exposition: &str, pool: &str) -> f64 {
    client::metric(
        exposition,
        &format!("database_reads_total{{pool=\"{pool}\"}}"),
    )
}

/// `player` redeems a fresh token for `points` at the aggregator; the answer must be 200.
async fn score(http: &reqwest::Client, base: &str, player: &Guest, points: i64) -> Value {
    let token = mint(&player.id, points, 0, 300, now());
    let r = client::internal_score(
        http,
        base,
        crate::helpers::EDGE_SECRET,
        &player.token,
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "a score update");
    r.json().await.unwrap()
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The score `global`'s first entries page shows for `player` (None: not on it).
async fn listed_score(http: &reqwest::Client, base: &str, player: &str) -> Option<i64> {
    let (status, page) = get(http, &format!("{base}/api/boards/global/entries")).await;
    assert_eq!(status, 200, "{page}");
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["player_id"] == player)
        .and_then(|e| e["score"].as_i64())
}

#[tokio::test]
async fn the_aggregator_starts_and_answers_while_its_replica_is_unreachable() {
    let nowhere = format!(
        "postgres://postgres@127.0.0.1:{}/{DATABASE}",
        scoreboard_tests::free_port()
    );
    let app = spawn_process_with(|v| {
        v.insert("DATABASE_REPLICA_URL".into(), nowhere);
    })
    .await;
    let p = app.guest("Unreplicated").await;
    assert_eq!(app.scored(&p, 7).await.score, 7);
    assert_eq!(app.player(&p.id).await.score, 7, "read from the primary");
    let (status, page) = get(
        &app.http,
        &format!("{}/api/boards/global/entries", app.base),
    )
    .await;
    assert_eq!(
        (status, page["entries"][0]["score"].as_i64()),
        (200, Some(7))
    );

    let r = app.get("/health").await;
    assert_eq!(r.status(), 503);
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(
        (
            h["checks"]["database"].as_str(),
            h["checks"]["replica"].as_str()
        ),
        (Some("ok"), Some("error")),
        "{h}"
    );
    assert_eq!(app.get("/health/ready").await.status(), 200, "still ready");
    let m = client::get_text(&app.http, &app.metrics).await;
    assert_eq!(client::metric(&m, "database_replica_up"), 0.0);
    assert!(reads_by(&m, "primary_replica_down") >= 2.0, "{m}");
    assert_eq!(reads_by(&m, "replica"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_from_the_standby_and_a_players_own_standing_never_lags() {
    let (_primary, url, standby) = primary_and_standby().await;
    let replica_url = standby.url(DATABASE);
    let vars = process_vars(&url, &[("DATABASE_REPLICA_URL", &replica_url)]);
    let agg = AggregatorProcess::start(BIN, &vars).await;
    let http = reqwest::Client::new();
    replica_up_is(&http, &agg, 1.0).await;
    let h: Value = get(&http, &format!("{}/health", agg.base)).await.1;
    assert_eq!(
        (h["status"].as_str(), h["checks"]["replica"].as_str()),
        (Some("ok"), Some("ok"))
    );

    let me = client::guest(&http, &agg.base, "Replayed").await;
    score(&http, &agg.base, &me, 10).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed_score(&http, &agg.base, &me.id).await != Some(10) {
        assert!(
            Instant::now() < deadline,
            "the standby never showed the first score"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The standby stops replaying: what it serves is now older than what was acknowledged.
    let mut on_standby = PgConnection::connect(&replica_url).await.unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&mut on_standby)
        .await
        .unwrap();
    let before = metrics(&http, &agg).await;
    let answer = score(&http, &agg.base, &me, 20).await;
    assert_eq!(answer["score"], 30);

    let (status, mine) = get(&http, &format!("{}/api/players/{}", agg.base, me.id)).await;
    assert_eq!((status, mine["score"].as_i64()), (200, Some(30)), "{mine}");
    let around = format!("{}/api/boards/global/players/{}?around=1", agg.base, me.id);
    let (status, mine) = get(&http, &around).await;
    assert_eq!((status, mine["score"].as_i64()), (200, Some(30)), "{mine}");
    assert_eq!(
        listed_score(&http, &agg.base, &me.id).await,
        Some(10),
        "a list is the standby's: paused, it still shows the first score"
    );
    let after = metrics(&http, &agg).await;
    assert!(
        reads_by(&after, "replica") > reads_by(&before, "replica"),
        "{after}"
    );
    assert!(
        reads_by(&after, "primary_replica_behind")
            >= reads_by(&before, "primary_replica_behind") + 2.0,
        "both standing reads went to the primary: {after}"
    );

    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&mut on_standby)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while listed_score(&http, &agg.base, &me.id).await != Some(30) {
        assert!(Instant::now() < deadline, "the standby never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = metrics(&http, &agg).await;
    assert!(m.contains("database_replica_lag_seconds "), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_that_dies_under_load_turns_no_read_into_an_error() {
    let _heavy = scoreboard_tests::heavy().await;
    let (_primary, url, mut standby) = primary_and_standby().await;
    let vars = process_vars(&url, &[("DATABASE_REPLICA_URL", &standby.url(DATABASE))]);
    let agg = AggregatorProcess::start(BIN, &vars).await;
    let http = reqwest::Client::new();
    replica_up_is(&http, &agg, 1.0).await;
    // Readers ask about players already on the board; the load's players are its own (the
    // exactly-once check counts any event it did not send as foreign).
    let read = client::guests(&http, &agg.base, "Reader ", 4).await;
    for p in &read {
        score(&http, &agg.base, p, 1).await;
    }
    let (players, load) = writers_at(&http, &agg.base).await;
    let (stop, statuses) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let reading = readers(&agg.base, &read, &stop, &statuses);

    tokio::time::sleep(Duration::from_secs(2)).await;
    standby.kill();
    replica_up_is(&http, &agg, 0.0).await;
    let h: Value = get(&http, &format!("{}/health", agg.base)).await.1;
    assert_eq!(h["checks"]["replica"], "error", "{h}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let while_down = reads_by(&metrics(&http, &agg).await, "replica");
    standby.start_again().await.unwrap();
    replica_up_is(&http, &agg, 1.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    stop.store(true, Ordering::Relaxed);
    for r in reading {
        r.await.unwrap();
    }
    let report = load.stop().await;
    assert_every_read_ok(&statuses);
    assert!(
        reads_by(&metrics(&http, &agg).await, "replica") > while_down,
        "reads went back to the standby once it was back"
    );
    report.assert_exactly_once(&url, &players, 50).await;
}

/// Waits until the primary's standby is a synchronous one.
async fn synchronous(primary: &PgServer) {
    let mut c = PgConnection::connect(&primary.url("postgres"))
        .await
        .unwrap();
    sqlx::query("ALTER SYSTEM SET synchronous_standby_names = '*'")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut c)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state: Option<String> =
            sqlx::query_scalar("SELECT sync_state FROM pg_stat_replication LIMIT 1")
                .fetch_optional(&mut c)
                .await
                .unwrap();
        if state.as_deref() == Some("sync") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the standby never became synchronous: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_to_the_promoted_standby_loses_nothing_acknowledged() {
    let _heavy = scoreboard_tests::heavy().await;
    let (mut primary, url, standby) = primary_and_standby().await;
    synchronous(&primary).await;
    let mut vars = process_vars(&url, &[("DATABASE_REPLICA_URL", &standby.url(DATABASE))]);
    let mut agg = AggregatorProcess::start(BIN, &vars).await;
    let http = reqwest::Client::new();
    let players = client::guests(&http, &agg.base, "Failover ", 8).await;
    let load = PlayerLoad::start_at_aggregator(
        &agg.base,
        &players,
        LoadOptions {
            workers: 6,
            replay_share: 0.3,
            pause: None,
        },
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acknowledged_before = load.statuses().get(&200).copied().unwrap_or(0);
    assert!(
        acknowledged_before >= 20,
        "the load runs: {:?}",
        load.statuses()
    );

    // The primary crashes; the operator promotes the standby and points the aggregator at it
    // (the runbook's database failover), on the same port.
    primary.kill();
    standby.promote().await.unwrap();
    agg.kill().await;
    vars.insert("DATABASE_URL".into(), standby.url(DATABASE));
    vars.remove("DATABASE_REPLICA_URL");
    agg = AggregatorProcess::start(BIN, &vars).await;
    let at_restart = load.statuses().get(&200).copied().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = load.stop().await;
    assert!(
        report.statuses.get(&200).copied().unwrap_or(0) > at_restart,
        "the promoted standby takes writes: {:?}",
        report.statuses
    );

    let db = sqlx::PgPool::connect(&standby.url(DATABASE)).await.unwrap();
    let ids: Vec<String> = players.iter().map(|p| p.id.clone()).collect();
    let v = report.ledger.verify(&db, &ids).await.unwrap();
    assert!(
        v.ok,
        "nothing acknowledged by the old primary is missing: {v}"
    );
    let h: Value = get(&http, &format!("{}/health", agg.base)).await.1;
    assert_eq!(h["status"], "ok", "{h}");
}
