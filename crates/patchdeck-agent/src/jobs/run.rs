//! The package work of each job, run on a blocking thread while the job holds
//! the host's transaction permit.

use std::cmp::Ordering;

use patchdeck_pkg::{Operation, PackageManager, PackageName, PackageSpec, PackageVersion, Pin, PkgError, UpgradeScope};
use patchdeck_proto::{AvailableUpdate, InstalledPackage};
use patchdeck_version::VersionFormat;

use super::model::{JobErrorCode, JobRequest, PatchApply, RecordedChange};
use super::{Failure, JobCtx};

/// Runs a package job to its end: the final message, or why it failed.
pub(super) fn run_package_job(ctx: &JobCtx, pm: &dyn PackageManager, request: JobRequest) -> Result<String, Failure> {
    match request {
        JobRequest::Install { packages } => {
            ctx.progress(10, format!("installing {}", list(&packages)));
            let n = transact(ctx, pm, Operation::Install(packages))?;
            Ok(format!("install finished: {n} package change(s)"))
        }
        JobRequest::Update { packages } => {
            ctx.progress(10, format!("updating {}", list(&packages)));
            let pins = update_pins(ctx, pm, &packages)?;
            if pins.is_empty() {
                return Ok("nothing to update: every named package is at its newest version".to_owned());
            }
            let n = transact(ctx, pm, Operation::Upgrade(UpgradeScope::Exact(pins)))?;
            Ok(format!("update finished: {n} package change(s)"))
        }
        JobRequest::Remove { packages } => {
            let names: Vec<&str> = packages.iter().map(PackageName::as_str).collect();
            ctx.progress(10, format!("removing {}", names.join(" ")));
            let n = transact(ctx, pm, Operation::Remove(packages))?;
            Ok(format!("remove finished: {n} package change(s)"))
        }
        JobRequest::PatchApply(request) => patch_apply(ctx, pm, request),
        JobRequest::Rollback { job_id } => rollback(ctx, pm, job_id),
        JobRequest::SelfUpdate { target_version } => self_update(ctx, pm, target_version),
        JobRequest::Reboot { .. } => Err(Failure::new(JobErrorCode::InternalError, "not a package job")),
    }
}

fn list(specs: &[PackageSpec]) -> String {
    specs.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
}

/// A package-layer failure, with the command's exit code kept on the job.
fn pkg_failure(ctx: &JobCtx, err: PkgError) -> Failure {
    if let PkgError::CommandFailed { status, .. } = &err {
        if let Some(code) = status.strip_prefix("exit code ").and_then(|c| c.parse().ok()) {
            ctx.set_exit_code(Some(code));
        }
    }
    Failure::from(err)
}

/// Plans `op`, records what it will change (before changing anything), then
/// applies it with the output streamed to the job. Returns the number of
/// package changes (0: nothing to do, nothing run).
fn transact(ctx: &JobCtx, pm: &dyn PackageManager, op: Operation) -> Result<usize, Failure> {
    ctx.check()?;
    let planned = pm.dry_run(&op).map_err(|e| pkg_failure(ctx, e))?;
    if planned.is_empty() {
        ctx.log(format!("{op}: nothing to do"));
        return Ok(0);
    }
    // The hooks run before the plan is recorded: after a failing pre-hook the job changed, and
    // reports, nothing.
    ctx.pre_hooks(&planned)?;
    ctx.record_changes(&planned)?;
    for item in &planned.items {
        let change = RecordedChange {
            name: item.name.clone(),
            arch: item.arch.clone(),
            before: item.from.clone(),
            after: if item.action == patchdeck_proto::TxAction::Remove { None } else { item.to.clone() },
        };
        ctx.log(format!("plan ({}): {change}", item.action.as_str()));
    }
    ctx.check()?;
    let mut sink = |stream, line: &str| ctx.output_line(stream, line);
    let applied = pm.apply(&op, Some(&mut sink)).map_err(|e| pkg_failure(ctx, e))?;
    ctx.record_changes(&applied.transaction)?;
    ctx.set_exit_code(applied.output.code());
    Ok(applied.transaction.items.len())
}

/// Pins for an update: the given version, or the current candidate.
fn update_pins(ctx: &JobCtx, pm: &dyn PackageManager, specs: &[PackageSpec]) -> Result<Vec<Pin>, Failure> {
    let mut updates: Option<Vec<AvailableUpdate>> = None;
    let mut installed: Option<Vec<InstalledPackage>> = None;
    let mut pins: Vec<Pin> = Vec::new();
    for spec in specs {
        let pin = match &spec.version {
            Some(version) => Some(Pin { name: spec.name.clone(), version: version.clone() }),
            None => {
                let updates = match &mut updates {
                    Some(u) => u,
                    None => updates.insert(pm.updates().map_err(|e| pkg_failure(ctx, e))?),
                };
                let installed = match &mut installed {
                    Some(i) => i,
                    None => installed.insert(pm.installed().map_err(|e| pkg_failure(ctx, e))?),
                };
                candidate(ctx, spec.name.as_str(), updates, installed)?
            }
        };
        if let Some(pin) = pin.filter(|p| !pins.iter().any(|q| q.name == p.name)) {
            pins.push(pin);
        }
    }
    Ok(pins)
}

