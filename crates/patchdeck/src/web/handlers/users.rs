//! `/api/v1/users…` (admins only): accounts, their roles, passwords, MFA reset and sessions.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use axum::http::StatusCode;
use patchdeck_store::{AuthSource, NewUser, Role, SortDir, User, UserFilter, UserId, UserSort, UserUpdate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::server::random_password;
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::auth::{check_new_password, hash_password, SessionView, UserView};
use crate::web::handlers::{page_of, ListResponse, Order, PageParams};
use crate::web::{Json, Path, Query};

/// Checks and normalises a username: 1–64 characters of `a-z 0-9 . _ -` (upper case is folded),
/// starting with a letter or digit.
pub fn check_username(name: &str) -> ApiResult<String> {
    let name = name.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if !ok {
        return Err(ApiError::validation(
            "username",
            "must be 1 to 64 characters of a-z, 0-9, '.', '_', '-', '@', starting with a letter or digit",
        ));
    }
    Ok(name)
}

fn check_display_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::validation("display_name", "must be at most 100 printable characters"));
    }
    Ok(name.to_owned())
}

fn parse_role(text: &str) -> ApiResult<Role> {
    text.parse().map_err(|_| ApiError::validation("role", "must be admin, operator or viewer"))
}

async fn load(state: &AppState, id: i64) -> ApiResult<User> {
    state.store().get_user(UserId(id)).await?.ok_or_else(|| ApiError::not_found("user"))
}

/// Refuses a change that would leave no enabled admin (nobody could administer the manager).
async fn keep_an_admin(state: &AppState, user: &User, still_admin: bool) -> ApiResult<()> {
    if user.role != Role::Admin || user.disabled || still_admin {
        return Ok(());
    }
    let filter =
        UserFilter { role: Some(Role::Admin), paging: patchdeck_store::Paging::new(1000, 0), ..UserFilter::default() };
    let admins = state.store().list_users(&filter).await?;
    let others = admins.items.iter().filter(|u| u.id != user.id && !u.disabled).count();
    if others == 0 {
        return Err(ApiError::conflict("this is the last enabled admin; make another admin first"));
    }
    Ok(())
}

/// Filters and order of the user list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// `admin`, `operator` or `viewer`.
    pub role: Option<String>,
    /// Part of the username or display name.
    pub q: Option<String>,
    /// `username` (default), `created_at` or `last_login_at`.
    pub sort: Option<String>,
    pub order: Option<Order>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Lists accounts.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(UserQuery),
    responses((status = 200, body = ListResponse<UserView>)))]
pub async fn list_users(
    State(state): State<AppState>,
    Query(q): Query<UserQuery>,
) -> ApiResult<Json<ListResponse<UserView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let sort = match q.sort.as_deref() {
        None | Some("username") => UserSort::Username,
        Some("created_at") => UserSort::CreatedAt,
        Some("last_login_at") => UserSort::LastLogin,
        Some(_) => return Err(ApiError::validation("sort", "must be username, created_at or last_login_at")),
    };
    let filter = UserFilter {
        role: q.role.as_deref().map(parse_role).transpose()?,
        search: q.q.filter(|s| !s.trim().is_empty()).map(|s| s.chars().take(100).collect()),
        sort,
        dir: q.order.map(SortDir::from).unwrap_or_default(),
        paging,
    };
    let page = state.store().list_users(&filter).await?;
    Ok(Json(page_of(page, paging, |u| UserView::from(u))))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = UserView), (status = 404)))]
pub async fn get_user(State(state): State<AppState>, Path(id): Path<i64>) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&load(&state, id).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub display_name: Option<String>,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// An initial password (at least 12 characters); without one a random password is made and
    /// returned. Either way the user must change it at first login.
    pub password: Option<String>,
}

/// A created account, with the generated password when none was given (shown once).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    pub user: UserView,
    pub password: Option<String>,
}

/// Creates a local account. The password must be changed at first login.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = CreatedUser), (status = 400), (status = 409)))]
pub async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    let username = check_username(&body.username)?;
    let role = parse_role(&body.role)?;
    let display_name = match &body.display_name {
        Some(name) => check_display_name(name)?,
        None => username.clone(),
    };
    let (password, generated) = match body.password {
        Some(password) => {
            check_new_password("password", &password, &username)?;
            (password, false)
        }
        None => (random_password().map_err(ApiError::internal)?, true),
    };
    let hash = hash_password(password.clone()).await?;
    let user = state
        .store()
        .create_user(
            &NewUser {
                username,
                display_name,
                role,
                password_hash: Some(hash),
                auth_source: AuthSource::Local,
                oidc: None,
                must_change_password: true,
            },
            state.now(),
        )
        .await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "user.create", Outcome::Success)
                .user(principal.user_id())
                .target(format!("user:{}", user.username))
                .source(principal.source_ip.clone())
                .details(json!({ "role": role.as_str() })),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedUser { user: UserView::from(&user), password: generated.then_some(password) }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub display_name: Option<String>,
    /// `admin`, `operator` or `viewer`.
    pub role: Option<String>,
    /// A disabled account cannot sign in and its sessions and API tokens stop working.
    pub disabled: Option<bool>,
}

