//! Every route of the agent's API, in one place.
//!
//! | method | path | handler |
//! |---|---|---|
//! | GET, POST | `/api/v1/packages` | [`packages::list_packages`], [`packages::create_packages`] |
//! | GET, PUT, DELETE | `/api/v1/packages/{name}` | [`packages::get_package`], [`packages::update_package`], [`packages::delete_package`] |
//! | GET | `/api/v1/patches` | [`patches::list_patches`] |
//! | POST | `/api/v1/patches/apply` | [`patches::apply_patches`] |
//! | GET | `/api/v1/system/info` | [`system::get_system_info`] |
//! | GET | `/health`, `/api/v1/health` | [`system::get_health`] |
//! | POST | `/api/v1/system/reboot` | [`system::create_reboot`] |
//! | GET | `/api/v1/system/services/{name}` | [`system::get_service`] |
//! | GET | `/api/v1/jobs` | [`jobs::list_jobs`] |
//! | GET, DELETE | `/api/v1/jobs/{id}` | [`jobs::get_job`], [`jobs::delete_job`] |
//! | POST | `/api/v1/jobs/{id}/rollback` | [`jobs::rollback_job`] |
//! | GET (upgrade) | `/api/v1/ws/jobs` | [`ws::get_ws_jobs`] |
//!
//! Layers, outermost first: the request log, the envelope for responses that are not one yet
//! (404, 405 with `Allow`), the rate limits. A trailing slash is stripped before routing
//! ([`strip_trailing_slash`], applied by [`app`]).

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Uri;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::error::{envelope_layer, REQUEST_ID_HEADER};
use super::handlers::{jobs, packages, patches, system};
use super::ratelimit::rate_limit_layer;
use super::{client_key, ws, ApiFailure, ApiState};
use crate::audit::{Actor, AuditEvent};
use crate::transport::PeerIdentity;

/// The router with every route and layer.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/packages", get(packages::list_packages).post(packages::create_packages))
        .route(
            "/api/v1/packages/{name}",
            get(packages::get_package).put(packages::update_package).delete(packages::delete_package),
        )
        .route("/api/v1/patches", get(patches::list_patches))
        .route("/api/v1/patches/apply", post(patches::apply_patches))
        .route("/api/v1/system/info", get(system::get_system_info))
        .route("/health", get(system::get_health))
        .route("/api/v1/health", get(system::get_health))
        .route("/api/v1/system/reboot", post(system::create_reboot))
        .route("/api/v1/system/services/{name}", get(system::get_service))
        .route("/api/v1/jobs", get(jobs::list_jobs))
        .route("/api/v1/jobs/{id}", get(jobs::get_job).delete(jobs::delete_job))
        .route("/api/v1/jobs/{id}/rollback", post(jobs::rollback_job))
        .route("/api/v1/ws/jobs", get(ws::get_ws_jobs))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit_layer))
        .layer(middleware::from_fn(envelope_layer))
        .layer(middleware::from_fn_with_state(state.clone(), log_layer))
        .with_state(state)
}

/// The router behind the trailing-slash rewrite: what [`super::serve`] serves.
pub fn app(state: ApiState) -> App {
    tower::ServiceExt::map_request(router(state), strip_trailing_slash as fn(Request) -> Request)
}

/// The service [`app`] builds.
pub type App = tower::util::MapRequest<Router, fn(Request) -> Request>;

/// `/api/v1/packages/` → `/api/v1/packages` (the contract does not require the slash, clients
/// send both).
pub fn strip_trailing_slash(mut request: Request) -> Request {
    let path = request.uri().path();
    if path.len() > 1 && path.ends_with('/') {
        let trimmed = path.trim_end_matches('/');
        let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
        let rebuilt = match request.uri().query() {
            Some(q) => format!("{trimmed}?{q}"),
            None => trimmed.to_owned(),
        };
        if let Ok(path_and_query) = rebuilt.parse() {
            let mut parts = request.uri().clone().into_parts();
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// The methods each path serves, for the `Allow` header of a 405 (`{}` matches one segment). Kept
/// next to the routes above; `allow_table_matches_the_routes` checks the two agree.
pub const ALLOWED_METHODS: &[(&str, &str)] = &[
    ("/api/v1/packages", "GET, HEAD, POST"),
    ("/api/v1/packages/{}", "GET, HEAD, PUT, DELETE"),
    ("/api/v1/patches", "GET, HEAD"),
    ("/api/v1/patches/apply", "POST"),
    ("/api/v1/system/info", "GET, HEAD"),
    ("/health", "GET, HEAD"),
    ("/api/v1/health", "GET, HEAD"),
    ("/api/v1/system/reboot", "POST"),
    ("/api/v1/system/services/{}", "GET, HEAD"),
    ("/api/v1/jobs", "GET, HEAD"),
    ("/api/v1/jobs/{}", "GET, HEAD, DELETE"),
    ("/api/v1/jobs/{}/rollback", "POST"),
    ("/api/v1/ws/jobs", "GET, HEAD"),
];

/// The `Allow` value for `path`, if a route serves it.
pub fn allowed_methods(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    ALLOWED_METHODS.iter().find_map(|(pattern, methods)| {
        let parts: Vec<&str> = pattern.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts.iter().zip(&segments).all(|(p, s)| *p == "{}" && !s.is_empty() || p == s);
        matches.then_some(*methods)
    })
}

async fn method_not_allowed(request: Request) -> Response {
    let path = request.uri().path();
    let allow = allowed_methods(path).unwrap_or("");
    ApiFailure::method_not_allowed(request.method().as_str(), path, allow).into_response()
}

async fn not_found(request: Request) -> Response {
    ApiFailure::no_route(request.method().as_str(), request.uri().path()).into_response()
}

/// One structured line per request: request id, client identity, method, path, status, duration. (The audit
/// module will take its records from here.)
/// Logs every request and records it in the audit log (when one is configured).
async fn log_layer(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request.extensions().get::<PeerIdentity>().cloned();
    let response = next.run(request).await;
    let request_id = response.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    tracing::info!(
        request_id,
        client = %client_key(peer.as_ref(), None),
        client.cn = peer.as_ref().and_then(|p| p.subject_cn.as_deref()).unwrap_or(""),
        client.addr = %peer.as_ref().map(|p| p.addr.to_string()).unwrap_or_default(),
        http.method = %method,
        http.path = %path,
        http.status = response.status().as_u16(),
        duration_ms = started.elapsed().as_millis() as u64,
        "api request"
    );
    if let Some(audit) = &state.config().audit {
        let actor = match &peer {
            Some(peer) => Actor::from(peer),
            None => Actor::Agent,
        };
        audit.record(AuditEvent::Request {
            actor,
            request_id: request_id.to_owned(),
            method: method.to_string(),
            path,
            status: response.status().as_u16(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_table_matches_the_paths() {
        assert_eq!(allowed_methods("/api/v1/packages"), Some("GET, HEAD, POST"));
        assert_eq!(allowed_methods("/api/v1/packages/hello"), Some("GET, HEAD, PUT, DELETE"));
        assert_eq!(allowed_methods("/api/v1/jobs/abc/rollback"), Some("POST"));
        assert_eq!(allowed_methods("/api/v1/jobs/abc/nope"), None);
        assert_eq!(allowed_methods("/api/v1/packages/"), None);
    }
}
