//! The pacman backend against the real pacman, on throw-away roots.
//!
//! Each test builds its own sandbox in a tempdir: script-free packages made by
//! hand (`.PKGINFO` + one file, packed with bsdtar as `.pkg.tar.zst`), a
//! `file://` repository made with `repo-add`, a pacman.conf pointing at it and
//! an install root. Nothing of the host's packages is touched: every pacman
//! command the backend runs gets `--root/--dbpath/--cachedir/...` under the
//! sandbox.
//!
//! Packages: `hello` (built from pkgbase `hello-src`) 1.0-1 → 1.1-1, and
//! `other` 1.0-1 → 1:1.2-1 (an epoch). pacman has no security metadata, so
//! both updates are classified Unknown.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use patchdeck_pkg::{
    open, BackendOptions, Operation, PackageManager, PackageName, PackageSpec, Pin, PkgError, UpgradeScope,
};
use patchdeck_proto::{BackendKind, SecurityClass, TxAction, TxItem};

/// The tools the sandbox needs, with the Debian package that ships each.
const TOOLS: &[(&str, &str)] = &[
    ("pacman", "pacman-package-manager"),
    ("repo-add", "pacman-package-manager"),
    ("bsdtar", "libarchive-tools"),
    ("zstd", "zstd"),
];

fn require_tools() {
    for (tool, package) in TOOLS {
        let found = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not installed: these tests need the Debian package {package} (apt-get install {package})"
        );
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Sandbox {
    _dir: tempfile::TempDir,
    work: PathBuf,
    root: PathBuf,
    repo: PathBuf,
    conf: PathBuf,
}

impl Sandbox {
    /// An empty root and an empty repository; `ignore` goes to IgnorePkg.
    fn new(ignore: &[&str]) -> Sandbox {
        require_tools();
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().to_owned();
        let root = work.join("root");
        let repo = work.join("repo");
        fs::create_dir_all(root.join("var/lib/pacman")).unwrap();
        fs::create_dir_all(&repo).unwrap();
        fs::create_dir_all(work.join("pkgs")).unwrap();
        let conf = work.join("pacman.conf");
        let ignore = if ignore.is_empty() { String::new() } else { format!("IgnorePkg = {}\n", ignore.join(" ")) };
        fs::write(
            &conf,
            format!(
                "[options]\nArchitecture = auto\nSigLevel = Never\n{ignore}\n[testrepo]\nServer = file://{}\n",
                repo.display()
            ),
        )
        .unwrap();
        Sandbox { _dir: dir, work, root, repo, conf }
    }

    /// Builds `<name>-<version>-any.pkg.tar.zst` in `pkgs/` and returns its path.
    fn package(&self, name: &str, version: &str, base: &str, extra: &str) -> PathBuf {
        let build = self.work.join(format!("build-{name}-{version}"));
        fs::create_dir_all(build.join("usr/share").join(name)).unwrap();
        fs::write(build.join("usr/share").join(name).join("version"), format!("{version}\n")).unwrap();
        fs::write(
            build.join(".PKGINFO"),
            format!(
                "pkgname = {name}\npkgbase = {base}\npkgver = {version}\npkgdesc = test package\n\
                 builddate = 1700000000\npackager = patchdeck tests\nsize = 6\narch = any\nlicense = MIT\n{extra}"
            ),
        )
        .unwrap();
        let file = self.work.join("pkgs").join(format!("{name}-{version}-any.pkg.tar.zst"));
        run(Command::new("bsdtar")
            .current_dir(&build)
            .args(["--uid", "0", "--gid", "0", "--zstd", "-cf"])
            .arg(&file)
            .args([".PKGINFO", "usr"]));
        file
    }

    /// Adds packages to the repository and dates its database `age` in the
    /// past, so that each repository generation has its own mtime (pacman
    /// skips a database whose server time is not newer than its copy).
    fn publish(&self, packages: &[PathBuf], age: Duration) {
        let mut cmd = Command::new("repo-add");
        cmd.arg("-q").arg(self.repo.join("testrepo.db.tar.gz"));
        for p in packages {
            let dest = self.repo.join(p.file_name().unwrap());
            fs::copy(p, &dest).unwrap();
            cmd.arg(dest);
        }
        run(&mut cmd);
        let db = fs::File::options().write(true).open(self.repo.join("testrepo.db.tar.gz")).unwrap();
        db.set_modified(SystemTime::now() - age).unwrap();
    }

    fn repo_db_mtime(&self) -> SystemTime {
        fs::metadata(self.repo.join("testrepo.db.tar.gz")).unwrap().modified().unwrap()
    }

    fn options(&self) -> BackendOptions {
        BackendOptions {
            config_file: Some(self.conf.clone()),
            lock_wait: Duration::from_secs(1),
            ..BackendOptions::with_root(&self.root)
        }
    }

    fn backend(&self) -> Box<dyn PackageManager> {
        open(BackendKind::Pacman, self.options())
    }

    fn cache(&self) -> PathBuf {
        self.root.join("var/cache/pacman/pkg")
    }

    /// Every file of the root's pacman database, with contents (to prove a dry run changed nothing).
    fn db_snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            let Ok(entries) = fs::read_dir(dir) else { return };
            for e in entries.map(Result::unwrap) {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push((path.clone(), fs::read(&path).unwrap()));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root.join("var/lib/pacman/local"), &mut out);
        walk(&self.root.join("usr"), &mut out);
        out.sort();
        out
    }
}

