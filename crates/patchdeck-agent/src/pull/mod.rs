//! Pull mode: the agent enrolls with a manager and then checks in over HTTPS (mutual TLS),
//! receiving signed commands and sending back their results. `docs/protocol.md` is the
//! specification; this module is its agent side.
//!
//! Entry points:
//! - [`enroll::enroll`]: enrollment (`patchdeck-agent enroll`, and `serve` when the config or
//!   the environment gives a server, a token and a way to trust the manager);
//! - [`run`]: the check-in loop of an enrolled agent, until shutdown;
//! - [`start`]: what `serve` calls: loads the identity, enrolls when it can and must, runs.
//!
//! State lives in `<state_dir>/pull/` (see [`identity`] for the layout); everything written
//! there is written atomically ([`fs`]).
//!
//! Module map: [`identity`] (state files, host facts), [`enroll`], [`client`] (HTTPS),
//! [`checkin`] (the loop), [`commands`] (verification and execution), [`outbox`] (results until
//! acknowledged), [`seen`] (replay store), [`ledger`] (command → job), [`scanner`] (the latest
//! inventory), [`renew`] (certificate renewal), [`backoff`] (retry timing and breakers),
//! [`metrics`] (`/proc`).

pub mod backoff;
pub mod checkin;
pub mod client;
pub mod commands;
pub mod enroll;
pub mod fs;
pub mod identity;
pub mod ledger;
pub mod metrics;
pub mod outbox;
pub mod renew;
pub mod scanner;
pub mod seen;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use checkin::run;
pub use enroll::{EnrollError, EnrollOptions, EnrollOutcome, EnrollProgress, Trust};
pub use identity::{Identity, PullPaths};

use crate::config::AgentConfig;
use crate::jobs::{Clock, JobEngine, PackageBackend, SystemClock};
use crate::scan::RefreshPolicy;

/// What the check-in loop needs besides the identity and the job engine.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub state_dir: PathBuf,
    /// Longest hold offered to the manager (`pull.wait_secs`).
    pub wait: Duration,
    /// Time between scheduled scans (`pull.scan_interval_secs`).
    pub scan_interval: Duration,
    /// Limit for requests other than check-ins, and the margin added to a check-in's hold.
    pub request_timeout: Duration,
    /// The package manager scans and dry runs use.
    pub backend: PackageBackend,
    /// Whether scheduled scans refresh the metadata first.
    pub refresh_policy: RefreshPolicy,
    /// Renew the certificate when less than this is left (besides the last third rule); from
    /// [`renew::RENEW_BEFORE_ENV`].
    pub renew_before: Option<Duration>,
    pub clock: Arc<dyn Clock>,
    /// Where the boot id is read for each check-in (`reboot.boot_id_path`).
    pub boot_id_path: PathBuf,
    /// How `health_check` commands check units and https probes (`health:`).
    pub health: crate::health::HealthSettings,
}

impl PullOptions {
    /// The options `serve` runs with.
    pub fn from_config(config: &AgentConfig, backend: PackageBackend) -> PullOptions {
        let pm = &config.package_manager;
        let refresh_policy = if pm.max_metadata_age_secs == 0 || !crate::scan::can_refresh(pm) {
            RefreshPolicy::Never
        } else {
            RefreshPolicy::OlderThan(Duration::from_secs(pm.max_metadata_age_secs))
        };
        PullOptions {
            state_dir: config.state_dir.clone(),
            wait: Duration::from_secs(config.pull.wait_secs),
            scan_interval: Duration::from_secs(config.pull.scan_interval_secs),
            request_timeout: Duration::from_secs(config.pull.request_timeout_secs),
            backend,
            refresh_policy,
            renew_before: renew::renew_before_from_env(),
            clock: Arc::new(SystemClock),
            boot_id_path: config.reboot.boot_id_path.clone(),
            health: crate::health::HealthSettings::from_config(&config.health),
        }
    }
}

/// The enrollment settings of the configuration (`pull:`, with the environment applied):
/// `Ok(None)` when no server or token is configured.
pub fn enroll_options(config: &AgentConfig) -> Result<Option<EnrollOptions>, EnrollError> {
    let pull = &config.pull;
    let (Some(server), Some(token)) = (&pull.server, &pull.enroll_token) else {
        return Ok(None);
    };
    let trust = match (&pull.ca_fingerprint, &pull.ca_cert) {
        (Some(fp), _) => Trust::Fingerprint(enroll::parse_fingerprint(fp).map_err(EnrollError::BadFingerprint)?),
        (None, Some(file)) => Trust::CaFile(file.clone()),
        (None, None) => return Err(EnrollError::NoTrust),
    };
    Ok(Some(EnrollOptions {
        server: server.clone(),
        token: token.clone(),
        trust,
        force: false,
        state_dir: config.state_dir.clone(),
        os_root: config.package_manager.root.clone(),
        request_timeout: Duration::from_secs(config.pull.request_timeout_secs),
        approval_retry: enroll::approval_retry_from_env(),
    }))
}

