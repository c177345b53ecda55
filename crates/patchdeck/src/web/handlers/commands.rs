//! `/api/v1/…commands…`: what users ask pull agents to do (`docs/protocol.md`, "Commands").
//!
//! A command is queued for one host (`POST /api/v1/hosts/{id}/commands`) or for many at once
//! (`POST /api/v1/commands`), delivered in the host's next check-in (a held check-in is woken at
//! once through [`crate::hub::Hub::command_queued`]) and followed through its states `pending` →
//! `sent` → `running` → `completed` | `failed` | `timed_out`, or `cancelled` before delivery. A
//! retry is a new command linked to the old one (`retry_of`).
//!
//! Every command is seen through the caller's scope: a command of a host outside it is answered
//! exactly like a missing one (404), and list totals count only commands of hosts in scope.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use patchdeck_proto::agent::{Command, CommandState, PackageChange, Selection};
use patchdeck_proto::lpa::validate::{
    validate_delay, validate_list_len, validate_package_name, validate_version, ValidationError,
};
use patchdeck_proto::orchestration::{validate_health_check, validate_reboot_message};
use patchdeck_store::{Approval, CommandFilter, CommandRecord, GroupId, Host, HostId, NewCommand, Scope, Transport};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::hosts::load_visible_host;
use crate::web::handlers::{page_of, ListResponse, PageParams};
use crate::web::{Json, Path, Query};

/// Most hosts one fleet-wide request may address.
pub const MAX_TARGET_HOSTS: usize = 1000;
/// Shortest rapid check-in interval a heartbeat may ask for.
pub const MIN_HEARTBEAT_INTERVAL_SECS: u64 = 1;
/// Longest rapid check-in interval (beyond this it is no longer "rapid").
pub const MAX_HEARTBEAT_INTERVAL_SECS: u64 = 300;
/// Longest a heartbeat may last: a day.
pub const MAX_HEARTBEAT_DURATION_SECS: u64 = 86_400;

/// A command as the API shows it. Times are RFC 3339 UTC.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommandView {
    /// The UUID the agent knows it by.
    pub id: String,
    pub host_id: i64,
    /// The command's `type`: `scan`, `refresh_metadata`, `upgrade`, `install`, `remove`,
    /// `rollback`, `reboot`, `heartbeat` or `health_check`.
    pub kind: String,
    /// The command as queued (`{"type": "upgrade", "selection": {"mode": "security"}}`).
    #[schema(value_type = Object)]
    pub command: Value,
    /// `pending`, `sent`, `running`, `completed`, `failed`, `timed_out` or `cancelled`.
    pub state: String,
    /// The user who queued it (`null` for the system, or a deleted user).
    pub created_by: Option<i64>,
    pub created_at: String,
    /// Not delivered by then: `timed_out`.
    pub deliver_by: String,
    pub sent_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The agent's job for it (a UUID), where one was made.
    pub job_id: Option<String>,
    /// Why it failed: a stable code (`PACKAGE_NOT_FOUND`, `JOB_TIMEOUT`, `bad_signature`, …).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The package manager's output (at most 64 KiB).
    pub output: Option<String>,
    /// What changed (or, for a dry run, would change).
    pub changes: Vec<PackageChangeView>,
    /// The host needs a reboot after this command.
    pub reboot_required: bool,
    /// The command this one retries (its UUID).
    pub retry_of: Option<String>,
}

/// One package a command changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackageChangeView {
    pub name: String,
    pub arch: Option<String>,
    /// `install`, `upgrade`, `downgrade`, `reinstall` or `remove`.
    pub action: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl From<&PackageChange> for PackageChangeView {
    fn from(c: &PackageChange) -> Self {
        PackageChangeView {
            name: c.name.clone(),
            arch: c.arch.clone(),
            action: c.action.as_str().to_owned(),
            from: c.from.clone(),
            to: c.to.clone(),
        }
    }
}

