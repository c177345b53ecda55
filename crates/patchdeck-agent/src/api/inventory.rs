//! The in-memory inventory snapshot that `GET /packages`, `/packages/{name}` and `/patches` are
//! served from, so that a read never runs the package manager (goal: p99 < 200 ms with 2,000
//! packages; the package manager alone takes seconds).
//!
//! # When the snapshot is taken
//!
//! - at start ([`Inventory::load`]: the API does not serve before it has one),
//! - after every job that finished (the refresher subscribes to the engine's events),
//! - when it is older than [`InventoryConfig::max_age`],
//!
//! always in the background, and never while a job is pending or running: the refresher waits until
//! the engine has no active job, and throws a snapshot away if a job became active while it was
//! being taken (it then tries again after that job). Readers always see a whole snapshot (an
//! `Arc` swapped under a lock); a failed refresh keeps the last good snapshot and is reported by
//! `/health` as `cache_status: failed`.
//!
//! # Mapping to the contract
//!
//! - `Package.status` is `upgradable` when an update is available, else `installed`;
//!   `latest_version` and `cve_ids` come from the update; `install_date` is RFC 3339;
//!   `size_installed` is `"<n> KB"` (the upstream's text format). `description` and the dependency
//!   lists are not collected by the package layer's scan and are empty.
//! - Packages installed for several architectures appear once, under their first architecture.
//! - `Patch.severity` (contract: critical/high/medium/low) from the update's security information:
//!   the vendor's severity when it gives one (`critical` → critical; `important`/`high` → high;
//!   `moderate`/`medium` → medium; `low`/`negligible` → low); otherwise by class: a security update
//!   of unknown severity is **high** (so it counts in `security_updates`: we never under-report a
//!   security fix), an update of unknown class (pacman, apk: no metadata) is **medium** (never
//!   called a security fix, never dismissed), and a non-security update is **low**.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use patchdeck_pkg::PkgError;
use patchdeck_proto::lpa::{Package, PackageQuery, PackageSort, PackageStatus, Patch, Severity, SortOrder};
use patchdeck_proto::{AvailableUpdate, InstalledPackage, RebootStatus, SecurityClass, SecurityInfo};
use tokio::sync::{broadcast, Notify};

use crate::jobs::{JobEngine, JobEventKind, PackageBackend};

/// When the inventory is read again.
#[derive(Debug, Clone)]
pub struct InventoryConfig {
    /// A snapshot older than this is taken again (default 5 minutes).
    pub max_age: Duration,
    /// How often to look again while waiting for active jobs to finish (default 1 s).
    pub busy_poll: Duration,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig { max_age: Duration::from_secs(300), busy_poll: Duration::from_secs(1) }
    }
}

/// One consistent reading of the package manager.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken.
    pub taken_at: Timestamp,
    /// Installed packages, sorted by name.
    pub packages: Vec<Package>,
    /// Available updates, sorted by name.
    pub patches: Vec<Patch>,
    /// The host's reboot status.
    pub reboot: RebootStatus,
    /// When the package index was last refreshed, if known.
    pub last_refresh: Option<Timestamp>,
    by_name: HashMap<String, usize>,
}

impl Snapshot {
    /// Builds the snapshot from what the package layer reported.
    pub fn build(
        taken_at: Timestamp,
        installed: Vec<InstalledPackage>,
        updates: Vec<AvailableUpdate>,
        reboot: RebootStatus,
        last_refresh: Option<Timestamp>,
    ) -> Snapshot {
        let mut update_of: HashMap<&str, &AvailableUpdate> = HashMap::new();
        for update in &updates {
            update_of.entry(update.name.as_str()).or_insert(update);
        }
        let mut packages: Vec<Package> = Vec::with_capacity(installed.len());
        let mut by_name = HashMap::with_capacity(installed.len());
        let mut sorted = installed;
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        for p in sorted {
            if by_name.contains_key(&p.name) {
                continue;
            }
            let update = update_of.get(p.name.as_str());
            by_name.insert(p.name.clone(), packages.len());
            packages.push(Package {
                status: if update.is_some() { PackageStatus::Upgradable } else { PackageStatus::Installed },
                upgradable: update.is_some(),
                latest_version: update.map(|u| u.candidate_version.clone()),
                description: String::new(),
                dependencies: Vec::new(),
                reverse_dependencies: Vec::new(),
                install_date: p.installed_at.map(|t| t.to_string()),
                size_installed: p.size_bytes.map(|b| format!("{} KB", b.div_ceil(1024))),
                cve_ids: update.map(|u| u.cves.clone()).unwrap_or_default(),
                name: p.name,
                version: p.version,
            });
        }
        let mut patches: Vec<Patch> = updates
            .iter()
            .map(|u| Patch {
                name: u.name.clone(),
                current_version: u.current_version.clone(),
                available_version: u.candidate_version.clone(),
                severity: severity(&u.security),
                description: u.security.reason.clone(),
                cve_ids: u.cves.clone(),
                requires_reboot: u.reboot_likely,
            })
            .collect();
        patches.sort_by(|a, b| a.name.cmp(&b.name));
        patches.dedup_by(|a, b| a.name == b.name);
        Snapshot { taken_at, packages, patches, reboot, last_refresh, by_name }
    }

