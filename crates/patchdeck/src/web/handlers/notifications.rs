//! `/api/v1/notification-channels…`, `/api/v1/notification-rules…` and
//! `/api/v1/notification-deliveries` (admins): where notifications go, which events go there,
//! and what happened to each delivery (docs/notifications.md). Channel secrets (the SMTP
//! password, the webhook signing secret) are write-only: answers say only `secret_set`.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use patchdeck_store::{
    ChannelKind, DeliveryFilter, DeliveryStatus, GroupId, NewNotificationChannel, NewNotificationRule,
    NotificationChannel, NotificationChannelId, NotificationDelivery, NotificationRule, NotificationRuleId,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::notify::channel::{check_address, SmtpSettings, WebhookSettings};
use crate::notify::{NotificationEvent, SendError, EVENT_KINDS};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::{page_of, ListResponse, PageParams};
use crate::web::{Json, Path, Query};

/// Longest channel or rule name, in characters.
const MAX_NAME: usize = 64;
/// Longest secret, in bytes.
const MAX_SECRET: usize = 1024;
/// Most recipients of one rule.
const MAX_RECIPIENTS: usize = 50;

/// A channel as the API shows it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    pub id: i64,
    pub name: String,
    /// `smtp` or `webhook`.
    pub kind: String,
    pub enabled: bool,
    /// The kind's settings ([`SmtpSettings`] or [`WebhookSettings`]).
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Whether a secret (SMTP password, webhook signing secret) is set. The secret itself is
    /// never returned.
    pub secret_set: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&NotificationChannel> for ChannelView {
    fn from(c: &NotificationChannel) -> Self {
        ChannelView {
            id: c.id.0,
            name: c.name.clone(),
            kind: c.kind.as_str().to_owned(),
            enabled: c.enabled,
            settings: c.settings.clone(),
            secret_set: c.secret.is_some(),
            created_at: c.created_at.to_string(),
            updated_at: c.updated_at.to_string(),
        }
    }
}

/// A rule as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub id: i64,
    pub name: String,
    /// Event kinds: `deployment.finished`, `deployment.failed`, `deployment.halted`,
    /// `host.unreachable`, `security.digest`, `certificate.expiring`.
    pub events: Vec<String>,
    pub channel_id: i64,
    /// E-mail addresses (SMTP channels).
    pub recipients: Vec<String>,
    /// Host events (and digest lines) only for hosts of this group.
    pub group_id: Option<i64>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&NotificationRule> for RuleView {
    fn from(r: &NotificationRule) -> Self {
        RuleView {
            id: r.id.0,
            name: r.name.clone(),
            events: r.events.clone(),
            channel_id: r.channel_id.0,
            recipients: r.recipients.clone(),
            group_id: r.group_id.map(|g| g.0),
            enabled: r.enabled,
            created_at: r.created_at.to_string(),
            updated_at: r.updated_at.to_string(),
        }
    }
}

/// A delivery in the outbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: i64,
    pub channel_id: i64,
    pub rule_id: Option<i64>,
    /// Event kind.
    pub event: String,
    /// Shared by the deliveries of one event.
    pub event_id: String,
    pub recipients: Vec<String>,
    /// The event: `{occurred_at, kind, data}`.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// `pending`, `sending`, `sent` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
}

impl From<&NotificationDelivery> for DeliveryView {
    fn from(d: &NotificationDelivery) -> Self {
        DeliveryView {
            id: d.id.0,
            channel_id: d.channel_id.0,
            rule_id: d.rule_id.map(|r| r.0),
            event: d.event.clone(),
            event_id: d.event_id.clone(),
            recipients: d.recipients.clone(),
            payload: d.payload.clone(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.to_string(),
            last_error: d.last_error.clone(),
            created_at: d.created_at.to_string(),
            sent_at: d.sent_at.map(|t| t.to_string()),
        }
    }
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name", format!("must be 1 to {MAX_NAME} printable characters")));
    }
    Ok(name.to_owned())
}

