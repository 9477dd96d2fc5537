//! Exactly-once score application through a group-commit batcher.
//!
//! Requests wait in a bounded queue; one task takes up to `APPLY_BATCH_MAX` of them (waiting
//! at most `APPLY_BATCH_WAIT_US` for the batch to fill) and applies them in one transaction.
//! Redeemed action tokens from the edge and operators' adjustments take the same path, so
//! there is one writer of `score_events` and `scores`.
//!
//! | module | what |
//! | --- | --- |
//! | [`plan`] | pure: the batch and the rows read → each request's outcome |
//! | [`write`] | the SQL of one batch, in one transaction under the writers' lock |
//! | [`batcher`] | the queue, the batch cycle, the answers, and what follows a commit |
//! | [`phases`] | where a batch's time goes (`apply_batch_phase_seconds`) |

mod batcher;
mod phases;
pub(crate) mod plan;
mod write;

pub(crate) use batcher::spawn;
pub(crate) use write::lock_writers;

use scoreboard_protocol::snapshot::Standing;
use scoreboard_protocol::{BoardId, PlayerId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Where an update comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// A verified action token, forwarded by the edge with the player's session.
    Token {
        jti: String,
        action: String,
        /// The token's `exp` (unix seconds): until then its redemption is remembered.
        expires_at: i64,
        /// The session's `jti`, to refuse revoked sessions in the same transaction.
        session_jti: String,
        edge_region: String,
    },
    /// An operator's audited adjustment (`POST /admin/players/{id}/adjust`).
    Adjustment { reason: String },
}

impl Source {
    fn jti(&self) -> Option<&str> {
        match self {
            Self::Token { jti, .. } => Some(jti),
            Self::Adjustment { .. } => None,
        }
    }

    fn session_jti(&self) -> Option<&str> {
        match self {
            Self::Token { session_jti, .. } => Some(session_jti),
            Self::Adjustment { .. } => None,
        }
    }

    fn action(&self) -> &str {
        match self {
            Self::Token { action, .. } => action,
            Self::Adjustment { .. } => "admin:adjust",
        }
    }

    fn edge_region(&self) -> Option<&str> {
        match self {
            Self::Token { edge_region, .. } => Some(edge_region),
            Self::Adjustment { .. } => None,
        }
    }
}

/// One validated update waiting to be applied.
#[derive(Debug)]
pub(crate) struct Update {
    pub(crate) player: PlayerId,
    /// The token's value, or an adjustment's delta.
    pub(crate) points: i64,
    /// The boards it applies to (1–8, distinct), all in one transaction or none.
    pub(crate) boards: Vec<BoardId>,
    pub(crate) source: Source,
    pub(crate) request_id: String,
    /// When it was made, just before it is queued: for the `queue` phase.
    pub(crate) queued_at: std::time::Instant,
}

impl Update {
    fn ask(&self) -> plan::Ask<'_> {
        plan::Ask {
            player: self.player.as_str(),
            points: self.points,
            jti: self.source.jti(),
            boards: &self.boards,
        }
    }
}

/// What happened to one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Applied; the player's standing on each board of the update after the batch, and the
    /// version of the first board (its newest event id in the batch).
    Applied {
        standings: Vec<Standing>,
        version: i64,
    },
    /// The token was redeemed before: the player's standing on each of its boards now (ranks
    /// where the rank index knows them, else 0).
    Replayed {
        standings: Vec<Standing>,
    },
    Banned,
    /// The session was revoked (logout), or its player no longer exists.
    Unauthenticated,
    /// An adjustment for a player who does not exist.
    UnknownPlayer,
    /// A board that does not exist, or a hidden one named by a token.
    UnknownBoard,
    /// The token's value is outside a board's bounds.
    ValueOutOfRange,
    /// Applying would take an entry beyond ±2^53.
    OutOfRange,
    /// The database failed; nothing of this update was applied.
    Unavailable,
}

/// Why an update could not even be queued (nothing of it was applied).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubmitError {
    QueueFull,
    /// Updates are waiting and the batcher has been busy with one batch for longer than
    /// [`BatchSettings::admit_wait`]: an update queued now would likely outlive its request.
    Stalled,
    ShuttingDown,
}

/// Since when the batcher has been busy with a batch (taken from the queue, not yet done),
/// for admission control. Idle, waiting for the queue, it is not busy at all.
#[derive(Debug)]
pub(crate) struct Pulse {
    origin: std::time::Instant,
    /// Milliseconds since `origin` when the current batch was taken; 0 while idle.
    busy_since_ms: AtomicU64,
}

impl Pulse {
    fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
            busy_since_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means idle.
        self.origin.elapsed().as_millis() as u64 + 1
    }

    /// The batcher took a batch.
    pub(crate) fn busy(&self) {
        self.busy_since_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The batcher is done with its batch and waits for the queue.
    pub(crate) fn idle(&self) {
        self.busy_since_ms.store(0, Ordering::Relaxed);
    }

    /// How long the current batch has kept the batcher busy.
    fn busy_for(&self) -> Duration {
        match self.busy_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since)),
        }
    }
}

/// The sending side, held by the HTTP handlers.
#[derive(Debug, Clone)]
pub(crate) struct Applier {
    tx: mpsc::Sender<(Update, oneshot::Sender<Outcome>)>,
    pulse: Arc<Pulse>,
    admit_wait: Duration,
}

impl Applier {
    /// Queues `update` and waits for its outcome (after the commit). Admission is decided
    /// here, before anything is queued: once queued, an update commits whether or not its
    /// request is still there to hear the outcome, so a refusal must come first.
    pub(crate) async fn apply(&self, update: Update) -> Result<Outcome, SubmitError> {
        let waiting = self.tx.capacity() < self.tx.max_capacity();
        if waiting && self.pulse.busy_for() > self.admit_wait {
            return Err(SubmitError::Stalled);
        }
        let (reply, answer) = oneshot::channel();
        self.tx.try_send((update, reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
        })?;
        Ok(answer.await.unwrap_or(Outcome::Unavailable))
    }
}

/// Updates that may wait for the batcher; beyond this a request gets `503` at once, which
/// bounds memory and tells the edge to retry elsewhere or later.
pub(crate) const QUEUE_CAPACITY: usize = 8192;

/// Settings of the batcher.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSettings {
    pub(crate) max: usize,
    pub(crate) wait: Duration,
    /// Queue length; beyond it requests get `503` at once rather than waiting unboundedly.
    pub(crate) queue: usize,
    /// How long the batcher may take nothing from a queue that holds updates before new
    /// ones are refused with `503` (a batch stuck on a lock or a slow database).
    pub(crate) admit_wait: Duration,
}
