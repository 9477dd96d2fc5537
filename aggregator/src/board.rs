//! The live top 10: the latest snapshot held in a `watch` channel (latest-value fan-out: a
//! slow subscriber skips versions instead of queueing them), and the SQL that computes it
//! from PostgreSQL with the one tie rule used everywhere.

use scoreboard_protocol::snapshot::{rfc3339_millis, LeaderboardEntry, Snapshot, TOP_N};
use scoreboard_protocol::PlayerId;
use sqlx::{PgConnection, PgExecutor};
use std::sync::Arc;
use tokio::sync::watch;

/// A snapshot with its JSON, serialized once and shared by every stream that sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub snapshot: Snapshot,
    pub json: Arc<str>,
    /// The same JSON as a response body: `GET /api/leaderboard` answers with a reference
    /// count instead of a copy (it is the hottest read).
    pub body: axum::body::Bytes,
}

impl Frame {
    pub fn new(snapshot: Snapshot) -> Arc<Self> {
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
pub struct Board {
    tx: Arc<watch::Sender<Arc<Frame>>>,
}

impl Board {
    pub fn new(initial: Snapshot) -> Self {
        let (tx, _) = watch::channel(Frame::new(initial));
        Self { tx: Arc::new(tx) }
    }

    pub fn current(&self) -> Arc<Frame> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Frame>> {
        self.tx.subscribe()
    }

    /// Offers a snapshot. Older versions are ignored (two sources, local commits and other
    /// instances via Redis, may deliver out of order). Subscribers are woken only when the
    /// rows changed; a newer version with the same rows replaces the value silently.
    /// Returns whether subscribers were woken.
    pub fn offer(&self, snapshot: Snapshot) -> bool {
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
    pub fn force(&self, snapshot: Snapshot) {
        self.tx.send_modify(|cur| *cur = Frame::new(snapshot));
    }
}

/// The board order, the same in every query: higher score first, then whoever reached that
/// score first (the smaller event id).
pub const BOARD_ORDER: &str = "s.score DESC, s.reached_version ASC";

/// Computes the current snapshot from PostgreSQL.
pub async fn load_snapshot(db: &mut PgConnection) -> sqlx::Result<Snapshot> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT s.player_id, u.name, s.score FROM scores s JOIN users u USING (player_id)
         WHERE u.banned_at IS NULL ORDER BY {BOARD_ORDER} LIMIT {TOP_N}"
    ))
    .fetch_all(&mut *db)
    .await?;
    let version: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM score_events")
        .fetch_one(db)
        .await?;
    Ok(snapshot_from_rows(version, rows))
}

pub fn snapshot_from_rows(version: i64, rows: Vec<(String, String, i64)>) -> Snapshot {
    let top = rows
        .into_iter()
        .enumerate()
        .filter_map(|(i, (id, name, score))| {
            Some(LeaderboardEntry {
                rank: i as u32 + 1,
                player_id: PlayerId::parse(id).ok()?,
                name,
                score,
            })
        })
        .collect();
    Snapshot {
        version,
        updated_at: rfc3339_millis(chrono::Utc::now().timestamp_millis()),
        top,
    }
}

/// 1-based rank of a player with `score` reached at `reached_version`, among players who
/// are not banned.
pub async fn rank_of<'e>(
    db: impl PgExecutor<'e>,
    score: i64,
    reached_version: i64,
) -> sqlx::Result<u64> {
    let ahead: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM scores s JOIN users u USING (player_id)
         WHERE u.banned_at IS NULL
           AND (s.score > $1 OR (s.score = $1 AND s.reached_version < $2))",
    )
    .bind(score)
    .bind(reached_version)
    .fetch_one(db)
    .await?;
    Ok(ahead as u64 + 1)
}

/// 1-based ranks of several (player, score, reached_version) at once, in one round trip.
pub async fn ranks_of<'e>(
    db: impl PgExecutor<'e>,
    rows: &[(String, i64, i64)],
) -> sqlx::Result<Vec<(String, u64)>> {
    let players: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let scores: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let out: Vec<(String, i64)> = sqlx::query_as(
        "SELECT p.player_id,
                (SELECT count(*) FROM scores s JOIN users u USING (player_id)
                 WHERE u.banned_at IS NULL
                   AND (s.score > p.score OR (s.score = p.score AND s.reached_version < p.version))) + 1
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS p(player_id, score, version)",
    )
    .bind(&players)
    .bind(&scores)
    .bind(&versions)
    .fetch_all(db)
    .await?;
    Ok(out.into_iter().map(|(p, r)| (p, r as u64)).collect())
}
