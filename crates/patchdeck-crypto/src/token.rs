//! Bearer credentials: short-lived signed access tokens and long-lived opaque secrets.
//!
//! **Access tokens** are JWTs (RFC 7519) in compact JWS form, signed with Ed25519
//! (`alg: EdDSA`, RFC 8037) by a [`SigningKey`]. They live **15 minutes** by default, so a
//! stolen one is soon useless and revocation can wait for expiry; the session id (`sid`) lets the
//! server refuse tokens of a session it ended. The JWS is hand-rolled (a few dozen lines) rather
//! than taken from a general JWT crate, because the dangerous part of JWT is algorithm agility:
//! [`verify`] accepts exactly one header (`alg` = `EdDSA`, optional `typ` = `JWT`, nothing else),
//! so `none`, `HS256` with the public key as HMAC secret, and `crit` extensions are all refused
//! before any signature work. Expiry allows at most **30 s** of clock skew, and a token issued
//! more than 30 s in the future is refused too.
//!
//! **Opaque tokens** (refresh, API and agent registration tokens) are random secrets that the
//! server looks up, so they can be revoked at once: `pdk_<prefix>_<43 characters>`, the 32 random
//! bytes (256 bits) in unpadded base64url. The fixed `pdk_` start lets secret scanners find leaked
//! tokens, and the prefix says what kind of token it is. Only [`TokenHash`] (SHA-256, hex) is
//! stored: the secret has full entropy, so a slow, salted hash would add nothing, and a plain
//! hash lets the server find the row by index.

use data_encoding::BASE64URL_NOPAD;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::signing::{Signature, SigningKey, VerifyingKey};
use crate::RandomError;

/// Default lifetime of an access token.
pub const ACCESS_TOKEN_LIFETIME: SignedDuration = SignedDuration::from_mins(15);
/// Clock skew tolerated when checking `exp` and `iat`.
pub const LEEWAY: SignedDuration = SignedDuration::from_secs(30);
/// Longest token [`verify`] looks at; anything longer is refused before decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// What is wrong with an access token or an opaque token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts, not JSON, or claims missing or of the wrong type.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names another algorithm or carries fields this crate does not accept.
    #[error("token header not accepted: {0}")]
    UnsupportedHeader(String),
    /// The signature does not match.
    #[error("token signature does not match")]
    BadSignature,
    /// `exp` has passed (plus the leeway).
    #[error("token expired at {expired_at} (now {now})")]
    Expired {
        /// The token's `exp`.
        expired_at: Timestamp,
        /// The time it was checked at.
        now: Timestamp,
    },
    /// `iat` is in the future (beyond the leeway).
    #[error("token issued in the future at {issued_at} (now {now})")]
    IssuedInFuture {
        /// The token's `iat`.
        issued_at: Timestamp,
        /// The time it was checked at.
        now: Timestamp,
    },
    /// A claim is out of range, e.g. `exp` before `iat` or a lifetime that overflows.
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
    /// A prefix for an opaque token that is empty, too long or not `[a-z0-9]`.
    #[error("invalid token prefix {0:?}: use 1 to 16 characters of a-z and 0-9")]
    InvalidPrefix(String),
    /// No random bytes could be had.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    /// The user id.
    pub sub: String,
    /// The user's role when the token was issued.
    pub role: String,
    /// The session the token belongs to.
    pub sid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Unique token id (16 random bytes, base64url).
    pub jti: String,
}

impl AccessClaims {
    /// Claims issued at `now`, expiring [`ACCESS_TOKEN_LIFETIME`] later, with a fresh `jti`.
    pub fn new(
        sub: impl Into<String>,
        role: impl Into<String>,
        sid: impl Into<String>,
        now: Timestamp,
    ) -> Result<Self, TokenError> {
        Self::with_lifetime(sub, role, sid, now, ACCESS_TOKEN_LIFETIME)
    }

