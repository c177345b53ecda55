//! Signed commands: verification, then execution through the job engine (or, for scans, metadata
//! refreshes and dry runs, directly through the package layer), with every result written to the
//! outbox before it is sent.
//!
//! **Verification** ([`verify`]), in this order, each failure a [`CommandRejection`] and never an
//! execution: the envelope parses (`malformed`), the signature is the pinned command key's
//! (`bad_signature`), the command has not expired (`expired`), the payload is a
//! [`CommandPayload`] (`malformed`), it names this host and machine (`wrong_host`), and neither
//! its id nor its nonce was seen before (`replayed`). The accepted command is then written to the
//! replay store before anything runs.
//!
//! **Execution** ([`Runner`]): commands are taken in the order the manager queued them by one
//! dispatcher, which submits jobs in that order; waiting for a job, scans and dry runs happen in
//! their own tasks, so check-ins go on meanwhile. Each command reports `running` once work has
//! started (with the job id, for a job), then exactly one terminal result.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use patchdeck_crypto::signing::{SignedEnvelope, SigningError, VerifyingKey};
use patchdeck_pkg::{Operation, PackageName, PackageSpec, Pin, PkgError, UpgradeScope};
use patchdeck_proto::agent::{
    Command, CommandPayload, CommandRejection, CommandResult, CommandState, DryRunPreview, PackageChange, Probe,
    RejectionReason, ResultError, Selection, SignedCommand, Subsystem, HEALTH_CHECK_FAILED, MAX_RESULT_OUTPUT_BYTES,
};
use patchdeck_proto::lpa::jobs::JobStatus;
use patchdeck_proto::{ScanReport, SecurityClass, Transaction, TxAction};
use patchdeck_version::VersionFormat;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::ledger::CommandLedger;
use super::outbox::Outbox;
use super::scanner::Scanner;
use super::seen::SeenStore;
use crate::jobs::{Clock, JobEngine, JobErrorCode, JobRecord, JobRequest, PackageBackend, PatchApply, RecordedChange};
use crate::scan::RefreshPolicy;

/// A command that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub payload: CommandPayload,
    pub nonce: String,
    pub expires_at: Timestamp,
}

fn rejection(command_id: Option<Uuid>, nonce: &str, reason: RejectionReason, message: String) -> CommandRejection {
    CommandRejection { command_id, nonce: nonce.to_owned(), reason, message }
}

/// Checks a delivered command (see the module docs). Does not record it: the caller writes it to
/// the replay store before running it.
pub fn verify(
    signed: &SignedCommand,
    key: &VerifyingKey,
    host_id: i64,
    machine_id: &str,
    seen: &SeenStore,
    now: Timestamp,
) -> Result<Verified, CommandRejection> {
    let nonce = signed.nonce.as_str();
    let envelope: SignedEnvelope = serde_json::to_value(signed)
        .and_then(serde_json::from_value)
        .map_err(|e| rejection(None, nonce, RejectionReason::Malformed, format!("unreadable envelope: {e}")))?;
    let payload = match envelope.verify(key, now) {
        Ok(payload) => payload,
        Err(SigningError::Expired { expires_at, now }) => {
            // The signature is good, so the command id may be reported.
            let id = serde_json::from_slice::<serde_json::Value>(&envelope.payload)
                .ok()
                .and_then(|v| v.get("command_id")?.as_str()?.parse().ok());
            return Err(rejection(
                id,
                nonce,
                RejectionReason::Expired,
                format!("the command expired at {expires_at}; the agent's clock says {now}"),
            ));
        }
        Err(SigningError::BadSignature) => {
            // The id the unverified payload *claims*: reported only so the manager can fail that
            // command of this host; nothing else from the payload is trusted or used.
            let claimed = serde_json::from_slice::<serde_json::Value>(&envelope.payload)
                .ok()
                .and_then(|v| v.get("command_id")?.as_str()?.parse().ok());
            return Err(rejection(
                claimed,
                nonce,
                RejectionReason::BadSignature,
                "the signature is not the pinned command key's".to_owned(),
            ));
        }
        Err(err) => return Err(rejection(None, nonce, RejectionReason::Malformed, err.to_string())),
    };
    let payload: CommandPayload = serde_json::from_slice(payload).map_err(|e| {
        let id = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v.get("command_id")?.as_str()?.parse().ok());
        rejection(id, nonce, RejectionReason::Malformed, format!("unreadable command: {e}"))
    })?;
    let id = Some(payload.command_id);
    if payload.host_id != host_id || payload.machine_id != machine_id {
        return Err(rejection(
            id,
            nonce,
            RejectionReason::WrongHost,
            format!(
                "the command is for host {} (machine {}), this is host {host_id} (machine {machine_id})",
                payload.host_id, payload.machine_id
            ),
        ));
    }
    if seen.contains(id, nonce) {
        return Err(rejection(
            id,
            nonce,
            RejectionReason::Replayed,
            "this command id or nonce was seen before".to_owned(),
        ));
    }
    Ok(Verified { payload, nonce: signed.nonce.clone(), expires_at: envelope.expires_at })
}

