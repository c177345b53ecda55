//! dnf (Fedora, RHEL 8+ family) and yum (RHEL/CentOS 7): one implementation.
//!
//! # Command line
//!
//! Every dnf/yum command starts with what `Dnf::base_cmd` builds:
//!
//! ```text
//! dnf --color=never --setopt=exit_on_lock=True [--installroot=<root>] [--config=<config_file>] [--releasever=<releasever>]
//! ```
//!
//! * `exit_on_lock=True`: without it dnf waits forever for another dnf
//!   ("Waiting for process with pid N to finish."); with it dnf exits 200 with
//!   `RPMDB already locked by N` and we wait in
//!   `backend::run_waiting_for_lock` with our own limit (`lock_wait`).
//! * `--installroot` only when the root is not `/`.
//! * Plugins stay on: on a real host they matter (versionlock, subscription
//!   manager). Sandboxes turn them off in their own config file (`plugins=0`),
//!   and turn off gpg checks there too (`gpgcheck=0`): this backend never
//!   disables signature checks itself.
//!
//! Read-only queries add `-C` (`--cacheonly`): they use the metadata as last
//! refreshed and never touch the network; dry runs are queries too. Transactions
//! add `-y` and `--setopt=metadata_expire=-1` so that they use the same metadata
//! as the dry run just before them (packages are still downloaded).
//!
//! # Queries
//!
//! * installed: the rpm database ([`crate::rpmdb`]), plus for dnf the repository
//!   each package came from, which only dnf's history database knows:
//!   `dnf -C -q --disablerepo=* repoquery --installed --qf '%{name}\t%{arch}\t%{from_repo}'`
//!   (if that fails the origins stay unknown, with a warning in the log; yum 3
//!   has no `repoquery` subcommand, so origin is always unknown there).
//!   `held`: entries of the versionlock plugin's list
//!   (`/etc/dnf/plugins/versionlock.list`, `/etc/yum/pluginconf.d/versionlock.list`).
//! * updates, dnf: `dnf -C repoquery --upgrades --latest-limit=1 --qf '%{name}\t%{epoch}\t%{version}\t%{release}\t%{arch}\t%{repoid}'`
//!   (one tab-separated line per candidate, the newest version per name and arch,
//!   which is what `dnf upgrade` installs).
//!   yum: `yum -C check-update` (exit 100 = updates; a table of
//!   `name.arch  [epoch:]version-release  repo`, see [`parse_check_update`]).
//! * security: `dnf -C updateinfo list --available` (`yum updateinfo list available`)
//!   gives one line per (advisory, package) for packages newer than the
//!   installed ones: `ID  Label  name-[epoch:]version-release.arch`, the label
//!   `Important/Sec.` for security advisories, else the type (`bugfix`).
//!   `dnf -C updateinfo info --available` gives each advisory's type, severity
//!   and CVE references (`Key: value` blocks, see [`parse_updateinfo_info`]).
//!
//! An update is a security update when a security advisory lists the package
//! (same name and arch, `noarch` matching any) at a version that is newer than the installed one and
//! not newer than the candidate: the candidate contains that fix. This is
//! dnf's own rule for `--security`, and it also covers an advisory for an
//! intermediate version (installed 1.0, advisory for 1.2, candidate 1.3). A
//! candidate from a repository that publishes no updateinfo at all (no
//! `*updateinfo*` file in its metadata cache) is `Unknown`, not `NotSecurity`;
//! so is every candidate without an advisory when the cache cannot be read.
//!
//! # Transactions
//!
//! | operation | command |
//! |---|---|
//! | install | `dnf install -- name` / `name-[epoch:]version[-release]` |
//! | upgrade all | `dnf upgrade` |
//! | upgrade security | `dnf upgrade --security`: dnf upgrades each package that has a security advisory to its **newest** version, not to the minimal fixing one (that would be `upgrade-minimal --security`) |
//! | upgrade exact | `dnf upgrade -- name-[epoch:]version-release …` |
//! | remove | `dnf remove -- name …` |
//! | downgrade | `dnf downgrade -- name-[epoch:]version-release …` |
//!
//! Dry run = the same with `--assumeno` instead of `-y` (both are global
//! options, so they come before the subcommand and its `--`): dnf prints the transaction table and
//! exits 1 with "Operation aborted." (see [`parse_transaction`]); the table
//! gives the new versions, the old ones come from the rpm database. Pinned
//! versions that no repository has make dnf print `No match for argument: x`
//! or `No package x available.` → [`PkgError::VersionUnavailable`].
//! Upgrades and downgrades of packages that are not installed are refused
//! before dnf runs ([`PkgError::NotInstalled`]).
//!
//! # Reboot
//!
//! [`host::reboot_status_common`] plus, on the running system only,
//! `needs-restarting -r` (dnf-utils / yum-utils): exit 1 = reboot needed, with
//! the packages as `  * name` lines.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use jiff::Timestamp;
use patchdeck_proto::{
    AvailableUpdate, BackendKind, InstalledPackage, RebootStatus, SecurityClass, SecurityInfo, Transaction, TxAction,
    TxItem,
};
use patchdeck_version::VersionFormat;

use crate::backend::{
    check_plan, run_waiting_for_lock, Applied, BackendOptions, Operation, PackageManager, UpgradeScope,
};
use crate::error::{PkgError, Result};
use crate::exec::{Cmd, LineSink, Output};
use crate::host;
use crate::rpmdb::{self, Evr, Nevra, RpmPackage};
use crate::spec::{PackageName, Pin};

/// dnf or its predecessor yum: same metadata, nearly the same command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Dnf,
    Yum,
}

impl Flavor {
    /// The program to run.
    pub fn program(self) -> &'static str {
        match self {
            Flavor::Dnf => "dnf",
            Flavor::Yum => "yum",
        }
    }
}

/// The dnf/yum backend.
#[derive(Debug)]
pub struct Dnf {
    flavor: Flavor,
    options: BackendOptions,
}

/// dnf's exit status when it gives up on a lock (`exit_on_lock`).
const EXIT_LOCKED: i32 = 200;

/// Does a read-only query use the cache only, or may a transaction download?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `-C`: metadata as last refreshed, no network.
    CacheOnly,
    /// `--setopt=metadata_expire=-1`: keep the metadata, download packages.
    Transaction,
    /// `makecache --refresh` decides itself.
    Refresh,
}

impl Dnf {
    pub fn new(options: BackendOptions, flavor: Flavor) -> Self {
        Dnf { options, flavor }
    }

    fn backend(&self) -> BackendKind {
        match self.flavor {
            Flavor::Dnf => BackendKind::Dnf,
            Flavor::Yum => BackendKind::Yum,
        }
    }

    /// The program with the options every command gets (see the module docs).
    fn base_cmd(&self, mode: Mode) -> Cmd {
        let o = &self.options;
        let mut cmd = o.cmd(self.flavor.program()).arg("--color=never").arg("--setopt=exit_on_lock=True");
        if !o.is_host_root() {
            let mut arg = std::ffi::OsString::from("--installroot=");
            arg.push(o.root.as_os_str());
            cmd = cmd.arg(arg);
        }
        if let Some(config) = &o.config_file {
            let mut arg = std::ffi::OsString::from("--config=");
            arg.push(config.as_os_str());
            cmd = cmd.arg(arg);
        }
        if let Some(releasever) = &o.releasever {
            cmd = cmd.arg(format!("--releasever={releasever}"));
        }
        match mode {
            Mode::CacheOnly => cmd.arg("-C"),
            Mode::Transaction => cmd.arg("--setopt=metadata_expire=-1"),
            Mode::Refresh => cmd,
        }
    }

    fn rpm_packages(&self) -> Result<Vec<RpmPackage>> {
        rpmdb::installed(&self.options)
    }

