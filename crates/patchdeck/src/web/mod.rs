//! The HTTP layer of the manager: the only module that knows HTTP. Routes are all registered in
//! [`router`], errors become responses only in [`error`], and authentication is the
//! [`authz::authorize`] middleware every non-public route gets from the router.

pub mod authz;
pub mod cookies;
pub mod error;
pub mod handlers;
pub mod openapi;
pub mod router;
pub mod serve;
pub mod session;
pub mod tickets;
pub mod ui;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

pub use error::{ApiError, ApiResult};

/// The response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A JSON body whose rejection is our error envelope.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A query string whose rejection is our error envelope.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Path parameters whose rejection is our error envelope.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Gives every request an id (a client's `X-Request-Id` of up to 64 safe characters is kept,
/// anything else replaced by a UUID), makes it available to error responses and logs, and sends
/// it back in `X-Request-Id`.
pub async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span =
        tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response =
        error::REQUEST_ID.scope(id.clone(), tracing::Instrument::instrument(next.run(request), span)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}
