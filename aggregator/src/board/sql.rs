//! Boards as PostgreSQL computes them: the one tie rule, versions, the top 10, ranks, and the
//! rows the Redis copy is built from. Every query that orders or ranks entries is written here
//! or in [`pages`](super::pages) from the constants below, so the rule cannot differ between
//! two of them.

use super::kind::{BoardDef, Order};
use super::schedule::Schedule;
use crate::db::Db;
use scoreboard_protocol::snapshot::{
    rfc3339_millis, BoardSnapshot, LeaderboardEntry, PeriodRef, Snapshot, TOP_N,
};
use scoreboard_protocol::{BoardId, PlayerId};
use sqlx::{PgConnection, PgExecutor};

/// The board order, for entries aliased `e`: the rank key ascending (see `kind::Order`), then
/// whoever reached the value first (the smaller event id). Redis encodes the same rule in its
/// members (`cache::scripts::member`).
pub(super) const BOARD_ORDER: &str = "e.rank_key ASC, e.reached_version ASC";

/// Entries (aliased `e`) of board `board`, period `period` (SQL expressions), of players who
/// are not banned.
pub(super) fn on_board(board: &str, period: &str) -> String {
    format!(
        "entries e JOIN users u USING (player_id)
         WHERE e.board_id = {board} AND e.period = {period} AND u.banned_at IS NULL"
    )
}

/// [`on_board`] with the board in `$1` and the period in `$2`.
static ON_BOARD: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| on_board("$1", "$2"));

/// "Ranks ahead of `(key, version)`" under [`BOARD_ORDER`].
pub(super) fn ahead_of(key: &str, version: &str) -> String {
    format!("(e.rank_key < {key} OR (e.rank_key = {key} AND e.reached_version < {version}))")
}

/// One player's entry as the board needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BoardRow {
    pub(crate) player_id: String,
    pub(crate) name: String,
    pub(crate) value: i64,
    /// Id of the event that set `value` (the tie-break: smaller ranks higher).
    pub(crate) version: i64,
}

const DEF_COLUMNS: &str =
    "id, title, sort_order, operator, reset, timezone, value_min, value_max, public, results_size,
     (extract(epoch FROM period_started_at) * 1000)::bigint";

type DefRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    bool,
    i32,
    Option<i64>,
);

/// `desc`/`asc`, `sum`/`best`/`latest` as stored, by the same names the API uses.
fn enum_of<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

fn def_from_row(r: DefRow) -> Option<BoardDef> {
    // Stored schedules were checked when they were set; one that no longer reads (a time zone
    // a newer database dropped) leaves its board out rather than count it in the wrong period.
    let resumed =
        r.10.and_then(|ms| chrono::TimeZone::timestamp_millis_opt(&chrono::Utc, ms).single());
    let schedule = Schedule::parse(&r.4, &r.5)
        .inspect_err(
            |e| tracing::error!(board = r.0, error = %e, "a stored board schedule does not read"),
        )
        .ok()?
        .resumed_at(resumed);
    Some(BoardDef {
        id: BoardId::parse(r.0).ok()?,
        title: r.1,
        order: enum_of(&r.2)?,
        operator: enum_of(&r.3)?,
        schedule,
        value_min: r.6,
        value_max: r.7,
        public: r.8,
        results_size: r.9,
    })
}

/// A scalar subquery: the boards named by the `text[]` expression `ids`, as JSON text, for
/// a query that reads them along with other rows (one round trip fewer).
pub(crate) fn defs_json_of(ids: &str) -> String {
    format!(
        "(SELECT coalesce(json_agg(json_build_array({DEF_COLUMNS})), '[]')::text FROM boards WHERE id = ANY({ids}))"
    )
}

/// The boards of a [`defs_json_of`] answer.
pub(crate) fn parse_defs_json(json: &str) -> serde_json::Result<Vec<BoardDef>> {
    let rows: Vec<DefRow> = serde_json::from_str(json)?;
    Ok(rows.into_iter().filter_map(def_from_row).collect())
}

/// Every board, public or not.
pub(crate) async fn load_defs<'e>(db: impl PgExecutor<'e>) -> sqlx::Result<Vec<BoardDef>> {
    let rows: Vec<DefRow> =
        crate::db::query_as(&format!("SELECT {DEF_COLUMNS} FROM boards ORDER BY id"))
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().filter_map(def_from_row).collect())
}

