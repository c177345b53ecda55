//! Benchmark of the manager (docs/benchmarks.md, "Manager"): the REAL release binary
//! `patchdeck serve` as a separate process, on embedded SQLite and on PostgreSQL, over HTTPS from
//! its internal CA, with a REAL client (reqwest on rustls/ring) over loopback. For each backend it
//! measures:
//!
//! 1. login latency: 20 sequential `POST /api/v1/auth/login` with the right password for an admin
//!    without MFA (`auth.mfa_required` off), on one kept-alive connection;
//! 2. an authenticated list page (personal API token, `Authorization: Bearer pdk_api_…`) of 100
//!    hosts sorted by hostname, with 10,000 hosts in the database: 2,000 sequential requests at
//!    varied offsets (p50/p99), then 8 concurrent clients (throughput);
//! 3. memory of the manager process (VmRSS, VmHWM from /proc/<pid>/status) after start, after
//!    the logins, after the list load and after 10 s idle.
//!
//! Everything is seeded through `patchdeck-store` before the server starts: the admin, the
//! setting, the API token and the hosts (varied hostnames, inserted in shuffled order, so the
//! sort is real; the bench checks the order of all 10,000 once). The server runs with its default
//! configuration (the 20 logins are exactly the default limit of login attempts per address and
//! minute). Goals are reported, not asserted: the exit status is non-zero only when something
//! failed (a request, the start, a wrong order).
//!
//! Run with `cargo bench -p patchdeck --bench manager` (PostgreSQL at
//! `PATCHDECK_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use jiff::{SignedDuration, Timestamp};
use patchdeck_crypto::token::OpaqueToken;
use patchdeck_store::{AuthSource, DatabaseConfig, HostStatus, NewApiToken, NewHost, NewUser, Role, Store, Transport};
use patchdeck_testkit::pg::TestDatabase;
use serde_json::{json, Value};
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_patchdeck");
const ROWS: usize = 10_000;
const PAGE: usize = 100;
const SEED_BATCH: usize = 250;
const LOGINS: usize = 20;
const SEQUENTIAL: usize = 2_000;
const WARMUP: usize = 50;
const CLIENTS: usize = 8;
const PER_CLIENT: usize = 500;
const SETTLE: Duration = Duration::from_secs(5);
const IDLE_WAIT: Duration = Duration::from_secs(10);
const GUARD: Duration = Duration::from_secs(120);
const ARGON2_RUNS: usize = 10;
const USERNAME: &str = "benchadmin";
const PASSWORD: &str = "bench horse battery staple";

// ---------------------------------------------------------------------------------------------
// Test data

/// xorshift64*: deterministic, so every run lists the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

const ROLES: &[&str] =
    &["web", "db", "cache", "app", "mail", "build", "k8s-node", "proxy", "ci", "backup", "dns", "log", "mq", "vpn"];
const SITES: &[&str] = &["ams1", "fra2", "lon1", "nyc3", "sfo2", "sin1", "syd1", "tor1"];
const SYSTEMS: &[(&str, &str)] = &[
    ("Debian GNU/Linux", "12"),
    ("Ubuntu", "24.04"),
    ("Rocky Linux", "9.4"),
    ("Arch Linux", "rolling"),
    ("openSUSE Leap", "15.6"),
    ("Alpine Linux", "3.20"),
];
const STATUSES: &[HostStatus] =
    &[HostStatus::Online, HostStatus::Online, HostStatus::Online, HostStatus::Offline, HostStatus::Pending];

