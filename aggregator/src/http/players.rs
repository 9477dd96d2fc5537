//! A player's standing: `GET /api/players/{id}` (name, score and rank on `global`, plus every
//! public board where the player has an entry) and `GET /api/boards/{id}/players/{player}`
//! (the entry with the ones around it). From Redis when it answers, else from PostgreSQL (the
//! read replica when there is one), answering the same.

use super::boards::{bounded, period_of, public_board, Asked};
use super::extract::Params;
use crate::board::pages::{self, Entry};
use crate::board::{sql, Frame};
use crate::error::{AppError, Result};
use crate::replica::Floor;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::Json;
use scoreboard_protocol::snapshot::{PeriodRef, PlayerView, Standing};
use scoreboard_protocol::{BoardId, ErrorCode, PlayerId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

fn player_id(raw: String) -> Result<PlayerId> {
    PlayerId::parse(raw).map_err(|_| AppError::code(ErrorCode::PlayerNotFound))
}

pub(crate) async fn player(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<PlayerView>> {
    let id = player_id(id)?;
    // Redis holds no banned player, so a player it knows on any board is known and not
    // banned, with their name: no PostgreSQL round trip for the common read.
    if let Some((name, boards)) = cached_standings(&state, &id).await {
        if let Some(global) = boards.iter().find(|s| s.board.is_global()) {
            let (score, rank) = (global.score, global.rank);
            return Ok(Json(PlayerView {
                player_id: id,
                name,
                score,
                rank,
                boards,
            }));
        }
    }
    let (name, boards, global_count) = db_player(&state, &id).await?;
    let global = boards.iter().find(|s| s.board.is_global());
    let (score, rank) = match global {
        Some(s) => (s.score, s.rank),
        None => (0, global_count + 1),
    };
    Ok(Json(PlayerView {
        player_id: id,
        name,
        score,
        rank,
        boards,
    }))
}

fn public_boards(state: &AppState) -> Vec<crate::board::registry::Live> {
    state
        .boards
        .all()
        .into_iter()
        .filter(|l| l.def.public)
        .collect()
}

/// The player's name and standing on every public board's current period, from Redis: `None`
/// when Redis is absent or failed, or knows the player on no board.
async fn cached_standings(state: &AppState, id: &PlayerId) -> Option<(String, Vec<Standing>)> {
    let cache = state.cache.as_ref()?;
    let boards = public_boards(state);
    let reads = boards.iter().map(|l| {
        let period = l.period().id;
        async move {
            let read = cache
                .player(l.def.id.as_str(), &period, l.def.order, id.as_str())
                .await;
            (l.def.id.clone(), period, read)
        }
    });
    let mut name = None;
    let mut out = Vec::new();
    for (board, period, read) in futures_util::future::join_all(reads).await {
        if let Some((n, score, rank)) = read? {
            name.get_or_insert(n);
            out.push(Standing {
                board,
                period,
                score,
                rank,
            });
        }
    }
    Some((name?, out))
}

/// The player's name, standing on every public board's current period, and the count of
/// `global`'s entries (their rank when they have none), from PostgreSQL: from the replica only
/// once it holds every version this instance has seen, so that a player who just scored sees
/// it. `PLAYER_NOT_FOUND` for an unknown or banned player (a banned player is off every board).
async fn db_player(state: &AppState, id: &PlayerId) -> Result<(String, Vec<Standing>, u64)> {
    let frames: Vec<(BoardId, Arc<Frame>)> = public_boards(state)
        .into_iter()
        .map(|l| (l.def.id.clone(), l.board.current()))
        .collect();
    let pairs: Vec<(BoardId, String)> = frames
        .iter()
        .map(|(b, f)| (b.clone(), f.snapshot.period.id.clone()))
        .collect();
    let (floors, pairs) = (floors_of(&frames), &pairs);
    let found = state
        .reads
        .read(&floors, |mut db| async move {
            let row: Option<(String, bool)> = crate::db::query_as(
                "SELECT name, banned_at IS NOT NULL FROM users WHERE player_id = $1",
            )
            .bind(id.as_str())
            .fetch_optional(&mut *db)
            .await?;
            let Some((name, false)) = row else {
                return Ok(None);
            };
            let boards = pages::standings(&mut db, id, pairs).await?;
            let count = match boards.iter().any(|s| s.board.is_global()) {
                true => 0,
                false => sql::count(&mut *db, BoardId::GLOBAL, "all").await?,
            };
            Ok(Some((name, boards, count)))
        })
        .await?;
    found.ok_or_else(|| AppError::code(ErrorCode::PlayerNotFound))
}

/// The versions a read of these boards must include: what this instance has shown of them.
pub(crate) fn floors_of(frames: &[(BoardId, Arc<Frame>)]) -> Vec<Floor<'_>> {
    frames
        .iter()
        .map(|(b, f)| (b.as_str(), f.snapshot.period.id.as_str(), f.version()))
        .collect()
}

#[derive(Debug, Deserialize)]
pub(crate) struct AroundQuery {
    around: Option<String>,
    period: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct BoardPlayer {
    player_id: String,
    name: String,
    score: i64,
    rank: u64,
    around: Vec<Entry>,
    period: PeriodRef,
    next_reset_at: Option<String>,
}

/// `GET /api/boards/{id}/players/{player}?around=N`.
pub(crate) async fn board_player(
    State(state): State<AppState>,
    Path((board, player)): Path<(String, String)>,
    Params(q): Params<AroundQuery>,
) -> Result<Json<BoardPlayer>> {
    let live = public_board(&state, &board).await?;
    let Asked { period, current } = period_of(&live, q.period.as_deref())?;
    let n = bounded(q.around.as_deref(), 0, 0..=25, "around")?;
    let player = player_id(player)?;
    let (board, order) = (live.def.id.as_str(), live.def.order);
    let cached = match &state.cache {
        Some(c) if current => c.around(board, &period.id, order, player.as_str(), n).await,
        _ => None,
    };
    let found = match cached {
        Some(found) => found,
        None => {
            let frame = [(live.def.id.clone(), live.board.current())];
            // The floor only holds for the period the frame shows: a past period is closed.
            let floors = match current {
                true => floors_of(&frame),
                false => Vec::new(),
            };
            let (period, player) = (&period.id, player.as_str());
            state
                .reads
                .read(&floors, |mut db| async move {
                    pages::around(&mut db, board, period, player, n).await
                })
                .await?
        }
    };
    let (me, around) = found.ok_or_else(|| AppError::code(ErrorCode::PlayerNotFound))?;
    Ok(Json(BoardPlayer {
        player_id: me.player_id,
        name: me.name,
        score: me.score,
        rank: me.rank,
        around,
        period,
        next_reset_at: live.period().ends_at,
    }))
}
