//! Delivers the outbox to `WEBHOOK_URLS`: every instance looks for due events every second and
//! takes them one at a time with `FOR UPDATE SKIP LOCKED`, so each is posted by one instance
//! (a crash mid-post releases the row and it is posted again, with the same event id). A post
//! is signed (`Scoreboard-Signature`); a 2xx marks it delivered, anything else schedules the
//! next attempt with exponential backoff and full jitter. Exported: the outbox's depth, the age
//! of its oldest undelivered event, and delivery attempts by outcome.

use crate::config::Webhooks;
use crate::db::Db;
use anyhow::Context;
use rand::Rng;
use scoreboard_protocol::webhook;
use secrecy::ExposeSecret;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);
/// How long a receiver has to answer one post.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// The first retry waits about this long; each failure doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often this instance queues recent results for the endpoints it knows (the instance
/// that closed a period may not have known them all: a rolling change of `WEBHOOK_URLS`).
const QUEUE_EVERY: Duration = Duration::from_secs(30);

pub(crate) fn spawn(
    db: Db,
    hooks: Webhooks,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let http = reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .build()
        .context("building the webhook client")?;
    let queued_at = std::sync::Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
    Ok(super::every(EVERY, shutdown, move || {
        let (db, http, hooks, queued_at) =
            (db.clone(), http.clone(), hooks.clone(), queued_at.clone());
        async move {
            // A std Mutex: read and written between awaits, never held across one.
            let due = queued_at
                .lock()
                .expect("not poisoned")
                .is_none_or(|t| t.elapsed() >= QUEUE_EVERY);
            if due {
                *queued_at.lock().expect("not poisoned") = Some(std::time::Instant::now());
                if let Err(e) = queue_recent(&db, &hooks.urls).await {
                    tracing::warn!(error = %e, "database error: queueing recent period results");
                }
            }
            if let Err(e) = deliver_due(&db, &http, &hooks).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "database error: delivering webhooks"
                );
            }
            if let Err(e) = export_depth(&db).await {
                tracing::debug!(error = %e, "reading the outbox depth failed");
            }
        }
    }))
}

/// Queues the events of periods closed in the last day for every endpoint of `urls` that has
/// none yet; returns how many rows it added.
async fn queue_recent(db: &Db, urls: &[String]) -> sqlx::Result<u64> {
    Ok(crate::db::query(
        "INSERT INTO outbox (event_id, endpoint, body)
         SELECT r.board_id || '/' || r.period, e.endpoint, r.event
         FROM period_results r CROSS JOIN UNNEST($1::text[]) AS e(endpoint)
         WHERE r.closed_at > now() - interval '1 day'
         ON CONFLICT (event_id, endpoint) DO NOTHING",
    )
    .bind(urls)
    .execute(db)
    .await?
    .rows_affected())
}

/// Posts every due event, one at a time, until none is due; returns how many were delivered.
async fn deliver_due(db: &Db, http: &reqwest::Client, hooks: &Webhooks) -> anyhow::Result<usize> {
    let mut delivered = 0;
    while let Some(ok) = deliver_one(db, http, hooks).await? {
        delivered += usize::from(ok);
    }
    Ok(delivered)
}

/// One due event, taken and settled in one transaction; `None` when nothing is due.
async fn deliver_one(
    db: &Db,
    http: &reqwest::Client,
    hooks: &Webhooks,
) -> anyhow::Result<Option<bool>> {
    let mut tx = db.begin().await?;
    let row: Option<(i64, String, String, String, i32)> = crate::db::query_as(
        "SELECT id, event_id, endpoint, body, attempts FROM outbox
         WHERE delivered_at IS NULL AND next_attempt_at <= now()
         ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, event_id, endpoint, body, attempts)) = row else {
        return Ok(None);
    };
    let signature = webhook::header_value(
        hooks.secret.expose_secret().as_bytes(),
        crate::clock::now_secs(),
        body.as_bytes(),
    );
    let posted = http
        .post(&endpoint)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(webhook::HEADER, signature)
        .body(body)
        .send()
        .await;
    // The error without the URL: an endpoint may carry a credential in its query.
    let failure = match posted {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("answered {}", r.status())),
        Err(e) => Some(e.without_url().to_string()),
    };
    match &failure {
        None => {
            crate::db::query(
                "UPDATE outbox SET delivered_at = now(), attempts = attempts + 1, last_error = NULL
                 WHERE id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        Some(error) => {
            let wait = backoff(attempts);
            crate::db::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                        next_attempt_at = now() + make_interval(secs => $3)
                 WHERE id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(wait.as_secs_f64())
            .execute(&mut *tx)
            .await?;
            tracing::warn!(
                event = event_id,
                attempts = attempts + 1,
                error,
                retry_in_s = wait.as_secs_f64(),
                "webhook delivery failed"
            );
        }
    }
    tx.commit().await?;
    let outcome = if failure.is_none() {
        "delivered"
    } else {
        "failed"
    };
    metrics::counter!("webhook_delivery_attempts_total", "outcome" => outcome).increment(1);
    Ok(Some(failure.is_none()))
}

/// The wait before attempt `attempts + 2`: doubling from [`FIRST_BACKOFF`] up to
/// [`MAX_BACKOFF`], then a random half to all of it ("equal jitter"), so receivers coming back
/// are not hit by every instance's retries at once.
fn backoff(attempts: i32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempts.clamp(0, 20) as u32))
        .min(MAX_BACKOFF);
    full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

async fn export_depth(db: &Db) -> sqlx::Result<()> {
    let (depth, oldest): (i64, f64) = crate::db::query_as(
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at))::float8, 0)
         FROM outbox WHERE delivered_at IS NULL",
    )
    .fetch_one(db)
    .await?;
    metrics::gauge!("webhook_outbox_depth").set(depth as f64);
    metrics::gauge!("webhook_outbox_oldest_age_seconds").set(oldest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for _ in 0..100 {
            let first = backoff(0);
            assert!(first >= FIRST_BACKOFF / 2 && first <= FIRST_BACKOFF);
            let fourth = backoff(3);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            assert!(backoff(40) <= MAX_BACKOFF && backoff(40) >= MAX_BACKOFF / 2);
        }
    }
}