/// The boards named in `ids` that exist, public or not.
pub(crate) async fn load_defs_of<'e>(
    db: impl PgExecutor<'e>,
    ids: &[&str],
) -> sqlx::Result<Vec<BoardDef>> {
    let rows: Vec<DefRow> = crate::db::query_as(&format!(
        "SELECT {DEF_COLUMNS} FROM boards WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().filter_map(def_from_row).collect())
}

/// A board's periods before `before` that have events, newest first.
pub(crate) async fn closed_periods<'e>(
    db: impl PgExecutor<'e>,
    board: &str,
    before: &str,
    limit: i64,
) -> sqlx::Result<Vec<String>> {
    crate::db::query_scalar(
        "SELECT period FROM board_periods
         WHERE board_id = $1 AND period <> 'all' AND period < $2
         ORDER BY period DESC LIMIT $3",
    )
    .bind(board)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The id of the board's newest event in the period (0 when it has none).
pub(crate) async fn current_version<'e>(
    db: impl PgExecutor<'e>,
    board: &str,
    period: &str,
) -> sqlx::Result<i64> {
    crate::db::query_scalar(
        "SELECT coalesce((SELECT version FROM board_periods WHERE board_id = $1 AND period = $2), 0)",
    )
    .bind(board)
    .bind(period)
    .fetch_one(db)
    .await
}

/// The versions of several (board, period) pairs in one round trip, in their order.
pub(crate) async fn versions<'e>(
    db: impl PgExecutor<'e>,
    pairs: &[(&str, &str)],
) -> sqlx::Result<Vec<i64>> {
    let boards: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let periods: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    crate::db::query_scalar(
        "SELECT coalesce(v.version, 0)
         FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS p(b, p, ord)
         LEFT JOIN board_periods v ON v.board_id = p.b AND v.period = p.p ORDER BY p.ord",
    )
    .bind(&boards)
    .bind(&periods)
    .fetch_all(db)
    .await
}

/// Computes a board's current snapshot from PostgreSQL.
pub(crate) async fn load_snapshot(
    db: &mut PgConnection,
    def: &BoardDef,
    period: &PeriodRef,
) -> sqlx::Result<BoardSnapshot> {
    let mut one = load_snapshots(db, &[(def, period)]).await?;
    Ok(one.pop().expect("one board, one snapshot"))
}

/// The top 10 of several boards at once (one round trip), each with the board's version read
/// in the same statement: one snapshot of the database, so the rows are exactly those of
/// every event up to that version (writers commit in version order).
pub(crate) async fn load_snapshots(
    db: &mut PgConnection,
    boards: &[(&BoardDef, &PeriodRef)],
) -> sqlx::Result<Vec<BoardSnapshot>> {
    type Row = (i64, i64, Option<String>, Option<String>, Option<i64>);
    // One board (what most batches change) is named by two scalars, not arrays: PostgreSQL
    // then settles on one plan for the statement, where arrays of unknown length make it plan
    // every call afresh (0.35 ms, more than the statement takes).
    let rows: Vec<Row> = if let [(def, period)] = boards {
        crate::db::query_as(&snapshots_sql("(SELECT $1::text, $2::text, 1::bigint)"))
            .bind(def.id.as_str())
            .bind(period.id.as_str())
            .fetch_all(db)
            .await?
    } else {
        let ids: Vec<&str> = boards.iter().map(|b| b.0.id.as_str()).collect();
        let periods: Vec<&str> = boards.iter().map(|b| b.1.id.as_str()).collect();
        crate::db::query_as(&snapshots_sql(
            "UNNEST($1::text[], $2::text[]) WITH ORDINALITY",
        ))
        .bind(&ids)
        .bind(&periods)
        .fetch_all(db)
        .await?
    };
    // Per board: its version and its (player, name, value) rows.
    type Top = (i64, Vec<(String, String, i64)>);
    let mut tops: Vec<Top> = vec![(0, Vec::new()); boards.len()];
    for (ord, version, player, name, value) in rows {
        let top = &mut tops[ord as usize - 1];
        top.0 = version;
        if let (Some(player), Some(name), Some(value)) = (player, name, value) {
            top.1.push((player, name, value));
        }
    }
    Ok(boards
        .iter()
        .zip(tops)
        .map(|((def, period), (version, top))| {
            BoardSnapshot::new(
                def.id.clone(),
                (*period).clone(),
                snapshot_from_rows(version, top),
            )
        })
        .collect())
}

