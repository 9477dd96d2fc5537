//! Operator routes under `/admin/`, behind `Authorization: Bearer <ADMIN_API_KEY>` (compared
//! in constant time): ban and unban, an audited manual adjustment, a Redis rebuild, and a
//! player's score events. Every change is written to `admin_audit`.

use super::extract::{parse_json, require_json, Admin, JsonBody, RequestId};
use crate::apply::{Outcome, Source, Update};
use crate::board::sql;
use crate::cache::pubsub::{announce, Replace};
use crate::error::{AppError, Result};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use scoreboard_protocol::{BoardId, ErrorCode, PlayerId};
use serde::{Deserialize, Serialize};
use serde_json::json;

fn player_id(raw: String) -> Result<PlayerId> {
    PlayerId::parse(raw).map_err(|_| AppError::code(ErrorCode::PlayerNotFound))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reason {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct BanState {
    player_id: String,
    banned: bool,
}

pub(super) async fn audit(
    state: &AppState,
    action: &str,
    player: &str,
    detail: serde_json::Value,
    request_id: &str,
) -> Result<()> {
    crate::db::query(
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

/// Reloads the snapshots of `boards` after a change that moved players without a score event,
/// and tells every instance.
async fn republish(state: &AppState, boards: &[String]) -> Result<()> {
    let mut conn = state.db.conn().await?;
    for id in boards {
        let Some(live) = state.boards.get(id) else {
            continue;
        };
        let snapshot = sql::load_snapshot(&mut conn, &live.def, &live.period()).await?;
        announce(
            state.cache.as_deref(),
            &state.boards,
            snapshot,
            Replace::Always,
        )
        .await;
    }
    Ok(())
}

/// Sets the ban, takes the player off (or puts them back on) every board's copies, and
/// republishes the boards they stand on.
async fn set_banned(state: &AppState, id: &PlayerId, banned: bool) -> Result<()> {
    let done = crate::db::query(
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
    restate(state, id, !banned).await
}

/// Brings a player's entries in the current periods of every board to the in-process rank
/// index and the Redis copy as PostgreSQL has them now (`on_board`), or takes them off (a
/// ban), then republishes those boards' snapshots: after a change that moved no score, such
/// as a ban or a new name.
pub(super) async fn restate(state: &AppState, id: &PlayerId, on_board: bool) -> Result<()> {
    let current: Vec<(String, String, crate::board::BoardRow)> =
        sql::player_rows(&state.db, id.as_str())
            .await?
            .into_iter()
            .filter(|(b, p, _)| state.boards.get(b).is_some_and(|l| l.period().id == *p))
            .collect();
    for (board, period, row) in &current {
        let Some(live) = state.boards.get(board) else {
            continue;
        };
        let rows = std::slice::from_ref(row);
        match on_board {
            false => live.ranks.remove(id.as_str()),
            true => live.ranks.put(period, live.def.order, rows),
        }
        // A Redis that fails here is marked for a rebuild, which brings it back in line.
        if let Some(cache) = &state.cache {
            if on_board {
                cache.upsert(&live.def, period, rows).await;
            } else {
                cache.remove(board, period, id.as_str()).await;
            }
        }
    }
    let boards: Vec<String> = current.into_iter().map(|(b, _, _)| b).collect();
    republish(state, &boards).await
}

/// Bans or unbans, audits, and answers the new state.
async fn ban_state(
    state: &AppState,
    id: PlayerId,
    banned: bool,
    detail: serde_json::Value,
    request_id: &str,
) -> Result<Json<BanState>> {
    set_banned(state, &id, banned).await?;
    let action = if banned { "ban" } else { "unban" };
    audit(state, action, id.as_str(), detail, request_id).await?;
    Ok(Json(BanState {
        player_id: id.to_string(),
        banned,
    }))
}

pub(crate) async fn ban(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestId(rid): RequestId,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<BanState>> {
    let id = player_id(id)?;
    // The body is optional: `{"reason": "..."}` or nothing.
    let reason = if body.is_empty() {
        None
    } else {
        require_json(&headers)?;
        parse_json::<Reason>(&body)?.reason
    };
    ban_state(&state, id, true, json!({ "reason": reason }), &rid).await
}

pub(crate) async fn unban(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestId(rid): RequestId,
) -> Result<Json<BanState>> {
    ban_state(&state, player_id(id)?, false, json!({}), &rid).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Adjustment {
    points: i64,
    reason: String,
    /// The board to adjust; `global` when absent.
    #[serde(default)]
    board: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Adjusted {
    player_id: String,
    board: BoardId,
    score: i64,
    leaderboard_version: i64,
}

/// Adds `points` (either sign) to a player's value on one board (any operator: an adjustment
/// is a correction, not a play) as a score event of its own (`action = 'admin:adjust'`),
/// through the same batcher as every score update, audited in the same transaction.
pub(crate) async fn adjust(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestId(request_id): RequestId,
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
    let board = match adj.board {
        None => BoardId::global(),
        Some(b) => BoardId::parse(b).map_err(|_| AppError::code(ErrorCode::BoardNotFound))?,
    };
    let update = Update {
        player: id.clone(),
        points: adj.points,
        boards: vec![board.clone()],
        source: Source::Adjustment {
            reason: reason.to_owned(),
        },
        request_id,
        queued_at: std::time::Instant::now(),
    };
    let outcome = state.applier.apply(update).await?;
    match outcome {
        Outcome::Applied { standings, version } => Ok(Json(Adjusted {
            player_id: id.to_string(),
            board,
            score: standings.first().map_or(0, |s| s.score),
            leaderboard_version: version,
        })),
        Outcome::UnknownBoard => Err(AppError::code(ErrorCode::BoardNotFound)),
        Outcome::OutOfRange => Err(AppError::with_message(
            ErrorCode::BadRequest,
            "The total would leave the supported range.",
        )),
        Outcome::Unavailable => Err(AppError::code(ErrorCode::UpstreamUnavailable).retry_after(1)),
        _ => Err(AppError::code(ErrorCode::PlayerNotFound)),
    }
}

/// Rewrites every Redis board from PostgreSQL. The rebuild runs as a task of its own, so it
/// finishes whatever happens to the request: `200` with the entries written when it is done
/// within half the request timeout, else `202` while it goes on (`redis_cache_mode` and
/// `redis_rebuilds_finished_total` tell when it is done).
pub(crate) async fn rebuild(
    _: Admin,
    State(state): State<AppState>,
    RequestId(rid): RequestId,
) -> Result<axum::response::Response> {
    let Some(cache) = &state.cache else {
        return Err(AppError::with_message(
            ErrorCode::BadRequest,
            "Redis is not configured.",
        ));
    };
    let (cache, db, boards) = (cache.clone(), state.db.clone(), state.boards.clone());
    let task = tokio::spawn(async move { cache.rebuild(&db, &boards).await });
    let done = tokio::time::timeout(state.config.request_timeout / 2, task).await;
    let players = match done {
        Err(_) => {
            audit(
                &state,
                "rebuild",
                "",
                json!({ "status": "rebuilding" }),
                &rid,
            )
            .await?;
            let body = Json(json!({ "status": "rebuilding" }));
            return Ok((axum::http::StatusCode::ACCEPTED, body).into_response());
        }
        Ok(Ok(Ok(players))) => players,
        Ok(Ok(Err(e))) => {
            tracing::error!(error = format!("{e:#}"), "Redis error: rebuild failed");
            return Err(AppError::code(ErrorCode::UpstreamUnavailable).retry_after(5));
        }
        Ok(Err(e)) => {
            return Err(AppError::Internal(anyhow::anyhow!(
                "the rebuild task failed: {e}"
            )))
        }
    };
    audit(&state, "rebuild", "", json!({ "players": players }), &rid).await?;
    Ok(Json(json!({ "players": players })).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct EventsQuery {
    limit: Option<i64>,
    before: Option<i64>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    board_id: String,
    period: String,
    action: String,
    pts: i64,
    score_after: i64,
    edge_region: Option<String>,
    request_id: Option<String>,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// A player's score events, newest first (`?limit=`, at most 500; `?before=<id>` to page).
pub(crate) async fn events(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>> {
    let id = player_id(id)?;
    let (before, limit) = (
        q.before.unwrap_or(i64::MAX),
        q.limit.unwrap_or(100).clamp(1, 500),
    );
    let player = id.as_str();
    let rows = state
        .reads
        .read(&[], |mut db| async move {
            let exists: bool =
                crate::db::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE player_id = $1)")
                    .bind(player)
                    .fetch_one(&mut *db)
                    .await?;
            if !exists {
                return Ok(None);
            }
            let rows: Vec<EventRow> = crate::db::query_as(
                "SELECT id, board_id, period, action, pts, score_after, edge_region, request_id, created_at FROM score_events
                 WHERE player_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(player)
            .bind(before)
            .bind(limit)
            .fetch_all(&mut *db)
            .await?;
            Ok(Some(rows))
        })
        .await?
        .ok_or_else(|| AppError::code(ErrorCode::PlayerNotFound))?;
    Ok(Json(json!({ "player_id": id.to_string(), "events": rows })))
}