    /// (name, arch) → the repository dnf installed it from (dnf only).
    fn origins(&self) -> Result<HashMap<(String, String), String>> {
        if self.flavor == Flavor::Yum {
            return Ok(HashMap::new());
        }
        let cmd = self.base_cmd(Mode::CacheOnly).args([
            "-q",
            "--disablerepo=*",
            "repoquery",
            "--installed",
            "--qf",
            "%{name}\t%{arch}\t%{from_repo}",
        ]);
        let out = cmd.run(None)?;
        if !out.success() {
            // The origin is a nice-to-have: the package list stands without it.
            tracing::warn!(command = %cmd, error = %out.error_summary(), "cannot read dnf's from_repo; origins unknown");
            return Ok(HashMap::new());
        }
        parse_from_repo(&cmd, &out.stdout)
    }

    /// Candidates: (name, arch) → (version, repository).
    fn candidates(&self) -> Result<Vec<Candidate>> {
        match self.flavor {
            Flavor::Dnf => {
                let cmd = self.base_cmd(Mode::CacheOnly).args([
                    "-q",
                    "repoquery",
                    "--upgrades",
                    "--latest-limit=1",
                    "--qf",
                    "%{name}\t%{epoch}\t%{version}\t%{release}\t%{arch}\t%{repoid}",
                ]);
                let out = self.run_query(&cmd, &[0])?;
                parse_repoquery_upgrades(&cmd, &out.stdout)
            }
            Flavor::Yum => {
                let cmd = self.base_cmd(Mode::CacheOnly).arg("check-update");
                let out = self.run_query(&cmd, &[0, 100])?;
                parse_check_update(&cmd, &out.stdout)
            }
        }
    }

    fn advisories(&self) -> Result<(Vec<AdvisoryPackage>, BTreeMap<String, AdvisoryInfo>)> {
        let available: &[&str] = match self.flavor {
            Flavor::Dnf => &["--available"],
            Flavor::Yum => &["available"],
        };
        let list = self.base_cmd(Mode::CacheOnly).args(["updateinfo", "list"]).args(available);
        let out = self.run_query(&list, &[0])?;
        let packages = parse_updateinfo_list(&list, &out.stdout)?;
        let info = self.base_cmd(Mode::CacheOnly).args(["updateinfo", "info"]).args(available);
        let out = self.run_query(&info, &[0])?;
        let infos = parse_updateinfo_info(&info, &out.stdout)?;
        Ok((packages, infos))
    }

    /// Runs a read-only query: even `-C` takes dnf's metadata lock, so it
    /// waits for another dnf like a transaction does (then [`PkgError::Locked`]),
    /// and fails unless the exit code is one of `ok`.
    fn run_query(&self, cmd: &Cmd, ok: &[i32]) -> Result<Output> {
        let out = run_waiting_for_lock(self.backend(), self.options.lock_wait, cmd, None, locked)?;
        match out.code() {
            Some(code) if ok.contains(&code) => Ok(out),
            _ => Err(out.failure(cmd)),
        }
    }

    fn cache_dir(&self) -> std::path::PathBuf {
        self.options.path(match self.flavor {
            Flavor::Dnf => "/var/cache/dnf",
            Flavor::Yum => "/var/cache/yum",
        })
    }

    /// The command line of `op`, and for pinned packages the argument each
    /// pin became (to name it when dnf cannot find it).
    /// `dry_run` adds `--assumeno`, else `-y` (global options: before the subcommand).
    fn op_cmd(&self, op: &Operation, mode: Mode, dry_run: bool) -> Result<(Cmd, Vec<(String, Pin)>)> {
        let mut pins = Vec::new();
        let mut pin_arg = |pin: &Pin| {
            let arg = format!("{}-{}", pin.name.as_str(), pin.version.as_str());
            pins.push((arg.clone(), pin.clone()));
            arg
        };
        let base = self.base_cmd(mode).arg(if dry_run { "--assumeno" } else { "-y" });
        let cmd = match op {
            Operation::Install(specs) => {
                let args: Vec<String> = specs
                    .iter()
                    .map(|s| match s.pinned() {
                        Ok(pin) => pin_arg(&pin),
                        Err(_) => s.name.as_str().to_owned(),
                    })
                    .collect();
                base.arg("install").arg("--").args(args)
            }
            Operation::Upgrade(UpgradeScope::All) => base.arg("upgrade"),
            Operation::Upgrade(UpgradeScope::Security) => base.args(["upgrade", "--security"]),
            Operation::Upgrade(UpgradeScope::Exact(list)) => {
                let args: Vec<String> = list.iter().map(&mut pin_arg).collect();
                base.arg("upgrade").arg("--").args(args)
            }
            Operation::Remove(names) => base.arg("remove").arg("--").args(names.iter().map(PackageName::as_str)),
            Operation::Downgrade(list) => {
                let args: Vec<String> = list.iter().map(&mut pin_arg).collect();
                base.arg("downgrade").arg("--").args(args)
            }
        };
        Ok((cmd, pins))
    }

    /// Refuses upgrades/downgrades of packages that are not installed.
    fn check_installed(&self, op: &Operation, installed: &[RpmPackage]) -> Result<()> {
        let pins = match op {
            Operation::Upgrade(UpgradeScope::Exact(pins)) | Operation::Downgrade(pins) => pins,
            _ => return Ok(()),
        };
        for pin in pins {
            if !installed.iter().any(|p| p.name == pin.name.as_str()) {
                return Err(PkgError::NotInstalled(pin.name.as_str().to_owned()));
            }
        }
        Ok(())
    }

    fn plan(&self, op: &Operation) -> Result<(Transaction, Vec<RpmPackage>)> {
        op.validate()?;
        let installed = self.rpm_packages()?;
        self.check_installed(op, &installed)?;
        let (cmd, pins) = self.op_cmd(op, Mode::CacheOnly, true)?;
        let out = run_waiting_for_lock(self.backend(), self.options.lock_wait, &cmd, None, locked)?;
        check_unavailable(&out, &pins)?;
        // --assumeno: exit 1 "Operation aborted." after a table; exit 0 "Nothing to do.".
        let aborted = out.stderr.contains("Operation aborted") || out.stdout.contains("Operation aborted");
        if !(out.success() || out.code() == Some(1) && aborted) {
            return Err(out.failure(&cmd));
        }
        let tx = parse_transaction(&cmd, &out.stdout, &installed)?;
        check_pins_planned(op, &tx, &installed)?;
        Ok((tx, installed))
    }
}

/// Recognises dnf's and yum's "another process holds the lock" output.
pub fn locked(out: &Output) -> Option<String> {
    let text = out.combined();
    let line = text.lines().map(str::trim).find(|l| {
        l.contains("already locked by")
            || l.starts_with("Waiting for process with pid")
            || l.starts_with("Existing lock ")
            || l.contains("holding the yum lock")
    });
    match line {
        Some(line) => Some(line.to_owned()),
        None if out.code() == Some(EXIT_LOCKED) => Some(format!("exit code {EXIT_LOCKED}")),
        None => None,
    }
}

