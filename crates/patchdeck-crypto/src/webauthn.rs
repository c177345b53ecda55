//! Passkeys: a WebAuthn (Level 2/3) Relying Party, in pure Rust.
//!
//! A ceremony has two halves. `start_*` makes the options the browser passes to
//! `navigator.credentials.create()` / `.get()` (serialised as the WebAuthn Level 3 JSON forms,
//! binary fields as unpadded base64url, so `PublicKeyCredential.parseCreationOptionsFromJSON()`
//! and `parseRequestOptionsFromJSON()` read them as they are) and a state that the server keeps on
//! its side (never in the browser) until the answer comes. `finish_*` checks the browser's answer
//! (`PublicKeyCredential.toJSON()`) against that state.
//!
//! What is supported, and why:
//!
//! - **Algorithms**: ES256 (COSE -7, ECDSA P-256 with SHA-256, signatures DER-encoded as WebAuthn
//!   specifies) and EdDSA (COSE -8, Ed25519 only, raw 64-byte signatures checked with
//!   `verify_strict`). Every other key type or algorithm (RS256, ES384, Ed448, …) is refused with
//!   [`WebauthnError::UnsupportedAlgorithm`] naming it. ES256 signatures with a high `s` are
//!   accepted: authenticators are not required to normalise them.
//! - **Attestation**: the server asks for `"none"`: it does not decide which authenticator models
//!   are allowed, so an attestation statement would be of no use. Accepted formats are `"none"`
//!   (the statement must be the empty map) and `"packed"` **self attestation** (no `x5c`), which
//!   browsers may pass through unchanged even when `"none"` was asked for; its signature is
//!   verified with the new credential's own key and its `alg` must be the key's algorithm. Every
//!   other format, and `"packed"` with a certificate chain, is refused with
//!   [`WebauthnError::UnsupportedAttestation`] rather than accepted unverified.
//! - **User verification** is asked for as `"preferred"`; whether it happened is reported
//!   (`user_verified`) for the caller to act on, user presence is always required.
//! - **Sign counter**: when the stored and the received counter are both 0 the authenticator has
//!   no counter (most synced passkeys); otherwise the received one must be greater, or the
//!   ceremony fails with [`WebauthnError::SignCountRegression`], a sign of a cloned authenticator.
//! - **Origins** are compared as exact strings with the configured list (see [`RelyingParty`]);
//!   cross-origin iframes (`crossOrigin: true` or a `topOrigin`) are refused.
//! - **Limits**: every binary field has a size limit before it is decoded; CBOR is parsed with a
//!   nesting limit of [`MAX_CBOR_DEPTH`]; authenticator data is parsed by hand with bounds checks.
//!   No input makes these functions panic.
//!
//! The caller's part: store the state between start and finish and use it once (delete it when
//! `finish_*` is called, whatever the outcome); check that a new credential id is not registered
//! to anybody yet; look the stored credential up by [`AuthenticationResponse::credential_id`];
//! store [`AuthenticationResult::new_sign_count`] after a successful authentication.

use std::fmt;

use ciborium::Value;
use data_encoding::BASE64URL_NOPAD;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::RandomError;

/// Default time a ceremony may take between `start_*` and `finish_*`.
pub const DEFAULT_CEREMONY_LIFETIME: SignedDuration = SignedDuration::from_mins(5);
/// Length of a generated challenge in bytes.
pub const CHALLENGE_LEN: usize = 32;
/// Longest credential id accepted (WebAuthn Level 3, §7.1 step 17 and §6.1).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;
/// Longest user handle (`user.id`) WebAuthn allows.
pub const MAX_USER_HANDLE_LEN: usize = 64;
/// Longest `clientDataJSON` accepted, in bytes after decoding.
pub const MAX_CLIENT_DATA_LEN: usize = 16 * 1024;
/// Longest `attestationObject` accepted, in bytes after decoding.
pub const MAX_ATTESTATION_OBJECT_LEN: usize = 64 * 1024;
/// Longest `authenticatorData` of an assertion accepted, in bytes after decoding.
pub const MAX_AUTHENTICATOR_DATA_LEN: usize = 16 * 1024;
/// Longest assertion signature accepted, in bytes after decoding (DER ES256 needs at most 72).
pub const MAX_SIGNATURE_LEN: usize = 256;
/// Deepest CBOR nesting accepted; WebAuthn structures need 4.
pub const MAX_CBOR_DEPTH: usize = 16;

/// The only `type` of a public key credential.
const PUBLIC_KEY: &str = "public-key";
/// Most entries a COSE key or an attestation (statement) map may have.
const MAX_MAP_ENTRIES: usize = 16;

/// Authenticator data flag: user present.
const FLAG_UP: u8 = 0x01;
/// Authenticator data flag: user verified.
const FLAG_UV: u8 = 0x04;
/// Authenticator data flag: backup eligible.
const FLAG_BE: u8 = 0x08;
/// Authenticator data flag: backed up.
const FLAG_BS: u8 = 0x10;
/// Authenticator data flag: attested credential data included.
const FLAG_AT: u8 = 0x40;
/// Authenticator data flag: extension data included.
const FLAG_ED: u8 = 0x80;

/// What went wrong in a WebAuthn ceremony. Messages name what was wrong, never a key or a
/// challenge; text taken from the client is quoted and cut to 100 characters.
#[derive(Debug, thiserror::Error)]
pub enum WebauthnError {
    /// The [`RelyingParty`] configuration is not usable.
    #[error("invalid WebAuthn relying party configuration: {0}")]
    InvalidConfig(String),
    /// A ceremony lifetime that is zero, negative or beyond the timestamp range.
    #[error("invalid WebAuthn ceremony lifetime {0}")]
    InvalidLifetime(SignedDuration),
    /// A user handle that is empty or longer than 64 bytes.
    #[error("a WebAuthn user handle must have 1 to 64 bytes, this one has {0}")]
    InvalidUserHandle(usize),
    /// The response is not well-formed: bad base64url, JSON, CBOR or authenticator data, a
    /// missing field or one over its size limit.
    #[error("malformed WebAuthn response: {0}")]
    Malformed(String),
    /// The ceremony's lifetime is over.
    #[error("the WebAuthn ceremony expired at {expires_at} (now {now})")]
    Expired {
        /// When it expired.
        expires_at: Timestamp,
        /// The time it was checked at.
        now: Timestamp,
    },
    /// `clientDataJSON.type` is not the one of this ceremony.
    #[error("client data type is {found}, expected {expected:?}")]
    WrongCeremonyType {
        /// `"webauthn.create"` or `"webauthn.get"`.
        expected: &'static str,
        /// What the client sent, quoted.
        found: String,
    },
    /// The response answers another challenge than this ceremony's.
    #[error("the response does not answer this ceremony's challenge")]
    ChallengeMismatch,
    /// The page that ran the ceremony is not one of the configured origins.
    #[error("origin {0} is not an allowed origin of this relying party")]
    OriginNotAllowed(String),
    /// The ceremony ran in a cross-origin iframe.
    #[error("the ceremony ran in a cross-origin frame, which is not allowed")]
    CrossOrigin,
    /// The authenticator data is for another relying party id.
    #[error("the authenticator data is for another relying party id (rpIdHash does not match)")]
    RpIdHashMismatch,
    /// The user-present flag is not set.
    #[error("the authenticator did not confirm user presence (UP flag not set)")]
    UserNotPresent,
    /// The credential public key is of a type or algorithm this relying party does not support.
    #[error("unsupported credential public key: {0}; supported are ES256 (-7) on P-256 and EdDSA (-8) on Ed25519")]
    UnsupportedAlgorithm(String),
    /// The credential public key is of a supported type but not a valid key.
    #[error("invalid credential public key: {0}")]
    InvalidPublicKey(String),
    /// The attestation format or kind is not one this relying party accepts.
    #[error("unsupported attestation: {0}")]
    UnsupportedAttestation(String),
    /// The attestation statement is malformed or its signature does not match.
    #[error("invalid attestation statement: {0}")]
    InvalidAttestation(String),
    /// The new credential is one the ceremony excluded (already registered).
    #[error("this credential is already registered")]
    CredentialExcluded,
    /// The credential is not in the ceremony's allow list.
    #[error("the credential is not one this ceremony allowed")]
    CredentialNotAllowed,
    /// The response's credential is not the stored credential it was checked against.
    #[error("the response's credential is not the stored credential")]
    CredentialMismatch,
    /// The response names a user handle other than the stored credential's owner.
    #[error("the response's user handle is not the owner of the credential")]
    UserHandleMismatch,
    /// A ceremony without allow list (discoverable credential) got no user handle.
    #[error("the response carries no user handle, which a discoverable-credential login requires")]
    MissingUserHandle,
    /// The assertion signature does not match.
    #[error("the assertion signature does not match the credential public key")]
    BadSignature,
    /// The signature counter did not increase: the authenticator may have been cloned.
    #[error("signature counter went from {stored} to {received}: the authenticator may be cloned")]
    SignCountRegression {
        /// The counter stored after the last authentication.
        stored: u32,
        /// The counter in this response.
        received: u32,
    },
    /// No challenge could be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Quotes text from the client for an error message, cut to 100 characters.
fn quoted(text: &str) -> String {
    let cut: String = text.chars().take(100).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// Serde helpers: `Vec<u8>` as unpadded base64url.
mod b64url {
    use super::*;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64URL_NOPAD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        decode(&text).ok_or_else(|| serde::de::Error::custom("not unpadded base64url"))
    }

    /// Base64url with or without `=` padding, canonical trailing bits.
    pub(super) fn decode(text: &str) -> Option<Vec<u8>> {
        BASE64URL_NOPAD.decode(text.trim_end_matches('=').as_bytes()).ok()
    }
}

/// Decodes the base64url field `field` of a response, refusing more than `max` bytes.
fn decode_field(field: &str, text: &str, max: usize) -> Result<Vec<u8>, WebauthnError> {
    let trimmed = text.trim_end_matches('=');
    if trimmed.len() > (max * 4).div_ceil(3) {
        return Err(WebauthnError::Malformed(format!("{field} is longer than {max} bytes")));
    }
    BASE64URL_NOPAD
        .decode(trimmed.as_bytes())
        .map_err(|_| WebauthnError::Malformed(format!("{field} is not base64url")))
}

/// Who the server is to WebAuthn: the relying party id keys are bound to, and the exact web
/// origins ceremonies may run on.
///
/// `origins` are compared as exact strings with what the browser reports, which is
/// `scheme://host` plus `:port` only when the port is not the scheme's default:
/// `"https://patchdeck.example.com"`, `"https://patchdeck.example.com:8443"`. Build it with
/// [`RelyingParty::new`] (or call [`RelyingParty::validate`] after loading it) to have these rules
/// checked once at start; every ceremony function checks them again and refuses a bad
/// configuration with [`WebauthnError::InvalidConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelyingParty {
    /// The relying party id: a lower-case domain such as `"patchdeck.example.com"`, no scheme or
    /// port. Credentials are bound to it: changing it makes every registered passkey useless.
    pub id: String,
    /// Name shown by the browser and authenticator, such as `"Patchdeck"`.
    pub name: String,
    /// Allowed origins, e.g. `"https://patchdeck.example.com:8443"`. Each must be `https` (or
    /// `http` on `localhost`), and its host must be `id` or a subdomain of it.
    pub origins: Vec<String>,
}

impl RelyingParty {
    /// A relying party after checking the rules described on [`RelyingParty`].
    pub fn new(id: impl Into<String>, name: impl Into<String>, origins: Vec<String>) -> Result<Self, WebauthnError> {
        let rp = Self { id: id.into(), name: name.into(), origins };
        rp.validate()?;
        Ok(rp)
    }

    /// Checks the rules described on [`RelyingParty`].
    pub fn validate(&self) -> Result<(), WebauthnError> {
        let bad = |message: String| Err(WebauthnError::InvalidConfig(message));
        if !is_domain(&self.id) {
            return bad(format!("relying party id {} is not a lower-case domain name", quoted(&self.id)));
        }
        if self.name.trim().is_empty() {
            return bad("relying party name is empty".into());
        }
        if self.origins.is_empty() {
            return bad("no origin is configured".into());
        }
        for origin in &self.origins {
            check_origin(origin, &self.id).map_err(|why| {
                WebauthnError::InvalidConfig(format!("origin {} is not usable: {why}", quoted(origin)))
            })?;
        }
        Ok(())
    }
}

