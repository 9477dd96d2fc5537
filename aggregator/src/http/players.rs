//! `GET /api/players/{id}`: a player's name, score and rank, from Redis when it knows the
//! player, else from PostgreSQL (the read replica when there is one).

use crate::board::sql;
use crate::error::{AppError, Result};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use scoreboard_protocol::snapshot::PlayerView;
use scoreboard_protocol::{ErrorCode, PlayerId};

pub(crate) async fn player(
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
    let Some((name, score, reached, false)) = row else {
        // Unknown, or banned (a banned player is off the board).
        return Err(AppError::code(ErrorCode::PlayerNotFound));
    };
    let rank = match (score, reached) {
        (Some(s), Some(v)) => sql::rank_of(&state.read_db, s, v).await?,
        _ => sql::rank_of_unscored(&state.read_db).await?,
    };
    Ok(Json(PlayerView {
        player_id: id,
        name,
        score: score.unwrap_or(0),
        rank,
    }))
}
