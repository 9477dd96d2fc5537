//! The HTTP surface: one route table, and the layers around it (request ids, logs, metrics,
//! timeout, panics and unknown routes answered in our error shape, CORS, security headers).
//!
//! | module | routes |
//! | --- | --- |
//! | [`auth`] | guest, register, login, logout (per-IP limited by [`limit`]) |
//! | [`scores`] | `POST /internal/scores` and `/internal/scores/check`, edge-signed |
//! | [`boards`], [`players`] | the public reads: boards, snapshots, pages, around-me, standings |
//! | [`stream`] | SSE for browsers, the edge-signed WebSocket for edge hubs |
//! | [`admin`] | `/admin/`: ban, unban, adjust, rebuild, a player's events |
//! | [`board_admin`] | `/admin/boards`: create, change, hide and list boards; close a period now |
//! | [`player_admin`] | `PUT /admin/players/{id}`: players under the game's own account ids |
//! | [`health`] | `/health`, `/health/live`, `/health/ready` |
//! | [`extract`], [`observe`] | extractors in our error shape; the per-request middleware |

mod admin;
mod auth;
mod board_admin;
mod boards;
mod extract;
mod health;
mod limit;
mod observe;
mod player_admin;
mod players;
mod scores;
mod stream;

use crate::error::{error_response, AppError};
use crate::state::AppState;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware;
use axum::routing::{get, post, put};
use axum::Router;
use scoreboard_protocol::http::{
    INTERNAL_LEADERBOARD_WS_PATH, INTERNAL_SCORES_CHECK_PATH, INTERNAL_SCORES_PATH,
};
use scoreboard_protocol::{ErrorBody, ErrorCode};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

/// The aggregator's routes, once.
fn routes(state: &AppState) -> Router<AppState> {
    let sign_in = Router::new()
        .route("/api/auth/guest", post(auth::guest))
        .route("/api/auth/register", post(auth::register))
        .route("/api/auth/login", post(auth::login))
        .route("/api/auth/logout", post(auth::logout))
        .route_layer(middleware::from_fn_with_state(state.clone(), limit::per_ip));
    Router::new()
        .merge(sign_in)
        .route("/api/leaderboard", get(boards::leaderboard))
        .route("/api/leaderboard/stream", get(stream::sse))
        .route("/api/players/{id}", get(players::player))
        .route("/api/boards", get(boards::list))
        .route("/api/boards/{id}", get(boards::snapshot))
        .route("/api/boards/{id}/stream", get(stream::board_sse))
        .route("/api/boards/{id}/entries", get(boards::entries))
        .route("/api/boards/{id}/periods", get(boards::periods))
        .route(
            "/api/boards/{id}/players/{player}",
            get(players::board_player),
        )
        .route(INTERNAL_SCORES_PATH, post(scores::internal_scores))
        .route(
            INTERNAL_SCORES_CHECK_PATH,
            post(scores::internal_scores_check),
        )
        .route(INTERNAL_LEADERBOARD_WS_PATH, get(stream::ws))
        .route("/admin/players/{id}", put(player_admin::put))
        .route("/admin/players/{id}/ban", post(admin::ban))
        .route("/admin/players/{id}/unban", post(admin::unban))
        .route("/admin/players/{id}/adjust", post(admin::adjust))
        .route("/admin/players/{id}/events", get(admin::events))
        .route("/admin/leaderboard/rebuild", post(admin::rebuild))
        .route("/admin/boards", get(board_admin::list))
        .route("/admin/boards/{id}", put(board_admin::put))
        .route(
            "/admin/boards/{id}/close-period",
            post(board_admin::close_period),
        )
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .fallback(|| async { AppError::code(ErrorCode::NotFound) })
        .method_not_allowed_fallback(|| async { AppError::code(ErrorCode::MethodNotAllowed) })
}

fn cors(origin: Option<&str>) -> CorsLayer {
    let allowed = match origin {
        Some("*") => AllowOrigin::any(),
        Some(origin) => HeaderValue::from_str(origin)
            .map(AllowOrigin::exact)
            .unwrap_or_else(|_| AllowOrigin::list([])),
        None => AllowOrigin::list([]),
    };
    CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::GET, Method::POST, Method::PUT])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static("last-event-id"),
        ])
}

pub(crate) fn router(state: AppState) -> Router {
    let cors = cors(state.config.shared.cors_origin.as_deref());
    routes(&state)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("panic while handling a request");
                error_response(ErrorBody::from_code(ErrorCode::InternalError), None)
            },
        ))
        .layer(cors)
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
