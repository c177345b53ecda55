//! A real, minimal OpenID Connect provider for tests, served in-process on a loopback port.
//!
//! It speaks the protocol for real, over HTTPS with a certificate from a throw-away [`Ca`]
//! (or plain HTTP when asked), so the relying party under test uses its ordinary HTTP client:
//!
//! - `GET /.well-known/openid-configuration`: the discovery document;
//! - `GET /jwks`: the public signing key (ES256, with a `kid`);
//! - `GET /authorize`: checks `client_id`, `redirect_uri` (exact match against the registered
//!   ones), `response_type=code`, `scope` containing `openid`, `state`, `nonce`, and a PKCE
//!   `code_challenge` with `code_challenge_method=S256`. There is no login page: the test chooses
//!   who "logs in" with [`TestOidcProvider::set_next_user`] (used by the next authorization only),
//!   and the answer is a `302` to `redirect_uri?code=…&state=…&iss=…`. Without a chosen user
//!   the redirect carries `error=login_required`;
//! - `POST /token`: authenticates the client with the configured method
//!   (`client_secret_basic` or `client_secret_post`), takes the code once (a second use is
//!   `invalid_grant`), checks that it is fresh, that `redirect_uri` and `client_id` match the
//!   authorization, and that SHA-256 of the `code_verifier` is the challenge; then issues an
//!   access token and an ID token signed ES256 with `iss`, `sub`, `aud`, `exp`, `iat`,
//!   `auth_time`, `nonce`, `at_hash` and the user's claims;
//! - `GET /userinfo`: the user's claims for a bearer access token.
//!
//! Knobs for negative tests: [`IdTokenFault`] (a foreign signing key, another audience or
//! issuer, an expired token, another nonce, a wrong `at_hash`), a discovery document that names
//! another issuer ([`ProviderConfig::advertised_issuer`]), claims only at the userinfo endpoint,
//! and key rotation ([`TestOidcProvider::rotate_signing_key`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use data_encoding::{BASE64, BASE64URL_NOPAD};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::pki::Ca;

/// How long an authorization code may wait for its exchange.
const CODE_LIFETIME: Duration = Duration::from_secs(60);

/// The client registered at the provider.
#[derive(Debug, Clone)]
pub struct TestClient {
    /// The client ID.
    pub id: String,
    /// The client secret.
    pub secret: String,
    /// The redirect URIs `/authorize` accepts, compared exactly.
    pub redirect_uris: Vec<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// `Authorization: Basic` with the form-encoded ID and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl ClientAuthMethod {
    fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::ClientSecretBasic => "client_secret_basic",
            ClientAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }
}

/// How the provider is set up.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Serve HTTPS with a certificate from a fresh test CA (default), or plain HTTP.
    pub tls: bool,
    /// The one registered client.
    pub client: TestClient,
    /// The only client authentication method the token endpoint accepts and advertises.
    pub auth_method: ClientAuthMethod,
    /// An issuer to put in the discovery document instead of the real one.
    pub advertised_issuer: Option<String>,
    /// Leave roles, groups and extra claims out of the ID token; only `/userinfo` has them.
    pub claims_in_userinfo_only: bool,
    /// How long ID and access tokens are valid.
    pub token_lifetime: Duration,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            tls: true,
            client: TestClient {
                id: "patchdeck".to_owned(),
                // Characters that must be form-encoded in client_secret_basic.
                secret: "s3cret+/=:&%patchdeck".to_owned(),
                redirect_uris: vec!["https://patchdeck.test/auth/oidc/callback".to_owned()],
            },
            auth_method: ClientAuthMethod::ClientSecretBasic,
            advertised_issuer: None,
            claims_in_userinfo_only: false,
            token_lifetime: Duration::from_secs(300),
        }
    }
}

/// Who "logs in" at the next authorization.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestUser {
    /// The subject identifier.
    pub sub: String,
    /// `preferred_username`.
    pub preferred_username: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `email_verified`.
    pub email_verified: bool,
    /// `name`.
    pub name: Option<String>,
    /// The `roles` claim (left out when empty).
    pub roles: Vec<String>,
    /// The `groups` claim (left out when empty).
    pub groups: Vec<String>,
    /// More claims, added at the top level (`{"realm_access": {"roles": [...]}}`).
    pub extra_claims: Map<String, Value>,
}

