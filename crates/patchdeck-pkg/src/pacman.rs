//! The pacman backend (Arch Linux and derivatives), for pacman 6.
//!
//! # Where everything comes from
//!
//! | method | source |
//! |---|---|
//! | `installed` | the local database read directly: `<dbpath>/local/<name>-<version>/desc` |
//! | held packages | `IgnorePkg` / `IgnoreGroup` of the `[options]` section of pacman.conf |
//! | `updates` | `pacman -Qu`, then `pacman -Si -- <names>` for the candidate's repository and arch |
//! | `refresh` | `pacman -Sy` |
//! | `last_refresh` | newest mtime of `<dbpath>/sync/*.db` |
//! | `dry_run` | `pacman -Sup` / `-Sp` / `-Up` / `-Rsp` with `--print-format '%n %v'` |
//! | `apply` | the same command without `-p` |
//! | `reboot_status` | [`host::reboot_status_common`] |
//!
//! Every command is `pacman --noconfirm --color never --config <conf>` (plus
//! `--noprogressbar` for refreshes and transactions);
//! for a root other than `/` it also gets `--root <root> --dbpath <root>/var/lib/pacman
//! --cachedir <root>/var/cache/pacman/pkg --logfile <root>/var/log/pacman.log
//! --hookdir <root>/etc/pacman.d/hooks --gpgdir <root>/etc/pacman.d/gnupg`, so that
//! nothing of the host is read or written. The config file is
//! [`BackendOptions::config_file`], else `<root>/etc/pacman.conf`.
//!
//! # The local database
//!
//! `desc` is a list of sections, each a `%KEY%` line followed by one value per
//! line and ended by an empty line:
//!
//! ```text
//! %NAME%
//! hello
//!
//! %VERSION%
//! 1:1.0-1
//!
//! %BASE%
//! hello-src
//! ```
//!
//! We use `%NAME%`, `%VERSION%` (with the epoch), `%BASE%` (the source package;
//! makepkg writes it for every package since pacman 4.1, older entries fall back
//! to the name), `%ARCH%`, `%INSTALLDATE%` (Unix seconds), `%SIZE%` (bytes) and
//! `%GROUPS%` (for `IgnoreGroup`). Other sections are skipped whole. A line
//! that fits nowhere in this structure is a [`PkgError::Parse`] naming the file
//! and the line. The local database does not record which repository a package
//! came from, so `origin` is `None`.
//!
//! # Updates and security
//!
//! `pacman -Qu` prints `hello 1.0-1 -> 1.1-1`, with ` [ignored]` appended for
//! IgnorePkg packages (they are reported: the update exists, the package is
//! held). It exits 1 when there is nothing to upgrade. pacman's repositories
//! carry no security metadata, so every update is classified
//! [`SecurityClass::Unknown`] — never `NotSecurity`.
//!
//! # Refresh and `last_refresh`
//!
//! `pacman -Sy` downloads a repository database only when the server's copy is
//! newer (If-Modified-Since, one-second granularity), and stamps the file with
//! the server's modification time. `last_refresh` is therefore the newest
//! server time of the databases we hold: a lower bound of the last successful
//! refresh. We do not force `-Syy`: it would re-download every database on
//! every refresh for no gain on a real mirror (the same-second case only occurs
//! when a repository is rebuilt within a second of the previous sync).
//!
//! # Transactions
//!
//! * Upgrade all: `pacman -Su` (never `-y`: a transaction works from the
//!   metadata as last refreshed). `--print` does not show removals caused by a
//!   repository package that `Replaces` an installed one, so for every package
//!   the dry run would newly install we read `Replaces` from `pacman -Si` and
//!   add the removal pacman will do (with `--noconfirm` it accepts replacements).
//! * Install: `pacman -S --needed -- <names>`.
//! * Exact versions (install pins, upgrade exact, downgrade): a repository
//!   database holds only the newest version of each package. A pin equal to the
//!   version the first repository offers is installed with `-S --needed --
//!   <repo>/<name>`; any other version must be in the package cache as
//!   `<cachedir>/<name>-<version>-<arch>.pkg.tar[.zst|.xz|...]` and is installed
//!   with `-U --needed -- <file>` (repository packages in the same operation
//!   then join the `-U` command as their download URL, so it stays one
//!   transaction; the dry run of such a mixed set fetches them into the cache).
//!   A version in neither place is [`PkgError::VersionUnavailable`]; a pin
//!   equal to the installed version needs neither (the operation then only
//!   runs `pacman -Q -- <names>` to confirm the versions). Rollback
//!   therefore depends on the old package still being in the cache: pacman keeps
//!   every downloaded package there until `paccache -r` or `pacman -Sc` prunes
//!   it, so hosts that must be able to roll back should keep at least two
//!   versions (`paccache -rk2`).
//! * Arch does not support partial upgrades (installing some new packages
//!   against an otherwise old system). We never run the dangerous form,
//!   `-Sy <pkg>`, which refreshes and then upgrades only some packages. An
//!   exact upgrade installs exactly what a deployment approved, from the
//!   metadata as last refreshed: that can be a partial upgrade, by request. The
//!   dry run shows every package pacman pulls in with it (e.g. a newer library
//!   the package depends on), so an approver sees the whole effect.
//! * Security-only upgrades are [`PkgError::Unsupported`]: there is no metadata
//!   to select them.
//! * Remove: `pacman -Rs -- <names>` (with the dependencies nothing else needs).
//!
//! `--print` does not lock the database; real transactions and `-Sy` do,
//! through `<dbpath>/db.lck` (created with `O_EXCL`). While another pacman holds
//! it, pacman fails with `error: failed to init transaction (unable to lock
//! database)`; we retry through `run_waiting_for_lock` and then give up with
//! the retryable [`PkgError::Locked`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use patchdeck_proto::{
    AvailableUpdate, BackendKind, InstalledPackage, RebootStatus, SecurityClass, SecurityInfo, Transaction, TxAction,
    TxItem,
};
use patchdeck_version::VersionFormat;

