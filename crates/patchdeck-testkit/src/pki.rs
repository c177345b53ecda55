//! A throw-away PKI for tests and benchmarks: a CA made on the spot, leaf
//! certificates it signs, and rustls client configurations that present them.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// A certificate authority.
#[derive(Debug)]
pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub cert: rcgen::Certificate,
}

/// A certificate signed by a [`Ca`], with its key.
#[derive(Debug)]
pub struct Leaf {
    pub cert: rcgen::Certificate,
    pub key: KeyPair,
}

impl Ca {
    /// A new self-signed CA named `cn`.
    pub fn new(cn: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA");
        Ca { params, key, cert }
    }

    /// A certificate for `cn` with the subject alternative names `sans`, the
    /// extended key usage `eku` and the serial number `serial`.
    pub fn leaf(&self, cn: &str, sans: &[&str], eku: ExtendedKeyUsagePurpose, serial: &[u8]) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("leaf parameters");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from_slice(serial));
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &Issuer::from_params(&self.params, &self.key)).expect("signed leaf");
        Leaf { cert, key }
    }

    /// A TLS 1.3 client (ring provider) that trusts this CA, presents `leaf`
    /// and offers the ALPN protocols `alpn`.
    pub fn client_tls(&self, leaf: &Leaf, alpn: &[&[u8]]) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        roots.add(self.cert.der().clone()).expect("CA certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3")
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![CertificateDer::from(leaf.cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(leaf.key.serialize_der().into()),
            )
            .expect("client certificate");
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}
