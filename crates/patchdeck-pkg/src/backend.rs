//! The one interface every package manager is driven through.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use patchdeck_proto::{AvailableUpdate, BackendKind, InstalledPackage, RebootStatus, Transaction};

use crate::error::{PkgError, Result};
use crate::exec::{Cmd, LineSink, Output};
use crate::spec::{PackageName, PackageSpec, Pin};

/// Which updates an upgrade installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeScope {
    /// Every available update.
    All,
    /// Only updates the package manager's metadata marks as security fixes.
    /// Backends without security metadata (pacman, apk) refuse this.
    Security,
    /// Exactly these versions, nothing else (what deployments use).
    Exact(Vec<Pin>),
}

/// A change to the installed packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Install packages, each optionally at an exact version.
    Install(Vec<PackageSpec>),
    /// Upgrade installed packages.
    Upgrade(UpgradeScope),
    /// Remove packages.
    Remove(Vec<PackageName>),
    /// Go back to exact older versions (rollback).
    Downgrade(Vec<Pin>),
}

impl Operation {
    /// A short description for logs and errors: `upgrade (security)`.
    pub fn describe(&self) -> String {
        let list = |items: Vec<String>| items.join(" ");
        match self {
            Operation::Install(specs) => format!("install {}", list(specs.iter().map(ToString::to_string).collect())),
            Operation::Upgrade(UpgradeScope::All) => "upgrade (all)".to_owned(),
            Operation::Upgrade(UpgradeScope::Security) => "upgrade (security)".to_owned(),
            Operation::Upgrade(UpgradeScope::Exact(pins)) => {
                format!("upgrade {}", list(pins.iter().map(ToString::to_string).collect()))
            }
            Operation::Remove(names) => {
                format!("remove {}", list(names.iter().map(|n| n.as_str().to_owned()).collect()))
            }
            Operation::Downgrade(pins) => format!("downgrade {}", list(pins.iter().map(ToString::to_string).collect())),
        }
    }

    /// Refuses operations that name nothing (`install` of no package).
    pub fn validate(&self) -> Result<()> {
        let empty = match self {
            Operation::Install(v) => v.is_empty(),
            Operation::Upgrade(UpgradeScope::Exact(v)) | Operation::Downgrade(v) => v.is_empty(),
            Operation::Remove(v) => v.is_empty(),
            Operation::Upgrade(_) => false,
        };
        if empty {
            return Err(PkgError::invalid("operation", &self.describe(), "names no package"));
        }
        Ok(())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// What an applied operation did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The transaction the package manager planned (its dry run just before).
    pub transaction: Transaction,
    /// The package manager's own output.
    pub output: Output,
}

/// Where and how a backend runs.
///
/// `root` other than `/` points every command at another install root with its
/// own package database and repository configuration: that is how tests run the
/// real package managers on throw-away sandboxes.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// The system to manage (`/` for this host).
    pub root: PathBuf,
    /// The package manager's main config file, instead of the system one
    /// (apt: `APT_CONFIG`; dnf/yum: `--config`; pacman: `--config`; zypper: `--config`).
    pub config_file: Option<PathBuf>,
    /// dnf/yum `--releasever`, needed for install roots without an os-release.
    pub releasever: Option<String>,
    /// Extra environment for every child process.
    pub env: Vec<(String, String)>,
    /// Limit for read-only queries.
    pub query_timeout: Duration,
    /// Limit for a metadata refresh.
    pub refresh_timeout: Duration,
    /// Limit for an install, upgrade, remove or downgrade.
    pub transaction_timeout: Duration,
    /// How long to wait for another process's package lock before giving up.
    pub lock_wait: Duration,
}

impl Default for BackendOptions {
    fn default() -> Self {
        BackendOptions {
            root: PathBuf::from("/"),
            config_file: None,
            releasever: None,
            env: Vec::new(),
            query_timeout: Duration::from_secs(120),
            refresh_timeout: Duration::from_secs(300),
            transaction_timeout: Duration::from_secs(30 * 60),
            lock_wait: Duration::from_secs(60),
        }
    }
}

