//! Passkeys (WebAuthn) as a second factor: enrollment on the caller's account, and the login
//! step that uses one. The ceremony state travels as a sealed ticket (see
//! [`crate::web::tickets`]) bound to the user and spent on use.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::SignedDuration;
use patchdeck_crypto::webauthn::{
    self, AuthenticationResponse, AuthenticationState, CredentialId, RegistrationResponse, RegistrationState,
    RelyingParty, StoredCredential,
};
use patchdeck_store::{NewWebauthnCredential, User, UserId, WebauthnCredential, WebauthnCredentialId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::{ClientAddr, Principal};
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::auth::{client_ip, finish_login, ticket_user, LoginResponse};
use crate::web::{tickets, Json, Path};

const REGISTER_TICKET: &str = "passkey-register";
const LOGIN_TICKET: &str = "passkey-login";
const CEREMONY_LIFETIME: SignedDuration = webauthn::DEFAULT_CEREMONY_LIFETIME;

/// The relying party: the host of `public_url`, with `public_url` as the only origin.
fn relying_party(state: &AppState) -> ApiResult<RelyingParty> {
    let public = &state.config().public_url;
    let host = url::Url::parse(public)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or_else(|| ApiError::internal("public_url has no host"))?;
    RelyingParty::new(host, "Patchdeck", vec![public.clone()]).map_err(ApiError::internal)
}

/// The WebAuthn user handle: the account id, 8 bytes (opaque, no personal data).
fn user_handle(user: UserId) -> [u8; 8] {
    user.0.to_be_bytes()
}

fn webauthn_error(e: webauthn::WebauthnError) -> ApiError {
    ApiError::validation("credential", e)
}

/// A registered passkey.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyView {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

impl From<&WebauthnCredential> for PasskeyView {
    fn from(c: &WebauthnCredential) -> Self {
        PasskeyView {
            id: c.id.0,
            name: c.name.clone(),
            created_at: c.created_at.to_string(),
            last_used_at: c.last_used_at.map(|t| t.to_string()),
        }
    }
}

/// The options for `navigator.credentials.create()` / `.get()` and the sealed ceremony to send
/// back with the browser's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyResponse {
    /// WebAuthn options JSON (binary fields base64url).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    pub ceremony: String,
}

#[derive(Serialize, Deserialize)]
struct RegisterTicket {
    user_id: i64,
    state: RegistrationState,
}

#[derive(Serialize, Deserialize)]
struct LoginTicket {
    user_id: i64,
    state: AuthenticationState,
}

/// The caller's passkeys.
#[utoipa::path(get, path = "/api/v1/auth/mfa/passkeys", tag = "mfa", responses((status = 200, body = [PasskeyView])))]
pub async fn list_passkeys(State(state): State<AppState>, principal: Principal) -> ApiResult<Json<Vec<PasskeyView>>> {
    let list = state.store().list_webauthn_credentials(principal.user_id()).await?;
    Ok(Json(list.iter().map(PasskeyView::from).collect()))
}

