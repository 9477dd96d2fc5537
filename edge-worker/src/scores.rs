//! `POST /api/actions` (mint an action token from the catalog) and `POST /api/scores` (check
//! everything near the player, then forward to the aggregator), in DESIGN.md's order.

use crate::gate::{self, Admit, AdmitRequest, TokenRef};
use crate::log::{self, Subject};
use crate::upstream::{now_secs, Call, UPSTREAM_TIMEOUT_MS};
use crate::{json_error, json_response, ClientError, Cx};
use scoreboard_protocol::action::{ActionClaims, ActionTokenError, ActionTokens, MintRequest};
use scoreboard_protocol::http::{self, BodyError, INTERNAL_SCORES_PATH, REQUEST_ID_HEADER};
use scoreboard_protocol::session::Session;
use scoreboard_protocol::snapshot::{
    rfc3339_millis, ForwardedScore, PlayerView, ScoreRequest, Standing,
};
use scoreboard_protocol::{edge_signature, BoardId, ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use worker::*;

/// Attempts at the aggregator before answering 503 (safe: it is idempotent on `jti`).
const FORWARD_ATTEMPTS: u32 = 3;

/// Verifies the bearer session: `401 UNAUTHENTICATED` on any failure; 500 when the edge has
/// no key to verify with.
fn authenticate(req: &Request, cx: &Cx<'_>) -> std::result::Result<Session, ClientError> {
    let header = req.headers().get("authorization").ok().flatten();
    let token = http::bearer_token(header.as_deref())
        .ok_or(ClientError::code(ErrorCode::Unauthenticated))?;
    let verifier = cx
        .config
        .sessions
        .as_ref()
        .ok_or(ClientError::code(ErrorCode::InternalError))?;
    verifier.verify(token, now_secs()).map_err(|_| {
        log::warn(
            Subject::request(cx.rid),
            "auth failed",
            serde_json::json!({}),
        );
        ClientError::code(ErrorCode::Unauthenticated)
    })
}

/// The body by the protocol's rules: `415` (before reading it), `413`, `400`.
async fn json_body<T: DeserializeOwned>(req: &mut Request) -> std::result::Result<T, Response> {
    let refuse = |e: BodyError| {
        crate::respond::json_error_body(&ErrorBody::new(e.code(), e.message()), None)
    };
    let content_type = req.headers().get("content-type").ok().flatten();
    if !http::is_json_content_type(content_type.as_deref()) {
        return Err(refuse(BodyError::NotJson));
    }
    let bytes = req
        .bytes()
        .await
        .map_err(|_| json_error(ErrorCode::BadRequest, None))?;
    http::parse_json_bytes(&bytes).map_err(refuse)
}

fn action_tokens<'a>(cx: &'a Cx<'_>) -> std::result::Result<&'a ActionTokens, ClientError> {
    cx.config
        .action_tokens
        .as_ref()
        .ok_or(ClientError::code(ErrorCode::InternalError))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    action: String,
}

/// `POST /api/actions`.
pub(crate) async fn mint(req: &mut Request, cx: &Cx<'_>) -> Result<Response> {
    let session = match authenticate(req, cx) {
        Ok(s) => s,
        Err(e) => return Ok(e.response()),
    };
    let body: ActionRequest = match json_body(req).await {
        Ok(b) => b,
        Err(refused) => return Ok(refused),
    };
    let Some((action, entry)) = cx.config.shared.catalog.get(&body.action) else {
        return Ok(json_error(ErrorCode::UnknownAction, None));
    };
    let tokens = match action_tokens(cx) {
        Ok(t) => t,
        Err(e) => return Ok(e.response()),
    };
    let mut jti = [0u8; 16];
    crate::getrandom_js(&mut jti)?;
    let minted = tokens.mint(
        &MintRequest {
            player: &session.player_id,
            action,
            points: entry.points,
            min_seconds: entry.min_seconds,
            ttl_secs: cx.config.shared.action_token_ttl_secs,
            // The entry's boards travel in the token (`brd`), so the aggregator applies it to
            // them even if its own catalog differs (a deploy in progress).
            boards: entry.boards.as_deref(),
        },
        &jti,
        now_secs(),
    );
    let minted = match minted {
        Ok(m) => m,
        Err(e) => {
            // The catalog is checked when the configuration is read: this is a bug.
            log::error(
                Some(cx.rid),
                "a catalog entry cannot be minted",
                serde_json::json!({"action": body.action, "error": e.to_string()}),
            );
            return Ok(json_error(ErrorCode::InternalError, None));
        }
    };
    json_response(
        201,
        &serde_json::json!({
            "action_token": minted.token,
            "expires_at": rfc3339_millis(minted.claims.exp * 1000),
            "not_before": rfc3339_millis(minted.claims.nbf * 1000),
            "points": minted.claims.pts,
        }),
    )
}

/// `POST /api/scores`.
pub(crate) async fn redeem(req: &mut Request, cx: &Cx<'_>) -> Result<Response> {
    let session = match authenticate(req, cx) {
        Ok(s) => s,
        Err(e) => return Ok(e.response()),
    };
    let body: ScoreRequest = match json_body(req).await {
        Ok(b) => b,
        Err(refused) => return Ok(refused),
    };
    let player = session.player_id.to_string();
    let who = Subject::request(cx.rid).user(&player);
    // Verifying is pure, so it runs before the gate call and the gate gets the limit and the
    // token in one call; the answers still come in DESIGN.md's order (429 before 422).
    let verified = verify(cx, &body.action_token, &session);
    let ask = AdmitRequest {
        now_ms: Date::now().as_millis(),
        limit: cx.config.shared.rate_limit_score_update,
        window_ms: cx.config.shared.rate_limit_window_ms,
        token: verified.as_ref().ok().map(|c| TokenRef {
            jti: c.jti.clone(),
            exp: c.exp,
        }),
    };
    let admit = match gate::admit_at(cx.env, &player, &ask).await {
        Ok(a) => a,
        Err(e) => {
            // Nothing was consumed: the same request may be retried.
            log::error(
                Some(cx.rid),
                "player gate failed",
                serde_json::json!({"error": e.to_string()}),
            );
            return Ok(json_error(ErrorCode::UpstreamUnavailable, Some(1)));
        }
    };
    if let Admit::RateLimited { retry_after_ms } = admit {
        log::warn(
            who,
            "rate limit hit",
            serde_json::json!({"endpoint": "scores"}),
        );
        let retry = retry_after_ms.div_ceil(1000).max(1);
        return Ok(json_error(ErrorCode::RateLimited, Some(retry)));
    }
    let claims = match verified {
        Ok(c) => c,
        Err(refused) => {
            log::warn(
                who,
                "action token rejected",
                serde_json::json!({"code": refused.code}),
            );
            return Ok(refused.response());
        }
    };
    if admit == Admit::Replayed {
        log::warn(
            who,
            "action token replayed",
            serde_json::json!({"refused_by": "gate"}),
        );
        let boards = cx.config.shared.catalog.boards_of(&claims);
        return replayed(cx, &player, &boards).await;
    }
    let outcome = forward_score(req, cx, &body.action_token).await?;
    if !matches!(outcome.status_code(), 200 | 409) {
        // Not applied (refused, or the aggregator stayed away): forget the token before
        // answering, so the retry the answer invites reaches the aggregator again.
        release(cx, &player, claims.jti, claims.exp).await;
    }
    Ok(outcome)
}

/// Forgets a token at the gate. If that fails the token stays marked there until the gate is
/// evicted or the token expires, and a retry is answered `409` without reaching the
/// aggregator: logged as an error, and the answer to the player is unchanged.
async fn release(cx: &Cx<'_>, player: &str, jti: String, exp: i64) {
    let token = TokenRef { jti, exp };
    if let Err(e) = gate::release_at(cx.env, player, &token).await {
        log::error(
            Some(cx.rid),
            "releasing an unapplied token at the gate failed",
            serde_json::json!({"error": e.to_string()}),
        );
    }
}

/// The action token's claims, or the refusal (with `Retry-After` before its `nbf`).
fn verify(
    cx: &Cx<'_>,
    token: &str,
    session: &Session,
) -> std::result::Result<ActionClaims, ClientError> {
    let claims = action_tokens(cx)?.verify(token, &session.player_id, now_secs(), 0);
    claims.map_err(|e| {
        let retry = match e {
            ActionTokenError::NotYetValid { retry_after } => Some(retry_after.max(1) as u64),
            _ => None,
        };
        ClientError::code(e.code())
            .with_message(e.message())
            .retry_after(retry)
    })
}

/// `409` for a token this player's gate has seen redeemed, with where the player stands on
/// the token's boards (`score` and `boards`, as the aggregator's own `409` says it) when the
/// aggregator tells it in time.
async fn replayed(cx: &Cx<'_>, player: &str, boards: &[BoardId]) -> Result<Response> {
    let mut body = ErrorBody::from_code(ErrorCode::ActionTokenReplayed);
    if let Some(base) = &cx.config.aggregator_url {
        let url = format!("{base}/api/players/{player}");
        if let Some(mut r) = crate::upstream::get_with_timeout(&url, UPSTREAM_TIMEOUT_MS).await {
            if let Ok(view) = crate::respond::json_of::<PlayerView>(&mut r).await {
                body = stood(body, &view, boards);
            }
        }
    }
    json_response(409, &body)
}

/// A replay's body from the player's view: their standings on `boards`, in the token's order;
/// for a `global` token without a standing yet, the view's `score`.
fn stood(body: ErrorBody, view: &PlayerView, boards: &[BoardId]) -> ErrorBody {
    let standings: Vec<Standing> = boards
        .iter()
        .filter_map(|b| view.boards.iter().find(|s| s.board == *b).cloned())
        .collect();
    match boards.first() {
        Some(b) if b.is_global() && standings.first().is_none_or(|s| s.board != *b) => {
            body.with_score(view.score)
        }
        _ => body.with_boards(standings),
    }
}

/// Forwards to `/internal/scores` with the edge signature, retrying connection errors and
/// answers that do not settle the update (5xx, 408: `http::answer_is_final`) with backoff and
/// jitter, always with the same token; `503 UPSTREAM_UNAVAILABLE` when the aggregator stays
/// away or keeps not knowing.
async fn forward_score(req: &Request, cx: &Cx<'_>, action_token: &str) -> Result<Response> {
    let (Some(base), Some(secret)) = (&cx.config.aggregator_url, &cx.config.edge_secret) else {
        return Ok(json_error(ErrorCode::UpstreamUnavailable, Some(5)));
    };
    let region = crate::colo(req)
        .or_else(|| cx.config.edge_region.clone())
        .unwrap_or_else(|| "local".into());
    let body = serde_json::to_string(&ForwardedScore {
        action_token: action_token.to_owned(),
        edge_region: region,
    })?;
    let auth = req.headers().get("authorization")?.unwrap_or_default();
    let url = format!("{base}{INTERNAL_SCORES_PATH}");
    let body_js = worker::wasm_bindgen::JsValue::from_str(&body);
    for attempt in 0..FORWARD_ATTEMPTS {
        if attempt > 0 {
            let mut jitter = [0u8; 1];
            let _ = crate::getrandom_js(&mut jitter);
            let backoff = 100u64 * 3u64.pow(attempt - 1) + u64::from(jitter[0]) % 100;
            Delay::from(std::time::Duration::from_millis(backoff)).await;
        }
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        headers.set("authorization", &auth)?;
        headers.set(REQUEST_ID_HEADER, cx.rid)?;
        let signature = edge_signature::header_value(
            secret.expose(),
            now_secs(),
            "POST",
            INTERNAL_SCORES_PATH,
            body.as_bytes(),
        );
        headers.set(edge_signature::HEADER, &signature)?;
        let call = Call {
            method: "POST",
            headers: Some(&headers),
            body: Some(&body_js),
            timeout_ms: UPSTREAM_TIMEOUT_MS,
        };
        match call.fetch(&url).await {
            Some(Ok(r)) if http::answer_is_final(r.status_code()) => return Ok(r),
            _ => continue,
        }
    }
    Ok(json_error(ErrorCode::UpstreamUnavailable, Some(2)))
}
