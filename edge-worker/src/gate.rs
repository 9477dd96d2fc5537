//! `PlayerGate`, one Durable Object per player: the exact per-player GCRA limit and the set of
//! action-token `jti`s this player redeemed, until each token's `exp`. Being one object per
//! player, its answers are global, not per location. Its state lives in the object's memory
//! and is never written to storage: no storage row is billed per score.
//!
//! Protocol: a `GET` of the stub with the question in the query and the answer in the
//! status, so that neither side builds, reads or parses a body on the hot path:
//! - `/admit?now=<ms>&limit=<n>&window=<ms>[&jti=<id>&exp=<s>]` → `204` admitted, `409`
//!   admitted but the token was redeemed here already, `429` with the wait in milliseconds as
//!   the body: the limit, then (when allowed and a verified token is named) the token; a fresh
//!   one is marked redeemed.
//! - `/release?jti=<id>&exp=<s>` → `204`, only when the aggregator did not apply a forwarded
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

use crate::upstream::{Call, ObjectStub};
use scoreboard_protocol::gcra::{Decision, GcraState, Quota};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use worker::url;
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRef {
    pub(crate) jti: String,
    pub(crate) exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdmitRequest {
    pub(crate) now_ms: u64,
    pub(crate) limit: u32,
    pub(crate) window_ms: u64,
    /// The verified token to redeem; `None` when the token did not verify (the limit still
    /// counts the attempt, as DESIGN.md orders the checks).
    pub(crate) token: Option<TokenRef>,
}

impl AdmitRequest {
    /// The `/admit` question as a query string.
    fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("now", &self.now_ms.to_string())
            .append_pair("limit", &self.limit.to_string())
            .append_pair("window", &self.window_ms.to_string());
        if let Some(t) = &self.token {
            t.append_to(&mut q);
        }
        q.finish()
    }

    fn from_query(pairs: &HashMap<String, String>) -> Option<Self> {
        let number = |k: &str| pairs.get(k)?.parse().ok();
        Some(Self {
            now_ms: number("now")?,
            limit: pairs.get("limit")?.parse().ok()?,
            window_ms: number("window")?,
            token: TokenRef::from_query(pairs),
        })
    }
}

impl TokenRef {
    fn append_to(&self, q: &mut url::form_urlencoded::Serializer<'_, String>) {
        q.append_pair("jti", &self.jti)
            .append_pair("exp", &self.exp.to_string());
    }

    fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        self.append_to(&mut q);
        q.finish()
    }

    fn from_query(pairs: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            jti: pairs.get("jti")?.clone(),
            exp: pairs.get("exp")?.parse().ok()?,
        })
    }
}

/// What `/admit` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    Allowed,
    /// Allowed by the limit, and the token was redeemed here already.
    Replayed,
    RateLimited {
        retry_after_ms: u64,
    },
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

    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let pairs: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let answer = match url.path() {
            "/admit" => match AdmitRequest::from_query(&pairs) {
                Some(a) => match admit(&mut self.memory.borrow_mut(), &a)? {
                    Admit::Allowed => Response::empty()?.with_status(204),
                    Admit::Replayed => Response::empty()?.with_status(409),
                    Admit::RateLimited { retry_after_ms } => {
                        Response::ok(retry_after_ms.to_string())?.with_status(429)
                    }
                },
                None => Response::error("a malformed /admit", 400)?,
            },
            "/release" => match TokenRef::from_query(&pairs) {
                Some(t) => {
                    self.memory.borrow_mut().release(&t.jti);
                    Response::empty()?.with_status(204)
                }
                None => Response::error("a malformed /release", 400)?,
            },
            _ => Response::error("no such gate route", 404)?,
        };
        Ok(answer)
    }

    /// Only objects of the earlier, stored layout have an alarm: it clears what they stored
    /// (once), and none is set again.
    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::ok("")
    }
}

/// The limit, then the token: the decision of one `/admit`, applied to `state`.
fn admit(state: &mut GateState, a: &AdmitRequest) -> Result<Admit> {
    let quota = Quota::per_window(a.limit.max(1), a.window_ms.max(1)).ok_or("invalid quota")?;
    match state.gcra.check(&quota, a.now_ms) {
        Decision::Allow { state: next, .. } => state.gcra = next,
        Decision::Deny { retry_after_ms } => return Ok(Admit::RateLimited { retry_after_ms }),
    }
    state.forget_expired((a.now_ms / 1000) as i64);
    let replayed = a.token.as_ref().is_some_and(|t| !state.redeem(t));
    Ok(if replayed {
        Admit::Replayed
    } else {
        Admit::Allowed
    })
}

