//! The agent's job engine: runs package and reboot jobs asynchronously, one
//! package transaction at a time, keeps every job on disk, streams progress,
//! and rolls jobs back. The push REST API and the pull check-in both drive
//! it; it knows nothing about HTTP.
//!
//! # Model
//!
//! A job is submitted ([`JobEngine::submit`]) as a [`JobRequest`] and goes
//! `pending → running → completed | failed | timed_out` (contract §3.4).
//!
//! * **Admission** is decided at submission, under one lock: at most
//!   [`EngineConfig::max_queue_depth`] jobs pending or running
//!   ([`EngineError::QueueFull`]); no reboot while other jobs are pending or
//!   running unless forced ([`EngineError::RebootBlocked`]); nothing while a
//!   rollback is pending or running ([`EngineError::ExclusiveInProgress`]).
//! * **Scheduling**: at most [`EngineConfig::max_concurrent`] jobs run at once
//!   (a semaphore; the others stay `pending`). Every job that changes packages
//!   then takes the host's single transaction permit, so package-layer
//!   mutations are serialised; the package layer runs on
//!   `tokio::task::spawn_blocking` holding that permit, so the permit is only
//!   released when the package manager has really returned, even after the job
//!   itself timed out.
//! * **Timeouts**: each package-manager command has the package layer's own
//!   timeout (it kills the command's process group: `TIMEOUT`); the whole job
//!   has [`EngineConfig::job_timeout`] (30 min: `JOB_TIMEOUT`). Both end the
//!   job `timed_out`, and in both cases the job's remaining processes, found by
//!   the [`JOB_MARKER_ENV`] variable they all inherit, get `SIGTERM` then
//!   `SIGKILL` by process group before another transaction may start (apt runs
//!   dpkg in its own session, out of reach of the layer's kill; see [`procs`]).
//! * **Changes for rollback**: before a transaction runs, its dry run is
//!   stored in the job record: every package it touches with its version before
//!   (or "was not installed"). A rollback ([`JobRequest::Rollback`]) restores
//!   exactly those versions (downgrade pins, re-installs, removals of packages
//!   the job newly installed) and checks the result. It runs exclusively.
//! * **Persistence**: every state change is written to
//!   `<state_dir>/jobs/<uuid>.json` atomically (see [`store`]), synchronously
//!   under the engine's lock so that writes of one job never reorder; log lines
//!   are written with the next state change. [`JobEngine::open`] marks jobs left
//!   pending or running by a previous agent process as failed
//!   (`AGENT_RESTARTED`), never runs them again, and does not start a package
//!   transaction while a process of such a job is still alive.
//! * **Events**: every change is broadcast ([`JobEngine::subscribe`]) as a
//!   [`JobEvent`], in order (events are sent under the engine's lock). A
//!   subscriber more than [`EngineConfig::event_capacity`] events behind skips
//!   events (`RecvError::Lagged`) and can re-read the job with [`JobEngine::get`].
//! * **Exclusive mode**: a rollback may be submitted while other jobs are
//!   queued (it waits for the transaction permit like any package job); from
//!   its submission until it ends, every submission is refused. Reads and
//!   deleting finished jobs stay allowed.
//! * **self_update** upgrades the agent's own package (`self_package`) to the
//!   requested version or its candidate, alone (exclusive: other submissions
//!   get [`EngineError::SelfUpdateInProgress`]; refused with
//!   [`EngineError::SelfUpdateBlocked`] while other jobs are active), records
//!   the old version like any package job, then asks the service manager to
//!   restart the agent without waiting ([`Rebooter::restart_agent`]); the
//!   restart's graceful stop lets the job finish first.
//!
//! Error codes are listed on [`JobErrorCode`].

pub mod hooks;
mod model;
pub mod procs;
mod reboot;
mod run;
pub mod store;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use patchdeck_pkg::exec::{Stream, KILL_GRACE};
use patchdeck_pkg::{BackendOptions, PackageManager, PkgError};
use patchdeck_proto::lpa::jobs::{JobDetail, JobOperation, JobStatus, JobSummary};
use patchdeck_proto::orchestration::HookPhase;
use patchdeck_proto::{BackendKind, Transaction, TxAction};
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

pub use hooks::HookSettings;
pub use model::{
    Clock, JobErrorCode, JobEvent, JobEventKind, JobRecord, JobRequest, ManualClock, PatchApply, RecordedChange,
    Requester, SystemClock, JOB_MARKER_ENV, RECORD_FORMAT,
};
pub use reboot::{CommandRebooter, RebootError, Rebooter};

/// The reason recorded on jobs a previous agent process left unfinished.
pub const RESTART_REASON: &str = "agent restarted while the job was running";