use crate::backend::{
    run_waiting_for_lock, same_version, Applied, BackendOptions, Operation, PackageManager, UpgradeScope,
};
use crate::error::{PkgError, Result};
use crate::exec::{Cmd, LineSink, Output};
use crate::host;
use crate::spec::{PackageName, Pin};

/// The reason given for every pacman update's security class.
pub const NO_SECURITY_METADATA: &str =
    "pacman has no security metadata: Arch repositories do not mark updates as security fixes";

/// Compression suffixes pacman accepts after `.pkg.tar` (see `PKGEXT` in makepkg.conf(5)).
const PKG_COMPRESSIONS: &[&str] = &["", ".zst", ".xz", ".gz", ".bz2", ".lz4", ".lzo", ".lrz", ".lz", ".Z"];

/// The pacman backend.
#[derive(Debug)]
pub struct Pacman {
    options: BackendOptions,
}

/// Where pacman keeps its state for this root.
#[derive(Debug, Clone)]
struct Layout {
    dbpath: PathBuf,
    cachedirs: Vec<PathBuf>,
}

impl Pacman {
    pub fn new(options: BackendOptions) -> Self {
        Pacman { options }
    }

    fn config_path(&self) -> PathBuf {
        match &self.options.config_file {
            Some(path) => path.clone(),
            None => self.options.path("/etc/pacman.conf"),
        }
    }

    /// The parsed `[options]` of pacman.conf; an absent file reads as empty
    /// (pacman itself then fails on the first command, with its own message).
    fn conf(&self) -> Result<PacmanConf> {
        let path = self.config_path();
        if !path.exists() {
            return Ok(PacmanConf::default());
        }
        PacmanConf::load(&path)
    }

    fn layout(&self, conf: &PacmanConf) -> Layout {
        if self.options.is_host_root() {
            Layout {
                dbpath: PathBuf::from(conf.db_path.as_deref().unwrap_or("/var/lib/pacman/")),
                cachedirs: if conf.cache_dirs.is_empty() {
                    vec![PathBuf::from("/var/cache/pacman/pkg/")]
                } else {
                    conf.cache_dirs.iter().map(PathBuf::from).collect()
                },
            }
        } else {
            Layout {
                dbpath: self.options.path("/var/lib/pacman"),
                cachedirs: vec![self.options.path("/var/cache/pacman/pkg")],
            }
        }
    }

    /// `pacman` with the options every call gets.
    fn pacman(&self) -> Cmd {
        let o = &self.options;
        let mut cmd = o.cmd("pacman").args(["--noconfirm", "--color", "never", "--config"]).arg(self.config_path());
        if !o.is_host_root() {
            cmd = cmd
                .arg("--root")
                .arg(&o.root)
                .arg("--dbpath")
                .arg(o.path("/var/lib/pacman"))
                .arg("--cachedir")
                .arg(o.path("/var/cache/pacman/pkg"))
                .arg("--logfile")
                .arg(o.path("/var/log/pacman.log"))
                .arg("--hookdir")
                .arg(o.path("/etc/pacman.d/hooks"))
                .arg("--gpgdir")
                .arg(o.path("/etc/pacman.d/gnupg"));
        }
        cmd
    }

    fn installed_map(&self) -> Result<BTreeMap<String, InstalledPackage>> {
        Ok(self.installed()?.into_iter().map(|p| (p.name.clone(), p)).collect())
    }

