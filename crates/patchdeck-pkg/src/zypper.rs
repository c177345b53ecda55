//! zypper (SUSE).
//!
//! # Command line
//!
//! Every command starts with what `Zypper::base_cmd` builds:
//!
//! ```text
//! zypper --non-interactive --no-color --no-refresh [--root <root>] [--config <config_file>] [--xmlout]
//! ```
//!
//! * `--no-refresh` everywhere but `refresh`: queries use the metadata as last
//!   refreshed, and a transaction installs what its dry run computed.
//! * `--xmlout` wherever zypper has structured output (updates, patches,
//!   transactions, errors): `<update …/>`, `<solvable …/>` and
//!   `<message type="error">` elements, read by the small scanner
//!   [`xml_elements`]. `info -t patch` has no XML form (it wraps the text in a
//!   `<message>`), so it is read as text.
//! * gpg checks are never disabled here (no `--no-gpg-checks`): a sandbox
//!   turns them off in its own repository definition (`zypper addrepo -G`).
//! * `ZYPP_LOCK_TIMEOUT=0`: zypper fails at once with exit code 7
//!   (`ZYPPER_EXIT_ZYPP_LOCKED`, "System management is locked by the
//!   application with pid N") instead of waiting itself; we wait with
//!   `backend::run_waiting_for_lock` up to `lock_wait`. The lock is libzypp's
//!   `<root>/run/zypp.pid`, naming a live process.
//!
//! # Queries
//!
//! * installed: the rpm database ([`crate::rpmdb`]); libzypp ignores `HOME` (here it used
//!   `<root>/var/lib/rpm`, hence the sandbox `.rpmmacros`). The repository of an installed package is not
//!   recorded by zypper (origin `None`). `held`: package locks in
//!   `/etc/zypp/locks` (`solvable_name:` entries, globs allowed).
//! * updates: `zypper --xmlout list-updates` → `<update kind="package"
//!   name= edition= edition-old= arch=>` with `<source alias=>`.
//! * security: `zypper --xmlout list-patches` (needed patches) →
//!   `<update kind="patch" name= category= severity=>` with
//!   `<issue type="cve" id=>`; then `zypper info -t patch <ids>` for which
//!   package versions each patch fixes: its `Conflicts` (`name[.arch] < evr`).
//!   An update is a security update when a needed security patch fixes the
//!   package at a version newer than the installed one and not newer than the
//!   candidate (the same rule as the dnf backend). A candidate from a
//!   repository without updateinfo (no `*updateinfo*` in its raw metadata
//!   cache) is `Unknown`, and so is one without a patch when that cache
//!   cannot be read.
//!
//! # Transactions
//!
//! | operation | command |
//! |---|---|
//! | install | `zypper install -- name` / `name=version` |
//! | upgrade all | `zypper update` |
//! | upgrade security | `zypper patch --category security` (installs the needed security patches; the solver then takes the newest versions of their packages, as recorded in `patch-security-dry-run.xml`; when a patch updates zypper itself, zypper installs only that and exits 103: run it again) |
//! | upgrade exact | `zypper install -- name=version …` |
//! | remove | `zypper remove -- name …` |
//! | downgrade | `zypper install --oldpackage -- name=version …` |
//!
//! Dry run: the same with `--dry-run`, parsing `<install-summary>` (see
//! [`parse_install_summary`]). A pinned version no repository has:
//! `Package 'x' not found.` / `No provider of 'x' found.` (exit 104) →
//! [`PkgError::VersionUnavailable`].
//!
//! # Reboot
//!
//! [`host::reboot_status_common`] plus, on the running system only,
//! `zypper needs-rebooting` (exit 102 = reboot needed).

use std::collections::{BTreeMap, BTreeSet};
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
use crate::rpmdb::{self, Evr, RpmPackage};
use crate::spec::{PackageName, Pin};

/// `ZYPPER_EXIT_ZYPP_LOCKED`.
pub const EXIT_LOCKED: i32 = 7;
/// `ZYPPER_EXIT_INF_CAP_NOT_FOUND`: a requested package/capability was not found.
pub const EXIT_CAP_NOT_FOUND: i32 = 104;
/// `ZYPPER_EXIT_INF_REBOOT_NEEDED`: success, and a reboot is needed.
pub const EXIT_REBOOT_NEEDED: i32 = 102;
/// `ZYPPER_EXIT_INF_RESTART_NEEDED`: success, but zypper updated itself
/// (a `pkgmanager` patch) and must be run again for the remaining patches.
pub const EXIT_RESTART_NEEDED: i32 = 103;

/// The zypper backend.
#[derive(Debug)]
pub struct Zypper {
    options: BackendOptions,
}

impl Zypper {
    pub fn new(options: BackendOptions) -> Self {
        Zypper { options }
    }

    /// The program with the options every command gets (see the module docs).
    fn base_cmd(&self, refresh: bool, xml: bool) -> Cmd {
        let o = &self.options;
        let mut cmd = o.cmd("zypper").env("ZYPP_LOCK_TIMEOUT", "0").args(["--non-interactive", "--no-color"]);
        if !refresh {
            cmd = cmd.arg("--no-refresh");
        }
        if !o.is_host_root() {
            cmd = cmd.arg("--root").arg(&o.root);
        }
        if let Some(config) = &o.config_file {
            cmd = cmd.arg("--config").arg(config);
        }
        if xml {
            cmd = cmd.arg("--xmlout");
        }
        cmd
    }

    fn run_query(&self, cmd: &Cmd, ok: &[i32]) -> Result<Output> {
        let out = run_waiting_for_lock(BackendKind::Zypper, self.options.lock_wait, cmd, None, locked)?;
        match out.code() {
            Some(code) if ok.contains(&code) => Ok(out),
            _ => Err(failure(cmd, &out)),
        }
    }

