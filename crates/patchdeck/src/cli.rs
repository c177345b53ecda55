//! The command line of `patchdeck`.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use jiff::SignedDuration;
use patchdeck_crypto::token::OpaqueToken;
use patchdeck_store::{AuthSource, NewRegistrationToken, NewUser, Role, Store};
use serde_json::json;

use crate::audit::{AuditEvent, Outcome};
use crate::clock::SystemClock;
use crate::config::{LogFormat, ManagerConfig, Overrides, TlsMode, EXAMPLE};
use crate::server::{open_store, random_password, Manager};

/// The Patchdeck manager: keeps a fleet of Linux servers patched.
#[derive(Debug, Parser)]
#[command(name = "patchdeck", version, about, long_about = None)]
pub struct Cli {
    /// Config file [default: /etc/patchdeck/patchdeck.toml if it exists].
    #[arg(long, global = true, env = "PATCHDECK_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: keys, certificates and the embedded SQLite database.
    #[arg(long, global = true, env = "PATCHDECK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://…); without it the embedded SQLite is used.
    #[arg(long, global = true, env = "PATCHDECK_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, env = "PATCHDECK_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the manager: API, web UI and background work.
    Serve {
        /// Address and port to listen on [default: 0.0.0.0:8443].
        #[arg(long, env = "PATCHDECK_LISTEN")]
        listen: Option<SocketAddr>,
        /// The URL users and agents reach the manager at.
        #[arg(long, env = "PATCHDECK_PUBLIC_URL")]
        public_url: Option<String>,
        /// internal (certificate from the internal CA), files, or off (plain HTTP behind a proxy).
        #[arg(long, env = "PATCHDECK_TLS_MODE")]
        tls_mode: Option<TlsMode>,
    },
    /// Run only the background work (push worker, upkeep), beside `serve` replicas that share
    /// one PostgreSQL.
    Worker,
    /// Bring the database schema up to date (serve also does this at start).
    Migrate,
    /// Write a consistent copy of the embedded SQLite database to FILE (safe while serving).
    Backup {
        /// Where to write the copy (must not exist).
        file: PathBuf,
    },
    /// Account and enrollment administration on the local database.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print the commented default config file.
    PrintConfig,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a user. The password is read from standard input with --password-stdin, otherwise
    /// a random one is printed (and must be changed at first login).
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(long)]
        display_name: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new random password for USER (printed once); it must be changed at next login.
    /// Also unlocks the account and ends its sessions.
    ResetPassword { username: String },
    /// Print a new registration token for agents.
    CreateToken {
        /// How many hosts may enroll with it.
        #[arg(long, default_value_t = 1)]
        seats: u32,
        /// Lifetime, e.g. 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        expires: String,
        #[arg(long, default_value = "created on the command line")]
        label: String,
    },
    /// Register a push-mode host (its agent serves the Linux_Patch_API) and write the files its
    /// listener needs into DIR: server.crt, server.key (mode 0600) and ca.crt.
    AddPushHost {
        /// The host's DNS name.
        #[arg(long)]
        fqdn: Option<String>,
        /// The host's IP address.
        #[arg(long)]
        address: Option<std::net::IpAddr>,
        /// Where to write the certificate bundle.
        #[arg(long)]
        bundle_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the hash chain; prints the first broken link, exit status 1 if there is one.
    Verify,
    /// Write the audit log as JSON lines to standard output, oldest first.
    Export {
        /// Only entries after this id.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Admin,
    Operator,
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Operator => Role::Operator,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

/// Runs the command line; the exit code says how it went.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        log_format: cli.log_format,
        ..Overrides::default()
    };
    if let Command::PrintConfig = cli.command {
        print!("{EXAMPLE}");
        return ExitCode::SUCCESS;
    }
    if let Command::Serve { listen, public_url, tls_mode } = &cli.command {
        overrides.listen = *listen;
        overrides.public_url = public_url.clone();
        overrides.tls_mode = *tls_mode;
    }
    let config = match ManagerConfig::load(cli.config.as_deref(), &overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("patchdeck: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("patchdeck: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("patchdeck: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &ManagerConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn run(command: Command, config: ManagerConfig) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Worker => worker(config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("database is up to date ({})", store.backend().as_str());
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { file } => {
            let store = open_store(&config).await?;
            store.backup_to(&file).await.with_context(|| format!("backing up to {}", file.display()))?;
            println!("backup written to {}", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { command } => admin(command, &config).await,
        Command::Audit { command } => audit(command, &config).await,
        Command::PrintConfig => unreachable!("handled before the runtime starts"),
    }
}

async fn serve(config: ManagerConfig) -> anyhow::Result<ExitCode> {
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let manager = Manager::start(config, Arc::new(SystemClock)).await?;
    let url = manager.state.config().public_url.clone();
    let mut out = std::io::stdout().lock();
    writeln!(out, "Patchdeck manager listening on {listen}, open {url}")?;
    writeln!(out, "CA certificate fingerprint (SHA-256): {}", manager.state.keys().ca.fingerprint())?;
    writeln!(out, "Command-signing key fingerprint: {}", manager.state.keys().command_key.fingerprint())?;
    if let Some(password) = &manager.first_start.admin_password {
        writeln!(out, "First start: sign in as user \"admin\" with password {password}")?;
        writeln!(out, "(shown only this once; you will choose a new password and set up MFA at first login)")?;
    }
    drop(out);
    tracing::info!(%listen, public_url = %url, tls = manager.is_tls(), "manager started");
    manager.serve(listener, shutdown_signal()).await?;
    tracing::info!("manager stopped");
    Ok(ExitCode::SUCCESS)
}

async fn worker(config: ManagerConfig) -> anyhow::Result<ExitCode> {
    if config.database_url.is_empty() {
        // Two processes on one SQLite file would each poll every push host.
        bail!(
            "patchdeck worker shares a PostgreSQL database with serve replicas (--database-url); \
             on the embedded SQLite database, serve runs the background work itself"
        );
    }
    let manager = Manager::start(config, Arc::new(SystemClock)).await?;
    if let Some(password) = &manager.first_start.admin_password {
        println!("First start: sign in as user \"admin\" with password {password}");
        println!("(shown only this once; you will choose a new password and set up MFA at first login)");
    }
    tracing::info!(push = manager.state.config().push.enabled, "worker started");
    manager.work(shutdown_signal()).await?;
    tracing::info!("worker stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

async fn cli_audit(store: &Store, event: AuditEvent) -> anyhow::Result<()> {
    store.append_audit(&event.into_entry(jiff::Timestamp::now())).await?;
    Ok(())
}

async fn admin(command: AdminCommand, config: &ManagerConfig) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let now = jiff::Timestamp::now();
    match command {
        AdminCommand::CreateUser { username, role, display_name, password_stdin } => {
            let username =
                crate::web::handlers::users::check_username(&username).map_err(|e| anyhow::anyhow!(e.message))?;
            let (password, generated) = if password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
                let password = line.trim_end_matches(['\n', '\r']).to_owned();
                crate::web::handlers::auth::check_new_password("password", &password, &username)
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                (password, false)
            } else {
                (random_password()?, true)
            };
            let hash =
                tokio::task::spawn_blocking(move || patchdeck_crypto::password::hash(&password).map(|h| (h, password)))
                    .await??;
            let user = store
                .create_user(
                    &NewUser {
                        display_name: display_name.unwrap_or_else(|| username.clone()),
                        username,
                        role: role.into(),
                        password_hash: Some(hash.0),
                        auth_source: AuthSource::Local,
                        oidc: None,
                        must_change_password: generated,
                    },
                    now,
                )
                .await
                .map_err(|e| match e {
                    patchdeck_store::Error::Conflict(_) => anyhow::anyhow!("a user with that name already exists"),
                    other => other.into(),
                })?;
            cli_audit(
                &store,
                AuditEvent::new("cli", "user.create", Outcome::Success)
                    .target(format!("user:{}", user.username))
                    .details(json!({ "role": user.role.as_str() })),
            )
            .await?;
            if generated {
                println!("created {} ({}) with password {}", user.username, user.role.as_str(), hash.1);
                println!("(it must be changed at first login)");
            } else {
                println!("created {} ({})", user.username, user.role.as_str());
            }
        }
        AdminCommand::ResetPassword { username } => {
            let user = store
                .get_user_by_username(&username.trim().to_lowercase())
                .await?
                .with_context(|| format!("no user named {username:?}"))?;
            let password = random_password()?;
            let hash = {
                let password = password.clone();
                tokio::task::spawn_blocking(move || patchdeck_crypto::password::hash(&password)).await??
            };
            store.set_password(user.id, &hash, true, now).await?;
            store.revoke_user_sessions(user.id, "password reset by an administrator", now).await?;
            cli_audit(
                &store,
                AuditEvent::new("cli", "user.password_reset", Outcome::Success)
                    .target(format!("user:{}", user.username)),
            )
            .await?;
            println!("new password for {}: {password}", user.username);
            println!("(it must be changed at next login; the account is unlocked and its sessions ended)");
        }
        AdminCommand::CreateToken { seats, expires, label } => {
            if !(1..=100_000).contains(&seats) {
                bail!("--seats must be between 1 and 100000");
            }
            let lifetime = parse_lifetime(&expires)?;
            let label =
                crate::web::handlers::auth::check_label("label", &label).map_err(|e| anyhow::anyhow!(e.message))?;
            let token = OpaqueToken::generate("reg")?;
            let row = store
                .create_registration_token(
                    &NewRegistrationToken {
                        token_hash: token.hash().0,
                        label,
                        seats_total: seats,
                        expires_at: now + lifetime,
                        created_by: None,
                    },
                    now,
                )
                .await?;
            cli_audit(
                &store,
                AuditEvent::new("cli", "registration_token.create", Outcome::Success)
                    .target(format!("registration_token:{}", row.id))
                    .details(json!({ "seats": seats, "expires_at": row.expires_at.to_string() })),
            )
            .await?;
            println!("{}", token.expose());
            eprintln!("registration token {} — {seats} seat(s), expires {}", row.id, row.expires_at);
        }
        AdminCommand::AddPushHost { fqdn, address, bundle_dir } => {
            add_push_host(&store, config, fqdn, address, &bundle_dir, now).await?;
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn add_push_host(
    store: &Store,
    config: &ManagerConfig,
    fqdn: Option<String>,
    address: Option<std::net::IpAddr>,
    bundle_dir: &std::path::Path,
    now: jiff::Timestamp,
) -> anyhow::Result<()> {
    let fqdn = fqdn.map(|f| f.trim().trim_end_matches('.').to_lowercase());
    if fqdn.is_none() && address.is_none() {
        bail!("give --fqdn, --address or both");
    }
    let address = address.map(|a| a.to_string());
    let hostname = fqdn
        .as_deref()
        .map(|f| f.split('.').next().unwrap_or(f).to_owned())
        .or_else(|| address.clone())
        .unwrap_or_default();
    let (keys, _) = crate::pki::KeyMaterial::load_or_create(&config.data_dir, now)?;
    let names: Vec<&str> = [fqdn.as_deref(), address.as_deref()].into_iter().flatten().collect();
    let validity = SignedDuration::from_hours(24 * i64::try_from(config.ca.cert_validity_days)?);
    let (issued, key, common_name) = crate::pki::host_server_certificate(&keys.ca, &names, now, validity)?;
    let host = store
        .create_host(
            &patchdeck_store::NewHost {
                hostname,
                fqdn,
                address,
                transport: patchdeck_store::Transport::Push,
                status: patchdeck_store::HostStatus::Pending,
                machine_id: None,
                os_name: None,
                os_version: None,
            },
            now,
        )
        .await?;
    store
        .insert_certificate(
            &patchdeck_store::NewCertificate {
                serial: issued.serial.to_hex(),
                kind: patchdeck_store::CertificateKind::Server,
                common_name,
                host_id: Some(host.id),
                not_before: issued.not_before,
                not_after: issued.not_after,
                pem: issued.cert_pem.clone(),
            },
            now,
        )
        .await?;
    std::fs::create_dir_all(bundle_dir).with_context(|| format!("creating {}", bundle_dir.display()))?;
    crate::pki::write_private(&bundle_dir.join("server.key"), key.expose().as_bytes())?;
    std::fs::write(bundle_dir.join("server.crt"), &issued.cert_pem)?;
    std::fs::write(bundle_dir.join("ca.crt"), keys.ca.cert_pem())?;
    cli_audit(
        store,
        AuditEvent::new("cli", "host.create", Outcome::Success)
            .target(format!("host:{}", host.id))
            .details(json!({ "transport": "push", "certificate": issued.serial.to_hex() })),
    )
    .await?;
    println!("host {} registered; its listener's files are in {}", host.id, bundle_dir.display());
    Ok(())
}

/// `30m`, `24h`, `7d` → a duration (1 minute to 365 days).
pub fn parse_lifetime(text: &str) -> anyhow::Result<SignedDuration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: i64 = number.parse().with_context(|| format!("{text:?} is not a lifetime like 30m, 24h or 7d"))?;
    let minutes = match unit {
        "m" => n,
        "h" => n.saturating_mul(60),
        "d" => n.saturating_mul(24 * 60),
        _ => bail!("{text:?} is not a lifetime like 30m, 24h or 7d"),
    };
    if !(1..=365 * 24 * 60).contains(&minutes) {
        bail!("the lifetime must be between 1 minute and 365 days");
    }
    Ok(SignedDuration::from_mins(minutes))
}

async fn audit(command: AuditCommand, config: &ManagerConfig) -> anyhow::Result<ExitCode> {
    let store = open_store(config).await?;
    let code = match command {
        AuditCommand::Verify => {
            let report = store.verify_audit_chain().await?;
            match report.first_broken {
                None => {
                    println!("audit chain intact: {} entries checked", report.checked);
                    ExitCode::SUCCESS
                }
                Some(id) => {
                    println!("audit chain BROKEN at entry {id} ({} entries checked before it)", report.checked);
                    ExitCode::FAILURE
                }
            }
        }
        AuditCommand::Export { after } => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut cursor = patchdeck_store::AuditId(after);
            loop {
                let batch = store.audit_entries_after(Some(cursor), 1000).await?;
                let Some(last) = batch.last() else { break };
                cursor = last.id;
                for entry in &batch {
                    serde_json::to_writer(&mut out, &crate::web::handlers::audit::AuditView::from(entry))?;
                    out.write_all(b"\n")?;
                }
            }
            out.flush()?;
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse() {
        assert_eq!(parse_lifetime("30m").unwrap(), SignedDuration::from_mins(30));
        assert_eq!(parse_lifetime("24h").unwrap(), SignedDuration::from_hours(24));
        assert_eq!(parse_lifetime("7d").unwrap(), SignedDuration::from_hours(168));
        for bad in ["", "h", "0h", "3w", "-1h", "400d", "1.5h"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
