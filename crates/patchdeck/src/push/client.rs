//! The manager's client of an agent's Linux_Patch_API (`https://HOST:12443/api/v1`, contract §3):
//! mutual TLS 1.3 with the manager's push client certificate ([`super::identity`]), the internal
//! CA as the only root.
//!
//! - Reads: [`PushClient::health`], [`PushClient::system_info`], [`PushClient::packages`]
//!   (every page), [`PushClient::updates`], [`PushClient::job`], and [`PushClient::scan`], which
//!   turns the three reads into our [`ScanReport`].
//! - Commands: [`PushClient::submit`] maps one of our [`Command`]s to the contract's endpoints
//!   (table below) and says which agent jobs it started, or what it did at once.
//! - Jobs: [`PushClient::follow_job`] streams a job's status from the contract's WebSocket
//!   (`/api/v1/ws/jobs`), falling back to polling `GET /api/v1/jobs/{id}` when the socket cannot
//!   be opened or fails; the last update carries the job's full record, which
//!   [`super::convert::job_result`] turns into our [`CommandResult`].
//!
//! | our command | the contract |
//! |---|---|
//! | `upgrade` all | `POST /patches/apply` `{packages: []}` (one job) |
//! | `upgrade` security | `GET /patches`, then `POST /patches/apply` with the critical and high ones (nothing to do when there are none) |
//! | `upgrade` `name=version`… | `PUT /packages/{name}` `{version}` per package (one job each; the frozen versions are kept exactly) |
//! | `install` | `POST /packages` `{packages: [{name, version?}]}` (one job) |
//! | `remove` | `DELETE /packages/{name}` per package (one job each) |
//! | `rollback` of a command | `POST /jobs/{job}/rollback` of the agent job that ran it ([`SubmitContext`]) |
//! | `reboot` | `POST /system/reboot` `{delay_seconds, force}` |
//! | `scan` | `GET /health` when `refresh` (a stale index makes the agent refresh it), then the inventory reads; no job |
//! | `refresh_metadata` | `GET /health`: the contract has no call that forces a refresh; the agent refreshes a stale index, and before every patch apply |
//! | any `dry_run`, `heartbeat` | refused: [`PushError::Unsupported`] |

use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{SinkExt, Stream, StreamExt};
use jiff::Timestamp;
use patchdeck_proto::agent::{Command, CommandResult, Selection, Subsystem};
use patchdeck_proto::lpa::jobs::{JobDetail, JobOperation, JobStatus};
use patchdeck_proto::lpa::{
    ApiError, CacheStatus, ClientMessage, Envelope, ErrorCode, Health, InstallRequest, JobAccepted, Package,
    PackageList, PackageSpec, PatchApplyRequest, PatchList, RebootAccepted, RebootRequest, RollbackAccepted,
    ServerEvent, SystemInfo, UpdateRequest,
};
use patchdeck_proto::ScanReport;
use rustls::pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use url::Url;
use uuid::Uuid;

use super::convert::{self, ConvertError};
use super::identity::{IdentityError, PushIdentity};

/// The contract's port.
pub const DEFAULT_PORT: u16 = 12443;

/// Largest page of `GET /api/v1/packages` the contract allows.
const PACKAGE_PAGE: usize = 1000;

/// Timeouts and intervals of push clients.
#[derive(Debug, Clone)]
pub struct PushClientOptions {
    /// The agents' port.
    pub port: u16,
    /// TCP connect and TLS handshake, together.
    pub connect_timeout: Duration,
    /// A whole request, from connecting to the last byte of the answer.
    pub request_timeout: Duration,
    /// How often [`PushClient::follow_job`] reads the job when it polls.
    pub poll_interval: Duration,
    /// While following over the WebSocket, the job is also read this often, in case the socket
    /// skipped an event (the agent drops events for a client that falls behind).
    pub socket_check_interval: Duration,
    /// The WebSocket counts as dead after this long without a frame (the agent pings every 5 s).
    pub socket_idle: Duration,
    /// Polling gives up after this many failed reads in a row.
    pub poll_failures: u32,
    /// [`PushClient::follow_job`] gives up after this long (agents time jobs out after 30 min).
    pub follow_limit: Duration,
}

impl Default for PushClientOptions {
    fn default() -> Self {
        PushClientOptions {
            port: DEFAULT_PORT,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(2),
            socket_check_interval: Duration::from_secs(30),
            socket_idle: Duration::from_secs(20),
            poll_failures: 5,
            follow_limit: Duration::from_secs(2 * 3600),
        }
    }
}

