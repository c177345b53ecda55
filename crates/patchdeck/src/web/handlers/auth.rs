//! `/api/v1/auth/…`: login (password, then TOTP, a recovery code or a passkey), session refresh
//! and logout, the caller's own account, MFA enrollment, sessions and personal API tokens.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use patchdeck_crypto::token::OpaqueToken;
use patchdeck_crypto::{password, totp};
use patchdeck_store::{ApiTokenId, AuthSource, NewApiToken, RotateOutcome, SessionId, User, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::{restriction_of, ClientAddr, Principal, Restriction};
use crate::web::cookies::{self, CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE};
use crate::web::error::{ApiError, ApiResult};
use crate::web::{session, tickets, Json, Path};

/// Purpose of the ticket that carries a login between the password and the second factor.
pub(crate) const MFA_TICKET: &str = "login-mfa";
/// How long the second factor may take.
const MFA_TICKET_LIFETIME: SignedDuration = SignedDuration::from_mins(5);
/// Longest accepted username and password (longer input is refused before any hashing).
const MAX_USERNAME: usize = 64;
const MAX_PASSWORD: usize = 256;
/// Shortest password accepted when one is chosen.
pub const MIN_PASSWORD: usize = 12;

/// A user as the API shows it (never a hash or a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// `local` or `oidc`.
    pub auth_source: String,
    pub disabled: bool,
    pub must_change_password: bool,
    pub totp_enabled: bool,
    /// Set while the account is locked after failed logins.
    pub locked_until: Option<String>,
    pub last_login_at: Option<String>,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.0,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.as_str().to_owned(),
            auth_source: u.auth_source.as_str().to_owned(),
            disabled: u.disabled,
            must_change_password: u.must_change_password,
            totp_enabled: u.totp_enabled,
            locked_until: u.locked_until.map(|t| t.to_string()),
            last_login_at: u.last_login_at.map(|t| t.to_string()),
            created_at: u.created_at.to_string(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The answer to a login step.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// `ok` (signed in; the session cookies are set) or `mfa_required` (send `mfa_token` with a
    /// second factor to `/api/v1/auth/login/mfa` or `/api/v1/auth/login/passkey`).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    /// Set when the session may only be used to change the password or enroll MFA first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restriction: Option<Restriction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_token: Option<String>,
    /// Second factors the account has: `totp`, `recovery_code`, `passkey`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<&'static str>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct MfaTicket {
    pub(crate) user_id: i64,
}

pub(crate) fn client_ip(addr: Option<axum::Extension<ClientAddr>>) -> Option<IpAddr> {
    addr.map(|a| a.0 .0.ip())
}

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn wrong_credentials() -> ApiError {
    ApiError::unauthorized("wrong username or password")
}

/// Runs Argon2id off the async threads.
pub(crate) async fn verify_password(candidate: String, phc: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || match phc {
        Some(phc) => password::verify(&candidate, &phc).unwrap_or(false),
        None => {
            // Same work for an unknown user as for a known one: no timing oracle for usernames.
            let _ = password::hash(&candidate);
            false
        }
    })
    .await
    .map_err(ApiError::internal)
}

/// Hashes a new password off the async threads.
pub(crate) async fn hash_password(new: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || password::hash(&new))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

/// Checks a password someone chooses; `field` names it in the error.
pub fn check_new_password(field: &str, new: &str, username: &str) -> Result<(), ApiError> {
    let chars = new.chars().count();
    if chars < MIN_PASSWORD {
        return Err(ApiError::validation(field, format!("must be at least {MIN_PASSWORD} characters")));
    }
    if new.len() > MAX_PASSWORD {
        return Err(ApiError::validation(field, format!("must be at most {MAX_PASSWORD} bytes")));
    }
    if new.eq_ignore_ascii_case(username) {
        return Err(ApiError::validation(field, "must not be the username"));
    }
    Ok(())
}

