//! `spawn_app()`: a real aggregator on a random port against a fresh database, with typed
//! helpers to sign in, mint tokens and post edge-signed score updates.
#![allow(dead_code, unreachable_pub, unused_imports)]

use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::Application;
use scoreboard_protocol::action::{ActionTokens, MintRequest};
use scoreboard_protocol::edge_signature;
use scoreboard_protocol::jwt::HmacSecret;
use scoreboard_protocol::{ActionName, PlayerId};
use serde_json::{json, Value};
use std::collections::HashMap;

pub use scoreboard_tests::stack::{ACTION_SECRET, ADMIN_KEY, EDGE_SECRET, JWT_SECRET};

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

pub struct TestApp {
    pub base: String,
    pub metrics: String,
    pub db: sqlx::PgPool,
    pub http: reqwest::Client,
    pub database: scoreboard_tests::TestDatabase,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn base_vars(database_url: &str) -> HashMap<String, String> {
    scoreboard_tests::stack::aggregator_vars(database_url)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let database = scoreboard_tests::fresh_database()
        .await
        .expect("a fresh database");
    let mut vars = base_vars(&database.url);
    tweak(&mut vars);
    if std::env::var("TEST_LOG").is_ok() {
        scoreboard_aggregator::telemetry::init(
            "info",
            scoreboard_aggregator::config::LogFormat::Json,
        );
    }
    let config = Config::from_vars(&vars).expect("test configuration is valid");
    let app = Application::build(config).await.expect("the app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics = format!("http://127.0.0.1:{}/metrics", app.metrics_port());
    let db = app.db();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        metrics,
        db,
        http: reqwest::Client::new(),
        database,
        stop: Some(tx),
        server: Some(server),
    }
}

pub struct Player {
    pub id: String,
    pub name: String,
    pub token: String,
}

pub fn mint(player: &str, points: i64, min_seconds: i64, ttl: i64, at: i64) -> String {
    mint_with(ACTION_SECRET, player, points, min_seconds, ttl, at)
}

/// An action token signed with `secret` (e.g. a secret being rotated out).
pub fn mint_with(
    secret: &str,
    player: &str,
    points: i64,
    min_seconds: i64,
    ttl: i64,
    at: i64,
) -> String {
    use rand::RngCore;
    let mut jti = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut jti);
    ActionTokens::from_secret(HmacSecret::new(secret.as_bytes()))
        .mint(
            &MintRequest {
                player: &PlayerId::parse(player).unwrap(),
                action: &ActionName::parse("quest").unwrap(),
                points,
                min_seconds,
                ttl_secs: ttl,
            },
            &jti,
            at,
        )
        .unwrap()
        .token
}

impl TestApp {
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }

    pub async fn guest(&self, name: &str) -> Player {
        let r = self
            .http
            .post(format!("{}/api/auth/guest", self.base))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "guest sign-in");
        let v: Value = r.json().await.unwrap();
        Player {
            id: v["player_id"].as_str().unwrap().to_owned(),
            name: v["name"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
        }
    }

    /// An edge-signed `POST /internal/scores` with a raw body and optional session.
    pub async fn post_raw(
        &self,
        session: Option<&str>,
        body: &str,
        content_type: &str,
    ) -> reqwest::Response {
        self.post_signed(EDGE_SECRET, session, body, content_type)
            .await
    }

    /// Like `post_raw`, signed with `edge_secret`.
    pub async fn post_signed(
        &self,
        edge_secret: &str,
        session: Option<&str>,
        body: &str,
        content_type: &str,
    ) -> reqwest::Response {
        let sig = edge_signature::header_value(
            edge_secret.as_bytes(),
            now(),
            "POST",
            "/internal/scores",
            body.as_bytes(),
        );
        let mut req = self
            .http
            .post(format!("{}/internal/scores", self.base))
            .header("x-edge-signature", sig)
            .header("content-type", content_type)
            .body(body.to_owned());
        if let Some(s) = session {
            req = req.bearer_auth(s);
        }
        req.send().await.unwrap()
    }

    pub async fn post_score(&self, session: &str, action_token: &str) -> reqwest::Response {
        let body = json!({"action_token": action_token, "edge_region": "test"}).to_string();
        self.post_raw(Some(session), &body, "application/json")
            .await
    }

    /// `GET` of a path on this app.
    pub async fn get(&self, path: impl AsRef<str>) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path.as_ref()))
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/players/{id}` as JSON.
    pub async fn player(&self, id: &str) -> Value {
        self.get(format!("/api/players/{id}"))
            .await
            .json()
            .await
            .unwrap()
    }

    pub async fn leaderboard(&self) -> Value {
        self.http
            .get(format!("{}/api/leaderboard", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn total(&self, player: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce((SELECT score FROM scores WHERE player_id = $1), 0)",
        )
        .bind(player)
        .fetch_one(&self.db)
        .await
        .unwrap()
    }
}

/// The error code of a JSON error response.
pub async fn code_of(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_owned(),
        v,
    )
}

pub use scoreboard_tests::sse::SseClient;