/// `ROWS` varied hosts in shuffled order: `web-ams1-042`, `K8s-node-fra2-007`, … (some start
/// with a capital, which sorts before every lower-case letter by code point), duplicates
/// included; one in ten is a push host.
fn hosts(rng: &mut Rng) -> Vec<NewHost> {
    let mut hosts: Vec<NewHost> = (0..ROWS)
        .map(|i| {
            let mut hostname = format!("{}-{}-{:03}", rng.pick(ROLES), rng.pick(SITES), rng.below(1000));
            if rng.below(10) == 0 {
                hostname[..1].make_ascii_uppercase();
            }
            let (os_name, os_version) = SYSTEMS[rng.below(SYSTEMS.len())];
            let push = i % 10 == 0;
            NewHost {
                fqdn: push.then(|| format!("{hostname}-{i}.push.example.net")),
                address: push.then(|| format!("10.{}.{}.{}", i >> 16, (i >> 8) & 0xff, i & 0xff)),
                hostname,
                transport: if push { Transport::Push } else { Transport::Pull },
                status: if push { HostStatus::Unreachable } else { STATUSES[rng.below(STATUSES.len())] },
                machine_id: (!push).then(|| format!("{i:016x}{:016x}", rng.next())),
                os_name: Some(os_name.to_owned()),
                os_version: Some(os_version.to_owned()),
            }
        })
        .collect();
    rng.shuffle(&mut hosts);
    hosts
}

// ---------------------------------------------------------------------------------------------
// Database

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Creates the admin (no MFA required), its API token and the hosts; returns the token and the
/// seeding time.
async fn seed(store: &Store) -> anyhow::Result<(OpaqueToken, Duration)> {
    let now = Timestamp::now();
    let hash = patchdeck_crypto::password::hash(PASSWORD)?;
    let user = store
        .create_user(
            &NewUser {
                username: USERNAME.into(),
                display_name: "Benchmark admin".into(),
                role: Role::Admin,
                password_hash: Some(hash),
                auth_source: AuthSource::Local,
                oidc: None,
                must_change_password: false,
            },
            now,
        )
        .await?;
    store.set_setting(patchdeck::settings::keys::MFA_REQUIRED, &json!(false), None, now).await?;
    let token = OpaqueToken::generate("api")?;
    store
        .create_api_token(
            &NewApiToken {
                user_id: user.id,
                token_hash: token.hash().0,
                label: "benchmark".into(),
                expires_at: now + SignedDuration::from_hours(24),
            },
            now,
        )
        .await?;
    let started = Instant::now();
    let hosts = hosts(&mut Rng(0x9e37_79b9_7f4a_7c15));
    for batch in hosts.chunks(SEED_BATCH) {
        futures_util::future::try_join_all(batch.iter().map(|host| store.create_host(host, now))).await?;
    }
    Ok((token, started.elapsed()))
}

// ---------------------------------------------------------------------------------------------
// The manager process

struct Manager {
    child: Child,
    base: String,
    client: reqwest::Client,
    /// A builder for more clients (own connection each).
    ca: reqwest::Certificate,
    addr: std::net::SocketAddr,
    stderr: PathBuf,
}

#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: u64,
    hwm: u64,
    anon: u64,
    file: u64,
    threads: u64,
}

