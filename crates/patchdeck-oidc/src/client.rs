//! The relying party: discovery, the authorization request and the callback.

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJsonWebKeySet,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse, CoreSubjectIdentifierType,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalProviderMetadata, AuthType, AuthorizationCode, ClaimsVerificationError,
    Client, ClientId, CsrfToken, DiscoveryError, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    HttpClientError, IdToken, IdTokenClaims, IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySet, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, RequestTokenError, Scope,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, SubjectIdentifier, UserInfoClaims,
    UserInfoError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;
use url::Url;

use crate::claims::{lookup, string_values, ExtraClaims};
use crate::error::OidcError;
use crate::pending::{CallbackParams, PendingLogin};
use crate::settings::{ClientSecret, MappedRole, OidcSettings};

/// How far in the future an ID token's `iat` may lie (clock skew between provider and manager).
const MAX_ISSUED_IN_FUTURE: Duration = Duration::from_secs(300);

/// Discovery fields beyond OIDC Discovery that this client reads (RFC 8414).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ExtraMetadata {
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<IdFields, CoreTokenType>;
type Token = IdToken<ExtraClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;
type Claims = IdTokenClaims<ExtraClaims, CoreGenderClaim>;

type RpClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// The signature algorithms accepted for ID tokens: asymmetric only. HMAC algorithms would make
/// the client secret a token-signing key, and `none` is never acceptable.
const ASYMMETRIC_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// The source of the current time; see [`OidcClient::with_clock`].
type ClockFn = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Who signed in, as the provider vouches for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The provider's stable, unique identifier of the user (`sub`). Key accounts by
    /// `(issuer, subject)`: usernames and e-mail addresses can change or be reassigned.
    pub subject: String,
    /// The issuer that vouches for `subject`.
    pub issuer: String,
    /// `preferred_username`; else the e-mail address if the provider marks it verified; else the
    /// subject.
    pub username: String,
    /// The e-mail address, if the provider sent one.
    pub email: Option<String>,
    /// Whether the provider says it verified [`email`](Self::email).
    pub email_verified: bool,
    /// `name`, if the provider sent one.
    pub display_name: Option<String>,
    /// The highest role the role claim grants, or the default role.
    pub role: MappedRole,
    /// The values of the group claim, in the provider's order.
    pub groups: Vec<String>,
}

/// A relying party configured against one discovered provider. Cheap to share (`Arc` it);
/// every method takes `&self`.
pub struct OidcClient {
    settings: OidcSettings,
    client: RpClient,
    issuer: IssuerUrl,
    jwks_url: Url,
    jwks: RwLock<CoreJsonWebKeySet>,
    allowed_algs: Vec<CoreJwsSigningAlgorithm>,
    scopes: Vec<Scope>,
    http: reqwest::Client,
    clock: ClockFn,
}

impl fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcClient")
            .field("issuer", &self.settings.issuer_url)
            .field("client_id", &self.settings.client_id)
            .field("redirect_url", &self.settings.redirect_url)
            .field("allowed_algs", &self.allowed_algs)
            .finish_non_exhaustive()
    }
}

/// A `reqwest` client builder fit for talking to a provider: redirects are not followed (a
/// followed redirect would let a provider answer steer requests elsewhere, and could downgrade to
/// HTTP), and requests time out. Add the roots the provider needs, then build.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("patchdeck-oidc/", env!("CARGO_PKG_VERSION")))
}

impl OidcClient {
    /// Validates `settings`, fetches the provider's discovery document and its JWKS, and checks
    /// them: the issuer must equal `settings.issuer_url` exactly; the issuer and every endpoint
    /// must be HTTPS unless `allow_insecure_http` is set; the provider must offer the `code`
    /// response type, PKCE with S256 (when it lists its methods), a token endpoint,
    /// `client_secret_basic` or `client_secret_post` (basic is preferred), and an asymmetric
    /// ID-token signature algorithm.
    ///
    /// `http` must not follow redirects: build it from [`http_client_builder`].
    pub async fn discover(
        settings: &OidcSettings,
        client_secret: ClientSecret,
        http: reqwest::Client,
    ) -> Result<OidcClient, OidcError> {
        settings.validate()?;
        let issuer = IssuerUrl::new(settings.issuer_url.clone())
            .map_err(|e| OidcError::InvalidSettings { field: "issuer_url", reason: e.to_string() })?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| OidcError::InvalidSettings { field: "redirect_url", reason: e.to_string() })?;

