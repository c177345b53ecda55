//! Job records on disk: `<state_dir>/jobs/<uuid>.json`, one file per job,
//! each written atomically (temporary file, fsync, rename, fsync of the
//! directory), so a crash leaves either the old or the new record, never a
//! torn one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::model::JobRecord;

/// The directory holding the records under a state directory.
pub fn jobs_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("jobs")
}

/// The file of one job.
pub fn record_path(jobs_dir: &Path, id: Uuid) -> PathBuf {
    jobs_dir.join(format!("{id}.json"))
}

/// Writes `record` atomically into `jobs_dir`.
pub fn write_record(jobs_dir: &Path, record: &JobRecord) -> io::Result<()> {
    let id = record.id();
    let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    let tmp = jobs_dir.join(format!(".{id}.json.tmp"));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(&json)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&tmp, record_path(jobs_dir, id))?;
        // Make the rename itself durable.
        File::open(jobs_dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes a job's file (absent is fine).
pub fn delete_record(jobs_dir: &Path, id: Uuid) -> io::Result<()> {
    match fs::remove_file(record_path(jobs_dir, id)) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Every record in `jobs_dir`. Leftover temporary files are removed; a file
/// that does not parse is renamed to `<name>.corrupt` (kept for a human, never
/// deleted) and reported in the second list.
pub fn load_records(jobs_dir: &Path) -> io::Result<(Vec<JobRecord>, Vec<String>)> {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for entry in fs::read_dir(jobs_dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".json.tmp") {
            let _ = fs::remove_file(&path);
            continue;
        }
        if !name.ends_with(".json") {
            continue;
        }
        let parsed = fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| serde_json::from_slice::<JobRecord>(&bytes).map_err(|e| e.to_string()))
            .and_then(|record| {
                if name == format!("{}.json", record.id()) {
                    Ok(record)
                } else {
                    Err(format!("the record inside is job {}", record.id()))
                }
            });
        match parsed {
            Ok(record) => records.push(record),
            Err(reason) => {
                let aside = path.with_file_name(format!("{name}.corrupt"));
                let _ = fs::rename(&path, &aside);
                problems.push(format!("{}: {reason} (moved to {})", path.display(), aside.display()));
            }
        }
    }
    Ok((records, problems))
}
