//! Each host's inventory: the packages it has installed and the updates it can install, as its
//! agent's latest scan reported them, and the fleet-wide package search.
//!
//! **Versions are compared by key, never by text.** Every installed package is stored with
//! `patchdeck_version::sort_key(format, version)`, bytes whose order is the package manager's
//! version order (`1:1.0` > `9.9` for dpkg, `1.0~rc1` < `1.0`). "Which hosts run openssl older
//! than 3.0.13" computes the key of `3.0.13` in each version format and compares keys in SQL
//! (SQLite compares BLOBs, PostgreSQL BYTEA, like `memcmp`), which the `(name, format,
//! version_key)` index serves. A version the format cannot parse has no key and matches no
//! version comparison.

use std::collections::HashSet;

use jiff::Timestamp;
use patchdeck_proto::inventory::{AvailableUpdate, InstalledPackage, ScanReport, SecurityClass};
use patchdeck_version::VersionFormat;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use crate::error::{Error, Result};
use crate::hosts::{scope_condition, Scope};
use crate::sql::{contains_pattern, ms, to_json, RowExt, SqlBuilder};
use crate::types::{HostId, Page, Paging};
use crate::Store;

/// Rows per `INSERT` statement when an inventory is replaced: 200 rows of at most 11 values stay
/// far below both backends' limits on bound parameters (SQLite 32766, PostgreSQL 65535).
const INSERT_BATCH: usize = 200;

/// One installed package of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPackage {
    /// The host.
    pub host_id: HostId,
    /// Package name.
    pub name: String,
    /// Architecture as the package manager names it.
    pub arch: String,
    /// Version as the package manager spells it.
    pub version: String,
    /// How the host's package manager orders versions.
    pub format: VersionFormat,
    /// The source package it was built from.
    pub source_package: Option<String>,
    /// The source package's version, where known separately.
    pub source_version: Option<String>,
    /// The repository it came from.
    pub origin: Option<String>,
    /// Held back from upgrades.
    pub held: bool,
}

/// One available update of a host, with its security classification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostUpdate {
    /// The host.
    pub host_id: HostId,
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Installed version.
    pub current_version: String,
    /// Version the update installs.
    pub candidate_version: String,
    /// Repository (or suite) of the candidate.
    pub repository: Option<String>,
    /// Whether it fixes a security problem.
    pub security_class: SecurityClass,
    /// The evidence for the classification.
    pub security_reason: String,
    /// Advisory id, where the metadata has one.
    pub advisory_id: Option<String>,
    /// Severity as the advisory spells it.
    pub severity: Option<String>,
    /// CVE ids linked to the update.
    pub cves: Vec<String>,
    /// Installing it most likely needs a reboot.
    pub reboot_likely: bool,
}

/// Which packages [`Store::list_host_packages`] returns (by name, then architecture).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageFilter {
    /// Substring of the package name, ignoring the case of ASCII letters.
    pub search: Option<String>,
    /// Page.
    pub paging: Paging,
}

/// Which updates [`Store::list_host_updates`] returns (by name, then architecture).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateFilter {
    /// Only updates classified [`SecurityClass::Security`].
    pub security_only: bool,
    /// Substring of the package name, ignoring the case of ASCII letters.
    pub search: Option<String>,
    /// Page.
    pub paging: Paging,
}

/// How [`FleetPackageQuery::version`] compares an installed version with the given one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionCmp {
    /// Installed version older than the given one.
    Lt,
    /// Older or equal.
    Le,
    /// Equal (as the package manager compares: deb `1.0` equals `0:1.0-0`).
    Eq,
    /// Newer or equal.
    Ge,
    /// Newer.
    Gt,
}

/// A fleet-wide package search: which hosts have package `name` (at a version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetPackageQuery {
    /// The caller's scope: hosts outside it are neither listed nor counted.
    pub scope: Scope,
    /// Exact package name.
    pub name: String,
    /// Only installed versions that compare so with this version, in each host's own version
    /// format. Formats in which the version does not parse match nothing.
    pub version: Option<(VersionCmp, String)>,
    /// Page.
    pub paging: Paging,
}

