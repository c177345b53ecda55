//! `/api/v1/deployments…`: patch deployments (plan, approve, run, cancel, retry, roll back),
//! `/api/v1/groups/{id}/policy` (approval and health checks per group) and `/api/v1/workers`
//! (the background workers and the job queue).
//!
//! Operators create and act on deployments of hosts in their groups (plus ungrouped hosts);
//! a deployment is visible to a user when at least one of its hosts is, and only the hosts in
//! scope are listed. Every action is audited; the engine's own steps are audited by it.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use patchdeck_store::{
    Approval, Deployment, DeploymentFilter, DeploymentHost, DeploymentId, DeploymentStatus, GroupId, GroupPolicy,
    HostFilter, HostId, HostRunState, NewDeployment, NewDeploymentHost, Paging, RebootPolicy, RingSpec, Schedule,
    Scope, UpdateFilter,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::{page_of, ListResponse, PageParams};
use crate::audit::{AuditEvent, Outcome};
use crate::deploy::{assign_rings, plan_for, RingRequest, UpdateSelection};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::{Json, Path, Query};

/// Hosts one deployment may target.
pub const MAX_HOSTS: usize = 10_000;
/// Rings one deployment may have.
pub const MAX_RINGS: usize = 10;
/// Longest reboot delay (a day).
pub const MAX_REBOOT_DELAY_SECS: u64 = 86_400;

/// Which hosts a deployment targets: the union of the listed hosts, the hosts of the listed
/// groups and the hosts matching the filter (approved hosts in the caller's scope only).
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentTarget {
    #[serde(default)]
    pub host_ids: Vec<i64>,
    #[serde(default)]
    pub group_ids: Vec<i64>,
    /// Hosts matching these filters (as `GET /api/v1/hosts`).
    pub filter: Option<TargetFilter>,
}

/// A host filter for a deployment's target.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetFilter {
    /// Substring of hostname, FQDN or address.
    pub q: Option<String>,
    /// Substring of the operating system's name.
    pub os: Option<String>,
    /// Only hosts with security updates.
    pub security_updates: Option<bool>,
}

/// A deployment to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeploymentRequest {
    pub name: String,
    pub target: DeploymentTarget,
    /// `{"type": "all"}`, `{"type": "security"}` or `{"type": "packages", "packages": [...]}`.
    pub selection: UpdateSelection,
    /// `window` (default: each host's next maintenance window) or `now`.
    pub schedule: Option<String>,
    /// `never`, `if_needed` (default) or `always`.
    pub reboot_policy: Option<String>,
    /// Seconds between the warning to logged-in users and the reboot (default 300).
    pub reboot_delay_secs: Option<u64>,
    /// Roll a host back when it fails after installing (default false).
    pub rollback_on_failure: Option<bool>,
    /// Stages of the rollout (default: one ring with every host).
    #[serde(default)]
    pub rings: Vec<RingRequest>,
}

/// A deployment, with how many of its hosts (in the caller's scope) are in each state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentView {
    pub id: i64,
    pub name: String,
    pub status: String,
    #[schema(value_type = Object)]
    pub target: Value,
    #[schema(value_type = Object)]
    pub selection: Value,
    pub schedule: String,
    pub reboot_policy: String,
    pub reboot_delay_secs: u64,
    pub rollback_on_failure: bool,
    pub rings: Vec<RingView>,
    pub current_ring: u32,
    pub requires_approval: bool,
    pub approved_by: Option<i64>,
    pub approved_at: Option<String>,
    pub reason: Option<String>,
    pub created_by: Option<i64>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Hosts (in the caller's scope) per state (`queued`, `running`, `succeeded`, …).
    pub hosts: BTreeMap<String, u64>,
    /// Hosts in the caller's scope, all states.
    pub total_hosts: u64,
}

/// A ring as stored, with its hosts (in the caller's scope) per state.
#[derive(Debug, Serialize, ToSchema)]
pub struct RingView {
    pub name: String,
    /// 0–1.
    pub success_threshold: f64,
    pub soak_secs: u64,
    /// The group it took (a group ring).
    pub group_id: Option<i64>,
    /// The cumulative percentage it took (a percentage ring); neither: the rest.
    pub percent: Option<u8>,
    pub hosts: BTreeMap<String, u64>,
}

