//! Starting the manager: open storage (migrating it), load or make the key material and the push
//! client certificate, create the first admin on an empty database, then serve.
//! [`Manager::start`] is the "run on this listener" entry that tests use; `patchdeck serve` calls
//! it with the configured listener.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jiff::SignedDuration;
use patchdeck_store::{AuthSource, NewUser, Role, Store};
use serde_json::json;
use tokio::net::TcpListener;

use crate::audit::{AuditEvent, Outcome};
use crate::clock::Clock;
use crate::config::{ManagerConfig, TlsMode};
use crate::pki::KeyMaterial;
use crate::state::AppState;
use crate::web::router::{api, RouteSpec};

/// What the first start made and must tell the operator once.
#[derive(Debug, Default)]
pub struct FirstStart {
    /// The generated password of the `admin` account (only on an empty database).
    pub admin_password: Option<String>,
    pub created_ca: bool,
}

/// Opens the store of `config` and brings its schema up to date.
pub async fn open_store(config: &ManagerConfig) -> anyhow::Result<Store> {
    if config.database_url.is_empty() {
        crate::pki::ensure_private_dir(&config.data_dir)?;
    }
    let store = Store::connect(&config.database()).await.context("opening the database")?;
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

/// A started manager.
#[derive(Debug)]
pub struct Manager {
    pub state: AppState,
    pub routes: Vec<RouteSpec>,
    pub first_start: FirstStart,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Manager {
    /// Opens everything `config` names; nothing is served yet.
    pub async fn start(config: ManagerConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Manager> {
        let now = clock.now();
        let store = open_store(&config).await?;
        let (keys, created) = KeyMaterial::load_or_create(&config.data_dir, now)?;
        let tls = match config.tls.mode {
            TlsMode::Off => None,
            TlsMode::Internal => {
                let host = url::Url::parse(&config.public_url)?.host_str().unwrap_or("localhost").to_owned();
                let validity = SignedDuration::from_hours(24 * i64::try_from(config.ca.cert_validity_days)?);
                let (chain, key, _) = keys.server_certificate(&host, now, validity)?;
                Some(crate::web::serve::tls_config(&chain, &key, Some(keys.ca.cert_der()))?)
            }
            TlsMode::Files => {
                let chain = std::fs::read_to_string(&config.tls.cert)
                    .with_context(|| format!("reading {}", config.tls.cert.display()))?;
                let key = std::fs::read_to_string(&config.tls.key)
                    .with_context(|| format!("reading {}", config.tls.key.display()))?;
                Some(crate::web::serve::tls_config(&chain, &key, Some(keys.ca.cert_der()))?)
            }
        };
        let validity = SignedDuration::from_hours(24 * i64::try_from(config.ca.cert_validity_days)?);
        let push = crate::push::identity::ensure_push_identity(&store, &keys.ca, &config.data_dir, now, validity)
            .await
            .context("the manager's push client certificate")?;
        let state = AppState::new(store, config, keys, push.identity, clock);
        if let Some(issued) = &push.issued {
            state
                .audit(
                    AuditEvent::new("system", "ca.push_client.issue", Outcome::Success)
                        .target(format!("certificate:{}", issued.serial))
                        .details(json!({
                            "common_name": issued.common_name,
                            "not_after": issued.not_after.to_string(),
                            "replaces_revoked": push.replaced_revoked,
                        })),
                )
                .await;
        }
        let mut first_start = FirstStart { admin_password: None, created_ca: created.ca };
        if created.ca {
            state
                .audit(
                    AuditEvent::new("system", "ca.create", Outcome::Success)
                        .details(json!({ "fingerprint": state.keys().ca.fingerprint() })),
                )
                .await;
        }
        if state.store().count_users().await? == 0 {
            first_start.admin_password = Some(create_first_admin(&state).await?);
        }
        let (app, routes) = api(state.clone());
        Ok(Manager { state, routes, first_start, app, tls })
    }

    /// Whether the listener speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves on `listener` until `shutdown` completes, running the background work
    /// ([`Background`]) beside it.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let background = Background::start(&self.state, "serve").await?;
        let hub = self.state.hub().clone();
        // Held check-ins are released as soon as shutdown starts, so they don't hold it up.
        let shutdown = async move {
            shutdown.await;
            hub.stop();
        };
        let result = crate::web::serve::serve(listener, self.tls, self.app, shutdown).await;
        background.stop().await;
        self.state.store().close().await;
        Ok(result?)
    }

    /// Runs only the background work ([`Background`]) until `shutdown` completes:
    /// `patchdeck worker`, beside `serve` replicas that share its PostgreSQL.
    pub async fn work(self, shutdown: impl std::future::Future<Output = ()> + Send) -> anyhow::Result<()> {
        let background = Background::start(&self.state, "worker").await?;
        shutdown.await;
        self.state.hub().stop();
        background.stop().await;
        self.state.store().close().await;
        Ok(())
    }
}

/// The background work of a manager process, `serve` and `worker` alike:
/// - hourly upkeep (audit retention, old sessions);
/// - every 10 s, pull hosts gone silent are marked offline and stale commands timed out (both
///   idempotent, so every process may run them);
/// - on PostgreSQL, the listener that brings other processes' notifications;
/// - with `push.enabled`, the push worker (one per database, see [`crate::push::service`]);
/// - with `deployments.run_jobs`, the job worker (deployments; see [`crate::jobs`]).
/// - with `notifications.enabled`, the notification sender and its daily checks
///   ([`crate::notify::run`]).
#[derive(Debug)]
pub struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    push: Option<tokio::task::JoinHandle<()>>,
    jobs: Option<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// `role` is `serve` or `worker`, as the job worker reports itself.
    pub async fn start(state: &AppState, role: &'static str) -> anyhow::Result<Background> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = vec![tokio::spawn(upkeep(state.clone())), tokio::spawn(agent_upkeep(state.clone()))];
        tasks.extend(state.hub().start_listener().await?);
        if state.config().notifications.enabled {
            tasks.push(tokio::spawn(crate::notify::run(state.notifier(), stopped.clone())));
        }
        let push = state.config().push.enabled.then(|| {
            let config = crate::push::service::worker_config(state);
            tokio::spawn(crate::push::service::run(state.clone(), config, stopped.clone()))
        });
        let jobs =
            state.config().deployments.run_jobs.then(|| tokio::spawn(crate::jobs::run(state.clone(), role, stopped)));
        Ok(Background { stop, tasks, push, jobs })
    }

    /// Stops everything; the push worker gets a few seconds to give its lease up.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(mut jobs) = self.jobs {
            // A run in progress finishes (its claim would otherwise hold the job for minutes).
            if tokio::time::timeout(Duration::from_secs(10), &mut jobs).await.is_err() {
                tracing::warn!("the job worker did not stop in time");
                jobs.abort();
            }
        }
        if let Some(mut push) = self.push {
            if tokio::time::timeout(Duration::from_secs(10), &mut push).await.is_err() {
                tracing::warn!("the push worker did not stop in time");
                push.abort();
            }
        }
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Creates `admin` with a random password that must be changed at first login.
async fn create_first_admin(state: &AppState) -> anyhow::Result<String> {
    let password = random_password()?;
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || patchdeck_crypto::password::hash(&password)).await??
    };
    let user = state
        .store()
        .create_user(
            &NewUser {
                username: "admin".into(),
                display_name: "Administrator".into(),
                role: Role::Admin,
                password_hash: Some(hash),
                auth_source: AuthSource::Local,
                oidc: None,
                must_change_password: true,
            },
            state.now(),
        )
        .await?;
    state
        .audit(
            AuditEvent::new("system", "user.create", Outcome::Success)
                .target(format!("user:{}", user.username))
                .details(json!({ "role": "admin", "reason": "first start" })),
        )
        .await;
    Ok(password)
}

