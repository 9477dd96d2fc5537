//! Live snapshots: SSE for browsers (`/api/boards/{id}/stream`, and `/api/leaderboard/stream`,
//! the alias of `global` in its original form) and an edge-signed WebSocket for edge hubs
//! (`/internal/leaderboard/ws?board=`). All read the board's `watch` channel, so a slow reader
//! only ever has the newest snapshot waiting, never a queue.

use super::boards::public_board;
use super::extract::{EdgeSigned, Params};
use crate::board::{Board, Frame};
use crate::error::AppError;
use crate::state::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use scoreboard_protocol::defaults::SSE_RETRY;
use scoreboard_protocol::http::WEBSOCKET_UPGRADE_NEEDED;
use scoreboard_protocol::{sse, ErrorCode};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio_stream::wrappers::WatchStream;

#[derive(Debug, Deserialize)]
pub(crate) struct StreamQuery {
    last_event_id: Option<String>,
}

/// Decrements a connection gauge when the stream it belongs to is dropped.
struct Slot {
    state: AppState,
    ws: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.ws {
            let n = self.state.ws_subscribers.fetch_sub(1, Ordering::Relaxed) - 1;
            metrics::gauge!("ws_subscribers_active").set(n as f64);
        } else {
            let n = self.state.sse_clients.fetch_sub(1, Ordering::Relaxed) - 1;
            metrics::gauge!("sse_connections_active").set(n as f64);
        }
    }
}

fn event(frame: &Frame, alias: bool) -> Event {
    Event::default()
        .id(frame.event_id())
        .event(sse::SNAPSHOT_EVENT)
        .data(frame.json_for(alias))
}

/// Snapshots from the board: the current one unless the client already has it (its last
/// event id is the current one), then every change; ends when the instance shuts down.
fn frames(
    state: &AppState,
    board: &Board,
    last_seen: Option<String>,
) -> impl Stream<Item = Arc<Frame>> + Send + 'static {
    let mut rx = board.subscribe();
    let current = rx.borrow_and_update().clone();
    let first = (last_seen.as_deref() != Some(current.event_id().as_str())).then_some(current);
    let mut shutdown = state.shutdown.clone();
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    futures_util::stream::iter(first)
        .chain(WatchStream::from_changes(rx))
        .take_until(Box::pin(stop))
}

/// `GET /api/leaderboard/stream`: the `global` board in the alias form.
pub(crate) async fn sse(
    State(state): State<AppState>,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> Response {
    let board = state.boards.global();
    serve_sse(state, board, true, &headers, q)
}

/// `GET /api/boards/{id}/stream`.
pub(crate) async fn board_sse(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> Response {
    match public_board(&state, &id).await {
        Ok(live) => serve_sse(state, live.board, false, &headers, q),
        Err(e) => e.into_response(),
    }
}

fn serve_sse(
    state: AppState,
    board: Board,
    alias: bool,
    headers: &HeaderMap,
    q: StreamQuery,
) -> Response {
    let n = state.sse_clients.fetch_add(1, Ordering::Relaxed) + 1;
    let slot = Slot {
        state: state.clone(),
        ws: false,
    };
    if n > state.config.sse_max_clients {
        drop(slot);
        return AppError::with_message(
            ErrorCode::Overloaded,
            "Too many live streams on this instance; retry later.",
        )
        .retry_after(5)
        .into_response();
    }
    metrics::gauge!("sse_connections_active").set(n as f64);
    let last_seen = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.last_event_id)
        .map(|v| v.trim().to_owned());
    let retry = futures_util::stream::once(async {
        Ok::<_, Infallible>(Event::default().retry(SSE_RETRY))
    });
    let updates = frames(&state, &board, last_seen).map(move |f| {
        // The slot lives as long as the stream.
        let _ = &slot;
        Ok::<_, Infallible>(event(&f, alias))
    });
    Sse::new(retry.chain(updates))
        .keep_alive(
            KeepAlive::new()
                .interval(state.config.shared.sse_ping_interval)
                .text("ping"),
        )
        .into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct WsQuery {
    since: Option<i64>,
    /// The board; without it, `global` in the alias form (what hubs from before many boards
    /// ask for).
    board: Option<String>,
}

pub(crate) async fn ws(
    State(state): State<AppState>,
    Params(q): Params<WsQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    signed: Result<EdgeSigned, AppError>,
) -> Response {
    if let Err(refused) = signed {
        return refused.into_response();
    }
    let Ok(upgrade) = upgrade else {
        return AppError::with_message(ErrorCode::BadRequest, WEBSOCKET_UPGRADE_NEEDED)
            .into_response();
    };
    let (board, alias) = match q.board.as_deref() {
        None => (state.boards.global(), true),
        Some(id) => match public_board(&state, id).await {
            Ok(live) => (live.board, false),
            Err(e) => return e.into_response(),
        },
    };
    let n = state.ws_subscribers.fetch_add(1, Ordering::Relaxed) + 1;
    metrics::gauge!("ws_subscribers_active").set(n as f64);
    let slot = Slot {
        state: state.clone(),
        ws: true,
    };
    // Always start with the current snapshot, as DESIGN.md says; `since` only lets a hub
    // skip it when it already has that version.
    let since = q.since.filter(|v| *v > 0).map(|v| v.to_string());
    upgrade.on_upgrade(move |socket| serve_ws(socket, state, board, alias, since, slot))
}

async fn serve_ws(
    mut socket: WebSocket,
    state: AppState,
    board: Board,
    alias: bool,
    since: Option<String>,
    _slot: Slot,
) {
    let mut frames = Box::pin(frames(&state, &board, since));
    loop {
        tokio::select! {
            next = frames.next() => match next {
                Some(f) => {
                    if socket.send(Message::Text(f.json_for(alias).to_owned().into())).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            incoming = socket.recv() => match incoming {
                // Pings are answered by axum; anything else from the hub is ignored.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
