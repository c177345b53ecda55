//! Local pre- and post-patch hooks: the executables in `<dir>/pre-patch.d/` and
//! `<dir>/post-patch.d/`, run around a package job that changes the host.
//!
//! Only files already on the host are run; nothing received over the network ever is. A hook
//! is run only when all of these hold, and is otherwise skipped and reported
//! ([`HookOutcome::Skipped`], with the reason as its output):
//!
//! - the hooks directory and the phase directory are directories owned by root or by the
//!   agent's own user, and writable by neither group nor others;
//! - the entry is a regular file (not a symbolic link, not a directory), executable, owned by
//!   root or the agent's user, and writable by neither group nor others.
//!
//! Hooks run one at a time in the byte order of their names, through the package layer's
//! process runner: stdin closed, `LC_ALL=C`, their own process group, killed with that group
//! (`SIGTERM`, then `SIGKILL` 5 s later) when they pass the hook timeout. They carry the job's
//! marker variable, so a job timeout stops them too. Their stdout and stderr are captured
//! together, the last [`MAX_HOOK_OUTPUT_BYTES`] kept.
//!
//! Pre-hooks stop at the first failure; post-hooks all run, whatever the others did.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use patchdeck_pkg::exec::{Cmd, Stream};
use patchdeck_pkg::PkgError;
use patchdeck_proto::orchestration::{HookOutcome, HookPhase, HookRun, MAX_RESULT_HOOK_OUTPUT_BYTES};

use super::model::JOB_MARKER_ENV;

/// Most bytes of one hook's output kept (the end).
pub const MAX_HOOK_OUTPUT_BYTES: usize = 64 * 1024;
/// Most entries of one phase directory looked at; the rest are reported as skipped.
pub const MAX_HOOKS_PER_PHASE: usize = 64;

const TRUNCATED: &str = "[... earlier output truncated ...]\n";

/// Where the hooks are and how long one may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSettings {
    /// Holds `pre-patch.d/` and `post-patch.d/`.
    pub dir: PathBuf,
    /// Limit for one hook.
    pub timeout: Duration,
}

impl Default for HookSettings {
    fn default() -> Self {
        HookSettings { dir: PathBuf::from(crate::config::DEFAULT_HOOKS_DIR), timeout: Duration::from_secs(600) }
    }
}

/// What a hook is told, besides [`JOB_MARKER_ENV`] (`PATCHDECK_JOB_ID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookContext {
    pub job_id: uuid::Uuid,
    /// The job's operation: `install`, `update`, `remove`, `patch_apply` or `rollback`.
    pub command: String,
    /// The packages the transaction changes (pre) or changed (post).
    pub packages: Vec<String>,
    /// For post-hooks: whether the package transaction succeeded.
    pub succeeded: Option<bool>,
}

impl HookContext {
    fn env(&self, phase: HookPhase) -> Vec<(String, String)> {
        let mut env = vec![
            (JOB_MARKER_ENV.to_owned(), self.job_id.to_string()),
            ("PATCHDECK_COMMAND".to_owned(), self.command.clone()),
            ("PATCHDECK_PHASE".to_owned(), phase.as_str().to_owned()),
            ("PATCHDECK_PACKAGES".to_owned(), self.packages.join(" ")),
        ];
        if let Some(ok) = self.succeeded {
            env.push(("PATCHDECK_RESULT".to_owned(), if ok { "success" } else { "failed" }.to_owned()));
        }
        env
    }
}

/// A hook to run, or why it will not be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Run { name: String, path: PathBuf },
    Skip { name: String, why: String },
}

/// Why a directory may not hold hooks; `None` when it may.
fn unsafe_dir(path: &Path, euid: u32) -> Option<String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("{} cannot be read: {e}", path.display())),
    };
    if !meta.is_dir() {
        return Some(format!("{} is not a directory", path.display()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!("{} is writable by group or others (mode {mode:04o})", path.display()));
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Some(format!(
            "{} is owned by uid {}, neither root nor the agent's user (uid {euid})",
            path.display(),
            meta.uid()
        ));
    }
    None
}

