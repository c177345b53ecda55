//! Health checks (`health_check` commands): systemd units that must be active and HTTP or TCP
//! probes, all run at once, each with its own time limit. Nothing here changes the host.
//!
//! - A unit is asked with `health.unit_command` (default `systemctl is-active`) and `-- <unit>`
//!   through the package layer's process runner; exit code 0 is active, and the first line it
//!   prints is the state shown (`active`, `inactive`, `failed`, …).
//! - An HTTP probe is one `GET`: no redirects followed, no proxy, only the status looked at (the
//!   body is never read). https is verified against `health.ca_cert` or the system bundle.
//! - A TCP probe resolves `host:port` and passes when a connection is accepted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use patchdeck_pkg::exec::Cmd;
use patchdeck_proto::lpa::validate::ValidationError;
use patchdeck_proto::orchestration::{normalize_unit, split_address, validate_health_check};
use patchdeck_proto::{agent::Probe, orchestration::CheckKind, orchestration::CheckResult};

/// Where the CA bundle is looked for when `health.ca_cert` is unset (Debian and derivatives,
/// Fedora/RHEL, openSUSE, Arch, Alpine).
pub const SYSTEM_CA_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ca-certificates/extracted/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Longest a unit query may take.
const UNIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `detail` kept, in bytes.
const MAX_DETAIL: usize = 300;

/// How checks are run (from `health:` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// The unit query; `--` and the unit are appended.
    pub unit_command: Vec<String>,
    /// CA certificates for https probes; `None`: the first of [`SYSTEM_CA_BUNDLES`] that exists.
    pub ca_cert: Option<PathBuf>,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings::from_config(&crate::config::HealthConfig::default())
    }
}

impl HealthSettings {
    pub fn from_config(config: &crate::config::HealthConfig) -> HealthSettings {
        HealthSettings { unit_command: config.unit_command.clone(), ca_cert: config.ca_cert.clone() }
    }
}

/// Runs every check at once; results in the order asked (units, then probes). Refuses a check
/// list that breaks the protocol's rules, naming the field.
pub async fn run_checks(
    settings: &HealthSettings,
    units: &[String],
    probes: &[Probe],
) -> Result<Vec<CheckResult>, ValidationError> {
    validate_health_check(units, probes)?;
    let units: Vec<String> =
        units.iter().enumerate().map(|(i, u)| normalize_unit(&format!("units[{i}]"), u)).collect::<Result<_, _>>()?;
    let client =
        if probes.iter().any(|p| matches!(p, Probe::Http { .. })) { Some(http_client(settings)) } else { None };
    let unit_checks = units.into_iter().map(|unit| {
        let argv = settings.unit_command.clone();
        async move { check_unit(argv, unit).await }
    });
    let probe_checks = probes.iter().map(|probe| {
        let client = client.clone();
        async move {
            match probe {
                Probe::Http { url, expect_status, timeout_secs } => {
                    let timeout = Duration::from_secs(*timeout_secs);
                    let https = url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"));
                    match client.expect("a client is built when there are http probes") {
                        Ok((_, Some(why))) if https => failed(CheckKind::Http, url, why, Duration::ZERO),
                        Ok((client, _)) => check_http(&client, url, *expect_status, timeout).await,
                        Err(why) => failed(CheckKind::Http, url, why, Duration::ZERO),
                    }
                }
                Probe::Tcp { address, timeout_secs } => check_tcp(address, Duration::from_secs(*timeout_secs)).await,
            }
        }
    });
    let (mut results, probes) = futures_util::future::join(
        futures_util::future::join_all(unit_checks),
        futures_util::future::join_all(probe_checks),
    )
    .await;
    results.extend(probes);
    Ok(results)
}

