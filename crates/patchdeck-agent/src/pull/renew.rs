//! Certificate renewal: when less than a third of the client certificate's validity is left
//! (or less than [`RENEW_BEFORE_ENV`] seconds, a knob for tests), the agent makes a new key and
//! CSR, calls `POST /agent/v1/certificate` over mutual TLS with the current certificate, and
//! swaps key and certificate crash-safely ([`Identity::replace_certificate`]).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use patchdeck_proto::agent::{RenewRequest, PROTOCOL_VERSION};
use zeroize::Zeroizing;

use super::client::{self, AgentClient, ClientError};
use super::identity::{Identity, IdentityError, PullPaths};

/// Renew when fewer seconds than this are left, whatever the validity (tests use it to force a
/// renewal of a short-lived certificate).
pub const RENEW_BEFORE_ENV: &str = "PATCHDECK_AGENT_RENEW_BEFORE_SECS";

/// How often the certificate's remaining validity is checked.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// The [`RENEW_BEFORE_ENV`] value, if set and valid.
pub fn renew_before_from_env() -> Option<Duration> {
    super::secs_from_env(RENEW_BEFORE_ENV)
}

/// Whether a certificate valid from `not_before` to `not_after` should be renewed at `now`.
pub fn renewal_due(
    not_before: Timestamp,
    not_after: Timestamp,
    now: Timestamp,
    renew_before: Option<Duration>,
) -> bool {
    let left = not_after.duration_since(now);
    let total = not_after.duration_since(not_before);
    if left < total / 3 {
        return true;
    }
    renew_before.and_then(|d| SignedDuration::try_from(d).ok()).is_some_and(|threshold| left < threshold)
}

/// Why a renewal failed (the old certificate stays in use).
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("making a key: {0}")]
    Key(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the renewed certificate is unusable: {0}")]
    BadAnswer(String),
    #[error("storing the renewed certificate: {0}")]
    Store(#[from] IdentityError),
}

/// Renews the certificate of `identity` through `client`, stores the new pair, and returns the
/// client to use from now on.
pub async fn renew(
    identity: &mut Identity,
    paths: &PullPaths,
    client: &AgentClient,
    request_timeout: Duration,
) -> Result<AgentClient, RenewError> {
    let (csr_pem, key) =
        patchdeck_crypto::ca::make_csr(&identity.host_id.to_string()).map_err(|e| RenewError::Key(e.to_string()))?;
    let key_pem = Zeroizing::new(key.expose().to_owned());
    let answer = client.renew(&RenewRequest { protocol_version: PROTOCOL_VERSION, csr_pem }).await?;
    let (_, not_after) = super::identity::validity_of(&answer.certificate_pem).map_err(RenewError::BadAnswer)?;
    if not_after <= Timestamp::now() {
        return Err(RenewError::BadAnswer(format!("it expired at {not_after}")));
    }
    // Check that the pair works before it replaces the one that does.
    let ca_pem = super::enroll::merge_certificates(&identity.ca_pem, &answer.ca_pem);
    client::pinned_tls(&ca_pem, Some((&answer.certificate_pem, &key_pem)))
        .map_err(|e| RenewError::BadAnswer(e.to_string()))?;
    identity.replace_certificate(paths, key_pem, answer.certificate_pem, Some(ca_pem))?;
    AgentClient::new(identity, request_timeout).map_err(RenewError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(days: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + days * 86_400).unwrap()
    }

    #[test]
    fn renewal_is_due_in_the_last_third_of_the_validity() {
        let (from, to) = (at(0), at(397));
        assert!(!renewal_due(from, to, at(0), None));
        assert!(!renewal_due(from, to, at(264), None), "133 days left of 397");
        assert!(renewal_due(from, to, at(265), None), "132 days left");
        assert!(renewal_due(from, to, at(400), None), "expired");
        // The test knob: renew when fewer seconds than this are left.
        assert!(!renewal_due(from, to, at(0), Some(Duration::from_secs(86_400))));
        assert!(renewal_due(from, to, at(0), Some(Duration::from_secs(398 * 86_400))));
    }
}
