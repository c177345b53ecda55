//! The background job queue and the heartbeats of the processes that run it.
//!
//! **One row per job key** (`deployment:17`): a key is `queued` (with the time it may run),
//! `running` (claimed by one worker until `locked_until`), `done` or `failed`. Asking for a key
//! that is running to run again ([`Store::enqueue_job`]) sets `rerun`, and the run that finishes
//! queues it once more: a wake-up that arrives during a run is never lost, and one key never
//! runs twice at the same time.
//!
//! **Claiming** ([`Store::claim_jobs`]) is one statement: PostgreSQL picks due rows with
//! `FOR UPDATE SKIP LOCKED` in a materialized CTE (concurrent workers share the queue out instead
//! of waiting on each other), SQLite's single `UPDATE … RETURNING` holds the database's write
//! lock. A worker that dies mid-run leaves its claim behind until `locked_until`; after that any
//! worker may claim the key again. A finish names the worker, so a late finish from a worker
//! whose claim expired and was taken over changes nothing.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::error::{Error, Result};
use crate::sql::{ms, ms_after, RowExt};
use crate::types::text_enum;
use crate::{Backend, Store};

text_enum! {
    /// Where a job key is.
    JobState ("job state") {
        /// Waiting for its `run_at`.
        Queued = "queued",
        /// Claimed by a worker.
        Running = "running",
        /// Finished, nothing more to do.
        Done = "done",
        /// Gave up after its last attempt.
        Failed = "failed",
    }
}

/// A job key and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRecord {
    /// Its key, e.g. `deployment:17`.
    pub key: String,
    /// What runs it, e.g. `deployment`.
    pub kind: String,
    /// Where it is.
    pub state: JobState,
    /// When it may run next (while queued).
    pub run_at: Timestamp,
    /// The worker that holds it (while running).
    pub locked_by: Option<String>,
    /// Until when the claim holds.
    pub locked_until: Option<Timestamp>,
    /// Failed runs in a row.
    pub attempts: u32,
    /// Runs so far.
    pub runs: u64,
    /// The last failure.
    pub last_error: Option<String>,
    /// Last change.
    pub updated_at: Timestamp,
}

/// How a run ended, for [`Store::finish_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Run again at this time (a deployment that waits for its hosts).
    Again(Timestamp),
    /// Nothing more to do.
    Done,
    /// The run failed: run again at `retry_at`, or give up (`failed`) when `retry_at` is `None`.
    Error { message: String, retry_at: Option<Timestamp> },
}

/// A process that runs background jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRecord {
    /// Random id chosen at start.
    pub id: String,
    /// The machine it runs on.
    pub hostname: String,
    /// Its process id there.
    pub pid: u32,
    /// Its version.
    pub version: String,
    /// `serve` or `worker`.
    pub role: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Its last sign of life.
    pub heartbeat_at: Timestamp,
    /// Job runs it finished.
    pub jobs_run: u64,
    /// When it stopped cleanly.
    pub stopped_at: Option<Timestamp>,
}

/// Counts of job keys per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub queued: u64,
    /// Queued and due now.
    pub due: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
}

const COLUMNS: &str = "job_key, kind, state, run_at, locked_by, locked_until, attempts, runs, last_error, updated_at";
const WORKER_COLUMNS: &str = "id, hostname, pid, version, role, started_at, heartbeat_at, jobs_run, stopped_at";
/// `run_at` of a running key that nobody asked to run again (the year 3000).
const NEVER_MS: i64 = 32_503_680_000_000;
/// Longest job key and error kept.
const MAX_KEY: usize = 200;
const MAX_ERROR: usize = 2000;

fn from_row(row: &AnyRow) -> Result<JobRecord> {
    Ok(JobRecord {
        key: row.text("job_key")?,
        kind: row.text("kind")?,
        state: row.parse("state")?,
        run_at: row.ts("run_at")?,
        locked_by: row.opt_text("locked_by")?,
        locked_until: row.opt_ts("locked_until")?,
        attempts: row.count("attempts")?,
        runs: u64::try_from(row.int("runs")?).unwrap_or(0),
        last_error: row.opt_text("last_error")?,
        updated_at: row.ts("updated_at")?,
    })
}