/// Most log lines kept per job; older lines are dropped first.
const MAX_LOG_LINES: usize = 5000;
/// Most bytes of package-manager stdout (and of stderr) kept per job.
const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// Limits of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Jobs running at once (default 5).
    pub max_concurrent: usize,
    /// Jobs pending or running at once before submissions are refused (default 100).
    pub max_queue_depth: usize,
    /// Limit for a whole job (default 30 minutes).
    pub job_timeout: Duration,
    /// Finished jobs kept (default 1000); older ones are deleted.
    pub keep_terminal: usize,
    /// What [`EngineError::QueueFull`] tells callers to wait (default 60 s).
    pub retry_after: Duration,
    /// Events buffered per subscriber before a slow one skips events (default 256).
    pub event_capacity: usize,
    /// How often to look again for processes left by a previous agent (default 1 s).
    pub leftover_poll: Duration,
    /// How long package jobs wait, after a restart, for processes left by the
    /// previous agent process before starting anyway (default 10 minutes, counted
    /// once from when the engine opened, so it ends well within a job's timeout). The
    /// bound exists because a daemon a maintainer script started inherits the
    /// job's marker; the package manager's own lock still guards the database.
    pub leftover_wait: Duration,
    /// The agent's own package, upgraded by a self-update (default `patchdeck-agent`).
    pub self_package: String,
    /// The local pre- and post-patch hooks (default `/etc/patchdeck/hooks`, 10 minutes each);
    /// `None`: no hooks run.
    pub hooks: Option<HookSettings>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_concurrent: 5,
            max_queue_depth: 100,
            job_timeout: Duration::from_secs(30 * 60),
            keep_terminal: 1000,
            retry_after: Duration::from_secs(60),
            event_capacity: 256,
            leftover_poll: Duration::from_secs(1),
            leftover_wait: Duration::from_secs(10 * 60),
            self_package: "patchdeck-agent".to_owned(),
            hooks: Some(HookSettings::default()),
        }
    }
}

/// The package manager jobs drive: opened per job with the job's marker in
/// its environment.
#[derive(Debug, Clone)]
pub struct PackageBackend {
    pub kind: BackendKind,
    pub options: BackendOptions,
}

impl PackageBackend {
    fn open_for_job(&self, job: Uuid) -> Box<dyn PackageManager> {
        let mut options = self.options.clone();
        options.env.push((JOB_MARKER_ENV.to_owned(), job.to_string()));
        patchdeck_pkg::open(self.kind, options)
    }
}

/// Why the engine refused a request. [`EngineError::code`] gives the API code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the job queue is full ({depth} jobs pending or running); retry in {}s", retry_after.as_secs())]
    QueueFull { depth: usize, retry_after: Duration },
    #[error("cannot reboot while {} other job(s) are pending or running ({}); force the reboot to reboot anyway",
        running_jobs.len(), join_ids(running_jobs))]
    RebootBlocked { running_jobs: Vec<Uuid> },
    #[error("rollback job {job_id} is running in exclusive mode; retry when it has finished")]
    ExclusiveInProgress { job_id: Uuid },
    #[error("self-update job {job_id} is in progress; retry when the agent has restarted")]
    SelfUpdateInProgress { job_id: Uuid },
    #[error("cannot update the agent while {} other job(s) are pending or running ({}); retry when they are done",
        running_jobs.len(), join_ids(running_jobs))]
    SelfUpdateBlocked { running_jobs: Vec<Uuid> },
    #[error("job {job_id} cannot be rolled back: {reason}")]
    RollbackNotAllowed { job_id: Uuid, reason: String },
    #[error("job {job_id} is {} and can only be deleted once it has finished", status.as_str())]
    DeleteNotAllowed { job_id: Uuid, status: JobStatus },
    #[error("there is no job {0}")]
    NotFound(Uuid),
    #[error("invalid job request: {0}")]
    Invalid(String),
    #[error("the agent is shutting down and admits no new jobs; retry in {}s", retry_after.as_secs())]
    AdmissionClosed { retry_after: Duration },
    #[error("could not store jobs in {}: {source}", path.display())]
    Storage {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    /// The Linux_Patch_API error code (contract §3.5).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::QueueFull { .. } => "QUEUE_FULL",
            EngineError::RebootBlocked { .. } => "REBOOT_BLOCKED",
            EngineError::ExclusiveInProgress { .. } => "EXCLUSIVE_IN_PROGRESS",
            EngineError::SelfUpdateInProgress { .. } => "SELF_UPDATE_IN_PROGRESS",
            EngineError::SelfUpdateBlocked { .. } => "PACKAGE_DB_MUTATION_IN_PROGRESS",
            EngineError::RollbackNotAllowed { .. } => "ROLLBACK_NOT_ALLOWED",
            EngineError::DeleteNotAllowed { .. } => "DELETE_NOT_ALLOWED",
            EngineError::NotFound(_) => "JOB_NOT_FOUND",
            EngineError::Invalid(_) => "VALIDATION_ERROR",
            EngineError::AdmissionClosed { .. } => "ADMISSION_CLOSED",
            EngineError::Storage { .. } => "JOB_CREATE_ERROR",
        }
    }
}

fn join_ids(ids: &[Uuid]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The job engine. Cheap to clone; all clones share one engine.
#[derive(Debug, Clone)]
pub struct JobEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    jobs_dir: PathBuf,
    config: EngineConfig,
    backend: PackageBackend,
    clock: Arc<dyn Clock>,
    rebooter: Arc<dyn Rebooter>,
    state: Mutex<State>,
    slots: Arc<Semaphore>,
    transactions: Arc<Semaphore>,
    events: broadcast::Sender<JobEvent>,
    /// Jobs of a previous agent process whose package-manager processes may
    /// still be alive: no transaction starts while one is.
    leftovers: Mutex<Vec<Uuid>>,
    /// When the wait for `leftovers` ends, counted once from `open` (not per
    /// job, so that jobs waiting in turn cannot each wait the full time).
    leftovers_until: std::time::Instant,
    recovered: Vec<Uuid>,
    /// Set at shutdown: no new jobs are admitted.
    closed: AtomicBool,
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<Uuid, JobRecord>,
    next_seq: u64,
    /// The rollback that is pending or running, if any.
    exclusive: Option<Uuid>,
}

