//! The SQL of one batch, in one transaction: take the writers' lock, read what the decision
//! needs, let [`plan`](super::plan) decide, then write what it decided — consumed tokens,
//! score events, totals, audit rows — and read the snapshot the commit will publish.

use super::plan::{self, Ask, Decision, Facts, Plan};
use super::{Outcome, Source, Update};
use crate::board::{sql, BoardRow};
use anyhow::Context;
use scoreboard_protocol::snapshot::Snapshot;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

/// Key of the advisory lock every score writer takes (any constant; "SCOREBRD" in ASCII).
/// Writers serialise on it so event ids commit in order, which makes "snapshot version V
/// includes every event <= V" true across instances.
const WRITER_LOCK: i64 = 0x5343_4F52_4542_5244;

/// A committed batch: each request's outcome (ranks still to fill in), the rows it changed,
/// and the snapshot it produced (`None` when nothing was applied).
#[derive(Debug)]
pub(super) struct Committed {
    pub(super) outcomes: Vec<Outcome>,
    pub(super) rows: Vec<BoardRow>,
    pub(super) snapshot: Option<Snapshot>,
}

/// Applies one batch in one transaction.
pub(super) async fn commit(db: &PgPool, updates: &[&Update]) -> anyhow::Result<Committed> {
    let mut tx = db
        .begin()
        .await
        .context("beginning the batch transaction")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut *tx)
        .await
        .context("taking the writers' lock")?;
    let (facts, names) = read_facts(&mut tx, updates).await?;
    let asks: Vec<Ask<'_>> = updates.iter().map(|u| u.ask()).collect();
    let plan = plan::plan(&asks, &facts);
    let applied: Vec<(&Update, i64)> = updates
        .iter()
        .zip(&plan.decisions)
        .filter_map(|(u, d)| match d {
            Decision::Apply { score_after } => Some((*u, *score_after)),
            _ => None,
        })
        .collect();
    if applied.is_empty() {
        tx.commit().await.context("committing the batch")?;
        return Ok(Committed {
            outcomes: outcomes(updates, &plan, 0),
            rows: Vec::new(),
            snapshot: None,
        });
    }
    consume_tokens(&mut tx, &applied).await?;
    let ids = append_events(&mut tx, &applied).await?;
    audit_adjustments(&mut tx, &applied, &ids).await?;
    let rows = board_rows(&applied, &ids, &names);
    set_totals(&mut tx, &rows).await?;
    let snapshot = sql::load_snapshot(&mut tx)
        .await
        .context("reading the new top 10")?;
    tx.commit().await.context("committing the batch")?;
    let version = ids.iter().copied().max().unwrap_or(0);
    Ok(Committed {
        outcomes: outcomes(updates, &plan, version),
        rows,
        snapshot: Some(snapshot),
    })
}

#[derive(sqlx::FromRow)]
struct FactsRow {
    exists: bool,
    banned: bool,
    revoked: bool,
    consumed: bool,
    score: Option<i64>,
    name: Option<String>,
}

