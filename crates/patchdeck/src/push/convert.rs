//! From the Linux_Patch_API's objects to ours, so that a push host has the same inventory and the
//! same command results as a pull host.
//!
//! # Inventory ([`scan_report`])
//!
//! - **Backend** from the system info's `os` (a distribution name such as `Debian GNU/Linux 12
//!   (bookworm)` or an os-release id): Debian family → apt, Fedora/RHEL family → dnf (yum before
//!   version 8, Amazon Linux 2), SUSE → zypper, Arch family → pacman, Alpine → apk. A name we
//!   cannot place is an error ([`ConvertError::UnknownOs`]): guessing would pick the wrong
//!   version order.
//! - **Installed packages** are the `installed` and `upgradable` packages. The contract does not
//!   give a package's architecture, source package or origin; those are left empty.
//! - **Updates** are the patches. The contract's security flag is the severity: `critical` and
//!   `high` count as security updates (its `security_updates`), so they are
//!   [`SecurityClass::Security`]; `low` is [`SecurityClass::NotSecurity`]; `medium` is
//!   [`SecurityClass::Unknown`]: agents give it to updates whose class they cannot tell and to
//!   vendor-rated "moderate" fixes, so it is neither counted nor dismissed. An upgradable
//!   package missing from the patch list is added as an update of unknown class.
//! - **Reboot** is the system info's `pending_reboot`.
//!
//! # Command results ([`job_result`], [`merge_results`])
//!
//! A job's `status` maps to our command state; its `error_code` and `error` become the result's
//! error; its log, stdout and stderr become the output (the tail, when longer than
//! [`MAX_RESULT_OUTPUT_BYTES`]). The contract's job record has no structured change list, so the
//! changes of a completed job are read from the plan lines Patchdeck's agent logs before it
//! changes anything (`plan (upgrade): hello:all: 1.0-1 -> 1.1-1`); other agents' jobs report no
//! changes, and the next inventory shows what changed.

use jiff::Timestamp;
use patchdeck_proto::agent::{CommandResult, CommandState, PackageChange, ResultError, MAX_RESULT_OUTPUT_BYTES};
use patchdeck_proto::lpa::jobs::{JobDetail, JobStatus};
use patchdeck_proto::lpa::{Package, PackageStatus, Patch, Severity, SystemInfo};
use patchdeck_proto::{
    AvailableUpdate, BackendKind, InstalledPackage, OsInfo, RebootStatus, ScanReport, SecurityClass, SecurityInfo,
    TxAction, SCAN_SCHEMA_VERSION,
};
use uuid::Uuid;

/// Why an agent's answers cannot become an inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The system info names an operating system we cannot map to a package manager.
    #[error("cannot tell the package manager of {os:?} {version:?} from the agent's system info")]
    UnknownOs { os: String, version: String },
}

