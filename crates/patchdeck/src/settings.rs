//! Runtime settings, kept in the database (so every replica shares them) and changed by admins
//! through the API. Each is one row of the `settings` table, keyed by the names below.

use patchdeck_store::Store;
use serde::{Deserialize, Serialize};

use crate::web::error::ApiError;

/// Setting keys.
pub mod keys {
    pub const MFA_REQUIRED: &str = "auth.mfa_required";
    pub const ENROLLMENT_APPROVAL: &str = "enrollment.requires_approval";
    pub const DEPLOYMENT_APPROVAL: &str = "deployments.require_approval";
    pub const OIDC: &str = "sso.oidc";
    /// The OIDC client secret, sealed with the data directory's `secret.key` (base64). Never
    /// returned by the API.
    pub const OIDC_SECRET: &str = "sso.oidc.client_secret";
}

/// The settings in effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settings {
    /// Local accounts must set up a second factor (TOTP or a passkey) before using anything else.
    pub mfa_required: bool,
    /// New agents wait in an approval queue until an admin accepts them.
    pub enrollment_requires_approval: bool,
    /// Every deployment's plan waits for an approver (an admin, or an operator other than its
    /// creator) before it runs. Groups can require it for their hosts alone.
    pub deployments_require_approval: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { mfa_required: true, enrollment_requires_approval: false, deployments_require_approval: false }
    }
}

impl Settings {
    /// Reads the settings, with defaults for those never set.
    pub async fn load(store: &Store) -> Result<Self, ApiError> {
        let defaults = Settings::default();
        Ok(Settings {
            mfa_required: read_bool(store, keys::MFA_REQUIRED, defaults.mfa_required).await?,
            enrollment_requires_approval: read_bool(
                store,
                keys::ENROLLMENT_APPROVAL,
                defaults.enrollment_requires_approval,
            )
            .await?,
            deployments_require_approval: read_bool(
                store,
                keys::DEPLOYMENT_APPROVAL,
                defaults.deployments_require_approval,
            )
            .await?,
        })
    }
}

async fn read_bool(store: &Store, key: &str, default: bool) -> Result<bool, ApiError> {
    Ok(store.get_setting(key).await?.and_then(|v| v.as_bool()).unwrap_or(default))
}