fn login_failed(username: &str, user: Option<UserId>, ip: Option<IpAddr>, reason: &str) -> AuditEvent {
    let mut event = AuditEvent::new(format!("user:{username}"), "auth.login", Outcome::Failure)
        .source(ip.map(|i| i.to_string()))
        .details(json!({ "reason": reason }));
    if let Some(id) = user {
        event = event.user(id);
    }
    event
}

/// A failed factor: counts toward the lockout and is audited.
async fn count_failure(state: &AppState, user: &User, ip: Option<IpAddr>, reason: &str) -> Result<(), ApiError> {
    let auth = &state.config().auth;
    let lockout = SignedDuration::try_from(auth.lockout()).unwrap_or(SignedDuration::from_mins(15));
    let failure = state.store().record_login_failure(user.id, state.now(), auth.lockout_threshold, lockout).await?;
    let locked_until = failure.locked_until.filter(|until| *until > state.now());
    state.audit(login_failed(&user.username, Some(user.id), ip, reason)).await;
    if let Some(until) = locked_until {
        state
            .audit(
                AuditEvent::new(format!("user:{}", user.username), "auth.lockout", Outcome::Failure)
                    .user(user.id)
                    .source(ip.map(|i| i.to_string()))
                    .details(json!({ "locked_until": until.to_string() })),
            )
            .await;
    }
    Ok(())
}

fn locked(state: &AppState, user: &User) -> Option<ApiError> {
    let until = user.locked_until?;
    let now = state.now();
    (until > now).then(|| {
        let wait = u64::try_from(until.duration_since(now).as_secs()).unwrap_or(60);
        ApiError::too_many("too many failed logins; the account is locked for a while", wait)
    })
}

async fn methods_of(state: &AppState, user: &User) -> Result<Vec<&'static str>, ApiError> {
    let mut methods = Vec::new();
    if user.totp_enabled {
        methods.push("totp");
        methods.push("recovery_code");
    }
    if !state.store().list_webauthn_credentials(user.id).await?.is_empty() {
        methods.push("passkey");
    }
    Ok(methods)
}

/// Signs `user` in (every factor checked) and answers with the session cookies.
pub(crate) async fn finish_login(
    state: &AppState,
    user: &User,
    mfa_method: Option<&'static str>,
    ip: Option<IpAddr>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let issued = session::start(state, user, mfa_method, ip.map(|i| i.to_string()), user_agent(headers)).await?;
    state
        .audit(
            AuditEvent::new(format!("user:{}", user.username), "auth.login", Outcome::Success)
                .user(user.id)
                .target(format!("session:{}", issued.session_id))
                .source(ip.map(|i| i.to_string()))
                .details(json!({ "mfa": mfa_method })),
        )
        .await;
    let user = state.store().get_user(user.id).await?.ok_or_else(|| ApiError::not_found("user"))?;
    let restriction = restriction_of(state, &user).await?;
    let body = LoginResponse {
        status: "ok",
        user: Some(UserView::from(&user)),
        restriction,
        mfa_token: None,
        methods: Vec::new(),
    };
    Ok((issued.headers, axum::Json(body)).into_response())
}