/// The package manager and os-release id of the system the agent describes; `None` when the
/// name is not one we know.
pub fn backend_of(info: &SystemInfo) -> Option<(BackendKind, &'static str)> {
    let os = info.os.to_ascii_lowercase();
    let words: Vec<&str> =
        os.split(|c: char| !c.is_ascii_alphanumeric() && c != '!').filter(|w| !w.is_empty()).collect();
    let has = |w: &str| words.contains(&w);
    let major: Option<u32> = info.os_version.split(|c: char| !c.is_ascii_digit()).next().and_then(|m| m.parse().ok());
    let rpm = |id| {
        let kind = if major.is_some_and(|m| m < 8) { BackendKind::Yum } else { BackendKind::Dnf };
        Some((kind, id))
    };
    if has("ubuntu") {
        Some((BackendKind::Apt, "ubuntu"))
    } else if has("debian") {
        Some((BackendKind::Apt, "debian"))
    } else if has("raspbian") {
        Some((BackendKind::Apt, "raspbian"))
    } else if has("mint") || has("linuxmint") {
        Some((BackendKind::Apt, "linuxmint"))
    } else if has("pop!") || has("pop") {
        Some((BackendKind::Apt, "pop"))
    } else if has("kali") {
        Some((BackendKind::Apt, "kali"))
    } else if has("fedora") {
        Some((BackendKind::Dnf, "fedora"))
    } else if has("rhel") || os.contains("red hat") {
        rpm("rhel")
    } else if has("centos") {
        rpm("centos")
    } else if has("rocky") {
        rpm("rocky")
    } else if has("almalinux") || has("alma") {
        rpm("almalinux")
    } else if has("oracle") || has("ol") {
        rpm("ol")
    } else if has("amazon") || has("amzn") {
        let kind = if major == Some(2) { BackendKind::Yum } else { BackendKind::Dnf };
        Some((kind, "amzn"))
    } else if has("opensuse") {
        Some((BackendKind::Zypper, "opensuse"))
    } else if has("sles") || has("suse") {
        Some((BackendKind::Zypper, "sles"))
    } else if has("arch") || has("archlinux") {
        Some((BackendKind::Pacman, "arch"))
    } else if has("manjaro") {
        Some((BackendKind::Pacman, "manjaro"))
    } else if has("endeavouros") {
        Some((BackendKind::Pacman, "endeavouros"))
    } else if has("alpine") {
        Some((BackendKind::Apk, "alpine"))
    } else {
        None
    }
}

/// The reason recorded with the security class of an update the agent marks as a security
/// update.
pub const SECURITY_REASON: &str = "the agent's Linux_Patch_API marks it a security update";

/// The inventory of a push host from its agent's system info, installed packages and patches
/// (see the module docs).
pub fn scan_report(
    info: &SystemInfo,
    packages: &[Package],
    patches: &[Patch],
    scanned_at: Timestamp,
) -> Result<ScanReport, ConvertError> {
    let (backend, id) = backend_of(info)
        .ok_or_else(|| ConvertError::UnknownOs { os: info.os.clone(), version: info.os_version.clone() })?;
    let installed: Vec<InstalledPackage> = packages
        .iter()
        .filter(|p| matches!(p.status, PackageStatus::Installed | PackageStatus::Upgradable))
        .map(|p| InstalledPackage {
            name: p.name.clone(),
            version: p.version.clone(),
            arch: String::new(),
            source_package: None,
            source_version: None,
            origin: None,
            installed_at: p.install_date.as_deref().and_then(|d| d.parse().ok()),
            size_bytes: p.size_installed.as_deref().and_then(size_bytes),
            held: false,
        })
        .collect();
    let mut updates: Vec<AvailableUpdate> = patches.iter().map(|p| update_of(p, backend)).collect();
    for p in packages.iter().filter(|p| p.upgradable) {
        let Some(latest) = &p.latest_version else { continue };
        if updates.iter().any(|u| u.name == p.name) {
            continue;
        }
        updates.push(AvailableUpdate {
            name: p.name.clone(),
            arch: String::new(),
            current_version: p.version.clone(),
            candidate_version: latest.clone(),
            repository: None,
            security: SecurityInfo::new(
                SecurityClass::Unknown,
                "the agent lists the package as upgradable but not among its patches",
            ),
            cves: p.cve_ids.clone(),
            reboot_likely: false,
        });
    }
    let reboot = RebootStatus {
        required: info.pending_reboot,
        reasons: if info.pending_reboot {
            vec!["the agent's Linux_Patch_API reports a pending reboot".to_owned()]
        } else {
            Vec::new()
        },
        packages: Vec::new(),
        running_kernel: non_empty(&info.kernel),
        newest_kernel: None,
    };
    Ok(ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at,
        os: OsInfo {
            id: id.to_owned(),
            id_like: Vec::new(),
            version_id: non_empty(&info.os_version),
            pretty_name: non_empty(&info.os),
            kernel: non_empty(&info.kernel),
            arch: non_empty(&info.architecture),
        },
        backend,
        version_format: backend.version_format(),
        last_refresh: info.last_update_check,
        installed,
        updates,
        reboot,
    })
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `"6250 KB"` (the contract's text), `"3 MB"` or a plain number of bytes.
fn size_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "kb" | "kib" | "k" => 1024,
        "mb" | "mib" | "m" => 1024 * 1024,
        "gb" | "gib" | "g" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(factor)
}

