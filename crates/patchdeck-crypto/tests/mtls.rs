//! Real mutual TLS 1.3 over loopback with certificates from the internal CA.
//!
//! The server is rustls (ring provider) with a `WebPkiClientVerifier` that requires a client
//! certificate chaining to the CA; the client is rustls trusting only the CA. Each test runs one
//! handshake with a server thread and a client on the test thread over `std::net::TcpStream`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use patchdeck_crypto::ca::{self, CertificateAuthority};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};
use x509_parser::prelude::{FromDer, X509Certificate};

const TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

fn roots(ca_pem: &str) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap()).unwrap();
    Arc::new(roots)
}

fn chain(cert_pem: &str) -> Vec<CertificateDer<'static>> {
    vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()]
}

fn key(key_pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap()
}

/// The manager's side: TLS 1.3 only, client certificate required and checked against the CA
/// (and the CRL, when there is one).
fn server_config(ca: &CertificateAuthority, now: Timestamp, crl_pem: Option<&str>) -> Arc<ServerConfig> {
    let mut verifier = WebPkiClientVerifier::builder_with_provider(roots(ca.cert_pem()), provider());
    if let Some(crl) = crl_pem {
        verifier = verifier.with_crls([CertificateRevocationListDer::from_pem_slice(crl.as_bytes()).unwrap()]);
    }
    let (server, server_key) =
        ca.issue_server_cert(&["localhost"], &["127.0.0.1".parse().unwrap()], now, days(30)).unwrap();
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier.build().unwrap())
        .with_single_cert(chain(&server.cert_pem), key(server_key.expose()))
        .unwrap();
    Arc::new(config)
}

/// The agent's side: trusts only `ca_pem`, presents `identity` (certificate and key PEM) if any.
fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(ca_pem));
    let config = match identity {
        Some((cert_pem, key_pem)) => builder.with_client_auth_cert(chain(cert_pem), key(key_pem)).unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// An agent identity: a key made by `make_csr` and the certificate the CA signed for it.
fn agent(ca: &CertificateAuthority, host_id: &str, now: Timestamp) -> (ca::IssuedCertificate, ca::PrivateKeyPem) {
    let (csr, key) = ca::make_csr(host_id).unwrap();
    (ca.sign_client_csr(&csr, host_id, now, days(365)).unwrap(), key)
}

struct Outcome {
    /// What the server saw: the client certificate's CN, or the error that ended the connection.
    server: io::Result<String>,
    /// What the client read back, or its error.
    client: io::Result<String>,
}

/// One connection: the client sends `ping`, the server answers `hello <client CN>` and closes.
fn connect(server: Arc<ServerConfig>, client: Arc<ClientConfig>, server_name: &str) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server_thread = thread::spawn(move || -> io::Result<String> {
        let (socket, _) = listener.accept()?;
        socket.set_read_timeout(Some(TIMEOUT))?;
        socket.set_write_timeout(Some(TIMEOUT))?;
        let connection = ServerConnection::new(server).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(connection, socket);
        let mut request = [0u8; 4];
        tls.read_exact(&mut request)?;
        assert_eq!(&request, b"ping");
        let peer = tls.conn.peer_certificates().expect("the verifier requires a client certificate");
        let (_, cert) = X509Certificate::from_der(&peer[0]).map_err(io::Error::other)?;
        let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_owned();
        tls.write_all(format!("hello {cn}").as_bytes())?;
        tls.conn.send_close_notify();
        tls.flush()?;
        Ok(cn)
    });

    let client_result = (|| -> io::Result<String> {
        let socket = TcpStream::connect(address)?;
        socket.set_read_timeout(Some(TIMEOUT))?;
        socket.set_write_timeout(Some(TIMEOUT))?;
        let name = ServerName::try_from(server_name.to_owned()).map_err(io::Error::other)?;
        let connection = ClientConnection::new(client, name).map_err(io::Error::other)?;
        let mut tls = StreamOwned::new(connection, socket);
        tls.write_all(b"ping")?;
        tls.flush()?;
        let mut reply = String::new();
        tls.read_to_string(&mut reply)?;
        Ok(reply)
    })();
    Outcome { server: server_thread.join().expect("server thread panicked"), client: client_result }
}

/// The rustls error inside an IO error, if that is what it is.
fn tls_error(result: &io::Result<String>) -> Option<&rustls::Error> {
    result.as_ref().err()?.get_ref()?.downcast_ref::<rustls::Error>()
}

#[test]
fn mutual_tls_handshake_succeeds_and_server_sees_the_host_id() {
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("Patchdeck CA", now, days(3650)).unwrap();
    let (cert, key) = agent(&ca, "host-0042", now);
    let outcome = connect(
        server_config(&ca, now, None),
        client_config(ca.cert_pem(), Some((&cert.cert_pem, key.expose()))),
        "localhost",
    );
    assert_eq!(outcome.server.unwrap(), "host-0042");
    assert_eq!(outcome.client.unwrap(), "hello host-0042");
}

