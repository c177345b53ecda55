//! Ed25519 keys and signed, expiring envelopes for commands the manager sends to agents; the
//! same keys sign access tokens ([`crate::token`]).
//!
//! Ed25519 (RFC 8032) because signatures are deterministic (no per-signature randomness to get
//! wrong), keys are 32 bytes, and verification is fast on the agent. Verification uses
//! `verify_strict`, which also refuses small-order keys and non-canonical signatures, so a
//! signature cannot be altered into a second valid one.
//!
//! Storage formats:
//! - private key: PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`, RFC 8410), byte for byte what
//!   OpenSSL writes. Not v2 (RFC 5958, with the public key inside): OpenSSL 3.0 cannot read it.
//!   Both versions are read;
//! - public key: the raw 32 bytes, or their standard base64 (44 characters with padding);
//! - fingerprint: `SHA256:` and the unpadded base64 of the SHA-256 of the OpenSSH wire-format key
//!   (`string "ssh-ed25519" || string key`), so it is exactly what `ssh-keygen -lf` prints for
//!   the same key and people can compare it with tools they know.
//!
//! A [`SignedEnvelope`] binds a payload to a random nonce and an expiry (5 minutes by default:
//! long enough for a queued command to reach a polling agent, short enough that a captured
//! command is soon useless). The signed bytes are a canonical, length-prefixed encoding with a
//! domain-separation label, so an envelope signature can never be confused with a token
//! signature made by the same key. Remembering which nonces were seen (replay protection within
//! the lifetime) is the caller's job.

use std::fmt;

use data_encoding::{BASE64, BASE64URL_NOPAD, BASE64_NOPAD};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::Signer;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::RandomError;

/// Default lifetime of a [`SignedEnvelope`].
pub const DEFAULT_ENVELOPE_LIFETIME: SignedDuration = SignedDuration::from_mins(5);

/// Label prepended to every envelope's signed bytes.
const ENVELOPE_DOMAIN: &[u8] = b"patchdeck signed envelope v1\0";

/// What went wrong with a key or a signature.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    /// The PEM text is not an Ed25519 PKCS#8 private key.
    #[error("not an Ed25519 PKCS#8 private key in PEM: {0}")]
    InvalidPrivateKey(String),
    /// A public key is not 32 bytes, not base64, or not a valid curve point.
    #[error("invalid Ed25519 public key: {0}")]
    InvalidPublicKey(String),
    /// A signature is not 64 bytes or not base64.
    #[error("invalid Ed25519 signature encoding: {0}")]
    InvalidSignatureEncoding(String),
    /// The signature does not match the message and key.
    #[error("the signature does not match the message and the public key")]
    BadSignature,
    /// The envelope's expiry has passed.
    #[error("the signed envelope expired at {expires_at} (now {now})")]
    Expired {
        /// When it expired.
        expires_at: Timestamp,
        /// The time it was checked at.
        now: Timestamp,
    },
    /// An envelope lifetime that is zero, negative or beyond the timestamp range.
    #[error("invalid envelope lifetime {0}")]
    InvalidLifetime(SignedDuration),
    /// No key or nonce could be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// An Ed25519 private key. `Debug` shows only the fingerprint; the key is wiped on drop.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Result<Self, SigningError> {
        let seed = crate::random_bytes::<32>()?;
        Ok(Self::from_seed(&seed))
    }

    /// The key whose RFC 8032 secret (seed) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, SigningError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|e| SigningError::InvalidPrivateKey(e.to_string()))
    }

    /// The key as PKCS#8 PEM, for a file readable only by the service.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        let v1 = KeypairBytes { secret_key: self.0.to_bytes(), public_key: None };
        // Encoding 32 bytes into a fixed-size structure does not fail.
        // `KeypairBytes` wipes its copy of the secret when dropped; the default line ending is LF.
        v1.to_pkcs8_pem(Default::default()).expect("an Ed25519 key always encodes as PKCS#8")
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Fingerprint of the public half, see [`VerifyingKey::fingerprint`].
    pub fn fingerprint(&self) -> String {
        self.verifying_key().fingerprint()
    }

    /// Signs `message` as it is. Callers sign canonical bytes they defined, never a re-encoding.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifyingKey").field(&self.fingerprint()).finish()
    }
}

