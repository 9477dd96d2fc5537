//! End to end through the real worker in workerd (`wrangler dev`) against a real aggregator,
//! PostgreSQL and Redis: what the edge serves today (health, forwarding, errors, headers, logs).

use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::Application;
use scoreboard_tests::{fresh_database, fresh_redis, EdgeServer};
use serde_json::{json, Value};
use std::collections::HashMap;

const EDGE_SECRET: &str = "e2e-edge-secret-0123456789abcdef-xyz";

async fn aggregator(
    db_url: &str,
    redis: &scoreboard_tests::TestRedis,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", db_url),
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_KEY_PREFIX", redis.key_prefix.as_str()),
        ("PORT", "0"),
        ("METRICS_PORT", "0"),
        ("BIND_ADDR", "127.0.0.1"),
        ("JWT_SECRET", "e2e-jwt-secret-0123456789abcdef-uvwxyz"),
        (
            "ACTION_TOKEN_SECRET",
            "e2e-action-secret-0123456789abcdef-xy",
        ),
        ("EDGE_FORWARD_SECRET", EDGE_SECRET),
        ("ADMIN_API_KEY", "e2e-admin-key-0123456789abcdef-uvwxyz"),
        ("LOG_LEVEL", "warn"),
        ("SHUTDOWN_GRACE_PERIOD", "2s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let app = Application::build(Config::from_vars(&vars).unwrap())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    (url, tx, handle)
}

/// The edge answers in our shape with security headers, forwards sign-in and reads to the
/// aggregator, reports the aggregator's health, and says 503 when it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_forwards_to_the_aggregator_and_degrades_when_it_is_gone() {
    let db = fresh_database().await.unwrap();
    let redis = fresh_redis().await.unwrap();
    let (agg, stop_agg, agg_task) = aggregator(&db.url, &redis).await;
    let edge = EdgeServer::start(&[
        ("AGGREGATOR_URL", &agg),
        ("EDGE_FORWARD_SECRET", EDGE_SECRET),
    ])
    .await
    .unwrap();
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
    let guest: Value = r.json().await.unwrap();
    let id = guest["player_id"].as_str().unwrap();
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
    let v: Value = http
        .get(format!("{base}/api/players/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["name"].as_str(), v["score"].as_i64()),
        (Some("Edgy"), Some(0))
    );
    let through_edge: Value = http
        .get(format!("{base}/api/leaderboard"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let direct: Value = http
        .get(format!("{agg}/api/leaderboard"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(through_edge["version"], direct["version"]);

    // Unknown routes and methods, and oversized bodies, in our shape.
    let r = http.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "NOT_FOUND"
    );
    let r = http
        .delete(format!("{base}/api/leaderboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = http
        .post(format!("{base}/api/auth/guest"))
        .header("content-type", "application/json")
        .body(format!("{{\"name\":\"{}\"}}", "x".repeat(5000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // The worker logs one JSON line per request, with the request id and no token.
    let log = edge.log().unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("\"requestId\":\"e2e-req-1\""))
        .expect("a log line for the request");
    let parsed: Value = serde_json::from_str(line).unwrap();
    assert_eq!(parsed["data"]["path"], "/api/auth/guest");
    assert!(!log.contains(guest["token"].as_str().unwrap()));
    assert!(!log.contains(EDGE_SECRET));

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
        r.json::<Value>().await.unwrap()["error"]["code"],
        "UPSTREAM_UNAVAILABLE"
    );
}
