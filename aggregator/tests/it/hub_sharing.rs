//! Many SSE clients on one edge hub share one upstream WebSocket, the hub closes it when its
//! last client leaves, and opens it again for the next client; past `HUB_CLIENTS_PER_OBJECT`
//! the root hub sends clients to relays it feeds, and the aggregator still sees one socket. Against an aggregator process
//! of its own: the gauges of in-process aggregators are shared by every test of this binary.

use crate::helpers::{client, process_vars, SseClient, BIN, EDGE_SECRET};
use scoreboard_tests::{fresh_database, AggregatorProcess, EdgeServer, TestDatabase};
use std::time::Duration;

async fn gauge(metrics: &str, name: &str) -> f64 {
    let text = reqwest::get(metrics).await.unwrap().text().await.unwrap();
    client::metric(&text, name)
}

async fn eventually(what: &str, metrics: &str, want: f64) {
    for _ in 0..100 {
        if gauge(metrics, "ws_subscribers_active").await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: ws_subscribers_active never became {want}");
}

/// An aggregator process on a fresh database and the edge in front of it, with `extra`
/// variables for the edge.
async fn hubs_of(extra: &[(&str, &str)]) -> (TestDatabase, AggregatorProcess, EdgeServer) {
    let db = fresh_database().await.unwrap();
    let server = AggregatorProcess::start(BIN, &process_vars(&db.url, &[])).await;
    let mut vars = vec![
        ("AGGREGATOR_URL", server.base.as_str()),
        ("EDGE_FORWARD_SECRET", EDGE_SECRET),
        // A departed client is noticed when the next bytes (at the latest a ping) fail to go out.
        ("SSE_PING_INTERVAL", "300"),
    ];
    vars.extend_from_slice(extra);
    let edge = EdgeServer::start(&vars).await.unwrap();
    (db, server, edge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_clients_of_one_hub_share_one_upstream_websocket() {
    let _heavy = scoreboard_tests::heavy().await;
    let (_db, server, edge) = hubs_of(&[]).await;
    let (agg, metrics) = (server.base.clone(), server.metrics.clone());
    let url = format!("{}/api/leaderboard/stream", edge.url());
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (status, c) = SseClient::connect(&url, None).await;
        assert_eq!(status, 200);
        let mut c = c.unwrap();
        c.next_snapshot(Duration::from_secs(15))
            .await
            .expect("a snapshot through the hub");
        clients.push(c);
    }
    eventually("eight clients", &metrics, 1.0).await;
    drop(clients);
    eventually("the last client left", &metrics, 0.0).await;

    // A client arriving after the hub closed its upstream reopens it and gets live updates,
    // not the snapshot the hub kept from before.
    let (status, c) = SseClient::connect(&url, None).await;
    assert_eq!(status, 200);
    let mut late = c.unwrap();
    let (before, _) = late
        .next_snapshot(Duration::from_secs(15))
        .await
        .expect("the kept snapshot");
    eventually("a client came back", &metrics, 1.0).await;
    let http = reqwest::Client::new();
    let guest = client::guest(&http, &agg, "Latecomer").await;
    let id = guest.id.as_str();
    client::adjust(&http, &agg, id, None, 42).await;
    let (after, snap) = late
        .next_snapshot(Duration::from_secs(15))
        .await
        .expect("a live update after the upstream was reopened");
    assert!(after > before);
    assert_eq!(snap["top"][0]["player_id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_hub_sends_clients_to_relays_it_feeds_and_the_aggregator_sees_one_socket() {
    let _heavy = scoreboard_tests::heavy().await;
    let (_db, server, edge) = hubs_of(&[("HUB_CLIENTS_PER_OBJECT", "2")]).await;
    let (agg, metrics) = (server.base.clone(), server.metrics.clone());
    let url = format!("{}/api/leaderboard/stream", edge.url());
    let mut clients = Vec::new();
    let mut served_by = Vec::new();
    for _ in 0..7 {
        let (status, c) = SseClient::connect(&url, None).await;
        assert_eq!(status, 200);
        let mut c = c.unwrap();
        c.next_snapshot(Duration::from_secs(15))
            .await
            .expect("a snapshot through a hub");
        let hub = c
            .headers
            .get("x-scoreboard-hub")
            .map(|v| v.to_str().unwrap().to_owned());
        served_by.push(hub.expect("the hub that serves the stream is named"));
        clients.push(c);
    }
    let count = |name: &str| served_by.iter().filter(|h| *h == name).count();
    assert_eq!(count("0"), 2, "the root serves its limit: {served_by:?}");
    assert!(
        count("relay-0") >= 2 && count("relay-1") >= 1,
        "the rest go to relays, a new one when one is full: {served_by:?}"
    );
    eventually("root and relays", &metrics, 1.0).await;

    let http = reqwest::Client::new();
    let guest = client::guest(&http, &agg, "Relayed").await;
    let version = client::adjust(&http, &agg, &guest.id, None, 9).await;
    for (c, hub) in clients.iter_mut().zip(&served_by) {
        let seen = c.until_version(version, Duration::from_secs(15)).await;
        assert_eq!(seen, version, "a client of hub {hub} got the change");
    }
    drop(clients);
    eventually("every client left", &metrics, 0.0).await;
}
