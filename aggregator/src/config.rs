//! Typed configuration from the environment. Reading it collects *every* problem before
//! refusing to start, and secrets are wrapped so they cannot end up in a log line.

use scoreboard_protocol::defaults;
use scoreboard_protocol::jwt::{HmacKeys, HmacSecret};
use scoreboard_protocol::session::{SessionIssuer, SessionSigningKey, SessionVerifier};
use scoreboard_protocol::settings::{Settings, Shared, SHARED_SECRETS};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Everything `serve` needs. Built by [`Config::from_env`] or by tests.
#[derive(Debug)]
pub struct Config {
    pub(crate) port: u16,
    pub(crate) metrics_port: u16,
    /// Address to bind both listeners to (`BIND_ADDR`, default `0.0.0.0`).
    pub(crate) bind_addr: String,
    pub(crate) database_url: SecretString,
    pub(crate) database_replica_url: Option<SecretString>,
    pub(crate) database_pool_max: u32,
    /// `DATABASE_POOLER=transaction`: the URLs lead to a pooler that lends a server connection
    /// per transaction (PgBouncer's transaction mode); see `db`.
    pub(crate) database_pooled: bool,
    /// Where migrations run (`DATABASE_MIGRATION_URL`, default `DATABASE_URL`): they hold a
    /// session-level lock, which needs a connection of their own for the whole session.
    pub(crate) database_migration_url: Option<SecretString>,
    /// Where the Redis copy of the boards lives, if anywhere.
    pub(crate) redis: Option<RedisTarget>,
    /// Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    pub(crate) redis_key_prefix: String,
    /// What the edge reads too: token lifetime, per-player limits, SSE pings, CORS.
    pub shared: Shared,
    pub(crate) session_issuer: SessionIssuer,
    pub(crate) session_verifier: SessionVerifier,
    pub action_keys: HmacKeys,
    pub(crate) edge_keys: HmacKeys,
    pub(crate) admin_api_key: SecretString,
    /// Sign-in requests per IP per window.
    pub(crate) rate_limit_ip: u32,
    pub(crate) sse_max_clients: usize,
    pub(crate) redis_sync_interval: Duration,
    pub(crate) apply_batch_max: usize,
    pub(crate) apply_batch_wait: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) shutdown_grace_period: Duration,
    pub(crate) allow_guests: bool,
    /// Where period results are announced (`WEBHOOK_URLS`), with the secret that signs them.
    pub(crate) webhooks: Option<Webhooks>,
    pub log_level: String,
    pub log_format: LogFormat,
}

/// The endpoints of `WEBHOOK_URLS` and `WEBHOOK_SECRET`, which signs what is posted to them.
#[derive(Debug, Clone)]
pub(crate) struct Webhooks {
    pub(crate) urls: Vec<String>,
    pub(crate) secret: SecretString,
}

/// `WEBHOOK_URLS` (comma-separated http(s) URLs) and, when it is set, `WEBHOOK_SECRET`.
fn webhooks(r: &mut Settings<'_>) -> Option<Webhooks> {
    let urls: Vec<String> = r
        .get("WEBHOOK_URLS")?
        .split(',')
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    for u in &urls {
        check_scheme(
            r,
            "each of WEBHOOK_URLS",
            &Some(u.clone()),
            &["http", "https"],
        );
    }
    let secret = r.secret("WEBHOOK_SECRET", true)?;
    (!urls.is_empty()).then(|| Webhooks {
        urls,
        secret: secret.into(),
    })
}

/// `APPLY_BATCH_MAX` (1 to 10,000) and `APPLY_BATCH_WAIT_US`.
fn apply_batch(r: &mut Settings<'_>) -> (usize, Duration) {
    let max = r.parsed("APPLY_BATCH_MAX", 512usize, "a positive integer");
    if max == 0 || max > 10_000 {
        r.problem("APPLY_BATCH_MAX must be between 1 and 10000".to_owned());
    }
    // 0: a batch is what queued while the previous one committed. Waiting for more was
    // never faster here, and cost 1-2 ms a batch at low load (BENCHMARKS.md).
    let wait_us = r.parsed("APPLY_BATCH_WAIT_US", 0u64, "microseconds");
    (max, Duration::from_micros(wait_us))
}

