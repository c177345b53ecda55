//! `/api/v1/maintenance-windows…` and `/api/v1/hosts/{id}/next-window`: when disruptive work may
//! run (docs/maintenance-windows.md).
//!
//! Who may do what: everyone who may see hosts sees the windows of the hosts and groups in their
//! scope (a window outside it is answered as missing, 404). Operators create, change and delete
//! windows of the hosts in their scope and of the groups they belong to; admins any window.
//! Blackouts, which overrule windows, are admins' ([`super::blackouts`]).

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use patchdeck_schedule::{splay, Calendar, Interval, Recurrence, ScheduleError, HORIZON_DAYS};
use patchdeck_store::{
    format_time, parse_time, GroupId, HostId, MaintenanceWindow, MaintenanceWindowId, WindowFields, WindowFilter,
    WindowTarget, MAX_NAME_CHARS,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::hosts::load_visible_host;
use crate::web::handlers::{ListResponse, PageParams};
use crate::web::{Json, Path, Query};
use crate::windows::{self as schedule, CalendarError, WindowOccurrence};

/// Longest range of an occurrences query.
pub const MAX_RANGE_DAYS: i64 = 92;
/// Share of an open interval over which hosts' starts are spread when the caller does not say.
pub const DEFAULT_SPLAY: f64 = 0.5;

/// An interval of time.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntervalView {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339; the interval ends just before it.
    pub end: String,
}

impl From<&Interval> for IntervalView {
    fn from(i: &Interval) -> Self {
        IntervalView { start: i.start.to_string(), end: i.end.to_string() }
    }
}

/// A maintenance window as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    pub id: i64,
    pub name: String,
    /// Set for a host's own window (then `group_id` is null).
    pub host_id: Option<i64>,
    /// Set for a group's window (then `host_id` is null).
    pub group_id: Option<i64>,
    /// `{"kind": "once", "date": "2026-12-24"}`, `{"kind": "daily"}`,
    /// `{"kind": "weekly", "days": ["saturday", "sunday"]}`,
    /// `{"kind": "monthly", "rule": "day_of_month", "day": 31}` or
    /// `{"kind": "monthly", "rule": "nth_weekday", "nth": -1, "weekday": "friday"}`.
    #[schema(value_type = Object)]
    pub recurrence: Recurrence,
    /// Local `HH:MM` in `time_zone`.
    pub start_time: String,
    pub duration_minutes: i64,
    /// IANA name.
    pub time_zone: String,
    pub enabled: bool,
    /// The next occurrence that has not ended yet (blackouts not applied); null when there is
    /// none within 400 days (a one-off window in the past).
    pub next_occurrence: Option<IntervalView>,
    pub created_by: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(window: &MaintenanceWindow, now: Timestamp) -> WindowView {
    let f = &window.fields;
    WindowView {
        id: window.id.0,
        name: f.name.clone(),
        host_id: f.target.host_id().map(|h| h.0),
        group_id: f.target.group_id().map(|g| g.0),
        recurrence: f.recurrence.clone(),
        start_time: format_time(f.start_time),
        duration_minutes: f.duration_minutes,
        time_zone: f.time_zone.clone(),
        enabled: f.enabled,
        next_occurrence: next_occurrence(window, now).as_ref().map(IntervalView::from),
        created_by: window.created_by.map(|u| u.0),
        created_at: window.created_at.to_string(),
        updated_at: window.updated_at.to_string(),
    }
}

fn next_occurrence(window: &MaintenanceWindow, now: Timestamp) -> Option<Interval> {
    let calendar = Calendar::new(vec![window.fields.spec()], vec![]).ok()?;
    for days in [32, HORIZON_DAYS] {
        let to = now.checked_add(SignedDuration::from_hours(24 * days)).ok()?;
        if let Some(first) = calendar.occurrences(now, to).first() {
            return Some(first.interval());
        }
    }
    None
}

