//! The Redis copy on a real Redis Cluster (three masters, three replicas, `redis-cli --cluster
//! create`): boards spread over the masters and answer as PostgreSQL does, snapshots travel
//! between instances on a sharded channel, and a master killed under load loses nothing: its
//! replica takes over, reads fall back to PostgreSQL meanwhile, the copy is rebuilt and
//! repaired, and streams end on the final version.

use crate::helpers::{
    assert_every_read_ok, descending_board, process_vars, readers, writers_at, BIN, EDGE_SECRET,
};
use scoreboard_tests::client::{self, Guest};
use scoreboard_tests::sse::SseClient;
use scoreboard_tests::tokens::{mint, mint_on, now};
use scoreboard_tests::{fresh_database, AggregatorProcess, RedisCluster, TestDatabase};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFIX: &str = "cluster:";
const WAIT: Duration = Duration::from_secs(20);

/// An aggregator process on `database`, on the cluster when `cluster` is given, syncing
/// every second.
async fn aggregator(database: &str, cluster: Option<&RedisCluster>) -> AggregatorProcess {
    let nodes = cluster.map(|c| c.nodes_setting());
    let mut extra = vec![("REDIS_SYNC_INTERVAL", "1s"), ("REDIS_KEY_PREFIX", PREFIX)];
    if let Some(nodes) = &nodes {
        extra.push(("REDIS_CLUSTER_NODES", nodes));
    }
    AggregatorProcess::start(BIN, &process_vars(database, &extra)).await
}

/// A new cluster, a fresh database and `n` aggregator processes on both, each once its copy
/// is up.
async fn on_a_cluster(
    n: usize,
) -> (
    RedisCluster,
    TestDatabase,
    Vec<AggregatorProcess>,
    reqwest::Client,
) {
    let cluster = RedisCluster::start().await.unwrap();
    let database = fresh_database().await.unwrap();
    let http = reqwest::Client::new();
    let mut instances = Vec::new();
    for _ in 0..n {
        let agg = aggregator(&database.url, Some(&cluster)).await;
        redis_up_is(&http, &agg, 1.0).await;
        instances.push(agg);
    }
    (cluster, database, instances, http)
}

async fn metric(http: &reqwest::Client, agg: &AggregatorProcess, name: &str) -> f64 {
    client::metric(&client::get_text(http, &agg.metrics).await, name)
}

