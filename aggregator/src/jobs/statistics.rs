//! The write path's tables get their first planner statistics as soon as they hold rows,
//! instead of when autovacuum first comes round (up to `autovacuum_naptime`, a minute by
//! default, and later on a busy server).
//!
//! Without statistics PostgreSQL guesses that a board and period select about one entry, and
//! the batch's read of its players' entries can go through the order index, scanning the whole
//! board once per player: a batch of 125 tokens on 3 boards spent 40–50 ms in that read on a
//! fresh database instead of 3 ms. Once a table has been analyzed, autovacuum keeps its
//! statistics current and this job leaves it alone.

use crate::db::Db;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The tables every batch reads or writes.
const TABLES: [&str; 5] = [
    "entries",
    "score_events",
    "consumed_tokens",
    "users",
    "sessions",
];
/// Rows written since creation after which a never-analyzed table is analyzed.
const FIRST_ANALYZE_AFTER: i64 = 500;
const EVERY: Duration = Duration::from_secs(2);

/// Analyzes the tables of [`TABLES`] that were never analyzed and have had at least
/// [`FIRST_ANALYZE_AFTER`] rows written; returns the ones it analyzed and whether every
/// table has statistics now.
pub(crate) async fn analyze_new_tables(db: &Db) -> sqlx::Result<(Vec<&'static str>, bool)> {
    let never: Vec<(String, i64)> = crate::db::query_as(
        "SELECT relname::text, n_mod_since_analyze FROM pg_stat_user_tables
         WHERE schemaname = current_schema() AND relname = ANY($1)
           AND last_analyze IS NULL AND last_autoanalyze IS NULL",
    )
    .bind(&TABLES[..])
    .fetch_all(db)
    .await?;
    let mut analyzed = Vec::new();
    for table in TABLES {
        if never
            .iter()
            .any(|(t, n)| t == table && *n >= FIRST_ANALYZE_AFTER)
        {
            // SKIP_LOCKED: another instance (or autovacuum) analyzing it now is as good.
            crate::db::query(&format!("ANALYZE (SKIP_LOCKED) {table}"))
                .execute(db)
                .await?;
            analyzed.push(table);
        }
    }
    let all = never.len() == analyzed.len();
    Ok((analyzed, all))
}

pub(crate) fn spawn(
    db: Db,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let done = Arc::new(AtomicBool::new(false));
    super::every(EVERY, shutdown, move || {
        let (db, done) = (db.clone(), done.clone());
        async move {
            if done.load(Ordering::Relaxed) {
                return;
            }
            match analyze_new_tables(&db).await {
                Ok((analyzed, all)) => {
                    if !analyzed.is_empty() {
                        tracing::info!(tables = ?analyzed, "first statistics gathered");
                    }
                    done.store(all, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "database error: analyzing new tables"),
            }
        }
    })
}
