//! The push worker: polls every push host over its Linux_Patch_API and relays queued commands
//! to it.
//!
//! Per host, on the injected clock:
//! - **health** every [`PushWorkerConfig::health_interval`] (5 min): an answer makes the host
//!   `online` (and its last contact now); a failure is retried with exponential backoff
//!   ([`Backoff`]: 30 s, 60 s, 120 s, … capped at 30 min), and after
//!   [`Backoff::max_tries`] failures in a row (3) the host is `unreachable`. The backoff keeps
//!   growing, to the cap, while the host stays down.
//! - **inventory** ("patches") every [`PushWorkerConfig::inventory_interval`] (30 min) while the
//!   host is online, and again after every command: [`PushClient::scan`] into
//!   [`PushStore::replace_inventory`] when its hash changed. Failures back off the same way.
//! - **commands** every [`PushWorkerConfig::command_interval`] while the host is online and no
//!   earlier command is still being relayed: [`PushStore::claim_commands`] (`pending` → `sent`),
//!   then one after the other, in queue order, each is submitted ([`PushClient::submit_with`];
//!   retryable refusals such as `QUEUE_FULL` are tried again), reported `running`, followed to
//!   its end ([`PushClient::follow_job`]) and reported with its terminal [`CommandResult`].
//!
//! At most [`PushWorkerConfig::max_concurrent_calls`] calls (health, inventory, submit) run at
//! once across all hosts; following a job holds no slot. Every host status change, job update
//! and command result is also published as a [`PushEvent`].
//!
//! The worker reaches a host at its address, else its FQDN, on [`PushWorkerConfig::port`]; the
//! host's push bundle certificate names both.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use patchdeck_proto::agent::{Command, CommandResult, CommandState, ResultError};
use patchdeck_proto::lpa::jobs::JobStatus;
use patchdeck_proto::lpa::{Health, HealthStatus};
use patchdeck_proto::ScanReport;
use patchdeck_store::{Host, HostId, HostStatus};
use tokio::sync::{broadcast, watch, Notify, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::client::{PushClient, PushConnector, PushError, Submission, SubmitContext};
use super::convert;
use crate::clock::Clock;

/// The storage the worker needs, so that it can run against `patchdeck_store::Store` and, in
/// tests, an in-memory store. For `Store`:
///
/// | method | `Store` |
/// |---|---|
/// | `push_hosts` | every page of `list_hosts(&HostFilter { transport: Some(Transport::Push), ..HostFilter::new(Scope::All) })` |
/// | `set_host_status` | `set_host_status(id, status, last_seen, now)` |
/// | `replace_inventory` | `replace_inventory(host, report, hash, now)` |
/// | `claim_commands` | `claim_commands(host, now, limit)`, each `CommandRecord` as a [`ClaimedCommand`] |
/// | `apply_command_result` | `apply_command_result(host, result, now)` |
/// | `command_job_id` | the `job_id` of the results stored for command `command_id` of `host` |
pub trait PushStore: Send + Sync + 'static {
    /// Every host with transport `push`.
    fn push_hosts(&self) -> impl Future<Output = Result<Vec<Host>, patchdeck_store::Error>> + Send;

    /// Sets a host's status, and its last contact when `last_seen` is given.
    fn set_host_status(
        &self,
        host: HostId,
        status: HostStatus,
        last_seen: Option<Timestamp>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), patchdeck_store::Error>> + Send;

    /// Replaces the host's inventory; `hash` is [`patchdeck_proto::agent::inventory_hash`] of
    /// `report`.
    fn replace_inventory(
        &self,
        host: HostId,
        report: &ScanReport,
        hash: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), patchdeck_store::Error>> + Send;

    /// Takes up to `limit` of the host's pending commands, oldest first, marking them `sent`.
    fn claim_commands(
        &self,
        host: HostId,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ClaimedCommand>, patchdeck_store::Error>> + Send;

    /// Records a command's progress (`running`) or outcome.
    fn apply_command_result(
        &self,
        host: HostId,
        result: &CommandResult,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), patchdeck_store::Error>> + Send;

    /// The agent job that ran command `command_id` on `host`, from its stored results (what a
    /// `rollback` of that command rolls back).
    fn command_job_id(
        &self,
        host: HostId,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Option<Uuid>, patchdeck_store::Error>> + Send;
}

/// A queued command the worker took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedCommand {
    /// The command's id (results carry it).
    pub id: Uuid,
    pub command: Command,
}

/// Retry delays: `base`, `2·base`, `4·base`, … never more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    /// Failures in a row after which a host is `unreachable`.
    pub max_tries: u32,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { base: Duration::from_secs(30), max_tries: 3, cap: Duration::from_secs(30 * 60) }
    }
}

