//! Notifications: e-mail over SMTP and webhooks, for deployments, unreachable hosts, new
//! security updates and expiring certificates (docs/notifications.md).
//!
//! - [`Notifier::emit`] matches an event against the enabled rules and writes one delivery per
//!   matching (rule, channel) to the outbox in the database, then wakes the sender. Nothing is
//!   sent inline, so an event survives a crash and a slow SMTP server never holds up the code
//!   that emitted it.
//! - [`run`] is the sender: it claims due deliveries (atomically, so two replicas never send one
//!   twice) and sends them, retrying with backoff (`notifications.retry_delays_secs`) until the
//!   last attempt, then `failed`. It is woken by `emit` and also looks every few seconds.
//! - [`Notifier::daily_checks`] emits `certificate.expiring` (once per certificate) and the
//!   `security.digest` (once a day, only when something is new).
//! - `channel.rs` (settings and their checks), `smtp.rs`, `webhook.rs` (the two transports),
//!   `event.rs` (the events and their text).

pub mod channel;
pub mod event;
pub mod smtp;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use patchdeck_crypto::secretbox::SecretKey;
use patchdeck_store::{
    ChannelKind, GroupId, Host, HostId, NewDelivery, NotificationChannel, NotificationDelivery, Store,
};
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::config::NotificationsConfig;
pub use channel::{SmtpMode, SmtpSettings, WebhookFormat, WebhookSettings};
pub use event::{DigestItem, NotificationEvent, StoredEvent, EVENT_KINDS};

/// Associated data of a sealed channel secret.
pub const SECRET_AAD: &[u8] = b"patchdeck:notification_channel:secret";
/// Deliveries claimed at once.
const CLAIM_BATCH: u32 = 20;
/// How long a claim lasts; a sender that died lets its deliveries go after this.
const CLAIM_LOCK: SignedDuration = SignedDuration::from_mins(5);
/// How often the daily checks look at the time (they act once a day, or once per certificate).
const CHECK_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// It may work later (network, timeout, 5xx, 408, 429, SMTP 4xx).
    #[error("{0}")]
    Retry(String),
    /// It will not work by trying again (4xx, SMTP 5xx, bad settings).
    #[error("{0}")]
    Permanent(String),
}

/// What went wrong writing notifications.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] patchdeck_store::Error),
    #[error("the event cannot be stored: {0}")]
    Payload(#[from] serde_json::Error),
}

/// The notifications of a manager process. Cheap to clone.
#[derive(Clone)]
pub struct Notifier(Arc<Inner>);

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    secret_key: SecretKey,
    config: NotificationsConfig,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("config", &self.0.config).finish_non_exhaustive()
    }
}

impl Notifier {
    pub fn new(store: Store, clock: Arc<dyn Clock>, secret_key: SecretKey, config: NotificationsConfig) -> Self {
        Notifier(Arc::new(Inner { store, clock, secret_key, config, wake: tokio::sync::Notify::new() }))
    }

    /// Writes one delivery per enabled rule (on an enabled channel) that selects this event
    /// (and, for host events, whose group holds the host), then wakes the sender.
    pub async fn emit(&self, event: NotificationEvent) -> Result<(), NotifyError> {
        self.emit_counted(event).await.map(drop)
    }

    /// [`Self::emit`], telling how many deliveries it wrote.
    pub async fn emit_counted(&self, event: NotificationEvent) -> Result<usize, NotifyError> {
        let store = &self.0.store;
        let now = self.0.clock.now();
        let kind = event.kind();
        let rules = store.active_notification_rules().await?;
        let mut groups_of: HashMap<i64, Vec<GroupId>> = HashMap::new();
        let event_id = uuid::Uuid::new_v4().to_string();
        let mut deliveries = Vec::new();
        for (rule, channel) in rules {
            if !rule.events.iter().any(|e| e == kind) {
                continue;
            }
            let event = match rule.group_id {
                None => event.clone(),
                Some(group) => match self.for_group(&event, group, &mut groups_of).await? {
                    Some(event) => event,
                    None => continue,
                },
            };
            let payload = serde_json::to_value(StoredEvent { occurred_at: now, event })?;
            let recipients = if channel.kind == ChannelKind::Smtp { rule.recipients.clone() } else { Vec::new() };
            deliveries.push(NewDelivery {
                channel_id: channel.id,
                rule_id: Some(rule.id),
                event: kind.to_owned(),
                event_id: event_id.clone(),
                recipients,
                payload,
            });
        }
        let written = store.enqueue_notification_deliveries(&deliveries, now).await?;
        if !written.is_empty() {
            tracing::debug!(event = kind, deliveries = written.len(), "notification queued");
            self.wake();
        }
        Ok(written.len())
    }

