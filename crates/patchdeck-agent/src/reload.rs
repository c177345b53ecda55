//! Hot reload of the agent's YAML config file while `serve` runs.
//!
//! A [`Reloader`] task polls the config file's metadata (modification time, size, inode, like the
//! transport's [`FileWatcher`]) every `push.reload_interval_secs`, or every
//! [`PUSH_OFF_INTERVAL`] when the push API is off. On the same tick it polls the allow-list and
//! certificate files through the transport's [`FileWatcher`], which it owns so that it can re-point
//! it when the config names other files.
//!
//! When the config file changed, it is read and validated exactly as at start
//! ([`ConfigSource::load`]: [`AgentConfig::load`], then the `serve` flags). Then:
//!
//! - An invalid file is refused: logged, audited as a failed `config_reload` naming the problem,
//!   and the configuration in force stays, all of it.
//! - A valid file is compared key by key with the configuration in force ([`plan`]). Changed keys
//!   in [`LIVE_KEYS`] are applied at once when the push API runs; every other changed key is logged
//!   and listed in the audit record's `error` field as taking effect at the next restart.
//! - A reload is all or nothing: a new allow-list or certificate path is loaded and checked before
//!   anything is swapped, and if it fails, nothing of the new file is applied (fail closed, ADR
//!   0003). Touch the config file to try again once the named file is fixed.
//!
//! Like the transport's watcher, a changed file is tried once; a refused file is tried again when
//! it changes again.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;

use crate::api::{ApiState, RateLimitConfig};
use crate::audit::{AuditEvent, AuditLog, Outcome};
use crate::config::{AgentConfig, PushConfig, DEFAULT_CONFIG_PATH};
use crate::transport::{AllowList, FileWatcher, PollOutcome, ReloadHandle, ServerTls, TlsPaths};

/// How often the config file is checked when the push API is off (there is no
/// `push.reload_interval_secs` in force then).
pub const PUSH_OFF_INTERVAL: Duration = Duration::from_secs(5);

/// The keys that a reload applies while the agent runs, when the push API runs. Every other key
/// (and these too when the push API is off) takes effect at the next restart.
pub const LIVE_KEYS: &[&str] = &[
    "push.ca_bundle",
    "push.server_cert",
    "push.server_key",
    "push.crl",
    "push.allowlist",
    "push.reload_interval_secs",
    "push.reads_per_minute",
    "push.reads_burst",
    "push.mutations_per_minute",
    "push.mutations_burst",
];

/// Where `serve` got its configuration: the file, then the flags that override it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSource {
    /// `--config` / `PATCHDECK_AGENT_CONFIG`; `None` is the default path, where a missing file
    /// means the defaults.
    pub path: Option<PathBuf>,
    /// `--state-dir` / `PATCHDECK_AGENT_STATE_DIR`.
    pub state_dir: Option<PathBuf>,
}

impl ConfigSource {
    /// The file read.
    pub fn file(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG_PATH))
    }

    /// Reads and validates the file and applies the overrides.
    pub fn load(&self) -> anyhow::Result<AgentConfig> {
        let mut config = AgentConfig::load(self.path.as_deref())?;
        if let Some(dir) = &self.state_dir {
            config.state_dir = dir.clone();
        }
        config.validate()?;
        Ok(config)
    }
}

/// What a valid new config changes, against the configuration in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Changed keys applied now (dotted, e.g. `push.mutations_burst`).
    pub live: Vec<String>,
    /// Changed keys that take effect at the next restart.
    pub restart: Vec<String>,
    /// New rate limits to put in force.
    pub rate_limits: Option<RateLimitConfig>,
    /// A new allow-list file to load and watch.
    pub allowlist: Option<PathBuf>,
    /// New certificate files to load and watch.
    pub tls: Option<TlsPaths>,
}

impl Plan {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty()
    }

    /// The note recorded with a successful reload: the keys waiting for a restart.
    pub fn restart_note(&self) -> Option<String> {
        (!self.restart.is_empty()).then(|| format!("takes effect at the next restart: {}", self.restart.join(", ")))
    }
}

