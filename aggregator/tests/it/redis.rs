//! The Redis copy of the board: agreement with PostgreSQL, the tie rule, surviving Redis going
//! away and coming back, and fan-out between two instances.

use crate::helpers::*;
use futures_util::future::join_all;
use scoreboard_protocol::snapshot::ScoreResponse;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// The variables that put an aggregator on `redis`, syncing every second.
fn on_redis(
    redis: &scoreboard_tests::TestRedis,
) -> impl FnOnce(&mut std::collections::HashMap<String, String>) {
    let (url, prefix) = (redis.url.clone(), redis.key_prefix.clone());
    move |v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("REDIS_KEY_PREFIX".into(), prefix);
        v.insert("REDIS_SYNC_INTERVAL".into(), "1s".into());
    }
}

async fn app_with_redis(redis: &scoreboard_tests::TestRedis) -> TestApp {
    spawn_app_with(on_redis(redis)).await
}

/// Like [`app_with_redis`], the aggregator as a process of its own (its gauges its own).
async fn process_with_redis(redis: &scoreboard_tests::TestRedis) -> TestApp {
    spawn_process_with(on_redis(redis)).await
}

/// The key of the `global` board's sorted set (its rank key is the negated score).
fn global_key(redis: &scoreboard_tests::TestRedis) -> String {
    format!("{}{{global:all}}:z", redis.key_prefix)
}

/// The players Redis holds on `global`, with their scores, best first.
async fn redis_board(redis: &scoreboard_tests::TestRedis) -> Vec<(String, i64)> {
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    descending_board(&mut c, &global_key(redis)).await
}

async fn pg_board(app: &TestApp) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT e.player_id, e.value FROM entries e JOIN users u USING (player_id)
         WHERE u.banned_at IS NULL AND e.board_id = 'global' ORDER BY e.value DESC, e.reached_version ASC",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = client::get_text(&app.http, &app.metrics).await;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// 2,000 concurrent updates for 50 players: Redis ends equal to PostgreSQL, order included.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_and_postgres_agree_after_concurrent_updates() {
    let redis = scoreboard_tests::fresh_redis().await.unwrap();
    let app = app_with_redis(&redis).await;
    let players = app.guests("R", 50).await;
    let jobs: Vec<(String, String)> = (0..2000)
        .map(|k| {
            let p = &players[k % 50];
            (
                p.token.clone(),
                mint(&p.id, (k as i64 % 5) + 1, 0, 300, now()),
            )
        })
        .collect();
    for r in join_all(jobs.iter().map(|(s, t)| app.post_score(s, t))).await {
        assert_eq!(r.status(), 200);
    }
    assert_eq!(redis_board(&redis).await, pg_board(&app).await);
    let view = app.player(&players[0].id).await;
    assert_eq!(view.score, app.total(&players[0].id).await);
    let health = app.get("/health").await;
    assert_eq!(health.status(), 200);
    let h: serde_json::Value = health.json().await.unwrap();
    assert_eq!(h["checks"]["redis"], "ok");
}

/// Two players on the same score: whoever got there first ranks higher, in the snapshot, in
/// Redis ranks and in PostgreSQL ranks alike.
#[tokio::test]
async fn ties_go_to_the_earlier_achiever_everywhere() {
    let redis = scoreboard_tests::fresh_redis().await.unwrap();
    let app = app_with_redis(&redis).await;
    let late = app.guest("Late").await; // registered first, reaches 10 second
    let early = app.guest("Early").await;
    app.scored(&early, 10).await;
    let r = app
        .post_score(&late.token, &mint(&late.id, 10, 0, 300, now()))
        .await;
    let body: ScoreResponse = r.json().await.unwrap();
    assert_eq!(body.rank, 2, "the second to reach 10 ranks second");
    let board = app.leaderboard().await;
    assert_eq!(board.top[0].player_id.as_str(), early.id);
    assert_eq!(board.top[1].player_id.as_str(), late.id);
    assert_eq!(redis_board(&redis).await[0].0, early.id);
    for (p, rank) in [(&early, 1), (&late, 2)] {
        let v = app.player(&p.id).await;
        assert_eq!(v.rank, rank, "Redis rank of {}", p.name);
    }
    // The same answers from PostgreSQL alone.
    let pg_only = spawn_app_with(|v| {
        v.insert("DATABASE_URL".into(), app.database.url.clone());
    })
    .await;
    for (p, rank) in [(&early, 1), (&late, 2)] {
        let v = pg_only.player(&p.id).await;
        assert_eq!(v.rank, rank, "PostgreSQL rank of {}", p.name);
    }
    assert_eq!(pg_only.leaderboard().await.top, board.top);
}

