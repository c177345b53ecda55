//! The agent's audit log: who asked the agent to do what, and what came of it.
//!
//! Request handlers, the job engine and the reloaders call [`AuditLog::record`] with an
//! [`AuditEvent`]. The call stamps the event with the injected clock and puts it on a bounded
//! queue; it never waits for a disk or a network. One writer thread takes events off the queue
//! and writes each to every enabled sink:
//!
//! 1. **A JSON-lines file** (default `/var/log/patchdeck/audit.jsonl`), see below.
//! 2. **journald**, through its native protocol, when the agent runs under systemd
//!    (`journald.mode: auto`) or when told (`on`).
//! 3. **Remote syslog**, RFC 5424 over UDP or TCP (octet counting), when `syslog:` is set.
//!
//! When the queue is full the event is dropped, counted in [`AuditStats::dropped`], and the
//! writer writes an `audit_dropped` event with the count as soon as it catches up: a drop is
//! never silent. A sink that fails (disk full, collector down) is logged through `tracing` and
//! counted in [`AuditStats::sink_errors`]; the other sinks still get the event.
//!
//! # The JSON-lines schema
//!
//! One object per line, keys in this order:
//!
//! | key | type | meaning |
//! | --- | --- | --- |
//! | `ts` | string | when the event was recorded: RFC 3339, UTC, microseconds, `Z` (`2026-11-23T14:05:09.123456Z`) |
//! | `event` | string | the kind, snake_case (below) |
//! | `actor` | object | `kind`: `peer` or `agent`; a peer adds `addr` (`ip:port`) and, when it presented a verified certificate, `cn`, `serial` (lowercase hex), `fingerprint` (SHA-256 of the DER, lowercase hex) |
//! | `outcome` | string | `success`, `failure` or `denied` |
//!
//! then the fields of the kind (optional ones are left out when absent):
//!
//! | `event` | fields | `outcome` |
//! | --- | --- | --- |
//! | `request` | `request_id`, `method`, `path` (no query string), `status` (number), `duration_ms` (number) | 401/403 `denied`, other ≥ 400 `failure`, else `success` |
//! | `package_operation` | `job_id`, `operation`, `packages` (array of strings), `error`? | as given |
//! | `auth_failure` | `reason` | `denied` |
//! | `allowlist_denied` | (the actor's `addr`) | `denied` |
//! | `config_reload` | `source`, `error`? | as given |
//! | `certificate_reload` | `error`? | as given |
//! | `audit_dropped` | `count` (number) | `failure` |
//!
//! New kinds and new optional fields may be added; existing names and meanings do not change.
//!
//! **Secrets are never logged**: the event types have no field for a header, a body, a token, a
//! password or a key, and a request's path loses its query string before it is written. Error
//! strings come from the agent's own error types, which do not carry secrets.
//!
//! # The file
//!
//! Opened with `O_APPEND`, created with mode `0600` (or `0640`, `file.mode`), and each line is
//! one `write(2)`. **fsync** (`file.fsync`): `batch` (default) fsyncs whenever the writer has
//! emptied its queue, `always` after every line, `never` leaves it to the kernel; rotation and
//! [`AuditLog::flush`] always fsync.
//!
//! **Rotation** is daily at UTC midnight, by the UTC day of each event's `ts`: before writing the
//! first line of a later day (or, with no traffic, within a second of midnight) the writer fsyncs
//! and renames `audit.jsonl` to `audit-YYYY-MM-DD.jsonl` and opens a new `audit.jsonl`. Only the
//! writer appends and it is the one renaming, so no line is lost or written twice. (A line
//! stamped in the last instant before midnight that reaches the writer after a no-traffic
//! rotation goes to the new day's file rather than opening a second file for its day; a
//! rotation that fails leaves the line in the file still open.) A background
//! thread then gzips the rotated file to `audit-YYYY-MM-DD.jsonl.gz` (through a `.tmp` file,
//! removing the plain one only after the `.gz` is fsynced) and deletes rotated files whose day
//! is more than `file.retention_days` (30) days before today. At start the same clean-up runs,
//! and a live file left from an earlier day is rotated first.
//!
//! # journald
//!
//! One datagram per event with `MESSAGE` (a one-line summary), `PRIORITY` (6 success, 5 denied,
//! 4 failure, 3 `audit_dropped`), `SYSLOG_IDENTIFIER=patchdeck-agent`, `PATCHDECK_TS`,
//! `PATCHDECK_EVENT`, `PATCHDECK_OUTCOME`, `PATCHDECK_ACTOR_<KEY>` and `PATCHDECK_<FIELD>` for
//! every field above (lists space-separated). Values with a newline use the length-prefixed
//! binary form.
//!
//! # Syslog
//!
//! `<PRI>1 TS HOST patchdeck-agent PID EVENT [patchdeck@32473 …] SUMMARY`, one message per
//! datagram over UDP (RFC 5426) or octet-counted (`LEN SP MSG`, RFC 6587) over TCP; facility 13
//! (log audit) by default, severity as journald's `PRIORITY`. The structured-data element
//! ([`SD_ID`]) carries `ts`, `event`, `outcome`, the actor as `actor_kind`, `actor_addr`, … and
//! the kind's fields under their JSON names; `"`, `\` and `]` in values are escaped with `\`.
//! MSG is UTF-8 without a BOM. TCP reconnects once per message; after a failed connect, events
//! skip syslog (counted as sink errors) for 10 s. TCP syslog has no acknowledgement: an event
//! written just before the collector dies can be lost, which the file sink does not suffer.
//!
//! # Lifecycle
//!
//! The writer stops when the last handle is dropped, after writing what is queued. Call
//! [`AuditLog::flush`] before exiting so that the file is fsynced and rotated files are
//! compressed.

