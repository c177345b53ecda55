//! The agent's configuration: defaults, then the YAML file, then
//! `PATCHDECK_*` environment variables, then command-line flags.
//! Validated once, at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use patchdeck_pkg::BackendOptions;
use patchdeck_proto::BackendKind;
use serde::{Deserialize, Serialize};

/// Where the agent looks for its config when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/patchdeck/agent.yaml";

/// The example printed by `patchdeck-agent config example`.
pub const EXAMPLE: &str = include_str!("../agent.example.yaml");

/// Where the agent keeps its state (job records) unless configured otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/patchdeck-agent";

/// The whole agent configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    pub package_manager: PackageManagerConfig,
    /// Job records and other state (`--state-dir`, `PATCHDECK_AGENT_STATE_DIR`).
    pub state_dir: PathBuf,
    pub jobs: JobsConfig,
    pub push: PushConfig,
    pub pull: PullConfig,
    pub audit: crate::audit::AuditConfig,
    pub hooks: HooksConfig,
    pub health: HealthConfig,
    pub reboot: RebootConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            package_manager: PackageManagerConfig::default(),
            state_dir: PathBuf::from(DEFAULT_STATE_DIR),
            jobs: JobsConfig::default(),
            push: PushConfig::default(),
            pull: PullConfig::default(),
            audit: crate::audit::AuditConfig::default(),
            hooks: HooksConfig::default(),
            health: HealthConfig::default(),
            reboot: RebootConfig::default(),
        }
    }
}

/// `jobs:` — limits of the job engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs running at once (package transactions still run one at a time).
    pub max_concurrent: usize,
    /// Pending plus running jobs; beyond it submissions get `QUEUE_FULL`.
    pub max_queue_depth: usize,
    /// A job running longer than this is stopped and marked `timed_out`.
    pub job_timeout_secs: u64,
    /// Finished jobs kept on disk.
    pub keep_finished: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        let engine = crate::jobs::EngineConfig::default();
        JobsConfig {
            max_concurrent: engine.max_concurrent,
            max_queue_depth: engine.max_queue_depth,
            job_timeout_secs: engine.job_timeout.as_secs(),
            keep_finished: engine.keep_terminal,
        }
    }
}

impl JobsConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=64).contains(&self.max_concurrent) {
            bail!("jobs.max_concurrent must be between 1 and 64, got {}", self.max_concurrent);
        }
        if !(1..=10_000).contains(&self.max_queue_depth) {
            bail!("jobs.max_queue_depth must be between 1 and 10000, got {}", self.max_queue_depth);
        }
        if !(60..=24 * 3600).contains(&self.job_timeout_secs) {
            bail!("jobs.job_timeout_secs must be between 60 and 86400, got {}", self.job_timeout_secs);
        }
        Ok(())
    }

    /// The engine's settings.
    pub fn engine_config(&self) -> crate::jobs::EngineConfig {
        crate::jobs::EngineConfig {
            max_concurrent: self.max_concurrent,
            max_queue_depth: self.max_queue_depth,
            job_timeout: Duration::from_secs(self.job_timeout_secs),
            keep_terminal: self.keep_finished,
            ..crate::jobs::EngineConfig::default()
        }
    }
}

/// `push:` — the Linux_Patch_API-compatible REST API over mutual TLS. Off
/// unless enabled: the agent opens no port otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    pub enabled: bool,
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// CA certificates that client certificates must chain to.
    pub ca_bundle: PathBuf,
    /// This agent's server certificate (PEM, chain allowed) and its key.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Certificate revocation list of the CA, if any.
    pub crl: Option<PathBuf>,
    /// Addresses, CIDR networks and host names allowed to connect, one per
    /// line. Missing or invalid: everyone is denied.
    pub allowlist: PathBuf,
    /// How often the allow-list and certificate files are checked for changes.
    pub reload_interval_secs: u64,
    /// Requests per minute and burst, per client, for reads and for changes.
    pub reads_per_minute: u32,
    pub reads_burst: u32,
    pub mutations_per_minute: u32,
    pub mutations_burst: u32,
}