impl From<&CommandRecord> for CommandView {
    fn from(c: &CommandRecord) -> Self {
        CommandView {
            id: c.id.to_string(),
            host_id: c.host_id.0,
            kind: c.kind.clone(),
            command: serde_json::to_value(&c.command).unwrap_or(Value::Null),
            state: c.state.as_str().to_owned(),
            created_by: c.created_by.map(|u| u.0),
            created_at: c.created_at.to_string(),
            deliver_by: c.deliver_by.to_string(),
            sent_at: c.sent_at.map(|t| t.to_string()),
            started_at: c.started_at.map(|t| t.to_string()),
            finished_at: c.finished_at.map(|t| t.to_string()),
            job_id: c.job_id.map(|j| j.to_string()),
            error_code: c.error_code.clone(),
            error_message: c.error_message.clone(),
            output: c.output.clone(),
            changes: c.changes.iter().map(PackageChangeView::from).collect(),
            reboot_required: c.reboot_required,
            retry_of: c.retry_of.map(|r| r.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Checking commands

/// Reads a command from JSON and checks it, naming the offending field. `prefix` is the path of
/// the command inside the body (`command.` for fleet requests, empty when it is the body).
fn parse_command(value: Value, prefix: &str) -> ApiResult<Command> {
    let root = if prefix.is_empty() { "body".to_owned() } else { prefix.trim_end_matches('.').to_owned() };
    let kind_known = value.get("type").and_then(Value::as_str).is_some_and(|k| KINDS.contains(&k));
    let command: Command = serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        // The tag is read first; what follows comes from the variant's own fields.
        let field = if !kind_known {
            format!("{prefix}type")
        } else if let Some(name) = backticked(&message, "unknown field `").or(backticked(&message, "missing field `")) {
            format!("{prefix}{name}")
        } else {
            root.clone()
        };
        ApiError::validation(&field, message)
    })?;
    check_command(&command).map_err(|e| ApiError::validation(&format!("{prefix}{}", e.field), e.message))?;
    Ok(command)
}

/// The text between `prefix` and the next backtick in `message`.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let start = message.find(prefix)? + prefix.len();
    message[start..].split('`').next()
}

/// The rules of a command that do not depend on its host (see `docs/protocol.md`). Package
/// names and versions follow the same rules the agent's package layer applies, so a command
/// the manager accepts is never refused by the agent as malformed.
pub fn check_command(command: &Command) -> Result<(), ValidationError> {
    match command {
        Command::Scan { subsystems, .. } => {
            if subsystems.is_empty() {
                return Err(ValidationError::new("subsystems", "must list at least one of packages, system, storage"));
            }
            if subsystems.len() > 3 {
                return Err(ValidationError::new("subsystems", "must list each subsystem at most once"));
            }
            Ok(())
        }
        Command::RefreshMetadata | Command::Rollback { .. } => Ok(()),
        Command::Upgrade { selection, .. } => match selection {
            Selection::All | Selection::Security => Ok(()),
            Selection::Packages { packages } => check_specs("selection.packages", packages, true),
        },
        Command::Install { packages, .. } | Command::Remove { packages, .. } => {
            check_specs("packages", packages, false)
        }
        Command::Reboot { delay_secs, message, .. } => {
            validate_delay("delay_secs", *delay_secs)?;
            match message {
                Some(message) => validate_reboot_message("message", message),
                None => Ok(()),
            }
        }
        Command::HealthCheck { units, probes } => validate_health_check(units, probes),
        Command::Heartbeat { interval_secs, duration_secs, .. } => {
            if !(MIN_HEARTBEAT_INTERVAL_SECS..=MAX_HEARTBEAT_INTERVAL_SECS).contains(interval_secs) {
                return Err(ValidationError::new(
                    "interval_secs",
                    format!(
                        "must be between {MIN_HEARTBEAT_INTERVAL_SECS} and {MAX_HEARTBEAT_INTERVAL_SECS} seconds \
                         (got {interval_secs})"
                    ),
                ));
            }
            if !(1..=MAX_HEARTBEAT_DURATION_SECS).contains(duration_secs) {
                return Err(ValidationError::new(
                    "duration_secs",
                    format!("must be between 1 and {MAX_HEARTBEAT_DURATION_SECS} seconds (got {duration_secs})"),
                ));
            }
            Ok(())
        }
    }
}

/// `name` or `name=version` specs (`name=version` only when `pinned`): 1 to 1000 of them, each
/// package named once.
fn check_specs(field: &str, specs: &[String], pinned: bool) -> Result<(), ValidationError> {
    validate_list_len(field, specs.len(), true)?;
    let mut seen = HashSet::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let name = match spec.split_once('=') {
            Some((name, version)) => {
                validate_package_name(&at, name)?;
                validate_version(&at, version)?;
                name
            }
            None if pinned => {
                return Err(ValidationError::new(at, format!("must be name=version (got {spec:?})")));
            }
            None => {
                validate_package_name(&at, spec)?;
                spec.as_str()
            }
        };
        if !seen.insert(name) {
            return Err(ValidationError::new(at, format!("{name} is listed more than once")));
        }
    }
    Ok(())
}

