//! `POST /api/actions` (mint an action token from the catalog) and `POST /api/scores` (check
//! everything near the player, then forward to the aggregator), in DESIGN.md's order.

use crate::gate::{self, CheckAnswer, CheckRequest, RedeemAnswer, RedeemRequest};
use crate::{json_error, json_response, var, ClientError};
use scoreboard_protocol::action::{ActionTokenError, ActionTokens, MintRequest, DEFAULT_TTL_SECS};
use scoreboard_protocol::jwt::{HmacKeys, HmacSecret};
use scoreboard_protocol::session::{Session, SessionPolicy, SessionVerifier, SessionVerifyingKeys};
use scoreboard_protocol::snapshot::{rfc3339_millis, ForwardedScore, ScoreRequest};
use scoreboard_protocol::{edge_signature, error::MAX_BODY_BYTES, ActionName, ErrorCode};
use serde::Deserialize;
use worker::*;

/// Attempts at the aggregator before answering 503 (safe: it is idempotent on `jti`).
const FORWARD_ATTEMPTS: u32 = 3;
const FORWARD_TIMEOUT_MS: u64 = 5_000;

fn now_secs() -> i64 {
    (Date::now().as_millis() / 1000) as i64
}

fn secret(env: &Env, name: &str) -> Option<HmacSecret> {
    var(env, name).map(|s| HmacSecret::new(s.into_bytes()))
}

fn session_verifier(env: &Env) -> std::result::Result<SessionVerifier, ClientError> {
    let keys = if let Some(pem) = var(env, "JWT_PUBLIC_KEY") {
        SessionVerifyingKeys::ed25519_from_pem(&pem)
            .map_err(|_| ClientError(ErrorCode::InternalError, None))?
    } else {
        let current =
            secret(env, "JWT_SECRET").ok_or(ClientError(ErrorCode::InternalError, None))?;
        SessionVerifyingKeys::Hs256(
            HmacKeys::new(current).with_previous(secret(env, "JWT_SECRET_PREVIOUS")),
        )
    };
    Ok(SessionVerifier::new(
        keys,
        SessionPolicy {
            issuer: var(env, "JWT_ISSUER"),
            audience: var(env, "JWT_AUDIENCE"),
        },
    ))
}

fn action_tokens(env: &Env) -> std::result::Result<ActionTokens, ClientError> {
    let current =
        secret(env, "ACTION_TOKEN_SECRET").ok_or(ClientError(ErrorCode::InternalError, None))?;
    Ok(ActionTokens::new(HmacKeys::new(current).with_previous(
        secret(env, "ACTION_TOKEN_SECRET_PREVIOUS"),
    )))
}

fn number<T: std::str::FromStr>(env: &Env, name: &str, default: T) -> T {
    var(env, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Verifies the bearer session: `401 UNAUTHENTICATED` on any failure.
fn authenticate(req: &Request, env: &Env) -> std::result::Result<Session, ClientError> {
    let header = req
        .headers()
        .get("authorization")
        .ok()
        .flatten()
        .unwrap_or_default();
    let token = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_owned())
        .ok_or(ClientError(ErrorCode::Unauthenticated, None))?;
    session_verifier(env)?
        .verify(&token, now_secs())
        .map_err(|_| ClientError(ErrorCode::Unauthenticated, None))
}

/// `415` unless JSON, `413` past 4 KiB, `400` unless it parses into `T`.
async fn json_body<T: for<'de> Deserialize<'de>>(
    req: &mut Request,
) -> std::result::Result<T, ClientError> {
    let ct = req
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    let is_json = ct
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ClientError(ErrorCode::UnsupportedMediaType, None));
    }
    let bytes = req
        .bytes()
        .await
        .map_err(|_| ClientError(ErrorCode::BadRequest, None))?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ClientError(ErrorCode::PayloadTooLarge, None));
    }
    if !scoreboard_protocol::error::body_is_object(&bytes) {
        return Err(ClientError(ErrorCode::BadRequest, None));
    }
    serde_json::from_slice(&bytes).map_err(|_| ClientError(ErrorCode::BadRequest, None))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionRequest {
    action: String,
}

fn random16() -> Result<[u8; 16]> {
    let mut b = [0u8; 16];
    crate::getrandom_js(&mut b)?;
    Ok(b)
}

