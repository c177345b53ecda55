//! Package objects and requests (contract §3.3, endpoints 1–5).
//!
//! Requests deny unknown fields: a misspelt field is a 400, never silently
//! ignored (the upstream lost reboots to exactly that). Responses accept
//! unknown fields, so a newer agent does not break an older manager.

use serde::{Deserialize, Serialize};

use super::validate::{
    glob_matches, object_only, validate_limit, validate_list_len, validate_name_glob, validate_package_name,
    validate_version, Validate, ValidationError,
};

/// Where a package stands on the host. Part of [`Package`] and the `status`
/// filter of `GET /api/v1/packages`.
///
/// Emitted lowercase. The upstream agent emitted the Rust variant names
/// (`Installed`, `NotInstalled`, …); those are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageStatus {
    /// Installed and current.
    #[serde(alias = "Installed")]
    Installed,
    /// Not installed; a repository offers it.
    #[serde(alias = "Available")]
    Available,
    /// Installed; a newer version is available.
    #[serde(alias = "Upgradable")]
    Upgradable,
    /// Neither installed nor offered.
    #[serde(alias = "NotInstalled")]
    NotInstalled,
}

/// One package: an item of `GET /api/v1/packages` and the `data` of
/// `GET /api/v1/packages/{name}`.
///
/// Optional fields are emitted as `null` (as the upstream agent does; the
/// manager's client requires the `latest_version` key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Installed version (for an available package: the candidate version).
    pub version: String,
    /// Where the package stands.
    pub status: PackageStatus,
    /// Whether a newer version is available.
    pub upgradable: bool,
    /// The newest available version; `null` if unknown.
    pub latest_version: Option<String>,
    /// Short description; may be empty.
    #[serde(default)]
    pub description: String,
    /// Names of the packages this one depends on.
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Names of the installed packages that depend on this one.
    #[serde(default)]
    pub reverse_dependencies: Vec<String>,
    /// When it was installed. Free text on the wire (upstream sends
    /// whatever the package manager prints); we emit RFC 3339.
    #[serde(default)]
    pub install_date: Option<String>,
    /// Installed size as human-readable text, e.g. `"6250 KB"` (the upstream
    /// format: a string, not a number).
    #[serde(default)]
    pub size_installed: Option<String>,
    /// CVE identifiers fixed by the available update (the manager's client
    /// reads this; `[]` when none or unknown).
    #[serde(default)]
    pub cve_ids: Vec<String>,
}

/// The `data` of `GET /api/v1/packages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageList {
    /// The page of matching packages.
    pub packages: Vec<Package>,
    /// How many packages match in all, before `limit`/`offset`.
    pub total: u64,
}

/// One package to install: an item of the `POST /api/v1/packages` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct PackageSpec {
    /// Package name (§2.5 rule).
    pub name: String,
    /// Exact version to install; latest if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The `options` of `POST /api/v1/packages` and `PUT /api/v1/packages/{name}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct InstallOptions {
    /// Let the package manager override safety checks. Never skips signature
    /// verification in our agent.
    #[serde(default)]
    pub force: bool,
    /// Do not install recommended packages (apt).
    #[serde(default)]
    pub no_recommends: bool,
    /// Allow the pinned version to be older than the installed one.
    #[serde(default)]
    pub allow_downgrade: bool,
}

/// The body of `POST /api/v1/packages` (install; answered `202` with a
/// [`super::accepted::JobAccepted`]).
///
/// ```json
/// {"packages": [{"name": "nginx", "version": "1.24.0-1"}], "options": {"force": false, "no_recommends": true}}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct InstallRequest {
    /// What to install: 1 to 1000 specs, no name twice.
    pub packages: Vec<PackageSpec>,
    /// Options; all false if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<InstallOptions>,
}

impl InstallRequest {
    /// The options, defaulted.
    pub fn options(&self) -> InstallOptions {
        self.options.unwrap_or_default()
    }
}

