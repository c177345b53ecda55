//! Encryption of small secrets at rest: the OIDC client secret, TOTP seeds.
//!
//! **XChaCha20-Poly1305** (an AEAD): its 24-byte nonce is large enough to be drawn at random for
//! every message without any risk of repeating one under the same key, so nothing has to count
//! or remember nonces. The sealed form is
//!
//! ```text
//! version (1 byte, 0x01) ‖ nonce (24 random bytes) ‖ ciphertext ‖ Poly1305 tag (16 bytes)
//! ```
//!
//! so a sealed value is 41 bytes longer than its plaintext. The version byte lets a later format
//! (another cipher, a key id) be told apart; it is authenticated together with the caller's
//! associated data (the AEAD's associated data is `version ‖ associated_data`).
//!
//! **Associated data** binds a sealed value to where it belongs, such as `b"totp:user:42"`: a
//! value copied into another row fails to open. It is not secret and not stored in the output;
//! the same bytes must be given to [`open`].
//!
//! The [`SecretKey`] is 32 random bytes, kept in a key file as standard base64 (44 characters with
//! padding). A wrong key, wrong associated data and any changed byte all give the same
//! [`SecretBoxError::Decrypt`]: nothing tells an attacker which it was.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::BASE64;
use zeroize::Zeroizing;

use crate::RandomError;

/// The format version written as the first byte.
pub const VERSION: u8 = 1;
/// Length of a key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of the random nonce in bytes.
pub const NONCE_LEN: usize = 24;
/// Length of the authentication tag in bytes.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed value has beyond its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// What went wrong with a key or a sealed value.
#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    /// The key text is not standard base64 of 32 bytes.
    #[error("a secret box key must be standard base64 of {KEY_LEN} bytes")]
    InvalidKey,
    /// The sealed value is shorter than the smallest possible one.
    #[error("sealed value has {0} bytes, at least {OVERHEAD} are needed")]
    Truncated(usize),
    /// The sealed value starts with a version this code does not know.
    #[error("sealed value has format version {0}, only {VERSION} is supported")]
    UnsupportedVersion(u8),
    /// Wrong key, wrong associated data, or the sealed value was changed.
    #[error("sealed value does not open: wrong key, wrong associated data, or altered data")]
    Decrypt,
    /// The plaintext is beyond what the cipher can encrypt in one message.
    #[error("plaintext too long to encrypt")]
    TooLong,
    /// No key or nonce could be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A 32-byte encryption key. `Debug` does not show it; the bytes are wiped on drop.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);
crate::redacted_debug!(SecretKey);

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(Self(crate::random_bytes::<KEY_LEN>()?))
    }

    /// A key from its raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Reads a key file's text: standard base64 (with padding) of 32 bytes; whitespace around
    /// it, such as the final newline, is ignored.
    pub fn from_base64(text: &str) -> Result<Self, SecretBoxError> {
        let bytes = Zeroizing::new(BASE64.decode(text.trim().as_bytes()).map_err(|_| SecretBoxError::InvalidKey)?);
        let array: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| SecretBoxError::InvalidKey)?;
        Ok(Self::from_bytes(array))
    }

    /// The key as standard base64 (44 characters), for a key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(BASE64.encode(self.0.as_slice()))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_slice().into())
    }
}

/// The AEAD's associated data: the version byte, then the caller's.
fn full_aad(version: u8, associated_data: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + associated_data.len());
    aad.push(version);
    aad.extend_from_slice(associated_data);
    aad
}

/// Encrypts `plaintext` under `key`, bound to `associated_data`, with a fresh random nonce.
/// Fails only when the random number generator does (or for plaintexts beyond 256 GiB).
pub fn seal(key: &SecretKey, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
    let nonce = crate::random_bytes::<NONCE_LEN>()?;
    let mut sealed = Vec::with_capacity(OVERHEAD + plaintext.len());
    sealed.push(VERSION);
    sealed.extend_from_slice(nonce.as_slice());
    sealed.extend_from_slice(plaintext);
    // Encrypted in place in a buffer that never grows, so no copy of the plaintext is left behind
    // in freed memory.
    let tag = key
        .cipher()
        .encrypt_in_place_detached(
            XNonce::from_slice(nonce.as_slice()),
            &full_aad(VERSION, associated_data),
            &mut sealed[1 + NONCE_LEN..],
        )
        .map_err(|_| SecretBoxError::TooLong)?;
    sealed.extend_from_slice(&tag);
    Ok(sealed)
}

