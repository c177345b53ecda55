//! Handlers, one file per resource, named `<verb>_<resource>`. Bodies and queries are parsed
//! strictly with the protocol crate's `parse_request` / `parse_query`, whose errors name the field.

pub mod jobs;
pub mod packages;
pub mod patches;
pub mod system;

use axum::body::Body;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use patchdeck_proto::lpa::{parse_query, parse_request, Validate};
use serde::de::DeserializeOwned;

use super::{ApiFailure, ApiResult, MAX_BODY_BYTES};

/// Reads a JSON body of at most [`MAX_BODY_BYTES`] and parses it strictly; `None` for an empty
/// body (see [`required`] and [`optional`]). A body must come with `Content-Type:
/// application/json`.
pub(crate) async fn json_body<T: DeserializeOwned + Validate>(headers: &HeaderMap, body: Body) -> ApiResult<Option<T>> {
    let bytes = read_limited(headers, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or("")) {
        None => return Err(ApiFailure::validation("content-type", "missing; send `Content-Type: application/json`")),
        Some(value) => {
            let essence = value.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(ApiFailure::validation(
                    "content-type",
                    format!("`{value}` is not accepted; send `Content-Type: application/json`"),
                ));
            }
        }
    }
    Ok(Some(parse_request::<T>(&bytes)?))
}

/// Bodies over the limit are still read (and thrown away) up to this many bytes before the 413 is
/// sent, so that an HTTP/1.1 client that is still sending sees the answer instead of a reset
/// connection; beyond it the connection is simply closed after the 413.
const DRAIN_CAP: u64 = 8 * 1024 * 1024;

async fn read_limited(headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP) {
        return Err(ApiFailure::too_large(MAX_BODY_BYTES));
    }
    let mut body = body;
    let mut buf = BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiFailure::validation("body", format!("could not read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > DRAIN_CAP {
            break;
        }
        if seen <= MAX_BODY_BYTES as u64 {
            buf.extend_from_slice(&data);
        }
    }
    if seen > MAX_BODY_BYTES as u64 {
        return Err(ApiFailure::too_large(MAX_BODY_BYTES));
    }
    Ok(buf.freeze())
}

/// A body that must be there.
pub(crate) async fn required<T: DeserializeOwned + Validate>(headers: &HeaderMap, body: Body) -> ApiResult<T> {
    json_body(headers, body).await?.ok_or_else(|| ApiFailure::validation("body", "a JSON request body is required"))
}

/// A body that may be left out (then every field has its default).
pub(crate) async fn optional<T: DeserializeOwned + Validate + Default>(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    Ok(json_body(headers, body).await?.unwrap_or_default())
}

/// Parses the query string strictly (unknown parameters refused).
pub(crate) fn query<T: DeserializeOwned + Validate>(raw: Option<&str>) -> ApiResult<T> {
    Ok(parse_query::<T>(raw.unwrap_or(""))?)
}