/// A host that has the searched package installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetPackageHit {
    /// The host.
    pub host_id: HostId,
    /// Its hostname.
    pub hostname: String,
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Installed version.
    pub version: String,
    /// The host's version format.
    pub format: VersionFormat,
}

const PACKAGE_COLUMNS: &str = "host_id, name, arch, version, format, source_package, source_version, origin, held";
const UPDATE_COLUMNS: &str = "host_id, name, arch, current_version, candidate_version, repository, \
    security_class, security_reason, advisory_id, severity, cves, reboot_likely";

fn security_class_str(class: SecurityClass) -> &'static str {
    match class {
        SecurityClass::Security => "security",
        SecurityClass::NotSecurity => "not_security",
        SecurityClass::Unknown => "unknown",
    }
}

fn parse_security_class(row: &AnyRow) -> Result<SecurityClass> {
    let text = row.text("security_class")?;
    [SecurityClass::Security, SecurityClass::NotSecurity, SecurityClass::Unknown]
        .into_iter()
        .find(|class| security_class_str(*class) == text)
        .ok_or_else(|| Error::Corrupt(format!("column security_class holds unknown value {text:?}")))
}

fn package_from_row(row: &AnyRow) -> Result<HostPackage> {
    Ok(HostPackage {
        host_id: HostId(row.int("host_id")?),
        name: row.text("name")?,
        arch: row.text("arch")?,
        version: row.text("version")?,
        format: row.parse("format")?,
        source_package: row.opt_text("source_package")?,
        source_version: row.opt_text("source_version")?,
        origin: row.opt_text("origin")?,
        held: row.flag("held")?,
    })
}

fn update_from_row(row: &AnyRow) -> Result<HostUpdate> {
    Ok(HostUpdate {
        host_id: HostId(row.int("host_id")?),
        name: row.text("name")?,
        arch: row.text("arch")?,
        current_version: row.text("current_version")?,
        candidate_version: row.text("candidate_version")?,
        repository: row.opt_text("repository")?,
        security_class: parse_security_class(row)?,
        security_reason: row.text("security_reason")?,
        advisory_id: row.opt_text("advisory_id")?,
        severity: row.opt_text("severity")?,
        cves: row.json("cves")?,
        reboot_likely: row.flag("reboot_likely")?,
    })
}

fn hit_from_row(row: &AnyRow) -> Result<FleetPackageHit> {
    Ok(FleetPackageHit {
        host_id: HostId(row.int("host_id")?),
        hostname: row.text("hostname")?,
        name: row.text("name")?,
        arch: row.text("arch")?,
        version: row.text("version")?,
        format: row.parse("format")?,
    })
}

/// `(shared, $n, $n+1, …), (shared, …)`: the VALUES of a multi-row `INSERT`, `rows` groups that
/// each start with the `shared` placeholders and go on with `per_row` of their own, numbered
/// from `first`.
fn values_groups(rows: usize, shared: &str, per_row: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * (shared.len() + per_row * 7 + 4));
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(shared);
        for column in 0..per_row {
            sql.push_str(&format!(", ${}", first + row * per_row + column));
        }
        sql.push(')');
    }
    sql
}

/// Refuses a report that lists one installed package twice: the host's rows could not say
/// which one is true.
fn check_unique_packages(installed: &[InstalledPackage]) -> Result<()> {
    let mut seen = HashSet::with_capacity(installed.len());
    for package in installed {
        if !seen.insert((&package.name, &package.arch, &package.version)) {
            return Err(Error::Invalid(format!(
                "the inventory lists package {} {} ({}) twice",
                package.name, package.version, package.arch
            )));
        }
    }
    Ok(())
}

