//! `spawn_app()`: a real aggregator on a random port against a fresh database, with typed
//! helpers to sign in, mint tokens and post edge-signed score updates. What is not about the
//! in-process app (tokens, the clock, sign-in, edge signatures) lives once in the harness
//! crate, `scoreboard_tests`, and is re-exported here for the test modules.

use scoreboard_aggregator::config::Config;
use scoreboard_aggregator::Application;
use scoreboard_protocol::snapshot::{PlayerView, ScoreResponse, Snapshot};
use serde_json::Value;
use std::collections::HashMap;

pub(crate) use scoreboard_tests::client::{self, Guest as Player};
pub(crate) use scoreboard_tests::sse::SseClient;
pub(crate) use scoreboard_tests::stack::{ACTION_SECRET, ADMIN_KEY, EDGE_SECRET, JWT_SECRET};
pub(crate) use scoreboard_tests::tokens::{mint, mint_on, mint_with, now};

/// The aggregator binary, for the tests that run it as a process.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_scoreboard-aggregator");

pub(crate) struct TestApp {
    pub(crate) base: String,
    pub(crate) metrics: String,
    pub(crate) db: sqlx::PgPool,
    pub(crate) http: reqwest::Client,
    pub(crate) database: scoreboard_tests::TestDatabase,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Set when the app is the binary run as a process ([`spawn_process_with`]).
    process: Option<scoreboard_tests::AggregatorProcess>,
}

pub(crate) fn base_vars(database_url: &str) -> HashMap<String, String> {
    scoreboard_tests::stack::aggregator_vars(database_url)
}

/// The configuration of an aggregator *process* on `database_url`: the test secrets, free
/// ports named in advance (the caller reads them back from `PORT` and `METRICS_PORT`), quiet
/// logs, and `extra` on top.
pub(crate) fn process_vars(database_url: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars = base_vars(database_url);
    vars.insert("PORT".into(), scoreboard_tests::free_port().to_string());
    vars.insert(
        "METRICS_PORT".into(),
        scoreboard_tests::free_port().to_string(),
    );
    vars.insert("LOG_LEVEL".into(), "error".into());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    vars
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub(crate) async fn spawn_app_with(tweak: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
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
        process: None,
    }
}

/// Like [`spawn_app_with`], but the aggregator binary as a process of its own: for tests that
/// read the value of a gauge, which the in-process apps of this binary all share (one
/// Prometheus recorder per process).
pub(crate) async fn spawn_process_with(
    tweak: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    let database = scoreboard_tests::fresh_database()
        .await
        .expect("a fresh database");
    let mut vars = process_vars(&database.url, &[]);
    tweak(&mut vars);
    let process = scoreboard_tests::AggregatorProcess::start(BIN, &vars).await;
    let db = sqlx::PgPool::connect(&database.url)
        .await
        .expect("the test database answers");
    TestApp {
        base: process.base.clone(),
        metrics: process.metrics.clone(),
        db,
        http: reqwest::Client::new(),
        database,
        stop: None,
        server: None,
        process: Some(process),
    }
}

