//! `/api/v1/packages`: reads from the inventory snapshot, changes through the job engine.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use patchdeck_pkg::{PackageName, PackageSpec, PackageVersion};
use patchdeck_proto::lpa::jobs::JobOperation;
use patchdeck_proto::lpa::validate::validate_package_name;
use patchdeck_proto::lpa::{
    ErrorCode, InstallOptions, InstallRequest, JobAccepted, PackageList, PackageQuery, RemoveQuery, UpdateRequest,
};

use super::{optional, query, required};
use crate::api::error::{accepted, ok};
use crate::api::{ApiFailure, ApiResult, ApiState, RequestedBy, SELF_PACKAGE_NAMES};
use crate::jobs::JobRequest;

/// `GET /api/v1/packages`: installed packages, filtered, sorted and paged (`total` counts every match).
pub async fn list_packages(State(state): State<ApiState>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let query: PackageQuery = query(raw.as_deref())?;
    let inventory = state.inventory();
    let (packages, total) = inventory.snapshot().query(&query, inventory.version_format());
    Ok(ok(PackageList { packages, total }))
}

/// `GET /api/v1/packages/{name}`.
pub async fn get_package(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult<Response> {
    validate_package_name("name", &name)?;
    match state.inventory().snapshot().package(&name) {
        Some(package) => Ok(ok(package)),
        None => Err(ApiFailure::new(ErrorCode::PkgNotFound, format!("package {name} is not installed"))
            .with_details(serde_json::json!({ "name": name }))),
    }
}

/// `POST /api/v1/packages`: install, each package optionally at an exact version.
pub async fn create_packages(
    State(state): State<ApiState>,
    requested_by: RequestedBy,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let request: InstallRequest = required(&headers, body).await?;
    refuse_options(&request.options(), "options")?;
    let mut specs = Vec::with_capacity(request.packages.len());
    for (i, p) in request.packages.iter().enumerate() {
        specs.push(spec(&format!("packages[{i}]"), &p.name, p.version.as_deref())?);
    }
    let names = request.packages.iter().map(|p| p.name.clone()).collect();
    let job = state.engine().submit_as(JobRequest::Install { packages: specs }, requested_by.0).await?;
    Ok(accepted(JobAccepted::install(job.job_id, names)))
}

/// `PUT /api/v1/packages/{name}`: update to `version` or to the current candidate. The agent's
/// own package name means a self-update.
pub async fn update_package(
    State(state): State<ApiState>,
    requested_by: RequestedBy,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    validate_package_name("name", &name)?;
    let request: UpdateRequest = optional(&headers, body).await?;
    refuse_options(&request.options.unwrap_or_default(), "options")?;
    let (job_request, operation) = if SELF_PACKAGE_NAMES.contains(&name.as_str()) {
        (JobRequest::SelfUpdate { target_version: request.version.clone() }, JobOperation::SelfUpdate)
    } else {
        let spec = spec("name", &name, request.version.as_deref())?;
        (JobRequest::Update { packages: vec![spec] }, JobOperation::Update)
    };
    let job = state.engine().submit_as(job_request, requested_by.0).await?;
    Ok(accepted(JobAccepted::update(job.job_id, operation, name)))
}

/// `DELETE /api/v1/packages/{name}`.
pub async fn delete_package(
    State(state): State<ApiState>,
    requested_by: RequestedBy,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    validate_package_name("name", &name)?;
    let remove: RemoveQuery = query(raw.as_deref())?;
    if remove.purge {
        return Err(ApiFailure::validation("purge", "purging is not supported by this agent; remove without purge"));
    }
    if remove.force {
        return Err(ApiFailure::validation("force", "forced removal is not supported by this agent"));
    }
    let package = PackageName::parse(&name).map_err(|e| ApiFailure::validation("name", e))?;
    let job = state.engine().submit_as(JobRequest::Remove { packages: vec![package] }, requested_by.0).await?;
    Ok(accepted(JobAccepted::remove(job.job_id, name)))
}

fn spec(field: &str, name: &str, version: Option<&str>) -> ApiResult<PackageSpec> {
    let name = PackageName::parse(name).map_err(|e| ApiFailure::validation(field, e))?;
    let version = version
        .map(PackageVersion::parse)
        .transpose()
        .map_err(|e| ApiFailure::validation(&format!("{field}.version"), e))?;
    Ok(PackageSpec::new(name, version))
}

/// The install options the engine does not implement are refused rather than ignored.
fn refuse_options(options: &InstallOptions, field: &str) -> ApiResult<()> {
    for (set, name) in [
        (options.force, "force"),
        (options.no_recommends, "no_recommends"),
        (options.allow_downgrade, "allow_downgrade"),
    ] {
        if set {
            return Err(ApiFailure::validation(&format!("{field}.{name}"), "is not supported by this agent yet"));
        }
    }
    Ok(())
}
