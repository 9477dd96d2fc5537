//! Periods against fixed instants (daylight-saving days, short months, the turn of a year,
//! cron with seconds), the refusals, and a property test that every schedule's periods tile
//! time with neither gaps nor overlaps.

use super::*;
use chrono::Duration;
use proptest::prelude::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn schedule(reset: &str, tz: &str) -> Schedule {
    Schedule::parse(reset, tz)
        .and_then(|s| s.comes_round(utc("2026-12-01T00:00:00Z")))
        .unwrap()
}

/// The period containing `at`, as (starts_at, ends_at) in RFC 3339 UTC.
fn window(reset: &str, tz: &str, at: &str) -> (String, String) {
    let w = schedule(reset, tz).window_at(utc(at)).unwrap().period();
    (w.starts_at.unwrap(), w.ends_at.unwrap())
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[test]
fn a_daily_berlin_board_has_a_23_hour_day_in_march_and_a_25_hour_day_in_october() {
    let march = window("daily", "Europe/Berlin", "2026-03-29T12:00:00Z");
    assert_eq!(march, pair("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"));
    let october = window("daily", "Europe/Berlin", "2026-10-25T12:00:00Z");
    assert_eq!(
        october,
        pair("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z")
    );
    let hours = |(a, b): (String, String)| (utc(&b) - utc(&a)).num_hours();
    assert_eq!((hours(march), hours(october)), (23, 25));
    // The next day is an ordinary one again.
    assert_eq!(
        window("daily", "Europe/Berlin", "2026-10-26T08:00:00Z"),
        pair("2026-10-25T23:00:00Z", "2026-10-26T23:00:00Z")
    );
}

#[test]
fn a_monthly_board_runs_from_the_first_to_the_first_whatever_the_month_length() {
    assert_eq!(
        window("monthly", "UTC", "2026-01-31T12:00:00Z"),
        pair("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
    );
    assert_eq!(
        window("monthly", "UTC", "2026-02-01T00:00:00Z"),
        pair("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")
    );
    // March in Berlin starts in winter time and ends in summer time: not an hour early.
    assert_eq!(
        window("monthly", "Europe/Berlin", "2026-03-31T21:59:59Z"),
        pair("2026-02-28T23:00:00Z", "2026-03-31T22:00:00Z")
    );
}

#[test]
fn a_weekly_board_runs_monday_to_monday_across_the_turn_of_a_year() {
    // 31 December 2026 is a Thursday.
    assert_eq!(
        window("weekly", "UTC", "2026-12-31T23:59:59Z"),
        pair("2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z")
    );
    assert_eq!(
        window("weekly", "America/New_York", "2027-01-01T03:00:00Z"),
        pair("2026-12-28T05:00:00Z", "2027-01-04T05:00:00Z")
    );
}

#[test]
fn hourly_follows_the_zone_offset_and_cron_takes_seconds() {
    // India is UTC+05:30: its hours turn at half past in UTC.
    assert_eq!(
        window("hourly", "Asia/Kolkata", "2026-06-01T10:45:00Z"),
        pair("2026-06-01T10:30:00Z", "2026-06-01T11:30:00Z")
    );
    assert_eq!(
        window("*/15 * * * * *", "UTC", "2026-06-01T10:00:07.250Z"),
        pair("2026-06-01T10:00:00Z", "2026-06-01T10:00:15Z")
    );
    // Five fields are standard cron (weekdays 1-5 = Monday to Friday; 5 June 2026 is a Friday).
    assert_eq!(
        window("30 9 * * 1-5", "UTC", "2026-06-06T12:00:00Z"),
        pair("2026-06-05T09:30:00Z", "2026-06-08T09:30:00Z")
    );
}

#[test]
fn an_instant_on_a_boundary_belongs_to_the_period_it_starts() {
    assert_eq!(
        window("daily", "UTC", "2026-06-02T00:00:00Z"),
        pair("2026-06-02T00:00:00Z", "2026-06-03T00:00:00Z")
    );
    assert_eq!(
        window("daily", "UTC", "2026-06-01T23:59:59.999Z"),
        pair("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z")
    );
}

#[test]
fn the_period_id_is_its_start_and_never_is_all() {
    let daily = schedule("daily", "Europe/Berlin");
    let ms = utc("2026-11-30T23:30:00Z").timestamp_millis();
    let p = daily.period_at(ms);
    assert_eq!(p.id, "2026-11-30T23:00:00Z");
    assert_eq!(p.starts_at.as_deref(), Some("2026-11-30T23:00:00Z"));
    assert_eq!(Schedule::never().period_at(ms), PeriodRef::all());
    assert!(Schedule::never()
        .window_at(utc("2026-01-01T00:00:00Z"))
        .is_none());
}

#[test]
fn a_period_is_found_by_its_id_and_only_by_its_exact_id() {
    let daily = schedule("daily", "Europe/Berlin");
    let w = daily.window_starting("2026-11-29T23:00:00Z").unwrap();
    assert_eq!(w.ends_at, utc("2026-11-30T23:00:00Z"));
    for not_a_start in [
        "2026-11-29T22:00:00Z",
        "2026-11-29T23:00:00+00:00",
        "2026-11-29T23:00:00.000Z",
        "yesterday",
        "all",
    ] {
        assert!(
            daily.window_starting(not_a_start).is_none(),
            "{not_a_start}"
        );
    }
    assert!(Schedule::never()
        .window_starting("2026-11-29T23:00:00Z")
        .is_none());
}

#[test]
fn a_period_ended_early_splits_in_two_and_the_schedule_resumes() {
    let closed_at = utc("2026-06-01T10:20:00Z");
    let s = schedule("daily", "UTC").resumed_at(Some(closed_at));
    let before = s.window_at(utc("2026-06-01T09:00:00Z")).unwrap().period();
    assert_eq!(
        (before.id.as_str(), before.ends_at.as_deref()),
        ("2026-06-01T00:00:00Z", Some("2026-06-01T10:20:00Z"))
    );
    let after = s.window_at(closed_at).unwrap().period();
    assert_eq!(
        (after.id.as_str(), after.ends_at.as_deref()),
        ("2026-06-01T10:20:00Z", Some("2026-06-02T00:00:00Z"))
    );
    assert_eq!(
        s.window_starting("2026-06-01T10:20:00Z").unwrap().ends_at,
        utc("2026-06-02T00:00:00Z")
    );
    assert_eq!(
        s.window_at(utc("2026-06-02T01:00:00Z")).unwrap().starts_at,
        utc("2026-06-02T00:00:00Z")
    );
}

#[test]
fn refusals_say_what_is_wrong() {
    let now = utc("2026-12-01T00:00:00Z");
    let parse = |reset: &str, tz: &str| Schedule::parse(reset, tz).and_then(|s| s.comes_round(now));
    assert_eq!(
        parse("daily", "Mars/Olympus").unwrap_err(),
        ScheduleError::UnknownTimezone
    );
    for bad in ["fortnightly", "", "61 * * * *", "* * *", "0 0 0 1 1 * 2027"] {
        assert!(
            matches!(parse(bad, "UTC"), Err(ScheduleError::BadReset(_))),
            "{bad:?} must be refused"
        );
    }
    assert_eq!(
        parse("0 0 30 2 *", "UTC").unwrap_err(),
        ScheduleError::NeverFires
    );
}

#[test]
fn schedules_compare_and_serialize_by_their_texts() {
    assert_eq!(schedule("daily", "UTC"), schedule("daily", "UTC"));
    assert_ne!(schedule("daily", "UTC"), schedule("0 0 * * *", "UTC"));
    let json = serde_json::to_value(schedule("weekly", "Europe/Berlin")).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"reset": "weekly", "timezone": "Europe/Berlin"})
    );
}

const RESETS: [&str; 7] = [
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "*/7 * * * * *",
    "0 30 2 * * *",
    "15 10 * * 0,3",
];
const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// The period of an instant contains it; the period of its end starts at that end; and
    /// the last instant before the end is still in it: consecutive periods meet exactly.
    #[test]
    fn periods_tile_time(
        reset in prop::sample::select(&RESETS[..]),
        zone in prop::sample::select(&ZONES[..]),
        // 2000 to 2040, to the millisecond.
        ms in 946_684_800_000i64..2_208_988_800_000,
    ) {
        let s = schedule(reset, zone);
        let at = Utc.timestamp_millis_opt(ms).unwrap();
        let w = s.window_at(at).unwrap();
        prop_assert!(w.starts_at <= at && at < w.ends_at, "{w:?} does not contain {at}");
        let next = s.window_at(w.ends_at).unwrap();
        prop_assert_eq!(next.starts_at, w.ends_at);
        prop_assert_eq!(s.window_at(w.ends_at - Duration::milliseconds(1)).unwrap(), w);
        prop_assert_eq!(s.window_at(w.starts_at).unwrap(), w);
    }
}
