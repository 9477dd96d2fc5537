//! Calls to the aggregator: every one with a deadline, edge-signed where the aggregator
//! checks it. The generic forward of sign-in and reads, and `GET /health`.

use crate::respond::json_error;
use crate::Cx;
use scoreboard_protocol::http::{MAX_BODY_BYTES, REQUEST_ID_HEADER};
use scoreboard_protocol::{edge_signature, ErrorCode};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::*;

/// Longest we wait for the aggregator on one forwarded request.
pub(crate) const UPSTREAM_TIMEOUT_MS: u64 = 5_000;

/// Longest `/health` waits for the aggregator's readiness: a health check is polled by load
/// balancers and uptime monitors with their own short timeouts, so it must answer first.
const HEALTH_TIMEOUT_MS: u64 = 2_000;

/// What an outbound call sends: built straight on the runtime's `RequestInit`, with the
/// deadline in it (the runtime's own `AbortSignal.timeout`, not a timer raced against the
/// fetch in wasm; `None` when it ran out, the request aborted), so that the runtime builds one `Request` (worker's `Request` + `Fetch`
/// build it twice: once from worker's own init, again in `fetch(request, {signal})`).
pub(crate) struct Call<'a> {
    pub(crate) method: &'a str,
    pub(crate) headers: Option<&'a Headers>,
    pub(crate) body: Option<&'a JsValue>,
    pub(crate) timeout_ms: u64,
}

impl Call<'_> {
    /// The init, and the deadline's signal in it.
    fn init(&self) -> (web_sys::RequestInit, web_sys::AbortSignal) {
        let init = web_sys::RequestInit::new();
        init.set_method(self.method);
        if let Some(headers) = self.headers {
            init.set_headers(headers.as_ref());
        }
        if let Some(body) = self.body {
            init.set_body(body);
        }
        let ms = u32::try_from(self.timeout_ms).unwrap_or(u32::MAX);
        let signal = web_sys::AbortSignal::timeout_with_u32(ms);
        init.set_signal(Some(&signal));
        (init, signal)
    }

    /// Fetches `url`; `None` when the deadline passed first.
    pub(crate) async fn fetch(&self, url: &str) -> Option<Result<Response>> {
        let (init, signal) = self.init();
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        settle(global.fetch_with_str_and_init(url, &init), &signal).await
    }

    /// Calls a Durable Object through `stub` at `url`; `None` when the deadline passed first.
    pub(crate) async fn fetch_object(
        &self,
        stub: &ObjectStub,
        url: &str,
    ) -> Option<Result<Response>> {
        let (init, signal) = self.init();
        settle(stub.fetch_with_init(url, &init), &signal).await
    }
}

async fn settle(
    promise: js_sys::Promise,
    signal: &web_sys::AbortSignal,
) -> Option<Result<Response>> {
    match wasm_bindgen_futures::JsFuture::from(promise).await {
        Ok(v) => Some(
            v.dyn_into::<web_sys::Response>()
                .map(Response::from)
                .map_err(Error::from),
        ),
        Err(_) if signal.aborted() => None,
        Err(e) => Some(Err(Error::from(e))),
    }
}

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// A Durable Object stub, with the `fetch(url, init)` form worker's `Stub` lacks.
    pub(crate) type ObjectStub;

    #[wasm_bindgen(method, js_name = fetch)]
    fn fetch_with_init(
        this: &ObjectStub,
        url: &str,
        init: &web_sys::RequestInit,
    ) -> js_sys::Promise;
}

/// A `GET` of `url` with a timeout: the answer, or `None` when there was none in time.
pub(crate) async fn get_with_timeout(url: &str, timeout_ms: u64) -> Option<Response> {
    let call = Call {
        method: "GET",
        headers: None,
        body: None,
        timeout_ms,
    };
    call.fetch(url).await?.ok()
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
    let body = (!body.is_empty()).then(|| JsValue::from(js_sys::Uint8Array::from(body.as_slice())));
    let target = format!(
        "{base}{path}{}",
        url.query().map(|q| format!("?{q}")).unwrap_or_default()
    );
    let method = req.method();
    let call = Call {
        method: method.as_ref(),
        headers: Some(&headers),
        body: body.as_ref(),
        timeout_ms: UPSTREAM_TIMEOUT_MS,
    };
    match call.fetch(&target).await {
        // The aggregator answered: pass its answer on, unless it is a 5xx of ours to hide.
        Some(Ok(r)) if r.status_code() < 500 || r.status_code() == 503 => Ok(r),
        _ => Ok(json_error(ErrorCode::UpstreamUnavailable, Some(1))),
    }
}