impl Default for PushConfig {
    fn default() -> Self {
        let limits = crate::api::RateLimitConfig::default();
        PushConfig {
            enabled: false,
            listen: std::net::SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 0], 12443)),
            ca_bundle: PathBuf::from("/etc/patchdeck/tls/ca.pem"),
            server_cert: PathBuf::from("/etc/patchdeck/tls/agent.pem"),
            server_key: PathBuf::from("/etc/patchdeck/tls/agent.key"),
            crl: None,
            allowlist: PathBuf::from("/etc/patchdeck/allowlist"),
            reload_interval_secs: 5,
            reads_per_minute: limits.reads.per_minute,
            reads_burst: limits.reads.burst,
            mutations_per_minute: limits.mutations.per_minute,
            mutations_burst: limits.mutations.burst,
        }
    }
}

impl PushConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=3600).contains(&self.reload_interval_secs) {
            bail!("push.reload_interval_secs must be between 1 and 3600, got {}", self.reload_interval_secs);
        }
        for (name, value) in [
            ("reads_per_minute", self.reads_per_minute),
            ("reads_burst", self.reads_burst),
            ("mutations_per_minute", self.mutations_per_minute),
            ("mutations_burst", self.mutations_burst),
        ] {
            if value == 0 {
                bail!("push.{name} must be at least 1");
            }
        }
        Ok(())
    }

    /// The API's rate limits.
    pub fn rate_limits(&self) -> crate::api::RateLimitConfig {
        use crate::api::ratelimit::Rate;
        crate::api::RateLimitConfig {
            reads: Rate { per_minute: self.reads_per_minute, burst: self.reads_burst },
            mutations: Rate { per_minute: self.mutations_per_minute, burst: self.mutations_burst },
        }
    }
}

/// A secret from the config file or the environment (the registration token): `Debug` never
/// shows it, `config show` redacts it, and it is wiped from memory when dropped.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, to send where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// The environment variables that set `pull:` keys (they override the file).
pub const PULL_ENV: [(&str, &str); 3] = [
    ("PATCHDECK_SERVER", "pull.server"),
    ("PATCHDECK_ENROLL_TOKEN", "pull.enroll_token"),
    ("PATCHDECK_CA_FINGERPRINT", "pull.ca_fingerprint"),
];

/// `pull:` — checking in with a manager (docs/protocol.md). Runs when the agent is enrolled,
/// or enrolls first when `server`, `enroll_token` and a way to trust the manager are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PullConfig {
    pub enabled: bool,
    /// The manager's URL, `https://host:8443` (`PATCHDECK_SERVER`).
    pub server: Option<String>,
    /// A registration token, only used to enroll (`PATCHDECK_ENROLL_TOKEN`).
    pub enroll_token: Option<Secret>,
    /// SHA-256 of the manager's CA certificate (`PATCHDECK_CA_FINGERPRINT`).
    pub ca_fingerprint: Option<String>,
    /// Or: a PEM file of CA certificates to trust for the manager.
    pub ca_cert: Option<PathBuf>,
    /// Longest time the manager may hold a check-in.
    pub wait_secs: u64,
    /// Time between scheduled scans.
    pub scan_interval_secs: u64,
    /// Limit for other requests, and the margin added to `wait_secs` for a check-in.
    pub request_timeout_secs: u64,
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            enabled: true,
            server: None,
            enroll_token: None,
            ca_fingerprint: None,
            ca_cert: None,
            wait_secs: 300,
            scan_interval_secs: 3600,
            request_timeout_secs: 30,
        }
    }
}

