//! Patch deployments, the frozen plan of each of their hosts, and per-group orchestration
//! policy (approval, post-patch health checks).
//!
//! **Who writes what.** A deployment's hosts move through their states in the deployment
//! engine, which runs as one job per deployment (see `jobs.rs`: never twice at once). API
//! actions (approve, cancel, retry, roll back) change the deployment row with conditional
//! updates and wake the engine. Every write of a host row names the state it expects to leave
//! ([`Store::save_deployment_host`]), so a write based on a stale read changes nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::error::{Error, Result, ResultExt};
use crate::hosts::{scope_condition, scope_sql, Scope};
use crate::sql::{ms, prefixed, to_json, RowExt, SqlBuilder};
use crate::types::{text_enum, DeploymentId, GroupId, HostId, Page, Paging, UserId};
use crate::Store;

text_enum! {
    /// Where a deployment is.
    DeploymentStatus ("deployment status") {
        /// Dry runs are out; the plan is not complete yet.
        Planning = "planning",
        /// The plan waits for an approver.
        AwaitingApproval = "awaiting_approval",
        /// Rings are being applied.
        Running = "running",
        /// A ring fell below its success threshold; later rings did not start.
        Halted = "halted",
        /// Every host succeeded (or had nothing to do).
        Succeeded = "succeeded",
        /// Some hosts failed, the others succeeded.
        PartiallyFailed = "partially_failed",
        /// No host succeeded.
        Failed = "failed",
        /// Cancelled by a user.
        Cancelled = "cancelled",
        /// Its hosts are being returned to the versions they had before.
        RollingBack = "rolling_back",
        /// Rolled back.
        RolledBack = "rolled_back",
    }
}

impl DeploymentStatus {
    /// Whether nothing more happens without a user (retry, rollback).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Planning | Self::AwaitingApproval | Self::Running | Self::RollingBack)
    }
}

text_enum! {
    /// Where one host of a deployment is.
    HostRunState ("deployment host state") {
        /// Its dry run is out.
        Planning = "planning",
        /// Planned; waits for its ring (or its turn).
        Queued = "queued",
        /// Waits for its next maintenance window.
        WaitingForWindow = "waiting_for_window",
        /// Its packages are being installed.
        Running = "running",
        /// Rebooting; waits for a new boot id.
        Rebooting = "rebooting",
        /// Post-patch health checks are running.
        Verifying = "verifying",
        /// Returning to the versions it had before.
        RollingBack = "rolling_back",
        /// Patched (and healthy).
        Succeeded = "succeeded",
        /// Failed.
        Failed = "failed",
        /// Not patched: nothing to do, or a pre-patch hook said no.
        Skipped = "skipped",
        /// Cancelled before it started.
        Cancelled = "cancelled",
        /// Rolled back to the versions it had before.
        RolledBack = "rolled_back",
    }
}

impl HostRunState {
    /// Whether the host is done with this deployment (until a retry or rollback).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Skipped | Self::Cancelled | Self::RolledBack)
    }
}

text_enum! {
    /// When a deployment applies.
    Schedule ("schedule") {
        /// As soon as the plan is ready (and approved).
        Now = "now",
        /// In each host's next maintenance window.
        Window = "window",
    }
}

text_enum! {
    /// Whether hosts reboot after patching.
    RebootPolicy ("reboot policy") {
        Never = "never",
        /// When the host says a reboot is needed.
        IfNeeded = "if_needed",
        Always = "always",
    }
}

/// One package of a host's plan: exactly this version is installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedPackage {
    pub name: String,
    pub arch: String,
    /// The version installed when the plan was made.
    pub from: String,
    /// The version the plan installs.
    pub to: String,
}

/// A stage of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RingSpec {
    /// Shown to users (`canary`, `25%`, `rest`).
    pub name: String,
    /// Share of the ring's hosts that must succeed for the next ring to start (0..=1).
    pub success_threshold: f64,
    /// Time to wait after the ring finished before the next one starts.
    pub soak_secs: u64,
    /// The group whose hosts the ring took, if it was a group ring.
    #[serde(default)]
    pub group_id: Option<i64>,
    /// The cumulative percentage the ring took, if it was a percentage ring.
    #[serde(default)]
    pub percent: Option<u8>,
}

