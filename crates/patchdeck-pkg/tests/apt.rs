//! The apt backend against the REAL apt-get, apt-cache and dpkg, on a
//! throw-away root per test (recipe: apt-get with APT_CONFIG pointing at a sandbox apt.conf).
//!
//! Each sandbox has two local repositories built with `dpkg-deb` and
//! `apt-ftparchive`:
//!
//! * `main` (suite `stable`, label `Local`): `hello` 1.0-1 and 1.1-1 (built
//!   from source package `hello-src`), `other` 1.0-1, and the Multi-Arch:
//!   same library `libc6` 2.36-9 for the native and a foreign architecture;
//!   `grower` 2.0-1 needs the new package `newdep`, `breaker` 2.0-1
//!   conflicts with `other` (both kept back by `apt-get upgrade`);
//! * `sec` (suite `stable-security`, label `Local-Security`): `other` 1.2-1
//!   and `libc6` 2.36-9+deb12u4.
//!
//! Every test builds its own sandbox in its own tempdir, so tests run in
//! parallel.
//!
//! Packages carry no maintainer scripts, so dpkg never has to run anything
//! inside the root. Nothing outside the test's tempdir is touched.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use patchdeck_pkg::{
    open, BackendOptions, Operation, PackageManager, PackageName, PackageSpec, Pin, PkgError, UpgradeScope,
};
use patchdeck_proto::{BackendKind, SecurityClass, TxAction};

/// Programs the sandbox needs, with the Debian package that ships each.
const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("apt-cache", "apt"),
    ("apt-mark", "apt"),
    ("dpkg", "dpkg"),
    ("dpkg-deb", "dpkg"),
    ("dpkg-query", "dpkg"),
    ("apt-ftparchive", "apt-utils"),
];

