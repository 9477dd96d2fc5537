//! The live top 10: the latest snapshot held in a `watch` channel (latest-value fan-out: a
//! slow subscriber skips versions instead of queueing them). [`sql`] computes it from
//! PostgreSQL with the one tie rule; [`poller`] catches changes no channel delivered.

pub(crate) mod poller;
pub(crate) mod sql;

pub(crate) use sql::BoardRow;

use scoreboard_protocol::snapshot::Snapshot;
use std::sync::Arc;
use tokio::sync::watch;

/// A snapshot with its JSON, serialized once and shared by every stream that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) snapshot: Snapshot,
    pub(crate) json: Arc<str>,
    /// The same JSON as a response body: `GET /api/leaderboard` answers with a reference
    /// count instead of a copy (it is the hottest read).
    pub(crate) body: axum::body::Bytes,
}

impl Frame {
    pub(crate) fn new(snapshot: Snapshot) -> Arc<Self> {
        let json = serde_json::to_string(&snapshot).expect("snapshots serialize");
        let body = axum::body::Bytes::from(json.clone().into_bytes());
        Arc::new(Self {
            snapshot,
            json: json.into(),
            body,
        })
    }
}

/// Holds the newest snapshot and wakes subscribers when the board changes.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    tx: Arc<watch::Sender<Arc<Frame>>>,
}

impl Board {
    pub(crate) fn new(initial: Snapshot) -> Self {
        let (tx, _) = watch::channel(Frame::new(initial));
        Self { tx: Arc::new(tx) }
    }

    pub(crate) fn current(&self) -> Arc<Frame> {
        self.tx.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Frame>> {
        self.tx.subscribe()
    }

    /// Offers a snapshot. Older versions are ignored (two sources, local commits and other
    /// instances via Redis, may deliver out of order). Subscribers are woken only when the
    /// rows changed; a newer version with the same rows replaces the value silently.
    /// Returns whether subscribers were woken.
    pub(crate) fn offer(&self, snapshot: Snapshot) -> bool {
        let mut woke = false;
        self.tx.send_if_modified(|cur| {
            if snapshot.version < cur.snapshot.version
                || (snapshot.version == cur.snapshot.version && cur.snapshot.same_board(&snapshot))
            {
                return false;
            }
            let changed = !cur.snapshot.same_board(&snapshot);
            *cur = Frame::new(snapshot);
            woke = changed;
            changed
        });
        woke
    }

    /// Replaces the snapshot whatever its version (after an admin action such as a ban,
    /// which changes the rows without a new score event).
    pub(crate) fn force(&self, snapshot: Snapshot) {
        self.tx.send_modify(|cur| *cur = Frame::new(snapshot));
    }
}