    /// The event as a rule limited to `group` sees it: host events only for its hosts, a digest
    /// cut to its hosts; `None` when nothing is left.
    async fn for_group(
        &self,
        event: &NotificationEvent,
        group: GroupId,
        cache: &mut HashMap<i64, Vec<GroupId>>,
    ) -> Result<Option<NotificationEvent>, NotifyError> {
        if let NotificationEvent::SecurityDigest { items, .. } = event {
            let mut kept = Vec::new();
            for item in items {
                if self.host_groups(item.host_id, cache).await?.contains(&group) {
                    kept.push(item.clone());
                }
            }
            if kept.is_empty() {
                return Ok(None);
            }
            return Ok(Some(digest(kept)));
        }
        match event.host_id() {
            Some(host) if !self.host_groups(host, cache).await?.contains(&group) => Ok(None),
            _ => Ok(Some(event.clone())),
        }
    }

    async fn host_groups(
        &self,
        host: i64,
        cache: &mut HashMap<i64, Vec<GroupId>>,
    ) -> Result<Vec<GroupId>, NotifyError> {
        if let Some(groups) = cache.get(&host) {
            return Ok(groups.clone());
        }
        let groups = self.0.store.host_group_ids(HostId(host)).await?;
        cache.insert(host, groups.clone());
        Ok(groups)
    }

    /// Wakes the sender (after deliveries were written).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// `host.unreachable` for a host whose status just became `unreachable` or `offline`.
    pub async fn host_unreachable(&self, host: &Host) -> Result<(), NotifyError> {
        self.emit(NotificationEvent::HostUnreachable {
            host_id: host.id.0,
            hostname: host.hostname.clone(),
            status: host.status.as_str().to_owned(),
            last_seen_at: host.last_seen_at,
        })
        .await
    }

    /// The sealed form of a channel secret.
    pub fn seal_secret(&self, secret: &str) -> Result<Vec<u8>, patchdeck_crypto::secretbox::SecretBoxError> {
        patchdeck_crypto::secretbox::seal(&self.0.secret_key, secret.as_bytes(), SECRET_AAD)
    }

    fn open_secret(&self, channel: &NotificationChannel) -> Result<Option<Zeroizing<Vec<u8>>>, SendError> {
        channel
            .secret
            .as_deref()
            .map(|sealed| {
                patchdeck_crypto::secretbox::open(&self.0.secret_key, sealed, SECRET_AAD).map_err(|_| {
                    SendError::Permanent("the channel's secret does not open with this secret.key; set it again".into())
                })
            })
            .transpose()
    }

    /// Sends `event` through `channel` now. `delivery` names the attempt (the outbox id; the
    /// webhook's `X-Patchdeck-Delivery`).
    pub async fn send_via(
        &self,
        channel: &NotificationChannel,
        recipients: &[String],
        event: &NotificationEvent,
        occurred_at: Timestamp,
        delivery: &str,
    ) -> Result<(), SendError> {
        let secret = self.open_secret(channel)?;
        let settings_error = |e: serde_json::Error| SendError::Permanent(format!("the channel's settings: {e}"));
        match channel.kind {
            ChannelKind::Smtp => {
                let settings: SmtpSettings =
                    serde_json::from_value(channel.settings.clone()).map_err(settings_error)?;
                let password = secret
                    .as_ref()
                    .map(|s| {
                        String::from_utf8(s.to_vec()).map_err(|_| SendError::Permanent("password is not UTF-8".into()))
                    })
                    .transpose()?
                    .map(Zeroizing::new);
                smtp::send(
                    &settings,
                    password.as_deref().map(String::as_str),
                    recipients,
                    &event.summary(),
                    &event.body(),
                )
                .await
            }
            ChannelKind::Webhook => {
                let settings: WebhookSettings =
                    serde_json::from_value(channel.settings.clone()).map_err(settings_error)?;
                let now = self.0.clock.now();
                webhook::send(&settings, secret.as_deref().map(Vec::as_slice), delivery, event, occurred_at, now).await
            }
        }
    }

