//! Slow and abusive SSE clients against the aggregator process: a thousand connections that
//! never read, and a few hundred that connect and vanish, while a normal client keeps getting
//! every change up to the last one; the server's resident memory does not grow with the
//! updates it cannot deliver (each stream holds the latest snapshot, never a queue).

mod common;
use common::*;
use scoreboard_protocol::edge_signature;
use scoreboard_tests::sse::SseClient;
use scoreboard_tests::stack::EDGE_SECRET;
use scoreboard_tests::{client, free_port, fresh_database};
use serde_json::json;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_scoreboard-aggregator");
const STALLED: usize = 1_000;
const VANISHING: usize = 300;
const UPDATES: usize = 60;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// An edge-signed `POST /internal/scores` to the process, which must apply it.
async fn post_score(
    http: &reqwest::Client,
    base: &str,
    session: &str,
    token: &str,
) -> serde_json::Value {
    let body = json!({"action_token": token, "edge_region": "test"}).to_string();
    let sig = edge_signature::header_value(
        EDGE_SECRET.as_bytes(),
        now(),
        "POST",
        "/internal/scores",
        body.as_bytes(),
    );
    let r = http
        .post(format!("{base}/internal/scores"))
        .header("x-edge-signature", sig)
        .header("content-type", "application/json")
        .bearer_auth(session)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn open_stream(port: u16) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /api/leaderboard/stream HTTP/1.1\r\nHost: scoreboard\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    s
}

/// A thousand stalled readers and vanishing clients cost bounded memory and delay nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_vanishing_sse_clients_neither_grow_memory_nor_stop_the_others() {
    let db = fresh_database().await.unwrap();
    let port = free_port();
    let mut vars = base_vars(&db.url);
    for (k, v) in [
        ("PORT", port.to_string()),
        ("METRICS_PORT", free_port().to_string()),
        ("SSE_MAX_CLIENTS_PER_INSTANCE", "5000".into()),
        ("SSE_PING_INTERVAL", "1000".into()),
        ("LOG_LEVEL", "error".into()),
    ] {
        vars.insert(k.into(), v);
    }
    let mut server = tokio::process::Command::new(BIN)
        .arg("serve")
        .env_clear()
        .envs(&vars)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = server.id().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{base}/health/live")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nine more players with the longest names, so every snapshot is a full board (~1.3 KB).
    for i in 0..9 {
        let p = client::guest(&http, &base, &format!("{i}-{}", "W".repeat(30))).await;
        post_score(&http, &base, &p.token, &mint(&p.id, 10 + i, 0, 300, now())).await;
    }
    let (status, normal) =
        SseClient::connect(&format!("{base}/api/leaderboard/stream"), None).await;
    assert_eq!(status, 200);
    let mut normal = normal.unwrap();
    normal.next_snapshot(Duration::from_secs(10)).await.unwrap();
    let before = rss_kib(pid);

    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        stalled.push(open_stream(port).await);
    }
    for _ in 0..VANISHING {
        drop(open_stream(port).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let connected = rss_kib(pid);

    // Changes the stalled clients cannot take: each would queue in a server that buffered.
    let player = client::guest(&http, &base, "Pusher").await;
    let mut last_version = 0;
    for i in 0..UPDATES {
        let token = mint(&player.id, 1_000 + i as i64, 0, 300, now());
        let v = post_score(&http, &base, &player.token, &token).await;
        last_version = v["leaderboard_version"].as_i64().unwrap();
    }
    // The normal client gets the last change (skipping versions is allowed, stopping is not).
    let mut seen = 0;
    while seen < last_version {
        match normal.next_snapshot(Duration::from_secs(10)).await {
            Some((v, _)) => seen = v,
            None => break,
        }
    }
    assert_eq!(
        seen, last_version,
        "the reading client got the final version"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = rss_kib(pid);

    let per_client = (connected.saturating_sub(before)) as f64 * 1024.0 / STALLED as f64;
    let growth = after.saturating_sub(connected);
    println!(
        "rss: {before} KiB before, {connected} KiB with {STALLED} stalled clients \
         ({per_client:.0} bytes each), {after} KiB after {UPDATES} undeliverable changes \
         (+{growth} KiB)"
    );
    // A buffering server would hold UPDATES snapshots per stalled client (~80 MB here).
    assert!(
        growth < 8 * 1024,
        "memory grew by {growth} KiB while {STALLED} clients stalled"
    );
    drop(stalled);
    let _ = server.start_kill();
}
