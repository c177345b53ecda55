//! `/agent/v1/…`: the pull protocol's manager side (see `docs/protocol.md`).
//!
//! * `POST /agent/v1/enroll` — a registration token and a CSR in, a client certificate out (or
//!   "waiting for approval"). No client certificate; rate-limited per source address like logins.
//! * Everything else needs the agent's client certificate ([`authorize_agent`]): check-in (the
//!   long-poll), inventory upload, certificate renewal.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use jiff::{SignedDuration, Timestamp};
use patchdeck_crypto::ca::serial_of_der;
use patchdeck_crypto::signing::SignedEnvelope;
use patchdeck_proto::agent::{
    inventory_hash, CheckinRequest, CheckinResponse, CommandPayload, CommandState, EnrollRequest, EnrollResponse,
    Enrollment, InventoryUpload, RenewRequest, RenewResponse, ResultAck, SignedCommand, MACHINE_ID_HEADER,
    MAX_RESULTS_PER_CHECKIN, MAX_RESULT_OUTPUT_BYTES, PROTOCOL_VERSION,
};
use patchdeck_store::{
    Approval, CertificateKind, CheckinFacts, CommandRecord, EnrollError, Host, HostId, HostStatus, NewAgentHost,
    NewCertificate, ResultOutcome, TakeSeatError,
};
use serde_json::json;

use crate::audit::{AuditEvent, Outcome};
use crate::hub::HostChange;
use crate::state::AppState;
use crate::web::authz::{source_ip, ClientAddr};
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::hosts::{check_address, check_fqdn, check_hostname};
use crate::web::serve::PeerCertificate;
use crate::web::Json;

/// Largest inventory upload (a host with tens of thousands of packages fits).
pub const MAX_INVENTORY_BYTES: usize = 64 * 1024 * 1024;
/// Most packages (and, separately, updates) one inventory may list.
const MAX_INVENTORY_ITEMS: usize = 200_000;
/// How often a waiting agent asks again about its approval.
const APPROVAL_RETRY_SECS: u64 = 30;
/// Most commands handed out by one check-in.
const MAX_COMMANDS_PER_CHECKIN: u32 = 20;
/// How long a check-in waits for a processing slot before it is told to come back (503).
const SLOT_WAIT: Duration = Duration::from_secs(2);
/// Most addresses an agent may report.
const MAX_ADDRESSES: usize = 64;

/// The host behind a verified agent certificate; set by [`authorize_agent`].
#[derive(Debug, Clone)]
pub struct AgentPrincipal {
    pub host: Host,
    pub serial: String,
}

impl AgentPrincipal {
    fn actor(&self) -> String {
        format!("host:{}", self.host.id.0)
    }
}

/// The middleware of every mutual-TLS agent route: maps the client certificate to its host and
/// checks revocation, the bound machine ID and approval.
pub async fn authorize_agent(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let cert = request.extensions().get::<PeerCertificate>().cloned();
    let presented = request.headers().get(MACHINE_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let source = source_ip(request.extensions());
    match identify_agent(&state, cert, &presented, source).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn identify_agent(
    state: &AppState,
    cert: Option<PeerCertificate>,
    presented: &str,
    source: Option<String>,
) -> ApiResult<AgentPrincipal> {
    let required = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "client_certificate_required",
            "this endpoint needs the client certificate the manager issued at enrollment",
        )
    };
    let cert = cert.ok_or_else(required)?;
    let serial = serial_of_der(&cert.0).map_err(|_| required())?.to_hex();
    // Certificate and host in one query: this runs before every check-in.
    let (record, host) = state.store().agent_identity(&serial).await?.ok_or_else(required)?;
    if record.kind != CertificateKind::Client {
        return Err(required());
    }
    let revoked = || ApiError::new(StatusCode::FORBIDDEN, "certificate_revoked", "this certificate has been revoked");
    if record.revoked_at.is_some() {
        return Err(revoked());
    }
    // No host: the certificate was issued to none, or its host was deleted.
    let host = host.ok_or_else(revoked)?;
    if host.machine_id.as_deref() != Some(presented) {
        state
            .audit(
                AuditEvent::new(format!("host:{}", host.id.0), "security.machine_id_mismatch", Outcome::Denied)
                    .target(format!("host:{}", host.id.0))
                    .source(source)
                    .details(json!({
                        "certificate_serial": serial,
                        "presented_machine_id": presented.chars().take(64).collect::<String>(),
                    })),
            )
            .await;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "machine_id_mismatch",
            "the machine ID differs from the one bound at enrollment; re-enroll this machine",
        ));
    }
    if host.approval != Approval::Approved {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "host_not_approved", "the host is not approved"));
    }
    Ok(AgentPrincipal { host, serial })
}