impl TestApp {
    pub(crate) async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate(std::time::Duration::from_secs(10)).await;
        }
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(s) = self.server.take() {
            let _ = s.await;
        }
    }

    pub(crate) async fn guest(&self, name: &str) -> Player {
        client::guest(&self.http, &self.base, name).await
    }

    /// `n` guests named `{prefix}0`, `{prefix}1`, ...
    pub(crate) async fn guests(&self, prefix: &str, n: usize) -> Vec<Player> {
        client::guests(&self.http, &self.base, prefix, n).await
    }

    /// An edge-signed `POST /internal/scores` with a raw body and optional session.
    pub(crate) async fn post_raw(
        &self,
        session: Option<&str>,
        body: &str,
        content_type: &str,
    ) -> reqwest::Response {
        self.post_signed(EDGE_SECRET, session, body, content_type)
            .await
    }

    /// Like `post_raw`, signed with `edge_secret`.
    pub(crate) async fn post_signed(
        &self,
        edge_secret: &str,
        session: Option<&str>,
        body: &str,
        content_type: &str,
    ) -> reqwest::Response {
        let path = "/internal/scores";
        let mut req = client::edge_signed_post(
            &self.http,
            &self.base,
            edge_secret,
            path,
            body,
            content_type,
        );
        if let Some(s) = session {
            req = req.bearer_auth(s);
        }
        req.send().await.unwrap()
    }

    pub(crate) async fn post_score(&self, session: &str, action_token: &str) -> reqwest::Response {
        let body = client::forwarded_score(action_token, "test");
        self.post_raw(Some(session), &body, "application/json")
            .await
    }

    /// `player` redeems a fresh 300-second `quest` token for `points`, which must apply.
    pub(crate) async fn scored(&self, player: &Player, points: i64) -> ScoreResponse {
        let r = self
            .post_score(&player.token, &mint(&player.id, points, 0, 300, now()))
            .await;
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "a score update of {}: {body}", player.name);
        serde_json::from_str(&body).expect("a score response")
    }

    /// A JSON `POST` of `body` to a path on this app, with an optional bearer token.
    pub(crate) async fn post_json(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        req.send().await.unwrap()
    }

    /// `GET` of a path on this app.
    pub(crate) async fn get(&self, path: impl AsRef<str>) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path.as_ref()))
            .send()
            .await
            .unwrap()
    }

    /// `GET /api/players/{id}`, which must be a player's view.
    pub(crate) async fn player(&self, id: &str) -> PlayerView {
        client::get_json(&self.http, &format!("{}/api/players/{id}", self.base)).await
    }

    /// `GET /api/leaderboard`.
    pub(crate) async fn leaderboard(&self) -> Snapshot {
        client::get_json(&self.http, &format!("{}/api/leaderboard", self.base)).await
    }

    /// `POST /api/auth/logout`, with the session `bearer` if any.
    pub(crate) async fn logout(&self, bearer: Option<&str>) -> reqwest::Response {
        let url = format!("{}/api/auth/logout", self.base);
        client::post_raw(&self.http, &url, bearer, None, "").await
    }

    /// The one value `sql` selects for `player` (its `$1`), e.g. whether they are banned.
    pub(crate) async fn player_row<T>(&self, sql: &str, player: &str) -> T
    where
        T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        sqlx::query_scalar(sql)
            .bind(player)
            .fetch_one(&self.db)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The player's total in PostgreSQL (0 before their first score event).
    pub(crate) async fn total(&self, player: &str) -> i64 {
        let sql = "SELECT coalesce((SELECT value FROM entries WHERE board_id = 'global' AND period = 'all' AND player_id = $1), 0)";
        self.player_row(sql, player).await
    }
}