fn update_of(patch: &Patch, backend: BackendKind) -> AvailableUpdate {
    let word = match patch.severity {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    };
    let (class, reason) = if patch.severity.is_security_update() {
        (SecurityClass::Security, format!("{SECURITY_REASON} (severity {word})"))
    } else if patch.severity == Severity::Medium {
        (
            SecurityClass::Unknown,
            format!("the agent's Linux_Patch_API rates it medium, which does not say whether it is a security update ({backend})"),
        )
    } else {
        (SecurityClass::NotSecurity, format!("the agent's Linux_Patch_API rates it {word}: not a security update"))
    };
    AvailableUpdate {
        name: patch.name.clone(),
        arch: String::new(),
        current_version: patch.current_version.clone(),
        candidate_version: patch.available_version.clone(),
        repository: None,
        security: SecurityInfo { class, reason, advisory_id: None, severity: Some(word.to_owned()) },
        cves: patch.cve_ids.clone(),
        reboot_likely: patch.requires_reboot,
    }
}

/// Our command state for a job status.
pub fn command_state(status: JobStatus) -> CommandState {
    match status {
        JobStatus::Pending | JobStatus::Running => CommandState::Running,
        JobStatus::Completed => CommandState::Completed,
        JobStatus::Failed => CommandState::Failed,
        JobStatus::Cancelled => CommandState::Cancelled,
        JobStatus::TimedOut => CommandState::TimedOut,
    }
}

/// The result of command `command_id` from the record of the agent job that ran it. `at` is
/// used when the job has no completion time.
pub fn job_result(command_id: Uuid, detail: &JobDetail, at: Timestamp) -> CommandResult {
    let state = command_state(detail.status);
    let error = match state {
        CommandState::Failed | CommandState::TimedOut | CommandState::Cancelled => Some(ResultError {
            code: detail.error_code.clone().unwrap_or_else(|| {
                if state == CommandState::TimedOut { "JOB_TIMEOUT" } else { "UNKNOWN_ERROR" }.to_owned()
            }),
            message: detail.error.clone().unwrap_or_else(|| detail.message.clone()),
        }),
        _ => None,
    };
    let changes = if detail.status == JobStatus::Completed { planned_changes(&detail.logs) } else { Vec::new() };
    CommandResult {
        command_id,
        state,
        at: detail.completed_at.unwrap_or(at),
        job_id: Some(detail.job_id),
        error,
        output: truncate_output(job_output(detail)),
        changes,
        reboot_required: false,
        hooks: Vec::new(),
        checks: Vec::new(),
        preview: None,
    }
}

/// One result for a command that ran as several agent jobs (an update or removal of several
/// packages: one job each), in the order they were submitted: the worst state (failed, timed
/// out, cancelled, in that order, else completed), the first error, every job's output and
/// changes. `job_id` is the first job's.
pub fn merge_results(command_id: Uuid, details: &[JobDetail], at: Timestamp) -> CommandResult {
    let results: Vec<CommandResult> = details.iter().map(|d| job_result(command_id, d, at)).collect();
    if results.len() == 1 {
        return results.into_iter().next().expect("one result");
    }
    let rank = |s: CommandState| match s {
        CommandState::Failed => 0,
        CommandState::TimedOut => 1,
        CommandState::Cancelled => 2,
        CommandState::Running | CommandState::Sent | CommandState::Pending => 3,
        CommandState::Completed => 4,
    };
    let state = results.iter().map(|r| r.state).min_by_key(|s| rank(*s)).unwrap_or(CommandState::Completed);
    let output = details
        .iter()
        .zip(&results)
        .map(|(d, r)| format!("=== job {} ({}): {}\n{}", d.job_id, d.operation.as_str(), d.status.as_str(), r.output))
        .collect::<Vec<_>>()
        .join("\n");
    CommandResult {
        command_id,
        state,
        at: results.iter().map(|r| r.at).max().unwrap_or(at),
        job_id: details.first().map(|d| d.job_id),
        error: results.iter().find_map(|r| r.error.clone()),
        output: truncate_output(output),
        changes: results.iter().flat_map(|r| r.changes.clone()).collect(),
        reboot_required: false,
        hooks: Vec::new(),
        checks: Vec::new(),
        preview: None,
    }
}

