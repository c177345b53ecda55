//! The command line of `patchdeck-agent`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use patchdeck_version::VersionFormat;

use crate::config::{AgentConfig, BackendChoice, EXAMPLE};
use crate::scan::{self, Progress, Quiet, RefreshPolicy, Spinner};

/// The Patchdeck agent: keeps this host patched.
#[derive(Debug, Parser)]
#[command(name = "patchdeck-agent", version, about, long_about = None)]
pub struct Cli {
    /// Config file [default: /etc/patchdeck/agent.yaml if it exists].
    #[arg(long, global = true, env = "PATCHDECK_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show this host's installed packages and available updates.
    Scan(ScanArgs),
    /// Compare two versions the way a package manager does: prints <, = or >.
    VersionCompare {
        /// Version ordering to use.
        #[arg(long, value_enum)]
        format: FormatArg,
        a: String,
        b: String,
    },
    /// Enroll this host with a Patchdeck manager (pull mode).
    Enroll(EnrollArgs),
    /// Run the host service: job engine, audit log, pull mode when enrolled, and the push API when enabled.
    Serve {
        /// Where job records are kept [default: /var/lib/patchdeck-agent].
        #[arg(long, env = "PATCHDECK_AGENT_STATE_DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Print the commented default config file (same as `config example`).
    PrintConfig,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print an example config file with every default.
    Example,
    /// Print the effective configuration after file, environment and flags.
    Show,
}

#[derive(Debug, clap::Args)]
struct ScanArgs {
    /// Print the full scan as JSON (schema: docs/scan-json.md).
    #[arg(long)]
    json: bool,
    /// Also list every installed package.
    #[arg(long, conflicts_with = "json")]
    installed: bool,
    /// Refresh package metadata first, whatever its age.
    #[arg(long, conflicts_with = "no_refresh")]
    refresh: bool,
    /// Never refresh metadata; report what the last refresh saw.
    #[arg(long)]
    no_refresh: bool,
    /// Package manager to use instead of detecting it.
    #[arg(long, env = "PATCHDECK_BACKEND")]
    backend: Option<BackendChoice>,
    /// Manage another install root instead of this system (sandboxes, tests).
    #[arg(long, env = "PATCHDECK_ROOT")]
    root: Option<PathBuf>,
    /// The package manager's own config file (apt: APT_CONFIG; others: --config).
    #[arg(long)]
    pm_config: Option<PathBuf>,
    /// dnf/yum --releasever for a root without os-release.
    #[arg(long)]
    releasever: Option<String>,
}

#[derive(Debug, clap::Args)]
struct EnrollArgs {
    /// The manager's URL, e.g. https://manager.example:8443 [also PATCHDECK_SERVER, pull.server].
    #[arg(long)]
    server: Option<String>,
    /// The registration token [also PATCHDECK_ENROLL_TOKEN, pull.enroll_token].
    #[arg(long)]
    token: Option<String>,
    /// SHA-256 of the manager's CA certificate, hex (colons allowed), as the registration
    /// token page shows it [also PATCHDECK_CA_FINGERPRINT, pull.ca_fingerprint].
    #[arg(long, conflicts_with = "ca_cert")]
    ca_fingerprint: Option<String>,
    /// Trust the CA certificates in this PEM file instead [also pull.ca_cert].
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Enroll again: a new key and certificate for this host (takes a seat of the token).
    #[arg(long)]
    force: bool,
    /// Where the agent keeps its state [default: /var/lib/patchdeck-agent].
    #[arg(long, env = "PATCHDECK_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Deb,
    Rpm,
    Apk,
    Pacman,
}

impl From<FormatArg> for VersionFormat {
    fn from(f: FormatArg) -> Self {
        match f {
            FormatArg::Deb => VersionFormat::Deb,
            FormatArg::Rpm => VersionFormat::Rpm,
            FormatArg::Apk => VersionFormat::Apk,
            FormatArg::Pacman => VersionFormat::Pacman,
        }
    }
}

/// Entry point: parses arguments, runs, and turns errors into a message on
/// stderr and exit code 1 (clap's usage errors exit with 2).
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PATCHDECK_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::VersionCompare { format, a, b } => {
            let ordering = patchdeck_version::compare(format.into(), &a, &b)?;
            println!(
                "{}",
                match ordering {
                    std::cmp::Ordering::Less => "<",
                    std::cmp::Ordering::Equal => "=",
                    std::cmp::Ordering::Greater => ">",
                }
            );
            Ok(())
        }
        Command::PrintConfig | Command::Config { command: ConfigCommand::Example } => {
            print!("{EXAMPLE}");
            Ok(())
        }
        Command::Config { command: ConfigCommand::Show } => {
            let mut config = AgentConfig::load(cli.config.as_deref())?;
            if let Some(token) = &mut config.pull.enroll_token {
                *token = crate::config::Secret::new("[redacted]");
            }
            print!("{}", serde_yaml_ng::to_string(&config)?);
            Ok(())
        }
        Command::Scan(args) => run_scan(cli.config, args),
        Command::Enroll(args) => run_enroll(cli.config, args),
        Command::Serve { state_dir } => {
            let source = crate::reload::ConfigSource { path: cli.config, state_dir };
            let config = source.load()?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("patchdeck-agent")
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::serve::run(config, source))
        }
    }
}

