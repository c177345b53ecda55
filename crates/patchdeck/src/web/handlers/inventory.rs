//! Inventories reported by pull agents (`PUT /agent/v1/inventory`), read back:
//!
//! * `GET /api/v1/hosts/{id}/packages` — what is installed on one host;
//! * `GET /api/v1/hosts/{id}/updates` — the updates available to it, with their security
//!   classification and the evidence for it;
//! * `GET /api/v1/packages/search?name=openssl&lt=3.0.13` — which hosts have a package, optionally
//!   older (or newer, or exactly) than a version. Versions are compared by each host's own
//!   package manager rules (dpkg, rpm, …) through the stored sort keys, never as text.
//!
//! All of it through the caller's scope: another group's host is 404, and fleet search only
//! looks at hosts in scope.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use patchdeck_proto::inventory::SecurityClass;
use patchdeck_proto::lpa::validate::{validate_package_name, validate_version};
use patchdeck_store::{
    FleetPackageHit, FleetPackageQuery, HostPackage, HostUpdate, PackageFilter, UpdateFilter, VersionCmp,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::hosts::load_visible_host;
use crate::web::handlers::{page_of, ListResponse, PageParams};
use crate::web::{Json, Path, Query};

/// Longest free-text search.
const MAX_SEARCH: usize = 100;

/// An installed package.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackageView {
    pub name: String,
    /// As the package manager names it (`amd64`, `x86_64`, `noarch`, `all`, …).
    pub arch: String,
    /// Full version as the package manager spells it (with epoch where it has one).
    pub version: String,
    /// The source package it was built from (vulnerability data is keyed by it).
    pub source_package: Option<String>,
    pub source_version: Option<String>,
    /// The repository it came from, where known.
    pub origin: Option<String>,
    /// Held back from upgrades (`apt-mark hold`, `versionlock`, …).
    pub held: bool,
}

impl From<&HostPackage> for PackageView {
    fn from(p: &HostPackage) -> Self {
        PackageView {
            name: p.name.clone(),
            arch: p.arch.clone(),
            version: p.version.clone(),
            source_package: p.source_package.clone(),
            source_version: p.source_version.clone(),
            origin: p.origin.clone(),
            held: p.held,
        }
    }
}

/// An update available to a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateView {
    pub name: String,
    pub arch: String,
    pub current_version: String,
    pub candidate_version: String,
    /// Repository (or suite) the candidate comes from.
    pub repository: Option<String>,
    /// `security`, `not_security`, or `unknown` (the package manager has no security metadata).
    pub classification: String,
    /// The evidence, e.g. `candidate comes from suite bookworm-security`.
    pub reason: String,
    /// Advisory id (`DSA-5678-1`, `RHSA-2024:1234`), where the metadata has one.
    pub advisory: Option<String>,
    /// As the advisory spells it (`Important`, `moderate`, …).
    pub severity: Option<String>,
    pub cves: Vec<String>,
    /// Installing it most likely needs a reboot.
    pub reboot_likely: bool,
}

impl From<&HostUpdate> for UpdateView {
    fn from(u: &HostUpdate) -> Self {
        UpdateView {
            name: u.name.clone(),
            arch: u.arch.clone(),
            current_version: u.current_version.clone(),
            candidate_version: u.candidate_version.clone(),
            repository: u.repository.clone(),
            classification: class_name(u.security_class).to_owned(),
            reason: u.security_reason.clone(),
            advisory: u.advisory_id.clone(),
            severity: u.severity.clone(),
            cves: u.cves.clone(),
            reboot_likely: u.reboot_likely,
        }
    }
}

/// A host that has the package searched for.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackageHitView {
    pub host_id: i64,
    pub hostname: String,
    pub name: String,
    pub arch: String,
    pub version: String,
    /// The host's version format: `deb`, `rpm`, `pacman` or `apk`.
    pub format: String,
}

impl From<&FleetPackageHit> for PackageHitView {
    fn from(h: &FleetPackageHit) -> Self {
        PackageHitView {
            host_id: h.host_id.0,
            hostname: h.hostname.clone(),
            name: h.name.clone(),
            arch: h.arch.clone(),
            version: h.version.clone(),
            format: h.format.to_string(),
        }
    }
}

fn class_name(class: SecurityClass) -> &'static str {
    match class {
        SecurityClass::Security => "security",
        SecurityClass::NotSecurity => "not_security",
        SecurityClass::Unknown => "unknown",
    }
}

