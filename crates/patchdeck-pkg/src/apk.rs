//! The apk backend (Alpine Linux), for apk-tools v2 (Alpine 3.x).
//!
//! # Where everything comes from
//!
//! | method | source |
//! |---|---|
//! | `installed` | the installed database read directly: `<root>/lib/apk/db/installed` |
//! | held packages | version constraints in `<root>/etc/apk/world` |
//! | `updates` | `apk version -l '<'`, then `apk policy -- <names>` for the candidate's repository |
//! | `refresh` | `apk update` |
//! | `last_refresh` | newest mtime of `APKINDEX.*.tar.gz` in `<root>/var/cache/apk` and `<root>/etc/apk/cache` |
//! | `dry_run` | `apk add` / `apk upgrade` / `apk del` with `--simulate` |
//! | `apply` | the same command without `--simulate` |
//! | `reboot_status` | [`host::reboot_status_common`] |
//!
//! Every command is `apk --no-progress`, plus `--root <root>` for a root other
//! than `/` and `--repositories-file <file>` when
//! [`BackendOptions::config_file`] is set (apk-tools v2 has no other config
//! file). Package arguments follow `--`.
//!
//! # The installed database
//!
//! One record per package, records separated by an empty line, each line a
//! one-letter field, a colon and the value (the format `apk_db_write_fdb`
//! writes in apk-tools' `src/database.c`):
//!
//! ```text
//! C:Q1aCu0LmUDoAFSOX49uHvkYC1WasQ=
//! P:musl
//! V:1.2.4_git20230717-r4
//! A:x86_64
//! I:643072
//! o:musl
//! t:1701118426
//! F:lib
//! R:libc.musl-x86_64.so.1
//! ```
//!
//! We use `P` (name), `V` (version), `A` (arch), `o` (origin: the source
//! package, which Alpine's secdb and OSV are keyed by; a record without one
//! falls back to its own name) and `I` (installed size in bytes). The database records neither when a package was installed (`t`
//! is the build time) nor from which repository, so `installed_at` and
//! `origin` are `None`. The file lists (`F`, `R`, `Z`, `M`, `a`) and the other
//! fields are skipped. A line that is not `<letter>:<value>`, a record without
//! `P` or `V`, a field given twice and a non-numeric size are
//! [`PkgError::Parse`] errors naming the file and the line.
//!
//! # Held packages
//!
//! apk has no "hold": a package is kept at a version by a constraint on it in
//! `/etc/apk/world` (`apk add hello=1.0-r0`, `hello<2`, `hello~1.0`). A package
//! whose world entry pins (`=`, `~`, `><` checksum) or caps (`<`, `<=`, `<~`)
//! its version is reported `held`.
//!
//! # Updates
//!
//! `apk version -l '<'` prints a header and one line per package with a newer
//! version in its allowed repositories (`printf("%-40s%s %s %s\n", pkgver, op,
//! latest, tag)`):
//!
//! ```text
//! Installed:                                Available:
//! busybox-1.36.1-r5                       < 1.36.1-r15
//! ```
//!
//! The installed `name-version` is split the way apk does (the version starts
//! at the last `-` followed by a digit, allowing the `-rN` suffix) and checked
//! against the installed database. `apk policy` then tells which repository
//! offers the candidate. Alpine's repositories carry no security metadata
//! (the secdb is a separate feed), so every update is
//! [`SecurityClass::Unknown`], never `NotSecurity`.
//!
//! # Transactions
//!
//! `--simulate` prints the changes exactly as a real run does:
//! `(1/2) Upgrading hello (1.0-r0 -> 1.1-r0)`, `Installing`, `Purging`,
//! `Downgrading`, `Replacing` (same version, rebuilt package) and
//! `Reinstalling`; `Updating pinning` (a repository tag change, no package
//! change) and `[APK unavailable, skipped] Reinstalling` change no package and
//! are left out of the transaction.
//!
//! * Upgrade all: `apk upgrade`.
//! * Install: `apk add -- <name>[=<version>]...`.
//! * Exact versions (upgrade exact, downgrade): `apk add -- <name>=<version>`.
//!   This is apk's own way to install an exact version, and apk records the
//!   constraint in `/etc/apk/world`: the package stays at that version (and is
//!   reported `held`) until an install without a version (`apk add <name>`)
//!   releases it. A version that `apk policy` does not list for the name is
//!   [`PkgError::VersionUnavailable`], checked before apk runs.
//! * Security-only upgrades are [`PkgError::Unsupported`].
//! * Remove: `apk del -- <names>` (apk also purges dependencies nothing needs
//!   any more). When apk keeps a package because others depend on it ("World
//!   updated, but the following packages are not removed due to:"), that is an
//!   error naming them.
//!
//! Writers take an exclusive `flock` on `<root>/lib/apk/db/lock`; apk v2 does
//! not wait for it and fails with `ERROR: Unable to lock database: Resource
//! temporarily unavailable`. We retry through `run_waiting_for_lock` and
//! then give up with the retryable [`PkgError::Locked`].

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

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
use crate::spec::{PackageName, PackageSpec};

