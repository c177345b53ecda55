//! Window arithmetic on fixed instants: each recurrence kind, month ends, DST in several zones,
//! blackout precedence, merging and catch-up.

use jiff::civil::{date, time, Weekday};
use jiff::tz::TimeZoneDatabase;
use jiff::{SignedDuration, Timestamp, Zoned};
use patchdeck_schedule::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// An instant from local text with its offset and zone, e.g. `2025-03-09T03:00-04:00[America/New_York]`.
fn local(text: &str) -> Timestamp {
    text.parse::<Zoned>().unwrap_or_else(|e| panic!("{text}: {e}")).timestamp()
}

fn spec(recurrence: Recurrence, start: jiff::civil::Time, minutes: i64, zone: &str) -> WindowSpec {
    WindowSpec { recurrence, start, duration: SignedDuration::from_mins(minutes), time_zone: zone.into() }
}

fn calendar(windows: Vec<WindowSpec>, blackouts: Vec<Interval>) -> Calendar {
    Calendar::new(windows, blackouts).unwrap()
}

fn starts(c: &Calendar, from: &str, to: &str) -> Vec<Timestamp> {
    c.occurrences(ts(from), ts(to)).iter().map(|o| o.start).collect()
}

fn iv(start: &str, end: &str) -> Interval {
    Interval { start: ts(start), end: ts(end) }
}

#[test]
fn daily_runs_every_day_at_the_local_time() {
    let c = calendar(vec![spec(Recurrence::Daily, time(22, 0, 0, 0), 120, "UTC")], vec![]);
    assert_eq!(
        starts(&c, "2025-01-01T00:00Z", "2025-01-04T00:00Z"),
        vec![ts("2025-01-01T22:00Z"), ts("2025-01-02T22:00Z"), ts("2025-01-03T22:00Z")]
    );
    // An occurrence that started before the range but still runs into it is included.
    let o = c.occurrences(ts("2025-01-02T23:00Z"), ts("2025-01-02T23:30Z"));
    assert_eq!(o.len(), 1);
    assert_eq!((o[0].start, o[0].end), (ts("2025-01-02T22:00Z"), ts("2025-01-03T00:00Z")));
    assert_eq!(o[0].source, 0);
    assert!(o[0].blocked.is_empty());
}

#[test]
fn weekly_runs_on_the_chosen_days_only() {
    let days = vec![Weekday::Wednesday, Weekday::Monday];
    let c = calendar(vec![spec(Recurrence::Weekly { days }, time(3, 0, 0, 0), 60, "Europe/Berlin")], vec![]);
    // 2025-01-06 is a Monday; Berlin is UTC+1 in winter.
    assert_eq!(
        starts(&c, "2025-01-05T00:00Z", "2025-01-14T00:00Z"),
        vec![ts("2025-01-06T02:00Z"), ts("2025-01-08T02:00Z"), ts("2025-01-13T02:00Z")]
    );
}

#[test]
fn once_runs_on_its_date_only() {
    let c = calendar(
        vec![spec(Recurrence::Once { date: date(2025, 6, 1) }, time(12, 0, 0, 0), 30, "Asia/Kolkata")],
        vec![],
    );
    assert_eq!(starts(&c, "2025-01-01T00:00Z", "2026-01-01T00:00Z"), vec![ts("2025-06-01T06:30Z")]);
    assert!(starts(&c, "2025-06-02T00:00Z", "2026-01-01T00:00Z").is_empty());
    assert_eq!(c.next_open(ts("2025-01-01T00:00Z")), Some(iv("2025-06-01T06:30Z", "2025-06-01T07:00Z")));
    assert_eq!(c.next_open(ts("2025-06-01T07:00Z")), None, "a past one-off window never opens again");
}

#[test]
fn day_of_month_falls_back_to_the_last_day() {
    let monthly = |day| spec(Recurrence::Monthly(MonthlyRule::DayOfMonth { day }), time(1, 0, 0, 0), 60, "UTC");
    let c = calendar(vec![monthly(31)], vec![]);
    assert_eq!(
        starts(&c, "2024-01-15T00:00Z", "2024-05-15T00:00Z"),
        vec![ts("2024-01-31T01:00Z"), ts("2024-02-29T01:00Z"), ts("2024-03-31T01:00Z"), ts("2024-04-30T01:00Z")]
    );
    let c = calendar(vec![monthly(29)], vec![]);
    assert_eq!(
        starts(&c, "2024-02-01T00:00Z", "2024-03-01T00:00Z"),
        vec![ts("2024-02-29T01:00Z")],
        "a leap year has February 29"
    );
    assert_eq!(
        starts(&c, "2025-02-01T00:00Z", "2025-03-30T00:00Z"),
        vec![ts("2025-02-28T01:00Z"), ts("2025-03-29T01:00Z")],
        "other years run on February 28"
    );
    let c = calendar(vec![monthly(1)], vec![]);
    assert_eq!(starts(&c, "2025-02-01T00:00Z", "2025-03-01T00:00Z"), vec![ts("2025-02-01T01:00Z")]);
}