impl BackendOptions {
    /// Options for another install root.
    pub fn with_root(root: impl Into<PathBuf>) -> Self {
        BackendOptions { root: root.into(), ..BackendOptions::default() }
    }

    /// Whether this is the running system rather than a separate root.
    pub fn is_host_root(&self) -> bool {
        self.root == Path::new("/")
    }

    /// `path` (absolute, as on the managed system) under the root.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// A command with the extra environment and the query timeout.
    pub fn cmd(&self, program: &str) -> Cmd {
        Cmd::new(program, self.query_timeout).envs(self.env.iter().map(|(k, v)| (k, v)))
    }
}

/// A package manager.
///
/// Every method runs the real package manager (or reads its database) under
/// [`BackendOptions::root`]. Nothing here knows about networking or jobs: the
/// agent's job engine calls these from its worker threads.
pub trait PackageManager: Send + Sync + fmt::Debug {
    fn kind(&self) -> BackendKind;

    fn options(&self) -> &BackendOptions;

    /// Installed packages, sorted by name then architecture.
    fn installed(&self) -> Result<Vec<InstalledPackage>>;

    /// Updates available from the metadata as last refreshed, sorted by name,
    /// each with its security classification and the reason for it.
    fn updates(&self) -> Result<Vec<AvailableUpdate>>;

