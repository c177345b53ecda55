//! Maintenance windows and blackout periods: when disruptive work on a host may run.
//!
//! This crate is pure: no IO, no clock. Every question takes the instant it is about.
//!
//! # Model
//!
//! A [`WindowSpec`] is a [`Recurrence`] (once, daily, weekly on chosen days, monthly on a day of
//! the month or the nth weekday), a local start time, a duration and an IANA time zone. A
//! [`Calendar`] is the windows that apply to one host (its own and its groups') together with
//! the blackout (change-freeze) [`Interval`]s that apply to it.
//!
//! # Rules
//!
//! - **Local start, absolute duration.** An occurrence starts at the spec's local time on every
//!   local date the recurrence selects, in the spec's time zone, and lasts `duration` of elapsed
//!   time. A 4-hour window that starts at 01:00 on a fall-back day therefore ends at 04:00 by the
//!   wall clock, not 05:00.
//! - **Spring forward (a gap).** A start time that does not exist on that day (02:30 in
//!   `America/New_York` on the second Sunday of March) runs at the first valid instant after the
//!   gap: 03:00 local. In `Australia/Lord_Howe`, whose clocks move by 30 minutes, 02:15 runs at
//!   02:30.
//! - **Fall back (a fold).** A start time that happens twice (01:30 in New York on the first
//!   Sunday of November) runs **once**, at the earlier instant (01:30 daylight time).
//! - **Months without the day.** [`MonthlyRule::DayOfMonth`] with a day a month lacks (31 in
//!   April, 29–31 in February) runs on that month's **last day**, so "day 31" means "the end of
//!   every month". [`MonthlyRule::NthWeekday`] takes 1 to 4, or −1 for the last such weekday;
//!   every month has these.
//! - **Merging.** Occurrences that overlap or touch, of one window or of several, form one open
//!   interval in [`Calendar::open_at`] and [`Calendar::next_open`].
//! - **Blackouts win.** An instant inside a blackout is never open, whatever the windows say;
//!   a blackout cuts occurrences into the parts before and after it.
//! - **Catch-up.** Nothing is remembered about missed windows: a host that was offline during
//!   its window is simply served by [`Calendar::next_open`], the next open interval.
//! - **Bounded searches.** [`Calendar::next_open`] looks [`HORIZON_DAYS`] days ahead. An open
//!   interval that never closes (a daily 24-hour window) is reported up to that horizon.
//!
//! # Time zones
//!
//! Zone names are looked up in the machine's time zone database first (`/usr/share/zoneinfo`,
//! or the directory in `TZDIR`), which the operating system keeps current. When the machine has
//! none, or lacks the zone, the copy of the IANA database compiled into this crate (jiff's
//! `tzdb-bundle-always`) answers, so a zone name resolves on every machine; only its rules may
//! then be as old as the build.

use std::cmp::{max, min};
use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{AmbiguousOffset, TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// How far [`Calendar::next_open`] looks ahead, and how far an endless open interval is followed.
pub const HORIZON_DAYS: i64 = 400;

/// Shortest window.
pub const MIN_DURATION: SignedDuration = SignedDuration::from_mins(1);
/// Longest window.
pub const MAX_DURATION: SignedDuration = SignedDuration::from_hours(7 * 24);

const DAY: SignedDuration = SignedDuration::from_hours(24);

/// Which local dates a window occurs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Recurrence {
    /// On one date.
    Once { date: Date },
    /// Every day.
    Daily,
    /// On the chosen weekdays (non-empty, no repeats), spelled `monday` … `sunday`.
    Weekly {
        #[serde(with = "weekday_names")]
        days: Vec<Weekday>,
    },
    /// Once a month.
    Monthly(MonthlyRule),
}

