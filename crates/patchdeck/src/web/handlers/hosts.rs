//! `/api/v1/hosts…`: the managed hosts, always seen through the caller's scope (admins: every
//! host; operators and viewers: the hosts of their groups plus ungrouped hosts). A host outside
//! the scope is answered exactly like a missing one (404), and list totals count only hosts in
//! scope.
//!
//! **Extension point.** Per-host resources (inventory, available updates, commands and their
//! results) belong under `/api/v1/hosts/{id}/…`, registered in the `// Hosts` block of the
//! router with `HostsRead` (to see) or `HostsWrite` (to change). Their handlers must load the
//! host with [`load_visible_host`], so the scope rule and the 404-not-403 answer stay in one
//! place.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use std::net::IpAddr;

use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use patchdeck_store::{GroupId, Host, HostFilter, HostId, HostSort, HostStatus, NewHost, SortDir, Transport};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::{page_of, ListResponse, Order, PageParams};
use crate::web::{Json, Path, Query};

/// Longest DNS name (RFC 1035, without the trailing dot).
const MAX_FQDN: usize = 253;
/// Longest DNS label.
const MAX_LABEL: usize = 63;
/// Most groups a host can be placed in with one request.
const MAX_GROUPS: usize = 100;

/// A host as the API lists it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostView {
    pub id: i64,
    /// Short name shown in the UI.
    pub hostname: String,
    /// Fully qualified name, lower case.
    pub fqdn: Option<String>,
    /// IP address.
    pub address: Option<String>,
    /// `push` (the manager calls the agent) or `pull` (the agent checks in).
    pub transport: String,
    /// `pending` (never heard from), `online`, `degraded` (a push host that answers but reports
    /// a problem), `offline` or `unreachable`.
    pub status: String,
    /// `approved`, or `pending` / `rejected` for an enrollment waiting for (or refused)
    /// approval (see `/api/v1/enrollments`).
    pub approval: String,
    /// `/etc/os-release` `ID`, e.g. `debian`.
    pub os_name: Option<String>,
    /// `/etc/os-release` `VERSION_ID`, e.g. `12`.
    pub os_version: Option<String>,
    /// `/etc/os-release` `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub os_pretty_name: Option<String>,
    /// The running kernel.
    pub kernel: Option<String>,
    /// Machine architecture, e.g. `x86_64`.
    pub arch: Option<String>,
    /// The package manager: `apt`, `dnf`, `yum`, `zypper`, `pacman` or `apk`.
    pub backend: Option<String>,
    /// Version of the Patchdeck agent.
    pub agent_version: Option<String>,
    /// The host needs a reboot (kernel or core libraries were updated).
    pub reboot_required: bool,
    /// Installed packages, as of the latest inventory.
    pub installed_count: u64,
    /// Available updates, as of the latest inventory.
    pub updates_count: u64,
    /// Available updates classified as security fixes.
    pub security_updates_count: u64,
    /// When the latest inventory was taken (on the host).
    pub scanned_at: Option<String>,
    pub last_seen_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Host> for HostView {
    fn from(h: &Host) -> Self {
        HostView {
            id: h.id.0,
            hostname: h.hostname.clone(),
            fqdn: h.fqdn.clone(),
            address: h.address.clone(),
            transport: h.transport.as_str().to_owned(),
            status: h.status.as_str().to_owned(),
            approval: h.approval.as_str().to_owned(),
            os_name: h.os_name.clone(),
            os_version: h.os_version.clone(),
            os_pretty_name: h.os_pretty_name.clone(),
            kernel: h.kernel.clone(),
            arch: h.arch.clone(),
            backend: h.backend.clone(),
            agent_version: h.agent_version.clone(),
            reboot_required: h.reboot_required,
            installed_count: count(h.installed_count),
            updates_count: count(h.updates_count),
            security_updates_count: count(h.security_updates_count),
            scanned_at: h.scanned_at.map(|t| t.to_string()),
            last_seen_at: h.last_seen_at.map(|t| t.to_string()),
            created_at: h.created_at.to_string(),
            updated_at: h.updated_at.to_string(),
        }
    }
}

/// A stored count as the API shows it (never negative).
fn count<N: TryInto<u64>>(n: N) -> u64 {
    n.try_into().unwrap_or(0)
}