impl From<CalendarError> for ApiError {
    fn from(e: CalendarError) -> Self {
        match e {
            CalendarError::Store(e) => e.into(),
            other => ApiError::internal(other),
        }
    }
}

/// The API field a schedule error is about.
fn schedule_error(e: ScheduleError) -> ApiError {
    let field = match e {
        ScheduleError::Duration(_) => "duration_minutes",
        ref other => other.field(),
    };
    ApiError::validation(field, e)
}

/// A window as a client sends it (create and replace).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowRequest {
    /// 1–100 characters.
    pub name: String,
    /// The host this window is for; give exactly one of `host_id` and `group_id`.
    pub host_id: Option<i64>,
    /// The group this window is for (all its hosts).
    pub group_id: Option<i64>,
    /// See [`WindowView::recurrence`]. Weekly days are deduplicated and sorted.
    #[schema(value_type = Object)]
    pub recurrence: Recurrence,
    /// Local `HH:MM`.
    pub start_time: String,
    /// 1 to 10080 (7 days) minutes of elapsed time.
    pub duration_minutes: i64,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    /// Default true.
    pub enabled: Option<bool>,
}

/// Checks a request and the caller's right to the target it names.
async fn check_request(state: &AppState, principal: &Principal, body: WindowRequest) -> ApiResult<WindowFields> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name", format!("must be 1 to {MAX_NAME_CHARS} printable characters")));
    }
    let target = match (body.host_id, body.group_id) {
        (Some(host), None) => WindowTarget::Host(load_visible_host(state, principal, host).await?.id),
        (None, Some(group)) => WindowTarget::Group(load_visible_group(state, principal, group).await?),
        _ => return Err(ApiError::validation("host_id", "give exactly one of host_id and group_id")),
    };
    let start_time = parse_time(&body.start_time)
        .ok_or_else(|| ApiError::validation("start_time", "must be local time as HH:MM (00:00 to 23:59)"))?;
    if !(1..=7 * 24 * 60).contains(&body.duration_minutes) {
        return Err(ApiError::validation("duration_minutes", "must be between 1 and 10080 (7 days)"));
    }
    let mut recurrence = body.recurrence;
    if let Recurrence::Weekly { days } = &mut recurrence {
        days.sort_by_key(|d| d.to_monday_zero_offset());
        days.dedup();
    }
    let fields = WindowFields {
        name: name.to_owned(),
        target,
        recurrence,
        start_time,
        duration_minutes: body.duration_minutes,
        time_zone: body.time_zone.trim().to_owned(),
        enabled: body.enabled.unwrap_or(true),
    };
    fields.spec().validate().map_err(schedule_error)?;
    Ok(fields)
}

/// The group `id` if the caller may see it (admins: any; others: their own), else 404.
async fn load_visible_group(state: &AppState, principal: &Principal, id: i64) -> ApiResult<GroupId> {
    let id = GroupId(id);
    if !principal.is_admin() && !principal.groups.contains(&id) {
        return Err(ApiError::not_found("group"));
    }
    Ok(state.store().get_group(id).await?.ok_or_else(|| ApiError::not_found("group"))?.id)
}

/// The window `id` if it is in the caller's scope, else 404.
async fn load_visible_window(state: &AppState, principal: &Principal, id: i64) -> ApiResult<MaintenanceWindow> {
    let window = state
        .store()
        .get_maintenance_window(MaintenanceWindowId(id))
        .await?
        .ok_or_else(|| ApiError::not_found("maintenance window"))?;
    if !principal.is_admin() {
        let visible = match window.fields.target {
            WindowTarget::Host(host) => state.store().host_visible(host, &principal.scope()).await?,
            WindowTarget::Group(group) => principal.groups.contains(&group),
        };
        if !visible {
            return Err(ApiError::not_found("maintenance window"));
        }
    }
    Ok(window)
}