/// Maps dnf's "cannot find" messages for a pinned argument to
/// [`PkgError::VersionUnavailable`].
fn check_unavailable(out: &Output, pins: &[(String, Pin)]) -> Result<()> {
    let text = out.combined();
    for line in text.lines().map(str::trim) {
        let arg = line
            .strip_prefix("No match for argument: ")
            .or_else(|| line.strip_prefix("No package ").and_then(|r| r.strip_suffix(" available.")))
            .or_else(|| line.strip_prefix("Error: Unable to find a match: "));
        let Some(arg) = arg else { continue };
        for arg in arg.split_whitespace() {
            if let Some((_, pin)) = pins.iter().find(|(a, _)| a == arg) {
                return Err(PkgError::VersionUnavailable {
                    name: pin.name.as_str().to_owned(),
                    version: pin.version.as_str().to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Pinned versions must be what the transaction installs (or what is installed
/// already): dnf may otherwise quietly skip an argument ("Package x of lower
/// version already installed, cannot upgrade it.").
fn check_pins_planned(op: &Operation, tx: &Transaction, installed: &[RpmPackage]) -> Result<()> {
    let pins: Vec<Pin> = match op {
        Operation::Install(specs) => specs.iter().filter_map(|s| s.pinned().ok()).collect(),
        Operation::Upgrade(UpgradeScope::Exact(pins)) | Operation::Downgrade(pins) => pins.clone(),
        _ => return Ok(()),
    };
    for pin in pins {
        let name = pin.name.as_str();
        let want = pin.version.as_str();
        let planned = tx
            .items
            .iter()
            .filter(|i| i.name == name)
            .filter_map(|i| i.to.as_deref().and_then(Evr::parse))
            .any(|evr| rpmdb::version_matches(&evr, want));
        let already = installed.iter().any(|p| p.name == name && rpmdb::version_matches(&p.evr, want));
        if !planned && !already {
            let what = match op {
                Operation::Downgrade(_) => "is not older than the installed version",
                Operation::Upgrade(_) => "is not newer than the installed version (use a downgrade)",
                _ => "is not what the package manager would install",
            };
            return Err(PkgError::invalid("pinned version", &pin.to_string(), what));
        }
    }
    Ok(())
}

impl PackageManager for Dnf {
    fn kind(&self) -> BackendKind {
        self.backend()
    }

    fn options(&self) -> &BackendOptions {
        &self.options
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        let packages = self.rpm_packages()?;
        let origins = if packages.is_empty() { HashMap::new() } else { self.origins()? };
        let locks = versionlock_names(&self.options);
        Ok(packages
            .iter()
            .map(|p| {
                let mut pkg = p.to_installed();
                pkg.origin = origins.get(&(p.name.clone(), p.arch.clone())).cloned();
                pkg.held = locks.contains(&p.name);
                pkg
            })
            .collect())
    }

    fn updates(&self) -> Result<Vec<AvailableUpdate>> {
        let installed = self.rpm_packages()?;
        let candidates = self.candidates()?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let (advisories, infos) = self.advisories()?;
        let with_updateinfo = repos_with_updateinfo(&self.cache_dir());
        let newest = rpmdb::newest_by_name_arch(&installed);
        let mut updates = Vec::new();
        for c in candidates {
            let Some(current) = rpmdb::current_for(&newest, &c.name, &c.arch) else {
                // repoquery --upgrades only lists upgrades of installed packages.
                return Err(PkgError::NotInstalled(format!("{}.{} (offered as an upgrade)", c.name, c.arch)));
            };
            let repo_has_updateinfo = with_updateinfo.as_ref().map(|set| set.contains(&c.repo));
            let (security, cves) = classify(&c, current, &advisories, &infos, repo_has_updateinfo);
            updates.push(AvailableUpdate {
                reboot_likely: host::reboot_likely(&c.name),
                name: c.name,
                arch: c.arch,
                current_version: current.to_string(),
                candidate_version: c.evr.to_string(),
                repository: Some(c.repo),
                security,
                cves,
            });
        }
        updates.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(updates)
    }

    fn refresh(&self, sink: Option<LineSink<'_>>) -> Result<()> {
        let cmd =
            self.base_cmd(Mode::Refresh).args(["makecache", "--refresh"]).with_timeout(self.options.refresh_timeout);
        let out = run_waiting_for_lock(self.backend(), self.options.lock_wait, &cmd, sink, locked)?;
        if !out.success() {
            return Err(out.failure(&cmd));
        }
        Ok(())
    }

    /// dnf (libdnf) touches the cached `primary` metadata file on every
    /// successful refresh, even when the repository did not change; yum
    /// rewrites `repomd.xml`. The newest file in any cached `repodata`
    /// directory (or `repomd.xml`) is the last refresh.
    fn last_refresh(&self) -> Result<Option<Timestamp>> {
        Ok(newest_metadata_mtime(&self.cache_dir()))
    }

    fn dry_run(&self, op: &Operation) -> Result<Transaction> {
        Ok(self.plan(op)?.0)
    }

    fn apply(&self, op: &Operation, sink: Option<LineSink<'_>>) -> Result<Applied> {
        let (transaction, _) = self.plan(op)?;
        check_plan(op, &transaction)?;
        let (cmd, pins) = self.op_cmd(op, Mode::Transaction, false)?;
        let cmd = cmd.with_timeout(self.options.transaction_timeout);
        let out = run_waiting_for_lock(self.backend(), self.options.lock_wait, &cmd, sink, locked)?;
        check_unavailable(&out, &pins)?;
        if !out.success() {
            return Err(out.failure(&cmd));
        }
        Ok(Applied { transaction, output: out })
    }

    fn reboot_status(&self) -> Result<RebootStatus> {
        let mut status = host::reboot_status_common(&self.options, VersionFormat::Rpm)?;
        if self.options.is_host_root() {
            let cmd = self.options.cmd("needs-restarting").arg("-r");
            match cmd.run(None) {
                Ok(out) => apply_needs_restarting(&mut status, &out),
                Err(PkgError::Spawn { .. }) => {} // dnf-utils / yum-utils not installed
                Err(err) => return Err(err),
            }
        }
        Ok(status)
    }
}

/// Adds the evidence of `needs-restarting -r` (exit 1: reboot needed).
fn apply_needs_restarting(status: &mut RebootStatus, out: &Output) {
    match out.code() {
        Some(1) if out.stdout.contains("Reboot is required") => {
            status.required = true;
            status.reasons.push("needs-restarting -r: reboot is required".to_owned());
            for line in out.stdout.lines() {
                if let Some(name) = line.trim().strip_prefix("* ") {
                    status.packages.push(name.trim().to_owned());
                }
            }
            status.packages.sort();
            status.packages.dedup();
        }
        Some(0) => {}
        _ => tracing::warn!(output = %out.error_summary(), "needs-restarting -r gave no usable answer"),
    }
}

/// One upgrade candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub arch: String,
    pub evr: Evr,
    pub repo: String,
}

/// One line of `updateinfo list`: advisory `id` lists package `nevra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvisoryPackage {
    pub id: String,
    /// `security`, `bugfix`, `enhancement`, `newpackage` or `unknown`.
    pub kind: String,
    pub severity: Option<String>,
    pub nevra: Nevra,
}

/// What `updateinfo info` says about one advisory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvisoryInfo {
    pub kind: Option<String>,
    pub severity: Option<String>,
    pub cves: Vec<String>,
}

/// Parses `repoquery --installed --qf '%{name}\t%{arch}\t%{from_repo}'`.
/// Packages installed outside dnf have an empty `from_repo`.
pub fn parse_from_repo(cmd: &Cmd, text: &str) -> Result<HashMap<(String, String), String>> {
    let mut map = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let [name, arch, repo] = line.split('\t').collect::<Vec<_>>()[..] else {
            return Err(PkgError::parse(cmd, i + 1, line, "expected name, arch and repository separated by tabs"));
        };
        // Installed outside dnf (rpm -i, the installer): no known repository.
        if !matches!(repo, "" | "@System" | "<unknown>") {
            map.insert((name.to_owned(), arch.to_owned()), repo.to_owned());
        }
    }
    Ok(map)
}

/// Parses `repoquery --upgrades --qf '%{name}\t%{epoch}\t%{version}\t%{release}\t%{arch}\t%{repoid}'`.
pub fn parse_repoquery_upgrades(cmd: &Cmd, text: &str) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        let [name, epoch, version, release, arch, repo] = line.split('\t').collect::<Vec<_>>()[..] else {
            return Err(bad("expected 6 tab-separated fields"));
        };
        let epoch = epoch.parse::<u64>().map_err(|_| bad("epoch is not a number"))?;
        if [name, version, release, arch, repo].iter().any(|f| f.is_empty()) {
            return Err(bad("empty field"));
        }
        out.push(Candidate {
            name: name.to_owned(),
            arch: arch.to_owned(),
            evr: Evr { epoch: Some(epoch), version: version.to_owned(), release: release.to_owned() },
            repo: repo.to_owned(),
        });
    }
    out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(out)
}

/// Parses `check-update` (dnf and yum): after the header lines (dnf's
/// metadata age, yum's `Loaded plugins` and mirror lines, see [`is_noise`]),
/// `name.arch  [epoch:]version-release  repo` rows. A name too long
/// for its column is printed alone and the row continues on the next line.
/// `Obsoleting Packages` and what follows are replacements, not updates, and
/// are not read; the replacing packages are in the table above them too.
pub fn parse_check_update(cmd: &Cmd, text: &str) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    let mut pending: Vec<(usize, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || is_noise(trimmed) || trimmed.starts_with("Security: ") {
            continue;
        }
        if trimmed.starts_with("Obsoleting Packages") {
            break;
        }
        pending.extend(line.split_whitespace().map(|t| (i, t)));
        if pending.len() < 3 {
            continue;
        }
        let (line_no, first) = pending[0];
        let bad = |reason: &str| PkgError::parse(cmd, line_no + 1, text.lines().nth(line_no).unwrap_or(line), reason);
        if pending.len() > 3 {
            return Err(bad("expected name.arch, version and repository"));
        }
        let (name, arch) = match first.rsplit_once('.') {
            Some((name, arch)) if !name.is_empty() && !arch.is_empty() => (name, arch),
            _ => return Err(bad("package is not name.arch")),
        };
        let evr = Evr::parse(pending[1].1).ok_or_else(|| bad("version is not [epoch:]version-release"))?;
        out.push(Candidate { name: name.to_owned(), arch: arch.to_owned(), evr, repo: pending[2].1.to_owned() });
        pending.clear();
    }
    if let Some(&(line_no, _)) = pending.first() {
        let line = text.lines().nth(line_no).unwrap_or_default();
        return Err(PkgError::parse(cmd, line_no + 1, line, "incomplete row at the end of the table"));
    }
    out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(out)
}