/// One host with its groups and what its agent last reported.
#[derive(Debug, Serialize, ToSchema)]
pub struct HostDetail {
    #[serde(flatten)]
    pub host: HostView,
    /// Ids of the host's groups (for non-admins, only those of the caller's groups).
    pub group_ids: Vec<i64>,
    /// Every address the agent reported (loopback and link-local left out).
    pub addresses: Vec<String>,
    /// `/proc/sys/kernel/random/boot_id` at the latest check-in: changes at every boot.
    pub boot_id: Option<String>,
    /// The metrics of the latest check-in: load, CPU, memory, swap, disks, uptime
    /// (`docs/protocol.md`, "Check-in").
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<serde_json::Value>,
    /// When those metrics were taken.
    pub metrics_at: Option<String>,
}

/// The host `id` if the caller may see it; a host outside the scope is "not found". Changes use
/// the same rule: `HostsWrite` on the route has already refused viewers.
pub async fn load_visible_host(state: &AppState, principal: &Principal, id: i64) -> ApiResult<Host> {
    let id = HostId(id);
    if !state.store().host_visible(id, &principal.scope()).await? {
        return Err(ApiError::not_found("host"));
    }
    state.store().get_host(id).await?.ok_or_else(|| ApiError::not_found("host"))
}

async fn detail(state: &AppState, principal: &Principal, host: &Host) -> ApiResult<HostDetail> {
    let groups = state.store().host_group_ids(host.id).await?;
    let group_ids = groups.into_iter().filter(|g| principal.is_admin() || principal.groups.contains(g)).map(|g| g.0);
    Ok(HostDetail {
        host: HostView::from(host),
        group_ids: group_ids.collect(),
        addresses: host.addresses.clone(),
        boot_id: host.boot_id.clone(),
        metrics: host.metrics.clone(),
        metrics_at: host.metrics_at.map(|t| t.to_string()),
    })
}

fn parse_transport(text: &str) -> ApiResult<Transport> {
    text.parse().map_err(|_| ApiError::validation("transport", "must be push or pull"))
}

fn parse_status(text: &str) -> ApiResult<HostStatus> {
    text.parse()
        .map_err(|_| ApiError::validation("status", "must be pending, online, degraded, offline or unreachable"))
}

/// Checks and normalises a DNS name: lower case, no trailing dot, at most 253 characters of
/// labels of 1–63 characters of `a-z 0-9 -` that neither start nor end with `-`. An IP address is
/// refused (it belongs in `address`).
pub fn check_fqdn(fqdn: &str) -> ApiResult<String> {
    let name = fqdn.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= MAX_LABEL
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if name.is_empty() || name.len() > MAX_FQDN || !name.split('.').all(label_ok) {
        return Err(ApiError::validation(
            "fqdn",
            "must be a DNS name: at most 253 characters, labels of 1 to 63 characters of a-z, 0-9 and '-'",
        ));
    }
    if name.parse::<IpAddr>().is_ok() {
        return Err(ApiError::validation("fqdn", "is an IP address; send it as address"));
    }
    Ok(name)
}

/// Checks an IP address (v4 or v6) and returns its canonical spelling.
pub fn check_address(address: &str) -> ApiResult<String> {
    let ip: IpAddr =
        address.trim().parse().map_err(|_| ApiError::validation("address", "must be an IPv4 or IPv6 address"))?;
    if ip.is_unspecified() || ip.is_multicast() {
        return Err(ApiError::validation("address", "must be a unicast address of the host"));
    }
    Ok(ip.to_string())
}

pub fn check_hostname(hostname: &str) -> ApiResult<String> {
    let name = hostname.trim();
    if name.is_empty() || name.chars().count() > MAX_FQDN || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::validation("hostname", "must be 1 to 253 characters without spaces"));
    }
    Ok(name.to_owned())
}

/// Filters, order and page of the host list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HostQuery {
    /// Only hosts in this group.
    pub group: Option<i64>,
    /// `pending`, `online`, `degraded`, `offline` or `unreachable`.
    pub status: Option<String>,
    /// `push` or `pull`.
    pub transport: Option<String>,
    /// Part of the hostname, FQDN or address (ASCII case ignored).
    pub q: Option<String>,
    /// Part of the operating system's name or pretty name (`debian`, `Ubuntu 24.04`; ASCII case
    /// ignored).
    pub os: Option<String>,
    /// `true`: only hosts with security updates available; `false`: only hosts without.
    pub security_updates: Option<bool>,
    /// `true`: only hosts that need a reboot; `false`: only hosts that do not.
    pub reboot_required: Option<bool>,
    /// `true`: only hosts scanned at least once (they have an inventory); `false`: only hosts
    /// never scanned.
    pub scanned: Option<bool>,
    /// Only hosts last seen before this time (RFC 3339); never-seen hosts do not match.
    pub seen_before: Option<String>,
    /// Only hosts last seen at or after this time (RFC 3339); never-seen hosts do not match.
    pub seen_after: Option<String>,
    /// `hostname` (default), `created_at`, `last_seen` (never-seen hosts last) or
    /// `security_updates` (by the number of security updates available).
    pub sort: Option<String>,
    pub order: Option<Order>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

