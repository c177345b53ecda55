//! `patchdeck-agent scan`: this host's installed packages and available
//! updates, as a readable summary or as the documented JSON schema.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use jiff::Timestamp;
use patchdeck_pkg::exec::Stream;
use patchdeck_pkg::{detect, PackageManager};
use patchdeck_proto::{AvailableUpdate, ScanReport, SecurityClass, SCAN_SCHEMA_VERSION};

/// When `scan` refreshes metadata first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshPolicy {
    /// Always refresh.
    Always,
    /// Never refresh; report what the last refresh saw.
    Never,
    /// Refresh when the last refresh is unknown or older than this.
    OlderThan(Duration),
}

/// Runs a scan with `pm`, refreshing first as the policy says.
pub fn scan(pm: &dyn PackageManager, policy: RefreshPolicy, progress: &mut dyn Progress) -> anyhow::Result<ScanReport> {
    let last = pm.last_refresh().context("reading the time of the last metadata refresh")?;
    let refresh = match policy {
        RefreshPolicy::Always => true,
        RefreshPolicy::Never => false,
        RefreshPolicy::OlderThan(max_age) => match last {
            None => true,
            Some(at) => Timestamp::now().duration_since(at).unsigned_abs() > max_age,
        },
    };
    if refresh {
        progress.start(&format!("Refreshing package metadata ({})", pm.kind()));
        let started = Instant::now();
        let mut sink = |_: Stream, line: &str| progress.line(line);
        let result = pm.refresh(Some(&mut sink));
        progress.finish(match &result {
            Ok(()) => format!("Refreshed package metadata in {:.1}s", started.elapsed().as_secs_f64()),
            Err(_) => "Metadata refresh failed".to_owned(),
        });
        result.context("refreshing package metadata")?;
    }
    let installed = pm.installed().context("listing installed packages")?;
    let updates = pm.updates().context("listing available updates")?;
    let reboot = pm.reboot_status().context("checking whether a reboot is needed")?;
    let last_refresh = if refresh { pm.last_refresh()? } else { last };
    Ok(ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at: Timestamp::now(),
        os: detect::os_info(&pm.options().root),
        backend: pm.kind(),
        version_format: pm.kind().version_format(),
        last_refresh,
        installed,
        updates,
        reboot,
    })
}

/// Whether automatic metadata refreshes are possible: they write to the package manager's
/// state, so on this system they need root (a sandbox root is the caller's own).
pub fn can_refresh(config: &crate::config::PackageManagerConfig) -> bool {
    config.root != std::path::Path::new("/") || rustix::process::geteuid().is_root()
}

/// Shows that a long step is running.
pub trait Progress {
    fn start(&mut self, what: &str);
    fn line(&mut self, line: &str);
    fn finish(&mut self, message: String);
}

/// Prints nothing (for `--json` into a pipe and tests).
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: &str) {}
    fn line(&mut self, _: &str) {}
    fn finish(&mut self, _: String) {}
}

/// A spinner with the elapsed time and the package manager's latest line on
/// a terminal; plain start and end lines otherwise. Always on stderr, so
/// `--json` output stays clean.
#[derive(Debug)]
pub struct Spinner {
    state: Arc<Mutex<SpinnerState>>,
    ticker: Option<std::thread::JoinHandle<()>>,
    tty: bool,
}

#[derive(Debug, Default)]
struct SpinnerState {
    what: String,
    last_line: String,
    started: Option<Instant>,
    running: bool,
}

impl Spinner {
    pub fn stderr() -> Self {
        Spinner { state: Arc::default(), ticker: None, tty: std::io::stderr().is_terminal() }
    }
}