/// Starts adding a passkey to the caller's account.
#[utoipa::path(post, path = "/api/v1/auth/mfa/passkeys/options", tag = "mfa", responses((status = 200, body = CeremonyResponse)))]
pub async fn start_passkey_registration(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<CeremonyResponse>> {
    let user = &principal.user;
    let existing = state.store().list_webauthn_credentials(user.id).await?;
    if existing.len() >= 20 {
        return Err(ApiError::conflict("an account can have at most 20 passkeys; remove one first"));
    }
    let exclude =
        existing.iter().filter_map(|c| CredentialId::from_bytes(c.credential_id.clone()).ok()).collect::<Vec<_>>();
    let (options, ceremony_state) = webauthn::start_registration(
        &relying_party(&state)?,
        &user_handle(user.id),
        &user.username,
        &user.display_name,
        &exclude,
        state.now(),
        CEREMONY_LIFETIME,
    )
    .map_err(ApiError::internal)?;
    let ceremony = tickets::seal(
        &state,
        REGISTER_TICKET,
        &RegisterTicket { user_id: user.id.0, state: ceremony_state },
        CEREMONY_LIFETIME,
    )?;
    Ok(Json(CeremonyResponse { options: serde_json::to_value(options).map_err(ApiError::internal)?, ceremony }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterPasskeyRequest {
    /// A name to recognise it by, e.g. "YubiKey 5" (1–100 characters).
    pub name: String,
    pub ceremony: String,
    /// The browser's `PublicKeyCredential` as JSON (binary fields base64url).
    #[schema(value_type = Object)]
    pub credential: RegistrationResponse,
}

/// Finishes adding a passkey.
#[utoipa::path(post, path = "/api/v1/auth/mfa/passkeys", tag = "mfa", request_body = RegisterPasskeyRequest,
    responses((status = 201, body = PasskeyView), (status = 400), (status = 409)))]
pub async fn register_passkey(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<RegisterPasskeyRequest>,
) -> ApiResult<(StatusCode, Json<PasskeyView>)> {
    let name = crate::web::handlers::auth::check_label("name", &body.name)?;
    let ticket: RegisterTicket = tickets::open(&state, REGISTER_TICKET, "ceremony", &body.ceremony)?;
    if ticket.user_id != principal.user_id().0 {
        return Err(ApiError::validation("ceremony", "was started by another account"));
    }
    if !state.spend_ticket(&body.ceremony, ticket.state.expires_at()) {
        return Err(ApiError::validation("ceremony", "was already used; start again"));
    }
    let credential =
        webauthn::finish_registration(&relying_party(&state)?, &ticket.state, &body.credential, state.now());
    let credential = match credential {
        Ok(c) => c,
        Err(e) => {
            state
                .audit(
                    AuditEvent::new(principal.actor(), "mfa.passkey_added", Outcome::Failure)
                        .user(principal.user_id())
                        .source(principal.source_ip.clone())
                        .details(json!({ "reason": e.to_string() })),
                )
                .await;
            return Err(webauthn_error(e));
        }
    };
    let stored = state
        .store()
        .add_webauthn_credential(
            &NewWebauthnCredential {
                user_id: principal.user_id(),
                credential_id: credential.credential_id.as_bytes().to_vec(),
                public_key: credential.public_key_cose.clone(),
                sign_count: credential.sign_count,
                name,
            },
            state.now(),
        )
        .await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "mfa.passkey_added", Outcome::Success)
                .user(principal.user_id())
                .target(format!("passkey:{}", stored.id))
                .source(principal.source_ip.clone())
                .details(json!({ "name": stored.name, "algorithm": format!("{:?}", credential.algorithm) })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(PasskeyView::from(&stored))))
}

/// Removes one of the caller's passkeys.
#[utoipa::path(delete, path = "/api/v1/auth/mfa/passkeys/{id}", tag = "mfa", params(("id" = i64, Path)),
    responses((status = 204), (status = 404)))]
pub async fn delete_passkey(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.store().delete_webauthn_credential(principal.user_id(), WebauthnCredentialId(id)).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "mfa.passkey_removed", Outcome::Success)
                .user(principal.user_id())
                .target(format!("passkey:{id}"))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyOptionsRequest {
    pub mfa_token: String,
}

/// Second login step with a passkey: the options for `navigator.credentials.get()`.
#[utoipa::path(post, path = "/api/v1/auth/login/passkey/options", tag = "auth", request_body = PasskeyOptionsRequest,
    responses((status = 200, body = CeremonyResponse), (status = 401)))]