/// The reason given for every apk update's security class.
pub const NO_SECURITY_METADATA: &str =
    "apk has no security metadata: Alpine repositories do not mark updates as security fixes";

/// The installed database, relative to the root.
const INSTALLED_DB: &str = "/lib/apk/db/installed";
/// What `apk policy` prints as the "repository" of the installed package.
const POLICY_INSTALLED: &str = "lib/apk/db/installed";

/// The apk backend.
#[derive(Debug)]
pub struct Apk {
    options: BackendOptions,
}

impl Apk {
    pub fn new(options: BackendOptions) -> Self {
        Apk { options }
    }

    /// `apk` with the options every call gets.
    fn apk(&self) -> Cmd {
        let mut cmd = self.options.cmd("apk").arg("--no-progress");
        if !self.options.is_host_root() {
            cmd = cmd.arg("--root").arg(&self.options.root);
        }
        if let Some(file) = &self.options.config_file {
            cmd = cmd.arg("--repositories-file").arg(file);
        }
        cmd
    }

    fn installed_map(&self) -> Result<BTreeMap<String, InstalledPackage>> {
        Ok(self.installed()?.into_iter().map(|p| (p.name.clone(), p)).collect())
    }

    fn world(&self) -> Result<Vec<WorldDep>> {
        let path = self.options.path("/etc/apk/world");
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(parse_world(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(PkgError::io(path, e)),
        }
    }

    /// `apk policy -- <names>`: the versions each name is offered in, and where.
    fn policy(&self, names: &[&str]) -> Result<BTreeMap<String, Vec<PolicyVersion>>> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let cmd = self.apk().arg("policy").arg("--").args(names);
        let out = cmd.run_ok(&[0], None)?;
        parse_policy(&cmd, &out.stdout)
    }

    /// Fails with [`PkgError::VersionUnavailable`] for a pinned version no
    /// repository (nor the installed database) offers.
    fn require_available(&self, specs: &[PackageSpec]) -> Result<()> {
        let pinned: Vec<&str> = specs.iter().filter(|s| s.version.is_some()).map(|s| s.name.as_str()).collect();
        let policy = self.policy(&pinned)?;
        for spec in specs {
            let Some(version) = &spec.version else { continue };
            let offered = policy
                .get(spec.name.as_str())
                .is_some_and(|vs| vs.iter().any(|v| same_version(VersionFormat::Apk, &v.version, version.as_str())));
            if !offered {
                return Err(PkgError::VersionUnavailable {
                    name: spec.name.as_str().to_owned(),
                    version: version.as_str().to_owned(),
                });
            }
        }
        Ok(())
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

    /// The applet and package arguments for `op`, after checking its inputs.
    fn plan(&self, op: &Operation) -> Result<(&'static str, Vec<String>)> {
        let add = |specs: &[PackageSpec]| -> Result<(&'static str, Vec<String>)> {
            self.require_available(specs)?;
            Ok(("add", specs.iter().map(ToString::to_string).collect()))
        };
        match op {
            Operation::Upgrade(UpgradeScope::All) => Ok(("upgrade", Vec::new())),
            Operation::Upgrade(UpgradeScope::Security) => Err(PkgError::Unsupported {
                backend: BackendKind::Apk,
                what: "select security updates (apk has no security metadata)",
            }),
            Operation::Install(specs) => add(specs),
            Operation::Upgrade(UpgradeScope::Exact(pins)) | Operation::Downgrade(pins) => {
                self.require_installed(pins.iter().map(|p| &p.name))?;
                let specs: Vec<PackageSpec> =
                    pins.iter().map(|p| PackageSpec::new(p.name.clone(), Some(p.version.clone()))).collect();
                add(&specs)
            }
            Operation::Remove(names) => {
                self.require_installed(names.iter())?;
                Ok(("del", names.iter().map(|n| n.as_str().to_owned()).collect()))
            }
        }
    }

    /// `apk <applet> [--simulate] -- <args>`.
    fn command(&self, applet: &str, args: &[String], simulate: bool) -> Cmd {
        let mut cmd = self.apk().arg(applet);
        if simulate {
            cmd = cmd.arg("--simulate");
        }
        if !args.is_empty() {
            cmd = cmd.arg("--").args(args);
        }
        cmd
    }

    /// The real command for `op` and the transaction its `--simulate` run prints.
    fn simulated(&self, op: &Operation) -> Result<(Cmd, Transaction)> {
        op.validate()?;
        let (applet, args) = self.plan(op)?;
        let sim = self.command(applet, &args, true);
        let out = run_waiting_for_lock(BackendKind::Apk, self.options.lock_wait, &sim, None, lock_detail)?;
        if !out.success() {
            return Err(out.failure(&sim));
        }
        let tx = parse_simulate(&sim, &out.stdout)?;
        Ok((self.command(applet, &args, false), tx))
    }
}

/// Recognises apk's "the database is locked" failure.
fn lock_detail(out: &Output) -> Option<String> {
    if out.success() {
        return None;
    }
    out.combined()
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("unable to lock database"))
        .map(|l| l.trim().to_owned())
}