#[test]
fn server_ip_address_san_is_accepted() {
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("Patchdeck CA", now, days(3650)).unwrap();
    let (cert, key) = agent(&ca, "host-ip", now);
    let outcome = connect(
        server_config(&ca, now, None),
        client_config(ca.cert_pem(), Some((&cert.cert_pem, key.expose()))),
        "127.0.0.1",
    );
    assert_eq!(outcome.client.unwrap(), "hello host-ip");
}

#[test]
fn ca_loaded_from_pem_issues_certificates_that_interoperate() {
    let now = Timestamp::now();
    let original = CertificateAuthority::generate("Patchdeck CA", now, days(3650)).unwrap();
    let reloaded = CertificateAuthority::from_pem(original.cert_pem(), original.key_pem().expose()).unwrap();
    // Server from the original, client from the reloaded CA: one trust anchor for both.
    let (cert, key) = agent(&reloaded, "host-reloaded", now);
    let outcome = connect(
        server_config(&original, now, None),
        client_config(original.cert_pem(), Some((&cert.cert_pem, key.expose()))),
        "localhost",
    );
    assert_eq!(outcome.server.unwrap(), "host-reloaded");
}

#[test]
fn client_certificate_from_another_ca_is_refused() {
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("Patchdeck CA", now, days(3650)).unwrap();
    // A CA with another name is unknown; one that copies our CA's name fails the signature check.
    for (rogue_name, expected) in
        [("Rogue CA", CertificateError::UnknownIssuer), ("Patchdeck CA", CertificateError::BadSignature)]
    {
        let rogue = CertificateAuthority::generate(rogue_name, now, days(3650)).unwrap();
        let (cert, key) = agent(&rogue, "host-0042", now);
        let outcome = connect(
            server_config(&ca, now, None),
            client_config(ca.cert_pem(), Some((&cert.cert_pem, key.expose()))),
            "localhost",
        );
        assert!(
            matches!(tls_error(&outcome.server), Some(rustls::Error::InvalidCertificate(e)) if *e == expected),
            "{rogue_name}: {:?}",
            outcome.server
        );
        assert!(outcome.client.is_err(), "the client is told by an alert: {:?}", outcome.client);
    }
}

#[test]
fn client_without_certificate_is_refused() {
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("Patchdeck CA", now, days(3650)).unwrap();
    let outcome = connect(server_config(&ca, now, None), client_config(ca.cert_pem(), None), "localhost");
    assert!(matches!(tls_error(&outcome.server), Some(rustls::Error::NoCertificatesPresented)), "{:?}", outcome.server);
    assert!(outcome.client.is_err(), "{:?}", outcome.client);
}

#[test]
fn revoked_client_certificate_is_refused_when_the_verifier_has_the_crl() {
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("Patchdeck CA", now, days(3650)).unwrap();
    let (revoked, revoked_key) = agent(&ca, "host-revoked", now);
    let (good, good_key) = agent(&ca, "host-good", now);
    let crl = ca.generate_crl(&[(revoked.serial.clone(), now)], now, now + days(7)).unwrap();

    let outcome = connect(
        server_config(&ca, now, Some(&crl)),
        client_config(ca.cert_pem(), Some((&revoked.cert_pem, revoked_key.expose()))),
        "localhost",
    );
    assert!(
        matches!(tls_error(&outcome.server), Some(rustls::Error::InvalidCertificate(CertificateError::Revoked))),
        "{:?}",
        outcome.server
    );
    assert!(outcome.client.is_err(), "{:?}", outcome.client);

    // The same CRL does not affect a certificate it does not list.
    let outcome = connect(
        server_config(&ca, now, Some(&crl)),
        client_config(ca.cert_pem(), Some((&good.cert_pem, good_key.expose()))),
        "localhost",
    );
    assert_eq!(outcome.server.unwrap(), "host-good");
}

#[test]
fn client_refuses_a_server_using_a_client_certificate() {
    // An agent's certificate has only the clientAuth EKU; a peer that presents it as a server
    // (say, a stolen agent key) is refused by the client.
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("Patchdeck CA", now, days(3650)).unwrap();
    let (agent_cert, agent_key) = agent(&ca, "localhost", now);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca.cert_pem()), provider()).build().unwrap();
    let impostor = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain(&agent_cert.cert_pem), key(agent_key.expose()))
        .unwrap();
    let (cert, key_pem) = agent(&ca, "host-1", now);
    let outcome = connect(
        Arc::new(impostor),
        client_config(ca.cert_pem(), Some((&cert.cert_pem, key_pem.expose()))),
        "localhost",
    );
    assert!(
        matches!(
            tls_error(&outcome.client),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            ))
        ),
        "{:?}",
        outcome.client
    );
    assert!(outcome.server.is_err());
}
