//! The manager's configuration: defaults, then the TOML file, then `PATCHDECK_*` environment
//! variables, then command-line flags (the last two through clap, see [`crate::cli`]).
//! Validated once, at start; the database URL is redacted in `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Where the manager looks for its config when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/patchdeck/patchdeck.toml";

/// The data directory of an installed manager (run as root by systemd).
pub const INSTALLED_DATA_DIR: &str = "/var/lib/patchdeck";

/// The commented example printed by `patchdeck print-config`; equal to the defaults (tested).
pub const EXAMPLE: &str = include_str!("../patchdeck.example.toml");

/// The whole configuration file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ManagerConfig {
    /// Keys, certificates and (without `database_url`) the SQLite database. Empty: the default,
    /// `/var/lib/patchdeck` for root and `~/.local/share/patchdeck` for anyone else.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; empty for the embedded SQLite in `data_dir`.
    pub database_url: String,
    /// Address and port of the HTTPS (or, with `tls.mode = "off"`, HTTP) listener.
    pub listen: SocketAddr,
    /// The URL users and agents reach the manager at (origin of the web UI, WebAuthn relying
    /// party, OIDC redirect, CRL address). Empty: `https://<this host's name>:<listen port>`.
    pub public_url: String,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub ca: CaConfig,
    pub audit: AuditConfig,
    pub agents: AgentsConfig,
    pub push: PushConfig,
    pub log: LogConfig,
    pub deployments: DeploymentsConfig,
    pub notifications: NotificationsConfig,
}

impl fmt::Debug for ManagerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerConfig")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .field("ca", &self.ca)
            .field("audit", &self.audit)
            .field("agents", &self.agents)
            .field("push", &self.push)
            .field("log", &self.log)
            .field("deployments", &self.deployments)
            .field("notifications", &self.notifications)
            .finish()
    }
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            data_dir: PathBuf::new(),
            database_url: String::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            public_url: String::new(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            ca: CaConfig::default(),
            audit: AuditConfig::default(),
            agents: AgentsConfig::default(),
            push: PushConfig::default(),
            log: LogConfig::default(),
            deployments: DeploymentsConfig::default(),
            notifications: NotificationsConfig::default(),
        }
    }
}

/// `[tls]` — the listener's certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// With `mode = "files"`: the certificate chain (PEM) and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig { mode: TlsMode::Internal, cert: PathBuf::new(), key: PathBuf::new() }
    }
}

/// How the listener gets its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// A server certificate issued by the internal CA (made at first start).
    Internal,
    /// An operator-supplied certificate and key (`tls.cert`, `tls.key`).
    Files,
    /// Plain HTTP, for running behind a TLS-terminating reverse proxy only.
    Off,
}

/// `[auth]` — sessions and login protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Lifetime of an access token (a signed JWT in an HttpOnly cookie).
    pub access_token_minutes: u64,
    /// A session whose refresh token is not used for this long ends.
    pub refresh_idle_minutes: u64,
    /// A session ends after this long whatever its use.
    pub session_max_hours: u64,
    /// Failed logins in a row that lock an account …
    pub lockout_threshold: u32,
    /// … for this long.
    pub lockout_minutes: u64,
    /// Login attempts per minute from one source address (all accounts together).
    pub login_attempts_per_minute: u32,
    /// Largest allowed lifetime of a personal API token.
    pub api_token_max_days: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            access_token_minutes: 15,
            refresh_idle_minutes: 60,
            session_max_hours: 12,
            lockout_threshold: 5,
            lockout_minutes: 15,
            login_attempts_per_minute: 20,
            api_token_max_days: 365,
        }
    }
}

impl AuthConfig {
    pub fn access_token_lifetime(&self) -> Duration {
        Duration::from_secs(self.access_token_minutes * 60)
    }
    pub fn refresh_idle(&self) -> Duration {
        Duration::from_secs(self.refresh_idle_minutes * 60)
    }
    pub fn session_max(&self) -> Duration {
        Duration::from_secs(self.session_max_hours * 3600)
    }
    pub fn lockout(&self) -> Duration {
        Duration::from_secs(self.lockout_minutes * 60)
    }
}

/// `[ca]` — the internal certificate authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// Validity of issued server and client certificates.
    pub cert_validity_days: u64,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig { cert_validity_days: 365 }
    }
}

/// `[audit]` — the hash-chained audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Entries older than this are pruned (the chain stays verifiable from the oldest kept row).
    pub retention_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { retention_days: 183 }
    }
}

