//! The apt/dpkg backend (Debian, Ubuntu and derivatives).
//!
//! Only the stable, scriptable interfaces are used: `dpkg-query -W` for the
//! package database, `apt-get -s` (simulate) for every plan, `apt-cache
//! policy` for where versions come from, and `apt-get` itself for changes.
//! `apt` (the interactive front end) warns that its output is not stable and
//! is never run. Every command runs in the C locale (see [`crate::exec`]).
//!
//! # Pointing apt at a root
//!
//! [`BackendOptions::config_file`] is handed to every apt command as the
//! `APT_CONFIG` environment variable (apt then reads that file instead of
//! `/etc/apt/apt.conf` and its parts). When [`BackendOptions::root`] is not
//! `/`, apt commands also get `-o Dir=<root>/ -o
//! Dir::State::status=<root>/var/lib/dpkg/status -o
//! DPkg::Options::=--root=<root>`, and `dpkg-query` gets
//! `--admindir=<root>/var/lib/dpkg`. Read-only simulations pass `-o
//! Debug::NoLocking=1` so that they neither need nor take the lock.
//!
//! # Installed packages
//!
//! `dpkg-query --admindir=<root>/var/lib/dpkg -W -f='${Package}\t${Architecture}\t${Version}\t${Source}\t${Status}\t${Installed-Size}\n'`
//! prints one line per package the database knows, six tab-separated fields
//! (tabs shown as `→`; `Source` is empty for keepme):
//!
//! ```text
//! binnmu→amd64→1.2-3+b1→foo (1.2-3)→install ok installed→12
//! keepme→all→1.0-1→→hold ok installed→12
//! libc6→i386→2.36-9→glibc→install ok installed→12
//! ```
//!
//! * `Source` is empty when the source package has the binary's name and
//!   version, `name` when only the name differs, `name (version)` when the
//!   version differs too (binNMUs). `source_package` is always filled in;
//!   `source_version` only when dpkg records it separately.
//! * `Status` is `want flag status`. Packages in the states `not-installed`
//!   and `config-files` (removed, configuration kept) are not installed and
//!   left out; half-installed, unpacked, half-configured and trigger states
//!   are listed, because their files are on disk. A `hold` want state is
//!   `apt-mark hold` (`held`).
//! * `Installed-Size` is in KiB.
//! * The install time is the modification time of dpkg's file list,
//!   `<admindir>/info/<name>:<arch>.list` (Multi-Arch: same packages) or
//!   `<admindir>/info/<name>.list`, which dpkg rewrites whenever it unpacks
//!   the package: it is the time the installed version was installed.
//! * dpkg does not record which repository a package came from: `origin` is
//!   `None`.
//!
//! # Updates and their security classification
//!
//! `apt-get -s -o Debug::NoLocking=1 upgrade` and the same with `dist-upgrade`
//! print what apt would do, one machine-readable line per package:
//!
//! ```text
//! Inst hello [1.0-1] (1.1-1 Local:12/stable [all])
//! Inst libc6:i386 [2.36-9] (2.36-9+deb12u4 Local:12/stable, Local-Security:12/stable-security [i386])
//! Remv other [1.0-1]
//! ```
//!
//! `Inst NAME[:FOREIGN-ARCH] [CURRENT] (CANDIDATE RELEASES [ARCH])`, where
//! RELEASES lists every archive that offers the candidate as
//! `Label:Version/Suite` (pieces left out when the Release file lacks them),
//! separated by `, `. `Conf` lines repeat `Inst` lines; `Remv`/`Purg` lines
//! remove. Anything after the closing parenthesis (`[a on b]`, `[pkg ]`) is
//! apt reporting dependencies it breaks on the way and is ignored. The counts
//! on apt's summary line (`5 upgraded, 0 newly installed, 0 to remove and 1
//! not upgraded.`) must match the lines parsed, so no action line goes
//! unnoticed.
//!
//! **Decision:** the updates are the union of both simulations. `upgrade`
//! alone keeps back updates that need new packages or removals;
//! `dist-upgrade` reports those, but may in turn drop an update: when a
//! newer `breaker` conflicts with `other`, dist-upgrade plans to remove
//! `other` and so does not list `other`'s (security) update, which plain
//! `upgrade` does list (seen with apt 2.6; see the integration test). Neither
//! simulation alone is complete; together no update is hidden because it has
//! new dependencies or conflicts. Only `Inst` lines of installed packages whose
//! candidate is newer (dpkg version order) count; packages apt would newly
//! install on the way are not updates. Held packages (`apt-mark hold`) are
//! kept back by apt in both simulations and therefore not reported as
//! updates; `installed()` marks them `held`. Likewise, updates apt defers
//! because of a phased rollout (Ubuntu) are not reported until apt would
//! install them.
//!
//! The security classification follows unattended-upgrades: an update is a
//! security update when **one of the archives offering exactly the candidate
//! version** is a security archive, i.e. its suite (`a=`) or codename (`n=`)
//! ends in `-security`, or its label (`l=`) or origin (`o=`) contains
//! `Security` (any case). When the candidate itself is not from a security
//! archive, but a version between the installed one and the candidate is
//! (Ubuntu: the fix in `jammy-security`, a later release in `jammy-updates`),
//! the update is a security update too: the candidate contains that fix, and
//! unattended-upgrades would install the security version. To know the
//! archives of a version,
//!
//! * `apt-cache policy` (no arguments) lists every package index with its
//!   Release data:
//!
//!   ```text
//!    500 file:/srv/sec ./ Packages
//!        release v=12,o=Local,a=stable-security,n=bookworm-security,l=Local-Security,c=
//!   ```
//!
//! * `apt-cache policy NAME[:ARCH]…` lists every version of each package with
//!   the indexes offering it (matched to the first listing by their text):
//!
//!   ```text
//!   other:
//!     Installed: 1.0-1
//!     Candidate: 1.2-1
//!     Version table:
//!        1.2-1 500
//!           500 file:/srv/sec ./ Packages
//!    *** 1.0-1 500
//!           500 file:/srv/main ./ Packages
//!           100 /var/lib/dpkg/status
//!   ```
//!
//! The reason says which archive decided it, e.g. `candidate 1.2-1 comes from
//! suite stable-security (label Local-Security, origin Local)`, or lists the
//! archives that offer it when none is a security archive
//! ([`SecurityClass::NotSecurity`]). The class is [`SecurityClass::Unknown`],
//! with the reason, when the evidence is missing: the candidate is offered by
//! no archive (only by the dpkg status, `a=now`), by an index whose Release
//! data `apt-cache policy` does not show (or shows without origin, label,
//! suite and codename: a repository without a Release file), or is not in
//! its version table at all. Every row of the candidate version in the table
//! counts (apt lists a version once per distinct build). apt metadata has
//! no advisory ids, severities or CVE ids: those stay
//! empty. `repository` is apt's own RELEASES text from the `Inst` line.
//!
//! # Transactions
//!
//! Every operation is first simulated with the same arguments plus `-s -y -o
//! Debug::NoLocking=1` (with `-y`, apt refuses in the simulation what it
//! would refuse for real: changing a held package, an unrequested downgrade); the `Inst`/`Remv`/`Purg` lines are the transaction
//! (install when there is no current version, else upgrade/downgrade/reinstall
//! by dpkg version order). The real run adds `-y -o
//! Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold` and
//! runs with `transaction_timeout`, retrying while apt reports the lock held
//! (`Could not get lock …`, `Unable to acquire the dpkg frontend lock …`,
//! `Unable to lock …`) for up to `lock_wait`.
//!
//! | operation | apt-get arguments |
//! |---|---|
//! | Install | `install -- NAME[=VERSION]…` |
//! | Upgrade All | `upgrade --with-new-pkgs` (new dependencies are installed, nothing is removed) |
//! | Upgrade Security | `install --only-upgrade -- NAME[:ARCH]=VERSION…` for exactly the security updates [`PackageManager::updates`] found (VERSION: the candidate, or the intermediate security version) |
//! | Upgrade Exact | `install --only-upgrade -- NAME=VERSION…` |
//! | Remove | `remove -- NAME…` |
//! | Downgrade | `install --allow-downgrades -- NAME=VERSION…` |
//!
//! **Security upgrades** install exactly the security updates found by
//! [`PackageManager::updates`], pinned to their versions (the candidate, or
//! for an intermediate security version that version), as
//! unattended-upgrades does, instead of a full upgrade with only the security
//! archives enabled: the set applied is the set that was reported, and a
//! candidate that is also newer in a non-security archive is still applied at
//! the security version. `--only-upgrade` keeps packages apt would mark as
//! manually installed in their auto state and never installs a named package
//! that is not installed.
//!
//! Upgrade All keeps back updates that would remove another package (and
//! apt's resolver may then keep back packages related to them too); they
//! stay listed by `updates()` and can be installed with Upgrade Exact, whose
//! dry run shows the removal. Upgrade All never removes a package.
//!
//! A bare name in Install, Upgrade Exact, Remove and Downgrade means the package on
//! every architecture it is installed for: a Multi-Arch: same library
//! installed as `libc6:amd64` and `libc6:i386` is passed as both, so
//! the architectures stay at one version (apt would otherwise remove the
//! other architecture on a downgrade), and a package installed only as
//! `libfoo:i386` is passed as that (apt reads a bare name as the native
//! architecture). A name that is not installed, contains `.` or `+` or ends
//! in `-`, and that no package has exactly (`apt-cache pkgnames
//! --all-names`) is refused before apt runs: apt would read it as a regular
//! expression (`lib.` matches every `lib…` package) or as an action suffix
//! (`apt-get install hello-` removes hello). Upgrade Exact and Downgrade of a
//! package that is not installed fail with [`PkgError::NotInstalled`] before
//! apt runs; apt's `E: Version 'V' for 'NAME' was not found` becomes
//! [`PkgError::VersionUnavailable`], and so does `E: Unable to locate package
//! NAME` when NAME was asked for at an exact version.
//!
//! # Metadata refresh
//!
//! `apt-get update -o APT::Update::Error-Mode=any -o DPkg::Lock::Timeout=0` (so an index that failed
//! to download fails the refresh instead of being a warning; older apt
//! ignores the option) with `refresh_timeout`, then the stamp
//! `/var/lib/apt/periodic/update-success-stamp` is touched, as Ubuntu's
//! `APT::Update::Post-Invoke-Success` hook does. `last_refresh()` is the
//! newest modification time of that stamp, `update-stamp` (written by
//! `apt.systemd.daily`) and the `*_Packages*`/`*Release` files in
//! `/var/lib/apt/lists`. The stamp matters: apt gives downloaded lists the
//! server's Last-Modified time and leaves unchanged lists untouched, so the
//! lists alone tell when the repositories last changed, not when they were
//! last checked.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;

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
use crate::spec::{PackageName, PackageVersion};

