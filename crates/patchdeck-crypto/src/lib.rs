//! Security primitives for Patchdeck: the building blocks that the manager core (accounts,
//! sessions, MFA, the internal CA) and the agent ↔ manager protocol (mutual TLS, signed commands)
//! are made of.
//!
//! - [`password`]: Argon2id password hashes in PHC string format.
//! - [`totp`]: RFC 6238 one-time passwords and MFA recovery codes.
//! - [`token`]: Ed25519-signed access tokens (JWT) and opaque bearer secrets that are stored hashed.
//! - [`signing`]: Ed25519 keys, OpenSSH-style fingerprints and signed, expiring command envelopes.
//! - [`ca`]: the internal X.509 certificate authority (ECDSA P-256) for mutual TLS.
//! - [`webauthn`]: a WebAuthn relying party for passkeys (ES256 and Ed25519).
//! - [`secretbox`]: XChaCha20-Poly1305 encryption of small secrets at rest (OIDC client secret,
//!   TOTP seeds).
//!
//! Rules that hold in every module:
//!
//! - No IO and no clock. A function that needs the time takes `now: jiff::Timestamp`, so callers
//!   and tests control it. The only outside resource used is the operating system's random number
//!   generator (`getrandom`); when it fails, functions return an error rather than panic.
//! - Secrets (keys, tokens, codes) live in types whose `Debug` prints `[redacted]` and whose
//!   memory is wiped on drop with `zeroize` where that is cheap.
//! - Comparisons of secrets or of their hashes are constant-time (`subtle`).
//! - Errors are `thiserror` enums that say what was wrong, never what the secret was.

pub mod ca;
pub mod password;
pub mod secretbox;
pub mod signing;
pub mod token;
pub mod totp;
pub mod webauthn;

/// The operating system's random number generator failed.
///
/// On Linux this only happens when `getrandom(2)` is unavailable or interrupted in a way the
/// `getrandom` crate could not recover from. Nothing secret can be generated then.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

/// Fills `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> Result<zeroize::Zeroizing<[u8; N]>, RandomError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; N]);
    getrandom::fill(bytes.as_mut()).map_err(|e| RandomError(e.to_string()))?;
    Ok(bytes)
}

/// Lower-case hexadecimal of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Writes `[redacted]` as the `Debug` form of a secret.
macro_rules! redacted_debug {
    ($ty:ty) => {
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(concat!(stringify!($ty), "([redacted])"))
            }
        }
    };
}
pub(crate) use redacted_debug;
