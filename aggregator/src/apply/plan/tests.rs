//! The batch decision, without a database: examples of each rule, and a property test over
//! random sequences of batches on boards of every operator against a ledger of what was
//! applied.

use super::*;
use crate::board::kind::{Operator, Order};
use proptest::prelude::*;

fn def(id: &str, order: Order, operator: Operator) -> BoardDef {
    let (value_min, value_max) = operator.default_bounds();
    BoardDef {
        id: BoardId::parse(id).unwrap(),
        title: id.to_owned(),
        order,
        operator,
        schedule: crate::board::schedule::Schedule::never(),
        value_min,
        value_max,
        public: true,
        results_size: 100,
    }
}

/// `global` (sum, desc), `time` (best, asc), `last` (latest, desc), `hidden` (sum, not public).
fn defs() -> Vec<BoardDef> {
    let mut hidden = def("hidden", Order::Desc, Operator::Sum);
    hidden.public = false;
    vec![
        def("global", Order::Desc, Operator::Sum),
        def("time", Order::Asc, Operator::Best),
        def("last", Order::Desc, Operator::Latest),
        hidden,
    ]
}

fn index(defs: &[BoardDef]) -> HashMap<&str, &BoardDef> {
    defs.iter().map(|d| (d.id.as_str(), d)).collect()
}

fn ids(names: &[&str]) -> Vec<BoardId> {
    names.iter().map(|n| BoardId::parse(*n).unwrap()).collect()
}

fn ask<'a>(player: &'a str, points: i64, jti: &'a str, boards: &'a [BoardId]) -> Ask<'a> {
    Ask {
        player,
        points,
        jti: Some(jti),
        boards,
    }
}

fn player() -> Facts {
    Facts {
        exists: true,
        ..Facts::default()
    }
}

fn entries<'a>(rows: &[(&'a str, &'a str, i64)]) -> HashMap<EntryKey<'a>, i64> {
    rows.iter().map(|(b, p, v)| ((*b, *p), *v)).collect()
}

fn apply(moves: &[(i64, bool)]) -> Decision {
    Decision::Apply(
        moves
            .iter()
            .map(|&(value_after, changed)| Move {
                value_after,
                changed,
            })
            .collect(),
    )
}

#[test]
fn one_token_moves_each_of_its_boards_by_that_boards_operator() {
    let defs = defs();
    let boards = ids(&["global", "time", "last"]);
    let before = entries(&[("global", "a", 10), ("time", "a", 50), ("last", "a", 7)]);
    let p = plan(
        &[ask("a", 40, "j1", &boards)],
        &[player()],
        &index(&defs),
        before,
    );
    assert_eq!(p.decisions, [apply(&[(50, true), (40, true), (40, true)])]);
    assert_eq!(p.values[&("time", "a")], 40);
}

#[test]
fn a_best_that_is_not_better_changes_nothing_and_keeps_the_tie() {
    let defs = defs();
    let boards = ids(&["time"]);
    let before = entries(&[("time", "a", 30)]);
    let asks = [ask("a", 30, "j1", &boards), ask("a", 31, "j2", &boards)];
    let p = plan(&asks, &[player(), player()], &index(&defs), before);
    assert_eq!(p.decisions, [apply(&[(30, false)]), apply(&[(30, false)])]);
}

#[test]
fn the_same_token_twice_in_one_batch_is_applied_once() {
    let defs = defs();
    let boards = ids(&["global"]);
    let asks = [ask("a", 5, "j1", &boards), ask("a", 5, "j1", &boards)];
    let p = plan(
        &asks,
        &[player(), player()],
        &index(&defs),
        HashMap::default(),
    );
    assert_eq!(p.decisions, [apply(&[(5, true)]), Decision::Replayed]);
    assert_eq!(p.values[&("global", "a")], 5);
}

#[test]
fn an_unknown_or_hidden_board_or_a_value_out_of_bounds_refuses_the_whole_token() {
    let defs = defs();
    let unknown = ids(&["global", "nope"]);
    let hidden = ids(&["global", "hidden"]);
    let sum = ids(&["global", "time"]);
    let asks = [
        ask("a", 5, "j1", &unknown),
        ask("a", 5, "j2", &hidden),
        ask("a", 2_000_000, "j3", &sum),
        ask("a", 0, "j4", &sum),
        // The refused j1 is judged again, not called a replay.
        ask("a", 5, "j1", &sum),
    ];
    let p = plan(&asks, &vec![player(); 5], &index(&defs), HashMap::default());
    assert_eq!(
        p.decisions,
        [
            Decision::UnknownBoard,
            Decision::UnknownBoard,
            Decision::ValueOutOfRange,
            Decision::ValueOutOfRange,
            apply(&[(5, true), (5, true)]),
        ]
    );
}

