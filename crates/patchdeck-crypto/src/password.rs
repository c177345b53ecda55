//! Password hashing for user accounts: Argon2id (RFC 9106) in PHC string format.
//!
//! Parameters: **m = 64 MiB (65536 KiB), t = 3 passes, p = 1 lane**, a 16-byte random salt and a
//! 32-byte output, Argon2 version 0x13. This is the second recommended option of RFC 9106 §4
//! ("if much less memory is available": 64 MiB, t = 3) and is above OWASP's current minimum for
//! Argon2id (19 MiB, t = 2). One lane because the manager runs on small machines and hashes on a
//! blocking thread; more lanes would not make a single login faster there. Each hash needs 64 MiB
//! of memory for its whole run, which is what makes GPU and ASIC guessing expensive; its time cost
//! on the manager's hardware belongs in a benchmark (not measured here).
//!
//! The PHC string (`$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>`) carries its own parameters,
//! so [`verify`] checks old hashes with the parameters they were made with, and
//! [`needs_rehash`] tells the caller to hash again (on the next successful login) when they
//! differ from today's.
//!
//! Only hashes this crate stores are verified: a PHC string's parameters are trusted as they are.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::RandomError;

/// Memory cost in KiB (64 MiB).
pub const MEMORY_KIB: u32 = 64 * 1024;
/// Number of passes over memory.
pub const ITERATIONS: u32 = 3;
/// Degree of parallelism (lanes).
pub const PARALLELISM: u32 = 1;
/// Length of the derived hash in bytes.
pub const OUTPUT_LEN: usize = 32;
/// Length of the random salt in bytes.
pub const SALT_LEN: usize = 16;

/// What went wrong while hashing or checking a password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The stored hash is not a PHC string this crate can read.
    #[error("the stored password hash is not a valid Argon2 PHC string: {0}")]
    MalformedHash(argon2::password_hash::Error),
    /// The stored hash is a PHC string for an algorithm other than Argon2.
    #[error("the stored password hash uses algorithm `{0}`, expected argon2id")]
    UnsupportedAlgorithm(String),
    /// Argon2 itself failed (parameters out of range, memory allocation).
    #[error("Argon2 hashing failed: {0}")]
    Hashing(argon2::password_hash::Error),
    /// No salt could be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

fn current_params() -> Params {
    // The constants are inside Argon2's ranges; `Params::new` only fails outside them.
    Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, Some(OUTPUT_LEN)).expect("constant Argon2 parameters are valid")
}

/// Hashes `password` with Argon2id and today's parameters; returns the PHC string to store.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    hash_with_params(password, current_params())
}

fn hash_with_params(password: &str, params: Params) -> Result<String, PasswordError> {
    let salt_bytes = crate::random_bytes::<SALT_LEN>()?;
    let salt = SaltString::encode_b64(salt_bytes.as_ref()).map_err(PasswordError::Hashing)?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let hash = argon.hash_password(password.as_bytes(), &salt).map_err(PasswordError::Hashing)?;
    Ok(hash.to_string())
}

fn parse(phc: &str) -> Result<PasswordHash<'_>, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(PasswordError::MalformedHash)?;
    let alg = parsed.algorithm.as_str();
    if Algorithm::new(alg).is_err() {
        return Err(PasswordError::UnsupportedAlgorithm(alg.to_owned()));
    }
    Ok(parsed)
}

/// Checks `password` against a stored PHC string.
///
/// Returns `Ok(false)` when the password is wrong and `Err` when the stored string is not a
/// readable Argon2 hash. The comparison of the derived hash is constant-time.
pub fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = parse(phc)?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::Hashing(e)),
    }
}

/// Whether a stored hash was made with other parameters (algorithm, version, m, t, p or output
/// length) than [`hash`] uses today, so the caller should store a new hash after the next
/// successful [`verify`].
pub fn needs_rehash(phc: &str) -> Result<bool, PasswordError> {
    let parsed = parse(phc)?;
    if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.version != Some(Version::V0x13.into()) {
        return Ok(true);
    }
    let params = Params::try_from(&parsed).map_err(PasswordError::MalformedHash)?;
    let current = current_params();
    let output_len = parsed.hash.map(|h| h.len());
    Ok(params.m_cost() != current.m_cost()
        || params.t_cost() != current.t_cost()
        || params.p_cost() != current.p_cost()
        || output_len != Some(OUTPUT_LEN))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters so that most tests do not spend 64 MiB and several seconds of a debug
    /// build each; one test below uses the real ones.
    fn cheap() -> Params {
        Params::new(256, 1, 1, Some(OUTPUT_LEN)).unwrap()
    }

    #[test]
    fn real_parameters_are_in_the_phc_string_and_match_the_reference_implementation() {
        let phc = hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{phc}");
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.salt.unwrap().len(), 22, "16 salt bytes are 22 base64 characters");
        assert_eq!(parsed.hash.unwrap().len(), OUTPUT_LEN);
        assert!(!needs_rehash(&phc).unwrap());
        // The same parameters, made by the reference C implementation (Debian's `argon2` CLI):
        // `echo -n 'correct horse battery staple' | argon2 patchdecksalt16b -id -t 3 -m 16 -p 1 -l 32 -e`
        let reference =
            "$argon2id$v=19$m=65536,t=3,p=1$cGF0Y2hkZWNrc2FsdDE2Yg$OEutJYjwl8DJ9w/53oMSRrO8G/LZHs9VScOvVrjHRH0";
        assert!(!needs_rehash(reference).unwrap());
        assert!(verify("correct horse battery staple", reference).unwrap());
    }

    #[test]
    fn reference_implementation_vectors_verify() {
        // `echo -n password | argon2 somesalt -id -t 2 -m 10 -p 4 -l 24 -e`
        let id = "$argon2id$v=19$m=1024,t=2,p=4$c29tZXNhbHQ$MfdjzcytEeXZM5ijm4z8Gut8QmpjPY4o";
        assert!(verify("password", id).unwrap());
        assert!(!verify("passwort", id).unwrap());
        assert!(needs_rehash(id).unwrap(), "m, t and p differ from today's parameters");
        // The example in the phc-winner-argon2 README (Argon2i).
        let i = "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(verify("password", i).unwrap());
        assert!(needs_rehash(i).unwrap(), "argon2i is not argon2id");
    }

    #[test]
    fn wrong_password_is_false_not_an_error() {
        let phc = hash_with_params("secret", cheap()).unwrap();
        assert!(verify("secret", &phc).unwrap());
        assert!(!verify("Secret", &phc).unwrap());
        assert!(!verify("", &phc).unwrap());
    }

    #[test]
    fn salts_differ_between_hashes() {
        let a = hash_with_params("same", cheap()).unwrap();
        let b = hash_with_params("same", cheap()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn other_parameters_need_rehash() {
        let phc = hash_with_params("pw", cheap()).unwrap();
        assert!(needs_rehash(&phc).unwrap());
        assert!(verify("pw", &phc).unwrap(), "old hashes still verify");
    }

    #[test]
    fn malformed_or_foreign_hashes_are_errors() {
        assert!(matches!(verify("pw", "not a hash"), Err(PasswordError::MalformedHash(_))));
        assert!(matches!(verify("pw", ""), Err(PasswordError::MalformedHash(_))));
        let bcrypt_like = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        let err = verify("pw", bcrypt_like).unwrap_err();
        assert!(matches!(err, PasswordError::UnsupportedAlgorithm(ref a) if a == "scrypt"), "{err}");
        assert!(err.to_string().contains("scrypt"));
    }
}
