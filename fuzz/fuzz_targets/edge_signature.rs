//! The `X-Edge-Signature` header and its query form on arbitrary input: never panics, never
//! accepts a signature the fixed key did not make.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scoreboard_protocol::edge_signature;
use scoreboard_protocol::jwt::{HmacKeys, HmacSecret};

fuzz_target!(|data: &[u8]| {
    // The input is the header, then (after the first NUL) the body it claims to sign.
    let (header, body) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let keys = HmacKeys::new(HmacSecret::new(
        b"fuzz-edge-secret-0123456789abcdef".to_vec(),
    ));
    let now = 1_800_000_000;
    assert!(edge_signature::verify_header(
        &keys,
        Some(header),
        "POST",
        "/internal/scores",
        body,
        now
    )
    .is_err());
    let (t, sig) = header.split_once(',').unwrap_or((header, ""));
    assert!(edge_signature::verify_query(
        &keys,
        Some(t),
        Some(sig),
        "GET",
        "/internal/leaderboard/ws",
        b"",
        now
    )
    .is_err());
});
