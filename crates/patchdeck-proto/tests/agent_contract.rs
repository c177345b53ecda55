//! The pull protocol's JSON is a contract between agent and manager versions: pinned here.

use patchdeck_proto::agent::*;
use patchdeck_proto::orchestration::{self, MAX_HEALTH_CHECKS};
use patchdeck_proto::{
    AvailableUpdate, BackendKind, InstalledPackage, OsInfo, RebootStatus, ScanReport, SecurityClass, SecurityInfo,
    TxAction, SCAN_SCHEMA_VERSION,
};
use patchdeck_version::VersionFormat;
use proptest::prelude::*;
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
        Command::Reboot { delay_secs: 60, force: false, message: None },
        Command::Heartbeat { enabled: true, interval_secs: 10, duration_secs: 900 },
        Command::HealthCheck {
            units: vec!["nginx".into()],
            probes: vec![Probe::Tcp { address: "127.0.0.1:22".into(), timeout_secs: 5 }],
        },
    ];
    let kinds: Vec<_> =
        every.iter().map(|c| serde_json::to_value(c).unwrap()["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(
        kinds,
        [
            "scan",
            "refresh_metadata",
            "upgrade",
            "upgrade",
            "install",
            "remove",
            "rollback",
            "reboot",
            "heartbeat",
            "health_check"
        ]
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
        hooks: vec![],
        checks: vec![],
        preview: None,
    };
    let value = serde_json::to_value(&result).unwrap();
    assert_eq!(value["changes"][0]["action"], "upgrade");
    assert_eq!(value["state"], "completed");
    assert_eq!(serde_json::from_value::<CommandResult>(value).unwrap(), result);
}

#[test]
fn orchestration_commands_json_is_pinned() {
    // A reboot without a message is exactly what it was before messages existed (older agents
    // refuse unknown fields).
    assert_eq!(
        serde_json::to_value(Command::Reboot { delay_secs: 0, force: true, message: None }).unwrap(),
        json!({"type": "reboot", "delay_secs": 0, "force": true})
    );
    let warned = Command::Reboot { delay_secs: 300, force: false, message: Some("Patching: back in 5 min".into()) };
    assert_eq!(
        serde_json::to_value(&warned).unwrap(),
        json!({"type": "reboot", "delay_secs": 300, "force": false, "message": "Patching: back in 5 min"})
    );
    let check: Command = serde_json::from_value(json!({
        "type": "health_check",
        "units": ["nginx", "postgresql@15-main.service"],
        "probes": [
            {"type": "http", "url": "http://127.0.0.1:8080/health"},
            {"type": "http", "url": "https://app.example/ready", "expect_status": 204, "timeout_secs": 3},
            {"type": "tcp", "address": "[::1]:5432", "timeout_secs": 2}
        ]
    }))
    .unwrap();
    assert_eq!(
        check,
        Command::HealthCheck {
            units: vec!["nginx".into(), "postgresql@15-main.service".into()],
            probes: vec![
                Probe::Http { url: "http://127.0.0.1:8080/health".into(), expect_status: None, timeout_secs: 10 },
                Probe::Http { url: "https://app.example/ready".into(), expect_status: Some(204), timeout_secs: 3 },
                Probe::Tcp { address: "[::1]:5432".into(), timeout_secs: 2 },
            ],
        }
    );
    assert!(!check.is_disruptive());
    assert!(serde_json::from_value::<Command>(json!({"type": "health_check", "probes": [{"type": "icmp"}]})).is_err());
    assert!(serde_json::from_value::<Command>(
        json!({"type": "health_check", "probes": [{"type": "tcp", "address": "h:1", "proto": "x"}]})
    )
    .is_err());
}