impl PackageManager for Apk {
    fn kind(&self) -> BackendKind {
        BackendKind::Apk
    }

    fn options(&self) -> &BackendOptions {
        &self.options
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        let path = self.options.path(INSTALLED_DB);
        let text = std::fs::read_to_string(&path).map_err(|e| PkgError::io(&path, e))?;
        let records = parse_installed_db(&text, &path)?;
        let world = self.world()?;
        let mut packages: Vec<InstalledPackage> = records
            .into_iter()
            .map(|r| InstalledPackage {
                held: world.iter().any(|d| d.name == r.name && d.holds()),
                source_package: Some(r.origin.unwrap_or_else(|| r.name.clone())),
                source_version: None,
                origin: None,
                installed_at: None,
                size_bytes: r.installed_size,
                name: r.name,
                version: r.version,
                arch: r.arch.unwrap_or_default(),
            })
            .collect();
        packages.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(packages)
    }

    fn updates(&self) -> Result<Vec<AvailableUpdate>> {
        let installed = self.installed_map()?;
        let cmd = self.apk().args(["version", "-l", "<"]);
        let out = cmd.run_ok(&[0], None)?;
        let lines = parse_version(&cmd, &out.stdout)?;
        for (i, line) in lines.iter().enumerate() {
            if installed.get(&line.name).map(|p| p.version.as_str()) != Some(line.version.as_str()) {
                return Err(PkgError::parse(
                    &cmd,
                    i + 2,
                    &format!("{}-{}", line.name, line.version),
                    "not in the installed database",
                ));
            }
        }
        let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
        let policy = self.policy(&names)?;
        let mut updates: Vec<AvailableUpdate> = lines
            .into_iter()
            .map(|l| {
                let repository = policy.get(&l.name).and_then(|vs| candidate_repository(vs, &l.latest, &l.tag));
                AvailableUpdate {
                    arch: installed.get(&l.name).map(|p| p.arch.clone()).unwrap_or_default(),
                    repository,
                    security: SecurityInfo::new(SecurityClass::Unknown, NO_SECURITY_METADATA),
                    cves: Vec::new(),
                    reboot_likely: host::reboot_likely(&l.name),
                    name: l.name,
                    current_version: l.version,
                    candidate_version: l.latest,
                }
            })
            .collect();
        updates.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(updates)
    }

    fn refresh(&self, sink: Option<LineSink<'_>>) -> Result<()> {
        let cmd = self.apk().arg("update").with_timeout(self.options.refresh_timeout);
        let out = run_waiting_for_lock(BackendKind::Apk, self.options.lock_wait, &cmd, sink, lock_detail)?;
        if !out.success() {
            return Err(out.failure(&cmd));
        }
        Ok(())
    }

    fn last_refresh(&self) -> Result<Option<Timestamp>> {
        let index = |n: &str| n.starts_with("APKINDEX.") && n.ends_with(".tar.gz");
        let newest = ["/var/cache/apk", "/etc/apk/cache"]
            .iter()
            .filter_map(|dir| host::newest_mtime_in(&self.options.path(dir), index))
            .max();
        Ok(newest)
    }

    fn dry_run(&self, op: &Operation) -> Result<Transaction> {
        Ok(self.simulated(op)?.1)
    }

    fn apply(&self, op: &Operation, sink: Option<LineSink<'_>>) -> Result<Applied> {
        let (cmd, transaction) = self.simulated(op)?;
        let cmd = cmd.with_timeout(self.options.transaction_timeout);
        let output = run_waiting_for_lock(BackendKind::Apk, self.options.lock_wait, &cmd, sink, lock_detail)?;
        if !output.success() {
            return Err(output.failure(&cmd));
        }
        // apk exits 0 when it keeps a package others need: that is still a
        // failure to remove it. (The rest of a real run's output is not
        // parsed: install scripts print what they like.)
        let kept = kept_packages(&output.stdout);
        if !kept.is_empty() {
            return Err(kept_error(&cmd, &kept));
        }
        Ok(Applied { transaction, output })
    }

