//! The router and the layers around it: request ids, one log line and metrics per request
//! (labelled by the matched route, never the raw path), timeouts, panics and unknown routes
//! all answered in our error shape, CORS and security headers.

use crate::error::{error_response, AppError, InternalCause};
use crate::state::AppState;
use crate::{admin, auth, reads, scores, stream};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use scoreboard_protocol::{ErrorBody, ErrorCode};
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

pub fn router(state: AppState) -> Router {
    let sign_in = Router::new()
        .route("/api/auth/guest", post(auth::guest))
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::limit::per_ip,
        ));
    let routes = Router::new()
        .merge(sign_in)
        .route("/api/leaderboard", get(reads::leaderboard))
        .route("/api/leaderboard/stream", get(stream::sse))
        .route("/api/players/{id}", get(reads::player))
        .route("/internal/scores", post(scores::internal_scores))
        .route("/internal/leaderboard/ws", get(stream::ws))
        .route("/admin/players/{id}/ban", post(admin::ban))
        .route("/admin/players/{id}/unban", post(admin::unban))
        .route("/admin/players/{id}/adjust", post(admin::adjust))
        .route("/admin/players/{id}/events", get(admin::events))
        .route("/admin/leaderboard/rebuild", post(admin::rebuild))
        .route("/health", get(reads::health))
        .route("/health/live", get(reads::live))
        .route("/health/ready", get(reads::ready))
        .fallback(|| async { AppError::code(ErrorCode::NotFound) })
        .method_not_allowed_fallback(|| async { AppError::code(ErrorCode::MethodNotAllowed) });

    let cors = match &state.config.cors_origin {
        Some(origin) if origin != "*" => HeaderValue::from_str(origin)
            .map(AllowOrigin::exact)
            .unwrap_or_else(|_| AllowOrigin::list([])),
        Some(_) => AllowOrigin::any(),
        None => AllowOrigin::list([]),
    };
    routes
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("panic while handling a request");
                error_response(ErrorBody::from_code(ErrorCode::InternalError), None)
            },
        ))
        .layer(
            CorsLayer::new()
                .allow_origin(cors)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    HeaderName::from_static("last-event-id"),
                ]),
        )
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ))
        .with_state(state)
}

/// Request id, timeout, one log line and the RED metrics for every request.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", requestId = %request_id);
    let _enter = span.enter();
    tracing::debug!(requestId = %request_id, method = %method, path = %route, "request received");
    drop(_enter);

    let mut resp = match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => AppError::code(ErrorCode::RequestTimeout).into_response(),
    };
    let status = resp.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("http_requests_total", "method" => method.to_string(), "path" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.to_string(), "path" => route.clone()).record(elapsed);
    if let Some(cause) = resp.extensions_mut().remove::<InternalCause>() {
        tracing::error!(requestId = %request_id, error = format!("{:#}", cause.0), path = %route, "request failed");
    }
    tracing::info!(
        requestId = %request_id,
        method = %method,
        path = %route,
        status,
        duration_ms = elapsed * 1000.0,
        "request completed"
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
