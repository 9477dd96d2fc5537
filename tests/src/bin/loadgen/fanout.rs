//! `fanout`: N SSE (or WebSocket) clients on one stream URL (the aggregator's, or the edge's hub), or spread
//! over `--boards` boards that all change at once, while a writer changes the top 10 through
//! the apply path. Reports the delivery latency from the
//! moment each update was sent to each client's receipt (p50/p99/max over all clients and
//! versions), the clients that never saw the final version, and the server's resident memory
//! per connected idle client when its pid is given.

use crate::common::{self, Latency, Minter};
use crate::StackArgs;
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Via {
    /// `GET {aggregator}/api/leaderboard/stream`
    Aggregator,
    /// `GET {edge}/api/leaderboard/stream` (the location's LeaderboardHub)
    Edge,
}

/// How the clients follow the board.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    /// `.../stream`: server-sent events (browsers).
    Sse,
    /// `.../ws`: WebSockets (game clients; the edge only).
    Ws,
}

#[derive(Args, Debug)]
pub(crate) struct FanoutArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Which stream the clients attach to.
    #[arg(long, value_enum, default_value = "aggregator")]
    via: Via,
    /// SSE or WebSocket clients.
    #[arg(long, value_enum, default_value = "sse")]
    transport: Transport,
    /// Clients.
    #[arg(long, default_value_t = 1_000)]
    clients: usize,
    /// Top-10 changes the writer makes.
    #[arg(long, default_value_t = 50)]
    updates: usize,
    /// Changes per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Clients connecting at once (connection set-up is not what is measured).
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Spread the clients over this many boards (`fo-1` .. `fo-<n>`, created with
    /// ADMIN_API_KEY); every update then changes all of them at once. 0: the `global` alias.
    #[arg(long, default_value_t = 0)]
    boards: usize,
    /// Pids of the server processes whose resident memory and CPU time are measured (e.g. the
    /// aggregator's, or workerd's), summed.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    via: Via,
    transport: Transport,
    url: String,
    boards: usize,
    clients: usize,
    connected: usize,
    updates: usize,
    final_version: i64,
    missed_final: usize,
    delivery: Latency,
    server_rss_kib_before: Option<u64>,
    server_rss_kib_connected: Option<u64>,
    server_bytes_per_client: Option<f64>,
    /// CPU the `--server-pid` processes used from the first update until every client had the
    /// final version, and per delivered event.
    server_cpu_s: Option<f64>,
    server_cpu_us_per_delivery: Option<f64>,
}

/// What every client records: when it saw which version.
#[derive(Default)]
struct Seen {
    last: AtomicI64,
}