/// Why `host` cannot take `command` now, if it cannot.
async fn refusal(state: &AppState, host: &Host, command: &Command) -> ApiResult<Option<String>> {
    match host.approval {
        Approval::Approved => {}
        Approval::Pending => return Ok(Some("the host is waiting for enrollment approval".into())),
        Approval::Rejected => return Ok(Some("the host's enrollment was rejected".into())),
    }
    if host.transport == Transport::Push {
        // The Linux_Patch_API has neither (see `push::client`): refuse now rather than queue a
        // command that can only fail.
        match command {
            Command::Heartbeat { .. } => {
                return Ok(Some("rapid check-in is for pull agents; a push host is polled by the manager".into()))
            }
            Command::HealthCheck { .. } => {
                return Ok(Some(
                    "a push host's API has no health checks of units or probes; they run on pull agents".into(),
                ))
            }
            Command::Upgrade { dry_run: true, .. }
            | Command::Install { dry_run: true, .. }
            | Command::Remove { dry_run: true, .. } => {
                return Ok(Some("a push host's API has no dry run: every job it accepts changes the host".into()))
            }
            _ => {}
        }
    }
    if let Command::Rollback { command_id } = command {
        let earlier = state.store().get_command(*command_id).await?;
        let Some(earlier) = earlier.filter(|c| c.host_id == host.id) else {
            return Ok(Some(format!("command {command_id} is not a command of this host")));
        };
        if !matches!(earlier.kind.as_str(), "upgrade" | "install" | "remove" | "rollback") {
            return Ok(Some(format!("command {command_id} is a {} and changed no packages", earlier.kind)));
        }
        if !matches!(earlier.state, CommandState::Completed | CommandState::Failed) {
            return Ok(Some(format!(
                "command {command_id} is {}; only a finished command can be rolled back",
                earlier.state
            )));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------------
// Queueing

/// Queues `command` for `host` (already checked), wakes the host's check-in, tells live views
/// and records it in the audit log.
async fn queue(
    state: &AppState,
    principal: &Principal,
    host: HostId,
    command: Command,
    retry_of: Option<Uuid>,
) -> ApiResult<CommandRecord> {
    let now = state.now();
    let deliver_by = deliver_by(state, now);
    let new = NewCommand { host, command, created_by: Some(principal.user_id()), retry_of, deliver_by };
    let record = state.store().queue_command(&new, now).await?;
    state.hub().command_queued(host.0).await;
    publish(state, &record).await;
    let (action, details) = match retry_of {
        None => ("command.queue", json!({ "kind": record.kind, "host": host.0 })),
        Some(old) => ("command.retry", json!({ "kind": record.kind, "host": host.0, "retry_of": old })),
    };
    state
        .audit(
            AuditEvent::new(principal.actor(), action, Outcome::Success)
                .user(principal.user_id())
                .target(format!("command:{}", record.id))
                .source(principal.source_ip.clone())
                .details(details),
        )
        .await;
    Ok(record)
}

fn deliver_by(state: &AppState, now: Timestamp) -> Timestamp {
    let secs = i64::try_from(state.config().agents.command_delivery_timeout_secs).unwrap_or(i64::MAX / 2);
    now.saturating_add(SignedDuration::from_secs(secs)).unwrap_or(now)
}

async fn publish(state: &AppState, record: &CommandRecord) {
    state.hub().publish_command(record).await;
}

/// Queues a command for one host. The body is the command itself, e.g.
/// `{"type": "upgrade", "selection": {"mode": "security"}}` or
/// `{"type": "install", "packages": ["htop", "curl=8.5.0-2"]}` (see `docs/protocol.md`).
/// The host must be an approved pull host in the caller's scope (404 otherwise, 409 when it
/// cannot take commands).
#[utoipa::path(post, path = "/api/v1/hosts/{id}/commands", tag = "commands", params(("id" = i64, Path)),
    request_body(content = Object,
        description = "A command (`type`: scan, refresh_metadata, upgrade, install, remove, rollback, reboot, heartbeat, health_check)"),
    responses((status = 201, body = CommandView), (status = 400), (status = 404), (status = 409)))]
pub async fn create_host_command(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<Value>,
) -> ApiResult<(StatusCode, Json<CommandView>)> {
    let host = load_visible_host(&state, &principal, id).await?;
    let command = parse_command(body, "")?;
    if let Some(reason) = refusal(&state, &host, &command).await? {
        return Err(ApiError::conflict(reason));
    }
    let record = queue(&state, &principal, host.id, command, None).await?;
    Ok((StatusCode::CREATED, Json(CommandView::from(&record))))
}

/// A command for several hosts: exactly one of `hosts` and `group`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetCommandRequest {
    /// These hosts (at most 1000), each in the caller's scope and able to take commands; one
    /// that is not fails the whole request and nothing is queued.
    pub hosts: Option<Vec<i64>>,
    /// Every host of this group (one of the caller's groups, unless an admin). Hosts that
    /// cannot take it (waiting for approval; a dry run, heartbeat or health check for a push
    /// host) are skipped and listed.
    pub group: Option<i64>,
    /// The command, as for `POST /api/v1/hosts/{id}/commands`.
    #[schema(value_type = Object)]
    pub command: Value,
}