/// Which day of each month a monthly window occurs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum MonthlyRule {
    /// Day 1 to 31; in a month without that day, its last day.
    DayOfMonth { day: i8 },
    /// The `nth` (1 to 4, or −1 for the last) `weekday` of the month.
    NthWeekday {
        nth: i8,
        #[serde(with = "weekday_name")]
        weekday: Weekday,
    },
}

/// One maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub recurrence: Recurrence,
    /// Local start time in `time_zone`.
    pub start: Time,
    /// Elapsed time, [`MIN_DURATION`] ..= [`MAX_DURATION`].
    pub duration: SignedDuration,
    /// IANA name, e.g. `Europe/Berlin`.
    pub time_zone: String,
}

/// What is wrong with a window or a blackout. [`ScheduleError::field`] names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown time zone {0:?}: use an IANA name such as Europe/Berlin")]
    UnknownTimeZone(String),
    #[error("a weekly window needs at least one weekday")]
    NoWeekdays,
    #[error("weekday {0} is listed twice")]
    DuplicateWeekday(String),
    #[error("day of month {0} is not between 1 and 31")]
    DayOfMonth(i8),
    #[error("nth {0} is not 1, 2, 3, 4 or -1 (the last)")]
    Nth(i8),
    #[error("duration {0:#} is not between 1 minute and 7 days")]
    Duration(SignedDuration),
    #[error("blackout {index} ends ({end}) no later than it starts ({start})")]
    EmptyBlackout { index: usize, start: Timestamp, end: Timestamp },
}

impl ScheduleError {
    /// The field at fault, as the API names it.
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::UnknownTimeZone(_) => "time_zone",
            ScheduleError::NoWeekdays | ScheduleError::DuplicateWeekday(_) => "recurrence.days",
            ScheduleError::DayOfMonth(_) => "recurrence.day",
            ScheduleError::Nth(_) => "recurrence.nth",
            ScheduleError::Duration(_) => "duration",
            ScheduleError::EmptyBlackout { .. } => "ends_at",
        }
    }
}

/// Looks an IANA zone name up: the machine's database first, then the compiled-in copy.
pub fn resolve_time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    let unknown = || ScheduleError::UnknownTimeZone(name.to_owned());
    // A name, not a POSIX TZ string or a path.
    // jiff answers `Etc/Unknown` with its "unknown" zone; that is no place's time.
    if name.is_empty()
        || name.len() > 64
        || name.starts_with('/')
        || name.contains("..")
        || name.eq_ignore_ascii_case("Etc/Unknown")
    {
        return Err(unknown());
    }
    jiff::tz::db().get(name).or_else(|_| TimeZoneDatabase::bundled().get(name)).map_err(|_| unknown())
}

impl Recurrence {
    fn validate(&self) -> Result<(), ScheduleError> {
        match self {
            Recurrence::Once { .. } | Recurrence::Daily => Ok(()),
            Recurrence::Weekly { days } => {
                if days.is_empty() {
                    return Err(ScheduleError::NoWeekdays);
                }
                for (i, day) in days.iter().enumerate() {
                    if days[..i].contains(day) {
                        return Err(ScheduleError::DuplicateWeekday(weekday_name::name(*day).to_owned()));
                    }
                }
                Ok(())
            }
            Recurrence::Monthly(MonthlyRule::DayOfMonth { day }) => {
                if (1..=31).contains(day) {
                    Ok(())
                } else {
                    Err(ScheduleError::DayOfMonth(*day))
                }
            }
            Recurrence::Monthly(MonthlyRule::NthWeekday { nth, .. }) => {
                if (1..=4).contains(nth) || *nth == -1 {
                    Ok(())
                } else {
                    Err(ScheduleError::Nth(*nth))
                }
            }
        }
    }

