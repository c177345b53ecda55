//! What the manager keeps between sending the browser to the provider and its return, and what
//! comes back.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::OidcError;

/// A login in progress: the secrets of one authorization request, needed to finish it.
///
/// The manager keeps it server-side keyed by [`state`](Self::state) or in an encrypted,
/// authenticated cookie; it must never reach the browser in clear, since the nonce and the PKCE
/// verifier are what bind the callback to this browser's request. Use it once: remove it when
/// the callback arrives, whatever the outcome. `Debug` redacts the secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingLogin {
    pub(crate) state: String,
    pub(crate) nonce: String,
    pub(crate) pkce_verifier: String,
    pub(crate) created_at: Timestamp,
}

impl PendingLogin {
    /// The `state` sent to the provider, which comes back in the callback: the key under which a
    /// server-side store may keep this login.
    pub fn state(&self) -> &str {
        &self.state
    }

    /// When the login started.
    pub fn created_at(&self) -> Timestamp {
        self.created_at
    }
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("state", &"[redacted]")
            .field("nonce", &"[redacted]")
            .field("pkce_verifier", &"[redacted]")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The query parameters of the redirect back to the manager's callback URL.
///
/// On success the provider sends `code` and `state`; on failure `error` (with an optional
/// `error_description`) and `state`. Providers implementing RFC 9207 also send `iss`, which
/// [`OidcClient::complete_callback`](crate::OidcClient::complete_callback) checks against the
/// issuer (a defence against mix-up attacks). `Debug` redacts the code.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// The state sent in the authorization request.
    pub state: Option<String>,
    /// The standard error code, when the provider refused.
    pub error: Option<String>,
    /// The provider's explanation of `error`.
    pub error_description: Option<String>,
    /// The issuer that answered (RFC 9207).
    pub iss: Option<String>,
}

impl CallbackParams {
    /// Parses a callback query string (without the `?`). A repeated parameter is refused: a
    /// second `code` or `state` smuggled in must not be silently chosen between.
    pub fn from_query(query: &str) -> Result<CallbackParams, OidcError> {
        let mut params = CallbackParams::default();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*name {
                "code" => &mut params.code,
                "state" => &mut params.state,
                "error" => &mut params.error,
                "error_description" => &mut params.error_description,
                "iss" => &mut params.iss,
                _ => continue,
            };
            if slot.is_some() {
                return Err(OidcError::InvalidCallback(format!("repeats the `{name}` parameter")));
            }
            *slot = Some(value.into_owned());
        }
        Ok(params)
    }
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "[redacted]"))
            .field("state", &self.state.as_ref().map(|_| "[redacted]"))
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .field("iss", &self.iss)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_login_round_trips_and_hides_secrets() {
        let pending = PendingLogin {
            state: "st4te".into(),
            nonce: "n0nce".into(),
            pkce_verifier: "ver1fier".into(),
            created_at: Timestamp::from_second(1_700_000_000).unwrap(),
        };
        let json = serde_json::to_string(&pending).unwrap();
        assert_eq!(serde_json::from_str::<PendingLogin>(&json).unwrap(), pending);
        let debug = format!("{pending:?}");
        for secret in ["st4te", "n0nce", "ver1fier"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert_eq!(pending.state(), "st4te");
    }

    #[test]
    fn callback_query_parsing() {
        let params = CallbackParams::from_query("code=abc%2Bd&state=xyz&session_state=1&iss=https%3A%2F%2Fid").unwrap();
        assert_eq!(params.code.as_deref(), Some("abc+d"));
        assert_eq!(params.state.as_deref(), Some("xyz"));
        assert_eq!(params.iss.as_deref(), Some("https://id"));
        assert!(!format!("{params:?}").contains("abc"));

        let denied = CallbackParams::from_query("error=access_denied&error_description=no+thanks&state=s").unwrap();
        assert_eq!(denied.error.as_deref(), Some("access_denied"));
        assert_eq!(denied.error_description.as_deref(), Some("no thanks"));

        match CallbackParams::from_query("code=a&state=s&code=b") {
            Err(OidcError::InvalidCallback(reason)) => assert!(reason.contains("`code`"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
