//! The apk backend on throw-away roots.
//!
//! There is no apk-tools binary for Debian (see the sandbox reference, section
//! E), so these tests exercise everything that needs none: the installed
//! database and world file of a realistic Alpine root read through
//! `open(BackendKind::Apk, ..)`, the checks made before apk would run, the
//! refresh time from the index cache, and the error a missing `apk` gives.
//! The command-output parsers are tested on recorded-format fixtures in the
//! module's unit tests (`src/apk.rs`, `tests/data/apk/`).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use patchdeck_pkg::{open, BackendOptions, Operation, PackageManager, PackageName, Pin, PkgError, UpgradeScope};
use patchdeck_proto::BackendKind;

/// A fixture from `tests/data/apk/`, without its leading `#` comment block.
fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/apk").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body: Vec<&str> = text.lines().skip_while(|l| l.starts_with('#')).collect();
    body.join("\n") + "\n"
}

struct Root {
    dir: tempfile::TempDir,
    /// A directory with no programs: `PATH` for the backend, so that `apk`
    /// is missing whatever the machine has installed.
    empty_bin: PathBuf,
}

impl Root {
    /// An Alpine-like root with the given installed database and world file.
    fn new(installed: &str, world: &str) -> Root {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("lib/apk/db")).unwrap();
        fs::create_dir_all(root.join("etc/apk")).unwrap();
        fs::write(root.join("lib/apk/db/installed"), installed).unwrap();
        fs::write(root.join("etc/apk/world"), world).unwrap();
        fs::write(root.join("etc/apk/repositories"), "https://dl-cdn.alpinelinux.org/alpine/v3.19/main\n").unwrap();
        let empty_bin = dir.path().join("bin");
        fs::create_dir_all(&empty_bin).unwrap();
        Root { dir, empty_bin }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn backend(&self) -> Box<dyn PackageManager> {
        let options = BackendOptions {
            env: vec![("PATH".to_owned(), self.empty_bin.display().to_string())],
            ..BackendOptions::with_root(self.path())
        };
        open(BackendKind::Apk, options)
    }
}

fn realistic() -> Root {
    Root::new(&fixture("installed"), &fixture("world"))
}

#[test]
fn installed_packages_from_the_database() {
    let root = realistic();
    let pm = root.backend();
    assert_eq!(pm.kind(), BackendKind::Apk);
    let installed = pm.installed().unwrap();
    let names: Vec<(&str, &str, &str)> =
        installed.iter().map(|p| (p.name.as_str(), p.version.as_str(), p.arch.as_str())).collect();
    assert_eq!(
        names,
        [
            ("busybox", "1.36.1-r15", "x86_64"),
            ("hello", "2.0_rc1-r10", "x86_64"),
            ("libcrypto3", "3.1.4-r5", "x86_64"),
            ("musl", "1.2.4_git20230717-r4", "x86_64"),
            ("ncurses-terminfo-base", "6.4_p20231125-r0", "x86_64"),
            ("openssh-client-default", "9.6_p1-r0", "x86_64"),
            ("tzdata", "2024a-r0", "noarch"),
        ],
        "sorted by name"
    );
    let get = |n: &str| installed.iter().find(|p| p.name == n).unwrap();
    let crypto = get("libcrypto3");
    assert_eq!(crypto.source_package.as_deref(), Some("openssl"), "apk origin");
    assert_eq!(crypto.source_version, None);
    assert_eq!(crypto.size_bytes, Some(4_972_544));
    assert_eq!(crypto.installed_at, None, "apk does not record install times");
    assert_eq!(crypto.origin, None, "nor the repository");
    assert_eq!(get("openssh-client-default").source_package.as_deref(), Some("openssh"));
    assert_eq!(get("hello").source_package.as_deref(), Some("hello-src"));

    // world: hello@edge=…, openssl~3.1 (not installed under that name), tzdata<2025, musl><checksum.
    let held: Vec<&str> = installed.iter().filter(|p| p.held).map(|p| p.name.as_str()).collect();
    assert_eq!(held, ["hello", "musl", "tzdata"]);
}

