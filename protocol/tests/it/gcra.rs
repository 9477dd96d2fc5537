//! Properties of the GCRA limiter: window bounds, bursts, exact `retry_after`, and that a
//! client pacing itself at the quota is never refused.

use proptest::prelude::*;
use scoreboard_protocol::gcra::{Decision, GcraState, Quota};

/// Replays `times` (sorted, ms) through a limiter; returns the admitted times.
fn admitted(quota: &Quota, times: &[u64]) -> Vec<u64> {
    let mut state = GcraState::default();
    let mut out = Vec::new();
    for &t in times {
        if let Decision::Allow { state: s, .. } = state.check(quota, t) {
            state = s;
            out.push(t);
        }
    }
    out
}

/// The largest number of `admitted` times inside any half-open window `[s, s + window)`.
fn max_in_any_window(admitted: &[u64], window: u64) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..admitted.len() {
        while admitted[hi] - admitted[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

fn arrivals() -> impl Strategy<Value = Vec<u64>> {
    // Gaps of 0 (same millisecond) up to a few seconds, so bursts and pauses both happen.
    prop::collection::vec(prop_oneof![Just(0u64), 0u64..50, 0u64..5_000], 1..300).prop_map(|gaps| {
        let mut t = 1_700_000_000_000u64;
        gaps.into_iter()
            .map(|g| {
                t += g;
                t
            })
            .collect()
    })
}

proptest! {
    /// With bursts of 1, no window of length `window` ever holds more than `limit` admissions.
    #[test]
    fn never_admits_more_than_limit_in_any_window(
        limit in 1u32..30, window in 1u64..120_000, times in arrivals(),
    ) {
        let q = Quota::with_burst(limit, window, 1).unwrap();
        let got = admitted(&q, &times);
        prop_assert!(max_in_any_window(&got, window) <= limit as usize);
    }

    /// With a burst allowance, a window holds at most the burst plus what the rate refills in
    /// it: `limit + burst - 1` (for the default burst = limit, never two full quotas).
    #[test]
    fn never_admits_more_than_rate_plus_burst_in_any_window(
        limit in 1u32..30, burst in 1u32..30, window in 1u64..120_000, times in arrivals(),
    ) {
        let q = Quota::with_burst(limit, window, burst).unwrap();
        let got = admitted(&q, &times);
        prop_assert!(max_in_any_window(&got, window) <= (limit + burst - 1) as usize);
    }

    /// `retry_after_ms` is exact: one millisecond earlier is still refused, at it is admitted.
    #[test]
    fn retry_after_is_exact(
        limit in 1u32..30, burst in 1u32..30, window in 1u64..120_000, times in arrivals(),
    ) {
        let q = Quota::with_burst(limit, window, burst).unwrap();
        let mut state = GcraState::default();
        for &t in &times {
            match state.check(&q, t) {
                Decision::Allow { state: s, .. } => state = s,
                Decision::Deny { retry_after_ms } => {
                    prop_assert!(retry_after_ms >= 1);
                    let at = matches!(state.check(&q, t + retry_after_ms), Decision::Allow { .. });
                    prop_assert!(at, "refused at retry_after");
                    let before = matches!(state.check(&q, t + retry_after_ms - 1), Decision::Deny { .. });
                    prop_assert!(before, "admitted before retry_after");
                }
            }
        }
    }

    /// `remaining` says exactly how many more are admitted at the same instant.
    #[test]
    fn remaining_is_exact(limit in 1u32..30, burst in 1u32..30, window in 1u64..120_000, times in arrivals()) {
        let q = Quota::with_burst(limit, window, burst).unwrap();
        let mut state = GcraState::default();
        for &t in &times {
            if let Decision::Allow { state: s, remaining } = state.check(&q, t) {
                state = s;
                let mut probe = state;
                for _ in 0..remaining {
                    match probe.check(&q, t) {
                        Decision::Allow { state: s, .. } => probe = s,
                        Decision::Deny { .. } => prop_assert!(false, "fewer than remaining admitted"),
                    }
                }
                let full = matches!(probe.check(&q, t), Decision::Deny { .. });
                prop_assert!(full, "more than remaining admitted");
            }
        }
    }

    /// A client that waits one emission interval between requests is never refused.
    #[test]
    fn a_client_pacing_itself_at_the_quota_is_always_admitted(limit in 1u32..30, window in 1u64..120_000, n in 1usize..200) {
        let q = Quota::per_window(limit, window).unwrap();
        let step = q.emission_interval_us().div_ceil(1000);
        let times: Vec<u64> = (0..n as u64).map(|i| 1_700_000_000_000 + i * step).collect();
        prop_assert_eq!(admitted(&q, &times).len(), n);
    }
}

#[test]
fn the_default_quota_admits_a_burst_of_limit_then_one_per_interval() {
    let q = Quota::per_window(10, 60_000).unwrap();
    let t0 = 1_700_000_000_000;
    let mut state = GcraState::default();
    for i in 0..10 {
        match state.check(&q, t0) {
            Decision::Allow {
                state: s,
                remaining,
            } => {
                assert_eq!(remaining, 9 - i);
                state = s;
            }
            Decision::Deny { .. } => panic!("request {i} of the burst refused"),
        }
    }
    assert_eq!(
        state.check(&q, t0),
        Decision::Deny {
            retry_after_ms: 6_000
        }
    );
    assert_eq!(
        state.check(&q, t0 + 5_999),
        Decision::Deny { retry_after_ms: 1 }
    );
    assert!(matches!(
        state.check(&q, t0 + 6_000),
        Decision::Allow { remaining: 0, .. }
    ));
    // After a full quiet window the bucket is full again.
    assert!(state.idle_after_ms() <= t0 + 60_000);
    assert!(matches!(
        state.check(&q, t0 + 60_000),
        Decision::Allow { remaining: 9, .. }
    ));
}

#[test]
fn zero_quotas_are_refused() {
    assert!(Quota::per_window(0, 60_000).is_none());
    assert!(Quota::per_window(10, 0).is_none());
    assert!(Quota::with_burst(10, 60_000, 0).is_none());
}