fn sample_result() -> CommandResult {
    CommandResult {
        command_id: Uuid::from_u128(9),
        state: CommandState::Failed,
        at: "2026-11-23T12:00:00Z".parse().unwrap(),
        job_id: Some(Uuid::from_u128(10)),
        error: Some(ResultError { code: PRE_HOOK_FAILED.into(), message: "pre-patch hook 10-drain failed".into() }),
        output: String::new(),
        changes: vec![],
        reboot_required: false,
        hooks: vec![],
        checks: vec![],
        preview: None,
    }
}

#[test]
fn orchestration_results_json_is_pinned() {
    // Without the new fields a result is what it was before they existed.
    let plain = serde_json::to_value(sample_result()).unwrap();
    for absent in ["hooks", "checks", "preview"] {
        assert!(plain.get(absent).is_none(), "{absent} is left out when empty: {plain}");
    }
    let mut result = sample_result();
    result.hooks = vec![HookRun {
        phase: HookPhase::Pre,
        name: "10-drain".into(),
        outcome: HookOutcome::Failed,
        exit_code: Some(3),
        duration_ms: 12,
        output: "draining failed\n".into(),
    }];
    result.checks = vec![CheckResult {
        kind: CheckKind::Tcp,
        target: "127.0.0.1:1".into(),
        passed: false,
        detail: "connection refused".into(),
        duration_ms: 0,
    }];
    let change = PackageChange {
        name: "linux-image-amd64".into(),
        arch: None,
        action: TxAction::Upgrade,
        from: Some("6.1.0-26".into()),
        to: Some("6.1.0-27".into()),
    };
    result.preview = Some(Box::new(DryRunPreview {
        upgrades: vec![change],
        reboot_required: true,
        reboot_reasons: vec!["linux-image-amd64 6.1.0-27 is upgraded".into()],
        ..DryRunPreview::default()
    }));
    let value = serde_json::to_value(&result).unwrap();
    assert_eq!(
        value["hooks"],
        json!([{"phase": "pre", "name": "10-drain", "outcome": "failed", "exit_code": 3, "duration_ms": 12,
                "output": "draining failed\n"}])
    );
    assert_eq!(
        value["checks"],
        json!([{"kind": "tcp", "target": "127.0.0.1:1", "passed": false, "detail": "connection refused",
                "duration_ms": 0}])
    );
    assert_eq!(value["preview"]["reboot_required"], true);
    assert_eq!(value["preview"]["upgrades"][0]["to"], "6.1.0-27");
    for list in ["installs", "downgrades", "reinstalls", "removals"] {
        assert_eq!(value["preview"][list], json!([]), "{list}");
    }
    assert_eq!(value["error"]["code"], "pre_hook_failed");
    assert_eq!(serde_json::from_value::<CommandResult>(value).unwrap(), result);
    assert_eq!((POST_HOOK_FAILED, HEALTH_CHECK_FAILED), ("post_hook_failed", "health_check_failed"));
    for outcome in [HookOutcome::Passed, HookOutcome::Failed, HookOutcome::TimedOut, HookOutcome::Skipped] {
        assert_eq!(serde_json::to_value(outcome).unwrap(), json!(outcome.as_str()));
    }
    // Strict like every other result type: a misspelt field is refused, not dropped.
    let mut typo = serde_json::to_value(sample_result()).unwrap();
    typo["hook"] = json!([]);
    assert!(serde_json::from_value::<CommandResult>(typo).is_err());
}

fn arb_text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~é€\n]{0,40}").unwrap()
}

fn arb_change() -> impl Strategy<Value = PackageChange> {
    (
        "[a-z][a-z0-9.+-]{0,20}",
        proptest::option::of("[a-z0-9_]{1,8}"),
        prop_oneof![
            Just(TxAction::Install),
            Just(TxAction::Upgrade),
            Just(TxAction::Downgrade),
            Just(TxAction::Reinstall),
            Just(TxAction::Remove)
        ],
        proptest::option::of("[0-9][0-9a-z.:~+-]{0,12}"),
        proptest::option::of("[0-9][0-9a-z.:~+-]{0,12}"),
    )
        .prop_map(|(name, arch, action, from, to)| PackageChange { name, arch, action, from, to })
}

