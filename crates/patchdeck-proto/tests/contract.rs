//! Pins the JSON field names and enum spellings of the scan report: they are
//! a documented, stable interface (`docs/scan-json.md`). A failure here means
//! the schema changed: bump `SCAN_SCHEMA_VERSION` and update the docs.

use patchdeck_proto::*;
use patchdeck_version::VersionFormat;
use proptest::prelude::*;
use serde_json::json;

fn sample() -> ScanReport {
    ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at: "2026-11-23T12:00:00Z".parse().unwrap(),
        os: OsInfo {
            id: "debian".into(),
            id_like: vec![],
            version_id: Some("12".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            kernel: Some("6.1.0-18-amd64".into()),
            arch: Some("x86_64".into()),
        },
        backend: BackendKind::Apt,
        version_format: VersionFormat::Deb,
        last_refresh: Some("2026-11-23T11:00:00Z".parse().unwrap()),
        installed: vec![InstalledPackage {
            name: "libssl3".into(),
            version: "3.0.11-1~deb12u2".into(),
            arch: "amd64".into(),
            source_package: Some("openssl".into()),
            source_version: None,
            origin: Some("Debian:bookworm".into()),
            installed_at: Some("2026-01-02T03:04:05Z".parse().unwrap()),
            size_bytes: Some(6_400_000),
            held: false,
        }],
        updates: vec![AvailableUpdate {
            name: "libssl3".into(),
            arch: "amd64".into(),
            current_version: "3.0.11-1~deb12u2".into(),
            candidate_version: "3.0.13-1~deb12u1".into(),
            repository: Some("Debian-Security:bookworm-security".into()),
            security: SecurityInfo {
                class: SecurityClass::Security,
                reason: "candidate 3.0.13-1~deb12u1 comes from suite bookworm-security".into(),
                advisory_id: Some("DSA-5678-1".into()),
                severity: None,
            },
            cves: vec!["CVE-2024-0727".into()],
            reboot_likely: false,
        }],
        reboot: RebootStatus {
            required: true,
            reasons: vec!["/var/run/reboot-required exists".into()],
            packages: vec!["linux-image-6.1.0-20-amd64".into()],
            running_kernel: Some("6.1.0-18-amd64".into()),
            newest_kernel: Some("6.1.0-20-amd64".into()),
        },
    }
}

#[test]
fn scan_report_json_is_pinned() {
    let expected = json!({
        "schema_version": 1,
        "scanned_at": "2026-11-23T12:00:00Z",
        "os": {
            "id": "debian", "id_like": [], "version_id": "12",
            "pretty_name": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0-18-amd64", "arch": "x86_64"
        },
        "backend": "apt",
        "version_format": "deb",
        "last_refresh": "2026-11-23T11:00:00Z",
        "installed": [{
            "name": "libssl3", "version": "3.0.11-1~deb12u2", "arch": "amd64",
            "source_package": "openssl", "source_version": null, "origin": "Debian:bookworm",
            "installed_at": "2026-01-02T03:04:05Z", "size_bytes": 6400000, "held": false
        }],
        "updates": [{
            "name": "libssl3", "arch": "amd64",
            "current_version": "3.0.11-1~deb12u2", "candidate_version": "3.0.13-1~deb12u1",
            "repository": "Debian-Security:bookworm-security",
            "security": {
                "class": "security",
                "reason": "candidate 3.0.13-1~deb12u1 comes from suite bookworm-security",
                "advisory_id": "DSA-5678-1", "severity": null
            },
            "cves": ["CVE-2024-0727"],
            "reboot_likely": false
        }],
        "reboot": {
            "required": true, "reasons": ["/var/run/reboot-required exists"],
            "packages": ["linux-image-6.1.0-20-amd64"],
            "running_kernel": "6.1.0-18-amd64", "newest_kernel": "6.1.0-20-amd64"
        }
    });
    assert_eq!(serde_json::to_value(sample()).unwrap(), expected);
    let back: ScanReport = serde_json::from_value(expected).unwrap();
    assert_eq!(back, sample());
}

#[test]
fn enum_spellings_are_pinned() {
    let s = |v: serde_json::Value| v.as_str().unwrap().to_owned();
    let classes: Vec<String> = [SecurityClass::Security, SecurityClass::NotSecurity, SecurityClass::Unknown]
        .into_iter()
        .map(|c| s(serde_json::to_value(c).unwrap()))
        .collect();
    assert_eq!(classes, ["security", "not_security", "unknown"]);
    let actions: Vec<String> =
        [TxAction::Install, TxAction::Upgrade, TxAction::Downgrade, TxAction::Reinstall, TxAction::Remove]
            .into_iter()
            .map(|a| s(serde_json::to_value(a).unwrap()))
            .collect();
    assert_eq!(actions, ["install", "upgrade", "downgrade", "reinstall", "remove"]);
    for kind in BackendKind::ALL {
        assert_eq!(s(serde_json::to_value(kind).unwrap()), kind.as_str());
        assert_eq!(kind.as_str().parse::<BackendKind>().unwrap(), kind);
    }
    assert_eq!(
        "emerge".parse::<BackendKind>().unwrap_err().to_string(),
        "unknown package manager \"emerge\" (expected one of: apt, dnf, yum, zypper, pacman, apk)"
    );
}

#[test]
fn transaction_json_is_pinned() {
    let tx = Transaction {
        items: vec![TxItem {
            name: "hello".into(),
            action: TxAction::Downgrade,
            from: Some("1.1-1".into()),
            to: Some("1.0-1".into()),
            arch: Some("all".into()),
        }],
    };
    assert_eq!(
        serde_json::to_value(&tx).unwrap(),
        json!({"items": [{"name": "hello", "action": "downgrade", "from": "1.1-1", "to": "1.0-1", "arch": "all"}]})
    );
}

#[test]
fn unknown_fields_are_refused() {
    let mut value = serde_json::to_value(sample()).unwrap();
    value["updates"][0]["allow_reboot"] = json!(true);
    let err = serde_json::from_value::<ScanReport>(value).unwrap_err();
    assert!(err.to_string().contains("unknown field `allow_reboot`"), "{err}");
}

fn arb_update() -> impl Strategy<Value = AvailableUpdate> {
    (
        "[a-z0-9][a-z0-9+.-]{0,20}",
        "[0-9][0-9.:~+-]{0,12}",
        "[0-9][0-9.:~+-]{0,12}",
        prop::option::of("[A-Za-z-]{1,12}:[a-z-]{1,12}"),
        prop_oneof![Just(SecurityClass::Security), Just(SecurityClass::NotSecurity), Just(SecurityClass::Unknown)],
        ".{0,40}",
        prop::collection::vec("CVE-20[0-9]{2}-[0-9]{4,6}", 0..3),
        any::<bool>(),
    )
        .prop_map(|(name, current, candidate, repository, class, reason, cves, reboot_likely)| AvailableUpdate {
            name,
            arch: "amd64".into(),
            current_version: current,
            candidate_version: candidate,
            repository,
            security: SecurityInfo::new(class, reason),
            cves,
            reboot_likely,
        })
}

proptest! {
    #[test]
    fn every_update_round_trips(update in arb_update()) {
        let text = serde_json::to_string(&update).unwrap();
        let back: AvailableUpdate = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, update);
    }
}
