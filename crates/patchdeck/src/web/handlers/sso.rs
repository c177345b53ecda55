//! Single sign-on with OpenID Connect (Azure AD / Entra ID, Keycloak, Authentik, any standard
//! provider): its settings, the login redirect and the callback.
//!
//! The browser only ever carries the authorization `code` and `state` in a URL (the protocol's
//! redirect); tokens go from the provider to the manager over a back channel and never reach
//! the browser. The pending login (state, nonce, PKCE verifier) waits in a sealed, HttpOnly,
//! path-limited cookie. Accounts are keyed by (issuer, subject); the role comes from the mapped
//! claim at every login, and group memberships follow the group claim (matched to Patchdeck
//! groups by name). A local account with the same username is never taken over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use data_encoding::BASE64;
use jiff::SignedDuration;
use patchdeck_oidc::{
    CallbackParams, ClientSecret, Identity, MappedRole, OidcClient, OidcSettings, PendingLogin, RoleMap,
};
use patchdeck_store::{AuthSource, NewUser, OidcIdentity, Role, UserUpdate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::audit::{AuditEvent, Outcome};
use crate::settings::keys;
use crate::state::AppState;
use crate::web::authz::{ClientAddr, Principal};
use crate::web::cookies::{self, OIDC_COOKIE};
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::auth::client_ip;
use crate::web::{session, tickets, Json};

/// The callback path registered at the provider (appended to `public_url`).
pub const CALLBACK_PATH: &str = "/api/v1/auth/oidc/callback";
const PENDING_TICKET: &str = "oidc-pending";
const SECRET_AAD: &[u8] = b"sso.oidc.client_secret";
/// A discovered client is reused this long before the provider's metadata is fetched again.
const CLIENT_TTL: Duration = Duration::from_secs(300);

/// The SSO settings as stored (the client secret is stored separately, sealed).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSso {
    enabled: bool,
    /// The login button's label, e.g. "Contoso Entra ID".
    name: String,
    oidc: OidcSettings,
    /// Extra CA certificates (PEM) to trust for the provider, e.g. an internal CA.
    ca_pem: Option<String>,
}

/// A discovered client and what it was built from.
pub struct CachedClient {
    key: String,
    at: Instant,
    client: Arc<OidcClient>,
}

impl std::fmt::Debug for CachedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedClient").field("at", &self.at).finish_non_exhaustive()
    }
}

async fn load(state: &AppState) -> ApiResult<Option<StoredSso>> {
    match state.store().get_setting(keys::OIDC).await? {
        None => Ok(None),
        Some(value) => serde_json::from_value(value).map(Some).map_err(ApiError::internal),
    }
}

async fn load_secret(state: &AppState) -> ApiResult<Option<ClientSecret>> {
    let Some(value) = state.store().get_setting(keys::OIDC_SECRET).await? else { return Ok(None) };
    let sealed = value
        .as_str()
        .and_then(|s| BASE64.decode(s.as_bytes()).ok())
        .ok_or_else(|| ApiError::internal("bad sealed secret"))?;
    let plain =
        patchdeck_crypto::secretbox::open(&state.keys().secret_key, &sealed, SECRET_AAD).map_err(ApiError::internal)?;
    let text = String::from_utf8(plain.to_vec()).map_err(ApiError::internal)?;
    Ok(Some(ClientSecret::new(text)))
}

fn http_client(ca_pem: Option<&str>) -> Result<reqwest::Client, String> {
    let mut builder = patchdeck_oidc::http_client_builder();
    if let Some(pem) = ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| format!("ca_pem: {e}"))? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

async fn discover(state: &AppState, sso: &StoredSso, secret: ClientSecret) -> Result<OidcClient, String> {
    let http = http_client(sso.ca_pem.as_deref())?;
    let clock = state.clock();
    OidcClient::discover(&sso.oidc, secret, http)
        .await
        .map(|c| c.with_clock(move || clock.now()))
        .map_err(|e| e.to_string())
}

