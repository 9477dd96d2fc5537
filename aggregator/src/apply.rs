//! Exactly-once score application through a group-commit batcher.
//!
//! Requests wait in a bounded queue; one task takes up to `APPLY_BATCH_MAX` of them (waiting
//! at most `APPLY_BATCH_WAIT_US` for the batch to fill) and applies them in one transaction:
//! the `consumed_tokens` insert decides, per token, whether this is the first redemption, and
//! only those append a `score_events` row and move `scores`. Each request is answered with its
//! own outcome after the commit. Writers serialise on an advisory lock so event ids commit in
//! order, which makes "snapshot version V includes every event <= V" true across instances.

use crate::board::{self, Board};
use crate::cache::{BoardRow, Cache};
use anyhow::Context;
use scoreboard_protocol::action::ActionClaims;
use scoreboard_protocol::snapshot::Snapshot;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Key of the advisory lock every score writer takes (any constant; "SCOREBRD" in ASCII).
pub const WRITER_LOCK: i64 = 0x5343_4F52_4542_5244;

/// Totals stay within ±2^53 so they are exact as Redis scores (doubles).
pub const MAX_TOTAL: i64 = 1 << 53;

/// One validated update waiting to be applied.
#[derive(Debug)]
pub struct ApplyRequest {
    pub claims: ActionClaims,
    /// The session's `jti`, to refuse revoked sessions in the same transaction.
    pub session_jti: String,
    pub edge_region: String,
    pub request_id: String,
    pub reply: oneshot::Sender<Outcome>,
}

/// What happened to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        score: i64,
        rank: u64,
        version: i64,
    },
    /// The token was redeemed before; `score` is the player's current total.
    Replayed {
        score: i64,
    },
    Banned,
    /// The session was revoked (logout), or its player no longer exists.
    Unauthenticated,
    /// Applying would take the total beyond ±2^53.
    OutOfRange,
    /// The database failed; nothing of this request was applied.
    Unavailable,
}

/// The sending side, held by the HTTP handlers.
#[derive(Debug, Clone)]
pub struct Applier {
    tx: mpsc::Sender<ApplyRequest>,
}

/// Why a request could not even be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    QueueFull,
    ShuttingDown,
}

impl Applier {
    pub fn try_submit(&self, req: ApplyRequest) -> Result<(), SubmitError> {
        self.tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
        })
    }
}

/// Updates that may wait for the batcher; beyond this a request gets `503` at once, which
/// bounds memory and tells the edge to retry elsewhere or later.
pub const QUEUE_CAPACITY: usize = 8192;

/// Settings of the batcher.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    pub max: usize,
    pub wait: Duration,
    /// Queue length; beyond it requests get `503` at once rather than waiting unboundedly.
    pub queue: usize,
}

/// Starts the batcher task. It ends when every `Applier` is dropped and the queue is drained,
/// which is how shutdown flushes it.
pub fn spawn(
    db: PgPool,
    board: Board,
    cache: Option<Arc<Cache>>,
    settings: BatchSettings,
) -> (Applier, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.queue.max(1));
    let handle = tokio::spawn(run(db, board, cache, settings, rx));
    (Applier { tx }, handle)
}

