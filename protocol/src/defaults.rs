//! The defaults of the settings both services read under the same names (DESIGN.md,
//! "Configuration"), and the one way a duration setting is spelled: a plain number in the
//! setting's own unit, or a humantime string (`500ms`, `30s`, `5m`, `24h`). The edge and the
//! aggregator both read them from here, so `SSE_PING_INTERVAL=30s` means the same on both.

use std::time::Duration;

/// Score updates per player per window (`RATE_LIMIT_SCORE_UPDATE`).
pub const RATE_LIMIT_SCORE_UPDATE: u32 = 10;
/// The per-player window, milliseconds (`RATE_LIMIT_WINDOW_MS`).
pub const RATE_LIMIT_WINDOW_MS: u64 = 60_000;
/// Writing requests per client IP per minute (`RATE_LIMIT_IP`; at the edge the binding's
/// `simple.limit` in wrangler.toml, which must say the same).
pub const RATE_LIMIT_IP: u32 = 100;
/// The SSE keep-alive comment interval (`SSE_PING_INTERVAL`, plain numbers in milliseconds).
pub const SSE_PING_INTERVAL: Duration = Duration::from_secs(30);
/// The unit of a plain-number `SSE_PING_INTERVAL`.
pub const SSE_PING_INTERVAL_UNIT_MS: u64 = 1;
/// What browsers wait before reconnecting an SSE stream (the `retry:` field).
pub const SSE_RETRY: Duration = Duration::from_millis(3000);
/// Action token lifetime, seconds (`ACTION_TOKEN_TTL`).
pub const ACTION_TOKEN_TTL_SECS: i64 = crate::action::DEFAULT_TTL_SECS;
/// Clients one edge hub serves before its location's further clients of the board go to relay
/// hubs fed by it (`HUB_CLIENTS_PER_OBJECT`): where one hub's p99 to its clients was still
/// within 100 ms (BENCHMARKS.md).
pub const HUB_CLIENTS_PER_OBJECT: u32 = 1_000;

/// A duration setting that is neither a number nor a humantime string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a duration such as 30s, 5m or 24h")]
pub struct DurationError;

/// Reads a duration setting: a plain number counts in `unit_ms` milliseconds (so existing
/// `SSE_PING_INTERVAL=30000` and `REDIS_SYNC_INTERVAL=300000` keep their meaning), anything
/// else must be a humantime duration (`30s`, `1m 30s`, `250ms`). Surrounding whitespace is
/// ignored.
pub fn parse_duration(value: &str, unit_ms: u64) -> Result<Duration, DurationError> {
    let value = value.trim();
    if let Ok(n) = value.parse::<u64>() {
        return Ok(Duration::from_millis(n.saturating_mul(unit_ms)));
    }
    humantime::parse_duration(value).map_err(|_| DurationError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_number_counts_in_the_settings_unit() {
        assert_eq!(parse_duration("30000", 1), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("300", 1000), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration(" 5 ", 1000), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("0", 1000), Ok(Duration::ZERO));
    }

    #[test]
    fn a_humantime_string_means_what_it_says_in_any_unit() {
        for unit in [1, 1000] {
            assert_eq!(parse_duration("30s", unit), Ok(Duration::from_secs(30)));
            assert_eq!(parse_duration("5m", unit), Ok(Duration::from_secs(300)));
            assert_eq!(parse_duration("24h", unit), Ok(Duration::from_secs(86_400)));
            assert_eq!(
                parse_duration("250ms", unit),
                Ok(Duration::from_millis(250))
            );
            assert_eq!(parse_duration("1m 30s", unit), Ok(Duration::from_secs(90)));
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "soon", "-5", "30 seconds later", "1.5", "s30"] {
            assert_eq!(parse_duration(bad, 1), Err(DurationError), "{bad:?}");
        }
    }

    #[test]
    fn a_huge_plain_number_saturates_instead_of_wrapping() {
        assert_eq!(
            parse_duration(&u64::MAX.to_string(), 1000),
            Ok(Duration::from_millis(u64::MAX))
        );
    }

    #[test]
    fn the_defaults_are_the_documented_ones() {
        assert_eq!(RATE_LIMIT_SCORE_UPDATE, 10);
        assert_eq!(RATE_LIMIT_WINDOW_MS, 60_000);
        assert_eq!(RATE_LIMIT_IP, 100);
        assert_eq!(SSE_PING_INTERVAL, Duration::from_millis(30_000));
        assert_eq!(ACTION_TOKEN_TTL_SECS, 300);
        assert_eq!(HUB_CLIENTS_PER_OBJECT, 1_000);
    }
}