impl Progress for Spinner {
    fn start(&mut self, what: &str) {
        {
            let mut s = self.state.lock().expect("spinner state");
            s.what = what.to_owned();
            s.started = Some(Instant::now());
            s.running = true;
        }
        if !self.tty {
            eprintln!("{what}…");
            return;
        }
        let state = Arc::clone(&self.state);
        self.ticker = Some(std::thread::spawn(move || {
            const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
            let mut frame = 0;
            loop {
                {
                    let s = state.lock().expect("spinner state");
                    if !s.running {
                        break;
                    }
                    let secs = s.started.map_or(0, |t| t.elapsed().as_secs());
                    let detail: String = s.last_line.chars().take(60).collect();
                    eprint!("\r\x1b[2K{} {} {secs}s  {detail}", FRAMES[frame % FRAMES.len()], s.what);
                }
                frame += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }

    fn line(&mut self, line: &str) {
        let line = line.trim();
        if !line.is_empty() {
            self.state.lock().expect("spinner state").last_line = line.to_owned();
        }
    }

    fn finish(&mut self, message: String) {
        self.state.lock().expect("spinner state").running = false;
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
            eprint!("\r\x1b[2K");
        }
        eprintln!("{message}");
    }
}

/// The human-readable report: a summary, then the updates (and, when asked,
/// the installed packages) as aligned tables.
pub fn render(report: &ScanReport, with_installed: bool) -> String {
    let mut out = String::new();
    let os = report.os.pretty_name.as_deref().unwrap_or(&report.os.id);
    let kernel = report.os.kernel.as_deref().map(|k| format!(", kernel {k}")).unwrap_or_default();
    let _ = writeln!(out, "Host:          {os}{kernel}");
    let _ = writeln!(out, "Packages:      {} installed, managed by {}", report.installed.len(), report.backend);
    let refreshed = match report.last_refresh {
        Some(at) => format!("{} ({} ago)", at.strftime("%Y-%m-%d %H:%M:%S UTC"), ago(at, report.scanned_at)),
        None => "unknown".to_owned(),
    };
    let _ = writeln!(out, "Metadata:      refreshed {refreshed}");
    let security = report.security_update_count();
    let unknown = report.updates.iter().filter(|u| u.security.class == SecurityClass::Unknown).count();
    let mut updates = format!("{} available", report.updates.len());
    if security > 0 || unknown == 0 {
        let _ = write!(updates, ", {security} security");
    }
    if unknown > 0 {
        let _ = write!(updates, ", {unknown} not classifiable ({} has no security metadata)", report.backend);
    }
    let _ = writeln!(out, "Updates:       {updates}");
    let reboot = if report.reboot.required {
        format!("required ({})", report.reboot.reasons.join("; "))
    } else {
        "not required".to_owned()
    };
    let _ = writeln!(out, "Reboot:        {reboot}");

    if !report.updates.is_empty() {
        out.push('\n');
        let mut updates: Vec<&AvailableUpdate> = report.updates.iter().collect();
        // Security fixes first, then by name.
        updates.sort_by_key(|u| (u.security.class != SecurityClass::Security, u.name.as_str()));
        let rows = updates
            .iter()
            .map(|u| {
                vec![
                    u.name.clone(),
                    u.current_version.clone(),
                    u.candidate_version.clone(),
                    u.repository.clone().unwrap_or_default(),
                    security_label(u),
                    u.security.reason.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["PACKAGE", "INSTALLED", "CANDIDATE", "REPOSITORY", "SECURITY", "WHY"], rows));
    }
    if with_installed {
        out.push('\n');
        let rows = report
            .installed
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.version.clone(),
                    p.arch.clone(),
                    p.source_package.clone().unwrap_or_default(),
                    p.origin.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.push_str(&table(&["PACKAGE", "VERSION", "ARCH", "SOURCE", "ORIGIN"], rows));
    }
    out
}

fn security_label(u: &AvailableUpdate) -> String {
    let mut label = match u.security.class {
        SecurityClass::Security => "security".to_owned(),
        SecurityClass::NotSecurity => "no".to_owned(),
        SecurityClass::Unknown => "unknown".to_owned(),
    };
    if let Some(sev) = &u.security.severity {
        let _ = write!(label, " ({sev})");
    }
    if u.reboot_likely {
        label.push_str(" [reboot]");
    }
    label
}

fn ago(then: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(then).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 2 * 86400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86400),
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let last = row.len() - 1;
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchdeck_proto::{BackendKind, InstalledPackage, OsInfo, RebootStatus, SecurityInfo};

    fn report() -> ScanReport {
        let update = |name: &str, class, reason: &str| AvailableUpdate {
            name: name.to_owned(),
            arch: "all".to_owned(),
            current_version: "1.0-1".to_owned(),
            candidate_version: "1.1-1".to_owned(),
            repository: Some("Local:stable".to_owned()),
            security: SecurityInfo::new(class, reason),
            cves: vec![],
            reboot_likely: name == "libc6",
        };
        ScanReport {
            schema_version: SCAN_SCHEMA_VERSION,
            scanned_at: "2026-11-23T12:00:00Z".parse().unwrap(),
            os: OsInfo {
                id: "debian".to_owned(),
                pretty_name: Some("Debian GNU/Linux 12 (bookworm)".to_owned()),
                ..OsInfo::default()
            },
            backend: BackendKind::Apt,
            version_format: BackendKind::Apt.version_format(),
            last_refresh: Some("2026-11-23T09:00:00Z".parse().unwrap()),
            installed: vec![InstalledPackage {
                name: "hello".to_owned(),
                version: "1.0-1".to_owned(),
                arch: "all".to_owned(),
                source_package: Some("hello-src".to_owned()),
                source_version: None,
                origin: None,
                installed_at: None,
                size_bytes: None,
                held: false,
            }],
            updates: vec![
                update("zlib1g", SecurityClass::NotSecurity, "no security suite offers it"),
                update("libc6", SecurityClass::Security, "candidate comes from suite stable-security"),
            ],
            reboot: RebootStatus::default(),
        }
    }

    #[test]
    fn summary_and_security_first() {
        let text = render(&report(), false);
        let expected = "\
Host:          Debian GNU/Linux 12 (bookworm)
Packages:      1 installed, managed by apt
Metadata:      refreshed 2026-11-23 09:00:00 UTC (3 h ago)
Updates:       2 available, 1 security
Reboot:        not required

PACKAGE  INSTALLED  CANDIDATE  REPOSITORY    SECURITY           WHY
libc6    1.0-1      1.1-1      Local:stable  security [reboot]  candidate comes from suite stable-security
zlib1g   1.0-1      1.1-1      Local:stable  no                 no security suite offers it
";
        assert_eq!(text, expected);
    }

    #[test]
    fn installed_table_on_request() {
        let text = render(&report(), true);
        assert!(
            text.ends_with("PACKAGE  VERSION  ARCH  SOURCE     ORIGIN\nhello    1.0-1    all   hello-src  \n"),
            "{text}"
        );
    }

    #[test]
    fn unknown_classification_is_explained() {
        let mut r = report();
        r.backend = BackendKind::Pacman;
        for u in &mut r.updates {
            u.security = SecurityInfo::new(SecurityClass::Unknown, "pacman has no security metadata");
        }
        let text = render(&r, false);
        assert!(
            text.contains("Updates:       2 available, 2 not classifiable (pacman has no security metadata)"),
            "{text}"
        );
    }
}
