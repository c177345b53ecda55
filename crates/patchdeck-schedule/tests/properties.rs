//! Property tests: random windows in zones with DST (including a 30-minute shift and a
//! 45-minute offset) and without, random blackouts, random instants.

use jiff::civil::{Time, Weekday};
use jiff::tz::AmbiguousOffset;
use jiff::{SignedDuration, Timestamp};
use patchdeck_schedule::*;
use proptest::prelude::*;

/// Zones whose transitions are not at midnight, so every local date exists.
const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "Australia/Sydney",
    "UTC",
];

const WEEKDAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// 2020-01-01 … 2035-01-01.
fn instant() -> impl Strategy<Value = Timestamp> {
    (1_577_836_800_i64..2_051_222_400).prop_map(|s| Timestamp::from_second(s).unwrap())
}

fn start_time() -> impl Strategy<Value = Time> {
    // Minutes of the day, biased towards the small hours where transitions are.
    prop_oneof![0_i64..1440, 60_i64..240].prop_map(|m| Time::new((m / 60) as i8, (m % 60) as i8, 0, 0).unwrap())
}

fn recurrence() -> impl Strategy<Value = Recurrence> {
    prop_oneof![
        Just(Recurrence::Daily),
        proptest::sample::subsequence(WEEKDAYS.to_vec(), 1..=7).prop_map(|days| Recurrence::Weekly { days }),
        (1_i8..=31).prop_map(|day| Recurrence::Monthly(MonthlyRule::DayOfMonth { day })),
        (prop_oneof![1_i8..=4, Just(-1_i8)], proptest::sample::select(WEEKDAYS.to_vec()))
            .prop_map(|(nth, weekday)| Recurrence::Monthly(MonthlyRule::NthWeekday { nth, weekday })),
        (2020_i16..2035, 1_i8..=12, 1_i8..=28)
            .prop_map(|(y, m, d)| Recurrence::Once { date: jiff::civil::date(y, m, d) }),
    ]
}

fn window(recurrence: impl Strategy<Value = Recurrence>) -> impl Strategy<Value = WindowSpec> {
    (recurrence, start_time(), 1_i64..=7 * 24 * 60, proptest::sample::select(ZONES)).prop_map(
        |(recurrence, start, minutes, zone)| WindowSpec {
            recurrence,
            start,
            duration: SignedDuration::from_mins(minutes),
            time_zone: zone.to_owned(),
        },
    )
}

fn blackouts(around: Timestamp) -> impl Strategy<Value = Vec<Interval>> {
    proptest::collection::vec((-40_i64 * 24 * 60..40 * 24 * 60, 1_i64..5 * 24 * 60), 0..4).prop_map(move |spans| {
        spans
            .into_iter()
            .map(|(offset, length)| {
                let start = around + SignedDuration::from_mins(offset);
                Interval { start, end: start + SignedDuration::from_mins(length) }
            })
            .collect()
    })
}

fn calendar() -> impl Strategy<Value = (Calendar, Timestamp)> {
    instant().prop_flat_map(|t| {
        (proptest::collection::vec(window(recurrence()), 1..4), blackouts(t))
            .prop_map(move |(windows, blackouts)| (Calendar::new(windows, blackouts).unwrap(), t))
    })
}

