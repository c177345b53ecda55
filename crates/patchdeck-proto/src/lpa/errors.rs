//! Error codes (contract §3.5): the `error.code` of every failed response,
//! the `error_code` of a failed job and of a WebSocket failure event.
//!
//! Codes are spelled SCREAMING_SNAKE_CASE on the wire. A code this build
//! does not know (a newer agent, a manager extension) deserialises to
//! [`ErrorCode::UnknownError`] instead of failing the whole response, as the
//! contract requires.
//!
//! Sources and our choices, where they disagree or say nothing:
//! - HTTP statuses are the upstream code's where it has one, else its docs'.
//! - Codes that only ever appear in a job's `error_code` (the job codes of
//!   reference §2.8) never become an HTTP status; [`ErrorCode::http_status`]
//!   answers 500 for them so that a caller always has a status.
//! - Retryability follows the upstream code where it was read
//!   (`PKG_MANAGER_ERROR`, `JOB_CREATE_ERROR`, `SYSTEM_INFO_ERROR`, `QUEUE_FULL`
//!   retryable). Beyond that, "come back later" conditions (queue full, rate
//!   limit, self-update in progress, admission closed, unhealthy) and transient
//!   internal failures are retryable; anything the caller must change
//!   (validation, not found, not allowed, blocked reboot) is not.
//! - The codes our own agent's job engine emits are listed too, so that
//!   they survive a round trip through this type instead of becoming
//!   `UNKNOWN_ERROR`; their retryability matches the engine's.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $wire:literal, $status:literal, $retry:literal; )+) => {
        /// An error code of the contract. See the module docs for where each
        /// comes from. Serialised as its SCREAMING_SNAKE_CASE spelling.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )+ ];

            /// The wire spelling, e.g. `QUEUE_FULL`.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $wire, )+ }
            }

            /// The HTTP status a response with this code carries.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )+ }
            }

            /// Whether the same request may succeed if simply sent again
            /// later; the default for [`super::ApiError::retryable`].
            pub fn retryable(self) -> bool {
                match self { $( ErrorCode::$variant => $retry, )+ }
            }

            /// The code for a wire spelling; `None` if it is not one we know.
            pub fn parse(s: &str) -> Option<ErrorCode> {
                match s { $( $wire => Some(ErrorCode::$variant), )+ _ => None }
            }
        }
    };
}

