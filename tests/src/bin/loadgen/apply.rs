//! `apply` and `edge`: score updates at a closed-loop concurrency or an open-loop rate, then
//! the exactly-once check against PostgreSQL: every acknowledged update is one `score_events`
//! row, no token is applied twice, nothing refused for certain was applied, and each player's
//! total equals the points of their applied events.

use crate::common::{self, Latency, Minter, Outcomes, Player};
use crate::StackArgs;
use anyhow::Context;
use clap::Args;
use futures_util::stream::{self, StreamExt};
use scoreboard_tests::exactly_once::{Ledger, Verification};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    stack: StackArgs,
    /// Players the updates are spread over (fresh guests of this run).
    #[arg(long, default_value_t = 500)]
    players: usize,
    /// Updates to send (closed loop), or the upper bound with `--rate`.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests in flight at once (closed loop).
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Open loop: requests per second, sent on schedule whatever the answers do; latency is
    /// measured from the scheduled time, so queueing is not hidden.
    #[arg(long)]
    rate: Option<f64>,
    /// Share of requests that resend a token already sent (replays): answered 409, never
    /// applied twice.
    #[arg(long, default_value_t = 0.0)]
    replays: f64,
    /// Boards each token names: 1 is a plain token for `global` (no `brd`); more names
    /// `global` and `load-2` .. `load-<n>` (created with ADMIN_API_KEY), all applied in the
    /// token's one transaction.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    boards: u8,
    /// The kind of the boards besides `global` (an all-time `sum`): `sum` like it, or `mixed`,
    /// the kinds a token of a real game names together, alternating a level's best time
    /// (ascending `best`, `load-<i>-best`) and a mode's rating (descending `latest`,
    /// `load-<i>-latest`).
    #[arg(long, value_enum, default_value_t = Kinds::Sum)]
    kinds: Kinds,
    /// The `reset` of the boards the load creates (`never`, `daily`, a cron expression...).
    /// With `--boards 1`, tokens then name the one board `load-1` instead of being plain
    /// `global` tokens, so a board that resets and one that never does compare alike.
    #[arg(long)]
    reset: Option<String>,
    /// Processes whose CPU time the run reports per acknowledged update (e.g. the workerd that
    /// runs the edge worker), comma-separated.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// `apply` only: each update goes to `POST /internal/scores/check`, checked as the score
    /// path checks it and not applied: the same HTTP path without the batcher, the "empty"
    /// baseline of the benchmarks. Nothing is applied, so there is no exactly-once check.
    #[arg(long)]
    check_only: bool,
    /// Before the clock starts, every player scores once, so that the board holds all
    /// `--players` (e.g. 100,000) while the run is measured.
    #[arg(long)]
    warm: bool,
    /// A shell command run just before the clock starts (after signing in and warming up),
    /// e.g. to turn a profiler's collection on; the run fails if it does.
    #[arg(long)]
    on_start: Option<String>,
    /// A shell command run just after the last answer, e.g. to dump a profile.
    #[arg(long)]
    on_stop: Option<String>,
}

/// Sends the plan's entry `index` (scheduled at the given instant) and reads its answer.
fn sender(
    http: &reqwest::Client,
    stack: &StackArgs,
    plan: &Arc<Vec<(usize, String, String)>>,
    players: &Arc<Vec<Player>>,
    path: Path,
    check_only: bool,
) -> impl Fn(usize, Instant) -> std::pin::Pin<Box<dyn std::future::Future<Output = Shot> + Send>> {
    let (http, stack, plan, players) = (http.clone(), stack.clone(), plan.clone(), players.clone());
    move |index: usize, scheduled: Instant| {
        let (http, stack, plan, players) =
            (http.clone(), stack.clone(), plan.clone(), players.clone());
        Box::pin(async move {
            let (p, _, token) = &plan[index];
            let player: &Player = &players[*p];
            let req = request_for(&http, &stack, path, check_only, *p, player, token);
            let (status, body) = match req.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    (status, r.json::<Value>().await.unwrap_or_default())
                }
                Err(_) => (0, Value::Null),
            };
            Shot {
                index,
                status,
                body,
                latency: scheduled.elapsed(),
            }
        })
    }
}

/// The request that sends `token` for player number `p` along `path`.
fn request_for(
    http: &reqwest::Client,
    stack: &StackArgs,
    path: Path,
    check_only: bool,
    p: usize,
    player: &Player,
    token: &str,
) -> reqwest::RequestBuilder {
    match path {
        Path::Aggregator if check_only => common::forwarded_to(
            http,
            stack,
            scoreboard_protocol::http::INTERNAL_SCORES_CHECK_PATH,
            &player.session,
            token,
        ),
        Path::Aggregator => common::internal_score(http, stack, &player.session, token),
        Path::Edge => http
            .post(format!("{}/api/scores", stack.edge))
            // One address per player: the per-IP binding is not what is measured.
            .header(
                "cf-connecting-ip",
                format!("10.{}.{}.{}", p / 65536 % 256, p / 256 % 256, p % 256),
            )
            .bearer_auth(&player.session)
            .json(&serde_json::json!({"action_token": token})),
    }
}

