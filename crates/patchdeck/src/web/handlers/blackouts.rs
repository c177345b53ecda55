//! `/api/v1/blackouts…`: change-freeze periods. A blackout blocks all disruptive work on the
//! hosts it applies to, even inside their maintenance windows: a global one applies to every
//! host, a group's to the group's hosts.
//!
//! Everyone who may see hosts sees the global blackouts and those of their groups. Only admins
//! create, change or delete them: a freeze is a policy that an operator must not be able to
//! lift to get their own change through.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use patchdeck_store::{Blackout, BlackoutFields, BlackoutFilter, BlackoutId, GroupId, MAX_NAME_CHARS};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::{ListResponse, PageParams};
use crate::web::{Json, Path, Query};

/// Longest reason, in characters.
const MAX_REASON: usize = 500;

/// A blackout as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlackoutView {
    pub id: i64,
    pub name: String,
    /// Null: global (every host).
    pub group_id: Option<i64>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339 (exclusive).
    pub ends_at: String,
    pub reason: String,
    pub created_by: Option<i64>,
    pub created_at: String,
}

impl From<&Blackout> for BlackoutView {
    fn from(b: &Blackout) -> Self {
        BlackoutView {
            id: b.id.0,
            name: b.fields.name.clone(),
            group_id: b.fields.group_id.map(|g| g.0),
            starts_at: b.fields.starts_at.to_string(),
            ends_at: b.fields.ends_at.to_string(),
            reason: b.fields.reason.clone(),
            created_by: b.created_by.map(|u| u.0),
            created_at: b.created_at.to_string(),
        }
    }
}

/// A blackout as a client sends it (create and replace).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlackoutRequest {
    /// 1–100 characters.
    pub name: String,
    /// A group, or null/absent for a global blackout.
    pub group_id: Option<i64>,
    /// RFC 3339.
    pub starts_at: String,
    /// RFC 3339, after `starts_at`.
    pub ends_at: String,
    /// Why (at most 500 characters).
    pub reason: Option<String>,
}

fn parse_instant(field: &str, text: &str) -> ApiResult<Timestamp> {
    text.parse().map_err(|_| ApiError::validation(field, "must be an RFC 3339 time such as 2026-12-20T00:00:00Z"))
}

async fn check_request(state: &AppState, body: BlackoutRequest) -> ApiResult<BlackoutFields> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name", format!("must be 1 to {MAX_NAME_CHARS} printable characters")));
    }
    let reason = body.reason.as_deref().unwrap_or_default().trim();
    if reason.chars().count() > MAX_REASON || reason.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
        return Err(ApiError::validation(
            "reason",
            format!("must be at most {MAX_REASON} characters, without control characters"),
        ));
    }
    let starts_at = parse_instant("starts_at", &body.starts_at)?;
    let ends_at = parse_instant("ends_at", &body.ends_at)?;
    // Stored to the millisecond: compare what will be stored.
    if ends_at.as_millisecond() <= starts_at.as_millisecond() {
        return Err(ApiError::validation("ends_at", "must be after starts_at"));
    }
    let group_id = match body.group_id {
        Some(id) => Some(
            state
                .store()
                .get_group(GroupId(id))
                .await?
                .ok_or_else(|| ApiError::validation("group_id", format!("group {id} does not exist")))?
                .id,
        ),
        None => None,
    };
    Ok(BlackoutFields { name: name.to_owned(), group_id, starts_at, ends_at, reason: reason.to_owned() })
}

/// The blackout `id` if the caller may see it (global ones and their groups'), else 404.
async fn load_visible(state: &AppState, principal: &Principal, id: i64) -> ApiResult<Blackout> {
    let blackout = state.store().get_blackout(BlackoutId(id)).await?.ok_or_else(|| ApiError::not_found("blackout"))?;
    match blackout.fields.group_id {
        Some(group) if !principal.is_admin() && !principal.groups.contains(&group) => {
            Err(ApiError::not_found("blackout"))
        }
        _ => Ok(blackout),
    }
}