fn require_tools() {
    for (program, package) in TOOLS {
        assert!(
            patchdeck_pkg::detect::find_program(program).is_some(),
            "`{program}` is not installed: install the Debian package `{package}` to run the apt backend tests"
        );
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// dpkg's native architecture and a foreign one for the Multi-Arch package.
fn arches() -> &'static (String, String) {
    static ARCHES: OnceLock<(String, String)> = OnceLock::new();
    ARCHES.get_or_init(|| {
        require_tools();
        let native = run(Command::new("dpkg").arg("--print-architecture")).trim().to_owned();
        let foreign = if native == "i386" { "amd64" } else { "i386" }.to_owned();
        (native, foreign)
    })
}

struct Sandbox {
    _dir: tempfile::TempDir,
    work: PathBuf,
    root: PathBuf,
    apt_conf: PathBuf,
    pm: Box<dyn PackageManager>,
}

impl Sandbox {
    /// Builds the repositories and an empty root, then `apt-get update`s it
    /// through the backend (so `last_refresh` can be checked before).
    fn new() -> Sandbox {
        Sandbox::with_lock_wait(Duration::from_secs(10))
    }

    fn with_lock_wait(lock_wait: Duration) -> Sandbox {
        let (native, foreign) = arches().clone();
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().to_owned();
        let root = work.join("root");
        let (main, sec) = (work.join("main"), work.join("sec"));
        for d in [&main, &sec] {
            fs::create_dir_all(d).unwrap();
        }
        let deb = |name: &str, version: &str, arch: &str, repo: &Path, extra: &str| {
            let d = work.join(format!("build/{name}_{version}_{arch}"));
            fs::create_dir_all(d.join("DEBIAN")).unwrap();
            fs::create_dir_all(d.join(format!("usr/share/doc/{name}"))).unwrap();
            fs::write(
                d.join("DEBIAN/control"),
                format!(
                    "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: t <t@example.org>\nInstalled-Size: 8\nDescription: test package\n{extra}"
                ),
            )
            .unwrap();
            fs::write(d.join(format!("usr/share/doc/{name}/README")), format!("{name}\n")).unwrap();
            run(Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zgzip", "--build"])
                .arg(&d)
                .arg(repo.join(format!("{name}_{version}_{arch}.deb"))));
        };
        deb("hello", "1.0-1", "all", &main, "Source: hello-src\n");
        deb("hello", "1.1-1", "all", &main, "Source: hello-src\n");
        deb("other", "1.0-1", "all", &main, "");
        deb("other", "1.2-1", "all", &sec, "");
        // Updates `apt-get upgrade` keeps back: one needs a new package, one a removal.
        deb("grower", "1.0-1", "all", &main, "");
        deb("grower", "2.0-1", "all", &main, "Depends: newdep\n");
        deb("newdep", "1.0-1", "all", &main, "");
        deb("breaker", "1.0-1", "all", &main, "");
        deb("breaker", "2.0-1", "all", &main, "Conflicts: other\n");
        for arch in [&native, &foreign] {
            deb("libc6", "2.36-9", arch, &main, "Multi-Arch: same\nSource: glibc\n");
            deb("libc6", "2.36-9+deb12u4", arch, &sec, "Multi-Arch: same\nSource: glibc\n");
        }
        for (repo, suite, label) in [(&main, "stable", "Local"), (&sec, "stable-security", "Local-Security")] {
            let packages = run(Command::new("apt-ftparchive").arg("packages").arg(".").current_dir(repo));
            fs::write(repo.join("Packages"), packages).unwrap();
            let release = run(Command::new("apt-ftparchive")
                .args(["-o", "APT::FTPArchive::Release::Origin=Local"])
                .arg(format!("-oAPT::FTPArchive::Release::Suite={suite}"))
                .arg(format!("-oAPT::FTPArchive::Release::Label={label}"))
                .args(["release", "."])
                .current_dir(repo));
            fs::write(repo.join("Release"), release).unwrap();
        }

        for d in [
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/log/apt",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        fs::write(
            root.join("etc/apt/sources.list"),
            format!("deb [trusted=yes] file:{} ./\ndeb [trusted=yes] file:{} ./\n", main.display(), sec.display()),
        )
        .unwrap();
        let apt_conf = work.join("apt.conf");
        let r = root.display();
        fs::write(
            &apt_conf,
            format!(
                "Dir \"{r}/\";\nDir::State::status \"{r}/var/lib/dpkg/status\";\nDPkg::Options:: \"--root={r}\";\nAPT::Sandbox::User \"root\";\nAPT::Architecture \"{native}\";\nAPT::Architectures {{ \"{native}\"; \"{foreign}\"; }};\n"
            ),
        )
        .unwrap();
        run(Command::new("dpkg").arg(format!("--root={r}")).arg("--add-architecture").arg(&foreign));

        let options = BackendOptions {
            config_file: Some(apt_conf.clone()),
            query_timeout: Duration::from_secs(60),
            refresh_timeout: Duration::from_secs(60),
            transaction_timeout: Duration::from_secs(120),
            lock_wait,
            ..BackendOptions::with_root(&root)
        };
        let pm = open(BackendKind::Apt, options);
        assert_eq!(pm.kind(), BackendKind::Apt);
        Sandbox { _dir: dir, work, root, apt_conf, pm }
    }

    /// A sandbox after `refresh` with `hello`, `other` and `libc6` (both
    /// architectures) installed at their old versions, through the backend
    /// except for the foreign architecture (a [`PackageName`] has no `:arch`).
    fn installed() -> Sandbox {
        let sb = Sandbox::new();
        sb.pm.refresh(None).unwrap();
        let (native, foreign) = arches();
        let applied = sb.pm.apply(&install(&["hello=1.0-1", "other=1.0-1", "libc6=2.36-9"]), None).unwrap();
        assert!(applied.transaction.items.iter().all(|i| i.action == TxAction::Install), "{:?}", applied.transaction);
        assert_eq!(applied.transaction.items.len(), 3, "{:?}", applied.transaction);
        sb.tool("apt-get", &["-y", "install", &format!("libc6:{foreign}=2.36-9")]);
        assert_eq!(
            sb.versions(),
            [
                ("hello".into(), "all".into(), "1.0-1".into()),
                ("libc6".into(), native.clone(), "2.36-9".into()),
                ("libc6".into(), foreign.clone(), "2.36-9".into()),
                ("other".into(), "all".into(), "1.0-1".into()),
            ]
        );
        sb
    }

    /// Runs an apt tool directly in the sandbox (setup and cross-checks only).
    fn tool(&self, program: &str, args: &[&str]) -> String {
        run(Command::new(program).env("APT_CONFIG", &self.apt_conf).env("LC_ALL", "C").args(args))
    }

    /// (name, arch, version) of every installed package, via the backend.
    fn versions(&self) -> Vec<(String, String, String)> {
        self.pm.installed().unwrap().into_iter().map(|p| (p.name, p.arch, p.version)).collect()
    }

    fn status_file(&self) -> Vec<u8> {
        fs::read(self.root.join("var/lib/dpkg/status")).unwrap()
    }
}

fn install(specs: &[&str]) -> Operation {
    Operation::Install(specs.iter().map(|s| PackageSpec::parse(s).unwrap()).collect())
}

fn pins(pins: &[&str]) -> Vec<Pin> {
    pins.iter().map(|p| Pin::parse(p).unwrap()).collect()
}

/// (name, action, from, to) of a transaction, for compact assertions.
fn items(tx: &patchdeck_proto::Transaction) -> Vec<(String, TxAction, Option<String>, Option<String>)> {
    let mut items: Vec<_> = tx.items.iter().map(|i| (i.name.clone(), i.action, i.from.clone(), i.to.clone())).collect();
    items.sort();
    items
}

fn up(name: &str, from: &str, to: &str) -> (String, TxAction, Option<String>, Option<String>) {
    (name.into(), TxAction::Upgrade, Some(from.into()), Some(to.into()))
}

#[test]
fn installed_packages_with_source_arch_and_hold() {
    let sb = Sandbox::installed();
    let (native, foreign) = arches();
    let installed = sb.pm.installed().unwrap();
    let hello = &installed[0];
    assert_eq!((hello.name.as_str(), hello.version.as_str(), hello.arch.as_str()), ("hello", "1.0-1", "all"));
    assert_eq!(hello.source_package.as_deref(), Some("hello-src"));
    assert_eq!(hello.source_version, None, "dpkg records no separate source version for hello");
    assert_eq!(hello.size_bytes, Some(8 * 1024));
    assert!(!hello.held);
    let age = jiff::Timestamp::now().duration_since(hello.installed_at.expect("install time from info/hello.list"));
    assert!(age.as_secs() < 120, "installed {age:?} ago");
    let other = installed.iter().find(|p| p.name == "other").unwrap();
    assert_eq!(other.source_package.as_deref(), Some("other"), "no Source field: the source is the package");
    let libs: Vec<_> = installed.iter().filter(|p| p.name == "libc6").collect();
    assert_eq!(libs.len(), 2);
    assert_eq!((libs[0].arch.as_str(), libs[1].arch.as_str()), (native.as_str(), foreign.as_str()));
    assert!(libs.iter().all(|p| p.source_package.as_deref() == Some("glibc") && p.installed_at.is_some()));

    sb.tool("apt-mark", &["hold", "hello"]);
    let installed = sb.pm.installed().unwrap();
    assert!(installed[0].held, "apt-mark hold shows as held");
    assert!(installed[1..].iter().all(|p| !p.held));
    // apt keeps a held package back, so it is not an update...
    let updates = sb.pm.updates().unwrap();
    assert!(updates.iter().all(|u| u.name != "hello"), "{updates:#?}");
    assert!(sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).unwrap().item("hello").is_none());
    // ...and refuses to change it even when asked by name: the dry run says so like the real run.
    let exact = Operation::Upgrade(UpgradeScope::Exact(pins(&["hello=1.1-1"])));
    for err in [sb.pm.dry_run(&exact).unwrap_err(), sb.pm.apply(&exact, None).unwrap_err()] {
        assert!(
            matches!(&err, PkgError::CommandFailed { detail, .. } if detail.contains("Held packages were changed")),
            "{err}"
        );
    }
    assert_eq!(sb.versions()[0].2, "1.0-1");
}