    /// The command of `op` and the argument of each pin. `--dry-run` is a
    /// subcommand option: it goes right after the subcommand.
    fn op_cmd(&self, op: &Operation, dry_run: bool) -> (Cmd, Vec<(String, Pin)>) {
        let mut pins = Vec::new();
        let mut pin_arg = |pin: &Pin| {
            let arg = format!("{}={}", pin.name.as_str(), pin.version.as_str());
            pins.push((arg.clone(), pin.clone()));
            arg
        };
        let base = self.base_cmd(false, true);
        let sub = |base: Cmd, words: &[&str]| {
            let cmd = base.args(words);
            if dry_run {
                cmd.arg("--dry-run")
            } else {
                cmd
            }
        };
        let cmd = match op {
            Operation::Install(specs) => {
                let args: Vec<String> = specs
                    .iter()
                    .map(|s| match s.pinned() {
                        Ok(pin) => pin_arg(&pin),
                        Err(_) => s.name.as_str().to_owned(),
                    })
                    .collect();
                sub(base, &["install"]).arg("--").args(args)
            }
            Operation::Upgrade(UpgradeScope::All) => sub(base, &["update"]),
            Operation::Upgrade(UpgradeScope::Security) => sub(base, &["patch", "--category", "security"]),
            Operation::Upgrade(UpgradeScope::Exact(list)) => {
                let args: Vec<String> = list.iter().map(&mut pin_arg).collect();
                sub(base, &["install"]).arg("--").args(args)
            }
            Operation::Remove(names) => sub(base, &["remove"]).arg("--").args(names.iter().map(PackageName::as_str)),
            Operation::Downgrade(list) => {
                let args: Vec<String> = list.iter().map(&mut pin_arg).collect();
                sub(base, &["install", "--oldpackage"]).arg("--").args(args)
            }
        };
        (cmd, pins)
    }

    fn plan(&self, op: &Operation) -> Result<Transaction> {
        op.validate()?;
        let installed = rpmdb::installed(&self.options)?;
        if let Operation::Upgrade(UpgradeScope::Exact(pins)) | Operation::Downgrade(pins) = op {
            for pin in pins {
                if !installed.iter().any(|p| p.name == pin.name.as_str()) {
                    return Err(PkgError::NotInstalled(pin.name.as_str().to_owned()));
                }
            }
        }
        let (cmd, pins) = self.op_cmd(op, true);
        let out = run_waiting_for_lock(BackendKind::Zypper, self.options.lock_wait, &cmd, None, locked)?;
        check_unavailable(&out, &pins)?;
        if !matches!(out.code(), Some(0 | EXIT_REBOOT_NEEDED | EXIT_RESTART_NEEDED)) {
            return Err(failure(&cmd, &out));
        }
        let tx = parse_install_summary(&cmd, &out.stdout)?;
        check_pins_planned(op, &tx, &installed)?;
        Ok(tx)
    }

    fn cache_dir(&self) -> std::path::PathBuf {
        self.options.path("/var/cache/zypp/raw")
    }
}

/// A failure with zypper's XML error messages as the detail.
fn failure(cmd: &Cmd, out: &Output) -> PkgError {
    let errors = xml_error_messages(&out.stdout);
    match out.failure(cmd) {
        PkgError::CommandFailed { command, status, detail } => PkgError::CommandFailed {
            command,
            status,
            detail: if errors.is_empty() { detail } else { errors.join(" | ") },
        },
        other => other,
    }
}

/// Recognises "System management is locked" (exit 7).
pub fn locked(out: &Output) -> Option<String> {
    let text = out.combined();
    let line =
        text.lines().map(|l| strip_tags(l).trim().to_owned()).find(|l| l.contains("System management is locked"));
    match (line, out.code()) {
        (Some(line), _) => Some(unescape(&line)),
        (None, Some(EXIT_LOCKED)) => Some(format!("exit code {EXIT_LOCKED}")),
        _ => None,
    }
}

fn strip_tags(line: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in line.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// The text of every `<message type="error">` in zypper's XML output.
fn xml_error_messages(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<message type=\"error\">") {
        let body = &rest[start + "<message type=\"error\">".len()..];
        let end = body.find("</message>").unwrap_or(body.len());
        out.push(unescape(body[..end].trim()).replace('\n', " "));
        rest = &body[end..];
    }
    out
}

/// Maps "not found" errors for pinned arguments to [`PkgError::VersionUnavailable`].
fn check_unavailable(out: &Output, pins: &[(String, Pin)]) -> Result<()> {
    let mut messages = xml_error_messages(&out.stdout);
    messages.extend(out.stderr.lines().map(str::to_owned));
    for message in &messages {
        let arg = message
            .strip_prefix("Package '")
            .and_then(|r| r.strip_suffix("' not found."))
            .or_else(|| message.strip_prefix("No provider of '").and_then(|r| r.strip_suffix("' found.")));
        if let Some((_, pin)) = arg.and_then(|arg| pins.iter().find(|(a, _)| a == arg)) {
            return Err(PkgError::VersionUnavailable {
                name: pin.name.as_str().to_owned(),
                version: pin.version.as_str().to_owned(),
            });
        }
    }
    Ok(())
}

/// Pinned versions must be planned or already installed.
fn check_pins_planned(op: &Operation, tx: &Transaction, installed: &[RpmPackage]) -> Result<()> {
    let pins: Vec<Pin> = match op {
        Operation::Install(specs) => specs.iter().filter_map(|s| s.pinned().ok()).collect(),
        Operation::Upgrade(UpgradeScope::Exact(pins)) | Operation::Downgrade(pins) => pins.clone(),
        _ => return Ok(()),
    };
    for pin in pins {
        let (name, want) = (pin.name.as_str(), pin.version.as_str());
        let planned = tx
            .items
            .iter()
            .filter(|i| i.name == name)
            .filter_map(|i| i.to.as_deref().and_then(Evr::parse))
            .any(|evr| rpmdb::version_matches(&evr, want));
        let already = installed.iter().any(|p| p.name == name && rpmdb::version_matches(&p.evr, want));
        if !planned && !already {
            return Err(PkgError::invalid(
                "pinned version",
                &pin.to_string(),
                "is not what zypper would install (an upgrade to an older version needs a downgrade)",
            ));
        }
    }
    Ok(())
}