impl Backoff {
    /// The wait after the `failures`-th failure in a row (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }
}

/// How often and how hard the worker polls.
#[derive(Debug, Clone)]
pub struct PushWorkerConfig {
    /// The agents' port.
    pub port: u16,
    pub health_interval: Duration,
    pub inventory_interval: Duration,
    /// How often queued commands are looked for (0: on every tick).
    pub command_interval: Duration,
    /// How often [`PushWorker::run`] looks at the hosts.
    pub tick: Duration,
    /// Most calls in flight across all hosts.
    pub max_concurrent_calls: usize,
    /// Most commands taken from a host's queue at once.
    pub claim_limit: u32,
    /// Failed health and inventory calls.
    pub retry: Backoff,
    /// Waits between tries of a retryable submit refusal (`QUEUE_FULL`, …); real time.
    pub submit_retry: Backoff,
}

impl Default for PushWorkerConfig {
    fn default() -> Self {
        PushWorkerConfig {
            port: super::client::DEFAULT_PORT,
            health_interval: Duration::from_secs(5 * 60),
            inventory_interval: Duration::from_secs(30 * 60),
            command_interval: Duration::from_secs(10),
            tick: Duration::from_secs(1),
            max_concurrent_calls: 64,
            claim_limit: 10,
            retry: Backoff::default(),
            submit_retry: Backoff { base: Duration::from_secs(5), max_tries: 3, cap: Duration::from_secs(60) },
        }
    }
}

/// What the worker tells whoever listens (the manager relays these to browsers).
#[derive(Debug, Clone)]
pub enum PushEvent {
    /// A host's status changed; `error` says why when it became unreachable.
    HostStatus { host: HostId, status: HostStatus, error: Option<String> },
    /// A host's inventory was stored.
    Inventory { host: HostId, hash: String, installed: usize, updates: usize, security_updates: usize },
    /// A job of a command changed.
    Job {
        host: HostId,
        command_id: Uuid,
        job_id: Uuid,
        status: JobStatus,
        progress: u8,
        message: String,
        error: Option<String>,
        error_code: Option<String>,
    },
    /// A command was reported (`running`, then its end).
    CommandResult { host: HostId, result: CommandResult },
}

/// What the worker knows about one host's schedule, for status pages and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSchedule {
    /// When health is checked next.
    pub next_health_at: Timestamp,
    /// Failed health checks in a row.
    pub health_failures: u32,
    /// When the inventory is read next.
    pub next_inventory_at: Timestamp,
    /// Failed inventory reads in a row.
    pub inventory_failures: u32,
    /// Commands being relayed now.
    pub commands_running: usize,
}

#[derive(Debug)]
struct HostState {
    schedule: HostSchedule,
    next_commands_at: Timestamp,
    /// A round (health, inventory, claiming) is in flight.
    busy: bool,
    /// The status the worker last set or saw.
    status: HostStatus,
    last_hash: Option<String>,
}

/// What one [`PushWorker::tick`] started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Push hosts listed.
    pub hosts: usize,
    /// Host rounds started (health, inventory or commands due).
    pub rounds: usize,
}

/// The push worker. Cheap to clone: every clone is the same worker.
pub struct PushWorker<S: PushStore> {
    inner: Arc<Inner<S>>,
}

impl<S: PushStore> Clone for PushWorker<S> {
    fn clone(&self) -> Self {
        PushWorker { inner: self.inner.clone() }
    }
}

impl<S: PushStore> std::fmt::Debug for PushWorker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushWorker").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