    /// Like [`Self::new`] with another lifetime (must be positive).
    pub fn with_lifetime(
        sub: impl Into<String>,
        role: impl Into<String>,
        sid: impl Into<String>,
        now: Timestamp,
        lifetime: SignedDuration,
    ) -> Result<Self, TokenError> {
        if lifetime <= SignedDuration::ZERO {
            return Err(TokenError::InvalidClaims(format!("lifetime {lifetime} is not positive")));
        }
        let exp = now.checked_add(lifetime).map_err(|_| TokenError::InvalidClaims("exp out of range".into()))?;
        Ok(Self {
            sub: sub.into(),
            role: role.into(),
            sid: sid.into(),
            iat: now.as_second(),
            exp: exp.as_second(),
            jti: BASE64URL_NOPAD.encode(crate::random_bytes::<16>()?.as_ref()),
        })
    }
}

/// The only header [`issue`] writes.
const HEADER: &str = r#"{"alg":"EdDSA","typ":"JWT"}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

/// Signs `claims` into a compact JWS (`header.payload.signature`).
pub fn issue(key: &SigningKey, claims: &AccessClaims) -> Result<String, TokenError> {
    if claims.exp <= claims.iat {
        return Err(TokenError::InvalidClaims(format!("exp {} is not after iat {}", claims.exp, claims.iat)));
    }
    let payload = serde_json::to_vec(claims).map_err(|e| TokenError::InvalidClaims(e.to_string()))?;
    Ok(sign_compact(key, HEADER.as_bytes(), &payload))
}

fn sign_compact(key: &SigningKey, header: &[u8], payload: &[u8]) -> String {
    let signing_input = format!("{}.{}", BASE64URL_NOPAD.encode(header), BASE64URL_NOPAD.encode(payload));
    let signature = key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", signature.to_base64url())
}

/// Checks the header and the signature of a compact JWS; returns the header and payload bytes.
fn verify_compact(key: &VerifyingKey, token: &str) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed(format!("{} bytes, at most {MAX_TOKEN_LEN} accepted", token.len())));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("expected three dot-separated parts".into()));
    };
    let header_json = BASE64URL_NOPAD
        .decode(header_b64.as_bytes())
        .map_err(|_| TokenError::Malformed("header is not unpadded base64url".into()))?;
    let header: Header = serde_json::from_slice(&header_json)
        .map_err(|e| TokenError::UnsupportedHeader(format!("not a header with only alg and typ: {e}")))?;
    if header.alg != "EdDSA" {
        return Err(TokenError::UnsupportedHeader(format!("alg {:?}, only \"EdDSA\" is accepted", header.alg)));
    }
    if let Some(typ) = header.typ.as_deref() {
        if typ != "JWT" {
            return Err(TokenError::UnsupportedHeader(format!("typ {typ:?}, only \"JWT\" is accepted")));
        }
    }
    let signature = Signature::from_base64url(signature_b64).map_err(|e| TokenError::Malformed(e.to_string()))?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    key.verify(signing_input.as_bytes(), &signature).map_err(|_| TokenError::BadSignature)?;
    BASE64URL_NOPAD
        .decode(payload_b64.as_bytes())
        .map_err(|_| TokenError::Malformed("payload is not unpadded base64url".into()))
}

/// Verifies an access token at `now` and returns its claims.
///
/// Refuses, in this order: oversized or malformed tokens, any header but `{"alg":"EdDSA"}` with
/// an optional `"typ":"JWT"`, a bad signature, claims that are not exactly [`AccessClaims`],
/// `exp` more than [`LEEWAY`] in the past, and `iat` more than [`LEEWAY`] in the future.
pub fn verify(key: &VerifyingKey, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
    let payload = verify_compact(key, token)?;
    let claims: AccessClaims =
        serde_json::from_slice(&payload).map_err(|e| TokenError::Malformed(format!("claims: {e}")))?;
    let to_timestamp = |seconds: i64, name: &str| {
        Timestamp::from_second(seconds).map_err(|_| TokenError::InvalidClaims(format!("{name} {seconds} out of range")))
    };
    let expires_at = to_timestamp(claims.exp, "exp")?;
    let issued_at = to_timestamp(claims.iat, "iat")?;
    if expires_at <= issued_at {
        return Err(TokenError::InvalidClaims(format!("exp {} is not after iat {}", claims.exp, claims.iat)));
    }
    if now > expires_at.saturating_add(LEEWAY).unwrap_or(expires_at) {
        return Err(TokenError::Expired { expired_at: expires_at, now });
    }
    if issued_at > now.saturating_add(LEEWAY).unwrap_or(now) {
        return Err(TokenError::IssuedInFuture { issued_at, now });
    }
    Ok(claims)
}

