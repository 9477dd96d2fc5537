//! The edge worker (Cloudflare Workers, wasm): the public API near the player. Glue around
//! `scoreboard-protocol`: parse the request, call pure code, call bindings, build the response.
//!
//! | module | what |
//! | --- | --- |
//! | this file | entry point, routing, forwarding of sign-in and reads, health, headers, logs |
//! | `scores` | `POST /api/actions` (mint from the catalog) and `POST /api/scores` (verify, limit, forward) |
//! | `gate` | the `PlayerGate` Durable Object: exact per-player GCRA and the redeemed-`jti` set |
//! | `hub` | the `LeaderboardHub` Durable Object: one upstream WebSocket, SSE to every client |
//! | `page` | the player page at `/` (HTML, script, style compiled in) and `GET /api/actions` |

use futures_util::future::Either;
use scoreboard_protocol::{edge_signature, ErrorBody, ErrorCode};
use worker::*;

mod gate;
mod hub;
mod page;
mod scores;

/// A refusal with its code and an optional `Retry-After`.
#[derive(Debug)]
pub(crate) struct ClientError(pub(crate) ErrorCode, pub(crate) Option<u64>);

impl ClientError {
    pub(crate) fn response(&self) -> Response {
        json_error(self.0, self.1)
    }
}

/// A JSON response with its content type (worker's `with_headers` would replace it).
pub(crate) fn json_response<T: serde::Serialize>(status: u16, body: &T) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .fixed(serde_json::to_vec(body)?))
}

/// A response with a body that already is JSON.
pub(crate) fn json_raw(status: u16, body: Vec<u8>) -> Result<Response> {
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .fixed(body))
}

/// This location's first hub's snapshot, when it has a live one.
async fn hub_snapshot(req: &Request, env: &Env) -> Option<Response> {
    let colo = req
        .cf()
        .map(|cf| cf.colo())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "local".into());
    let hub = env
        .durable_object("LEADERBOARD_HUB")
        .ok()?
        .id_from_name(&format!("{colo}:0"))
        .ok()?
        .get_stub()
        .ok()?;
    let resp = hub.fetch_with_str("http://hub/snapshot").await.ok()?;
    (resp.status_code() == 200).then_some(resp)
}

/// `GET /api/leaderboard/stream`: served by this location's hub.
async fn stream(req: &Request, env: &Env, rid: &str) -> Result<Response> {
    let colo = req
        .cf()
        .map(|cf| cf.colo())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "local".into());
    let shards: u32 = var(env, "HUB_SHARDS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    // Spread clients over shards by request id, which is random per request.
    let shard = rid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % shards;
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
    let hub = env
        .durable_object("LEADERBOARD_HUB")?
        .id_from_name(&format!("{colo}:{shard}"))?
        .get_stub()?;
    hub.fetch_with_request(Request::new_with_init("http://hub/sse", &init)?)
        .await
}

/// Sends with a timeout; `None` when it ran out (the request is aborted).
pub(crate) async fn send_with_timeout(req: Request, timeout_ms: u64) -> Option<Result<Response>> {
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(req);
    let send = std::pin::pin!(fetch.send_with_signal(&signal));
    let timeout = Delay::from(std::time::Duration::from_millis(timeout_ms));
    match futures_util::future::select(send, timeout).await {
        Either::Left((r, _)) => Some(r),
        Either::Right(_) => {
            controller.abort();
            None
        }
    }
}

/// Longest we wait for the aggregator on one forwarded request.
const UPSTREAM_TIMEOUT_MS: u64 = 5_000;

/// Response headers every answer carries.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "strict-transport-security",
        "max-age=31536000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
];

pub(crate) fn json_error(code: ErrorCode, retry_after: Option<u64>) -> Response {
    let body = serde_json::to_string(&ErrorBody::from_code(code)).unwrap_or_default();
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    if let Some(s) = retry_after {
        let _ = headers.set("retry-after", &s.to_string());
    }
    ResponseBuilder::new()
        .with_status(code.status())
        .with_headers(headers)
        .fixed(body.into_bytes())
}

pub(crate) fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
        .filter(|v| !v.is_empty())
}

