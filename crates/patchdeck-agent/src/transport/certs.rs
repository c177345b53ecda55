//! Loading and checking the agent's certificate files before they are used.
//!
//! [`check_certificates`] is run at start and before every TLS reload. It refuses, with a message
//! naming the file and the reason: a missing or unreadable file, PEM that does not parse or holds
//! no item of the expected kind, a server certificate that is expired or not yet valid, a private
//! key that does not match the server certificate, a server certificate that no CA of the bundle
//! signed, and a CRL that does not parse or that no CA of the bundle issued.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::time::ASN1Time;

/// The files the TLS server is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// PEM bundle of the CA certificates that sign client certificates (and the server's).
    pub ca_bundle: PathBuf,
    /// PEM server certificate, optionally followed by its intermediate certificates.
    pub server_cert: PathBuf,
    /// PEM private key of the server certificate (PKCS#8, PKCS#1 or SEC1).
    pub server_key: PathBuf,
    /// PEM certificate revocation list(s) issued by the CA. When set, every client certificate is
    /// checked against it, and one whose status it does not cover is refused. A CRL past its
    /// next-update time is still used (an old list of revocations beats none) and logged as a
    /// warning at each load; refreshing it is the CA's job, and the watcher picks it up.
    pub crl: Option<PathBuf>,
}

impl TlsPaths {
    /// Every file, for watching.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.ca_bundle.clone(), self.server_cert.clone(), self.server_key.clone()];
        files.extend(self.crl.clone());
        files
    }
}

/// Which file an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// [`TlsPaths::ca_bundle`].
    CaBundle,
    /// [`TlsPaths::server_cert`].
    ServerCert,
    /// [`TlsPaths::server_key`].
    ServerKey,
    /// [`TlsPaths::crl`].
    Crl,
}

impl fmt::Display for FileRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileRole::CaBundle => "CA bundle",
            FileRole::ServerCert => "server certificate",
            FileRole::ServerKey => "server private key",
            FileRole::Crl => "CRL",
        })
    }
}

/// Why the certificate files were refused. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The file could not be read.
    #[error("{role} {}: cannot read the file: {error}", path.display())]
    Read {
        /// Which file.
        role: FileRole,
        /// Its path.
        path: PathBuf,
        /// The IO error.
        #[source]
        error: io::Error,
    },
    /// The PEM is malformed or holds no item of the expected kind.
    #[error("{role} {}: {reason}", path.display())]
    Pem {
        /// Which file.
        role: FileRole,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A PEM item decoded, but its DER is not a valid certificate or CRL.
    #[error("{role} {}: item {index} is not a valid X.509 structure: {reason}", path.display())]
    Der {
        /// Which file.
        role: FileRole,
        /// Its path.
        path: PathBuf,
        /// 1-based position of the item in the file.
        index: usize,
        /// The parser's message.
        reason: String,
    },
    /// The server certificate's validity period has ended.
    #[error("server certificate {}: expired at {not_after} (now {now})", path.display())]
    Expired {
        /// Its path.
        path: PathBuf,
        /// End of validity.
        not_after: String,
        /// The clock used for the check.
        now: String,
    },
    /// The server certificate's validity period has not started.
    #[error("server certificate {}: not valid before {not_before} (now {now})", path.display())]
    NotYetValid {
        /// Its path.
        path: PathBuf,
        /// Start of validity.
        not_before: String,
        /// The clock used for the check.
        now: String,
    },
    /// The private key cannot be loaded by the TLS library.
    #[error("server private key {}: unusable key: {reason}", path.display())]
    BadKey {
        /// Its path.
        path: PathBuf,
        /// The TLS library's message.
        reason: String,
    },
    /// The private key is not the one of the server certificate.
    #[error("server private key {} does not match the server certificate {}", key.display(), cert.display())]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// No CA of the bundle signed the server certificate (directly or through the intermediates
    /// that follow it in its file).
    #[error("server certificate {} is not signed by any CA in {}", cert.display(), ca.display())]
    NotSignedByCa {
        /// The certificate file.
        cert: PathBuf,
        /// The CA bundle.
        ca: PathBuf,
    },
    /// The CRL was not issued (or not signed) by any CA of the bundle.
    #[error("CRL {} was not issued by any CA in {}", crl.display(), ca.display())]
    CrlNotFromCa {
        /// The CRL file.
        crl: PathBuf,
        /// The CA bundle.
        ca: PathBuf,
    },
    /// The TLS library refused the assembled configuration.
    #[error("TLS configuration from {} and {}: {reason}", ca.display(), cert.display())]
    Config {
        /// The CA bundle.
        ca: PathBuf,
        /// The server certificate.
        cert: PathBuf,
        /// The TLS library's message.
        reason: String,
    },
}

