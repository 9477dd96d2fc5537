//! The reads of many boards answer the same from Redis and from PostgreSQL, and the same as a
//! model kept by the test: random scores on random boards of every operator, bans and
//! adjustments, then every snapshot, page, around-me and standing compared three ways. And
//! paging a 10,000-entry board while writers move players never repeats a player and never
//! skips one that did not move.

use crate::helpers::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// (board, order is ascending, operator)
const BOARDS: [(&str, bool, &str); 3] = [
    ("coins", false, "sum"),
    ("time", true, "best"),
    ("last", false, "latest"),
];

/// What the test believes: per (board, player) the value and the order in which it was
/// reached, plus who is banned.
#[derive(Default)]
struct Model {
    entries: HashMap<(usize, String), (i64, u64)>,
    banned: HashSet<String>,
    events: u64,
}

impl Model {
    /// Applies a value to one board by its operator (or an adjustment's delta).
    fn apply(&mut self, board: usize, player: &str, value: i64, adjustment: bool) {
        self.events += 1;
        let (_, asc, op) = BOARDS[board];
        let key = (board, player.to_owned());
        let next = match (self.entries.get(&key).map(|e| e.0), adjustment, op) {
            (None, true, _) => Some(value),
            (None, false, _) => Some(value),
            (Some(c), true, _) | (Some(c), false, "sum") => Some(c + value),
            (Some(c), false, "best") => {
                ((asc && value < c) || (!asc && value > c)).then_some(value)
            }
            (Some(c), false, _) => (value != c).then_some(value),
        };
        if let Some(v) = next {
            self.entries.insert(key, (v, self.events));
        }
    }

    /// The board in order: `(player, score)`, banned players left out.
    fn board(&self, board: usize) -> Vec<(String, i64)> {
        let asc = BOARDS[board].1;
        let mut rows: Vec<(i64, u64, String)> = self
            .entries
            .iter()
            .filter(|((b, p), _)| *b == board && !self.banned.contains(p))
            .map(|((_, p), (v, at))| (if asc { *v } else { -*v }, *at, p.clone()))
            .collect();
        rows.sort();
        rows.into_iter()
            .map(|(k, _, p)| (p, if asc { k } else { -k }))
            .collect()
    }
}

fn ranked(board: &[(String, i64)]) -> Vec<(String, i64, i64)> {
    board
        .iter()
        .enumerate()
        .map(|(i, (p, s))| (p.clone(), *s, i as i64 + 1))
        .collect()
}

async fn json_of(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.get(path).await;
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// Every entry of a board, page by page.
async fn all_pages(app: &TestApp, board: &str, limit: usize) -> Vec<(String, i64, i64)> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let q = after
            .as_ref()
            .map(|a| format!("&after={a}"))
            .unwrap_or_default();
        let (s, page) = json_of(
            app,
            &format!("/api/boards/{board}/entries?limit={limit}{q}"),
        )
        .await;
        assert_eq!(s, 200, "{page}");
        out.extend(entry_rows(&page["entries"]));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => return out,
        }
    }
}

/// Everything one app answers about the boards and players, to compare with the model.
async fn compare(app: &TestApp, model: &Model, players: &[Player], path: &str) {
    for (b, (board, _, _)) in BOARDS.iter().enumerate() {
        let want = ranked(&model.board(b));
        let (_, snap) = json_of(app, &format!("/api/boards/{board}")).await;
        let top: Vec<_> = want.iter().take(10).cloned().collect();
        assert_eq!(entry_rows(&snap["top"]), top, "{path}: top 10 of {board}");
        assert_eq!(
            all_pages(app, board, 5).await,
            want,
            "{path}: pages of {board}"
        );
        for p in players {
            let (s, around) = json_of(
                app,
                &format!("/api/boards/{board}/players/{}?around=2", p.id),
            )
            .await;
            match want.iter().position(|r| r.0 == p.id) {
                None => assert_eq!(s, 404, "{path}: {} has no entry on {board}", p.name),
                Some(i) => {
                    let window: Vec<_> =
                        want[i.saturating_sub(2)..(i + 3).min(want.len())].to_vec();
                    assert_eq!(
                        entry_rows(&around["around"]),
                        window,
                        "{path}: around {} on {board}",
                        p.name
                    );
                }
            }
        }
    }
    for p in players {
        let (s, view) = json_of(app, &format!("/api/players/{}", p.id)).await;
        if model.banned.contains(&p.id) {
            assert_eq!(s, 404, "{path}: banned {}", p.name);
            continue;
        }
        let mut want = Vec::new();
        // The list is in board id order.
        let mut ids: Vec<(usize, &str)> =
            BOARDS.iter().enumerate().map(|(i, b)| (i, b.0)).collect();
        ids.sort_by_key(|(_, id)| *id);
        for (b, id) in ids {
            if let Some(r) = ranked(&model.board(b)).into_iter().find(|r| r.0 == p.id) {
                want.push(json!({"board": id, "period": "all", "score": r.1, "rank": r.2}));
            }
        }
        assert_eq!(
            view["boards"],
            Value::Array(want),
            "{path}: standings of {}",
            p.name
        );
    }
}

