//! End to end through the real worker in workerd (`wrangler dev`) against a real aggregator,
//! PostgreSQL and Redis: what the edge serves today (health, forwarding, errors, headers, logs).

use scoreboard_protocol::snapshot::{PlayerView, Snapshot};
use scoreboard_protocol::ErrorCode;
use scoreboard_tests::client::{self, get_json};
use scoreboard_tests::{fresh_database, fresh_redis, EdgeServer};
use serde_json::{json, Value};

use crate::support::{aggregator, aggregator_on, edge_with, local_token, stack};
use scoreboard_tests::stack::{ACTION_SECRET, EDGE_SECRET};

/// The edge answers in our shape with security headers, forwards sign-in and reads to the
/// aggregator, reports the aggregator's health, and says 503 when it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_forwards_to_the_aggregator_and_degrades_when_it_is_gone() {
    let (_db, _redis, (agg, stop_agg, agg_task)) = stack().await;
    let edge = edge_with(&agg, &[("CORS_ORIGIN", "https://game.example")]).await;
    let http = reqwest::Client::new();
    let base = edge.url();

    let r = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for h in [
        "strict-transport-security",
        "x-content-type-options",
        "x-request-id",
    ] {
        assert!(r.headers().get(h).is_some(), "{h} missing");
    }
    let h: Value = r.json().await.unwrap();
    assert_eq!(h["checks"]["aggregator"], "ok");

    // Sign-in goes through the edge to the aggregator.
    let r = http
        .post(format!("{base}/api/auth/guest"))
        .header("x-request-id", "e2e-req-1")
        .json(&json!({"name": "Edgy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers().get("x-request-id").unwrap(), "e2e-req-1");
    // A relayed answer carries the edge's headers too (its own were immutable).
    for h in ["strict-transport-security", "content-security-policy"] {
        assert!(
            r.headers().get(h).is_some(),
            "{h} missing on a relayed answer"
        );
    }
    let guest = client::signed_in(r, "Edgy").await;
    let id = guest.id.as_str();
    let r = http
        .post(format!("{base}/api/auth/guest"))
        .json(&json!({"name": "edgy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        409,
        "the aggregator's refusals come through unchanged"
    );
    let v: PlayerView = get_json(&http, &format!("{base}/api/players/{id}")).await;
    assert_eq!((v.name.as_str(), v.score), ("Edgy", 0));
    let through_edge: Snapshot = get_json(&http, &format!("{base}/api/leaderboard")).await;
    let direct: Snapshot = get_json(&http, &format!("{agg}/api/leaderboard")).await;
    assert_eq!(through_edge.version, direct.version);

    // Unknown routes and methods, and oversized bodies, in our shape.
    let r = http.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(client::error_of(r).await.error.code, ErrorCode::NotFound);
    let r = http
        .delete(format!("{base}/api/leaderboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = client::post_raw(
        &http,
        &format!("{base}/api/auth/guest"),
        None,
        Some("application/json"),
        format!("{{\"name\":\"{}\"}}", "x".repeat(5000)),
    )
    .await;
    assert_eq!(r.status(), 413);

    // The worker logs one JSON line per request, with the request id and no token.
    let log = edge.log().unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("\"requestId\":\"e2e-req-1\""))
        .expect("a log line for the request");
    let parsed: Value = serde_json::from_str(line).unwrap();
    assert_eq!(parsed["data"]["path"], "/api/auth/guest");
    assert!(!log.contains(&guest.token));
    assert!(!log.contains(EDGE_SECRET));

    // CORS for the configured origin only, preflight included.
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{base}/api/scores"))
        .header("origin", "https://game.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers().get("access-control-allow-origin").unwrap(),
        "https://game.example"
    );
    let r = http
        .get(format!("{base}/api/leaderboard"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // The per-IP limit of the writing routes (100 per minute per location). The local
    // emulation counts in fixed minutes, so a run may straddle one: allow two windows.
    let mut refused_after = None;
    for i in 0..250 {
        let r = http
            .post(format!("{base}/api/actions"))
            .header("cf-connecting-ip", "198.51.100.7")
            .json(&json!({"action": "x"}))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            401 => {}
            429 => {
                assert!(r.headers().get("retry-after").is_some());
                assert_eq!(client::error_of(r).await.error.code, ErrorCode::RateLimited);
                refused_after = Some(i);
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let n = refused_after.expect("the per-IP limit answers 429");
    assert!(n >= 100, "refused after only {n} requests");

    // The aggregator goes away: health degrades, forwarded requests get 503 with Retry-After.
    let _ = stop_agg.send(());
    let _ = agg_task.await;
    let r = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["checks"]["aggregator"],
        "down"
    );
    let r = http
        .get(format!("{base}/api/leaderboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(
        client::error_of(r).await.error.code,
        ErrorCode::UpstreamUnavailable
    );
}

async fn edge_for(agg: &str, limit: &str) -> EdgeServer {
    edge_with(
        agg,
        &[
            ("RATE_LIMIT_SCORE_UPDATE", limit),
            (
                "ACTION_CATALOG",
                r#"{"tap": {"points": 3, "min_seconds": 0}, "slow": {"points": 5, "min_seconds": 60}}"#,
            ),
        ],
    )
    .await
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn guest(&self, name: &str) -> (String, String) {
        let g = client::guest(&self.http, &self.base, name).await;
        (g.id, g.token)
    }

    async fn action(&self, session: &str, action: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/actions", self.base))
            .bearer_auth(session)
            .json(&json!({"action": action}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    async fn score(&self, session: &str, token: &str) -> (u16, Value, Option<String>) {
        let r = self
            .http
            .post(format!("{}/api/scores", self.base))
            .bearer_auth(session)
            .json(&json!({"action_token": token}))
            .send()
            .await
            .unwrap();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            r.status().as_u16(),
            r.json().await.unwrap_or_default(),
            retry,
        )
    }
}

/// An unsigned (`alg: none`) action token with otherwise perfect claims.
fn alg_none(player: &str, now: i64) -> String {
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let claims = json!({"jti": "AAAAAAAAAAAAAAAAAAAAAA", "sub": player, "act": "tap", "pts": 1000,
        "iat": now, "nbf": now, "exp": now + 300});
    format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"action+jwt"}"#),
        b64(&claims.to_string())
    )
}

/// A guest mints and redeems through the edge; every refusal has its status and code and
/// moves nothing; a replay, also two racing, applies once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_are_checked_at_the_edge_and_applied_once() {
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let edge = edge_for(&agg, "8").await;
    let c = Client {
        http: reqwest::Client::new(),
        base: edge.url(),
    };
    let (p1, s1) = c.guest("Player One").await;
    let (p2, s2) = c.guest("Player Two").await;

    let (status, minted) = c.action(&s1, "tap").await;
    assert_eq!(status, 201, "{minted}");
    assert_eq!(minted["points"], 3);
    for k in ["action_token", "expires_at", "not_before"] {
        assert!(minted[k].is_string(), "{k}");
    }
    let token = minted["action_token"].as_str().unwrap().to_owned();
    let (status, body, _) = c.score(&s1, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["score"].as_i64(),
            body["rank"].as_i64(),
            body["applied"].as_bool()
        ),
        (Some(3), Some(1), Some(true))
    );
    assert!(body["leaderboard_version"].as_i64().unwrap() > 0);

    let (status, body, _) = c.score(&s1, &token).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["score"].as_i64()
        ),
        (409, Some("ACTION_TOKEN_REPLAYED"), Some(3))
    );

    let (status, body) = c.action(&s1, "dance").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("UNKNOWN_ACTION"))
    );
    let (_, slow) = c.action(&s1, "slow").await;
    let (status, body, retry) = c.score(&s1, slow["action_token"].as_str().unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (425, Some("ACTION_TOKEN_NOT_YET_VALID"))
    );
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);

    let now = scoreboard_tests::tokens::now();
    let (_, other) = c.action(&s2, "tap").await;
    for (token, status, code) in [
        (
            local_token("forged-secret-forged-secret-0123456", &p1, now, 300),
            422,
            "ACTION_TOKEN_INVALID",
        ),
        (s1.clone(), 422, "ACTION_TOKEN_INVALID"),
        (alg_none(&p1, now), 422, "ACTION_TOKEN_INVALID"),
        (
            other["action_token"].as_str().unwrap().to_owned(),
            403,
            "ACTION_TOKEN_WRONG_PLAYER",
        ),
        (
            local_token(ACTION_SECRET, &p1, now - 400, 300),
            422,
            "ACTION_TOKEN_EXPIRED",
        ),
    ] {
        let (s, body, _) = c.score(&s1, &token).await;
        assert_eq!(
            (s, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
    }

    // Checked before the limit: no session, wrong media type, too large, malformed.
    let r = c
        .http
        .post(format!("{}/api/scores", c.base))
        .json(&json!({"action_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = client::post_raw(
        &c.http,
        &format!("{}/api/scores", c.base),
        Some(&s1),
        None,
        "x",
    )
    .await;
    assert_eq!(r.status(), 415);
    let r = client::post_raw(
        &c.http,
        &format!("{}/api/scores", c.base),
        Some(&s1),
        Some("application/json"),
        format!("{{\"action_token\":\"{}\"}}", "x".repeat(5000)),
    )
    .await;
    assert_eq!(r.status(), 413);
    let r = client::post_raw(
        &c.http,
        &format!("{}/api/scores", c.base),
        Some(&s1),
        Some("application/json"),
        "{\"action_token\":",
    )
    .await;
    assert_eq!(r.status(), 400);

    // Two edge requests racing with one token: one applies.
    let (_, m) = c.action(&s2, "tap").await;
    let t2 = m["action_token"].as_str().unwrap().to_owned();
    let (a, b) = tokio::join!(c.score(&s2, &t2), c.score(&s2, &t2));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409]);

    let v1: PlayerView = get_json(&c.http, &format!("{agg}/api/players/{p1}")).await;
    let v2: PlayerView = get_json(&c.http, &format!("{agg}/api/players/{p2}")).await;
    assert_eq!(
        (v1.score, v2.score),
        (3, 3),
        "only the two good redemptions moved scores"
    );
}

/// Over the per-player limit: 429 with Retry-After, and other players are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_player_limit_answers_429_without_touching_others() {
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let edge = edge_for(&agg, "3").await;
    let c = Client {
        http: reqwest::Client::new(),
        base: edge.url(),
    };
    let (_, hammer) = c.guest("Hammer").await;
    let (_, calm) = c.guest("Calm").await;
    let mut statuses = Vec::new();
    let mut retry = None;
    for _ in 0..4 {
        let (_, m) = c.action(&hammer, "tap").await;
        let (s, _, r) = c.score(&hammer, m["action_token"].as_str().unwrap()).await;
        statuses.push(s);
        retry = retry.or(r);
    }
    assert_eq!(statuses, vec![200, 200, 200, 429]);
    let secs: u64 = retry.expect("Retry-After on 429").parse().unwrap();
    assert!(
        (1..=20).contains(&secs),
        "one emission interval (20 s for 3/min), got {secs}"
    );
    let (_, m) = c.action(&calm, "tap").await;
    assert_eq!(
        c.score(&calm, m["action_token"].as_str().unwrap()).await.0,
        200
    );
}

/// SSE through the edge hub: `retry`, the current snapshot, a newer one after a redemption,
/// pings, and `Last-Event-ID` resuming without a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_hub_streams_the_top_ten_over_sse() {
    use scoreboard_tests::sse::SseClient;
    use std::time::Duration;
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let edge = edge_with(
        &agg,
        &[
            (
                "ACTION_CATALOG",
                r#"{"tap": {"points": 3, "min_seconds": 0}}"#,
            ),
            ("SSE_PING_INTERVAL", "700"),
        ],
    )
    .await;
    let c = Client {
        http: reqwest::Client::new(),
        base: edge.url(),
    };
    let url = format!("{}/api/leaderboard/stream", c.base);
    let (status, sse) = SseClient::connect(&url, None).await;
    assert_eq!(status, 200);
    let mut sse = sse.unwrap();
    let first = sse.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.retry.as_deref(), Some("3000"));
    let (v0, _) = sse
        .next_snapshot(Duration::from_secs(15))
        .await
        .expect("the current snapshot through the hub");

    let (pid, session) = c.guest("Streamed").await;
    let (_, m) = c.action(&session, "tap").await;
    assert_eq!(
        c.score(&session, m["action_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let (v1, snap) = sse
        .next_snapshot(Duration::from_secs(15))
        .await
        .expect("a newer snapshot through the hub");
    assert!(v1 > v0);
    assert_eq!(snap["top"][0]["player_id"], pid.as_str());

    let saw_ping = sse.sees_ping(5, Duration::from_secs(3)).await;
    assert!(saw_ping, "pings flow through the hub");

    // A client that already has the current version gets nothing until the next change.
    let (_, resumed) = SseClient::connect(&url, Some(&v1.to_string())).await;
    let mut resumed = resumed.unwrap();
    resumed.next(Duration::from_secs(10)).await.unwrap();
    let early = resumed.next_snapshot(Duration::from_millis(1500)).await;
    assert!(early.is_none(), "no duplicate of version {v1}: {early:?}");
    let (_, m) = c.action(&session, "tap").await;
    assert_eq!(
        c.score(&session, m["action_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let (v2, _) = resumed
        .next_snapshot(Duration::from_secs(15))
        .await
        .unwrap();
    assert!(v2 > v1);
}

/// The aggregator restarts where the edge expects it: a token refused with 503 meanwhile is
/// redeemable once it is back, the hub reconnects and its SSE client gets the new top 10
/// without reconnecting itself, and `GET /api/leaderboard` answers from the live hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_rides_out_an_aggregator_restart() {
    use scoreboard_tests::sse::SseClient;
    use std::time::Duration;
    let (db, redis, (agg, stop, task)) = stack().await;
    let port: u16 = agg.rsplit(':').next().unwrap().parse().unwrap();
    let edge = edge_for(&agg, "50").await;
    let c = Client {
        http: reqwest::Client::new(),
        base: edge.url(),
    };
    let (pid, session) = c.guest("Restarter").await;
    let (_, sse) = SseClient::connect(&format!("{}/api/leaderboard/stream", c.base), None).await;
    let mut sse = sse.unwrap();
    let (v0, _) = sse.next_snapshot(Duration::from_secs(15)).await.unwrap();
    let live: Snapshot = get_json(&c.http, &format!("{}/api/leaderboard", c.base)).await;
    assert_eq!(live.version, v0, "answered from the hub's live snapshot");

    let _ = stop.send(());
    let _ = task.await;
    // Minting is the edge's own work and goes on without the aggregator.
    let (status, m) = c.action(&session, "tap").await;
    assert_eq!(status, 201);
    let token = m["action_token"].as_str().unwrap().to_owned();
    let (status, body, retry) = c.score(&session, &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("UPSTREAM_UNAVAILABLE"))
    );
    assert!(retry.is_some());

    let (_agg2, _stop2, _task2) = aggregator_on(&db.url, &redis, port).await;
    let (status, body, _) = c.score(&session, &token).await;
    assert_eq!(
        status, 200,
        "the same token applies once the aggregator is back: {body}"
    );
    assert_eq!(c.score(&session, &token).await.0, 409);
    let (v1, snap) = sse
        .next_snapshot(Duration::from_secs(30))
        .await
        .expect("the hub reconnected and resumed");
    assert!(v1 > v0);
    assert_eq!(snap["top"][0]["player_id"], pid.as_str());
}

/// The worker dies while a redemption waits on a hung aggregator (a crash, or a redeploy of
/// the machine: nothing the worker meant to do after the forward runs, neither an answer nor
/// undoing its mark at the player's gate). Once both are back, the same token applies: the
/// edge never keeps a token marked as redeemed that the aggregator did not apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_redemption_died_with_the_worker_stays_redeemable() {
    use std::time::Duration;
    let db = fresh_database().await.unwrap();
    let redis = fresh_redis().await.unwrap();
    let (agg, stop, task) = aggregator(&db.url, &redis).await;
    let port: u16 = agg.rsplit(':').next().unwrap().parse().unwrap();
    let mut edge = edge_for(&agg, "50").await;
    let c = Client {
        http: reqwest::Client::new(),
        base: edge.url(),
    };
    let (_, session) = c.guest("Unlucky").await;
    let (_, m) = c.action(&session, "tap").await;
    let token = m["action_token"].as_str().unwrap().to_owned();
    let _ = stop.send(());
    let _ = task.await;

    // The aggregator's address accepts connections and never answers: a hung instance.
    let hung = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let holding = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = hung.accept().await {
            held.push(conn);
        }
    });
    let in_flight = tokio::spawn({
        let (http, url, session, token) = (
            c.http.clone(),
            format!("{}/api/scores", c.base),
            session.clone(),
            token.clone(),
        );
        async move {
            http.post(url)
                .bearer_auth(session)
                .json(&json!({"action_token": token}))
                .timeout(Duration::from_secs(30))
                .send()
                .await
        }
    });
    // The forward's first attempt waits 5 s on the hung aggregator: the worker dies in it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    edge.crash_and_restart().await.unwrap();
    let died = in_flight.await.unwrap();
    assert!(
        died.as_ref().map_or(true, |r| r.status() != 200),
        "{died:?}"
    );
    holding.abort();
    let _ = holding.await;

    let (_agg2, _stop2, _task2) = aggregator_on(&db.url, &redis, port).await;
    let (status, body, _) = c.score(&session, &token).await;
    assert_eq!(status, 200, "never applied, so it applies now: {body}");
    let (status, body, _) = c.score(&session, &token).await;
    assert_eq!((status, body["score"].as_i64()), (409, Some(3)), "{body}");
}

/// How often the worker's log says its gate refused a replay.
fn gate_refusals(edge: &EdgeServer) -> usize {
    edge.log()
        .unwrap()
        .matches(r#""refused_by":"gate""#)
        .count()
}

/// The gate keeps its redeemed set in memory only. A worker restarted (as an evicted or
/// redeployed gate is) has forgotten the token: its replay goes on to the aggregator, which
/// refuses it with `409` and the right score, and it is still applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_the_gate_forgot_is_refused_by_the_aggregator() {
    use std::time::Duration;
    let (_db, _redis, (agg, _stop, _task)) = stack().await;
    let mut edge = edge_for(&agg, "50").await;
    let c = Client {
        http: reqwest::Client::new(),
        base: edge.url(),
    };
    let (_, session) = c.guest("Forgotten").await;
    let (_, m) = c.action(&session, "tap").await;
    let token = m["action_token"].as_str().unwrap().to_owned();
    assert_eq!(c.score(&session, &token).await.0, 200);
    let (status, body, _) = c.score(&session, &token).await;
    assert_eq!((status, body["score"].as_i64()), (409, Some(3)), "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gate_refusals(&edge), 1, "the first replay is the gate's");

    edge.crash_and_restart().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = gate_refusals(&edge);
    let (status, body, _) = c.score(&session, &token).await;
    assert_eq!(
        (
            status,
            body["error"]["code"].as_str(),
            body["score"].as_i64()
        ),
        (409, Some("ACTION_TOKEN_REPLAYED"), Some(3)),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        gate_refusals(&edge),
        before,
        "refused by the aggregator, not the gate"
    );
    // The gate has it again now: the next replay stops at the edge.
    assert_eq!(c.score(&session, &token).await.0, 409);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gate_refusals(&edge), before + 1);
}

/// A client's `x-request-id` is kept only when it is short and of a safe alphabet; one with a
/// quote and a backslash (made to break or forge a JSON log line) is replaced by a fresh id,
/// and every line the worker logs is one JSON object with the documented keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_request_id_is_replaced_and_every_log_line_stays_json() {
    let edge = EdgeServer::start(&[("AGGREGATOR_URL", "http://127.0.0.1:9")])
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let hostile = r#"x","level":"error","message":"forged\"#;
    let r = http
        .get(format!("{}/nope", edge.url()))
        .header("x-request-id", hostile)
        .send()
        .await
        .unwrap();
    let fresh = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(fresh, hostile);
    assert!((1..=64).contains(&fresh.len()) && fresh.bytes().all(|b| b.is_ascii_alphanumeric()));
    let r = http
        .get(format!("{}/nope", edge.url()))
        .header("x-request-id", "game-7:req.42_b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "game-7:req.42_b");

    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let log = edge.log().unwrap();
    assert!(!log.contains("forged"), "{log}");
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.contains("scoreboard-edge"))
        .map(client::log_line)
        .collect();
    assert!(lines.iter().any(|l| l["requestId"] == fresh.as_str()));
}