/// `[agents]` — how pull-mode agents check in (see `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentsConfig {
    /// How long an idle check-in is held (the long-poll), which is also how often an idle agent
    /// calls; a host silent for two intervals is shown offline.
    pub checkin_interval_secs: u64,
    /// Check-ins processed at once (database work); more wait briefly, then get 503.
    pub max_concurrent_checkins: usize,
    /// Check-ins held open at once; beyond this, agents are told to come back later instead.
    pub max_held_checkins: usize,
    /// A queued command not delivered within this time is timed out.
    pub command_delivery_timeout_secs: u64,
    /// A delivered command with no final result within this time is timed out.
    pub command_result_timeout_secs: u64,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        AgentsConfig {
            checkin_interval_secs: 300,
            max_concurrent_checkins: 64,
            max_held_checkins: 50_000,
            command_delivery_timeout_secs: 3600,
            command_result_timeout_secs: 7200,
        }
    }
}

impl AgentsConfig {
    pub fn checkin_interval(&self) -> Duration {
        Duration::from_secs(self.checkin_interval_secs)
    }
}

/// `[push]` — how the manager reaches push-mode hosts (Linux_Patch_API agents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Run the push worker (health and inventory polls, command relay). With several processes
    /// on one PostgreSQL, only one of those that enable it works at a time (a lease).
    pub enabled: bool,
    /// The agents' port.
    pub port: u16,
    /// How often each push host's health is checked.
    pub health_interval_secs: u64,
    /// How often each reachable push host's packages and updates are read.
    pub inventory_interval_secs: u64,
    /// Calls to push hosts in flight at once, across all hosts.
    pub max_concurrent_calls: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            port: crate::push::client::DEFAULT_PORT,
            health_interval_secs: 300,
            inventory_interval_secs: 1800,
            max_concurrent_calls: 64,
        }
    }
}

/// `[deployments]` — how deployments and the background job queue run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentsConfig {
    /// Run background jobs (deployments) in this process. Any number of processes may: a job
    /// is claimed by one at a time.
    pub run_jobs: bool,
    /// How often a worker looks for due jobs (it is also woken at once by its own process).
    pub poll_interval_secs: u64,
    /// A failed host is retried once after this long, while its window is still open.
    pub retry_backoff_secs: u64,
    /// How long a rebooting host may take to come back (after the reboot delay) before it is
    /// marked failed.
    pub reboot_timeout_secs: u64,
    /// How long a dry run may take before the plan goes on without its preview.
    pub preview_timeout_secs: u64,
    /// A worker whose heartbeat is older than this is reported stale.
    pub worker_stale_secs: u64,
    /// Finished commands, deployments and jobs are deleted after this many days (the audit
    /// log has its own retention, `audit.retention_days`).
    pub retention_days: u64,
}

impl Default for DeploymentsConfig {
    fn default() -> Self {
        DeploymentsConfig {
            run_jobs: true,
            poll_interval_secs: 2,
            retry_backoff_secs: 120,
            reboot_timeout_secs: 900,
            preview_timeout_secs: 600,
            worker_stale_secs: 60,
            retention_days: 30,
        }
    }
}

/// `[log]` — structured logs on standard error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `patchdeck=debug,sqlx=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Json, level: "info".into() }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (for journald, Loki, …).
    Json,
    /// Human-readable lines.
    Text,
}

/// `[notifications]` — e-mail and webhooks (docs/notifications.md). Channels and rules are
/// set up through the API; these are the process-wide knobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// Run the sender in this process (every process that runs it shares the work safely).
    pub enabled: bool,
    /// How often the sender looks for due deliveries when nothing woke it.
    pub poll_secs: u64,
    /// Waits between attempts of a delivery that failed for a reason that may pass; after the
    /// last one the next failure is final (so a delivery gets `len + 1` attempts).
    pub retry_delays_secs: Vec<u64>,
    /// Hour of the day (UTC) from which the daily security digest is sent.
    pub digest_hour: u8,
    /// Certificates expiring within this many days are notified (once each).
    pub certificate_expiry_days: u64,
    /// Sent and failed deliveries are kept this long.
    pub retention_days: u64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            enabled: true,
            poll_secs: 5,
            retry_delays_secs: vec![30, 120, 600, 3600, 21_600],
            digest_hour: 7,
            certificate_expiry_days: 14,
            retention_days: 30,
        }
    }
}

/// Values given on the command line or in the environment; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub listen: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub tls_mode: Option<TlsMode>,
    pub log_format: Option<LogFormat>,
}

