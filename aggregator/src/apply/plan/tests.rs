//! The batch decision, without a database: examples of each rule, and a property test over
//! random sequences of batches against a ledger of what was applied.

use super::*;
use proptest::prelude::*;

fn ask<'a>(player: &'a str, points: i64, jti: &'a str) -> Ask<'a> {
    Ask {
        player,
        points,
        jti: Some(jti),
    }
}

fn player(score: i64) -> Facts {
    Facts {
        exists: true,
        score,
        ..Facts::default()
    }
}

#[test]
fn a_fresh_token_is_applied_and_moves_the_total() {
    let p = plan(&[ask("a", 5, "j1")], &[player(10)]);
    assert_eq!(p.decisions, [Decision::Apply { score_after: 15 }]);
    assert_eq!(p.totals["a"], 15);
}

#[test]
fn the_same_token_twice_in_one_batch_is_applied_once() {
    let p = plan(
        &[ask("a", 5, "j1"), ask("a", 5, "j1")],
        &[player(0), player(0)],
    );
    assert_eq!(
        p.decisions,
        [Decision::Apply { score_after: 5 }, Decision::Replayed]
    );
    assert_eq!(p.totals["a"], 5);
}

#[test]
fn a_token_consumed_by_an_earlier_batch_is_a_replay_even_for_a_banned_player() {
    let banned_and_used = Facts {
        banned: true,
        consumed: true,
        ..player(3)
    };
    let p = plan(&[ask("a", 5, "j1")], &[banned_and_used]);
    assert_eq!(p.decisions, [Decision::Replayed]);
    assert_eq!(p.totals["a"], 3);
}

#[test]
fn a_banned_player_and_a_revoked_session_move_nothing() {
    let banned = Facts {
        banned: true,
        ..player(0)
    };
    let revoked = Facts {
        revoked: true,
        ..player(0)
    };
    let p = plan(
        &[ask("a", 5, "j1"), ask("b", 5, "j2"), ask("c", 5, "j3")],
        &[banned, revoked, Facts::default()],
    );
    assert_eq!(
        p.decisions,
        [
            Decision::Banned,
            Decision::Unauthenticated,
            Decision::Unauthenticated
        ]
    );
    assert_eq!(p.totals.values().sum::<i64>(), 0);
}

#[test]
fn an_update_past_the_bound_is_refused_and_a_later_one_in_range_still_applies() {
    let p = plan(
        &[ask("a", 10, "j1"), ask("a", -10, "j2")],
        &[player(MAX_TOTAL - 5), player(MAX_TOTAL - 5)],
    );
    assert_eq!(
        p.decisions,
        [
            Decision::OutOfRange,
            Decision::Apply {
                score_after: MAX_TOTAL - 15
            }
        ]
    );
}

#[test]
fn a_refused_token_repeated_in_the_batch_is_judged_again_not_called_a_replay() {
    let p = plan(
        &[ask("a", 10, "j1"), ask("a", 10, "j1")],
        &[player(MAX_TOTAL), player(MAX_TOTAL)],
    );
    assert_eq!(p.decisions, [Decision::OutOfRange, Decision::OutOfRange]);
}

#[test]
fn an_adjustment_needs_only_an_existing_player_and_may_move_a_banned_one() {
    let adjust = |player| Ask {
        player,
        points: -7,
        jti: None,
    };
    let banned = Facts {
        banned: true,
        ..player(7)
    };
    let p = plan(&[adjust("a"), adjust("b")], &[banned, Facts::default()]);
    assert_eq!(
        p.decisions,
        [Decision::Apply { score_after: 0 }, Decision::UnknownPlayer]
    );
}

/// One generated request: player index, points, token index (None: an adjustment).
type Gen = (usize, i64, Option<usize>);

/// The world the batches run against: per player, whether they exist, are banned, and
/// whether their session is revoked; their starting totals.
#[derive(Debug, Clone)]
struct World {
    exists: Vec<bool>,
    banned: Vec<bool>,
    revoked: Vec<bool>,
    start: Vec<i64>,
}

const PLAYERS: usize = 4;

