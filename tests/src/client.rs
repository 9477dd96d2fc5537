//! Small helpers for tests, so that a request reads as what it asks: JSON in and out without
//! the send/unwrap/json chains, a guest signed in at any base URL, and a request signed as the
//! edge signs what it forwards. Written once for the aggregator's tests, the end-to-end tests
//! and the load generator.

use crate::tokens::now;
use scoreboard_protocol::edge_signature;
use scoreboard_protocol::error::ErrorBody;
use scoreboard_protocol::snapshot::ForwardedScore;
use serde::Deserialize;
use serde_json::{json, Value};

/// `GET url`; panics with the URL when there is no answer.
async fn get(http: &reqwest::Client, url: &str) -> reqwest::Response {
    http.get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// `GET url` as JSON (or any type it deserializes to); panics with the URL when there is no
/// answer or it is not that JSON.
pub async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> T {
    get(http, url)
        .await
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not the JSON expected: {e}"))
}

/// `GET url` as text (e.g. a Prometheus exposition); panics with the URL on failure.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    get(http, url)
        .await
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// `POST url` with a raw `body` (none when empty) of `content_type` (no header when `None`)
/// and an optional bearer token: for requests that are wrong on purpose.
pub async fn post_raw(
    http: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Vec<u8>>,
) -> reqwest::Response {
    let mut req = http.post(url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let body = body.into();
    if !body.is_empty() {
        req = req.body(body);
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// The error body of an answer, which must be in our shape (`{"error": {"code", "message"}}`).
pub async fn error_of(r: reqwest::Response) -> ErrorBody {
    let status = r.status();
    let text = r.text().await.unwrap_or_default();
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a {status} answer not in the error shape ({e}): {text}"))
}

/// A metric's value in a Prometheus text exposition, summed over its label sets (so a plain
/// gauge reads as itself); 0 when absent.
pub fn metric(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A player signed in as a guest: the body of a `201` from `POST /api/auth/guest` (the
/// aggregator's `SessionResponse`, which `protocol` does not define).
#[derive(Debug, Clone, Deserialize)]
pub struct Guest {
    #[serde(rename = "player_id")]
    pub id: String,
    pub name: String,
    /// The session JWT.
    pub token: String,
}

/// `POST {base}/api/auth/guest`, which must answer 201.
pub async fn guest(http: &reqwest::Client, base: &str, name: &str) -> Guest {
    let r = http
        .post(format!("{base}/api/auth/guest"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("guest sign-in at {base}: {e}"));
    signed_in(r, name).await
}

/// `n` guests signed in one after another at `base`, named `{prefix}0`, `{prefix}1`, ...
pub async fn guests(http: &reqwest::Client, base: &str, prefix: &str, n: usize) -> Vec<Guest> {
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        all.push(guest(http, base, &format!("{prefix}{i}")).await);
    }
    all
}

/// The guest a sign-in answer made, which must be a 201.
pub async fn signed_in(r: reqwest::Response, name: &str) -> Guest {
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(status, 201, "guest sign-in of {name:?}: {v}");
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("a sign-in answer: {e}: {v}"))
}

/// `POST {base}{path}` with `body` of `content_type`, signed with `edge_secret` now, as the
/// edge signs what it forwards to the aggregator.
pub fn edge_signed_post(
    http: &reqwest::Client,
    base: &str,
    edge_secret: &str,
    path: &str,
    body: impl Into<String>,
    content_type: &str,
) -> reqwest::RequestBuilder {
    let body = body.into();
    let sig =
        edge_signature::header_value(edge_secret.as_bytes(), now(), "POST", path, body.as_bytes());
    http.post(format!("{base}{path}"))
        .header(edge_signature::HEADER, sig)
        .header("content-type", content_type)
        .body(body)
}

/// The JSON body the edge forwards to `POST /internal/scores`.
pub fn forwarded_score(action_token: &str, edge_region: &str) -> String {
    serde_json::to_string(&ForwardedScore {
        action_token: action_token.to_owned(),
        edge_region: edge_region.to_owned(),
    })
    .expect("a body serializes")
}

/// The edge's `POST {base}/internal/scores` for `session` redeeming `action_token`, signed
/// with `edge_secret`.
pub fn internal_score(
    http: &reqwest::Client,
    base: &str,
    edge_secret: &str,
    session: &str,
    action_token: &str,
) -> reqwest::RequestBuilder {
    edge_signed_post(
        http,
        base,
        edge_secret,
        "/internal/scores",
        forwarded_score(action_token, "test"),
        "application/json",
    )
    .bearer_auth(session)
}

/// The keys DESIGN.md gives every log line, of either service.
pub const LOG_KEYS: [&str; 7] = [
    "timestamp",
    "level",
    "service",
    "requestId",
    "userId",
    "message",
    "data",
];

/// A log line, parsed; panics (naming the line) unless it is JSON with every key of
/// [`LOG_KEYS`].
pub fn log_line(line: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    for key in LOG_KEYS {
        assert!(v.get(key).is_some(), "{key} missing in {line}");
    }
    v
}

/// `PUT /admin/boards/{id}` at the aggregator `base` with the test admin key: the status and
/// the JSON body.
pub async fn put_board(http: &reqwest::Client, base: &str, id: &str, body: &Value) -> (u16, Value) {
    let r = http
        .put(format!("{base}/admin/boards/{id}"))
        .bearer_auth(crate::stack::ADMIN_KEY)
        .json(body)
        .send()
        .await
        .expect("the aggregator answers");
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// `POST /admin/players/{player}/adjust` at the aggregator `base` with the test admin key
/// (`board` `None`: `global`), which must be applied; the new `leaderboard_version`.
pub async fn adjust(
    http: &reqwest::Client,
    base: &str,
    player: &str,
    board: Option<&str>,
    points: i64,
) -> i64 {
    let r = http
        .post(format!("{base}/admin/players/{player}/adjust"))
        .bearer_auth(crate::stack::ADMIN_KEY)
        .json(&serde_json::json!({"points": points, "reason": "test", "board": board}))
        .send()
        .await
        .expect("the aggregator answers");
    assert_eq!(r.status(), 200, "adjusting {player}");
    let v: Value = r.json().await.expect("a JSON answer");
    v["leaderboard_version"].as_i64().expect("the new version")
}