/// A host a fleet-wide command was not queued for.
#[derive(Debug, Serialize, ToSchema)]
pub struct SkippedHost {
    pub host_id: i64,
    pub hostname: String,
    pub reason: String,
}

/// What a fleet-wide request queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct FleetCommandResponse {
    /// One command per host, in host order.
    pub commands: Vec<CommandView>,
    /// Hosts of the group that could not take the command.
    pub skipped: Vec<SkippedHost>,
}

/// Queues the same command for several hosts (a list, or every host of a group).
#[utoipa::path(post, path = "/api/v1/commands", tag = "commands", request_body = FleetCommandRequest,
    responses((status = 201, body = FleetCommandResponse), (status = 400), (status = 404), (status = 409)))]
pub async fn create_commands(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<FleetCommandRequest>,
) -> ApiResult<(StatusCode, Json<FleetCommandResponse>)> {
    let command = parse_command(body.command, "command.")?;
    let (targets, skipped) = match (body.hosts, body.group) {
        (Some(ids), None) => (explicit_targets(&state, &principal, &ids, &command).await?, Vec::new()),
        (None, Some(group)) => group_targets(&state, &principal, group, &command).await?,
        _ => return Err(ApiError::validation("hosts", "give either hosts (a list of host ids) or group")),
    };
    if targets.is_empty() {
        return Err(ApiError::conflict("none of the hosts can take commands").with_details(json!({
            "skipped": skipped.iter().map(|s| json!({ "host_id": s.host_id, "reason": s.reason })).collect::<Vec<_>>(),
        })));
    }
    let mut commands = Vec::with_capacity(targets.len());
    for host in &targets {
        let record = queue(&state, &principal, host.id, command.clone(), None).await?;
        commands.push(CommandView::from(&record));
    }
    Ok((StatusCode::CREATED, Json(FleetCommandResponse { commands, skipped })))
}

/// The hosts of an explicit list: all visible (404 naming the first that is not) and able to
/// take the command (409 naming the first that is not).
async fn explicit_targets(
    state: &AppState,
    principal: &Principal,
    ids: &[i64],
    command: &Command,
) -> ApiResult<Vec<Host>> {
    let mut unique: Vec<i64> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(id) {
            unique.push(*id);
        }
        if unique.len() > MAX_TARGET_HOSTS {
            return Err(ApiError::validation("hosts", format!("at most {MAX_TARGET_HOSTS} hosts")));
        }
    }
    if unique.is_empty() {
        return Err(ApiError::validation("hosts", "must list at least one host"));
    }
    let mut hosts = Vec::with_capacity(unique.len());
    for id in unique {
        let host = load_visible_host(state, principal, id).await.map_err(|e| {
            if e.status == StatusCode::NOT_FOUND {
                host_not_found(id)
            } else {
                e
            }
        })?;
        if let Some(reason) = refusal(state, &host, command).await? {
            return Err(ApiError::conflict(format!("host {id} ({}): {reason}", host.hostname))
                .with_details(json!({ "host_id": id })));
        }
        hosts.push(host);
    }
    Ok(hosts)
}