fn in_gap(spec: &WindowSpec, date: jiff::civil::Date) -> bool {
    let tz = resolve_time_zone(&spec.time_zone).unwrap();
    matches!(tz.to_ambiguous_timestamp(date.to_datetime(spec.start)).offset(), AmbiguousOffset::Gap { .. })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A daily window occurs exactly once on every local day, and its start's local time is the
    /// spec's, except on a day where that time falls in a gap: then it is later that day.
    #[test]
    fn daily_windows_occur_once_per_local_day(spec in window(Just(Recurrence::Daily)), t in instant(), days in 1_i64..60) {
        let c = Calendar::new(vec![spec.clone()], vec![]).unwrap();
        let tz = resolve_time_zone(&spec.time_zone).unwrap();
        let to = t + SignedDuration::from_hours(24 * days);
        let occurrences = c.occurrences(t, to);
        let dates: Vec<_> = occurrences.iter().map(|o| o.start.to_zoned(tz.clone()).date()).collect();
        for pair in dates.windows(2) {
            prop_assert_eq!(pair[0].tomorrow().unwrap(), pair[1], "consecutive local dates: {:?}", dates);
        }
        // Every local date whose start lies in [t, to) is there.
        let first = t.to_zoned(tz.clone()).date();
        let last = to.to_zoned(tz.clone()).date();
        let mut day = first;
        while day <= last {
            let start = local_start(&tz, day.to_datetime(spec.start)).unwrap();
            if t <= start && start < to {
                prop_assert!(dates.contains(&day), "{} missing from {:?}", day, dates);
            }
            day = day.tomorrow().unwrap();
        }
        for (o, date) in occurrences.iter().zip(&dates) {
            let local = o.start.to_zoned(tz.clone()).time();
            if in_gap(&spec, *date) {
                prop_assert!(local > spec.start, "moved forward out of the gap: {} {}", date, local);
            } else {
                prop_assert_eq!(local, spec.start, "on {}", date);
            }
            prop_assert_eq!(o.end.duration_since(o.start), spec.duration);
            prop_assert!(o.start < to && o.end > t);
        }
    }

    /// Any window: at most one occurrence per local date, each on a date the recurrence selects,
    /// sorted; blocked parts lie inside both the occurrence and a blackout.
    #[test]
    fn occurrences_follow_the_recurrence((c, t) in calendar(), days in 1_i64..92) {
        let to = t + SignedDuration::from_hours(24 * days);
        let occurrences = c.occurrences(t, to);
        for pair in occurrences.windows(2) {
            prop_assert!((pair[0].start, pair[0].source) <= (pair[1].start, pair[1].source));
        }
        let mut seen = std::collections::BTreeSet::new();
        for o in &occurrences {
            let spec = c.window(o.source).unwrap();
            let tz = resolve_time_zone(&spec.time_zone).unwrap();
            let date = o.start.to_zoned(tz).date();
            prop_assert!(spec.recurrence.matches(date), "{:?} on {}", spec.recurrence, date);
            prop_assert!(seen.insert((o.source, date)), "window {} twice on {}", o.source, date);
            for part in &o.blocked {
                prop_assert!(o.start <= part.start && part.end <= o.end);
                prop_assert!(c.blackouts().iter().any(|b| b.start <= part.start && part.end <= b.end));
            }
        }
    }

    /// `open_at(t)` contains `t`, touches no blackout, and is made of window time only.
    #[test]
    fn open_intervals_are_open((c, t) in calendar()) {
        match c.open_at(t) {
            Some(open) => {
                prop_assert!(open.contains(t));
                prop_assert!(!c.blocked_at(t));
                prop_assert!(c.blackouts().iter().all(|b| b.intersect(&open).is_none()), "{} meets a blackout", open);
                let covering = c.occurrences(t, t + SignedDuration::from_secs(1));
                prop_assert!(!covering.is_empty());
            }
            None => {
                let covering = c.occurrences(t, t + SignedDuration::from_nanos(1));
                prop_assert!(covering.is_empty() || c.blocked_at(t), "t is in a window and not blocked");
            }
        }
    }

    /// `next_open(t)` is open now or starts after `t`, and nothing is open in between.
    #[test]
    fn next_open_is_the_first_open_interval((c, t) in calendar()) {
        let Some(next) = c.next_open(t) else {
            // Then nothing is open within the horizon.
            let horizon = t + SignedDuration::from_hours(24 * HORIZON_DAYS);
            for o in c.occurrences(t, horizon) {
                let clipped = Interval { start: o.start.max(t), end: o.end.min(horizon) };
                let blocked: SignedDuration = o.blocked.iter().filter_map(|b| b.intersect(&clipped)).map(|b| b.duration()).sum();
                prop_assert_eq!(blocked, clipped.duration(), "an open part was missed in {:?}", o);
            }
            return Ok(());
        };
        prop_assert!(next.end > t);
        prop_assert!(next.contains(t) || next.start > t);
        prop_assert!(!c.blocked_at(next.start));
        let again = c.open_at(next.start);
        if next.duration() < SignedDuration::from_hours(24 * (HORIZON_DAYS - 100)) {
            prop_assert_eq!(again, Some(next));
        } else {
            // An interval that outlasts the search horizon is cut where the search stopped,
            // which depends on where it started.
            prop_assert!(again.is_some_and(|a| a.contains(next.start)));
        }
        if next.start > t {
            let gap = Interval { start: t, end: next.start };
            for o in c.occurrences(gap.start, gap.end) {
                let Some(part) = o.interval().intersect(&gap) else { continue };
                let blocked: SignedDuration = o.blocked.iter().filter_map(|b| b.intersect(&part)).map(|b| b.duration()).sum();
                prop_assert_eq!(blocked, part.duration(), "open time before next_open in {:?}", o);
            }
        }
    }

    /// Splay stays inside the interval (and inside the fraction) and is deterministic.
    #[test]
    fn splay_stays_inside(host in any::<i64>(), start in instant(), minutes in 0_i64..20_000, fraction in 0.0_f64..=1.0) {
        let open = Interval { start, end: start + SignedDuration::from_mins(minutes) };
        let at = splay(host, open, fraction);
        prop_assert_eq!(at, splay(host, open, fraction));
        if minutes == 0 {
            prop_assert_eq!(at, start);
        } else {
            prop_assert!(open.start <= at && at < open.end);
            let limit = open.start + SignedDuration::from_secs_f64(open.duration().as_secs_f64() * fraction);
            prop_assert!(at <= limit, "{} past the first {} of {}", at, fraction, open);
        }
    }
}
