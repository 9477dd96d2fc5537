//! The SQL of one batch, in one transaction: take the writers' lock, read what the decision
//! needs, let [`plan`](super::plan) decide, then write what it decided — consumed tokens,
//! score events (one per board of each update), entries, audit rows — and read the snapshots
//! of the boards that changed, which the commit will publish.

use super::plan::{self, Ask, Decision, EntryKey, Facts, Move, Plan};
use super::{Outcome, Source, Update};
use crate::board::kind::Order;
use crate::board::{sql, BoardDef, BoardRow};
use anyhow::Context;
use scoreboard_protocol::snapshot::{BoardSnapshot, PeriodRef, Standing};
use scoreboard_protocol::BoardId;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use std::collections::{HashMap, HashSet};

/// Key of the advisory lock every score writer takes (any constant; "SCOREBRD" in ASCII).
/// Writers serialise on it so event ids commit in order, which makes "snapshot version V
/// includes every event <= V" true across instances.
const WRITER_LOCK: i64 = 0x5343_4F52_4542_5244;

/// Takes the writers' lock for the rest of the transaction. Board changes take it too, so a
/// board's order cannot change between a batch reading it and scoring it.
pub(crate) async fn lock_writers(tx: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut *tx)
        .await
        .map(|_| ())
}

/// One board a batch touched: the rows of the entries it named (for Redis and for ranks),
/// and, when an entry changed, the snapshot the commit produced.
#[derive(Debug)]
pub(super) struct Touched {
    pub(super) def: BoardDef,
    pub(super) period: PeriodRef,
    pub(super) rows: Vec<BoardRow>,
    /// Whether an entry changed (then `snapshot` is the board after the commit).
    pub(super) changed: bool,
    pub(super) snapshot: Option<BoardSnapshot>,
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

/// Applies one batch in one transaction; `now_ms` is the batch's one clock (it picks each
/// board's period).
pub(super) async fn commit(
    db: &PgPool,
    updates: &[&Update],
    now_ms: i64,
) -> anyhow::Result<Committed> {
    let mut tx = db
        .begin()
        .await
        .context("beginning the batch transaction")?;
    lock_writers(&mut tx)
        .await
        .context("taking the writers' lock")?;
    let read = read_all(&mut tx, updates, now_ms).await?;
    let asks: Vec<Ask<'_>> = updates.iter().map(|u| u.ask()).collect();
    let defs: HashMap<&str, &BoardDef> = read.defs.iter().map(|d| (d.id.as_str(), d)).collect();
    let values = read
        .entries
        .iter()
        .map(|((b, p), v)| ((b.as_str(), p.as_str()), v.0))
        .collect();
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
        tx.commit().await.context("committing the batch")?;
        return Ok(Committed {
            outcomes: outcomes(updates, &plan, &read.periods, &HashMap::new()),
            touched: Vec::new(),
        });
    }
    consume_tokens(&mut tx, &applied).await?;
    let events = events_of(&applied, &read.periods);
    let ids = append_events(&mut tx, &events).await?;
    audit_adjustments(&mut tx, &events, &ids).await?;
    let board_versions = newest_per_board(&events, &ids);
    set_entries(&mut tx, &events, &ids, &read.defs).await?;
    let mut touched = touched_boards(&read, &events, &ids);
    snapshots_of_changed(&mut tx, &mut touched, &board_versions).await?;
    tx.commit().await.context("committing the batch")?;
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
}

async fn read_all(tx: &mut PgConnection, updates: &[&Update], now_ms: i64) -> anyhow::Result<Read> {
    let (facts, names, banned, defs) = read_facts(tx, updates).await?;
    let periods: HashMap<String, PeriodRef> = defs
        .iter()
        .map(|d| (d.id.to_string(), d.period_at(now_ms)))
        .collect();
    let entries = read_entries(tx, updates, &periods).await?;
    Ok(Read {
        facts,
        names,
        banned,
        defs,
        periods,
        entries,
    })
}

