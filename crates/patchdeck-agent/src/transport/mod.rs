//! The push-mode transport: the agent's Linux_Patch_API-compatible REST API is served only to
//! allow-listed addresses over mutually authenticated TLS 1.3. This module hands verified
//! connections to the HTTP layer; it knows nothing about HTTP itself.
//!
//! # Flow of a connection
//!
//! 1. [`Listener::accept`] takes the TCP connection.
//! 2. The peer address is checked against the [`AllowList`] in force. A denied peer's socket is
//!    closed at once, before any byte is read or written; the event goes to the log and to
//!    [`AuditHook::on_denied`].
//! 3. The TLS handshake runs with a timeout ([`DEFAULT_HANDSHAKE_TIMEOUT`], 10 s). A failed or slow
//!    handshake closes the connection with no HTTP response; the reason is logged at debug level
//!    and goes to [`AuditHook::on_handshake_failed`].
//! 4. The caller gets the [`tokio_rustls::server::TlsStream`] and a [`PeerIdentity`]: address,
//!    certificate subject CN, serial and SHA-256 fingerprint, for authorisation and audit.
//!
//! # Threat model choices
//!
//! The agent runs as root and changes packages; whoever talks to this API controls the host. The
//! attacker we design for is on the internal network, can open TCP connections and may hold a
//! stolen or revoked client certificate (see the Linux_Patch_API SECURITY.md threat model).
//!
//! - **Allow-list before TLS.** An address that is not allowed gets a closed socket and no TLS
//!   byte: no ServerHello, no certificate, no alert. It cannot fingerprint the service, read the
//!   server certificate (names, CA), or make us spend CPU on public-key operations, and TLS-stack
//!   bugs are out of its reach. The allow-list is not authentication (addresses can be spoofed on
//!   some networks), only a first filter; mutual TLS is what authenticates.
//! - **Default deny, fail closed.** A missing, empty or invalid allow-list denies everyone, and
//!   says why in the log. A reload that fails validation keeps the last good list or TLS
//!   configuration rather than opening up or going dark.
//! - **TLS 1.3 only.** Every TLS 1.3 suite is an AEAD with forward secrecy; the handshake encrypts
//!   the client certificate (a passive observer does not learn which client connects); there is
//!   no renegotiation, no RSA key transport, no CBC or compression, and no downgrade surface. All
//!   our clients are our own manager and CLI, so there is no legacy client to keep. The build does
//!   not even compile rustls' TLS 1.2 code (the `tls12` feature is enabled for tests only).
//! - **Client certificate required**, chained to the configured CA bundle only (not the system
//!   roots), with the CRL checked when one is configured; a certificate the CRL does not cover
//!   is refused.
//! - **No session resumption.** A resumed TLS 1.3 session reuses the client certificate checked
//!   when it was first made, without checking it again; the server issues no tickets and keeps
//!   no sessions, so every connection verifies the certificate (expiry included) afresh.
//! - **Silent failures.** No failure produces an HTTP response; details go to the log and the
//!   audit hook, never to the unauthenticated peer.
//! - **Bounded handshakes.** A handshake timeout and a cap on concurrent handshakes stop slow
//!   clients from holding the listener.
//!
//! # Configuration files
//!
//! - Allow-list: see [`allowlist`] for the format (one address, CIDR or host name per line, `#`
//!   comments).
//! - Certificates: PEM files named in [`TlsPaths`]; checked by [`check_certificates`] at start and
//!   before each reload.
//! - Hot reload: [`ReloadHandle`] swaps either atomically; [`FileWatcher`] polls the files'
//!   modification times every few seconds and reloads what changed.

pub mod allowlist;
pub mod certs;
pub mod listener;
pub mod reload;
pub mod tls;

pub use allowlist::{AllowEntry, AllowList, AllowListError, AllowListSource};
pub use certs::{check_certificates, CertError, FileRole, LoadedCerts, TlsPaths};
pub use listener::{
    AuditHook, HandshakeFailure, Listener, NoAudit, TransportConfig, DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_PENDING_HANDSHAKES,
};
pub use reload::{FileWatcher, PollOutcome, ReloadHandle};
pub use tls::{crypto_provider, IdentityError, PeerIdentity, ServerTls, ALPN_PROTOCOLS};
