//! Building answers: JSON bodies with their content type, the one error shape, and the headers
//! every answer carries (security headers, CORS, the request id).

use crate::config::EdgeConfig;
use scoreboard_protocol::{ErrorBody, ErrorCode};
use worker::{Headers, Request, Response, ResponseBody, ResponseBuilder, Result};

/// The body of a response as text, read by the runtime in one call. (worker's own `text()`
/// pulls a fetched body through a Rust stream, chunk by chunk across the JS boundary: a
/// twelfth of the worker's CPU per score when the gate answered with a body.)
pub(crate) async fn text_of(resp: &mut Response) -> Result<String> {
    let ResponseBody::Stream(stream) = resp.body() else {
        return resp.text().await;
    };
    let raw = worker::web_sys::Response::new_with_opt_readable_stream(Some(stream))?;
    let text = worker::wasm_bindgen_futures::JsFuture::from(raw.text()?).await?;
    text.as_string()
        .ok_or_else(|| worker::Error::RustError("a body that is not text".into()))
}

/// The body of a response as JSON, read as [`text_of`] does.
pub(crate) async fn json_of<T: serde::de::DeserializeOwned>(resp: &mut Response) -> Result<T> {
    Ok(serde_json::from_str(&text_of(resp).await?)?)
}

/// A refusal: its code, the sentence the client reads (the code's own unless a check says
/// more), and an optional `Retry-After` (seconds).
#[derive(Debug)]
pub(crate) struct ClientError {
    pub(crate) code: ErrorCode,
    message: Option<String>,
    retry_after: Option<u64>,
}

impl ClientError {
    pub(crate) fn code(code: ErrorCode) -> Self {
        Self {
            code,
            message: None,
            retry_after: None,
        }
    }

    pub(crate) fn with_message(mut self, message: String) -> Self {
        self.message = Some(message);
        self
    }

    pub(crate) fn retry_after(mut self, secs: Option<u64>) -> Self {
        self.retry_after = secs;
        self
    }

    pub(crate) fn response(&self) -> Response {
        let body = match &self.message {
            Some(m) => ErrorBody::new(self.code, m.clone()),
            None => ErrorBody::from_code(self.code),
        };
        json_error_body(&body, self.retry_after)
    }
}

/// A JSON response with its content type (worker's `with_headers` would replace it).
pub(crate) fn json_response<T: serde::Serialize>(status: u16, body: &T) -> Result<Response> {
    json_raw(status, serde_json::to_vec(body)?)
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

/// `{"error": {"code", "message"}}` with the code's status and default message.
pub(crate) fn json_error(code: ErrorCode, retry_after: Option<u64>) -> Response {
    json_error_body(&ErrorBody::from_code(code), retry_after)
}

/// An error body of our shape, with its code's status.
pub(crate) fn json_error_body(body: &ErrorBody, retry_after: Option<u64>) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    if let Some(s) = retry_after {
        let _ = headers.set("retry-after", &s.to_string());
    }
    ResponseBuilder::new()
        .with_status(body.error.code.status())
        .with_headers(headers)
        .fixed(bytes)
}

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

/// Adds CORS (for `CORS_ORIGIN`), the security headers, a CSP where the answer has none (the
/// page sets its own) and the request id.
///
/// They go on a copy of the answer's headers: an answer relayed from a fetch (the aggregator's,
/// a hub's stream) has immutable headers, where every `set` failed (a JS `TypeError` each, with
/// its stack captured) and the relayed answer went out without them.
pub(crate) fn finish(req: &Request, config: &EdgeConfig, resp: Response, rid: &str) -> Response {
    let headers = resp.headers().clone();
    if let Some(origin) = cors_origin(req, config) {
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
        let _ = headers.set("content-security-policy", crate::page::API_CSP);
    }
    let _ = headers.set("x-request-id", rid);
    resp.with_headers(headers)
}

/// The origin to allow: the configured one (one origin, or `*`) when the request comes from it.
fn cors_origin(req: &Request, config: &EdgeConfig) -> Option<String> {
    let allowed = config.shared.cors_origin.as_deref()?;
    let origin = req.headers().get("origin").ok().flatten()?;
    if allowed == "*" {
        Some("*".into())
    } else {
        (allowed == origin).then_some(origin)
    }
}
