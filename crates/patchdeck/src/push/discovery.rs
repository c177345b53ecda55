//! Finding Linux_Patch_API agents in an address range: every host address of a CIDR is probed
//! with TCP, TLS 1.3 with the manager's push client certificate, and `GET /api/v1/health`, at
//! most [`DiscoveryOptions::concurrency`] at a time, each within [`DiscoveryOptions::timeout`].
//!
//! - A host that answers the health call with the contract's health response is an agent
//!   (`answered_as_lpa`), with its version and the name in its server certificate.
//! - A host that accepts TCP but fails TLS or HTTP is listed too, with the reason: something
//!   listens there, maybe an agent that does not accept this manager (ADR 0003: an agent that
//!   does not list the manager's address, or does not trust its certificate, closes the
//!   connection during the handshake without a word).
//! - A host that refuses or does not accept TCP in time is not listed.
//!
//! The server certificate must chain to the manager's CA, but need not name the address probed
//! (discovery does not know the host yet); its first DNS name (or its CN) is reported as
//! `fqdn_from_cert`. Ranges larger than a /16 (IPv4) or a /112 (IPv6), 65,536 addresses, are
//! refused. For IPv4 prefixes shorter than /31 the network and broadcast addresses are skipped.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use patchdeck_proto::lpa::{Envelope, Health};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::client::DEFAULT_PORT;
use super::identity::{IdentityError, PushIdentity};

/// The shortest IPv4 prefix [`discover`] accepts.
pub const MIN_IPV4_PREFIX: u8 = 16;
/// The shortest IPv6 prefix [`discover`] accepts.
pub const MIN_IPV6_PREFIX: u8 = 112;
/// Most bytes of a health answer read.
const MAX_BODY: usize = 64 * 1024;

/// How to probe.
#[derive(Debug, Clone)]
pub struct DiscoveryOptions {
    /// The agents' port.
    pub port: u16,
    /// Most probes in flight at once.
    pub concurrency: usize,
    /// Each probe (TCP, TLS and the health call together) ends after this long.
    pub timeout: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions { port: DEFAULT_PORT, concurrency: 128, timeout: Duration::from_millis(1500) }
    }
}

/// How far a discovery has come; sent on the progress channel after every probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryProgress {
    /// Addresses probed so far.
    pub probed: u64,
    /// Addresses to probe.
    pub total: u64,
    /// Addresses that accepted TCP.
    pub listening: u64,
    /// Agents found (`answered_as_lpa`).
    pub found: u64,
}

/// A host that accepted a connection on the agents' port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredHost {
    pub address: IpAddr,
    /// The first DNS name (else the CN) of its server certificate, lower case; `None` when the
    /// handshake failed.
    pub fqdn_from_cert: Option<String>,
    /// The agent version from its health answer.
    pub version: Option<String>,
    /// Whether it answered `GET /api/v1/health` with the contract's health response.
    pub answered_as_lpa: bool,
    /// Why it is not an agent we can talk to, when `answered_as_lpa` is false.
    pub reason: Option<String>,
}

/// The outcome of [`discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The hosts that accepted TCP, by address.
    pub hosts: Vec<DiscoveredHost>,
    /// The progress at the end.
    pub progress: DiscoveryProgress,
    /// Whether it stopped early because it was cancelled.
    pub cancelled: bool,
}

impl Discovery {
    /// The hosts that answered as agents.
    pub fn agents(&self) -> impl Iterator<Item = &DiscoveredHost> {
        self.hosts.iter().filter(|h| h.answered_as_lpa)
    }
}

/// Why a discovery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The range is larger than the limit.
    #[error("{cidr} has too many addresses to probe: use a /{min} or a longer prefix (at most 65,536 addresses)")]
    TooLarge { cidr: IpNet, min: u8 },
    /// Options that cannot work.
    #[error("invalid discovery options: {0}")]
    InvalidOptions(String),
    /// The manager's push certificate cannot be used.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// How many addresses [`discover`] probes in `cidr`, or why it refuses it.
pub fn address_count(cidr: IpNet) -> Result<u64, DiscoveryError> {
    match cidr {
        IpNet::V4(net) if net.prefix_len() < MIN_IPV4_PREFIX => {
            Err(DiscoveryError::TooLarge { cidr, min: MIN_IPV4_PREFIX })
        }
        IpNet::V6(net) if net.prefix_len() < MIN_IPV6_PREFIX => {
            Err(DiscoveryError::TooLarge { cidr, min: MIN_IPV6_PREFIX })
        }
        IpNet::V4(net) => {
            let all = 1u64 << (32 - u32::from(net.prefix_len()));
            Ok(if net.prefix_len() < 31 { all - 2 } else { all })
        }
        IpNet::V6(net) => Ok(1u64 << (128 - u32::from(net.prefix_len()))),
    }
}

