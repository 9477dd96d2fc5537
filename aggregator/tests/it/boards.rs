//! Many boards at the aggregator: operators' board routes, one token on several boards applied
//! exactly once, refusals that consume nothing, the reads of a board (snapshot, pages,
//! around-me, standings) and their failure paths, and a stream per board.

use crate::helpers::get_json as get;
use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

/// `sum`/`desc` "coins", `best`/`asc` "time", `latest`/`desc` "last".
async fn three_boards(app: &TestApp) {
    put_board(
        app,
        "coins",
        json!({"title": "Coins", "order": "desc", "operator": "sum"}),
    )
    .await;
    put_board(
        app,
        "time",
        json!({"title": "Level 1 time", "order": "asc", "operator": "best"}),
    )
    .await;
    put_board(
        app,
        "last",
        json!({"title": "Last run", "order": "desc", "operator": "latest"}),
    )
    .await;
}

/// Redeems a token for `value` on `boards`; returns the status and body.
async fn redeem_on(app: &TestApp, p: &Player, value: i64, boards: &[&str]) -> (u16, Value) {
    let r = app
        .post_score(&p.token, &mint_on(&p.id, value, boards))
        .await;
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

async fn value_on(app: &TestApp, board: &str, player: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT value FROM entries WHERE board_id = $1 AND player_id = $2")
        .bind(board)
        .bind(player)
        .fetch_optional(&app.db)
        .await
        .unwrap()
}

fn ranks(entries: &Value) -> Vec<i64> {
    entry_rows(entries).into_iter().map(|r| r.2).collect()
}

#[tokio::test]
async fn boards_are_created_idempotently_fixed_once_scored_and_can_be_hidden() {
    let app = spawn_app().await;
    let body = json!({"title": "Level 1", "order": "asc", "operator": "best"});
    let (s, created) = admin(
        &app,
        Method::PUT,
        "/admin/boards/level-1",
        Some(body.clone()),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["value_max"], (1i64 << 53) - 1);
    assert_eq!(
        (created["reset"].as_str(), created["timezone"].as_str()),
        (Some("never"), Some("UTC"))
    );
    let (s, again) = admin(
        &app,
        Method::PUT,
        "/admin/boards/level-1",
        Some(body.clone()),
    )
    .await;
    assert_eq!((s, &again), (200, &created), "a PUT is idempotent");
    let (_, list) = get(&app, "/api/boards").await;
    let ids: Vec<&str> = list["boards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["global", "level-1"]);
    let level = &list["boards"][1];
    assert_eq!(
        (level["order"].as_str(), level["operator"].as_str()),
        (Some("asc"), Some("best"))
    );
    assert_eq!(
        level["period"],
        json!({"id": "all", "starts_at": null, "ends_at": null})
    );
    assert_eq!(level["next_reset_at"], Value::Null);

    let p = app.guest("Runner").await;
    assert_eq!(redeem_on(&app, &p, 90, &["level-1"]).await.0, 200);
    let flipped = json!({"title": "Level 1", "order": "desc", "operator": "best"});
    let (s, e) = admin(&app, Method::PUT, "/admin/boards/level-1", Some(flipped)).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("BOARD_IN_USE"))
    );
    let renamed = json!({"title": "Level one", "order": "asc", "operator": "best"});
    assert_eq!(
        put_board(&app, "level-1", renamed).await["title"],
        "Level one"
    );

    let hidden = json!({"title": "Level one", "order": "asc", "operator": "best", "public": false});
    put_board(&app, "level-1", hidden).await;
    let (s, e) = get(&app, "/api/boards/level-1").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("BOARD_NOT_FOUND"))
    );
    let (s, e) = redeem_on(&app, &p, 80, &["level-1"]).await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (422, Some("UNKNOWN_BOARD"))
    );
    let (_, all) = admin(&app, Method::GET, "/admin/boards", None).await;
    assert_eq!(all["boards"][1]["public"], false, "operators still see it");
    assert_eq!(value_on(&app, "level-1", &p.id).await, Some(90));
}

