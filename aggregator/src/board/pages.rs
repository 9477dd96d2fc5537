//! Reads beyond the top 10, as PostgreSQL answers them: keyset pages of a board, the entries
//! around a player, and a player's standing on several boards. The Redis path
//! (`cache::reads`) answers the same from the same [`Cursor`].
//!
//! A page never repeats a player and never skips one that did not move: the cursor holds the
//! last entry's place in the board order and the board's version when paging began (`as_of`);
//! later pages skip entries reached after `as_of`. An unmoved entry keeps its place, so it is
//! met exactly once; a moved one is met at most once (before it moved, or never).

use super::sql::{ahead_of, on_board, BOARD_ORDER};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use scoreboard_protocol::snapshot::Standing;
use scoreboard_protocol::{BoardId, PlayerId};
use serde::Serialize;
use sqlx::PgConnection;

/// One row of a page or of an around-me read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Entry {
    pub(crate) rank: u64,
    pub(crate) player_id: String,
    pub(crate) name: String,
    pub(crate) score: i64,
}

/// Where a page ends: the last entry's rank key and event id, and the version paging began at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) rank_key: i64,
    pub(crate) version: i64,
    pub(crate) as_of: i64,
}

impl Cursor {
    /// Before the first entry, as of `as_of`.
    pub(crate) fn start(as_of: i64) -> Self {
        Self {
            rank_key: i64::MIN,
            version: i64::MIN,
            as_of,
        }
    }

    /// The opaque form clients pass back as `after`.
    pub(crate) fn encode(&self) -> String {
        let raw = format!("1.{}.{}.{}", self.rank_key, self.version, self.as_of);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// `None` for anything [`Self::encode`] did not produce.
    pub(crate) fn decode(s: &str) -> Option<Self> {
        if s.len() > 128 {
            return None;
        }
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
        let mut parts = raw.split('.');
        if parts.next()? != "1" {
            return None;
        }
        let mut next = || parts.next()?.parse::<i64>().ok();
        let cursor = Self {
            rank_key: next()?,
            version: next()?,
            as_of: next()?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

/// A page of entries and the cursor of the next one (`None` at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) entries: Vec<Entry>,
    pub(crate) next: Option<Cursor>,
}

type PageRow = (String, String, i64, i64, i64, i64);

/// Up to `limit` entries after `cursor`. Ranks are the entries' ranks now: the count of
/// entries ahead of the page's first plus the place within the page's span of the board.
pub(crate) async fn page(
    db: &mut PgConnection,
    board: &str,
    period: &str,
    cursor: Cursor,
    limit: i64,
) -> sqlx::Result<Page> {
    let on = on_board("$1", "$2");
    let rows: Vec<PageRow> = crate::db::query_as(&format!(
        "WITH page AS (
           SELECT e.player_id, u.name, e.value, e.rank_key AS k, e.reached_version AS v FROM {on}
           AND e.reached_version <= $3 AND (e.rank_key, e.reached_version) > ($4, $5)
           ORDER BY {BOARD_ORDER} LIMIT $6),
         first AS (SELECT k, v FROM page ORDER BY k, v LIMIT 1),
         last AS (SELECT k, v FROM page ORDER BY k DESC, v DESC LIMIT 1),
         span AS (
           SELECT e.rank_key AS k, e.reached_version AS v, row_number() OVER (ORDER BY {BOARD_ORDER}) AS n
           FROM {on} AND (e.rank_key, e.reached_version) >= (SELECT k, v FROM first)
           AND (e.rank_key, e.reached_version) <= (SELECT k, v FROM last)),
         base AS (SELECT count(*) AS c FROM {on} AND (e.rank_key, e.reached_version) < (SELECT k, v FROM first))
         SELECT p.player_id, p.name, p.value, p.k, p.v, (SELECT c FROM base) + s.n
         FROM page p JOIN span s USING (k, v) ORDER BY p.k, p.v"
    ))
    .bind(board)
    .bind(period)
    .bind(cursor.as_of)
    .bind(cursor.rank_key)
    .bind(cursor.version)
    .bind(limit)
    .fetch_all(&mut *db)
    .await?;
    let next = (rows.len() as i64 == limit).then(|| {
        let last = rows.last().expect("a full page has a last row");
        Cursor {
            rank_key: last.3,
            version: last.4,
            as_of: cursor.as_of,
        }
    });
    let entries = rows
        .into_iter()
        .map(|(player_id, name, score, _, _, rank)| Entry {
            rank: rank as u64,
            player_id,
            name,
            score,
        })
        .collect();
    Ok(Page { entries, next })
}

/// A player's entry with the `n` entries above and below it (fewer at either end of the
/// board), in board order; `None` when the player has no entry or is banned.
pub(crate) async fn around(
    db: &mut PgConnection,
    board: &str,
    period: &str,
    player: &str,
    n: i64,
) -> sqlx::Result<Option<(Entry, Vec<Entry>)>> {
    let Some((me, place)) = entry_of(&mut *db, board, period, player).await? else {
        return Ok(None);
    };
    let (above, below) = neighbours(&mut *db, board, period, place, n).await?;
    let first = me.rank - above.len() as u64;
    let mut out: Vec<Entry> = Vec::with_capacity(above.len() + below.len() + 1);
    out.extend(above.into_iter().map(entry_at(first)));
    out.push(me.clone());
    out.extend(below.into_iter().map(entry_at(me.rank + 1)));
    Ok(Some((me, out)))
}

/// A player's entry with its rank, and its place (rank key, event id) in the board order.
async fn entry_of(
    db: &mut PgConnection,
    board: &str,
    period: &str,
    player: &str,
) -> sqlx::Result<Option<(Entry, (i64, i64))>> {
    let on = on_board("$1", "$2");
    let me: Option<(String, i64, i64, i64)> = crate::db::query_as(&format!(
        "SELECT u.name, e.value, e.rank_key, e.reached_version FROM {on} AND e.player_id = $3"
    ))
    .bind(board)
    .bind(period)
    .bind(player)
    .fetch_optional(&mut *db)
    .await?;
    let Some((name, score, key, version)) = me else {
        return Ok(None);
    };
    let ahead: i64 = crate::db::query_scalar(&format!(
        "SELECT count(*) FROM {on} AND {}",
        ahead_of("$3", "$4")
    ))
    .bind(board)
    .bind(period)
    .bind(key)
    .bind(version)
    .fetch_one(&mut *db)
    .await?;
    let me = Entry {
        rank: ahead as u64 + 1,
        player_id: player.to_owned(),
        name,
        score,
    };
    Ok(Some((me, (key, version))))
}

type Row = (String, String, i64);

/// Up to `n` entries right above `place` (in board order) and up to `n` right below it.
/// `n` (0-25, checked by the route) is written into the statement, not bound: with a bound
/// limit PostgreSQL planned the statement afresh on every call (0.24 ms, five times what it
/// runs), as a generic plan's guess at the limit made it look dearer than a custom one.
async fn neighbours(
    db: &mut PgConnection,
    board: &str,
    period: &str,
    (key, version): (i64, i64),
    n: i64,
) -> sqlx::Result<(Vec<Row>, Vec<Row>)> {
    let on = on_board("$1", "$2");
    let rows: Vec<(String, String, i64, bool)> = crate::db::query_as(&format!(
        "(SELECT e.player_id, u.name, e.value, true FROM {on} AND (e.rank_key, e.reached_version) < ($3, $4)
          ORDER BY e.rank_key DESC, e.reached_version DESC LIMIT {n})
         UNION ALL
         (SELECT e.player_id, u.name, e.value, false FROM {on} AND (e.rank_key, e.reached_version) > ($3, $4)
          ORDER BY {BOARD_ORDER} LIMIT {n})"
    ))
    .bind(board)
    .bind(period)
    .bind(key)
    .bind(version)
    .fetch_all(&mut *db)
    .await?;
    let (mut above, below): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.3);
    above.reverse();
    let strip =
        |v: Vec<(String, String, i64, bool)>| v.into_iter().map(|r| (r.0, r.1, r.2)).collect();
    Ok((strip(above), strip(below)))
}