/// A sandbox with hello 1.0-1 and other 1.0-1 installed and 1.1-1 / 1:1.2-1 published and refreshed.
fn with_updates(ignore: &[&str]) -> (Sandbox, Box<dyn PackageManager>) {
    let sb = Sandbox::new(ignore);
    let hello_old = sb.package("hello", "1.0-1", "hello-src", "");
    let other_old = sb.package("other", "1.0-1", "other", "");
    sb.publish(&[hello_old, other_old], Duration::from_secs(120));
    let pm = sb.backend();
    pm.refresh(None).unwrap();
    let install = Operation::Install(vec![spec("hello"), spec("other")]);
    pm.apply(&install, None).unwrap();
    let hello_new = sb.package("hello", "1.1-1", "hello-src", "");
    let other_new = sb.package("other", "1:1.2-1", "other", "");
    sb.publish(&[hello_new, other_new], Duration::from_secs(60));
    pm.refresh(None).unwrap();
    (sb, pm)
}

fn spec(s: &str) -> PackageSpec {
    PackageSpec::parse(s).unwrap()
}

fn pin(s: &str) -> Pin {
    Pin::parse(s).unwrap()
}

fn item(name: &str, action: TxAction, from: Option<&str>, to: Option<&str>) -> TxItem {
    TxItem { name: name.into(), action, from: from.map(Into::into), to: to.map(Into::into), arch: None }
}

fn versions(pm: &dyn PackageManager) -> Vec<(String, String)> {
    pm.installed().unwrap().into_iter().map(|p| (p.name, p.version)).collect()
}

