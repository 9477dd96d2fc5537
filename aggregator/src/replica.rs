//! Where a read goes: the read replica (`DATABASE_REPLICA_URL`) while it answers, follows the
//! primary and is not far behind, else the primary. A read that must see what was just
//! written names the versions it needs, and goes to the replica only once it has replayed
//! that far. The aggregator never waits on the replica to start or to write.

use crate::db::Db;
use crate::jobs;
use sqlx::postgres::PgPoolOptions;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the replica is checked, and so how soon after a failure it is read again.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// A read waits this long for a replica connection before it goes to the primary instead.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// A replica further behind than this is not read: its lists would be visibly old.
pub(crate) const MAX_LAG: Duration = Duration::from_secs(30);

/// A connection a read runs on, from either pool.
pub(crate) type Conn = crate::db::Conn;

/// A (board, period) and the version a read of it must include.
pub(crate) type Floor<'a> = (&'a str, &'a str, i64);

/// The pools reads are served from.
#[derive(Debug)]
pub(crate) struct Reads {
    primary: Db,
    replica: Option<Replica>,
}

#[derive(Debug)]
struct Replica {
    pool: Db,
    /// Set by the last check; cleared at once by a read that found the replica gone.
    usable: AtomicBool,
}

/// What a check of the replica found.
enum Checked {
    Usable {
        lag_seconds: f64,
    },
    /// It answers, but is not a standby (promoted, or a wrong URL): it no longer follows the
    /// primary, so what it holds may differ from what was acknowledged.
    NotInRecovery,
    TooFarBehind {
        lag_seconds: f64,
    },
    Failed(sqlx::Error),
}

impl Reads {
    /// The primary for everything, or a replica besides it; connecting to the replica is lazy
    /// (a replica being rebuilt must not keep the aggregator from starting).
    /// The replica goes through a pooler when the primary does.
    pub(crate) fn new(
        primary: Db,
        replica_url: Option<&str>,
        max: u32,
        pooled: bool,
    ) -> sqlx::Result<Self> {
        let replica = match replica_url {
            None => None,
            Some(url) => Some(Replica {
                pool: Db::new(
                    PgPoolOptions::new()
                        .max_connections(max)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_lazy(url)?,
                    pooled,
                ),
                usable: AtomicBool::new(false),
            }),
        };
        Ok(Self { primary, replica })
    }

    /// `None` without a replica, else whether reads go to it now.
    pub(crate) fn replica_usable(&self) -> Option<bool> {
        self.replica
            .as_ref()
            .map(|r| r.usable.load(Ordering::Relaxed))
    }

    /// Runs `read` on the replica when it is usable and includes every `floor`, else (or when
    /// the replica fails meanwhile) on the primary. `read` may run twice: it only reads. (It
    /// takes its connection by value: a future borrowing it could not be proven `Send` for
    /// every lifetime, which axum's handlers need.)
    pub(crate) async fn read<T, F, Fut>(&self, floors: &[Floor<'_>], mut read: F) -> sqlx::Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = sqlx::Result<T>>,
    {
        if let Some(replica) = self.replica.as_ref() {
            if replica.usable.load(Ordering::Relaxed) {
                match replica.try_read(floors, &mut read).await {
                    Ok(Some(v)) => {
                        count("replica");
                        return Ok(v);
                    }
                    Ok(None) => count("primary_replica_behind"),
                    Err(e) if is_unavailable(&e) => {
                        replica.usable.store(false, Ordering::Relaxed);
                        metrics::gauge!("database_replica_up").set(0.0);
                        tracing::warn!(error = %e, "database error: the read replica failed; reading from the primary");
                        count("primary_replica_failed");
                    }
                    Err(e) => return Err(e),
                }
            } else {
                count("primary_replica_down");
            }
        } else {
            count("primary");
        }
        read(self.primary.conn().await?).await
    }

    /// Keeps the replica's state, `database_replica_up` and `database_replica_lag_seconds`
    /// current until shutdown; nothing to do without a replica.
    pub(crate) fn spawn_monitor(
        self: &std::sync::Arc<Self>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.replica.as_ref()?;
        let reads = self.clone();
        Some(jobs::every(CHECK_EVERY, shutdown, move || {
            let reads = reads.clone();
            async move {
                if let Some(r) = reads.replica.as_ref() {
                    r.record(r.check().await);
                }
            }
        }))
    }
}

impl Replica {
    /// `Ok(None)` when the replica has not replayed every floor yet.
    async fn try_read<T, Fut: Future<Output = sqlx::Result<T>>>(
        &self,
        floors: &[Floor<'_>],
        read: &mut impl FnMut(Conn) -> Fut,
    ) -> sqlx::Result<Option<T>> {
        let mut conn = self.pool.conn().await?;
        if !floors.is_empty() {
            let pairs: Vec<(&str, &str)> = floors.iter().map(|f| (f.0, f.1)).collect();
            // Replay only moves forward: once the versions are there, what follows sees them.
            let have = crate::board::sql::versions(&mut *conn, &pairs).await?;
            if have.iter().zip(floors).any(|(v, f)| *v < f.2) {
                return Ok(None);
            }
        }
        read(conn).await.map(Some)
    }

    async fn check(&self) -> Checked {
        let query = crate::db::query_as::<(bool, f64)>(
            "SELECT pg_is_in_recovery(),
                    CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                         ELSE coalesce(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
                    END::float8",
        )
        .fetch_one(&self.pool);
        match tokio::time::timeout(CHECK_TIMEOUT, query).await {
            Err(_) => Checked::Failed(sqlx::Error::PoolTimedOut),
            Ok(Err(e)) => Checked::Failed(e),
            Ok(Ok((false, _))) => Checked::NotInRecovery,
            Ok(Ok((true, lag_seconds))) if lag_seconds > MAX_LAG.as_secs_f64() => {
                Checked::TooFarBehind { lag_seconds }
            }
            Ok(Ok((true, lag_seconds))) => Checked::Usable { lag_seconds },
        }
    }

    /// Applies a check's finding, logging only the changes.
    fn record(&self, checked: Checked) {
        let usable = matches!(checked, Checked::Usable { .. });
        let was = self.usable.swap(usable, Ordering::Relaxed);
        metrics::gauge!("database_replica_up").set(if usable { 1.0 } else { 0.0 });
        match checked {
            Checked::Usable { lag_seconds } | Checked::TooFarBehind { lag_seconds } => {
                metrics::gauge!("database_replica_lag_seconds").set(lag_seconds);
            }
            _ => {}
        }
        if usable == was {
            return;
        }
        match checked {
            Checked::Usable { lag_seconds } => {
                tracing::info!(lag_seconds, "the read replica answers: reads go to it again")
            }
            Checked::NotInRecovery => tracing::error!(
                "database error: the read replica is not in recovery (promoted?): reading from the primary"
            ),
            Checked::TooFarBehind { lag_seconds } => tracing::warn!(
                lag_seconds,
                "the read replica is too far behind: reading from the primary"
            ),
            Checked::Failed(e) => tracing::warn!(
                error = %e,
                "database error: the read replica does not answer; reading from the primary"
            ),
        }
    }
}

/// Errors that say the server (not the query) is the problem: worth the primary's answer.
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // 08: connection exceptions; 57: shut down, starting up, crashed; 40001: a query
        // cancelled by a conflict with recovery, which the primary does not have.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57") || c == "40001"),
        _ => false,
    }
}

fn count(served_by: &'static str) {
    metrics::counter!("database_reads_total", "pool" => served_by).increment(1);
}