/// The new top 10 of every board whose entries changed, in one round trip.
async fn snapshots_of_changed(
    tx: &mut PgConnection,
    touched: &mut [Touched],
    versions: &HashMap<&str, i64>,
) -> anyhow::Result<()> {
    let changed: Vec<(&BoardDef, &PeriodRef, i64)> = touched
        .iter()
        .filter(|t| t.changed)
        .map(|t| (&t.def, &t.period, versions[t.def.id.as_str()]))
        .collect();
    if changed.is_empty() {
        return Ok(());
    }
    let mut snapshots = sql::load_snapshots(tx, &changed)
        .await
        .context("reading the changed boards' top 10")?
        .into_iter();
    for t in touched.iter_mut().filter(|t| t.changed) {
        t.snapshot = snapshots.next();
    }
    Ok(())
}

type ReadFacts = (
    Vec<Facts>,
    HashMap<String, String>,
    HashSet<String>,
    Vec<BoardDef>,
);

/// Who exists, who is banned, which sessions are revoked, which tokens were redeemed, the
/// players' names and the batch's boards: one row per update, in order, in one round trip.
async fn read_facts(tx: &mut PgConnection, updates: &[&Update]) -> anyhow::Result<ReadFacts> {
    let players: Vec<&str> = updates.iter().map(|u| u.player.as_str()).collect();
    let sessions: Vec<Option<&str>> = updates.iter().map(|u| u.source.session_jti()).collect();
    let jtis: Vec<Option<&str>> = updates.iter().map(|u| u.source.jti()).collect();
    let mut board_ids: Vec<&str> = updates
        .iter()
        .flat_map(|u| u.boards.iter().map(|b| b.as_str()))
        .collect();
    board_ids.sort_unstable();
    board_ids.dedup();
    let rows: Vec<FactsRow> = sqlx::query_as(&format!(
        "SELECT u.player_id IS NOT NULL AS exists, u.banned_at IS NOT NULL AS banned,
                s.revoked_at IS NOT NULL AS revoked, c.jti IS NOT NULL AS consumed, u.name,
                CASE WHEN p.ord = 1 THEN {} END AS defs
         FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS p(player_id, session_jti, jti, ord)
         LEFT JOIN users u ON u.player_id = p.player_id
         LEFT JOIN sessions s ON s.jti = p.session_jti
         LEFT JOIN consumed_tokens c ON c.jti = p.jti
         ORDER BY p.ord",
        sql::defs_json_of("$4::text[]")
    ))
    .bind(&players)
    .bind(&sessions)
    .bind(&jtis)
    .bind(&board_ids)
    .fetch_all(&mut *tx)
    .await
    .context("reading players, sessions and tokens")?;
    let mut names = HashMap::new();
    let mut banned = HashSet::new();
    let defs = match rows.first().and_then(|r| r.defs.as_deref()) {
        Some(json) => sql::parse_defs_json(json).context("reading the batch's boards")?,
        None => Vec::new(),
    };
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
    Ok((facts, names, banned, defs))
}

/// The current entry of every (board, player) the batch names, on boards that exist.
async fn read_entries(
    tx: &mut PgConnection,
    updates: &[&Update],
    periods: &HashMap<String, PeriodRef>,
) -> anyhow::Result<HashMap<(String, String), (i64, i64)>> {
    let (mut boards, mut pers, mut players) = (Vec::new(), Vec::new(), Vec::new());
    for u in updates {
        for b in &u.boards {
            if let Some(p) = periods.get(b.as_str()) {
                boards.push(b.as_str());
                pers.push(p.id.as_str());
                players.push(u.player.as_str());
            }
        }
    }
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT e.board_id, e.player_id, e.value, e.reached_version
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS k(board_id, period, player_id)
         JOIN entries e USING (board_id, period, player_id)",
    )
    .bind(&boards)
    .bind(&pers)
    .bind(&players)
    .fetch_all(&mut *tx)
    .await
    .context("reading entries")?;
    Ok(rows
        .into_iter()
        .map(|(b, p, value, version)| ((b, p), (value, version)))
        .collect())
}