/// The checked contents of the certificate files, ready for [`super::tls::ServerTls`].
#[derive(Debug)]
pub struct LoadedCerts {
    /// The CA certificates (trust anchors for client certificates).
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// The server certificate first, then its intermediates.
    pub server_chain: Vec<CertificateDer<'static>>,
    /// The server's key, already loaded and matched to the certificate.
    pub certified_key: Arc<CertifiedKey>,
    /// The CRLs, empty when none is configured.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    /// The server certificate's end of validity, for logs.
    pub server_not_after: String,
}

fn read(role: FileRole, path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|error| CertError::Read { role, path: path.to_owned(), error })
}

fn pem_error(role: FileRole, path: &Path, error: pem::Error, what: &str) -> CertError {
    let reason = match error {
        pem::Error::NoItemsFound => format!("no PEM {what} found"),
        other => format!("invalid PEM: {other}"),
    };
    CertError::Pem { role, path: path.to_owned(), reason }
}

fn parse_certs(role: FileRole, path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(role, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(role, path, e, "CERTIFICATE"))?;
    if certs.is_empty() {
        return Err(pem_error(role, path, pem::Error::NoItemsFound, "CERTIFICATE"));
    }
    for (index, der) in certs.iter().enumerate() {
        x509(role, path, index, der)?;
    }
    Ok(certs)
}

fn x509<'a>(role: FileRole, path: &Path, index: usize, der: &'a [u8]) -> Result<X509Certificate<'a>, CertError> {
    match X509Certificate::from_der(der) {
        Ok((_, cert)) => Ok(cert),
        Err(e) => Err(CertError::Der { role, path: path.to_owned(), index: index + 1, reason: e.to_string() }),
    }
}

fn asn1_now(now: SystemTime) -> ASN1Time {
    let secs = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    ASN1Time::from_timestamp(secs).unwrap_or_else(|_| ASN1Time::now())
}

