//! `LeaderboardHub`, one Durable Object per `<colo>:<board>:<shard>`: holds one WebSocket to
//! the aggregator's `/internal/leaderboard/ws?board=<id>` for all its clients, keeps the
//! board's latest snapshot, and fans it out latest-value style (a slow client skips versions,
//! nothing queues without bound): to SSE clients through native streams fed the same bytes
//! (`fanout`), and to game clients' WebSockets through the hibernation API. A board that
//! resets starts each period from version 0: a snapshot of a later period replaces the hub's
//! whatever its version, and the SSE `id:` names the period. It reconnects with backoff and
//! jitter, resuming from the last version it has, and closes the upstream when its last
//! client leaves. The `global` board's hubs also serve the alias routes, in the snapshot's
//! original form.

use crate::fanout::{self, Audience};
use crate::Cx;
use futures_util::StreamExt;
use scoreboard_protocol::http::{INTERNAL_LEADERBOARD_WS_PATH, WEBSOCKET_UPGRADE_NEEDED};
use scoreboard_protocol::snapshot::{parse_event_id, BoardSnapshot, PeriodRef};
use scoreboard_protocol::{defaults, edge_signature, sse};
use scoreboard_protocol::{BoardId, ErrorBody, ErrorCode};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use worker::wasm_bindgen::JsValue;
use worker::*;

const MAX_BACKOFF_MS: u64 = 10_000;

/// What a WebSocket client may send: `ping`, answered `pong` by the runtime without waking
/// the hub. Anything else closes the socket.
const WS_PING: &str = "ping";
const WS_PONG: &str = "pong";

/// Tags of the hub's WebSockets: every one, and those that want the alias form.
const TAG_ALL: &str = "all";
const TAG_ALIAS: &str = "alias";
const TAG_BOARD: &str = "board";

/// The newest snapshot: its period and version, its JSON as the board's, and for `global` the
/// alias form.
#[derive(Clone)]
struct Latest {
    period: PeriodRef,
    version: i64,
    json: Rc<str>,
    alias: Option<Rc<str>>,
}

impl Latest {
    fn json_for(&self, alias: bool) -> &Rc<str> {
        match (&self.alias, alias) {
            (Some(a), true) => a,
            _ => &self.json,
        }
    }

    /// A client that has `seen` (period id, version) already has this snapshot: within a
    /// period versions only grow, and the hub's snapshot only moves forward, so another
    /// period than the client's is a newer one.
    fn seen_by(&self, seen: Option<&(String, i64)>) -> bool {
        seen.is_some_and(|(period, version)| self.period.id == *period && self.version <= *version)
    }
}

struct Shared {
    /// The object's state, for its hibernatable WebSockets.
    state: JsValue,
    /// The board this hub serves, learnt from its first request.
    board: RefCell<Option<BoardId>>,
    latest: RefCell<Option<Latest>>,
    /// SSE clients of the board's form, and of the alias form (`global` only).
    sse: Audience,
    alias_sse: Audience,
    upstream: RefCell<Option<WebSocket>>,
    /// The connect loop is running (guards against two loops when requests interleave).
    running: Cell<bool>,
    /// The ping timer is running.
    pinging: Cell<bool>,
    /// A snapshot went to the WebSockets since the last ping tick.
    ws_sent: Cell<bool>,
}

impl Shared {
    fn new(state: &State) -> Self {
        Self {
            state: state.as_raw().into(),
            board: RefCell::default(),
            latest: RefCell::default(),
            sse: Audience::new(),
            alias_sse: Audience::new(),
            upstream: RefCell::default(),
            running: Cell::default(),
            pinging: Cell::default(),
            ws_sent: Cell::default(),
        }
    }

    fn sockets(&self) -> u32 {
        fanout::count_sockets(&self.state, TAG_ALL)
    }

    fn clients(&self) -> u32 {
        self.sse.size() + self.alias_sse.size() + self.sockets()
    }

