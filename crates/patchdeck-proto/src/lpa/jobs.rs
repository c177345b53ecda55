//! Job states and operations (contract §3.4).

use serde::{Deserialize, Serialize};

/// Where a job is in its life: `pending → running → completed | failed | cancelled | timed_out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted and waiting for a worker. (Managers may say `queued`.)
    #[serde(alias = "queued")]
    Pending,
    Running,
    /// Finished successfully. (Managers may say `succeeded`.)
    #[serde(alias = "succeeded")]
    Completed,
    Failed,
    Cancelled,
    /// Ran past its timeout and was stopped. The upstream REST API spelled it
    /// `timedout` and its docs `timeout`; both are accepted.
    #[serde(alias = "timedout", alias = "timeout")]
    TimedOut,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::Cancelled,
        JobStatus::TimedOut,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::TimedOut => "timed_out",
        }
    }

    /// Parses the wire spelling or one of its legacy forms.
    pub fn parse(s: &str) -> Option<JobStatus> {
        match s {
            "queued" => Some(JobStatus::Pending),
            "succeeded" => Some(JobStatus::Completed),
            "timedout" | "timeout" => Some(JobStatus::TimedOut),
            _ => JobStatus::ALL.into_iter().find(|st| st.as_str() == s),
        }
    }

    /// Whether the job has ended (no further state changes).
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Pending | JobStatus::Running)
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOperation {
    Install,
    Update,
    Remove,
    /// Apply pending updates. The upstream REST API spelled it `patchapply`.
    #[serde(alias = "patchapply")]
    PatchApply,
    Reboot,
    /// The agent updating itself. The upstream REST API spelled it `selfupdate`.
    #[serde(alias = "selfupdate")]
    SelfUpdate,
    Rollback,
}

impl JobOperation {
    pub const ALL: [JobOperation; 7] = [
        JobOperation::Install,
        JobOperation::Update,
        JobOperation::Remove,
        JobOperation::PatchApply,
        JobOperation::Reboot,
        JobOperation::SelfUpdate,
        JobOperation::Rollback,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOperation::Install => "install",
            JobOperation::Update => "update",
            JobOperation::Remove => "remove",
            JobOperation::PatchApply => "patch_apply",
            JobOperation::Reboot => "reboot",
            JobOperation::SelfUpdate => "self_update",
            JobOperation::Rollback => "rollback",
        }
    }
}

/// One line of `GET /api/v1/jobs` (contract §3.4). Optional fields are
/// omitted when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    pub job_id: uuid::Uuid,
    pub operation: JobOperation,
    pub status: JobStatus,
    pub created_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<jiff::Timestamp>,
    /// What the job works on: package names or `name=version` specs.
    #[serde(default)]
    pub packages: Vec<String>,
    /// A stable job error code (`PKG_MANAGER_ERROR`, `LOCKED`, …); readers
    /// treat codes they do not know as `UNKNOWN_ERROR`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

/// `GET /api/v1/jobs/{id}` (contract §3.4). Optional fields are omitted when
/// absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDetail {
    pub job_id: uuid::Uuid,
    pub operation: JobOperation,
    pub status: JobStatus,
    /// 0–100.
    pub progress: u8,
    pub message: String,
    pub created_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<jiff::Timestamp>,
    #[serde(default)]
    pub packages: Vec<String>,
    /// The job's log, oldest line first.
    #[serde(default)]
    pub logs: Vec<String>,
    /// What went wrong, for a human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Exit code of the last package-manager command, where one ran to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_stderr: Option<String>,
    /// For a rollback: the job it rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_job_id: Option<uuid::Uuid>,
    /// Whether the job runs alone (rollbacks): other mutating requests are refused meanwhile.
    #[serde(default)]
    pub exclusive_mode: bool,
}

impl JobDetail {
    /// The list view of this job.
    pub fn summary(&self) -> JobSummary {
        JobSummary {
            job_id: self.job_id,
            operation: self.operation,
            status: self.status,
            created_at: self.created_at,
            completed_at: self.completed_at,
            packages: self.packages.clone(),
            error_code: self.error_code.clone(),
        }
    }
}

#[cfg(test)]
mod job_record_tests {
    use super::*;

    fn keys(value: &serde_json::Value) -> Vec<&str> {
        let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    fn minimal() -> JobDetail {
        JobDetail {
            job_id: uuid::Uuid::nil(),
            operation: JobOperation::PatchApply,
            status: JobStatus::Pending,
            progress: 0,
            message: "waiting to run".into(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            completed_at: None,
            packages: Vec::new(),
            logs: Vec::new(),
            error: None,
            error_code: None,
            exit_code: None,
            command_stdout: None,
            command_stderr: None,
            rollback_job_id: None,
            exclusive_mode: false,
        }
    }

    #[test]
    fn absent_optional_fields_are_omitted() {
        let detail = serde_json::to_value(minimal()).unwrap();
        assert_eq!(
            keys(&detail),
            [
                "created_at",
                "exclusive_mode",
                "job_id",
                "logs",
                "message",
                "operation",
                "packages",
                "progress",
                "status"
            ]
        );
        let summary = serde_json::to_value(minimal().summary()).unwrap();
        assert_eq!(keys(&summary), ["created_at", "job_id", "operation", "packages", "status"]);
    }

    #[test]
    fn every_field_has_its_contract_name_and_round_trips() {
        let full = JobDetail {
            status: JobStatus::TimedOut,
            completed_at: Some(jiff::Timestamp::UNIX_EPOCH),
            packages: vec!["hello".into()],
            logs: vec!["line".into()],
            error: Some("e".into()),
            error_code: Some("JOB_TIMEOUT".into()),
            exit_code: Some(100),
            command_stdout: Some("out".into()),
            command_stderr: Some("err".into()),
            rollback_job_id: Some(uuid::Uuid::nil()),
            exclusive_mode: true,
            ..minimal()
        };
        let value = serde_json::to_value(&full).unwrap();
        assert_eq!(
            keys(&value),
            [
                "command_stderr",
                "command_stdout",
                "completed_at",
                "created_at",
                "error",
                "error_code",
                "exclusive_mode",
                "exit_code",
                "job_id",
                "logs",
                "message",
                "operation",
                "packages",
                "progress",
                "rollback_job_id",
                "status",
            ]
        );
        assert_eq!((value["status"].as_str(), value["operation"].as_str()), (Some("timed_out"), Some("patch_apply")));
        assert_eq!(serde_json::from_value::<JobDetail>(value).unwrap(), full);
        let summary = serde_json::to_value(full.summary()).unwrap();
        assert_eq!(
            keys(&summary),
            ["completed_at", "created_at", "error_code", "job_id", "operation", "packages", "status"]
        );
    }

    #[test]
    fn legacy_spellings_are_read() {
        let mut legacy = serde_json::to_value(minimal().summary()).unwrap();
        legacy["status"] = "timedout".into();
        legacy["operation"] = "patchapply".into();
        let read: JobSummary = serde_json::from_value(legacy).unwrap();
        assert_eq!((read.status, read.operation), (JobStatus::TimedOut, JobOperation::PatchApply));
    }
}