/// `LOG_LEVEL` and `LOG_FORMAT`.
fn logging(r: &mut Settings<'_>) -> (String, LogFormat) {
    let level = one_of(
        r,
        "LOG_LEVEL",
        &["trace", "debug", "info", "warn", "error"],
        "info",
    );
    let format = match one_of(r, "LOG_FORMAT", &["json", "pretty"], "json").as_str() {
        "pretty" => LogFormat::Pretty,
        _ => LogFormat::Json,
    };
    (level, format)
}

/// Every problem found in the environment, one per line.
#[derive(Debug, thiserror::Error)]
#[error("configuration refused:\n  - {}", .0.join("\n  - "))]
pub struct ConfigErrors(pub Vec<String>);

/// One of `allowed`, else a problem (and the default).
fn one_of(r: &mut Settings<'_>, name: &str, allowed: &[&str], default: &str) -> String {
    let v = r.get(name).unwrap_or_else(|| default.to_owned());
    if allowed.contains(&v.as_str()) {
        return v;
    }
    let listed = match allowed {
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", allowed.join(", ")),
    };
    r.problem(format!("{name} must be {listed}, got {v:?}"));
    default.to_owned()
}

/// `DATABASE_POOLER` (`none` or `transaction`) and `DATABASE_MIGRATION_URL`, which a
/// transaction pooler needs: migrations cannot run through it.
fn pooler(r: &mut Settings<'_>) -> (bool, Option<String>) {
    let pooled = one_of(r, "DATABASE_POOLER", &["none", "transaction"], "none") == "transaction";
    let migration_url = r.get("DATABASE_MIGRATION_URL");
    check_scheme(
        r,
        "DATABASE_MIGRATION_URL",
        &migration_url,
        &["postgres", "postgresql"],
    );
    if pooled && migration_url.is_none() {
        r.problem(
            "DATABASE_POOLER=transaction needs DATABASE_MIGRATION_URL (a direct connection or a \
             session-mode pool): migrations hold a session-level lock",
        );
    }
    (pooled, migration_url)
}

/// Where the Redis copy of the boards lives.
#[derive(Debug, Clone)]
pub(crate) enum RedisTarget {
    /// `REDIS_URL`: one server.
    Server(SecretString),
    /// `REDIS_CLUSTER_NODES`: some nodes of a Redis Cluster (the client learns the rest), as
    /// `redis://` URLs.
    Cluster(Vec<SecretString>),
}

/// `REDIS_URL` or `REDIS_CLUSTER_NODES` (comma-separated `host:port` or `redis://` URLs, as
/// in `redis-1:6379,redis-2:6379`), and `REDIS_KEY_PREFIX`.
fn redis(r: &mut Settings<'_>) -> (Option<RedisTarget>, String) {
    let url = r.get("REDIS_URL");
    check_scheme(r, "REDIS_URL", &url, &["redis", "rediss"]);
    let prefix = r
        .get("REDIS_KEY_PREFIX")
        .unwrap_or_else(|| "scoreboard:".into());
    let target = match (url, r.get("REDIS_CLUSTER_NODES")) {
        (Some(_), Some(_)) => {
            r.problem("set REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both");
            None
        }
        (Some(url), None) => Some(RedisTarget::Server(url.into())),
        (None, Some(list)) => cluster_nodes(r, &list).map(RedisTarget::Cluster),
        (None, None) => None,
    };
    if matches!(target, Some(RedisTarget::Cluster(_))) && prefix.contains(['{', '}']) {
        // The board and period are every key's hash tag: a brace in the prefix would take
        // that place and put every board on one slot, or split one board's keys.
        r.problem("REDIS_KEY_PREFIX must not contain { or } with REDIS_CLUSTER_NODES");
    }
    (target, prefix)
}

