//! The internal certificate authority that makes mutual TLS between agents and the manager
//! possible without a public CA.
//!
//! Choices:
//! - **ECDSA P-256 with SHA-256** for the CA and for server keys: supported by every TLS stack
//!   (rustls/webpki, OpenSSL, Go, browsers), small, fast to sign. Agents may ask for P-256 or
//!   Ed25519 client certificates; other key types (RSA, P-384, …) are refused so that the fleet
//!   stays on one small set of algorithms webpki verifies.
//! - **No intermediates**: the CA signs end-entity certificates only (`pathLenConstraint = 0`),
//!   with key usages `keyCertSign`, `cRLSign` and `digitalSignature`.
//! - **Serial numbers are 16 random bytes** (top bit cleared so the DER integer stays positive
//!   and 16 bytes long): unpredictable, unique without a counter, and within RFC 5280's 20.
//! - **Extended key usage** says what a certificate is for: `serverAuth` for the manager's (and
//!   push-mode agents') servers, `clientAuth` for agents. A client certificate cannot serve TLS.
//! - **Agent CSRs are trusted for their public key only.** The issued subject is `CN=<host id>`
//!   decided by the manager; the request's subject, SANs, key usages, basic constraints and any
//!   other extension are ignored. The request's self-signature is checked, which proves the
//!   agent holds the private key.
//! - **Validity starts 5 minutes before `now`** so that a peer whose clock is a little behind
//!   still accepts a fresh certificate, and may not end after the CA's own.
//! - **CRLs** are numbered by `now` in Unix seconds, which increases from one CRL to the next as
//!   RFC 5280 §5.2.3 requires, without storing a counter.
//!
//! Keys are written as PKCS#8 PEM, certificates as PEM; both are what rustls and OpenSSL read.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevokedCertParams,
    SanType, SerialNumber, SubjectPublicKeyInfo, PKCS_ECDSA_P256_SHA256, PKCS_ED25519,
};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate, X509CertificationRequest};
use zeroize::Zeroizing;

use crate::RandomError;

/// How far `not_before` is set before `now`, for peers whose clocks are behind.
pub const BACKDATE: SignedDuration = SignedDuration::from_mins(5);
/// Length of a generated serial number in bytes.
pub const SERIAL_LEN: usize = 16;
/// Longest host id accepted as a common name (the X.520 upper bound for CN).
pub const MAX_HOST_ID_LEN: usize = 64;

/// What went wrong in the certificate authority.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// PEM text that is not the expected kind of block.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// A certificate that cannot be parsed.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// The certificate given as CA certificate is not a CA.
    #[error("the certificate is not a CA certificate (basicConstraints cA is not set)")]
    NotACa,
    /// A private key that cannot be parsed or is not ECDSA P-256.
    #[error("invalid CA private key: {0}")]
    InvalidKey(String),
    /// The private key does not belong to the CA certificate.
    #[error("the private key does not match the CA certificate's public key")]
    KeyMismatch,
    /// A certificate signing request that cannot be parsed.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    /// The request's self-signature does not verify.
    #[error("the certificate signing request's signature does not verify")]
    CsrSignature,
    /// The request's key is not ECDSA P-256 or Ed25519.
    #[error("unsupported key in certificate signing request: {0}; use ECDSA P-256 or Ed25519")]
    UnsupportedKey(String),
    /// A host id that cannot be a common name.
    #[error("invalid host id {0:?}: use 1 to 64 characters of A-Z a-z 0-9 . _ -")]
    InvalidHostId(String),
    /// A server certificate request without names, or with a DNS name that is not IA5.
    #[error("invalid server name: {0}")]
    InvalidName(String),
    /// A validity that is not positive, out of range, or longer than the CA's.
    #[error("invalid validity: {0}")]
    InvalidValidity(String),
    /// rcgen refused to build a certificate or CRL.
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),
    /// No key or serial could be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// A private key in PKCS#8 PEM. `Debug` does not show it; it is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKeyPem(Zeroizing<String>);
crate::redacted_debug!(PrivateKeyPem);

impl PrivateKeyPem {
    /// The PEM text, to write to a file only the service can read.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A certificate serial number (big-endian bytes as they appear in the certificate).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CertSerial(Vec<u8>);

impl std::fmt::Debug for CertSerial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("CertSerial").field(&self.to_hex()).finish()
    }
}

