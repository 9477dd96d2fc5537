//! SSE and WebSocket streams of the top 10.

use crate::helpers::*;
use futures_util::{SinkExt, StreamExt};
use scoreboard_protocol::snapshot::Snapshot;
use scoreboard_protocol::ErrorCode;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// `retry` first, the current snapshot at once, then a newer one after a score update.
#[tokio::test]
async fn sse_sends_retry_the_current_snapshot_and_every_change() {
    let app = spawn_app().await;
    let p = app.guest("Streamer").await;
    let (status, sse) =
        SseClient::connect(&format!("{}/api/leaderboard/stream", app.base), None).await;
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    let first = sse.next(WAIT).await.unwrap();
    assert_eq!(first.retry.as_deref(), Some("3000"));
    let (v0, snap0) = sse.next_snapshot(WAIT).await.unwrap();
    assert_eq!(v0, 0);
    assert_eq!(snap0["top"].as_array().unwrap().len(), 0);

    app.scored(&p, 40).await;
    let (v1, snap1) = sse
        .next_snapshot(WAIT)
        .await
        .expect("a new snapshot after the update");
    assert!(v1 > v0);
    assert_eq!(snap1["version"], v1);
    assert_eq!(snap1["top"][0]["player_id"], p.id.as_str());
    assert_eq!(snap1["top"][0]["name"], "Streamer");
    assert_eq!(snap1["top"][0]["score"], 40);
    assert_eq!(snap1["top"][0]["rank"], 1);
}

/// `Last-Event-ID` equal to the current version sends nothing until the next change; an older
/// one gets the current snapshot at once.
#[tokio::test]
async fn last_event_id_resumes_without_a_duplicate() {
    let app = spawn_app().await;
    let p = app.guest("Resumer").await;
    app.scored(&p, 5).await;
    let current = app.leaderboard().await.version;
    assert!(current > 0);
    let url = format!("{}/api/leaderboard/stream", app.base);

    let (_, up_to_date) = SseClient::connect(&url, Some(&current.to_string())).await;
    let mut up_to_date = up_to_date.unwrap();
    assert!(up_to_date.next(WAIT).await.unwrap().retry.is_some());
    assert!(
        up_to_date
            .next_snapshot(Duration::from_millis(700))
            .await
            .is_none(),
        "nothing new yet"
    );

    let (_, behind) = SseClient::connect(&url, Some("0")).await;
    let (v, _) = behind.unwrap().next_snapshot(WAIT).await.unwrap();
    assert_eq!(v, current);

    // Also as a query parameter (EventSource cannot set headers on the first connect).
    let (_, q) = SseClient::connect(&format!("{url}?last_event_id={current}"), None).await;
    let mut q = q.unwrap();
    q.next(WAIT).await.unwrap();
    assert!(q.next_snapshot(Duration::from_millis(500)).await.is_none());

    app.scored(&p, 5).await;
    let (v2, _) = up_to_date.next_snapshot(WAIT).await.unwrap();
    assert!(v2 > current);
}

/// Pings arrive as comments at `SSE_PING_INTERVAL`, and beyond the cap streams get 503.
#[tokio::test]
async fn pings_flow_and_the_client_cap_answers_503() {
    let app = spawn_app_with(|v| {
        v.insert("SSE_PING_INTERVAL".into(), "200".into());
        v.insert("SSE_MAX_CLIENTS_PER_INSTANCE".into(), "2".into());
    })
    .await;
    let url = format!("{}/api/leaderboard/stream", app.base);
    let (_, a) = SseClient::connect(&url, None).await;
    let (_, b) = SseClient::connect(&url, None).await;
    let mut a = a.unwrap();
    let _b = b.unwrap();
    let saw_ping = a.sees_ping(5, Duration::from_secs(2)).await;
    assert!(saw_ping, "a ping comment within a few intervals");
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers().get("retry-after").unwrap(), "5");
    assert_eq!(client::error_of(r).await.error.code, ErrorCode::Overloaded);
    drop(a);
    // A slot frees when a client leaves.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (s, _c) = SseClient::connect(&url, None).await;
        if s == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "a slot is free again after a client left");
}

/// A client that never reads does not hold back the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_does_not_delay_the_others() {
    let app = spawn_app().await;
    let url = format!("{}/api/leaderboard/stream", app.base);
    // A raw TCP client that sends the request and never reads a byte.
    let mut stuck = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    use tokio::io::AsyncWriteExt;
    stuck
        .write_all(
            b"GET /api/leaderboard/stream HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n\r\n",
        )
        .await
        .unwrap();
    let (_, reader) = SseClient::connect(&url, None).await;
    let mut reader = reader.unwrap();
    reader.next_snapshot(WAIT).await.unwrap();
    let players = app.guests("Busy ", 10).await;
    let mut last = 0;
    for round in 0..30 {
        let p = &players[round % players.len()];
        app.scored(p, 1 + round as i64).await;
        let (v, _) = reader
            .next_snapshot(WAIT)
            .await
            .expect("the reading client keeps receiving");
        assert!(v > last);
        last = v;
    }
    drop(stuck);
}

/// The edge WebSocket: refused without a valid signature, then the current snapshot and
/// every change.
#[tokio::test]
async fn the_edge_websocket_requires_a_signature_and_streams_snapshots() {
    let app = spawn_app().await;
    let p = app.guest("Socket").await;
    let ws_base = app.base.replace("http://", "ws://");
    let path = "/internal/leaderboard/ws";
    let r = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
    assert_eq!(r.status(), 401);
    let stale_t = now() - 300;
    let stale = scoreboard_protocol::edge_signature::sign(
        EDGE_SECRET.as_bytes(),
        stale_t,
        "GET",
        path,
        b"",
    );
    assert!(
        tokio_tungstenite::connect_async(format!("{ws_base}{path}?t={stale_t}&sig={stale}"))
            .await
            .is_err()
    );

    let t = now();
    let sig =
        scoreboard_protocol::edge_signature::sign(EDGE_SECRET.as_bytes(), t, "GET", path, b"");
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_base}{path}?since=0&t={t}&sig={sig}"))
            .await
            .unwrap();
    // Each message is one snapshot, as JSON text.
    let mut next_snapshot = async || -> Snapshot {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        serde_json::from_str(message.to_text().unwrap()).unwrap()
    };
    let snap = next_snapshot().await;
    assert_eq!(snap.version, 0);
    app.scored(&p, 3).await;
    let snap = next_snapshot().await;
    assert!(snap.version > 0);
    assert_eq!(snap.top[0].score, 3);
    ws.send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await
        .unwrap();
}
