//! The check-in loop: long-poll the manager, apply its answer, back off when it is away.
//!
//! Each round: renew the certificate when due (checked at start and hourly), start a scheduled
//! scan in the background when due, upload the inventory when a scan command asked for it, then
//! `POST /agent/v1/checkin` with fresh metrics, the inventory hash, the results waiting in the
//! outbox and the rejections not yet delivered. The answer is applied — commands verified and
//! started, acknowledged results forgotten, the inventory uploaded when wanted — and the loop
//! waits `next_checkin_ms` before the next round.
//!
//! The hold time offered (`wait_ms`) is `pull.wait_secs`; while a heartbeat is on, its interval;
//! and while commands of this agent or a scheduled scan are in progress, at most
//! [`ACTIVE_WAIT`], so that their results (or the new inventory's hash) reach the manager within
//! seconds of being written rather than at the end of a long poll. (An answer cannot be abandoned to send results early: it may carry commands that the
//! manager has already marked delivered.)
//!
//! Failures back off ([`RetryPolicy`]); the loop never gives up. It ends when `shutdown` turns
//! true: results already in the outbox are sent after the next start.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use patchdeck_proto::agent::{
    CheckinRequest, CheckinResponse, CommandRejection, InventoryUpload, Metrics, MAX_RESULTS_PER_CHECKIN,
    PROTOCOL_VERSION,
};
use tokio::sync::watch;

use super::backoff::{BreakerChange, FailureKind, RetryPolicy, SplitMix64};
use super::client::{AgentClient, ClientError};
use super::commands::{self, Accepted, Books, Runner};
use super::identity::{Identity, PullPaths};
use super::ledger::CommandLedger;
use super::metrics::MetricsSampler;
use super::outbox::Outbox;
use super::renew;
use super::scanner::Scanner;
use super::seen::SeenStore;
use super::{fs, PullOptions};
use crate::jobs::JobEngine;

/// Longest hold offered while commands of this agent are in progress.
pub const ACTIVE_WAIT: Duration = Duration::from_secs(3);

/// Shortest time from one check-in's start to the next one's.
const MIN_CYCLE: Duration = Duration::from_secs(1);

/// Most rejections kept for the next check-in.
const MAX_REJECTIONS: usize = 100;

/// Longest `next_checkin_ms` honoured as given.
const MAX_NEXT_CHECKIN: Duration = Duration::from_secs(3600);

/// Clock skew beyond which the agent warns (signed commands expire after 5 minutes).
const SKEW_WARNING: Duration = Duration::from_secs(60);

/// Runs pull mode for an enrolled agent until `shutdown` turns true.
pub async fn run(
    options: PullOptions,
    identity: Identity,
    engine: JobEngine,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let paths = PullPaths::new(&options.state_dir);
    fs::create_private_dir(paths.dir()).with_context(|| format!("creating {}", paths.dir().display()))?;
    let outbox = Outbox::open(&paths.outbox()).with_context(|| format!("opening {}", paths.outbox().display()))?;
    let ledger =
        CommandLedger::open(&paths.commands()).with_context(|| format!("opening {}", paths.commands().display()))?;
    let seen = SeenStore::open(&paths.seen()).with_context(|| format!("opening {}", paths.seen().display()))?;
    let books = Arc::new(Mutex::new(Books { outbox, ledger }));
    let scanner = Arc::new(Scanner::load(options.backend.clone(), paths.inventory()));
    let runner = Runner::new(
        engine,
        options.backend.clone(),
        Arc::clone(&scanner),
        Arc::clone(&books),
        Arc::clone(&options.clock),
        options.health.clone(),
    );
    runner.recover().await;
    let client = AgentClient::new(&identity, options.request_timeout).context("the client certificate")?;
    tracing::info!(
        host.id = identity.host_id,
        server = %identity.server,
        command_key = %identity.command_key_fingerprint,
        certificate_not_after = %identity.not_after,
        "pull mode: checking in"
    );
    let next_scan = first_scan(&scanner, options.scan_interval);
    let sampler = MetricsSampler::new().with_boot_id_path(options.boot_id_path.clone());
    let mut agent = Agent {
        options,
        paths,
        identity,
        client,
        seen,
        books,
        scanner,
        runner,
        sampler,
        policy: RetryPolicy::standard(),
        rng: SplitMix64::from_entropy(),
        rejections: Vec::new(),
        heartbeat: None,
        next_scan,
        scan_task: None,
        next_renew_check: Instant::now(),
        refused: None,
        skew_warned: None,
    };
    agent.run(&mut shutdown).await;
    tracing::info!("pull mode stopped");
    Ok(())
}

