//! Notifications: channels (SMTP or webhook), rules that pick events and recipients, and the
//! outbox of deliveries.
//!
//! **The outbox.** An event becomes one `pending` delivery row per matching (rule, channel), in
//! one transaction ([`Store::enqueue_notification_deliveries`]), so nothing is lost when the
//! process stops before sending. A sender claims due rows ([`Store::claim_notification_deliveries`])
//! in one statement that moves them to `sending` with a lock expiry: PostgreSQL picks them with
//! `FOR UPDATE SKIP LOCKED`, SQLite's single `UPDATE … RETURNING` holds the write lock, so two
//! senders (two replicas) never get the same row. A claim whose sender died lapses at
//! `locked_until` and the row is due again. Every finishing write names the attempt it finishes,
//! so a sender whose claim lapsed cannot overwrite the outcome of the attempt that followed.
//!
//! **Once-only facts** ([`Store::take_notification_mark`]) make the daily checks idempotent
//! across replicas: whoever inserts the mark first does the work.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::error::{Error, Result, ResultExt};
use crate::sql::{ms, ms_after, prefixed, to_json, RowExt, SqlBuilder};
use crate::types::{
    text_enum, GroupId, HostId, NotificationChannelId, NotificationDeliveryId, NotificationRuleId, Page, Paging,
};
use crate::{Backend, Store};

text_enum! {
    /// How a channel delivers.
    ChannelKind ("channel kind") {
        /// E-mail over SMTP.
        Smtp = "smtp",
        /// An HTTP POST of JSON.
        Webhook = "webhook",
    }
}

text_enum! {
    /// Where a delivery is in its lifecycle.
    DeliveryStatus ("delivery status") {
        /// Waiting for its next attempt.
        Pending = "pending",
        /// Claimed by a sender.
        Sending = "sending",
        /// Delivered.
        Sent = "sent",
        /// Given up: a permanent error, or the last attempt failed.
        Failed = "failed",
    }
}

/// A configured channel. `Debug` does not show the sealed secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NotificationChannel {
    /// Its id.
    pub id: NotificationChannelId,
    /// Unique name.
    pub name: String,
    /// SMTP or webhook.
    pub kind: ChannelKind,
    /// The kind's settings (validated by the caller; never a secret).
    pub settings: serde_json::Value,
    /// The SMTP password or webhook signing secret, sealed by the caller.
    pub secret: Option<Vec<u8>>,
    /// Disabled channels get no new deliveries.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for NotificationChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationChannel")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("settings", &self.settings)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A channel to create, or the new state of one ([`Store::update_notification_channel`]).
#[derive(Clone, PartialEq, Eq)]
pub struct NewNotificationChannel {
    /// Unique name.
    pub name: String,
    /// SMTP or webhook (cannot change on update).
    pub kind: ChannelKind,
    /// The kind's settings.
    pub settings: serde_json::Value,
    /// Sealed secret.
    pub secret: Option<Vec<u8>>,
    /// Enabled.
    pub enabled: bool,
}

impl std::fmt::Debug for NewNotificationChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewNotificationChannel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// A rule: which events go to which channel (and, for SMTP, to whom).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationRule {
    /// Its id.
    pub id: NotificationRuleId,
    /// Unique name.
    pub name: String,
    /// Event kinds (`deployment.finished`, …).
    pub events: Vec<String>,
    /// Where they go.
    pub channel_id: NotificationChannelId,
    /// E-mail addresses (SMTP channels).
    pub recipients: Vec<String>,
    /// Host events only for hosts in this group.
    pub group_id: Option<GroupId>,
    /// Disabled rules match nothing.
    pub enabled: bool,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// A rule to create, or the new state of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotificationRule {
    /// Unique name.
    pub name: String,
    /// Event kinds.
    pub events: Vec<String>,
    /// The channel.
    pub channel_id: NotificationChannelId,
    /// E-mail addresses.
    pub recipients: Vec<String>,
    /// Group filter for host events.
    pub group_id: Option<GroupId>,
    /// Enabled.
    pub enabled: bool,
}