/// Why a call to an agent failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    /// No connection: refused, no route, a name that does not resolve, or no answer in time.
    #[error("{host} is unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    /// The TLS handshake failed: a certificate was refused (by us or by the agent), or the agent
    /// closed the connection during the handshake (ADR 0003: an address off its allow-list or a
    /// certificate it does not accept sees nothing else).
    #[error("TLS with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    /// The agent answered with an HTTP error; `error` is the contract's error body (or, for an
    /// answer without one, an `UNKNOWN_ERROR` describing it).
    #[error("{host} answered {what} with HTTP {status}: {} ({})", error.code, error.message)]
    Http { host: String, what: String, status: u16, error: Box<ApiError>, retry_after: Option<Duration> },
    /// An answer that is not what the contract says.
    #[error("could not read the answer of {host} to {what}: {reason}")]
    Decode { host: String, what: String, reason: String },
    /// The answers are fine but do not make an inventory.
    #[error("{host}: {source}")]
    Inventory { host: String, source: ConvertError },
    /// The command cannot be done through the contract.
    #[error("{what} is not supported over the Linux_Patch_API: {why}")]
    Unsupported { what: String, why: String },
    /// The command itself is wrong (names nothing, a malformed `name=version`, a rollback of a
    /// command that ran no job).
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    /// The host name or address cannot be made into a URL.
    #[error("{0:?} is not a host name or address")]
    InvalidTarget(String),
    /// The client's own certificate cannot be used.
    #[error(transparent)]
    Identity(#[from] Arc<IdentityError>),
    /// A command of several jobs (one per package) was refused part way: `accepted` are
    /// running on the agent and must still be followed; `source` is why the next was refused.
    #[error("{source} (after {} job(s) were accepted)", accepted.len())]
    PartlySubmitted { accepted: Vec<AcceptedJob>, source: Box<PushError> },
    /// [`PushClient::follow_job`] gave up waiting.
    #[error("job {job_id} on {host} did not end within {limit:?}")]
    FollowTimeout { host: String, job_id: Uuid, limit: Duration },
}

impl PushError {
    /// `error`, or [`PushError::PartlySubmitted`] when jobs were already accepted.
    fn partly(accepted: Vec<AcceptedJob>, error: PushError) -> PushError {
        if accepted.is_empty() {
            error
        } else {
            PushError::PartlySubmitted { accepted, source: Box::new(error) }
        }
    }

    /// A stable code for a command result's error: the contract's code for HTTP errors, else
    /// `HOST_UNREACHABLE`, `TLS_ERROR`, `DECODE_ERROR`, `INVENTORY_ERROR`,
    /// `UNSUPPORTED_OPERATION`, `VALIDATION_ERROR`, `INVALID_TARGET`, `CLIENT_CERTIFICATE_ERROR`
    /// or `FOLLOW_TIMEOUT` (for a command refused part way, the refusal's code).
    pub fn code(&self) -> &str {
        match self {
            PushError::Unreachable { .. } => "HOST_UNREACHABLE",
            PushError::Tls { .. } => "TLS_ERROR",
            PushError::Http { error, .. } => error.code.as_str(),
            PushError::Decode { .. } => "DECODE_ERROR",
            PushError::Inventory { .. } => "INVENTORY_ERROR",
            PushError::Unsupported { .. } => ErrorCode::UnsupportedOperation.as_str(),
            PushError::InvalidCommand(_) => ErrorCode::ValidationError.as_str(),
            PushError::InvalidTarget(_) => "INVALID_TARGET",
            PushError::Identity(_) => "CLIENT_CERTIFICATE_ERROR",
            PushError::FollowTimeout { .. } => "FOLLOW_TIMEOUT",
            PushError::PartlySubmitted { source, .. } => source.code(),
        }
    }

    /// Whether the same call may succeed later: the host was unreachable, or the agent said
    /// so (`retryable`, 429, 503). Never for [`PushError::PartlySubmitted`]: part of the
    /// command is running.
    pub fn is_retryable(&self) -> bool {
        match self {
            PushError::Unreachable { .. } => true,
            PushError::Http { status, error, .. } => error.retryable || *status == 429 || *status == 503,
            _ => false,
        }
    }
}

/// What every client shares: one connection pool and the TLS configurations of the manager's
/// push client certificate. Cheap to clone.
#[derive(Clone)]
pub struct PushConnector {
    http: reqwest::Client,
    socket_tls: Arc<rustls::ClientConfig>,
    options: Arc<PushClientOptions>,
}

impl fmt::Debug for PushConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConnector").field("options", &self.options).finish_non_exhaustive()
    }
}

impl PushConnector {
    /// Clients that present `identity` and trust only its CA.
    pub fn new(identity: &PushIdentity, options: PushClientOptions) -> Result<PushConnector, PushError> {
        let identity_error = |e: IdentityError| PushError::Identity(Arc::new(e));
        let http_tls = identity.tls_config(&[b"h2", b"http/1.1"]).map_err(identity_error)?;
        let socket_tls = identity.tls_config(&[b"http/1.1"]).map_err(identity_error)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(Arc::unwrap_or_clone(http_tls))
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("patchdeck/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                PushError::Identity(Arc::new(IdentityError::Invalid { what: "HTTP client", reason: e.to_string() }))
            })?;
        Ok(PushConnector { http, socket_tls, options: Arc::new(options) })
    }

    /// The options every client of this connector uses.
    pub fn options(&self) -> &PushClientOptions {
        &self.options
    }

    /// A client of the agent on `host` (a DNS name, an IPv4 address, or an IPv6 address with or
    /// without brackets) at the configured port.
    pub fn client(&self, host: &str) -> Result<PushClient, PushError> {
        self.client_at(host, self.options.port)
    }

    /// A client of the agent on `host` at `port`.
    pub fn client_at(&self, host: &str, port: u16) -> Result<PushClient, PushError> {
        let bare = host.trim().trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return Err(PushError::InvalidTarget(host.to_owned()));
        }
        let ip: Option<std::net::IpAddr> = bare.parse().ok();
        let authority = match ip {
            Some(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{bare}:{port}"),
        };
        let base =
            Url::parse(&format!("https://{authority}/")).map_err(|_| PushError::InvalidTarget(host.to_owned()))?;
        let clean = base.username().is_empty() && base.password().is_none() && base.fragment().is_none();
        if base.host_str().is_none() || base.path() != "/" || base.query().is_some() || !clean {
            return Err(PushError::InvalidTarget(host.to_owned()));
        }
        let server_name = match ip {
            Some(ip) => ServerName::IpAddress(ip.into()),
            None => ServerName::try_from(bare.to_owned()).map_err(|_| PushError::InvalidTarget(host.to_owned()))?,
        };
        Ok(PushClient {
            http: self.http.clone(),
            socket_tls: self.socket_tls.clone(),
            options: self.options.clone(),
            base,
            host: bare.to_owned(),
            port,
            target: authority,
            server_name,
        })
    }
}

