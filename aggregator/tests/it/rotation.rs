//! Secret rotation without downtime: while `JWT_SECRET_PREVIOUS`, `ACTION_TOKEN_SECRET_PREVIOUS`
//! and `EDGE_FORWARD_SECRET_PREVIOUS` hold the old values, sessions, action tokens and edge
//! signatures made with them are accepted (for verification only: everything new is signed with
//! the new secrets); once they are removed, the old ones are refused.

use crate::helpers::*;
use serde_json::json;

const OLD_JWT: &str = "rotation-old-jwt-secret-0123456789abcdef";
const OLD_ACTION: &str = "rotation-old-action-secret-0123456789abc";
const OLD_EDGE: &str = "rotation-old-edge-secret-0123456789abcdef";
const NEW_JWT: &str = "rotation-new-jwt-secret-0123456789abcdef";
const NEW_ACTION: &str = "rotation-new-action-secret-0123456789abc";
const NEW_EDGE: &str = "rotation-new-edge-secret-0123456789abcdef";

/// An instance on `database_url` with the given current secrets and, during a rotation, the
/// previous ones.
async fn instance(
    database_url: Option<&str>,
    current: [&str; 3],
    previous: Option<[&str; 3]>,
) -> TestApp {
    let url = database_url.map(str::to_owned);
    let current = current.map(str::to_owned);
    let previous = previous.map(|p| p.map(str::to_owned));
    spawn_app_with(move |v| {
        if let Some(url) = url {
            v.insert("DATABASE_URL".into(), url);
        }
        let [jwt, action, edge] = current;
        v.insert("JWT_SECRET".into(), jwt);
        v.insert("ACTION_TOKEN_SECRET".into(), action);
        v.insert("EDGE_FORWARD_SECRET".into(), edge);
        if let Some([jwt, action, edge]) = previous {
            v.insert("JWT_SECRET_PREVIOUS".into(), jwt);
            v.insert("ACTION_TOKEN_SECRET_PREVIOUS".into(), action);
            v.insert("EDGE_FORWARD_SECRET_PREVIOUS".into(), edge);
        }
    })
    .await
}

async fn score(
    app: &TestApp,
    edge_secret: &str,
    session: &str,
    token: &str,
) -> (u16, String, serde_json::Value) {
    let body = json!({"action_token": token, "edge_region": "test"}).to_string();
    code_of(
        app.post_signed(edge_secret, Some(session), &body, "application/json")
            .await,
    )
    .await
}

/// Before, during and after a rotation of all three secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_secrets_verify_during_a_rotation_and_are_refused_after_it() {
    // Before: everything under the old secrets.
    let mut before = instance(None, [OLD_JWT, OLD_ACTION, OLD_EDGE], None).await;
    let db_url = before.database.url.clone();
    let old_player = before.guest("Before").await;
    let (status, _, _) = score(
        &before,
        OLD_EDGE,
        &old_player.token,
        &mint_with(OLD_ACTION, &old_player.id, 5, 0, 300, now()),
    )
    .await;
    assert_eq!(status, 200);
    let pending_old_token = mint_with(OLD_ACTION, &old_player.id, 7, 0, 300, now());
    before.stop().await;

    // During: new secrets current, old ones previous. Old session, old token, old edge
    // signature (an edge not yet redeployed) all pass; new sessions are signed with the new.
    let mut during = instance(
        Some(&db_url),
        [NEW_JWT, NEW_ACTION, NEW_EDGE],
        Some([OLD_JWT, OLD_ACTION, OLD_EDGE]),
    )
    .await;
    let (status, _, body) = score(&during, OLD_EDGE, &old_player.token, &pending_old_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["score"], 12);
    let new_player = during.guest("During").await;
    let (status, _, _) = score(
        &during,
        NEW_EDGE,
        &new_player.token,
        &mint_with(NEW_ACTION, &new_player.id, 3, 0, 300, now()),
    )
    .await;
    assert_eq!(status, 200);
    let late_old_token = mint_with(OLD_ACTION, &new_player.id, 4, 0, 300, now());
    during.stop().await;

    // After: the previous secrets removed. What the old ones signed is refused, in our codes;
    // what the new ones signed goes on working.
    let after = instance(Some(&db_url), [NEW_JWT, NEW_ACTION, NEW_EDGE], None).await;
    let fresh = mint_with(NEW_ACTION, &old_player.id, 1, 0, 300, now());
    let (status, code, _) = score(&after, NEW_EDGE, &old_player.token, &fresh).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "UNAUTHENTICATED"),
        "a session signed with the old JWT secret"
    );
    let (status, code, _) = score(&after, NEW_EDGE, &new_player.token, &late_old_token).await;
    assert_eq!(
        (status, code.as_str()),
        (422, "ACTION_TOKEN_INVALID"),
        "an action token signed with the old secret"
    );
    let token = mint_with(NEW_ACTION, &new_player.id, 2, 0, 300, now());
    let (status, code, _) = score(&after, OLD_EDGE, &new_player.token, &token).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "EDGE_SIGNATURE_INVALID"),
        "a request signed with the old edge secret"
    );
    let (status, _, body) = score(&after, NEW_EDGE, &new_player.token, &token).await;
    assert_eq!(status, 200, "the same token, correctly signed: {body}");
    assert_eq!(body["score"], 5);
    assert_eq!(after.total(&old_player.id).await, 12);
}
