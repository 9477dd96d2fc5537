//! `read`: `GET /api/leaderboard` and `GET /api/players/{id}` at a closed-loop concurrency for
//! a while, on the aggregator or through the edge; throughput and latency of each. With
//! `--board`, that board's reads instead: keyset pages of its entries (`entries`, each reader
//! walking on with the cursor) and around-me (`players/{id}?around=5`).

use crate::common::{self, Latency, Outcomes};
use crate::StackArgs;
use clap::Args;
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub(crate) struct ReadArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Read through the edge instead of straight from the aggregator.
    #[arg(long)]
    via_edge: bool,
    /// Seconds per route.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Scored players whose pages are read (fresh guests of this run).
    #[arg(long, default_value_t = 100)]
    players: usize,
    /// Read this board's entries and around-me instead (created with ADMIN_API_KEY unless it
    /// is `global`).
    #[arg(long)]
    board: Option<String>,
    /// Entries per page with `--board` (1–100; the API's default is 50, the page asks for 10).
    #[arg(long, default_value_t = 50)]
    page_size: usize,
}

/// The routes read, in order.
fn routes(board: Option<&str>) -> Vec<String> {
    match board {
        None => vec!["/api/leaderboard".into(), "/api/players/{id}".into()],
        Some(b) => vec![
            format!("/api/boards/{b}/entries"),
            format!("/api/boards/{b}/players/{{id}}?around=5"),
        ],
    }
}

#[derive(Debug, Serialize)]
struct RouteReport {
    route: String,
    requests: usize,
    per_s: f64,
    outcomes: Outcomes,
    latency: Latency,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    base: String,
    concurrency: usize,
    page_size: usize,
    routes: Vec<RouteReport>,
}

pub(crate) async fn run(args: ReadArgs) -> anyhow::Result<bool> {
    let mut args = args;
    if args.stack.quick {
        args.seconds = args.seconds.min(1.0);
        args.players = args.players.min(10);
        args.concurrency = args.concurrency.min(8);
    }
    let stack = &args.stack;
    let base = if args.via_edge {
        stack.edge.clone()
    } else {
        stack.aggregator.clone()
    };
    let http = common::http(args.concurrency);
    let run_id = scoreboard_tests::random_suffix(6);
    let players = common::sign_in(stack, &http, &run_id, args.players).await?;
    let minter = common::Minter::new(stack);
    let boards: Vec<String> = args.board.iter().cloned().collect();
    common::ensure_boards(stack, &http, &boards, None).await?;
    for (i, p) in players.iter().enumerate() {
        let points = 10 + i as i64;
        let token = if boards.is_empty() {
            minter.mint(&p.id, points)?
        } else {
            minter.mint_on(&p.id, points, &boards)?
        };
        let r = common::internal_score(&http, stack, &p.session, &token.token)
            .send()
            .await?;
        anyhow::ensure!(
            r.status() == 200,
            "scoring a reader's player answered {}",
            r.status()
        );
    }
    // Each reader of pages walks on with the cursor it was given, from the top again at the
    // end: the reads cover the whole board, not only its first page.
    let cursors: Vec<std::sync::Mutex<Option<String>>> = (0..args.concurrency)
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    let cursors = std::sync::Arc::new(cursors);

    // Board reads parse only what the reader needs (the cursor, an error's code): the load
    // generator shares the machine's cores with the aggregator and Redis, and building a
    // JSON tree of every 50-entry page would take its share from them. (The single-board
    // routes keep the parse they always had, so runs against code before boards compare.)
    let board_reads = args.board.is_some();
    let mut reports = Vec::new();
    let mut ok = true;
    for route in routes(args.board.as_deref()) {
        let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
        let started = Instant::now();
        let results: Vec<(String, Duration)> = stream::iter(0..)
            .take_while(|_| futures_util::future::ready(Instant::now() < deadline))
            .map(|i: usize| {
                let paging = route.ends_with("/entries");
                let slot = i % cursors.len();
                let url = if paging {
                    let after = cursors[slot].lock().expect("not poisoned").clone();
                    let q = after.map(|a| format!("&after={a}")).unwrap_or_default();
                    format!("{base}{route}?limit={}{q}", args.page_size)
                } else {
                    format!(
                        "{base}{}",
                        route.replace("{id}", &players[i % players.len()].id)
                    )
                };
                let (http, cursors) = (http.clone(), cursors.clone());
                async move {
                    let t0 = Instant::now();
                    let key = match http.get(url).send().await {
                        Ok(r) if board_reads => {
                            let status = r.status().as_u16();
                            let body: BoardRead = r.json().await.unwrap_or_default();
                            if paging {
                                *cursors[slot].lock().expect("not poisoned") = body.next;
                            }
                            common::outcome_of(status, body.error.as_ref().map(|e| e.code.as_str()))
                        }
                        Ok(r) => {
                            let status = r.status().as_u16();
                            let body: serde_json::Value = r.json().await.unwrap_or_default();
                            common::outcome_key(status, &body)
                        }
                        Err(_) => "0 no answer".into(),
                    };
                    (key, t0.elapsed())
                }
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        let elapsed = started.elapsed().as_secs_f64();
        let mut outcomes = Outcomes::new();
        for (k, _) in &results {
            *outcomes.entry(k.clone()).or_default() += 1;
        }
        ok &= outcomes.keys().all(|k| k == "200");
        reports.push(RouteReport {
            route,
            requests: results.len(),
            per_s: results.len() as f64 / elapsed,
            outcomes,
            latency: Latency::of(results.into_iter().map(|(_, d)| d).collect()),
        });
    }
    println!("| base | route | concurrency | requests | per second | p50 ms | p99 ms | max ms | outcomes |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in &reports {
        println!(
            "| {base} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:?} |",
            r.route,
            args.concurrency,
            r.requests,
            r.per_s,
            r.latency.p50_ms,
            r.latency.p99_ms,
            r.latency.max_ms,
            r.outcomes
        );
    }
    common::write_json(
        stack,
        &Report {
            scenario: "read",
            base,
            concurrency: args.concurrency,
            page_size: args.page_size,
            routes: reports,
        },
    )?;
    Ok(ok)
}

/// What a board reader reads of an answer; the rest is skipped unparsed.
#[derive(Default, serde::Deserialize)]
struct BoardRead {
    next: Option<String>,
    error: Option<ErrorCode>,
}

#[derive(Default, serde::Deserialize)]
struct ErrorCode {
    code: String,
}