        let metadata = fetch_metadata(&issuer, &http).await?;
        if metadata.issuer().as_str() != settings.issuer_url {
            return Err(OidcError::IssuerMismatch {
                expected: settings.issuer_url.clone(),
                found: metadata.issuer().to_string(),
            });
        }
        let authorization_url = metadata.authorization_endpoint().url();
        settings.require_https("authorization endpoint", authorization_url, authorization_url.as_str())?;
        let token_url = metadata.token_endpoint().ok_or_else(|| OidcError::Unsupported("a token endpoint".into()))?;
        settings.require_https("token endpoint", token_url.url(), token_url.as_str())?;
        settings.require_https("JWKS endpoint", metadata.jwks_uri().url(), metadata.jwks_uri().as_str())?;
        if let Some(userinfo) = metadata.userinfo_endpoint() {
            settings.require_https("userinfo endpoint", userinfo.url(), userinfo.as_str())?;
        }
        if !metadata.response_types_supported().iter().any(|types| **types == [CoreResponseType::Code]) {
            return Err(OidcError::Unsupported("the authorization code flow (response type `code`)".into()));
        }
        if let Some(methods) = &metadata.additional_metadata().code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(OidcError::Unsupported("PKCE with S256".into()));
            }
        }
        let auth_type = choose_auth_type(metadata.token_endpoint_auth_methods_supported())?;
        let allowed_algs: Vec<_> = metadata
            .id_token_signing_alg_values_supported()
            .iter()
            .filter(|alg| ASYMMETRIC_ALGS.contains(alg))
            .cloned()
            .collect();
        if allowed_algs.is_empty() {
            return Err(OidcError::Unsupported("an asymmetric ID token signature algorithm (RS256, ES256, …)".into()));
        }

        let jwks_url = metadata.jwks_uri().url().clone();
        let jwks = fetch_jwks(metadata.jwks_uri(), &http).await?;
        let metadata = metadata.set_jwks(jwks.clone());
        let client = RpClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            Some(openidconnect::ClientSecret::new(client_secret.expose().to_owned())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(auth_type);
        let scopes = settings.scopes.iter().filter(|s| *s != "openid").map(|s| Scope::new(s.clone())).collect();
        Ok(OidcClient {
            settings: settings.clone(),
            client,
            issuer,
            jwks_url,
            jwks: RwLock::new(jwks),
            allowed_algs,
            scopes,
            http,
            clock: Arc::new(Timestamp::now),
        })
    }

    /// Replaces the clock (the system clock by default) that dates logins and checks the
    /// expiry and issue time of ID tokens, so tests control time.
    pub fn with_clock(mut self, now: impl Fn() -> Timestamp + Send + Sync + 'static) -> OidcClient {
        self.clock = Arc::new(now);
        self
    }

    /// The settings this client was discovered with.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Starts a login: the URL to redirect the browser to (authorization code flow, PKCE S256,
    /// fresh random `state` and `nonce` of 128 bits, a 256-bit PKCE verifier) and the
    /// [`PendingLogin`] to keep until the callback.
    pub fn begin(&self) -> (Url, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = self
            .client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scopes(self.scopes.iter().cloned())
            .set_pkce_challenge(challenge)
            .url();
        let pending = PendingLogin {
            state: state.into_secret(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.into_secret(),
            created_at: (self.clock)(),
        };
        (url, pending)
    }

    /// Finishes a login from the callback's query parameters: an `error` becomes
    /// [`OidcError::AuthorizationDenied`] (once the state matches), an `iss` (RFC 9207) must name
    /// the configured issuer, and then [`complete`](Self::complete) runs.
    pub async fn complete_callback(
        &self,
        pending: &PendingLogin,
        callback: &CallbackParams,
    ) -> Result<Identity, OidcError> {
        let state = callback.state.as_deref().ok_or_else(|| OidcError::InvalidCallback("lacks the `state`".into()))?;
        self.check_fresh_and_state(pending, state)?;
        if let Some(error) = &callback.error {
            return Err(OidcError::AuthorizationDenied { error: error.clone() });
        }
        if let Some(iss) = &callback.iss {
            if *iss != self.settings.issuer_url {
                return Err(OidcError::CallbackIssuerMismatch {
                    expected: self.settings.issuer_url.clone(),
                    found: iss.clone(),
                });
            }
        }
        let code = callback.code.as_deref().ok_or_else(|| OidcError::InvalidCallback("lacks the `code`".into()))?;
        self.complete(pending, state, code).await
    }

    /// Finishes a login: checks that the login is not older than the login timeout and that
    /// `returned_state` is the pending one (in constant time); exchanges `code` at the token
    /// endpoint with the PKCE verifier and the client secret; verifies the ID token's signature
    /// against the provider's keys (fetching the JWKS again once if the key ID is unknown, for
    /// key rotation), issuer, audience, expiry, issue time and nonce, and its `at_hash`; reads
    /// the role and group claims (from the userinfo endpoint if the ID token lacks them); and
    /// maps the role.
    ///
    /// The caller must discard `pending` afterwards, whatever the result.
    pub async fn complete(
        &self,
        pending: &PendingLogin,
        returned_state: &str,
        code: &str,
    ) -> Result<Identity, OidcError> {
        self.check_fresh_and_state(pending, returned_state)?;
        let response = self.exchange(pending, code).await?;
        let id_token = response.extra_fields().id_token().ok_or(OidcError::MissingIdToken)?;
        let claims =
            self.verify_id_token(id_token, &Nonce::new(pending.nonce.clone()), response.access_token()).await?;
        self.identity(&claims, response.access_token()).await
    }

    fn check_fresh_and_state(&self, pending: &PendingLogin, returned_state: &str) -> Result<(), OidcError> {
        let age = (self.clock)().duration_since(pending.created_at);
        let limit = self.settings.login_timeout();
        if age.unsigned_abs() > limit {
            return Err(OidcError::LoginExpired {
                age_secs: age.as_secs().unsigned_abs(),
                limit_secs: limit.as_secs(),
            });
        }
        if !bool::from(pending.state.as_bytes().ct_eq(returned_state.as_bytes())) {
            return Err(OidcError::StateMismatch);
        }
        Ok(())
    }

    async fn exchange(&self, pending: &PendingLogin, code: &str) -> Result<TokenResponse, OidcError> {
        let token_url = self.client.token_uri().map(|u| u.to_string()).unwrap_or_default();
        self.client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| OidcError::Unsupported("a token endpoint".into()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(answer) => {
                    OidcError::TokenRejected { error: answer.error().as_ref().to_owned() }
                }
                RequestTokenError::Request(source) => transport("token endpoint", &token_url, source),
                // The JSON path only: serde_json messages may quote the value (a token).
                RequestTokenError::Parse(e, _body) => OidcError::InvalidResponse {
                    what: "token response",
                    reason: format!("cannot read the field `{}`", e.path()),
                },
                RequestTokenError::Other(reason) => OidcError::InvalidResponse { what: "token response", reason },
            })
    }

    fn verifier(&self, jwks: CoreJsonWebKeySet) -> IdTokenVerifier<'static, CoreJsonWebKey> {
        let clock = self.clock.clone();
        let iat_clock = self.clock.clone();
        // A public-client verifier: it never accepts HMAC signatures keyed with the client secret.
        IdTokenVerifier::new_public_client(ClientId::new(self.settings.client_id.clone()), self.issuer.clone(), jwks)
            .set_allowed_algs(self.allowed_algs.iter().cloned())
            .set_time_fn(move || SystemTime::from(clock()).into())
            .set_issue_time_verifier_fn(move |iat| {
                let iat = SystemTime::from(iat);
                let latest = SystemTime::from(iat_clock()) + MAX_ISSUED_IN_FUTURE;
                if iat > latest {
                    Err("the ID token is issued in the future (check the clocks)".to_owned())
                } else {
                    Ok(())
                }
            })
    }

    async fn verify_id_token(
        &self,
        token: &Token,
        nonce: &Nonce,
        access_token: &AccessToken,
    ) -> Result<Claims, OidcError> {
        let jwks = self.jwks.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let mut verifier = self.verifier(jwks);
        let claims = match token.claims(&verifier, nonce) {
            Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                // The provider may have rotated its keys since discovery: fetch them once more.
                let url = openidconnect::JsonWebKeySetUrl::from_url(self.jwks_url.clone());
                let fresh = fetch_jwks(&url, &self.http).await?;
                *self.jwks.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh.clone();
                verifier = self.verifier(fresh);
                token.claims(&verifier, nonce)
            }
            other => other,
        }
        .map_err(claims_error)?
        .clone();

        if let Some(expected) = claims.access_token_hash() {
            let alg = token.signing_alg().map_err(|e| OidcError::BadSignature(e.to_string()))?;
            let key = token.signing_key(&verifier).map_err(|e| OidcError::BadSignature(e.to_string()))?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|e| OidcError::InvalidIdToken(format!("cannot compute at_hash: {e}")))?;
            if actual != *expected {
                return Err(OidcError::AccessTokenHashMismatch);
            }
        }
        Ok(claims)
    }

    async fn identity(&self, claims: &Claims, access_token: &AccessToken) -> Result<Identity, OidcError> {
        let settings = &self.settings;
        let mut extra = claims.additional_claims().claims.clone();
        let mut preferred_username = claims.preferred_username().map(|u| u.to_string());
        let mut email = claims.email().map(|e| e.to_string());
        let mut email_verified = claims.email_verified().unwrap_or(false);
        let mut display_name = claims.name().and_then(|n| n.get(None)).map(|n| n.to_string());

        let missing = |extra: &Map<String, Value>| {
            lookup(extra, &settings.role_claim).is_none() || lookup(extra, &settings.group_claim).is_none()
        };
        if missing(&extra) && self.client.user_info_url().is_some() {
            let info = self.user_info(access_token.clone(), claims.subject().clone()).await?;
            for path in [&settings.role_claim, &settings.group_claim] {
                if lookup(&extra, path).is_none() {
                    if let Some(value) = lookup(&info.additional_claims().claims, path) {
                        extra.insert(path.clone(), value.clone());
                    }
                }
            }
            preferred_username = preferred_username.or_else(|| info.preferred_username().map(|u| u.to_string()));
            if email.is_none() {
                email = info.email().map(|e| e.to_string());
                email_verified = info.email_verified().unwrap_or(false);
            }
            display_name = display_name.or_else(|| info.name().and_then(|n| n.get(None)).map(|n| n.to_string()));
        }

        let subject = claims.subject().to_string();
        let username =
            preferred_username.or_else(|| email.clone().filter(|_| email_verified)).unwrap_or_else(|| subject.clone());
        let values = |path: &str| match lookup(&extra, path) {
            Some(value) => string_values(value, path),
            None => Ok(Vec::new()),
        };
        let role_values = values(&settings.role_claim)?;
        let groups = values(&settings.group_claim)?;
        let role =
            settings.role_map.highest(role_values.iter().map(String::as_str)).or(settings.default_role).ok_or_else(
                || OidcError::NoRole {
                    subject: subject.clone(),
                    username: username.clone(),
                    claim: settings.role_claim.clone(),
                },
            )?;
        Ok(Identity {
            subject,
            issuer: claims.issuer().to_string(),
            username,
            email,
            email_verified,
            display_name,
            role,
            groups,
        })
    }

    async fn user_info(
        &self,
        access_token: AccessToken,
        subject: SubjectIdentifier,
    ) -> Result<UserInfoClaims<ExtraClaims, CoreGenderClaim>, OidcError> {
        let url = self.client.user_info_url().map(|u| u.to_string()).unwrap_or_default();
        self.client
            .user_info(access_token, Some(subject))
            .map_err(|_| OidcError::Unsupported("a userinfo endpoint".into()))?
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                UserInfoError::Request(source) => transport("userinfo endpoint", &url, source),
                UserInfoError::Response(status, _body, _) => {
                    OidcError::HttpStatus { what: "userinfo endpoint", url, status: status.as_u16() }
                }
                UserInfoError::Parse(e) => OidcError::UserInfo(format!("cannot read the field `{}`", e.path())),
                UserInfoError::ClaimsVerification(e) => OidcError::UserInfo(e.to_string()),
                other => OidcError::UserInfo(other.to_string()),
            })
    }
}

