//! `scoreboard-aggregator admin` against a real aggregator, as an operator uses it: boards,
//! players, periods, rebuild; tables and `--json`; and the exit codes of its failures (the
//! API's refusal, not found, a missing or wrong key, an aggregator that does not answer).

use crate::helpers::*;
use serde_json::Value;
use std::process::{Command, Output};

/// `scoreboard-aggregator admin --url <base> ARGS` with `key` as ADMIN_API_KEY.
fn admin_cli(base: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("admin")
        .arg("--url")
        .arg(base)
        .args(args)
        .env_clear();
    if let Some(k) = key {
        cmd.env("ADMIN_API_KEY", k);
    }
    cmd.output().expect("the binary runs")
}

/// Runs a command that must succeed; its standard output.
fn ok(base: &str, args: &[&str]) -> String {
    let out = admin_cli(base, Some(ADMIN_KEY), args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{args:?}: {stderr}");
    stdout.into_owned()
}

fn json(base: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(base, &all)).expect("--json prints JSON")
}

/// The exit code and standard error of a command that must fail.
fn fails(base: &str, key: Option<&str>, args: &[&str]) -> (i32, String) {
    let out = admin_cli(base, key, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let code = out.status.code().expect("an exit code");
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_admin_api_from_the_command_line() {
    let app = spawn_app().await;
    let base = app.base.clone();
    tokio::task::spawn_blocking(move || operate(&base))
        .await
        .unwrap();
}

fn operate(base: &str) {
    // Boards.
    let put = ok(
        base,
        &[
            "boards",
            "put",
            "daily",
            "--title",
            "Daily",
            "--order",
            "desc",
            "--operator",
            "sum",
            "--reset",
            "daily",
            "--timezone",
            "Europe/Paris",
        ],
    );
    assert!(put.contains("Europe/Paris"), "{put}");
    let list = ok(base, &["boards", "list"]);
    let header = list.lines().next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("OPERATOR"),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("daily") && l.contains("Daily")),
        "{list}"
    );
    let boards = json(base, &["boards", "list"]);
    assert_eq!(boards["boards"].as_array().unwrap().len(), 2, "{boards}");
    assert_eq!(json(base, &["boards", "show", "daily"])["reset"], "daily");

    // Players under the game's ids, an adjustment, events, a ban.
    assert_eq!(
        json(base, &["players", "put", "game:7", "--name", "Ada"])["created"],
        true
    );
    ok(
        base,
        &[
            "players",
            "adjust",
            "game:7",
            "--points",
            "25",
            "--reason",
            "a lost run",
        ],
    );
    ok(
        base,
        &[
            "players", "adjust", "game:7", "--points", "-5", "--reason", "a typo",
        ],
    );
    let shown = ok(base, &["players", "show", "game:7"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("score") && l.ends_with("20")),
        "{shown}"
    );
    let events = json(base, &["players", "events", "game:7", "--limit", "1"]);
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    assert_eq!(events["events"][0]["pts"], -5, "newest first");
    assert_eq!(
        json(base, &["players", "ban", "game:7", "--reason", "cheat"])["banned"],
        true
    );
    assert_eq!(json(base, &["players", "unban", "game:7"])["banned"], false);

    // Periods.
    let closed = json(base, &["periods", "close", "daily"]);
    assert!(closed["closed"]["id"].is_string(), "{closed}");
    ok(base, &["periods", "list", "daily"]);
    ok(base, &["boards", "hide", "daily"]);
    assert_eq!(json(base, &["boards", "show", "daily"])["public"], false);

    // Failures, each with its exit code and the API's own words.
    let (code, err) = fails(
        base,
        Some(ADMIN_KEY),
        &[
            "boards",
            "put",
            "x",
            "--title",
            "X",
            "--order",
            "up",
            "--operator",
            "sum",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("BAD_REQUEST") && err.contains("`order`"),
        "{err}"
    );
    let (code, err) = fails(base, Some(ADMIN_KEY), &["boards", "show", "nope"]);
    assert_eq!(code, 4, "{err}");
    let (code, err) = fails(base, Some(ADMIN_KEY), &["players", "ban", "nobody"]);
    assert_eq!(code, 4, "{err}");
    let (code, err) = fails(base, Some(ADMIN_KEY), &["rebuild"]);
    assert_eq!(code, 3, "without Redis: {err}");
    let (code, err) = fails(
        base,
        Some("the-wrong-key-0123456789abcdefghij"),
        &["boards", "list"],
    );
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("ADMIN_API_KEY"), "{err}");
    let (code, err) = fails(base, None, &["boards", "list"]);
    assert_eq!(code, 5, "{err}");
    let down = format!("http://127.0.0.1:{}", scoreboard_tests::free_port());
    let (code, err) = fails(&down, Some(ADMIN_KEY), &["boards", "list"]);
    assert_eq!(code, 6, "{err}");
    let (code, _) = fails(base, Some(ADMIN_KEY), &["boards", "frobnicate"]);
    assert_eq!(code, 2, "a wrong command line");
}

#[test]
fn every_admin_command_explains_itself() {
    for args in [
        vec!["admin", "--help"],
        vec!["admin", "boards", "--help"],
        vec!["admin", "boards", "put", "--help"],
        vec!["admin", "players", "adjust", "--help"],
        vec!["admin", "periods", "close", "--help"],
        vec!["admin", "rebuild", "--help"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Usage:"),
            "{args:?}: {text}"
        );
    }
    let out = Command::new(BIN)
        .args(["admin", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--json") && text.contains("--url"), "{text}");
}
