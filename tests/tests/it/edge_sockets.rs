//! WebSockets for game clients through the edge (the worker in workerd): the hub's
//! hibernatable sockets get the same snapshots as its SSE clients and end on the same final
//! version, also through relay hubs when the root hub is full; `?last_event_id=` resumes; `ping` is answered `pong` and a quiet hub pings; a
//! socket that sends anything else is closed; the failure paths answer in our error shape.

use crate::support::{edge_with, stack};
use futures_util::{SinkExt, StreamExt};
use scoreboard_tests::client;
use scoreboard_tests::sse::SseClient;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(15);
const QUIET: Duration = Duration::from_millis(1500);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(url: &str) -> Socket {
    open_at(url).await.0
}

/// A socket and the hub that serves it (`0`, the root, or `relay-<k>`).
async fn open_at(url: &str) -> (Socket, String) {
    let url = url.replacen("http://", "ws://", 1);
    let (ws, resp) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!(resp.status(), 101, "{url}");
    let hub = resp
        .headers()
        .get("x-scoreboard-hub")
        .expect("the hub is named");
    (ws, hub.to_str().unwrap().to_owned())
}

/// The next text message within `wait`, `None` when there is none (or the socket closed).
async fn next_text(ws: &mut Socket, wait: Duration) -> Option<String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next()).await.ok()??;
        match msg.ok()? {
            Message::Text(t) => return Some(t.to_string()),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// The next snapshot within `wait`, skipping the hub's `ping`s.
async fn next_snapshot(ws: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let text = next_text(ws, left).await?;
        if text != "ping" {
            return Some(serde_json::from_str(&text).expect("a snapshot is JSON"));
        }
    }
}

/// Reads snapshots until one has `version`; panics if a version goes backwards.
async fn until_version(ws: &mut Socket, version: i64) -> Value {
    let mut last = -1;
    loop {
        let snap = next_snapshot(ws, WAIT)
            .await
            .unwrap_or_else(|| panic!("version {version} never came (last {last})"));
        let v = snap["version"].as_i64().unwrap();
        assert!(v > last, "versions only grow: {v} after {last}");
        last = v;
        if v == version {
            return snap;
        }
    }
}

