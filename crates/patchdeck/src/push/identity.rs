//! The manager's own client certificate for push hosts: what it presents to an agent's
//! Linux_Patch_API listener (mutual TLS 1.3, ADR 0003).
//!
//! | file (data directory) | what |
//! |---|---|
//! | `push-client.crt` | the certificate (`clientAuth`, `CN=patchdeck-manager`), then the CA that issued it |
//! | `push-client.key` | its P-256 key, PKCS#8 PEM, mode 0600 |
//!
//! It is made at start, like the listener's certificate ([`ensure_push_identity`]), from a CSR
//! for a fresh key signed by the internal CA, and recorded in the certificate table as
//! [`CertificateKind::PushClient`], so that it shows in the certificate list and can be revoked.
//! It is issued again at start when a file is missing, when it has less than
//! [`crate::pki::SERVER_CERT_RENEW_BEFORE`] left, when the CA files were replaced, and when it was
//! revoked.
//!
//! A push host's agent trusts it because its `ca_bundle` is the manager's CA (the push bundle
//! of `admin add-push-host` and `POST /api/v1/hosts/{id}/push-bundle`). The manager in turn trusts
//! only that CA for the agents' server certificates: public roots play no part.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use patchdeck_crypto::ca::{CertificateAuthority, IssuedCertificate};
use patchdeck_store::{Certificate, CertificateKind, NewCertificate, Store};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use zeroize::Zeroizing;

use crate::pki::{check_private_file, read, write_private, write_public, SERVER_CERT_RENEW_BEFORE};

/// The subject CN of the manager's push client certificate.
pub const COMMON_NAME: &str = "patchdeck-manager";
/// The certificate file in the data directory (the certificate, then the CA).
pub const CERT_FILE: &str = "push-client.crt";
/// The key file in the data directory.
pub const KEY_FILE: &str = "push-client.key";

/// A push client identity that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A PEM block or certificate that cannot be read.
    #[error("the push client {what} is not usable: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// rustls refused the combination (key and certificate do not match, …).
    #[error("the push client TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// The manager's push client certificate with its key and the CA it trusts for agents.
/// Cheap to clone. `Debug` shows the serial and expiry, never the key.
#[derive(Clone)]
pub struct PushIdentity {
    cert_pem: String,
    key_pem: Arc<Zeroizing<String>>,
    ca_pem: String,
    serial: String,
    fingerprint: String,
    not_after: Timestamp,
}