    fn reboot_status(&self) -> Result<RebootStatus> {
        host::reboot_status_common(&self.options, VersionFormat::Apk)
    }
}

// ---------------------------------------------------------------------------
// Parsers

/// The fields of one installed-database record we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApkRecord {
    pub name: String,
    pub version: String,
    pub arch: Option<String>,
    pub origin: Option<String>,
    pub installed_size: Option<u64>,
    pub build_time: Option<i64>,
}

/// Parses `lib/apk/db/installed` (see the module docs).
pub fn parse_installed_db(text: &str, path: &Path) -> Result<Vec<ApkRecord>> {
    let bad = |line_no: usize, line: &str, reason: &str| PkgError::Parse {
        command: path.display().to_string(),
        line_no,
        line: line.to_owned(),
        reason: reason.to_owned(),
    };
    #[derive(Default)]
    struct Partial {
        first_line: usize,
        fields: HashMap<char, (usize, String)>,
    }
    let finish = |p: Partial| -> Result<ApkRecord> {
        let get = |key: char| p.fields.get(&key).map(|(_, v)| v.clone());
        let number = |key: char| -> Result<Option<u64>> {
            match p.fields.get(&key) {
                None => Ok(None),
                Some((line_no, v)) => v
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| bad(*line_no, &format!("{key}:{v}"), &format!("{key}: is not a number"))),
            }
        };
        let (Some(name), Some(version)) = (get('P'), get('V')) else {
            let missing = if get('P').is_none() { "P: (name)" } else { "V: (version)" };
            return Err(bad(p.first_line, "", &format!("the record starting here has no {missing}")));
        };
        Ok(ApkRecord {
            installed_size: number('I')?,
            build_time: number('t')?.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            arch: get('A'),
            origin: get('o'),
            name,
            version,
        })
    };
    let mut records = Vec::new();
    let mut current: Option<Partial> = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.is_empty() {
            if let Some(p) = current.take() {
                records.push(finish(p)?);
            }
            continue;
        }
        let mut chars = line.chars();
        let (Some(key), Some(':')) = (chars.next(), chars.next()) else {
            return Err(bad(line_no, line, "expected `<field letter>:<value>`"));
        };
        if !key.is_ascii_alphabetic() {
            return Err(bad(line_no, line, "expected `<field letter>:<value>`"));
        }
        let value = &line[2..];
        let p = current.get_or_insert_with(|| Partial { first_line: line_no, ..Partial::default() });
        // Only the package fields are unique; file entries (F, R, Z, M, a) repeat.
        if matches!(key, 'P' | 'V' | 'A' | 'o' | 'I' | 't') && p.fields.contains_key(&key) {
            return Err(bad(line_no, line, &format!("{key}: appears twice in one record")));
        }
        if matches!(key, 'P' | 'V') && value.is_empty() {
            return Err(bad(line_no, line, "empty value"));
        }
        p.fields.entry(key).or_insert_with(|| (line_no, value.to_owned()));
    }
    if let Some(p) = current {
        records.push(finish(p)?);
    }
    Ok(records)
}

/// One dependency of `/etc/apk/world`: `[!]name[@tag][op version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldDep {
    pub name: String,
    /// The comparison operator, if the entry constrains the version.
    pub op: Option<String>,
    pub version: Option<String>,
    /// `!name`: the package must not be installed.
    pub conflict: bool,
}

impl WorldDep {
    /// Whether the constraint keeps the package from being upgraded.
    pub fn holds(&self) -> bool {
        !self.conflict && matches!(self.op.as_deref(), Some("=" | "~" | "<" | "<=" | "<~" | "><"))
    }
}

/// Parses `/etc/apk/world`: dependencies separated by whitespace.
pub fn parse_world(text: &str) -> Vec<WorldDep> {
    text.split_whitespace()
        .map(|token| {
            let (conflict, token) = match token.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, token),
            };
            let split = token.find(['<', '>', '=', '~']).unwrap_or(token.len());
            let (name_tag, constraint) = token.split_at(split);
            let name = name_tag.split('@').next().unwrap_or(name_tag).to_owned();
            let op_len = constraint.find(|c| !matches!(c, '<' | '>' | '=' | '~')).unwrap_or(constraint.len());
            let (op, version) = constraint.split_at(op_len);
            WorldDep {
                name,
                op: (!op.is_empty()).then(|| op.to_owned()),
                version: (!version.is_empty()).then(|| version.to_owned()),
                conflict,
            }
        })
        .collect()
}

