//! On a machine without a usable time zone database, zone names still resolve (from the copy
//! compiled in) and the DST rules still hold. `TZDIR` pointing at a directory holding only `UTC`
//! stands in for such a machine; this file holds one test so that nothing reads the database before it.

use jiff::civil::{time, Weekday};
use jiff::{SignedDuration, Timestamp};
use patchdeck_schedule::*;

#[test]
fn zones_resolve_from_the_bundled_copy() {
    let dir = std::env::temp_dir().join(format!("patchdeck-tzdir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // jiff skips a TZDIR it cannot read as a database (an empty one) and looks in the usual
    // places; one lone zone makes it a database that lacks every other zone.
    let utc = std::path::Path::new("/usr/share/zoneinfo/UTC");
    if utc.exists() {
        std::fs::copy(utc, dir.join("UTC")).unwrap();
    }
    std::env::set_var("TZDIR", &dir);
    assert!(jiff::tz::db().get("Europe/Berlin").is_err(), "the machine's database is out of the picture");

    let tz = resolve_time_zone("Europe/Berlin").expect("bundled");
    assert_eq!(tz.iana_name(), Some("Europe/Berlin"));
    let window = WindowSpec {
        recurrence: Recurrence::Weekly { days: vec![Weekday::Sunday] },
        start: time(2, 30, 0, 0),
        duration: SignedDuration::from_mins(60),
        time_zone: "Europe/Berlin".into(),
    };
    let calendar = Calendar::new(vec![window], vec![]).unwrap();
    let from: Timestamp = "2025-03-29T00:00Z".parse().unwrap();
    let starts: Vec<Timestamp> =
        calendar.occurrences(from, "2025-04-07T00:00Z".parse().unwrap()).iter().map(|o| o.start).collect();
    // (Offsets written out: parsing `[Europe/Berlin]` would ask jiff's own lookup, which has no
    // fallback.)
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    assert_eq!(
        starts,
        [at("2025-03-30T03:00+02:00"), at("2025-04-06T02:30+02:00")],
        "spring forward runs after the gap"
    );
    assert!(matches!(resolve_time_zone("Mars/Olympus_Mons"), Err(ScheduleError::UnknownTimeZone(_))));
    std::fs::remove_dir_all(&dir).unwrap();
}