/// A random 20-character password of unambiguous letters and digits.
pub fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("random: {e}"))?;
        let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8;
        for b in bytes.iter().filter(|&&b| b < limit).take(20 - out.len()) {
            out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
        }
    }
    Ok(out)
}

/// Hourly: prunes the audit log past its retention (and records that it did), forgets
/// sessions that ended more than a day ago, and takes the day's compliance sample.
async fn upkeep(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        run_upkeep(&state).await;
    }
}

/// Every 10 s: marks silent pull hosts offline and times out stale commands.
async fn agent_upkeep(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        if let Err(e) = crate::web::handlers::agent::agent_upkeep(&state).await {
            tracing::warn!(error = %e, "agent upkeep failed");
        }
    }
}

/// Deletes finished commands, deployments and jobs, and workers not heard from, older than
/// `deployments.retention_days`; records what it deleted.
async fn prune_operational_data(state: &AppState) {
    let days = i64::try_from(state.config().deployments.retention_days).unwrap_or(30);
    let cutoff = state.now() - SignedDuration::from_hours(24 * days);
    let store = state.store();
    let pruned = async {
        Ok::<_, patchdeck_store::Error>((
            store.prune_commands_finished_before(cutoff).await?,
            store.prune_deployments_finished_before(cutoff).await?,
            store.prune_jobs_before(cutoff).await?,
            store.prune_workers_before(cutoff).await?,
        ))
    };
    match pruned.await {
        Ok((0, 0, 0, 0)) => {}
        Ok((commands, deployments, jobs, workers)) => {
            tracing::info!(commands, deployments, jobs, workers, "pruned operational data past retention");
            state
                .audit(AuditEvent::new("system", "data.prune", Outcome::Success).details(json!({
                    "commands": commands, "deployments": deployments, "jobs": jobs, "workers": workers,
                    "before": cutoff.to_string(), "retention_days": days,
                })))
                .await;
        }
        Err(e) => tracing::warn!(error = %e, "pruning operational data failed"),
    }
}

/// One round of [`upkeep`].
pub async fn run_upkeep(state: &AppState) {
    let days = i64::try_from(state.config().audit.retention_days).unwrap_or(183);
    let cutoff = state.now() - SignedDuration::from_hours(24 * days);
    match state.store().prune_audit_before(cutoff).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(deleted = n, "pruned audit entries past retention");
            state
                .audit(
                    AuditEvent::new("system", "audit.prune", Outcome::Success)
                        .details(json!({ "deleted": n, "before": cutoff.to_string(), "retention_days": days })),
                )
                .await;
        }
        Err(e) => tracing::warn!(error = %e, "audit pruning failed"),
    }
    prune_operational_data(state).await;
    match state.store().delete_sessions_expired_before(state.now() - SignedDuration::from_hours(24)).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(deleted = n, "forgot ended sessions"),
        Err(e) => tracing::warn!(error = %e, "session cleanup failed"),
    }
    // The dashboard's compliance trend: today's sample, replaced each hour until the day ends.
    if let Err(e) = state.store().record_compliance_sample(state.now()).await {
        tracing::warn!(error = %e, "taking the compliance sample failed");
    }
}