fn audit_details(window: &MaintenanceWindow) -> serde_json::Value {
    let f = &window.fields;
    json!({
        "name": f.name,
        "host_id": f.target.host_id().map(|h| h.0),
        "group_id": f.target.group_id().map(|g| g.0),
        "recurrence": f.recurrence,
        "start_time": format_time(f.start_time),
        "duration_minutes": f.duration_minutes,
        "time_zone": f.time_zone,
        "enabled": f.enabled,
    })
}

async fn audit(state: &AppState, principal: &Principal, action: &'static str, id: i64, details: serde_json::Value) {
    state
        .audit(
            AuditEvent::new(principal.actor(), action, Outcome::Success)
                .user(principal.user_id())
                .target(format!("maintenance_window:{id}"))
                .source(principal.source_ip.clone())
                .details(details),
        )
        .await;
}

/// Filters and page of the window list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WindowQuery {
    /// Only this host's own windows (not its groups').
    pub host_id: Option<i64>,
    /// Only this group's windows.
    pub group_id: Option<i64>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Lists the windows in the caller's scope, by id.
#[utoipa::path(get, path = "/api/v1/maintenance-windows", tag = "maintenance-windows", params(WindowQuery),
    responses((status = 200, body = ListResponse<WindowView>), (status = 400)))]
pub async fn list_maintenance_windows(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<WindowQuery>,
) -> ApiResult<Json<ListResponse<WindowView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let filter = WindowFilter {
        host: q.host_id.map(patchdeck_store::HostId),
        group: q.group_id.map(GroupId),
        ..WindowFilter::new(principal.scope())
    };
    let windows = state.store().list_maintenance_windows(&filter).await?;
    let now = state.now();
    Ok(Json(super::page_of_all(&windows, paging, |w| view(w, now))))
}

/// One window (404 outside the caller's scope).
#[utoipa::path(get, path = "/api/v1/maintenance-windows/{id}", tag = "maintenance-windows",
    params(("id" = i64, Path)), responses((status = 200, body = WindowView), (status = 404)))]
pub async fn get_maintenance_window(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<WindowView>> {
    let window = load_visible_window(&state, &principal, id).await?;
    Ok(Json(view(&window, state.now())))
}

/// Creates a window for a host or a group. A one-off window may lie in the past (it then never
/// opens, and `next_occurrence` is null).
#[utoipa::path(post, path = "/api/v1/maintenance-windows", tag = "maintenance-windows",
    request_body = WindowRequest,
    responses((status = 201, body = WindowView), (status = 400), (status = 403), (status = 404)))]
pub async fn create_maintenance_window(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<WindowRequest>,
) -> ApiResult<(StatusCode, Json<WindowView>)> {
    let fields = check_request(&state, &principal, body).await?;
    let window = state.store().create_maintenance_window(&fields, Some(principal.user_id()), state.now()).await?;
    audit(&state, &principal, "maintenance_window.create", window.id.0, audit_details(&window)).await;
    Ok((StatusCode::CREATED, Json(view(&window, state.now()))))
}

/// Replaces a window (every field; the target may change to another host or group in scope).
#[utoipa::path(put, path = "/api/v1/maintenance-windows/{id}", tag = "maintenance-windows",
    params(("id" = i64, Path)), request_body = WindowRequest,
    responses((status = 200, body = WindowView), (status = 400), (status = 403), (status = 404)))]
pub async fn update_maintenance_window(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<WindowRequest>,
) -> ApiResult<Json<WindowView>> {
    let old = load_visible_window(&state, &principal, id).await?;
    let fields = check_request(&state, &principal, body).await?;
    let window = state.store().update_maintenance_window(old.id, &fields, state.now()).await?;
    let details = json!({ "old": audit_details(&old), "new": audit_details(&window) });
    audit(&state, &principal, "maintenance_window.update", window.id.0, details).await;
    Ok(Json(view(&window, state.now())))
}