/// A client of one agent. Cheap to clone.
#[derive(Clone)]
pub struct PushClient {
    http: reqwest::Client,
    socket_tls: Arc<rustls::ClientConfig>,
    options: Arc<PushClientOptions>,
    base: Url,
    host: String,
    port: u16,
    /// `host:port`, as errors name it.
    target: String,
    server_name: ServerName<'static>,
}

impl fmt::Debug for PushClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushClient").field("target", &self.target).finish_non_exhaustive()
    }
}

/// What [`PushClient::submit_with`] needs besides the command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitContext {
    /// For a `rollback`: the agent job that ran the command being rolled back (from that
    /// command's result).
    pub rollback_job_id: Option<Uuid>,
}

/// What a submitted command started.
#[derive(Debug, Clone)]
pub enum Submission {
    /// Agent jobs, in the order they were created (several for an update or removal of several
    /// packages). Follow each to its end.
    Jobs(Vec<AcceptedJob>),
    /// Nothing was left running: a scan, a metadata refresh, a security upgrade with nothing
    /// to do.
    Done(Immediate),
}

/// One job an agent accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedJob {
    pub job_id: Uuid,
    pub operation: JobOperation,
    /// What it was asked to do, e.g. `update hello to 1.1-1`.
    pub label: String,
}

/// The outcome of a command that ran no job.
#[derive(Debug, Clone)]
pub struct Immediate {
    /// What was done, for the command's output.
    pub output: String,
    /// A fresh inventory, when the command read one.
    pub inventory: Option<Box<ScanReport>>,
}

impl Immediate {
    /// This outcome as the completed result of command `command_id`.
    pub fn result(&self, command_id: Uuid, at: Timestamp) -> CommandResult {
        CommandResult {
            command_id,
            state: patchdeck_proto::agent::CommandState::Completed,
            at,
            job_id: None,
            error: None,
            output: convert::truncate_output(self.output.clone()),
            changes: Vec::new(),
            reboot_required: self.inventory.as_ref().is_some_and(|r| r.reboot.required),
            hooks: Vec::new(),
            checks: Vec::new(),
            preview: None,
        }
    }
}

impl PushClient {
    /// `host:port`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// `GET /api/v1/health`.
    pub async fn health(&self) -> Result<Health, PushError> {
        self.get("api/v1/health", "GET /api/v1/health").await
    }

    /// `GET /api/v1/system/info`.
    pub async fn system_info(&self) -> Result<SystemInfo, PushError> {
        self.get("api/v1/system/info", "GET /api/v1/system/info").await
    }

    /// Every installed package: `GET /api/v1/packages`, page after page (an agent that does not
    /// page answers everything at once).
    pub async fn packages(&self) -> Result<Vec<Package>, PushError> {
        let mut all: Vec<Package> = Vec::new();
        loop {
            let path = format!("api/v1/packages?limit={PACKAGE_PAGE}&offset={}", all.len());
            let page: PackageList = self.get(&path, "GET /api/v1/packages").await?;
            let n = page.packages.len();
            all.extend(page.packages);
            if n == 0 || n < PACKAGE_PAGE || all.len() as u64 >= page.total {
                return Ok(all);
            }
        }
    }

    /// The pending updates: `GET /api/v1/patches`.
    pub async fn updates(&self) -> Result<PatchList, PushError> {
        self.get("api/v1/patches", "GET /api/v1/patches").await
    }

    /// `GET /api/v1/jobs/{id}`.
    pub async fn job(&self, job_id: Uuid) -> Result<JobDetail, PushError> {
        self.get(&format!("api/v1/jobs/{job_id}"), "GET /api/v1/jobs/{id}").await
    }

    /// The host's inventory: system info, packages and patches ([`convert::scan_report`]).
    pub async fn scan(&self) -> Result<ScanReport, PushError> {
        let info = self.system_info().await?;
        let packages = self.packages().await?;
        let patches = self.updates().await?;
        convert::scan_report(&info, &packages, &patches.patches, Timestamp::now())
            .map_err(|source| PushError::Inventory { host: self.target.clone(), source })
    }

    /// `POST /api/v1/packages`.
    pub async fn install(&self, packages: Vec<PackageSpec>) -> Result<JobAccepted, PushError> {
        let body = InstallRequest { packages, options: None };
        self.send(reqwest::Method::POST, "api/v1/packages", Some(&body), "POST /api/v1/packages").await
    }

    /// `PUT /api/v1/packages/{name}`: to `version`, or to the newest.
    pub async fn update(&self, name: &str, version: Option<String>) -> Result<JobAccepted, PushError> {
        let body = UpdateRequest { version, options: None };
        let path = package_path(name)?;
        self.send(reqwest::Method::PUT, &path, Some(&body), "PUT /api/v1/packages/{name}").await
    }

    /// `DELETE /api/v1/packages/{name}`.
    pub async fn remove(&self, name: &str) -> Result<JobAccepted, PushError> {
        let path = package_path(name)?;
        self.send::<(), _>(reqwest::Method::DELETE, &path, None, "DELETE /api/v1/packages/{name}").await
    }