/// Numbers consecutive rows from `first`.
fn entry_at(first: u64) -> impl FnMut(Row) -> Entry {
    let mut rank = first;
    move |(player_id, name, score)| {
        let e = Entry {
            rank,
            player_id,
            name,
            score,
        };
        rank += 1;
        e
    }
}

/// The player's standing on each of `boards` (board, period) where they have an entry, in
/// that order. A banned player stands nowhere.
pub(crate) async fn standings(
    db: &mut PgConnection,
    player: &PlayerId,
    boards: &[(BoardId, String)],
) -> sqlx::Result<Vec<Standing>> {
    let ids: Vec<&str> = boards.iter().map(|b| b.0.as_str()).collect();
    let periods: Vec<&str> = boards.iter().map(|b| b.1.as_str()).collect();
    let on = on_board("p.b", "p.p");
    let ahead = ahead_of("me.rank_key", "me.reached_version");
    let rows: Vec<(String, String, i64, i64)> = crate::db::query_as(&format!(
        "SELECT p.b, p.p, me.value, (SELECT count(*) FROM {on} AND {ahead}) + 1
         FROM UNNEST($2::text[], $3::text[]) WITH ORDINALITY AS p(b, p, ord)
         JOIN entries me ON me.board_id = p.b AND me.period = p.p AND me.player_id = $1
         JOIN users mu ON mu.player_id = me.player_id AND mu.banned_at IS NULL
         ORDER BY p.ord"
    ))
    .bind(player.as_str())
    .bind(&ids)
    .bind(&periods)
    .fetch_all(&mut *db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(b, period, score, rank)| {
            Some(Standing {
                board: BoardId::parse(b).ok()?,
                period,
                score,
                rank: rank as u64,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_nothing_else_decodes() {
        let c = Cursor {
            rank_key: -1500,
            version: 42,
            as_of: 99,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(
            Cursor::decode(&Cursor::start(7).encode()),
            Some(Cursor::start(7))
        );
        for bad in ["", "x", "MS4yLjM", "!!!!", &"A".repeat(200)] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
        let extra = URL_SAFE_NO_PAD.encode("1.1.2.3.4");
        assert_eq!(Cursor::decode(&extra), None);
    }
}
