//! Health: `/health` (everything, 200 or 503), `/health/live` (the process answers) and
//! `/health/ready` (PostgreSQL answers: a degraded Redis or read replica must not take the
//! instance out of the load balancer).

use crate::jobs::probe::database_answers;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `200 {"status":"ok","checks":{...}}` or `503 {"status":"degraded",...}`.
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let db = database_answers(&state.db).await;
    let redis = match &state.cache {
        None => "disabled",
        Some(c) if c.is_healthy() && c.ping().await => "ok",
        Some(_) => "down",
    };
    // The replica's state is its monitor's last check (once a second), not a query here.
    let replica = match state.reads.replica_usable() {
        None => "disabled",
        Some(true) => "ok",
        Some(false) => "error",
    };
    let ok = db && redis != "down" && replica != "error";
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "checks": {
            "database": if db { "ok" } else { "down" },
            "redis": redis,
            "replica": replica,
        },
    });
    (status, Json(body)).into_response()
}

pub(crate) async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    if database_answers(&state.db).await {
        return Json(json!({"status": "ok"})).into_response();
    }
    let body = json!({"status": "unavailable", "checks": {"database": "down"}});
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
