//! Boards that reset: scores count in the period they are applied in; at the boundary the
//! board's stream turns to the new, empty period; the closed period reads back unchanged
//! (`?period=`, `/periods`), with PostgreSQL alone and with Redis; and the failure paths of
//! period reads.

use crate::helpers::get_json as get;
use crate::helpers::*;
use chrono::{DateTime, Utc};
use scoreboard_tests::sse::SseClient;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// A board whose periods last four seconds.
const SPRINT: &str = "*/4 * * * * *";
const WAIT: Duration = Duration::from_secs(6);

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().expect("an RFC 3339 instant"))
        .unwrap()
        .with_timezone(&Utc)
}

/// Waits until the board has just turned to a new period, and returns that period.
pub(crate) async fn fresh_period(app: &TestApp, board: &str) -> Value {
    let (_, b) = get(app, &format!("/api/boards/{board}")).await;
    let ends = instant(&b["period"]["ends_at"]);
    let left = (ends - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(left).await;
    // The boundary job turns boards within 200 ms; a loaded machine may take longer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let (_, b) = get(app, &format!("/api/boards/{board}")).await;
        if instant(&b["period"]["starts_at"]) == ends {
            return b["period"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the board did not turn: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn score(app: &TestApp, p: &Player, value: i64, board: &str) -> Value {
    let r = app
        .post_score(&p.token, &mint_on(&p.id, value, &[board]))
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["boards"][0].clone()
}

/// Returns the id of the period that closed.
async fn a_board_turns_to_its_next_period(app: &TestApp) -> String {
    let created = put_board(
        app,
        "sprint",
        json!({"title": "Sprint", "order": "desc", "operator": "sum", "reset": SPRINT, "timezone": "Europe/Berlin"}),
    )
    .await;
    assert_eq!(created["reset"], SPRINT);
    let first = fresh_period(app, "sprint").await;
    let p1 = first["id"].as_str().unwrap().to_owned();
    let (a, b) = (app.guest("Ada").await, app.guest("Bo").await);
    assert_eq!(score(app, &a, 5, "sprint").await["period"], p1.as_str());
    assert_eq!(score(app, &b, 7, "sprint").await["period"], p1.as_str());

    let url = format!("{}/api/boards/sprint/stream", app.base);
    let (_, stream) = SseClient::connect(&url, None).await;
    let mut stream = stream.expect("the stream opens");
    let (id, now) = stream.next_event(WAIT).await.expect("the current snapshot");
    assert!(id.starts_with(&format!("{p1}/")), "{id}");
    assert_eq!(entry_rows(&now["top"]).len(), 2);
    let (_, listed) = get(app, "/api/boards").await;
    let sprint = &listed["boards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "sprint")
        .unwrap()
        .clone();
    assert_eq!(sprint["next_reset_at"], first["ends_at"]);

    // The boundary: the new, empty period, with an id naming it.
    let (id, turned) = stream.next_event(WAIT).await.expect("the new period");
    let p2 = turned["period"]["id"].as_str().unwrap().to_owned();
    assert_eq!(p2, first["ends_at"].as_str().unwrap());
    assert_eq!(id, format!("{p2}/0"));
    assert_eq!(turned["top"], json!([]), "{turned}");

    // New scores count in the new period; the closed one reads back as it was.
    assert_eq!(score(app, &a, 1, "sprint").await["period"], p2.as_str());
    let (_, live) = stream
        .next_event(WAIT)
        .await
        .expect("a score in the new period");
    assert_eq!(entry_rows(&live["top"]), vec![(a.id.clone(), 1, 1)]);
    let old = format!("/api/boards/sprint?period={p1}");
    let (s, closed) = get(app, &old).await;
    assert_eq!(
        (s, closed["period"]["id"].as_str()),
        (200, Some(p1.as_str()))
    );
    let standings = vec![(b.id.clone(), 7, 1), (a.id.clone(), 5, 2)];
    assert_eq!(entry_rows(&closed["top"]), standings);
    assert_eq!(
        closed["next_reset_at"], turned["period"]["ends_at"],
        "the board's next reset"
    );
    assert_eq!(turned["next_reset_at"], turned["period"]["ends_at"]);
    let (_, page) = get(app, &format!("/api/boards/sprint/entries?period={p1}")).await;
    assert_eq!(entry_rows(&page["entries"]), standings);
    assert_eq!(page["period"]["id"], p1.as_str());
    let (_, current) = get(app, "/api/boards/sprint/entries").await;
    assert_eq!(current["period"]["id"], p2.as_str());
    assert_eq!(current["next_reset_at"], turned["period"]["ends_at"]);
    let (_, me) = get(
        app,
        &format!("/api/boards/sprint/players/{}?period={p1}&around=1", a.id),
    )
    .await;
    assert_eq!(
        (me["score"].as_i64(), me["rank"].as_i64()),
        (Some(5), Some(2))
    );
    assert_eq!(me["period"]["ends_at"], p2.as_str());
    let (_, now) = get(app, &format!("/api/boards/sprint/players/{}", a.id)).await;
    assert_eq!(
        (now["score"].as_i64(), now["rank"].as_i64()),
        (Some(1), Some(1))
    );

    let (_, periods) = get(app, "/api/boards/sprint/periods").await;
    let list = periods["periods"].as_array().unwrap();
    assert_eq!(list[0]["id"], p1.as_str(), "{periods}");
    assert_eq!(list[0]["ends_at"], p2.as_str());
    assert_eq!(entry_rows(&list[0]["top"]), standings);
    assert!(
        list.iter().all(|p| p["id"] != p2.as_str()),
        "the current period is not closed"
    );

    // A client resuming with an id of the old period gets the current one at once.
    let (_, again) = SseClient::connect(&url, Some(&format!("{p1}/3"))).await;
    let (id, _) = again
        .unwrap()
        .next_event(WAIT)
        .await
        .expect("the current period at once");
    assert!(!id.starts_with(&p1), "{id}");
    p1
}

#[tokio::test]
async fn a_board_turns_to_its_next_period_on_postgresql() {
    let app = spawn_app().await;
    a_board_turns_to_its_next_period(&app).await;
}

#[tokio::test]
async fn a_board_turns_to_its_next_period_with_redis() {
    let redis = scoreboard_tests::fresh_redis().await.unwrap();
    let (url, prefix) = (redis.url.clone(), redis.key_prefix.clone());
    let app = spawn_app_with(move |v: &mut HashMap<String, String>| {
        v.insert("REDIS_URL".into(), url);
        v.insert("REDIS_KEY_PREFIX".into(), prefix);
    })
    .await;
    let closed = a_board_turns_to_its_next_period(&app).await;
    // The closed period's keys expire (PostgreSQL keeps it); the current one's do not.
    let mut c = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{}{{sprint:{closed}}}:z", redis.key_prefix);
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!((1..=3600).contains(&ttl), "{key}: TTL {ttl}");
}

#[tokio::test]
async fn period_reads_refuse_what_is_not_a_past_period() {
    let app = spawn_app().await;
    put_board(
        &app,
        "day",
        json!({"title": "Today", "order": "asc", "operator": "best", "reset": "daily", "timezone": "Asia/Tokyo"}),
    )
    .await;
    let (_, day) = get(&app, "/api/boards/day").await;
    let current = &day["period"];
    // Midnight in Tokyo is 15:00 UTC the day before.
    assert!(
        current["id"].as_str().unwrap().ends_with("T15:00:00Z"),
        "{day}"
    );
    let next = current["ends_at"].as_str().unwrap();
    let yesterday = (instant(&current["starts_at"]) - chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for path in [
        format!("/api/boards/day?period={next}"),
        "/api/boards/day?period=yesterday".to_owned(),
        format!("/api/boards/day/entries?period={}", &yesterday[..19]),
        "/api/boards/global?period=2026-01-01T00:00:00Z".to_owned(),
        format!("/api/boards/day/players/nobody?period={next}"),
    ] {
        let (s, e) = get(&app, &path).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (404, Some("PERIOD_NOT_FOUND")),
            "{path}"
        );
    }
    // A past period nobody scored in reads empty; it is not listed among closed ones.
    let (s, empty) = get(&app, &format!("/api/boards/day?period={yesterday}")).await;
    assert_eq!((s, empty["top"].clone()), (200, json!([])));
    let (_, periods) = get(&app, "/api/boards/day/periods").await;
    assert_eq!(periods["periods"], json!([]));
    for bad in [
        "?limit=0",
        "?limit=51",
        "?before=yesterday",
        "?before=2026-01-01T00:00:01Z",
    ] {
        let (s, e) = get(&app, &format!("/api/boards/day/periods{bad}")).await;
        assert_eq!(
            (s, e["error"]["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{bad}"
        );
    }
}