/// Redis stops mid-run: updates keep succeeding, reads come from PostgreSQL, `/health` is 503
/// degraded while `/health/ready` stays 200. Redis returns: the board is rebuilt and drift is 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_degrades_and_recovers_without_losing_updates() {
    let mut server = scoreboard_tests::RedisServer::start().await.unwrap();
    let redis = scoreboard_tests::TestRedis {
        url: server.url(),
        key_prefix: "sb:".into(),
        server: None,
    };
    // A process: the drift gauge read at the end must be this aggregator's alone.
    let app = process_with_redis(&redis).await;
    let p = app.guest("Survivor").await;
    app.scored(&p, 5).await;

    server.stop();
    for _ in 0..5 {
        let r = app
            .post_score(&p.token, &mint(&p.id, 5, 0, 300, now()))
            .await;
        assert_eq!(r.status(), 200, "updates keep working without Redis");
    }
    assert_eq!(app.total(&p.id).await, 30);
    let v = app.player(&p.id).await;
    assert_eq!((v.score, v.rank), (30, 1));
    assert_eq!(app.leaderboard().await.top[0].score, 30);
    let health = app.get("/health").await;
    assert_eq!(health.status(), 503);
    let h: serde_json::Value = health.json().await.unwrap();
    assert_eq!(
        (
            h["status"].as_str(),
            h["checks"]["redis"].as_str(),
            h["checks"]["database"].as_str()
        ),
        (Some("degraded"), Some("down"), Some("ok"))
    );
    assert_eq!(app.get("/health/ready").await.status(), 200);

    // Redis comes back empty (it persists nothing): the supervisor rebuilds it.
    server.start_again().await.unwrap();
    eventually("the Redis board is rebuilt", || async {
        redis_board(&redis).await == pg_board(&app).await
    })
    .await;
    eventually("/health is ok again", || async {
        app.get("/health").await.status() == 200
    })
    .await;
    assert_eq!(redis_board(&redis).await, vec![(p.id.clone(), 30)]);
    eventually("drift is measured as 0", || async {
        metric(&app, "redis_leaderboard_sync_drift").await == Some(0.0)
    })
    .await;
}

/// Drift (a write Redis missed) is found by the periodic sync and repaired.
#[tokio::test]
async fn the_sync_task_measures_and_repairs_drift() {
    let redis = scoreboard_tests::fresh_redis().await.unwrap();
    let app = app_with_redis(&redis).await;
    let p = app.guest("Drifter").await;
    app.scored(&p, 8).await;
    // Corrupt the copy behind the aggregator's back.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(global_key(&redis))
        .query_async(&mut c)
        .await
        .unwrap();
    eventually("the board is repaired", || async {
        redis_board(&redis).await == vec![(p.id.clone(), 8)]
    })
    .await;
}

/// Two instances on one database and one Redis: an update through one reaches an SSE client of
/// the other, and the snapshot travels on the Redis channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_update_through_one_instance_reaches_the_other_instances_clients() {
    let redis = scoreboard_tests::fresh_redis().await.unwrap();
    let a = app_with_redis(&redis).await;
    let (url, prefix, db) = (
        redis.url.clone(),
        redis.key_prefix.clone(),
        a.database.url.clone(),
    );
    let b = spawn_app_with(move |v| {
        v.insert("DATABASE_URL".into(), db);
        v.insert("REDIS_URL".into(), url);
        v.insert("REDIS_KEY_PREFIX".into(), prefix);
    })
    .await;

    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(format!("{}snapshots", redis.key_prefix))
        .await
        .unwrap();

    let (_, sse) = SseClient::connect(&format!("{}/api/leaderboard/stream", b.base), None).await;
    let mut sse = sse.unwrap();
    let (v0, _) = sse.next_snapshot(WAIT).await.unwrap();
    let p = a.guest("Crosser").await;
    a.scored(&p, 12).await;
    let (v1, snap) = sse
        .next_snapshot(WAIT)
        .await
        .expect("instance B streams A's update");
    assert!(v1 > v0);
    assert_eq!(snap["top"][0]["player_id"], p.id.as_str());

    use futures_util::StreamExt;
    let msg = tokio::time::timeout(WAIT, pubsub.on_message().next())
        .await
        .unwrap()
        .unwrap();
    let published: serde_json::Value =
        serde_json::from_str(&msg.get_payload::<String>().unwrap()).unwrap();
    assert_eq!(published["version"], v1);
}
