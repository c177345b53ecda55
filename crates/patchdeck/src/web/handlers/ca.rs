//! The internal CA over HTTP: the root certificate and CRL (public, so agents and `openssl` can
//! fetch them), and, for admins, issued certificates: list, issue from a CSR, renew, revoke, and
//! the bundle a push-mode host needs for its listener.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use std::collections::HashMap;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::SignedDuration;
use patchdeck_crypto::ca::{CaError, CertSerial, IssuedCertificate};
use patchdeck_store::{Certificate, CertificateFilter, CertificateKind, HostId, NewCertificate};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::{page_of, ListResponse, PageParams};
use crate::web::{Json, Path, Query};

const PEM: &str = "application/x-pem-file";

/// How long a published CRL is valid; it is regenerated on every request, so this only bounds
/// how long a cached copy may be trusted.
const CRL_LIFETIME: SignedDuration = SignedDuration::from_hours(24);

/// The root CA certificate (PEM): what agents and browsers trust.
#[utoipa::path(get, path = "/api/v1/ca/certificate", tag = "ca", responses((status = 200, content_type = "application/x-pem-file")))]
pub async fn get_ca_certificate(State(state): State<AppState>) -> Response {
    ([(CONTENT_TYPE, PEM)], state.keys().ca.cert_pem().to_owned()).into_response()
}

/// The certificate revocation list (PEM), signed by the CA.
#[utoipa::path(get, path = "/api/v1/ca/crl", tag = "ca", responses((status = 200, content_type = "application/x-pem-file")))]
pub async fn get_crl(State(state): State<AppState>) -> ApiResult<Response> {
    let now = state.now();
    let revoked = state.store().list_revoked_certificates().await?;
    let entries = revoked
        .iter()
        .map(|c| {
            let serial =
                CertSerial::from_hex(&c.serial).ok_or_else(|| ApiError::internal("a stored serial is not hex"))?;
            Ok((serial, c.revoked_at))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let crl = state.keys().ca.generate_crl(&entries, now, now + CRL_LIFETIME).map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, PEM)], crl).into_response())
}

/// A certificate the CA issued.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateView {
    /// Hex serial number.
    pub serial: String,
    /// `server`, `client` or `push_client`.
    pub kind: String,
    pub common_name: String,
    /// The host it was issued to (null once the host is deleted, or for the manager's own).
    pub host_id: Option<i64>,
    /// That host's hostname.
    pub hostname: Option<String>,
    pub not_before: String,
    pub not_after: String,
    pub revoked_at: Option<String>,
    pub revocation_reason: Option<String>,
    /// The certificate (PEM).
    pub pem: String,
}

impl CertificateView {
    fn new(c: &Certificate, hostnames: &HashMap<HostId, String>) -> Self {
        CertificateView {
            serial: c.serial.clone(),
            kind: c.kind.as_str().to_owned(),
            common_name: c.common_name.clone(),
            host_id: c.host_id.map(|h| h.0),
            hostname: c.host_id.and_then(|h| hostnames.get(&h).cloned()),
            not_before: c.not_before.to_string(),
            not_after: c.not_after.to_string(),
            revoked_at: c.revoked_at.map(|t| t.to_string()),
            revocation_reason: c.revocation_reason.clone(),
            pem: c.pem.clone(),
        }
    }
}

/// The hostnames of these certificates' hosts, in one query (none without hosts).
async fn hostnames(state: &AppState, certs: &[Certificate]) -> ApiResult<HashMap<HostId, String>> {
    let hosts: Vec<HostId> = certs.iter().filter_map(|c| c.host_id).collect();
    Ok(state.store().host_names(&hosts).await?)
}

/// One certificate as the API shows it, with its host's name.
async fn view(state: &AppState, cert: &Certificate) -> ApiResult<CertificateView> {
    let names = hostnames(state, std::slice::from_ref(cert)).await?;
    Ok(CertificateView::new(cert, &names))
}

/// Filters of the certificate list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct CertificateQuery {
    /// `server`, `client` or `push_client`.
    pub kind: Option<String>,
    pub host_id: Option<i64>,
    /// Only revoked (`true`) or only valid (`false`) ones.
    pub revoked: Option<bool>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Certificates the CA issued, newest first.
#[utoipa::path(get, path = "/api/v1/certificates", tag = "ca", params(CertificateQuery),
    responses((status = 200, body = ListResponse<CertificateView>)))]