async fn run(
    db: PgPool,
    board: Board,
    cache: Option<Arc<Cache>>,
    settings: BatchSettings,
    mut rx: mpsc::Receiver<ApplyRequest>,
) {
    let mut batch = Vec::with_capacity(settings.max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + settings.wait;
        while batch.len() < settings.max {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(r)) => batch.push(r),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
        metrics::histogram!("apply_batch_size").record(batch.len() as f64);
        let started = Instant::now();
        let reqs = std::mem::take(&mut batch);
        let n = reqs.len();
        match apply_batch(&db, &reqs).await {
            Ok(mut done) => {
                finish(&db, cache.as_deref(), &board, &reqs, &mut done).await;
                for (req, outcome) in reqs.into_iter().zip(done.outcomes) {
                    let _ = req.reply.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(
                    error = format!("{err:#}"),
                    batch = n,
                    "database error: a batch was not applied"
                );
                for req in reqs {
                    let _ = req.reply.send(Outcome::Unavailable);
                }
            }
        }
        metrics::histogram!("apply_batch_duration_seconds").record(started.elapsed().as_secs_f64());
    }
}

/// What the batch needs to know about each request's player and session.
#[derive(sqlx::FromRow)]
struct Check {
    ord: i64,
    exists: bool,
    banned: bool,
    revoked: bool,
    score: Option<i64>,
    name: Option<String>,
}

/// Applies one batch in one transaction; returns each request's outcome (same order) and the
/// new snapshot when anything was applied.
async fn apply_batch(db: &PgPool, reqs: &[ApplyRequest]) -> anyhow::Result<Batch> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; reqs.len()];
    let mut tx = db
        .begin()
        .await
        .context("beginning the batch transaction")?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(&mut *tx)
        .await?;

    // Who exists, who is banned, which sessions are revoked, and current totals.
    let players: Vec<String> = reqs.iter().map(|r| r.claims.sub.to_string()).collect();
    let sessions: Vec<String> = reqs.iter().map(|r| r.session_jti.clone()).collect();
    let checks: Vec<Check> = sqlx::query_as(
        "SELECT p.ord, u.player_id IS NOT NULL AS exists, u.banned_at IS NOT NULL AS banned,
                s.revoked_at IS NOT NULL AS revoked, sc.score, u.name
         FROM UNNEST($1::text[], $2::text[]) WITH ORDINALITY AS p(player_id, session_jti, ord)
         LEFT JOIN users u ON u.player_id = p.player_id
         LEFT JOIN sessions s ON s.jti = p.session_jti
         LEFT JOIN scores sc ON sc.player_id = p.player_id",
    )
    .bind(&players)
    .bind(&sessions)
    .fetch_all(&mut *tx)
    .await?;
    let mut current: HashMap<String, i64> = HashMap::new();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut eligible = Vec::new();
    let mut banned = Vec::new();
    let mut seen_jti = HashSet::new();
    for Check {
        ord,
        exists,
        banned: is_banned,
        revoked,
        score,
        name,
    } in checks
    {
        let i = (ord - 1) as usize;
        current.insert(players[i].clone(), score.unwrap_or(0));
        if let Some(n) = name {
            names.insert(players[i].clone(), n);
        }
        if !exists || revoked {
            outcomes[i] = Some(Outcome::Unauthenticated);
        } else if !seen_jti.insert(reqs[i].claims.jti.as_str()) {
            // The same token twice in one batch: the later copy is a replay of the first,
            // answered after the first is known to be applied.
            outcomes[i] = Some(Outcome::Replayed { score: 0 });
        } else if is_banned {
            banned.push(i);
        } else {
            eligible.push(i);
        }
    }

    // Replay is checked before the ban: a banned player's already-used token is a replay.
    if !banned.is_empty() {
        let jtis: Vec<&str> = banned
            .iter()
            .map(|&i| reqs[i].claims.jti.as_str())
            .collect();
        let used: HashSet<String> =
            sqlx::query_scalar("SELECT jti FROM consumed_tokens WHERE jti = ANY($1)")
                .bind(&jtis)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
        for i in banned {
            outcomes[i] = Some(if used.contains(&reqs[i].claims.jti) {
                Outcome::Replayed {
                    score: current[&players[i]],
                }
            } else {
                Outcome::Banned
            });
        }
    }

    // Refuse, before consuming anything, what would overflow the total.
    let mut running = current.clone();
    eligible.retain(|&i| {
        let total = running
            .get_mut(&players[i])
            .expect("every player was looked up");
        match total.checked_add(reqs[i].claims.pts) {
            Some(t) if t.abs() <= MAX_TOTAL => {
                *total = t;
                true
            }
            _ => {
                outcomes[i] = Some(Outcome::OutOfRange);
                false
            }
        }
    });

    // The decision: first redemption or replay.
    let jtis: Vec<&str> = eligible
        .iter()
        .map(|&i| reqs[i].claims.jti.as_str())
        .collect();
    let owners: Vec<&str> = eligible.iter().map(|&i| players[i].as_str()).collect();
    let expiries: Vec<chrono::DateTime<chrono::Utc>> = eligible
        .iter()
        .map(|&i| chrono::DateTime::from_timestamp(reqs[i].claims.exp, 0).unwrap_or_default())
        .collect();
    let inserted: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO consumed_tokens (jti, player_id, expires_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])
         ON CONFLICT (jti) DO NOTHING RETURNING jti",
    )
    .bind(&jtis)
    .bind(&owners)
    .bind(&expiries)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();

    let mut applied = Vec::new();
    for i in eligible {
        if inserted.contains(&reqs[i].claims.jti) {
            applied.push(i);
        } else {
            outcomes[i] = Some(Outcome::Replayed { score: 0 });
        }
    }

    // Events in request order, each with the total it produced.
    let mut totals = current.clone();
    let mut ev_player = Vec::with_capacity(applied.len());
    let mut ev_jti = Vec::with_capacity(applied.len());
    let mut ev_action = Vec::with_capacity(applied.len());
    let mut ev_pts = Vec::with_capacity(applied.len());
    let mut ev_after = Vec::with_capacity(applied.len());
    let mut ev_region = Vec::with_capacity(applied.len());
    let mut ev_request = Vec::with_capacity(applied.len());
    for &i in &applied {
        let c = &reqs[i].claims;
        let t = totals.get_mut(&players[i]).expect("looked up");
        *t += c.pts;
        ev_player.push(players[i].as_str());
        ev_jti.push(c.jti.as_str());
        ev_action.push(c.act.as_str());
        ev_pts.push(c.pts);
        ev_after.push(*t);
        ev_region.push(reqs[i].edge_region.as_str());
        ev_request.push(reqs[i].request_id.as_str());
    }
    let mut snapshot = None;
    let mut version = 0;
    let mut rows = Vec::new();
    if !applied.is_empty() {
        let ids: Vec<(i64, String)> = sqlx::query_as(
            "INSERT INTO score_events (player_id, jti, action, pts, score_after, edge_region, request_id)
             SELECT player_id, jti, action, pts, score_after, edge_region, request_id
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[])
                  WITH ORDINALITY AS e(player_id, jti, action, pts, score_after, edge_region, request_id, ord)
             ORDER BY ord
             RETURNING id, jti",
        )
        .bind(&ev_player)
        .bind(&ev_jti)
        .bind(&ev_action)
        .bind(&ev_pts)
        .bind(&ev_after)
        .bind(&ev_region)
        .bind(&ev_request)
        .fetch_all(&mut *tx)
        .await?;
        let id_of: HashMap<&str, i64> = ids.iter().map(|(id, j)| (j.as_str(), *id)).collect();
        // The last event of each player sets its total and the version it was reached at.
        let mut last: HashMap<&str, i64> = HashMap::new();
        for &i in &applied {
            let id = id_of[reqs[i].claims.jti.as_str()];
            last.insert(players[i].as_str(), id);
            version = version.max(id);
        }
        rows = last
            .iter()
            .map(|(p, v)| BoardRow {
                player_id: (*p).to_owned(),
                name: names.get(*p).cloned().unwrap_or_default(),
                score: totals[*p],
                version: *v,
            })
            .collect();
        let up_players: Vec<&str> = rows.iter().map(|r| r.player_id.as_str()).collect();
        let up_scores: Vec<i64> = rows.iter().map(|r| r.score).collect();
        let up_versions: Vec<i64> = rows.iter().map(|r| r.version).collect();
        sqlx::query(
            "INSERT INTO scores (player_id, score, reached_version)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[])
             ON CONFLICT (player_id) DO UPDATE
             SET score = EXCLUDED.score, reached_version = EXCLUDED.reached_version, reached_at = now()",
        )
        .bind(&up_players)
        .bind(&up_scores)
        .bind(&up_versions)
        .execute(&mut *tx)
        .await?;
        snapshot = Some(board::load_snapshot(&mut tx).await?);
    }
    tx.commit().await.context("committing the batch")?;

    let outcomes = outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| match o {
            Some(Outcome::Replayed { .. }) => Outcome::Replayed {
                score: totals[&players[i]],
            },
            Some(o) => o,
            None => Outcome::Applied {
                score: totals[&players[i]],
                rank: 0,
                version,
            },
        })
        .collect();
    Ok(Batch {
        outcomes,
        rows,
        snapshot,
    })
}