impl fmt::Debug for PushIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushIdentity")
            .field("serial", &self.serial)
            .field("fingerprint", &self.fingerprint)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl PushIdentity {
    /// An identity from PEM text: the client certificate (the first certificate of `cert_pem`;
    /// a chain may follow), its private key, and the CA certificate(s) agents' server
    /// certificates must chain to.
    pub fn from_pem(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<PushIdentity, IdentityError> {
        let invalid = |what, e: &dyn fmt::Display| IdentityError::Invalid { what, reason: e.to_string() };
        let first = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .next()
            .ok_or_else(|| invalid("certificate", &"no PEM certificate found"))?
            .map_err(|e| invalid("certificate", &e))?;
        let leaf_pem = pem_of_der(&first);
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| invalid("key", &e))?;
        let cas = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid("CA certificate", &e))?;
        if cas.is_empty() {
            return Err(invalid("CA certificate", &"no PEM certificate found"));
        }
        let serial = patchdeck_crypto::ca::serial_of(&leaf_pem).map_err(|e| invalid("certificate", &e))?.to_hex();
        let fingerprint = patchdeck_crypto::ca::fingerprint(&leaf_pem).map_err(|e| invalid("certificate", &e))?;
        let not_after = patchdeck_crypto::ca::not_after_of(&leaf_pem).map_err(|e| invalid("certificate", &e))?;
        Ok(PushIdentity {
            cert_pem: leaf_pem,
            key_pem: Arc::new(Zeroizing::new(key_pem.to_owned())),
            ca_pem: ca_pem.to_owned(),
            serial,
            fingerprint,
            not_after,
        })
    }

    /// Loads the identity from `data_dir`, issuing a new one from `ca` when a file is missing,
    /// the certificate is near its end, it is not from `ca`, or `reissue` is set (it was
    /// revoked). Returns the newly issued certificate, if one was issued.
    pub fn load_or_issue(
        ca: &CertificateAuthority,
        data_dir: &Path,
        now: Timestamp,
        validity: SignedDuration,
        reissue: bool,
    ) -> anyhow::Result<(PushIdentity, Option<IssuedCertificate>)> {
        let (crt, key) = (data_dir.join(CERT_FILE), data_dir.join(KEY_FILE));
        if !reissue && crt.exists() && key.exists() {
            let chain = read(&crt)?;
            let fresh = patchdeck_crypto::ca::not_after_of(&chain)
                .map(|end| end > now + SERVER_CERT_RENEW_BEFORE)
                .unwrap_or(false);
            if fresh && issued_by(&chain, ca) {
                check_private_file(&key)?;
                let identity = PushIdentity::from_pem(&chain, &read(&key)?, ca.cert_pem())
                    .with_context(|| format!("loading {}", crt.display()))?;
                return Ok((identity, None));
            }
        }
        let (csr, key_pem) = patchdeck_crypto::ca::make_csr(COMMON_NAME)?;
        // Never past the CA's own end (less an hour, as for host certificates).
        let validity = validity.min(ca.not_after().duration_since(now) - SignedDuration::from_hours(1));
        let issued = ca.sign_client_csr(&csr, COMMON_NAME, now, validity)?;
        let chain = format!("{}{}", issued.cert_pem, ca.cert_pem());
        write_private(&key, key_pem.expose().as_bytes())?;
        write_public(&crt, chain.as_bytes())?;
        let identity = PushIdentity::from_pem(&chain, key_pem.expose(), ca.cert_pem())?;
        Ok((identity, Some(issued)))
    }

    /// The certificate's serial number, lower-case hex (as the certificate table keys it).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// SHA-256 of the certificate, lower-case hex (what agents write in their audit records).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// End of validity.
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    /// The client certificate (PEM).
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate(s) agents' server certificates must chain to (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A TLS 1.3 client configuration (ring provider, no session resumption) that presents this
    /// certificate, trusts only the CA for servers, checks that the server certificate names the
    /// host asked for, and offers `alpn`.
    pub fn tls_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, IdentityError> {
        let roots = self.roots()?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.chain()?, self.key()?)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }

    /// Like [`Self::tls_config`] (HTTP/1.1 only), but a server certificate that chains to the CA
    /// is accepted whatever names it carries: discovery probes addresses it knows nothing about,
    /// and reads the host's name from the certificate. Everything else (chain, validity, key
    /// usage, signatures) is checked as usual.
    pub fn probe_tls_config(&self) -> Result<Arc<ClientConfig>, IdentityError> {
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(self.roots()?), provider())
            .build()
            .map_err(|e| IdentityError::Invalid { what: "CA certificate", reason: e.to_string() })?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyNameVerifier(verifier)))
            .with_client_auth_cert(self.chain()?, self.key()?)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Arc::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, IdentityError> {
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            let der = der.map_err(|e| IdentityError::Invalid { what: "CA certificate", reason: e.to_string() })?;
            roots.add(der)?;
        }
        Ok(roots)
    }

    fn chain(&self) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
        CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IdentityError::Invalid { what: "certificate", reason: e.to_string() })
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, IdentityError> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| IdentityError::Invalid { what: "key", reason: e.to_string() })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_of_der(der: &CertificateDer<'_>) -> String {
    let base64 = data_encoding::BASE64.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in base64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Whether `chain` (the certificate, then its CA, as [`PushIdentity::load_or_issue`] writes it)
/// comes from `ca`.
fn issued_by(chain: &str, ca: &CertificateAuthority) -> bool {
    chain
        .match_indices("-----BEGIN CERTIFICATE-----")
        .nth(1)
        .and_then(|(at, _)| patchdeck_crypto::ca::fingerprint(&chain[at..]).ok())
        .is_some_and(|issuer| issuer == ca.fingerprint())
}

/// What [`ensure_push_identity`] did.
#[derive(Debug)]
pub struct EnsuredIdentity {
    pub identity: PushIdentity,
    /// The certificate row, when a new certificate was issued (for the audit log).
    pub issued: Option<Certificate>,
    /// The serial of a revoked certificate that was replaced.
    pub replaced_revoked: Option<String>,
}

/// At start: loads or issues the push client certificate ([`PushIdentity::load_or_issue`]),
/// issues a new one when the certificate table says the current one is revoked, and records a
/// new certificate (or one the table does not know, e.g. after the database was replaced) as
/// [`CertificateKind::PushClient`].
pub async fn ensure_push_identity(
    store: &Store,
    ca: &CertificateAuthority,
    data_dir: &Path,
    now: Timestamp,
    validity: SignedDuration,
) -> anyhow::Result<EnsuredIdentity> {
    let (mut identity, mut issued) = PushIdentity::load_or_issue(ca, data_dir, now, validity, false)?;
    let mut replaced_revoked = None;
    if issued.is_none() {
        match store.get_certificate_by_serial(identity.serial()).await? {
            Some(row) if row.revoked_at.is_some() => {
                replaced_revoked = Some(row.serial);
                (identity, issued) = PushIdentity::load_or_issue(ca, data_dir, now, validity, true)?;
            }
            Some(_) => return Ok(EnsuredIdentity { identity, issued: None, replaced_revoked }),
            None => {
                let certificate = identity.cert_pem.clone();
                record(store, &identity, &certificate, now).await?;
                return Ok(EnsuredIdentity { identity, issued: None, replaced_revoked });
            }
        }
    }
    let row = match &issued {
        Some(issued) => Some(record(store, &identity, &issued.cert_pem, now).await?),
        None => None,
    };
    Ok(EnsuredIdentity { identity, issued: row, replaced_revoked })
}

async fn record(store: &Store, identity: &PushIdentity, pem: &str, now: Timestamp) -> anyhow::Result<Certificate> {
    let not_before = not_before_of(pem)?;
    let inserted = store
        .insert_certificate(
            &NewCertificate {
                serial: identity.serial.clone(),
                kind: CertificateKind::PushClient,
                common_name: COMMON_NAME.to_owned(),
                host_id: None,
                not_before,
                not_after: identity.not_after,
                pem: pem.to_owned(),
            },
            now,
        )
        .await;
    match inserted {
        Ok(row) => Ok(row),
        // Another replica sharing the data directory recorded it first.
        Err(e) => match store.get_certificate_by_serial(&identity.serial).await? {
            Some(row) => Ok(row),
            None => Err(anyhow::Error::new(e).context("recording the push client certificate")),
        },
    }
}

fn not_before_of(pem: &str) -> anyhow::Result<Timestamp> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).context("the push client certificate is not PEM")?;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).context("the push client certificate")?;
    Ok(Timestamp::from_second(cert.validity().not_before.timestamp())?)
}