// ---------------------------------------------------------------------------------------------
// Enrollment

/// Enrolls an agent: `EnrollRequest` in, `EnrollResponse` out (`200` enrolled, `202` waiting for
/// approval).
#[utoipa::path(post, path = "/agent/v1/enroll", tag = "agent",
    request_body(content = Object, description = "EnrollRequest (docs/protocol.md)"),
    responses((status = 200, description = "enrolled"), (status = 202, description = "pending approval"),
        (status = 400), (status = 401, description = "invalid, expired or revoked token"),
        (status = 409, description = "no seat left, or the machine is already enrolled"), (status = 429)))]
pub async fn enroll(
    State(state): State<AppState>,
    Extension(client): Extension<ClientAddr>,
    Json(request): Json<EnrollRequest>,
) -> ApiResult<Response> {
    if let Err(wait) = state.login_attempt(Some(client.0.ip())) {
        return Err(ApiError::too_many("too many enrollment attempts from this address", wait));
    }
    let checked = check_enrollment(&request)?;
    let now = state.now();
    let source = Some(client.0.ip().to_string());
    let token_hash = match patchdeck_crypto::token::OpaqueToken::parse(&request.token) {
        Ok(token) => token.hash().0,
        Err(_) => {
            return Err(enroll_refused(&state, EnrollError::Seat(TakeSeatError::NotFound), &checked, source).await)
        }
    };
    // A CSR that cannot be signed is refused before a seat is taken.
    state
        .keys()
        .ca
        .sign_client_csr(&request.csr_pem, "0", now, SignedDuration::from_hours(1))
        .map_err(|e| ApiError::validation("csr_pem", e))?;

    let existing = state.store().get_host_by_machine_id(&checked.machine_id).await?;
    let fresh = existing.is_none();
    let mut reenrolled = false;
    let host = match existing {
        None => {
            let approval = if state.settings().await?.enrollment_requires_approval {
                Approval::Pending
            } else {
                Approval::Approved
            };
            let new = checked.new_host(approval, &request);
            match state.store().enroll_agent_host(&token_hash, &new, now).await {
                Ok(host) => host,
                Err(e) => return Err(enroll_refused(&state, e, &checked, source).await),
            }
        }
        Some(host) => {
            // The same agent asking again about its approval sends the very same CSR.
            let pending = state.store().pending_csr(host.id).await?;
            if pending.as_deref() == Some(request.csr_pem.as_str()) {
                host
            } else if host.approval == Approval::Approved && request.force {
                let new = checked.new_host(Approval::Approved, &request);
                let host = match state.store().reenroll_agent_host(&token_hash, host.id, &new, now).await {
                    Ok(host) => host,
                    Err(e) => return Err(enroll_refused(&state, e, &checked, source).await),
                };
                let revoked = state.store().revoke_host_certificates(host.id, "superseded", now).await?;
                state
                    .audit(
                        AuditEvent::new(format!("host:{}", host.id.0), "host.reenroll", Outcome::Success)
                            .target(format!("host:{}", host.id.0))
                            .source(source.clone())
                            .details(json!({ "revoked_certificates": revoked, "hostname": host.hostname })),
                    )
                    .await;
                reenrolled = true;
                host
            } else {
                return Err(duplicate_machine(&state, &host, source).await);
            }
        }
    };

    match host.approval {
        Approval::Pending => {
            if fresh {
                state
                    .audit(
                        AuditEvent::new(format!("host:{}", host.id.0), "host.enroll", Outcome::Success)
                            .target(format!("host:{}", host.id.0))
                            .source(source)
                            .details(json!({ "hostname": host.hostname, "approval": "pending" })),
                    )
                    .await;
                state.hub().publish_host(host.id.0, host.status.as_str(), HostChange::Enrolled).await;
            }
            let body = EnrollResponse::PendingApproval { host_id: host.id.0, retry_after_secs: APPROVAL_RETRY_SECS };
            Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
        }
        Approval::Rejected => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "enrollment_rejected",
            "an administrator rejected this host's enrollment",
        )),
        Approval::Approved => {
            let enrollment = issue_enrollment(&state, &host, &request.csr_pem, now).await?;
            state.store().clear_pending_csr(host.id).await?;
            if !reenrolled {
                state
                    .audit(
                        AuditEvent::new(format!("host:{}", host.id.0), "host.enroll", Outcome::Success)
                            .target(format!("host:{}", host.id.0))
                            .source(source)
                            .details(json!({ "hostname": host.hostname, "machine_id": host.machine_id })),
                    )
                    .await;
            }
            state.hub().publish_host(host.id.0, host.status.as_str(), HostChange::Enrolled).await;
            Ok((StatusCode::OK, axum::Json(EnrollResponse::Enrolled(enrollment))).into_response())
        }
    }
}

