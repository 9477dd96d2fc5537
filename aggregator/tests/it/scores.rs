//! `POST /internal/scores` against a real PostgreSQL: exactly-once under concurrency, and
//! every documented refusal.

use crate::helpers::*;
use futures_util::future::join_all;
use scoreboard_protocol::edge_signature;
use serde_json::json;

/// 200 concurrent redemptions of one token: exactly one applies, 199 are replays, and the
/// total moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_token_redeemed_200_times_at_once_applies_once() {
    let app = spawn_app().await;
    let p = app.guest("Racer").await;
    let token = mint(&p.id, 25, 0, 300, now());
    let results = join_all((0..200).map(|_| app.post_score(&p.token, &token))).await;
    let mut ok = 0;
    let mut replayed = 0;
    for r in results {
        let (status, code, body) = code_of(r).await;
        match status {
            200 => {
                ok += 1;
                assert_eq!(body["score"], 25);
                assert_eq!(body["applied"], true);
            }
            409 => {
                replayed += 1;
                assert_eq!(code, "ACTION_TOKEN_REPLAYED");
                assert_eq!(body["score"], 25, "a replay tells the current score");
            }
            other => panic!("unexpected {other} {body}"),
        }
    }
    assert_eq!((ok, replayed), (1, 199));
    assert_eq!(app.total(&p.id).await, 25);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM score_events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(events, 1);
}

/// 2,000 distinct tokens for 50 players at once: totals equal the sum of what was applied,
/// and events, consumed tokens and totals agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_distinct_tokens_for_fifty_players_all_apply_exactly_once() {
    distinct_tokens_apply_exactly_once(spawn_app().await).await;
}

/// The same with a batcher that waits for batches to fill (`APPLY_BATCH_WAIT_US` above 0
/// takes another path: a timer; the default never waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_with_a_batcher_that_waits_for_batches_to_fill() {
    let app = spawn_app_with(|v| {
        v.insert("APPLY_BATCH_WAIT_US".into(), "2000".into());
    })
    .await;
    distinct_tokens_apply_exactly_once(app).await;
}

async fn distinct_tokens_apply_exactly_once(app: TestApp) {
    let players = app.guests("Player ", 50).await;
    let mut jobs = Vec::new();
    let mut expected = std::collections::HashMap::<String, i64>::new();
    for k in 0..2000 {
        let p = &players[k % 50];
        let pts = (k as i64 % 7) + 1;
        *expected.entry(p.id.clone()).or_default() += pts;
        jobs.push((p.token.clone(), mint(&p.id, pts, 0, 300, now())));
    }
    let results = join_all(jobs.iter().map(|(s, t)| app.post_score(s, t))).await;
    for r in results {
        assert_eq!(r.status(), 200);
    }
    for p in &players {
        assert_eq!(app.total(&p.id).await, expected[&p.id], "{}", p.name);
    }
    let (events, consumed, sum_pts, sum_scores): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM score_events), (SELECT count(*) FROM consumed_tokens),
                (SELECT sum(pts)::bigint FROM score_events), (SELECT sum(value)::bigint FROM entries)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((events, consumed), (2000, 2000));
    assert_eq!(sum_pts, expected.values().sum::<i64>());
    assert_eq!(sum_scores, sum_pts);
    // Each event's score_after is the running total of its player.
    let bad: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT score_after, sum(pts) OVER (PARTITION BY player_id ORDER BY id) AS running
         FROM score_events) e WHERE score_after <> running",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(bad, 0);
    let board = app.leaderboard().await;
    assert_eq!(board.top.len(), 10);
    let max_id: i64 = sqlx::query_scalar("SELECT max(id) FROM score_events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(board.version, max_id);
}

/// Two instances on one database, every token sent to both at once: each applies exactly
/// once, whichever instance's batch takes the writers' lock first, and the other answers the
/// replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_redeeming_the_same_tokens_at_once_apply_each_once() {
    let a = spawn_process_with(|_| {}).await;
    let b_vars = process_vars(&a.database.url, &[]);
    let b = scoreboard_tests::AggregatorProcess::start(BIN, &b_vars).await;
    let players = a.guests("Twice ", 40).await;
    let mut expected = std::collections::HashMap::<String, i64>::new();
    let mut sends = Vec::new();
    for k in 0..1200 {
        let p = &players[k % 40];
        let pts = (k as i64 % 5) + 1;
        *expected.entry(p.id.clone()).or_default() += pts;
        let token = mint(&p.id, pts, 0, 300, now());
        for base in [&a.base, &b.base] {
            sends.push(client::internal_score(&a.http, base, EDGE_SECRET, &p.token, &token).send());
        }
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for r in join_all(sends).await {
        *statuses.entry(r.unwrap().status().as_u16()).or_default() += 1;
    }
    assert_eq!(
        statuses,
        [(200, 1200), (409, 1200)].into(),
        "each token applied once and replayed once"
    );
    for p in &players {
        assert_eq!(a.total(&p.id).await, expected[&p.id], "{}", p.name);
    }
    let (events, consumed): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM score_events), (SELECT count(*) FROM consumed_tokens)",
    )
    .fetch_one(&a.db)
    .await
    .unwrap();
    assert_eq!((events, consumed), (1200, 1200));
}

