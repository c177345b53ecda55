//! Running package-manager commands: non-interactive, in their own process
//! group, with a timeout, with stdout, stderr and the exit status captured.
//!
//! On timeout the whole process group gets `SIGTERM`, then `SIGKILL` after
//! [`KILL_GRACE`]: a package manager's helpers (gpgv, http methods) die with
//! it instead of lingering with the lock held. Every command also carries a
//! unique [`EXEC_MARKER_ENV`] in its environment, and a timed-out command's
//! marked descendants that left the group (apt runs dpkg in a session of its
//! own) are stopped the same way (see [`crate::procs`]).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};

use crate::error::{PkgError, Result};

/// How long a process group gets between `SIGTERM` and `SIGKILL`.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// The environment variable that marks every process a command starts.
pub const EXEC_MARKER_ENV: &str = "PATCHDECK_EXEC_ID";

/// Makes each command's marker unique within this process.
static NEXT_MARKER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long we keep reading output after the main process exited, in case a
/// grandchild still holds the pipe open.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// Environment every child gets: English, machine-parsable, never prompting.
const BASE_ENV: &[(&str, &str)] = &[
    ("LC_ALL", "C"),
    ("LANG", "C"),
    ("LANGUAGE", ""),
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("APT_LISTCHANGES_FRONTEND", "none"),
    ("NEEDRESTART_SUSPEND", "1"),
    ("SYSTEMD_PAGER", ""),
    ("PAGER", "cat"),
];

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives output lines as they are produced (for progress and job logs).
pub type LineSink<'a> = &'a mut dyn FnMut(Stream, &str);

/// A command to run.
#[derive(Clone)]
pub struct Cmd {
    program: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    capture_limit: Option<usize>,
}

impl Cmd {
    pub fn new(program: impl Into<String>, timeout: Duration) -> Self {
        Cmd { program: program.into(), args: Vec::new(), env: Vec::new(), timeout, capture_limit: None }
    }

    /// Keeps at most `bytes` of stdout and of stderr in the [`Output`] (the end; earlier text is
    /// dropped) and splits lines longer than `bytes`, so a command that prints without end
    /// cannot exhaust memory. The sink still sees every line. For programs we do not control
    /// (hooks).
    pub fn capture_limit(mut self, bytes: usize) -> Self {
        self.capture_limit = Some(bytes.max(1));
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn program(&self) -> &str {
        &self.program
    }

    /// Runs the command, streaming lines to `sink`, and returns its output
    /// whatever its exit status. Fails only if it cannot start or times out.
    pub fn run(&self, sink: Option<LineSink<'_>>) -> Result<Output> {
        run(self, sink)
    }

    /// Runs the command and fails unless it exits with one of `ok_codes`.
    pub fn run_ok(&self, ok_codes: &[i32], sink: Option<LineSink<'_>>) -> Result<Output> {
        let out = self.run(sink)?;
        match out.code() {
            Some(code) if ok_codes.contains(&code) => Ok(out),
            _ => Err(out.failure(self)),
        }
    }
}

/// The command line as a user would type it in a POSIX shell (for messages,
/// logs, and replaying it by hand): arguments with anything but plain
/// characters are single-quoted.
impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.program)?;
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
            if arg.is_empty() || !arg.chars().all(plain) {
                write!(f, " '{}'", arg.replace('\'', r"'\''"))?;
            } else {
                write!(f, " {arg}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cmd({self}, timeout {:?})", self.timeout)
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    /// The exit code, or `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// A [`PkgError::CommandFailed`] describing this output.
    pub fn failure(&self, cmd: &Cmd) -> PkgError {
        let status = match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "unknown status".to_owned(),
        };
        PkgError::CommandFailed { command: cmd.to_string(), status, detail: self.error_summary() }
    }

    /// The most telling lines of the output, for an error message: the lines
    /// starting with `E:`/`error` when there are any, else the last lines of
    /// stderr, else of stdout.
    pub fn error_summary(&self) -> String {
        let flagged: Vec<&str> = self
            .stderr
            .lines()
            .chain(self.stdout.lines())
            .map(str::trim)
            .filter(|l| {
                let lower = l.to_ascii_lowercase();
                l.starts_with("E:") || lower.starts_with("error") || lower.contains(" error:")
            })
            .collect();
        let lines: Vec<&str> = if !flagged.is_empty() {
            flagged
        } else {
            let text = if self.stderr.trim().is_empty() { &self.stdout } else { &self.stderr };
            text.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
        };
        let tail = &lines[lines.len().saturating_sub(5)..];
        if tail.is_empty() {
            "no output".to_owned()
        } else {
            tail.join(" | ")
        }
    }

    /// stdout and stderr together, for matching messages that may be on either.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