async fn random_operations(app: &TestApp, model: &mut Model, players: &[Player], rng: &mut StdRng) {
    for _ in 0..120 {
        let p = &players[rng.gen_range(0..players.len())];
        match rng.gen_range(0..20) {
            0 => {
                let ban = !model.banned.contains(&p.id);
                let route = if ban { "ban" } else { "unban" };
                let (s, _) = admin(
                    app,
                    Method::POST,
                    &format!("/admin/players/{}/{route}", p.id),
                    None,
                )
                .await;
                assert_eq!(s, 200);
                if ban {
                    model.banned.insert(p.id.clone());
                } else {
                    model.banned.remove(&p.id);
                }
            }
            1 => {
                let b = rng.gen_range(0..BOARDS.len());
                let points = rng.gen_range(1..40) * if rng.gen_bool(0.5) { 1 } else { -1 };
                let body = json!({"points": points, "reason": "model", "board": BOARDS[b].0});
                let (s, _) = admin(
                    app,
                    Method::POST,
                    &format!("/admin/players/{}/adjust", p.id),
                    Some(body),
                )
                .await;
                assert_eq!(s, 200);
                model.apply(b, &p.id, points, true);
            }
            _ => {
                let mut chosen: Vec<usize> =
                    (0..BOARDS.len()).filter(|_| rng.gen_bool(0.5)).collect();
                if chosen.is_empty() {
                    chosen.push(rng.gen_range(0..BOARDS.len()));
                }
                // Small values, so that ties are common.
                let value = rng.gen_range(1..12) * 10;
                let names: Vec<&str> = chosen.iter().map(|b| BOARDS[*b].0).collect();
                let r = app
                    .post_score(&p.token, &mint_on(&p.id, value, &names))
                    .await;
                let banned = model.banned.contains(&p.id);
                assert_eq!(r.status(), if banned { 403 } else { 200 });
                if !banned {
                    for b in chosen {
                        model.apply(b, &p.id, value, false);
                    }
                }
            }
        }
    }
}

fn on_redis(
    redis: &scoreboard_tests::TestRedis,
    database_url: Option<&str>,
) -> impl FnOnce(&mut HashMap<String, String>) {
    let (url, prefix, db) = (
        redis.url.clone(),
        redis.key_prefix.clone(),
        database_url.map(str::to_owned),
    );
    move |v| {
        v.insert("REDIS_URL".into(), url);
        v.insert("REDIS_KEY_PREFIX".into(), prefix);
        if let Some(db) = db {
            v.insert("DATABASE_URL".into(), db);
        }
    }
}

#[tokio::test]
async fn redis_postgres_and_a_model_agree_on_every_read_after_random_operations() {
    for seed in [7u64, 2026] {
        let redis = scoreboard_tests::fresh_redis().await.unwrap();
        let cached = spawn_app_with(on_redis(&redis, None)).await;
        for (id, asc, op) in BOARDS {
            let order = if asc { "asc" } else { "desc" };
            put_board(
                &cached,
                id,
                json!({"title": id, "order": order, "operator": op}),
            )
            .await;
        }
        let players = cached.guests("Model", 12).await;
        let mut model = Model::default();
        let mut rng = StdRng::seed_from_u64(seed);
        random_operations(&cached, &mut model, &players, &mut rng).await;
        let url = cached.database.url.clone();
        let pg_only = spawn_app_with(move |v| {
            v.insert("DATABASE_URL".into(), url);
        })
        .await;
        compare(&cached, &model, &players, &format!("Redis, seed {seed}")).await;
        compare(
            &pg_only,
            &model,
            &players,
            &format!("PostgreSQL, seed {seed}"),
        )
        .await;
    }
}

