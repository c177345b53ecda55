//! Webhooks: an HTTPS POST of JSON. The generic format is signed:
//! `X-Patchdeck-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` with the channel's
//! secret, where `<timestamp>` is the `X-Patchdeck-Timestamp` header (Unix seconds), so a
//! receiver can refuse old or replayed requests (docs/notifications.md).

use std::time::Duration;

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde_json::json;
use sha2::Sha256;

use super::channel::{pem_certificates, WebhookFormat, WebhookSettings};
use super::event::NotificationEvent;
use super::SendError;

/// How long one request may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Header with the event kind.
pub const EVENT_HEADER: &str = "X-Patchdeck-Event";
/// Header with the delivery id (the same on every attempt of one delivery).
pub const DELIVERY_HEADER: &str = "X-Patchdeck-Delivery";
/// Header with the signing time, Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Patchdeck-Timestamp";
/// Header with `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Patchdeck-Signature";

/// `sha256=<hex HMAC-SHA256 over "<timestamp>.<body>">`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()))
}

/// The JSON body of `format` for an event.
pub fn body(
    format: WebhookFormat,
    delivery: &str,
    event: &NotificationEvent,
    occurred_at: Timestamp,
) -> serde_json::Value {
    match format {
        WebhookFormat::Generic => json!({
            "id": delivery,
            "event": event.kind(),
            "occurred_at": occurred_at.to_string(),
            "summary": event.summary(),
            "data": event.data(),
        }),
        WebhookFormat::Slack => json!({ "text": chat_text(event, 3000) }),
        // Discord refuses content longer than 2000 characters.
        WebhookFormat::Discord => json!({ "content": chat_text(event, 2000) }),
    }
}

/// The summary in bold and the body, cut to `limit` characters.
fn chat_text(event: &NotificationEvent, limit: usize) -> String {
    let body = event.body();
    let rest = body.split_once("\n\n").map(|(_, rest)| rest).unwrap_or_default();
    let text = format!("*{}*\n{}", event.summary(), rest.trim_end());
    if text.chars().count() <= limit {
        return text;
    }
    let mut cut: String = text.chars().take(limit.saturating_sub(2)).collect();
    cut.push_str(" …");
    cut
}

/// Posts one event. `delivery` is the outbox id (the `X-Patchdeck-Delivery` header and the
/// generic body's `id`), `now` the signing time.
pub async fn send(
    settings: &WebhookSettings,
    secret: Option<&[u8]>,
    delivery: &str,
    event: &NotificationEvent,
    occurred_at: Timestamp,
    now: Timestamp,
) -> Result<(), SendError> {
    let body = serde_json::to_vec(&body(settings.format, delivery, event, occurred_at))
        .map_err(|e| SendError::Permanent(format!("the body could not be built: {e}")))?;
    let client = client(settings)?;
    let mut request = client
        .post(&settings.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, concat!("Patchdeck/", env!("CARGO_PKG_VERSION")))
        .header(EVENT_HEADER, event.kind())
        .header(DELIVERY_HEADER, delivery);
    if settings.format == WebhookFormat::Generic {
        let secret = secret.ok_or_else(|| SendError::Permanent("the signing secret is not set".into()))?;
        let timestamp = now.as_second();
        request = request
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature(secret, timestamp, &body));
    }
    // Slack and Discord put their secret in the URL's path: errors name only the origin.
    let response = request.body(body).send().await.map_err(|e| {
        SendError::Retry(format!(
            "POST {} failed: {}",
            redacted(&settings.url),
            super::smtp::describe(&e.without_url())
        ))
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(200).collect();
    let message = format!("the receiver answered {status}: {}", text.trim());
    if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
        Err(SendError::Permanent(message))
    } else {
        Err(SendError::Retry(message))
    }
}

/// The URL without its path and query (Slack and Discord put their secret in the path).
fn redacted(url: &str) -> String {
    url::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| "[URL]".into())
}

fn client(settings: &WebhookSettings) -> Result<reqwest::Client, SendError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &settings.ca_pem {
        for der in pem_certificates(pem).map_err(|e| SendError::Permanent(format!("settings.ca_pem {e}")))? {
            roots
                .add(rustls_pki_types::CertificateDer::from(der))
                .map_err(|e| SendError::Permanent(format!("settings.ca_pem: {e}")))?;
        }
    }
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| SendError::Permanent(format!("TLS settings: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| SendError::Permanent(format!("HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // RFC 4231 test case 2 key and data, with the message as "<timestamp>.<body>".
        let sig = signature(b"Jefe", 1, b"x");
        assert!(sig.starts_with("sha256="));
        assert_eq!(sig.len(), 7 + 64);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1.x");
        assert_eq!(sig, format!("sha256={}", data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes())));
        assert_ne!(signature(b"Jefe", 2, b"x"), sig);
    }

    #[test]
    fn chat_bodies() {
        let event = NotificationEvent::Test { channel: "ops".into() };
        let slack = body(WebhookFormat::Slack, "1", &event, Timestamp::UNIX_EPOCH);
        assert!(slack["text"].as_str().unwrap().starts_with("*Patchdeck test message"));
        let discord = body(WebhookFormat::Discord, "1", &event, Timestamp::UNIX_EPOCH);
        assert!(discord["content"].as_str().unwrap().contains("the channel works"));
        let generic = body(WebhookFormat::Generic, "7", &event, Timestamp::UNIX_EPOCH);
        assert_eq!(generic["id"], "7");
        assert_eq!(generic["event"], "test");
        assert_eq!(generic["data"]["channel"], "ops");
    }
}