impl ManagerConfig {
    /// Reads `path` (or the default path when it exists), applies `overrides` and validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => Self::from_file(Path::new(DEFAULT_CONFIG_PATH))?,
            None => ManagerConfig::default(),
        };
        config.apply(overrides);
        config.finish()?;
        Ok(config)
    }

    /// Fills in derived defaults and validates a configuration built in code (tests, embedders).
    pub fn validated(mut self) -> anyhow::Result<Self> {
        self.finish()?;
        Ok(self)
    }

    fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a valid config file", path.display()))
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(v) = &o.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &o.database_url {
            self.database_url = v.clone();
        }
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = &o.public_url {
            self.public_url = v.clone();
        }
        if let Some(v) = o.tls_mode {
            self.tls.mode = v;
        }
        if let Some(v) = o.log_format {
            self.log.format = v;
        }
    }

    /// Fills in derived defaults and checks every value.
    fn finish(&mut self) -> anyhow::Result<()> {
        if self.data_dir.as_os_str().is_empty() {
            self.data_dir = default_data_dir();
        }
        if !self.database_url.is_empty()
            && !self.database_url.starts_with("postgres://")
            && !self.database_url.starts_with("postgresql://")
        {
            bail!("database_url must start with postgres:// (leave it empty for the embedded SQLite)");
        }
        if self.public_url.is_empty() {
            let scheme = if self.tls.mode == TlsMode::Off { "http" } else { "https" };
            let host = crate::pki::this_host_name();
            self.public_url = format!("{scheme}://{host}:{}", self.listen.port());
        }
        let url = url::Url::parse(&self.public_url).context("public_url is not a URL")?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            bail!("public_url must be an http(s) URL with a host, e.g. https://patchdeck.example.com:8443");
        }
        if url.path() != "/" || url.query().is_some() {
            bail!("public_url must not have a path or query: the manager serves at the root");
        }
        self.public_url = url.origin().ascii_serialization();
        if self.tls.mode == TlsMode::Files
            && (self.tls.cert.as_os_str().is_empty() || self.tls.key.as_os_str().is_empty())
        {
            bail!("tls.mode = \"files\" needs tls.cert and tls.key");
        }
        let a = &self.auth;
        check_range("auth.access_token_minutes", a.access_token_minutes, 1, 60)?;
        check_range("auth.refresh_idle_minutes", a.refresh_idle_minutes, 5, 24 * 60)?;
        check_range("auth.session_max_hours", a.session_max_hours, 1, 24 * 30)?;
        check_range("auth.lockout_threshold", u64::from(a.lockout_threshold), 1, 100)?;
        check_range("auth.lockout_minutes", a.lockout_minutes, 1, 24 * 60)?;
        check_range("auth.login_attempts_per_minute", u64::from(a.login_attempts_per_minute), 1, 10_000)?;
        check_range("auth.api_token_max_days", a.api_token_max_days, 1, 3650)?;
        check_range("ca.cert_validity_days", self.ca.cert_validity_days, 1, 3650)?;
        check_range("audit.retention_days", self.audit.retention_days, 1, 36_500)?;
        let g = &self.agents;
        check_range("agents.checkin_interval_secs", g.checkin_interval_secs, 1, 3600)?;
        check_range("agents.max_concurrent_checkins", g.max_concurrent_checkins as u64, 1, 100_000)?;
        check_range("agents.max_held_checkins", g.max_held_checkins as u64, 0, 10_000_000)?;
        check_range("agents.command_delivery_timeout_secs", g.command_delivery_timeout_secs, 60, 30 * 86_400)?;
        check_range("agents.command_result_timeout_secs", g.command_result_timeout_secs, 60, 30 * 86_400)?;
        let p = &self.push;
        check_range("push.port", u64::from(p.port), 1, 65_535)?;
        check_range("push.health_interval_secs", p.health_interval_secs, 1, 86_400)?;
        check_range("push.inventory_interval_secs", p.inventory_interval_secs, 1, 7 * 86_400)?;
        check_range("push.max_concurrent_calls", p.max_concurrent_calls as u64, 1, 10_000)?;
        let d = &self.deployments;
        check_range("deployments.poll_interval_secs", d.poll_interval_secs, 1, 300)?;
        check_range("deployments.retry_backoff_secs", d.retry_backoff_secs, 1, 86_400)?;
        check_range("deployments.reboot_timeout_secs", d.reboot_timeout_secs, 30, 86_400)?;
        check_range("deployments.preview_timeout_secs", d.preview_timeout_secs, 10, 86_400)?;
        check_range("deployments.worker_stale_secs", d.worker_stale_secs, 10, 86_400)?;
        check_range("deployments.retention_days", d.retention_days, 1, 36_500)?;
        let n = &self.notifications;
        check_range("notifications.poll_secs", n.poll_secs, 1, 3600)?;
        check_range("notifications.retry_delays_secs (number of retries)", n.retry_delays_secs.len() as u64, 0, 20)?;
        for delay in &n.retry_delays_secs {
            check_range("notifications.retry_delays_secs", *delay, 1, 7 * 86_400)?;
        }
        check_range("notifications.digest_hour", u64::from(n.digest_hour), 0, 23)?;
        check_range("notifications.certificate_expiry_days", n.certificate_expiry_days, 1, 365)?;
        check_range("notifications.retention_days", n.retention_days, 1, 3650)?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .with_context(|| format!("log.level {:?} is not a valid filter", self.log.level))?;
        Ok(())
    }

    /// The SQLite file used without `database_url`.
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("patchdeck.db")
    }

    /// The storage this config selects.
    pub fn database(&self) -> patchdeck_store::DatabaseConfig {
        if self.database_url.is_empty() {
            patchdeck_store::DatabaseConfig::Sqlite { path: self.sqlite_path() }
        } else {
            patchdeck_store::DatabaseConfig::Postgres { url: self.database_url.clone() }
        }
    }
}

