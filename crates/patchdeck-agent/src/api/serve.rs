//! The accept loop: connections from the mutual-TLS [`Listener`] are served by hyper (HTTP/1.1 and
//! HTTP/2 on one port, chosen by ALPN or the connection preface), with upgrades for the WebSocket.
//!
//! Header sizes are bounded: HTTP/1.1 reads at most [`ServeConfig::max_header_bytes`] of request
//! head (hyper answers `431` beyond it), HTTP/2 advertises and enforces the same header list size.
//! Graceful shutdown: when `shutdown` completes the loop stops accepting, every open connection is
//! told to finish (keep-alive ends, HTTP/2 sends GOAWAY) and in-flight requests are waited for, at
//! most [`ServeConfig::drain_timeout`].

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use super::router::app;
use super::ApiState;
use crate::transport::Listener;

/// Limits of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Largest request head (HTTP/1.1) or header list (HTTP/2) in bytes (default 8 KiB; hyper's
    /// HTTP/1.1 floor is 8 KiB).
    pub max_header_bytes: usize,
    /// Most headers in one HTTP/1.1 request (default 100).
    pub max_headers: usize,
    /// How long a client may take to send a request head (default 30 s).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for in-flight requests (default 30 s).
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_header_bytes: 8 * 1024,
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves the API on `listener` until `shutdown` completes, with the default [`ServeConfig`].
pub async fn serve(listener: Listener, state: ApiState, shutdown: impl Future<Output = ()> + Send) -> io::Result<()> {
    serve_with(listener, state, ServeConfig::default(), shutdown).await
}

/// Serves the API on `listener` until `shutdown` completes; then waits for in-flight requests.
pub async fn serve_with(
    mut listener: Listener,
    state: ApiState,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_headers(config.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let app = app(state);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let identity = peer.clone();
        let service = app.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(identity.clone());
            request.map(axum::body::Body::new)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(peer = %peer.addr, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("API stopped accepting connections; waiting for in-flight requests");
    if tokio::time::timeout(config.drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(timeout_s = config.drain_timeout.as_secs(), "in-flight requests did not finish in time");
    }
    Ok(())
}