#[test]
fn updates_are_classified_with_evidence() {
    let sb = Sandbox::installed();
    let (native, foreign) = arches();
    let updates = sb.pm.updates().unwrap();
    let summary: Vec<_> = updates
        .iter()
        .map(|u| {
            (
                u.name.as_str(),
                u.arch.as_str(),
                u.current_version.as_str(),
                u.candidate_version.as_str(),
                u.security.class,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("hello", "all", "1.0-1", "1.1-1", SecurityClass::NotSecurity),
            ("libc6", native.as_str(), "2.36-9", "2.36-9+deb12u4", SecurityClass::Security),
            ("libc6", foreign.as_str(), "2.36-9", "2.36-9+deb12u4", SecurityClass::Security),
            ("other", "all", "1.0-1", "1.2-1", SecurityClass::Security),
        ]
    );
    let other = &updates[3];
    assert_eq!(
        other.security.reason,
        "candidate 1.2-1 comes from suite stable-security (label Local-Security, origin Local)"
    );
    assert_eq!(other.repository.as_deref(), Some("Local-Security:stable-security"));
    assert_eq!((other.security.advisory_id.as_deref(), other.security.severity.as_deref()), (None, None));
    assert!(other.cves.is_empty(), "apt metadata has no CVE ids");
    let hello = &updates[0];
    assert_eq!(
        hello.security.reason,
        "candidate 1.1-1 comes only from suite stable (label Local, origin Local), not a security archive"
    );
    assert_eq!(hello.repository.as_deref(), Some("Local:stable"));
    // The C library needs a reboot to take effect everywhere.
    assert_eq!(updates.iter().map(|u| u.reboot_likely).collect::<Vec<_>>(), [false, true, true, false]);
}

#[test]
fn updates_include_what_upgrade_keeps_back() {
    let sb = Sandbox::new();
    sb.pm.refresh(None).unwrap();
    sb.pm.apply(&install(&["grower=1.0-1", "breaker=1.0-1", "other=1.0-1"]), None).unwrap();
    let kept_back = sb.tool("apt-get", &["-s", "upgrade"]);
    assert!(kept_back.contains("kept back"), "{kept_back}");

    let updates = sb.pm.updates().unwrap();
    let names: Vec<_> = updates.iter().map(|u| (u.name.as_str(), u.candidate_version.as_str())).collect();
    assert_eq!(names, [("breaker", "2.0-1"), ("grower", "2.0-1"), ("other", "1.2-1")]);

    // `other` is listed although dist-upgrade alone would remove it (to upgrade breaker):
    // only plain `upgrade` shows its security update. Hence the union of both.
    let dist = sb.tool("apt-get", &["-s", "dist-upgrade"]);
    assert!(dist.contains("Remv other [1.0-1]"), "{dist}");
    assert_eq!(updates[2].security.class, SecurityClass::Security);

    // Upgrade All installs new dependencies but never removes a package. (apt's
    // resolver also keeps `other` back here, because of breaker's conflict.)
    let all = sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).unwrap();
    let all = items(&all);
    assert!(all.contains(&up("grower", "1.0-1", "2.0-1")), "{all:?}");
    assert!(all.contains(&("newdep".into(), TxAction::Install, None, Some("1.0-1".into()))), "{all:?}");
    assert!(all.iter().all(|(name, action, ..)| *action != TxAction::Remove && name != "breaker"), "{all:?}");
    // The security upgrade installs exactly the security candidate, whatever apt's resolver keeps back.
    let security = sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::Security)).unwrap();
    assert_eq!(items(&security), [up("other", "1.0-1", "1.2-1")]);
    // The update that needs a removal is installed on request, and the plan shows the removal.
    let exact = sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(pins(&["breaker=2.0-1"])))).unwrap();
    assert_eq!(
        items(&exact),
        [up("breaker", "1.0-1", "2.0-1"), ("other".into(), TxAction::Remove, Some("1.0-1".into()), None)]
    );
}