/// Password step of a login.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401), (status = 429)))]
pub async fn login(
    State(state): State<AppState>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    Json(body): Json<LoginRequest>,
) -> ApiResult<Response> {
    let ip = client_ip(addr);
    if let Err(wait) = state.login_attempt(ip) {
        return Err(ApiError::too_many("too many login attempts from this address; wait a minute", wait));
    }
    let username = body.username.trim().to_lowercase();
    if username.is_empty() || username.len() > MAX_USERNAME || body.password.len() > MAX_PASSWORD {
        return Err(wrong_credentials());
    }
    let user = state.store().get_user_by_username(&username).await?;
    let Some(user) = user else {
        verify_password(body.password, None).await?;
        state.audit(login_failed(&username, None, ip, "unknown user")).await;
        return Err(wrong_credentials());
    };
    if let Some(e) = locked(&state, &user) {
        state.audit(login_failed(&username, Some(user.id), ip, "account locked")).await;
        return Err(e);
    }
    if !verify_password(body.password, user.password_hash.clone()).await? {
        count_failure(
            &state,
            &user,
            ip,
            if user.password_hash.is_none() { "no local password" } else { "wrong password" },
        )
        .await?;
        return Err(wrong_credentials());
    }
    if user.disabled {
        state.audit(login_failed(&username, Some(user.id), ip, "account disabled")).await;
        return Err(wrong_credentials());
    }
    let methods = methods_of(&state, &user).await?;
    if methods.is_empty() {
        return finish_login(&state, &user, None, ip, &headers).await;
    }
    let mfa_token = tickets::seal(&state, MFA_TICKET, &MfaTicket { user_id: user.id.0 }, MFA_TICKET_LIFETIME)?;
    Ok(axum::Json(LoginResponse {
        status: "mfa_required",
        user: None,
        restriction: None,
        mfa_token: Some(mfa_token),
        methods,
    })
    .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLoginRequest {
    pub mfa_token: String,
    /// `totp` or `recovery_code`.
    pub method: String,
    pub code: String,
}

/// Loads the user a login ticket is for, refusing locked and disabled accounts.
pub(crate) async fn ticket_user(state: &AppState, mfa_token: &str, ip: Option<IpAddr>) -> ApiResult<User> {
    let ticket: MfaTicket = tickets::open(state, MFA_TICKET, "mfa_token", mfa_token)?;
    let user = state.store().get_user(UserId(ticket.user_id)).await?.ok_or_else(wrong_credentials)?;
    if user.disabled {
        return Err(wrong_credentials());
    }
    if let Some(e) = locked(state, &user) {
        state.audit(login_failed(&user.username, Some(user.id), ip, "account locked")).await;
        return Err(e);
    }
    Ok(user)
}

/// Second step of a login: a TOTP code or a recovery code.
#[utoipa::path(post, path = "/api/v1/auth/login/mfa", tag = "auth", request_body = MfaLoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401), (status = 429)))]
pub async fn login_mfa(
    State(state): State<AppState>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    Json(body): Json<MfaLoginRequest>,
) -> ApiResult<Response> {
    let ip = client_ip(addr);
    if let Err(wait) = state.login_attempt(ip) {
        return Err(ApiError::too_many("too many login attempts from this address; wait a minute", wait));
    }
    let user = ticket_user(&state, &body.mfa_token, ip).await?;
    let wrong = || ApiError::unauthorized("wrong or already used code");
    match body.method.as_str() {
        "totp" => {
            if check_totp(&state, &user, &body.code).await?.is_none() {
                count_failure(&state, &user, ip, "wrong TOTP code").await?;
                return Err(wrong());
            }
            spend_mfa_token(&state, &body.mfa_token)?;
            finish_login(&state, &user, Some("totp"), ip, &headers).await
        }
        "recovery_code" => {
            let used = match totp::recovery_code_hash(&body.code) {
                Some(hash) => state.store().consume_recovery_code(user.id, &hash.0, state.now()).await?,
                None => false,
            };
            if !used {
                count_failure(&state, &user, ip, "wrong recovery code").await?;
                return Err(wrong());
            }
            state
                .audit(
                    AuditEvent::new(format!("user:{}", user.username), "mfa.recovery_code_used", Outcome::Success)
                        .user(user.id)
                        .source(ip.map(|i| i.to_string())),
                )
                .await;
            spend_mfa_token(&state, &body.mfa_token)?;
            finish_login(&state, &user, Some("recovery_code"), ip, &headers).await
        }
        _ => Err(ApiError::validation("method", "must be totp or recovery_code")),
    }
}

/// Marks a login's MFA ticket as used: one ticket, one session.
pub(crate) fn spend_mfa_token(state: &AppState, mfa_token: &str) -> ApiResult<()> {
    if state.spend_ticket(mfa_token, state.now() + MFA_TICKET_LIFETIME) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("this login step was already completed; sign in again"))
    }
}

/// The time step of `code` if it is the user's current TOTP code, used at most once (replays
/// are refused).
pub(crate) async fn check_totp(state: &AppState, user: &User, code: &str) -> ApiResult<Option<u64>> {
    let Some(secret) = totp_secret(state, user)? else { return Ok(None) };
    let Some(step) = totp::verify(&secret, code.trim(), state.now(), user.totp_last_step) else {
        return Ok(None);
    };
    Ok(state.store().claim_totp_step(user.id, step).await?.then_some(step))
}

