//! The outbox, `pull/outbox/`: every command result is written here (atomically) before it is
//! sent, and deleted only when a check-in response acknowledges it, so a result survives a lost
//! response, a manager restart and an agent crash. One file per command and state:
//! `<command_id>.<state>.json`.
//!
//! A result nobody acknowledges is not kept forever: after [`MAX_AGE`] or [`MAX_ATTEMPTS`]
//! deliveries it is dropped with a warning. A delivery counts when the manager read the check-in
//! that carried it (it answered 2xx, or refused the request's content with a 4xx); a check-in
//! that never reached the manager, or that it turned away (5xx, 429, an authentication failure),
//! is not a delivery, so an outage or an overloaded manager does not use up the attempts.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use patchdeck_proto::agent::{CommandResult, CommandState, ResultAck};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::fs;

/// An unacknowledged result older than this is dropped.
pub const MAX_AGE: SignedDuration = SignedDuration::from_hours(24);
/// A result delivered this often without an acknowledgement is dropped.
pub const MAX_ATTEMPTS: u32 = 10;

const FORMAT: u32 = 1;

/// What one outbox file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxEntry {
    pub format: u32,
    pub result: CommandResult,
    /// When the agent put it in the outbox.
    pub created_at: Timestamp,
    /// Check-ins that carried it and got an answer.
    pub attempts: u32,
}

type Key = (Uuid, CommandState);

/// Results waiting for the manager's acknowledgement.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    entries: HashMap<Key, OutboxEntry>,
}

/// The order of states of one command: `running` before its end.
fn state_rank(state: CommandState) -> u8 {
    match state {
        CommandState::Pending => 0,
        CommandState::Sent => 1,
        CommandState::Running => 2,
        _ => 3,
    }
}

impl Outbox {
    /// Opens (creating) `dir` and loads what a previous process left. Temporary files of an
    /// interrupted write are removed; a file that does not parse is renamed to `.corrupt` and
    /// logged.
    pub fn open(dir: &Path) -> io::Result<Outbox> {
        fs::create_private_dir(dir)?;
        let mut entries = HashMap::new();
        for item in std::fs::read_dir(dir)? {
            let path = item?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match fs::read_json::<OutboxEntry>(&path) {
                Ok(Some(entry)) if file_name(entry.result.command_id, entry.result.state) == name => {
                    entries.insert((entry.result.command_id, entry.result.state), entry);
                }
                Ok(None) => {}
                other => {
                    let reason = match other {
                        Err(err) => err.to_string(),
                        _ => "the result inside belongs to another file name".to_owned(),
                    };
                    let aside = path.with_file_name(format!("{name}.corrupt"));
                    tracing::warn!(path = %path.display(), %reason, "unreadable outbox entry set aside");
                    let _ = std::fs::rename(&path, aside);
                }
            }
        }
        Ok(Outbox { dir: dir.to_owned(), entries })
    }

    fn path(&self, command_id: Uuid, state: CommandState) -> PathBuf {
        self.dir.join(file_name(command_id, state))
    }

    /// Stores `result` durably (replacing one for the same command and state).
    pub fn put(&mut self, result: CommandResult, now: Timestamp) -> io::Result<()> {
        let key = (result.command_id, result.state);
        let entry = OutboxEntry { format: FORMAT, result, created_at: now, attempts: 0 };
        fs::write_json(&self.path(key.0, key.1), &entry, fs::PUBLIC_MODE)?;
        self.entries.insert(key, entry);
        Ok(())
    }

    /// Whether a result for this command and state is waiting.
    pub fn contains(&self, command_id: Uuid, state: CommandState) -> bool {
        self.entries.contains_key(&(command_id, state))
    }

    /// Whether a terminal result for this command is waiting.
    pub fn has_terminal(&self, command_id: Uuid) -> bool {
        self.entries.keys().any(|(id, state)| *id == command_id && state.is_terminal())
    }

    /// Drops what is too old or was delivered too often (with a warning), then returns the
    /// oldest results, at most `limit`, to send now.
    pub fn due(&mut self, now: Timestamp, limit: usize) -> Vec<CommandResult> {
        let expired: Vec<(Key, String)> = self
            .entries
            .iter()
            .filter_map(|(key, entry)| {
                let too_old = entry.created_at.checked_add(MAX_AGE).is_ok_and(|limit| now >= limit);
                if too_old {
                    Some((*key, format!("not acknowledged within {} hours", MAX_AGE.as_hours())))
                } else if entry.attempts >= MAX_ATTEMPTS {
                    Some((*key, format!("sent {} times without an acknowledgement", entry.attempts)))
                } else {
                    None
                }
            })
            .collect();
        for ((command_id, state), reason) in expired {
            tracing::warn!(command.id = %command_id, state = %state, %reason, "dropping an undelivered command result");
            if let Err(err) = fs::remove_durable(&self.path(command_id, state)) {
                tracing::warn!(command.id = %command_id, %err, "could not delete the outbox entry");
            }
            self.entries.remove(&(command_id, state));
        }
        let mut waiting: Vec<&OutboxEntry> = self.entries.values().collect();
        waiting.sort_by_key(|e| (e.created_at, e.result.command_id, state_rank(e.result.state)));
        waiting.into_iter().take(limit).map(|e| e.result.clone()).collect()
    }

