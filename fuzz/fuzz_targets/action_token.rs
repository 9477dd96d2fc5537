//! Action-token verification on arbitrary input: never panics, never accepts a forgery.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scoreboard_protocol::action::ActionTokens;
use scoreboard_protocol::jwt::HmacSecret;
use scoreboard_protocol::PlayerId;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let tokens = ActionTokens::from_secret(HmacSecret::new(
        b"fuzz-action-secret-0123456789abcdef".to_vec(),
    ));
    let player = PlayerId::parse("fuzz-player").expect("a valid id");
    assert!(tokens.verify(token, &player, 1_800_000_000, 30).is_err());
});