impl TestUser {
    /// A user `username` with subject `sub-<username>`, a verified e-mail address
    /// `<username>@example.test` and a display name, and no roles or groups.
    pub fn new(username: &str) -> TestUser {
        TestUser {
            sub: format!("sub-{username}"),
            preferred_username: Some(username.to_owned()),
            email: Some(format!("{username}@example.test")),
            email_verified: true,
            name: Some(format!("Test User {username}")),
            ..TestUser::default()
        }
    }

    /// The same user with `roles`.
    pub fn with_roles(mut self, roles: &[&str]) -> TestUser {
        self.roles = roles.iter().map(|r| (*r).to_owned()).collect();
        self
    }

    /// The same user with `groups`.
    pub fn with_groups(mut self, groups: &[&str]) -> TestUser {
        self.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }

    /// The claims about the user; roles, groups and extra claims only if `custom`.
    fn claims(&self, custom: bool) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert("sub".into(), json!(self.sub));
        if let Some(u) = &self.preferred_username {
            claims.insert("preferred_username".into(), json!(u));
        }
        if let Some(e) = &self.email {
            claims.insert("email".into(), json!(e));
            claims.insert("email_verified".into(), json!(self.email_verified));
        }
        if let Some(n) = &self.name {
            claims.insert("name".into(), json!(n));
        }
        if custom {
            if !self.roles.is_empty() {
                claims.insert("roles".into(), json!(self.roles));
            }
            if !self.groups.is_empty() {
                claims.insert("groups".into(), json!(self.groups));
            }
            claims.extend(self.extra_claims.clone());
        }
        claims
    }
}

/// A defect to build into the ID tokens issued from now on, until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenFault {
    /// Signed with a key that is not in the JWKS, under the published key's `kid`.
    ForeignKey,
    /// `aud` is another client.
    WrongAudience,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `exp` has passed.
    Expired,
    /// `nonce` is not the one of the authorization request.
    WrongNonce,
    /// `at_hash` does not match the access token.
    WrongAtHash,
}

/// A running provider; it stops when dropped.
#[derive(Debug)]
pub struct TestOidcProvider {
    issuer: String,
    addr: SocketAddr,
    ca: Option<Ca>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for TestOidcProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Shared {
    issuer: String,
    config: ProviderConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    key: SigningKey,
    kid: String,
    foreign_key: SigningKey,
    next_user: Option<TestUser>,
    fault: Option<IdTokenFault>,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, TestUser>,
    last_client_auth: Option<ClientAuthMethod>,
    token_requests: usize,
    jwks_requests: usize,
}

#[derive(Debug)]
struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: String,
    user: TestUser,
    issued: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TestOidcProvider {
    /// Starts a provider with `config` on a free port of 127.0.0.1, in the current Tokio runtime.
    pub async fn start(config: ProviderConfig) -> TestOidcProvider {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the OIDC provider to a loopback port");
        let addr = listener.local_addr().expect("the OIDC provider's address");
        let scheme = if config.tls { "https" } else { "http" };
        let issuer = format!("{scheme}://{addr}");
        let (ca, acceptor) = if config.tls {
            let ca = Ca::new("Patchdeck test OIDC CA");
            let leaf = ca.leaf("oidc-provider", &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, &[0x0d, 0x1c]);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut tls = rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(
                    vec![CertificateDer::from(leaf.cert.der().to_vec())],
                    PrivateKeyDer::Pkcs8(leaf.key.serialize_der().into()),
                )
                .expect("the OIDC provider's certificate");
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            (Some(ca), Some(TlsAcceptor::from(Arc::new(tls))))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            config,
            inner: Mutex::new(Inner {
                key: random_key(),
                kid: random_token(8),
                foreign_key: random_key(),
                next_user: None,
                fault: None,
                codes: HashMap::new(),
                access_tokens: HashMap::new(),
                last_client_auth: None,
                token_requests: 0,
                jwks_requests: 0,
            }),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .with_state(shared.clone());
        let task = tokio::spawn(accept_loop(listener, acceptor, app));
        TestOidcProvider { issuer, addr, ca, shared, task }
    }

    /// The issuer identifier, `https://127.0.0.1:<port>` (or `http://…`), without a trailing
    /// slash.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The address the provider listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM of the CA that signed the provider's certificate, when it serves HTTPS: add it as
    /// a root to the HTTP client.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca.as_ref().map(|ca| ca.cert.pem())
    }

    /// The registered client.
    pub fn client(&self) -> &TestClient {
        &self.shared.config.client
    }

    /// Chooses who logs in at the next `/authorize` request (used once).
    pub fn set_next_user(&self, user: TestUser) {
        self.shared.lock().next_user = Some(user);
    }

    /// Builds `fault` into every ID token issued from now on; `None` issues good tokens again.
    pub fn set_id_token_fault(&self, fault: Option<IdTokenFault>) {
        self.shared.lock().fault = fault;
    }

    /// Replaces the signing key with a new one under a new `kid`; the JWKS publishes only the
    /// new key from now on.
    pub fn rotate_signing_key(&self) {
        let mut inner = self.shared.lock();
        inner.key = random_key();
        inner.kid = random_token(8);
    }

    /// The client authentication method of the last successful token request.
    pub fn last_client_auth(&self) -> Option<ClientAuthMethod> {
        self.shared.lock().last_client_auth
    }

    /// How many requests reached `/token`.
    pub fn token_requests(&self) -> usize {
        self.shared.lock().token_requests
    }

    /// How many requests reached `/jwks`.
    pub fn jwks_requests(&self) -> usize {
        self.shared.lock().jwks_requests
    }
}

async fn accept_loop(listener: TcpListener, acceptor: Option<TlsAcceptor>, app: Router) {
    // Owned here, so aborting this task ends every connection too.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let app = app.clone();
        let acceptor = acceptor.clone();
        connections.spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve_connection(tls, app).await;
                    }
                }
                None => serve_connection(stream, app).await,
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn serve_connection<S>(stream: S, app: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A failed connection (a client hanging up) is no concern of the test.
    let _ = auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
        .await;
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("operating system random number generator");
    bytes
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("operating system random number generator");
    BASE64URL_NOPAD.encode(&buf)
}