/// The `dpkg-query -f` format [`parse_dpkg_query`] reads.
pub const DPKG_QUERY_FORMAT: &str =
    "${Package}\\t${Architecture}\\t${Version}\\t${Source}\\t${Status}\\t${Installed-Size}\\n";

/// Options every real (not simulated) apt-get run gets: never prompt, keep
/// locally changed configuration files and take the maintainer's version of
/// unchanged ones, and fail at once on a held lock (we wait, see
/// [`NO_LOCK_WAIT`]).
const APPLY_OPTIONS: &[&str] =
    &["-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", "-o", NO_LOCK_WAIT];

/// apt itself would wait this long for the dpkg lock (a host's config may set
/// it); 0 leaves waiting to [`run_waiting_for_lock`], which honours
/// `lock_wait` and reports [`PkgError::Locked`].
const NO_LOCK_WAIT: &str = "DPkg::Lock::Timeout=0";

/// Substrings of apt's messages when another process holds one of its locks.
const LOCK_MESSAGES: &[&str] = &[
    "Could not get lock",
    "Unable to acquire the dpkg frontend lock",
    "Unable to lock the administration directory",
    "Unable to lock directory",
];

/// The apt/dpkg backend.
#[derive(Debug)]
pub struct Apt {
    options: BackendOptions,
}

impl Apt {
    pub fn new(options: BackendOptions) -> Self {
        Apt { options }
    }

    /// dpkg's database directory under the root.
    fn admindir(&self) -> PathBuf {
        self.options.path("var/lib/dpkg")
    }

    /// An apt program (`apt-get`, `apt-cache`) pointed at the root and config file.
    fn apt(&self, program: &str) -> Cmd {
        let mut cmd = self.options.cmd(program);
        if let Some(config) = &self.options.config_file {
            cmd = cmd.env("APT_CONFIG", config);
        }
        if !self.options.is_host_root() {
            let root = self.options.root.as_os_str();
            let option = |key: &str, value: &std::ffi::OsStr, suffix: &str| {
                let mut s = OsString::from(key);
                s.push(value);
                s.push(suffix);
                s
            };
            cmd = cmd
                .arg("-o")
                .arg(option("Dir=", root, "/"))
                .arg("-o")
                .arg(option("Dir::State::status=", self.admindir().join("status").as_os_str(), ""))
                .arg("-o")
                .arg(option("DPkg::Options::=--root=", root, ""));
        }
        cmd
    }

    /// `apt-get -s -o Debug::NoLocking=1 ARGS…`: a simulation that needs no lock.
    fn simulation(&self, args: &[String]) -> Cmd {
        self.apt("apt-get").args(["-s", "-o", "Debug::NoLocking=1"]).args(args)
    }

    /// Simulates `plan` and returns the transaction apt computes. `-y` makes
    /// apt refuse in the simulation exactly what it would refuse for real
    /// (changing a held package, an unrequested downgrade, removing an
    /// essential package), so a dry run never promises what apply won't do.
    fn simulate(&self, plan: &Plan) -> Result<Transaction> {
        let cmd = self.simulation(&[&["-y".to_owned()], plan.args.as_slice()].concat());
        let out = cmd.run(None)?;
        if !out.success() {
            return Err(apt_failure(&cmd, &out, &plan.pinned));
        }
        transaction(&cmd, parse_simulation(&cmd, &out.stdout)?)
    }

    /// The installed packages as dpkg lists them (including removed ones
    /// with configuration files left, which callers filter).
    fn dpkg_rows(&self) -> Result<Vec<DpkgRow>> {
        let mut admindir = OsString::from("--admindir=");
        admindir.push(self.admindir());
        let cmd = self.options.cmd("dpkg-query").arg(admindir).arg("-W").arg(format!("-f={DPKG_QUERY_FORMAT}"));
        let out = cmd.run_ok(&[0], None)?;
        parse_dpkg_query(&cmd, &out.stdout)
    }

    /// Installed architectures of each installed package name.
    fn installed_arches(&self) -> Result<HashMap<String, Vec<String>>> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for row in self.dpkg_rows()?.into_iter().filter(|r| r.status.is_installed()) {
            map.entry(row.name).or_default().push(row.arch);
        }
        Ok(map)
    }

    /// The apt-get arguments (after the program and global options) that
    /// carry out `op`, checking what apt would not check itself.
    fn plan(&self, op: &Operation) -> Result<Plan> {
        let mut plan = Plan::default();
        let words = |w: &[&str]| w.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        match op {
            Operation::Install(specs) => {
                let arches = self.installed_arches()?;
                plan.args = words(&["install", "--"]);
                for spec in specs {
                    self.require_literal(&arches, &spec.name, spec.version.as_ref())?;
                    plan.add(targets(&arches, &spec.name, spec.version.as_ref(), false)?, spec.version.as_ref());
                }
            }
            Operation::Upgrade(UpgradeScope::All) => plan.args = words(&["upgrade", "--with-new-pkgs"]),
            Operation::Upgrade(UpgradeScope::Security) => {
                plan.args = words(&["install", "--only-upgrade", "--"]);
                for u in self.updates_detailed()? {
                    if u.update.security.class == SecurityClass::Security {
                        plan.args.push(format!("{}={}", u.apt_name, u.security_version));
                        plan.pinned.push((u.update.name, u.security_version));
                    }
                }
            }
            Operation::Upgrade(UpgradeScope::Exact(pins)) | Operation::Downgrade(pins) => {
                let arches = self.installed_arches()?;
                plan.args = match op {
                    Operation::Downgrade(_) => words(&["install", "--allow-downgrades", "--"]),
                    _ => words(&["install", "--only-upgrade", "--"]),
                };
                for pin in pins {
                    plan.add(targets(&arches, &pin.name, Some(&pin.version), true)?, Some(&pin.version));
                }
            }
            Operation::Remove(names) => {
                let arches = self.installed_arches()?;
                plan.args = words(&["remove", "--"]);
                for name in names {
                    self.require_literal(&arches, name, None)?;
                    plan.add(targets(&arches, name, None, false)?, None);
                }
            }
        }
        Ok(plan)
    }

    /// Refuses a name that is not installed, that apt would not take
    /// literally ([`apt_may_reinterpret`]) and that no package has exactly:
    /// apt would read `lib.oo` as a regular expression and `hello-` in an
    /// install as "remove hello". `apt-cache pkgnames --all-names PREFIX`
    /// lists names by plain prefix, no pattern.
    fn require_literal(
        &self,
        installed: &HashMap<String, Vec<String>>,
        name: &PackageName,
        version: Option<&PackageVersion>,
    ) -> Result<()> {
        let name = name.as_str();
        if installed.contains_key(name) || !apt_may_reinterpret(name) {
            return Ok(());
        }
        // `--all-names`: virtual packages too (apt takes those literally as well).
        let cmd = self.apt("apt-cache").args(["pkgnames", "--all-names"]).arg(name);
        if cmd.run_ok(&[0], None)?.stdout.lines().any(|l| l.trim() == name) {
            return Ok(());
        }
        Err(match version {
            Some(v) => PkgError::VersionUnavailable { name: name.to_owned(), version: v.as_str().to_owned() },
            None => PkgError::invalid(
                "package name",
                name,
                "no package has exactly this name (apt would read it as a pattern or an install/remove suffix)",
            ),
        })
    }

    /// Updates with the name apt knows them by (`libc6:i386` for a foreign
    /// architecture), sorted by name and architecture.
    fn updates_detailed(&self) -> Result<Vec<DetailedUpdate>> {
        // Union of both simulations, keyed by apt's name; dist-upgrade wins.
        let mut upgrades: BTreeMap<String, Upgrade> = BTreeMap::new();
        for mode in ["upgrade", "dist-upgrade"] {
            let cmd = self.simulation(&[mode.to_owned()]);
            let out = cmd.run(None)?;
            if !out.success() {
                return Err(apt_failure(&cmd, &out, &[]));
            }
            add_upgrades(&cmd, parse_simulation(&cmd, &out.stdout)?, &mut upgrades)?;
        }
        if upgrades.is_empty() {
            return Ok(Vec::new());
        }

        let files_cmd = self.apt("apt-cache").arg("policy");
        let files = parse_policy_files(&files_cmd, &files_cmd.run_ok(&[0], None)?.stdout)?;
        let pkgs_cmd = self.apt("apt-cache").arg("policy").arg("--").args(upgrades.keys());
        let tables = parse_policy_packages(&pkgs_cmd, &pkgs_cmd.run_ok(&[0], None)?.stdout)?;

        let mut updates: Vec<DetailedUpdate> = Vec::with_capacity(upgrades.len());
        for u in upgrades.into_values() {
            let table = tables.get(&u.apt_name);
            let indexes = table.and_then(|t| candidate_indexes(t, &u.candidate));
            let mut security = classify(&u.candidate, indexes.as_deref(), &files);
            let mut security_version = u.candidate.clone();
            if security.class != SecurityClass::Security {
                if let Some(t) = table {
                    if let Some((version, info)) =
                        intermediate_security(&pkgs_cmd, t, &u.current, &u.candidate, &files)?
                    {
                        security = intermediate_security_info(&u.current, &u.candidate, &version, info);
                        security_version = version;
                    }
                }
            }
            updates.push(DetailedUpdate {
                update: AvailableUpdate {
                    reboot_likely: host::reboot_likely(&u.name),
                    name: u.name,
                    arch: u.arch,
                    current_version: u.current,
                    candidate_version: u.candidate,
                    repository: Some(u.releases).filter(|r| !r.is_empty()),
                    security,
                    cves: Vec::new(),
                },
                apt_name: u.apt_name,
                security_version,
            });
        }
        updates.sort_by(|a, b| (&a.update.name, &a.update.arch).cmp(&(&b.update.name, &b.update.arch)));
        Ok(updates)
    }
}