#[test]
fn installed_packages_and_updates() {
    let (_sb, pm) = with_updates(&[]);
    let installed = pm.installed().unwrap();
    assert_eq!(installed.len(), 2);
    let hello = &installed[0];
    assert_eq!((hello.name.as_str(), hello.version.as_str(), hello.arch.as_str()), ("hello", "1.0-1", "any"));
    assert_eq!(hello.source_package.as_deref(), Some("hello-src"));
    assert_eq!(hello.size_bytes, Some(6));
    let age = jiff::Timestamp::now().as_second() - hello.installed_at.unwrap().as_second();
    assert!((0..300).contains(&age), "installed {age}s ago");
    assert!(!hello.held);
    assert_eq!(installed[1].name, "other");
    assert_eq!(installed[1].source_package.as_deref(), Some("other"));

    let updates = pm.updates().unwrap();
    let summary: Vec<_> = updates
        .iter()
        .map(|u| (u.name.as_str(), u.current_version.as_str(), u.candidate_version.as_str(), u.repository.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [("hello", "1.0-1", "1.1-1", Some("testrepo")), ("other", "1.0-1", "1:1.2-1", Some("testrepo"))]
    );
    for u in &updates {
        assert_eq!(u.security.class, SecurityClass::Unknown, "never NotSecurity");
        assert!(u.security.reason.starts_with("pacman has no security metadata"), "{}", u.security.reason);
        assert!(u.cves.is_empty());
        assert_eq!(u.arch, "any");
        assert!(!u.reboot_likely);
    }
}

#[test]
fn ignored_package_is_held_and_not_upgraded() {
    let (_sb, pm) = with_updates(&["other"]);
    let installed = pm.installed().unwrap();
    assert!(installed.iter().find(|p| p.name == "other").unwrap().held);
    assert!(!installed.iter().find(|p| p.name == "hello").unwrap().held);
    // The update exists and is reported; an upgrade of everything skips it.
    assert_eq!(pm.updates().unwrap().len(), 2);
    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).unwrap();
    assert_eq!(tx.items, [item("hello", TxAction::Upgrade, Some("1.0-1"), Some("1.1-1"))]);
}

#[test]
fn dry_runs_compute_the_transaction_and_change_nothing() {
    let (sb, pm) = with_updates(&[]);
    let before = sb.db_snapshot();

    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).unwrap();
    assert_eq!(
        tx.items,
        [
            item("hello", TxAction::Upgrade, Some("1.0-1"), Some("1.1-1")),
            item("other", TxAction::Upgrade, Some("1.0-1"), Some("1:1.2-1")),
        ]
    );

    let err = pm.dry_run(&Operation::Upgrade(UpgradeScope::Security)).unwrap_err();
    assert!(matches!(err, PkgError::Unsupported { backend: BackendKind::Pacman, .. }), "{err}");

    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("other=1:1.2-1")]))).unwrap();
    assert_eq!(tx.items, [item("other", TxAction::Upgrade, Some("1.0-1"), Some("1:1.2-1"))]);

    let tx = pm.dry_run(&Operation::Remove(vec![PackageName::parse("other").unwrap()])).unwrap();
    assert_eq!(tx.items.len(), 1);
    assert_eq!(tx.items[0].action, TxAction::Remove);
    assert_eq!(tx.items[0].from.as_deref(), Some("1.0-1"));
    assert_eq!(tx.items[0].arch.as_deref(), Some("any"));

    // The installed version: nothing to do.
    let tx = pm.dry_run(&Operation::Downgrade(vec![pin("hello=1.0-1")])).unwrap();
    assert_eq!(tx.items, [], "the version is already installed");

    assert_eq!(sb.db_snapshot(), before, "a dry run changed the installed system");
    assert_eq!(versions(pm.as_ref()), [("hello".into(), "1.0-1".into()), ("other".into(), "1.0-1".into())]);
}