fn host_not_found(id: i64) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("host {id} not found"))
        .with_details(json!({ "host_id": id }))
}

/// The hosts of a group that can take the command, and those that cannot.
async fn group_targets(
    state: &AppState,
    principal: &Principal,
    group: i64,
    command: &Command,
) -> ApiResult<(Vec<Host>, Vec<SkippedHost>)> {
    let group = GroupId(group);
    if !principal.is_admin() && !principal.groups.contains(&group) {
        return Err(ApiError::not_found("group"));
    }
    if state.store().get_group(group).await?.is_none() {
        return Err(ApiError::not_found("group"));
    }
    let members = state.store().group_hosts(group).await?;
    if members.len() > MAX_TARGET_HOSTS {
        return Err(ApiError::validation(
            "group",
            format!("has {} hosts; at most {MAX_TARGET_HOSTS} can be addressed at once", members.len()),
        ));
    }
    let mut targets = Vec::with_capacity(members.len());
    let mut skipped = Vec::new();
    for host in members {
        match refusal(state, &host, command).await? {
            None => targets.push(host),
            Some(reason) => skipped.push(SkippedHost { host_id: host.id.0, hostname: host.hostname, reason }),
        }
    }
    Ok((targets, skipped))
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Filters and page of command lists.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CommandQuery {
    /// Only commands of this host.
    pub host: Option<i64>,
    /// `pending`, `sent`, `running`, `completed`, `failed`, `timed_out` or `cancelled`.
    pub state: Option<String>,
    /// The command type, e.g. `upgrade`.
    pub kind: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Filters of one host's command list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HostCommandQuery {
    /// `pending`, `sent`, `running`, `completed`, `failed`, `timed_out` or `cancelled`.
    pub state: Option<String>,
    /// The command type, e.g. `upgrade`.
    pub kind: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

const KINDS: [&str; 9] =
    ["scan", "refresh_metadata", "upgrade", "install", "remove", "rollback", "reboot", "heartbeat", "health_check"];

fn parse_state(text: &str) -> ApiResult<CommandState> {
    text.parse().map_err(|_| {
        ApiError::validation("state", "must be pending, sent, running, completed, failed, timed_out or cancelled")
    })
}

fn parse_kind(text: &str) -> ApiResult<String> {
    if KINDS.contains(&text) {
        Ok(text.to_owned())
    } else {
        Err(ApiError::validation("kind", format!("must be one of {}", KINDS.join(", "))))
    }
}

async fn list(
    state: &AppState,
    scope: Scope,
    host: Option<HostId>,
    state_filter: Option<&str>,
    kind: Option<&str>,
    page: PageParams,
) -> ApiResult<ListResponse<CommandView>> {
    let paging = page.paging()?;
    let filter = CommandFilter {
        scope,
        host,
        state: state_filter.map(parse_state).transpose()?,
        kind: kind.map(parse_kind).transpose()?,
        paging,
    };
    let page = state.store().list_commands(&filter).await?;
    Ok(page_of(page, paging, |c| CommandView::from(c)))
}

/// Commands of the hosts the caller may see, newest first; `total` counts only those.
#[utoipa::path(get, path = "/api/v1/commands", tag = "commands", params(CommandQuery),
    responses((status = 200, body = ListResponse<CommandView>), (status = 400)))]
pub async fn list_commands(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<CommandQuery>,
) -> ApiResult<Json<ListResponse<CommandView>>> {
    let page = PageParams { limit: q.limit, offset: q.offset };
    let host = q.host.map(HostId);
    Ok(Json(list(&state, principal.scope(), host, q.state.as_deref(), q.kind.as_deref(), page).await?))
}