/// One host of a deployment.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeploymentHostView {
    pub host_id: i64,
    pub hostname: String,
    pub ring: u32,
    pub state: String,
    /// Exactly what is installed: `name`, `arch`, `from`, `to`.
    #[schema(value_type = Vec<Object>)]
    pub plan: Value,
    /// The dry run's answer (`installs`, `upgrades`, `removals`, `reboot_required`) or why
    /// there is none (`available: false`, `reason`).
    #[schema(value_type = Option<Object>)]
    pub preview: Option<Value>,
    pub preview_command: Option<String>,
    pub apply_command: Option<String>,
    pub reboot_command: Option<String>,
    pub health_command: Option<String>,
    pub rollback_command: Option<String>,
    pub attempts: u32,
    pub not_before: Option<String>,
    pub window_end: Option<String>,
    pub reboot_required: bool,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

fn ts(t: Option<Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}

/// Host counts of a deployment in the caller's scope: (ring, state, count).
type Counts = Vec<(u32, HostRunState, u64)>;

fn view(d: &Deployment, counts: &Counts) -> DeploymentView {
    let mut hosts = BTreeMap::new();
    for (_, state, n) in counts {
        *hosts.entry(state.as_str().to_owned()).or_insert(0) += n;
    }
    let ring_hosts = |index: usize| -> BTreeMap<String, u64> {
        let mut per = BTreeMap::new();
        for (_, state, n) in counts.iter().filter(|(ring, _, _)| usize::try_from(*ring).ok() == Some(index)) {
            *per.entry(state.as_str().to_owned()).or_insert(0) += n;
        }
        per
    };
    DeploymentView {
        id: d.id.0,
        name: d.name.clone(),
        status: d.status.as_str().to_owned(),
        target: d.target.clone(),
        selection: d.selection.clone(),
        schedule: d.schedule.as_str().to_owned(),
        reboot_policy: d.reboot_policy.as_str().to_owned(),
        reboot_delay_secs: d.reboot_delay_secs,
        rollback_on_failure: d.rollback_on_failure,
        rings: d
            .rings
            .iter()
            .enumerate()
            .map(|(i, r)| RingView {
                name: r.name.clone(),
                success_threshold: r.success_threshold,
                soak_secs: r.soak_secs,
                group_id: r.group_id,
                percent: r.percent,
                hosts: ring_hosts(i),
            })
            .collect(),
        current_ring: d.current_ring,
        requires_approval: d.requires_approval,
        approved_by: d.approved_by.map(|u| u.0),
        approved_at: ts(d.approved_at),
        reason: d.reason.clone(),
        created_by: d.created_by.map(|u| u.0),
        created_at: d.created_at.to_string(),
        started_at: ts(d.started_at),
        finished_at: ts(d.finished_at),
        total_hosts: hosts.values().sum(),
        hosts,
    }
}

fn host_view(h: &DeploymentHost) -> DeploymentHostView {
    let id = |u: Option<uuid::Uuid>| u.map(|u| u.to_string());
    DeploymentHostView {
        host_id: h.host_id.0,
        hostname: h.hostname.clone(),
        ring: h.ring,
        state: h.state.as_str().to_owned(),
        plan: serde_json::to_value(&h.plan).unwrap_or(Value::Null),
        preview: h.preview.clone(),
        preview_command: id(h.preview_command),
        apply_command: id(h.apply_command),
        reboot_command: id(h.reboot_command),
        health_command: id(h.health_command),
        rollback_command: id(h.rollback_command),
        attempts: h.attempts,
        not_before: ts(h.not_before),
        window_end: ts(h.window_end),
        reboot_required: h.reboot_required,
        error_code: h.error_code.clone(),
        error_message: h.error_message.clone(),
        started_at: ts(h.started_at),
        finished_at: ts(h.finished_at),
    }
}

fn parse_schedule(value: Option<&str>) -> ApiResult<Schedule> {
    match value {
        None | Some("window") => Ok(Schedule::Window),
        Some("now") => Ok(Schedule::Now),
        Some(_) => Err(ApiError::validation("schedule", "must be window or now")),
    }
}

