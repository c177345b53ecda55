//! OpenID Connect single sign-on for the Patchdeck manager: the relying-party side of the
//! authorization code flow with PKCE, on top of the [`openidconnect`] crate.
//!
//! This crate knows nothing of HTTP servers, cookies or SQL. The manager's web layer calls it in
//! three places:
//!
//! 1. **At start-up or when the settings change**: [`OidcClient::discover`] with the
//!    [`OidcSettings`] (a JSON setting), the [`ClientSecret`] (stored apart, encrypted) and a
//!    `reqwest` client from [`http_client_builder`]. It fetches
//!    `<issuer>/.well-known/openid-configuration` and the provider's JWKS.
//! 2. **"Sign in with SSO"**: [`OidcClient::begin`] returns the authorization URL to redirect the
//!    browser to and a [`PendingLogin`] that the manager keeps server-side (keyed by its
//!    [`state`](PendingLogin::state)) or in an encrypted cookie.
//! 3. **The callback**: the browser comes back to `redirect_url?code=…&state=…`; the manager
//!    looks up the pending login, removes it (it is single-use), and calls
//!    [`OidcClient::complete_callback`] (or [`OidcClient::complete`] with the state and code),
//!    which returns the [`Identity`] with its [`MappedRole`] and groups, or an [`OidcError`].
//!
//! # Security checks
//!
//! - **Discovery**: the issuer in the document must equal the configured issuer *exactly*
//!   (OIDC Discovery §4.3); the issuer and every endpoint must be `https://` unless the
//!   test-only `allow_insecure_http` is set; the provider must support the `code` response type,
//!   PKCE S256 (when it lists its methods), `client_secret_basic` or `client_secret_post`, and an
//!   asymmetric ID-token algorithm. HMAC and `none` signatures are never accepted.
//! - **Authorization request**: fresh random `state` (CSRF), `nonce` (token replay) and PKCE
//!   verifier (code interception), the challenge sent as S256.
//! - **Callback**: the login must be younger than `login_timeout_secs`; the returned state is
//!   compared with the pending one in constant time; an RFC 9207 `iss` parameter must name the
//!   issuer; the code is exchanged at the token endpoint with the verifier and the client
//!   secret.
//! - **ID token**: signature against the provider's JWKS (fetched again once if the key ID is
//!   unknown, which follows key rotation), `iss`, `aud` (this client only), `exp` and `iat`
//!   against the injected clock, `nonce`, and `at_hash` when present.
//! - **Roles**: the highest role any value of the role claim grants; a user granted none gets
//!   `default_role`, or is refused when it is `None`.
//!
//! No token is ever put in a URL: only `code` and `state` travel in the redirect, as the
//! protocol requires. Errors never carry codes, tokens, nonces, verifiers or the secret, and
//! the `Debug` output of every type holding one redacts it.

#![warn(missing_docs)]

mod claims;
mod client;
mod error;
mod pending;
mod settings;

pub use client::{http_client_builder, Identity, OidcClient};
pub use error::{OidcError, TransportError};
pub use pending::{CallbackParams, PendingLogin};
pub use settings::{ClientSecret, MappedRole, OidcSettings, RoleMap};
