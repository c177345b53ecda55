//! The pull protocol's JSON is a contract between agent and manager versions: pinned here.

use patchdeck_proto::agent::*;
use patchdeck_proto::{
    AvailableUpdate, BackendKind, InstalledPackage, OsInfo, RebootStatus, ScanReport, SecurityClass, SecurityInfo,
    TxAction, SCAN_SCHEMA_VERSION,
};
use patchdeck_version::VersionFormat;
use serde_json::json;
use uuid::Uuid;

fn report() -> ScanReport {
    ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at: "2026-11-23T12:00:00Z".parse().unwrap(),
        os: OsInfo { id: "debian".into(), version_id: Some("12".into()), ..OsInfo::default() },
        backend: BackendKind::Apt,
        version_format: VersionFormat::Deb,
        last_refresh: None,
        installed: ["curl", "bash", "libssl3"]
            .iter()
            .map(|name| InstalledPackage {
                name: (*name).into(),
                version: "1.0-1".into(),
                arch: "amd64".into(),
                source_package: None,
                source_version: None,
                origin: None,
                installed_at: None,
                size_bytes: None,
                held: false,
            })
            .collect(),
        updates: vec![AvailableUpdate {
            name: "libssl3".into(),
            arch: "amd64".into(),
            current_version: "1.0-1".into(),
            candidate_version: "1.0-2".into(),
            repository: None,
            security: SecurityInfo::new(SecurityClass::Security, "from bookworm-security"),
            cves: vec![],
            reboot_likely: false,
        }],
        reboot: RebootStatus::default(),
    }
}

#[test]
fn inventory_hash_ignores_scan_times_and_order_but_not_content() {
    let a = report();
    let hash = inventory_hash(&a);
    assert!(hash.starts_with("sha256:") && hash.len() == 7 + 64, "{hash}");

    let mut later = a.clone();
    later.scanned_at = "2026-11-24T12:00:00Z".parse().unwrap();
    later.last_refresh = Some("2026-11-24T11:00:00Z".parse().unwrap());
    later.installed.reverse();
    assert_eq!(inventory_hash(&later), hash, "timestamps and order do not change the hash");

    let mut upgraded = a.clone();
    upgraded.installed[2].version = "1.0-2".into();
    assert_ne!(inventory_hash(&upgraded), hash);
    let mut reboot = a;
    reboot.reboot.required = true;
    assert_ne!(inventory_hash(&reboot), hash);
}

#[test]
fn command_payload_json_is_pinned() {
    let id = Uuid::from_u128(1);
    let payload = CommandPayload {
        command_id: id,
        host_id: 7,
        machine_id: "0123456789abcdef0123456789abcdef".into(),
        issued_at: "2026-11-23T12:00:00Z".parse().unwrap(),
        command: Command::Upgrade {
            selection: Selection::Packages { packages: vec!["libssl3=3.0.13-1~deb12u1".into()] },
            dry_run: false,
        },
    };
    assert_eq!(
        serde_json::to_value(&payload).unwrap(),
        json!({
            "command_id": "00000000-0000-0000-0000-000000000001",
            "host_id": 7,
            "machine_id": "0123456789abcdef0123456789abcdef",
            "issued_at": "2026-11-23T12:00:00Z",
            "command": {"type": "upgrade", "selection": {"mode": "packages", "packages": ["libssl3=3.0.13-1~deb12u1"]}, "dry_run": false}
        })
    );
    let every: Vec<Command> = vec![
        Command::Scan { subsystems: vec![Subsystem::Packages, Subsystem::System, Subsystem::Storage], refresh: true },
        Command::RefreshMetadata,
        Command::Upgrade { selection: Selection::Security, dry_run: true },
        Command::Upgrade { selection: Selection::All, dry_run: false },
        Command::Install { packages: vec!["curl".into()], dry_run: false },
        Command::Remove { packages: vec!["curl".into()], dry_run: true },
        Command::Rollback { command_id: id },
        Command::Reboot { delay_secs: 60, force: false },
        Command::Heartbeat { enabled: true, interval_secs: 10, duration_secs: 900 },
    ];
    let kinds: Vec<_> =
        every.iter().map(|c| serde_json::to_value(c).unwrap()["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        kinds,
        ["scan", "refresh_metadata", "upgrade", "upgrade", "install", "remove", "rollback", "reboot", "heartbeat"]
    );
    for (command, kind) in every.iter().zip(&kinds) {
        assert_eq!(command.kind(), kind);
        let back: Command = serde_json::from_value(serde_json::to_value(command).unwrap()).unwrap();
        assert_eq!(&back, command);
    }
    assert!(serde_json::from_value::<Command>(json!({"type": "format_disk"})).is_err());
    assert!(serde_json::from_value::<Command>(json!({"type": "reboot", "delay_secs": 1, "now": true})).is_err());
}

#[test]
fn states_and_reasons_are_snake_case() {
    let states: Vec<_> = CommandState::ALL.iter().map(|s| serde_json::to_value(s).unwrap()).collect();
    assert_eq!(
        states,
        [
            json!("pending"),
            json!("sent"),
            json!("running"),
            json!("completed"),
            json!("failed"),
            json!("timed_out"),
            json!("cancelled")
        ]
    );
    for state in CommandState::ALL {
        assert_eq!(state.as_str().parse::<CommandState>().unwrap(), state);
        assert_eq!(serde_json::to_value(state).unwrap(), json!(state.as_str()));
    }
    assert!(CommandState::Completed.is_terminal() && !CommandState::Running.is_terminal());
    for reason in [
        RejectionReason::BadSignature,
        RejectionReason::Expired,
        RejectionReason::Replayed,
        RejectionReason::WrongHost,
        RejectionReason::Malformed,
    ] {
        assert_eq!(serde_json::to_value(reason).unwrap(), json!(reason.as_str()));
    }
}

#[test]
fn enroll_response_is_tagged_by_status() {
    let pending = EnrollResponse::PendingApproval { host_id: 3, retry_after_secs: 30 };
    assert_eq!(
        serde_json::to_value(&pending).unwrap(),
        json!({"status": "pending_approval", "host_id": 3, "retry_after_secs": 30})
    );
    let enrolled = EnrollResponse::Enrolled(Enrollment {
        host_id: 3,
        certificate_pem: "C".into(),
        ca_pem: "A".into(),
        command_key: "K".into(),
        command_key_fingerprint: "SHA256:x".into(),
    });
    let value = serde_json::to_value(&enrolled).unwrap();
    assert_eq!(value["status"], "enrolled");
    assert_eq!(value["host_id"], 3);
    assert_eq!(serde_json::from_value::<EnrollResponse>(value).unwrap(), enrolled);
}

#[test]
fn results_round_trip_with_changes() {
    let result = CommandResult {
        command_id: Uuid::from_u128(9),
        state: CommandState::Completed,
        at: "2026-11-23T12:00:00Z".parse().unwrap(),
        job_id: Some(Uuid::from_u128(10)),
        error: None,
        output: "Setting up libssl3".into(),
        changes: vec![PackageChange {
            name: "libssl3".into(),
            arch: Some("amd64".into()),
            action: TxAction::Upgrade,
            from: Some("1.0-1".into()),
            to: Some("1.0-2".into()),
        }],
        reboot_required: false,
    };
    let value = serde_json::to_value(&result).unwrap();
    assert_eq!(value["changes"][0]["action"], "upgrade");
    assert_eq!(value["state"], "completed");
    assert_eq!(serde_json::from_value::<CommandResult>(value).unwrap(), result);
}
