//! Sign-in routes: guests, registration, login, logout, and their refusals.

use crate::helpers::*;
use serde_json::json;

async fn post(
    app: &TestApp,
    path: &str,
    body: serde_json::Value,
) -> (u16, String, serde_json::Value) {
    code_of(app.post_json(path, None, &body).await).await
}

#[tokio::test]
async fn register_then_login_returns_a_working_session() {
    let app = spawn_app().await;
    let (s, _, reg) = post(
        &app,
        "/api/auth/register",
        json!({"name": "Ana", "password": "correct horse"}),
    )
    .await;
    assert_eq!(s, 201);
    for key in ["player_id", "name", "token", "expires_at"] {
        assert!(reg[key].is_string(), "{key} in {reg}");
    }
    let (s, _, login) = post(
        &app,
        "/api/auth/login",
        json!({"name": "ana", "password": "correct horse"}),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(login["player_id"], reg["player_id"]);
    let token = login["token"].as_str().unwrap();
    let pid = login["player_id"].as_str().unwrap();
    assert_eq!(
        app.post_score(token, &mint(pid, 3, 0, 300, now()))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn names_are_unique_regardless_of_case_and_validated() {
    let app = spawn_app().await;
    app.guest("Zoë").await;
    let (s, c, _) = post(&app, "/api/auth/guest", json!({"name": "ZOË"})).await;
    assert_eq!((s, c.as_str()), (409, "NAME_TAKEN"));
    let (s, c, _) = post(
        &app,
        "/api/auth/register",
        json!({"name": "zoë", "password": "longenough"}),
    )
    .await;
    assert_eq!((s, c.as_str()), (409, "NAME_TAKEN"));
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(33)}),
        json!({"name": "a\u{202E}b"}),
        json!({"name": 5}),
        json!({}),
        json!({"name": "ok", "admin": true}),
    ] {
        let (s, c, _) = post(&app, "/api/auth/guest", bad.clone()).await;
        assert_eq!((s, c.as_str()), (400, "BAD_REQUEST"), "{bad}");
    }
    let (s, c, _) = post(
        &app,
        "/api/auth/register",
        json!({"name": "Short", "password": "1234567"}),
    )
    .await;
    assert_eq!((s, c.as_str()), (400, "BAD_REQUEST"));
    // Names are data, not markup: stored and returned as given.
    let p = app.guest("<img src=x onerror=alert(1)>").await;
    assert_eq!(p.name, "<img src=x onerror=alert(1)>");
}

#[tokio::test]
async fn wrong_passwords_and_unknown_names_get_the_same_answer() {
    let app = spawn_app().await;
    post(
        &app,
        "/api/auth/register",
        json!({"name": "Bob", "password": "right password"}),
    )
    .await;
    let (s1, c1, b1) = post(
        &app,
        "/api/auth/login",
        json!({"name": "Bob", "password": "wrong password"}),
    )
    .await;
    let (s2, c2, b2) = post(
        &app,
        "/api/auth/login",
        json!({"name": "Nobody", "password": "wrong password"}),
    )
    .await;
    assert_eq!((s1, c1.as_str()), (401, "BAD_CREDENTIALS"));
    assert_eq!((s2, c2.as_str()), (401, "BAD_CREDENTIALS"));
    assert_eq!(b1, b2);
    // A guest has no password and cannot log in.
    app.guest("Guesty").await;
    let (s, c, _) = post(
        &app,
        "/api/auth/login",
        json!({"name": "Guesty", "password": "anything at all"}),
    )
    .await;
    assert_eq!((s, c.as_str()), (401, "BAD_CREDENTIALS"));
}

#[tokio::test]
async fn guests_can_be_disabled_and_bodies_must_be_json() {
    let app = spawn_app_with(|v| {
        v.insert("ALLOW_GUESTS".into(), "false".into());
    })
    .await;
    let (s, c, _) = post(&app, "/api/auth/guest", json!({"name": "Nope"})).await;
    assert_eq!((s, c.as_str()), (403, "FORBIDDEN"));
    let r = client::post_raw(
        &app.http,
        &format!("{}/api/auth/register", app.base),
        None,
        Some("text/plain"),
        "name=x",
    )
    .await;
    assert_eq!(r.status(), 415);
    let r = client::post_raw(
        &app.http,
        &format!("{}/api/auth/register", app.base),
        None,
        Some("application/json"),
        format!("{{\"name\":\"{}\"}}", "x".repeat(5000)),
    )
    .await;
    assert_eq!(r.status(), 413);
}

#[tokio::test]
async fn logout_needs_a_session_and_revokes_it() {
    let app = spawn_app().await;
    let r = app.logout(None).await;
    assert_eq!(code_of(r).await.1, "UNAUTHENTICATED");
    let p = app.guest("Leaver").await;
    let r = app.logout(Some(&p.token)).await;
    assert_eq!(r.status(), 204);
    let revoked: bool = app
        .player_row(
            "SELECT revoked_at IS NOT NULL FROM sessions WHERE player_id = $1",
            &p.id,
        )
        .await;
    assert!(revoked);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let r = app.get("/nope").await;
    assert_eq!(
        code_of(r).await,
        (
            404,
            "NOT_FOUND".into(),
            json!({"error": {"code": "NOT_FOUND", "message": "No such route."}})
        )
    );
    let r = app
        .http
        .delete(format!("{}/api/leaderboard", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(r).await.0, 405);
    let r = app.get("/api/players/nobody").await;
    assert_eq!(code_of(r).await.1, "PLAYER_NOT_FOUND");
    let r = app.get("/api/players/bad%20id").await;
    assert_eq!(code_of(r).await.1, "PLAYER_NOT_FOUND");
    let r = app.get("/health").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("x-content-type-options").unwrap(),
        "nosniff"
    );
    assert!(r.headers().get("x-request-id").is_some());
}

/// Sign-in routes are limited per IP: past the quota, 429 with `Retry-After`, counted.
#[tokio::test]
async fn sign_in_is_rate_limited_per_ip() {
    let app = spawn_app_with(|v| {
        v.insert("RATE_LIMIT_IP".into(), "3".into());
    })
    .await;
    for i in 0..3 {
        app.guest(&format!("Fast {i}")).await;
    }
    let r = app
        .post_json("/api/auth/guest", None, &json!({"name": "Fast 4"}))
        .await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "retry-after {retry}");
    assert_eq!(code_of(r).await.1, "RATE_LIMITED");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(users, 3, "the refused request created nothing");
    // Reads are not limited.
    assert_eq!(app.get("/api/leaderboard").await.status(), 200);
    let text = client::get_text(&app.http, &app.metrics).await;
    assert!(text.contains("rate_limit_hits_total{endpoint=\"auth\"}"));

    // Requests the edge signed were limited per client there: they pass here.
    let body = r#"{"name":"Via edge"}"#;
    let r = client::edge_signed_post(
        &app.http,
        &app.base,
        EDGE_SECRET,
        "/api/auth/guest",
        body,
        "application/json",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    // A bad signature does not bypass the limit.
    let r = app
        .http
        .post(format!("{}/api/auth/guest", app.base))
        .header("x-edge-signature", "t=1,v1=00")
        .header("content-type", "application/json")
        .body(r#"{"name":"Forger"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}