/// Decides what a reload from `in_force` to `new` does. `push_running`: the push API was started
/// (when it was not, nothing is live: `push.*` only matters once it starts).
pub fn plan(in_force: &AgentConfig, new: &AgentConfig, push_running: bool) -> Plan {
    let mut plan = Plan::default();
    for key in changed_keys(in_force, new) {
        if push_running && LIVE_KEYS.contains(&key.as_str()) {
            plan.live.push(key);
        } else {
            plan.restart.push(key);
        }
    }
    let live = |keys: &[&str]| plan.live.iter().any(|k| keys.contains(&k.as_str()));
    let rate_limits =
        live(&["push.reads_per_minute", "push.reads_burst", "push.mutations_per_minute", "push.mutations_burst"])
            .then(|| new.push.rate_limits());
    let allowlist = live(&["push.allowlist"]).then(|| new.push.allowlist.clone());
    let tls =
        live(&["push.ca_bundle", "push.server_cert", "push.server_key", "push.crl"]).then(|| tls_paths(&new.push));
    Plan { rate_limits, allowlist, tls, ..plan }
}

/// The configuration in force after `plan` was applied: `in_force` with the live keys of `new`.
/// Restart-only keys keep their running values, so a later reload still reports them.
pub fn in_force_after(in_force: &AgentConfig, new: &AgentConfig, plan: &Plan) -> AgentConfig {
    let mut next = in_force.clone();
    if plan.live.is_empty() {
        return next;
    }
    let (p, n) = (&mut next.push, &new.push);
    p.ca_bundle = n.ca_bundle.clone();
    p.server_cert = n.server_cert.clone();
    p.server_key = n.server_key.clone();
    p.crl = n.crl.clone();
    p.allowlist = n.allowlist.clone();
    p.reload_interval_secs = n.reload_interval_secs;
    p.reads_per_minute = n.reads_per_minute;
    p.reads_burst = n.reads_burst;
    p.mutations_per_minute = n.mutations_per_minute;
    p.mutations_burst = n.mutations_burst;
    next
}

/// The certificate files named by `push`.
pub fn tls_paths(push: &PushConfig) -> TlsPaths {
    TlsPaths {
        ca_bundle: push.ca_bundle.clone(),
        server_cert: push.server_cert.clone(),
        server_key: push.server_key.clone(),
        crl: push.crl.clone(),
    }
}

/// The dotted keys whose values differ, in file order.
fn changed_keys(a: &AgentConfig, b: &AgentConfig) -> Vec<String> {
    use serde_yaml_ng::Value;
    fn walk(prefix: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Mapping(a), Value::Mapping(b)) => {
                let mut keys: Vec<&Value> = a.keys().collect();
                keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
                for key in keys {
                    let key_text = key.as_str().map_or_else(|| format!("{key:?}"), str::to_owned);
                    let name = if prefix.is_empty() { key_text } else { format!("{prefix}.{key_text}") };
                    walk(&name, a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null), out);
                }
            }
            _ if a != b => out.push(prefix.to_owned()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match (serde_yaml_ng::to_value(a), serde_yaml_ng::to_value(b)) {
        (Ok(a), Ok(b)) => walk("", &a, &b, &mut out),
        // Cannot happen (plain data); then everything waits for a restart.
        _ => out.push("(whole file)".to_owned()),
    }
    out
}

/// What identifies a version of a file: `None` when it is missing.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len(), std::os::unix::fs::MetadataExt::ino(&meta)))
}

/// The running push API, as far as a reload can change it.
#[derive(Debug)]
pub struct LivePush {
    /// Swaps the transport's allow-list and TLS configuration.
    pub transport: ReloadHandle,
    /// Holds the rate limiter.
    pub api: ApiState,
    /// Watches the allow-list and certificate files named by the configuration in force.
    pub files: FileWatcher,
}

impl LivePush {
    /// Watches the files named by `push` (call right after loading them).
    pub fn new(transport: ReloadHandle, api: ApiState, push: &PushConfig) -> LivePush {
        let files = FileWatcher::new(transport.clone(), Some(push.allowlist.clone()), Some(tls_paths(push)));
        LivePush { transport, api, files }
    }
}

/// What one config check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file did not change.
    Unchanged,
    /// The new file was refused; the configuration in force stays.
    Refused(String),
    /// The new file was applied as far as it can be at run time.
    Applied(Plan),
}

