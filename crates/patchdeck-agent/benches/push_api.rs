//! Benchmark of the push API (docs/benchmarks.md, "Push API"): the REAL release binary
//! `patchdeck-agent serve` with push enabled on REAL apt sandboxes (patchdeck-testkit), and a REAL
//! mutual-TLS client (reqwest on rustls/ring) over loopback. It measures:
//!
//! 1. idle memory (VmRSS, VmHWM from /proc/<pid>/status) a few seconds after READY=1, on the small
//!    default sandbox and on a host with 2,000 installed packages;
//! 2. `GET /api/v1/packages` latency on the 2,000-package host: 1,000 sequential requests on one
//!    kept-alive connection, for the plain list, `?limit=1000` and a name glob;
//! 3. 100 concurrent mTLS clients, each with its own certificate (serial) and connection, each
//!    sending 20 requests: errors, throughput and latency.
//!
//! The bench config raises the per-certificate read limit (the sequential phase sends thousands of
//! reads from one certificate); everything else is the default configuration. Nothing is asserted:
//! the numbers are printed as a table. Run with `cargo bench -p patchdeck-agent --bench push_api`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use patchdeck_testkit::pki::Ca;
use patchdeck_testkit::serve::{ServeFiles, ServeProcess};
use patchdeck_testkit::AptSandbox;
use rcgen::ExtendedKeyUsagePurpose;

const BIN: &str = env!("CARGO_BIN_EXE_patchdeck-agent");
const PACKAGES: usize = 2_000;
const SEQUENTIAL: usize = 1_000;
const WARMUP: usize = 50;
const CLIENTS: usize = 100;
const PER_CLIENT: usize = 20;
const IDLE_WAIT: Duration = Duration::from_secs(5);
const GUARD: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// PKI (as in tests/api.rs)

/// A client with its own certificate and at most one pooled (kept-alive) connection.
fn new_client(ca: &Ca, cn: &str, serial: &[u8]) -> reqwest::Client {
    let leaf = ca.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth, serial);
    let tls = ca.client_tls(&leaf, &[b"http/1.1"]);
    reqwest::Client::builder().use_preconfigured_tls(tls).pool_max_idle_per_host(1).timeout(GUARD).build().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The agent process

struct Agent {
    files: ServeFiles,
    process: ServeProcess,
    base: String,
}

impl Agent {
    /// Starts `patchdeck-agent serve` on the sandbox and waits for READY=1. The read limits are
    /// raised: the sequential runs send thousands of reads from one certificate.
    fn start(sb: &AptSandbox) -> Agent {
        let files = ServeFiles::new(sb, "Patchdeck Bench CA", &[0x20, 1]);
        let config =
            files.write("agent.yaml", &files.config("  reads_per_minute: 1000000\n  reads_burst: 100000\n", ""));
        let process = files.spawn(Path::new(BIN), &config, GUARD);
        let base = format!("https://127.0.0.1:{}", files.port);
        Agent { files, process, base }
    }

    /// (VmRSS, VmHWM) in KiB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.child.id())).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    fn stop(mut self) {
        let (status, stderr) = self.process.stop();
        assert!(status.success(), "{status}: {stderr}");
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

struct Stats {
    n: usize,
    p50: Duration,
    p90: Duration,
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
    Stats { n, p50: at(50), p90: at(90), p99: at(99), max: samples[n - 1], mean: total / n as u32 }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// One request: Ok(body length) for a 200 whose envelope says success.
async fn get(client: &reqwest::Client, url: &str) -> Result<usize, String> {
    let response = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("{e:?}"))?;
    if status != reqwest::StatusCode::OK || !body.starts_with(b"{\"success\":true") {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)])));
    }
    Ok(body.len())
}

async fn sequential(client: &reqwest::Client, url: &str) -> (Stats, usize, usize) {
    let mut bytes = 0;
    for _ in 0..WARMUP {
        bytes = get(client, url).await.expect("warm-up request");
    }
    let mut samples = Vec::with_capacity(SEQUENTIAL);
    let mut errors = 0;
    for _ in 0..SEQUENTIAL {
        let start = Instant::now();
        let ok = get(client, url).await;
        samples.push(start.elapsed());
        if let Err(e) = ok {
            errors += 1;
            eprintln!("error: {e}");
        }
    }
    (stats(samples), bytes, errors)
}

fn idle(agent: &Agent) -> (u64, u64) {
    std::thread::sleep(IDLE_WAIT);
    agent.memory()
}