impl Manager {
    /// Starts `patchdeck serve` with the default configuration (an empty config file, no
    /// `PATCHDECK_*` variables) and waits for its "listening" line.
    fn start(work: &Path, data_dir: &Path, database_url: Option<&str>) -> anyhow::Result<Manager> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let config = work.join("patchdeck.toml");
        std::fs::write(&config, "")?;
        let stderr = work.join("manager.log");
        let mut command = Command::new(BIN);
        command
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--log-format", "text", "serve", "--listen", &addr.to_string()])
            .args(["--public-url", &format!("https://localhost:{port}")]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PATCHDECK_") {
                command.env_remove(key);
            }
        }
        // `--database-url` through its variable, so a password stays off the command line.
        if let Some(url) = database_url {
            command.env("PATCHDECK_DATABASE_URL", url);
        }
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .with_context(|| format!("starting {BIN}"))?;

        // Read stdout on a thread (and keep draining it) until the "listening" line.
        let stdout = child.stdout.take().context("no stdout")?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("Patchdeck manager listening on") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        if ready_rx.recv_timeout(GUARD).is_err() {
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&stderr).unwrap_or_default();
            bail!("the manager did not start within {GUARD:?}:\n{log}");
        }

        let pem = std::fs::read(data_dir.join("ca.crt")).context("reading the internal CA certificate")?;
        let ca = reqwest::Certificate::from_pem(&pem)?;
        let base = format!("https://localhost:{port}");
        let client = new_client(&ca, addr)?;
        Ok(Manager { child, base, client, ca, addr, stderr })
    }

    fn client(&self) -> anyhow::Result<reqwest::Client> {
        new_client(&self.ca, self.addr)
    }

    fn memory(&self) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> anyhow::Result<u64> {
            let line = status.lines().find(|l| l.starts_with(name)).with_context(|| format!("no {name}"))?;
            Ok(line.split_whitespace().nth(1).context("empty field")?.parse()?)
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
            threads: field("Threads:")?,
        })
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        let deadline = Instant::now() + GUARD;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
                ensure!(status.success(), "the manager exited with {status}:\n{log}");
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("the manager did not stop within {GUARD:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A client trusting the internal CA, with at most one pooled (kept-alive) connection.
fn new_client(ca: &reqwest::Certificate, addr: std::net::SocketAddr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .resolve("localhost", addr)
        .pool_max_idle_per_host(1)
        .timeout(GUARD)
        .build()?)
}

// ---------------------------------------------------------------------------------------------
// Measuring

struct Stats {
    n: usize,
    min: Duration,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    max: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let n = samples.len();
    // Nearest rank.
    let at = |p: usize| samples[(n * p).div_ceil(100).max(1) - 1];
    let total: Duration = samples.iter().sum();
    Stats { n, min: samples[0], p50: at(50), p95: at(95), p99: at(99), max: samples[n - 1], mean: total / n as u32 }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn list_url(base: &str, offset: usize) -> String {
    format!("{base}/api/v1/hosts?limit={PAGE}&offset={offset}&sort=hostname")
}

/// One list request, timed until the whole body has arrived: (latency, result).
async fn get_page(client: &reqwest::Client, url: &str, token: &str) -> (Duration, Result<bytes::Bytes, String>) {
    let start = Instant::now();
    let result = async {
        let response = client.get(url).bearer_auth(token).send().await.map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| format!("{e:?}"))?;
        if status != reqwest::StatusCode::OK {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(300)])));
        }
        Ok(body)
    }
    .await;
    (start.elapsed(), result)
}

/// Checks a page: `PAGE` items (fewer on the last page) and the full total.
fn check_page(body: &[u8], offset: usize) -> Result<Value, String> {
    let page: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let items = page["items"].as_array().ok_or("no items")?.len();
    let total = page["total"].as_u64().ok_or("no total")?;
    if total != ROWS as u64 || items != PAGE.min(ROWS - offset) {
        return Err(format!("offset {offset}: {items} items of {total}, expected {PAGE} of {ROWS}"));
    }
    Ok(page)
}

/// Offsets of every page, shuffled.
fn offsets() -> Vec<usize> {
    let mut offsets: Vec<usize> = (0..ROWS).step_by(PAGE).collect();
    Rng(0xd1b5_4a32_d192_ed03).shuffle(&mut offsets);
    offsets
}