struct Inner<S> {
    store: S,
    connector: PushConnector,
    config: PushWorkerConfig,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<PushEvent>,
    calls: Semaphore,
    hosts: Mutex<HashMap<HostId, HostState>>,
    tasks: Mutex<JoinSet<()>>,
    wake: Notify,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn later(now: Timestamp, by: Duration) -> Timestamp {
    SignedDuration::try_from(by).ok().and_then(|by| now.checked_add(by).ok()).unwrap_or(Timestamp::MAX)
}

/// What a round of one host does.
#[derive(Debug, Clone, Copy)]
struct Due {
    health: bool,
    inventory: bool,
    commands: bool,
}

impl<S: PushStore> PushWorker<S> {
    /// A worker over `store`, reaching agents through `connector`, publishing on `events`.
    pub fn new(
        store: S,
        connector: PushConnector,
        config: PushWorkerConfig,
        clock: Arc<dyn Clock>,
        events: broadcast::Sender<PushEvent>,
    ) -> PushWorker<S> {
        let calls = Semaphore::new(config.max_concurrent_calls.max(1));
        PushWorker {
            inner: Arc::new(Inner {
                store,
                connector,
                config,
                clock,
                events,
                calls,
                hosts: Mutex::new(HashMap::new()),
                tasks: Mutex::new(JoinSet::new()),
                wake: Notify::new(),
            }),
        }
    }

    /// The store the worker uses.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The schedule of `host`, once the worker has seen it.
    pub fn schedule(&self, host: HostId) -> Option<HostSchedule> {
        lock(&self.inner.hosts).get(&host).map(|s| s.schedule)
    }

    /// Makes [`Self::run`] look at the hosts now, and every host's queued commands due: call it
    /// after queueing a command for a push host.
    pub fn wake(&self) {
        let now = self.inner.clock.now();
        for state in lock(&self.inner.hosts).values_mut() {
            state.next_commands_at = now;
        }
        self.inner.wake.notify_one();
    }

    /// Makes `host`'s queued commands due now, if the worker knows the host (a push host it has
    /// listed); else does nothing, so it is cheap to call for every queued command.
    pub fn wake_host(&self, host: HostId) {
        let now = self.inner.clock.now();
        let known = self.with_state(host, |s| s.next_commands_at = now).is_some();
        if known {
            self.inner.wake.notify_one();
        }
    }

