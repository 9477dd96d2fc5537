//! `PlayerGate`, one Durable Object per player: the exact per-player GCRA limit and the set of
//! redeemed (or in-flight) action-token `jti`s, kept until each token's `exp` and cleaned by
//! an alarm. Being one object per player, its answers are global, not per location.
//!
//! Protocol (JSON over the stub's fetch): `POST /check {now_ms, limit, window_ms}` →
//! `{"allow":true}` or `{"allow":false,"retry_after_ms":n}`; `POST /redeem {jti, exp}` →
//! `{"fresh":true|false}`; `POST /release {jti}` → `{}` (the aggregator did not apply it, so
//! it may be redeemed again).

use scoreboard_protocol::gcra::{Decision, GcraState, Quota};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use worker::*;

/// Tokens (jti → exp, unix seconds) this player has redeemed or is redeeming.
type Redeemed = HashMap<String, i64>;

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct CheckRequest {
    pub(crate) now_ms: u64,
    pub(crate) limit: u32,
    pub(crate) window_ms: u64,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct CheckAnswer {
    pub(crate) allow: bool,
    #[serde(default)]
    pub(crate) retry_after_ms: u64,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct RedeemRequest {
    pub(crate) jti: String,
    pub(crate) exp: i64,
}

#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct RedeemAnswer {
    pub(crate) fresh: bool,
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
        match req.path().as_str() {
            "/check" => {
                let c: CheckRequest = req.json().await?;
                let quota =
                    Quota::per_window(c.limit.max(1), c.window_ms.max(1)).ok_or("invalid quota")?;
                let gcra: GcraState = storage.get("gcra").await?.unwrap_or_default();
                let answer = match gcra.check(&quota, c.now_ms) {
                    Decision::Allow { state, .. } => {
                        storage.put("gcra", state).await?;
                        CheckAnswer {
                            allow: true,
                            retry_after_ms: 0,
                        }
                    }
                    Decision::Deny { retry_after_ms } => CheckAnswer {
                        allow: false,
                        retry_after_ms,
                    },
                };
                Response::from_json(&answer)
            }
            "/redeem" => {
                let r: RedeemRequest = req.json().await?;
                let mut redeemed: Redeemed = storage.get("redeemed").await?.unwrap_or_default();
                let fresh = !redeemed.contains_key(&r.jti);
                if fresh {
                    redeemed.insert(r.jti, r.exp);
                    storage.put("redeemed", &redeemed).await?;
                    if storage.get_alarm().await?.is_none() {
                        self.arm(&redeemed).await?;
                    }
                }
                Response::from_json(&RedeemAnswer { fresh })
            }
            "/release" => {
                let r: RedeemRequest = req.json().await?;
                let mut redeemed: Redeemed = storage.get("redeemed").await?.unwrap_or_default();
                if redeemed.remove(&r.jti).is_some() {
                    storage.put("redeemed", &redeemed).await?;
                }
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
        let mut redeemed: Redeemed = storage.get("redeemed").await?.unwrap_or_default();
        redeemed.retain(|_, exp| *exp > now);
        storage.put("redeemed", &redeemed).await?;
        if !redeemed.is_empty() {
            self.arm(&redeemed).await?;
        }
        Response::ok("")
    }
}

impl PlayerGate {
    /// Sets the alarm for just after the earliest expiry.
    async fn arm(&self, redeemed: &Redeemed) -> Result<()> {
        let now = (Date::now().as_millis() / 1000) as i64;
        if let Some(first) = redeemed.values().min() {
            let in_ms = ((first - now).max(0) + 1) * 1000;
            self.state.storage().set_alarm(in_ms).await?;
        }
        Ok(())
    }
}

/// Calls the player's gate.
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
    let mut resp = stub.fetch_with_request(req).await?;
    if resp.status_code() != 200 {
        return Err(Error::RustError(format!(
            "gate answered {}",
            resp.status_code()
        )));
    }
    resp.json().await
}
