//! Operator routes under `/admin/`, behind `Authorization: Bearer <ADMIN_API_KEY>` (compared
//! in constant time): ban and unban, an audited manual adjustment, a Redis rebuild, and a
//! player's score events. Every change is written to `admin_audit`.

use crate::apply::WRITER_LOCK;
use crate::board;
use crate::cache::BoardRow;
use crate::error::{AppError, Result};
use crate::extract::{bearer, JsonBody};
use crate::state::AppState;
use anyhow::Context;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::Json;
use scoreboard_protocol::{ErrorCode, PlayerId};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;

/// Proof that the request carried the admin key.
#[derive(Debug)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let given = bearer(&parts.headers).unwrap_or_default().as_bytes();
        let wanted = state.config.admin_api_key.expose_secret().as_bytes();
        if bool::from(given.ct_eq(wanted)) {
            Ok(Admin)
        } else {
            tracing::warn!("auth failed: admin key missing or wrong");
            Err(AppError::code(ErrorCode::Unauthenticated))
        }
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn player_id(raw: String) -> Result<PlayerId> {
    PlayerId::parse(raw).map_err(|_| AppError::code(ErrorCode::PlayerNotFound))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BanState {
    player_id: String,
    banned: bool,
}

async fn audit(
    state: &AppState,
    action: &str,
    player: &str,
    detail: serde_json::Value,
    request_id: Option<String>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO admin_audit (action, player_id, detail, request_id) VALUES ($1, $2, $3, $4)",
    )
    .bind(action)
    .bind(player)
    .bind(detail)
    .bind(request_id)
    .execute(&state.db)
    .await?;
    Ok(())
}

/// Reloads the snapshot after a change that moved players without a score event, and tells
/// every instance.
async fn republish(state: &AppState) -> Result<()> {
    let mut conn = state.db.acquire().await?;
    let snapshot = board::load_snapshot(&mut conn).await?;
    if let Some(cache) = &state.cache {
        if let Ok(json) = serde_json::to_string(&snapshot) {
            cache.publish(&json).await;
        }
    }
    state.board.force(snapshot);
    Ok(())
}

async fn set_banned(state: &AppState, id: &PlayerId, banned: bool) -> Result<()> {
    let done = sqlx::query(
        "UPDATE users SET banned_at = CASE WHEN $2 THEN coalesce(banned_at, now()) ELSE NULL END
         WHERE player_id = $1",
    )
    .bind(id.as_str())
    .bind(banned)
    .execute(&state.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::code(ErrorCode::PlayerNotFound));
    }
    if let Some(cache) = &state.cache {
        if banned {
            cache.remove(id.as_str()).await;
        } else {
            let row: Option<(String, i64, i64)> = sqlx::query_as(
                "SELECT u.name, s.score, s.reached_version FROM users u JOIN scores s USING (player_id)
                 WHERE u.player_id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(&state.db)
            .await?;
            if let Some((name, score, version)) = row {
                cache
                    .upsert(&[BoardRow {
                        player_id: id.to_string(),
                        name,
                        score,
                        version,
                    }])
                    .await;
            }
        }
    }
    republish(state).await
}

