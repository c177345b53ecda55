//! The JSON-lines file: appending, daily rotation, compression and retention.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::config::{FileConfig, FsyncPolicy};
use crate::jobs::Clock;

pub(crate) fn utc_day(ts: Timestamp) -> Date {
    ts.to_zoned(TimeZone::UTC).date()
}

/// How rotated files are named: `audit.jsonl` → `audit-2026-11-23.jsonl` (→ `.gz`).
#[derive(Debug, Clone)]
struct Naming {
    dir: PathBuf,
    stem: String,
    /// The extension with its dot, or empty.
    ext: String,
}

impl Naming {
    fn new(path: &Path) -> Self {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (stem, ext) = match name.rsplit_once('.') {
            Some((s, e)) if !s.is_empty() => (s.to_owned(), format!(".{e}")),
            _ => (name, String::new()),
        };
        Naming { dir, stem, ext }
    }

    /// `audit-2026-11-23.jsonl`, or `audit-2026-11-23.N.jsonl` when that day was rotated before
    /// (a clock set back, a restart across a rotation that had not finished).
    fn rotated(&self, day: Date, n: u32) -> PathBuf {
        let suffix = if n == 0 { String::new() } else { format!(".{n}") };
        self.dir.join(format!("{}-{day}{suffix}{}", self.stem, self.ext))
    }

