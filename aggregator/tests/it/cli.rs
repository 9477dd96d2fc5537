//! The binary: `check-config` names every problem, logs never carry a secret, `healthcheck`
//! follows `/health/live`.

use crate::helpers::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn check_config_lists_every_problem_and_no_secret() {
    let short = "too-short-secret";
    let shared = "the-same-secret-used-twice-0123456789";
    let out = Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .env("PORT", "http")
        .env("JWT_SECRET", short)
        .env("ACTION_TOKEN_SECRET", shared)
        .env("EDGE_FORWARD_SECRET", shared)
        .env("LOG_FORMAT", "xml")
        .env("APPLY_BATCH_MAX", "0")
        .env("REDIS_URL", "http://localhost")
        .env("DATABASE_POOLER", "transaction")
        .env(
            "ACTION_CATALOG",
            r#"{"quest": {"points": 5, "boards": ["global", "global"]}}"#,
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "PORT must be a port number",
        "DATABASE_URL is required",
        "JWT_SECRET is shorter than 32 bytes",
        "ADMIN_API_KEY is required",
        "ACTION_TOKEN_SECRET and EDGE_FORWARD_SECRET must differ",
        "LOG_FORMAT must be json or pretty",
        "APPLY_BATCH_MAX must be between 1 and 10000",
        "REDIS_URL must be a redis://",
        "DATABASE_POOLER=transaction needs DATABASE_MIGRATION_URL",
        "ACTION_CATALOG entry \"quest\" has bad boards",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(
        !err.contains(short) && !err.contains(shared),
        "a secret was echoed:\n{err}"
    );

    let pooler = Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .envs(base_vars("postgres://u@127.0.0.1:1/db"))
        .env("DATABASE_POOLER", "session")
        .env("DATABASE_MIGRATION_URL", "mysql://u@127.0.0.1:1/db")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&pooler.stderr);
    for needle in [
        "DATABASE_POOLER must be none or transaction, got \"session\"",
        "DATABASE_MIGRATION_URL must be a postgres://",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    let cluster = |vars: &[(&str, &str)]| {
        let out = Command::new(BIN)
            .arg("check-config")
            .env_clear()
            .envs(base_vars("postgres://u@127.0.0.1:1/db"))
            .envs(vars.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = cluster(&[
        (
            "REDIS_CLUSTER_NODES",
            "redis-1:6379, redis://:hunter2@redis-2:6379,nowhere",
        ),
        ("REDIS_KEY_PREFIX", "{game}:"),
    ]);
    assert!(!ok);
    for needle in [
        "REDIS_CLUSTER_NODES entry 3 must be host:port or a redis:// URL",
        "REDIS_KEY_PREFIX must not contain { or } with REDIS_CLUSTER_NODES",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("hunter2"), "a password was echoed:\n{err}");
    let (ok, err) = cluster(&[
        ("REDIS_CLUSTER_NODES", "redis-1:6379"),
        ("REDIS_URL", "redis://redis-1:6379"),
    ]);
    assert!(!ok && err.contains("not both"), "{err}");
    let (ok, err) = cluster(&[("REDIS_CLUSTER_NODES", "redis-1:6379,redis-2:6379")]);
    assert!(ok, "{err}");

    let good = Command::new(BIN)
        .arg("check-config")
        .env_clear()
        .envs(base_vars("postgres://u@127.0.0.1:1/db"))
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}

/// `mint-token --board` puts the boards in `brd`, in order, and lets points be zero; without
/// `--board` the token has no `brd` and the old bounds hold. Only the configuration is read.
#[test]
fn mint_token_names_the_boards_given_with_board() {
    use scoreboard_protocol::action::ActionTokens;
    use scoreboard_protocol::jwt::{HmacKeys, HmacSecret};
    let run = |points: &str, boards: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(["mint-token", "--player", "p1", "--action", "lap"])
            .args(["--points", points])
            .env_clear()
            .envs(base_vars("postgres://u@127.0.0.1:1/db"));
        for b in boards {
            cmd.args(["--board", b]);
        }
        cmd.output().unwrap()
    };
    let tokens = ActionTokens::new(HmacKeys::new(HmacSecret::new(ACTION_SECRET.as_bytes())));
    let brd_of = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap();
        let claims = tokens
            .verify_ignoring_time_and_player(token.trim())
            .unwrap();
        claims
            .brd
            .map(|b| b.iter().map(|id| id.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(
        brd_of(run("0", &["level-1", "global"])),
        Some(vec!["level-1".to_owned(), "global".to_owned()])
    );
    assert_eq!(brd_of(run("5", &[])), None);

    for (points, boards) in [
        ("0", &[][..]),
        ("5", &["global", "global"]),
        ("5", &["Level-1"]),
    ] {
        let out = run(points, boards);
        assert!(!out.status.success(), "{points} {boards:?}");
    }
}

/// Runs `serve`, signs in, scores, fails a login and a token; then checks every log line is
/// JSON with the documented keys and that no secret, token or password appears.
#[tokio::test]
async fn logs_are_json_lines_without_secrets() {
    let db = scoreboard_tests::fresh_database().await.unwrap();
    let server = LoggedProcess::start(&db.url);
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let password = "my very secret password";
    let reg: serde_json::Value = http
        .post(format!("{base}/api/auth/register"))
        .json(&serde_json::json!({"name": "Logger", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = reg["token"].as_str().unwrap().to_owned();
    let pid = reg["player_id"].as_str().unwrap().to_owned();
    let _ = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"name": "Logger", "password": "wrong password!"}))
        .send()
        .await
        .unwrap();
    let action = mint(&pid, 4, 0, 300, now());
    let body = client::forwarded_score(&action, "t");
    for _ in 0..2 {
        client::internal_score(&http, &base, EDGE_SECRET, &session, &action)
            .header("x-request-id", "req-123")
            .send()
            .await
            .unwrap();
    }
    let _ = http
        .post(format!("{base}/internal/scores"))
        .bearer_auth(&session)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = server.stop();
    let all = lines.join("\n");
    for secret in [
        JWT_SECRET,
        ACTION_SECRET,
        EDGE_SECRET,
        ADMIN_KEY,
        password,
        session.as_str(),
        action.as_str(),
    ] {
        assert!(
            !all.contains(secret),
            "a secret or token appears in the logs"
        );
    }
    for line in &lines {
        client::log_line(line);
    }
    assert!(lines
        .iter()
        .any(|l| l.contains("\"requestId\":\"req-123\"") && l.contains("request completed")));
    assert!(lines.iter().any(|l| l.contains("edge signature refused")));
}

/// `healthcheck`, the container's HEALTHCHECK, passes against a live instance (with no other
/// configuration) and fails when nothing answers on the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_passes_on_a_live_instance_and_fails_without_one() {
    let app = spawn_app().await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let run = |port: String| {
        tokio::task::spawn_blocking(move || {
            Command::new(BIN)
                .arg("healthcheck")
                .env_clear()
                .env("PORT", port)
                .output()
                .unwrap()
        })
    };
    let up = run(port).await.unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let free = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let down = run(free).await.unwrap();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).starts_with("unhealthy:"));
}