/// The settings of `kind`, checked and normalised.
fn check_settings(kind: ChannelKind, settings: Value, has_secret: bool) -> ApiResult<Value> {
    if !settings.is_object() {
        return Err(ApiError::validation("settings", "must be an object"));
    }
    let invalid = |e: serde_json::Error| ApiError::validation("settings", e.to_string());
    let checked = match kind {
        ChannelKind::Smtp => {
            let mut smtp: SmtpSettings = serde_json::from_value(settings).map_err(invalid)?;
            smtp.check(has_secret).map_err(|e| ApiError::validation(&e.field, e.message))?;
            serde_json::to_value(smtp)
        }
        ChannelKind::Webhook => {
            let mut hook: WebhookSettings = serde_json::from_value(settings).map_err(invalid)?;
            hook.check(has_secret).map_err(|e| ApiError::validation(&e.field, e.message))?;
            serde_json::to_value(hook)
        }
    };
    checked.map_err(ApiError::internal)
}

fn check_secret(secret: &str) -> ApiResult<()> {
    if secret.is_empty() || secret.len() > MAX_SECRET || secret.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "secret",
            format!("must be 1 to {MAX_SECRET} bytes without control characters"),
        ));
    }
    Ok(())
}

async fn load_channel(state: &AppState, id: i64) -> ApiResult<NotificationChannel> {
    state
        .store()
        .get_notification_channel(NotificationChannelId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("notification channel"))
}

async fn load_rule(state: &AppState, id: i64) -> ApiResult<NotificationRule> {
    state
        .store()
        .get_notification_rule(NotificationRuleId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("notification rule"))
}

fn audit(principal: &Principal, action: &'static str, target: String, details: Value) -> AuditEvent {
    AuditEvent::new(principal.actor(), action, Outcome::Success)
        .user(principal.user_id())
        .target(target)
        .source(principal.source_ip.clone())
        .details(details)
}

/// Every channel, by name.
#[utoipa::path(get, path = "/api/v1/notification-channels", tag = "notifications",
    responses((status = 200, body = Vec<ChannelView>)))]
pub async fn list_notification_channels(State(state): State<AppState>) -> ApiResult<Json<Vec<ChannelView>>> {
    Ok(Json(state.store().list_notification_channels().await?.iter().map(ChannelView::from).collect()))
}

/// One channel.
#[utoipa::path(get, path = "/api/v1/notification-channels/{id}", tag = "notifications",
    params(("id" = i64, Path)), responses((status = 200, body = ChannelView), (status = 404)))]
