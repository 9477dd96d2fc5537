//! The one place the aggregator reads the wall clock, so every check of a token's times and
//! every timestamp it writes agree on what "now" is.

/// Unix seconds.
pub(crate) fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Unix milliseconds, never negative (the rate limiter counts in unsigned milliseconds).
pub(crate) fn now_millis() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}
