//! A software WebAuthn authenticator that also plays the browser: it reads the relying party's
//! options JSON (`PublicKeyCredentialCreationOptionsJSON` / `…RequestOptionsJSON`) and answers
//! with the JSON that `PublicKeyCredential.toJSON()` gives in a browser, so a test can drive a
//! real passkey registration and login against the server end to end.
//!
//! It is written independently of the relying party in `patchdeck-crypto`: every byte
//! (clientDataJSON, CBOR attestation object, authenticator data, COSE key, signatures) is built
//! here by hand from the WebAuthn and CTAP2 specifications, so a mistake in the verifier is not
//! mirrored here. Each authenticator holds one credential, made by [`SoftAuthenticator::register`].
//!
//! Knobs make it misbehave for negative tests: replay an old signature counter, answer from
//! another origin (the `origin` argument), claim a cross-origin frame, hash another RP id,
//! answer even when its credential is not in the allow list, leave out the user handle, sign the
//! wrong bytes.
//!
//! Like the rest of the testkit it panics with a clear message on anything a real browser would
//! refuse (malformed options, no usable credential).

use std::fmt;

use data_encoding::BASE64URL_NOPAD;
// The `signature` crate's trait, shared by p256 and ed25519-dalek.
use p256::ecdsa::signature::Signer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Authenticator data flag bits (WebAuthn §6.1).
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// COSE algorithm identifiers.
const ES256: i64 = -7;
const EDDSA: i64 = -8;

enum Key {
    Es256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl Key {
    fn alg(&self) -> i64 {
        match self {
            Key::Es256(_) => ES256,
            Key::Ed25519(_) => EDDSA,
        }
    }

    /// The public key as a CTAP2-canonical COSE_Key.
    fn cose(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Key::Es256(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                let bytes = point.as_bytes();
                assert_eq!(bytes.len(), 65, "uncompressed P-256 point");
                cbor_head(&mut out, 5, 5);
                cbor_int(&mut out, 1); // kty
                cbor_int(&mut out, 2); // EC2
                cbor_int(&mut out, 3); // alg
                cbor_int(&mut out, ES256);
                cbor_int(&mut out, -1); // crv
                cbor_int(&mut out, 1); // P-256
                cbor_int(&mut out, -2); // x
                cbor_bytes(&mut out, &bytes[1..33]);
                cbor_int(&mut out, -3); // y
                cbor_bytes(&mut out, &bytes[33..]);
            }
            Key::Ed25519(key) => {
                cbor_head(&mut out, 5, 4);
                cbor_int(&mut out, 1); // kty
                cbor_int(&mut out, 1); // OKP
                cbor_int(&mut out, 3); // alg
                cbor_int(&mut out, EDDSA);
                cbor_int(&mut out, -1); // crv
                cbor_int(&mut out, 6); // Ed25519
                cbor_int(&mut out, -2); // x
                cbor_bytes(&mut out, key.verifying_key().as_bytes());
            }
        }
        out
    }

    /// A WebAuthn signature: ASN.1 DER for ES256, 64 raw bytes for Ed25519.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Key::Es256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
            Key::Ed25519(key) => {
                let signature: ed25519_dalek::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            }
        }
    }
}

/// The credential an authenticator made at registration.
#[derive(Debug, Clone)]
struct Credential {
    id: Vec<u8>,
    rp_id: String,
    user_handle: Vec<u8>,
}

/// A software authenticator with a built-in "browser"; see the module documentation.
pub struct SoftAuthenticator {
    key: Key,
    credential: Option<Credential>,
    sign_count: u32,
    has_counter: bool,
    user_verifying: bool,
    backup_eligible: bool,
    packed_self_attestation: bool,
    replayed_count: Option<u32>,
    cross_origin: bool,
    rp_id_override: Option<String>,
    ignore_allow_list: bool,
    omit_user_handle: bool,
    corrupt_signature: bool,
}