#[test]
fn nth_weekday_and_the_last_weekday() {
    let rule = |nth, weekday| {
        spec(Recurrence::Monthly(MonthlyRule::NthWeekday { nth, weekday }), time(20, 0, 0, 0), 60, "UTC")
    };
    // The second Tuesday ("patch Tuesday").
    let c = calendar(vec![rule(2, Weekday::Tuesday)], vec![]);
    assert_eq!(
        starts(&c, "2025-01-01T00:00Z", "2025-04-01T00:00Z"),
        vec![ts("2025-01-14T20:00Z"), ts("2025-02-11T20:00Z"), ts("2025-03-11T20:00Z")]
    );
    // The last Thursday of February 2024 is the 29th; the last Friday is the 23rd.
    let c = calendar(vec![rule(-1, Weekday::Thursday)], vec![]);
    assert_eq!(starts(&c, "2024-02-01T00:00Z", "2024-03-01T00:00Z"), vec![ts("2024-02-29T20:00Z")]);
    let c = calendar(vec![rule(-1, Weekday::Friday)], vec![]);
    assert_eq!(starts(&c, "2024-02-01T00:00Z", "2024-03-01T00:00Z"), vec![ts("2024-02-23T20:00Z")]);
    // The fourth Sunday of a month with five.
    let c = calendar(vec![rule(4, Weekday::Sunday)], vec![]);
    assert_eq!(starts(&c, "2025-03-01T00:00Z", "2025-04-01T00:00Z"), vec![ts("2025-03-23T20:00Z")]);
}

#[test]
fn new_york_spring_forward_runs_after_the_gap() {
    let c = calendar(vec![spec(Recurrence::Daily, time(2, 30, 0, 0), 60, "America/New_York")], vec![]);
    assert_eq!(
        starts(&c, "2025-03-08T00:00Z", "2025-03-11T00:00Z"),
        vec![
            local("2025-03-08T02:30-05:00[America/New_York]"),
            // 02:30 does not exist on 2025-03-09: the first valid instant after the gap.
            local("2025-03-09T03:00-04:00[America/New_York]"),
            local("2025-03-10T02:30-04:00[America/New_York]"),
        ]
    );
}

#[test]
fn new_york_fall_back_runs_once_at_the_earlier_instant() {
    let c = calendar(vec![spec(Recurrence::Daily, time(1, 30, 0, 0), 120, "America/New_York")], vec![]);
    let o = c.occurrences(ts("2025-11-02T00:00Z"), ts("2025-11-03T00:00Z"));
    let on_the_day: Vec<_> = o.iter().filter(|o| o.start >= ts("2025-11-02T04:00Z")).collect();
    assert_eq!(on_the_day.len(), 1, "{o:?}");
    assert_eq!(on_the_day[0].start, local("2025-11-02T01:30-04:00[America/New_York]"));
    // Duration is elapsed time: two hours after 01:30 EDT is 02:30 EST.
    assert_eq!(on_the_day[0].end, local("2025-11-02T02:30-05:00[America/New_York]"));
}

#[test]
fn berlin_both_transitions() {
    let c = calendar(vec![spec(Recurrence::Daily, time(2, 30, 0, 0), 60, "Europe/Berlin")], vec![]);
    assert_eq!(
        starts(&c, "2025-03-29T12:00Z", "2025-03-30T12:00Z"),
        vec![local("2025-03-30T03:00+02:00[Europe/Berlin]")]
    );
    assert_eq!(
        starts(&c, "2025-10-25T12:00Z", "2025-10-26T12:00Z"),
        vec![local("2025-10-26T02:30+02:00[Europe/Berlin]")]
    );
}