#[test]
fn session_replay_and_ban_are_checked_before_the_boards() {
    let defs = defs();
    let unknown = ids(&["nope"]);
    let used = Facts {
        consumed: true,
        banned: true,
        ..player()
    };
    let banned = Facts {
        banned: true,
        ..player()
    };
    let revoked = Facts {
        revoked: true,
        ..player()
    };
    let asks = [
        ask("a", 5, "j1", &unknown),
        ask("b", 5, "j2", &unknown),
        ask("c", 5, "j3", &unknown),
    ];
    let p = plan(
        &asks,
        &[used, banned, revoked],
        &index(&defs),
        HashMap::default(),
    );
    assert_eq!(
        p.decisions,
        [
            Decision::Replayed,
            Decision::Banned,
            Decision::Unauthenticated
        ]
    );
}

#[test]
fn an_update_past_the_bound_is_refused_and_a_later_one_in_range_still_applies() {
    let defs = defs();
    let boards = ids(&["global"]);
    let before = entries(&[("global", "a", MAX_VALUE - 5)]);
    let asks = [ask("a", 10, "j1", &boards), ask("a", -10, "j2", &boards)];
    let p = plan(&asks, &[player(), player()], &index(&defs), before);
    assert_eq!(
        p.decisions,
        [Decision::OutOfRange, apply(&[(MAX_VALUE - 15, true)])]
    );
}

#[test]
fn an_adjustment_needs_an_existing_player_and_board_and_may_use_a_hidden_one() {
    let defs = defs();
    let hidden = ids(&["hidden"]);
    let unknown = ids(&["nope"]);
    let adjust = |player, boards| Ask {
        player,
        points: -7,
        jti: None,
        boards,
    };
    let banned = Facts {
        banned: true,
        ..player()
    };
    let asks = [
        adjust("a", &hidden[..]),
        adjust("b", &hidden[..]),
        adjust("a", &unknown[..]),
    ];
    let p = plan(
        &asks,
        &[banned.clone(), Facts::default(), banned],
        &index(&defs),
        entries(&[("hidden", "a", 7)]),
    );
    assert_eq!(
        p.decisions,
        [
            apply(&[(0, true)]),
            Decision::UnknownPlayer,
            Decision::UnknownBoard
        ]
    );
}

/// One generated request: player index, value, token index (None: an adjustment), and which
/// of the boards it names (a bit set over `BOARDS`).
type Gen = (usize, i64, Option<usize>, u8);

const PLAYERS: usize = 4;
const BOARDS: [&str; 4] = ["global", "time", "last", "nope"];

/// The world the batches run against: per player, whether they exist, are banned, and
/// whether their session is revoked.
#[derive(Debug, Clone)]
struct World {
    exists: Vec<bool>,
    banned: Vec<bool>,
    revoked: Vec<bool>,
}

fn world() -> impl Strategy<Value = World> {
    (
        proptest::collection::vec(proptest::bool::weighted(0.9), PLAYERS),
        proptest::collection::vec(proptest::bool::weighted(0.2), PLAYERS),
        proptest::collection::vec(proptest::bool::weighted(0.2), PLAYERS),
    )
        .prop_map(|(exists, banned, revoked)| World {
            exists,
            banned,
            revoked,
        })
}

fn request() -> impl Strategy<Value = Gen> {
    (
        0..PLAYERS,
        prop_oneof![
            -1_500i64..1_500,
            Just(1_000_000),
            Just(0),
            Just(MAX_VALUE - 1)
        ],
        proptest::option::weighted(0.9, 0usize..12),
        prop_oneof![1u8..8, Just(8u8), 1u8..16],
    )
}

/// Every entry's value, carried from batch to batch as the database would.
type Ledger = HashMap<(String, String), i64>;

/// The ledger as the plan reads it.
fn borrowed(ledger: &Ledger) -> HashMap<EntryKey<'_>, i64> {
    ledger
        .iter()
        .map(|((b, p), v)| ((b.as_str(), p.as_str()), *v))
        .collect()
}