async fn issue_enrollment(state: &AppState, host: &Host, csr_pem: &str, now: Timestamp) -> ApiResult<Enrollment> {
    let issued = issue_client_certificate(state, host.id, csr_pem, now).await?;
    let key = state.keys().command_key.verifying_key();
    Ok(Enrollment {
        host_id: host.id.0,
        certificate_pem: issued,
        ca_pem: state.keys().ca.cert_pem().to_owned(),
        command_key: key.to_base64(),
        command_key_fingerprint: key.fingerprint(),
    })
}

/// Signs `csr_pem` for `host` and records the certificate.
async fn issue_client_certificate(state: &AppState, host: HostId, csr_pem: &str, now: Timestamp) -> ApiResult<String> {
    let validity = SignedDuration::from_hours(24 * i64::try_from(state.config().ca.cert_validity_days).unwrap_or(365));
    let issued = state
        .keys()
        .ca
        .sign_client_csr(csr_pem, &host.0.to_string(), now, validity)
        .map_err(|e| ApiError::validation("csr_pem", e))?;
    state
        .store()
        .insert_certificate(
            &NewCertificate {
                serial: issued.serial.to_hex(),
                kind: CertificateKind::Client,
                common_name: host.0.to_string(),
                host_id: Some(host),
                not_before: issued.not_before,
                not_after: issued.not_after,
                pem: issued.cert_pem.clone(),
            },
            now,
        )
        .await?;
    Ok(issued.cert_pem)
}