/// The keys bounding the versions equal to `version` in `format`: `[low, high)`, or `None`
/// when the version does not parse.
///
/// For every format but one, equal versions have identical keys, so the range is the key
/// itself. pacman is the exception: a version without pkgrel (`1.0`) equals *every* pkgrel of
/// it (`1.0-1`, `1.0-2`), and its key sorts just before theirs (`…00` against `…01…`; see
/// `patchdeck_version::pacman`). The keys equal to it then span from its key up to, not
/// including, the same key ending in `02`.
fn equal_range(format: VersionFormat, version: &str) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let key = patchdeck_version::sort_key(format, version).ok()?;
    let pacman_without_pkgrel = format == VersionFormat::Pacman
        && patchdeck_version::pacman::parse(version).is_ok_and(|evr| evr.release.is_none());
    if pacman_without_pkgrel && key.last() == Some(&0x00) {
        let mut high = key.clone();
        if let Some(last) = high.last_mut() {
            *last = 0x02;
        }
        return Some((key, Some(high)));
    }
    Some((key, None))
}

/// The SQL condition on `p.version_key` for `cmp` against the versions in `[low, high)`
/// (`high` `None`: exactly `low`).
fn key_condition(sql: &mut SqlBuilder, cmp: VersionCmp, low: Vec<u8>, high: Option<Vec<u8>>) -> String {
    match (cmp, high) {
        (VersionCmp::Lt, _) => format!("p.version_key < {}", sql.arg(low)),
        (VersionCmp::Ge, _) => format!("p.version_key >= {}", sql.arg(low)),
        (VersionCmp::Le, None) => format!("p.version_key <= {}", sql.arg(low)),
        (VersionCmp::Le, Some(high)) => format!("p.version_key < {}", sql.arg(high)),
        (VersionCmp::Eq, None) => format!("p.version_key = {}", sql.arg(low)),
        (VersionCmp::Eq, Some(high)) => {
            format!("p.version_key >= {} AND p.version_key < {}", sql.arg(low), sql.arg(high))
        }
        (VersionCmp::Gt, None) => format!("p.version_key > {}", sql.arg(low)),
        (VersionCmp::Gt, Some(high)) => format!("p.version_key >= {}", sql.arg(high)),
    }
}

