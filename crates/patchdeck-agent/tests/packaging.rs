//! The systemd unit we ship: valid for systemd, and in step with the binary.

use std::process::Command;

const UNIT: &str = include_str!("../../../packaging/systemd/patchdeck-agent.service");

#[test]
fn the_unit_file_passes_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's program exists: point it at the binary under test.
    let unit = UNIT.replace("/usr/bin/patchdeck-agent", env!("CARGO_BIN_EXE_patchdeck-agent"));
    let path = dir.path().join("patchdeck-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Warnings about this machine (no systemd as PID 1 in a container) are not about the unit.
    let about_unit: Vec<&str> = stderr.lines().filter(|l| l.contains("patchdeck-agent.service")).collect();
    assert!(out.status.success() && about_unit.is_empty(), "status {:?}: {stderr}", out.status);
}

#[test]
fn the_unit_runs_serve_with_the_documented_config_and_hardening() {
    let exec = UNIT.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert_eq!(exec, "ExecStart=/usr/bin/patchdeck-agent serve --config /etc/patchdeck/agent.yaml");
    for line in [
        "Type=notify",
        "KillMode=mixed",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "SystemCallFilter=@system-service",
    ] {
        assert!(UNIT.lines().any(|l| l == line), "missing {line}");
    }
    // The binary has the subcommand and flag the unit uses.
    let help = Command::new(env!("CARGO_BIN_EXE_patchdeck-agent")).args(["serve", "--help"]).output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--state-dir"));
}