/// `text`, cut to at most `max` bytes at a character boundary. The end is kept (a package
/// manager says what went wrong last), behind a note that the beginning was cut.
pub fn truncate_output(text: &str, max: usize) -> String {
    const NOTE: &str = "[... earlier output truncated ...]\n";
    if text.len() <= max {
        return text.to_owned();
    }
    if max <= NOTE.len() {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return text[..end].to_owned();
    }
    let mut start = text.len() - (max - NOTE.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{NOTE}{}", &text[start..])
}

/// What a recorded change did, from its versions before and after.
pub fn change_of(change: &RecordedChange, format: VersionFormat) -> PackageChange {
    let action = match (&change.before, &change.after) {
        (None, _) => TxAction::Install,
        (Some(_), None) => TxAction::Remove,
        (Some(before), Some(after)) => match patchdeck_version::compare(format, after, before) {
            Ok(std::cmp::Ordering::Greater) => TxAction::Upgrade,
            Ok(std::cmp::Ordering::Less) => TxAction::Downgrade,
            Ok(std::cmp::Ordering::Equal) => TxAction::Reinstall,
            Err(_) => TxAction::Upgrade,
        },
    };
    PackageChange {
        name: change.name.clone(),
        arch: change.arch.clone(),
        action,
        from: change.before.clone(),
        to: change.after.clone(),
    }
}

/// The changes of a planned transaction.
pub fn changes_of(tx: &Transaction) -> Vec<PackageChange> {
    tx.items
        .iter()
        .map(|item| PackageChange {
            name: item.name.clone(),
            arch: item.arch.clone(),
            action: item.action,
            from: item.from.clone(),
            to: item.to.clone(),
        })
        .collect()
}

/// The terminal result of a command from its finished job.
pub fn result_from_job(
    command_id: Uuid,
    record: &JobRecord,
    format: VersionFormat,
    reboot_required: bool,
    at: Timestamp,
) -> CommandResult {
    let d = &record.detail;
    let state = match d.status {
        JobStatus::Completed => CommandState::Completed,
        JobStatus::TimedOut => CommandState::TimedOut,
        _ => CommandState::Failed,
    };
    let error = (state != CommandState::Completed).then(|| ResultError {
        code: d.error_code.clone().unwrap_or_else(|| "UNKNOWN_ERROR".to_owned()),
        message: d.error.clone().unwrap_or_else(|| d.message.clone()),
    });
    CommandResult {
        command_id,
        state,
        at,
        job_id: Some(d.job_id),
        error,
        output: truncate_output(&d.logs.join("\n"), MAX_RESULT_OUTPUT_BYTES),
        changes: record.changes.iter().map(|c| change_of(c, format)).collect(),
        reboot_required,
        hooks: crate::jobs::hooks::for_result(&record.hooks),
        checks: Vec::new(),
        preview: None,
    }
}

/// The outbox and the ledger, shared by the check-in loop and the command tasks.
#[derive(Debug)]
pub struct Books {
    pub outbox: Outbox,
    pub ledger: CommandLedger,
}

/// Why a command failed before or without a job.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fail {
    code: String,
    message: String,
}

impl Fail {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Fail { code: code.to_owned(), message: message.into() }
    }

    fn pkg(err: &PkgError) -> Self {
        Fail::new(JobErrorCode::for_pkg_error(err).as_str(), err.to_string())
    }
}

/// Runs verified commands.
#[derive(Debug, Clone)]
pub struct Runner {
    inner: Arc<Inner>,
    queue: mpsc::UnboundedSender<(Verified, ActiveGuard)>,
}

#[derive(Debug)]
struct Inner {
    engine: JobEngine,
    backend: PackageBackend,
    scanner: Arc<Scanner>,
    books: Arc<Mutex<Books>>,
    clock: Arc<dyn Clock>,
    active: AtomicUsize,
    health: crate::health::HealthSettings,
}

/// Counts a command as in progress until dropped.
#[derive(Debug)]
struct ActiveGuard(Arc<Inner>);

impl ActiveGuard {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.active.fetch_add(1, Ordering::SeqCst);
        ActiveGuard(Arc::clone(inner))
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What [`Runner::accept`] tells the check-in loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Work started in the background.
    Started,
    /// A heartbeat: the loop changes its hold time.
    Heartbeat { enabled: bool, interval: Duration, duration: Duration },
}

impl Runner {
    /// Starts the dispatcher; it ends when the last clone of the runner is dropped.
    pub fn new(
        engine: JobEngine,
        backend: PackageBackend,
        scanner: Arc<Scanner>,
        books: Arc<Mutex<Books>>,
        clock: Arc<dyn Clock>,
        health: crate::health::HealthSettings,
    ) -> Runner {
        let inner = Arc::new(Inner { engine, backend, scanner, books, clock, active: AtomicUsize::new(0), health });
        let (queue, mut commands) = mpsc::unbounded_channel::<(Verified, ActiveGuard)>();
        let dispatcher = Arc::clone(&inner);
        tokio::spawn(async move {
            while let Some((verified, guard)) = commands.recv().await {
                dispatch(&dispatcher, verified, guard).await;
            }
        });
        Runner { inner, queue }
    }

