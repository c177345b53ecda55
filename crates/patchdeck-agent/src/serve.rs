//! `patchdeck-agent serve`: the host service.
//!
//! Opens the audit log and the job engine, pull mode ([`crate::pull::start`]: checking in with
//! the manager when enrolled or enrollable), and, when `push.enabled`, the
//! Linux_Patch_API-compatible REST API over mutual TLS with its allow-list
//! and certificate watcher. Tells systemd when it is ready (`Type=notify`).
//! On SIGTERM or SIGINT it stops accepting connections and jobs, lets a
//! running package transaction finish or reach its timeout, flushes the
//! audit log and exits. While it runs, the config file, the allow-list and the certificates are
//! watched and reloaded ([`crate::reload`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::api::{self, ApiConfig, ApiState, Inventory, InventoryConfig};
use crate::audit::{Actor, AuditEvent, AuditLog, Outcome};
use crate::config::AgentConfig;
use crate::jobs::{Clock, JobEngine, JobEventKind, PackageBackend, SystemClock};
use crate::reload::{ConfigSource, LivePush, Reloader};
use crate::systemd;
use crate::transport::{AllowList, FileWatcher, HandshakeFailure, Listener, PeerIdentity, ServerTls, TransportConfig};

/// Runs the host service until SIGTERM or SIGINT. `config` was loaded from `source`, which is
/// watched for changes.
pub async fn run(config: AgentConfig, source: ConfigSource) -> anyhow::Result<()> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let audit = if config.audit.enabled {
        AuditLog::open(&config.audit, Arc::clone(&clock)).context("opening the audit log")?
    } else {
        AuditLog::disabled(Arc::clone(&clock))
    };

    let options = config.package_manager.backend_options();
    let kind = match config.package_manager.backend.kind() {
        Some(kind) => kind,
        None => patchdeck_pkg::detect::detect(&options.root)?,
    };
    let backend = PackageBackend { kind, options };
    let engine = JobEngine::open(
        &config.state_dir,
        crate::jobs::EngineConfig { hooks: Some(config.hooks.engine_hooks()), ..config.jobs.engine_config() },
        backend.clone(),
        Arc::new(config.reboot.rebooter()),
        Arc::clone(&clock),
    )
    .with_context(|| format!("opening the job engine in {}", config.state_dir.display()))?;
    tokio::spawn(audit_job_outcomes(engine.clone(), audit.clone()));

    let (stop_tx, stop_rx) = watch::channel(false);
    let pull = crate::pull::start(&config, engine.clone(), backend.clone(), stop_rx.clone());
    let mut push = if config.push.enabled {
        Some(start_push(&config, engine.clone(), backend, audit.clone(), stop_rx.clone()).await?)
    } else {
        tracing::info!("push API disabled (push.enabled: false): no port is open");
        None
    };
    let live = push.as_mut().and_then(|p| p.live.take());
    let reloader = Reloader::new(source, config.clone(), audit.clone(), live).spawn();

    if let Err(err) = systemd::notify("READY=1") {
        tracing::warn!(%err, "could not notify systemd");
    }
    let mut listening = push.as_ref().map(|p| format!(" listening on {}", p.addr)).unwrap_or_default();
    if let Some(pull) = &pull {
        listening.push_str(&format!("; {}", pull.description));
    }
    tracing::info!(backend = %kind, state_dir = %config.state_dir.display(), "patchdeck-agent ready{listening}");
    eprintln!("patchdeck-agent ready ({kind}){listening}");

    wait_for_signal().await?;
    tracing::info!("stopping: no new connections or jobs; waiting for running jobs");
    let _ = systemd::notify("STOPPING=1");
    let _ = stop_tx.send(true);
    engine.close_admission();
    reloader.abort();
    if let Some(push) = push {
        push.server.await.context("the API server task failed")?.context("the API server failed")?;
    }
    if let Some(pull) = pull {
        // The loop stops at once (an open long poll is dropped); results already in the outbox
        // are sent after the next start.
        if tokio::time::timeout(Duration::from_secs(10), pull.task).await.is_err() {
            tracing::warn!("pull mode did not stop within 10 s");
        }
    }
    let grace = Duration::from_secs(config.jobs.job_timeout_secs) + Duration::from_secs(30);
    let left = engine.drain(grace).await;
    if !left.is_empty() {
        tracing::warn!(jobs = ?left, "jobs still active at exit; they will be marked failed at the next start");
    }
    tokio::task::spawn_blocking(move || audit.flush()).await.context("flushing the audit log")?;
    Ok(())
}

