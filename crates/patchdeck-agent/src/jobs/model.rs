//! What a job is: the request, the stored record, the change log used for
//! rollback, the error codes, the events and the clock.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;
use patchdeck_pkg::{PackageName, PackageSpec, PkgError};
use patchdeck_proto::lpa::jobs::{JobDetail, JobOperation, JobStatus};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The environment variable every package-manager process of a job carries
/// (`PATCHDECK_JOB_ID=<uuid>`). It is inherited by apt-get, dpkg and their
/// helpers, so the engine can find a job's processes in `/proc` (to stop them
/// on a job timeout, or to wait for survivors of a previous agent process).
pub const JOB_MARKER_ENV: &str = "PATCHDECK_JOB_ID";

/// The version of the on-disk record format.
pub const RECORD_FORMAT: u32 = 1;

/// A request for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRequest {
    /// Install packages, each optionally at an exact version.
    Install { packages: Vec<PackageSpec> },
    /// Update installed packages: to the given version, or to their current candidate.
    Update { packages: Vec<PackageSpec> },
    /// Remove packages.
    Remove { packages: Vec<PackageName> },
    /// Refresh metadata and apply updates.
    PatchApply(PatchApply),
    /// Reboot the host.
    Reboot {
        /// Wait this long before rebooting (`shutdown -r +minutes`, rounded up).
        delay: Duration,
        /// Reboot even while other jobs are pending or running.
        force: bool,
        /// Broadcast to logged-in users (`wall`) when the reboot is scheduled.
        message: Option<String>,
    },
    /// The agent upgrading its own package (to `target_version`, or to the
    /// candidate), then asking the service manager to restart it.
    SelfUpdate { target_version: Option<String> },
    /// Restore the package versions recorded by a completed or failed job.
    Rollback { job_id: Uuid },
}

/// `POST /patches/apply`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchApply {
    /// Packages to upgrade to their current candidates; empty means every update.
    pub packages: Vec<PackageName>,
    /// Reboot afterwards if the host needs it.
    pub allow_reboot: bool,
    /// Reboot afterwards even if the host does not report needing it.
    pub force_reboot: bool,
    /// Delay before the reboot.
    pub reboot_delay: Duration,
}

impl JobRequest {
    pub fn operation(&self) -> JobOperation {
        match self {
            JobRequest::Install { .. } => JobOperation::Install,
            JobRequest::Update { .. } => JobOperation::Update,
            JobRequest::Remove { .. } => JobOperation::Remove,
            JobRequest::PatchApply(_) => JobOperation::PatchApply,
            JobRequest::Reboot { .. } => JobOperation::Reboot,
            JobRequest::SelfUpdate { .. } => JobOperation::SelfUpdate,
            JobRequest::Rollback { .. } => JobOperation::Rollback,
        }
    }

    /// The `packages[]` of the job's wire records.
    pub fn packages(&self) -> Vec<String> {
        match self {
            JobRequest::Install { packages } | JobRequest::Update { packages } => {
                packages.iter().map(ToString::to_string).collect()
            }
            JobRequest::Remove { packages } => packages.iter().map(|p| p.as_str().to_owned()).collect(),
            JobRequest::PatchApply(p) => p.packages.iter().map(|p| p.as_str().to_owned()).collect(),
            JobRequest::SelfUpdate { target_version } => target_version.iter().cloned().collect(),
            JobRequest::Reboot { .. } | JobRequest::Rollback { .. } => Vec::new(),
        }
    }

    /// Whether the job changes packages (and so takes the transaction lock).
    pub fn is_package_transaction(&self) -> bool {
        matches!(
            self,
            JobRequest::Install { .. }
                | JobRequest::Update { .. }
                | JobRequest::Remove { .. }
                | JobRequest::PatchApply(_)
                | JobRequest::Rollback { .. }
                | JobRequest::SelfUpdate { .. }
        )
    }

    /// Whether the local pre- and post-patch hooks run around the job: every package job that
    /// changes the host, except the agent updating itself.
    pub fn runs_hooks(&self) -> bool {
        self.is_package_transaction() && !matches!(self, JobRequest::SelfUpdate { .. })
    }

    /// Refuses requests that name nothing where they must name something.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let empty = match self {
            JobRequest::Install { packages } | JobRequest::Update { packages } => packages.is_empty(),
            JobRequest::Remove { packages } => packages.is_empty(),
            _ => false,
        };
        if empty {
            return Err(format!("{} names no package", self.operation().as_str()));
        }
        if let JobRequest::Reboot { message: Some(message), .. } = self {
            patchdeck_proto::orchestration::validate_reboot_message("message", message).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// One package a job's transaction touched, with its version before the job
/// changed anything (what a rollback restores).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedChange {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The version before the job; `None`: the package was not installed.
    pub before: Option<String>,
    /// The version the job meant to leave; `None`: the job removed it.
    pub after: Option<String>,
}

