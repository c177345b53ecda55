//! Numbers: percentiles, counters by kind, and what `/proc` says about a process.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// Nearest-rank percentile (`p` in 0–100) of ascending `sorted`; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    // n * p first, so whole ranks (n = 100, p = 99) stay exact in floating point.
    let rank = (n as f64 * p / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

/// Distribution of latencies in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencySummary {
    pub fn of(samples: &[Duration]) -> Option<Self> {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let at = |p| percentile(&ms, p).map(round2);
        Some(LatencySummary {
            count: ms.len(),
            p50: at(50.0)?,
            p90: at(90.0)?,
            p99: at(99.0)?,
            max: round2(*ms.last()?),
            mean: round2(ms.iter().sum::<f64>() / ms.len() as f64),
        })
    }
}

/// Mean and maximum of byte counts.
#[derive(Debug, Clone, Serialize)]
pub struct SizeSummary {
    pub mean: f64,
    pub max: usize,
}

impl SizeSummary {
    pub fn of(samples: &[usize]) -> Option<Self> {
        let max = *samples.iter().max()?;
        Some(SizeSummary { mean: round2(samples.iter().sum::<usize>() as f64 / samples.len() as f64), max })
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Occurrences by kind, with the first message of each kind (for diagnosis).
#[derive(Debug, Default)]
pub struct Tally(Mutex<BTreeMap<String, (u64, String)>>);

#[derive(Debug, Clone, Serialize)]
pub struct TallyEntry {
    pub count: u64,
    pub example: String,
}

impl Tally {
    pub fn add(&self, kind: impl Into<String>, example: impl FnOnce() -> String) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.entry(kind.into()).or_insert_with(|| (0, example()));
        entry.0 += 1;
    }

    /// Entries whose kind starts with `prefix` (prefix removed).
    pub fn snapshot(&self, prefix: &str) -> BTreeMap<String, TallyEntry> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(|(k, (count, example))| {
                let kind = k.strip_prefix(prefix)?;
                Some((kind.to_owned(), TallyEntry { count: *count, example: example.clone() }))
            })
            .collect()
    }
}

/// utime + stime (clock ticks) from the text of `/proc/<pid>/stat`. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state (3), ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt,
    // majflt, cmajflt, utime (14), stime (15).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time (user + system) `pid` has used so far, in milliseconds; `pid` 0 is this process.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let path = if pid == 0 { "/proc/self/stat".to_owned() } else { format!("/proc/{pid}/stat") };
    let ticks = parse_stat_cpu_ticks(&std::fs::read_to_string(path).ok()?)?;
    Some(ticks as f64 * 1e3 / rustix::param::clock_ticks_per_second() as f64)
}

/// A `kB` field (`VmRSS`, `VmHWM`, `Threads`) of `/proc/<pid>/status`; `pid` 0 is this process.
pub fn status_field(pid: u32, name: &str) -> Option<u64> {
    let path = if pid == 0 { "/proc/self/status".to_owned() } else { format!("/proc/{pid}/status") };
    status_value(&std::fs::read_to_string(path).ok()?, name)
}

/// The number in field `name` of a `/proc/.../status` text (`VmRSS:\t  1796 kB` → 1796).
pub fn status_value(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Context switches (voluntary and not) of all threads of `pid` so far. Threads that ended
/// are not counted, so compare readings over a window in which the thread pool is stable.
pub fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else { continue };
        total += status_value(&status, "voluntary_ctxt_switches").unwrap_or(0)
            + status_value(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
    }
    Some(total)
}

/// Open file descriptors of `pid` (0: this process).
pub fn open_fds(pid: u32) -> Option<usize> {
    let path = if pid == 0 { "/proc/self/fd".to_owned() } else { format!("/proc/{pid}/fd") };
    Some(std::fs::read_dir(path).ok()?.count())
}