fn parse_reboot(value: Option<&str>) -> ApiResult<RebootPolicy> {
    match value {
        None | Some("if_needed") => Ok(RebootPolicy::IfNeeded),
        Some("never") => Ok(RebootPolicy::Never),
        Some("always") => Ok(RebootPolicy::Always),
        Some(_) => Err(ApiError::validation("reboot_policy", "must be never, if_needed or always")),
    }
}

/// Checks the rings and turns them into what is stored.
fn check_rings(rings: &[RingRequest]) -> ApiResult<Vec<RingSpec>> {
    if rings.len() > MAX_RINGS {
        return Err(ApiError::validation("rings", format!("at most {MAX_RINGS} rings")));
    }
    let mut last_percent = 0u8;
    let mut specs = Vec::with_capacity(rings.len().max(1));
    for (i, ring) in rings.iter().enumerate() {
        let field = |name: &str| format!("rings[{i}].{name}");
        match (ring.group_id, ring.percent) {
            (Some(_), Some(_)) => {
                return Err(ApiError::validation(&field("percent"), "a ring has a group or a percentage, not both"))
            }
            (None, None) if i + 1 < rings.len() => {
                return Err(ApiError::validation(
                    &field("percent"),
                    "every ring but the last needs a group or a percentage",
                ))
            }
            (None, Some(p)) => {
                if p == 0 || p > 100 || p <= last_percent {
                    return Err(ApiError::validation(
                        &field("percent"),
                        "must be 1–100 and larger than the previous ring's (percentages are cumulative)",
                    ));
                }
                last_percent = p;
            }
            _ => {}
        }
        let threshold = ring.success_threshold.unwrap_or(100.0);
        if !(0.0..=100.0).contains(&threshold) {
            return Err(ApiError::validation(&field("success_threshold"), "must be 0–100 (percent)"));
        }
        let soak = ring.soak_minutes.unwrap_or(0);
        if soak > 7 * 24 * 60 {
            return Err(ApiError::validation(&field("soak_minutes"), "must be at most a week"));
        }
        let name = ring
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map_or_else(|| format!("ring {}", i + 1), str::to_owned);
        if name.chars().count() > 100 {
            return Err(ApiError::validation(&field("name"), "must be at most 100 characters"));
        }
        specs.push(RingSpec {
            name,
            success_threshold: threshold / 100.0,
            soak_secs: soak * 60,
            group_id: ring.group_id,
            percent: ring.percent,
        });
    }
    if specs.is_empty() {
        specs.push(RingSpec {
            name: "all hosts".into(),
            success_threshold: 1.0,
            soak_secs: 0,
            group_id: None,
            percent: None,
        });
    }
    Ok(specs)
}

/// The approved hosts the target names, each checked against the caller's scope.
async fn resolve_target(state: &AppState, principal: &Principal, target: &DeploymentTarget) -> ApiResult<Vec<HostId>> {
    if target.host_ids.is_empty() && target.group_ids.is_empty() && target.filter.is_none() {
        return Err(ApiError::validation("target", "name hosts, groups or a filter"));
    }
    if target.host_ids.len() > MAX_HOSTS || target.group_ids.len() > 1000 {
        return Err(ApiError::validation("target", format!("at most {MAX_HOSTS} hosts")));
    }
    let scope = principal.scope();
    let mut hosts: BTreeSet<HostId> = BTreeSet::new();
    for (i, id) in target.host_ids.iter().enumerate() {
        let host = match state.store().get_host(HostId(*id)).await? {
            Some(host) if host.approval == Approval::Approved && in_scope(state, &scope, host.id).await? => host,
            _ => {
                return Err(ApiError::validation(
                    &format!("target.host_ids[{i}]"),
                    format!("no host {id} you can patch"),
                ))
            }
        };
        hosts.insert(host.id);
    }
    let mut filters = Vec::new();
    for (i, id) in target.group_ids.iter().enumerate() {
        if state.store().get_group(GroupId(*id)).await?.is_none() {
            return Err(ApiError::validation(&format!("target.group_ids[{i}]"), format!("no group {id}")));
        }
        filters.push(HostFilter { group: Some(GroupId(*id)), ..HostFilter::new(scope.clone()) });
    }
    if let Some(filter) = &target.filter {
        let text = |field: &str, value: &Option<String>| -> ApiResult<Option<String>> {
            match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                Some(v) if v.chars().count() > 100 || v.chars().any(char::is_control) => {
                    Err(ApiError::validation(field, "must be at most 100 printable characters"))
                }
                other => Ok(other.map(str::to_owned)),
            }
        };
        filters.push(HostFilter {
            search: text("target.filter.q", &filter.q)?,
            os: text("target.filter.os", &filter.os)?,
            has_security_updates: filter.security_updates,
            ..HostFilter::new(scope.clone())
        });
    }
    for mut filter in filters {
        let mut offset = 0u64;
        loop {
            filter.paging = Paging::new(1000, offset);
            let page = state.store().list_hosts(&filter).await?;
            hosts.extend(page.items.iter().map(|h| h.id));
            offset += page.items.len() as u64;
            if page.items.is_empty() || offset >= page.total {
                break;
            }
        }
        if hosts.len() > MAX_HOSTS {
            return Err(ApiError::validation("target", format!("matches more than {MAX_HOSTS} hosts")));
        }
    }
    if hosts.is_empty() {
        return Err(ApiError::validation("target", "matches no host you can patch"));
    }
    Ok(hosts.into_iter().collect())
}

