//! The edge's side of the hubs: which of this location's `LeaderboardHub`s serves a client
//! (the board's root hub, or the relay it names when it is full), and a live hub's snapshot.

use crate::hub::{Role, RELAY_HEADER};
use crate::Cx;
use scoreboard_protocol::http::WEBSOCKET_UPGRADE_NEEDED;
use scoreboard_protocol::{BoardId, ErrorBody, ErrorCode};
use worker::*;

/// The hub named `<colo>:<board>:<role>` (`local` under `wrangler dev` without a location).
pub(crate) fn hub_stub(env: &Env, colo: &str, board: &BoardId, role: &Role) -> Result<Stub> {
    env.durable_object("LEADERBOARD_HUB")?
        .id_from_name(&format!("{colo}:{board}:{}", role.suffix()))?
        .get_stub()
}

fn hub_url(route: &str, board: &BoardId, alias: bool, colo: &str, role: &Role) -> String {
    let relay = match role {
        Role::Root => String::new(),
        Role::Relay(k) => format!("&relay={k}"),
    };
    format!(
        "http://hub/{route}?board={board}&alias={}&colo={colo}{relay}",
        u8::from(alias)
    )
}

fn location(req: &Request) -> String {
    crate::colo(req).unwrap_or_else(|| "local".into())
}

/// This location's root hub's snapshot of `board`, when it has a live one; `alias` for the
/// original form of `global`.
pub(crate) async fn live_snapshot(
    req: &Request,
    env: &Env,
    board: &BoardId,
    alias: bool,
) -> Option<Response> {
    let colo = location(req);
    let hub = hub_stub(env, &colo, board, &Role::Root).ok()?;
    let url = hub_url("snapshot", board, alias, &colo, &Role::Root);
    let resp = hub.fetch_with_str(&url).await.ok()?;
    (resp.status_code() == 200).then_some(resp)
}

/// How a client follows a board: SSE or a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    Sse,
    WebSocket,
}

/// A board's live stream, served by this location's root hub of the board or by the relay it
/// names. A WebSocket route asked without an upgrade is a `400` in our shape (as at the
/// aggregator).
pub(crate) async fn follow(
    req: &Request,
    cx: &Cx<'_>,
    board: &BoardId,
    alias: bool,
    how: Follow,
) -> Result<Response> {
    let upgrade = req.headers().get("upgrade")?;
    let is_upgrade = upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if how == Follow::WebSocket && !is_upgrade {
        let body = ErrorBody::new(ErrorCode::BadRequest, WEBSOCKET_UPGRADE_NEEDED);
        return Ok(crate::respond::json_error_body(&body, None));
    }
    let last_seen = req.headers().get("last-event-id")?.or_else(|| {
        req.url().ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "last_event_id")
                .map(|(_, v)| v.into_owned())
        })
    });
    let colo = location(req);
    let answer = attach(
        cx,
        &colo,
        board,
        alias,
        how,
        last_seen.as_deref(),
        &Role::Root,
    )
    .await?;
    if answer.status_code() != 307 {
        return Ok(answer);
    }
    // The root is full: the relay it names takes the client.
    let relay = answer
        .headers()
        .get(RELAY_HEADER)?
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| Error::RustError("the root hub named no relay".into()))?;
    let role = Role::Relay(relay);
    attach(cx, &colo, board, alias, how, last_seen.as_deref(), &role).await
}

/// Asks the hub `role` to take a client.
async fn attach(
    cx: &Cx<'_>,
    colo: &str,
    board: &BoardId,
    alias: bool,
    how: Follow,
    last_seen: Option<&str>,
    role: &Role,
) -> Result<Response> {
    let headers = Headers::new();
    if let Some(id) = last_seen {
        headers.set("last-event-id", id)?;
    }
    let route = match how {
        Follow::Sse => "sse",
        Follow::WebSocket => {
            headers.set("upgrade", "websocket")?;
            "ws"
        }
    };
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let url = hub_url(route, board, alias, colo, role);
    hub_stub(cx.env, colo, board, role)?
        .fetch_with_request(Request::new_with_init(&url, &init)?)
        .await
}