impl PullConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if let Some(server) = &self.server {
            crate::pull::client::normalize_server(server).map_err(|e| anyhow::anyhow!("pull.server: {e}"))?;
        }
        if let Some(fp) = &self.ca_fingerprint {
            crate::pull::enroll::parse_fingerprint(fp).map_err(|e| anyhow::anyhow!("pull.ca_fingerprint: {e}"))?;
        }
        if self.ca_fingerprint.is_some() && self.ca_cert.is_some() {
            bail!("pull.ca_fingerprint and pull.ca_cert are both set; set one of them");
        }
        if self.ca_cert.as_ref().is_some_and(|p| !p.is_absolute()) {
            bail!("pull.ca_cert must be an absolute path");
        }
        if !(1..=3600).contains(&self.wait_secs) {
            bail!("pull.wait_secs must be between 1 and 3600, got {}", self.wait_secs);
        }
        if !(60..=7 * 86400).contains(&self.scan_interval_secs) {
            bail!("pull.scan_interval_secs must be between 60 and 604800, got {}", self.scan_interval_secs);
        }
        if !(5..=600).contains(&self.request_timeout_secs) {
            bail!("pull.request_timeout_secs must be between 5 and 600, got {}", self.request_timeout_secs);
        }
        Ok(())
    }

    /// Applies [`PULL_ENV`] (`get` reads a variable; empty values are ignored). A value is
    /// checked here so that an error names the variable.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if let Some(server) = var("PATCHDECK_SERVER") {
            crate::pull::client::normalize_server(&server).map_err(|e| anyhow::anyhow!("PATCHDECK_SERVER: {e}"))?;
            self.server = Some(server);
        }
        if let Some(token) = var("PATCHDECK_ENROLL_TOKEN") {
            self.enroll_token = Some(Secret::new(token.trim()));
        }
        if let Some(fp) = var("PATCHDECK_CA_FINGERPRINT") {
            crate::pull::enroll::parse_fingerprint(&fp)
                .map_err(|e| anyhow::anyhow!("PATCHDECK_CA_FINGERPRINT: {e}"))?;
            self.ca_fingerprint = Some(fp);
            // The environment's fingerprint replaces a CA file from the config file.
            self.ca_cert = None;
        }
        Ok(())
    }
}

/// `package_manager:` — which backend drives this host and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackageManagerConfig {
    /// `auto` (detect from /etc/os-release and installed tools) or a backend name.
    pub backend: BackendChoice,
    /// The system to manage; `/` except for sandboxes.
    pub root: PathBuf,
    /// Package manager config file to use instead of the system one.
    pub config_file: Option<PathBuf>,
    /// dnf/yum `--releasever` for a root without os-release.
    pub releasever: Option<String>,
    pub query_timeout_secs: u64,
    pub refresh_timeout_secs: u64,
    pub transaction_timeout_secs: u64,
    pub lock_wait_secs: u64,
    /// `scan` refreshes metadata older than this (0: never refresh automatically).
    pub max_metadata_age_secs: u64,
}

/// `auto` or a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Fixed(BackendKind),
}

impl BackendChoice {
    pub fn kind(self) -> Option<BackendKind> {
        match self {
            BackendChoice::Auto => None,
            BackendChoice::Fixed(kind) => Some(kind),
        }
    }
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(BackendChoice::Auto);
        }
        s.parse::<BackendKind>()
            .map(BackendChoice::Fixed)
            .map_err(|_| format!("unknown package manager {s:?} (expected auto, apt, dnf, yum, zypper, pacman or apk)"))
    }
}

