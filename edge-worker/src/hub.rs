//! `LeaderboardHub`, one Durable Object per `<colo>:<board>:<shard>`: holds one WebSocket to
//! the aggregator's `/internal/leaderboard/ws?board=<id>` for all its SSE clients, keeps the
//! board's latest snapshot, and fans it out latest-value style (a slow client skips versions,
//! nothing queues). A board that resets starts each period from version 0: a snapshot of a
//! later period replaces the hub's whatever its version, and the SSE `id:` names the period.
//! It reconnects with backoff and jitter, resuming from the last version it has, and closes
//! the upstream when its last client leaves. The `global` board's hubs also
//! serve the alias routes, in the snapshot's original form.

use crate::Cx;
use futures_util::{Stream, StreamExt};
use scoreboard_protocol::http::INTERNAL_LEADERBOARD_WS_PATH;
use scoreboard_protocol::snapshot::{parse_event_id, BoardSnapshot, PeriodRef};
use scoreboard_protocol::BoardId;
use scoreboard_protocol::{defaults, edge_signature, sse};
use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;
use worker::*;

const MAX_BACKOFF_MS: u64 = 10_000;

/// The newest snapshot: its period and version, its JSON as the board's, and for `global` the
/// alias form; each also as its SSE frame, encoded once for every client.
#[derive(Clone)]
struct Latest {
    period: PeriodRef,
    version: i64,
    json: Rc<str>,
    alias: Option<Rc<str>>,
    frame: Rc<[u8]>,
    alias_frame: Option<Rc<[u8]>>,
}

impl Latest {
    fn json_for(&self, alias: bool) -> &Rc<str> {
        match (&self.alias, alias) {
            (Some(a), true) => a,
            _ => &self.json,
        }
    }

    fn frame_for(&self, alias: bool) -> &Rc<[u8]> {
        match (&self.alias_frame, alias) {
            (Some(a), true) => a,
            _ => &self.frame,
        }
    }
}

#[derive(Default)]
struct Shared {
    /// The board this hub serves, learnt from its first request.
    board: RefCell<Option<BoardId>>,
    latest: RefCell<Option<Latest>>,
    wakers: RefCell<Vec<Waker>>,
    clients: Cell<usize>,
    upstream: RefCell<Option<WebSocket>>,
    /// The connect loop is running (guards against two loops when requests interleave).
    running: Cell<bool>,
    /// Ticks of the hub's one ping timer; a client that was sent nothing since the last tick
    /// gets a `: ping` (no timer per client, re-armed on every event).
    ping_round: Cell<u64>,
    /// The ping timer is running.
    pinging: Cell<bool>,
}

impl Shared {
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
        if newer {
            // The alias form is the plain snapshot, serialized by the same type the
            // aggregator uses, so its bytes are what `/api/leaderboard` always sent.
            let alias = s
                .board
                .is_global()
                .then(|| serde_json::to_string(&s.snapshot).ok())
                .flatten()
                .map(Rc::from);
            let event_id = s.event_id();
            let frame =
                |json: &str| Rc::from(sse::event(&event_id, "leaderboard", json).into_bytes());
            *self.latest.borrow_mut() = Some(Latest {
                version: s.snapshot.version,
                period: s.period,
                frame: frame(&text),
                alias_frame: alias.as_deref().map(frame),
                json: text.into(),
                alias,
            });
            self.wake_all();
        }
    }

    fn wake_all(&self) {
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

#[durable_object]
pub struct LeaderboardHub {
    env: Env,
    shared: Rc<Shared>,
}

impl std::fmt::Debug for LeaderboardHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaderboardHub")
    }
}

impl DurableObject for LeaderboardHub {
    fn new(_state: State, env: Env) -> Self {
        Self {
            env,
            shared: Rc::new(Shared::default()),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let (board, alias) = hub_query(&req)?;
        if self.shared.board.borrow().is_none() {
            *self.shared.board.borrow_mut() = Some(board);
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
            "/sse" => {
                let last_seen = req
                    .headers()
                    .get("last-event-id")?
                    .and_then(|v| parse_event_id(&v).map(|(p, n)| (p.to_owned(), n)));
                self.shared.clients.set(self.shared.clients.get() + 1);
                self.ensure_upstream();
                self.ensure_pings();
                let stream = ClientStream {
                    shared: self.shared.clone(),
                    alias,
                    sent: last_seen,
                    greeted: false,
                    ping_round: self.shared.ping_round.get(),
                    sent_this_round: false,
                };
                let headers = Headers::new();
                headers.set("content-type", "text/event-stream")?;
                headers.set("cache-control", "no-cache")?;
                Ok(Response::from_stream(stream)?.with_headers(headers))
            }
            _ => Response::error("no such hub route", 404),
        }
    }
}

impl LeaderboardHub {
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
            while shared.clients.get() > 0 {
                Delay::from(Duration::from_millis(ping_ms.max(1))).await;
                shared.ping_round.set(shared.ping_round.get() + 1);
                shared.wake_all();
            }
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
            while shared.clients.get() > 0 {
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
                if shared.clients.get() == 0 {
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

/// One SSE client: `retry` first, then the newest snapshot whenever it is newer than what
/// this client was sent, and a `: ping` comment when nothing else was sent for a while.
struct ClientStream {
    shared: Rc<Shared>,
    /// Sends the alias form (the `global` board's original routes).
    alias: bool,
    /// The period id and version this client has (from its `Last-Event-ID`, then what it was
    /// sent).
    sent: Option<(String, i64)>,
    greeted: bool,
    /// The hub's ping tick this client last saw, and whether it was sent a snapshot since.
    ping_round: u64,
    sent_this_round: bool,
}

impl Stream for ClientStream {
    type Item = Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if !self.greeted {
            self.greeted = true;
            return Poll::Ready(Some(Ok(sse::retry(defaults::SSE_RETRY).into_bytes())));
        }
        let latest = self.shared.latest.borrow().clone();
        if let Some(latest) = latest {
            // Within a period versions only grow; the hub's snapshot only moves forward, so
            // another period than the client's is a newer one.
            let fresh = self.sent.as_ref().is_none_or(|(period, version)| {
                latest.period.id != *period || latest.version > *version
            });
            if fresh {
                self.sent = Some((latest.period.id.clone(), latest.version));
                self.sent_this_round = true;
                return Poll::Ready(Some(Ok(latest.frame_for(self.alias).to_vec())));
            }
        }
        let round = self.shared.ping_round.get();
        if round != self.ping_round {
            self.ping_round = round;
            let quiet = !std::mem::replace(&mut self.sent_this_round, false);
            if quiet {
                return Poll::Ready(Some(Ok(sse::PING.as_bytes().to_vec())));
            }
        }
        let mut wakers = self.shared.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        let left = self.shared.clients.get().saturating_sub(1);
        self.shared.clients.set(left);
        if left == 0 {
            // The last client left: close the upstream; the connect loop then ends.
            if let Some(ws) = self.shared.upstream.borrow_mut().take() {
                let _ = ws.close(Some(1000), Some("no clients"));
            }
        }
    }
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

/// A board's SSE stream, served by one of this location's hubs for that board.
pub(crate) async fn stream(
    req: &Request,
    cx: &Cx<'_>,
    board: &BoardId,
    alias: bool,
) -> Result<Response> {
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
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let hub = hub_stub(cx.env, crate::colo(req), board, shard)?;
    hub.fetch_with_request(Request::new_with_init(
        &hub_url("sse", board, alias),
        &init,
    )?)
    .await
}