pub(crate) async fn run(args: FanoutArgs) -> anyhow::Result<bool> {
    let mut args = args;
    if args.stack.quick {
        args.clients = args.clients.min(50);
        args.updates = args.updates.min(10);
    }
    let stack = &args.stack;
    let base = match args.via {
        Via::Aggregator => stack.aggregator.clone(),
        Via::Edge => stack.edge.clone(),
    };
    let board_ids: Vec<String> = (1..=args.boards).map(|b| format!("fo-{b}")).collect();
    common::ensure_boards(stack, &common::http(4), &board_ids, None).await?;
    let tail = match args.transport {
        Transport::Sse => "stream",
        Transport::Ws => "ws",
    };
    let url_of = |c: usize| match board_ids.len() {
        0 => format!("{base}/api/leaderboard/{tail}"),
        n => format!("{base}/api/boards/{}/{tail}", board_ids[c % n]),
    };
    let url = url_of(0);
    let lanes = board_ids.len().max(1);
    let rss_before = common::rss_kib_total(&args.server_pid);

    // The clients: one shared HTTP client, one streaming request each.
    let sse_http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let connected = Arc::new(AtomicUsize::new(0));
    // (board lane, version, when): versions are per board.
    let receipts: Arc<Mutex<Vec<(usize, i64, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let seen: Arc<Vec<Seen>> = Arc::new((0..args.clients).map(|_| Seen::default()).collect());
    let gate = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    let mut tasks = Vec::with_capacity(args.clients);
    for c in 0..args.clients {
        let http = sse_http.clone();
        let url = url_of(c);
        let lane = c % lanes;
        let connected = connected.clone();
        let receipts = receipts.clone();
        let seen = seen.clone();
        let gate = gate.clone();
        let transport = args.transport;
        tasks.push(tokio::spawn(async move {
            let mut permit = Some(gate.acquire_owned().await);
            let mut on_version = |id: i64| {
                if permit.take().is_some() {
                    connected.fetch_add(1, Ordering::Relaxed);
                }
                seen[c].last.fetch_max(id, Ordering::Relaxed);
                receipts
                    .lock()
                    .expect("not poisoned")
                    .push((lane, id, Instant::now()));
            };
            match transport {
                Transport::Sse => follow_sse(&http, &url, c, &mut on_version).await,
                Transport::Ws => follow_ws(&url, &mut on_version).await,
            }
        }));
    }
    // Wait until every client got its first snapshot (or a minute passed).
    let deadline = Instant::now() + Duration::from_secs(60 + args.clients as u64 / 100);
    while connected.load(Ordering::Relaxed) < args.clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connected_n = connected.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = common::rss_kib_total(&args.server_pid);
    receipts.lock().expect("not poisoned").clear();
    let cpu_before = common::cpu_seconds(&args.server_pid);

    let (sent_at, final_versions) = if board_ids.is_empty() {
        write_global(stack, &args).await?
    } else {
        write_boards(stack, &args, &board_ids).await?
    };
    // Every client should reach the final version: give them a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let final_version = final_versions.iter().copied().max().unwrap_or(0);
    let missed = |seen: &[Seen]| {
        seen.iter()
            .enumerate()
            .filter(|(c, s)| s.last.load(Ordering::Relaxed) < final_versions[c % lanes])
            .count()
    };
    while missed(&seen) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missed_final = missed(&seen);
    let server_cpu_s = cpu_before
        .zip(common::cpu_seconds(&args.server_pid))
        .map(|(before, after)| after - before);
    let delivery: Vec<Duration> = receipts
        .lock()
        .expect("not poisoned")
        .iter()
        .filter_map(|(lane, v, at)| {
            sent_at
                .get(&(*lane, *v))
                .map(|t0| at.saturating_duration_since(*t0))
        })
        .collect();
    for t in &tasks {
        t.abort();
    }
    let delivery = Latency::of(delivery);
    let server_cpu_us_per_delivery =
        server_cpu_s.map(|cpu| cpu * 1e6 / delivery.count.max(1) as f64);
    let per_client = match (rss_before, rss_connected) {
        (Some(b), Some(a)) if connected_n > 0 => {
            Some((a.saturating_sub(b) as f64 * 1024.0) / connected_n as f64)
        }
        _ => None,
    };
    println!("| via | boards | clients | connected | updates | deliveries | p50 ms | p99 ms | max ms | missed final | server bytes/client | server CPU µs/delivery |");
    println!(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    println!(
        "| {:?} | {} | {} | {connected_n} | {} | {} | {:.1} | {:.1} | {:.1} | {missed_final} | {} | {} |",
        args.via,
        lanes,
        args.clients,
        args.updates,
        delivery.count,
        delivery.p50_ms,
        delivery.p99_ms,
        delivery.max_ms,
        per_client.map_or("-".into(), |b| format!("{b:.0}")),
        server_cpu_us_per_delivery.map_or("-".into(), |c| format!("{c:.1}")),
    );
    let ok = connected_n == args.clients && missed_final == 0;
    common::write_json(
        stack,
        &Report {
            scenario: "fanout",
            via: args.via,
            transport: args.transport,
            url,
            boards: args.boards,
            clients: args.clients,
            connected: connected_n,
            updates: args.updates,
            final_version,
            missed_final,
            delivery,
            server_rss_kib_before: rss_before,
            server_rss_kib_connected: rss_connected,
            server_bytes_per_client: per_client,
            server_cpu_s,
            server_cpu_us_per_delivery,
        },
    )?;
    Ok(ok)
}

/// When each (board lane, version) was sent, and each lane's final version.
type Sent = (HashMap<(usize, i64), Instant>, Vec<i64>);

/// The writer on `global`: ten players lifted above the current leader first (untimed, in
/// chunks of the largest allowed token), so that they fill the top 10; then every measured
/// update adds a point to one of them, which changes the top 10 and is published.
async fn write_global(stack: &StackArgs, args: &FanoutArgs) -> anyhow::Result<Sent> {
    let http = common::http(16);
    let run_id = scoreboard_tests::random_suffix(6);
    let players = common::sign_in(stack, &http, &run_id, 10).await?;
    let minter = Minter::new(stack);
    let board: serde_json::Value = http
        .get(format!("{}/api/leaderboard", stack.aggregator))
        .send()
        .await?
        .json()
        .await?;
    let leader = board["top"][0]["score"].as_i64().unwrap_or(0).max(0);
    for p in &players {
        let mut total = 0;
        while total <= leader {
            let chunk = (leader + 1 - total).min(1_000_000);
            common::redeem(&http, stack, &minter, p, chunk, "lifting a writer").await?;
            total += chunk;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut sent_at = HashMap::new();
    let mut final_version = 0;
    let every = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    for u in 0..args.updates {
        tokio::time::sleep_until((start + every.mul_f64(u as f64)).into()).await;
        let p = &players[u % players.len()];
        let t0 = Instant::now();
        let r = common::redeem(&http, stack, &minter, p, 1, "the writer's update").await?;
        let v: serde_json::Value = r.json().await?;
        let version = v["leaderboard_version"].as_i64().unwrap_or_default();
        sent_at.insert((0, version), t0);
        final_version = final_version.max(version);
    }
    Ok((sent_at, vec![final_version]))
}

/// The writer on many boards: one player per board; every update is one redemption per board,
/// all sent at once, each moving its board's leader (a fresh board's top 10 changes with every
/// point).
async fn write_boards(
    stack: &StackArgs,
    args: &FanoutArgs,
    boards: &[String],
) -> anyhow::Result<Sent> {
    let http = common::http(boards.len().max(16));
    let run_id = scoreboard_tests::random_suffix(6);
    let players = common::sign_in(stack, &http, &run_id, boards.len()).await?;
    let minter = Minter::new(stack);
    let mut sent_at = HashMap::new();
    let mut finals = vec![0; boards.len()];
    let every = Duration::from_secs_f64(1.0 / args.rate);
    let start = Instant::now();
    for u in 0..args.updates {
        tokio::time::sleep_until((start + every.mul_f64(u as f64)).into()).await;
        let t0 = Instant::now();
        let sends = boards.iter().zip(&players).map(|(b, p)| {
            let (http, minter) = (&http, &minter);
            async move {
                let token = minter.mint_on(&p.id, 1, std::slice::from_ref(b))?;
                let r = common::internal_score(http, stack, &p.session, &token.token)
                    .send()
                    .await?;
                anyhow::ensure!(
                    r.status() == 200,
                    "an update of {b} answered {}",
                    r.status()
                );
                let v: serde_json::Value = r.json().await?;
                Ok(v["leaderboard_version"].as_i64().unwrap_or_default())
            }
        });
        let versions = futures_util::future::try_join_all(sends).await?;
        for (lane, version) in versions.into_iter().enumerate() {
            sent_at.insert((lane, version), t0);
            finals[lane] = finals[lane].max(version);
        }
    }
    Ok((sent_at, finals))
}

/// One SSE client: every event's `id` (a version) to `on_version`.
async fn follow_sse(http: &reqwest::Client, url: &str, c: usize, on_version: &mut impl FnMut(i64)) {
    let resp = match http
        .get(url)
        .header("accept", "text/event-stream")
        // One address per client, so the edge's per-IP limits do not apply to the test.
        .header(
            "cf-connecting-ip",
            format!("10.9.{}.{}", c / 256 % 256, c % 256),
        )
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => r,
        _ => return,
    };
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(Ok(chunk)) = body.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if let Some(id) = event
                .lines()
                .find_map(|l| l.strip_prefix("id:"))
                .and_then(|v| v.trim().parse::<i64>().ok())
            {
                on_version(id);
            }
        }
    }
}

/// One WebSocket client: every snapshot's `version` to `on_version` (read without parsing
/// the whole snapshot, so that the load generator's own work stays small).
async fn follow_ws(url: &str, on_version: &mut impl FnMut(i64)) {
    let url = url.replacen("http://", "ws://", 1);
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = msg {
            if let Some(v) = version_of(&text) {
                on_version(v);
            }
        }
    }
}

/// The `"version":` of a snapshot's JSON (the top-level one comes before `top`).
fn version_of(json: &str) -> Option<i64> {
    let at = json.find("\"version\":")? + "\"version\":".len();
    let digits: String = json[at..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