    /// `POST /api/v1/patches/apply`.
    pub async fn apply_patches(&self, request: &PatchApplyRequest) -> Result<JobAccepted, PushError> {
        self.send(reqwest::Method::POST, "api/v1/patches/apply", Some(request), "POST /api/v1/patches/apply").await
    }

    /// `POST /api/v1/system/reboot`.
    pub async fn reboot(&self, request: &RebootRequest) -> Result<RebootAccepted, PushError> {
        self.send(reqwest::Method::POST, "api/v1/system/reboot", Some(request), "POST /api/v1/system/reboot").await
    }

    /// `POST /api/v1/jobs/{id}/rollback`.
    pub async fn rollback(&self, job_id: Uuid) -> Result<RollbackAccepted, PushError> {
        let path = format!("api/v1/jobs/{job_id}/rollback");
        self.send::<(), _>(reqwest::Method::POST, &path, None, "POST /api/v1/jobs/{id}/rollback").await
    }

    /// [`Self::submit_with`] without context (enough for every command but `rollback`).
    pub async fn submit(&self, command: &Command) -> Result<Submission, PushError> {
        self.submit_with(command, &SubmitContext::default()).await
    }

    /// Does `command` through the contract (the table in the module docs).
    pub async fn submit_with(&self, command: &Command, context: &SubmitContext) -> Result<Submission, PushError> {
        let job = |a: JobAccepted, label: String| AcceptedJob { job_id: a.job_id, operation: a.operation, label };
        match command {
            Command::Upgrade { dry_run: true, .. }
            | Command::Install { dry_run: true, .. }
            | Command::Remove { dry_run: true, .. } => Err(PushError::Unsupported {
                what: format!("a dry run of {}", command.kind()),
                why: "the contract has no dry run: every job an agent accepts changes the host".into(),
            }),
            Command::Heartbeat { .. } => Err(PushError::Unsupported {
                what: "heartbeat".into(),
                why: "rapid check-in is for agents that check in (pull mode); push hosts are polled".into(),
            }),
            Command::Scan { subsystems, refresh } => self.scan_command(subsystems, *refresh).await,
            Command::RefreshMetadata => {
                let health = self.health().await?;
                Ok(Submission::Done(Immediate { output: describe_cache(&health), inventory: None }))
            }
            Command::Upgrade { selection: Selection::All, .. } => {
                let request =
                    PatchApplyRequest { packages: Some(Vec::new()), allow_reboot: false, reboot_delay_seconds: 0 };
                let accepted = self.apply_patches(&request).await?;
                Ok(Submission::Jobs(vec![job(accepted, "apply every pending update".into())]))
            }
            Command::Upgrade { selection: Selection::Security, .. } => {
                let patches = self.updates().await?;
                let names: Vec<String> = patches
                    .patches
                    .iter()
                    .filter(|p| p.severity.is_security_update())
                    .map(|p| p.name.clone())
                    .collect();
                if names.is_empty() {
                    let output =
                        "no security updates are pending on the agent (none rated critical or high); nothing to do";
                    return Ok(Submission::Done(Immediate { output: output.into(), inventory: None }));
                }
                let label = format!("apply the security updates of {}", names.join(" "));
                let request = PatchApplyRequest { packages: Some(names), allow_reboot: false, reboot_delay_seconds: 0 };
                let accepted = self.apply_patches(&request).await?;
                Ok(Submission::Jobs(vec![job(accepted, label)]))
            }
            Command::Upgrade { selection: Selection::Packages { packages }, .. } => {
                let specs = parse_specs(packages)?;
                let mut jobs = Vec::with_capacity(specs.len());
                for spec in specs {
                    let label = match &spec.version {
                        Some(v) => format!("update {} to {v}", spec.name),
                        None => format!("update {} to its newest version", spec.name),
                    };
                    match self.update(&spec.name, spec.version.clone()).await {
                        Ok(accepted) => jobs.push(job(accepted, label)),
                        Err(e) => return Err(PushError::partly(jobs, e)),
                    }
                }
                Ok(Submission::Jobs(jobs))
            }
            Command::Install { packages, .. } => {
                let specs = parse_specs(packages)?;
                let label = format!("install {}", packages.join(" "));
                let accepted = self.install(specs).await?;
                Ok(Submission::Jobs(vec![job(accepted, label)]))
            }
            Command::Remove { packages, .. } => {
                if packages.is_empty() {
                    return Err(PushError::InvalidCommand("remove names no package".into()));
                }
                let mut jobs = Vec::with_capacity(packages.len());
                for name in packages {
                    match self.remove(name).await {
                        Ok(accepted) => jobs.push(job(accepted, format!("remove {name}"))),
                        Err(e) => return Err(PushError::partly(jobs, e)),
                    }
                }
                Ok(Submission::Jobs(jobs))
            }
            Command::Rollback { command_id } => {
                let Some(original) = context.rollback_job_id else {
                    return Err(PushError::InvalidCommand(format!(
                        "rollback of command {command_id}: no agent job is known to have run it, so there is nothing to roll back"
                    )));
                };
                let accepted = self.rollback(original).await?;
                Ok(Submission::Jobs(vec![AcceptedJob {
                    job_id: accepted.job_id,
                    operation: accepted.operation,
                    label: format!("roll back job {original} (command {command_id})"),
                }]))
            }
            Command::HealthCheck { .. } => Err(PushError::Unsupported {
                what: "health_check".into(),
                why: "the contract has no health checks of units or probes; pull agents run them".into(),
            }),
            Command::Reboot { delay_secs, force, message } => {
                // The contract's `reason` is the warning our agents broadcast with `wall`.
                let request = RebootRequest {
                    delay_seconds: *delay_secs,
                    force: *force,
                    reason: message.clone(),
                    ..RebootRequest::default()
                };
                let accepted = self.reboot(&request).await?;
                Ok(Submission::Jobs(vec![AcceptedJob {
                    job_id: accepted.job_id,
                    operation: accepted.operation,
                    label: format!("reboot at {}", accepted.scheduled_at),
                }]))
            }
        }
    }

