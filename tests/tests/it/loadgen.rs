//! The load generator's quick mode of every scenario against a real stack (an aggregator with
//! PostgreSQL and Redis, the worker in workerd): a smoke test of the tool that asserts what it
//! verifies (exactly once, every client saw the final version), never a time.

use crate::support::{edge_with, stack};
use scoreboard_tests::stack::{ACTION_SECRET, ADMIN_KEY, EDGE_SECRET, JWT_SECRET};
use scoreboard_tests::EdgeServer;
use serde_json::Value;

struct Stack {
    aggregator: String,
    edge: String,
    database_url: String,
}

impl Stack {
    /// Runs `loadgen <args> --quick --json <file>`; the exit status and the JSON report.
    async fn loadgen(&self, args: &[&str]) -> (bool, Value, String) {
        let json = std::env::temp_dir().join(format!(
            "loadgen-{}-{}.json",
            std::process::id(),
            scoreboard_tests::random_suffix(6)
        ));
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(args)
            .arg("--quick")
            .arg("--json")
            .arg(&json)
            .env("LOADGEN_AGGREGATOR", &self.aggregator)
            .env("LOADGEN_EDGE", &self.edge)
            .env("DATABASE_URL", &self.database_url)
            .env("JWT_SECRET", JWT_SECRET)
            .env("ACTION_TOKEN_SECRET", ACTION_SECRET)
            .env("EDGE_FORWARD_SECRET", EDGE_SECRET)
            .env("ADMIN_API_KEY", ADMIN_KEY)
            .output()
            .await
            .expect("loadgen runs");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report = std::fs::read_to_string(&json)
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let _ = std::fs::remove_file(json);
        (out.status.success(), report, text)
    }
}

/// `apply` (tokens on 1 and 3 boards, on a board that resets, checked only), `edge` (with 30% replays), `fanout` (aggregator and
/// edge hub, one board and five) and `read` (the alias routes and a board's), quick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_loadgen_scenario_runs_quick_and_verifies_itself() {
    let _heavy = scoreboard_tests::heavy().await;
    let (db, _redis, (agg, _stop, _task)) = stack().await;
    let edge = edge_with(&agg, &[("RATE_LIMIT_SCORE_UPDATE", "1000")]).await;
    let stack = Stack {
        aggregator: agg.clone(),
        edge: edge.url(),
        database_url: db.url.clone(),
    };

    let (ok, r, out) = stack.loadgen(&["apply"]).await;
    assert!(ok, "{out}");
    assert_eq!(r["exactly_once"]["ok"], true, "{out}");
    assert_eq!(r["acknowledged"], r["requests"], "{out}");
    assert!(r["exactly_once"]["events"].as_u64() > Some(0));

    let (ok, r, out) = stack.loadgen(&["apply", "--boards", "3"]).await;
    assert!(ok, "{out}");
    assert_eq!(r["exactly_once"]["ok"], true, "three boards: {out}");
    assert_eq!(
        r["exactly_once"]["events"].as_u64(),
        r["acknowledged"].as_u64().map(|n| 3 * n),
        "one event per board: {out}"
    );

    // A board on a 2-second cron: the run crosses periods, and its totals still add up.
    let (ok, r, out) = stack
        .loadgen(&["apply", "--reset", "*/2 * * * * *", "--rate", "200"])
        .await;
    assert!(ok, "{out}");
    assert_eq!(r["exactly_once"]["ok"], true, "a board that resets: {out}");
    assert!(
        r["mode"].as_str().unwrap().ends_with("reset */2 * * * * *"),
        "{out}"
    );

    let (ok, r, out) = stack.loadgen(&["apply", "--rate", "200"]).await;
    assert!(ok, "{out}");
    assert_eq!(r["exactly_once"]["ok"], true, "open loop: {out}");

    // The "empty" baseline: every update checked, none applied, so no exactly-once check.
    let (ok, r, out) = stack.loadgen(&["apply", "--check-only"]).await;
    assert!(ok, "{out}");
    assert_eq!(
        r["outcomes"]["200"], r["requests"],
        "every check passes: {out}"
    );
    assert!(r["exactly_once"].is_null(), "{out}");

    let (ok, r, out) = stack.loadgen(&["edge", "--replays", "0.3"]).await;
    assert!(ok, "{out}");
    assert_eq!(r["exactly_once"]["ok"], true, "{out}");
    let replays = r["replays_sent"].as_u64().unwrap();
    assert!(replays > 50, "{out}");
    assert_eq!(
        r["outcomes"]["409 ACTION_TOKEN_REPLAYED"].as_u64(),
        Some(replays),
        "every replay refused: {out}"
    );

    for (via, boards) in [
        ("aggregator", "0"),
        ("edge", "0"),
        ("aggregator", "5"),
        ("edge", "5"),
    ] {
        let (ok, r, out) = stack
            .loadgen(&["fanout", "--via", via, "--boards", boards])
            .await;
        assert!(ok, "{via}: {out}");
        assert_eq!(r["missed_final"], 0, "{via}: {out}");
        assert_eq!(r["connected"], r["clients"], "{via}: {out}");
        assert!(
            r["delivery"]["count"].as_u64() >= r["clients"].as_u64(),
            "{via}: {out}"
        );
    }

    let (ok, r, out) = stack.loadgen(&["read"]).await;
    assert!(ok, "{out}");
    assert_eq!(r["routes"].as_array().map(Vec::len), Some(2), "{out}");
    let (ok, r, out) = stack.loadgen(&["read", "--board", "reads"]).await;
    assert!(ok, "{out}");
    assert_eq!(
        r["routes"][0]["route"], "/api/boards/reads/entries",
        "{out}"
    );
}