    /// Whether the window occurs on local date `date`.
    pub fn matches(&self, date: Date) -> bool {
        match self {
            Recurrence::Once { date: once } => *once == date,
            Recurrence::Daily => true,
            Recurrence::Weekly { days } => days.contains(&date.weekday()),
            Recurrence::Monthly(MonthlyRule::DayOfMonth { day }) => date.day() == min(*day, date.days_in_month()),
            Recurrence::Monthly(MonthlyRule::NthWeekday { nth, weekday }) => {
                date.weekday() == *weekday && date.nth_weekday_of_month(*nth, *weekday).is_ok_and(|d| d == date)
            }
        }
    }
}

impl WindowSpec {
    /// Checks every field; the error names the first one at fault.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        resolve_time_zone(&self.time_zone)?;
        self.recurrence.validate()?;
        if self.duration < MIN_DURATION || self.duration > MAX_DURATION {
            return Err(ScheduleError::Duration(self.duration));
        }
        Ok(())
    }
}

/// A half-open span of time, `[start, end)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Interval {
    /// Whether `t` lies in `[start, end)`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// The common part, if any.
    pub fn intersect(&self, other: &Interval) -> Option<Interval> {
        let start = max(self.start, other.start);
        let end = min(self.end, other.end);
        (start < end).then_some(Interval { start, end })
    }

    /// Elapsed length.
    pub fn duration(&self) -> SignedDuration {
        self.end.duration_since(self.start)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// One occurrence of one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Occurrence {
    pub start: Timestamp,
    pub end: Timestamp,
    /// Index of the window in the calendar.
    pub source: usize,
    /// The parts inside a blackout, in order.
    pub blocked: Vec<Interval>,
}

impl Occurrence {
    /// The occurrence as an interval.
    pub fn interval(&self) -> Interval {
        Interval { start: self.start, end: self.end }
    }
}

#[derive(Debug, Clone)]
struct Window {
    spec: WindowSpec,
    tz: TimeZone,
}

/// The windows and blackouts of one host (or group), and the questions the scheduler asks.
#[derive(Debug, Clone)]
pub struct Calendar {
    windows: Vec<Window>,
    /// Sorted, merged.
    blackouts: Vec<Interval>,
}

impl Calendar {
    /// Checks and resolves every window; blackouts must end after they start.
    pub fn new(windows: Vec<WindowSpec>, blackouts: Vec<Interval>) -> Result<Calendar, ScheduleError> {
        let windows = windows
            .into_iter()
            .map(|spec| {
                spec.validate()?;
                let tz = resolve_time_zone(&spec.time_zone)?;
                Ok(Window { spec, tz })
            })
            .collect::<Result<Vec<_>, ScheduleError>>()?;
        for (index, b) in blackouts.iter().enumerate() {
            if b.end <= b.start {
                return Err(ScheduleError::EmptyBlackout { index, start: b.start, end: b.end });
            }
        }
        Ok(Calendar { windows, blackouts: merge(blackouts) })
    }

    /// Whether any window applies. Without one, nothing is ever open.
    pub fn has_windows(&self) -> bool {
        !self.windows.is_empty()
    }

    /// The window with this index (an [`Occurrence::source`]).
    pub fn window(&self, index: usize) -> Option<&WindowSpec> {
        self.windows.get(index).map(|w| &w.spec)
    }

    /// The blackouts, sorted and merged.
    pub fn blackouts(&self) -> &[Interval] {
        &self.blackouts
    }

    /// The effective open interval containing `t` (window occurrences merged, minus blackouts),
    /// if any.
    pub fn open_at(&self, t: Timestamp) -> Option<Interval> {
        if !self.has_windows() || self.blocked_at(t) {
            return None;
        }
        let horizon = DAY * HORIZON_DAYS as i32;
        let (mut back, mut ahead) = (DAY * 8, DAY * 8);
        loop {
            let from = t.saturating_sub(back).ok()?;
            let to = t.saturating_add(ahead).ok()?;
            let piece = self.open_pieces(from, to).into_iter().find(|p| p.contains(t))?;
            let mut grew = false;
            if piece.start <= from && back < horizon {
                back = min(back * 4, horizon);
                grew = true;
            }
            if piece.end >= to && ahead < horizon {
                ahead = min(ahead * 4, horizon);
                grew = true;
            }
            if !grew {
                return Some(piece);
            }
        }
    }