impl Store {
    /// Replaces a host's inventory with `report`, in one transaction: the host row first (its
    /// lock orders concurrent replacements; [`Error::NotFound`] when the host does not exist),
    /// then every package and update, inserted 200 rows per statement.
    ///
    /// The host row gets `hash`, the scan time, package manager and version format, the
    /// operating system (`os_name` = `os.id`, `os_version` = `os.version_id`, pretty name,
    /// kernel and architecture where the report has them), the reboot flag and the counts of
    /// installed packages, updates and security updates. Each package is stored with its version
    /// key in `report.version_format` (none when the version does not parse). A report that lists
    /// one package (name, architecture, version) twice is [`Error::Invalid`] and changes nothing.
    pub async fn replace_inventory(&self, host: HostId, report: &ScanReport, hash: &str, now: Timestamp) -> Result<()> {
        check_unique_packages(&report.installed)?;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE hosts SET inventory_hash = $2, scanned_at = $3, backend = $4, version_format = $5, \
             os_name = $6, os_version = $7, os_pretty_name = COALESCE($8, os_pretty_name), \
             kernel = COALESCE($9, kernel), arch = COALESCE($10, arch), reboot_required = $11, \
             installed_count = $12, updates_count = $13, security_updates_count = $14, updated_at = $15 \
             WHERE id = $1",
        )
        .bind(host.0)
        .bind(hash)
        .bind(ms(report.scanned_at))
        .bind(report.backend.as_str())
        .bind(report.version_format.as_str())
        .bind(report.os.id.as_str())
        .bind(report.os.version_id.as_deref())
        .bind(report.os.pretty_name.as_deref())
        .bind(report.os.kernel.as_deref())
        .bind(report.os.arch.as_deref())
        .bind(i64::from(report.reboot.required))
        .bind(count(report.installed.len()))
        .bind(count(report.updates.len()))
        .bind(count(report.security_update_count()))
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound("host"));
        }
        sqlx::query("DELETE FROM host_packages WHERE host_id = $1").bind(host.0).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM host_updates WHERE host_id = $1").bind(host.0).execute(&mut *tx).await?;
        for chunk in report.installed.chunks(INSERT_BATCH) {
            insert_packages(&mut tx, host, report.version_format, chunk).await?;
        }
        for chunk in report.updates.chunks(INSERT_BATCH) {
            insert_updates(&mut tx, host, chunk).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One page of a host's installed packages, by name, architecture and version (code-point
    /// order). An unknown host has none.
    pub async fn list_host_packages(&self, host: HostId, filter: &PackageFilter) -> Result<Page<HostPackage>> {
        let mut sql = SqlBuilder::default();
        let id = sql.arg(host.0);
        sql.condition(format!("host_id = {id}"));
        if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let p = sql.arg(contains_pattern(search));
            sql.condition(format!("LOWER(name) LIKE {p} ESCAPE '\\'"));
        }
        let order = format!("{}, {}, {}", self.text_order("name"), self.text_order("arch"), self.text_order("version"));
        self.fetch_page(sql, PACKAGE_COLUMNS, "host_packages", &order, filter.paging, package_from_row).await
    }

    /// One page of a host's available updates, by name and architecture (code-point order).
    pub async fn list_host_updates(&self, host: HostId, filter: &UpdateFilter) -> Result<Page<HostUpdate>> {
        let mut sql = SqlBuilder::default();
        let id = sql.arg(host.0);
        sql.condition(format!("host_id = {id}"));
        if filter.security_only {
            let class = sql.arg(security_class_str(SecurityClass::Security));
            sql.condition(format!("security_class = {class}"));
        }
        if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let p = sql.arg(contains_pattern(search));
            sql.condition(format!("LOWER(name) LIKE {p} ESCAPE '\\'"));
        }
        let order = format!(
            "{}, {}, {}",
            self.text_order("name"),
            self.text_order("arch"),
            self.text_order("candidate_version")
        );
        self.fetch_page(sql, UPDATE_COLUMNS, "host_updates", &order, filter.paging, update_from_row).await
    }

    /// The hosts in `query.scope` that have package `query.name` installed, optionally only at
    /// versions that compare with `query.version` as asked; by hostname (code points), host id,
    /// architecture and version. A host with several matching versions or architectures
    /// appears once per installed package. Hosts of every approval are searched.
    ///
    /// The given version is turned into a sort key in each version format (deb, rpm, apk,
    /// pacman) and compared with the stored keys of the packages in that format only; a format
    /// in which it does not parse is skipped. [`Error::Invalid`] when it parses in none.
    pub async fn search_fleet_packages(&self, query: &FleetPackageQuery) -> Result<Page<FleetPackageHit>> {
        let mut sql = SqlBuilder::default();
        let name = sql.arg(query.name.as_str());
        sql.condition(format!("p.name = {name}"));
        if let Some((cmp, version)) = &query.version {
            let mut per_format = Vec::new();
            for format in VersionFormat::ALL {
                let Some((low, high)) = equal_range(format, version) else { continue };
                let format = sql.arg(format.as_str());
                let keys = key_condition(&mut sql, *cmp, low, high);
                per_format.push(format!("(p.format = {format} AND {keys})"));
            }
            if per_format.is_empty() {
                return Err(Error::Invalid(format!(
                    "version {version:?} is not a valid deb, rpm, apk or pacman version"
                )));
            }
            sql.condition(format!("({})", per_format.join(" OR ")));
        }
        scope_condition(&mut sql, &query.scope);
        let order = format!(
            "{}, h.id, {}, {}",
            self.text_order("h.hostname"),
            self.text_order("p.arch"),
            self.text_order("p.version")
        );
        self.fetch_page(
            sql,
            "p.host_id, h.hostname, p.name, p.arch, p.version, p.format",
            "host_packages p JOIN hosts h ON h.id = p.host_id",
            &order,
            query.paging,
            hit_from_row,
        )
        .await
    }
}