impl Serialize for BackendChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BackendChoice::Auto => s.serialize_str("auto"),
            BackendChoice::Fixed(kind) => s.serialize_str(kind.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for BackendChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Default for PackageManagerConfig {
    fn default() -> Self {
        let defaults = BackendOptions::default();
        PackageManagerConfig {
            backend: BackendChoice::Auto,
            root: defaults.root,
            config_file: None,
            releasever: None,
            query_timeout_secs: defaults.query_timeout.as_secs(),
            refresh_timeout_secs: defaults.refresh_timeout.as_secs(),
            transaction_timeout_secs: defaults.transaction_timeout.as_secs(),
            lock_wait_secs: defaults.lock_wait.as_secs(),
            max_metadata_age_secs: 6 * 3600,
        }
    }
}

impl PackageManagerConfig {
    /// Checks the values that serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.root.is_absolute() {
            bail!("package_manager.root must be an absolute path, got {}", self.root.display());
        }
        for (name, secs) in [
            ("query_timeout_secs", self.query_timeout_secs),
            ("refresh_timeout_secs", self.refresh_timeout_secs),
            ("transaction_timeout_secs", self.transaction_timeout_secs),
        ] {
            if secs == 0 || secs > 24 * 3600 {
                bail!("package_manager.{name} must be between 1 and 86400 seconds, got {secs}");
            }
        }
        if self.lock_wait_secs > 3600 {
            bail!("package_manager.lock_wait_secs must be at most 3600 seconds, got {}", self.lock_wait_secs);
        }
        if let Some(v) = &self.releasever {
            patchdeck_pkg::PackageVersion::parse(v).context("package_manager.releasever")?;
        }
        Ok(())
    }

    /// The package layer's options.
    pub fn backend_options(&self) -> BackendOptions {
        BackendOptions {
            root: self.root.clone(),
            config_file: self.config_file.clone(),
            releasever: self.releasever.clone(),
            env: Vec::new(),
            query_timeout: Duration::from_secs(self.query_timeout_secs),
            refresh_timeout: Duration::from_secs(self.refresh_timeout_secs),
            transaction_timeout: Duration::from_secs(self.transaction_timeout_secs),
            lock_wait: Duration::from_secs(self.lock_wait_secs),
        }
    }
}

/// Where the hook directories are unless configured otherwise.
pub const DEFAULT_HOOKS_DIR: &str = "/etc/patchdeck/hooks";

/// `hooks:` — local executables run before and after every package job that changes the host
/// (`<dir>/pre-patch.d/`, `<dir>/post-patch.d/`; see `crate::jobs::hooks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// The directory holding `pre-patch.d/` and `post-patch.d/` (absolute).
    pub dir: PathBuf,
    /// Limit for one hook; past it the hook's process group is killed and it counts as failed.
    pub timeout_secs: u64,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig { dir: PathBuf::from(DEFAULT_HOOKS_DIR), timeout_secs: 600 }
    }
}

impl HooksConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if !self.dir.is_absolute() {
            bail!("hooks.dir must be an absolute path, got {}", self.dir.display());
        }
        if !(1..=24 * 3600).contains(&self.timeout_secs) {
            bail!("hooks.timeout_secs must be between 1 and 86400, got {}", self.timeout_secs);
        }
        Ok(())
    }

    /// The engine's hook settings.
    pub fn engine_hooks(&self) -> crate::jobs::HookSettings {
        crate::jobs::HookSettings { dir: self.dir.clone(), timeout: Duration::from_secs(self.timeout_secs) }
    }
}

/// `health:` — how a `health_check` command checks units and HTTPS probes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// The command asked whether a unit is active; the unit name is appended after `--`.
    /// Exit code 0 means active; its first output line is the state shown.
    pub unit_command: Vec<String>,
    /// CA certificates (PEM) for https probes; unset: the system bundle.
    pub ca_cert: Option<PathBuf>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig { unit_command: vec!["systemctl".into(), "is-active".into()], ca_cert: None }
    }
}

impl HealthConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if self.unit_command.first().is_none_or(|p| p.trim().is_empty()) {
            bail!("health.unit_command must name a program");
        }
        if self.ca_cert.as_ref().is_some_and(|p| !p.is_absolute()) {
            bail!("health.ca_cert must be an absolute path");
        }
        Ok(())
    }
}

/// `reboot:` — the commands that reboot the host and restart the agent, and where the boot id
/// comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RebootConfig {
    /// Run for a reboot now without a warning.
    pub command: Vec<String>,
    /// Run for a delayed reboot, or one with a warning: `{minutes}` becomes the delay in whole
    /// minutes (rounded up; 0 for now), and the warning, when there is one, is appended as the
    /// last argument (`shutdown` broadcasts it to logged-in users with `wall`).
    pub delayed_command: Vec<String>,
    /// Run to restart the agent after a self-update.
    pub restart_agent_command: Vec<String>,
    /// Where the boot id is read for every check-in (changes at every boot).
    pub boot_id_path: PathBuf,
}