pub async fn list_certificates(
    State(state): State<AppState>,
    Query(q): Query<CertificateQuery>,
) -> ApiResult<Json<ListResponse<CertificateView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let kind = q.kind.as_deref().map(parse_kind).transpose()?;
    let filter = CertificateFilter { kind, host_id: q.host_id.map(HostId), revoked: q.revoked, paging };
    let page = state.store().list_certificates(&filter).await?;
    let names = hostnames(&state, &page.items).await?;
    Ok(Json(page_of(page, paging, |c| CertificateView::new(c, &names))))
}

fn parse_kind(text: &str) -> ApiResult<CertificateKind> {
    text.parse().map_err(|_| ApiError::validation("kind", "must be server, client or push_client"))
}

fn check_serial(serial: &str) -> ApiResult<String> {
    let serial = serial.to_ascii_lowercase();
    if serial.is_empty() || serial.len() > 64 || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::validation("serial", "must be a hexadecimal serial number"));
    }
    Ok(serial)
}

/// One certificate.
#[utoipa::path(get, path = "/api/v1/certificates/{serial}", tag = "ca", params(("serial" = String, Path)),
    responses((status = 200, body = CertificateView), (status = 404)))]
pub async fn get_certificate(
    State(state): State<AppState>,
    Path(serial): Path<String>,
) -> ApiResult<Json<CertificateView>> {
    let serial = check_serial(&serial)?;
    let cert =
        state.store().get_certificate_by_serial(&serial).await?.ok_or_else(|| ApiError::not_found("certificate"))?;
    Ok(Json(view(&state, &cert).await?))
}

/// A certificate signing request to sign.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// PEM PKCS#10 request; only its (ECDSA P-256 or Ed25519) key is used.
    pub csr: String,
    /// The certificate's subject CN: letters, digits, `.`, `_`, `-`.
    pub common_name: String,
    /// The host the certificate belongs to, if any.
    pub host_id: Option<i64>,
}

fn validity(state: &AppState) -> SignedDuration {
    SignedDuration::from_hours(24 * i64::try_from(state.config().ca.cert_validity_days).unwrap_or(365))
}

async fn record(
    state: &AppState,
    issued: &IssuedCertificate,
    kind: CertificateKind,
    common_name: &str,
    host_id: Option<HostId>,
) -> ApiResult<Certificate> {
    Ok(state
        .store()
        .insert_certificate(
            &NewCertificate {
                serial: issued.serial.to_hex(),
                kind,
                common_name: common_name.to_owned(),
                host_id,
                not_before: issued.not_before,
                not_after: issued.not_after,
                pem: issued.cert_pem.clone(),
            },
            state.now(),
        )
        .await?)
}

/// A signing failure as the client should see it: a bad request names the field at fault
/// (`csr` or `common_name`); a CA that cannot sign for that long is a conflict; anything else is
/// the server's problem.
fn ca_error(e: CaError) -> ApiError {
    match e {
        CaError::InvalidPem(_) | CaError::InvalidCsr(_) | CaError::CsrSignature | CaError::UnsupportedKey(_) => {
            ApiError::validation("csr", e)
        }
        CaError::InvalidHostId(_) => ApiError::validation("common_name", e),
        CaError::InvalidValidity(_) => ApiError::conflict(format!("the CA cannot issue this certificate: {e}")),
        other => ApiError::internal(other),
    }
}

/// Issues a client certificate for the key in a CSR.
#[utoipa::path(post, path = "/api/v1/certificates", tag = "ca", request_body = IssueRequest,
    responses((status = 201, body = CertificateView), (status = 400)))]
pub async fn create_certificate(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<IssueRequest>,
) -> ApiResult<(StatusCode, Json<CertificateView>)> {
    let host_id = match body.host_id {
        Some(id) => Some(state.store().get_host(HostId(id)).await?.ok_or_else(|| ApiError::not_found("host"))?.id),
        None => None,
    };
    let issued = state
        .keys()
        .ca
        .sign_client_csr(&body.csr, &body.common_name, state.now(), validity(&state))
        .map_err(ca_error)?;
    let stored = record(&state, &issued, CertificateKind::Client, &body.common_name, host_id).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "certificate.issue", Outcome::Success)
                .user(principal.user_id())
                .target(format!("certificate:{}", stored.serial))
                .source(principal.source_ip.clone())
                .details(json!({ "common_name": stored.common_name, "not_after": stored.not_after.to_string() })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(view(&state, &stored).await?)))
}

/// A CSR for a renewal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub csr: String,
}

/// Issues a new certificate with the same subject and host for a new CSR; the old one stays
/// valid until it expires or is revoked.
#[utoipa::path(post, path = "/api/v1/certificates/{serial}/renew", tag = "ca", params(("serial" = String, Path)),
    request_body = RenewRequest, responses((status = 201, body = CertificateView), (status = 400), (status = 404), (status = 409)))]
