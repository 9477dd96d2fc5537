//! `LeaderboardHub`, one Durable Object per `<colo>:<board>:<role>`: keeps the board's latest
//! snapshot and fans it out latest-value style (a slow client skips versions, nothing queues
//! without bound): to SSE clients through native streams fed the same bytes (`fanout`), and to
//! game clients' WebSockets through the hibernation API. The location's root hub of a board
//! (`<colo>:<board>:0`) holds one WebSocket to the aggregator's
//! `/internal/leaderboard/ws?board=<id>`; past `HUB_CLIENTS_PER_OBJECT` clients of its own it
//! sends further clients to relay hubs (`<colo>:<board>:relay-<k>`) that it feeds over a
//! WebSocket each, so the aggregator still sees one WebSocket per location and board, and each
//! relay reports its client count to the root on every ping tick. A board that resets starts
//! each period from version 0: a snapshot of a later period replaces the hub's whatever its
//! version, and the SSE `id:` names the period. A hub reconnects with backoff and jitter,
//! resuming from the last version it has, and closes its upstream when its last client leaves.
//! The `global` board's hubs also serve the alias routes, in the snapshot's original form.

use crate::fanout::{self, Audience};
use crate::follow::hub_stub;
use futures_util::StreamExt;
use scoreboard_protocol::http::INTERNAL_LEADERBOARD_WS_PATH;
use scoreboard_protocol::snapshot::{parse_event_id, BoardSnapshot, PeriodRef};
use scoreboard_protocol::BoardId;
use scoreboard_protocol::{defaults, edge_signature, sse};
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

/// Tags of the hub's WebSockets: every one; those that want the alias form, or the board's;
/// game clients (not relays).
const TAG_ALL: &str = "all";
const TAG_ALIAS: &str = "alias";
const TAG_BOARD: &str = "board";
const TAG_CLIENT: &str = "client";
/// A relay hub's feed, tagged with its number: `relay:<k>`.
const TAG_RELAY: &str = "relay:";
/// What a relay reports to its root on every ping tick: `clients <n>`.
const REPORT: &str = "clients ";
/// The root's answer when a relay takes the client: `307` with the relay's number.
pub(crate) const RELAY_HEADER: &str = "x-hub-relay";
/// Which hub served a stream (`0` for the root, `relay-<k>`), for operators and tests.
pub(crate) const SERVED_BY_HEADER: &str = "x-scoreboard-hub";

/// What a hub is in its location's audience of a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// Fed by the aggregator; may send clients on to relays.
    Root,
    /// Relay `k`, fed by the root.
    Relay(u32),
}

impl Role {
    /// The last part of the hub's name.
    pub(crate) fn suffix(&self) -> String {
        match self {
            Role::Root => "0".into(),
            Role::Relay(k) => format!("relay-{k}"),
        }
    }
}

/// Where a hub stands: its board, its role, its location.
#[derive(Debug, Clone)]
struct Place {
    board: BoardId,
    role: Role,
    colo: String,
}

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
    /// The board, role and location of this hub, learnt from its first request.
    place: RefCell<Option<Place>>,
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
    /// At the root: each relay's clients, as last reported, plus those sent to it since.
    relay_load: RefCell<Vec<u32>>,
    /// Clients waiting for the hub to catch up with them (see `catch_up`).
    waiting: Cell<u32>,
}

impl Shared {
    fn new(state: &State) -> Self {
        Self {
            state: state.as_raw().into(),
            place: RefCell::default(),
            latest: RefCell::default(),
            sse: Audience::new(),
            alias_sse: Audience::new(),
            upstream: RefCell::default(),
            running: Cell::default(),
            pinging: Cell::default(),
            ws_sent: Cell::default(),
            relay_load: RefCell::default(),
            waiting: Cell::default(),
        }
    }

    /// Someone needs the upstream: a client, or one waiting for the first snapshot.
    fn wanted(&self) -> bool {
        self.clients() > 0 || self.waiting.get() > 0
    }

    /// The clients this hub serves itself (relays not counted).
    fn own_clients(&self) -> u32 {
        self.sse.size()
            + self.alias_sse.size()
            + fanout::count_sockets(&self.state, TAG_CLIENT, None)
    }

    /// At the root: the relay the next client goes to when the root is full, counted as sent
    /// there (the relay's next report corrects the count).
    fn pick_relay(&self, limit: u32) -> u32 {
        let mut load = self.relay_load.borrow_mut();
        let k = load.iter().position(|n| *n < limit).unwrap_or(load.len());
        if k == load.len() {
            load.push(0);
        }
        load[k] += 1;
        k as u32
    }

    /// A relay's `clients <n>` report, from its feed socket.
    fn take_report(&self, k: usize, text: &str) {
        let Some(n) = text
            .strip_prefix(REPORT)
            .and_then(|n| n.trim().parse().ok())
        else {
            return;
        };
        let mut load = self.relay_load.borrow_mut();
        if load.len() <= k {
            load.resize(k + 1, 0);
        }
        load[k] = n;
    }

    fn sockets(&self) -> u32 {
        fanout::count_sockets(&self.state, TAG_ALL, None)
    }