/// How a job ended badly.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    status: JobStatus,
    code: JobErrorCode,
    message: String,
}

impl Failure {
    pub(crate) fn new(code: JobErrorCode, message: impl Into<String>) -> Self {
        let status = if matches!(code, JobErrorCode::Timeout | JobErrorCode::JobTimeout) {
            JobStatus::TimedOut
        } else {
            JobStatus::Failed
        };
        Failure { status, code, message: message.into() }
    }
}

impl From<PkgError> for Failure {
    fn from(err: PkgError) -> Self {
        Failure::new(JobErrorCode::for_pkg_error(&err), err.to_string())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl JobEngine {
    /// Opens the engine on `state_dir` (created if missing): loads the stored
    /// jobs, marks those a previous agent process left pending or running as
    /// failed ([`RESTART_REASON`], `AGENT_RESTARTED`) and applies retention.
    /// Needs no runtime; submitting does.
    pub fn open(
        state_dir: &Path,
        config: EngineConfig,
        backend: PackageBackend,
        rebooter: Arc<dyn Rebooter>,
        clock: Arc<dyn Clock>,
    ) -> Result<JobEngine, EngineError> {
        let jobs_dir = store::jobs_dir(state_dir);
        let storage = |source| EngineError::Storage { path: jobs_dir.clone(), source };
        std::fs::create_dir_all(&jobs_dir).map_err(storage)?;
        let (records, problems) = store::load_records(&jobs_dir).map_err(storage)?;
        for problem in problems {
            tracing::warn!(%problem, "unreadable job record set aside");
        }
        let now = clock.now();
        let leftovers_until = std::time::Instant::now() + config.leftover_wait;
        let own_pid = std::process::id();
        let mut state = State::default();
        let mut leftovers = Vec::new();
        let mut recovered = Vec::new();
        let recent = now.checked_sub(jiff::SignedDuration::try_from(config.leftover_wait).unwrap_or_default()).ok();
        for mut record in records {
            state.next_seq = state.next_seq.max(record.seq.saturating_add(1));
            // Interrupted by an earlier restart that was itself cut short: its
            // package manager may still be running too.
            if record.detail.error_code.as_deref() == Some(JobErrorCode::AgentRestarted.as_str())
                && record.started_at.is_some()
                && record.detail.completed_at.zip(recent).is_some_and(|(done, recent)| done >= recent)
            {
                leftovers.push(record.id());
            }
            if !record.status().is_terminal() {
                let id = record.id();
                let was = record.status();
                if was == JobStatus::Running || record.started_at.is_some() {
                    leftovers.push(id);
                }
                if let Some(pid) = record.agent_pid.filter(|pid| *pid != own_pid) {
                    if Path::new(&format!("/proc/{pid}")).exists() {
                        tracing::warn!(job.id = %id, pid, "the agent process that ran this job may still be alive");
                    }
                }
                let d = &mut record.detail;
                d.logs.push(format!("{RESTART_REASON} (it was {}); it will not be run again", was.as_str()));
                d.status = JobStatus::Failed;
                d.message = RESTART_REASON.to_owned();
                d.error = Some(RESTART_REASON.to_owned());
                d.error_code = Some(JobErrorCode::AgentRestarted.as_str().to_owned());
                d.completed_at = Some(now);
                store::write_record(&jobs_dir, &record).map_err(storage)?;
                tracing::warn!(job.id = %id, status = was.as_str(), "{RESTART_REASON}");
                recovered.push(id);
            }
            state.jobs.insert(record.id(), record);
        }
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let inner = Arc::new(Inner {
            jobs_dir,
            slots: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            transactions: Arc::new(Semaphore::new(1)),
            config,
            backend,
            clock,
            rebooter,
            state: Mutex::new(state),
            events,
            leftovers: Mutex::new(leftovers),
            leftovers_until,
            closed: AtomicBool::new(false),
            recovered,
        });
        inner.prune(&mut lock(&inner.state));
        Ok(JobEngine { inner })
    }

    /// Jobs this engine found unfinished when it opened and marked failed.
    pub fn recovered(&self) -> &[Uuid] {
        &self.inner.recovered
    }

    /// Admits a job and starts it in the background. Must be called within a
    /// Tokio runtime. Returns the job as created (`pending`).
    pub async fn submit(&self, request: JobRequest) -> Result<JobDetail, EngineError> {
        self.submit_inner(request, None).await
    }

    async fn submit_inner(&self, request: JobRequest, requester: Option<Requester>) -> Result<JobDetail, EngineError> {
        request.validate().map_err(EngineError::Invalid)?;
        let inner = &self.inner;
        let id = Uuid::new_v4();
        let detail = {
            let mut state = lock(&inner.state);
            if inner.closed.load(Ordering::SeqCst) {
                return Err(EngineError::AdmissionClosed { retry_after: inner.config.retry_after });
            }
            if let Some(job_id) = state.exclusive {
                let self_update =
                    state.jobs.get(&job_id).is_some_and(|r| r.detail.operation == JobOperation::SelfUpdate);
                return Err(if self_update {
                    EngineError::SelfUpdateInProgress { job_id }
                } else {
                    EngineError::ExclusiveInProgress { job_id }
                });
            }
            let mut active: Vec<&JobRecord> = state.jobs.values().filter(|r| !r.status().is_terminal()).collect();
            if active.len() >= inner.config.max_queue_depth {
                return Err(EngineError::QueueFull { depth: active.len(), retry_after: inner.config.retry_after });
            }
            if let JobRequest::SelfUpdate { .. } = request {
                if !active.is_empty() {
                    active.sort_by_key(|r| r.seq);
                    return Err(EngineError::SelfUpdateBlocked {
                        running_jobs: active.iter().map(|r| r.id()).collect(),
                    });
                }
            }
            if let JobRequest::Reboot { force: false, .. } = request {
                if !active.is_empty() {
                    active.sort_by_key(|r| r.seq);
                    return Err(EngineError::RebootBlocked { running_jobs: active.iter().map(|r| r.id()).collect() });
                }
            }
            let mut rollback_of = None;
            if let JobRequest::Rollback { job_id } = request {
                let original = state.jobs.get(&job_id).ok_or(EngineError::NotFound(job_id))?;
                let not_allowed = |reason: String| EngineError::RollbackNotAllowed { job_id, reason };
                match original.status() {
                    JobStatus::Completed | JobStatus::Failed => {}
                    other => {
                        return Err(not_allowed(format!(
                            "it is {}; only completed or failed jobs can be rolled back",
                            other.as_str()
                        )))
                    }
                }
                if original.changes.is_empty() {
                    return Err(not_allowed("it recorded no package changes".to_owned()));
                }
                rollback_of = Some(job_id);
            }
            // A rollback and a self-update each run alone.
            let exclusive = rollback_of.is_some() || matches!(request, JobRequest::SelfUpdate { .. });
            let now = inner.clock.now();
            let record = JobRecord {
                format: RECORD_FORMAT,
                detail: JobDetail {
                    job_id: id,
                    operation: request.operation(),
                    status: JobStatus::Pending,
                    progress: 0,
                    message: "waiting to run".to_owned(),
                    created_at: now,
                    completed_at: None,
                    packages: request.packages(),
                    logs: Vec::new(),
                    error: None,
                    error_code: None,
                    exit_code: None,
                    command_stdout: None,
                    command_stderr: None,
                    rollback_job_id: rollback_of,
                    exclusive_mode: exclusive,
                },
                seq: state.next_seq,
                agent_pid: None,
                started_at: None,
                changes: Vec::new(),
                requested_by: requester,
                hooks: Vec::new(),
            };
            store::write_record(&inner.jobs_dir, &record)
                .map_err(|source| EngineError::Storage { path: inner.jobs_dir.clone(), source })?;
            state.next_seq += 1;
            if exclusive {
                state.exclusive = Some(id);
            }
            let detail = record.detail.clone();
            let _ = inner.events.send(inner.event(&record, JobEventKind::Status, None));
            state.jobs.insert(id, record);
            detail
        };
        tracing::info!(job.id = %id, operation = detail.operation.as_str(), "job accepted");
        tokio::spawn(run_job(Arc::clone(&self.inner), id, request));
        Ok(detail)
    }

    /// Rolls back job `job_id` (a completed or failed job): shorthand for
    /// [`JobRequest::Rollback`].
    pub async fn rollback(&self, job_id: Uuid) -> Result<JobDetail, EngineError> {
        self.submit(JobRequest::Rollback { job_id }).await
    }

    /// [`JobEngine::submit`] on behalf of `requester`, who is kept in the job
    /// record for the audit log.
    pub async fn submit_as(&self, request: JobRequest, requester: Option<Requester>) -> Result<JobDetail, EngineError> {
        self.submit_inner(request, requester).await
    }

    /// One job, with its log.
    pub fn get(&self, id: Uuid) -> Result<JobDetail, EngineError> {
        lock(&self.inner.state).jobs.get(&id).map(|r| r.detail.clone()).ok_or(EngineError::NotFound(id))
    }

    /// The stored record of a job (with the changes it recorded for rollback).
    pub fn record(&self, id: Uuid) -> Result<JobRecord, EngineError> {
        lock(&self.inner.state).jobs.get(&id).cloned().ok_or(EngineError::NotFound(id))
    }

    /// Jobs newest first, optionally only those in `status`, at most `limit`.
    pub fn list(&self, status: Option<JobStatus>, limit: usize) -> Vec<JobSummary> {
        let state = lock(&self.inner.state);
        let mut records: Vec<&JobRecord> =
            state.jobs.values().filter(|r| status.is_none_or(|s| r.status() == s)).collect();
        records.sort_by_key(|r| std::cmp::Reverse((r.detail.created_at, r.seq)));
        records.into_iter().take(limit).map(|r| r.detail.summary()).collect()
    }

    /// Deletes a finished job (record and file). Pending and running jobs
    /// cannot be deleted.
    pub fn delete(&self, id: Uuid) -> Result<(), EngineError> {
        let mut state = lock(&self.inner.state);
        let record = state.jobs.get(&id).ok_or(EngineError::NotFound(id))?;
        if !record.status().is_terminal() {
            return Err(EngineError::DeleteNotAllowed { job_id: id, status: record.status() });
        }
        store::delete_record(&self.inner.jobs_dir, id)
            .map_err(|source| EngineError::Storage { path: self.inner.jobs_dir.clone(), source })?;
        state.jobs.remove(&id);
        Ok(())
    }

    /// Ids of the jobs pending or running, oldest first.
    pub fn active_jobs(&self) -> Vec<Uuid> {
        let state = lock(&self.inner.state);
        let mut active: Vec<&JobRecord> = state.jobs.values().filter(|r| !r.status().is_terminal()).collect();
        active.sort_by_key(|r| r.seq);
        active.into_iter().map(JobRecord::id).collect()
    }

    /// Stops admitting jobs (graceful shutdown): later submissions get
    /// [`EngineError::AdmissionClosed`]. Pending and running jobs carry on.
    pub fn close_admission(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }

    /// Waits until no job is pending or running, at most `limit`; returns
    /// the jobs still active then.
    pub async fn drain(&self, limit: Duration) -> Vec<Uuid> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let active = self.active_jobs();
            if active.is_empty() || tokio::time::Instant::now() >= deadline {
                return active;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every future event of every job.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    /// Waits until job `id` has finished and returns it.
    pub async fn wait(&self, id: Uuid) -> Result<JobDetail, EngineError> {
        let mut events = self.subscribe();
        loop {
            let job = self.get(id)?;
            if job.status.is_terminal() {
                return Ok(job);
            }
            match events.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return self.get(id),
            }
        }
    }
}

impl Inner {
    fn event(&self, record: &JobRecord, kind: JobEventKind, log: Option<String>) -> JobEvent {
        let d = &record.detail;
        JobEvent {
            kind,
            job_id: d.job_id,
            operation: d.operation,
            status: d.status,
            progress: d.progress,
            message: d.message.clone(),
            timestamp: self.clock.now(),
            log,
            error: d.error.clone(),
            error_code: d.error_code.clone(),
        }
    }

    /// Changes a job that has not finished. `persist` writes the record;
    /// `event` broadcasts. Returns false when the job is gone or finished
    /// (late output of a job that already timed out is dropped).
    fn update(
        &self,
        id: Uuid,
        persist: bool,
        event: Option<(JobEventKind, Option<String>)>,
        change: impl FnOnce(&mut JobRecord),
    ) -> bool {
        match self.try_update(id, persist, event, change) {
            Ok(updated) => updated,
            Err(err) => {
                tracing::error!(job.id = %id, %err, "could not write the job record");
                true
            }
        }
    }

    /// Like [`Inner::update`], but a failed write is returned: for the writes
    /// that crash recovery and rollback depend on.
    fn try_update(
        &self,
        id: Uuid,
        persist: bool,
        event: Option<(JobEventKind, Option<String>)>,
        change: impl FnOnce(&mut JobRecord),
    ) -> std::io::Result<bool> {
        let mut state = lock(&self.state);
        let Some(record) = state.jobs.get_mut(&id) else {
            return Ok(false);
        };
        if record.status().is_terminal() {
            return Ok(false);
        }
        change(record);
        let written = if persist { store::write_record(&self.jobs_dir, record) } else { Ok(()) };
        if let Some((kind, log)) = event {
            let _ = self.events.send(self.event(record, kind, log));
        }
        written.map(|()| true)
    }

    fn finish(&self, id: Uuid, outcome: Result<String, Failure>) {
        let now = self.clock.now();
        let mut state = lock(&self.state);
        if let Some(record) = state.jobs.get_mut(&id).filter(|r| !r.status().is_terminal()) {
            let d = &mut record.detail;
            d.completed_at = Some(now);
            match outcome {
                Ok(message) => {
                    d.status = JobStatus::Completed;
                    d.progress = 100;
                    d.logs.push(message.clone());
                    d.message = message;
                }
                Err(failure) => {
                    d.status = failure.status;
                    d.logs.push(format!("error ({}): {}", failure.code, failure.message));
                    d.message = failure.message.clone();
                    d.error = Some(failure.message);
                    d.error_code = Some(failure.code.as_str().to_owned());
                }
            }
            if let Err(err) = store::write_record(&self.jobs_dir, record) {
                tracing::error!(job.id = %id, %err, "could not write the finished job record");
            }
            tracing::info!(job.id = %id, status = record.status().as_str(), message = %record.detail.message, "job finished");
            let _ = self.events.send(self.event(record, JobEventKind::Status, None));
        }
        if state.exclusive == Some(id) {
            state.exclusive = None;
        }
        self.prune(&mut state);
    }

    /// Deletes the oldest finished jobs beyond `keep_terminal`.
    fn prune(&self, state: &mut State) {
        let mut terminal: Vec<(jiff::Timestamp, u64, Uuid)> = state
            .jobs
            .values()
            .filter(|r| r.status().is_terminal())
            .map(|r| (r.detail.created_at, r.seq, r.id()))
            .collect();
        if terminal.len() <= self.config.keep_terminal {
            return;
        }
        terminal.sort_unstable_by(|a, b| b.cmp(a));
        for (_, _, id) in terminal.split_off(self.config.keep_terminal) {
            match store::delete_record(&self.jobs_dir, id) {
                Ok(()) => {
                    state.jobs.remove(&id);
                }
                Err(err) => tracing::warn!(job.id = %id, %err, "could not delete an old job record"),
            }
        }
    }
}

/// What a running job uses to report and to reach the engine. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct JobCtx {
    inner: Arc<Inner>,
    id: Uuid,
    cancelled: Arc<AtomicBool>,
    /// The job's operation, for hooks (`PATCHDECK_COMMAND`).
    operation: JobOperation,
    /// Whether hooks run around this job, and how far they got.
    hooks: Arc<Mutex<HookProgress>>,
}

/// Where a job is with its hooks.
#[derive(Debug, Default)]
struct HookProgress {
    /// Hooks run around this job at all.
    enabled: bool,
    /// The pre-hooks ran (and passed): post-hooks are due.
    pre_done: bool,
    post_done: bool,
}

impl JobCtx {
    pub(crate) fn id(&self) -> Uuid {
        self.id
    }