/// Watches the config file (and, through the transport's watcher, the allow-list and certificate
/// files) and reloads what changed.
#[derive(Debug)]
pub struct Reloader {
    source: ConfigSource,
    seen: Stamp,
    in_force: AgentConfig,
    audit: AuditLog,
    push: Option<LivePush>,
}

impl Reloader {
    /// `in_force` is the configuration `serve` started with from `source`; `push` the running push
    /// API, if any. The file's state now counts as the state already in force.
    pub fn new(source: ConfigSource, in_force: AgentConfig, audit: AuditLog, push: Option<LivePush>) -> Reloader {
        let seen = stamp(source.file());
        Reloader { source, seen, in_force, audit, push }
    }

    /// The configuration in force (live keys as last applied, the others as started).
    pub fn in_force(&self) -> &AgentConfig {
        &self.in_force
    }

    /// Time between two checks.
    pub fn interval(&self) -> Duration {
        if self.push.is_some() {
            Duration::from_secs(self.in_force.push.reload_interval_secs.max(1))
        } else {
            PUSH_OFF_INTERVAL
        }
    }

    /// Runs [`Reloader::poll`] every [`Reloader::interval`] until the task is aborted.
    pub fn spawn(mut self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(self.interval()).await;
                self.poll().await;
            }
        })
    }

    /// Checks the config file, then the allow-list and certificate files, once.
    pub async fn poll(&mut self) -> ReloadOutcome {
        let outcome = self.check_config().await;
        if let Some(push) = &mut self.push {
            let files = push.files.poll().await;
            audit_files(&self.audit, &self.in_force.push.allowlist, files);
        }
        outcome
    }

    /// Reloads the config file if it changed since the last check.
    pub async fn check_config(&mut self) -> ReloadOutcome {
        let file = self.source.file().to_path_buf();
        let now = stamp(&file);
        if now == self.seen {
            return ReloadOutcome::Unchanged;
        }
        self.seen = now;
        let source = self.source.clone();
        let loaded = tokio::task::spawn_blocking(move || source.load())
            .await
            .unwrap_or_else(|join| Err(anyhow::anyhow!("config loader task failed: {join}")));
        let result = match loaded {
            Ok(new) => self.apply(new).await,
            Err(err) => Err(err),
        };
        let source = file.display().to_string();
        match result {
            Ok(plan) => {
                let note = plan.restart_note();
                if plan.is_empty() {
                    tracing::info!(config = %source, "config file re-read: nothing changed");
                } else {
                    tracing::info!(config = %source, live = ?plan.live, "config reloaded");
                }
                if let Some(note) = &note {
                    tracing::warn!(config = %source, keys = ?plan.restart, "config changed; {note}");
                }
                self.audit.record(AuditEvent::ConfigReload { source, outcome: Outcome::Success, error: note });
                ReloadOutcome::Applied(plan)
            }
            Err(err) => {
                let error = format!("{err:#}");
                tracing::error!(config = %source, %error, "config reload refused; the configuration in force stays");
                self.audit.record(AuditEvent::ConfigReload {
                    source,
                    outcome: Outcome::Failure,
                    error: Some(error.clone()),
                });
                ReloadOutcome::Refused(error)
            }
        }
    }

    /// Applies the live part of `new`, all or nothing.
    async fn apply(&mut self, new: AgentConfig) -> anyhow::Result<Plan> {
        let plan = plan(&self.in_force, &new, self.push.is_some());
        let Some(push) = &mut self.push else {
            return Ok(plan);
        };
        // Take the new files' state before loading them: a change during the load is seen by the
        // next poll.
        let files = (plan.allowlist.is_some() || plan.tls.is_some()).then(|| {
            FileWatcher::new(push.transport.clone(), Some(new.push.allowlist.clone()), Some(tls_paths(&new.push)))
        });
        // Check every new file before anything is swapped.
        let allowlist = match &plan.allowlist {
            Some(path) => Some(AllowList::load(path).await.context("push.allowlist")?),
            None => None,
        };
        let tls = match plan.tls.clone() {
            Some(paths) => Some(
                tokio::task::spawn_blocking(move || ServerTls::load(&paths))
                    .await
                    .context("certificate loader task failed")?
                    .context("push certificates")?,
            ),
            None => None,
        };
        if let Some(list) = allowlist {
            push.transport.set_allowlist(list);
            let source = new.push.allowlist.display().to_string();
            self.audit.record(AuditEvent::ConfigReload { source, outcome: Outcome::Success, error: None });
        }
        if let Some(tls) = tls {
            push.transport.set_tls(tls);
            self.audit.record(AuditEvent::CertificateReload { outcome: Outcome::Success, error: None });
        }
        if let Some(files) = files {
            push.files = files;
        }
        if let Some(limits) = &plan.rate_limits {
            tracing::info!(?limits, "rate limits in force");
            push.api.limiter().set_config(limits.clone());
        }
        self.in_force = in_force_after(&self.in_force, &new, &plan);
        Ok(plan)
    }
}

