//! `/api/v1/settings` (admins only): the runtime settings of [`Settings`], read and changed
//! field by field.
//!
//! Adding a setting: a field in [`Settings`] (and its key in [`crate::settings::keys`]), the
//! same field as an `Option` in [`SettingsPatch`], and one [`Change::of`] line in
//! [`SettingsPatch::changes`]. Old and new values go to the audit log, so secrets do not belong
//! here (the OIDC client secret has its own endpoint, `/api/v1/settings/sso`).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::audit::{AuditEvent, Outcome};
use crate::settings::{keys, Settings};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::Json;

/// Any subset of the settings; fields left out stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// Local accounts must set up a second factor before using anything else.
    pub mfa_required: Option<bool>,
    /// New agents wait for an admin's approval.
    pub enrollment_requires_approval: Option<bool>,
    /// Every deployment waits for an approver.
    pub deployments_require_approval: Option<bool>,
}

/// One setting to write.
#[derive(Debug)]
struct Change {
    /// The field of [`Settings`].
    field: &'static str,
    /// The database key.
    key: &'static str,
    old: Value,
    new: Value,
}

impl Change {
    /// The change of one field, if `new` is given and differs from `old`.
    fn of<T: PartialEq + Serialize>(
        field: &'static str,
        key: &'static str,
        old: &T,
        new: Option<&T>,
    ) -> ApiResult<Option<Change>> {
        let Some(new) = new.filter(|new| *new != old) else { return Ok(None) };
        let value = |v: &T| serde_json::to_value(v).map_err(ApiError::internal);
        Ok(Some(Change { field, key, old: value(old)?, new: value(new)? }))
    }
}

impl SettingsPatch {
    /// The fields that change from `current`, with their database keys.
    fn changes(&self, current: &Settings) -> ApiResult<Vec<Change>> {
        let changes = [
            Change::of("mfa_required", keys::MFA_REQUIRED, &current.mfa_required, self.mfa_required.as_ref())?,
            Change::of(
                "enrollment_requires_approval",
                keys::ENROLLMENT_APPROVAL,
                &current.enrollment_requires_approval,
                self.enrollment_requires_approval.as_ref(),
            )?,
            Change::of(
                "deployments_require_approval",
                keys::DEPLOYMENT_APPROVAL,
                &current.deployments_require_approval,
                self.deployments_require_approval.as_ref(),
            )?,
        ];
        Ok(changes.into_iter().flatten().collect())
    }
}

/// The settings in effect (defaults for those never set).
#[utoipa::path(get, path = "/api/v1/settings", tag = "settings", responses((status = 200, body = Settings)))]
pub async fn get_settings(State(state): State<AppState>) -> ApiResult<Json<Settings>> {
    Ok(Json(Settings::load(state.store()).await?))
}

/// Changes some settings; answers with all of them. Each change is audited (`settings.update`)
/// with its old and new value.
#[utoipa::path(patch, path = "/api/v1/settings", tag = "settings", request_body = SettingsPatch,
    responses((status = 200, body = Settings), (status = 400)))]
pub async fn update_settings(
    State(state): State<AppState>,
    principal: Principal,
    Json(patch): Json<SettingsPatch>,
) -> ApiResult<Json<Settings>> {
    // The database, not the cache: another replica may have changed something a moment ago.
    let current = Settings::load(state.store()).await?;
    let changes = patch.changes(&current)?;
    if changes.is_empty() {
        return Ok(Json(current));
    }
    let now = state.now();
    for change in &changes {
        state.store().set_setting(change.key, &change.new, Some(principal.user_id()), now).await?;
    }
    let details: serde_json::Map<String, Value> =
        changes.iter().map(|c| (c.field.to_owned(), json!({ "key": c.key, "old": c.old, "new": c.new }))).collect();
    state
        .audit(
            AuditEvent::new(principal.actor(), "settings.update", Outcome::Success)
                .user(principal.user_id())
                .target("settings")
                .source(principal.source_ip.clone())
                .details(json!({ "changes": details })),
        )
        .await;
    state.settings_changed();
    Ok(Json(Settings::load(state.store()).await?))
}

/// The manager's check-in interval (`[agents]`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentsConfigView {
    pub checkin_interval_secs: u64,
}

/// How often push hosts are polled (`[push]`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PushConfigView {
    pub health_interval_secs: u64,
    pub inventory_interval_secs: u64,
}

/// The deployment engine's poll and the retention of finished work (`[deployments]`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentsConfigView {
    pub poll_interval_secs: u64,
    pub retention_days: u64,
}

/// A retention period.
#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionView {
    pub retention_days: u64,
}

/// Session lifetimes and lockout (`[auth]`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthConfigView {
    pub access_token_minutes: u64,
    pub refresh_idle_minutes: u64,
    pub session_max_hours: u64,
    pub lockout_threshold: u32,
    pub lockout_minutes: u64,
    pub api_token_max_days: u64,
}

/// What agents pin: the command-signing key's and the CA's fingerprints.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningView {
    pub command_key_fingerprint: String,
    pub ca_fingerprint: String,
}

/// The configuration in effect that is set in the manager's configuration file or environment
/// (changed by a restart, not here), and the fingerprints agents pin. No secret is in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ManagerConfigView {
    pub agents: AgentsConfigView,
    pub push: PushConfigView,
    pub deployments: DeploymentsConfigView,
    pub audit: RetentionView,
    pub notifications: RetentionView,
    pub auth: AuthConfigView,
    pub signing: SigningView,
}

/// The intervals, retention periods and session limits in effect (from the configuration file
/// and `PATCHDECK_*` environment), and the fingerprints agents pin.
#[utoipa::path(get, path = "/api/v1/settings/config", tag = "settings",
    responses((status = 200, body = ManagerConfigView)))]
pub async fn get_manager_config(State(state): State<AppState>) -> ApiResult<Json<ManagerConfigView>> {
    let config = state.config();
    let auth = &config.auth;
    Ok(Json(ManagerConfigView {
        agents: AgentsConfigView { checkin_interval_secs: config.agents.checkin_interval_secs },
        push: PushConfigView {
            health_interval_secs: config.push.health_interval_secs,
            inventory_interval_secs: config.push.inventory_interval_secs,
        },
        deployments: DeploymentsConfigView {
            poll_interval_secs: config.deployments.poll_interval_secs,
            retention_days: config.deployments.retention_days,
        },
        audit: RetentionView { retention_days: config.audit.retention_days },
        notifications: RetentionView { retention_days: config.notifications.retention_days },
        auth: AuthConfigView {
            access_token_minutes: auth.access_token_minutes,
            refresh_idle_minutes: auth.refresh_idle_minutes,
            session_max_hours: auth.session_max_hours,
            lockout_threshold: auth.lockout_threshold,
            lockout_minutes: auth.lockout_minutes,
            api_token_max_days: auth.api_token_max_days,
        },
        signing: SigningView {
            command_key_fingerprint: state.keys().command_key.verifying_key().fingerprint(),
            ca_fingerprint: state.keys().ca.fingerprint(),
        },
    }))
}