/// A delivery to write to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The channel it goes through.
    pub channel_id: NotificationChannelId,
    /// The rule that matched (none for a channel's test message).
    pub rule_id: Option<NotificationRuleId>,
    /// Event kind.
    pub event: String,
    /// Id shared by the deliveries of one event.
    pub event_id: String,
    /// E-mail addresses.
    pub recipients: Vec<String>,
    /// The event as JSON.
    pub payload: serde_json::Value,
}

/// A delivery in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotificationDelivery {
    /// Its id.
    pub id: NotificationDeliveryId,
    /// The channel.
    pub channel_id: NotificationChannelId,
    /// The rule (unset once the rule is deleted).
    pub rule_id: Option<NotificationRuleId>,
    /// Event kind.
    pub event: String,
    /// Id shared by the deliveries of one event.
    pub event_id: String,
    /// E-mail addresses.
    pub recipients: Vec<String>,
    /// The event as JSON.
    pub payload: serde_json::Value,
    /// Lifecycle state.
    pub status: DeliveryStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// When it is due (for `pending`).
    pub next_attempt_at: Timestamp,
    /// While `sending`: when the claim lapses.
    pub locked_until: Option<Timestamp>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it was written.
    pub created_at: Timestamp,
    /// When it was delivered.
    pub sent_at: Option<Timestamp>,
}

/// Which deliveries [`Store::list_notification_deliveries`] returns, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this channel.
    pub channel: Option<NotificationChannelId>,
    /// Page.
    pub paging: Paging,
}

/// A security update not reported by a digest before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestUpdate {
    /// The host.
    pub host_id: HostId,
    /// Its name.
    pub hostname: String,
    /// Package.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Installed version.
    pub current_version: String,
    /// Version the update installs.
    pub candidate_version: String,
    /// Severity, where known.
    pub severity: Option<String>,
    /// CVE ids, where known.
    pub cves: Vec<String>,
}

/// A certificate that expires soon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiringCertificate {
    /// Serial (hex).
    pub serial: String,
    /// Common name.
    pub common_name: String,
    /// Its host, if any.
    pub host_id: Option<HostId>,
    /// When it expires.
    pub not_after: Timestamp,
}

const CHANNEL_COLUMNS: &str = "id, name, kind, settings, secret, enabled, created_at, updated_at";
const RULE_COLUMNS: &str = "id, name, events, channel_id, recipients, group_id, enabled, created_at, updated_at";
const DELIVERY_COLUMNS: &str = "id, channel_id, rule_id, event, event_id, recipients, payload, status, attempts, \
    next_attempt_at, locked_until, last_error, created_at, sent_at";
const CHANNEL_UNIQUES: &[(&str, &str)] = &[("name", "channel name")];
const RULE_UNIQUES: &[(&str, &str)] = &[("name", "rule name")];
/// `security_class` of a security fix in `host_updates`.
const SECURITY: &str = "security";
/// Longest stored error text, in bytes.
const MAX_ERROR: usize = 2000;