    /// Counts one delivery of each of `sent` (the manager answered the check-in carrying them).
    pub fn mark_sent(&mut self, sent: &[CommandResult]) -> io::Result<()> {
        let mut first_error = None;
        for result in sent {
            let key = (result.command_id, result.state);
            let path = self.path(key.0, key.1);
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.attempts = entry.attempts.saturating_add(1);
                if let Err(err) = fs::write_json(&path, entry, fs::PUBLIC_MODE) {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Forgets the results the manager stored. Acknowledgements of unknown results are ignored.
    pub fn ack(&mut self, acked: &[ResultAck]) -> io::Result<()> {
        let mut first_error = None;
        for ack in acked {
            if self.entries.remove(&(ack.command_id, ack.state)).is_some() {
                if let Err(err) = fs::remove_durable(&self.path(ack.command_id, ack.state)) {
                    first_error.get_or_insert(err);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The stored entry for a command and state.
    pub fn get(&self, command_id: Uuid, state: CommandState) -> Option<&OutboxEntry> {
        self.entries.get(&(command_id, state))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn file_name(command_id: Uuid, state: CommandState) -> String {
    format!("{command_id}.{}.json", state.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn result(command_id: Uuid, state: CommandState) -> CommandResult {
        CommandResult {
            command_id,
            state,
            at: at(0),
            job_id: Some(Uuid::new_v4()),
            error: None,
            output: "done".to_owned(),
            changes: Vec::new(),
            reboot_required: false,
            hooks: Vec::new(),
            checks: Vec::new(),
            preview: None,
        }
    }

    #[test]
    fn results_survive_a_restart_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let outbox_dir = dir.path().join("outbox");
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let a_running = result(a, CommandState::Running);
        {
            let mut outbox = Outbox::open(&outbox_dir).unwrap();
            outbox.put(a_running.clone(), at(1)).unwrap();
            outbox.put(result(a, CommandState::Completed), at(1)).unwrap();
            outbox.put(result(b, CommandState::Running), at(2)).unwrap();
            // A write torn by a crash leaves only a temporary file.
            std::fs::write(outbox_dir.join(format!(".{b}.failed.json.tmp")), b"{\"form").unwrap();
        }
        let mut outbox = Outbox::open(&outbox_dir).unwrap();
        assert_eq!(outbox.len(), 3);
        let due = outbox.due(at(3), 100);
        let order: Vec<(Uuid, CommandState)> = due.iter().map(|r| (r.command_id, r.state)).collect();
        assert_eq!(
            order,
            [(a, CommandState::Running), (a, CommandState::Completed), (b, CommandState::Running)],
            "oldest first, running before the end"
        );
        assert_eq!(due[0], a_running, "the result is stored as written");
        assert!(outbox.has_terminal(a) && !outbox.has_terminal(b));
        assert_eq!(outbox.due(at(3), 2).len(), 2, "at most the limit per check-in");
        assert!(!std::fs::read_dir(&outbox_dir).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")));

        outbox
            .ack(&[
                ResultAck { command_id: a, state: CommandState::Running },
                ResultAck { command_id: a, state: CommandState::Completed },
                ResultAck { command_id: Uuid::new_v4(), state: CommandState::Failed },
            ])
            .unwrap();
        assert_eq!(outbox.len(), 1);
        let reloaded = Outbox::open(&outbox_dir).unwrap();
        assert_eq!(reloaded.len(), 1, "acknowledged results are gone from disk too");
        assert!(reloaded.contains(b, CommandState::Running));
    }

    #[test]
    fn attempts_persist_and_the_tenth_delivery_is_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        let id = Uuid::new_v4();
        outbox.put(result(id, CommandState::Failed), at(0)).unwrap();
        for _ in 0..9 {
            let due = outbox.due(at(10), 100);
            assert_eq!(due.len(), 1);
            outbox.mark_sent(&due).unwrap();
        }
        let mut outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.get(id, CommandState::Failed).unwrap().attempts, 9, "attempts are on disk");
        let due = outbox.due(at(10), 100);
        outbox.mark_sent(&due).unwrap();
        assert!(outbox.due(at(10), 100).is_empty(), "dropped after 10 deliveries");
        assert!(Outbox::open(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn results_older_than_a_day_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        outbox.put(result(old, CommandState::Completed), at(0)).unwrap();
        outbox.put(result(new, CommandState::Completed), at(3600)).unwrap();
        let day = 24 * 3600;
        assert_eq!(outbox.due(at(day - 1), 100).len(), 2);
        let due = outbox.due(at(day), 100);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].command_id, new);
        assert!(!outbox.contains(old, CommandState::Completed));
    }

    #[test]
    fn a_corrupt_entry_is_set_aside_and_the_rest_loads() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let mut outbox = Outbox::open(dir.path()).unwrap();
            outbox.put(result(id, CommandState::Running), at(0)).unwrap();
        }
        let bad = dir.path().join(format!("{}.completed.json", Uuid::new_v4()));
        std::fs::write(&bad, b"garbage").unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.len(), 1);
        assert!(bad.with_file_name(format!("{}.corrupt", bad.file_name().unwrap().to_string_lossy())).exists());
    }
}
