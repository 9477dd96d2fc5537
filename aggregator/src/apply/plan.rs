//! The decision of a batch, as a pure function: given the requests and what the batch read
//! about each one under the writers' lock, decide every request's outcome and the total each
//! applied update leaves. No database, no clock: unit- and property-tested as it stands.
//!
//! A batch decides exactly as if its requests had been applied one after another in order:
//! a token redeemed earlier in the same batch is a replay, a player's total moves with each
//! update before the next is checked against the bounds, and a refused update consumes
//! nothing, so the same token may succeed later.

use crate::board::kind::{combine, BoardDef, MAX_VALUE};
use foldhash::{HashMap, HashSet};
use scoreboard_protocol::BoardId;

/// One request, as far as the decision goes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub(crate) player: &'a str,
    /// The token's value (a delta on `sum` boards), or an adjustment's delta.
    pub(crate) points: i64,
    /// The action token's id; `None` for an operator's adjustment, which has no token, no
    /// session, may move a banned player and may name a hidden board.
    pub(crate) jti: Option<&'a str>,
    /// The boards the update applies to, all or none.
    pub(crate) boards: &'a [BoardId],
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
}

/// A player's entry on one board, keyed (board, player), borrowed from the batch and what it
/// read (no allocation per lookup on the batcher's serial path).
pub(crate) type EntryKey<'a> = (&'a str, &'a str);

/// What an applied update does to one of its boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Move {
    /// The player's value on the board right after this update.
    pub(crate) value_after: i64,
    /// Whether the entry changed (a `best` that is not better leaves it, and its tie, alone).
    pub(crate) changed: bool,
}

/// What happens to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Applied; one move per board of the request, in its order.
    Apply(Vec<Move>),
    /// The token was redeemed before (in an earlier batch or earlier in this one).
    Replayed,
    Banned,
    /// The session was revoked, or its player no longer exists.
    Unauthenticated,
    /// An adjustment for a player who does not exist.
    UnknownPlayer,
    /// A board that does not exist (or, for a token, is hidden).
    UnknownBoard,
    /// The token's value is outside a board's bounds.
    ValueOutOfRange,
    /// Applying would take an entry beyond ±[`MAX_VALUE`].
    OutOfRange,
}

/// The decision of a whole batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan<'a> {
    /// One per request, in request order.
    pub(crate) decisions: Vec<Decision>,
    /// The value of every entry the batch names that has one, after the batch.
    pub(crate) values: HashMap<EntryKey<'a>, i64>,
}

/// Decides a batch. `facts[i]` belongs to `asks[i]`; `boards` are the definitions read (any
/// board the batch names that exists); `entries` the values before the batch.
pub(crate) fn plan<'a>(
    asks: &[Ask<'a>],
    facts: &[Facts],
    boards: &HashMap<&str, &BoardDef>,
    entries: HashMap<EntryKey<'a>, i64>,
) -> Plan<'a> {
    assert_eq!(asks.len(), facts.len(), "one row of facts per request");
    let mut values = entries;
    let mut redeemed: HashSet<&str> = HashSet::default();
    let decisions = asks
        .iter()
        .zip(facts)
        .map(|(ask, facts)| {
            let decision = decide(ask, facts, boards, &values, &redeemed);
            if let Decision::Apply(moves) = &decision {
                for (board, m) in ask.boards.iter().zip(moves) {
                    values.insert((board.as_str(), ask.player), m.value_after);
                }
                redeemed.extend(ask.jti);
            }
            decision
        })
        .collect();
    Plan { decisions, values }
}

/// One request against the running state, in DESIGN.md's order of checks: session, replay,
/// ban, boards, the token's value, the entry's range.
fn decide(
    ask: &Ask<'_>,
    facts: &Facts,
    boards: &HashMap<&str, &BoardDef>,
    values: &HashMap<EntryKey<'_>, i64>,
    redeemed: &HashSet<&str>,
) -> Decision {
    let Some(jti) = ask.jti else {
        return if facts.exists {
            moves(ask, boards, values, false)
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
        moves(ask, boards, values, true)
    }
}

/// The moves on every board of the request, or why none is made. A token needs public boards
/// that accept its value and combines by the board's operator; an adjustment is a delta on any
/// board.
fn moves(
    ask: &Ask<'_>,
    boards: &HashMap<&str, &BoardDef>,
    values: &HashMap<EntryKey<'_>, i64>,
    token: bool,
) -> Decision {
    let mut out = Vec::with_capacity(ask.boards.len());
    for id in ask.boards {
        let Some(def) = boards.get(id.as_str()).filter(|d| d.public || !token) else {
            return Decision::UnknownBoard;
        };
        if token && !def.accepts(ask.points) {
            return Decision::ValueOutOfRange;
        }
        let current = values.get(&(id.as_str(), ask.player)).copied();
        let next = if token {
            combine(def.order, def.operator, current, ask.points)
        } else {
            Some(current.unwrap_or(0).saturating_add(ask.points))
        };
        if next.is_some_and(|v| v.abs() > MAX_VALUE) {
            return Decision::OutOfRange;
        }
        out.push(Move {
            value_after: next.or(current).unwrap_or(0),
            changed: next.is_some(),
        });
    }
    Decision::Apply(out)
}

#[cfg(test)]
mod tests;