fn cluster_nodes(r: &mut Settings<'_>, list: &str) -> Option<Vec<SecretString>> {
    let mut nodes = Vec::new();
    for (i, node) in list.split(',').map(str::trim).enumerate() {
        let url = if node.starts_with("redis://") || node.starts_with("rediss://") {
            node.to_owned()
        } else if node.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
        }) {
            format!("redis://{node}")
        } else {
            // Entries are not echoed: a URL may carry a password.
            r.problem(format!(
                "REDIS_CLUSTER_NODES entry {} must be host:port or a redis:// URL",
                i + 1
            ));
            continue;
        };
        nodes.push(url.into());
    }
    (!nodes.is_empty()).then_some(nodes)
}

/// A URL must use one of `schemes`.
fn check_scheme(r: &mut Settings<'_>, name: &str, url: &Option<String>, schemes: &[&str]) {
    let Some(url) = url else { return };
    if !schemes.iter().any(|s| url.starts_with(&format!("{s}://"))) {
        let listed: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        r.problem(format!("{name} must be a {} URL", listed.join(" or ")));
    }
}

/// The session signing key: HS256 with `JWT_SECRET`, or EdDSA with the PEM file at
/// `JWT_PRIVATE_KEY_PATH`; exactly one of the two.
fn signing_key(r: &mut Settings<'_>, jwt_secret: Option<&str>) -> Option<SessionSigningKey> {
    let problem = match (jwt_secret, r.get("JWT_PRIVATE_KEY_PATH")) {
        (Some(s), None) => return Some(SessionSigningKey::Hs256(HmacSecret::new(s.as_bytes()))),
        (Some(_), Some(_)) => {
            "set JWT_SECRET (HS256) or JWT_PRIVATE_KEY_PATH (EdDSA), not both".to_owned()
        }
        (None, None) => "JWT_SECRET or JWT_PRIVATE_KEY_PATH is required".to_owned(),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(pem) => match SessionSigningKey::ed25519_from_pem(&pem) {
                Ok(k) => return Some(k),
                Err(e) => format!("JWT_PRIVATE_KEY_PATH: {e}"),
            },
            Err(e) => format!("JWT_PRIVATE_KEY_PATH {path:?} cannot be read: {e}"),
        },
    };
    r.problem(problem);
    None
}

