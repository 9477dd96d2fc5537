//! Ranks without counting the board: an in-process, order-statistic copy of each board's
//! current period (the idea of Nakama's rank cache), so a batch's ranks cost a lookup per
//! player whatever the board's size when Redis cannot answer them (absent, down, rebuilding).
//! A count in PostgreSQL costs the rows ahead of the player, per player: at 100,000 players
//! that is seconds per batch.
//!
//! It is a cache of PostgreSQL, kept by three feeds: this instance's batches (the rows they
//! committed, as Redis gets them), the keeper task that loads a period it does not hold yet and
//! catches up every second on the events other instances committed (`score_events` after the
//! version it holds), and bans. Every write is guarded by the entry's version, so feeds may
//! overlap and arrive in any order. Until a period is loaded it answers nothing and the caller
//! counts in PostgreSQL.

use super::kind::Order;
use super::sql::{self, BoardRow, Changed};
use super::Boards;
use crate::db::Db;
use foldhash::HashMap;
use std::sync::Mutex;

/// One board's copy. A std Mutex: every operation is a few lookups, never across an await.
#[derive(Debug, Default)]
pub(crate) struct RankIndex {
    inner: Mutex<Ranked>,
}

/// The entries of one period of a board: their (rank key, version) in board order, and each
/// player's.
#[derive(Debug, Default)]
struct Ranked {
    period: String,
    /// Whether the period was loaded from PostgreSQL; before that, ranks are unknown.
    loaded: bool,
    /// Every event of the period up to this version is reflected (later ones may be too).
    as_of: i64,
    order: indexset::BTreeSet<(i64, i64)>,
    players: HashMap<Box<str>, (i64, i64)>,
}

impl Ranked {
    fn fresh(period: &str) -> Self {
        Self {
            period: period.to_owned(),
            ..Self::default()
        }
    }

    /// Sets a player's entry unless the copy already holds a newer one.
    fn put(&mut self, player: &str, key: i64, version: i64) {
        match self.players.get_mut(player) {
            Some(old) if old.1 >= version => {}
            Some(old) => {
                self.order.remove(&*old);
                *old = (key, version);
                self.order.insert((key, version));
            }
            None => {
                self.players.insert(player.into(), (key, version));
                self.order.insert((key, version));
            }
        }
    }

    fn remove(&mut self, player: &str) {
        if let Some(old) = self.players.remove(player) {
            self.order.remove(&old);
        }
    }

    /// 1-based rank of an entry of the board (the entries ahead of it, plus one).
    fn rank_of(&self, key: i64, version: i64) -> u64 {
        self.order.rank(&(key, version)) as u64 + 1
    }
}

impl RankIndex {
    /// Takes `rows` (a batch's committed entries of `period`) and answers their 1-based
    /// ranks, in order; `None` while the period is not loaded.
    pub(crate) fn ranks(&self, period: &str, order: Order, rows: &[BoardRow]) -> Option<Vec<u64>> {
        let r = self.taking(period, order, rows);
        // Each player's rank where the copy holds them: a row older than what it holds ranks
        // as the newer entry.
        r.loaded.then(|| {
            rows.iter()
                .map(|row| {
                    let (key, version) = r
                        .players
                        .get(row.player_id.as_str())
                        .copied()
                        .unwrap_or((order.rank_key(row.value), row.version));
                    r.rank_of(key, version)
                })
                .collect()
        })
    }

    /// Takes committed entries of `period` (an unbanned player's).
    pub(crate) fn put(&self, period: &str, order: Order, rows: &[BoardRow]) {
        drop(self.taking(period, order, rows));
    }

    /// Takes committed entries of `period`, and holds the copy for the caller.
    fn taking(
        &self,
        period: &str,
        order: Order,
        rows: &[BoardRow],
    ) -> std::sync::MutexGuard<'_, Ranked> {
        let mut r = self.inner.lock().expect("not poisoned");
        if r.period != period {
            // The board moved to a new period: the keeper loads it.
            *r = Ranked::fresh(period);
        }
        for row in rows {
            r.put(&row.player_id, order.rank_key(row.value), row.version);
        }
        r
    }

    /// A player's 1-based rank in `period`, when the index holds that period loaded and the
    /// player in it.
    pub(crate) fn rank_of(&self, period: &str, player: &str) -> Option<u64> {
        let r = self.inner.lock().expect("not poisoned");
        if r.period != period || !r.loaded {
            return None;
        }
        let (key, version) = *r.players.get(player)?;
        Some(r.rank_of(key, version))
    }

    /// Takes a banned player off the board.
    pub(crate) fn remove(&self, player: &str) {
        self.inner.lock().expect("not poisoned").remove(player);
    }

    /// The period held, whether it is loaded, and the version it is caught up to.
    fn state(&self) -> (String, bool, i64) {
        let r = self.inner.lock().expect("not poisoned");
        (r.period.clone(), r.loaded, r.as_of)
    }

    /// Installs a loaded copy of `period`; entries this instance's batches put meanwhile are
    /// kept where newer (the next catch-up brings everything after `loaded.as_of` anyway).
    fn install(&self, mut loaded: Ranked) {
        let mut r = self.inner.lock().expect("not poisoned");
        if r.period == loaded.period {
            let newer: Vec<(Box<str>, (i64, i64))> = r
                .players
                .iter()
                .filter(|(_, v)| v.1 > loaded.as_of)
                .map(|(p, v)| (p.clone(), *v))
                .collect();
            for (p, (key, version)) in newer {
                loaded.put(&p, key, version);
            }
        }
        *r = loaded;
    }

    /// Applies a catch-up read: entries changed in (`from`, `to`], and players banned since.
    fn catch_up(&self, period: &str, from: i64, to: i64, order: Order, changed: Vec<Changed>) {
        let mut r = self.inner.lock().expect("not poisoned");
        if r.period != period || r.as_of != from {
            return;
        }
        for (row, banned) in changed {
            if banned {
                r.remove(&row.player_id);
            } else {
                r.put(&row.player_id, order.rank_key(row.value), row.version);
            }
        }
        r.as_of = to;
    }
}