/// Audits what the transport's watcher reloaded.
fn audit_files(audit: &AuditLog, allowlist: &Path, outcome: PollOutcome) {
    if let Some(result) = outcome.allowlist {
        let (outcome, error) = outcome_of(result);
        audit.record(AuditEvent::ConfigReload { source: allowlist.display().to_string(), outcome, error });
    }
    if let Some(result) = outcome.tls {
        let (outcome, error) = outcome_of(result);
        audit.record(AuditEvent::CertificateReload { outcome, error });
    }
}

fn outcome_of<E: std::fmt::Display>(result: Result<(), E>) -> (Outcome, Option<String>) {
    match result {
        Ok(()) => (Outcome::Success, None),
        Err(err) => (Outcome::Failure, Some(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(yaml: &str) -> AgentConfig {
        AgentConfig::parse(yaml).unwrap()
    }

    #[test]
    fn nothing_changed_is_an_empty_plan() {
        let p = plan(&AgentConfig::default(), &AgentConfig::default(), true);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(p.restart_note(), None);
        assert_eq!((p.rate_limits, p.allowlist, p.tls), (None, None, None));
    }

    #[test]
    fn rate_limits_are_live_when_the_push_api_runs() {
        let old = with("push:\n  enabled: true\n");
        let new = with("push:\n  enabled: true\n  mutations_burst: 2\n  mutations_per_minute: 1\n");
        let p = plan(&old, &new, true);
        assert_eq!(p.live, ["push.mutations_per_minute", "push.mutations_burst"]);
        assert!(p.restart.is_empty());
        let limits = p.rate_limits.clone().unwrap();
        assert_eq!((limits.mutations.per_minute, limits.mutations.burst), (1, 2));
        assert_eq!(limits.reads, old.push.rate_limits().reads);
        assert_eq!((p.allowlist, p.tls), (None, None));
    }

    #[test]
    fn nothing_is_live_when_the_push_api_is_off() {
        let new = with("push:\n  mutations_burst: 2\n  allowlist: /etc/other\n");
        let p = plan(&AgentConfig::default(), &new, false);
        assert!(p.live.is_empty());
        assert_eq!(p.restart, ["push.allowlist", "push.mutations_burst"]);
        assert_eq!((p.rate_limits, p.allowlist, p.tls), (None, None, None));
    }

    #[test]
    fn file_paths_re_point_the_watcher() {
        let old = with("push:\n  enabled: true\n");
        let new = with("push:\n  enabled: true\n  allowlist: /etc/other\n  crl: /etc/tls/crl.pem\n");
        let p = plan(&old, &new, true);
        assert_eq!(p.live, ["push.crl", "push.allowlist"]);
        assert_eq!(p.allowlist.as_deref(), Some(Path::new("/etc/other")));
        let tls = p.tls.unwrap();
        assert_eq!(tls.crl.as_deref(), Some(Path::new("/etc/tls/crl.pem")));
        assert_eq!(tls.server_cert, old.push.server_cert);
        assert_eq!(p.rate_limits, None);
    }

    #[test]
    fn other_keys_wait_for_a_restart_and_are_named() {
        let old = with("push:\n  enabled: true\n");
        let new = with(
            "package_manager:\n  transaction_timeout_secs: 60\njobs:\n  max_concurrent: 2\n\
             push:\n  enabled: true\n  listen: 127.0.0.1:9999\n  reads_burst: 5\n\
             audit:\n  syslog: {address: \"logs.example:6514\", transport: tcp}\n",
        );
        let p = plan(&old, &new, true);
        assert_eq!(p.live, ["push.reads_burst"]);
        assert_eq!(
            p.restart,
            ["package_manager.transaction_timeout_secs", "jobs.max_concurrent", "push.listen", "audit.syslog"]
        );
        assert_eq!(
            p.restart_note().unwrap(),
            "takes effect at the next restart: package_manager.transaction_timeout_secs, jobs.max_concurrent, \
             push.listen, audit.syslog"
        );
        // Disabling the push API is a restart too.
        let p = plan(&old, &AgentConfig::default(), true);
        assert_eq!(p.restart, ["push.enabled"]);
    }

    #[test]
    fn the_config_in_force_takes_only_the_live_keys() {
        let old = with("push:\n  enabled: true\n");
        let new =
            with("jobs:\n  max_concurrent: 2\npush:\n  enabled: true\n  reads_burst: 5\n  reload_interval_secs: 1\n");
        let p = plan(&old, &new, true);
        let next = in_force_after(&old, &new, &p);
        assert_eq!((next.push.reads_burst, next.push.reload_interval_secs), (5, 1));
        assert_eq!(next.jobs, old.jobs);
        // The restart-only change is still pending, and reported again by the next reload.
        let again = plan(&next, &new, true);
        assert!(again.live.is_empty());
        assert_eq!(again.restart, ["jobs.max_concurrent"]);
    }

    #[test]
    fn state_dir_flag_overrides_the_file_on_reload_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        std::fs::write(&file, "state_dir: /var/lib/from-file\n").unwrap();
        let source = ConfigSource { path: Some(file.clone()), state_dir: Some(PathBuf::from("/srv/state")) };
        assert_eq!(source.load().unwrap().state_dir, Path::new("/srv/state"));
        assert_eq!(source.file(), file);
        assert_eq!(ConfigSource::default().file(), Path::new(DEFAULT_CONFIG_PATH));
    }

    #[tokio::test]
    async fn an_invalid_file_is_refused_and_the_config_in_force_stays() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        let audit_path = dir.path().join("audit.jsonl");
        let write = |text: &str| {
            let tmp = dir.path().join("agent.yaml.tmp");
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, &file).unwrap();
        };
        write("jobs:\n  max_concurrent: 3\n");
        let source = ConfigSource { path: Some(file.clone()), state_dir: None };
        let started = source.load().unwrap();
        let audit_config: crate::audit::AuditConfig =
            serde_yaml_ng::from_str(&format!("file:\n  path: {}\njournald:\n  mode: \"off\"\n", audit_path.display()))
                .unwrap();
        let clock: std::sync::Arc<dyn crate::jobs::Clock> = std::sync::Arc::new(crate::jobs::SystemClock);
        let audit = AuditLog::open(&audit_config, clock).unwrap();
        let mut reloader = Reloader::new(source, started.clone(), audit.clone(), None);
        assert_eq!(reloader.interval(), PUSH_OFF_INTERVAL);
        assert_eq!(reloader.poll().await, ReloadOutcome::Unchanged);

        write("jobs:\n  max_concurrent: 0\n");
        let ReloadOutcome::Refused(error) = reloader.poll().await else { panic!("not refused") };
        assert!(error.contains("jobs.max_concurrent must be between 1 and 64"), "{error}");
        assert_eq!(reloader.in_force(), &started);
        // Tried once: the same file is not refused again on every poll.
        assert_eq!(reloader.poll().await, ReloadOutcome::Unchanged);

        write("jobs:\n  max_concurrent: 4\n");
        let ReloadOutcome::Applied(plan) = reloader.poll().await else { panic!("not applied") };
        assert_eq!(plan.restart, ["jobs.max_concurrent"]);
        assert_eq!(reloader.in_force(), &started, "without a push API nothing is live");

        tokio::task::spawn_blocking(move || audit.flush()).await.unwrap();
        let lines: Vec<serde_json::Value> =
            std::fs::read_to_string(&audit_path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(lines[0]["event"], "config_reload");
        assert_eq!(lines[0]["outcome"], "failure");
        assert_eq!(lines[0]["source"], file.display().to_string());
        assert!(lines[0]["error"].as_str().unwrap().contains("jobs.max_concurrent"), "{lines:#?}");
        assert_eq!(lines[1]["outcome"], "success");
        assert_eq!(lines[1]["error"], "takes effect at the next restart: jobs.max_concurrent");
    }
}