impl Default for RebootConfig {
    fn default() -> Self {
        let commands = crate::jobs::CommandRebooter::default();
        RebootConfig {
            command: commands.immediate,
            delayed_command: commands.delayed,
            restart_agent_command: commands.restart_agent,
            boot_id_path: PathBuf::from(crate::pull::metrics::BOOT_ID_PATH),
        }
    }
}

impl RebootConfig {
    fn validate(&self) -> anyhow::Result<()> {
        for (name, argv) in [
            ("command", &self.command),
            ("delayed_command", &self.delayed_command),
            ("restart_agent_command", &self.restart_agent_command),
        ] {
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                bail!("reboot.{name} must name a program");
            }
        }
        if !self.delayed_command.iter().any(|a| a.contains("{minutes}")) {
            bail!("reboot.delayed_command must contain {{minutes}} (the delay in whole minutes)");
        }
        if !self.boot_id_path.is_absolute() {
            bail!("reboot.boot_id_path must be an absolute path, got {}", self.boot_id_path.display());
        }
        Ok(())
    }

    /// The rebooter running these commands.
    pub fn rebooter(&self) -> crate::jobs::CommandRebooter {
        crate::jobs::CommandRebooter {
            immediate: self.command.clone(),
            delayed: self.delayed_command.clone(),
            restart_agent: self.restart_agent_command.clone(),
            ..crate::jobs::CommandRebooter::default()
        }
    }
}