fn parse_time(field: &str, value: Option<&str>) -> ApiResult<Option<Timestamp>> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<Timestamp>().map_err(|_| ApiError::validation(field, "must be an RFC 3339 time")))
        .transpose()
}

fn parse_os(value: Option<String>) -> ApiResult<Option<String>> {
    let Some(os) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else { return Ok(None) };
    if os.chars().count() > 100 || os.chars().any(char::is_control) {
        return Err(ApiError::validation("os", "must be at most 100 characters"));
    }
    Ok(Some(os))
}

/// Lists the (approved) hosts the caller may see; `total` counts only those. Hosts waiting for
/// approval are listed under `/api/v1/enrollments`.
#[utoipa::path(get, path = "/api/v1/hosts", tag = "hosts", params(HostQuery),
    responses((status = 200, body = ListResponse<HostView>), (status = 400)))]
pub async fn list_hosts(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<HostQuery>,
) -> ApiResult<Json<ListResponse<HostView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let sort = match q.sort.as_deref() {
        None | Some("hostname") => HostSort::Hostname,
        Some("created_at") => HostSort::CreatedAt,
        Some("last_seen") => HostSort::LastSeen,
        Some("security_updates") => HostSort::SecurityUpdates,
        Some(_) => {
            return Err(ApiError::validation("sort", "must be hostname, created_at, last_seen or security_updates"))
        }
    };
    let filter = HostFilter {
        scope: principal.scope(),
        group: q.group.map(GroupId),
        status: q.status.as_deref().map(parse_status).transpose()?,
        transport: q.transport.as_deref().map(parse_transport).transpose()?,
        search: q.q.filter(|s| !s.trim().is_empty()).map(|s| s.chars().take(100).collect()),
        approval: None,
        os: parse_os(q.os)?,
        has_security_updates: q.security_updates,
        reboot_required: q.reboot_required,
        scanned: q.scanned,
        seen_before: parse_time("seen_before", q.seen_before.as_deref())?,
        seen_after: parse_time("seen_after", q.seen_after.as_deref())?,
        sort,
        dir: q.order.map(SortDir::from).unwrap_or_default(),
        paging,
    };
    let page = state.store().list_hosts(&filter).await?;
    Ok(Json(page_of(page, paging, |h| HostView::from(h))))
}

/// One host, with its groups. A host outside the caller's scope is 404.
#[utoipa::path(get, path = "/api/v1/hosts/{id}", tag = "hosts", params(("id" = i64, Path)),
    responses((status = 200, body = HostDetail), (status = 404)))]
pub async fn get_host(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<HostDetail>> {
    let host = load_visible_host(&state, &principal, id).await?;
    Ok(Json(detail(&state, &principal, &host).await?))
}

/// A host added by hand (the agent on it is then reached or enrolls later).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHostRequest {
    /// Short name; defaults to the FQDN's first label, else the address.
    pub hostname: Option<String>,
    /// DNS name of the host. At least one of `fqdn` and `address` is required.
    pub fqdn: Option<String>,
    /// IPv4 or IPv6 address of the host.
    pub address: Option<String>,
    /// `push` (default for hosts added by hand) or `pull`.
    pub transport: Option<String>,
    /// Groups to put the host in; an operator may only use groups they belong to.
    pub groups: Option<Vec<i64>>,
}

