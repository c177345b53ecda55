//! Push mode against real agents: `patchdeck-agent serve` processes on apt sandboxes, each on
//! its own loopback address (127.0.0.2, 127.0.1.3, …) with a server certificate from the
//! manager's CA, and the manager's own push client certificate, over real mutual TLS 1.3.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use patchdeck::clock::{Clock, ManualClock};
use patchdeck::pki::{host_server_certificate, KeyMaterial};
use patchdeck::push::client::DEFAULT_PORT;
use patchdeck::push::convert::{job_result, SECURITY_REASON};
use patchdeck::push::discovery::DiscoveryOptions;
use patchdeck::push::identity::{self, PushIdentity};
use patchdeck::push::{
    discover, ClaimedCommand, DiscoveryError, DiscoveryProgress, FollowMode, JobFollow, JobUpdate, PushClient,
    PushClientOptions, PushConnector, PushError, PushEvent, PushStore, PushWorker, PushWorkerConfig, Submission,
    SubmitContext, UpdateSource,
};
use patchdeck_proto::agent::{Command, CommandResult, CommandState, Selection};
use patchdeck_proto::lpa::jobs::JobStatus;
use patchdeck_proto::lpa::{ErrorCode, HealthStatus, PackageStatus, Severity};
use patchdeck_proto::{BackendKind, ScanReport, SecurityClass, TxAction};
use patchdeck_store::{CertificateKind, Host, HostId, HostStatus, Transport};
use patchdeck_testkit::serve::{agent_binary, free_port_on, ServeFiles, ServeProcess};
use patchdeck_testkit::AptSandbox;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Upper bound for anything that should happen; a test that hits it has failed.
const GUARD: Duration = Duration::from_secs(90);
const YEAR: SignedDuration = SignedDuration::from_hours(24 * 365);

/// The manager's key material and push client certificate, in a temporary data directory.
struct Pki {
    _dir: tempfile::TempDir,
    keys: KeyMaterial,
    identity: PushIdentity,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (keys, _) = KeyMaterial::load_or_create(&data, Timestamp::now()).unwrap();
        let (identity, _) = PushIdentity::load_or_issue(&keys.ca, &data, Timestamp::now(), YEAR, false).unwrap();
        Pki { _dir: dir, keys, identity }
    }

    /// A push bundle for a host with these names, as `admin add-push-host` issues it.
    fn bundle(&self, names: &[&str]) -> (String, String) {
        let (issued, key, _) = host_server_certificate(&self.keys.ca, names, Timestamp::now(), YEAR).unwrap();
        (issued.cert_pem, key.expose().to_owned())
    }

    fn connector(&self, port: u16) -> PushConnector {
        let options =
            PushClientOptions { port, poll_interval: Duration::from_millis(200), ..PushClientOptions::default() };
        PushConnector::new(&self.identity, options).unwrap()
    }
}

/// A real agent in push mode on `listen`, with a bundle from `pki` for `names` (its IP when
/// empty).
struct Agent {
    sb: AptSandbox,
    files: ServeFiles,
    config: std::path::PathBuf,
    process: Option<ServeProcess>,
}

impl Agent {
    fn start(pki: &Pki, sb: AptSandbox, listen: SocketAddr, names: &[&str]) -> Agent {
        let files = ServeFiles::at(&sb, "unused throw-away CA", &[0x10, 1], listen);
        let ip = files.listen.ip().to_string();
        let names: Vec<&str> = if names.is_empty() { vec![ip.as_str()] } else { names.to_vec() };
        let (cert, key) = pki.bundle(&names);
        files.install_bundle(pki.keys.ca.cert_pem(), &cert, &key);
        let config = files.write("agent.yaml", &files.config("  reload_interval_secs: 1\n", ""));
        let process = files.spawn(&agent_binary(), &config, GUARD);
        Agent { sb, files, config, process: Some(process) }
    }

    fn ip(&self) -> String {
        self.files.listen.ip().to_string()
    }

    fn stop(&mut self) {
        let (status, stderr) = self.process.take().expect("running").stop();
        assert!(status.success(), "{status}: {stderr}");
    }

    fn restart(&mut self) {
        assert!(self.process.is_none());
        self.process = Some(self.files.spawn(&agent_binary(), &self.config, GUARD));
    }
}