async fn in_scope(state: &AppState, scope: &Scope, host: HostId) -> ApiResult<bool> {
    let Scope::Groups(groups) = scope else { return Ok(true) };
    let of_host = state.store().host_group_ids(host).await?;
    Ok(of_host.is_empty() || of_host.iter().any(|g| groups.contains(g)))
}

/// Creates a deployment: freezes each host's plan from its latest scan, puts the hosts in
/// rings and sends the dry runs. Answers at once with the deployment in `planning`; it moves on
/// by itself (to `awaiting_approval` when an approval is required, else `running`).
#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments", request_body = CreateDeploymentRequest,
    responses((status = 201, body = DeploymentView), (status = 400)))]
pub async fn create_deployment(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateDeploymentRequest>,
) -> ApiResult<(StatusCode, Json<DeploymentView>)> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name", "must be 1–200 printable characters"));
    }
    if let UpdateSelection::Packages { packages } = &body.selection {
        if packages.is_empty() || packages.len() > 1000 {
            return Err(ApiError::validation("selection.packages", "name 1 to 1000 packages"));
        }
        for (i, package) in packages.iter().enumerate() {
            if package.is_empty()
                || package.len() > 200
                || !package.chars().all(|c| c.is_ascii_graphic())
                || package.contains('=')
            {
                return Err(ApiError::validation(&format!("selection.packages[{i}]"), "must be a package name"));
            }
        }
    }
    let schedule = parse_schedule(body.schedule.as_deref())?;
    let reboot_policy = parse_reboot(body.reboot_policy.as_deref())?;
    let reboot_delay_secs = body.reboot_delay_secs.unwrap_or(300);
    if reboot_delay_secs > MAX_REBOOT_DELAY_SECS {
        return Err(ApiError::validation("reboot_delay_secs", "must be at most 86400"));
    }
    let rings = check_rings(&body.rings)?;
    for (i, ring) in body.rings.iter().enumerate() {
        if let Some(group) = ring.group_id {
            if state.store().get_group(GroupId(group)).await?.is_none() {
                return Err(ApiError::validation(&format!("rings[{i}].group_id"), format!("no group {group}")));
            }
        }
    }
    let host_ids = resolve_target(&state, &principal, &body.target).await?;

    // Plans, group memberships and approval policy, host by host.
    let mut requires_approval = state.settings().await?.deployments_require_approval;
    let mut members = Vec::with_capacity(host_ids.len());
    let mut plans = BTreeMap::new();
    for host in &host_ids {
        let mut updates = Vec::new();
        let mut offset = 0u64;
        loop {
            let filter = UpdateFilter { paging: Paging::new(1000, offset), ..UpdateFilter::default() };
            let page = state.store().list_host_updates(*host, &filter).await?;
            offset += page.items.len() as u64;
            let done = page.items.is_empty() || offset >= page.total;
            updates.extend(page.items);
            if done {
                break;
            }
        }
        plans.insert(*host, plan_for(&updates, &body.selection));
        members.push((*host, state.store().host_group_ids(*host).await?));
        requires_approval |= state.store().host_policy(*host).await?.require_approval;
    }
    let seed = u64::try_from(state.now().as_millisecond()).unwrap_or(0);
    let ring_of = assign_rings(seed, &members, &body.rings);
    let new_hosts: Vec<NewDeploymentHost> = host_ids
        .iter()
        .map(|host| {
            let plan = plans.remove(host).unwrap_or_default();
            let nothing = plan.is_empty();
            NewDeploymentHost {
                host: *host,
                ring: ring_of.get(host).copied().unwrap_or(0),
                state: if nothing { HostRunState::Skipped } else { HostRunState::Planning },
                plan,
                error_code: nothing.then(|| "nothing_to_do".to_owned()),
                error_message: nothing.then(|| "no available update matches the selection".to_owned()),
            }
        })
        .collect();
    let new = NewDeployment {
        name: name.to_owned(),
        status: DeploymentStatus::Planning,
        target: serde_json::to_value(&body.target).map_err(ApiError::internal)?,
        selection: serde_json::to_value(&body.selection).map_err(ApiError::internal)?,
        schedule,
        reboot_policy,
        reboot_delay_secs,
        rollback_on_failure: body.rollback_on_failure.unwrap_or(false),
        rings,
        requires_approval,
        created_by: Some(principal.user_id()),
    };
    let now = state.now();
    let deployment = state.store().create_deployment(&new, &new_hosts, now).await?;
    let planned = new_hosts.iter().filter(|h| h.state == HostRunState::Planning).count();
    state
        .audit(
            AuditEvent::new(principal.actor(), "deployment.create", Outcome::Success)
                .user(principal.user_id())
                .target(format!("deployment:{}", deployment.id))
                .source(principal.source_ip.clone())
                .details(json!({
                    "name": deployment.name, "hosts": new_hosts.len(), "planned": planned,
                    "selection": deployment.selection, "schedule": deployment.schedule,
                    "reboot_policy": deployment.reboot_policy, "rings": deployment.rings.len(),
                    "requires_approval": requires_approval,
                })),
        )
        .await;
    crate::deploy::wake(&state, deployment.id, now).await?;
    let counts = counts(&state, &principal, deployment.id).await?;
    Ok((StatusCode::CREATED, Json(view(&deployment, &counts))))
}