/// A deployment to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    pub name: String,
    pub status: DeploymentStatus,
    /// What was asked for, as the API received it (hosts, groups, filter).
    pub target: serde_json::Value,
    /// The selection of updates, as the API received it.
    pub selection: serde_json::Value,
    pub schedule: Schedule,
    pub reboot_policy: RebootPolicy,
    pub reboot_delay_secs: u64,
    pub rollback_on_failure: bool,
    pub rings: Vec<RingSpec>,
    pub requires_approval: bool,
    pub created_by: Option<UserId>,
}

/// A host of a deployment to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeploymentHost {
    pub host: HostId,
    pub ring: u32,
    pub state: HostRunState,
    pub plan: Vec<PlannedPackage>,
    /// Why the host is skipped from the start (nothing to do).
    pub error_code: Option<String>,
    pub error_message: Option<String>,
}

/// A deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub name: String,
    pub status: DeploymentStatus,
    pub target: serde_json::Value,
    pub selection: serde_json::Value,
    pub schedule: Schedule,
    pub reboot_policy: RebootPolicy,
    pub reboot_delay_secs: u64,
    pub rollback_on_failure: bool,
    pub rings: Vec<RingSpec>,
    /// The ring being applied (index into `rings`).
    pub current_ring: u32,
    /// When the current ring's last host finished (soak time counts from there).
    pub ring_finished_at: Option<Timestamp>,
    pub requires_approval: bool,
    pub approved_by: Option<UserId>,
    pub approved_at: Option<Timestamp>,
    /// Why it halted, failed or was cancelled.
    pub reason: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// One host of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentHost {
    pub deployment_id: DeploymentId,
    pub host_id: HostId,
    /// The host's name (from the host row).
    pub hostname: String,
    pub ring: u32,
    pub state: HostRunState,
    pub plan: Vec<PlannedPackage>,
    /// The dry run's answer, or why there is none.
    pub preview: Option<serde_json::Value>,
    pub preview_command: Option<Uuid>,
    pub apply_command: Option<Uuid>,
    pub reboot_command: Option<Uuid>,
    pub health_command: Option<Uuid>,
    pub rollback_command: Option<Uuid>,
    /// The host's boot id when the reboot was asked for.
    pub boot_id_before: Option<String>,
    /// Apply attempts so far.
    pub attempts: u32,
    /// Not before this time (splay in the window, retry backoff, reboot wait).
    pub not_before: Option<Timestamp>,
    /// The end of the window it runs in.
    pub window_end: Option<Timestamp>,
    pub reboot_required: bool,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// Which deployments [`Store::list_deployments`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentFilter {
    /// Only deployments with at least one host in this scope.
    pub scope: Scope,
    pub status: Option<DeploymentStatus>,
    pub paging: Paging,
}

/// Orchestration policy of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GroupPolicy {
    /// Deployments touching the group's hosts need an approver.
    pub require_approval: bool,
    /// systemd units that must be active after patching.
    pub health_units: Vec<String>,
    /// Probes the agent runs after patching (JSON of `patchdeck_proto::agent::Probe`).
    pub health_probes: Vec<serde_json::Value>,
}

const COLUMNS: &str = "id, name, status, target, selection, schedule, reboot_policy, reboot_delay_secs, \
    rollback_on_failure, rings, current_ring, ring_finished_at, requires_approval, approved_by, approved_at, reason, \
    created_by, created_at, started_at, finished_at, updated_at";