impl PackageManager for Zypper {
    fn kind(&self) -> BackendKind {
        BackendKind::Zypper
    }

    fn options(&self) -> &BackendOptions {
        &self.options
    }

    fn installed(&self) -> Result<Vec<InstalledPackage>> {
        let packages = rpmdb::installed(&self.options)?;
        let locks = std::fs::read_to_string(self.options.path("/etc/zypp/locks"))
            .map(|text| parse_locks(&text))
            .unwrap_or_default();
        Ok(packages
            .iter()
            .map(|p| {
                let mut pkg = p.to_installed();
                pkg.held = locks.iter().any(|pattern| glob_match(pattern, &p.name));
                pkg
            })
            .collect())
    }

    fn updates(&self) -> Result<Vec<AvailableUpdate>> {
        let installed = rpmdb::installed(&self.options)?;
        let cmd = self.base_cmd(false, true).arg("list-updates");
        let out = self.run_query(&cmd, &[0])?;
        let updates = parse_list_updates(&cmd, &out.stdout)?;
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = self.base_cmd(false, true).arg("list-patches");
        let out = self.run_query(&cmd, &[0])?;
        let mut patches = parse_list_patches(&cmd, &out.stdout)?;
        if !patches.is_empty() {
            let ids: Vec<String> = patches.iter().map(|p| p.id.clone()).collect();
            let cmd = self.base_cmd(false, false).args(["info", "-t", "patch", "--"]).args(&ids);
            let out = self.run_query(&cmd, &[0])?;
            let fixes = parse_patch_info(&cmd, &out.stdout)?;
            for patch in &mut patches {
                patch.fixes = fixes.get(&patch.id).cloned().unwrap_or_default();
            }
        }
        let with_updateinfo = repos_with_updateinfo(&self.cache_dir());
        let newest = rpmdb::newest_by_name_arch(&installed);
        let mut result = Vec::new();
        for u in updates {
            let current = rpmdb::current_for(&newest, &u.name, &u.arch)
                .cloned()
                .or_else(|| Evr::parse(&u.edition_old))
                .ok_or_else(|| PkgError::NotInstalled(format!("{}.{} (offered as an update)", u.name, u.arch)))?;
            let has_updateinfo = with_updateinfo.as_ref().map(|set| set.contains(&u.repo));
            let (security, cves) = classify(&u, &current, &patches, has_updateinfo);
            result.push(AvailableUpdate {
                reboot_likely: host::reboot_likely(&u.name),
                name: u.name,
                arch: u.arch,
                current_version: current.to_string(),
                candidate_version: u.edition.to_string(),
                repository: Some(u.repo),
                security,
                cves,
            });
        }
        result.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
        Ok(result)
    }

    fn refresh(&self, sink: Option<LineSink<'_>>) -> Result<()> {
        let cmd = self.base_cmd(true, false).arg("refresh").with_timeout(self.options.refresh_timeout);
        let out = run_waiting_for_lock(BackendKind::Zypper, self.options.lock_wait, &cmd, sink, locked)?;
        if !out.success() {
            return Err(out.failure(&cmd));
        }
        Ok(())
    }

    /// zypper rewrites (or touches, when unchanged) each repository's
    /// `raw/<alias>/repodata/repomd.xml` on every successful refresh.
    fn last_refresh(&self) -> Result<Option<Timestamp>> {
        let Ok(entries) = std::fs::read_dir(self.cache_dir()) else {
            return Ok(None);
        };
        Ok(host::newest_mtime(entries.flatten().map(|e| e.path().join("repodata/repomd.xml"))))
    }

    fn dry_run(&self, op: &Operation) -> Result<Transaction> {
        self.plan(op)
    }

    fn apply(&self, op: &Operation, sink: Option<LineSink<'_>>) -> Result<Applied> {
        let transaction = self.plan(op)?;
        check_plan(op, &transaction)?;
        let (cmd, pins) = self.op_cmd(op, false);
        let cmd = cmd.with_timeout(self.options.transaction_timeout);
        let out = run_waiting_for_lock(BackendKind::Zypper, self.options.lock_wait, &cmd, sink, locked)?;
        check_unavailable(&out, &pins)?;
        // 102 (reboot needed) and 103 (zypper updated itself) are successful installs.
        match out.code() {
            Some(0 | EXIT_REBOOT_NEEDED | EXIT_RESTART_NEEDED) => Ok(Applied { transaction, output: out }),
            _ => Err(failure(&cmd, &out)),
        }
    }

    fn reboot_status(&self) -> Result<RebootStatus> {
        let mut status = host::reboot_status_common(&self.options, VersionFormat::Rpm)?;
        if self.options.is_host_root() {
            let cmd = self.base_cmd(false, false).arg("needs-rebooting");
            let out = cmd.run(None)?;
            match out.code() {
                Some(EXIT_REBOOT_NEEDED) => {
                    status.required = true;
                    status.reasons.push("zypper needs-rebooting: core libraries or services were updated".to_owned());
                }
                Some(0) => {}
                _ => tracing::warn!(output = %out.error_summary(), "zypper needs-rebooting gave no usable answer"),
            }
        }
        Ok(status)
    }
}

/// One `<update kind="package">` of `list-updates`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageUpdate {
    pub name: String,
    pub arch: String,
    pub edition: Evr,
    pub edition_old: String,
    /// The repository alias.
    pub repo: String,
}

