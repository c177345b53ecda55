//! Second factor for user accounts: time-based one-time passwords and recovery codes.
//!
//! **TOTP** follows RFC 6238 with the parameters every authenticator app supports without being
//! told: HMAC-SHA1, **6 digits, 30-second steps, T0 = 0**. SHA-1 is fine here: HOTP needs only
//! HMAC's PRF property, which SHA-1 still has, and apps that ignore the `algorithm` parameter
//! would silently produce wrong codes for SHA-256. Secrets are **20 random bytes** (160 bits, the
//! HMAC-SHA1 block-size recommendation of RFC 4226 §4), shown to the user as unpadded base32.
//!
//! [`verify`] accepts the current step and **one step either side** (±30 s of clock drift, the
//! RFC 6238 §5.2 recommendation) and returns the step that matched. The caller stores it and
//! passes it back as `last_used_step`, so a code (or an earlier one) can never be used twice.
//!
//! **Recovery codes** are 10 codes of 12 characters as `xxxx-xxxx-xxxx` from a 31-character
//! alphabet without look-alikes (no `0 1 i l o`): about 59 bits each, far beyond online guessing
//! with rate limiting. They are random, so an unsalted SHA-256 is enough for storage: there is no
//! dictionary to precompute. Input is normalised (case, spaces, dashes) before hashing.

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::RandomError;

/// Length of a time step in seconds.
pub const STEP_SECONDS: i64 = 30;
/// Number of digits of a code.
pub const DIGITS: u32 = 6;
/// Length of a generated secret in bytes.
pub const SECRET_LEN: usize = 20;
/// Issuer shown by authenticator apps.
pub const ISSUER: &str = "Patchdeck";
/// Number of recovery codes in a set.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// The characters recovery codes are made of.
pub const RECOVERY_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";

/// What went wrong with a TOTP secret.
#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    /// The stored or entered secret is not valid base32.
    #[error("the TOTP secret is not valid unpadded base32 (RFC 4648)")]
    InvalidBase32,
    /// The secret decodes to fewer bytes than RFC 4226 allows.
    #[error("the TOTP secret has {0} bytes, at least 16 are required")]
    TooShort(usize),
    /// No secret could be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A shared TOTP secret. `Debug` does not show it; the bytes are wiped on drop.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);
crate::redacted_debug!(TotpSecret);

impl TotpSecret {
    /// A new random 20-byte secret.
    pub fn generate() -> Result<Self, TotpError> {
        let bytes = crate::random_bytes::<SECRET_LEN>()?;
        Ok(Self(Zeroizing::new(bytes.to_vec())))
    }

    /// Reads a secret from base32 as stored or typed: case, spaces and `=` padding are ignored.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        let cleaned: Zeroizing<String> = Zeroizing::new(
            text.chars().filter(|c| !c.is_whitespace() && *c != '=').map(|c| c.to_ascii_uppercase()).collect(),
        );
        let bytes = data_encoding::BASE32_NOPAD.decode(cleaned.as_bytes()).map_err(|_| TotpError::InvalidBase32)?;
        Self::from_bytes(bytes)
    }

    /// A secret from raw bytes (at least 16, RFC 4226 §4).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, TotpError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < 16 {
            return Err(TotpError::TooShort(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The raw secret bytes (to encrypt for storage).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as unpadded upper-case base32, for storage and for manual entry in an app.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&self.0))
    }

    /// The `otpauth://` URI an authenticator app reads from a QR code. `account` is
    /// percent-encoded, so any user name is safe.
    pub fn provisioning_uri(&self, account: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "otpauth://totp/{ISSUER}:{}?secret={}&issuer={ISSUER}",
            percent_encode(account),
            self.to_base32().as_str()
        ))
    }

    /// The 6-digit code for a time step, zero-padded.
    pub fn code_at_step(&self, step: u64) -> Zeroizing<String> {
        Zeroizing::new(format!("{:0width$}", hotp(&self.0, step, DIGITS), width = DIGITS as usize))
    }

    /// The 6-digit code at `now`; `None` before 1970.
    pub fn code_at(&self, now: Timestamp) -> Option<Zeroizing<String>> {
        step_at(now).map(|step| self.code_at_step(step))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// HOTP (RFC 4226 §5.3) with HMAC-SHA1: the code for `counter` with `digits` digits (≤ 9).
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary =
        u32::from_be_bytes([digest[offset], digest[offset + 1], digest[offset + 2], digest[offset + 3]]) & 0x7fff_ffff;
    binary % 10u32.pow(digits.min(9))
}