/// The client for the current settings (discovered again after [`CLIENT_TTL`] or a change).
async fn client(state: &AppState) -> ApiResult<Option<(StoredSso, Arc<OidcClient>)>> {
    let Some(sso) = load(state).await?.filter(|s| s.enabled) else { return Ok(None) };
    let secret = load_secret(state).await?.ok_or_else(|| ApiError::conflict("SSO has no client secret configured"))?;
    let key = format!("{}|{:x}", serde_json::to_string(&sso).map_err(ApiError::internal)?, {
        use sha2::Digest;
        sha2::Sha256::digest(secret.expose().as_bytes())
    });
    let mut cache = state.sso_cache().lock().await;
    if let Some(cached) = cache.as_ref() {
        if cached.key == key && cached.at.elapsed() < CLIENT_TTL {
            return Ok(Some((sso, cached.client.clone())));
        }
    }
    let client = Arc::new(discover(state, &sso, secret).await.map_err(|e| {
        ApiError::new(StatusCode::BAD_GATEWAY, "sso_unavailable", format!("the identity provider is not usable: {e}"))
    })?);
    *cache = Some(CachedClient { key, at: Instant::now(), client: client.clone() });
    Ok(Some((sso, client)))
}

/// How users can sign in (for the login page).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthMethods {
    pub password: bool,
    pub sso: SsoMethod,
}

/// Whether the SSO button is shown, and its label.
#[derive(Debug, Serialize, ToSchema)]
pub struct SsoMethod {
    pub enabled: bool,
    pub name: Option<String>,
}

/// Sign-in methods on offer.
#[utoipa::path(get, path = "/api/v1/auth/methods", tag = "auth", responses((status = 200, body = AuthMethods)))]
pub async fn get_auth_methods(State(state): State<AppState>) -> ApiResult<Json<AuthMethods>> {
    let sso = load(&state).await?.filter(|s| s.enabled);
    Ok(Json(AuthMethods { password: true, sso: SsoMethod { enabled: sso.is_some(), name: sso.map(|s| s.name) } }))
}