/// A lower-case DNS name of letters, digits and hyphens (no IP addresses, which browsers do not
/// allow as relying party ids).
fn is_domain(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
        && !text.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks one configured origin against the rules described on [`RelyingParty`].
fn check_origin(origin: &str, rp_id: &str) -> Result<(), String> {
    let (scheme, authority) = origin.split_once("://").ok_or("it has no scheme")?;
    if authority.contains(['/', '?', '#', '@']) {
        return Err("an origin is scheme://host[:port] without path, query or user".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if !is_domain(host) {
        return Err("the host is not a lower-case domain name".into());
    }
    if host != rp_id && !host.ends_with(&format!(".{rp_id}")) {
        return Err(format!("the host is neither the relying party id {rp_id:?} nor a subdomain of it"));
    }
    let default_port = match scheme {
        "https" => "443",
        "http" if host == "localhost" || host.ends_with(".localhost") => "80",
        "http" => return Err("plain http is only allowed on localhost".into()),
        _ => return Err("the scheme must be https".into()),
    };
    if let Some(port) = port {
        if port == default_port {
            return Err(format!("browsers leave out the default port {default_port}: remove it"));
        }
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && !port.starts_with('0')
            && port.parse::<u16>().is_ok();
        if !valid {
            return Err("the port is not a number from 1 to 65535".into());
        }
    }
    Ok(())
}

/// A credential id, as the authenticator chose it: 1 to 1023 bytes. Serialised as unpadded
/// base64url, the form the browser uses.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CredentialId(Vec<u8>);

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({})", self.to_base64url())
    }
}

impl CredentialId {
    /// A credential id from its bytes; refuses an empty id or one over 1023 bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, WebauthnError> {
        if bytes.is_empty() || bytes.len() > MAX_CREDENTIAL_ID_LEN {
            return Err(WebauthnError::Malformed(format!(
                "a credential id has 1 to {MAX_CREDENTIAL_ID_LEN} bytes, this one has {}",
                bytes.len()
            )));
        }
        Ok(Self(bytes))
    }

    /// A credential id from base64url (padding optional).
    pub fn from_base64url(text: &str) -> Result<Self, WebauthnError> {
        Self::from_bytes(decode_field("credential id", text, MAX_CREDENTIAL_ID_LEN)?)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unpadded base64url, as the browser shows it in `id`.
    pub fn to_base64url(&self) -> String {
        BASE64URL_NOPAD.encode(&self.0)
    }
}

impl Serialize for CredentialId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for CredentialId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64url(&text).map_err(serde::de::Error::custom)
    }
}

/// The signature algorithms this relying party supports, with their COSE identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CoseAlgorithm {
    /// ECDSA on P-256 with SHA-256 (COSE -7).
    #[serde(rename = "ES256")]
    Es256,
    /// EdDSA, here always Ed25519 (COSE -8).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl CoseAlgorithm {
    /// The COSE algorithm identifier (-7 or -8).
    pub fn cose_id(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::EdDsa => -8,
        }
    }
}

/// `rp` of [`CreationOptions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpEntity {
    /// The relying party id.
    pub id: String,
    /// Name shown to the user.
    pub name: String,
}

/// `user` of [`CreationOptions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserEntity {
    /// The user handle, base64url: opaque bytes, never personal data.
    #[serde(with = "b64url")]
    pub id: Vec<u8>,
    /// The account name (`"alice"`).
    pub name: String,
    /// The name to show (`"Alice Smith"`).
    pub display_name: String,
}

/// One entry of `pubKeyCredParams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubKeyCredParam {
    /// Always `"public-key"`.
    #[serde(rename = "type")]
    pub type_: String,
    /// COSE algorithm identifier.
    pub alg: i64,
}

/// An entry of `excludeCredentials` or `allowCredentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialDescriptor {
    /// Always `"public-key"`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The credential id, base64url.
    pub id: CredentialId,
}

impl CredentialDescriptor {
    fn new(id: &CredentialId) -> Self {
        Self { type_: PUBLIC_KEY.into(), id: id.clone() }
    }
}

/// `authenticatorSelection` of [`CreationOptions`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorSelection {
    /// `"preferred"`: a discoverable credential (passkey) if the authenticator can make one.
    pub resident_key: String,
    /// `false`, the Level 1 spelling of the above.
    pub require_resident_key: bool,
    /// `"preferred"`.
    pub user_verification: String,
}

/// What the browser passes to `navigator.credentials.create({ publicKey })`, in the WebAuthn
/// Level 3 `PublicKeyCredentialCreationOptionsJSON` form (binary fields in base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationOptions {
    /// The relying party.
    pub rp: RpEntity,
    /// The user the credential is for.
    pub user: UserEntity,
    /// The random challenge, base64url.
    #[serde(with = "b64url")]
    pub challenge: Vec<u8>,
    /// ES256 then EdDSA.
    pub pub_key_cred_params: Vec<PubKeyCredParam>,
    /// The ceremony lifetime in milliseconds.
    pub timeout: u64,
    /// Credentials the user already has, so an authenticator does not register twice.
    pub exclude_credentials: Vec<CredentialDescriptor>,
    /// Passkey preferences.
    pub authenticator_selection: AuthenticatorSelection,
    /// Always `"none"`.
    pub attestation: String,
}

/// What the browser passes to `navigator.credentials.get({ publicKey })`, in the WebAuthn
/// Level 3 `PublicKeyCredentialRequestOptionsJSON` form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestOptions {
    /// The random challenge, base64url.
    #[serde(with = "b64url")]
    pub challenge: Vec<u8>,
    /// The ceremony lifetime in milliseconds.
    pub timeout: u64,
    /// The relying party id.
    pub rp_id: String,
    /// Credentials that may answer; empty lets the user pick any passkey for this site.
    pub allow_credentials: Vec<CredentialDescriptor>,
    /// `"preferred"`.
    pub user_verification: String,
}

/// What the server keeps between [`start_registration`] and [`finish_registration`]. Keep it
/// server-side (it must not come back from the browser) and use it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationState {
    #[serde(with = "b64url")]
    challenge: Vec<u8>,
    #[serde(with = "b64url")]
    user_handle: Vec<u8>,
    exclude: Vec<CredentialId>,
    expires_at: Timestamp,
}

impl RegistrationState {
    /// The user handle the credential is being registered for.
    pub fn user_handle(&self) -> &[u8] {
        &self.user_handle
    }

    /// When the ceremony expires.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

/// What the server keeps between [`start_authentication`] and [`finish_authentication`]. Keep it
/// server-side and use it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticationState {
    #[serde(with = "b64url")]
    challenge: Vec<u8>,
    allow: Vec<CredentialId>,
    expires_at: Timestamp,
}

impl AuthenticationState {
    /// The credentials allowed to answer; empty for a discoverable-credential login.
    pub fn allowed(&self) -> &[CredentialId] {
        &self.allow
    }

    /// When the ceremony expires.
    pub fn expires_at(&self) -> Timestamp {
        self.expires_at
    }
}

/// `response` of a [`RegistrationResponse`]. Other members the browser adds (`transports`,
/// `publicKey`, …) are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationResponse {
    /// `clientDataJSON`, base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// `attestationObject`, base64url.
    #[serde(rename = "attestationObject")]
    pub attestation_object: String,
}

/// The browser's answer to `navigator.credentials.create()`, as `PublicKeyCredential.toJSON()`
/// (WebAuthn Level 3 `RegistrationResponseJSON`) gives it. Unknown members are ignored; fields
/// are decoded and checked by [`finish_registration`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResponse {
    /// The credential id, base64url.
    pub id: String,
    /// The credential id again, base64url.
    pub raw_id: String,
    /// `"public-key"`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The authenticator's answer.
    pub response: AttestationResponse,
}

impl RegistrationResponse {
    /// The credential id, after checking that `id` and `rawId` agree.
    pub fn credential_id(&self) -> Result<CredentialId, WebauthnError> {
        credential_id_of(&self.id, &self.raw_id, &self.type_)
    }
}

/// `response` of an [`AuthenticationResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssertionResponse {
    /// `clientDataJSON`, base64url.
    #[serde(rename = "clientDataJSON")]
    pub client_data_json: String,
    /// `authenticatorData`, base64url.
    pub authenticator_data: String,
    /// The signature, base64url.
    pub signature: String,
    /// The user handle of the credential's owner, base64url; absent or `null` when the
    /// authenticator does not return it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_handle: Option<String>,
}

/// The browser's answer to `navigator.credentials.get()`, as `PublicKeyCredential.toJSON()`
/// (WebAuthn Level 3 `AuthenticationResponseJSON`) gives it. Unknown members are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationResponse {
    /// The credential id, base64url.
    pub id: String,
    /// The credential id again, base64url.
    pub raw_id: String,
    /// `"public-key"`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The authenticator's answer.
    pub response: AssertionResponse,
}

impl AuthenticationResponse {
    /// The credential id, after checking that `id` and `rawId` agree: the key to look up the
    /// [`StoredCredential`] with.
    pub fn credential_id(&self) -> Result<CredentialId, WebauthnError> {
        credential_id_of(&self.id, &self.raw_id, &self.type_)
    }

    /// The user handle the authenticator returned, if any (an empty string counts as none).
    pub fn user_handle(&self) -> Result<Option<Vec<u8>>, WebauthnError> {
        match self.response.user_handle.as_deref() {
            None | Some("") => Ok(None),
            Some(text) => Ok(Some(decode_field("response.userHandle", text, MAX_USER_HANDLE_LEN)?)),
        }
    }
}

fn credential_id_of(id: &str, raw_id: &str, type_: &str) -> Result<CredentialId, WebauthnError> {
    if type_ != PUBLIC_KEY {
        return Err(WebauthnError::Malformed(format!("credential type is {}, expected \"public-key\"", quoted(type_))));
    }
    let raw = CredentialId::from_base64url(raw_id)?;
    let named = CredentialId::from_base64url(id)?;
    if raw != named {
        return Err(WebauthnError::Malformed("id and rawId name different credentials".into()));
    }
    Ok(raw)
}

/// A credential that [`finish_registration`] accepted: what the server stores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCredential {
    /// The credential id; unique across all users (the caller checks).
    pub credential_id: CredentialId,
    /// The credential public key as the authenticator encoded it (a COSE_Key in CBOR).
    #[serde(with = "b64url")]
    pub public_key_cose: Vec<u8>,
    /// Its algorithm.
    pub algorithm: CoseAlgorithm,
    /// The signature counter at registration (0 for authenticators without a counter).
    pub sign_count: u32,
    /// The authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
    /// The credential may be synced to other devices (a multi-device passkey).
    pub backup_eligible: bool,
    /// The credential is backed up now.
    pub backed_up: bool,
    /// The authenticator model id (all zeros when the browser hides it).
    pub aaguid: [u8; 16],
}

/// A registered credential as the server stored it, to check an authentication against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    /// The credential id.
    pub credential_id: CredentialId,
    /// The user handle of the credential's owner (the `user.id` it was registered with).
    #[serde(with = "b64url")]
    pub user_handle: Vec<u8>,
    /// [`NewCredential::public_key_cose`].
    #[serde(with = "b64url")]
    pub public_key_cose: Vec<u8>,
    /// The counter stored after the last successful ceremony.
    pub sign_count: u32,
}

/// A successful authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthenticationResult {
    /// The counter to store in place of [`StoredCredential::sign_count`].
    pub new_sign_count: u32,
    /// The authenticator verified the user (PIN, biometrics).
    pub user_verified: bool,
    /// The credential may be synced to other devices.
    pub backup_eligible: bool,
    /// The credential is backed up now.
    pub backed_up: bool,
}

