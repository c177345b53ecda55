//! The package layer's one error type.

use std::path::PathBuf;
use std::time::Duration;

use patchdeck_proto::BackendKind;

/// Everything that can go wrong in the package layer.
///
/// Every variant names what was wrong (the package, the command, the line of
/// output), so that the message alone tells a user what happened.
#[derive(Debug, thiserror::Error)]
pub enum PkgError {
    /// A package name or version given to us failed validation.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput { what: &'static str, value: String, reason: String },
    /// No supported package manager on this host (or under this root).
    #[error("no supported package manager found: {0}")]
    NoBackend(String),
    /// The operation is not something this backend can do.
    #[error("the {backend} backend cannot {what}")]
    Unsupported { backend: BackendKind, what: &'static str },
    /// A child process could not be started (usually: the program is not installed).
    #[error("could not start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// A child process ran longer than its timeout and was killed.
    #[error("`{command}` did not finish within {}s and was stopped", timeout.as_secs())]
    Timeout { command: String, timeout: Duration },
    /// Another process holds the package manager's lock; retry later.
    #[error("the {backend} package database is locked by another process ({detail}); gave up after {}s, try again later", waited.as_secs())]
    Locked { backend: BackendKind, detail: String, waited: Duration },
    /// A child process exited with a failure status.
    #[error("`{command}` failed ({status}): {detail}")]
    CommandFailed { command: String, status: String, detail: String },
    /// The package manager printed something we do not understand.
    #[error("unexpected output from `{command}` on line {line_no}: {line:?} ({reason})")]
    Parse { command: String, line_no: usize, line: String, reason: String },
    /// The package manager planned something the operation promises not to do.
    #[error("{operation} refused: {reason}")]
    PlanRefused { operation: String, reason: String },
    /// An exact version was asked for that no configured repository offers.
    #[error("{name} version {version} is not available from any configured repository")]
    VersionUnavailable { name: String, version: String },
    /// A package that must be installed (for upgrade or downgrade) is not.
    #[error("{0} is not installed")]
    NotInstalled(String),
    /// A file the package layer reads could not be read.
    #[error("could not read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PkgError {
    /// Whether the same call may succeed if simply tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PkgError::Locked { .. } | PkgError::Timeout { .. })
    }

    pub(crate) fn invalid(what: &'static str, value: &str, reason: impl Into<String>) -> Self {
        PkgError::InvalidInput { what, value: value.to_owned(), reason: reason.into() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PkgError::Io { path: path.into(), source }
    }
}

/// Result alias of the package layer.
pub type Result<T, E = PkgError> = std::result::Result<T, E>;

impl PkgError {
    /// A [`PkgError::Parse`] for line `line_no` (1-based) of `command`'s output.
    pub(crate) fn parse(command: &crate::exec::Cmd, line_no: usize, line: &str, reason: impl Into<String>) -> Self {
        PkgError::Parse { command: command.to_string(), line_no, line: line.to_owned(), reason: reason.into() }
    }
}
