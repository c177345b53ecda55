//! The push-mode transport over real TLS on loopback, with certificates made here by rcgen.
//!
//! Several hosts are simulated with distinct loopback source addresses (127.0.0.2, 127.0.0.9...).
//! Timeouts below only guard against hangs; no test asserts a duration.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use patchdeck_agent::transport::{
    AllowList, AllowListError, AuditHook, CertError, FileWatcher, HandshakeFailure, Listener, PeerIdentity,
    ReloadHandle, ServerTls, TlsPaths, TransportConfig,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

/// Guard against hangs only.
const GUARD: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Test PKI

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert: rcgen::Certificate,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        Ca { params, key, cert }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    fn leaf(&self, cn: &str, sans: &[&str], eku: ExtendedKeyUsagePurpose, validity: Validity, serial: &[u8]) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(SerialNumber::from_slice(serial));
        let now = OffsetDateTime::now_utc();
        let (nb, na) = match validity {
            Validity::Current => (now - time::Duration::days(1), now + time::Duration::days(365)),
            Validity::Expired => (now - time::Duration::days(30), now - time::Duration::days(1)),
            Validity::Future => (now + time::Duration::days(1), now + time::Duration::days(30)),
        };
        params.not_before = nb;
        params.not_after = na;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer()).expect("leaf cert");
        Leaf { cert, key }
    }

    fn server(&self, validity: Validity) -> Leaf {
        self.leaf("agent-under-test", &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, validity, &[0x10, 0x01])
    }

    fn client(&self, cn: &str, serial: &[u8], validity: Validity) -> Leaf {
        self.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth, validity, serial)
    }

    fn crl_revoking(&self, serials: &[&[u8]]) -> String {
        let now = OffsetDateTime::now_utc();
        let params = CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(s),
                    revocation_time: now - time::Duration::minutes(5),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer()).expect("crl").pem().expect("crl pem")
    }
}

#[derive(Clone, Copy)]
enum Validity {
    Current,
    Expired,
    Future,
}

struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Leaf {
    fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.serialize_der().into())
    }
}

/// A CA, a valid server certificate for 127.0.0.1, and the files in a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    ca: Ca,
    paths: TlsPaths,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = Ca::new("Patchdeck Test CA");
        let server = ca.server(Validity::Current);
        let paths = TlsPaths {
            ca_bundle: dir.path().join("ca.pem"),
            server_cert: dir.path().join("server.pem"),
            server_key: dir.path().join("server.key"),
            crl: None,
        };
        write(&paths.ca_bundle, &ca.cert.pem());
        write(&paths.server_cert, &server.cert.pem());
        write(&paths.server_key, &server.key.serialize_pem());
        Fixture { dir, ca, paths }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn with_crl(&mut self, pem: &str) {
        let path = self.path("crl.pem");
        write(&path, pem);
        self.paths.crl = Some(path);
    }

    fn tls(&self) -> ServerTls {
        ServerTls::load(&self.paths).expect("valid TLS files")
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write test file");
}

// ---------------------------------------------------------------------------------------------
// Server side

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Denied(SocketAddr),
    Failed(SocketAddr, HandshakeFailure),
    Accepted(PeerIdentity),
}

struct Recorder(mpsc::UnboundedSender<Event>);

impl AuditHook for Recorder {
    fn on_denied(&self, peer: SocketAddr) {
        let _ = self.0.send(Event::Denied(peer));
    }
    fn on_handshake_failed(&self, peer: SocketAddr, failure: &HandshakeFailure) {
        let _ = self.0.send(Event::Failed(peer, failure.clone()));
    }
    fn on_accepted(&self, peer: &PeerIdentity) {
        let _ = self.0.send(Event::Accepted(peer.clone()));
    }
}

struct Server {
    addr: SocketAddr,
    handle: ReloadHandle,
    events: mpsc::UnboundedReceiver<Event>,
    served: mpsc::UnboundedReceiver<PeerIdentity>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(allow: &[&str], tls: ServerTls) -> Server {
        Self::start_with(allow, tls, Duration::from_secs(10)).await
    }