/// Each documented refusal, in order of the checks; none of them moves the score.
#[tokio::test]
async fn every_refusal_has_its_status_and_code_and_moves_nothing() {
    let app = spawn_app().await;
    let p = app.guest("Checker").await;
    let other = app.guest("Other").await;
    let body_for = |t: &str| json!({"action_token": t, "edge_region": "test"}).to_string();

    // Edge signature: missing, wrong, stale.
    let good_body = body_for(&mint(&p.id, 5, 0, 300, now()));
    let r = client::post_raw(
        &app.http,
        &format!("{}/internal/scores", app.base),
        Some(&p.token),
        Some("application/json"),
        good_body.as_str(),
    )
    .await;
    assert_eq!(code_of(r).await.1, "EDGE_SIGNATURE_INVALID");
    for sig in [
        edge_signature::header_value(
            b"another-secret-another-secret-1234",
            now(),
            "POST",
            "/internal/scores",
            good_body.as_bytes(),
        ),
        edge_signature::header_value(
            EDGE_SECRET.as_bytes(),
            now() - 120,
            "POST",
            "/internal/scores",
            good_body.as_bytes(),
        ),
        edge_signature::header_value(
            EDGE_SECRET.as_bytes(),
            now(),
            "POST",
            "/internal/scores",
            b"{}",
        ),
    ] {
        let r = app
            .http
            .post(format!("{}/internal/scores", app.base))
            .bearer_auth(&p.token)
            .header("x-edge-signature", sig)
            .header("content-type", "application/json")
            .body(good_body.clone())
            .send()
            .await
            .unwrap();
        let (status, code, _) = code_of(r).await;
        assert_eq!((status, code.as_str()), (401, "EDGE_SIGNATURE_INVALID"));
    }

    // Session: missing, garbage.
    let (s, c, _) = code_of(app.post_raw(None, &good_body, "application/json").await).await;
    assert_eq!((s, c.as_str()), (401, "UNAUTHENTICATED"));
    let (s, c, _) = code_of(
        app.post_raw(Some("not.a.jwt"), &good_body, "application/json")
            .await,
    )
    .await;
    assert_eq!((s, c.as_str()), (401, "UNAUTHENTICATED"));

    // Body: media type, size, JSON.
    let (s, c, _) = code_of(app.post_raw(Some(&p.token), &good_body, "text/plain").await).await;
    assert_eq!((s, c.as_str()), (415, "UNSUPPORTED_MEDIA_TYPE"));
    let huge = body_for(&"x".repeat(5000));
    let (s, c, _) = code_of(
        app.post_raw(Some(&p.token), &huge, "application/json")
            .await,
    )
    .await;
    assert_eq!((s, c.as_str()), (413, "PAYLOAD_TOO_LARGE"));
    for bad in [
        "{",
        "[]",
        r#"{"action_token": 5}"#,
        r#"{"action_token":"x","edge_region":"r","extra":1}"#,
    ] {
        let (s, c, _) = code_of(app.post_raw(Some(&p.token), bad, "application/json").await).await;
        assert_eq!((s, c.as_str()), (400, "BAD_REQUEST"), "{bad}");
    }

    // Action tokens: each refusal's message names the check that failed.
    let cases = [
        (
            "not-a-token".to_owned(),
            422,
            "ACTION_TOKEN_INVALID",
            "well-formed JWT",
        ),
        (
            p.token.clone(),
            422,
            "ACTION_TOKEN_INVALID",
            "typ must be action+jwt",
        ),
        (
            mint_with(
                "another action secret of 32 bytes or more",
                &p.id,
                5,
                0,
                300,
                now(),
            ),
            422,
            "ACTION_TOKEN_INVALID",
            "ACTION_TOKEN_SECRET",
        ),
        (
            mint(&other.id, 5, 0, 300, now()),
            403,
            "ACTION_TOKEN_WRONG_PLAYER",
            "another player",
        ),
        (
            mint(&p.id, 5, 0, 60, now() - 120),
            422,
            "ACTION_TOKEN_EXPIRED",
            "expired",
        ),
        (
            mint(&p.id, 5, 60, 300, now()),
            425,
            "ACTION_TOKEN_NOT_YET_VALID",
            "not valid for another",
        ),
    ];
    for (token, status, code, says) in cases {
        let (s, c, body) = code_of(app.post_score(&p.token, &token).await).await;
        assert_eq!((s, c.as_str()), (status, code), "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message:?} does not say {says:?}");
    }
    assert_eq!(app.total(&p.id).await, 0, "no refusal moved the score");

    // Replay, with the current score in the body.
    let t = mint(&p.id, 7, 0, 300, now());
    assert_eq!(app.post_score(&p.token, &t).await.status(), 200);
    let (s, c, body) = code_of(app.post_score(&p.token, &t).await).await;
    assert_eq!(
        (s, c.as_str(), body["score"].as_i64()),
        (409, "ACTION_TOKEN_REPLAYED", Some(7))
    );

    // Banned: a fresh token is refused and not consumed.
    sqlx::query("UPDATE users SET banned_at = now() WHERE player_id = $1")
        .bind(&p.id)
        .execute(&app.db)
        .await
        .unwrap();
    let fresh = mint(&p.id, 9, 0, 300, now());
    let (s, c, _) = code_of(app.post_score(&p.token, &fresh).await).await;
    assert_eq!((s, c.as_str()), (403, "PLAYER_BANNED"));
    let consumed: i64 = app
        .player_row(
            "SELECT count(*) FROM consumed_tokens WHERE player_id = $1",
            &p.id,
        )
        .await;
    assert_eq!(consumed, 1, "only the applied token is consumed");
    assert_eq!(app.total(&p.id).await, 7);

    // Logout revokes the session.
    let r = app.logout(Some(&other.token)).await;
    assert_eq!(r.status(), 204);
    let (s, c, _) = code_of(
        app.post_score(&other.token, &mint(&other.id, 5, 0, 300, now()))
            .await,
    )
    .await;
    assert_eq!((s, c.as_str()), (401, "UNAUTHENTICATED"));
    assert_eq!(app.total(&other.id).await, 0);
}