fn main() {
    // The sandboxes live on tmpfs when there is one: dpkg syncs its database after every package,
    // which on a disk dominates installing 2,000 packages and measures the disk, not the agent.
    if std::env::var_os("TMPDIR").is_none() && Path::new("/dev/shm").is_dir() {
        std::env::set_var("TMPDIR", "/dev/shm");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let started = Instant::now();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("push API benchmark: {BIN}");
    println!("load average at start: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));

    // 1. Idle memory on the small default sandbox.
    let small = AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1", "grower=1.0-1"]).build();
    small.refresh();
    let agent = Agent::start(&small);
    let small_idle = idle(&agent);
    agent.stop();
    drop(small);

    // The 2,000-package host (plus the sandbox's own packages; every 10th has an update).
    let t = Instant::now();
    let big = AptSandbox::builder().build();
    let names = tokio::task::block_in_place(|| big.install_many("benchpkg", PACKAGES, 10));
    let setup = t.elapsed();
    println!("sandbox with {} installed packages built in {:.1} s", names.len(), setup.as_secs_f64());
    let agent = Agent::start(&big);
    let big_idle = idle(&agent);

    // 2. Sequential latency, one client, one kept-alive connection.
    let client = new_client(&agent.files.ca, "bench-sequential", &[0x30, 1]);
    let total_url = format!("{}/api/v1/packages?limit=1", agent.base);
    let total: serde_json::Value =
        serde_json::from_slice(&client.get(&total_url).send().await.unwrap().bytes().await.unwrap()).unwrap();
    let total = total["data"]["total"].as_u64().unwrap();
    let mut rows = Vec::new();
    for (label, query) in [
        ("`GET /api/v1/packages`", ""),
        ("`GET /api/v1/packages?limit=1000`", "?limit=1000"),
        ("`GET /api/v1/packages?name=benchpkg01*`", "?name=benchpkg01*"),
    ] {
        let url = format!("{}/api/v1/packages{query}", agent.base);
        let (s, bytes, errors) = sequential(&client, &url).await;
        rows.push((label, s, bytes, errors));
    }
    let after_sequential = agent.memory();

    // 3. 100 concurrent clients, each its own certificate serial and TLS connection.
    let url = Arc::new(format!("{}/api/v1/packages", agent.base));
    let clients: Vec<reqwest::Client> = (0..CLIENTS)
        .map(|i| new_client(&agent.files.ca, &format!("bench-client-{i}"), &[0x40, (i >> 8) as u8, i as u8]))
        .collect();
    let barrier = Arc::new(tokio::sync::Barrier::new(CLIENTS));
    let wall = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| {
            let (url, barrier) = (url.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut samples = Vec::with_capacity(PER_CLIENT);
                let mut errors = Vec::new();
                for _ in 0..PER_CLIENT {
                    let start = Instant::now();
                    let result = get(&client, &url).await;
                    samples.push(start.elapsed());
                    if let Err(e) = result {
                        errors.push(e);
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    let mut samples = Vec::new();
    let mut errors = Vec::new();
    for task in tasks {
        let (s, e) = task.await.unwrap();
        samples.extend(s);
        errors.extend(e);
    }
    let wall = wall.elapsed();
    for e in errors.iter().take(5) {
        eprintln!("error: {e}");
    }
    let after_concurrent = agent.memory();
    let concurrent = stats(samples);
    tokio::time::sleep(IDLE_WAIT).await;
    let after_idle = agent.memory();
    agent.stop();

    println!();
    println!("Idle memory (after READY=1 + {} s):", IDLE_WAIT.as_secs());
    println!();
    println!("| host | VmRSS MiB | VmHWM MiB |");
    println!("|---|---:|---:|");
    println!("| default sandbox (3 installed packages) | {} | {} |", mib(small_idle.0), mib(small_idle.1));
    println!("| {total} installed packages | {} | {} |", mib(big_idle.0), mib(big_idle.1));
    println!(
        "| {total} packages, after the sequential runs | {} | {} |",
        mib(after_sequential.0),
        mib(after_sequential.1)
    );
    println!(
        "| {total} packages, right after the concurrent run | {} | {} |",
        mib(after_concurrent.0),
        mib(after_concurrent.1)
    );
    println!("| {total} packages, {} s later | {} | {} |", IDLE_WAIT.as_secs(), mib(after_idle.0), mib(after_idle.1));
    println!();
    println!("Sequential requests on one connection ({total} installed packages, {WARMUP} warm-up requests each):");
    println!();
    println!("| request | n | errors | body KiB | p50 ms | p90 ms | p99 ms | max ms | mean ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, s, bytes, errors) in &rows {
        println!(
            "| {label} | {} | {errors} | {:.1} | {} | {} | {} | {} | {} |",
            s.n,
            *bytes as f64 / 1024.0,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.max),
            ms(s.mean)
        );
    }
    println!();
    println!(
        "{CLIENTS} concurrent clients (own certificate and TLS connection each) x {PER_CLIENT} `GET /api/v1/packages`:"
    );
    println!();
    println!("| requests | errors | wall s | requests/s | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.2} | {:.0} | {} | {} | {} | {} |",
        concurrent.n,
        errors.len(),
        wall.as_secs_f64(),
        concurrent.n as f64 / wall.as_secs_f64(),
        ms(concurrent.p50),
        ms(concurrent.p90),
        ms(concurrent.p99),
        ms(concurrent.max)
    );
    println!();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    println!("total bench time {:.0} s (sandbox setup {:.0} s)", started.elapsed().as_secs_f64(), setup.as_secs_f64());
}
