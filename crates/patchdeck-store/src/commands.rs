//! The queue of commands for pull agents, and what their agents report about them.
//!
//! **Lifecycle** (`patchdeck_proto::agent::CommandState`): `pending` (queued) → `sent`
//! (delivered in a check-in response) → `running` → `completed` | `failed` | `timed_out`;
//! `cancelled` only before delivery. The state only moves forward, and every move is one
//! conditional `UPDATE` whose `WHERE` names the states it may leave, so of two racing writers
//! (two check-ins, a check-in and the sweeper) exactly one moves it.
//!
//! **Delivery** ([`Store::claim_commands`]) hands each command to one caller only: PostgreSQL
//! locks the rows it picks with `FOR UPDATE SKIP LOCKED`, SQLite's single `UPDATE … RETURNING`
//! holds the database's write lock.
//!
//! **Results arrive at least once** and are stored once ([`Store::apply_command_result`]): a
//! report of a state the command already reached or passed changes nothing and comes back as
//! [`ResultOutcome::Duplicate`], so the caller acknowledges it all the same.
//!
//! Commands are ordered by the order they were queued (a hidden sequence column), not by their
//! random UUIDs: two commands queued for a host within one millisecond are still delivered in
//! queue order.

use jiff::{SignedDuration, Timestamp};
use patchdeck_proto::agent::{Command, CommandResult, CommandState, PackageChange, MAX_RESULT_OUTPUT_BYTES};
use serde::Serialize;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::error::{Error, Result, ResultExt};
use crate::hosts::{scope_condition, Scope};
use crate::sql::{ms, prefixed, to_json, RowExt, SqlBuilder};
use crate::types::{HostId, Page, Paging, UserId};
use crate::{Backend, Store};

/// `error_code` of a command the sweeper timed out before any check-in picked it up.
pub const NOT_DELIVERED: &str = "not_delivered";
/// `error_code` of a delivered command whose agent sent no final result in time.
pub const NO_RESULT: &str = "no_result";
/// Prefix of the `error_code` of a command its agent refused (`rejected_bad_signature`, …).
pub const REJECTED_PREFIX: &str = "rejected_";

/// A command to queue for a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCommand {
    /// The host that runs it.
    pub host: HostId,
    /// What to do.
    pub command: Command,
    /// The user who asked (none for the scheduler).
    pub created_by: Option<UserId>,
    /// The command this one retries.
    pub retry_of: Option<Uuid>,
    /// Deliver it before this time, or the sweeper times it out (`not_delivered`).
    pub deliver_by: Timestamp,
}

/// A queued command and everything reported about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandRecord {
    /// Its id, as the protocol names it.
    pub id: Uuid,
    /// The host that runs it.
    pub host_id: HostId,
    /// The command's type tag (`upgrade`, `reboot`, …).
    pub kind: String,
    /// What to do.
    pub command: Command,
    /// Where it is in its lifecycle.
    pub state: CommandState,
    /// The user who queued it (unset for the scheduler, or when the user was deleted).
    pub created_by: Option<UserId>,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Deadline for its delivery.
    pub deliver_by: Timestamp,
    /// When a check-in response carried it.
    pub sent_at: Option<Timestamp>,
    /// When the manager learnt that it started (the manager's clock).
    pub started_at: Option<Timestamp>,
    /// When it reached a final state (the manager's clock).
    pub finished_at: Option<Timestamp>,
    /// The agent's job for it.
    pub job_id: Option<Uuid>,
    /// Why it failed: the agent's code, [`NOT_DELIVERED`], [`NO_RESULT`] or
    /// `rejected_<reason>`.
    pub error_code: Option<String>,
    /// The failure in words.
    pub error_message: Option<String>,
    /// The package manager's output (at most `MAX_RESULT_OUTPUT_BYTES`).
    pub output: Option<String>,
    /// What changed, per package.
    pub changes: Vec<PackageChange>,
    /// The host needs a reboot after it.
    pub reboot_required: bool,
    /// The command this one retries (unset when that one was pruned).
    pub retry_of: Option<Uuid>,
    /// Last change to the row.
    pub updated_at: Timestamp,
}

