//! The push-mode listener: TCP accept → allow-list → TLS handshake → verified peer.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::allowlist::AllowList;
use super::reload::ReloadHandle;
use super::tls::{PeerIdentity, ServerTls};

/// How long a client has to complete the TLS handshake, by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many TLS handshakes may be in progress at once, by default. Past this, new TCP
/// connections wait in the kernel's backlog.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 128;

/// Why a TLS handshake was abandoned. The client gets no HTTP response in any case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The handshake did not finish within the timeout.
    TimedOut(Duration),
    /// The TLS library refused the handshake (bad or missing client certificate, revoked or
    /// expired certificate, unsupported protocol version, garbage bytes, ...).
    Tls(String),
    /// The handshake finished without a client certificate (cannot happen with the verifier in
    /// use; kept so the listener never yields an unauthenticated stream).
    NoClientCertificate,
}

impl fmt::Display for HandshakeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeFailure::TimedOut(d) => write!(f, "TLS handshake not finished within {} ms", d.as_millis()),
            HandshakeFailure::Tls(reason) => write!(f, "TLS handshake failed: {reason}"),
            HandshakeFailure::NoClientCertificate => f.write_str("no client certificate after the handshake"),
        }
    }
}

/// Receives the listener's security events, for the audit log. Every method defaults to doing
/// nothing. Methods are called on the accepting task or a handshake task: keep them quick.
pub trait AuditHook: Send + Sync + 'static {
    /// A TCP connection from `peer` was closed because the allow-list does not admit it.
    fn on_denied(&self, peer: SocketAddr) {
        let _ = peer;
    }
    /// A connection from an admitted `peer` was closed because its TLS handshake failed.
    fn on_handshake_failed(&self, peer: SocketAddr, failure: &HandshakeFailure) {
        let _ = (peer, failure);
    }
    /// A client completed the handshake with a verified certificate.
    fn on_accepted(&self, peer: &PeerIdentity) {
        let _ = peer;
    }
}

/// An [`AuditHook`] that records nothing (events are still logged through `tracing`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAudit;

impl AuditHook for NoAudit {}

/// Everything the listener needs besides its address.
pub struct TransportConfig {
    /// The source addresses admitted.
    pub allowlist: AllowList,
    /// The TLS server configuration.
    pub tls: ServerTls,
    /// Where security events go.
    pub audit: Arc<dyn AuditHook>,
    /// How long a handshake may take ([`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub handshake_timeout: Duration,
    /// How many handshakes may run at once ([`DEFAULT_MAX_PENDING_HANDSHAKES`]).
    pub max_pending_handshakes: usize,
}

impl fmt::Debug for TransportConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConfig")
            .field("allowlist", &self.allowlist)
            .field("tls", &self.tls)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_pending_handshakes", &self.max_pending_handshakes)
            .finish_non_exhaustive()
    }
}

impl TransportConfig {
    /// A configuration with the defaults and no audit hook.
    pub fn new(allowlist: AllowList, tls: ServerTls) -> Self {
        TransportConfig {
            allowlist,
            tls,
            audit: Arc::new(NoAudit),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
        }
    }

    /// Sets the audit hook.
    pub fn with_audit(mut self, audit: Arc<dyn AuditHook>) -> Self {
        self.audit = audit;
        self
    }

    /// Sets the handshake timeout.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }
}

/// State shared by the listener, its handshake tasks and its [`ReloadHandle`]s.
pub(super) struct Shared {
    pub(super) allowlist: ArcSwap<AllowList>,
    pub(super) tls: ArcSwap<ServerTls>,
    pub(super) audit: Arc<dyn AuditHook>,
    pub(super) handshake_timeout: Duration,
}

