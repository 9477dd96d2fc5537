//! Bodies shared by the aggregator, the edge and clients: the top-10 snapshot (JSON of
//! `GET /api/leaderboard`, of each SSE `data:` and each WebSocket message), the score-update
//! request and response, and the player view.

use crate::ids::{BoardId, PlayerId};
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// At most this many rows in a snapshot.
pub const TOP_N: usize = 10;

/// One row of the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderboardEntry {
    pub rank: u32,
    pub player_id: PlayerId,
    pub name: String,
    pub score: i64,
}

/// The top 10 as of score event `version` (the id of the last event included: monotonic and
/// global, so "newer" is a plain comparison everywhere).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: i64,
    /// RFC 3339 with milliseconds, UTC.
    pub updated_at: String,
    pub top: Vec<LeaderboardEntry>,
}

impl Snapshot {
    /// Whether two snapshots show the same board (ignoring when they were taken).
    pub fn same_board(&self, other: &Snapshot) -> bool {
        self.top == other.top
    }
}

/// The period a read or snapshot belongs to: `[starts_at, ends_at)`, its id the start instant
/// in RFC 3339 UTC, or `all` (no bounds) for a board that never resets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeriodRef {
    pub id: String,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
}

impl PeriodRef {
    /// The id of the one period of a board that never resets.
    pub const ALL: &'static str = "all";

    /// The SSE `id:` of `version` in this period (see [`BoardSnapshot::event_id`]).
    pub fn event_id(&self, version: i64) -> String {
        if self.starts_at.is_none() {
            version.to_string()
        } else {
            format!("{}/{version}", self.id)
        }
    }

    pub fn all() -> Self {
        Self {
            id: Self::ALL.to_owned(),
            starts_at: None,
            ends_at: None,
        }
    }

    /// Whether this period starts after `other` (`all` before any dated one: a board that
    /// never reset can be given a schedule before it has a score). Starts are RFC 3339 UTC in
    /// one format, so their text orders as their instants do.
    pub fn is_after(&self, other: &PeriodRef) -> bool {
        self.starts_at > other.starts_at
    }
}

/// A board's snapshot (`GET /api/boards/{id}`, its SSE `data:`, the hubs' WebSocket messages):
/// the top 10 of [`Snapshot`] plus which board and period it shows, and when the board resets
/// next (`null` for one that never does). `version` is the id of the board's newest event in
/// the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardSnapshot {
    pub board: BoardId,
    pub period: PeriodRef,
    /// Absent from what instances before periods published: read as `null`.
    #[serde(default)]
    pub next_reset_at: Option<String>,
    #[serde(flatten)]
    pub snapshot: Snapshot,
}

impl BoardSnapshot {
    /// The snapshot of `board` in its current `period`, which ends at its next reset.
    pub fn new(board: BoardId, period: PeriodRef, snapshot: Snapshot) -> Self {
        Self {
            board,
            next_reset_at: period.ends_at.clone(),
            period,
            snapshot,
        }
    }

    /// Whether this snapshot replaces `period`'s at `version`: a later period, or the same
    /// period at a newer version. (A new period starts from no events, so its version may be
    /// below the last one of the period before.)
    pub fn supersedes(&self, period: &PeriodRef, version: i64) -> bool {
        self.period.is_after(period) || (self.period == *period && self.snapshot.version > version)
    }

    /// The SSE `id:`: the version for a board that never resets, `<period>/<version>`
    /// otherwise.
    pub fn event_id(&self) -> String {
        self.period.event_id(self.snapshot.version)
    }
}

/// The period id and version an [`BoardSnapshot::event_id`] names (`all` for a bare version),
/// e.g. from a client's `Last-Event-ID`; `None` for anything else.
pub fn parse_event_id(id: &str) -> Option<(&str, i64)> {
    let (period, version) = id
        .trim()
        .rsplit_once('/')
        .unwrap_or((PeriodRef::ALL, id.trim()));
    Some((period, version.parse().ok()?))
}

/// A player's standing on one board (score answers, `GET /api/players/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub board: BoardId,
    pub period: String,
    pub score: i64,
    pub rank: u64,
}