    /// `open_at(t)`, else the first effective open interval starting after `t`, looking
    /// [`HORIZON_DAYS`] ahead.
    pub fn next_open(&self, t: Timestamp) -> Option<Interval> {
        if !self.has_windows() {
            return None;
        }
        if let Some(open) = self.open_at(t) {
            return Some(open);
        }
        let end = t.saturating_add(DAY * HORIZON_DAYS as i32).ok()?;
        let mut from = t;
        while from < end {
            let to = min(from.saturating_add(DAY * 31).ok()?, end);
            // Every open instant in [from, to) is covered by an occurrence overlapping it, so the
            // first piece that starts after `t` starts at the first open instant.
            if let Some(first) = self.open_pieces(from, to).into_iter().find(|p| p.start > t) {
                return self.open_at(first.start).or(Some(first));
            }
            from = to;
        }
        None
    }

    /// Whether `t` lies in a blackout.
    pub fn blocked_at(&self, t: Timestamp) -> bool {
        let i = self.blackouts.partition_point(|b| b.end <= t);
        self.blackouts.get(i).is_some_and(|b| b.contains(t))
    }

    /// Window occurrences overlapping `[from, to)`, in start order (then window order), with
    /// their blacked-out parts.
    pub fn occurrences(&self, from: Timestamp, to: Timestamp) -> Vec<Occurrence> {
        let mut out: Vec<Occurrence> = self
            .raw_occurrences(from, to)
            .into_iter()
            .map(|(interval, source)| Occurrence {
                start: interval.start,
                end: interval.end,
                source,
                blocked: self.blackouts.iter().filter_map(|b| b.intersect(&interval)).collect(),
            })
            .collect();
        out.sort_by_key(|o| (o.start, o.source));
        out
    }

    /// Every occurrence of every window overlapping `[from, to)`, unsorted.
    fn raw_occurrences(&self, from: Timestamp, to: Timestamp) -> Vec<(Interval, usize)> {
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        for (source, window) in self.windows.iter().enumerate() {
            // An occurrence overlapping `from` started at most MAX_DURATION (+ a day of offset
            // slack) before it.
            let first = from.to_zoned(window.tz.clone()).date().checked_sub(8.days()).unwrap_or(Date::MIN);
            let last = to.to_zoned(window.tz.clone()).date().checked_add(1.days()).unwrap_or(Date::MAX);
            let mut push = |date: Date| {
                if let Some(start) = local_start(&window.tz, date.to_datetime(window.spec.start)) {
                    if let Ok(end) = start.checked_add(window.spec.duration) {
                        if start < to && end > from {
                            out.push((Interval { start, end }, source));
                        }
                    }
                }
            };
            if let Recurrence::Once { date } = window.spec.recurrence {
                if first <= date && date <= last {
                    push(date);
                }
                continue;
            }
            let mut date = first;
            while date <= last {
                if window.spec.recurrence.matches(date) {
                    push(date);
                }
                match date.tomorrow() {
                    Ok(next) => date = next,
                    Err(_) => break,
                }
            }
        }
        out
    }

    /// The effective open intervals made of the occurrences overlapping `[from, to)`: merged,
    /// minus blackouts. Pieces are not clipped to the range.
    fn open_pieces(&self, from: Timestamp, to: Timestamp) -> Vec<Interval> {
        let merged = merge(self.raw_occurrences(from, to).into_iter().map(|(i, _)| i).collect());
        let mut out = Vec::new();
        for interval in merged {
            let mut cursor = interval.start;
            let first = self.blackouts.partition_point(|b| b.end <= interval.start);
            for b in &self.blackouts[first..] {
                if b.start >= interval.end {
                    break;
                }
                if b.start > cursor {
                    out.push(Interval { start: cursor, end: b.start });
                }
                cursor = max(cursor, b.end);
            }
            if cursor < interval.end {
                out.push(Interval { start: cursor, end: interval.end });
            }
        }
        out
    }
}