/// What [`Store::apply_command_result`] and [`Store::reject_command`] did with a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultOutcome {
    /// The report moved the command forward; the record after the change.
    Applied(CommandRecord),
    /// The command had already reached or passed that state; nothing changed. Acknowledge it.
    Duplicate(CommandRecord),
    /// No command with this id belongs to this host.
    Unknown,
}

/// Which commands [`Store::list_commands`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFilter {
    /// The caller's scope: commands of hosts outside it are neither listed nor counted.
    pub scope: Scope,
    /// Only commands of this host.
    pub host: Option<HostId>,
    /// Only commands in this state.
    pub state: Option<CommandState>,
    /// Only commands of this type (`upgrade`, …).
    pub kind: Option<String>,
    /// Page.
    pub paging: Paging,
}

impl CommandFilter {
    /// Every command in `scope`, first page.
    pub fn new(scope: Scope) -> Self {
        Self { scope, host: None, state: None, kind: None, paging: Paging::default() }
    }
}

const COLUMNS: &str = "seq, id, host_id, kind, command, state, created_by, created_at, deliver_by, sent_at, \
    started_at, finished_at, job_id, error_code, error_message, output, changes, reboot_required, retry_of, \
    updated_at";

/// States a running report may leave.
const BEFORE_RUNNING: &str = "('pending', 'sent')";
/// States a final report (or a rejection) may leave.
const NOT_FINAL: &str = "('pending', 'sent', 'running')";

fn uuid(row: &AnyRow, column: &str) -> Result<Uuid> {
    let text = row.text(column)?;
    Uuid::parse_str(&text).map_err(|_| Error::Corrupt(format!("column {column} holds {text:?}, not a UUID")))
}

fn opt_uuid(row: &AnyRow, column: &str) -> Result<Option<Uuid>> {
    match row.opt_text(column)? {
        None => Ok(None),
        Some(_) => uuid(row, column).map(Some),
    }
}

fn from_row(row: &AnyRow) -> Result<CommandRecord> {
    Ok(CommandRecord {
        id: uuid(row, "id")?,
        host_id: HostId(row.int("host_id")?),
        kind: row.text("kind")?,
        command: row.json("command")?,
        state: row.parse("state")?,
        created_by: row.opt_int("created_by")?.map(UserId),
        created_at: row.ts("created_at")?,
        deliver_by: row.ts("deliver_by")?,
        sent_at: row.opt_ts("sent_at")?,
        started_at: row.opt_ts("started_at")?,
        finished_at: row.opt_ts("finished_at")?,
        job_id: opt_uuid(row, "job_id")?,
        error_code: row.opt_text("error_code")?,
        error_message: row.opt_text("error_message")?,
        output: row.opt_text("output")?,
        changes: row.json("changes")?,
        reboot_required: row.flag("reboot_required")?,
        retry_of: opt_uuid(row, "retry_of")?,
        updated_at: row.ts("updated_at")?,
    })
}

/// Records of `UPDATE … RETURNING` rows (which come in no defined order), in queue order.
fn in_queue_order(rows: &[AnyRow]) -> Result<Vec<CommandRecord>> {
    let mut records =
        rows.iter().map(|row| Ok((row.int("seq")?, from_row(row)?))).collect::<Result<Vec<(i64, CommandRecord)>>>()?;
    records.sort_by_key(|(seq, _)| *seq);
    Ok(records.into_iter().map(|(_, record)| record).collect())
}

/// `output` as stored: `None` when empty, cut at a character boundary to the protocol's limit
/// (the agent already truncates; this guards the database against an agent that does not).
fn stored_output(output: &str) -> Option<&str> {
    if output.is_empty() {
        return None;
    }
    let mut end = output.len().min(MAX_RESULT_OUTPUT_BYTES);
    while !output.is_char_boundary(end) {
        end -= 1;
    }
    Some(&output[..end])
}