fn totp_aad(user: UserId) -> Vec<u8> {
    format!("totp:{}", user.0).into_bytes()
}

fn totp_secret(state: &AppState, user: &User) -> ApiResult<Option<totp::TotpSecret>> {
    let Some(sealed) = &user.totp_secret else { return Ok(None) };
    let plain = patchdeck_crypto::secretbox::open(&state.keys().secret_key, sealed, &totp_aad(user.id))
        .map_err(ApiError::internal)?;
    Ok(Some(totp::TotpSecret::from_bytes(plain.to_vec()).map_err(ApiError::internal)?))
}

/// Rotates the refresh token (cookie) and issues a new access token.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    responses((status = 200, body = LoginResponse), (status = 401)))]
pub async fn refresh(
    State(state): State<AppState>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let ip = client_ip(addr).map(|i| i.to_string());
    let jar = cookies::jar(&headers);
    let csrf_ok = match (jar.get(CSRF_COOKIE), headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())) {
        (Some(cookie), Some(header)) => {
            !cookie.value().is_empty()
                && bool::from(subtle::ConstantTimeEq::ct_eq(cookie.value().as_bytes(), header.as_bytes()))
        }
        _ => false,
    };
    if !csrf_ok {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", "missing or wrong X-CSRF-Token header"));
    }
    let presented = jar
        .get(REFRESH_COOKIE)
        .and_then(|c| OpaqueToken::parse(c.value()).ok())
        .ok_or_else(|| ApiError::unauthorized("no session; sign in"))?;
    let next = OpaqueToken::generate(session::REFRESH_PREFIX).map_err(ApiError::internal)?;
    let idle = SignedDuration::try_from(state.config().auth.refresh_idle()).unwrap_or(SignedDuration::from_hours(1));
    let outcome = state.store().rotate_refresh(&presented.hash().0, &next.hash().0, state.now(), idle).await?;
    let signed_out = |message: &str| {
        let mut headers = HeaderMap::new();
        cookies::clear_session(&mut headers);
        (headers, ApiError::unauthorized(message)).into_response()
    };
    match outcome {
        RotateOutcome::Rotated { session, user_id } => {
            let user =
                state.store().get_user(user_id).await?.ok_or_else(|| ApiError::unauthorized("the account is gone"))?;
            if user.disabled {
                state.store().revoke_session(session.id, "account disabled", state.now()).await?;
                return Ok(signed_out("the account is disabled"));
            }
            let headers = session::cookies_for(&state, &user, session.id, &next)?;
            let restriction = restriction_of(&state, &user).await?;
            let body = LoginResponse {
                status: "ok",
                user: Some(UserView::from(&user)),
                restriction,
                mfa_token: None,
                methods: vec![],
            };
            Ok((headers, axum::Json(body)).into_response())
        }
        RotateOutcome::Reused { session_id } => {
            state
                .audit(
                    AuditEvent::new("system", "auth.refresh_reuse", Outcome::Denied)
                        .target(format!("session:{session_id}"))
                        .source(ip)
                        .details(json!({ "action_taken": "session revoked" })),
                )
                .await;
            Ok(signed_out("this refresh token was already used; the session has been ended for safety"))
        }
        RotateOutcome::Invalid => Ok(signed_out("the session has ended; sign in again")),
    }
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    if let Some(session) = principal.session() {
        state.store().revoke_session(session, "logout", state.now()).await?;
    }
    state
        .audit(
            AuditEvent::new(principal.actor(), "auth.logout", Outcome::Success)
                .user(principal.user_id())
                .source(principal.source_ip.clone()),
        )
        .await;
    let mut headers = HeaderMap::new();
    cookies::clear_session(&mut headers);
    Ok((StatusCode::NO_CONTENT, headers).into_response())
}