fn worker_from_row(row: &AnyRow) -> Result<WorkerRecord> {
    Ok(WorkerRecord {
        id: row.text("id")?,
        hostname: row.text("hostname")?,
        pid: u32::try_from(row.int("pid")?).unwrap_or(0),
        version: row.text("version")?,
        role: row.text("role")?,
        started_at: row.ts("started_at")?,
        heartbeat_at: row.ts("heartbeat_at")?,
        jobs_run: u64::try_from(row.int("jobs_run")?).unwrap_or(0),
        stopped_at: row.opt_ts("stopped_at")?,
    })
}

fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Store {
    /// Asks for `key` to run at `run_at` (or earlier, when it is already queued for earlier).
    /// A running key runs again once the current run ends; a done or failed key is queued anew
    /// with its failure count reset.
    pub async fn enqueue_job(&self, key: &str, kind: &str, run_at: Timestamp, now: Timestamp) -> Result<()> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(Error::Invalid(format!("a job key must be 1 to {MAX_KEY} bytes")));
        }
        sqlx::query(
            "INSERT INTO jobs (job_key, kind, state, run_at, created_at, updated_at) VALUES ($1, $2, 'queued', $3, $4, $4) \
             ON CONFLICT (job_key) DO UPDATE SET \
             rerun = CASE WHEN jobs.state = 'running' THEN 1 ELSE jobs.rerun END, \
             run_at = CASE WHEN jobs.state IN ('queued', 'running') AND jobs.run_at < excluded.run_at \
                      THEN jobs.run_at ELSE excluded.run_at END, \
             attempts = CASE WHEN jobs.state IN ('done', 'failed') THEN 0 ELSE jobs.attempts END, \
             state = CASE WHEN jobs.state = 'running' THEN 'running' ELSE 'queued' END, \
             updated_at = $4",
        )
        .bind(key)
        .bind(kind)
        .bind(ms(run_at))
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Claims up to `limit` keys that are due at `now` (or whose previous claim expired) for
    /// `worker`, until `now + lock_for`. Of any number of concurrent callers, each key goes to
    /// exactly one.
    pub async fn claim_jobs(
        &self,
        worker: &str,
        now: Timestamp,
        lock_for: SignedDuration,
        limit: u32,
    ) -> Result<Vec<JobRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pick = "SELECT job_key FROM jobs WHERE (state = 'queued' AND run_at <= $1) \
                    OR (state = 'running' AND locked_until < $1) ORDER BY run_at LIMIT $2";
        let set = "state = 'running', locked_by = $3, locked_until = $4, run_at = $5, rerun = 0, runs = runs + 1, \
                   updated_at = $1";
        let sql = match self.backend {
            Backend::Postgres => format!(
                "WITH picked AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) \
                 UPDATE jobs SET {set} FROM picked WHERE jobs.job_key = picked.job_key RETURNING {}",
                crate::sql::prefixed("jobs", COLUMNS)
            ),
            Backend::Sqlite => format!("UPDATE jobs SET {set} WHERE job_key IN ({pick}) RETURNING {COLUMNS}"),
        };
        let rows = sqlx::query(&sql)
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(worker)
            .bind(ms_after(now, lock_for)?)
            .bind(NEVER_MS)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Extends `worker`'s claim on `key` to `until`; false when the claim is no longer its own.
    pub async fn extend_job(&self, key: &str, worker: &str, until: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET locked_until = $3 WHERE job_key = $1 AND locked_by = $2 AND state = 'running'",
        )
        .bind(key)
        .bind(worker)
        .bind(ms(until))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends `worker`'s run of `key`. A key asked for during the run is queued again at once
    /// (or at the earlier of that request and `Again`). False (and nothing changes) when the
    /// claim was not `worker`'s any more.
    pub async fn finish_job(&self, key: &str, worker: &str, outcome: &JobOutcome, now: Timestamp) -> Result<bool> {
        let now_ms = ms(now);
        // The state and time the key moves to when nobody asked for it during the run.
        let (state, at, error, failed) = match outcome {
            JobOutcome::Again(at) => ("queued", ms(*at), None, false),
            JobOutcome::Done => ("done", NEVER_MS, None, false),
            JobOutcome::Error { message, retry_at: Some(at) } => {
                ("queued", ms(*at), Some(cut(message, MAX_ERROR)), true)
            }
            JobOutcome::Error { message, retry_at: None } => ("failed", NEVER_MS, Some(cut(message, MAX_ERROR)), true),
        };
        let done = sqlx::query(
            "UPDATE jobs SET \
             state = CASE WHEN rerun = 1 THEN 'queued' ELSE $3 END, \
             run_at = CASE WHEN rerun = 1 AND run_at < $4 THEN run_at ELSE $4 END, \
             attempts = CASE WHEN $6 = 1 THEN attempts + 1 ELSE 0 END, \
             last_error = COALESCE($5, last_error), \
             rerun = 0, locked_by = NULL, locked_until = NULL, updated_at = $7 \
             WHERE job_key = $1 AND locked_by = $2 AND state = 'running'",
        )
        .bind(key)
        .bind(worker)
        .bind(state)
        .bind(at)
        .bind(error)
        .bind(i64::from(failed))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The job with this key.
    pub async fn get_job(&self, key: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM jobs WHERE job_key = $1"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// How many keys are in each state, and how many queued ones are due at `now`.
    pub async fn job_counts(&self, now: Timestamp) -> Result<JobCounts> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n, SUM(CASE WHEN state = 'queued' AND run_at <= $1 THEN 1 ELSE 0 END) AS due \
             FROM jobs GROUP BY state",
        )
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?;
        let mut counts = JobCounts::default();
        for row in &rows {
            let n = u64::try_from(row.int("n")?).unwrap_or(0);
            match row.parse::<JobState>("state")? {
                JobState::Queued => {
                    counts.queued = n;
                    counts.due = u64::try_from(row.int("due")?).unwrap_or(0);
                }
                JobState::Running => counts.running = n,
                JobState::Done => counts.done = n,
                JobState::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    /// Forgets done and failed keys last changed before `before`; returns how many.
    pub async fn prune_jobs_before(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'failed') AND updated_at < $1")
            .bind(ms(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records a worker process that starts now.
    pub async fn register_worker(&self, worker: &WorkerRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO workers (id, hostname, pid, version, role, started_at, heartbeat_at, jobs_run) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0)",
        )
        .bind(worker.id.as_str())
        .bind(worker.hostname.as_str())
        .bind(i64::from(worker.pid))
        .bind(worker.version.as_str())
        .bind(worker.role.as_str())
        .bind(ms(worker.started_at))
        .bind(ms(worker.heartbeat_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A worker's sign of life, with the runs it finished since its last one. False when the
    /// worker has no row (it was pruned): register it again.
    pub async fn heartbeat_worker(&self, id: &str, now: Timestamp, runs: u64) -> Result<bool> {
        let done = sqlx::query("UPDATE workers SET heartbeat_at = $2, jobs_run = jobs_run + $3 WHERE id = $1")
            .bind(id)
            .bind(ms(now))
            .bind(i64::try_from(runs).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks a worker stopped (a clean shutdown).
    pub async fn stop_worker(&self, id: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE workers SET stopped_at = $2, heartbeat_at = $2 WHERE id = $1")
            .bind(id)
            .bind(ms(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every worker, latest heartbeat first.
    pub async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        let rows = sqlx::query(&format!("SELECT {WORKER_COLUMNS} FROM workers ORDER BY heartbeat_at DESC, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(worker_from_row).collect()
    }

    /// Forgets workers not heard from since `before`; returns how many.
    pub async fn prune_workers_before(&self, before: Timestamp) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM workers WHERE heartbeat_at < $1").bind(ms(before)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
