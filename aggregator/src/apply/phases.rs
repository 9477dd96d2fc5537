//! Where a batch's time goes: `apply_batch_phase_seconds{phase}`, one observation per phase
//! per batch, so the fixed cost of a batch can be told from its cost per update.
//!
//! | phase | what |
//! | --- | --- |
//! | `queue` | the batch's oldest update waiting in the queue before the batch began |
//! | `fill` | waiting (at most `APPLY_BATCH_WAIT_US`) for the batch to fill |
//! | `connect` | taking a database connection from the pool |
//! | `lock` | `BEGIN` and the writers' lock (waiting for other instances' batches included) |
//! | `read` | the one query that reads the batch's players, tokens, boards and entries |
//! | `plan` | deciding every update (pure) and building the rows to write |
//! | `write` | the statement that writes tokens, events, versions and entries (and the audit) |
//! | `commit` | `COMMIT` |
//! | `previous` | waiting for the previous batch's finish (which overlaps this commit) |
//! | `redis` | the touched boards' rows to Redis, which answers the ranks, and meanwhile the changed boards' top 10s from PostgreSQL |
//! | `announce` | the changed boards' snapshots to this instance's streams and to Redis |
//! | `answers` | each request's outcome sent to its handler |

use std::time::Instant;

/// A stopwatch over one batch's phases.
#[derive(Debug)]
pub(super) struct Phases {
    last: Instant,
}

impl Phases {
    pub(super) fn start() -> Self {
        Self {
            last: Instant::now(),
        }
    }

    /// Records the time since the previous mark (or the start) as `phase`.
    pub(super) fn mark(&mut self, phase: &'static str) {
        let now = Instant::now();
        record(phase, now - self.last);
        self.last = now;
    }
}

/// Records `took` as `phase` (for a phase measured apart, such as `queue`).
pub(super) fn record(phase: &'static str, took: std::time::Duration) {
    metrics::histogram!("apply_batch_phase_seconds", "phase" => phase).record(took.as_secs_f64());
}
