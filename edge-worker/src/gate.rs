//! `PlayerGate`, one Durable Object per player: the exact per-player GCRA limit and the set of
//! action-token `jti`s this player redeemed, until each token's `exp`. Being one object per
//! player, its answers are global, not per location. Its state lives in the object's memory
//! and is never written to storage: no storage row is billed per score.
//!
//! Protocol (JSON over the stub's fetch), one call per update:
//! - `POST /admit {now_ms, limit, window_ms, token?: {jti, exp}}` → `{"allow", "retry_after_ms",
//!   "replayed"}`: the limit, then (when allowed and a verified token is named) whether the
//!   token was redeemed here already; a fresh one is marked redeemed.
//! - `POST /release {jti, exp}` → `{}`, only when the aggregator did not apply a forwarded
//!   token (it answered neither 200 nor 409, or never answered): the token is forgotten, so
//!   the player's retry reaches the aggregator again. The worker calls it before it answers,
//!   so a client that retries after the answer always finds the token released.
//!
//! Why memory and not storage: the aggregator's `consumed_tokens` is the authority for
//! exactly-once, so this set is only a cheap first line that spares it replays. An object is
//! evicted only after it has been idle (or on a deploy); losing its memory then sends a replay
//! on to the aggregator, which answers `409` with the score, and gives the player at most one
//! fresh burst of the limit. Storing the state would bill one or more storage rows per score
//! (the set rewritten, an alarm, its deletion) for a guarantee the aggregator already gives.

use scoreboard_protocol::gcra::{Decision, GcraState, Quota};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use worker::*;

/// Longest a gate call may take: a gate that does not answer must not hold the request (and
/// the player's connection) forever; the caller answers 503 and nothing was consumed.
const GATE_TIMEOUT_MS: u64 = 3_000;

/// What one player's gate remembers, in memory only.
#[derive(Debug, Default)]
struct GateState {
    gcra: GcraState,
    /// jti → `exp` of every token redeemed here that has not expired.
    tokens: HashMap<String, i64>,
    /// The same tokens ordered by `exp`, so forgetting the expired ones is cheap per call.
    by_expiry: BTreeSet<(i64, String)>,
}

impl GateState {
    /// Forgets tokens past their `exp`: they are refused as expired before the replay check.
    fn forget_expired(&mut self, now_secs: i64) {
        while let Some(first) = self.by_expiry.first() {
            if first.0 >= now_secs {
                break;
            }
            let (_, jti) = self.by_expiry.pop_first().expect("just seen");
            self.tokens.remove(&jti);
        }
    }

    /// Marks a token redeemed; `false` when it already was.
    fn redeem(&mut self, t: &TokenRef) -> bool {
        if self.tokens.contains_key(&t.jti) {
            return false;
        }
        self.tokens.insert(t.jti.clone(), t.exp);
        self.by_expiry.insert((t.exp, t.jti.clone()));
        true
    }

    fn release(&mut self, jti: &str) {
        if let Some(exp) = self.tokens.remove(jti) {
            self.by_expiry.remove(&(exp, jti.to_owned()));
        }
    }
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
    // A Durable Object runs one event at a time and nothing below awaits while it is
    // borrowed, so the borrow never overlaps another request's.
    memory: RefCell<GateState>,
}

impl std::fmt::Debug for PlayerGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlayerGate")
    }
}

impl DurableObject for PlayerGate {
    fn new(state: State, _env: Env) -> Self {
        Self {
            state,
            memory: RefCell::new(GateState::default()),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/admit" => {
                let a: AdmitRequest = req.json().await?;
                let answer = admit(&mut self.memory.borrow_mut(), &a)?;
                Response::from_json(&answer)
            }
            "/release" => {
                let t: TokenRef = req.json().await?;
                self.memory.borrow_mut().release(&t.jti);
                Response::from_json(&serde_json::json!({}))
            }
            _ => Response::error("no such gate route", 404),
        }
    }

    /// Only objects of the earlier, stored layout have an alarm: it clears what they stored
    /// (once), and none is set again.
    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::ok("")
    }
}

/// The limit, then the token: the decision of one `/admit`, applied to `state`.
fn admit(state: &mut GateState, a: &AdmitRequest) -> Result<AdmitAnswer> {
    let quota = Quota::per_window(a.limit.max(1), a.window_ms.max(1)).ok_or("invalid quota")?;
    match state.gcra.check(&quota, a.now_ms) {
        Decision::Allow { state: next, .. } => state.gcra = next,
        Decision::Deny { retry_after_ms } => {
            return Ok(AdmitAnswer {
                allow: false,
                retry_after_ms,
                replayed: false,
            })
        }
    }
    state.forget_expired((a.now_ms / 1000) as i64);
    let replayed = a.token.as_ref().is_some_and(|t| !state.redeem(t));
    Ok(AdmitAnswer {
        allow: true,
        retry_after_ms: 0,
        replayed,
    })
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
    init.with_method(Method::Post)
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

    const EXP: i64 = 2_000_000_000;

    fn ask(state: &mut GateState, now_ms: u64, jti: Option<&str>) -> AdmitAnswer {
        ask_until(state, now_ms, jti, EXP)
    }

    fn ask_until(state: &mut GateState, now_ms: u64, jti: Option<&str>, exp: i64) -> AdmitAnswer {
        let req = AdmitRequest {
            now_ms,
            limit: 2,
            window_ms: 60_000,
            token: jti.map(|j| TokenRef {
                jti: j.to_owned(),
                exp,
            }),
        };
        admit(state, &req).unwrap()
    }

    #[test]
    fn a_redeemed_token_is_refused_as_a_replay_until_released() {
        let mut s = GateState::default();
        assert!(!ask(&mut s, 0, Some("t1")).replayed);
        let replay = ask(&mut s, 1_000, Some("t1"));
        assert!(replay.allow && replay.replayed);
        // The forward was not applied: the retry goes through again.
        s.release("t1");
        let retry = ask(&mut s, 60_000, Some("t1"));
        assert!(retry.allow && !retry.replayed);
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

    #[test]
    fn expired_tokens_are_forgotten_and_the_rest_kept() {
        let mut s = GateState::default();
        ask_until(&mut s, 0, Some("short"), 10);
        ask_until(&mut s, 0, Some("long"), 1_000);
        // At 11 s "short" is past its exp (the edge refuses it as expired before asking).
        ask(&mut s, 120_000, None);
        assert!(!s.tokens.contains_key("short"));
        assert_eq!(s.by_expiry.len(), 1);
        assert!(ask(&mut s, 240_000, Some("long")).replayed);
    }

    #[test]
    fn releasing_an_unknown_token_changes_nothing() {
        let mut s = GateState::default();
        ask(&mut s, 0, Some("t1"));
        s.release("other");
        assert!(ask(&mut s, 60_000, Some("t1")).replayed);
        assert_eq!(s.tokens.len(), s.by_expiry.len());
    }
}