#[test]
fn lord_howe_half_hour_shift() {
    // Lord Howe Island moves its clocks by 30 minutes: 02:00 → 02:30 on 2025-10-05, and
    // 02:00 → 01:30 on 2025-04-06.
    let c = calendar(vec![spec(Recurrence::Daily, time(2, 15, 0, 0), 30, "Australia/Lord_Howe")], vec![]);
    assert_eq!(
        starts(&c, "2025-10-04T12:00Z", "2025-10-05T12:00Z"),
        vec![local("2025-10-05T02:30+11:00[Australia/Lord_Howe]")]
    );
    let c = calendar(vec![spec(Recurrence::Daily, time(1, 45, 0, 0), 30, "Australia/Lord_Howe")], vec![]);
    assert_eq!(
        starts(&c, "2025-04-05T12:00Z", "2025-04-06T12:00Z"),
        vec![local("2025-04-06T01:45+11:00[Australia/Lord_Howe]")],
        "once, at the earlier of the two 01:45s"
    );
}

#[test]
fn chatham_and_kolkata() {
    // Chatham (+12:45, +13:45 in summer) springs forward at 02:45 → 03:45 on 2025-09-28.
    let c = calendar(vec![spec(Recurrence::Daily, time(3, 0, 0, 0), 60, "Pacific/Chatham")], vec![]);
    assert_eq!(
        starts(&c, "2025-09-27T12:00Z", "2025-09-28T12:00Z"),
        vec![local("2025-09-28T03:45+13:45[Pacific/Chatham]")]
    );
    // Kolkata has no DST: the same UTC time all year.
    let c = calendar(vec![spec(Recurrence::Daily, time(2, 30, 0, 0), 60, "Asia/Kolkata")], vec![]);
    let all = c.occurrences(ts("2024-12-31T20:00Z"), ts("2025-12-31T20:00Z"));
    assert_eq!(all.len(), 365);
    assert!(all.iter().all(|o| o.start.as_second().rem_euclid(86_400) == 21 * 3600), "always 21:00 UTC");
}

#[test]
fn the_bundled_database_agrees_with_the_system_one() {
    let bundled = TimeZoneDatabase::bundled();
    for zone in ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Kolkata"] {
        let tz = bundled.get(zone).unwrap_or_else(|e| panic!("{zone} is bundled: {e}"));
        let system = resolve_time_zone(zone).unwrap();
        for day in [date(2025, 3, 9), date(2025, 3, 30), date(2025, 4, 6), date(2025, 9, 28), date(2025, 10, 5)] {
            for t in [time(1, 45, 0, 0), time(2, 15, 0, 0), time(2, 30, 0, 0), time(3, 0, 0, 0)] {
                let dt = day.to_datetime(t);
                assert_eq!(local_start(&tz, dt), local_start(&system, dt), "{zone} {dt}");
            }
        }
    }
}

#[test]
fn blackouts_win_over_windows() {
    let window = spec(Recurrence::Daily, time(1, 0, 0, 0), 240, "UTC");
    let c = calendar(vec![window], vec![iv("2025-05-01T02:00Z", "2025-05-01T03:00Z")]);
    assert_eq!(c.open_at(ts("2025-05-01T01:30Z")), Some(iv("2025-05-01T01:00Z", "2025-05-01T02:00Z")));
    assert_eq!(c.open_at(ts("2025-05-01T02:30Z")), None);
    assert!(c.blocked_at(ts("2025-05-01T02:30Z")));
    assert!(!c.blocked_at(ts("2025-05-01T03:00Z")), "blackouts end exclusively");
    assert_eq!(c.next_open(ts("2025-05-01T02:30Z")), Some(iv("2025-05-01T03:00Z", "2025-05-01T05:00Z")));
    let o = c.occurrences(ts("2025-05-01T00:00Z"), ts("2025-05-02T00:00Z"));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].blocked, vec![iv("2025-05-01T02:00Z", "2025-05-01T03:00Z")]);
    // A freeze over the whole window moves the next opening to the next day.
    let c = calendar(
        vec![spec(Recurrence::Daily, time(1, 0, 0, 0), 240, "UTC")],
        vec![iv("2025-05-01T00:00Z", "2025-05-02T00:00Z"), iv("2025-05-02T04:00Z", "2025-05-02T06:00Z")],
    );
    assert_eq!(c.next_open(ts("2025-05-01T00:30Z")), Some(iv("2025-05-02T01:00Z", "2025-05-02T04:00Z")));
    // Blackouts apply without windows too, but nothing is ever open then.
    let c = calendar(vec![], vec![iv("2025-05-01T00:00Z", "2025-05-02T00:00Z")]);
    assert!(c.blocked_at(ts("2025-05-01T12:00Z")));
    assert!(!c.has_windows());
    assert_eq!(c.next_open(ts("2025-05-01T12:00Z")), None);
}