/// Splits `name-version` the way apk does (`apk_pkg_parse_name`): the version
/// starts after the last `-` that is followed by a digit, passing over at most
/// one `-` that is not (the `-rN` release).
pub fn split_pkgver(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut dashes = 0;
    for i in (0..bytes.len().saturating_sub(1)).rev() {
        if bytes[i] != b'-' {
            continue;
        }
        if bytes[i + 1].is_ascii_digit() {
            return (i > 0).then(|| (&s[..i], &s[i + 1..]));
        }
        dashes += 1;
        if dashes >= 2 {
            return None;
        }
    }
    None
}

/// One line of `apk version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionLine {
    pub name: String,
    pub version: String,
    pub latest: String,
    /// The repository tag of the candidate (`@edge`), empty for the default.
    pub tag: String,
}

/// Parses `apk version -l '<'` (see the module docs).
pub fn parse_version(cmd: &Cmd, stdout: &str) -> Result<Vec<VersionLine>> {
    let mut lines = Vec::new();
    for (i, line) in stdout.lines().enumerate() {
        if line.trim().is_empty() || (lines.is_empty() && line.starts_with("Installed:")) {
            continue;
        }
        let err = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        // The name-version column is padded to 40 characters but not cut: a
        // longer one runs straight into the operator, so split at the operator.
        let Some(op_at) = line.find(['<', '>', '=', '?', '~']) else {
            return Err(err("no version comparison operator"));
        };
        let pkgver = line[..op_at].trim_end();
        let rest = &line[op_at..];
        let op_len = rest.find(|c| !matches!(c, '<' | '>' | '=' | '?' | '~')).unwrap_or(rest.len());
        let op = &rest[..op_len];
        if op != "<" {
            return Err(err(&format!("comparison {op:?}, but only `<` was asked for")));
        }
        let mut fields = rest[op_len..].split_whitespace();
        let (Some(latest), tag, None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(err("expected `<name-version> < <version> [<tag>]`"));
        };
        let Some((name, version)) = split_pkgver(pkgver) else {
            return Err(err("cannot split the installed name-version"));
        };
        lines.push(VersionLine {
            name: name.to_owned(),
            version: version.to_owned(),
            latest: latest.to_owned(),
            tag: tag.unwrap_or("").to_owned(),
        });
    }
    Ok(lines)
}

/// One version of a package in `apk policy` output and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub version: String,
    /// Repository URLs, each optionally prefixed by a tag (`@edge http://…`),
    /// and `lib/apk/db/installed` for the installed package.
    pub sources: Vec<String>,
}

/// Parses `apk policy`:
///
/// ```text
/// hello policy:
///   1.1-r0:
///     https://repo.example/alpine/v3.19/main
///   1.0-r0:
///     lib/apk/db/installed
///     https://repo.example/alpine/v3.19/main
/// ```
pub fn parse_policy(cmd: &Cmd, stdout: &str) -> Result<BTreeMap<String, Vec<PolicyVersion>>> {
    let mut map: BTreeMap<String, Vec<PolicyVersion>> = BTreeMap::new();
    let mut name: Option<String> = None;
    for (i, line) in stdout.lines().enumerate() {
        let err = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(source) = line.strip_prefix("    ") {
            let versions =
                name.as_ref().and_then(|n| map.get_mut(n)).ok_or_else(|| err("repository before any version"))?;
            let version = versions.last_mut().ok_or_else(|| err("repository before any version"))?;
            version.sources.push(source.trim().to_owned());
        } else if let Some(version) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            let n = name.as_ref().ok_or_else(|| err("version before any package"))?;
            if version.is_empty() || version.contains(char::is_whitespace) {
                return Err(err("expected `  <version>:`"));
            }
            map.entry(n.clone()).or_default().push(PolicyVersion { version: version.to_owned(), sources: Vec::new() });
        } else if let Some(n) = line.strip_suffix(" policy:").filter(|n| !n.starts_with(' ') && !n.contains(' ')) {
            name = Some(n.to_owned());
            map.entry(n.to_owned()).or_default();
        } else {
            return Err(err("expected `<name> policy:`, `  <version>:` or `    <repository>`"));
        }
    }
    Ok(map)
}

/// The repository `apk policy` lists for `version`: the one with the same
/// tag as `apk version` reported, without the tag; never the installed database.
fn candidate_repository(versions: &[PolicyVersion], version: &str, tag: &str) -> Option<String> {
    let sources = &versions.iter().find(|v| v.version == version)?.sources;
    sources.iter().filter(|s| s.as_str() != POLICY_INSTALLED).find_map(|s| match s.split_once(' ') {
        Some((t, url)) if t.starts_with('@') => (t == tag).then(|| url.to_owned()),
        _ => tag.is_empty().then(|| s.clone()),
    })
}

