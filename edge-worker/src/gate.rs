//! `PlayerGate`, one Durable Object per player: the exact per-player GCRA limit and the set of
//! action-token `jti`s this player redeemed, kept until each token's `exp` and cleaned by an
//! alarm. Being one object per player, its answers are global, not per location.
//!
//! Protocol (JSON over the stub's fetch), one call per update and one after it:
//! - `POST /admit {now_ms, limit, window_ms, token?: {jti, exp}}` → `{"allow", "retry_after_ms",
//!   "replayed"}`: the limit, then (when allowed and a verified token is named) whether the
//!   token was already *settled*; a fresh one is marked *pending*.
//! - `POST /settle {jti, exp}` → `{}`: the aggregator answered that the token is applied
//!   (200) or was already (409); from now on a replay is refused here without asking it.
//!
//! Why "pending" and not "redeemed, released on failure": the release was a second call
//! after a failed forward, and when it did not happen (the gate call failed, or the worker
//! died or was redeployed in the middle of a slow forward) the token stayed marked and the
//! player's retry got `409` for a token never applied. A pending token is let through
//! again, so nothing needs undoing when a forward fails: the aggregator's
//! `consumed_tokens` is the authority for exactly-once, and this set only spares it the
//! replays it already answered. Two racing redemptions both reach the aggregator, which
//! applies one and answers `409` to the other.

use scoreboard_protocol::gcra::{Decision, GcraState, Quota};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use worker::*;

/// Longest a gate call may take: a gate that does not answer must not hold the request (and
/// the player's connection) forever; the caller answers 503 and nothing was consumed.
const GATE_TIMEOUT_MS: u64 = 3_000;

/// The one storage key: the bucket and the tokens together, one read and one write per call.
const STATE_KEY: &str = "gate";

/// Keys of the earlier layout (bucket and a jti → exp map, apart). Not read: losing them
/// costs one fresh burst and, for their tokens, one question to the aggregator (as an
/// eviction does); the alarm deletes them.
const OLD_KEYS: [&str; 2] = ["gcra", "redeemed"];

#[derive(Debug, Default, Deserialize, Serialize)]
struct GateState {
    gcra: GcraState,
    /// jti → the token's state.
    tokens: HashMap<String, TokenState>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
struct TokenState {
    /// The token's `exp` (unix seconds): after it, the token is refused as expired anyway.
    exp: i64,
    /// The aggregator confirmed it (applied or already applied).
    settled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct TokenRef {
    pub(crate) jti: String,
    pub(crate) exp: i64,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct AdmitRequest {
    pub(crate) now_ms: u64,
    pub(crate) limit: u32,
    pub(crate) window_ms: u64,
    /// The verified token to redeem; `None` when the token did not verify (the limit still
    /// counts the attempt, as DESIGN.md orders the checks).
    pub(crate) token: Option<TokenRef>,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct AdmitAnswer {
    pub(crate) allow: bool,
    #[serde(default)]
    pub(crate) retry_after_ms: u64,
    #[serde(default)]
    pub(crate) replayed: bool,
}

#[durable_object]
pub struct PlayerGate {
    state: State,
}

impl std::fmt::Debug for PlayerGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlayerGate")
    }
}

impl DurableObject for PlayerGate {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    // Storage calls keep the object's input gate closed, so each get-then-put below runs
    // without another request of this player interleaving.
    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        let mut state: GateState = storage.get(STATE_KEY).await?.unwrap_or_default();
        match req.path().as_str() {
            "/admit" => {
                let a: AdmitRequest = req.json().await?;
                let answer = admit(&mut state, &a)?;
                if answer.allow {
                    storage.put(STATE_KEY, &state).await?;
                    if a.token.is_some() && storage.get_alarm().await?.is_none() {
                        self.arm(&state).await?;
                    }
                }
                Response::from_json(&answer)
            }
            "/settle" => {
                let t: TokenRef = req.json().await?;
                state.tokens.insert(
                    t.jti,
                    TokenState {
                        exp: t.exp,
                        settled: true,
                    },
                );
                storage.put(STATE_KEY, &state).await?;
                Response::from_json(&serde_json::json!({}))
            }
            _ => Response::error("no such gate route", 404),
        }
    }