/// `POST /internal/scores/check` answers what an update would be, refuses what the score path
/// refuses before its batcher, and applies nothing: the token it checked applies afterwards.
#[tokio::test]
async fn a_checked_update_is_answered_and_applies_nothing() {
    let app = spawn_app().await;
    let p = app.guest("Rotator").await;
    let check = |secret: &'static str,
                 session: Option<String>,
                 path: &'static str,
                 body: String| {
        let mut req =
            client::edge_signed_post(&app.http, &app.base, secret, path, body, "application/json");
        if let Some(s) = session {
            req = req.bearer_auth(s);
        }
        async move { code_of(req.send().await.unwrap()).await }
    };
    let path = "/internal/scores/check";
    let token = mint(&p.id, 5, 0, 300, now());
    let body = client::forwarded_score(&token, "test");
    let (s, _, answer) = check(EDGE_SECRET, Some(p.token.clone()), path, body.clone()).await;
    assert_eq!(s, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"valid": true, "player_id": p.id, "points": 5, "boards": ["global"]})
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM score_events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(events, 0, "a check writes no event");

    // What the score path refuses before its batcher, the check refuses alike.
    let refusals = [
        (
            check(
                "another-secret-another-secret-1234",
                Some(p.token.clone()),
                path,
                body.clone(),
            )
            .await,
            401,
            "EDGE_SIGNATURE_INVALID",
        ),
        (
            check(EDGE_SECRET, None, path, body.clone()).await,
            401,
            "UNAUTHENTICATED",
        ),
        (
            check(EDGE_SECRET, Some(p.token.clone()), path, "{".into()).await,
            400,
            "BAD_REQUEST",
        ),
        (
            check(
                EDGE_SECRET,
                Some(p.token.clone()),
                path,
                client::forwarded_score(&mint(&p.id, 5, 0, 60, now() - 120), "test"),
            )
            .await,
            422,
            "ACTION_TOKEN_EXPIRED",
        ),
        (
            check(
                EDGE_SECRET,
                Some(p.token.clone()),
                path,
                client::forwarded_score(&mint("someone-else", 5, 0, 300, now()), "test"),
            )
            .await,
            403,
            "ACTION_TOKEN_WRONG_PLAYER",
        ),
    ];
    for ((status, code, answer), want_status, want_code) in refusals {
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{answer}"
        );
    }
    // A signature is for one path: the score path's is refused here.
    let sig = edge_signature::header_value(
        EDGE_SECRET.as_bytes(),
        now(),
        "POST",
        "/internal/scores",
        body.as_bytes(),
    );
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(&p.token)
        .header(edge_signature::HEADER, sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(code_of(r).await.1, "EDGE_SIGNATURE_INVALID");

    // The checked token was not consumed.
    assert_eq!(app.post_score(&p.token, &token).await.status(), 200);
    assert_eq!(app.total(&p.id).await, 5);
}
