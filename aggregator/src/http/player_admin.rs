//! `PUT /admin/players/{id}`: players under the game's own account ids. A game that has
//! accounts of its own creates (or renames) the player under the id it already uses, then signs
//! sessions for it with the session secret (or key) as its backend sees fit: the aggregator
//! accepts a session it did not issue for a player that exists.

use super::admin::{audit, restate};
use super::extract::{Admin, JsonBody, RequestId};
use crate::error::{AppError, Result};
use crate::names;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use scoreboard_protocol::{DisplayName, ErrorCode, PlayerId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlayerPut {
    name: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct PlayerAccount {
    player_id: String,
    name: String,
    /// Whether this call created the player (`201`); `false` for a rename or no change (`200`).
    created: bool,
}

/// Creates the player `id` with `name`, or renames it; the same call twice changes nothing.
/// `400` for an id that is not a player id or a name the sign-in would refuse, `409
/// NAME_TAKEN` when another player has the name (in any case or form).
pub(crate) async fn put(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    RequestId(rid): RequestId,
    JsonBody(body): JsonBody<PlayerPut>,
) -> Result<(StatusCode, Json<PlayerAccount>)> {
    let id = PlayerId::parse(id).map_err(|e| {
        AppError::with_message(
            ErrorCode::BadRequest,
            format!("The player id is not valid: {e}."),
        )
    })?;
    let name = DisplayName::parse(names::display(&body.name))
        .map_err(|e| AppError::with_message(ErrorCode::BadRequest, e.0))?;
    let (created, renamed, banned) = upsert(&state, &id, &name).await?;
    if renamed && !banned {
        // Boards, snapshots and Redis show the new name at once.
        restate(&state, &id, true).await?;
    }
    if created || renamed {
        let detail = serde_json::json!({ "name": name.as_str(), "created": created });
        audit(&state, "player_put", id.as_str(), detail, &rid).await?;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let account = PlayerAccount {
        player_id: id.to_string(),
        name: name.to_string(),
        created,
    };
    Ok((status, Json(account)))
}

/// Inserts or renames; returns (created, renamed, banned).
async fn upsert(state: &AppState, id: &PlayerId, name: &DisplayName) -> Result<(bool, bool, bool)> {
    let row: std::result::Result<Option<(bool, bool)>, sqlx::Error> = crate::db::query_as(
        "INSERT INTO users (player_id, name, name_key, name_skeleton, name_rules)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (player_id) DO UPDATE
         SET name = EXCLUDED.name, name_key = EXCLUDED.name_key,
             name_skeleton = EXCLUDED.name_skeleton, name_rules = EXCLUDED.name_rules
         WHERE users.name IS DISTINCT FROM EXCLUDED.name
         RETURNING xmax = 0, banned_at IS NOT NULL",
    )
    .bind(id.as_str())
    .bind(name.as_str())
    .bind(names::key(name.as_str()))
    .bind(names::skeleton(name.as_str()))
    .bind(names::RULES)
    .fetch_optional(&state.db)
    .await;
    match row {
        Ok(Some((created, banned))) => Ok((created, !created, banned)),
        // The player exists with this very name: nothing to do.
        Ok(None) => Ok((false, false, false)),
        Err(e) if names::is_taken(&e) => Err(AppError::code(ErrorCode::NameTaken)),
        Err(e) => Err(e.into()),
    }
}
