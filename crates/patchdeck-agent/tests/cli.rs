//! The `patchdeck-agent` command line, run as a user would run it.

use assert_cmd::Command;

fn agent() -> Command {
    let mut cmd = Command::cargo_bin("patchdeck-agent").expect("binary is built");
    cmd.env_remove("PATCHDECK_AGENT_CONFIG").env_remove("PATCHDECK_BACKEND").env_remove("PATCHDECK_ROOT");
    for var in ["PATCHDECK_SERVER", "PATCHDECK_ENROLL_TOKEN", "PATCHDECK_CA_FINGERPRINT"] {
        cmd.env_remove(var);
    }
    cmd
}

fn compare(format: &str, a: &str, b: &str) -> String {
    let out = agent().args(["version-compare", "--format", format, a, b]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_compare_follows_each_formats_rules() {
    // The cases where the package managers disagree with each other.
    assert_eq!(compare("deb", "1.0~rc1", "1.0"), "<\n");
    assert_eq!(compare("rpm", "1.0~rc1", "1.0"), "<\n");
    assert_eq!(compare("pacman", "1.0~rc1", "1.0"), ">\n");
    assert_eq!(compare("deb", "1:1.0", "2.0"), ">\n");
    assert_eq!(compare("deb", "1.0-1", "1.0-01"), "=\n");
    assert_eq!(compare("rpm", "1.0^git1", "1.0"), ">\n");
    assert_eq!(compare("apk", "1.0_rc1-r0", "1.0-r0"), "<\n");
    assert_eq!(compare("apk", "1.0_p1", "1.0"), ">\n");
}

#[test]
fn version_compare_rejects_bad_input() {
    let out = agent().args(["version-compare", "--format", "msi", "1", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'msi'") && stderr.contains("deb, rpm, apk, pacman"), "{stderr}");

    let out = agent().args(["version-compare", "--format", "deb", "1 0", "1.0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: ") && stderr.contains("\"1 0\""), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn config_example_round_trips() {
    let out = agent().args(["config", "example"]).output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, &out.stdout).unwrap();
    let shown = agent().args(["config", "show", "--config"]).arg(&path).output().unwrap();
    assert!(shown.status.success(), "{shown:?}");
    let text = String::from_utf8(shown.stdout).unwrap();
    assert!(text.contains("backend: auto") && text.contains("refresh_timeout_secs: 300"), "{text}");
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, "package_manager:\n  backend: emerge\n").unwrap();
    let out = agent().args(["scan", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(path.to_str().unwrap()) && stderr.contains("emerge"), "{stderr}");
}

#[test]
fn scan_of_a_root_without_a_package_manager_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/os-release"), "ID=plan9\n").unwrap();
    let out = agent().args(["scan", "--no-refresh", "--backend", "pacman", "--root"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: listing installed packages"), "{stderr}");
}

/// The real scan of this (Debian) test machine, read-only: no refresh.
#[test]
fn scan_json_of_this_host() {
    let out = agent().args(["scan", "--json", "--no-refresh"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: patchdeck_proto::ScanReport = serde_json::from_slice(&out.stdout).expect("stdout is a ScanReport");
    assert_eq!(report.schema_version, patchdeck_proto::SCAN_SCHEMA_VERSION);
    assert_eq!(report.backend, patchdeck_proto::BackendKind::Apt);
    let dpkg = report.installed.iter().find(|p| p.name == "dpkg").expect("dpkg is installed");
    assert_eq!(dpkg.source_package.as_deref(), Some("dpkg"));
    let status = std::process::Command::new("dpkg-query").args(["-W", "-f=${Version}", "dpkg"]).output().unwrap();
    assert_eq!(dpkg.version, String::from_utf8_lossy(&status.stdout));
    assert!(report.os.kernel.is_some());
    // Every update really is newer than what is installed.
    for u in &report.updates {
        let order =
            patchdeck_version::compare(report.version_format, &u.candidate_version, &u.current_version).unwrap();
        assert_eq!(order, std::cmp::Ordering::Greater, "{u:?}");
    }
}

#[test]
fn scan_text_of_this_host() {
    let out = agent().args(["scan", "--no-refresh"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Host:          Debian"), "{text}");
    assert!(text.contains("installed, managed by apt"), "{text}");
}

/// A German host gets the same scan: the agent runs every package manager in
/// the C locale whatever the user's locale is. (scripts/test.sh generates
/// de_DE.UTF-8; without it this test cannot show anything and fails.)
#[test]
fn scan_is_the_same_in_a_german_locale() {
    const GERMAN: [(&str, &str); 3] = [("LANG", "de_DE.UTF-8"), ("LC_ALL", "de_DE.UTF-8"), ("LANGUAGE", "de")];
    // Precondition: the locale really is in effect for package managers run without our override.
    let probe = std::process::Command::new("apt-get").arg("--help").envs(GERMAN).output().unwrap();
    let help = String::from_utf8_lossy(&probe.stdout);
    assert!(
        help.contains("Aufruf:"),
        "de_DE.UTF-8 is not usable here (run: localedef -i de_DE -f UTF-8 de_DE.UTF-8); apt-get said: {help}"
    );

    let scan = |german: bool| {
        let mut cmd = agent();
        cmd.args(["scan", "--json", "--no-refresh"]);
        if german {
            cmd.envs(GERMAN);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<patchdeck_proto::ScanReport>(&out.stdout).unwrap()
    };
    let (c, de) = (scan(false), scan(true));
    assert!(!c.installed.is_empty());
    assert_eq!(c.installed, de.installed);
    assert_eq!(c.updates, de.updates);
    assert_eq!(c.reboot, de.reboot);
}

#[test]
fn no_supported_package_manager_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/os-release"), "ID=plan9\n").unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let out = agent()
        .env("PATH", empty_path.path())
        .args(["scan", "--no-refresh", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "error: no supported package manager found: distribution \"plan9\" and none of apt-get, dnf, yum, zypper, pacman, apk on PATH"
    );
}

#[test]
fn print_config_prints_the_commented_defaults() {
    let out = agent().arg("print-config").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, patchdeck_agent::config::EXAMPLE);
    let example = agent().args(["config", "example"]).output().unwrap();
    assert!(example.status.success(), "{example:?}");
    assert_eq!(example.stdout, text.as_bytes(), "`config example` prints the same text");
    // Commented, and a valid config file: the defaults.
    assert!(text.lines().filter(|l| l.trim_start().starts_with('#')).count() > 20, "{text}");
    assert!(text.contains("# Changing it while `serve` runs"), "{text}");
    assert_eq!(
        patchdeck_agent::config::AgentConfig::parse(&text).unwrap(),
        patchdeck_agent::config::AgentConfig::default()
    );
    // It needs no config file, even when the configured one is missing.
    let out = agent().args(["print-config", "--config", "/nonexistent/agent.yaml"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, text.as_bytes());
}

#[test]
fn config_show_applies_the_pull_environment_and_redacts_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.yaml");
    std::fs::write(&path, "pull:\n  wait_secs: 120\n  server: https://file.example:8443\n").unwrap();
    let fingerprint = "AB:".repeat(31) + "AB";
    let out = agent()
        .args(["config", "show", "--config"])
        .arg(&path)
        .env("PATCHDECK_SERVER", "https://env.example:8443")
        .env("PATCHDECK_ENROLL_TOKEN", "pdk_reg_topsecret")
        .env("PATCHDECK_CA_FINGERPRINT", &fingerprint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("wait_secs: 120"), "the file's keys stay: {text}");
    assert!(text.contains("server: https://env.example:8443"), "the environment wins over the file: {text}");
    assert!(text.contains(&format!("ca_fingerprint: {fingerprint}")), "{text}");
    assert!(text.contains("enroll_token: '[redacted]'") && !text.contains("topsecret"), "{text}");

    let out = agent()
        .args(["config", "show", "--config"])
        .arg(&path)
        .env("PATCHDECK_CA_FINGERPRINT", "3f1c")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PATCHDECK_CA_FINGERPRINT") && stderr.contains("64 hexadecimal digits"), "{stderr}");
}