    async fn start_with(allow: &[&str], tls: ServerTls, handshake_timeout: Duration) -> Server {
        let allowlist = AllowList::from_entries(allow).await.expect("allow-list");
        Self::start_on("127.0.0.1:0", allowlist, tls, handshake_timeout).await
    }

    async fn start_on(bind: &str, allowlist: AllowList, tls: ServerTls, handshake_timeout: Duration) -> Server {
        let (events_tx, events) = mpsc::unbounded_channel();
        let config = TransportConfig::new(allowlist, tls)
            .with_audit(Arc::new(Recorder(events_tx)))
            .with_handshake_timeout(handshake_timeout);
        let mut listener = Listener::bind(bind, config).await.expect("bind");
        // Clients always dial IPv4 loopback, also when the listener is dual-stack.
        let addr = SocketAddr::new(IpAddr::from([127, 0, 0, 1]), listener.local_addr().expect("local addr").port());
        let handle = listener.reload_handle();
        let (served_tx, served) = mpsc::unbounded_channel();
        // Stands in for the HTTP layer: greets each authenticated client over TLS.
        let task = tokio::spawn(async move {
            loop {
                let (mut stream, identity) = listener.accept().await;
                let _ = served_tx.send(identity);
                tokio::spawn(async move {
                    let _ = stream.write_all(b"ok\n").await;
                    let _ = stream.flush().await;
                    let mut sink = [0u8; 64];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        Server { addr, handle, events, served, task }
    }

    async fn next_event(&mut self) -> Event {
        tokio::time::timeout(GUARD, self.events.recv()).await.expect("audit event in time").expect("audit channel open")
    }
}

// ---------------------------------------------------------------------------------------------
// Client side

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(
    ca: &Ca,
    client: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).expect("root");
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder.with_client_auth_cert(vec![leaf.der()], leaf.key_der()).expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn tls13(ca: &Ca, client: Option<&Leaf>) -> Arc<ClientConfig> {
    client_config(ca, client, &[&rustls::version::TLS13])
}

async fn tcp_from(local: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let ip: IpAddr = local.parse().expect("local ip");
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(server).await
}

/// Connects from `local`, runs the TLS handshake and reads the server's greeting. Ok means an
/// authenticated session carried application data; Err says where it stopped.
async fn session(local: &str, server: SocketAddr, config: Arc<ClientConfig>) -> Result<(), String> {
    let attempt = async {
        let tcp = tcp_from(local, server).await.map_err(|e| format!("tcp: {e}"))?;
        let name = ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
        let mut tls = TlsConnector::from(config).connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
        let mut greeting = [0u8; 3];
        tls.read_exact(&mut greeting).await.map_err(|e| format!("read: {e}"))?;
        if &greeting == b"ok\n" {
            Ok(())
        } else {
            Err(format!("unexpected greeting {greeting:?}"))
        }
    };
    tokio::time::timeout(GUARD, attempt).await.unwrap_or_else(|_| Err("client timed out".to_owned()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts the next audit event is a TLS handshake failure and returns its reason.
async fn expect_tls_failure(server: &mut Server) -> String {
    match server.next_event().await {
        Event::Failed(_, HandshakeFailure::Tls(reason)) => reason,
        other => panic!("expected a TLS handshake failure, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Handshake outcomes

#[tokio::test]
async fn valid_client_from_allowed_address_gets_a_session_and_its_identity() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let client = fx.ca.client("manager-01", &[0x5a, 0x17, 0x00, 0xc3, 0x9e], Validity::Current);

    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.expect("session");

    let identity = tokio::time::timeout(GUARD, server.served.recv()).await.expect("in time").expect("served");
    assert_eq!(identity.subject_cn.as_deref(), Some("manager-01"));
    assert_eq!(identity.serial_hex, "5a1700c39e");
    assert_eq!(identity.sha256_fingerprint, hex(&Sha256::digest(client.cert.der())));
    assert_eq!(identity.addr.ip(), IpAddr::from([127, 0, 0, 1]));
    assert_eq!(identity.alpn.as_deref(), Some("h2"));
    assert_eq!(server.next_event().await, Event::Accepted(identity));
}

#[tokio::test]
async fn serial_with_high_bit_is_reported_without_sign_padding() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let client = fx.ca.client("manager-02", &[0x9f, 0x00, 0x01], Validity::Current);
    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.expect("session");
    let identity = tokio::time::timeout(GUARD, server.served.recv()).await.expect("in time").expect("served");
    assert_eq!(identity.serial_hex, "9f0001");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let rogue_ca = Ca::new("Rogue CA");
    let rogue = rogue_ca.client("manager-01", &[0x01], Validity::Current);
    // The client trusts our CA (so it accepts the server) but presents the rogue certificate.
    let mut roots = RootCertStore::empty();
    roots.add(fx.ca.cert.der().clone()).expect("root");
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![rogue.der()], rogue.key_der())
        .expect("client auth");

    let outcome = session("127.0.0.1", server.addr, Arc::new(config)).await;
    assert!(outcome.is_err(), "a certificate from another CA must get no session");
    let reason = expect_tls_failure(&mut server).await;
    assert!(reason.to_lowercase().contains("unknown") || reason.contains("UnknownIssuer"), "{reason}");
    assert!(server.served.try_recv().is_err(), "nothing reaches the HTTP layer");
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let outcome = session("127.0.0.1", server.addr, tls13(&fx.ca, None)).await;
    assert!(outcome.is_err(), "no client certificate must get no session");
    let reason = expect_tls_failure(&mut server).await;
    assert!(reason.to_lowercase().contains("certificate"), "{reason}");
    assert!(server.served.try_recv().is_err());
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let expired = fx.ca.client("manager-01", &[0x02], Validity::Expired);
    let outcome = session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&expired))).await;
    assert!(outcome.is_err(), "an expired certificate must get no session");
    let reason = expect_tls_failure(&mut server).await;
    assert!(reason.to_lowercase().contains("expired"), "{reason}");
}

#[tokio::test]
async fn a_client_certificate_that_expired_since_the_last_session_cannot_resume_it() {
    // TLS 1.3 resumption skips the client certificate check: with session tickets, a client
    // could go on resuming (for up to 24 h with rustls' stateful cache) after its certificate
    // expired. Every connection must run the full verification.
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, "short-lived");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let (now, created) = (OffsetDateTime::now_utc(), std::time::Instant::now());
    params.not_before = now - time::Duration::days(1);
    // The margin only has to cover two handshakes on a busy machine.
    let valid_for = Duration::from_secs(5);
    params.not_after = now + valid_for;
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, &fx.ca.issuer()).expect("leaf cert");
    let client = Leaf { cert, key };
    // One client configuration, so its session cache (and any ticket it got) is reused.
    let config = tls13(&fx.ca, Some(&client));

    session("127.0.0.1", server.addr, Arc::clone(&config)).await.expect("served while the certificate is valid");
    assert!(matches!(server.next_event().await, Event::Accepted(_)));
    // A second connection offers whatever the first one left for resumption: it still gets a
    // full handshake.
    let tcp = tcp_from("127.0.0.1", server.addr).await.expect("tcp");
    let name = ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
    let mut tls = TlsConnector::from(Arc::clone(&config)).connect(name, tcp).await.expect("second handshake");
    let mut greeting = [0u8; 3];
    tls.read_exact(&mut greeting).await.expect("greeting");
    assert_eq!(tls.get_ref().1.handshake_kind(), Some(rustls::HandshakeKind::Full), "no resumption");
    drop(tls);
    assert!(matches!(server.next_event().await, Event::Accepted(_)));

    tokio::time::sleep_until((created + valid_for + Duration::from_millis(1500)).into()).await;
    let outcome = session("127.0.0.1", server.addr, config).await;
    assert!(outcome.is_err(), "an expired certificate must get no session, not even a resumed one");
    let reason = expect_tls_failure(&mut server).await;
    assert!(reason.to_lowercase().contains("expired"), "{reason}");
    assert_eq!(std::iter::from_fn(|| server.served.try_recv().ok()).count(), 2, "only the two valid sessions");
}

#[tokio::test]
async fn revoked_client_certificate_is_refused_when_a_crl_is_configured() {
    let mut fx = Fixture::new();
    let revoked = fx.ca.client("stolen-laptop", &[0x66, 0x66], Validity::Current);
    let good = fx.ca.client("manager-01", &[0x01, 0x23], Validity::Current);
    fx.with_crl(&fx.ca.crl_revoking(&[&[0x66, 0x66]]));
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;

    let outcome = session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&revoked))).await;
    assert!(outcome.is_err(), "a revoked certificate must get no session");
    let reason = expect_tls_failure(&mut server).await;
    assert!(reason.to_lowercase().contains("revoked"), "{reason}");

