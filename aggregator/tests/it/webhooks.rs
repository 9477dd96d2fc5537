//! Period results announced to `WEBHOOK_URLS`: written once when a period closes, posted
//! signed with the final standings, retried until the receiver acknowledges, delivered after
//! the aggregator is SIGKILLed before delivery, and posted by one of two instances.

use crate::helpers::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use scoreboard_tests::AggregatorProcess;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "webhook-secret-for-tests-0123456789abcdef";
const SPRINT: &str = "*/3 * * * * *";

/// A post as received: its signature header, its body, and whether it was acknowledged.
type Post = (Option<String>, String, bool);

/// A local HTTP receiver: records every post and answers 500 while `failing`.
#[derive(Clone, Default)]
struct Receiver {
    posts: Arc<Mutex<Vec<Post>>>,
    failing: Arc<AtomicBool>,
}

impl Receiver {
    async fn start(failing: bool) -> (Self, String) {
        let r = Receiver::default();
        r.failing.store(failing, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    /// The bodies it acknowledged, parsed, after checking each one's signature.
    fn acknowledged(&self) -> Vec<Value> {
        let now = chrono::Utc::now().timestamp();
        self.posts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, ok)| *ok)
            .map(|(sig, body, _)| {
                let sig = sig.as_deref().expect("a Scoreboard-Signature header");
                assert!(
                    scoreboard_protocol::webhook::verify(
                        SECRET.as_bytes(),
                        sig,
                        body.as_bytes(),
                        now
                    ),
                    "a valid signature: {sig}"
                );
                serde_json::from_str(body).unwrap()
            })
            .collect()
    }

    fn attempts(&self) -> usize {
        self.posts.lock().unwrap().len()
    }