    /// Commands started and not finished.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Takes a verified command (already in the replay store): records it, and starts it.
    pub fn accept(&self, verified: Verified) -> Accepted {
        let id = verified.payload.command_id;
        let kind = verified.payload.command.kind();
        let now = self.inner.clock.now();
        tracing::info!(command.id = %id, command.kind = kind, "command accepted");
        if let Err(err) = self.inner.books().ledger.record(id, kind, now) {
            tracing::error!(command.id = %id, %err, "could not record the command in the ledger");
        }
        if let Command::Heartbeat { enabled, interval_secs, duration_secs } = verified.payload.command {
            self.inner.report(result(id, CommandState::Completed, now, None));
            return Accepted::Heartbeat {
                enabled,
                interval: Duration::from_secs(interval_secs.max(1)),
                duration: Duration::from_secs(duration_secs),
            };
        }
        let guard = ActiveGuard::new(&self.inner);
        if let Err(mpsc::error::SendError((verified, _))) = self.queue.send((verified, guard)) {
            // The dispatcher only ends with the runtime.
            let message = "the agent is shutting down".to_owned();
            let at = self.inner.clock.now();
            self.inner.report(failed(verified.payload.command_id, at, None, Fail::new("ADMISSION_CLOSED", message)));
        }
        Accepted::Started
    }

    /// Records a verified command that must not run (its replay could not be made impossible)
    /// as failed with `code`.
    pub fn refuse(&self, verified: Verified, code: &str, message: String) {
        let id = verified.payload.command_id;
        let now = self.inner.clock.now();
        if let Err(err) = self.inner.books().ledger.record(id, verified.payload.command.kind(), now) {
            tracing::error!(command.id = %id, %err, "could not record the command in the ledger");
        }
        self.inner.report(failed(id, now, None, Fail::new(code, message)));
    }

    /// At start: gives every command that has no terminal result yet its result (its job
    /// finished, or was marked failed because the agent restarted, or the agent stopped before
    /// the command made a job).
    pub async fn recover(&self) {
        let inner = &self.inner;
        let unreported = inner.books().ledger.unreported();
        for (id, entry) in unreported {
            let now = inner.clock.now();
            if inner.books().outbox.has_terminal(id) {
                let _ = inner.books().ledger.mark_reported(id, now);
                continue;
            }
            match entry.job_id.map(|job| (job, inner.engine.record(job))) {
                Some((_, Ok(record))) if record.status().is_terminal() => {
                    tracing::info!(command.id = %id, job.id = %record.id(), "reporting the end of a job from before the restart");
                    inner.report(result_from_job(id, &record, inner.format(), inner.scanner.reboot_required(), now));
                }
                Some((job, Ok(_))) => {
                    let guard = ActiveGuard::new(inner);
                    tokio::spawn(wait_for_job(Arc::clone(inner), id, job, entry.kind != "reboot", guard));
                }
                Some((job, Err(_))) => inner.report(failed(
                    id,
                    now,
                    Some(job),
                    Fail::new("JOB_NOT_FOUND", format!("the record of job {job} is gone; its outcome is unknown")),
                )),
                None => inner.report(failed(
                    id,
                    now,
                    None,
                    Fail::new(
                        JobErrorCode::AgentRestarted.as_str(),
                        format!("the agent restarted before the {} command finished", entry.kind),
                    ),
                )),
            }
        }
    }
}

impl Inner {
    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn format(&self) -> VersionFormat {
        self.backend.kind.version_format()
    }

    /// Writes a result to the outbox; a terminal one also marks the command reported.
    fn report(&self, result: CommandResult) {
        let (id, state) = (result.command_id, result.state);
        let now = self.clock.now();
        let mut books = self.books();
        if let Err(err) = books.outbox.put(result, now) {
            // Not in the outbox: the start-up recovery produces it again after a restart.
            tracing::error!(command.id = %id, state = %state, %err, "could not write the command result to the outbox");
            return;
        }
        tracing::info!(command.id = %id, state = %state, "command result queued");
        if state.is_terminal() {
            if let Err(err) = books.ledger.mark_reported(id, now) {
                tracing::warn!(command.id = %id, %err, "could not mark the command reported");
            }
        }
    }

    fn running(&self, id: Uuid, job_id: Option<Uuid>) {
        self.report(result(id, CommandState::Running, self.clock.now(), job_id));
    }

    /// The security updates of the latest scan as exact versions, scanning first when there is
    /// no scan yet.
    async fn security_pins(&self) -> Result<Vec<Pin>, Fail> {
        let report = match self.scanner.latest() {
            Some((report, _)) => report,
            None => self
                .scanner
                .scan(RefreshPolicy::Never, true)
                .await
                .map_err(|e| Fail::new("SCAN_FAILED", format!("no scan to take the security updates from: {e}")))?,
        };
        security_pins(&report)
    }
}

fn result(command_id: Uuid, state: CommandState, at: Timestamp, job_id: Option<Uuid>) -> CommandResult {
    CommandResult {
        command_id,
        state,
        at,
        job_id,
        error: None,
        output: String::new(),
        changes: Vec::new(),
        reboot_required: false,
        hooks: Vec::new(),
        checks: Vec::new(),
        preview: None,
    }
}

fn failed(command_id: Uuid, at: Timestamp, job_id: Option<Uuid>, fail: Fail) -> CommandResult {
    tracing::warn!(command.id = %command_id, code = %fail.code, message = %fail.message, "command failed");
    CommandResult {
        error: Some(ResultError { code: fail.code, message: fail.message }),
        ..result(command_id, CommandState::Failed, at, job_id)
    }
}

