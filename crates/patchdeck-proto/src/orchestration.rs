//! The wire types of patch orchestration on the agent: pre- and post-patch hooks, health checks,
//! the reboot warning and the dry-run preview (`docs/protocol.md`, "Orchestration").
//!
//! A deployment asks an agent for a dry run ([`DryRunPreview`] in the result), runs the upgrade
//! (the agent runs its local hooks around it: [`HookRun`]s in the result), reboots with a
//! warning to logged-in users ([`validate_reboot_message`]), and then checks the host
//! ([`crate::agent::Command::HealthCheck`] with units and [`Probe`]s, answered with
//! [`CheckResult`]s). The rules here are pure; the manager and the agent both apply them.

use serde::{Deserialize, Serialize};

use crate::agent::PackageChange;
use crate::inventory::TxAction;
use crate::lpa::validate::{ValidationError, MAX_NAME_LEN, MAX_REASON_LEN};

/// A pre-patch hook failed (or timed out): the job changed nothing.
pub const PRE_HOOK_FAILED: &str = "pre_hook_failed";
/// A post-patch hook failed (or timed out): the package changes stand and are reported.
pub const POST_HOOK_FAILED: &str = "post_hook_failed";
/// At least one check of a health check failed.
pub const HEALTH_CHECK_FAILED: &str = "health_check_failed";

/// Most checks (units plus probes) in one health check.
pub const MAX_HEALTH_CHECKS: usize = 32;
/// Shortest and longest probe timeout, in seconds.
pub const MIN_PROBE_TIMEOUT_SECS: u64 = 1;
pub const MAX_PROBE_TIMEOUT_SECS: u64 = 60;
/// Longest probe URL or address, in bytes.
pub const MAX_PROBE_TARGET_LEN: usize = 2048;
/// Longest reboot warning, in characters (the Linux_Patch_API's `reason` rule).
pub const MAX_REBOOT_MESSAGE_LEN: usize = MAX_REASON_LEN;
/// Most bytes of all hooks' output together in one command result (each hook's own output is
/// cut to its share, keeping the end).
pub const MAX_RESULT_HOOK_OUTPUT_BYTES: usize = 64 * 1024;

/// Unit suffixes systemd knows; a unit name without one gets `.service`.
pub const UNIT_SUFFIXES: [&str; 11] = [
    ".service",
    ".socket",
    ".target",
    ".mount",
    ".automount",
    ".swap",
    ".timer",
    ".path",
    ".slice",
    ".scope",
    ".device",
];

fn default_probe_timeout() -> u64 {
    10
}

/// A network check the agent runs against a service (on the host itself or near it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Probe {
    /// `GET url` (no redirects followed, no proxy); passes when the status is `expect_status`,
    /// or any 2xx when it is absent. Only the status is looked at; the body is not read.
    Http {
        /// `http://…` or `https://…` (https is checked against the host's CA bundle, or the
        /// agent's `health.ca_cert`).
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect_status: Option<u16>,
        #[serde(default = "default_probe_timeout")]
        timeout_secs: u64,
    },
    /// A TCP connection to `address` (`host:port`, `[v6]:port`); passes when it is accepted.
    Tcp {
        address: String,
        #[serde(default = "default_probe_timeout")]
        timeout_secs: u64,
    },
}

impl Probe {
    /// The URL or address probed.
    pub fn target(&self) -> &str {
        match self {
            Probe::Http { url, .. } => url,
            Probe::Tcp { address, .. } => address,
        }
    }

    pub fn timeout_secs(&self) -> u64 {
        match self {
            Probe::Http { timeout_secs, .. } | Probe::Tcp { timeout_secs, .. } => *timeout_secs,
        }
    }
}

/// What a [`CheckResult`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A systemd unit that must be active (`systemctl is-active`).
    Unit,
    Http,
    Tcp,
}

/// One check of a health check and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckResult {
    pub kind: CheckKind,
    /// The unit (with its suffix), the URL or the address.
    pub target: String,
    pub passed: bool,
    /// A short human reason: `active`, `failed`, `HTTP 200`, `expected 2xx, got HTTP 503`,
    /// `connection refused`, `no answer within 5 s`, …
    pub detail: String,
    pub duration_ms: u64,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPhase {
    /// Before the package transaction (`pre-patch.d/`).
    Pre,
    /// After it (`post-patch.d/`).
    Post,
}

