//! Reading settings (environment variables at the aggregator, vars and secrets at the edge)
//! the same way on both sides: empty means unset, numbers and durations and booleans have one
//! syntax, secrets have a minimum length and never appear in a message, and reading collects
//! *every* problem instead of stopping at the first, so an operator fixes them in one go.

use crate::action::MAX_TTL_SECS;
use crate::catalog::{Catalog, CATALOG_SETTING};
use crate::defaults::{self, parse_duration};
use crate::session::SessionPolicy;
use std::collections::HashMap;
use std::time::Duration;

/// Secrets shorter than this are refused.
pub const MIN_SECRET_BYTES: usize = 32;

/// The secrets of the roles both services know; every two of them that are set must differ
/// (a service adds its own, e.g. the aggregator's `ADMIN_API_KEY`).
pub const SHARED_SECRETS: [&str; 5] = [
    "JWT_SECRET",
    "JWT_SECRET_PREVIOUS",
    "ACTION_TOKEN_SECRET",
    "ACTION_TOKEN_SECRET_PREVIOUS",
    "EDGE_FORWARD_SECRET",
];

/// The settings the edge and the aggregator both read ([`Settings::shared`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// `ACTION_TOKEN_TTL`, 1 to 86,400 seconds.
    pub action_token_ttl_secs: i64,
    /// `RATE_LIMIT_SCORE_UPDATE` per `RATE_LIMIT_WINDOW_MS`, per player.
    pub rate_limit_score_update: u32,
    pub rate_limit_window_ms: u64,
    pub sse_ping_interval: Duration,
    /// `CORS_ORIGIN`: one origin, or `*`; `None` for no CORS.
    pub cors_origin: Option<String>,
    /// `JWT_ISSUER` and `JWT_AUDIENCE`, checked when set.
    pub session_policy: SessionPolicy,
    /// `ACTION_CATALOG`: what the edge mints, and the boards of tokens without `brd`. Unset:
    /// empty. Entries with a problem are left out (and the problem recorded).
    pub catalog: Catalog,
}

/// Finds a setting's raw value by name.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// A reader of named settings that records problems.
pub struct Settings<'a> {
    lookup: Lookup<'a>,
    problems: Vec<String>,
}

impl std::fmt::Debug for Settings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values: some are secrets.
        f.debug_struct("Settings")
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