impl PackageManager for Apt {
    fn kind(&self) -> BackendKind {
        BackendKind::Apt
    }

    fn options(&self) -> &BackendOptions {
        &self.options
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        let info = self.admindir().join("info");
        let mut packages: Vec<InstalledPackage> = self
            .dpkg_rows()?
            .into_iter()
            .filter(|r| r.status.is_installed())
            .map(|r| {
                let list_files =
                    [info.join(format!("{}:{}.list", r.name, r.arch)), info.join(format!("{}.list", r.name))];
                let installed_at = list_files.into_iter().find(|p| p.exists()).and_then(|p| host::newest_mtime([p]));
                InstalledPackage {
                    source_package: Some(r.source.unwrap_or_else(|| r.name.clone())),
                    source_version: r.source_version,
                    held: r.status.want == "hold",
                    name: r.name,
                    version: r.version,
                    arch: r.arch,
                    origin: None,
                    installed_at,
                    size_bytes: r.size_kib.map(|kib| kib.saturating_mul(1024)),
                }
            })
            .collect();
        packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(packages)
    }

    fn updates(&self) -> Result<Vec<AvailableUpdate>> {
        Ok(self.updates_detailed()?.into_iter().map(|u| u.update).collect())
    }

    fn refresh(&self, sink: Option<LineSink<'_>>) -> Result<()> {
        let cmd = self.apt("apt-get").with_timeout(self.options.refresh_timeout).args([
            "-o",
            "APT::Update::Error-Mode=any",
            "-o",
            NO_LOCK_WAIT,
            "update",
        ]);
        let out = run_waiting_for_lock(BackendKind::Apt, self.options.lock_wait, &cmd, sink, lock_detail)?;
        if !out.success() {
            return Err(out.failure(&cmd));
        }
        let stamp = self.options.path("var/lib/apt/periodic/update-success-stamp");
        let touched =
            stamp.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| File::create(&stamp).map(drop));
        if let Err(err) = touched {
            tracing::warn!(stamp = %stamp.display(), %err, "refreshed, but could not write the success stamp");
        }
        Ok(())
    }

    fn last_refresh(&self) -> Result<Option<Timestamp>> {
        let stamps =
            ["update-success-stamp", "update-stamp"].map(|name| self.options.path("var/lib/apt/periodic").join(name));
        let lists = host::newest_mtime_in(&self.options.path("var/lib/apt/lists"), |name| {
            name.contains("_Packages") || name.ends_with("Release")
        });
        Ok(host::newest_mtime(stamps).into_iter().chain(lists).max())
    }

    fn dry_run(&self, op: &Operation) -> Result<Transaction> {
        op.validate()?;
        self.simulate(&self.plan(op)?)
    }

    fn apply(&self, op: &Operation, sink: Option<LineSink<'_>>) -> Result<Applied> {
        op.validate()?;
        let plan = self.plan(op)?;
        let transaction = self.simulate(&plan)?;
        check_plan(op, &transaction)?;
        let cmd =
            self.apt("apt-get").with_timeout(self.options.transaction_timeout).args(APPLY_OPTIONS).args(&plan.args);
        let output = run_waiting_for_lock(BackendKind::Apt, self.options.lock_wait, &cmd, sink, lock_detail)?;
        if !output.success() {
            return Err(apt_failure(&cmd, &output, &plan.pinned));
        }
        Ok(Applied { transaction, output })
    }

    fn reboot_status(&self) -> Result<RebootStatus> {
        host::reboot_status_common(&self.options, VersionFormat::Deb)
    }
}

/// What one operation runs: apt-get's arguments after the global options,
/// and the `(name, version)` pairs it asks for exactly.
#[derive(Debug, Default)]
struct Plan {
    args: Vec<String>,
    pinned: Vec<(String, String)>,
}

impl Plan {
    fn add(&mut self, targets: Vec<String>, version: Option<&PackageVersion>) {
        if let (Some(version), Some(first)) = (version, targets.first()) {
            let name = first.split([':', '=']).next().unwrap_or(first);
            self.pinned.push((name.to_owned(), version.as_str().to_owned()));
        }
        self.args.extend(targets);
    }
}

/// An update together with the name apt knows the package by.
#[derive(Debug)]
struct DetailedUpdate {
    update: AvailableUpdate,
    apt_name: String,
    /// What a security upgrade installs: the candidate, or the newest
    /// security version between the installed one and the candidate.
    security_version: String,
}

/// One `Inst` line of an upgrade simulation that is an update.
#[derive(Debug)]
struct Upgrade {
    apt_name: String,
    name: String,
    arch: String,
    current: String,
    candidate: String,
    releases: String,
}

/// Adds the updates among a simulation's lines to `upgrades` (keyed by
/// apt's name; a later simulation replaces an earlier one's entry): `Inst`
/// lines of installed packages whose candidate is newer. Packages apt would
/// newly install, remove, reinstall or (pinned) downgrade are no updates.
fn add_upgrades(cmd: &Cmd, lines: Vec<SimLine>, upgrades: &mut BTreeMap<String, Upgrade>) -> Result<()> {
    for line in lines {
        let SimLine::Inst { apt_name, name, arch, current: Some(current), candidate, releases } = line else {
            continue;
        };
        if compare(cmd, &current, &candidate)? == Ordering::Less {
            upgrades.insert(apt_name.clone(), Upgrade { apt_name, name, arch, current, candidate, releases });
        }
    }
    Ok(())
}

/// The apt-get arguments for `name` (at `version`): one `name:arch[=version]`
/// per architecture it is installed for (`name[=version]` for `all`, and when
/// it is not installed). A bare name means the native architecture to apt:
/// for a package installed only for a foreign one, apt would skip an
/// `--only-upgrade` or a removal ("not installed") and cross-grade on a
/// downgrade. `must_be_installed` fails with [`PkgError::NotInstalled`] when
/// it is not installed.
fn targets(
    installed: &HashMap<String, Vec<String>>,
    name: &PackageName,
    version: Option<&PackageVersion>,
    must_be_installed: bool,
) -> Result<Vec<String>> {
    let suffix = version.map(|v| format!("={}", v.as_str())).unwrap_or_default();
    match installed.get(name.as_str()) {
        None if must_be_installed => Err(PkgError::NotInstalled(name.as_str().to_owned())),
        Some(arches) if arches.len() > 1 || arches.iter().any(|arch| arch != "all") => {
            Ok(arches.iter().map(|arch| format!("{}:{arch}{suffix}", name.as_str())).collect())
        }
        _ => Ok(vec![format!("{}{suffix}", name.as_str())]),
    }
}

/// Whether apt could read `name` as something other than exactly this name
/// when no package has it: a regular expression (`.`, `+`) or a name with an
/// action suffix (`name-` removes in an install, `name+` installs in a remove).
fn apt_may_reinterpret(name: &str) -> bool {
    name.contains(['.', '+']) || name.ends_with('-')
}

/// Compares two Debian versions from `cmd`'s output. The parsers have
/// validated both already (naming the line), so this cannot fail in practice;
/// if it did, the error names both versions.
fn compare(cmd: &Cmd, a: &str, b: &str) -> Result<Ordering> {
    patchdeck_version::compare(VersionFormat::Deb, a, b).map_err(|err| PkgError::Parse {
        command: cmd.to_string(),
        line_no: 0,
        line: format!("{a} {b}"),
        reason: format!("cannot compare these Debian versions: {err}"),
    })
}

/// The error for a failed apt-get run: [`PkgError::VersionUnavailable`] when
/// apt says a requested version does not exist (`E: Version 'V' for 'NAME'
/// was not found`), or does not know a package asked for at an exact version
/// (`E: Unable to locate package NAME`); else the command's failure.
fn apt_failure(cmd: &Cmd, out: &Output, pinned: &[(String, String)]) -> PkgError {
    let text = out.combined();
    if let Some((name, version)) = version_not_found(&text) {
        return PkgError::VersionUnavailable { name, version };
    }
    for line in text.lines() {
        let Some(name) = line.trim().strip_prefix("E: Unable to locate package ") else {
            continue;
        };
        let name = name.split_once(':').map_or(name, |(n, _)| n);
        if let Some((name, version)) = pinned.iter().find(|(n, _)| n == name) {
            return PkgError::VersionUnavailable { name: name.clone(), version: version.clone() };
        }
    }
    out.failure(cmd)
}