#[test]
fn overlapping_windows_merge() {
    let c = calendar(
        vec![
            spec(Recurrence::Daily, time(1, 0, 0, 0), 120, "UTC"),
            spec(Recurrence::Weekly { days: vec![Weekday::Thursday] }, time(2, 0, 0, 0), 180, "UTC"),
            spec(Recurrence::Daily, time(5, 0, 0, 0), 60, "UTC"),
        ],
        vec![],
    );
    // 2025-05-01 is a Thursday: 01–03, 02–05 and 05–06 touch into one interval.
    assert_eq!(c.open_at(ts("2025-05-01T05:30Z")), Some(iv("2025-05-01T01:00Z", "2025-05-01T06:00Z")));
    assert_eq!(c.open_at(ts("2025-05-02T01:30Z")), Some(iv("2025-05-02T01:00Z", "2025-05-02T03:00Z")));
    assert_eq!(c.open_at(ts("2025-05-02T04:00Z")), None);
    assert_eq!(c.next_open(ts("2025-05-02T04:00Z")), Some(iv("2025-05-02T05:00Z", "2025-05-02T06:00Z")));
    let o = c.occurrences(ts("2025-05-01T00:00Z"), ts("2025-05-02T00:00Z"));
    assert_eq!(o.iter().map(|o| o.source).collect::<Vec<_>>(), vec![0, 1, 2]);
}

#[test]
fn a_host_that_missed_its_window_catches_up_in_the_next_one() {
    // Sundays 02:00–04:00 in Berlin (2025-06-01 and 2025-06-08 are Sundays; UTC+2).
    let window = spec(Recurrence::Weekly { days: vec![Weekday::Sunday] }, time(2, 0, 0, 0), 120, "Europe/Berlin");
    let c = calendar(vec![window], vec![]);
    let this_week = iv("2025-06-01T00:00Z", "2025-06-01T02:00Z");
    let next_week = iv("2025-06-08T00:00Z", "2025-06-08T02:00Z");
    // Back during the window: the window is still open, work starts now.
    assert_eq!(c.next_open(ts("2025-06-01T01:15Z")), Some(this_week));
    // Back after it closed: the next window serves it.
    assert_eq!(c.next_open(ts("2025-06-01T02:00Z")), Some(next_week));
    assert_eq!(c.next_open(ts("2025-06-03T09:00Z")), Some(next_week));
}

#[test]
fn an_endless_window_is_followed_to_the_horizon() {
    let c = calendar(vec![spec(Recurrence::Daily, time(0, 0, 0, 0), 24 * 60, "UTC")], vec![]);
    let t = ts("2025-01-01T12:00Z");
    let open = c.open_at(t).unwrap();
    assert!(open.start <= t - SignedDuration::from_hours(24 * (HORIZON_DAYS - 1)), "{open}");
    assert!(open.end >= t + SignedDuration::from_hours(24 * (HORIZON_DAYS - 1)), "{open}");
}