mod config;
mod event;
mod file;
mod journald;
mod syslog;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub use config::{
    AuditConfig, FileConfig, FileMode, FsyncPolicy, JournaldConfig, JournaldMode, SyslogConfig, SyslogTransport,
};
pub use event::{Actor, AuditEvent, Outcome};
pub use journald::journald_detected;
pub use syslog::SD_ID;

use crate::jobs::Clock;
use event::Stamped;
use file::{utc_day, FileSink};

/// Why the audit log could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("invalid audit configuration: {0}")]
    Config(String),
    #[error("audit {sink}: {source}")]
    Sink {
        sink: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Counters since the log was opened, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStats {
    /// Events accepted onto the queue.
    pub recorded: u64,
    /// Events dropped because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Failed writes, summed over sinks.
    pub sink_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    recorded: AtomicU64,
    dropped: AtomicU64,
    /// Dropped but not yet reported in an `audit_dropped` event.
    unreported: AtomicU64,
    sink_errors: AtomicU64,
}

enum Msg {
    Event(Stamped),
    Flush(mpsc::SyncSender<()>),
    Pause(mpsc::SyncSender<()>, mpsc::Receiver<()>),
}

#[derive(Debug)]
struct Inner {
    tx: Option<mpsc::SyncSender<Msg>>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
}

/// The handle every part of the agent records through. Cloning is cheap (an `Arc`). The writer
/// stops once every handle is dropped, after writing what is queued.
#[derive(Debug, Clone)]
pub struct AuditLog {
    inner: Arc<Inner>,
}

/// Returned by [`AuditLog::pause`]: the writer takes nothing off the queue until it is dropped.
#[derive(Debug)]
pub struct PauseGuard {
    _release: mpsc::SyncSender<()>,
}

impl AuditLog {
    /// Validates `config`, opens every enabled sink (journald `auto` asks the process
    /// environment) and starts the writer thread. A sink that cannot be opened is an error: an
    /// agent that was told to audit does not start without its audit log.
    pub fn open(config: &AuditConfig, clock: Arc<dyn Clock>) -> Result<Self, AuditError> {
        config.validate()?;
        if !config.enabled {
            return Ok(AuditLog::disabled(clock));
        }
        let file = if config.file.enabled {
            let f = FileSink::open(&config.file, clock.clone()).map_err(|source| AuditError::Sink {
                sink: "file",
                source: std::io::Error::new(source.kind(), format!("{}: {source}", config.file.path.display())),
            })?;
            Some(f)
        } else {
            None
        };
        let journald_on = match config.journald.mode {
            JournaldMode::On => true,
            JournaldMode::Off => false,
            JournaldMode::Auto => journald_detected(|v| std::env::var_os(v), &config.journald.socket),
        };
        let journald = if journald_on {
            Some(
                journald::JournaldSink::open(&config.journald.socket)
                    .map_err(|source| AuditError::Sink { sink: "journald", source })?,
            )
        } else {
            None
        };
        let syslog = match &config.syslog {
            Some(s) => Some(syslog::SyslogSink::open(s).map_err(|source| AuditError::Sink { sink: "syslog", source })?),
            None => None,
        };
        let (tx, rx) = mpsc::sync_channel(config.queue_capacity);
        let counters = Arc::new(Counters::default());
        let writer = Writer { file, journald, syslog, clock: clock.clone(), counters: counters.clone() };
        thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| AuditError::Sink { sink: "writer thread", source })?;
        Ok(AuditLog { inner: Arc::new(Inner { tx: Some(tx), clock, counters }) })
    }

    /// A log that writes nothing (`audit.enabled: false`).
    pub fn disabled(clock: Arc<dyn Clock>) -> Self {
        AuditLog { inner: Arc::new(Inner { tx: None, clock, counters: Arc::default() }) }
    }

    /// Records one event, stamped now. Never blocks: when the queue is full the event is counted
    /// as dropped and reported by an `audit_dropped` event.
    pub fn record(&self, event: AuditEvent) {
        let Some(tx) = &self.inner.tx else { return };
        let msg = Msg::Event(Stamped { ts: self.inner.clock.now(), event });
        let c = &self.inner.counters;
        match tx.try_send(msg) {
            Ok(()) => {
                c.recorded.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                c.unreported.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Blocks until everything recorded before the call is written, the file fsynced, and
    /// rotated files compressed and swept. For shutdown and tests; async code calls it from
    /// `spawn_blocking`.
    pub fn flush(&self) {
        let Some(tx) = &self.inner.tx else { return };
        let (done, wait) = mpsc::sync_channel(1);
        if tx.send(Msg::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Holds the writer until the guard is dropped, so that the queue fills up: shows (and
    /// tests) what happens under back-pressure. Returns once the writer is held.
    pub fn pause(&self) -> PauseGuard {
        let (release, hold) = mpsc::sync_channel(1);
        let (held, wait) = mpsc::sync_channel(1);
        if let Some(tx) = &self.inner.tx {
            if tx.send(Msg::Pause(held, hold)).is_ok() {
                let _ = wait.recv();
            }
        }
        PauseGuard { _release: release }
    }

    pub fn stats(&self) -> AuditStats {
        let c = &self.inner.counters;
        AuditStats {
            recorded: c.recorded.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            sink_errors: c.sink_errors.load(Ordering::Relaxed),
        }
    }
}

struct Writer {
    file: Option<FileSink>,
    journald: Option<journald::JournaldSink>,
    syslog: Option<syslog::SyslogSink>,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut since_report = 0u32;
        loop {
            // Drops are reported once the queue is drained, and at least every 1000 events
            // under sustained overload.
            since_report += 1;
            if since_report >= 1000 {
                since_report = 0;
                self.report_drops();
            }
            let msg = match rx.try_recv() {
                Ok(m) => m,
                Err(mpsc::TryRecvError::Empty) => {
                    self.report_drops();
                    self.idle();
                    match rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            };
            match msg {
                Msg::Event(rec) => self.write(&rec),
                Msg::Flush(done) => {
                    self.report_drops();
                    self.idle();
                    if let Some(f) = &mut self.file {
                        if let Err(e) = f.flush() {
                            self.sink_error("file", &e);
                        }
                    }
                    let _ = done.send(());
                }
                Msg::Pause(held, hold) => {
                    let _ = held.send(());
                    let _ = hold.recv();
                }
            }
        }
        self.report_drops();
        if let Some(f) = &mut self.file {
            if let Err(e) = f.flush() {
                self.sink_error("file", &e);
            }
        }
    }

    /// The queue is empty: fsync a batch, and rotate at midnight even without traffic.
    fn idle(&mut self) {
        let today = utc_day(self.clock.now());
        if let Some(f) = &mut self.file {
            if let Err(e) = f.rotate_if_due(today).and_then(|()| f.idle()) {
                self.sink_error("file", &e);
            }
        }
    }

    fn report_drops(&mut self) {
        let count = self.counters.unreported.swap(0, Ordering::Relaxed);
        if count > 0 {
            tracing::warn!(count, "audit: queue full, events dropped");
            self.write(&Stamped { ts: self.clock.now(), event: AuditEvent::AuditDropped { count } });
        }
    }

    fn write(&mut self, rec: &Stamped) {
        if let Some(f) = &mut self.file {
            if let Err(e) = f.write_line(utc_day(rec.ts), &rec.to_json()) {
                self.sink_error("file", &e);
            }
        }
        if let Some(j) = &self.journald {
            if let Err(e) = j.write(rec) {
                self.sink_error("journald", &e);
            }
        }
        if let Some(s) = &mut self.syslog {
            if let Err(e) = s.write(rec) {
                self.sink_error("syslog", &e);
            }
        }
    }

    fn sink_error(&self, sink: &'static str, e: &std::io::Error) {
        self.counters.sink_errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(sink, error = %e, "audit: write failed");
    }
}
