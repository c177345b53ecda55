//! `/api/v1/enrollments…` (admins only): the approval queue. When the setting *enrollment
//! requires approval* is on, a newly enrolling agent gets a host record waiting for approval
//! (`docs/protocol.md`, "Enrollment"); it is listed here until an administrator approves it (the
//! agent's next enrollment attempt gets its certificate) or rejects it (the agent is told
//! `enrollment_rejected`, and any certificate of the host is revoked).
//!
//! A waiting or rejected host is not in the host list and cannot be given commands.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use patchdeck_store::{Approval, Host, HostFilter, HostId, HostSort, Scope, SortDir};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditEvent, Outcome};
use crate::hub::HostChange;
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::hosts::HostView;
use crate::web::handlers::{page_of, ListResponse, PageParams};
use crate::web::{Json, Path, Query};

/// A host waiting for (or refused) approval: what its agent said about itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentView {
    #[serde(flatten)]
    pub host: HostView,
    /// `/etc/machine-id` of the machine (compare with the machine you expect).
    pub machine_id: Option<String>,
    /// The addresses the agent reported.
    pub addresses: Vec<String>,
}

impl From<&Host> for EnrollmentView {
    fn from(h: &Host) -> Self {
        EnrollmentView { host: HostView::from(h), machine_id: h.machine_id.clone(), addresses: h.addresses.clone() }
    }
}

/// Which enrollments to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentQuery {
    /// `pending` (default) or `rejected`.
    pub approval: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u64>,
}

/// Hosts waiting for approval (or, with `approval=rejected`, those refused), oldest first.
#[utoipa::path(get, path = "/api/v1/enrollments", tag = "enrollments", params(EnrollmentQuery),
    responses((status = 200, body = ListResponse<EnrollmentView>), (status = 400)))]
pub async fn list_enrollments(
    State(state): State<AppState>,
    Query(q): Query<EnrollmentQuery>,
) -> ApiResult<Json<ListResponse<EnrollmentView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    let approval = match q.approval.as_deref() {
        None | Some("pending") => Approval::Pending,
        Some("rejected") => Approval::Rejected,
        Some(_) => return Err(ApiError::validation("approval", "must be pending or rejected")),
    };
    let filter = HostFilter {
        approval: Some(approval),
        sort: HostSort::CreatedAt,
        dir: SortDir::Asc,
        paging,
        ..HostFilter::new(Scope::All)
    };
    let page = state.store().list_hosts(&filter).await?;
    Ok(Json(page_of(page, paging, |h| EnrollmentView::from(h))))
}

/// The host `id`, which must be waiting for approval.
async fn load_pending(state: &AppState, id: i64) -> ApiResult<Host> {
    let host = state.store().get_host(HostId(id)).await?.ok_or_else(|| ApiError::not_found("enrollment"))?;
    match host.approval {
        Approval::Pending => Ok(host),
        Approval::Approved => Err(ApiError::conflict("the host is already approved")),
        Approval::Rejected => Err(ApiError::conflict(
            "the host's enrollment was rejected; delete the host so that its machine can enroll again",
        )),
    }
}

async fn announce(state: &AppState, host: &Host) {
    state.hub().publish_host(host.id.0, host.status.as_str(), HostChange::Approval).await;
}

/// Approves a waiting host: its agent receives its certificate at its next enrollment attempt
/// (within 30 seconds) and the host joins the host list (ungrouped).
#[utoipa::path(post, path = "/api/v1/enrollments/{id}/approve", tag = "enrollments", params(("id" = i64, Path)),
    responses((status = 200, body = EnrollmentView), (status = 404), (status = 409)))]
pub async fn approve_enrollment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<EnrollmentView>> {
    let host = load_pending(&state, id).await?;
    let host = state.store().set_host_approval(host.id, Approval::Approved, state.now()).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "host.approve", Outcome::Success)
                .user(principal.user_id())
                .target(format!("host:{}", host.id))
                .source(principal.source_ip.clone())
                .details(json!({ "hostname": host.hostname, "machine_id": host.machine_id })),
        )
        .await;
    announce(&state, &host).await;
    Ok(Json(EnrollmentView::from(&host)))
}

/// Rejects a waiting host: its agent is told `enrollment_rejected`, and any certificate issued
/// to the host is revoked. The host stays listed (`approval=rejected`) so that its machine cannot
/// enroll again until the host is deleted.
#[utoipa::path(post, path = "/api/v1/enrollments/{id}/reject", tag = "enrollments", params(("id" = i64, Path)),
    responses((status = 200, body = EnrollmentView), (status = 404), (status = 409)))]
pub async fn reject_enrollment(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<i64>,
) -> ApiResult<Json<EnrollmentView>> {
    let host = load_pending(&state, id).await?;
    let now = state.now();
    let host = state.store().set_host_approval(host.id, Approval::Rejected, now).await?;
    let revoked = state.store().revoke_host_certificates(host.id, "enrollment rejected", now).await?;
    state
        .audit(
            AuditEvent::new(principal.actor(), "host.reject", Outcome::Success)
                .user(principal.user_id())
                .target(format!("host:{}", host.id))
                .source(principal.source_ip.clone())
                .details(json!({
                    "hostname": host.hostname,
                    "machine_id": host.machine_id,
                    "revoked_certificates": revoked,
                })),
        )
        .await;
    announce(&state, &host).await;
    Ok(Json(EnrollmentView::from(&host)))
}
