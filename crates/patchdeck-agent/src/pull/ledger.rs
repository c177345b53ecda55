//! `pull/commands.json`: every command the agent accepted, with the job it became, for 30 days.
//!
//! It answers two questions: which job did command X run (a `rollback` names a command, the
//! engine rolls back a job), and which commands still owe the manager their final result. A
//! command is `reported` once its terminal result is in the outbox; at start, every command that
//! is not gets one (see `checkin::recover`), so each command ends with exactly one terminal
//! result even when the agent was killed in the middle.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::fs;

/// How long a command is remembered.
pub const KEEP: SignedDuration = SignedDuration::from_hours(30 * 24);

const FORMAT: u32 = 1;

/// One accepted command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerEntry {
    /// The command's type (`upgrade`, `scan`, …).
    pub kind: String,
    pub received_at: Timestamp,
    /// The job it became, once the engine accepted it.
    #[serde(default)]
    pub job_id: Option<Uuid>,
    /// Its terminal result is in the outbox (or was acknowledged).
    #[serde(default)]
    pub reported: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LedgerFile {
    format: u32,
    commands: BTreeMap<Uuid, LedgerEntry>,
}

/// Accepted commands and their jobs.
#[derive(Debug)]
pub struct CommandLedger {
    path: PathBuf,
    commands: BTreeMap<Uuid, LedgerEntry>,
}

impl CommandLedger {
    /// Loads `path` (missing: empty). An unreadable file is set aside (`.corrupt`) and logged.
    pub fn open(path: &Path) -> io::Result<CommandLedger> {
        let commands = match fs::read_json::<LedgerFile>(path) {
            Ok(Some(file)) => file.commands,
            Ok(None) => BTreeMap::new(),
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                let aside = path.with_extension("json.corrupt");
                tracing::error!(path = %path.display(), %err, "the command ledger is unreadable; starting a new one");
                std::fs::rename(path, aside)?;
                BTreeMap::new()
            }
            Err(err) => return Err(err),
        };
        Ok(CommandLedger { path: path.to_owned(), commands })
    }

    fn save(&mut self, now: Timestamp) -> io::Result<()> {
        self.commands.retain(|_, e| e.received_at.checked_add(KEEP).map_or(true, |keep| keep > now));
        let file = LedgerFile { format: FORMAT, commands: self.commands.clone() };
        fs::write_json(&self.path, &file, fs::PUBLIC_MODE)
    }

    /// Records a command the agent accepted.
    pub fn record(&mut self, command_id: Uuid, kind: &str, now: Timestamp) -> io::Result<()> {
        self.commands
            .insert(command_id, LedgerEntry { kind: kind.to_owned(), received_at: now, job_id: None, reported: false });
        self.save(now)
    }

    /// Records the job a command became.
    pub fn set_job(&mut self, command_id: Uuid, job_id: Uuid, now: Timestamp) -> io::Result<()> {
        if let Some(entry) = self.commands.get_mut(&command_id) {
            entry.job_id = Some(job_id);
        }
        self.save(now)
    }

    /// The command's terminal result is safely in the outbox.
    pub fn mark_reported(&mut self, command_id: Uuid, now: Timestamp) -> io::Result<()> {
        match self.commands.get_mut(&command_id) {
            Some(entry) if !entry.reported => entry.reported = true,
            _ => return Ok(()),
        }
        self.save(now)
    }

    /// The job command `command_id` ran, if it ran one and is still remembered.
    pub fn job_of(&self, command_id: Uuid) -> Option<Uuid> {
        self.commands.get(&command_id).and_then(|e| e.job_id)
    }

    pub fn get(&self, command_id: Uuid) -> Option<&LedgerEntry> {
        self.commands.get(&command_id)
    }

    /// Commands whose terminal result was not written yet, oldest first.
    pub fn unreported(&self) -> Vec<(Uuid, LedgerEntry)> {
        let mut list: Vec<(Uuid, LedgerEntry)> =
            self.commands.iter().filter(|(_, e)| !e.reported).map(|(id, e)| (*id, e.clone())).collect();
        list.sort_by_key(|(_, e)| e.received_at);
        list
    }

    pub fn len(&self) -> usize {
        self.commands.len()
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + days * 86_400).unwrap()
    }

    #[test]
    fn commands_map_to_jobs_across_restarts_for_thirty_days() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commands.json");
        let (a, b, job) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        {
            let mut ledger = CommandLedger::open(&path).unwrap();
            ledger.record(a, "upgrade", at(0)).unwrap();
            ledger.set_job(a, job, at(0)).unwrap();
            ledger.record(b, "scan", at(1)).unwrap();
            ledger.mark_reported(b, at(1)).unwrap();
        }
        let mut ledger = CommandLedger::open(&path).unwrap();
        assert_eq!(ledger.job_of(a), Some(job));
        assert_eq!(ledger.job_of(b), None);
        let unreported: Vec<Uuid> = ledger.unreported().into_iter().map(|(id, _)| id).collect();
        assert_eq!(unreported, [a]);
        ledger.record(Uuid::new_v4(), "reboot", at(30)).unwrap();
        assert_eq!(ledger.job_of(a), None, "forgotten after 30 days");
        assert!(ledger.get(b).is_some(), "b was received a day later");
        assert_eq!(CommandLedger::open(&path).unwrap().len(), 2);
    }
}