fn transport(what: &'static str, url: &str, source: HttpClientError<reqwest::Error>) -> OidcError {
    OidcError::Transport { what, url: url.to_owned(), source: Box::new(source) }
}

fn claims_error(e: ClaimsVerificationError) -> OidcError {
    match e {
        ClaimsVerificationError::SignatureVerification(e) => OidcError::BadSignature(e.to_string()),
        ClaimsVerificationError::InvalidAudience(reason) => OidcError::WrongAudience(reason),
        ClaimsVerificationError::InvalidIssuer(reason) => OidcError::WrongIssuer(reason),
        ClaimsVerificationError::Expired(reason) => OidcError::Expired(reason),
        ClaimsVerificationError::InvalidNonce(reason) => OidcError::NonceMismatch(reason),
        other => OidcError::InvalidIdToken(other.to_string()),
    }
}

/// `client_secret_basic` if offered (it is the default when the provider lists nothing), else
/// `client_secret_post`.
fn choose_auth_type(supported: Option<&Vec<CoreClientAuthMethod>>) -> Result<AuthType, OidcError> {
    let Some(methods) = supported else {
        return Ok(AuthType::BasicAuth);
    };
    if methods.contains(&CoreClientAuthMethod::ClientSecretBasic) {
        Ok(AuthType::BasicAuth)
    } else if methods.contains(&CoreClientAuthMethod::ClientSecretPost) {
        Ok(AuthType::RequestBody)
    } else {
        Err(OidcError::Unsupported("client_secret_basic or client_secret_post at the token endpoint".into()))
    }
}

