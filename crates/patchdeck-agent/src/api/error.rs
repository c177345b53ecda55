//! The one place where errors become HTTP responses. Every response of the API, success or error,
//! is the §3.2 envelope with a fresh UUID v4 `request_id` and an RFC 3339 UTC `timestamp`.
//!
//! | error | status | code |
//! |---|---|---|
//! | [`ValidationError`] (body, query, path) | 400 | `VALIDATION_ERROR`, `details.field` |
//! | missing or wrong `Content-Type` on a body | 400 | `VALIDATION_ERROR`, `details.field = "content-type"` |
//! | body over 1 MiB | 413 | `PAYLOAD_TOO_LARGE` |
//! | unknown path | 404 | `NOT_FOUND` |
//! | known path, wrong method | 405 | `METHOD_NOT_ALLOWED` + `Allow` |
//! | rate limit | 429 | `RATE_LIMIT_EXCEEDED` + `Retry-After`, `details.retry_after_seconds` |
//! | [`EngineError::QueueFull`] | 429 | `QUEUE_FULL` + `Retry-After` |
//! | [`EngineError::ExclusiveInProgress`] | 409 | `EXCLUSIVE_IN_PROGRESS` + `Retry-After` |
//! | [`EngineError::SelfUpdateInProgress`] | 409 | `SELF_UPDATE_IN_PROGRESS` + `Retry-After: 60` |
//! | [`EngineError::SelfUpdateBlocked`] | 409 | `PACKAGE_DB_MUTATION_IN_PROGRESS`, `details.running_jobs` |
//! | [`EngineError::RebootBlocked`] | 409 | `REBOOT_BLOCKED`, `details.running_jobs` |
//! | [`EngineError::RollbackNotAllowed`] | 400 | `ROLLBACK_NOT_ALLOWED` |
//! | [`EngineError::DeleteNotAllowed`] | 409 | `DELETE_NOT_ALLOWED` |
//! | [`EngineError::NotFound`] | 404 | `JOB_NOT_FOUND` |
//! | [`EngineError::Storage`] | 500 | `JOB_CREATE_ERROR` (`JOB_DELETE_ERROR` on delete) |
//! | [`PkgError`] | 500 | `PKG_MANAGER_ERROR` (retryable when the package layer says so) |
//!
//! Any other error status that reaches the outer layer without an envelope (a rejected WebSocket
//! upgrade, a panic turned into 500) is wrapped by [`envelope_layer`].

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use patchdeck_pkg::PkgError;
use patchdeck_proto::lpa::{ApiError, Envelope, ErrorCode, ValidationError};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::jobs::EngineError;

/// The response header repeating the envelope's `request_id` (for logs and proxies).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiFailure>;

/// Marks a response whose body is already an envelope.
#[derive(Debug, Clone, Copy)]
struct Enveloped;

/// A failed request: the envelope's error plus the headers that go with it.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub error: ApiError,
    /// Status, when it is not the code's own (an error status produced outside the handlers).
    pub status: Option<StatusCode>,
    /// `Retry-After` in seconds.
    pub retry_after: Option<u64>,
    /// `Allow` for 405.
    pub allow: Option<String>,
}