fn search_text(q: Option<String>) -> ApiResult<Option<String>> {
    let Some(q) = q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty()) else { return Ok(None) };
    if q.chars().count() > MAX_SEARCH || q.chars().any(char::is_control) {
        return Err(ApiError::validation("q", format!("must be at most {MAX_SEARCH} characters")));
    }
    Ok(Some(q))
}

/// Search and page of a host's packages.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PackageQuery {
    /// Part of the package name (ASCII case ignored).
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// The packages installed on a host, by name, as of its latest inventory. A host outside the
/// caller's scope is 404.
#[utoipa::path(get, path = "/api/v1/hosts/{id}/packages", tag = "inventory", params(("id" = i64, Path), PackageQuery),
    responses((status = 200, body = ListResponse<PackageView>), (status = 400), (status = 404)))]
pub async fn list_host_packages(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Query(q): Query<PackageQuery>,
) -> ApiResult<Json<ListResponse<PackageView>>> {
    let host = load_visible_host(&state, &principal, id).await?;
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let filter = PackageFilter { search: search_text(q.q)?, paging };
    let page = state.store().list_host_packages(host.id, &filter).await?;
    Ok(Json(page_of(page, paging, |p| PackageView::from(p))))
}

/// Filters and page of a host's updates.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    /// Only updates classified as security fixes.
    pub security_only: Option<bool>,
    /// Part of the package name (ASCII case ignored).
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// The updates available to a host, by name, as of its latest inventory, each with its security
/// classification and the evidence for it. A host outside the caller's scope is 404.
#[utoipa::path(get, path = "/api/v1/hosts/{id}/updates", tag = "inventory", params(("id" = i64, Path), UpdateQuery),
    responses((status = 200, body = ListResponse<UpdateView>), (status = 400), (status = 404)))]
pub async fn list_host_updates(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Query(q): Query<UpdateQuery>,
) -> ApiResult<Json<ListResponse<UpdateView>>> {
    let host = load_visible_host(&state, &principal, id).await?;
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let filter = UpdateFilter { security_only: q.security_only.unwrap_or(false), search: search_text(q.q)?, paging };
    let page = state.store().list_host_updates(host.id, &filter).await?;
    Ok(Json(page_of(page, paging, |u| UpdateView::from(u))))
}

/// A fleet-wide package search: the package name and at most one version condition.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PackageSearchQuery {
    /// The exact package name, e.g. `openssl`.
    pub name: String,
    /// Installed version older than this.
    pub lt: Option<String>,
    /// Older than or equal to this.
    pub le: Option<String>,
    /// Exactly this version (by the host's version rules: `1:2.0` equals `1:2.0-0` on rpm).
    pub eq: Option<String>,
    /// Newer than or equal to this.
    pub ge: Option<String>,
    /// Newer than this.
    pub gt: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// The hosts in the caller's scope that have a package installed, optionally only those whose
/// version is older (`lt`, `le`), equal (`eq`) or newer (`ge`, `gt`) than a version — compared
/// by each host's package manager rules, so one query covers deb and rpm hosts alike.
#[utoipa::path(get, path = "/api/v1/packages/search", tag = "inventory", params(PackageSearchQuery),
    responses((status = 200, body = ListResponse<PackageHitView>), (status = 400)))]
pub async fn search_packages(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PackageSearchQuery>,
) -> ApiResult<Json<ListResponse<PackageHitView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let name = q.name.trim().to_owned();
    validate_package_name("name", &name).map_err(|e| ApiError::validation(&e.field, e.message))?;
    let conditions = [
        ("lt", VersionCmp::Lt, q.lt),
        ("le", VersionCmp::Le, q.le),
        ("eq", VersionCmp::Eq, q.eq),
        ("ge", VersionCmp::Ge, q.ge),
        ("gt", VersionCmp::Gt, q.gt),
    ];
    let mut version = None;
    for (field, cmp, value) in conditions {
        let Some(value) = value else { continue };
        if version.is_some() {
            return Err(ApiError::validation(field, "give at most one of lt, le, eq, ge and gt"));
        }
        let value = value.trim().to_owned();
        validate_version(field, &value).map_err(|e| ApiError::validation(&e.field, e.message))?;
        version = Some((cmp, value));
    }
    let query = FleetPackageQuery { scope: principal.scope(), name, version, paging };
    let page = state.store().search_fleet_packages(&query).await?;
    Ok(Json(page_of(page, paging, |h| PackageHitView::from(h))))
}
