//! The log lines of the real process: every line written while a request is handled carries
//! that request's id, the batch that fails names the ids it failed, and a client's request id
//! reaches the log only when it is short and of a safe character set.

use crate::helpers::*;
use serde_json::Value;

/// Every line of the process, parsed and checked for the documented keys.
fn parsed(lines: Vec<String>) -> Vec<Value> {
    lines.iter().map(|l| client::log_line(l)).collect()
}

/// An edge-signed score update with a chosen request id; its status.
async fn score(base: &str, session: &str, token: &str, request_id: &str, edge_secret: &str) -> u16 {
    client::internal_score(&reqwest::Client::new(), base, edge_secret, session, token)
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn with_message<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .collect()
}

/// Auth failures, rejected tokens, forged signatures and a failed batch each log with the
/// request id of the request they belong to (and the player, once known); the batch's error
/// line lists the ids of the requests it failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_log_line_of_a_request_carries_its_request_id() {
    let db = scoreboard_tests::fresh_database().await.unwrap();
    let server = LoggedProcess::start(&db.url);
    let player = client::guest(&reqwest::Client::new(), &server.base, "Logline").await;

    assert_eq!(
        score(&server.base, "not-a-jwt", "x", "req-auth", EDGE_SECRET).await,
        401
    );
    assert_eq!(
        score(
            &server.base,
            &player.token,
            "not-a-token",
            "req-token",
            EDGE_SECRET
        )
        .await,
        422
    );
    let forged = "0123456789abcdef0123456789abcdef-forged";
    assert_eq!(
        score(&server.base, &player.token, "x", "req-sig", forged).await,
        401
    );

    // A real database error inside the batch: every insert into consumed_tokens now fails.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("ALTER TABLE consumed_tokens ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        .execute(&pool)
        .await
        .unwrap();
    let token = mint(&player.id, 3, 0, 300, now());
    assert_eq!(
        score(&server.base, &player.token, &token, "req-db", EDGE_SECRET).await,
        503
    );

    let lines = parsed(server.stop());
    let request_of = |message: &str| -> Vec<(Value, Value)> {
        with_message(&lines, message)
            .into_iter()
            .map(|l| (l["requestId"].clone(), l["userId"].clone()))
            .collect()
    };
    assert_eq!(
        request_of("auth failed"),
        [("req-auth".into(), Value::Null)]
    );
    assert_eq!(
        request_of("action token rejected"),
        [("req-token".into(), Value::from(player.id.as_str()))]
    );
    assert_eq!(
        request_of("edge signature refused"),
        [("req-sig".into(), Value::Null)]
    );
    assert_eq!(
        request_of("score update not applied"),
        [("req-db".into(), Value::from(player.id.as_str()))]
    );
    let batch = with_message(&lines, "database error: a batch was not applied");
    assert_eq!(batch.len(), 1, "{lines:?}");
    assert_eq!(batch[0]["data"]["requestIds"], "req-db");
    assert!(batch[0]["data"]["error"]
        .as_str()
        .unwrap()
        .contains("refuse_all"));
    for l in with_message(&lines, "request completed") {
        assert!(l["requestId"].is_string(), "{l}");
    }
}

/// A request id with a quote or a backslash, or one too long, is replaced by a fresh one in
/// the answer and in the log; a safe one is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_short_safe_request_ids_are_kept() {
    let db = scoreboard_tests::fresh_database().await.unwrap();
    let server = LoggedProcess::start(&db.url);
    let http = reqwest::Client::new();
    let long = "a".repeat(65);
    let mut answered = Vec::new();
    for given in [
        "ok-id_1.2:3",
        "a\"b",
        "back\\slash",
        "with space",
        long.as_str(),
    ] {
        let r = http
            .get(format!("{}/health/live", server.base))
            .header("x-request-id", given)
            .send()
            .await
            .unwrap();
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
        answered.push((given.to_owned(), echoed));
    }
    let lines = parsed(server.stop());
    let logged: Vec<String> = with_message(&lines, "request completed")
        .iter()
        .map(|l| l["requestId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(answered[0].1, "ok-id_1.2:3");
    for (given, echoed) in &answered[1..] {
        assert_ne!(echoed, given);
        assert!(uuid_like(echoed), "{echoed}");
    }
    for (_, echoed) in &answered {
        assert!(logged.contains(echoed), "{echoed} not logged: {logged:?}");
    }
    assert!(!logged
        .iter()
        .any(|id| id.contains('"') || id.contains('\\')));
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}