impl CertSerial {
    /// 16 random bytes with the top bit cleared and a non-zero first byte, so the DER INTEGER
    /// is positive and exactly 16 bytes long.
    pub fn random() -> Result<Self, RandomError> {
        let mut bytes = crate::random_bytes::<SERIAL_LEN>()?;
        bytes[0] &= 0x7f;
        if bytes[0] == 0 {
            bytes[0] = 1;
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Lower-case hex, for storage and logs.
    pub fn to_hex(&self) -> String {
        crate::hex(&self.0)
    }

    /// Reads hex (either case); `None` if it is not 1 to 20 bytes of hex.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()).ok()?;
        (!bytes.is_empty() && bytes.len() <= 20).then_some(Self(bytes))
    }

    /// The big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A certificate the CA issued, with what the manager records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate in PEM.
    pub cert_pem: String,
    /// Its serial number, to revoke it later.
    pub serial: CertSerial,
    /// Start of validity (`now` minus [`BACKDATE`]).
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint: String,
}

/// The CA: its certificate and its signing key.
pub struct CertificateAuthority {
    cert_pem: String,
    cert_der: Vec<u8>,
    not_after: Timestamp,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &self.fingerprint())
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

fn to_offset(at: Timestamp) -> Result<time::OffsetDateTime, CaError> {
    time::OffsetDateTime::from_unix_timestamp(at.as_second())
        .map_err(|_| CaError::InvalidValidity(format!("{at} cannot be written in a certificate")))
}

/// `not_before` and `not_after` for a certificate valid for `validity` from `now`.
fn validity_window(now: Timestamp, validity: SignedDuration) -> Result<(Timestamp, Timestamp), CaError> {
    if validity <= SignedDuration::ZERO {
        return Err(CaError::InvalidValidity(format!("{validity} is not positive")));
    }
    let out_of_range = || CaError::InvalidValidity(format!("{now} + {validity} is out of range"));
    let not_before = now.checked_sub(BACKDATE).map_err(|_| out_of_range())?;
    let not_after = now.checked_add(validity).map_err(|_| out_of_range())?;
    // X.509 times have whole seconds.
    let whole = |t: Timestamp| Timestamp::from_second(t.as_second()).map_err(|_| out_of_range());
    Ok((whole(not_before)?, whole(not_after)?))
}

fn pem_block(pem: &str, labels: &[&str]) -> Result<Vec<u8>, CaError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| CaError::InvalidPem(format!("no PEM block found: {e}")))?;
    if !labels.contains(&block.label.as_str()) {
        return Err(CaError::InvalidPem(format!("found a {:?} block, expected {:?}", block.label, labels[0])));
    }
    Ok(block.contents)
}

fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, CaError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CaError::InvalidCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CaError::InvalidCertificate("trailing bytes after the certificate".into()));
    }
    Ok(cert)
}

/// SHA-256 of a certificate's DER bytes, lower-case hex: what `openssl x509 -fingerprint
/// -sha256` prints, without colons.
pub fn fingerprint(cert_pem: &str) -> Result<String, CaError> {
    let der = pem_block(cert_pem, &["CERTIFICATE"])?;
    parse_certificate(&der)?;
    Ok(crate::hex(&Sha256::digest(&der)))
}

/// The serial number of a PEM certificate, e.g. to revoke a certificate found on disk.
pub fn serial_of(cert_pem: &str) -> Result<CertSerial, CaError> {
    let der = pem_block(cert_pem, &["CERTIFICATE"])?;
    let cert = parse_certificate(&der)?;
    Ok(CertSerial(cert.tbs_certificate.raw_serial().to_vec()))
}

/// The serial number of a DER certificate, e.g. a TLS client's certificate.
pub fn serial_of_der(der: &[u8]) -> Result<CertSerial, CaError> {
    let cert = parse_certificate(der)?;
    Ok(CertSerial(cert.tbs_certificate.raw_serial().to_vec()))
}

/// The end of validity (`notAfter`) of a PEM certificate (the first one of a chain).
pub fn not_after_of(cert_pem: &str) -> Result<Timestamp, CaError> {
    let der = pem_block(cert_pem, &["CERTIFICATE"])?;
    let cert = parse_certificate(&der)?;
    Timestamp::from_second(cert.validity().not_after.timestamp())
        .map_err(|e| CaError::InvalidCertificate(format!("notAfter out of range: {e}")))
}