/// The soft and hard limits on open files, before and after raising the soft one to the hard one.
#[derive(Debug, Clone, Serialize)]
pub struct NofileLimit {
    pub soft_before: Option<u64>,
    pub soft: Option<u64>,
    pub hard: Option<u64>,
    pub error: Option<String>,
}

/// Raises this process's `RLIMIT_NOFILE` soft limit to its hard limit (`None` = unlimited).
pub fn raise_nofile() -> NofileLimit {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let before = getrlimit(Resource::Nofile);
    let mut error = None;
    if before.current != before.maximum && before.maximum.is_some() {
        if let Err(e) = setrlimit(Resource::Nofile, Rlimit { current: before.maximum, maximum: before.maximum }) {
            error = Some(e.to_string());
        }
    }
    let after = getrlimit(Resource::Nofile);
    NofileLimit { soft_before: before.current, soft: after.current, hard: after.maximum, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 50.0), Some(50.0));
        assert_eq!(percentile(&hundred, 90.0), Some(90.0));
        assert_eq!(percentile(&hundred, 99.0), Some(99.0));
        assert_eq!(percentile(&hundred, 100.0), Some(100.0));
        assert_eq!(percentile(&hundred, 0.0), Some(1.0));
        assert_eq!(percentile(&hundred, 99.5), Some(100.0));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 99.0), Some(10.0), "with 10 samples p99 is the maximum");
        assert_eq!(percentile(&ten, 50.0), Some(5.0));
        assert_eq!(percentile(&[7.5], 99.0), Some(7.5));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn latency_summary_sorts_and_converts_to_ms() {
        let samples: Vec<Duration> = (1..=200).rev().map(|ms| Duration::from_micros(ms * 1000 + 250)).collect();
        let s = LatencySummary::of(&samples).unwrap();
        assert_eq!(s.count, 200);
        assert_eq!(s.p50, 100.25);
        assert_eq!(s.p90, 180.25);
        assert_eq!(s.p99, 198.25);
        assert_eq!(s.max, 200.25);
        assert_eq!(s.mean, 100.75);
        assert!(LatencySummary::of(&[]).is_none());
        let sizes = SizeSummary::of(&[600, 601, 605]).unwrap();
        assert_eq!((sizes.mean, sizes.max), (602.0, 605));
    }

    #[test]
    fn stat_cpu_ticks_survive_odd_command_names() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1200 0 3 0 250 75 0 0 20 0 9 0 1234 1 2";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("4242 (short"), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1 2"), None);
        // This process has a stat file, a resident set and open descriptors.
        assert!(cpu_ms(0).is_some());
        assert!(status_field(0, "VmRSS").unwrap() > 0);
        assert!(open_fds(0).unwrap() >= 3);
        assert!(context_switches(std::process::id()).is_some());
    }

    #[test]
    fn status_values_are_read_by_exact_field_name() {
        let status = "Name:\tpatchdeck\nVmHWM:\t  874344 kB\nVmRSS:\t  874000 kB\nThreads:\t7\n\
                      voluntary_ctxt_switches:\t1500\nnonvoluntary_ctxt_switches:\t42\n";
        assert_eq!(status_value(status, "VmRSS"), Some(874_000));
        assert_eq!(status_value(status, "Threads"), Some(7));
        assert_eq!(status_value(status, "voluntary_ctxt_switches"), Some(1500));
        assert_eq!(status_value(status, "nonvoluntary_ctxt_switches"), Some(42));
        assert_eq!(status_value(status, "Vm"), None);
    }

    #[test]
    fn tally_counts_by_kind_and_keeps_the_first_example() {
        let t = Tally::default();
        t.add("measured:status 503", || "first".into());
        t.add("measured:status 503", || "second".into());
        t.add("held:timeout", || "t".into());
        assert_eq!(t.snapshot("").values().map(|e| e.count).sum::<u64>(), 3);
        let measured = t.snapshot("measured:");
        assert_eq!(measured.len(), 1);
        assert_eq!(measured["status 503"].count, 2);
        assert_eq!(measured["status 503"].example, "first");
    }
}
