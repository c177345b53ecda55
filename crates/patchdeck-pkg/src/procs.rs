//! Finding and stopping processes by a marker in their environment.
//!
//! Killing a command's process group is not always enough: apt runs dpkg in
//! a session of its own (for dpkg's pseudo-terminal), so a hung dpkg is out of
//! reach of a kill of apt-get's group and keeps the dpkg lock after apt-get is
//! gone. Every child inherits its parent's environment, though, so a variable
//! set on the command we start marks all of its descendants, whatever group or
//! session they moved to. [`crate::exec`] marks every command this way and
//! stops the marked processes when a command times out; the agent's job engine
//! marks every process of a job the same way.
//!
//! Linux only: it reads `/proc/<pid>/environ`. Processes whose environment
//! cannot be read (other users' processes when not root) are skipped.

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use rustix::process::{getpgid, getpid, kill_process_group, Pid, Signal};

/// A live process whose environment holds `var=value` for one of the values asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedProcess {
    /// The marker value it carries.
    pub value: String,
    pub pid: i32,
    /// Its process group, when it could be read.
    pub pgid: Option<i32>,
}

/// Live processes (other than this one) whose environment holds `var=v` for one of `values`.
pub fn find_marked(var: &str, values: &[String]) -> Vec<MarkedProcess> {
    if values.is_empty() {
        return Vec::new();
    }
    let wanted: Vec<(&String, Vec<u8>)> = values.iter().map(|v| (v, format!("{var}={v}").into_bytes())).collect();
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
        if let Some((value, _)) =
            wanted.iter().find(|(_, marker)| environ.split(|b| *b == 0).any(|var| var == marker.as_slice()))
        {
            let pgid = Pid::from_raw(pid).and_then(|p| getpgid(Some(p)).ok()).map(|g| g.as_raw_nonzero().get());
            found.push(MarkedProcess { value: (*value).clone(), pid, pgid });
        }
    }
    found
}

/// Stops every process marked `var=value`: `SIGTERM` to each of their
/// process groups, then `SIGKILL` to whatever is left after `grace`. Never
/// signals this process's own group. Returns the groups first signalled.
pub fn kill_marked(var: &str, value: &str, grace: Duration) -> Vec<i32> {
    let own_group = getpgid(None).ok().map(|g| g.as_raw_nonzero().get());
    let values = [value.to_owned()];
    let groups = |procs: &[MarkedProcess]| -> BTreeSet<i32> {
        procs.iter().filter_map(|p| p.pgid).filter(|g| Some(*g) != own_group && *g > 1).collect()
    };
    let signal = |groups: &BTreeSet<i32>, sig: Signal| {
        for group in groups {
            if let Some(pid) = Pid::from_raw(*group) {
                let _ = kill_process_group(pid, sig);
            }
        }
    };
    let first = groups(&find_marked(var, &values));
    signal(&first, Signal::TERM);
    let mut deadline = Instant::now() + grace;
    let mut killed = false;
    loop {
        let left = find_marked(var, &values);
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            if killed {
                tracing::warn!(%var, %value, left = left.len(), "processes survived SIGKILL");
                break;
            }
            signal(&groups(&left), Signal::KILL);
            killed = true;
            deadline = Instant::now() + grace;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    first.into_iter().collect()
}
