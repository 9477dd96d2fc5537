//! Action tokens as a game backend (or the edge) mints them, and the clock they are minted by:
//! written once for every test, the harness's load and the load generator.

use crate::stack::ACTION_SECRET;
use scoreboard_protocol::action::{ActionTokens, MintRequest, MintedAction};
use scoreboard_protocol::jwt::HmacSecret;
use scoreboard_protocol::{ActionName, BoardId, PlayerId};

/// Unix time in seconds, as tokens and edge signatures count it.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An action token signed with `secret`: `action` for `points`, redeemable `min_seconds` after
/// `iat` and valid for `ttl_secs` from it, with a fresh random `jti`. Panics on a request the
/// minter refuses (a test's mistake, not a finding).
pub fn mint_action(
    secret: &str,
    action: &str,
    player: &str,
    points: i64,
    min_seconds: i64,
    ttl_secs: i64,
    iat: i64,
) -> MintedAction {
    ActionTokens::from_secret(HmacSecret::new(secret.as_bytes()))
        .mint(
            &MintRequest {
                player: &PlayerId::parse(player).expect("a valid player id"),
                action: &ActionName::parse(action).expect("a valid action name"),
                points,
                min_seconds,
                ttl_secs,
                boards: None,
            },
            &rand::random::<[u8; 16]>(),
            iat,
        )
        .expect("the minter accepts the request")
}

/// A `quest` token signed with `secret` (e.g. a secret being rotated out).
pub fn mint_with(
    secret: &str,
    player: &str,
    points: i64,
    min_seconds: i64,
    ttl_secs: i64,
    iat: i64,
) -> String {
    mint_action(secret, "quest", player, points, min_seconds, ttl_secs, iat).token
}

/// A `quest` token signed with the test action secret.
pub fn mint(player: &str, points: i64, min_seconds: i64, ttl_secs: i64, iat: i64) -> String {
    mint_with(ACTION_SECRET, player, points, min_seconds, ttl_secs, iat)
}

/// A 300-second `quest` token for `value` on `boards` (its `brd` claim), signed with the test
/// action secret.
pub fn mint_on(player: &str, value: i64, boards: &[&str]) -> String {
    let boards: Vec<BoardId> = boards
        .iter()
        .map(|b| BoardId::parse(*b).expect("a valid board id"))
        .collect();
    ActionTokens::from_secret(HmacSecret::new(ACTION_SECRET.as_bytes()))
        .mint(
            &MintRequest {
                player: &PlayerId::parse(player).expect("a valid player id"),
                action: &ActionName::parse("quest").expect("a valid action name"),
                points: value,
                min_seconds: 0,
                ttl_secs: 300,
                boards: Some(&boards),
            },
            &rand::random::<[u8; 16]>(),
            now(),
        )
        .expect("the minter accepts the request")
        .token
}
