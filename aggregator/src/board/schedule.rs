//! When a board resets: its `reset` (`never`, `hourly`, `daily`, `weekly`, `monthly` or a cron
//! expression) read in its IANA `timezone`, and the period `[starts_at, ends_at)` an instant
//! falls in. The calendar is croner's and chrono-tz's: local midnight across a daylight-saving
//! change makes a 23- or 25-hour day, and nothing here adds days or months by hand.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use scoreboard_protocol::snapshot::PeriodRef;
use serde::ser::SerializeStruct;
use std::sync::Arc;

/// Why a `reset`/`timezone` pair was refused, in words an operator can act on.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ScheduleError {
    #[error("`timezone` must be an IANA time zone name, such as \"Europe/Berlin\".")]
    UnknownTimezone,
    #[error(
        "`reset` must be never, hourly, daily, weekly, monthly, or a cron expression of 5 fields \
         (6 with seconds first): {0}"
    )]
    BadReset(String),
    #[error("`reset` never comes round: the cron expression matches no instant.")]
    NeverFires,
}

/// A board's schedule. Equal when its `reset` and `timezone` texts and its early start are.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    reset: String,
    timezone: String,
    tz: Tz,
    /// `None` for `never`.
    cron: Option<Arc<Cron>>,
    /// When an operator ended a period early: the current period then runs from here to the
    /// schedule's next reset.
    resumed: Option<DateTime<Utc>>,
}

/// One period of a board that resets, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) starts_at: DateTime<Utc>,
    pub(crate) ends_at: DateTime<Utc>,
}

impl Window {
    /// The period as reads and snapshots carry it; its id is its start.
    pub(crate) fn period(&self) -> PeriodRef {
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        PeriodRef {
            id: at(self.starts_at),
            starts_at: Some(at(self.starts_at)),
            ends_at: Some(at(self.ends_at)),
        }
    }
}

/// The cron expression a named reset stands for (seconds first; weekdays 0 = Sunday).
fn named(reset: &str) -> Option<&'static str> {
    Some(match reset {
        "hourly" => "0 0 * * * *",
        "daily" => "0 0 0 * * *",
        "weekly" => "0 0 0 * * 1",
        "monthly" => "0 0 0 1 * *",
        _ => return None,
    })
}

impl Schedule {
    #[cfg(test)]
    pub(crate) fn never() -> Self {
        Self {
            reset: "never".to_owned(),
            timezone: "UTC".to_owned(),
            tz: Tz::UTC,
            cron: None,
            resumed: None,
        }
    }

    /// Reads a board's `reset` and `timezone` (a cron expression without a year field, which
    /// would let it stop).
    pub(crate) fn parse(reset: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let tz: Tz = timezone
            .parse()
            .map_err(|_| ScheduleError::UnknownTimezone)?;
        let cron = if reset == "never" {
            None
        } else {
            let cron = CronParser::builder()
                .seconds(Seconds::Optional)
                .year(Year::Disallowed)
                .build()
                .parse(named(reset).unwrap_or(reset))
                .map_err(|e| ScheduleError::BadReset(e.to_string()))?;
            Some(Arc::new(cron))
        };
        Ok(Self {
            reset: reset.to_owned(),
            timezone: timezone.to_owned(),
            tz,
            cron,
            resumed: None,
        })
    }

    /// The schedule with a period started early at `at` (`POST /admin/boards/{id}/close-period`).
    pub(crate) fn resumed_at(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.resumed = at;
        self
    }

    pub(crate) fn resumed(&self) -> Option<DateTime<Utc>> {
        self.resumed
    }

    /// Refuses a schedule that has no period around `now` (a cron expression that matches
    /// no instant, such as the 30th of February).
    pub(crate) fn comes_round(self, now: DateTime<Utc>) -> Result<Self, ScheduleError> {
        match (self.resets(), self.window_at(now)) {
            (true, None) => Err(ScheduleError::NeverFires),
            _ => Ok(self),
        }
    }

    pub(crate) fn reset(&self) -> &str {
        &self.reset
    }

    pub(crate) fn timezone(&self) -> &str {
        &self.timezone
    }

    pub(crate) fn resets(&self) -> bool {
        self.cron.is_some()
    }

    /// The period containing `at`: the last reset at or before it to the first one after it,
    /// split in two where an operator ended it early. `None` for a board that never resets, and
    /// for a schedule that cannot be evaluated there (croner gives up on a search too long;
    /// `comes_round` made sure it comes round from its day).
    pub(crate) fn window_at(&self, at: DateTime<Utc>) -> Option<Window> {
        let w = self.scheduled_window_at(at)?;
        Some(match self.resumed {
            Some(r) if w.starts_at < r && r < w.ends_at && at >= r => Window {
                starts_at: r,
                ends_at: w.ends_at,
            },
            Some(r) if w.starts_at < r && r < w.ends_at => Window {
                starts_at: w.starts_at,
                ends_at: r,
            },
            _ => w,
        })
    }

    fn scheduled_window_at(&self, at: DateTime<Utc>) -> Option<Window> {
        let cron = self.cron.as_deref()?;
        let local = at.with_timezone(&self.tz);
        let starts_at = cron.find_previous_occurrence(&local, true).ok()?;
        let ends_at = cron.find_next_occurrence(&local, false).ok()?;
        Some(Window {
            starts_at: starts_at.with_timezone(&Utc),
            ends_at: ends_at.with_timezone(&Utc),
        })
    }

    /// The period whose id is `id` (its start, exactly as [`Window::period`] writes it), if
    /// this schedule has one starting there.
    pub(crate) fn window_starting(&self, id: &str) -> Option<Window> {
        let start = DateTime::parse_from_rfc3339(id).ok()?.with_timezone(&Utc);
        let w = self.window_at(start)?;
        (w.starts_at == start && w.period().id == id).then_some(w)
    }

    /// The period an update applied at `now_ms` counts in (`all` for a board that never
    /// resets).
    pub(crate) fn period_at(&self, now_ms: i64) -> PeriodRef {
        let Some(at) = Utc.timestamp_millis_opt(now_ms).single() else {
            return PeriodRef::all();
        };
        match (self.resets(), self.window_at(at)) {
            (false, _) => PeriodRef::all(),
            (true, Some(w)) => w.period(),
            (true, None) => {
                tracing::error!(
                    reset = self.reset,
                    timezone = self.timezone,
                    "a board's schedule could not be evaluated: counting in its `all` period"
                );
                PeriodRef::all()
            }
        }
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        (&self.reset, &self.timezone, self.resumed)
            == (&other.reset, &other.timezone, other.resumed)
    }
}

impl Eq for Schedule {}

/// As the API shows it: `"reset"` and `"timezone"` (flattened into a board).
impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Schedule", 2)?;
        st.serialize_field("reset", &self.reset)?;
        st.serialize_field("timezone", &self.timezone)?;
        st.end()
    }
}

#[cfg(test)]
mod tests;