/// Parses `updateinfo list`: `ID LABEL NEVRA` per line (verbose adds a date),
/// after dnf's `Last metadata expiration check` line or yum's `Loaded plugins`
/// lines. Labels: `Critical/Sec.` … `Low/Sec.`, `Unknown/Sec.`, `bugfix`,
/// `enhancement`, `newpackage`, `unknown`.
pub fn parse_updateinfo_list(cmd: &Cmd, text: &str) -> Result<Vec<AdvisoryPackage>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || is_noise(trimmed) {
            continue;
        }
        let bad = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        // With --all dnf prefixes installed ones with "i"; we never ask for --all.
        let (id, label, nevra) = match fields[..] {
            [id, label, nevra] | [id, label, nevra, _, _] => (id, label, nevra),
            _ => return Err(bad("expected advisory id, type and package")),
        };
        let (kind, severity) = match label.strip_suffix("/Sec.") {
            Some("Unknown") => ("security", None),
            Some(sev) => ("security", Some(sev.to_owned())),
            None => match label {
                "bugfix" | "enhancement" | "newpackage" | "unknown" | "security" => (label, None),
                _ => return Err(bad("unknown advisory type")),
            },
        };
        let nevra = Nevra::parse(nevra).ok_or_else(|| bad("package is not name-[epoch:]version-release.arch"))?;
        out.push(AdvisoryPackage { id: id.to_owned(), kind: kind.to_owned(), severity, nevra });
    }
    Ok(out)
}

/// Lines dnf and yum print around their output that carry no data.
fn is_noise(line: &str) -> bool {
    line.starts_with("Last metadata expiration check:")
        || line.starts_with("Loaded plugins:")
        || line.starts_with("Loading mirror speeds")
        || line.starts_with("updateinfo list done")
        || line.starts_with("updateinfo info done")
        || line.starts_with("* ")
        || line.starts_with("This system is not registered")
}

/// Parses `updateinfo info`: per advisory a `=====` rule, the title, another
/// rule, then `Key: value` lines (right-aligned keys; yum writes `Key : value`);
/// a value continued over several lines has an empty key (`    : CVE-2`).
/// Returns advisory id → type, severity, CVE ids.
pub fn parse_updateinfo_info(cmd: &Cmd, text: &str) -> Result<BTreeMap<String, AdvisoryInfo>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, AdvisoryInfo)> = None;
    let mut key = String::new();
    let mut expect_title = false;
    let mut rules = 0usize;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("===") && trimmed.chars().all(|c| c == '=') {
            rules += 1;
            if rules % 2 == 1 {
                if let Some((id, info)) = current.take() {
                    out.insert(id, info);
                }
                expect_title = true;
            }
            continue;
        }
        if expect_title {
            expect_title = false;
            continue;
        }
        if rules == 0 || trimmed.is_empty() || is_noise(trimmed) {
            if rules == 0 && !trimmed.is_empty() && !is_noise(trimmed) {
                return Err(PkgError::parse(cmd, i + 1, line, "text before the first advisory"));
            }
            continue;
        }
        let Some((k, value)) = line.split_once(':') else {
            return Err(PkgError::parse(cmd, i + 1, line, "expected `Key: value`"));
        };
        if !k.trim().is_empty() {
            key = k.trim().to_owned();
        }
        let value = value.trim();
        match key.as_str() {
            "Update ID" => current = Some((value.to_owned(), AdvisoryInfo::default())),
            "Type" | "Severity" | "CVEs" => {
                let Some((_, info)) = current.as_mut() else {
                    return Err(PkgError::parse(cmd, i + 1, line, "advisory field before its Update ID"));
                };
                match key.as_str() {
                    "Type" => info.kind = Some(value.to_owned()),
                    "Severity" if !value.is_empty() && value != "None" => info.severity = Some(value.to_owned()),
                    "CVEs" if !value.is_empty() => info.cves.push(value.to_owned()),
                    _ => {}
                }
            }
            _ => {} // Updated, Bugs, Description, Rights, Files, Installed, Release, Status, Issued
        }
    }
    if let Some((id, info)) = current.take() {
        out.insert(id, info);
    }
    Ok(out)
}