    /// Takes a message from the aggregator; anything but a newer snapshot of this board is
    /// ignored.
    fn publish(&self, text: String) {
        let Ok(s) = serde_json::from_str::<BoardSnapshot>(&text) else {
            return;
        };
        if self.board.borrow().as_ref() != Some(&s.board) {
            return;
        }
        // A new period starts from version 0: a later period is newer whatever its version.
        let newer = self
            .latest
            .borrow()
            .as_ref()
            .is_none_or(|l| s.supersedes(&l.period, l.version));
        if !newer {
            return;
        }
        // The alias form is the plain snapshot, serialized by the same type the aggregator
        // uses, so its bytes are what `/api/leaderboard` always sent.
        let alias: Option<Rc<str>> = s
            .board
            .is_global()
            .then(|| serde_json::to_string(&s.snapshot).ok())
            .flatten()
            .map(Rc::from);
        let event_id = s.event_id();
        let frame =
            |json: &str| fanout::bytes(sse::event(&event_id, "leaderboard", json).as_bytes());
        self.sse.send(&frame(&text));
        let mut sent = fanout::send_to_sockets(&self.state, TAG_BOARD, &text);
        if let Some(alias) = &alias {
            self.alias_sse.send(&frame(alias));
            sent += fanout::send_to_sockets(&self.state, TAG_ALIAS, alias);
        }
        if sent > 0 {
            self.ws_sent.set(true);
        }
        *self.latest.borrow_mut() = Some(Latest {
            version: s.snapshot.version,
            period: s.period,
            json: text.into(),
            alias,
        });
    }

    /// The ping timer's tick: a ping to every client that was sent nothing since the last
    /// one; whether any client is left.
    fn tick(&self) -> bool {
        let ping = fanout::bytes(sse::PING.as_bytes());
        let sse = self.sse.tick(&ping) + self.alias_sse.tick(&ping);
        let sockets = if self.ws_sent.replace(false) {
            self.sockets()
        } else {
            fanout::send_to_sockets(&self.state, TAG_ALL, WS_PING)
        };
        sse + sockets > 0
    }

    /// Closes the upstream when nobody is left; the connect loop then ends.
    fn close_if_empty(&self) {
        if self.clients() == 0 {
            if let Some(ws) = self.upstream.borrow_mut().take() {
                let _ = ws.close(Some(1000), Some("no clients"));
            }
        }
    }
}

#[durable_object]
pub struct LeaderboardHub {
    env: Env,
    state: State,
    shared: Rc<Shared>,
}

impl std::fmt::Debug for LeaderboardHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaderboardHub")
    }
}

