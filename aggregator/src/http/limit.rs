//! Per-IP rate limit of the sign-in routes (`RATE_LIMIT_IP` per `RATE_LIMIT_WINDOW_MS`).
//! The edge limits per IP before anything reaches us; this protects the aggregator's routes
//! when they are called directly.

use super::extract::is_edge_signed;
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scoreboard_protocol::ErrorCode;
use std::net::SocketAddr;

pub(crate) async fn per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Requests our edge signed were limited per client IP there; here they would all share the
    // edge's address, so they pass.
    let (req, edge_signed) = is_edge_signed(&state, req).await;
    if edge_signed {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip {
        if let Err(retry_ms) = state.ip_limiter.check(ip, crate::clock::now_millis()) {
            metrics::counter!("rate_limit_hits_total", "endpoint" => "auth").increment(1);
            tracing::warn!(endpoint = "auth", "rate limit hit");
            return AppError::code(ErrorCode::RateLimited)
                .retry_after(retry_ms.div_ceil(1000))
                .into_response();
        }
    }
    next.run(req).await
}
