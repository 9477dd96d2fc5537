//! The signature of the events the aggregator posts to the game's backend (`WEBHOOK_URLS`):
//! `Scoreboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(WEBHOOK_SECRET, "<t>.<body>")>`,
//! the body being the exact bytes posted. A receiver checks it, refuses a `t` too far from its
//! clock, and drops duplicates by the event's `id`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "scoreboard-signature";
/// How far a receiver should let `t` be from its clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// The whole header value for `body` posted at `t`.
pub fn header_value(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut input = format!("{t}.").into_bytes();
    input.extend_from_slice(body);
    let sig = crate::edge_signature::hmac_sha256_hex(secret, &input);
    format!("t={t},v1={sig}")
}

/// Whether `header` signs `body` with `secret` at a `t` within [`MAX_SKEW_SECS`] of `now`;
/// the comparison is constant-time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> bool {
    let mut t = None;
    let mut sig = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sig = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(sig)) = (t, sig) else {
        return false;
    };
    if (now - t).abs() > MAX_SKEW_SECS {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_for_its_body_secret_and_time() {
        let body = br#"{"type":"period.closed"}"#;
        let h = header_value(b"hook-secret", 1_800_000_000, body);
        assert!(h.starts_with("t=1800000000,v1="));
        assert!(verify(b"hook-secret", &h, body, 1_800_000_100));
        assert!(!verify(b"other-secret", &h, body, 1_800_000_100));
        assert!(!verify(b"hook-secret", &h, b"{}", 1_800_000_100));
        assert!(!verify(b"hook-secret", &h, body, 1_800_001_000), "stale");
        assert!(!verify(b"hook-secret", "t=1800000000", body, 1_800_000_000));
        assert!(!verify(b"hook-secret", "v1=00,t=x", body, 1_800_000_000));
    }
}