struct Report {
    backend: Backend,
    seed_hosts: Duration,
    protocol: String,
    logins: Stats,
    body_bytes: usize,
    sequential: Stats,
    concurrent: Stats,
    concurrent_wall: Duration,
    memory: [(&'static str, Memory); 4],
    errors: Vec<String>,
    load_start: String,
    load_end: String,
}

async fn run(backend: Backend) -> anyhow::Result<Report> {
    let load_start = load_average();
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    patchdeck::pki::ensure_private_dir(&data_dir)?;
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let database = match &db {
        None => DatabaseConfig::Sqlite { path: data_dir.join("patchdeck.db") },
        Some(db) => DatabaseConfig::Postgres { url: db.url().to_owned() },
    };

    let store = Store::connect(&database).await?;
    store.migrate().await?;
    let (token, seed_hosts) = seed(&store).await?;
    store.close().await;
    if let Some(db) = &db {
        // The test kit turns synchronous commits off for speed; the manager runs with the
        // server's default (on), as in production.
        let mut conn = sqlx::PgConnection::connect(db.url()).await?;
        sqlx::query(&format!("ALTER DATABASE \"{}\" RESET synchronous_commit", db.name())).execute(&mut conn).await?;
        conn.close().await?;
    }
    println!("[{}] {ROWS} hosts seeded in {:.1} s", backend.name(), seed_hosts.as_secs_f64());

    let manager = Manager::start(work.path(), &data_dir, db.as_ref().map(TestDatabase::url))?;
    let token = token.expose().to_owned();
    let mut errors = Vec::new();
    tokio::time::sleep(SETTLE).await;
    let after_start = manager.memory()?;

    // 1. Logins, on one kept-alive connection (opened by the health request).
    let protocol = {
        let response = manager.client.get(format!("{}/api/v1/health", manager.base)).send().await?;
        format!("{:?}", response.version())
    };
    let login_url = format!("{}/api/v1/auth/login", manager.base);
    let mut samples = Vec::with_capacity(LOGINS);
    for _ in 0..LOGINS {
        let start = Instant::now();
        let response =
            manager.client.post(&login_url).json(&json!({ "username": USERNAME, "password": PASSWORD })).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        samples.push(start.elapsed());
        if status != reqwest::StatusCode::OK || body["status"] != "ok" {
            errors.push(format!("login: {status}: {body}"));
        }
    }
    let logins = stats(samples);
    let after_logins = manager.memory()?;

    // 2a. Every page once, in order: the pages are complete and sorted by code points.
    let mut keys = Vec::with_capacity(ROWS);
    let mut body_bytes = 0;
    for offset in (0..ROWS).step_by(PAGE) {
        let (_, result) = get_page(&manager.client, &list_url(&manager.base, offset), &token).await;
        let page = result.and_then(|body| {
            body_bytes = body_bytes.max(body.len());
            check_page(&body, offset)
        });
        match page {
            Ok(page) => keys.extend(
                page["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|item| item["hostname"].as_str().unwrap_or("").to_owned()),
            ),
            Err(e) => errors.push(format!("page at offset {offset}: {e}")),
        }
    }
    if keys.len() == ROWS && !keys.windows(2).all(|w| w[0] <= w[1]) {
        errors.push(format!("the {ROWS} hosts are not sorted by hostname (code points)"));
    }

    // 2b. Sequential requests at varied offsets, one client, one kept-alive connection.
    let offsets = Arc::new(offsets());
    for i in 0..WARMUP {
        let offset = offsets[i % offsets.len()];
        if let (_, Err(e)) = get_page(&manager.client, &list_url(&manager.base, offset), &token).await {
            errors.push(format!("warm-up: {e}"));
        }
    }
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL {
        let offset = offsets[i % offsets.len()];
        let (took, result) = get_page(&manager.client, &list_url(&manager.base, offset), &token).await;
        samples.push(took);
        if let Err(e) = result.and_then(|body| check_page(&body, offset).map(drop)) {
            errors.push(e);
        }
    }
    let sequential = stats(samples);

    // 2c. Concurrent clients, each with its own connection, starting together.
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let token = Arc::new(token);
    let base = Arc::new(manager.base.clone());
    let mut tasks = Vec::with_capacity(CLIENTS);
    for c in 0..CLIENTS {
        let (client, barrier, token, base, offsets) =
            (manager.client()?, barrier.clone(), token.clone(), base.clone(), offsets.clone());
        tasks.push(tokio::spawn(async move {
            // Open the connection before the clock starts.
            let _ = client.get(format!("{base}/api/v1/health")).send().await;
            barrier.wait().await;
            let started = Instant::now();
            let mut samples = Vec::with_capacity(PER_CLIENT);
            let mut errors = Vec::new();
            for i in 0..PER_CLIENT {
                let offset = offsets[(c * 13 + i) % offsets.len()];
                let (took, result) = get_page(&client, &list_url(&base, offset), &token).await;
                samples.push(took);
                if let Err(e) = result {
                    errors.push(e);
                }
            }
            (started, Instant::now(), samples, errors)
        }));
    }
    let mut samples = Vec::with_capacity(CLIENTS * PER_CLIENT);
    let (mut first, mut last) = (None::<Instant>, None::<Instant>);
    for task in tasks {
        let (started, ended, s, e) = task.await?;
        first = Some(first.map_or(started, |f| f.min(started)));
        last = Some(last.map_or(ended, |l| l.max(ended)));
        samples.extend(s);
        errors.extend(e);
    }
    let concurrent_wall = last.zip(first).map(|(l, f)| l - f).unwrap_or_default();
    let concurrent = stats(samples);
    let after_load = manager.memory()?;

    // 3. Idle.
    tokio::time::sleep(IDLE_WAIT).await;
    let after_idle = manager.memory()?;
    manager.stop()?;
    if let Some(db) = db {
        db.drop_db().await;
    }

    Ok(Report {
        backend,
        seed_hosts,
        protocol,
        logins,
        body_bytes,
        sequential,
        concurrent,
        concurrent_wall,
        memory: [
            ("after start (+5 s)", after_start),
            ("after the 20 logins", after_logins),
            ("right after the list load", after_load),
            ("after 10 s idle", after_idle),
        ],
        errors,
        load_start,
        load_end: load_average(),
    })
}

/// What a login costs at least: `patchdeck_crypto::password::verify` alone, in this process.
fn argon2_baseline() -> anyhow::Result<Stats> {
    let hash = patchdeck_crypto::password::hash(PASSWORD)?;
    let mut samples = Vec::with_capacity(ARGON2_RUNS);
    for _ in 0..ARGON2_RUNS {
        let start = Instant::now();
        ensure!(patchdeck_crypto::password::verify(PASSWORD, &hash)?, "the password does not verify");
        samples.push(start.elapsed());
    }
    Ok(stats(samples))
}

fn print(reports: &[Report], argon2: &Stats) {
    let names: Vec<&str> = reports.iter().map(|r| r.backend.name()).collect();
    let header = |first: &str| {
        println!("| {first} | {} |", names.join(" | "));
        println!("|---|{}", "---:|".repeat(names.len()));
    };
    let row = |label: &str, value: &dyn Fn(&Report) -> String| {
        let values: Vec<String> = reports.iter().map(value).collect();
        println!("| {label} | {} |", values.join(" | "));
    };

    println!();
    println!("Setup:");
    println!();
    header("");
    row(&format!("seeding {ROWS} hosts (s)"), &|r| format!("{:.1}", r.seed_hosts.as_secs_f64()));
    row("HTTP version", &|r| r.protocol.clone());
    row("load average at start / end", &|r| format!("{} / {}", r.load_start, r.load_end));

    println!();
    println!("1. `POST /api/v1/auth/login`, {LOGINS} sequential, right password, no MFA (ms; goal 250–500):");
    println!();
    header("");
    row("min", &|r| ms(r.logins.min));
    row("median", &|r| ms(r.logins.p50));
    row("p95", &|r| ms(r.logins.p95));
    row("max", &|r| ms(r.logins.max));
    println!();
    println!(
        "Argon2id verify alone (same parameters, in the bench process, {} runs): min {} ms, median {} ms, max {} ms",
        argon2.n,
        ms(argon2.min),
        ms(argon2.p50),
        ms(argon2.max)
    );

    println!();
    println!(
        "2. `GET /api/v1/hosts?limit={PAGE}&offset=N&sort=hostname`, {ROWS} hosts, API token (ms; goal p99 < 20):"
    );
    println!();
    header("");
    row("body (KiB, largest page)", &|r| format!("{:.1}", r.body_bytes as f64 / 1024.0));
    row("sequential: requests", &|r| format!("{}", r.sequential.n));
    row("sequential: p50", &|r| ms(r.sequential.p50));
    row("sequential: p95", &|r| ms(r.sequential.p95));
    row("sequential: p99", &|r| ms(r.sequential.p99));
    row("sequential: max", &|r| ms(r.sequential.max));
    row("sequential: mean", &|r| ms(r.sequential.mean));
    row(&format!("{CLIENTS} clients: requests"), &|r| format!("{}", r.concurrent.n));
    row(&format!("{CLIENTS} clients: wall (s)"), &|r| format!("{:.2}", r.concurrent_wall.as_secs_f64()));
    row(&format!("{CLIENTS} clients: requests/s"), &|r| {
        format!("{:.0}", r.concurrent.n as f64 / r.concurrent_wall.as_secs_f64())
    });
    row(&format!("{CLIENTS} clients: p50"), &|r| ms(r.concurrent.p50));
    row(&format!("{CLIENTS} clients: p99"), &|r| ms(r.concurrent.p99));
    row(&format!("{CLIENTS} clients: max"), &|r| ms(r.concurrent.max));
    row("errors (all phases)", &|r| format!("{}", r.errors.len()));

    println!();
    println!("3. memory of the manager process (MiB; goal ≤ 60 MB = 57.2 MiB idle):");
    println!();
    println!("| when | {} |", names.iter().map(|n| format!("{n} VmRSS | {n} VmHWM")).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---:|---:|".repeat(names.len()));
    for i in 0..4 {
        let label = reports[0].memory[i].0;
        let values: Vec<String> =
            reports.iter().map(|r| format!("{} | {}", mib(r.memory[i].1.rss), mib(r.memory[i].1.hwm))).collect();
        println!("| {label} | {} |", values.join(" | "));
    }
    println!();
    println!("Resident set split (RssAnon + RssFile, MiB) and threads:");
    println!();
    println!("| when | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    for i in 0..4 {
        let label = reports[0].memory[i].0;
        let values: Vec<String> = reports
            .iter()
            .map(|r| {
                let m = r.memory[i].1;
                format!("{} + {}, {} threads", mib(m.anon), mib(m.file), m.threads)
            })
            .collect();
        println!("| {label} | {} |", values.join(" | "));
    }
    println!();
    for r in reports {
        let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
        let idle = r.memory[3].1.rss;
        let login = r.logins.p50.as_secs_f64() * 1e3;
        println!(
            "[{}] goals: login median {} ms ({}); list p99 {} ms ({}); idle RSS {:.1} MB ({})",
            r.backend.name(),
            ms(r.logins.p50),
            if login < 250.0 {
                "below the 250-500 band"
            } else if login > 500.0 {
                "MISSED, above 500"
            } else {
                "met"
            },
            ms(r.sequential.p99),
            if r.sequential.p99 < Duration::from_millis(20) { "met" } else { "MISSED" },
            mb(idle),
            if mb(idle) <= 60.0 { "met" } else { "MISSED" },
        );
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    println!("manager benchmark: {BIN}");
    println!("{} cores, {}", std::thread::available_parallelism().map_or(0, |n| n.get()), cpu_model());
    let argon2 = match argon2_baseline() {
        Ok(argon2) => argon2,
        Err(e) => {
            eprintln!("error: Argon2id baseline: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut reports = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        match runtime.block_on(run(backend)) {
            Ok(report) => reports.push(report),
            Err(e) => {
                eprintln!("error: {} run failed: {e:#}", backend.name());
                return ExitCode::FAILURE;
            }
        }
    }
    print(&reports, &argon2);
    println!("total bench time {:.0} s", started.elapsed().as_secs_f64());
    let mut failed = false;
    for r in &reports {
        for e in r.errors.iter().take(5) {
            eprintln!("error [{}]: {e}", r.backend.name());
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_else(|| "unknown CPU".into())
}