/// Finds apt's `E: Version '9.9' for 'hello' was not found` and returns
/// the package name (without an `:arch` qualifier) and version.
pub fn version_not_found(output: &str) -> Option<(String, String)> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("E: Version '")?;
        let (version, rest) = rest.split_once("' for '")?;
        let (name, _) = rest.split_once("' was not found")?;
        let name = name.split_once(':').map_or(name, |(n, _)| n);
        Some((name.to_owned(), version.to_owned()))
    })
}

/// The lock message when apt could not get one of its locks.
fn lock_detail(out: &Output) -> Option<String> {
    if out.success() {
        return None;
    }
    let text = out.combined();
    let line = text.lines().find(|line| LOCK_MESSAGES.iter().any(|m| line.contains(m)))?;
    Some(line.trim().trim_start_matches("E:").trim().to_owned())
}

/// The dpkg status triple (`install ok installed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgStatus {
    /// `unknown`, `install`, `hold`, `deinstall` or `purge`.
    pub want: String,
    /// `ok` or `reinstreq`.
    pub flag: String,
    /// `installed`, `config-files`, `unpacked`, …
    pub state: String,
}

impl DpkgStatus {
    const WANTS: [&'static str; 5] = ["unknown", "install", "hold", "deinstall", "purge"];
    const FLAGS: [&'static str; 2] = ["ok", "reinstreq"];
    const STATES: [&'static str; 8] = [
        "not-installed",
        "config-files",
        "half-installed",
        "unpacked",
        "half-configured",
        "triggers-awaited",
        "triggers-pending",
        "installed",
    ];

    /// Whether the package's files are on disk (anything but removed).
    pub fn is_installed(&self) -> bool {
        !matches!(self.state.as_str(), "not-installed" | "config-files")
    }
}

/// One line of `dpkg-query -W -f=DPKG_QUERY_FORMAT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpkgRow {
    pub name: String,
    pub arch: String,
    pub version: String,
    /// The source package name when it differs from the package name.
    pub source: Option<String>,
    /// The source version when dpkg records it (`Source: foo (1.2-3)`).
    pub source_version: Option<String>,
    pub status: DpkgStatus,
    pub size_kib: Option<u64>,
}

/// Parses `dpkg-query -W` output in [`DPKG_QUERY_FORMAT`].
pub fn parse_dpkg_query(cmd: &Cmd, text: &str) -> Result<Vec<DpkgRow>> {
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let err = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, arch, version, source, status, size] = fields[..] else {
            return Err(err(&format!("expected 6 tab-separated fields, found {}", fields.len())));
        };
        if name.is_empty() || arch.is_empty() {
            return Err(err("package name or architecture is empty"));
        }
        let status = match status.split(' ').collect::<Vec<_>>()[..] {
            [want, flag, state]
                if DpkgStatus::WANTS.contains(&want)
                    && DpkgStatus::FLAGS.contains(&flag)
                    && DpkgStatus::STATES.contains(&state) =>
            {
                DpkgStatus { want: want.to_owned(), flag: flag.to_owned(), state: state.to_owned() }
            }
            _ => return Err(err(&format!("unknown dpkg status {status:?}"))),
        };
        if status.is_installed() {
            if version.is_empty() {
                return Err(err("installed package without a version"));
            }
            check_version(version).map_err(|e| err(&e))?;
        }
        let (source, source_version) = match source.trim() {
            "" => (None, None),
            s => match s.split_once(' ') {
                None => (Some(s.to_owned()), None),
                Some((src, paren)) => {
                    let Some(ver) = paren.strip_prefix('(').and_then(|p| p.strip_suffix(')')) else {
                        return Err(err(&format!("Source field {s:?} is neither `name` nor `name (version)`")));
                    };
                    if src.is_empty() || ver.is_empty() || ver.contains(' ') {
                        return Err(err(&format!("Source field {s:?} is neither `name` nor `name (version)`")));
                    }
                    (Some(src.to_owned()), Some(ver.to_owned()))
                }
            },
        };
        let size_kib = match size {
            "" => None,
            s => Some(s.parse::<u64>().map_err(|e| err(&format!("Installed-Size {s:?} is not a number of KiB: {e}")))?),
        };
        rows.push(DpkgRow {
            name: name.to_owned(),
            arch: arch.to_owned(),
            version: version.to_owned(),
            source,
            source_version,
            status,
            size_kib,
        });
    }
    Ok(rows)
}

/// One action line of an `apt-get -s` simulation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimLine {
    /// `Inst NAME [CURRENT] (CANDIDATE RELEASES [ARCH])`.
    Inst {
        /// The name as apt prints it (`libc6:i386` for a foreign architecture).
        apt_name: String,
        name: String,
        arch: String,
        current: Option<String>,
        candidate: String,
        /// Archives offering the candidate, e.g. `Debian:12.5/stable, Debian-Security:12/stable-security`.
        releases: String,
    },
    /// `Remv NAME [CURRENT]` or `Purg NAME [CURRENT]`.
    Remove {
        apt_name: String,
        name: String,
        /// Only known when apt qualifies the name (`libc6:i386`).
        arch: Option<String>,
        current: Option<String>,
    },
}

/// Parses the action lines of `apt-get -s` output and checks them against
/// apt's summary line. `Conf` lines are checked for form and otherwise
/// ignored (they repeat `Inst`); all other lines are apt's messages.
pub fn parse_simulation(cmd: &Cmd, text: &str) -> Result<Vec<SimLine>> {
    let mut lines = Vec::new();
    let mut summary: Option<(usize, Summary)> = None;
    for (i, line) in text.lines().enumerate() {
        let err = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        let Some((word, rest)) = line.split_once(' ') else {
            continue;
        };
        match word {
            "Inst" => {
                let (apt_name, rest) = rest.split_once(' ').ok_or_else(|| err("no candidate version"))?;
                let (current, rest) = take_current(rest).map_err(|r| err(&r))?;
                let (candidate, releases, arch) = parse_candidate(rest).map_err(|r| err(&r))?;
                let name = apt_name.split_once(':').map_or(apt_name, |(n, _)| n);
                lines.push(SimLine::Inst {
                    apt_name: apt_name.to_owned(),
                    name: name.to_owned(),
                    arch,
                    current,
                    candidate,
                    releases,
                });
            }
            "Conf" => {
                let (_, rest) = rest.split_once(' ').ok_or_else(|| err("no version"))?;
                parse_candidate(rest).map_err(|r| err(&r))?;
            }
            "Remv" | "Purg" => {
                let (apt_name, rest) = rest.split_once(' ').map_or((rest, ""), |(n, r)| (n, r));
                let (current, _) = take_current(rest).map_err(|r| err(&r))?;
                let (name, arch) = match apt_name.split_once(':') {
                    Some((n, a)) => (n, Some(a.to_owned())),
                    None => (apt_name, None),
                };
                if name.is_empty() {
                    return Err(err("no package name"));
                }
                lines.push(SimLine::Remove { apt_name: apt_name.to_owned(), name: name.to_owned(), arch, current });
            }
            _ => {
                if let Some(s) = parse_summary(line) {
                    summary = Some((i + 1, s));
                }
            }
        }
    }
    let installs = lines.iter().filter(|l| matches!(l, SimLine::Inst { .. })).count();
    let removals = lines.len() - installs;
    match summary {
        Some((line_no, s)) if s.installs() != installs || s.removals != removals => Err(PkgError::parse(
            cmd,
            line_no,
            text.lines().nth(line_no - 1).unwrap_or_default(),
            format!("apt's summary does not match its action lines ({installs} Inst, {removals} Remv/Purg)"),
        )),
        None if !lines.is_empty() => Err(PkgError::parse(
            cmd,
            text.lines().count(),
            text.lines().last().unwrap_or_default(),
            "action lines without apt's summary line (`N upgraded, N newly installed, …`)",
        )),
        _ => Ok(lines),
    }
}

/// Checks that `v` is a valid Debian version.
fn check_version(v: &str) -> std::result::Result<(), String> {
    patchdeck_version::validate(VersionFormat::Deb, v).map_err(|e| e.to_string())
}

/// Splits an optional `[VERSION]` off the front of `rest`.
fn take_current(rest: &str) -> std::result::Result<(Option<String>, &str), String> {
    let Some(inner) = rest.strip_prefix('[') else {
        return Ok((None, rest));
    };
    let (version, rest) = inner.split_once(']').ok_or("unterminated [current version]")?;
    check_version(version)?;
    Ok((Some(version.to_owned()), rest.trim_start()))
}

/// Parses `(VERSION RELEASES [ARCH])…` into version, releases and arch.
fn parse_candidate(rest: &str) -> std::result::Result<(String, String, String), String> {
    let inner = rest.strip_prefix('(').ok_or("expected `(candidate …)`")?;
    let end = inner.find("])").ok_or("expected `[arch])` closing the candidate")?;
    let (version, rest) = inner[..end].split_once(' ').ok_or("no version in the candidate")?;
    let (releases, arch) = rest.rsplit_once('[').ok_or("no [arch] in the candidate")?;
    check_version(version)?;
    if arch.is_empty() || arch.contains(' ') {
        return Err(format!("{arch:?} is not an architecture"));
    }
    Ok((version.to_owned(), releases.trim().to_owned(), arch.to_owned()))
}

/// The counts of apt's summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Summary {
    upgraded: usize,
    installed: usize,
    reinstalled: usize,
    downgraded: usize,
    removals: usize,
}

impl Summary {
    fn installs(&self) -> usize {
        self.upgraded + self.installed + self.reinstalled + self.downgraded
    }
}