    /// Sets progress (never backwards) and message; persisted and broadcast.
    pub(crate) fn progress(&self, progress: u8, message: impl Into<String>) {
        let message = message.into();
        self.inner.update(self.id, true, Some((JobEventKind::Status, None)), |r| {
            r.detail.progress = r.detail.progress.max(progress.min(100));
            r.detail.logs.push(message.clone());
            r.detail.message = message;
        });
    }

    /// Adds a line to the job's log and broadcasts it.
    pub(crate) fn log(&self, line: impl Into<String>) {
        let line = line.into();
        self.inner.update(self.id, false, Some((JobEventKind::Log, Some(line.clone()))), |r| {
            push_log(&mut r.detail.logs, line);
        });
    }

    /// One line of package-manager output: logged, and kept in the job's
    /// `command_stdout` / `command_stderr`.
    pub(crate) fn output_line(&self, stream: Stream, line: &str) {
        let line = line.to_owned();
        self.inner.update(self.id, false, Some((JobEventKind::Log, Some(line.clone()))), |r| {
            let buf = match stream {
                Stream::Stdout => r.detail.command_stdout.get_or_insert_with(String::new),
                Stream::Stderr => r.detail.command_stderr.get_or_insert_with(String::new),
            };
            buf.push_str(&line);
            buf.push('\n');
            if buf.len() > MAX_OUTPUT_BYTES {
                let mut cut = buf.len() - MAX_OUTPUT_BYTES;
                while !buf.is_char_boundary(cut) {
                    cut += 1;
                }
                buf.drain(..cut);
            }
            push_log(&mut r.detail.logs, line);
        });
    }