impl Store {
    /// Queues a command for a host: a fresh random id, state `pending`.
    /// [`Error::MissingReference`] when the host, the user or the retried command does not
    /// exist; [`Error::Invalid`] when `deliver_by` is not after `now`.
    pub async fn queue_command(&self, new: &NewCommand, now: Timestamp) -> Result<CommandRecord> {
        if new.deliver_by <= now {
            return Err(Error::Invalid("a command's delivery deadline must be in the future".into()));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO commands (id, host_id, kind, command, state, created_by, created_at, deliver_by, retry_of, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $7) RETURNING {COLUMNS}"
        ))
        .bind(Uuid::new_v4().to_string())
        .bind(new.host.0)
        .bind(new.command.kind())
        .bind(to_json(&new.command, "command")?)
        .bind(CommandState::Pending.as_str())
        .bind(new.created_by.map(|id| id.0))
        .bind(ms(now))
        .bind(ms(new.deliver_by))
        .bind(new.retry_of.map(|id| id.to_string()))
        .fetch_one(&self.pool)
        .await
        .classify(&[("commands_id", "command id")], "host, user or retried command")?;
        from_row(&row)
    }

    /// Delivers up to `limit` of the host's pending commands whose deadline is after `now`:
    /// marks them `sent` (at `now`) and returns them in queue order. Atomic: of any number of
    /// concurrent callers, each command goes to exactly one.
    pub async fn claim_commands(&self, host: HostId, now: Timestamp, limit: u32) -> Result<Vec<CommandRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let pick = "SELECT seq FROM commands WHERE host_id = $1 AND state = 'pending' AND deliver_by > $2 \
                    ORDER BY seq LIMIT $3";
        let sql = match self.backend {
            // The rows are picked once, in a materialized CTE: as a sub-select of the UPDATE,
            // PostgreSQL may run the pick again for every row, and then skips the rows this very
            // statement already updated and lets the LIMIT through to further ones. SKIP LOCKED
            // shares the queue out among concurrent claimers instead of making them wait for
            // rows that will be `sent` when they get them.
            Backend::Postgres => format!(
                "WITH picked AS MATERIALIZED ({pick} FOR UPDATE SKIP LOCKED) \
                 UPDATE commands SET state = 'sent', sent_at = $2, updated_at = $2 FROM picked \
                 WHERE commands.seq = picked.seq AND commands.state = 'pending' RETURNING {}",
                prefixed("commands", COLUMNS)
            ),
            // One statement holds SQLite's write lock from its first read; the uncorrelated
            // sub-select is evaluated once.
            Backend::Sqlite => format!(
                "UPDATE commands SET state = 'sent', sent_at = $2, updated_at = $2 \
                 WHERE state = 'pending' AND seq IN ({pick}) RETURNING {COLUMNS}"
            ),
        };
        let rows = sqlx::query(&sql).bind(host.0).bind(ms(now)).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        in_queue_order(&rows)
    }

    /// Whether the host has a command to deliver at `now` (one indexed lookup).
    pub async fn has_pending_commands(&self, host: HostId, now: Timestamp) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 AS found FROM commands WHERE host_id = $1 AND state = 'pending' AND deliver_by > $2 LIMIT 1",
        )
        .bind(host.0)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Stores an agent's report about one of **its own** commands (another host's command is
    /// [`ResultOutcome::Unknown`]).
    ///
    /// `running` moves a `pending` or `sent` command to `running` (`started_at` = `now`); a
    /// final state (`completed`, `failed`, `timed_out`) moves a `pending`, `sent` or `running`
    /// command there (`finished_at` = `now`) with the error, output, changes and reboot flag.
    /// Times are the manager's, so the sweeper never judges by an agent's clock. A report of a
    /// state the command already reached or passed is [`ResultOutcome::Duplicate`] and changes
    /// nothing: the same result may arrive many times. **A final report for a command the
    /// sweeper already timed out is a duplicate too**: the command stays `timed_out`, because
    /// whoever was told it timed out (a deployment that moved on) must not see it change
    /// afterwards. [`Error::Invalid`] for a state an agent cannot report (`pending`, `sent`,
    /// `cancelled`).
    pub async fn apply_command_result(
        &self,
        host: HostId,
        result: &CommandResult,
        now: Timestamp,
    ) -> Result<ResultOutcome> {
        let job_id = result.job_id.map(|id| id.to_string());
        let output = stored_output(&result.output);
        let row = match result.state {
            CommandState::Running => {
                sqlx::query(&format!(
                    "UPDATE commands SET state = 'running', started_at = $3, job_id = COALESCE($4, job_id), \
                     output = COALESCE($5, output), updated_at = $3 \
                     WHERE id = $1 AND host_id = $2 AND state IN {BEFORE_RUNNING} RETURNING {COLUMNS}"
                ))
                .bind(result.command_id.to_string())
                .bind(host.0)
                .bind(ms(now))
                .bind(job_id)
                .bind(output)
                .fetch_optional(&self.pool)
                .await?
            }
            CommandState::Completed | CommandState::Failed | CommandState::TimedOut => {
                let changes = to_json(&result.changes, "changes")?;
                sqlx::query(&format!(
                    "UPDATE commands SET state = $6, finished_at = $3, job_id = COALESCE($4, job_id), \
                     output = COALESCE($5, output), changes = $7, reboot_required = $8, error_code = $9, \
                     error_message = $10, updated_at = $3 \
                     WHERE id = $1 AND host_id = $2 AND state IN {NOT_FINAL} RETURNING {COLUMNS}"
                ))
                .bind(result.command_id.to_string())
                .bind(host.0)
                .bind(ms(now))
                .bind(job_id)
                .bind(output)
                .bind(result.state.as_str())
                .bind(changes)
                .bind(i64::from(result.reboot_required))
                .bind(result.error.as_ref().map(|error| error.code.as_str()))
                .bind(result.error.as_ref().map(|error| error.message.as_str()))
                .fetch_optional(&self.pool)
                .await?
            }
            other => return Err(Error::Invalid(format!("an agent cannot report a command as {other}"))),
        };
        self.result_outcome(host, result.command_id, row).await
    }

    /// Marks a command its agent refused as `failed`, with error code `rejected_<reason>` and
    /// the agent's message. Like [`Self::apply_command_result`]: only a command of this host
    /// that is not final yet changes ([`ResultOutcome::Applied`]); a final one is a
    /// [`ResultOutcome::Duplicate`], another host's or a missing one [`ResultOutcome::Unknown`].
    pub async fn reject_command(
        &self,
        host: HostId,
        id: Uuid,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<ResultOutcome> {
        let row = sqlx::query(&format!(
            "UPDATE commands SET state = 'failed', finished_at = $3, error_code = $4, error_message = $5, \
             updated_at = $3 WHERE id = $1 AND host_id = $2 AND state IN {NOT_FINAL} RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(host.0)
        .bind(ms(now))
        .bind(format!("{REJECTED_PREFIX}{reason}"))
        .bind(message)
        .fetch_optional(&self.pool)
        .await?;
        self.result_outcome(host, id, row).await
    }

    /// Applied when the conditional update returned the row; otherwise the command as it is
    /// (a duplicate) or unknown to this host.
    async fn result_outcome(&self, host: HostId, id: Uuid, updated: Option<AnyRow>) -> Result<ResultOutcome> {
        if let Some(row) = updated {
            return Ok(ResultOutcome::Applied(from_row(&row)?));
        }
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM commands WHERE id = $1 AND host_id = $2"))
            .bind(id.to_string())
            .bind(host.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => ResultOutcome::Duplicate(from_row(&row)?),
            None => ResultOutcome::Unknown,
        })
    }

    /// Cancels a command that was not delivered yet. [`Error::Conflict`] naming its state when
    /// it is no longer pending, [`Error::NotFound`] when it does not exist.
    pub async fn cancel_command(&self, id: Uuid, now: Timestamp) -> Result<CommandRecord> {
        let row = sqlx::query(&format!(
            "UPDATE commands SET state = 'cancelled', finished_at = $2, updated_at = $2 \
             WHERE id = $1 AND state = 'pending' RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => from_row(&row),
            None => match self.get_command(id).await? {
                Some(command) => Err(Error::Conflict(format!(
                    "command is {}; only a pending command can be cancelled",
                    command.state
                ))),
                None => Err(Error::NotFound("command")),
            },
        }
    }

    /// The command with this id, regardless of scope.
    pub async fn get_command(&self, id: Uuid) -> Result<Option<CommandRecord>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM commands WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// One page of the commands of hosts in `filter.scope` that match the filter, newest
    /// (latest queued) first, and how many match in total (same scope, same filters).
    pub async fn list_commands(&self, filter: &CommandFilter) -> Result<Page<CommandRecord>> {
        let mut sql = SqlBuilder::default();
        scope_condition(&mut sql, &filter.scope);
        if let Some(host) = filter.host {
            let host = sql.arg(host.0);
            sql.condition(format!("c.host_id = {host}"));
        }
        if let Some(state) = filter.state {
            let state = sql.arg(state.as_str());
            sql.condition(format!("c.state = {state}"));
        }
        if let Some(kind) = &filter.kind {
            let kind = sql.arg(kind.as_str());
            sql.condition(format!("c.kind = {kind}"));
        }
        self.fetch_page(
            sql,
            &prefixed("c", COLUMNS),
            "commands c JOIN hosts h ON h.id = c.host_id",
            "c.seq DESC",
            filter.paging,
            from_row,
        )
        .await
    }

    /// Times out what will not finish, in one statement, and returns it in queue order:
    /// `pending` commands whose delivery deadline is at or before `now` (error code
    /// [`NOT_DELIVERED`]), and `sent` or `running` commands delivered (`sent_at`) or started
    /// (`started_at`) more than `run_timeout` before `now` ([`NO_RESULT`]).
    pub async fn sweep_commands(&self, now: Timestamp, run_timeout: SignedDuration) -> Result<Vec<CommandRecord>> {
        let cutoff = now
            .checked_sub(run_timeout)
            .map_err(|_| Error::Invalid(format!("{now} minus {run_timeout} is out of range")))?;
        let rows = sqlx::query(&format!(
            "UPDATE commands SET state = 'timed_out', \
             error_code = CASE WHEN state = 'pending' THEN $3 ELSE $4 END, \
             error_message = CASE WHEN state = 'pending' THEN $5 ELSE $6 END, \
             finished_at = $1, updated_at = $1 \
             WHERE (state = 'pending' AND deliver_by <= $1) OR (state = 'sent' AND sent_at < $2) \
             OR (state = 'running' AND COALESCE(started_at, sent_at) < $2) RETURNING {COLUMNS}"
        ))
        .bind(ms(now))
        .bind(ms(cutoff))
        .bind(NOT_DELIVERED)
        .bind(NO_RESULT)
        .bind("the agent did not pick the command up before its delivery deadline")
        .bind("the agent reported no final result in time")
        .fetch_all(&self.pool)
        .await?;
        in_queue_order(&rows)
    }

    /// Deletes the commands that reached a final state before `before`; returns how many.
    /// Commands that retried one of them keep their row, without the link.
    pub async fn prune_commands_finished_before(&self, before: Timestamp) -> Result<u64> {
        let done =
            sqlx::query("DELETE FROM commands WHERE finished_at < $1").bind(ms(before)).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_at_a_character_boundary() {
        assert_eq!(stored_output(""), None);
        assert_eq!(stored_output("ok"), Some("ok"));
        let long = "é".repeat(MAX_RESULT_OUTPUT_BYTES);
        let cut = stored_output(&long).unwrap();
        assert!(cut.len() <= MAX_RESULT_OUTPUT_BYTES && cut.len() >= MAX_RESULT_OUTPUT_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'é'));
    }
}
