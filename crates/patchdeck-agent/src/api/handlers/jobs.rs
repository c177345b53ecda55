//! `/api/v1/jobs`: job records from the engine, deleting and rolling back.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use patchdeck_proto::lpa::{ErrorCode, JobDeleted, JobList, JobQuery, RollbackAccepted};
use uuid::Uuid;

use super::query;
use crate::api::error::{accepted, ok};
use crate::api::{ApiFailure, ApiResult, ApiState, RequestedBy};
use crate::jobs::JobRequest;

/// `GET /api/v1/jobs`: newest first; `total` counts every job with the status asked for.
pub async fn list_jobs(State(state): State<ApiState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let query: JobQuery = query(raw.as_deref())?;
    let mut jobs = state.engine().list(query.status, usize::MAX);
    let total = jobs.len() as u64;
    jobs.truncate(query.limit as usize);
    Ok(ok(JobList { jobs, total }))
}

/// `GET /api/v1/jobs/{id}`.
pub async fn get_job(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = job_id(&id)?;
    Ok(ok(state.engine().get(id)?))
}

/// `DELETE /api/v1/jobs/{id}`: finished jobs only.
pub async fn delete_job(State(state): State<ApiState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = job_id(&id)?;
    state.engine().delete(id).map_err(ApiFailure::from_delete)?;
    Ok(ok(JobDeleted::new(id)))
}

/// `POST /api/v1/jobs/{id}/rollback`: a new exclusive job restoring what job `id` changed.
pub async fn rollback_job(
    State(state): State<ApiState>,
    requested_by: RequestedBy,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = job_id(&id)?;
    let job = state.engine().submit_as(JobRequest::Rollback { job_id: id }, requested_by.0).await?;
    Ok(accepted(RollbackAccepted::new(job.job_id, id)))
}

fn job_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|e| {
        ApiFailure::new(ErrorCode::InvalidJobId, format!("`{raw}` is not a job id (a UUID): {e}"))
            .with_details(serde_json::json!({ "field": "id" }))
    })
}
