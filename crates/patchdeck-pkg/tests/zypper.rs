//! The zypper backend against the real zypper, on throw-away roots.
//!
//! Each test builds its own repository and root in a tempdir
//! (`data/rpm/sandbox.rs`), adds the repository with `zypper --root R
//! addrepo -G` (gpg checks off for this sandbox repository only: the backend
//! never turns them off), and drives the backend only through
//! `patchdeck_pkg::open(BackendKind::Zypper, …)`.

#[path = "data/rpm/sandbox.rs"]
mod sandbox;

use std::process::Command;
use std::time::Duration;

use patchdeck_pkg::{open, BackendOptions, Operation, PackageManager, PackageName, PkgError, UpgradeScope};
use patchdeck_proto::{BackendKind, SecurityClass, TxAction};
use sandbox::{pin, rows, spec, versions, RpmSandbox};

struct Zypper {
    sandbox: RpmSandbox,
    pm: Box<dyn PackageManager>,
}

/// A sandbox with the repository added, metadata refreshed, and hello 1.0-1
/// and other 1:1.0-1 installed through the backend.
fn setup() -> Zypper {
    sandbox::require("zypper", "zypper");
    sandbox::require("rpm", "rpm");
    let sandbox = RpmSandbox::new();
    // zypper logs to the host's /var/log/zypper.log even with --root: keep the log in the sandbox.
    let log = ("ZYPP_LOGFILE".to_owned(), sandbox.path("zypper.log").display().to_string());
    sandbox::run(
        Command::new("zypper")
            .env(&log.0, &log.1)
            .arg("--root")
            .arg(sandbox.root())
            .args(["--non-interactive", "--quiet", "addrepo", "-G"])
            .arg(format!("file://{}", sandbox.repo().display()))
            .arg("testrepo"),
    );
    let options = BackendOptions {
        env: sandbox.env().into_iter().chain([log]).collect(),
        query_timeout: Duration::from_secs(60),
        refresh_timeout: Duration::from_secs(60),
        transaction_timeout: Duration::from_secs(60),
        lock_wait: Duration::from_secs(1),
        ..BackendOptions::with_root(sandbox.root())
    };
    let pm = open(BackendKind::Zypper, options);
    assert_eq!(pm.kind(), BackendKind::Zypper);
    assert_eq!(pm.last_refresh().unwrap(), None, "never refreshed");
    pm.refresh(None).unwrap();
    assert!(pm.last_refresh().unwrap().is_some(), "refresh leaves metadata behind");
    pm.apply(&Operation::Install(vec![spec("hello=1.0-1"), spec("other=1:1.0-1")]), None).unwrap();
    Zypper { sandbox, pm }
}

#[test]
fn inventory_updates_and_dry_runs() {
    let Zypper { sandbox: _sandbox, pm } = setup();

    let installed = pm.installed().unwrap();
    assert_eq!(installed.len(), 2, "{installed:?}");
    let hello = &installed[0];
    assert_eq!((hello.name.as_str(), hello.version.as_str(), hello.arch.as_str()), ("hello", "1.0-1", "noarch"));
    assert_eq!(hello.source_package.as_deref(), Some("hello-src"));
    assert_eq!(hello.source_version.as_deref(), Some("1.0-1"));
    assert_eq!(hello.origin, None, "zypper does not record where a package came from");
    assert_eq!(hello.size_bytes, Some(4));
    assert!(hello.installed_at.is_some());
    let other = &installed[1];
    assert_eq!((other.name.as_str(), other.version.as_str()), ("other", "1:1.0-1"));

    let updates = pm.updates().unwrap();
    assert_eq!(updates.len(), 2, "{updates:#?}");
    let (hello, other) = (&updates[0], &updates[1]);
    assert_eq!(
        (hello.name.as_str(), hello.current_version.as_str(), hello.candidate_version.as_str()),
        ("hello", "1.0-1", "1.1-1")
    );
    assert_eq!(hello.repository.as_deref(), Some("testrepo"));
    assert_eq!(hello.security.class, SecurityClass::NotSecurity, "{}", hello.security.reason);
    assert_eq!(hello.security.reason, "no needed patch covers hello after 1.0-1 up to 1.1-1");
    assert!(hello.cves.is_empty());
    assert_eq!(
        (other.name.as_str(), other.current_version.as_str(), other.candidate_version.as_str()),
        ("other", "1:1.0-1", "1:1.2-1")
    );
    assert_eq!(other.security.class, SecurityClass::Security);
    assert_eq!(
        other.security.reason,
        "patch TEST-SA-1 (category security, severity important) fixes other-1:1.2-1 (1:1.0-1 installed, candidate 1:1.2-1)"
    );
    assert_eq!(other.security.advisory_id.as_deref(), Some("TEST-SA-1"));
    assert_eq!(other.security.severity.as_deref(), Some("important"), "zypper lower-cases severities");
    assert_eq!(other.cves, ["CVE-2026-0001"]);
    assert!(!other.reboot_likely);

    let before = versions(&*pm);
    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).unwrap();
    assert_eq!(rows(&tx), ["upgrade hello 1.0-1 -> 1.1-1 (noarch)", "upgrade other 1:1.0-1 -> 1:1.2-1 (noarch)"]);
    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::Security)).unwrap();
    assert_eq!(rows(&tx), ["upgrade other 1:1.0-1 -> 1:1.2-1 (noarch)"]);
    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("hello=1.1-1")]))).unwrap();
    assert_eq!(rows(&tx), ["upgrade hello 1.0-1 -> 1.1-1 (noarch)"]);
    let tx = pm.dry_run(&Operation::Remove(vec![PackageName::parse("other").unwrap()])).unwrap();
    assert_eq!(rows(&tx), ["remove other 1:1.0-1 -> - (noarch)"]);
    let err = pm.dry_run(&Operation::Downgrade(vec![pin("hello=0.9-1")])).unwrap_err();
    assert!(
        matches!(&err, PkgError::VersionUnavailable { name, version } if name == "hello" && version == "0.9-1"),
        "{err}"
    );
    assert_eq!(versions(&*pm), before, "dry runs change nothing");
    assert_eq!(pm.updates().unwrap().len(), 2);

    let status = pm.reboot_status().unwrap();
    assert!(!status.required, "{status:?}");
}