/// Whether `issuer` signed `subject`: names chain and the signature verifies.
fn signed_by(subject: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    subject.issuer() == issuer.subject() && subject.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Checks the certificate files at time `now`, and returns their contents.
///
/// `provider` is the crypto provider that will serve TLS; it loads the key.
pub fn check_certificates(
    paths: &TlsPaths,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<LoadedCerts, CertError> {
    let ca_certs = parse_certs(FileRole::CaBundle, &paths.ca_bundle)?;
    let server_chain = parse_certs(FileRole::ServerCert, &paths.server_cert)?;

    // The key's PEM is wiped from memory once parsed.
    let key_bytes = zeroize::Zeroizing::new(read(FileRole::ServerKey, &paths.server_key)?);
    let key = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| pem_error(FileRole::ServerKey, &paths.server_key, e, "PRIVATE KEY"))?;
    warn_if_key_readable_by_others(&paths.server_key);

    // Parsed views. `parse_certs` already proved each item parses.
    let cas = ca_certs
        .iter()
        .enumerate()
        .map(|(i, der)| x509(FileRole::CaBundle, &paths.ca_bundle, i, der))
        .collect::<Result<Vec<_>, _>>()?;
    let chain = server_chain
        .iter()
        .enumerate()
        .map(|(i, der)| x509(FileRole::ServerCert, &paths.server_cert, i, der))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(leaf) = chain.first() else {
        return Err(pem_error(FileRole::ServerCert, &paths.server_cert, pem::Error::NoItemsFound, "CERTIFICATE"));
    };

    let now_asn1 = asn1_now(now);
    let validity = leaf.validity();
    if now_asn1 > validity.not_after {
        return Err(CertError::Expired {
            path: paths.server_cert.clone(),
            not_after: validity.not_after.to_string(),
            now: now_asn1.to_string(),
        });
    }
    if now_asn1 < validity.not_before {
        return Err(CertError::NotYetValid {
            path: paths.server_cert.clone(),
            not_before: validity.not_before.to_string(),
            now: now_asn1.to_string(),
        });
    }

    // Walk leaf → intermediates (from the server file) → a CA of the bundle.
    let mut current = leaf;
    let mut anchored = false;
    for _ in 0..chain.len() {
        if cas.iter().any(|ca| signed_by(current, ca)) {
            anchored = true;
            break;
        }
        match chain.iter().skip(1).find(|inter| signed_by(current, inter)) {
            Some(next) => current = next,
            None => break,
        }
    }
    if !anchored {
        return Err(CertError::NotSignedByCa { cert: paths.server_cert.clone(), ca: paths.ca_bundle.clone() });
    }

    let certified_key = CertifiedKey::from_der(server_chain.clone(), key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            CertError::KeyMismatch { key: paths.server_key.clone(), cert: paths.server_cert.clone() }
        }
        other => CertError::BadKey { path: paths.server_key.clone(), reason: other.to_string() },
    })?;
    // `from_der` accepts keys whose consistency it cannot determine; insist on a positive match.
    if certified_key.keys_match().is_err() {
        return Err(CertError::KeyMismatch { key: paths.server_key.clone(), cert: paths.server_cert.clone() });
    }

    let crls = match &paths.crl {
        None => Vec::new(),
        Some(crl_path) => load_crls(crl_path, &paths.ca_bundle, &cas, now_asn1)?,
    };
    let server_not_after = validity.not_after.to_string();
    drop(cas);
    drop(chain);

    Ok(LoadedCerts { ca_certs, server_chain, certified_key: Arc::new(certified_key), crls, server_not_after })
}

fn load_crls(
    path: &Path,
    ca_path: &Path,
    cas: &[X509Certificate<'_>],
    now: ASN1Time,
) -> Result<Vec<CertificateRevocationListDer<'static>>, CertError> {
    let bytes = read(FileRole::Crl, path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(FileRole::Crl, path, e, "X509 CRL"))?;
    if crls.is_empty() {
        return Err(pem_error(FileRole::Crl, path, pem::Error::NoItemsFound, "X509 CRL"));
    }
    for (index, der) in crls.iter().enumerate() {
        let crl = match CertificateRevocationList::from_der(der) {
            Ok((_, crl)) => crl,
            Err(e) => {
                return Err(CertError::Der {
                    role: FileRole::Crl,
                    path: path.to_owned(),
                    index: index + 1,
                    reason: e.to_string(),
                })
            }
        };
        let issued = cas.iter().any(|ca| crl.issuer() == ca.subject() && crl.verify_signature(ca.public_key()).is_ok());
        if !issued {
            return Err(CertError::CrlNotFromCa { crl: path.to_owned(), ca: ca_path.to_owned() });
        }
        if let Some(next) = crl.next_update() {
            if now > next {
                // Still used: an old list of revoked certificates is better than none. The CA
                // should publish a fresh one; say so loudly.
                tracing::warn!(crl = %path.display(), next_update = %next, "CRL is past its next update time");
            }
        }
    }
    Ok(crls)
}

#[cfg(unix)]
fn warn_if_key_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(key = %path.display(), mode = format!("{:o}", mode & 0o777), "server private key is readable by group or others; use mode 600");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_key_readable_by_others(_path: &Path) {}
