//! The `data` of the `202 Accepted` answers: every asynchronous endpoint
//! creates a job and says so with one of these (contract §3.3).
//!
//! `status` is always `pending` at creation. `packages` and `package` are
//! both always present, one of them `null`, as the upstream agent emits them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::jobs::{JobOperation, JobStatus};

/// The `data` of `202` from `POST /api/v1/packages` (install),
/// `PUT /api/v1/packages/{name}` (update; self-update for `linux-patch-api`),
/// `DELETE /api/v1/packages/{name}` (remove) and `POST /api/v1/patches/apply`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAccepted {
    /// The new job; follow it with `GET /api/v1/jobs/{id}` or the WebSocket.
    pub job_id: Uuid,
    /// `pending`.
    pub status: JobStatus,
    /// `install`, `update`, `self_update`, `remove` or `patch_apply`.
    pub operation: JobOperation,
    /// Install and patch apply: the package names asked for (`[]` for
    /// "every pending update"). `null` for single-package operations.
    /// (Upstream sent `["<n> packages"]` for patch apply; we send the names.)
    #[serde(default)]
    pub packages: Option<Vec<String>>,
    /// Update and remove: the package name. `null` otherwise.
    #[serde(default)]
    pub package: Option<String>,
    /// Patch apply only: how many packages were named (`0` = all). From the
    /// upstream docs; omitted for other operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_count: Option<u64>,
    /// Patch apply only: whether a reboot may follow. From the upstream docs;
    /// omitted for other operations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_scheduled: Option<bool>,
}

impl JobAccepted {
    /// For `POST /api/v1/packages`.
    pub fn install(job_id: Uuid, names: Vec<String>) -> Self {
        Self::base(job_id, JobOperation::Install, Some(names), None)
    }

    /// For `PUT /api/v1/packages/{name}`; `operation` is `update`, or
    /// `self_update` for the agent's own package.
    pub fn update(job_id: Uuid, operation: JobOperation, name: String) -> Self {
        Self::base(job_id, operation, None, Some(name))
    }

    /// For `DELETE /api/v1/packages/{name}`.
    pub fn remove(job_id: Uuid, name: String) -> Self {
        Self::base(job_id, JobOperation::Remove, None, Some(name))
    }

    /// For `POST /api/v1/patches/apply`; `names` empty means all.
    pub fn patch_apply(job_id: Uuid, names: Vec<String>, reboot_scheduled: bool) -> Self {
        let count = names.len() as u64;
        JobAccepted {
            packages_count: Some(count),
            reboot_scheduled: Some(reboot_scheduled),
            ..Self::base(job_id, JobOperation::PatchApply, Some(names), None)
        }
    }

    fn base(job_id: Uuid, operation: JobOperation, packages: Option<Vec<String>>, package: Option<String>) -> Self {
        JobAccepted {
            job_id,
            status: JobStatus::Pending,
            operation,
            packages,
            package,
            packages_count: None,
            reboot_scheduled: None,
        }
    }
}

/// The `data` of `202` from `POST /api/v1/jobs/{id}/rollback`. The rollback
/// runs in exclusive mode: no other job is admitted until it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackAccepted {
    /// The new rollback job.
    pub job_id: Uuid,
    /// `pending`.
    pub status: JobStatus,
    /// `rollback`.
    pub operation: JobOperation,
    /// The job being rolled back.
    pub original_job_id: Uuid,
    /// Always `true`.
    pub exclusive_mode: bool,
}

impl RollbackAccepted {
    /// A pending, exclusive rollback of `original_job_id`.
    pub fn new(job_id: Uuid, original_job_id: Uuid) -> Self {
        RollbackAccepted {
            job_id,
            status: JobStatus::Pending,
            operation: JobOperation::Rollback,
            original_job_id,
            exclusive_mode: true,
        }
    }
}

/// The `data` of `202` from `POST /api/v1/system/reboot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebootAccepted {
    /// The reboot job.
    pub job_id: Uuid,
    /// `pending`.
    pub status: JobStatus,
    /// `reboot`.
    pub operation: JobOperation,
    /// When the reboot will happen: now + `delay_seconds`.
    pub scheduled_at: Timestamp,
    /// The delay asked for.
    pub delay_seconds: u64,
    /// Whether active jobs were overridden.
    pub force: bool,
}

impl RebootAccepted {
    /// A pending reboot at `scheduled_at`.
    pub fn new(job_id: Uuid, scheduled_at: Timestamp, delay_seconds: u64, force: bool) -> Self {
        RebootAccepted {
            job_id,
            status: JobStatus::Pending,
            operation: JobOperation::Reboot,
            scheduled_at,
            delay_seconds,
            force,
        }
    }
}