/// Starts registering a new credential for the user with handle `user_handle` (1 to 64 random
/// bytes that identify the account, never personal data). `exclude` lists the user's existing
/// credentials. The ceremony expires `lifetime` after `now` (see [`DEFAULT_CEREMONY_LIFETIME`]).
pub fn start_registration(
    rp: &RelyingParty,
    user_handle: &[u8],
    username: &str,
    display_name: &str,
    exclude: &[CredentialId],
    now: Timestamp,
    lifetime: SignedDuration,
) -> Result<(CreationOptions, RegistrationState), WebauthnError> {
    rp.validate()?;
    if user_handle.is_empty() || user_handle.len() > MAX_USER_HANDLE_LEN {
        return Err(WebauthnError::InvalidUserHandle(user_handle.len()));
    }
    let (expires_at, timeout) = expiry(now, lifetime)?;
    let challenge = crate::random_bytes::<CHALLENGE_LEN>()?.to_vec();
    let options = CreationOptions {
        rp: RpEntity { id: rp.id.clone(), name: rp.name.clone() },
        user: UserEntity { id: user_handle.to_vec(), name: username.into(), display_name: display_name.into() },
        challenge: challenge.clone(),
        pub_key_cred_params: [CoseAlgorithm::Es256, CoseAlgorithm::EdDsa]
            .into_iter()
            .map(|alg| PubKeyCredParam { type_: PUBLIC_KEY.into(), alg: alg.cose_id() })
            .collect(),
        timeout,
        exclude_credentials: exclude.iter().map(CredentialDescriptor::new).collect(),
        authenticator_selection: AuthenticatorSelection {
            resident_key: "preferred".into(),
            require_resident_key: false,
            user_verification: "preferred".into(),
        },
        attestation: "none".into(),
    };
    let state =
        RegistrationState { challenge, user_handle: user_handle.to_vec(), exclude: exclude.to_vec(), expires_at };
    Ok((options, state))
}

/// Starts an authentication. `allow` lists the credentials that may answer (those of the user
/// who typed their name); empty allows any passkey of this site (the user is then known from
/// the response's credential id and user handle).
pub fn start_authentication(
    rp: &RelyingParty,
    allow: &[CredentialId],
    now: Timestamp,
    lifetime: SignedDuration,
) -> Result<(RequestOptions, AuthenticationState), WebauthnError> {
    rp.validate()?;
    let (expires_at, timeout) = expiry(now, lifetime)?;
    let challenge = crate::random_bytes::<CHALLENGE_LEN>()?.to_vec();
    let options = RequestOptions {
        challenge: challenge.clone(),
        timeout,
        rp_id: rp.id.clone(),
        allow_credentials: allow.iter().map(CredentialDescriptor::new).collect(),
        user_verification: "preferred".into(),
    };
    Ok((options, AuthenticationState { challenge, allow: allow.to_vec(), expires_at }))
}

/// The expiry and the `timeout` in milliseconds for a ceremony of `lifetime` started at `now`.
fn expiry(now: Timestamp, lifetime: SignedDuration) -> Result<(Timestamp, u64), WebauthnError> {
    if lifetime <= SignedDuration::ZERO {
        return Err(WebauthnError::InvalidLifetime(lifetime));
    }
    let expires_at = now.checked_add(lifetime).map_err(|_| WebauthnError::InvalidLifetime(lifetime))?;
    let timeout = u64::try_from(lifetime.as_millis()).map_err(|_| WebauthnError::InvalidLifetime(lifetime))?;
    Ok((expires_at, timeout))
}

fn check_not_expired(expires_at: Timestamp, now: Timestamp) -> Result<(), WebauthnError> {
    if now >= expires_at {
        return Err(WebauthnError::Expired { expires_at, now });
    }
    Ok(())
}

/// Checks the browser's answer to a registration and returns the credential to store.
///
/// Checks, in order: expiry; credential type and id; `clientDataJSON` (type `webauthn.create`,
/// challenge, origin, not cross-origin); the attestation object and authenticator data (rpIdHash,
/// UP and AT flags, backup flags, a supported COSE key, credential id ≤ 1023 bytes and equal to
/// `rawId`); the attestation statement (`none`, or `packed` self attestation); and that the
/// credential is not in the ceremony's exclude list.
pub fn finish_registration(
    rp: &RelyingParty,
    state: &RegistrationState,
    response: &RegistrationResponse,
    now: Timestamp,
) -> Result<NewCredential, WebauthnError> {
    rp.validate()?;
    check_not_expired(state.expires_at, now)?;
    let credential_id = response.credential_id()?;
    let client_data_json =
        decode_field("response.clientDataJSON", &response.response.client_data_json, MAX_CLIENT_DATA_LEN)?;
    check_client_data(rp, &client_data_json, "webauthn.create", &state.challenge)?;
    let attestation_object =
        decode_field("response.attestationObject", &response.response.attestation_object, MAX_ATTESTATION_OBJECT_LEN)?;
    let attestation = parse_attestation_object(&attestation_object)?;
    let auth_data = parse_authenticator_data(&attestation.auth_data)?;
    check_authenticator_data(rp, &auth_data)?;
    let Some(attested) = auth_data.attested else {
        return Err(WebauthnError::Malformed("authenticator data has no attested credential data (AT flag)".into()));
    };
    if attested.credential_id != credential_id.as_bytes() {
        return Err(WebauthnError::Malformed("rawId is not the credential id in the authenticator data".into()));
    }
    let client_data_hash: [u8; 32] = Sha256::digest(&client_data_json).into();
    verify_attestation_statement(&attestation, &attested.public_key, &client_data_hash)?;
    if state.exclude.contains(&credential_id) {
        return Err(WebauthnError::CredentialExcluded);
    }
    Ok(NewCredential {
        credential_id,
        public_key_cose: attested.public_key_cose,
        algorithm: attested.public_key.algorithm(),
        sign_count: auth_data.sign_count,
        user_verified: auth_data.flags & FLAG_UV != 0,
        backup_eligible: auth_data.flags & FLAG_BE != 0,
        backed_up: auth_data.flags & FLAG_BS != 0,
        aaguid: attested.aaguid,
    })
}

/// Checks the browser's answer to an authentication against the credential the server stored
/// under [`AuthenticationResponse::credential_id`].
///
/// Checks, in order: expiry; credential type and id (in the allow list if there is one, and the
/// stored one); the user handle (when present it must be the stored owner's; required when the
/// allow list was empty); `clientDataJSON` (type `webauthn.get`, challenge, origin, not
/// cross-origin); authenticator data (rpIdHash, UP flag, no attested credential data, backup
/// flags); the signature over `authenticatorData || SHA-256(clientDataJSON)`; the sign counter.
pub fn finish_authentication(
    rp: &RelyingParty,
    state: &AuthenticationState,
    response: &AuthenticationResponse,
    stored: &StoredCredential,
    now: Timestamp,
) -> Result<AuthenticationResult, WebauthnError> {
    rp.validate()?;
    check_not_expired(state.expires_at, now)?;
    let credential_id = response.credential_id()?;
    if !state.allow.is_empty() && !state.allow.contains(&credential_id) {
        return Err(WebauthnError::CredentialNotAllowed);
    }
    if credential_id != stored.credential_id {
        return Err(WebauthnError::CredentialMismatch);
    }
    match response.user_handle()? {
        Some(handle) if handle != stored.user_handle => return Err(WebauthnError::UserHandleMismatch),
        Some(_) => {}
        None if state.allow.is_empty() => return Err(WebauthnError::MissingUserHandle),
        None => {}
    }
    let client_data_json =
        decode_field("response.clientDataJSON", &response.response.client_data_json, MAX_CLIENT_DATA_LEN)?;
    check_client_data(rp, &client_data_json, "webauthn.get", &state.challenge)?;
    let authenticator_data =
        decode_field("response.authenticatorData", &response.response.authenticator_data, MAX_AUTHENTICATOR_DATA_LEN)?;
    let auth_data = parse_authenticator_data(&authenticator_data)?;
    check_authenticator_data(rp, &auth_data)?;
    if auth_data.attested.is_some() {
        return Err(WebauthnError::Malformed("an assertion must not carry attested credential data (AT flag)".into()));
    }
    let signature = decode_field("response.signature", &response.response.signature, MAX_SIGNATURE_LEN)?;
    let public_key = parse_cose_key_bytes(&stored.public_key_cose)
        .map_err(|e| WebauthnError::InvalidPublicKey(format!("the stored credential public key is unusable: {e}")))?;
    let client_data_hash: [u8; 32] = Sha256::digest(&client_data_json).into();
    let mut message = authenticator_data;
    message.extend_from_slice(&client_data_hash);
    public_key.verify(&message, &signature)?;
    let received = auth_data.sign_count;
    if (stored.sign_count != 0 || received != 0) && received <= stored.sign_count {
        return Err(WebauthnError::SignCountRegression { stored: stored.sign_count, received });
    }
    Ok(AuthenticationResult {
        new_sign_count: received,
        user_verified: auth_data.flags & FLAG_UV != 0,
        backup_eligible: auth_data.flags & FLAG_BE != 0,
        backed_up: auth_data.flags & FLAG_BS != 0,
    })
}

/// The members of `clientDataJSON` that are checked; others (`tokenBinding`, …) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientData {
    #[serde(rename = "type")]
    type_: String,
    challenge: String,
    origin: String,
    #[serde(default)]
    cross_origin: Option<bool>,
    #[serde(default)]
    top_origin: Option<String>,
}

fn check_client_data(
    rp: &RelyingParty,
    json: &[u8],
    expected_type: &'static str,
    challenge: &[u8],
) -> Result<(), WebauthnError> {
    let client_data: ClientData = serde_json::from_slice(json)
        .map_err(|e| WebauthnError::Malformed(format!("clientDataJSON is not the expected JSON: {e}")))?;
    if client_data.type_ != expected_type {
        return Err(WebauthnError::WrongCeremonyType { expected: expected_type, found: quoted(&client_data.type_) });
    }
    let received = b64url::decode(&client_data.challenge)
        .ok_or_else(|| WebauthnError::Malformed("clientDataJSON.challenge is not base64url".into()))?;
    if !bool::from(received.as_slice().ct_eq(challenge)) {
        return Err(WebauthnError::ChallengeMismatch);
    }
    if !rp.origins.contains(&client_data.origin) {
        return Err(WebauthnError::OriginNotAllowed(quoted(&client_data.origin)));
    }
    if client_data.cross_origin == Some(true) || client_data.top_origin.is_some() {
        return Err(WebauthnError::CrossOrigin);
    }
    Ok(())
}

/// Checks what registration and authentication both require of authenticator data.
fn check_authenticator_data(rp: &RelyingParty, auth_data: &AuthenticatorData) -> Result<(), WebauthnError> {
    let expected: [u8; 32] = Sha256::digest(rp.id.as_bytes()).into();
    if auth_data.rp_id_hash != expected {
        return Err(WebauthnError::RpIdHashMismatch);
    }
    if auth_data.flags & FLAG_UP == 0 {
        return Err(WebauthnError::UserNotPresent);
    }
    if auth_data.flags & FLAG_BS != 0 && auth_data.flags & FLAG_BE == 0 {
        return Err(WebauthnError::Malformed("backed-up flag set on a credential that is not backup eligible".into()));
    }
    Ok(())
}

/// A supported credential public key.
#[derive(Debug, Clone)]
enum PublicKey {
    Es256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    fn algorithm(&self) -> CoseAlgorithm {
        match self {
            Self::Es256(_) => CoseAlgorithm::Es256,
            Self::Ed25519(_) => CoseAlgorithm::EdDsa,
        }
    }

    /// Verifies a WebAuthn signature: DER for ES256, 64 raw bytes for Ed25519.
    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), WebauthnError> {
        match self {
            Self::Es256(key) => {
                use p256::ecdsa::signature::Verifier;
                let signature = p256::ecdsa::Signature::from_der(signature).map_err(|_| WebauthnError::BadSignature)?;
                key.verify(message, &signature).map_err(|_| WebauthnError::BadSignature)
            }
            Self::Ed25519(key) => {
                let bytes: &[u8; 64] = signature.try_into().map_err(|_| WebauthnError::BadSignature)?;
                let signature = ed25519_dalek::Signature::from_bytes(bytes);
                key.verify_strict(message, &signature).map_err(|_| WebauthnError::BadSignature)
            }
        }
    }
}

/// Authenticator data (WebAuthn §6.1), parsed.
#[derive(Debug)]
struct AuthenticatorData {
    rp_id_hash: [u8; 32],
    flags: u8,
    sign_count: u32,
    attested: Option<AttestedCredential>,
}

/// Attested credential data (WebAuthn §6.5.2), parsed.
#[derive(Debug)]
struct AttestedCredential {
    aaguid: [u8; 16],
    credential_id: Vec<u8>,
    public_key_cose: Vec<u8>,
    public_key: PublicKey,
}

/// Takes the next `n` bytes of `input`, or says that `what` is cut short.
fn take<'a>(input: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], WebauthnError> {
    let Some((head, tail)) = input.split_at_checked(n) else {
        return Err(cut_short(input.len(), n, what));
    };
    *input = tail;
    Ok(head)
}

/// Takes the next `N` bytes of `input` as an array, or says that `what` is cut short.
fn take_array<const N: usize>(input: &mut &[u8], what: &str) -> Result<[u8; N], WebauthnError> {
    let Some((head, tail)) = input.split_first_chunk::<N>() else {
        return Err(cut_short(input.len(), N, what));
    };
    *input = tail;
    Ok(*head)
}