    /// One installed package.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.by_name.get(name).map(|&i| &self.packages[i])
    }

    /// The page of packages `query` selects, and how many matched in all.
    pub fn query(&self, query: &PackageQuery, format: patchdeck_version::VersionFormat) -> (Vec<Package>, u64) {
        let mut matching: Vec<&Package> = self.packages.iter().filter(|p| query.matches(p)).collect();
        let total = matching.len() as u64;
        match query.sort {
            PackageSort::Name => {} // already sorted by name
            PackageSort::Version => matching.sort_by(|a, b| {
                patchdeck_version::compare(format, &a.version, &b.version)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| a.name.cmp(&b.name))
            }),
            PackageSort::Status => {
                matching.sort_by(|a, b| status_rank(a.status).cmp(&status_rank(b.status)).then(a.name.cmp(&b.name)))
            }
        }
        if query.order == SortOrder::Desc {
            matching.reverse();
        }
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let page = matching.into_iter().skip(offset).take(query.limit as usize).cloned().collect();
        (page, total)
    }
}

fn status_rank(status: PackageStatus) -> u8 {
    match status {
        PackageStatus::Installed => 0,
        PackageStatus::Upgradable => 1,
        PackageStatus::Available => 2,
        PackageStatus::NotInstalled => 3,
    }
}

/// The contract's severity of an update; see the module docs.
pub fn severity(security: &SecurityInfo) -> Severity {
    let vendor = security.severity.as_deref().map(str::to_ascii_lowercase);
    match vendor.as_deref() {
        Some("critical") => return Severity::Critical,
        Some("important" | "high") => return Severity::High,
        Some("moderate" | "medium") => return Severity::Medium,
        Some("low" | "negligible") => return Severity::Low,
        _ => {}
    }
    match security.class {
        SecurityClass::Security => Severity::High,
        SecurityClass::Unknown => Severity::Medium,
        SecurityClass::NotSecurity => Severity::Low,
    }
}

/// The shared inventory: the current snapshot and the background refresher.
#[derive(Debug, Clone)]
pub struct Inventory {
    inner: Arc<InventoryInner>,
}

#[derive(Debug)]
struct InventoryInner {
    backend: PackageBackend,
    config: InventoryConfig,
    current: RwLock<Arc<Snapshot>>,
    /// The last refresh's error, if it failed.
    last_error: RwLock<Option<String>>,
    wake: Notify,
}