/// The discovery verifier: WebPKI's checks, except that the certificate need not name the
/// address probed (see [`PushIdentity::probe_tls_config`]). WebPKI checks the name last, after
/// the chain, so a name error means everything else passed.
#[derive(Debug)]
struct AnyNameVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ca(now: Timestamp) -> CertificateAuthority {
        CertificateAuthority::generate("Patchdeck test CA", now, SignedDuration::from_hours(24 * 3650)).unwrap()
    }

    #[test]
    fn push_identity_is_issued_once_then_loaded_and_reissued_when_stale_or_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        let ca = ca(now);
        let year = SignedDuration::from_hours(24 * 365);
        let (first, issued) = PushIdentity::load_or_issue(&ca, dir.path(), now, year, false).unwrap();
        let issued = issued.expect("issued at first start");
        assert_eq!(first.serial(), issued.serial.to_hex());
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let der = CertificateDer::from_pem_slice(first.certificate_pem().as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_owned();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert_eq!((cn.as_str(), eku.client_auth, eku.server_auth), (COMMON_NAME, true, false));

        let (again, issued) = PushIdentity::load_or_issue(&ca, dir.path(), now, year, false).unwrap();
        assert!(issued.is_none(), "a fresh certificate is reused");
        assert_eq!(again.serial(), first.serial());

        let (revoked, issued) = PushIdentity::load_or_issue(&ca, dir.path(), now, year, true).unwrap();
        assert!(issued.is_some(), "reissue is honoured");
        assert_ne!(revoked.serial(), first.serial());

        let late = now + year - SignedDuration::from_hours(24);
        let (_, issued) = PushIdentity::load_or_issue(&ca, dir.path(), late, year, false).unwrap();
        assert!(issued.is_some(), "a certificate near its end is renewed");

        let other = self::ca(now);
        let (_, issued) = PushIdentity::load_or_issue(&other, dir.path(), now, year, false).unwrap();
        assert!(issued.is_some(), "a certificate of a replaced CA is not kept");
    }

    #[test]
    fn push_identity_refuses_unusable_pem() {
        let now = Timestamp::now();
        let ca = ca(now);
        let err = PushIdentity::from_pem("not pem", "nor this", ca.cert_pem()).unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let (identity, _) =
            PushIdentity::load_or_issue(&ca, dir.path(), now, SignedDuration::from_hours(24), false).unwrap();
        let err = PushIdentity::from_pem(identity.certificate_pem(), "nor this", ca.cert_pem()).unwrap_err();
        assert!(err.to_string().contains("key"), "{err}");
        assert!(format!("{identity:?}").contains(identity.serial()));
        assert!(!format!("{identity:?}").contains("PRIVATE KEY"));
    }
}
