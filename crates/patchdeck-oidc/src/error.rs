//! Why a discovery or a login failed.
//!
//! No message or source of [`OidcError`] ever carries an authorization code, a token, a nonce, a
//! PKCE verifier or the client secret: parse errors of token responses are reduced to the JSON
//! path that failed (a `serde_json` message can quote the offending value), and error answers of
//! the provider to their standard `error` code. Issuer URLs, endpoint URLs, subjects and
//! usernames do appear: they are what an administrator needs to fix the configuration.

use std::error::Error as StdError;

/// A boxed transport error (from `reqwest`); its messages name URLs, never request bodies.
pub type TransportError = Box<dyn StdError + Send + Sync + 'static>;

/// What went wrong in discovery or in a login.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// A setting is invalid.
    #[error("invalid OIDC setting `{field}`: {reason}")]
    InvalidSettings {
        /// The field of [`OidcSettings`](crate::OidcSettings).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An `http://` URL where HTTPS is required.
    #[error("the {what} `{url}` does not use HTTPS (set `allow_insecure_http` only for tests)")]
    InsecureUrl {
        /// Which URL (`issuer_url`, `token endpoint`, …).
        what: &'static str,
        /// The URL.
        url: String,
    },
    /// The provider could not be reached, or the connection failed.
    #[error("could not reach the OIDC provider's {what} at {url}")]
    Transport {
        /// Which request (`discovery document`, `token endpoint`, …).
        what: &'static str,
        /// The URL requested.
        url: String,
        /// The transport error.
        #[source]
        source: TransportError,
    },
    /// The provider answered with an unexpected HTTP status.
    #[error("the OIDC provider's {what} at {url} answered HTTP {status}")]
    HttpStatus {
        /// Which request.
        what: &'static str,
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// A document of the provider is not what the protocol prescribes.
    #[error("the OIDC provider's {what} is invalid: {reason}")]
    InvalidResponse {
        /// Which document (`discovery document`, `token response`, `JWKS`, …).
        what: &'static str,
        /// What is wrong; for token responses only the JSON path, never a value.
        reason: String,
    },
    /// The discovery document names another issuer than the configured one.
    #[error(
        "the discovery document names the issuer `{found}`, but `{expected}` is configured (they must match exactly)"
    )]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer in the discovery document.
        found: String,
    },
    /// The provider lacks something this client requires.
    #[error("the OIDC provider does not support {0}")]
    Unsupported(String),
    /// The login was started longer ago than the login timeout.
    #[error(
        "the login took too long (started {age_secs} s ago, at most {limit_secs} s allowed); please sign in again"
    )]
    LoginExpired {
        /// Seconds since the login started.
        age_secs: u64,
        /// The configured limit.
        limit_secs: u64,
    },
    /// The `state` that came back does not belong to this login (a forged or crossed callback).
    #[error("the state returned by the OIDC provider does not match this login")]
    StateMismatch,
    /// The provider redirected back with an error instead of a code (the user declined, …).
    #[error("the OIDC provider refused the login: {error}")]
    AuthorizationDenied {
        /// The standard `error` code (`access_denied`, `login_required`, …).
        error: String,
    },
    /// The callback is malformed: it lacks the code or the state, or repeats a parameter.
    #[error("the OIDC callback {0}")]
    InvalidCallback(String),
    /// The callback names another issuer than the configured one (RFC 9207; a mix-up attack).
    #[error("the OIDC callback comes from the issuer `{found}`, expected `{expected}`")]
    CallbackIssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The `iss` parameter of the callback.
        found: String,
    },
    /// The token endpoint refused the code exchange.
    #[error("the OIDC provider refused the authorization code: {error}")]
    TokenRejected {
        /// The standard `error` code (`invalid_grant`, `invalid_client`, …).
        error: String,
    },
    /// The token response has no ID token.
    #[error("the OIDC provider's token response has no ID token")]
    MissingIdToken,
    /// The ID token's signature does not verify against the provider's keys.
    #[error("the ID token's signature is invalid: {0}")]
    BadSignature(String),
    /// The ID token is not addressed to this client.
    #[error("the ID token is not meant for this client: {0}")]
    WrongAudience(String),
    /// The ID token was issued by another issuer.
    #[error("the ID token comes from another issuer: {0}")]
    WrongIssuer(String),
    /// The ID token has expired, or was issued in the future.
    #[error("the ID token is not valid now: {0}")]
    Expired(String),
    /// The ID token's nonce is missing or belongs to another login (a replayed token).
    #[error("the ID token's nonce does not match this login: {0}")]
    NonceMismatch(String),
    /// The ID token fails another check.
    #[error("the ID token is invalid: {0}")]
    InvalidIdToken(String),
    /// The ID token's `at_hash` does not match the access token issued with it.
    #[error("the ID token's at_hash does not match the access token")]
    AccessTokenHashMismatch,
    /// The userinfo endpoint failed.
    #[error("the OIDC provider's userinfo endpoint failed: {0}")]
    UserInfo(String),
    /// A role or group claim has the wrong type.
    #[error("the claim `{claim}` must be a string or an array of strings")]
    ClaimType {
        /// The configured claim name.
        claim: String,
    },
    /// No claim value maps to a role, and no default role is configured.
    #[error("user `{username}` (subject `{subject}`) has no Patchdeck role: none of their `{claim}` values is mapped")]
    NoRole {
        /// The user's subject.
        subject: String,
        /// The username derived from the claims.
        username: String,
        /// The role claim that was read.
        claim: String,
    },
}

impl OidcError {
    /// Whether the error is the user's or the browser's (an expired or crossed login, a denied
    /// consent, no role) rather than a configuration or provider problem; the web layer may show
    /// it to the user and offer to sign in again.
    pub fn is_user_facing(&self) -> bool {
        matches!(
            self,
            OidcError::LoginExpired { .. }
                | OidcError::StateMismatch
                | OidcError::AuthorizationDenied { .. }
                | OidcError::InvalidCallback(_)
                | OidcError::NoRole { .. }
        )
    }
}