impl<'a> Settings<'a> {
    /// Settings found by `lookup` (a var, a secret, a map entry).
    pub fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self {
            lookup: Box::new(lookup),
            problems: Vec::new(),
        }
    }

    /// Settings from a map (the process environment, or a test's).
    pub fn from_map(vars: &'a HashMap<String, String>) -> Self {
        Self::new(move |name| vars.get(name).cloned())
    }

    /// The value, trimmed; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Records a problem found by the caller.
    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    pub fn required(&mut self, name: &str) -> Option<String> {
        let v = self.get(name);
        if v.is_none() {
            self.problem(format!("{name} is required"));
        }
        v
    }

    /// A value of type `T` (`what` says what it must be, for the problem), else `default`.
    pub fn parsed<T: std::str::FromStr>(&mut self, name: &str, default: T, what: &str) -> T {
        let Some(v) = self.get(name) else {
            return default;
        };
        match v.parse() {
            Ok(n) => n,
            Err(_) => {
                self.problem(format!("{name} must be {what}, got {v:?}"));
                default
            }
        }
    }

    /// A duration in [`parse_duration`]'s syntax (plain numbers in `unit_ms`).
    pub fn duration(&mut self, name: &str, default: Duration, unit_ms: u64) -> Duration {
        let Some(v) = self.get(name) else {
            return default;
        };
        parse_duration(&v, unit_ms).unwrap_or_else(|e| {
            self.problem(format!("{name} {e}, got {v:?}"));
            default
        })
    }

    pub fn bool(&mut self, name: &str, default: bool) -> bool {
        match self.get(name).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => default,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(v) => {
                self.problem(format!("{name} must be true or false, got {v:?}"));
                default
            }
        }
    }

    /// A secret of at least [`MIN_SECRET_BYTES`]; its value never appears in a problem.
    pub fn secret(&mut self, name: &str, required: bool) -> Option<String> {
        let v = if required {
            self.required(name)
        } else {
            self.get(name)
        }?;
        if v.len() < MIN_SECRET_BYTES {
            self.problem(format!(
                "{name} is shorter than {MIN_SECRET_BYTES} bytes ({} given)",
                v.len()
            ));
        }
        Some(v)
    }

    /// Two roles sharing one secret would let a leak of one forge the other: every pair of the
    /// named settings that are set must differ.
    pub fn distinct_secrets(&mut self, names: &[&str]) {
        let set: Vec<(&str, String)> = names
            .iter()
            .filter_map(|n| self.get(n).map(|v| (*n, v)))
            .collect();
        for (i, (a, va)) in set.iter().enumerate() {
            for (b, vb) in &set[i + 1..] {
                if va == vb {
                    self.problem(format!("{a} and {b} must differ"));
                }
            }
        }
    }

    /// A count that must be at least 1 (`what` as in [`Settings::parsed`]).
    pub fn positive<T>(&mut self, name: &str, default: T) -> T
    where
        T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
    {
        let n = self.parsed(name, default, "a positive integer");
        if n < T::from(1) {
            self.problem(format!("{name} must be a positive integer, got {n}"));
            return default;
        }
        n
    }

    /// A duration that must not be zero (a zero interval would spin).
    pub fn nonzero_duration(&mut self, name: &str, default: Duration, unit_ms: u64) -> Duration {
        let d = self.duration(name, default, unit_ms);
        if d.is_zero() {
            self.problem(format!("{name} must not be zero"));
            return default;
        }
        d
    }

    /// The settings both services read, with the same defaults and the same checks.
    pub fn shared(&mut self) -> Shared {
        let action_token_ttl_secs =
            self.positive("ACTION_TOKEN_TTL", defaults::ACTION_TOKEN_TTL_SECS);
        if action_token_ttl_secs > MAX_TTL_SECS {
            self.problem(format!(
                "ACTION_TOKEN_TTL must be at most {MAX_TTL_SECS} seconds"
            ));
        }
        let action_token_ttl_secs = action_token_ttl_secs.min(MAX_TTL_SECS);
        Shared {
            action_token_ttl_secs,
            rate_limit_score_update: self
                .positive("RATE_LIMIT_SCORE_UPDATE", defaults::RATE_LIMIT_SCORE_UPDATE),
            rate_limit_window_ms: self
                .positive("RATE_LIMIT_WINDOW_MS", defaults::RATE_LIMIT_WINDOW_MS),
            sse_ping_interval: self.nonzero_duration(
                "SSE_PING_INTERVAL",
                defaults::SSE_PING_INTERVAL,
                defaults::SSE_PING_INTERVAL_UNIT_MS,
            ),
            cors_origin: self.get("CORS_ORIGIN"),
            session_policy: SessionPolicy {
                issuer: self.get("JWT_ISSUER"),
                audience: self.get("JWT_AUDIENCE"),
            },
            catalog: self.catalog(action_token_ttl_secs),
        }
    }

    /// `ACTION_CATALOG` for tokens living `ttl_secs`, each problem recorded.
    fn catalog(&mut self, ttl_secs: i64) -> Catalog {
        let Some(json) = self.get(CATALOG_SETTING) else {
            return Catalog::default();
        };
        let (catalog, problems) = Catalog::parse(&json, ttl_secs);
        for p in problems {
            self.problem(p.to_string());
        }
        catalog
    }

    /// The problems found so far.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Every problem found, one sentence each.
    pub fn into_problems(self) -> Vec<String> {
        self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn empty_counts_as_unset_and_values_are_trimmed() {
        let map = vars(&[("A", "  "), ("B", " x ")]);
        let s = Settings::from_map(&map);
        assert_eq!(
            (s.get("A"), s.get("B"), s.get("C")),
            (None, Some("x".into()), None)
        );
    }

    #[test]
    fn every_problem_is_collected_with_its_name() {
        let map = vars(&[
            ("PORT", "eighty"),
            ("PING", "soon"),
            ("GUESTS", "maybe"),
            ("KEY", "short"),
        ]);
        let mut s = Settings::from_map(&map);
        assert_eq!(s.parsed("PORT", 3000u16, "a port number"), 3000);
        assert_eq!(
            s.duration("PING", Duration::from_secs(30), 1),
            Duration::from_secs(30)
        );
        assert!(s.bool("GUESTS", true));
        assert_eq!(s.secret("KEY", true).as_deref(), Some("short"));
        assert_eq!(s.required("DATABASE_URL"), None);
        let problems = s.into_problems();
        assert_eq!(
            problems,
            [
                "PORT must be a port number, got \"eighty\"",
                "PING must be a duration such as 30s, 5m or 24h, got \"soon\"",
                "GUESTS must be true or false, got \"maybe\"",
                "KEY is shorter than 32 bytes (5 given)",
                "DATABASE_URL is required",
            ]
        );
    }

    #[test]
    fn a_secret_is_never_part_of_a_problem() {
        let secret = "0123456789abcdef0123456789abcdef";
        let map = vars(&[("A_SECRET", secret), ("B_SECRET", secret), ("C", "tiny")]);
        let mut s = Settings::from_map(&map);
        s.secret("C", false);
        s.distinct_secrets(&["A_SECRET", "B_SECRET", "UNSET"]);
        let all = s.into_problems().join("\n");
        assert!(all.contains("A_SECRET and B_SECRET must differ"), "{all}");
        assert!(!all.contains(secret) && !all.contains("tiny"), "{all}");
    }

    #[test]
    fn the_catalog_is_shared_and_its_problems_are_collected() {
        assert!(Settings::from_map(&vars(&[])).shared().catalog.is_empty());
        let map = vars(&[
            ("ACTION_TOKEN_TTL", "60"),
            (
                "ACTION_CATALOG",
                r#"{"lap": {"points": 0, "boards": ["best-lap"]}, "boss": {"points": 5, "min_seconds": 60}}"#,
            ),
        ]);
        let mut s = Settings::from_map(&map);
        let shared = s.shared();
        assert_eq!(shared.catalog.len(), 1);
        assert!(shared.catalog.get("lap").is_some());
        assert_eq!(
            s.into_problems(),
            ["ACTION_CATALOG entry \"boss\" must have min_seconds shorter than ACTION_TOKEN_TTL (60 s)"]
        );
    }

    #[test]
    fn durations_take_plain_numbers_in_the_settings_unit_or_humantime() {
        let map = vars(&[("MS", "700"), ("HUMAN", "5m"), ("SECS", "300")]);
        let mut s = Settings::from_map(&map);
        assert_eq!(
            s.duration("MS", Duration::ZERO, 1),
            Duration::from_millis(700)
        );
        assert_eq!(
            s.duration("HUMAN", Duration::ZERO, 1),
            Duration::from_secs(300)
        );
        assert_eq!(
            s.duration("SECS", Duration::ZERO, 1000),
            Duration::from_secs(300)
        );
        assert!(s.problems().is_empty());
    }
}
