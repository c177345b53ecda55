//! `/api/v1/patches`: pending updates from the inventory snapshot, and applying them.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use patchdeck_pkg::PackageName;
use patchdeck_proto::lpa::{JobAccepted, PatchApplyRequest, PatchList};

use super::optional;
use crate::api::error::{accepted, ok};
use crate::api::{ApiFailure, ApiResult, ApiState, RequestedBy};
use crate::jobs::{JobRequest, PatchApply};

/// `GET /api/v1/patches`.
pub async fn list_patches(State(state): State<ApiState>) -> ApiResult<Response> {
    let snapshot = state.inventory().snapshot();
    Ok(ok(PatchList::new(snapshot.patches.clone())))
}

/// `POST /api/v1/patches/apply`: the named updates, or all of them (body optional).
pub async fn apply_patches(
    State(state): State<ApiState>,
    requested_by: RequestedBy,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let request: PatchApplyRequest = optional(&headers, body).await?;
    let mut packages = Vec::new();
    for (i, name) in request.selected().unwrap_or_default().iter().enumerate() {
        packages.push(PackageName::parse(name).map_err(|e| ApiFailure::validation(&format!("packages[{i}]"), e))?);
    }
    let names = packages.iter().map(|p| p.as_str().to_owned()).collect();
    let job = state
        .engine()
        .submit_as(
            JobRequest::PatchApply(PatchApply {
                packages,
                allow_reboot: request.allow_reboot,
                force_reboot: false,
                reboot_delay: Duration::from_secs(request.reboot_delay_seconds),
            }),
            requested_by.0,
        )
        .await?;
    Ok(accepted(JobAccepted::patch_apply(job.job_id, names, request.allow_reboot)))
}