async fn enroll_refused(
    state: &AppState,
    error: EnrollError,
    checked: &CheckedEnrollment,
    source: Option<String>,
) -> ApiError {
    let (code, status, message): (&'static str, StatusCode, &str) = match &error {
        EnrollError::Seat(TakeSeatError::NotFound) => {
            ("invalid_token", StatusCode::UNAUTHORIZED, "the registration token is not valid")
        }
        EnrollError::Seat(TakeSeatError::Expired) => {
            ("token_expired", StatusCode::UNAUTHORIZED, "the registration token has expired")
        }
        EnrollError::Seat(TakeSeatError::Revoked) => {
            ("token_revoked", StatusCode::UNAUTHORIZED, "the registration token was revoked")
        }
        EnrollError::Seat(TakeSeatError::NoSeatsLeft) => {
            ("token_exhausted", StatusCode::CONFLICT, "the registration token has no seats left")
        }
        EnrollError::MachineAlreadyEnrolled(id) => {
            return match state.store().get_host(*id).await {
                Ok(Some(host)) => duplicate_machine(state, &host, source).await,
                Ok(None) => ApiError::conflict("the machine is already enrolled"),
                Err(e) => e.into(),
            }
        }
        EnrollError::Seat(TakeSeatError::Store(e)) | EnrollError::Store(e) => return ApiError::internal(e),
    };
    state
        .audit(
            AuditEvent::new("anonymous", "host.enroll", Outcome::Denied)
                .source(source)
                .details(json!({ "reason": code, "hostname": checked.hostname, "machine_id": checked.machine_id })),
        )
        .await;
    ApiError::new(status, code, message)
}

async fn duplicate_machine(state: &AppState, host: &Host, source: Option<String>) -> ApiError {
    state
        .audit(
            AuditEvent::new("anonymous", "security.duplicate_machine_id", Outcome::Denied)
                .target(format!("host:{}", host.id.0))
                .source(source)
                .details(json!({ "machine_id": host.machine_id, "hostname": host.hostname })),
        )
        .await;
    ApiError::new(
        StatusCode::CONFLICT,
        "machine_already_enrolled",
        format!(
            "this machine ID is already enrolled as host {} ({}); use --force to replace its certificate",
            host.id.0, host.hostname
        ),
    )
}

/// The validated facts of an [`EnrollRequest`].
#[derive(Debug)]
struct CheckedEnrollment {
    machine_id: String,
    hostname: String,
    fqdn: Option<String>,
    addresses: Vec<String>,
}

impl CheckedEnrollment {
    fn new_host(&self, approval: Approval, request: &EnrollRequest) -> NewAgentHost {
        NewAgentHost {
            hostname: self.hostname.clone(),
            fqdn: self.fqdn.clone(),
            addresses: self.addresses.clone(),
            machine_id: self.machine_id.clone(),
            os_name: Some(request.os.id.clone()),
            os_version: request.os.version_id.clone(),
            os_pretty_name: request.os.pretty_name.clone(),
            kernel: request.os.kernel.clone(),
            arch: request.os.arch.clone(),
            agent_version: request.agent_version.clone(),
            approval,
            pending_csr: (approval == Approval::Pending).then(|| request.csr_pem.clone()),
        }
    }
}

fn check_enrollment(request: &EnrollRequest) -> ApiResult<CheckedEnrollment> {
    check_protocol(request.protocol_version)?;
    let machine_id = check_machine_id(&request.machine_id)?;
    let hostname = check_hostname(&request.hostname)?;
    let fqdn = match request.fqdn.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(fqdn) => Some(check_fqdn(fqdn)?),
    };
    if request.addresses.len() > MAX_ADDRESSES {
        return Err(ApiError::validation("addresses", format!("at most {MAX_ADDRESSES} addresses")));
    }
    let addresses = request.addresses.iter().map(|a| check_address(a)).collect::<ApiResult<Vec<_>>>()?;
    if request.csr_pem.len() > 16 * 1024 {
        return Err(ApiError::validation("csr_pem", "is longer than 16 KiB"));
    }
    for (field, value) in [
        ("os.id", Some(request.os.id.as_str())),
        ("os.version_id", request.os.version_id.as_deref()),
        ("os.pretty_name", request.os.pretty_name.as_deref()),
        ("os.kernel", request.os.kernel.as_deref()),
        ("os.arch", request.os.arch.as_deref()),
        ("agent_version", Some(request.agent_version.as_str())),
    ] {
        check_short_text(field, value)?;
    }
    Ok(CheckedEnrollment { machine_id, hostname, fqdn, addresses })
}