/// An admin request (with the admin key) and its status and JSON body.
pub(crate) async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(ADMIN_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// `GET path`: the status and the JSON body (`null` when there is none).
pub(crate) async fn get_json(app: &TestApp, path: &str) -> (u16, Value) {
    let r = app.get(path).await;
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// Creates (or changes) a board with `PUT /admin/boards/{id}`; it must succeed.
pub(crate) async fn put_board(app: &TestApp, id: &str, body: Value) -> Value {
    let (s, b) = admin(
        app,
        reqwest::Method::PUT,
        &format!("/admin/boards/{id}"),
        Some(body),
    )
    .await;
    assert!(s == 200 || s == 201, "PUT /admin/boards/{id}: {s} {b}");
    b
}

/// `(player_id, score, rank)` of each entry of a JSON array of entries (a snapshot's `top`, a
/// page's `entries`, an `around`).
pub(crate) fn entry_rows(entries: &Value) -> Vec<(String, i64, i64)> {
    entries
        .as_array()
        .expect("an array of entries")
        .iter()
        .map(|e| {
            (
                e["player_id"].as_str().unwrap().to_owned(),
                e["score"].as_i64().unwrap(),
                e["rank"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The error code of a JSON error response.
pub(crate) async fn code_of(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_owned(),
        v,
    )
}

/// `scoreboard-aggregator serve` with its stdout (the JSON log lines) collected line by line,
/// for the tests that read what the real process logs.
pub(crate) struct LoggedProcess {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line so far, start-up first.
    seen: Vec<String>,
    pub(crate) base: String,
}

impl LoggedProcess {
    /// Starts it on `database_url` and waits for its "listening" line.
    pub(crate) fn start(database_url: &str) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(BIN)
            .arg("serve")
            .env_clear()
            .envs(base_vars(database_url))
            .env("LOG_LEVEL", "info")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the aggregator binary starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let port = loop {
            let line = lines
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("the server logs within 30 s");
            let v: Value = serde_json::from_str(&line).unwrap_or_default();
            seen.push(line);
            if v["message"] == "listening" {
                break v["data"]["port"].as_u64().expect("a port");
            }
        };
        Self {
            child,
            lines,
            seen,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Stops it with SIGTERM and returns every line it wrote.
    pub(crate) fn stop(mut self) -> Vec<String> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        while let Ok(l) = self.lines.recv_timeout(std::time::Duration::from_secs(2)) {
            self.seen.push(l);
        }
        self.seen
    }
}

/// Status counts (0: no answer) of the reads of [`readers`].
pub(crate) type ReadStatuses =
    std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<u16, usize>>>;

/// Three readers of a player's standing, around-me and the first entries page of `global`
/// about `players` at `base`, counting each answer's status until `stop`: what the fault tests
/// of the read paths (replica, Redis Cluster) watch while a server goes away.
pub(crate) fn readers(
    base: &str,
    players: &[Player],
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    statuses: &ReadStatuses,
) -> Vec<tokio::task::JoinHandle<()>> {
    use std::sync::atomic::Ordering;
    (0..3)
        .map(|r| {
            let (stop, statuses) = (stop.clone(), statuses.clone());
            let ids: Vec<String> = players.iter().map(|p| p.id.clone()).collect();
            let base = base.to_owned();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap();
                let mut n = r;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let id = &ids[n % ids.len()];
                    let path = match n % 3 {
                        0 => format!("/api/players/{id}"),
                        1 => format!("/api/boards/global/players/{id}?around=2"),
                        _ => "/api/boards/global/entries?limit=5".to_owned(),
                    };
                    let status = match http.get(format!("{base}{path}")).send().await {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect()
}

/// Asserts every read of [`readers`] answered 200, and enough of them were made.
pub(crate) fn assert_every_read_ok(statuses: &ReadStatuses) {
    let statuses = statuses.lock().unwrap().clone();
    let reads: usize = statuses.values().sum();
    assert_eq!(
        statuses.get(&200),
        Some(&reads),
        "every read answered 200: {statuses:?}"
    );
    assert!(reads >= 100, "too few reads: {statuses:?}");
}

/// The players in the sorted set `key` of a `desc` board (its rank key is the negated value),
/// with their values, best first, as the aggregator's Redis copy holds them.
pub(crate) async fn descending_board(
    c: &mut impl redis::aio::ConnectionLike,
    key: &str,
) -> Vec<(String, i64)> {
    let rows: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(c)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(m, s)| (m.split_once(':').unwrap().1.to_owned(), -(s as i64)))
        .collect()
}

/// Eight players of their own (the exactly-once check counts any event it did not send as
/// foreign) redeeming fresh tokens and, a fifth of the time, replays, six at a time, straight
/// at the aggregator `base`: the load the fault tests of the storage engines run under.
pub(crate) async fn writers_at(
    http: &reqwest::Client,
    base: &str,
) -> (Vec<Player>, scoreboard_tests::player_load::PlayerLoad) {
    let players = client::guests(http, base, "Writer ", 8).await;
    let load = scoreboard_tests::player_load::PlayerLoad::start_at_aggregator(
        base,
        &players,
        scoreboard_tests::player_load::LoadOptions {
            workers: 6,
            replay_share: 0.2,
            pause: None,
        },
    );
    (players, load)
}