fn audit_details(b: &Blackout) -> serde_json::Value {
    json!({
        "name": b.fields.name,
        "group_id": b.fields.group_id.map(|g| g.0),
        "starts_at": b.fields.starts_at.to_string(),
        "ends_at": b.fields.ends_at.to_string(),
        "reason": b.fields.reason,
    })
}

async fn audit(state: &AppState, principal: &Principal, action: &'static str, id: i64, details: serde_json::Value) {
    state
        .audit(
            AuditEvent::new(principal.actor(), action, Outcome::Success)
                .user(principal.user_id())
                .target(format!("blackout:{id}"))
                .source(principal.source_ip.clone())
                .details(details),
        )
        .await;
}

/// Filters and page of the blackout list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BlackoutQuery {
    /// Only this group's blackouts.
    pub group_id: Option<i64>,
    /// Only global blackouts.
    pub global: Option<bool>,
    /// Leave out blackouts that ended (default false).
    pub current: Option<bool>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Lists the blackouts the caller may see, by start.
#[utoipa::path(get, path = "/api/v1/blackouts", tag = "blackouts", params(BlackoutQuery),
    responses((status = 200, body = ListResponse<BlackoutView>), (status = 400)))]
pub async fn list_blackouts(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<BlackoutQuery>,
) -> ApiResult<Json<ListResponse<BlackoutView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let filter = BlackoutFilter {
        group: q.group_id.map(GroupId),
        global_only: q.global.unwrap_or(false),
        ending_after: q.current.unwrap_or(false).then(|| state.now()),
        ..BlackoutFilter::new(principal.scope())
    };
    let blackouts = state.store().list_blackouts(&filter).await?;
    Ok(Json(super::page_of_all(&blackouts, paging, |b| BlackoutView::from(b))))
}

/// One blackout (404 for another group's).
#[utoipa::path(get, path = "/api/v1/blackouts/{id}", tag = "blackouts", params(("id" = i64, Path)),
    responses((status = 200, body = BlackoutView), (status = 404)))]
pub async fn get_blackout(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<BlackoutView>> {
    Ok(Json(BlackoutView::from(&load_visible(&state, &principal, id).await?)))
}

/// Creates a blackout, global or for a group.
#[utoipa::path(post, path = "/api/v1/blackouts", tag = "blackouts", request_body = BlackoutRequest,
    responses((status = 201, body = BlackoutView), (status = 400), (status = 403)))]
pub async fn create_blackout(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<BlackoutRequest>,
) -> ApiResult<(StatusCode, Json<BlackoutView>)> {
    let fields = check_request(&state, body).await?;
    let blackout = state.store().create_blackout(&fields, Some(principal.user_id()), state.now()).await?;
    audit(&state, &principal, "blackout.create", blackout.id.0, audit_details(&blackout)).await;
    Ok((StatusCode::CREATED, Json(BlackoutView::from(&blackout))))
}

/// Replaces a blackout (every field).
#[utoipa::path(put, path = "/api/v1/blackouts/{id}", tag = "blackouts", params(("id" = i64, Path)),
    request_body = BlackoutRequest,
    responses((status = 200, body = BlackoutView), (status = 400), (status = 403), (status = 404)))]
pub async fn update_blackout(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<BlackoutRequest>,
) -> ApiResult<Json<BlackoutView>> {
    let old = load_visible(&state, &principal, id).await?;
    let fields = check_request(&state, body).await?;
    let blackout = state.store().update_blackout(old.id, &fields).await?;
    let details = json!({ "old": audit_details(&old), "new": audit_details(&blackout) });
    audit(&state, &principal, "blackout.update", blackout.id.0, details).await;
    Ok(Json(BlackoutView::from(&blackout)))
}

/// Deletes a blackout (ends the freeze).
#[utoipa::path(delete, path = "/api/v1/blackouts/{id}", tag = "blackouts", params(("id" = i64, Path)),
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn delete_blackout(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let blackout = load_visible(&state, &principal, id).await?;
    state.store().delete_blackout(blackout.id).await?;
    audit(&state, &principal, "blackout.delete", blackout.id.0, audit_details(&blackout)).await;
    Ok(StatusCode::NO_CONTENT)
}
