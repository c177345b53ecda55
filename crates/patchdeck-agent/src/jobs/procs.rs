//! Finding and stopping a job's processes through the marker environment
//! variable ([`JOB_MARKER_ENV`]) that every
//! package-manager process of the job inherits.
//!
//! The package layer runs each command in its own process group and kills
//! that group when the command passes its own timeout. That is not enough on
//! its own: apt runs dpkg in a session of its own (for dpkg's pseudo-terminal),
//! so dpkg is out of reach of a kill of apt-get's group and keeps running, with
//! the dpkg lock, after apt-get is gone (seen in `tests/jobs.rs`). The engine
//! therefore stops every process carrying the job's marker:
//!
//! * when a package command timed out (`TIMEOUT`), before the next
//!   transaction may start;
//! * when the whole job passes the job timeout (`JOB_TIMEOUT`);
//!
//! and, after a restart, it waits for processes that survived the previous
//! agent process (the agent was killed while apt was running: apt and dpkg
//! keep running, and no new transaction may start until they are gone).
//!
//! A daemon that a maintainer script starts directly (not through systemd)
//! inherits the marker too; that is why the wait after a restart is bounded
//! ([`EngineConfig::leftover_wait`](super::EngineConfig::leftover_wait)) and
//! why nothing is killed after a job that ended normally.
//!
//! Linux only: it reads `/proc/<pid>/environ`. Processes whose environment
//! cannot be read (other users' processes when not root) are skipped; the
//! package manager's own lock still protects against those.

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use rustix::process::{getpgid, getpid, kill_process_group, Pid, Signal};
use uuid::Uuid;

use super::model::JOB_MARKER_ENV;

/// A live process that carries a job's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkedProcess {
    pub job_id: Uuid,
    pub pid: i32,
    /// Its process group, when it could be read.
    pub pgid: Option<i32>,
}

/// Live processes carrying the marker of one of `jobs`.
pub fn find_marked(jobs: &[Uuid]) -> Vec<MarkedProcess> {
    if jobs.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<(Uuid, Vec<u8>)> =
        jobs.iter().map(|id| (*id, format!("{JOB_MARKER_ENV}={id}").into_bytes())).collect();
    let own = getpid().as_raw_nonzero().get();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if pid == own {
            continue;
        }
        // A zombie's environment reads as empty, so exited processes drop out here.
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        for var in environ.split(|b| *b == 0) {
            if let Some((job_id, _)) = wanted.iter().find(|(_, marker)| var == marker.as_slice()) {
                let pgid = Pid::from_raw(pid).and_then(|p| getpgid(Some(p)).ok()).map(|g| g.as_raw_nonzero().get());
                found.push(MarkedProcess { job_id: *job_id, pid, pgid });
                break;
            }
        }
    }
    found
}

/// Stops every process of `job`: `SIGTERM` to each of their process groups,
/// then `SIGKILL` to whatever is left after `grace`. Never signals the agent's
/// own process group. Returns the groups signalled.
pub fn kill_job(job: Uuid, grace: Duration) -> Vec<i32> {
    let own_group = getpgid(None).ok().map(|g| g.as_raw_nonzero().get());
    let groups = |procs: &[MarkedProcess]| -> BTreeSet<i32> {
        procs.iter().filter_map(|p| p.pgid).filter(|g| Some(*g) != own_group && *g > 1).collect()
    };
    let first = groups(&find_marked(&[job]));
    for group in &first {
        if let Some(pid) = Pid::from_raw(*group) {
            let _ = kill_process_group(pid, Signal::TERM);
        }
    }
    let mut deadline = Instant::now() + grace;
    let mut killed = false;
    loop {
        let left = find_marked(&[job]);
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            if killed {
                break;
            }
            for group in groups(&left) {
                if let Some(pid) = Pid::from_raw(group) {
                    let _ = kill_process_group(pid, Signal::KILL);
                }
            }
            killed = true;
            deadline = Instant::now() + grace;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    first.into_iter().collect()
}