/// A request id: the client's if it is sane, else a random one.
fn request_id(req: &Request) -> String {
    if let Ok(Some(id)) = req.headers().get("x-request-id") {
        if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
            return id;
        }
    }
    let mut bytes = [0u8; 16];
    if getrandom_js(&mut bytes).is_err() {
        return format!("edge-{}", Date::now().as_millis());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

#[event(fetch)]
pub async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let started = Date::now().as_millis();
    let rid = request_id(&req);
    let method = req.method().to_string();
    let path = req.path();
    let route = route_name(&req.method(), &path);
    let mut resp = match handle(&mut req, &env, &rid, route).await {
        Ok(r) => r,
        Err(e) => {
            // A bare `Err` would become an empty 500: log it and answer in our shape.
            console_error!("{{\"level\":\"error\",\"service\":\"scoreboard-edge\",\"requestId\":\"{rid}\",\"message\":\"unhandled error\",\"data\":{{\"error\":{}}}}}", serde_json::to_string(&e.to_string()).unwrap_or_default());
            json_error(ErrorCode::InternalError, None)
        }
    };
    let cors = cors_origin(&req, &env);
    let headers = resp.headers_mut();
    if let Some(origin) = cors {
        let _ = headers.set("access-control-allow-origin", &origin);
        let _ = headers.set("vary", "origin");
        let _ = headers.set("access-control-allow-methods", "GET, POST, OPTIONS");
        let _ = headers.set(
            "access-control-allow-headers",
            "authorization, content-type, last-event-id",
        );
        let _ = headers.set("access-control-max-age", "600");
    }
    for (k, v) in SECURITY_HEADERS {
        let _ = headers.set(k, v);
    }
    if !headers.has("content-security-policy").unwrap_or(false) {
        let _ = headers.set("content-security-policy", page::API_CSP);
    }
    let _ = headers.set("x-request-id", &rid);
    let line = serde_json::json!({
        "timestamp": scoreboard_protocol::snapshot::rfc3339_millis(Date::now().as_millis() as i64),
        "level": "info",
        "service": "scoreboard-edge",
        "requestId": rid,
        "userId": null,
        "message": "request completed",
        "data": {"method": method, "path": route, "status": resp.status_code(),
                 "duration_ms": Date::now().as_millis().saturating_sub(started)},
    });
    console_log!("{line}");
    Ok(resp)
}

/// The route a path matches, as logged (never the raw path, which may carry ids).
fn route_name(method: &Method, path: &str) -> &'static str {
    match (method, path) {
        (Method::Get, "/") => "/",
        (Method::Get, "/assets/app.js") => "/assets/app.js",
        (Method::Get, "/assets/app.css") => "/assets/app.css",
        (Method::Get, "/api/actions") => "/api/actions",
        (Method::Get, "/health") => "/health",
        (Method::Get, "/api/leaderboard") => "/api/leaderboard",
        (Method::Get, p) if p.starts_with("/api/players/") => "/api/players/{id}",
        (Method::Post, "/api/auth/guest") => "/api/auth/guest",
        (Method::Post, "/api/auth/register") => "/api/auth/register",
        (Method::Post, "/api/auth/login") => "/api/auth/login",
        (Method::Post, "/api/auth/logout") => "/api/auth/logout",
        (Method::Post, "/api/actions") => "/api/actions",
        (Method::Post, "/api/scores") => "/api/scores",
        (Method::Get, "/api/leaderboard/stream") => "/api/leaderboard/stream",
        _ => "unmatched",
    }
}

/// The per-IP limit of the routes that write (Workers rate-limiting binding `IP_LIMITER`,
/// coarse and per location), keyed by `cf-connecting-ip`. `None` to go on.
async fn per_ip_limit(req: &Request, env: &Env, route: &str) -> Option<Response> {
    let writes = req.method() == Method::Post;
    let limited = writes
        && (route.starts_with("/api/auth/") || route == "/api/actions" || route == "/api/scores");
    if !limited {
        return None;
    }
    let limiter = env.rate_limiter("IP_LIMITER").ok()?;
    let ip = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .unwrap_or_else(|| "unknown".into());
    match limiter.limit(ip).await {
        Ok(outcome) if !outcome.success => {
            console_warn!("{{\"level\":\"warn\",\"service\":\"scoreboard-edge\",\"message\":\"rate limit hit\",\"data\":{{\"endpoint\":\"ip\"}}}}");
            Some(json_error(ErrorCode::RateLimited, Some(60)))
        }
        _ => None,
    }
}

/// CORS for `CORS_ORIGIN` (one origin, or `*`): the preflight answer, or headers to add.
fn cors_origin(req: &Request, env: &Env) -> Option<String> {
    let allowed = var(env, "CORS_ORIGIN")?;
    let origin = req.headers().get("origin").ok().flatten()?;
    (allowed == "*" || allowed == origin).then_some(if allowed == "*" {
        "*".into()
    } else {
        origin
    })
}

