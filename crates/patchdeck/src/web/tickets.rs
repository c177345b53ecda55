//! Sealed tickets: small pieces of server state handed to the client and returned later (the
//! pending MFA step of a login, a WebAuthn ceremony, a pending SSO login). They are encrypted
//! and authenticated with the data directory's `secret.key` (XChaCha20-Poly1305), bound to their
//! purpose, and expire; so the manager keeps no per-login memory and any replica can finish what
//! another began.

use data_encoding::BASE64URL_NOPAD;
use jiff::SignedDuration;
use patchdeck_crypto::secretbox;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, Deserialize)]
struct Sealed<T> {
    /// Expiry, Unix seconds.
    exp: i64,
    v: T,
}

/// Seals `value` for `purpose`, valid for `lifetime`.
pub fn seal<T: Serialize>(
    state: &AppState,
    purpose: &str,
    value: &T,
    lifetime: SignedDuration,
) -> Result<String, ApiError> {
    let exp = (state.now() + lifetime).as_second();
    let plain = serde_json::to_vec(&Sealed { exp, v: value }).map_err(ApiError::internal)?;
    let sealed = secretbox::seal(&state.keys().secret_key, &plain, purpose.as_bytes()).map_err(ApiError::internal)?;
    Ok(BASE64URL_NOPAD.encode(&sealed))
}

/// Opens a ticket sealed for `purpose`; `field` names it in the error.
pub fn open<T: DeserializeOwned>(state: &AppState, purpose: &str, field: &str, text: &str) -> Result<T, ApiError> {
    let invalid = || ApiError::unauthorized(format!("{field} is invalid or has expired; start again"));
    if text.len() > 16 * 1024 {
        return Err(invalid());
    }
    let sealed = BASE64URL_NOPAD.decode(text.as_bytes()).map_err(|_| invalid())?;
    let plain = secretbox::open(&state.keys().secret_key, &sealed, purpose.as_bytes()).map_err(|_| invalid())?;
    let ticket: Sealed<T> = serde_json::from_slice(&plain).map_err(|_| invalid())?;
    if ticket.exp <= state.now().as_second() {
        return Err(invalid());
    }
    Ok(ticket.v)
}
