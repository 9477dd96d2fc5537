//! The public board reads: `GET /api/leaderboard` (the alias of `global`, answered from the
//! shared bytes the board keeps: the hottest read, a reference count and no copy), the board
//! list, a board's snapshot, its keyset-paged entries and its closed periods. Pages come from
//! Redis when it answers, else from PostgreSQL, with the same order, ranks and cursor.

use super::extract::Params;
use crate::board::pages::{self, Cursor, Entry};
use crate::board::registry::Live;
use crate::board::sql;
use crate::error::{AppError, Result};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use scoreboard_protocol::snapshot::{LeaderboardEntry, PeriodRef};
use scoreboard_protocol::{BoardId, ErrorCode};
use serde::{Deserialize, Serialize};

const JSON: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "application/json")];

pub(crate) async fn leaderboard(State(state): State<AppState>) -> Response {
    let frame = state.boards.global().current();
    let body = frame
        .alias
        .as_ref()
        .map(|a| a.1.clone())
        .unwrap_or_else(|| frame.body.clone());
    (JSON, body).into_response()
}

/// A board players may see, by the id in the path. A board created on another instance a
/// moment ago is looked up in PostgreSQL rather than called unknown.
pub(crate) async fn public_board(state: &AppState, id: &str) -> Result<Live> {
    let not_found = || AppError::code(ErrorCode::BoardNotFound);
    let id = BoardId::parse(id).map_err(|_| not_found())?;
    if let Some(live) = state.boards.get(id.as_str()) {
        return live.def.public.then_some(live).ok_or_else(not_found);
    }
    let def = sql::load_defs_of(&state.db, &[id.as_str()])
        .await?
        .pop()
        .ok_or_else(not_found)?;
    let live = state.boards.take(&mut *state.db.conn().await?, def).await?;
    live.def.public.then_some(live).ok_or_else(not_found)
}

#[derive(Debug, Deserialize)]
pub(crate) struct PeriodQuery {
    period: Option<String>,
}

/// The period a read asks for.
#[derive(Debug)]
pub(crate) struct Asked {
    pub(crate) period: PeriodRef,
    /// The board's current period, which Redis and the live snapshot hold; a past one is read
    /// from PostgreSQL, where it stays unchanged.
    pub(crate) current: bool,
}

/// The current period unless `?period=` names a past one of the board's schedule (its start
/// instant, as periods are listed; it reads empty if nobody scored in it); anything else,
/// future periods included, is `404 PERIOD_NOT_FOUND`.
pub(crate) fn period_of(live: &Live, asked: Option<&str>) -> Result<Asked> {
    let current = live.period();
    let id = match asked {
        Some(id) if id != current.id => id,
        _ => {
            return Ok(Asked {
                period: current,
                current: true,
            })
        }
    };
    let past =
        past_period(live, &current, id).ok_or_else(|| AppError::code(ErrorCode::PeriodNotFound))?;
    Ok(Asked {
        period: past,
        current: false,
    })
}

/// The board's period whose id is `id`, if it is one of its schedule's and before `current`.
fn past_period(live: &Live, current: &PeriodRef, id: &str) -> Option<PeriodRef> {
    let p = live.def.schedule.window_starting(id)?.period();
    current.is_after(&p).then_some(p)
}

/// One board in the list.
#[derive(Debug, Serialize)]
pub(crate) struct BoardInfo {
    id: BoardId,
    title: String,
    order: &'static str,
    operator: &'static str,
    reset: String,
    timezone: String,
    period: PeriodRef,
    next_reset_at: Option<String>,
}

pub(crate) fn info(live: &Live) -> BoardInfo {
    let d = &live.def;
    BoardInfo {
        id: d.id.clone(),
        title: d.title.clone(),
        order: d.order.as_str(),
        operator: d.operator.as_str(),
        reset: d.schedule.reset().to_owned(),
        timezone: d.schedule.timezone().to_owned(),
        period: live.period(),
        next_reset_at: live.period().ends_at,
    }
}

/// `GET /api/boards`: the public boards, in id order.
pub(crate) async fn list(State(state): State<AppState>) -> Json<serde_json::Value> {
    let boards: Vec<BoardInfo> = state
        .boards
        .all()
        .iter()
        .filter(|l| l.def.public)
        .map(info)
        .collect();
    Json(serde_json::json!({ "boards": boards }))
}

/// `GET /api/boards/{id}`: the board's current snapshot, from the shared bytes.
pub(crate) async fn snapshot(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<PeriodQuery>,
) -> Result<Response> {
    let live = public_board(&state, &id).await?;
    let asked = period_of(&live, q.period.as_deref())?;
    if asked.current {
        return Ok((JSON, live.board.current().body.clone()).into_response());
    }
    let (def, period) = (&*live.def, &asked.period);
    let mut past = state
        .reads
        .read(&[], |mut db| async move {
            sql::load_snapshot(&mut db, def, period).await
        })
        .await?;
    past.next_reset_at = live.period().ends_at;
    Ok(Json(past).into_response())
}

