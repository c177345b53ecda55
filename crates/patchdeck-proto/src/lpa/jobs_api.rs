//! Request and response bodies of the job endpoints (contract §3.3,
//! endpoints 11–14) other than the job records themselves: `JobSummary` and
//! `JobDetail` live in [`super::jobs`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::jobs::JobStatus;
use super::validate::{validate_limit, Validate, ValidationError};

/// The `data` of `GET /api/v1/jobs`: newest first. Generic over the item so
/// that it carries `jobs::JobSummary` without this module depending on it:
/// `JobList<JobSummary>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobList<J> {
    /// The jobs, newest first, at most `limit`.
    pub jobs: Vec<J>,
    /// How many jobs match the filter in all.
    pub total: u64,
}

/// The query string of `GET /api/v1/jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs in this state. Legacy spellings are accepted
    /// (`timedout`, `timeout`, `queued`, `succeeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// At most this many jobs, 1 to [`JobQuery::MAX_LIMIT`].
    #[serde(default = "JobQuery::default_limit")]
    pub limit: u32,
}

impl JobQuery {
    /// `limit` when absent.
    pub const DEFAULT_LIMIT: u32 = 50;
    /// Largest `limit` accepted.
    pub const MAX_LIMIT: u32 = 1000;

    fn default_limit() -> u32 {
        Self::DEFAULT_LIMIT
    }
}

impl Default for JobQuery {
    fn default() -> Self {
        JobQuery { status: None, limit: Self::DEFAULT_LIMIT }
    }
}

impl Validate for JobQuery {
    fn validate(&self) -> Result<(), ValidationError> {
        validate_limit("limit", self.limit, Self::MAX_LIMIT)
    }
}

/// The `data` of `DELETE /api/v1/jobs/{id}`: the record of a terminal job
/// was removed. (Deleting a pending or running job is `409
/// DELETE_NOT_ALLOWED`; the upstream docs' "cancel" variant is not ours.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDeleted {
    /// Always `true`.
    pub deleted: bool,
    /// The job removed.
    pub job_id: Uuid,
}

impl JobDeleted {
    /// `{deleted: true, job_id}`.
    pub fn new(job_id: Uuid) -> Self {
        JobDeleted { deleted: true, job_id }
    }
}
