//! HTTPS to the manager: reqwest over rustls (ring), with the pinned CA as the only root and,
//! once enrolled, the agent's client certificate (mutual TLS). Every request after enrollment
//! carries the [`MACHINE_ID_HEADER`].
//!
//! One exception to "verify everything": [`insecure_tls`] accepts any server certificate. It is
//! used for exactly one request, the download of the CA certificate during enrollment with
//! `--ca-fingerprint`, whose result is trusted only when its SHA-256 matches the fingerprint the
//! administrator gave.

use std::sync::Arc;
use std::time::Duration;

use patchdeck_proto::agent::{
    AgentErrorBody, CheckinRequest, CheckinResponse, InventoryUpload, RenewRequest, RenewResponse, MACHINE_ID_HEADER,
};
use reqwest::{Method, StatusCode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::backoff::FailureKind;
use super::identity::Identity;

/// Limit for establishing a connection (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Codes with which the manager refuses an agent (enrolled, or enrolling) for a reason only an
/// administrator can fix: trying again soon cannot help, so it is tried again at the backoff's cap.
pub const REFUSAL_CODES: [&str; 10] = [
    "certificate_revoked",
    "machine_id_mismatch",
    "host_not_approved",
    "client_certificate_required",
    "enrollment_rejected",
    "invalid_token",
    "token_expired",
    "token_revoked",
    "token_exhausted",
    "machine_already_enrolled",
];

/// A request to the manager failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} did not answer within {}s", timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered {status}: {code}: {message}")]
    Manager { url: String, status: u16, code: String, message: String, retry_after: Option<Duration> },
    #[error("{url} answered {status}: {body}")]
    Http { url: String, status: u16, body: String, retry_after: Option<Duration> },
    #[error("{url} sent an answer the agent cannot read: {reason}")]
    Decode { url: String, reason: String },
    #[error("{0}")]
    Tls(String),
}

impl ClientError {
    /// The manager's error code, when it sent the JSON error envelope.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Manager { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Manager { status, .. } | ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The manager refuses this agent for a reason an administrator must fix.
    pub fn is_refusal(&self) -> bool {
        self.code().is_some_and(|c| REFUSAL_CODES.contains(&c))
            || (matches!(self.status(), Some(401 | 403)) && self.code().is_none())
    }

    /// Whether the manager read the request and refused what it carried (a 4xx other than
    /// authentication, timeout and rate limiting): the results it carried count as delivered
    /// once, so a result the manager keeps refusing is eventually dropped. Connection failures,
    /// 5xx and 429 answers say nothing about the results and do not count.
    pub fn counts_as_delivery(&self) -> bool {
        self.status().is_some_and(|s| (400..500).contains(&s) && !matches!(s, 401 | 403 | 408 | 429))
    }

    /// How the retry policy treats this failure.
    pub fn failure_kind(&self) -> FailureKind {
        let retry_after = match self {
            ClientError::Manager { retry_after, .. } | ClientError::Http { retry_after, .. } => *retry_after,
            _ => None,
        };
        match (self.status(), retry_after) {
            _ if self.is_refusal() => FailureKind::Refused,
            (Some(429 | 503), Some(after)) => FailureKind::RetryAfter(after),
            _ => FailureKind::Transient,
        }
    }
}

/// The crypto provider for every client connection (the same as the push transport's).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses every certificate in `pem`.
pub fn parse_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM certificate: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".to_owned());
    }
    Ok(certs)
}