impl HookPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            HookPhase::Pre => "pre",
            HookPhase::Post => "post",
        }
    }

    /// The hook directory's name under the hooks directory.
    pub fn dir_name(self) -> &'static str {
        match self {
            HookPhase::Pre => "pre-patch.d",
            HookPhase::Post => "post-patch.d",
        }
    }
}

/// How one hook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookOutcome {
    /// Exit code 0.
    Passed,
    /// Another exit code, killed by a signal, or could not be started.
    Failed,
    /// Ran past the hook timeout; its process group was killed.
    TimedOut,
    /// Not run: not a regular executable file, writable by group or others, owned by neither
    /// root nor the agent's user, or in a directory that is unsafe (see `output` for why).
    Skipped,
}

impl HookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            HookOutcome::Passed => "passed",
            HookOutcome::Failed => "failed",
            HookOutcome::TimedOut => "timed_out",
            HookOutcome::Skipped => "skipped",
        }
    }
}

/// One local hook executable and how its run went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookRun {
    pub phase: HookPhase,
    /// The file name in `pre-patch.d/` or `post-patch.d/`.
    pub name: String,
    pub outcome: HookOutcome,
    /// `None` when it was killed by a signal, timed out, could not start, or was skipped.
    pub exit_code: Option<i32>,
    pub duration_ms: u64,
    /// Its stdout and stderr, interleaved as they came, the end kept; for a skipped hook, why.
    #[serde(default)]
    pub output: String,
}

/// What a dry run would do, by kind of change, and whether the host would need a reboot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunPreview {
    #[serde(default)]
    pub installs: Vec<PackageChange>,
    #[serde(default)]
    pub upgrades: Vec<PackageChange>,
    #[serde(default)]
    pub downgrades: Vec<PackageChange>,
    #[serde(default)]
    pub reinstalls: Vec<PackageChange>,
    #[serde(default)]
    pub removals: Vec<PackageChange>,
    /// The host would need a reboot after the real run: the transaction touches a package that
    /// needs one (kernel, C library, init, D-Bus, microcode, firmware; `docs/agent.md`), or the
    /// host already needs one.
    pub reboot_required: bool,
    /// Why, one line per piece of evidence (`linux-image-6.1.0-27-amd64 is installed`, …).
    #[serde(default)]
    pub reboot_reasons: Vec<String>,
}

impl DryRunPreview {
    /// Sorts `changes` by kind; no reboot prediction (the agent adds it).
    pub fn from_changes(changes: &[PackageChange]) -> DryRunPreview {
        let mut preview = DryRunPreview::default();
        for change in changes {
            let list = match change.action {
                TxAction::Install => &mut preview.installs,
                TxAction::Upgrade => &mut preview.upgrades,
                TxAction::Downgrade => &mut preview.downgrades,
                TxAction::Reinstall => &mut preview.reinstalls,
                TxAction::Remove => &mut preview.removals,
            };
            list.push(change.clone());
        }
        preview
    }