/// Asks the player's gate `/admit`.
pub(crate) async fn admit_at(env: &Env, player: &str, a: &AdmitRequest) -> Result<Admit> {
    let mut resp = call(env, player, &format!("/admit?{}", a.query())).await?;
    match resp.status_code() {
        204 => Ok(Admit::Allowed),
        409 => Ok(Admit::Replayed),
        429 => {
            let wait = crate::respond::text_of(&mut resp).await?;
            let retry_after_ms = wait.trim().parse().unwrap_or(1_000);
            Ok(Admit::RateLimited { retry_after_ms })
        }
        other => Err(Error::RustError(format!("gate answered {other}"))),
    }
}

/// Tells the player's gate to forget a token the aggregator did not apply.
pub(crate) async fn release_at(env: &Env, player: &str, t: &TokenRef) -> Result<()> {
    let resp = call(env, player, &format!("/release?{}", t.query())).await?;
    match resp.status_code() {
        204 => Ok(()),
        other => Err(Error::RustError(format!("gate answered {other}"))),
    }
}

/// Calls the player's gate at `path_and_query`, with a deadline.
async fn call(env: &Env, player: &str, path_and_query: &str) -> Result<Response> {
    let stub: ObjectStub = env
        .durable_object("PLAYER_GATE")?
        .id_from_name(player)?
        .get_stub()?
        .into_rpc();
    let url = format!("http://gate{path_and_query}");
    let call = Call {
        method: "GET",
        headers: None,
        body: None,
        timeout_ms: GATE_TIMEOUT_MS,
    };
    call.fetch_object(&stub, &url).await.unwrap_or_else(|| {
        Err(Error::RustError(format!(
            "the gate took over {GATE_TIMEOUT_MS} ms"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXP: i64 = 2_000_000_000;

    fn ask(state: &mut GateState, now_ms: u64, jti: Option<&str>) -> Admit {
        ask_until(state, now_ms, jti, EXP)
    }

    fn request(now_ms: u64, jti: Option<&str>, exp: i64) -> AdmitRequest {
        AdmitRequest {
            now_ms,
            limit: 2,
            window_ms: 60_000,
            token: jti.map(|j| TokenRef {
                jti: j.to_owned(),
                exp,
            }),
        }
    }

    fn ask_until(state: &mut GateState, now_ms: u64, jti: Option<&str>, exp: i64) -> Admit {
        admit(state, &request(now_ms, jti, exp)).unwrap()
    }

    fn pairs(query: &str) -> HashMap<String, String> {
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn the_question_survives_its_query_string() {
        for jti in [None, Some("a&b=c d/é")] {
            let a = request(1_700_000_000_123, jti, EXP);
            assert_eq!(AdmitRequest::from_query(&pairs(&a.query())), Some(a));
        }
        let t = TokenRef {
            jti: "t+1".into(),
            exp: 42,
        };
        assert_eq!(TokenRef::from_query(&pairs(&t.query())), Some(t));
        assert_eq!(
            AdmitRequest::from_query(&pairs("now=1&limit=x&window=2")),
            None
        );
    }

    #[test]
    fn a_redeemed_token_is_refused_as_a_replay_until_released() {
        let mut s = GateState::default();
        assert_eq!(ask(&mut s, 0, Some("t1")), Admit::Allowed);
        assert_eq!(ask(&mut s, 1_000, Some("t1")), Admit::Replayed);
        // The forward was not applied: the retry goes through again.
        s.release("t1");
        assert_eq!(ask(&mut s, 60_000, Some("t1")), Admit::Allowed);
    }

    #[test]
    fn over_the_limit_nothing_is_marked_and_the_wait_is_said() {
        let mut s = GateState::default();
        ask(&mut s, 0, None);
        ask(&mut s, 0, None);
        let denied = ask(&mut s, 0, Some("t2"));
        assert!(matches!(denied, Admit::RateLimited { retry_after_ms } if retry_after_ms > 0));
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
        assert_eq!(ask(&mut s, 240_000, Some("long")), Admit::Replayed);
    }

    #[test]
    fn releasing_an_unknown_token_changes_nothing() {
        let mut s = GateState::default();
        ask(&mut s, 0, Some("t1"));
        s.release("other");
        assert_eq!(ask(&mut s, 60_000, Some("t1")), Admit::Replayed);
        assert_eq!(s.tokens.len(), s.by_expiry.len());
    }
}