/// The model: what one request does to the ledger, decided the slow, obvious way.
fn model(
    defs: &HashMap<&str, &BoardDef>,
    ledger: &Ledger,
    player: &str,
    value: i64,
    token: bool,
    boards: &[BoardId],
) -> Option<Vec<((String, String), i64)>> {
    let mut out = Vec::new();
    for b in boards {
        let d = defs.get(b.as_str())?;
        if token && (!d.public || !(d.value_min..=d.value_max).contains(&value)) {
            return None;
        }
        if token && d.operator == crate::board::kind::Operator::Sum && value == 0 {
            return None;
        }
        let k = (b.to_string(), player.to_owned());
        let cur = ledger.get(&k).copied();
        let next = match (token, d.operator, cur) {
            (_, _, None) if token => value,
            (false, _, c) => c.unwrap_or(0) + value,
            (true, crate::board::kind::Operator::Sum, Some(c)) => c + value,
            (true, crate::board::kind::Operator::Best, Some(c)) => {
                if d.order == Order::Desc {
                    c.max(value)
                } else {
                    c.min(value)
                }
            }
            (true, crate::board::kind::Operator::Latest, Some(_)) => value,
            _ => unreachable!(),
        };
        if next.abs() > MAX_VALUE {
            return None;
        }
        out.push((k, next));
    }
    Some(out)
}

proptest! {
    /// Across a sequence of batches (consumed tokens and entries carried from one to the
    /// next, as the database would), every token is applied at most once and to all of its
    /// boards or none, every entry is what the model computes, a replay is only ever a token
    /// applied before, and nothing moves for banned players, revoked sessions or unknown
    /// players or boards.
    #[test]
    fn every_token_applies_once_to_all_its_boards_and_entries_match_the_model(
        world in world(),
        batches in proptest::collection::vec(proptest::collection::vec(request(), 1..24), 1..6),
    ) {
        let all = defs();
        let defs = index(&all);
        let names: Vec<String> = (0..PLAYERS).map(|i| format!("p{i}")).collect();
        let jtis: Vec<String> = (0..12).map(|j| format!("jti-{j}")).collect();
        let board_sets: Vec<Vec<BoardId>> = (0u8..16)
            .map(|bits| BOARDS.iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, b)| BoardId::parse(*b).unwrap()).collect())
            .collect();
        // A token belongs to one player, as the edge guarantees (`sub` = session's player).
        let owner = |j: usize| j % PLAYERS;
        let mut consumed: HashSet<usize> = HashSet::default();
        let mut ledger: Ledger = HashMap::default();
        for batch in &batches {
            let batch: Vec<Gen> = batch.iter().map(|&(p, v, j, b)| (j.map_or(p, owner), v, j, b)).collect();
            let asks: Vec<Ask<'_>> = batch
                .iter()
                .map(|&(p, points, j, b)| Ask {
                    player: &names[p],
                    points,
                    jti: j.map(|j| jtis[j].as_str()),
                    boards: &board_sets[b as usize],
                })
                .collect();
            let facts: Vec<Facts> = batch
                .iter()
                .map(|&(p, _, j, _)| Facts {
                    exists: world.exists[p],
                    banned: world.banned[p],
                    revoked: world.revoked[p] && j.is_some(),
                    consumed: j.is_some_and(|j| consumed.contains(&j)),
                })
                .collect();
            let before = ledger.clone();
            let out = plan(&asks, &facts, &defs, borrowed(&before));
            for (ask, d) in asks.iter().zip(&out.decisions) {
                let expected = model(&defs, &ledger, ask.player, ask.points, ask.jti.is_some(), ask.boards);
                let p = names.iter().position(|n| n == ask.player).unwrap();
                match d {
                    Decision::Apply(moves) => {
                        prop_assert!(world.exists[p]);
                        if let Some(j) = ask.jti {
                            prop_assert!(!world.banned[p] && !world.revoked[p]);
                            let j: usize = j.trim_start_matches("jti-").parse().unwrap();
                            prop_assert!(consumed.insert(j), "token {} applied twice", j);
                        }
                        let expected = expected.expect("the model applies it too");
                        prop_assert_eq!(moves.len(), expected.len());
                        for (m, (k, v)) in moves.iter().zip(expected) {
                            prop_assert_eq!(m.value_after, v);
                            prop_assert_eq!(m.changed, ledger.get(&k) != Some(&v) || ask.jti.is_none());
                            ledger.insert(k, v);
                        }
                    }
                    Decision::Replayed => {
                        let j: Option<usize> = ask.jti.map(|j| j.trim_start_matches("jti-").parse().unwrap());
                        prop_assert!(j.is_some_and(|j| consumed.contains(&j)));
                    }
                    Decision::UnknownBoard | Decision::ValueOutOfRange | Decision::OutOfRange => {
                        prop_assert!(expected.is_none());
                    }
                    Decision::Banned => prop_assert!(world.banned[p]),
                    Decision::Unauthenticated => prop_assert!(!world.exists[p] || world.revoked[p]),
                    Decision::UnknownPlayer => prop_assert!(ask.jti.is_none() && !world.exists[p]),
                }
            }
            for ((b, p), v) in &ledger {
                prop_assert_eq!(out.values.get(&(b.as_str(), p.as_str())), Some(v));
            }
        }
    }
}