/// The security-class updates of `report` as exact versions (one per package name).
fn security_pins(report: &ScanReport) -> Result<Vec<Pin>, Fail> {
    let mut pins: Vec<Pin> = Vec::new();
    for update in report.updates.iter().filter(|u| u.security.class == SecurityClass::Security) {
        let pin = Pin::new(&update.name, &update.candidate_version).map_err(|e| Fail::pkg(&e))?;
        if !pins.iter().any(|p| p.name == pin.name) {
            pins.push(pin);
        }
    }
    Ok(pins)
}

fn parse_all<T>(items: &[String], parse: impl Fn(&str) -> Result<T, PkgError>) -> Result<Vec<T>, Fail> {
    if items.is_empty() {
        return Err(Fail::new(JobErrorCode::ValidationError.as_str(), "the command names no package"));
    }
    items.iter().map(|s| parse(s).map_err(|e| Fail::pkg(&e))).collect()
}

/// Runs one command; called by the dispatcher in queue order.
async fn dispatch(inner: &Arc<Inner>, verified: Verified, guard: ActiveGuard) {
    let id = verified.payload.command_id;
    let command = verified.payload.command;
    match command {
        Command::Heartbeat { .. } => {}
        Command::Scan { subsystems, refresh } => {
            inner.running(id, None);
            tokio::spawn(scan_command(Arc::clone(inner), id, subsystems, refresh, guard));
        }
        Command::RefreshMetadata => {
            inner.running(id, None);
            tokio::spawn(refresh_command(Arc::clone(inner), id, guard));
        }
        Command::HealthCheck { units, probes } => {
            inner.running(id, None);
            tokio::spawn(health_command(Arc::clone(inner), id, units, probes, guard));
        }
        Command::Upgrade { dry_run: true, ref selection } => {
            let op = match selection {
                Selection::All => Ok(Some(Operation::Upgrade(UpgradeScope::All))),
                Selection::Security => inner
                    .security_pins()
                    .await
                    .map(|pins| (!pins.is_empty()).then_some(Operation::Upgrade(UpgradeScope::Exact(pins)))),
                Selection::Packages { packages } => {
                    parse_all(packages, Pin::parse).map(|pins| Some(Operation::Upgrade(UpgradeScope::Exact(pins))))
                }
            };
            start_dry_run(inner, id, op, guard);
        }
        Command::Install { dry_run: true, ref packages } => {
            let op = parse_all(packages, PackageSpec::parse).map(|specs| Some(Operation::Install(specs)));
            start_dry_run(inner, id, op, guard);
        }
        Command::Remove { dry_run: true, ref packages } => {
            let op = parse_all(packages, PackageName::parse).map(|names| Some(Operation::Remove(names)));
            start_dry_run(inner, id, op, guard);
        }
        command => start_job(inner, id, command, guard).await,
    }
}

fn start_dry_run(inner: &Arc<Inner>, id: Uuid, op: Result<Option<Operation>, Fail>, guard: ActiveGuard) {
    let now = inner.clock.now();
    let op = match op {
        Ok(Some(op)) => op,
        Ok(None) => {
            let mut done = result(id, CommandState::Completed, now, None);
            done.output = "nothing to do: the latest scan lists no security update".to_owned();
            inner.report(done);
            return;
        }
        Err(fail) => return inner.report(failed(id, now, None, fail)),
    };
    inner.running(id, None);
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let _guard = guard;
        let backend = inner.backend.clone();
        let description = op.describe();
        let planned = tokio::task::spawn_blocking(move || {
            let pm = patchdeck_pkg::open(backend.kind, backend.options.clone());
            pm.dry_run(&op).map_err(|e| Fail::pkg(&e))
        })
        .await
        .unwrap_or_else(|e| Err(Fail::new(JobErrorCode::InternalError.as_str(), format!("the dry run failed: {e}"))));
        let now = inner.clock.now();
        match planned {
            Ok(tx) => {
                let mut lines = vec![format!("dry run of {description}: {} package change(s)", tx.items.len())];
                for item in &tx.items {
                    let from = item.from.as_deref().unwrap_or("-");
                    let to = item.to.as_deref().unwrap_or("-");
                    lines.push(format!("{} {} {from} -> {to}", item.action.as_str(), item.name));
                }
                let latest = inner.scanner.latest();
                let preview = preview_of(&tx, latest.as_ref().map(|(report, _)| &**report));
                if preview.reboot_required {
                    lines.push(format!("a reboot would be needed: {}", preview.reboot_reasons.join("; ")));
                } else {
                    lines.push("no reboot would be needed".to_owned());
                }
                let mut done = result(id, CommandState::Completed, now, None);
                done.output = truncate_output(&lines.join("\n"), MAX_RESULT_OUTPUT_BYTES);
                done.changes = changes_of(&tx);
                done.reboot_required = preview.reboot_required;
                done.preview = Some(Box::new(preview));
                inner.report(done);
            }
            Err(fail) => inner.report(failed(id, now, None, fail)),
        }
    });
}