/// A committed batch: each request's outcome (ranks still to fill in), the rows it changed,
/// and the snapshot it produced.
struct Batch {
    outcomes: Vec<Outcome>,
    rows: Vec<BoardRow>,
    snapshot: Option<Snapshot>,
}

/// After the commit: copy the absolute scores to Redis (which also answers the ranks), fill
/// in ranks from PostgreSQL when Redis cannot, and publish the snapshot locally and to the
/// other instances.
async fn finish(
    db: &PgPool,
    cache: Option<&Cache>,
    board: &Board,
    reqs: &[ApplyRequest],
    done: &mut Batch,
) {
    if done.rows.is_empty() {
        return;
    }
    let mut ranks: HashMap<String, u64> = HashMap::new();
    if let Some(cache) = cache {
        if let Some(r) = cache.upsert(&done.rows).await {
            for (row, rank) in done.rows.iter().zip(r) {
                ranks.insert(row.player_id.clone(), rank);
            }
        }
    }
    if ranks.is_empty() {
        let rows: Vec<(String, i64, i64)> = done
            .rows
            .iter()
            .map(|r| (r.player_id.clone(), r.score, r.version))
            .collect();
        match board::ranks_of(db, &rows).await {
            Ok(r) => ranks.extend(r),
            Err(e) => tracing::error!(error = %e, "database error: computing ranks"),
        }
    }
    for (req, outcome) in reqs.iter().zip(done.outcomes.iter_mut()) {
        if let Outcome::Applied { rank, .. } = outcome {
            *rank = ranks.get(req.claims.sub.as_str()).copied().unwrap_or(0);
        }
    }
    if let Some(s) = done.snapshot.take() {
        metrics::gauge!("leaderboard_version").set(s.version as f64);
        if let Some(cache) = cache {
            if let Ok(json) = serde_json::to_string(&s) {
                cache.publish(&json).await;
            }
        }
        board.offer(s);
    }
}
