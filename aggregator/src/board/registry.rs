//! The boards this instance knows, each with its live snapshot and rank index. Loaded from PostgreSQL at
//! start-up and kept current by the poller (another instance may have created or changed a
//! board). The write path never trusts this copy: a batch reads the definitions of its boards
//! in its own transaction.

use super::kind::BoardDef;
use super::ranks::RankIndex;
use super::{sql, Board};
use crate::db::Db;
use scoreboard_protocol::snapshot::{BoardSnapshot, PeriodRef};
use scoreboard_protocol::BoardId;
use sqlx::PgConnection;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// One board: its definition, its live snapshot and its rank index.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    pub(crate) def: Arc<BoardDef>,
    pub(crate) board: Board,
    pub(crate) ranks: Arc<RankIndex>,
}

impl Live {
    /// The period the board shows now.
    pub(crate) fn period(&self) -> PeriodRef {
        self.board.current().snapshot.period.clone()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Boards {
    /// A std lock: held only to clone an entry in or out, never across an await.
    map: RwLock<BTreeMap<BoardId, Live>>,
}

impl Boards {
    /// Every board with its current snapshot, from PostgreSQL.
    pub(crate) async fn load(db: &Db) -> sqlx::Result<Self> {
        let boards = Self::default();
        let mut conn = db.conn().await?;
        for def in sql::load_defs(&mut *conn).await? {
            boards.take(&mut conn, def).await?;
        }
        Ok(boards)
    }

    /// Takes a board's definition as PostgreSQL has it: a known board keeps its live snapshot
    /// and subscribers; a new one starts from its current snapshot.
    pub(crate) async fn take(&self, db: &mut PgConnection, def: BoardDef) -> sqlx::Result<Live> {
        if let Some(live) = self.redefine(&def) {
            return Ok(live);
        }
        let period = def.period_at(crate::clock::now_millis() as i64);
        let snapshot = sql::load_snapshot(db, &def, &period).await?;
        Ok(self.add(def, snapshot))
    }

    /// A board, public or not.
    pub(crate) fn get(&self, id: &str) -> Option<Live> {
        self.map.read().expect("not poisoned").get(id).cloned()
    }

    /// Every board, in id order.
    pub(crate) fn all(&self) -> Vec<Live> {
        self.map
            .read()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// The `global` board, which the aliases serve. It exists from the first migration and
    /// cannot be removed.
    pub(crate) fn global(&self) -> Board {
        self.get(BoardId::GLOBAL)
            .map(|l| l.board)
            .expect("the global board exists")
    }

    /// Takes a changed definition of a known board (its live snapshot and subscribers stay);
    /// `None` when the board is new here.
    fn redefine(&self, def: &BoardDef) -> Option<Live> {
        let mut map = self.map.write().expect("not poisoned");
        let live = map.get_mut(&def.id)?;
        if *live.def != *def {
            live.def = Arc::new(def.clone());
        }
        Some(live.clone())
    }

    /// Adds a board with its first snapshot (a board another call added first stays).
    fn add(&self, def: BoardDef, snapshot: BoardSnapshot) -> Live {
        let mut map = self.map.write().expect("not poisoned");
        map.entry(def.id.clone())
            .or_insert_with(|| Live {
                def: Arc::new(def),
                board: Board::new(snapshot),
                ranks: Arc::default(),
            })
            .clone()
    }

    /// Offers a snapshot to its board; snapshots of boards this instance does not know yet are
    /// dropped (the poller will load the board).
    pub(crate) fn offer(&self, snapshot: BoardSnapshot) -> bool {
        match self.get(snapshot.board.as_str()) {
            Some(live) => live.board.offer(snapshot),
            None => false,
        }
    }
}