/// The caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub user: UserView,
    pub restriction: Option<Restriction>,
    /// Second factors set up: `totp`, `passkey`.
    pub mfa: Vec<&'static str>,
    pub session_id: Option<i64>,
}

/// Who the caller is, and what they must do first, if anything.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = MeResponse)))]
pub async fn get_me(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<MeResponse>> {
    let mut mfa = Vec::new();
    if principal.user.totp_enabled {
        mfa.push("totp");
    }
    if !state.store().list_webauthn_credentials(principal.user_id()).await?.is_empty() {
        mfa.push("passkey");
    }
    Ok(Json(MeResponse {
        user: UserView::from(&principal.user),
        restriction: principal.restriction,
        mfa,
        session_id: principal.session().map(|s| s.0),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes the caller's own password (also the forced change after an admin set it). Other
/// sessions of the user end.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses((status = 204), (status = 400), (status = 401)))]
pub async fn change_password(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let user = &principal.user;
    if user.auth_source != AuthSource::Local {
        return Err(ApiError::conflict("this account signs in with SSO; its password is managed there"));
    }
    check_new_password("new_password", &body.new_password, &user.username)?;
    if body.current_password.len() > MAX_PASSWORD
        || !verify_password(body.current_password.clone(), user.password_hash.clone()).await?
    {
        state
            .audit(
                AuditEvent::new(principal.actor(), "user.password_change", Outcome::Failure)
                    .user(user.id)
                    .source(principal.source_ip.clone())
                    .details(json!({ "reason": "wrong current password" })),
            )
            .await;
        return Err(ApiError::validation("current_password", "is wrong"));
    }
    if body.new_password == body.current_password {
        return Err(ApiError::validation("new_password", "must differ from the current password"));
    }
    let hash = hash_password(body.new_password).await?;
    state.store().set_password(user.id, &hash, false, state.now()).await?;
    for other in state.store().list_sessions(user.id).await? {
        if Some(other.id) != principal.session() && other.revoked_at.is_none() {
            state.store().revoke_session(other.id, "password changed", state.now()).await?;
        }
    }
    state
        .audit(
            AuditEvent::new(principal.actor(), "user.password_change", Outcome::Success)
                .user(user.id)
                .target(format!("user:{}", user.username))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A new TOTP secret, shown once for the authenticator app.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32, for typing in by hand.
    pub secret: String,
    /// `otpauth://totp/…` for a QR code.
    pub otpauth_uri: String,
}

/// Starts TOTP enrollment: a new secret, not active until confirmed with a code.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp", tag = "mfa", responses((status = 200, body = TotpSetupResponse)))]
pub async fn start_totp(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<TotpSetupResponse>> {
    let user = &principal.user;
    if user.totp_enabled {
        return Err(ApiError::conflict("TOTP is already set up; remove it first to replace it"));
    }
    let secret = totp::TotpSecret::generate().map_err(ApiError::internal)?;
    let sealed = patchdeck_crypto::secretbox::seal(&state.keys().secret_key, secret.as_bytes(), &totp_aad(user.id))
        .map_err(ApiError::internal)?;
    state.store().set_totp(user.id, Some(&sealed), false, state.now()).await?;
    Ok(Json(TotpSetupResponse {
        secret: secret.to_base32().to_string(),
        otpauth_uri: secret.provisioning_uri(&user.username).to_string(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    pub code: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodesResponse {
    pub recovery_codes: Vec<String>,
}

/// Confirms TOTP enrollment with a current code; answers with one-time recovery codes.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/confirm", tag = "mfa", request_body = TotpConfirmRequest,
    responses((status = 200, body = RecoveryCodesResponse), (status = 400)))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<TotpConfirmRequest>,
) -> ApiResult<Json<RecoveryCodesResponse>> {
    let user = state.store().get_user(principal.user_id()).await?.ok_or_else(|| ApiError::not_found("user"))?;
    if user.totp_enabled {
        return Err(ApiError::conflict("TOTP is already set up"));
    }
    let Some(sealed) = user.totp_secret.clone() else {
        return Err(ApiError::conflict("start TOTP setup first (POST /api/v1/auth/mfa/totp)"));
    };
    let Some(step) = check_totp(&state, &user, &body.code).await? else {
        return Err(ApiError::validation("code", "is not the current code of the new secret"));
    };
    state.store().set_totp(user.id, Some(&sealed), true, state.now()).await?;
    // Enabling forgets the last step; the enrollment code must still not work for a login.
    state.store().claim_totp_step(user.id, step).await?;
    let codes = new_recovery_codes(&state, user.id).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "mfa.totp_enabled", Outcome::Success)
                .user(user.id)
                .target(format!("user:{}", user.username))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(Json(RecoveryCodesResponse { recovery_codes: codes }))
}

async fn new_recovery_codes(state: &AppState, user: UserId) -> ApiResult<Vec<String>> {
    let codes = totp::generate_recovery_codes().map_err(ApiError::internal)?;
    let hashes: Vec<[u8; 32]> = codes.iter().map(|c| c.hash().0).collect();
    state.store().replace_recovery_codes(user, &hashes).await?;
    Ok(codes.iter().map(|c| c.expose().to_owned()).collect())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    /// The caller's password, to confirm a sensitive change.
    pub password: String,
}

async fn confirm_password(principal: &Principal, password: String) -> ApiResult<()> {
    if password.len() > MAX_PASSWORD || !verify_password(password, principal.user.password_hash.clone()).await? {
        return Err(ApiError::validation("password", "is wrong"));
    }
    Ok(())
}

/// Removes TOTP (and the recovery codes). Needs the password.
#[utoipa::path(delete, path = "/api/v1/auth/mfa/totp", tag = "mfa", request_body = PasswordConfirmation,
    responses((status = 204), (status = 400)))]
pub async fn delete_totp(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<PasswordConfirmation>,
) -> ApiResult<StatusCode> {
    confirm_password(&principal, body.password).await?;
    state.store().set_totp(principal.user_id(), None, false, state.now()).await?;
    state.store().replace_recovery_codes(principal.user_id(), &[]).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "mfa.totp_removed", Outcome::Success)
                .user(principal.user_id())
                .target(format!("user:{}", principal.user.username))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the recovery codes with new ones. Needs the password.
#[utoipa::path(post, path = "/api/v1/auth/mfa/recovery-codes", tag = "mfa", request_body = PasswordConfirmation,
    responses((status = 200, body = RecoveryCodesResponse), (status = 400)))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<PasswordConfirmation>,
) -> ApiResult<Json<RecoveryCodesResponse>> {
    if !principal.user.totp_enabled {
        return Err(ApiError::conflict("recovery codes come with TOTP; set up TOTP first"));
    }
    confirm_password(&principal, body.password).await?;
    let codes = new_recovery_codes(&state, principal.user_id()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "mfa.recovery_codes_regenerated", Outcome::Success)
                .user(principal.user_id())
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(Json(RecoveryCodesResponse { recovery_codes: codes }))
}

/// A session as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: i64,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub mfa_method: Option<String>,
    pub current: bool,
    pub revoked: bool,
}

impl SessionView {
    pub fn new(s: &patchdeck_store::Session, current: Option<SessionId>) -> Self {
        SessionView {
            id: s.id.0,
            created_at: s.created_at.to_string(),
            last_used_at: s.last_used_at.to_string(),
            expires_at: s.idle_expires_at.min(s.absolute_expires_at).to_string(),
            source_ip: s.source_ip.clone(),
            user_agent: s.user_agent.clone(),
            mfa_method: s.mfa_method.clone(),
            current: Some(s.id) == current,
            revoked: s.revoked_at.is_some(),
        }
    }
}

/// The caller's active sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", responses((status = 200, body = [SessionView])))]
pub async fn list_sessions(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<SessionView>>> {
    let now = state.now();
    let sessions = state.store().list_sessions(principal.user_id()).await?;
    Ok(Json(
        sessions
            .iter()
            .filter(|s| s.revoked_at.is_none() && s.idle_expires_at > now && s.absolute_expires_at > now)
            .map(|s| SessionView::new(s, principal.session()))
            .collect(),
    ))
}

/// Ends one of the caller's sessions (another browser, a lost laptop).
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", params(("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete_session(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let session = state
        .store()
        .get_session(SessionId(id))
        .await?
        .filter(|s| s.user_id == principal.user_id())
        .ok_or_else(|| ApiError::not_found("session"))?;
    state.store().revoke_session(session.id, "revoked by its user", state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "session.revoke", Outcome::Success)
                .user(principal.user_id())
                .target(format!("session:{id}"))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// A personal API token as listed (the secret is shown only once, at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenView {
    pub id: i64,
    pub label: String,
    pub created_at: String,
    pub expires_at: String,
    pub last_used_at: Option<String>,
    pub revoked: bool,
}

impl From<&patchdeck_store::ApiToken> for ApiTokenView {
    fn from(t: &patchdeck_store::ApiToken) -> Self {
        ApiTokenView {
            id: t.id.0,
            label: t.label.clone(),
            created_at: t.created_at.to_string(),
            expires_at: t.expires_at.to_string(),
            last_used_at: t.last_used_at.map(|v| v.to_string()),
            revoked: t.revoked_at.is_some(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiTokenRequest {
    /// What the token is for, e.g. "prometheus".
    pub label: String,
    /// Lifetime in days (at most `auth.api_token_max_days`, 365 by default).
    pub expires_in_days: u32,
}

/// A new API token; `token` is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiToken {
    pub token: String,
    #[serde(flatten)]
    pub info: ApiTokenView,
}

/// Checks a label (1–100 printable characters).
pub fn check_label(field: &str, label: &str) -> ApiResult<String> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 || label.chars().any(char::is_control) {
        return Err(ApiError::validation(field, "must be 1 to 100 printable characters"));
    }
    Ok(label.to_owned())
}

/// Creates a personal API token, limited to the caller's own rights.
#[utoipa::path(post, path = "/api/v1/auth/tokens", tag = "auth", request_body = CreateApiTokenRequest,
    responses((status = 201, body = CreatedApiToken), (status = 400)))]
pub async fn create_api_token(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<CreateApiTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiToken>)> {
    let label = check_label("label", &body.label)?;
    let max = state.config().auth.api_token_max_days;
    if body.expires_in_days == 0 || u64::from(body.expires_in_days) > max {
        return Err(ApiError::validation("expires_in_days", format!("must be between 1 and {max}")));
    }
    let token = OpaqueToken::generate("api").map_err(ApiError::internal)?;
    let now = state.now();
    let created = state
        .store()
        .create_api_token(
            &NewApiToken {
                user_id: principal.user_id(),
                token_hash: token.hash().0,
                label,
                expires_at: now + SignedDuration::from_hours(24 * i64::from(body.expires_in_days)),
            },
            now,
        )
        .await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "api_token.create", Outcome::Success)
                .user(principal.user_id())
                .target(format!("api_token:{}", created.id))
                .source(principal.source_ip.clone())
                .details(json!({ "label": created.label, "expires_at": created.expires_at.to_string() })),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken { token: token.expose().to_owned(), info: ApiTokenView::from(&created) }),
    ))
}

/// The caller's API tokens.
#[utoipa::path(get, path = "/api/v1/auth/tokens", tag = "auth", responses((status = 200, body = [ApiTokenView])))]
pub async fn list_api_tokens(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<ApiTokenView>>> {
    let tokens = state.store().list_api_tokens(principal.user_id()).await?;
    Ok(Json(tokens.iter().map(ApiTokenView::from).collect()))
}

/// Revokes one of the caller's API tokens.
#[utoipa::path(delete, path = "/api/v1/auth/tokens/{id}", tag = "auth", params(("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete_api_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let token = state
        .store()
        .get_api_token(ApiTokenId(id))
        .await?
        .filter(|t| t.user_id == principal.user_id())
        .ok_or_else(|| ApiError::not_found("API token"))?;
    state.store().revoke_api_token(token.id, state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "api_token.revoke", Outcome::Success)
                .user(principal.user_id())
                .target(format!("api_token:{id}"))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