/// The job's log, then its stdout and stderr.
fn job_output(detail: &JobDetail) -> String {
    let mut out = detail.logs.join("\n");
    for (name, text) in [("stdout", &detail.command_stdout), ("stderr", &detail.command_stderr)] {
        if let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("--- {name} ---\n{text}"));
        }
    }
    out
}

/// The last [`MAX_RESULT_OUTPUT_BYTES`] of `text` (at a character boundary), marked as cut.
pub fn truncate_output(text: String) -> String {
    if text.len() <= MAX_RESULT_OUTPUT_BYTES {
        return text;
    }
    const MARK: &str = "[… earlier output cut]\n";
    let mut start = text.len() - (MAX_RESULT_OUTPUT_BYTES - MARK.len());
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{MARK}{}", &text[start..])
}

/// The changes Patchdeck's agent logs before a transaction: `plan (<action>): <name>[:<arch>]:
/// <before> -> <after>`, with `was not installed` and `removed` for no version. A package
/// planned twice (a rollback in several transactions) keeps its last line.
pub fn planned_changes(logs: &[String]) -> Vec<PackageChange> {
    let mut changes: Vec<PackageChange> = Vec::new();
    for line in logs {
        let Some(change) = parse_plan_line(line) else { continue };
        changes.retain(|c| !(c.name == change.name && c.arch == change.arch));
        changes.push(change);
    }
    changes
}