    /// `pacman -Si -- <names>`: the first (highest-priority) repository entry of each.
    /// Names no repository has are left out.
    fn sync_info(&self, names: &[&str]) -> Result<HashMap<String, SyncInfo>> {
        if names.is_empty() {
            return Ok(HashMap::new());
        }
        let cmd = self.pacman().arg("-Si").arg("--").args(names);
        let out = cmd.run(None)?;
        // Exit 1 when some name was not found; anything else wrong is an error.
        for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
            if !(line.starts_with("error: package '") && line.ends_with("' was not found")) {
                return Err(out.failure(&cmd));
            }
        }
        if !matches!(out.code(), Some(0 | 1)) {
            return Err(out.failure(&cmd));
        }
        let mut map = HashMap::new();
        for info in parse_si(&cmd, &out.stdout)? {
            map.entry(info.name.clone()).or_insert(info);
        }
        Ok(map)
    }

    /// The package cache file of `name` at exactly `version`, if there is one.
    fn cached_file(&self, layout: &Layout, name: &str, version: &str, prefer_arch: Option<&str>) -> Option<PathBuf> {
        let mut found: Vec<(String, PathBuf)> = Vec::new();
        for dir in &layout.cachedirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for entry in entries.filter_map(|e| e.ok()) {
                let Some(file) = entry.file_name().to_str().map(str::to_owned) else { continue };
                if let Some(arch) = cache_file_arch(&file, name, version) {
                    found.push((arch.to_owned(), entry.path()));
                }
            }
        }
        found.sort();
        let index = found
            .iter()
            .position(|(arch, _)| Some(arch.as_str()) == prefer_arch)
            .or((!found.is_empty()).then_some(0))?;
        Some(found.swap_remove(index).1)
    }

    /// Decides how to install exact versions (and plain names, for installs).
    ///
    /// A pin equal to the installed version needs nothing (even when neither a
    /// repository nor the cache still has that version).
    fn plan_targets(&self, specs: &[(PackageName, Option<String>)]) -> Result<Plan> {
        let layout = self.layout(&self.conf()?);
        let installed = self.installed_map()?;
        let pinned: Vec<&str> = specs.iter().filter(|(_, v)| v.is_some()).map(|(n, _)| n.as_str()).collect();
        let sync = self.sync_info(&pinned)?;
        let mut targets = Vec::new();
        for (name, version) in specs {
            let name = name.as_str();
            let Some(version) = version else {
                targets.push(Target::Sync(name.to_owned()));
                continue;
            };
            if installed.get(name).is_some_and(|p| same_version(VersionFormat::Pacman, &p.version, version)) {
                continue;
            }
            match sync.get(name) {
                Some(info) if same_version(VersionFormat::Pacman, &info.version, version) => {
                    targets.push(Target::Sync(format!("{}/{}", info.repository, name)));
                }
                _ => {
                    let arch = installed.get(name).map(|p| p.arch.as_str());
                    match self.cached_file(&layout, name, version, arch) {
                        Some(file) => targets.push(Target::File(file)),
                        None => {
                            return Err(PkgError::VersionUnavailable {
                                name: name.to_owned(),
                                version: version.clone(),
                            })
                        }
                    }
                }
            }
        }
        if targets.is_empty() {
            return Ok(Plan::Satisfied(specs.iter().map(|(n, _)| n.as_str().to_owned()).collect()));
        }
        if targets.iter().all(|t| matches!(t, Target::Sync(_))) {
            let names = targets
                .into_iter()
                .filter_map(|t| match t {
                    Target::Sync(s) => Some(s),
                    Target::File(_) => None,
                })
                .collect();
            return Ok(Plan::Sync(names));
        }
        // Mixed or all from the cache: one `-U` transaction; repository
        // packages join it as their download location.
        let sync_targets: Vec<&str> = targets
            .iter()
            .filter_map(|t| match t {
                Target::Sync(s) => Some(s.as_str()),
                Target::File(_) => None,
            })
            .collect();
        let urls = self.locations(&sync_targets)?;
        let mut files = Vec::new();
        for target in targets {
            match target {
                Target::File(path) => files.push(
                    path.into_os_string()
                        .into_string()
                        .map_err(|p| PkgError::invalid("package file", &p.to_string_lossy(), "path is not UTF-8"))?,
                ),
                Target::Sync(s) => {
                    let name = s.rsplit('/').next().unwrap_or(&s);
                    let url = urls.get(name).ok_or_else(|| {
                        PkgError::parse(
                            &self.pacman().arg("-Sddp"),
                            0,
                            &s,
                            "pacman printed no location for this target",
                        )
                    })?;
                    files.push(url.clone());
                }
            }
        }
        Ok(Plan::Files(files))
    }

    /// Download locations of repository packages: `pacman -Sddp --print-format '%n %l'`.
    fn locations(&self, targets: &[&str]) -> Result<HashMap<String, String>> {
        if targets.is_empty() {
            return Ok(HashMap::new());
        }
        let cmd = self.pacman().args(["-Sddp", "--print-format", "%n %l", "--"]).args(targets);
        let out = cmd.run_ok(&[0], None)?;
        Ok(parse_print(&cmd, &out.stdout)?.into_iter().collect())
    }

    /// What `op` means for pacman.
    fn plan(&self, op: &Operation) -> Result<Plan> {
        match op {
            Operation::Upgrade(UpgradeScope::All) => Ok(Plan::SysUpgrade),
            Operation::Upgrade(UpgradeScope::Security) => Err(PkgError::Unsupported {
                backend: BackendKind::Pacman,
                what: "select security updates (pacman has no security metadata)",
            }),
            Operation::Install(specs) => {
                let specs: Vec<_> =
                    specs.iter().map(|s| (s.name.clone(), s.version.as_ref().map(|v| v.as_str().to_owned()))).collect();
                self.plan_targets(&specs)
            }
            Operation::Upgrade(UpgradeScope::Exact(pins)) | Operation::Downgrade(pins) => {
                self.require_installed(pins.iter().map(|p| &p.name))?;
                self.plan_targets(&pins_to_specs(pins))
            }
            Operation::Remove(names) => {
                self.require_installed(names.iter())?;
                Ok(Plan::Remove(names.iter().map(|n| n.as_str().to_owned()).collect()))
            }
        }
    }

    fn require_installed<'a>(&self, names: impl Iterator<Item = &'a PackageName>) -> Result<()> {
        let installed = self.installed_map()?;
        for name in names {
            if !installed.contains_key(name.as_str()) {
                return Err(PkgError::NotInstalled(name.as_str().to_owned()));
            }
        }
        Ok(())
    }

    /// The pacman command for `plan`, printing (`print`) or for real.
    fn command(&self, plan: &Plan, print: bool) -> Cmd {
        let base = self.pacman();
        let (mut cmd, targets): (Cmd, &[String]) = match plan {
            Plan::SysUpgrade => (base.args(["-Su"]), &[]),
            Plan::Sync(targets) => (base.args(["-S", "--needed"]), targets),
            Plan::Files(targets) => (base.args(["-U", "--needed"]), targets),
            Plan::Remove(names) => (base.arg("-Rs"), names),
            // Nothing to change: the real run only confirms the installed versions.
            Plan::Satisfied(names) => return base.arg("-Q").arg("--").args(names),
        };
        cmd = if print { cmd.args(["--print", "--print-format", "%n %v"]) } else { cmd.arg("--noprogressbar") };
        if !targets.is_empty() {
            cmd = cmd.arg("--").args(targets);
        }
        cmd
    }

    fn transaction(&self, plan: &Plan) -> Result<Transaction> {
        if let Plan::Satisfied(_) = plan {
            return Ok(Transaction::default());
        }
        let installed = self.installed_map()?;
        let cmd = self.command(plan, true);
        let out = cmd.run(None)?;
        if !out.success() {
            return Err(out.failure(&cmd));
        }
        let printed = parse_print(&cmd, &out.stdout)?;
        let mut items = Vec::new();
        if let Plan::Remove(_) = plan {
            for (name, version) in printed {
                let arch = installed.get(&name).map(|p| p.arch.clone());
                items.push(TxItem { name, action: TxAction::Remove, from: Some(version), to: None, arch });
            }
            return Ok(Transaction { items });
        }
        for (name, version) in &printed {
            let (action, from) = match installed.get(name) {
                None => (TxAction::Install, None),
                Some(old) => {
                    let order = patchdeck_version::compare(VersionFormat::Pacman, version, &old.version)
                        .map_err(|e| PkgError::parse(&cmd, 0, &format!("{name} {version}"), e.to_string()))?;
                    let action = match order {
                        std::cmp::Ordering::Greater => TxAction::Upgrade,
                        std::cmp::Ordering::Less => TxAction::Downgrade,
                        std::cmp::Ordering::Equal => TxAction::Reinstall,
                    };
                    (action, Some(old.version.clone()))
                }
            };
            items.push(TxItem { name: name.clone(), action, from, to: Some(version.clone()), arch: None });
        }
        if let Plan::SysUpgrade = plan {
            // --print hides the removals of packages a new one replaces.
            let new: Vec<&str> =
                items.iter().filter(|i| i.action == TxAction::Install).map(|i| i.name.as_str()).collect();
            let conf = self.conf()?;
            let sync = self.sync_info(&new)?;
            let mut removed = Vec::new();
            for name in new {
                let Some(info) = sync.get(name) else { continue };
                for replaced in &info.replaces {
                    let Some(old) = installed.get(replaced) else { continue };
                    if conf.is_ignored(&old.name, &[]) || removed.iter().any(|i: &TxItem| i.name == old.name) {
                        continue;
                    }
                    removed.push(TxItem {
                        name: old.name.clone(),
                        action: TxAction::Remove,
                        from: Some(old.version.clone()),
                        to: None,
                        arch: Some(old.arch.clone()),
                    });
                }
            }
            items.extend(removed);
        }
        Ok(Transaction { items })
    }
}

