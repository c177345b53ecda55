//! Authentication and authorization of API requests.
//!
//! Every route declares a [`Permission`] where it is registered (in [`super::router`]); the
//! [`authorize`] middleware attached there authenticates the caller, checks the permission and
//! the CSRF token, and hands the handler a [`Principal`]. A handler cannot forget the check.
//!
//! Credentials, in order:
//! 1. `Authorization: Bearer pdk_…` — a personal API token (scripts, the CLI, Prometheus). No
//!    cookies, so no CSRF check.
//! 2. The `pd_access` cookie — a 15-minute JWT naming a session; the session must still be
//!    active (so revocation takes effect at once) and the user enabled. Unsafe methods must echo
//!    the `pd_csrf` cookie in an `X-CSRF-Token` header (double submit; the cookies are also
//!    `SameSite=Strict`).
//!
//! The user row is read on every request, so a role change or a disabled account applies to the
//! next request, not the next login.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use patchdeck_crypto::token::{self as jwt, OpaqueToken};
use patchdeck_store::{ApiTokenId, GroupId, Role, Scope, SessionId, User, UserId};
use serde_json::json;

use super::cookies::{self, ACCESS_COOKIE, CSRF_COOKIE, CSRF_HEADER};
use super::error::ApiError;
use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// No authentication (health, login, the CA certificate and CRL, the OpenAPI document).
    Public,
    /// Any signed-in user, even one who must first change the password or enroll MFA: the
    /// endpoints that let them do that (and log out).
    Session,
    /// Any signed-in user with no pending restriction: their own account, tokens and sessions.
    Authenticated,
    /// See hosts: viewers and operators within their groups (plus ungrouped hosts), admins all.
    HostsRead,
    /// Change hosts: operators within their groups (plus ungrouped hosts), admins all.
    HostsWrite,
    /// See groups: non-admins see only the groups they belong to.
    GroupsRead,
    /// Admins only: users, groups, registration tokens, settings, certificates, audit, metrics.
    Admin,
    /// An enrolled agent: mutual TLS with the client certificate issued at enrollment (see
    /// [`super::handlers::agent::authorize_agent`]). No user credential is accepted.
    Agent,
}

impl Permission {
    /// Whether `role` may use a route with this permission (group scope is checked by handlers).
    pub fn allows(self, role: Role) -> bool {
        match self {
            Permission::Public | Permission::Session | Permission::Authenticated => true,
            Permission::HostsRead | Permission::GroupsRead => true,
            Permission::HostsWrite => matches!(role, Role::Admin | Role::Operator),
            Permission::Admin => role == Role::Admin,
            Permission::Agent => false,
        }
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVia {
    Session(SessionId),
    ApiToken(ApiTokenId),
}

/// Something the user must do before using anything but [`Permission::Session`] routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Restriction {
    /// An admin set the password (or it is the first-start password): choose a new one.
    PasswordChange,
    /// MFA is required for local accounts and this one has none yet.
    MfaEnrollment,
}

impl Restriction {
    fn error(self) -> ApiError {
        match self {
            Restriction::PasswordChange => ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "change your password first (POST /api/v1/auth/password)",
            ),
            Restriction::MfaEnrollment => ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa_enrollment_required",
                "set up multi-factor authentication first (TOTP or a passkey)",
            ),
        }
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub via: AuthVia,
    pub restriction: Option<Restriction>,
    /// The groups the user belongs to (empty for admins: they see everything).
    pub groups: Vec<GroupId>,
    /// The client's address.
    pub source_ip: Option<String>,
}