/// `POST /api/actions`.
pub(crate) async fn mint(req: &mut Request, env: &Env) -> Result<Response> {
    let session = match authenticate(req, env) {
        Ok(s) => s,
        Err(e) => return Ok(e.response()),
    };
    let body: ActionRequest = match json_body(req).await {
        Ok(b) => b,
        Err(e) => return Ok(e.response()),
    };
    let catalog = crate::page::catalog(env);
    let (Some(entry), Ok(action)) = (
        catalog.get(&body.action),
        ActionName::parse(body.action.clone()),
    ) else {
        return Ok(json_error(ErrorCode::UnknownAction, None));
    };
    let tokens = match action_tokens(env) {
        Ok(t) => t,
        Err(e) => return Ok(e.response()),
    };
    let minted = tokens.mint(
        &MintRequest {
            player: &session.player_id,
            action: &action,
            points: entry.points,
            min_seconds: entry.min_seconds,
            ttl_secs: number(env, "ACTION_TOKEN_TTL", DEFAULT_TTL_SECS),
        },
        &random16()?,
        now_secs(),
    );
    let Ok(minted) = minted else {
        console_error!(
            "the action catalog entry {:?} cannot be minted",
            body.action
        );
        return Ok(json_error(ErrorCode::InternalError, None));
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
pub(crate) async fn redeem(req: &mut Request, env: &Env, rid: &str) -> Result<Response> {
    let session = match authenticate(req, env) {
        Ok(s) => s,
        Err(e) => return Ok(e.response()),
    };
    let body: ScoreRequest = match json_body(req).await {
        Ok(b) => b,
        Err(e) => return Ok(e.response()),
    };
    let player = session.player_id.to_string();
    let check: CheckAnswer = gate::call(
        env,
        &player,
        "/check",
        &CheckRequest {
            now_ms: Date::now().as_millis(),
            limit: number(env, "RATE_LIMIT_SCORE_UPDATE", 10),
            window_ms: number(env, "RATE_LIMIT_WINDOW_MS", 60_000),
        },
    )
    .await?;
    if !check.allow {
        console_warn!("{{\"level\":\"warn\",\"service\":\"scoreboard-edge\",\"requestId\":\"{rid}\",\"userId\":\"{player}\",\"message\":\"rate limit hit\",\"data\":{{\"endpoint\":\"scores\"}}}}");
        return Ok(json_error(
            ErrorCode::RateLimited,
            Some(check.retry_after_ms.div_ceil(1000).max(1)),
        ));
    }
    let tokens = match action_tokens(env) {
        Ok(t) => t,
        Err(e) => return Ok(e.response()),
    };
    let claims = match tokens.verify(&body.action_token, &session.player_id, now_secs(), 0) {
        Ok(c) => c,
        Err(e) => {
            let retry = match e {
                ActionTokenError::NotYetValid { retry_after } => Some(retry_after.max(1) as u64),
                _ => None,
            };
            return Ok(json_error(e.code(), retry));
        }
    };
    let redeem: RedeemAnswer = gate::call(
        env,
        &player,
        "/redeem",
        &RedeemRequest {
            jti: claims.jti.clone(),
            exp: claims.exp,
        },
    )
    .await?;
    if !redeem.fresh {
        return replayed(req, env, &player).await;
    }
    let outcome = forward_score(req, env, rid, &body.action_token).await;
    let applied_or_replayed =
        matches!(&outcome, Ok(r) if r.status_code() == 200 || r.status_code() == 409);
    if !applied_or_replayed {
        // Not applied: the same token may be redeemed again.
        let _: serde_json::Value = gate::call(
            env,
            &player,
            "/release",
            &RedeemRequest {
                jti: claims.jti,
                exp: claims.exp,
            },
        )
        .await?;
    }
    outcome
}

/// `409` for a token this player's gate has seen, with the current score when the
/// aggregator tells it.
async fn replayed(_req: &Request, env: &Env, player: &str) -> Result<Response> {
    let mut body = scoreboard_protocol::ErrorBody::from_code(ErrorCode::ActionTokenReplayed);
    if let Some(base) = var(env, "AGGREGATOR_URL") {
        if let Ok(url) = Url::parse(&format!("{base}/api/players/{player}")) {
            if let Ok(mut r) = Fetch::Url(url).send().await {
                if let Ok(v) = r.json::<serde_json::Value>().await {
                    body.score = v["score"].as_i64();
                }
            }
        }
    }
    json_response(409, &body)
}

/// Forwards to `/internal/scores` with the edge signature, retrying connection errors and
/// 5xx with backoff and jitter; `503 UPSTREAM_UNAVAILABLE` when the aggregator stays away.
async fn forward_score(
    req: &Request,
    env: &Env,
    rid: &str,
    action_token: &str,
) -> Result<Response> {
    let (Some(base), Some(secret)) = (var(env, "AGGREGATOR_URL"), var(env, "EDGE_FORWARD_SECRET"))
    else {
        return Ok(json_error(ErrorCode::UpstreamUnavailable, Some(5)));
    };
    let region = req
        .cf()
        .map(|cf| cf.colo())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| var(env, "EDGE_REGION").unwrap_or_else(|| "local".into()));
    let body = serde_json::to_string(&ForwardedScore {
        action_token: action_token.to_owned(),
        edge_region: region,
    })?;
    let auth = req.headers().get("authorization")?.unwrap_or_default();
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
        headers.set("x-request-id", rid)?;
        headers.set(
            edge_signature::HEADER,
            &edge_signature::header_value(
                secret.as_bytes(),
                now_secs(),
                "POST",
                "/internal/scores",
                body.as_bytes(),
            ),
        )?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(body.clone().into()));
        let upstream = Request::new_with_init(&format!("{base}/internal/scores"), &init)?;
        match crate::send_with_timeout(upstream, FORWARD_TIMEOUT_MS).await {
            Some(Ok(r)) if r.status_code() < 500 => return Ok(r),
            _ => continue,
        }
    }
    Ok(json_error(ErrorCode::UpstreamUnavailable, Some(2)))
}
