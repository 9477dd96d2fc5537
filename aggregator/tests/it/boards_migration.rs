//! The migration to many boards: a database from before it, with scores, ties and events,
//! becomes the board `global`, period `all`, with the same scores, ranks and versions; and
//! the later migration to byte-order ids keeps the planner's statistics it would drop, and the
//! one that keys entries by player first keeps every entry and its upsert.

use crate::helpers::*;
use serde_json::Value;
use sqlx::migrate::Migrator;
use std::borrow::Cow;

/// The first migration of many boards; everything before it is "before".
const BOARDS_MIGRATION: i64 = 20261202000001;

/// The migration that compares player and token ids byte for byte.
const BYTE_ORDER_MIGRATION: i64 = 20261205000001;

/// The migration that puts the player first in an entry's primary key.
const PLAYER_FIRST_MIGRATION: i64 = 20261206000001;

/// Applies the migrations from before many boards only.
async fn migrate_to_before_boards(url: &str) {
    migrate_to_before(url, BOARDS_MIGRATION).await;
}

/// Applies the migrations older than `version` only.
async fn migrate_to_before(url: &str, version: i64) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
    let mut before = Migrator::new(dir).await.unwrap();
    let kept: Vec<_> = before
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect();
    before.migrations = Cow::Owned(kept);
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    before.run(&pool).await.unwrap();
}

