//! The state shared by every request handler: storage, configuration, keys and the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use patchdeck_store::{Store, User};

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::config::ManagerConfig;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::pki::KeyMaterial;
use crate::push::identity::PushIdentity;
use crate::settings::Settings;
use crate::web::error::ApiError;

/// How long settings read from the database are reused before reading them again (replicas
/// see each other's changes within this time; the replica that wrote sees them at once).
const SETTINGS_TTL: Duration = Duration::from_secs(5);

/// Cheap to clone: everything is behind one `Arc`.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    config: ManagerConfig,
    keys: KeyMaterial,
    push_identity: PushIdentity,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    settings: Mutex<Option<(Instant, Settings)>>,
    login_limiter: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Single-use tickets already used (SHA-256 of the ticket → when it can be forgotten).
    spent: Mutex<HashMap<[u8; 32], Timestamp>>,
    sso: tokio::sync::Mutex<Option<crate::web::handlers::sso::CachedClient>>,
    hub: Hub,
    /// Check-ins doing database work at once (`agents.max_concurrent_checkins`).
    checkin_slots: Arc<tokio::sync::Semaphore>,
    discoveries: crate::web::handlers::discoveries::Discoveries,
    job_wake: crate::jobs::JobWake,
    notifier: crate::notify::Notifier,
}

impl AppState {
    pub fn new(
        store: Store,
        config: ManagerConfig,
        keys: KeyMaterial,
        push_identity: PushIdentity,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let hub = Hub::new(store.clone());
        let checkin_slots = Arc::new(tokio::sync::Semaphore::new(config.agents.max_concurrent_checkins));
        let notifier = crate::notify::Notifier::new(
            store.clone(),
            clock.clone(),
            keys.secret_key.clone(),
            config.notifications.clone(),
        );
        AppState(Arc::new(Inner {
            hub,
            checkin_slots,
            store,
            config,
            keys,
            push_identity,
            clock,
            metrics: Metrics::new(),
            settings: Mutex::new(None),
            login_limiter: Mutex::new(HashMap::new()),
            spent: Mutex::new(HashMap::new()),
            sso: tokio::sync::Mutex::new(None),
            discoveries: Default::default(),
            job_wake: Default::default(),
            notifier,
        }))
    }

    /// Wake-ups of held check-ins and live events.
    pub fn hub(&self) -> &Hub {
        &self.0.hub
    }

    /// See `agents.max_concurrent_checkins`.
    pub fn checkin_slots(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.0.checkin_slots
    }

    /// This process's push-agent discoveries.
    pub fn discoveries(&self) -> &crate::web::handlers::discoveries::Discoveries {
        &self.0.discoveries
    }

    /// Wakes this process's job worker.
    pub fn job_wake(&self) -> &crate::jobs::JobWake {
        &self.0.job_wake
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn config(&self) -> &ManagerConfig {
        &self.0.config
    }

    pub fn keys(&self) -> &KeyMaterial {
        &self.0.keys
    }

    /// The manager's client certificate for push hosts.
    pub fn push_identity(&self) -> &PushIdentity {
        &self.0.push_identity
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn now(&self) -> Timestamp {
        self.0.clock.now()
    }

    /// The clock itself (for components that keep their own handle to it).
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.0.clock.clone()
    }

    /// Appends to the audit log. A failure to record is logged loudly; it does not undo the
    /// change that was already made.
    pub async fn audit(&self, event: AuditEvent) {
        let action = event.action;
        if let Err(e) = self.store().append_audit(&event.into_entry(self.now())).await {
            tracing::error!(action, error = %e, "could not write the audit log");
        }
    }

    /// The runtime settings (cached for a few seconds).
    pub async fn settings(&self) -> Result<Settings, ApiError> {
        if let Some((at, settings)) = self.0.settings.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if at.elapsed() < SETTINGS_TTL {
                return Ok(settings.clone());
            }
        }
        let settings = Settings::load(self.store()).await?;
        *self.0.settings.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), settings.clone()));
        Ok(settings)
    }

    /// Forgets the cached settings (after a change).
    pub fn settings_changed(&self) {
        *self.0.settings.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether `user` has a second factor (TOTP or a passkey).
    pub async fn has_mfa(&self, user: &User) -> Result<bool, ApiError> {
        if user.totp_enabled {
            return Ok(true);
        }
        Ok(!self.store().list_webauthn_credentials(user.id).await?.is_empty())
    }

    /// Marks a single-use ticket (an MFA step, a WebAuthn ceremony) as used; `false` when it was
    /// used before. Tickets expire within minutes, so entries are forgotten after `until`. This
    /// memory is per process: with several replicas a ticket could be used once on each, which
    /// the other checks (TOTP steps, signature counters, sealed expiry) keep harmless.
    pub fn spend_ticket(&self, ticket: &str, until: Timestamp) -> bool {
        use sha2::Digest;
        let key: [u8; 32] = sha2::Sha256::digest(ticket.as_bytes()).into();
        let now = self.now();
        let mut spent = self.0.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.len() > 1000 {
            spent.retain(|_, until| *until > now);
        }
        spent.insert(key, until).is_none()
    }

    /// The cached SSO client slot (see [`crate::web::handlers::sso`]).
    pub(crate) fn sso_cache(&self) -> &tokio::sync::Mutex<Option<crate::web::handlers::sso::CachedClient>> {
        &self.0.sso
    }

    /// Counts a login attempt from `ip`; `Err(seconds to wait)` when over the per-minute limit.
    pub fn login_attempt(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else { return Ok(()) };
        let limit = self.config().auth.login_attempts_per_minute;
        let mut map = self.0.login_limiter.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if map.len() > 10_000 {
            map.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > limit {
            let wait = 60u64.saturating_sub(now.duration_since(entry.0).as_secs());
            return Err(wait.max(1));
        }
        Ok(())
    }

    /// E-mail and webhook notifications: `state.notifier().emit(event)`.
    pub fn notifier(&self) -> crate::notify::Notifier {
        self.0.notifier.clone()
    }
}
