//! The SQL of one batch, in one transaction: take the writers' lock, read what the decision
//! needs, let [`plan`](super::plan) decide, then write what it decided — consumed tokens,
//! score events (one per board of each update), entries, audit rows.
//!
//! The batcher is serial, so every round trip here is paid by every update waiting behind
//! it: a batch that applies makes four (begin with the lock, read, write, commit), each
//! statement doing all of its step for the whole batch. The changed boards' top 10s are read
//! after the commit, off this path (see the batcher).

use super::phases::Phases;
use super::plan::{self, Ask, Decision, EntryKey, Facts, Move, Plan};
use super::{Outcome, Source, Update};
use crate::board::kind::Order;
use crate::board::{sql, BoardDef, BoardRow, Boards};
use crate::db::Db;
use anyhow::Context;
use foldhash::{HashMap, HashSet};
use scoreboard_protocol::snapshot::{PeriodRef, Standing};
use scoreboard_protocol::BoardId;
use serde_json::json;
use sqlx::{Connection as _, PgConnection};

/// Key of the advisory lock every score writer takes (any constant; "SCOREBRD" in ASCII).
/// Writers serialise on it so event ids commit in order, which makes "snapshot version V
/// includes every event <= V" true across instances.
const WRITER_LOCK: i64 = 0x5343_4F52_4542_5244;