fn arb_hook() -> impl Strategy<Value = HookRun> {
    (
        prop_oneof![Just(HookPhase::Pre), Just(HookPhase::Post)],
        "[0-9a-z_.-]{1,20}",
        prop_oneof![
            Just(HookOutcome::Passed),
            Just(HookOutcome::Failed),
            Just(HookOutcome::TimedOut),
            Just(HookOutcome::Skipped)
        ],
        proptest::option::of(any::<i32>()),
        any::<u64>(),
        arb_text(),
    )
        .prop_map(|(phase, name, outcome, exit_code, duration_ms, output)| HookRun {
            phase,
            name,
            outcome,
            exit_code,
            duration_ms,
            output,
        })
}

fn arb_check() -> impl Strategy<Value = CheckResult> {
    (
        prop_oneof![Just(CheckKind::Unit), Just(CheckKind::Http), Just(CheckKind::Tcp)],
        arb_text(),
        any::<bool>(),
        arb_text(),
        any::<u64>(),
    )
        .prop_map(|(kind, target, passed, detail, duration_ms)| CheckResult {
            kind,
            target,
            passed,
            detail,
            duration_ms,
        })
}

fn arb_preview() -> impl Strategy<Value = DryRunPreview> {
    (proptest::collection::vec(arb_change(), 0..6), any::<bool>(), proptest::collection::vec(arb_text(), 0..3))
        .prop_map(|(changes, reboot, reasons)| DryRunPreview {
            reboot_required: reboot,
            reboot_reasons: reasons,
            ..DryRunPreview::from_changes(&changes)
        })
}

fn arb_probe() -> impl Strategy<Value = Probe> {
    prop_oneof![
        ("http://[a-z]{1,10}(:[0-9]{1,5})?/[a-z]{0,10}", proptest::option::of(100u16..600), 1u64..=60)
            .prop_map(|(url, expect_status, timeout_secs)| Probe::Http { url, expect_status, timeout_secs }),
        ("[a-z]{1,10}:[1-9][0-9]{0,3}", 1u64..=60)
            .prop_map(|(address, timeout_secs)| Probe::Tcp { address, timeout_secs }),
    ]
}

proptest! {
    #[test]
    fn results_with_hooks_checks_and_previews_round_trip(
        hooks in proptest::collection::vec(arb_hook(), 0..4),
        checks in proptest::collection::vec(arb_check(), 0..4),
        preview in proptest::option::of(arb_preview().prop_map(Box::new)),
    ) {
        let result = CommandResult { hooks, checks, preview, ..sample_result() };
        let text = serde_json::to_string(&result).unwrap();
        let back: CommandResult = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, result);
    }

    #[test]
    fn health_checks_and_reboots_round_trip(
        units in proptest::collection::vec("[a-z][a-z0-9@._-]{0,15}", 0..4),
        probes in proptest::collection::vec(arb_probe(), 0..4),
        delay in 0u64..=86_400,
        message in proptest::option::of("[ -~]{1,40}"),
    ) {
        let check = Command::HealthCheck { units: units.clone(), probes: probes.clone() };
        let back: Command = serde_json::from_str(&serde_json::to_string(&check).unwrap()).unwrap();
        prop_assert_eq!(&back, &check);
        // Generated checks are valid ones (the empty list aside).
        if !units.is_empty() || !probes.is_empty() {
            prop_assert!(units.len() + probes.len() <= MAX_HEALTH_CHECKS);
            orchestration::validate_health_check(&units, &probes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let reboot = Command::Reboot { delay_secs: delay, force: false, message };
        let back: Command = serde_json::from_str(&serde_json::to_string(&reboot).unwrap()).unwrap();
        prop_assert_eq!(back, reboot);
    }
}
