//! The rebuild of the Redis boards from PostgreSQL (at start-up, after an outage, on an
//! operator's request). Each board is walked in pages into keys beside its live ones, so the
//! live board keeps serving (or Redis keeps being skipped) while it runs, and no single call
//! grows with the board; the walk is fenced by the version it began at and caught up from the
//! event log, then the built keys are swapped in, and what committed meanwhile is replayed.

use super::scripts::{member, upsert_args};
use super::{Cache, Mode};
use crate::board::sql::{self, BoardRow, Changed};
use crate::board::{BoardDef, Boards};
use crate::db::Db;
use anyhow::Context;
use foldhash::HashSet;
use std::time::{Duration, Instant};

/// Entries per page: one PostgreSQL read and one Redis call each.
const PAGE: i64 = 5_000;
/// How long one page's Redis call may take (a page, not the board: no limit grows with it).
const PAGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Swaps a built board in. KEYS: the five live keys, then the five built ones. A live key is
/// unlinked (freed in the background, however large) and the built one renamed over it; a
/// built key that does not exist (an empty board) leaves no live key.
pub(super) const SWAP: &str = r#"
for i = 1, 5 do
  redis.call('UNLINK', KEYS[i])
  if redis.call('EXISTS', KEYS[i + 5]) == 1 then redis.call('RENAME', KEYS[i + 5], KEYS[i]) end
end
return 1
"#;

/// Raises a version key to ARGV[1] if that is higher. KEYS: the key.
const RAISE: &str = "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end return 1";

impl Cache {
    /// Rebuilds every board's current period from PostgreSQL and marks the cache healthy;
    /// one rebuild at a time. Returns the number of entries written.
    pub(crate) async fn rebuild(&self, db: &Db, boards: &Boards) -> anyhow::Result<usize> {
        let _one = self.rebuilding.lock().await;
        metrics::counter!("redis_rebuilds_started_total").increment(1);
        self.set_mode(Mode::Rebuilding);
        let started = Instant::now();
        let built = self.rebuild_all(db, boards).await;
        let seconds = started.elapsed().as_secs_f64();
        match &built {
            Ok(entries) => {
                metrics::counter!("redis_rebuilds_finished_total").increment(1);
                metrics::histogram!("redis_rebuild_duration_seconds").record(seconds);
                tracing::info!(entries, seconds, "Redis boards rebuilt from PostgreSQL");
            }
            Err(_) => {
                metrics::counter!("redis_rebuilds_failed_total").increment(1);
                self.set_mode(if self.is_healthy() {
                    Mode::Healthy
                } else {
                    Mode::Degraded
                });
            }
        }
        built
    }

    async fn rebuild_all(&self, db: &Db, boards: &Boards) -> anyhow::Result<usize> {
        let mut built = Vec::new();
        let mut written = 0;
        for live in boards.all() {
            let period = live.period().id;
            let (n, fence) = self.build_board(db, &live.def, &period).await?;
            written += n;
            built.push((live.def, period, fence));
        }
        for (def, period, _) in &built {
            self.swap_in(def.id.as_str(), period).await?;
        }
        // This instance's batches write to Redis again from here; the catch-up below, read
        // after that, replays whatever committed before it (ours that skipped Redis, other
        // instances' lost to the swap). Only then are Redis's reads and ranks trusted.
        self.accept_writes();
        for (def, period, fence) in &built {
            let (_, changed) = sql::changed_since(db, def.id.as_str(), period, *fence).await?;
            let keys = self.board_keys(def.id.as_str(), period);
            self.write_changed(&keys, def, changed)
                .await
                .context("catching up after the swap")?;
        }
        self.recovered();
        Ok(written)
    }

    /// Builds one board's period beside its live keys; returns the entries walked and the
    /// version the built keys hold every event up to.
    async fn build_board(
        &self,
        db: &Db,
        def: &BoardDef,
        period: &str,
    ) -> anyhow::Result<(usize, i64)> {
        let board = def.id.as_str();
        let keys = self.rebuild_keys(board, period);
        let clear = keys.clone();
        self.raw_call("clearing a rebuild", |mut c| async move {
            redis::cmd("UNLINK")
                .arg(&clear)
                .query_async::<()>(&mut c)
                .await
        })
        .await?;
        let mut conn = db.conn().await?;
        let mut walk = sql::Walk::new(board, period, def.order, PAGE);
        let (mut fence, mut walked) = (None, 0);
        // The players written so far: one the walk meets again (it moved between two pages)
        // goes through the version-guarded script, which takes its first place out.
        let mut seen: HashSet<String> = HashSet::default();
        while let Some((rows, version)) = walk.next(&mut conn).await? {
            fence.get_or_insert(version);
            let (fresh, again): (Vec<BoardRow>, Vec<BoardRow>) = rows
                .into_iter()
                .partition(|r| seen.insert(r.player_id.clone()));
            walked += fresh.len();
            self.write_page(&keys, def, &fresh).await?;
            self.write_rows(&keys, def, &again).await?;
        }
        drop(conn);
        // Entries that moved during the walk (from a page not yet read to one already read)
        // were missed: every one of them has an event after the fence.
        let (to, changed) = sql::changed_since(db, board, period, fence.unwrap_or(0)).await?;
        self.write_changed(&keys, def, changed).await?;
        tracing::debug!(board, period, entries = walked, "Redis board built");
        Ok((walked, to))
    }

