//! The rustls server configuration: TLS 1.3 only, client certificate required.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::certs::{check_certificates, CertError, LoadedCerts, TlsPaths};

/// ALPN protocols offered, in order of preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The crypto provider used everywhere in the transport: rustls' `ring` provider.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A checked, ready-to-serve TLS server configuration and the files it was built from.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
    paths: TlsPaths,
    server_not_after: String,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("paths", &self.paths)
            .field("server_not_after", &self.server_not_after)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Checks the files (see [`check_certificates`]) at the current time and builds the config.
    pub fn load(paths: &TlsPaths) -> Result<Self, CertError> {
        Self::load_at(paths, SystemTime::now())
    }

    /// Like [`ServerTls::load`], with the clock given (for tests).
    pub fn load_at(paths: &TlsPaths, now: SystemTime) -> Result<Self, CertError> {
        let provider = crypto_provider();
        let loaded = check_certificates(paths, &provider, now)?;
        let server_not_after = loaded.server_not_after.clone();
        let config = build_server_config(loaded, provider, paths)?;
        Ok(ServerTls { config, paths: paths.clone(), server_not_after })
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }

    /// The files this configuration was built from.
    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    /// When the server certificate expires (for logs and health checks).
    pub fn server_not_after(&self) -> &str {
        &self.server_not_after
    }
}

#[derive(Debug)]
struct SingleCert(Arc<rustls::sign::CertifiedKey>);

impl ResolvesServerCert for SingleCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn build_server_config(
    loaded: LoadedCerts,
    provider: Arc<CryptoProvider>,
    paths: &TlsPaths,
) -> Result<Arc<ServerConfig>, CertError> {
    let config_error =
        |reason: String| CertError::Config { ca: paths.ca_bundle.clone(), cert: paths.server_cert.clone(), reason };

    let mut roots = RootCertStore::empty();
    for ca in loaded.ca_certs {
        roots.add(ca).map_err(|e| config_error(format!("CA certificate refused as a trust anchor: {e}")))?;
    }
    let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
    if !loaded.crls.is_empty() {
        // Default policy: the whole chain is checked, and a certificate whose status no CRL
        // covers is refused (fail closed).
        verifier = verifier.with_crls(loaded.crls);
    }
    let verifier = verifier.build().map_err(|e| config_error(format!("client certificate verifier: {e}")))?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_error(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCert(loaded.certified_key)));
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    // No session resumption at all. A resumed TLS 1.3 session carries the client certificate
    // chain verified when the session was first made and is not checked again, so a certificate
    // that has expired since (rustls keeps stateful sessions for 24 h) would still get in.
    // Every connection runs the full handshake with the full client certificate verification.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A verified client certificate that could not be read (cannot happen for a certificate
/// rustls has verified; kept so a parser bug drops the connection instead of panicking).
#[derive(Debug, thiserror::Error)]
#[error("client certificate cannot be parsed: {0}")]
pub struct IdentityError(String);

/// Who is on the other end of an accepted connection: the verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The peer's address (IPv4-mapped IPv6 shown as IPv4).
    pub addr: SocketAddr,
    /// The client certificate's subject common name, when it has one.
    pub subject_cn: Option<String>,
    /// The client certificate's serial number, lowercase hex of its unsigned big-endian bytes.
    pub serial_hex: String,
    /// SHA-256 of the client certificate's DER, lowercase hex.
    pub sha256_fingerprint: String,
    /// The ALPN protocol agreed on (`h2` or `http/1.1`), when the client offered one.
    pub alpn: Option<String>,
}

impl PeerIdentity {
    /// Builds the identity from a verified end-entity certificate.
    pub fn from_certificate(
        addr: SocketAddr,
        cert: &CertificateDer<'_>,
        alpn: Option<&[u8]>,
    ) -> Result<Self, IdentityError> {
        let (_, parsed) = X509Certificate::from_der(cert).map_err(|e| IdentityError(e.to_string()))?;
        let subject_cn = parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned);
        let raw = parsed.raw_serial();
        // Drop the DER sign-padding zero so the hex is the unsigned value.
        let serial = match raw {
            [0, rest @ ..] if !rest.is_empty() => rest,
            other => other,
        };
        Ok(PeerIdentity {
            addr: SocketAddr::new(addr.ip().to_canonical(), addr.port()),
            subject_cn,
            serial_hex: hex(serial),
            sha256_fingerprint: hex(&Sha256::digest(cert.as_ref())),
            alpn: alpn.map(|p| String::from_utf8_lossy(p).into_owned()),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