    // The CRL does not lock out certificates it does not list.
    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&good))).await.expect("unrevoked client");
}

#[tokio::test]
async fn tls12_only_client_is_refused() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let client = fx.ca.client("manager-01", &[0x03], Validity::Current);
    let config = client_config(&fx.ca, Some(&client), &[&rustls::version::TLS12]);
    let outcome = session("127.0.0.1", server.addr, config).await;
    let error = outcome.expect_err("TLS 1.2 must be refused");
    assert!(error.starts_with("handshake"), "refused during the handshake: {error}");
    expect_tls_failure(&mut server).await;
    assert!(server.served.try_recv().is_err());
}

#[tokio::test]
async fn silent_client_is_dropped_when_the_handshake_times_out() {
    let fx = Fixture::new();
    let mut server = Server::start_with(&["127.0.0.1"], fx.tls(), Duration::from_millis(200)).await;
    // Connects and never speaks TLS.
    let mut idle = tcp_from("127.0.0.1", server.addr).await.expect("tcp");
    match server.next_event().await {
        Event::Failed(peer, HandshakeFailure::TimedOut(_)) => assert_eq!(peer, idle.local_addr().expect("addr")),
        other => panic!("expected a handshake timeout, got {other:?}"),
    }
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(GUARD, idle.read(&mut buf)).await.expect("closed in time").unwrap_or(0);
    assert_eq!(n, 0, "the idle connection is closed without a byte");
}