/// The commands of one host, newest first. A host outside the caller's scope is 404.
#[utoipa::path(get, path = "/api/v1/hosts/{id}/commands", tag = "commands",
    params(("id" = i64, Path), HostCommandQuery),
    responses((status = 200, body = ListResponse<CommandView>), (status = 400), (status = 404)))]
pub async fn list_host_commands(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Query(q): Query<HostCommandQuery>,
) -> ApiResult<Json<ListResponse<CommandView>>> {
    let host = load_visible_host(&state, &principal, id).await?;
    let page = PageParams { limit: q.limit, offset: q.offset };
    Ok(Json(list(&state, principal.scope(), Some(host.id), q.state.as_deref(), q.kind.as_deref(), page).await?))
}

/// The command `id` if its host is in the caller's scope; otherwise "not found".
async fn load_visible_command(state: &AppState, principal: &Principal, id: Uuid) -> ApiResult<CommandRecord> {
    let command = state.store().get_command(id).await?.ok_or_else(|| ApiError::not_found("command"))?;
    if !state.store().host_visible(command.host_id, &principal.scope()).await? {
        return Err(ApiError::not_found("command"));
    }
    Ok(command)
}

/// One command with its result. A command of a host outside the caller's scope is 404.
#[utoipa::path(get, path = "/api/v1/commands/{id}", tag = "commands",
    params(("id" = String, Path, description = "The command's UUID")),
    responses((status = 200, body = CommandView), (status = 400), (status = 404)))]
pub async fn get_command(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<CommandView>> {
    Ok(Json(CommandView::from(&load_visible_command(&state, &principal, id).await?)))
}

// ---------------------------------------------------------------------------------------------
// Cancel and retry

/// Cancels a command that has not been delivered yet (409 once it has).
#[utoipa::path(post, path = "/api/v1/commands/{id}/cancel", tag = "commands",
    params(("id" = String, Path, description = "The command's UUID")),
    responses((status = 200, body = CommandView), (status = 400), (status = 404), (status = 409)))]
pub async fn cancel_command(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<CommandView>> {
    let command = load_visible_command(&state, &principal, id).await?;
    if command.state != CommandState::Pending {
        return Err(ApiError::conflict(format!(
            "the command is {}; only a pending command can be cancelled",
            command.state
        )));
    }
    // The store refuses too (409) if it was delivered in between.
    let record = state.store().cancel_command(id, state.now()).await?;
    publish(&state, &record).await;
    state
        .audit(
            AuditEvent::new(principal.actor(), "command.cancel", Outcome::Success)
                .user(principal.user_id())
                .target(format!("command:{id}"))
                .source(principal.source_ip.clone())
                .details(json!({ "kind": record.kind, "host": record.host_id.0 })),
        )
        .await;
    Ok(Json(CommandView::from(&record)))
}

/// Queues a failed, timed-out or cancelled command again, as a new command linked to it by
/// `retry_of`.
#[utoipa::path(post, path = "/api/v1/commands/{id}/retry", tag = "commands",
    params(("id" = String, Path, description = "The command's UUID")),
    responses((status = 201, body = CommandView), (status = 400), (status = 404), (status = 409)))]