/// The job for a command that changes the host; `Ok(None)` when there is nothing to do.
async fn job_request(inner: &Inner, command: &Command) -> Result<Option<JobRequest>, Fail> {
    Ok(Some(match command {
        Command::Upgrade { selection: Selection::All, .. } => JobRequest::PatchApply(PatchApply::default()),
        Command::Upgrade { selection: Selection::Security, .. } => {
            let pins = inner.security_pins().await?;
            if pins.is_empty() {
                return Ok(None);
            }
            JobRequest::Update {
                packages: pins.into_iter().map(|p| PackageSpec::new(p.name, Some(p.version))).collect(),
            }
        }
        Command::Upgrade { selection: Selection::Packages { packages }, .. } => JobRequest::Update {
            packages: parse_all(packages, Pin::parse)?
                .into_iter()
                .map(|p| PackageSpec::new(p.name, Some(p.version)))
                .collect(),
        },
        Command::Install { packages, .. } => JobRequest::Install { packages: parse_all(packages, PackageSpec::parse)? },
        Command::Remove { packages, .. } => JobRequest::Remove { packages: parse_all(packages, PackageName::parse)? },
        Command::Rollback { command_id } => {
            let job = inner.books().ledger.job_of(*command_id);
            match job {
                Some(job_id) => JobRequest::Rollback { job_id },
                None => {
                    return Err(Fail::new(
                        "ROLLBACK_NOT_ALLOWED",
                        format!("command {command_id} ran no job on this host (or more than 30 days ago)"),
                    ))
                }
            }
        }
        Command::Reboot { delay_secs, force, message } => {
            JobRequest::Reboot { delay: Duration::from_secs(*delay_secs), force: *force, message: message.clone() }
        }
        Command::Scan { .. } | Command::RefreshMetadata | Command::Heartbeat { .. } | Command::HealthCheck { .. } => {
            return Err(Fail::new(JobErrorCode::InternalError.as_str(), "not a job command"))
        }
    }))
}

/// Submits the command's job (in queue order) and waits for it in the background.
async fn start_job(inner: &Arc<Inner>, id: Uuid, command: Command, guard: ActiveGuard) {
    let request = match job_request(inner, &command).await {
        Ok(Some(request)) => request,
        Ok(None) => {
            let mut done = result(id, CommandState::Completed, inner.clock.now(), None);
            done.output = "nothing to do: the latest scan lists no security update".to_owned();
            done.reboot_required = inner.scanner.reboot_required();
            return inner.report(done);
        }
        Err(fail) => return inner.report(failed(id, inner.clock.now(), None, fail)),
    };
    let changes_packages = request.is_package_transaction();
    match inner.engine.submit(request).await {
        Ok(job) => {
            tracing::info!(command.id = %id, job.id = %job.job_id, "command became a job");
            if let Err(err) = inner.books().ledger.set_job(id, job.job_id, inner.clock.now()) {
                tracing::error!(command.id = %id, job.id = %job.job_id, %err, "could not record the command's job");
            }
            inner.running(id, Some(job.job_id));
            tokio::spawn(wait_for_job(Arc::clone(inner), id, job.job_id, changes_packages, guard));
        }
        Err(err) => inner.report(failed(id, inner.clock.now(), None, Fail::new(err.code(), err.to_string()))),
    }
}

/// Waits for the job, rescans after a package change, and reports the end.
async fn wait_for_job(inner: Arc<Inner>, id: Uuid, job_id: Uuid, rescan: bool, _guard: ActiveGuard) {
    let outcome = inner.engine.wait(job_id).await;
    if rescan {
        if let Err(err) = inner.scanner.scan(RefreshPolicy::Never, false).await {
            tracing::warn!(command.id = %id, %err, "no scan after the command");
        }
    }
    let now = inner.clock.now();
    let record = outcome.and_then(|_| inner.engine.record(job_id));
    match record {
        Ok(record) => inner.report(result_from_job(id, &record, inner.format(), inner.scanner.reboot_required(), now)),
        Err(err) => inner.report(failed(id, now, Some(job_id), Fail::new(err.code(), err.to_string()))),
    }
}

async fn scan_command(inner: Arc<Inner>, id: Uuid, subsystems: Vec<Subsystem>, refresh: bool, _guard: ActiveGuard) {
    let now = || inner.clock.now();
    if !subsystems.contains(&Subsystem::Packages) {
        // System and storage figures go with every check-in.
        let mut done = result(id, CommandState::Completed, now(), None);
        done.output = "system and storage metrics are sent with the next check-in".to_owned();
        done.reboot_required = inner.scanner.reboot_required();
        return inner.report(done);
    }
    let policy = if refresh { RefreshPolicy::Always } else { RefreshPolicy::Never };
    match inner.scanner.scan(policy, true).await {
        Ok(report) => {
            // The new hash goes with the next check-in; the manager asks for the inventory
            // only when it changed.
            let mut done = result(id, CommandState::Completed, now(), None);
            done.output = format!(
                "{} installed package(s), {} update(s) available, {} security",
                report.installed.len(),
                report.updates.len(),
                report.security_update_count()
            );
            done.reboot_required = report.reboot.required;
            inner.report(done);
        }
        Err(err) => inner.report(failed(id, now(), None, Fail::new("SCAN_FAILED", err.to_string()))),
    }
}

