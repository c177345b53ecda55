//! The one place where errors become HTTP responses.
//!
//! Every error is the same JSON envelope, with the request id also sent as `X-Request-Id`:
//!
//! ```json
//! {"error": {"code": "forbidden", "message": "…", "details": {…}, "request_id": "…"}}
//! ```
//!
//! | error | status | code |
//! |---|---|---|
//! | bad body, query or path value | 400 | `validation_error` (`details.field`) |
//! | no or bad credentials | 401 | `unauthorized` |
//! | MFA step still needed / password change first | 403 | `mfa_required`, `password_change_required`, `mfa_enrollment_required` |
//! | role or group scope does not allow it | 403 | `forbidden` |
//! | CSRF token missing or wrong | 403 | `csrf_failed` |
//! | no such thing (or not visible to the caller) | 404 | `not_found` |
//! | duplicate, or state does not allow it | 409 | `conflict` |
//! | body too large | 413 | `payload_too_large` |
//! | account locked, too many attempts | 429 | `rate_limited` (+ `Retry-After`) |
//! | anything else | 500 | `internal` (the cause is logged, never sent) |

use std::fmt;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

tokio::task_local! {
    /// The id of the request being handled (set by [`super::request_id`]).
    pub static REQUEST_ID: String;
}

/// The id of the current request, if inside one.
pub fn current_request_id() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), details: None, retry_after: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// `400 validation_error` naming the field.
    pub fn validation(field: &str, message: impl fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_error", format!("{field}: {message}"))
            .with_details(json!({ "field": field }))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// `404`: `what` does not exist or the caller may not see it (the same answer, on purpose).
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn too_many(message: impl Into<String>, retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .with_details(json!({ "retry_after_seconds": retry_after_secs }));
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// `500`: logs `cause` (with the request id) and tells the client nothing more.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(request_id = %current_request_id(), error = %cause, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; the server log has the cause")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message, "request_id": current_request_id() });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<patchdeck_store::Error> for ApiError {
    fn from(e: patchdeck_store::Error) -> Self {
        use patchdeck_store::Error as E;
        match e {
            E::NotFound(what) => ApiError::not_found(what),
            E::Conflict(message) => ApiError::conflict(message),
            E::MissingReference(what) => ApiError::not_found(what),
            E::Invalid(message) => ApiError::new(StatusCode::BAD_REQUEST, "validation_error", message),
            other => ApiError::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::validation("content-type", "the body must be JSON (Content-Type: application/json)")
            }
            JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is too large")
            }
            other => ApiError::validation("body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::validation("query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::validation("path", rejection.body_text())
    }
}

/// Wraps a status that reached the outside without an envelope (404 for an unknown path, 405,
/// a panic) in one.
pub async fn envelope_fallback(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_success() || status.is_redirection() || is_json || status == StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed on this endpoint"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("validation_error", "unsupported content type"),
        s if s.is_client_error() => ("bad_request", "bad request"),
        _ => ("internal", "internal error; the server log has the cause"),
    };
    let mut wrapped = ApiError::new(status, code, message).into_response();
    if let Some(allow) = response.headers().get(axum::http::header::ALLOW) {
        wrapped.headers_mut().insert(axum::http::header::ALLOW, allow.clone());
    }
    wrapped
}