/// Changes an account's display name, role or enabled state.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    request_body = UpdateUserRequest, responses((status = 200, body = UserView), (status = 400), (status = 404), (status = 409)))]
pub async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<UpdateUserRequest>,
) -> ApiResult<Json<UserView>> {
    let user = load(&state, id).await?;
    let role = body.role.as_deref().map(parse_role).transpose()?;
    let display_name = body.display_name.as_deref().map(check_display_name).transpose()?;
    let still_admin = role.is_none_or(|r| r == Role::Admin) && body.disabled != Some(true);
    keep_an_admin(&state, &user, still_admin).await?;
    let updated = state
        .store()
        .update_user(user.id, &UserUpdate { display_name, role, disabled: body.disabled }, state.now())
        .await?;
    if body.disabled == Some(true) {
        state.store().revoke_user_sessions(user.id, "account disabled", state.now()).await?;
    }
    state
        .audit(
            AuditEvent::new(principal.actor(), "user.update", Outcome::Success)
                .user(principal.user_id())
                .target(format!("user:{}", user.username))
                .source(principal.source_ip.clone())
                .details(json!({
                    "role": role.map(|r| r.as_str()),
                    "previous_role": user.role.as_str(),
                    "disabled": body.disabled,
                })),
        )
        .await;
    Ok(Json(UserView::from(&updated)))
}

/// Deletes an account (not your own, not the last admin).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let user = load(&state, id).await?;
    if user.id == principal.user_id() {
        return Err(ApiError::conflict("you cannot delete your own account"));
    }
    keep_an_admin(&state, &user, false).await?;
    state.store().delete_user(user.id).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "user.delete", Outcome::Success)
                .user(principal.user_id())
                .target(format!("user:{}", user.username))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordRequest {
    /// The new password; without one a random password is made and returned.
    pub password: Option<String>,
}

/// The password an admin set (returned only when generated).
#[derive(Debug, Serialize, ToSchema)]
pub struct SetPasswordResponse {
    pub password: Option<String>,
}

/// Sets a local account's password. The user must change it at next login; the account is
/// unlocked and its sessions end.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", params(("id" = i64, Path)),
    request_body = SetPasswordRequest, responses((status = 200, body = SetPasswordResponse), (status = 400), (status = 404), (status = 409)))]
pub async fn set_user_password(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
    Json(body): Json<SetPasswordRequest>,
) -> ApiResult<Json<SetPasswordResponse>> {
    let user = load(&state, id).await?;
    if user.auth_source != AuthSource::Local {
        return Err(ApiError::conflict("this account signs in with SSO; it has no local password"));
    }
    let (password, generated) = match body.password {
        Some(p) => {
            check_new_password("password", &p, &user.username)?;
            (p, false)
        }
        None => (random_password().map_err(ApiError::internal)?, true),
    };
    let hash = hash_password(password.clone()).await?;
    state.store().set_password(user.id, &hash, true, state.now()).await?;
    state.store().revoke_user_sessions(user.id, "password set by an administrator", state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "user.password_reset", Outcome::Success)
                .user(principal.user_id())
                .target(format!("user:{}", user.username))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(Json(SetPasswordResponse { password: generated.then_some(password) }))
}

/// Removes every second factor of an account (a lost phone or key). With MFA required, the user
/// enrolls again at next login.
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
pub async fn reset_user_mfa(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let user = load(&state, id).await?;
    state.store().set_totp(user.id, None, false, state.now()).await?;
    state.store().replace_recovery_codes(user.id, &[]).await?;
    for credential in state.store().list_webauthn_credentials(user.id).await? {
        state.store().delete_webauthn_credential(user.id, credential.id).await?;
    }
    state
        .audit(
            AuditEvent::new(principal.actor(), "mfa.reset", Outcome::Success)
                .user(principal.user_id())
                .target(format!("user:{}", user.username))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// An account's sessions.
#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = [SessionView]), (status = 404)))]
pub async fn list_user_sessions(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<SessionView>>> {
    let user = load(&state, id).await?;
    let sessions = state.store().list_sessions(user.id).await?;
    Ok(Json(sessions.iter().map(|s| SessionView::new(s, None)).collect()))
}

/// Ends every session of an account.
#[utoipa::path(delete, path = "/api/v1/users/{id}/sessions", tag = "users", params(("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
pub async fn revoke_user_sessions(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let user = load(&state, id).await?;
    let count = state.store().revoke_user_sessions(user.id, "revoked by an administrator", state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "session.revoke_all", Outcome::Success)
                .user(principal.user_id())
                .target(format!("user:{}", user.username))
                .source(principal.source_ip.clone())
                .details(json!({ "sessions": count })),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