/// Takes the writers' lock for the rest of the transaction. Board changes take it too, so a
/// board's order cannot change between a batch reading it and scoring it.
pub(crate) async fn lock_writers(tx: &mut PgConnection) -> sqlx::Result<()> {
    crate::db::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// One board a batch touched: the rows of the entries it named (for Redis and for ranks),
/// and whether an entry changed (then its snapshot is read after the commit).
#[derive(Debug)]
pub(super) struct Touched {
    pub(super) def: BoardDef,
    pub(super) period: PeriodRef,
    pub(super) rows: Vec<BoardRow>,
    pub(super) changed: bool,
}

/// A committed batch: each request's outcome (ranks still to fill in) and the boards it
/// touched.
#[derive(Debug)]
pub(super) struct Committed {
    pub(super) outcomes: Vec<Outcome>,
    pub(super) touched: Vec<Touched>,
}

/// What the batch read before deciding.
struct Read {
    facts: Vec<Facts>,
    names: HashMap<String, String>,
    banned: HashSet<String>,
    defs: Vec<BoardDef>,
    periods: HashMap<String, PeriodRef>,
    /// (value, reached_version) of every entry the batch names that exists, keyed (board,
    /// player).
    entries: HashMap<(String, String), (i64, i64)>,
}

/// Applies one batch in one transaction. Each board's period is the one the database's clock
/// is in under the writers' lock; `now_ms`, this instance's clock, only predicts it (to read
/// the entries with the facts).
pub(super) async fn commit(
    db: &Db,
    known: &Boards,
    updates: &[&Update],
    now_ms: i64,
    phases: &mut Phases,
) -> anyhow::Result<Committed> {
    let mut conn = db
        .pool()
        .acquire()
        .await
        .context("taking a database connection")?;
    phases.mark("connect");
    let committed = commit_on(&mut conn, known, updates, now_ms, phases).await;
    if committed.is_err() {
        // A failure can leave the session inside a transaction sqlx does not know of (the lock
        // failing after BEGIN succeeded, in one query): the connection is closed, not pooled.
        conn.close_on_drop();
    }
    committed
}

async fn commit_on(
    conn: &mut PgConnection,
    known: &Boards,
    updates: &[&Update],
    now_ms: i64,
    phases: &mut Phases,
) -> anyhow::Result<Committed> {
    // BEGIN, the lock and the plan mode in one simple query: one round trip, and every
    // statement after it (each with its own snapshot) sees what the writers before us
    // committed. The batch's statements keep one generic plan per connection, as every
    // statement does on a direct connection (see `connect_pool`); set here for a transaction
    // pooler's connections too.
    let mut tx = conn
        .begin_with(format!(
            "BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK}); \
             SET LOCAL plan_cache_mode = force_generic_plan"
        ))
        .await
        .context("beginning the batch transaction and taking the writers' lock")?;
    phases.mark("lock");
    let read = read_all(&mut tx, known, updates, now_ms).await?;
    phases.mark("read");
    let asks: Vec<Ask<'_>> = updates.iter().map(|u| u.ask()).collect();
    let defs: HashMap<&str, &BoardDef> = read.defs.iter().map(|d| (d.id.as_str(), d)).collect();
    // The entries before the batch, keyed by borrowed (board, player).
    let before: HashMap<EntryKey<'_>, (i64, i64)> = read
        .entries
        .iter()
        .map(|((b, p), v)| ((b.as_str(), p.as_str()), *v))
        .collect();
    let values = before.iter().map(|(k, v)| (*k, v.0)).collect();
    let plan = plan::plan(&asks, &read.facts, &defs, values);
    let applied: Vec<(&Update, &[Move])> = updates
        .iter()
        .zip(&plan.decisions)
        .filter_map(|(u, d)| match d {
            Decision::Apply(moves) => Some((*u, moves.as_slice())),
            _ => None,
        })
        .collect();
    if applied.is_empty() {
        phases.mark("plan");
        tx.commit().await.context("committing the batch")?;
        phases.mark("commit");
        return Ok(Committed {
            outcomes: outcomes(updates, &plan, &read.periods, &HashMap::default()),
            touched: Vec::new(),
        });
    }
    let events = events_of(&applied, &read.periods, &read.defs);
    let last = last_changes(&events);
    phases.mark("plan");
    let ids = write_batch(&mut tx, &applied, &events, &last).await?;
    audit_adjustments(&mut tx, &events, &ids).await?;
    phases.mark("write");
    let board_versions = newest_per_board(&events, &ids);
    let touched = touched_boards(&read, &before, &events, &ids, &last);
    tx.commit().await.context("committing the batch")?;
    phases.mark("commit");
    Ok(Committed {
        outcomes: outcomes(updates, &plan, &read.periods, &board_versions),
        touched,
    })
}

#[derive(sqlx::FromRow)]
struct FactsRow {
    exists: bool,
    banned: bool,
    revoked: bool,
    consumed: bool,
    name: Option<String>,
    /// The batch's boards as JSON, on the first row only.
    defs: Option<String>,
    /// The entries at the expected keys as JSON, on the first row only.
    entries: Option<String>,
    /// The database's clock under the writers' lock, in Unix ms, on the first row only.
    now_ms: Option<i64>,
}

/// The entries a batch read, keyed (board, player): (value, reached_version).
type EntryValues = HashMap<(String, String), (i64, i64)>;

async fn read_all(
    tx: &mut PgConnection,
    known: &Boards,
    updates: &[&Update],
    now_ms: i64,
) -> anyhow::Result<Read> {
    // The entries are read with the facts, at the periods the boards we know are in now. The
    // boards and the database's clock as read under the lock decide: a board we did not know
    // or whose period differs (a boundary between the two clocks, or a changed schedule) has
    // its entries read again.
    let mut expected: HashMap<&str, PeriodRef> = HashMap::default();
    for b in updates.iter().flat_map(|u| u.boards.iter()) {
        if !expected.contains_key(b.as_str()) {
            if let Some(live) = known.get(b.as_str()) {
                expected.insert(b.as_str(), live.def.period_at(now_ms));
            }
        }
    }
    let keys = entry_keys(updates, |b| expected.get(b).map(|p| p.id.as_str()));
    let (facts, names, banned, defs, mut entries, db_now) = read_facts(tx, updates, &keys).await?;
    // The period is the database's clock's, read under the lock: one clock for every
    // instance, so no batch writes into a period another instance has closed.
    let now_ms = db_now.unwrap_or(now_ms);
    let periods: HashMap<String, PeriodRef> = defs
        .iter()
        .map(|d| (d.id.to_string(), d.period_at(now_ms)))
        .collect();
    let missed = |b: &str| periods.get(b).filter(|p| expected.get(b) != Some(*p));
    if periods.keys().any(|b| missed(b).is_some()) {
        entries.retain(|(b, _), _| missed(b).is_none());
        let keys = entry_keys(updates, |b| missed(b).map(|p| p.id.as_str()));
        entries.extend(read_entries(tx, &keys).await?);
    }
    Ok(Read {
        facts,
        names,
        banned,
        defs,
        periods,
        entries,
    })
}

/// The (board, period, player) keys of the updates' entries, as three columns, on the boards
/// `period_of` gives a period for.
fn entry_keys<'a>(
    updates: &[&'a Update],
    period_of: impl Fn(&str) -> Option<&'a str>,
) -> EntryKeys<'a> {
    let mut keys = (Vec::new(), Vec::new(), Vec::new());
    for u in updates {
        for b in &u.boards {
            if let Some(p) = period_of(b.as_str()) {
                keys.0.push(b.as_str());
                keys.1.push(p);
                keys.2.push(u.player.as_str());
            }
        }
    }
    keys
}

