//! Service endpoints: health, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;
use crate::web::Json;

/// The answer of `/api/v1/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the database does not answer.
    pub status: &'static str,
    pub database: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub version: &'static str,
}

/// Liveness and database reachability, for load balancers (no authentication, no details).
#[utoipa::path(get, path = "/api/v1/health", tag = "service",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn get_health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let db_ok = state.store().ping().await.is_ok();
    let health = Health {
        status: if db_ok { "ok" } else { "degraded" },
        database: if db_ok { "ok" } else { "unreachable" },
        backend: state.store().backend().as_str(),
        version: env!("CARGO_PKG_VERSION"),
    };
    (if db_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(health))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, content_type = "text/plain")))]
pub async fn get_metrics(State(state): State<AppState>) -> Response {
    let pool = state.store().pool_stats();
    let body = state.metrics().render(pool.size, pool.idle, state.hub().held());
    ([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "service", responses((status = 200)))]
pub async fn get_openapi() -> Response {
    ([(CONTENT_TYPE, "application/json")], crate::web::openapi::document_json()).into_response()
}
