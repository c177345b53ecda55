//! `/api/v1/groups…`: named sets of users and hosts, the unit of an operator's scope. Admins
//! create, change and delete groups and their memberships; operators and viewers see only the
//! groups they belong to, and any other group is answered as missing (404), so group ids do not
//! leak.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use patchdeck_store::{Group, GroupCounts, GroupId, GroupUpdate, Host, HostId, User, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::hosts::HostView;
use crate::web::handlers::{page_of_all, ListResponse, PageParams};
use crate::web::{Json, Path, Query};

/// Longest group name, in characters.
const MAX_NAME: usize = 64;
/// Longest description, in characters.
const MAX_DESCRIPTION: usize = 500;

/// A group as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Hosts in the group: every member, as `GET /api/v1/groups/{id}/members` lists them (a
    /// caller who sees the group sees all its hosts).
    pub host_count: u32,
    /// Users in the group.
    pub user_count: u32,
    pub created_at: String,
}

impl GroupView {
    fn new(g: &Group, counts: GroupCounts) -> Self {
        GroupView {
            id: g.id.0,
            name: g.name.clone(),
            description: g.description.clone(),
            host_count: counts.hosts,
            user_count: counts.users,
            created_at: g.created_at.to_string(),
        }
    }
}

/// One group as the API shows it, with its member counts.
async fn view(state: &AppState, group: &Group) -> ApiResult<GroupView> {
    let counts = state.store().group_counts(&[group.id]).await?;
    Ok(GroupView::new(group, counts.get(&group.id).copied().unwrap_or_default()))
}

/// A user in a group (no account details beyond what identifies them).
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupUserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
}

impl From<&User> for GroupUserView {
    fn from(u: &User) -> Self {
        GroupUserView {
            id: u.id.0,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.as_str().to_owned(),
        }
    }
}

/// Who and what is in a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMembers {
    /// By username.
    pub users: Vec<GroupUserView>,
    /// By hostname.
    pub hosts: Vec<HostView>,
}

/// Checks a group name: 1–64 printable characters (surrounding spaces are dropped).
pub fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name", format!("must be 1 to {MAX_NAME} printable characters")));
    }
    Ok(name.to_owned())
}

/// Checks a description: at most 500 characters, no control characters but line breaks and tabs.
pub fn check_description(description: &str) -> ApiResult<String> {
    let description = description.trim();
    if description.chars().count() > MAX_DESCRIPTION
        || description.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ApiError::validation(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters, without control characters"),
        ));
    }
    Ok(description.to_owned())
}

/// The group `id` if the caller may see it: admins see every group, others only their own
/// (anything else is "not found").
async fn load_visible(state: &AppState, principal: &Principal, id: i64) -> ApiResult<Group> {
    let id = GroupId(id);
    if !principal.is_admin() && !principal.groups.contains(&id) {
        return Err(ApiError::not_found("group"));
    }
    state.store().get_group(id).await?.ok_or_else(|| ApiError::not_found("group"))
}

async fn load_user(state: &AppState, id: i64) -> ApiResult<User> {
    state.store().get_user(UserId(id)).await?.ok_or_else(|| ApiError::not_found("user"))
}

async fn load_host(state: &AppState, id: i64) -> ApiResult<Host> {
    state.store().get_host(HostId(id)).await?.ok_or_else(|| ApiError::not_found("host"))
}

/// Page of the group list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GroupQuery {
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Lists groups by name: every group for admins, the caller's own groups for everyone else.
#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", params(GroupQuery),
    responses((status = 200, body = ListResponse<GroupView>), (status = 400)))]
pub async fn list_groups(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<GroupQuery>,
) -> ApiResult<Json<ListResponse<GroupView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let groups: Vec<Group> = state
        .store()
        .list_groups()
        .await?
        .into_iter()
        .filter(|g| principal.is_admin() || principal.groups.contains(&g.id))
        .collect();
    let page = page_of_all(&groups, paging, Clone::clone);
    let ids: Vec<GroupId> = page.items.iter().map(|g| g.id).collect();
    let counts = state.store().group_counts(&ids).await?;
    let items = page.items.iter().map(|g| GroupView::new(g, counts.get(&g.id).copied().unwrap_or_default())).collect();
    Ok(Json(ListResponse { items, total: page.total, limit: page.limit, offset: page.offset }))
}

/// One group (404 for a group the caller is not in, unless an admin).
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = i64, Path)),
    responses((status = 200, body = GroupView), (status = 404)))]
