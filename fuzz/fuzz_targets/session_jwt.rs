//! Session JWT verification on arbitrary input: never panics, and never accepts a token that
//! the fixed test key did not sign (the fuzzer cannot forge an HMAC).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scoreboard_protocol::jwt::{HmacKeys, HmacSecret};
use scoreboard_protocol::session::{SessionPolicy, SessionVerifier, SessionVerifyingKeys};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let verifier = SessionVerifier::new(
        SessionVerifyingKeys::Hs256(HmacKeys::new(HmacSecret::new(
            b"fuzz-session-secret-0123456789abcdef".to_vec(),
        ))),
        SessionPolicy::default(),
    );
    assert!(verifier.verify(token, 1_800_000_000).is_err());
});