impl fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftAuthenticator")
            .field("alg", &self.key.alg())
            .field("credential", &self.credential)
            .field("sign_count", &self.sign_count)
            .finish_non_exhaustive()
    }
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("operating system random number generator");
    bytes
}

fn b64(bytes: &[u8]) -> String {
    BASE64URL_NOPAD.encode(bytes)
}

impl SoftAuthenticator {
    /// An authenticator with a fresh ES256 (P-256) key: user verifying, with a signature counter
    /// that starts at 0 and goes up by one per authentication, attestation `"none"`.
    pub fn new() -> Self {
        let key = loop {
            // Almost every 32-byte string is a valid P-256 scalar; retry on the rare one that is not.
            if let Ok(key) = p256::ecdsa::SigningKey::from_slice(&random::<32>()) {
                break key;
            }
        };
        Self::with_key(Key::Es256(key))
    }

    /// Like [`SoftAuthenticator::new`] with an Ed25519 (EdDSA) key.
    pub fn new_ed25519() -> Self {
        Self::with_key(Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&random::<32>())))
    }

    fn with_key(key: Key) -> Self {
        Self {
            key,
            credential: None,
            sign_count: 0,
            has_counter: true,
            user_verifying: true,
            backup_eligible: false,
            packed_self_attestation: false,
            replayed_count: None,
            cross_origin: false,
            rp_id_override: None,
            ignore_allow_list: false,
            omit_user_handle: false,
            corrupt_signature: false,
        }
    }

    /// Does not verify the user: the UV flag stays clear (a security key without PIN).
    pub fn without_user_verification(mut self) -> Self {
        self.user_verifying = false;
        self
    }

    /// Has no signature counter: every counter it reports is 0, as synced passkeys do.
    pub fn without_sign_counter(mut self) -> Self {
        self.has_counter = false;
        self
    }

    /// Reports the credential as backup eligible and backed up (BE and BS flags), as a synced
    /// passkey does.
    pub fn backed_up(mut self) -> Self {
        self.backup_eligible = true;
        self
    }

    /// Answers registrations with `"packed"` self attestation (signed by the credential key,
    /// no certificate) instead of `"none"`.
    pub fn with_packed_self_attestation(mut self) -> Self {
        self.packed_self_attestation = true;
        self
    }

    /// The next authentication reports `count` as its signature counter (once), without moving
    /// the real counter: what a cloned authenticator would send.
    pub fn replay_sign_count(&mut self, count: u32) {
        self.replayed_count = Some(count);
    }

    /// Claims (or stops claiming) that the ceremony ran in a cross-origin iframe.
    pub fn set_cross_origin(&mut self, cross_origin: bool) {
        self.cross_origin = cross_origin;
    }

    /// Hashes `rp_id` into the authenticator data instead of the options' RP id (`None` goes
    /// back to normal).
    pub fn set_rp_id_override(&mut self, rp_id: Option<&str>) {
        self.rp_id_override = rp_id.map(str::to_owned);
    }

    /// Answers an authentication even when its credential is not in `allowCredentials`, as a
    /// malicious client could.
    pub fn set_ignore_allow_list(&mut self, ignore: bool) {
        self.ignore_allow_list = ignore;
    }

    /// Sends `userHandle: null` in authentications.
    pub fn set_omit_user_handle(&mut self, omit: bool) {
        self.omit_user_handle = omit;
    }

    /// Signs other bytes than the ones it sends, so the signature does not verify.
    pub fn set_corrupt_signature(&mut self, corrupt: bool) {
        self.corrupt_signature = corrupt;
    }

    /// The credential id, once registered.
    pub fn credential_id(&self) -> Option<&[u8]> {
        self.credential.as_ref().map(|c| c.id.as_slice())
    }

    /// The user handle the credential was registered for.
    pub fn user_handle(&self) -> Option<&[u8]> {
        self.credential.as_ref().map(|c| c.user_handle.as_slice())
    }

    /// The current signature counter.
    pub fn sign_count(&self) -> u32 {
        self.sign_count
    }

    /// Plays `navigator.credentials.create({ publicKey: options })` on the page at `origin` and
    /// returns `PublicKeyCredential.toJSON()`. `options` is the creation options JSON, bare or
    /// wrapped in `{"publicKey": …}`.
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        assert!(self.credential.is_none(), "this SoftAuthenticator already holds a credential");
        let options = options.get("publicKey").unwrap_or(options);
        let challenge = str_field(options, "/challenge");
        let rp_id = options.pointer("/rp/id").and_then(Value::as_str).map_or_else(|| host_of(origin), str::to_owned);
        let user_handle = decode(str_field(options, "/user/id"), "user.id");
        let algs: Vec<i64> = options
            .get("pubKeyCredParams")
            .and_then(Value::as_array)
            .expect("creation options have pubKeyCredParams")
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("public-key"))
            .filter_map(|p| p.get("alg").and_then(Value::as_i64))
            .collect();
        assert!(algs.contains(&self.key.alg()), "NotSupportedError: the server does not accept {}", self.key.alg());

        let id = random::<32>().to_vec();
        let client_data = client_data_json("webauthn.create", challenge, origin, self.cross_origin);
        let mut auth_data = self.auth_data_head(&rp_id, AT);
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID
        auth_data.extend_from_slice(&u16::try_from(id.len()).expect("short id").to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&self.key.cose());

        let mut attestation = Vec::new();
        cbor_head(&mut attestation, 5, 3);
        cbor_text(&mut attestation, "fmt");
        if self.packed_self_attestation {
            cbor_text(&mut attestation, "packed");
            cbor_text(&mut attestation, "attStmt");
            cbor_head(&mut attestation, 5, 2);
            cbor_text(&mut attestation, "alg");
            cbor_int(&mut attestation, self.key.alg());
            cbor_text(&mut attestation, "sig");
            cbor_bytes(&mut attestation, &self.key.sign(&signed_bytes(&auth_data, &client_data)));
        } else {
            cbor_text(&mut attestation, "none");
            cbor_text(&mut attestation, "attStmt");
            cbor_head(&mut attestation, 5, 0);
        }
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);

        self.credential = Some(Credential { id: id.clone(), rp_id, user_handle });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "attestationObject": b64(&attestation),
                "authenticatorData": b64(&auth_data),
                "publicKeyAlgorithm": self.key.alg(),
                "transports": ["internal"],
            },
        })
    }

    /// Plays `navigator.credentials.get({ publicKey: options })` on the page at `origin` and
    /// returns `PublicKeyCredential.toJSON()`. Each call moves the signature counter up by one
    /// (unless the authenticator has none or a replayed count was set).
    pub fn authenticate(&mut self, options: &Value, origin: &str) -> Value {
        let credential = self.credential.clone().expect("NotAllowedError: this SoftAuthenticator holds no credential");
        let options = options.get("publicKey").unwrap_or(options);
        let challenge = str_field(options, "/challenge");
        let rp_id = options.get("rpId").and_then(Value::as_str).map_or_else(|| host_of(origin), str::to_owned);
        assert_eq!(rp_id, credential.rp_id, "NotAllowedError: the credential is for another RP id");
        let allowed: Vec<Vec<u8>> = options
            .get("allowCredentials")
            .and_then(Value::as_array)
            .map(|list| list.iter().map(|d| decode(str_field(d, "/id"), "allowCredentials[].id")).collect())
            .unwrap_or_default();
        assert!(
            allowed.is_empty() || allowed.contains(&credential.id) || self.ignore_allow_list,
            "NotAllowedError: the credential is not in allowCredentials"
        );

        let count = match self.replayed_count.take() {
            Some(count) => count,
            None if self.has_counter => {
                self.sign_count += 1;
                self.sign_count
            }
            None => 0,
        };
        let client_data = client_data_json("webauthn.get", challenge, origin, self.cross_origin);
        let mut auth_data = self.auth_data_head(&rp_id, 0);
        auth_data[33..37].copy_from_slice(&count.to_be_bytes());
        let mut signed = signed_bytes(&auth_data, &client_data);
        if self.corrupt_signature {
            signed.push(0);
        }
        let signature = self.key.sign(&signed);
        let user_handle = if self.omit_user_handle { Value::Null } else { Value::String(b64(&credential.user_handle)) };
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": user_handle,
            },
        })
    }

    /// rpIdHash ‖ flags ‖ signCount (the current counter, 0 without one).
    fn auth_data_head(&self, rp_id: &str, extra_flags: u8) -> Vec<u8> {
        let hashed = self.rp_id_override.as_deref().unwrap_or(rp_id);
        let mut flags = UP | extra_flags;
        if self.user_verifying {
            flags |= UV;
        }
        if self.backup_eligible {
            flags |= BE | BS;
        }
        let count = if self.has_counter { self.sign_count } else { 0 };
        let mut out = Sha256::digest(hashed.as_bytes()).to_vec();
        out.push(flags);
        out.extend_from_slice(&count.to_be_bytes());
        out
    }
}