impl VerifyingKey {
    /// The raw 32-byte public key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// A public key from its raw 32 bytes; refuses bytes that are not a curve point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SigningError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| SigningError::InvalidPublicKey(format!("{} bytes, expected 32", bytes.len())))?;
        ed25519_dalek::VerifyingKey::from_bytes(&array)
            .map(Self)
            .map_err(|_| SigningError::InvalidPublicKey("not a point on Curve25519".into()))
    }

    /// Standard base64 of the raw key, with padding (44 characters).
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.to_bytes())
    }

    /// Reads [`Self::to_base64`]'s output; padding is optional.
    pub fn from_base64(text: &str) -> Result<Self, SigningError> {
        let trimmed = text.trim();
        let bytes = BASE64
            .decode(trimmed.as_bytes())
            .or_else(|_| BASE64_NOPAD.decode(trimmed.as_bytes()))
            .map_err(|_| SigningError::InvalidPublicKey("not base64".into()))?;
        Self::from_bytes(&bytes)
    }

    /// `SHA256:` and the unpadded base64 of the SHA-256 of the OpenSSH public key blob, exactly
    /// as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let mut blob = Vec::with_capacity(4 + 11 + 4 + 32);
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&self.to_bytes());
        format!("SHA256:{}", BASE64_NOPAD.encode(&Sha256::digest(&blob)))
    }

    /// Checks `signature` over `message` (strict RFC 8032 verification).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), SigningError> {
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        self.0.verify_strict(message, &signature).map_err(|_| SigningError::BadSignature)
    }
}

/// A 64-byte Ed25519 signature. Serialised as unpadded base64url.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Signature").field(&self.to_base64url()).finish()
    }
}

impl Signature {
    /// Unpadded base64url (86 characters).
    pub fn to_base64url(&self) -> String {
        BASE64URL_NOPAD.encode(&self.0)
    }

    /// Reads [`Self::to_base64url`]'s output.
    pub fn from_base64url(text: &str) -> Result<Self, SigningError> {
        let bytes = BASE64URL_NOPAD
            .decode(text.as_bytes())
            .map_err(|_| SigningError::InvalidSignatureEncoding("not unpadded base64url".into()))?;
        let array: [u8; 64] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| SigningError::InvalidSignatureEncoding(format!("{} bytes, expected 64", b.len())))?;
        Ok(Self(array))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_base64url(&text).map_err(serde::de::Error::custom)
    }
}

/// A payload signed together with a nonce and an expiry.
///
/// Serialises to JSON as `{"payload": "<base64url>", "nonce": "...", "expires_at": "<RFC 3339>",
/// "signature": "<base64url>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEnvelope {
    /// The signed bytes, usually a serialised command.
    #[serde(with = "base64url_bytes")]
    pub payload: Vec<u8>,
    /// 16 random bytes as unpadded base64url; the caller refuses a nonce it has seen.
    pub nonce: String,
    /// After this instant the envelope is refused.
    pub expires_at: Timestamp,
    /// Signature over [`SignedEnvelope::signed_bytes`].
    pub signature: Signature,
}

impl SignedEnvelope {
    /// Signs `payload` with a fresh nonce, valid for [`DEFAULT_ENVELOPE_LIFETIME`] from `now`.
    pub fn seal(key: &SigningKey, payload: Vec<u8>, now: Timestamp) -> Result<Self, SigningError> {
        Self::seal_with_lifetime(key, payload, now, DEFAULT_ENVELOPE_LIFETIME)
    }

    /// Signs `payload` with a fresh nonce, valid for `lifetime` from `now`.
    pub fn seal_with_lifetime(
        key: &SigningKey,
        payload: Vec<u8>,
        now: Timestamp,
        lifetime: SignedDuration,
    ) -> Result<Self, SigningError> {
        if lifetime <= SignedDuration::ZERO {
            return Err(SigningError::InvalidLifetime(lifetime));
        }
        let expires_at = now.checked_add(lifetime).map_err(|_| SigningError::InvalidLifetime(lifetime))?;
        let nonce = BASE64URL_NOPAD.encode(crate::random_bytes::<16>()?.as_ref());
        let signature = key.sign(&signed_bytes(&payload, &nonce, expires_at));
        Ok(Self { payload, nonce, expires_at, signature })
    }

    /// The exact bytes that are signed: the domain label, then the nonce and the payload each
    /// preceded by its length as a big-endian u64, and the expiry as big-endian i64 Unix seconds
    /// and u32 nanoseconds.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.payload, &self.nonce, self.expires_at)
    }

    /// Checks the signature and the expiry; returns the payload. An envelope whose
    /// `expires_at` is at or before `now` is refused. Replay tracking (the nonce) stays with the
    /// caller.
    pub fn verify(&self, key: &VerifyingKey, now: Timestamp) -> Result<&[u8], SigningError> {
        key.verify(&self.signed_bytes(), &self.signature)?;
        if now >= self.expires_at {
            return Err(SigningError::Expired { expires_at: self.expires_at, now });
        }
        Ok(&self.payload)
    }
}

