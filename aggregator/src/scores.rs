//! `POST /internal/scores`: the edge-signed score update. Checks run in DESIGN.md's order,
//! then the update goes through the group-commit batcher and is answered after the commit.

use crate::apply::{ApplyRequest, Outcome, SubmitError};
use crate::error::{AppError, Result};
use crate::extract::{now_secs, parse_json, read_body, require_json, verify_session};
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::Json;
use scoreboard_protocol::edge_signature;
use scoreboard_protocol::snapshot::{ForwardedScore, ScoreResponse};
use scoreboard_protocol::ErrorCode;
use tokio::sync::oneshot;

/// Clock skew allowed between the edge that checked `nbf`/`exp` and this aggregator.
pub const ACTION_TOKEN_LEEWAY_SECS: i64 = 5;
/// The largest body read before checking the signature; anything real is far smaller.
const MAX_SIGNED_BODY: usize = 64 * 1024;

fn count(status: &'static str) {
    metrics::counter!("score_updates_total", "status" => status).increment(1);
}

fn validation(result: &'static str) {
    metrics::counter!("action_token_validations_total", "result" => result).increment(1);
}

pub async fn internal_scores(
    State(state): State<AppState>,
    req: Request,
) -> Result<Json<ScoreResponse>> {
    let outcome = handle(&state, req).await;
    if let Err(e) = &outcome {
        count(match e.error_code() {
            ErrorCode::ActionTokenReplayed => "replayed",
            ErrorCode::UpstreamUnavailable | ErrorCode::Overloaded | ErrorCode::InternalError => {
                "error"
            }
            _ => "rejected",
        });
    } else {
        count("applied");
    }
    outcome
}

async fn handle(state: &AppState, req: Request) -> Result<Json<ScoreResponse>> {
    let headers = req.headers().clone();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(128)
        .collect::<String>();
    let body = read_body(req, MAX_SIGNED_BODY).await?;

    let sig = headers
        .get(edge_signature::HEADER)
        .and_then(|v| v.to_str().ok());
    edge_signature::verify_header(
        &state.config.edge_keys,
        sig,
        &method,
        &path,
        &body,
        now_secs(),
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "edge signature refused");
        AppError::code(ErrorCode::EdgeSignatureInvalid)
    })?;

    let session = verify_session(state, &headers)?;
    require_json(&headers)?;
    let fwd: ForwardedScore = parse_json(&body)?;

    let claims = state
        .actions
        .verify(
            &fwd.action_token,
            &session.player_id,
            now_secs(),
            ACTION_TOKEN_LEEWAY_SECS,
        )
        .map_err(|e| {
            validation(e.metric_label());
            tracing::warn!(reason = %e, userId = %session.player_id, "action token rejected");
            let err = AppError::code(e.code());
            match e {
                scoreboard_protocol::action::ActionTokenError::NotYetValid { retry_after } => {
                    err.retry_after(retry_after as u64)
                }
                _ => err,
            }
        })?;

    let (reply, rx) = oneshot::channel();
    let submitted = state.applier.try_submit(ApplyRequest {
        claims,
        session_jti: session.jti,
        edge_region: fwd.edge_region.chars().take(64).collect(),
        request_id,
        reply,
    });
    match submitted {
        Ok(()) => {}
        Err(SubmitError::QueueFull) => {
            return Err(AppError::code(ErrorCode::Overloaded).retry_after(1));
        }
        Err(SubmitError::ShuttingDown) => {
            return Err(AppError::code(ErrorCode::UpstreamUnavailable).retry_after(1));
        }
    }
    let outcome = rx.await.unwrap_or(Outcome::Unavailable);
    match outcome {
        Outcome::Applied {
            score,
            rank,
            version,
        } => {
            validation("valid");
            Ok(Json(ScoreResponse {
                player_id: session.player_id,
                score,
                rank,
                applied: true,
                leaderboard_version: version,
            }))
        }
        Outcome::Replayed { score } => {
            validation("replay");
            Err(AppError::Client {
                code: ErrorCode::ActionTokenReplayed,
                message: ErrorCode::ActionTokenReplayed.default_message().to_owned(),
                retry_after_secs: None,
                score: Some(score),
            })
        }
        Outcome::Banned => Err(AppError::code(ErrorCode::PlayerBanned)),
        Outcome::Unauthenticated => Err(AppError::code(ErrorCode::Unauthenticated)),
        Outcome::OutOfRange => Err(AppError::with_message(
            ErrorCode::BadRequest,
            "This update would take the score beyond the supported range.",
        )),
        Outcome::Unavailable => Err(AppError::code(ErrorCode::UpstreamUnavailable).retry_after(1)),
    }
}
