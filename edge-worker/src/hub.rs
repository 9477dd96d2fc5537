//! `LeaderboardHub`, one Durable Object per `<colo>:<shard>`: holds one WebSocket to the
//! aggregator's `/internal/leaderboard/ws` for all its SSE clients, keeps the latest snapshot,
//! and fans it out latest-value style (a slow client skips versions, nothing queues). It
//! reconnects with backoff and jitter, resuming from the last version it has, and closes the
//! upstream when its last client leaves.

use crate::Cx;
use futures_util::{Stream, StreamExt};
use scoreboard_protocol::http::INTERNAL_LEADERBOARD_WS_PATH;
use scoreboard_protocol::snapshot::Snapshot;
use scoreboard_protocol::{defaults, edge_signature, sse};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;
use worker::*;

const MAX_BACKOFF_MS: u64 = 10_000;

#[derive(Default)]
struct Shared {
    /// (version, snapshot JSON) of the newest snapshot.
    latest: RefCell<Option<(i64, Rc<str>)>>,
    wakers: RefCell<Vec<Waker>>,
    clients: Cell<usize>,
    upstream: RefCell<Option<WebSocket>>,
    /// The connect loop is running (guards against two loops when requests interleave).
    running: Cell<bool>,
}

impl Shared {
    fn publish(&self, version: i64, json: String) {
        let newer = self
            .latest
            .borrow()
            .as_ref()
            .is_none_or(|(v, _)| version > *v);
        if newer {
            *self.latest.borrow_mut() = Some((version, json.into()));
            for w in self.wakers.borrow_mut().drain(..) {
                w.wake();
            }
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
        match req.path().as_str() {
            // Only while the upstream is live: a hub without clients keeps an old snapshot.
            "/snapshot" => match (
                self.shared.upstream.borrow().is_some(),
                self.shared.latest.borrow().clone(),
            ) {
                (true, Some((_, json))) => crate::json_raw(200, json.as_bytes().to_vec()),
                _ => Response::error("no live snapshot", 404),
            },
            "/sse" => {
                let last_seen = req
                    .headers()
                    .get("last-event-id")?
                    .and_then(|v| v.trim().parse::<i64>().ok());
                let ping_ms = crate::config::get(&self.env)
                    .shared
                    .sse_ping_interval
                    .as_millis() as u64;
                self.shared.clients.set(self.shared.clients.get() + 1);
                self.ensure_upstream();
                let stream = ClientStream {
                    shared: self.shared.clone(),
                    sent: last_seen,
                    greeted: false,
                    ping_ms,
                    ping: Box::pin(Delay::from(Duration::from_millis(ping_ms))),
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
        wasm_bindgen_futures::spawn_local(async move {
            let mut backoff = 250u64;
            while shared.clients.get() > 0 {
                if let (Some(base), Some(secret)) = (&base, &secret) {
                    if let Ok(ws) = connect(base, secret, &shared).await {
                        backoff = 250;
                        *shared.upstream.borrow_mut() = Some(ws.clone());
                        if let Ok(mut events) = ws.events() {
                            while let Some(ev) = events.next().await {
                                match ev {
                                    Ok(WebsocketEvent::Message(m)) => {
                                        if let Some(text) = m.text() {
                                            if let Ok(s) = serde_json::from_str::<Snapshot>(&text) {
                                                shared.publish(s.version, text);
                                            }
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

/// Opens the edge-signed WebSocket, resuming after the version the hub already has.
async fn connect(base: &str, secret: &[u8], shared: &Shared) -> Result<WebSocket> {
    let path = INTERNAL_LEADERBOARD_WS_PATH;
    let t = crate::upstream::now_secs();
    let sig = edge_signature::sign(secret, t, "GET", path, b"");
    let since = shared
        .latest
        .borrow()
        .as_ref()
        .map(|(v, _)| *v)
        .unwrap_or(0);
    let url = Url::parse(&format!("{base}{path}?since={since}&t={t}&sig={sig}"))?;
    let ws = WebSocket::connect(url).await?;
    ws.accept()?;
    Ok(ws)
}

/// One SSE client: `retry` first, then the newest snapshot whenever it is newer than what
/// this client was sent, and a `: ping` comment when nothing else was sent for a while.
struct ClientStream {
    shared: Rc<Shared>,
    sent: Option<i64>,
    greeted: bool,
    ping_ms: u64,
    ping: Pin<Box<Delay>>,
}

impl Stream for ClientStream {
    type Item = Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if !self.greeted {
            self.greeted = true;
            return Poll::Ready(Some(Ok(sse::retry(defaults::SSE_RETRY).into_bytes())));
        }
        let latest = self.shared.latest.borrow().clone();
        if let Some((version, json)) = latest {
            // Versions are global and monotonic: send only what is newer than the client has.
            if self.sent.is_none_or(|s| version > s) {
                self.sent = Some(version);
                self.ping = Box::pin(Delay::from(Duration::from_millis(self.ping_ms)));
                let frame = sse::event(&version.to_string(), "leaderboard", &json);
                return Poll::Ready(Some(Ok(frame.into_bytes())));
            }
        }
        if self.ping.as_mut().poll(cx).is_ready() {
            self.ping = Box::pin(Delay::from(Duration::from_millis(self.ping_ms)));
            return Poll::Ready(Some(Ok(sse::PING.as_bytes().to_vec())));
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

/// The hub named `<colo>:<shard>` (`local` under `wrangler dev` without a location).
fn hub_stub(env: &Env, colo: Option<String>, shard: u32) -> Result<Stub> {
    let colo = colo.unwrap_or_else(|| "local".into());
    env.durable_object("LEADERBOARD_HUB")?
        .id_from_name(&format!("{colo}:{shard}"))?
        .get_stub()
}

/// This location's first hub's snapshot, when it has a live one.
pub(crate) async fn live_snapshot(req: &Request, env: &Env) -> Option<Response> {
    let hub = hub_stub(env, crate::colo(req), 0).ok()?;
    let resp = hub.fetch_with_str("http://hub/snapshot").await.ok()?;
    (resp.status_code() == 200).then_some(resp)
}

/// `GET /api/leaderboard/stream`: served by one of this location's hubs.
pub(crate) async fn stream(req: &Request, cx: &Cx<'_>) -> Result<Response> {
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
    let hub = hub_stub(cx.env, crate::colo(req), shard)?;
    hub.fetch_with_request(Request::new_with_init("http://hub/sse", &init)?)
        .await
}
