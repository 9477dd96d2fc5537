//! Bodies shared by the aggregator, the edge and clients: the top-10 snapshot (JSON of
//! `GET /api/leaderboard`, of each SSE `data:` and each WebSocket message), the score-update
//! request and response, and the player view.

use crate::ids::PlayerId;
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

/// `200` answer of a score update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreResponse {
    pub player_id: PlayerId,
    pub score: i64,
    pub rank: u64,
    pub applied: bool,
    pub leaderboard_version: i64,
}

/// `GET /api/players/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerView {
    pub player_id: PlayerId,
    pub name: String,
    pub score: i64,
    /// 1-based; players with no score event yet rank after everyone who has one.
    pub rank: u64,
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
    fn request_bodies_refuse_unknown_fields() {
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"action_token":"a"}"#).is_ok());
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"action_token":"a","pts":5}"#).is_err());
        assert!(serde_json::from_str::<ScoreRequest>(r#"{"action_token":5}"#).is_err());
    }
}