/// `?status=&limit=&offset=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeploymentQuery {
    /// Only deployments in this status.
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Deployments with at least one host the caller can see, newest first.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments",
    params(DeploymentQuery),
    responses((status = 200, body = ListResponse<DeploymentView>), (status = 400)))]
pub async fn list_deployments(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<DeploymentQuery>,
) -> ApiResult<Json<ListResponse<DeploymentView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<DeploymentStatus>().map_err(|_| ApiError::validation("status", "is not a deployment status"))
        })
        .transpose()?;
    let page = state.store().list_deployments(&DeploymentFilter { scope: principal.scope(), status, paging }).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for d in &page.items {
        items.push(view(d, &counts(&state, &principal, d.id).await?));
    }
    Ok(Json(ListResponse { items, total: page.total, limit: paging.limit, offset: paging.offset }))
}

/// Hosts of the deployment in the caller's scope, per ring and state.
async fn counts(state: &AppState, principal: &Principal, id: DeploymentId) -> ApiResult<Counts> {
    Ok(state.store().deployment_host_counts(id, &principal.scope()).await?)
}

/// A deployment the caller can see (one of its hosts is in scope), else 404.
async fn load_visible(state: &AppState, principal: &Principal, id: i64) -> ApiResult<Deployment> {
    let deployment =
        state.store().get_deployment(DeploymentId(id)).await?.ok_or_else(|| ApiError::not_found("deployment"))?;
    if !principal.is_admin() {
        let page =
            state.store().list_deployment_hosts(deployment.id, &principal.scope(), None, Paging::new(0, 0)).await?;
        if page.total == 0 {
            return Err(ApiError::not_found("deployment"));
        }
    }
    Ok(deployment)
}

