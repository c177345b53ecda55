//! The deployment engine: one step of a deployment, run as its job whenever something may have
//! changed. It reads the deployment and its hosts, moves each host as far as it can, and says
//! when it wants to run again. Everything it decides is in the database, so a step that dies
//! half way is simply run again (by this process or another).
//!
//! A host's life in a deployment:
//!
//! ```text
//! planning ─(dry run done)→ queued ─(its ring started, window open, splay reached)→ running
//! running ─(installed)→ [rebooting ─(new boot id)→] [verifying ─(healthy)→] succeeded
//! running ─(failed, window still open, first failure)→ queued (after a backoff)
//! running ─(failed again)→ failed [→ rolling_back → rolled_back, with rollback_on_failure]
//! running ─(pre-patch hook said no)→ skipped
//! queued ─(no open window now)→ waiting_for_window ─(window opens)→ running
//! ```
//!
//! Rings: hosts of ring N+1 start only when every host of ring N is final, ring N's success
//! rate (succeeded ÷ hosts that had work) reached its threshold and its soak time passed; below
//! the threshold the deployment halts.

use jiff::{SignedDuration, Timestamp};
use patchdeck_proto::agent::{Command, CommandState};
use patchdeck_store::{
    CommandRecord, Deployment, DeploymentHost, DeploymentId, DeploymentStatus, HostRunState, JobOutcome, NewCommand,
    RebootPolicy, Schedule, Transport,
};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::hub::LiveEvent;
use crate::state::AppState;

/// Actor of the engine's audit entries and commands.
pub const ACTOR: &str = "system:deployments";
/// How often a deployment with work in flight looks again when nothing wakes it.
const POLL: SignedDuration = SignedDuration::from_secs(10);
/// How often a host without any maintenance window is looked at again (a window may be added).
const NO_WINDOW_RECHECK: SignedDuration = SignedDuration::from_mins(5);
/// Apply attempts per host: the first, and one retry while the window is open.
const MAX_ATTEMPTS: u32 = 2;
/// Share of a window over which hosts' starts are spread.
const SPLAY_FRACTION: f64 = 0.5;

/// Runs one step of the deployment; says when to run again.
pub async fn advance(state: &AppState, id: DeploymentId) -> anyhow::Result<JobOutcome> {
    let Some(mut deployment) = state.store().get_deployment(id).await? else { return Ok(JobOutcome::Done) };
    let before = deployment.status;
    let now = state.now();
    let mut step = Step { state, now, next: None, deployment: deployment.clone() };
    let hosts = state.store().deployment_hosts(id).await?;
    match deployment.status {
        DeploymentStatus::Planning => step.plan(hosts).await?,
        DeploymentStatus::AwaitingApproval => {}
        DeploymentStatus::Running => step.run(hosts).await?,
        DeploymentStatus::RollingBack => step.roll_back(hosts).await?,
        // A user ended it: nothing new starts; hosts with a command in flight are followed to
        // its end, the others are cancelled.
        DeploymentStatus::Cancelled => step.wind_down(hosts).await?,
        // Halted with nothing in flight (its ring had ended): the later rings wait for a retry
        // (which resumes the rollout), a cancel or a rollback.
        DeploymentStatus::Halted
        | DeploymentStatus::Succeeded
        | DeploymentStatus::PartiallyFailed
        | DeploymentStatus::Failed
        | DeploymentStatus::RolledBack => {}
    }
    let changed = step.deployment != deployment;
    deployment = step.deployment.clone();
    if changed {
        // Status, ring, soak start: saved only if no user changed the status meanwhile.
        if !state.store().save_deployment(&deployment, before, state.now()).await? {
            // A user changed it meanwhile (cancelled, approved): run again on what they did.
            return Ok(JobOutcome::Again(state.now()));
        }
        if deployment.status != before {
            announce(state, &deployment, before).await;
        }
    }
    Ok(match step.next {
        Some(at) => JobOutcome::Again(at),
        None if deployment.status.is_final() || deployment.status == DeploymentStatus::AwaitingApproval => {
            JobOutcome::Done
        }
        None => JobOutcome::Again(state.now() + POLL),
    })
}