    /// Downloads fresh repository metadata, within `refresh_timeout`.
    fn refresh(&self, sink: Option<LineSink<'_>>) -> Result<()>;

    /// When the metadata was last refreshed successfully, where known.
    fn last_refresh(&self) -> Result<Option<Timestamp>>;

    /// The exact transaction `op` would run, without changing anything.
    fn dry_run(&self, op: &Operation) -> Result<Transaction>;

    /// Runs `op`, streaming the package manager's output to `sink`.
    fn apply(&self, op: &Operation, sink: Option<LineSink<'_>>) -> Result<Applied>;

    /// Whether the system needs a reboot, with the evidence.
    fn reboot_status(&self) -> Result<RebootStatus>;
}

/// Runs `make()`'s command until it is not refused for a lock, waiting up to
/// `lock_wait` in total with growing pauses, then fails with [`PkgError::Locked`].
///
/// `locked` recognises this package manager's "database is locked" output
/// and returns the detail to report.
pub(crate) fn run_waiting_for_lock(
    backend: BackendKind,
    lock_wait: Duration,
    cmd: &Cmd,
    mut sink: Option<LineSink<'_>>,
    locked: impl Fn(&Output) -> Option<String>,
) -> Result<Output> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(250);
    loop {
        let out = cmd.run(reborrow(&mut sink))?;
        let Some(detail) = locked(&out) else {
            return Ok(out);
        };
        let waited = started.elapsed();
        if waited + pause > lock_wait {
            return Err(PkgError::Locked { backend, detail, waited });
        }
        tracing::info!(%backend, %detail, "package database locked, waiting");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// Refuses plans that break an operation's promise before they run.
///
/// A security upgrade never removes packages: like unattended-upgrades, it
/// leaves an update that needs a removal to an explicit, reviewed exact
/// upgrade (whose dry run shows the removal).
pub(crate) fn check_plan(op: &Operation, transaction: &Transaction) -> Result<()> {
    if let Operation::Upgrade(UpgradeScope::Security) = op {
        let removed: Vec<&str> = transaction
            .items
            .iter()
            .filter(|i| i.action == patchdeck_proto::TxAction::Remove)
            .map(|i| i.name.as_str())
            .collect();
        if !removed.is_empty() {
            return Err(PkgError::PlanRefused {
                operation: op.describe(),
                reason: format!(
                    "it would remove {}; review the dry run and apply those updates as an exact upgrade",
                    removed.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Whether two spellings name the same version under `format`'s ordering
/// (`0:1.0-1` and `1.0-1` for deb and rpm, `01` and `1`). Never compares the
/// text alone: an unparsable version equals only its identical spelling.
pub(crate) fn same_version(format: patchdeck_version::VersionFormat, a: &str, b: &str) -> bool {
    a == b || patchdeck_version::compare(format, a, b).is_ok_and(|o| o == std::cmp::Ordering::Equal)
}

/// Lends an optional sink to one call while keeping it for the next.
pub(crate) fn reborrow<'s>(sink: &'s mut Option<LineSink<'_>>) -> Option<LineSink<'s>> {
    match sink {
        Some(s) => Some(&mut **s),
        None => None,
    }
}

/// Opens the backend of `kind`.
pub fn open(kind: BackendKind, options: BackendOptions) -> Box<dyn PackageManager> {
    match kind {
        BackendKind::Apt => Box::new(crate::apt::Apt::new(options)),
        BackendKind::Dnf => Box::new(crate::dnf::Dnf::new(options, crate::dnf::Flavor::Dnf)),
        BackendKind::Yum => Box::new(crate::dnf::Dnf::new(options, crate::dnf::Flavor::Yum)),
        BackendKind::Zypper => Box::new(crate::zypper::Zypper::new(options)),
        BackendKind::Pacman => Box::new(crate::pacman::Pacman::new(options)),
        BackendKind::Apk => Box::new(crate::apk::Apk::new(options)),
    }
}

/// Opens `kind` if given (config override), else the detected backend for
/// `options.root`.
pub fn open_detected(kind: Option<BackendKind>, options: BackendOptions) -> Result<Box<dyn PackageManager>> {
    let kind = match kind {
        Some(kind) => kind,
        None => crate::detect::detect(&options.root)?,
    };
    Ok(open(kind, options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchdeck_version::VersionFormat;

    #[test]
    fn same_version_uses_the_formats_ordering() {
        assert!(same_version(VersionFormat::Deb, "0:1.0-1", "1.0-1"));
        assert!(same_version(VersionFormat::Deb, "1.0-01", "1.0-1"));
        assert!(!same_version(VersionFormat::Deb, "1.0-1", "1.0-2"));
        assert!(same_version(VersionFormat::Pacman, "0:1.0-1", "1.0-1"));
        assert!(same_version(VersionFormat::Apk, "1.0-r0", "1.0-r0"));
        assert!(!same_version(VersionFormat::Apk, "1.0-r0", "1.0-r1"));
        // Unparsable input only equals itself.
        assert!(same_version(VersionFormat::Deb, "1 0", "1 0"));
        assert!(!same_version(VersionFormat::Deb, "1 0", "1.0"));
    }

    #[test]
    fn a_security_upgrade_never_removes() {
        let item = |name: &str, action| patchdeck_proto::TxItem {
            name: name.to_owned(),
            action,
            from: Some("1.0-1".to_owned()),
            to: None,
            arch: None,
        };
        let upgrade_only = Transaction { items: vec![item("hello", patchdeck_proto::TxAction::Upgrade)] };
        let with_removal = Transaction {
            items: vec![
                item("breaker", patchdeck_proto::TxAction::Upgrade),
                item("other", patchdeck_proto::TxAction::Remove),
            ],
        };
        let security = Operation::Upgrade(UpgradeScope::Security);
        assert!(check_plan(&security, &upgrade_only).is_ok());
        let err = check_plan(&security, &with_removal).unwrap_err().to_string();
        assert_eq!(
            err,
            "upgrade (security) refused: it would remove other; review the dry run and apply those updates as an exact upgrade"
        );
        // Other operations show and run what the package manager planned.
        let exact = Operation::Upgrade(UpgradeScope::Exact(vec![Pin::parse("breaker=2.0-1").unwrap()]));
        assert!(check_plan(&exact, &with_removal).is_ok());
        assert!(check_plan(&Operation::Upgrade(UpgradeScope::All), &with_removal).is_ok());
    }

    #[test]
    fn empty_operations_are_refused() {
        for op in [Operation::Install(vec![]), Operation::Remove(vec![]), Operation::Downgrade(vec![])] {
            let err = op.validate().unwrap_err().to_string();
            assert!(err.contains("names no package"), "{err}");
        }
        assert!(Operation::Upgrade(UpgradeScope::All).validate().is_ok());
        assert!(Operation::Upgrade(UpgradeScope::Exact(vec![])).validate().is_err());
    }
}