fn check_protocol(version: u32) -> ApiResult<()> {
    if version != PROTOCOL_VERSION {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_protocol",
            format!("protocol version {version} is not supported (this manager speaks {PROTOCOL_VERSION})"),
        ));
    }
    Ok(())
}

/// 32 hex digits (systemd's machine-id format), stored lower case.
pub fn check_machine_id(text: &str) -> ApiResult<String> {
    let id = text.trim().to_ascii_lowercase();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.bytes().all(|b| b == b'0') {
        return Err(ApiError::validation("machine_id", "must be 32 hexadecimal digits (/etc/machine-id)"));
    }
    Ok(id)
}

fn check_short_text(field: &str, value: Option<&str>) -> ApiResult<()> {
    if let Some(value) = value {
        if value.chars().count() > 256 || value.chars().any(char::is_control) {
            return Err(ApiError::validation(field, "must be at most 256 characters without control characters"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Check-in

/// The long-poll: stores metrics and results, then answers with commands at once or holds the
/// request until one is queued or the hold time ends.
#[utoipa::path(post, path = "/agent/v1/checkin", tag = "agent",
    request_body(content = Object, description = "CheckinRequest (docs/protocol.md)"),
    responses((status = 200, description = "CheckinResponse"), (status = 400),
        (status = 401, description = "no agent certificate"),
        (status = 403, description = "revoked, machine ID mismatch, or not approved"),
        (status = 503, description = "overloaded; retry after Retry-After")))]
pub async fn checkin(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentPrincipal>,
    Json(request): Json<CheckinRequest>,
) -> ApiResult<Response> {
    check_protocol(request.protocol_version)?;
    check_short_text("agent_version", Some(&request.agent_version))?;
    if request.results.len() > MAX_RESULTS_PER_CHECKIN {
        return Err(ApiError::validation("results", format!("at most {MAX_RESULTS_PER_CHECKIN} per check-in")));
    }
    if request.rejections.len() > MAX_RESULTS_PER_CHECKIN {
        return Err(ApiError::validation("rejections", format!("at most {MAX_RESULTS_PER_CHECKIN} per check-in")));
    }
    for (i, result) in request.results.iter().enumerate() {
        // Some slack over the agent's own limit for JSON escaping differences.
        if result.output.len() > 2 * MAX_RESULT_OUTPUT_BYTES || result.changes.len() > MAX_INVENTORY_ITEMS {
            return Err(ApiError::validation(&format!("results[{i}]"), "output or changes too large"));
        }
    }
    let host = agent.host.id;

    // The database work, bounded: under load, agents are told to come back (backpressure).
    let slot = match tokio::time::timeout(SLOT_WAIT, Arc::clone(state.checkin_slots()).acquire_owned()).await {
        Ok(Ok(slot)) => slot,
        _ => {
            state.metrics().checkin_rejected();
            let retry = 5 + splay(host.0, 25);
            let mut e =
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", "the manager is busy; retry later");
            e.retry_after = Some(retry);
            return Err(e);
        }
    };
    let now = state.now();
    let facts = CheckinFacts { agent_version: request.agent_version.clone(), metrics: request.metrics.clone() };
    let outcome = state.store().record_checkin(host, &facts, now).await?;
    if outcome.previous_status != HostStatus::Online {
        state.hub().publish_host(host.0, "online", HostChange::Status).await;
    }
    let acked = store_results(&state, &agent, &request, now).await?;
    let inventory_wanted =
        request.inventory_hash.as_deref().is_some_and(|hash| outcome.inventory_hash.as_deref() != Some(hash));
    // Claiming is a write (on SQLite it takes the database's write lock); most check-ins have
    // nothing queued, and a read says so.
    let mut commands = if state.store().has_pending_commands(host, now).await? {
        state.store().claim_commands(host, now, MAX_COMMANDS_PER_CHECKIN).await?
    } else {
        Vec::new()
    };
    drop(slot);

    let interval = state.config().agents.checkin_interval();
    let hold = hold_time(host.0, interval, Duration::from_millis(request.wait_ms));
    let mut next_checkin_ms = 0;
    if commands.is_empty() && acked.is_empty() && !inventory_wanted {
        if state.hub().held() >= state.config().agents.max_held_checkins {
            // Too many held already: answer now and have the agent sleep instead.
            next_checkin_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
        } else if !hold.is_zero() {
            let mut watch = state.hub().watch(host.0);
            let store = state.store().clone();
            let woken =
                watch.wait(hold, async move { !store.has_pending_commands(host, now).await.unwrap_or(true) }).await;
            if woken {
                commands = state.store().claim_commands(host, state.now(), MAX_COMMANDS_PER_CHECKIN).await?;
            }
        }
    }
    let signed = sign_commands(&state, &agent.host, &commands)?;
    for command in &commands {
        publish_command(&state, command).await;
    }
    let response =
        CheckinResponse { commands: signed, inventory_wanted, acked, next_checkin_ms, server_time: state.now() };
    Ok(axum::Json(response).into_response())
}

/// How long an idle check-in of `host` is held: the interval less a splay of up to 10% fixed by
/// the host id (so a fleet that reconnected at once spreads out), and never longer than the
/// agent said it would wait (less a margin for the answer to travel).
fn hold_time(host: i64, interval: Duration, agent_wait: Duration) -> Duration {
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
    let spread = splay(host, interval_ms / 10);
    let hold = Duration::from_millis(interval_ms - spread);
    let agent_limit = agent_wait.saturating_sub(Duration::from_secs(2));
    hold.min(agent_limit)
}

/// A number in `0..=max` fixed by `host` (splitmix64 of the id).
fn splay(host: i64, max: u64) -> u64 {
    let mut z = (host as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    if max == 0 {
        0
    } else {
        z % (max + 1)
    }
}

/// Stores results and rejections; returns the acknowledgments (everything the database now
/// holds, including duplicates and results for commands it does not know, so the agent can
/// forget them).
async fn store_results(
    state: &AppState,
    agent: &AgentPrincipal,
    request: &CheckinRequest,
    now: Timestamp,
) -> ApiResult<Vec<ResultAck>> {
    let host = agent.host.id;
    let mut acked = Vec::with_capacity(request.results.len());
    for result in &request.results {
        if !matches!(
            result.state,
            CommandState::Running | CommandState::Completed | CommandState::Failed | CommandState::TimedOut
        ) {
            return Err(ApiError::validation("results[].state", "must be running, completed, failed or timed_out"));
        }
        apply_result(state, &agent.actor(), host, result, now).await?;
        acked.push(ResultAck { command_id: result.command_id, state: result.state });
    }
    for rejection in &request.rejections {
        state
            .audit(
                AuditEvent::new(agent.actor(), "security.command_rejected", Outcome::Denied)
                    .target(rejection.command_id.map(|id| format!("command:{id}")).unwrap_or_default())
                    .details(json!({
                        "reason": rejection.reason.as_str(),
                        "message": rejection.message.chars().take(512).collect::<String>(),
                    })),
            )
            .await;
        if let Some(id) = rejection.command_id {
            let message: String = rejection.message.chars().take(512).collect();
            if let ResultOutcome::Applied(record) =
                state.store().reject_command(host, id, rejection.reason.as_str(), &message, now).await?
            {
                publish_command(state, &record).await;
            }
        }
    }
    Ok(acked)
}

/// Stores a command's progress or outcome as `actor` reported it (an agent, or the push worker
/// relaying one): a report that moves the command forward is published, and its end audited;
/// a duplicate changes nothing.
pub(crate) async fn apply_result(
    state: &AppState,
    actor: &str,
    host: HostId,
    result: &patchdeck_proto::agent::CommandResult,
    now: Timestamp,
) -> Result<(), patchdeck_store::Error> {
    match state.store().apply_command_result(host, result, now).await? {
        ResultOutcome::Applied(record) => {
            if record.state.is_terminal() {
                let outcome = if record.state == CommandState::Completed { Outcome::Success } else { Outcome::Failure };
                state
                    .audit(
                        AuditEvent::new(actor, "command.finish", outcome)
                            .target(format!("command:{}", record.id))
                            .details(json!({
                                "host_id": host.0,
                                "kind": record.kind,
                                "state": record.state,
                                "error_code": record.error_code,
                                "changes": record.changes.len(),
                            })),
                    )
                    .await;
                crate::deploy::command_finished(state, host, record.id).await;
            }
            publish_command(state, &record).await;
        }
        ResultOutcome::Duplicate(_) => {}
        ResultOutcome::Unknown => {
            tracing::warn!(host.id = host.0, command.id = %result.command_id, "result for an unknown command");
        }
    }
    Ok(())
}

async fn publish_command(state: &AppState, command: &CommandRecord) {
    state.hub().publish_command(command).await;
}

fn sign_commands(state: &AppState, host: &Host, commands: &[CommandRecord]) -> ApiResult<Vec<SignedCommand>> {
    let now = state.now();
    commands
        .iter()
        .map(|command| {
            let payload = CommandPayload {
                command_id: command.id,
                host_id: host.id.0,
                machine_id: host.machine_id.clone().unwrap_or_default(),
                issued_at: now,
                command: command.command.clone(),
            };
            let bytes = serde_json::to_vec(&payload).map_err(ApiError::internal)?;
            let envelope = SignedEnvelope::seal(&state.keys().command_key, bytes, now).map_err(ApiError::internal)?;
            let value = serde_json::to_value(&envelope).map_err(ApiError::internal)?;
            serde_json::from_value(value).map_err(ApiError::internal)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Inventory and certificates

/// Stores the host's full inventory (installed packages, updates with their security class).
#[utoipa::path(put, path = "/agent/v1/inventory", tag = "agent",
    request_body(content = Object, description = "InventoryUpload (docs/protocol.md)"),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 413)))]
pub async fn put_inventory(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentPrincipal>,
    Json(upload): Json<InventoryUpload>,
) -> ApiResult<StatusCode> {
    check_protocol(upload.protocol_version)?;
    let report = &upload.report;
    if report.installed.len() > MAX_INVENTORY_ITEMS || report.updates.len() > MAX_INVENTORY_ITEMS {
        return Err(ApiError::validation("report", format!("at most {MAX_INVENTORY_ITEMS} packages and updates")));
    }
    for (i, p) in report.installed.iter().enumerate() {
        if p.name.is_empty() || p.name.len() > 512 || p.version.len() > 512 || p.arch.len() > 64 {
            return Err(ApiError::validation(&format!("report.installed[{i}]"), "name, version or arch out of bounds"));
        }
    }
    for (i, u) in report.updates.iter().enumerate() {
        if u.name.is_empty()
            || u.name.len() > 512
            || u.candidate_version.len() > 512
            || u.current_version.len() > 512
            || u.cves.len() > 10_000
        {
            return Err(ApiError::validation(&format!("report.updates[{i}]"), "fields out of bounds"));
        }
    }
    let hash = inventory_hash(report);
    if hash != upload.hash {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "inventory_hash_mismatch",
            "the inventory's hash does not match its content",
        ));
    }
    let now = state.now();
    state.store().replace_inventory(agent.host.id, report, &hash, now).await?;
    state.hub().publish_host(agent.host.id.0, agent.host.status.as_str(), HostChange::Inventory).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues a new certificate for the calling host's new key.
#[utoipa::path(post, path = "/agent/v1/certificate", tag = "agent", operation_id = "renew_agent_certificate",
    request_body(content = Object, description = "RenewRequest (docs/protocol.md)"),
    responses((status = 200, description = "RenewResponse"), (status = 400), (status = 401), (status = 403)))]