/// One needed patch of `list-patches`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub id: String,
    pub category: String,
    pub severity: Option<String>,
    pub cves: Vec<String>,
    /// Package versions the patch brings: (name, arch if named, minimal evr).
    pub fixes: Vec<Fix>,
}

/// `Conflicts: name[.arch] < evr` of a patch: it needs at least `evr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub name: String,
    pub arch: Option<String>,
    pub evr: Evr,
}

/// A start tag (or empty element) of zypper's XML output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: BTreeMap<String, String>,
    /// `</name>`.
    pub closing: bool,
    /// 1-based line of the `<`.
    pub line_no: usize,
}

impl Element {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

/// The tags of an XML document in order, with their attributes (entity
/// references decoded). Text, comments and `<?…?>` are skipped: zypper's
/// data is in attributes. Enough for zypper's `--xmlout`, not a general parser.
pub fn xml_elements(cmd: &Cmd, xml: &str) -> Result<Vec<Element>> {
    let mut out = Vec::new();
    let bytes = xml.as_bytes();
    let mut pos = 0;
    let line_of = |pos: usize| xml[..pos].matches('\n').count() + 1;
    let line_text = |line_no: usize| xml.lines().nth(line_no - 1).unwrap_or_default().to_owned();
    while let Some(offset) = xml[pos..].find('<') {
        let start = pos + offset;
        let rest = &xml[start..];
        if rest.starts_with("<?") || rest.starts_with("<!--") {
            let end = if rest.starts_with("<?") { rest.find("?>") } else { rest.find("-->") };
            let Some(end) = end else {
                let n = line_of(start);
                return Err(PkgError::parse(cmd, n, &line_text(n), "unterminated XML declaration or comment"));
            };
            pos = start + end + 2;
            continue;
        }
        // Find the end of the tag, skipping '>' inside quoted attribute values.
        let mut i = start + 1;
        let mut quote: Option<u8> = None;
        while i < bytes.len() {
            match (quote, bytes[i]) {
                (None, b'"' | b'\'') => quote = Some(bytes[i]),
                (Some(q), c) if c == q => quote = None,
                (None, b'>') => break,
                _ => {}
            }
            i += 1;
        }
        let n = line_of(start);
        if i >= bytes.len() {
            return Err(PkgError::parse(cmd, n, &line_text(n), "unterminated XML tag"));
        }
        let inner = xml[start + 1..i].trim_end_matches('/');
        pos = i + 1;
        let closing = inner.starts_with('/');
        let inner = inner.trim_start_matches('/');
        let name_end = inner.find(char::is_whitespace).unwrap_or(inner.len());
        let name = &inner[..name_end];
        if name.is_empty() {
            return Err(PkgError::parse(cmd, n, &line_text(n), "XML tag without a name"));
        }
        let mut attrs = BTreeMap::new();
        let mut rest = inner[name_end..].trim_start();
        while !rest.is_empty() {
            let Some((key, after)) = rest.split_once('=') else {
                return Err(PkgError::parse(cmd, n, &line_text(n), "XML attribute without a value"));
            };
            let after = after.trim_start();
            let q = after.chars().next().filter(|c| *c == '"' || *c == '\'');
            let Some(q) = q else {
                return Err(PkgError::parse(cmd, n, &line_text(n), "unquoted XML attribute value"));
            };
            let Some(end) = after[1..].find(q) else {
                return Err(PkgError::parse(cmd, n, &line_text(n), "unterminated XML attribute value"));
            };
            attrs.insert(key.trim().to_owned(), unescape(&after[1..1 + end]));
            rest = after[end + 2..].trim_start();
        }
        out.push(Element { name: name.to_owned(), attrs, closing, line_no: n });
    }
    Ok(out)
}

/// Decodes the five predefined XML entities and numeric character references.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16).ok().and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn required<'a>(cmd: &Cmd, xml: &str, e: &'a Element, key: &str) -> Result<&'a str> {
    e.attr(key).ok_or_else(|| {
        let line = xml.lines().nth(e.line_no - 1).unwrap_or_default();
        PkgError::parse(cmd, e.line_no, line, format!("<{}> without {key}=", e.name))
    })
}

