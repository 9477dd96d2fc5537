//! The database handle: PostgreSQL directly, or through a pooler in transaction mode
//! (PgBouncer's `pool_mode = transaction`, `DATABASE_POOLER=transaction`), which lends a
//! server connection for one transaction at a time and then gives it to another client.
//!
//! Behind such a pooler two things that are safe on a direct connection break:
//! - a named prepared statement lives on the server connection it was prepared on, which the
//!   next transaction may not get (and another client's `sqlx_s_1` may be there already), so
//!   statements are unnamed: every query of the crate is built by [`query`], [`query_as`] or
//!   [`query_scalar`] (clippy refuses `sqlx::query` and its kin elsewhere);
//! - sqlx parses a statement in one exchange and binds and runs it in a second, and between
//!   two exchanges outside a transaction the pooler may switch servers, so every query runs
//!   inside a transaction: [`Db`] wraps a lone query in one, and [`Db::conn`] hands out a
//!   connection inside one for several reads.
//!
//! Locks are transaction-level (`pg_advisory_xact_lock`) everywhere, which a transaction
//! pooler keeps for exactly as long as they are held. Migrations take a session-level lock and
//! so run over `DATABASE_MIGRATION_URL`, a direct connection or a session-mode pool.

use futures_util::{StreamExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Either, Execute, Executor, PgConnection, PgPool, Postgres, Transaction};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once any pool of this process goes through a transaction pooler. Process-wide because
/// a statement's persistence is chosen where the query is built, far from any pool; unnamed
/// statements are merely one round trip slower on a direct connection, so a process with
/// both kinds of pool (tests) stays correct.
static UNNAMED: AtomicBool = AtomicBool::new(false);

fn persistent() -> bool {
    !UNNAMED.load(Ordering::Relaxed)
}

/// `sqlx::query`, prepared as a named statement unless a pooler forbids it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn query(sql: &str) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    sqlx::query(sql).persistent(persistent())
}

/// `sqlx::query_as`, as [`query`].
#[allow(clippy::disallowed_methods)]
pub(crate) fn query_as<O>(sql: &str) -> sqlx::query::QueryAs<'_, Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, PgRow>,
{
    sqlx::query_as(sql).persistent(persistent())
}

/// `sqlx::query_scalar`, as [`query`].
#[allow(clippy::disallowed_methods)]
pub(crate) fn query_scalar<O>(sql: &str) -> sqlx::query::QueryScalar<'_, Postgres, O, PgArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(persistent())
}

/// A pool, and whether it goes through a transaction pooler.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pool: PgPool,
    pooled: bool,
}

/// A connection for several statements: inside a transaction behind a pooler (rolled back
/// when dropped: it only reads), a plain pooled connection otherwise.
#[derive(Debug)]
pub(crate) enum Conn {
    Plain(PoolConnection<Postgres>),
    InTransaction(Transaction<'static, Postgres>),
}

impl Db {
    pub(crate) fn new(pool: PgPool, pooled: bool) -> Self {
        if pooled {
            UNNAMED.store(true, Ordering::Relaxed);
        }
        Self { pool, pooled }
    }

    /// The pool itself, for what begins its own transaction (`begin`, `begin_with`) or owns
    /// the pool (closing it).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn begin(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.pool.begin().await
    }

    /// A connection for several reads (see [`Conn`]).
    pub(crate) async fn conn(&self) -> sqlx::Result<Conn> {
        Ok(if self.pooled {
            Conn::InTransaction(self.pool.begin().await?)
        } else {
            Conn::Plain(self.pool.acquire().await?)
        })
    }
}

impl Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Plain(c) => c,
            Conn::InTransaction(t) => t,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Plain(c) => c,
            Conn::InTransaction(t) => t,
        }
    }
}

type Step = Either<PgQueryResult, PgRow>;

/// A lone query on the pool: as it is, or behind a pooler inside a transaction of its own.
impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> futures_util::stream::BoxStream<'e, sqlx::Result<Step>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooled {
            return self.pool.fetch_many(query);
        }
        let pool = self.pool.clone();
        futures_util::stream::once(async move {
            let mut tx = pool.begin().await?;
            let steps: Vec<Step> = tx.fetch_many(query).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(futures_util::stream::iter(steps.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> futures_util::future::BoxFuture<'e, sqlx::Result<Option<PgRow>>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if !self.pooled {
            return self.pool.fetch_optional(query);
        }
        let pool = self.pool.clone();
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            let row = tx.fetch_optional(query).await?;
            tx.commit().await?;
            Ok(row)
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [PgTypeInfo],
    ) -> futures_util::future::BoxFuture<'e, sqlx::Result<PgStatement<'q>>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> futures_util::future::BoxFuture<'e, sqlx::Result<sqlx::Describe<Postgres>>>
    where
        'c: 'e,
    {
        self.pool.describe(sql)
    }
}