    /// Every client, relays included, but `leaving` (a socket whose close is being handled,
    /// which the runtime still lists until the handler returns).
    fn clients_but(&self, leaving: Option<&WebSocket>) -> u32 {
        let leaving: Option<&JsValue> = leaving.map(|ws| {
            let raw: &web_sys::WebSocket = ws.as_ref();
            raw.as_ref()
        });
        let sockets = fanout::count_sockets(&self.state, TAG_ALL, leaving);
        self.sse.size() + self.alias_sse.size() + sockets
    }

    fn clients(&self) -> u32 {
        self.clients_but(None)
    }

    fn role(&self) -> Role {
        self.place
            .borrow()
            .as_ref()
            .map_or(Role::Root, |p| p.role.clone())
    }

    /// Takes a message from the aggregator; anything but a newer snapshot of this board is
    /// ignored.
    fn publish(&self, text: String) {
        let Ok(s) = serde_json::from_str::<BoardSnapshot>(&text) else {
            return;
        };
        if self.place.borrow().as_ref().map(|p| &p.board) != Some(&s.board) {
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
            |json: &str| fanout::bytes(sse::event(&event_id, sse::SNAPSHOT_EVENT, json).as_bytes());
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
        if self.role() != Role::Root {
            if let Some(up) = self.upstream.borrow().as_ref() {
                let _ = up.send_with_str(format!("{REPORT}{}", sse + sockets));
            }
        }
        sse + sockets > 0
    }

    /// Closes the upstream when nobody is left but `leaving`; the connect loop then ends.
    fn close_if_empty(&self, leaving: Option<&WebSocket>) {
        if self.clients_but(leaving) == 0 && self.waiting.get() == 0 {
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
        let q = hub_query(&req)?;
        let alias = q.alias;
        if self.shared.place.borrow().is_none() {
            *self.shared.place.borrow_mut() = Some(Place {
                board: q.board,
                role: q.role,
                colo: q.colo,
            });
        }
        let seen = req
            .headers()
            .get("last-event-id")?
            .and_then(|v| parse_event_id(&v).map(|(p, n)| (p.to_owned(), n)));
        if let Some(seen) = &seen {
            if matches!(req.path().as_str(), "/sse" | "/ws") {
                self.catch_up(seen).await;
            }
        }
        match req.path().as_str() {
            // Only while the upstream is live: a hub without clients keeps an old snapshot.
            "/snapshot" => match (
                self.shared.upstream.borrow().is_some(),
                self.shared.latest.borrow().clone(),
            ) {
                (true, Some(l)) => crate::json_raw(200, l.json_for(alias).as_bytes().to_vec()),
                _ => Response::error("no live snapshot", 404),
            },
            "/ws" if q.feed.is_some() => {
                let relay = format!("{TAG_RELAY}{}", q.feed.unwrap_or(0));
                self.join_ws(&[TAG_ALL, TAG_BOARD, &relay], false, seen.as_ref())
            }
            "/sse" | "/ws" if self.full() => self.send_to_relay(),
            "/sse" => self.join_sse(alias, seen.as_ref()),
            "/ws" => {
                let form = if alias { TAG_ALIAS } else { TAG_BOARD };
                self.join_ws(&[TAG_ALL, TAG_CLIENT, form], alias, seen.as_ref())
            }
            _ => Response::error("no such hub route", 404),
        }
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> Result<()> {
        if let (Some(k), WebSocketIncomingMessage::String(text)) = (self.relay_of(&ws), &message) {
            self.shared.take_report(k, text);
            return Ok(());
        }
        // `ping` never gets here (the runtime answers it); the stream takes nothing else.
        let _ = ws.close(Some(1003), Some("this stream takes no messages"));
        self.shared.close_if_empty(Some(&ws));
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
        self.gone(&ws);
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: Error) -> Result<()> {
        self.gone(&ws);
        Ok(())
    }
}

impl LeaderboardHub {
    /// A socket that closed or failed: a relay's feed counts for nothing any more (a relay
    /// that comes back reports again), and the upstream closes if nobody is left.
    fn gone(&self, ws: &WebSocket) {
        if let Some(k) = self.relay_of(ws) {
            if let Some(n) = self.shared.relay_load.borrow_mut().get_mut(k) {
                *n = 0;
            }
        }
        self.shared.close_if_empty(Some(ws));
    }

    /// The relay whose feed `ws` is, if it is one.
    fn relay_of(&self, ws: &WebSocket) -> Option<usize> {
        let tags = self.state.get_tags(ws);
        tags.iter()
            .find_map(|t| t.strip_prefix(TAG_RELAY)?.parse().ok())
    }

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
        headers.set(SERVED_BY_HEADER, &self.served_by())?;
        Ok(Response::from_body(ResponseBody::Stream(body))?.with_headers(headers))
    }

    /// A new WebSocket client, accepted for hibernation: the newest snapshot first unless it
    /// has it, then every newer one.
    fn join_ws(
        &self,
        tags: &[&str],
        alias: bool,
        seen: Option<&(String, i64)>,
    ) -> Result<Response> {
        let pair = WebSocketPair::new()?;
        self.state.accept_websocket_with_tags(&pair.server, tags);
        if let Some(l) = self.shared.latest.borrow().as_ref() {
            if !l.seen_by(seen) {
                let _ = pair.server.send_with_str(l.json_for(alias).as_ref());
            }
        }
        self.ensure_upstream();
        self.ensure_pings();
        let headers = Headers::new();
        headers.set(SERVED_BY_HEADER, &self.served_by())?;
        Ok(Response::from_websocket(pair.client)?.with_headers(headers))
    }

    /// Waits (at most 3 s) until the hub has what a client says it has: a hub with no snapshot
    /// yet (a relay or a root that just started) or an old one (kept from before its upstream
    /// closed) would otherwise send that client its own version again once it catches up.
    async fn catch_up(&self, seen: &(String, i64)) {
        let has = |shared: &Shared| {
            shared
                .latest
                .borrow()
                .as_ref()
                .is_some_and(|l| l.period.id != seen.0 || l.version >= seen.1)
        };
        if has(&self.shared) {
            return;
        }
        self.shared.waiting.set(self.shared.waiting.get() + 1);
        self.ensure_upstream();
        for _ in 0..150 {
            if has(&self.shared) {
                break;
            }
            Delay::from(Duration::from_millis(20)).await;
        }
        self.shared.waiting.set(self.shared.waiting.get() - 1);
    }

    /// A root at `HUB_CLIENTS_PER_OBJECT` clients of its own; a relay is never full (the root
    /// spreads clients over relays by their reports).
    fn full(&self) -> bool {
        let limit = crate::config::get(&self.env).hub_clients_per_object;
        self.shared.role() == Role::Root && self.shared.own_clients() >= limit
    }

    /// Tells the edge which relay takes this client: `307` with `x-hub-relay: <k>`.
    fn send_to_relay(&self) -> Result<Response> {
        let limit = crate::config::get(&self.env).hub_clients_per_object;
        let k = self.shared.pick_relay(limit);
        let headers = Headers::new();
        headers.set(RELAY_HEADER, &k.to_string())?;
        Ok(Response::empty()?.with_status(307).with_headers(headers))
    }

    /// The name of this hub's role, for the `x-scoreboard-hub` header.
    fn served_by(&self) -> String {
        self.shared.role().suffix()
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
            shared.close_if_empty(None);
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
        let place = self.shared.place.borrow().clone();
        let env = self.env.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let mut backoff = 250u64;
            while shared.wanted() {
                if let (Some(base), Some(secret), Some(place)) = (&base, &secret, &place) {
                    let board = &place.board;
                    let feed = match place.role {
                        Role::Relay(k) => connect_root(&env, &place.colo, board, k, &shared).await,
                        Role::Root => connect(base, secret, board, &shared).await,
                    };
                    if let Ok(ws) = feed {
                        backoff = 250;
                        if !shared.wanted() {
                            // Everyone left while it connected: nobody else would close it.
                            let _ = ws.close(Some(1000), Some("no clients"));
                            break;
                        }
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
                if !shared.wanted() {
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

/// What a hub request says: the board, the form (`alias=1`: the original snapshot of
/// `global`), the location, the hub's role (`relay=<k>` for relay `k`), and for a relay's own
/// feed from its root, `feed=<k>`. The edge's handlers always name a valid board.
struct HubQuery {
    board: BoardId,
    alias: bool,
    colo: String,
    role: Role,
    feed: Option<u32>,
}

fn hub_query(req: &Request) -> Result<HubQuery> {
    let url = req.url()?;
    let mut board = None;
    let mut q = HubQuery {
        board: BoardId::global(),
        alias: false,
        colo: "local".into(),
        role: Role::Root,
        feed: None,
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "board" => board = BoardId::parse(v.into_owned()).ok(),
            "alias" => q.alias = v == "1",
            "colo" => q.colo = v.into_owned(),
            "relay" => q.role = v.parse().map_or(Role::Root, Role::Relay),
            "feed" => q.feed = v.parse().ok(),
            _ => {}
        }
    }
    q.board = board.ok_or_else(|| Error::RustError("a hub request names its board".into()))?;
    Ok(q)
}

/// A relay's feed: a WebSocket to its location's root hub of `board`, resuming from the
/// snapshot the relay has.
async fn connect_root(
    env: &Env,
    colo: &str,
    board: &BoardId,
    k: u32,
    shared: &Shared,
) -> Result<WebSocket> {
    let headers = Headers::new();
    headers.set("upgrade", "websocket")?;
    let since = shared
        .latest
        .borrow()
        .as_ref()
        .map(|l| l.period.event_id(l.version));
    if let Some(id) = since {
        headers.set("last-event-id", &id)?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let url = format!("http://hub/ws?board={board}&alias=0&colo={colo}&feed={k}");
    let resp = hub_stub(env, colo, board, &Role::Root)?
        .fetch_with_request(Request::new_with_init(&url, &init)?)
        .await?;
    let status = resp.status_code();
    let ws = resp
        .websocket()
        .ok_or_else(|| Error::RustError(format!("the root hub answered {status}")))?;
    ws.accept()?;
    Ok(ws)
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