fn world() -> impl Strategy<Value = World> {
    let near_bounds = prop_oneof![
        -1_000i64..1_000,
        (MAX_TOTAL - 2_000)..=MAX_TOTAL,
        -MAX_TOTAL..=(-MAX_TOTAL + 2_000),
    ];
    (
        proptest::collection::vec(proptest::bool::weighted(0.9), PLAYERS),
        proptest::collection::vec(proptest::bool::weighted(0.2), PLAYERS),
        proptest::collection::vec(proptest::bool::weighted(0.2), PLAYERS),
        proptest::collection::vec(near_bounds, PLAYERS),
    )
        .prop_map(|(exists, banned, revoked, start)| World {
            exists,
            banned,
            revoked,
            start,
        })
}

fn request() -> impl Strategy<Value = Gen> {
    (
        0..PLAYERS,
        prop_oneof![-1_500i64..1_500, Just(1_000_000), Just(-1_000_000)],
        proptest::option::weighted(0.9, 0usize..12),
    )
}

fn names() -> Vec<String> {
    (0..PLAYERS).map(|i| format!("p{i}")).collect()
}

proptest! {
    /// Across a sequence of batches (the ledger of consumed tokens and totals carried from
    /// one to the next, as the database would), every token is applied at most once, totals
    /// are exactly the start plus the applied points and stay within the bounds, a replay is
    /// only ever a token applied before, and nothing moves for banned players, revoked
    /// sessions or unknown players.
    #[test]
    fn every_token_is_applied_at_most_once_and_totals_are_exact(
        world in world(),
        batches in proptest::collection::vec(proptest::collection::vec(request(), 1..24), 1..6),
    ) {
        let names = names();
        let jtis: Vec<String> = (0..12).map(|j| format!("jti-{j}")).collect();
        // A token belongs to one player, as the edge guarantees (`sub` = session's player).
        let owner = |j: usize| j % PLAYERS;
        let mut consumed: HashSet<usize> = HashSet::new();
        let mut totals = world.start.clone();
        let mut applied_points = [0i64; PLAYERS];
        for batch in &batches {
            let batch: Vec<Gen> = batch
                .iter()
                .map(|&(p, pts, j)| (j.map_or(p, owner), pts, j))
                .collect();
            let asks: Vec<Ask<'_>> = batch
                .iter()
                .map(|&(p, points, j)| Ask { player: &names[p], points, jti: j.map(|j| jtis[j].as_str()) })
                .collect();
            let facts: Vec<Facts> = batch
                .iter()
                .map(|&(p, _, j)| Facts {
                    exists: world.exists[p],
                    banned: world.banned[p],
                    revoked: world.revoked[p] && j.is_some(),
                    consumed: j.is_some_and(|j| consumed.contains(&j)),
                    score: totals[p],
                })
                .collect();
            let out = plan(&asks, &facts);
            let mut seen_in_batch: HashSet<usize> = HashSet::new();
            for (&(p, pts, j), d) in batch.iter().zip(&out.decisions) {
                match *d {
                    Decision::Apply { score_after } => {
                        prop_assert!(world.exists[p]);
                        if let Some(j) = j {
                            prop_assert!(!world.banned[p] && !world.revoked[p]);
                            prop_assert!(consumed.insert(j), "token {j} applied twice");
                            seen_in_batch.insert(j);
                        }
                        totals[p] += pts;
                        applied_points[p] += pts;
                        prop_assert_eq!(score_after, totals[p]);
                        prop_assert!(score_after.abs() <= MAX_TOTAL);
                    }
                    Decision::Replayed => {
                        prop_assert!(j.is_some_and(|j| consumed.contains(&j)));
                    }
                    Decision::OutOfRange => {
                        prop_assert!(totals[p].checked_add(pts).is_none_or(|t| t.abs() > MAX_TOTAL));
                    }
                    Decision::Banned => prop_assert!(world.banned[p]),
                    Decision::Unauthenticated => {
                        prop_assert!(!world.exists[p] || world.revoked[p]);
                    }
                    Decision::UnknownPlayer => prop_assert!(j.is_none() && !world.exists[p]),
                }
            }
            for &(p, _, _) in &batch {
                prop_assert_eq!(out.totals[&names[p]], totals[p]);
            }
        }
        for p in 0..PLAYERS {
            prop_assert_eq!(totals[p], world.start[p] + applied_points[p]);
        }
    }
}