impl ApiFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiFailure::from(ApiError::new(code, message))
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.error = self.error.with_details(details);
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// `400 VALIDATION_ERROR` naming `field`.
    pub fn validation(field: &str, message: impl std::fmt::Display) -> Self {
        ApiFailure::from(ValidationError::new(field, format!("{field}: {message}")))
    }

    /// `404 NOT_FOUND` for a path no route serves.
    pub fn no_route(method: &str, path: &str) -> Self {
        ApiFailure::new(ErrorCode::NotFound, format!("no such endpoint: {method} {path}"))
    }

    /// `405 METHOD_NOT_ALLOWED` with the methods the path does serve.
    pub fn method_not_allowed(method: &str, path: &str, allow: &str) -> Self {
        let mut failure = ApiFailure::new(
            ErrorCode::MethodNotAllowed,
            format!("method {method} is not allowed on {path}; allowed: {allow}"),
        )
        .with_details(json!({ "allowed_methods": allow.split(',').map(str::trim).collect::<Vec<_>>() }));
        failure.allow = Some(allow.to_owned());
        failure
    }

    /// `429 RATE_LIMIT_EXCEEDED`.
    pub fn rate_limited(retry_after_seconds: u64, kind: &str) -> Self {
        ApiFailure::new(
            ErrorCode::RateLimitExceeded,
            format!("too many {kind} requests from this client; retry in {retry_after_seconds}s"),
        )
        .with_details(json!({ "retry_after_seconds": retry_after_seconds }))
        .with_retry_after(retry_after_seconds)
    }

    /// `413 PAYLOAD_TOO_LARGE`.
    pub fn too_large(limit: usize) -> Self {
        ApiFailure::new(ErrorCode::PayloadTooLarge, format!("request body is larger than {limit} bytes"))
            .with_details(json!({ "max_bytes": limit }))
    }

    /// An engine error of a delete request (storage failures become `JOB_DELETE_ERROR`).
    pub fn from_delete(err: EngineError) -> Self {
        match err {
            EngineError::Storage { .. } => ApiFailure::new(ErrorCode::JobDeleteError, err.to_string()),
            other => ApiFailure::from(other),
        }
    }

    fn status(&self) -> StatusCode {
        self.status
            .or_else(|| StatusCode::from_u16(self.error.http_status()).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<ApiError> for ApiFailure {
    fn from(error: ApiError) -> Self {
        ApiFailure { error, status: None, retry_after: None, allow: None }
    }
}

impl From<ValidationError> for ApiFailure {
    fn from(error: ValidationError) -> Self {
        ApiFailure::from(ApiError::validation(&error))
    }
}

impl From<EngineError> for ApiFailure {
    fn from(err: EngineError) -> Self {
        let message = err.to_string();
        match &err {
            EngineError::QueueFull { depth, retry_after } => ApiFailure::new(ErrorCode::QueueFull, message)
                .with_details(json!({ "queue_depth": depth, "retry_after_seconds": retry_after.as_secs() }))
                .with_retry_after(retry_after.as_secs().max(1)),
            EngineError::RebootBlocked { running_jobs } => ApiFailure::new(ErrorCode::RebootBlocked, message)
                .with_details(json!({ "running_jobs": running_jobs, "active_jobs": running_jobs.len() })),
            EngineError::ExclusiveInProgress { job_id } => ApiFailure::new(ErrorCode::ExclusiveInProgress, message)
                .with_details(json!({ "job_id": job_id, "retry_after_seconds": EXCLUSIVE_RETRY_AFTER }))
                .with_retry_after(EXCLUSIVE_RETRY_AFTER),
            EngineError::RollbackNotAllowed { job_id, .. } => {
                ApiFailure::new(ErrorCode::RollbackNotAllowed, message).with_details(json!({ "job_id": job_id }))
            }
            EngineError::DeleteNotAllowed { job_id, status } => ApiFailure::new(ErrorCode::DeleteNotAllowed, message)
                .with_details(json!({ "job_id": job_id, "status": status })),
            EngineError::NotFound(id) => {
                ApiFailure::new(ErrorCode::JobNotFound, message).with_details(json!({ "job_id": id }))
            }
            EngineError::Invalid(_) => ApiFailure::new(ErrorCode::ValidationError, message),
            EngineError::Storage { .. } => ApiFailure::new(ErrorCode::JobCreateError, message),
            EngineError::SelfUpdateInProgress { .. } => {
                ApiFailure::new(ErrorCode::SelfUpdateInProgress, message).with_retry_after(60)
            }
            EngineError::SelfUpdateBlocked { running_jobs } => {
                ApiFailure::new(ErrorCode::PackageDbMutationInProgress, message)
                    .with_details(json!({ "running_jobs": running_jobs }))
            }
            EngineError::AdmissionClosed { retry_after } => {
                ApiFailure::new(ErrorCode::AdmissionClosed, message).with_retry_after(retry_after.as_secs().max(1))
            }
        }
    }
}

/// What `Retry-After` says while a rollback runs in exclusive mode.
pub const EXCLUSIVE_RETRY_AFTER: u64 = 60;

impl From<PkgError> for ApiFailure {
    fn from(err: PkgError) -> Self {
        // PKG_MANAGER_ERROR is retryable, as upstream: the inventory is read again later.
        match err {
            PkgError::InvalidInput { what, .. } => ApiFailure::validation(what, &err),
            other => ApiFailure::new(ErrorCode::PkgManagerError, other.to_string()),
        }
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response =
            envelope_response(status, &Envelope::<()>::err(Uuid::new_v4(), Timestamp::now(), self.error));
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            headers.insert(ALLOW, allow);
        }
        response
    }
}

/// `200` with `data` in the envelope.
pub fn ok<T: Serialize>(data: T) -> Response {
    envelope_response(StatusCode::OK, &Envelope::ok(Uuid::new_v4(), Timestamp::now(), data))
}

/// `202 Accepted` with `data` in the envelope (jobs created).
pub fn accepted<T: Serialize>(data: T) -> Response {
    envelope_response(StatusCode::ACCEPTED, &Envelope::ok(Uuid::new_v4(), Timestamp::now(), data))
}

fn envelope_response<T: Serialize>(status: StatusCode, envelope: &Envelope<T>) -> Response {
    let body = match serde_json::to_vec(envelope) {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a response");
            let fallback = Envelope::<()>::err(
                envelope.request_id,
                envelope.timestamp,
                ApiError::new(ErrorCode::InternalError, "the response could not be serialised"),
            );
            return envelope_response(StatusCode::INTERNAL_SERVER_ERROR, &fallback);
        }
    };
    let mut response = (status, [(CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
    if let Ok(id) = HeaderValue::from_str(&envelope.request_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    response.extensions_mut().insert(Enveloped);
    response
}

/// Outer layer: wraps any error response that is not yet an envelope (axum's own 405, a rejected
/// WebSocket upgrade, ...) into one, keeping the `Allow` header.
pub async fn envelope_layer(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    if response.extensions().get::<Enveloped>().is_some() || response.status().is_success() {
        return response;
    }
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let status = response.status();
    let allow = response.headers().get(ALLOW).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let failure = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiFailure::method_not_allowed(method.as_str(), &path, allow.as_deref().unwrap_or(""))
        }
        StatusCode::NOT_FOUND => ApiFailure::no_route(method.as_str(), &path),
        StatusCode::PAYLOAD_TOO_LARGE => ApiFailure::too_large(super::MAX_BODY_BYTES),
        s if s.is_client_error() => {
            let text = body_text(response).await;
            let mut failure = ApiFailure::new(ErrorCode::InvalidRequest, text);
            failure.status = Some(s);
            failure
        }
        s => {
            let mut failure = ApiFailure::new(ErrorCode::InternalError, format!("internal error ({s})"));
            failure.status = Some(s);
            failure
        }
    };
    failure.into_response()
}

async fn body_text(response: Response) -> String {
    let status = response.status();
    match axum::body::to_bytes(Body::new(response.into_body()), 4096).await {
        Ok(bytes) if !bytes.is_empty() => String::from_utf8_lossy(&bytes).into_owned(),
        _ => status.canonical_reason().unwrap_or("bad request").to_owned(),
    }
}