/// When the first scheduled scan runs: now, unless the stored inventory is recent.
fn first_scan(scanner: &Scanner, interval: Duration) -> Instant {
    let now = Instant::now();
    let Some((report, _)) = scanner.latest() else { return now };
    let age = jiff::Timestamp::now().duration_since(report.scanned_at);
    match Duration::try_from(age) {
        Ok(age) if age < interval => now + (interval - age),
        _ => now,
    }
}

struct Agent {
    options: PullOptions,
    paths: PullPaths,
    identity: Identity,
    client: AgentClient,
    seen: SeenStore,
    books: Arc<Mutex<Books>>,
    scanner: Arc<Scanner>,
    runner: Runner,
    sampler: MetricsSampler,
    policy: RetryPolicy,
    rng: SplitMix64,
    rejections: Vec<CommandRejection>,
    /// Hold at most this long until then.
    heartbeat: Option<(Duration, Instant)>,
    next_scan: Instant,
    scan_task: Option<tokio::task::JoinHandle<()>>,
    next_renew_check: Instant,
    /// The refusal code logged last, so it is logged once.
    refused: Option<String>,
    skew_warned: Option<Instant>,
}

/// Sleeps `pause`; false when shutdown came first.
async fn pause(pause: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if pause.is_zero() {
        return !*shutdown.borrow();
    }
    let slept = tokio::select! {
        _ = tokio::time::sleep(pause) => true,
        _ = shutdown.wait_for(|stopped| *stopped) => false,
    };
    slept && !*shutdown.borrow()
}

