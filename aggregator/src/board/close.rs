//! Closing a period: once a period of a board that resets has ended by the database's clock,
//! its final standings (the top `results_size`) are written to `period_results` and its
//! `period.closed` event is queued in the outbox for every webhook endpoint, in one
//! transaction under the writers' lock, so no batch is still writing the period. Every
//! instance tries; the results' primary key lets one succeed. A period nobody scored in has no
//! results and no event.

use super::schedule::Window;
use super::{sql, BoardDef, Boards};
use crate::apply::lock_writers;
use anyhow::Context;
use scoreboard_protocol::snapshot::LeaderboardEntry;
use serde::Serialize;
use sqlx::PgPool;

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
    db: &PgPool,
    boards: &Boards,
    endpoints: &[String],
) -> anyhow::Result<Vec<String>> {
    let pending: Vec<(String, String)> = sqlx::query_as(
        "SELECT bp.board_id, bp.period FROM board_periods bp
         WHERE bp.period <> 'all' AND NOT EXISTS
               (SELECT 1 FROM period_results r WHERE r.board_id = bp.board_id AND r.period = bp.period)
         ORDER BY bp.period",
    )
    .fetch_all(db)
    .await
    .context("reading periods without results")?;
    let mut closed = Vec::new();
    for (board, period) in pending {
        let Some(live) = boards.get(&board) else {
            continue;
        };
        let Some(window) = live.def.schedule.window_starting(&period) else {
            continue;
        };
        if close(db, &live.def, &period, window, endpoints).await? {
            closed.push(format!("{board}/{period}"));
        }
    }
    Ok(closed)
}

/// Closes one period if it has ended and nobody closed it first.
async fn close(
    db: &PgPool,
    def: &BoardDef,
    period: &str,
    window: Window,
    endpoints: &[String],
) -> anyhow::Result<bool> {
    let mut tx = db.begin().await?;
    lock_writers(&mut tx).await?;
    let ended: bool = sqlx::query_scalar("SELECT clock_timestamp() >= $1")
        .bind(window.ends_at)
        .fetch_one(&mut *tx)
        .await?;
    if !ended {
        return Ok(false);
    }
    let board = def.id.as_str();
    let standings = sql::standings(&mut tx, board, period, def.results_size.into()).await?;
    let written = sqlx::query(
        "INSERT INTO period_results (board_id, period, starts_at, ends_at, standings)
         VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT DO NOTHING",
    )
    .bind(board)
    .bind(period)
    .bind(window.starts_at)
    .bind(window.ends_at)
    .bind(serde_json::to_string(&standings)?)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if written == 0 {
        return Ok(false);
    }
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
    let body = serde_json::to_string(&event)?;
    sqlx::query(
        "INSERT INTO outbox (event_id, endpoint, body)
         SELECT $1, endpoint, $3 FROM UNNEST($2::text[]) AS endpoint ON CONFLICT DO NOTHING",
    )
    .bind(&event.id)
    .bind(endpoints)
    .bind(&body)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(event = event.id, winners = standings.len(), "period closed");
    Ok(true)
}
