//! The batcher task: takes updates from the queue in batches, commits each batch through
//! [`write`](super::write), then copies the touched boards' rows to Redis (which also answers
//! the ranks) while it reads the changed boards' top 10s, announces them, and answers every
//! request with its own outcome; that last part of a batch overlaps the next batch's commit.

use super::phases::{self, Phases};
use super::write::{self, Committed, Touched};
use super::{Applier, BatchSettings, Outcome, Pulse, Update};
use crate::board::{sql, BoardDef, Boards};
use crate::cache::pubsub::{announce, Replace};
use crate::cache::Cache;
use crate::db::Db;
use foldhash::HashMap;
use scoreboard_protocol::snapshot::{BoardSnapshot, PeriodRef};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

type Queued = (Update, oneshot::Sender<Outcome>);

/// What a batch needs besides its updates.
struct Sinks {
    db: Db,
    boards: Arc<Boards>,
    cache: Option<Arc<Cache>>,
}

/// Starts the batcher task. It ends when every [`Applier`] is dropped and the queue is
/// drained, which is how shutdown flushes it.
pub(crate) fn spawn(
    db: Db,
    boards: Arc<Boards>,
    cache: Option<Arc<Cache>>,
    settings: BatchSettings,
) -> (Applier, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(settings.queue.max(1));
    let sinks = Sinks { db, boards, cache };
    let pulse = Arc::new(Pulse::new());
    let applier = Applier {
        tx,
        pulse: pulse.clone(),
        admit_wait: settings.admit_wait,
    };
    (applier, tokio::spawn(run(sinks, settings, rx, pulse)))
}

async fn run(
    sinks: Sinks,
    settings: BatchSettings,
    mut rx: mpsc::Receiver<Queued>,
    pulse: Arc<Pulse>,
) {
    let sinks = Arc::new(sinks);
    let mut batch = Vec::with_capacity(settings.max);
    // The batch after the commit (Redis, announcements, answers) runs while the next batch
    // commits: the transaction is what must be serial, and this takes its share of the
    // serial path off it. One at a time, in commit order, so Redis and the announcements see
    // batches in the order of their versions.
    let mut finishing: Option<JoinHandle<()>> = None;
    loop {
        pulse.idle();
        let Some(first) = rx.recv().await else { break };
        pulse.busy();
        phases::record("queue", first.0.queued_at.elapsed());
        let mut phases = Phases::start();
        batch.push(first);
        fill(&mut batch, &mut rx, settings).await;
        phases.mark("fill");
        metrics::histogram!("apply_batch_size").record(batch.len() as f64);
        let started = Instant::now();
        let (updates, replies): (Vec<Update>, Vec<_>) =
            std::mem::take(&mut batch).into_iter().unzip();
        let committed = commit(&sinks, &updates, &mut phases).await;
        if let Some(previous) = finishing.take() {
            finished(previous).await;
        }
        phases.mark("previous");
        let sinks = Arc::clone(&sinks);
        finishing = Some(tokio::spawn(async move {
            let outcomes = match committed {
                Some(done) => finish(&sinks, &updates, done, &mut phases).await,
                None => vec![Outcome::Unavailable; updates.len()],
            };
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
            phases.mark("answers");
            metrics::histogram!("apply_batch_duration_seconds")
                .record(started.elapsed().as_secs_f64());
        }));
    }
    if let Some(last) = finishing {
        finished(last).await;
    }
}

/// Waits for a batch's finish. One that panicked has answered nobody (they get `503`) though
/// its batch committed: said loudly, and the batcher goes on.
async fn finished(finishing: JoinHandle<()>) {
    if let Err(err) = finishing.await {
        tracing::error!(
            error = %err,
            "a committed batch's finish failed: its requests were answered 503"
        );
    }
}