#[test]
fn validation_names_the_field() {
    let ok = spec(Recurrence::Daily, time(1, 0, 0, 0), 60, "Europe/Berlin");
    assert_eq!(ok.validate(), Ok(()));
    let cases = [
        (WindowSpec { time_zone: "Mars/Olympus".into(), ..ok.clone() }, "time_zone"),
        (WindowSpec { time_zone: "".into(), ..ok.clone() }, "time_zone"),
        (WindowSpec { time_zone: "/etc/passwd".into(), ..ok.clone() }, "time_zone"),
        (WindowSpec { time_zone: "Etc/Unknown".into(), ..ok.clone() }, "time_zone"),
        (WindowSpec { time_zone: "EST5EDT,M3.2.0,M11.1.0".into(), ..ok.clone() }, "time_zone"),
        (WindowSpec { recurrence: Recurrence::Weekly { days: vec![] }, ..ok.clone() }, "recurrence.days"),
        (
            WindowSpec {
                recurrence: Recurrence::Weekly { days: vec![Weekday::Monday, Weekday::Monday] },
                ..ok.clone()
            },
            "recurrence.days",
        ),
        (
            WindowSpec { recurrence: Recurrence::Monthly(MonthlyRule::DayOfMonth { day: 0 }), ..ok.clone() },
            "recurrence.day",
        ),
        (
            WindowSpec { recurrence: Recurrence::Monthly(MonthlyRule::DayOfMonth { day: 32 }), ..ok.clone() },
            "recurrence.day",
        ),
        (
            WindowSpec {
                recurrence: Recurrence::Monthly(MonthlyRule::NthWeekday { nth: 5, weekday: Weekday::Monday }),
                ..ok.clone()
            },
            "recurrence.nth",
        ),
        (
            WindowSpec {
                recurrence: Recurrence::Monthly(MonthlyRule::NthWeekday { nth: 0, weekday: Weekday::Monday }),
                ..ok.clone()
            },
            "recurrence.nth",
        ),
        (WindowSpec { duration: SignedDuration::from_secs(59), ..ok.clone() }, "duration"),
        (WindowSpec { duration: SignedDuration::from_hours(7 * 24 + 1), ..ok.clone() }, "duration"),
    ];
    for (spec, field) in cases {
        let err = spec.validate().expect_err(field);
        assert_eq!(err.field(), field, "{err}");
        assert!(Calendar::new(vec![spec], vec![]).is_err());
    }
    assert!(resolve_time_zone("asia/kolkata").is_ok(), "names resolve without regard to case");
    let err = Calendar::new(vec![ok], vec![iv("2025-01-02T00:00Z", "2025-01-01T00:00Z")]).unwrap_err();
    assert_eq!(err.field(), "ends_at");
}

#[test]
fn recurrences_serialize_tagged_in_snake_case() {
    let cases = [
        (Recurrence::Once { date: date(2025, 6, 1) }, r#"{"kind":"once","date":"2025-06-01"}"#),
        (Recurrence::Daily, r#"{"kind":"daily"}"#),
        (
            Recurrence::Weekly { days: vec![Weekday::Monday, Weekday::Sunday] },
            r#"{"kind":"weekly","days":["monday","sunday"]}"#,
        ),
        (
            Recurrence::Monthly(MonthlyRule::DayOfMonth { day: 31 }),
            r#"{"kind":"monthly","rule":"day_of_month","day":31}"#,
        ),
        (
            Recurrence::Monthly(MonthlyRule::NthWeekday { nth: -1, weekday: Weekday::Friday }),
            r#"{"kind":"monthly","rule":"nth_weekday","nth":-1,"weekday":"friday"}"#,
        ),
    ];
    for (recurrence, json) in cases {
        assert_eq!(serde_json::to_string(&recurrence).unwrap(), json);
        assert_eq!(serde_json::from_str::<Recurrence>(json).unwrap(), recurrence);
    }
    assert!(serde_json::from_str::<Recurrence>(r#"{"kind":"weekly","days":["funday"]}"#).is_err());
    assert!(serde_json::from_str::<Recurrence>(r#"{"kind":"hourly"}"#).is_err());
}

#[test]
fn splay_spreads_hosts_deterministically_inside_the_interval() {
    let open = iv("2025-05-01T01:00Z", "2025-05-01T09:00Z");
    let firsts: Vec<Timestamp> = (0..1000).map(|host| splay(host, open, 0.5)).collect();
    assert_eq!(firsts, (0..1000).map(|host| splay(host, open, 0.5)).collect::<Vec<_>>(), "deterministic");
    let half = ts("2025-05-01T05:00Z");
    assert!(firsts.iter().all(|t| open.start <= *t && *t < half), "inside the first half");
    let distinct: std::collections::BTreeSet<_> = firsts.iter().map(|t| t.as_second()).collect();
    assert!(distinct.len() > 930, "a thousand hosts do not start in the same second: {}", distinct.len());
    // Each quarter of the spread gets a fair share.
    let quarter = |q: i64| firsts.iter().filter(|t| (t.as_second() - open.start.as_second()) / 3600 == q).count();
    assert!((0..4).all(|q| quarter(q) > 150), "{:?}", (0..4).map(quarter).collect::<Vec<_>>());
    assert_eq!(splay(7, open, 0.0), open.start);
    assert_eq!(splay(7, open, f64::NAN), open.start);
    assert!(splay(7, open, 5.0) < open.end);
    let empty = Interval { start: open.start, end: open.start };
    assert_eq!(splay(7, empty, 1.0), open.start);
}