/// Parses `1 upgraded, 0 newly installed, 1 reinstalled, 2 downgraded, 1 to
/// remove and 4 not upgraded.` (the reinstalled and downgraded parts only
/// appear when not zero).
fn parse_summary(line: &str) -> Option<Summary> {
    let body = line.trim().strip_suffix(" not upgraded.")?;
    let (body, _not_upgraded) = body.rsplit_once(" and ")?;
    let mut summary = Summary::default();
    let mut seen_removals = false;
    for part in body.split(", ") {
        let (count, what) = part.split_once(' ')?;
        let count: usize = count.parse().ok()?;
        match what {
            "upgraded" => summary.upgraded = count,
            "newly installed" => summary.installed = count,
            "reinstalled" => summary.reinstalled = count,
            "downgraded" => summary.downgraded = count,
            "to remove" => {
                summary.removals = count;
                seen_removals = true;
            }
            _ => return None,
        }
    }
    seen_removals.then_some(summary)
}

/// The transaction of a simulation's action lines.
fn transaction(cmd: &Cmd, lines: Vec<SimLine>) -> Result<Transaction> {
    let mut items = Vec::with_capacity(lines.len());
    for line in lines {
        items.push(match line {
            SimLine::Inst { name, arch, current, candidate, .. } => {
                let action = match &current {
                    None => TxAction::Install,
                    Some(current) => match compare(cmd, current, &candidate)? {
                        Ordering::Less => TxAction::Upgrade,
                        Ordering::Greater => TxAction::Downgrade,
                        Ordering::Equal => TxAction::Reinstall,
                    },
                };
                TxItem { name, action, from: current, to: Some(candidate), arch: Some(arch) }
            }
            SimLine::Remove { name, arch, current, .. } => {
                TxItem { name, action: TxAction::Remove, from: current, to: None, arch }
            }
        });
    }
    Ok(Transaction { items })
}

/// The Release data of one package index (`apt-cache policy`'s `release` line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// `o=`
    pub origin: Option<String>,
    /// `l=`
    pub label: Option<String>,
    /// `a=` (suite)
    pub archive: Option<String>,
    /// `n=`
    pub codename: Option<String>,
}

impl ReleaseInfo {
    /// Whether this is a security archive (see the module docs).
    pub fn is_security(&self) -> bool {
        let suite = |v: &Option<String>| v.as_deref().is_some_and(|s| s.ends_with("-security"));
        let named = |v: &Option<String>| v.as_deref().is_some_and(|s| s.to_ascii_lowercase().contains("security"));
        suite(&self.archive) || suite(&self.codename) || named(&self.label) || named(&self.origin)
    }

    /// `suite stable-security (label Local-Security, origin Local)`.
    fn describe(&self) -> String {
        let mut extra = Vec::new();
        if let Some(l) = &self.label {
            extra.push(format!("label {l}"));
        }
        if let Some(o) = &self.origin {
            extra.push(format!("origin {o}"));
        }
        let main = match (&self.archive, &self.codename) {
            (Some(a), _) => format!("suite {a}"),
            (None, Some(n)) => format!("codename {n}"),
            (None, None) => "an archive without suite".to_owned(),
        };
        if extra.is_empty() {
            main
        } else {
            format!("{main} ({})", extra.join(", "))
        }
    }

    /// Whether apt showed any of the Release fields the classification reads
    /// (an index without a Release file has none: no evidence either way).
    fn has_release_data(&self) -> bool {
        self.origin.is_some() || self.label.is_some() || self.archive.is_some() || self.codename.is_some()
    }

    /// The dpkg status pseudo-archive (`a=now`): installed, not offered.
    fn is_dpkg_status(&self) -> bool {
        self.archive.as_deref() == Some("now") && self.origin.is_none() && self.label.is_none()
    }
}

/// Parses the `Package files:` part of `apt-cache policy` (no arguments):
/// each index description mapped to its Release data.
pub fn parse_policy_files(cmd: &Cmd, text: &str) -> Result<HashMap<String, ReleaseInfo>> {
    let mut files = HashMap::new();
    let mut current: Option<String> = None;
    let mut in_files = false;
    for (i, line) in text.lines().enumerate() {
        let err = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        if line == "Package files:" {
            in_files = true;
            continue;
        }
        if line == "Pinned packages:" {
            break;
        }
        if !in_files || line.trim().is_empty() {
            continue;
        }
        let trimmed = line.trim_start();
        if let Some(fields) = trimmed.strip_prefix("release ") {
            let key = current.as_ref().ok_or_else(|| err("release line before any package file"))?;
            files.insert(key.clone(), parse_release_fields(fields));
        } else if trimmed.starts_with("origin ") {
            // The host name of the archive; the Release data is what counts.
            current.as_ref().ok_or_else(|| err("origin line before any package file"))?;
        } else {
            let (_priority, description) = split_priority(trimmed).ok_or_else(|| err("expected `PRIORITY INDEX`"))?;
            files.insert(description.to_owned(), ReleaseInfo::default());
            current = Some(description.to_owned());
        }
    }
    if !in_files {
        return Err(PkgError::parse(cmd, 1, text.lines().next().unwrap_or_default(), "no `Package files:` section"));
    }
    Ok(files)
}

/// `500 http://…` → (500, `http://…`).
fn split_priority(s: &str) -> Option<(i32, &str)> {
    let (priority, description) = s.split_once(' ')?;
    let priority = priority.parse().ok()?;
    let description = description.trim();
    (!description.is_empty()).then_some((priority, description))
}

/// `v=12,o=Debian,a=stable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64`.
/// A piece without `=` continues the previous value (a comma inside it).
fn parse_release_fields(fields: &str) -> ReleaseInfo {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for piece in fields.split(',') {
        match piece.split_once('=') {
            Some((k, v)) if k.len() == 1 => pairs.push((k.to_owned(), v.to_owned())),
            _ => match pairs.last_mut() {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(piece);
                }
                None => pairs.push((String::new(), piece.to_owned())),
            },
        }
    }
    let mut info = ReleaseInfo::default();
    for (key, value) in pairs {
        let value = Some(value).filter(|v| !v.is_empty());
        match key.as_str() {
            "o" => info.origin = value,
            "l" => info.label = value,
            "a" => info.archive = value,
            "n" => info.codename = value,
            _ => {}
        }
    }
    info
}

/// One package's block of `apt-cache policy NAME…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackagePolicy {
    pub installed: Option<String>,
    pub candidate: Option<String>,
    pub versions: Vec<PolicyVersion>,
}

/// A version in a policy version table and the indexes that offer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub version: String,
    pub installed: bool,
    pub indexes: Vec<String>,
}

/// Parses `apt-cache policy NAME…`: the blocks keyed by the name apt prints
/// (`libc6`, `libc6:i386`).
pub fn parse_policy_packages(cmd: &Cmd, text: &str) -> Result<HashMap<String, PackagePolicy>> {
    let mut packages: HashMap<String, PackagePolicy> = HashMap::new();
    let mut current: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        let err = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            let name = line.strip_suffix(':').ok_or_else(|| err("expected `NAME:`"))?;
            packages.insert(name.to_owned(), PackagePolicy::default());
            current = Some(name.to_owned());
            continue;
        }
        let block = current.as_ref().and_then(|c| packages.get_mut(c)).ok_or_else(|| err("line before any package"))?;
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        let none_is_none = |v: &str| Some(v.trim().to_owned()).filter(|v| v != "(none)");
        if let Some(v) = trimmed.strip_prefix("Installed:").filter(|_| indent == 2) {
            block.installed = none_is_none(v);
        } else if let Some(v) = trimmed.strip_prefix("Candidate:").filter(|_| indent == 2) {
            block.candidate = none_is_none(v);
        } else if indent == 2 && (trimmed == "Version table:" || trimmed.starts_with("Package pin:")) {
        } else if let Some(rest) = line.strip_prefix(" *** ") {
            block.versions.push(version_row(rest, true).ok_or_else(|| err("expected `*** VERSION PRIORITY`"))?);
        } else if indent == 5 {
            block.versions.push(version_row(trimmed, false).ok_or_else(|| err("expected `VERSION PRIORITY`"))?);
        } else if indent >= 8 {
            let (_priority, description) = split_priority(trimmed).ok_or_else(|| err("expected `PRIORITY INDEX`"))?;
            let version = block.versions.last_mut().ok_or_else(|| err("package index before any version"))?;
            version.indexes.push(description.to_owned());
        } else {
            return Err(err("not a line of apt-cache policy's package report"));
        }
    }
    Ok(packages)
}

/// `1.1-1 500` → the version row. apt 2.1+ appends `(phased 10%)` to a
/// version in a phased rollout (Ubuntu); anything else after the priority is
/// not understood.
fn version_row(s: &str, installed: bool) -> Option<PolicyVersion> {
    let (version, rest) = s.trim().split_once(' ')?;
    let (priority, note) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
    priority.parse::<i32>().ok()?;
    let note = note.trim();
    if !note.is_empty() && (!note.starts_with('(') || !note.ends_with(')')) {
        return None;
    }
    Some(PolicyVersion { version: version.to_owned(), installed, indexes: Vec::new() })
}

/// The indexes offering `candidate` in a policy version table; `None` when
/// the table does not list it. apt lists the same version once per distinct
/// build (e.g. a rebuild in the security archive with other checksums), so
/// every row of that version counts.
fn candidate_indexes(policy: &PackagePolicy, candidate: &str) -> Option<Vec<String>> {
    let rows: Vec<&PolicyVersion> = policy.versions.iter().filter(|v| v.version == candidate).collect();
    (!rows.is_empty()).then(|| rows.iter().flat_map(|v| v.indexes.iter().cloned()).collect())
}