fn redirect(to: &str, headers: HeaderMap) -> Response {
    let mut response = (StatusCode::FOUND, headers).into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Starts an SSO login: redirects the browser to the identity provider.
#[utoipa::path(get, path = "/api/v1/auth/oidc/login", tag = "auth", responses((status = 302), (status = 404)))]
pub async fn start_sso_login(State(state): State<AppState>) -> ApiResult<Response> {
    let (sso, client) = client(&state).await?.ok_or_else(|| ApiError::not_found("single sign-on"))?;
    let (url, pending) = client.begin();
    let lifetime = SignedDuration::from_secs(i64::try_from(sso.oidc.login_timeout_secs).unwrap_or(600));
    let sealed = tickets::seal(&state, PENDING_TICKET, &pending, lifetime)?;
    let mut headers = HeaderMap::new();
    cookies::set_oidc(&mut headers, &sealed);
    Ok(redirect(url.as_str(), headers))
}

/// The identity provider's redirect back: finishes the login and sends the browser to the app
/// (or to the login page with `?sso_error=<code>`).
#[utoipa::path(get, path = "/api/v1/auth/oidc/callback", tag = "auth", responses((status = 302)))]
pub async fn finish_sso_login(
    State(state): State<AppState>,
    addr: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let ip = client_ip(addr);
    let mut out = HeaderMap::new();
    cookies::clear_oidc(&mut out);
    match callback(&state, ip, &headers, query.as_deref().unwrap_or("")).await {
        Ok(session_headers) => {
            out.extend(session_headers);
            redirect("/", out)
        }
        Err((code, reason, username)) => {
            state
                .audit(
                    AuditEvent::new(
                        format!("sso:{}", username.as_deref().unwrap_or("unknown")),
                        "auth.login",
                        Outcome::Failure,
                    )
                    .source(ip.map(|i| i.to_string()))
                    .details(json!({ "method": "sso", "reason": reason })),
                )
                .await;
            redirect(&format!("/login?sso_error={code}"), out)
        }
    }
}

type CallbackError = (&'static str, String, Option<String>);

async fn callback(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    query: &str,
) -> Result<HeaderMap, CallbackError> {
    let failed = |code: &'static str, reason: String| (code, reason, None);
    let jar = cookies::jar(headers);
    let sealed = jar.get(OIDC_COOKIE).ok_or_else(|| failed("expired", "no pending login cookie".into()))?;
    let pending: PendingLogin = tickets::open(state, PENDING_TICKET, "login", sealed.value())
        .map_err(|_| failed("expired", "pending login invalid or expired".into()))?;
    if !state.spend_ticket(sealed.value(), state.now() + SignedDuration::from_mins(15)) {
        return Err(failed("expired", "pending login already used".into()));
    }
    let params = CallbackParams::from_query(query).map_err(|e| failed("failed", e.to_string()))?;
    let (_, client) = client(state)
        .await
        .map_err(|e| failed("unavailable", e.message))?
        .ok_or_else(|| failed("disabled", "SSO is not enabled".into()))?;
    let identity = client.complete_callback(&pending, &params).await.map_err(|e| {
        let code = if matches!(e, patchdeck_oidc::OidcError::AuthorizationDenied { .. }) { "denied" } else { "failed" };
        failed(code, e.to_string())
    })?;
    let username = identity.username.clone();
    let user = account_for(state, &identity).await.map_err(|(code, reason)| (code, reason, Some(username.clone())))?;
    let issued = session::start(state, &user, Some("sso"), ip.map(|i| i.to_string()), None)
        .await
        .map_err(|e| ("failed", e.message, Some(username.clone())))?;
    state
        .audit(
            AuditEvent::new(format!("user:{}", user.username), "auth.login", Outcome::Success)
                .user(user.id)
                .target(format!("session:{}", issued.session_id))
                .source(ip.map(|i| i.to_string()))
                .details(json!({ "method": "sso", "issuer": identity.issuer, "role": user.role.as_str() })),
        )
        .await;
    Ok(issued.headers)
}

fn role_of(role: MappedRole) -> Role {
    match role {
        MappedRole::Admin => Role::Admin,
        MappedRole::Operator => Role::Operator,
        MappedRole::Viewer => Role::Viewer,
    }
}

/// Finds or creates the account of `identity`, and brings its role and groups up to date.
async fn account_for(state: &AppState, identity: &Identity) -> Result<patchdeck_store::User, (&'static str, String)> {
    let db = |e: patchdeck_store::Error| ("failed", e.to_string());
    let now = state.now();
    let role = role_of(identity.role);
    let existing = state.store().get_user_by_oidc(&identity.issuer, &identity.subject).await.map_err(db)?;
    let user = match existing {
        Some(user) if user.disabled => return Err(("disabled", "the account is disabled".into())),
        Some(user) if user.role != role => {
            let updated = state
                .store()
                .update_user(user.id, &UserUpdate { role: Some(role), ..UserUpdate::default() }, now)
                .await
                .map_err(db)?;
            state
                .audit(
                    AuditEvent::new("sso", "user.update", Outcome::Success)
                        .target(format!("user:{}", user.username))
                        .details(json!({ "role": role.as_str(), "previous_role": user.role.as_str(), "reason": "role claim" })),
                )
                .await;
            updated
        }
        Some(user) => user,
        None => {
            let username = crate::web::handlers::users::check_username(&identity.username)
                .map_err(|_| ("username", format!("the provider's username {:?} is not usable", identity.username)))?;
            if state.store().get_user_by_username(&username).await.map_err(db)?.is_some() {
                return Err((
                    "username_taken",
                    format!("a local account named {username} exists; it is not taken over"),
                ));
            }
            let created = state
                .store()
                .create_user(
                    &NewUser {
                        display_name: identity.display_name.clone().unwrap_or_else(|| username.clone()),
                        username,
                        role,
                        password_hash: None,
                        auth_source: AuthSource::Oidc,
                        oidc: Some(OidcIdentity { issuer: identity.issuer.clone(), subject: identity.subject.clone() }),
                        must_change_password: false,
                    },
                    now,
                )
                .await
                .map_err(db)?;
            state
                .audit(
                    AuditEvent::new("sso", "user.create", Outcome::Success)
                        .target(format!("user:{}", created.username))
                        .details(json!({ "role": role.as_str(), "issuer": identity.issuer })),
                )
                .await;
            created
        }
    };
    sync_groups(state, &user, &identity.groups).await.map_err(db)?;
    Ok(user)
}

/// Makes the user's group memberships those Patchdeck groups whose names the claim lists.
async fn sync_groups(
    state: &AppState,
    user: &patchdeck_store::User,
    claimed: &[String],
) -> patchdeck_store::Result<()> {
    let groups = state.store().list_groups().await?;
    let wanted: Vec<_> = groups.iter().filter(|g| claimed.iter().any(|c| c == &g.name)).map(|g| g.id).collect();
    let current = state.store().user_group_ids(user.id).await?;
    for id in wanted.iter().filter(|id| !current.contains(id)) {
        state.store().add_user_to_group(user.id, *id).await?;
    }
    for id in current.iter().filter(|id| !wanted.contains(id)) {
        state.store().remove_user_from_group(user.id, *id).await?;
    }
    if wanted != current {
        state
            .audit(
                AuditEvent::new("sso", "user.groups", Outcome::Success)
                    .target(format!("user:{}", user.username))
                    .details(json!({ "groups": wanted.iter().map(|g| g.0).collect::<Vec<_>>() })),
            )
            .await;
    }
    Ok(())
}

/// The SSO settings as admins see them (never the client secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct SsoSettingsView {
    pub enabled: bool,
    pub name: String,
    pub issuer_url: String,
    pub client_id: String,
    /// Whether a client secret is stored (it is never returned).
    pub client_secret_set: bool,
    /// The callback URL to register at the provider.
    pub redirect_url: String,
    pub scopes: Vec<String>,
    pub role_claim: String,
    pub group_claim: String,
    #[schema(value_type = Object)]
    pub role_map: RoleMap,
    /// `admin`, `operator`, `viewer`, or null to refuse users no claim maps.
    pub default_role: Option<String>,
    pub ca_pem: Option<String>,
    pub allow_insecure_http: bool,
}

fn redirect_url(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.config().public_url)
}

