//! Slow and abusive SSE clients against the aggregator process: a thousand connections that
//! never read, and a few hundred that connect and vanish, while a normal client keeps getting
//! every change up to the last one; the server's resident memory does not grow with the
//! updates it cannot deliver (each stream holds the latest snapshot, never a queue).

use crate::helpers::*;
use scoreboard_protocol::snapshot::ScoreResponse;
use scoreboard_tests::{fresh_database, AggregatorProcess};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const STALLED: usize = 1_000;
const VANISHING: usize = 300;
const UPDATES: usize = 60;

/// An edge-signed `POST /internal/scores` to the process, which must apply it.
async fn post_score(
    http: &reqwest::Client,
    base: &str,
    session: &str,
    token: &str,
) -> ScoreResponse {
    let r = client::internal_score(http, base, EDGE_SECRET, session, token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Nine players with the longest names (made of `letter`) and a score each, so that with the
/// test's own player every snapshot is a full board (~1.3 KB).
async fn fill_the_board(http: &reqwest::Client, base: &str, letter: char) {
    for i in 0..9 {
        let name = format!("{i}-{}", letter.to_string().repeat(30));
        let p = client::guest(http, base, &name).await;
        post_score(http, base, &p.token, &mint(&p.id, 10 + i, 0, 300, now())).await;
    }
}

/// A player `name` who leads the board with `UPDATES` changes in a row; the last version.
async fn push_updates(http: &reqwest::Client, base: &str, name: &str) -> i64 {
    let player = client::guest(http, base, name).await;
    let mut last_version = 0;
    for i in 0..UPDATES {
        let token = mint(&player.id, 1_000 + i as i64, 0, 300, now());
        last_version = post_score(http, base, &player.token, &token)
            .await
            .leaderboard_version;
    }
    last_version
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
    let _heavy = scoreboard_tests::heavy().await;
    let db = fresh_database().await.unwrap();
    let vars = process_vars(
        &db.url,
        &[
            ("SSE_MAX_CLIENTS_PER_INSTANCE", "5000"),
            ("SSE_PING_INTERVAL", "1000"),
        ],
    );
    let port: u16 = vars["PORT"].parse().unwrap();
    let server = AggregatorProcess::start(BIN, &vars).await;
    let base = server.base.clone();
    let rss_kib = || server.stats().rss_kib;
    let http = reqwest::Client::new();
    fill_the_board(&http, &base, 'W').await;
    let (status, normal) =
        SseClient::connect(&format!("{base}/api/leaderboard/stream"), None).await;
    assert_eq!(status, 200);
    let mut normal = normal.unwrap();
    normal.next_snapshot(Duration::from_secs(10)).await.unwrap();
    let before = rss_kib();

    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        stalled.push(open_stream(port).await);
    }
    for _ in 0..VANISHING {
        drop(open_stream(port).await);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let connected = rss_kib();

    // Changes the stalled clients cannot take: each would queue in a server that buffered.
    let last_version = push_updates(&http, &base, "Pusher").await;
    // The normal client gets the last change (skipping versions is allowed, stopping is not).
    let seen = normal
        .until_version(last_version, Duration::from_secs(10))
        .await;
    assert_eq!(
        seen, last_version,
        "the reading client got the final version"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = rss_kib();

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
}

/// Connections to one hub: fewer than straight at the aggregator, because locally every one
/// also passes through wrangler's dev proxy (BENCHMARKS.md).
const EDGE_CLIENTS: usize = 200;
const EDGE_VANISHING: usize = 100;

/// What one run of [`hub_under`] measured, in KiB of resident memory.
#[derive(Debug)]
struct HubRun {
    per_client: u64,
    worker_growth: u64,
    proxy_growth: u64,
}

/// A fresh edge whose hub has `EDGE_CLIENTS` extra clients that read everything (`stall` =
/// false) or nothing at all (true), plus vanishing ones, while `UPDATES` changes go out; a
/// normal client must get the last one. Measures the `workerd` that runs the worker (and,
/// apart, wrangler's dev proxy, which is local tooling and not the product).
async fn hub_under(base: &str, metrics: &str, stall: bool) -> HubRun {
    let edge = scoreboard_tests::EdgeServer::start(&[
        ("AGGREGATOR_URL", base),
        ("EDGE_FORWARD_SECRET", EDGE_SECRET),
        ("SSE_PING_INTERVAL", "1000"),
    ])
    .await
    .unwrap();
    let edge_port: u16 = edge.url().rsplit(':').next().unwrap().parse().unwrap();
    let worker = edge
        .workerd_pid()
        .expect("wrangler dev runs the worker in workerd");
    let proxy = edge.dev_proxy_pid().expect("wrangler dev runs its proxy");
    let rss = |pid| scoreboard_tests::ProcStats::of(pid).rss_kib;
    let http = reqwest::Client::new();
    let (status, normal) =
        SseClient::connect(&format!("{}/api/leaderboard/stream", edge.url()), None).await;
    assert_eq!(status, 200);
    let mut normal = normal.unwrap();
    normal.next_snapshot(Duration::from_secs(15)).await.unwrap();
    let (before, proxy_before) = (rss(worker), rss(proxy));

    let mut clients = Vec::with_capacity(EDGE_CLIENTS);
    for _ in 0..EDGE_CLIENTS {
        let mut stream = open_stream(edge_port).await;
        clients.push(tokio::spawn(async move {
            if stall {
                std::future::pending::<()>().await;
            }
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 16 * 1024];
            while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
        }));
    }
    for _ in 0..EDGE_VANISHING {
        drop(open_stream(edge_port).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let connected = rss(worker);

    let last_version = push_updates(&http, base, &format!("Edge pusher {stall}")).await;
    // A generous bound: locally one Durable Object writes to every client in turn, through
    // wrangler's proxy, on a machine that may be busy with other tests.
    let seen = normal
        .until_version(last_version, Duration::from_secs(60))
        .await;
    assert_eq!(
        seen,
        last_version,
        "the normal client of the hub (beside {EDGE_CLIENTS} clients that {}) got the final \
         version",
        if stall {
            "never read"
        } else {
            "read everything"
        }
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = client::get_text(&http, metrics).await;
    assert!(
        text.lines().any(|l| l == "ws_subscribers_active 1"),
        "one upstream for the whole hub"
    );
    let run = HubRun {
        per_client: connected.saturating_sub(before) * 1024 / EDGE_CLIENTS as u64,
        worker_growth: rss(worker).saturating_sub(connected),
        proxy_growth: rss(proxy).saturating_sub(proxy_before),
    };
    for c in clients {
        c.abort();
    }
    run
}

/// The same abuse through the edge: stalled clients of a hub cost the worker no more memory
/// than clients that read everything (nothing queues per client in the hub), its other
/// clients still get the final version, and the aggregator sees one subscriber per hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_of_an_edge_hub_cost_no_more_than_readers_and_stop_nobody() {
    let _heavy = scoreboard_tests::heavy().await;
    let db = fresh_database().await.unwrap();
    let vars = process_vars(&db.url, &[]);
    let server = AggregatorProcess::start(BIN, &vars).await;
    let http = reqwest::Client::new();
    fill_the_board(&http, &server.base, 'E').await;
    // Each on a fresh workerd, so neither inherits the other's heap.
    let readers = hub_under(&server.base, &server.metrics, false).await;
    let stalled = hub_under(&server.base, &server.metrics, true).await;
    for (what, run) in [("reading", &readers), ("stalled", &stalled)] {
        println!(
            "{EDGE_CLIENTS} {what} hub clients: {} bytes each in the worker's workerd, which \
             grew {} KiB over {UPDATES} changes (wrangler's dev proxy: +{} KiB)",
            run.per_client, run.worker_growth, run.proxy_growth
        );
    }
    // A hub that queued every snapshot for each stalled client would hold EDGE_CLIENTS ×
    // UPDATES × ~1.4 KB (~17 MB) more than for readers, whose snapshots are gone.
    assert!(
        stalled.worker_growth <= readers.worker_growth + readers.worker_growth / 2 + 8 * 1024,
        "stalled clients cost the worker more than readers: {stalled:?} vs {readers:?}"
    );
}