impl fmt::Display for RecordedChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let before = self.before.as_deref().unwrap_or("was not installed");
        let after = self.after.as_deref().unwrap_or("removed");
        match &self.arch {
            Some(arch) => write!(f, "{}:{arch}: {before} -> {after}", self.name),
            None => write!(f, "{}: {before} -> {after}", self.name),
        }
    }
}

/// A job as stored in `<state_dir>/jobs/<uuid>.json`: the wire detail plus
/// what the engine needs to recover and roll back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    #[serde(flatten)]
    pub detail: JobDetail,
    /// Submission order, to order jobs created in the same instant.
    pub seq: u64,
    /// The agent process that ran the job (set when it starts running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// Every package the job's transactions touched, recorded before they ran.
    #[serde(default)]
    pub changes: Vec<RecordedChange>,
    /// Who asked for the job (the push API's client certificate), for the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<Requester>,
    /// The local pre- and post-patch hooks that ran (or were skipped), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<patchdeck_proto::orchestration::HookRun>,
}

/// The client that asked for a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    pub addr: std::net::SocketAddr,
    pub cn: Option<String>,
    pub serial: Option<String>,
    pub fingerprint: Option<String>,
}

impl JobRecord {
    pub fn status(&self) -> JobStatus {
        self.detail.status
    }

    pub fn id(&self) -> Uuid {
        self.detail.job_id
    }
}

/// The job `error_code`s this engine sets. Readers must treat codes they do
/// not know as `UNKNOWN_ERROR`.
///
/// | code | when | retry? |
/// |---|---|---|
/// | `PKG_MANAGER_ERROR` | the package manager failed, or printed what we do not understand | no |
/// | `COMMAND_NOT_FOUND` | the package manager program is missing | no |
/// | `CACHE_REFRESH_ERROR` | the metadata refresh failed twice (patch_apply) | no |
/// | `PKG_NOT_FOUND` | a named package is not installed / not known | no |
/// | `VERSION_UNAVAILABLE` | an exact version is in no configured repository (e.g. a rollback target) | no |
/// | `LOCKED` | another process held the package lock past `lock_wait` | **yes** |
/// | `TIMEOUT` | one package-manager command passed its own timeout and was killed (status `timed_out`) | **yes** |
/// | `JOB_TIMEOUT` | the whole job passed the job timeout; its processes were killed (status `timed_out`) | **yes** |
/// | `PERMISSION_DENIED` | a file the package layer needs could not be read | no |
/// | `VALIDATION_ERROR` | a name or version in the request or a record is invalid | no |
/// | `UNSUPPORTED_OPERATION` | the operation is not supported (a backend without security metadata) | no |
/// | `REBOOT_ERROR` | the reboot command failed | no |
/// | `AGENT_RESTARTED` | the agent stopped while the job was pending or running | no |
/// | `VERIFICATION_FAILED` | after a rollback, a package is not at the recorded version | no |
/// | `pre_hook_failed` | a pre-patch hook failed or timed out; nothing was changed | no |
/// | `post_hook_failed` | a post-patch hook failed or timed out; the package changes stand | no |
/// | `INTERNAL_ERROR` | a bug in the engine (a worker thread panicked) | no |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobErrorCode {
    PkgManagerError,
    CommandNotFound,
    CacheRefreshError,
    PkgNotFound,
    VersionUnavailable,
    Locked,
    Timeout,
    JobTimeout,
    PermissionDenied,
    ValidationError,
    UnsupportedOperation,
    RebootError,
    AgentRestarted,
    VerificationFailed,
    PreHookFailed,
    PostHookFailed,
    InternalError,
}