impl Principal {
    pub fn user_id(&self) -> UserId {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// Which hosts the caller may see.
    pub fn scope(&self) -> Scope {
        if self.is_admin() {
            Scope::All
        } else {
            Scope::Groups(self.groups.clone())
        }
    }

    /// `user:<name>` for the audit log.
    pub fn actor(&self) -> String {
        format!("user:{}", self.user.username)
    }

    /// The session, when the caller signed in with one.
    pub fn session(&self) -> Option<SessionId> {
        match self.via {
            AuthVia::Session(id) => Some(id),
            AuthVia::ApiToken(_) => None,
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a handler asked for a Principal on a public route"))
    }
}

/// The client address as the connection saw it (set by the server on every request).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The client's IP address, if known.
pub fn source_ip(extensions: &axum::http::Extensions) -> Option<String> {
    extensions.get::<ClientAddr>().map(|a| a.0.ip().to_string())
}

/// The middleware every non-public route is wrapped in (see [`super::router`]).
pub async fn authorize(
    State((state, permission)): State<(AppState, Permission)>,
    mut request: Request,
    next: Next,
) -> Response {
    let source_ip = source_ip(request.extensions());
    let principal = match authenticate(&state, request.method(), request.headers(), source_ip.clone()).await {
        Ok(principal) => principal,
        Err(e) => return e.into_response(),
    };
    if let Some(restriction) = principal.restriction {
        if permission != Permission::Session {
            return restriction.error().into_response();
        }
    }
    if !permission.allows(principal.role()) {
        let path = request.uri().path().to_owned();
        state
            .audit(
                AuditEvent::new(principal.actor(), "authz.denied", Outcome::Denied)
                    .user(principal.user_id())
                    .target(format!("{} {path}", request.method()))
                    .source(source_ip)
                    .details(json!({ "role": principal.role(), "required": permission })),
            )
            .await;
        return ApiError::forbidden(format!("your role ({}) may not do this", principal.role().as_str()))
            .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// Finds and checks the caller's credentials.
pub async fn authenticate(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    source_ip: Option<String>,
) -> Result<Principal, ApiError> {
    let now = state.now();
    if let Some(bearer) = bearer_token(headers) {
        let token = OpaqueToken::parse(bearer)
            .map_err(|_| ApiError::unauthorized("the bearer token is not a Patchdeck API token"))?;
        let (api_token, user) = state
            .store()
            .find_active_api_token(&token.hash().0, now)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the API token is unknown, expired or revoked"))?;
        state.store().touch_api_token(api_token.id, now).await?;
        let groups = groups_of(state, &user).await?;
        let restriction = if user.must_change_password { Some(Restriction::PasswordChange) } else { None };
        return Ok(Principal { user, via: AuthVia::ApiToken(api_token.id), restriction, groups, source_ip });
    }
    let jar = cookies::jar(headers);
    let access = jar.get(ACCESS_COOKIE).ok_or_else(|| ApiError::unauthorized("sign in first"))?;
    let claims = jwt::verify(&state.keys().session_key.verifying_key(), access.value(), now)
        .map_err(|_| ApiError::unauthorized("the session token is invalid or expired; refresh or sign in again"))?;
    let session_id =
        claims.sid.parse::<i64>().map(SessionId).map_err(|_| ApiError::unauthorized("the session token is invalid"))?;
    let user_id =
        claims.sub.parse::<i64>().map(UserId).map_err(|_| ApiError::unauthorized("the session token is invalid"))?;
    if !state.store().session_active(session_id, now).await? {
        return Err(ApiError::unauthorized("the session has ended; sign in again"));
    }
    let user = state.store().get_user(user_id).await?.ok_or_else(|| ApiError::unauthorized("the account is gone"))?;
    if user.disabled {
        return Err(ApiError::unauthorized("the account is disabled"));
    }
    if is_unsafe(method) {
        let expected = jar.get(CSRF_COOKIE).map(|c| c.value().to_owned());
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        let ok = match (expected.as_deref(), sent) {
            (Some(expected), Some(sent)) => {
                subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sent.as_bytes()).into() && !expected.is_empty()
            }
            _ => false,
        };
        if !ok {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_failed",
                "missing or wrong X-CSRF-Token header (it must repeat the pd_csrf cookie)",
            ));
        }
    }
    let restriction = restriction_of(state, &user).await?;
    let groups = groups_of(state, &user).await?;
    Ok(Principal { user, via: AuthVia::Session(session_id), restriction, groups, source_ip })
}

/// The restriction a session of `user` carries now, if any.
pub async fn restriction_of(state: &AppState, user: &User) -> Result<Option<Restriction>, ApiError> {
    if user.must_change_password {
        return Ok(Some(Restriction::PasswordChange));
    }
    if user.auth_source == patchdeck_store::AuthSource::Local
        && state.settings().await?.mfa_required
        && !state.has_mfa(user).await?
    {
        return Ok(Some(Restriction::MfaEnrollment));
    }
    Ok(None)
}

async fn groups_of(state: &AppState, user: &User) -> Result<Vec<GroupId>, ApiError> {
    if user.role == Role::Admin {
        return Ok(Vec::new());
    }
    Ok(state.store().user_group_ids(user.id).await?)
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}