#[test]
fn dry_runs_plan_exactly_and_change_nothing() {
    let sb = Sandbox::installed();
    let status_before = sb.status_file();
    let installed_before = sb.pm.installed().unwrap();

    let all = sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).unwrap();
    assert_eq!(
        items(&all),
        [
            up("hello", "1.0-1", "1.1-1"),
            up("libc6", "2.36-9", "2.36-9+deb12u4"),
            up("libc6", "2.36-9", "2.36-9+deb12u4"),
            up("other", "1.0-1", "1.2-1"),
        ]
    );
    let security = sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::Security)).unwrap();
    assert_eq!(
        items(&security),
        [
            up("libc6", "2.36-9", "2.36-9+deb12u4"),
            up("libc6", "2.36-9", "2.36-9+deb12u4"),
            up("other", "1.0-1", "1.2-1"),
        ]
    );
    let exact = sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(pins(&["hello=1.1-1"])))).unwrap();
    assert_eq!(items(&exact), [up("hello", "1.0-1", "1.1-1")]);
    assert_eq!(exact.items[0].arch.as_deref(), Some("all"));
    let remove = sb.pm.dry_run(&Operation::Remove(vec![PackageName::parse("other").unwrap()])).unwrap();
    assert_eq!(items(&remove), [("other".into(), TxAction::Remove, Some("1.0-1".into()), None)]);
    // Removing a Multi-Arch: same package means every installed architecture.
    let remove_lib = sb.pm.dry_run(&Operation::Remove(vec![PackageName::parse("libc6").unwrap()])).unwrap();
    assert_eq!(remove_lib.items.len(), 2, "{remove_lib:?}");
    let install_new = sb.pm.dry_run(&install(&["hello=1.1-1"])).unwrap();
    assert_eq!(items(&install_new), [up("hello", "1.0-1", "1.1-1")]);
    let downgrade_noop = sb.pm.dry_run(&Operation::Downgrade(pins(&["hello=1.0-1"]))).unwrap();
    assert!(downgrade_noop.is_empty(), "already at 1.0-1: {downgrade_noop:?}");

    assert_eq!(sb.status_file(), status_before, "a dry run changed dpkg's status file");
    assert_eq!(sb.pm.installed().unwrap(), installed_before);
}