/// Deletes a window.
#[utoipa::path(delete, path = "/api/v1/maintenance-windows/{id}", tag = "maintenance-windows",
    params(("id" = i64, Path)), responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete_maintenance_window(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let window = load_visible_window(&state, &principal, id).await?;
    state.store().delete_maintenance_window(window.id).await?;
    audit(&state, &principal, "maintenance_window.delete", window.id.0, audit_details(&window)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The calendar range and whose windows.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OccurrenceQuery {
    /// RFC 3339 start of the range.
    pub from: String,
    /// RFC 3339 end of the range (exclusive), at most 92 days after `from`.
    pub to: String,
    /// A host: its own windows and its groups', with the blackouts that apply to it.
    pub host_id: Option<i64>,
    /// A group: its own windows, with the global blackouts and the group's.
    pub group_id: Option<i64>,
}

/// One occurrence of one window.
#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrenceView {
    pub window_id: i64,
    pub window_name: String,
    /// The window's IANA time zone, e.g. `Europe/Berlin` (`start` and `end` are UTC).
    pub time_zone: String,
    /// The window's host (for a host window).
    pub host_id: Option<i64>,
    /// That host's hostname.
    pub host_name: Option<String>,
    /// The window's group (for a group window).
    pub group_id: Option<i64>,
    /// That group's name; null for a group the caller is not in (a host's windows include those
    /// of all its groups), so names of other groups do not leak.
    pub group_name: Option<String>,
    pub start: String,
    pub end: String,
    /// The parts inside a blackout: no work runs then.
    pub blocked: Vec<IntervalView>,
}

/// The views of these occurrences, with their hosts' and groups' names looked up in bulk (one
/// query each, however many occurrences).
async fn occurrence_views(
    state: &AppState,
    principal: &Principal,
    occurrences: &[WindowOccurrence],
) -> ApiResult<Vec<OccurrenceView>> {
    let hosts: Vec<HostId> = occurrences.iter().filter_map(|o| o.target.host_id()).collect();
    let groups: Vec<GroupId> = occurrences
        .iter()
        .filter_map(|o| o.target.group_id())
        .filter(|g| principal.is_admin() || principal.groups.contains(g))
        .collect();
    let host_names = state.store().host_names(&hosts).await?;
    let group_names = state.store().group_names(&groups).await?;
    Ok(occurrences
        .iter()
        .map(|o| {
            let host_id = o.target.host_id();
            let group_id = o.target.group_id();
            OccurrenceView {
                window_id: o.window_id.0,
                window_name: o.window_name.clone(),
                time_zone: o.time_zone.clone(),
                host_id: host_id.map(|h| h.0),
                host_name: host_id.and_then(|h| host_names.get(&h).cloned()),
                group_id: group_id.map(|g| g.0),
                group_name: group_id.and_then(|g| group_names.get(&g).cloned()),
                start: o.start.to_string(),
                end: o.end.to_string(),
                blocked: o.blocked.iter().map(IntervalView::from).collect(),
            }
        })
        .collect())
}

/// Occurrences in a range, for a calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct OccurrenceList {
    pub from: String,
    pub to: String,
    /// In start order.
    pub items: Vec<OccurrenceView>,
}

fn parse_instant(field: &str, text: &str) -> ApiResult<Timestamp> {
    text.parse().map_err(|_| ApiError::validation(field, "must be an RFC 3339 time such as 2026-12-01T00:00:00Z"))
}

/// The occurrences of windows overlapping `[from, to)`: of a host (its own and its groups'
/// windows), of a group, or with neither filter of every window in the caller's scope, each
/// with the parts a blackout covers.
#[utoipa::path(get, path = "/api/v1/maintenance-windows/occurrences", tag = "maintenance-windows",
    params(OccurrenceQuery), responses((status = 200, body = OccurrenceList), (status = 400), (status = 404)))]