/// Parses the changes apk prints for a transaction (with or without
/// `--simulate`); see the module docs.
pub fn parse_simulate(cmd: &Cmd, stdout: &str) -> Result<Transaction> {
    const NO_CHANGE: &[&str] = &["Updating pinning", "[APK unavailable, skipped] Reinstalling"];
    const ACTIONS: &[(&str, TxAction)] = &[
        ("Installing", TxAction::Install),
        ("Purging", TxAction::Remove),
        ("Upgrading", TxAction::Upgrade),
        ("Downgrading", TxAction::Downgrade),
        ("Replacing", TxAction::Reinstall),
        ("Reinstalling", TxAction::Reinstall),
        ("Re-installing", TxAction::Reinstall),
    ];
    let kept = kept_packages(stdout);
    if !kept.is_empty() {
        return Err(kept_error(cmd, &kept));
    }
    let mut items = Vec::new();
    for (i, line) in stdout.lines().enumerate() {
        let err = |reason: &str| PkgError::parse(cmd, i + 1, line, reason);
        if line.trim().is_empty() {
            continue;
        }
        if line == KEPT_HEADER
            || line.starts_with("OK: ")
            || line.contains(" error; ")
            || line.contains(" errors; ")
            || line.starts_with("Executing ")
            || line.starts_with("fetch ")
            || line == "Upgrading critical system libraries and apk-tools:"
            || line == "Continuing the upgrade transaction with new apk-tools:"
        {
            continue;
        }
        let Some(rest) = line.strip_prefix('(').and_then(|l| l.split_once(") ")) else {
            return Err(err("not a transaction line"));
        };
        let (counter, change) = rest;
        if !counter.split('/').all(|n| !n.trim().is_empty() && n.trim().bytes().all(|b| b.is_ascii_digit())) {
            return Err(err("bad `(n/total)` counter"));
        }
        if NO_CHANGE.iter().any(|p| change.starts_with(p)) {
            continue;
        }
        let Some((action, what)) = ACTIONS
            .iter()
            .find_map(|(word, action)| change.strip_prefix(word)?.strip_prefix(' ').map(|w| (*action, w)))
        else {
            return Err(err("unknown action"));
        };
        let Some((name_tag, versions)) = what.split_once(" (").and_then(|(n, v)| Some((n, v.strip_suffix(')')?)))
        else {
            return Err(err("expected `<name> (<version>)` or `<name> (<old> -> <new>)`"));
        };
        let name = name_tag.split('@').next().unwrap_or(name_tag);
        if PackageName::parse(name).is_err() && !name.contains(':') {
            return Err(err("not a package name"));
        }
        let (from, to) = match (action, versions.split_once(" -> ")) {
            (TxAction::Upgrade | TxAction::Downgrade | TxAction::Reinstall, Some((old, new))) => {
                (Some(old.to_owned()), Some(new.to_owned()))
            }
            (TxAction::Reinstall, None) => (Some(versions.to_owned()), Some(versions.to_owned())),
            (TxAction::Install, None) => (None, Some(versions.to_owned())),
            (TxAction::Remove, None) => (Some(versions.to_owned()), None),
            _ => return Err(err("versions do not fit the action")),
        };
        if [&from, &to].into_iter().flatten().any(|v| v.is_empty() || v.contains(char::is_whitespace)) {
            return Err(err("bad version"));
        }
        items.push(TxItem { name: name.to_owned(), action, from, to, arch: None });
    }
    Ok(Transaction { items })
}

/// The header apk prints before the packages it refuses to remove.
const KEPT_HEADER: &str = "World updated, but the following packages are not removed due to:";

/// The `name: needed-by...` lines after apk's "World updated, but the following packages
/// are not removed due to:" (continuations joined).
pub fn kept_packages(stdout: &str) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    let mut inside = false;
    for line in stdout.lines() {
        if line == KEPT_HEADER {
            inside = true;
        } else if inside && line.starts_with("  ") {
            let text = line.trim();
            match kept.last_mut() {
                // A wrapped list of dependents is indented past the `name:` column.
                Some(last) if line.starts_with("   ") => {
                    last.push(' ');
                    last.push_str(text);
                }
                _ => kept.push(text.to_owned()),
            }
        } else {
            inside = false;
        }
    }
    kept
}