fn parse_plan_line(line: &str) -> Option<PackageChange> {
    let rest = line.strip_prefix("plan (")?;
    let (action, rest) = rest.split_once("): ")?;
    let action = match action {
        "install" => TxAction::Install,
        "upgrade" => TxAction::Upgrade,
        "downgrade" => TxAction::Downgrade,
        "reinstall" => TxAction::Reinstall,
        "remove" => TxAction::Remove,
        _ => return None,
    };
    let (package, versions) = rest.split_once(": ")?;
    let (before, after) = versions.split_once(" -> ")?;
    let (name, arch) = match package.split_once(':') {
        Some((name, arch)) => (name, Some(arch.to_owned())),
        None => (package, None),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    let version = |v: &str, none: &str| (v != none && !v.is_empty()).then(|| v.to_owned());
    Some(PackageChange {
        name: name.to_owned(),
        arch,
        action,
        from: version(before.trim(), "was not installed"),
        to: version(after.trim(), "removed"),
    })
}

#[cfg(test)]
mod tests {
    use patchdeck_proto::lpa::jobs::JobOperation;

    use super::*;

    fn info(os: &str, version: &str) -> SystemInfo {
        SystemInfo {
            hostname: "h".into(),
            os: os.into(),
            os_version: version.into(),
            kernel: "6.1.0-18-amd64".into(),
            architecture: "x86_64".into(),
            last_update_check: None,
            last_update_apply: None,
            pending_reboot: true,
        }
    }

    #[test]
    fn push_backend_is_read_from_the_os_name() {
        let cases = [
            ("Debian GNU/Linux 12 (bookworm)", "12", Some((BackendKind::Apt, "debian"))),
            ("Ubuntu 24.04 LTS", "24.04", Some((BackendKind::Apt, "ubuntu"))),
            ("ubuntu", "22.04", Some((BackendKind::Apt, "ubuntu"))),
            ("Fedora Linux 40 (Server Edition)", "40", Some((BackendKind::Dnf, "fedora"))),
            ("Red Hat Enterprise Linux 9.4 (Plow)", "9.4", Some((BackendKind::Dnf, "rhel"))),
            ("CentOS Linux 7 (Core)", "7", Some((BackendKind::Yum, "centos"))),
            ("Rocky Linux 8.9 (Green Obsidian)", "8.9", Some((BackendKind::Dnf, "rocky"))),
            ("AlmaLinux 9.3 (Shamrock Pampas Cat)", "9.3", Some((BackendKind::Dnf, "almalinux"))),
            ("Amazon Linux 2", "2", Some((BackendKind::Yum, "amzn"))),
            ("Amazon Linux 2023", "2023", Some((BackendKind::Dnf, "amzn"))),
            ("openSUSE Leap 15.5", "15.5", Some((BackendKind::Zypper, "opensuse"))),
            ("SUSE Linux Enterprise Server 15 SP5", "15.5", Some((BackendKind::Zypper, "sles"))),
            ("Arch Linux", "", Some((BackendKind::Pacman, "arch"))),
            ("Alpine Linux v3.19", "3.19.1", Some((BackendKind::Apk, "alpine"))),
            ("Pop!_OS 22.04 LTS", "22.04", Some((BackendKind::Apt, "pop"))),
            ("Plan 9", "4", None),
        ];
        for (os, version, want) in cases {
            assert_eq!(backend_of(&info(os, version)), want, "{os}");
        }
    }

    fn package(name: &str, version: &str, latest: Option<&str>) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            status: if latest.is_some() { PackageStatus::Upgradable } else { PackageStatus::Installed },
            upgradable: latest.is_some(),
            latest_version: latest.map(Into::into),
            description: String::new(),
            dependencies: Vec::new(),
            reverse_dependencies: Vec::new(),
            install_date: Some("2026-01-02T03:04:05Z".into()),
            size_installed: Some("8 KB".into()),
            cve_ids: Vec::new(),
        }
    }

    fn patch(name: &str, from: &str, to: &str, severity: Severity) -> Patch {
        Patch {
            name: name.into(),
            current_version: from.into(),
            available_version: to.into(),
            severity,
            description: String::new(),
            cve_ids: vec!["CVE-2026-0001".into()],
            requires_reboot: false,
        }
    }

    #[test]
    fn push_scan_report_classifies_by_the_contracts_security_flag() {
        let packages = [
            package("crit", "1", Some("2")),
            package("plain", "1", Some("2")),
            package("unsure", "1", Some("2")),
            package("stray", "1", Some("3")),
            package("still", "5", None),
            Package { status: PackageStatus::Available, ..package("notours", "1", None) },
        ];
        let patches = [
            patch("crit", "1", "2", Severity::Critical),
            patch("plain", "1", "2", Severity::Low),
            patch("unsure", "1", "2", Severity::Medium),
        ];
        let report =
            scan_report(&info("Debian GNU/Linux 12 (bookworm)", "12"), &packages, &patches, Timestamp::UNIX_EPOCH)
                .unwrap();
        assert_eq!((report.backend, report.version_format), (BackendKind::Apt, BackendKind::Apt.version_format()));
        assert_eq!(report.os.id, "debian");
        let names: Vec<&str> = report.installed.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["crit", "plain", "unsure", "stray", "still"]);
        assert_eq!(report.installed[0].size_bytes, Some(8192));
        assert_eq!(report.installed[0].installed_at, Some("2026-01-02T03:04:05Z".parse().unwrap()));
        let class = |name: &str| report.updates.iter().find(|u| u.name == name).map(|u| u.security.class);
        assert_eq!(class("crit"), Some(SecurityClass::Security));
        assert_eq!(class("plain"), Some(SecurityClass::NotSecurity));
        assert_eq!(class("unsure"), Some(SecurityClass::Unknown));
        assert_eq!(class("stray"), Some(SecurityClass::Unknown), "upgradable but not a patch");
        assert_eq!(class("still"), None);
        let crit = report.updates.iter().find(|u| u.name == "crit").unwrap();
        assert!(crit.security.reason.starts_with(SECURITY_REASON), "{}", crit.security.reason);
        assert_eq!(crit.cves, ["CVE-2026-0001"]);
        assert_eq!(report.security_update_count(), 1);
        assert!(report.reboot.required);
        let err = scan_report(&info("Plan 9", "4"), &packages, &patches, Timestamp::UNIX_EPOCH).unwrap_err();
        assert!(err.to_string().contains("Plan 9"), "{err}");
    }

    fn detail(status: JobStatus, logs: &[&str]) -> JobDetail {
        JobDetail {
            job_id: Uuid::new_v4(),
            operation: JobOperation::Update,
            status,
            progress: 100,
            message: "done".into(),
            created_at: Timestamp::UNIX_EPOCH,
            completed_at: Some(Timestamp::UNIX_EPOCH),
            packages: vec!["hello".into()],
            logs: logs.iter().map(|l| (*l).to_owned()).collect(),
            error: None,
            error_code: None,
            exit_code: None,
            command_stdout: Some("Unpacking hello (1.1-1)".into()),
            command_stderr: None,
            rollback_job_id: None,
            exclusive_mode: false,
        }
    }

    #[test]
    fn push_job_results_carry_state_error_output_and_planned_changes() {
        let logs = [
            "updating hello=1.1-1",
            "plan (upgrade): hello:all: 1.0-1 -> 1.1-1",
            "plan (install): newdep: was not installed -> 1.0-1",
            "plan (remove): gone:amd64: 2.0 -> removed",
            "plan (sideways): odd: 1 -> 2",
        ];
        let id = Uuid::new_v4();
        let done = detail(JobStatus::Completed, &logs);
        let result = job_result(id, &done, Timestamp::now());
        assert_eq!(
            (result.state, result.job_id, result.error.as_ref()),
            (CommandState::Completed, Some(done.job_id), None)
        );
        assert!(result.output.contains("--- stdout ---\nUnpacking hello (1.1-1)"), "{}", result.output);
        let change = |name: &str| result.changes.iter().find(|c| c.name == name).cloned();
        let hello = change("hello").unwrap();
        assert_eq!(
            (hello.action, hello.arch.as_deref(), hello.from.as_deref(), hello.to.as_deref()),
            (TxAction::Upgrade, Some("all"), Some("1.0-1"), Some("1.1-1"))
        );
        let newdep = change("newdep").unwrap();
        assert_eq!((newdep.from, newdep.to.as_deref()), (None, Some("1.0-1")));
        let gone = change("gone").unwrap();
        assert_eq!((gone.action, gone.to), (TxAction::Remove, None));
        assert!(change("odd").is_none());

        let mut failed = detail(JobStatus::Failed, &logs);
        failed.error = Some("apt-get failed".into());
        failed.error_code = Some("PKG_MANAGER_ERROR".into());
        let result = job_result(id, &failed, Timestamp::now());
        assert_eq!(result.state, CommandState::Failed);
        assert_eq!(result.error.as_ref().map(|e| e.code.as_str()), Some("PKG_MANAGER_ERROR"));
        assert!(result.changes.is_empty(), "a failed job's plan is not what happened");

        let merged = merge_results(id, &[done.clone(), failed.clone()], Timestamp::now());
        assert_eq!((merged.state, merged.job_id), (CommandState::Failed, Some(done.job_id)));
        assert!(merged.output.contains(&format!("=== job {}", failed.job_id)), "{}", merged.output);

        let long = "x".repeat(MAX_RESULT_OUTPUT_BYTES * 2) + "é the end";
        let cut = truncate_output(long);
        assert!(cut.len() <= MAX_RESULT_OUTPUT_BYTES && cut.ends_with("é the end"), "{}", cut.len());
    }
}
