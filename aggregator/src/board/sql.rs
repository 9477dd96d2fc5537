//! The board as PostgreSQL computes it: the one tie rule, the current version, the top 10,
//! ranks, and the rows the Redis copy is built from. Every query that orders or ranks players
//! is written here, so the rule cannot differ between two of them.

use scoreboard_protocol::snapshot::{rfc3339_millis, LeaderboardEntry, Snapshot, TOP_N};
use scoreboard_protocol::PlayerId;
use sqlx::{PgConnection, PgExecutor, PgPool};

/// The board order: higher score first, then whoever reached that score first (the smaller
/// event id). Redis encodes the same rule in its members (`cache::scripts::member`).
const BOARD_ORDER: &str = "s.score DESC, s.reached_version ASC";

/// "Ranks ahead of `($1, $2)`" under [`BOARD_ORDER`], for a row aliased `s`.
const AHEAD_OF: &str = "(s.score > $1 OR (s.score = $1 AND s.reached_version < $2))";

/// The current version: the id of the newest score event (0 on an empty board).
const CURRENT_VERSION: &str = "SELECT coalesce(max(id), 0) FROM score_events";

/// One player's entry as the board needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoardRow {
    pub(crate) player_id: String,
    pub(crate) name: String,
    pub(crate) score: i64,
    /// Id of the event that set `score` (the tie-break: smaller ranks higher).
    pub(crate) version: i64,
}

/// The id of the newest score event.
pub(crate) async fn current_version<'e>(db: impl PgExecutor<'e>) -> sqlx::Result<i64> {
    sqlx::query_scalar(CURRENT_VERSION).fetch_one(db).await
}

/// Computes the current snapshot from PostgreSQL.
pub(crate) async fn load_snapshot(db: &mut PgConnection) -> sqlx::Result<Snapshot> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT s.player_id, u.name, s.score FROM scores s JOIN users u USING (player_id)
         WHERE u.banned_at IS NULL ORDER BY {BOARD_ORDER} LIMIT {TOP_N}"
    ))
    .fetch_all(&mut *db)
    .await?;
    let version = current_version(db).await?;
    Ok(snapshot_from_rows(version, rows))
}

fn snapshot_from_rows(version: i64, rows: Vec<(String, String, i64)>) -> Snapshot {
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
pub(crate) async fn rank_of<'e>(
    db: impl PgExecutor<'e>,
    score: i64,
    reached_version: i64,
) -> sqlx::Result<u64> {
    let ahead: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM scores s JOIN users u USING (player_id)
         WHERE u.banned_at IS NULL AND {AHEAD_OF}"
    ))
    .bind(score)
    .bind(reached_version)
    .fetch_one(db)
    .await?;
    Ok(ahead as u64 + 1)
}

/// The rank of a player who has no score yet: after everyone who has one.
pub(crate) async fn rank_of_unscored<'e>(db: impl PgExecutor<'e>) -> sqlx::Result<u64> {
    let n: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM scores s JOIN users u USING (player_id) WHERE u.banned_at IS NULL",
    )
    .fetch_one(db)
    .await?;
    Ok(n as u64 + 1)
}

/// 1-based ranks of several rows at once, in one round trip, in the rows' order.
pub(crate) async fn ranks_of<'e>(
    db: impl PgExecutor<'e>,
    rows: &[BoardRow],
) -> sqlx::Result<Vec<u64>> {
    let scores: Vec<i64> = rows.iter().map(|r| r.score).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.version).collect();
    let ahead = AHEAD_OF.replace("$1", "p.score").replace("$2", "p.version");
    let out: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM scores s JOIN users u USING (player_id)
                 WHERE u.banned_at IS NULL AND {ahead}) + 1
         FROM UNNEST($1::bigint[], $2::bigint[]) WITH ORDINALITY AS p(score, version, ord)
         ORDER BY p.ord"
    ))
    .bind(&scores)
    .bind(&versions)
    .fetch_all(db)
    .await?;
    Ok(out.into_iter().map(|r| r as u64).collect())
}

/// Every non-banned scored player with `reached_version > after`, and the version at the
/// time of reading (one consistent snapshot of both).
pub(crate) async fn load_rows(db: &PgPool, after: i64) -> sqlx::Result<(Vec<BoardRow>, i64)> {
    let mut tx = db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT s.player_id, u.name, s.score, s.reached_version FROM scores s JOIN users u USING (player_id)
         WHERE u.banned_at IS NULL AND s.reached_version > $1",
    )
    .bind(after)
    .fetch_all(&mut *tx)
    .await?;
    let as_of = current_version(&mut *tx).await?;
    tx.commit().await?;
    let rows = rows
        .into_iter()
        .map(|(player_id, name, score, version)| BoardRow {
            player_id,
            name,
            score,
            version,
        })
        .collect();
    Ok((rows, as_of))
}

/// One player's row, whether or not they are banned (an unban puts it back in Redis).
pub(crate) async fn load_row<'e>(
    db: impl PgExecutor<'e>,
    player: &str,
) -> sqlx::Result<Option<BoardRow>> {
    let row: Option<(String, i64, i64)> = sqlx::query_as(
        "SELECT u.name, s.score, s.reached_version FROM users u JOIN scores s USING (player_id)
         WHERE u.player_id = $1",
    )
    .bind(player)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(name, score, version)| BoardRow {
        player_id: player.to_owned(),
        name,
        score,
        version,
    }))
}
