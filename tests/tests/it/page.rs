//! The player page in a real browser: Debian's headless Chromium, driven by
//! `tests/browser/page.test.mjs` (playwright-core), against the worker in workerd, an
//! in-process aggregator, PostgreSQL and Redis. This file starts the stack, runs the script and
//! does to the stack what the script asks for (stop and restart the aggregator).

use crate::support::{aggregator_on, edge_with, stack};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

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

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut node = tokio::process::Command::new("node")
        .arg("tests/browser/page.test.mjs")
        .current_dir(&root)
        .env("EDGE_URL", edge.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/setup installs it)");
    let mut stdin = node.stdin.take().unwrap();
    let mut stdout = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut stderr = node.stderr.take().unwrap();
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    });

    let mut transcript = Vec::new();
    let mut stop = Some((stop, task));
    let mut restarted = None;
    let run = async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            transcript.push(line.clone());
            match line.as_str() {
                "control: stop-aggregator" => {
                    let (tx, task) = stop.take().expect("stopped once");
                    let _ = tx.send(());
                    let _ = task.await;
                }
                "control: start-aggregator" => {
                    restarted = Some(aggregator_on(&db.url, &redis, port).await);
                }
                _ => continue,
            }
            stdin.write_all(b"done\n").await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finished within 4 minutes");
    let status = node.wait().await.unwrap();
    let errors = err_task.await.unwrap();
    assert!(
        status.success() && transcript.last().map(String::as_str) == Some("step: passed"),
        "the browser test failed\n--- stdout\n{}\n--- stderr\n{errors}\n--- edge log (tail)\n{}",
        transcript.join("\n"),
        tail(&edge.log().unwrap_or_default(), 40),
    );
    println!("{}", transcript.join("\n"));
    drop(restarted);
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