    /// The day of a rotated file (plain or `.gz`), or `None` for any other file.
    fn day_of(&self, name: &str) -> Option<(Date, bool)> {
        let rest = name.strip_prefix(&self.stem)?.strip_prefix('-')?;
        let (rest, gz) = match rest.strip_suffix(".gz") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let rest = rest.strip_suffix(self.ext.as_str())?;
        let day = match rest.split_once('.') {
            Some((d, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => d,
            Some(_) => return None,
            None => rest,
        };
        if day.len() != 10 {
            return None;
        }
        Some((day.parse().ok()?, gz))
    }
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The live file, owned by the writer thread.
#[derive(Debug)]
pub(crate) struct FileSink {
    path: PathBuf,
    naming: Naming,
    mode: u32,
    fsync: FsyncPolicy,
    file: File,
    /// The UTC day the live file's lines belong to; `None` while it is empty.
    day: Option<Date>,
    /// The day after the last rotated one: a line stamped just before midnight that reaches the
    /// writer after the rotation goes to the new file, not to a second file for its day.
    floor: Option<Date>,
    dirty: bool,
    maintenance: Maintenance,
}

impl FileSink {
    pub(crate) fn open(cfg: &FileConfig, clock: Arc<dyn Clock>) -> io::Result<Self> {
        let naming = Naming::new(&cfg.path);
        if !naming.dir.exists() {
            fs::DirBuilder::new().recursive(true).mode(0o750).create(&naming.dir)?;
        }
        let mode = cfg.mode.bits();
        let file = open_append(&cfg.path, mode)?;
        let day = first_day(&cfg.path)?;
        let maintenance = Maintenance::start(naming.clone(), mode, cfg.retention_days, clock.clone());
        let mut sink = FileSink {
            path: cfg.path.clone(),
            naming,
            mode,
            fsync: cfg.fsync,
            file,
            day,
            floor: None,
            dirty: false,
            maintenance,
        };
        // Left over from before a stop: the live file of an earlier day, rotated files not yet
        // compressed, old files past retention.
        sink.rotate_if_due(utc_day(clock.now()))?;
        sink.maintenance.send(Job::Sweep);
        Ok(sink)
    }

    /// Moves the live file aside when `today` is after the day of its lines.
    pub(crate) fn rotate_if_due(&mut self, today: Date) -> io::Result<()> {
        match self.day {
            Some(day) if today > day => self.rotate(day),
            _ => Ok(()),
        }
    }

    fn rotate(&mut self, day: Date) -> io::Result<()> {
        self.file.sync_all()?;
        self.dirty = false;
        let mut n = 0;
        let target = loop {
            let t = self.naming.rotated(day, n);
            let gz = append_gz(&t);
            if !t.exists() && !gz.exists() {
                break t;
            }
            n += 1;
        };
        // The writer is the only one that appends, and it is here: every line written so far is
        // in the renamed file, every later line goes to the new one.
        fs::rename(&self.path, &target)?;
        self.file = open_append(&self.path, self.mode)?;
        self.day = None;
        self.floor = day.tomorrow().ok();
        fsync_dir(&self.naming.dir)?;
        self.maintenance.send(Job::Compress(target));
        Ok(())
    }

    /// Appends one line (the JSON object without its newline), rotating first when the line's
    /// day is after the live file's.
    pub(crate) fn write_line(&mut self, day: Date, json: &str) -> io::Result<()> {
        // A rotation that fails (rename refused, disk full) does not cost the line: it goes to
        // the file still open, and the error is reported after.
        let rotated = self.rotate_if_due(day);
        let mut line = String::with_capacity(json.len() + 1);
        line.push_str(json);
        line.push('\n');
        // One write(2) with O_APPEND: another process appending to the same file (a second agent
        // by mistake, an operator's echo) cannot interleave inside the line.
        self.file.write_all(line.as_bytes())?;
        if self.day.is_none() {
            self.day = Some(self.floor.map_or(day, |f| f.max(day)));
        }
        match self.fsync {
            FsyncPolicy::Always => self.file.sync_data()?,
            FsyncPolicy::Batch => self.dirty = true,
            FsyncPolicy::Never => {}
        }
        rotated
    }

    /// The writer's queue is empty.
    pub(crate) fn idle(&mut self) -> io::Result<()> {
        if self.dirty {
            self.dirty = false;
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Fsyncs, then waits until compression and retention have caught up.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.dirty = false;
        self.file.sync_data()?;
        self.maintenance.barrier();
        Ok(())
    }
}

fn append_gz(p: &Path) -> PathBuf {
    let mut s = OsString::from(p.as_os_str());
    s.push(".gz");
    PathBuf::from(s)
}

fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    let file = OpenOptions::new().append(true).create(true).mode(mode).open(path)?;
    // `mode` only applies when the file is created; an existing file gets it too.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    Ok(file)
}

/// The day of the live file's first line, from its `ts`; `None` when the file is empty or its
/// first line has no readable `ts` (then the next line's day is taken).
fn first_day(path: &Path) -> io::Result<Option<Date>> {
    let mut first = String::new();
    BufReader::new(File::open(path)?.take(64 * 1024)).read_line(&mut first)?;
    let ts = serde_json::from_str::<serde_json::Value>(&first)
        .ok()
        .and_then(|v| v.get("ts").and_then(|t| t.as_str()).and_then(|t| t.parse::<Timestamp>().ok()));
    Ok(ts.map(utc_day))
}

enum Job {
    Compress(PathBuf),
    Sweep,
    Barrier(mpsc::SyncSender<()>),
}

/// The background thread that compresses rotated files and applies retention, so that the
/// writer never waits for gzip.
#[derive(Debug)]
struct Maintenance {
    tx: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Compress(p) => write!(f, "Compress({})", p.display()),
            Job::Sweep => f.write_str("Sweep"),
            Job::Barrier(_) => f.write_str("Barrier"),
        }
    }
}

impl Maintenance {
    fn start(naming: Naming, mode: u32, retention_days: u32, clock: Arc<dyn Clock>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = thread::Builder::new().name("audit-maintenance".into()).spawn(move || {
            for job in rx {
                match job {
                    Job::Compress(p) => {
                        if let Err(e) = compress(&p, mode) {
                            tracing::error!(file = %p.display(), error = %e, "audit: cannot compress rotated file");
                        }
                        sweep(&naming, mode, retention_days, clock.now());
                    }
                    Job::Sweep => sweep(&naming, mode, retention_days, clock.now()),
                    Job::Barrier(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "audit: cannot start the maintenance thread; rotated files stay uncompressed");
        }
        Maintenance { tx }
    }

    fn send(&self, job: Job) {
        let _ = self.tx.send(job);
    }

    fn barrier(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.tx.send(Job::Barrier(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

/// `x.jsonl` → `x.jsonl.gz` through `x.jsonl.gz.tmp`; the plain file is removed only once the
/// compressed one is durable under its final name.
fn compress(plain: &Path, mode: u32) -> io::Result<()> {
    let gz = append_gz(plain);
    let mut tmp = OsString::from(gz.as_os_str());
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut input = File::open(plain)?;
    let out = OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    io::copy(&mut input, &mut enc)?;
    let out = enc.finish()?;
    out.sync_all()?;
    fs::rename(&tmp, &gz)?;
    fs::remove_file(plain)?;
    if let Some(dir) = plain.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Compresses rotated files left plain (a stop during compression), removes stale `.tmp` files
/// and deletes rotated files older than the retention.
fn sweep(naming: &Naming, mode: u32, retention_days: u32, now: Timestamp) {
    let today = utc_day(now);
    let oldest_kept = today.checked_sub(i64::from(retention_days).days()).unwrap_or(Date::MIN);
    let entries = match fs::read_dir(&naming.dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(dir = %naming.dir.display(), error = %e, "audit: cannot list the log directory");
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if let Some(base) = name.strip_suffix(".gz.tmp") {
            if naming.day_of(base).is_some() {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        let Some((day, gz)) = naming.day_of(&name) else { continue };
        if day < oldest_kept {
            match fs::remove_file(&path) {
                Ok(()) => tracing::info!(file = %path.display(), "audit: deleted past retention"),
                Err(e) => tracing::error!(file = %path.display(), error = %e, "audit: cannot delete old file"),
            }
        } else if !gz {
            if let Err(e) = compress(&path, mode) {
                tracing::error!(file = %path.display(), error = %e, "audit: cannot compress rotated file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_round_trip() {
        let n = Naming::new(Path::new("/var/log/patchdeck/audit.jsonl"));
        let d: Date = "2026-11-23".parse().unwrap();
        assert_eq!(n.rotated(d, 0), Path::new("/var/log/patchdeck/audit-2026-11-23.jsonl"));
        assert_eq!(n.rotated(d, 2), Path::new("/var/log/patchdeck/audit-2026-11-23.2.jsonl"));
        assert_eq!(n.day_of("audit-2026-11-23.jsonl"), Some((d, false)));
        assert_eq!(n.day_of("audit-2026-11-23.jsonl.gz"), Some((d, true)));
        assert_eq!(n.day_of("audit-2026-11-23.2.jsonl.gz"), Some((d, true)));
        assert_eq!(n.day_of("audit.jsonl"), None);
        assert_eq!(n.day_of("audit-2026-11-23.txt"), None);
        assert_eq!(n.day_of("audit-2026-13-23.jsonl"), None);
        assert_eq!(n.day_of("other-2026-11-23.jsonl"), None);
        assert_eq!(n.day_of("audit-2026-11-23.x.jsonl"), None);
    }
}