/// The top 10 and version of each (board, period) row of `boards` (a FROM item of columns
/// board, period, order), ordered by board then rank.
fn snapshots_sql(boards: &str) -> String {
    let on = on_board("p.b", "p.per");
    format!(
        "SELECT p.ord, coalesce(v.version, 0), t.player_id, t.name, t.value
         FROM {boards} AS p(b, per, ord)
         LEFT JOIN board_periods v ON v.board_id = p.b AND v.period = p.per
         LEFT JOIN LATERAL (SELECT x.*, row_number() OVER () AS n
                            FROM (SELECT e.player_id, u.name, e.value FROM {on}
                                  ORDER BY {BOARD_ORDER} LIMIT {TOP_N}) x) t ON true
         ORDER BY p.ord, t.n"
    )
}

/// The first `n` entries of a board's period, ranked (a closed period's results).
pub(crate) async fn standings(
    db: &mut PgConnection,
    board: &str,
    period: &str,
    n: i64,
) -> sqlx::Result<Vec<LeaderboardEntry>> {
    let rows: Vec<(String, String, i64)> = crate::db::query_as(&format!(
        "SELECT e.player_id, u.name, e.value FROM {} ORDER BY {BOARD_ORDER} LIMIT $3",
        *ON_BOARD
    ))
    .bind(board)
    .bind(period)
    .bind(n)
    .fetch_all(db)
    .await?;
    Ok(snapshot_from_rows(0, rows).top)
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

/// How many players have an entry (the rank of a player without one is this + 1).
pub(crate) async fn count<'e>(
    db: impl PgExecutor<'e>,
    board: &str,
    period: &str,
) -> sqlx::Result<u64> {
    let on = ON_BOARD.as_str();
    let n: i64 = crate::db::query_scalar(&format!("SELECT count(*) FROM {on}"))
        .bind(board)
        .bind(period)
        .fetch_one(db)
        .await?;
    Ok(n as u64)
}

/// 1-based ranks of several rows of one board at once, in one round trip, in the rows' order.
pub(crate) async fn ranks_of<'e>(
    db: impl PgExecutor<'e>,
    board: &str,
    period: &str,
    order: Order,
    rows: &[BoardRow],
) -> sqlx::Result<Vec<u64>> {
    let on = ON_BOARD.as_str();
    let keys: Vec<i64> = rows.iter().map(|r| order.rank_key(r.value)).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.version).collect();
    let out: Vec<i64> = crate::db::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM {on} AND {}) + 1
         FROM UNNEST($3::bigint[], $4::bigint[]) WITH ORDINALITY AS p(k, v, ord)
         ORDER BY p.ord",
        ahead_of("p.k", "p.v")
    ))
    .bind(board)
    .bind(period)
    .bind(&keys)
    .bind(&versions)
    .fetch_all(db)
    .await?;
    Ok(out.into_iter().map(|r| r as u64).collect())
}

/// A walk over every non-banned entry of a board's period in board order, a page at a time:
/// how the Redis rebuild, the drift check and the rank index's load read a whole board in
/// bounded reads. Each page is its own snapshot, with the board's version in it; the walk as a
/// whole is fenced by the first page's version and the event log (see [`changed_since`]).
#[derive(Debug)]
pub(crate) struct Walk<'a> {
    board: &'a str,
    period: &'a str,
    order: Order,
    page: i64,
    /// (rank key, version) of the last entry read; `None` once the walk is over.
    after: Option<(i64, i64)>,
}

impl<'a> Walk<'a> {
    pub(crate) fn new(board: &'a str, period: &'a str, order: Order, page: i64) -> Self {
        Self {
            board,
            period,
            order,
            page,
            after: Some((i64::MIN, i64::MIN)),
        }
    }