/// The newest version in `policy`'s table newer than `current` and older
/// than `candidate` that a security archive offers, with that archive.
fn intermediate_security<'f>(
    cmd: &Cmd,
    policy: &PackagePolicy,
    current: &str,
    candidate: &str,
    files: &'f HashMap<String, ReleaseInfo>,
) -> Result<Option<(String, &'f ReleaseInfo)>> {
    let mut best: Option<(String, &ReleaseInfo)> = None;
    for v in &policy.versions {
        if compare(cmd, &v.version, current)? != Ordering::Greater
            || compare(cmd, &v.version, candidate)? != Ordering::Less
        {
            continue;
        }
        let Some(archive) = v.indexes.iter().filter_map(|i| files.get(i)).find(|a| a.is_security()) else {
            continue;
        };
        let newer = match &best {
            Some((b, _)) => compare(cmd, &v.version, b)? == Ordering::Greater,
            None => true,
        };
        if newer {
            best = Some((v.version.clone(), archive));
        }
    }
    Ok(best)
}

/// The classification of an update whose candidate contains the intermediate
/// security version `version` from `archive`.
fn intermediate_security_info(current: &str, candidate: &str, version: &str, archive: &ReleaseInfo) -> SecurityInfo {
    SecurityInfo::new(
        SecurityClass::Security,
        format!(
            "version {version} (newer than installed {current}, included in candidate {candidate}) comes from {}",
            archive.describe()
        ),
    )
}

