//! System, health, service and reboot types (contract §3.3, endpoints 8–10
//! and `GET /api/v1/system/services/{name}`).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::validate::{object_only, validate_delay, Validate, ValidationError, MAX_REASON_LEN};

/// The `data` of `GET /api/v1/system/info` (rate-limit exempt).
/// Optional fields are emitted as `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Host name.
    pub hostname: String,
    /// Distribution name, e.g. `Ubuntu`.
    pub os: String,
    /// Distribution version, e.g. `24.04`.
    pub os_version: String,
    /// Running kernel release (`uname -r`).
    pub kernel: String,
    /// Machine architecture, e.g. `x86_64`.
    pub architecture: String,
    /// When the package index was last refreshed; `null` if never.
    pub last_update_check: Option<Timestamp>,
    /// When updates were last applied; `null` if never.
    pub last_update_apply: Option<Timestamp>,
    /// Whether the host needs a reboot now.
    pub pending_reboot: bool,
}

/// Overall health, the `status` of [`Health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Everything works. (The manager's docs say `ok`; accepted.)
    #[serde(alias = "ok")]
    Healthy,
    /// Serving, but something needs attention (stale or failed cache,
    /// invalid or expired CRL, recovery, self-update in progress).
    Degraded,
}

/// Freshness of the package index, the `cache_status` of [`Health`].
/// Stale means older than 4 h.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// Refreshed within the threshold.
    Fresh,
    /// Older than the threshold; a refresh has been started.
    Stale,
    /// Never refreshed by us, or not reported (older agents).
    #[default]
    Unknown,
    /// The last refresh failed.
    Failed,
}

/// State of the certificate revocation list, the `crl_status` of [`Health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrlStatus {
    /// Loaded and current.
    Valid,
    /// Past its nextUpdate.
    Expired,
    /// No CRL file.
    Missing,
    /// Unparseable or badly signed.
    Invalid,
    /// Usable but could not be refreshed.
    Degraded,
}

/// State of the repository signing key, the `gpg_key_status` of [`Health`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpgKeyStatus {
    /// Present and current.
    Valid,
    /// Past its expiry.
    Expired,
    /// Not installed.
    Missing,
    /// Revoked.
    Revoked,
}

/// The `data` of `GET /health` and `GET /api/v1/health` (rate-limit exempt;
/// `200` even when degraded). Optional fields are emitted as `null`; a
/// missing `gpg_key_status` makes the upstream manager treat the agent as
/// legacy, so we always report it when we know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Overall health.
    pub status: HealthStatus,
    /// Host uptime in seconds (from `/proc/uptime`).
    pub uptime_seconds: u64,
    /// Agent version.
    pub version: String,
    /// When the package index was last refreshed.
    #[serde(default)]
    pub last_cache_update: Option<Timestamp>,
    /// Freshness of the package index.
    #[serde(default)]
    pub cache_status: CacheStatus,
    /// CRL state; `null` if the agent has no CRL support.
    #[serde(default)]
    pub crl_status: Option<CrlStatus>,
    /// Age of the CRL file in seconds.
    #[serde(default)]
    pub crl_age_seconds: Option<u64>,
    /// The CRL's nextUpdate.
    #[serde(default)]
    pub crl_next_update: Option<Timestamp>,
    /// Repository signing-key state.
    #[serde(default)]
    pub gpg_key_status: Option<GpgKeyStatus>,
    /// When the repository signing key expires.
    #[serde(default)]
    pub gpg_key_expires_at: Option<Timestamp>,
}

/// The `data` of `GET /api/v1/system/services/{name}` (systemd or OpenRC).
/// The states are the service manager's own words, hence strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// Unit name as asked.
    pub name: String,
    /// Description of the unit.
    pub display_name: String,
    /// e.g. `active`, `inactive`, `failed`.
    pub active_state: String,
    /// e.g. `running`, `dead`, `exited`.
    pub sub_state: String,
    /// e.g. `loaded`, `not-found`.
    pub load_state: String,
    /// e.g. `enabled`, `disabled`, `static`.
    pub enabled_state: String,
    /// Main process id; `null` if not running.
    pub main_pid: Option<u32>,
    /// Whether the service counts as healthy (active and running).
    pub healthy: bool,
}

/// The body of `POST /api/v1/system/reboot` (answered `202` with a
/// [`super::accepted::RebootAccepted`], or `409 REBOOT_BLOCKED` while jobs
/// are active and `force` is false).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RebootRequest {
    /// Wait this long before rebooting (at most one day).
    #[serde(default)]
    pub delay_seconds: u64,
    /// Reboot even while jobs are pending or running.
    #[serde(default)]
    pub force: bool,
    /// Why; logged, and shown to logged-in users. At most 256 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `force`: reboot even while a package-manager transaction runs,
    /// accepting that the package database may be left broken. Later
    /// upstream agents require it for that case; accepted so their managers
    /// are not refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub acknowledge_package_database_corruption_risk: bool,
}

impl Validate for RebootRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        validate_delay("delay_seconds", self.delay_seconds)?;
        if let Some(reason) = &self.reason {
            let len = reason.chars().count();
            if len > MAX_REASON_LEN {
                return Err(ValidationError::new(
                    "reason",
                    format!("must be at most {MAX_REASON_LEN} characters (got {len})"),
                ));
            }
            if let Some(c) = reason.chars().find(|c| c.is_control()) {
                return Err(ValidationError::new("reason", format!("must not contain control characters (got {c:?})")));
            }
        }
        Ok(())
    }
}

object_only!(RebootRequest, "a reboot request object {delay_seconds, force, reason?}");