    async fn scan_command(&self, subsystems: &[Subsystem], refresh: bool) -> Result<Submission, PushError> {
        let mut output = Vec::new();
        if refresh {
            output.push(describe_cache(&self.health().await?));
        }
        let inventory = if subsystems.is_empty() || subsystems.contains(&Subsystem::Packages) {
            let report = self.scan().await?;
            output.push(format!(
                "inventory read: {} installed packages, {} updates ({} security)",
                report.installed.len(),
                report.updates.len(),
                report.security_update_count()
            ));
            Some(Box::new(report))
        } else {
            let info = self.system_info().await?;
            output.push(format!(
                "system: {} running {} {}, kernel {} ({}); reboot pending: {}",
                info.hostname, info.os, info.os_version, info.kernel, info.architecture, info.pending_reboot
            ));
            None
        };
        if subsystems.contains(&Subsystem::Storage) {
            output.push("storage: the Linux_Patch_API does not report file systems".into());
        }
        Ok(Submission::Done(Immediate { output: output.join("\n"), inventory }))
    }

    /// Follows job `job_id` to its end: status updates as they happen, the last one
    /// ([`JobUpdate::is_final`]) with the job's full record. Over the WebSocket while it works,
    /// else by polling (see [`PushClientOptions`]); [`JobFollow::mode`] says which. Dropping the
    /// stream stops following.
    pub fn follow_job(&self, job_id: Uuid) -> JobFollow {
        let (tx, rx) = mpsc::channel(64);
        let mode = Arc::new(AtomicU8::new(FollowMode::Connecting as u8));
        let follower = Follower { client: self.clone(), job_id, tx, mode: mode.clone(), last: None };
        let task = tokio::spawn(follower.run());
        JobFollow { job_id, target: self.target.clone(), rx, mode, task }
    }

    fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("a relative path joins a base URL")
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, PushError> {
        self.send::<(), T>(reqwest::Method::GET, path, None, what).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
        what: &str,
    ) -> Result<T, PushError> {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| self.transport_error(&e))?;
        let decode = |reason: String| PushError::Decode { host: self.target.clone(), what: what.to_owned(), reason };
        if status.is_success() {
            let envelope: Envelope<T> =
                serde_json::from_slice(&bytes).map_err(|e| decode(format!("{e} in {}", snippet(&bytes))))?;
            return envelope.into_result().map_err(|error| PushError::Http {
                host: self.target.clone(),
                what: what.to_owned(),
                status: status.as_u16(),
                error: Box::new(error),
                retry_after,
            });
        }
        let error = serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes)
            .ok()
            .and_then(|e| e.error)
            .unwrap_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownError,
                    format!("an answer without the contract's error body: {}", snippet(&bytes)),
                )
            });
        Err(PushError::Http {
            host: self.target.clone(),
            what: what.to_owned(),
            status: status.as_u16(),
            error: Box::new(error),
            retry_after,
        })
    }

    /// A reqwest failure as one of our errors: a rustls error anywhere in the chain is a TLS
    /// failure; a connection closed or reset while connecting is the agent refusing us during
    /// the handshake; any other connection failure or timeout is unreachable.
    fn transport_error(&self, e: &reqwest::Error) -> PushError {
        let host = self.target.clone();
        let cause = Cause::of(e);
        if let Some(reason) = cause.tls {
            return PushError::Tls { host, reason };
        }
        if e.is_decode() {
            return PushError::Decode { host, what: "an answer".into(), reason: chain(e) };
        }
        if e.is_timeout() {
            return PushError::Unreachable { host, reason: format!("no answer in time ({})", chain(e)) };
        }
        if e.is_connect() {
            if cause.closed() {
                return PushError::Tls { host, reason: format!("{CLOSED_IN_HANDSHAKE} ({})", chain(e)) };
            }
            return PushError::Unreachable { host, reason: chain(e) };
        }
        PushError::Unreachable { host, reason: format!("the connection failed: {}", chain(e)) }
    }

    fn io_error(&self, stage: &str, e: &std::io::Error) -> PushError {
        let host = self.target.clone();
        let cause = Cause::of(e);
        let closed = cause.closed();
        match (cause.tls, stage) {
            (Some(reason), _) => PushError::Tls { host, reason },
            (None, "tls") if closed => PushError::Tls { host, reason: format!("{CLOSED_IN_HANDSHAKE} ({e})") },
            (None, "tls") => PushError::Tls { host, reason: format!("the TLS handshake failed: {e}") },
            (None, _) => PushError::Unreachable { host, reason: format!("{stage}: {e}") },
        }
    }

    /// Opens `/api/v1/ws/jobs` and subscribes to `job_id`.
    async fn open_socket(&self, job_id: Uuid) -> Result<Socket, PushError> {
        let open = async {
            let tcp =
                TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| self.io_error("connect", &e))?;
            let _ = tcp.set_nodelay(true);
            let tls = tokio_rustls::TlsConnector::from(self.socket_tls.clone())
                .connect(self.server_name.clone(), tcp)
                .await
                .map_err(|e| self.io_error("tls", &e))?;
            let mut url = self.url("api/v1/ws/jobs");
            url.set_scheme("wss").expect("https becomes wss");
            let (mut socket, _) = tokio_tungstenite::client_async(url.as_str(), tls).await.map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(response) => PushError::Http {
                    host: self.target.clone(),
                    what: "the WebSocket upgrade".into(),
                    status: response.status().as_u16(),
                    error: Box::new(ApiError::new(ErrorCode::UnknownError, "the agent refused the WebSocket upgrade")),
                    retry_after: None,
                },
                tokio_tungstenite::tungstenite::Error::Io(e) => self.io_error("the WebSocket upgrade", &e),
                other => PushError::Decode {
                    host: self.target.clone(),
                    what: "the WebSocket upgrade".into(),
                    reason: other.to_string(),
                },
            })?;
            let subscribe = serde_json::to_string(&ClientMessage::Subscribe { job_id: Some(job_id) })
                .expect("a client message serialises");
            socket.send(Message::Text(subscribe.into())).await.map_err(|e| PushError::Unreachable {
                host: self.target.clone(),
                reason: format!("the WebSocket closed: {e}"),
            })?;
            Ok(socket)
        };
        let limit = self.options.connect_timeout + self.options.request_timeout;
        tokio::time::timeout(limit, open).await.unwrap_or_else(|_| {
            Err(PushError::Unreachable {
                host: self.target.clone(),
                reason: format!("the WebSocket did not open within {limit:?}"),
            })
        })
    }
}

