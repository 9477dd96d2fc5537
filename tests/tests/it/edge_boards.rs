//! Many boards through the edge (the worker in workerd): each board's SSE clients, served by
//! that board's hub, see only their board's changes; the `global` routes answer exactly as
//! before; catalog actions that name boards mint tokens that move them; board reads are
//! forwarded; an unknown board's stream is a `404` in our shape, and one created a moment ago
//! is found at once; a board that resets turns to
//! its new, empty period on the hubs' streams.

use crate::support::{edge_with, stack};
use scoreboard_tests::client;
use scoreboard_tests::sse::SseClient;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(1500);

async fn put_board(http: &reqwest::Client, agg: &str, id: &str, body: Value) {
    let (status, _) = client::put_board(http, agg, id, &body).await;
    assert_eq!(status, 201, "PUT /admin/boards/{id}");
}

/// Mints `action` at the edge and redeems it there; returns the score answer.
async fn act(http: &reqwest::Client, edge: &str, session: &str, action: &str) -> Value {
    act_with_token(http, edge, session, action).await.0
}

/// [`act`], and the token it redeemed.
async fn act_with_token(
    http: &reqwest::Client,
    edge: &str,
    session: &str,
    action: &str,
) -> (Value, Value) {
    let minted: Value = http
        .post(format!("{edge}/api/actions"))
        .bearer_auth(session)
        .json(&json!({ "action": action }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .post(format!("{edge}/api/scores"))
        .bearer_auth(session)
        .json(&json!({ "action_token": minted["action_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "redeeming {action}");
    (r.json().await.unwrap(), minted["action_token"].clone())
}

async fn stream(url: &str) -> SseClient {
    let (status, sse) = SseClient::connect(url, None).await;
    assert_eq!(status, 200, "{url}");
    let mut sse = sse.unwrap();
    sse.next_snapshot(WAIT)
        .await
        .expect("the current snapshot first");
    sse
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_boards_clients_see_only_their_board_and_the_global_routes_are_unchanged() {
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let http = reqwest::Client::new();
    put_board(
        &http,
        &agg,
        "coins",
        json!({"title": "Coins", "order": "desc", "operator": "sum"}),
    )
    .await;
    put_board(
        &http,
        &agg,
        "time",
        json!({"title": "Time", "order": "asc", "operator": "best"}),
    )
    .await;
    let catalog = r#"{"tap": {"points": 3, "min_seconds": 0},
        "run": {"points": 90, "min_seconds": 0, "boards": ["time", "coins"]}}"#;
    let edge = edge_with(&agg, &[("ACTION_CATALOG", catalog)]).await;
    let base = edge.url();
    let mut coins = stream(&format!("{base}/api/boards/coins/stream")).await;
    let mut time = stream(&format!("{base}/api/boards/time/stream")).await;
    let mut alias = stream(&format!("{base}/api/leaderboard/stream")).await;

    let g = client::guest(&http, &base, "Racer").await;
    let (answer, token) = act_with_token(&http, &base, &g.token, "run").await;
    let boards: Vec<&str> = answer["boards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["board"].as_str().unwrap())
        .collect();
    assert_eq!(
        boards,
        ["time", "coins"],
        "the catalog's boards, in its order"
    );
    // Sent again, the player's gate refuses it: the answer says where they stand on the
    // token's boards, not on `global` where it did not count.
    let again = http
        .post(format!("{base}/api/scores"))
        .bearer_auth(&g.token)
        .json(&json!({ "action_token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    let again: Value = again.json().await.unwrap();
    let stood: Vec<(&str, i64)> = again["boards"]
        .as_array()
        .expect("a replay names the token's boards")
        .iter()
        .map(|b| (b["board"].as_str().unwrap(), b["score"].as_i64().unwrap()))
        .collect();
    assert_eq!(stood, [("time", 90), ("coins", 90)], "{again}");
    assert_eq!(again["score"], 90, "the first board's score: {again}");
    for (name, sse) in [("coins", &mut coins), ("time", &mut time)] {
        let (_, snap) = sse
            .next_snapshot(WAIT)
            .await
            .unwrap_or_else(|| panic!("{name} changed"));
        assert_eq!(snap["board"], name);
        assert_eq!(snap["top"][0]["player_id"], g.id.as_str());
        assert_eq!(snap["top"][0]["score"], 90);
    }
    assert!(
        alias.next_snapshot(QUIET).await.is_none(),
        "global did not change"
    );

    act(&http, &base, &g.token, "tap").await;
    let (_, plain) = alias.next_snapshot(WAIT).await.expect("global changed");
    assert!(
        plain.get("board").is_none() && plain.get("period").is_none(),
        "{plain}"
    );
    assert_eq!(plain["top"][0]["score"], 3);
    assert!(
        coins.next_snapshot(QUIET).await.is_none(),
        "coins did not change"
    );
    assert!(
        time.next_snapshot(Duration::from_millis(300))
            .await
            .is_none(),
        "time did not change"
    );

    // The alias snapshot at the edge (from the live hub) is the aggregator's, key for key.
    let from_edge = client::get_text(&http, &format!("{base}/api/leaderboard")).await;
    let from_agg = client::get_text(&http, &format!("{agg}/api/leaderboard")).await;
    assert!(from_edge.starts_with(r#"{"version":"#), "{from_edge}");
    let strip = |s: &str| {
        let mut v: Value = serde_json::from_str(s).unwrap();
        v.as_object_mut().unwrap().remove("updated_at");
        v
    };
    assert_eq!(strip(&from_edge), strip(&from_agg));
    let board: Value = client::get_json(&http, &format!("{base}/api/boards/time")).await;
    assert_eq!(
        (board["board"].as_str(), board["top"][0]["score"].as_i64()),
        (Some("time"), Some(90))
    );

    let list: Value = client::get_json(&http, &format!("{base}/api/boards")).await;
    assert_eq!(list["boards"].as_array().unwrap().len(), 3);
    let page: Value =
        client::get_json(&http, &format!("{base}/api/boards/coins/entries?limit=5")).await;
    assert_eq!(page["entries"][0]["player_id"], g.id.as_str());
    let me: Value = client::get_json(
        &http,
        &format!("{base}/api/boards/time/players/{}?around=3", g.id),
    )
    .await;
    assert_eq!(
        (me["rank"].as_i64(), me["around"].as_array().map(Vec::len)),
        (Some(1), Some(1))
    );

    for path in [
        "/api/boards/nope/stream",
        "/api/boards/Not_An_Id/stream",
        "/api/boards/nope",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(
            client::error_of(r).await.error.code.as_str(),
            "BOARD_NOT_FOUND",
            "{path}"
        );
    }
    // The edge has just read the list of boards; one created now is found at once, for a
    // read and for a stream: the aggregator is the authority, not the edge's list.
    put_board(
        &http,
        &agg,
        "fresh",
        json!({"title": "Fresh", "order": "desc", "operator": "sum"}),
    )
    .await;
    let r = http
        .get(format!("{base}/api/boards/fresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a board created a moment ago");
    stream(&format!("{base}/api/boards/fresh/stream")).await;
    let r = http
        .get(format!(
            "{base}/api/boards/time?period=2026-11-30T00:00:00Z"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        client::error_of(r).await.error.code.as_str(),
        "PERIOD_NOT_FOUND"
    );
    let r = http
        .get(format!("{base}/api/boards/coins/entries?limit=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "the aggregator's refusal comes through");
}

/// Reads a stream until a snapshot of another period than `period` arrives; returns its id and
/// body.
async fn next_period(sse: &mut SseClient, period: &str) -> (String, Value) {
    loop {
        let (id, snap) = sse.next_event(WAIT).await.expect("the board turns");
        if snap["period"]["id"] != period {
            return (id, snap);
        }
    }
}

/// A board that resets, through the edge: its hub's clients see the new, empty period at the
/// boundary, with an id naming it, then the new period's scores; the closed period reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boards_edge_stream_turns_to_the_new_period_at_the_boundary() {
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let http = reqwest::Client::new();
    put_board(
        &http,
        &agg,
        "sprint",
        json!({"title": "Sprint", "order": "desc", "operator": "sum", "reset": "*/5 * * * * *"}),
    )
    .await;
    let catalog = r#"{"dash": {"points": 4, "min_seconds": 0, "boards": ["sprint"]}}"#;
    let edge = edge_with(&agg, &[("ACTION_CATALOG", catalog)]).await;
    let base = edge.url();
    let (status, sse) = SseClient::connect(&format!("{base}/api/boards/sprint/stream"), None).await;
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    sse.next_event(WAIT)
        .await
        .expect("the current snapshot first");

    let g = client::guest(&http, &base, "Dasher").await;
    let scored = act(&http, &base, &g.token, "dash").await;
    let closing = scored["boards"][0]["period"].as_str().unwrap().to_owned();
    let (id, turned) = next_period(&mut sse, &closing).await;
    let new = turned["period"]["id"].as_str().unwrap().to_owned();
    assert!(new > closing, "{new} after {closing}");
    assert_eq!(id, format!("{new}/0"), "{turned}");
    assert_eq!(turned["top"], json!([]), "the new period starts empty");

    let again = act(&http, &base, &g.token, "dash").await;
    let now = again["boards"][0]["period"].as_str().unwrap().to_owned();
    loop {
        let (id, snap) = sse.next_event(WAIT).await.expect("the new period's score");
        if snap["period"]["id"] == now.as_str() && snap["top"] != json!([]) {
            assert!(id.starts_with(&format!("{now}/")), "{id}");
            assert_eq!(snap["top"][0]["score"], 4);
            break;
        }
    }
    let closed: Value =
        client::get_json(&http, &format!("{base}/api/boards/sprint?period={closing}")).await;
    assert_eq!(
        (
            closed["period"]["id"].as_str(),
            closed["top"][0]["score"].as_i64()
        ),
        (Some(closing.as_str()), Some(4))
    );
}