/// The dry run `tx` by kind of change, with the reboot prediction: the host would need a reboot
/// when it already needs one (the package manager's own evidence in the latest scan), when the
/// transaction installs or upgrades a package the scan marks `reboot_likely`, or one on the
/// package layer's list ([`patchdeck_pkg::host::reboot_likely`]). Removals need no reboot.
pub fn preview_of(tx: &Transaction, scan: Option<&ScanReport>) -> DryRunPreview {
    let mut preview = DryRunPreview::from_changes(&changes_of(tx));
    let mut reasons = Vec::new();
    if let Some(report) = scan.filter(|r| r.reboot.required) {
        let why = if report.reboot.reasons.is_empty() {
            "the latest scan says so".to_owned()
        } else {
            report.reboot.reasons.join(", ")
        };
        reasons.push(format!("the host already needs a reboot ({why})"));
    }
    for item in tx.items.iter().filter(|i| i.action != TxAction::Remove) {
        let flagged = scan.is_some_and(|r| r.updates.iter().any(|u| u.name == item.name && u.reboot_likely));
        if flagged || patchdeck_pkg::host::reboot_likely(&item.name) {
            let version = item.to.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
            reasons.push(format!("{}{version} is {}", item.name, past_tense(item.action)));
        }
    }
    preview.reboot_required = !reasons.is_empty();
    preview.reboot_reasons = reasons;
    preview
}

fn past_tense(action: TxAction) -> &'static str {
    match action {
        TxAction::Install => "installed",
        TxAction::Upgrade => "upgraded",
        TxAction::Downgrade => "downgraded",
        TxAction::Reinstall => "reinstalled",
        TxAction::Remove => "removed",
    }
}

/// Runs a health check and reports every check; fails with [`HEALTH_CHECK_FAILED`] when one
/// does not pass.
async fn health_command(inner: Arc<Inner>, id: Uuid, units: Vec<String>, probes: Vec<Probe>, _guard: ActiveGuard) {
    let checks = crate::health::run_checks(&inner.health, &units, &probes).await;
    let now = inner.clock.now();
    let checks = match checks {
        Ok(checks) => checks,
        Err(err) => {
            return inner.report(failed(
                id,
                now,
                None,
                Fail::new(JobErrorCode::ValidationError.as_str(), err.to_string()),
            ))
        }
    };
    let failing: Vec<String> =
        checks.iter().filter(|c| !c.passed).map(|c| format!("{}: {}", c.target, c.detail)).collect();
    let mut report = if failing.is_empty() {
        result(id, CommandState::Completed, now, None)
    } else {
        let message = format!("{} of {} check(s) failed: {}", failing.len(), checks.len(), failing.join("; "));
        failed(id, now, None, Fail::new(HEALTH_CHECK_FAILED, message))
    };
    report.output = truncate_output(&crate::health::summary_lines(&checks).join("\n"), MAX_RESULT_OUTPUT_BYTES);
    report.reboot_required = inner.scanner.reboot_required();
    report.checks = checks;
    inner.report(report);
}

