//! The decision of a batch, as a pure function: given the requests and what the batch read
//! about each one under the writers' lock, decide every request's outcome and the total each
//! applied update leaves. No database, no clock: unit- and property-tested as it stands.
//!
//! A batch decides exactly as if its requests had been applied one after another in order:
//! a token redeemed earlier in the same batch is a replay, a player's total moves with each
//! update before the next is checked against the bounds, and a refused update consumes
//! nothing, so the same token may succeed later.

use std::collections::{HashMap, HashSet};

/// Totals stay within ±2^53 so they are exact as Redis scores (doubles).
pub(crate) const MAX_TOTAL: i64 = 1 << 53;

/// One request, as far as the decision goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub(crate) player: &'a str,
    pub(crate) points: i64,
    /// The action token's id; `None` for an operator's adjustment, which has no token, no
    /// session and may move a banned player's total.
    pub(crate) jti: Option<&'a str>,
}

/// What the batch read about one request's player, session and token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    pub(crate) exists: bool,
    pub(crate) banned: bool,
    /// The session was revoked (logout).
    pub(crate) revoked: bool,
    /// The token was redeemed by an earlier batch.
    pub(crate) consumed: bool,
    /// The player's total before this batch (0 without a score yet).
    pub(crate) score: i64,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Applied; the player's total right after this update.
    Apply {
        score_after: i64,
    },
    /// The token was redeemed before (in an earlier batch or earlier in this one).
    Replayed,
    Banned,
    /// The session was revoked, or its player no longer exists.
    Unauthenticated,
    /// An adjustment for a player who does not exist.
    UnknownPlayer,
    /// Applying would take the total beyond ±[`MAX_TOTAL`].
    OutOfRange,
}

/// The decision of a whole batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// One per request, in request order.
    pub(crate) decisions: Vec<Decision>,
    /// Each player's total after the batch, for every player the batch names.
    pub(crate) totals: HashMap<String, i64>,
}

/// Decides a batch. `facts[i]` belongs to `asks[i]`.
pub(crate) fn plan(asks: &[Ask<'_>], facts: &[Facts]) -> Plan {
    assert_eq!(asks.len(), facts.len(), "one row of facts per request");
    let mut totals: HashMap<String, i64> = HashMap::new();
    let mut redeemed: HashSet<&str> = HashSet::new();
    let decisions = asks
        .iter()
        .zip(facts)
        .map(|(ask, facts)| {
            let total = totals.entry(ask.player.to_owned()).or_insert(facts.score);
            let decision = decide(ask, facts, *total, &redeemed);
            if let Decision::Apply { score_after } = decision {
                *total = score_after;
                redeemed.extend(ask.jti);
            }
            decision
        })
        .collect();
    Plan { decisions, totals }
}

/// One request against the running state, in DESIGN.md's order of checks: session, replay,
/// ban, range.
fn decide(ask: &Ask<'_>, facts: &Facts, total: i64, redeemed: &HashSet<&str>) -> Decision {
    let Some(jti) = ask.jti else {
        return if facts.exists {
            within_range(total, ask.points)
        } else {
            Decision::UnknownPlayer
        };
    };
    if !facts.exists || facts.revoked {
        Decision::Unauthenticated
    } else if facts.consumed || redeemed.contains(jti) {
        Decision::Replayed
    } else if facts.banned {
        Decision::Banned
    } else {
        within_range(total, ask.points)
    }
}

fn within_range(total: i64, points: i64) -> Decision {
    match total.checked_add(points) {
        Some(t) if t.abs() <= MAX_TOTAL => Decision::Apply { score_after: t },
        _ => Decision::OutOfRange,
    }
}

#[cfg(test)]
mod tests;
