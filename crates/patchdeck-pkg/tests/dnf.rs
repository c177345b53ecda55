//! The dnf backend against the real dnf, on throw-away install roots.
//!
//! Each test builds its own repository and root in a tempdir
//! (`data/rpm/sandbox.rs`) and drives the backend only through
//! `patchdeck_pkg::open(BackendKind::Dnf, …)`. The sandbox's `dnf.conf` turns
//! off gpg checks and plugins and reads no host repositories; the backend
//! itself never does either.

#[path = "data/rpm/sandbox.rs"]
mod sandbox;

use std::time::Duration;

use patchdeck_pkg::{open, BackendOptions, Operation, PackageManager, PackageName, PkgError, UpgradeScope};
use patchdeck_proto::{BackendKind, SecurityClass, TxAction};
use sandbox::{pin, rows, spec, versions, RpmSandbox};

struct Dnf {
    sandbox: RpmSandbox,
    pm: Box<dyn PackageManager>,
}

/// A sandbox with dnf configured, metadata refreshed, and hello 1.0-1 and
/// other 1:1.0-1 installed through the backend.
fn setup() -> Dnf {
    sandbox::require("dnf", "dnf");
    sandbox::require("rpm", "rpm");
    let sandbox = RpmSandbox::new();
    let conf = sandbox.path("dnf.conf");
    std::fs::write(
        &conf,
        format!(
            "[main]\ngpgcheck=0\nplugins=0\nreposdir=/dev/null\ninstall_weak_deps=0\nmetadata_expire=0\n\
             [local]\nname=local test repo\nbaseurl=file://{}\n",
            sandbox.repo().display()
        ),
    )
    .unwrap();
    let options = BackendOptions {
        config_file: Some(conf),
        releasever: Some("1".to_owned()),
        env: sandbox.env(),
        query_timeout: Duration::from_secs(60),
        refresh_timeout: Duration::from_secs(60),
        transaction_timeout: Duration::from_secs(60),
        lock_wait: Duration::from_secs(1),
        ..BackendOptions::with_root(sandbox.root())
    };
    let pm = open(BackendKind::Dnf, options);
    assert_eq!(pm.kind(), BackendKind::Dnf);
    assert_eq!(pm.last_refresh().unwrap(), None, "never refreshed");
    pm.refresh(None).unwrap();
    assert!(pm.last_refresh().unwrap().is_some(), "refresh leaves metadata behind");
    pm.apply(&Operation::Install(vec![spec("hello=1.0-1"), spec("other=1:1.0-1")]), None).unwrap();
    Dnf { sandbox, pm }
}

