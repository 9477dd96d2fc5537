//! The configuration every test and benchmark gives an in-process aggregator (and the edge
//! beside it): development secrets that satisfy the start-up checks, free ports, quiet logs.
//! Callers add or override variables for what they test.

use std::collections::HashMap;

pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef-xyz";
pub const ACTION_SECRET: &str = "test-action-secret-0123456789abcdef";
pub const EDGE_SECRET: &str = "test-edge-secret-0123456789abcdef-xy";
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef-wxyz";

/// Variables for an aggregator on `database_url`, bound to free ports on 127.0.0.1.
pub fn aggregator_vars(database_url: &str) -> HashMap<String, String> {
    [
        ("DATABASE_URL", database_url),
        ("PORT", "0"),
        ("METRICS_PORT", "0"),
        ("BIND_ADDR", "127.0.0.1"),
        ("JWT_SECRET", JWT_SECRET),
        ("ACTION_TOKEN_SECRET", ACTION_SECRET),
        ("EDGE_FORWARD_SECRET", EDGE_SECRET),
        ("ADMIN_API_KEY", ADMIN_KEY),
        ("LOG_LEVEL", "warn"),
        ("SHUTDOWN_GRACE_PERIOD", "5s"),
        // Tests sign many players in from one address; the limit has a test of its own.
        ("RATE_LIMIT_IP", "100000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