fn short(text: &str) -> String {
    let text = text.trim();
    if text.len() <= MAX_DETAIL {
        return text.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn failed(kind: CheckKind, target: &str, detail: impl AsRef<str>, took: Duration) -> CheckResult {
    CheckResult {
        kind,
        target: target.to_owned(),
        passed: false,
        detail: short(detail.as_ref()),
        duration_ms: millis(took),
    }
}

async fn check_unit(argv: Vec<String>, unit: String) -> CheckResult {
    let started = Instant::now();
    let Some((program, args)) = argv.split_first() else {
        return failed(CheckKind::Unit, &unit, "health.unit_command is empty", Duration::ZERO);
    };
    let cmd = Cmd::new(program.clone(), UNIT_TIMEOUT).args(args).arg("--").arg(&unit);
    let shown = cmd.to_string();
    let output = tokio::task::spawn_blocking(move || cmd.run(None)).await;
    let took = started.elapsed();
    let output = match output {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return failed(CheckKind::Unit, &unit, format!("`{shown}` failed: {err}"), took),
        Err(err) => return failed(CheckKind::Unit, &unit, format!("the check worker failed: {err}"), took),
    };
    let first = |text: &str| text.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned);
    let state = first(&output.stdout);
    if output.success() {
        return CheckResult {
            kind: CheckKind::Unit,
            target: unit,
            passed: true,
            detail: short(state.as_deref().unwrap_or("active")),
            duration_ms: millis(took),
        };
    }
    let detail = match (state, first(&output.stderr), output.code()) {
        (Some(state), _, _) => state,
        (None, Some(err), _) => err,
        (None, None, Some(code)) => format!("not active (exit code {code})"),
        (None, None, None) => "not active (the query was killed by a signal)".to_owned(),
    };
    failed(CheckKind::Unit, &unit, detail, took)
}

/// Every certificate of `health.ca_cert`, or of the first system bundle found, as PEM.
fn ca_pem(settings: &HealthSettings) -> Result<String, String> {
    let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    match &settings.ca_cert {
        Some(path) => read(path),
        None => SYSTEM_CA_BUNDLES.iter().map(Path::new).find(|p| p.is_file()).map(read).unwrap_or_else(|| {
            Err(format!("no CA bundle for https probes in {}; set health.ca_cert", SYSTEM_CA_BUNDLES.join(", ")))
        }),
    }
}

/// One client for the probes of a check: no redirects, no proxy, https verified against the CA
/// bundle. With no usable bundle the client trusts nothing, and the second value says why https
/// probes cannot pass (plain http still works).
fn http_client(settings: &HealthSettings) -> Result<(reqwest::Client, Option<String>), String> {
    let (tls, https_problem) = match ca_pem(settings)
        .and_then(|pem| crate::pull::client::pinned_tls(&pem, None).map_err(|e| format!("the CA bundle: {e}")))
    {
        Ok(tls) => (tls, None),
        Err(why) => (crate::pull::client::pinned_tls_empty().map_err(|e| e.to_string())?, Some(why)),
    };
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("patchdeck-agent/", env!("CARGO_PKG_VERSION"), " health-check"))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok((client, https_problem))
}

/// The error and its causes, `: `-joined (reqwest's own message rarely says why).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

async fn check_http(client: &reqwest::Client, url: &str, expect: Option<u16>, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let response = client.get(url).timeout(timeout).send().await;
    let took = started.elapsed();
    let response = match response {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            return failed(CheckKind::Http, url, format!("no answer within {} s", timeout.as_secs()), took)
        }
        Err(err) => return failed(CheckKind::Http, url, error_chain(&err.without_url()), took),
    };
    let status = response.status();
    let shown = match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    let passed = match expect {
        Some(code) => status.as_u16() == code,
        None => status.is_success(),
    };
    if passed {
        return CheckResult {
            kind: CheckKind::Http,
            target: url.to_owned(),
            passed,
            detail: shown,
            duration_ms: millis(took),
        };
    }
    let wanted = expect.map_or_else(|| "2xx".to_owned(), |c| format!("HTTP {c}"));
    failed(CheckKind::Http, url, format!("expected {wanted}, got {shown}"), took)
}

async fn check_tcp(address: &str, timeout: Duration) -> CheckResult {
    let started = Instant::now();
    let attempt = async {
        let (host, port) = split_address(address)?;
        let addrs: Vec<std::net::SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
        let mut last = format!("{host} has no address");
        for addr in addrs {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(_) => return Ok(addr),
                Err(e) => last = format!("{addr}: {e}"),
            }
        }
        Err(last)
    };
    let outcome = tokio::time::timeout(timeout, attempt).await;
    let took = started.elapsed();
    match outcome {
        Ok(Ok(addr)) => CheckResult {
            kind: CheckKind::Tcp,
            target: address.to_owned(),
            passed: true,
            detail: format!("connected to {addr} in {} ms", millis(took)),
            duration_ms: millis(took),
        },
        Ok(Err(why)) => failed(CheckKind::Tcp, address, why, took),
        Err(_) => failed(CheckKind::Tcp, address, format!("no answer within {} s", timeout.as_secs()), took),
    }
}

/// One line per check, for a command's output: `ok   unit nginx.service: active`.
pub fn summary_lines(results: &[CheckResult]) -> Vec<String> {
    results
        .iter()
        .map(|r| {
            let kind = match r.kind {
                CheckKind::Unit => "unit",
                CheckKind::Http => "http",
                CheckKind::Tcp => "tcp",
            };
            format!(
                "{} {kind} {}: {} ({} ms)",
                if r.passed { "ok  " } else { "FAIL" },
                r.target,
                r.detail,
                r.duration_ms
            )
        })
        .collect()
}