impl Inventory {
    /// Takes the first snapshot (an error if the package manager cannot be read) and starts the
    /// background refresher, which stops when the engine is dropped... or never; it holds a clone
    /// of the engine, so it lives as long as the runtime.
    pub async fn load(
        backend: PackageBackend,
        engine: JobEngine,
        config: InventoryConfig,
    ) -> Result<Inventory, PkgError> {
        let first = take(backend.clone()).await?;
        let inventory = Inventory {
            inner: Arc::new(InventoryInner {
                backend,
                config,
                current: RwLock::new(Arc::new(first)),
                last_error: RwLock::new(None),
                wake: Notify::new(),
            }),
        };
        tokio::spawn(inventory.clone().refresher(engine));
        Ok(inventory)
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The last refresh's error, if the last refresh failed.
    pub fn last_error(&self) -> Option<String> {
        self.inner.last_error.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Asks the refresher to take a new snapshot as soon as no job is active.
    pub fn request_refresh(&self) {
        self.inner.wake.notify_one();
    }

    /// The version format of the host's package manager.
    pub fn version_format(&self) -> patchdeck_version::VersionFormat {
        self.inner.backend.kind.version_format()
    }

    async fn refresher(self, engine: JobEngine) {
        let mut events = engine.subscribe();
        let mut dirty = false;
        loop {
            let age = self.age();
            let wait = if dirty { self.inner.config.busy_poll } else { self.inner.config.max_age.saturating_sub(age) };
            tokio::select! {
                event = events.recv() => match event {
                    Ok(e) if e.kind == JobEventKind::Status && e.status.is_terminal() => dirty = true,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => dirty = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(wait) => {
                    if self.age() >= self.inner.config.max_age {
                        dirty = true;
                    }
                }
                () = self.inner.wake.notified() => dirty = true,
            }
            if !dirty || !engine.active_jobs().is_empty() {
                continue;
            }
            let result = take(self.inner.backend.clone()).await;
            if !engine.active_jobs().is_empty() {
                // A job started while we read: the snapshot may be half old, half new.
                continue;
            }
            dirty = false;
            match result {
                Ok(snapshot) => {
                    tracing::debug!(
                        packages = snapshot.packages.len(),
                        patches = snapshot.patches.len(),
                        "inventory refreshed"
                    );
                    *self.inner.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snapshot);
                    *self.inner.last_error.write().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "inventory refresh failed; serving the previous snapshot");
                    *self.inner.last_error.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        Some(e.to_string());
                }
            }
        }
    }

    fn age(&self) -> Duration {
        let taken = self.snapshot().taken_at;
        let age = Timestamp::now().duration_since(taken);
        Duration::try_from(age).unwrap_or_default()
    }
}

/// Reads the package manager on a blocking thread.
async fn take(backend: PackageBackend) -> Result<Snapshot, PkgError> {
    let joined = tokio::task::spawn_blocking(move || {
        let pm = patchdeck_pkg::open(backend.kind, backend.options);
        let installed = pm.installed()?;
        let updates = pm.updates()?;
        let reboot = pm.reboot_status()?;
        let last_refresh = pm.last_refresh()?;
        Ok(Snapshot::build(Timestamp::now(), installed, updates, reboot, last_refresh))
    })
    .await;
    joined.unwrap_or_else(|e| {
        Err(PkgError::Io {
            path: "inventory".into(),
            source: std::io::Error::other(format!("inventory task failed: {e}")),
        })
    })
}

#[cfg(test)]
mod tests {
    use patchdeck_version::VersionFormat;

    use super::*;

    fn security(class: SecurityClass, severity: Option<&str>) -> SecurityInfo {
        SecurityInfo { class, reason: "test".to_owned(), advisory_id: None, severity: severity.map(str::to_owned) }
    }

    #[test]
    fn severity_uses_the_vendor_word_then_the_class() {
        assert_eq!(severity(&security(SecurityClass::Security, Some("Critical"))), Severity::Critical);
        assert_eq!(severity(&security(SecurityClass::Security, Some("Important"))), Severity::High);
        assert_eq!(severity(&security(SecurityClass::Security, Some("moderate"))), Severity::Medium);
        assert_eq!(severity(&security(SecurityClass::Security, Some("low"))), Severity::Low);
        assert_eq!(severity(&security(SecurityClass::Security, None)), Severity::High);
        assert_eq!(severity(&security(SecurityClass::Security, Some("urgency=medium?"))), Severity::High);
        assert_eq!(severity(&security(SecurityClass::Unknown, None)), Severity::Medium);
        assert_eq!(severity(&security(SecurityClass::NotSecurity, None)), Severity::Low);
    }

    fn installed(name: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.to_owned(),
            version: version.to_owned(),
            arch: "amd64".to_owned(),
            source_package: None,
            source_version: None,
            origin: None,
            installed_at: None,
            size_bytes: Some(2048),
            held: false,
        }
    }

    #[test]
    fn query_sorts_versions_by_the_format_and_pages() {
        let snapshot = Snapshot::build(
            Timestamp::UNIX_EPOCH,
            vec![installed("b", "1.10-1"), installed("a", "1.9-1"), installed("c", "1:0.1"), installed("a", "1.9-1")],
            Vec::new(),
            RebootStatus::default(),
            None,
        );
        assert_eq!(snapshot.packages.len(), 3, "a package of two architectures is listed once");
        assert_eq!(snapshot.package("a").unwrap().size_installed.as_deref(), Some("2 KB"));
        let query = PackageQuery { sort: PackageSort::Version, ..PackageQuery::default() };
        let (page, total) = snapshot.query(&query, VersionFormat::Deb);
        let names: Vec<&str> = page.iter().map(|p| p.name.as_str()).collect();
        assert_eq!((names, total), (vec!["a", "b", "c"], 3), "1.9 < 1.10 < 1:0.1 (epoch)");
        let query = PackageQuery { sort: PackageSort::Version, order: SortOrder::Desc, limit: 1, offset: 1, ..query };
        let (page, total) = snapshot.query(&query, VersionFormat::Deb);
        assert_eq!((page[0].name.as_str(), total), ("b", 3));
    }
}
