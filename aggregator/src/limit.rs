//! Per-IP rate limit of the sign-in routes (`RATE_LIMIT_IP` per `RATE_LIMIT_WINDOW_MS`),
//! with the same GCRA the edge uses. The edge limits per IP before anything reaches us; this
//! protects the aggregator's routes when they are called directly.

use crate::error::AppError;
use crate::state::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scoreboard_protocol::gcra::{Decision, GcraState, Quota};
use scoreboard_protocol::ErrorCode;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

/// Whether the request carries a valid edge signature; the body is read (bounded) to check
/// it and put back.
async fn edge_signed(state: &AppState, req: Request) -> (Request, bool) {
    if !req
        .headers()
        .contains_key(scoreboard_protocol::edge_signature::HEADER)
    {
        return (req, false);
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (Request::from_parts(parts, axum::body::Body::empty()), false);
    };
    let header = parts
        .headers
        .get(scoreboard_protocol::edge_signature::HEADER)
        .and_then(|v| v.to_str().ok());
    let ok = scoreboard_protocol::edge_signature::verify_header(
        &state.config.edge_keys,
        header,
        parts.method.as_str(),
        parts.uri.path(),
        &bytes,
        crate::extract::now_secs(),
    )
    .is_ok();
    (
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        ok,
    )
}

/// Keys kept before idle ones are dropped, so a flood of addresses cannot grow memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct IpLimiter {
    quota: Quota,
    /// A std Mutex: held for a map lookup only, never across an await.
    buckets: Mutex<HashMap<IpAddr, GcraState>>,
}

impl IpLimiter {
    pub fn new(quota: Quota) -> Self {
        Self {
            quota,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` to admit, `Err(retry_after_ms)` to refuse.
    pub fn check(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().expect("not poisoned");
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, s| s.idle_after_ms() > now_ms);
        }
        let state = buckets.get(&ip).copied().unwrap_or_default();
        match state.check(&self.quota, now_ms) {
            Decision::Allow { state, .. } => {
                buckets.insert(ip, state);
                Ok(())
            }
            Decision::Deny { retry_after_ms } => Err(retry_after_ms),
        }
    }
}

pub async fn per_ip(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // Requests our edge signed were limited per client IP there; here they would all share the
    // edge's address, so they pass.
    let (req, edge_signed) = edge_signed(&state, req).await;
    if edge_signed {
        return next.run(req).await;
    }
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip {
        let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
        if let Err(retry_ms) = state.ip_limiter.check(ip, now_ms) {
            metrics::counter!("rate_limit_hits_total", "endpoint" => "auth").increment(1);
            tracing::warn!(endpoint = "auth", "rate limit hit");
            return AppError::code(ErrorCode::RateLimited)
                .retry_after(retry_ms.div_ceil(1000))
                .into_response();
        }
    }
    next.run(req).await
}