fn channel_from_row(row: &impl RowExt) -> Result<NotificationChannel> {
    Ok(NotificationChannel {
        id: NotificationChannelId(row.int("id")?),
        name: row.text("name")?,
        kind: row.parse("kind")?,
        settings: row.json("settings")?,
        secret: row.opt_blob("secret")?,
        enabled: row.flag("enabled")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

fn rule_from_row(row: &impl RowExt) -> Result<NotificationRule> {
    Ok(NotificationRule {
        id: NotificationRuleId(row.int("id")?),
        name: row.text("name")?,
        events: row.json("events")?,
        channel_id: NotificationChannelId(row.int("channel_id")?),
        recipients: row.json("recipients")?,
        group_id: row.opt_int("group_id")?.map(GroupId),
        enabled: row.flag("enabled")?,
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<NotificationDelivery> {
    Ok(NotificationDelivery {
        id: NotificationDeliveryId(row.int("id")?),
        channel_id: NotificationChannelId(row.int("channel_id")?),
        rule_id: row.opt_int("rule_id")?.map(NotificationRuleId),
        event: row.text("event")?,
        event_id: row.text("event_id")?,
        recipients: row.json("recipients")?,
        payload: row.json("payload")?,
        status: row.parse("status")?,
        attempts: row.count("attempts")?,
        next_attempt_at: row.ts("next_attempt_at")?,
        locked_until: row.opt_ts("locked_until")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.ts("created_at")?,
        sent_at: row.opt_ts("sent_at")?,
    })
}

fn check_name(name: &str, what: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::Invalid(format!("{what} name is empty")));
    }
    Ok(name.to_owned())
}

/// `error` cut at a character boundary to [`MAX_ERROR`] bytes.
fn stored_error(error: &str) -> &str {
    let mut end = error.len().min(MAX_ERROR);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

impl Store {
    /// Creates a channel. [`Error::Conflict`] when the name is taken.
    pub async fn create_notification_channel(
        &self,
        new: &NewNotificationChannel,
        now: Timestamp,
    ) -> Result<NotificationChannel> {
        let row = sqlx::query(&format!(
            "INSERT INTO notification_channels (name, kind, settings, secret, enabled, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {CHANNEL_COLUMNS}"
        ))
        .bind(check_name(&new.name, "channel")?)
        .bind(new.kind.as_str())
        .bind(to_json(&new.settings, "channel settings")?)
        .bind(new.secret.as_deref())
        .bind(i64::from(new.enabled))
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(CHANNEL_UNIQUES, "record")?;
        channel_from_row(&row)
    }

    /// Every channel, by name.
    pub async fn list_notification_channels(&self) -> Result<Vec<NotificationChannel>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM notification_channels ORDER BY {}, id",
            self.text_order("name")
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(channel_from_row).collect()
    }

    /// The channel with this id.
    pub async fn get_notification_channel(&self, id: NotificationChannelId) -> Result<Option<NotificationChannel>> {
        let row = sqlx::query(&format!("SELECT {CHANNEL_COLUMNS} FROM notification_channels WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(channel_from_row).transpose()
    }

    /// Replaces a channel's name, settings, secret and enabled flag (its kind stays).
    /// [`Error::NotFound`], or [`Error::Conflict`] when the new name is taken.
    pub async fn update_notification_channel(
        &self,
        id: NotificationChannelId,
        new: &NewNotificationChannel,
        now: Timestamp,
    ) -> Result<NotificationChannel> {
        let row = sqlx::query(&format!(
            "UPDATE notification_channels SET name = $2, settings = $3, secret = $4, enabled = $5, updated_at = $6 \
             WHERE id = $1 RETURNING {CHANNEL_COLUMNS}"
        ))
        .bind(id.0)
        .bind(check_name(&new.name, "channel")?)
        .bind(to_json(&new.settings, "channel settings")?)
        .bind(new.secret.as_deref())
        .bind(i64::from(new.enabled))
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .classify(CHANNEL_UNIQUES, "record")?;
        row.as_ref().map(channel_from_row).transpose()?.ok_or(Error::NotFound("notification channel"))
    }

    /// Deletes a channel with its rules and deliveries.
    pub async fn delete_notification_channel(&self, id: NotificationChannelId) -> Result<()> {
        let done =
            sqlx::query("DELETE FROM notification_channels WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("notification channel"));
        }
        Ok(())
    }

    /// Creates a rule. [`Error::Conflict`] when the name is taken, [`Error::MissingReference`]
    /// when the channel or group does not exist.
    pub async fn create_notification_rule(
        &self,
        new: &NewNotificationRule,
        now: Timestamp,
    ) -> Result<NotificationRule> {
        let row = sqlx::query(&format!(
            "INSERT INTO notification_rules (name, events, channel_id, recipients, group_id, enabled, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {RULE_COLUMNS}"
        ))
        .bind(check_name(&new.name, "rule")?)
        .bind(to_json(&new.events, "events")?)
        .bind(new.channel_id.0)
        .bind(to_json(&new.recipients, "recipients")?)
        .bind(new.group_id.map(|g| g.0))
        .bind(i64::from(new.enabled))
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(RULE_UNIQUES, "channel or group")?;
        rule_from_row(&row)
    }

    /// Every rule, by name.
    pub async fn list_notification_rules(&self) -> Result<Vec<NotificationRule>> {
        let rows = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM notification_rules ORDER BY {}, id",
            self.text_order("name")
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// The rule with this id.
    pub async fn get_notification_rule(&self, id: NotificationRuleId) -> Result<Option<NotificationRule>> {
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM notification_rules WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rule_from_row).transpose()
    }

    /// Replaces a rule.
    pub async fn update_notification_rule(
        &self,
        id: NotificationRuleId,
        new: &NewNotificationRule,
        now: Timestamp,
    ) -> Result<NotificationRule> {
        let row = sqlx::query(&format!(
            "UPDATE notification_rules SET name = $2, events = $3, channel_id = $4, recipients = $5, group_id = $6, \
             enabled = $7, updated_at = $8 WHERE id = $1 RETURNING {RULE_COLUMNS}"
        ))
        .bind(id.0)
        .bind(check_name(&new.name, "rule")?)
        .bind(to_json(&new.events, "events")?)
        .bind(new.channel_id.0)
        .bind(to_json(&new.recipients, "recipients")?)
        .bind(new.group_id.map(|g| g.0))
        .bind(i64::from(new.enabled))
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .classify(RULE_UNIQUES, "channel or group")?;
        row.as_ref().map(rule_from_row).transpose()?.ok_or(Error::NotFound("notification rule"))
    }

    /// Deletes a rule (its past deliveries stay, without their rule).
    pub async fn delete_notification_rule(&self, id: NotificationRuleId) -> Result<()> {
        let done = sqlx::query("DELETE FROM notification_rules WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("notification rule"));
        }
        Ok(())
    }

    /// The enabled rules whose channel is enabled, with their channels, by rule id.
    pub async fn active_notification_rules(&self) -> Result<Vec<(NotificationRule, NotificationChannel)>> {
        let rows = sqlx::query(&format!(
            "SELECT {}, {} FROM notification_rules r JOIN notification_channels c ON c.id = r.channel_id \
             WHERE r.enabled = 1 AND c.enabled = 1 ORDER BY r.id",
            crate::sql::aliased("r", "r_", RULE_COLUMNS),
            crate::sql::aliased("c", "c_", CHANNEL_COLUMNS),
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let rule = rule_from_row(&crate::sql::Prefixed(row, "r_"))?;
                let channel = channel_from_row(&crate::sql::Prefixed(row, "c_"))?;
                Ok((rule, channel))
            })
            .collect()
    }

    /// Writes deliveries to the outbox, all or none, due at `now`; returns their ids.
    pub async fn enqueue_notification_deliveries(
        &self,
        deliveries: &[NewDelivery],
        now: Timestamp,
    ) -> Result<Vec<NotificationDeliveryId>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut ids = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let row = sqlx::query(
                "INSERT INTO notification_deliveries (channel_id, rule_id, event, event_id, recipients, payload, \
                 status, attempts, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7) \
                 RETURNING id",
            )
            .bind(delivery.channel_id.0)
            .bind(delivery.rule_id.map(|r| r.0))
            .bind(&delivery.event)
            .bind(&delivery.event_id)
            .bind(to_json(&delivery.recipients, "recipients")?)
            .bind(to_json(&delivery.payload, "payload")?)
            .bind(ms(now))
            .fetch_one(&mut *tx)
            .await
            .classify(&[], "channel or rule")?;
            ids.push(NotificationDeliveryId(row.int("id")?));
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Claims up to `limit` due deliveries: `pending` ones whose `next_attempt_at` has come, and
    /// `sending` ones whose claim lapsed. Each moves to `sending` until `now + lock`, with one
    /// more attempt counted. Atomic: of concurrent callers, each delivery goes to one.
    pub async fn claim_notification_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
        lock: SignedDuration,
    ) -> Result<Vec<NotificationDelivery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let due = "(status = 'pending' AND next_attempt_at <= $1) OR (status = 'sending' AND locked_until <= $1)";
        let pick = format!("SELECT id FROM notification_deliveries WHERE {due} ORDER BY next_attempt_at, id LIMIT $3");
        let set = "status = 'sending', locked_until = $2, attempts = attempts + 1";
        let sql = match self.backend {
            // Picked once, in a materialized CTE (see `claim_commands` for why), skipping rows
            // another claimer has locked.
            Backend::Postgres => format!(
                "WITH picked AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) \
                 UPDATE notification_deliveries SET {set} FROM picked \
                 WHERE notification_deliveries.id = picked.id RETURNING {}",
                prefixed("notification_deliveries", DELIVERY_COLUMNS)
            ),
            Backend::Sqlite => format!(
                "UPDATE notification_deliveries SET {set} WHERE ({due}) AND id IN ({pick}) RETURNING {DELIVERY_COLUMNS}"
            ),
        };
        let rows = sqlx::query(&sql)
            .bind(ms(now))
            .bind(ms_after(now, lock)?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = rows.iter().map(delivery_from_row).collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|d| d.id);
        Ok(claimed)
    }

    /// Records that attempt number `attempt` of a claimed delivery succeeded; `false` when the
    /// claim had lapsed and someone else holds the delivery now.
    pub async fn mark_notification_sent(
        &self,
        id: NotificationDeliveryId,
        attempt: u32,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE notification_deliveries SET status = 'sent', sent_at = $3, locked_until = NULL, last_error = NULL \
             WHERE id = $1 AND attempts = $2 AND status = 'sending'",
        )
        .bind(id.0)
        .bind(i64::from(attempt))
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records that attempt `attempt` failed: with `retry_at`, the delivery is `pending` again
    /// until then; without, it is `failed` for good.
    pub async fn mark_notification_failed(
        &self,
        id: NotificationDeliveryId,
        attempt: u32,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<bool> {
        let done = match retry_at {
            Some(at) => sqlx::query(
                "UPDATE notification_deliveries SET status = 'pending', next_attempt_at = $3, locked_until = NULL, \
                 last_error = $4 WHERE id = $1 AND attempts = $2 AND status = 'sending'",
            )
            .bind(id.0)
            .bind(i64::from(attempt))
            .bind(ms(at))
            .bind(stored_error(error))
            .execute(&self.pool)
            .await?,
            None => {
                sqlx::query(
                    "UPDATE notification_deliveries SET status = 'failed', locked_until = NULL, last_error = $3 \
                 WHERE id = $1 AND attempts = $2 AND status = 'sending'",
                )
                .bind(id.0)
                .bind(i64::from(attempt))
                .bind(stored_error(error))
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    /// The delivery with this id.
    pub async fn get_notification_delivery(&self, id: NotificationDeliveryId) -> Result<Option<NotificationDelivery>> {
        let row = sqlx::query(&format!("SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// One page of deliveries, newest first.
    pub async fn list_notification_deliveries(&self, filter: &DeliveryFilter) -> Result<Page<NotificationDelivery>> {
        let mut sql = SqlBuilder::default();
        if let Some(status) = filter.status {
            let status = sql.arg(status.as_str());
            sql.condition(format!("status = {status}"));
        }
        if let Some(channel) = filter.channel {
            let channel = sql.arg(channel.0);
            sql.condition(format!("channel_id = {channel}"));
        }
        self.fetch_page(sql, DELIVERY_COLUMNS, "notification_deliveries", "id DESC", filter.paging, delivery_from_row)
            .await
    }

    /// Deletes `sent` and `failed` deliveries created before `before`; returns how many.
    pub async fn prune_notification_deliveries(&self, before: Timestamp) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM notification_deliveries WHERE status IN ('sent', 'failed') AND created_at < $1")
                .bind(ms(before))
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected())
    }

    /// Records the once-only fact `key`; `true` for the one caller that recorded it first.
    pub async fn take_notification_mark(&self, key: &str, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO notification_marks (key, created_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets once-only facts recorded before `before` whose key starts with `prefix`.
    pub async fn prune_notification_marks(&self, prefix: &str, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM notification_marks WHERE key LIKE $1 AND created_at < $2")
            .bind(format!("{}%", prefix.replace(['%', '_'], "")))
            .bind(ms(before))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The security updates no digest reported yet, which are recorded as reported now (one
    /// transaction); reported updates that are gone from every inventory are forgotten, so one
    /// that comes back is new again. Ordered by hostname, then package.
    pub async fn take_new_security_updates(&self, now: Timestamp) -> Result<Vec<DigestUpdate>> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM notification_digest_items WHERE NOT EXISTS (SELECT 1 FROM host_updates u \
             WHERE u.host_id = notification_digest_items.host_id AND u.name = notification_digest_items.name \
             AND u.arch = notification_digest_items.arch \
             AND u.candidate_version = notification_digest_items.candidate_version)",
        )
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(&format!(
            "SELECT u.host_id, h.hostname, u.name, u.arch, u.current_version, u.candidate_version, u.severity, u.cves \
             FROM host_updates u JOIN hosts h ON h.id = u.host_id WHERE u.security_class = $1 AND NOT EXISTS \
             (SELECT 1 FROM notification_digest_items d WHERE d.host_id = u.host_id AND d.name = u.name \
             AND d.arch = u.arch AND d.candidate_version = u.candidate_version) ORDER BY {}, u.host_id, {}, {}",
            self.text_order("h.hostname"),
            self.text_order("u.name"),
            self.text_order("u.arch"),
        ))
        .bind(SECURITY)
        .fetch_all(&mut *tx)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let item = DigestUpdate {
                host_id: HostId(row.int("host_id")?),
                hostname: row.text("hostname")?,
                name: row.text("name")?,
                arch: row.text("arch")?,
                current_version: row.text("current_version")?,
                candidate_version: row.text("candidate_version")?,
                severity: row.opt_text("severity")?,
                cves: row.json("cves")?,
            };
            sqlx::query(
                "INSERT INTO notification_digest_items (host_id, name, arch, candidate_version, created_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(item.host_id.0)
            .bind(&item.name)
            .bind(&item.arch)
            .bind(&item.candidate_version)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
            items.push(item);
        }
        tx.commit().await?;
        Ok(items)
    }

    /// Unrevoked certificates that expire after `now` and no later than `until`, leaving out
    /// those already replaced (a newer unrevoked certificate of the same kind and common name
    /// that lasts longer). By expiry.
    pub async fn expiring_certificates(&self, now: Timestamp, until: Timestamp) -> Result<Vec<ExpiringCertificate>> {
        let rows = sqlx::query(
            "SELECT c.serial, c.common_name, c.host_id, c.not_after_at FROM certificates c \
             WHERE c.revoked_at IS NULL AND c.not_after_at > $1 AND c.not_after_at <= $2 AND NOT EXISTS \
             (SELECT 1 FROM certificates n WHERE n.kind = c.kind AND n.common_name = c.common_name \
             AND n.revoked_at IS NULL AND n.not_after_at > c.not_after_at) ORDER BY c.not_after_at, c.serial",
        )
        .bind(ms(now))
        .bind(ms(until))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ExpiringCertificate {
                    serial: row.text("serial")?,
                    common_name: row.text("common_name")?,
                    host_id: row.opt_int("host_id")?.map(HostId),
                    not_after: row.ts("not_after_at")?,
                })
            })
            .collect()
    }
}
