//! The manager's key material, kept as files in the data directory (mode 0600, directory 0700):
//!
//! | file | what |
//! |---|---|
//! | `ca.crt`, `ca.key` | the internal root CA (ECDSA P-256, 10 years) |
//! | `server.crt`, `server.key` | the listener's certificate from that CA (`tls.mode = "internal"`) |
//! | `push-client.crt`, `push-client.key` | the manager's client certificate for push hosts ([`crate::push::identity`]) |
//! | `session-signing.key` | Ed25519 key that signs access tokens (JWT) |
//! | `command-signing.key` | Ed25519 key that signs commands to agents; agents pin its public key |
//! | `secret.key` | XChaCha20-Poly1305 key that encrypts secrets stored in the database |
//!
//! Everything is made at first start. Replicas that share one PostgreSQL must share these files
//! (mount the same secret into each).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use jiff::{SignedDuration, Timestamp};
use patchdeck_crypto::ca::{CertificateAuthority, IssuedCertificate};
use patchdeck_crypto::secretbox::SecretKey;
use patchdeck_crypto::signing::SigningKey;

/// Lifetime of the internal root CA.
pub const CA_VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 3650);

/// The server certificate is renewed at start when it has less than this left.
pub const SERVER_CERT_RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(24 * 30);

/// The loaded key material.
pub struct KeyMaterial {
    pub ca: CertificateAuthority,
    pub session_key: SigningKey,
    pub command_key: SigningKey,
    pub secret_key: SecretKey,
    dir: PathBuf,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("dir", &self.dir)
            .field("ca_fingerprint", &self.ca.fingerprint())
            .field("command_key", &self.command_key.fingerprint())
            .finish_non_exhaustive()
    }
}

/// What [`KeyMaterial::load_or_create`] made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub ca: bool,
}

impl KeyMaterial {
    /// Loads the key files from `dir`, making any that are missing (the CA only if both of its
    /// files are missing: half a CA is an error, never silently replaced).
    pub fn load_or_create(dir: &Path, now: Timestamp) -> anyhow::Result<(Self, Created)> {
        ensure_private_dir(dir)?;
        let mut created = Created::default();
        let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let ca = match (crt.exists(), key.exists()) {
            (true, true) => {
                check_private_file(&key)?;
                CertificateAuthority::from_pem(&read(&crt)?, &read(&key)?)
                    .with_context(|| format!("loading the CA from {}", dir.display()))?
            }
            (false, false) => {
                let ca = CertificateAuthority::generate("Patchdeck internal CA", now, CA_VALIDITY)?;
                write_private(&key, ca.key_pem().expose().as_bytes())?;
                write_public(&crt, ca.cert_pem().as_bytes())?;
                created.ca = true;
                ca
            }
            _ => bail!("{} and {} must both exist or both be missing", crt.display(), key.display()),
        };
        let session_key = load_or_create_signing_key(&dir.join("session-signing.key"))?;
        let command_key = load_or_create_signing_key(&dir.join("command-signing.key"))?;
        let secret_path = dir.join("secret.key");
        let secret_key = if secret_path.exists() {
            check_private_file(&secret_path)?;
            SecretKey::from_base64(read(&secret_path)?.trim()).context("secret.key is not a valid key")?
        } else {
            let key = SecretKey::generate()?;
            write_private(&secret_path, key.to_base64().as_bytes())?;
            key
        };
        Ok((KeyMaterial { ca, session_key, command_key, secret_key, dir: dir.to_owned() }, created))
    }

    /// The listener's certificate chain and key (PEM), issued for `host` (a DNS name or an IP)
    /// plus `localhost`, `127.0.0.1` and `::1`. Reissued when missing, for other names, near its
    /// end, or issued by another CA (the CA files were replaced).
    pub fn server_certificate(
        &self,
        host: &str,
        now: Timestamp,
        validity: SignedDuration,
    ) -> anyhow::Result<(String, String, Option<IssuedCertificate>)> {
        let (crt, key) = (self.dir.join("server.crt"), self.dir.join("server.key"));
        let names_file = self.dir.join("server.names");
        let wanted = format!("{host}\n");
        if crt.exists() && key.exists() && fs::read_to_string(&names_file).ok().as_deref() == Some(wanted.as_str()) {
            let cert_pem = read(&crt)?;
            let fresh = patchdeck_crypto::ca::not_after_of(&cert_pem)
                .map(|end| end > now + SERVER_CERT_RENEW_BEFORE)
                .unwrap_or(false);
            if fresh && self.is_our_chain(&cert_pem) {
                check_private_file(&key)?;
                return Ok((cert_pem, read(&key)?, None));
            }
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let names = [host, "localhost", "127.0.0.1", "::1"];
        let (issued, key_pem, _) = host_server_certificate(&self.ca, &names, now, validity)?;
        let chain = format!("{}{}", issued.cert_pem, self.ca.cert_pem());
        write_private(&key, key_pem.expose().as_bytes())?;
        write_public(&crt, chain.as_bytes())?;
        write_public(&names_file, wanted.as_bytes())?;
        Ok((chain, key_pem.expose().to_owned(), Some(issued)))
    }

    /// Whether `chain`, as [`Self::server_certificate`] writes it (the certificate, then the CA
    /// that issued it), comes from this CA.
    fn is_our_chain(&self, chain: &str) -> bool {
        chain
            .match_indices("-----BEGIN CERTIFICATE-----")
            .nth(1)
            .and_then(|(at, _)| patchdeck_crypto::ca::fingerprint(&chain[at..]).ok())
            .is_some_and(|issuer| issuer == self.ca.fingerprint())
    }
}

/// A server certificate for a push-mode host's listener, for the given names (DNS names and IP
/// addresses, duplicates ignored); the first name is its subject. Returns the certificate, its
/// key and the subject.
pub fn host_server_certificate(
    ca: &CertificateAuthority,
    names: &[&str],
    now: Timestamp,
    validity: SignedDuration,
) -> Result<(IssuedCertificate, patchdeck_crypto::ca::PrivateKeyPem, String), patchdeck_crypto::ca::CaError> {
    let mut dns: Vec<&str> = Vec::new();
    let mut ips: Vec<IpAddr> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match name.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !dns.contains(&name) => dns.push(name),
            Err(_) => {}
        }
    }
    let subject =
        dns.first().map(|s| (*s).to_owned()).or_else(|| ips.first().map(ToString::to_string)).unwrap_or_default();
    let validity = validity.min(ca.not_after().duration_since(now) - SignedDuration::from_hours(1));
    let (issued, key) = ca.issue_server_cert(&dns, &ips, now, validity)?;
    Ok((issued, key, subject))
}