/// Why the agent is thought to have closed a connection during the handshake.
const CLOSED_IN_HANDSHAKE: &str =
    "the agent closed the connection during the TLS handshake: this manager's address is not \
     on its allow-list, or it does not accept this manager's certificate";

/// What an error chain says underneath: a rustls error, and the kinds of the I/O errors. I/O
/// errors that wrap other errors are looked into (`io::Error::source` skips the wrapped error).
#[derive(Debug, Default)]
struct Cause {
    tls: Option<String>,
    io: Vec<std::io::ErrorKind>,
}

impl Cause {
    fn of(e: &(dyn std::error::Error + 'static)) -> Cause {
        let mut cause = Cause::default();
        cause.walk(e, 0);
        cause
    }

    fn walk(&mut self, e: &(dyn std::error::Error + 'static), depth: usize) {
        if depth > 16 {
            return;
        }
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            self.tls.get_or_insert_with(|| r.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            self.io.push(io.kind());
            if let Some(inner) = io.get_ref() {
                self.walk(inner, depth + 1);
            }
        }
        if let Some(next) = e.source() {
            self.walk(next, depth + 1);
        }
    }

    /// The peer closed or reset the connection.
    fn closed(&self) -> bool {
        self.io.iter().any(|k| {
            matches!(
                k,
                std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
            )
        })
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// `PUT`/`DELETE` path of a package, its name percent-encoded as one path segment.
fn package_path(name: &str) -> Result<String, PushError> {
    if name.is_empty() {
        return Err(PushError::InvalidCommand("a package name is empty".into()));
    }
    let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
    // form encoding writes a space as `+`; a name has none, and `+` itself is encoded as %2B.
    Ok(format!("api/v1/packages/{encoded}"))
}

/// `name` or `name=version` specs.
fn parse_specs(specs: &[String]) -> Result<Vec<PackageSpec>, PushError> {
    if specs.is_empty() {
        return Err(PushError::InvalidCommand("the command names no package".into()));
    }
    specs
        .iter()
        .map(|spec| {
            let (name, version) = match spec.split_once('=') {
                Some((name, version)) => (name.trim(), Some(version.trim())),
                None => (spec.trim(), None),
            };
            if name.is_empty() || version.is_some_and(str::is_empty) {
                return Err(PushError::InvalidCommand(format!("{spec:?} is not `name` or `name=version`")));
            }
            Ok(PackageSpec { name: name.to_owned(), version: version.map(str::to_owned) })
        })
        .collect()
}

/// What `GET /health` said about the package index.
fn describe_cache(health: &Health) -> String {
    let last = health.last_cache_update.map(|t| t.to_string()).unwrap_or_else(|| "never (as far as it knows)".into());
    match health.cache_status {
        CacheStatus::Stale => format!("the agent found its package index stale (last refreshed {last}) and started a refresh"),
        CacheStatus::Fresh => format!(
            "the agent's package index is fresh (last refreshed {last}); the Linux_Patch_API has no call that forces a \
             refresh: the agent refreshes a stale index itself, and before every patch apply"
        ),
        CacheStatus::Failed => format!("the agent's last package index refresh failed (last success {last})"),
        CacheStatus::Unknown => format!(
            "the agent does not report the state of its package index (last refreshed {last}); it refreshes before every \
             patch apply"
        ),
    }
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    if bytes.len() > 200 {
        format!("{text:?}…")
    } else {
        format!("{text:?}")
    }
}

/// The messages of an error and its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Where a [`JobUpdate`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateSource {
    /// A `job_status` event of the WebSocket.
    WebSocket,
    /// `GET /api/v1/jobs/{id}`.
    Rest,
}

/// How a [`JobFollow`] is following its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FollowMode {
    /// Opening the WebSocket.
    Connecting = 0,
    /// Over the WebSocket.
    WebSocket = 1,
    /// Polling `GET /api/v1/jobs/{id}` (the socket could not be opened, or failed).
    Polling = 2,
    /// The job ended, or following failed.
    Finished = 3,
}

impl FollowMode {
    fn from_u8(v: u8) -> FollowMode {
        match v {
            0 => FollowMode::Connecting,
            1 => FollowMode::WebSocket,
            2 => FollowMode::Polling,
            _ => FollowMode::Finished,
        }
    }
}

/// One status of a followed job.
#[derive(Debug, Clone)]
pub struct JobUpdate {
    pub job_id: Uuid,
    pub status: JobStatus,
    /// 0–100.
    pub progress: u8,
    pub message: String,
    /// Short error text of a failure.
    pub error: Option<String>,
    /// Error code of a failure (codes this build does not know read as `UNKNOWN_ERROR` where
    /// typed).
    pub error_code: Option<String>,
    pub source: UpdateSource,
    /// The job's full record; set on the final update only.
    pub detail: Option<Box<JobDetail>>,
}

impl JobUpdate {
    /// Whether this is the last update: the job ended, and `detail` holds its record.
    pub fn is_final(&self) -> bool {
        self.detail.is_some() && self.status.is_terminal()
    }

    fn of_detail(detail: &JobDetail, source: UpdateSource) -> JobUpdate {
        JobUpdate {
            job_id: detail.job_id,
            status: detail.status,
            progress: detail.progress,
            message: detail.message.clone(),
            error: detail.error.clone(),
            error_code: detail.error_code.clone(),
            source,
            detail: detail.status.is_terminal().then(|| Box::new(detail.clone())),
        }
    }
}

/// The updates of one followed job ([`PushClient::follow_job`]): a [`Stream`] of
/// `Result<JobUpdate, PushError>` that ends after the final update or the first error.
#[derive(Debug)]
pub struct JobFollow {
    job_id: Uuid,
    target: String,
    rx: mpsc::Receiver<Result<JobUpdate, PushError>>,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl JobFollow {
    /// The job followed.
    pub fn job_id(&self) -> Uuid {
        self.job_id
    }

    /// How the job is being followed right now.
    pub fn mode(&self) -> FollowMode {
        FollowMode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    /// The job's record once it has ended, passing every update to `on_update` first.
    pub async fn finish(mut self, mut on_update: impl FnMut(&JobUpdate)) -> Result<JobDetail, PushError> {
        while let Some(update) = self.rx.recv().await {
            let update = update?;
            on_update(&update);
            if update.is_final() {
                return Ok(*update.detail.expect("a final update has the record"));
            }
        }
        Err(PushError::Unreachable {
            host: self.target.clone(),
            reason: format!("following job {} stopped before it ended", self.job_id),
        })
    }
}

impl Stream for JobFollow {
    type Item = Result<JobUpdate, PushError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl Drop for JobFollow {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The task behind a [`JobFollow`].
struct Follower {
    client: PushClient,
    job_id: Uuid,
    tx: mpsc::Sender<Result<JobUpdate, PushError>>,
    mode: Arc<AtomicU8>,
    /// The last (status, progress, message) sent, so that nothing is sent twice.
    last: Option<(JobStatus, u8, String)>,
}

/// Why following over the socket stopped.
enum SocketEnd {
    /// The final update was sent, or nobody listens any more.
    Done,
    /// The socket failed; poll.
    Failed(String),
}

impl Follower {
    async fn run(mut self) {
        let deadline = tokio::time::Instant::now() + self.client.options.follow_limit;
        match self.client.open_socket(self.job_id).await {
            Ok(socket) => {
                self.set_mode(FollowMode::WebSocket);
                match self.over_socket(socket, deadline).await {
                    SocketEnd::Done => {
                        self.set_mode(FollowMode::Finished);
                        return;
                    }
                    SocketEnd::Failed(reason) => {
                        tracing::debug!(host = %self.client.target, job.id = %self.job_id, reason, "job socket failed; polling");
                    }
                }
            }
            Err(e) => {
                tracing::debug!(host = %self.client.target, job.id = %self.job_id, error = %e, "could not open the job socket; polling");
            }
        }
        self.set_mode(FollowMode::Polling);
        self.poll(deadline).await;
        self.set_mode(FollowMode::Finished);
    }

    fn set_mode(&self, mode: FollowMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Sends `update` unless it repeats the last one; `false` when nobody listens any more.
    async fn emit(&mut self, update: JobUpdate) -> bool {
        let key = (update.status, update.progress, update.message.clone());
        if !update.is_final() && self.last.as_ref() == Some(&key) {
            return true;
        }
        self.last = Some(key);
        self.tx.send(Ok(update)).await.is_ok()
    }

    /// The job's record with a few retries (a terminal event arrived; the record has the rest).
    async fn record(&self) -> Result<JobDetail, PushError> {
        let mut attempt = 0;
        loop {
            match self.client.job(self.job_id).await {
                Ok(detail) => return Ok(detail),
                Err(e) if e.is_retryable() && attempt < 2 => {
                    attempt += 1;
                    tokio::time::sleep(self.client.options.poll_interval).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn over_socket(&mut self, mut socket: Socket, deadline: tokio::time::Instant) -> SocketEnd {
        // The job may have moved, or ended, before the subscription: start from its record.
        match self.client.job(self.job_id).await {
            Ok(detail) => {
                let terminal = detail.status.is_terminal();
                if !self.emit(JobUpdate::of_detail(&detail, UpdateSource::Rest)).await || terminal {
                    return SocketEnd::Done;
                }
            }
            Err(e) => return SocketEnd::Failed(format!("reading the job failed: {e}")),
        }
        let check = self.client.options.socket_check_interval;
        let mut next_check = tokio::time::Instant::now() + check;
        loop {
            if tokio::time::Instant::now() >= deadline {
                return SocketEnd::Failed("the follow limit passed".into());
            }
            let idle = tokio::time::sleep(self.client.options.socket_idle);
            let frame = tokio::select! {
                frame = socket.next() => frame,
                () = idle => return SocketEnd::Failed("no frame from the agent in time".into()),
                () = tokio::time::sleep_until(next_check) => {
                    next_check = tokio::time::Instant::now() + check;
                    match self.client.job(self.job_id).await {
                        Ok(detail) if detail.status.is_terminal() => {
                            let _ = self.emit(JobUpdate::of_detail(&detail, UpdateSource::Rest)).await;
                            return SocketEnd::Done;
                        }
                        Ok(_) => continue,
                        Err(e) => return SocketEnd::Failed(format!("reading the job failed: {e}")),
                    }
                }
            };
            let text = match frame {
                None => return SocketEnd::Failed("the agent closed the socket".into()),
                Some(Err(e)) => return SocketEnd::Failed(e.to_string()),
                Some(Ok(Message::Close(frame))) => {
                    return SocketEnd::Failed(format!("the agent closed the socket ({frame:?})"));
                }
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue, // pings are answered by tungstenite while reading
            };
            let Ok(event) = serde_json::from_str::<ServerEvent>(text.as_str()) else { continue };
            if event.job_uuid() != Some(self.job_id) {
                continue;
            }
            let Some(status) = event.job_status() else { continue };
            if status.is_terminal() {
                return match self.record().await {
                    Ok(detail) if detail.status.is_terminal() => {
                        let _ = self.emit(JobUpdate::of_detail(&detail, UpdateSource::WebSocket)).await;
                        SocketEnd::Done
                    }
                    Ok(_) => SocketEnd::Failed("the socket said the job ended but its record does not".into()),
                    Err(e) => SocketEnd::Failed(format!("reading the ended job failed: {e}")),
                };
            }
            let update = JobUpdate {
                job_id: self.job_id,
                status,
                progress: event.progress,
                message: event.message,
                error: event.error,
                error_code: event.error_code.map(|c| c.as_str().to_owned()),
                source: UpdateSource::WebSocket,
                detail: None,
            };
            if !self.emit(update).await {
                return SocketEnd::Done;
            }
        }
    }

    async fn poll(&mut self, deadline: tokio::time::Instant) {
        let options = self.client.options.clone();
        let mut failures = 0u32;
        loop {
            if tokio::time::Instant::now() >= deadline {
                let _ = self
                    .tx
                    .send(Err(PushError::FollowTimeout {
                        host: self.client.target.clone(),
                        job_id: self.job_id,
                        limit: options.follow_limit,
                    }))
                    .await;
                return;
            }
            match self.client.job(self.job_id).await {
                Ok(detail) => {
                    failures = 0;
                    let terminal = detail.status.is_terminal();
                    if !self.emit(JobUpdate::of_detail(&detail, UpdateSource::Rest)).await || terminal {
                        return;
                    }
                    tokio::time::sleep(options.poll_interval).await;
                }
                Err(e) if e.is_retryable() && failures + 1 < options.poll_failures => {
                    failures += 1;
                    let wait = options.poll_interval.saturating_mul(1 << failures.min(4)).min(Duration::from_secs(30));
                    tracing::debug!(host = %self.client.target, job.id = %self.job_id, error = %e, failures, "reading the job failed; trying again");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let _ = self.tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_specs_and_paths_are_checked_and_encoded() {
        let specs = parse_specs(&["hello=1.1-1".into(), "other".into()]).unwrap();
        assert_eq!(specs[0], PackageSpec { name: "hello".into(), version: Some("1.1-1".into()) });
        assert_eq!(specs[1], PackageSpec { name: "other".into(), version: None });
        for bad in ["", "=1.0", "hello="] {
            assert!(matches!(parse_specs(&[bad.into()]), Err(PushError::InvalidCommand(_))), "{bad:?}");
        }
        assert!(parse_specs(&[]).is_err());
        assert_eq!(package_path("libstdc++6").unwrap(), "api/v1/packages/libstdc%2B%2B6");
        assert_eq!(package_path("a/b").unwrap(), "api/v1/packages/a%2Fb");
    }

    #[test]
    fn push_errors_have_stable_codes_and_retryability() {
        let http = |status: u16, code: ErrorCode| PushError::Http {
            host: "h:1".into(),
            what: "x".into(),
            status,
            error: Box::new(ApiError::new(code, "m")),
            retry_after: None,
        };
        assert_eq!(http(429, ErrorCode::QueueFull).code(), "QUEUE_FULL");
        assert!(http(429, ErrorCode::QueueFull).is_retryable());
        assert!(!http(400, ErrorCode::ValidationError).is_retryable());
        let unreachable = PushError::Unreachable { host: "h:1".into(), reason: "refused".into() };
        assert_eq!((unreachable.code(), unreachable.is_retryable()), ("HOST_UNREACHABLE", true));
        let unsupported = PushError::Unsupported { what: "a dry run".into(), why: "no".into() };
        assert_eq!(unsupported.code(), "UNSUPPORTED_OPERATION");
    }
}