pub async fn renew_certificate(
    State(state): State<AppState>,
    Extension(agent): Extension<AgentPrincipal>,
    Json(request): Json<RenewRequest>,
) -> ApiResult<axum::Json<RenewResponse>> {
    check_protocol(request.protocol_version)?;
    if request.csr_pem.len() > 16 * 1024 {
        return Err(ApiError::validation("csr_pem", "is longer than 16 KiB"));
    }
    let now = state.now();
    let certificate_pem = issue_client_certificate(&state, agent.host.id, &request.csr_pem, now).await?;
    state
        .audit(
            AuditEvent::new(agent.actor(), "certificate.renew", Outcome::Success)
                .target(format!("host:{}", agent.host.id.0))
                .details(json!({ "previous_serial": agent.serial })),
        )
        .await;
    Ok(axum::Json(RenewResponse { certificate_pem, ca_pem: state.keys().ca.cert_pem().to_owned() }))
}

// ---------------------------------------------------------------------------------------------
// Upkeep

/// Marks silent pull hosts offline and times out stale commands; run every few seconds.
pub async fn agent_upkeep(state: &AppState) -> anyhow::Result<()> {
    let now = state.now();
    let agents = &state.config().agents;
    let interval = SignedDuration::try_from(agents.checkin_interval())?;
    // Two intervals, plus a margin for the time a check-in takes to travel.
    let cutoff = now - interval * 2 - SignedDuration::from_secs(30);
    for host in state.store().mark_pull_hosts_offline(cutoff, now).await? {
        state.hub().publish_host(host.0, "offline", HostChange::Status).await;
        // Once per transition: only the statement that moved the host to offline returns it.
        notify_unreachable(state, host).await;
    }
    let result_timeout = SignedDuration::from_secs(i64::try_from(agents.command_result_timeout_secs)?);
    for command in state.store().sweep_commands(now, result_timeout).await? {
        publish_command(state, &command).await;
        crate::deploy::command_finished(state, command.host_id, command.id).await;
    }
    Ok(())
}

