//! Closing a period: once a period of a board that resets has ended by the database's clock,
//! its final standings (the top `results_size`) are written to `period_results` and its
//! `period.closed` event is queued in the outbox for every webhook endpoint, in one
//! transaction under the writers' lock, so no batch is still writing the period. Every
//! instance tries; the results' primary key lets one succeed. A period nobody scored in has no
//! results and no event.

use super::schedule::Window;
use super::{sql, BoardDef, Boards};
use crate::apply::lock_writers;
use crate::db::Db;
use anyhow::Context;
use chrono::{DateTime, Utc};
use scoreboard_protocol::snapshot::LeaderboardEntry;
use scoreboard_protocol::BoardId;
use serde::Serialize;
use sqlx::PgConnection;

/// The event announcing a closed period (DESIGN.md, "Period results").
#[derive(Debug, Serialize)]
pub(crate) struct PeriodClosed<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: String,
    board: &'a str,
    period: &'a str,
    starts_at: String,
    ends_at: String,
    standings: &'a [LeaderboardEntry],
}

/// Closes every ended period that has events and no results yet; returns `<board>/<period>`
/// of each one this call closed.
pub(crate) async fn close_ended(
    db: &Db,
    boards: &Boards,
    endpoints: &[String],
) -> anyhow::Result<Vec<String>> {
    // Per board that resets, its periods with events after its newest closed one (periods
    // close in order): index range scans, however many periods are behind.
    let pending: Vec<(String, String)> = crate::db::query_as(
        "SELECT b.id, bp.period FROM boards b
         CROSS JOIN LATERAL (
           SELECT period FROM board_periods bp
           WHERE bp.board_id = b.id AND bp.period <> 'all'
             AND bp.period > coalesce((SELECT max(r.period) FROM period_results r WHERE r.board_id = b.id), '')
           ORDER BY period LIMIT 20) bp
         WHERE b.reset <> 'never'
         ORDER BY bp.period",
    )
    .fetch_all(db)
    .await
    .context("reading periods without results")?;
    let now = chrono::Utc::now();
    let mut closed = Vec::new();
    for (board, period) in pending {
        let Some(live) = boards.get(&board) else {
            continue;
        };
        let Some(window) = live.def.schedule.window_starting(&period) else {
            tracing::error!(
                board,
                period,
                "a period with events is not one of its board's schedule"
            );
            continue;
        };
        // Not over by this clock: not worth the writers' lock (the database's clock decides).
        if window.ends_at > now {
            continue;
        }
        if close(db, &live.def, &period, window, endpoints).await? {
            closed.push(format!("{board}/{period}"));
        }
    }
    Ok(closed)
}

/// Closes one period if it has ended and nobody closed it first.
async fn close(
    db: &Db,
    def: &BoardDef,
    period: &str,
    window: Window,
    endpoints: &[String],
) -> anyhow::Result<bool> {
    let mut tx = db.begin().await?;
    lock_writers(&mut tx).await?;
    let ended: bool = crate::db::query_scalar("SELECT clock_timestamp() >= $1")
        .bind(window.ends_at)
        .fetch_one(&mut *tx)
        .await?;
    if !ended || !write_results(&mut tx, def, period, window, endpoints).await? {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// Why `close-period` closed nothing.
#[derive(Debug)]
pub(crate) enum CloseNow {
    NotFound,
    NeverResets,
    JustBegan,
    Database(sqlx::Error),
}

impl From<sqlx::Error> for CloseNow {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

/// Ends `board`'s current period at the database's now: writes its results and queues its
/// event, and starts the next period there, all under the writers' lock and audited. Returns
/// the period closed.
pub(crate) async fn close_now(
    db: &Db,
    board: &BoardId,
    endpoints: &[String],
    request_id: &str,
) -> Result<Window, CloseNow> {
    let mut tx = db.begin().await?;
    lock_writers(&mut tx).await?;
    let def = sql::load_defs_of(&mut *tx, &[board.as_str()])
        .await?
        .pop()
        .ok_or(CloseNow::NotFound)?;
    // Whole seconds, as period ids are: the next period's id is this instant.
    let now: DateTime<Utc> =
        crate::db::query_scalar("SELECT date_trunc('second', clock_timestamp())")
            .fetch_one(&mut *tx)
            .await?;
    let current = def.schedule.window_at(now).ok_or(CloseNow::NeverResets)?;
    if current.starts_at >= now {
        return Err(CloseNow::JustBegan);
    }
    let closed = Window {
        starts_at: current.starts_at,
        ends_at: now,
    };
    let period = closed.period().id;
    if !write_results(&mut tx, &def, &period, closed, endpoints).await? {
        return Err(CloseNow::JustBegan);
    }
    crate::db::query("UPDATE boards SET period_started_at = $2, updated_at = now() WHERE id = $1")
        .bind(board.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    crate::db::query(
        "INSERT INTO admin_audit (action, detail, request_id) VALUES ('close-period', $1, $2)",
    )
    .bind(
        serde_json::json!({ "board": board, "period": period, "ends_at": closed.period().ends_at }),
    )
    .bind(request_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(closed)
}

/// Writes a period's results and queues its event for every endpoint, unless it has results
/// already; returns whether it wrote them.
async fn write_results(
    tx: &mut PgConnection,
    def: &BoardDef,
    period: &str,
    window: Window,
    endpoints: &[String],
) -> sqlx::Result<bool> {
    let board = def.id.as_str();
    let standings = sql::standings(&mut *tx, board, period, def.results_size.into()).await?;
    let p = window.period();
    let event = PeriodClosed {
        kind: "period.closed",
        id: format!("{board}/{period}"),
        board,
        period,
        starts_at: p.starts_at.unwrap_or_default(),
        ends_at: p.ends_at.unwrap_or_default(),
        standings: &standings,
    };
    let body = serde_json::to_string(&event).expect("events serialize");
    let written = crate::db::query(
        "INSERT INTO period_results (board_id, period, starts_at, ends_at, standings, event)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6) ON CONFLICT DO NOTHING",
    )
    .bind(board)
    .bind(period)
    .bind(window.starts_at)
    .bind(window.ends_at)
    .bind(serde_json::to_string(&standings).expect("entries serialize"))
    .bind(&body)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if written == 0 {
        return Ok(false);
    }
    crate::db::query(
        "INSERT INTO outbox (event_id, endpoint, body)
         SELECT $1, endpoint, $3 FROM UNNEST($2::text[]) AS endpoint ON CONFLICT DO NOTHING",
    )
    .bind(&event.id)
    .bind(endpoints)
    .bind(&body)
    .execute(&mut *tx)
    .await?;
    tracing::info!(event = event.id, winners = standings.len(), "period closed");
    Ok(true)
}