    pub(crate) fn set_exit_code(&self, code: Option<i32>) {
        self.inner.update(self.id, false, None, |r| r.detail.exit_code = code);
    }

    /// Adds what `tx` touches to the job's recorded changes (keeping the
    /// first recorded "before" of each package) and writes the record: this
    /// runs before the transaction changes anything.
    ///
    /// Fails the job when the record cannot be written: a transaction must
    /// not run without its rollback data on disk.
    pub(crate) fn record_changes(&self, tx: &Transaction) -> Result<(), Failure> {
        self.inner
            .try_update(self.id, true, None, |r| {
                for item in &tx.items {
                    let after = if item.action == TxAction::Remove { None } else { item.to.clone() };
                    match r.changes.iter_mut().find(|c| c.name == item.name && c.arch == item.arch) {
                        Some(change) => change.after = after,
                        None => r.changes.push(RecordedChange {
                            name: item.name.clone(),
                            arch: item.arch.clone(),
                            before: item.from.clone(),
                            after,
                        }),
                    }
                }
            })
            .map(drop)
            .map_err(|e| {
                Failure::new(
                    JobErrorCode::InternalError,
                    format!("could not record the versions before changing them: {e}"),
                )
            })
    }

    /// Runs the pre-patch hooks the first time a transaction of this job is about to change
    /// the host (`planned` is not empty); later calls do nothing. Fails the job with
    /// `pre_hook_failed` when one fails: nothing has been changed yet.
    pub(crate) fn pre_hooks(&self, planned: &Transaction) -> Result<(), Failure> {
        let Some(settings) = self.inner.config.hooks.clone() else { return Ok(()) };
        {
            let mut progress = lock(&self.hooks);
            if !progress.enabled || progress.pre_done {
                return Ok(());
            }
            progress.pre_done = true;
        }
        self.check()?;
        let context = hooks::HookContext {
            job_id: self.id,
            command: self.operation.as_str().to_owned(),
            packages: planned.items.iter().map(|i| i.name.clone()).collect(),
            succeeded: None,
        };
        self.progress(10, "running the pre-patch hooks");
        let runs = hooks::run_phase(&settings, HookPhase::Pre, &context, &mut |line| self.log(line));
        let failed = runs.iter().find(|r| hooks::is_failure(r)).map(hook_failure_text);
        self.record_hooks(runs);
        match failed {
            Some(why) => {
                // Nothing changed: no post-hooks are due.
                lock(&self.hooks).post_done = true;
                Err(Failure::new(JobErrorCode::PreHookFailed, format!("{why}; nothing was changed")))
            }
            None => Ok(()),
        }
    }