/// Checks the groups of a new host: they exist, and a non-admin belongs to each.
async fn check_groups(state: &AppState, principal: &Principal, ids: &[i64]) -> ApiResult<Vec<GroupId>> {
    let mut groups: Vec<GroupId> = Vec::new();
    for id in ids.iter().copied().map(GroupId) {
        if !groups.contains(&id) {
            groups.push(id);
        }
    }
    if groups.len() > MAX_GROUPS {
        return Err(ApiError::validation("groups", format!("at most {MAX_GROUPS} groups")));
    }
    if !principal.is_admin() {
        let outside: Vec<i64> = groups.iter().filter(|g| !principal.groups.contains(g)).map(|g| g.0).collect();
        if !outside.is_empty() {
            state
                .audit(
                    AuditEvent::new(principal.actor(), "authz.denied", Outcome::Denied)
                        .user(principal.user_id())
                        .target("POST /api/v1/hosts")
                        .source(principal.source_ip.clone())
                        .details(json!({ "reason": "groups outside the caller's", "groups": outside })),
                )
                .await;
            return Err(ApiError::forbidden("you may only put hosts in groups you belong to"));
        }
    }
    for group in &groups {
        if state.store().get_group(*group).await?.is_none() {
            return Err(ApiError::validation("groups", format!("group {group} does not exist")));
        }
    }
    Ok(groups)
}

/// Adds a host by FQDN or IP address. It starts `pending` until the manager first reaches it (push)
/// or it checks in (pull).
#[utoipa::path(post, path = "/api/v1/hosts", tag = "hosts", request_body = CreateHostRequest,
    responses((status = 201, body = HostDetail), (status = 400), (status = 403), (status = 409)))]
pub async fn create_host(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateHostRequest>,
) -> ApiResult<(StatusCode, Json<HostDetail>)> {
    let fqdn = body.fqdn.as_deref().filter(|s| !s.trim().is_empty()).map(check_fqdn).transpose()?;
    let address = body.address.as_deref().filter(|s| !s.trim().is_empty()).map(check_address).transpose()?;
    if fqdn.is_none() && address.is_none() {
        return Err(ApiError::validation("fqdn", "give an fqdn or an address (or both)"));
    }
    let hostname = match body.hostname.as_deref() {
        Some(name) => check_hostname(name)?,
        None => fqdn.as_deref().and_then(|f| f.split('.').next()).or(address.as_deref()).unwrap_or_default().to_owned(),
    };
    let transport = body.transport.as_deref().map(parse_transport).transpose()?.unwrap_or(Transport::Push);
    let groups = check_groups(&state, &principal, body.groups.as_deref().unwrap_or_default()).await?;
    let host = state
        .store()
        .create_host(
            &NewHost {
                hostname,
                fqdn,
                address,
                transport,
                status: HostStatus::Pending,
                machine_id: None,
                os_name: None,
                os_version: None,
            },
            state.now(),
        )
        .await?;
    for group in &groups {
        if let Err(e) = state.store().add_host_to_group(host.id, *group).await {
            // A group deleted meanwhile: do not leave a half-placed (possibly ungrouped) host.
            state.store().delete_host(host.id).await?;
            return Err(match e {
                patchdeck_store::Error::MissingReference(_) => {
                    ApiError::validation("groups", format!("group {group} does not exist"))
                }
                other => other.into(),
            });
        }
    }
    state
        .audit(
            AuditEvent::new(principal.actor(), "host.create", Outcome::Success)
                .user(principal.user_id())
                .target(format!("host:{}", host.id))
                .source(principal.source_ip.clone())
                .details(json!({
                    "hostname": host.hostname,
                    "fqdn": host.fqdn,
                    "address": host.address,
                    "transport": host.transport.as_str(),
                    "groups": groups.iter().map(|g| g.0).collect::<Vec<_>>(),
                })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(detail(&state, &principal, &host).await?)))
}

/// Removes a host and its group memberships, and revokes its certificates (they stay listed in
/// the CRL), so its agent is cut off at its next request. A host outside the caller's scope is
/// 404.
#[utoipa::path(delete, path = "/api/v1/hosts/{id}", tag = "hosts", params(("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete_host(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let host = load_visible_host(&state, &principal, id).await?;
    // Revoked first: a failure in between leaves a host without working certificates, never a
    // deleted host whose certificates still work.
    let revoked = state.store().revoke_host_certificates(host.id, "host deleted", state.now()).await?;
    state.store().delete_host(host.id).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "host.delete", Outcome::Success)
                .user(principal.user_id())
                .target(format!("host:{}", host.id))
                .source(principal.source_ip.clone())
                .details(json!({
                    "hostname": host.hostname,
                    "fqdn": host.fqdn,
                    "address": host.address,
                    "revoked_certificates": revoked,
                })),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