impl JobErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            JobErrorCode::PkgManagerError => "PKG_MANAGER_ERROR",
            JobErrorCode::CommandNotFound => "COMMAND_NOT_FOUND",
            JobErrorCode::CacheRefreshError => "CACHE_REFRESH_ERROR",
            JobErrorCode::PkgNotFound => "PKG_NOT_FOUND",
            JobErrorCode::VersionUnavailable => "VERSION_UNAVAILABLE",
            JobErrorCode::Locked => "LOCKED",
            JobErrorCode::Timeout => "TIMEOUT",
            JobErrorCode::JobTimeout => "JOB_TIMEOUT",
            JobErrorCode::PermissionDenied => "PERMISSION_DENIED",
            JobErrorCode::ValidationError => "VALIDATION_ERROR",
            JobErrorCode::UnsupportedOperation => "UNSUPPORTED_OPERATION",
            JobErrorCode::RebootError => "REBOOT_ERROR",
            JobErrorCode::AgentRestarted => "AGENT_RESTARTED",
            JobErrorCode::VerificationFailed => "VERIFICATION_FAILED",
            // Spelled as the orchestration protocol names them (`patchdeck_proto::orchestration`).
            JobErrorCode::PreHookFailed => patchdeck_proto::orchestration::PRE_HOOK_FAILED,
            JobErrorCode::PostHookFailed => patchdeck_proto::orchestration::POST_HOOK_FAILED,
            JobErrorCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Whether submitting the same job again later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, JobErrorCode::Locked | JobErrorCode::Timeout | JobErrorCode::JobTimeout)
    }

    /// The code for a package-layer error.
    pub fn for_pkg_error(err: &PkgError) -> JobErrorCode {
        match err {
            PkgError::InvalidInput { .. } => JobErrorCode::ValidationError,
            PkgError::Unsupported { .. } => JobErrorCode::UnsupportedOperation,
            PkgError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                JobErrorCode::CommandNotFound
            }
            PkgError::Timeout { .. } => JobErrorCode::Timeout,
            PkgError::Locked { .. } => JobErrorCode::Locked,
            PkgError::CommandFailed { detail, .. } if detail.contains("Unable to locate package") => {
                JobErrorCode::PkgNotFound
            }
            PkgError::VersionUnavailable { .. } => JobErrorCode::VersionUnavailable,
            PkgError::NotInstalled(_) => JobErrorCode::PkgNotFound,
            PkgError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                JobErrorCode::PermissionDenied
            }
            // NoBackend, Spawn, CommandFailed, Parse, Io, and whatever the
            // package layer adds later.
            _ => JobErrorCode::PkgManagerError,
        }
    }
}

impl fmt::Display for JobErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of change an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEventKind {
    /// Status, progress or message changed (every create, update, completion, failure).
    Status,
    /// A log line was added (`log` holds it).
    Log,
}

/// One update of one job, as broadcast to subscribers (the WebSocket's
/// `job_status` shape plus log lines).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    pub kind: JobEventKind,
    pub job_id: Uuid,
    pub operation: JobOperation,
    pub status: JobStatus,
    pub progress: u8,
    pub message: String,
    pub timestamp: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// Where the engine gets the time from (`created_at`, `completed_at`, event stamps).
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until moved (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn set(&self, now: Timestamp) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = now;
    }

    /// Moves the clock forward by `by` (saturating at the largest timestamp).
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let span = jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
        *now = now.checked_add(span).unwrap_or(Timestamp::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use patchdeck_proto::BackendKind;

    use super::*;

    #[test]
    fn package_errors_map_to_stable_codes() {
        let locked = PkgError::Locked { backend: BackendKind::Apt, detail: "lock".into(), waited: Duration::ZERO };
        assert_eq!(JobErrorCode::for_pkg_error(&locked), JobErrorCode::Locked);
        assert!(JobErrorCode::Locked.is_retryable());
        let timeout = PkgError::Timeout { command: "apt-get".into(), timeout: Duration::from_secs(1) };
        assert_eq!(JobErrorCode::for_pkg_error(&timeout).as_str(), "TIMEOUT");
        let gone = PkgError::VersionUnavailable { name: "hello".into(), version: "1.0-1".into() };
        assert_eq!(JobErrorCode::for_pkg_error(&gone).as_str(), "VERSION_UNAVAILABLE");
        assert!(!JobErrorCode::VersionUnavailable.is_retryable());
        assert_eq!(JobErrorCode::for_pkg_error(&PkgError::NotInstalled("x".into())).as_str(), "PKG_NOT_FOUND");
        let missing =
            PkgError::Spawn { program: "apt-get".into(), source: std::io::Error::from(std::io::ErrorKind::NotFound) };
        assert_eq!(JobErrorCode::for_pkg_error(&missing).as_str(), "COMMAND_NOT_FOUND");
        let failed = PkgError::CommandFailed {
            command: "apt-get install".into(),
            status: "exit code 100".into(),
            detail: "E: Unable to locate package nothere".into(),
        };
        assert_eq!(JobErrorCode::for_pkg_error(&failed).as_str(), "PKG_NOT_FOUND");
        let other =
            PkgError::CommandFailed { command: "x".into(), status: "exit code 1".into(), detail: "boom".into() };
        assert_eq!(JobErrorCode::for_pkg_error(&other).as_str(), "PKG_MANAGER_ERROR");
    }

    #[test]
    fn recorded_changes_read_as_before_and_after() {
        let new = RecordedChange { name: "newdep".into(), arch: None, before: None, after: Some("1.0-1".into()) };
        assert_eq!(new.to_string(), "newdep: was not installed -> 1.0-1");
        let gone = RecordedChange { name: "x".into(), arch: Some("all".into()), before: Some("1".into()), after: None };
        assert_eq!(gone.to_string(), "x:all: 1 -> removed");
    }
}