enum Event {
    Line(Stream, String),
    Eof,
    Exited(std::io::Result<ExitStatus>),
}

fn run(cmd: &Cmd, mut sink: Option<LineSink<'_>>) -> Result<Output> {
    let started = Instant::now();
    let marker = format!("{}-{}", std::process::id(), NEXT_MARKER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .envs(BASE_ENV.iter().map(|(k, v)| (*k, *v)))
        .envs(cmd.env.iter().map(|(k, v)| (k, v)))
        .env(EXEC_MARKER_ENV, &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    tracing::debug!(command = %cmd, "running");
    let mut child = command.spawn().map_err(|source| PkgError::Spawn { program: cmd.program.clone(), source })?;
    let pgid = Pid::from_child(&child);

    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    spawn_reader(stdout, Stream::Stdout, tx.clone(), cmd.capture_limit);
    spawn_reader(stderr, Stream::Stderr, tx.clone(), cmd.capture_limit);
    thread::spawn(move || {
        let _ = tx.send(Event::Exited(child.wait()));
    });

    let mut out = String::new();
    let mut err = String::new();
    let mut open_streams = 2;
    let mut status = None;
    let mut deadline = started + cmd.timeout;
    let mut phase = Phase::Running;

    while status.is_none() || open_streams > 0 {
        let now = Instant::now();
        let event = if now >= deadline { Err(RecvTimeoutError::Timeout) } else { rx.recv_timeout(deadline - now) };
        match event {
            Ok(Event::Line(stream, line)) => {
                if let Some(sink) = sink.as_mut() {
                    sink(stream, &line);
                }
                let buf = match stream {
                    Stream::Stdout => &mut out,
                    Stream::Stderr => &mut err,
                };
                buf.push_str(&line);
                buf.push('\n');
                if let Some(limit) = cmd.capture_limit.filter(|limit| buf.len() > 2 * limit) {
                    keep_tail(buf, limit);
                }
            }
            Ok(Event::Eof) => open_streams -= 1,
            Ok(Event::Exited(result)) => {
                let exit = result.map_err(|source| PkgError::Spawn { program: cmd.program.clone(), source })?;
                status = Some(exit);
                if phase == Phase::Running {
                    // Give stragglers holding our pipes a moment, then stop reading.
                    deadline = Instant::now() + DRAIN_GRACE;
                    phase = Phase::Draining;
                }
            }
            Err(RecvTimeoutError::Timeout) => match phase {
                Phase::Running => {
                    tracing::warn!(command = %cmd, timeout = ?cmd.timeout, "timed out, sending SIGTERM");
                    let _ = kill_process_group(pgid, Signal::TERM);
                    deadline = Instant::now() + KILL_GRACE;
                    phase = Phase::Terminating;
                }
                Phase::Terminating => {
                    tracing::warn!(command = %cmd, "still running, sending SIGKILL");
                    let _ = kill_process_group(pgid, Signal::KILL);
                    deadline = Instant::now() + KILL_GRACE;
                    phase = Phase::Killed;
                }
                Phase::Killed | Phase::Draining => break,
            },
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }

    if matches!(phase, Phase::Terminating | Phase::Killed) {
        // Descendants that left the process group (a new session) still carry the marker.
        let strays = crate::procs::kill_marked(EXEC_MARKER_ENV, &marker, KILL_GRACE);
        if !strays.is_empty() {
            tracing::warn!(command = %cmd, groups = ?strays, "stopped processes that outlived the command");
        }
        return Err(PkgError::Timeout { command: cmd.to_string(), timeout: cmd.timeout });
    }
    if let Some(limit) = cmd.capture_limit {
        keep_tail(&mut out, limit);
        keep_tail(&mut err, limit);
    }
    let status = status.expect("loop ends with a status unless timed out");
    let output = Output { status, stdout: out, stderr: err, elapsed: started.elapsed() };
    tracing::debug!(command = %cmd, status = ?output.code(), elapsed = ?output.elapsed, "finished");
    Ok(output)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Terminating,
    Killed,
    Draining,
}

/// Drops the beginning of `buf` so that at most `limit` bytes are left, cutting at a character
/// boundary.
fn keep_tail(buf: &mut String, limit: usize) {
    if buf.len() <= limit {
        return;
    }
    let mut cut = buf.len() - limit;
    while !buf.is_char_boundary(cut) {
        cut += 1;
    }
    buf.drain(..cut);
}

fn spawn_reader(pipe: impl Read + Send + 'static, stream: Stream, tx: mpsc::Sender<Event>, max_line: Option<usize>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        let max_line = max_line.map_or(u64::MAX, |m| u64::try_from(m).unwrap_or(u64::MAX));
        loop {
            buf.clear();
            match (&mut reader).take(max_line).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while matches!(buf.last(), Some(b'\n' | b'\r')) {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send(Event::Line(stream, line)).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Event::Eof);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Cmd {
        Cmd::new("sh", timeout).arg("-c").arg(script)
    }

    #[test]
    fn captures_stdout_stderr_and_exit_code() {
        let out = sh("echo out; echo err >&2; exit 3", Duration::from_secs(10)).run(None).unwrap();
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.code(), Some(3));
    }

    #[test]
    fn streams_lines_to_the_sink_in_order() {
        let mut seen = Vec::new();
        let mut sink = |s: Stream, l: &str| seen.push((s, l.to_owned()));
        sh("echo a; echo b; echo c >&2", Duration::from_secs(10)).run(Some(&mut sink)).unwrap();
        let stdout: Vec<_> = seen.iter().filter(|(s, _)| *s == Stream::Stdout).map(|(_, l)| l.as_str()).collect();
        assert_eq!(stdout, ["a", "b"]);
        assert!(seen.contains(&(Stream::Stderr, "c".to_owned())));
    }

    #[test]
    fn runs_in_the_c_locale_without_a_terminal() {
        let out = Cmd::new("sh", Duration::from_secs(10))
            .arg("-c")
            .arg("echo $LC_ALL $DEBIAN_FRONTEND; test -t 0 || echo no-tty")
            .env("LANG", "de_DE.UTF-8")
            .run(None)
            .unwrap();
        // An explicit per-command env wins over the base env, but LC_ALL still pins C.
        assert_eq!(out.stdout, "C noninteractive\nno-tty\n");
    }

    #[test]
    fn a_capture_limit_keeps_the_end_and_splits_long_lines() {
        let mut lines = 0;
        let mut sink = |_: Stream, _: &str| lines += 1;
        let out = sh("seq 1 20000; head -c 4500 /dev/zero | tr '\\0' x; echo; echo last", Duration::from_secs(10))
            .capture_limit(1000)
            .run(Some(&mut sink))
            .unwrap();
        assert!(out.stdout.len() <= 1000, "{}", out.stdout.len());
        assert!(out.stdout.ends_with("last\n"), "{}", out.stdout);
        assert!(!out.stdout.contains("\n1\n"), "the beginning was dropped");
        // 20000 numbers, the 4500-byte line in five pieces, and the last line.
        assert_eq!(lines, 20000 + 5 + 1);
    }

    #[test]
    fn runs_in_its_own_process_group() {
        let out = sh("ps -o pgid= -p $$; ps -o pid= -p $$", Duration::from_secs(10)).run(None).unwrap();
        let ids: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "{out:?}");
        assert_eq!(ids[0], ids[1], "the child leads its own group");
    }

    #[test]
    fn timeout_terminates_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("grandchild-survived");
        // The grandchild would write the marker after 3 s; killing the group must stop it.
        let script = format!("(sleep 3; touch {}) & sleep 60", marker.display());
        let started = Instant::now();
        let err = sh(&script, Duration::from_millis(300)).run(None).unwrap_err();
        assert!(matches!(err, PkgError::Timeout { .. }), "{err}");
        assert!(err.is_retryable());
        assert!(started.elapsed() < Duration::from_secs(3));
        thread::sleep(Duration::from_secs(4));
        assert!(!marker.exists(), "grandchild outlived the timeout");
    }

    #[test]
    fn timeout_also_stops_descendants_in_a_new_session() {
        // apt runs dpkg this way: setsid takes it out of our process group.
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("setsid sh -c 'echo $$ > {}; exec sleep 60' & sleep 60", pidfile.display());
        let err = sh(&script, Duration::from_millis(500)).run(None).unwrap_err();
        assert!(matches!(err, PkgError::Timeout { .. }), "{err}");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        // Gone, or a zombie waiting for its reaper: either way no longer running.
        assert!(stat.is_empty() || stat.contains(") Z "), "still running: {stat}");
    }

    #[test]
    fn every_command_is_marked_uniquely() {
        let marker = |_| sh(&format!("echo ${EXEC_MARKER_ENV}"), Duration::from_secs(10)).run(None).unwrap().stdout;
        let (a, b) = (marker(0), marker(1));
        assert!(a.starts_with(&format!("{}-", std::process::id())), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn sigterm_ignored_escalates_to_sigkill() {
        let err = sh("trap '' TERM; sleep 30", Duration::from_millis(200)).run(None).unwrap_err();
        assert!(matches!(err, PkgError::Timeout { .. }), "{err}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = Cmd::new("patchdeck-no-such-program", Duration::from_secs(1)).run(None).unwrap_err();
        assert!(err.to_string().contains("patchdeck-no-such-program"), "{err}");
    }

    #[test]
    fn run_ok_reports_the_error_lines() {
        let err = sh(
            "echo 'Reading package lists...'; echo 'E: Unable to locate package nope' >&2; exit 100",
            Duration::from_secs(10),
        )
        .run_ok(&[0], None)
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit code 100"), "{msg}");
        assert!(msg.contains("E: Unable to locate package nope"), "{msg}");
    }

    #[test]
    fn a_grandchild_holding_the_pipe_does_not_hang_us() {
        let started = Instant::now();
        let out = sh("sleep 30 & echo $!", Duration::from_secs(20)).run(None).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        // Clean up the straggler we left behind on purpose.
        let pid = out.stdout.trim();
        assert!(pid.parse::<u32>().is_ok(), "{out:?}");
        let _ = Command::new("kill").arg(pid).status();
    }

    #[test]
    fn display_quotes_arguments_for_a_shell() {
        let cmd = Cmd::new("rpm", Duration::from_secs(1)).arg("--qf").arg("%{NAME} %{VERSION}\n");
        assert_eq!(cmd.to_string(), "rpm --qf '%{NAME} %{VERSION}\n'");
        let cmd = Cmd::new("dpkg-query", Duration::from_secs(1)).arg("-f=${Package}\\t").arg("it's").arg("");
        assert_eq!(cmd.to_string(), r"dpkg-query '-f=${Package}\t' 'it'\''s' ''");
    }
}