#[tokio::test]
async fn bad_board_definitions_are_refused_with_what_is_wrong() {
    let app = spawn_app().await;
    let ok = json!({"title": "T", "order": "desc", "operator": "sum"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    // Each with what its message must name ("" where the test does not look).
    let cases = [
        ("Bad-Id", ok.clone(), ""),
        (
            "x",
            with("order", json!("up")),
            "`order` must be `desc` or `asc`",
        ),
        ("x", with("operator", json!("max")), "`operator`"),
        ("x", with("title", json!("")), ""),
        ("x", with("title", json!("t".repeat(65))), ""),
        ("x", with("reset", json!("fortnightly")), ""),
        ("x", with("reset", json!("0 0 30 2 *")), ""),
        ("x", with("timezone", json!("Mars/Olympus")), ""),
        (
            "x",
            json!({"title": "T", "order": "desc", "operator": "sum", "value_min": 10, "value_max": 5}),
            "",
        ),
        ("x", with("value_max", json!(1i64 << 53)), ""),
        ("x", with("results_size", json!(0)), ""),
        (
            "x",
            with("colour", json!("red")),
            "a field the route does not take",
        ),
        (
            "x",
            with("public", json!("yes")),
            "`public` must be a boolean",
        ),
        (
            "x",
            json!({"order": "desc", "operator": "sum"}),
            "missing field `title`",
        ),
        ("global", with("public", json!(false)), ""),
    ];
    for (id, body, names) in cases {
        let (s, e) = admin(
            &app,
            Method::PUT,
            &format!("/admin/boards/{id}"),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{id} {body}"
        );
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{body}: {message}");
        assert!(
            !message.contains("\"red\"") && !message.contains("yes"),
            "{message}"
        );
    }
    let r = app
        .http
        .put(format!("{}/admin/boards/x", app.base))
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the admin key is needed");
    let (_, list) = admin(&app, Method::GET, "/admin/boards", None).await;
    assert_eq!(
        list["boards"].as_array().unwrap().len(),
        1,
        "nothing was created"
    );
}

/// One token naming a sum, a best/asc and a latest/desc board, redeemed 200 times at once:
/// applied once, each board moved by its operator, one event per board, one consumed token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_token_on_three_boards_redeemed_200_times_at_once_moves_each_board_once() {
    let app = spawn_app().await;
    three_boards(&app).await;
    let p = app.guest("Triple").await;
    for (board, v) in [("coins", 10), ("time", 50), ("last", 7)] {
        assert_eq!(redeem_on(&app, &p, v, &[board]).await.0, 200);
    }
    let token = mint_on(&p.id, 40, &["coins", "time", "last"]);
    let attempts = (0..200).map(|_| {
        let (app, token, session) = (&app, token.clone(), p.token.clone());
        async move {
            let r = app.post_score(&session, &token).await;
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap_or_default(),
            )
        }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let applied: Vec<&Value> = answers
        .iter()
        .filter(|a| a.0 == 200)
        .map(|a| &a.1)
        .collect();
    assert_eq!(
        applied.len(),
        1,
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(answers.iter().all(|a| a.0 == 200 || a.0 == 409));
    let boards = &applied[0]["boards"];
    let standing: Vec<(&str, i64, i64)> = boards
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["board"].as_str().unwrap(),
                b["score"].as_i64().unwrap(),
                b["rank"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        standing,
        [("coins", 50, 1), ("time", 40, 1), ("last", 40, 1)]
    );
    assert_eq!(
        applied[0]["score"], 50,
        "the top-level answer is the first board's"
    );
    for (board, want) in [("coins", 50), ("time", 40), ("last", 40)] {
        assert_eq!(value_on(&app, board, &p.id).await, Some(want), "{board}");
    }
    let (events, consumed): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM score_events WHERE pts = 40), (SELECT count(*) FROM consumed_tokens)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (events, consumed),
        (3, 4),
        "one event per board, one consumed token more"
    );
    let replay = answers.iter().find(|a| a.0 == 409).unwrap();
    assert_eq!(
        replay.1["score"], 50,
        "a replay says where the player stands on the first board"
    );
    let scores = |body: &Value| -> Vec<(String, i64)> {
        let boards = body["boards"]
            .as_array()
            .expect("a replay names the token's boards");
        boards
            .iter()
            .map(|b| {
                (
                    b["board"].as_str().unwrap().to_owned(),
                    b["score"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let want = [("coins", 50), ("time", 40), ("last", 40)].map(|(b, v)| (b.to_owned(), v));
    assert_eq!(scores(&replay.1), want, "as the 200 answer says it");
    // Once the rank index holds the boards (it loads them within a second), ranks too.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = app.post_score(&p.token, &token).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(scores(&body), want);
    let ranks: Vec<i64> = body["boards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["rank"].as_i64().unwrap())
        .collect();
    assert_eq!(ranks, [1, 1, 1]);
}

/// An unknown board or a value outside a board's bounds refuses the whole token and consumes
/// nothing: once the board exists (or allows the value), the same token applies.
#[tokio::test]
async fn refused_tokens_are_not_consumed_and_apply_once_the_board_allows_them() {
    let app = spawn_app().await;
    three_boards(&app).await;
    put_board(
        &app,
        "small",
        json!({"title": "Small", "order": "desc", "operator": "latest", "value_max": 10}),
    )
    .await;
    let p = app.guest("Patient").await;
    let unknown = mint_on(&p.id, 5, &["coins", "later"]);
    let r = app.post_score(&p.token, &unknown).await;
    assert_eq!(code_of(r).await.1, "UNKNOWN_BOARD");
    let big = mint_on(&p.id, 11, &["time", "small"]);
    let r = app.post_score(&p.token, &big).await;
    assert_eq!(code_of(r).await.1, "VALUE_OUT_OF_RANGE");
    let zero = mint_on(&p.id, 0, &["coins"]);
    let r = app.post_score(&p.token, &zero).await;
    assert_eq!(
        code_of(r).await.1,
        "VALUE_OUT_OF_RANGE",
        "a zero delta on a sum board"
    );
    let global_big = mint_on(&p.id, 1_000_001, &["global"]);
    let r = app.post_score(&p.token, &global_big).await;
    assert_eq!(
        code_of(r).await.1,
        "VALUE_OUT_OF_RANGE",
        "global keeps its bounds"
    );
    let nothing: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM consumed_tokens), (SELECT count(*) FROM entries)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(nothing, (0, 0), "nothing consumed, nothing moved");
    put_board(
        &app,
        "later",
        json!({"title": "Later", "order": "desc", "operator": "sum"}),
    )
    .await;
    put_board(
        &app,
        "small",
        json!({"title": "Small", "order": "desc", "operator": "latest", "value_max": 100}),
    )
    .await;
    assert_eq!(app.post_score(&p.token, &unknown).await.status(), 200);
    assert_eq!(app.post_score(&p.token, &big).await.status(), 200);
    assert_eq!(value_on(&app, "later", &p.id).await, Some(5));
    assert_eq!(value_on(&app, "small", &p.id).await, Some(11));
}

/// A board another instance created, with entries, that this one has not loaded yet: the
/// batch reads its entries under the lock all the same and combines with them.
#[tokio::test]
async fn a_board_not_loaded_here_yet_is_scored_from_its_entries() {
    let app = spawn_app().await;
    let p = app.guest("Elsewhere").await;
    sqlx::query(
        "INSERT INTO boards (id, title, sort_order, operator, value_min, value_max)
         VALUES ('remote-sum', 'Remote sum', 'desc', 'sum', -100, 100),
                ('remote-best', 'Remote best', 'asc', 'best', 0, 1000)",
    )
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO entries (board_id, period, player_id, value, rank_key, reached_version)
         VALUES ('remote-sum', 'all', $1, 40, -40, 1), ('remote-best', 'all', $1, 30, 30, 1)",
    )
    .bind(&p.id)
    .execute(&app.db)
    .await
    .unwrap();
    let (status, _) = redeem_on(&app, &p, 2, &["remote-sum", "global"]).await;
    assert_eq!(status, 200);
    let (status, _) = redeem_on(&app, &p, 50, &["remote-best"]).await;
    assert_eq!(status, 200);
    assert_eq!(value_on(&app, "remote-sum", &p.id).await, Some(42));
    assert_eq!(
        value_on(&app, "remote-best", &p.id).await,
        Some(30),
        "50 is not better"
    );
    assert_eq!(value_on(&app, "global", &p.id).await, Some(2));
}

/// Pages, around-me at both ends, standings, and every malformed read.
#[tokio::test]
async fn a_board_reads_in_pages_around_a_player_and_refuses_malformed_reads() {
    let app = spawn_app().await;
    three_boards(&app).await;
    let players = app.guests("Runner", 7).await;
    // Times 100, 110, ..., 160: lower is better, so Runner0 leads.
    for (i, p) in players.iter().enumerate() {
        assert_eq!(
            redeem_on(&app, p, 100 + 10 * i as i64, &["time", "coins"])
                .await
                .0,
            200
        );
    }
    let (_, first) = get(&app, "/api/boards/time/entries?limit=3").await;
    let first_ranks = ranks(&first["entries"]);
    assert_eq!(first_ranks, [1, 2, 3]);
    assert_eq!(first["entries"][0]["score"], 100);
    let mut seen = Vec::new();
    let mut next = Some(String::new());
    while let Some(after) = next {
        let q = if after.is_empty() {
            String::new()
        } else {
            format!("&after={after}")
        };
        let (s, page) = get(&app, &format!("/api/boards/time/entries?limit=3{q}")).await;
        assert_eq!(s, 200, "{page}");
        seen.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["player_id"].as_str().unwrap().to_owned()),
        );
        next = page["next"].as_str().map(str::to_owned);
    }
    let ids: Vec<String> = players.iter().map(|p| p.id.clone()).collect();
    assert_eq!(seen, ids, "every entry once, in board order");

    let around = |p: &Player, n: i64| format!("/api/boards/time/players/{}?around={n}", p.id);
    let (_, top) = get(&app, &around(&players[0], 2)).await;
    let top_ranks = ranks(&top["around"]);
    assert_eq!(
        (top["rank"].as_i64(), top_ranks),
        (Some(1), vec![1, 2, 3]),
        "nothing above rank 1"
    );
    let (_, last) = get(&app, &around(&players[6], 2)).await;
    let last_ranks = ranks(&last["around"]);
    assert_eq!(
        (last["rank"].as_i64(), last_ranks),
        (Some(7), vec![5, 6, 7]),
        "the two above the last"
    );
    let (_, mid) = get(&app, &around(&players[3], 1)).await;
    assert_eq!(mid["around"][0]["player_id"], players[2].id.as_str());
    assert_eq!(mid["around"][2]["player_id"], players[4].id.as_str());

    let view: Value = get(&app, &format!("/api/players/{}", players[6].id))
        .await
        .1;
    let standings: Vec<(&str, i64)> = view["boards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["board"].as_str().unwrap(), b["rank"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        standings,
        [("coins", 1), ("time", 7)],
        "public boards in id order, where the player has an entry"
    );

    let outsider = app.guest("Outsider").await;
    for (path, status, code) in [
        ("/api/boards/nope".to_owned(), 404, "BOARD_NOT_FOUND"),
        (
            "/api/boards/NOPE/entries".to_owned(),
            404,
            "BOARD_NOT_FOUND",
        ),
        (
            "/api/boards/time/entries?limit=0".to_owned(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/api/boards/time/entries?limit=101".to_owned(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/api/boards/time/entries?limit=ten".to_owned(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/api/boards/time/entries?after=not-a-cursor".to_owned(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/api/boards/time/entries?period=2026-11-30T00:00:00Z".to_owned(),
            404,
            "PERIOD_NOT_FOUND",
        ),
        (around(&players[0], 26), 400, "BAD_REQUEST"),
        (around(&players[0], -1), 400, "BAD_REQUEST"),
        (around(&outsider, 2), 404, "PLAYER_NOT_FOUND"),
        (
            "/api/boards/time/players/no%20such".to_owned(),
            404,
            "PLAYER_NOT_FOUND",
        ),
        ("/api/boards/nope/stream".to_owned(), 404, "BOARD_NOT_FOUND"),
    ] {
        let (s, e) = get(&app, &path).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}"
        );
    }
    assert_eq!(
        get(&app, "/api/boards/time/entries?period=all").await.0,
        200
    );
}

/// A ban takes the player off every board; an unban puts them back; an adjustment names its
/// board and is audited.
#[tokio::test]
async fn bans_cover_every_board_and_adjustments_name_their_board() {
    let app = spawn_app().await;
    three_boards(&app).await;
    let (a, b) = (app.guest("Alpha").await, app.guest("Beta").await);
    assert_eq!(redeem_on(&app, &a, 30, &["coins", "time"]).await.0, 200);
    assert_eq!(redeem_on(&app, &b, 20, &["coins", "time"]).await.0, 200);
    let (s, _) = admin(
        &app,
        Method::POST,
        &format!("/admin/players/{}/ban", a.id),
        None,
    )
    .await;
    assert_eq!(s, 200);
    for board in ["coins", "time"] {
        let (_, snap) = get(&app, &format!("/api/boards/{board}")).await;
        let top: Vec<&str> = snap["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["player_id"].as_str().unwrap())
            .collect();
        assert_eq!(top, [b.id.as_str()], "{board}");
    }
    admin(
        &app,
        Method::POST,
        &format!("/admin/players/{}/unban", a.id),
        None,
    )
    .await;
    let (_, coins) = get(&app, "/api/boards/coins").await;
    assert_eq!(coins["top"][0]["player_id"], a.id.as_str());

    let adj = json!({"points": -25, "reason": "penalty", "board": "time"});
    let (s, out) = admin(
        &app,
        Method::POST,
        &format!("/admin/players/{}/adjust", b.id),
        Some(adj),
    )
    .await;
    assert_eq!(
        (s, out["board"].as_str(), out["score"].as_i64()),
        (200, Some("time"), Some(-5)),
        "{out}"
    );
    let (_, time) = get(&app, "/api/boards/time").await;
    assert_eq!(
        time["top"][0]["player_id"],
        b.id.as_str(),
        "-5 is the best time now"
    );
    let unknown = json!({"points": 1, "reason": "x", "board": "nope"});
    let (s, e) = admin(
        &app,
        Method::POST,
        &format!("/admin/players/{}/adjust", b.id),
        Some(unknown),
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("BOARD_NOT_FOUND"))
    );
    let detail: Value =
        sqlx::query_scalar("SELECT detail FROM admin_audit WHERE action = 'adjust'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(detail["board"], "time");
}

/// Each board's stream carries that board only; the alias stream keeps its original form.
#[tokio::test]
async fn each_boards_stream_sees_only_its_own_changes() {
    let app = spawn_app().await;
    three_boards(&app).await;
    let url = |b: &str| format!("{}/api/boards/{b}/stream", app.base);
    let (_, coins) = SseClient::connect(&url("coins"), None).await;
    let (_, time) = SseClient::connect(&url("time"), None).await;
    let (_, alias) =
        SseClient::connect(&format!("{}/api/leaderboard/stream", app.base), None).await;
    let (mut coins, mut time, mut alias) = (coins.unwrap(), time.unwrap(), alias.unwrap());
    for c in [&mut coins, &mut time, &mut alias] {
        c.next_snapshot(WAIT)
            .await
            .expect("the current snapshot first");
    }
    let p = app.guest("Streamer").await;
    assert_eq!(redeem_on(&app, &p, 12, &["coins"]).await.0, 200);
    let (_, snap) = coins.next_snapshot(WAIT).await.expect("coins changed");
    assert_eq!(
        (snap["board"].as_str(), snap["top"][0]["score"].as_i64()),
        (Some("coins"), Some(12))
    );
    assert!(
        time.next_snapshot(Duration::from_millis(1500))
            .await
            .is_none(),
        "time did not change"
    );
    assert!(
        alias
            .next_snapshot(Duration::from_millis(300))
            .await
            .is_none(),
        "global did not change"
    );
    app.scored(&p, 3).await;
    let (_, plain) = alias.next_snapshot(WAIT).await.expect("global changed");
    assert!(
        plain.get("board").is_none(),
        "the alias keeps the original snapshot: {plain}"
    );
    assert_eq!(plain["top"][0]["score"], 3);
}