fn pins_to_specs(pins: &[Pin]) -> Vec<(PackageName, Option<String>)> {
    pins.iter().map(|p| (p.name.clone(), Some(p.version.as_str().to_owned()))).collect()
}

/// How a pinned or named package gets installed.
#[derive(Debug)]
enum Target {
    /// `<repo>/<name>` or `<name>` from the sync databases.
    Sync(String),
    /// A package file in the cache.
    File(PathBuf),
}

/// One pacman transaction.
#[derive(Debug)]
enum Plan {
    /// `-Su`.
    SysUpgrade,
    /// `-S --needed` of `[<repo>/]<name>` targets.
    Sync(Vec<String>),
    /// `-U --needed` of package files and URLs.
    Files(Vec<String>),
    /// `-Rs`.
    Remove(Vec<String>),
    /// Every pinned version is already installed.
    Satisfied(Vec<String>),
}

/// Recognises pacman's "the database is locked" failure.
fn lock_detail(out: &Output) -> Option<String> {
    if out.success() {
        return None;
    }
    out.combined().lines().find(|l| l.contains("unable to lock database")).map(|l| l.trim().to_owned())
}

impl PackageManager for Pacman {
    fn kind(&self) -> BackendKind {
        BackendKind::Pacman
    }

    fn options(&self) -> &BackendOptions {
        &self.options
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        let conf = self.conf()?;
        let layout = self.layout(&conf);
        let local = layout.dbpath.join("local");
        if !local.exists() {
            if layout.dbpath.exists() {
                // A database that never had a transaction: nothing installed yet.
                return Ok(Vec::new());
            }
            return Err(PkgError::io(&layout.dbpath, std::io::Error::from(std::io::ErrorKind::NotFound)));
        }
        let entries = std::fs::read_dir(&local).map_err(|e| PkgError::io(&local, e))?;
        let mut packages = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| PkgError::io(&local, e))?;
            if !entry.file_type().map_err(|e| PkgError::io(entry.path(), e))?.is_dir() {
                continue; // ALPM_DB_VERSION
            }
            let path = entry.path().join("desc");
            let text = std::fs::read_to_string(&path).map_err(|e| PkgError::io(&path, e))?;
            let desc = parse_desc(&text, &path)?;
            packages.push(desc.into_installed(&conf));
        }
        packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(packages)
    }

    fn updates(&self) -> Result<Vec<AvailableUpdate>> {
        let cmd = self.pacman().arg("-Qu");
        let out = cmd.run(None)?;
        let nothing = out.code() == Some(1) && out.stdout.trim().is_empty() && out.stderr.trim().is_empty();
        if !out.success() && !nothing {
            return Err(out.failure(&cmd));
        }
        let pending = parse_qu(&cmd, &out.stdout)?;
        let names: Vec<&str> = pending.iter().map(|u| u.name.as_str()).collect();
        let sync = self.sync_info(&names)?;
        let installed = self.installed_map()?;
        let mut updates: Vec<AvailableUpdate> = pending
            .into_iter()
            .map(|u| {
                let info = sync.get(&u.name).filter(|i| i.version == u.new);
                let arch = info
                    .map(|i| i.arch.clone())
                    .or_else(|| installed.get(&u.name).map(|p| p.arch.clone()))
                    .unwrap_or_default();
                AvailableUpdate {
                    reboot_likely: host::reboot_likely(&u.name),
                    arch,
                    repository: info.map(|i| i.repository.clone()),
                    security: SecurityInfo::new(SecurityClass::Unknown, NO_SECURITY_METADATA),
                    cves: Vec::new(),
                    name: u.name,
                    current_version: u.old,
                    candidate_version: u.new,
                }
            })
            .collect();
        updates.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(updates)
    }

    fn refresh(&self, sink: Option<LineSink<'_>>) -> Result<()> {
        let cmd = self.pacman().args(["-Sy", "--noprogressbar"]).with_timeout(self.options.refresh_timeout);
        let out = run_waiting_for_lock(BackendKind::Pacman, self.options.lock_wait, &cmd, sink, lock_detail)?;
        if !out.success() {
            return Err(out.failure(&cmd));
        }
        Ok(())
    }

    fn last_refresh(&self) -> Result<Option<Timestamp>> {
        let layout = self.layout(&self.conf()?);
        Ok(host::newest_mtime_in(&layout.dbpath.join("sync"), |n| n.ends_with(".db")))
    }

    fn dry_run(&self, op: &Operation) -> Result<Transaction> {
        op.validate()?;
        let plan = self.plan(op)?;
        self.transaction(&plan)
    }

    fn apply(&self, op: &Operation, sink: Option<LineSink<'_>>) -> Result<Applied> {
        op.validate()?;
        let plan = self.plan(op)?;
        let transaction = self.transaction(&plan)?;
        let cmd = self.command(&plan, false).with_timeout(self.options.transaction_timeout);
        let output = run_waiting_for_lock(BackendKind::Pacman, self.options.lock_wait, &cmd, sink, lock_detail)?;
        if !output.success() {
            return Err(output.failure(&cmd));
        }
        Ok(Applied { transaction, output })
    }

    fn reboot_status(&self) -> Result<RebootStatus> {
        host::reboot_status_common(&self.options, VersionFormat::Pacman)
    }
}

