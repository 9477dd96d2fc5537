//! The edge's typed configuration, read from the worker's vars and secrets once per isolate
//! (keys built once, not per request), with the same names and defaults as the aggregator.
//! Reading collects *every* problem: a malformed value is never silently replaced; the edge
//! goes on with the documented default for it, says `degraded` in `/health` naming each
//! problem (never a secret's value), and logs them once at start-up.
//!
//! An absent secret is not a problem by itself: an edge without `JWT_SECRET` still serves the
//! page, the reads and sign-in (which the aggregator does), and refuses what needs the secret.

use scoreboard_protocol::action::ActionTokens;
use scoreboard_protocol::defaults;
use scoreboard_protocol::jwt::{HmacKeys, HmacSecret};
use scoreboard_protocol::session::{SessionPolicy, SessionVerifier, SessionVerifyingKeys};
use scoreboard_protocol::settings::{Settings, Shared, SHARED_SECRETS};
use std::rc::Rc;
use worker::Env;

/// Everything the worker and its Durable Objects read from the environment.
#[derive(Debug)]
pub(crate) struct EdgeConfig {
    /// `AGGREGATOR_URL` without a trailing slash; `None` when unset.
    pub(crate) aggregator_url: Option<String>,
    /// `EDGE_FORWARD_SECRET`: signs forwards and the hub's WebSocket upgrade.
    pub(crate) edge_secret: Option<HmacSecret>,
    /// From `JWT_PUBLIC_KEY` (EdDSA) or `JWT_SECRET` (+ `_PREVIOUS`), with the issuer and
    /// audience policy; `None` when neither is set (or the key is malformed).
    pub(crate) sessions: Option<SessionVerifier>,
    /// From `ACTION_TOKEN_SECRET` (+ `_PREVIOUS`).
    pub(crate) action_tokens: Option<ActionTokens>,
    /// What the aggregator reads too: token lifetime, per-player limits, SSE pings, CORS, and
    /// the action catalog (entries with a problem left out, the problem listed below).
    pub(crate) shared: Shared,
    /// `HUB_CLIENTS_PER_OBJECT`: a hub's own clients before its board's further clients in
    /// this location go to relay hubs it feeds.
    pub(crate) hub_clients_per_object: u32,
    /// `EDGE_REGION`, used when the request carries no Cloudflare location.
    pub(crate) edge_region: Option<String>,
    /// Every problem found, one sentence each; empty when all is well.
    pub(crate) problems: Vec<String>,
}

thread_local! {
    // An isolate runs on one thread, and its vars and secrets do not change while it lives
    // (a new deploy or secret is a new isolate): reading them once per isolate is enough.
    static CONFIG: std::cell::OnceCell<Rc<EdgeConfig>> = const { std::cell::OnceCell::new() };
}

/// The configuration of this isolate, read from `env` the first time.
pub(crate) fn get(env: &Env) -> Rc<EdgeConfig> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let config = Rc::new(EdgeConfig::read(&|name| lookup(env, name)));
            if !config.problems.is_empty() {
                crate::log::error(
                    None,
                    "configuration problems",
                    serde_json::json!({ "problems": config.problems }),
                );
            }
            config
        })
        .clone()
    })
}

/// A var or a secret by name (`Settings` treats empty as unset: wrangler.toml writes
/// `CORS_ORIGIN = ""`).
fn lookup(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
}

/// The shared settings reader, with the edge's secrets as HMAC keys.
struct Reader<'a>(Settings<'a>);

impl Reader<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name)
    }

    fn problem(&mut self, problem: String) {
        self.0.problem(problem);
    }

    fn secret(&mut self, name: &str) -> Option<HmacSecret> {
        self.0
            .secret(name, false)
            .map(|v| HmacSecret::new(v.into_bytes()))
    }
}

impl EdgeConfig {
    /// Reads every setting through `lookup` (unset or empty: `None`).
    pub(crate) fn read(lookup: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut r = Reader(Settings::new(lookup));
        let aggregator_url = r
            .get("AGGREGATOR_URL")
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &aggregator_url {
            let ok = worker::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                r.problem(format!(
                    "AGGREGATOR_URL must be an http(s) URL, got {url:?}"
                ));
            }
        }
        let edge_secret = r.secret("EDGE_FORWARD_SECRET");
        r.0.distinct_secrets(&SHARED_SECRETS);
        let shared = r.0.shared();
        let sessions = sessions(&mut r, shared.session_policy.clone());
        let action_tokens = r.secret("ACTION_TOKEN_SECRET").map(|current| {
            let previous = r.secret("ACTION_TOKEN_SECRET_PREVIOUS");
            ActionTokens::new(HmacKeys::new(current).with_previous(previous))
        });
        let hub_clients_per_object =
            r.0.positive("HUB_CLIENTS_PER_OBJECT", defaults::HUB_CLIENTS_PER_OBJECT);
        let edge_region = r.get("EDGE_REGION");
        EdgeConfig {
            aggregator_url,
            edge_secret,
            sessions,
            action_tokens,
            shared,
            hub_clients_per_object,
            edge_region,
            problems: r.0.into_problems(),
        }
    }
}