impl DurableObject for LeaderboardHub {
    fn new(state: State, env: Env) -> Self {
        if let Ok(pair) = worker::worker_sys::WebSocketRequestResponsePair::new(WS_PING, WS_PONG) {
            state.set_websocket_auto_response(&pair);
        }
        Self {
            env,
            shared: Rc::new(Shared::new(&state)),
            state,
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let (board, alias) = hub_query(&req)?;
        if self.shared.board.borrow().is_none() {
            *self.shared.board.borrow_mut() = Some(board);
        }
        let seen = req
            .headers()
            .get("last-event-id")?
            .and_then(|v| parse_event_id(&v).map(|(p, n)| (p.to_owned(), n)));
        match req.path().as_str() {
            // Only while the upstream is live: a hub without clients keeps an old snapshot.
            "/snapshot" => match (
                self.shared.upstream.borrow().is_some(),
                self.shared.latest.borrow().clone(),
            ) {
                (true, Some(l)) => crate::json_raw(200, l.json_for(alias).as_bytes().to_vec()),
                _ => Response::error("no live snapshot", 404),
            },
            "/sse" => self.join_sse(alias, seen.as_ref()),
            "/ws" => self.join_ws(alias, seen.as_ref()),
            _ => Response::error("no such hub route", 404),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> Result<()> {
        // `ping` never gets here (the runtime answers it); the stream takes nothing else.
        let _ = ws.close(Some(1003), Some("this stream takes no messages"));
        self.shared.close_if_empty();
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        let _ = ws.close(Some(1000), Some("closed"));
        self.shared.close_if_empty();
        Ok(())
    }

    async fn websocket_error(&self, _ws: WebSocket, _error: Error) -> Result<()> {
        self.shared.close_if_empty();
        Ok(())
    }
}

impl LeaderboardHub {
    /// A new SSE client: `retry`, then the newest snapshot unless it has it.
    fn join_sse(&self, alias: bool, seen: Option<&(String, i64)>) -> Result<Response> {
        let current = self
            .shared
            .latest
            .borrow()
            .as_ref()
            .is_some_and(|l| l.seen_by(seen));
        let audience = if alias {
            &self.shared.alias_sse
        } else {
            &self.shared.sse
        };
        let greeting = fanout::bytes(sse::retry(defaults::SSE_RETRY).as_bytes());
        let body = audience
            .join(&greeting, current)
            .map_err(|e| Error::RustError(format!("an SSE stream could not start: {e:?}")))?;
        self.ensure_upstream();
        self.ensure_pings();
        let headers = Headers::new();
        headers.set("content-type", "text/event-stream")?;
        headers.set("cache-control", "no-cache")?;
        Ok(Response::from_body(ResponseBody::Stream(body))?.with_headers(headers))
    }

    /// A new WebSocket client, accepted for hibernation: the newest snapshot first unless it
    /// has it, then every newer one.
    fn join_ws(&self, alias: bool, seen: Option<&(String, i64)>) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        let form = if alias { TAG_ALIAS } else { TAG_BOARD };
        self.state
            .accept_websocket_with_tags(&pair.server, &[TAG_ALL, form]);
        if let Some(l) = self.shared.latest.borrow().as_ref() {
            if !l.seen_by(seen) {
                let _ = pair.server.send_with_str(l.json_for(alias).as_ref());
            }
        }
        self.ensure_upstream();
        self.ensure_pings();
        Response::from_websocket(pair.client)
    }

    /// Starts the hub's ping timer unless it runs; it stops when the last client has left.
    fn ensure_pings(&self) {
        if self.shared.pinging.replace(true) {
            return;
        }
        let shared = self.shared.clone();
        let ping_ms = crate::config::get(&self.env)
            .shared
            .sse_ping_interval
            .as_millis() as u64;
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                Delay::from(Duration::from_millis(ping_ms.max(1))).await;
                if !shared.tick() {
                    break;
                }
            }
            shared.close_if_empty();
            shared.pinging.set(false);
        });
    }

    /// Starts the connect loop unless it runs.
    fn ensure_upstream(&self) {
        if self.shared.running.get() {
            return;
        }
        self.shared.running.set(true);
        let shared = self.shared.clone();
        let config = crate::config::get(&self.env);
        let base = config.aggregator_url.clone();
        let secret = config.edge_secret.as_ref().map(|s| s.expose().to_vec());
        let board = self.shared.board.borrow().clone();
        wasm_bindgen_futures::spawn_local(async move {
            let mut backoff = 250u64;
            while shared.clients() > 0 {
                if let (Some(base), Some(secret), Some(board)) = (&base, &secret, &board) {
                    if let Ok(ws) = connect(base, secret, board, &shared).await {
                        backoff = 250;
                        *shared.upstream.borrow_mut() = Some(ws.clone());
                        if let Ok(mut events) = ws.events() {
                            while let Some(ev) = events.next().await {
                                match ev {
                                    Ok(WebsocketEvent::Message(m)) => {
                                        if let Some(text) = m.text() {
                                            shared.publish(text);
                                        }
                                    }
                                    Ok(WebsocketEvent::Close(_)) | Err(_) => break,
                                }
                            }
                        }
                        // Answer the aggregator's close (a draining region sends one): an
                        // unanswered close leaves the connection half-open, and while it
                        // lives workerd keeps the old address of the aggregator's host name,
                        // so after a DNS failover every forward went on failing for ~15 s.
                        let _ = ws.close(Some(1000), Some("upstream closed"));
                        *shared.upstream.borrow_mut() = None;
                    }
                }
                if shared.clients() == 0 {
                    break;
                }
                let mut jitter = [0u8; 2];
                let _ = crate::getrandom_js(&mut jitter);
                let wait = backoff + u64::from(u16::from_le_bytes(jitter)) % backoff;
                Delay::from(Duration::from_millis(wait)).await;
                backoff = (backoff * 2).min(MAX_BACKOFF_MS);
            }
            shared.running.set(false);
        });
    }
}