/// Classifies one candidate by the advisories (see the module docs).
pub fn classify(
    c: &Candidate,
    current: &Evr,
    advisories: &[AdvisoryPackage],
    infos: &BTreeMap<String, AdvisoryInfo>,
    repo_has_updateinfo: Option<bool>,
) -> (SecurityInfo, Vec<String>) {
    use std::cmp::Ordering::*;
    let installed = current.to_string();
    let candidate = c.evr.to_string();
    let mut matching: Vec<&AdvisoryPackage> = advisories
        .iter()
        .filter(|a| {
            a.nevra.name == c.name && (a.nevra.arch == c.arch || a.nevra.arch == "noarch" || c.arch == "noarch")
        })
        .filter(|a| {
            let v = a.nevra.evr.to_string();
            rpmdb::compare_evr(&v, &installed) == Greater && rpmdb::compare_evr(&v, &candidate) != Greater
        })
        .collect();
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    matching.dedup_by(|a, b| a.id == b.id);
    let kind_of = |a: &AdvisoryPackage| infos.get(&a.id).and_then(|i| i.kind.clone()).unwrap_or_else(|| a.kind.clone());
    let severity_of =
        |a: &AdvisoryPackage| a.severity.clone().or_else(|| infos.get(&a.id).and_then(|i| i.severity.clone()));
    let mut cves: Vec<String> = matching
        .iter()
        .filter_map(|a| infos.get(&a.id))
        .flat_map(|i| i.cves.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut security: Vec<&AdvisoryPackage> = matching.iter().copied().filter(|a| kind_of(a) == "security").collect();
    if !security.is_empty() {
        // The most severe advisory names the update.
        security.sort_by_key(|a| std::cmp::Reverse(severity_rank(severity_of(a).as_deref())));
        let top = security[0];
        let mut reason = format!(
            "advisory {} (type security, severity {}) fixes {}-{} ({} installed, candidate {})",
            top.id,
            severity_of(top).as_deref().unwrap_or("unknown"),
            c.name,
            top.nevra.evr,
            installed,
            candidate
        );
        if security.len() > 1 {
            let others: Vec<&str> = security[1..].iter().map(|a| a.id.as_str()).collect();
            reason.push_str(&format!("; also {}", others.join(", ")));
        }
        let info = SecurityInfo {
            class: SecurityClass::Security,
            reason,
            advisory_id: Some(top.id.clone()),
            severity: severity_of(top),
        };
        return (info, cves);
    }
    if !matching.is_empty() {
        let list: Vec<String> = matching.iter().map(|a| format!("{} ({})", a.id, kind_of(a))).collect();
        let info = SecurityInfo {
            class: SecurityClass::NotSecurity,
            reason: format!("only non-security advisories cover {installed} to {candidate}: {}", list.join(", ")),
            advisory_id: Some(matching[0].id.clone()),
            severity: None,
        };
        return (info, cves);
    }
    cves.clear();
    match repo_has_updateinfo {
        Some(true) => {}
        Some(false) => {
            let info = SecurityInfo::new(
                SecurityClass::Unknown,
                format!("repository {} publishes no updateinfo (advisory) metadata", c.repo),
            );
            return (info, cves);
        }
        None => {
            // No evidence either way: the metadata cache could not be read.
            let info = SecurityInfo::new(
                SecurityClass::Unknown,
                format!("cannot tell whether repository {} publishes updateinfo (metadata cache unreadable)", c.repo),
            );
            return (info, cves);
        }
    }
    let info = SecurityInfo::new(
        SecurityClass::NotSecurity,
        format!("no advisory in the updateinfo metadata covers {} after {installed} up to {candidate}", c.name),
    );
    (info, cves)
}

fn severity_rank(severity: Option<&str>) -> u8 {
    match severity.map(str::to_ascii_lowercase).as_deref() {
        Some("critical") => 4,
        Some("important") => 3,
        Some("moderate") => 2,
        Some("low") => 1,
        _ => 0,
    }
}

/// Repository ids whose cached metadata includes updateinfo, from the cache
/// directory layout: dnf `<cache>/<repoid>-<16 hex>/repodata/*updateinfo*`,
/// yum `<cache>/<basearch>/<releasever>/<repoid>/*updateinfo*`.
/// `None` when the cache cannot be read.
fn repos_with_updateinfo(cache: &Path) -> Option<BTreeSet<String>> {
    let mut repos = BTreeSet::new();
    let mut stack = vec![(cache.to_path_buf(), 0)];
    let mut read_any = false;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        read_any = true;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if depth < 4 {
                    stack.push((path, depth + 1));
                }
            } else if name.contains("updateinfo") {
                let mut parent = dir.clone();
                if parent.file_name().is_some_and(|n| n == "repodata" || n == "gen") {
                    parent.pop();
                }
                if let Some(repo) = parent.file_name().and_then(|n| n.to_str()) {
                    repos.insert(strip_cache_hash(repo).to_owned());
                }
            }
        }
    }
    read_any.then_some(repos)
}

/// `local-f18658ee10a4ea5c` → `local`.
fn strip_cache_hash(dir: &str) -> &str {
    match dir.rsplit_once('-') {
        Some((repo, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => repo,
        _ => dir,
    }
}

/// The newest mtime of `repomd.xml` or any file in a `repodata` directory
/// under the cache.
fn newest_metadata_mtime(cache: &Path) -> Option<Timestamp> {
    let mut newest: Option<Timestamp> = None;
    let mut stack = vec![(cache.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let in_repodata = dir.file_name().is_some_and(|n| n == "repodata");
        if in_repodata {
            newest = newest.max(host::newest_mtime_in(&dir, |_| true));
        }
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if depth < 4 {
                    stack.push((path, depth + 1));
                }
            } else if !in_repodata && entry.file_name() == "repomd.xml" {
                newest = newest.max(host::newest_mtime([path]));
            }
        }
    }
    newest
}

/// Names locked by the versionlock plugin. Lines are `[epoch:]name-version-release.arch`
/// patterns (dnf writes `name-epoch:version-release.*`); `!`-lines exclude, `#` comments.
fn versionlock_names(options: &BackendOptions) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in ["/etc/dnf/plugins/versionlock.list", "/etc/yum/pluginconf.d/versionlock.list"] {
        let Ok(text) = std::fs::read_to_string(options.path(file)) else { continue };
        names.extend(parse_versionlock(&text));
    }
    names
}

/// Package names of a versionlock list.
pub fn parse_versionlock(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        // Drop ".arch" (possibly "*"), then "-release" and "-[epoch:]version".
        let without_arch = line.rsplit_once('.').map_or(line, |(rest, _)| rest);
        let name = without_arch.rsplit_once('-').and_then(|(rest, _)| rest.rsplit_once('-')).map(|(name, _)| name);
        match name {
            // yum writes "epoch:name-version-release.arch".
            Some(name) => names.insert(name.split_once(':').map_or(name, |(_, n)| n).to_owned()),
            None => names.insert(line.to_owned()),
        };
    }
    names
}

