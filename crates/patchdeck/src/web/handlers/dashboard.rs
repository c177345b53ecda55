//! `/api/v1/dashboard`: the fleet at a glance, through the caller's scope — hosts per status,
//! compliance now and per day, pending security updates per severity. The trend's past days are
//! the upkeep's daily samples (store `compliance.rs`); today is always computed live.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use axum::extract::State;
use jiff::{Timestamp, ToSpan};
use patchdeck_store::{utc_day, ComplianceSample, FleetSummary, SeverityCounts};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::{Json, Query};

/// Longest trend, in days.
pub const MAX_TREND_DAYS: u32 = 365;

/// `?days=`: how many days the trend covers, today included (1–365, default 30).
#[derive(Debug, Deserialize, IntoParams)]
pub struct DashboardQuery {
    pub days: Option<u32>,
}

/// Approved hosts the caller can see, counted.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardHosts {
    pub total: u64,
    pub pending: u64,
    pub online: u64,
    pub offline: u64,
    pub unreachable: u64,
    pub degraded: u64,
    /// Hosts whose last check-in or poll said a reboot is needed.
    pub reboot_required: u64,
    /// Hosts never scanned (they count in neither part of the compliance percentage).
    pub unscanned: u64,
}

/// Scanned hosts with no pending security update, of all scanned hosts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Compliance {
    pub scanned: u64,
    pub compliant: u64,
    /// 0–100, rounded to one decimal; `null` when no host has been scanned.
    #[schema(required = true)]
    pub percent: Option<f64>,
}

/// One day of the compliance trend (a UTC day).
#[derive(Debug, Serialize, ToSchema)]
pub struct ComplianceDay {
    /// `YYYY-MM-DD`.
    #[schema(value_type = String, example = "2026-12-04")]
    pub day: String,
    pub scanned: u64,
    pub compliant: u64,
    /// As in [`Compliance`].
    #[schema(required = true)]
    pub percent: Option<f64>,
}

/// Pending security updates (one per host and package), by severity.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityBySeverity {
    /// `critical`, `emergency`.
    pub critical: u64,
    /// `important`, `high`.
    pub high: u64,
    /// `moderate`, `medium`.
    pub medium: u64,
    /// `low`, `negligible`, `unimportant`.
    pub low: u64,
    /// No severity given, or another word.
    pub unspecified: u64,
}

/// Pending security updates of the hosts the caller can see.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardSecurity {
    pub total: u64,
    /// Hosts with at least one.
    pub hosts: u64,
    pub by_severity: SecurityBySeverity,
}

/// The dashboard's fleet numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardView {
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: Timestamp,
    pub hosts: DashboardHosts,
    pub compliance: Compliance,
    pub security_updates: DashboardSecurity,
    /// Oldest first; days without a sample are left out; the last entry is today, live.
    pub trend: Vec<ComplianceDay>,
}

fn percent(scanned: u64, compliant: u64) -> Option<f64> {
    // Counts are far below 2^52, so the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    (scanned > 0).then(|| (compliant as f64 * 1000.0 / scanned as f64).round() / 10.0)
}

fn day_view(sample: &ComplianceSample) -> ComplianceDay {
    ComplianceDay {
        day: sample.day.to_string(),
        scanned: sample.scanned,
        compliant: sample.compliant,
        percent: percent(sample.scanned, sample.compliant),
    }
}

fn severity_view(counts: SeverityCounts) -> SecurityBySeverity {
    let SeverityCounts { critical, high, medium, low, unspecified } = counts;
    SecurityBySeverity { critical, high, medium, low, unspecified }
}

/// The fleet at a glance: hosts per status, compliance now and its daily trend, pending
/// security updates per severity; only hosts the caller may see.
#[utoipa::path(get, path = "/api/v1/dashboard", tag = "dashboard", params(DashboardQuery),
    responses((status = 200, body = DashboardView), (status = 400)))]
pub async fn get_dashboard(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<DashboardQuery>,
) -> ApiResult<Json<DashboardView>> {
    let days = q.days.unwrap_or(30);
    if !(1..=MAX_TREND_DAYS).contains(&days) {
        return Err(ApiError::validation("days", format!("must be between 1 and {MAX_TREND_DAYS}")));
    }
    let scope = principal.scope();
    let store = state.store();
    let now = state.now();
    let FleetSummary {
        total,
        pending,
        online,
        offline,
        unreachable,
        degraded,
        reboot_required,
        unscanned,
        scanned,
        compliant,
    } = store.fleet_summary(&scope).await?;
    let (severity, hosts_with_security) = store.security_updates_by_severity(&scope).await?;
    let today = utc_day(now);
    let since = today.checked_sub(i64::from(days - 1).days()).map_err(ApiError::internal)?;
    let yesterday = today.yesterday().map_err(ApiError::internal)?;
    let mut trend: Vec<ComplianceDay> =
        store.compliance_trend(&scope, since, yesterday).await?.iter().map(day_view).collect();
    trend.push(day_view(&ComplianceSample { day: today, scanned, compliant }));
    Ok(Json(DashboardView {
        generated_at: now,
        hosts: DashboardHosts { total, pending, online, offline, unreachable, degraded, reboot_required, unscanned },
        compliance: Compliance { scanned, compliant, percent: percent(scanned, compliant) },
        security_updates: DashboardSecurity {
            total: severity.total(),
            hosts: hosts_with_security,
            by_severity: severity_view(severity),
        },
        trend,
    }))
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percent_is_rounded_to_one_decimal_and_absent_without_scans() {
        assert_eq!(percent(0, 0), None);
        assert_eq!(percent(3, 2), Some(66.7));
        assert_eq!(percent(8, 8), Some(100.0));
        assert_eq!(percent(7, 0), Some(0.0));
    }
}
