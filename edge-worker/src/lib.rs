//! The edge worker (Cloudflare Workers, wasm): the public API near the player. Glue around
//! `scoreboard-protocol`: parse the request, call pure code, call bindings, build the response.
//!
//! | module | what |
//! | --- | --- |
//! | this file | entry point: request id, configuration, the route, the answer's headers, the log line |
//! | `routes` | the one route table: methods, paths, names, handlers, per-IP limit |
//! | `config` | the typed configuration, read once per isolate, with every problem named |
//! | `respond` | JSON answers, the error shape, security and CORS headers |
//! | `upstream` | calls to the aggregator with deadlines: the generic forward, `/health` |
//! | `scores` | `POST /api/actions` (mint from the catalog) and `POST /api/scores` (verify, limit, forward) |
//! | `gate` | the `PlayerGate` Durable Object: exact per-player GCRA and the redeemed-`jti` set |
//! | `hub` | the `LeaderboardHub` Durable Object: one upstream WebSocket, SSE and WebSockets to every client |
//! | `follow` | which hub serves a client (the board's root hub, or the relay it names), a live hub's snapshot |
//! | `fanout` | the hub's fan-out loops (`fanout.js`): native SSE streams fed the same bytes, WebSocket sends |
//! | `page` | the player page at `/` (HTML, script, style compiled in) and `GET /api/actions` |
//! | `log` | console lines in the protocol's log-line shape |

use scoreboard_protocol::http::{request_id_from_client, REQUEST_ID_HEADER};
use scoreboard_protocol::ErrorCode;
use worker::*;

mod boards;
mod config;
mod fanout;
mod follow;
mod gate;
mod hub;
mod log;
mod page;
mod respond;
mod routes;
mod scores;
mod upstream;

pub(crate) use respond::{json_error, json_raw, json_response, ClientError};

/// What every handler gets besides the request.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    pub(crate) env: &'a Env,
    pub(crate) config: &'a config::EdgeConfig,
    /// The request id: the client's when it is short and safe, else a fresh one.
    pub(crate) rid: &'a str,
}

/// A request id: the client's if it passes the protocol's rule, else a fresh one.
fn request_id(req: &Request) -> String {
    let client = req.headers().get(REQUEST_ID_HEADER).ok().flatten();
    if let Some(id) = request_id_from_client(client.as_deref()) {
        return id.to_owned();
    }
    fresh_request_id()
}

thread_local! {
    /// 64 random bits per isolate, then a count: ids unique across isolates and requests
    /// without asking Web Crypto (two calls across the JS boundary) for every request. A
    /// request id names a request in logs; it is not a secret.
    static REQUEST_IDS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

fn fresh_request_id() -> String {
    REQUEST_IDS.with(|ids| {
        let (mut prefix, n) = ids.get();
        if prefix == 0 {
            let mut seed = [0u8; 8];
            prefix = match getrandom_js(&mut seed) {
                Ok(()) => u64::from_le_bytes(seed) | 1,
                Err(_) => Date::now().as_millis() | 1,
            };
        }
        ids.set((prefix, n.wrapping_add(1)));
        format!("{prefix:016x}{n:016x}")
    })
}

/// Web Crypto randomness through the worker's global `crypto`.
pub(crate) fn getrandom_js(buf: &mut [u8]) -> Result<()> {
    let crypto = worker::js_sys::Reflect::get(&worker::js_sys::global(), &"crypto".into())
        .map_err(|_| Error::RustError("no crypto".into()))?;
    let array = worker::js_sys::Uint8Array::new_with_length(buf.len() as u32);
    let get = worker::js_sys::Reflect::get(&crypto, &"getRandomValues".into())
        .map_err(|_| Error::RustError("no getRandomValues".into()))?;
    let f: worker::js_sys::Function = get.into();
    f.call1(&crypto, &array)
        .map_err(|_| Error::RustError("getRandomValues failed".into()))?;
    array.copy_to(buf);
    Ok(())
}

/// This request's Cloudflare location, `local` under `wrangler dev` without one.
pub(crate) fn colo(req: &Request) -> Option<String> {
    req.cf().map(|cf| cf.colo()).filter(|c| !c.is_empty())
}

#[event(fetch)]
pub async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let started = Date::now().as_millis();
    let rid = request_id(&req);
    let config = config::get(&env);
    let method = req.method();
    let found = routes::lookup(&method, &req.path());
    let cx = Cx {
        env: &env,
        config: &config,
        rid: &rid,
    };
    let resp = match routes::handle(&mut req, &cx, &found).await {
        Ok(r) => r,
        Err(e) => {
            // A bare `Err` would become an empty 500: log it and answer in our shape.
            log::error(
                Some(&rid),
                "unhandled error",
                serde_json::json!({"error": e.to_string()}),
            );
            json_error(ErrorCode::InternalError, None)
        }
    };
    let resp = respond::finish(&req, &config, resp, &rid);
    log::info(
        log::Subject::request(&rid),
        "request completed",
        serde_json::json!({
            "method": method.to_string(),
            "path": found.name(),
            "status": resp.status_code(),
            "duration_ms": Date::now().as_millis().saturating_sub(started),
        }),
    );
    Ok(resp)
}