// ---------------------------------------------------------------------------
// pacman.conf

/// The parts of pacman.conf's `[options]` we need.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PacmanConf {
    pub db_path: Option<String>,
    pub cache_dirs: Vec<String>,
    /// `IgnorePkg` patterns (fnmatch globs).
    pub ignore_pkg: Vec<String>,
    /// `IgnoreGroup` patterns (fnmatch globs).
    pub ignore_group: Vec<String>,
}

/// How deep `Include` may nest before we call it a loop.
const MAX_INCLUDE_DEPTH: usize = 10;

impl PacmanConf {
    /// Reads `path`, following `Include` directives inside `[options]`.
    pub fn load(path: &Path) -> Result<Self> {
        let mut conf = PacmanConf::default();
        conf.read(path, true, 0)?;
        Ok(conf)
    }

    fn read(&mut self, path: &Path, mut in_options: bool, depth: usize) -> Result<bool> {
        let text = std::fs::read_to_string(path).map_err(|e| PkgError::io(path, e))?;
        let bad = |line_no: usize, line: &str, reason: &str| PkgError::Parse {
            command: path.display().to_string(),
            line_no,
            line: line.to_owned(),
            reason: reason.to_owned(),
        };
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(section) = rest.strip_suffix(']').filter(|s| !s.is_empty()) else {
                    return Err(bad(i + 1, raw, "bad section name"));
                };
                in_options = section == "options";
                continue;
            }
            let (key, value) = match line.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (line, ""),
            };
            if !in_options {
                // Repository sections (and their `Include = mirrorlist`) do not concern us.
                continue;
            }
            if key == "Include" {
                if value.is_empty() {
                    return Err(bad(i + 1, raw, "Include without a file"));
                }
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(bad(i + 1, raw, "Include nested too deeply"));
                }
                for file in expand_include(value) {
                    in_options = self.read(&file, in_options, depth + 1)?;
                }
                continue;
            }
            match key {
                "DBPath" => self.db_path = Some(value.to_owned()),
                "CacheDir" => self.cache_dirs.extend(value.split_whitespace().map(str::to_owned)),
                "IgnorePkg" => self.ignore_pkg.extend(value.split_whitespace().map(str::to_owned)),
                "IgnoreGroup" => self.ignore_group.extend(value.split_whitespace().map(str::to_owned)),
                _ => {}
            }
        }
        Ok(in_options)
    }

    /// Whether pacman skips upgrades of this package.
    pub fn is_ignored(&self, name: &str, groups: &[String]) -> bool {
        self.ignore_pkg.iter().any(|p| glob_match(p, name))
            || groups.iter().any(|g| self.ignore_group.iter().any(|p| glob_match(p, g)))
    }
}