type ReadFacts = (
    Vec<Facts>,
    HashMap<String, String>,
    HashSet<String>,
    Vec<BoardDef>,
    EntryValues,
    Option<i64>,
);

type EntryKeys<'a> = (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>);

/// The entries at `keys` as a JSON array of [board, player, value, version], for a column.
const ENTRIES_JSON: &str = "(SELECT coalesce(json_agg(json_build_array(e.board_id, e.player_id, e.value, e.reached_version)), '[]')::text
     FROM UNNEST($5::text[], $6::text[], $7::text[]) AS k(board_id, period, player_id)
     JOIN entries e USING (board_id, period, player_id))";

/// Who exists, who is banned, which sessions are revoked, which tokens were redeemed, the
/// players' names, the batch's boards and the entries at `keys`: one row per update, in
/// order, in one round trip. Each lookup is a `LATERAL … LIMIT 1` so that it stays an index
/// probe per key whatever the planner estimates: a custom plan (an unnamed statement gets one
/// every time) otherwise hash-joins whole scans of `users` and `sessions`, a cost that grows
/// with the players (`scripts/explain-batch-read`).
async fn read_facts(
    tx: &mut PgConnection,
    updates: &[&Update],
    keys: &EntryKeys<'_>,
) -> anyhow::Result<ReadFacts> {
    let players: Vec<&str> = updates.iter().map(|u| u.player.as_str()).collect();
    let sessions: Vec<Option<&str>> = updates.iter().map(|u| u.source.session_jti()).collect();
    let jtis: Vec<Option<&str>> = updates.iter().map(|u| u.source.jti()).collect();
    let mut board_ids: Vec<&str> = updates
        .iter()
        .flat_map(|u| u.boards.iter().map(|b| b.as_str()))
        .collect();
    board_ids.sort_unstable();
    board_ids.dedup();
    let rows: Vec<FactsRow> = crate::db::query_as(&format!(
        "SELECT u.player_id IS NOT NULL AS exists, u.banned_at IS NOT NULL AS banned,
                s.revoked_at IS NOT NULL AS revoked, c.jti IS NOT NULL AS consumed, u.name,
                CASE WHEN p.ord = 1 THEN {} END AS defs,
                CASE WHEN p.ord = 1 THEN {ENTRIES_JSON} END AS entries,
                CASE WHEN p.ord = 1 THEN (extract(epoch FROM clock_timestamp()) * 1000)::bigint END AS now_ms
         FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS p(player_id, session_jti, jti, ord)
         LEFT JOIN LATERAL (SELECT player_id, banned_at, name FROM users
                            WHERE player_id = p.player_id LIMIT 1) u ON true
         LEFT JOIN LATERAL (SELECT revoked_at FROM sessions WHERE jti = p.session_jti LIMIT 1) s ON true
         LEFT JOIN LATERAL (SELECT jti FROM consumed_tokens WHERE jti = p.jti LIMIT 1) c ON true
         ORDER BY p.ord",
        sql::defs_json_of("$4::text[]")
    ))
    .bind(&players)
    .bind(&sessions)
    .bind(&jtis)
    .bind(&board_ids)
    .bind(&keys.0)
    .bind(&keys.1)
    .bind(&keys.2)
    .fetch_all(&mut *tx)
    .await
    .context("reading players, sessions, tokens and entries")?;
    let first = rows.first();
    let now_ms = first.and_then(|r| r.now_ms);
    let defs = match first.and_then(|r| r.defs.as_deref()) {
        Some(json) => sql::parse_defs_json(json).context("reading the batch's boards")?,
        None => Vec::new(),
    };
    let entries = match first.and_then(|r| r.entries.as_deref()) {
        Some(json) => entry_values(serde_json::from_str(json).context("reading entries")?),
        None => HashMap::default(),
    };
    let mut names = HashMap::default();
    let mut banned = HashSet::default();
    let facts = rows
        .into_iter()
        .zip(&players)
        .map(|(r, p)| {
            if let Some(n) = r.name {
                names.insert((*p).to_owned(), n);
            }
            if r.banned {
                banned.insert((*p).to_owned());
            }
            Facts {
                exists: r.exists,
                banned: r.banned,
                revoked: r.revoked,
                consumed: r.consumed,
            }
        })
        .collect();
    Ok((facts, names, banned, defs, entries, now_ms))
}