pub async fn retry_command(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<CommandView>)> {
    let old = load_visible_command(&state, &principal, id).await?;
    if !matches!(old.state, CommandState::Failed | CommandState::TimedOut | CommandState::Cancelled) {
        return Err(ApiError::conflict(format!(
            "the command is {}; only a failed, timed-out or cancelled command can be retried",
            old.state
        )));
    }
    let host = load_visible_host(&state, &principal, old.host_id.0).await?;
    if let Some(reason) = refusal(&state, &host, &old.command).await? {
        return Err(ApiError::conflict(reason));
    }
    let record = queue(&state, &principal, host.id, old.command.clone(), Some(old.id)).await?;
    Ok((StatusCode::CREATED, Json(CommandView::from(&record))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Result<Command, String> {
        parse_command(value, "").map_err(|e| e.message)
    }

    #[test]
    fn good_commands_pass() {
        for good in [
            json!({ "type": "scan", "subsystems": ["packages"] }),
            json!({ "type": "refresh_metadata" }),
            json!({ "type": "upgrade", "selection": { "mode": "all" } }),
            json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": ["openssl=3.0.13-1~deb12u1", "bash=1:5.2-2"] }, "dry_run": true }),
            json!({ "type": "install", "packages": ["htop", "curl=8.5.0-2"] }),
            json!({ "type": "remove", "packages": ["telnet"] }),
            json!({ "type": "rollback", "command_id": Uuid::nil() }),
            json!({ "type": "reboot", "delay_secs": 86_400 }),
            json!({ "type": "reboot", "delay_secs": 300, "message": "Patching: rebooting in 5 minutes" }),
            json!({ "type": "health_check", "units": ["nginx", "ssh.socket"] }),
            json!({ "type": "health_check", "probes": [
                { "type": "http", "url": "https://127.0.0.1:8443/health", "expect_status": 204, "timeout_secs": 5 },
                { "type": "tcp", "address": "[::1]:5432" }
            ] }),
            json!({ "type": "heartbeat", "enabled": true }),
            json!({ "type": "heartbeat", "enabled": true, "interval_secs": 300, "duration_secs": 86_400 }),
        ] {
            parse(good.clone()).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
    }

    #[test]
    fn bad_commands_name_the_field() {
        let many: Vec<String> = (0..1001).map(|i| format!("p{i}")).collect();
        for (bad, field) in [
            (json!({ "type": "frobnicate" }), "type"),
            (json!({ "packages": ["x"] }), "type"),
            (json!({ "type": "install", "packages": [] }), "packages"),
            (json!({ "type": "install", "packages": [""] }), "packages[0]"),
            (json!({ "type": "install", "packages": ["-oDebug::pkg=1"] }), "packages[0]"),
            (json!({ "type": "install", "packages": ["ok", "../etc/passwd"] }), "packages[1]"),
            (json!({ "type": "install", "packages": ["x".repeat(513)] }), "packages[0]"),
            (json!({ "type": "install", "packages": many }), "packages"),
            (json!({ "type": "remove", "packages": ["a", "a=1"] }), "packages[1]"),
            (
                json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": ["openssl"] } }),
                "selection.packages[0]",
            ),
            (
                json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": ["openssl="] } }),
                "selection.packages[0]",
            ),
            (json!({ "type": "upgrade", "selection": { "mode": "sometimes" } }), "body"),
            (json!({ "type": "install", "packages": "htop" }), "body"),
            (json!({ "type": "reboot", "delay_secs": 86_401 }), "delay_secs"),
            (json!({ "type": "heartbeat", "enabled": true, "interval_secs": 0 }), "interval_secs"),
            (json!({ "type": "heartbeat", "enabled": true, "interval_secs": 301 }), "interval_secs"),
            (json!({ "type": "heartbeat", "enabled": true, "duration_secs": 86_401 }), "duration_secs"),
            (json!({ "type": "scan", "subsystems": [] }), "subsystems"),
            (json!({ "type": "scan", "subsystems": ["packages"], "extra": 1 }), "extra"),
            (json!({ "type": "reboot", "message": "two\nlines" }), "message"),
            (json!({ "type": "reboot", "message": "x".repeat(257) }), "message"),
            (json!({ "type": "health_check" }), "units"),
            (json!({ "type": "health_check", "units": ["--all"] }), "units[0]"),
            (
                json!({ "type": "health_check", "probes": [{ "type": "http", "url": "file:///etc/shadow" }] }),
                "probes[0].url",
            ),
            (
                json!({ "type": "health_check", "probes": [{ "type": "tcp", "address": "db", "timeout_secs": 5 }] }),
                "probes[0].address",
            ),
            (
                json!({ "type": "health_check", "probes": [{ "type": "tcp", "address": "db:1", "timeout_secs": 61 }] }),
                "probes[0].timeout_secs",
            ),
        ] {
            let error = parse_command(bad.clone(), "").expect_err(&bad.to_string());
            assert_eq!(error.code, "validation_error", "{bad}");
            let got = error.details.as_ref().and_then(|d| d["field"].as_str()).unwrap_or_default().to_owned();
            assert!(
                got == field || got.starts_with(field),
                "{bad}: field {got:?}, expected {field:?} ({})",
                error.message
            );
        }
        let error = parse_command(json!({ "type": "reboot", "delay_secs": 90_000 }), "command.").unwrap_err();
        assert_eq!(error.details.unwrap()["field"], "command.delay_secs");
    }
}
