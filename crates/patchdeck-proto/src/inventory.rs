//! What a host has installed, what it can update, and what a package
//! transaction would do: the agent's scan result.
//!
//! The JSON form of [`ScanReport`] is the documented, stable output of
//! `patchdeck-agent scan --json` (see `docs/scan-json.md`).

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use patchdeck_version::VersionFormat;
use serde::{Deserialize, Serialize};

/// Version of the [`ScanReport`] JSON schema. Bumped on any incompatible change.
pub const SCAN_SCHEMA_VERSION: u32 = 1;

/// The package manager a backend drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// apt + dpkg (Debian, Ubuntu).
    Apt,
    /// dnf (Fedora, RHEL 8+ family).
    Dnf,
    /// yum (RHEL/CentOS 7 family).
    Yum,
    /// zypper (SUSE).
    Zypper,
    /// pacman (Arch).
    Pacman,
    /// apk (Alpine).
    Apk,
}

impl BackendKind {
    /// Every backend, in the order distribution detection prefers them.
    pub const ALL: [BackendKind; 6] = [
        BackendKind::Apt,
        BackendKind::Dnf,
        BackendKind::Yum,
        BackendKind::Zypper,
        BackendKind::Pacman,
        BackendKind::Apk,
    ];

    /// The lowercase name used in config files, JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Apt => "apt",
            BackendKind::Dnf => "dnf",
            BackendKind::Yum => "yum",
            BackendKind::Zypper => "zypper",
            BackendKind::Pacman => "pacman",
            BackendKind::Apk => "apk",
        }
    }

    /// How this package manager orders versions.
    pub fn version_format(self) -> VersionFormat {
        match self {
            BackendKind::Apt => VersionFormat::Deb,
            BackendKind::Dnf | BackendKind::Yum | BackendKind::Zypper => VersionFormat::Rpm,
            BackendKind::Pacman => VersionFormat::Pacman,
            BackendKind::Apk => VersionFormat::Apk,
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`BackendKind::from_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownBackend(pub String);

impl fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown package manager {:?} (expected one of: apt, dnf, yum, zypper, pacman, apk)", self.0)
    }
}

impl std::error::Error for UnknownBackend {}

impl FromStr for BackendKind {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackendKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or_else(|| UnknownBackend(s.to_owned()))
    }
}

/// One installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstalledPackage {
    pub name: String,
    /// Full version as the package manager spells it (with epoch where it has one).
    pub version: String,
    /// Architecture as the package manager names it (`amd64`, `x86_64`, `noarch`, `all`, `any`).
    pub arch: String,
    /// The source package it was built from (dpkg `Source`, rpm `SOURCERPM`, apk
    /// `origin`, pacman `base`). Vulnerability data is keyed by this name.
    pub source_package: Option<String>,
    /// The source package's version when it differs from `version` or is known separately.
    pub source_version: Option<String>,
    /// The repository it came from, where the package manager records it.
    pub origin: Option<String>,
    pub installed_at: Option<Timestamp>,
    /// Installed size in bytes.
    pub size_bytes: Option<u64>,
    /// Held back from upgrades (`apt-mark hold`, versionlock, `IgnorePkg`).
    #[serde(default)]
    pub held: bool,
}

/// Whether an update fixes a security problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityClass {
    /// The package manager's metadata says this update is a security fix.
    Security,
    /// The package manager has security metadata and it does not mark this update.
    NotSecurity,
    /// The package manager has no security metadata (pacman, apk): we cannot tell.
    Unknown,
}

/// A security classification together with the evidence for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityInfo {
    pub class: SecurityClass,
    /// Human-readable evidence, e.g. `candidate comes from suite bookworm-security`.
    pub reason: String,
    /// Advisory id (`RHSA-2024:1234`, `SUSE-2024-123`), where the metadata has one.
    pub advisory_id: Option<String>,
    /// Severity as the advisory spells it (`Important`, `moderate`, …).
    pub severity: Option<String>,
}

impl SecurityInfo {
    pub fn new(class: SecurityClass, reason: impl Into<String>) -> Self {
        SecurityInfo { class, reason: reason.into(), advisory_id: None, severity: None }
    }
}

/// An update the package manager would install for an installed package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailableUpdate {
    pub name: String,
    pub arch: String,
    pub current_version: String,
    pub candidate_version: String,
    /// Repository (or suite) the candidate comes from.
    pub repository: Option<String>,
    pub security: SecurityInfo,
    /// CVE ids the package manager's metadata links to this update.
    #[serde(default)]
    pub cves: Vec<String>,
    /// Installing it most likely needs a reboot (kernel, libc, systemd, …).
    pub reboot_likely: bool,
}

/// What a package transaction does to one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxAction {
    Install,
    Upgrade,
    Downgrade,
    Reinstall,
    Remove,
}

impl TxAction {
    pub fn as_str(self) -> &'static str {
        match self {
            TxAction::Install => "install",
            TxAction::Upgrade => "upgrade",
            TxAction::Downgrade => "downgrade",
            TxAction::Reinstall => "reinstall",
            TxAction::Remove => "remove",
        }
    }
}

/// One line of a package transaction: what happens to one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxItem {
    pub name: String,
    pub action: TxAction,
    /// Version before the transaction (absent for a fresh install).
    pub from: Option<String>,
    /// Version after the transaction (absent for a removal).
    pub to: Option<String>,
    pub arch: Option<String>,
}

/// The exact effect of a package operation, as the package manager computed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    pub items: Vec<TxItem>,
}

impl Transaction {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The item for `name`, if the transaction touches it.
    pub fn item(&self, name: &str) -> Option<&TxItem> {
        self.items.iter().find(|i| i.name == name)
    }
}

/// Whether the host needs a reboot, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebootStatus {
    pub required: bool,
    /// Each piece of evidence, e.g. `/var/run/reboot-required exists`.
    pub reasons: Vec<String>,
    /// Packages that asked for the reboot, where known.
    #[serde(default)]
    pub packages: Vec<String>,
    pub running_kernel: Option<String>,
    pub newest_kernel: Option<String>,
}

/// The operating system, from `/etc/os-release` and `uname`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsInfo {
    pub id: String,
    #[serde(default)]
    pub id_like: Vec<String>,
    pub version_id: Option<String>,
    pub pretty_name: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
}

/// A full scan of one host: `patchdeck-agent scan --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanReport {
    /// [`SCAN_SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    pub scanned_at: Timestamp,
    pub os: OsInfo,
    pub backend: BackendKind,
    pub version_format: VersionFormat,
    /// When the package metadata was last refreshed successfully, where known.
    pub last_refresh: Option<Timestamp>,
    pub installed: Vec<InstalledPackage>,
    pub updates: Vec<AvailableUpdate>,
    pub reboot: RebootStatus,
}

impl ScanReport {
    /// Number of updates classified as security fixes.
    pub fn security_update_count(&self) -> usize {
        self.updates.iter().filter(|u| u.security.class == SecurityClass::Security).count()
    }
}