fn check_range(name: &str, value: u64, min: u64, max: u64) -> anyhow::Result<()> {
    if !(min..=max).contains(&value) {
        bail!("{name} must be between {min} and {max}, got {value}");
    }
    Ok(())
}

/// `/var/lib/patchdeck` for root, `$XDG_DATA_HOME/patchdeck` (or `~/.local/share/patchdeck`) else.
pub fn default_data_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from(INSTALLED_DATA_DIR);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("patchdeck");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/patchdeck"),
        None => PathBuf::from(INSTALLED_DATA_DIR),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:redacted@host/db`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) if url.is_empty() => String::new(),
        Err(_) => "[unparseable URL]".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_is_the_defaults() {
        let parsed: ManagerConfig = toml::from_str(EXAMPLE).expect("example parses");
        assert_eq!(parsed, ManagerConfig::default());
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n[auth]\nlockout_threshold = 3\n").unwrap();
        let overrides = Overrides { listen: Some("127.0.0.1:9443".parse().unwrap()), ..Overrides::default() };
        let config = ManagerConfig::load(Some(&file), &overrides).unwrap();
        assert_eq!(config.listen.port(), 9443);
        assert_eq!(config.auth.lockout_threshold, 3);
        assert!(config.public_url.ends_with(":9443"), "{}", config.public_url);
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "[auth]\naccess_token_minutes = 0\n").unwrap();
        let err = ManagerConfig::load(Some(&file), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("auth.access_token_minutes"), "{err:#}");
        std::fs::write(&file, "[auth]\nbogus = 1\n").unwrap();
        let err = ManagerConfig::load(Some(&file), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
        let overrides = Overrides { database_url: Some("mysql://x".into()), ..Overrides::default() };
        let err = ManagerConfig::load(None, &overrides).unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
        let overrides = Overrides { public_url: Some("https://h.example/sub".into()), ..Overrides::default() };
        assert!(ManagerConfig::load(None, &overrides).is_err());
    }

    #[test]
    fn notification_settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        for (text, name) in [
            ("[notifications]\ndigest_hour = 24\n", "notifications.digest_hour"),
            ("[notifications]\nretry_delays_secs = [30, 0]\n", "notifications.retry_delays_secs"),
            ("[notifications]\ncertificate_expiry_days = 0\n", "notifications.certificate_expiry_days"),
        ] {
            std::fs::write(&file, text).unwrap();
            let err = ManagerConfig::load(Some(&file), &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains(name), "{err:#}");
        }
        std::fs::write(&file, "[notifications]\nretry_delays_secs = []\ndigest_hour = 23\n").unwrap();
        let config = ManagerConfig::load(Some(&file), &Overrides::default()).unwrap();
        assert!(config.notifications.retry_delays_secs.is_empty(), "no retries is allowed");
        assert_eq!(config.notifications.certificate_expiry_days, 14);
    }

    #[test]
    fn database_password_is_redacted() {
        let config = ManagerConfig { database_url: "postgres://pd:hunter2@db/pd".into(), ..ManagerConfig::default() };
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("pd:redacted@db"), "{shown}");
    }
}