async fn insert_packages(
    tx: &mut Transaction<'static, Any>,
    host: HostId,
    format: VersionFormat,
    packages: &[InstalledPackage],
) -> Result<()> {
    const PER_ROW: usize = 8;
    let mut sql = String::from(
        "INSERT INTO host_packages (host_id, format, name, arch, version, version_key, source_package, \
         source_version, origin, held) VALUES ",
    );
    // $1 is the host and $2 the format of every row; each row binds the rest.
    sql.push_str(&values_groups(packages.len(), "$1, $2", PER_ROW, 3));
    let mut insert = sqlx::query(&sql).bind(host.0).bind(format.as_str());
    for package in packages {
        insert = insert
            .bind(package.name.as_str())
            .bind(package.arch.as_str())
            .bind(package.version.as_str())
            .bind(patchdeck_version::sort_key(format, &package.version).ok())
            .bind(package.source_package.as_deref())
            .bind(package.source_version.as_deref())
            .bind(package.origin.as_deref())
            .bind(i64::from(package.held));
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

async fn insert_updates(tx: &mut Transaction<'static, Any>, host: HostId, updates: &[AvailableUpdate]) -> Result<()> {
    const PER_ROW: usize = 11;
    let mut sql = String::from(
        "INSERT INTO host_updates (host_id, name, arch, current_version, candidate_version, repository, \
         security_class, security_reason, advisory_id, severity, cves, reboot_likely) VALUES ",
    );
    sql.push_str(&values_groups(updates.len(), "$1", PER_ROW, 2));
    let mut insert = sqlx::query(&sql).bind(host.0);
    for update in updates {
        insert = insert
            .bind(update.name.as_str())
            .bind(update.arch.as_str())
            .bind(update.current_version.as_str())
            .bind(update.candidate_version.as_str())
            .bind(update.repository.as_deref())
            .bind(security_class_str(update.security.class))
            .bind(update.security.reason.as_str())
            .bind(update.security.advisory_id.as_deref())
            .bind(update.security.severity.as_deref())
            .bind(to_json(&update.cves, "cves")?)
            .bind(i64::from(update.reboot_likely));
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_groups_number_placeholders_row_by_row() {
        assert_eq!(values_groups(2, "$1", 3, 2), "($1, $2, $3, $4), ($1, $5, $6, $7)");
        assert_eq!(values_groups(1, "$1, $2", 1, 3), "($1, $2, $3)");
    }

    #[test]
    fn pacman_versions_without_pkgrel_span_every_pkgrel() {
        let key = |v| patchdeck_version::sort_key(VersionFormat::Pacman, v).unwrap();
        let (low, high) = equal_range(VersionFormat::Pacman, "1.0").unwrap();
        let high = high.expect("a range");
        for equal in ["1.0", "1.0-1", "1.0-2", "1.0-10.1"] {
            assert!(low <= key(equal) && key(equal) < high, "{equal}");
        }
        for older in ["0.9", "0.9-9", "1.0rc1-1"] {
            assert!(key(older) < low, "{older}");
        }
        for newer in ["1.0.1", "1.0.1-1", "1:0.1-1"] {
            assert!(key(newer) >= high, "{newer}");
        }
        assert_eq!(equal_range(VersionFormat::Pacman, "1.0-1").unwrap().1, None);
        assert_eq!(equal_range(VersionFormat::Deb, "1.0").unwrap().1, None);
        assert!(equal_range(VersionFormat::Deb, "1.0-").is_none());
    }

    #[test]
    fn security_classes_round_trip_their_serde_spelling() {
        for class in [SecurityClass::Security, SecurityClass::NotSecurity, SecurityClass::Unknown] {
            assert_eq!(serde_json::to_string(&class).unwrap(), format!("\"{}\"", security_class_str(class)));
        }
    }
}