#[tokio::test]
async fn pending_handshake_does_not_hold_up_other_clients() {
    let fx = Fixture::new();
    // Default 10 s handshake timeout: the silent client stays pending for the whole test.
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let _silent = tcp_from("127.0.0.1", server.addr).await.expect("tcp");
    let client = fx.ca.client("manager-01", &[0x04], Validity::Current);
    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.expect("other client served");
    // Served while the silent client's handshake is still pending (with handshakes run one at a
    // time, its timeout would come first).
    assert!(matches!(server.next_event().await, Event::Accepted(_)));
    assert!(server.events.try_recv().is_err(), "the silent client is still pending");
}

// ---------------------------------------------------------------------------------------------
// Allow-list

/// Connects from `local`, sends a real TLS 1.3 ClientHello, and returns every byte received until
/// the server closes (EOF or reset).
async fn raw_bytes_received(local: &str, server: SocketAddr, config: Arc<ClientConfig>) -> Vec<u8> {
    let mut tcp = tcp_from(local, server).await.expect("tcp connect (the kernel accepts before we decide)");
    let name = ServerName::IpAddress(IpAddr::from([127, 0, 0, 1]).into());
    let mut hello = Vec::new();
    let mut conn = rustls::ClientConnection::new(config, name).expect("client connection");
    conn.write_tls(&mut hello).expect("client hello");
    assert!(!hello.is_empty());
    // The server may already have closed; a failed write is fine.
    let _ = tcp.write_all(&hello).await;
    let mut received = Vec::new();
    let read = async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(GUARD, read).await.expect("server closes the connection");
    received
}