/// Sends the plan's entries `range`: `concurrency` at a time, or on an open-loop schedule of
/// `rate` a second (each latency then counted from its scheduled time).
async fn shoot<F, Fut>(
    send: &F,
    range: std::ops::Range<usize>,
    rate: Option<f64>,
    concurrency: usize,
) -> anyhow::Result<Vec<Shot>>
where
    F: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = Shot> + Send + 'static,
{
    let Some(rate) = rate else {
        return Ok(stream::iter(range)
            .map(|i| send(i, Instant::now()))
            .buffer_unordered(concurrency)
            .collect()
            .await);
    };
    let started = Instant::now();
    let first = range.start;
    let every = Duration::from_secs_f64(1.0 / rate);
    let mut tasks = Vec::with_capacity(range.len());
    for i in range {
        let at = started + every.mul_f64((i - first) as f64);
        tokio::time::sleep_until(at.into()).await;
        tasks.push(tokio::spawn(send(i, at)));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await?);
    }
    Ok(out)
}

/// How the run is described in its report.
fn mode_of(args: &ApplyArgs) -> String {
    let mut mode = match args.rate {
        Some(r) => format!("open loop {r}/s"),
        None => format!("closed loop, {} in flight", args.concurrency),
    };
    mode += &format!(", {} board(s) per token", args.boards);
    if args.kinds == Kinds::Mixed && args.boards > 1 {
        let ids = board_ids(args.boards, args.reset.as_deref(), args.kinds);
        let kinds: Vec<&str> = ids.iter().map(|id| common::kind_of(id).1).collect();
        mode += &format!(" ({})", kinds.join(", "));
    }
    if args.check_only {
        mode += ", checked only";
    }
    if let Some(r) = &args.reset {
        mode += &format!(", reset {r}");
    }
    mode
}

/// The run's row of the table printed to standard output.
fn print_row(r: &Report) {
    println!(
        "| scenario | target | mode | requests | replays | acknowledged | applied/s | p50 ms | p95 ms | p99 ms | max ms | outcomes |"
    );
    println!("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    println!(
        "| {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:?} |",
        r.scenario,
        r.target,
        r.mode,
        r.requests,
        r.replays_sent,
        r.acknowledged,
        r.applied_per_s,
        r.latency.p50_ms,
        r.latency.p95_ms,
        r.latency.p99_ms,
        r.latency.max_ms,
        r.outcomes,
    );
}

/// Runs a hook of `--on-start`/`--on-stop`.
fn hook(command: Option<&str>) -> anyhow::Result<()> {
    let Some(command) = command else {
        return Ok(());
    };
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .with_context(|| format!("running `{command}`"))?;
    anyhow::ensure!(status.success(), "`{command}` failed: {status}");
    Ok(())
}

/// A run's tokens, minted before the clock starts.
struct Planned {
    /// (player index, jti, token), in sending order; a replay repeats an earlier entry.
    plan: Vec<(usize, String, String)>,
    ledger: Ledger,
    replays_sent: usize,
    /// The first `warm` entries are the warm-up's (one per player), sent untimed.
    warm: usize,
}