#[test]
fn inventory_updates_and_dry_runs() {
    let Dnf { sandbox: _sandbox, pm } = setup();

    let installed = pm.installed().unwrap();
    assert_eq!(installed.len(), 2, "{installed:?}");
    let hello = &installed[0];
    assert_eq!((hello.name.as_str(), hello.version.as_str(), hello.arch.as_str()), ("hello", "1.0-1", "noarch"));
    assert_eq!(hello.source_package.as_deref(), Some("hello-src"));
    assert_eq!(hello.source_version.as_deref(), Some("1.0-1"));
    assert_eq!(hello.origin.as_deref(), Some("local"), "from dnf's history database");
    assert_eq!(hello.size_bytes, Some(4), "the file holds \"1.0\\n\"");
    assert!(hello.installed_at.is_some());
    assert!(!hello.held);
    let other = &installed[1];
    assert_eq!((other.name.as_str(), other.version.as_str()), ("other", "1:1.0-1"));
    assert_eq!(other.source_package.as_deref(), Some("other"));

    let updates = pm.updates().unwrap();
    assert_eq!(updates.len(), 2, "{updates:#?}");
    let (hello, other) = (&updates[0], &updates[1]);
    assert_eq!(
        (hello.name.as_str(), hello.current_version.as_str(), hello.candidate_version.as_str()),
        ("hello", "1.0-1", "1.1-1")
    );
    assert_eq!(hello.repository.as_deref(), Some("local"));
    assert_eq!(hello.security.class, SecurityClass::NotSecurity, "{}", hello.security.reason);
    assert_eq!(hello.security.reason, "no advisory in the updateinfo metadata covers hello after 1.0-1 up to 1.1-1");
    assert!(hello.cves.is_empty());
    assert!(!hello.reboot_likely);
    assert_eq!(
        (other.name.as_str(), other.current_version.as_str(), other.candidate_version.as_str()),
        ("other", "1:1.0-1", "1:1.2-1")
    );
    assert_eq!(other.security.class, SecurityClass::Security);
    assert_eq!(
        other.security.reason,
        "advisory TEST-SA-1 (type security, severity Important) fixes other-1:1.2-1 (1:1.0-1 installed, candidate 1:1.2-1)"
    );
    assert_eq!(other.security.advisory_id.as_deref(), Some("TEST-SA-1"));
    assert_eq!(other.security.severity.as_deref(), Some("Important"));
    assert_eq!(other.cves, ["CVE-2026-0001"]);

    let before = versions(&*pm);
    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::All)).unwrap();
    assert_eq!(rows(&tx), ["upgrade hello 1.0-1 -> 1.1-1 (noarch)", "upgrade other 1:1.0-1 -> 1:1.2-1 (noarch)"]);
    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::Security)).unwrap();
    assert_eq!(rows(&tx), ["upgrade other 1:1.0-1 -> 1:1.2-1 (noarch)"]);
    let tx = pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("hello=1.1-1")]))).unwrap();
    assert_eq!(rows(&tx), ["upgrade hello 1.0-1 -> 1.1-1 (noarch)"]);
    let tx = pm.dry_run(&Operation::Remove(vec![PackageName::parse("other").unwrap()])).unwrap();
    assert_eq!(rows(&tx), ["remove other 1:1.0-1 -> - (noarch)"]);
    // Nothing older than 1.0-1 exists: a downgrade to it is a no-op, to 0.9 unavailable.
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
    let Dnf { sandbox: _sandbox, pm } = setup();

    let applied = pm.apply(&Operation::Upgrade(UpgradeScope::All), None).unwrap();
    assert_eq!(applied.transaction.items.len(), 2);
    assert!(applied.transaction.items.iter().all(|i| i.action == TxAction::Upgrade));
    assert_eq!(versions(&*pm), ["hello 1.1-1", "other 1:1.2-1"]);
    assert!(pm.updates().unwrap().is_empty());
    assert_eq!(pm.installed().unwrap()[0].source_version.as_deref(), Some("1.1-1"));

    // Rollback to the exact old versions, epoch included.
    let rollback = Operation::Downgrade(vec![pin("hello=1.0-1"), pin("other=1:1.0-1")]);
    let tx = pm.dry_run(&rollback).unwrap();
    assert_eq!(rows(&tx), ["downgrade hello 1.1-1 -> 1.0-1 (noarch)", "downgrade other 1:1.2-1 -> 1:1.0-1 (noarch)"]);
    assert_eq!(versions(&*pm), ["hello 1.1-1", "other 1:1.2-1"], "the dry run changed nothing");
    pm.apply(&rollback, None).unwrap();
    assert_eq!(versions(&*pm), ["hello 1.0-1", "other 1:1.0-1"]);

    // An exact upgrade installs that version and nothing else.
    let applied = pm.apply(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("other=1:1.2-1")])), None).unwrap();
    assert_eq!(rows(&applied.transaction), ["upgrade other 1:1.0-1 -> 1:1.2-1 (noarch)"]);
    assert_eq!(versions(&*pm), ["hello 1.0-1", "other 1:1.2-1"]);

    let applied = pm.apply(&Operation::Remove(vec![PackageName::parse("other").unwrap()]), None).unwrap();
    assert_eq!(rows(&applied.transaction), ["remove other 1:1.2-1 -> - (noarch)"]);
    assert_eq!(versions(&*pm), ["hello 1.0-1"]);

    let err = pm.dry_run(&Operation::Upgrade(UpgradeScope::Exact(vec![pin("other=1:1.2-1")]))).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(name) if name == "other"), "{err}");
    let err = pm.apply(&Operation::Downgrade(vec![pin("other=1:1.0-1")]), None).unwrap_err();
    assert!(matches!(&err, PkgError::NotInstalled(name) if name == "other"), "{err}");
}

#[test]
fn unavailable_versions_and_lock_contention() {
    let Dnf { sandbox, pm } = setup();

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

    // dnf's rpmdb lock: a pid file whose process is alive (this test).
    let lock = sandbox.root().join("var/lib/dnf/rpmdb_lock.pid");
    std::fs::write(&lock, std::process::id().to_string()).unwrap();
    let started = std::time::Instant::now();
    let err = pm.apply(&Operation::Upgrade(UpgradeScope::All), None).unwrap_err();
    assert!(matches!(&err, PkgError::Locked { backend: BackendKind::Dnf, .. }), "{err}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("already locked by"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "gave up after lock_wait");
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(versions(&*pm), ["hello 1.0-1", "other 1:1.0-1"]);

    // The metadata lock (held while another dnf loads or refreshes metadata):
    // queries wait for it too, then report the retryable Locked.
    let lock = sandbox.root().join("var/cache/dnf/metadata_lock.pid");
    std::fs::write(&lock, std::process::id().to_string()).unwrap();
    let err = pm.updates().unwrap_err();
    assert!(matches!(&err, PkgError::Locked { backend: BackendKind::Dnf, .. }), "{err}");
    std::fs::remove_file(&lock).unwrap();
    assert_eq!(pm.updates().unwrap().len(), 2);

    pm.apply(&Operation::Upgrade(UpgradeScope::Security), None).unwrap();
    assert_eq!(versions(&*pm), ["hello 1.0-1", "other 1:1.2-1"], "security upgrade leaves hello alone");
}