#[tokio::test]
async fn address_not_in_allow_list_is_closed_before_any_tls_byte() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let client = fx.ca.client("manager-01", &[0x05], Validity::Current);

    let received = raw_bytes_received("127.0.0.2", server.addr, tls13(&fx.ca, Some(&client))).await;
    assert!(received.is_empty(), "no ServerHello, no alert: got {} bytes", received.len());
    match server.next_event().await {
        Event::Denied(peer) => assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 2])),
        other => panic!("expected a denial, got {other:?}"),
    }
    // A full TLS client from the same address gets no session either.
    assert!(session("127.0.0.2", server.addr, tls13(&fx.ca, Some(&client))).await.is_err());
    // The allowed address with the same certificate is served: the refusal was the address.
    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.expect("allowed address");
}

#[tokio::test]
async fn cidr_entry_admits_addresses_inside_it_only() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.0/30"], fx.tls()).await;
    let client = fx.ca.client("manager-01", &[0x06], Validity::Current);

    session("127.0.0.2", server.addr, tls13(&fx.ca, Some(&client))).await.expect("127.0.0.2 is in 127.0.0.0/30");
    assert!(matches!(server.next_event().await, Event::Accepted(p) if p.addr.ip() == IpAddr::from([127, 0, 0, 2])));

    let received = raw_bytes_received("127.0.0.9", server.addr, tls13(&fx.ca, Some(&client))).await;
    assert!(received.is_empty(), "127.0.0.9 is outside 127.0.0.0/30: got {} bytes", received.len());
    assert!(matches!(server.next_event().await, Event::Denied(p) if p.ip() == IpAddr::from([127, 0, 0, 9])));
}

