//! The aggregator's one error type and its one conversion to a response: always the
//! documented body, never internal text; 5xx causes travel in the response extensions so the
//! request-logging middleware can log them with their whole chain.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use scoreboard_protocol::snapshot::Standing;
use scoreboard_protocol::{ErrorBody, ErrorCode};
use std::sync::Arc;

pub(crate) type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// The caller's fault (any 4xx), or a deliberate 503, with a sentence for them.
    #[error("{code}: {message}")]
    Client {
        code: ErrorCode,
        message: String,
        retry_after_secs: Option<u64>,
        /// A replay's standings on the token's boards.
        boards: Option<Vec<Standing>>,
    },
    /// Ours: 500 with a generic body; the cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub(crate) fn code(code: ErrorCode) -> Self {
        Self::Client {
            code,
            message: code.default_message().to_owned(),
            retry_after_secs: None,
            boards: None,
        }
    }

    pub(crate) fn with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Client {
            code,
            message: message.into(),
            retry_after_secs: None,
            boards: None,
        }
    }

    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        if let Self::Client {
            retry_after_secs, ..
        } = &mut self
        {
            *retry_after_secs = Some(secs.max(1));
        }
        self
    }

    /// Adds where the player stands on the token's boards (a replay's answer).
    pub(crate) fn with_boards(mut self, standings: Vec<Standing>) -> Self {
        if let Self::Client { boards, .. } = &mut self {
            *boards = Some(standings);
        }
        self
    }

    pub(crate) fn error_code(&self) -> ErrorCode {
        match self {
            Self::Client { code, .. } => *code,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }
}

/// An update that could not even be queued: `503`, worth retrying in a moment, and nothing
/// of it was applied.
impl From<crate::apply::SubmitError> for AppError {
    fn from(e: crate::apply::SubmitError) -> Self {
        let code = match e {
            crate::apply::SubmitError::QueueFull | crate::apply::SubmitError::Stalled => {
                ErrorCode::Overloaded
            }
            crate::apply::SubmitError::ShuttingDown => ErrorCode::UpstreamUnavailable,
        };
        Self::code(code).retry_after(1)
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database error"))
    }
}

/// The cause of a 500, for the logging middleware.
#[derive(Debug, Clone)]
pub(crate) struct InternalCause(pub(crate) Arc<anyhow::Error>);

/// Builds the documented error response for `code`.
pub(crate) fn error_response(body: ErrorBody, retry_after: Option<u64>) -> Response {
    let status =
        StatusCode::from_u16(body.error.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::Client {
                code,
                message,
                retry_after_secs,
                boards,
            } => {
                let mut body = ErrorBody::new(code, message);
                if let Some(boards) = boards {
                    body = body.with_boards(boards);
                }
                error_response(body, retry_after_secs)
            }
            Self::Internal(err) => {
                let mut resp = error_response(ErrorBody::from_code(ErrorCode::InternalError), None);
                resp.extensions_mut().insert(InternalCause(Arc::new(err)));
                resp
            }
        }
    }
}