/// Players `p1` to `pN`, as the schema since name skeletons holds them.
async fn insert_players(pool: &sqlx::PgPool, n: i32) {
    sqlx::query(
        "INSERT INTO users (player_id, name, name_key, name_skeleton, name_rules)
         SELECT 'p' || i, 'P' || i, 'p' || i, 'p' || i, 1 FROM generate_series(1, $1) AS i",
    )
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

/// Players, their events and totals as the single-board schema held them: `c` and `b` tie at
/// 300 and `b` reached it first (event 4 before event 5); `d` is banned.
async fn write_single_board_data(url: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let statements = [
        "INSERT INTO users (player_id, name, name_key, name_rules) VALUES
           ('a', 'Ana', 'ana', 1), ('b', 'Bo', 'bo', 1), ('c', 'Cy', 'cy', 1), ('d', 'Di', 'di', 1)",
        "UPDATE users SET banned_at = now() WHERE player_id = 'd'",
        "INSERT INTO score_events (id, player_id, jti, action, pts, score_after) VALUES
           (1, 'a', 'j1', 'quest', 500, 500), (2, 'b', 'j2', 'quest', 100, 100),
           (3, 'd', 'j3', 'quest', 900, 900), (4, 'b', 'j4', 'quest', 200, 300),
           (5, 'c', 'j5', 'quest', 300, 300), (6, 'a', NULL, 'admin:adjust', -50, 450)",
        "SELECT setval('score_events_id_seq', 6)",
        "INSERT INTO scores (player_id, score, reached_version) VALUES
           ('a', 450, 6), ('b', 300, 4), ('c', 300, 5), ('d', 900, 3)",
    ];
    for s in statements {
        sqlx::query(s).execute(&pool).await.unwrap();
    }
}

#[tokio::test]
async fn todays_scores_become_the_global_board_with_the_same_ranks_and_versions() {
    let db = scoreboard_tests::fresh_database().await.unwrap();
    migrate_to_before_boards(&db.url).await;
    write_single_board_data(&db.url).await;
    let url = db.url.clone();
    let app = spawn_app_with(move |vars| {
        vars.insert("DATABASE_URL".into(), url);
    })
    .await;
    let board: Value =
        scoreboard_tests::client::get_json(&app.http, &format!("{}/api/leaderboard", app.base))
            .await;
    assert_eq!(board["version"], 6);
    let top = entry_rows(&board["top"]);
    assert_eq!(
        top,
        [
            ("a".into(), 450, 1),
            ("b".into(), 300, 2),
            ("c".into(), 300, 3)
        ],
        "the banned player stays off; the earlier of a tie ranks first"
    );
    let c: Value =
        scoreboard_tests::client::get_json(&app.http, &format!("{}/api/players/c", app.base)).await;
    assert_eq!(
        (c["score"].as_i64(), c["rank"].as_i64()),
        (Some(300), Some(3))
    );
    assert_eq!(c["boards"][0]["board"], "global");
    assert_eq!(c["boards"][0]["period"], "all");
    let g: Value =
        scoreboard_tests::client::get_json(&app.http, &format!("{}/api/boards/global", app.base))
            .await;
    assert_eq!(g["board"], "global");
    assert_eq!(g["period"]["id"], "all");
    assert_eq!(g["version"], 6);
    assert_eq!(g["top"], board["top"]);
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let events: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, board_id, period FROM score_events ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(events.len(), 6);
    assert!(
        events.iter().all(|e| e.1 == "global" && e.2 == "all"),
        "{events:?}"
    );
    let next: i64 = sqlx::query_scalar("SELECT nextval('score_events_id_seq')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(next, 7, "versions go on from where they were");
}

/// Changing a column's collation drops its statistics, and the statistics job only analyzes
/// tables never analyzed: a table analyzed before the migration must come out of it with its
/// statistics, and one never analyzed must stay the job's (analyzed once it holds rows).
#[tokio::test]
async fn byte_order_ids_keep_the_statistics_a_table_had() {
    let db = scoreboard_tests::fresh_database().await.unwrap();
    migrate_to_before(&db.url, BYTE_ORDER_MIGRATION).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    insert_players(&pool, 50).await;
    sqlx::query("ANALYZE users").execute(&pool).await.unwrap();
    let stats = "SELECT count(*) FROM pg_stats WHERE tablename = $1 AND attname = 'player_id'";
    let count = |table: &'static str| {
        sqlx::query_scalar::<_, i64>(stats)
            .bind(table)
            .fetch_one(&pool)
    };
    assert_eq!(count("users").await.unwrap(), 1);

    scoreboard_aggregator::migrate(&db.url).await.unwrap();
    let collation: Option<String> = sqlx::query_scalar(
        "SELECT collation_name::text FROM information_schema.columns
         WHERE table_name = 'users' AND column_name = 'player_id'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(collation.as_deref(), Some("C"));
    assert_eq!(
        count("users").await.unwrap(),
        1,
        "users lost its statistics"
    );
    let never: bool = sqlx::query_scalar(
        "SELECT last_analyze IS NULL FROM pg_stat_user_tables WHERE relname = 'entries'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(never, "a table never analyzed was analyzed empty");
}

#[tokio::test]
async fn entries_keyed_by_player_first_keep_their_rows_and_their_upsert() {
    let db = scoreboard_tests::fresh_database().await.unwrap();
    migrate_to_before(&db.url, PLAYER_FIRST_MIGRATION).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    insert_players(&pool, 40).await;
    sqlx::query(
        "INSERT INTO entries (board_id, period, player_id, value, rank_key, reached_version)
         SELECT b, 'all', 'p' || i, i, -i, i FROM generate_series(1, 40) AS i,
                unnest(ARRAY['global', 'level-1']) AS b",
    )
    .execute(&pool)
    .await
    .unwrap();

    scoreboard_aggregator::migrate(&db.url).await.unwrap();
    let key: String = sqlx::query_scalar("SELECT pg_get_indexdef('entries_pkey'::regclass)")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(key.contains("(player_id, board_id, period)"), "{key}");
    let upsert =
        "INSERT INTO entries (board_id, period, player_id, value, rank_key, reached_version)
         VALUES ('level-1', 'all', 'p7', 70, -70, 41)
         ON CONFLICT (board_id, period, player_id) DO UPDATE
         SET value = EXCLUDED.value, rank_key = EXCLUDED.rank_key, reached_version = EXCLUDED.reached_version";
    sqlx::query(upsert).execute(&pool).await.unwrap();
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT board_id, count(*), sum(value)::bigint FROM entries GROUP BY board_id ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    // 1 + ... + 40 = 820; level-1's p7 went from 7 to 70.
    assert_eq!(
        rows,
        vec![("global".into(), 40, 820), ("level-1".into(), 40, 883)]
    );
}