/// The SSO settings.
#[utoipa::path(get, path = "/api/v1/settings/sso", tag = "settings", responses((status = 200, body = SsoSettingsView)))]
pub async fn get_sso_settings(State(state): State<AppState>) -> ApiResult<Json<SsoSettingsView>> {
    let stored = load(&state).await?;
    let secret_set = state.store().get_setting(keys::OIDC_SECRET).await?.is_some();
    let defaults = OidcSettings::new("", "", redirect_url(&state));
    let (enabled, name, oidc, ca_pem) = match stored {
        Some(s) => (s.enabled, s.name, s.oidc, s.ca_pem),
        None => (false, String::new(), defaults, None),
    };
    Ok(Json(SsoSettingsView {
        enabled,
        name,
        issuer_url: oidc.issuer_url,
        client_id: oidc.client_id,
        client_secret_set: secret_set,
        redirect_url: redirect_url(&state),
        scopes: oidc.scopes,
        role_claim: oidc.role_claim,
        group_claim: oidc.group_claim,
        role_map: oidc.role_map,
        default_role: oidc.default_role.map(|r| r.as_str().to_owned()),
        ca_pem,
        allow_insecure_http: oidc.allow_insecure_http,
    }))
}

/// New SSO settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoSettingsInput {
    pub enabled: bool,
    /// The login button's label (1–60 characters).
    pub name: String,
    pub issuer_url: String,
    pub client_id: String,
    /// The client secret; leave out to keep the stored one. Write-only.
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub role_claim: Option<String>,
    pub group_claim: Option<String>,
    #[schema(value_type = Object)]
    pub role_map: RoleMap,
    pub default_role: Option<String>,
    /// Extra CA certificates (PEM) to trust for the provider.
    pub ca_pem: Option<String>,
    /// Accept a plain-HTTP provider (development only).
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// Replaces the SSO settings. When `enabled`, the provider is contacted first (discovery), and a
/// provider that cannot be used is refused with the reason.
#[utoipa::path(put, path = "/api/v1/settings/sso", tag = "settings", request_body = SsoSettingsInput,
    responses((status = 200, body = SsoSettingsView), (status = 400)))]