/// authenticatorData ‖ SHA-256(clientDataJSON): what both attestation and assertion sign.
fn signed_bytes(auth_data: &[u8], client_data: &str) -> Vec<u8> {
    let mut out = auth_data.to_vec();
    out.extend_from_slice(&Sha256::digest(client_data.as_bytes()));
    out
}

/// clientDataJSON with the members in the order browsers write them.
fn client_data_json(type_: &str, challenge: &str, origin: &str, cross_origin: bool) -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("strings serialise");
    format!(
        "{{\"type\":{},\"challenge\":{},\"origin\":{},\"crossOrigin\":{cross_origin}}}",
        quote(type_),
        quote(challenge),
        quote(origin)
    )
}

fn str_field<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("options have no string at {pointer}"))
}

fn decode(text: &str, what: &str) -> Vec<u8> {
    BASE64URL_NOPAD.decode(text.as_bytes()).unwrap_or_else(|e| panic!("{what} is not unpadded base64url: {e}"))
}

/// The host of `scheme://host[:port]`: the RP id a browser uses when the options name none.
fn host_of(origin: &str) -> String {
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    authority.split([':', '/']).next().unwrap_or_default().to_owned()
}

/// A CBOR head (RFC 8949 §3): major type and argument, in the shortest form.
fn cbor_head(out: &mut Vec<u8>, major: u8, argument: u64) {
    let major = major << 5;
    if argument < 24 {
        out.push(major | argument as u8);
    } else if let Ok(byte) = u8::try_from(argument) {
        out.extend_from_slice(&[major | 24, byte]);
    } else if let Ok(short) = u16::try_from(argument) {
        out.push(major | 25);
        out.extend_from_slice(&short.to_be_bytes());
    } else if let Ok(word) = u32::try_from(argument) {
        out.push(major | 26);
        out.extend_from_slice(&word.to_be_bytes());
    } else {
        out.push(major | 27);
        out.extend_from_slice(&argument.to_be_bytes());
    }
}

