//! The accept loop: HTTPS (rustls, HTTP/1.1 and HTTP/2 by ALPN) or, when asked for, plain HTTP.
//! Each request gets the client's address as [`ClientAddr`]. Graceful shutdown waits for
//! in-flight requests (at most 30 s).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::authz::ClientAddr;

/// The verified client certificate (leaf, DER) of a mutual-TLS connection: agents in pull mode.
/// Set on every request of such a connection; absent when the client sent none.
#[derive(Debug, Clone)]
pub struct PeerCertificate(pub Arc<[u8]>);

/// A TLS server configuration for the manager's listener (TLS 1.2 and 1.3, `h2` and
/// `http/1.1`), from a PEM certificate chain and key.
///
/// With `client_ca_der`, clients *may* present a certificate issued by that CA (agents do; browsers
/// don't): a certificate that does not verify ends the handshake, no certificate is fine. Which
/// routes need one is decided per route ([`super::authz::Permission::Agent`]).
pub fn tls_config(
    cert_chain_pem: &str,
    key_pem: &str,
    client_ca_der: Option<&[u8]>,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("the TLS certificate is not PEM: {e}"))?;
    if certs.is_empty() {
        anyhow::bail!("the TLS certificate file holds no certificate");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("the TLS key is not PEM: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| anyhow::anyhow!("TLS setup: {e}"))?;
    let builder = match client_ca_der {
        None => builder.with_no_client_auth(),
        Some(der) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(CertificateDer::from(der.to_vec())).map_err(|e| anyhow::anyhow!("the client CA: {e}"))?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| anyhow::anyhow!("client certificate verifier: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("the TLS certificate and key do not match: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(30)).max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(64 * 1024);
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let service = move |peer_cert: Option<PeerCertificate>| {
            app.map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                if let Some(cert) = &peer_cert {
                    request.extensions_mut().insert(cert.clone());
                }
                request.map(axum::body::Body::new)
            })
        };
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let result = match acceptor {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await;
                    let stream = match handshake {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let peer_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| PeerCertificate(Arc::from(leaf.as_ref())));
                    let service = service(peer_cert);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
                        .into_owned();
                    watcher.watch(conn).await
                }
                None => {
                    let service = service(None);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service))
                        .into_owned();
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within 30 s");
    }
    Ok(())
}
