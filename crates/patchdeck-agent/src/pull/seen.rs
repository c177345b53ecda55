//! The replay store, `pull/seen.json`: the command ids and nonces of every command the agent
//! accepted, kept until an hour after the command's expiry (a command is refused after its expiry
//! anyway, so forgetting it later opens no window). It is written, atomically, before a command
//! runs, so a command is never run twice, even across a crash.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::fs;

/// How long an entry is kept after the command's own expiry.
pub const KEEP_AFTER_EXPIRY: SignedDuration = SignedDuration::from_hours(1);

const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeenFile {
    format: u32,
    entries: Vec<SeenEntry>,
}

/// One accepted command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenEntry {
    pub command_id: Uuid,
    pub nonce: String,
    pub expires_at: Timestamp,
}

/// Command ids and nonces already seen.
#[derive(Debug)]
pub struct SeenStore {
    path: PathBuf,
    entries: Vec<SeenEntry>,
    ids: HashSet<Uuid>,
    nonces: HashSet<String>,
}

impl SeenStore {
    /// Loads `path` (missing: empty). A file that does not parse is moved aside to
    /// `seen.json.corrupt` and the store starts empty (logged): refusing every command forever
    /// would be worse, and a replay still needs a valid signature and an unexpired command.
    pub fn open(path: &Path) -> io::Result<SeenStore> {
        let entries = match fs::read_json::<SeenFile>(path) {
            Ok(Some(file)) => file.entries,
            Ok(None) => Vec::new(),
            Err(err) if err.kind() == io::ErrorKind::InvalidData => {
                let aside = path.with_extension("json.corrupt");
                tracing::error!(path = %path.display(), %err, aside = %aside.display(),
                    "the replay store is unreadable; starting with an empty one");
                std::fs::rename(path, &aside)?;
                Vec::new()
            }
            Err(err) => return Err(err),
        };
        let mut store =
            SeenStore { path: path.to_owned(), entries: Vec::new(), ids: HashSet::new(), nonces: HashSet::new() };
        for entry in entries {
            store.index(entry);
        }
        Ok(store)
    }

    fn index(&mut self, entry: SeenEntry) {
        self.ids.insert(entry.command_id);
        self.nonces.insert(entry.nonce.clone());
        self.entries.push(entry);
    }

    /// Whether the command id or the nonce was seen before.
    pub fn contains(&self, command_id: Option<Uuid>, nonce: &str) -> bool {
        self.nonces.contains(nonce) || command_id.is_some_and(|id| self.ids.contains(&id))
    }

    /// Records an accepted command, drops entries past their retention, and writes the file. When
    /// the write fails, the command must not run (its replay could not be refused after a
    /// restart); the entry stays in memory so it is refused in this process anyway.
    pub fn remember(&mut self, command_id: Uuid, nonce: &str, expires_at: Timestamp, now: Timestamp) -> io::Result<()> {
        self.index(SeenEntry { command_id, nonce: nonce.to_owned(), expires_at });
        self.prune(now);
        let file = SeenFile { format: FORMAT, entries: self.entries.clone() };
        fs::write_json(&self.path, &file, fs::PUBLIC_MODE)
    }

    /// Forgets entries whose command expired more than [`KEEP_AFTER_EXPIRY`] before `now`.
    fn prune(&mut self, now: Timestamp) {
        let before = self.entries.len();
        self.entries.retain(|e| e.expires_at.checked_add(KEEP_AFTER_EXPIRY).map_or(true, |keep| keep > now));
        if self.entries.len() != before {
            self.ids = self.entries.iter().map(|e| e.command_id).collect();
            self.nonces = self.entries.iter().map(|e| e.nonce.clone()).collect();
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_replay_is_refused_after_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen.json");
        let id = Uuid::new_v4();
        {
            let mut store = SeenStore::open(&path).unwrap();
            assert!(!store.contains(Some(id), "n1"));
            store.remember(id, "n1", at(300), at(0)).unwrap();
            assert!(store.contains(Some(id), "n1"));
        }
        let store = SeenStore::open(&path).unwrap();
        assert!(store.contains(Some(id), "n1"), "same command, same nonce");
        assert!(store.contains(Some(id), "n2"), "same command id with a fresh nonce");
        assert!(store.contains(Some(Uuid::new_v4()), "n1"), "a seen nonce on another command");
        assert!(store.contains(None, "n1"));
        assert!(!store.contains(Some(Uuid::new_v4()), "n3"));
    }

    #[test]
    fn entries_are_kept_an_hour_past_expiry_then_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen.json");
        let mut store = SeenStore::open(&path).unwrap();
        let old = Uuid::new_v4();
        store.remember(old, "old", at(300), at(0)).unwrap();
        // 59 minutes after its expiry it is still there.
        store.remember(Uuid::new_v4(), "b", at(4000), at(300 + 3540)).unwrap();
        assert!(store.contains(Some(old), "x"));
        // An hour and a second after: pruned at the next write, on disk too.
        store.remember(Uuid::new_v4(), "c", at(8000), at(300 + 3601)).unwrap();
        assert!(!store.contains(Some(old), "old"));
        assert_eq!(store.len(), 2);
        let reloaded = SeenStore::open(&path).unwrap();
        assert_eq!(reloaded.len(), 2);
        assert!(!reloaded.contains(Some(old), "old"));
    }

    #[test]
    fn a_corrupt_store_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen.json");
        std::fs::write(&path, b"{not json").unwrap();
        let store = SeenStore::open(&path).unwrap();
        assert!(store.is_empty());
        assert!(dir.path().join("seen.json.corrupt").exists());
    }
}