/// A deployment the caller may act on: every one of its hosts is in scope.
async fn load_actionable(state: &AppState, principal: &Principal, id: i64) -> ApiResult<Deployment> {
    let deployment = load_visible(state, principal, id).await?;
    if !principal.is_admin() {
        let all = state.store().list_deployment_hosts(deployment.id, &Scope::All, None, Paging::new(0, 0)).await?;
        let mine =
            state.store().list_deployment_hosts(deployment.id, &principal.scope(), None, Paging::new(0, 0)).await?;
        if mine.total < all.total {
            return Err(ApiError::forbidden("the deployment has hosts outside your groups"));
        }
    }
    Ok(deployment)
}

/// One deployment, with its hosts per state.
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments", params(("id" = i64, Path)),
    responses((status = 200, body = DeploymentView), (status = 404)))]
pub async fn get_deployment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentView>> {
    let deployment = load_visible(&state, &principal, id).await?;
    let counts = counts(&state, &principal, deployment.id).await?;
    Ok(Json(view(&deployment, &counts)))
}

/// `?state=&limit=&offset=`.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DeploymentHostQuery {
    /// Only hosts in this state.
    pub state: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// The deployment's hosts in the caller's scope, with their plan, preview and outcome, in
/// ring then host order.
#[utoipa::path(get, path = "/api/v1/deployments/{id}/hosts", tag = "deployments",
    params(("id" = i64, Path), DeploymentHostQuery),
    responses((status = 200, body = ListResponse<DeploymentHostView>), (status = 404)))]
pub async fn list_deployment_hosts(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Query(q): Query<DeploymentHostQuery>,
) -> ApiResult<Json<ListResponse<DeploymentHostView>>> {
    let deployment = load_visible(&state, &principal, id).await?;
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let host_state = q
        .state
        .as_deref()
        .map(|s| s.parse::<HostRunState>().map_err(|_| ApiError::validation("state", "is not a deployment host state")))
        .transpose()?;
    let page = state.store().list_deployment_hosts(deployment.id, &principal.scope(), host_state, paging).await?;
    Ok(Json(page_of(page, paging, host_view)))
}

async fn audit_action(state: &AppState, principal: &Principal, action: &'static str, d: &Deployment, details: Value) {
    state
        .audit(
            AuditEvent::new(principal.actor(), action, Outcome::Success)
                .user(principal.user_id())
                .target(format!("deployment:{}", d.id))
                .source(principal.source_ip.clone())
                .details(details),
        )
        .await;
}

async fn answer(state: &AppState, principal: &Principal, d: &Deployment) -> ApiResult<Json<DeploymentView>> {
    crate::deploy::wake(state, d.id, state.now()).await?;
    state
        .hub()
        .publish(crate::hub::LiveEvent::Deployment { deployment_id: d.id.0, status: d.status.as_str().to_owned() })
        .await;
    let counts = counts(state, principal, d.id).await?;
    Ok(Json(view(d, &counts)))
}

/// Approves a plan that awaits approval; it starts running. The approver is an admin, or an
/// operator other than the deployment's creator (four eyes).
#[utoipa::path(post, path = "/api/v1/deployments/{id}/approve", tag = "deployments", params(("id" = i64, Path)),
    responses((status = 200, body = DeploymentView), (status = 403), (status = 404), (status = 409)))]
pub async fn approve_deployment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentView>> {
    let deployment = load_actionable(&state, &principal, id).await?;
    if !principal.is_admin() && deployment.created_by == Some(principal.user_id()) {
        state
            .audit(
                AuditEvent::new(principal.actor(), "deployment.approve", Outcome::Denied)
                    .user(principal.user_id())
                    .target(format!("deployment:{}", deployment.id))
                    .source(principal.source_ip.clone())
                    .details(json!({ "reason": "own deployment" })),
            )
            .await;
        return Err(ApiError::forbidden("a second operator or an admin must approve your deployment"));
    }
    let approved = state.store().approve_deployment(deployment.id, principal.user_id(), state.now()).await?;
    audit_action(&state, &principal, "deployment.approve", &approved, json!({ "name": approved.name })).await;
    answer(&state, &principal, &approved).await
}

/// Cancels a deployment: hosts not started yet are cancelled, commands not delivered yet are
/// taken back; what is already running on a host finishes.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/cancel", tag = "deployments", params(("id" = i64, Path)),
    responses((status = 200, body = DeploymentView), (status = 404), (status = 409)))]