/// Parses the transaction table dnf prints before asking (here: `--assumeno`).
///
/// ```text
/// ================================================================================
///  Package          Architecture      Version              Repository        Size
/// ================================================================================
/// Upgrading:
///  hello            noarch            1.1-1                local            5.9 k
///      replacing  hello-compat.noarch 1.0-1
/// Removing dependent packages:
///  …
/// Transaction Summary
/// ```
///
/// Section headers (`Installing:`, `Installing dependencies:`, `Installing weak
/// dependencies:`, `Upgrading:`, `Downgrading:`, `Reinstalling:`, `Removing:`,
/// `Removing dependent packages:`, `Removing unused dependencies:`, `Obsoleting:`)
/// start at column 0 and end with `:`. A package row starts with one space:
/// name, arch, version, repository, size. A value wider than its column
/// continues on the next line, indented to the next column (dnf's
/// `fmtColumns`), so rows are gathered until they have all their fields.
/// `replacing` rows under an upgrade are packages the upgrade obsoletes
/// (removed). Rows under `Skipping packages …` sections are not part of the
/// transaction; module stream/profile sections list no packages we act on.
/// Old versions come from `installed`.
pub fn parse_transaction(cmd: &Cmd, text: &str, installed: &[RpmPackage]) -> Result<Transaction> {
    #[derive(Clone, Copy, PartialEq)]
    enum Section {
        None,
        Package(TxAction),
        Skip,
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut section = Section::None;
    let mut items: Vec<TxItem> = Vec::new();
    let mut in_table = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let line_no = i + 1;
        i += 1;
        if line.starts_with(" Package ") && !in_table {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        if line.starts_with("Transaction Summary") {
            break;
        }
        if line.trim().is_empty() || line.starts_with("===") {
            continue;
        }
        if !line.starts_with(' ') {
            let Some(header) = line.strip_suffix(':') else {
                return Err(PkgError::parse(cmd, line_no, line, "expected a section header ending with ':'"));
            };
            const SKIP: &[&str] = &[
                "Skipping packages",
                "Installing module",
                "Enabling module",
                "Disabling module",
                "Resetting module",
                "Switching module",
                "Removing module",
                "Installing Groups",
                "Installing Environment",
                "Removing Groups",
                "Removing Environment",
                "Upgrading Groups",
                "Upgrading Environment",
            ];
            section = if SKIP.iter().any(|p| header.starts_with(p)) {
                Section::Skip
            } else if header.starts_with("Installing") || header.starts_with("Obsoleting") {
                Section::Package(TxAction::Install)
            } else if header.starts_with("Upgrading") {
                Section::Package(TxAction::Upgrade)
            } else if header.starts_with("Downgrading") {
                Section::Package(TxAction::Downgrade)
            } else if header.starts_with("Reinstalling") {
                Section::Package(TxAction::Reinstall)
            } else if header.starts_with("Removing") {
                Section::Package(TxAction::Remove)
            } else {
                return Err(PkgError::parse(cmd, line_no, line, "unknown transaction section"));
            };
            continue;
        }
        let action = match section {
            Section::Skip => continue,
            Section::None => return Err(PkgError::parse(cmd, line_no, line, "package row outside a section")),
            Section::Package(action) => action,
        };
        let mut tokens: Vec<&str> = line.split_whitespace().collect();
        if tokens.first() == Some(&"replacing") {
            // "     replacing  name.arch  [epoch:]version-release"
            let [_, na, version] = tokens[..] else {
                return Err(PkgError::parse(cmd, line_no, line, "expected `replacing name.arch version`"));
            };
            let (name, arch) = rpmdb::split_arch(na);
            items.push(TxItem {
                name: name.to_owned(),
                action: TxAction::Remove,
                from: Some(version.to_owned()),
                to: None,
                arch: arch.map(str::to_owned),
            });
            continue;
        }
        // Gather continuation lines (indented by more than one space) until the
        // row has name, arch, version, repository and a size.
        while tokens.len() < 5 && i < lines.len() && lines[i].starts_with("  ") && !lines[i].trim().is_empty() {
            let next: Vec<&str> = lines[i].split_whitespace().collect();
            if next.first() == Some(&"replacing") {
                break;
            }
            tokens.extend(next);
            i += 1;
        }
        let [name, arch, version, _repo, ..] = tokens[..] else {
            return Err(PkgError::parse(cmd, line_no, line, "expected name, arch, version, repository and size"));
        };
        if tokens.len() < 5 {
            return Err(PkgError::parse(cmd, line_no, line, "expected name, arch, version, repository and size"));
        }
        if Evr::parse(version).is_none() {
            return Err(PkgError::parse(cmd, line_no, line, "version is not [epoch:]version-release"));
        }
        let installed_version = || {
            let same: Vec<&RpmPackage> = installed.iter().filter(|p| p.name == name).collect();
            same.iter()
                .rev()
                .find(|p| p.arch == arch)
                .or(if same.len() == 1 { same.first() } else { None })
                .map(|p| p.evr.to_string())
        };
        let (from, to) = match action {
            TxAction::Install => (None, Some(version.to_owned())),
            TxAction::Remove => (Some(version.to_owned()), None),
            TxAction::Reinstall => (Some(version.to_owned()), Some(version.to_owned())),
            TxAction::Upgrade | TxAction::Downgrade => (installed_version(), Some(version.to_owned())),
        };
        items.push(TxItem { name: name.to_owned(), action, from, to, arch: Some(arch.to_owned()) });
    }
    items.sort_by(|a, b| (&a.name, &a.arch, a.action).cmp(&(&b.name, &b.arch, b.action)));
    Ok(Transaction { items })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PackageSpec;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    fn cmd() -> Cmd {
        Cmd::new("dnf", Duration::from_secs(1))
    }

    fn data(path: &str) -> String {
        let path = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn recorded_installed() -> Vec<RpmPackage> {
        rpmdb::parse_query(&cmd(), &data("rpm/qa-multiarch-epoch.txt")).unwrap()
    }

    fn output(code: i32, stdout: &str, stderr: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
            elapsed: Duration::ZERO,
        }
    }

    fn rows(tx: &Transaction) -> Vec<String> {
        tx.items
            .iter()
            .map(|i| {
                format!(
                    "{} {} {}.{} {}",
                    i.action.as_str(),
                    i.name,
                    i.from.as_deref().unwrap_or("-"),
                    i.arch.as_deref().unwrap_or("-"),
                    i.to.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn command_lines_for_dnf_and_yum() {
        let mut options = BackendOptions::with_root("/srv/root");
        options.config_file = Some("/srv/dnf.conf".into());
        options.releasever = Some("9".into());
        let dnf = Dnf::new(options.clone(), Flavor::Dnf);
        let op = Operation::Downgrade(vec![Pin::new("other", "1:1.0-1").unwrap()]);
        let (c, pins) = dnf.op_cmd(&op, Mode::Transaction, false).unwrap();
        assert_eq!(
            c.to_string(),
            "dnf --color=never --setopt=exit_on_lock=True --installroot=/srv/root --config=/srv/dnf.conf \
             --releasever=9 --setopt=metadata_expire=-1 -y downgrade -- other-1:1.0-1"
        );
        assert_eq!(pins[0].0, "other-1:1.0-1");
        let yum = Dnf::new(BackendOptions::default(), Flavor::Yum);
        assert_eq!(yum.kind(), BackendKind::Yum);
        let (c, _) = yum.op_cmd(&Operation::Upgrade(UpgradeScope::Security), Mode::CacheOnly, true).unwrap();
        assert_eq!(c.to_string(), "yum --color=never --setopt=exit_on_lock=True -C --assumeno upgrade --security");
        let (c, _) = yum
            .op_cmd(
                &Operation::Install(vec![PackageSpec::parse("hello=1.0-1").unwrap(), PackageSpec::parse("x").unwrap()]),
                Mode::CacheOnly,
                true,
            )
            .unwrap();
        assert_eq!(
            c.to_string(),
            "yum --color=never --setopt=exit_on_lock=True -C --assumeno install -- hello-1.0-1 x"
        );
        let (c, _) = yum
            .op_cmd(&Operation::Remove(vec![PackageName::parse("other").unwrap()]), Mode::Transaction, false)
            .unwrap();
        assert_eq!(
            c.to_string(),
            "yum --color=never --setopt=exit_on_lock=True --setopt=metadata_expire=-1 -y remove -- other"
        );
    }

    #[test]
    fn from_repo_recorded_and_unknown_origins() {
        let map = parse_from_repo(&cmd(), &data("dnf/repoquery-installed-from-repo.txt")).unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(map[&("libmulti".to_owned(), "i686".to_owned())], "local");
        let map = parse_from_repo(&cmd(), "bash\tx86_64\t@System\nzsh\tx86_64\t\ncurl\tx86_64\tupdates\n").unwrap();
        assert_eq!(
            map.into_iter().collect::<Vec<_>>(),
            [(("curl".to_owned(), "x86_64".to_owned()), "updates".to_owned())]
        );
        let err = parse_from_repo(&cmd(), "bash x86_64 updates\n").unwrap_err();
        assert!(matches!(err, PkgError::Parse { line_no: 1, .. }), "{err}");
    }

    #[test]
    fn repoquery_upgrades_recorded() {
        let c = parse_repoquery_upgrades(&cmd(), &data("dnf/repoquery-upgrades.txt")).unwrap();
        let got: Vec<String> = c.iter().map(|c| format!("{}.{} {} {}", c.name, c.arch, c.evr, c.repo)).collect();
        assert_eq!(
            got,
            [
                "hello.noarch 1.1-1 local",
                "libmulti.i686 2.1-1 local",
                "libmulti.x86_64 2.1-1 local",
                "other.noarch 1:1.3-1 local"
            ]
        );
        let err = parse_repoquery_upgrades(&cmd(), "hello\tx\t1\t1\tnoarch\tlocal\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }

    #[test]
    fn check_update_recorded_dnf_and_yum_sample() {
        // Recorded from dnf 4.14 (exit 100).
        let c = parse_check_update(&cmd(), &data("dnf/check-update.txt")).unwrap();
        let from_dnf: Vec<String> = c.iter().map(|c| format!("{}.{} {} {}", c.name, c.arch, c.evr, c.repo)).collect();
        assert_eq!(from_dnf.len(), 4);
        assert_eq!(from_dnf[3], "other.noarch 1:1.3-1 local");
        // No yum 3 here: a sample written after CentOS 7's format (plugin
        // header, mirror lines, a wrapped long name, obsoletes section).
        let c = parse_check_update(&cmd(), &data("dnf/yum-check-update.txt")).unwrap();
        let got: Vec<String> = c.iter().map(|c| format!("{}.{} {} {}", c.name, c.arch, c.evr, c.repo)).collect();
        assert_eq!(
            got,
            [
                "bash.x86_64 4.2.46-35.el7_9 updates",
                "kernel.x86_64 3.10.0-1160.119.1.el7 updates",
                "python-perf-with-an-unusually-long-name-for-wrapping.x86_64 3.10.0-1160.119.1.el7 updates",
                "tzdata.noarch 2024a-1.el7 updates",
                "xz-libs.x86_64 5.2.2-2.el7_9 updates",
                "yum-plugin-fastestmirror.noarch 1:1.1.31-54.el7_8 base",
            ]
        );
        let err = parse_check_update(&cmd(), "\nhello.noarch 1.1-1 local extra\n").unwrap_err();
        assert!(err.to_string().contains("hello.noarch 1.1-1 local extra"), "{err}");
    }

    #[test]
    fn updateinfo_recorded_and_classification() {
        let list = parse_updateinfo_list(&cmd(), &data("dnf/updateinfo-list.txt")).unwrap();
        assert_eq!(list.len(), 4);
        assert_eq!(
            (list[3].id.as_str(), list[3].kind.as_str(), list[3].severity.as_deref()),
            ("TEST-SA-1", "security", Some("Important"))
        );
        assert_eq!(list[3].nevra.to_string(), "other-1:1.2-1.noarch");
        assert_eq!(list[0].kind, "bugfix");
        let infos = parse_updateinfo_info(&cmd(), &data("dnf/updateinfo-info.txt")).unwrap();
        assert_eq!(infos["TEST-SA-3"].cves, ["CVE-2026-0003", "CVE-2026-0004"]);
        assert_eq!(infos["TEST-SA-3"].severity.as_deref(), Some("Critical"));
        assert_eq!(infos["TEST-BA-2"].kind.as_deref(), Some("bugfix"));
        assert!(infos["TEST-BA-2"].cves.is_empty());

        let installed = recorded_installed();
        let newest = rpmdb::newest_by_name_arch(&installed);
        let candidates = parse_repoquery_upgrades(&cmd(), &data("dnf/repoquery-upgrades.txt")).unwrap();
        let classify_one = |name: &str, arch: &str| {
            let c = candidates.iter().find(|c| c.name == name && c.arch == arch).unwrap();
            classify(c, rpmdb::current_for(&newest, name, arch).unwrap(), &list, &infos, Some(true))
        };
        // The advisory is for the intermediate version 1:1.2-1; the candidate is 1:1.3-1.
        let (sec, cves) = classify_one("other", "noarch");
        assert_eq!(sec.class, SecurityClass::Security);
        assert_eq!(sec.advisory_id.as_deref(), Some("TEST-SA-1"));
        assert_eq!(sec.severity.as_deref(), Some("Important"));
        assert_eq!(sec.reason, "advisory TEST-SA-1 (type security, severity Important) fixes other-1:1.2-1 (1:1.0-1 installed, candidate 1:1.3-1)");
        assert_eq!(cves, ["CVE-2026-0001"]);
        // Multi-arch: each arch is matched with its own advisory package.
        let (sec, cves) = classify_one("libmulti", "i686");
        assert_eq!((sec.class, sec.severity.as_deref()), (SecurityClass::Security, Some("Critical")));
        assert_eq!(cves, ["CVE-2026-0003", "CVE-2026-0004"]);
        // A bugfix advisory is evidence of NotSecurity.
        let (sec, cves) = classify_one("hello", "noarch");
        assert_eq!(sec.class, SecurityClass::NotSecurity);
        assert!(sec.reason.contains("TEST-BA-2 (bugfix)"), "{}", sec.reason);
        assert!(cves.is_empty());
    }

    #[test]
    fn advisory_versions_outside_installed_to_candidate_do_not_count() {
        let infos = BTreeMap::new();
        let adv = |v: &str| AdvisoryPackage {
            id: format!("SA-{v}"),
            kind: "security".into(),
            severity: Some("Moderate".into()),
            nevra: Nevra::parse(&format!("other-{v}.noarch")).unwrap(),
        };
        let c = Candidate {
            name: "other".into(),
            arch: "noarch".into(),
            evr: Evr::parse("1:1.2-1").unwrap(),
            repo: "updates".into(),
        };
        let current = Evr::parse("1:1.0-1").unwrap();
        // Already installed fix (= installed) and a fix only in a newer version than the candidate.
        let (sec, _) = classify(&c, &current, &[adv("1:1.0-1"), adv("1:1.3-1"), adv("0.9-1")], &infos, Some(true));
        assert_eq!(sec.class, SecurityClass::NotSecurity, "{}", sec.reason);
        // Exactly the candidate counts; an epoch-less 2.0 is older than 1:1.1.
        let (sec, _) = classify(&c, &current, &[adv("1:1.2-1")], &infos, Some(true));
        assert_eq!(sec.class, SecurityClass::Security);
        let (sec, _) = classify(&c, &current, &[adv("2.0-1")], &infos, Some(true));
        assert_eq!(sec.class, SecurityClass::NotSecurity);
        // No updateinfo in the candidate's repository: we cannot tell.
        let (sec, _) = classify(&c, &current, &[], &infos, Some(false));
        assert_eq!(sec.class, SecurityClass::Unknown);
        assert!(sec.reason.contains("repository updates publishes no updateinfo"), "{}", sec.reason);
        // Cache unreadable: no evidence that the repository has updateinfo, so never NotSecurity.
        let (sec, _) = classify(&c, &current, &[], &infos, None);
        assert_eq!(sec.class, SecurityClass::Unknown, "{}", sec.reason);
        assert!(sec.reason.contains("cannot tell whether repository updates publishes updateinfo"), "{}", sec.reason);
    }

    #[test]
    fn yum_updateinfo_info_sample() {
        // No yum 3 here: written after RHEL 7's `yum updateinfo info` format.
        let text = "Loaded plugins: product-id, subscription-manager\n\
            \n===============================================================================\n\
            \x20 Important: kernel security update\n\
            ===============================================================================\n\
            \x20 Update ID : RHSA-2024:1249\n\
            \x20   Release : 0\n\
            \x20      Type : security\n\
            \x20    Status : final\n\
            \x20    Issued : 2024-03-12 00:00:00\n\
            \x20      Bugs : 2250843 - CVE-2023-6356 kernel: NULL pointer dereference\n\
            \x20      CVEs : CVE-2023-6356\n\
            \x20           : CVE-2023-6535\n\
            Description : The kernel packages contain the Linux kernel.\n\
            \x20           : Security Fix(es): see the CVE pages.\n\
            \x20  Severity : Important\n\
            updateinfo info done\n";
        let infos = parse_updateinfo_info(&cmd(), text).unwrap();
        let info = &infos["RHSA-2024:1249"];
        assert_eq!(info.cves, ["CVE-2023-6356", "CVE-2023-6535"]);
        assert_eq!((info.kind.as_deref(), info.severity.as_deref()), (Some("security"), Some("Important")));
        let err = parse_updateinfo_info(&cmd(), "=====\n  t\n=====\nno colon here\n").unwrap_err();
        assert!(err.to_string().contains("no colon here"), "{err}");
        let err = parse_updateinfo_list(&cmd(), "TEST-1 weird/Type hello-1-1.noarch\n").unwrap_err();
        assert!(err.to_string().contains("unknown advisory type"), "{err}");
    }

    #[test]
    fn transaction_tables_recorded() {
        let installed = recorded_installed();
        let tx = parse_transaction(&cmd(), &data("dnf/assumeno-upgrade.txt"), &installed).unwrap();
        assert_eq!(
            rows(&tx),
            [
                "upgrade hello 1.0-1.noarch 1.1-1",
                "upgrade libmulti 2.0-1.i686 2.1-1",
                "upgrade libmulti 2.0-1.x86_64 2.1-1",
                "upgrade other 1:1.0-1.noarch 1:1.3-1"
            ]
        );
        // `upgrade --security` takes other to its newest version 1:1.3-1, not to
        // 1:1.2-1 named by the advisory (recorded; `upgrade-minimal` would).
        let tx = parse_transaction(&cmd(), &data("dnf/assumeno-upgrade-security.txt"), &installed).unwrap();
        assert_eq!(
            rows(&tx),
            [
                "upgrade libmulti 2.0-1.i686 2.1-1",
                "upgrade libmulti 2.0-1.x86_64 2.1-1",
                "upgrade other 1:1.0-1.noarch 1:1.3-1"
            ]
        );
        let tx = parse_transaction(&cmd(), &data("dnf/assumeno-downgrade.txt"), &installed).unwrap();
        assert_eq!(rows(&tx), ["downgrade hello 1.0-1.noarch 1.0-1", "downgrade other 1:1.0-1.noarch 1:1.0-1"]);
        let tx = parse_transaction(&cmd(), &data("dnf/assumeno-remove.txt"), &installed).unwrap();
        assert_eq!(rows(&tx), ["remove other 1:1.0-1.noarch -"]);
        let tx = parse_transaction(&cmd(), &data("dnf/assumeno-reinstall.txt"), &installed).unwrap();
        assert_eq!(rows(&tx), ["reinstall hello 1.1-1.noarch 1.1-1"]);
        let tx = parse_transaction(&cmd(), &data("dnf/assumeno-install-wide.txt"), &installed).unwrap();
        assert_eq!(rows(&tx), ["install a-package-with-a-really-quite-extraordinarily-long-name -.noarch 2.0.1-1"]);
        let tx = parse_transaction(&cmd(), &data("dnf/assumeno-install-wrapped.txt"), &installed).unwrap();
        assert_eq!(tx.items.len(), 2);
        let tx = parse_transaction(&cmd(), &data("dnf/assumeno-nothing-to-do.txt"), &installed).unwrap();
        assert!(tx.is_empty());
    }

    #[test]
    fn transaction_table_wrapped_columns_and_replacing() {
        // Synthetic: laid out like dnf's fmtColumns on an 80-column terminal,
        // where a value wider than its column continues on the next line.
        let text = "Dependencies resolved.\n\
            ================================================================================\n\
            \x20Package                  Arch      Version                 Repository  Size\n\
            ================================================================================\n\
            Upgrading:\n\
            \x20python3-dnf-plugin-versionlock-extra-long-name\n\
            \x20                         noarch    4.3.0-1.fc39            updates     61 k\n\
            \x20kernel-core              x86_64    6.5.12-300.fc39         updates     16 M\n\
            \x20    replacing  kernel-core-compat.x86_64 6.5.6-300.fc39\n\
            Installing dependencies:\n\
            \x20libfoo                   x86_64    1:2.0-1.fc39            updates\n\
            \x20                                                                      120 k\n\
            Skipping packages with broken dependencies:\n\
            \x20broken                   noarch    1.0-1                   updates     1 k\n\
            \n\
            Transaction Summary\n\
            ================================================================================\n";
        let tx = parse_transaction(&cmd(), text, &[]).unwrap();
        assert_eq!(
            rows(&tx),
            [
                "upgrade kernel-core -.x86_64 6.5.12-300.fc39",
                "remove kernel-core-compat 6.5.6-300.fc39.x86_64 -",
                "install libfoo -.x86_64 1:2.0-1.fc39",
                "upgrade python3-dnf-plugin-versionlock-extra-long-name -.noarch 4.3.0-1.fc39",
            ]
        );
        let garbled = " Package  Arch Version Repo Size\nUpgrading:\n hello noarch\n";
        let err = parse_transaction(&cmd(), garbled, &[]).unwrap_err();
        assert!(matches!(err, PkgError::Parse { line_no: 3, .. }), "{err}");
        let unknown = " Package  Arch Version Repo Size\nFrobnicating:\n";
        assert!(parse_transaction(&cmd(), unknown, &[])
            .unwrap_err()
            .to_string()
            .contains("unknown transaction section"));
    }

    #[test]
    fn lock_and_unavailable_messages() {
        let recorded = data("dnf/locked-exit-on-lock.txt");
        assert_eq!(locked(&output(200, "", &recorded)).as_deref(), Some("RPMDB already locked by 11770"));
        assert_eq!(
            locked(&output(1, "Waiting for process with pid 42 to finish.\n", "")).as_deref(),
            Some("Waiting for process with pid 42 to finish.")
        );
        // yum 3 (sample): "Existing lock /var/run/yum.pid: another copy is running as pid 42."
        assert!(
            locked(&output(200, "", "Existing lock /var/run/yum.pid: another copy is running as pid 42.\n")).is_some()
        );
        assert!(locked(&output(1, "", "Error: Unable to find a match: x\n")).is_none());

        let pins = vec![("hello-9.9-1".to_owned(), Pin::new("hello", "9.9-1").unwrap())];
        let err = check_unavailable(&output(1, "", &data("dnf/install-unavailable.txt")), &pins).unwrap_err();
        assert_eq!(err.to_string(), "hello version 9.9-1 is not available from any configured repository");
        let pins = vec![("hello-0.5-1".to_owned(), Pin::new("hello", "0.5-1").unwrap())];
        let err = check_unavailable(&output(1, &data("dnf/downgrade-unavailable.txt"), ""), &pins).unwrap_err();
        assert!(matches!(err, PkgError::VersionUnavailable { .. }), "{err}");
    }

    #[test]
    fn versionlock_and_needs_restarting() {
        let names = parse_versionlock("# comment\nhello-0:1.0-1.*\n!other-0:1.2-1.*\n0:kernel-3.10.0-957.el7.x86_64\n");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["hello", "kernel"]);
        let mut status = RebootStatus::default();
        let text = "Core libraries or services have been updated since boot-up:\n  * kernel\n  * glibc\n\nReboot is required to fully utilize these updates.\nMore information: https://access.redhat.com/solutions/27943\n";
        apply_needs_restarting(&mut status, &output(1, text, ""));
        assert!(status.required);
        assert_eq!(status.packages, ["glibc", "kernel"]);
        let mut status = RebootStatus::default();
        apply_needs_restarting(
            &mut status,
            &output(
                0,
                "No core libraries or services have been updated since boot-up.\nReboot should not be necessary.\n",
                "",
            ),
        );
        assert!(!status.required);
    }

    #[test]
    fn cache_layout_helpers() {
        assert_eq!(strip_cache_hash("local-f18658ee10a4ea5c"), "local");
        assert_eq!(strip_cache_hash("fedora-updates"), "fedora-updates");
        let dir = tempfile::tempdir().unwrap();
        let repodata = dir.path().join("updates-0123456789abcdef/repodata");
        std::fs::create_dir_all(&repodata).unwrap();
        std::fs::write(repodata.join("abc-updateinfo.xml.zck"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("fedora-fedcba9876543210/repodata")).unwrap();
        std::fs::write(dir.path().join("fedora-fedcba9876543210/repodata/repomd.xml"), "").unwrap();
        let repos = repos_with_updateinfo(dir.path()).unwrap();
        assert_eq!(repos.into_iter().collect::<Vec<_>>(), ["updates"]);
        assert!(newest_metadata_mtime(dir.path()).is_some());
        assert_eq!(newest_metadata_mtime(&dir.path().join("missing")), None);
        assert_eq!(repos_with_updateinfo(&dir.path().join("missing")), None);
    }
}