/// `hello` 1.0-1 (1.1-1 available) and `other` 1.0-1 (security update 1.2-1 available).
fn sandbox(gated: bool) -> AptSandbox {
    let mut builder = AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1"]);
    if gated {
        builder = builder.dpkg_gate();
    }
    let sb = builder.build();
    sb.refresh();
    sb
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

async fn next_update(follow: &mut JobFollow) -> JobUpdate {
    tokio::time::timeout(GUARD, follow.next()).await.expect("an update in time").expect("the stream goes on").unwrap()
}

/// The rest of a followed job's updates, up to and with the final one.
async fn rest_of(follow: &mut JobFollow) -> Vec<JobUpdate> {
    let mut updates = Vec::new();
    loop {
        let update = next_update(follow).await;
        let last = update.is_final();
        updates.push(update);
        if last {
            return updates;
        }
    }
}

fn only_job(submission: Submission) -> Uuid {
    match submission {
        Submission::Jobs(jobs) if jobs.len() == 1 => jobs[0].job_id,
        other => panic!("expected one job, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The client

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_client_reads_health_system_packages_and_updates_as_an_inventory() {
    let pki = Pki::new();
    let agent = Agent::start(&pki, sandbox(false), addr("127.0.1.2", 0), &[]);
    let client = pki.connector(agent.files.port).client(&agent.ip()).unwrap();

    let health = client.health().await.unwrap();
    assert_eq!((health.status, health.version.as_str()), (HealthStatus::Healthy, env!("CARGO_PKG_VERSION")));
    let info = client.system_info().await.unwrap();
    assert_eq!(info.hostname, std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim());
    assert!(!info.kernel.is_empty() && !info.architecture.is_empty(), "{info:?}");

    let packages = client.packages().await.unwrap();
    let package =
        |name: &str| packages.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name}: {packages:?}"));
    assert_eq!(
        (package("hello").version.as_str(), package("hello").status, package("hello").latest_version.as_deref()),
        ("1.0-1", PackageStatus::Upgradable, Some("1.1-1"))
    );
    assert_eq!(package("other").latest_version.as_deref(), Some("1.2-1"));
    let installed: Vec<(String, String)> = {
        let mut v: Vec<_> = packages.iter().map(|p| (p.name.clone(), p.version.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(installed, agent.sb.versions(), "the agent lists what dpkg has");

    let updates = client.updates().await.unwrap();
    let severity = |name: &str| updates.patches.iter().find(|p| p.name == name).map(|p| p.severity);
    assert_eq!((severity("hello"), severity("other")), (Some(Severity::Low), Some(Severity::High)));
    assert_eq!(updates.security_updates, 1);

    // The same inventory a pull host would have.
    let report = client.scan().await.unwrap();
    assert_eq!((report.backend, report.version_format), (BackendKind::Apt, BackendKind::Apt.version_format()));
    assert!(report.installed.iter().any(|p| p.name == "hello" && p.version == "1.0-1"), "{report:?}");
    let update = |name: &str| report.updates.iter().find(|u| u.name == name).unwrap();
    assert_eq!(
        (update("other").candidate_version.as_str(), update("other").security.class),
        ("1.2-1", SecurityClass::Security)
    );
    assert!(update("other").security.reason.starts_with(SECURITY_REASON), "{:?}", update("other").security);
    assert_eq!(update("hello").security.class, SecurityClass::NotSecurity);
    assert_eq!(report.security_update_count(), 1);

    // A scan command reads the same, without a job.
    let scan = Command::Scan { subsystems: vec![patchdeck_proto::agent::Subsystem::Packages], refresh: true };
    match client.submit(&scan).await.unwrap() {
        Submission::Done(done) => {
            let again = done.inventory.expect("a scan reads the inventory");
            assert_eq!(patchdeck_proto::agent::inventory_hash(&again), patchdeck_proto::agent::inventory_hash(&report));
            assert!(done.output.contains("2 updates (1 security)"), "{}", done.output);
        }
        other => panic!("a scan starts no job: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_client_upgrade_is_followed_over_the_websocket_and_rolled_back() {
    let pki = Pki::new();
    let agent = Agent::start(&pki, sandbox(true), addr("127.0.1.3", 0), &[]);
    let client = pki.connector(agent.files.port).client(&agent.ip()).unwrap();

    let command_id = Uuid::new_v4();
    let upgrade =
        Command::Upgrade { selection: Selection::Packages { packages: vec!["hello=1.1-1".into()] }, dry_run: false };
    let job_id = only_job(client.submit(&upgrade).await.unwrap());
    let mut follow = client.follow_job(job_id);
    // dpkg is held at the gate: the job cannot end before the socket is subscribed.
    let first = next_update(&mut follow).await;
    assert!(!first.status.is_terminal(), "{first:?}");
    assert_eq!(follow.mode(), FollowMode::WebSocket);
    agent.sb.open_gate();
    let updates = rest_of(&mut follow).await;
    let last = updates.last().unwrap();
    assert_eq!((last.status, last.source), (JobStatus::Completed, UpdateSource::WebSocket), "{updates:?}");
    assert!(updates.iter().all(|u| u.job_id == job_id));
    let detail = last.detail.as_deref().unwrap();
    let result = job_result(command_id, detail, Timestamp::now());
    assert_eq!((result.state, result.job_id, result.error), (CommandState::Completed, Some(job_id), None));
    let hello = result.changes.iter().find(|c| c.name == "hello").expect("hello changed");
    assert_eq!(
        (hello.action, hello.from.as_deref(), hello.to.as_deref()),
        (TxAction::Upgrade, Some("1.0-1"), Some("1.1-1"))
    );
    assert_eq!(agent.sb.version_of("hello").as_deref(), Some("1.1-1"));

    // Rolling the command back rolls its job back.
    let rollback = Command::Rollback { command_id };
    let err = client.submit(&rollback).await.unwrap_err();
    assert!(matches!(err, PushError::InvalidCommand(_)), "without the job there is nothing to roll back: {err}");
    let context = SubmitContext { rollback_job_id: Some(job_id) };
    let rollback_job = only_job(client.submit_with(&rollback, &context).await.unwrap());
    let detail = tokio::time::timeout(GUARD, client.follow_job(rollback_job).finish(|_| {})).await.unwrap().unwrap();
    let result = job_result(Uuid::new_v4(), &detail, Timestamp::now());
    assert_eq!(result.state, CommandState::Completed, "{detail:?}");
    let hello = result.changes.iter().find(|c| c.name == "hello").expect("hello restored");
    assert_eq!((hello.action, hello.to.as_deref()), (TxAction::Downgrade, Some("1.0-1")));
    assert_eq!(agent.sb.version_of("hello").as_deref(), Some("1.0-1"));
}

/// A TCP proxy whose connections can all be cut at once (a network fault for the WebSocket).
struct Proxy {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(listen: SocketAddr, upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let tracked = connections.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tracked.lock().unwrap().push(task);
            }
        });
        Proxy { addr, connections, accept }
    }

    /// Drops every connection open now; new ones still work.
    fn cut(&self) -> usize {
        let cut = std::mem::take(&mut *self.connections.lock().unwrap());
        let n = cut.iter().filter(|t| !t.is_finished()).count();
        for task in cut {
            task.abort();
        }
        n
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_client_falls_back_to_polling_when_the_websocket_fails() {
    let pki = Pki::new();
    let agent = Agent::start(&pki, sandbox(true), addr("127.0.1.4", 0), &[]);
    let proxy = Proxy::start(addr("127.0.1.4", 0), agent.files.listen).await;
    let client = pki.connector(DEFAULT_PORT).client_at(&agent.ip(), proxy.addr.port()).unwrap();

    let job_id =
        only_job(client.submit(&Command::Upgrade { selection: Selection::All, dry_run: false }).await.unwrap());
    let mut follow = client.follow_job(job_id);
    let first = next_update(&mut follow).await;
    assert!(!first.status.is_terminal(), "{first:?}");
    assert_eq!(follow.mode(), FollowMode::WebSocket);
    assert!(proxy.cut() >= 1, "the socket went through the proxy");
    // The follower notices the dead socket and polls (through new connections).
    let polling = tokio::time::timeout(GUARD, async {
        while follow.mode() != FollowMode::Polling {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(polling.is_ok(), "still {:?}", follow.mode());
    agent.sb.open_gate();
    let updates = rest_of(&mut follow).await;
    let last = updates.last().unwrap();
    assert_eq!((last.status, last.source), (JobStatus::Completed, UpdateSource::Rest), "{updates:?}");
    let result = job_result(Uuid::new_v4(), last.detail.as_deref().unwrap(), Timestamp::now());
    let to = |name: &str| result.changes.iter().find(|c| c.name == name).and_then(|c| c.to.clone());
    assert_eq!((to("hello").as_deref(), to("other").as_deref()), (Some("1.1-1"), Some("1.2-1")), "{result:?}");
    assert_eq!(agent.sb.version_of("other").as_deref(), Some("1.2-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_client_errors_are_typed() {
    let pki = Pki::new();
    // Nothing listens: unreachable, at once.
    let nobody = free_port_on("127.0.1.9".parse().unwrap());
    let client = pki.connector(nobody.port()).client("127.0.1.9").unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), client.health()).await.expect("quickly").unwrap_err();
    assert!(matches!(err, PushError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.code(), "HOST_UNREACHABLE");
    assert!(err.is_retryable());

    // An agent whose allow-list does not list us drops the connection during the handshake.
    // (A fresh client for each try: connections already open keep working, as ADR 0003 says.)
    let agent = Agent::start(&pki, sandbox(false), addr("127.0.1.5", 0), &[]);
    let fresh = || pki.connector(agent.files.port).client(&agent.ip()).unwrap();
    let health = || {
        let client = fresh();
        async move { client.health().await }
    };
    agent.files.write("allowlist", "127.0.0.99\n");
    let err = until(health, |r| matches!(r, Err(PushError::Tls { .. }))).await.unwrap_err();
    assert!(err.to_string().contains("allow-list"), "{err}");
    assert_eq!(err.code(), "TLS_ERROR");

    // Listed again, it answers; errors in the contract's body are typed.
    agent.files.write("allowlist", "127.0.0.1\n");
    until(health, Result::is_ok).await.unwrap();
    let client = fresh();
    let missing = Uuid::new_v4();
    match client.job(missing).await.unwrap_err() {
        PushError::Http { status: 404, error, .. } => assert_eq!(error.code, ErrorCode::JobNotFound),
        other => panic!("{other:?}"),
    }
    let bad = Command::Install { packages: vec!["-bad".into()], dry_run: false };
    match client.submit(&bad).await.unwrap_err() {
        PushError::Http { status: 400, error, .. } => {
            assert_eq!(error.code, ErrorCode::ValidationError);
            assert_eq!(error.details.as_ref().unwrap()["field"], "packages[0].name");
        }
        other => panic!("{other:?}"),
    }
    // What the contract cannot do is refused before anything is sent.
    let dry = Command::Upgrade { selection: Selection::All, dry_run: true };
    let err = client.submit(&dry).await.unwrap_err();
    assert!(matches!(err, PushError::Unsupported { .. }) && err.code() == "UNSUPPORTED_OPERATION", "{err:?}");
    let heartbeat = Command::Heartbeat { enabled: true, interval_secs: 10, duration_secs: 60 };
    assert!(matches!(client.submit(&heartbeat).await, Err(PushError::Unsupported { .. })));
    assert!(agent.sb.versions().contains(&("hello".into(), "1.0-1".into())), "nothing changed");

    // An agent with a certificate from another CA (another manager's: same CA name, other key)
    // is refused by us.
    let other = Pki::new();
    let (cert, key) = other.bundle(&[&agent.ip()]);
    agent.files.install_bundle(other.keys.ca.cert_pem(), &cert, &key);
    let err = until(health, |r| matches!(r, Err(PushError::Tls { .. }))).await.unwrap_err();
    assert!(err.to_string().contains("invalid peer certificate"), "{err}");
    assert!(!err.is_retryable());
}

/// Calls `f` until `done` says its result is the one wanted (the agent reloads its files within
/// a second or two), and returns that result.
async fn until<T, F, Fut>(f: F, done: impl Fn(&T) -> bool) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + GUARD;
    loop {
        let result = f().await;
        if done(&result) {
            return result;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {result:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_discovery_finds_exactly_the_agents_in_a_range() {
    let pki = Pki::new();
    let port = free_port_on("127.0.0.2".parse().unwrap()).port();
    let a = Agent::start(&pki, sandbox(false), addr("127.0.0.2", port), &["a.push.test", "127.0.0.2"]);
    let b = Agent::start(&pki, sandbox(false), addr("127.0.0.3", port), &[]);
    // Something else that speaks first (an SSH server), and something that never speaks.
    let ssh = tokio::net::TcpListener::bind(addr("127.0.0.4", port)).await.unwrap();
    let banner = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = ssh.accept().await else { return };
            let _ = socket.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n").await;
        }
    });
    let silent = tokio::net::TcpListener::bind(addr("127.0.0.5", port)).await.unwrap();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            kept.push(socket);
        }
    });

    let options = DiscoveryOptions { port, concurrency: 4, timeout: Duration::from_millis(1500) };
    let (progress_tx, progress) = watch::channel(DiscoveryProgress::default());
    let (_cancel, cancel) = watch::channel(false);
    let found = tokio::time::timeout(
        GUARD,
        discover("127.0.0.0/29".parse().unwrap(), &options, &pki.identity, &progress_tx, cancel),
    )
    .await
    .unwrap()
    .unwrap();
    banner.abort();
    held.abort();

    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let agents: Vec<IpAddr> = found.agents().map(|h| h.address).collect();
    assert_eq!(agents, [ip("127.0.0.2"), ip("127.0.0.3")], "{found:#?}");
    for agent in found.agents() {
        assert_eq!(agent.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(agent.reason, None);
    }
    let host = |s: &str| found.hosts.iter().find(|h| h.address == ip(s));
    assert_eq!(host("127.0.0.2").unwrap().fqdn_from_cert.as_deref(), Some("a.push.test"));
    assert_eq!(host("127.0.0.3").unwrap().fqdn_from_cert, None, "its certificate names only its address");
    let ssh = host("127.0.0.4").expect("a listener is listed");
    assert!(!ssh.answered_as_lpa && ssh.reason.as_deref().unwrap().contains("TLS handshake failed"), "{ssh:?}");
    let quiet = host("127.0.0.5").expect("a listener is listed");
    assert!(
        !quiet.answered_as_lpa && quiet.reason.as_deref().unwrap().contains("did not complete a TLS handshake"),
        "{quiet:?}"
    );
    assert_eq!(found.hosts.len(), 4, "nothing listens on .1 and .6: {found:#?}");
    let end = *progress.borrow();
    assert_eq!(end, DiscoveryProgress { probed: 6, total: 6, listening: 4, found: 2 });
    assert_eq!(found.progress, end);
    assert!(!found.cancelled);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_discovery_stops_when_cancelled_and_refuses_large_ranges() {
    let pki = Pki::new();
    let err = discover(
        "10.0.0.0/8".parse().unwrap(),
        &DiscoveryOptions::default(),
        &pki.identity,
        &watch::channel(DiscoveryProgress::default()).0,
        watch::channel(false).1,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DiscoveryError::TooLarge { min: 16, .. }), "{err}");

    // A /16 of loopback addresses where nothing listens (each probe is refused at once):
    // cancelled after 64 probes, it stops long before the 65,534th.
    let (progress_tx, mut progress) = watch::channel(DiscoveryProgress::default());
    let (cancel_tx, cancel) = watch::channel(false);
    let canceller = tokio::spawn(async move {
        while progress.changed().await.is_ok() {
            if progress.borrow_and_update().probed >= 64 {
                cancel_tx.send_replace(true);
                // Keep the sender: dropping it must not count as a cancel.
                std::future::pending::<()>().await;
            }
        }
    });
    let port = free_port_on("127.1.0.1".parse().unwrap()).port();
    let options = DiscoveryOptions { port, concurrency: 2, ..Default::default() };
    let found = tokio::time::timeout(
        GUARD,
        discover("127.1.0.0/16".parse().unwrap(), &options, &pki.identity, &progress_tx, cancel),
    )
    .await
    .unwrap()
    .unwrap();
    canceller.abort();
    assert!(found.cancelled);
    assert_eq!(found.progress.total, 65_534);
    assert!(found.progress.probed >= 64 && found.progress.probed < 10_000, "{:?}", found.progress);
    assert!(found.hosts.is_empty(), "{found:?}");
}

// ---------------------------------------------------------------------------------------------
// The worker, over an in-memory store

#[derive(Debug, Default)]
struct Memory {
    hosts: Vec<Host>,
    /// Every status write, in order.
    statuses: Vec<(HostId, HostStatus)>,
    inventories: HashMap<HostId, (ScanReport, String)>,
    inventory_writes: usize,
    /// (host, command, state)
    commands: Vec<(HostId, ClaimedCommand, CommandState)>,
    results: Vec<(HostId, CommandResult)>,
}

#[derive(Debug, Default)]
struct MemoryStore(Mutex<Memory>);

impl MemoryStore {
    fn with<T>(&self, f: impl FnOnce(&mut Memory) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    fn queue(&self, host: HostId, command: Command) -> Uuid {
        let id = Uuid::new_v4();
        self.with(|m| m.commands.push((host, ClaimedCommand { id, command }, CommandState::Pending)));
        id
    }

    fn results_of(&self, command: Uuid) -> Vec<CommandResult> {
        self.with(|m| m.results.iter().filter(|(_, r)| r.command_id == command).map(|(_, r)| r.clone()).collect())
    }

    fn status(&self, host: HostId) -> HostStatus {
        self.with(|m| m.hosts.iter().find(|h| h.id == host).unwrap().status)
    }

    /// The distinct statuses written for `host`, in order.
    fn transitions(&self, host: HostId) -> Vec<HostStatus> {
        let mut out: Vec<HostStatus> = Vec::new();
        for status in self.with(|m| m.statuses.iter().filter(|(h, _)| *h == host).map(|(_, s)| *s).collect::<Vec<_>>())
        {
            if out.last() != Some(&status) {
                out.push(status);
            }
        }
        out
    }
}

fn not_found() -> patchdeck_store::Error {
    patchdeck_store::Error::NotFound("host")
}

impl PushStore for MemoryStore {
    async fn push_hosts(&self) -> Result<Vec<Host>, patchdeck_store::Error> {
        Ok(self.with(|m| m.hosts.iter().filter(|h| h.transport == Transport::Push).cloned().collect()))
    }

    async fn set_host_status(
        &self,
        host: HostId,
        status: HostStatus,
        last_seen: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), patchdeck_store::Error> {
        self.with(|m| {
            let row = m.hosts.iter_mut().find(|h| h.id == host).ok_or_else(not_found)?;
            row.status = status;
            row.last_seen_at = last_seen.or(row.last_seen_at);
            row.updated_at = now;
            m.statuses.push((host, status));
            Ok(())
        })
    }

    async fn replace_inventory(
        &self,
        host: HostId,
        report: &ScanReport,
        hash: &str,
        _now: Timestamp,
    ) -> Result<(), patchdeck_store::Error> {
        self.with(|m| {
            m.inventory_writes += 1;
            m.inventories.insert(host, (report.clone(), hash.to_owned()));
        });
        Ok(())
    }

    async fn claim_commands(
        &self,
        host: HostId,
        _now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedCommand>, patchdeck_store::Error> {
        Ok(self.with(|m| {
            m.commands
                .iter_mut()
                .filter(|(h, _, state)| *h == host && *state == CommandState::Pending)
                .take(limit as usize)
                .map(|(_, command, state)| {
                    *state = CommandState::Sent;
                    command.clone()
                })
                .collect()
        }))
    }

    async fn apply_command_result(
        &self,
        host: HostId,
        result: &CommandResult,
        _now: Timestamp,
    ) -> Result<(), patchdeck_store::Error> {
        self.with(|m| {
            let command = m.commands.iter_mut().find(|(h, c, _)| *h == host && c.id == result.command_id);
            let (_, _, state) = command.ok_or(patchdeck_store::Error::NotFound("command"))?;
            *state = result.state;
            m.results.push((host, result.clone()));
            Ok(())
        })
    }

    async fn command_job_id(&self, host: HostId, command_id: Uuid) -> Result<Option<Uuid>, patchdeck_store::Error> {
        Ok(self.with(|m| {
            m.results.iter().find(|(h, r)| *h == host && r.command_id == command_id).and_then(|(_, r)| r.job_id)
        }))
    }
}

fn push_host(id: i64, address: &str, now: Timestamp) -> Host {
    Host {
        id: HostId(id),
        hostname: format!("push-{id}"),
        fqdn: None,
        address: Some(address.into()),
        transport: Transport::Push,
        status: HostStatus::Pending,
        machine_id: None,
        os_name: None,
        os_version: None,
        last_seen_at: None,
        approval: patchdeck_store::Approval::Approved,
        agent_version: None,
        backend: None,
        version_format: None,
        os_pretty_name: None,
        kernel: None,
        arch: None,
        boot_id: None,
        reboot_required: false,
        addresses: Vec::new(),
        inventory_hash: None,
        scanned_at: None,
        metrics: None,
        metrics_at: None,
        installed_count: 0,
        updates_count: 0,
        security_updates_count: 0,
        registration_token_id: None,
        created_at: now,
        updated_at: now,
    }
}

/// One pass of the worker, waited for.
async fn pass(worker: &PushWorker<MemoryStore>) {
    tokio::time::timeout(GUARD, async {
        worker.tick().await.unwrap();
        worker.settle().await;
    })
    .await
    .expect("a pass ends");
}

fn drain(events: &mut broadcast::Receiver<PushEvent>) -> Vec<PushEvent> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        out.push(event);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_worker_tracks_status_with_backoff_and_relays_commands() {
    let pki = Pki::new();
    let mut agent = Agent::start(&pki, sandbox(false), addr("127.0.2.2", 0), &[]);
    let clock = Arc::new(ManualClock::default());
    let t0 = clock.now();
    let (up, down) = (HostId(1), HostId(2));
    let store = MemoryStore::default();
    store.with(|m| m.hosts = vec![push_host(1, "127.0.2.2", t0), push_host(2, "127.0.2.9", t0)]);
    let config = PushWorkerConfig {
        port: agent.files.port,
        command_interval: Duration::ZERO,
        submit_retry: patchdeck::push::Backoff {
            base: Duration::from_millis(100),
            max_tries: 3,
            cap: Duration::from_secs(1),
        },
        ..PushWorkerConfig::default()
    };
    let (events_tx, mut events) = broadcast::channel(1024);
    let worker = PushWorker::new(store, pki.connector(agent.files.port), config, clock.clone(), events_tx);
    let store = worker.store();
    let secs = |s: i64| SignedDuration::from_secs(s);

    // First pass: the agent answers and its inventory is stored; the empty address fails once.
    pass(&worker).await;
    assert_eq!(store.status(up), HostStatus::Online);
    assert_eq!(store.with(|m| m.hosts[0].last_seen_at), Some(t0));
    let (report, hash) = store.with(|m| m.inventories.get(&up).cloned()).expect("an inventory");
    assert_eq!(hash, patchdeck_proto::agent::inventory_hash(&report));
    assert!(report.updates.iter().any(|u| u.name == "other" && u.security.class == SecurityClass::Security));
    assert_eq!(store.status(down), HostStatus::Pending, "one failure is not enough");
    let schedule = worker.schedule(down).unwrap();
    assert_eq!((schedule.health_failures, schedule.next_health_at), (1, t0 + secs(30)));
    let seen = drain(&mut events);
    assert!(seen
        .iter()
        .any(|e| matches!(e, PushEvent::HostStatus { host, status: HostStatus::Online, .. } if *host == up)));
    assert!(seen.iter().any(|e| matches!(e, PushEvent::Inventory { host, security_updates: 1, .. } if *host == up)));

    // Not before the backoff has passed; then 30 s, 60 s: unreachable after the third failure.
    clock.advance(secs(10));
    pass(&worker).await;
    assert_eq!(worker.schedule(down).unwrap().health_failures, 1);
    clock.advance(secs(25));
    pass(&worker).await;
    assert_eq!(worker.schedule(down).unwrap().health_failures, 2);
    assert_eq!(worker.schedule(down).unwrap().next_health_at, clock.now() + secs(60));
    clock.advance(secs(59));
    pass(&worker).await;
    assert_eq!(worker.schedule(down).unwrap().health_failures, 2);
    clock.advance(secs(1));
    pass(&worker).await;
    let schedule = worker.schedule(down).unwrap();
    assert_eq!((schedule.health_failures, schedule.next_health_at), (3, clock.now() + secs(120)));
    assert_eq!(store.transitions(down), [HostStatus::Unreachable]);
    assert!(drain(&mut events).iter().any(
        |e| matches!(e, PushEvent::HostStatus { host, status: HostStatus::Unreachable, error: Some(why) } if *host == down && why.contains("unreachable"))
    ));
    assert_eq!(worker.schedule(up).unwrap().health_failures, 0, "the agent was not asked again before its interval");

    // Commands: an exact upgrade is relayed and followed to its end; a dry run is refused.
    let upgrade = store.queue(
        up,
        Command::Upgrade { selection: Selection::Packages { packages: vec!["hello=1.1-1".into()] }, dry_run: false },
    );
    let dry = store.queue(up, Command::Install { packages: vec!["hello".into()], dry_run: true });
    pass(&worker).await;
    let results = store.results_of(upgrade);
    let states: Vec<CommandState> = results.iter().map(|r| r.state).collect();
    assert_eq!(states, [CommandState::Running, CommandState::Completed], "{results:#?}");
    let job_id = results[0].job_id.expect("the running report names the job");
    assert_eq!(results[1].job_id, Some(job_id));
    let hello = results[1].changes.iter().find(|c| c.name == "hello").expect("hello changed");
    assert_eq!((hello.from.as_deref(), hello.to.as_deref()), (Some("1.0-1"), Some("1.1-1")));
    assert_eq!(agent.sb.version_of("hello").as_deref(), Some("1.1-1"));
    let refused = store.results_of(dry);
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (refused[0].state, refused[0].error.as_ref().map(|e| e.code.as_str())),
        (CommandState::Failed, Some("UNSUPPORTED_OPERATION"))
    );
    let seen = drain(&mut events);
    assert!(seen.iter().any(|e| matches!(e,
        PushEvent::Job { command_id, job_id: j, status: JobStatus::Completed, .. } if *command_id == upgrade && *j == job_id)));
    assert!(seen.iter().any(|e| matches!(e, PushEvent::CommandResult { result, .. } if result.command_id == dry)));

    // The inventory is read again after a command (the agent takes its own snapshot when the
    // job has ended, so a read right after may still be the old one; later passes see it).
    let fresh = |store: &MemoryStore| {
        store.with(|m| {
            m.inventories.get(&up).is_some_and(|(r, _)| {
                r.installed.iter().any(|p| p.name == "hello" && p.version == "1.1-1")
                    && !r.updates.iter().any(|u| u.name == "hello")
            })
        })
    };
    for _ in 0..30 {
        pass(&worker).await;
        if fresh(store) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        clock.advance(secs(31 * 60));
    }
    assert!(fresh(store), "{:?}", store.with(|m| m.inventories.get(&up).cloned()));

    // A rollback of the command rolls back the job that ran it.
    let rollback = store.queue(up, Command::Rollback { command_id: upgrade });
    pass(&worker).await;
    let done = store.results_of(rollback);
    assert_eq!(done.last().map(|r| r.state), Some(CommandState::Completed), "{done:#?}");
    assert_eq!(agent.sb.version_of("hello").as_deref(), Some("1.0-1"));

    // A command refused part way: the jobs already accepted are still followed and reported.
    let partial = store.queue(
        up,
        Command::Upgrade {
            selection: Selection::Packages { packages: vec!["other=1.2-1".into(), "-bad=1".into()] },
            dry_run: false,
        },
    );
    pass(&worker).await;
    let results = store.results_of(partial);
    let last = results.last().unwrap();
    assert_eq!(
        (last.state, last.error.as_ref().map(|e| e.code.as_str())),
        (CommandState::Failed, Some("VALIDATION_ERROR")),
        "{results:#?}"
    );
    assert!(last.changes.iter().any(|c| c.name == "other" && c.to.as_deref() == Some("1.2-1")), "{last:#?}");
    assert_eq!(agent.sb.version_of("other").as_deref(), Some("1.2-1"));

    // The agent goes away: three failed checks later the host is unreachable.
    agent.stop();
    clock.advance(secs(5 * 60));
    pass(&worker).await;
    assert_eq!((store.status(up), worker.schedule(up).unwrap().health_failures), (HostStatus::Online, 1));
    clock.advance(secs(30));
    pass(&worker).await;
    clock.advance(secs(60));
    pass(&worker).await;
    assert_eq!((store.status(up), worker.schedule(up).unwrap().health_failures), (HostStatus::Unreachable, 3));
    // It comes back: online again, failures forgotten.
    agent.restart();
    clock.advance(secs(120));
    pass(&worker).await;
    assert_eq!((store.status(up), worker.schedule(up).unwrap().health_failures), (HostStatus::Online, 0));
    assert_eq!(store.transitions(up), [HostStatus::Online, HostStatus::Unreachable, HostStatus::Online]);
    assert_eq!(store.with(|m| m.hosts[0].last_seen_at), Some(clock.now()));
}

// ---------------------------------------------------------------------------------------------
// The manager's push client certificate

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_client_certificate_is_made_at_start_recorded_and_replaced_when_revoked() {
    let m = common::TestManager::start(common::Backend::Sqlite).await;
    let data_dir = m.data_dir.path().join("data");
    let first = m.state.push_identity().clone();
    assert!(data_dir.join(identity::CERT_FILE).is_file() && data_dir.join(identity::KEY_FILE).is_file());
    let store = m.state.store();
    let row = store.get_certificate_by_serial(first.serial()).await.unwrap().expect("recorded");
    assert_eq!(
        (row.kind, row.common_name.as_str(), row.host_id),
        (CertificateKind::PushClient, "patchdeck-manager", None)
    );
    let audit = store.audit_entries_after(None, 100).await.unwrap();
    assert!(
        audit.iter().any(|e| e.action == "ca.push_client.issue"
            && e.target.as_deref() == Some(&format!("certificate:{}", row.serial))),
        "{audit:#?}"
    );

    // An agent with the manager's CA accepts it.
    let (cert, key, _) = host_server_certificate(&m.state.keys().ca, &["127.0.3.2"], Timestamp::now(), YEAR).unwrap();
    let sb = sandbox(false);
    let files = ServeFiles::at(&sb, "unused", &[0x11, 1], addr("127.0.3.2", 0));
    files.install_bundle(m.state.keys().ca.cert_pem(), &cert.cert_pem, key.expose());
    let config = files.write("agent.yaml", &files.config("", ""));
    let mut process = files.spawn(&agent_binary(), &config, GUARD);
    let options = PushClientOptions { port: files.port, ..PushClientOptions::default() };
    let client: PushClient = PushConnector::new(&first, options.clone()).unwrap().client("127.0.3.2").unwrap();
    assert_eq!(client.health().await.unwrap().status, HealthStatus::Healthy);

    // The same start again keeps it; once revoked, the next start replaces it.
    let now = m.state.now();
    let again = identity::ensure_push_identity(store, &m.state.keys().ca, &data_dir, now, YEAR).await.unwrap();
    assert!(again.issued.is_none());
    assert_eq!(again.identity.serial(), first.serial());
    store.revoke_certificate(first.serial(), "superseded", now).await.unwrap();
    let replaced = identity::ensure_push_identity(store, &m.state.keys().ca, &data_dir, now, YEAR).await.unwrap();
    let issued = replaced.issued.expect("a new certificate");
    assert_eq!(replaced.replaced_revoked.as_deref(), Some(first.serial()));
    assert_ne!(issued.serial, first.serial());
    assert_eq!((issued.kind, issued.serial.as_str()), (CertificateKind::PushClient, replaced.identity.serial()));
    let client = PushConnector::new(&replaced.identity, options).unwrap().client("127.0.3.2").unwrap();
    assert_eq!(client.health().await.unwrap().status, HealthStatus::Healthy);
    let (status, stderr) = process.stop();
    assert!(status.success(), "{stderr}");
    m.stop().await;
}