/// Who exists, who is banned, which sessions are revoked, which tokens were redeemed, and
/// the current totals and names: one row per update, in order, in one round trip.
async fn read_facts(
    tx: &mut PgConnection,
    updates: &[&Update],
) -> anyhow::Result<(Vec<Facts>, HashMap<String, String>)> {
    let players: Vec<&str> = updates.iter().map(|u| u.player.as_str()).collect();
    let sessions: Vec<Option<&str>> = updates.iter().map(|u| u.source.session_jti()).collect();
    let jtis: Vec<Option<&str>> = updates.iter().map(|u| u.source.jti()).collect();
    let rows: Vec<FactsRow> = sqlx::query_as(
        "SELECT u.player_id IS NOT NULL AS exists, u.banned_at IS NOT NULL AS banned,
                s.revoked_at IS NOT NULL AS revoked, c.jti IS NOT NULL AS consumed,
                sc.score, u.name
         FROM UNNEST($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS p(player_id, session_jti, jti, ord)
         LEFT JOIN users u ON u.player_id = p.player_id
         LEFT JOIN sessions s ON s.jti = p.session_jti
         LEFT JOIN consumed_tokens c ON c.jti = p.jti
         LEFT JOIN scores sc ON sc.player_id = p.player_id
         ORDER BY p.ord",
    )
    .bind(&players)
    .bind(&sessions)
    .bind(&jtis)
    .fetch_all(&mut *tx)
    .await
    .context("reading players, sessions and tokens")?;
    let mut names = HashMap::new();
    let facts = rows
        .into_iter()
        .zip(&players)
        .map(|(r, p)| {
            if let Some(n) = r.name {
                names.insert((*p).to_owned(), n);
            }
            Facts {
                exists: r.exists,
                banned: r.banned,
                revoked: r.revoked,
                consumed: r.consumed,
                score: r.score.unwrap_or(0),
            }
        })
        .collect();
    Ok((facts, names))
}

/// Records the applied tokens as redeemed. The plan already knows none was; the primary key
/// is the last word all the same: a conflict here fails the whole batch rather than apply a
/// token twice.
async fn consume_tokens(tx: &mut PgConnection, applied: &[(&Update, i64)]) -> anyhow::Result<()> {
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

/// Appends one score event per applied update, in request order; returns their ids (the
/// versions), in the same order.
async fn append_events(
    tx: &mut PgConnection,
    applied: &[(&Update, i64)],
) -> anyhow::Result<Vec<i64>> {
    let players: Vec<&str> = applied.iter().map(|(u, _)| u.player.as_str()).collect();
    let jtis: Vec<Option<&str>> = applied.iter().map(|(u, _)| u.source.jti()).collect();
    let actions: Vec<&str> = applied.iter().map(|(u, _)| u.source.action()).collect();
    let points: Vec<i64> = applied.iter().map(|(u, _)| u.points).collect();
    let after: Vec<i64> = applied.iter().map(|(_, s)| *s).collect();
    let regions: Vec<Option<&str>> = applied
        .iter()
        .map(|(u, _)| u.source.edge_region())
        .collect();
    let requests: Vec<&str> = applied.iter().map(|(u, _)| u.request_id.as_str()).collect();
    let ids: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO score_events (player_id, jti, action, pts, score_after, edge_region, request_id)
         SELECT player_id, jti, action, pts, score_after, edge_region, request_id
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])
              WITH ORDINALITY AS e(player_id, jti, action, pts, score_after, edge_region, request_id, ord)
         ORDER BY ord
         RETURNING id",
    )
    .bind(&players)
    .bind(&jtis)
    .bind(&actions)
    .bind(&points)
    .bind(&after)
    .bind(&regions)
    .bind(&requests)
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
    applied: &[(&Update, i64)],
    ids: &[i64],
) -> anyhow::Result<()> {
    for ((u, _), id) in applied.iter().zip(ids) {
        let Source::Adjustment { reason } = &u.source else {
            continue;
        };
        sqlx::query(
            "INSERT INTO admin_audit (action, player_id, detail, request_id) VALUES ('adjust', $1, $2, $3)",
        )
        .bind(u.player.as_str())
        .bind(json!({"points": u.points, "reason": reason, "event_id": id}))
        .bind(&u.request_id)
        .execute(&mut *tx)
        .await
        .context("auditing an adjustment")?;
    }
    Ok(())
}

/// The board row each changed player ends the batch with: their last event's total and id.
fn board_rows(
    applied: &[(&Update, i64)],
    ids: &[i64],
    names: &HashMap<String, String>,
) -> Vec<BoardRow> {
    let mut last: HashMap<&str, (i64, i64)> = HashMap::new();
    for ((u, score), id) in applied.iter().zip(ids) {
        last.insert(u.player.as_str(), (*score, *id));
    }
    last.into_iter()
        .map(|(p, (score, version))| BoardRow {
            player_id: p.to_owned(),
            name: names.get(p).cloned().unwrap_or_default(),
            score,
            version,
        })
        .collect()
}

async fn set_totals(tx: &mut PgConnection, rows: &[BoardRow]) -> anyhow::Result<()> {
    let players: Vec<&str> = rows.iter().map(|r| r.player_id.as_str()).collect();
    let scores: Vec<i64> = rows.iter().map(|r| r.score).collect();
    let versions: Vec<i64> = rows.iter().map(|r| r.version).collect();
    sqlx::query(
        "INSERT INTO scores (player_id, score, reached_version)
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])
         ON CONFLICT (player_id) DO UPDATE
         SET score = EXCLUDED.score, reached_version = EXCLUDED.reached_version, reached_at = now()",
    )
    .bind(&players)
    .bind(&scores)
    .bind(&versions)
    .execute(&mut *tx)
    .await
    .context("setting totals")?;
    Ok(())
}

/// Each request's outcome from the plan; `version` is the batch's newest event id. Answers
/// carry the player's total after the whole batch (the freshest thing we know).
fn outcomes(updates: &[&Update], plan: &Plan, version: i64) -> Vec<Outcome> {
    updates
        .iter()
        .zip(&plan.decisions)
        .map(|(u, d)| {
            let score = plan.totals.get(u.player.as_str()).copied().unwrap_or(0);
            match d {
                Decision::Apply { .. } => Outcome::Applied {
                    score,
                    rank: 0,
                    version,
                },
                Decision::Replayed => Outcome::Replayed { score },
                Decision::Banned => Outcome::Banned,
                Decision::Unauthenticated => Outcome::Unauthenticated,
                Decision::UnknownPlayer => Outcome::UnknownPlayer,
                Decision::OutOfRange => Outcome::OutOfRange,
            }
        })
        .collect()
}
