//! The metrics contract at start-up: every metric described, every labelled counter that an
//! alert divides by created at zero (so `rate()` has a series before the first event), the
//! capacity gauges set, and a periodic PostgreSQL probe behind `database_up`.

use sqlx::PgPool;
use std::time::Duration;

/// How often `database_up` is refreshed: well inside the alert's one minute.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Outcomes of `POST /internal/scores`, as counted in `score_updates_total{status}`.
pub const SCORE_STATUSES: [&str; 4] = ["applied", "replayed", "rejected", "error"];
/// Results of action-token checks, as counted in `action_token_validations_total{result}`.
pub const TOKEN_RESULTS: [&str; 6] = [
    "valid",
    "invalid",
    "expired",
    "replay",
    "wrong_player",
    "not_yet_valid",
];

/// Describes the metrics and creates the series the alerts need; call once the recorder exists.
/// `redis` is `None` without Redis, else whether it answered at start-up.
pub fn register(sse_max_clients: usize, redis: Option<bool>) {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, matched route and status"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and matched route"
    );
    describe_gauge!(
        "sse_connections_active",
        "Open SSE streams on this instance"
    );
    describe_gauge!(
        "sse_connections_max",
        "SSE_MAX_CLIENTS_PER_INSTANCE: beyond it new SSE clients get 503"
    );
    describe_gauge!(
        "ws_subscribers_active",
        "Edge hubs subscribed over WebSocket to this instance"
    );
    describe_counter!(
        "score_updates_total",
        "POST /internal/scores outcomes: applied, replayed, rejected, error"
    );
    describe_counter!(
        "action_token_validations_total",
        "Action-token checks by result: valid, invalid, expired, replay, wrong_player, not_yet_valid"
    );
    describe_counter!(
        "rate_limit_hits_total",
        "Requests refused by this instance's rate limits, by endpoint"
    );
    describe_gauge!(
        "redis_leaderboard_sync_drift",
        "Players whose Redis score differed from PostgreSQL at the last sync (then repaired)"
    );
    describe_gauge!(
        "redis_up",
        "1 while Redis answers, 0 while reads fall back to PostgreSQL"
    );
    describe_gauge!("database_up", "1 while PostgreSQL answers a probe, else 0");
    describe_histogram!(
        "apply_batch_size",
        "Score deltas committed per group-commit transaction"
    );
    describe_histogram!(
        "apply_batch_duration_seconds",
        Unit::Seconds,
        "Duration of one group-commit transaction"
    );
    describe_gauge!(
        "leaderboard_version",
        "Id of the last score event in the published top 10"
    );

    for status in SCORE_STATUSES {
        metrics::counter!("score_updates_total", "status" => status).increment(0);
    }
    for result in TOKEN_RESULTS {
        metrics::counter!("action_token_validations_total", "result" => result).increment(0);
    }
    metrics::counter!("rate_limit_hits_total", "endpoint" => "auth").increment(0);
    metrics::gauge!("sse_connections_max").set(sse_max_clients as f64);
    metrics::gauge!("sse_connections_active").set(0.0);
    metrics::gauge!("ws_subscribers_active").set(0.0);
    if let Some(up) = redis {
        metrics::gauge!("redis_leaderboard_sync_drift").set(0.0);
        metrics::gauge!("redis_up").set(if up { 1.0 } else { 0.0 });
    }
}

/// Keeps `database_up` current until shutdown.
pub fn spawn_database_probe(
    db: PgPool,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let ok = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&db)).await,
                Ok(Ok(_))
            );
            metrics::gauge!("database_up").set(if ok { 1.0 } else { 0.0 });
        }
    })
}