    /// Runs the post-patch hooks once, when the pre-hooks ran; `succeeded` says whether the
    /// package work did (`PATCHDECK_RESULT`). `Err` with `post_hook_failed` when one failed.
    pub(crate) fn post_hooks(&self, succeeded: bool) -> Result<(), Failure> {
        let Some(settings) = self.inner.config.hooks.clone() else { return Ok(()) };
        {
            let mut progress = lock(&self.hooks);
            if !progress.pre_done || progress.post_done {
                return Ok(());
            }
            progress.post_done = true;
        }
        self.check()?;
        let mut packages: Vec<String> =
            self.changes_of(self.id).unwrap_or_default().into_iter().map(|c| c.name).collect();
        packages.dedup();
        let context = hooks::HookContext {
            job_id: self.id,
            command: self.operation.as_str().to_owned(),
            packages,
            succeeded: Some(succeeded),
        };
        self.log("running the post-patch hooks");
        let runs = hooks::run_phase(&settings, HookPhase::Post, &context, &mut |line| self.log(line));
        let failed: Vec<String> = runs.iter().filter(|r| hooks::is_failure(r)).map(hook_failure_text).collect();
        self.record_hooks(runs);
        if failed.is_empty() {
            return Ok(());
        }
        Err(Failure::new(JobErrorCode::PostHookFailed, format!("{}; the package changes stand", failed.join("; "))))
    }

