//! Boards: what each one is ([`kind`]), the live top 10 of each (a `watch` channel per board:
//! latest-value fan-out, so a slow subscriber skips versions instead of queueing them), the
//! set of boards this instance knows ([`registry`]), the SQL that orders and ranks entries
//! ([`sql`], [`pages`]), an in-process rank index of each ([`ranks`]), when each resets ([`schedule`]) and the job that turns them to their
//! next period on time ([`boundary`]) and closes the ended ones ([`close`]), and the poller that catches changes no channel
//! delivered.

pub(crate) mod boundary;
pub(crate) mod close;
pub(crate) mod kind;
pub(crate) mod pages;
pub(crate) mod poller;
pub(crate) mod ranks;
pub(crate) mod registry;
pub(crate) mod schedule;
pub(crate) mod sql;

pub(crate) use kind::BoardDef;
pub(crate) use registry::Boards;
pub(crate) use sql::BoardRow;

use axum::body::Bytes;
use scoreboard_protocol::snapshot::BoardSnapshot;
use std::sync::Arc;
use tokio::sync::watch;

/// A snapshot with its JSON, serialized once and shared by every stream and read that sends
/// it: as a board's snapshot, and for `global` also in the alias form of `GET
/// /api/leaderboard` (the plain snapshot, byte for byte what that route always answered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) snapshot: BoardSnapshot,
    /// The board form, for `/api/boards/{id}` and its streams.
    pub(crate) json: Arc<str>,
    pub(crate) body: Bytes,
    /// The alias form (`global` only): `/api/leaderboard`, its stream, and hubs that ask for
    /// no board.
    pub(crate) alias: Option<(Arc<str>, Bytes)>,
}

impl Frame {
    pub(crate) fn new(snapshot: BoardSnapshot) -> Arc<Self> {
        let json = serde_json::to_string(&snapshot).expect("snapshots serialize");
        let alias = snapshot.board.is_global().then(|| {
            let plain = serde_json::to_string(&snapshot.snapshot).expect("snapshots serialize");
            (Arc::from(plain.as_str()), Bytes::from(plain.into_bytes()))
        });
        Arc::new(Self {
            snapshot,
            body: Bytes::from(json.clone().into_bytes()),
            json: json.into(),
            alias,
        })
    }

    pub(crate) fn version(&self) -> i64 {
        self.snapshot.snapshot.version
    }

    /// The JSON a stream sends: the alias form when asked for and there is one.
    pub(crate) fn json_for(&self, alias: bool) -> &str {
        match (&self.alias, alias) {
            (Some((json, _)), true) => json,
            _ => &self.json,
        }
    }

    /// The SSE `id:` of this frame.
    pub(crate) fn event_id(&self) -> String {
        self.snapshot.event_id()
    }
}

/// Holds a board's newest snapshot and wakes subscribers when the board changes.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    tx: Arc<watch::Sender<Arc<Frame>>>,
}

impl Board {
    pub(crate) fn new(initial: BoardSnapshot) -> Self {
        let (tx, _) = watch::channel(Frame::new(initial));
        Self { tx: Arc::new(tx) }
    }

    pub(crate) fn current(&self) -> Arc<Frame> {
        self.tx.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Frame>> {
        self.tx.subscribe()
    }

    /// Offers a snapshot. Older versions of the same period, and earlier periods, are ignored
    /// (local commits, other instances via Redis and the boundary may deliver out of order).
    /// Subscribers are woken only when the rows or the period changed; a newer version with
    /// the same rows replaces the value silently. Returns whether subscribers were woken.
    pub(crate) fn offer(&self, snapshot: BoardSnapshot) -> bool {
        let mut woke = false;
        self.tx.send_if_modified(|cur| {
            let same_period = cur.snapshot.period == snapshot.period;
            let (old, new) = (&cur.snapshot.snapshot, &snapshot.snapshot);
            let newer = snapshot.supersedes(&cur.snapshot.period, old.version);
            let repaired = same_period && new.version == old.version && !old.same_board(new);
            if !newer && !repaired {
                return false;
            }
            let changed = !same_period || !old.same_board(new);
            *cur = Frame::new(snapshot);
            woke = changed;
            changed
        });
        woke
    }

    /// Replaces the snapshot whatever its version (after an admin action such as a ban,
    /// which changes the rows without a new score event).
    pub(crate) fn force(&self, snapshot: BoardSnapshot) {
        self.tx.send_modify(|cur| *cur = Frame::new(snapshot));
    }
}