/// The RFC 6238 time step (`floor(unix seconds / 30)`) at `now`; `None` before 1970.
pub fn step_at(now: Timestamp) -> Option<u64> {
    u64::try_from(now.as_second().div_euclid(STEP_SECONDS)).ok()
}

/// Checks a 6-digit `code` typed by the user at `now`.
///
/// Accepts the current step and one step either side, but only steps after `last_used_step`
/// (the value a previous successful call returned), so no code is accepted twice. Returns the
/// step that matched; the caller must store it before answering. Anything that is not exactly
/// six ASCII digits (spaces around it are ignored) is refused. Each candidate is compared in
/// constant time.
pub fn verify(secret: &TotpSecret, code: &str, now: Timestamp, last_used_step: Option<u64>) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now)?;
    let mut matched = None;
    for step in [current.checked_sub(1), Some(current), current.checked_add(1)].into_iter().flatten() {
        if last_used_step.is_some_and(|last| step <= last) {
            continue;
        }
        let expected = secret.code_at_step(step);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// A recovery code as shown to the user once. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(Zeroizing<String>);
crate::redacted_debug!(RecoveryCode);

/// The SHA-256 of a normalised recovery code: what the database stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecoveryCodeHash(pub [u8; 32]);

impl RecoveryCodeHash {
    /// Lower-case hex (64 characters) for storage.
    pub fn to_hex(&self) -> String {
        crate::hex(&self.0)
    }

    /// Reads the hex form back; `None` unless it is 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl RecoveryCode {
    /// The code as `xxxx-xxxx-xxxx`, to show the user.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash to store.
    pub fn hash(&self) -> RecoveryCodeHash {
        hash_normalised(&self.0).expect("generated codes are well-formed")
    }
}

/// The hash of a recovery code as a user typed it (case, spaces and dashes ignored), to look it
/// up among the stored hashes; `None` when it cannot be a recovery code.
pub fn recovery_code_hash(input: &str) -> Option<RecoveryCodeHash> {
    hash_normalised(input)
}

/// Lower-cases `input`, drops spaces and dashes, and hashes it if what remains is 12 characters
/// of the recovery alphabet.
fn hash_normalised(input: &str) -> Option<RecoveryCodeHash> {
    let normalised: Zeroizing<String> = Zeroizing::new(
        input.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_lowercase()).collect(),
    );
    if normalised.len() != 12 || !normalised.bytes().all(|b| RECOVERY_ALPHABET.contains(&b)) {
        return None;
    }
    Some(RecoveryCodeHash(Sha256::digest(normalised.as_bytes()).into()))
}

/// A fresh set of [`RECOVERY_CODE_COUNT`] recovery codes.
pub fn generate_recovery_codes() -> Result<Vec<RecoveryCode>, RandomError> {
    (0..RECOVERY_CODE_COUNT).map(|_| generate_recovery_code()).collect()
}

fn generate_recovery_code() -> Result<RecoveryCode, RandomError> {
    let alphabet_len = RECOVERY_ALPHABET.len();
    // Rejection sampling: bytes at or above the largest multiple of 31 below 256 are drawn again,
    // so every character is equally likely.
    let limit = (256 / alphabet_len * alphabet_len) as u8;
    let mut code = Zeroizing::new(String::with_capacity(14));
    let mut produced = 0;
    while produced < 12 {
        let batch = crate::random_bytes::<32>()?;
        for &byte in batch.iter().filter(|&&b| b < limit) {
            if produced == 12 {
                break;
            }
            if produced > 0 && produced % 4 == 0 {
                code.push('-');
            }
            code.push(RECOVERY_ALPHABET[usize::from(byte) % alphabet_len] as char);
            produced += 1;
        }
    }
    Ok(RecoveryCode(code))
}