#[test]
fn a_malformed_database_is_a_parse_error_naming_file_and_line() {
    let root = Root::new(&fixture("installed-malformed"), "busybox\n");
    let err = root.backend().installed().unwrap_err();
    let PkgError::Parse { command, line_no, line, .. } = &err else { panic!("expected a parse error, got {err}") };
    assert!(command.ends_with("lib/apk/db/installed"), "{err}");
    assert_eq!((*line_no, line.as_str()), (14, "garbage without a field"));
}

#[test]
fn a_missing_database_is_an_io_error() {
    let root = realistic();
    fs::remove_file(root.path().join("lib/apk/db/installed")).unwrap();
    let err = root.backend().installed().unwrap_err();
    assert!(matches!(err, PkgError::Io { .. }), "{err}");
    assert!(err.to_string().contains("lib/apk/db/installed"), "{err}");
}

#[test]
fn without_apk_installed_commands_fail_naming_apk() {
    let root = realistic();
    let pm = root.backend();
    let err = pm.updates().unwrap_err();
    assert!(matches!(&err, PkgError::Spawn { program, .. } if program == "apk"), "{err}");
    assert!(err.to_string().starts_with("could not start `apk`"), "{err}");
    for result in [
        pm.refresh(None).map(|_| ()),
        pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).map(|_| ()),
        pm.dry_run(&Operation::Downgrade(vec![Pin::new("hello", "2.0_rc1-r9").unwrap()])).map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(matches!(&err, PkgError::Spawn { program, .. } if program == "apk"), "{err}");
    }
}

#[test]
fn checks_made_before_apk_runs() {
    let root = realistic();
    let pm = root.backend();
    let err = pm.dry_run(&Operation::Upgrade(UpgradeScope::Security)).unwrap_err();
    assert!(matches!(err, PkgError::Unsupported { backend: BackendKind::Apk, .. }), "{err}");
    let err = pm.apply(&Operation::Upgrade(UpgradeScope::Security), None).unwrap_err();
    assert!(matches!(err, PkgError::Unsupported { .. }), "{err}");
    let err = pm.dry_run(&Operation::Remove(vec![PackageName::parse("nano").unwrap()])).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(n) if n == "nano"), "{err}");
    let err = pm.apply(&Operation::Downgrade(vec![Pin::new("curl", "8.5.0-r0").unwrap()]), None).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(n) if n == "curl"), "{err}");
    let err =
        pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(vec![Pin::new("vim", "9.0-r0").unwrap()]))).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(n) if n == "vim"), "{err}");
    let err = pm.dry_run(&Operation::Install(vec![])).unwrap_err();
    assert!(matches!(err, PkgError::InvalidInput { .. }), "{err}");
}

#[test]
fn last_refresh_is_the_newest_cached_index() {
    let root = realistic();
    let pm = root.backend();
    assert_eq!(pm.last_refresh().unwrap(), None, "never refreshed");

    let stamp = |path: PathBuf, age: u64| {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age);
        fs::File::options().write(true).open(&path).unwrap().set_modified(when).unwrap();
        jiff::Timestamp::try_from(when).unwrap()
    };
    let main = stamp(root.path().join("var/cache/apk/APKINDEX.6b3d8f0c.tar.gz"), 3600);
    // Not an index: ignored.
    stamp(root.path().join("var/cache/apk/hello-2.0_rc1-r10.4a5b6c7d.apk"), 10);
    assert_eq!(pm.last_refresh().unwrap(), Some(main));
    // A package cache linked at /etc/apk/cache holds the indexes too.
    let community = stamp(root.path().join("etc/apk/cache/APKINDEX.00c0ffee.tar.gz"), 60);
    assert_eq!(pm.last_refresh().unwrap(), Some(community));
}

#[test]
fn reboot_status_of_a_root_without_evidence() {
    let root = realistic();
    let status = root.backend().reboot_status().unwrap();
    assert!(!status.required);
    assert_eq!(status.running_kernel, None, "a separate root has no running kernel");
    fs::create_dir_all(root.path().join("run")).unwrap();
    fs::write(root.path().join("run/reboot-required"), "").unwrap();
    assert!(root.backend().reboot_status().unwrap().required);
}
