//! `/health`, `/api/v1/system/*`: host facts, the reboot job and service status.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use jiff::Timestamp;
use patchdeck_pkg::exec::Cmd;
use patchdeck_proto::lpa::jobs::{JobOperation, JobStatus};
use patchdeck_proto::lpa::validate::validate_service_name;
use patchdeck_proto::lpa::{
    CacheStatus, ErrorCode, Health, HealthStatus, RebootAccepted, RebootRequest, ServiceStatus, SystemInfo,
};

use super::optional;
use crate::api::error::{accepted, ok};
use crate::api::{ApiFailure, ApiResult, ApiState, RequestedBy};
use crate::jobs::JobRequest;

/// The package index counts as fresh for this long (`/health`'s `cache_status`).
pub const CACHE_FRESH_FOR: Duration = Duration::from_secs(24 * 3600);

/// `GET /api/v1/system/info` (rate-limit exempt).
pub async fn get_system_info(State(state): State<ApiState>) -> ApiResult<Response> {
    let root = state.config().host_root.clone();
    let os = tokio::task::spawn_blocking(move || patchdeck_pkg::detect::os_info(&root))
        .await
        .map_err(|e| ApiFailure::new(ErrorCode::SystemInfoError, format!("could not read the OS release: {e}")))?;
    let uname = rustix::system::uname();
    let snapshot = state.inventory().snapshot();
    let last_update_apply = state
        .engine()
        .list(Some(JobStatus::Completed), usize::MAX)
        .into_iter()
        .filter(|j| matches!(j.operation, JobOperation::PatchApply | JobOperation::Update | JobOperation::Install))
        .filter_map(|j| j.completed_at)
        .max();
    Ok(ok(SystemInfo {
        hostname: uname.nodename().to_string_lossy().into_owned(),
        os: os.pretty_name.clone().unwrap_or_else(|| os.id.clone()),
        os_version: os.version_id.clone().unwrap_or_default(),
        kernel: uname.release().to_string_lossy().into_owned(),
        architecture: uname.machine().to_string_lossy().into_owned(),
        last_update_check: snapshot.last_refresh,
        last_update_apply,
        pending_reboot: snapshot.reboot.required,
    }))
}

/// `GET /health` and `GET /api/v1/health` (rate-limit exempt). Always 200; `degraded` when the
/// inventory could not be read. A stale package index makes the agent read its inventory again.
pub async fn get_health(State(state): State<ApiState>) -> ApiResult<Response> {
    let inventory = state.inventory();
    let snapshot = inventory.snapshot();
    let cache_status = if inventory.last_error().is_some() {
        CacheStatus::Failed
    } else {
        match snapshot.last_refresh {
            None => CacheStatus::Unknown,
            Some(t) if Duration::try_from(Timestamp::now().duration_since(t)).unwrap_or_default() < CACHE_FRESH_FOR => {
                CacheStatus::Fresh
            }
            Some(_) => CacheStatus::Stale,
        }
    };
    if cache_status == CacheStatus::Stale {
        inventory.request_refresh();
    }
    let uptime_path = state.config().host_root.join("proc/uptime");
    let uptime_seconds = tokio::fs::read_to_string(&uptime_path)
        .await
        .ok()
        .and_then(|text| text.split_whitespace().next().and_then(|s| s.parse::<f64>().ok()))
        .map_or_else(|| state.api_uptime().as_secs(), |s| s as u64);
    Ok(ok(Health {
        status: if cache_status == CacheStatus::Failed { HealthStatus::Degraded } else { HealthStatus::Healthy },
        uptime_seconds,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        last_cache_update: snapshot.last_refresh,
        cache_status,
        crl_status: None,
        crl_age_seconds: None,
        crl_next_update: None,
        gpg_key_status: None,
        gpg_key_expires_at: None,
    }))
}

/// `POST /api/v1/system/reboot` (body optional).
pub async fn create_reboot(
    State(state): State<ApiState>,
    requested_by: RequestedBy,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let request: RebootRequest = optional(&headers, body).await?;
    if let Some(reason) = &request.reason {
        tracing::info!(reason, delay_seconds = request.delay_seconds, force = request.force, "reboot requested");
    }
    let delay = Duration::from_secs(request.delay_seconds);
    // The contract's `reason` is shown to logged-in users (`wall`) as well as logged.
    let message = request.reason.clone().filter(|r| !r.trim().is_empty());
    let job =
        state.engine().submit_as(JobRequest::Reboot { delay, force: request.force, message }, requested_by.0).await?;
    let scheduled_at = job.created_at.checked_add(delay).unwrap_or(job.created_at);
    Ok(accepted(RebootAccepted::new(job.job_id, scheduled_at, request.delay_seconds, request.force)))
}

/// `GET /api/v1/system/services/{name}`: `systemctl show`.
pub async fn get_service(State(state): State<ApiState>, Path(name): Path<String>) -> ApiResult<Response> {
    validate_service_name("name", &name).map_err(|e| {
        ApiFailure::new(ErrorCode::InvalidServiceName, e.to_string()).with_details(serde_json::json!({"field": "name"}))
    })?;
    let cmd = Cmd::new(state.config().systemctl.to_string_lossy(), state.config().systemctl_timeout).args([
        "show",
        "--no-pager",
        "--property=Id,Description,LoadState,ActiveState,SubState,UnitFileState,MainPID",
        "--",
        name.as_str(),
    ]);
    let output = tokio::task::spawn_blocking(move || cmd.run_ok(&[0], None).map_err(|e| e.to_string()))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|e| {
            ApiFailure::new(ErrorCode::ServiceStatusError, format!("could not ask systemd about {name}: {e}"))
        })?;
    let props: HashMap<&str, &str> = output.stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let prop = |key: &str| props.get(key).copied().unwrap_or("").to_owned();
    if props.is_empty() || prop("LoadState") == "not-found" {
        return Err(ApiFailure::new(ErrorCode::ServiceNotFound, format!("there is no service {name}"))
            .with_details(serde_json::json!({ "name": name })));
    }
    let active_state = prop("ActiveState");
    let sub_state = prop("SubState");
    let main_pid = props.get("MainPID").and_then(|p| p.parse::<u32>().ok()).filter(|p| *p != 0);
    Ok(ok(ServiceStatus {
        healthy: active_state == "active" && sub_state == "running",
        display_name: prop("Description"),
        name,
        active_state,
        sub_state,
        load_state: prop("LoadState"),
        enabled_state: prop("UnitFileState"),
        main_pid,
    }))
}