const HOST_COLUMNS: &str = "deployment_id, host_id, ring, state, plan, preview, preview_command, apply_command, \
    reboot_command, health_command, rollback_command, boot_id_before, attempts, not_before, window_end, \
    reboot_required, error_code, error_message, started_at, finished_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Deployment> {
    Ok(Deployment {
        id: DeploymentId(row.int("id")?),
        name: row.text("name")?,
        status: row.parse("status")?,
        target: row.json("target")?,
        selection: row.json("selection")?,
        schedule: row.parse("schedule")?,
        reboot_policy: row.parse("reboot_policy")?,
        reboot_delay_secs: u64::try_from(row.int("reboot_delay_secs")?).unwrap_or(0),
        rollback_on_failure: row.flag("rollback_on_failure")?,
        rings: row.json("rings")?,
        current_ring: row.count("current_ring")?,
        ring_finished_at: row.opt_ts("ring_finished_at")?,
        requires_approval: row.flag("requires_approval")?,
        approved_by: row.opt_int("approved_by")?.map(UserId),
        approved_at: row.opt_ts("approved_at")?,
        reason: row.opt_text("reason")?,
        created_by: row.opt_int("created_by")?.map(UserId),
        created_at: row.ts("created_at")?,
        started_at: row.opt_ts("started_at")?,
        finished_at: row.opt_ts("finished_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

fn opt_uuid(row: &AnyRow, column: &str) -> Result<Option<Uuid>> {
    row.opt_text(column)?
        .map(|text| Uuid::parse_str(&text).map_err(|_| Error::Corrupt(format!("column {column} holds {text:?}"))))
        .transpose()
}

fn host_from_row(row: &AnyRow) -> Result<DeploymentHost> {
    Ok(DeploymentHost {
        deployment_id: DeploymentId(row.int("deployment_id")?),
        host_id: HostId(row.int("host_id")?),
        hostname: row.text("hostname")?,
        ring: row.count("ring")?,
        state: row.parse("state")?,
        plan: row.json("plan")?,
        preview: row.opt_json("preview")?,
        preview_command: opt_uuid(row, "preview_command")?,
        apply_command: opt_uuid(row, "apply_command")?,
        reboot_command: opt_uuid(row, "reboot_command")?,
        health_command: opt_uuid(row, "health_command")?,
        rollback_command: opt_uuid(row, "rollback_command")?,
        boot_id_before: row.opt_text("boot_id_before")?,
        attempts: row.count("attempts")?,
        not_before: row.opt_ts("not_before")?,
        window_end: row.opt_ts("window_end")?,
        reboot_required: row.flag("reboot_required")?,
        error_code: row.opt_text("error_code")?,
        error_message: row.opt_text("error_message")?,
        started_at: row.opt_ts("started_at")?,
        finished_at: row.opt_ts("finished_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

fn host_select() -> String {
    format!(
        "SELECT {}, h.hostname FROM deployment_hosts dh JOIN hosts h ON h.id = dh.host_id",
        prefixed("dh", HOST_COLUMNS)
    )
}

fn opt_ms(ts: Option<Timestamp>) -> Option<i64> {
    ts.map(ms)
}

fn opt_id(id: Option<Uuid>) -> Option<String> {
    id.map(|id| id.to_string())
}

impl Store {
    /// Creates a deployment and its hosts in one transaction.
    pub async fn create_deployment(
        &self,
        new: &NewDeployment,
        hosts: &[NewDeploymentHost],
        now: Timestamp,
    ) -> Result<Deployment> {
        let name = new.name.trim();
        if name.is_empty() {
            return Err(Error::Invalid("deployment name is empty".into()));
        }
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO deployments (name, status, target, selection, schedule, reboot_policy, reboot_delay_secs, \
             rollback_on_failure, rings, requires_approval, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(new.status.as_str())
        .bind(to_json(&new.target, "target")?)
        .bind(to_json(&new.selection, "selection")?)
        .bind(new.schedule.as_str())
        .bind(new.reboot_policy.as_str())
        .bind(i64::try_from(new.reboot_delay_secs).map_err(|_| Error::Invalid("reboot delay is too large".into()))?)
        .bind(i64::from(new.rollback_on_failure))
        .bind(to_json(&new.rings, "rings")?)
        .bind(i64::from(new.requires_approval))
        .bind(new.created_by.map(|id| id.0))
        .bind(ms(now))
        .fetch_one(&mut *tx)
        .await
        .classify(&[], "user")?;
        let deployment = from_row(&row)?;
        for host in hosts {
            sqlx::query(
                "INSERT INTO deployment_hosts (deployment_id, host_id, ring, state, plan, error_code, error_message, \
                 finished_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(deployment.id.0)
            .bind(host.host.0)
            .bind(i64::from(host.ring))
            .bind(host.state.as_str())
            .bind(to_json(&host.plan, "plan")?)
            .bind(host.error_code.as_deref())
            .bind(host.error_message.as_deref())
            .bind(host.state.is_final().then(|| ms(now)))
            .bind(ms(now))
            .execute(&mut *tx)
            .await
            .classify(&[], "host")?;
        }
        tx.commit().await?;
        Ok(deployment)
    }

    /// The deployment with this id, regardless of scope.
    pub async fn get_deployment(&self, id: DeploymentId) -> Result<Option<Deployment>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM deployments WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// One page of deployments with at least one host in the filter's scope, newest first.
    pub async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Page<Deployment>> {
        let mut sql = SqlBuilder::default();
        if let Some(scoped) = scope_sql(&mut sql, &filter.scope) {
            sql.condition(format!(
                "EXISTS (SELECT 1 FROM deployment_hosts sdh JOIN hosts h ON h.id = sdh.host_id \
                 WHERE sdh.deployment_id = d.id AND {scoped})"
            ));
        }
        if let Some(status) = filter.status {
            let status = sql.arg(status.as_str());
            sql.condition(format!("d.status = {status}"));
        }
        self.fetch_page(sql, &prefixed("d", COLUMNS), "deployments d", "d.id DESC", filter.paging, from_row).await
    }

    /// Every host of a deployment, in ring then host order.
    pub async fn deployment_hosts(&self, id: DeploymentId) -> Result<Vec<DeploymentHost>> {
        let rows = sqlx::query(&format!("{} WHERE dh.deployment_id = $1 ORDER BY dh.ring, dh.host_id", host_select()))
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(host_from_row).collect()
    }

    /// One page of a deployment's hosts in `scope`, optionally in one state, in ring then host
    /// order.
    pub async fn list_deployment_hosts(
        &self,
        id: DeploymentId,
        scope: &Scope,
        state: Option<HostRunState>,
        paging: Paging,
    ) -> Result<Page<DeploymentHost>> {
        let mut sql = SqlBuilder::default();
        let deployment = sql.arg(id.0);
        sql.condition(format!("dh.deployment_id = {deployment}"));
        scope_condition(&mut sql, scope);
        if let Some(state) = state {
            let state = sql.arg(state.as_str());
            sql.condition(format!("dh.state = {state}"));
        }
        self.fetch_page(
            sql,
            &format!("{}, h.hostname", prefixed("dh", HOST_COLUMNS)),
            "deployment_hosts dh JOIN hosts h ON h.id = dh.host_id",
            "dh.ring, dh.host_id",
            paging,
            host_from_row,
        )
        .await
    }

    /// Writes a host row as the engine changed it, if it is still in `expected`; false (and
    /// nothing changes) when someone moved it meanwhile.
    pub async fn save_deployment_host(
        &self,
        host: &DeploymentHost,
        expected: HostRunState,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deployment_hosts SET state = $3, preview = $4, preview_command = $5, apply_command = $6, \
             reboot_command = $7, health_command = $8, rollback_command = $9, boot_id_before = $10, attempts = $11, \
             not_before = $12, window_end = $13, reboot_required = $14, error_code = $15, error_message = $16, \
             started_at = $17, finished_at = $18, updated_at = $19 \
             WHERE deployment_id = $1 AND host_id = $2 AND state = $20",
        )
        .bind(host.deployment_id.0)
        .bind(host.host_id.0)
        .bind(host.state.as_str())
        .bind(host.preview.as_ref().map(|preview| to_json(preview, "preview")).transpose()?)
        .bind(opt_id(host.preview_command))
        .bind(opt_id(host.apply_command))
        .bind(opt_id(host.reboot_command))
        .bind(opt_id(host.health_command))
        .bind(opt_id(host.rollback_command))
        .bind(host.boot_id_before.as_deref())
        .bind(i64::from(host.attempts))
        .bind(opt_ms(host.not_before))
        .bind(opt_ms(host.window_end))
        .bind(i64::from(host.reboot_required))
        .bind(host.error_code.as_deref())
        .bind(host.error_message.as_deref())
        .bind(opt_ms(host.started_at))
        .bind(opt_ms(host.finished_at))
        .bind(ms(now))
        .bind(expected.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Writes the engine's changes to a deployment (status, ring, times, reason) if its status
    /// is still `expected`; false when a user changed it meanwhile.
    pub async fn save_deployment(
        &self,
        deployment: &Deployment,
        expected: DeploymentStatus,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deployments SET status = $2, current_ring = $3, ring_finished_at = $4, reason = $5, \
             started_at = $6, finished_at = $7, updated_at = $8 WHERE id = $1 AND status = $9",
        )
        .bind(deployment.id.0)
        .bind(deployment.status.as_str())
        .bind(i64::from(deployment.current_ring))
        .bind(opt_ms(deployment.ring_finished_at))
        .bind(deployment.reason.as_deref())
        .bind(opt_ms(deployment.started_at))
        .bind(opt_ms(deployment.finished_at))
        .bind(ms(now))
        .bind(expected.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a deployment from one of `from` to `to` (a user's action), with a reason; the
    /// deployment after the change, or [`Error::Conflict`] naming its status.
    pub async fn transition_deployment(
        &self,
        id: DeploymentId,
        from: &[DeploymentStatus],
        to: DeploymentStatus,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<Deployment> {
        let states: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 5)).collect();
        let finished = if to.is_final() { "$3" } else { "NULL" };
        let sql = format!(
            "UPDATE deployments SET status = $2, reason = COALESCE($4, reason), finished_at = {finished}, \
             updated_at = $3 WHERE id = $1 AND status IN ({}) RETURNING {COLUMNS}",
            states.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(id.0).bind(to.as_str()).bind(ms(now)).bind(reason);
        for status in from {
            query = query.bind(status.as_str());
        }
        match query.fetch_optional(&self.pool).await? {
            Some(row) => from_row(&row),
            None => match self.get_deployment(id).await? {
                Some(deployment) => Err(Error::Conflict(format!("the deployment is {}", deployment.status))),
                None => Err(Error::NotFound("deployment")),
            },
        }
    }

    /// Records the approval of a deployment that awaits it and lets it run.
    pub async fn approve_deployment(&self, id: DeploymentId, by: UserId, now: Timestamp) -> Result<Deployment> {
        let row = sqlx::query(&format!(
            "UPDATE deployments SET status = 'running', approved_by = $2, approved_at = $3, started_at = $3, \
             updated_at = $3 WHERE id = $1 AND status = 'awaiting_approval' RETURNING {COLUMNS}"
        ))
        .bind(id.0)
        .bind(by.0)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => from_row(&row),
            None => match self.get_deployment(id).await? {
                Some(deployment) => Err(Error::Conflict(format!(
                    "the deployment is {}; only one awaiting approval can be approved",
                    deployment.status
                ))),
                None => Err(Error::NotFound("deployment")),
            },
        }
    }

    /// Moves the deployment's hosts in one of `from` to `to` (a retry: failed and rolled-back
    /// hosts → queued), clearing their error, attempts, timers and the commands that followed
    /// their last install (reboot, health check, rollback); returns how many moved.
    pub async fn reset_deployment_hosts(
        &self,
        id: DeploymentId,
        from: &[HostRunState],
        to: HostRunState,
        now: Timestamp,
    ) -> Result<u64> {
        let states: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 4)).collect();
        let sql = format!(
            "UPDATE deployment_hosts SET state = $2, attempts = 0, error_code = NULL, error_message = NULL, \
             not_before = NULL, finished_at = NULL, reboot_command = NULL, health_command = NULL, \
             rollback_command = NULL, updated_at = $3 WHERE deployment_id = $1 AND state IN ({})",
            states.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(id.0).bind(to.as_str()).bind(ms(now));
        for state in from {
            query = query.bind(state.as_str());
        }
        Ok(query.execute(&self.pool).await?.rows_affected())
    }

    /// How many of the deployment's hosts in `scope` are in each (ring, state).
    pub async fn deployment_host_counts(
        &self,
        id: DeploymentId,
        scope: &Scope,
    ) -> Result<Vec<(u32, HostRunState, u64)>> {
        let mut sql = SqlBuilder::default();
        let deployment = sql.arg(id.0);
        sql.condition(format!("dh.deployment_id = {deployment}"));
        scope_condition(&mut sql, scope);
        let where_clause = sql.where_clause();
        sql.push(&format!(
            "SELECT dh.ring, dh.state, COUNT(*) AS n FROM deployment_hosts dh JOIN hosts h ON h.id = dh.host_id\
             {where_clause} GROUP BY dh.ring, dh.state ORDER BY dh.ring, dh.state"
        ));
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((row.count("ring")?, row.parse("state")?, u64::try_from(row.int("n")?).unwrap_or(0))))
            .collect()
    }

    /// The deployments whose host row names this command (to wake them when it finishes).
    pub async fn deployments_for_command(&self, host: HostId, command: Uuid) -> Result<Vec<DeploymentId>> {
        let id = command.to_string();
        let rows = sqlx::query(
            "SELECT deployment_id FROM deployment_hosts WHERE host_id = $1 AND (preview_command = $2 OR \
             apply_command = $2 OR reboot_command = $2 OR health_command = $2 OR rollback_command = $2)",
        )
        .bind(host.0)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(DeploymentId(row.int("deployment_id")?))).collect()
    }

    /// Deletes deployments (and their host rows) that finished before `before`; returns how many.
    pub async fn prune_deployments_finished_before(&self, before: Timestamp) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM deployment_hosts WHERE deployment_id IN \
             (SELECT id FROM deployments WHERE finished_at < $1)",
        )
        .bind(ms(before))
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM deployments WHERE finished_at < $1").bind(ms(before)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// The orchestration policy of a group (the defaults when none was set).
    pub async fn group_policy(&self, group: GroupId) -> Result<GroupPolicy> {
        let row =
            sqlx::query("SELECT require_approval, health_units, health_probes FROM group_policies WHERE group_id = $1")
                .bind(group.0)
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(GroupPolicy::default()),
            Some(row) => Ok(GroupPolicy {
                require_approval: row.flag("require_approval")?,
                health_units: row.json("health_units")?,
                health_probes: row.json("health_probes")?,
            }),
        }
    }

    /// Sets a group's orchestration policy.
    pub async fn set_group_policy(&self, group: GroupId, policy: &GroupPolicy, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO group_policies (group_id, require_approval, health_units, health_probes, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id) DO UPDATE SET \
             require_approval = excluded.require_approval, health_units = excluded.health_units, \
             health_probes = excluded.health_probes, updated_at = excluded.updated_at",
        )
        .bind(group.0)
        .bind(i64::from(policy.require_approval))
        .bind(to_json(&policy.health_units, "health_units")?)
        .bind(to_json(&policy.health_probes, "health_probes")?)
        .bind(ms(now))
        .execute(&self.pool)
        .await
        .classify(&[], "group")?;
        Ok(())
    }

    /// The policy of every group the host belongs to, merged: approval if any group requires
    /// it, and every group's health checks (units once each).
    pub async fn host_policy(&self, host: HostId) -> Result<GroupPolicy> {
        let rows = sqlx::query(
            "SELECT p.require_approval, p.health_units, p.health_probes FROM group_policies p \
             JOIN host_groups hg ON hg.group_id = p.group_id WHERE hg.host_id = $1 ORDER BY p.group_id",
        )
        .bind(host.0)
        .fetch_all(&self.pool)
        .await?;
        let mut merged = GroupPolicy::default();
        for row in &rows {
            merged.require_approval |= row.flag("require_approval")?;
            for unit in row.json::<Vec<String>>("health_units")? {
                if !merged.health_units.contains(&unit) {
                    merged.health_units.push(unit);
                }
            }
            for probe in row.json::<Vec<serde_json::Value>>("health_probes")? {
                if !merged.health_probes.contains(&probe) {
                    merged.health_probes.push(probe);
                }
            }
        }
        Ok(merged)
    }
}