/// The files an `Include` names: the path itself, or the matches of a glob in
/// its last component (pacman expands Include with glob(3)), sorted.
fn expand_include(value: &str) -> Vec<PathBuf> {
    let path = Path::new(value);
    let (Some(dir), Some(pattern)) = (path.parent(), path.file_name().and_then(|f| f.to_str())) else {
        return vec![path.to_owned()];
    };
    if !pattern.contains(['*', '?', '[']) {
        return vec![path.to_owned()];
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(pattern, n)))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// fnmatch(3) without flags: `*`, `?`, `[...]` (with ranges and `!`/`^`), `\` escapes.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some('[') => {
                let Some(c) = t.first() else { return false };
                let mut i = 1;
                let negate = matches!(p.get(1), Some('!' | '^'));
                if negate {
                    i += 1;
                }
                let mut matched = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != ']') {
                    first = false;
                    if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                        matched |= p[i] <= *c && *c <= p[i + 2];
                        i += 3;
                    } else {
                        matched |= p[i] == *c;
                        i += 1;
                    }
                }
                if i >= p.len() {
                    // No closing bracket: a literal '['.
                    return *c == '[' && go(&p[1..], &t[1..]);
                }
                matched != negate && go(&p[i + 1..], &t[1..])
            }
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && go(&p[2..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

// ---------------------------------------------------------------------------
// Parsers

/// The fields of a local database `desc` file we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desc {
    pub name: String,
    pub version: String,
    pub base: Option<String>,
    pub arch: String,
    pub install_date: Option<i64>,
    pub size: Option<u64>,
    pub groups: Vec<String>,
}

impl Desc {
    fn into_installed(self, conf: &PacmanConf) -> InstalledPackage {
        InstalledPackage {
            held: conf.is_ignored(&self.name, &self.groups),
            source_package: Some(self.base.unwrap_or_else(|| self.name.clone())),
            source_version: None,
            origin: None,
            installed_at: self.install_date.and_then(|s| Timestamp::from_second(s).ok()),
            size_bytes: self.size,
            name: self.name,
            version: self.version,
            arch: self.arch,
        }
    }
}

/// Parses a local database `desc` file (see the module docs).
pub fn parse_desc(text: &str, path: &Path) -> Result<Desc> {
    let bad = |line_no: usize, line: &str, reason: &str| PkgError::Parse {
        command: path.display().to_string(),
        line_no,
        line: line.to_owned(),
        reason: reason.to_owned(),
    };
    /// Values with their line numbers.
    type Values = Vec<(usize, String)>;
    // (section name, line number of its header, values)
    let mut sections: Vec<(String, usize, Values)> = Vec::new();
    let mut open = false;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.is_empty() {
            open = false;
            continue;
        }
        if !open {
            let key = line.strip_prefix('%').and_then(|l| l.strip_suffix('%')).filter(|k| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            });
            let Some(key) = key else {
                return Err(bad(line_no, line, "expected a %SECTION% header"));
            };
            if sections.iter().any(|(k, _, _)| k == key) {
                return Err(bad(line_no, line, "section appears twice"));
            }
            sections.push((key.to_owned(), line_no, Vec::new()));
            open = true;
        } else if let Some((_, _, values)) = sections.last_mut() {
            values.push((line_no, line.to_owned()));
        }
    }
    let section = |key: &str| sections.iter().find(|(k, _, _)| k == key);
    let single = |key: &str, required: bool| -> Result<Option<(usize, String)>> {
        match section(key) {
            None if required => Err(bad(0, "", &format!("no %{key}% section"))),
            None => Ok(None),
            Some((_, header, values)) => match values.as_slice() {
                [] => Err(bad(*header, &format!("%{key}%"), "section has no value")),
                [one] => Ok(Some(one.clone())),
                [_, (line_no, extra), ..] => Err(bad(*line_no, extra, &format!("%{key}% takes one value"))),
            },
        }
    };
    let number = |key: &str| -> Result<Option<u64>> {
        match single(key, false)? {
            None => Ok(None),
            Some((line_no, v)) => {
                v.parse::<u64>().map(Some).map_err(|_| bad(line_no, &v, &format!("%{key}% is not a number")))
            }
        }
    };
    let (_, name) = single("NAME", true)?.unwrap_or_default();
    let (version_line, version) = single("VERSION", true)?.unwrap_or_default();
    if version.contains(char::is_whitespace) || !version.contains('-') {
        return Err(bad(version_line, &version, "not a pacman version ([epoch:]pkgver-pkgrel)"));
    }
    let install_date = number("INSTALLDATE")?
        .map(|n| i64::try_from(n).map_err(|_| bad(0, &n.to_string(), "%INSTALLDATE% out of range")))
        .transpose()?;
    Ok(Desc {
        name,
        version,
        base: single("BASE", false)?.map(|(_, v)| v),
        arch: single("ARCH", false)?.map(|(_, v)| v).unwrap_or_default(),
        install_date,
        size: number("SIZE")?,
        groups: section("GROUPS").map(|(_, _, v)| v.iter().map(|(_, g)| g.clone()).collect()).unwrap_or_default(),
    })
}

/// One line of `pacman -Qu`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpdate {
    pub name: String,
    pub old: String,
    pub new: String,
    /// The package is in IgnorePkg/IgnoreGroup (`[ignored]`).
    pub ignored: bool,
}

/// Parses `pacman -Qu`: `name old -> new` with an optional ` [ignored]`.
pub fn parse_qu(cmd: &Cmd, stdout: &str) -> Result<Vec<PendingUpdate>> {
    let mut updates = Vec::new();
    for (i, line) in stdout.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let update = match fields.as_slice() {
            [name, old, "->", new] => {
                PendingUpdate { name: (*name).into(), old: (*old).into(), new: (*new).into(), ignored: false }
            }
            [name, old, "->", new, "[ignored]"] => {
                PendingUpdate { name: (*name).into(), old: (*old).into(), new: (*new).into(), ignored: true }
            }
            _ => return Err(PkgError::parse(cmd, i + 1, line, "expected `name old -> new [ignored]`")),
        };
        updates.push(update);
    }
    Ok(updates)
}

/// The fields of one `pacman -Si` entry we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncInfo {
    pub repository: String,
    pub name: String,
    pub version: String,
    pub arch: String,
    /// Package names in `Replaces` (version constraints dropped).
    pub replaces: Vec<String>,
}