async fn redis_up_is(http: &reqwest::Client, agg: &AggregatorProcess, want: f64) {
    let deadline = Instant::now() + WAIT;
    while metric(http, agg, "redis_up").await != want {
        assert!(Instant::now() < deadline, "redis_up never became {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn score(http: &reqwest::Client, base: &str, p: &Guest, token: &str) -> Value {
    let r = client::internal_score(http, base, EDGE_SECRET, &p.token, token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a score update");
    r.json().await.unwrap()
}

/// Every read that Redis serves, which the two instances must answer alike. (Not the
/// snapshot: it lives in memory, and a version that moved no row of a board's top 10 is in
/// PostgreSQL's but not in the committing instance's.)
fn reads_of(boards: &[&str], players: &[Guest]) -> Vec<String> {
    let mut paths = vec!["/api/boards".to_owned()];
    for b in boards {
        paths.push(format!("/api/boards/{b}/entries?limit=100"));
        paths.push(format!("/api/boards/{b}/entries?limit=3"));
        for p in players.iter().step_by(3) {
            paths.push(format!("/api/boards/{b}/players/{}?around=2", p.id));
        }
    }
    for p in players {
        paths.push(format!("/api/players/{}", p.id));
    }
    paths
}

/// A page's cursor names the version paging began at, which may be Redis's newest write to
/// the board or PostgreSQL's newest event on it (one that moved no entry): equal in effect, so
/// only whether there is a next page is compared.
fn comparable((status, mut body): (u16, Value)) -> (u16, Value) {
    if let Some(next) = body.get_mut("next") {
        *next = json!(!next.is_null());
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boards_on_a_cluster_spread_over_its_masters_and_answer_as_postgres_does() {
    let (cluster, database, mut instances, http) = on_a_cluster(1).await;
    let on_cluster = instances.remove(0);

    let kinds = [
        ("level-1", "asc", "best"),
        ("level-2", "asc", "best"),
        ("arena", "desc", "latest"),
        ("coins", "desc", "sum"),
        ("mode-x", "desc", "best"),
    ];
    for (id, order, operator) in kinds {
        let body = json!({"title": id, "order": order, "operator": operator});
        let (status, answer) = client::put_board(&http, &on_cluster.base, id, &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let players = client::guests(&http, &on_cluster.base, "Clustered ", 12).await;
    for (i, p) in players.iter().enumerate() {
        for round in 0..3 {
            let boards = [kinds[i % 5].0, kinds[(i + round + 1) % 5].0, "global"];
            let value = 1 + ((i * 7 + round * 13) % 40) as i64;
            score(&http, &on_cluster.base, p, &mint_on(&p.id, value, &boards)).await;
        }
    }
    let mut boards: Vec<&str> = kinds.iter().map(|k| k.0).collect();
    boards.push("global");

    // The same reads from PostgreSQL alone: an instance without Redis on the same database.
    let on_postgres = aggregator(&database.url, None).await;
    let mut found = 0;
    for path in reads_of(&boards, &players) {
        let from_cluster = comparable(get(&http, &format!("{}{path}", on_cluster.base)).await);
        let from_postgres = comparable(get(&http, &format!("{}{path}", on_postgres.base)).await);
        assert_eq!(from_cluster, from_postgres, "{path}");
        found += usize::from(from_cluster.0 == 200);
    }
    assert!(found >= 40, "only {found} reads found something");
    let mut cluster = cluster;
    let keys = cluster.keys_per_master().await.unwrap();
    assert!(
        keys.iter().filter(|n| **n > 0).count() >= 2,
        "the boards' keys sit on one master: {keys:?}"
    );
    let (status, health) = get(&http, &format!("{}/health", on_cluster.base)).await;
    assert_eq!(
        (status, &health["checks"]["redis"]),
        (200, &json!("ok")),
        "{health}"
    );
}

/// Subscribes to the snapshots channel the way the aggregator does (sharded, RESP3).
async fn snapshot_listener(
    cluster: &RedisCluster,
) -> (
    redis::cluster_async::ClusterConnection,
    tokio::sync::mpsc::UnboundedReceiver<redis::PushInfo>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = redis::cluster::ClusterClient::builder(cluster.urls())
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(tx)
        .build()
        .unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    conn.ssubscribe(format!("{PREFIX}snapshots")).await.unwrap();
    (conn, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_travel_between_instances_on_a_sharded_channel() {
    let (cluster, _database, instances, http) = on_a_cluster(2).await;
    let (a, b) = (&instances[0], &instances[1]);
    let (_conn, mut pushes) = snapshot_listener(&cluster).await;

    let (_, sse) = SseClient::connect(&format!("{}/api/leaderboard/stream", b.base), None).await;
    let mut sse = sse.unwrap();
    let (v0, _) = sse.next_snapshot(WAIT).await.unwrap();
    let p = client::guest(&http, &a.base, "Sharded").await;
    let answer = score(&http, &a.base, &p, &mint(&p.id, 12, 0, 300, now())).await;
    let v1 = answer["leaderboard_version"].as_i64().unwrap();
    assert!(v1 > v0);
    assert_eq!(
        sse.until_version(v1, WAIT).await,
        v1,
        "B streams A's update"
    );

    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let push = tokio::time::timeout(left, pushes.recv())
            .await
            .expect("a snapshot on the sharded channel")
            .unwrap();
        if push.kind != redis::PushKind::SMessage {
            continue;
        }
        let payload: String = redis::from_redis_value(&push.data[1]).unwrap();
        let published: Value = serde_json::from_str(&payload).unwrap();
        if published["version"] == v1 {
            break;
        }
    }
}

/// The players on `global` in the cluster's copy, best first, with their scores.
async fn cluster_board(cluster: &RedisCluster) -> Vec<(String, i64)> {
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    descending_board(&mut c, &format!("{PREFIX}{{global:all}}:z")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_killed_under_load_loses_nothing_and_turns_no_read_into_an_error() {
    let _heavy = scoreboard_tests::heavy().await;
    let (mut cluster, database, instances, http) = on_a_cluster(2).await;
    let (a, b) = (&instances[0], &instances[1]);

    let read = client::guests(&http, &a.base, "Reader ", 4).await;
    for p in &read {
        score(&http, &a.base, p, &mint(&p.id, 1, 0, 300, now())).await;
    }
    let mut streams = Vec::new();
    for agg in [a, b] {
        let url = format!("{}/api/leaderboard/stream", agg.base);
        streams.push(SseClient::connect(&url, None).await.1.unwrap());
    }
    let (players, load) = writers_at(&http, &a.base).await;
    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let mut reading = readers(&a.base, &read, &stop, &seen);
    reading.extend(readers(&b.base, &read, &stop, &seen));

    tokio::time::sleep(Duration::from_secs(2)).await;
    let victim = cluster
        .master_of(&format!("{PREFIX}{{global:all}}:z"))
        .await
        .unwrap();
    cluster.kill(victim);
    redis_up_is(&http, a, 0.0).await;
    cluster.wait_healthy(WAIT).await.unwrap();
    redis_up_is(&http, a, 1.0).await;
    redis_up_is(&http, b, 1.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    stop.store(true, Ordering::Relaxed);
    for r in reading {
        r.await.unwrap();
    }
    let report = load.stop().await;
    assert_every_read_ok(&seen);
    report
        .assert_exactly_once(&database.url, &players, 50)
        .await;
    let db = sqlx::PgPool::connect(&database.url).await.unwrap();

    // A final lead through B; both instances' streams end on it.
    let leader = client::guest(&http, &b.base, "Last word").await;
    let last = score(
        &http,
        &b.base,
        &leader,
        &mint(&leader.id, 1_000_000, 0, 300, now()),
    )
    .await;
    let last = last["leaderboard_version"].as_i64().unwrap();
    for s in &mut streams {
        assert_eq!(
            s.until_version(last, WAIT).await,
            last,
            "a stream ends on the final version"
        );
    }

    // The copy matches PostgreSQL again (rebuilt, then kept by the sync), drift 0.
    let expected: Vec<(String, i64)> = sqlx::query_as(
        "SELECT e.player_id, e.value FROM entries e JOIN users u USING (player_id)
         WHERE u.banned_at IS NULL AND e.board_id = 'global'
         ORDER BY e.value DESC, e.reached_version ASC",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let deadline = Instant::now() + WAIT;
    while cluster_board(&cluster).await != expected {
        assert!(
            Instant::now() < deadline,
            "the cluster's copy never matched PostgreSQL"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The gauge is what the last sync found before it repaired (a promoted replica may lack
    // the dead master's last writes): the next syncs find nothing.
    while metric(&http, a, "redis_leaderboard_sync_drift").await != 0.0 {
        assert!(
            Instant::now() < deadline + WAIT,
            "the sync kept finding drift"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