    /// Waits until `n` posts were acknowledged; returns them.
    async fn until_acknowledged(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let got = self.acknowledged();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers
        .get(scoreboard_protocol::webhook::HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let ok = !r.failing.load(Ordering::SeqCst);
    let body = String::from_utf8(body.to_vec()).unwrap();
    r.posts.lock().unwrap().push((sig, body, ok));
    if ok {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Waits (at most 15 s) until `count_sql`, given `period` as `$1`, counts a row: the period
/// was closed.
async fn until_a_row(db: &sqlx::PgPool, count_sql: &str, period: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while sqlx::query_scalar::<_, i64>(count_sql)
        .bind(period)
        .fetch_one(db)
        .await
        .unwrap()
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the period was not closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hooked(url: &str) -> impl FnOnce(&mut HashMap<String, String>) {
    let url = url.to_owned();
    move |v| {
        v.insert("WEBHOOK_URLS".into(), url);
        v.insert("WEBHOOK_SECRET".into(), SECRET.into());
    }
}

async fn sprint_board(http: &reqwest::Client, base: &str) {
    let body = json!({"title": "Sprint", "order": "desc", "operator": "sum", "reset": SPRINT});
    let (s, b) = client::put_board(http, base, "sprint", &body).await;
    assert_eq!(s, 201, "{b}");
}

/// Redeems `value` on the sprint board at `base`; returns the period it counted in.
async fn score(http: &reqwest::Client, base: &str, g: &Player, value: i64) -> String {
    let token = mint_on(&g.id, value, &["sprint"]);
    let r = client::internal_score(http, base, EDGE_SECRET, &g.token, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["boards"][0]["period"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_closed_periods_results_are_written_once_and_posted_signed_until_acknowledged() {
    let (receiver, url) = Receiver::start(true).await;
    let app = spawn_app_with(hooked(&url)).await;
    sprint_board(&app.http, &app.base).await;
    let (a, b) = (app.guest("Ada").await, app.guest("Bo").await);
    let period = crate::periods::fresh_period(&app, "sprint").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(score(&app.http, &app.base, &a, 5).await, period);
    assert_eq!(score(&app.http, &app.base, &b, 7).await, period);
    // The receiver fails the first post; the retry (about a second later) is acknowledged.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while receiver.attempts() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "nothing was posted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.failing.store(false, Ordering::SeqCst);
    let got = receiver
        .until_acknowledged(1, Duration::from_secs(15))
        .await;
    assert_eq!(got.len(), 1, "one acknowledged post");
    let event = &got[0];
    let id = format!("sprint/{period}");
    assert_eq!(
        (event["type"].as_str(), event["id"].as_str()),
        (Some("period.closed"), Some(id.as_str()))
    );
    assert_eq!(
        (event["board"].as_str(), event["starts_at"].as_str()),
        (Some("sprint"), Some(period.as_str()))
    );
    let standings = vec![(b.id.clone(), 7, 1), (a.id.clone(), 5, 2)];
    assert_eq!(entry_rows(&event["standings"]), standings);
    // The receiver answered before the deliverer committed: wait for the row to say so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (stored, attempts) = loop {
        let (stored, attempts, delivered): (Value, i32, bool) = sqlx::query_as(
            "SELECT r.standings, o.attempts, o.delivered_at IS NOT NULL FROM period_results r
             JOIN outbox o ON o.event_id = r.board_id || '/' || r.period WHERE r.period = $1",
        )
        .bind(&period)
        .fetch_one(&app.db)
        .await
        .unwrap();
        if delivered {
            break (stored, attempts);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not marked delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry_rows(&stored), standings);
    assert!(attempts >= 2, "{attempts} attempts");
    let failed_first = receiver.posts.lock().unwrap()[0].1.clone();
    assert_eq!(
        serde_json::from_str::<Value>(&failed_first).unwrap(),
        *event,
        "the same event"
    );
    // Later periods nobody scored in announce nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(receiver.acknowledged().len(), 1);
    let results: i64 = sqlx::query_scalar("SELECT count(*) FROM period_results")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(results, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_survives_a_sigkill_and_two_instances_post_it_once() {
    let (receiver, url) = Receiver::start(true).await;
    let database = scoreboard_tests::fresh_database().await.unwrap();
    let vars = process_vars(
        &database.url,
        &[("WEBHOOK_URLS", &url), ("WEBHOOK_SECRET", SECRET)],
    );
    let http = reqwest::Client::new();
    let mut first = AggregatorProcess::start(BIN, &vars).await;
    sprint_board(&http, &first.base).await;
    let g = client::guest(&http, &first.base, "Kept").await;
    let period = score(&http, &first.base, &g, 9).await;
    let db = sqlx::PgPool::connect(&database.url).await.unwrap();
    // After the boundary, before delivery (the receiver fails every post): SIGKILL.
    let queued =
        "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND event_id = 'sprint/' || $1";
    until_a_row(&db, queued, &period).await;
    first.kill().await;
    receiver.failing.store(false, Ordering::SeqCst);
    let (_again, _other) = (
        AggregatorProcess::start(BIN, &vars).await,
        AggregatorProcess::start(BIN, &vars).await,
    );
    let got = receiver
        .until_acknowledged(1, Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 1, "delivered once the aggregator is back");
    assert_eq!(got[0]["id"], format!("sprint/{period}"));
    assert_eq!(entry_rows(&got[0]["standings"]), vec![(g.id.clone(), 9, 1)]);
    // Two instances deliver; one posts it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        receiver.acknowledged().len(),
        1,
        "no second post of a delivered event"
    );
}

#[tokio::test]
async fn an_operator_closes_a_period_early_and_the_next_one_runs_to_the_schedules_reset() {
    let (receiver, url) = Receiver::start(false).await;
    let app = spawn_app_with(hooked(&url)).await;
    let body = json!({"title": "Today", "order": "desc", "operator": "best", "reset": "daily"});
    let (s, _) = client::put_board(&app.http, &app.base, "today", &body).await;
    assert_eq!(s, 201);
    let (a, b) = (app.guest("Early").await, app.guest("Late").await);
    let token = mint_on(&a.id, 50, &["today"]);
    assert_eq!(app.post_score(&a.token, &token).await.status(), 200);
    let (_, before) = get_json(&app, "/api/boards/today").await;

    let (s, closed) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/boards/today/close-period",
        None,
    )
    .await;
    assert_eq!(s, 200, "{closed}");
    let closed = &closed["closed"];
    assert_eq!(closed["id"], before["period"]["id"]);
    let ended = closed["ends_at"].as_str().unwrap().to_owned();
    let got = receiver
        .until_acknowledged(1, Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0]["ends_at"].as_str(), got[0]["period"].as_str()),
        (Some(ended.as_str()), closed["id"].as_str())
    );
    assert_eq!(
        entry_rows(&got[0]["standings"]),
        vec![(a.id.clone(), 50, 1)]
    );

    // The board turns to a period from the close to the schedule's next reset.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let now = loop {
        let (_, now) = get_json(&app, "/api/boards/today").await;
        if now["period"]["id"] == ended.as_str() {
            break now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the board did not turn: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(now["period"]["ends_at"], before["period"]["ends_at"]);
    assert_eq!(now["top"], json!([]));
    let token = mint_on(&b.id, 7, &["today"]);
    let r = app.post_score(&b.token, &token).await;
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["boards"][0]["period"], ended.as_str());
    let old = format!(
        "/api/boards/today?period={}",
        closed["id"].as_str().unwrap()
    );
    let (s, old) = get_json(&app, &old).await;
    assert_eq!(
        (s, old["period"]["ends_at"].as_str()),
        (200, Some(ended.as_str()))
    );
    assert_eq!(entry_rows(&old["top"]), vec![(a.id.clone(), 50, 1)]);
    // Changing the board's title keeps the early start.
    let renamed = json!({"title": "Today!", "order": "desc", "operator": "best", "reset": "daily"});
    assert_eq!(
        client::put_board(&app.http, &app.base, "today", &renamed)
            .await
            .0,
        200
    );
    let (_, still) = get_json(&app, "/api/boards/today").await;
    assert_eq!(still["period"]["id"], ended.as_str());

    let (s, e) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/boards/global/close-period",
        None,
    )
    .await;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("BAD_REQUEST")));
    let (s, e) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/boards/nope/close-period",
        None,
    )
    .await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (404, Some("BOARD_NOT_FOUND"))
    );
    let r = app
        .http
        .post(format!("{}/admin/boards/today/close-period", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Closing early in the middle of a short period: the rest of it is a period of its own, which
/// closes and is announced at the schedule's reset.
#[tokio::test]
async fn the_rest_of_a_period_closed_early_closes_at_the_schedules_reset() {
    let (receiver, url) = Receiver::start(false).await;
    let app = spawn_app_with(hooked(&url)).await;
    let body =
        json!({"title": "Sprint", "order": "desc", "operator": "sum", "reset": "*/4 * * * * *"});
    assert_eq!(
        client::put_board(&app.http, &app.base, "sprint", &body)
            .await
            .0,
        201
    );
    let g = app.guest("Twice").await;
    crate::periods::fresh_period(&app, "sprint").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    score(&app.http, &app.base, &g, 3).await;
    let (s, closed) = admin(
        &app,
        reqwest::Method::POST,
        "/admin/boards/sprint/close-period",
        None,
    )
    .await;
    assert_eq!(s, 200, "{closed}");
    let rest = closed["closed"]["ends_at"].as_str().unwrap().to_owned();
    assert!(!rest.contains('.'), "period ids are whole seconds: {rest}");
    assert_eq!(score(&app.http, &app.base, &g, 4).await, rest);
    let got = receiver
        .until_acknowledged(2, Duration::from_secs(15))
        .await;
    let ids: Vec<&str> = got.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[1], format!("sprint/{rest}"));
    assert_eq!(entry_rows(&got[1]["standings"]), vec![(g.id.clone(), 4, 1)]);
}

/// An instance without `WEBHOOK_URLS` may close a period; an instance that has them queues
/// its event anyway.
#[tokio::test]
async fn a_period_closed_by_an_instance_without_webhooks_is_still_announced() {
    let quiet = spawn_app().await;
    sprint_board(&quiet.http, &quiet.base).await;
    let g = quiet.guest("Unheard").await;
    let period = score(&quiet.http, &quiet.base, &g, 6).await;
    let closed = "SELECT count(*) FROM period_results WHERE period = $1";
    until_a_row(&quiet.db, closed, &period).await;
    let (receiver, url) = Receiver::start(false).await;
    let db = quiet.database.url.clone();
    let _hooked = spawn_app_with(move |v: &mut HashMap<String, String>| {
        hooked(&url)(v);
        v.insert("DATABASE_URL".into(), db);
    })
    .await;
    let got = receiver
        .until_acknowledged(1, Duration::from_secs(15))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], format!("sprint/{period}"));
}
