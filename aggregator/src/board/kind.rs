//! What a board is: its order, its operator, the bounds of a token's value, and the rule that
//! combines a value into a player's entry. Pure; the SQL and the Redis scripts take the rank
//! key from here so the three code paths cannot order differently.

use super::schedule::Schedule;
use scoreboard_protocol::snapshot::PeriodRef;
use scoreboard_protocol::BoardId;
use serde::{Deserialize, Serialize};

/// Entries stay within ±2^53 so they are exact as Redis scores (doubles).
pub(crate) const MAX_VALUE: i64 = 1 << 53;

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Order {
    /// Higher values rank first.
    Desc,
    /// Lower values rank first (times, strokes).
    Asc,
}

impl Order {
    /// The value as every code path sorts it, ascending: the value itself for `asc`, its
    /// negation for `desc`. Ties then go to the smaller event id, in both orders.
    pub(crate) fn rank_key(self, value: i64) -> i64 {
        match self {
            Self::Asc => value,
            Self::Desc => -value,
        }
    }

    /// The value a rank key stands for.
    pub(crate) fn value(self, rank_key: i64) -> i64 {
        self.rank_key(rank_key)
    }

    /// Whether `a` ranks strictly ahead of `b` by value alone.
    pub(crate) fn better(self, a: i64, b: i64) -> bool {
        self.rank_key(a) < self.rank_key(b)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Desc => "desc",
            Self::Asc => "asc",
        }
    }
}

/// How a token's value combines with the player's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Operator {
    /// The value is a delta: entries add up.
    Sum,
    /// The player's best value is kept (highest for `desc`, lowest for `asc`).
    Best,
    /// The last value replaces the entry.
    Latest,
}

impl Operator {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Best => "best",
            Self::Latest => "latest",
        }
    }

    /// The default bounds of one token's value on a board with this operator.
    pub(crate) fn default_bounds(self) -> (i64, i64) {
        match self {
            Self::Sum => (
                -scoreboard_protocol::action::MAX_POINTS,
                scoreboard_protocol::action::MAX_POINTS,
            ),
            Self::Best | Self::Latest => (-(MAX_VALUE - 1), MAX_VALUE - 1),
        }
    }
}

/// A player's entry after one more value, or `None` when the entry does not change (a `best`
/// that is not better, a `latest` equal to the current value): an unchanged entry keeps the
/// event that reached it, so re-submitting a value never costs a player their tie.
pub(crate) fn combine(order: Order, op: Operator, current: Option<i64>, value: i64) -> Option<i64> {
    let Some(current) = current else {
        return Some(value);
    };
    match op {
        Operator::Sum => Some(current.saturating_add(value)),
        Operator::Best => order.better(value, current).then_some(value),
        Operator::Latest => (value != current).then_some(value),
    }
}

/// A board, as operators define it (`PUT /admin/boards/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct BoardDef {
    pub(crate) id: BoardId,
    pub(crate) title: String,
    pub(crate) order: Order,
    pub(crate) operator: Operator,
    /// `reset` and `timezone`.
    #[serde(flatten)]
    pub(crate) schedule: Schedule,
    pub(crate) value_min: i64,
    pub(crate) value_max: i64,
    pub(crate) public: bool,
    pub(crate) results_size: i32,
}

impl BoardDef {
    /// The period an update applied at `now_ms` counts in.
    pub(crate) fn period_at(&self, now_ms: i64) -> PeriodRef {
        self.schedule.period_at(now_ms)
    }

    /// Whether a token's `value` may be applied to this board.
    pub(crate) fn accepts(&self, value: i64) -> bool {
        let in_bounds = (self.value_min..=self.value_max).contains(&value);
        // A zero delta would spend a token and move nothing.
        in_bounds && !(self.operator == Operator::Sum && value == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_keys_sort_both_orders_ascending() {
        assert!(Order::Desc.rank_key(10) < Order::Desc.rank_key(5));
        assert!(Order::Asc.rank_key(5) < Order::Asc.rank_key(10));
        for v in [-7, 0, 42, MAX_VALUE] {
            assert_eq!(Order::Desc.value(Order::Desc.rank_key(v)), v);
            assert_eq!(Order::Asc.value(Order::Asc.rank_key(v)), v);
        }
    }

    #[test]
    fn operators_combine_whole_values() {
        use Operator::*;
        assert_eq!(combine(Order::Desc, Sum, Some(10), 5), Some(15));
        assert_eq!(combine(Order::Desc, Sum, None, 5), Some(5));
        assert_eq!(combine(Order::Desc, Best, Some(10), 5), None);
        assert_eq!(combine(Order::Desc, Best, Some(10), 10), None);
        assert_eq!(combine(Order::Desc, Best, Some(10), 11), Some(11));
        assert_eq!(combine(Order::Asc, Best, Some(10), 9), Some(9));
        assert_eq!(combine(Order::Asc, Best, Some(10), 11), None);
        assert_eq!(combine(Order::Asc, Latest, Some(10), 11), Some(11));
        assert_eq!(combine(Order::Desc, Latest, Some(10), 10), None);
        assert_eq!(combine(Order::Asc, Best, None, 300), Some(300));
    }
}