#[test]
fn upgrade_downgrade_and_remove_for_real() {
    let sb = Sandbox::installed();
    let (native, foreign) = arches();
    let mut lines = 0;
    let mut sink = |_: patchdeck_pkg::exec::Stream, _: &str| lines += 1;
    let applied = sb.pm.apply(&Operation::Upgrade(UpgradeScope::All), Some(&mut sink)).unwrap();
    assert!(lines > 0, "output is streamed to the sink");
    assert_eq!(applied.transaction.items.len(), 4);
    assert!(applied.output.stdout.contains("Setting up hello (1.1-1)"), "{}", applied.output.stdout);
    assert_eq!(
        sb.versions(),
        [
            ("hello".into(), "all".into(), "1.1-1".into()),
            ("libc6".into(), native.clone(), "2.36-9+deb12u4".into()),
            ("libc6".into(), foreign.clone(), "2.36-9+deb12u4".into()),
            ("other".into(), "all".into(), "1.2-1".into()),
        ]
    );
    assert!(sb.pm.updates().unwrap().is_empty());

    // Rollback to the exact old versions; libc6 goes back on both architectures.
    let down = Operation::Downgrade(pins(&["hello=1.0-1", "libc6=2.36-9"]));
    let planned = sb.pm.dry_run(&down).unwrap();
    let applied = sb.pm.apply(&down, None).unwrap();
    assert_eq!(applied.transaction, planned);
    assert_eq!(
        items(&applied.transaction),
        [
            ("hello".into(), TxAction::Downgrade, Some("1.1-1".into()), Some("1.0-1".into())),
            ("libc6".into(), TxAction::Downgrade, Some("2.36-9+deb12u4".into()), Some("2.36-9".into())),
            ("libc6".into(), TxAction::Downgrade, Some("2.36-9+deb12u4".into()), Some("2.36-9".into())),
        ]
    );
    assert_eq!(
        sb.versions(),
        [
            ("hello".into(), "all".into(), "1.0-1".into()),
            ("libc6".into(), native.clone(), "2.36-9".into()),
            ("libc6".into(), foreign.clone(), "2.36-9".into()),
            ("other".into(), "all".into(), "1.2-1".into()),
        ]
    );

    let applied = sb.pm.apply(&Operation::Remove(vec![PackageName::parse("other").unwrap()]), None).unwrap();
    assert_eq!(items(&applied.transaction), [("other".into(), TxAction::Remove, Some("1.2-1".into()), None)]);
    assert!(sb.versions().iter().all(|(name, ..)| name != "other"));
}

#[test]
fn a_package_installed_only_for_a_foreign_architecture() {
    let sb = Sandbox::installed();
    let (native, foreign) = arches();
    sb.tool("apt-get", &["-y", "remove", &format!("libc6:{native}")]);
    assert!(sb.versions().iter().all(|(name, arch, _)| name != "libc6" || arch == foreign));
    // apt reads a bare name as the native architecture; the installed one must be named.
    let upgrade = Operation::Upgrade(UpgradeScope::Exact(pins(&["libc6=2.36-9+deb12u4"])));
    let tx = sb.pm.dry_run(&upgrade).unwrap();
    assert_eq!(items(&tx), [up("libc6", "2.36-9", "2.36-9+deb12u4")]);
    assert_eq!(tx.items[0].arch.as_deref(), Some(foreign.as_str()));
    let applied = sb.pm.apply(&Operation::Remove(vec![PackageName::parse("libc6").unwrap()]), None).unwrap();
    assert_eq!(items(&applied.transaction), [("libc6".into(), TxAction::Remove, Some("2.36-9".into()), None)]);
    assert!(sb.versions().iter().all(|(name, ..)| name != "libc6"), "{:?}", sb.versions());
}

