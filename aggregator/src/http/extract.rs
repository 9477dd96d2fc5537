//! Extractors that turn bad input into our error shape before a handler runs: JSON bodies
//! (415/413/400), bearer sessions (401), the admin key (401), edge-signed requests (401), and
//! the request id the observing middleware settled on.

use crate::clock::now_secs;
use crate::error::AppError;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, request::Parts, HeaderMap};
use scoreboard_protocol::http::{self as http_rules, BodyError, MAX_BODY_BYTES};
use scoreboard_protocol::session::Session;
use scoreboard_protocol::{edge_signature, ErrorCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use subtle::ConstantTimeEq;

/// Reads the whole body, refusing more than `limit` bytes with `413`.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| AppError::code(ErrorCode::PayloadTooLarge))
}

/// `415` unless the content type is `application/json` (parameters such as `charset`
/// allowed).
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), AppError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if http_rules::is_json_content_type(content_type) {
        Ok(())
    } else {
        Err(refused(BodyError::NotJson))
    }
}

fn refused(e: BodyError) -> AppError {
    AppError::with_message(e.code(), e.message())
}

/// Parses a JSON body by the rules both services share, with a message that names what is
/// wrong but echoes nothing back.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    http_rules::parse_json_bytes(bytes).map_err(refused)
}

/// The query string, deserialized; a malformed one is `400` in our shape.
#[derive(Debug)]
pub(crate) struct Params<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, AppError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|_| {
                AppError::with_message(ErrorCode::BadRequest, "The query string is malformed.")
            })
    }
}

/// A JSON body of at most 4 KiB, as `application/json`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, _: &S) -> Result<Self, AppError> {
        require_json(req.headers())?;
        let bytes = read_body(req.into_body(), MAX_BODY_BYTES).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The bearer token of the `Authorization` header, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    http_rules::bearer_token(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

/// Verifies the session in `headers` (signature and times; revocation is checked where it
/// matters, against the database), and names its player in the request's log lines.
pub(crate) fn verify_session(state: &AppState, headers: &HeaderMap) -> Result<Session, AppError> {
    let token = bearer(headers).ok_or_else(|| AppError::code(ErrorCode::Unauthenticated))?;
    let session = state
        .config
        .session_verifier
        .verify(token, now_secs())
        .map_err(|e| {
            tracing::warn!(reason = %e, "auth failed");
            AppError::code(ErrorCode::Unauthenticated)
        })?;
    tracing::Span::current().record("userId", session.player_id.as_str());
    Ok(session)
}

/// A verified session.
#[derive(Debug)]
pub(crate) struct Authenticated(pub(crate) Session);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        verify_session(state, &parts.headers).map(Authenticated)
    }
}

/// Proof that the request carried the admin key (compared in constant time).
#[derive(Debug)]
pub(crate) struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let given = bearer(&parts.headers).unwrap_or_default().as_bytes();
        let wanted = state.config.admin_api_key.expose_secret().as_bytes();
        if bool::from(given.ct_eq(wanted)) {
            Ok(Admin)
        } else {
            tracing::warn!("auth failed: admin key missing or wrong");
            Err(AppError::with_message(
                ErrorCode::Unauthenticated,
                "The admin routes need Authorization: Bearer <ADMIN_API_KEY>; the key is missing or wrong.",
            ))
        }
    }
}

/// The request id [`observe`](super::observe) settled on: the client's when it was safe,
/// else a fresh one.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(String::new())))
    }
}

/// The largest body read before checking an edge signature; anything real is far smaller.
const MAX_SIGNED_BODY: usize = 64 * 1024;

/// Checks the edge signature of a request whose body was read: the header form for requests
/// with a body, the query form (`t`, `sig`) for the WebSocket upgrade.
pub(crate) fn check_edge_signature(
    state: &AppState,
    parts: &Parts,
    body: &[u8],
) -> Result<(), edge_signature::EdgeSignatureError> {
    let keys = &state.config.edge_keys;
    let (method, path) = (parts.method.as_str(), parts.uri.path());
    if let Some(header) = parts.headers.get(edge_signature::HEADER) {
        return edge_signature::verify_header(
            keys,
            header.to_str().ok(),
            method,
            path,
            body,
            now_secs(),
        );
    }
    let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    edge_signature::verify_query(
        keys,
        query.get("t").map(String::as_str),
        query.get("sig").map(String::as_str),
        method,
        path,
        body,
        now_secs(),
    )
}

/// A request our edge signed: its headers and body, read (bounded) and checked.
#[derive(Debug)]
pub(crate) struct EdgeSigned {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl FromRequest<AppState> for EdgeSigned {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (parts, body) = req.into_parts();
        let body = read_body(body, MAX_SIGNED_BODY).await?;
        check_edge_signature(state, &parts, &body).map_err(|e| {
            tracing::warn!(reason = %e, "edge signature refused");
            AppError::code(ErrorCode::EdgeSignatureInvalid)
        })?;
        Ok(EdgeSigned {
            headers: parts.headers,
            body,
        })
    }
}

/// Whether our edge signed `req`; the body is read (bounded) to check it and put back. A
/// request without the header is passed on untouched.
pub(crate) async fn is_edge_signed(state: &AppState, req: Request) -> (Request, bool) {
    if !req.headers().contains_key(edge_signature::HEADER) {
        return (req, false);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_SIGNED_BODY).await else {
        return (Request::from_parts(parts, Body::empty()), false);
    };
    let signed = check_edge_signature(state, &parts, &bytes).is_ok();
    (Request::from_parts(parts, Body::from(bytes)), signed)
}
