//! Hostile input at every public route, through the edge (workerd) and straight at the
//! aggregator: wrong methods, wrong content types, huge and truncated bodies, bad UTF-8, huge
//! headers, path traversal, unknown fields, values out of range. Every answer must be the
//! documented status with an error in our shape, never a 5xx, and no score may move.

use crate::support::{edge_with, local_token, stack};
use scoreboard_tests::stack::ACTION_SECRET;
use scoreboard_tests::tokens::now;
use serde_json::{json, Value};

/// One malformed request and what must come back.
struct Case {
    what: &'static str,
    method: &'static str,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    session: bool,
    status: u16,
    code: &'static str,
}

// Positional on purpose: each call is one row of the table below.
#[allow(clippy::too_many_arguments)]
fn case(
    what: &'static str,
    method: &'static str,
    path: impl Into<String>,
    content_type: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    session: bool,
    status: u16,
    code: &'static str,
) -> Case {
    Case {
        what,
        method,
        path: path.into(),
        content_type,
        body: body.into(),
        session,
        status,
        code,
    }
}

const JSON: Option<&str> = Some("application/json");

/// The table, for a player `id` with a valid `token` for them (used where a request must get
/// past the session check to reach the part under test).
fn table(id: &str, token: &str) -> Vec<Case> {
    let huge = vec![b'x'; 64 * 1024];
    let mut huge_json = b"{\"name\": \"".to_vec();
    huge_json.extend(std::iter::repeat_n(b'a', 8 * 1024));
    huge_json.extend(b"\"}");
    let mut cases = vec![
        // Unknown routes, wrong methods, traversal.
        case(
            "unknown path",
            "GET",
            "/api/nothing",
            None,
            "",
            false,
            404,
            "NOT_FOUND",
        ),
        case(
            "dot-dot as a player id",
            "GET",
            "/api/players/%2e%2e",
            None,
            "",
            false,
            404,
            "NOT_FOUND",
        ),
        case(
            "encoded traversal in a player id",
            "GET",
            "/api/players/..%2F..%2Fetc%2Fpasswd",
            None,
            "",
            false,
            404,
            "PLAYER_NOT_FOUND",
        ),
        case(
            "player id too long",
            "GET",
            format!("/api/players/{}", "p".repeat(300)),
            None,
            "",
            false,
            404,
            "PLAYER_NOT_FOUND",
        ),
        case(
            "unknown player",
            "GET",
            "/api/players/nobody-at-all",
            None,
            "",
            false,
            404,
            "PLAYER_NOT_FOUND",
        ),
        case(
            "DELETE the board",
            "DELETE",
            "/api/leaderboard",
            None,
            "",
            false,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        case(
            "PUT a score",
            "PUT",
            "/api/scores",
            JSON,
            "{}",
            true,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        case(
            "GET the guest route",
            "GET",
            "/api/auth/guest",
            None,
            "",
            false,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        case(
            "POST the stream",
            "POST",
            "/api/leaderboard/stream",
            JSON,
            "{}",
            false,
            405,
            "METHOD_NOT_ALLOWED",
        ),
        // Sign-in bodies.
        case(
            "guest as text/plain",
            "POST",
            "/api/auth/guest",
            Some("text/plain"),
            r#"{"name":"x"}"#,
            false,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        case(
            "guest without a content type",
            "POST",
            "/api/auth/guest",
            None,
            r#"{"name":"x"}"#,
            false,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        case(
            "guest truncated JSON",
            "POST",
            "/api/auth/guest",
            JSON,
            r#"{"name": "Trunc"#,
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest bad UTF-8",
            "POST",
            "/api/auth/guest",
            JSON,
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest name a number",
            "POST",
            "/api/auth/guest",
            JSON,
            r#"{"name": 1e999}"#,
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest name empty",
            "POST",
            "/api/auth/guest",
            JSON,
            r#"{"name": "   "}"#,
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest name too long",
            "POST",
            "/api/auth/guest",
            JSON,
            format!(r#"{{"name": "{}"}}"#, "n".repeat(33)),
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest name with a control character",
            "POST",
            "/api/auth/guest",
            JSON,
            r#"{"name": "a\u0007b"}"#,
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest body over 4 KiB",
            "POST",
            "/api/auth/guest",
            JSON,
            huge_json.clone(),
            false,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        case(
            "guest body 64 KiB of junk",
            "POST",
            "/api/auth/guest",
            JSON,
            huge.clone(),
            false,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        case(
            "guest body an array",
            "POST",
            "/api/auth/guest",
            JSON,
            "[]",
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "register without a password",
            "POST",
            "/api/auth/register",
            JSON,
            r#"{"name":"NoPass"}"#,
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "login with unknown fields",
            "POST",
            "/api/auth/login",
            JSON,
            r#"{"name":"x","password":"y","admin":true}"#,
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "logout without a session",
            "POST",
            "/api/auth/logout",
            None,
            "",
            false,
            401,
            "UNAUTHENTICATED",
        ),
        // Actions.
        case(
            "action without a session",
            "POST",
            "/api/actions",
            JSON,
            r#"{"action":"tap"}"#,
            false,
            401,
            "UNAUTHENTICATED",
        ),
        case(
            "action as text/plain",
            "POST",
            "/api/actions",
            Some("text/plain"),
            r#"{"action":"tap"}"#,
            true,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        case(
            "action body an array of the fields",
            "POST",
            "/api/actions",
            JSON,
            r#"["tap"]"#,
            true,
            400,
            "BAD_REQUEST",
        ),
        case(
            "score body an array of the fields",
            "POST",
            "/api/scores",
            JSON,
            r#"["header.payload.signature"]"#,
            true,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest body nested 600 deep (within 4 KiB)",
            "POST",
            "/api/auth/guest",
            JSON,
            format!("{}1{}", r#"{"a":"#.repeat(600), "}".repeat(600)),
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest name given twice",
            "POST",
            "/api/auth/guest",
            JSON,
            r#"{"name":"First","name":"Second"}"#,
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "guest body a string",
            "POST",
            "/api/auth/guest",
            JSON,
            r#""Stringy""#,
            false,
            400,
            "BAD_REQUEST",
        ),
        case(
            "action truncated",
            "POST",
            "/api/actions",
            JSON,
            r#"{"action":"#,
            true,
            400,
            "BAD_REQUEST",
        ),
        case(
            "action unknown field",
            "POST",
            "/api/actions",
            JSON,
            r#"{"action":"tap","points":1000000}"#,
            true,
            400,
            "BAD_REQUEST",
        ),
        case(
            "action a number",
            "POST",
            "/api/actions",
            JSON,
            r#"{"action":18446744073709551616}"#,
            true,
            400,
            "BAD_REQUEST",
        ),
        case(
            "action not in the catalog",
            "POST",
            "/api/actions",
            JSON,
            r#"{"action":"../../etc/passwd"}"#,
            true,
            422,
            "UNKNOWN_ACTION",
        ),
        case(
            "action huge",
            "POST",
            "/api/actions",
            JSON,
            huge.clone(),
            true,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        // Scores.
        case(
            "score without a session",
            "POST",
            "/api/scores",
            JSON,
            format!(r#"{{"action_token":"{token}"}}"#),
            false,
            401,
            "UNAUTHENTICATED",
        ),
        case(
            "score as form data",
            "POST",
            "/api/scores",
            Some("application/x-www-form-urlencoded"),
            format!("action_token={token}"),
            true,
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        case(
            "score truncated",
            "POST",
            "/api/scores",
            JSON,
            format!(r#"{{"action_token":"{}"#, &token[..20]),
            true,
            400,
            "BAD_REQUEST",
        ),
        case(
            "score bad UTF-8",
            "POST",
            "/api/scores",
            JSON,
            b"{\"action_token\":\"\xc3\x28\"}".to_vec(),
            true,
            400,
            "BAD_REQUEST",
        ),
        case(
            "score token a number",
            "POST",
            "/api/scores",
            JSON,
            r#"{"action_token":1}"#,
            true,
            400,
            "BAD_REQUEST",
        ),
        case(
            "score token garbage",
            "POST",
            "/api/scores",
            JSON,
            r#"{"action_token":"a.b.c"}"#,
            true,
            422,
            "ACTION_TOKEN_INVALID",
        ),
        case(
            "score token empty",
            "POST",
            "/api/scores",
            JSON,
            r#"{"action_token":""}"#,
            true,
            422,
            "ACTION_TOKEN_INVALID",
        ),
        case(
            "score token 3 KiB of dots",
            "POST",
            "/api/scores",
            JSON,
            format!(r#"{{"action_token":"{}"}}"#, ".".repeat(3000)),
            true,
            422,
            "ACTION_TOKEN_INVALID",
        ),
        case(
            "score huge",
            "POST",
            "/api/scores",
            JSON,
            huge,
            true,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        case(
            "score with the token's player in a query",
            "POST",
            &*format!("/api/scores?player_id={id}&pts=1000000"),
            JSON,
            r#"{"action_token":"x"}"#,
            true,
            422,
            "ACTION_TOKEN_INVALID",
        ),
    ];
    // Reads ignore what they do not use.
    cases.push(case(
        "leaderboard with a query",
        "GET",
        "/api/leaderboard?limit=100000&top=-1",
        None,
        "",
        false,
        200,
        "",
    ));
    cases
}

async fn send(http: &reqwest::Client, base: &str, c: &Case, session: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
    let mut req = http.request(method, format!("{base}{}", c.path));
    if let Some(ct) = c.content_type {
        req = req.header("content-type", ct);
    }
    if c.session {
        req = req.bearer_auth(session);
    }
    if !c.body.is_empty() {
        req = req.body(c.body.clone());
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            (
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        }
        Err(e) => panic!("{}: no answer: {e}", c.what),
    }
}

/// Every case at the edge and at the aggregator: the documented status and code, JSON errors,
/// no 5xx; then huge headers; then nobody's score moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_their_documented_errors_and_move_nothing() {
    let (db, _redis, (agg, _stop, _task)) = stack().await;
    let edge = edge_with(
        &agg,
        &[
            ("RATE_LIMIT_SCORE_UPDATE", "1000"),
            (
                "ACTION_CATALOG",
                r#"{"tap": {"points": 3, "min_seconds": 0}}"#,
            ),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let scoreboard_tests::client::Guest {
        id, token: session, ..
    } = scoreboard_tests::client::guest(&http, &agg, "Target").await;
    let token = local_token(ACTION_SECRET, &id, now(), 300);

    let mut failures = Vec::new();
    for (label, base) in [("edge", edge.url()), ("aggregator", agg.clone())] {
        for c in table(&id, &token) {
            // Action minting and score redemption are the edge's routes.
            if label == "aggregator"
                && (c.path.starts_with("/api/actions") || c.path.starts_with("/api/scores"))
            {
                continue;
            }
            let (status, body) = send(&http, &base, &c, &session).await;
            let code = body["error"]["code"].as_str().unwrap_or("");
            let shape_ok =
                c.code.is_empty() || (code == c.code && body["error"]["message"].is_string());
            if status != c.status || !shape_ok || status >= 500 {
                failures.push(format!(
                    "{label}: {} ({} {}): got {status} {body}, want {} {}",
                    c.what,
                    c.method,
                    c.path.chars().take(60).collect::<String>(),
                    c.status,
                    c.code
                ));
            }
        }
        // Big headers: 16 KiB is served; 1 MiB is refused as the client's fault (or the
        // connection is closed); neither is a 5xx.
        for (size, refused) in [(16 * 1024, false), (1024 * 1024, true)] {
            let r = http
                .get(format!("{base}/api/leaderboard"))
                .header("x-junk", "j".repeat(size))
                .send()
                .await;
            match r.map(|r| r.status().as_u16()) {
                Ok(s) if s >= 500 => {
                    failures.push(format!("{label}: a {size}-byte header answered {s}"))
                }
                Ok(s) if refused && s < 400 => {
                    failures.push(format!("{label}: a {size}-byte header was served ({s})"))
                }
                Ok(s) if !refused && s != 200 => {
                    failures.push(format!("{label}: a {size}-byte header answered {s}"))
                }
                Err(_) if !refused => {
                    failures.push(format!("{label}: a {size}-byte header got no answer"))
                }
                _ => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Nothing moved: the target has no score event, nobody does.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM score_events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 0, "a malformed request moved a score");
    // And the token the table carried around is still good for exactly one redemption.
    let r = http
        .post(format!("{}/api/scores", edge.url()))
        .bearer_auth(&session)
        .json(&json!({"action_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