/// Why a directory entry may not run; `None` when it may.
fn unsafe_file(path: &Path, euid: u32) -> Option<String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Some("is a symbolic link; hooks must be regular files".to_owned());
    }
    if !kind.is_file() {
        return Some("is not a regular file".to_owned());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o111 == 0 {
        return Some(format!("is not executable (mode {mode:04o})"));
    }
    if mode & 0o022 != 0 {
        return Some(format!("is writable by group or others (mode {mode:04o})"));
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Some(format!("is owned by uid {}, neither root nor the agent's user (uid {euid})", meta.uid()));
    }
    None
}

/// The entries of `phase`, in name order; empty when the phase directory does not exist.
fn discover(settings: &HookSettings, phase: HookPhase) -> Vec<Entry> {
    let dir = settings.dir.join(phase.dir_name());
    let listing = match std::fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            return vec![Entry::Skip {
                name: phase.dir_name().to_owned(),
                why: format!("the hook directory {} cannot be read: {e}", dir.display()),
            }]
        }
    };
    let mut names: Vec<std::ffi::OsString> = listing.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    names.sort();
    let euid = rustix::process::geteuid().as_raw();
    let dir_problem = unsafe_dir(&settings.dir, euid).or_else(|| unsafe_dir(&dir, euid));
    names
        .into_iter()
        .enumerate()
        .map(|(i, os_name)| {
            let name = os_name.to_string_lossy().into_owned();
            let path = dir.join(&os_name);
            let why = if let Some(problem) = &dir_problem {
                Some(format!("not run: {problem}"))
            } else if i >= MAX_HOOKS_PER_PHASE {
                Some(format!("not run: more than {MAX_HOOKS_PER_PHASE} entries in {}", dir.display()))
            } else if os_name.to_str().is_none() {
                Some("not run: the name is not valid UTF-8".to_owned())
            } else {
                unsafe_file(&path, euid).map(|why| format!("not run: {} {why}", path.display()))
            };
            match why {
                Some(why) => Entry::Skip { name, why },
                None => Entry::Run { name, path },
            }
        })
        .collect()
}

/// The last `max` bytes of what a hook printed, with a note when the beginning was cut.
#[derive(Debug)]
struct Tail {
    buf: String,
    max: usize,
    cut: bool,
}

impl Tail {
    fn new(max: usize) -> Self {
        Tail { buf: String::new(), max, cut: false }
    }

    fn push(&mut self, line: &str) {
        self.buf.push_str(line);
        self.buf.push('\n');
        if self.buf.len() > 2 * self.max {
            self.trim(self.max);
        }
    }

    fn trim(&mut self, keep: usize) {
        if self.buf.len() <= keep {
            return;
        }
        let mut start = self.buf.len() - keep;
        while !self.buf.is_char_boundary(start) {
            start += 1;
        }
        self.buf.drain(..start);
        self.cut = true;
    }

