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