fn random_key() -> SigningKey {
    loop {
        if let Ok(key) = SigningKey::from_slice(&random_bytes::<32>()) {
            return key;
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("the clock is after 1970").as_secs()
}

fn b64url_sha256_half(text: &str) -> String {
    BASE64URL_NOPAD.encode(&Sha256::digest(text.as_bytes())[..16])
}

/// An OAuth error answer.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, Json(json!({"error": error, "error_description": description}))).into_response()
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let issuer = &shared.issuer;
    Json(json!({
        "issuer": shared.config.advertised_issuer.as_deref().unwrap_or(issuer),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": [shared.config.auth_method.as_str()],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "preferred_username", "email",
            "email_verified", "name", "roles", "groups"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

async fn jwks(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let mut inner = shared.lock();
    inner.jwks_requests += 1;
    let point = inner.key.verifying_key().to_encoded_point(false);
    Json(json!({"keys": [{
        "kty": "EC",
        "crv": "P-256",
        "use": "sig",
        "alg": "ES256",
        "kid": inner.kid,
        "x": BASE64URL_NOPAD.encode(point.x().expect("an uncompressed point")),
        "y": BASE64URL_NOPAD.encode(point.y().expect("an uncompressed point")),
    }]}))
}

async fn authorize(State(shared): State<Arc<Shared>>, Query(query): Query<Vec<(String, String)>>) -> Response {
    let mut params: HashMap<&str, &str> = HashMap::new();
    for (name, value) in &query {
        if params.insert(name, value).is_some() {
            return (StatusCode::BAD_REQUEST, format!("repeated parameter {name}")).into_response();
        }
    }
    let client = &shared.config.client;
    // Errors about the client or the redirect URI are never redirected (RFC 6749 §4.1.2.1).
    if params.get("client_id") != Some(&client.id.as_str()) {
        return (StatusCode::BAD_REQUEST, "unknown client_id").into_response();
    }
    let Some(redirect_uri) = params.get("redirect_uri").filter(|uri| client.redirect_uris.iter().any(|r| r == *uri))
    else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not registered").into_response();
    };
    let state = params.get("state").copied();
    let redirect = |pairs: &[(&str, &str)]| {
        let mut url = url::Url::parse(redirect_uri).expect("a registered redirect URI is a URL");
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in pairs {
                query.append_pair(name, value);
            }
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &shared.issuer);
        }
        (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
    };
    let invalid = |description: &str| redirect(&[("error", "invalid_request"), ("error_description", description)]);
    if params.get("response_type") != Some(&"code") {
        return redirect(&[("error", "unsupported_response_type")]);
    }
    if !params.get("scope").is_some_and(|scope| scope.split(' ').any(|s| s == "openid")) {
        return redirect(&[("error", "invalid_scope"), ("error_description", "openid is required")]);
    }
    if state.is_none_or(str::is_empty) {
        return invalid("state is required");
    }
    let Some(nonce) = params.get("nonce").filter(|n| !n.is_empty()) else {
        return invalid("nonce is required");
    };
    if params.get("code_challenge_method") != Some(&"S256") {
        return invalid("code_challenge_method must be S256");
    }
    let Some(challenge) = params.get("code_challenge").filter(|c| c.len() == 43) else {
        return invalid("code_challenge must be a base64url SHA-256");
    };
    let mut inner = shared.lock();
    let Some(user) = inner.next_user.take() else {
        drop(inner);
        return redirect(&[("error", "login_required")]);
    };
    let code = random_token(32);
    inner.codes.insert(
        code.clone(),
        Grant {
            redirect_uri: (*redirect_uri).to_owned(),
            challenge: (*challenge).to_owned(),
            nonce: (*nonce).to_owned(),
            user,
            issued: Instant::now(),
        },
    );
    drop(inner);
    redirect(&[("code", &code)])
}

/// The client ID and secret from `client_secret_basic`, form-decoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(BASE64.decode(encoded.as_bytes()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form_decode =
        |part: &str| url::form_urlencoded::parse(format!("v={part}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((form_decode(id)?, form_decode(secret)?))
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let config = &shared.config;
    let mut params: HashMap<&str, &str> = HashMap::new();
    for (name, value) in &form {
        if params.insert(name, value).is_some() {
            return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "repeated parameter");
        }
    }
    let mut inner = shared.lock();
    inner.token_requests += 1;

    let (client_id, secret) = match config.auth_method {
        ClientAuthMethod::ClientSecretBasic => match basic_credentials(&headers) {
            Some(credentials) if !params.contains_key("client_secret") => credentials,
            _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client_secret_basic is required"),
        },
        ClientAuthMethod::ClientSecretPost => match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) if !headers.contains_key(header::AUTHORIZATION) => {
                ((*id).to_owned(), (*secret).to_owned())
            }
            _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client_secret_post is required"),
        },
    };
    if client_id != config.client.id || secret != config.client.secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
    }
    if params.get("grant_type") != Some(&"authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
    }
    // Taken out at once: a code is single-use whether or not the exchange succeeds.
    let Some(grant) = params.get("code").and_then(|code| inner.codes.remove(*code)) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown or used code");
    };
    if grant.issued.elapsed() > CODE_LIFETIME {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "the code has expired");
    }
    if params.get("redirect_uri") != Some(&grant.redirect_uri.as_str()) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "redirect_uri differs from the authorization");
    }
    let verified = params.get("code_verifier").is_some_and(|verifier| {
        (43..=128).contains(&verifier.len())
            && BASE64URL_NOPAD.encode(&Sha256::digest(verifier.as_bytes())) == grant.challenge
    });
    if !verified {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "PKCE verification failed");
    }
    inner.last_client_auth = Some(config.auth_method);

    let access_token = random_token(32);
    let now = unix_now();
    let lifetime = config.token_lifetime.as_secs();
    let fault = inner.fault;
    let mut claims = grant.user.claims(!config.claims_in_userinfo_only);
    let (iat, exp) = match fault {
        Some(IdTokenFault::Expired) => (now - lifetime - 60, now - 60),
        _ => (now, now + lifetime),
    };
    let fixed = json!({
        "iss": if fault == Some(IdTokenFault::WrongIssuer) { "https://impostor.test" } else { &shared.issuer },
        "aud": if fault == Some(IdTokenFault::WrongAudience) { "another-client" } else { &config.client.id },
        "iat": iat,
        "exp": exp,
        "auth_time": iat,
        "nonce": if fault == Some(IdTokenFault::WrongNonce) { "not-the-nonce" } else { &grant.nonce },
        "at_hash": b64url_sha256_half(if fault == Some(IdTokenFault::WrongAtHash) { "other" } else { &access_token }),
    });
    claims.extend(fixed.as_object().expect("an object").clone());
    let key = if fault == Some(IdTokenFault::ForeignKey) { &inner.foreign_key } else { &inner.key };
    let id_token = sign_jwt(key, &inner.kid, &Value::Object(claims));
    inner.access_tokens.insert(access_token.clone(), grant.user);
    drop(inner);
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "id_token": id_token,
            "scope": "openid profile email",
        })),
    )
        .into_response()
}

fn sign_jwt(key: &SigningKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": kid});
    let signing_input = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
        BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
    );
    let signature: Signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", BASE64URL_NOPAD.encode(&signature.to_bytes()))
}

async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let token =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let inner = shared.lock();
    match token.and_then(|t| inner.access_tokens.get(t)) {
        Some(user) => Json(Value::Object(user.claims(true))).into_response(),
        None => {
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")]).into_response()
        }
    }
}