    fn finish(mut self) -> String {
        if self.buf.len() > self.max || self.cut {
            self.trim(self.max.saturating_sub(TRUNCATED.len()));
            return format!("{TRUNCATED}{}", self.buf);
        }
        self.buf
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs one hook to its end.
fn run_one(
    settings: &HookSettings,
    phase: HookPhase,
    name: String,
    path: &Path,
    env: &[(String, String)],
    log: &mut dyn FnMut(String),
) -> HookRun {
    let started = Instant::now();
    let mut tail = Tail::new(MAX_HOOK_OUTPUT_BYTES);
    let cmd = Cmd::new(path.to_string_lossy(), settings.timeout)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .capture_limit(MAX_HOOK_OUTPUT_BYTES);
    log(format!("{}-patch hook {name}: running {}", phase.as_str(), path.display()));
    let outcome = {
        let prefix = format!("[{}-patch {name}] ", phase.as_str());
        let mut sink = |_: Stream, line: &str| {
            tail.push(line);
            log(format!("{prefix}{line}"));
        };
        cmd.run(Some(&mut sink))
    };
    let took = started.elapsed();
    let (outcome, exit_code, note) = match outcome {
        Ok(out) if out.success() => (HookOutcome::Passed, Some(0), None),
        Ok(out) => match out.code() {
            Some(code) => (HookOutcome::Failed, Some(code), Some(format!("exited with code {code}"))),
            None => (HookOutcome::Failed, None, Some("was killed by a signal".to_owned())),
        },
        Err(PkgError::Timeout { .. }) => (
            HookOutcome::TimedOut,
            None,
            Some(format!(
                "ran past the hook timeout of {} s; its process group was killed",
                settings.timeout.as_secs()
            )),
        ),
        Err(err) => (HookOutcome::Failed, None, Some(format!("could not be run: {err}"))),
    };
    if let Some(note) = &note {
        tail.push(&format!("[patchdeck-agent: the hook {note}]"));
    }
    log(format!(
        "{}-patch hook {name}: {} after {} ms{}",
        phase.as_str(),
        outcome.as_str(),
        millis(took),
        note.map(|n| format!(" ({n})")).unwrap_or_default()
    ));
    HookRun { phase, name, outcome, exit_code, duration_ms: millis(took), output: tail.finish() }
}

/// Runs the hooks of `phase` (pre-hooks stop at the first failure). `log` receives the job-log
/// lines (each output line prefixed with the phase and hook name). Blocking.
pub fn run_phase(
    settings: &HookSettings,
    phase: HookPhase,
    context: &HookContext,
    log: &mut dyn FnMut(String),
) -> Vec<HookRun> {
    let env = context.env(phase);
    let mut runs = Vec::new();
    for entry in discover(settings, phase) {
        match entry {
            Entry::Skip { name, why } => {
                log(format!("{}-patch hook {name} skipped: {why}", phase.as_str()));
                tracing::warn!(job.id = %context.job_id, hook = %name, phase = phase.as_str(), %why, "hook skipped");
                runs.push(HookRun {
                    phase,
                    name,
                    outcome: HookOutcome::Skipped,
                    exit_code: None,
                    duration_ms: 0,
                    output: why,
                });
            }
            Entry::Run { name, path } => {
                let run = run_one(settings, phase, name, &path, &env, log);
                let stop = phase == HookPhase::Pre && is_failure(&run);
                runs.push(run);
                if stop {
                    break;
                }
            }
        }
    }
    runs
}

/// Whether the hook failed or timed out (a skipped hook is not a failure).
pub fn is_failure(run: &HookRun) -> bool {
    matches!(run.outcome, HookOutcome::Failed | HookOutcome::TimedOut)
}

/// `runs` with their outputs cut (keeping each one's end) so that together they stay within
/// [`MAX_RESULT_HOOK_OUTPUT_BYTES`]: what a command result carries.
pub fn for_result(runs: &[HookRun]) -> Vec<HookRun> {
    if runs.is_empty() {
        return Vec::new();
    }
    let share = (MAX_RESULT_HOOK_OUTPUT_BYTES / runs.len()).max(TRUNCATED.len() + 64);
    runs.iter()
        .map(|run| {
            let mut run = run.clone();
            if run.output.len() > share {
                let mut tail = Tail::new(share);
                tail.buf = std::mem::take(&mut run.output);
                tail.cut = true;
                run.output = tail.finish();
            }
            run
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_end_within_its_bound() {
        let mut tail = Tail::new(100);
        for i in 0..1000 {
            tail.push(&format!("line {i} é"));
        }
        let text = tail.finish();
        assert!(text.len() <= 100, "{}", text.len());
        assert!(text.starts_with(TRUNCATED) && text.ends_with("line 999 é\n"), "{text}");
        let mut short = Tail::new(100);
        short.push("ok");
        assert_eq!(short.finish(), "ok\n");
    }

    #[test]
    fn result_outputs_share_the_budget() {
        let run = |n: usize| HookRun {
            phase: HookPhase::Pre,
            name: format!("h{n}"),
            outcome: HookOutcome::Passed,
            exit_code: Some(0),
            duration_ms: 1,
            output: format!("{}end{n}\n", "x".repeat(MAX_HOOK_OUTPUT_BYTES)),
        };
        let runs: Vec<HookRun> = (0..4).map(run).collect();
        let cut = for_result(&runs);
        let total: usize = cut.iter().map(|r| r.output.len()).sum();
        assert!(total <= MAX_RESULT_HOOK_OUTPUT_BYTES, "{total}");
        for (i, r) in cut.iter().enumerate() {
            assert!(r.output.ends_with(&format!("end{i}\n")), "the end is kept");
        }
        assert!(for_result(&[]).is_empty());
    }
}
