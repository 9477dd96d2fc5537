//! The aggregator behind a real PgBouncer in transaction pooling mode, with three server
//! connections handed out round robin to twenty client ones, so that consecutive transactions
//! of one client meet different servers: the apply path (the writers' lock per transaction)
//! and every read answer as they do directly, exactly once, with nothing prepared in one
//! transaction looked for in another.

use crate::helpers::{process_vars, writers_at, BIN, EDGE_SECRET};
use scoreboard_tests::client::{self, Guest};
use scoreboard_tests::stack::ADMIN_KEY;
use scoreboard_tests::tokens::mint_on;
use scoreboard_tests::{AggregatorProcess, PgBouncer, PgServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DATABASE: &str = "pooled";

/// Status counts of the answers seen, keyed "route status".
type Seen = Arc<Mutex<BTreeMap<String, usize>>>;

fn record(seen: &Seen, route: &str, status: u16) {
    *seen
        .lock()
        .unwrap()
        .entry(format!("{route} {status}"))
        .or_default() += 1;
}

/// The public reads, in turn, about `players`; a page's `next` is followed.
async fn read_everything(
    http: &reqwest::Client,
    base: &str,
    players: &[Guest],
    n: usize,
    seen: &Seen,
) {
    let id = &players[n % players.len()].id;
    let routes = [
        ("boards", "/api/boards".to_owned()),
        ("board", "/api/boards/level-1".to_owned()),
        ("leaderboard", "/api/leaderboard".to_owned()),
        ("entries", "/api/boards/global/entries?limit=3".to_owned()),
        (
            "around",
            format!("/api/boards/level-1/players/{id}?around=2"),
        ),
        ("player", format!("/api/players/{id}")),
        ("periods", "/api/boards/global/periods".to_owned()),
        ("health", "/health".to_owned()),
    ];
    let (route, path) = &routes[n % routes.len()];
    let Ok(r) = http.get(format!("{base}{path}")).send().await else {
        return record(seen, route, 0);
    };
    let status = r.status().as_u16();
    record(seen, route, status);
    if *route == "entries" && status == 200 {
        let page: Value = r.json().await.unwrap_or_default();
        if let Some(next) = page["next"].as_str() {
            let next = format!("{base}/api/boards/global/entries?limit=3&after={next}");
            let status = http
                .get(next)
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            record(seen, "entries_next", status);
        }
    }
}

/// Operators' calls: a player's events, an adjustment, the board list.
async fn operate(http: &reqwest::Client, base: &str, players: &[Guest], n: usize, seen: &Seen) {
    let id = &players[n % players.len()].id;
    let (route, req) = match n % 3 {
        0 => (
            "events",
            http.get(format!("{base}/admin/players/{id}/events?limit=5")),
        ),
        1 => (
            "adjust",
            http.post(format!("{base}/admin/players/{id}/adjust"))
                .json(&json!({"points": 1, "reason": "pooled", "board": "mode-x"})),
        ),
        _ => ("admin_boards", http.get(format!("{base}/admin/boards"))),
    };
    let status = req
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    record(seen, route, status);
}

/// Scores of `players` on three boards at once, through the pooler.
async fn score_on_boards(
    http: &reqwest::Client,
    base: &str,
    players: &[Guest],
    n: usize,
    seen: &Seen,
) {
    let p = &players[n % players.len()];
    let token = mint_on(&p.id, 1 + (n as i64 % 50), &["level-1", "mode-x", "global"]);
    let status = client::internal_score(http, base, EDGE_SECRET, &p.token, &token)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16());
    record(seen, "score_3_boards", status);
}

fn spawn_workers(
    base: &str,
    players: &[Guest],
    stop: &Arc<AtomicBool>,
    seen: &Seen,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..6)
        .map(|w| {
            let (base, players, stop, seen) = (
                base.to_owned(),
                players.to_vec(),
                stop.clone(),
                seen.clone(),
            );
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                // n walks the players and, for the readers, the routes.
                let mut n = w;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match w % 3 {
                        0 => score_on_boards(&http, &base, &players, n, &seen).await,
                        1 => operate(&http, &base, &players, n, &seen).await,
                        _ => read_everything(&http, &base, &players, n, &seen).await,
                    }
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_apply_path_and_every_read_work_through_pgbouncer_in_transaction_mode() {
    let _heavy = scoreboard_tests::heavy().await;
    let pg = PgServer::start().await.unwrap();
    let direct = pg.create_database(DATABASE).await.unwrap();
    let bouncer = PgBouncer::start(pg.port(), 3).await.unwrap();
    let vars = process_vars(
        &bouncer.url(DATABASE),
        &[
            ("DATABASE_POOLER", "transaction"),
            ("DATABASE_MIGRATION_URL", &direct),
            ("DATABASE_POOL_MAX", "20"),
        ],
    );
    let agg = AggregatorProcess::start(BIN, &vars).await;
    let http = reqwest::Client::new();
    let before = bouncer.transactions(DATABASE).unwrap_or(0);

    for (id, order, operator) in [("level-1", "asc", "best"), ("mode-x", "desc", "latest")] {
        let body = json!({"title": id, "order": order, "operator": operator});
        let (status, answer) = client::put_board(&http, &agg.base, id, &body).await;
        assert_eq!(status, 201, "{answer}");
    }
    let registered = http
        .post(format!("{}/api/auth/register", agg.base))
        .json(&json!({"name": "Pooled Player", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let login = http
        .post(format!("{}/api/auth/login", agg.base))
        .json(&json!({"name": "Pooled Player", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        200,
        "a login reads the player just registered"
    );

    // The load's players are its own (the exactly-once check counts any event it did not
    // send as foreign); the workers score, read and operate on others.
    let others = client::guests(&http, &agg.base, "Other ", 6).await;
    let seen: Seen = Arc::default();
    for n in 0..others.len() {
        score_on_boards(&http, &agg.base, &others, n, &seen).await;
    }
    let (players, load) = writers_at(&http, &agg.base).await;
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_workers(&agg.base, &others, &stop, &seen);
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let report = load.stop().await;

    let seen = seen.lock().unwrap().clone();
    let failed: Vec<_> = seen.iter().filter(|(k, _)| !k.ends_with(" 200")).collect();
    assert!(failed.is_empty(), "every answer 200: {seen:?}");
    for route in [
        "score_3_boards",
        "adjust",
        "events",
        "entries",
        "entries_next",
        "around",
        "player",
    ] {
        let n = seen.get(&format!("{route} 200")).copied().unwrap_or(0);
        assert!(n >= 3, "too few {route} through the pooler: {seen:?}");
    }
    report.assert_exactly_once(&direct, &players, 50).await;
    let db = sqlx::PgPool::connect(&direct).await.unwrap();

    // A best-ascending entry is its player's lowest value (operators' adjustments go to
    // mode-x only).
    let wrong: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM entries e WHERE board_id = 'level-1' AND value <>
           (SELECT min(pts) FROM score_events s
             WHERE s.board_id = 'level-1' AND s.player_id = e.player_id)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(wrong, 0, "level-1 keeps each player's best (lowest) value");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let through = bouncer.transactions(DATABASE).unwrap() - before;
    assert!(
        through > 500,
        "only {through} transactions went through PgBouncer"
    );
}
