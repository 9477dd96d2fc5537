//! Operators' board routes: `PUT /admin/boards/{id}` creates or changes a board (idempotent;
//! order, operator, reset and time zone are fixed once it has a score: `409 BOARD_IN_USE`) and
//! `GET /admin/boards` lists every board, hidden ones included. Changes are audited.

use super::extract::{Admin, JsonBody, RequestId};
use crate::apply::lock_writers;
use crate::board::close;
use crate::board::kind::{Operator, Order, MAX_VALUE};
use crate::board::schedule::Schedule;
use crate::board::{sql, BoardDef};
use crate::error::{AppError, Result};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use scoreboard_protocol::{BoardId, ErrorCode};
use serde::Deserialize;
use serde_json::json;

/// The body of `PUT /admin/boards/{id}`: the whole board, defaults for what is left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BoardBody {
    title: String,
    order: Order,
    operator: Operator,
    #[serde(default)]
    reset: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    value_min: Option<i64>,
    #[serde(default)]
    value_max: Option<i64>,
    #[serde(default)]
    public: Option<bool>,
    #[serde(default)]
    results_size: Option<i32>,
}

fn bad(message: &str) -> AppError {
    AppError::with_message(ErrorCode::BadRequest, message)
}

/// The definition the body asks for, or `400` saying what is wrong with it.
fn definition(id: BoardId, b: BoardBody) -> Result<BoardDef> {
    let title = b.title.trim().to_owned();
    if title.is_empty() || title.chars().count() > 64 || title.chars().any(char::is_control) {
        return Err(bad(
            "`title` has 1 to 64 characters and no control characters.",
        ));
    }
    let reset = b.reset.unwrap_or_else(|| "never".to_owned());
    let timezone = b.timezone.unwrap_or_else(|| "UTC".to_owned());
    let schedule = Schedule::parse(&reset, &timezone)
        .and_then(|s| s.comes_round(chrono::Utc::now()))
        .map_err(|e| bad(&e.to_string()))?;
    let (min, max) = b.operator.default_bounds();
    let (value_min, value_max) = (b.value_min.unwrap_or(min), b.value_max.unwrap_or(max));
    let limit = MAX_VALUE - 1;
    if value_min > value_max || value_min < -limit || value_max > limit {
        return Err(bad(
            "`value_min` must not exceed `value_max`, both within ±(2^53 − 1).",
        ));
    }
    let results_size = b.results_size.unwrap_or(100);
    if !(1..=1000).contains(&results_size) {
        return Err(bad("`results_size` must be from 1 to 1000."));
    }
    let public = b.public.unwrap_or(true);
    if id.is_global() && !public {
        return Err(bad(
            "The global board cannot be hidden: every route without a board name reads it.",
        ));
    }
    Ok(BoardDef {
        id,
        title,
        order: b.order,
        operator: b.operator,
        schedule,
        value_min,
        value_max,
        public,
        results_size,
    })
}

/// Whether `new` changes what scores already depend on.
fn changes_scoring(old: &BoardDef, new: &BoardDef) -> bool {
    (old.order, old.operator, &old.schedule) != (new.order, new.operator, &new.schedule)
}

pub(crate) async fn put(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestId(rid): RequestId,
    JsonBody(body): JsonBody<BoardBody>,
) -> Result<(StatusCode, Json<BoardDef>)> {
    let id = BoardId::parse(id).map_err(|e| bad(e.0))?;
    let def = definition(id, body)?;
    let (created, def) = store(&state, def, &rid).await?;
    state
        .boards
        .take(&mut *state.db.conn().await?, def.clone())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(def)))
}

/// Writes the board under the writers' lock (so no batch scores it between the check and the
/// change) and audits a real change; returns whether it was created, and the board as stored
/// (a period an operator started early stays so).
async fn store(state: &AppState, mut def: BoardDef, request_id: &str) -> Result<(bool, BoardDef)> {
    let mut tx = state.db.begin().await?;
    lock_writers(&mut tx).await?;
    let old = sql::load_defs_of(&mut *tx, &[def.id.as_str()]).await?.pop();
    if let Some(old) = &old {
        def.schedule = def.schedule.resumed_at(old.schedule.resumed());
    }
    let def = def;
    if old.as_ref() == Some(&def) {
        return Ok((false, def));
    }
    if let Some(old) = &old {
        let scored: bool =
            crate::db::query_scalar("SELECT EXISTS (SELECT 1 FROM entries WHERE board_id = $1)")
                .bind(def.id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if scored && changes_scoring(old, &def) {
            return Err(AppError::code(ErrorCode::BoardInUse));
        }
    }
    crate::db::query(
        "INSERT INTO boards (id, title, sort_order, operator, reset, timezone, value_min, value_max, public, results_size)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO UPDATE SET title = $2, sort_order = $3, operator = $4, reset = $5, timezone = $6,
             value_min = $7, value_max = $8, public = $9, results_size = $10, updated_at = now()",
    )
    .bind(def.id.as_str())
    .bind(&def.title)
    .bind(def.order.as_str())
    .bind(def.operator.as_str())
    .bind(def.schedule.reset())
    .bind(def.schedule.timezone())
    .bind(def.value_min)
    .bind(def.value_max)
    .bind(def.public)
    .bind(def.results_size)
    .execute(&mut *tx)
    .await?;
    crate::db::query(
        "INSERT INTO admin_audit (action, detail, request_id) VALUES ('board', $1, $2)",
    )
    .bind(json!({ "board": def, "created": old.is_none() }))
    .bind(request_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((old.is_none(), def))
}

/// `POST /admin/boards/{id}/close-period`: ends the board's current period now. Its results
/// are written and announced at once, and the next period runs from now to the schedule's
/// next reset. `404 BOARD_NOT_FOUND`; `400` for a board that never resets.
pub(crate) async fn close_period(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestId(rid): RequestId,
) -> Result<Json<serde_json::Value>> {
    let id = BoardId::parse(id).map_err(|_| AppError::code(ErrorCode::BoardNotFound))?;
    let endpoints = state.config.webhook_urls();
    // Periods that ended before this one are closed first: results are written in order.
    close::close_ended(&state.db, &state.boards, &endpoints)
        .await
        .map_err(AppError::Internal)?;
    let closed = close::close_now(&state.db, &id, &endpoints, &rid)
        .await
        .map_err(|e| match e {
            close::CloseNow::NotFound => AppError::code(ErrorCode::BoardNotFound),
            close::CloseNow::NeverResets => {
                bad("This board never resets: it has no period to close.")
            }
            close::CloseNow::JustBegan => {
                bad("The current period began this instant: nothing to close yet.")
            }
            close::CloseNow::Database(e) => e.into(),
        })?;
    let def = sql::load_defs_of(&state.db, &[id.as_str()])
        .await?
        .pop()
        .ok_or_else(|| AppError::code(ErrorCode::BoardNotFound))?;
    state.boards.take(&mut *state.db.conn().await?, def).await?;
    Ok(Json(json!({ "closed": closed.period() })))
}

/// `GET /admin/boards`: every board, hidden ones included, from PostgreSQL.
pub(crate) async fn list(
    _: Admin,
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>> {
    let boards = sql::load_defs(&state.db).await?;
    Ok(Json(json!({ "boards": boards })))
}
