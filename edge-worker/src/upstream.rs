//! Calls to the aggregator: every one with a deadline, edge-signed where the aggregator
//! checks it. The generic forward of sign-in and reads, and `GET /health`.

use crate::respond::json_error;
use crate::Cx;
use scoreboard_protocol::http::{MAX_BODY_BYTES, REQUEST_ID_HEADER};
use scoreboard_protocol::{edge_signature, ErrorCode};
use worker::*;

/// Longest we wait for the aggregator on one forwarded request.
pub(crate) const UPSTREAM_TIMEOUT_MS: u64 = 5_000;

/// Longest `/health` waits for the aggregator's readiness: a health check is polled by load
/// balancers and uptime monitors with their own short timeouts, so it must answer first.
const HEALTH_TIMEOUT_MS: u64 = 2_000;

/// Sends with a timeout; `None` when it ran out (the request is aborted). The deadline is the
/// runtime's own (`AbortSignal.timeout`), not a timer raced against the fetch in wasm.
pub(crate) async fn send_with_timeout(req: Request, timeout_ms: u64) -> Option<Result<Response>> {
    let ms = u32::try_from(timeout_ms).unwrap_or(u32::MAX);
    let signal = AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(ms));
    match Fetch::Request(req).send_with_signal(&signal).await {
        Err(_) if signal.aborted() => None,
        answer => Some(answer),
    }
}

/// A `GET` of `url` with a timeout: the answer, or `None` when there was none in time.
pub(crate) async fn get_with_timeout(url: &str, timeout_ms: u64) -> Option<Response> {
    let req = Request::new(url, Method::Get).ok()?;
    send_with_timeout(req, timeout_ms).await?.ok()
}

/// Now, in unix seconds (the edge signature's `t`).
pub(crate) fn now_secs() -> i64 {
    (Date::now().as_millis() / 1000) as i64
}

/// `GET /health`: the edge answers, and says whether its configuration is sound and whether
/// the aggregator answers.
pub(crate) async fn health(cx: &Cx<'_>) -> Result<Response> {
    let config_ok = cx.config.problems.is_empty();
    let aggregator = match &cx.config.aggregator_url {
        None => "not configured",
        Some(base) => {
            match get_with_timeout(&format!("{base}/health/ready"), HEALTH_TIMEOUT_MS).await {
                Some(r) if r.status_code() == 200 => "ok",
                _ => "down",
            }
        }
    };
    let ok = config_ok && aggregator == "ok";
    let mut body = serde_json::json!({
        "status": if ok { "ok" } else { "degraded" },
        "checks": {"edge": if config_ok { "ok" } else { "misconfigured" }, "aggregator": aggregator},
    });
    if !config_ok {
        // Names and reasons only: a problem sentence never carries a secret's value.
        body["problems"] = serde_json::json!(cx.config.problems);
    }
    Ok(Response::from_json(&body)?.with_status(if ok { 200 } else { 503 }))
}

/// Forwards the request to the aggregator with a request id and the edge signature.
pub(crate) async fn forward(req: &mut Request, cx: &Cx<'_>) -> Result<Response> {
    let Some(base) = &cx.config.aggregator_url else {
        return Ok(json_error(ErrorCode::UpstreamUnavailable, Some(5)));
    };
    let body = if req.method() == Method::Post {
        req.bytes().await.unwrap_or_default()
    } else {
        Vec::new()
    };
    if body.len() > MAX_BODY_BYTES {
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
    headers.set(REQUEST_ID_HEADER, cx.rid)?;
    if let Some(secret) = &cx.config.edge_secret {
        let method = req.method().to_string();
        headers.set(
            edge_signature::HEADER,
            &edge_signature::header_value(secret.expose(), now_secs(), &method, &path, &body),
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
