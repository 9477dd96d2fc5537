//! GCRA (generic cell rate algorithm) as a pure function of (quota, state, now): the per-player
//! limiter inside the `PlayerGate` Durable Object and, where wanted, in the aggregator.
//!
//! A quota of `limit` per `window` admits a burst of up to `burst` requests (by default
//! `limit`, what "10 per minute" means to a player who sends 10 at once) and then one every
//! `window / limit`. Time is unix milliseconds; the state is one number (the theoretical
//! arrival time, in microseconds so that `window / limit` need not divide evenly), small
//! enough to store per player.

use serde::{Deserialize, Serialize};

/// A rate: `limit` requests per `window_ms`, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time each admitted request "costs", in µs: `window / limit`, rounded up so the
    /// long-run rate never exceeds the quota.
    emission_us: u64,
    /// How far ahead of `now` the theoretical arrival time may run: `(burst - 1)` emissions.
    tolerance_us: u64,
    limit: u32,
    burst: u32,
    window_ms: u64,
}

impl Quota {
    /// `limit` per `window_ms`, bursts of `limit`. `None` when either is zero.
    pub fn per_window(limit: u32, window_ms: u64) -> Option<Self> {
        Self::with_burst(limit, window_ms, limit)
    }

    /// `limit` per `window_ms`, bursts of `burst` (`1` spaces requests evenly).
    pub fn with_burst(limit: u32, window_ms: u64, burst: u32) -> Option<Self> {
        if limit == 0 || window_ms == 0 || burst == 0 {
            return None;
        }
        let emission_us = (window_ms.checked_mul(1000)?).div_ceil(u64::from(limit));
        let tolerance_us = emission_us.checked_mul(u64::from(burst - 1))?;
        Some(Self {
            emission_us,
            tolerance_us,
            limit,
            burst,
            window_ms,
        })
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub fn window_ms(&self) -> u64 {
        self.window_ms
    }

    /// The time one admitted request costs, in µs.
    pub fn emission_interval_us(&self) -> u64 {
        self.emission_us
    }
}

/// The limiter's memory for one key. `Default` is a key never seen (a full bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcraState {
    /// Theoretical arrival time, unix µs.
    pub tat_us: u64,
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admit, and store `state`. `remaining` more requests would be admitted right now.
    Allow { state: GcraState, remaining: u32 },
    /// Refuse; the state is unchanged. A request at `now + retry_after_ms` is admitted (if
    /// nothing else was admitted meanwhile), one a millisecond earlier is not.
    Deny { retry_after_ms: u64 },
}

impl GcraState {
    /// Decides on one request at `now_ms` (unix milliseconds).
    pub fn check(self, quota: &Quota, now_ms: u64) -> Decision {
        let now = now_ms.saturating_mul(1000);
        let tat = self.tat_us.max(now);
        let allow_at = tat.saturating_sub(quota.tolerance_us);
        if now < allow_at {
            return Decision::Deny {
                retry_after_ms: (allow_at - now).div_ceil(1000),
            };
        }
        let new_tat = tat + quota.emission_us;
        // The k-th next request at this instant needs `now >= new_tat + (k - 1) * T - tolerance`.
        let remaining = match (now + quota.tolerance_us).checked_sub(new_tat) {
            Some(headroom) => (headroom / quota.emission_us + 1).min(u64::from(quota.burst)) as u32,
            None => 0,
        };
        Decision::Allow {
            state: GcraState { tat_us: new_tat },
            remaining,
        }
    }

    /// When this state is indistinguishable from a fresh one (unix ms), so storage holding it
    /// can be dropped: after that, `check` answers as for `GcraState::default()`.
    pub fn idle_after_ms(self) -> u64 {
        self.tat_us.div_ceil(1000)
    }
}
