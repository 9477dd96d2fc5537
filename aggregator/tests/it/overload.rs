//! Truthful answers under overload: while the batch cannot commit (the writers' lock held by
//! someone else), every update is answered `503` with `Retry-After`, never a 4xx; what was
//! refused before it was queued is never applied; what was queued commits once the lock is
//! free, and the same token retried answers its real outcome.

use crate::helpers::*;
use futures_util::future::join_all;
use std::time::{Duration, Instant};

/// The advisory lock every score writer takes (`apply::write::WRITER_LOCK`).
const WRITER_LOCK: i64 = 0x5343_4F52_4542_5244;

/// Each player's tokens: distinct powers of two, so a total says exactly which applied.
const FIRST_WAVE: [i64; 3] = [1, 2, 4];
const SECOND_WAVE: [i64; 2] = [8, 16];

struct Sent {
    player: usize,
    points: i64,
    token: String,
    status: u16,
    retry_after: Option<String>,
    took: Duration,
}

async fn send_wave(app: &TestApp, players: &[Player], points: &[i64]) -> Vec<Sent> {
    let sends = players.iter().enumerate().flat_map(|(i, p)| {
        points.iter().map(move |&pts| async move {
            let token = mint(&p.id, pts, 0, 300, now());
            let started = Instant::now();
            let r = app.post_score(&p.token, &token).await;
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            Sent {
                player: i,
                points: pts,
                token,
                status: r.status().as_u16(),
                retry_after,
                took: started.elapsed(),
            }
        })
    });
    join_all(sends).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stuck_batch_answers_503_and_no_refused_update_is_ever_applied() {
    let mut app = spawn_app_with(|v| {
        v.insert("REQUEST_TIMEOUT".into(), "1s".into());
    })
    .await;
    let players = app.guests("Stuck", 8).await;
    let mut holder = app.db.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut *holder)
        .await
        .unwrap();

    // Queued behind a batch that cannot take the lock: not known yet, so 503.
    let first = send_wave(&app, &players, &FIRST_WAVE).await;
    for s in &first {
        assert_eq!(s.status, 503, "a queued update answered {}", s.status);
        assert!(s.retry_after.is_some(), "a 503 without Retry-After");
    }
    // The batcher has now been busy with one batch for longer than half the request timeout:
    // new updates are refused at once, before they are queued.
    let second = send_wave(&app, &players, &SECOND_WAVE).await;
    for s in &second {
        assert_eq!(
            s.status, 503,
            "an update to a stalled batcher answered {}",
            s.status
        );
        assert!(s.retry_after.is_some(), "a 503 without Retry-After");
        assert!(
            s.took < Duration::from_millis(900),
            "refused only after {:?}",
            s.took
        );
    }

    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut *holder)
        .await
        .unwrap();
    drop(holder);
    // What was queued commits; what was refused before queueing never does.
    let queued: i64 = FIRST_WAVE.iter().sum();
    for p in &players {
        let deadline = Instant::now() + Duration::from_secs(15);
        while app.total(&p.id).await != queued {
            assert!(
                Instant::now() < deadline,
                "the queued updates did not commit"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in &players {
        assert_eq!(
            app.total(&p.id).await,
            queued,
            "a refused update was applied"
        );
    }

    // The same tokens retried answer their real outcome: 409 with the score for the queued
    // ones, 200 for the refused ones, and each counts once.
    for s in first.iter().chain(&second) {
        let p = &players[s.player];
        let r = app.post_score(&p.token, &s.token).await;
        let (status, code, body) = code_of(r).await;
        if FIRST_WAVE.contains(&s.points) {
            assert_eq!(
                (status, code.as_str()),
                (409, "ACTION_TOKEN_REPLAYED"),
                "{body}"
            );
            assert!(body["score"].as_i64().unwrap() >= queued, "{body}");
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }
    let all: i64 = FIRST_WAVE.iter().chain(&SECOND_WAVE).sum();
    for p in &players {
        assert_eq!(app.total(&p.id).await, all);
    }
    app.stop().await;
}