fn plan_of(
    args: &ApplyArgs,
    players: &[Player],
    minter: &Minter,
    boards: &[String],
) -> anyhow::Result<Planned> {
    let warm = if args.warm { players.len() } else { 0 };
    let mut plan: Vec<(usize, String, String)> = Vec::with_capacity(warm + args.requests);
    let mut ledger = Ledger::new();
    let mut replays_sent = 0;
    for i in 0..warm + args.requests {
        let replay = i > warm && rand::random::<f64>() < args.replays;
        if replay {
            let earlier = plan[rand::random::<usize>() % plan.len()].clone();
            plan.push(earlier);
            replays_sent += 1;
            continue;
        }
        let p = i % players.len();
        // Each player's points step by one from token to token (wrapping at 100), so a
        // `latest` board moves on every token and a `best` one now and then.
        let points = 1 + ((p + i / players.len()) as i64 % 100);
        let m = if boards.is_empty() {
            minter.mint(&players[p].id, points)?
        } else {
            minter.mint_on(&players[p].id, points, boards)?
        };
        ledger.minted(&m.claims.jti);
        plan.push((p, m.claims.jti, m.token));
    }
    Ok(Planned {
        plan,
        ledger,
        replays_sent,
        warm,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kinds {
    Sum,
    Mixed,
}

/// The boards of `--boards`: none named (plain `global` tokens) for 1 without `--reset`.
/// Each id says its kind to [`common::ensure_boards`].
fn board_ids(n: u8, reset: Option<&str>, kinds: Kinds) -> Vec<String> {
    if n <= 1 {
        return reset.map(|_| vec!["load-1".to_owned()]).unwrap_or_default();
    }
    let id = |i: u8| match (kinds, i % 2) {
        (Kinds::Sum, _) => format!("load-{i}"),
        (Kinds::Mixed, 0) => format!("load-{i}-best"),
        (Kinds::Mixed, _) => format!("load-{i}-latest"),
    };
    std::iter::once("global".to_owned())
        .chain((2..=n).map(id))
        .collect()
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Path {
    Aggregator,
    Edge,
}

#[derive(Debug, Serialize)]
struct Report {
    scenario: &'static str,
    target: String,
    mode: String,
    boards: u8,
    players: usize,
    requests: usize,
    replays_sent: usize,
    acknowledged: usize,
    outcomes: Outcomes,
    elapsed_s: f64,
    applied_per_s: f64,
    latency: Latency,
    /// CPU the `--server-pid` processes used during the run, and per acknowledged update.
    server_cpu_s: Option<f64>,
    server_cpu_ms_per_update: Option<f64>,
    exactly_once: Option<Verification>,
}

struct Shot {
    index: usize,
    status: u16,
    body: Value,
    latency: Duration,
}

pub(crate) async fn run(args: ApplyArgs, path: Path) -> anyhow::Result<bool> {
    let mut args = args;
    if args.stack.quick {
        args.players = args.players.min(20);
        args.requests = args.requests.min(400);
        args.concurrency = args.concurrency.min(32);
        args.rate = args.rate.map(|r| r.min(200.0));
    }
    anyhow::ensure!(
        !(args.check_only && matches!(path, Path::Edge)),
        "--check-only is for the aggregator (loadgen apply)"
    );
    let stack = &args.stack;
    let http = common::http(args.concurrency.max(64));
    let run_id = scoreboard_tests::random_suffix(6);
    let players = common::sign_in(stack, &http, &run_id, args.players).await?;
    let minter = Minter::new(stack);
    let boards = board_ids(args.boards, args.reset.as_deref(), args.kinds);
    if !boards.is_empty() {
        common::ensure_boards(stack, &http, &boards, args.reset.as_deref()).await?;
    }

    let Planned {
        plan,
        mut ledger,
        replays_sent,
        warm,
    } = plan_of(&args, &players, &minter, &boards)?;
    let plan = Arc::new(plan);
    let players = Arc::new(players);

    let send = sender(&http, stack, &plan, &players, path, args.check_only);

    if warm > 0 {
        let shots = shoot(&send, 0..warm, None, args.concurrency).await?;
        for s in &shots {
            ledger.answered(&plan[s.index].1, s.status);
        }
        let refused = shots.iter().filter(|s| s.status != 200).count();
        anyhow::ensure!(
            refused == 0,
            "{refused} of {warm} warm-up updates were refused"
        );
    }
    let timed = plan.len() - warm;
    hook(args.on_start.as_deref())?;
    let cpu_before = common::cpu_seconds(&args.server_pid);
    let started = Instant::now();
    let shots = shoot(&send, warm..plan.len(), args.rate, args.concurrency).await?;
    let elapsed = started.elapsed().as_secs_f64();
    hook(args.on_stop.as_deref())?;
    let server_cpu_s = cpu_before
        .zip(common::cpu_seconds(&args.server_pid))
        .map(|(before, after)| after - before);

    let mut outcomes = Outcomes::new();
    let mut latencies = Vec::with_capacity(shots.len());
    for s in &shots {
        *outcomes
            .entry(common::outcome_key(s.status, &s.body))
            .or_default() += 1;
        latencies.push(s.latency);
        ledger.answered(&plan[s.index].1, s.status);
    }
    // The warm-up's updates were all acknowledged; they are not the run's.
    let acknowledged = ledger.acknowledged() - warm;
    let latency = Latency::of(latencies);
    let mode = mode_of(&args);
    let target = match path {
        Path::Aggregator => stack.aggregator.clone(),
        Path::Edge => stack.edge.clone(),
    };
    let scenario = match path {
        Path::Aggregator => "apply",
        Path::Edge => "edge",
    };
    let server_cpu_ms_per_update =
        server_cpu_s.map(|cpu| cpu * 1000.0 / acknowledged.max(1) as f64);
    let mut report = Report {
        scenario,
        target,
        mode,
        boards: args.boards,
        players: players.len(),
        requests: timed,
        replays_sent,
        acknowledged,
        outcomes,
        elapsed_s: elapsed,
        applied_per_s: acknowledged as f64 / elapsed,
        latency,
        server_cpu_s,
        server_cpu_ms_per_update,
        exactly_once: None,
    };
    print_row(&report);
    if let Some(url) = stack.database_url.as_deref().filter(|_| !args.check_only) {
        let db = sqlx::PgPool::connect(url)
            .await
            .context("connecting to DATABASE_URL for the exactly-once check")?;
        let ids: Vec<String> = players.iter().map(|p| p.id.clone()).collect();
        report.exactly_once = Some(ledger.verify(&db, &ids).await?);
    }
    if let (Some(cpu), Some(per)) = (server_cpu_s, server_cpu_ms_per_update) {
        println!("\nserver CPU: {cpu:.2} s, {per:.3} ms per acknowledged update");
    }
    if let Some(v) = &report.exactly_once {
        println!("\nexactly once: {v}");
    }
    let ok = report.exactly_once.as_ref().is_none_or(|v| v.ok);
    common::write_json(stack, &report)?;
    Ok(ok)
}
