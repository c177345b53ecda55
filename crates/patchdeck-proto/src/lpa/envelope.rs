//! The response envelope (contract §3.2) wrapped around every REST response.
//!
//! ```json
//! {"success": true,  "request_id": "<uuid v4>", "timestamp": "<RFC 3339 UTC>", "data": {...}, "error": null}
//! {"success": false, "request_id": "...", "timestamp": "...", "data": null,
//!  "error": {"code": "PKG_NOT_FOUND", "message": "...", "details": null, "retryable": false}}
//! ```
//!
//! `data` and `error` are always present, one of them `null`. The manager's
//! client parses `request_id` as a UUID and `timestamp` as a UTC date-time,
//! so both are typed here, not strings.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::errors::ErrorCode;
use super::validate::ValidationError;

/// The envelope of every REST response of the agent API (every endpoint but
/// the WebSocket). `T` is the endpoint's `data` type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    /// `true` iff the request succeeded; then `data` is set and `error` is null.
    pub success: bool,
    /// Server-assigned id of this request (UUID v4); also logged with the request.
    pub request_id: Uuid,
    /// When the response was produced (RFC 3339, UTC).
    pub timestamp: Timestamp,
    /// The payload on success, `null` on failure.
    pub data: Option<T>,
    /// The error on failure, `null` on success.
    pub error: Option<ApiError>,
}

impl<T> Envelope<T> {
    /// A successful response carrying `data`.
    pub fn ok(request_id: Uuid, now: Timestamp, data: T) -> Self {
        Envelope { success: true, request_id, timestamp: now, data: Some(data), error: None }
    }

    /// A failed response carrying `error`.
    pub fn err(request_id: Uuid, now: Timestamp, error: ApiError) -> Self {
        Envelope { success: false, request_id, timestamp: now, data: None, error: Some(error) }
    }

    /// The payload, or the error. A response that says `success: true` but
    /// has no `data`, or `success: false` without an `error`, is reported as
    /// an `UNKNOWN_ERROR`.
    pub fn into_result(self) -> Result<T, ApiError> {
        match (self.success, self.data, self.error) {
            (true, Some(data), _) => Ok(data),
            (false, _, Some(error)) => Err(error),
            (true, None, _) => Err(ApiError::new(ErrorCode::UnknownError, "response had success=true but no data")),
            (false, _, None) => Err(ApiError::new(ErrorCode::UnknownError, "response had success=false but no error")),
        }
    }
}

/// The `error` object of a failed response (all REST endpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// Machine-readable code; unknown codes parse as `UNKNOWN_ERROR`.
    pub code: ErrorCode,
    /// Human-readable text naming what was wrong.
    pub message: String,
    /// Structured extra detail, e.g. `{"field": "packages[0].name"}` for
    /// `VALIDATION_ERROR`, `{"active_jobs": 2}` for `REBOOT_BLOCKED`,
    /// `{"retry_after_seconds": 60}` for `RATE_LIMIT_EXCEEDED`. `null` if none.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
    /// Whether sending the same request again later may succeed.
    #[serde(default)]
    pub retryable: bool,
}

impl ApiError {
    /// An error with the code's default retryability and no details.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), details: None, retryable: code.retryable() }
    }

    /// Sets `details`.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Overrides the code's default retryability.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }

    /// `400 VALIDATION_ERROR` for a rejected request: the message is
    /// `field: what is wrong`, and `details` is `{"field": "<path>"}`.
    pub fn validation(error: &ValidationError) -> Self {
        ApiError::new(ErrorCode::ValidationError, error.to_string())
            .with_details(serde_json::json!({ "field": error.field }))
    }

    /// The HTTP status of a response carrying this error.
    pub fn http_status(&self) -> u16 {
        self.code.http_status()
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::validation(&error)
    }
}