/// Parses `zypper --xmlout list-updates`.
pub fn parse_list_updates(cmd: &Cmd, xml: &str) -> Result<Vec<PackageUpdate>> {
    let elements = xml_elements(cmd, xml)?;
    let mut out: Vec<PackageUpdate> = Vec::new();
    let mut in_update = false;
    for e in &elements {
        match (e.name.as_str(), e.closing) {
            ("update", false) => {
                let kind = required(cmd, xml, e, "kind")?;
                if kind != "package" {
                    let line = xml.lines().nth(e.line_no - 1).unwrap_or_default();
                    return Err(PkgError::parse(
                        cmd,
                        e.line_no,
                        line,
                        format!("update of kind {kind:?} in a package list"),
                    ));
                }
                let edition = required(cmd, xml, e, "edition")?;
                let evr = Evr::parse(edition).ok_or_else(|| {
                    let line = xml.lines().nth(e.line_no - 1).unwrap_or_default();
                    PkgError::parse(cmd, e.line_no, line, "edition is not [epoch:]version-release")
                })?;
                out.push(PackageUpdate {
                    name: required(cmd, xml, e, "name")?.to_owned(),
                    arch: required(cmd, xml, e, "arch")?.to_owned(),
                    edition: evr,
                    edition_old: e.attr("edition-old").unwrap_or_default().to_owned(),
                    repo: String::new(),
                });
                in_update = true;
            }
            ("update", true) => in_update = false,
            ("source", false) if in_update => {
                if let Some(last) = out.last_mut() {
                    last.repo = required(cmd, xml, e, "alias")?.to_owned();
                }
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    Ok(out)
}

/// Parses `zypper --xmlout list-patches` (needed patches only).
pub fn parse_list_patches(cmd: &Cmd, xml: &str) -> Result<Vec<Patch>> {
    let elements = xml_elements(cmd, xml)?;
    let mut out: Vec<Patch> = Vec::new();
    for e in &elements {
        match (e.name.as_str(), e.closing) {
            ("update", false) => {
                let kind = required(cmd, xml, e, "kind")?;
                if kind != "patch" {
                    let line = xml.lines().nth(e.line_no - 1).unwrap_or_default();
                    return Err(PkgError::parse(
                        cmd,
                        e.line_no,
                        line,
                        format!("update of kind {kind:?} in a patch list"),
                    ));
                }
                let status = e.attr("status").unwrap_or("needed");
                out.push(Patch {
                    id: required(cmd, xml, e, "name")?.to_owned(),
                    category: e.attr("category").unwrap_or_default().to_owned(),
                    severity: e.attr("severity").filter(|s| !s.is_empty()).map(str::to_owned),
                    cves: Vec::new(),
                    fixes: Vec::new(),
                });
                if status != "needed" {
                    // Only needed patches fix something installed (list-patches lists only those).
                    out.pop();
                }
            }
            ("issue", false) if e.attr("type") == Some("cve") => {
                if let Some(last) = out.last_mut() {
                    last.cves.push(required(cmd, xml, e, "id")?.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Parses `zypper info -t patch <ids>`: blocks `Information for patch ID:`
/// of `Key : value` lines; multi-valued keys print `Key : [n]` then n
/// indented lines, multi-line text is indented too. Returns id → `Conflicts`.
pub fn parse_patch_info(cmd: &Cmd, text: &str) -> Result<BTreeMap<String, Vec<Fix>>> {
    let mut out: BTreeMap<String, Vec<Fix>> = BTreeMap::new();
    let mut id: Option<String> = None;
    let mut key = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("Information for patch ") {
            let Some(patch) = rest.strip_suffix(':') else {
                return Err(PkgError::parse(cmd, i + 1, line, "expected `Information for patch ID:`"));
            };
            id = Some(patch.to_owned());
            out.entry(patch.to_owned()).or_default();
            key.clear();
            continue;
        }
        if trimmed.is_empty() || trimmed.chars().all(|c| c == '-') || id.is_none() {
            // Header ("Loading repository data...") and the rule under the title.
            continue;
        }
        let value = if line.starts_with(char::is_whitespace) {
            trimmed
        } else {
            let Some((k, v)) = line.split_once(" : ").or_else(|| line.split_once(" :")) else {
                return Err(PkgError::parse(cmd, i + 1, line, "expected `Key : value`"));
            };
            key = k.trim().to_owned();
            v.trim()
        };
        if key != "Conflicts" || value.is_empty() || (value.starts_with('[') && value.ends_with(']')) {
            continue;
        }
        let Some((name_arch, evr)) = value.split_once(" < ") else {
            return Err(PkgError::parse(cmd, i + 1, line, "expected a conflict `name[.arch] < version`"));
        };
        let (name, arch) = rpmdb::split_arch(name_arch.trim());
        let evr = Evr::parse(evr.trim())
            .ok_or_else(|| PkgError::parse(cmd, i + 1, line, "version is not [epoch:]version-release"))?;
        let fixes = out.entry(id.clone().unwrap_or_default()).or_default();
        fixes.push(Fix { name: name.to_owned(), arch: arch.map(str::to_owned), evr });
    }
    Ok(out)
}

/// Classifies one update by the needed patches (see the module docs).
pub fn classify(
    u: &PackageUpdate,
    current: &Evr,
    patches: &[Patch],
    has_updateinfo: Option<bool>,
) -> (SecurityInfo, Vec<String>) {
    use std::cmp::Ordering::*;
    let installed = current.to_string();
    let candidate = u.edition.to_string();
    let covering: Vec<(&Patch, &Fix)> = patches
        .iter()
        .flat_map(|p| p.fixes.iter().map(move |f| (p, f)))
        .filter(|(_, f)| f.name == u.name && f.arch.as_deref().is_none_or(|a| a == u.arch || a == "noarch"))
        .filter(|(_, f)| {
            let v = f.evr.to_string();
            rpmdb::compare_evr(&v, &installed) == Greater && rpmdb::compare_evr(&v, &candidate) != Greater
        })
        .collect();
    let mut ids: Vec<&Patch> = covering.iter().map(|(p, _)| *p).collect();
    ids.dedup_by(|a, b| a.id == b.id);
    let cves: Vec<String> =
        ids.iter().flat_map(|p| p.cves.iter().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
    let mut security: Vec<(&Patch, &Fix)> =
        covering.iter().copied().filter(|(p, _)| p.category == "security").collect();
    if !security.is_empty() {
        security.sort_by_key(|(p, _)| std::cmp::Reverse(severity_rank(p.severity.as_deref())));
        let (top, fix) = security[0];
        let mut reason = format!(
            "patch {} (category security, severity {}) fixes {}-{} ({} installed, candidate {})",
            top.id,
            top.severity.as_deref().unwrap_or("unknown"),
            u.name,
            fix.evr,
            installed,
            candidate
        );
        let mut others: Vec<&str> =
            security[1..].iter().map(|(p, _)| p.id.as_str()).filter(|id| *id != top.id).collect();
        others.dedup();
        if !others.is_empty() {
            reason.push_str(&format!("; also {}", others.join(", ")));
        }
        let info = SecurityInfo {
            class: SecurityClass::Security,
            reason,
            advisory_id: Some(top.id.clone()),
            severity: top.severity.clone(),
        };
        return (info, cves);
    }
    if let Some(first) = ids.first() {
        let list: Vec<String> = ids.iter().map(|p| format!("{} ({})", p.id, p.category)).collect();
        let info = SecurityInfo {
            class: SecurityClass::NotSecurity,
            reason: format!("only non-security patches cover {installed} to {candidate}: {}", list.join(", ")),
            advisory_id: Some(first.id.clone()),
            severity: None,
        };
        return (info, cves);
    }
    match has_updateinfo {
        Some(true) => {}
        Some(false) => {
            let info = SecurityInfo::new(
                SecurityClass::Unknown,
                format!("repository {} publishes no updateinfo (patch) metadata", u.repo),
            );
            return (info, Vec::new());
        }
        None => {
            // No evidence either way: the raw metadata cache could not be read.
            let info = SecurityInfo::new(
                SecurityClass::Unknown,
                format!("cannot tell whether repository {} publishes updateinfo (metadata cache unreadable)", u.repo),
            );
            return (info, Vec::new());
        }
    }
    let info = SecurityInfo::new(
        SecurityClass::NotSecurity,
        format!("no needed patch covers {} after {installed} up to {candidate}", u.name),
    );
    (info, Vec::new())
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

/// Repository aliases whose raw metadata cache has updateinfo; `None` when
/// the cache cannot be read.
fn repos_with_updateinfo(raw: &Path) -> Option<BTreeSet<String>> {
    let entries = std::fs::read_dir(raw).ok()?;
    let mut repos = BTreeSet::new();
    for entry in entries.flatten() {
        let Ok(files) = std::fs::read_dir(entry.path().join("repodata")) else { continue };
        if files.flatten().any(|f| f.file_name().to_string_lossy().contains("updateinfo")) {
            repos.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Some(repos)
}

/// Parses `<install-summary>` of a `--dry-run`: `<to-install>`, `<to-upgrade>`,
/// `<to-downgrade>`, `<to-reinstall>`, `<to-remove>` (and the arch/vendor
/// change lists) holding `<solvable type= name= edition= arch= edition-old=>`.
/// Solvables of type `patch`/`pattern`/`product` are not packages and are left
/// out; `<message type="info">Nothing to do.</message>` gives an empty transaction.
///
/// zypper's `Summary` puts an upgrade or downgrade that changes arch or vendor
/// in `<to-upgrade>`/`<to-downgrade>` *and* in `<to-change-arch>` /
/// `<to-change-vendor>`; only a same-version arch change is in
/// `<to-change-arch>` alone (a reinstall). The change lists therefore add only
/// what no other list has. `<_unsupported>` (SLE) annotates packages listed
/// elsewhere.
pub fn parse_install_summary(cmd: &Cmd, xml: &str) -> Result<Transaction> {
    let elements = xml_elements(cmd, xml)?;
    let mut items = Vec::new();
    // Items of the arch/vendor change lists, added at the end when not listed elsewhere.
    let mut changes: Vec<TxItem> = Vec::new();
    let mut list: Option<(String, Option<TxAction>)> = None;
    let mut in_summary = false;
    let bad = |e: &Element, reason: String| {
        let line = xml.lines().nth(e.line_no - 1).unwrap_or_default();
        PkgError::parse(cmd, e.line_no, line, reason)
    };
    for e in &elements {
        match (e.name.as_str(), e.closing) {
            ("install-summary", closing) => in_summary = !closing,
            (name, false) if in_summary && (name.starts_with("to-") || name.starts_with("not-")) => {
                let action = match name {
                    "to-install" => Some(TxAction::Install),
                    "to-reinstall" => Some(TxAction::Reinstall),
                    "to-remove" => Some(TxAction::Remove),
                    n if n.contains("downgrade") => Some(TxAction::Downgrade),
                    n if n.contains("upgrade") => Some(TxAction::Upgrade),
                    // Same version, other arch or vendor, when not in another list.
                    n if n.starts_with("to-change-") => Some(TxAction::Reinstall),
                    // "The following packages are not going to be installed/upgraded": no change.
                    n if n.starts_with("not-") => None,
                    other => return Err(bad(e, format!("unknown transaction list <{other}>"))),
                };
                list = Some((name.to_owned(), action));
            }
            ("_unsupported" | "unsupported", false) if in_summary => list = Some((e.name.clone(), None)),
            (name, true) if list.as_ref().is_some_and(|(l, _)| l == name) => list = None,
            ("solvable", false) if in_summary => {
                let Some((list_name, action)) = &list else {
                    return Err(bad(e, "<solvable> outside a transaction list".to_owned()));
                };
                if e.attr("type").unwrap_or("package") != "package" {
                    continue;
                }
                let Some(action) = *action else { continue };
                let name = required(cmd, xml, e, "name")?.to_owned();
                let edition = required(cmd, xml, e, "edition")?.to_owned();
                let arch = e.attr("arch").map(str::to_owned);
                let old = e.attr("edition-old").map(str::to_owned);
                let (from, to) = match action {
                    TxAction::Install => (None, Some(edition)),
                    TxAction::Remove => (Some(edition), None),
                    TxAction::Reinstall => (Some(edition.clone()), Some(edition)),
                    TxAction::Upgrade | TxAction::Downgrade => (old, Some(edition)),
                };
                let item = TxItem { name, action, from, to, arch };
                if list_name.starts_with("to-change-") {
                    changes.push(item);
                } else {
                    items.push(item);
                }
            }
            _ => {}
        }
    }
    for change in changes {
        if !items.iter().any(|i| i.name == change.name && i.to == change.to) {
            items.push(change);
        }
    }
    items.sort_by(|a, b| (&a.name, &a.arch, a.action).cmp(&(&b.name, &b.arch, b.action)));
    Ok(Transaction { items })
}

/// Package-name patterns of `/etc/zypp/locks`: blank-line separated blocks of
/// `key: value`, the name in `solvable_name:`; only `type: package` (or no type).
pub fn parse_locks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = None;
        let mut kind = "package";
        for line in block.lines() {
            match line.split_once(':') {
                Some(("solvable_name", v)) => name = Some(v.trim().to_owned()),
                Some(("type", v)) => kind = if v.trim() == "package" { "package" } else { "other" },
                _ => {}
            }
        }
        if let (Some(name), "package") = (name, kind) {
            out.push(name);
        }
    }
    out
}

/// Shell-style `*` and `?` matching (zypper lock globs).
fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::PackageSpec;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    fn cmd() -> Cmd {
        Cmd::new("zypper", Duration::from_secs(1))
    }

    fn data(path: &str) -> String {
        let path = format!("{}/tests/data/{path}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn output(code: i32, stdout: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.to_owned(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
        }
    }

    fn rows(tx: &Transaction) -> Vec<String> {
        tx.items
            .iter()
            .map(|i| {
                format!(
                    "{} {} {} {}",
                    i.action.as_str(),
                    i.name,
                    i.from.as_deref().unwrap_or("-"),
                    i.to.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn command_lines() {
        let mut options = BackendOptions::with_root("/srv/root");
        options.config_file = Some("/srv/zypp.conf".into());
        let z = Zypper::new(options);
        let op = Operation::Downgrade(vec![Pin::new("other", "1:1.0-1").unwrap()]);
        let (c, pins) = z.op_cmd(&op, false);
        assert_eq!(
            c.to_string(),
            "zypper --non-interactive --no-color --no-refresh --root /srv/root --config /srv/zypp.conf --xmlout install --oldpackage -- other=1:1.0-1"
        );
        assert_eq!(pins[0].0, "other=1:1.0-1");
        let (c, _) = z.op_cmd(&Operation::Upgrade(UpgradeScope::Security), true);
        assert!(c.to_string().ends_with("--xmlout patch --category security --dry-run"), "{c}");
        let (c, _) = z.op_cmd(&Operation::Remove(vec![PackageName::parse("other").unwrap()]), true);
        assert!(c.to_string().ends_with("--xmlout remove --dry-run -- other"), "{c}");
        let host = Zypper::new(BackendOptions::default());
        let (c, _) = host.op_cmd(&Operation::Install(vec![PackageSpec::parse("hello").unwrap()]), false);
        assert_eq!(c.to_string(), "zypper --non-interactive --no-color --no-refresh --xmlout install -- hello");
    }

    #[test]
    fn recorded_updates_patches_and_classification() {
        let updates = parse_list_updates(&cmd(), &data("zypper/list-updates.xml")).unwrap();
        let got: Vec<String> = updates
            .iter()
            .map(|u| format!("{}.{} {} -> {} {}", u.name, u.arch, u.edition_old, u.edition, u.repo))
            .collect();
        assert_eq!(
            got,
            [
                "hello.noarch 1.0-1 -> 1.1-1 testrepo",
                "libmulti.x86_64 2.0-1 -> 2.1-1 testrepo",
                "other.noarch 1:1.0-1 -> 1:1.3-1 testrepo"
            ]
        );
        let mut patches = parse_list_patches(&cmd(), &data("zypper/list-patches.xml")).unwrap();
        let ids: Vec<(&str, &str)> = patches.iter().map(|p| (p.id.as_str(), p.category.as_str())).collect();
        assert_eq!(ids, [("TEST-SA-1", "security"), ("TEST-BA-2", "bugfix"), ("TEST-SA-3", "security")]);
        assert_eq!(patches[2].cves, ["CVE-2026-0003", "CVE-2026-0004"]);
        assert_eq!(patches[1].severity, None);
        let fixes = parse_patch_info(&cmd(), &data("zypper/info-patch.txt")).unwrap();
        let sa3: Vec<String> =
            fixes["TEST-SA-3"].iter().map(|f| format!("{} {:?} {}", f.name, f.arch, f.evr)).collect();
        assert_eq!(
            sa3,
            ["libmulti Some(\"x86_64\") 2.1-1", "libmulti Some(\"noarch\") 2.1-1", "libmulti Some(\"i686\") 2.1-1"]
        );
        assert_eq!(fixes["TEST-SA-1"][0].evr.to_string(), "1:1.2-1");
        for p in &mut patches {
            p.fixes = fixes[&p.id].clone();
        }
        let current = |u: &PackageUpdate| Evr::parse(&u.edition_old).unwrap();
        // Intermediate version: the patch fixes 1:1.2-1, the candidate is 1:1.3-1.
        let (sec, cves) = classify(&updates[2], &current(&updates[2]), &patches, Some(true));
        assert_eq!(sec.class, SecurityClass::Security);
        assert_eq!(
            sec.reason,
            "patch TEST-SA-1 (category security, severity important) fixes other-1:1.2-1 (1:1.0-1 installed, candidate 1:1.3-1)"
        );
        assert_eq!((sec.advisory_id.as_deref(), sec.severity.as_deref()), (Some("TEST-SA-1"), Some("important")));
        assert_eq!(cves, ["CVE-2026-0001"]);
        let (sec, _) = classify(&updates[1], &current(&updates[1]), &patches, Some(true));
        assert_eq!((sec.class, sec.severity.as_deref()), (SecurityClass::Security, Some("critical")));
        let (sec, cves) = classify(&updates[0], &current(&updates[0]), &patches, Some(true));
        assert_eq!(sec.class, SecurityClass::NotSecurity);
        assert!(sec.reason.contains("TEST-BA-2 (bugfix)"), "{}", sec.reason);
        assert!(cves.is_empty());
        let (sec, _) = classify(&updates[0], &current(&updates[0]), &[], Some(false));
        assert_eq!(sec.class, SecurityClass::Unknown);
        // Cache unreadable: no evidence that the repository has updateinfo, so never NotSecurity.
        let (sec, _) = classify(&updates[0], &current(&updates[0]), &[], None);
        assert_eq!(sec.class, SecurityClass::Unknown, "{}", sec.reason);
        assert!(sec.reason.contains("cannot tell whether repository"), "{}", sec.reason);
        // A patch whose fix is already installed does not make the update a security one.
        let old = Evr::parse("1:1.2-1").unwrap();
        let (sec, _) = classify(&updates[2], &old, &patches, Some(true));
        assert_eq!(sec.class, SecurityClass::NotSecurity);
    }

    #[test]
    fn recorded_dry_runs() {
        let tx = parse_install_summary(&cmd(), &data("zypper/update-dry-run.xml")).unwrap();
        assert_eq!(
            rows(&tx),
            ["upgrade hello 1.0-1 1.1-1", "upgrade libmulti 2.0-1 2.1-1", "upgrade other 1:1.0-1 1:1.3-1"]
        );
        let tx = parse_install_summary(&cmd(), &data("zypper/patch-security-dry-run.xml")).unwrap();
        assert_eq!(
            rows(&tx),
            ["upgrade libmulti 2.0-1 2.1-1", "upgrade other 1:1.0-1 1:1.3-1"],
            "patches are not packages"
        );
        let tx = parse_install_summary(&cmd(), &data("zypper/install-oldpackage-dry-run.xml")).unwrap();
        assert_eq!(rows(&tx), ["downgrade hello 1.1-1 1.0-1", "downgrade other 1:1.2-1 1:1.0-1"]);
        let tx = parse_install_summary(&cmd(), &data("zypper/remove-dry-run.xml")).unwrap();
        assert_eq!(rows(&tx), ["remove other 1:1.0-1 -"]);
        assert!(parse_install_summary(&cmd(), &data("zypper/update-nothing-to-do.xml")).unwrap().is_empty());
    }

    #[test]
    fn arch_and_vendor_change_lists_do_not_duplicate_items() {
        // As zypper's Summary writes them: the vendor-changing upgrade and the
        // arch-changing downgrade are in their own lists too; only the
        // same-version arch change is in <to-change-arch> alone.
        let xml = r#"<stream>
<install-summary download-size="1" space-usage-diff="0">
<to-upgrade>
<solvable type="package" name="hello" edition="1.1-1" arch="noarch" edition-old="1.0-1" arch-old="noarch"/>
</to-upgrade>
<to-downgrade>
<solvable type="package" name="other" edition="1:1.0-1" arch="noarch" edition-old="1:1.2-1" arch-old="x86_64"/>
</to-downgrade>
<to-change-arch>
<solvable type="package" name="other" edition="1:1.0-1" arch="noarch" edition-old="1:1.2-1" arch-old="x86_64"/>
<solvable type="package" name="libmulti" edition="2.0-1" arch="x86_64" edition-old="2.0-1" arch-old="i686"/>
</to-change-arch>
<to-change-vendor>
<solvable type="package" name="hello" edition="1.1-1" arch="noarch" edition-old="1.0-1" arch-old="noarch"/>
</to-change-vendor>
<_unsupported>
<solvable type="package" name="hello" edition="1.1-1" arch="noarch"/>
</_unsupported>
</install-summary>
</stream>
"#;
        let tx = parse_install_summary(&cmd(), xml).unwrap();
        assert_eq!(
            rows(&tx),
            ["upgrade hello 1.0-1 1.1-1", "reinstall libmulti 2.0-1 2.0-1", "downgrade other 1:1.2-1 1:1.0-1"]
        );
    }

    #[test]
    fn garbled_xml_and_unknown_lists_are_errors() {
        let err = parse_install_summary(&cmd(), "<stream>\n<install-summary>\n<to-frobnicate>\n").unwrap_err();
        assert!(matches!(&err, PkgError::Parse { line_no: 3, .. }), "{err}");
        let err = parse_list_updates(
            &cmd(),
            "<stream>\n<update kind=\"package\" name=\"x\" edition=\"1.0\" arch=\"noarch\"/>\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("edition is not"), "{err}");
        let err = xml_elements(&cmd(), "<a b=\"c>\n").unwrap_err();
        assert!(err.to_string().contains("unterminated"), "{err}");
        let err = parse_patch_info(&cmd(), "Information for patch X:\nConflicts   : garbage\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert_eq!(unescape("a &lt;&amp;&gt; &apos;b&apos; &#65;&#x42; &bogus;"), "a <&> 'b' AB &bogus;");
    }

    #[test]
    fn lock_and_unavailable() {
        let out = output(EXIT_LOCKED, &data("zypper/locked.xml"));
        assert_eq!(
            locked(&out).as_deref(),
            Some("System management is locked by the application with pid 13370 (sleep).")
        );
        assert!(locked(&output(0, "")).is_none());
        let pins = vec![("hello=9.9-1".to_owned(), Pin::new("hello", "9.9-1").unwrap())];
        let text = data("zypper/install-not-found.xml").replace("hello-9.9-1", "hello=9.9-1");
        let err = check_unavailable(&output(104, &text), &pins).unwrap_err();
        assert!(matches!(err, PkgError::VersionUnavailable { .. }), "{err}");
        let pins = vec![("nothere-1.0-1".to_owned(), Pin::new("nothere", "1.0-1").unwrap())];
        let err = check_unavailable(&output(104, &data("zypper/install-no-provider.xml")), &pins).unwrap_err();
        assert_eq!(err.to_string(), "nothere version 1.0-1 is not available from any configured repository");
    }

    #[test]
    fn locks_file() {
        let text = "type: package\nmatch_type: glob\ncase_sensitive: on\nsolvable_name: kernel*\n\ntype: pattern\nsolvable_name: x\n\nsolvable_name: hello\n";
        let locks = parse_locks(text);
        assert_eq!(locks, ["kernel*", "hello"]);
        assert!(glob_match("kernel*", "kernel-default"));
        assert!(!glob_match("kernel*", "akernel"));
        assert!(glob_match("h?llo", "hello"));
    }
}