pub async fn start_passkey_login(
    State(state): State<AppState>,
    addr: Option<axum::Extension<ClientAddr>>,
    Json(body): Json<PasskeyOptionsRequest>,
) -> ApiResult<Json<CeremonyResponse>> {
    let user = ticket_user(&state, &body.mfa_token, client_ip(addr)).await?;
    let allow = state
        .store()
        .list_webauthn_credentials(user.id)
        .await?
        .into_iter()
        .filter_map(|c| CredentialId::from_bytes(c.credential_id).ok())
        .collect::<Vec<_>>();
    if allow.is_empty() {
        return Err(ApiError::conflict("this account has no passkey; use another second factor"));
    }
    let (options, ceremony_state) =
        webauthn::start_authentication(&relying_party(&state)?, &allow, state.now(), CEREMONY_LIFETIME)
            .map_err(ApiError::internal)?;
    let ceremony = tickets::seal(
        &state,
        LOGIN_TICKET,
        &LoginTicket { user_id: user.id.0, state: ceremony_state },
        CEREMONY_LIFETIME,
    )?;
    Ok(Json(CeremonyResponse { options: serde_json::to_value(options).map_err(ApiError::internal)?, ceremony }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginRequest {
    pub mfa_token: String,
    pub ceremony: String,
    /// The browser's `PublicKeyCredential` assertion as JSON (binary fields base64url).
    #[schema(value_type = Object)]
    pub credential: AuthenticationResponse,
}

async fn passkey_failure(state: &AppState, user: &User, ip: Option<IpAddr>, reason: String) -> ApiError {
    let auth = &state.config().auth;
    let lockout = SignedDuration::try_from(auth.lockout()).unwrap_or(SignedDuration::from_mins(15));
    if let Err(e) = state.store().record_login_failure(user.id, state.now(), auth.lockout_threshold, lockout).await {
        return e.into();
    }
    state
        .audit(
            AuditEvent::new(format!("user:{}", user.username), "auth.login", Outcome::Failure)
                .user(user.id)
                .source(ip.map(|i| i.to_string()))
                .details(json!({ "reason": format!("passkey: {reason}") })),
        )
        .await;
    ApiError::unauthorized("the passkey could not be verified")
}

/// Second login step with a passkey: checks the assertion and signs in.
#[utoipa::path(post, path = "/api/v1/auth/login/passkey", tag = "auth", request_body = PasskeyLoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401), (status = 429)))]
pub async fn finish_passkey_login(
    State(state): State<AppState>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    Json(body): Json<PasskeyLoginRequest>,
) -> ApiResult<Response> {
    let ip = client_ip(addr);
    if let Err(wait) = state.login_attempt(ip) {
        return Err(ApiError::too_many("too many login attempts from this address; wait a minute", wait));
    }
    let user = ticket_user(&state, &body.mfa_token, ip).await?;
    let ticket: LoginTicket = tickets::open(&state, LOGIN_TICKET, "ceremony", &body.ceremony)?;
    if ticket.user_id != user.id.0 {
        return Err(passkey_failure(&state, &user, ip, "ceremony of another account".into()).await);
    }
    if !state.spend_ticket(&body.ceremony, ticket.state.expires_at()) {
        return Err(passkey_failure(&state, &user, ip, "ceremony replayed".into()).await);
    }
    let credential_id = match body.credential.credential_id() {
        Ok(id) => id,
        Err(e) => return Err(passkey_failure(&state, &user, ip, e.to_string()).await),
    };
    let stored =
        state.store().get_webauthn_credential(credential_id.as_bytes()).await?.filter(|c| c.user_id == user.id);
    let Some(stored) = stored else {
        return Err(passkey_failure(&state, &user, ip, "unknown credential".into()).await);
    };
    let check = webauthn::finish_authentication(
        &relying_party(&state)?,
        &ticket.state,
        &body.credential,
        &StoredCredential {
            credential_id,
            user_handle: user_handle(user.id).to_vec(),
            public_key_cose: stored.public_key.clone(),
            sign_count: stored.sign_count,
        },
        state.now(),
    );
    let result = match check {
        Ok(result) => result,
        Err(e) => return Err(passkey_failure(&state, &user, ip, e.to_string()).await),
    };
    if !state.store().update_webauthn_sign_count(&stored.credential_id, result.new_sign_count, state.now()).await? {
        return Err(passkey_failure(&state, &user, ip, "signature counter went backwards".into()).await);
    }
    crate::web::handlers::auth::spend_mfa_token(&state, &body.mfa_token)?;
    finish_login(&state, &user, Some("passkey"), ip, &headers).await
}