async fn fetch_metadata(issuer: &IssuerUrl, http: &reqwest::Client) -> Result<Metadata, OidcError> {
    const WHAT: &str = "discovery document";
    let url = issuer.join(".well-known/openid-configuration").map_err(|e| OidcError::InvalidSettings {
        field: "issuer_url",
        reason: format!("cannot form the discovery URL: {e}"),
    })?;
    let url_text = url.to_string();
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| OidcError::Transport { what: WHAT, url: url_text.clone(), source: Box::new(e) })?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(OidcError::HttpStatus { what: WHAT, url: url_text, status: response.status().as_u16() });
    }
    let body = response.bytes().await.map_err(|e| OidcError::Transport {
        what: WHAT,
        url: url_text.clone(),
        source: Box::new(e),
    })?;
    // The discovery document is public: its parse errors may quote it.
    serde_json::from_slice(&body).map_err(|e| OidcError::InvalidResponse { what: WHAT, reason: e.to_string() })
}

async fn fetch_jwks(
    url: &openidconnect::JsonWebKeySetUrl,
    http: &reqwest::Client,
) -> Result<CoreJsonWebKeySet, OidcError> {
    const WHAT: &str = "JWKS";
    JsonWebKeySet::fetch_async(url, http).await.map_err(|e| match e {
        DiscoveryError::Request(source) => transport(WHAT, url.as_str(), source),
        DiscoveryError::Response(status, _, _) if status != reqwest::StatusCode::OK => {
            OidcError::HttpStatus { what: WHAT, url: url.to_string(), status: status.as_u16() }
        }
        DiscoveryError::Response(_, _, reason) => OidcError::InvalidResponse { what: WHAT, reason },
        DiscoveryError::Parse(e) => OidcError::InvalidResponse { what: WHAT, reason: e.to_string() },
        other => OidcError::InvalidResponse { what: WHAT, reason: other.to_string() },
    })
}