fn entry_values(rows: Vec<(String, String, i64, i64)>) -> EntryValues {
    rows.into_iter()
        .map(|(b, p, value, version)| ((b, p), (value, version)))
        .collect()
}

/// The entries at `keys`, for the boards [`read_facts`] could not read them for.
async fn read_entries(tx: &mut PgConnection, keys: &EntryKeys<'_>) -> anyhow::Result<EntryValues> {
    let rows: Vec<(String, String, i64, i64)> = crate::db::query_as(
        "SELECT e.board_id, e.player_id, e.value, e.reached_version
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS k(board_id, period, player_id)
         JOIN entries e USING (board_id, period, player_id)",
    )
    .bind(&keys.0)
    .bind(&keys.1)
    .bind(&keys.2)
    .fetch_all(&mut *tx)
    .await
    .context("reading entries")?;
    Ok(entry_values(rows))
}

/// One score event: an applied update on one of its boards.
struct Event<'a> {
    update: &'a Update,
    board: &'a BoardId,
    period: &'a str,
    value_after: i64,
    /// The value as the board orders it (see the `entries` table).
    rank_key: i64,
    changed: bool,
}

fn events_of<'a>(
    applied: &[(&'a Update, &'a [Move])],
    periods: &'a HashMap<String, PeriodRef>,
    defs: &[BoardDef],
) -> Vec<Event<'a>> {
    let order: HashMap<&str, Order> = defs.iter().map(|d| (d.id.as_str(), d.order)).collect();
    applied
        .iter()
        .flat_map(|(u, moves)| {
            let order = &order;
            u.boards.iter().zip(moves.iter()).map(move |(b, m)| Event {
                update: u,
                board: b,
                period: periods[b.as_str()].id.as_str(),
                value_after: m.value_after,
                rank_key: order[b.as_str()].rank_key(m.value_after),
                changed: m.changed,
            })
        })
        .collect()
}

/// Everything the batch writes but the audit, in one statement: the redeemed tokens, the
/// events in order, each board's version (its newest event) and the entries the events
/// changed (each at its last changing event, see [`last_changes`]). Returns the events' ids
/// (the versions), in the events' order.
///
/// The ids are drawn from the events' sequence as the rows are read, in order, under the
/// writers' lock; they are checked to ascend. consumed_tokens' primary key is the last word
/// on a token: the plan already knows none was redeemed, and a conflict fails the whole batch
/// rather than apply a token twice. Entries are upserted, not updated by a join: the upsert
/// finds each row by the primary key, where a join's plan could pick the order index (a
/// scan of the board) on a table without statistics yet.
const WRITE_BATCH: &str = "WITH tokens AS (
   INSERT INTO consumed_tokens (jti, player_id, expires_at)
   SELECT jti, player_id, to_timestamp(exp) FROM UNNEST($1::text[], $2::text[], $3::float8[]) AS t(jti, player_id, exp)
   RETURNING 1),
 ev AS MATERIALIZED (
   SELECT nextval('score_events_id_seq'::regclass) AS id, e.*
   FROM UNNEST($4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bool[])
        WITH ORDINALITY AS e(player_id, jti, action, pts, score_after, edge_region, request_id, board_id, period, rank_key, sets_entry, ord)),
 events AS (
   INSERT INTO score_events (id, player_id, jti, action, pts, score_after, edge_region, request_id, board_id, period)
   SELECT id, player_id, jti, action, pts, score_after, edge_region, request_id, board_id, period FROM ev),
 versions AS (
   INSERT INTO board_periods (board_id, period, version)
   SELECT board_id, period, max(id) FROM ev GROUP BY board_id, period
   ON CONFLICT (board_id, period) DO UPDATE
   SET version = greatest(board_periods.version, EXCLUDED.version)),
 set_entries AS (
   INSERT INTO entries (board_id, period, player_id, value, rank_key, reached_version)
   SELECT board_id, period, player_id, score_after, rank_key, id FROM ev WHERE sets_entry
   ON CONFLICT (board_id, period, player_id) DO UPDATE
   SET value = EXCLUDED.value, rank_key = EXCLUDED.rank_key,
       reached_version = EXCLUDED.reached_version, reached_at = now())
 SELECT id, (SELECT count(*) FROM tokens) AS consumed FROM ev ORDER BY ord";