fn load_or_create_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    if path.exists() {
        check_private_file(path)?;
        return SigningKey::from_pkcs8_pem(&read(path)?).with_context(|| format!("{} is not a key", path.display()));
    }
    let key = SigningKey::generate()?;
    write_private(path, key.to_pkcs8_pem().as_bytes())?;
    Ok(key)
}

pub(crate) fn read(path: &Path) -> anyhow::Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Creates `dir` (mode 0700) or checks that an existing one is not readable by others.
pub fn ensure_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the data directory {}", dir.display()))?;
    }
    let mode = fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making {} private (mode 0700)", dir.display()))?;
    }
    Ok(())
}

pub(crate) fn check_private_file(path: &Path) -> anyhow::Result<()> {
    let mode = fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} is readable by other users (mode {:o}); run: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

/// Writes a secret file atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic(path, bytes, 0o600)
}

pub(crate) fn write_public(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomic(path, bytes, 0o644)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

/// This machine's host name (for the default public URL and the server certificate).
pub fn this_host_name() -> String {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_string_lossy().trim().to_owned();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_makes_private_files_and_second_loads_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let now = Timestamp::now();
        let (first, created) = KeyMaterial::load_or_create(&data, now).unwrap();
        assert!(created.ca);
        for name in ["ca.key", "session-signing.key", "command-signing.key", "secret.key"] {
            let mode = fs::metadata(data.join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        assert_eq!(fs::metadata(&data).unwrap().permissions().mode() & 0o777, 0o700);
        let (second, created) = KeyMaterial::load_or_create(&data, now).unwrap();
        assert!(!created.ca);
        assert_eq!(first.ca.fingerprint(), second.ca.fingerprint());
        assert_eq!(first.command_key.fingerprint(), second.command_key.fingerprint());
    }

    #[test]
    fn half_a_ca_or_a_world_readable_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        KeyMaterial::load_or_create(dir.path(), now).unwrap();
        fs::set_permissions(dir.path().join("ca.key"), fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyMaterial::load_or_create(dir.path(), now).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        fs::remove_file(dir.path().join("ca.key")).unwrap();
        let err = KeyMaterial::load_or_create(dir.path(), now).unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");
    }

    #[test]
    fn server_certificate_is_reused_until_the_names_change() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let (keys, _) = KeyMaterial::load_or_create(dir.path(), now).unwrap();
        let validity = SignedDuration::from_hours(24 * 365);
        let (a, _, issued) = keys.server_certificate("pd.example.com", now, validity).unwrap();
        assert!(issued.is_some());
        let (b, _, issued) = keys.server_certificate("pd.example.com", now, validity).unwrap();
        assert!(issued.is_none());
        assert_eq!(a, b);
        let (_, _, issued) = keys.server_certificate("10.1.2.3", now, validity).unwrap();
        assert!(issued.is_some());
    }

    #[test]
    fn server_certificate_is_reissued_when_the_ca_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let validity = SignedDuration::from_hours(24 * 365);
        let (keys, _) = KeyMaterial::load_or_create(dir.path(), now).unwrap();
        let (old, _, _) = keys.server_certificate("pd.example.com", now, validity).unwrap();
        fs::remove_file(dir.path().join("ca.crt")).unwrap();
        fs::remove_file(dir.path().join("ca.key")).unwrap();
        let (keys, created) = KeyMaterial::load_or_create(dir.path(), now).unwrap();
        assert!(created.ca);
        let (chain, _, issued) = keys.server_certificate("pd.example.com", now, validity).unwrap();
        assert!(issued.is_some(), "a certificate of the old CA is not kept");
        assert_ne!(chain, old);
        assert!(keys.is_our_chain(&chain));
        let (_, _, issued) = keys.server_certificate("pd.example.com", now, validity).unwrap();
        assert!(issued.is_none(), "and the new one is reused");
    }
}