fn signed_bytes(payload: &[u8], nonce: &str, expires_at: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(ENVELOPE_DOMAIN.len() + 8 + nonce.len() + 12 + 8 + payload.len());
    out.extend_from_slice(ENVELOPE_DOMAIN);
    out.extend_from_slice(&(nonce.len() as u64).to_be_bytes());
    out.extend_from_slice(nonce.as_bytes());
    out.extend_from_slice(&expires_at.as_second().to_be_bytes());
    out.extend_from_slice(&expires_at.subsec_nanosecond().to_be_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

mod base64url_bytes {
    use data_encoding::BASE64URL_NOPAD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64URL_NOPAD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64URL_NOPAD.decode(text.as_bytes()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8410 §10.3: an Ed25519 private key in PKCS#8 PEM.
    const RFC8410_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
        -----END PRIVATE KEY-----\n";
    /// RFC 8410 §10.1: its public key, the last 32 bytes of the SubjectPublicKeyInfo
    /// `MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=`.
    const RFC8410_PUBLIC_HEX: &str = "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1";

    fn from_hex(text: &str) -> Vec<u8> {
        data_encoding::HEXLOWER.decode(text.as_bytes()).unwrap()
    }

    /// RFC 8032 §7.1 TEST 1 key pair.
    fn rfc8032_test1() -> SigningKey {
        let seed = from_hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        SigningKey::from_seed(&seed.try_into().unwrap())
    }

    #[test]
    fn rfc8032_test_vectors_1_and_2() {
        let key = rfc8032_test1();
        assert_eq!(
            key.verifying_key().to_bytes().to_vec(),
            from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let signature = key.sign(b"");
        assert_eq!(
            signature.0.to_vec(),
            from_hex(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
        key.verifying_key().verify(b"", &signature).unwrap();

        // TEST 2: one-byte message 0x72.
        let key2 = SigningKey::from_seed(
            &from_hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb").try_into().unwrap(),
        );
        let signature2 = key2.sign(&[0x72]);
        assert_eq!(
            signature2.0.to_vec(),
            from_hex(
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
            )
        );
        let public2 =
            VerifyingKey::from_bytes(&from_hex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"))
                .unwrap();
        public2.verify(&[0x72], &signature2).unwrap();
        assert!(matches!(public2.verify(&[0x73], &signature2), Err(SigningError::BadSignature)));
        assert!(matches!(key.verifying_key().verify(&[0x72], &signature2), Err(SigningError::BadSignature)));
    }

    #[test]
    fn rfc8410_pkcs8_pem_loads_and_round_trips() {
        let key = SigningKey::from_pkcs8_pem(RFC8410_PRIVATE).unwrap();
        assert_eq!(key.verifying_key().to_bytes().to_vec(), from_hex(RFC8410_PUBLIC_HEX));
        assert_eq!(key.to_pkcs8_pem().as_str(), RFC8410_PRIVATE, "we write what the RFC and OpenSSL write");
        // PKCS#8 v2 (RFC 5958, public key included), as other tools write it, is read too.
        let v2 = "-----BEGIN PRIVATE KEY-----\n\
                  MFECAQEwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                  gSEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n\
                  -----END PRIVATE KEY-----\n";
        assert_eq!(SigningKey::from_pkcs8_pem(v2).unwrap().verifying_key(), key.verifying_key());
        let generated = SigningKey::generate().unwrap();
        let reloaded = SigningKey::from_pkcs8_pem(&generated.to_pkcs8_pem()).unwrap();
        assert_eq!(reloaded.verifying_key(), generated.verifying_key());
    }

    #[test]
    fn invalid_private_keys_are_refused() {
        for bad in ["", "hello", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"] {
            assert!(matches!(SigningKey::from_pkcs8_pem(bad), Err(SigningError::InvalidPrivateKey(_))), "{bad:?}");
        }
        // A P-256 key is PKCS#8 too, but not Ed25519.
        let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap().serialize_pem();
        assert!(matches!(SigningKey::from_pkcs8_pem(&p256), Err(SigningError::InvalidPrivateKey(_))));
    }

    #[test]
    fn public_key_raw_and_base64_round_trip() {
        let public = rfc8032_test1().verifying_key();
        assert_eq!(public.to_base64(), "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
        assert_eq!(VerifyingKey::from_base64(&public.to_base64()).unwrap(), public);
        assert_eq!(VerifyingKey::from_base64("11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap(), public);
        assert_eq!(VerifyingKey::from_bytes(&public.to_bytes()).unwrap(), public);
        assert!(matches!(VerifyingKey::from_bytes(&[1; 31]), Err(SigningError::InvalidPublicKey(_))));
        assert!(matches!(VerifyingKey::from_base64("***"), Err(SigningError::InvalidPublicKey(_))));
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        // `ssh-keygen -lf` on `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea`
        // (the RFC 8032 TEST 1 public key) prints this.
        assert_eq!(rfc8032_test1().fingerprint(), "SHA256:bbXpuKG6zhzdmnxq256TlqzFBzRl2f6OOg722cYNbU8");
    }

    #[test]
    fn debug_does_not_show_the_private_key() {
        let key = rfc8032_test1();
        let shown = format!("{key:?}");
        assert!(shown.contains("SHA256:bbXpuKG6"), "{shown}");
        assert!(!shown.to_lowercase().contains("9d61b1"), "{shown}");
        assert!(!shown.contains("nWGxne"), "{shown}");
    }

    #[test]
    fn envelope_verifies_until_it_expires() {
        let key = SigningKey::generate().unwrap();
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let envelope = SignedEnvelope::seal(&key, b"{\"op\":\"upgrade\"}".to_vec(), now).unwrap();
        assert_eq!(envelope.expires_at, now + DEFAULT_ENVELOPE_LIFETIME);
        assert_eq!(envelope.nonce.len(), 22);
        let public = key.verifying_key();
        assert_eq!(envelope.verify(&public, now).unwrap(), b"{\"op\":\"upgrade\"}");
        let last_moment = envelope.expires_at - SignedDuration::from_nanos(1);
        assert!(envelope.verify(&public, last_moment).is_ok());
        let err = envelope.verify(&public, envelope.expires_at).unwrap_err();
        assert!(matches!(err, SigningError::Expired { .. }), "{err}");
        assert!(err.to_string().contains("expired"));
        let other = SignedEnvelope::seal(&key, b"{\"op\":\"upgrade\"}".to_vec(), now).unwrap();
        assert_ne!(other.nonce, envelope.nonce, "every envelope gets a fresh nonce");
    }

    #[test]
    fn tampering_with_any_field_breaks_the_signature() {
        let key = SigningKey::generate().unwrap();
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let envelope = SignedEnvelope::seal(&key, b"reboot".to_vec(), now).unwrap();
        let public = key.verifying_key();

        let mut payload = envelope.clone();
        payload.payload = b"rebooT".to_vec();
        let mut nonce = envelope.clone();
        nonce.nonce.push('x');
        let mut expiry = envelope.clone();
        expiry.expires_at += SignedDuration::from_hours(1);
        let mut signature = envelope.clone();
        signature.signature.0[0] ^= 1;
        for forged in [payload, nonce, expiry, signature] {
            assert!(matches!(forged.verify(&public, now), Err(SigningError::BadSignature)), "{forged:?}");
        }
        let stranger = SigningKey::generate().unwrap().verifying_key();
        assert!(matches!(envelope.verify(&stranger, now), Err(SigningError::BadSignature)));
    }

    #[test]
    fn signed_bytes_are_length_prefixed_so_fields_cannot_shift() {
        let at = Timestamp::from_second(0).unwrap();
        assert_ne!(signed_bytes(b"bc", "a", at), signed_bytes(b"c", "ab", at));
        let bytes = signed_bytes(b"P", "N", at);
        let mut expected = ENVELOPE_DOMAIN.to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, b'N']);
        expected.extend_from_slice(&[0; 12]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, b'P']);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn envelope_json_round_trips_and_still_verifies() {
        let key = SigningKey::generate().unwrap();
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let envelope = SignedEnvelope::seal(&key, vec![0, 255, 1], now).unwrap();
        let json = serde_json::to_string(&envelope).unwrap();
        assert!(json.contains("\"payload\":\"AP8B\""), "{json}");
        assert!(json.contains("\"expires_at\":\"2023-11-14T22:18:20Z\""), "{json}");
        let back: SignedEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.verify(&key.verifying_key(), now).unwrap(), [0, 255, 1]);
        let bad = json.replace(&envelope.signature.to_base64url(), "AAAA");
        assert!(serde_json::from_str::<SignedEnvelope>(&bad).unwrap_err().to_string().contains("64"));
    }

    #[test]
    fn non_positive_lifetimes_are_refused() {
        let key = SigningKey::generate().unwrap();
        let now = Timestamp::from_second(0).unwrap();
        for lifetime in [SignedDuration::ZERO, SignedDuration::from_secs(-1)] {
            assert!(matches!(
                SignedEnvelope::seal_with_lifetime(&key, vec![], now, lifetime),
                Err(SigningError::InvalidLifetime(_))
            ));
        }
    }
}