fn cut_short(left: usize, needed: usize, what: &str) -> WebauthnError {
    WebauthnError::Malformed(format!("authenticator data ends inside the {what} ({left} of {needed} bytes left)"))
}

/// Reads one CBOR item from the front of `input` and advances past it.
fn read_cbor(input: &mut &[u8], what: &str) -> Result<Value, WebauthnError> {
    ciborium::de::from_reader_with_recursion_limit(&mut *input, MAX_CBOR_DEPTH)
        .map_err(|e| WebauthnError::Malformed(format!("{what} is not valid CBOR: {e}")))
}

/// Parses authenticator data: rpIdHash (32) ‖ flags (1) ‖ signCount (4, big-endian) ‖ attested
/// credential data if AT ‖ extensions (a CBOR map) if ED, and nothing after.
fn parse_authenticator_data(bytes: &[u8]) -> Result<AuthenticatorData, WebauthnError> {
    let mut rest = bytes;
    let rp_id_hash = take_array::<32>(&mut rest, "rpIdHash")?;
    let [flags] = take_array::<1>(&mut rest, "flags")?;
    let sign_count = u32::from_be_bytes(take_array::<4>(&mut rest, "signCount")?);
    let attested = if flags & FLAG_AT != 0 {
        let aaguid = take_array::<16>(&mut rest, "AAGUID")?;
        let id_len = usize::from(u16::from_be_bytes(take_array::<2>(&mut rest, "credential id length")?));
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID_LEN {
            return Err(WebauthnError::Malformed(format!(
                "credential id has {id_len} bytes, 1 to {MAX_CREDENTIAL_ID_LEN} are allowed"
            )));
        }
        let credential_id = take(&mut rest, id_len, "credential id")?.to_vec();
        let before = rest;
        let key = read_cbor(&mut rest, "the credential public key")?;
        let public_key_cose = before[..before.len() - rest.len()].to_vec();
        let public_key = parse_cose_key(&key)?;
        Some(AttestedCredential { aaguid, credential_id, public_key_cose, public_key })
    } else {
        None
    };
    if flags & FLAG_ED != 0 {
        let extensions = read_cbor(&mut rest, "the extensions")?;
        if !matches!(extensions, Value::Map(_)) {
            return Err(WebauthnError::Malformed("authenticator extensions are not a CBOR map".into()));
        }
    }
    if !rest.is_empty() {
        return Err(WebauthnError::Malformed(format!(
            "{} unexpected bytes at the end of authenticator data",
            rest.len()
        )));
    }
    Ok(AuthenticatorData { rp_id_hash, flags, sign_count, attested })
}

fn integer(value: &Value) -> Option<i128> {
    match value {
        Value::Integer(int) => Some(i128::from(*int)),
        _ => None,
    }
}

/// The integer-labelled entries of a COSE map (text labels are skipped); refuses big maps and
/// repeated labels.
fn cose_entries(entries: &[(Value, Value)]) -> Result<Vec<(i128, &Value)>, WebauthnError> {
    if entries.len() > MAX_MAP_ENTRIES {
        return Err(WebauthnError::Malformed(format!("COSE key has {} entries", entries.len())));
    }
    let mut out: Vec<(i128, &Value)> = Vec::with_capacity(entries.len());
    for (label, value) in entries {
        match label {
            Value::Integer(int) => {
                let label = i128::from(*int);
                if out.iter().any(|(seen, _)| *seen == label) {
                    return Err(WebauthnError::Malformed(format!("COSE key label {label} appears twice")));
                }
                out.push((label, value));
            }
            Value::Text(_) => {}
            _ => return Err(WebauthnError::Malformed("COSE key label is neither an integer nor text".into())),
        }
    }
    Ok(out)
}

fn cose_get<'a>(entries: &[(i128, &'a Value)], label: i128) -> Option<&'a Value> {
    entries.iter().find(|(l, _)| *l == label).map(|(_, v)| *v)
}

/// A 32-byte coordinate of a COSE key.
fn coordinate<'a>(entries: &[(i128, &'a Value)], label: i128, name: &str) -> Result<&'a [u8; 32], WebauthnError> {
    match cose_get(entries, label) {
        Some(Value::Bytes(bytes)) => bytes
            .as_slice()
            .try_into()
            .map_err(|_| WebauthnError::InvalidPublicKey(format!("{name} has {} bytes, expected 32", bytes.len()))),
        Some(_) => Err(WebauthnError::InvalidPublicKey(format!("{name} is not a byte string"))),
        None => Err(WebauthnError::InvalidPublicKey(format!("{name} is missing"))),
    }
}

/// Names a COSE algorithm for error messages.
fn algorithm_name(alg: i128) -> String {
    let name = match alg {
        -7 => "ES256",
        -8 => "EdDSA",
        -19 => "Ed25519",
        -35 => "ES384",
        -36 => "ES512",
        -37 => "PS256",
        -38 => "PS384",
        -39 => "PS512",
        -47 => "ES256K",
        -257 => "RS256",
        -258 => "RS384",
        -259 => "RS512",
        -65535 => "RS1",
        _ => return format!("algorithm {alg}"),
    };
    format!("{name} ({alg})")
}

fn key_type_name(kty: i128) -> String {
    match kty {
        1 => "OKP (1)".into(),
        2 => "EC2 (2)".into(),
        3 => "RSA (3)".into(),
        4 => "Symmetric (4)".into(),
        _ => format!("key type {kty}"),
    }
}

/// Parses a COSE_Key in CBOR bytes, refusing anything after it.
fn parse_cose_key_bytes(bytes: &[u8]) -> Result<PublicKey, WebauthnError> {
    let mut rest = bytes;
    let value = read_cbor(&mut rest, "the credential public key")?;
    if !rest.is_empty() {
        return Err(WebauthnError::Malformed(format!("{} bytes after the COSE key", rest.len())));
    }
    parse_cose_key(&value)
}

/// Parses a COSE_Key (RFC 9052/9053): EC2 P-256 with alg -7, or OKP Ed25519 with alg -8.
fn parse_cose_key(value: &Value) -> Result<PublicKey, WebauthnError> {
    let Value::Map(entries) = value else {
        return Err(WebauthnError::Malformed("the credential public key is not a CBOR map".into()));
    };
    let entries = cose_entries(entries)?;
    let kty = cose_get(&entries, 1).and_then(integer).ok_or_else(|| {
        WebauthnError::InvalidPublicKey("key type (kty, label 1) is missing or not an integer".into())
    })?;
    let alg = cose_get(&entries, 3).and_then(integer).ok_or_else(|| {
        WebauthnError::InvalidPublicKey("algorithm (alg, label 3) is missing or not an integer".into())
    })?;
    if cose_get(&entries, -4).is_some() {
        return Err(WebauthnError::InvalidPublicKey("the COSE key contains a private key (label -4)".into()));
    }
    let curve = cose_get(&entries, -1).and_then(integer);
    match (kty, alg) {
        (2, -7) => {
            if curve != Some(1) {
                return Err(WebauthnError::UnsupportedAlgorithm(format!(
                    "ES256 (-7) on curve {}, only P-256 (1) is supported",
                    curve.map_or_else(|| "none".into(), |c| c.to_string())
                )));
            }
            let x = coordinate(&entries, -2, "x (label -2)")?;
            let y = coordinate(&entries, -3, "y (label -3)")?;
            let mut sec1 = [0u8; 65];
            sec1[0] = 0x04;
            sec1[1..33].copy_from_slice(x);
            sec1[33..].copy_from_slice(y);
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|_| WebauthnError::InvalidPublicKey("the point is not on the P-256 curve".into()))?;
            Ok(PublicKey::Es256(key))
        }
        (1, -8) => {
            if curve != Some(6) {
                return Err(WebauthnError::UnsupportedAlgorithm(format!(
                    "EdDSA (-8) on curve {}, only Ed25519 (6) is supported",
                    curve.map_or_else(|| "none".into(), |c| c.to_string())
                )));
            }
            let x = coordinate(&entries, -2, "x (label -2)")?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(x)
                .map_err(|_| WebauthnError::InvalidPublicKey("not a valid Ed25519 point".into()))?;
            if key.is_weak() {
                return Err(WebauthnError::InvalidPublicKey("a small-order Ed25519 key".into()));
            }
            Ok(PublicKey::Ed25519(key))
        }
        (kty, alg) => Err(WebauthnError::UnsupportedAlgorithm(format!(
            "{} with key type {}",
            algorithm_name(alg),
            key_type_name(kty)
        ))),
    }
}

/// An attestation object (WebAuthn §6.5), parsed: `{fmt, attStmt, authData}`.
#[derive(Debug)]
struct AttestationObject {
    fmt: String,
    statement: Vec<(Value, Value)>,
    auth_data: Vec<u8>,
}

/// The entries of a CBOR map whose keys must all be distinct text strings.
fn text_entries<'a>(entries: &'a [(Value, Value)], what: &str) -> Result<Vec<(&'a str, &'a Value)>, WebauthnError> {
    if entries.len() > MAX_MAP_ENTRIES {
        return Err(WebauthnError::Malformed(format!("{what} has {} entries", entries.len())));
    }
    let mut out: Vec<(&str, &Value)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(WebauthnError::Malformed(format!("{what} has a key that is not text")));
        };
        if out.iter().any(|(seen, _)| *seen == key.as_str()) {
            return Err(WebauthnError::Malformed(format!("{what} has the key {} twice", quoted(key))));
        }
        out.push((key.as_str(), value));
    }
    Ok(out)
}

fn parse_attestation_object(bytes: &[u8]) -> Result<AttestationObject, WebauthnError> {
    let mut rest = bytes;
    let value = read_cbor(&mut rest, "attestationObject")?;
    if !rest.is_empty() {
        return Err(WebauthnError::Malformed(format!("{} bytes after the attestation object", rest.len())));
    }
    let Value::Map(entries) = value else {
        return Err(WebauthnError::Malformed("attestationObject is not a CBOR map".into()));
    };
    let (mut fmt, mut statement, mut auth_data) = (None, None, None);
    for (key, value) in text_entries(&entries, "attestationObject")? {
        match (key, value) {
            ("fmt", Value::Text(text)) => fmt = Some(text.clone()),
            ("attStmt", Value::Map(map)) => statement = Some(map.clone()),
            ("authData", Value::Bytes(bytes)) => auth_data = Some(bytes.clone()),
            ("fmt" | "attStmt" | "authData", _) => {
                return Err(WebauthnError::Malformed(format!("attestationObject.{key} has the wrong CBOR type")))
            }
            _ => {}
        }
    }
    let missing = |key: &str| WebauthnError::Malformed(format!("attestationObject.{key} is missing"));
    Ok(AttestationObject {
        fmt: fmt.ok_or_else(|| missing("fmt"))?,
        statement: statement.ok_or_else(|| missing("attStmt"))?,
        auth_data: auth_data.ok_or_else(|| missing("authData"))?,
    })
}

