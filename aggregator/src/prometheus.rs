//! The metrics contract: the process-wide Prometheus recorder and its buckets, every metric
//! described, and every labelled counter that an alert divides by created at zero at start-up
//! (so `rate()` has a series before the first event).

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// How often histogram observations are folded into their buckets when nobody scrapes.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder (a global, so installed once however many
/// applications a test process builds).
pub(crate) fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[
                        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("apply_batch_size".into()),
                        &[
                            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("apply_batch_phase_seconds".into()),
                        &[
                            0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                            0.05, 0.1, 0.25, 1.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("apply_batch_duration_seconds".into()),
                        &[
                            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("redis_rebuild_duration_seconds".into()),
                        &[
                            0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
                        ],
                    )
                })
                .expect("bucket lists are non-empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            // Histograms keep every observation until they are drained, which a scrape does;
            // where nobody scrapes (a small deployment without Prometheus) memory would grow
            // with every request. A thread, not a task: test processes build applications on
            // many short-lived runtimes, and this recorder outlives them all.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(METRICS_UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                });
            handle
        })
        .clone()
}

/// Outcomes of `POST /internal/scores`, as counted in `score_updates_total{status}`.
pub(crate) const SCORE_STATUSES: [&str; 4] = ["applied", "replayed", "rejected", "error"];
/// Results of action-token checks, as counted in `action_token_validations_total{result}`.
pub(crate) const TOKEN_RESULTS: [&str; 6] = [
    "valid",
    "invalid",
    "expired",
    "replay",
    "wrong_player",
    "not_yet_valid",
];

/// Describes the metrics and creates the series the alerts need; call once the recorder exists.
/// `redis` is `None` without Redis, else whether it answered at start-up.
/// `replica` says whether `DATABASE_REPLICA_URL` is set.
pub(crate) fn register(sse_max_clients: usize, redis: Option<bool>, replica: bool) {
    describe_requests_and_streams();
    describe_dependencies();
    describe_batches_and_outbox();
    zero_series(sse_max_clients, redis, replica);
}

/// HTTP, streams, score outcomes, token checks and rate limits.
fn describe_requests_and_streams() {
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
}

/// Redis, PostgreSQL and the read replica.
fn describe_dependencies() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "redis_leaderboard_sync_drift",
        "Entries the last drift check found still differing between Redis and PostgreSQL after a pause (then repaired)"
    );
    describe_gauge!(
        "redis_cache_mode",
        "1 for the Redis copy's current mode: healthy, degraded (PostgreSQL and the rank index answer) or rebuilding"
    );
    describe_counter!(
        "redis_rebuilds_started_total",
        "Rebuilds of the Redis boards from PostgreSQL started"
    );
    describe_counter!(
        "redis_rebuilds_finished_total",
        "Rebuilds of the Redis boards that finished"
    );
    describe_counter!(
        "redis_rebuilds_failed_total",
        "Rebuilds of the Redis boards that failed (retried with backoff)"
    );
    describe_histogram!(
        "redis_rebuild_duration_seconds",
        Unit::Seconds,
        "Duration of a finished rebuild of the Redis boards"
    );
    describe_gauge!(
        "redis_up",
        "1 while Redis answers, 0 while reads fall back to PostgreSQL"
    );
    describe_gauge!("database_up", "1 while PostgreSQL answers a probe, else 0");
    describe_gauge!(
        "database_replica_up",
        "1 while reads go to the read replica (it answers, follows the primary, is not too far behind), else 0"
    );
    describe_gauge!(
        "database_replica_lag_seconds",
        Unit::Seconds,
        "How far the read replica's replay is behind what it has received (0 when caught up)"
    );
    describe_counter!(
        "database_reads_total",
        "PostgreSQL reads by where they were served: replica, primary (no replica), or primary_replica_{behind,failed,down}"
    );
}

/// The batcher, the published version and the webhook outbox.
fn describe_batches_and_outbox() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        "apply_batch_size",
        "Score deltas committed per group-commit transaction"
    );
    describe_histogram!(
        "apply_batch_duration_seconds",
        Unit::Seconds,
        "Duration of one group-commit transaction"
    );
    describe_histogram!(
        "apply_batch_phase_seconds",
        Unit::Seconds,
        "Time of one phase of a batch (queue, fill, connect, lock, read, plan, write, snapshots, commit, previous, redis, announce, answers)"
    );
    describe_gauge!(
        "leaderboard_version",
        "Id of the last score event in the published top 10"
    );
    describe_gauge!(
        "webhook_outbox_depth",
        "Events (one per endpoint) not yet delivered to WEBHOOK_URLS"
    );
    describe_gauge!(
        "webhook_outbox_oldest_age_seconds",
        Unit::Seconds,
        "Age of the oldest event not yet delivered (0 when none)"
    );
    describe_counter!(
        "webhook_delivery_attempts_total",
        "Posts of outbox events to WEBHOOK_URLS, by outcome (delivered, failed)"
    );
}

/// The series the alerts divide by or compare, at their start values.
fn zero_series(sse_max_clients: usize, redis: Option<bool>, replica: bool) {
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
    metrics::gauge!("webhook_outbox_depth").set(0.0);
    metrics::gauge!("webhook_outbox_oldest_age_seconds").set(0.0);
    for outcome in ["delivered", "failed"] {
        metrics::counter!("webhook_delivery_attempts_total", "outcome" => outcome).increment(0);
    }
    if replica {
        metrics::gauge!("database_replica_up").set(0.0);
        metrics::gauge!("database_replica_lag_seconds").set(0.0);
    }
    if let Some(up) = redis {
        metrics::gauge!("redis_leaderboard_sync_drift").set(0.0);
        metrics::gauge!("redis_up").set(if up { 1.0 } else { 0.0 });
        for (mode, on) in [("healthy", up), ("degraded", !up), ("rebuilding", false)] {
            metrics::gauge!("redis_cache_mode", "mode" => mode).set(if on { 1.0 } else { 0.0 });
        }
        metrics::counter!("redis_drift_repaired_total").increment(0);
        for event in ["started", "finished", "failed"] {
            metrics::counter!(format!("redis_rebuilds_{event}_total")).increment(0);
        }
    }
}