error_codes! {
    // ---- REST envelope codes seen in the upstream code ----
    /// A request broke a rule or had the wrong shape (400). `details.field` names the field.
    ValidationError = "VALIDATION_ERROR", 400, false;
    /// The package is not known to the package manager (404; also a job code).
    PkgNotFound = "PKG_NOT_FOUND", 404, false;
    /// The package manager failed (500, retryable; also a job code).
    PkgManagerError = "PKG_MANAGER_ERROR", 500, true;
    /// Too many pending and running jobs (429, retryable, `Retry-After: 60`).
    QueueFull = "QUEUE_FULL", 429, true;
    /// The job could not be created (500, retryable).
    JobCreateError = "JOB_CREATE_ERROR", 500, true;
    /// A self-update holds the mutation lock (409, retryable, `Retry-After: 60`).
    SelfUpdateInProgress = "SELF_UPDATE_IN_PROGRESS", 409, true;
    /// A reboot was refused because jobs are active and `force` was not set (409).
    RebootBlocked = "REBOOT_BLOCKED", 409, false;
    /// System information could not be read (500, retryable).
    SystemInfoError = "SYSTEM_INFO_ERROR", 500, true;
    /// The `{id}` in a job path is not a UUID (400).
    InvalidJobId = "INVALID_JOB_ID", 400, false;
    /// No job has this id (404).
    JobNotFound = "JOB_NOT_FOUND", 404, false;
    /// Only failed or completed jobs can be rolled back (400).
    RollbackNotAllowed = "ROLLBACK_NOT_ALLOWED", 400, false;
    /// Only terminal jobs can be deleted (409).
    DeleteNotAllowed = "DELETE_NOT_ALLOWED", 409, false;
    /// Deleting the job failed (500, retryable).
    JobDeleteError = "JOB_DELETE_ERROR", 500, true;
    /// The `{name}` of `GET /system/services/{name}` broke the service-name rule (400).
    InvalidServiceName = "INVALID_SERVICE_NAME", 400, false;
    /// No such service (404).
    ServiceNotFound = "SERVICE_NOT_FOUND", 404, false;
    /// The service manager could not be asked (500, retryable).
    ServiceStatusError = "SERVICE_STATUS_ERROR", 500, true;
    /// `POST /packages/install-file` is switched off (403).
    FileInstallDisabled = "FILE_INSTALL_DISABLED", 403, false;
    /// The uploaded package file is over the size cap (413).
    FileTooLarge = "FILE_TOO_LARGE", 413, false;
    /// The multipart field `package` is missing (400).
    MissingFile = "MISSING_FILE", 400, false;
    /// The uploaded file name is not acceptable (400).
    InvalidFilename = "INVALID_FILENAME", 400, false;
    /// The uploaded file's extension does not suit this host's backend (400).
    InvalidExtension = "INVALID_EXTENSION", 400, false;
    /// The upload could not be staged on disk (500, retryable).
    StagingError = "STAGING_ERROR", 500, true;
    /// A forced reboot was refused while the package database is being changed (409; later upstream code).
    PackageDbMutationInProgress = "PACKAGE_DB_MUTATION_IN_PROGRESS", 409, false;
    /// The agent is shutting down or recovering and takes no new jobs (409, retryable; later upstream code).
    AdmissionClosed = "ADMISSION_CLOSED", 409, true;

    // ---- Codes only in the upstream docs (API_SPEC, API_DOCUMENTATION) ----
    /// Client certificate invalid (401; in practice the handshake fails instead).
    AuthInvalidCert = "AUTH_INVALID_CERT", 401, false;
    /// Client certificate expired (401; in practice the handshake fails instead).
    AuthCertExpired = "AUTH_CERT_EXPIRED", 401, false;
    /// Source IP not whitelisted (403; in practice the connection is dropped instead).
    AuthzIpDenied = "AUTHZ_IP_DENIED", 403, false;
    /// A job ran past its time limit (408, retryable; also a job code of our agent).
    JobTimeout = "JOB_TIMEOUT", 408, true;
    /// Configuration is invalid (400).
    ConfigInvalid = "CONFIG_INVALID", 400, false;
    /// The agent is unhealthy (503, retryable).
    ServiceUnhealthy = "SERVICE_UNHEALTHY", 503, true;
    /// The manager has no repo configuration for this distro (404).
    PkiRepoConfigUnavailable = "PKI_REPO_CONFIG_UNAVAILABLE", 404, false;
    /// Dependencies could not be resolved (409).
    PkgDependencyError = "PKG_DEPENDENCY_ERROR", 409, false;
    /// The requested version conflicts with what is installed (409).
    PkgVersionConflict = "PKG_VERSION_CONFLICT", 409, false;
    /// No such patch (404).
    PatchNotFound = "PATCH_NOT_FOUND", 404, false;
    /// Applying patches failed (500, retryable).
    PatchApplyError = "PATCH_APPLY_ERROR", 500, true;
    /// The job was cancelled (409).
    JobCancelled = "JOB_CANCELLED", 409, false;
    /// Reloading configuration failed (500).
    ConfigReloadError = "CONFIG_RELOAD_ERROR", 500, false;
    /// Rebooting failed (500).
    SystemRebootError = "SYSTEM_REBOOT_ERROR", 500, false;
    /// The request is malformed (400).
    InvalidRequest = "INVALID_REQUEST", 400, false;
    /// Per-IP rate limit hit (429, retryable, `details.retry_after_seconds`).
    RateLimitExceeded = "RATE_LIMIT_EXCEEDED", 429, true;

    // ---- Enrollment (agent → manager, reference §2.3 and §3.7) ----
    /// The manager's operator denied the enrollment (403).
    EnrollmentDenied = "ENROLLMENT_DENIED", 403, false;
    /// The polling token or the approved bundle expired (404).
    EnrollmentExpired = "ENROLLMENT_EXPIRED", 404, false;
    /// The agent gave up polling after 1440 attempts (408; agent-side outcome).
    EnrollmentTimeout = "ENROLLMENT_TIMEOUT", 408, false;
    /// Enrollment requests from this IP are rate-limited (429, retryable).
    EnrollmentRateLimited = "ENROLLMENT_RATE_LIMITED", 429, true;
    /// Writing the issued certificates failed (500, retryable).
    PkiProvisionFailed = "PKI_PROVISION_FAILED", 500, true;

    // ---- Job error codes (a job's `error_code`; never an HTTP status, 500 here) ----
    /// The package manager's executable is missing.
    CommandNotFound = "COMMAND_NOT_FOUND", 500, false;
    /// Refreshing the package index failed.
    CacheRefreshError = "CACHE_REFRESH_ERROR", 500, true;
    /// A mirror or repository could not be reached.
    NetworkError = "NETWORK_ERROR", 500, true;
    /// A signature or key check failed.
    GpgError = "GPG_ERROR", 500, false;
    /// The package manager refused because of conflicting dependencies.
    DependencyConflict = "DEPENDENCY_CONFLICT", 500, false;
    /// The package manager was denied access.
    PermissionDenied = "PERMISSION_DENIED", 500, false;
    /// The reboot command failed.
    RebootError = "REBOOT_ERROR", 500, false;
    /// A command ran past its time limit and was killed.
    Timeout = "TIMEOUT", 500, true;
    /// Anything else, and every code this build does not know.
    UnknownError = "UNKNOWN_ERROR", 500, false;

    // ---- Ours: job codes of our agent's job engine (crates/patchdeck-agent/src/jobs) ----
    /// The requested version is not offered by any repository.
    VersionUnavailable = "VERSION_UNAVAILABLE", 500, false;
    /// Another process holds the package manager's lock.
    Locked = "LOCKED", 500, true;
    /// This host's package manager cannot do the operation.
    UnsupportedOperation = "UNSUPPORTED_OPERATION", 500, false;
    /// The agent restarted while the job ran; the job's outcome is unknown.
    AgentRestarted = "AGENT_RESTARTED", 500, false;
    /// The operation ran but the result was not what was asked for.
    VerificationFailed = "VERIFICATION_FAILED", 500, false;

    // ---- Ours: REST ----
    /// An exclusive job (a rollback) is running; no other job is admitted (409, retryable).
    ExclusiveInProgress = "EXCLUSIVE_IN_PROGRESS", 409, true;
    /// No route matches the path (404). Ours: upstream answered with an empty 404.
    NotFound = "NOT_FOUND", 404, false;
    /// The route exists but not for this method (405, with `Allow`). Ours.
    MethodNotAllowed = "METHOD_NOT_ALLOWED", 405, false;
    /// The body is larger than the server accepts (413). Ours.
    PayloadTooLarge = "PAYLOAD_TOO_LARGE", 413, false;
    /// A bug or an unexpected internal failure (500). Ours; the manager's client names it as an example.
    InternalError = "INTERNAL_ERROR", 500, false;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    /// Any string is accepted; one we do not know becomes `UNKNOWN_ERROR`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&s).unwrap_or(ErrorCode::UnknownError))
    }
}