    /// How many changes there are of every kind.
    pub fn len(&self) -> usize {
        self.installs.len() + self.upgrades.len() + self.downgrades.len() + self.reinstalls.len() + self.removals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A unit name as checked: `[A-Za-z0-9@._:-]+`, at most 256 characters, not starting with `-` or
/// `.`, with `.service` added when it has no known suffix ([`UNIT_SUFFIXES`]).
pub fn normalize_unit(field: &str, name: &str) -> Result<String, ValidationError> {
    let err = |message: String| Err(ValidationError::new(field, message));
    if name.is_empty() {
        return err("must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return err(format!("must be at most {MAX_NAME_LEN} characters (got {})", name.len()));
    }
    if name.starts_with('-') || name.starts_with('.') {
        return err(format!("must not start with {:?}", &name[..1]));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "@._:-".contains(*c))) {
        return err(format!("contains {bad:?}; allowed are A-Z a-z 0-9 @ . _ : -"));
    }
    if UNIT_SUFFIXES.iter().any(|s| name.len() > s.len() && name.ends_with(s)) {
        Ok(name.to_owned())
    } else {
        Ok(format!("{name}.service"))
    }
}

/// Checks a health check: 1 to [`MAX_HEALTH_CHECKS`] checks, unit names ([`normalize_unit`]),
/// http(s) URLs with a host, `host:port` addresses, statuses 100–599 and timeouts of 1–60 s.
/// Fields are named `units[i]`, `probes[i].url`, … as in the command.
pub fn validate_health_check(units: &[String], probes: &[Probe]) -> Result<(), ValidationError> {
    let count = units.len() + probes.len();
    if count == 0 {
        return Err(ValidationError::new("units", "a health check must name at least one unit or probe"));
    }
    if count > MAX_HEALTH_CHECKS {
        return Err(ValidationError::new(
            if probes.is_empty() { "units" } else { "probes" },
            format!("at most {MAX_HEALTH_CHECKS} checks (units and probes together) are allowed (got {count})"),
        ));
    }
    for (i, unit) in units.iter().enumerate() {
        normalize_unit(&format!("units[{i}]"), unit)?;
    }
    for (i, probe) in probes.iter().enumerate() {
        let timeout = probe.timeout_secs();
        if !(MIN_PROBE_TIMEOUT_SECS..=MAX_PROBE_TIMEOUT_SECS).contains(&timeout) {
            return Err(ValidationError::new(
                format!("probes[{i}].timeout_secs"),
                format!(
                    "must be between {MIN_PROBE_TIMEOUT_SECS} and {MAX_PROBE_TIMEOUT_SECS} seconds (got {timeout})"
                ),
            ));
        }
        match probe {
            Probe::Http { url, expect_status, .. } => {
                validate_http_url(&format!("probes[{i}].url"), url)?;
                if let Some(status) = expect_status.filter(|s| !(100..=599).contains(s)) {
                    return Err(ValidationError::new(
                        format!("probes[{i}].expect_status"),
                        format!("must be an HTTP status between 100 and 599 (got {status})"),
                    ));
                }
            }
            Probe::Tcp { address, .. } => {
                split_address(address).map_err(|m| ValidationError::new(format!("probes[{i}].address"), m))?;
            }
        }
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host, no whitespace or control characters.
fn validate_http_url(field: &str, url: &str) -> Result<(), ValidationError> {
    let err = |message: String| Err(ValidationError::new(field, message));
    if url.len() > MAX_PROBE_TARGET_LEN {
        return err(format!("must be at most {MAX_PROBE_TARGET_LEN} bytes long"));
    }
    if let Some(bad) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return err(format!("must not contain {bad:?}"));
    }
    let lower = url.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://")) else {
        return err(format!("must be an http:// or https:// URL (got {url:?})"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return err("must not carry user information (user@host)".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return err(format!("has no host (got {url:?})"));
    }
    Ok(())
}

/// `host:port` or `[v6]:port` split into host and port; the message names what is wrong.
pub fn split_address(address: &str) -> Result<(&str, u16), String> {
    if address.len() > MAX_PROBE_TARGET_LEN {
        return Err(format!("must be at most {MAX_PROBE_TARGET_LEN} bytes long"));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("must be host:port (got {address:?})"));
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("must end in a port between 1 and 65535 (got {address:?})"))?;
    let host = match host.strip_prefix('[') {
        Some(v6) => {
            let v6 = v6.strip_suffix(']').ok_or_else(|| format!("an IPv6 address needs its ] (got {address:?})"))?;
            if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
                return Err(format!("{v6:?} is not an IPv6 address"));
            }
            v6
        }
        None => {
            if host.is_empty() || host.starts_with(['-', '.']) {
                return Err(format!("must be host:port (got {address:?})"));
            }
            if let Some(bad) = host.chars().find(|c| !(c.is_ascii_alphanumeric() || ".-_".contains(*c))) {
                return Err(format!("the host contains {bad:?} (IPv6 addresses go in brackets: [::1]:22)"));
            }
            host
        }
    };
    Ok((host, port))
}

/// A reboot warning: at most [`MAX_REBOOT_MESSAGE_LEN`] characters, not blank, no control
/// characters (no newlines either: it is one line of `wall`).
pub fn validate_reboot_message(field: &str, message: &str) -> Result<(), ValidationError> {
    let len = message.chars().count();
    if message.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be blank (leave it out for no warning)"));
    }
    if len > MAX_REBOOT_MESSAGE_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_REBOOT_MESSAGE_LEN} characters (got {len})"),
        ));
    }
    if let Some(c) = message.chars().find(|c| c.is_control()) {
        return Err(ValidationError::new(field, format!("must not contain control characters (got {c:?})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_get_a_suffix_and_bad_names_are_refused() {
        assert_eq!(normalize_unit("u", "nginx").unwrap(), "nginx.service");
        assert_eq!(normalize_unit("u", "sshd.service").unwrap(), "sshd.service");
        assert_eq!(normalize_unit("u", "getty@tty1.service").unwrap(), "getty@tty1.service");
        assert_eq!(normalize_unit("u", "docker.socket").unwrap(), "docker.socket");
        assert_eq!(normalize_unit("u", "multi-user.target").unwrap(), "multi-user.target");
        assert_eq!(normalize_unit("u", "app.v2").unwrap(), "app.v2.service");
        for bad in ["", "-H", "--all", ".service", "a b", "a;b", "x/y", "ü", &"a".repeat(257)] {
            let e = normalize_unit("units[0]", bad).unwrap_err();
            assert_eq!(e.field, "units[0]", "{bad}");
        }
    }

    #[test]
    fn addresses_split_or_say_why_not() {
        assert_eq!(split_address("127.0.0.1:22"), Ok(("127.0.0.1", 22)));
        assert_eq!(split_address("db.example:5432"), Ok(("db.example", 5432)));
        assert_eq!(split_address("[::1]:8080"), Ok(("::1", 8080)));
        for bad in ["localhost", "localhost:0", "localhost:99999", ":80", "::1:80", "[::1:80", "a b:1", "-x:1"] {
            assert!(split_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn health_checks_are_validated_naming_the_field() {
        let http = |url: &str| Probe::Http { url: url.into(), expect_status: None, timeout_secs: 5 };
        validate_health_check(&["nginx".into()], &[http("http://127.0.0.1:8080/health")]).unwrap();
        validate_health_check(&[], &[Probe::Tcp { address: "[::1]:5432".into(), timeout_secs: 60 }]).unwrap();
        let field = |units: &[String], probes: &[Probe]| validate_health_check(units, probes).unwrap_err().field;
        assert_eq!(field(&[], &[]), "units");
        assert_eq!(field(&vec!["a".into(); 33], &[]), "units");
        assert_eq!(field(&["ok".into(), "b;c".into()], &[]), "units[1]");
        for url in ["ftp://x/", "file:///etc/passwd", "http://", "http:///x", "http://u@h/", "http://a b/", "x"] {
            assert_eq!(field(&[], &[http(url)]), "probes[0].url", "{url}");
        }
        let slow = Probe::Tcp { address: "h:1".into(), timeout_secs: 61 };
        assert_eq!(field(&[], &[slow]), "probes[0].timeout_secs");
        let zero = Probe::Http { url: "http://h/".into(), expect_status: None, timeout_secs: 0 };
        assert_eq!(field(&[], &[zero]), "probes[0].timeout_secs");
        let status = Probe::Http { url: "http://h/".into(), expect_status: Some(600), timeout_secs: 1 };
        assert_eq!(field(&[], &[status]), "probes[0].expect_status");
        assert_eq!(field(&[], &[Probe::Tcp { address: "h".into(), timeout_secs: 1 }]), "probes[0].address");
    }

    #[test]
    fn reboot_messages_are_one_printable_line() {
        validate_reboot_message("message", "Patching: rebooting in 5 minutes, save your work").unwrap();
        validate_reboot_message("message", &"é".repeat(256)).unwrap();
        for bad in ["", "   ", "two\nlines", "bell\u{7}", &"x".repeat(257)] {
            assert_eq!(validate_reboot_message("message", bad).unwrap_err().field, "message", "{bad:?}");
        }
    }

    #[test]
    fn previews_sort_changes_by_kind() {
        let change = |name: &str, action| PackageChange { name: name.into(), arch: None, action, from: None, to: None };
        let preview = DryRunPreview::from_changes(&[
            change("a", TxAction::Install),
            change("b", TxAction::Upgrade),
            change("c", TxAction::Remove),
            change("d", TxAction::Downgrade),
            change("e", TxAction::Reinstall),
            change("f", TxAction::Upgrade),
        ]);
        assert_eq!(preview.installs.len(), 1);
        assert_eq!(preview.upgrades.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["b", "f"]);
        assert_eq!((preview.removals.len(), preview.downgrades.len(), preview.reinstalls.len()), (1, 1, 1));
        assert_eq!(preview.len(), 6);
        assert!(!preview.reboot_required);
    }
}