/// The session verifier: EdDSA when `JWT_PUBLIC_KEY` is set (then the edge cannot mint
/// sessions), else HS256 with `JWT_SECRET` and, during a rotation, `JWT_SECRET_PREVIOUS`.
fn sessions(r: &mut Reader<'_>, policy: SessionPolicy) -> Option<SessionVerifier> {
    // With a public key, a `JWT_SECRET` that is also set (left over, or shared with the
    // aggregator's environment) is not used: the edge then cannot mint sessions.
    let keys = if let Some(pem) = r.get("JWT_PUBLIC_KEY") {
        match SessionVerifyingKeys::ed25519_from_pem(&pem) {
            Ok(k) => k,
            Err(e) => {
                r.problem(format!("JWT_PUBLIC_KEY: {e}"));
                return None;
            }
        }
    } else {
        let current = r.secret("JWT_SECRET")?;
        let previous = r.secret("JWT_SECRET_PREVIOUS");
        SessionVerifyingKeys::Hs256(HmacKeys::new(current).with_previous(previous))
    };
    Some(SessionVerifier::new(keys, policy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    fn read(vars: &[(&str, &str)]) -> EdgeConfig {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        EdgeConfig::read(&|name| map.get(name).cloned())
    }

    #[test]
    fn an_empty_environment_has_the_documented_defaults_and_no_problem() {
        let c = read(&[]);
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(c.shared.rate_limit_score_update, 10);
        assert_eq!(c.shared.sse_ping_interval, Duration::from_secs(30));
        assert!(c.sessions.is_none() && c.action_tokens.is_none());
    }

    #[test]
    fn durations_are_read_as_on_the_aggregator() {
        assert_eq!(
            read(&[("SSE_PING_INTERVAL", "30s")])
                .shared
                .sse_ping_interval,
            Duration::from_secs(30)
        );
        assert_eq!(
            read(&[("SSE_PING_INTERVAL", "700")])
                .shared
                .sse_ping_interval,
            Duration::from_millis(700)
        );
    }

    #[test]
    fn every_bad_value_is_named_and_no_secret_is_shown() {
        let c = read(&[
            ("SSE_PING_INTERVAL", "soon"),
            ("HUB_CLIENTS_PER_OBJECT", "0"),
            ("RATE_LIMIT_SCORE_UPDATE", "ten"),
            ("JWT_SECRET", "short-secret"),
            ("ACTION_CATALOG", "{not json"),
            ("AGGREGATOR_URL", "ftp://x"),
        ]);
        let all = c.problems.join("\n");
        for name in [
            "SSE_PING_INTERVAL",
            "HUB_CLIENTS_PER_OBJECT",
            "RATE_LIMIT_SCORE_UPDATE",
            "JWT_SECRET",
            "ACTION_CATALOG",
            "AGGREGATOR_URL",
        ] {
            assert!(all.contains(name), "{name} in {all}");
        }
        assert!(!all.contains("short-secret"), "{all}");
        assert_eq!(c.hub_clients_per_object, 1_000);
    }

    #[test]
    fn the_catalog_keeps_its_good_entries_and_names_the_bad_ones() {
        let c = read(&[(
            "ACTION_CATALOG",
            r#"{"quest": {"points": 50, "min_seconds": 5, "boards": ["global", "level-1"]},
                "coin": {"points": 0}, "lap": {"points": 5, "boards": []}}"#,
        )]);
        let quest = c
            .shared
            .catalog
            .get("quest")
            .expect("a good entry is kept")
            .1;
        assert_eq!(quest.boards.as_ref().map(Vec::len), Some(2));
        assert_eq!(c.shared.catalog.len(), 1);
        let all = c.problems.join("\n");
        assert!(
            all.contains("ACTION_CATALOG entry \"coin\" must have non-zero points"),
            "{all}"
        );
        assert!(
            all.contains("ACTION_CATALOG entry \"lap\" has bad boards"),
            "{all}"
        );
    }
}