struct Push {
    addr: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Handed to the [`Reloader`].
    live: Option<LivePush>,
}

/// Loads the certificates (refusing to start when they are unusable), the
/// allow-list (denying everyone when it is unusable) and the inventory, and
/// starts serving.
async fn start_push(
    config: &AgentConfig,
    engine: JobEngine,
    backend: PackageBackend,
    audit: AuditLog,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Push> {
    let push = &config.push;
    let paths = crate::reload::tls_paths(push);
    let tls = ServerTls::load(&paths).context("push API certificates")?;
    let allowlist = AllowList::load_or_deny_all(&push.allowlist).await;
    if let Some(reason) = allowlist.deny_reason() {
        tracing::warn!(%reason, "the allow-list admits nobody");
    }
    let transport = TransportConfig::new(allowlist, tls).with_audit(Arc::new(TransportAudit(audit.clone())));
    let listener =
        Listener::bind(push.listen, transport).await.with_context(|| format!("listening on {}", push.listen))?;
    let addr = listener.local_addr()?;

    let transport = listener.reload_handle();
    let files = FileWatcher::new(transport.clone(), Some(push.allowlist.clone()), Some(paths));

    let inventory = Inventory::load(backend, engine.clone(), InventoryConfig::default())
        .await
        .context("reading the package inventory for the push API")?;
    let api_config = ApiConfig { rate_limits: push.rate_limits(), audit: Some(audit), ..ApiConfig::default() };
    let state = ApiState::new(engine, inventory, api_config);
    let live = LivePush { transport, api: state.clone(), files };
    let server = tokio::spawn(async move {
        api::serve(listener, state, async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await
    });
    Ok(Push { addr, server, live: Some(live) })
}

/// Records each finished job as a package operation.
async fn audit_job_outcomes(engine: JobEngine, audit: AuditLog) {
    let mut events = engine.subscribe();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "audit missed job events");
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        };
        if event.kind != JobEventKind::Status || !event.status.is_terminal() {
            continue;
        }
        let record = engine.record(event.job_id).ok();
        let packages = record.as_ref().map(|r| r.detail.packages.clone()).unwrap_or_default();
        let actor = match record.and_then(|r| r.requested_by) {
            Some(r) => Actor::Peer { addr: r.addr, cn: r.cn, serial: r.serial, fingerprint: r.fingerprint },
            None => Actor::Agent,
        };
        let outcome = if event.error.is_none() { Outcome::Success } else { Outcome::Failure };
        audit.record(AuditEvent::PackageOperation {
            actor,
            job_id: event.job_id.to_string(),
            operation: event.operation.as_str().to_owned(),
            packages,
            outcome,
            error: event.error,
        });
    }
}

/// Feeds the transport's denials and failed handshakes into the audit log.
struct TransportAudit(AuditLog);

impl crate::transport::AuditHook for TransportAudit {
    fn on_denied(&self, peer: SocketAddr) {
        self.0.record(AuditEvent::AllowlistDenied { addr: peer });
    }

    fn on_handshake_failed(&self, peer: SocketAddr, failure: &HandshakeFailure) {
        self.0.record(AuditEvent::AuthFailure { actor: Actor::addr(peer), reason: failure.to_string() });
    }

    fn on_accepted(&self, peer: &PeerIdentity) {
        tracing::debug!(peer = %peer.addr, cn = ?peer.subject_cn, "client authenticated");
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