async fn adjust(http: &reqwest::Client, agg: &str, player: &str, board: &str, points: i64) -> i64 {
    client::adjust(http, agg, player, Some(board), points).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_sse_clients_of_the_edge_end_on_the_same_version() {
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let http = reqwest::Client::new();
    let (status, _) = client::put_board(
        &http,
        &agg,
        "coins",
        &json!({"title": "Coins", "order": "desc", "operator": "sum"}),
    )
    .await;
    assert_eq!(status, 201);
    // Two clients per hub: the board's sockets spread over its root hub and relays.
    let edge = edge_with(&agg, &[("HUB_CLIENTS_PER_OBJECT", "2")]).await;
    let base = edge.url();

    let mut sockets = Vec::new();
    let mut hubs = Vec::new();
    for _ in 0..3 {
        let (mut ws, hub) = open_at(&format!("{base}/api/boards/coins/ws")).await;
        let first = next_snapshot(&mut ws, WAIT)
            .await
            .expect("the current snapshot first");
        assert_eq!(first["board"], "coins");
        sockets.push(ws);
        hubs.push(hub);
    }
    assert_eq!(
        hubs,
        ["0", "0", "relay-0"],
        "the root serves two, a relay the third"
    );
    let mut alias = open(&format!("{base}/api/leaderboard/ws")).await;
    let first = next_snapshot(&mut alias, WAIT)
        .await
        .expect("global's snapshot first");
    assert!(first.get("board").is_none(), "the alias form: {first}");
    let (status, sse) = SseClient::connect(&format!("{base}/api/boards/coins/stream"), None).await;
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();

    let players = client::guests(&http, &agg, "Socket", 3).await;
    let mut last = 0;
    for round in 0..10 {
        let p = &players[round % players.len()];
        last = adjust(&http, &agg, &p.id, "coins", 7).await;
    }
    let expected: Value = client::get_json(&http, &format!("{agg}/api/boards/coins")).await;
    for ws in &mut sockets {
        let snap = until_version(ws, last).await;
        assert_eq!(snap["top"], expected["top"], "the aggregator's top 10");
    }
    loop {
        let (id, snap) = sse
            .next_event(WAIT)
            .await
            .expect("the SSE client catches up");
        if snap["version"] == last {
            assert_eq!(id, last.to_string());
            assert_eq!(snap["top"], expected["top"]);
            break;
        }
    }
    assert!(
        next_snapshot(&mut alias, QUIET).await.is_none(),
        "global did not change"
    );

    // Resuming with the current version sends nothing until the next change; an older one
    // gets the current snapshot at once.
    let mut resumed = open(&format!("{base}/api/boards/coins/ws?last_event_id={last}")).await;
    assert!(next_snapshot(&mut resumed, QUIET).await.is_none());
    let mut behind = open(&format!("{base}/api/boards/coins/ws?last_event_id=1")).await;
    let snap = next_snapshot(&mut behind, WAIT)
        .await
        .expect("the current snapshot");
    assert_eq!(snap["version"], last);
    let next = adjust(&http, &agg, &players[0].id, "coins", 1).await;
    assert_eq!(until_version(&mut resumed, next).await["board"], "coins");

    // `ping` is answered by the runtime; anything else closes the socket.
    resumed.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_text(&mut resumed, WAIT).await.as_deref(), Some("pong"));
    behind.send(Message::text("hello")).await.unwrap();
    let closed = loop {
        match tokio::time::timeout(WAIT, behind.next())
            .await
            .expect("closed")
        {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            other => panic!("a close frame, not {other:?}"),
        }
    };
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1003));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_hub_pings_its_sockets_and_bad_socket_requests_answer_in_our_shape() {
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let http = reqwest::Client::new();
    let edge = edge_with(&agg, &[("SSE_PING_INTERVAL", "300")]).await;
    let base = edge.url();
    let mut ws = open(&format!("{base}/api/leaderboard/ws")).await;
    next_snapshot(&mut ws, WAIT)
        .await
        .expect("the current snapshot");
    assert_eq!(next_text(&mut ws, WAIT).await.as_deref(), Some("ping"));

    // Without an upgrade: 400 in our shape, as the aggregator's internal route answers.
    for path in ["/api/leaderboard/ws", "/api/boards/global/ws"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let e = client::error_of(r).await;
        assert_eq!(e.error.code.as_str(), "BAD_REQUEST", "{path}");
    }
    // An unknown board is a 404 at once, not a hub that waits for it.
    let url = format!("{base}/api/boards/nope/ws").replacen("http://", "ws://", 1);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("a 404, not {other:?}"),
    }
    // Its body (the WebSocket client above may not read it): our shape.
    let r = http
        .get(format!("{base}/api/boards/nope/ws"))
        .header("upgrade", "websocket")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let e = client::error_of(r).await;
    assert_eq!(e.error.code.as_str(), "BOARD_NOT_FOUND");
    let r = http
        .post(format!("{base}/api/leaderboard/ws"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_kept_an_old_snapshot_does_not_send_a_client_its_own_version_again() {
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let http = reqwest::Client::new();
    let edge = edge_with(&agg, &[("SSE_PING_INTERVAL", "300")]).await;
    let base = edge.url();
    let player = client::guest(&http, &agg, "Returner").await;

    let mut ws = open(&format!("{base}/api/leaderboard/ws")).await;
    next_snapshot(&mut ws, WAIT)
        .await
        .expect("the current snapshot");
    let v1 = client::adjust(&http, &agg, &player.id, None, 5).await;
    until_version(&mut ws, v1).await;
    drop(ws);
    // The hub closes its upstream when its last client has gone, and keeps v1.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let v2 = client::adjust(&http, &agg, &player.id, None, 5).await;

    // A client that has v2 (from elsewhere) gets nothing until the next change, though the
    // hub it reaches still holds v1 and catches up to v2 only after it came.
    let mut back = open(&format!("{base}/api/leaderboard/ws?last_event_id={v2}")).await;
    assert!(
        next_snapshot(&mut back, QUIET).await.is_none(),
        "v{v2} sent again to a client that has it"
    );
    let v3 = client::adjust(&http, &agg, &player.id, None, 5).await;
    let snap = next_snapshot(&mut back, WAIT)
        .await
        .expect("the next change");
    assert_eq!(snap["version"], v3);
}
