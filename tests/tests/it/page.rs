//! The player page in a real browser: Debian's headless Chromium, driven by the scripts in
//! `tests/browser/` (playwright-core), against the worker in workerd, an in-process aggregator,
//! PostgreSQL and Redis. This file starts the stack, runs a script and does to the stack what
//! the script asks for on its control lines (stop and restart the aggregator, score elsewhere).

use crate::support::{aggregator_on, edge_with, stack};
use scoreboard_tests::client::{guest, guests, internal_score, Guest};
use scoreboard_tests::stack::EDGE_SECRET;
use scoreboard_tests::tokens::mint_on;
use scoreboard_tests::EdgeServer;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

/// Two browser pages on the live board: one signs in with a name made of markup and scores
/// (instantly, after a countdown, after a 503 while the aggregator is away, until 429); the
/// other sees its table change without a reload, the name as text, and recovers from offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browser_pages_see_a_score_redeemed_through_the_edge() {
    let _heavy = scoreboard_tests::heavy().await;
    let (db, redis, (agg, stop, task)) = stack().await;
    let port: u16 = agg.rsplit(':').next().unwrap().parse().unwrap();
    let edge = edge_with(&agg, &[
        ("RATE_LIMIT_SCORE_UPDATE", "7"),
        (
            "ACTION_CATALOG",
            r#"{"coin": {"points": 1, "min_seconds": 0}, "quest": {"points": 50, "min_seconds": 2}}"#,
        ),
    ])
    .await;

    let mut script = BrowserScript::start("tests/browser/page.test.mjs", &edge);
    let mut stop = Some((stop, task));
    let mut restarted = None;
    let run = async {
        while let Some(control) = script.control().await {
            match control.as_str() {
                "stop-aggregator" => {
                    let (tx, task) = stop.take().expect("stopped once");
                    let _ = tx.send(());
                    let _ = task.await;
                }
                "start-aggregator" => {
                    restarted = Some(aggregator_on(&db.url, &redis, port).await);
                }
                other => panic!("unknown control line {other:?}"),
            }
            script.done().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finished within 4 minutes");
    script.passed(&edge).await;
    drop(restarted);
}

/// Boards on the page: the picker lists every board with its rules in words and keeps the
/// choice in the URL; the chosen board's top 10 is live over that board's stream alone; the
/// signed-in player sees their rank on it and the entries around them, moved by others'
/// scores; and "Load more" pages below the top 10 with the cursor until the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_picks_a_board_follows_it_live_and_pages_below_its_top_10() {
    let _heavy = scoreboard_tests::heavy().await;
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let http = reqwest::Client::new();
    for (id, title, order, operator) in [
        ("coins", "Coins", "desc", "sum"),
        ("time", "Time", "asc", "best"),
        ("last-run", "Last run", "desc", "latest"),
    ] {
        put_board(
            &http,
            &agg,
            id,
            json!({"title": title, "order": order, "operator": operator}),
        )
        .await;
    }
    // 14 players on coins (Coin13 first with 1,400, Coin0 14th with 100), and four runs on
    // time (lower is better: 30, 40, 60, 70), all redeemed at the aggregator as the edge would.
    let coins = guests(&http, &agg, "Coin", 14).await;
    for (i, g) in (1..).zip(&coins) {
        redeem(&http, &agg, g, &mint_on(&g.id, 100 * i, &["coins"])).await;
    }
    let runners = guests(&http, &agg, "Runner", 4).await;
    for (g, time) in runners.iter().zip([30, 40, 60, 70]) {
        redeem(&http, &agg, g, &mint_on(&g.id, time, &["time"])).await;
    }
    let edge = edge_with(
        &agg,
        &[(
            "ACTION_CATALOG",
            r#"{"race": {"points": 45, "min_seconds": 0, "boards": ["global", "time"]}}"#,
        )],
    )
    .await;

    let mut script = BrowserScript::start("tests/browser/boards.test.mjs", &edge);
    let run = async {
        while let Some(control) = script.control().await {
            match control.as_str() {
                // Someone else runs faster than everyone on the board.
                "faster-run" => {
                    let sprinter = guest(&http, &agg, "Sprinter").await;
                    redeem(
                        &http,
                        &agg,
                        &sprinter,
                        &mint_on(&sprinter.id, 20, &["time"]),
                    )
                    .await;
                }
                other => panic!("unknown control line {other:?}"),
            }
            script.done().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finished within 4 minutes");
    script.passed(&edge).await;
}

/// A board that resets, on the page: its period and a live countdown, the top 10 emptied at
/// the reset, and the closed period shown with its winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_counts_down_to_a_reset_and_shows_the_period_that_closed() {
    let _heavy = scoreboard_tests::heavy().await;
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let http = reqwest::Client::new();
    put_board(
        &http,
        &agg,
        "sprint",
        json!({"title": "Sprint", "order": "desc", "operator": "sum", "reset": "*/6 * * * * *"}),
    )
    .await;
    let edge = edge_with(&agg, &[]).await;
    let mut script = BrowserScript::start("tests/browser/periods.test.mjs", &edge);
    let run = async {
        while let Some(control) = script.control().await {
            match control.as_str() {
                "score" => {
                    let dasher = guest(&http, &agg, "Dasher").await;
                    redeem(&http, &agg, &dasher, &mint_on(&dasher.id, 30, &["sprint"])).await;
                }
                other => panic!("unknown control line {other:?}"),
            }
            script.done().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test finished within 2 minutes");
    script.passed(&edge).await;
}

/// `PUT /admin/boards/{id}` at the aggregator with the test admin key; it must succeed.
async fn put_board(http: &reqwest::Client, agg: &str, id: &str, body: Value) {
    let (status, body) = scoreboard_tests::client::put_board(http, agg, id, &body).await;
    assert!(
        (200..300).contains(&status),
        "PUT /admin/boards/{id}: {status} {body}",
    );
}

/// `g` redeems `token` at the aggregator's `/internal/scores`, signed as the edge signs it.
async fn redeem(http: &reqwest::Client, agg: &str, g: &Guest, token: &str) {
    let r = internal_score(http, agg, EDGE_SECRET, &g.token, token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert_eq!(
        status,
        200,
        "a score for {}: {}",
        g.name,
        r.text().await.unwrap_or_default()
    );
}

/// A script of `tests/browser/` under node, with the edge's URL in `EDGE_URL`: its stdout is
/// kept as the transcript, and its control lines (`control: <what>`) are handed to the test,
/// which answers each with `done` on the script's stdin once it has done what was asked.
struct BrowserScript {
    node: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    transcript: Vec<String>,
}

impl BrowserScript {
    fn start(script: &str, edge: &EdgeServer) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut node = tokio::process::Command::new("node")
            .arg(script)
            .current_dir(&root)
            .env("EDGE_URL", edge.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (scripts/setup installs it)");
        let stdin = node.stdin.take().unwrap();
        let stdout = BufReader::new(node.stdout.take().unwrap()).lines();
        let mut stderr = node.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut s = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
            s
        });
        Self {
            node,
            stdin,
            stdout,
            stderr,
            transcript: Vec::new(),
        }
    }

    /// What the script asks for next; `None` once it has ended.
    async fn control(&mut self) -> Option<String> {
        while let Some(line) = self.stdout.next_line().await.unwrap() {
            self.transcript.push(line.clone());
            if let Some(what) = line.strip_prefix("control: ") {
                return Some(what.to_owned());
            }
        }
        None
    }

    /// Tells the script that what it asked for is done.
    async fn done(&mut self) {
        self.stdin.write_all(b"done\n").await.unwrap();
    }

    /// The script must have exited with success after its last step, `passed`.
    async fn passed(mut self, edge: &EdgeServer) {
        let status = self.node.wait().await.unwrap();
        let errors = self.stderr.await.unwrap();
        assert!(
            status.success() && self.transcript.last().map(String::as_str) == Some("step: passed"),
            "the browser test failed\n--- stdout\n{}\n--- stderr\n{errors}\n--- edge log (tail)\n{}",
            self.transcript.join("\n"),
            tail(&edge.log().unwrap_or_default(), 40),
        );
        println!("{}", self.transcript.join("\n"));
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
