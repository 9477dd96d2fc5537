//! Secret rotation at the edge, end to end in workerd: during a rotation the edge and the
//! aggregator accept sessions and action tokens signed with the previous secrets, and the
//! aggregator accepts an edge still signing with the previous forwarding secret; after it,
//! all of those are refused while the new secrets go on working.

use crate::support::{aggregator_with, local_token};
use scoreboard_tests::tokens::now;
use scoreboard_tests::{fresh_database, fresh_redis, EdgeServer};
use serde_json::{json, Value};

const OLD_JWT: &str = "edge-rotation-old-jwt-0123456789abcdefgh";
const OLD_ACTION: &str = "edge-rotation-old-action-0123456789abcde";
const OLD_EDGE: &str = "edge-rotation-old-forward-0123456789abcd";
const NEW_JWT: &str = "edge-rotation-new-jwt-0123456789abcdefgh";
const NEW_ACTION: &str = "edge-rotation-new-action-0123456789abcde";
const NEW_EDGE: &str = "edge-rotation-new-forward-0123456789abcd";

struct Edge {
    http: reqwest::Client,
    base: String,
}

impl Edge {
    async fn post(&self, path: &str, session: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(s) = session {
            req = req.bearer_auth(s);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    async fn guest(&self, name: &str) -> (String, String) {
        let g = scoreboard_tests::client::guest(&self.http, &self.base, name).await;
        (g.id, g.token)
    }

    async fn score(&self, session: &str, token: &str) -> (u16, Value) {
        self.post("/api/scores", Some(session), json!({"action_token": token}))
            .await
    }

    async fn act(&self, session: &str) -> String {
        let (status, v) = self
            .post("/api/actions", Some(session), json!({"action": "tap"}))
            .await;
        assert_eq!(status, 201, "{v}");
        v["action_token"].as_str().unwrap().to_owned()
    }
}

fn edge_vars<'a>(
    agg: &'a str,
    jwt: &'a [&'a str],
    action: &'a [&'a str],
    forward: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("AGGREGATOR_URL", agg),
        ("JWT_SECRET", jwt[0]),
        ("ACTION_TOKEN_SECRET", action[0]),
        ("EDGE_FORWARD_SECRET", forward),
        ("RATE_LIMIT_SCORE_UPDATE", "100"),
        (
            "ACTION_CATALOG",
            r#"{"tap": {"points": 3, "min_seconds": 0}}"#,
        ),
    ];
    if let Some(prev) = jwt.get(1) {
        vars.push(("JWT_SECRET_PREVIOUS", prev));
    }
    if let Some(prev) = action.get(1) {
        vars.push(("ACTION_TOKEN_SECRET_PREVIOUS", prev));
    }
    vars
}

/// Before, during (aggregator first, edge still on the old forwarding secret) and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_and_the_aggregator_rotate_secrets_without_refusing_anyone() {
    let db = fresh_database().await.unwrap();
    let redis = fresh_redis().await.unwrap();
    let old = [
        ("JWT_SECRET", OLD_JWT),
        ("ACTION_TOKEN_SECRET", OLD_ACTION),
        ("EDGE_FORWARD_SECRET", OLD_EDGE),
    ];
    // Before: an aggregator on the old secrets signs a player in.
    let (agg, stop, task) = aggregator_with(&db.url, &redis, 0, &old).await;
    let port: u16 = agg.rsplit(':').next().unwrap().parse().unwrap();
    let direct = Edge {
        http: reqwest::Client::new(),
        base: agg.clone(),
    };
    let (old_id, old_session) = direct.guest("Veteran").await;
    let _ = stop.send(());
    let _ = task.await;

    // During: the aggregator is rotated first (new secrets, old ones as previous); the edge
    // verifies with both, but still forwards with the old forwarding secret.
    let during = [
        ("JWT_SECRET", NEW_JWT),
        ("JWT_SECRET_PREVIOUS", OLD_JWT),
        ("ACTION_TOKEN_SECRET", NEW_ACTION),
        ("ACTION_TOKEN_SECRET_PREVIOUS", OLD_ACTION),
        ("EDGE_FORWARD_SECRET", NEW_EDGE),
        ("EDGE_FORWARD_SECRET_PREVIOUS", OLD_EDGE),
    ];
    let (agg, stop, task) = aggregator_with(&db.url, &redis, port, &during).await;
    let mut server = EdgeServer::start(&edge_vars(
        &agg,
        &[NEW_JWT, OLD_JWT],
        &[NEW_ACTION, OLD_ACTION],
        OLD_EDGE,
    ))
    .await
    .unwrap();
    let edge = Edge {
        http: reqwest::Client::new(),
        base: server.url(),
    };
    let minted = edge.act(&old_session).await;
    let (status, body) = edge.score(&old_session, &minted).await;
    assert_eq!(
        status, 200,
        "old session, new token, old forwarding secret: {body}"
    );
    let (status, body) = edge
        .score(&old_session, &local_token(OLD_ACTION, &old_id, now(), 300))
        .await;
    assert_eq!(
        status, 200,
        "a token a game backend signed with the old secret: {body}"
    );
    assert_eq!(body["score"], 6);
    let (new_id, new_session) = edge.guest("Newcomer").await;
    let late_old = local_token(OLD_ACTION, &new_id, now(), 300);
    server.stop();
    let _ = stop.send(());
    let _ = task.await;

    // After: previous secrets removed everywhere, the edge forwarding with the new secret.
    let new = [
        ("JWT_SECRET", NEW_JWT),
        ("ACTION_TOKEN_SECRET", NEW_ACTION),
        ("EDGE_FORWARD_SECRET", NEW_EDGE),
    ];
    let (agg, _stop, _task) = aggregator_with(&db.url, &redis, port, &new).await;
    let server = EdgeServer::start(&edge_vars(&agg, &[NEW_JWT], &[NEW_ACTION], NEW_EDGE))
        .await
        .unwrap();
    let edge = Edge {
        http: reqwest::Client::new(),
        base: server.url(),
    };
    let (status, body) = edge
        .score(&old_session, &edge.act(&new_session).await)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED")),
        "a session signed with the old JWT secret"
    );
    let (status, body) = edge.score(&new_session, &late_old).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("ACTION_TOKEN_INVALID")),
        "an action token signed with the old secret"
    );
    let (status, body) = edge
        .score(&new_session, &edge.act(&new_session).await)
        .await;
    assert_eq!(status, 200, "the new secrets work end to end: {body}");
    assert_eq!(body["score"], 3);
}