impl Agent {
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            self.maybe_renew().await;
            self.maybe_scan();
            let started = Instant::now();
            let Some((request, outcome)) = self.checkin(shutdown).await else { return };
            let wait = match outcome {
                Ok(response) => {
                    self.delivered(&request, true);
                    self.apply(response).await
                }
                Err(err) => {
                    if err.counts_as_delivery() {
                        self.delivered(&request, false);
                    }
                    self.failed(&err)
                }
            };
            // A manager that answers at once every time must not make the agent spin.
            let wait = wait.max(MIN_CYCLE.saturating_sub(started.elapsed()));
            if !pause(wait, shutdown).await {
                return;
            }
        }
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The hold time to offer.
    fn wait(&mut self) -> Duration {
        let mut wait = self.options.wait;
        if let Some((interval, until)) = self.heartbeat {
            if Instant::now() < until {
                wait = wait.min(interval);
            } else {
                tracing::info!("heartbeat ended");
                self.heartbeat = None;
            }
        }
        // While a job or a scan runs, check in often: its result, or the new inventory's hash,
        // reaches the manager seconds after it ends instead of after a whole hold (a new
        // host's first inventory would otherwise wait out the first hold).
        let scanning = self.scan_task.as_ref().is_some_and(|task| !task.is_finished());
        if self.runner.active() > 0 || scanning {
            wait = wait.min(ACTIVE_WAIT);
        }
        wait
    }

    /// One check-in; `None` when shutdown interrupted it.
    async fn checkin(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(CheckinRequest, Result<CheckinResponse, ClientError>)> {
        let reboot_required = self.scanner.reboot_required();
        let mut sampler = std::mem::take(&mut self.sampler);
        let (sampler, metrics) = tokio::task::spawn_blocking(move || {
            let metrics = sampler.sample(reboot_required);
            (sampler, metrics)
        })
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(%err, "reading the metrics failed; sending empty ones");
            let sampler = MetricsSampler::new().with_boot_id_path(self.options.boot_id_path.clone());
            (sampler, Metrics { reboot_required, ..Metrics::default() })
        });
        self.sampler = sampler;
        let now = self.options.clock.now();
        let results = self.books().outbox.due(now, MAX_RESULTS_PER_CHECKIN);
        let wait = self.wait();
        let request = CheckinRequest {
            protocol_version: PROTOCOL_VERSION,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            metrics,
            inventory_hash: self.scanner.latest().map(|(_, hash)| hash),
            results,
            rejections: self.rejections.clone(),
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let timeout = wait + self.options.request_timeout;
        tokio::select! {
            outcome = self.client.checkin(&request, timeout) => Some((request, outcome)),
            _ = shutdown.wait_for(|stopped| *stopped) => None,
        }
    }

    /// The manager read `request`: count its results as delivered once and, when it accepted
    /// the check-in, forget the rejections it carried.
    fn delivered(&mut self, request: &CheckinRequest, accepted: bool) {
        if let Err(err) = self.books().outbox.mark_sent(&request.results) {
            tracing::warn!(%err, "could not count the delivery of command results");
        }
        if accepted {
            let sent = request.rejections.len().min(self.rejections.len());
            self.rejections.drain(..sent);
        }
    }

    /// Applies an answer; returns how long to wait before the next check-in.
    async fn apply(&mut self, response: CheckinResponse) -> Duration {
        if self.policy.on_success() == Some(BreakerChange::Closed) {
            tracing::info!(server = %self.identity.server, "the manager answers again; checking in normally");
        }
        if let Some(code) = self.refused.take() {
            tracing::info!(%code, "the manager accepts this agent again");
        }
        self.check_clock(response.server_time);
        if let Err(err) = self.books().outbox.ack(&response.acked) {
            tracing::warn!(%err, "could not delete acknowledged results from the outbox");
        }
        for signed in &response.commands {
            self.command(signed);
        }
        if response.inventory_wanted {
            self.upload_inventory().await;
        }
        Duration::from_millis(response.next_checkin_ms).min(MAX_NEXT_CHECKIN)
    }

    /// Verifies one delivered command and starts it, or keeps its rejection for the next
    /// check-in.
    fn command(&mut self, signed: &patchdeck_proto::agent::SignedCommand) {
        let now = self.options.clock.now();
        let identity = &self.identity;
        let verified =
            commands::verify(signed, &identity.command_key, identity.host_id, &identity.machine_id, &self.seen, now);
        let verified = match verified {
            Ok(verified) => verified,
            Err(rejection) => {
                tracing::warn!(
                    command.id = ?rejection.command_id,
                    nonce = %rejection.nonce,
                    reason = rejection.reason.as_str(),
                    message = %rejection.message,
                    "command refused"
                );
                if self.rejections.len() < MAX_REJECTIONS {
                    self.rejections.push(rejection);
                }
                return;
            }
        };
        let id = verified.payload.command_id;
        if let Err(err) = self.seen.remember(id, &verified.nonce, verified.expires_at, now) {
            // Running it could not be refused again after a restart: do not run it.
            tracing::error!(command.id = %id, %err, "could not record the command in the replay store; not running it");
            self.runner.refuse(
                verified,
                "STATE_WRITE_FAILED",
                format!("the agent could not record the command: {err}"),
            );
            return;
        }
        match self.runner.accept(verified) {
            Accepted::Started => {}
            Accepted::Heartbeat { enabled: true, interval, duration } => {
                tracing::info!(interval_secs = interval.as_secs(), duration_secs = duration.as_secs(), "heartbeat on");
                self.heartbeat = Some((interval, Instant::now() + duration));
            }
            Accepted::Heartbeat { enabled: false, .. } => {
                tracing::info!("heartbeat off");
                self.heartbeat = None;
            }
        }
    }

    fn check_clock(&mut self, server_time: jiff::Timestamp) {
        let skew = self.options.clock.now().duration_since(server_time).unsigned_abs();
        if skew > SKEW_WARNING && self.skew_warned.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            tracing::warn!(
                skew_secs = skew.as_secs(),
                manager_time = %server_time,
                "this host's clock differs from the manager's; signed commands may be refused as expired"
            );
            self.skew_warned = Some(Instant::now());
        }
    }

    /// Logs a failed check-in and returns the delay before the next try.
    fn failed(&mut self, err: &ClientError) -> Duration {
        let kind = err.failure_kind();
        let failures = self.policy.failures() + 1;
        let (delay, change) = self.policy.on_failure(kind, Instant::now(), &mut self.rng);
        if kind == FailureKind::Refused {
            if self.reload_identity() {
                // `enroll --force` replaced the certificate while `serve` ran: try it at once.
                return Duration::ZERO;
            }
            let code = err.code().unwrap_or("unauthorized").to_owned();
            if self.refused.as_deref() != Some(code.as_str()) {
                tracing::error!(
                    host.id = self.identity.host_id,
                    %code,
                    error = %err,
                    retry_secs = delay.as_secs(),
                    "the manager refuses this agent; an administrator must fix this (trying again every few minutes)"
                );
                self.refused = Some(code);
            }
            return delay;
        }
        match change {
            Some(BreakerChange::Opened) => tracing::error!(
                error = %err,
                failures,
                probe_secs = delay.as_secs(),
                "the manager is unreachable; checking again once per {} s until it answers",
                delay.as_secs()
            ),
            _ if self.policy.breaker().is_open() => tracing::debug!(error = %err, "the manager is still unreachable"),
            _ => tracing::warn!(error = %err, failures, retry_ms = delay.as_millis() as u64, "check-in failed"),
        }
        delay
    }

    /// Takes up a new enrollment from disk (`patchdeck-agent enroll --force` while `serve`
    /// runs). True when the identity changed.
    fn reload_identity(&mut self) -> bool {
        let identity = match Identity::load(&self.paths) {
            Ok(Some(identity)) if identity.cert_pem != self.identity.cert_pem => identity,
            Ok(_) => return false,
            Err(err) => {
                tracing::warn!(%err, "could not read the enrollment state");
                return false;
            }
        };
        match AgentClient::new(&identity, self.options.request_timeout) {
            Ok(client) => {
                tracing::info!(host.id = identity.host_id, server = %identity.server, "using the new enrollment found on disk");
                self.identity = identity;
                self.client = client;
                self.refused = None;
                true
            }
            Err(err) => {
                tracing::warn!(%err, "the new enrollment on disk is unusable");
                false
            }
        }
    }

    /// Starts a scheduled scan in the background when one is due.
    fn maybe_scan(&mut self) {
        if self.scan_task.as_ref().is_some_and(|task| !task.is_finished()) {
            return;
        }
        let now = Instant::now();
        if now < self.next_scan {
            return;
        }
        self.next_scan = now + self.options.scan_interval;
        if !self.scanner.allows(now) {
            tracing::info!(error = ?self.scanner.last_error(), "scheduled scan skipped: the scanner is isolated after repeated failures");
            return;
        }
        let scanner = Arc::clone(&self.scanner);
        let policy = self.options.refresh_policy;
        self.scan_task = Some(tokio::spawn(async move {
            // Failures are logged by the scanner; the last good report stays.
            let _ = scanner.scan(policy, false).await;
        }));
    }

    async fn upload_inventory(&mut self) {
        let Some((report, hash)) = self.scanner.latest() else {
            tracing::debug!("the manager wants the inventory, but no scan has finished yet");
            return;
        };
        let upload =
            InventoryUpload { protocol_version: PROTOCOL_VERSION, hash: hash.clone(), report: (*report).clone() };
        match self.client.upload_inventory(&upload).await {
            Ok(()) => tracing::info!(%hash, "inventory uploaded"),
            Err(err) => tracing::warn!(error = %err, "inventory upload failed; it is sent again when the manager asks"),
        }
    }

    /// Renews the client certificate when due (checked at start and every hour).
    async fn maybe_renew(&mut self) {
        let now = Instant::now();
        if now < self.next_renew_check {
            return;
        }
        self.next_renew_check = now + renew::CHECK_INTERVAL;
        let identity = &self.identity;
        if !renew::renewal_due(
            identity.not_before,
            identity.not_after,
            self.options.clock.now(),
            self.options.renew_before,
        ) {
            return;
        }
        tracing::info!(not_after = %identity.not_after, "renewing the client certificate");
        match renew::renew(&mut self.identity, &self.paths, &self.client, self.options.request_timeout).await {
            Ok(client) => {
                self.client = client;
                tracing::info!(not_after = %self.identity.not_after, "client certificate renewed");
            }
            Err(err) => {
                // Try again sooner than in an hour: the certificate is running out.
                self.next_renew_check = now + Duration::from_secs(300);
                tracing::warn!(error = %err, "certificate renewal failed; the current certificate stays in use");
            }
        }
    }
}