/// Parses `pacman -Si`: blank-line separated entries of `Key : value` lines,
/// values continued on lines starting with spaces.
pub fn parse_si(cmd: &Cmd, stdout: &str) -> Result<Vec<SyncInfo>> {
    let mut entries = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut first_line = 0;
    let finish = |fields: &mut Vec<(String, String)>, line_no: usize| -> Result<Option<SyncInfo>> {
        if fields.is_empty() {
            return Ok(None);
        }
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| PkgError::parse(cmd, line_no, "", format!("entry has no `{key}` field")))
        };
        let replaces = get("Replaces")
            .unwrap_or_default()
            .split_whitespace()
            .filter(|r| *r != "None")
            .map(|r| r.split(['<', '>', '=']).next().unwrap_or(r).to_owned())
            .collect();
        let info = SyncInfo {
            repository: get("Repository")?,
            name: get("Name")?,
            version: get("Version")?,
            arch: get("Architecture")?,
            replaces,
        };
        fields.clear();
        Ok(Some(info))
    };
    for (i, line) in stdout.lines().enumerate() {
        if line.trim().is_empty() {
            entries.extend(finish(&mut fields, first_line)?);
            continue;
        }
        if fields.is_empty() {
            first_line = i + 1;
        }
        if line.starts_with(' ') {
            let Some((_, value)) = fields.last_mut() else {
                return Err(PkgError::parse(cmd, i + 1, line, "continuation line before any field"));
            };
            value.push(' ');
            value.push_str(line.trim());
            continue;
        }
        let Some((key, value)) = line.split_once(" : ").or_else(|| line.strip_suffix(" :").map(|k| (k, ""))) else {
            return Err(PkgError::parse(cmd, i + 1, line, "expected `Key : value`"));
        };
        fields.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    entries.extend(finish(&mut fields, first_line)?);
    Ok(entries)
}

/// Parses `--print --print-format '%n %v'` (or `'%n %l'`) output: one
/// `name value` pair a line. Also accepts the progress lines pacman prints on
/// stdout in print mode: `loading packages...` (`-U`), ` <file> downloading...`
/// (`-U` of a URL) and the IgnorePkg question `:: <name> is in
/// IgnorePkg/IgnoreGroup. Install anyway? [Y/n]` (answered yes by `--noconfirm`
/// because the package was asked for by name).
pub fn parse_print(cmd: &Cmd, stdout: &str) -> Result<Vec<(String, String)>> {
    let mut items = Vec::new();
    for (i, line) in stdout.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty()
            || trimmed == "loading packages..."
            || (line.starts_with(' ') && trimmed.ends_with(" downloading..."))
            || (trimmed.starts_with(":: ") && trimmed.contains(" is in IgnorePkg/IgnoreGroup. Install anyway?"))
        {
            continue;
        }
        match trimmed.split_whitespace().collect::<Vec<_>>().as_slice() {
            [name, value] if PackageName::parse(name).is_ok() => items.push(((*name).to_owned(), (*value).to_owned())),
            _ => return Err(PkgError::parse(cmd, i + 1, line, "expected `name version`")),
        }
    }
    Ok(items)
}

