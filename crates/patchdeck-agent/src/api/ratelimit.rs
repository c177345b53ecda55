//! Per-client rate limits: a token bucket per client and class. Reads (GET) default to 120 per
//! minute with bursts of 30, mutations (every other method) to 20 per minute with bursts of 10.
//! `/health`, `/api/v1/health` and `/api/v1/system/info` are exempt (the manager polls them).
//!
//! The client is the verified client certificate (its serial number) when the request came through
//! the mTLS transport, else the peer IP. A refused request gets `429 RATE_LIMIT_EXCEEDED` with
//! `Retry-After` and `details.retry_after_seconds`: the whole seconds until a token is back.
//!
//! The limits can be replaced while the API runs ([`RateLimiter::set_config`], used by the config
//! reload): the next request is checked against the new rates, and a bucket holding more tokens
//! than the new burst is cut down to it at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{client_key, ApiFailure, ApiState};
use crate::transport::PeerIdentity;

/// One class's rate: `per_minute` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

/// The limits of both classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub reads: Rate,
    pub mutations: Rate,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { reads: Rate { per_minute: 120, burst: 30 }, mutations: Rate { per_minute: 20, burst: 10 } }
    }
}

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Read,
    Mutation,
}

impl Class {
    fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Mutation => "mutation",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per (client, class).
#[derive(Debug)]
pub struct RateLimiter {
    config: ArcSwap<RateLimitConfig>,
    buckets: Mutex<HashMap<(String, Class), Bucket>>,
}

/// Buckets idle this long are full again and are forgotten.
const IDLE_FORGET: Duration = Duration::from_secs(600);

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimiter { config: ArcSwap::from_pointee(config), buckets: Mutex::new(HashMap::new()) }
    }

    /// The limits in force.
    pub fn config(&self) -> Arc<RateLimitConfig> {
        self.config.load_full()
    }

    /// Puts `config` in force, atomically, for every request checked from now on. Buckets are
    /// kept: a client keeps the tokens it has, up to the new burst.
    pub fn set_config(&self, config: RateLimitConfig) {
        self.config.store(Arc::new(config));
    }

    /// Takes a token for `client` in `class` at `now`; `Err(seconds)` to wait if there is none.
    pub fn check(&self, client: &str, class: Class, now: Instant) -> Result<(), u64> {
        let config = self.config.load();
        let rate = match class {
            Class::Read => config.reads,
            Class::Mutation => config.mutations,
        };
        let per_second = f64::from(rate.per_minute) / 60.0;
        let burst = f64::from(rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 10_000 {
            buckets.retain(|_, b| now.duration_since(b.last) < IDLE_FORGET);
        }
        let bucket = buckets.entry((client.to_owned(), class)).or_insert(Bucket { tokens: burst, last: now });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        if per_second <= 0.0 {
            return Err(60);
        }
        let wait = ((1.0 - bucket.tokens) / per_second).ceil().max(1.0);
        Err(wait as u64)
    }
}

/// The class of a request, or `None` if it is exempt.
pub fn classify(method: &Method, path: &str) -> Option<Class> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    if matches!(path, "/health" | "/api/v1/health" | "/api/v1/system/info") {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        Some(Class::Read)
    } else {
        Some(Class::Mutation)
    }
}

/// Middleware applying the limits.
pub async fn rate_limit_layer(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    if let Some(class) = classify(request.method(), request.uri().path()) {
        let peer = request.extensions().get::<PeerIdentity>();
        let ip = request.extensions().get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip());
        let key = client_key(peer, ip);
        if let Err(seconds) = state.limiter().check(&key, class, Instant::now()) {
            return ApiFailure::rate_limited(seconds, class.as_str()).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limiter = RateLimiter::new(RateLimitConfig {
            reads: Rate { per_minute: 60, burst: 2 },
            mutations: Rate { per_minute: 6, burst: 1 },
        });
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", Class::Read, t0), Ok(()));
        assert_eq!(limiter.check("a", Class::Read, t0), Ok(()));
        assert_eq!(limiter.check("a", Class::Read, t0), Err(1));
        // Other clients and classes have their own buckets.
        assert_eq!(limiter.check("b", Class::Read, t0), Ok(()));
        assert_eq!(limiter.check("a", Class::Mutation, t0), Ok(()));
        assert_eq!(limiter.check("a", Class::Mutation, t0), Err(10));
        // One token per second comes back.
        assert_eq!(limiter.check("a", Class::Read, t0 + Duration::from_secs(1)), Ok(()));
        assert_eq!(limiter.check("a", Class::Read, t0 + Duration::from_secs(1)), Err(1));
    }

    #[test]
    fn new_limits_apply_to_the_next_request() {
        let limiter = RateLimiter::new(RateLimitConfig {
            reads: Rate { per_minute: 60, burst: 5 },
            mutations: Rate { per_minute: 60, burst: 5 },
        });
        let t0 = Instant::now();
        assert_eq!(limiter.check("a", Class::Mutation, t0), Ok(()));
        let tight =
            RateLimitConfig { reads: Rate { per_minute: 60, burst: 5 }, mutations: Rate { per_minute: 6, burst: 1 } };
        limiter.set_config(tight.clone());
        assert_eq!(*limiter.config(), tight);
        // The bucket had 4 tokens left; the new burst cuts it to 1.
        assert_eq!(limiter.check("a", Class::Mutation, t0), Ok(()));
        assert_eq!(limiter.check("a", Class::Mutation, t0), Err(10));
        // Looser limits refill at the new rate, up to the new burst.
        limiter.set_config(RateLimitConfig::default());
        assert_eq!(limiter.check("a", Class::Mutation, t0 + Duration::from_secs(30)), Ok(()));
    }

    #[test]
    fn health_and_system_info_are_exempt() {
        assert_eq!(classify(&Method::GET, "/health"), None);
        assert_eq!(classify(&Method::GET, "/api/v1/health/"), None);
        assert_eq!(classify(&Method::GET, "/api/v1/system/info"), None);
        assert_eq!(classify(&Method::GET, "/api/v1/packages"), Some(Class::Read));
        assert_eq!(classify(&Method::POST, "/api/v1/packages"), Some(Class::Mutation));
        assert_eq!(classify(&Method::DELETE, "/api/v1/jobs/x"), Some(Class::Mutation));
    }
}
