//! The push-mode HTTP API: the Linux_Patch_API contract (reference §3) served over the mutual-TLS
//! [`transport`](crate::transport). Only this module knows HTTP.
//!
//! # Where things are
//!
//! - [`router`]: every route of the API, in one place, and the layers around them.
//! - [`error`]: the one place where errors become an HTTP status and the §3.2 envelope.
//! - [`handlers`]: one file per resource; handlers are named `<verb>_<resource>`.
//! - [`inventory`]: the in-memory snapshot of packages and patches that reads are served from.
//! - [`ratelimit`]: per-client token buckets (reads and mutations).
//! - [`ws`]: the job WebSocket `GET /api/v1/ws/jobs`.
//! - [`serve`]: the accept loop: each connection from the transport is served by hyper (HTTP/1.1
//!   and HTTP/2) with bounded header sizes, and shut down gracefully.
//!
//! # Request flow
//!
//! `serve` puts the connection's [`PeerIdentity`] into every request's extensions, strips one
//! trailing slash from the path and hands the request to the router. The outer layers log one
//! structured line per request (client identity, method, path, status), apply the rate limits, and
//! turn every response that is not already an envelope (unknown path, wrong method, a rejected
//! WebSocket upgrade) into one, so that every response a client sees is the §3.2 envelope.

pub mod error;
pub mod handlers;
pub mod inventory;
pub mod ratelimit;
pub mod router;
mod serve;
pub mod ws;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use error::{ApiFailure, ApiResult};
pub use inventory::{Inventory, InventoryConfig};
pub use ratelimit::{RateLimitConfig, RateLimiter};
pub use router::router;
pub use serve::{serve, serve_with, ServeConfig};

use crate::jobs::JobEngine;
use crate::transport::PeerIdentity;

/// Largest request body accepted (1 MiB); larger bodies get `413 PAYLOAD_TOO_LARGE`.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Package names that mean "the agent itself" for `PUT /packages/{name}` (self-update).
pub const SELF_PACKAGE_NAMES: &[&str] = &["linux-patch-api", "patchdeck-agent"];

/// Settings of the API beyond the engine's and the transport's.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Per-client request rates.
    pub rate_limits: RateLimitConfig,
    /// The `systemctl` program asked by `GET /system/services/{name}`.
    pub systemctl: PathBuf,
    /// Timeout of one `systemctl show`.
    pub systemctl_timeout: Duration,
    /// Root of the host's `/proc` and `/etc` for `GET /system/info` and `/health` (tests point it
    /// elsewhere).
    pub host_root: PathBuf,
    /// Where every request is recorded (client identity, method, path, status), if anywhere.
    pub audit: Option<crate::audit::AuditLog>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            rate_limits: RateLimitConfig::default(),
            systemctl: PathBuf::from("systemctl"),
            systemctl_timeout: Duration::from_secs(10),
            host_root: PathBuf::from("/"),
            audit: None,
        }
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiState {
    inner: Arc<StateInner>,
}

#[derive(Debug)]
struct StateInner {
    engine: JobEngine,
    inventory: Inventory,
    limiter: RateLimiter,
    config: ApiConfig,
    started: Instant,
}

impl ApiState {
    /// The state of an API over `engine`, serving reads from `inventory`.
    pub fn new(engine: JobEngine, inventory: Inventory, config: ApiConfig) -> ApiState {
        let limiter = RateLimiter::new(config.rate_limits.clone());
        ApiState { inner: Arc::new(StateInner { engine, inventory, limiter, config, started: Instant::now() }) }
    }

    pub fn engine(&self) -> &JobEngine {
        &self.inner.engine
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inner.inventory
    }

    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// How long this API has been up (fallback for `/health` when `/proc/uptime` is unreadable).
    pub fn api_uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }
}

/// Who sent a request: the verified client certificate when the request came through the
/// transport. Used as the rate-limit key and in the request log.
pub fn client_key(peer: Option<&PeerIdentity>, fallback_ip: Option<std::net::IpAddr>) -> String {
    match (peer, fallback_ip) {
        (Some(peer), _) => format!("cert:{}", peer.serial_hex),
        (None, Some(ip)) => format!("ip:{ip}"),
        (None, None) => "unknown".to_owned(),
    }
}

/// The client certificate behind a request, as the job engine records it
/// (an extractor for the handlers that submit jobs).
#[derive(Debug, Clone, Default)]
pub struct RequestedBy(pub Option<crate::jobs::Requester>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestedBy {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestedBy(parts.extensions.get::<PeerIdentity>().map(|peer| crate::jobs::Requester {
            addr: peer.addr,
            cn: peer.subject_cn.clone(),
            serial: Some(peer.serial_hex.clone()),
            fingerprint: Some(peer.sha256_fingerprint.clone()),
        })))
    }
}
