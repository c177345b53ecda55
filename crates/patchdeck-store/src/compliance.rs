//! The fleet's numbers for the dashboard: hosts per status, compliance, pending security updates
//! per severity, and the daily compliance samples behind the trend.
//!
//! A host is **compliant** when it has been scanned and has no pending security update; hosts
//! never scanned count in neither part of the percentage. Only approved hosts count.
//!
//! **Samples** ([`Store::record_compliance_sample`]) are taken by the manager's hourly upkeep:
//! one row per UTC day and per *set of groups* (see the migration `0007_compliance.sql`). A
//! scoped reader ([`Scope::Groups`]) sums the rows whose set is empty or shares one of its
//! groups, which is exactly the host list's rule, so every host is counted once. Group
//! membership is that of the moment of the sample.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use crate::error::Result;
use crate::hosts::{scope_condition, Scope};
use crate::sql::{ms, RowExt, SqlBuilder};
use crate::Store;

/// Days of samples kept; older ones are deleted when a new sample is taken.
pub const COMPLIANCE_SAMPLE_DAYS: i64 = 400;

/// Approved hosts in a scope, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FleetSummary {
    pub total: u64,
    pub pending: u64,
    pub online: u64,
    pub offline: u64,
    pub unreachable: u64,
    pub degraded: u64,
    pub reboot_required: u64,
    /// Never scanned.
    pub unscanned: u64,
    /// Scanned at least once.
    pub scanned: u64,
    /// Scanned, with no pending security update.
    pub compliant: u64,
}

/// Pending security updates (one per host and package) by severity, as the package managers'
/// advisories name it, folded into five levels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeverityCounts {
    /// `critical`, `emergency`.
    pub critical: u64,
    /// `important`, `high`.
    pub high: u64,
    /// `moderate`, `medium`.
    pub medium: u64,
    /// `low`, `negligible`, `unimportant`.
    pub low: u64,
    /// No severity, or one not listed above.
    pub unspecified: u64,
}

impl SeverityCounts {
    fn add(&mut self, severity: &str, count: u64) {
        let slot = match severity.trim().to_ascii_lowercase().as_str() {
            "critical" | "emergency" => &mut self.critical,
            "important" | "high" => &mut self.high,
            "moderate" | "medium" => &mut self.medium,
            "low" | "negligible" | "unimportant" => &mut self.low,
            _ => &mut self.unspecified,
        };
        *slot += count;
    }

    /// All levels together.
    pub fn total(&self) -> u64 {
        self.critical + self.high + self.medium + self.low + self.unspecified
    }
}

/// One day of the compliance trend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComplianceSample {
    /// The UTC day.
    pub day: Date,
    pub scanned: u64,
    pub compliant: u64,
}

fn count(row: &sqlx::any::AnyRow, column: &str) -> Result<u64> {
    Ok(u64::try_from(row.int(column)?).unwrap_or(0))
}

/// The UTC day of `ts`.
pub fn utc_day(ts: Timestamp) -> Date {
    ts.to_zoned(TimeZone::UTC).date()
}

/// Whether a host in `group_set` (comma-separated group ids, `""` for none) is in `scope`.
fn set_in_scope(group_set: &str, scope: &Scope) -> bool {
    match scope {
        Scope::All => true,
        Scope::Groups(groups) => {
            group_set.is_empty()
                || group_set.split(',').any(|id| groups.iter().any(|group| id.parse::<i64>() == Ok(group.0)))
        }
    }
}

impl Store {
    /// The approved hosts in `scope`, counted by status, reboot and compliance (one query).
    pub async fn fleet_summary(&self, scope: &Scope) -> Result<FleetSummary> {
        let mut sql = SqlBuilder::default();
        scope_condition(&mut sql, scope);
        sql.condition("h.approval = 'approved'");
        let when = |condition: &str, name: &str| format!("COUNT(CASE WHEN {condition} THEN 1 END) AS {name}");
        let columns = [
            "COUNT(*) AS total".to_owned(),
            when("h.status = 'pending'", "pending"),
            when("h.status = 'online'", "online"),
            when("h.status = 'offline'", "offline"),
            when("h.status = 'unreachable'", "unreachable"),
            when("h.status = 'degraded'", "degraded"),
            when("h.reboot_required = 1", "reboot_required"),
            when("h.scanned_at IS NULL", "unscanned"),
            when("h.scanned_at IS NOT NULL", "scanned"),
            when("h.scanned_at IS NOT NULL AND h.security_updates_count = 0", "compliant"),
        ];
        sql.push(&format!("SELECT {} FROM hosts h{}", columns.join(", "), sql.where_clause()));
        let row = sql.query().fetch_one(&self.pool).await?;
        Ok(FleetSummary {
            total: count(&row, "total")?,
            pending: count(&row, "pending")?,
            online: count(&row, "online")?,
            offline: count(&row, "offline")?,
            unreachable: count(&row, "unreachable")?,
            degraded: count(&row, "degraded")?,
            reboot_required: count(&row, "reboot_required")?,
            unscanned: count(&row, "unscanned")?,
            scanned: count(&row, "scanned")?,
            compliant: count(&row, "compliant")?,
        })
    }