/// Rows the Durable Objects of `class` stored under `dir` (scripts/edge-storage-rows).
fn stored_rows(dir: &std::path::Path, class: &str) -> u64 {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/edge-storage-rows");
    let out = std::process::Command::new(script)
        .arg(dir)
        .output()
        .expect("scripts/edge-storage-rows runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    rows[class].as_u64().unwrap()
}

/// The worker in workerd directly (no dev proxy), as the benchmarks measure it: `edge` holds
/// exactly once and reports workerd's CPU per update, `fanout` through its hub reaches every
/// SSE and every WebSocket client, and the players' gates stored nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_in_workerd_is_measured_and_stores_nothing_per_score() {
    let _heavy = scoreboard_tests::heavy().await;
    let (db, _redis, (agg, _stop, _task)) = stack().await;
    let edge = EdgeServer::start_in_workerd(&agg).await.unwrap();
    let pid = edge
        .workerd_pid()
        .expect("the runner names its workerd")
        .to_string();
    let stack = Stack {
        aggregator: agg.clone(),
        edge: edge.url(),
        database_url: db.url.clone(),
    };
    let (ok, r, out) = stack
        .loadgen(&["edge", "--replays", "0.2", "--server-pid", &pid])
        .await;
    assert!(ok, "{out}");
    assert_eq!(r["exactly_once"]["ok"], true, "{out}");
    let cpu = r["server_cpu_ms_per_update"].as_f64().unwrap_or(0.0);
    assert!(cpu > 0.0, "workerd's CPU is measured: {out}");
    assert_eq!(stored_rows(&edge.storage_dir(), "PlayerGate"), 0, "{out}");

    for transport in ["sse", "ws"] {
        let (ok, r, out) = stack
            .loadgen(&[
                "fanout",
                "--via",
                "edge",
                "--transport",
                transport,
                "--server-pid",
                &pid,
            ])
            .await;
        assert!(ok, "{transport}: {out}");
        assert_eq!(r["transport"], transport, "{out}");
        assert_eq!(r["missed_final"], 0, "{transport}: {out}");
        assert!(r["server_cpu_us_per_delivery"].as_f64().is_some(), "{out}");
    }
}