pub async fn ban(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<BanState>> {
    let id = player_id(id)?;
    // The body is optional: `{"reason": "..."}` or nothing.
    let reason = if body.is_empty() {
        None
    } else {
        crate::extract::require_json(&headers)?;
        crate::extract::parse_json::<Reason>(&body)?.reason
    };
    set_banned(&state, &id, true).await?;
    audit(
        &state,
        "ban",
        id.as_str(),
        json!({ "reason": reason }),
        request_id(&headers),
    )
    .await?;
    Ok(Json(BanState {
        player_id: id.to_string(),
        banned: true,
    }))
}

pub async fn unban(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<BanState>> {
    let id = player_id(id)?;
    set_banned(&state, &id, false).await?;
    audit(
        &state,
        "unban",
        id.as_str(),
        json!({}),
        request_id(&headers),
    )
    .await?;
    Ok(Json(BanState {
        player_id: id.to_string(),
        banned: false,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    points: i64,
    reason: String,
}

#[derive(Debug, Serialize)]
pub struct Adjusted {
    player_id: String,
    score: i64,
    leaderboard_version: i64,
}

/// Adds `points` (either sign) to a player's total as a score event of its own
/// (`action = 'admin:adjust'`), under the writers' lock like any batch, and audits it.
pub async fn adjust(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(adj): JsonBody<Adjustment>,
) -> Result<Json<Adjusted>> {
    let id = player_id(id)?;
    let reason = adj.reason.trim();
    if adj.points == 0 || reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::with_message(
            ErrorCode::BadRequest,
            "An adjustment needs non-zero points and a reason of at most 500 characters.",
        ));
    }
    let rid = request_id(&headers);
    let mut tx = state.db.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut *tx)
        .await?;
    let row: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT u.name, s.score FROM users u LEFT JOIN scores s USING (player_id) WHERE u.player_id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((name, current)) = row else {
        return Err(AppError::code(ErrorCode::PlayerNotFound));
    };
    let total = current
        .unwrap_or(0)
        .checked_add(adj.points)
        .filter(|t| t.abs() <= crate::apply::MAX_TOTAL)
        .ok_or_else(|| {
            AppError::with_message(
                ErrorCode::BadRequest,
                "The total would leave the supported range.",
            )
        })?;
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO score_events (player_id, jti, action, pts, score_after, edge_region, request_id)
         VALUES ($1, NULL, 'admin:adjust', $2, $3, NULL, $4) RETURNING id",
    )
    .bind(id.as_str())
    .bind(adj.points)
    .bind(total)
    .bind(&rid)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO scores (player_id, score, reached_version) VALUES ($1, $2, $3)
         ON CONFLICT (player_id) DO UPDATE SET score = $2, reached_version = $3, reached_at = now()",
    )
    .bind(id.as_str())
    .bind(total)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO admin_audit (action, player_id, detail, request_id) VALUES ('adjust', $1, $2, $3)")
        .bind(id.as_str())
        .bind(json!({"points": adj.points, "reason": reason, "event_id": version}))
        .bind(&rid)
        .execute(&mut *tx)
        .await?;
    let snapshot = board::load_snapshot(&mut tx).await?;
    tx.commit().await.context("committing an adjustment")?;
    if let Some(cache) = &state.cache {
        cache
            .upsert(&[BoardRow {
                player_id: id.to_string(),
                name,
                score: total,
                version,
            }])
            .await;
        if let Ok(json) = serde_json::to_string(&snapshot) {
            cache.publish(&json).await;
        }
    }
    state.board.offer(snapshot);
    Ok(Json(Adjusted {
        player_id: id.to_string(),
        score: total,
        leaderboard_version: version,
    }))
}

/// Rewrites the Redis board from PostgreSQL now.
pub async fn rebuild(
    _: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>> {
    let Some(cache) = &state.cache else {
        return Err(AppError::with_message(
            ErrorCode::BadRequest,
            "Redis is not configured.",
        ));
    };
    let players = cache.rebuild(&state.db).await.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "Redis error: rebuild failed");
        AppError::code(ErrorCode::UpstreamUnavailable).retry_after(5)
    })?;
    audit(
        &state,
        "rebuild",
        "",
        json!({ "players": players }),
        request_id(&headers),
    )
    .await?;
    Ok(Json(json!({ "players": players })))
}

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct EventRow {
    id: i64,
    action: String,
    pts: i64,
    score_after: i64,
    edge_region: Option<String>,
    request_id: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A player's score events, newest first (`?limit=`, at most 500; `?before=<id>` to page).
pub async fn events(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>> {
    let id = player_id(id)?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE player_id = $1)")
            .bind(id.as_str())
            .fetch_one(&state.read_db)
            .await?;
    if !exists {
        return Err(AppError::code(ErrorCode::PlayerNotFound));
    }
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, action, pts, score_after, edge_region, request_id, created_at FROM score_events
         WHERE player_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(id.as_str())
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(q.limit.unwrap_or(100).clamp(1, 500))
    .fetch_all(&state.read_db)
    .await?;
    Ok(Json(json!({ "player_id": id.to_string(), "events": rows })))
}