async fn handle(req: &mut Request, env: &Env, rid: &str, route: &'static str) -> Result<Response> {
    if req.method() == Method::Options {
        return Ok(ResponseBuilder::new().with_status(204).empty());
    }
    if let Some(refused) = per_ip_limit(req, env, route).await {
        return Ok(refused);
    }
    let known_path = matches!(
        req.path().as_str(),
        "/" | "/assets/app.js"
            | "/assets/app.css"
            | "/health"
            | "/api/leaderboard"
            | "/api/auth/guest"
            | "/api/auth/register"
            | "/api/auth/login"
            | "/api/auth/logout"
            | "/api/actions"
            | "/api/scores"
            | "/api/leaderboard/stream"
    ) || req.path().starts_with("/api/players/");
    match route {
        "/" | "/assets/app.js" | "/assets/app.css" => {
            page::asset(route).unwrap_or_else(|| Ok(json_error(ErrorCode::NotFound, None)))
        }
        "/health" => health(env).await,
        "/api/actions" if req.method() == Method::Get => page::list_actions(env),
        "/api/actions" => scores::mint(req, env).await,
        "/api/scores" => scores::redeem(req, env, rid).await,
        "/api/leaderboard/stream" => stream(req, env, rid).await,
        "/api/leaderboard" => match hub_snapshot(req, env).await {
            Some(r) => Ok(r),
            None => forward(req, env, rid).await,
        },
        "unmatched" if known_path => Ok(json_error(ErrorCode::MethodNotAllowed, None)),
        "unmatched" => Ok(json_error(ErrorCode::NotFound, None)),
        _ => forward(req, env, rid).await,
    }
}

/// `GET /health`: the edge answers, and says whether the aggregator does.
async fn health(env: &Env) -> Result<Response> {
    let Some(base) = var(env, "AGGREGATOR_URL") else {
        return Ok(Response::from_json(&serde_json::json!({"status": "degraded", "checks": {"edge": "ok", "aggregator": "not configured"}}))?.with_status(503));
    };
    let up = match Fetch::Url(Url::parse(&format!("{base}/health/ready"))?)
        .send()
        .await
    {
        Ok(r) => r.status_code() == 200,
        Err(_) => false,
    };
    let body = serde_json::json!({
        "status": if up { "ok" } else { "degraded" },
        "checks": {"edge": "ok", "aggregator": if up { "ok" } else { "down" }},
    });
    Ok(Response::from_json(&body)?.with_status(if up { 200 } else { 503 }))
}

/// Forwards the request to the aggregator with a request id and the edge signature.
async fn forward(req: &mut Request, env: &Env, rid: &str) -> Result<Response> {
    let Some(base) = var(env, "AGGREGATOR_URL") else {
        return Ok(json_error(ErrorCode::UpstreamUnavailable, Some(5)));
    };
    let body = if req.method() == Method::Post {
        req.bytes().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    if body.len() > scoreboard_protocol::error::MAX_BODY_BYTES {
        return Ok(json_error(ErrorCode::PayloadTooLarge, None));
    }
    let path = req.path();
    let url = req.url()?;
    let headers = Headers::new();
    for name in ["authorization", "content-type", "last-event-id"] {
        if let Ok(Some(v)) = req.headers().get(name) {
            headers.set(name, &v)?;
        }
    }
    headers.set("x-request-id", rid)?;
    if let Some(secret) = var(env, "EDGE_FORWARD_SECRET") {
        let t = (Date::now().as_millis() / 1000) as i64;
        let method = req.method().to_string();
        headers.set(
            edge_signature::HEADER,
            &edge_signature::header_value(secret.as_bytes(), t, &method, &path, &body),
        )?;
    }
    let mut init = RequestInit::new();
    init.with_method(req.method()).with_headers(headers);
    if !body.is_empty() {
        init.with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
    }
    let target = format!(
        "{base}{path}{}",
        url.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    let upstream = Request::new_with_init(&target, &init)?;
    match send_with_timeout(upstream, UPSTREAM_TIMEOUT_MS).await {
        // The aggregator answered: pass its answer on, unless it is a 5xx of ours to hide.
        Some(Ok(r)) if r.status_code() < 500 || r.status_code() == 503 => Ok(r),
        _ => Ok(json_error(ErrorCode::UpstreamUnavailable, Some(1))),
    }
}