fn check_host_id(host_id: &str) -> Result<(), CaError> {
    let ok = !host_id.is_empty()
        && host_id.len() <= MAX_HOST_ID_LEN
        && host_id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CaError::InvalidHostId(host_id.to_owned()))
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

impl CertificateAuthority {
    /// A new CA with a fresh P-256 key, valid for `validity` from `now`.
    pub fn generate(common_name: &str, now: Timestamp, validity: SignedDuration) -> Result<Self, CaError> {
        if common_name.trim().is_empty() || common_name.len() > 64 {
            return Err(CaError::InvalidName(format!("CA common name {common_name:?} must be 1 to 64 characters")));
        }
        let (not_before, not_after) = validity_window(now, validity)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = self::common_name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from_slice(CertSerial::random()?.as_bytes()));
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        params.key_identifier_method = KeyIdMethod::Sha256;
        let cert = params.self_signed(&key)?;
        Ok(Self { cert_pem: cert.pem(), cert_der: cert.der().to_vec(), not_after, issuer: Issuer::new(params, key) })
    }

    /// Loads a CA saved with [`Self::cert_pem`] and [`Self::key_pem`]. Checks that the
    /// certificate is a CA and that the key is its P-256 key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let cert_der = pem_block(cert_pem, &["CERTIFICATE"])?;
        let cert = parse_certificate(&cert_der)?;
        if !cert.is_ca() {
            return Err(CaError::NotACa);
        }
        let not_after = Timestamp::from_second(cert.validity().not_after.timestamp())
            .map_err(|e| CaError::InvalidCertificate(format!("notAfter out of range: {e}")))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| CaError::InvalidKey(e.to_string()))?;
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(CaError::InvalidKey("not an ECDSA P-256 key".into()));
        }
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
            .map_err(|e| CaError::InvalidCertificate(e.to_string()))?;
        Ok(Self { cert_pem: pem_of("CERTIFICATE", &cert_der), cert_der, not_after, issuer })
    }

    /// The CA certificate in PEM: what agents and the manager trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate in DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The CA's private key in PKCS#8 PEM, to save next to the certificate.
    pub fn key_pem(&self) -> PrivateKeyPem {
        PrivateKeyPem(Zeroizing::new(self.issuer.key().serialize_pem()))
    }

    /// SHA-256 of the CA certificate, lower-case hex; agents can pin it at registration.
    pub fn fingerprint(&self) -> String {
        crate::hex(&Sha256::digest(&self.cert_der))
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> Timestamp {
        self.not_after
    }

    fn window(&self, now: Timestamp, validity: SignedDuration) -> Result<(Timestamp, Timestamp), CaError> {
        let (not_before, not_after) = validity_window(now, validity)?;
        if not_after > self.not_after {
            return Err(CaError::InvalidValidity(format!(
                "the certificate would end at {not_after}, after the CA's own end at {}",
                self.not_after
            )));
        }
        Ok((not_before, not_after))
    }

    fn end_entity_params(
        &self,
        subject: &str,
        eku: ExtendedKeyUsagePurpose,
        now: Timestamp,
        validity: SignedDuration,
    ) -> Result<(CertificateParams, CertSerial, Timestamp, Timestamp), CaError> {
        let (not_before, not_after) = self.window(now, validity)?;
        let serial = CertSerial::random()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(subject);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        params.use_authority_key_identifier_extension = true;
        params.key_identifier_method = KeyIdMethod::Sha256;
        Ok((params, serial, not_before, not_after))
    }

    /// A server certificate (`serverAuth`) with a fresh P-256 key for the given names. At least
    /// one DNS name or IP address is required; the first DNS name (or IP) is also the subject CN.
    pub fn issue_server_cert(
        &self,
        dns_names: &[&str],
        ip_addresses: &[IpAddr],
        now: Timestamp,
        validity: SignedDuration,
    ) -> Result<(IssuedCertificate, PrivateKeyPem), CaError> {
        let subject = match (dns_names.first(), ip_addresses.first()) {
            (Some(name), _) => (*name).to_owned(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => return Err(CaError::InvalidName("a server certificate needs a DNS name or an IP".into())),
        };
        let (mut params, serial, not_before, not_after) =
            self.end_entity_params(&subject, ExtendedKeyUsagePurpose::ServerAuth, now, validity)?;
        for name in dns_names {
            // Labels of letters, digits and `-`; a `*` is allowed only as the whole first label.
            let valid = !name.is_empty()
                && name.split('.').enumerate().all(|(index, label)| {
                    (index == 0 && label == "*")
                        || (!label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                });
            if !valid {
                return Err(CaError::InvalidName(format!("{name:?} is not a DNS name")));
            }
            let ia5 = (*name).try_into().map_err(|_| CaError::InvalidName(format!("{name:?} is not ASCII")))?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        params.subject_alt_names.extend(ip_addresses.iter().map(|ip| SanType::IpAddress(*ip)));
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let issued = IssuedCertificate {
            cert_pem: cert.pem(),
            fingerprint: crate::hex(&Sha256::digest(cert.der())),
            serial,
            not_before,
            not_after,
        };
        Ok((issued, PrivateKeyPem(Zeroizing::new(key.serialize_pem()))))
    }

    /// A client certificate (`clientAuth`, subject `CN=<host_id>`) for the public key in an
    /// agent's PEM certificate signing request. Only the key is taken from the request, after its
    /// signature is checked; the key must be ECDSA P-256 or Ed25519.
    pub fn sign_client_csr(
        &self,
        csr_pem: &str,
        host_id: &str,
        now: Timestamp,
        validity: SignedDuration,
    ) -> Result<IssuedCertificate, CaError> {
        check_host_id(host_id)?;
        let der = pem_block(csr_pem, &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"])?;
        let (rest, csr) = X509CertificationRequest::from_der(&der).map_err(|e| CaError::InvalidCsr(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CaError::InvalidCsr("trailing bytes after the request".into()));
        }
        let spki = &csr.certification_request_info.subject_pki;
        let public_key = SubjectPublicKeyInfo::from_der(spki.raw)
            .map_err(|_| CaError::UnsupportedKey(format!("key algorithm {}", spki.algorithm.algorithm)))?;
        let algorithm = PublicKeyData::algorithm(&public_key);
        if algorithm != &PKCS_ECDSA_P256_SHA256 && algorithm != &PKCS_ED25519 {
            return Err(CaError::UnsupportedKey(format!("{algorithm:?}")));
        }
        csr.verify_signature().map_err(|_| CaError::CsrSignature)?;
        let (params, serial, not_before, not_after) =
            self.end_entity_params(host_id, ExtendedKeyUsagePurpose::ClientAuth, now, validity)?;
        let cert = params.signed_by(&public_key, &self.issuer)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            fingerprint: crate::hex(&Sha256::digest(cert.der())),
            serial,
            not_before,
            not_after,
        })
    }

    /// A CRL listing `revoked` (serial, revocation time), issued at `now`, valid until
    /// `next_update`. Its CRL number is `now` in Unix seconds.
    pub fn generate_crl(
        &self,
        revoked: &[(CertSerial, Timestamp)],
        now: Timestamp,
        next_update: Timestamp,
    ) -> Result<String, CaError> {
        if next_update <= now {
            return Err(CaError::InvalidValidity(format!("next update {next_update} is not after now {now}")));
        }
        let crl_number =
            u64::try_from(now.as_second()).map_err(|_| CaError::InvalidValidity(format!("{now} is before 1970")))?;
        let revoked_certs = revoked
            .iter()
            .map(|(serial, at)| {
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial.as_bytes()),
                    revocation_time: to_offset(*at)?,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let params = CertificateRevocationListParams {
            this_update: to_offset(now)?,
            next_update: to_offset(next_update)?,
            crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.pem()?)
    }
}

fn pem_of(label: &str, der: &[u8]) -> String {
    let base64 = data_encoding::BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in base64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// For agents: a new P-256 key and a PEM certificate signing request for it with subject
/// `CN=<common_name>`. The CA ignores everything in it but the key, so nothing else is asked for.
pub fn make_csr(common_name: &str) -> Result<(String, PrivateKeyPem), CaError> {
    check_host_id(common_name)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = self::common_name(common_name);
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, PrivateKeyPem(Zeroizing::new(key.serialize_pem()))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;

    fn now() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    fn days(n: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * n)
    }

    fn ca() -> CertificateAuthority {
        CertificateAuthority::generate("Patchdeck Test CA", now(), days(3650)).unwrap()
    }

    fn parse(pem: &str) -> (Vec<u8>, String) {
        (pem_block(pem, &["CERTIFICATE"]).unwrap(), pem.to_owned())
    }

    fn cn(cert: &X509Certificate<'_>) -> String {
        cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_owned()
    }

    fn eku(cert: &X509Certificate<'_>) -> (bool, bool) {
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        (eku.server_auth, eku.client_auth)
    }

    #[test]
    fn ca_certificate_is_a_p256_ca_with_the_documented_extensions() {
        let ca = ca();
        let (der, _) = parse(ca.cert_pem());
        let cert = parse_certificate(&der).unwrap();
        assert!(cert.is_ca());
        assert_eq!(cn(&cert), "Patchdeck Test CA");
        assert_eq!(cert.subject(), cert.issuer(), "self-signed");
        let constraints = cert.basic_constraints().unwrap().unwrap().value;
        assert_eq!(constraints.path_len_constraint, Some(0));
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign() && usage.crl_sign() && usage.digital_signature());
        assert_eq!(cert.public_key().algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1", "id-ecPublicKey");
        assert_eq!(cert.signature_algorithm.algorithm.to_id_string(), "1.2.840.10045.4.3.2", "ecdsa-with-SHA256");
        assert_eq!(cert.validity().not_before.timestamp(), now().as_second() - 300);
        assert_eq!(cert.validity().not_after.timestamp(), (now() + days(3650)).as_second());
        assert_eq!(cert.raw_serial().len(), SERIAL_LEN);
        assert!(cert.verify_signature(None).is_ok());
        assert_eq!(ca.fingerprint(), fingerprint(ca.cert_pem()).unwrap());
        assert_eq!(ca.fingerprint().len(), 64);
    }

    #[test]
    fn ca_round_trips_through_pem_and_keeps_signing() {
        let original = ca();
        let loaded = CertificateAuthority::from_pem(original.cert_pem(), original.key_pem().expose()).unwrap();
        assert_eq!(loaded.fingerprint(), original.fingerprint());
        assert_eq!(loaded.cert_pem(), original.cert_pem());
        assert_eq!(loaded.not_after(), original.not_after());
        let (server, _) = loaded.issue_server_cert(&["manager.example"], &[], now(), days(30)).unwrap();
        let (der, _) = parse(&server.cert_pem);
        let cert = parse_certificate(&der).unwrap();
        let (ca_der, _) = parse(original.cert_pem());
        let ca_cert = parse_certificate(&ca_der).unwrap();
        assert!(cert.verify_signature(Some(ca_cert.public_key())).is_ok(), "signed by the same key");
        assert_eq!(cert.issuer(), ca_cert.subject());
    }

    #[test]
    fn loading_refuses_a_foreign_key_a_non_ca_and_garbage() {
        let ca = ca();
        let other = CertificateAuthority::generate("Other", now(), days(10)).unwrap();
        assert!(matches!(
            CertificateAuthority::from_pem(ca.cert_pem(), other.key_pem().expose()),
            Err(CaError::KeyMismatch)
        ));
        let (server, server_key) = ca.issue_server_cert(&["a.example"], &[], now(), days(1)).unwrap();
        assert!(matches!(CertificateAuthority::from_pem(&server.cert_pem, server_key.expose()), Err(CaError::NotACa)));
        assert!(matches!(CertificateAuthority::from_pem("nope", "nope"), Err(CaError::InvalidPem(_))));
        assert!(matches!(
            CertificateAuthority::from_pem(ca.key_pem().expose(), ca.key_pem().expose()),
            Err(CaError::InvalidPem(_))
        ));
        let ed25519 = crate::signing::SigningKey::from_seed(&[7; 32]).to_pkcs8_pem();
        assert!(matches!(CertificateAuthority::from_pem(ca.cert_pem(), &ed25519), Err(CaError::InvalidKey(_))));
    }

    #[test]
    fn server_certificate_has_names_server_auth_and_its_own_key() {
        let ca = ca();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (issued, key) = ca.issue_server_cert(&["manager.example", "localhost"], &[ip], now(), days(90)).unwrap();
        let (der, _) = parse(&issued.cert_pem);
        let cert = parse_certificate(&der).unwrap();
        assert_eq!(cn(&cert), "manager.example");
        assert_eq!(eku(&cert), (true, false));
        assert!(!cert.is_ca());
        let sans = cert.subject_alternative_name().unwrap().unwrap().value;
        let shown: Vec<String> = sans.general_names.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["DNSName(manager.example)", "DNSName(localhost)", "IPAddress(7f:00:00:01)"]);
        assert_eq!(issued.serial, serial_of(&issued.cert_pem).unwrap());
        assert_eq!(issued.serial, serial_of_der(&der).unwrap());
        assert_eq!(issued.serial.as_bytes().len(), 16);
        assert_eq!(issued.not_after, now() + days(90));
        assert_eq!(issued.not_before, now() - BACKDATE);
        assert_eq!(issued.fingerprint, fingerprint(&issued.cert_pem).unwrap());
        let key = KeyPair::from_pem(key.expose()).unwrap();
        assert_eq!(key.public_key_raw(), cert.public_key().subject_public_key.data.as_ref());
        assert_eq!(format!("{:?}", ca.key_pem()), "PrivateKeyPem([redacted])");
    }

    #[test]
    fn server_certificate_requests_are_validated() {
        let ca = ca();
        assert!(matches!(ca.issue_server_cert(&[], &[], now(), days(1)), Err(CaError::InvalidName(_))));
        for bad in ["", "a..b", "bad name", "ünï.example", "a/b", "a.*.example", "w*.example"] {
            assert!(
                matches!(ca.issue_server_cert(&[bad], &[], now(), days(1)), Err(CaError::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            ca.issue_server_cert(&["a.example"], &[], now(), days(4000)),
            Err(CaError::InvalidValidity(_))
        ));
        assert!(matches!(
            ca.issue_server_cert(&["a.example"], &[], now(), SignedDuration::ZERO),
            Err(CaError::InvalidValidity(_))
        ));
        assert!(ca.issue_server_cert(&["*.fleet.example"], &[], now(), days(1)).is_ok());
        let (ip_only, _) = ca.issue_server_cert(&[], &["::1".parse().unwrap()], now(), days(1)).unwrap();
        let (der, _) = parse(&ip_only.cert_pem);
        assert_eq!(cn(&parse_certificate(&der).unwrap()), "::1");
    }

    #[test]
    fn serials_are_random_positive_and_16_bytes() {
        let ca = ca();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let (issued, _) = ca.issue_server_cert(&["a.example"], &[], now(), days(1)).unwrap();
            let serial = serial_of(&issued.cert_pem).unwrap();
            assert_eq!(serial.as_bytes().len(), 16, "{serial:?}");
            assert!(serial.as_bytes()[0] & 0x80 == 0 && serial.as_bytes()[0] != 0);
            assert!(seen.insert(serial.to_hex()));
        }
        let serial = CertSerial::random().unwrap();
        assert_eq!(CertSerial::from_hex(&serial.to_hex()).unwrap(), serial);
        assert_eq!(CertSerial::from_hex(""), None);
        assert_eq!(CertSerial::from_hex("zz"), None);
    }

    #[test]
    fn client_certificate_takes_only_the_key_from_the_csr() {
        let ca = ca();
        // A greedy request: other subject, SANs, serverAuth and CA:true. All of it is ignored.
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
        params.distinguished_name = common_name("manager");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0])];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();

        let issued = ca.sign_client_csr(&csr, "host-0001", now(), days(365)).unwrap();
        let (der, _) = parse(&issued.cert_pem);
        let cert = parse_certificate(&der).unwrap();
        assert_eq!(cn(&cert), "host-0001");
        assert_eq!(cert.subject().iter().count(), 1, "only the CN");
        assert_eq!(eku(&cert), (false, true));
        assert!(!cert.is_ca());
        assert!(cert.subject_alternative_name().unwrap().is_none());
        for ext in cert.extensions() {
            assert!(!matches!(ext.parsed_extension(), ParsedExtension::UnsupportedExtension { .. }), "{ext:?}");
        }
        assert_eq!(cert.public_key().subject_public_key.data.as_ref(), key.public_key_raw());
        assert_eq!(issued.serial, serial_of(&issued.cert_pem).unwrap());
    }

    #[test]
    fn ed25519_csrs_are_accepted() {
        let ca = ca();
        let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
        let csr = CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap();
        let issued = ca.sign_client_csr(&csr, "host.ed25519", now(), days(30)).unwrap();
        let (der, _) = parse(&issued.cert_pem);
        let cert = parse_certificate(&der).unwrap();
        assert_eq!(cert.public_key().algorithm.algorithm.to_id_string(), "1.3.101.112", "id-Ed25519");
    }

    #[test]
    fn other_key_types_are_refused() {
        let ca = ca();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let csr = CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap();
        let err = ca.sign_client_csr(&csr, "host", now(), days(30)).unwrap_err();
        assert!(matches!(err, CaError::UnsupportedKey(_)), "{err}");
    }

    #[test]
    fn a_csr_whose_signature_does_not_verify_is_refused() {
        let ca = ca();
        let (csr, _) = make_csr("aaaaaaaaaaaa").unwrap();
        let mut der = pem_block(&csr, &["CERTIFICATE REQUEST"]).unwrap();
        let at = der.windows(12).position(|w| w == b"aaaaaaaaaaaa").unwrap();
        der[at] = b'b';
        let forged = pem_of("CERTIFICATE REQUEST", &der);
        assert!(matches!(ca.sign_client_csr(&forged, "host", now(), days(1)), Err(CaError::CsrSignature)));
        // The untouched request is fine.
        assert!(ca.sign_client_csr(&csr, "host", now(), days(1)).is_ok());
    }

    #[test]
    fn bad_csr_input_and_host_ids_are_refused() {
        let ca = ca();
        let (csr, _) = make_csr("host").unwrap();
        for bad in ["", "host with space", "a/b", "ü", &"x".repeat(65)] {
            assert!(matches!(ca.sign_client_csr(&csr, bad, now(), days(1)), Err(CaError::InvalidHostId(_))), "{bad:?}");
        }
        assert!(matches!(ca.sign_client_csr("garbage", "h", now(), days(1)), Err(CaError::InvalidPem(_))));
        assert!(matches!(ca.sign_client_csr(ca.cert_pem(), "h", now(), days(1)), Err(CaError::InvalidPem(_))));
        let junk = pem_of("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x00");
        assert!(matches!(ca.sign_client_csr(&junk, "h", now(), days(1)), Err(CaError::InvalidCsr(_))));
    }

    #[test]
    fn make_csr_produces_a_verifiable_p256_request() {
        let (csr, key) = make_csr("host-7").unwrap();
        let der = pem_block(&csr, &["CERTIFICATE REQUEST"]).unwrap();
        let (_, parsed) = X509CertificationRequest::from_der(&der).unwrap();
        assert!(parsed.verify_signature().is_ok());
        let subject = &parsed.certification_request_info.subject;
        assert_eq!(subject.iter_common_name().next().unwrap().as_str().unwrap(), "host-7");
        let key = KeyPair::from_pem(key.expose()).unwrap();
        assert_eq!(key.algorithm(), &PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            parsed.certification_request_info.subject_pki.subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
    }

    #[test]
    fn crl_lists_the_revoked_serials_and_is_signed_by_the_ca() {
        let ca = ca();
        let revoked_at = now() - SignedDuration::from_hours(1);
        let a = CertSerial::random().unwrap();
        let b = CertSerial::random().unwrap();
        let pem = ca.generate_crl(&[(a.clone(), revoked_at), (b.clone(), now())], now(), now() + days(7)).unwrap();
        let der = pem_block(&pem, &["X509 CRL"]).unwrap();
        let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der).unwrap();
        let serials: Vec<&[u8]> = crl.iter_revoked_certificates().map(|r| r.raw_serial()).collect();
        assert_eq!(serials, [a.as_bytes(), b.as_bytes()]);
        let first = crl.iter_revoked_certificates().next().unwrap();
        assert_eq!(first.revocation_date.timestamp(), revoked_at.as_second());
        assert_eq!(crl.last_update().timestamp(), now().as_second());
        assert_eq!(crl.next_update().unwrap().timestamp(), (now() + days(7)).as_second());
        assert_eq!(crl.crl_number().unwrap().to_string(), now().as_second().to_string());
        let (ca_der, _) = parse(ca.cert_pem());
        let ca_cert = parse_certificate(&ca_der).unwrap();
        assert_eq!(crl.issuer(), ca_cert.subject());
        assert!(crl.verify_signature(ca_cert.public_key()).is_ok());
        assert!(matches!(ca.generate_crl(&[], now(), now()), Err(CaError::InvalidValidity(_))));
    }
}