/// The architecture part of a package cache file name if `file` is
/// `<name>-<version>-<arch>.pkg.tar<compression>`.
fn cache_file_arch<'a>(file: &'a str, name: &str, version: &str) -> Option<&'a str> {
    let rest = file.strip_prefix(name)?.strip_prefix('-')?.strip_prefix(version)?.strip_prefix('-')?;
    let (arch, ext) = rest.split_once(".pkg.tar")?;
    if arch.is_empty() || arch.contains(['-', '/']) || !PKG_COMPRESSIONS.contains(&ext) {
        return None;
    }
    Some(arch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn data(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pacman").join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn cmd(args: &[&str]) -> Cmd {
        Cmd::new("pacman", Duration::from_secs(1)).args(args)
    }

    fn parse_err(err: PkgError) -> (usize, String, String) {
        match err {
            PkgError::Parse { line_no, line, reason, .. } => (line_no, line, reason),
            other => panic!("expected a parse error, got {other}"),
        }
    }

    #[test]
    fn desc_with_base_size_and_date() {
        let desc = parse_desc(&data("local/hello-1.0-1/desc"), Path::new("desc")).unwrap();
        assert_eq!(desc.name, "hello");
        assert_eq!(desc.version, "1.0-1");
        assert_eq!(desc.base.as_deref(), Some("hello-src"));
        assert_eq!(desc.arch, "any");
        assert_eq!(desc.size, Some(6));
        assert!(desc.install_date.is_some());
        assert!(desc.groups.is_empty());
    }

    #[test]
    fn desc_with_epoch_groups_and_reason() {
        let desc = parse_desc(&data("desc-other-epoch"), Path::new("desc")).unwrap();
        assert_eq!(desc.version, "1:1.2-1");
        assert_eq!(desc.arch, "x86_64");
        assert_eq!(desc.groups, ["base-devel", "test-group"]);
        let conf = PacmanConf { ignore_group: vec!["test-*".into()], ..PacmanConf::default() };
        let pkg = desc.into_installed(&conf);
        assert!(pkg.held, "held through IgnoreGroup");
        assert_eq!(pkg.installed_at.unwrap().as_second(), 1_795_439_041);
        assert_eq!(pkg.size_bytes, Some(1_234_567));
    }

    #[test]
    fn desc_without_base_falls_back_to_name() {
        let text = "%NAME%\nold\n\n%VERSION%\n2.0-3\n\n%ARCH%\nx86_64\n\n";
        let pkg = parse_desc(text, Path::new("desc")).unwrap().into_installed(&PacmanConf::default());
        assert_eq!(pkg.source_package.as_deref(), Some("old"));
        assert_eq!(pkg.installed_at, None);
        assert!(!pkg.held);
    }

    #[test]
    fn malformed_desc_names_file_and_line() {
        let err = parse_desc(&data("desc-malformed"), Path::new("/db/local/broken-1.0-1/desc")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/db/local/broken-1.0-1/desc"), "{msg}");
        assert_eq!(parse_err(err), (11, "yesterday".to_owned(), "%INSTALLDATE% is not a number".to_owned()));

        let err = parse_desc("%NAME%\nx\nstray\n", Path::new("d")).unwrap_err();
        assert_eq!(parse_err(err).0, 3, "two values for %NAME%");
        let err = parse_desc("NAME\nx\n", Path::new("d")).unwrap_err();
        assert_eq!(parse_err(err), (1, "NAME".to_owned(), "expected a %SECTION% header".to_owned()));
        let err = parse_desc("%NAME%\nx\n\n", Path::new("d")).unwrap_err();
        assert!(parse_err(err).2.contains("no %VERSION% section"));
        let err = parse_desc("%NAME%\nx\n\n%VERSION%\n1.0\n", Path::new("d")).unwrap_err();
        assert_eq!(parse_err(err).0, 5, "a version without pkgrel");
    }

    #[test]
    fn qu_with_epoch_and_ignored() {
        let c = cmd(&["-Qu"]);
        let updates = parse_qu(&c, &data("qu.txt")).unwrap();
        assert_eq!(updates.len(), 3);
        assert_eq!(
            updates[1],
            PendingUpdate { name: "helper".into(), old: "2.0-1".into(), new: "2.1-1".into(), ignored: true }
        );
        assert_eq!(updates[2].new, "1:1.2-1");
        let err = parse_qu(&c, "hello 1.0-1 -> 1.1-1\nhello 1.0-1 => 1.1-1\n").unwrap_err();
        assert_eq!(parse_err(err).0, 2);
    }

    #[test]
    fn si_entries_with_continuations_and_replaces() {
        let c = cmd(&["-Si"]);
        let entries = parse_si(&c, &data("si.txt")).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].repository, "testrepo");
        assert_eq!(entries[0].version, "1.1-1");
        assert!(entries[0].replaces.is_empty());
        assert_eq!((entries[1].repository.as_str(), entries[1].name.as_str()), ("extra", "hello"));
        assert_eq!(entries[1].arch, "x86_64");
        assert_eq!(entries[2].name, "other2");
        assert_eq!(entries[2].replaces, ["other", "other-legacy"]);
        let err = parse_si(&c, "Repository      : core\nbroken line\n").unwrap_err();
        assert_eq!(parse_err(err).0, 2);
        let err = parse_si(&c, "Repository      : core\nName            : x\n").unwrap_err();
        assert!(parse_err(err).2.contains("Version"));
    }

    #[test]
    fn print_output_with_progress_lines() {
        let c = cmd(&["-Up"]);
        let items = parse_print(&c, &data("up-print.txt")).unwrap();
        assert_eq!(items, [("hello".to_owned(), "1.0-1".to_owned()), ("other".to_owned(), "1:1.2-1".to_owned())]);
        let err = parse_print(&c, "hello 1.1-1\nerror: something\n").unwrap_err();
        assert_eq!(parse_err(err), (2, "error: something".to_owned(), "expected `name version`".to_owned()));
    }

    #[test]
    fn conf_options_includes_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra.conf");
        std::fs::write(&extra, "IgnorePkg = linux*\n").unwrap();
        let main = dir.path().join("pacman.conf");
        let text = data("pacman.conf").replace("@EXTRA@", &extra.display().to_string());
        std::fs::write(&main, text).unwrap();
        let conf = PacmanConf::load(&main).unwrap();
        assert_eq!(conf.db_path.as_deref(), Some("/srv/pacman/db/"));
        assert_eq!(conf.cache_dirs, ["/var/cache/pacman/pkg/", "/srv/cache/"]);
        assert_eq!(conf.ignore_pkg, ["hello", "lib?-legacy", "linux*"]);
        assert_eq!(conf.ignore_group, ["xorg"]);
        assert!(conf.is_ignored("linux-lts", &[]));
        assert!(conf.is_ignored("lib3-legacy", &[]));
        assert!(!conf.is_ignored("other", &[]));
        assert!(conf.is_ignored("xterm", &["xorg".to_owned()]));

        std::fs::write(&main, "[options]\n[broken\n").unwrap();
        let err = PacmanConf::load(&main).unwrap_err();
        assert_eq!(parse_err(err).0, 2);
    }

    #[test]
    fn glob_like_fnmatch() {
        assert!(glob_match("lib[0-9]*", "lib32-glibc"));
        assert!(!glob_match("lib[!0-9]*", "lib32-glibc"));
        assert!(glob_match("a\\*", "a*"));
        assert!(!glob_match("a\\*", "ab"));
        assert!(glob_match("[", "["));
    }

    #[test]
    fn cache_file_names() {
        assert_eq!(cache_file_arch("hello-1.0-1-any.pkg.tar.zst", "hello", "1.0-1"), Some("any"));
        assert_eq!(cache_file_arch("other-1:1.2-1-x86_64.pkg.tar.xz", "other", "1:1.2-1"), Some("x86_64"));
        assert_eq!(cache_file_arch("hello-1.0-1-any.pkg.tar.zst.sig", "hello", "1.0-1"), None);
        assert_eq!(cache_file_arch("hello-1.0-1-any.pkg.tar.zst.part", "hello", "1.0-1"), None);
        assert_eq!(cache_file_arch("hello-1.0-10-any.pkg.tar.zst", "hello", "1.0-1"), None);
    }

    #[test]
    fn lock_message_is_recognised() {
        use std::os::unix::process::ExitStatusExt;
        let out = Output {
            status: std::process::ExitStatus::from_raw(1 << 8),
            stdout: String::new(),
            stderr: data("locked.txt"),
            elapsed: Duration::ZERO,
        };
        assert_eq!(lock_detail(&out).as_deref(), Some("error: failed to init transaction (unable to lock database)"));
        let ok = Output { stderr: "error: target not found: x\n".into(), ..out };
        assert_eq!(lock_detail(&ok), None);
    }
}