/// The instant a local date-time names, by this crate's rules: in a gap, the first instant after
/// it; in a fold, the earlier instant.
pub fn local_start(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } | AmbiguousOffset::Fold { .. } => ambiguous.earlier().ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the offset after the gap, the time lands before the transition; the
            // transition is the first valid instant after the gap.
            let before_gap = after.to_timestamp(dt).ok()?;
            tz.following(before_gap).next().map(|t| t.timestamp()).or_else(|| ambiguous.compatible().ok())
        }
    }
}

/// Sorts and merges overlapping or touching intervals.
fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort_by_key(|i| (i.start, i.end));
    let mut out: Vec<Interval> = Vec::with_capacity(intervals.len());
    for i in intervals {
        match out.last_mut() {
            Some(last) if i.start <= last.end => last.end = max(last.end, i.end),
            _ => out.push(i),
        }
    }
    out
}

/// Where in `open` a host starts work: a stable hash of `(host_id, open.start)` spread over the
/// first `fraction` (0 to 1; anything else is clamped, NaN counts as 0) of the interval. The
/// result is in `[open.start, open.end)` for a non-empty interval, the same on every call and
/// every machine.
pub fn splay(host_id: i64, open: Interval, fraction: f64) -> Timestamp {
    let fraction = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
    let length = open.end.as_nanosecond() - open.start.as_nanosecond();
    if length <= 0 {
        return open.start;
    }
    // At most `length`; an f64 keeps 53 bits, enough for spreading.
    let span = ((length as f64) * fraction) as i128;
    let span = span.clamp(0, length);
    if span == 0 {
        return open.start;
    }
    let key =
        (host_id as u64) ^ splitmix64(open.start.as_nanosecond() as u64 ^ (open.start.as_nanosecond() >> 64) as u64);
    let offset = (splitmix64(key) as i128) % span;
    Timestamp::from_nanosecond(open.start.as_nanosecond() + offset).unwrap_or(open.start)
}

/// A fixed, well-mixed 64-bit hash step (splitmix64's finaliser).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Weekdays as lower-case English names (`monday`).
pub mod weekday_name {
    use jiff::civil::Weekday;
    use serde::{Deserialize, Deserializer, Serializer};

    const NAMES: [(&str, Weekday); 7] = [
        ("monday", Weekday::Monday),
        ("tuesday", Weekday::Tuesday),
        ("wednesday", Weekday::Wednesday),
        ("thursday", Weekday::Thursday),
        ("friday", Weekday::Friday),
        ("saturday", Weekday::Saturday),
        ("sunday", Weekday::Sunday),
    ];

    /// `monday` … `sunday`.
    pub fn name(day: Weekday) -> &'static str {
        NAMES.iter().find(|(_, d)| *d == day).map_or("monday", |(n, _)| n)
    }

    /// Parses a full name, any case.
    pub fn parse(text: &str) -> Option<Weekday> {
        NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(text)).map(|(_, d)| *d)
    }

    pub fn serialize<S: Serializer>(day: &Weekday, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(name(*day))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Weekday, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom(format!("unknown weekday {text:?}: use monday … sunday")))
    }
}

/// A list of weekdays as names (see [`weekday_name`]).
mod weekday_names {
    use jiff::civil::Weekday;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(days.len()))?;
        for day in days {
            seq.serialize_element(super::weekday_name::name(*day))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Weekday>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| {
                super::weekday_name::parse(text)
                    .ok_or_else(|| serde::de::Error::custom(format!("unknown weekday {text:?}: use monday … sunday")))
            })
            .collect()
    }
}
