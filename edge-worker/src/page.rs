//! The player page at `/` and its two assets, compiled into the worker: no build step, no CDN,
//! and one deploy ships API and page together. `GET /api/actions` lists the catalog it shows
//! (with the boards of the actions that name them); the page reads boards, streams and
//! standings from the public API like any client.

use crate::config::EdgeConfig;
use crate::json_response;
use scoreboard_protocol::BoardId;
use serde::Serialize;
use worker::*;

const INDEX_HTML: &str = include_str!("../page/index.html");
const APP_JS: &str = include_str!("../page/app.js");
const APP_CSS: &str = include_str!("../page/app.css");

/// The page loads only its own script, style and API: a name that slipped into the markup as
/// HTML still could not run a script or load an image from elsewhere.
pub(crate) const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// What every other response carries: nothing in it may load or run anything.
pub(crate) const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// `GET /`, `GET /assets/app.js`, `GET /assets/app.css`; `None` for any other path.
pub(crate) fn asset(path: &str) -> Option<Result<Response>> {
    let (body, content_type) = match path {
        "/" => (INDEX_HTML, "text/html; charset=utf-8"),
        "/assets/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "/assets/app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    Some((|| {
        let headers = Headers::new();
        headers.set("content-type", content_type)?;
        // Revalidate each time: a deploy must reach every open page at its next load.
        headers.set("cache-control", "no-cache")?;
        headers.set("content-security-policy", PAGE_CSP)?;
        Ok(ResponseBuilder::new()
            .with_status(200)
            .with_headers(headers)
            .fixed(body.as_bytes().to_vec()))
    })())
}

#[derive(Serialize)]
struct CatalogView<'a> {
    action: &'a str,
    points: i64,
    min_seconds: i64,
    /// The boards a token minted for it counts on; absent: `global` only. The page names them
    /// on the action's button.
    #[serde(skip_serializing_if = "Option::is_none")]
    boards: Option<&'a [BoardId]>,
}

/// `GET /api/actions`: what `POST /api/actions` can mint, so a client can offer it.
pub(crate) fn list_actions(config: &EdgeConfig) -> Result<Response> {
    let actions: Vec<CatalogView<'_>> = config
        .shared
        .catalog
        .iter()
        .map(|(name, e)| CatalogView {
            action: name.as_str(),
            points: e.points,
            min_seconds: e.min_seconds,
            boards: e.boards.as_deref(),
        })
        .collect();
    json_response(200, &serde_json::json!({ "actions": actions }))
}