    /// The keys a board is built in: the live ones with `:rebuild`, in the same hash slot.
    fn rebuild_keys(&self, board: &str, period: &str) -> Vec<String> {
        self.board_keys(board, period)
            .iter()
            .map(|k| format!("{k}:rebuild"))
            .collect()
    }

    async fn swap_in(&self, board: &str, period: &str) -> anyhow::Result<()> {
        let mut keys: Vec<String> = self.board_keys(board, period).into();
        keys.extend(self.rebuild_keys(board, period));
        self.raw_call("swapping a rebuilt board in", |mut c| async move {
            let mut inv = self.scripts.swap.prepare_invoke();
            for k in &keys {
                inv.key(k);
            }
            inv.invoke_async::<i64>(&mut c).await
        })
        .await?;
        Ok(())
    }

    /// Writes a page of players not yet written into the built `keys` with one multi-element
    /// command per key (several times cheaper for Redis than a script call per row: the
    /// rebuild shares the machine with the writers).
    async fn write_page(
        &self,
        keys: &[String],
        def: &BoardDef,
        rows: &[BoardRow],
    ) -> anyhow::Result<()> {
        let Some(top) = rows.iter().map(|r| r.version).max() else {
            return Ok(());
        };
        self.raw_call("writing a rebuilt page", |mut c| async move {
            let mut pipe = redis::pipe();
            let mut z = redis::cmd("ZADD");
            z.arg(&keys[0]);
            let (mut members, mut names, mut versions) =
                (redis::cmd("HSET"), redis::cmd("HSET"), redis::cmd("HSET"));
            members.arg(&keys[1]);
            names.arg(&keys[2]);
            versions.arg(&keys[3]);
            for r in rows {
                let m = member(&r.player_id, r.version);
                z.arg(def.order.rank_key(r.value)).arg(&m);
                members.arg(&r.player_id).arg(m);
                names.arg(&r.player_id).arg(&r.name);
                versions.arg(&r.player_id).arg(r.version);
            }
            pipe.add_command(z).ignore();
            pipe.add_command(members).ignore();
            pipe.add_command(names).ignore();
            pipe.add_command(versions).ignore();
            // The built board's newest version only grows (pages come in board order).
            pipe.cmd("EVAL")
                .arg(RAISE)
                .arg(1)
                .arg(&keys[4])
                .arg(top)
                .ignore();
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Writes rows into a board's `keys` (version-guarded, as every write is).
    async fn write_rows(
        &self,
        keys: &[String],
        def: &BoardDef,
        rows: &[BoardRow],
    ) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        self.raw_call("writing a rebuilt page", |mut c| async move {
            let mut inv = self.scripts.upsert.prepare_invoke();
            for k in keys {
                inv.key(k);
            }
            upsert_args(&mut inv, def.order, rows);
            inv.invoke_async::<Vec<Option<i64>>>(&mut c).await
        })
        .await?;
        Ok(())
    }

    /// Replays entries read from the event log into `keys`: rows written, banned players
    /// removed.
    async fn write_changed(
        &self,
        keys: &[String],
        def: &BoardDef,
        changed: Vec<Changed>,
    ) -> anyhow::Result<()> {
        let (banned, rows): (Vec<Changed>, Vec<Changed>) = changed.into_iter().partition(|c| c.1);
        for chunk in rows.chunks(PAGE as usize) {
            let rows: Vec<BoardRow> = chunk.iter().map(|c| c.0.clone()).collect();
            self.write_rows(keys, def, &rows).await?;
        }
        for (row, _) in banned {
            self.raw_call("removing a banned player", |mut c| async move {
                let mut inv = self.scripts.remove.prepare_invoke();
                for k in keys {
                    inv.key(k);
                }
                inv.arg(&row.player_id).invoke_async::<i64>(&mut c).await
            })
            .await?;
        }
        Ok(())
    }

    /// One call whatever the cache's health (a rebuild runs while it is unhealthy), with a
    /// page's time limit; a failure is the rebuild's to report.
    pub(super) async fn raw_call<T, F, Fut>(&self, what: &str, f: F) -> anyhow::Result<T>
    where
        F: FnOnce(super::Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await.context("Redis is not reachable")?;
        tokio::time::timeout(PAGE_TIMEOUT, f(conn))
            .await
            .with_context(|| format!("{what}: timed out"))?
            .with_context(|| what.to_owned())
    }
}
