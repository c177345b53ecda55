//! Maintenance windows and blackout (change-freeze) periods.
//!
//! A window belongs to exactly one host or one group ([`WindowTarget`]); a host's windows are
//! its own plus its groups' ([`Store::windows_for_host`]). A blackout is global or belongs to
//! one group; a host's blackouts are the global ones plus its groups' ([`Store::blackouts_for_host`]).
//! The arithmetic (recurrences, time zones, DST) lives in `patchdeck-schedule`; this module stores
//! its [`Recurrence`] as JSON and refuses a window that crate would refuse.

use jiff::civil::Time;
use jiff::{SignedDuration, Timestamp};
use patchdeck_schedule::{Interval, Recurrence, WindowSpec};
use serde::Serialize;
use sqlx::any::AnyRow;

use crate::error::{Error, Result, ResultExt};
use crate::hosts::Scope;
use crate::sql::{ms, to_json, RowExt, SqlBuilder};
use crate::types::{BlackoutId, GroupId, HostId, MaintenanceWindowId, UserId};
use crate::Store;

/// Longest window or blackout name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// What a window applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum WindowTarget {
    Host(HostId),
    Group(GroupId),
}

impl WindowTarget {
    /// The host, for a host's own window.
    pub fn host_id(self) -> Option<HostId> {
        match self {
            WindowTarget::Host(id) => Some(id),
            WindowTarget::Group(_) => None,
        }
    }

    /// The group, for a group's window.
    pub fn group_id(self) -> Option<GroupId> {
        match self {
            WindowTarget::Group(id) => Some(id),
            WindowTarget::Host(_) => None,
        }
    }
}

/// The fields of a window that a user sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFields {
    /// 1–100 characters.
    pub name: String,
    pub target: WindowTarget,
    pub recurrence: Recurrence,
    /// Local start, whole minutes.
    pub start_time: Time,
    /// 1 ..= 10080 (7 days).
    pub duration_minutes: i64,
    /// IANA name.
    pub time_zone: String,
    pub enabled: bool,
}

impl WindowFields {
    /// The window as `patchdeck-schedule` computes with it.
    pub fn spec(&self) -> WindowSpec {
        WindowSpec {
            recurrence: self.recurrence.clone(),
            start: self.start_time,
            duration: SignedDuration::from_mins(self.duration_minutes),
            time_zone: self.time_zone.clone(),
        }
    }

    fn check(&self) -> Result<()> {
        check_name(&self.name)?;
        if self.start_time.second() != 0 || self.start_time.subsec_nanosecond() != 0 {
            return Err(Error::Invalid("start_time must be whole minutes".into()));
        }
        if !(1..=7 * 24 * 60).contains(&self.duration_minutes) {
            return Err(Error::Invalid("duration_minutes must be between 1 and 10080".into()));
        }
        self.spec().validate().map_err(|err| Error::Invalid(format!("{}: {err}", err.field())))
    }
}

/// A stored maintenance window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceWindow {
    pub id: MaintenanceWindowId,
    #[serde(flatten)]
    pub fields: WindowFields,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Serialize for WindowFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("name", &self.name)?;
        map.serialize_entry("host_id", &self.target.host_id())?;
        map.serialize_entry("group_id", &self.target.group_id())?;
        map.serialize_entry("recurrence", &self.recurrence)?;
        map.serialize_entry("start_time", &format_time(self.start_time))?;
        map.serialize_entry("duration_minutes", &self.duration_minutes)?;
        map.serialize_entry("time_zone", &self.time_zone)?;
        map.serialize_entry("enabled", &self.enabled)?;
        map.end()
    }
}

/// Which windows [`Store::list_maintenance_windows`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFilter {
    /// The caller's scope: a host's window is visible with the host, a group's to its members.
    pub scope: Scope,
    /// Only the host's own windows.
    pub host: Option<HostId>,
    /// Only the group's windows.
    pub group: Option<GroupId>,
    /// Only enabled windows.
    pub enabled_only: bool,
}

impl WindowFilter {
    /// Every window in `scope`.
    pub fn new(scope: Scope) -> WindowFilter {
        WindowFilter { scope, host: None, group: None, enabled_only: false }
    }
}

/// The fields of a blackout that a user sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BlackoutFields {
    /// 1–100 characters.
    pub name: String,
    /// `None`: global.
    pub group_id: Option<GroupId>,
    pub starts_at: Timestamp,
    /// After `starts_at`.
    pub ends_at: Timestamp,
    /// Free text, at most 500 characters.
    pub reason: String,
}

