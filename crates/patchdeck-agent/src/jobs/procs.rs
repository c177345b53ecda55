//! Finding and stopping a job's processes through the marker environment
//! variable ([`JOB_MARKER_ENV`]) that every package-manager process of the job
//! inherits (the mechanism is `patchdeck_pkg::procs`).
//!
//! The package layer already stops every descendant of a command that timed
//! out, including a dpkg that apt moved to a session of its own. The engine
//! marks whole jobs as well, and stops every process carrying the job's marker:
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

use std::time::Duration;

use patchdeck_pkg::procs;
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
    let values: Vec<String> = jobs.iter().map(Uuid::to_string).collect();
    procs::find_marked(JOB_MARKER_ENV, &values)
        .into_iter()
        .filter_map(|p| Some(MarkedProcess { job_id: p.value.parse().ok()?, pid: p.pid, pgid: p.pgid }))
        .collect()
}

/// Stops every process of `job`: `SIGTERM` to each of their process groups,
/// then `SIGKILL` to whatever is left after `grace`. Never signals the agent's
/// own process group. Returns the groups signalled.
pub fn kill_job(job: Uuid, grace: Duration) -> Vec<i32> {
    procs::kill_marked(JOB_MARKER_ENV, &job.to_string(), grace)
}
