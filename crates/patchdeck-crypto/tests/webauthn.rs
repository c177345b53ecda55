//! Passkey ceremonies end to end: the relying party against the testkit's software
//! authenticator, exchanging the same JSON text a browser and the server would.

use jiff::{SignedDuration, Timestamp};
use patchdeck_crypto::webauthn::{
    finish_authentication, finish_registration, start_authentication, start_registration, AuthenticationResponse,
    AuthenticationResult, CoseAlgorithm, CredentialId, NewCredential, RegistrationResponse, RelyingParty,
    StoredCredential, WebauthnError, DEFAULT_CEREMONY_LIFETIME,
};
use patchdeck_testkit::webauthn::SoftAuthenticator;
use serde_json::Value;

const RP_ID: &str = "patchdeck.example.com";
const ORIGIN: &str = "https://patchdeck.example.com:8443";
const ALICE: &[u8] = b"alice-handle";
const BOB: &[u8] = b"bob-handle";

fn rp() -> RelyingParty {
    RelyingParty::new(RP_ID, "Patchdeck", vec![ORIGIN.into(), "https://patchdeck.example.com".into()]).unwrap()
}

fn now() -> Timestamp {
    Timestamp::from_second(1_750_000_000).unwrap()
}

/// Sends `value` through JSON text, as over HTTP.
fn over_the_wire<T: serde::Serialize>(value: &T) -> Value {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

/// A full registration of `authenticator` for `user` from the page at `origin`.
fn register(authenticator: &mut SoftAuthenticator, user: &[u8], origin: &str) -> Result<NewCredential, WebauthnError> {
    let (options, state) =
        start_registration(&rp(), user, "someone", "Someone", &[], now(), DEFAULT_CEREMONY_LIFETIME).unwrap();
    let answer = authenticator.register(&over_the_wire(&options), origin);
    let response: RegistrationResponse = serde_json::from_str(&answer.to_string()).unwrap();
    finish_registration(&rp(), &state, &response, now())
}

fn stored(credential: &NewCredential, user: &[u8]) -> StoredCredential {
    StoredCredential {
        credential_id: credential.credential_id.clone(),
        user_handle: user.to_vec(),
        public_key_cose: credential.public_key_cose.clone(),
        sign_count: credential.sign_count,
    }
}

/// A full authentication against `stored` with the allow list `allow`, from `origin`.
fn login(
    authenticator: &mut SoftAuthenticator,
    stored: &StoredCredential,
    allow: &[CredentialId],
    origin: &str,
) -> Result<AuthenticationResult, WebauthnError> {
    let (options, state) = start_authentication(&rp(), allow, now(), DEFAULT_CEREMONY_LIFETIME).unwrap();
    let answer = authenticator.authenticate(&over_the_wire(&options), origin);
    let response: AuthenticationResponse = serde_json::from_str(&answer.to_string()).unwrap();
    finish_authentication(&rp(), &state, &response, stored, now())
}

fn round_trip(mut authenticator: SoftAuthenticator, algorithm: CoseAlgorithm) {
    let credential = register(&mut authenticator, ALICE, ORIGIN).unwrap();
    assert_eq!(credential.algorithm, algorithm);
    assert_eq!(credential.credential_id.as_bytes(), authenticator.credential_id().unwrap());
    assert_eq!(credential.sign_count, 0);
    assert!(credential.user_verified);
    assert!(!credential.backup_eligible);
    assert_eq!(credential.aaguid, [0; 16]);

    let mut stored = stored(&credential, ALICE);
    let allow = [credential.credential_id.clone()];
    for expected in 1..=3 {
        let result = login(&mut authenticator, &stored, &allow, ORIGIN).unwrap();
        assert_eq!(result.new_sign_count, expected);
        assert!(result.user_verified);
        stored.sign_count = result.new_sign_count;
    }

    // A discoverable-credential login: no allow list, the server finds the credential by id.
    let (options, state) = start_authentication(&rp(), &[], now(), DEFAULT_CEREMONY_LIFETIME).unwrap();
    let answer = authenticator.authenticate(&over_the_wire(&options), "https://patchdeck.example.com");
    let response: AuthenticationResponse = serde_json::from_value(answer).unwrap();
    assert_eq!(response.credential_id().unwrap(), stored.credential_id);
    assert_eq!(response.user_handle().unwrap().as_deref(), Some(ALICE));
    let result = finish_authentication(&rp(), &state, &response, &stored, now()).unwrap();
    assert_eq!(result.new_sign_count, 4);
}

#[test]
fn es256_register_then_authenticate() {
    round_trip(SoftAuthenticator::new(), CoseAlgorithm::Es256);
}

#[test]
fn ed25519_register_then_authenticate() {
    round_trip(SoftAuthenticator::new_ed25519(), CoseAlgorithm::EdDsa);
}

#[test]
fn packed_self_attestation_is_verified_and_accepted() {
    for (authenticator, algorithm) in [
        (SoftAuthenticator::new().with_packed_self_attestation(), CoseAlgorithm::Es256),
        (SoftAuthenticator::new_ed25519().with_packed_self_attestation(), CoseAlgorithm::EdDsa),
    ] {
        let mut authenticator = authenticator;
        let credential = register(&mut authenticator, ALICE, ORIGIN).unwrap();
        assert_eq!(credential.algorithm, algorithm);
        let result = login(&mut authenticator, &stored(&credential, ALICE), &[], ORIGIN).unwrap();
        assert_eq!(result.new_sign_count, 1);
    }
}

#[test]
fn a_passkey_without_counter_or_user_verification_is_reported_as_such() {
    let mut authenticator = SoftAuthenticator::new().without_sign_counter().without_user_verification().backed_up();
    let credential = register(&mut authenticator, ALICE, ORIGIN).unwrap();
    assert!(!credential.user_verified);
    assert!(credential.backup_eligible && credential.backed_up);
    let stored = stored(&credential, ALICE);
    for _ in 0..2 {
        let result = login(&mut authenticator, &stored, &[], ORIGIN).unwrap();
        assert_eq!(
            result,
            AuthenticationResult { new_sign_count: 0, user_verified: false, backup_eligible: true, backed_up: true }
        );
    }
}

#[test]
fn a_wrong_origin_is_refused() {
    let mut authenticator = SoftAuthenticator::new();
    let result = register(&mut authenticator, ALICE, "https://patchdeck.example.com.evil.test");
    assert!(matches!(result, Err(WebauthnError::OriginNotAllowed(_))), "{result:?}");

    let mut authenticator = SoftAuthenticator::new();
    let credential = register(&mut authenticator, ALICE, ORIGIN).unwrap();
    let stored = stored(&credential, ALICE);
    for origin in ["https://evil.test", "http://patchdeck.example.com:8443", "https://patchdeck.example.com:444"] {
        let result = login(&mut authenticator, &stored, &[], origin);
        assert!(matches!(result, Err(WebauthnError::OriginNotAllowed(_))), "{origin}: {result:?}");
    }
    assert!(login(&mut authenticator, &stored, &[], ORIGIN).is_ok(), "the refusals changed nothing on the server");
}

#[test]
fn a_replayed_counter_is_refused_as_a_possible_clone() {
    let mut authenticator = SoftAuthenticator::new();
    let credential = register(&mut authenticator, ALICE, ORIGIN).unwrap();
    let mut stored = stored(&credential, ALICE);
    for _ in 0..2 {
        stored.sign_count = login(&mut authenticator, &stored, &[], ORIGIN).unwrap().new_sign_count;
    }
    assert_eq!(stored.sign_count, 2);
    for replayed in [2, 1, 0] {
        authenticator.replay_sign_count(replayed);
        let result = login(&mut authenticator, &stored, &[], ORIGIN);
        assert!(
            matches!(result, Err(WebauthnError::SignCountRegression { stored: 2, received }) if received == replayed),
            "{replayed}: {result:?}"
        );
    }
    assert_eq!(login(&mut authenticator, &stored, &[], ORIGIN).unwrap().new_sign_count, 3);
}

#[test]
fn a_response_for_another_challenge_is_refused() {
    let mut authenticator = SoftAuthenticator::new();
    let (answered, _) =
        start_registration(&rp(), ALICE, "alice", "Alice", &[], now(), DEFAULT_CEREMONY_LIFETIME).unwrap();
    let (_, pending) =
        start_registration(&rp(), ALICE, "alice", "Alice", &[], now(), DEFAULT_CEREMONY_LIFETIME).unwrap();
    let response: RegistrationResponse =
        serde_json::from_value(authenticator.register(&over_the_wire(&answered), ORIGIN)).unwrap();
    let result = finish_registration(&rp(), &pending, &response, now());
    assert!(matches!(result, Err(WebauthnError::ChallengeMismatch)), "{result:?}");

    let mut authenticator = SoftAuthenticator::new_ed25519();
    let stored = stored(&register(&mut authenticator, ALICE, ORIGIN).unwrap(), ALICE);
    let (answered, _) = start_authentication(&rp(), &[], now(), DEFAULT_CEREMONY_LIFETIME).unwrap();
    let (_, pending) = start_authentication(&rp(), &[], now(), DEFAULT_CEREMONY_LIFETIME).unwrap();
    let response: AuthenticationResponse =
        serde_json::from_value(authenticator.authenticate(&over_the_wire(&answered), ORIGIN)).unwrap();
    let result = finish_authentication(&rp(), &pending, &response, &stored, now());
    assert!(matches!(result, Err(WebauthnError::ChallengeMismatch)), "{result:?}");
}

#[test]
fn another_users_credential_is_refused() {
    let mut alice = SoftAuthenticator::new();
    let alice_stored = stored(&register(&mut alice, ALICE, ORIGIN).unwrap(), ALICE);
    let mut bob = SoftAuthenticator::new_ed25519();
    let bob_credential = register(&mut bob, BOB, ORIGIN).unwrap();

    // Alice typed her name, so only her credential may answer; Bob's (forced through) may not.
    bob.set_ignore_allow_list(true);
    let result = login(&mut bob, &alice_stored, std::slice::from_ref(&alice_stored.credential_id), ORIGIN);
    assert!(matches!(result, Err(WebauthnError::CredentialNotAllowed)), "{result:?}");

    // Checked against Alice's stored credential, Bob's answer does not match it.
    let result = login(&mut bob, &alice_stored, &[], ORIGIN);
    assert!(matches!(result, Err(WebauthnError::CredentialMismatch)), "{result:?}");

    // Bob's credential filed under Alice's account: the user handle gives it away.
    let misfiled = stored(&bob_credential, ALICE);
    let result = login(&mut bob, &misfiled, &[], ORIGIN);
    assert!(matches!(result, Err(WebauthnError::UserHandleMismatch)), "{result:?}");

    // Alice's key cannot pass for Bob's credential: the signature is checked with Bob's key.
    let mut forged = stored(&bob_credential, BOB);
    forged.credential_id = alice_stored.credential_id.clone();
    forged.user_handle = ALICE.to_vec();
    let result = login(&mut alice, &forged, &[], ORIGIN);
    assert!(matches!(result, Err(WebauthnError::BadSignature)), "{result:?}");
}

#[test]
fn misbehaving_authenticators_are_refused() {
    let mut authenticator = SoftAuthenticator::new();
    authenticator.set_rp_id_override(Some("example.com"));
    let result = register(&mut authenticator, ALICE, ORIGIN);
    assert!(matches!(result, Err(WebauthnError::RpIdHashMismatch)), "{result:?}");

    let mut authenticator = SoftAuthenticator::new();
    authenticator.set_cross_origin(true);
    let result = register(&mut authenticator, ALICE, ORIGIN);
    assert!(matches!(result, Err(WebauthnError::CrossOrigin)), "{result:?}");

    let mut authenticator = SoftAuthenticator::new();
    let stored = stored(&register(&mut authenticator, ALICE, ORIGIN).unwrap(), ALICE);
    authenticator.set_corrupt_signature(true);
    let result = login(&mut authenticator, &stored, &[], ORIGIN);
    assert!(matches!(result, Err(WebauthnError::BadSignature)), "{result:?}");
    authenticator.set_corrupt_signature(false);

    authenticator.set_rp_id_override(Some("evil.example.com"));
    let result = login(&mut authenticator, &stored, &[], ORIGIN);
    assert!(matches!(result, Err(WebauthnError::RpIdHashMismatch)), "{result:?}");
    authenticator.set_rp_id_override(None);

    authenticator.set_omit_user_handle(true);
    let result = login(&mut authenticator, &stored, &[], ORIGIN);
    assert!(matches!(result, Err(WebauthnError::MissingUserHandle)), "{result:?}");
    let result = login(&mut authenticator, &stored, std::slice::from_ref(&stored.credential_id), ORIGIN);
    assert!(result.is_ok(), "with an allow list the user is already known: {result:?}");
}

#[test]
fn an_expired_ceremony_is_refused() {
    let mut authenticator = SoftAuthenticator::new();
    let (options, state) =
        start_registration(&rp(), ALICE, "alice", "Alice", &[], now(), SignedDuration::from_secs(60)).unwrap();
    assert_eq!(over_the_wire(&options)["timeout"], 60_000);
    let response: RegistrationResponse =
        serde_json::from_value(authenticator.register(&over_the_wire(&options), ORIGIN)).unwrap();
    let late = now().checked_add(SignedDuration::from_secs(61)).unwrap();
    let result = finish_registration(&rp(), &state, &response, late);
    assert!(matches!(result, Err(WebauthnError::Expired { .. })), "{result:?}");
    assert!(finish_registration(&rp(), &state, &response, now()).is_ok());
}