fn kept_error(cmd: &Cmd, kept: &[String]) -> PkgError {
    PkgError::CommandFailed {
        command: cmd.to_string(),
        status: "packages kept".to_owned(),
        detail: format!("apk did not remove packages that others depend on: {}", kept.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A fixture, without its leading `#` comment block (the citation of what it was modelled on).
    fn data(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apk").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let body: Vec<&str> = text.lines().skip_while(|l| l.starts_with('#')).collect();
        body.join("\n") + "\n"
    }

    fn cmd(args: &[&str]) -> Cmd {
        Cmd::new("apk", Duration::from_secs(1)).args(args)
    }

    fn parse_err(err: PkgError) -> (usize, String, String) {
        match err {
            PkgError::Parse { line_no, line, reason, .. } => (line_no, line, reason),
            other => panic!("expected a parse error, got {other}"),
        }
    }

    #[test]
    fn installed_db_with_odd_versions() {
        let records = parse_installed_db(&data("installed"), Path::new("installed")).unwrap();
        let names: Vec<(&str, &str)> = records.iter().map(|r| (r.name.as_str(), r.version.as_str())).collect();
        assert_eq!(
            names,
            [
                ("musl", "1.2.4_git20230717-r4"),
                ("busybox", "1.36.1-r15"),
                ("libcrypto3", "3.1.4-r5"),
                ("ncurses-terminfo-base", "6.4_p20231125-r0"),
                ("openssh-client-default", "9.6_p1-r0"),
                ("hello", "2.0_rc1-r10"),
                ("tzdata", "2024a-r0"),
            ]
        );
        let crypto = &records[2];
        assert_eq!(crypto.origin.as_deref(), Some("openssl"));
        assert_eq!(crypto.arch.as_deref(), Some("x86_64"));
        assert_eq!(crypto.installed_size, Some(4_972_544));
        assert_eq!(crypto.build_time, Some(1_707_398_591));
        assert_eq!(records[6].arch.as_deref(), Some("noarch"));
    }

    #[test]
    fn malformed_installed_db_names_file_and_line() {
        let err = parse_installed_db(&data("installed-malformed"), Path::new("/r/lib/apk/db/installed")).unwrap_err();
        assert!(err.to_string().contains("/r/lib/apk/db/installed"), "{err}");
        assert_eq!(
            parse_err(err),
            (14, "garbage without a field".to_owned(), "expected `<field letter>:<value>`".to_owned())
        );

        let err = parse_installed_db("P:a\nV:1-r0\nI:big\n", Path::new("x")).unwrap_err();
        assert_eq!(parse_err(err), (3, "I:big".to_owned(), "I: is not a number".to_owned()));
        let err = parse_installed_db("P:a\nV:1-r0\n\nA:x86_64\nV:2-r0\n", Path::new("x")).unwrap_err();
        assert_eq!(parse_err(err).0, 4, "record without a name");
        let err = parse_installed_db("P:a\nP:b\nV:1-r0\n", Path::new("x")).unwrap_err();
        assert_eq!(parse_err(err).0, 2);
    }

    #[test]
    fn world_constraints_hold_packages() {
        let world = parse_world(&data("world"));
        let held: Vec<&str> = world.iter().filter(|d| d.holds()).map(|d| d.name.as_str()).collect();
        assert_eq!(held, ["hello", "openssl", "tzdata", "musl"]);
        let edge = world.iter().find(|d| d.name == "curl").unwrap();
        assert_eq!((edge.op.as_deref(), edge.version.as_deref()), (Some(">="), Some("8.5")));
        assert!(world.iter().any(|d| d.name == "nano" && d.conflict && !d.holds()));
        assert!(world.iter().any(|d| d.name == "py3-pip" && d.op.is_none()), "tagged, unconstrained");
    }

    #[test]
    fn split_name_and_version_like_apk() {
        assert_eq!(split_pkgver("busybox-1.36.1-r15"), Some(("busybox", "1.36.1-r15")));
        assert_eq!(split_pkgver("py3-foo-2.0_rc1-r10"), Some(("py3-foo", "2.0_rc1-r10")));
        assert_eq!(split_pkgver("libssl3-3.1.4-r5"), Some(("libssl3", "3.1.4-r5")));
        assert_eq!(split_pkgver("font-misc-misc-1.1.3-r1"), Some(("font-misc-misc", "1.1.3-r1")));
        assert_eq!(split_pkgver("nodash"), None);
        assert_eq!(split_pkgver("a-b-c"), None);
    }

    #[test]
    fn version_output_with_padding_long_names_and_tags() {
        let c = cmd(&["version", "-l", "<"]);
        let lines = parse_version(&c, &data("version.txt")).unwrap();
        let got: Vec<(&str, &str, &str, &str)> =
            lines.iter().map(|l| (l.name.as_str(), l.version.as_str(), l.latest.as_str(), l.tag.as_str())).collect();
        assert_eq!(
            got,
            [
                ("busybox", "1.36.1-r5", "1.36.1-r15", ""),
                ("libcrypto3", "3.1.4-r1", "3.1.4-r5", ""),
                ("ncurses-terminfo-base", "6.4_p20230506-r0", "6.4_p20231125-r0", ""),
                ("py3-google-api-python-client-pyc", "2.110.0-r0", "2.111.0-r0", ""),
                ("hello", "2.0_rc1-r9", "2.0_rc1-r10", "@edge"),
            ]
        );
        let err = parse_version(&c, "Installed:   Available:\nbusybox-1.36.1-r5    = 1.36.1-r5\n").unwrap_err();
        assert_eq!(parse_err(err).0, 2, "only `<` was asked for");
        let err = parse_version(&c, "ERROR: something\n").unwrap_err();
        assert_eq!(parse_err(err).0, 1);
    }

    #[test]
    fn policy_output_and_candidate_repository() {
        let c = cmd(&["policy"]);
        let policy = parse_policy(&c, &data("policy.txt")).unwrap();
        let busybox = &policy["busybox"];
        assert_eq!(busybox[0].version, "1.36.1-r15");
        assert_eq!(
            candidate_repository(busybox, "1.36.1-r15", "").as_deref(),
            Some("https://dl-cdn.alpinelinux.org/alpine/v3.19/main")
        );
        assert_eq!(busybox[1].sources[0], "lib/apk/db/installed");
        let hello = &policy["hello"];
        assert_eq!(
            candidate_repository(hello, "2.0_rc1-r10", "@edge").as_deref(),
            Some("https://dl-cdn.alpinelinux.org/alpine/edge/testing")
        );
        assert_eq!(candidate_repository(hello, "2.0_rc1-r9", ""), None, "only installed");
        let err = parse_policy(&c, "    http://x\n").unwrap_err();
        assert_eq!(parse_err(err).0, 1);
    }

    #[test]
    fn simulate_output_every_action() {
        let c = cmd(&["upgrade", "--simulate"]);
        let tx = parse_simulate(&c, &data("simulate-upgrade.txt")).unwrap();
        let got: Vec<(&str, TxAction, Option<&str>, Option<&str>)> =
            tx.items.iter().map(|i| (i.name.as_str(), i.action, i.from.as_deref(), i.to.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("musl", TxAction::Upgrade, Some("1.2.4_git20230717-r3"), Some("1.2.4_git20230717-r4")),
                ("busybox", TxAction::Upgrade, Some("1.36.1-r5"), Some("1.36.1-r15")),
                ("libcrypto3", TxAction::Reinstall, Some("3.1.4-r5"), Some("3.1.4-r5")),
                ("ssl_client", TxAction::Install, None, Some("1.36.1-r15")),
                ("hello", TxAction::Downgrade, Some("2.0_rc1-r10"), Some("2.0_rc1-r9")),
                ("tzdata", TxAction::Reinstall, Some("2024a-r0"), Some("2024a-r0")),
                ("libssl1.1", TxAction::Remove, Some("1.1.1w-r1"), None),
            ]
        );
        let err = parse_simulate(&c, "(1/1) Frobnicating hello (1.0-r0)\n").unwrap_err();
        assert_eq!(parse_err(err), (1, "(1/1) Frobnicating hello (1.0-r0)".to_owned(), "unknown action".to_owned()));
        let err = parse_simulate(&c, "(1/1) Installing hello (1.0-r0 -> 1.1-r0)\n").unwrap_err();
        assert_eq!(parse_err(err).2, "versions do not fit the action");
    }

    #[test]
    fn kept_packages_are_an_error() {
        let c = cmd(&["del", "--simulate"]);
        let err = parse_simulate(&c, &data("del-kept.txt")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("glibc-bin: glibc-i18n"), "{msg}");
        assert_eq!(
            kept_packages(&data("del-kept.txt")),
            ["glibc-bin: glibc-i18n", "pkgconf: libpng-dev freetype-dev icu-dev libzip-dev jpeg-dev"]
        );
        // A real run's output: script noise is fine, and nothing was kept.
        let real = "(1/1) Purging hello (2.0_rc1-r10)\nExecuting hello-2.0_rc1-r10.pre-deinstall\nbye!\nOK: 9 MiB\n";
        assert!(kept_packages(real).is_empty());
    }

    #[test]
    fn lock_message_is_recognised() {
        use std::os::unix::process::ExitStatusExt;
        let out = Output {
            status: std::process::ExitStatus::from_raw(99 << 8),
            stdout: String::new(),
            stderr: data("locked.txt"),
            elapsed: Duration::ZERO,
        };
        assert_eq!(
            lock_detail(&out).as_deref(),
            Some("ERROR: Unable to lock database: Resource temporarily unavailable")
        );
        let other = Output { stderr: "ERROR: unable to select packages:\n".into(), ..out };
        assert_eq!(lock_detail(&other), None);
    }
}