/// Records the applied tokens as redeemed. The plan already knows none was; the primary key
/// is the last word all the same: a conflict here fails the whole batch rather than apply a
/// token twice.
async fn consume_tokens(
    tx: &mut PgConnection,
    applied: &[(&Update, &[Move])],
) -> anyhow::Result<()> {
    let tokens: Vec<(&str, &str, i64)> = applied
        .iter()
        .filter_map(|(u, _)| match &u.source {
            Source::Token {
                jti, expires_at, ..
            } => Some((jti.as_str(), u.player.as_str(), *expires_at)),
            Source::Adjustment { .. } => None,
        })
        .collect();
    if tokens.is_empty() {
        return Ok(());
    }
    let jtis: Vec<&str> = tokens.iter().map(|t| t.0).collect();
    let owners: Vec<&str> = tokens.iter().map(|t| t.1).collect();
    let expiries: Vec<f64> = tokens.iter().map(|t| t.2 as f64).collect();
    let inserted = sqlx::query(
        "INSERT INTO consumed_tokens (jti, player_id, expires_at)
         SELECT jti, player_id, to_timestamp(exp) FROM UNNEST($1::text[], $2::text[], $3::float8[]) AS t(jti, player_id, exp)",
    )
    .bind(&jtis)
    .bind(&owners)
    .bind(&expiries)
    .execute(&mut *tx)
    .await
    .context("recording redeemed tokens")?
    .rows_affected();
    anyhow::ensure!(
        inserted == tokens.len() as u64,
        "a redeemed token was recorded twice"
    );
    Ok(())
}

/// One score event: an applied update on one of its boards.
struct Event<'a> {
    update: &'a Update,
    board: &'a BoardId,
    period: &'a str,
    value_after: i64,
    changed: bool,
}

fn events_of<'a>(
    applied: &[(&'a Update, &'a [Move])],
    periods: &'a HashMap<String, PeriodRef>,
) -> Vec<Event<'a>> {
    applied
        .iter()
        .flat_map(|(u, moves)| {
            u.boards.iter().zip(moves.iter()).map(|(b, m)| Event {
                update: u,
                board: b,
                period: periods[b.as_str()].id.as_str(),
                value_after: m.value_after,
                changed: m.changed,
            })
        })
        .collect()
}

/// Appends the events, in order, and raises each board's version to its newest; returns the
/// events' ids (the versions), in the same order.
async fn append_events(tx: &mut PgConnection, events: &[Event<'_>]) -> anyhow::Result<Vec<i64>> {
    let players: Vec<&str> = events.iter().map(|e| e.update.player.as_str()).collect();
    let jtis: Vec<Option<&str>> = events.iter().map(|e| e.update.source.jti()).collect();
    let actions: Vec<&str> = events.iter().map(|e| e.update.source.action()).collect();
    let regions: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.update.source.edge_region())
        .collect();
    let requests: Vec<&str> = events
        .iter()
        .map(|e| e.update.request_id.as_str())
        .collect();
    let boards: Vec<&str> = events.iter().map(|e| e.board.as_str()).collect();
    let periods: Vec<&str> = events.iter().map(|e| e.period).collect();
    let points: Vec<i64> = events.iter().map(|e| e.update.points).collect();
    let after: Vec<i64> = events.iter().map(|e| e.value_after).collect();
    // The boards' versions (their newest event) are recorded by the same statement.
    let ids: Vec<(i64,)> = sqlx::query_as(
        "WITH ins AS (
           INSERT INTO score_events (player_id, jti, action, pts, score_after, edge_region, request_id, board_id, period)
           SELECT player_id, jti, action, pts, score_after, edge_region, request_id, board_id, period
           FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[])
                WITH ORDINALITY AS e(player_id, jti, action, pts, score_after, edge_region, request_id, board_id, period, ord)
           ORDER BY ord
           RETURNING id, board_id, period),
         versions AS (
           INSERT INTO board_periods (board_id, period, version)
           SELECT board_id, period, max(id) FROM ins GROUP BY board_id, period
           ON CONFLICT (board_id, period) DO UPDATE
           SET version = greatest(board_periods.version, EXCLUDED.version))
         SELECT id FROM ins",
    )
    .bind(&players)
    .bind(&jtis)
    .bind(&actions)
    .bind(&points)
    .bind(&after)
    .bind(&regions)
    .bind(&requests)
    .bind(&boards)
    .bind(&periods)
    .fetch_all(&mut *tx)
    .await
    .context("appending score events")?;
    // Ids come from one sequence in insertion order, which is `ord`; sorting states it.
    let mut ids: Vec<i64> = ids.into_iter().map(|(id,)| id).collect();
    ids.sort_unstable();
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
        sqlx::query(
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
    let mut out: HashMap<&str, i64> = HashMap::new();
    for (e, id) in events.iter().zip(ids) {
        let v = out.entry(e.board.as_str()).or_default();
        *v = (*v).max(*id);
    }
    out
}