impl BlackoutFields {
    fn check(&self) -> Result<()> {
        check_name(&self.name)?;
        if ms(self.ends_at) <= ms(self.starts_at) {
            return Err(Error::Invalid("ends_at must be after starts_at".into()));
        }
        Ok(())
    }
}

/// A stored blackout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blackout {
    pub id: BlackoutId,
    #[serde(flatten)]
    pub fields: BlackoutFields,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
}

impl Blackout {
    /// `[starts_at, ends_at)`.
    pub fn interval(&self) -> Interval {
        Interval { start: self.fields.starts_at, end: self.fields.ends_at }
    }
}

/// Which blackouts [`Store::list_blackouts`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlackoutFilter {
    /// The caller's scope: global blackouts are visible to all, a group's to its members.
    pub scope: Scope,
    /// Only this group's blackouts.
    pub group: Option<GroupId>,
    /// Only global blackouts.
    pub global_only: bool,
    /// Only blackouts that end after this instant.
    pub ending_after: Option<Timestamp>,
}

impl BlackoutFilter {
    /// Every blackout in `scope`.
    pub fn new(scope: Scope) -> BlackoutFilter {
        BlackoutFilter { scope, group: None, global_only: false, ending_after: None }
    }
}

const WINDOW_COLUMNS: &str = "id, name, host_id, group_id, recurrence, start_time, duration_minutes, time_zone, \
     enabled, created_by, created_at, updated_at";
const BLACKOUT_COLUMNS: &str = "id, name, group_id, starts_at, ends_at, reason, created_by, created_at";