/// Accepts `none` with an empty statement, and `packed` self attestation whose signature the
/// credential key made; refuses everything else.
fn verify_attestation_statement(
    attestation: &AttestationObject,
    key: &PublicKey,
    client_data_hash: &[u8; 32],
) -> Result<(), WebauthnError> {
    match attestation.fmt.as_str() {
        "none" if attestation.statement.is_empty() => Ok(()),
        "none" => Err(WebauthnError::InvalidAttestation("format \"none\" with a non-empty attStmt".into())),
        "packed" => {
            let entries = text_entries(&attestation.statement, "attStmt")?;
            let (mut alg, mut sig) = (None, None);
            for (name, value) in entries {
                match (name, value) {
                    ("alg", value) => {
                        alg = Some(integer(value).ok_or_else(|| {
                            WebauthnError::InvalidAttestation("packed attStmt.alg is not an integer".into())
                        })?)
                    }
                    ("sig", Value::Bytes(bytes)) => sig = Some(bytes),
                    ("sig", _) => {
                        return Err(WebauthnError::InvalidAttestation("packed attStmt.sig is not bytes".into()))
                    }
                    ("x5c" | "ecdaaKeyId", _) => {
                        return Err(WebauthnError::UnsupportedAttestation(
                            "\"packed\" attestation with a certificate chain is not verified; \
                             this relying party asks for attestation \"none\""
                                .into(),
                        ))
                    }
                    (other, _) => {
                        return Err(WebauthnError::InvalidAttestation(format!(
                            "packed attStmt has the unknown member {}",
                            quoted(other)
                        )))
                    }
                }
            }
            let alg = alg.ok_or_else(|| WebauthnError::InvalidAttestation("packed attStmt.alg is missing".into()))?;
            let sig = sig.ok_or_else(|| WebauthnError::InvalidAttestation("packed attStmt.sig is missing".into()))?;
            if alg != i128::from(key.algorithm().cose_id()) {
                return Err(WebauthnError::InvalidAttestation(format!(
                    "self attestation alg {} is not the credential's {}",
                    algorithm_name(alg),
                    algorithm_name(i128::from(key.algorithm().cose_id()))
                )));
            }
            let mut message = attestation.auth_data.clone();
            message.extend_from_slice(client_data_hash);
            key.verify(&message, sig)
                .map_err(|_| WebauthnError::InvalidAttestation("the self attestation signature does not match".into()))
        }
        other => Err(WebauthnError::UnsupportedAttestation(format!(
            "format {} is not accepted (only \"none\" and \"packed\" self attestation)",
            quoted(other)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::Signer;
    use proptest::prelude::*;

    use super::*;

    const RP_ID: &str = "patchdeck.example.com";
    const ORIGIN: &str = "https://patchdeck.example.com:8443";
    const CRED: &[u8] = &[0xc1; 16];
    const USER: &[u8] = b"user-0001";

    fn rp() -> RelyingParty {
        RelyingParty::new(RP_ID, "Patchdeck", vec![ORIGIN.into()]).unwrap()
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_700_000_000).unwrap()
    }

    fn b64(bytes: &[u8]) -> String {
        BASE64URL_NOPAD.encode(bytes)
    }

    fn int(value: i64) -> Value {
        Value::Integer(value.into())
    }

    fn text(value: &str) -> Value {
        Value::Text(value.into())
    }

    fn cbor(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn cose_map(entries: Vec<(i64, Value)>) -> Value {
        Value::Map(entries.into_iter().map(|(label, value)| (int(label), value)).collect())
    }

    #[derive(Clone)]
    enum TestKey {
        Es256(p256::ecdsa::SigningKey),
        Ed25519(ed25519_dalek::SigningKey),
    }

    fn es256() -> TestKey {
        TestKey::Es256(p256::ecdsa::SigningKey::from_slice(&[0x11; 32]).unwrap())
    }

    fn ed25519() -> TestKey {
        TestKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[0x22; 32]))
    }

    impl TestKey {
        fn cose_value(&self) -> Value {
            match self {
                TestKey::Es256(key) => {
                    let point = key.verifying_key().to_encoded_point(false);
                    let sec1 = point.as_bytes();
                    cose_map(vec![
                        (1, int(2)),
                        (3, int(-7)),
                        (-1, int(1)),
                        (-2, Value::Bytes(sec1[1..33].to_vec())),
                        (-3, Value::Bytes(sec1[33..].to_vec())),
                    ])
                }
                TestKey::Ed25519(key) => cose_map(vec![
                    (1, int(1)),
                    (3, int(-8)),
                    (-1, int(6)),
                    (-2, Value::Bytes(key.verifying_key().to_bytes().to_vec())),
                ]),
            }
        }

        fn cose(&self) -> Vec<u8> {
            cbor(&self.cose_value())
        }

        fn alg(&self) -> i64 {
            match self {
                TestKey::Es256(_) => -7,
                TestKey::Ed25519(_) => -8,
            }
        }

        fn sign(&self, message: &[u8]) -> Vec<u8> {
            match self {
                TestKey::Es256(key) => {
                    let signature: p256::ecdsa::Signature = key.sign(message);
                    signature.to_der().as_bytes().to_vec()
                }
                TestKey::Ed25519(key) => {
                    let signature: ed25519_dalek::Signature = key.sign(message);
                    signature.to_bytes().to_vec()
                }
            }
        }
    }

    fn auth_data(rp_id: &str, flags: u8, count: u32, attested: Option<(&[u8], &[u8])>) -> Vec<u8> {
        let mut out = Sha256::digest(rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend_from_slice(&count.to_be_bytes());
        if let Some((id, cose)) = attested {
            out.extend_from_slice(&[0xaa; 16]);
            out.extend_from_slice(&(id.len() as u16).to_be_bytes());
            out.extend_from_slice(id);
            out.extend_from_slice(cose);
        }
        out
    }

    fn client_data(type_: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
        format!(r#"{{"type":"{type_}","challenge":"{}","origin":"{origin}","crossOrigin":false}}"#, b64(challenge))
            .into_bytes()
    }

    fn attestation_object(fmt: &str, statement: Value, auth_data: &[u8]) -> Vec<u8> {
        cbor(&Value::Map(vec![
            (text("fmt"), text(fmt)),
            (text("attStmt"), statement),
            (text("authData"), Value::Bytes(auth_data.to_vec())),
        ]))
    }

    fn signed(auth_data: &[u8], client_data: &[u8]) -> Vec<u8> {
        let mut message = auth_data.to_vec();
        message.extend_from_slice(&Sha256::digest(client_data));
        message
    }

    fn start_reg(exclude: &[CredentialId]) -> RegistrationState {
        start_registration(&rp(), USER, "alice", "Alice", exclude, now(), DEFAULT_CEREMONY_LIFETIME).unwrap().1
    }

    fn reg_response(credential_id: &[u8], client_data: &[u8], attestation: &[u8]) -> RegistrationResponse {
        RegistrationResponse {
            id: b64(credential_id),
            raw_id: b64(credential_id),
            type_: "public-key".into(),
            response: AttestationResponse { client_data_json: b64(client_data), attestation_object: b64(attestation) },
        }
    }

    /// Registers `CRED` with `key`, replacing the authenticator data by `auth_data` when given.
    fn register_with_auth_data(key: &TestKey, auth: Option<Vec<u8>>) -> Result<NewCredential, WebauthnError> {
        let state = start_reg(&[]);
        let cd = client_data("webauthn.create", &state.challenge, ORIGIN);
        let ad = auth.unwrap_or_else(|| auth_data(RP_ID, FLAG_UP | FLAG_UV | FLAG_AT, 0, Some((CRED, &key.cose()))));
        finish_registration(
            &rp(),
            &state,
            &reg_response(CRED, &cd, &attestation_object("none", Value::Map(vec![]), &ad)),
            now(),
        )
    }

    /// Registers `CRED` with a COSE key given as CBOR.
    fn register_cose(cose: &[u8]) -> Result<NewCredential, WebauthnError> {
        register_with_auth_data(&es256(), Some(auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((CRED, cose)))))
    }

    /// Registers with the given client data (challenge taken from `make(challenge)`).
    fn register_with_client_data(make: impl Fn(&[u8]) -> Vec<u8>) -> Result<NewCredential, WebauthnError> {
        let state = start_reg(&[]);
        let ad = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((CRED, &es256().cose())));
        let response =
            reg_response(CRED, &make(&state.challenge), &attestation_object("none", Value::Map(vec![]), &ad));
        finish_registration(&rp(), &state, &response, now())
    }

    fn register_with_statement(
        key: &TestKey,
        fmt: &str,
        statement: impl Fn(&[u8], &[u8]) -> Value,
    ) -> Result<NewCredential, WebauthnError> {
        let state = start_reg(&[]);
        let cd = client_data("webauthn.create", &state.challenge, ORIGIN);
        let ad = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((CRED, &key.cose())));
        let response = reg_response(CRED, &cd, &attestation_object(fmt, statement(&ad, &cd), &ad));
        finish_registration(&rp(), &state, &response, now())
    }

    fn cred_id() -> CredentialId {
        CredentialId::from_bytes(CRED.to_vec()).unwrap()
    }

    fn stored(key: &TestKey, sign_count: u32) -> StoredCredential {
        StoredCredential {
            credential_id: cred_id(),
            user_handle: USER.to_vec(),
            public_key_cose: key.cose(),
            sign_count,
        }
    }

    fn start_auth(allow: &[CredentialId]) -> AuthenticationState {
        start_authentication(&rp(), allow, now(), DEFAULT_CEREMONY_LIFETIME).unwrap().1
    }

    fn assertion_response(client_data: &[u8], auth_data: &[u8], signature: &[u8]) -> AuthenticationResponse {
        AuthenticationResponse {
            id: b64(CRED),
            raw_id: b64(CRED),
            type_: "public-key".into(),
            response: AssertionResponse {
                client_data_json: b64(client_data),
                authenticator_data: b64(auth_data),
                signature: b64(signature),
                user_handle: Some(b64(USER)),
            },
        }
    }

    /// A correctly signed assertion by `key` with `flags` and `count`, for `state`.
    fn assertion(key: &TestKey, state: &AuthenticationState, flags: u8, count: u32) -> AuthenticationResponse {
        let cd = client_data("webauthn.get", &state.challenge, ORIGIN);
        let ad = auth_data(RP_ID, flags, count, None);
        assertion_response(&cd, &ad, &key.sign(&signed(&ad, &cd)))
    }

    fn authenticate(
        key: &TestKey,
        client_data: impl Fn(&[u8]) -> Vec<u8>,
        auth: Vec<u8>,
    ) -> Result<AuthenticationResult, WebauthnError> {
        let state = start_auth(&[cred_id()]);
        let cd = client_data(&state.challenge);
        let response = assertion_response(&cd, &auth, &key.sign(&signed(&auth, &cd)));
        finish_authentication(&rp(), &state, &response, &stored(key, 0), now())
    }

    fn get_client_data(challenge: &[u8]) -> Vec<u8> {
        client_data("webauthn.get", challenge, ORIGIN)
    }

    #[test]
    fn relying_party_configuration_is_checked() {
        for (id, origins) in [
            (RP_ID, vec!["https://patchdeck.example.com"]),
            (RP_ID, vec!["https://patchdeck.example.com:8443", "https://eu.patchdeck.example.com"]),
            ("example.com", vec!["https://patchdeck.example.com"]),
            ("localhost", vec!["http://localhost:8080", "https://localhost"]),
        ] {
            let origins = origins.into_iter().map(String::from).collect();
            assert!(RelyingParty::new(id, "Patchdeck", origins).is_ok(), "{id}");
        }
        for (id, name, origin) in [
            ("https://patchdeck.example.com", "Patchdeck", ORIGIN),
            ("Patchdeck.example.com", "Patchdeck", ORIGIN),
            ("patchdeck.example.com:8443", "Patchdeck", ORIGIN),
            ("192.168.1.10", "Patchdeck", "https://192.168.1.10"),
            ("", "Patchdeck", ORIGIN),
            (RP_ID, " ", ORIGIN),
            (RP_ID, "Patchdeck", "patchdeck.example.com"),
            (RP_ID, "Patchdeck", "https://patchdeck.example.com:443"),
            (RP_ID, "Patchdeck", "https://patchdeck.example.com/"),
            (RP_ID, "Patchdeck", "https://patchdeck.example.com:8443/login"),
            (RP_ID, "Patchdeck", "https://patchdeck.example.com:99999"),
            (RP_ID, "Patchdeck", "https://patchdeck.example.com:"),
            (RP_ID, "Patchdeck", "http://patchdeck.example.com"),
            (RP_ID, "Patchdeck", "ftp://patchdeck.example.com"),
            (RP_ID, "Patchdeck", "https://example.com"),
            (RP_ID, "Patchdeck", "https://evilpatchdeck.example.com"),
            (RP_ID, "Patchdeck", "https://PATCHDECK.example.com"),
        ] {
            let result = RelyingParty::new(id, name, vec![origin.into()]);
            assert!(matches!(result, Err(WebauthnError::InvalidConfig(_))), "{id} {name} {origin}");
        }
        assert!(matches!(RelyingParty::new(RP_ID, "Patchdeck", vec![]), Err(WebauthnError::InvalidConfig(_))));
        let broken =
            RelyingParty { id: RP_ID.into(), name: "Patchdeck".into(), origins: vec!["https://evil.test".into()] };
        assert!(matches!(
            start_authentication(&broken, &[], now(), DEFAULT_CEREMONY_LIFETIME),
            Err(WebauthnError::InvalidConfig(_))
        ));
    }

    #[test]
    fn creation_options_have_the_webauthn_json_shape() {
        let existing = CredentialId::from_bytes(vec![1, 2, 3]).unwrap();
        let (options, state) = start_registration(
            &rp(),
            USER,
            "alice",
            "Alice Smith",
            std::slice::from_ref(&existing),
            now(),
            DEFAULT_CEREMONY_LIFETIME,
        )
        .unwrap();
        let json = serde_json::to_value(&options).unwrap();
        let challenge = json["challenge"].as_str().unwrap().to_owned();
        assert_eq!(challenge.len(), 43, "32 bytes in unpadded base64url");
        assert_eq!(BASE64URL_NOPAD.decode(challenge.as_bytes()).unwrap(), state.challenge);
        assert_eq!(
            json,
            serde_json::json!({
                "rp": {"id": RP_ID, "name": "Patchdeck"},
                "user": {"id": b64(USER), "name": "alice", "displayName": "Alice Smith"},
                "challenge": challenge,
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -8}],
                "timeout": 300000,
                "excludeCredentials": [{"type": "public-key", "id": "AQID"}],
                "authenticatorSelection": {
                    "residentKey": "preferred",
                    "requireResidentKey": false,
                    "userVerification": "preferred",
                },
                "attestation": "none",
            })
        );
        let back: CreationOptions = serde_json::from_value(json).unwrap();
        assert_eq!(back, options);
        assert_eq!(state.user_handle(), USER);
        assert_eq!(state.expires_at(), now().checked_add(DEFAULT_CEREMONY_LIFETIME).unwrap());
        let state_json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<RegistrationState>(&state_json).unwrap(), state);
    }

    #[test]
    fn request_options_have_the_webauthn_json_shape() {
        let (options, state) = start_authentication(&rp(), &[cred_id()], now(), SignedDuration::from_secs(90)).unwrap();
        let json = serde_json::to_value(&options).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "challenge": b64(&state.challenge),
                "timeout": 90000,
                "rpId": RP_ID,
                "allowCredentials": [{"type": "public-key", "id": b64(CRED)}],
                "userVerification": "preferred",
            })
        );
        assert_eq!(state.allowed(), [cred_id()]);
        let state_json = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<AuthenticationState>(&state_json).unwrap(), state);
        let other = start_auth(&[]);
        assert_ne!(other.challenge, state.challenge, "every ceremony has a fresh challenge");
    }

    #[test]
    fn start_refuses_bad_user_handles_and_lifetimes() {
        for handle in [&[][..], &[7u8; 65][..]] {
            let result = start_registration(&rp(), handle, "a", "A", &[], now(), DEFAULT_CEREMONY_LIFETIME);
            assert!(matches!(result, Err(WebauthnError::InvalidUserHandle(n)) if n == handle.len()));
        }
        for lifetime in [SignedDuration::ZERO, SignedDuration::from_secs(-5), SignedDuration::MAX] {
            assert!(matches!(
                start_registration(&rp(), USER, "a", "A", &[], now(), lifetime),
                Err(WebauthnError::InvalidLifetime(_))
            ));
            assert!(matches!(
                start_authentication(&rp(), &[], now(), lifetime),
                Err(WebauthnError::InvalidLifetime(_))
            ));
        }
    }

    #[test]
    fn registration_accepts_well_formed_credentials() {
        for key in [es256(), ed25519()] {
            let credential = register_with_auth_data(&key, None).unwrap();
            assert_eq!(credential.credential_id, cred_id());
            assert_eq!(credential.public_key_cose, key.cose());
            assert_eq!(credential.algorithm.cose_id(), key.alg());
            assert_eq!(credential.sign_count, 0);
            assert!(credential.user_verified);
            assert!(!credential.backup_eligible && !credential.backed_up);
            assert_eq!(credential.aaguid, [0xaa; 16]);
        }
        let ad = auth_data(RP_ID, FLAG_UP | FLAG_AT | FLAG_BE | FLAG_BS, 7, Some((CRED, &es256().cose())));
        let credential = register_with_auth_data(&es256(), Some(ad)).unwrap();
        assert!(!credential.user_verified);
        assert!(credential.backup_eligible && credential.backed_up);
        assert_eq!(credential.sign_count, 7);
    }

    #[test]
    fn the_key_is_cut_exactly_before_the_extensions() {
        let key = es256();
        let mut ad = auth_data(RP_ID, FLAG_UP | FLAG_AT | FLAG_ED, 0, Some((CRED, &key.cose())));
        ad.extend_from_slice(&cbor(&Value::Map(vec![(text("credProtect"), int(2))])));
        let credential = register_with_auth_data(&key, Some(ad.clone())).unwrap();
        assert_eq!(credential.public_key_cose, key.cose());

        ad.push(0);
        let error = register_with_auth_data(&key, Some(ad)).unwrap_err();
        assert!(matches!(&error, WebauthnError::Malformed(m) if m.contains("1 unexpected bytes")), "{error}");
        let mut without_ed = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((CRED, &key.cose())));
        without_ed.extend_from_slice(&cbor(&Value::Map(vec![])));
        assert!(matches!(register_with_auth_data(&key, Some(without_ed)), Err(WebauthnError::Malformed(_))));
        let mut not_a_map = auth_data(RP_ID, FLAG_UP | FLAG_AT | FLAG_ED, 0, Some((CRED, &key.cose())));
        not_a_map.extend_from_slice(&cbor(&int(1)));
        assert!(matches!(register_with_auth_data(&key, Some(not_a_map)), Err(WebauthnError::Malformed(_))));
    }

    #[test]
    fn truncated_authenticator_data_is_an_error_at_every_length() {
        let key = es256();
        let mut full = auth_data(RP_ID, FLAG_UP | FLAG_AT | FLAG_ED, 0, Some((CRED, &key.cose())));
        full.extend_from_slice(&cbor(&Value::Map(vec![(text("x"), int(1))])));
        assert!(parse_authenticator_data(&full).is_ok());
        for len in 0..full.len() {
            let result = parse_authenticator_data(&full[..len]);
            assert!(matches!(result, Err(WebauthnError::Malformed(_))), "length {len}");
        }
        let short = auth_data(RP_ID, FLAG_UP, 1, None);
        for len in 0..short.len() {
            assert!(matches!(parse_authenticator_data(&short[..len]), Err(WebauthnError::Malformed(_))));
        }
        let error = register_with_auth_data(&key, Some(full[..36].to_vec())).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed WebAuthn response: authenticator data ends inside the signCount (3 of 4 bytes left)"
        );
    }

    #[test]
    fn a_wrong_rp_id_hash_is_refused() {
        let key = es256();
        let ad = auth_data("evil.example.com", FLAG_UP | FLAG_AT, 0, Some((CRED, &key.cose())));
        assert!(matches!(register_with_auth_data(&key, Some(ad)), Err(WebauthnError::RpIdHashMismatch)));
        let result = authenticate(&key, get_client_data, auth_data("example.com", FLAG_UP, 1, None));
        assert!(matches!(result, Err(WebauthnError::RpIdHashMismatch)));
    }

    #[test]
    fn origins_must_match_exactly() {
        for origin in [
            "https://patchdeck.example.com",
            "https://patchdeck.example.com:8443/",
            "https://patchdeck.example.com:8444",
            "http://patchdeck.example.com:8443",
            "https://evil.patchdeck.example.com:8443",
            "https://PATCHDECK.example.com:8443",
            "",
        ] {
            let result = register_with_client_data(|c| client_data("webauthn.create", c, origin));
            assert!(matches!(result, Err(WebauthnError::OriginNotAllowed(_))), "{origin}");
            let result =
                authenticate(&es256(), |c| client_data("webauthn.get", c, origin), auth_data(RP_ID, FLAG_UP, 1, None));
            assert!(matches!(result, Err(WebauthnError::OriginNotAllowed(_))), "{origin}");
        }
    }

    #[test]
    fn wrong_challenge_and_wrong_type_are_refused() {
        let result = register_with_client_data(|c| client_data("webauthn.create", &[c, &[0][..]].concat(), ORIGIN));
        assert!(matches!(result, Err(WebauthnError::ChallengeMismatch)));
        let result = register_with_client_data(|_| client_data("webauthn.create", &[0; 32], ORIGIN));
        assert!(matches!(result, Err(WebauthnError::ChallengeMismatch)));
        let result = register_with_client_data(|c| client_data("webauthn.get", c, ORIGIN));
        assert!(matches!(result, Err(WebauthnError::WrongCeremonyType { expected: "webauthn.create", .. })));
        let result =
            authenticate(&es256(), |c| client_data("webauthn.create", c, ORIGIN), auth_data(RP_ID, FLAG_UP, 1, None));
        assert!(matches!(result, Err(WebauthnError::WrongCeremonyType { expected: "webauthn.get", .. })));
        let result = register_with_client_data(|c| {
            format!(r#"{{"type":"webauthn.create","challenge":"{}=","origin":"{ORIGIN}"}}"#, b64(c)).into_bytes()
        });
        assert!(result.is_ok(), "padding and a missing crossOrigin are tolerated: {result:?}");
        let result = register_with_client_data(|_| {
            format!(r#"{{"type":"webauthn.create","challenge":"not base64!","origin":"{ORIGIN}"}}"#).into_bytes()
        });
        assert!(matches!(result, Err(WebauthnError::Malformed(_))));
    }

    #[test]
    fn cross_origin_frames_are_refused() {
        let cross = |c: &[u8]| {
            format!(r#"{{"type":"webauthn.create","challenge":"{}","origin":"{ORIGIN}","crossOrigin":true}}"#, b64(c))
                .into_bytes()
        };
        assert!(matches!(register_with_client_data(cross), Err(WebauthnError::CrossOrigin)));
        let top = |c: &[u8]| {
            format!(
                r#"{{"type":"webauthn.create","challenge":"{}","origin":"{ORIGIN}","crossOrigin":false,"topOrigin":"https://evil.test"}}"#,
                b64(c)
            )
            .into_bytes()
        };
        assert!(matches!(register_with_client_data(top), Err(WebauthnError::CrossOrigin)));
        let duplicate = |c: &[u8]| {
            format!(
                r#"{{"type":"webauthn.create","challenge":"{}","origin":"{ORIGIN}","origin":"https://evil.test"}}"#,
                b64(c)
            )
            .into_bytes()
        };
        assert!(matches!(register_with_client_data(duplicate), Err(WebauthnError::Malformed(_))));
        assert!(matches!(register_with_client_data(|_| b"\xff\xfe".to_vec()), Err(WebauthnError::Malformed(_))));
    }

    #[test]
    fn flags_are_checked() {
        let key = es256();
        let cose = key.cose();
        let no_up = auth_data(RP_ID, FLAG_UV | FLAG_AT, 0, Some((CRED, &cose)));
        assert!(matches!(register_with_auth_data(&key, Some(no_up)), Err(WebauthnError::UserNotPresent)));
        let mut no_at = auth_data(RP_ID, FLAG_UP, 0, None);
        assert!(
            matches!(register_with_auth_data(&key, Some(no_at.clone())), Err(WebauthnError::Malformed(m)) if m.contains("AT flag"))
        );
        no_at.extend_from_slice(&[0; 18]);
        assert!(matches!(register_with_auth_data(&key, Some(no_at)), Err(WebauthnError::Malformed(_))));
        let bs_without_be = auth_data(RP_ID, FLAG_UP | FLAG_AT | FLAG_BS, 0, Some((CRED, &cose)));
        assert!(matches!(register_with_auth_data(&key, Some(bs_without_be)), Err(WebauthnError::Malformed(_))));
        let result = authenticate(&key, get_client_data, auth_data(RP_ID, FLAG_UV, 1, None));
        assert!(matches!(result, Err(WebauthnError::UserNotPresent)));
        let result = authenticate(&key, get_client_data, auth_data(RP_ID, FLAG_UP | FLAG_AT, 1, Some((CRED, &cose))));
        assert!(matches!(result, Err(WebauthnError::Malformed(m)) if m.contains("must not carry")));
    }

    #[test]
    fn unsupported_algorithms_are_named() {
        let rsa = cose_map(vec![
            (1, int(3)),
            (3, int(-257)),
            (-1, Value::Bytes(vec![1; 256])),
            (-2, Value::Bytes(vec![1, 0, 1])),
        ]);
        let p384 = cose_map(vec![
            (1, int(2)),
            (3, int(-35)),
            (-1, int(2)),
            (-2, Value::Bytes(vec![1; 48])),
            (-3, Value::Bytes(vec![1; 48])),
        ]);
        let es256_on_p384 = cose_map(vec![
            (1, int(2)),
            (3, int(-7)),
            (-1, int(2)),
            (-2, Value::Bytes(vec![1; 48])),
            (-3, Value::Bytes(vec![1; 48])),
        ]);
        let ed448 = cose_map(vec![(1, int(1)), (3, int(-8)), (-1, int(7)), (-2, Value::Bytes(vec![1; 57]))]);
        let mismatched = cose_map(vec![(1, int(1)), (3, int(-7)), (-1, int(6)), (-2, Value::Bytes(vec![1; 32]))]);
        for (key, expected) in [
            (rsa, "RS256 (-257) with key type RSA (3)"),
            (p384, "ES384 (-35) with key type EC2 (2)"),
            (es256_on_p384, "ES256 (-7) on curve 2"),
            (ed448, "EdDSA (-8) on curve 7"),
            (mismatched, "ES256 (-7) with key type OKP (1)"),
        ] {
            let error = register_cose(&cbor(&key)).unwrap_err();
            assert!(matches!(&error, WebauthnError::UnsupportedAlgorithm(m) if m.contains(expected)), "{error}");
        }
    }

    #[test]
    fn invalid_keys_are_refused() {
        let TestKey::Es256(signing) = es256() else { unreachable!() };
        let point = signing.verifying_key().to_encoded_point(false);
        let (x, y) = (point.as_bytes()[1..33].to_vec(), point.as_bytes()[33..].to_vec());
        let mut off_curve_y = y.clone();
        off_curve_y[31] ^= 1;
        let ec2 = |x: Value, y: Value| cose_map(vec![(1, int(2)), (3, int(-7)), (-1, int(1)), (-2, x), (-3, y)]);
        let cases = [
            ec2(Value::Bytes(x.clone()), Value::Bytes(off_curve_y)),
            ec2(Value::Bytes(x[..31].to_vec()), Value::Bytes(y.clone())),
            ec2(Value::Bytes(x.clone()), Value::Bool(true)),
            ec2(Value::Bytes(vec![0; 32]), Value::Bytes(vec![0; 32])),
            cose_map(vec![(1, int(2)), (3, int(-7)), (-1, int(1)), (-2, Value::Bytes(x.clone()))]),
            cose_map(vec![
                (1, int(2)),
                (3, int(-7)),
                (-1, int(1)),
                (-2, Value::Bytes(x.clone())),
                (-3, Value::Bytes(y.clone())),
                (-4, Value::Bytes(vec![0x11; 32])),
            ]),
            cose_map(vec![(1, int(2)), (-1, int(1)), (-2, Value::Bytes(x.clone())), (-3, Value::Bytes(y.clone()))]),
            cose_map(vec![(1, int(1)), (3, int(-8)), (-1, int(6)), (-2, Value::Bytes(vec![0; 32]))]),
        ];
        for (index, key) in cases.iter().enumerate() {
            let result = register_cose(&cbor(key));
            assert!(matches!(result, Err(WebauthnError::InvalidPublicKey(_))), "case {index}: {result:?}");
        }
        let duplicate = Value::Map(vec![
            (int(1), int(2)),
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Value::Bytes(x.clone())),
            (int(-3), Value::Bytes(y.clone())),
        ]);
        assert!(matches!(register_cose(&cbor(&duplicate)), Err(WebauthnError::Malformed(m)) if m.contains("twice")));
        let with_text_label = Value::Map(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Value::Bytes(x)),
            (int(-3), Value::Bytes(y)),
            (text("note"), text("ignored")),
        ]);
        assert!(register_cose(&cbor(&with_text_label)).is_ok());
        assert!(matches!(register_cose(&cbor(&Value::Array(vec![]))), Err(WebauthnError::Malformed(_))));
    }

    #[test]
    fn credential_ids_are_checked() {
        let key = es256();
        let cose = key.cose();
        let long = vec![7u8; 1024];
        let error = register_with_auth_data(&key, Some(auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((&long, &cose)))))
            .unwrap_err();
        assert!(matches!(&error, WebauthnError::Malformed(m) if m.contains("1024 bytes")), "{error}");
        let empty = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((&[], &cose)));
        assert!(matches!(register_with_auth_data(&key, Some(empty)), Err(WebauthnError::Malformed(_))));
        let longest = vec![7u8; 1023];
        let state = start_reg(&[]);
        let cd = client_data("webauthn.create", &state.challenge, ORIGIN);
        let ad = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((&longest, &cose)));
        let attestation = attestation_object("none", Value::Map(vec![]), &ad);
        let credential = finish_registration(&rp(), &state, &reg_response(&longest, &cd, &attestation), now()).unwrap();
        assert_eq!(credential.credential_id.as_bytes(), longest.as_slice());

        let other_id = finish_registration(&rp(), &state, &reg_response(&[9; 16], &cd, &attestation), now());
        assert!(matches!(other_id, Err(WebauthnError::Malformed(m)) if m.contains("rawId is not")));
        let mut mismatched = reg_response(&longest, &cd, &attestation);
        mismatched.id = b64(&[9; 16]);
        assert!(matches!(finish_registration(&rp(), &state, &mismatched, now()), Err(WebauthnError::Malformed(_))));
        let mut wrong_type = reg_response(&longest, &cd, &attestation);
        wrong_type.type_ = "password".into();
        assert!(matches!(finish_registration(&rp(), &state, &wrong_type, now()), Err(WebauthnError::Malformed(_))));
    }

    #[test]
    fn credential_id_serialises_as_base64url_and_checks_length() {
        let id = CredentialId::from_bytes(vec![0xfb, 0xff]).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"-_8\"");
        assert_eq!(serde_json::from_str::<CredentialId>("\"-_8\"").unwrap(), id);
        assert_eq!(format!("{id:?}"), "CredentialId(-_8)");
        assert!(serde_json::from_str::<CredentialId>("\"\"").is_err());
        assert!(serde_json::from_str::<CredentialId>("\"+/8\"").is_err(), "standard base64 is not base64url");
        assert!(CredentialId::from_bytes(vec![0; 1024]).is_err());
        assert!(CredentialId::from_base64url(&b64(&[0; 1024])).is_err());
        assert_eq!(CredentialId::from_base64url(&b64(&[0; 1023])).unwrap().as_bytes().len(), 1023);
    }

    #[test]
    fn attestation_statements_are_checked() {
        let key = es256();
        let packed = |alg: i64| {
            let key = key.clone();
            move |ad: &[u8], cd: &[u8]| {
                Value::Map(vec![(text("alg"), int(alg)), (text("sig"), Value::Bytes(key.sign(&signed(ad, cd))))])
            }
        };
        assert!(register_with_statement(&key, "packed", packed(-7)).is_ok());
        let ed = ed25519();
        let ed_packed = register_with_statement(&ed, "packed", |ad, cd| {
            Value::Map(vec![(text("alg"), int(-8)), (text("sig"), Value::Bytes(ed25519().sign(&signed(ad, cd))))])
        });
        assert_eq!(ed_packed.unwrap().algorithm, CoseAlgorithm::EdDsa);

        let result = register_with_statement(&key, "packed", packed(-8));
        assert!(matches!(result, Err(WebauthnError::InvalidAttestation(m)) if m.contains("alg")));
        let result = register_with_statement(&key, "packed", |ad, _| {
            Value::Map(vec![(text("alg"), int(-7)), (text("sig"), Value::Bytes(es256().sign(ad)))])
        });
        assert!(matches!(result, Err(WebauthnError::InvalidAttestation(m)) if m.contains("signature")));
        let result = register_with_statement(&key, "packed", |ad, cd| {
            Value::Map(vec![
                (text("alg"), int(-7)),
                (text("sig"), Value::Bytes(es256().sign(&signed(ad, cd)))),
                (text("x5c"), Value::Array(vec![Value::Bytes(vec![0x30, 0x00])])),
            ])
        });
        assert!(matches!(result, Err(WebauthnError::UnsupportedAttestation(_))));
        let result = register_with_statement(&key, "packed", |_, _| Value::Map(vec![(text("alg"), int(-7))]));
        assert!(matches!(result, Err(WebauthnError::InvalidAttestation(m)) if m.contains("sig is missing")));
        let result =
            register_with_statement(&key, "none", |_, _| Value::Map(vec![(text("sig"), Value::Bytes(vec![]))]));
        assert!(matches!(result, Err(WebauthnError::InvalidAttestation(_))));
        for format in ["tpm", "android-key", "fido-u2f", "apple", "android-safetynet", "NONE"] {
            let result = register_with_statement(&key, format, |_, _| Value::Map(vec![]));
            assert!(matches!(result, Err(WebauthnError::UnsupportedAttestation(_))), "{format}");
        }
    }

    #[test]
    fn garbage_cbor_is_refused() {
        let good_auth_data = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((CRED, &es256().cose())));
        let good = attestation_object("none", Value::Map(vec![]), &good_auth_data);
        assert!(parse_attestation_object(&good).is_ok());
        let mut deep_definite = vec![0x81; 100_000];
        deep_definite.push(0x00);
        let mut deep_indefinite = vec![0x9f; 100_000];
        deep_indefinite.push(0x00);
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0xff],
            vec![0x1c],
            vec![0xa3],
            good[..good.len() - 1].to_vec(),
            [good.clone(), vec![0x00]].concat(),
            vec![0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            deep_definite,
            deep_indefinite,
            cbor(&Value::Array(vec![])),
            cbor(&Value::Map(vec![(text("fmt"), text("none")), (text("attStmt"), Value::Map(vec![]))])),
            cbor(&Value::Map(vec![
                (text("fmt"), text("none")),
                (text("attStmt"), Value::Map(vec![])),
                (text("authData"), text("not bytes")),
            ])),
            cbor(&Value::Map(vec![
                (text("fmt"), text("none")),
                (text("fmt"), text("none")),
                (text("attStmt"), Value::Map(vec![])),
                (text("authData"), Value::Bytes(good_auth_data.clone())),
            ])),
            cbor(&Value::Map(vec![
                (int(1), text("none")),
                (text("attStmt"), Value::Map(vec![])),
                (text("authData"), Value::Bytes(good_auth_data.clone())),
            ])),
            cbor(&Value::Map(vec![
                (text("fmt"), text("none")),
                (text("attStmt"), Value::Map(vec![])),
                (text("authData"), Value::Tag(24, Box::new(Value::Bytes(good_auth_data.clone())))),
            ])),
        ];
        for (index, bytes) in cases.iter().enumerate() {
            let result = parse_attestation_object(bytes);
            assert!(matches!(result, Err(WebauthnError::Malformed(_))), "case {index}: {result:?}");
        }
        let state = start_reg(&[]);
        let cd = client_data("webauthn.create", &state.challenge, ORIGIN);
        for bytes in [vec![0xff, 0x00], vec![0xa0]] {
            let result = finish_registration(&rp(), &state, &reg_response(CRED, &cd, &bytes), now());
            assert!(matches!(result, Err(WebauthnError::Malformed(_))), "{result:?}");
        }
        let mut garbage_key = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, None);
        garbage_key.extend_from_slice(&[0; 16]);
        garbage_key.extend_from_slice(&[0, 16]);
        garbage_key.extend_from_slice(CRED);
        garbage_key.extend_from_slice(&[0xbf, 0x01]);
        assert!(matches!(register_with_auth_data(&es256(), Some(garbage_key)), Err(WebauthnError::Malformed(_))));
    }

    #[test]
    fn oversized_and_non_base64_fields_are_refused() {
        let state = start_reg(&[]);
        let mut response = reg_response(CRED, b"{}", &[0xa0]);
        response.response.client_data_json = "A".repeat(MAX_CLIENT_DATA_LEN * 2);
        let result = finish_registration(&rp(), &state, &response, now());
        assert!(matches!(result, Err(WebauthnError::Malformed(m)) if m.contains("longer than")));
        response.response.client_data_json = "a+b/".into();
        let result = finish_registration(&rp(), &state, &response, now());
        assert!(matches!(result, Err(WebauthnError::Malformed(m)) if m.contains("not base64url")));
        let auth_state = start_auth(&[]);
        let mut assertion = assertion(&es256(), &auth_state, FLAG_UP, 1);
        assertion.response.signature = "A".repeat(1000);
        let result = finish_authentication(&rp(), &auth_state, &assertion, &stored(&es256(), 0), now());
        assert!(matches!(result, Err(WebauthnError::Malformed(m)) if m.contains("signature")));
    }

    #[test]
    fn excluded_credentials_are_refused() {
        let key = es256();
        let state = start_reg(&[CredentialId::from_bytes(vec![1]).unwrap(), cred_id()]);
        let cd = client_data("webauthn.create", &state.challenge, ORIGIN);
        let ad = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((CRED, &key.cose())));
        let response = reg_response(CRED, &cd, &attestation_object("none", Value::Map(vec![]), &ad));
        assert!(matches!(finish_registration(&rp(), &state, &response, now()), Err(WebauthnError::CredentialExcluded)));
    }

    #[test]
    fn ceremonies_expire() {
        let key = es256();
        let state = start_reg(&[]);
        let cd = client_data("webauthn.create", &state.challenge, ORIGIN);
        let ad = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((CRED, &key.cose())));
        let response = reg_response(CRED, &cd, &attestation_object("none", Value::Map(vec![]), &ad));
        let last_moment = state.expires_at().checked_sub(SignedDuration::from_millis(1)).unwrap();
        assert!(finish_registration(&rp(), &state, &response, last_moment).is_ok());
        let result = finish_registration(&rp(), &state, &response, state.expires_at());
        assert!(matches!(result, Err(WebauthnError::Expired { .. })));

        let auth_state = start_auth(&[]);
        let response = assertion(&key, &auth_state, FLAG_UP, 1);
        let late = now().checked_add(SignedDuration::from_mins(6)).unwrap();
        let result = finish_authentication(&rp(), &auth_state, &response, &stored(&key, 0), late);
        assert!(matches!(result, Err(WebauthnError::Expired { expires_at, now: at }) if expires_at < at));
    }

    #[test]
    fn valid_assertions_are_accepted() {
        for key in [es256(), ed25519()] {
            let state = start_auth(&[cred_id()]);
            let result = finish_authentication(
                &rp(),
                &state,
                &assertion(&key, &state, FLAG_UP | FLAG_UV, 5),
                &stored(&key, 4),
                now(),
            )
            .unwrap();
            assert_eq!(
                result,
                AuthenticationResult {
                    new_sign_count: 5,
                    user_verified: true,
                    backup_eligible: false,
                    backed_up: false
                }
            );
        }
        let key = es256();
        let state = start_auth(&[]);
        let response = assertion(&key, &state, FLAG_UP | FLAG_BE, 0);
        let result = finish_authentication(&rp(), &state, &response, &stored(&key, 0), now()).unwrap();
        assert_eq!(
            result,
            AuthenticationResult { new_sign_count: 0, user_verified: false, backup_eligible: true, backed_up: false }
        );
    }

    #[test]
    fn high_s_es256_signatures_are_accepted() {
        let TestKey::Es256(signing) = es256() else { unreachable!() };
        let state = start_auth(&[cred_id()]);
        let cd = get_client_data(&state.challenge);
        let ad = auth_data(RP_ID, FLAG_UP, 1, None);
        let signature: p256::ecdsa::Signature = signing.sign(&signed(&ad, &cd));
        let low = signature.normalize_s().unwrap_or(signature);
        let (r, s) = low.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
        assert!(high.normalize_s().is_some(), "the test signature really has a high s");
        let response = assertion_response(&cd, &ad, high.to_der().as_bytes());
        assert!(finish_authentication(&rp(), &state, &response, &stored(&es256(), 0), now()).is_ok());
    }

    #[test]
    fn bad_signatures_are_refused() {
        for key in [es256(), ed25519()] {
            let state = start_auth(&[cred_id()]);
            let cd = get_client_data(&state.challenge);
            let ad = auth_data(RP_ID, FLAG_UP, 1, None);
            let good = key.sign(&signed(&ad, &cd));
            let mut flipped = good.clone();
            *flipped.last_mut().unwrap() ^= 1;
            let other_key = match key {
                TestKey::Es256(_) => TestKey::Es256(p256::ecdsa::SigningKey::from_slice(&[0x33; 32]).unwrap()),
                TestKey::Ed25519(_) => TestKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[0x44; 32])),
            };
            let other_client_data = client_data("webauthn.get", &state.challenge, "https://evil.test");
            let signatures = [
                flipped,
                vec![],
                good[..good.len() - 1].to_vec(),
                [good.clone(), vec![0]].concat(),
                vec![0; 64],
                other_key.sign(&signed(&ad, &cd)),
                key.sign(&signed(&ad, &other_client_data)),
                key.sign(&ad),
            ];
            for (index, signature) in signatures.iter().enumerate() {
                let response = assertion_response(&cd, &ad, signature);
                let result = finish_authentication(&rp(), &state, &response, &stored(&key, 0), now());
                assert!(matches!(result, Err(WebauthnError::BadSignature)), "{} case {index}: {result:?}", key.alg());
            }
        }
    }

    #[test]
    fn the_sign_counter_must_increase_unless_both_are_zero() {
        let key = es256();
        for (stored_count, received, accepted) in [
            (0, 0, true),
            (0, 1, true),
            (5, 6, true),
            (5, u32::MAX, true),
            (5, 5, false),
            (5, 4, false),
            (5, 0, false),
            (u32::MAX, u32::MAX, false),
        ] {
            let state = start_auth(&[cred_id()]);
            let response = assertion(&key, &state, FLAG_UP, received);
            let result = finish_authentication(&rp(), &state, &response, &stored(&key, stored_count), now());
            if accepted {
                assert_eq!(result.unwrap().new_sign_count, received);
            } else {
                assert!(
                    matches!(result, Err(WebauthnError::SignCountRegression { stored, received: r }) if stored == stored_count && r == received),
                    "{stored_count} -> {received}"
                );
            }
        }
    }

    #[test]
    fn the_allow_list_and_the_stored_credential_are_enforced() {
        let key = es256();
        let other = CredentialId::from_bytes(vec![0xd2; 16]).unwrap();
        let state = start_auth(std::slice::from_ref(&other));
        let response = assertion(&key, &state, FLAG_UP, 1);
        let result = finish_authentication(&rp(), &state, &response, &stored(&key, 0), now());
        assert!(matches!(result, Err(WebauthnError::CredentialNotAllowed)));

        let state = start_auth(&[]);
        let response = assertion(&key, &state, FLAG_UP, 1);
        let mut someone_else = stored(&key, 0);
        someone_else.credential_id = other;
        let result = finish_authentication(&rp(), &state, &response, &someone_else, now());
        assert!(matches!(result, Err(WebauthnError::CredentialMismatch)));
        assert_eq!(response.credential_id().unwrap(), cred_id());
    }

    #[test]
    fn user_handles_are_checked() {
        let key = es256();
        let discoverable = start_auth(&[]);
        let mut response = assertion(&key, &discoverable, FLAG_UP, 1);
        response.response.user_handle = Some(b64(b"user-0002"));
        let result = finish_authentication(&rp(), &discoverable, &response, &stored(&key, 0), now());
        assert!(matches!(result, Err(WebauthnError::UserHandleMismatch)));
        for missing in [None, Some(String::new())] {
            response.response.user_handle = missing;
            assert_eq!(response.user_handle().unwrap(), None);
            let result = finish_authentication(&rp(), &discoverable, &response, &stored(&key, 0), now());
            assert!(matches!(result, Err(WebauthnError::MissingUserHandle)));
        }
        let allowed = start_auth(&[cred_id()]);
        let mut response = assertion(&key, &allowed, FLAG_UP, 1);
        response.response.user_handle = None;
        assert!(finish_authentication(&rp(), &allowed, &response, &stored(&key, 0), now()).is_ok());
        response.response.user_handle = Some(b64(&[0; 65]));
        assert!(matches!(response.user_handle(), Err(WebauthnError::Malformed(_))));
    }

    #[test]
    fn a_challenge_of_another_ceremony_is_refused() {
        let key = es256();
        let first = start_auth(&[cred_id()]);
        let second = start_auth(&[cred_id()]);
        let response = assertion(&key, &first, FLAG_UP, 1);
        let result = finish_authentication(&rp(), &second, &response, &stored(&key, 0), now());
        assert!(matches!(result, Err(WebauthnError::ChallengeMismatch)));
    }

    #[test]
    fn an_unusable_stored_key_is_reported() {
        let key = es256();
        let state = start_auth(&[cred_id()]);
        let response = assertion(&key, &state, FLAG_UP, 1);
        let mut broken = stored(&key, 0);
        broken.public_key_cose.push(0);
        let result = finish_authentication(&rp(), &state, &response, &broken, now());
        assert!(matches!(result, Err(WebauthnError::InvalidPublicKey(m)) if m.contains("stored")));
    }

    #[test]
    fn error_messages_quote_and_cut_client_text() {
        let origin = format!("https://{}\"\n", "a".repeat(300));
        let result = register_with_client_data(|c| {
            let json = serde_json::json!({"type": "webauthn.create", "challenge": b64(c), "origin": origin});
            serde_json::to_vec(&json).unwrap()
        });
        let message = result.unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.contains("…") && !message.contains('\n'), "{message}");
        assert_eq!(
            WebauthnError::ChallengeMismatch.to_string(),
            "the response does not answer this ceremony's challenge"
        );
    }

    /// A valid registration's attestation object and the state it answers.
    fn valid_registration() -> (RegistrationState, Vec<u8>, Vec<u8>) {
        let state = start_reg(&[]);
        let cd = client_data("webauthn.create", &state.challenge, ORIGIN);
        let ad = auth_data(RP_ID, FLAG_UP | FLAG_AT, 0, Some((CRED, &es256().cose())));
        let attestation = attestation_object("none", Value::Map(vec![]), &ad);
        (state, cd, attestation)
    }

    fn is_parse_error(error: &WebauthnError) -> bool {
        matches!(
            error,
            WebauthnError::Malformed(_) | WebauthnError::InvalidPublicKey(_) | WebauthnError::UnsupportedAlgorithm(_)
        )
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            match parse_authenticator_data(&bytes) {
                Ok(data) => prop_assert!(bytes.len() >= 37 && (data.flags & FLAG_AT == 0) == data.attested.is_none()),
                Err(error) => prop_assert!(is_parse_error(&error), "{error}"),
            }
            match parse_attestation_object(&bytes) {
                Ok(_) => prop_assert!(matches!(bytes.first(), Some(0xa0..=0xbf)), "only a CBOR map can parse"),
                Err(error) => prop_assert!(is_parse_error(&error), "{error}"),
            }
            if let Err(error) = parse_cose_key_bytes(&bytes) {
                prop_assert!(is_parse_error(&error), "{error}");
            }
            prop_assert!(check_client_data(&rp(), &bytes, "webauthn.get", &[0; 32]).is_err());
        }

        #[test]
        fn random_bytes_behind_a_valid_header_never_panic(flags in any::<u8>(), tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = auth_data(RP_ID, flags | FLAG_AT, 0, None);
            bytes.extend_from_slice(&[0; 16]);
            bytes.extend_from_slice(&[0, 4, 1, 2, 3, 4]);
            bytes.extend_from_slice(&tail);
            if let Err(error) = parse_authenticator_data(&bytes) {
                prop_assert!(is_parse_error(&error), "{error}");
            }
        }

        #[test]
        fn a_changed_or_cut_attestation_object_never_panics(
            index in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let (state, cd, attestation) = valid_registration();
            let mut changed = attestation.clone();
            let at = index.index(changed.len());
            changed[at] = byte;
            changed.truncate(cut.index(changed.len() + 1).max(at + 1));
            match finish_registration(&rp(), &state, &reg_response(CRED, &cd, &changed), now()) {
                Ok(credential) => prop_assert_eq!(credential.credential_id, cred_id()),
                Err(error) => prop_assert!(!matches!(error, WebauthnError::Random(_))),
            }
        }

        #[test]
        fn random_response_strings_are_refused(
            id in ".{0,40}",
            client_data_json in "[A-Za-z0-9_=-]{0,200}",
            attestation_object in "[A-Za-z0-9_=-]{0,200}",
            signature in "[A-Za-z0-9_-]{0,120}",
        ) {
            let state = start_reg(&[]);
            let response = RegistrationResponse {
                id: id.clone(),
                raw_id: id.clone(),
                type_: "public-key".into(),
                response: AttestationResponse { client_data_json: client_data_json.clone(), attestation_object },
            };
            prop_assert!(finish_registration(&rp(), &state, &response, now()).is_err());
            let auth_state = start_auth(&[]);
            let response = AuthenticationResponse {
                id: id.clone(),
                raw_id: id,
                type_: "public-key".into(),
                response: AssertionResponse {
                    client_data_json: client_data_json.clone(),
                    authenticator_data: client_data_json,
                    signature,
                    user_handle: None,
                },
            };
            prop_assert!(finish_authentication(&rp(), &auth_state, &response, &stored(&es256(), 0), now()).is_err());
        }
    }
}