#[tokio::test]
async fn dual_stack_listener_matches_ipv4_mapped_peers_as_ipv4() {
    // On a `[::]` socket (Linux default `net.ipv6.bindv6only=0`), IPv4 clients appear as
    // `::ffff:a.b.c.d`; the IPv4 entry must still admit them, and only them.
    let fx = Fixture::new();
    let allowlist = AllowList::from_entries(&["127.0.0.1"]).await.expect("list");
    let mut server = Server::start_on("[::]:0", allowlist, fx.tls(), Duration::from_secs(10)).await;
    let client = fx.ca.client("manager-01", &[0x0a], Validity::Current);

    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.expect("mapped 127.0.0.1 admitted");
    let identity = tokio::time::timeout(GUARD, server.served.recv()).await.expect("in time").expect("served");
    assert_eq!(identity.addr.ip(), IpAddr::from([127, 0, 0, 1]), "reported as IPv4");
    assert!(matches!(server.next_event().await, Event::Accepted(_)));

    let received = raw_bytes_received("127.0.0.2", server.addr, tls13(&fx.ca, Some(&client))).await;
    assert!(received.is_empty(), "mapped 127.0.0.2 denied before TLS: got {} bytes", received.len());
    match server.next_event().await {
        Event::Denied(peer) => assert_eq!(peer.ip().to_canonical(), IpAddr::from([127, 0, 0, 2])),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_allow_list_at_start_denies_everyone_until_the_file_appears() {
    let fx = Fixture::new();
    let list_path = fx.path("allow.list");
    let allowlist = AllowList::load_or_deny_all(&list_path).await;
    assert!(allowlist.deny_reason().is_some_and(|r| r.contains("allow.list")), "{allowlist:?}");
    let mut server = Server::start_on("127.0.0.1:0", allowlist, fx.tls(), Duration::from_secs(10)).await;
    let mut watcher = FileWatcher::new(server.handle.clone(), Some(list_path.clone()), None);
    let client = fx.ca.client("manager-01", &[0x0b], Validity::Current);

    let received = raw_bytes_received("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await;
    assert!(received.is_empty(), "deny-all: got {} bytes", received.len());
    assert!(matches!(server.next_event().await, Event::Denied(_)));

    // The operator creates the file; the next poll puts it in force.
    write(&list_path, "127.0.0.1\n");
    watcher.poll().await.allowlist.expect("file appeared").expect("valid list");
    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.expect("admitted once the list exists");
}

// ---------------------------------------------------------------------------------------------
// Hot reload

#[tokio::test]
async fn allow_list_hot_reload_admits_new_address_and_refuses_invalid_file() {
    let fx = Fixture::new();
    let list_path = fx.path("allow.list");
    write(&list_path, "# only the manager\n127.0.0.1\n");
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let mut watcher = FileWatcher::new(server.handle.clone(), Some(list_path.clone()), None);
    let client = fx.ca.client("manager-01", &[0x07], Validity::Current);

    assert!(watcher.poll().await.allowlist.is_none(), "unchanged file: nothing reloaded");
    assert!(session("127.0.0.3", server.addr, tls13(&fx.ca, Some(&client))).await.is_err());
    assert!(matches!(server.next_event().await, Event::Denied(_)));

    // Admit 127.0.0.3 through the file.
    write(&list_path, "# the manager and its standby\n127.0.0.1\n127.0.0.3   # standby\n");
    watcher.poll().await.allowlist.expect("file changed").expect("valid list reloaded");
    session("127.0.0.3", server.addr, tls13(&fx.ca, Some(&client))).await.expect("newly admitted address");
    assert!(matches!(server.next_event().await, Event::Accepted(p) if p.addr.ip() == IpAddr::from([127, 0, 0, 3])));

    // An invalid file is refused, naming the file and the entry; the previous list stays.
    write(&list_path, "127.0.0.1\n127.0.0.300\n127.0.0.4\n");
    let error = watcher.poll().await.allowlist.expect("file changed").expect_err("invalid list refused");
    match &error {
        AllowListError::InvalidEntry { line, entry, .. } => assert_eq!((*line, entry.as_str()), (2, "127.0.0.300")),
        other => panic!("unexpected error {other}"),
    }
    assert!(error.to_string().contains("allow.list"), "{error}");
    session("127.0.0.3", server.addr, tls13(&fx.ca, Some(&client))).await.expect("old list still in force");
    assert!(session("127.0.0.4", server.addr, tls13(&fx.ca, Some(&client))).await.is_err());

    // A deleted file is refused too, and the list in force stays.
    std::fs::remove_file(&list_path).expect("remove");
    let error = server.handle.reload_allowlist(&list_path).await.expect_err("missing file refused");
    assert!(matches!(error, AllowListError::Read { .. }), "{error}");
    assert!(server.handle.allowlist().allows(IpAddr::from([127, 0, 0, 3])));
}

#[tokio::test]
async fn spawned_watcher_applies_a_changed_allow_list() {
    let fx = Fixture::new();
    let list_path = fx.path("allow.list");
    write(&list_path, "127.0.0.1\n");
    let allowlist = AllowList::load(&list_path).await.expect("list");
    let server = Server::start_on("127.0.0.1:0", allowlist, fx.tls(), Duration::from_secs(10)).await;
    let watcher = FileWatcher::new(server.handle.clone(), Some(list_path.clone()), Some(fx.paths.clone()));
    let task = watcher.spawn(Duration::from_millis(20));

    write(&list_path, "127.0.0.1\n127.0.0.5/32\n");
    let applied = async {
        while !server.handle.allowlist().allows(IpAddr::from([127, 0, 0, 5])) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(GUARD, applied).await.expect("the watcher reloads the changed file");
    let client = fx.ca.client("manager-01", &[0x0c], Validity::Current);
    session("127.0.0.5", server.addr, tls13(&fx.ca, Some(&client))).await.expect("admitted after the reload");
    task.abort();
}

#[tokio::test]
async fn tls_hot_reload_refuses_bad_files_and_applies_good_ones() {
    let fx = Fixture::new();
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let mut watcher = FileWatcher::new(server.handle.clone(), None, Some(fx.paths.clone()));
    let client = fx.ca.client("manager-01", &[0x08], Validity::Current);

    // A key that does not match the certificate: refused, the old configuration serves on.
    let stray = KeyPair::generate().expect("key");
    write(&fx.paths.server_key, &stray.serialize_pem());
    let error = watcher.poll().await.tls.expect("key changed").expect_err("mismatched key refused");
    assert!(matches!(error, CertError::KeyMismatch { .. }), "{error}");
    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.expect("old TLS config still serves");
    assert!(matches!(server.next_event().await, Event::Accepted(_)));

    // Rotate to a new CA and server certificate: clients of the old CA are refused afterwards.
    let new_ca = Ca::new("Patchdeck Test CA 2");
    let new_server = new_ca.server(Validity::Current);
    write(&fx.paths.ca_bundle, &new_ca.cert.pem());
    write(&fx.paths.server_cert, &new_server.cert.pem());
    write(&fx.paths.server_key, &new_server.key.serialize_pem());
    watcher.poll().await.tls.expect("files changed").expect("valid files reloaded");
    let new_client = new_ca.client("manager-01", &[0x09], Validity::Current);
    session("127.0.0.1", server.addr, tls13(&new_ca, Some(&new_client))).await.expect("new CA's client served");
    assert!(matches!(server.next_event().await, Event::Accepted(_)));
    assert!(session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.is_err());
}

#[tokio::test]
async fn crl_hot_reload_revokes_for_new_connections_and_a_bad_crl_keeps_the_old_one() {
    let mut fx = Fixture::new();
    let client = fx.ca.client("manager-01", &[0x42, 0x01], Validity::Current);
    fx.with_crl(&fx.ca.crl_revoking(&[&[0x77]]));
    let mut server = Server::start(&["127.0.0.1"], fx.tls()).await;
    let mut watcher = FileWatcher::new(server.handle.clone(), None, Some(fx.paths.clone()));
    let crl_path = fx.paths.crl.clone().expect("crl path");

    session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.expect("not revoked yet");
    assert!(matches!(server.next_event().await, Event::Accepted(_)));

    // The CA revokes the client: the next connection is refused.
    write(&crl_path, &fx.ca.crl_revoking(&[&[0x77], &[0x42, 0x01]]));
    watcher.poll().await.tls.expect("CRL changed").expect("valid CRL reloaded");
    assert!(session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.is_err());
    let reason = expect_tls_failure(&mut server).await;
    assert!(reason.to_lowercase().contains("revoked"), "{reason}");

    // A CRL signed by someone else is refused; the revocation in force stays in force.
    write(&crl_path, &Ca::new("Patchdeck Test CA").crl_revoking(&[&[0x77]]));
    let error = watcher.poll().await.tls.expect("CRL changed").expect_err("foreign CRL refused");
    assert!(matches!(error, CertError::CrlNotFromCa { .. }), "{error}");
    assert!(session("127.0.0.1", server.addr, tls13(&fx.ca, Some(&client))).await.is_err());
    let reason = expect_tls_failure(&mut server).await;
    assert!(reason.to_lowercase().contains("revoked"), "{reason}");
    assert!(server.served.recv().await.is_some(), "the first session was served");
    assert!(server.served.try_recv().is_err(), "no later one");
}

// ---------------------------------------------------------------------------------------------
// Certificate checks at start

fn load_error(paths: &TlsPaths) -> CertError {
    ServerTls::load(paths).expect_err("files must be refused")
}

fn assert_names(error: &CertError, path: &Path) {
    let message = error.to_string();
    assert!(message.contains(&path.display().to_string()), "message must name {}: {message}", path.display());
}

#[test]
fn valid_files_pass_the_checks() {
    let fx = Fixture::new();
    let tls = ServerTls::load(&fx.paths).expect("valid");
    assert_eq!(tls.paths(), &fx.paths);
    assert_eq!(tls.config().alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn expired_server_certificate_is_refused() {
    let fx = Fixture::new();
    let expired = fx.ca.server(Validity::Expired);
    write(&fx.paths.server_cert, &expired.cert.pem());
    write(&fx.paths.server_key, &expired.key.serialize_pem());
    let error = load_error(&fx.paths);
    assert!(matches!(error, CertError::Expired { .. }), "{error}");
    assert_names(&error, &fx.paths.server_cert);
}

#[test]
fn server_certificate_checked_against_the_injected_clock() {
    let fx = Fixture::new();
    let in_two_years = SystemTime::now() + Duration::from_secs(2 * 365 * 24 * 3600);
    let error = ServerTls::load_at(&fx.paths, in_two_years).expect_err("expired by then");
    assert!(matches!(error, CertError::Expired { .. }), "{error}");
}

#[test]
fn not_yet_valid_server_certificate_is_refused() {
    let fx = Fixture::new();
    let future = fx.ca.server(Validity::Future);
    write(&fx.paths.server_cert, &future.cert.pem());
    write(&fx.paths.server_key, &future.key.serialize_pem());
    let error = load_error(&fx.paths);
    assert!(matches!(error, CertError::NotYetValid { .. }), "{error}");
    assert_names(&error, &fx.paths.server_cert);
}

#[test]
fn key_that_does_not_match_the_certificate_is_refused() {
    let fx = Fixture::new();
    write(&fx.paths.server_key, &KeyPair::generate().expect("key").serialize_pem());
    let error = load_error(&fx.paths);
    assert!(matches!(error, CertError::KeyMismatch { .. }), "{error}");
    assert_names(&error, &fx.paths.server_key);
    assert_names(&error, &fx.paths.server_cert);
}

#[test]
fn server_certificate_from_another_ca_is_refused() {
    let fx = Fixture::new();
    let other = Ca::new("Patchdeck Test CA").server(Validity::Current); // same name, other key
    write(&fx.paths.server_cert, &other.cert.pem());
    write(&fx.paths.server_key, &other.key.serialize_pem());
    let error = load_error(&fx.paths);
    assert!(matches!(error, CertError::NotSignedByCa { .. }), "{error}");
    assert_names(&error, &fx.paths.server_cert);
    assert_names(&error, &fx.paths.ca_bundle);
}

#[test]
fn missing_files_are_refused_and_named() {
    let fx = Fixture::new();
    for role in ["ca", "cert", "key", "crl"] {
        let mut paths = fx.paths.clone();
        let missing = fx.path(&format!("missing-{role}.pem"));
        match role {
            "ca" => paths.ca_bundle = missing.clone(),
            "cert" => paths.server_cert = missing.clone(),
            "key" => paths.server_key = missing.clone(),
            _ => paths.crl = Some(missing.clone()),
        }
        let error = load_error(&paths);
        assert!(matches!(error, CertError::Read { .. }), "{role}: {error}");
        assert_names(&error, &missing);
    }
}

#[test]
fn unparsable_pem_is_refused_and_named() {
    let fx = Fixture::new();
    let cases: [(&str, &str); 4] = [
        ("ca", "this is not PEM at all\n"),
        ("cert", "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"),
        ("key", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        ("crl", "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"),
    ];
    for (role, text) in cases {
        let mut paths = fx.paths.clone();
        let bad = fx.path(&format!("bad-{role}.pem"));
        write(&bad, text);
        match role {
            "ca" => paths.ca_bundle = bad.clone(),
            "cert" => paths.server_cert = bad.clone(),
            "key" => paths.server_key = bad.clone(),
            _ => paths.crl = Some(bad.clone()),
        }
        let error = load_error(&paths);
        assert!(matches!(error, CertError::Pem { .. } | CertError::Der { .. }), "{role}: {error}");
        assert_names(&error, &bad);
    }
}

#[test]
fn crl_from_another_ca_is_refused() {
    let mut fx = Fixture::new();
    let other = Ca::new("Patchdeck Test CA");
    fx.with_crl(&other.crl_revoking(&[&[0x01]]));
    let error = load_error(&fx.paths);
    assert!(matches!(error, CertError::CrlNotFromCa { .. }), "{error}");
    assert_names(&error, fx.paths.crl.as_deref().expect("crl path"));
}