fn check_name(name: &str) -> Result<()> {
    let chars = name.trim().chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(Error::Invalid(format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    Ok(())
}

/// `HH:MM`.
pub fn format_time(time: Time) -> String {
    format!("{:02}:{:02}", time.hour(), time.minute())
}

/// Parses `HH:MM` (00:00 – 23:59).
pub fn parse_time(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

fn window_from_row(row: &AnyRow) -> Result<MaintenanceWindow> {
    let target = match (row.opt_int("host_id")?, row.opt_int("group_id")?) {
        (Some(host), None) => WindowTarget::Host(HostId(host)),
        (None, Some(group)) => WindowTarget::Group(GroupId(group)),
        _ => return Err(Error::Corrupt("a maintenance window needs exactly one of host_id and group_id".into())),
    };
    let start = row.text("start_time")?;
    Ok(MaintenanceWindow {
        id: MaintenanceWindowId(row.int("id")?),
        fields: WindowFields {
            name: row.text("name")?,
            target,
            recurrence: row.json("recurrence")?,
            start_time: parse_time(&start)
                .ok_or_else(|| Error::Corrupt(format!("column start_time holds {start:?}, not HH:MM")))?,
            duration_minutes: row.int("duration_minutes")?,
            time_zone: row.text("time_zone")?,
            enabled: row.flag("enabled")?,
        },
        created_by: row.opt_int("created_by")?.map(UserId),
        created_at: row.ts("created_at")?,
        updated_at: row.ts("updated_at")?,
    })
}

fn blackout_from_row(row: &AnyRow) -> Result<Blackout> {
    Ok(Blackout {
        id: BlackoutId(row.int("id")?),
        fields: BlackoutFields {
            name: row.text("name")?,
            group_id: row.opt_int("group_id")?.map(GroupId),
            starts_at: row.ts("starts_at")?,
            ends_at: row.ts("ends_at")?,
            reason: row.text("reason")?,
        },
        created_by: row.opt_int("created_by")?.map(UserId),
        created_at: row.ts("created_at")?,
    })
}

/// Limits `w` to the windows visible in `scope`: a host's window with its host (hosts in the
/// caller's groups, or in no group), a group's window to the group's members.
fn window_scope(sql: &mut SqlBuilder, scope: &Scope) {
    let Scope::Groups(groups) = scope else { return };
    let ungrouped = "NOT EXISTS (SELECT 1 FROM host_groups sg WHERE sg.host_id = w.host_id)";
    if groups.is_empty() {
        sql.condition(format!("(w.host_id IS NOT NULL AND {ungrouped})"));
        return;
    }
    let placeholders = groups.iter().map(|group| sql.arg(group.0)).collect::<Vec<_>>().join(", ");
    sql.condition(format!(
        "((w.host_id IS NOT NULL AND ({ungrouped} OR EXISTS (SELECT 1 FROM host_groups sg \
         WHERE sg.host_id = w.host_id AND sg.group_id IN ({placeholders})))) OR w.group_id IN ({placeholders}))"
    ));
}

fn blackout_scope(sql: &mut SqlBuilder, scope: &Scope) {
    let Scope::Groups(groups) = scope else { return };
    if groups.is_empty() {
        sql.condition("b.group_id IS NULL");
        return;
    }
    let placeholders = groups.iter().map(|group| sql.arg(group.0)).collect::<Vec<_>>().join(", ");
    sql.condition(format!("(b.group_id IS NULL OR b.group_id IN ({placeholders}))"));
}

const REFERENCE: &str = "host, group or user";

impl Store {
    /// Creates a window. [`Error::Invalid`] for a window `patchdeck-schedule` refuses,
    /// [`Error::MissingReference`] when its host or group does not exist.
    pub async fn create_maintenance_window(
        &self,
        fields: &WindowFields,
        created_by: Option<UserId>,
        now: Timestamp,
    ) -> Result<MaintenanceWindow> {
        fields.check()?;
        let row = sqlx::query(&format!(
            "INSERT INTO maintenance_windows (name, host_id, group_id, recurrence, start_time, \
             duration_minutes, time_zone, enabled, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {WINDOW_COLUMNS}"
        ))
        .bind(fields.name.trim())
        .bind(fields.target.host_id().map(|h| h.0))
        .bind(fields.target.group_id().map(|g| g.0))
        .bind(to_json(&fields.recurrence, "recurrence")?)
        .bind(format_time(fields.start_time))
        .bind(fields.duration_minutes)
        .bind(&fields.time_zone)
        .bind(i64::from(fields.enabled))
        .bind(created_by.map(|u| u.0))
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(&[], REFERENCE)?;
        window_from_row(&row)
    }

    /// The window with this id.
    pub async fn get_maintenance_window(&self, id: MaintenanceWindowId) -> Result<Option<MaintenanceWindow>> {
        let row = sqlx::query(&format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows w WHERE w.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(window_from_row).transpose()
    }

    /// Windows matching `filter`, by id.
    pub async fn list_maintenance_windows(&self, filter: &WindowFilter) -> Result<Vec<MaintenanceWindow>> {
        let mut sql = SqlBuilder::default();
        window_scope(&mut sql, &filter.scope);
        if let Some(host) = filter.host {
            let p = sql.arg(host.0);
            sql.condition(format!("w.host_id = {p}"));
        }
        if let Some(group) = filter.group {
            let p = sql.arg(group.0);
            sql.condition(format!("w.group_id = {p}"));
        }
        if filter.enabled_only {
            sql.condition("w.enabled = 1");
        }
        sql.push(&format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows w{} ORDER BY w.id", sql.where_clause()));
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(window_from_row).collect()
    }

    /// Replaces every user-set field of a window. [`Error::NotFound`] when it does not exist.
    pub async fn update_maintenance_window(
        &self,
        id: MaintenanceWindowId,
        fields: &WindowFields,
        now: Timestamp,
    ) -> Result<MaintenanceWindow> {
        fields.check()?;
        let row = sqlx::query(&format!(
            "UPDATE maintenance_windows SET name = $2, host_id = $3, group_id = $4, recurrence = $5, \
             start_time = $6, duration_minutes = $7, time_zone = $8, enabled = $9, updated_at = $10 \
             WHERE id = $1 RETURNING {WINDOW_COLUMNS}"
        ))
        .bind(id.0)
        .bind(fields.name.trim())
        .bind(fields.target.host_id().map(|h| h.0))
        .bind(fields.target.group_id().map(|g| g.0))
        .bind(to_json(&fields.recurrence, "recurrence")?)
        .bind(format_time(fields.start_time))
        .bind(fields.duration_minutes)
        .bind(&fields.time_zone)
        .bind(i64::from(fields.enabled))
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await
        .classify(&[], REFERENCE)?;
        row.as_ref().map(window_from_row).transpose()?.ok_or(Error::NotFound("maintenance window"))
    }

    /// Deletes a window. [`Error::NotFound`] when it does not exist.
    pub async fn delete_maintenance_window(&self, id: MaintenanceWindowId) -> Result<()> {
        let done = sqlx::query("DELETE FROM maintenance_windows WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("maintenance window"));
        }
        Ok(())
    }

    /// The enabled windows that apply to a host: its own and those of every group it is in,
    /// by id.
    pub async fn windows_for_host(&self, host: HostId) -> Result<Vec<MaintenanceWindow>> {
        let rows = sqlx::query(&format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows w WHERE w.enabled = 1 AND (w.host_id = $1 \
             OR w.group_id IN (SELECT hg.group_id FROM host_groups hg WHERE hg.host_id = $1)) ORDER BY w.id"
        ))
        .bind(host.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(window_from_row).collect()
    }

    /// The enabled windows of a group, by id.
    pub async fn windows_for_group(&self, group: GroupId) -> Result<Vec<MaintenanceWindow>> {
        let filter = WindowFilter { group: Some(group), enabled_only: true, ..WindowFilter::new(Scope::All) };
        self.list_maintenance_windows(&filter).await
    }

    /// Creates a blackout. [`Error::Invalid`] when it does not end after it starts,
    /// [`Error::MissingReference`] when its group does not exist.
    pub async fn create_blackout(
        &self,
        fields: &BlackoutFields,
        created_by: Option<UserId>,
        now: Timestamp,
    ) -> Result<Blackout> {
        fields.check()?;
        let row = sqlx::query(&format!(
            "INSERT INTO blackouts (name, group_id, starts_at, ends_at, reason, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {BLACKOUT_COLUMNS}"
        ))
        .bind(fields.name.trim())
        .bind(fields.group_id.map(|g| g.0))
        .bind(ms(fields.starts_at))
        .bind(ms(fields.ends_at))
        .bind(&fields.reason)
        .bind(created_by.map(|u| u.0))
        .bind(ms(now))
        .fetch_one(&self.pool)
        .await
        .classify(&[], "group or user")?;
        blackout_from_row(&row)
    }

    /// The blackout with this id.
    pub async fn get_blackout(&self, id: BlackoutId) -> Result<Option<Blackout>> {
        let row = sqlx::query(&format!("SELECT {BLACKOUT_COLUMNS} FROM blackouts b WHERE b.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(blackout_from_row).transpose()
    }

    /// Blackouts matching `filter`, by start (then id).
    pub async fn list_blackouts(&self, filter: &BlackoutFilter) -> Result<Vec<Blackout>> {
        let mut sql = SqlBuilder::default();
        blackout_scope(&mut sql, &filter.scope);
        if let Some(group) = filter.group {
            let p = sql.arg(group.0);
            sql.condition(format!("b.group_id = {p}"));
        }
        if filter.global_only {
            sql.condition("b.group_id IS NULL");
        }
        if let Some(after) = filter.ending_after {
            let p = sql.arg(ms(after));
            sql.condition(format!("b.ends_at > {p}"));
        }
        sql.push(&format!(
            "SELECT {BLACKOUT_COLUMNS} FROM blackouts b{} ORDER BY b.starts_at, b.id",
            sql.where_clause()
        ));
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(blackout_from_row).collect()
    }

    /// Replaces every user-set field of a blackout. [`Error::NotFound`] when it does not exist.
    pub async fn update_blackout(&self, id: BlackoutId, fields: &BlackoutFields) -> Result<Blackout> {
        fields.check()?;
        let row = sqlx::query(&format!(
            "UPDATE blackouts SET name = $2, group_id = $3, starts_at = $4, ends_at = $5, reason = $6 \
             WHERE id = $1 RETURNING {BLACKOUT_COLUMNS}"
        ))
        .bind(id.0)
        .bind(fields.name.trim())
        .bind(fields.group_id.map(|g| g.0))
        .bind(ms(fields.starts_at))
        .bind(ms(fields.ends_at))
        .bind(&fields.reason)
        .fetch_optional(&self.pool)
        .await
        .classify(&[], "group")?;
        row.as_ref().map(blackout_from_row).transpose()?.ok_or(Error::NotFound("blackout"))
    }

    /// Deletes a blackout. [`Error::NotFound`] when it does not exist.
    pub async fn delete_blackout(&self, id: BlackoutId) -> Result<()> {
        let done = sqlx::query("DELETE FROM blackouts WHERE id = $1").bind(id.0).execute(&self.pool).await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("blackout"));
        }
        Ok(())
    }

    /// The blackouts that apply to a host: the global ones and those of its groups, by start.
    pub async fn blackouts_for_host(&self, host: HostId) -> Result<Vec<Blackout>> {
        let rows = sqlx::query(&format!(
            "SELECT {BLACKOUT_COLUMNS} FROM blackouts b WHERE b.group_id IS NULL \
             OR b.group_id IN (SELECT hg.group_id FROM host_groups hg WHERE hg.host_id = $1) ORDER BY b.starts_at, b.id"
        ))
        .bind(host.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(blackout_from_row).collect()
    }

    /// The blackouts that apply to a group's hosts through the group: the global ones and the
    /// group's own, by start.
    pub async fn blackouts_for_group(&self, group: GroupId) -> Result<Vec<Blackout>> {
        self.list_blackouts(&BlackoutFilter::new(Scope::Groups(vec![group]))).await
    }
}