#[test]
fn names_apt_would_read_as_patterns_are_refused() {
    let sb = Sandbox::installed();
    let before = sb.status_file();
    // To apt, `hell.` is a regular expression matching hello, and `hello-` in an install means "remove hello".
    let err = sb.pm.apply(&Operation::Remove(vec![PackageName::parse("hell.").unwrap()]), None).unwrap_err();
    assert!(matches!(err, PkgError::InvalidInput { .. }), "{err}");
    let err = sb.pm.apply(&install(&["hello-"]), None).unwrap_err();
    assert!(matches!(err, PkgError::InvalidInput { .. }), "{err}");
    let err = sb.pm.dry_run(&install(&["h.llo=1.1-1"])).unwrap_err();
    assert!(matches!(&err, PkgError::VersionUnavailable { name, .. } if name == "h.llo"), "{err}");
    assert_eq!(sb.status_file(), before, "a refused operation changed dpkg's status file");
    // Exact names are untouched by the check.
    let tx = sb.pm.dry_run(&Operation::Remove(vec![PackageName::parse("hello").unwrap()])).unwrap();
    assert_eq!(items(&tx), [("hello".into(), TxAction::Remove, Some("1.0-1".into()), None)]);
}

#[test]
fn security_and_exact_upgrades_install_only_their_packages() {
    let sb = Sandbox::installed();
    let (native, foreign) = arches();
    let applied = sb.pm.apply(&Operation::Upgrade(UpgradeScope::Security), None).unwrap();
    assert_eq!(applied.transaction.items.len(), 3);
    assert_eq!(
        sb.versions(),
        [
            ("hello".into(), "all".into(), "1.0-1".into()),
            ("libc6".into(), native.clone(), "2.36-9+deb12u4".into()),
            ("libc6".into(), foreign.clone(), "2.36-9+deb12u4".into()),
            ("other".into(), "all".into(), "1.2-1".into()),
        ]
    );
    // Nothing security-related is left: a second run plans nothing.
    assert!(sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::Security)).unwrap().is_empty());

    let applied = sb.pm.apply(&Operation::Upgrade(UpgradeScope::Exact(pins(&["hello=1.1-1"]))), None).unwrap();
    assert_eq!(items(&applied.transaction), [up("hello", "1.0-1", "1.1-1")]);
    assert_eq!(sb.versions()[0], ("hello".into(), "all".into(), "1.1-1".into()));
}

#[test]
fn unavailable_versions_and_missing_packages() {
    let sb = Sandbox::installed();
    let status_before = sb.status_file();
    let expect_unavailable = |result: Result<_, PkgError>| match result {
        Err(PkgError::VersionUnavailable { name, version }) => {
            assert_eq!((name.as_str(), version.as_str()), ("hello", "9.9-1"))
        }
        other => panic!("expected VersionUnavailable, got {other:?}"),
    };
    expect_unavailable(sb.pm.apply(&install(&["hello=9.9-1"]), None).map(|_| ()));
    expect_unavailable(sb.pm.dry_run(&install(&["hello=9.9-1"])).map(|_| ()));
    expect_unavailable(sb.pm.apply(&Operation::Downgrade(pins(&["hello=9.9-1"])), None).map(|_| ()));
    expect_unavailable(sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(pins(&["hello=9.9-1"])))).map(|_| ()));

    // A package no repository has at all, asked for at a version.
    match sb.pm.apply(&install(&["nothere=1.0-1"]), None) {
        Err(PkgError::VersionUnavailable { name, version }) => {
            assert_eq!((name.as_str(), version.as_str()), ("nothere", "1.0-1"))
        }
        other => panic!("expected VersionUnavailable, got {other:?}"),
    }
    // Without a version it is apt's own failure, naming the package.
    let err = sb.pm.dry_run(&install(&["nothere"])).unwrap_err();
    assert!(
        matches!(&err, PkgError::CommandFailed { detail, .. } if detail.contains("Unable to locate package nothere")),
        "{err}"
    );

    let err = sb.pm.apply(&Operation::Downgrade(pins(&["nothere=1.0-1"])), None).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(n) if n == "nothere"), "{err}");
    let err = sb.pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(pins(&["nothere=1.0-1"])))).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(n) if n == "nothere"), "{err}");
    let err = sb.pm.dry_run(&Operation::Remove(Vec::new())).unwrap_err();
    assert!(matches!(err, PkgError::InvalidInput { .. }), "{err}");
    assert_eq!(sb.status_file(), status_before);
}