/// Entries read per round trip while loading a period.
const LOAD_CHUNK: i64 = 20_000;

/// Loads every non-banned entry of a board's period in pages; `as_of` is the version of the
/// first page, and the keeper's catch-up from it brings in whatever moved during the walk.
async fn load(db: &Db, board: &str, period: &str, order: Order) -> sqlx::Result<Ranked> {
    let mut conn = db.conn().await?;
    let mut ranked = Ranked::fresh(period);
    let mut walk = sql::Walk::new(board, period, order, LOAD_CHUNK);
    let mut first = None;
    while let Some((rows, version)) = walk.next(&mut conn).await? {
        first.get_or_insert(version);
        for r in &rows {
            ranked.put(&r.player_id, order.rank_key(r.value), r.version);
        }
    }
    ranked.as_of = first.unwrap_or(0);
    ranked.loaded = true;
    Ok(ranked)
}

/// One pass of the keeper: every live board's index loaded at its current period and caught
/// up with what other instances committed.
pub(crate) async fn keep(db: &Db, boards: &Boards) -> sqlx::Result<()> {
    for live in boards.all() {
        let period = live.period().id;
        let board = live.def.id.as_str();
        let (held, loaded, as_of) = live.ranks.state();
        if held != period || !loaded {
            let started = std::time::Instant::now();
            let ranked = load(db, board, &period, live.def.order).await?;
            let entries = ranked.players.len();
            live.ranks.install(ranked);
            tracing::info!(
                board,
                period,
                entries,
                seconds = started.elapsed().as_secs_f64(),
                "rank index loaded"
            );
            continue;
        }
        let (to, changed) = sql::changed_since(db, board, &period, as_of).await?;
        live.ranks
            .catch_up(&period, as_of, to, live.def.order, changed);
    }
    Ok(())
}

/// Keeps every board's rank index loaded and caught up, every second.
pub(crate) fn spawn(
    db: Db,
    boards: std::sync::Arc<Boards>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    crate::jobs::every(std::time::Duration::from_secs(1), shutdown, move || {
        let (db, boards) = (db.clone(), boards.clone());
        async move {
            if let Err(e) = keep(&db, &boards).await {
                tracing::debug!(error = %e, "rank index catch-up failed; trying again in a second");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(player: &str, value: i64, version: i64) -> BoardRow {
        BoardRow {
            player_id: player.into(),
            name: String::new(),
            value,
            version,
        }
    }

    fn loaded(period: &str) -> RankIndex {
        let index = RankIndex::default();
        let mut r = Ranked::fresh(period);
        r.loaded = true;
        index.install(r);
        index
    }

    #[test]
    fn ranks_follow_the_board_order_with_ties_to_the_earlier_version() {
        let index = loaded("all");
        let desc = Order::Desc;
        let ranks = index.ranks(
            "all",
            desc,
            &[row("a", 10, 1), row("b", 30, 2), row("c", 10, 3)],
        );
        assert_eq!(ranks, Some(vec![2, 1, 3]));
        // a moves past b; an older write of a arriving late changes nothing.
        assert_eq!(index.ranks("all", desc, &[row("a", 40, 4)]), Some(vec![1]));
        assert_eq!(index.ranks("all", desc, &[row("a", 5, 1)]), Some(vec![1]));
        index.remove("b");
        assert_eq!(index.ranks("all", desc, &[row("c", 10, 3)]), Some(vec![2]));
    }

    #[test]
    fn an_unloaded_or_new_period_answers_nothing_until_loaded() {
        let index = RankIndex::default();
        assert_eq!(index.ranks("all", Order::Asc, &[row("a", 1, 1)]), None);
        let index = loaded("2026-12-07");
        assert!(index
            .ranks("2026-12-07", Order::Asc, &[row("a", 1, 1)])
            .is_some());
        assert_eq!(
            index.ranks("2026-12-08", Order::Asc, &[row("a", 1, 2)]),
            None
        );
        assert_eq!(index.state(), ("2026-12-08".into(), false, 0));
    }

    #[test]
    fn a_load_keeps_entries_written_after_its_version_and_catch_up_is_fenced() {
        let index = RankIndex::default();
        index.ranks("all", Order::Desc, &[row("late", 50, 9)]);
        let mut r = Ranked::fresh("all");
        r.put("early", 20, 3);
        r.as_of = 5;
        r.loaded = true;
        index.install(r);
        assert_eq!(
            index.ranks("all", Order::Desc, &[row("early", 20, 3)]),
            Some(vec![2])
        );
        // A catch-up read from another version than the one held is not applied.
        let desc = Order::Desc;
        index.catch_up("all", 4, 8, desc, vec![(row("x", 100, 7), false)]);
        assert_eq!(index.state().2, 5);
        let changed = vec![(row("x", 100, 7), false), (row("late", 50, 9), true)];
        index.catch_up("all", 5, 8, desc, changed);
        assert_eq!(index.state().2, 8);
        assert_eq!(
            index.ranks("all", Order::Desc, &[row("x", 100, 7)]),
            Some(vec![1])
        );
        assert_eq!(
            index.ranks("all", Order::Desc, &[row("early", 20, 3)]),
            Some(vec![2])
        );
    }
}