/// Finds which stored hash `input` matches and returns its index, so the caller can delete that
/// code. Every stored hash is compared in constant time, whether or not an earlier one matched.
pub fn verify_recovery_code(input: &str, stored: &[RecoveryCodeHash]) -> Option<usize> {
    let candidate = hash_normalised(input)?;
    let mut found = None;
    for (index, hash) in stored.iter().enumerate() {
        if bool::from(hash.0.ct_eq(&candidate.0)) && found.is_none() {
            found = Some(index);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RFC 6238 appendix B SHA-1 key: the ASCII string "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    /// RFC 6238 appendix B, SHA-1 rows: (unix time, 8-digit TOTP).
    const RFC6238_SHA1: [(i64, u32); 6] = [
        (59, 94287082),
        (1111111109, 7081804),
        (1111111111, 14050471),
        (1234567890, 89005924),
        (2000000000, 69279037),
        (20000000000, 65353130),
    ];

    #[test]
    fn rfc6238_appendix_b_sha1_vectors_with_8_digits() {
        let secret = rfc_secret();
        for (time, expected) in RFC6238_SHA1 {
            let step = step_at(Timestamp::from_second(time).unwrap()).unwrap();
            assert_eq!(hotp(&secret.0, step, 8), expected, "T = {time}");
        }
    }

    #[test]
    fn six_digit_codes_are_the_last_six_digits_of_the_rfc_vectors() {
        let secret = rfc_secret();
        for (time, expected) in RFC6238_SHA1 {
            let code = secret.code_at(Timestamp::from_second(time).unwrap()).unwrap();
            assert_eq!(code.as_str(), format!("{:06}", expected % 1_000_000), "T = {time}");
        }
        // 1111111109 gives 07081804: six digits keep the leading zero of "081804".
        assert_eq!(secret.code_at(Timestamp::from_second(1111111109).unwrap()).unwrap().as_str(), "081804");
    }

    #[test]
    fn rfc4226_appendix_d_hotp_vectors() {
        let expected = [755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(hotp(b"12345678901234567890", counter as u64, 6), code, "counter {counter}");
        }
    }

    #[test]
    fn verify_accepts_one_step_of_drift_and_returns_the_step() {
        let secret = rfc_secret();
        let now = Timestamp::from_second(1111111111).unwrap();
        let step = step_at(now).unwrap();
        for candidate in [step - 1, step, step + 1] {
            let code = secret.code_at_step(candidate);
            assert_eq!(verify(&secret, &code, now, None), Some(candidate));
        }
        for far in [step - 2, step + 2] {
            assert_eq!(verify(&secret, &secret.code_at_step(far), now, None), None, "step {far}");
        }
        assert_eq!(verify(&secret, " 050471 ", now, None), Some(step), "spaces around are ignored");
    }

    #[test]
    fn verify_refuses_replays_and_older_codes() {
        let secret = rfc_secret();
        let now = Timestamp::from_second(1234567890).unwrap();
        let code = secret.code_at(now).unwrap();
        let used = verify(&secret, &code, now, None).unwrap();
        assert_eq!(verify(&secret, &code, now, Some(used)), None, "same code twice");
        let previous = secret.code_at_step(used - 1);
        assert_eq!(verify(&secret, &previous, now, Some(used)), None, "an older code after a newer one");
        let next = secret.code_at_step(used + 1);
        assert_eq!(verify(&secret, &next, now, Some(used)), Some(used + 1));
    }

    #[test]
    fn verify_refuses_malformed_codes() {
        let secret = rfc_secret();
        let now = Timestamp::from_second(59).unwrap();
        assert_eq!(secret.code_at(now).unwrap().as_str(), "287082");
        for bad in ["", "28708", "2870820", "28708a", "287 082", "２８７０８２", "94287082"] {
            assert_eq!(verify(&secret, bad, now, None), None, "{bad:?}");
        }
        assert_eq!(verify(&secret, "287082", Timestamp::from_second(-100).unwrap(), None), None);
    }

    #[test]
    fn generated_secret_is_20_bytes_of_unpadded_base32_and_round_trips() {
        let secret = TotpSecret::generate().unwrap();
        let text = secret.to_base32();
        assert_eq!(text.len(), 32, "20 bytes are 32 base32 characters without padding");
        assert!(text.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        let back = TotpSecret::from_base32(&text.to_lowercase()).unwrap();
        assert_eq!(back.0, secret.0);
        assert_ne!(TotpSecret::generate().unwrap().0, secret.0);
    }

    #[test]
    fn base32_of_the_rfc_secret_is_the_well_known_one() {
        let secret = TotpSecret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(secret.0.as_slice(), b"12345678901234567890");
        assert_eq!(rfc_secret().to_base32().as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn bad_secrets_are_refused() {
        assert!(matches!(TotpSecret::from_base32("not base32!"), Err(TotpError::InvalidBase32)));
        assert!(matches!(TotpSecret::from_base32("GEZDGNBV"), Err(TotpError::TooShort(5))));
    }

    #[test]
    fn provisioning_uri_has_issuer_and_percent_encoded_account() {
        let uri = rfc_secret().provisioning_uri("alice smith@example.com/ops?x&y=z");
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Patchdeck:alice%20smith%40example.com%2Fops%3Fx%26y%3Dz\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Patchdeck"
        );
        let unicode = rfc_secret().provisioning_uri("zoë");
        assert!(unicode.starts_with("otpauth://totp/Patchdeck:zo%C3%AB?"), "{}", unicode.as_str());
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let secret = rfc_secret();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "TotpSecret([redacted])");
        let codes = generate_recovery_codes().unwrap();
        assert!(!format!("{codes:?}").contains(codes[0].expose()));
    }

    #[test]
    fn recovery_codes_have_the_documented_shape_and_are_distinct() {
        let codes = generate_recovery_codes().unwrap();
        assert_eq!(codes.len(), 10);
        for code in &codes {
            let text = code.expose();
            assert_eq!(text.len(), 14, "{text}");
            let groups: Vec<&str> = text.split('-').collect();
            assert_eq!(groups.len(), 3, "{text}");
            assert!(groups.iter().all(|g| g.len() == 4 && g.bytes().all(|b| RECOVERY_ALPHABET.contains(&b))));
        }
        let mut unique: Vec<&str> = codes.iter().map(RecoveryCode::expose).collect();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 10);
    }

    #[test]
    fn recovery_code_verification_finds_the_matching_hash() {
        let codes = generate_recovery_codes().unwrap();
        let stored: Vec<RecoveryCodeHash> = codes.iter().map(RecoveryCode::hash).collect();
        let round_tripped: Vec<RecoveryCodeHash> =
            stored.iter().map(|h| RecoveryCodeHash::from_hex(&h.to_hex()).unwrap()).collect();
        assert_eq!(round_tripped, stored);
        assert_eq!(verify_recovery_code(codes[3].expose(), &stored), Some(3));
        let sloppy = format!(" {} ", codes[7].expose().to_uppercase().replace('-', " "));
        assert_eq!(verify_recovery_code(&sloppy, &stored), Some(7), "case, spaces and dashes are ignored");
        assert_eq!(verify_recovery_code("2222-2222-2222", &stored), None);
        assert_eq!(verify_recovery_code("0000-0000-0000", &stored), None, "0 is not in the alphabet");
        assert_eq!(verify_recovery_code(codes[0].expose(), &stored[1..]), None, "a used code was removed");
    }

    #[test]
    fn recovery_code_hash_is_sha256_of_the_normalised_code() {
        // sha256("abcd2345efgh") computed independently with `printf abcd2345efgh | sha256sum`.
        let hash = hash_normalised("ABCD-2345-EFGH").unwrap();
        assert_eq!(hash.to_hex(), "cd2b222dd356dc9e96963405ef7572954d150dac1add746865e54d0f81256457");
    }
}