pub async fn renew_certificate(
    State(state): State<AppState>,
    principal: Principal,
    Path(serial): Path<String>,
    Json(body): Json<RenewRequest>,
) -> ApiResult<(StatusCode, Json<CertificateView>)> {
    let serial = check_serial(&serial)?;
    let old =
        state.store().get_certificate_by_serial(&serial).await?.ok_or_else(|| ApiError::not_found("certificate"))?;
    if old.revoked_at.is_some() {
        return Err(ApiError::conflict("a revoked certificate cannot be renewed; issue a new one"));
    }
    if old.kind == CertificateKind::Server {
        return Err(ApiError::conflict("server certificates are renewed by downloading a new host bundle"));
    }
    let issued = state
        .keys()
        .ca
        .sign_client_csr(&body.csr, &old.common_name, state.now(), validity(&state))
        .map_err(ca_error)?;
    let stored = record(&state, &issued, old.kind, &old.common_name, old.host_id).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "certificate.renew", Outcome::Success)
                .user(principal.user_id())
                .target(format!("certificate:{}", stored.serial))
                .source(principal.source_ip.clone())
                .details(json!({ "replaces": old.serial, "not_after": stored.not_after.to_string() })),
        )
        .await;
    Ok((StatusCode::CREATED, Json(view(&state, &stored).await?)))
}

/// Why a certificate is revoked.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Free text, e.g. "host decommissioned" (1–200 characters).
    pub reason: String,
}

/// Revokes a certificate; it appears in the CRL at once.
#[utoipa::path(post, path = "/api/v1/certificates/{serial}/revoke", tag = "ca", params(("serial" = String, Path)),
    request_body = RevokeRequest, responses((status = 200, body = CertificateView), (status = 404), (status = 409)))]
pub async fn revoke_certificate(
    State(state): State<AppState>,
    principal: Principal,
    Path(serial): Path<String>,
    Json(body): Json<RevokeRequest>,
) -> ApiResult<Json<CertificateView>> {
    let serial = check_serial(&serial)?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control) {
        return Err(ApiError::validation("reason", "must be 1 to 200 printable characters"));
    }
    let revoked = state.store().revoke_certificate(&serial, reason, state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "certificate.revoke", Outcome::Success)
                .user(principal.user_id())
                .target(format!("certificate:{serial}"))
                .source(principal.source_ip.clone())
                .details(json!({ "reason": reason })),
        )
        .await;
    Ok(Json(view(&state, &revoked).await?))
}

/// What a push-mode host needs for its mutual-TLS listener.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushBundle {
    /// The host's server certificate (PEM), for its FQDN and address.
    pub server_certificate: String,
    /// Its private key (PEM). Shown only in this response; the manager does not keep it.
    pub server_key: String,
    /// The CA certificate (PEM): the agent trusts client certificates it issued (the manager's).
    pub ca_certificate: String,
    pub serial: String,
    pub not_after: String,
}

/// Issues a server certificate and key for a push-mode host's listener (on the agent:
/// `push.server_cert`, `push.server_key`, `push.ca_bundle`).
#[utoipa::path(post, path = "/api/v1/hosts/{id}/push-bundle", tag = "ca", params(("id" = i64, Path)),
    responses((status = 201, body = PushBundle), (status = 404), (status = 409)))]
pub async fn create_push_bundle(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<PushBundle>)> {
    let host = state.store().get_host(HostId(id)).await?.ok_or_else(|| ApiError::not_found("host"))?;
    let names: Vec<&str> =
        [host.fqdn.as_deref(), Some(host.hostname.as_str()), host.address.as_deref()].into_iter().flatten().collect();
    let (issued, key, common_name) =
        crate::pki::host_server_certificate(&state.keys().ca, &names, state.now(), validity(&state))
            .map_err(|e| ApiError::conflict(format!("cannot issue a certificate for this host's names: {e}")))?;
    let stored = record(&state, &issued, CertificateKind::Server, &common_name, Some(host.id)).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "certificate.issue", Outcome::Success)
                .user(principal.user_id())
                .target(format!("certificate:{}", stored.serial))
                .source(principal.source_ip.clone())
                .details(json!({ "host_id": host.id.0, "kind": "server", "purpose": "push bundle" })),
        )
        .await;
    Ok((
        StatusCode::CREATED,
        Json(PushBundle {
            server_certificate: issued.cert_pem.clone(),
            server_key: key.expose().to_owned(),
            ca_certificate: state.keys().ca.cert_pem().to_owned(),
            serial: stored.serial,
            not_after: stored.not_after.to_string(),
        }),
    ))
}
