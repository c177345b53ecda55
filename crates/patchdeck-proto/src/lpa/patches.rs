//! Patch objects and the patch-apply request (contract §3.3, endpoints 6–7).

use serde::{Deserialize, Serialize};

use super::validate::{
    object_only, validate_delay, validate_list_len, validate_package_name, Validate, ValidationError,
};

/// How urgent a patch is. Part of [`Patch`].
///
/// Emitted lowercase. Capitalised forms are accepted, and so are the rpm
/// advisory words `important` (→ high) and `moderate` (→ medium). Anything
/// else is refused rather than guessed: severity is security classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Lowest.
    #[serde(alias = "Low")]
    Low,
    /// rpm says `moderate`.
    #[serde(alias = "Medium", alias = "moderate", alias = "Moderate")]
    Medium,
    /// rpm says `important`.
    #[serde(alias = "High", alias = "important", alias = "Important")]
    High,
    /// Highest.
    #[serde(alias = "Critical")]
    Critical,
}

impl Severity {
    /// Whether a patch of this severity counts in `security_updates`
    /// (critical or high, as upstream counts).
    pub fn is_security_update(self) -> bool {
        matches!(self, Severity::Critical | Severity::High)
    }
}

/// One pending update: an item of `GET /api/v1/patches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Patch {
    /// Package name.
    pub name: String,
    /// Installed version.
    pub current_version: String,
    /// Version the update brings.
    pub available_version: String,
    /// How urgent it is.
    pub severity: Severity,
    /// Short description; may be empty.
    #[serde(default)]
    pub description: String,
    /// CVE identifiers it fixes.
    #[serde(default)]
    pub cve_ids: Vec<String>,
    /// Whether applying it likely needs a reboot.
    pub requires_reboot: bool,
}

/// The `data` of `GET /api/v1/patches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchList {
    /// Every pending update (this endpoint does not page).
    pub patches: Vec<Patch>,
    /// `patches.len()`.
    pub total: u64,
    /// How many patches are critical or high.
    pub security_updates: u64,
    /// Whether any patch needs a reboot.
    pub requires_reboot: bool,
}

impl PatchList {
    /// Builds the list with `total`, `security_updates` and
    /// `requires_reboot` computed from `patches`.
    pub fn new(patches: Vec<Patch>) -> Self {
        let total = patches.len() as u64;
        let security_updates = patches.iter().filter(|p| p.severity.is_security_update()).count() as u64;
        let requires_reboot = patches.iter().any(|p| p.requires_reboot);
        PatchList { patches, total, security_updates, requires_reboot }
    }
}

/// The body of `POST /api/v1/patches/apply` (answered `202` with a
/// [`super::accepted::JobAccepted`]).
///
/// ```json
/// {"packages": ["openssl"], "allow_reboot": true, "reboot_delay_seconds": 60}
/// ```
///
/// `reboot` is accepted for `allow_reboot`: the upstream agent read `reboot`
/// while the manager sent `allow_reboot`, so reboots silently never
/// happened. Giving both is refused (`duplicate field`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct PatchApplyRequest {
    /// Packages to update; absent or empty means every pending update. The
    /// manager's client always sends a list, `[]` for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages: Option<Vec<String>>,
    /// Reboot afterwards, and only if the host then needs one.
    #[serde(default, alias = "reboot")]
    pub allow_reboot: bool,
    /// Wait this long before rebooting (at most one day).
    #[serde(default)]
    pub reboot_delay_seconds: u64,
}

impl PatchApplyRequest {
    /// The named packages, or `None` for "every pending update" (absent or
    /// empty list).
    pub fn selected(&self) -> Option<&[String]> {
        self.packages.as_deref().filter(|p| !p.is_empty())
    }
}

impl Validate for PatchApplyRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(packages) = &self.packages {
            validate_list_len("packages", packages.len(), false)?;
            for (i, name) in packages.iter().enumerate() {
                validate_package_name(&format!("packages[{i}]"), name)?;
            }
        }
        validate_delay("reboot_delay_seconds", self.reboot_delay_seconds)
    }
}

object_only!(PatchApplyRequest, "a patch apply request object {packages?, allow_reboot, reboot_delay_seconds}");
