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
    /// Run the host service: job engine, audit log, and the push API when enabled.
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
            let config = AgentConfig::load(cli.config.as_deref())?;
            print!("{}", serde_yaml_ng::to_string(&config)?);
            Ok(())
        }
        Command::Scan(args) => run_scan(cli.config, args),
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
    } else if args.no_refresh || pm_config.max_metadata_age_secs == 0 || !can_refresh(pm_config) {
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

/// Automatic refreshes need write access to the package manager's state;
/// an unprivileged user scanning the host gets the last refresh's view.
fn can_refresh(config: &crate::config::PackageManagerConfig) -> bool {
    config.root != std::path::Path::new("/") || rustix::process::geteuid().is_root()
}
