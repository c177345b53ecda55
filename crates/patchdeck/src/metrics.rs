//! Prometheus metrics, served at `/metrics` (admin API token or session).
//!
//! - `patchdeck_http_requests_total{method, route, status}`
//! - `patchdeck_http_request_duration_seconds{method, route}` (histogram)
//! - `patchdeck_db_pool_connections{state="total"|"idle"}`
//! - `patchdeck_build_info{version}`
//! - `patchdeck_agent_checkins_held` — check-ins held open (long-poll) by this replica
//! - `patchdeck_agent_checkins_rejected_total` — check-ins turned away with 503 (backpressure)
//!
//! `route` is the route template (`/api/v1/hosts/{id}`), never the raw path, so the number of
//! series stays bounded whatever clients send.

use std::fmt;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The manager's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    pool: Family<PoolLabels, Gauge<i64, AtomicI64>>,
    held: Gauge<i64, AtomicI64>,
    rejected: Counter,
}

type AtomicI64 = std::sync::atomic::AtomicI64;

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("patchdeck");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register("http_request_duration_seconds", "Time to answer HTTP requests", latency.clone());
        let pool = Family::<PoolLabels, Gauge<i64, AtomicI64>>::default();
        registry.register("db_pool_connections", "Database pool connections", pool.clone());
        let build = Family::<BuildLabels, Gauge<i64, AtomicI64>>::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "The running version", build);
        let held = Gauge::<i64, AtomicI64>::default();
        registry.register("agent_checkins_held", "Agent check-ins held open by this replica", held.clone());
        let rejected = Counter::default();
        registry.register("agent_checkins_rejected", "Agent check-ins turned away because of load", rejected.clone());
        Metrics { registry, requests, latency, pool, held, rejected }
    }

    /// One check-in was turned away (503).
    pub fn checkin_rejected(&self) {
        self.rejected.inc();
    }

    /// The text exposition, with the gauges read now.
    pub fn render(&self, pool_size: u32, pool_idle: u32, held_checkins: usize) -> String {
        self.held.set(i64::try_from(held_checkins).unwrap_or(i64::MAX));
        self.pool.get_or_create(&PoolLabels { state: "total" }).set(i64::from(pool_size));
        self.pool.get_or_create(&PoolLabels { state: "idle" }).set(i64::from(pool_idle));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records every request's count and latency.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(request).await;
    let metrics = state.metrics();
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method: method.clone(),
            route: route.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics.latency.get_or_create(&RouteLabels { method, route }).observe(started.elapsed().as_secs_f64());
    response
}