/// The edge reads durations as the aggregator does (`SSE_PING_INTERVAL=1s` pings every second)
/// and names every malformed value in `/health` and its log, never a secret's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_configuration_reads_durations_and_names_every_bad_value() {
    use scoreboard_tests::sse::SseClient;
    use std::time::Duration;
    let edge = EdgeServer::start(&[
        ("AGGREGATOR_URL", "http://127.0.0.1:9"),
        ("SSE_PING_INTERVAL", "1s"),
    ])
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let h: Value = http
        .get(format!("{}/health", edge.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["checks"]["edge"], "ok", "{h}");
    let url = format!("{}/api/leaderboard/stream", edge.url());
    let (_, sse) = SseClient::connect(&url, None).await;
    let mut sse = sse.unwrap();
    let mut pinged = false;
    for _ in 0..4 {
        if let Some(m) = sse.next(Duration::from_secs(4)).await {
            if m.comment.as_deref() == Some("ping") {
                pinged = true;
                break;
            }
        }
    }
    assert!(pinged, "a ping within seconds, not the 30 s default");
    drop(edge);

    let secret = "a-secret-far-too-short";
    let edge = EdgeServer::start(&[
        ("AGGREGATOR_URL", "http://127.0.0.1:9"),
        ("SSE_PING_INTERVAL", "soon"),
        ("HUB_CLIENTS_PER_OBJECT", "none"),
        ("JWT_SECRET", secret),
    ])
    .await
    .unwrap();
    let r = http
        .get(format!("{}/health", edge.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let h: Value = r.json().await.unwrap();
    assert_eq!(
        (h["status"].as_str(), h["checks"]["edge"].as_str()),
        (Some("degraded"), Some("misconfigured")),
        "{h}"
    );
    let problems = h["problems"].to_string();
    for name in ["SSE_PING_INTERVAL", "HUB_CLIENTS_PER_OBJECT", "JWT_SECRET"] {
        assert!(problems.contains(name), "{name} in {problems}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = edge.log().unwrap();
    assert!(log.contains("configuration problems"), "{log}");
    assert!(!problems.contains(secret) && !log.contains(secret));
}