pub async fn cancel_deployment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentView>> {
    let deployment = load_actionable(&state, &principal, id).await?;
    let reason = format!("cancelled by {}", principal.user.username);
    let cancelled = state
        .store()
        .transition_deployment(
            deployment.id,
            &[
                DeploymentStatus::Planning,
                DeploymentStatus::AwaitingApproval,
                DeploymentStatus::Running,
                DeploymentStatus::Halted,
            ],
            DeploymentStatus::Cancelled,
            Some(&reason),
            state.now(),
        )
        .await?;
    audit_action(&state, &principal, "deployment.cancel", &cancelled, json!({ "from": deployment.status })).await;
    answer(&state, &principal, &cancelled).await
}

/// Retries the failed (and rolled-back) hosts of a finished or halted deployment, with the same
/// plan; after a halt the rollout goes on once their ring reaches its threshold.
#[utoipa::path(post, path = "/api/v1/deployments/{id}/retry", tag = "deployments", params(("id" = i64, Path)),
    responses((status = 200, body = DeploymentView), (status = 404), (status = 409)))]
pub async fn retry_deployment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentView>> {
    let deployment = load_actionable(&state, &principal, id).await?;
    let from = [DeploymentStatus::PartiallyFailed, DeploymentStatus::Failed, DeploymentStatus::Halted];
    if !from.contains(&deployment.status) {
        return Err(ApiError::conflict(format!(
            "the deployment is {}; only a failed, partially failed or halted one can be retried",
            deployment.status
        )));
    }
    let now = state.now();
    let retried = state
        .store()
        .reset_deployment_hosts(
            deployment.id,
            &[HostRunState::Failed, HostRunState::RolledBack],
            HostRunState::Queued,
            now,
        )
        .await?;
    let running =
        state.store().transition_deployment(deployment.id, &from, DeploymentStatus::Running, None, now).await?;
    audit_action(
        &state,
        &principal,
        "deployment.retry",
        &running,
        json!({ "hosts": retried, "from": deployment.status }),
    )
    .await;
    answer(&state, &principal, &running).await
}

/// Rolls a deployment back: every host it changed returns to the versions it had before
/// (hosts not started are cancelled first; running ones finish, then roll back).
#[utoipa::path(post, path = "/api/v1/deployments/{id}/rollback", tag = "deployments", params(("id" = i64, Path)),
    responses((status = 200, body = DeploymentView), (status = 404), (status = 409)))]
pub async fn rollback_deployment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeploymentView>> {
    let deployment = load_actionable(&state, &principal, id).await?;
    let rolling = state
        .store()
        .transition_deployment(
            deployment.id,
            &[
                DeploymentStatus::Running,
                DeploymentStatus::Halted,
                DeploymentStatus::Succeeded,
                DeploymentStatus::PartiallyFailed,
                DeploymentStatus::Failed,
                DeploymentStatus::Cancelled,
            ],
            DeploymentStatus::RollingBack,
            Some(&format!("rolled back by {}", principal.user.username)),
            state.now(),
        )
        .await?;
    audit_action(&state, &principal, "deployment.rollback", &rolling, json!({ "from": deployment.status })).await;
    answer(&state, &principal, &rolling).await
}

// ---------------------------------------------------------------------------------------------
// Group policy

/// A group's orchestration policy.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPolicyBody {
    /// Deployments that touch the group's hosts need an approver.
    pub require_approval: bool,
    /// systemd units that must be active after patching (`nginx.service`).
    #[serde(default)]
    pub health_units: Vec<String>,
    /// Probes the agent runs after patching: `{"type": "http", "url": …, "expect_status": 200,
    /// "timeout_secs": 5}` or `{"type": "tcp", "address": "127.0.0.1:5432", "timeout_secs": 5}`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub health_probes: Vec<Value>,
}

/// The orchestration policy of a group (approval, post-patch health checks).
#[utoipa::path(get, path = "/api/v1/groups/{id}/policy", tag = "groups", params(("id" = i64, Path)),
    responses((status = 200, body = GroupPolicyBody), (status = 404)))]