    fn record_hooks(&self, runs: Vec<patchdeck_proto::orchestration::HookRun>) {
        if runs.is_empty() {
            return;
        }
        self.inner.update(self.id, true, None, |r| r.hooks.extend(runs));
    }

    /// How many other jobs are pending or running.
    pub(crate) fn other_active_jobs(&self) -> usize {
        lock(&self.inner.state).jobs.values().filter(|r| r.id() != self.id && !r.status().is_terminal()).count()
    }

    /// The changes job `id` recorded.
    pub(crate) fn changes_of(&self, id: Uuid) -> Option<Vec<RecordedChange>> {
        lock(&self.inner.state).jobs.get(&id).map(|r| r.changes.clone())
    }

    pub(crate) fn rebooter(&self) -> &dyn Rebooter {
        &*self.inner.rebooter
    }

    /// The name of the agent's own package (for self-updates).
    pub(crate) fn self_package(&self) -> &str {
        &self.inner.config.self_package
    }

    /// Fails when the job has been stopped (timed out) meanwhile.
    pub(crate) fn check(&self) -> Result<(), Failure> {
        if self.cancelled.load(Ordering::SeqCst) {
            return Err(Failure::new(JobErrorCode::JobTimeout, "the job was stopped"));
        }
        Ok(())
    }
}

/// `hook NAME failed (exit code 3): <its last output line>`.
fn hook_failure_text(run: &patchdeck_proto::orchestration::HookRun) -> String {
    let how = match (run.outcome, run.exit_code) {
        (patchdeck_proto::orchestration::HookOutcome::TimedOut, _) => "timed out".to_owned(),
        (_, Some(code)) => format!("failed (exit code {code})"),
        _ => "failed".to_owned(),
    };
    let last = run.output.lines().rev().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("[patchdeck-agent"));
    match last {
        Some(line) => format!("{}-patch hook {} {how}: {line}", run.phase.as_str(), run.name),
        None => format!("{}-patch hook {} {how}", run.phase.as_str(), run.name),
    }
}

fn push_log(logs: &mut Vec<String>, line: String) {
    if logs.len() >= MAX_LOG_LINES {
        logs.drain(..logs.len() + 1 - MAX_LOG_LINES);
    }
    logs.push(line);
}

/// Runs one job from `pending` to its end.
async fn run_job(inner: Arc<Inner>, id: Uuid, request: JobRequest) {
    // The semaphore is never closed, so this only fails if the engine is broken.
    let Ok(_slot) = Arc::clone(&inner.slots).acquire_owned().await else {
        inner.finish(id, Err(Failure::new(JobErrorCode::InternalError, "the job scheduler is closed")));
        return;
    };
    let now = inner.clock.now();
    let started = inner.try_update(id, true, Some((JobEventKind::Status, None)), |r| {
        r.detail.status = JobStatus::Running;
        r.detail.message = "running".to_owned();
        r.detail.logs.push(format!("started by agent process {}", std::process::id()));
        r.started_at = Some(now);
        r.agent_pid = Some(std::process::id());
    });
    match started {
        Ok(true) => {}
        Ok(false) => return,
        Err(err) => {
            // Without a durable "running" record a restart could not tell that a
            // transaction may still be running: do not start one.
            let message = format!("could not write the job record before starting: {err}");
            inner.finish(id, Err(Failure::new(JobErrorCode::InternalError, message)));
            return;
        }
    }
    let cancelled = Arc::new(AtomicBool::new(false));
    let hooks = HookProgress { enabled: request.runs_hooks(), ..HookProgress::default() };
    let ctx = JobCtx {
        inner: Arc::clone(&inner),
        id,
        cancelled: Arc::clone(&cancelled),
        operation: request.operation(),
        hooks: Arc::new(Mutex::new(hooks)),
    };
    let timeout = inner.config.job_timeout;
    let outcome = match tokio::time::timeout(timeout, execute(&ctx, request)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            cancelled.store(true, Ordering::SeqCst);
            let killed = tokio::task::spawn_blocking(move || procs::kill_job(id, KILL_GRACE)).await.unwrap_or_default();
            let stopped = if killed.is_empty() {
                String::new()
            } else {
                format!(
                    "; stopped process group(s) {}",
                    killed.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                )
            };
            Err(Failure::new(
                JobErrorCode::JobTimeout,
                format!("the job did not finish within {}s{stopped}", timeout.as_secs()),
            ))
        }
    };
    inner.finish(id, outcome);
}