fn run_enroll(config_path: Option<PathBuf>, args: EnrollArgs) -> anyhow::Result<()> {
    use crate::pull::{self, EnrollError, EnrollOutcome, EnrollProgress, Identity, PullPaths, Trust};

    let mut config = AgentConfig::load(config_path.as_deref())?;
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    let paths = PullPaths::new(&config.state_dir);
    if !args.force {
        if let Some(identity) = Identity::load(&paths)? {
            println!("already enrolled as host {} with {}", identity.host_id, identity.server);
            return Ok(());
        }
    }
    let pull = &config.pull;
    let server = args.server.or_else(|| pull.server.clone()).ok_or(EnrollError::NoServer)?;
    let token =
        args.token.map(crate::config::Secret::new).or_else(|| pull.enroll_token.clone()).ok_or(EnrollError::NoToken)?;
    let trust = match (args.ca_fingerprint, args.ca_cert) {
        (Some(fp), _) => Trust::Fingerprint(pull::enroll::parse_fingerprint(&fp).map_err(EnrollError::BadFingerprint)?),
        (None, Some(file)) => Trust::CaFile(file),
        (None, None) => match (&pull.ca_fingerprint, &pull.ca_cert) {
            (Some(fp), _) => {
                Trust::Fingerprint(pull::enroll::parse_fingerprint(fp).map_err(EnrollError::BadFingerprint)?)
            }
            (None, Some(file)) => Trust::CaFile(file.clone()),
            (None, None) => return Err(EnrollError::NoTrust.into()),
        },
    };
    let options = pull::EnrollOptions {
        server,
        token,
        trust,
        force: args.force,
        state_dir: config.state_dir.clone(),
        os_root: config.package_manager.root.clone(),
        request_timeout: Duration::from_secs(config.pull.request_timeout_secs),
        approval_retry: pull::enroll::approval_retry_from_env(),
    };
    let mut progress = |p: EnrollProgress| match p {
        EnrollProgress::CaTrusted { url, fingerprint } => {
            eprintln!("Trusting the CA certificate from {url} (SHA-256 {fingerprint})");
        }
        EnrollProgress::Pending { host_id, retry_after, attempt } => eprintln!(
            "Waiting for an administrator to approve host {host_id} (attempt {attempt}; asking again in {} s)…",
            retry_after.as_secs()
        ),
        EnrollProgress::Retrying { error, retry_after } => {
            eprintln!("{error}; trying again in {} s…", retry_after.as_secs().max(1));
        }
    };
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    match runtime.block_on(pull::enroll::enroll(&options, &mut progress, None))? {
        EnrollOutcome::AlreadyEnrolled(identity) => {
            println!("already enrolled as host {} with {}", identity.host_id, identity.server);
        }
        EnrollOutcome::Enrolled(identity) => {
            println!("Enrolled as host {} with {}", identity.host_id, identity.server);
            println!("Command-signing key fingerprint: {}", identity.command_key_fingerprint);
            println!(
                "Compare it with the fingerprint the manager shows, then start the agent (patchdeck-agent serve)."
            );
        }
    }
    Ok(())
}

fn run_scan(config_path: Option<PathBuf>, args: ScanArgs) -> anyhow::Result<()> {
    let mut config = AgentConfig::load(config_path.as_deref())?;
    let pm_config = &mut config.package_manager;
    if let Some(backend) = args.backend {
        pm_config.backend = backend;
    }
    if let Some(root) = args.root {
        pm_config.root = root;
    }
    if let Some(file) = args.pm_config {
        pm_config.config_file = Some(file);
    }
    if let Some(rv) = args.releasever {
        pm_config.releasever = Some(rv);
    }
    pm_config.validate()?;

    let pm = patchdeck_pkg::open_detected(pm_config.backend.kind(), pm_config.backend_options())?;
    let policy = if args.refresh {
        RefreshPolicy::Always
    } else if args.no_refresh || pm_config.max_metadata_age_secs == 0 || !scan::can_refresh(pm_config) {
        RefreshPolicy::Never
    } else {
        RefreshPolicy::OlderThan(Duration::from_secs(pm_config.max_metadata_age_secs))
    };
    let mut spinner;
    let mut quiet = Quiet;
    let progress: &mut dyn Progress = if args.json && !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        &mut quiet
    } else {
        spinner = Spinner::stderr();
        &mut spinner
    };
    let report = scan::scan(pm.as_ref(), policy, progress)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        stdout.write_all(scan::render(&report, args.installed).as_bytes())?;
    }
    stdout.flush().context("writing the report")
}