pub async fn get_notification_channel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<ChannelView>> {
    Ok(Json(ChannelView::from(&load_channel(&state, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChannelRequest {
    /// 1–64 printable characters, unique.
    pub name: String,
    /// `smtp` or `webhook`.
    pub kind: String,
    /// Default `true`.
    pub enabled: Option<bool>,
    /// SMTP: `{host, port?, mode: starttls|tls|none, username?, from, ca_pem?}`; webhook:
    /// `{url, format: generic|slack|discord, ca_pem?}`.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// The SMTP password or the webhook signing secret (required for the generic format).
    /// Write-only.
    pub secret: Option<String>,
}

/// Creates a channel.
#[utoipa::path(post, path = "/api/v1/notification-channels", tag = "notifications",
    request_body = CreateChannelRequest,
    responses((status = 201, body = ChannelView), (status = 400), (status = 409)))]
pub async fn create_notification_channel(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateChannelRequest>,
) -> ApiResult<(StatusCode, Json<ChannelView>)> {
    let name = check_name(&body.name)?;
    let kind: ChannelKind =
        body.kind.parse().map_err(|_| ApiError::validation("kind", "must be \"smtp\" or \"webhook\""))?;
    if let Some(secret) = &body.secret {
        check_secret(secret)?;
    }
    let settings = check_settings(kind, body.settings, body.secret.is_some())?;
    let secret =
        body.secret.as_deref().map(|s| state.notifier().seal_secret(s)).transpose().map_err(ApiError::internal)?;
    let new = NewNotificationChannel { name, kind, settings, secret, enabled: body.enabled.unwrap_or(true) };
    let channel = state.store().create_notification_channel(&new, state.now()).await?;
    state
        .audit(audit(
            &principal,
            "notification_channel.create",
            format!("notification_channel:{}", channel.id),
            json!({ "name": channel.name, "kind": channel.kind.as_str(), "enabled": channel.enabled,
                    "secret_set": channel.secret.is_some() }),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(ChannelView::from(&channel))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateChannelRequest {
    pub name: String,
    pub enabled: bool,
    /// The kind's whole settings (the kind cannot change).
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Left out: the secret stays. A string: the new secret. `""`: no secret.
    pub secret: Option<String>,
}

/// Replaces a channel's name, settings, secret and enabled flag.
#[utoipa::path(put, path = "/api/v1/notification-channels/{id}", tag = "notifications",
    params(("id" = i64, Path)), request_body = UpdateChannelRequest,
    responses((status = 200, body = ChannelView), (status = 400), (status = 404), (status = 409)))]
pub async fn update_notification_channel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<UpdateChannelRequest>,
) -> ApiResult<Json<ChannelView>> {
    let channel = load_channel(&state, id).await?;
    let name = check_name(&body.name)?;
    let secret = match body.secret.as_deref() {
        None => channel.secret.clone(),
        Some("") => None,
        Some(secret) => {
            check_secret(secret)?;
            Some(state.notifier().seal_secret(secret).map_err(ApiError::internal)?)
        }
    };
    let settings = check_settings(channel.kind, body.settings, secret.is_some())?;
    let new = NewNotificationChannel { name, kind: channel.kind, settings, secret, enabled: body.enabled };
    let updated = state.store().update_notification_channel(channel.id, &new, state.now()).await?;
    state
        .audit(audit(
            &principal,
            "notification_channel.update",
            format!("notification_channel:{}", updated.id),
            json!({ "name": updated.name, "enabled": updated.enabled, "secret_set": updated.secret.is_some(),
                    "secret_changed": body.secret.is_some() }),
        ))
        .await;
    Ok(Json(ChannelView::from(&updated)))
}

/// Deletes a channel with its rules and its deliveries.
#[utoipa::path(delete, path = "/api/v1/notification-channels/{id}", tag = "notifications",
    params(("id" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn delete_notification_channel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let channel = load_channel(&state, id).await?;
    state.store().delete_notification_channel(channel.id).await?;
    state
        .audit(audit(
            &principal,
            "notification_channel.delete",
            format!("notification_channel:{}", channel.id),
            json!({ "name": channel.name, "kind": channel.kind.as_str() }),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestChannelRequest {
    /// E-mail addresses (required for an SMTP channel).
    #[serde(default)]
    pub recipients: Vec<String>,
}

/// The outcome of a test message.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestChannelResult {
    /// Whether the message was accepted by the SMTP server or webhook receiver.
    pub delivered: bool,
    /// Why not, in plain words.
    pub error: Option<String>,
}

/// Sends a test message through the channel now (not through the outbox) and says whether it
/// arrived, or why not.
#[utoipa::path(post, path = "/api/v1/notification-channels/{id}/test", tag = "notifications",
    params(("id" = i64, Path)), request_body = TestChannelRequest,
    responses((status = 200, body = TestChannelResult), (status = 400), (status = 404)))]
pub async fn test_notification_channel(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<TestChannelRequest>,
) -> ApiResult<Json<TestChannelResult>> {
    let channel = load_channel(&state, id).await?;
    let recipients = check_recipients(channel.kind, &body.recipients)?;
    let event = NotificationEvent::Test { channel: channel.name.clone() };
    let delivery = format!("test-{}", uuid::Uuid::new_v4());
    let result = state.notifier().send_via(&channel, &recipients, &event, state.now(), &delivery).await;
    let error = result.err().map(|e| match e {
        SendError::Retry(m) | SendError::Permanent(m) => m,
    });
    let outcome = if error.is_none() { Outcome::Success } else { Outcome::Failure };
    state
        .audit(
            AuditEvent::new(principal.actor(), "notification_channel.test", outcome)
                .user(principal.user_id())
                .target(format!("notification_channel:{}", channel.id))
                .source(principal.source_ip.clone())
                .details(json!({ "name": channel.name, "recipients": recipients, "error": error })),
        )
        .await;
    Ok(Json(TestChannelResult { delivered: error.is_none(), error }))
}

/// Recipients checked for a channel of `kind`: required (and e-mail addresses) for SMTP, none
/// for webhooks.
fn check_recipients(kind: ChannelKind, recipients: &[String]) -> ApiResult<Vec<String>> {
    match kind {
        ChannelKind::Smtp => {
            if recipients.is_empty() {
                return Err(ApiError::validation("recipients", "an SMTP channel needs at least one e-mail address"));
            }
            if recipients.len() > MAX_RECIPIENTS {
                return Err(ApiError::validation("recipients", format!("at most {MAX_RECIPIENTS} addresses")));
            }
            let mut checked = Vec::with_capacity(recipients.len());
            for (i, address) in recipients.iter().enumerate() {
                let address =
                    check_address(address).map_err(|m| ApiError::validation(&format!("recipients[{i}]"), m))?;
                if !checked.contains(&address) {
                    checked.push(address);
                }
            }
            Ok(checked)
        }
        ChannelKind::Webhook if recipients.is_empty() => Ok(Vec::new()),
        ChannelKind::Webhook => Err(ApiError::validation("recipients", "a webhook channel takes no recipients")),
    }
}

/// Every rule, by name.
#[utoipa::path(get, path = "/api/v1/notification-rules", tag = "notifications",
    responses((status = 200, body = Vec<RuleView>)))]
pub async fn list_notification_rules(State(state): State<AppState>) -> ApiResult<Json<Vec<RuleView>>> {
    Ok(Json(state.store().list_notification_rules().await?.iter().map(RuleView::from).collect()))
}

/// One rule.
#[utoipa::path(get, path = "/api/v1/notification-rules/{id}", tag = "notifications",
    params(("id" = i64, Path)), responses((status = 200, body = RuleView), (status = 404)))]
