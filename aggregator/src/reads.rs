//! Public read routes and health checks.

use crate::board::rank_of;
use crate::error::{AppError, Result};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scoreboard_protocol::snapshot::PlayerView;
use scoreboard_protocol::{ErrorCode, PlayerId};
use serde_json::json;
use std::time::Duration;

pub async fn leaderboard(State(state): State<AppState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state.board.current().body.clone(),
    )
        .into_response()
}

pub async fn player(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PlayerView>> {
    let id = PlayerId::parse(id).map_err(|_| AppError::code(ErrorCode::PlayerNotFound))?;
    if let Some(cache) = &state.cache {
        if let Some(Some((name, score, rank))) = cache.player(id.as_str()).await {
            return Ok(Json(PlayerView {
                player_id: id,
                name,
                score,
                rank,
            }));
        }
    }
    let row: Option<(String, Option<i64>, Option<i64>, bool)> = sqlx::query_as(
        "SELECT u.name, s.score, s.reached_version, u.banned_at IS NOT NULL
         FROM users u LEFT JOIN scores s USING (player_id) WHERE u.player_id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(&state.read_db)
    .await?;
    let Some((name, score, reached, banned)) = row else {
        return Err(AppError::code(ErrorCode::PlayerNotFound));
    };
    if banned {
        return Err(AppError::code(ErrorCode::PlayerNotFound));
    }
    let rank = match (score, reached) {
        (Some(s), Some(v)) => rank_of(&state.read_db, s, v).await?,
        // Players without a score event rank after everyone who has one.
        _ => {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM scores s JOIN users u USING (player_id) WHERE u.banned_at IS NULL",
            )
            .fetch_one(&state.read_db)
            .await?;
            n as u64 + 1
        }
    };
    Ok(Json(PlayerView {
        player_id: id,
        name,
        score: score.unwrap_or(0),
        rank,
    }))
}

async fn database_ok(state: &AppState) -> bool {
    tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(&state.db),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

/// `200 {"status":"ok","checks":{...}}` or `503 {"status":"degraded",...}`.
pub async fn health(State(state): State<AppState>) -> Response {
    let db = database_ok(&state).await;
    let redis = match &state.cache {
        None => "disabled",
        Some(c) if c.is_healthy() && c.ping().await => "ok",
        Some(_) => "down",
    };
    let ok = db && redis != "down";
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ok { "ok" } else { "degraded" },
            "checks": {"database": if db { "ok" } else { "down" }, "redis": redis},
        })),
    )
        .into_response()
}

pub async fn live() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Ready while PostgreSQL answers; Redis does not count (a degraded cache must not take the
/// instance out of the load balancer).
pub async fn ready(State(state): State<AppState>) -> Response {
    if database_ok(&state).await {
        Json(json!({"status": "ok"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "checks": {"database": "down"}})),
        )
            .into_response()
    }
}