#[test]
fn a_held_lock_gives_locked_after_lock_wait() {
    let sb = Sandbox::with_lock_wait(Duration::from_millis(1500));
    sb.pm.refresh(None).unwrap();
    sb.pm.apply(&install(&["hello=1.0-1"]), None).unwrap();

    // Hold dpkg's frontend lock the way apt and dpkg take it: an fcntl write lock.
    let lock = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(sb.root.join("var/lib/dpkg/lock-frontend"))
        .unwrap();
    rustix::fs::fcntl_lock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();

    // Read-only queries do not need the lock.
    assert_eq!(sb.pm.updates().unwrap().len(), 1);
    let op = Operation::Upgrade(UpgradeScope::All);
    assert_eq!(sb.pm.dry_run(&op).unwrap().items.len(), 1);

    let started = Instant::now();
    let err = sb.pm.apply(&op, None).unwrap_err();
    let waited = started.elapsed();
    match &err {
        PkgError::Locked { backend, detail, .. } => {
            assert_eq!(*backend, BackendKind::Apt);
            assert!(detail.contains("lock-frontend"), "{detail}");
        }
        other => panic!("expected Locked, got {other}"),
    }
    assert!(err.is_retryable());
    assert!(waited >= Duration::from_millis(700) && waited < Duration::from_secs(20), "waited {waited:?}");
    assert_eq!(sb.versions()[0].2, "1.0-1", "nothing was installed while locked");

    drop(lock);
    sb.pm.apply(&op, None).unwrap();
    assert_eq!(sb.versions()[0].2, "1.1-1");
}

#[test]
fn last_refresh_and_reboot_status() {
    let sb = Sandbox::new();
    assert_eq!(sb.pm.last_refresh().unwrap(), None, "never refreshed");
    // apt gives downloaded lists the repository's modification time: make it old,
    // so only the success stamp can tell that the refresh just happened.
    let long_ago = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800); // 2020-01-01
    for file in ["main/Packages", "main/Release", "sec/Packages", "sec/Release"] {
        fs::File::options().write(true).open(sb.work.join(file)).unwrap().set_modified(long_ago).unwrap();
    }
    let before = jiff::Timestamp::now();
    let mut lines = Vec::new();
    let mut sink = |_: patchdeck_pkg::exec::Stream, line: &str| lines.push(line.to_owned());
    sb.pm.refresh(Some(&mut sink)).unwrap();
    assert!(lines.iter().any(|l| l.contains("Reading package lists")), "{lines:?}");
    let refreshed = sb.pm.last_refresh().unwrap().expect("refreshed");
    // Whole seconds: the file system may round the stamp's time down.
    assert!(refreshed.as_second() >= before.as_second(), "{refreshed} < {before}");
    let stamp = sb.root.join("var/lib/apt/periodic/update-success-stamp");
    assert!(stamp.exists());
    // Without the stamp, the lists' (old) times are all there is.
    fs::remove_file(&stamp).unwrap();
    let from_lists = sb.pm.last_refresh().unwrap().expect("lists exist");
    assert_eq!(from_lists.as_second(), 1_577_836_800, "{from_lists}");

    // A repository that cannot be read fails the refresh instead of warning.
    fs::remove_file(sb.work.join("sec/Packages")).unwrap();
    fs::remove_file(sb.work.join("sec/Release")).unwrap();
    let err = sb.pm.refresh(None).unwrap_err();
    assert!(matches!(err, PkgError::CommandFailed { .. }), "{err}");

    let status = sb.pm.reboot_status().unwrap();
    assert!(!status.required, "{status:?}");
    fs::create_dir_all(sb.root.join("var/run")).unwrap();
    fs::write(sb.root.join("var/run/reboot-required"), "").unwrap();
    assert!(sb.pm.reboot_status().unwrap().required);
}