    /// Claims the due deliveries and sends them; returns how many it claimed.
    pub async fn send_due(&self) -> Result<usize, NotifyError> {
        let now = self.0.clock.now();
        let claimed = self.0.store.claim_notification_deliveries(now, CLAIM_BATCH, CLAIM_LOCK).await?;
        let count = claimed.len();
        let sends = claimed.into_iter().map(|delivery| {
            let this = self.clone();
            async move { this.deliver(delivery).await }
        });
        for result in futures_util::future::join_all(sends).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "recording a notification delivery failed");
            }
        }
        Ok(count)
    }

    /// One attempt of a claimed delivery, and its outcome recorded.
    async fn deliver(&self, delivery: NotificationDelivery) -> Result<(), NotifyError> {
        let store = &self.0.store;
        let result = match store.get_notification_channel(delivery.channel_id).await? {
            None => Err(SendError::Permanent("the channel was deleted".into())),
            Some(channel) if !channel.enabled => Err(SendError::Permanent("the channel is disabled".into())),
            Some(channel) => match serde_json::from_value::<StoredEvent>(delivery.payload.clone()) {
                Err(e) => Err(SendError::Permanent(format!("the stored event is unreadable: {e}"))),
                Ok(stored) => {
                    self.send_via(
                        &channel,
                        &delivery.recipients,
                        &stored.event,
                        stored.occurred_at,
                        &delivery.id.to_string(),
                    )
                    .await
                }
            },
        };
        let now = self.0.clock.now();
        let attempt = delivery.attempts;
        let span = (delivery.id.0, delivery.channel_id.0, delivery.event.as_str());
        match result {
            Ok(()) => {
                store.mark_notification_sent(delivery.id, attempt, now).await?;
                tracing::info!(delivery.id = span.0, channel.id = span.1, event = span.2, attempt, "notification sent");
            }
            Err(SendError::Retry(error)) if (attempt as usize) <= self.0.config.retry_delays_secs.len() => {
                let delay = self.0.config.retry_delays_secs[attempt as usize - 1];
                let at = now + SignedDuration::from_secs(i64::try_from(delay).unwrap_or(i64::MAX / 2));
                store.mark_notification_failed(delivery.id, attempt, &error, Some(at)).await?;
                tracing::warn!(delivery.id = span.0, channel.id = span.1, event = span.2, attempt, retry_at = %at, error,
                    "notification not sent; will retry");
            }
            Err(SendError::Retry(error) | SendError::Permanent(error)) => {
                store.mark_notification_failed(delivery.id, attempt, &error, None).await?;
                tracing::warn!(
                    delivery.id = span.0,
                    channel.id = span.1,
                    event = span.2,
                    attempt,
                    error,
                    "notification failed for good"
                );
            }
        }
        Ok(())
    }

    /// Emits `certificate.expiring` for each certificate that expires within
    /// `notifications.certificate_expiry_days` and was not notified before; returns how many.
    pub async fn check_certificates(&self) -> Result<usize, NotifyError> {
        let now = self.0.clock.now();
        let days = i64::try_from(self.0.config.certificate_expiry_days).unwrap_or(14);
        let until = now + SignedDuration::from_hours(24 * days);
        let mut emitted = 0;
        for cert in self.0.store.expiring_certificates(now, until).await? {
            if !self.0.store.take_notification_mark(&format!("certificate.expiring:{}", cert.serial), now).await? {
                continue;
            }
            self.emit(NotificationEvent::CertificateExpiring {
                serial: cert.serial,
                subject: cert.common_name,
                host_id: cert.host_id.map(|h| h.0),
                expires_at: cert.not_after,
            })
            .await?;
            emitted += 1;
        }
        Ok(emitted)
    }

    /// Emits a `security.digest` of the security updates no digest reported before; nothing when
    /// there are none. Returns the number of updates in it.
    pub async fn send_security_digest(&self) -> Result<usize, NotifyError> {
        let now = self.0.clock.now();
        let updates = self.0.store.take_new_security_updates(now).await?;
        if updates.is_empty() {
            return Ok(0);
        }
        let items: Vec<DigestItem> = updates
            .into_iter()
            .map(|u| DigestItem {
                host_id: u.host_id.0,
                hostname: u.hostname,
                package: u.name,
                arch: u.arch,
                current_version: u.current_version,
                version: u.candidate_version,
                severity: u.severity,
                cves: u.cves,
            })
            .collect();
        let count = items.len();
        self.emit(digest(items)).await?;
        Ok(count)
    }

    /// The checks [`run`] makes every few minutes: expiring certificates, and from
    /// `notifications.digest_hour` (UTC) on, once per day (across replicas), the digest; then
    /// old deliveries are pruned.
    pub async fn daily_checks(&self) -> Result<(), NotifyError> {
        let now = self.0.clock.now();
        self.check_certificates().await?;
        let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
        if utc.hour() >= i8::try_from(self.0.config.digest_hour).unwrap_or(0) {
            let key = format!("security.digest:{}", utc.date());
            if self.0.store.take_notification_mark(&key, now).await? {
                self.send_security_digest().await?;
            }
        }
        let days = i64::try_from(self.0.config.retention_days).unwrap_or(30);
        let before = now - SignedDuration::from_hours(24 * days);
        self.0.store.prune_notification_deliveries(before).await?;
        self.0.store.prune_notification_marks("security.digest:", before).await?;
        Ok(())
    }
}

/// A digest event of `items`.
fn digest(items: Vec<DigestItem>) -> NotificationEvent {
    let mut hosts: Vec<i64> = items.iter().map(|i| i.host_id).collect();
    hosts.sort_unstable();
    hosts.dedup();
    NotificationEvent::SecurityDigest {
        hosts: u32::try_from(hosts.len()).unwrap_or(u32::MAX),
        updates: u32::try_from(items.len()).unwrap_or(u32::MAX),
        items,
    }
}

/// The sender and the daily checks, until `stop` turns `true`.
pub async fn run(notifier: Notifier, mut stop: tokio::sync::watch::Receiver<bool>) {
    let poll = Duration::from_secs(notifier.0.config.poll_secs.max(1));
    let mut checks = tokio::time::interval(CHECK_INTERVAL);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if *stop.borrow() {
            return;
        }
        let busy = match notifier.send_due().await {
            Ok(n) => n as u32 == CLAIM_BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "claiming notifications failed");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = notifier.0.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = checks.tick() => {
                if let Err(e) = notifier.daily_checks().await {
                    tracing::warn!(error = %e, "notification checks failed");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