/// Runs the job's work; package work on a blocking thread holding the
/// transaction permit.
async fn execute(ctx: &JobCtx, request: JobRequest) -> Result<String, Failure> {
    match request {
        JobRequest::Reboot { delay, force, message } => {
            ctx.progress(
                50,
                format!(
                    "scheduling a reboot in {}s{}{}",
                    delay.as_secs(),
                    if force { " (forced)" } else { "" },
                    message.as_deref().map(|m| format!(", warning logged-in users: {m}")).unwrap_or_default()
                ),
            );
            let job = ctx.clone();
            let done = tokio::task::spawn_blocking(move || job.rebooter().reboot(delay, message.as_deref()))
                .await
                .map_err(|e| Failure::new(JobErrorCode::InternalError, format!("the reboot worker failed: {e}")))?
                .map_err(|e| Failure::new(JobErrorCode::RebootError, e.to_string()))?;
            ctx.log(done);
            Ok(format!("reboot scheduled in {}s", delay.as_secs()))
        }
        request => {
            let permit = acquire_transaction(ctx).await?;
            let job = ctx.clone();
            let backend = ctx.inner.backend.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                job.check()?;
                let pm = backend.open_for_job(job.id());
                let result = run::run_package_job(&job, &*pm, request);
                // Post-hooks, if the pre-hooks ran and a failure has not stopped the job.
                let result = match result {
                    Ok(message) => job.post_hooks(true).map(|()| message),
                    Err(failure) if failure.code != JobErrorCode::JobTimeout => {
                        if let Err(post) = job.post_hooks(false) {
                            job.log(format!("after the failure: {}", post.message));
                        }
                        Err(failure)
                    }
                    Err(failure) => Err(failure),
                };
                if matches!(&result, Err(failure) if failure.code == JobErrorCode::Timeout) {
                    // The package layer killed the command's process group, but
                    // apt runs dpkg in a session of its own: stop what is left
                    // before the next transaction may start.
                    let stray = procs::kill_job(job.id(), KILL_GRACE);
                    if !stray.is_empty() {
                        job.log(format!(
                            "stopped process group(s) {} that outlived the timed-out command",
                            stray.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
                result
            })
            .await
            .map_err(|e| Failure::new(JobErrorCode::InternalError, format!("the package worker failed: {e}")))?
        }
    }
}

/// Takes the host's transaction permit, then waits until no process of a job
/// from a previous agent process is alive.
async fn acquire_transaction(ctx: &JobCtx) -> Result<OwnedSemaphorePermit, Failure> {
    let semaphore = Arc::clone(&ctx.inner.transactions);
    let permit = match Arc::clone(&semaphore).try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            ctx.progress(0, "waiting for another package transaction to finish");
            semaphore
                .acquire_owned()
                .await
                .map_err(|_| Failure::new(JobErrorCode::InternalError, "the package transaction lock is closed"))?
        }
    };
    let mut reported = false;
    let started = tokio::time::Instant::now();
    loop {
        let leftovers = lock(&ctx.inner.leftovers).clone();
        if leftovers.is_empty() {
            break;
        }
        let alive = tokio::task::spawn_blocking(move || procs::find_marked(&leftovers)).await.unwrap_or_default();
        if alive.is_empty() {
            lock(&ctx.inner.leftovers).clear();
            break;
        }
        let waited = started.elapsed();
        if std::time::Instant::now() >= ctx.inner.leftovers_until {
            let pids: Vec<String> = alive.iter().map(|p| p.pid.to_string()).collect();
            tracing::warn!(job.id = %ctx.id, pids = %pids.join(","), "processes of the previous agent outlived the wait");
            ctx.log(format!(
                "processes {} of jobs from before the restart are still alive after {}s; starting anyway \
                 (the package manager's own lock guards its database)",
                pids.join(", "),
                waited.as_secs()
            ));
            lock(&ctx.inner.leftovers).clear();
            break;
        }
        if !reported {
            let list: Vec<String> = alive
                .iter()
                .map(|p| format!("pid {} (group {}) of job {}", p.pid, p.pgid.unwrap_or(p.pid), p.job_id))
                .collect();
            ctx.progress(
                0,
                format!(
                    "waiting for package manager processes left by the previous agent process to exit: {}",
                    list.join(", ")
                ),
            );
            reported = true;
        }
        tokio::time::sleep(ctx.inner.config.leftover_poll).await;
    }
    Ok(permit)
}