impl Validate for InstallRequest {
    /// 1–1000 specs; every name and version per §2.5; a name at most once
    /// (two specs for one name would be ambiguous).
    fn validate(&self) -> Result<(), ValidationError> {
        validate_list_len("packages", self.packages.len(), true)?;
        for (i, spec) in self.packages.iter().enumerate() {
            validate_package_name(&format!("packages[{i}].name"), &spec.name)?;
            if let Some(version) = &spec.version {
                validate_version(&format!("packages[{i}].version"), version)?;
            }
            if let Some(first) = self.packages[..i].iter().position(|p| p.name == spec.name) {
                return Err(ValidationError::new(
                    format!("packages[{i}].name"),
                    format!("`{}` is already listed as packages[{first}]", spec.name),
                ));
            }
        }
        Ok(())
    }
}

/// The body of `PUT /api/v1/packages/{name}` (update one package; answered
/// `202`). Upstream code sends no body; an empty body means
/// `UpdateRequest::default()`. `PUT /api/v1/packages/linux-patch-api` is the
/// agent's self-update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct UpdateRequest {
    /// Exact version to move to; the newest if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Options; all false if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<InstallOptions>,
}

impl Validate for UpdateRequest {
    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(version) = &self.version {
            validate_version("version", version)?;
        }
        Ok(())
    }
}

/// The query string of `DELETE /api/v1/packages/{name}` (remove; answered
/// `202`). From the upstream docs; the upstream code always used
/// `purge=false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    /// Also remove configuration files.
    #[serde(default)]
    pub purge: bool,
    /// Let the package manager override safety checks.
    #[serde(default)]
    pub force: bool,
}

impl Validate for RemoveQuery {
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

/// Sort key of `GET /api/v1/packages`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageSort {
    /// By name (the default).
    #[default]
    Name,
    /// By version, in the host's own version order.
    Version,
    /// By status.
    Status,
}

/// Sort direction of list queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Ascending (the default).
    #[default]
    Asc,
    /// Descending.
    Desc,
}

/// The query string of `GET /api/v1/packages`.
///
/// Pagination (`limit`, `offset`) is from the upstream docs; the upstream
/// SPEC says "no pagination". We page with a default `limit` of
/// [`PackageQuery::DEFAULT_LIMIT`]; `total` in [`PackageList`] always counts
/// every match, so a client can tell a truncated page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageQuery {
    /// Name filter; `*` matches any run of characters (`lib*ssl*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Exact version filter (requirement FR-001.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Only packages in this state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PackageStatus>,
    /// Only packages that are (or are not) upgradable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgradable: Option<bool>,
    /// Sort key.
    #[serde(default)]
    pub sort: PackageSort,
    /// Sort direction.
    #[serde(default)]
    pub order: SortOrder,
    /// Page size, 1 to [`PackageQuery::MAX_LIMIT`].
    #[serde(default = "PackageQuery::default_limit")]
    pub limit: u32,
    /// How many matches to skip.
    #[serde(default)]
    pub offset: u64,
}

impl PackageQuery {
    /// `limit` when absent.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// Largest `limit` accepted.
    pub const MAX_LIMIT: u32 = 1000;

    fn default_limit() -> u32 {
        Self::DEFAULT_LIMIT
    }

    /// Whether `package` passes the `name`, `version`, `status` and
    /// `upgradable` filters (sorting and paging are the caller's).
    pub fn matches(&self, package: &Package) -> bool {
        self.name.as_deref().is_none_or(|pattern| glob_matches(pattern, &package.name))
            && self.version.as_deref().is_none_or(|v| v == package.version)
            && self.status.is_none_or(|s| s == package.status)
            && self.upgradable.is_none_or(|u| u == package.upgradable)
    }
}

impl Default for PackageQuery {
    fn default() -> Self {
        PackageQuery {
            name: None,
            version: None,
            status: None,
            upgradable: None,
            sort: PackageSort::default(),
            order: SortOrder::default(),
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl Validate for PackageQuery {
    fn validate(&self) -> Result<(), ValidationError> {
        if let Some(name) = &self.name {
            validate_name_glob("name", name)?;
        }
        if let Some(version) = &self.version {
            validate_version("version", version)?;
        }
        validate_limit("limit", self.limit, Self::MAX_LIMIT)
    }
}

object_only!(PackageSpec, "a package spec object {name, version?}");

object_only!(InstallOptions, "an options object {force, no_recommends, allow_downgrade}");

object_only!(InstallRequest, "an install request object {packages, options?}");

object_only!(UpdateRequest, "an update request object {version?, options?}");