    /// The next page and the board's version it was read at; `None` after the last page.
    pub(crate) async fn next(
        &mut self,
        db: &mut PgConnection,
    ) -> sqlx::Result<Option<(Vec<BoardRow>, i64)>> {
        let Some(after) = self.after else {
            return Ok(None);
        };
        let rows: Vec<(String, String, i64, i64, i64)> = crate::db::query_as(&format!(
            "SELECT e.player_id, u.name, e.value, e.reached_version,
                    (SELECT coalesce((SELECT version FROM board_periods WHERE board_id = $1 AND period = $2), 0))
             FROM {} AND (e.rank_key, e.reached_version) > ($3, $4)
             ORDER BY {BOARD_ORDER} LIMIT $5",
            *ON_BOARD
        ))
        .bind(self.board)
        .bind(self.period)
        .bind(after.0)
        .bind(after.1)
        .bind(self.page)
        .fetch_all(&mut *db)
        .await?;
        let version = match rows.first() {
            Some(r) => r.4,
            None => current_version(&mut *db, self.board, self.period).await?,
        };
        let rows: Vec<BoardRow> = rows
            .into_iter()
            .map(|(p, n, v, ver, _)| row((p, n, v, ver)))
            .collect();
        self.after = rows
            .last()
            .filter(|_| rows.len() as i64 == self.page)
            .map(|last| (self.order.rank_key(last.value), last.version));
        Ok(Some((rows, version)))
    }
}

/// An entry changed since a version: the row as it is now, and whether its player is banned
/// (then it is off the board).
pub(crate) type Changed = (BoardRow, bool);

/// The entries of every player with an event on the board's period after `from`, as they are
/// now, and the board's version `to` they are read at (one snapshot): replaying them brings a
/// copy that held every event up to `from` to every event up to `to`.
pub(crate) async fn changed_since(
    db: &Db,
    board: &str,
    period: &str,
    from: i64,
) -> sqlx::Result<(i64, Vec<Changed>)> {
    let mut tx = db.begin().await?;
    crate::db::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let to = current_version(&mut *tx, board, period).await?;
    if to <= from {
        tx.commit().await?;
        return Ok((to, Vec::new()));
    }
    let rows: Vec<(String, String, i64, i64, bool)> = crate::db::query_as(
        "SELECT e.player_id, u.name, e.value, e.reached_version, u.banned_at IS NOT NULL
         FROM entries e JOIN users u USING (player_id)
         WHERE e.board_id = $1 AND e.period = $2 AND e.player_id IN (
           SELECT player_id FROM score_events
           WHERE id > $3 AND id <= $4 AND board_id = $1 AND period = $2)",
    )
    .bind(board)
    .bind(period)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let changed = rows
        .into_iter()
        .map(|(p, n, v, ver, banned)| (row((p, n, v, ver)), banned))
        .collect();
    Ok((to, changed))
}

/// The current entries of `players` on a board's period (banned players' included, flagged),
/// with the board's version read first: every event up to it is in the rows (later ones may
/// be too).
pub(crate) async fn rows_of(
    db: &Db,
    board: &str,
    period: &str,
    players: &[&str],
) -> sqlx::Result<(Vec<Changed>, i64)> {
    let mut conn = db.conn().await?;
    let version = current_version(&mut *conn, board, period).await?;
    let rows: Vec<(String, String, i64, i64, bool)> = crate::db::query_as(
        "SELECT e.player_id, u.name, e.value, e.reached_version, u.banned_at IS NOT NULL
         FROM UNNEST($3::text[]) AS p(player_id)
         JOIN entries e ON e.player_id = p.player_id AND e.board_id = $1 AND e.period = $2
         JOIN users u ON u.player_id = e.player_id",
    )
    .bind(board)
    .bind(period)
    .bind(players)
    .fetch_all(&mut *conn)
    .await?;
    let changed = rows
        .into_iter()
        .map(|(p, n, v, ver, banned)| (row((p, n, v, ver)), banned))
        .collect();
    Ok((changed, version))
}

fn row((player_id, name, value, version): (String, String, i64, i64)) -> BoardRow {
    BoardRow {
        player_id,
        name,
        value,
        version,
    }
}

/// A player's entries on every board and period, whether or not they are banned (an unban
/// puts them back in Redis).
pub(crate) async fn player_rows<'e>(
    db: impl PgExecutor<'e>,
    player: &str,
) -> sqlx::Result<Vec<(String, String, BoardRow)>> {
    let rows: Vec<(String, String, String, String, i64, i64)> = crate::db::query_as(
        "SELECT e.board_id, e.period, e.player_id, u.name, e.value, e.reached_version
         FROM entries e JOIN users u USING (player_id) WHERE e.player_id = $1",
    )
    .bind(player)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(b, p, id, name, value, version)| (b, p, row((id, name, value, version))))
        .collect())
}