pub async fn update_sso_settings(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<SsoSettingsInput>,
) -> ApiResult<Json<SsoSettingsView>> {
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Err(ApiError::validation("name", "must be 1 to 60 printable characters"));
    }
    let mut oidc = OidcSettings::new(body.issuer_url.trim(), body.client_id.trim(), redirect_url(&state));
    if let Some(scopes) = body.scopes {
        oidc.scopes = scopes;
    }
    if let Some(claim) = body.role_claim {
        oidc.role_claim = claim;
    }
    if let Some(claim) = body.group_claim {
        oidc.group_claim = claim;
    }
    oidc.role_map = body.role_map;
    oidc.default_role = match body.default_role.as_deref() {
        None => None,
        Some("admin") => Some(MappedRole::Admin),
        Some("operator") => Some(MappedRole::Operator),
        Some("viewer") => Some(MappedRole::Viewer),
        Some(_) => return Err(ApiError::validation("default_role", "must be admin, operator, viewer or null")),
    };
    oidc.allow_insecure_http = body.allow_insecure_http;
    oidc.validate().map_err(|e| ApiError::validation("sso", e))?;
    let ca_pem = body.ca_pem.filter(|p| !p.trim().is_empty());
    http_client(ca_pem.as_deref()).map_err(|e| ApiError::validation("ca_pem", e))?;
    if let Some(secret) = &body.client_secret {
        if secret.is_empty() || secret.len() > 1024 {
            return Err(ApiError::validation("client_secret", "must be 1 to 1024 bytes"));
        }
    }
    let stored = StoredSso { enabled: body.enabled, name, oidc, ca_pem };
    let secret = match &body.client_secret {
        Some(s) => Some(ClientSecret::new(s.clone())),
        None => load_secret(&state).await?,
    };
    if stored.enabled {
        let secret =
            secret.clone().ok_or_else(|| ApiError::validation("client_secret", "is required to enable SSO"))?;
        discover(&state, &stored, secret).await.map_err(|e| ApiError::validation("issuer_url", e))?;
    }
    let now = state.now();
    let by = Some(principal.user_id());
    state.store().set_setting(keys::OIDC, &serde_json::to_value(&stored).map_err(ApiError::internal)?, by, now).await?;
    if let Some(secret) = &body.client_secret {
        let sealed = patchdeck_crypto::secretbox::seal(&state.keys().secret_key, secret.as_bytes(), SECRET_AAD)
            .map_err(ApiError::internal)?;
        state.store().set_setting(keys::OIDC_SECRET, &json!(BASE64.encode(&sealed)), by, now).await?;
    }
    *state.sso_cache().lock().await = None;
    state
        .audit(
            AuditEvent::new(principal.actor(), "settings.update", Outcome::Success)
                .user(principal.user_id())
                .target("settings:sso")
                .source(principal.source_ip.clone())
                .details(json!({
                    "enabled": stored.enabled,
                    "issuer_url": stored.oidc.issuer_url,
                    "client_id": stored.oidc.client_id,
                    "client_secret_changed": body.client_secret.is_some(),
                })),
        )
        .await;
    get_sso_settings(State(state)).await
}