/// 10,000 entries written straight into a database from before the aggregator starts.
async fn big_board(url: &str, n: i64) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let statements = [
        "INSERT INTO boards (id, title, sort_order, operator, value_min, value_max)
         VALUES ('big', 'Big', 'desc', 'sum', -1000000, 1000000)",
        "INSERT INTO users (player_id, name, name_key, name_rules)
         SELECT 'p' || i, 'P' || i, 'p' || i, 1 FROM generate_series(1, $1) AS i",
        "INSERT INTO score_events (id, player_id, action, pts, score_after, board_id, period)
         SELECT i, 'p' || i, 'seed', (i * 7919) % 1000, (i * 7919) % 1000, 'big', 'all' FROM generate_series(1, $1) AS i",
        "INSERT INTO entries (board_id, period, player_id, value, rank_key, reached_version)
         SELECT 'big', 'all', 'p' || i, (i * 7919) % 1000, -((i * 7919) % 1000), i FROM generate_series(1, $1) AS i",
        "INSERT INTO board_periods (board_id, period, version) VALUES ('big', 'all', $1)",
        "SELECT setval('score_events_id_seq', $1)",
    ];
    for s in statements {
        let q = sqlx::query(s);
        let q = if s.contains("$1") { q.bind(n) } else { q };
        q.execute(&pool).await.unwrap();
    }
}

/// Pages through `big` with `limit` 100; returns the players in the order met.
async fn page_through(app: &TestApp) -> Vec<String> {
    all_pages(app, "big", 100)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_a_moving_board_never_repeats_a_player_or_skips_one_that_did_not_move() {
    const N: i64 = 10_000;
    let db = scoreboard_tests::fresh_database().await.unwrap();
    scoreboard_aggregator::migrate(&db.url).await.unwrap();
    big_board(&db.url, N).await;
    let redis = scoreboard_tests::fresh_redis().await.unwrap();
    let cached = Arc::new(spawn_app_with(on_redis(&redis, Some(&db.url))).await);
    let url = db.url.clone();
    let pg_only = spawn_app_with(move |v| {
        v.insert("DATABASE_URL".into(), url);
    })
    .await;
    let moved: Arc<Mutex<HashSet<String>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8u64)
        .map(|w| {
            let (app, moved, done) = (cached.clone(), moved.clone(), done.clone());
            tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w);
                let mut writes = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let p = format!("p{}", rng.gen_range(1..=N));
                    moved.lock().unwrap().insert(p.clone());
                    // Both ways: a player who drops behind the cursor would be met again without `as_of`.
                    let points = rng.gen_range(1..800i64) * if rng.gen_bool(0.5) { 1 } else { -1 };
                    let body = json!({"points": points, "reason": "move", "board": "big"});
                    let (s, _) = admin(
                        &app,
                        Method::POST,
                        &format!("/admin/players/{p}/adjust"),
                        Some(body),
                    )
                    .await;
                    assert_eq!(s, 200);
                    writes += 1;
                }
                writes
            })
        })
        .collect();
    let (from_redis, from_pg) = tokio::join!(page_through(&cached), page_through(&pg_only));
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.unwrap();
    }
    let moved = moved.lock().unwrap().clone();
    assert!(
        writes >= 8,
        "the writers moved players while the pages were read ({writes})"
    );
    for (path, met) in [("Redis", from_redis), ("PostgreSQL", from_pg)] {
        let mut seen = HashSet::new();
        for p in &met {
            assert!(seen.insert(p.clone()), "{path}: {p} met twice");
        }
        let missing: Vec<String> = (1..=N)
            .map(|i| format!("p{i}"))
            .filter(|p| !moved.contains(p) && !seen.contains(p))
            .collect();
        assert!(
            missing.is_empty(),
            "{path}: unmoved players skipped: {:?}",
            &missing[..missing.len().min(5)]
        );
        assert!(met.len() as i64 >= N - moved.len() as i64, "{path}");
    }
}