/// The board and the form (`alias=1`: the original snapshot of `global`) a hub request asks
/// for; the edge's handlers always name a valid board.
fn hub_query(req: &Request) -> Result<(BoardId, bool)> {
    let url = req.url()?;
    let mut board = None;
    let mut alias = false;
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "board" => board = BoardId::parse(v.into_owned()).ok(),
            "alias" => alias = v == "1",
            _ => {}
        }
    }
    let board = board.ok_or_else(|| Error::RustError("a hub request names its board".into()))?;
    Ok((board, alias))
}

/// Opens the edge-signed WebSocket of `board`, resuming after the version the hub has.
async fn connect(base: &str, secret: &[u8], board: &BoardId, shared: &Shared) -> Result<WebSocket> {
    let path = INTERNAL_LEADERBOARD_WS_PATH;
    let t = crate::upstream::now_secs();
    let sig = edge_signature::sign(secret, t, "GET", path, b"");
    let since = shared
        .latest
        .borrow()
        .as_ref()
        .map(|l| l.version)
        .unwrap_or(0);
    let url = Url::parse(&format!(
        "{base}{path}?board={board}&since={since}&t={t}&sig={sig}"
    ))?;
    let ws = WebSocket::connect(url).await?;
    ws.accept()?;
    Ok(ws)
}

/// The hub named `<colo>:<board>:<shard>` (`local` under `wrangler dev` without a location).
fn hub_stub(env: &Env, colo: Option<String>, board: &BoardId, shard: u32) -> Result<Stub> {
    let colo = colo.unwrap_or_else(|| "local".into());
    env.durable_object("LEADERBOARD_HUB")?
        .id_from_name(&format!("{colo}:{board}:{shard}"))?
        .get_stub()
}

fn hub_url(route: &str, board: &BoardId, alias: bool) -> String {
    format!("http://hub/{route}?board={board}&alias={}", u8::from(alias))
}

/// This location's first hub's snapshot of `board`, when it has a live one; `alias` for the
/// original form of `global`.
pub(crate) async fn live_snapshot(
    req: &Request,
    env: &Env,
    board: &BoardId,
    alias: bool,
) -> Option<Response> {
    let hub = hub_stub(env, crate::colo(req), board, 0).ok()?;
    let resp = hub
        .fetch_with_str(&hub_url("snapshot", board, alias))
        .await
        .ok()?;
    (resp.status_code() == 200).then_some(resp)
}

/// How a client follows a board: SSE or a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Follow {
    Sse,
    WebSocket,
}

/// A board's live stream, served by one of this location's hubs for that board. A
/// WebSocket route asked without an upgrade is a `400` in our shape (as at the aggregator).
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
    // Spread clients over shards by request id, which is random per request.
    let shard = cx
        .rid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % cx.config.hub_shards.max(1);
    let last_seen = req.headers().get("last-event-id")?.or_else(|| {
        req.url().ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "last_event_id")
                .map(|(_, v)| v.into_owned())
        })
    });
    let headers = Headers::new();
    if let Some(id) = last_seen {
        headers.set("last-event-id", &id)?;
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
    let hub = hub_stub(cx.env, crate::colo(req), board, shard)?;
    hub.fetch_with_request(Request::new_with_init(
        &hub_url(route, board, alias),
        &init,
    )?)
    .await
}