pub async fn list_window_occurrences(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<OccurrenceQuery>,
) -> ApiResult<Json<OccurrenceList>> {
    let from = parse_instant("from", &q.from)?;
    let to = parse_instant("to", &q.to)?;
    if to <= from {
        return Err(ApiError::validation("to", "must be after from"));
    }
    if to.duration_since(from) > SignedDuration::from_hours(24 * MAX_RANGE_DAYS) {
        return Err(ApiError::validation("to", format!("the range is at most {MAX_RANGE_DAYS} days")));
    }
    let occurrences = match (q.host_id, q.group_id) {
        (Some(_), Some(_)) => return Err(ApiError::validation("host_id", "give host_id or group_id, not both")),
        (Some(host), None) => {
            let host = load_visible_host(&state, &principal, host).await?;
            schedule::host_schedule(state.store(), host.id).await?.occurrences(from, to)
        }
        (None, Some(group)) => {
            let group = load_visible_group(&state, &principal, group).await?;
            schedule::group_schedule(state.store(), group).await?.occurrences(from, to)
        }
        (None, None) => schedule::fleet_occurrences(state.store(), &principal.scope(), from, to).await?,
    };
    Ok(Json(OccurrenceList {
        from: from.to_string(),
        to: to.to_string(),
        items: occurrence_views(&state, &principal, &occurrences).await?,
    }))
}

/// How much of the open interval starts are spread over.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NextWindowQuery {
    /// 0 to 1 (default 0.5): this host starts within the first `splay` of the interval.
    pub splay: Option<f64>,
}

/// When work may next run on a host.
#[derive(Debug, Serialize, ToSchema)]
pub struct NextWindow {
    pub host_id: i64,
    /// The time of the answer (the manager's clock).
    pub now: String,
    /// Whether the host is inside an open interval now.
    pub open_now: bool,
    /// Whether a blackout is in force for the host now.
    pub blocked_now: bool,
    /// The open interval now, or the next one (windows merged, blackouts cut out); null when
    /// there is none.
    pub open: Option<IntervalView>,
    /// Where in `open` this host starts work (a stable hash of the host spread over the first
    /// `splay` of the interval); when that is already past, work starts at once.
    pub splay_start: Option<String>,
    /// Why `open` is null: `no_windows` (no enabled window applies to the host) or
    /// `none_within_horizon` (none opens within 400 days, e.g. only past one-off windows or a
    /// long blackout).
    pub reason: Option<String>,
    /// How many enabled windows apply (the host's own and its groups').
    pub windows: usize,
}

/// The open-now or next open interval of a host, after blackouts, with its splayed start.
#[utoipa::path(get, path = "/api/v1/hosts/{id}/next-window", tag = "maintenance-windows",
    params(("id" = i64, Path), NextWindowQuery),
    responses((status = 200, body = NextWindow), (status = 400), (status = 404)))]
pub async fn get_host_next_window(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Query(q): Query<NextWindowQuery>,
) -> ApiResult<Json<NextWindow>> {
    let fraction = q.splay.unwrap_or(DEFAULT_SPLAY);
    if !(0.0..=1.0).contains(&fraction) {
        return Err(ApiError::validation("splay", "must be between 0 and 1"));
    }
    let host = load_visible_host(&state, &principal, id).await?;
    let schedule = schedule::host_schedule(state.store(), host.id).await?;
    let now = state.now();
    let calendar = &schedule.calendar;
    let open = calendar.next_open(now);
    let reason = match (&open, calendar.has_windows()) {
        (Some(_), _) => None,
        (None, false) => Some("no_windows".to_owned()),
        (None, true) => Some("none_within_horizon".to_owned()),
    };
    Ok(Json(NextWindow {
        host_id: host.id.0,
        now: now.to_string(),
        open_now: open.is_some_and(|o| o.contains(now)),
        blocked_now: calendar.blocked_at(now),
        open: open.as_ref().map(IntervalView::from),
        splay_start: open.map(|o| splay(host.id.0, o, fraction).to_string()),
        reason,
        windows: schedule.windows.len(),
    }))
}
