//! `patchdeck-sim`: a fleet of simulated pull-mode agents that speak the real protocol
//! (`docs/protocol.md`) with real certificates, for the check-in benchmark
//! (`docs/benchmarks.md`, "Pull check-ins (agent simulator)").
//!
//! ```text
//! patchdeck-sim --server https://localhost:8443 --ca-cert DATA_DIR/ca.crt --token pdk_reg_… \
//!     --agents 10000 --interval-secs 300 --duration-secs 120 --state-dir ./sim-fleet \
//!     [--concurrency 32] [--manager-pid PID] [--ramp-secs 30] [--baseline-secs 10] [--http1] \
//!     [--output summary.json]
//! ```
//!
//! `crates/patchdeck-sim/bench.sh` starts a release manager on SQLite, makes the token and runs
//! this with `--manager-pid`. What a run does, in order:
//!
//! 1. **Enroll** the agents not in `--state-dir` yet (`POST /agent/v1/enroll`, at most
//!    `--concurrency` at once): each gets its own P-256 key and CSR
//!    (`patchdeck_crypto::ca::make_csr`), a random machine ID (32 hex digits) and the hostname
//!    `sim-0001`, `sim-0002`, …. Key, certificate, machine ID and host id are saved per agent
//!    (`<state-dir>/agents/sim-0001.json`, mode 0600), so a second run against the same manager
//!    reuses them and takes no seat. A `429` (enrollment is rate-limited per source address) is
//!    waited out.
//! 2. **Inventory**: every agent checks in once (`wait_ms = 0`) on its own connection with the
//!    hash of its synthetic scan (50 Debian packages, 0–3 updates); when the manager answers
//!    `inventory_wanted`, it uploads the scan (`PUT /agent/v1/inventory`).
//! 3. **Hold**: every agent long-polls on its own connection (its own client, its own
//!    certificate) with `wait_ms = interval × 1000`, and checks in again as soon as it is
//!    answered; the loops start spread over `--ramp-secs`. The run waits until all N are held.
//! 4. **Warm-up** of the measured stream's connections (below): one unmeasured check-in each.
//! 5. **Baseline**: `--baseline-secs` with only the held connections, to see what an idle fleet
//!    costs the manager.
//! 6. **Measured window** (`--duration-secs`): the fleet's natural rate of check-ins,
//!    N / interval per second, evenly spaced (open loop: a slow answer does not delay the next).
//!    Each comes from a random agent of the fleet on a second, already-open connection of that
//!    agent, carries fresh metrics and the unchanged inventory hash, with `wait_ms = 0`, so the
//!    manager answers at once. Each is timed from just before the request is handed to the
//!    client until the whole answer body has been read; its body and header sizes are recorded;
//!    `inventory_wanted` must be false.
//!
//! At the end it prints a JSON summary on standard output (progress goes to standard error):
//! agents, held connections, measured check-ins, latency p50/p90/p99/max, body and header
//! sizes, errors by kind, and with `--manager-pid` the manager's CPU time over the measured
//! window per check-in (an upper bound: held connections and background work are in it too),
//! its resident memory and open descriptors. The exit status is 1 when a measured check-in
//! failed, one asked for the inventory, or not every agent was held.
//!
//! The simulator raises its own `RLIMIT_NOFILE` soft limit to the hard limit; it needs about one
//! descriptor per agent plus one per agent drawn for the measured stream.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use patchdeck_proto::agent::CheckinResponse;
use reqwest::StatusCode;
use serde_json::json;
use tokio::time::Instant;

mod fleet;
mod run;
mod stats;
mod synth;

use fleet::{AgentRecord, EnrollStats, FleetOwner, StateDir};
use run::{Agent, Endpoint, HoldCounters};
use stats::{LatencySummary, SizeSummary, Tally};
use synth::Rng;