/// `host.unreachable` for a host that just went `offline` or `unreachable` (failures are logged:
/// a notification never stops the work that noticed the change).
pub async fn notify_unreachable(state: &AppState, host: HostId) {
    let result = match state.store().get_host(host).await {
        Ok(Some(host)) => state.notifier().host_unreachable(&host).await.map_err(|e| e.to_string()),
        Ok(None) => Ok(()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        tracing::warn!(host.id = host.0, error = %e, "could not queue the host.unreachable notification");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splay_is_stable_and_bounded() {
        for host in 0..1000 {
            let s = splay(host, 30_000);
            assert!(s <= 30_000);
            assert_eq!(s, splay(host, 30_000));
        }
        let mut tenths = [0u32; 10];
        for host in 0..1000 {
            tenths[(splay(host, 29_999) / 3000) as usize] += 1;
        }
        assert!(tenths.iter().all(|&n| n >= 50), "1000 hosts spread over every tenth of the splay: {tenths:?}");
        assert_eq!(splay(5, 0), 0);
    }

    #[test]
    fn hold_time_respects_interval_splay_and_the_agent_wait() {
        let interval = Duration::from_secs(300);
        for host in 0..100 {
            let hold = hold_time(host, interval, Duration::from_secs(600));
            assert!(hold <= interval && hold >= Duration::from_secs(270), "{hold:?}");
        }
        assert_eq!(hold_time(1, interval, Duration::from_secs(10)), Duration::from_secs(8));
        assert_eq!(hold_time(1, interval, Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn machine_ids_are_checked() {
        assert_eq!(
            check_machine_id(" 0123456789ABCDEF0123456789abcdef\n").unwrap(),
            "0123456789abcdef0123456789abcdef"
        );
        for bad in [
            "",
            "xyz",
            "0123456789abcdef0123456789abcde",
            "00000000000000000000000000000000",
            "g123456789abcdef0123456789abcdef",
        ] {
            assert!(check_machine_id(bad).is_err(), "{bad:?}");
        }
    }
}