impl AgentConfig {
    /// Reads `path`; a missing file at the default path means defaults, a
    /// missing file anywhere else is an error. The `pull:` environment
    /// variables ([`PULL_ENV`]) are applied on top.
    pub fn load(path: Option<&Path>) -> anyhow::Result<AgentConfig> {
        let (path, explicit) = match path {
            Some(p) => (p, true),
            None => (Path::new(DEFAULT_CONFIG_PATH), false),
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading config {}", path.display())),
        };
        let mut config = AgentConfig::parse(&text).with_context(|| format!("in config {}", path.display()))?;
        config.pull.apply_env(|name| std::env::var(name).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates YAML text.
    pub fn parse(text: &str) -> anyhow::Result<AgentConfig> {
        let config: AgentConfig =
            if text.trim().is_empty() { AgentConfig::default() } else { serde_yaml_ng::from_str(text)? };
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that serde cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.package_manager.validate()?;
        if !self.state_dir.is_absolute() {
            bail!("state_dir must be an absolute path, got {}", self.state_dir.display());
        }
        self.jobs.validate()?;
        self.push.validate()?;
        self.pull.validate()?;
        self.audit.validate().map_err(|e| anyhow::anyhow!("audit: {e}"))?;
        self.hooks.validate()?;
        self.health.validate()?;
        self.reboot.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_to_the_defaults() {
        assert_eq!(AgentConfig::parse(EXAMPLE).unwrap(), AgentConfig::default());
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(AgentConfig::parse("").unwrap(), AgentConfig::default());
    }

    #[test]
    fn backend_override() {
        let c = AgentConfig::parse("package_manager:\n  backend: zypper\n").unwrap();
        assert_eq!(c.package_manager.backend, BackendChoice::Fixed(BackendKind::Zypper));
    }

    #[test]
    fn bad_values_are_named() {
        let err = AgentConfig::parse("package_manager:\n  backend: emerge\n").unwrap_err();
        assert!(format!("{err:#}").contains("unknown package manager \"emerge\""), "{err:#}");
        let err = AgentConfig::parse("package_manager:\n  bakend: apt\n").unwrap_err();
        assert!(format!("{err:#}").contains("unknown field `bakend`"), "{err:#}");
        let err = AgentConfig::parse("package_manager:\n  refresh_timeout_secs: 0\n").unwrap_err();
        assert!(format!("{err:#}").contains("refresh_timeout_secs"), "{err:#}");
        let err = AgentConfig::parse("package_manager:\n  root: relative/dir\n").unwrap_err();
        assert!(format!("{err:#}").contains("absolute"), "{err:#}");
    }

    #[test]
    fn pull_section_is_validated_and_the_environment_overrides_it() {
        let c = AgentConfig::parse(
            "pull:\n  server: https://manager.example:8443\n  enroll_token: pdk_reg_x\n  ca_fingerprint: AB:CD\n",
        );
        assert!(format!("{:#}", c.unwrap_err()).contains("pull.ca_fingerprint"));
        let err = AgentConfig::parse("pull:\n  server: http://manager.example\n").unwrap_err();
        assert!(format!("{err:#}").contains("pull.server") && format!("{err:#}").contains("https://"), "{err:#}");
        let err = AgentConfig::parse("pull:\n  wait_secs: 0\n").unwrap_err();
        assert!(format!("{err:#}").contains("pull.wait_secs"), "{err:#}");

        let mut c =
            AgentConfig::parse("pull:\n  server: https://a.example\n  ca_cert: /etc/ssl/certs/ca.pem\n").unwrap();
        let fp = "ab".repeat(32);
        let env = |name: &str| match name {
            "PATCHDECK_SERVER" => Some("https://b.example:8443".to_owned()),
            "PATCHDECK_ENROLL_TOKEN" => Some("pdk_reg_secret".to_owned()),
            "PATCHDECK_CA_FINGERPRINT" => Some(fp.clone()),
            _ => None,
        };
        c.pull.apply_env(env).unwrap();
        assert_eq!(c.pull.server.as_deref(), Some("https://b.example:8443"));
        assert_eq!(c.pull.enroll_token.as_ref().map(Secret::expose), Some("pdk_reg_secret"));
        assert_eq!((c.pull.ca_fingerprint.as_deref(), c.pull.ca_cert.as_ref()), (Some(fp.as_str()), None));
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("pdk_reg_secret"), "the token never shows in Debug");
        let err = c.pull.apply_env(|n| (n == "PATCHDECK_CA_FINGERPRINT").then(|| "xyz".to_owned())).unwrap_err();
        assert!(err.to_string().contains("PATCHDECK_CA_FINGERPRINT"), "{err}");
    }

    #[test]
    fn hooks_health_and_reboot_sections_are_read_and_checked() {
        let c = AgentConfig::parse(
            "hooks:\n  dir: /srv/hooks\n  timeout_secs: 30\nhealth:\n  unit_command: [/usr/local/bin/is-up]\n\
             reboot:\n  delayed_command: [shutdown, -r, \"+{minutes}\"]\n  boot_id_path: /run/test/boot_id\n",
        )
        .unwrap();
        assert_eq!(c.hooks.engine_hooks().dir, Path::new("/srv/hooks"));
        assert_eq!(c.hooks.engine_hooks().timeout, Duration::from_secs(30));
        assert_eq!(c.health.unit_command, ["/usr/local/bin/is-up"]);
        assert_eq!(c.reboot.boot_id_path, Path::new("/run/test/boot_id"));
        assert_eq!(
            c.reboot.rebooter().command_for(Duration::from_secs(61), Some("bye")),
            ["shutdown", "-r", "+2", "bye"]
        );
        for (bad, key) in [
            ("hooks:\n  dir: relative\n", "hooks.dir"),
            ("hooks:\n  timeout_secs: 0\n", "hooks.timeout_secs"),
            ("health:\n  unit_command: []\n", "health.unit_command"),
            ("health:\n  ca_cert: ca.pem\n", "health.ca_cert"),
            ("reboot:\n  command: []\n", "reboot.command"),
            ("reboot:\n  delayed_command: [shutdown, -r, now]\n", "reboot.delayed_command"),
            ("reboot:\n  boot_id_path: boot_id\n", "reboot.boot_id_path"),
        ] {
            let err = AgentConfig::parse(bad).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{bad}: {err:#}");
        }
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = AgentConfig::load(Some(Path::new("/nonexistent/agent.yaml"))).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/agent.yaml"), "{err:#}");
    }
}
