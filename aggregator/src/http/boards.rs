//! `GET /api/leaderboard`: the current snapshot, answered from the shared bytes the board
//! keeps (the hottest read: a reference count, no serialisation, no copy).

use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

pub(crate) async fn leaderboard(State(state): State<AppState>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        state.board.current().body.clone(),
    )
        .into_response()
}
