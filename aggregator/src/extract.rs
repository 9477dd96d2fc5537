//! Extractors that turn bad input into our error shape: JSON bodies (415/413/400) and bearer
//! sessions (401).

use crate::error::AppError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap};
use scoreboard_protocol::error::MAX_BODY_BYTES;
use scoreboard_protocol::session::Session;
use scoreboard_protocol::ErrorCode;
use serde::de::DeserializeOwned;

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Reads the whole body, refusing more than `limit` bytes with `413`.
pub async fn read_body(req: Request, limit: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| AppError::code(ErrorCode::PayloadTooLarge))
}

/// `415` unless the content type is `application/json` (parameters such as `charset`
/// allowed).
pub fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    let ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(AppError::code(ErrorCode::UnsupportedMediaType))
    }
}

/// Parses a JSON body, with a message that names what is wrong but echoes nothing back.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(AppError::code(ErrorCode::PayloadTooLarge));
    }
    if !scoreboard_protocol::error::body_is_object(bytes) {
        return Err(AppError::with_message(
            ErrorCode::BadRequest,
            "The body must be a JSON object.",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "The body is not valid JSON."
            }
            _ => "The body does not have the expected fields.",
        };
        AppError::with_message(ErrorCode::BadRequest, what)
    })
}

/// A JSON body of at most 4 KiB, as `application/json`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, _: &S) -> Result<Self, AppError> {
        require_json(req.headers())?;
        let bytes = read_body(req, MAX_BODY_BYTES).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The bearer token of the `Authorization` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Verifies the session in `headers` (signature and times; revocation is checked where it
/// matters, against the database).
pub fn verify_session(state: &AppState, headers: &HeaderMap) -> Result<Session, AppError> {
    let token = bearer(headers).ok_or_else(|| AppError::code(ErrorCode::Unauthenticated))?;
    state
        .config
        .session_verifier
        .verify(token, now_secs())
        .map_err(|e| {
            tracing::warn!(reason = %e, "auth failed");
            AppError::code(ErrorCode::Unauthenticated)
        })
}

/// A verified session.
#[derive(Debug)]
pub struct Authenticated(pub Session);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        verify_session(state, &parts.headers).map(Authenticated)
    }
}