fn cbor_int(out: &mut Vec<u8>, value: i64) {
    if value >= 0 {
        cbor_head(out, 0, value.unsigned_abs());
    } else {
        cbor_head(out, 1, (-1 - value).unsigned_abs());
    }
}

fn cbor_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    cbor_head(out, 2, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn cbor_text(out: &mut Vec<u8>, text: &str) {
    cbor_head(out, 3, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbor_heads_use_the_shortest_form() {
        let encode = |major, argument| {
            let mut out = Vec::new();
            cbor_head(&mut out, major, argument);
            out
        };
        assert_eq!(encode(0, 23), [0x17]);
        assert_eq!(encode(0, 24), [0x18, 24]);
        assert_eq!(encode(2, 300), [0x59, 0x01, 0x2c]);
        assert_eq!(encode(5, 70_000), [0xba, 0x00, 0x01, 0x11, 0x70]);
        assert_eq!(encode(0, u64::MAX), [0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        let mut negative = Vec::new();
        cbor_int(&mut negative, -7);
        cbor_int(&mut negative, -257);
        assert_eq!(negative, [0x26, 0x39, 0x01, 0x00], "RFC 8949 appendix A: -7 and -257");
    }

    #[test]
    fn es256_cose_key_is_the_ctap2_canonical_map() {
        let authenticator = SoftAuthenticator::new();
        let cose = authenticator.key.cose();
        assert_eq!(cose.len(), 77);
        assert_eq!(cose[..10], [0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]);
        assert_eq!(cose[42..45], [0x22, 0x58, 0x20]);
    }

    #[test]
    fn ed25519_cose_key_is_the_ctap2_canonical_map() {
        let authenticator = SoftAuthenticator::new_ed25519();
        let cose = authenticator.key.cose();
        assert_eq!(cose.len(), 42);
        assert_eq!(cose[..10], [0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20]);
    }

    #[test]
    fn client_data_json_escapes_and_keeps_browser_order() {
        let json = client_data_json("webauthn.get", "abc", "https://x.example\"", false);
        assert_eq!(
            json,
            r#"{"type":"webauthn.get","challenge":"abc","origin":"https://x.example\"","crossOrigin":false}"#
        );
    }

    #[test]
    fn host_of_strips_scheme_and_port() {
        assert_eq!(host_of("https://patchdeck.example.com:8443"), "patchdeck.example.com");
        assert_eq!(host_of("http://localhost"), "localhost");
    }

    #[test]
    fn registration_and_counter_follow_the_options() {
        let mut authenticator = SoftAuthenticator::new();
        let options = json!({
            "rp": {"id": "example.com", "name": "Example"},
            "user": {"id": "AQID", "name": "alice", "displayName": "Alice"},
            "challenge": "Y2hhbGxlbmdl",
            "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
        });
        let response = authenticator.register(&json!({ "publicKey": options }), "https://example.com");
        assert_eq!(response["type"], "public-key");
        assert_eq!(response["id"], response["rawId"]);
        assert_eq!(authenticator.user_handle(), Some(&[1u8, 2, 3][..]));
        let client_data = decode(response["response"]["clientDataJSON"].as_str().unwrap(), "clientDataJSON");
        assert_eq!(
            String::from_utf8(client_data).unwrap(),
            r#"{"type":"webauthn.create","challenge":"Y2hhbGxlbmdl","origin":"https://example.com","crossOrigin":false}"#
        );
        let auth_data = decode(response["response"]["authenticatorData"].as_str().unwrap(), "authenticatorData");
        assert_eq!(auth_data[..32], Sha256::digest(b"example.com")[..]);
        assert_eq!(auth_data[32], UP | UV | AT);
        assert_eq!(auth_data[33..37], [0, 0, 0, 0]);

        let request = json!({"challenge": "AAAA", "rpId": "example.com", "allowCredentials": []});
        let first = authenticator.authenticate(&request, "https://example.com");
        let second = authenticator.authenticate(&request, "https://example.com");
        let count = |r: &Value| {
            let data = decode(r["response"]["authenticatorData"].as_str().unwrap(), "authenticatorData");
            u32::from_be_bytes(data[33..37].try_into().unwrap())
        };
        assert_eq!((count(&first), count(&second)), (1, 2));
        authenticator.replay_sign_count(1);
        assert_eq!(count(&authenticator.authenticate(&request, "https://example.com")), 1);
        assert_eq!(count(&authenticator.authenticate(&request, "https://example.com")), 3);
    }

    #[test]
    #[should_panic(expected = "NotSupportedError")]
    fn refuses_options_without_its_algorithm() {
        let options = json!({
            "rp": {"id": "example.com", "name": "Example"},
            "user": {"id": "AQID", "name": "alice", "displayName": "Alice"},
            "challenge": "AAAA",
            "pubKeyCredParams": [{"type": "public-key", "alg": -257}],
        });
        SoftAuthenticator::new().register(&options, "https://example.com");
    }
}