/// Simulates N pull-mode agents against a Patchdeck manager and measures check-ins.
#[derive(Debug, Parser)]
#[command(name = "patchdeck-sim", version, about)]
struct Args {
    /// The manager, e.g. https://localhost:8443.
    #[arg(long)]
    server: String,
    /// PEM file of the CA certificate(s) to trust for the manager (its data dir's ca.crt).
    #[arg(long)]
    ca_cert: PathBuf,
    /// Registration token with at least as many seats as agents still to enroll.
    #[arg(long, env = "PATCHDECK_SIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Number of agents.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// The agents' check-in interval: each long-poll waits this long, and the measured stream
    /// sends agents / interval check-ins per second.
    #[arg(long, default_value_t = 300)]
    interval_secs: u64,
    /// Length of the measured window.
    #[arg(long, default_value_t = 120)]
    duration_secs: u64,
    /// Where the agents' keys, certificates and machine IDs are kept between runs.
    #[arg(long)]
    state_dir: PathBuf,
    /// Enrollments, inventory check-ins and warm-ups at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The manager's process id, to report its CPU time, memory and descriptors.
    #[arg(long)]
    manager_pid: Option<u32>,
    /// The long-poll loops start spread over this many seconds.
    #[arg(long, default_value_t = 30)]
    ramp_secs: u64,
    /// Seconds with only the held connections before the measured window (0: none).
    #[arg(long, default_value_t = 10)]
    baseline_secs: u64,
    /// HTTP/1.1 only (default: HTTP/2 when the manager offers it by ALPN, as it does).
    #[arg(long)]
    http1: bool,
    /// Also write the JSON summary to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("patchdeck-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(simulate(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("patchdeck-sim: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The manager's CPU time so far (ms), or `None` without `--manager-pid`.
fn manager_cpu(pid: Option<u32>) -> Option<f64> {
    stats::cpu_ms(pid?)
}

fn delta(after: Option<f64>, before: Option<f64>) -> Option<f64> {
    Some(stats::round2(after? - before?))
}

fn step(text: &str) {
    eprintln!("==> {text}");
}

async fn simulate(args: Args) -> anyhow::Result<bool> {
    if args.agents == 0 || args.interval_secs == 0 || args.duration_secs == 0 {
        bail!("--agents, --interval-secs and --duration-secs must be positive");
    }
    let n = args.agents;
    let nofile = stats::raise_nofile();
    eprintln!(
        "RLIMIT_NOFILE: soft {:?} -> {:?}, hard {:?}{}",
        nofile.soft_before,
        nofile.soft,
        nofile.hard,
        nofile.error.as_deref().map(|e| format!(" (raising failed: {e})")).unwrap_or_default()
    );
    let started = Instant::now();
    let ca_pem = std::fs::read(&args.ca_cert).with_context(|| format!("reading {}", args.ca_cert.display()))?;
    let ca_text = String::from_utf8_lossy(&ca_pem);
    let ca_fingerprint = patchdeck_crypto::ca::fingerprint(&ca_text).context("--ca-cert")?;
    let endpoint = Arc::new(Endpoint::new(&args.server, &ca_pem, args.http1).await?);
    let state = StateDir::open(&args.state_dir, &FleetOwner { server: endpoint.base.clone(), ca_fingerprint })?;
    let pid = args.manager_pid;
    let tally = Arc::new(Tally::default());
    // The manager's resident set (KiB) after each phase.
    let mut rss = serde_json::Map::new();
    let mut note_rss = |phase: &str| {
        if let Some(kib) = pid.and_then(|pid| stats::status_field(pid, "VmRSS")) {
            rss.insert(phase.to_owned(), json!(kib));
        }
    };
    note_rss("start");

    // 1. Enrollment.
    step(&format!("enrolling: {n} agents"));
    let mut records: Vec<AgentRecord> = Vec::with_capacity(n);
    let mut missing = Vec::new();
    for index in 1..=n {
        match state.load(index)? {
            Some(record) => records.push(record),
            None => missing.push(index),
        }
    }
    let reused = records.len();
    let enroll_started = Instant::now();
    let cpu_before_enroll = manager_cpu(pid);
    let rate_limited = Arc::new(AtomicU64::new(0));
    if !missing.is_empty() {
        let token = args.token.clone().context("--token is needed: some agents are not enrolled yet")?;
        let client = endpoint.client(None)?;
        let enrolled = run::bounded("enrolled", missing.clone(), args.concurrency, |index| {
            let (client, base, token, state) = (client.clone(), endpoint.base.clone(), token.clone(), state.clone());
            let rate_limited = Arc::clone(&rate_limited);
            async move {
                let mut stats = EnrollStats::default();
                let result = fleet::enroll(&client, &base, &token, index, Duration::from_secs(600), &mut stats).await;
                rate_limited.fetch_add(stats.rate_limited, Ordering::Relaxed);
                let record = result?;
                state.save(&record)?;
                anyhow::Ok(record)
            }
        })
        .await;
        let mut failures = Vec::new();
        for result in enrolled {
            match result {
                Ok(record) => records.push(record),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        if !failures.is_empty() {
            bail!("{} of {} enrollments failed; the first: {}", failures.len(), missing.len(), failures[0]);
        }
    }
    let enroll_secs = enroll_started.elapsed().as_secs_f64();
    let enroll_cpu = delta(manager_cpu(pid), cpu_before_enroll);
    note_rss("after_enrollment");
    records.sort_by_key(|r| r.index);
    eprintln!("  {} enrolled now, {reused} reused, in {enroll_secs:.1} s", missing.len());

    // The agents and their own connections.
    let mut rng = Rng::from_os()?;
    let agents: Vec<Arc<Agent>> =
        records.into_iter().map(|r| Agent::new(r, &endpoint, &mut rng).map(Arc::new)).collect::<Result<_, _>>()?;

    // The measured stream's schedule, drawn now so its connections can be opened beforehand.
    let period = Duration::from_secs_f64(args.interval_secs as f64 / n as f64);
    let measured_total = ((args.duration_secs as f64 * n as f64) / args.interval_secs as f64).round() as usize;
    let schedule: Vec<usize> = (0..measured_total).map(|_| rng.below(n as u64) as usize).collect();
    let drawn: BTreeSet<usize> = schedule.iter().copied().collect();
    let needed_fds = n + drawn.len() + 64;
    if nofile.soft.is_some_and(|soft| (soft as usize) < needed_fds) {
        eprintln!("warning: about {needed_fds} descriptors are needed, the limit is {:?}", nofile.soft);
    }

    // 2. Inventory: one check-in each; upload where the manager wants it.
    step("inventory: one check-in per agent, uploading where the manager asks");
    let inventory_started = Instant::now();
    let cpu_before_inventory = manager_cpu(pid);
    let uploaded = Arc::new(AtomicU64::new(0));
    let upload_bytes = Arc::new(AtomicU64::new(0));
    let synced = run::bounded("inventory", agents.clone(), args.concurrency, |agent| {
        let (endpoint, uploaded, upload_bytes) =
            (Arc::clone(&endpoint), Arc::clone(&uploaded), Arc::clone(&upload_bytes));
        async move {
            let mut rng = Rng::new(agent.record.index as u64);
            let body = agent.checkin_body(&mut rng, started, 0);
            let x = run::checkin(&endpoint, &agent.client, &agent, body, Duration::from_secs(60))
                .await
                .with_context(|| format!("check-in of {}", agent.record.hostname))?;
            if x.status != StatusCode::OK {
                bail!("check-in of {}: {} {}", agent.record.hostname, x.status, fleet::error_code(&x.body));
            }
            let answer: CheckinResponse = serde_json::from_slice(&x.body)?;
            if answer.inventory_wanted {
                let bytes = run::put_inventory(&endpoint, &agent).await?;
                uploaded.fetch_add(1, Ordering::Relaxed);
                upload_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }
    })
    .await;
    let sync_failures: Vec<String> = synced.into_iter().filter_map(|r| r.err().map(|e| format!("{e:#}"))).collect();
    if !sync_failures.is_empty() {
        bail!("{} of {n} inventory check-ins failed; the first: {}", sync_failures.len(), sync_failures[0]);
    }
    let uploaded = uploaded.load(Ordering::Relaxed);
    let inventory_secs = inventory_started.elapsed().as_secs_f64();
    let inventory_cpu = delta(manager_cpu(pid), cpu_before_inventory);
    note_rss("after_inventory_n_connections_open");
    eprintln!("  {uploaded} uploaded, {} already current, in {inventory_secs:.1} s", n as u64 - uploaded);

    // 3. Hold: every agent long-polls on its own connection.
    step(&format!("hold: {n} long-polls (wait_ms {}) starting over {} s", args.interval_secs * 1000, args.ramp_secs));
    let hold = Arc::new(HoldCounters::default());
    let mut holders = tokio::task::JoinSet::new();
    let ramp_started = Instant::now();
    let cpu_before_ramp = manager_cpu(pid);
    for (i, agent) in agents.iter().enumerate() {
        let at = ramp_started + Duration::from_secs_f64(args.ramp_secs as f64 * i as f64 / n as f64);
        let (endpoint, agent, hold, tally) =
            (Arc::clone(&endpoint), Arc::clone(agent), Arc::clone(&hold), Arc::clone(&tally));
        let wait_ms = args.interval_secs * 1000;
        holders.spawn(async move {
            tokio::time::sleep_until(at).await;
            run::hold_loop(endpoint, agent, hold, tally, wait_ms, started).await;
        });
    }
    let hold_deadline = ramp_started + Duration::from_secs(args.ramp_secs + 120);
    let mut last_print = Instant::now();
    loop {
        let held = hold.in_flight.load(Ordering::Relaxed);
        if held >= n || Instant::now() > hold_deadline {
            break;
        }
        if last_print.elapsed() >= Duration::from_secs(5) {
            eprintln!("  held: {held}/{n}");
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ramp_secs = ramp_started.elapsed().as_secs_f64();
    let ramp_cpu = delta(manager_cpu(pid), cpu_before_ramp);
    note_rss("after_hold_n_held");
    eprintln!("  held: {}/{n} after {ramp_secs:.1} s", hold.in_flight.load(Ordering::Relaxed));

    // 4. Warm-up: open the measured stream's connections (one per drawn agent).
    step(&format!("warm-up: {} connections for the measured stream", drawn.len()));
    let warm = run::bounded("warm", drawn.iter().copied().collect(), args.concurrency, |index| {
        let (endpoint, agent, tally) = (Arc::clone(&endpoint), Arc::clone(&agents[index]), Arc::clone(&tally));
        async move {
            let client = endpoint.client(Some(&agent.record.identity_pem()))?;
            let mut rng = Rng::new(!(index as u64));
            let body = agent.checkin_body(&mut rng, started, 0);
            match run::checkin(&endpoint, &client, &agent, body, Duration::from_secs(60)).await {
                Ok(x) if x.status == StatusCode::OK => {}
                Ok(x) => tally.add(format!("warm-up:status {}", x.status.as_u16()), || fleet::error_code(&x.body)),
                Err(e) => {
                    let (kind, text) = run::transport_error(&e);
                    tally.add(format!("warm-up:transport {kind}"), || text);
                }
            }
            anyhow::Ok((index, client))
        }
    })
    .await;
    let mut active: Vec<Option<reqwest::Client>> = vec![None; n];
    for result in warm {
        let (index, client) = result?;
        active[index] = Some(client);
    }
    let active = Arc::new(active);
    note_rss("after_warm_up");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 5. Baseline: the held fleet alone.
    let mut baseline = json!(null);
    let mut baseline_rate = None;
    if args.baseline_secs > 0 {
        step(&format!("baseline: {} s with only the held connections", args.baseline_secs));
        let t0 = Instant::now();
        let before = manager_cpu(pid);
        let switches_before = pid.and_then(stats::context_switches);
        tokio::time::sleep(Duration::from_secs(args.baseline_secs)).await;
        let cpu = delta(manager_cpu(pid), before);
        let switches = pid.and_then(stats::context_switches).zip(switches_before).map(|(a, b)| a.saturating_sub(b));
        let secs = t0.elapsed().as_secs_f64();
        baseline_rate = cpu.map(|c| c / secs);
        baseline = json!({
            "secs": stats::round2(secs),
            "manager_cpu_ms": cpu,
            "manager_cpu_ms_per_sec": baseline_rate.map(stats::round2),
            "manager_context_switches": switches,
            "held": hold.in_flight.load(Ordering::Relaxed),
        });
    }

    // 6. The measured window.
    step(&format!(
        "measured: {measured_total} check-ins over {} s ({:.2}/s, one every {:.1} ms)",
        args.duration_secs,
        1.0 / period.as_secs_f64(),
        period.as_secs_f64() * 1e3
    ));
    let held_at_start = hold.in_flight.load(Ordering::Relaxed);
    let answers_before = hold.answers.load(Ordering::Relaxed);
    let held_min = Arc::new(AtomicUsize::new(held_at_start));
    let sampler = {
        let (hold, held_min) = (Arc::clone(&hold), Arc::clone(&held_min));
        tokio::spawn(async move {
            loop {
                held_min.fetch_min(hold.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let measured = Arc::new(Measured::default());
    let sim_cpu_before = stats::cpu_ms(0);
    let switches_before = pid.and_then(stats::context_switches);
    let cpu_before = manager_cpu(pid);
    let window_started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut max_lag = Duration::ZERO;
    for (k, &index) in schedule.iter().enumerate() {
        let due = window_started + period.mul_f64(k as f64);
        tokio::time::sleep_until(due).await;
        max_lag = max_lag.max(Instant::now().saturating_duration_since(due));
        let (endpoint, agent, active, measured, tally) = (
            Arc::clone(&endpoint),
            Arc::clone(&agents[index]),
            Arc::clone(&active),
            Arc::clone(&measured),
            Arc::clone(&tally),
        );
        tasks.spawn(async move {
            let Some(client) = active[index].as_ref() else { return };
            let mut rng = Rng::new((k as u64) << 20 | index as u64);
            let body = agent.checkin_body(&mut rng, started, 0);
            measured.record(run::checkin(&endpoint, client, &agent, body, Duration::from_secs(30)).await, &tally);
        });
    }
    while tasks.join_next().await.is_some() {}
    let window_secs = window_started.elapsed().as_secs_f64();
    let manager_window_cpu = delta(manager_cpu(pid), cpu_before);
    let switches = pid.and_then(stats::context_switches).zip(switches_before).map(|(a, b)| a.saturating_sub(b));
    let sim_window_cpu = delta(stats::cpu_ms(0), sim_cpu_before);
    sampler.abort();
    let held_at_end = hold.in_flight.load(Ordering::Relaxed);
    let held_answers_in_window = hold.answers.load(Ordering::Relaxed) - answers_before;

    // The manager at the end, with everything still open.
    note_rss("end");
    let manager = pid.map(|pid| {
        json!({
            "pid": pid,
            "rss_kib": stats::status_field(pid, "VmRSS"),
            "hwm_kib": stats::status_field(pid, "VmHWM"),
            "threads": stats::status_field(pid, "Threads"),
            "open_fds": stats::open_fds(pid),
            "rss_kib_by_phase": rss,
        })
    });
    let simulator = json!({
        "rss_kib": stats::status_field(0, "VmRSS"),
        "open_fds": stats::open_fds(0),
        "cpu_ms_measured_window": sim_window_cpu,
    });
    holders.abort_all();
    drop(active);

    // The summary.
    let samples = std::mem::take(&mut *measured.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let ok = samples.len();
    let latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    let sizes = |f: fn(&Sample) -> usize| SizeSummary::of(&samples.iter().map(f).collect::<Vec<_>>());
    let violations = measured.inventory_wanted.load(Ordering::Relaxed);
    let measured_errors = tally.snapshot("measured:");
    let error_count: u64 = measured_errors.values().map(|e| e.count).sum();
    let latency = LatencySummary::of(&latencies);
    let cpu_per_checkin = manager_window_cpu.filter(|_| ok > 0).map(|c| stats::round2(c / ok as f64));
    let cpu_net = match (manager_window_cpu, baseline_rate) {
        (Some(c), Some(rate)) if ok > 0 => Some(stats::round2((c - rate * window_secs) / ok as f64)),
        _ => None,
    };
    let request_body = sizes(|s| s.request_body);
    let response_body = sizes(|s| s.response_body);
    let goals = json!({
        "p99_latency_under_50ms": latency.as_ref().map(|l| l.p99 < 50.0),
        "bodies_at_most_1kib_each_way": match (&request_body, &response_body) {
            (Some(q), Some(r)) => Some(q.max <= 1024 && r.max <= 1024),
            _ => None,
        },
        "manager_cpu_at_most_2ms_per_checkin": cpu_per_checkin.map(|c| c <= 2.0),
        "no_errors": error_count == 0 && violations == 0,
    });
    let summary = json!({
        "server": endpoint.base,
        "agents": n,
        "interval_secs": args.interval_secs,
        "duration_secs": args.duration_secs,
        "http_versions": measured.versions.snapshot("").into_iter().map(|(v, e)| (v, e.count)).collect::<std::collections::BTreeMap<_, _>>(),
        "rlimit_nofile": nofile,
        "enrollment": {
            "enrolled_now": missing.len(),
            "reused": reused,
            "secs": stats::round2(enroll_secs),
            "rate_limited_429": rate_limited.load(Ordering::Relaxed),
            "manager_cpu_ms_per_enrollment": enroll_cpu.filter(|_| !missing.is_empty()).map(|c| stats::round2(c / missing.len() as f64)),
        },
        "inventory": {
            "uploaded": uploaded,
            "already_current": n as u64 - uploaded,
            "upload_body_bytes_mean": (uploaded > 0).then(|| upload_bytes.load(Ordering::Relaxed) / uploaded),
            "secs": stats::round2(inventory_secs),
            "manager_cpu_ms_per_agent": inventory_cpu.map(|c| stats::round2(c / n as f64)),
        },
        "held": {
            "at_window_start": held_at_start,
            "min_during_window": held_min.load(Ordering::Relaxed),
            "at_window_end": held_at_end,
            "ramp_secs": stats::round2(ramp_secs),
            "manager_cpu_ms_per_held_checkin_during_ramp": ramp_cpu.map(|c| stats::round2(c / n as f64)),
            "answers_total": hold.answers.load(Ordering::Relaxed),
            "answers_during_window": held_answers_in_window,
            "answers_inventory_wanted": hold.inventory_wanted.load(Ordering::Relaxed),
            "answers_told_to_wait": hold.told_to_wait.load(Ordering::Relaxed),
            "answers_with_commands": hold.with_commands.load(Ordering::Relaxed),
            "status_503": hold.unavailable.load(Ordering::Relaxed),
            "errors": tally.snapshot("held:"),
        },
        "warm_up_errors": tally.snapshot("warm-up:"),
        "baseline": baseline,
        "measured": {
            "scheduled": measured_total,
            "ok": ok,
            "rate_per_sec": stats::round2(measured_total as f64 / args.duration_secs as f64),
            "window_secs": stats::round2(window_secs),
            "max_send_lag_ms": stats::round2(max_lag.as_secs_f64() * 1e3),
            "latency_ms": latency,
            "request_body_bytes": request_body,
            "response_body_bytes": response_body,
            "request_header_bytes_http1_form": sizes(|s| s.request_header),
            "response_header_bytes_http1_form": sizes(|s| s.response_header),
            "inventory_wanted_violations": violations,
            "answers_with_commands": measured.with_commands.load(Ordering::Relaxed),
            "status_503": measured_errors.get("status 503").map_or(0, |e| e.count),
            "errors": measured_errors,
        },
        "manager": manager.map(|mut m| {
            m["cpu_ms_measured_window"] = json!(manager_window_cpu);
            m["cpu_ms_per_checkin_upper_bound"] = json!(cpu_per_checkin);
            m["cpu_ms_per_checkin_net_of_baseline"] = json!(cpu_net);
            m["context_switches_measured_window"] = json!(switches);
            m["context_switches_per_checkin"] =
                json!(switches.filter(|_| ok > 0).map(|s| stats::round2(s as f64 / ok as f64)));
            m
        }),
        "simulator": simulator,
        "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        "goals": goals,
    });
    let text = serde_json::to_string_pretty(&summary)?;
    println!("{text}");
    if let Some(path) = &args.output {
        std::fs::write(path, format!("{text}\n")).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(error_count == 0 && violations == 0 && ok == measured_total && held_at_start >= n)
}

/// One measured check-in that got a `200`.
#[derive(Debug, Clone, Copy)]
struct Sample {
    latency: Duration,
    request_body: usize,
    response_body: usize,
    request_header: usize,
    response_header: usize,
}

/// The measured stream's results.
#[derive(Debug, Default)]
struct Measured {
    samples: Mutex<Vec<Sample>>,
    inventory_wanted: AtomicU64,
    with_commands: AtomicU64,
    versions: Tally,
}

impl Measured {
    fn record(&self, result: Result<run::Exchange, reqwest::Error>, tally: &Tally) {
        let x = match result {
            Ok(x) => x,
            Err(e) => {
                let (kind, text) = run::transport_error(&e);
                tally.add(format!("measured:transport {kind}"), || text);
                return;
            }
        };
        self.versions.add(format!("{:?}", x.version), String::new);
        if x.status != StatusCode::OK {
            tally.add(format!("measured:status {}", x.status.as_u16()), || fleet::error_code(&x.body));
            return;
        }
        let answer: CheckinResponse = match serde_json::from_slice(&x.body) {
            Ok(answer) => answer,
            Err(e) => {
                tally.add("measured:not a CheckinResponse", || e.to_string());
                return;
            }
        };
        if answer.inventory_wanted {
            self.inventory_wanted.fetch_add(1, Ordering::Relaxed);
        }
        if !answer.commands.is_empty() {
            self.with_commands.fetch_add(1, Ordering::Relaxed);
        }
        self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Sample {
            latency: x.latency,
            request_body: x.request_body_bytes,
            response_body: x.body.len(),
            request_header: x.request_header_bytes,
            response_header: x.response_header_bytes,
        });
    }
}
