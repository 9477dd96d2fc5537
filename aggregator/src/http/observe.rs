//! The middleware every request passes: it settles the request id, opens the span every log
//! line of the request carries (`requestId`, later `userId`), applies the timeout, writes the
//! one "request completed" line and the RED metrics (labelled by the matched route, never the
//! raw path), and says `connection: close` when it answers before the body was read.

use super::extract::RequestId;
use crate::error::{AppError, InternalCause};
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as _, Frame, SizeHint};
use scoreboard_protocol::http::{request_id_from_client, REQUEST_ID_HEADER};
use scoreboard_protocol::ErrorCode;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tracing::Instrument;

/// The client's request id when it is safe to log and echo, else a fresh one.
fn settle_request_id(req: &Request) -> String {
    let given = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok());
    request_id_from_client(given)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Request id, span, timeout, one log line and the RED metrics for every request.
pub(crate) async fn observe(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = settle_request_id(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span =
        tracing::info_span!("request", requestId = %request_id, userId = tracing::field::Empty);
    let (req, body_read) = track_body(req);
    let mut resp = async {
        tracing::debug!(method = %method, path = %route, "request received");
        match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
            Ok(r) => r,
            // Not a 4xx: the handler may have queued an update that commits later, and a 4xx
            // reads as a refusal. 503 says "not known yet": the same token, retried, answers
            // with its real outcome (409 with the score if it counted).
            Err(_) => AppError::code(ErrorCode::UpstreamUnavailable)
                .retry_after(1)
                .into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let (m, p) = (method.to_string(), route.clone());
    metrics::counter!("http_requests_total", "method" => m.clone(), "path" => p.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => m, "path" => p)
        .record(elapsed);
    span.in_scope(|| {
        if let Some(cause) = resp.extensions_mut().remove::<InternalCause>() {
            tracing::error!(error = format!("{:#}", cause.0), path = %route, "request failed");
        }
        tracing::info!(method = %method, path = %route, status, duration_ms = elapsed * 1000.0, "request completed");
    });
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    if body_read.is_some_and(|read| !read.load(Ordering::Relaxed)) {
        // hyper closes a connection whose request body was left unread; a keep-alive client
        // must be told, or its next request on it fails.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Wraps a request that has a body so it is known afterwards whether the body was read to
/// its end; `None` for a request without one.
fn track_body(req: Request) -> (Request, Option<Arc<AtomicBool>>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let read = Arc::new(AtomicBool::new(false));
    let (parts, inner) = req.into_parts();
    let body = Body::new(Tracked {
        inner,
        read: read.clone(),
    });
    (Request::from_parts(parts, body), Some(read))
}

/// A request body that notes when it was read to its end.
struct Tracked {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