/// Probes every host address of `cidr` (see the module docs). `progress` gets the counts after
/// every probe; setting `cancel` to `true` stops the discovery promptly (probes in flight are
/// dropped) and returns what was found so far with `cancelled` set.
pub async fn discover(
    cidr: IpNet,
    options: &DiscoveryOptions,
    identity: &PushIdentity,
    progress: &watch::Sender<DiscoveryProgress>,
    mut cancel: watch::Receiver<bool>,
) -> Result<Discovery, DiscoveryError> {
    let total = address_count(cidr)?;
    if options.concurrency == 0 || options.timeout.is_zero() || options.port == 0 {
        return Err(DiscoveryError::InvalidOptions("port, concurrency and timeout must not be 0".into()));
    }
    let tls = identity.probe_tls_config()?;
    let mut state = DiscoveryProgress { total, ..DiscoveryProgress::default() };
    progress.send_replace(state);
    let mut hosts = Vec::new();
    let (port, timeout) = (options.port, options.timeout);
    let mut probes = futures_util::stream::iter(cidr.hosts())
        .map(|ip| probe(SocketAddr::new(ip, port), tls.clone(), timeout))
        .buffer_unordered(options.concurrency);
    let mut cancellable = true;
    let mut cancelled = *cancel.borrow_and_update();
    while !cancelled {
        tokio::select! {
            biased;
            changed = cancel.changed(), if cancellable => match changed {
                Ok(()) => cancelled = *cancel.borrow_and_update(),
                // Nobody can cancel any more.
                Err(_) => cancellable = false,
            },
            next = probes.next() => {
                let Some(found) = next else { break };
                state.probed += 1;
                if let Some(host) = found {
                    state.listening += 1;
                    state.found += u64::from(host.answered_as_lpa);
                    hosts.push(host);
                }
                progress.send_replace(state);
            }
        }
    }
    hosts.sort_by_key(|h| h.address);
    Ok(Discovery { hosts, progress: state, cancelled })
}

/// One probe; `None` when nothing accepted TCP in time.
pub async fn probe(addr: SocketAddr, tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Option<DiscoveredHost> {
    let deadline = Instant::now() + timeout;
    let tcp = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        _ => return None,
    };
    let _ = tcp.set_nodelay(true);
    let mut host = DiscoveredHost {
        address: addr.ip(),
        fqdn_from_cert: None,
        version: None,
        answered_as_lpa: false,
        reason: None,
    };
    let connector = tokio_rustls::TlsConnector::from(tls);
    let stream = match tokio::time::timeout_at(
        deadline,
        connector.connect(ServerName::IpAddress(addr.ip().into()), tcp),
    )
    .await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            host.reason = Some(format!("accepts TCP but the TLS handshake failed: {e}"));
            return Some(host);
        }
        Err(_) => {
            host.reason = Some(format!("accepts TCP but did not complete a TLS handshake within {timeout:?}"));
            return Some(host);
        }
    };
    host.fqdn_from_cert =
        stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| name_in(c.as_ref()));
    match tokio::time::timeout_at(deadline, health(addr, stream)).await {
        Ok(Ok(health)) => {
            host.answered_as_lpa = true;
            host.version = Some(health.version);
        }
        Ok(Err(reason)) => host.reason = Some(reason),
        Err(_) => host.reason = Some(format!("completed TLS but did not answer GET /api/v1/health within {timeout:?}")),
    }
    Some(host)
}

/// `GET /api/v1/health` over an established TLS connection; why it is not an agent's answer
/// otherwise.
async fn health(addr: SocketAddr, stream: tokio_rustls::client::TlsStream<TcpStream>) -> Result<Health, String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP/1.1 over TLS failed: {e}"))?;
    let request = hyper::Request::get("/api/v1/health")
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, concat!("patchdeck-discovery/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("building the request: {e}"))?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(|e| format!("GET /api/v1/health failed: {e}"))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer to GET /api/v1/health failed: {e}"))?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::select! {
        result = exchange => result?,
        ended = connection => return Err(match ended {
            Ok(()) => "the connection closed before an answer to GET /api/v1/health".to_owned(),
            Err(e) => format!("the connection failed before an answer to GET /api/v1/health: {e}"),
        }),
    };
    let parsed = serde_json::from_slice::<Envelope<Health>>(&body)
        .map_err(|e| e.to_string())
        .and_then(|envelope| envelope.into_result().map_err(|e| format!("{}: {}", e.code, e.message)))
        .or_else(|e| serde_json::from_slice::<Health>(&body).map_err(|_| e));
    match parsed {
        Ok(health) if status.is_success() => Ok(health),
        Ok(_) => Err(format!("answered GET /api/v1/health with HTTP {status}")),
        Err(e) => Err(format!(
            "answered GET /api/v1/health with HTTP {status}, but not with the Linux_Patch_API's health response ({e})"
        )),
    }
}

/// The first DNS name of a certificate, else its CN unless that is an address; lower case.
fn name_in(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let dns = cert.subject_alternative_name().ok().flatten().and_then(|san| {
        san.value.general_names.iter().find_map(|n| match n {
            GeneralName::DNSName(name) => Some((*name).to_owned()),
            _ => None,
        })
    });
    let cn = || {
        let cn = cert.subject().iter_common_name().next()?.as_str().ok()?.to_owned();
        (cn.parse::<IpAddr>().is_err() && !cn.is_empty()).then_some(cn)
    };
    dns.or_else(cn).map(|n| n.trim_end_matches('.').to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_discovery_counts_host_addresses_and_refuses_large_ranges() {
        let count = |s: &str| address_count(s.parse().unwrap());
        assert_eq!(count("10.0.0.0/29").unwrap(), 6);
        assert_eq!(count("10.0.0.0/31").unwrap(), 2);
        assert_eq!(count("10.0.0.7/32").unwrap(), 1);
        assert_eq!(count("10.0.0.0/16").unwrap(), 65_534);
        assert_eq!(count("fd00::/112").unwrap(), 65_536);
        assert_eq!(count("fd00::/126").unwrap(), 4);
        for net in ["10.0.0.0/15", "0.0.0.0/0", "fd00::/111", "::/0"] {
            let err = count(net).unwrap_err();
            assert!(matches!(err, DiscoveryError::TooLarge { .. }), "{net}");
            assert!(err.to_string().contains("too many addresses"), "{err}");
        }
        // The count is what is probed.
        let net: IpNet = "10.0.0.0/29".parse().unwrap();
        assert_eq!(net.hosts().count() as u64, count("10.0.0.0/29").unwrap());
        let net: IpNet = "fd00::/126".parse().unwrap();
        assert_eq!(net.hosts().count() as u64, count("fd00::/126").unwrap());
    }
}