pub async fn get_group_policy(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<GroupPolicyBody>> {
    state.store().get_group(GroupId(id)).await?.ok_or_else(|| ApiError::not_found("group"))?;
    let policy = state.store().group_policy(GroupId(id)).await?;
    Ok(Json(GroupPolicyBody {
        require_approval: policy.require_approval,
        health_units: policy.health_units,
        health_probes: policy.health_probes,
    }))
}

/// Sets a group's orchestration policy (admins). The health checks are checked as the agent
/// will read them.
#[utoipa::path(put, path = "/api/v1/groups/{id}/policy", tag = "groups", params(("id" = i64, Path)),
    request_body = GroupPolicyBody, responses((status = 200, body = GroupPolicyBody), (status = 400), (status = 404)))]
pub async fn set_group_policy(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<GroupPolicyBody>,
) -> ApiResult<Json<GroupPolicyBody>> {
    state.store().get_group(GroupId(id)).await?.ok_or_else(|| ApiError::not_found("group"))?;
    // The agent's own validation, through the command it will receive (no checks at all is a
    // policy without health checks).
    if !body.health_units.is_empty() || !body.health_probes.is_empty() {
        let command = json!({ "type": "health_check", "units": body.health_units, "probes": body.health_probes });
        let parsed: patchdeck_proto::agent::Command =
            serde_json::from_value(command).map_err(|e| ApiError::validation("health_probes", e.to_string()))?;
        super::commands::check_command(&parsed)
            .map_err(|e| ApiError::validation(&format!("health_{}", e.field), e.message))?;
    }
    let policy = GroupPolicy {
        require_approval: body.require_approval,
        health_units: body.health_units.clone(),
        health_probes: body.health_probes.clone(),
    };
    state.store().set_group_policy(GroupId(id), &policy, state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "group.policy", Outcome::Success)
                .user(principal.user_id())
                .target(format!("group:{id}"))
                .source(principal.source_ip.clone())
                .details(json!({
                    "require_approval": body.require_approval, "health_units": body.health_units,
                    "health_probes": body.health_probes.len(),
                })),
        )
        .await;
    Ok(Json(body))
}

// ---------------------------------------------------------------------------------------------
// Workers

/// A process that runs background jobs.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerView {
    pub id: String,
    pub hostname: String,
    pub pid: u32,
    pub version: String,
    /// `serve` or `worker`.
    pub role: String,
    pub started_at: String,
    pub heartbeat_at: String,
    pub jobs_run: u64,
    pub stopped_at: Option<String>,
    /// Running, but its heartbeat is older than `deployments.worker_stale_secs`.
    pub stale: bool,
}

/// The job queue's counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCountsView {
    pub queued: u64,
    /// Queued and due now: a large number here means the workers do not keep up.
    pub due: u64,
    pub running: u64,
    pub done: u64,
    pub failed: u64,
}

/// Workers and the job queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkersView {
    pub workers: Vec<WorkerView>,
    pub jobs: JobCountsView,
    /// Running workers whose heartbeat is recent.
    pub healthy: u64,
}

/// The background workers (each manager process that runs jobs), with a stale flag, and the
/// job queue's counts.
#[utoipa::path(get, path = "/api/v1/workers", tag = "workers", responses((status = 200, body = WorkersView)))]
pub async fn list_workers(State(state): State<AppState>) -> ApiResult<Json<WorkersView>> {
    let now = state.now();
    let stale_after =
        SignedDuration::from_secs(i64::try_from(state.config().deployments.worker_stale_secs).unwrap_or(60));
    let workers: Vec<WorkerView> = state
        .store()
        .list_workers()
        .await?
        .into_iter()
        .map(|w| WorkerView {
            stale: w.stopped_at.is_none() && w.heartbeat_at + stale_after < now,
            id: w.id,
            hostname: w.hostname,
            pid: w.pid,
            version: w.version,
            role: w.role,
            started_at: w.started_at.to_string(),
            heartbeat_at: w.heartbeat_at.to_string(),
            jobs_run: w.jobs_run,
            stopped_at: ts(w.stopped_at),
        })
        .collect();
    let healthy = workers.iter().filter(|w| w.stopped_at.is_none() && !w.stale).count() as u64;
    let c = state.store().job_counts(now).await?;
    Ok(Json(WorkersView {
        workers,
        jobs: JobCountsView { queued: c.queued, due: c.due, running: c.running, done: c.done, failed: c.failed },
        healthy,
    }))
}
