//! `POST /internal/scores`: the edge-signed score update. Checks run in DESIGN.md's order,
//! then the update goes through the group-commit batcher and is answered after the commit.
//! `POST /internal/scores/check` runs the same checks and stops before the batcher.

use super::extract::{parse_json, require_json, verify_session, EdgeSigned, RequestId};
use crate::apply::{Outcome, Source, Update};
use crate::clock::now_secs;
use crate::error::{AppError, Result};
use crate::state::AppState;
use axum::extract::State;
use axum::Json;
use scoreboard_protocol::action::{ActionClaims, ActionTokenError};
use scoreboard_protocol::session::Session;
use scoreboard_protocol::snapshot::{ForwardedScore, ScoreResponse};
use scoreboard_protocol::{BoardId, ErrorCode, PlayerId};
use serde::Serialize;

/// Clock skew allowed between the edge that checked `nbf`/`exp` and this aggregator.
const ACTION_TOKEN_LEEWAY_SECS: i64 = 5;

fn count(status: &'static str) {
    metrics::counter!("score_updates_total", "status" => status).increment(1);
}

fn validation(result: &'static str) {
    metrics::counter!("action_token_validations_total", "result" => result).increment(1);
}

pub(crate) async fn internal_scores(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    signed: Result<EdgeSigned, AppError>,
) -> Result<Json<ScoreResponse>> {
    // Every refusal counts in `score_updates_total`, a forged signature included.
    let outcome = match signed {
        Ok(signed) => handle(&state, request_id, signed).await,
        Err(refused) => Err(refused),
    };
    count(match &outcome {
        Ok(_) => "applied",
        Err(e) => match e.error_code() {
            ErrorCode::ActionTokenReplayed => "replayed",
            ErrorCode::UpstreamUnavailable | ErrorCode::Overloaded | ErrorCode::InternalError => {
                "error"
            }
            _ => "rejected",
        },
    });
    outcome
}

/// What `POST /internal/scores/check` answers: the update as the aggregator would queue it.
#[derive(Debug, Serialize)]
pub(crate) struct ScoreCheck {
    valid: bool,
    player_id: PlayerId,
    points: i64,
    boards: Vec<BoardId>,
}

/// An edge-signed update checked as `POST /internal/scores` checks it (edge signature,
/// session, body, action token, its boards' names) and not applied: what an operator uses to
/// prove, after rotating a secret, that the edge's forwards and the game backend's tokens are
/// accepted, without moving a score; and the benchmarks' "empty" baseline, the same HTTP path
/// without the batcher. It reads nothing: a replayed token, a revoked session, a banned player
/// or a board that does not exist are found only by applying.
pub(crate) async fn internal_scores_check(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    signed: Result<EdgeSigned, AppError>,
) -> Result<Json<ScoreCheck>> {
    let (_, update) = validate(&state, request_id, signed?)?;
    Ok(Json(ScoreCheck {
        valid: true,
        player_id: update.player,
        points: update.points,
        boards: update.boards,
    }))
}

async fn handle(
    state: &AppState,
    request_id: String,
    signed: EdgeSigned,
) -> Result<Json<ScoreResponse>> {
    let (session, update) = validate(state, request_id, signed)?;
    let outcome = state.applier.apply(update).await?;
    answer(session, outcome)
}

/// The checks that need no database, in DESIGN.md's order: the session, the body, the action
/// token; then the update they make.
fn validate(state: &AppState, request_id: String, signed: EdgeSigned) -> Result<(Session, Update)> {
    let session = verify_session(state, &signed.headers)?;
    require_json(&signed.headers)?;
    let fwd: ForwardedScore = parse_json(&signed.body)?;
    let claims = verify_action(state, &session, &fwd.action_token)?;
    let update = Update {
        player: session.player_id.clone(),
        points: claims.pts,
        boards: state.config.shared.catalog.boards_of(&claims),
        source: Source::Token {
            jti: claims.jti,
            action: claims.act.to_string(),
            expires_at: claims.exp,
            session_jti: session.jti.clone(),
            edge_region: fwd.edge_region.chars().take(64).collect(),
        },
        request_id,
        queued_at: std::time::Instant::now(),
    };
    Ok((session, update))
}

/// The action token, re-verified (defence in depth: the edge checked it too).
fn verify_action(state: &AppState, session: &Session, token: &str) -> Result<ActionClaims> {
    state
        .actions
        .verify(
            token,
            &session.player_id,
            now_secs(),
            ACTION_TOKEN_LEEWAY_SECS,
        )
        .map_err(|e| {
            validation(e.metric_label());
            tracing::warn!(reason = %e, "action token rejected");
            let err = AppError::with_message(e.code(), e.message());
            match e {
                ActionTokenError::NotYetValid { retry_after } => {
                    err.retry_after(retry_after as u64)
                }
                _ => err,
            }
        })
}

fn answer(session: Session, outcome: Outcome) -> Result<Json<ScoreResponse>> {
    match outcome {
        Outcome::Applied { standings, version } => {
            validation("valid");
            let first = standings.first();
            Ok(Json(ScoreResponse {
                player_id: session.player_id,
                score: first.map_or(0, |s| s.score),
                rank: first.map_or(0, |s| s.rank),
                applied: true,
                leaderboard_version: version,
                boards: standings,
            }))
        }
        Outcome::Replayed { standings } => {
            validation("replay");
            Err(AppError::code(ErrorCode::ActionTokenReplayed).with_boards(standings))
        }
        Outcome::Banned => Err(AppError::code(ErrorCode::PlayerBanned)),
        Outcome::Unauthenticated | Outcome::UnknownPlayer => {
            Err(AppError::code(ErrorCode::Unauthenticated))
        }
        Outcome::UnknownBoard => Err(AppError::code(ErrorCode::UnknownBoard)),
        Outcome::ValueOutOfRange => Err(AppError::code(ErrorCode::ValueOutOfRange)),
        Outcome::OutOfRange => Err(AppError::with_message(
            ErrorCode::BadRequest,
            "This update would take the score beyond the supported range.",
        )),
        Outcome::Unavailable => {
            tracing::warn!("score update not applied: the database is unavailable");
            Err(AppError::code(ErrorCode::UpstreamUnavailable).retry_after(1))
        }
    }
}