/// Audits, publishes and notifies a deployment's status change.
async fn announce(state: &AppState, deployment: &Deployment, before: DeploymentStatus) {
    let outcome = match deployment.status {
        DeploymentStatus::Failed | DeploymentStatus::Halted | DeploymentStatus::PartiallyFailed => Outcome::Failure,
        _ => Outcome::Success,
    };
    state
        .audit(
            AuditEvent::new(ACTOR, "deployment.status", outcome).target(format!("deployment:{}", deployment.id)).details(
                json!({ "from": before, "to": deployment.status, "ring": deployment.current_ring, "reason": deployment.reason }),
            ),
        )
        .await;
    state
        .hub()
        .publish(LiveEvent::Deployment {
            deployment_id: deployment.id.0,
            status: deployment.status.as_str().to_owned(),
        })
        .await;
    crate::deploy::notify_status(state, deployment).await;
}

struct Step<'a> {
    state: &'a AppState,
    now: Timestamp,
    /// The earliest time the deployment wants to run again.
    next: Option<Timestamp>,
    deployment: Deployment,
}

impl Step<'_> {
    fn again_at(&mut self, at: Timestamp) {
        let at = at.max(self.now);
        self.next = Some(self.next.map_or(at, |next| next.min(at)));
    }

    fn poll(&mut self) {
        self.again_at(self.now + POLL);
    }

    // -----------------------------------------------------------------------------------------
    // Planning

    async fn plan(&mut self, hosts: Vec<DeploymentHost>) -> anyhow::Result<()> {
        let timeout = secs(self.state.config().deployments.preview_timeout_secs);
        let mut planning = 0;
        for mut host in hosts.into_iter().filter(|h| h.state == HostRunState::Planning) {
            let Some(command_id) = host.preview_command else {
                let Some(record) = self.host_record(&host).await? else { continue };
                if record.transport == Transport::Push {
                    // The Linux_Patch_API has no dry run: the plan stands on the inventory.
                    host.preview = Some(json!({ "available": false, "reason": "push hosts cannot run a dry run" }));
                    host.state = HostRunState::Queued;
                } else {
                    let command = Command::Install { packages: super::install_specs(&host.plan), dry_run: true };
                    let queued = self.queue(&host, command, self.now + timeout).await?;
                    host.preview_command = Some(queued.id);
                    planning += 1;
                }
                self.save(&host, HostRunState::Planning).await?;
                continue;
            };
            let Some(command) = self.state.store().get_command(command_id).await? else {
                host.preview = Some(json!({ "available": false, "reason": "the dry run was pruned" }));
                host.state = HostRunState::Queued;
                self.save(&host, HostRunState::Planning).await?;
                continue;
            };
            if !command.state.is_terminal() {
                planning += 1;
                continue;
            }
            host.preview = Some(preview_of(&command));
            host.reboot_required = command.reboot_required;
            host.state = HostRunState::Queued;
            self.save(&host, HostRunState::Planning).await?;
        }
        if planning > 0 {
            self.poll();
            return Ok(());
        }
        if self.deployment.requires_approval {
            self.deployment.status = DeploymentStatus::AwaitingApproval;
        } else {
            self.deployment.status = DeploymentStatus::Running;
            self.deployment.started_at = Some(self.now);
            self.again_at(self.now);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Running

    async fn run(&mut self, mut hosts: Vec<DeploymentHost>) -> anyhow::Result<()> {
        loop {
            let ring = self.deployment.current_ring;
            for host in hosts.iter_mut().filter(|h| h.ring <= ring && !h.state.is_final()) {
                self.step_host(host, true).await?;
            }
            let in_ring: Vec<&DeploymentHost> = hosts.iter().filter(|h| h.ring == ring).collect();
            if hosts.iter().any(|h| h.ring <= ring && !h.state.is_final()) {
                // Not finished (again, after a retry): the soak time counts from its end.
                self.deployment.ring_finished_at = None;
                return Ok(());
            }
            let finished_at = *self.deployment.ring_finished_at.get_or_insert(self.now);
            let rate = success_rate(&in_ring);
            let last_ring = hosts.iter().map(|h| h.ring).max().unwrap_or(0);
            let spec = self.deployment.rings.get(usize::try_from(ring).unwrap_or(usize::MAX)).cloned();
            if ring < last_ring {
                let threshold = spec.as_ref().map_or(1.0, |s| s.success_threshold);
                if rate < threshold {
                    let name = spec.as_ref().map_or_else(|| format!("ring {ring}"), |s| s.name.clone());
                    self.deployment.status = DeploymentStatus::Halted;
                    self.deployment.finished_at = Some(self.now);
                    self.deployment.reason = Some(format!(
                        "ring {name:?} reached {:.1}% success, below its threshold of {:.1}%; later rings did not start",
                        rate * 100.0,
                        threshold * 100.0
                    ));
                    return Ok(());
                }
                let soak = secs(spec.as_ref().map_or(0, |s| s.soak_secs));
                if self.now < finished_at + soak {
                    self.again_at(finished_at + soak);
                    return Ok(());
                }
                self.deployment.current_ring = ring + 1;
                self.deployment.ring_finished_at = None;
                continue;
            }
            self.finish(&hosts);
            return Ok(());
        }
    }

    /// Sets the final status from the hosts' outcomes.
    fn finish(&mut self, hosts: &[DeploymentHost]) {
        let succeeded = hosts.iter().filter(|h| h.state == HostRunState::Succeeded).count();
        let failed =
            hosts.iter().filter(|h| matches!(h.state, HostRunState::Failed | HostRunState::RolledBack)).count();
        self.deployment.status = match (succeeded, failed) {
            (_, 0) => DeploymentStatus::Succeeded,
            (0, _) => DeploymentStatus::Failed,
            _ => DeploymentStatus::PartiallyFailed,
        };
        if failed > 0 {
            self.deployment.reason = Some(format!("{failed} of {} hosts failed", hosts.len()));
        }
        self.deployment.finished_at = Some(self.now);
    }

    /// Moves one host as far as it goes now. `may_start`: new work may begin (false once the
    /// deployment was cancelled or halted: only commands in flight are followed).
    async fn step_host(&mut self, host: &mut DeploymentHost, may_start: bool) -> anyhow::Result<()> {
        loop {
            let from = host.state;
            match from {
                HostRunState::Planning => return Ok(()),
                HostRunState::Queued | HostRunState::WaitingForWindow => {
                    if !may_start {
                        return self.end(host, HostRunState::Cancelled, None).await;
                    }
                    self.maybe_start(host).await?;
                }
                HostRunState::Running => self.after_apply(host, may_start).await?,
                HostRunState::Rebooting => self.after_reboot(host, may_start).await?,
                HostRunState::Verifying => self.after_health_check(host).await?,
                HostRunState::RollingBack => self.after_rollback(host).await?,
                HostRunState::Succeeded
                | HostRunState::Failed
                | HostRunState::Skipped
                | HostRunState::Cancelled
                | HostRunState::RolledBack => return Ok(()),
            }
            if host.state == from {
                return Ok(());
            }
        }
    }

    /// Starts the host's install if its window (or `now`) allows.
    async fn maybe_start(&mut self, host: &mut DeploymentHost) -> anyhow::Result<()> {
        let from = host.state;
        if let Some(not_before) = host.not_before.filter(|at| *at > self.now) {
            self.again_at(not_before);
            return Ok(());
        }
        let window_end = match self.deployment.schedule {
            Schedule::Now => None,
            Schedule::Window => {
                let calendar = crate::windows::host_calendar(self.state.store(), host.host_id).await?;
                match calendar.open_at(self.now) {
                    Some(open) => {
                        let start = patchdeck_schedule::splay(host.host_id.0, open, SPLAY_FRACTION);
                        if start > self.now && host.attempts == 0 {
                            host.not_before = Some(start);
                            host.window_end = Some(open.end);
                            host.state = HostRunState::WaitingForWindow;
                            self.again_at(start);
                            return self.save(host, from).await;
                        }
                        Some(open.end)
                    }
                    None => {
                        host.state = HostRunState::WaitingForWindow;
                        match calendar.next_open(self.now) {
                            Some(open) => {
                                let start = patchdeck_schedule::splay(host.host_id.0, open, SPLAY_FRACTION);
                                host.not_before = Some(start);
                                host.window_end = Some(open.end);
                                host.error_message = None;
                                self.again_at(start);
                            }
                            None => {
                                host.not_before = None;
                                host.window_end = None;
                                host.error_message =
                                    Some("the host has no maintenance window (or none outside blackouts)".into());
                                self.again_at(self.now + NO_WINDOW_RECHECK);
                            }
                        }
                        return self.save(host, from).await;
                    }
                }
            }
        };
        let Some(record) = self.host_record(host).await? else { return Ok(()) };
        let deliver_by =
            window_end.unwrap_or_else(|| self.now + secs(self.state.config().agents.command_delivery_timeout_secs));
        if deliver_by <= self.now {
            self.poll();
            return Ok(());
        }
        let command = Command::Install { packages: super::install_specs(&host.plan), dry_run: false };
        let queued = self.queue(host, command, deliver_by).await?;
        host.apply_command = Some(queued.id);
        host.attempts += 1;
        host.window_end = window_end;
        host.not_before = None;
        host.boot_id_before = record.boot_id.clone();
        host.started_at.get_or_insert(self.now);
        host.error_code = None;
        host.error_message = None;
        host.state = HostRunState::Running;
        self.save(host, from).await
    }

    /// The install finished? Then reboot, check health, retry or fail.
    async fn after_apply(&mut self, host: &mut DeploymentHost, may_start: bool) -> anyhow::Result<()> {
        let Some(command) = self.command(host.apply_command).await? else {
            return self.fail(host, "command_missing", "the install command disappeared".into()).await;
        };
        if !command.state.is_terminal() {
            self.poll();
            return Ok(());
        }
        if command.state == CommandState::Completed {
            host.reboot_required |= command.reboot_required;
            let reboot = match self.deployment.reboot_policy {
                RebootPolicy::Never => false,
                RebootPolicy::IfNeeded => host.reboot_required,
                RebootPolicy::Always => true,
            };
            if reboot && may_start {
                return self.reboot(host).await;
            }
            return self.verify(host, may_start).await;
        }
        if command.state == CommandState::Cancelled {
            return self.end(host, HostRunState::Cancelled, None).await;
        }
        let code = command.error_code.clone().unwrap_or_else(|| command.state.as_str().to_owned());
        let message = command.error_message.clone().unwrap_or_else(|| format!("the install ended {}", command.state));
        if code == patchdeck_proto::orchestration::PRE_HOOK_FAILED {
            return self.end(host, HostRunState::Skipped, Some((code, message))).await;
        }
        let backoff = secs(self.state.config().deployments.retry_backoff_secs);
        let window_open = host.window_end.is_none_or(|end| self.now + backoff < end);
        if may_start && host.attempts < MAX_ATTEMPTS && window_open {
            let from = host.state;
            host.state = HostRunState::Queued;
            host.not_before = Some(self.now + backoff);
            host.error_code = Some(code);
            host.error_message = Some(format!("{message} (retrying once)"));
            self.again_at(self.now + backoff);
            return self.save(host, from).await;
        }
        let changed = !command.changes.is_empty();
        self.fail_or_roll_back(host, code, message, changed).await
    }

    async fn reboot(&mut self, host: &mut DeploymentHost) -> anyhow::Result<()> {
        let from = host.state;
        let Some(record) = self.host_record(host).await? else { return Ok(()) };
        let delay = self.deployment.reboot_delay_secs;
        let message = format!(
            "Patchdeck: rebooting for deployment {:?} (#{}) in {} min",
            self.deployment.name,
            self.deployment.id,
            delay.div_ceil(60)
        );
        let command: Command = serde_json::from_value(json!({
            "type": "reboot", "delay_secs": delay, "force": false, "message": message,
        }))?;
        let deliver_by = host.window_end.unwrap_or(self.now + secs(3600)).max(self.now + secs(60));
        let queued = self.queue(host, command, deliver_by).await?;
        host.reboot_command = Some(queued.id);
        host.boot_id_before = record.boot_id.clone();
        host.not_before = Some(self.now + secs(delay));
        host.state = HostRunState::Rebooting;
        self.poll();
        self.save(host, from).await
    }

    /// Rebooted: a new boot id, or the reboot timeout.
    async fn after_reboot(&mut self, host: &mut DeploymentHost, may_start: bool) -> anyhow::Result<()> {
        let Some(command) = self.command(host.reboot_command).await? else {
            return self.fail(host, "command_missing", "the reboot command disappeared".into()).await;
        };
        if command.state.is_terminal() && command.state != CommandState::Completed {
            let message =
                command.error_message.clone().unwrap_or_else(|| format!("the reboot ended {}", command.state));
            return self.fail(host, "reboot_failed", message).await;
        }
        let Some(record) = self.host_record(host).await? else { return Ok(()) };
        let back = record.boot_id.is_some() && record.boot_id != host.boot_id_before;
        if back && record.status.as_str() == "online" {
            host.reboot_required = record.reboot_required;
            return self.verify(host, may_start).await;
        }
        let deadline = host.not_before.unwrap_or(self.now) + secs(self.state.config().deployments.reboot_timeout_secs);
        if self.now >= deadline {
            return self
                .fail(host, "reboot_timeout", "the host did not come back with a new boot id after its reboot".into())
                .await;
        }
        self.poll();
        Ok(())
    }

    /// Post-patch health checks from the host's groups, or success when it has none.
    async fn verify(&mut self, host: &mut DeploymentHost, may_start: bool) -> anyhow::Result<()> {
        let from = host.state;
        let policy = self.state.store().host_policy(host.host_id).await?;
        let checks = !policy.health_units.is_empty() || !policy.health_probes.is_empty();
        let Some(record) = self.host_record(host).await? else { return Ok(()) };
        if !checks || !may_start {
            return self.end(host, HostRunState::Succeeded, None).await;
        }
        if record.transport == Transport::Push {
            host.error_message = Some("health checks not run: push hosts cannot run them".into());
            return self.end(host, HostRunState::Succeeded, None).await;
        }
        let command: Command = serde_json::from_value(json!({
            "type": "health_check", "units": policy.health_units, "probes": policy.health_probes,
        }))?;
        let deliver_by = self.now + secs(self.state.config().agents.command_delivery_timeout_secs);
        let queued = self.queue(host, command, deliver_by).await?;
        host.health_command = Some(queued.id);
        host.state = HostRunState::Verifying;
        self.poll();
        self.save(host, from).await
    }

    async fn after_health_check(&mut self, host: &mut DeploymentHost) -> anyhow::Result<()> {
        let Some(command) = self.command(host.health_command).await? else {
            return self.fail(host, "command_missing", "the health check command disappeared".into()).await;
        };
        if !command.state.is_terminal() {
            self.poll();
            return Ok(());
        }
        if command.state == CommandState::Completed {
            return self.end(host, HostRunState::Succeeded, None).await;
        }
        let code =
            command.error_code.clone().unwrap_or_else(|| patchdeck_proto::orchestration::HEALTH_CHECK_FAILED.into());
        let message =
            command.error_message.clone().unwrap_or_else(|| format!("the health checks ended {}", command.state));
        self.fail_or_roll_back(host, code, message, true).await
    }

    /// Fails the host, rolling it back first when the deployment says so and it changed.
    async fn fail_or_roll_back(
        &mut self,
        host: &mut DeploymentHost,
        code: String,
        message: String,
        changed: bool,
    ) -> anyhow::Result<()> {
        if self.deployment.rollback_on_failure && changed && host.apply_command.is_some() {
            host.error_code = Some(code);
            host.error_message = Some(message);
            return self.start_rollback(host).await;
        }
        self.fail(host, &code, message).await
    }

    async fn start_rollback(&mut self, host: &mut DeploymentHost) -> anyhow::Result<()> {
        let from = host.state;
        let Some(apply) = host.apply_command else { return Ok(()) };
        let deliver_by = self.now + secs(self.state.config().agents.command_delivery_timeout_secs);
        let queued = self.queue(host, Command::Rollback { command_id: apply }, deliver_by).await?;
        host.rollback_command = Some(queued.id);
        host.state = HostRunState::RollingBack;
        host.finished_at = None;
        self.poll();
        self.save(host, from).await
    }

    async fn after_rollback(&mut self, host: &mut DeploymentHost) -> anyhow::Result<()> {
        let Some(command) = self.command(host.rollback_command).await? else {
            return self.fail(host, "command_missing", "the rollback command disappeared".into()).await;
        };
        if !command.state.is_terminal() {
            self.poll();
            return Ok(());
        }
        if command.state == CommandState::Completed {
            let from = host.state;
            host.state = HostRunState::RolledBack;
            host.finished_at = Some(self.now);
            return self.save(host, from).await;
        }
        let message = command.error_message.clone().unwrap_or_else(|| format!("the rollback ended {}", command.state));
        self.fail(host, "rollback_failed", message).await
    }

    // -----------------------------------------------------------------------------------------
    // Rolling a whole deployment back, and winding down

    async fn roll_back(&mut self, mut hosts: Vec<DeploymentHost>) -> anyhow::Result<()> {
        let mut busy = false;
        for host in &mut hosts {
            match host.state {
                HostRunState::RollingBack => {
                    self.after_rollback(host).await?;
                }
                HostRunState::Succeeded | HostRunState::Failed
                    if host.apply_command.is_some() && host.rollback_command.is_none() =>
                {
                    let applied = self.command(host.apply_command).await?;
                    if applied.is_some_and(|c| c.state == CommandState::Completed || !c.changes.is_empty()) {
                        self.start_rollback(host).await?;
                    }
                }
                HostRunState::Running | HostRunState::Rebooting | HostRunState::Verifying => {
                    // Let what is in flight end first.
                    self.step_host(host, false).await?;
                }
                HostRunState::Planning | HostRunState::Queued | HostRunState::WaitingForWindow => {
                    self.end(host, HostRunState::Cancelled, None).await?;
                }
                _ => {}
            }
            busy |= !host.state.is_final();
        }
        if busy {
            self.poll();
        } else {
            self.deployment.status = DeploymentStatus::RolledBack;
            self.deployment.finished_at = Some(self.now);
        }
        Ok(())
    }

    async fn wind_down(&mut self, mut hosts: Vec<DeploymentHost>) -> anyhow::Result<()> {
        let mut busy = false;
        for host in hosts.iter_mut().filter(|h| !h.state.is_final()) {
            if host.state == HostRunState::Running {
                // Not delivered yet: take it back.
                if let Some(id) = host.apply_command {
                    let _ = self.state.store().cancel_command(id, self.now).await;
                }
            }
            if host.state == HostRunState::Planning {
                if let Some(id) = host.preview_command {
                    let _ = self.state.store().cancel_command(id, self.now).await;
                }
                self.end(host, HostRunState::Cancelled, None).await?;
                continue;
            }
            self.step_host(host, false).await?;
            busy |= !host.state.is_final();
        }
        if busy {
            self.poll();
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Helpers

    async fn end(
        &mut self,
        host: &mut DeploymentHost,
        to: HostRunState,
        error: Option<(String, String)>,
    ) -> anyhow::Result<()> {
        let from = host.state;
        host.state = to;
        host.finished_at = Some(self.now);
        host.not_before = None;
        if let Some((code, message)) = error {
            host.error_code = Some(code);
            host.error_message = Some(message);
        } else if to == HostRunState::Succeeded {
            host.error_code = None;
        }
        self.save(host, from).await
    }

    async fn fail(&mut self, host: &mut DeploymentHost, code: &str, message: String) -> anyhow::Result<()> {
        self.end(host, HostRunState::Failed, Some((code.to_owned(), message))).await
    }

    /// Writes the host row if nobody moved it meanwhile, and publishes the change.
    async fn save(&mut self, host: &DeploymentHost, from: HostRunState) -> anyhow::Result<()> {
        if !self.state.store().save_deployment_host(host, from, self.now).await? {
            // A user acted (retry, cancel): look again right away.
            self.again_at(self.now);
            return Ok(());
        }
        if host.state != from {
            self.state
                .hub()
                .publish(LiveEvent::DeploymentHost {
                    deployment_id: host.deployment_id.0,
                    host_id: host.host_id.0,
                    state: host.state.as_str().to_owned(),
                })
                .await;
            if host.state.is_final() {
                let outcome = if host.state == HostRunState::Succeeded { Outcome::Success } else { Outcome::Failure };
                self.state
                    .audit(
                        AuditEvent::new(ACTOR, "deployment.host", outcome)
                            .target(format!("deployment:{}", host.deployment_id))
                            .details(json!({
                                "host_id": host.host_id.0, "state": host.state, "attempts": host.attempts,
                                "error_code": host.error_code,
                            })),
                    )
                    .await;
            }
        }
        Ok(())
    }

    async fn queue(
        &self,
        host: &DeploymentHost,
        command: Command,
        deliver_by: Timestamp,
    ) -> anyhow::Result<CommandRecord> {
        let new = NewCommand { host: host.host_id, command, created_by: None, retry_of: None, deliver_by };
        let record = self.state.store().queue_command(&new, self.now).await?;
        self.state.hub().command_queued(host.host_id.0).await;
        self.state.hub().publish_command(&record).await;
        self.state
            .audit(
                AuditEvent::new(ACTOR, "command.queue", Outcome::Success)
                    .target(format!("command:{}", record.id))
                    .details(
                        json!({ "kind": record.kind, "host": host.host_id.0, "deployment": host.deployment_id.0 }),
                    ),
            )
            .await;
        Ok(record)
    }

    async fn command(&self, id: Option<Uuid>) -> anyhow::Result<Option<CommandRecord>> {
        match id {
            Some(id) => Ok(self.state.store().get_command(id).await?),
            None => Ok(None),
        }
    }

    /// The host's row; a host deleted meanwhile has already left the deployment.
    async fn host_record(&self, host: &DeploymentHost) -> anyhow::Result<Option<patchdeck_store::Host>> {
        Ok(self.state.store().get_host(host.host_id).await?)
    }
}

/// Succeeded ÷ hosts of the ring that had something to do (skipped and cancelled hosts do not
/// count); 1 when none had.
fn success_rate(hosts: &[&DeploymentHost]) -> f64 {
    let counted = hosts.iter().filter(|h| !matches!(h.state, HostRunState::Skipped | HostRunState::Cancelled)).count();
    if counted == 0 {
        return 1.0;
    }
    let succeeded = hosts.iter().filter(|h| h.state == HostRunState::Succeeded).count();
    succeeded as f64 / counted as f64
}

/// The dry run's answer as kept in the plan: what it would install, upgrade and remove, and
/// whether a reboot would follow.
fn preview_of(command: &CommandRecord) -> serde_json::Value {
    use patchdeck_proto::inventory::TxAction;
    if command.state != CommandState::Completed {
        return json!({
            "available": false,
            "reason": command.error_message.clone().unwrap_or_else(|| format!("the dry run ended {}", command.state)),
            "error_code": command.error_code,
        });
    }
    let of = |wanted: &[TxAction]| -> Vec<serde_json::Value> {
        command
            .changes
            .iter()
            .filter(|c| wanted.contains(&c.action))
            .map(|c| json!({ "name": c.name, "arch": c.arch, "from": c.from, "to": c.to }))
            .collect()
    };
    json!({
        "available": true,
        "installs": of(&[TxAction::Install]),
        "upgrades": of(&[TxAction::Upgrade, TxAction::Downgrade, TxAction::Reinstall]),
        "removals": of(&[TxAction::Remove]),
        "reboot_required": command.reboot_required,
    })
}

fn secs(secs: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchdeck_store::{HostId, PlannedPackage};

    fn host(state: HostRunState) -> DeploymentHost {
        DeploymentHost {
            deployment_id: DeploymentId(1),
            host_id: HostId(1),
            hostname: "h".into(),
            ring: 0,
            state,
            plan: vec![PlannedPackage { name: "a".into(), arch: "all".into(), from: "1".into(), to: "2".into() }],
            preview: None,
            preview_command: None,
            apply_command: None,
            reboot_command: None,
            health_command: None,
            rollback_command: None,
            boot_id_before: None,
            attempts: 0,
            not_before: None,
            window_end: None,
            reboot_required: false,
            error_code: None,
            error_message: None,
            started_at: None,
            finished_at: None,
            updated_at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn success_rate_counts_hosts_that_had_work() {
        let hosts = [
            host(HostRunState::Succeeded),
            host(HostRunState::Succeeded),
            host(HostRunState::Failed),
            host(HostRunState::RolledBack),
            host(HostRunState::Skipped),
            host(HostRunState::Cancelled),
        ];
        let refs: Vec<&DeploymentHost> = hosts.iter().collect();
        assert!((success_rate(&refs) - 0.5).abs() < 1e-9);
        assert!((success_rate(&refs[4..]) - 1.0).abs() < 1e-9, "nothing to do is no failure");
    }
}