/// Unix milliseconds as `2026-11-22T10:00:00.123Z`.
pub fn rfc3339_millis(unix_ms: i64) -> String {
    Utc.timestamp_millis_opt(unix_ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `POST /api/scores` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    pub action_token: String,
}

/// `POST /internal/scores` body (edge → aggregator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedScore {
    pub action_token: String,
    pub edge_region: String,
}

/// `200` answer of a score update. `score`, `rank` and `leaderboard_version` are those of the
/// token's first board (`global` for a token that names none); `boards` has every board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreResponse {
    pub player_id: PlayerId,
    pub score: i64,
    pub rank: u64,
    pub applied: bool,
    pub leaderboard_version: i64,
    #[serde(default)]
    pub boards: Vec<Standing>,
}

/// `GET /api/players/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerView {
    pub player_id: PlayerId,
    pub name: String,
    pub score: i64,
    /// 1-based; players with no score event yet rank after everyone who has one.
    pub rank: u64,
    /// The player's standing on every public board where they have an entry in the current
    /// period.
    #[serde(default)]
    pub boards: Vec<Standing>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_serialize_to_the_documented_shape() {
        let snap = Snapshot {
            version: 1234,
            updated_at: rfc3339_millis(1_763_805_600_123),
            top: vec![LeaderboardEntry {
                rank: 1,
                player_id: PlayerId::parse("p1").unwrap(),
                name: "Ana".into(),
                score: 1500,
            }],
        };
        assert_eq!(
            serde_json::to_string(&snap).unwrap(),
            r#"{"version":1234,"updated_at":"2025-11-22T10:00:00.123Z","top":[{"rank":1,"player_id":"p1","name":"Ana","score":1500}]}"#
        );
    }

    #[test]
    fn board_snapshots_are_the_snapshot_plus_board_and_period() {
        let snap = BoardSnapshot::new(
            BoardId::parse("level-1").unwrap(),
            PeriodRef::all(),
            Snapshot {
                version: 7,
                updated_at: rfc3339_millis(0),
                top: vec![],
            },
        );
        let json = serde_json::to_string(&snap).unwrap();
        assert_eq!(
            json,
            r#"{"board":"level-1","period":{"id":"all","starts_at":null,"ends_at":null},"next_reset_at":null,"version":7,"updated_at":"1970-01-01T00:00:00.000Z","top":[]}"#
        );
        assert_eq!(serde_json::from_str::<BoardSnapshot>(&json).unwrap(), snap);
    }

    fn dated(start: &str, end: &str) -> PeriodRef {
        PeriodRef {
            id: start.to_owned(),
            starts_at: Some(start.to_owned()),
            ends_at: Some(end.to_owned()),
        }
    }

    fn on(period: PeriodRef, version: i64) -> BoardSnapshot {
        BoardSnapshot::new(
            BoardId::parse("daily").unwrap(),
            period,
            Snapshot {
                version,
                updated_at: rfc3339_millis(0),
                top: vec![],
            },
        )
    }

    #[test]
    fn a_later_period_supersedes_whatever_its_version_and_an_earlier_one_never_does() {
        let monday = dated("2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z");
        let tuesday = dated("2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z");
        assert!(on(tuesday.clone(), 0).supersedes(&monday, 900));
        assert!(!on(monday.clone(), 901).supersedes(&tuesday, 0));
        assert!(on(monday.clone(), 901).supersedes(&monday, 900));
        assert!(!on(monday.clone(), 900).supersedes(&monday, 900));
        assert!(on(monday.clone(), 1).supersedes(&PeriodRef::all(), 5));
        assert_eq!(on(tuesday, 0).event_id(), "2026-12-01T00:00:00Z/0");
        assert_eq!(on(PeriodRef::all(), 42).event_id(), "42");
        assert_eq!(parse_event_id("42"), Some(("all", 42)));
        assert_eq!(
            parse_event_id("2026-12-01T00:00:00Z/7"),
            Some(("2026-12-01T00:00:00Z", 7))
        );
        assert_eq!(parse_event_id("2026-12-01T00:00:00Z"), None);
        assert_eq!(parse_event_id("x/y"), None);
    }

    #[test]
    fn request_bodies_refuse_unknown_fields() {
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"action_token":"a"}"#).is_ok());
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"action_token":"a","pts":5}"#).is_err());
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"action_token":5}"#).is_err());
    }
}