    /// Runs until `shutdown` becomes `true` (or its sender goes away): a [`Self::tick`] every
    /// [`PushWorkerConfig::tick`] or on [`Self::wake`]. Work in flight is abandoned on shutdown;
    /// commands being followed stay `sent`/`running` in the store.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow_and_update() {
                break;
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "push worker: listing push hosts failed");
            }
            self.reap();
            tokio::select! {
                () = tokio::time::sleep(self.inner.config.tick) => {}
                () = self.inner.wake.notified() => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        lock(&self.inner.tasks).abort_all();
    }

    /// Looks at every push host once and starts what is due (see the module docs). Returns at
    /// once; [`Self::settle`] waits for what it started.
    pub async fn tick(&self) -> Result<TickReport, patchdeck_store::Error> {
        let hosts = self.inner.store.push_hosts().await?;
        let now = self.inner.clock.now();
        let mut report = TickReport { hosts: hosts.len(), rounds: 0 };
        let mut starts = Vec::new();
        {
            let mut states = lock(&self.inner.hosts);
            states.retain(|id, _| hosts.iter().any(|h| h.id == *id));
            for host in hosts {
                let state = states.entry(host.id).or_insert_with(|| HostState {
                    schedule: HostSchedule {
                        next_health_at: now,
                        health_failures: 0,
                        next_inventory_at: now,
                        inventory_failures: 0,
                        commands_running: 0,
                    },
                    next_commands_at: now,
                    busy: false,
                    status: host.status,
                    last_hash: None,
                });
                if state.busy {
                    continue;
                }
                // Someone else (an admin, a replica) may have changed the row.
                state.status = host.status;
                let reachable = state.status.is_reachable();
                let due = Due {
                    health: state.schedule.next_health_at <= now,
                    inventory: state.schedule.next_inventory_at <= now,
                    commands: state.next_commands_at <= now,
                };
                if due.health || (reachable && (due.inventory || due.commands)) {
                    state.busy = true;
                    starts.push((host, due));
                }
            }
        }
        for (host, due) in starts {
            report.rounds += 1;
            let worker = self.clone();
            self.spawn(async move { worker.round(host, due).await });
        }
        Ok(report)
    }

    /// Waits until everything the worker started has finished (rounds, and the commands they
    /// relay).
    pub async fn settle(&self) {
        loop {
            let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
            if tasks.is_empty() {
                return;
            }
            while let Some(done) = tasks.join_next().await {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "a push worker task panicked");
                    }
                }
            }
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        lock(&self.inner.tasks).spawn(task);
    }

    fn reap(&self) {
        let mut tasks = lock(&self.inner.tasks);
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                if e.is_panic() {
                    tracing::error!(error = %e, "a push worker task panicked");
                }
            }
        }
    }

    fn publish(&self, event: PushEvent) {
        // No listener is fine.
        let _ = self.inner.events.send(event);
    }

    fn with_state<T>(&self, host: HostId, f: impl FnOnce(&mut HostState) -> T) -> Option<T> {
        lock(&self.inner.hosts).get_mut(&host).map(f)
    }

    async fn call<T>(&self, call: impl Future<Output = T>) -> T {
        let _permit = self.inner.calls.acquire().await.expect("the call semaphore is never closed");
        call.await
    }

    /// Health, then (if the host answers) inventory and commands, as due.
    async fn round(&self, host: Host, due: Due) {
        let id = host.id;
        let target = host.address.clone().or_else(|| host.fqdn.clone()).unwrap_or_default();
        let client = self.inner.connector.client_at(&target, self.inner.config.port);
        let mut reachable = self.with_state(id, |s| s.status.is_reachable()).unwrap_or(false);
        if due.health {
            let result = match &client {
                Ok(client) => self.call(client.health()).await,
                Err(e) => Err(e.clone()),
            };
            reachable = self.health_result(id, result).await;
        }
        if let (true, Ok(client)) = (reachable, &client) {
            if due.inventory {
                self.inventory(id, client).await;
            }
            if due.commands {
                self.claim(id, client).await;
            }
        }
        self.with_state(id, |s| s.busy = false);
    }

    /// Records a health answer or failure; whether the host counts as reachable now. An agent
    /// that answers `degraded` is reachable (it is polled and sent commands) but shown
    /// `degraded`, with what it reported.
    async fn health_result(&self, id: HostId, result: Result<Health, PushError>) -> bool {
        let now = self.inner.clock.now();
        let config = &self.inner.config;
        match result {
            Ok(health) => {
                let (status, problem) = match health.status {
                    HealthStatus::Healthy => (HostStatus::Online, None),
                    HealthStatus::Degraded => (HostStatus::Degraded, Some(degradation(&health))),
                };
                let was = self.with_state(id, |s| {
                    s.schedule.health_failures = 0;
                    s.schedule.next_health_at = later(now, config.health_interval);
                    std::mem::replace(&mut s.status, status)
                });
                if let Err(e) = self.inner.store.set_host_status(id, status, Some(now), now).await {
                    tracing::warn!(host.id = id.0, error = %e, "push worker: storing the host status failed");
                }
                if was != Some(status) {
                    tracing::info!(host.id = id.0, status = status.as_str(), problem, "push host answered");
                    self.publish(PushEvent::HostStatus { host: id, status, error: problem });
                }
                true
            }
            Err(e) => {
                let (failures, became_unreachable) = self
                    .with_state(id, |s| {
                        s.schedule.health_failures += 1;
                        let failures = s.schedule.health_failures;
                        s.schedule.next_health_at = later(now, config.retry.delay(failures));
                        let down = failures >= config.retry.max_tries && s.status != HostStatus::Unreachable;
                        if down {
                            s.status = HostStatus::Unreachable;
                        }
                        (failures, down)
                    })
                    .unwrap_or((0, false));
                tracing::debug!(host.id = id.0, failures, error = %e, "push host health check failed");
                if became_unreachable {
                    tracing::warn!(host.id = id.0, failures, error = %e, "push host unreachable");
                    if let Err(se) = self.inner.store.set_host_status(id, HostStatus::Unreachable, None, now).await {
                        tracing::warn!(host.id = id.0, error = %se, "push worker: storing the host status failed");
                    }
                    self.publish(PushEvent::HostStatus {
                        host: id,
                        status: HostStatus::Unreachable,
                        error: Some(e.to_string()),
                    });
                }
                false
            }
        }
    }

    async fn inventory(&self, id: HostId, client: &PushClient) {
        let config = &self.inner.config;
        let result = self.call(client.scan()).await;
        let now = self.inner.clock.now();
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                let failures = self
                    .with_state(id, |s| {
                        s.schedule.inventory_failures += 1;
                        s.schedule.next_inventory_at = later(now, config.retry.delay(s.schedule.inventory_failures));
                        s.schedule.inventory_failures
                    })
                    .unwrap_or(0);
                tracing::warn!(host.id = id.0, failures, error = %e, "push worker: reading the inventory failed");
                return;
            }
        };
        let hash = patchdeck_proto::agent::inventory_hash(&report);
        let unchanged = self.with_state(id, |s| s.last_hash.as_deref() == Some(hash.as_str())).unwrap_or(false);
        if !unchanged {
            if let Err(e) = self.inner.store.replace_inventory(id, &report, &hash, now).await {
                tracing::warn!(host.id = id.0, error = %e, "push worker: storing the inventory failed");
                self.with_state(id, |s| s.schedule.next_inventory_at = later(now, config.retry.delay(1)));
                return;
            }
            self.publish(PushEvent::Inventory {
                host: id,
                hash: hash.clone(),
                installed: report.installed.len(),
                updates: report.updates.len(),
                security_updates: report.security_update_count(),
            });
        }
        self.with_state(id, |s| {
            s.last_hash = Some(hash);
            s.schedule.inventory_failures = 0;
            s.schedule.next_inventory_at = later(now, config.inventory_interval);
        });
    }

    /// Takes the host's queued commands and relays them one after the other, in queue order
    /// (an upgrade then a reboot must not race), unless earlier ones are still being relayed.
    async fn claim(&self, id: HostId, client: &PushClient) {
        let now = self.inner.clock.now();
        let busy = self
            .with_state(id, |s| {
                s.next_commands_at = later(now, self.inner.config.command_interval);
                s.schedule.commands_running > 0
            })
            .unwrap_or(true);
        if busy {
            return;
        }
        let claimed = match self.inner.store.claim_commands(id, now, self.inner.config.claim_limit).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(host.id = id.0, error = %e, "push worker: claiming commands failed");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        self.with_state(id, |s| s.schedule.commands_running = claimed.len());
        let worker = self.clone();
        let client = client.clone();
        self.spawn(async move {
            for command in claimed {
                worker.relay(id, &client, command).await;
                worker.with_state(id, |s| {
                    s.schedule.commands_running = s.schedule.commands_running.saturating_sub(1);
                    // What the command changed shows in the next inventory.
                    s.schedule.next_inventory_at = s.schedule.next_inventory_at.min(worker.inner.clock.now());
                });
            }
        });
    }

    async fn report(&self, id: HostId, result: CommandResult) {
        let now = self.inner.clock.now();
        if let Err(e) = self.inner.store.apply_command_result(id, &result, now).await {
            tracing::warn!(host.id = id.0, command.id = %result.command_id, error = %e, "push worker: storing a command result failed");
        }
        self.publish(PushEvent::CommandResult { host: id, result });
    }

    fn failed(&self, command_id: Uuid, job_id: Option<Uuid>, error: &PushError) -> CommandResult {
        CommandResult {
            command_id,
            state: CommandState::Failed,
            at: self.inner.clock.now(),
            job_id,
            error: Some(ResultError { code: error.code().to_owned(), message: error.to_string() }),
            output: String::new(),
            changes: Vec::new(),
            reboot_required: false,
            hooks: Vec::new(),
            checks: Vec::new(),
            preview: None,
        }
    }

    /// Submits one command, follows what it started, and reports it.
    async fn relay(&self, id: HostId, client: &PushClient, claimed: ClaimedCommand) {
        let command_id = claimed.id;
        let mut context = SubmitContext::default();
        if let Command::Rollback { command_id: original } = &claimed.command {
            match self.inner.store.command_job_id(id, *original).await {
                Ok(job) => context.rollback_job_id = job,
                Err(e) => {
                    tracing::warn!(host.id = id.0, command.id = %command_id, error = %e, "push worker: looking up the job to roll back failed");
                }
            }
        }
        let submission = self.submit(client, &claimed.command, &context).await;
        let (jobs, refused) = match submission {
            Err(PushError::PartlySubmitted { accepted, source }) => (accepted, Some(*source)),
            Err(e) => {
                tracing::info!(host.id = id.0, command.id = %command_id, error = %e, "push command refused");
                self.report(id, self.failed(command_id, None, &e)).await;
                return;
            }
            Ok(Submission::Done(done)) => {
                let now = self.inner.clock.now();
                if let Some(report) = &done.inventory {
                    let hash = patchdeck_proto::agent::inventory_hash(report);
                    match self.inner.store.replace_inventory(id, report, &hash, now).await {
                        Ok(()) => {
                            self.with_state(id, |s| s.last_hash = Some(hash));
                        }
                        Err(e) => {
                            tracing::warn!(host.id = id.0, error = %e, "push worker: storing the inventory failed");
                        }
                    }
                }
                self.report(id, done.result(command_id, now)).await;
                return;
            }
            Ok(Submission::Jobs(jobs)) => (jobs, None),
        };
        let first = jobs.first().map(|j| j.job_id);
        let running = CommandResult {
            command_id,
            state: CommandState::Running,
            at: self.inner.clock.now(),
            job_id: first,
            error: None,
            output: jobs.iter().map(|j| format!("job {}: {}", j.job_id, j.label)).collect::<Vec<_>>().join("\n"),
            changes: Vec::new(),
            reboot_required: false,
            hooks: Vec::new(),
            checks: Vec::new(),
            preview: None,
        };
        self.report(id, running).await;
        let mut details = Vec::with_capacity(jobs.len());
        for job in &jobs {
            let follow = client.follow_job(job.job_id);
            let outcome = follow
                .finish(|update| {
                    self.publish(PushEvent::Job {
                        host: id,
                        command_id,
                        job_id: update.job_id,
                        status: update.status,
                        progress: update.progress,
                        message: update.message.clone(),
                        error: update.error.clone(),
                        error_code: update.error_code.clone(),
                    })
                })
                .await;
            match outcome {
                Ok(detail) => details.push(detail),
                Err(e) => {
                    tracing::warn!(host.id = id.0, command.id = %command_id, job.id = %job.job_id, error = %e, "push worker: following a job failed");
                    let mut result = self.failed(command_id, first, &e);
                    result.output = format!("job {} ({}): its outcome is unknown: {e}", job.job_id, job.label);
                    self.report(id, result).await;
                    return;
                }
            }
        }
        let now = self.inner.clock.now();
        let mut result = convert::merge_results(command_id, &details, now);
        if let Ok(info) = self.call(client.system_info()).await {
            result.reboot_required = info.pending_reboot;
        }
        if let Some(refused) = refused {
            // Part of the command ran; the rest was refused.
            tracing::info!(host.id = id.0, command.id = %command_id, error = %refused, "push command refused part way");
            result.state = CommandState::Failed;
            result.error = Some(ResultError { code: refused.code().to_owned(), message: refused.to_string() });
            result.output = convert::truncate_output(format!("{}\n=== refused: {refused}", result.output));
        }
        self.report(id, result).await;
    }

    /// [`PushClient::submit_with`], trying retryable refusals again ([`PushWorkerConfig::submit_retry`]).
    async fn submit(
        &self,
        client: &PushClient,
        command: &Command,
        context: &SubmitContext,
    ) -> Result<Submission, PushError> {
        let retry = self.inner.config.submit_retry;
        let mut tries = 0;
        loop {
            tries += 1;
            match self.call(client.submit_with(command, context)).await {
                Err(e) if e.is_retryable() && tries < retry.max_tries => {
                    let wait = match &e {
                        PushError::Http { retry_after: Some(after), .. } => (*after).min(retry.cap),
                        _ => retry.delay(tries),
                    };
                    tracing::debug!(error = %e, tries, ?wait, "push worker: submitting again later");
                    tokio::time::sleep(wait).await;
                }
                other => return other,
            }
        }
    }
}

/// What a `degraded` agent reported, in words.
fn degradation(health: &Health) -> String {
    let mut parts = vec![format!("package cache {}", serde_label(&health.cache_status))];
    if let Some(crl) = &health.crl_status {
        parts.push(format!("CRL {}", serde_label(crl)));
    }
    if let Some(key) = &health.gpg_key_status {
        parts.push(format!("repository signing key {}", serde_label(key)));
    }
    format!("the agent reports degraded health: {}", parts.join(", "))
}

fn serde_label(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_degraded_agent_is_described_by_what_it_reported() {
        let health: Health = serde_json::from_value(serde_json::json!({
            "status": "degraded", "uptime_seconds": 5, "version": "1.0",
            "cache_status": "failed", "crl_status": "expired",
        }))
        .unwrap();
        assert_eq!(degradation(&health), "the agent reports degraded health: package cache failed, CRL expired");
    }

    #[test]
    fn push_backoff_doubles_to_the_cap() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=9).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);
        assert_eq!(b.delay(1000), Duration::from_secs(1800));
    }
}
