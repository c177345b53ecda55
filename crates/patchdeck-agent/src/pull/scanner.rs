//! The latest scan of pull mode: kept in memory with its [`inventory_hash`], and on disk
//! (`pull/inventory.json`) so that a restarted agent can answer "what is installed" at once.
//!
//! Scans run on a blocking thread, one at a time. A scanner that keeps failing is isolated by a
//! [`ScanBreaker`]: scheduled scans are skipped for a growing period (a scan the manager asks for
//! still runs), the failure is logged, and the last good report stays in use.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use patchdeck_proto::agent::inventory_hash;
use patchdeck_proto::ScanReport;

use super::backoff::ScanBreaker;
use super::fs;
use crate::jobs::PackageBackend;
use crate::scan::{self, Quiet, RefreshPolicy};

/// Why a scan has no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("skipped: the scanner failed {failures} times in a row and is isolated for a while")]
    Isolated { failures: u32 },
    #[error("{0}")]
    Failed(String),
}

#[derive(Debug)]
struct State {
    latest: Option<(Arc<ScanReport>, String)>,
    breaker: ScanBreaker,
    last_error: Option<String>,
}

/// The latest scan and how to make a new one.
#[derive(Debug)]
pub struct Scanner {
    backend: PackageBackend,
    path: PathBuf,
    state: Mutex<State>,
    running: tokio::sync::Mutex<()>,
}

impl Scanner {
    /// Loads the report a previous process left in `path`, if any.
    pub fn load(backend: PackageBackend, path: PathBuf) -> Scanner {
        let latest = match fs::read_json::<ScanReport>(&path) {
            Ok(Some(report)) => {
                let hash = inventory_hash(&report);
                Some((Arc::new(report), hash))
            }
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "ignoring the stored inventory; scanning anew");
                None
            }
        };
        let state = State { latest, breaker: ScanBreaker::standard(), last_error: None };
        Scanner { backend, path, state: Mutex::new(state), running: tokio::sync::Mutex::new(()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The latest good report and its hash.
    pub fn latest(&self) -> Option<(Arc<ScanReport>, String)> {
        self.state().latest.clone()
    }

    /// Whether the latest report says the host needs a reboot.
    pub fn reboot_required(&self) -> bool {
        self.state().latest.as_ref().is_some_and(|(r, _)| r.reboot.required)
    }

    /// The last scan failure, while the scanner is failing.
    pub fn last_error(&self) -> Option<String> {
        self.state().last_error.clone()
    }

    /// Whether a scheduled scan may run now.
    pub fn allows(&self, now: Instant) -> bool {
        self.state().breaker.allows(now)
    }

    /// Scans now. `requested`: the manager asked for it, so it runs even while the scanner is
    /// isolated. Returns the new report, or why there is none (the previous report stays).
    pub async fn scan(&self, policy: RefreshPolicy, requested: bool) -> Result<Arc<ScanReport>, ScanError> {
        {
            let state = self.state();
            if !requested && !state.breaker.allows(Instant::now()) {
                return Err(ScanError::Isolated { failures: state.breaker.consecutive_failures() });
            }
        }
        let _one_at_a_time = self.running.lock().await;
        let backend = self.backend.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let pm = patchdeck_pkg::open(backend.kind, backend.options.clone());
            scan::scan(pm.as_ref(), policy, &mut Quiet).map_err(|e| format!("{e:#}"))
        })
        .await
        .unwrap_or_else(|e| Err(format!("the scan worker failed: {e}")));
        let now = Instant::now();
        match outcome {
            Ok(report) => {
                let report = Arc::new(report);
                let hash = inventory_hash(&report);
                {
                    let mut state = self.state();
                    if state.breaker.record_success() {
                        tracing::info!("the scanner works again");
                    }
                    state.last_error = None;
                    state.latest = Some((Arc::clone(&report), hash.clone()));
                }
                if let Err(err) = fs::write_json(&self.path, report.as_ref(), fs::PUBLIC_MODE) {
                    tracing::warn!(path = %self.path.display(), %err, "could not store the inventory");
                }
                tracing::debug!(%hash, installed = report.installed.len(), updates = report.updates.len(), "scan finished");
                Ok(report)
            }
            Err(message) => {
                let mut state = self.state();
                let failures = state.breaker.consecutive_failures() + 1;
                match state.breaker.record_failure(now) {
                    Some(period) => tracing::error!(
                        error = %message, failures, skip_secs = period.as_secs(),
                        "the scanner keeps failing; scheduled scans are skipped for a while and the last good inventory is reported"
                    ),
                    None => tracing::warn!(error = %message, failures, "scan failed; the last good inventory stays"),
                }
                state.last_error = Some(message.clone());
                Err(ScanError::Failed(message))
            }
        }
    }
}
