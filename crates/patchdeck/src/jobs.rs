//! The background job runner: every manager process with `deployments.run_jobs` (`serve` and
//! `worker` alike) registers itself as a worker, heartbeats, claims due jobs from the queue in
//! the database (`patchdeck_store::jobs`) and runs them. The queue guarantees one run of a key at
//! a time across all processes; a process that dies leaves its claims to expire and be taken
//! over.
//!
//! Job kinds: `deployment` (key `deployment:<id>`, [`crate::deploy::engine::advance`]).

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use patchdeck_store::{JobOutcome, JobRecord, WorkerRecord};
use tokio::sync::{watch, Notify};

use crate::state::AppState;

/// How long a claim holds; a run extends it while it lasts longer.
const LOCK_FOR: SignedDuration = SignedDuration::from_secs(120);
/// Jobs claimed per round.
const CLAIM_BATCH: u32 = 8;
/// A failed run is retried after this long, up to [`MAX_ATTEMPTS`] runs in a row.
const RETRY_AFTER: SignedDuration = SignedDuration::from_secs(30);
const MAX_ATTEMPTS: u32 = 10;
/// Heartbeat period.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Wakes this process's worker (jobs queued here run without waiting for the next poll).
#[derive(Debug, Default, Clone)]
pub struct JobWake(Arc<Notify>);

impl JobWake {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Queues (or brings forward) the job `key` of `kind` for `at`, and wakes the local worker.
pub async fn enqueue(state: &AppState, key: &str, kind: &str, at: Timestamp) -> Result<(), patchdeck_store::Error> {
    state.store().enqueue_job(key, kind, at, state.now()).await?;
    state.job_wake().wake();
    Ok(())
}

/// Runs jobs until `stopped` says so; `role` is `serve` or `worker` (shown in the API).
pub async fn run(state: AppState, role: &'static str, mut stopped: watch::Receiver<bool>) {
    let worker = WorkerRecord {
        id: uuid::Uuid::new_v4().to_string(),
        hostname: hostname(),
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        role: role.to_owned(),
        started_at: state.now(),
        heartbeat_at: state.now(),
        jobs_run: 0,
        stopped_at: None,
    };
    // Registration retries with the heartbeat: a database that is down at start comes back.
    let mut registered = false;
    let mut runs_since_beat = 0u64;
    let mut last_beat: Option<tokio::time::Instant> = None;
    let poll = Duration::from_secs(state.config().deployments.poll_interval_secs);
    let wake = state.job_wake().clone();
    loop {
        if *stopped.borrow() {
            break;
        }
        if last_beat.is_none_or(|at| at.elapsed() >= HEARTBEAT) {
            let now = state.now();
            let beat = if registered {
                match state.store().heartbeat_worker(&worker.id, now, runs_since_beat).await {
                    // Pruned while it lived (a clock jump): it says it is alive again.
                    Ok(false) => {
                        state.store().register_worker(&WorkerRecord { heartbeat_at: now, ..worker.clone() }).await
                    }
                    other => other.map(|_| ()),
                }
            } else {
                state.store().register_worker(&WorkerRecord { heartbeat_at: now, ..worker.clone() }).await
            };
            match beat {
                Ok(()) => {
                    registered = true;
                    runs_since_beat = 0;
                }
                Err(e) => tracing::warn!(error = %e, worker.id = %worker.id, "worker heartbeat failed"),
            }
            last_beat = Some(tokio::time::Instant::now());
        }
        let claimed = match state.store().claim_jobs(&worker.id, state.now(), LOCK_FOR, CLAIM_BATCH).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!(error = %e, "claiming jobs failed");
                Vec::new()
            }
        };
        let busy = !claimed.is_empty();
        for job in claimed {
            run_one(&state, &worker.id, job).await;
            runs_since_beat += 1;
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = wake.0.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stopped.changed() => {}
        }
    }
    if registered {
        let _ = state.store().heartbeat_worker(&worker.id, state.now(), runs_since_beat).await;
        if let Err(e) = state.store().stop_worker(&worker.id, state.now()).await {
            tracing::warn!(error = %e, "could not record the worker's stop");
        }
    }
}

/// Runs one claimed job and records how it ended.
async fn run_one(state: &AppState, worker: &str, job: JobRecord) {
    let started = state.now();
    let outcome = match dispatch(state, &job).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(job.key = %job.key, error = %format!("{e:#}"), attempts = job.attempts + 1, "job failed");
            let retry_at = (job.attempts + 1 < MAX_ATTEMPTS).then(|| started + RETRY_AFTER);
            JobOutcome::Error { message: format!("{e:#}"), retry_at }
        }
    };
    match state.store().finish_job(&job.key, worker, &outcome, state.now()).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(job.key = %job.key, "the job's claim expired before it finished; another worker has it")
        }
        Err(e) => tracing::warn!(job.key = %job.key, error = %e, "could not record the end of a job"),
    }
}

async fn dispatch(state: &AppState, job: &JobRecord) -> anyhow::Result<JobOutcome> {
    match job.kind.as_str() {
        crate::deploy::JOB_KIND => {
            let id = crate::deploy::parse_job_key(&job.key)
                .ok_or_else(|| anyhow::anyhow!("malformed deployment job key {:?}", job.key))?;
            crate::deploy::engine::advance(state, id).await
        }
        other => Ok(JobOutcome::Error { message: format!("unknown job kind {other:?}"), retry_at: None }),
    }
}

fn hostname() -> String {
    rustix::system::uname().nodename().to_string_lossy().into_owned()
}
