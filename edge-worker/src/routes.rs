//! The one route table of the edge: each route's method, path, the name it is logged and
//! measured under (never the raw path, which may carry ids), its handler and whether the
//! per-IP limit applies. Lookup, 404/405 and the per-IP limit all read this table.

use crate::follow::{self, Follow};
use crate::respond::json_error;
use crate::{boards, log, page, scores, upstream, Cx};
use scoreboard_protocol::{BoardId, ErrorCode};
use worker::{Method, Request, Response, Result};

/// What serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    /// The page and its assets, compiled in.
    Page,
    Health,
    ListActions,
    MintAction,
    RedeemScore,
    /// SSE of `global` in the original form, from this location's hub.
    Stream,
    /// `global` in the original form, from a live hub's snapshot, else forwarded.
    Leaderboard,
    /// SSE of the board in the path, from this location's hub of that board.
    BoardStream,
    /// A WebSocket of `global` in the original form, from this location's hub.
    Socket,
    /// A WebSocket of the board in the path, from this location's hub of that board.
    BoardSocket,
    /// The board's snapshot, from a live hub's, else forwarded.
    BoardSnapshot,
    /// Passed to the aggregator as it is (sign-in, player reads).
    Forward,
}

/// How a route's path is matched.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PathPattern {
    Exact(&'static str),
    /// The path starts with this and continues (`/api/players/{id}`).
    Prefix(&'static str),
    /// `/api/boards/{id}` followed by exactly this (`""`, `"/stream"`, ...).
    Board(&'static str),
    /// `/api/boards/{id}` followed by this and more (`"/players/"`).
    BoardPrefix(&'static str),
}

const BOARDS: &str = "/api/boards/";

/// The board id segment of `/api/boards/{id}...` and what follows it.
pub(crate) fn board_segment(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(BOARDS)?;
    let end = rest.find('/').unwrap_or(rest.len());
    let (id, tail) = rest.split_at(end);
    (!id.is_empty()).then_some((id, tail))
}

impl PathPattern {
    fn matches(self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => path == p,
            PathPattern::Prefix(p) => path.starts_with(p),
            PathPattern::Board(s) => board_segment(path).is_some_and(|(_, t)| t == s),
            PathPattern::BoardPrefix(s) => {
                board_segment(path).is_some_and(|(_, t)| t.len() > s.len() && t.starts_with(s))
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) path: PathPattern,
    /// The name in log lines and metrics.
    pub(crate) name: &'static str,
    pub(crate) handler: Handler,
    /// The writing routes count against the per-IP limit (binding `IP_LIMITER`).
    pub(crate) per_ip_limit: bool,
}

const fn route(
    method: Method,
    path: PathPattern,
    name: &'static str,
    handler: Handler,
    per_ip_limit: bool,
) -> Route {
    Route {
        method,
        path,
        name,
        handler,
        per_ip_limit,
    }
}

use Handler::*;
use Method::{Get, Post};
use PathPattern::{Board, BoardPrefix, Exact, Prefix};

/// Every route the edge serves (DESIGN.md, "Public API" and "Boards and periods").
pub(crate) static ROUTES: [Route; 22] = [
    route(Get, Exact("/"), "/", Page, false),
    route(Get, Exact("/assets/app.js"), "/assets/app.js", Page, false),
    route(
        Get,
        Exact("/assets/app.css"),
        "/assets/app.css",
        Page,
        false,
    ),
    route(Get, Exact("/health"), "/health", Health, false),
    route(
        Get,
        Exact("/api/actions"),
        "/api/actions",
        ListActions,
        false,
    ),
    route(
        Post,
        Exact("/api/actions"),
        "/api/actions",
        MintAction,
        true,
    ),
    route(Post, Exact("/api/scores"), "/api/scores", RedeemScore, true),
    route(
        Get,
        Exact("/api/leaderboard"),
        "/api/leaderboard",
        Leaderboard,
        false,
    ),
    route(
        Get,
        Exact("/api/leaderboard/stream"),
        "/api/leaderboard/stream",
        Stream,
        false,
    ),
    route(
        Get,
        Exact("/api/leaderboard/ws"),
        "/api/leaderboard/ws",
        Socket,
        false,
    ),
    route(
        Get,
        Prefix("/api/players/"),
        "/api/players/{id}",
        Forward,
        false,
    ),
    route(Get, Exact("/api/boards"), "/api/boards", Forward, false),
    route(Get, Board(""), "/api/boards/{id}", BoardSnapshot, false),
    route(
        Get,
        Board("/stream"),
        "/api/boards/{id}/stream",
        BoardStream,
        false,
    ),
    route(Get, Board("/ws"), "/api/boards/{id}/ws", BoardSocket, false),
    route(
        Get,
        Board("/entries"),
        "/api/boards/{id}/entries",
        Forward,
        false,
    ),
    route(
        Get,
        Board("/periods"),
        "/api/boards/{id}/periods",
        Forward,
        false,
    ),
    route(
        Get,
        BoardPrefix("/players/"),
        "/api/boards/{id}/players/{player}",
        Forward,
        false,
    ),
    route(
        Post,
        Exact("/api/auth/guest"),
        "/api/auth/guest",
        Forward,
        true,
    ),
    route(
        Post,
        Exact("/api/auth/register"),
        "/api/auth/register",
        Forward,
        true,
    ),
    route(
        Post,
        Exact("/api/auth/login"),
        "/api/auth/login",
        Forward,
        true,
    ),
    route(
        Post,
        Exact("/api/auth/logout"),
        "/api/auth/logout",
        Forward,
        true,
    ),
];

/// What the table says about a request.
#[derive(Debug)]
pub(crate) enum Lookup {
    Found(&'static Route),
    /// The path is served, not with this method: 405.
    WrongMethod,
    /// 404.
    NotFound,
}

impl Lookup {
    /// The name a request is logged under: unmatched ones share one, so a scan of random paths
    /// cannot grow the set of names.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Lookup::Found(r) => r.name,
            _ => "unmatched",
        }
    }
}

pub(crate) fn lookup(method: &Method, path: &str) -> Lookup {
    let mut path_known = false;
    for r in &ROUTES {
        if r.path.matches(path) {
            if r.method == *method {
                return Lookup::Found(r);
            }
            path_known = true;
        }
    }
    if path_known {
        Lookup::WrongMethod
    } else {
        Lookup::NotFound
    }
}

/// Answers a request: preflight, 404/405, the per-IP limit, then the route's handler.
pub(crate) async fn handle(req: &mut Request, cx: &Cx<'_>, found: &Lookup) -> Result<Response> {
    if req.method() == Method::Options {
        return Ok(worker::ResponseBuilder::new().with_status(204).empty());
    }
    let route = match found {
        Lookup::Found(r) => *r,
        Lookup::WrongMethod => return Ok(json_error(ErrorCode::MethodNotAllowed, None)),
        Lookup::NotFound => return Ok(json_error(ErrorCode::NotFound, None)),
    };
    if route.per_ip_limit {
        if let Some(refused) = per_ip_limit(req, cx).await {
            return Ok(refused);
        }
    }
    match route.handler {
        Page => {
            page::asset(route.name).unwrap_or_else(|| Ok(json_error(ErrorCode::NotFound, None)))
        }
        Health => upstream::health(cx).await,
        ListActions => page::list_actions(cx.config),
        MintAction => scores::mint(req, cx).await,
        RedeemScore => scores::redeem(req, cx).await,
        Stream => follow::follow(req, cx, &BoardId::global(), true, Follow::Sse).await,
        Socket => follow::follow(req, cx, &BoardId::global(), true, Follow::WebSocket).await,
        Leaderboard => match follow::live_snapshot(req, cx.env, &BoardId::global(), true).await {
            Some(r) => Ok(r),
            None => upstream::forward(req, cx).await,
        },
        BoardStream | BoardSocket => match known_board(req, cx).await {
            Ok(board) => {
                let how = match route.handler {
                    BoardSocket => Follow::WebSocket,
                    _ => Follow::Sse,
                };
                follow::follow(req, cx, &board, false, how).await
            }
            Err(refused) => Ok(refused),
        },
        // A query (`?period=`) asks for more than the hub's current snapshot.
        BoardSnapshot if req.url()?.query().is_some() => upstream::forward(req, cx).await,
        BoardSnapshot => match known_board(req, cx).await {
            Ok(board) => match follow::live_snapshot(req, cx.env, &board, false).await {
                Some(r) => Ok(r),
                None => upstream::forward(req, cx).await,
            },
            Err(refused) => Ok(refused),
        },
        Forward => upstream::forward(req, cx).await,
    }
}

/// The public board the path names, or the answer to give instead: `404 BOARD_NOT_FOUND`
/// for an id that is malformed or not on the aggregator's list, `503` when the aggregator
/// cannot say.
async fn known_board(req: &Request, cx: &Cx<'_>) -> std::result::Result<BoardId, Response> {
    let not_found = || json_error(ErrorCode::BoardNotFound, None);
    let path = req.path();
    let id = board_segment(&path)
        .map(|(id, _)| id)
        .ok_or_else(not_found)?;
    let board = BoardId::parse(id).map_err(|_| not_found())?;
    match boards::exists(cx, board.as_str()).await {
        Some(true) => Ok(board),
        Some(false) => Err(not_found()),
        None => Err(json_error(ErrorCode::UpstreamUnavailable, Some(1))),
    }
}

/// The per-IP limit (Workers rate-limiting binding `IP_LIMITER`, coarse and per location; its
/// limit is `simple.limit` in wrangler.toml), keyed by `cf-connecting-ip`. `None` to go on.
async fn per_ip_limit(req: &Request, cx: &Cx<'_>) -> Option<Response> {
    let limiter = cx.env.rate_limiter("IP_LIMITER").ok()?;
    let ip = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    match limiter.limit(ip).await {
        Ok(outcome) if !outcome.success => {
            log::warn(
                log::Subject::request(cx.rid),
                "rate limit hit",
                serde_json::json!({"endpoint": "ip"}),
            );
            Some(json_error(ErrorCode::RateLimited, Some(60)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_under_its_own_method_only() {
        for r in &ROUTES {
            let path = match r.path {
                Exact(p) => p.to_owned(),
                Prefix(p) => format!("{p}p1"),
                Board(s) => format!("/api/boards/level-1{s}"),
                BoardPrefix(s) => format!("/api/boards/level-1{s}p1"),
            };
            assert!(
                matches!(lookup(&r.method, &path), Lookup::Found(f) if f.name == r.name && f.handler == r.handler)
            );
        }
    }

    #[test]
    fn a_known_path_with_another_method_is_405_and_an_unknown_path_404() {
        assert!(matches!(
            lookup(&Method::Delete, "/api/leaderboard"),
            Lookup::WrongMethod
        ));
        assert!(matches!(
            lookup(&Method::Post, "/api/players/p1"),
            Lookup::WrongMethod
        ));
        assert!(matches!(lookup(&Method::Get, "/nope"), Lookup::NotFound));
        assert!(matches!(
            lookup(&Method::Get, "/api/boards/x/nope"),
            Lookup::NotFound
        ));
        assert!(matches!(
            lookup(&Method::Get, "/api/boards//stream"),
            Lookup::NotFound
        ));
        assert!(matches!(
            lookup(&Method::Get, "/api/boards/x/players/"),
            Lookup::NotFound
        ));
        assert_eq!(lookup(&Method::Get, "/nope").name(), "unmatched");
    }
}