    /// Forgets tokens past their `exp` (they are refused as expired before the replay check),
    /// and re-arms for the next one.
    async fn alarm(&self) -> Result<Response> {
        let storage = self.state.storage();
        let now = (Date::now().as_millis() / 1000) as i64;
        let mut state: GateState = storage.get(STATE_KEY).await?.unwrap_or_default();
        state.tokens.retain(|_, t| t.exp > now);
        storage.put(STATE_KEY, &state).await?;
        let _ = storage.delete_multiple(OLD_KEYS.to_vec()).await;
        if !state.tokens.is_empty() {
            self.arm(&state).await?;
        }
        Response::ok("")
    }
}

/// The limit, then the token: the decision of one `/admit`, applied to `state`.
fn admit(state: &mut GateState, a: &AdmitRequest) -> Result<AdmitAnswer> {
    let quota = Quota::per_window(a.limit.max(1), a.window_ms.max(1)).ok_or("invalid quota")?;
    let denied = match state.gcra.check(&quota, a.now_ms) {
        Decision::Allow { state: next, .. } => {
            state.gcra = next;
            None
        }
        Decision::Deny { retry_after_ms } => Some(retry_after_ms),
    };
    if let Some(retry_after_ms) = denied {
        return Ok(AdmitAnswer {
            allow: false,
            retry_after_ms,
            replayed: false,
        });
    }
    let replayed = match &a.token {
        None => false,
        Some(t) => match state.tokens.get(&t.jti) {
            Some(known) if known.settled => true,
            // Unknown, or pending (a forward in flight or one that failed): let it through.
            _ => {
                state.tokens.insert(
                    t.jti.clone(),
                    TokenState {
                        exp: t.exp,
                        settled: false,
                    },
                );
                false
            }
        },
    };
    Ok(AdmitAnswer {
        allow: true,
        retry_after_ms: 0,
        replayed,
    })
}

impl PlayerGate {
    /// Sets the alarm for just after the earliest expiry.
    async fn arm(&self, state: &GateState) -> Result<()> {
        let now = (Date::now().as_millis() / 1000) as i64;
        if let Some(first) = state.tokens.values().map(|t| t.exp).min() {
            let in_ms = ((first - now).max(0) + 1) * 1000;
            self.state.storage().set_alarm(in_ms).await?;
        }
        Ok(())
    }
}

/// Calls the player's gate, with a deadline.
pub(crate) async fn call<T: Serialize, A: for<'de> Deserialize<'de>>(
    env: &Env,
    player: &str,
    route: &str,
    body: &T,
) -> Result<A> {
    let stub = env
        .durable_object("PLAYER_GATE")?
        .id_from_name(player)?
        .get_stub()?;
    let mut init = RequestInit::new();
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(serde_json::to_string(body)?.into()));
    let req = Request::new_with_init(&format!("http://gate{route}"), &init)?;
    let send = std::pin::pin!(stub.fetch_with_request(req));
    let deadline = Delay::from(std::time::Duration::from_millis(GATE_TIMEOUT_MS));
    let mut resp = match futures_util::future::select(send, deadline).await {
        futures_util::future::Either::Left((r, _)) => r?,
        futures_util::future::Either::Right(_) => {
            return Err(Error::RustError(format!(
                "gate {route} took over {GATE_TIMEOUT_MS} ms"
            )))
        }
    };
    if resp.status_code() != 200 {
        return Err(Error::RustError(format!(
            "gate answered {}",
            resp.status_code()
        )));
    }
    resp.json().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(state: &mut GateState, now_ms: u64, jti: Option<&str>) -> AdmitAnswer {
        let req = AdmitRequest {
            now_ms,
            limit: 2,
            window_ms: 60_000,
            token: jti.map(|j| TokenRef {
                jti: j.to_owned(),
                exp: 2_000_000_000,
            }),
        };
        admit(state, &req).unwrap()
    }

    fn settle(state: &mut GateState, jti: &str) {
        state.tokens.insert(
            jti.to_owned(),
            TokenState {
                exp: 2_000_000_000,
                settled: true,
            },
        );
    }

    #[test]
    fn a_token_whose_forward_never_settled_is_let_through_again() {
        let mut s = GateState::default();
        assert!(!ask(&mut s, 0, Some("t1")).replayed);
        // No settle: the forward failed, or the worker died before it could say.
        let again = ask(&mut s, 1_000, Some("t1"));
        assert!(again.allow && !again.replayed);
    }

    #[test]
    fn a_settled_token_is_refused_as_a_replay() {
        let mut s = GateState::default();
        ask(&mut s, 0, Some("t1"));
        settle(&mut s, "t1");
        let replay = ask(&mut s, 1_000, Some("t1"));
        assert!(replay.allow && replay.replayed);
    }

    #[test]
    fn over_the_limit_nothing_is_marked_and_the_wait_is_said() {
        let mut s = GateState::default();
        ask(&mut s, 0, None);
        ask(&mut s, 0, None);
        let denied = ask(&mut s, 0, Some("t2"));
        assert!(!denied.allow && denied.retry_after_ms > 0);
        assert!(!s.tokens.contains_key("t2"));
    }
}