async fn write_batch<'a>(
    tx: &mut PgConnection,
    applied: &[(&Update, &[Move])],
    events: &[Event<'a>],
    last: &LastChanges<'_>,
) -> anyhow::Result<Vec<i64>> {
    let tokens: Vec<(&str, &str, f64)> = applied
        .iter()
        .filter_map(|(u, _)| match &u.source {
            Source::Token {
                jti, expires_at, ..
            } => Some((jti.as_str(), u.player.as_str(), *expires_at as f64)),
            Source::Adjustment { .. } => None,
        })
        .collect();
    let column = |f: fn(&Event<'a>) -> &'a str| events.iter().map(f).collect::<Vec<_>>();
    let optional = |f: fn(&Event<'a>) -> Option<&'a str>| events.iter().map(f).collect::<Vec<_>>();
    let number = |f: fn(&Event<'a>) -> i64| events.iter().map(f).collect::<Vec<_>>();
    let rows: Vec<(i64, i64)> = crate::db::query_as(WRITE_BATCH)
        .bind(tokens.iter().map(|t| t.0).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.1).collect::<Vec<_>>())
        .bind(tokens.iter().map(|t| t.2).collect::<Vec<_>>())
        .bind(column(|e| e.update.player.as_str()))
        .bind(optional(|e| e.update.source.jti()))
        .bind(column(|e| e.update.source.action()))
        .bind(number(|e| e.update.points))
        .bind(number(|e| e.value_after))
        .bind(optional(|e| e.update.source.edge_region()))
        .bind(column(|e| e.update.request_id.as_str()))
        .bind(column(|e| e.board.as_str()))
        .bind(column(|e| e.period))
        .bind(number(|e| e.rank_key))
        .bind(sets_entry(events.len(), last))
        .fetch_all(&mut *tx)
        .await
        .context("writing the batch")?;
    let consumed = rows.first().map_or(0, |r| r.1);
    anyhow::ensure!(
        consumed == tokens.len() as i64,
        "a redeemed token was recorded twice"
    );
    let ids: Vec<i64> = rows.into_iter().map(|(id, _)| id).collect();
    anyhow::ensure!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "score event ids out of order"
    );
    Ok(ids)
}

/// One audit row per applied adjustment, naming the event it wrote.
async fn audit_adjustments(
    tx: &mut PgConnection,
    events: &[Event<'_>],
    ids: &[i64],
) -> anyhow::Result<()> {
    for (e, id) in events.iter().zip(ids) {
        let Source::Adjustment { reason } = &e.update.source else {
            continue;
        };
        let detail =
            json!({"points": e.update.points, "reason": reason, "event_id": id, "board": e.board});
        crate::db::query(
            "INSERT INTO admin_audit (action, player_id, detail, request_id) VALUES ('adjust', $1, $2, $3)",
        )
        .bind(e.update.player.as_str())
        .bind(detail)
        .bind(&e.update.request_id)
        .execute(&mut *tx)
        .await
        .context("auditing an adjustment")?;
    }
    Ok(())
}

/// Each board's newest event id in the batch.
fn newest_per_board<'a>(events: &[Event<'a>], ids: &[i64]) -> HashMap<&'a str, i64> {
    let mut out: HashMap<&str, i64> = HashMap::default();
    for (e, id) in events.iter().zip(ids) {
        let v = out.entry(e.board.as_str()).or_default();
        *v = (*v).max(*id);
    }
    out
}