#[derive(Debug, Deserialize)]
pub(crate) struct EntriesQuery {
    limit: Option<String>,
    after: Option<String>,
    period: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct EntriesPage {
    entries: Vec<Entry>,
    next: Option<String>,
    period: PeriodRef,
    next_reset_at: Option<String>,
}

/// An integer query parameter within `range`, or `400` naming it.
pub(crate) fn bounded(
    raw: Option<&str>,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
    name: &str,
) -> Result<i64> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    raw.parse::<i64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            AppError::with_message(
                ErrorCode::BadRequest,
                format!(
                    "`{name}` must be an integer from {} to {}.",
                    range.start(),
                    range.end()
                ),
            )
        })
}

/// `GET /api/boards/{id}/entries?limit=&after=`: one keyset page.
pub(crate) async fn entries(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<EntriesQuery>,
) -> Result<Json<EntriesPage>> {
    let live = public_board(&state, &id).await?;
    let Asked { period, current } = period_of(&live, q.period.as_deref())?;
    let limit = bounded(q.limit.as_deref(), 50, 1..=100, "limit")?;
    let cursor = match q.after.as_deref() {
        None => None,
        Some(raw) => Some(Cursor::decode(raw).ok_or_else(|| {
            AppError::with_message(
                ErrorCode::BadRequest,
                "`after` is not a cursor of this API.",
            )
        })?),
    };
    let (board, order) = (live.def.id.as_str(), live.def.order);
    let cached = match &state.cache {
        Some(c) if current => c.page(board, &period.id, order, cursor, limit).await,
        _ => None,
    };
    let page = match cached {
        Some(p) => p,
        None => {
            // A cursor's later pages need the version its first page was read at.
            let floors = match cursor {
                Some(c) => vec![(board, period.id.as_str(), c.as_of)],
                None => Vec::new(),
            };
            let period = period.id.as_str();
            state
                .reads
                .read(&floors, |mut db| async move {
                    let cursor = match cursor {
                        Some(c) => c,
                        None => Cursor::start(sql::current_version(&mut *db, board, period).await?),
                    };
                    pages::page(&mut db, board, period, cursor, limit).await
                })
                .await?
        }
    };
    Ok(Json(EntriesPage {
        entries: page.entries,
        next: page.next.map(|c| c.encode()),
        period,
        next_reset_at: live.period().ends_at,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct PeriodsQuery {
    before: Option<String>,
    limit: Option<String>,
}

/// A closed period with its winners.
#[derive(Debug, Serialize)]
pub(crate) struct ClosedPeriod {
    #[serde(flatten)]
    period: PeriodRef,
    top: Vec<LeaderboardEntry>,
}

/// How many winners each closed period shows.
const PERIOD_TOP: usize = 3;

/// `GET /api/boards/{id}/periods?before=&limit=`: closed periods in which somebody scored,
/// newest first, each with its top 3; `before` (a period id) pages back (1–50 a page, default
/// 10). A board that never resets has none.
pub(crate) async fn periods(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Params(q): Params<PeriodsQuery>,
) -> Result<Json<serde_json::Value>> {
    let live = public_board(&state, &id).await?;
    let limit = bounded(q.limit.as_deref(), 10, 1..=50, "limit")?;
    let current = live.period();
    let before = match q.before.as_deref() {
        None => current.id.clone(),
        Some(id) => live
            .def
            .schedule
            .window_starting(id)
            .map(|w| w.period().id)
            .ok_or_else(|| {
                AppError::with_message(
                    ErrorCode::BadRequest,
                    "`before` is not a period of this board.",
                )
            })?,
    };
    let (live, current, before) = (&live, &current, before.as_str());
    let snapshots = state
        .reads
        .read(&[], |mut db| async move {
            let closed = sql::closed_periods(&mut *db, live.def.id.as_str(), before, limit).await?;
            let periods: Vec<PeriodRef> = closed
                .into_iter()
                .filter_map(|id| past_period(live, current, &id))
                .collect();
            let wanted: Vec<_> = periods.iter().map(|p| (&*live.def, p)).collect();
            sql::load_snapshots(&mut db, &wanted).await
        })
        .await?;
    let periods: Vec<ClosedPeriod> = snapshots
        .into_iter()
        .map(|s| ClosedPeriod {
            period: s.period,
            top: s.snapshot.top.into_iter().take(PERIOD_TOP).collect(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "periods": periods })))
}