/// A test knob in whole seconds from the environment variable `name`: `None` when unset, and
/// (with a warning) when it is not a number.
pub(crate) fn secs_from_env(name: &str) -> Option<Duration> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => {
            tracing::warn!(value = %value, "{name} is not a number of seconds; ignored");
            None
        }
    }
}

/// Pull mode as `serve` runs it.
#[derive(Debug)]
pub struct PullHandle {
    pub task: tokio::task::JoinHandle<()>,
    /// For the start-up line: `pull mode: host 12 with https://…`.
    pub description: String,
}

/// Starts pull mode beside the rest of `serve` when it is enabled and the agent is enrolled or
/// can enroll (server, token and trust configured; enrollment is retried with backoff until it
/// succeeds). `None` when pull mode does not run (logged why).
pub fn start(
    config: &AgentConfig,
    engine: JobEngine,
    backend: PackageBackend,
    shutdown: watch::Receiver<bool>,
) -> Option<PullHandle> {
    if !config.pull.enabled {
        tracing::info!("pull mode disabled (pull.enabled: false)");
        return None;
    }
    let paths = PullPaths::new(&config.state_dir);
    let identity = match Identity::load(&paths) {
        Ok(identity) => identity,
        Err(err) => {
            tracing::error!(%err, "pull mode is off: the enrollment state is unusable (enroll again with --force)");
            return None;
        }
    };
    let options = PullOptions::from_config(config, backend);
    if let Some(identity) = identity {
        if let Some(server) = config.pull.server.as_deref().and_then(|s| client::normalize_server(s).ok()) {
            if server != identity.server {
                tracing::warn!(configured = %server, enrolled = %identity.server,
                    "pull.server differs from the manager this agent is enrolled with; using the enrolled one");
            }
        }
        let description = format!("pull mode: host {} with {}", identity.host_id, identity.server);
        let task = tokio::spawn(async move {
            if let Err(err) = run(options, identity, engine, shutdown).await {
                tracing::error!(error = %format!("{err:#}"), "pull mode stopped");
            }
        });
        return Some(PullHandle { task, description });
    }
    let enroll = match enroll_options(config) {
        Ok(Some(enroll)) => enroll,
        Ok(None) => {
            tracing::info!("pull mode: not enrolled; run `patchdeck-agent enroll` (or configure pull.server and pull.enroll_token)");
            return None;
        }
        Err(err) => {
            tracing::error!(%err, "pull mode is off: cannot enroll");
            return None;
        }
    };
    let description = format!("pull mode: enrolling with {}", enroll.server);
    let task = tokio::spawn(async move {
        let Some(identity) = enroll_until_done(enroll, shutdown.clone()).await else { return };
        if let Err(err) = run(options, identity, engine, shutdown).await {
            tracing::error!(error = %format!("{err:#}"), "pull mode stopped");
        }
    });
    Some(PullHandle { task, description })
}

/// Enrolls, retrying with backoff (1 s doubling to 5 minutes, full jitter) until it succeeds,
/// the configuration turns out to be unusable, or shutdown.
pub async fn enroll_until_done(options: EnrollOptions, mut shutdown: watch::Receiver<bool>) -> Option<Identity> {
    let mut policy = backoff::RetryPolicy::standard();
    let mut rng = backoff::SplitMix64::from_entropy();
    loop {
        let mut progress = |p: EnrollProgress| match p {
            EnrollProgress::CaTrusted { url, fingerprint } => {
                tracing::info!(%url, %fingerprint, "the manager's CA certificate matches the configured fingerprint")
            }
            EnrollProgress::Pending { host_id, retry_after, attempt } => tracing::info!(
                host.id = host_id,
                attempt,
                retry_secs = retry_after.as_secs(),
                "enrollment waits for an administrator's approval"
            ),
            EnrollProgress::Retrying { error, retry_after } => {
                tracing::warn!(%error, retry_secs = retry_after.as_secs(), "enrollment: the manager is unreachable")
            }
        };
        match enroll::enroll(&options, &mut progress, Some(shutdown.clone())).await {
            Ok(EnrollOutcome::Enrolled(identity) | EnrollOutcome::AlreadyEnrolled(identity)) => {
                tracing::info!(
                    host.id = identity.host_id,
                    server = %identity.server,
                    command_key = %identity.command_key_fingerprint,
                    "enrolled"
                );
                return Some(identity);
            }
            Err(EnrollError::Stopped) => return None,
            Err(err) if err.is_configuration() => {
                tracing::error!(%err, "pull mode is off: cannot enroll");
                return None;
            }
            Err(err) => {
                let kind = match &err {
                    EnrollError::Client(client) => client.failure_kind(),
                    _ => backoff::FailureKind::Transient,
                };
                let (delay, _) = policy.on_failure(kind, std::time::Instant::now(), &mut rng);
                tracing::error!(%err, retry_secs = delay.as_secs(), "enrollment failed; trying again");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait_for(|stopped| *stopped) => return None,
                }
            }
        }
    }
}