#[test]
fn upgrade_downgrade_and_remove_for_real() {
    let Zypper { sandbox: _sandbox, pm } = setup();

    let applied = pm.apply(&Operation::Upgrade(UpgradeScope::All), None).unwrap();
    assert_eq!(applied.transaction.items.len(), 2);
    assert!(applied.transaction.items.iter().all(|i| i.action == TxAction::Upgrade));
    assert_eq!(versions(&*pm), ["hello 1.1-1", "other 1:1.2-1"]);
    assert!(pm.updates().unwrap().is_empty());

    let rollback = Operation::Downgrade(vec![pin("hello=1.0-1"), pin("other=1:1.0-1")]);
    let tx = pm.dry_run(&rollback).unwrap();
    assert_eq!(rows(&tx), ["downgrade hello 1.1-1 -> 1.0-1 (noarch)", "downgrade other 1:1.2-1 -> 1:1.0-1 (noarch)"]);
    assert_eq!(versions(&*pm), ["hello 1.1-1", "other 1:1.2-1"], "the dry run changed nothing");
    pm.apply(&rollback, None).unwrap();
    assert_eq!(versions(&*pm), ["hello 1.0-1", "other 1:1.0-1"]);

    let applied = pm.apply(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("other=1:1.2-1")])), None).unwrap();
    assert_eq!(rows(&applied.transaction), ["upgrade other 1:1.0-1 -> 1:1.2-1 (noarch)"]);
    assert_eq!(versions(&*pm), ["hello 1.0-1", "other 1:1.2-1"]);

    let applied = pm.apply(&Operation::Remove(vec![PackageName::parse("other").unwrap()]), None).unwrap();
    assert_eq!(rows(&applied.transaction), ["remove other 1:1.2-1 -> - (noarch)"]);
    assert_eq!(versions(&*pm), ["hello 1.0-1"]);

    let err = pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("other=1:1.2-1")]))).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(name) if name == "other"), "{err}");
}

#[test]
fn unavailable_versions_and_lock_contention() {
    let Zypper { sandbox, pm } = setup();

    for op in [
        Operation::Install(vec![spec("hello=9.9-1")]),
        Operation::Upgrade(UpgradeScope::Exact(vec![pin("hello=9.9-1")])),
    ] {
        let err = pm.apply(&op, None).unwrap_err();
        assert!(
            matches!(&err, PkgError::VersionUnavailable { name, version } if name == "hello" && version == "9.9-1"),
            "{op}: {err}"
        );
    }
    assert_eq!(versions(&*pm), ["hello 1.0-1", "other 1:1.0-1"]);

    // libzypp's lock: <root>/run/zypp.pid naming a live process (this test).
    let lock = sandbox.root().join("run/zypp.pid");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let started = std::time::Instant::now();
    let err = pm.apply(&Operation::Upgrade(UpgradeScope::All), None).unwrap_err();
    assert!(matches!(&err, PkgError::Locked { backend: BackendKind::Zypper, .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("System management is locked"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "gave up after lock_wait");
    std::fs::remove_file(&lock).unwrap();
    pm.apply(&Operation::Upgrade(UpgradeScope::Security), None).unwrap();
    assert_eq!(versions(&*pm), ["hello 1.0-1", "other 1:1.2-1"], "security upgrade leaves hello alone");
}
