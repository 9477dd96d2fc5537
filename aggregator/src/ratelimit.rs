//! The per-IP limiter of the sign-in routes: one GCRA bucket per address (the same GCRA the
//! edge uses, from `protocol`), bounded in memory.

use scoreboard_protocol::gcra::{Decision, GcraState, Quota};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Keys kept before idle ones are dropped, so a flood of addresses cannot grow memory.
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub(crate) struct IpLimiter {
    quota: Quota,
    /// A std Mutex: held for a map lookup only, never across an await.
    buckets: Mutex<HashMap<IpAddr, GcraState>>,
}

impl IpLimiter {
    pub(crate) fn new(quota: Quota) -> Self {
        Self {
            quota,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Ok` to admit, `Err(retry_after_ms)` to refuse.
    pub(crate) fn check(&self, ip: IpAddr, now_ms: u64) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().expect("not poisoned");
        if buckets.len() >= MAX_KEYS {
            buckets.retain(|_, s| s.idle_after_ms() > now_ms);
        }
        let state = buckets.get(&ip).copied().unwrap_or_default();
        match state.check(&self.quota, now_ms) {
            Decision::Allow { state, .. } => {
                buckets.insert(ip, state);
                Ok(())
            }
            Decision::Deny { retry_after_ms } => Err(retry_after_ms),
        }
    }
}