/// `name` at its current candidate; `None` (logged) when it has no update;
/// `PKG_NOT_FOUND` when it is not installed.
fn candidate(
    ctx: &JobCtx,
    name: &str,
    updates: &[AvailableUpdate],
    installed: &[InstalledPackage],
) -> Result<Option<Pin>, Failure> {
    if let Some(update) = updates.iter().find(|u| u.name == name) {
        return Pin::new(name, &update.candidate_version).map(Some).map_err(Failure::from);
    }
    if installed.iter().any(|p| p.name == name) {
        ctx.log(format!("{name}: no update available"));
        return Ok(None);
    }
    Err(Failure::new(JobErrorCode::PkgNotFound, format!("{name} is not installed")))
}

/// Upgrades the agent's own package, then asks the service manager to
/// restart the agent. The job runs alone (exclusive) and records the old
/// version, so it can be rolled back like any package job.
fn self_update(ctx: &JobCtx, pm: &dyn PackageManager, target_version: Option<String>) -> Result<String, Failure> {
    let name = ctx.self_package().to_owned();
    ctx.progress(0, format!("updating the agent package {name}"));
    let mut sink = |stream, line: &str| ctx.output_line(stream, line);
    pm.refresh(Some(&mut sink)).map_err(|e| pkg_failure(ctx, e))?;
    ctx.progress(10, "package index refreshed");
    let installed = pm.installed().map_err(|e| pkg_failure(ctx, e))?;
    if !installed.iter().any(|p| p.name == name) {
        return Err(Failure::new(
            JobErrorCode::PkgNotFound,
            format!("{name} is not installed as a package here; update the agent the way it was installed"),
        ));
    }
    let pin = match target_version {
        Some(version) => Pin::new(&name, &version).map_err(Failure::from)?,
        None => {
            let updates = pm.updates().map_err(|e| pkg_failure(ctx, e))?;
            match candidate(ctx, &name, &updates, &installed)? {
                Some(pin) => pin,
                None => return Ok(format!("{name} is already up to date; nothing to restart")),
            }
        }
    };
    let changed = transact(ctx, pm, Operation::Upgrade(UpgradeScope::Exact(vec![pin.clone()])))?;
    if changed == 0 {
        return Ok(format!("{pin} is already installed; nothing to restart"));
    }
    ctx.progress(90, format!("installed {pin}; restarting the agent"));
    ctx.check()?;
    let done = ctx.rebooter().restart_agent().map_err(|e| Failure::new(JobErrorCode::RebootError, e.to_string()))?;
    ctx.log(done);
    Ok(format!("updated to {pin}; the agent restarts when this job has finished"))
}

fn patch_apply(ctx: &JobCtx, pm: &dyn PackageManager, request: PatchApply) -> Result<String, Failure> {
    ctx.progress(0, "Starting patch application...");
    ctx.progress(0, "Refreshing package index...");
    for attempt in 1..=2 {
        ctx.check()?;
        let mut sink = |stream, line: &str| ctx.output_line(stream, line);
        match pm.refresh(Some(&mut sink)) {
            Ok(()) => break,
            Err(err) if attempt == 1 => ctx.log(format!("refreshing the package index failed ({err}); retrying once")),
            Err(err) => {
                let code = match JobErrorCode::for_pkg_error(&err) {
                    code @ (JobErrorCode::Locked | JobErrorCode::Timeout) => code,
                    _ => JobErrorCode::CacheRefreshError,
                };
                return Err(Failure::new(code, format!("refreshing the package index failed twice: {err}")));
            }
        }
    }
    ctx.progress(10, "Cache refreshed, applying patches...");
    let op = if request.packages.is_empty() {
        Some(Operation::Upgrade(UpgradeScope::All))
    } else {
        let specs: Vec<PackageSpec> = request.packages.iter().map(|n| PackageSpec::new(n.clone(), None)).collect();
        let pins = update_pins(ctx, pm, &specs)?;
        (!pins.is_empty()).then_some(Operation::Upgrade(UpgradeScope::Exact(pins)))
    };
    let changed = match op {
        Some(op) => transact(ctx, pm, op)?,
        None => 0,
    };
    ctx.progress(90, format!("patches applied: {changed} package change(s)"));
    // The post-patch hooks run before a reboot is scheduled (once; the engine skips them later).
    ctx.post_hooks(true)?;

    let mut rebooting = false;
    match pm.reboot_status() {
        Ok(status) => {
            let why =
                if status.reasons.is_empty() { String::new() } else { format!(" ({})", status.reasons.join("; ")) };
            let others = ctx.other_active_jobs();
            if (request.force_reboot || (request.allow_reboot && status.required)) && others > 0 {
                // Rebooting now would cut off the transactions queued behind this job.
                ctx.log(format!(
                    "not rebooting: {others} other job(s) are pending or running; request a reboot when they are done"
                ));
            } else if request.force_reboot || (request.allow_reboot && status.required) {
                ctx.check()?;
                let reason =
                    if status.required { format!("the host needs a reboot{why}") } else { "forced".to_owned() };
                ctx.progress(95, format!("rebooting in {}s: {reason}", request.reboot_delay.as_secs()));
                let done = ctx
                    .rebooter()
                    .reboot(request.reboot_delay, None)
                    .map_err(|e| Failure::new(JobErrorCode::RebootError, e.to_string()))?;
                ctx.log(done);
                rebooting = true;
            } else if status.required {
                ctx.log(format!("the host needs a reboot{why}; not rebooting because allow_reboot is false"));
            } else {
                ctx.log("no reboot needed");
            }
        }
        Err(err) if request.force_reboot || request.allow_reboot => return Err(pkg_failure(ctx, err)),
        Err(err) => ctx.log(format!("could not tell whether the host needs a reboot: {err}")),
    }
    let mut message = format!("patch application finished: {changed} package change(s)");
    if rebooting {
        message.push_str(&format!("; reboot scheduled in {}s", request.reboot_delay.as_secs()));
    }
    Ok(message)
}