/// The last changing event of each (board, player): the entry's new value and version.
fn last_changes<'a>(
    events: &'a [Event<'a>],
    ids: &[i64],
) -> HashMap<(&'a str, &'a str), (i64, i64)> {
    let mut last = HashMap::new();
    for (e, id) in events.iter().zip(ids).filter(|(e, _)| e.changed) {
        last.insert(
            (e.board.as_str(), e.update.player.as_str()),
            (e.value_after, *id),
        );
    }
    last
}

/// Writes the changed entries, with the rank key of their board's order.
async fn set_entries(
    tx: &mut PgConnection,
    events: &[Event<'_>],
    ids: &[i64],
    defs: &[BoardDef],
) -> anyhow::Result<()> {
    let order: HashMap<&str, Order> = defs.iter().map(|d| (d.id.as_str(), d.order)).collect();
    let period: HashMap<&str, &str> = events
        .iter()
        .map(|e| (e.board.as_str(), e.period))
        .collect();
    let changes = last_changes(events, ids);
    if changes.is_empty() {
        return Ok(());
    }
    let (mut boards, mut periods, mut players) = (Vec::new(), Vec::new(), Vec::new());
    let (mut values, mut keys, mut versions) = (Vec::new(), Vec::new(), Vec::new());
    for ((b, p), (value, version)) in &changes {
        boards.push(*b);
        periods.push(period[b]);
        players.push(*p);
        values.push(*value);
        keys.push(order[b].rank_key(*value));
        versions.push(*version);
    }
    sqlx::query(
        "INSERT INTO entries (board_id, period, player_id, value, rank_key, reached_version)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[])
         ON CONFLICT (board_id, period, player_id) DO UPDATE
         SET value = EXCLUDED.value, rank_key = EXCLUDED.rank_key,
             reached_version = EXCLUDED.reached_version, reached_at = now()",
    )
    .bind(&boards)
    .bind(&periods)
    .bind(&players)
    .bind(&values)
    .bind(&keys)
    .bind(&versions)
    .execute(&mut *tx)
    .await
    .context("setting entries")?;
    Ok(())
}

/// The boards the batch touched, each with the rows of the entries it named as they are after
/// the batch (banned players are off every board, so they have no row).
fn touched_boards(read: &Read, events: &[Event<'_>], ids: &[i64]) -> Vec<Touched> {
    let changes = last_changes(events, ids);
    let mut out: Vec<Touched> = Vec::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
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
                    snapshot: None,
                });
                out.len() - 1
            }
        };
        out[i].changed |= e.changed;
        if read.banned.contains(player) || !seen.insert((board, player)) {
            continue;
        }
        let key = (board.to_owned(), player.to_owned());
        let Some(&(value, version)) = changes.get(&(board, player)).or(read.entries.get(&key))
        else {
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
            match d {
                Decision::Apply(_) => Outcome::Applied {
                    standings: u
                        .boards
                        .iter()
                        .map(|b| Standing {
                            board: b.clone(),
                            period: periods[b.as_str()].id.clone(),
                            score: value(b),
                            rank: 0,
                        })
                        .collect(),
                    version: first
                        .and_then(|b| versions.get(b.as_str()))
                        .copied()
                        .unwrap_or(0),
                },
                Decision::Replayed => Outcome::Replayed {
                    score: first.map(value).unwrap_or(0),
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