/// The security classification of `candidate`, offered by `indexes` (from
/// the package's policy version table; `None` when the table does not list
/// the candidate) whose Release data is in `files`.
pub fn classify(candidate: &str, indexes: Option<&[String]>, files: &HashMap<String, ReleaseInfo>) -> SecurityInfo {
    let Some(indexes) = indexes else {
        return SecurityInfo::new(
            SecurityClass::Unknown,
            format!("apt-cache policy does not list candidate {candidate}, so its origin is unknown"),
        );
    };
    let mut archives = Vec::new();
    let mut unknown = Vec::new();
    for index in indexes {
        match files.get(index) {
            Some(info) if info.is_dpkg_status() => {}
            Some(info) if !info.has_release_data() => unknown.push(index.as_str()),
            Some(info) => archives.push(info),
            None => unknown.push(index.as_str()),
        }
    }
    if let Some(security) = archives.iter().find(|a| a.is_security()) {
        return SecurityInfo::new(
            SecurityClass::Security,
            format!("candidate {candidate} comes from {}", security.describe()),
        );
    }
    if !unknown.is_empty() {
        return SecurityInfo::new(
            SecurityClass::Unknown,
            format!(
                "candidate {candidate} comes from {}, whose Release data apt-cache policy does not show",
                unknown.join(", ")
            ),
        );
    }
    match archives.as_slice() {
        [] => SecurityInfo::new(
            SecurityClass::Unknown,
            format!(
                "candidate {candidate} is offered by no archive, only by the dpkg status, so its origin is unknown"
            ),
        ),
        [one] => SecurityInfo::new(
            SecurityClass::NotSecurity,
            format!("candidate {candidate} comes only from {}, not a security archive", one.describe()),
        ),
        many => SecurityInfo::new(
            SecurityClass::NotSecurity,
            format!(
                "candidate {candidate} comes only from {}, none of them a security archive",
                many.iter().map(|a| a.describe()).collect::<Vec<_>>().join("; ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DPKG_QUERY: &str = include_str!("../tests/data/apt/dpkg-query.txt");
    const SIM_DIST_UPGRADE: &str = include_str!("../tests/data/apt/sim-dist-upgrade.txt");
    const SIM_UPGRADE: &str = include_str!("../tests/data/apt/sim-upgrade.txt");
    const SIM_DOWNGRADE: &str = include_str!("../tests/data/apt/sim-downgrade.txt");
    const SIM_REMOVE: &str = include_str!("../tests/data/apt/sim-remove.txt");
    const SIM_INSTALL_NEW: &str = include_str!("../tests/data/apt/sim-install-new.txt");
    const SIM_NOOP: &str = include_str!("../tests/data/apt/sim-downgrade-noop.txt");
    const SIM_ONLY_UPGRADE_MISSING: &str = include_str!("../tests/data/apt/sim-only-upgrade-missing.txt");
    const SIM_VERSION_MISSING: &str = include_str!("../tests/data/apt/sim-version-missing.txt");
    const POLICY: &str = include_str!("../tests/data/apt/policy.txt");
    const POLICY_PKGS: &str = include_str!("../tests/data/apt/policy-pkgs.txt");
    const LOCKED: &str = include_str!("../tests/data/apt/locked.txt");

    fn cmd(program: &str) -> Cmd {
        Cmd::new(program, Duration::from_secs(1))
    }

    fn row<'a>(rows: &'a [DpkgRow], name: &str, arch: &str) -> &'a DpkgRow {
        rows.iter()
            .find(|r| r.name == name && r.arch == arch)
            .unwrap_or_else(|| panic!("{name}:{arch} missing from {rows:#?}"))
    }

    #[test]
    fn dpkg_query_multiarch_hold_source_and_epoch() {
        let rows = parse_dpkg_query(&cmd("dpkg-query"), DPKG_QUERY).unwrap();
        assert_eq!(rows.len(), 9);

        // Multi-Arch: same library installed for two architectures: two rows.
        let amd64 = row(&rows, "libc6", "amd64");
        let i386 = row(&rows, "libc6", "i386");
        assert_eq!((amd64.version.as_str(), i386.version.as_str()), ("2.36-9", "2.36-9"));
        assert_eq!(amd64.source.as_deref(), Some("glibc"));
        assert_eq!(amd64.source_version, None);

        // binNMU: Source carries the source version.
        let binnmu = row(&rows, "binnmu", "amd64");
        assert_eq!(binnmu.version, "1.2-3+b1");
        assert_eq!(binnmu.source.as_deref(), Some("foo"));
        assert_eq!(binnmu.source_version.as_deref(), Some("1.2-3"));
        assert_eq!(binnmu.size_kib, Some(12));

        let held = row(&rows, "keepme", "all");
        assert_eq!(held.status.want, "hold");
        assert!(held.status.is_installed());

        assert_eq!(row(&rows, "epochy", "all").version, "1:2.0-1");
        assert_eq!(row(&rows, "epochy", "all").source, None);

        // Removed with its configuration files kept: known to dpkg, not installed.
        let gone = row(&rows, "gone", "all");
        assert_eq!(gone.status.state, "config-files");
        assert!(!gone.status.is_installed());
    }

    #[test]
    fn dpkg_query_garbage_names_the_line() {
        let text = "hello\tall\t1.0-1\t\tinstall ok installed\t12\nbroken line without tabs\n";
        let err = parse_dpkg_query(&cmd("dpkg-query"), text).unwrap_err();
        match &err {
            PkgError::Parse { line_no, line, .. } => {
                assert_eq!(*line_no, 2);
                assert_eq!(line, "broken line without tabs");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("expected 6 tab-separated fields"), "{err}");

        for (text, why) in [
            ("x\tall\t1\t\tinstall ok sideways\t1\n", "unknown dpkg status"),
            ("x\tall\t1\tfoo (1.0\tinstall ok installed\t1\n", "neither `name`"),
            ("x\tall\t1\t\tinstall ok installed\tlots\n", "not a number of KiB"),
            ("x\tall\t\t\tinstall ok installed\t1\n", "without a version"),
        ] {
            let err = parse_dpkg_query(&cmd("dpkg-query"), text).unwrap_err();
            assert!(matches!(err, PkgError::Parse { line_no: 1, .. }), "{err}");
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    #[test]
    fn simulation_with_epoch_multiarch_and_breakage_notes() {
        let lines = parse_simulation(&cmd("apt-get"), SIM_UPGRADE).unwrap();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            SimLine::Inst {
                apt_name: "epochy".into(),
                name: "epochy".into(),
                arch: "all".into(),
                current: Some("1:2.0-1".into()),
                candidate: "1:2.1-1".into(),
                releases: "Local:12/stable".into(),
            }
        );
        // Trailing `[a on b]` notes about temporarily broken dependencies are not part of the candidate.
        assert_eq!(
            lines[2],
            SimLine::Inst {
                apt_name: "libc6".into(),
                name: "libc6".into(),
                arch: "amd64".into(),
                current: Some("2.36-9".into()),
                candidate: "2.36-9+deb12u4".into(),
                releases: "Local:12/stable, Local-Security:12/stable-security".into(),
            }
        );
        let SimLine::Inst { apt_name, name, arch, .. } = &lines[3] else {
            panic!("{:?}", lines[3]);
        };
        assert_eq!((apt_name.as_str(), name.as_str(), arch.as_str()), ("libc6:i386", "libc6", "i386"));
    }

    #[test]
    fn updates_are_the_union_of_upgrade_and_dist_upgrade() {
        let c = cmd("apt-get");
        let upgrade = parse_simulation(&c, SIM_UPGRADE).unwrap();
        let dist_upgrade = parse_simulation(&c, SIM_DIST_UPGRADE).unwrap();
        // dist-upgrade also installs the new dependency of grower 2.0-1, which upgrade keeps back.
        assert_eq!(dist_upgrade.len(), 7);
        assert!(dist_upgrade
            .iter()
            .any(|l| matches!(l, SimLine::Inst { name, current: None, .. } if name == "newpkg")));
        let mut upgrades = BTreeMap::new();
        add_upgrades(&c, upgrade, &mut upgrades).unwrap();
        assert!(!upgrades.contains_key("grower"));
        add_upgrades(&c, dist_upgrade, &mut upgrades).unwrap();
        assert_eq!(
            upgrades.keys().map(String::as_str).collect::<Vec<_>>(),
            ["epochy", "grower", "hello", "libc6", "libc6:i386", "other"],
            "the new package is no update, the held one (keepme) is kept back by apt"
        );
        let grower = &upgrades["grower"];
        assert_eq!((grower.current.as_str(), grower.candidate.as_str()), ("1.0-1", "2.0-1"));
        let epochy = &upgrades["epochy"];
        assert_eq!((epochy.current.as_str(), epochy.candidate.as_str()), ("1:2.0-1", "1:2.1-1"));

        // A pin that makes apt go back is not an update.
        let pinned_back = "Inst hello [1.1-1] (1.0-1 Local:stable [all])\n0 upgraded, 0 newly installed, 1 downgraded, 0 to remove and 0 not upgraded.\n";
        let mut none = BTreeMap::new();
        add_upgrades(&c, parse_simulation(&c, pinned_back).unwrap(), &mut none).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn simulation_transactions() {
        let c = cmd("apt-get");
        let tx = transaction(&c, parse_simulation(&c, SIM_DOWNGRADE).unwrap()).unwrap();
        let summary: Vec<_> = tx
            .items
            .iter()
            .map(|i| (i.name.as_str(), i.action, i.from.as_deref(), i.to.as_deref(), i.arch.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("libc6", TxAction::Remove, Some("2.36-9+deb12u4"), None, Some("i386")),
                ("epochy", TxAction::Downgrade, Some("1:2.1-1"), Some("1:2.0-1"), Some("all")),
                ("libc6", TxAction::Downgrade, Some("2.36-9+deb12u4"), Some("2.36-9"), Some("amd64")),
            ]
        );

        let tx = transaction(&c, parse_simulation(&c, SIM_REMOVE).unwrap()).unwrap();
        assert_eq!(tx.items.len(), 2);
        assert!(tx.items.iter().all(|i| i.action == TxAction::Remove && i.to.is_none()));
        assert_eq!(tx.item("other").unwrap().from.as_deref(), Some("1.0-1"));
        assert_eq!(tx.item("other").unwrap().arch, None, "apt does not qualify native packages");

        let tx = transaction(&c, parse_simulation(&c, SIM_INSTALL_NEW).unwrap()).unwrap();
        assert_eq!(tx.items.len(), 1);
        assert_eq!(tx.items[0].action, TxAction::Install);
        assert_eq!((tx.items[0].from.as_deref(), tx.items[0].to.as_deref()), (None, Some("1.0-1")));

        let reinstall = "Inst hello [1.0-1] (1.0-1 Local:stable [all])\n0 upgraded, 0 newly installed, 1 reinstalled, 0 to remove and 0 not upgraded.\n";
        let tx = transaction(&c, parse_simulation(&c, reinstall).unwrap()).unwrap();
        assert_eq!(tx.items[0].action, TxAction::Reinstall);

        for nothing in [SIM_NOOP, SIM_ONLY_UPGRADE_MISSING] {
            assert!(parse_simulation(&c, nothing).unwrap().is_empty());
        }
    }

    #[test]
    fn simulation_garbage_and_inconsistency_are_errors() {
        let c = cmd("apt-get");
        let err = parse_simulation(&c, "Reading package lists...\nInst hello [1.0-1 (1.1-1 Local:stable [all])\n")
            .unwrap_err();
        assert!(matches!(err, PkgError::Parse { line_no: 2, .. }), "{err}");
        let err = parse_simulation(&c, "Inst hello [1.0 1] (1.1-1 Local:stable [all])\n").unwrap_err();
        assert!(matches!(err, PkgError::Parse { line_no: 1, .. }), "{err}");
        let err = parse_simulation(&c, "Inst hello [1.0-1] (:1.1 Local:stable [all])\n").unwrap_err();
        assert!(err.to_string().contains("invalid"), "{err}");
        let err = parse_simulation(&c, "Inst hello [1.0-1] (1.1-1 Local:stable)\n").unwrap_err();
        assert!(err.to_string().contains("[arch])"), "{err}");
        // A line the summary counts but we did not see (here: summary says 2).
        let text = "Inst hello [1.0-1] (1.1-1 Local:stable [all])\n2 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n";
        let err = parse_simulation(&c, text).unwrap_err();
        assert!(matches!(err, PkgError::Parse { line_no: 2, .. }), "{err}");
        // Action lines without any summary.
        let err = parse_simulation(&c, "Remv hello [1.0-1]\n").unwrap_err();
        assert!(err.to_string().contains("summary"), "{err}");
    }

    #[test]
    fn summary_line_variants() {
        assert_eq!(
            parse_summary("0 upgraded, 0 newly installed, 2 downgraded, 1 to remove and 1 not upgraded."),
            Some(Summary { downgraded: 2, removals: 1, ..Summary::default() })
        );
        assert_eq!(
            parse_summary("1 upgraded, 2 newly installed, 3 reinstalled, 0 to remove and 0 not upgraded.")
                .map(|s| s.installs()),
            Some(6)
        );
        assert_eq!(parse_summary("The following packages will be upgraded:"), None);
    }

    #[test]
    fn policy_files_and_versions() {
        let files = parse_policy_files(&cmd("apt-cache"), POLICY).unwrap();
        assert_eq!(files.len(), 3);
        let sec = &files["file:/SANDBOX/sec ./ Packages"];
        assert_eq!(sec.archive.as_deref(), Some("stable-security"));
        assert_eq!(sec.codename.as_deref(), Some("bookworm-security"));
        assert_eq!(sec.label.as_deref(), Some("Local-Security"));
        assert_eq!(sec.origin.as_deref(), Some("Local"));
        assert!(sec.is_security());
        assert!(!files["file:/SANDBOX/main ./ Packages"].is_security());
        assert!(files["/SANDBOX/root/var/lib/dpkg/status"].is_dpkg_status());

        let pkgs = parse_policy_packages(&cmd("apt-cache"), POLICY_PKGS).unwrap();
        assert_eq!(pkgs.len(), 5);
        let i386 = &pkgs["libc6:i386"];
        assert_eq!(i386.installed.as_deref(), Some("2.36-9"));
        assert_eq!(i386.candidate.as_deref(), Some("2.36-9+deb12u4"));
        assert_eq!(i386.versions[0].indexes, ["file:/SANDBOX/main ./ Packages", "file:/SANDBOX/sec ./ Packages"]);
        assert!(i386.versions[1].installed);
        assert_eq!(pkgs["epochy"].versions[0].version, "1:2.1-1");
    }

    #[test]
    fn real_debian_policy_lines() {
        // Shape of a Debian 12 host's `apt-cache policy` (written by hand from one).
        let text = "Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n 500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n     release v=12,o=Debian,a=stable-security,n=bookworm-security,l=Debian-Security,c=main,b=amd64\n     origin deb.debian.org\n 100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n     release o=Debian Backports,a=stable-backports,n=bookworm-backports,l=Debian Backports,c=main,b=amd64\n     origin deb.debian.org\nPinned packages:\n     hello -> 1.0-1 with priority 1001\n";
        let files = parse_policy_files(&cmd("apt-cache"), text).unwrap();
        let backports = &files["http://deb.debian.org/debian bookworm-backports/main amd64 Packages"];
        assert_eq!(backports.label.as_deref(), Some("Debian Backports"));
        assert!(!backports.is_security());
        assert!(files["http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"].is_security());
    }

    #[test]
    fn policy_garbage_names_the_line() {
        let err = parse_policy_files(&cmd("apt-cache"), "Package files:\n     release a=now\n").unwrap_err();
        assert!(matches!(err, PkgError::Parse { line_no: 2, .. }), "{err}");
        let err =
            parse_policy_packages(&cmd("apt-cache"), "hello:\n  Version table:\n       what is this\n").unwrap_err();
        assert!(matches!(err, PkgError::Parse { line_no: 3, .. }), "{err}");
        let err = parse_policy_files(&cmd("apt-cache"), "nothing here\n").unwrap_err();
        assert!(err.to_string().contains("Package files"), "{err}");
    }

    #[test]
    fn classification_from_the_candidates_archives() {
        let files = parse_policy_files(&cmd("apt-cache"), POLICY).unwrap();
        let pkgs = parse_policy_packages(&cmd("apt-cache"), POLICY_PKGS).unwrap();
        let classify_pkg = |name: &str| {
            let p = &pkgs[name];
            let candidate = p.candidate.clone().unwrap();
            let v = p.versions.iter().find(|v| v.version == candidate).unwrap();
            classify(&candidate, Some(&v.indexes), &files)
        };
        let other = classify_pkg("other");
        assert_eq!(other.class, SecurityClass::Security);
        assert_eq!(
            other.reason,
            "candidate 1.2-1 comes from suite stable-security (label Local-Security, origin Local)"
        );
        // Offered by both stable and stable-security: security, like unattended-upgrades.
        assert_eq!(classify_pkg("libc6:i386").class, SecurityClass::Security);
        let hello = classify_pkg("hello");
        assert_eq!(hello.class, SecurityClass::NotSecurity);
        assert_eq!(
            hello.reason,
            "candidate 1.1-1 comes only from suite stable (label Local, origin Local), not a security archive"
        );
        // The installed version is only in the dpkg status "archive": origin unknown.
        let status_only = classify("1.0-1", Some(&["/SANDBOX/root/var/lib/dpkg/status".to_owned()]), &files);
        assert_eq!(status_only.class, SecurityClass::Unknown);
        assert!(status_only.reason.contains("only by the dpkg status"), "{}", status_only.reason);
        // An index missing from the package files list is reported, never guessed.
        let stray = classify("1.1-1", Some(&["file:/elsewhere ./ Packages".to_owned()]), &files);
        assert_eq!(stray.class, SecurityClass::Unknown);
        assert!(stray.reason.contains("file:/elsewhere ./ Packages"), "{}", stray.reason);
        let unlisted = classify("1.1-1", None, &files);
        assert_eq!(unlisted.class, SecurityClass::Unknown);
        // One security archive among several decides, like unattended-upgrades.
        let both = classify(
            "2.36-9+deb12u4",
            Some(&["file:/SANDBOX/main ./ Packages".to_owned(), "file:/SANDBOX/sec ./ Packages".to_owned()]),
            &files,
        );
        assert_eq!(both.class, SecurityClass::Security);
        assert!(both.reason.contains("stable-security"), "{}", both.reason);
    }

    #[test]
    fn an_index_without_release_data_is_no_evidence() {
        // A flat repository without a Release file: apt shows no o=/l=/a=/n=.
        let policy = [
            "Package files:",
            " 500 file:/srv/flat ./ Packages",
            "     release c=",
            " 500 file:/srv/bare ./ Packages",
            "Pinned packages:",
        ]
        .join("\n");
        let files = parse_policy_files(&cmd("apt-cache"), &policy).unwrap();
        for index in ["file:/srv/flat ./ Packages", "file:/srv/bare ./ Packages"] {
            let sec = classify("1.1-1", Some(&[index.to_owned()]), &files);
            assert_eq!(sec.class, SecurityClass::Unknown, "{index}: {}", sec.reason);
            assert!(sec.reason.contains(index), "{}", sec.reason);
        }
    }

    #[test]
    fn every_row_of_the_candidate_version_counts() {
        // The same version built twice (main and a security rebuild): two rows.
        let text = [
            "other:",
            "  Installed: 1.0-1",
            "  Candidate: 1.2-1",
            "  Version table:",
            "     1.2-1 500",
            "        500 file:/SANDBOX/main ./ Packages",
            "     1.2-1 500",
            "        500 file:/SANDBOX/sec ./ Packages",
            " *** 1.0-1 500",
            "        100 /SANDBOX/root/var/lib/dpkg/status",
        ]
        .join("\n");
        let pkgs = parse_policy_packages(&cmd("apt-cache"), &text).unwrap();
        let files = parse_policy_files(&cmd("apt-cache"), POLICY).unwrap();
        let indexes = candidate_indexes(&pkgs["other"], "1.2-1").unwrap();
        assert_eq!(indexes, ["file:/SANDBOX/main ./ Packages", "file:/SANDBOX/sec ./ Packages"]);
        assert_eq!(classify("1.2-1", Some(&indexes), &files).class, SecurityClass::Security);
        assert_eq!(candidate_indexes(&pkgs["other"], "9.9-1"), None);
    }

    #[test]
    fn a_security_version_below_the_candidate_makes_a_security_update() {
        // Ubuntu's pattern: the fix (1.2-1) in -security, a later release (1.3-1) only in -updates.
        let text = [
            "other:",
            "  Installed: 1.0-1",
            "  Candidate: 1.3-1",
            "  Version table:",
            "     1.3-1 500",
            "        500 file:/SANDBOX/main ./ Packages",
            "     1.2-1 500",
            "        500 file:/SANDBOX/sec ./ Packages",
            "     1.1-1 500",
            "        500 file:/SANDBOX/sec ./ Packages",
            "     1.0-2 500",
            "        500 file:/SANDBOX/main ./ Packages",
            " *** 1.0-1 500",
            "        100 /SANDBOX/root/var/lib/dpkg/status",
        ]
        .join("\n");
        let c = cmd("apt-cache");
        let pkgs = parse_policy_packages(&c, &text).unwrap();
        let files = parse_policy_files(&c, POLICY).unwrap();
        let t = &pkgs["other"];
        let indexes = candidate_indexes(t, "1.3-1").unwrap();
        assert_eq!(classify("1.3-1", Some(&indexes), &files).class, SecurityClass::NotSecurity);
        let (version, archive) = intermediate_security(&c, t, "1.0-1", "1.3-1", &files).unwrap().unwrap();
        assert_eq!(version, "1.2-1", "the newest security version below the candidate");
        let info = intermediate_security_info("1.0-1", "1.3-1", &version, archive);
        assert_eq!(info.class, SecurityClass::Security);
        assert_eq!(
            info.reason,
            "version 1.2-1 (newer than installed 1.0-1, included in candidate 1.3-1) comes from suite \
             stable-security (label Local-Security, origin Local)"
        );
        // Already installed, or only at/above the candidate: not an intermediate fix.
        assert_eq!(intermediate_security(&c, t, "1.2-1", "1.3-1", &files).unwrap(), None);
        assert_eq!(intermediate_security(&c, t, "1.0-1", "1.1-1", &files).unwrap(), None);
        assert_eq!(intermediate_security(&c, t, "1.0-1", "1.2-1", &files).unwrap().unwrap().0, "1.1-1");
    }

    #[test]
    fn ubuntu_security_by_suite() {
        let info = parse_release_fields("v=22.04,o=Ubuntu,a=jammy-security,n=jammy,l=Ubuntu,c=main,b=amd64");
        assert!(info.is_security());
        let info = parse_release_fields("v=22.04,o=Ubuntu,a=jammy-updates,n=jammy,l=Ubuntu,c=main,b=amd64");
        assert!(!info.is_security());
    }

    #[test]
    fn version_not_found_and_lock_messages() {
        assert_eq!(version_not_found(SIM_VERSION_MISSING), Some(("hello".to_owned(), "9.9".to_owned())));
        assert_eq!(
            version_not_found("E: Version '1:2' for 'libc6:i386' was not found\n"),
            Some(("libc6".to_owned(), "1:2".to_owned()))
        );
        assert_eq!(version_not_found(SIM_NOOP), None);

        use std::os::unix::process::ExitStatusExt;
        let failed = |stderr: &str| Output {
            status: std::process::ExitStatus::from_raw(100 << 8),
            stdout: String::new(),
            stderr: stderr.to_owned(),
            elapsed: Duration::ZERO,
        };
        assert_eq!(
            lock_detail(&failed(LOCKED)).as_deref(),
            Some("Could not get lock /SANDBOX/root/var/lib/dpkg/lock-frontend. It is held by process 4242 (python3)")
        );
        assert_eq!(lock_detail(&failed(SIM_VERSION_MISSING)), None);
    }

    #[test]
    fn unknown_package_at_an_exact_version_is_unavailable() {
        use std::os::unix::process::ExitStatusExt;
        let out = Output {
            status: std::process::ExitStatus::from_raw(100 << 8),
            stdout: "Reading package lists...\n".to_owned(),
            stderr: "E: Unable to locate package nosuch\n".to_owned(),
            elapsed: Duration::ZERO,
        };
        let c = cmd("apt-get");
        let err = apt_failure(&c, &out, &[("nosuch".to_owned(), "1.0-1".to_owned())]);
        assert!(
            matches!(&err, PkgError::VersionUnavailable { name, version } if name == "nosuch" && version == "1.0-1"),
            "{err}"
        );
        // Without a version asked for, it is apt's failure as it is.
        let err = apt_failure(&c, &out, &[]);
        assert!(matches!(&err, PkgError::CommandFailed { detail, .. } if detail.contains("nosuch")), "{err}");
    }

    #[test]
    fn phased_versions_in_policy() {
        // Written by hand after Ubuntu 22.04's apt 2.4 (phasing is not reproducible in a sandbox).
        let text = "libssl3:\n  Installed: 3.0.2-0ubuntu1.10\n  Candidate: 3.0.2-0ubuntu1.10\n  Version table:\n     3.0.2-0ubuntu1.12 500 (phased 20%)\n        500 http://archive.ubuntu.com/ubuntu jammy-updates/main amd64 Packages\n        500 http://security.ubuntu.com/ubuntu jammy-security/main amd64 Packages\n *** 3.0.2-0ubuntu1.10 100\n        100 /var/lib/dpkg/status\n";
        let pkgs = parse_policy_packages(&cmd("apt-cache"), text).unwrap();
        let versions = &pkgs["libssl3"].versions;
        assert_eq!(versions[0].version, "3.0.2-0ubuntu1.12");
        assert_eq!(versions[0].indexes.len(), 2);
        assert!(versions[1].installed);
        let err = parse_policy_packages(&cmd("apt-cache"), "x:\n  Version table:\n     1.0 500 what\n").unwrap_err();
        assert!(matches!(err, PkgError::Parse { line_no: 3, .. }), "{err}");
    }

    #[test]
    fn targets_expand_multiarch_and_refuse_missing() {
        let installed: HashMap<String, Vec<String>> = [
            ("libc6".to_owned(), vec!["amd64".to_owned(), "i386".to_owned()]),
            ("hello".to_owned(), vec!["all".to_owned()]),
            ("libfoo".to_owned(), vec!["i386".to_owned()]),
        ]
        .into();
        let name = |n: &str| PackageName::parse(n).unwrap();
        let v = PackageVersion::parse("1:2.0-1").unwrap();
        assert_eq!(
            targets(&installed, &name("libc6"), Some(&v), true).unwrap(),
            ["libc6:amd64=1:2.0-1", "libc6:i386=1:2.0-1"]
        );
        assert_eq!(targets(&installed, &name("hello"), None, false).unwrap(), ["hello"]);
        // Installed only for one architecture (here a foreign one): apt must be told which.
        assert_eq!(targets(&installed, &name("libfoo"), Some(&v), true).unwrap(), ["libfoo:i386=1:2.0-1"]);
        assert_eq!(targets(&installed, &name("libfoo"), None, false).unwrap(), ["libfoo:i386"]);
        assert_eq!(targets(&installed, &name("nope"), None, false).unwrap(), ["nope"]);
        let err = targets(&installed, &name("nope"), Some(&v), true).unwrap_err();
        assert!(matches!(err, PkgError::NotInstalled(ref n) if n == "nope"), "{err}");
    }
}