/// Whether two versions are equal by the package manager's own ordering.
fn same_version(format: VersionFormat, a: &str, b: &str) -> bool {
    patchdeck_version::compare(format, a, b).is_ok_and(|o| o == Ordering::Equal)
}

fn rollback(ctx: &JobCtx, pm: &dyn PackageManager, original: uuid::Uuid) -> Result<String, Failure> {
    let changes = ctx
        .changes_of(original)
        .ok_or_else(|| Failure::new(JobErrorCode::ValidationError, format!("job {original} no longer exists")))?;
    ctx.progress(5, format!("rolling back job {original}: {} recorded change(s)", changes.len()));
    let format = pm.kind().version_format();
    let installed = pm.installed().map_err(|e| pkg_failure(ctx, e))?;
    let versions_of = |installed: &[InstalledPackage], name: &str| -> Vec<String> {
        installed.iter().filter(|p| p.name == name).map(|p| p.version.clone()).collect()
    };
    let invalid = |change: &RecordedChange, err: PkgError| {
        Failure::new(JobErrorCode::ValidationError, format!("recorded change {change} cannot be restored: {err}"))
    };

    // Every package once, at the version it had before the job.
    let mut targets: Vec<&RecordedChange> = Vec::new();
    for change in &changes {
        if !targets.iter().any(|t| t.name == change.name) {
            targets.push(change);
        }
    }
    let (mut downgrade, mut install, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    for change in &targets {
        let current = versions_of(&installed, &change.name);
        match &change.before {
            Some(before) => {
                if current.is_empty() {
                    let spec = PackageName::parse(&change.name)
                        .and_then(|n| Ok(PackageSpec::new(n, Some(PackageVersion::parse(before)?))))
                        .map_err(|e| invalid(change, e))?;
                    install.push(spec);
                } else if !current.iter().all(|v| same_version(format, v, before)) {
                    downgrade.push(Pin::new(&change.name, before).map_err(|e| invalid(change, e))?);
                }
            }
            None if !current.is_empty() => {
                remove.push(PackageName::parse(&change.name).map_err(|e| invalid(change, e))?)
            }
            None => {}
        }
    }
    let restore =
        |err: Failure| Failure { message: format!("cannot roll back job {original}: {}", err.message), ..err };
    let mut changed = 0;
    if !downgrade.is_empty() {
        ctx.progress(
            20,
            format!("restoring {}", downgrade.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")),
        );
        changed += transact(ctx, pm, Operation::Downgrade(downgrade)).map_err(restore)?;
    }
    if !install.is_empty() {
        ctx.progress(50, format!("re-installing {}", list(&install)));
        changed += transact(ctx, pm, Operation::Install(install)).map_err(restore)?;
    }
    if !remove.is_empty() {
        let names: Vec<&str> = remove.iter().map(PackageName::as_str).collect();
        ctx.progress(70, format!("removing newly installed {}", names.join(" ")));
        changed += transact(ctx, pm, Operation::Remove(remove)).map_err(restore)?;
    }

    ctx.progress(90, "checking the restored versions");
    let installed = pm.installed().map_err(|e| pkg_failure(ctx, e))?;
    let mut wrong = Vec::new();
    for change in &targets {
        let current = versions_of(&installed, &change.name);
        let ok = match &change.before {
            Some(before) => !current.is_empty() && current.iter().all(|v| same_version(format, v, before)),
            None => current.is_empty(),
        };
        if !ok {
            let now = if current.is_empty() { "not installed".to_owned() } else { current.join(", ") };
            let want = change.before.as_deref().unwrap_or("not installed");
            wrong.push(format!("{} is {now}, expected {want}", change.name));
        }
    }
    if !wrong.is_empty() {
        return Err(Failure::new(
            JobErrorCode::VerificationFailed,
            format!("rollback of job {original} left packages at other versions: {}", wrong.join("; ")),
        ));
    }
    Ok(format!("rolled back job {original}: {} package(s) restored, {changed} package change(s)", targets.len()))
}