/// HMAC keys from a current secret (checked present) and an optional previous one.
fn hmac_keys(current: Option<String>, previous: Option<String>) -> HmacKeys {
    HmacKeys::new(HmacSecret::new(current.expect("checked").as_bytes()))
        .with_previous(previous.map(|s| HmacSecret::new(s.as_bytes())))
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigErrors> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads a map of variables (the process environment, or a test's): the table of settings,
    /// read in one pass so that every problem is collected before refusing.
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigErrors> {
        let mut r = Settings::from_map(vars);

        let port = r.parsed("PORT", 3000u16, "a port number");
        let metrics_port = r.parsed("METRICS_PORT", 9100u16, "a port number");
        let bind_addr = r.get("BIND_ADDR").unwrap_or_else(|| "0.0.0.0".into());
        let database_url = r.required("DATABASE_URL");
        check_scheme(
            &mut r,
            "DATABASE_URL",
            &database_url,
            &["postgres", "postgresql"],
        );
        let database_replica_url = r.get("DATABASE_REPLICA_URL");
        let database_pool_max = r.parsed("DATABASE_POOL_MAX", 20u32, "a positive integer");
        let (database_pooled, database_migration_url) = pooler(&mut r);
        let (redis, redis_key_prefix) = redis(&mut r);

        // Sessions: HS256 with JWT_SECRET, or EdDSA with JWT_PRIVATE_KEY_PATH.
        let jwt_secret = r.secret("JWT_SECRET", false);
        let jwt_secret_previous = r.secret("JWT_SECRET_PREVIOUS", false);
        let signing_key = signing_key(&mut r, jwt_secret.as_deref());
        let jwt_expiry = r.duration("JWT_EXPIRY", Duration::from_secs(24 * 3600), 1000);

        let action_secret = r.secret("ACTION_TOKEN_SECRET", true);
        let action_previous = r.secret("ACTION_TOKEN_SECRET_PREVIOUS", false);
        let edge_secret = r.secret("EDGE_FORWARD_SECRET", true);
        let edge_previous = r.secret("EDGE_FORWARD_SECRET_PREVIOUS", false);
        let admin_key = r.secret("ADMIN_API_KEY", true);

        let mut secrets = SHARED_SECRETS.to_vec();
        secrets.extend([
            "EDGE_FORWARD_SECRET_PREVIOUS",
            "ADMIN_API_KEY",
            "WEBHOOK_SECRET",
        ]);
        let webhooks = webhooks(&mut r);
        r.distinct_secrets(&secrets);
        let shared = r.shared();

        let rate_limit_ip = r.positive("RATE_LIMIT_IP", defaults::RATE_LIMIT_IP);
        let sse_max_clients = r.parsed("SSE_MAX_CLIENTS_PER_INSTANCE", 10_000usize, "a number");
        let redis_sync_interval = r.duration("REDIS_SYNC_INTERVAL", Duration::from_secs(300), 1);
        let (apply_batch_max, apply_batch_wait) = apply_batch(&mut r);
        let request_timeout = r.duration("REQUEST_TIMEOUT", Duration::from_secs(10), 1);
        let shutdown_grace_period = r.duration("SHUTDOWN_GRACE_PERIOD", Duration::from_secs(30), 1);
        let allow_guests = r.bool("ALLOW_GUESTS", true);
        let (log_level, log_format) = logging(&mut r);

        if !r.problems().is_empty() {
            return Err(ConfigErrors(r.into_problems()));
        }
        // Everything below was checked above.
        let signing_key = signing_key.expect("checked");
        let previous = jwt_secret_previous.map(|s| HmacSecret::new(s.as_bytes()));
        let verifying = signing_key.verifying_keys(previous);
        let policy = shared.session_policy.clone();
        Ok(Config {
            port,
            metrics_port,
            bind_addr,
            database_url: database_url.expect("checked").into(),
            database_replica_url: database_replica_url.map(Into::into),
            database_pool_max: database_pool_max.max(1),
            database_pooled,
            database_migration_url: database_migration_url.map(Into::into),
            redis,
            redis_key_prefix,
            session_issuer: SessionIssuer {
                key: signing_key,
                policy: policy.clone(),
                ttl_secs: jwt_expiry.as_secs().max(1) as i64,
            },
            session_verifier: SessionVerifier::new(verifying, policy),
            shared,
            action_keys: hmac_keys(action_secret, action_previous),
            edge_keys: hmac_keys(edge_secret, edge_previous),
            admin_api_key: admin_key.expect("checked").into(),
            rate_limit_ip,
            sse_max_clients,
            redis_sync_interval,
            apply_batch_max,
            apply_batch_wait,
            request_timeout,
            shutdown_grace_period,
            allow_guests,
            webhooks,
            log_level,
            log_format,
        })
    }

    /// The endpoints period results are announced to (none without `WEBHOOK_URLS`).
    pub(crate) fn webhook_urls(&self) -> Vec<String> {
        self.webhooks
            .as_ref()
            .map(|w| w.urls.clone())
            .unwrap_or_default()
    }

    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }

    /// Where `migrate` connects: `DATABASE_MIGRATION_URL`, else `DATABASE_URL`.
    pub fn migration_url(&self) -> &str {
        self.database_migration_url
            .as_ref()
            .unwrap_or(&self.database_url)
            .expose_secret()
    }
}