#[test]
fn upgrade_then_roll_back_from_the_cache_then_remove() {
    let (sb, pm) = with_updates(&[]);

    let applied = pm.apply(&Operation::Upgrade(UpgradeScope::All), None).unwrap();
    assert_eq!(applied.transaction.items.len(), 2);
    assert!(applied.output.success());
    assert_eq!(versions(pm.as_ref()), [("hello".into(), "1.1-1".into()), ("other".into(), "1:1.2-1".into())]);
    assert!(pm.updates().unwrap().is_empty());
    assert_eq!(fs::read_to_string(sb.root.join("usr/share/hello/version")).unwrap(), "1.1-1\n");

    // The repository only has 1.1-1 now: 1.0-1 comes from the package cache.
    let rollback = Operation::Downgrade(vec![pin("hello=1.0-1")]);
    let tx = pm.dry_run(&rollback).unwrap();
    assert_eq!(tx.items, [item("hello", TxAction::Downgrade, Some("1.1-1"), Some("1.0-1"))]);
    let applied = pm.apply(&rollback, None).unwrap();
    assert_eq!(applied.transaction, tx);
    assert_eq!(versions(pm.as_ref())[0], ("hello".into(), "1.0-1".into()));
    assert_eq!(fs::read_to_string(sb.root.join("usr/share/hello/version")).unwrap(), "1.0-1\n");
    assert_eq!(pm.installed().unwrap()[0].source_package.as_deref(), Some("hello-src"));

    // Forward again to the repository's version with an exact upgrade.
    let forward = Operation::Upgrade(UpgradeScope::Exact(vec![pin("hello=1.1-1")]));
    assert_eq!(pm.apply(&forward, None).unwrap().transaction.items[0].action, TxAction::Upgrade);
    assert_eq!(versions(pm.as_ref())[0], ("hello".into(), "1.1-1".into()));

    // Without the cached file there is nothing to roll back to.
    for entry in fs::read_dir(sb.cache()).unwrap().map(Result::unwrap) {
        if entry.file_name().to_string_lossy().starts_with("hello-1.0-1-") {
            fs::remove_file(entry.path()).unwrap();
        }
    }
    let err = pm.dry_run(&rollback).unwrap_err();
    assert!(
        matches!(&err, PkgError::VersionUnavailable { name, version } if name == "hello" && version == "1.0-1"),
        "{err}"
    );

    // Pinning the installed version changes nothing and needs no package file.
    let applied = pm.apply(&Operation::Downgrade(vec![pin("hello=1.1-1")]), None).unwrap();
    assert!(applied.transaction.is_empty());
    assert_eq!(applied.output.stdout, "hello 1.1-1\n");

    let remove = Operation::Remove(vec![PackageName::parse("other").unwrap()]);
    let applied = pm.apply(&remove, None).unwrap();
    assert_eq!(applied.transaction.items[0].name, "other");
    assert_eq!(versions(pm.as_ref()), [("hello".into(), "1.1-1".into())]);
    assert!(!sb.root.join("usr/share/other/version").exists());
}

#[test]
fn mixed_cache_and_repository_pins_are_one_transaction() {
    let (_sb, pm) = with_updates(&[]);
    pm.apply(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("hello=1.1-1")])), None).unwrap();
    assert_eq!(versions(pm.as_ref()), [("hello".into(), "1.1-1".into()), ("other".into(), "1.0-1".into())]);
    // hello=1.0-1 only exists in the cache, other=1:1.2-1 only in the repository:
    // both go into one `pacman -U` (the repository package by its URL).
    let op = Operation::Downgrade(vec![pin("hello=1.0-1"), pin("other=1:1.2-1")]);
    let tx = pm.dry_run(&op).unwrap();
    assert_eq!(
        tx.items,
        [
            item("hello", TxAction::Downgrade, Some("1.1-1"), Some("1.0-1")),
            item("other", TxAction::Upgrade, Some("1.0-1"), Some("1:1.2-1")),
        ]
    );
    let applied = pm.apply(&op, None).unwrap();
    assert_eq!(applied.transaction, tx);
    assert_eq!(versions(pm.as_ref()), [("hello".into(), "1.0-1".into()), ("other".into(), "1:1.2-1".into())]);
}

