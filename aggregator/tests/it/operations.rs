//! Operations: the metrics an operator watches, health endpoints, and graceful shutdown.

use crate::helpers::*;
use futures_util::future::join_all;

/// The documented metric names are exported, labelled by matched route, and move with traffic.
#[tokio::test]
async fn metrics_are_exported_with_the_documented_names() {
    let app = spawn_app().await;
    let p = app.guest("Metered").await;
    let t = mint(&p.id, 2, 0, 300, now());
    assert_eq!(app.post_score(&p.token, &t).await.status(), 200);
    assert_eq!(app.post_score(&p.token, &t).await.status(), 409);
    assert_eq!(
        app.post_score(&p.token, &mint(&p.id, 2, 0, 60, now() - 120))
            .await
            .status(),
        422
    );
    let _ = app.get(format!("/api/players/{}", p.id)).await;
    let (_, sse) = SseClient::connect(&format!("{}/api/leaderboard/stream", app.base), None).await;
    let _sse = sse.unwrap();
    let text = client::get_text(&app.http, &app.metrics).await;
    for needle in [
        "http_requests_total{method=\"POST\",path=\"/internal/scores\",status=\"200\"}",
        "http_requests_total{method=\"GET\",path=\"/api/players/{id}\",status=\"200\"}",
        "http_request_duration_seconds_bucket{method=\"POST\",path=\"/internal/scores\"",
        "score_updates_total{status=\"applied\"}",
        "score_updates_total{status=\"replayed\"}",
        "action_token_validations_total{result=\"valid\"}",
        "action_token_validations_total{result=\"replay\"}",
        "action_token_validations_total{result=\"expired\"}",
        "apply_batch_size_bucket",
        "leaderboard_version",
        "sse_connections_active",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    assert!(!text.contains(&p.id), "raw paths never become labels");
    // Every phase of a batch that applied is timed (this process's apps share one recorder,
    // so counts are at least one, not exactly one).
    for phase in [
        "queue", "fill", "connect", "lock", "read", "plan", "write", "commit", "previous", "redis",
        "announce", "answers",
    ] {
        let series = format!("apply_batch_phase_seconds_count{{phase=\"{phase}\"}}");
        assert!(
            client::metric(&text, &series) >= 1.0,
            "{series} missing from\n{text}"
        );
    }
}

/// Stopping under load: every request gets an answer, and every 200 is in the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_graceful_stop_under_load_loses_no_acknowledged_update() {
    let mut app = spawn_app().await;
    let players = app.guests("Stop ", 10).await;
    let jobs: Vec<(String, String)> = (0..600)
        .map(|k| {
            let p = &players[k % 10];
            (p.token.clone(), mint(&p.id, 1, 0, 300, now()))
        })
        .collect();
    let http = app.http.clone();
    let base = app.base.clone();
    let load = tokio::spawn(async move {
        join_all(
            jobs.iter()
                .map(|(s, t)| client::internal_score(&http, &base, EDGE_SECRET, s, t).send()),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    app.stop().await;
    let results = load.await.unwrap();
    let mut acknowledged = 0i64;
    // A request the stopped listener never took fails to connect: it was not applied and
    // the client knows it. Everything answered is either applied or refused.
    for r in results.into_iter().flatten() {
        match r.status().as_u16() {
            200 => acknowledged += 1,
            503 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM score_events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        acknowledged <= applied,
        "{acknowledged} acknowledged but only {applied} applied"
    );
    let total: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(value), 0)::bigint FROM entries WHERE board_id = 'global'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(total, applied);
}

/// Open streams end when the instance stops, so shutdown does not wait on them.
#[tokio::test]
async fn streams_end_when_the_instance_stops() {
    // A grace period far longer than the test allows, so only closing the stream lets the
    // stop finish in time.
    let mut app = spawn_app_with(|v| {
        v.insert("SHUTDOWN_GRACE_PERIOD".into(), "120s".into());
    })
    .await;
    let (_, sse) = SseClient::connect(&format!("{}/api/leaderboard/stream", app.base), None).await;
    let mut sse = sse.unwrap();
    assert!(sse
        .next_snapshot(std::time::Duration::from_secs(10))
        .await
        .is_some());
    let stopping = tokio::spawn(async move {
        app.stop().await;
    });
    while !sse.ended {
        assert!(
            sse.next(std::time::Duration::from_secs(30)).await.is_some() || sse.ended,
            "the stream neither ended nor sent anything"
        );
    }
    tokio::time::timeout(std::time::Duration::from_secs(60), stopping)
        .await
        .expect("the instance stops with a stream open")
        .unwrap();
}

/// PostgreSQL goes away: updates get 503 with `Retry-After` and the token is not consumed;
/// readiness fails; when the database returns, the same token applies once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_loses_nothing() {
    let mut pg = scoreboard_tests::PgServer::start().await.unwrap();
    let url = pg.url("postgres");
    let app = spawn_app_with(move |v| {
        v.insert("DATABASE_URL".into(), url);
    })
    .await;
    let p = app.guest("Patient").await;
    let token = mint(&p.id, 11, 0, 300, now());

    pg.stop();
    let r = app.post_score(&p.token, &token).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(code_of(r).await.1, "UPSTREAM_UNAVAILABLE");
    assert_eq!(app.get("/health/ready").await.status(), 503);
    let h = app.get("/health").await;
    assert_eq!(h.status(), 503);
    assert_eq!(
        h.json::<serde_json::Value>().await.unwrap()["checks"]["database"],
        "down"
    );
    // The board is still served from memory.
    assert_eq!(app.get("/api/leaderboard").await.status(), 200);

    pg.start_again().await.unwrap();
    let mut status = 0;
    for _ in 0..50 {
        let r = app.post_score(&p.token, &token).await;
        status = r.status().as_u16();
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        status, 200,
        "the retried token applies once the database is back"
    );
    assert_eq!(app.post_score(&p.token, &token).await.status(), 409);
    assert_eq!(app.total(&p.id).await, 11);
}