/// An opaque bearer secret as handed to its owner once. `Debug` shows only the prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(Zeroizing<String>);

impl std::fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OpaqueToken(pdk_{}_[redacted])", self.prefix())
    }
}

/// Length of the random part of an opaque token: 32 bytes in unpadded base64url.
const OPAQUE_RANDOM_LEN: usize = 43;

fn check_prefix(prefix: &str) -> Result<(), TokenError> {
    if prefix.is_empty() || prefix.len() > 16 || !prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(TokenError::InvalidPrefix(prefix.to_owned()));
    }
    Ok(())
}

impl OpaqueToken {
    /// A new `pdk_<prefix>_<43 characters>` token; `prefix` is 1–16 characters of `a-z0-9`
    /// (for example `rt` refresh, `api` API, `reg` registration).
    pub fn generate(prefix: &str) -> Result<Self, TokenError> {
        check_prefix(prefix)?;
        let random = crate::random_bytes::<32>()?;
        Ok(Self(Zeroizing::new(format!("pdk_{prefix}_{}", BASE64URL_NOPAD.encode(random.as_ref())))))
    }

    /// Checks the shape of a token presented by a client (`pdk_`, a valid prefix, `_`, 43
    /// base64url characters that decode to 32 bytes). It says nothing about whether the token
    /// exists: look up [`Self::hash`] for that.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let malformed = || TokenError::Malformed("not a pdk_<prefix>_<43 base64url characters> token".into());
        let rest = text.strip_prefix("pdk_").ok_or_else(malformed)?;
        let (prefix, random) = rest.split_once('_').ok_or_else(malformed)?;
        check_prefix(prefix).map_err(|_| malformed())?;
        if random.len() != OPAQUE_RANDOM_LEN || BASE64URL_NOPAD.decode(random.as_bytes()).is_err() {
            return Err(malformed());
        }
        Ok(Self(Zeroizing::new(text.to_owned())))
    }

    /// The kind prefix, e.g. `api`.
    pub fn prefix(&self) -> &str {
        self.0.strip_prefix("pdk_").and_then(|rest| rest.split_once('_')).map(|(prefix, _)| prefix).unwrap_or("")
    }

    /// The whole token, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the whole token: what the database stores and looks up.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