#[test]
fn unavailable_versions_and_packages_not_installed() {
    let (sb, pm) = with_updates(&[]);
    let before = sb.db_snapshot();
    for op in [
        Operation::Install(vec![spec("hello=9.9-1")]),
        Operation::Upgrade(UpgradeScope::Exact(vec![pin("hello=9.9-1")])),
        Operation::Downgrade(vec![pin("hello=0.1-1")]),
    ] {
        let err = pm.apply(&op, None).unwrap_err();
        assert!(matches!(&err, PkgError::VersionUnavailable { name, .. } if name == "hello"), "{op}: {err}");
        assert!(err.to_string().contains("hello version"), "{err}");
    }
    let err = pm.apply(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("nope=1.0-1")])), None).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(n) if n == "nope"), "{err}");
    let err = pm.dry_run(&Operation::Downgrade(vec![pin("nope=1.0-1")])).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(n) if n == "nope"), "{err}");
    let err = pm.dry_run(&Operation::Remove(vec![PackageName::parse("nope").unwrap()])).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(n) if n == "nope"), "{err}");
    let err = pm.apply(&Operation::Remove(vec![]), None).unwrap_err();
    assert!(matches!(err, PkgError::InvalidInput { .. }), "{err}");
    assert_eq!(sb.db_snapshot(), before);
}

#[test]
fn a_replacing_package_shows_the_removal() {
    let (sb, pm) = with_updates(&[]);
    let other2 = sb.package("other2", "3.0-1", "other2", "replaces = other\nconflicts = other\n");
    sb.publish(&[other2], Duration::from_secs(30));
    pm.refresh(None).unwrap();
    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).unwrap();
    assert_eq!(
        tx.items,
        [
            item("hello", TxAction::Upgrade, Some("1.0-1"), Some("1.1-1")),
            item("other2", TxAction::Install, None, Some("3.0-1")),
            TxItem { arch: Some("any".into()), ..item("other", TxAction::Remove, Some("1.0-1"), None) },
        ]
    );
    let applied = pm.apply(&Operation::Upgrade(UpgradeScope::All), None).unwrap();
    assert_eq!(applied.transaction, tx);
    assert_eq!(versions(pm.as_ref()), [("hello".into(), "1.1-1".into()), ("other2".into(), "3.0-1".into())]);
}

#[test]
fn the_database_lock_makes_us_wait_then_give_up() {
    let (sb, pm) = with_updates(&[]);
    let lock = sb.root.join("var/lib/pacman/db.lck");
    fs::write(&lock, "").unwrap();
    let started = std::time::Instant::now();
    let err = pm.apply(&Operation::Upgrade(UpgradeScope::All), None).unwrap_err();
    assert!(matches!(err, PkgError::Locked { backend: BackendKind::Pacman, .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("unable to lock database"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(700), "gave up without waiting");
    let err = pm.refresh(None).unwrap_err();
    assert!(matches!(err, PkgError::Locked { .. }), "{err}");
    // Released: it works again, and nothing was changed meanwhile.
    assert_eq!(versions(pm.as_ref())[0], ("hello".into(), "1.0-1".into()));
    fs::remove_file(&lock).unwrap();
    pm.apply(&Operation::Upgrade(UpgradeScope::All), None).unwrap();
    assert_eq!(versions(pm.as_ref())[0], ("hello".into(), "1.1-1".into()));
}

#[test]
fn last_refresh_follows_the_repository_databases() {
    let sb = Sandbox::new(&[]);
    let hello = sb.package("hello", "1.0-1", "hello-src", "");
    sb.publish(&[hello], Duration::from_secs(100));
    let pm = sb.backend();
    assert_eq!(pm.last_refresh().unwrap(), None, "never refreshed");
    let mut lines = Vec::new();
    let mut sink = |_: patchdeck_pkg::exec::Stream, l: &str| lines.push(l.to_owned());
    pm.refresh(Some(&mut sink)).unwrap();
    assert!(lines.iter().any(|l| l.contains("Synchronizing package databases")), "{lines:?}");
    let expected = jiff::Timestamp::try_from(sb.repo_db_mtime()).unwrap();
    let got = pm.last_refresh().unwrap().expect("refreshed");
    assert_eq!(got.as_second(), expected.as_second(), "pacman stamps the database with the server's time");
    assert!(pm.installed().unwrap().is_empty(), "a refreshed root with nothing installed");
    assert!(pm.updates().unwrap().is_empty());
    assert!(!pm.reboot_status().unwrap().required);
}