/// The index of the last changing event of each (board, player): the event whose value and
/// id the entry keeps (and the one row per entry the batch's upsert writes).
type LastChanges<'a> = HashMap<EntryKey<'a>, usize>;

fn last_changes<'a>(events: &[Event<'a>]) -> LastChanges<'a> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.changed)
        .map(|(i, e)| ((e.board.as_str(), e.update.player.as_str()), i))
        .collect()
}

/// Whether each of `n` events is the one that sets its entry.
fn sets_entry(n: usize, last: &LastChanges<'_>) -> Vec<bool> {
    let mut flags = vec![false; n];
    for &i in last.values() {
        flags[i] = true;
    }
    flags
}

/// The boards the batch touched, each with the rows of the entries it named as they are after
/// the batch (banned players are off every board, so they have no row).
fn touched_boards(
    read: &Read,
    before: &HashMap<EntryKey<'_>, (i64, i64)>,
    events: &[Event<'_>],
    ids: &[i64],
    last: &LastChanges<'_>,
) -> Vec<Touched> {
    let mut out: Vec<Touched> = Vec::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::default();
    for e in events {
        let (board, player) = (e.board.as_str(), e.update.player.as_str());
        let i = match out.iter().position(|t| t.def.id == *e.board) {
            Some(i) => i,
            None => {
                let def = read.defs.iter().find(|d| d.id == *e.board).expect("read");
                out.push(Touched {
                    def: def.clone(),
                    period: read.periods[board].clone(),
                    rows: Vec::new(),
                    changed: false,
                });
                out.len() - 1
            }
        };
        out[i].changed |= e.changed;
        if read.banned.contains(player) || !seen.insert((board, player)) {
            continue;
        }
        let after = last
            .get(&(board, player))
            .map(|&i| (events[i].value_after, ids[i]));
        let Some((value, version)) = after.or(before.get(&(board, player)).copied()) else {
            continue;
        };
        out[i].rows.push(BoardRow {
            player_id: player.to_owned(),
            name: read.names.get(player).cloned().unwrap_or_default(),
            value,
            version,
        });
    }
    out
}

/// Each request's outcome from the plan; `versions` are the boards' newest event ids in the
/// batch. Answers carry the entries after the whole batch (the freshest thing we know).
fn outcomes(
    updates: &[&Update],
    plan: &Plan,
    periods: &HashMap<String, PeriodRef>,
    versions: &HashMap<&str, i64>,
) -> Vec<Outcome> {
    updates
        .iter()
        .zip(&plan.decisions)
        .map(|(u, d)| {
            let value = |b: &BoardId| {
                let key: EntryKey<'_> = (b.as_str(), u.player.as_str());
                plan.values.get(&key).copied().unwrap_or(0)
            };
            let first = u.boards.first();
            // A board the batch could not read (unknown, hidden) has no period: no standing.
            let standings = || {
                u.boards
                    .iter()
                    .filter_map(|b| {
                        Some(Standing {
                            board: b.clone(),
                            period: periods.get(b.as_str())?.id.clone(),
                            score: value(b),
                            rank: 0,
                        })
                    })
                    .collect()
            };
            match d {
                Decision::Apply(_) => Outcome::Applied {
                    standings: standings(),
                    version: first
                        .and_then(|b| versions.get(b.as_str()))
                        .copied()
                        .unwrap_or(0),
                },
                Decision::Replayed => Outcome::Replayed {
                    standings: standings(),
                },
                Decision::Banned => Outcome::Banned,
                Decision::Unauthenticated => Outcome::Unauthenticated,
                Decision::UnknownPlayer => Outcome::UnknownPlayer,
                Decision::UnknownBoard => Outcome::UnknownBoard,
                Decision::ValueOutOfRange => Outcome::ValueOutOfRange,
                Decision::OutOfRange => Outcome::OutOfRange,
            }
        })
        .collect()
}