/// Adds what is queued to `batch`, waiting at most `settings.wait` for more, up to
/// `settings.max`. Without a wait (the default) the timer is not asked at all: it ticks in
/// milliseconds, so even an elapsed deadline cost the batch about one (BENCHMARKS.md).
async fn fill(batch: &mut Vec<Queued>, rx: &mut mpsc::Receiver<Queued>, settings: BatchSettings) {
    let deadline = tokio::time::Instant::now() + settings.wait;
    while batch.len() < settings.max {
        match rx.try_recv() {
            Ok(r) => batch.push(r),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if settings.wait.is_zero() => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

/// Commits one batch; on a database error (logged here) nothing of the batch was applied and
/// every update is unavailable.
async fn commit(sinks: &Sinks, updates: &[Update], phases: &mut Phases) -> Option<Committed> {
    let refs: Vec<&Update> = updates.iter().collect();
    let now_ms = crate::clock::now_millis() as i64;
    match write::commit(&sinks.db, &sinks.boards, &refs, now_ms, phases).await {
        Ok(committed) => Some(committed),
        Err(err) => {
            let request_ids: Vec<&str> = updates.iter().map(|u| u.request_id.as_str()).collect();
            tracing::error!(
                error = format!("{err:#}"),
                batch = updates.len(),
                requestIds = %request_ids.join(","),
                "database error: a batch was not applied"
            );
            None
        }
    }
}

/// After the commit: copy each touched board's rows to Redis (which also answers the ranks),
/// fill in ranks from PostgreSQL when Redis cannot, and announce the boards that changed.
async fn finish(
    sinks: &Sinks,
    updates: &[Update],
    done: Committed,
    phases: &mut Phases,
) -> Vec<Outcome> {
    let Committed {
        mut outcomes,
        touched,
    } = done;
    // The boards' Redis writes go out together (one connection multiplexes them), and the
    // changed boards' top 10s are read from PostgreSQL meanwhile.
    let (all_ranks, snapshots) = futures_util::future::join(
        futures_util::future::join_all(touched.iter().map(|t| ranks_on(sinks, t))),
        snapshots_of_changed(sinks, &touched),
    )
    .await;
    phases.mark("redis");
    let mut ranks: HashMap<(&str, &str), u64> = HashMap::default();
    for (t, board_ranks) in touched.iter().zip(&all_ranks) {
        for (row, rank) in t.rows.iter().zip(board_ranks) {
            ranks.insert((t.def.id.as_str(), row.player_id.as_str()), *rank);
        }
    }
    for (u, outcome) in updates.iter().zip(outcomes.iter_mut()) {
        match outcome {
            Outcome::Applied { standings, .. } => {
                for s in standings {
                    let key = (s.board.as_str(), u.player.as_str());
                    s.rank = ranks.get(&key).copied().unwrap_or(0);
                }
            }
            // Not written by the batch: where the rank index has the player.
            Outcome::Replayed { standings } => {
                for s in standings {
                    let live = sinks.boards.get(s.board.as_str());
                    let rank = live.and_then(|l| l.ranks.rank_of(&s.period, u.player.as_str()));
                    s.rank = rank.unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    drop(ranks);
    for s in snapshots {
        announce(sinks.cache.as_deref(), &sinks.boards, s, Replace::IfNewer).await;
    }
    phases.mark("announce");
    outcomes
}

/// The top 10s of the boards whose entries changed, read after the commit in one statement
/// with each board's version (so they may already include a later batch: fresher, and
/// labelled with what they include). Off the serial path: the next batch commits meanwhile,
/// and the finishes run one at a time in commit order, so what is announced only grows. On
/// a database error nothing is announced; the board's next change announces it.
async fn snapshots_of_changed(sinks: &Sinks, touched: &[Touched]) -> Vec<BoardSnapshot> {
    let changed: Vec<(&BoardDef, &PeriodRef)> = touched
        .iter()
        .filter(|t| t.changed)
        .map(|t| (&t.def, &t.period))
        .collect();
    if changed.is_empty() {
        return Vec::new();
    }
    let read = async {
        let mut conn = sinks.db.conn().await?;
        sql::load_snapshots(&mut conn, &changed).await
    };
    read.await
        .inspect_err(
            |e| tracing::error!(error = %e, "database error: reading the changed boards' top 10"),
        )
        .unwrap_or_default()
}

/// The ranks of a touched board's rows after writing them to Redis, or from the board's rank
/// index when Redis cannot answer, or counted in PostgreSQL while the index is loading (then
/// they may already count the next batch, which commits meanwhile: fresher, never older);
/// empty when none can (the answers then say rank 0).
async fn ranks_on(sinks: &Sinks, t: &Touched) -> Vec<u64> {
    if t.rows.is_empty() {
        return Vec::new();
    }
    // The rank index takes every batch, so it is current when Redis fails.
    let indexed = sinks
        .boards
        .get(t.def.id.as_str())
        .and_then(|live| live.ranks.ranks(&t.period.id, t.def.order, &t.rows));
    if let Some(cache) = sinks.cache.as_deref() {
        if let Some(r) = cache.upsert(&t.def, &t.period.id, &t.rows).await {
            return r;
        }
    }
    if let Some(r) = indexed {
        return r;
    }
    // Only until the index has loaded the board's period (seconds after start-up or a reset).
    sql::ranks_of(
        &sinks.db,
        t.def.id.as_str(),
        &t.period.id,
        t.def.order,
        &t.rows,
    )
    .await
    .inspect_err(|e| tracing::error!(error = %e, "database error: computing ranks"))
    .unwrap_or_default()
}