/// Decrypts a value made by [`seal`] with the same key and associated data.
pub fn open(key: &SecretKey, sealed: &[u8], associated_data: &[u8]) -> Result<Zeroizing<Vec<u8>>, SecretBoxError> {
    let Some((&version, rest)) = sealed.split_first() else {
        return Err(SecretBoxError::Truncated(0));
    };
    if version != VERSION {
        return Err(SecretBoxError::UnsupportedVersion(version));
    }
    if sealed.len() < OVERHEAD {
        return Err(SecretBoxError::Truncated(sealed.len()));
    }
    let (nonce, ciphertext_and_tag) = rest.split_at(NONCE_LEN);
    let (ciphertext, tag) = ciphertext_and_tag.split_at(ciphertext_and_tag.len() - TAG_LEN);
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    key.cipher()
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            &full_aad(version, associated_data),
            plaintext.as_mut_slice(),
            tag.into(),
        )
        .map_err(|_| SecretBoxError::Decrypt)?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes([7; KEY_LEN])
    }

    #[test]
    fn round_trip_with_the_documented_layout() {
        let key = key();
        let sealed = seal(&key, b"oidc client secret", b"oidc:client_secret").unwrap();
        assert_eq!(sealed.len(), b"oidc client secret".len() + OVERHEAD);
        assert_eq!(sealed[0], VERSION);
        let opened = open(&key, &sealed, b"oidc:client_secret").unwrap();
        assert_eq!(opened.as_slice(), b"oidc client secret");
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let sealed = seal(&key(), b"", b"").unwrap();
        assert_eq!(sealed.len(), OVERHEAD);
        assert!(open(&key(), &sealed, b"").unwrap().is_empty());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let first = seal(&key(), b"same", b"aad").unwrap();
        let second = seal(&key(), b"same", b"aad").unwrap();
        assert_ne!(first[1..1 + NONCE_LEN], second[1..1 + NONCE_LEN]);
        assert_ne!(first, second);
    }

    #[test]
    fn ciphertext_does_not_contain_the_plaintext() {
        let plaintext = b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
        let sealed = seal(&key(), plaintext, b"").unwrap();
        assert!(!sealed.windows(8).any(|w| plaintext.windows(8).any(|p| p == w)));
    }

    #[test]
    fn wrong_key_does_not_open() {
        let sealed = seal(&key(), b"seed", b"totp:user:1").unwrap();
        let other = SecretKey::from_bytes([8; KEY_LEN]);
        assert!(matches!(open(&other, &sealed, b"totp:user:1"), Err(SecretBoxError::Decrypt)));
    }

    #[test]
    fn wrong_associated_data_does_not_open() {
        let sealed = seal(&key(), b"seed", b"totp:user:1").unwrap();
        for aad in [&b"totp:user:2"[..], b"", b"totp:user:1\0"] {
            assert!(matches!(open(&key(), &sealed, aad), Err(SecretBoxError::Decrypt)), "{aad:?}");
        }
    }

    #[test]
    fn any_tampered_byte_is_detected() {
        let sealed = seal(&key(), b"a small secret", b"aad").unwrap();
        for index in 1..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert!(matches!(open(&key(), &tampered, b"aad"), Err(SecretBoxError::Decrypt)), "byte {index}");
        }
        let mut other_version = sealed.clone();
        other_version[0] = 2;
        assert!(matches!(open(&key(), &other_version, b"aad"), Err(SecretBoxError::UnsupportedVersion(2))));
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(matches!(open(&key(), &longer, b"aad"), Err(SecretBoxError::Decrypt)));
    }

    #[test]
    fn truncated_input_is_refused() {
        let sealed = seal(&key(), b"secret", b"").unwrap();
        assert!(matches!(open(&key(), &[], b""), Err(SecretBoxError::Truncated(0))));
        for len in 1..OVERHEAD {
            assert!(matches!(open(&key(), &sealed[..len], b""), Err(SecretBoxError::Truncated(l)) if l == len));
        }
        for len in OVERHEAD..sealed.len() {
            assert!(matches!(open(&key(), &sealed[..len], b""), Err(SecretBoxError::Decrypt)), "len {len}");
        }
    }

    #[test]
    fn keys_round_trip_through_base64_and_are_random() {
        let key = SecretKey::generate().unwrap();
        let text = key.to_base64();
        assert_eq!(text.len(), 44);
        let back = SecretKey::from_base64(&format!("  {}\n", text.as_str())).unwrap();
        assert_eq!(back.0, key.0);
        assert_ne!(SecretKey::generate().unwrap().0, key.0);
        let sealed = seal(&key, b"x", b"").unwrap();
        assert_eq!(open(&back, &sealed, b"").unwrap().as_slice(), b"x");
    }

    #[test]
    fn bad_key_text_is_refused() {
        for text in ["", "not base64!", "AAAA", &BASE64.encode(&[0u8; 31]), &BASE64.encode(&[0u8; 33])] {
            assert!(matches!(SecretKey::from_base64(text), Err(SecretBoxError::InvalidKey)), "{text:?}");
        }
    }

    #[test]
    fn a_known_key_is_stable_base64() {
        assert_eq!(key().to_base64().as_str(), "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let key = key();
        assert_eq!(format!("{key:?}"), "SecretKey([redacted])");
        let err = open(&SecretKey::from_bytes([1; KEY_LEN]), &seal(&key, b"pw", b"").unwrap(), b"").unwrap_err();
        assert!(!err.to_string().contains("pw"));
    }
}