/// TLS trusting only the certificates in `ca_pem`, presenting `client` (certificate and key
/// PEM) when given.
pub fn pinned_tls(ca_pem: &str, client: Option<(&str, &str)>) -> Result<ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certificates(ca_pem).map_err(|e| ClientError::Tls(format!("the trusted CA: {e}")))? {
        roots.add(cert).map_err(|e| ClientError::Tls(format!("the trusted CA certificate is unusable: {e}")))?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain =
                parse_certificates(cert_pem).map_err(|e| ClientError::Tls(format!("the client certificate: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| ClientError::Tls(format!("the client key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                ClientError::Tls(format!(
                    "the client certificate or its key is unusable (or they do not belong together): {e}"
                ))
            })?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// TLS that trusts no certificate at all: for clients that only speak plain HTTP (health probes
/// on a host without a CA bundle), where an https URL must fail rather than be trusted.
pub fn pinned_tls_empty() -> Result<ClientConfig, ClientError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// TLS that accepts any server certificate. Only for downloading the CA certificate whose
/// fingerprint is then checked; nothing else may use it.
pub fn insecure_tls() -> Result<ClientConfig, ClientError> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Accepts whatever certificate the server presents (the handshake signature is still checked
/// against it, which proves nothing about who the server is).
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An HTTP client over `tls`.
pub fn http_client(tls: ClientConfig) -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("patchdeck-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Tls(format!("building the HTTP client: {}", chain(&e))))
}

/// `https://host:port[/prefix]` without a trailing slash. Only HTTPS is accepted.
pub fn normalize_server(server: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(server.trim()).map_err(|e| format!("{server:?} is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!("{server:?} must be an https:// URL (the agent talks to the manager only over TLS)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{server:?} names no host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!("{server:?} must not carry a query, fragment or user name"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// An error and its causes, joined, without reqwest's and hyper's wrappers that only repeat
/// the URL ("error sending request for url (…)", "client error (Connect)").
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(cause) = next {
        let text = cause.to_string();
        let wrapper = text.starts_with("error sending request for url")
            || text.starts_with("client error (")
            || text.starts_with("error trying to connect");
        if !wrapper && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    if parts.is_empty() {
        return err.to_string();
    }
    parts.join(": ")
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// `body` as JSON.
pub fn json_body<B: Serialize>(body: &B, url: &str) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(body)
        .map_err(|e| ClientError::Decode { url: url.to_owned(), reason: format!("encoding the request: {e}") })
}

/// Sends one request and reads the answer: JSON `T` on success (`None` for an empty body), the
/// manager's error envelope or the status otherwise.
pub async fn send<T: DeserializeOwned>(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    machine_id: Option<&str>,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Option<T>, ClientError> {
    let mut request = http.request(method, url).timeout(timeout);
    if let Some(id) = machine_id {
        request = request.header(MACHINE_ID_HEADER, id);
    }
    if let Some(json) = body {
        request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(json);
    }
    let transport = |e: reqwest::Error| {
        if e.is_timeout() {
            ClientError::Timeout { url: url.to_owned(), timeout }
        } else {
            ClientError::Connect { url: url.to_owned(), reason: chain(&e) }
        }
    };
    let response = request.send().await.map_err(transport)?;
    let status = response.status();
    let after = retry_after(&response);
    let bytes = response.bytes().await.map_err(transport)?;
    if status.is_success() {
        if bytes.iter().all(u8::is_ascii_whitespace) || status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        return serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Decode { url: url.to_owned(), reason: e.to_string() });
    }
    if let Ok(envelope) = serde_json::from_slice::<AgentErrorBody>(&bytes) {
        return Err(ClientError::Manager {
            url: url.to_owned(),
            status: status.as_u16(),
            code: envelope.error.code,
            message: envelope.error.message,
            retry_after: after,
        });
    }
    let mut body: String = String::from_utf8_lossy(&bytes).chars().take(200).collect();
    if body.trim().is_empty() {
        body = status.canonical_reason().unwrap_or("no body").to_owned();
    }
    Err(ClientError::Http {
        url: url.to_owned(),
        status: status.as_u16(),
        body: body.trim().to_owned(),
        retry_after: after,
    })
}

/// The mutual-TLS client of an enrolled agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    http: reqwest::Client,
    base: String,
    machine_id: String,
    request_timeout: Duration,
}

impl AgentClient {
    /// A client for `identity` (its certificate, key and CA). `request_timeout` limits the
    /// requests that are not long polls.
    pub fn new(identity: &Identity, request_timeout: Duration) -> Result<AgentClient, ClientError> {
        let tls = pinned_tls(&identity.ca_pem, Some((&identity.cert_pem, &identity.key_pem)))?;
        Ok(AgentClient {
            http: http_client(tls)?,
            base: identity.server.clone(),
            machine_id: identity.machine_id.clone(),
            request_timeout,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<Option<T>, ClientError> {
        let url = self.url(path);
        let json = json_body(body, &url)?;
        send(&self.http, method, &url, Some(&self.machine_id), Some(json), timeout).await
    }

    /// `POST /agent/v1/checkin`, waiting at most `timeout` (the hold time plus a margin).
    pub async fn checkin(&self, request: &CheckinRequest, timeout: Duration) -> Result<CheckinResponse, ClientError> {
        let url = self.url("/agent/v1/checkin");
        self.call(Method::POST, "/agent/v1/checkin", request, timeout)
            .await?
            .ok_or(ClientError::Decode { url, reason: "empty answer".to_owned() })
    }

    /// `PUT /agent/v1/inventory`.
    pub async fn upload_inventory(&self, upload: &InventoryUpload) -> Result<(), ClientError> {
        self.call::<serde_json::Value, _>(
            Method::PUT,
            "/agent/v1/inventory",
            upload,
            self.request_timeout.max(Duration::from_secs(60)),
        )
        .await
        .map(drop)
    }

    /// `POST /agent/v1/certificate`.
    pub async fn renew(&self, request: &RenewRequest) -> Result<RenewResponse, ClientError> {
        let url = self.url("/agent/v1/certificate");
        self.call(Method::POST, "/agent/v1/certificate", request, self.request_timeout)
            .await?
            .ok_or(ClientError::Decode { url, reason: "empty answer".to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_normalised_and_must_be_https() {
        assert_eq!(normalize_server("https://m.example:8443/").unwrap(), "https://m.example:8443");
        assert_eq!(normalize_server(" https://m.example/prefix/ ").unwrap(), "https://m.example/prefix");
        assert!(normalize_server("http://m.example").unwrap_err().contains("https://"));
        assert!(normalize_server("m.example:8443").is_err());
        assert!(normalize_server("https://m.example/?x=1").is_err());
    }

    #[test]
    fn refusals_and_retry_after_are_classified() {
        let manager = |status, code: &str, retry_after| ClientError::Manager {
            url: "u".into(),
            status,
            code: code.into(),
            message: "m".into(),
            retry_after,
        };
        assert_eq!(manager(403, "certificate_revoked", None).failure_kind(), FailureKind::Refused);
        assert_eq!(manager(403, "machine_id_mismatch", None).failure_kind(), FailureKind::Refused);
        assert_eq!(manager(403, "enrollment_rejected", None).failure_kind(), FailureKind::Refused);
        assert_eq!(manager(409, "token_exhausted", None).failure_kind(), FailureKind::Refused);
        assert_eq!(
            manager(503, "overloaded", Some(Duration::from_secs(7))).failure_kind(),
            FailureKind::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(manager(500, "internal", None).failure_kind(), FailureKind::Transient);
        let http = ClientError::Http {
            url: "u".into(),
            status: 429,
            body: "x".into(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(http.failure_kind(), FailureKind::RetryAfter(Duration::from_secs(3)));
        assert!(!http.counts_as_delivery(), "rate limited: the results were not looked at");
        assert!(manager(400, "invalid_request", None).counts_as_delivery());
        assert!(!manager(503, "overloaded", None).counts_as_delivery());
        let down = ClientError::Connect { url: "u".into(), reason: "refused".into() };
        assert_eq!(down.failure_kind(), FailureKind::Transient);
        assert!(!down.counts_as_delivery());
    }

    #[test]
    fn tls_configs_need_a_usable_ca() {
        assert!(matches!(pinned_tls("not pem", None), Err(ClientError::Tls(_))));
        assert!(insecure_tls().is_ok());
    }
}