async fn refresh_command(inner: Arc<Inner>, id: Uuid, _guard: ActiveGuard) {
    let backend = inner.backend.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let pm = patchdeck_pkg::open(backend.kind, backend.options.clone());
        let mut output = String::new();
        let mut sink = |_: patchdeck_pkg::exec::Stream, line: &str| {
            if output.len() < 4 * MAX_RESULT_OUTPUT_BYTES {
                output.push_str(line);
                output.push('\n');
            }
        };
        let refreshed = pm.refresh(Some(&mut sink));
        (refreshed, output)
    })
    .await;
    let now = inner.clock.now();
    match outcome {
        Ok((Ok(()), output)) => {
            // The updates may have changed: rescan without refreshing again.
            if let Err(err) = inner.scanner.scan(RefreshPolicy::Never, false).await {
                tracing::warn!(command.id = %id, %err, "no scan after the metadata refresh");
            }
            let mut done = result(id, CommandState::Completed, inner.clock.now(), None);
            done.output = truncate_output(&output, MAX_RESULT_OUTPUT_BYTES);
            inner.report(done);
        }
        Ok((Err(err), output)) => {
            let code = match JobErrorCode::for_pkg_error(&err) {
                code @ (JobErrorCode::Locked | JobErrorCode::Timeout) => code,
                _ => JobErrorCode::CacheRefreshError,
            };
            let mut fail = failed(id, now, None, Fail::new(code.as_str(), err.to_string()));
            if matches!(code, JobErrorCode::Timeout) {
                fail.state = CommandState::TimedOut;
            }
            fail.output = truncate_output(&output, MAX_RESULT_OUTPUT_BYTES);
            inner.report(fail);
        }
        Err(err) => inner.report(failed(
            id,
            now,
            None,
            Fail::new(JobErrorCode::InternalError.as_str(), format!("the refresh worker failed: {err}")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;
    use patchdeck_crypto::signing::SigningKey;

    use super::*;

    const MACHINE: &str = "3d1219c7c4c5404aaa1f6d2a48adfda4";

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn payload(host_id: i64, machine_id: &str) -> CommandPayload {
        CommandPayload {
            command_id: Uuid::new_v4(),
            host_id,
            machine_id: machine_id.to_owned(),
            issued_at: now(),
            command: Command::Upgrade { selection: Selection::Security, dry_run: false },
        }
    }

    /// Seals `payload` as the manager does and turns it into the wire type.
    fn sign(key: &SigningKey, payload: &CommandPayload, at: Timestamp) -> SignedCommand {
        let envelope = SignedEnvelope::seal(key, serde_json::to_vec(payload).unwrap(), at).unwrap();
        serde_json::from_value(serde_json::to_value(&envelope).unwrap()).unwrap()
    }

    fn seen() -> (tempfile::TempDir, SeenStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SeenStore::open(&dir.path().join("seen.json")).unwrap();
        (dir, store)
    }

    #[test]
    fn a_good_command_verifies() {
        let key = SigningKey::generate().unwrap();
        let (_dir, seen) = seen();
        let p = payload(7, MACHINE);
        let signed = sign(&key, &p, now());
        let verified = verify(&signed, &key.verifying_key(), 7, MACHINE, &seen, now()).unwrap();
        assert_eq!(verified.payload, p);
        assert_eq!(verified.nonce, signed.nonce);
        assert_eq!(verified.expires_at, now() + SignedDuration::from_mins(5));
    }

    #[test]
    fn a_tampered_payload_is_a_bad_signature() {
        let key = SigningKey::generate().unwrap();
        let (_dir, seen) = seen();
        let original = payload(7, MACHINE);
        let mut signed = sign(&key, &original, now());
        // Re-encode a payload that says "all" instead of "security", keeping the signature.
        let mut envelope: SignedEnvelope = serde_json::from_value(serde_json::to_value(&signed).unwrap()).unwrap();
        let text = String::from_utf8(envelope.payload.clone()).unwrap().replace("security", "all");
        envelope.payload = text.into_bytes();
        signed = serde_json::from_value(serde_json::to_value(&envelope).unwrap()).unwrap();
        let rejected = verify(&signed, &key.verifying_key(), 7, MACHINE, &seen, now()).unwrap_err();
        assert_eq!(rejected.reason, RejectionReason::BadSignature);
        assert_eq!(
            rejected.command_id,
            Some(original.command_id),
            "only the claimed id is reported, so the manager can fail that command"
        );
        assert_eq!(rejected.nonce, signed.nonce);
    }

    #[test]
    fn another_key_is_a_bad_signature() {
        let manager = SigningKey::generate().unwrap();
        let impostor = SigningKey::generate().unwrap();
        let (_dir, seen) = seen();
        let signed = sign(&impostor, &payload(7, MACHINE), now());
        let rejected = verify(&signed, &manager.verifying_key(), 7, MACHINE, &seen, now()).unwrap_err();
        assert_eq!(rejected.reason, RejectionReason::BadSignature);
    }

    #[test]
    fn an_expired_command_is_refused_with_its_id() {
        let key = SigningKey::generate().unwrap();
        let (_dir, seen) = seen();
        let p = payload(7, MACHINE);
        let signed = sign(&key, &p, now());
        let later = now() + SignedDuration::from_mins(5);
        let rejected = verify(&signed, &key.verifying_key(), 7, MACHINE, &seen, later).unwrap_err();
        assert_eq!(rejected.reason, RejectionReason::Expired);
        assert_eq!(rejected.command_id, Some(p.command_id));
        assert!(rejected.message.contains("expired"), "{}", rejected.message);
    }

    #[test]
    fn a_replayed_nonce_or_command_id_is_refused_even_after_a_restart() {
        let key = SigningKey::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen.json");
        let p = payload(7, MACHINE);
        let signed = sign(&key, &p, now());
        {
            let mut seen = SeenStore::open(&path).unwrap();
            let verified = verify(&signed, &key.verifying_key(), 7, MACHINE, &seen, now()).unwrap();
            seen.remember(verified.payload.command_id, &verified.nonce, verified.expires_at, now()).unwrap();
        }
        let seen = SeenStore::open(&path).unwrap();
        let replay = verify(&signed, &key.verifying_key(), 7, MACHINE, &seen, now()).unwrap_err();
        assert_eq!(replay.reason, RejectionReason::Replayed);
        assert_eq!(replay.command_id, Some(p.command_id));
        // The same command re-signed with a fresh nonce is still a replay (same command id).
        let resigned = sign(&key, &p, now());
        assert_ne!(resigned.nonce, signed.nonce);
        let replay = verify(&resigned, &key.verifying_key(), 7, MACHINE, &seen, now()).unwrap_err();
        assert_eq!(replay.reason, RejectionReason::Replayed);
    }

    #[test]
    fn a_command_for_another_host_or_machine_is_refused() {
        let key = SigningKey::generate().unwrap();
        let (_dir, seen) = seen();
        for p in [payload(8, MACHINE), payload(7, "ffffffffffffffffffffffffffffffff")] {
            let signed = sign(&key, &p, now());
            let rejected = verify(&signed, &key.verifying_key(), 7, MACHINE, &seen, now()).unwrap_err();
            assert_eq!(rejected.reason, RejectionReason::WrongHost);
            assert_eq!(rejected.command_id, Some(p.command_id));
        }
    }

    #[test]
    fn garbage_is_malformed() {
        let key = SigningKey::generate().unwrap();
        let (_dir, seen) = seen();
        let mut signed = sign(&key, &payload(7, MACHINE), now());
        signed.signature = "not base64url!".to_owned();
        let rejected = verify(&signed, &key.verifying_key(), 7, MACHINE, &seen, now()).unwrap_err();
        assert_eq!(rejected.reason, RejectionReason::Malformed);
        // A validly signed payload that is not a command.
        let envelope = SignedEnvelope::seal(&key, br#"{"command_id":"not-a-uuid"}"#.to_vec(), now()).unwrap();
        let signed: SignedCommand = serde_json::from_value(serde_json::to_value(&envelope).unwrap()).unwrap();
        let rejected = verify(&signed, &key.verifying_key(), 7, MACHINE, &seen, now()).unwrap_err();
        assert_eq!(rejected.reason, RejectionReason::Malformed);
    }

    #[test]
    fn output_is_truncated_at_a_character_boundary_keeping_the_end() {
        assert_eq!(truncate_output("short", 100), "short");
        // 'é' is two bytes, '€' three: no cut may split them.
        for text in ["é".repeat(50_000), "€".repeat(30_000), format!("a{}", "€".repeat(30_000))] {
            for max in [MAX_RESULT_OUTPUT_BYTES, 1000, 37, 10, 1] {
                let cut = truncate_output(&text, max);
                assert!(cut.len() <= max, "{} > {max}", cut.len());
                if max > 40 {
                    assert!(cut.starts_with("[... earlier output truncated ...]\n"));
                    assert!(text.ends_with(cut.trim_start_matches("[... earlier output truncated ...]\n")));
                    assert!(cut.len() + 3 > max, "as much as fits is kept: {} of {max}", cut.len());
                }
            }
        }
        let error_at_end = format!("{}E: Unable to locate package nothere", "x".repeat(100_000));
        assert!(truncate_output(&error_at_end, MAX_RESULT_OUTPUT_BYTES).ends_with("Unable to locate package nothere"));
    }

    #[test]
    fn recorded_changes_become_actions() {
        let change = |before: Option<&str>, after: Option<&str>| RecordedChange {
            name: "hello".into(),
            arch: None,
            before: before.map(Into::into),
            after: after.map(Into::into),
        };
        let action = |c| change_of(&c, VersionFormat::Deb).action;
        assert_eq!(action(change(Some("1.0-1"), Some("1.1-1"))), TxAction::Upgrade);
        assert_eq!(action(change(Some("1.1-1"), Some("1.0-1"))), TxAction::Downgrade);
        assert_eq!(action(change(Some("1.0-1"), Some("1.0-01"))), TxAction::Reinstall);
        assert_eq!(action(change(None, Some("1.0-1"))), TxAction::Install);
        assert_eq!(action(change(Some("1.0-1"), None)), TxAction::Remove);
        // Versions compare by the package manager's rules, not as text.
        assert_eq!(action(change(Some("1.0~rc1-1"), Some("1.0-1"))), TxAction::Upgrade);
    }

    #[test]
    fn dry_runs_predict_a_reboot_from_the_packages_and_the_host() {
        use patchdeck_proto::{BackendKind, OsInfo, RebootStatus, ScanReport, TxItem, SCAN_SCHEMA_VERSION};
        let item = |name: &str, action: TxAction| TxItem {
            name: name.into(),
            action,
            from: Some("1".into()),
            to: (action != TxAction::Remove).then(|| "2".into()),
            arch: None,
        };
        let tx = |items: Vec<TxItem>| Transaction { items };
        let quiet = preview_of(&tx(vec![item("hello", TxAction::Upgrade), item("curl", TxAction::Install)]), None);
        assert!(!quiet.reboot_required && quiet.reboot_reasons.is_empty());
        assert_eq!((quiet.upgrades.len(), quiet.installs.len()), (1, 1));
        // Kernels, the C library, init, D-Bus and microcode on every package manager's names.
        for name in [
            "linux-image-6.1.0-27-amd64",
            "linux-signed-amd64",
            "kernel",
            "kernel-core",
            "kernel-default",
            "linux",
            "linux-lts",
            "glibc",
            "libc6",
            "musl",
            "systemd",
            "libsystemd0",
            "dbus",
            "dbus-broker",
            "intel-microcode",
        ] {
            let preview = preview_of(&tx(vec![item("hello", TxAction::Upgrade), item(name, TxAction::Upgrade)]), None);
            assert!(preview.reboot_required, "{name}");
            assert_eq!(preview.reboot_reasons, [format!("{name} 2 is upgraded")], "{name}");
        }
        // Removing an old kernel needs no reboot.
        assert!(!preview_of(&tx(vec![item("linux-image-6.1.0-20-amd64", TxAction::Remove)]), None).reboot_required);

        // The scan's evidence counts: the host already needs one, or the update is flagged.
        let mut report = ScanReport {
            schema_version: SCAN_SCHEMA_VERSION,
            scanned_at: Timestamp::UNIX_EPOCH,
            os: OsInfo::default(),
            backend: BackendKind::Apt,
            version_format: VersionFormat::Deb,
            last_refresh: None,
            installed: vec![],
            updates: vec![],
            reboot: RebootStatus {
                required: true,
                reasons: vec!["/var/run/reboot-required exists".into()],
                ..RebootStatus::default()
            },
        };
        let preview = preview_of(&tx(vec![item("hello", TxAction::Upgrade)]), Some(&report));
        assert_eq!(preview.reboot_reasons, ["the host already needs a reboot (/var/run/reboot-required exists)"]);
        report.reboot = RebootStatus::default();
        report.updates = vec![patchdeck_proto::AvailableUpdate {
            name: "openssl".into(),
            arch: "amd64".into(),
            current_version: "1".into(),
            candidate_version: "2".into(),
            repository: None,
            security: patchdeck_proto::SecurityInfo::new(SecurityClass::Unknown, "test"),
            cves: vec![],
            reboot_likely: true,
        }];
        let preview = preview_of(&tx(vec![item("openssl", TxAction::Upgrade)]), Some(&report));
        assert_eq!(preview.reboot_reasons, ["openssl 2 is upgraded"]);
    }
}