/// A TCP listener that yields only allow-listed, mutually authenticated TLS connections.
pub struct Listener {
    tcp: TcpListener,
    shared: Arc<Shared>,
    pending: JoinSet<Option<(TlsStream<TcpStream>, PeerIdentity)>>,
    max_pending: usize,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.tcp.local_addr().ok())
            .field("pending_handshakes", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Binds `addr` (port 0 picks a free port; see [`Listener::local_addr`]).
    pub async fn bind(addr: impl ToSocketAddrs, config: TransportConfig) -> io::Result<Self> {
        let tcp = TcpListener::bind(addr).await?;
        Ok(Self::from_tcp(tcp, config))
    }

    /// Wraps an already bound listener (for example one passed by systemd).
    pub fn from_tcp(tcp: TcpListener, config: TransportConfig) -> Self {
        if let Some(reason) = config.allowlist.deny_reason() {
            tracing::error!(reason, "push listener starts with a deny-all allow-list; no client can connect");
        }
        let shared = Arc::new(Shared {
            allowlist: ArcSwap::from_pointee(config.allowlist),
            tls: ArcSwap::from_pointee(config.tls),
            audit: config.audit,
            handshake_timeout: config.handshake_timeout,
        });
        Listener { tcp, shared, pending: JoinSet::new(), max_pending: config.max_pending_handshakes.max(1) }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// A handle to swap the allow-list or TLS configuration while the listener runs.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle::new(Arc::clone(&self.shared))
    }

    /// Waits for the next connection that passes the allow-list and the TLS handshake, and
    /// returns it with the verified client identity. Refused connections are closed, logged and
    /// reported to the audit hook; they are never returned. Handshakes run concurrently, so a slow
    /// client does not hold up others.
    ///
    /// Cancel-safe: dropping the future loses no connection that was already accepted.
    pub async fn accept(&mut self) -> (TlsStream<TcpStream>, PeerIdentity) {
        loop {
            let can_accept = self.pending.len() < self.max_pending;
            tokio::select! {
                accepted = self.tcp.accept(), if can_accept => match accepted {
                    Ok((stream, peer)) => self.admit(stream, peer),
                    Err(error) => {
                        // EMFILE, ENFILE, ECONNABORTED...: the listening socket itself is fine.
                        tracing::warn!(%error, "accepting a TCP connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(joined) = self.pending.join_next(), if !self.pending.is_empty() => match joined {
                    Ok(Some(connection)) => return connection,
                    Ok(None) => {}
                    Err(error) => tracing::error!(%error, "TLS handshake task failed"),
                },
            }
        }
    }

    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        let allowlist = self.shared.allowlist.load();
        if !allowlist.allows(peer.ip()) {
            // Close before reading or writing anything: the client learns nothing, not even that
            // TLS is spoken here.
            drop(stream);
            tracing::info!(peer = %peer, "connection from an address not in the allow-list dropped");
            self.shared.audit.on_denied(peer);
            return;
        }
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(peer = %peer, %error, "cannot set TCP_NODELAY");
        }
        let shared = Arc::clone(&self.shared);
        self.pending.spawn(handshake(shared, stream, peer));
    }
}

async fn handshake(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
) -> Option<(TlsStream<TcpStream>, PeerIdentity)> {
    // The configuration in force when the connection arrived serves the whole connection.
    let acceptor = TlsAcceptor::from(Arc::clone(shared.tls.load().config()));
    let result = tokio::time::timeout(shared.handshake_timeout, acceptor.accept(stream)).await;
    let failure = match result {
        Err(_) => HandshakeFailure::TimedOut(shared.handshake_timeout),
        Ok(Err(error)) => HandshakeFailure::Tls(error.to_string()),
        Ok(Ok(tls)) => {
            let (_, connection) = tls.get_ref();
            let alpn = connection.alpn_protocol().map(<[u8]>::to_vec);
            match connection.peer_certificates().and_then(|chain| chain.first()) {
                None => HandshakeFailure::NoClientCertificate,
                Some(cert) => match PeerIdentity::from_certificate(peer, cert, alpn.as_deref()) {
                    Ok(identity) => {
                        tracing::debug!(
                            peer = %identity.addr,
                            subject_cn = identity.subject_cn.as_deref().unwrap_or(""),
                            serial = %identity.serial_hex,
                            "client authenticated"
                        );
                        shared.audit.on_accepted(&identity);
                        return Some((tls, identity));
                    }
                    Err(error) => HandshakeFailure::Tls(error.to_string()),
                },
            }
        }
    };
    tracing::debug!(peer = %peer, reason = %failure, "connection dropped during the TLS handshake");
    shared.audit.on_handshake_failed(peer, &failure);
    None
}