/// SHA-256 of an [`OpaqueToken`]. Equality (`==`) is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TokenHash").field(&self.to_hex()).finish()
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl TokenHash {
    /// Lower-case hex (64 characters).
    pub fn to_hex(&self) -> String {
        crate::hex(&self.0)
    }

    /// Reads the hex form; `None` unless it is 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    /// RFC 8037 appendix A.1 key (the RFC 8032 TEST 1 key).
    fn rfc8037_key() -> SigningKey {
        let d = BASE64URL_NOPAD.decode(b"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        SigningKey::from_seed(&d.try_into().unwrap())
    }

    fn forge(header: &str, claims: &str, signer: &SigningKey) -> String {
        sign_compact(signer, header.as_bytes(), claims.as_bytes())
    }

    #[test]
    fn rfc8037_appendix_a4_jws_vector() {
        let key = rfc8037_key();
        assert_eq!(
            BASE64URL_NOPAD.encode(&key.verifying_key().to_bytes()),
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
            "appendix A.2 public key"
        );
        let jws = sign_compact(&key, br#"{"alg":"EdDSA"}"#, b"Example of Ed25519 signing");
        assert_eq!(
            jws,
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
             hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
        assert_eq!(verify_compact(&key.verifying_key(), &jws).unwrap(), b"Example of Ed25519 signing");
    }

    #[test]
    fn issued_token_verifies_and_round_trips_claims() {
        let key = SigningKey::generate().unwrap();
        let now = at(1_700_000_000);
        let claims = AccessClaims::new("user-42", "admin", "sess-7", now).unwrap();
        assert_eq!(claims.exp - claims.iat, 15 * 60);
        assert_eq!(claims.jti.len(), 22);
        let token = issue(&key, &claims).unwrap();
        assert!(token.starts_with("eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9."), "{token}");
        assert_eq!(verify(&key.verifying_key(), &token, now).unwrap(), claims);
        assert_ne!(AccessClaims::new("u", "r", "s", now).unwrap().jti, claims.jti);
    }

    #[test]
    fn expiry_allows_30_seconds_of_skew_and_no_more() {
        let key = SigningKey::generate().unwrap();
        let now = at(1_700_000_000);
        let claims = AccessClaims::new("u", "viewer", "s", now).unwrap();
        let token = issue(&key, &claims).unwrap();
        let public = key.verifying_key();
        assert!(verify(&public, &token, at(claims.exp)).is_ok());
        assert!(verify(&public, &token, at(claims.exp + 30)).is_ok());
        let err = verify(&public, &token, at(claims.exp + 31)).unwrap_err();
        assert!(matches!(err, TokenError::Expired { .. }), "{err}");
        assert!(verify(&public, &token, at(claims.iat - 30)).is_ok());
        assert!(matches!(verify(&public, &token, at(claims.iat - 31)), Err(TokenError::IssuedInFuture { .. })));
    }

    #[test]
    fn wrong_key_and_tampered_claims_are_refused() {
        let key = SigningKey::generate().unwrap();
        let now = at(1_700_000_000);
        let token = issue(&key, &AccessClaims::new("u", "viewer", "s", now).unwrap()).unwrap();
        let stranger = SigningKey::generate().unwrap().verifying_key();
        assert!(matches!(verify(&stranger, &token, now), Err(TokenError::BadSignature)));

        let parts: Vec<&str> = token.split('.').collect();
        let claims = String::from_utf8(BASE64URL_NOPAD.decode(parts[1].as_bytes()).unwrap()).unwrap();
        let elevated = BASE64URL_NOPAD.encode(claims.replace("viewer", "admin").as_bytes());
        let tampered = format!("{}.{elevated}.{}", parts[0], parts[2]);
        assert!(matches!(verify(&key.verifying_key(), &tampered, now), Err(TokenError::BadSignature)));
    }

    #[test]
    fn other_algorithms_and_extra_header_fields_are_refused() {
        let key = SigningKey::generate().unwrap();
        let public = key.verifying_key();
        let now = at(1_700_000_000);
        let claims = serde_json::to_string(&AccessClaims::new("u", "admin", "s", now).unwrap()).unwrap();
        let encoded_claims = BASE64URL_NOPAD.encode(claims.as_bytes());

        // alg none with an empty signature: the classic bypass.
        let none = format!("{}.{encoded_claims}.", BASE64URL_NOPAD.encode(br#"{"alg":"none","typ":"JWT"}"#));
        assert!(matches!(verify(&public, &none, now), Err(TokenError::UnsupportedHeader(_))));

        // HS256 keyed with the public key bytes: the key-confusion attack.
        use hmac::{Hmac, Mac};
        let header = BASE64URL_NOPAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let input = format!("{header}.{encoded_claims}");
        let mut mac = Hmac::<Sha256>::new_from_slice(&public.to_bytes()).unwrap();
        mac.update(input.as_bytes());
        let hs256 = format!("{input}.{}", BASE64URL_NOPAD.encode(&mac.finalize().into_bytes()));
        let err = verify(&public, &hs256, now).unwrap_err();
        assert!(matches!(err, TokenError::UnsupportedHeader(_)), "{err}");
        assert!(err.to_string().contains("HS256"), "{err}");

        // Correctly signed, but with headers we do not accept.
        for header in [
            r#"{"alg":"eddsa"}"#,
            r#"{"alg":"EdDSA","typ":"at+jwt"}"#,
            r#"{"alg":"EdDSA","crit":["exp"]}"#,
            r#"{"alg":"EdDSA","kid":"../../etc/passwd"}"#,
            r#"{"typ":"JWT"}"#,
            r#"{"alg":"EdDSA","alg":"none"}"#,
            r#"[]"#,
        ] {
            let token = forge(header, &claims, &key);
            assert!(matches!(verify(&public, &token, now), Err(TokenError::UnsupportedHeader(_))), "{header}");
        }
        // The minimal RFC 8037 header is fine.
        assert!(verify(&public, &forge(r#"{"alg":"EdDSA"}"#, &claims, &key), now).is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = SigningKey::generate().unwrap();
        let public = key.verifying_key();
        let now = at(1_700_000_000);
        let good = issue(&key, &AccessClaims::new("u", "r", "s", now).unwrap()).unwrap();
        let too_long = "a".repeat(MAX_TOKEN_LEN + 1);
        for bad in ["", "a", "a.b", "a.b.c.d", "!!!.b.c", too_long.as_str(), &format!("{good}.")] {
            assert!(matches!(verify(&public, bad, now), Err(TokenError::Malformed(_))), "{bad:?}");
        }
        let padded = good.replacen('.', "=.", 1);
        assert!(verify(&public, &padded, now).is_err(), "padding is not base64url-nopad");

        // Signed, but the claims are not ours.
        for claims in [
            r#"{"sub":"u"}"#,
            r#"not json"#,
            r#"{"sub":"u","role":"r","sid":"s","iat":1,"exp":"2","jti":"j"}"#,
            r#"{"sub":"u","role":"r","sid":"s","iat":1,"exp":2,"jti":"j","admin":true}"#,
        ] {
            let token = forge(HEADER, claims, &key);
            assert!(matches!(verify(&public, &token, now), Err(TokenError::Malformed(_))), "{claims}");
        }
        let backwards =
            forge(HEADER, r#"{"sub":"u","role":"r","sid":"s","iat":1700000000,"exp":1699999999,"jti":"j"}"#, &key);
        assert!(matches!(verify(&public, &backwards, now), Err(TokenError::InvalidClaims(_))));
        let huge =
            forge(HEADER, r#"{"sub":"u","role":"r","sid":"s","iat":0,"exp":9223372036854775807,"jti":"j"}"#, &key);
        assert!(matches!(verify(&public, &huge, now), Err(TokenError::InvalidClaims(_))));
    }

    #[test]
    fn opaque_token_shape_and_hash() {
        let token = OpaqueToken::generate("api").unwrap();
        let text = token.expose();
        assert!(text.starts_with("pdk_api_"), "{text}");
        assert_eq!(text.len(), "pdk_api_".len() + 43);
        assert_eq!(BASE64URL_NOPAD.decode(&text.as_bytes()["pdk_api_".len()..]).unwrap().len(), 32);
        assert_eq!(token.prefix(), "api");
        assert_eq!(OpaqueToken::parse(text).unwrap(), token);
        assert_eq!(OpaqueToken::parse(text).unwrap().hash(), token.hash());
        assert_ne!(OpaqueToken::generate("api").unwrap().hash(), token.hash());
        assert_eq!(TokenHash::from_hex(&token.hash().to_hex()).unwrap(), token.hash());
        assert!(!format!("{token:?}").contains(&text[8..]), "{token:?}");
    }

    #[test]
    fn opaque_token_hash_is_sha256_hex_of_the_whole_token() {
        let token = OpaqueToken::parse("pdk_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        // `printf pdk_rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA | sha256sum`
        assert_eq!(token.hash().to_hex(), "c9d1158bc7bac0e11519654655fb5a100e0ca43a4a1ec9f296710e56fa8134fe");
    }

    #[test]
    fn bad_prefixes_and_malformed_opaque_tokens_are_refused() {
        for prefix in ["", "API", "a_b", "toolongprefix0000", "ü"] {
            assert!(matches!(OpaqueToken::generate(prefix), Err(TokenError::InvalidPrefix(_))), "{prefix:?}");
        }
        let good = OpaqueToken::generate("reg").unwrap();
        let text = good.expose();
        for bad in [
            "",
            "pdk_reg_",
            &text[..text.len() - 1],
            &format!("{text}A"),
            &text.replacen("pdk_", "pdx_", 1),
            &text.replacen("reg", "REG", 1),
            &format!("{}+", &text[..text.len() - 1]),
        ] {
            assert!(OpaqueToken::parse(bad).is_err(), "{bad:?}");
        }
    }
}