pub async fn get_notification_rule(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<RuleView>> {
    Ok(Json(RuleView::from(&load_rule(&state, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleRequest {
    /// 1–64 printable characters, unique.
    pub name: String,
    /// At least one event kind.
    pub events: Vec<String>,
    pub channel_id: i64,
    /// E-mail addresses: required for an SMTP channel, not allowed for a webhook.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Only hosts of this group (host events and digest lines).
    pub group_id: Option<i64>,
    /// Default `true`.
    pub enabled: Option<bool>,
}

/// The rule a request describes, checked against the channel and group it names.
async fn checked_rule(state: &AppState, body: RuleRequest) -> ApiResult<NewNotificationRule> {
    let name = check_name(&body.name)?;
    if body.events.is_empty() {
        return Err(ApiError::validation("events", "name at least one event"));
    }
    let mut events: Vec<String> = Vec::new();
    for (i, event) in body.events.iter().enumerate() {
        if !EVENT_KINDS.contains(&event.as_str()) {
            return Err(ApiError::validation(
                &format!("events[{i}]"),
                format!("unknown event {event:?}; one of {}", EVENT_KINDS.join(", ")),
            ));
        }
        if !events.contains(event) {
            events.push(event.clone());
        }
    }
    let channel = state
        .store()
        .get_notification_channel(NotificationChannelId(body.channel_id))
        .await?
        .ok_or_else(|| ApiError::validation("channel_id", "no such notification channel"))?;
    let recipients = check_recipients(channel.kind, &body.recipients)?;
    if let Some(group) = body.group_id {
        if state.store().get_group(GroupId(group)).await?.is_none() {
            return Err(ApiError::validation("group_id", "no such group"));
        }
    }
    Ok(NewNotificationRule {
        name,
        events,
        channel_id: channel.id,
        recipients,
        group_id: body.group_id.map(GroupId),
        enabled: body.enabled.unwrap_or(true),
    })
}

fn rule_details(rule: &NotificationRule) -> Value {
    json!({ "name": rule.name, "events": rule.events, "channel_id": rule.channel_id.0,
            "recipients": rule.recipients, "group_id": rule.group_id.map(|g| g.0), "enabled": rule.enabled })
}

/// Creates a rule.
#[utoipa::path(post, path = "/api/v1/notification-rules", tag = "notifications", request_body = RuleRequest,
    responses((status = 201, body = RuleView), (status = 400), (status = 409)))]
pub async fn create_notification_rule(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<RuleRequest>,
) -> ApiResult<(StatusCode, Json<RuleView>)> {
    let new = checked_rule(&state, body).await?;
    let rule = state.store().create_notification_rule(&new, state.now()).await?;
    state
        .audit(audit(
            &principal,
            "notification_rule.create",
            format!("notification_rule:{}", rule.id),
            rule_details(&rule),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(RuleView::from(&rule))))
}

/// Replaces a rule.
#[utoipa::path(put, path = "/api/v1/notification-rules/{id}", tag = "notifications",
    params(("id" = i64, Path)), request_body = RuleRequest,
    responses((status = 200, body = RuleView), (status = 400), (status = 404), (status = 409)))]
pub async fn update_notification_rule(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<RuleRequest>,
) -> ApiResult<Json<RuleView>> {
    let rule = load_rule(&state, id).await?;
    let new = checked_rule(&state, body).await?;
    let updated = state.store().update_notification_rule(rule.id, &new, state.now()).await?;
    state
        .audit(audit(
            &principal,
            "notification_rule.update",
            format!("notification_rule:{}", updated.id),
            rule_details(&updated),
        ))
        .await;
    Ok(Json(RuleView::from(&updated)))
}

/// Deletes a rule (its past deliveries stay).
#[utoipa::path(delete, path = "/api/v1/notification-rules/{id}", tag = "notifications",
    params(("id" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn delete_notification_rule(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let rule = load_rule(&state, id).await?;
    state.store().delete_notification_rule(rule.id).await?;
    state
        .audit(audit(
            &principal,
            "notification_rule.delete",
            format!("notification_rule:{}", rule.id),
            rule_details(&rule),
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Filters of the delivery list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending`, `sending`, `sent` or `failed`.
    pub status: Option<String>,
    pub channel_id: Option<i64>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Deliveries, newest first: what was sent, what waits for a retry, what failed and why.
#[utoipa::path(get, path = "/api/v1/notification-deliveries", tag = "notifications", params(DeliveryQuery),
    responses((status = 200, body = ListResponse<DeliveryView>), (status = 400)))]
pub async fn list_notification_deliveries(
    State(state): State<AppState>,
    Query(q): Query<DeliveryQuery>,
) -> ApiResult<Json<ListResponse<DeliveryView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<DeliveryStatus>()
                .map_err(|_| ApiError::validation("status", "must be pending, sending, sent or failed"))
        })
        .transpose()?;
    let filter = DeliveryFilter { status, channel: q.channel_id.map(NotificationChannelId), paging };
    let page = state.store().list_notification_deliveries(&filter).await?;
    Ok(Json(page_of(page, paging, |d| DeliveryView::from(d))))
}