    /// Pending security updates of the approved hosts in `scope` by severity, and how many
    /// hosts have at least one.
    pub async fn security_updates_by_severity(&self, scope: &Scope) -> Result<(SeverityCounts, u64)> {
        let mut sql = SqlBuilder::default();
        scope_condition(&mut sql, scope);
        sql.condition("h.approval = 'approved'");
        sql.condition("u.security_class = 'security'");
        let from = format!("host_updates u JOIN hosts h ON h.id = u.host_id{}", sql.where_clause());
        let mut hosts_sql = sql.clone();
        sql.push(&format!(
            "SELECT COALESCE(u.severity, '') AS severity, COUNT(*) AS n FROM {from} GROUP BY u.severity"
        ));
        let mut counts = SeverityCounts::default();
        for row in sql.query().fetch_all(&self.pool).await? {
            counts.add(&row.text("severity")?, count(&row, "n")?);
        }
        hosts_sql.push(&format!("SELECT COUNT(DISTINCT u.host_id) AS hosts FROM {from}"));
        let hosts = count(&hosts_sql.query().fetch_one(&self.pool).await?, "hosts")?;
        Ok((counts, hosts))
    }

    /// Takes today's (UTC) compliance sample of every approved host, replacing an earlier sample
    /// of the same day, and deletes samples older than [`COMPLIANCE_SAMPLE_DAYS`].
    pub async fn record_compliance_sample(&self, now: Timestamp) -> Result<()> {
        let hosts = sqlx::query(
            "SELECT h.id, CASE WHEN h.security_updates_count = 0 THEN 1 ELSE 0 END AS compliant FROM hosts h \
             WHERE h.approval = 'approved' AND h.scanned_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut groups: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for row in sqlx::query("SELECT host_id, group_id FROM host_groups ORDER BY host_id, group_id")
            .fetch_all(&self.pool)
            .await?
        {
            groups.entry(row.int("host_id")?).or_default().push(row.int("group_id")?);
        }
        let mut sets: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for row in &hosts {
            let set = groups
                .get(&row.int("id")?)
                .map(|ids| ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
                .unwrap_or_default();
            let entry = sets.entry(set).or_default();
            entry.0 += 1;
            entry.1 += row.int("compliant")?;
        }
        let today = utc_day(now);
        let oldest = today.checked_sub(COMPLIANCE_SAMPLE_DAYS.days()).unwrap_or(today);
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM compliance_samples WHERE day = $1 OR day < $2")
            .bind(today.to_string())
            .bind(oldest.to_string())
            .execute(&mut *tx)
            .await?;
        for (set, (scanned, compliant)) in sets {
            sqlx::query(
                "INSERT INTO compliance_samples (day, group_set, scanned, compliant, sampled_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(today.to_string())
            .bind(set)
            .bind(scanned)
            .bind(compliant)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The samples from `since` to `until` (inclusive), oldest first, summed over the sets of
    /// groups in `scope`. Days without a sample are left out.
    pub async fn compliance_trend(&self, scope: &Scope, since: Date, until: Date) -> Result<Vec<ComplianceSample>> {
        let rows = sqlx::query(
            "SELECT day, group_set, scanned, compliant FROM compliance_samples WHERE day >= $1 AND day <= $2",
        )
        .bind(since.to_string())
        .bind(until.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut days: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for row in &rows {
            if set_in_scope(&row.text("group_set")?, scope) {
                let entry = days.entry(row.text("day")?).or_default();
                entry.0 += count(row, "scanned")?;
                entry.1 += count(row, "compliant")?;
            }
        }
        days.into_iter()
            .map(|(day, (scanned, compliant))| {
                let day = day.parse::<Date>().map_err(|e| {
                    crate::Error::Corrupt(format!("compliance_samples.day holds {day:?}, not a date: {e}"))
                })?;
                Ok(ComplianceSample { day, scanned, compliant })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::GroupId;

    #[test]
    fn severities_fold_into_five_levels() {
        let mut counts = SeverityCounts::default();
        for (severity, n) in
            [("Critical", 1), ("important", 2), ("HIGH", 3), ("Moderate", 4), ("low", 5), ("", 6), ("weird", 7)]
        {
            counts.add(severity, n);
        }
        assert_eq!(
            counts,
            SeverityCounts { critical: 1, high: 5, medium: 4, low: 5, unspecified: 13 },
            "each advisory vocabulary lands in its level"
        );
        assert_eq!(counts.total(), 28);
    }

    #[test]
    fn a_group_set_is_in_scope_when_empty_or_sharing_a_group() {
        let scope = Scope::Groups(vec![GroupId(3), GroupId(12)]);
        assert!(set_in_scope("", &scope), "ungrouped hosts are visible to everyone");
        assert!(set_in_scope("1,12", &scope));
        assert!(!set_in_scope("1,2", &scope), "no shared group");
        assert!(!set_in_scope("123", &scope), "ids are compared whole, not as text prefixes");
        assert!(set_in_scope("1,2", &Scope::All));
    }
}