pub async fn get_group(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<GroupView>> {
    let group = load_visible(&state, &principal, id).await?;
    Ok(Json(view(&state, &group).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupRequest {
    /// 1–64 printable characters, unique.
    pub name: String,
    /// At most 500 characters.
    pub description: Option<String>,
}

/// Creates a group.
#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = CreateGroupRequest,
    responses((status = 201, body = GroupView), (status = 400), (status = 409)))]
pub async fn create_group(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateGroupRequest>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let name = check_name(&body.name)?;
    let description = check_description(body.description.as_deref().unwrap_or_default())?;
    let group = state.store().create_group(&name, &description, state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "group.create", Outcome::Success)
                .user(principal.user_id())
                .target(format!("group:{}", group.id))
                .source(principal.source_ip.clone())
                .details(json!({ "name": group.name })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(GroupView::new(&group, GroupCounts::default()))))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateGroupRequest {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// Renames a group or changes its description (fields left out stay as they are).
#[utoipa::path(patch, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = i64, Path)),
    request_body = UpdateGroupRequest,
    responses((status = 200, body = GroupView), (status = 400), (status = 404), (status = 409)))]
pub async fn update_group(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<UpdateGroupRequest>,
) -> ApiResult<Json<GroupView>> {
    let group = load_visible(&state, &principal, id).await?;
    let name = body.name.as_deref().map(check_name).transpose()?.filter(|n| *n != group.name);
    let description =
        body.description.as_deref().map(check_description).transpose()?.filter(|d| *d != group.description);
    if name.is_none() && description.is_none() {
        return Ok(Json(view(&state, &group).await?));
    }
    let updated = state
        .store()
        .update_group(group.id, &GroupUpdate { name: name.clone(), description: description.clone() })
        .await?;
    let mut changes = serde_json::Map::new();
    if name.is_some() {
        changes.insert("name".into(), json!({ "old": group.name, "new": updated.name }));
    }
    if description.is_some() {
        changes.insert("description".into(), json!({ "old": group.description, "new": updated.description }));
    }
    state
        .audit(
            AuditEvent::new(principal.actor(), "group.update", Outcome::Success)
                .user(principal.user_id())
                .target(format!("group:{}", group.id))
                .source(principal.source_ip.clone())
                .details(json!({ "changes": changes })),
        )
        .await;
    Ok(Json(view(&state, &updated).await?))
}

/// Deletes a group and its memberships; users and hosts stay. A host that was only in this group
/// becomes ungrouped, and so visible to every operator and viewer.
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "groups", params(("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete_group(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let group = load_visible(&state, &principal, id).await?;
    let users = state.store().group_users(group.id).await?.len();
    let hosts = state.store().group_hosts(group.id).await?.len();
    state.store().delete_group(group.id).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "group.delete", Outcome::Success)
                .user(principal.user_id())
                .target(format!("group:{}", group.id))
                .source(principal.source_ip.clone())
                .details(json!({ "name": group.name, "users": users, "hosts": hosts })),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The users and hosts of a group (404 for a group the caller is not in, unless an admin).
#[utoipa::path(get, path = "/api/v1/groups/{id}/members", tag = "groups", params(("id" = i64, Path)),
    responses((status = 200, body = GroupMembers), (status = 404)))]
pub async fn list_group_members(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<GroupMembers>> {
    let group = load_visible(&state, &principal, id).await?;
    let users = state.store().group_users(group.id).await?;
    let hosts = state.store().group_hosts(group.id).await?;
    Ok(Json(GroupMembers {
        users: users.iter().map(GroupUserView::from).collect(),
        hosts: hosts.iter().map(HostView::from).collect(),
    }))
}

/// Records a membership change.
async fn audit_membership(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    group: &Group,
    member: serde_json::Value,
) {
    state
        .audit(
            AuditEvent::new(principal.actor(), action, Outcome::Success)
                .user(principal.user_id())
                .target(format!("group:{}", group.id))
                .source(principal.source_ip.clone())
                .details(json!({ "group": group.name, "member": member })),
        )
        .await;
}

/// Puts a user in a group (their scope then includes its hosts). Doing it twice is no error.
#[utoipa::path(put, path = "/api/v1/groups/{id}/users/{user_id}", tag = "groups",
    params(("id" = i64, Path), ("user_id" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn add_group_user(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, user_id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let group = load_visible(&state, &principal, id).await?;
    let user = load_user(&state, user_id).await?;
    if state.store().user_group_ids(user.id).await?.contains(&group.id) {
        return Ok(StatusCode::NO_CONTENT);
    }
    state.store().add_user_to_group(user.id, group.id).await?;
    let member = json!({ "user_id": user.id.0, "username": user.username });
    audit_membership(&state, &principal, "group.user_add", &group, member).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a user out of a group (404 when they were not in it).
#[utoipa::path(delete, path = "/api/v1/groups/{id}/users/{user_id}", tag = "groups",
    params(("id" = i64, Path), ("user_id" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn remove_group_user(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, user_id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let group = load_visible(&state, &principal, id).await?;
    let user = load_user(&state, user_id).await?;
    if !state.store().remove_user_from_group(user.id, group.id).await? {
        return Err(ApiError::not_found("group membership"));
    }
    let member = json!({ "user_id": user.id.0, "username": user.username });
    audit_membership(&state, &principal, "group.user_remove", &group, member).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Puts a host in a group. Doing it twice is no error.
#[utoipa::path(put, path = "/api/v1/groups/{id}/hosts/{host_id}", tag = "groups",
    params(("id" = i64, Path), ("host_id" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn add_group_host(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, host_id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let group = load_visible(&state, &principal, id).await?;
    let host = load_host(&state, host_id).await?;
    if state.store().host_group_ids(host.id).await?.contains(&group.id) {
        return Ok(StatusCode::NO_CONTENT);
    }
    state.store().add_host_to_group(host.id, group.id).await?;
    let member = json!({ "host_id": host.id.0, "hostname": host.hostname });
    audit_membership(&state, &principal, "group.host_add", &group, member).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Takes a host out of a group (404 when it was not in it). A host left in no group becomes
/// visible to every operator and viewer.
#[utoipa::path(delete, path = "/api/v1/groups/{id}/hosts/{host_id}", tag = "groups",
    params(("id" = i64, Path), ("host_id" = i64, Path)), responses((status = 204), (status = 404)))]
pub async fn remove_group_host(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, host_id)): Path<(i64, i64)>,
) -> ApiResult<StatusCode> {
    let group = load_visible(&state, &principal, id).await?;
    let host = load_host(&state, host_id).await?;
    if !state.store().remove_host_from_group(host.id, group.id).await? {
        return Err(ApiError::not_found("group membership"));
    }
    let member = json!({ "host_id": host.id.0, "hostname": host.hostname });
    audit_membership(&state, &principal, "group.host_remove", &group, member).await;
    Ok(StatusCode::NO_CONTENT)
}
