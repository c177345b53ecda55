//! Push mode end to end: a real manager and real `patchdeck-agent` processes serving the
//! Linux_Patch_API over mutual TLS, each on its own loopback address and apt sandbox, with the
//! bundle the manager's API issues — the push worker inside `serve` and in a separate
//! `patchdeck worker` process, discovery, commands, job progress on the event stream.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::agents::{eventually, finished, queue};
use common::{audit_log, token_user, Backend, Client, EventStream, TestManager};
use jiff::SignedDuration;
use patchdeck_store::Role;
use patchdeck_testkit::serve::{agent_binary, free_port_on, ServeFiles, ServeProcess};
use patchdeck_testkit::AptSandbox;
use reqwest::StatusCode;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);

/// A real agent in push mode on `ip:port`.
struct PushAgent {
    sb: AptSandbox,
    files: ServeFiles,
    config: PathBuf,
    process: Option<ServeProcess>,
}

impl PushAgent {
    /// An agent with the throw-away CA of [`ServeFiles::at`]: it does not know the manager.
    fn stranger(ip: &str, port: u16) -> PushAgent {
        let sb = sandbox();
        let files = ServeFiles::at(&sb, "a CA the manager does not use", &[0x20, 1], addr(ip, port));
        let config = files.write("agent.yaml", &files.config("  reload_interval_secs: 1\n", ""));
        let process = Some(files.spawn(&agent_binary(), &config, LIMIT));
        PushAgent { sb, files, config, process }
    }

    /// Registers `ip` as a push host through the API and starts an agent there with the bundle
    /// the API issues for it; returns the agent and the host id.
    async fn registered(admin: &Client, ip: &str, port: u16) -> (PushAgent, i64) {
        let (status, host) = admin.post("/api/v1/hosts", json!({ "address": ip })).await;
        assert_eq!(status, StatusCode::CREATED, "{host}");
        let id = host["id"].as_i64().unwrap();
        assert_eq!(host["transport"], "push", "{host}");
        let (status, bundle) = admin.post(&format!("/api/v1/hosts/{id}/push-bundle"), json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{bundle}");
        let sb = sandbox();
        let files = ServeFiles::at(&sb, "replaced by the bundle", &[0x10, 1], addr(ip, port));
        files.install_bundle(
            bundle["ca_certificate"].as_str().unwrap(),
            bundle["server_certificate"].as_str().unwrap(),
            bundle["server_key"].as_str().unwrap(),
        );
        let config = files.write("agent.yaml", &files.config("  reload_interval_secs: 1\n", ""));
        let process = Some(files.spawn(&agent_binary(), &config, LIMIT));
        (PushAgent { sb, files, config, process }, id)
    }

    fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let (status, stderr) = process.stop();
            assert!(status.success(), "{status}: {stderr}");
        }
    }

    fn start(&mut self) {
        assert!(self.process.is_none());
        self.process = Some(self.files.spawn(&agent_binary(), &self.config, LIMIT));
    }
}

/// `hello` 1.0-1 (1.1-1 available) and `other` 1.0-1 (security update 1.2-1 available).
fn sandbox() -> AptSandbox {
    let sb = AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1"]).build();
    sb.refresh();
    sb
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

async fn host(admin: &Client, id: i64) -> Value {
    let (status, body) = admin.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn updates(admin: &Client, id: i64) -> Vec<(String, String, String)> {
    let (status, body) = admin.get(&format!("/api/v1/hosts/{id}/updates")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut list: Vec<(String, String, String)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_owned(),
                u["candidate_version"].as_str().unwrap_or_default().to_owned(),
                u["classification"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

/// Waits until the push host is `status`, advancing the manager's clock by `step` between
/// looks (the worker schedules its polls on that clock).
async fn wait_for_status(m: &TestManager, admin: &Client, id: i64, status: &str, step: SignedDuration) -> Value {
    eventually(LIMIT, &format!("host {id} to be {status}"), String::new, || async {
        let h = host(admin, id).await;
        if h["status"] == status {
            return Some(h);
        }
        m.advance(step);
        tokio::time::sleep(Duration::from_millis(200)).await;
        None
    })
    .await
}

/// The in-process push worker (SQLite): hosts added by address come online with their
/// inventory; a command queued through the API is relayed, its job progress streams to the
/// browser, the package really changes and rolls back; a stopped agent becomes unreachable and
/// comes back; discovery finds the agents, says which are registered, and can be cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn push_hosts_are_polled_and_commanded_through_the_manager() {
    let port = free_port_on("127.0.3.1".parse().unwrap()).port();
    let m = TestManager::start_with(Backend::Sqlite, |c| c.push.port = port).await;
    let (admin, _) = token_user(&m, "root", Role::Admin).await;
    let mut events = EventStream::open(&admin).await;

    let (mut a, a_id) = PushAgent::registered(&admin, "127.0.3.1", port).await;
    let (mut b, b_id) = PushAgent::registered(&admin, "127.0.3.2", port).await;
    let mut stranger = PushAgent::stranger("127.0.3.3", port);

    // Both come online with their inventory, security reasons included.
    for id in [a_id, b_id] {
        let h = wait_for_status(&m, &admin, id, "online", SignedDuration::from_secs(30)).await;
        assert!(h["last_seen_at"].is_string(), "{h}");
        let got = eventually(LIMIT, "the inventory", String::new, || async {
            let list = updates(&admin, id).await;
            (list.len() == 2).then_some(list)
        })
        .await;
        assert_eq!(got[0], ("hello".into(), "1.1-1".into(), "not_security".into()), "{got:?}");
        assert_eq!(got[1].0, "other");
        assert_eq!(got[1].1, "1.2-1");
        assert_eq!(got[1].2, "security", "{got:?}");
    }
    events.read_until("\"change\":\"inventory\"").await;

    // An upgrade of one package through the API, relayed by the worker.
    let id = queue(
        &admin,
        a_id,
        json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": ["hello=1.1-1"] } }),
    )
    .await;
    let done = finished(&admin, &id, LIMIT, String::new).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert!(done["job_id"].is_string(), "the agent's job is recorded: {done}");
    assert_eq!(a.sb.version_of("hello").as_deref(), Some("1.1-1"));
    assert_eq!(b.sb.version_of("hello").as_deref(), Some("1.0-1"), "only host A changed");
    let changes = done["changes"].as_array().unwrap();
    assert!(changes.iter().any(|c| c["name"] == "hello" && c["to"] == "1.1-1"), "{done}");
    // The browser saw the command's end and the agent's job progress, live (data keys are sorted).
    events
        .read_until(&format!("\"command_id\":\"{id}\",\"host_id\":{a_id},\"kind\":\"upgrade\",\"state\":\"completed\""))
        .await;
    events.read_until("\"status\":\"completed\",\"type\":\"job\"").await;
    let jobs: Vec<Value> = events.events("job").into_iter().filter(|e| e["command_id"] == id.as_str()).collect();
    assert!(!jobs.is_empty(), "job events: {}", events.text);
    assert!(jobs.iter().all(|e| e["host_id"] == a_id && e["job_id"] == done["job_id"]), "{jobs:?}");
    assert_eq!(jobs.last().unwrap()["progress"], 100, "{jobs:?}");
    // The inventory is read again after the command: hello is no longer pending.
    eventually(LIMIT, "the inventory after the upgrade", String::new, || async {
        (updates(&admin, a_id).await.len() == 1).then_some(())
    })
    .await;
    let target = format!("command:{id}");
    let audited = audit_log(&m).await;
    assert!(
        audited.iter().any(|e| e.action == "command.finish"
            && e.actor == "system:push-worker"
            && e.target.as_deref() == Some(target.as_str())),
        "the worker audits the command's end"
    );

    // Rollback of that command, through the agent's own rollback of its job.
    let rollback = queue(&admin, a_id, json!({ "type": "rollback", "command_id": id })).await;
    let done = finished(&admin, &rollback, LIMIT, String::new).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(a.sb.version_of("hello").as_deref(), Some("1.0-1"));

    // A command the agent refuses fails with the agent's reason.
    let bad = queue(&admin, a_id, json!({ "type": "install", "packages": ["no-such-package"] })).await;
    let done = finished(&admin, &bad, LIMIT, String::new).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert!(done["error_code"].is_string(), "{done}");

    // Host B goes away: after three failed health checks it is unreachable, and comes back.
    b.stop();
    wait_for_status(&m, &admin, b_id, "unreachable", SignedDuration::from_secs(120)).await;
    events.read_until(&format!("\"host_id\":{b_id},\"status\":\"unreachable\",\"type\":\"host\"")).await;
    b.start();
    wait_for_status(&m, &admin, b_id, "online", SignedDuration::from_secs(120)).await;

    // Discovery: the two agents answer (and are the registered hosts), the stranger listens but
    // does not accept the manager, the other addresses are silent.
    let (status, started) = admin.post("/api/v1/discoveries", json!({ "cidr": "127.0.3.0/29", "port": port })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["progress"]["total"], 6, "{started}");
    let url = format!("/api/v1/discoveries/{}", started["id"].as_str().unwrap());
    let done = eventually(LIMIT, "the discovery to end", String::new, || async {
        let (status, body) = admin.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["state"] != "running").then_some(body)
    })
    .await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["progress"]["probed"], 6, "{done}");
    assert_eq!(done["progress"]["found"], 2, "{done}");
    let found = done["hosts"].as_array().unwrap();
    let by_address = |ip: &str| found.iter().find(|h| h["address"] == ip).cloned().unwrap_or(Value::Null);
    assert_eq!(by_address("127.0.3.1")["answered_as_lpa"], true, "{done}");
    assert_eq!(by_address("127.0.3.1")["host_id"], a_id, "{done}");
    assert_eq!(by_address("127.0.3.2")["host_id"], b_id, "{done}");
    assert_eq!(by_address("127.0.3.3")["answered_as_lpa"], false, "{done}");
    assert!(by_address("127.0.3.3")["reason"].is_string(), "{done}");
    assert!(by_address("127.0.3.3")["host_id"].is_null(), "{done}");
    assert_eq!(found.len(), 3, "{done}");

    // A big range, cancelled: it ends promptly as `cancelled`.
    let (status, big) = admin.post("/api/v1/discoveries", json!({ "cidr": "127.1.0.0/16", "port": port })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{big}");
    let big_url = format!("/api/v1/discoveries/{}", big["id"].as_str().unwrap());
    let (status, body) = admin.post(&format!("{big_url}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let cancelled = eventually(LIMIT, "the cancelled discovery to end", String::new, || async {
        let (_, body) = admin.get(&big_url).await;
        (body["state"] != "running").then_some(body)
    })
    .await;
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    assert!(cancelled["progress"]["probed"].as_u64().unwrap() < 65_534, "{cancelled}");
    let (status, list) = admin.get("/api/v1/discoveries").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    // Bad ranges are refused; operators may not scan.
    let (status, body) = admin.post("/api/v1/discoveries", json!({ "cidr": "10.0.0.0/8" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"]["field"], "cidr", "{body}");
    let (status, _) = admin.post("/api/v1/discoveries", json!({ "cidr": "not a range" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (operator, _) = token_user(&m, "op", Role::Operator).await;
    let (status, _) = operator.post("/api/v1/discoveries", json!({ "cidr": "127.0.3.0/30" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let audited = audit_log(&m).await;
    assert_eq!(audited.iter().filter(|e| e.action == "discovery.start").count(), 2);
    assert!(audited.iter().any(|e| e.action == "discovery.cancel"));
    assert_eq!(audited.iter().filter(|e| e.action == "discovery.finish").count(), 2);

    a.stop();
    b.stop();
    stranger.stop();
    m.stop().await;
}

/// A `patchdeck worker` process (the real binary) on the manager's data directory and database.
struct WorkerProcess {
    child: Child,
    log: PathBuf,
}

impl WorkerProcess {
    fn start(m: &TestManager, config: &std::path::Path, log: PathBuf) -> WorkerProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_patchdeck"))
            .arg("--config")
            .arg(config)
            .arg("--data-dir")
            .arg(&m.config.data_dir)
            .args(["--database-url", &m.config.database_url])
            .args(["--log-format", "text", "worker"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start patchdeck worker");
        WorkerProcess { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn leads(&self) -> bool {
        self.log().contains("this process holds the lease")
    }

    /// SIGKILL: the lease goes with the process's database connection.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Scale-out with push hosts: a replica that serves the API (its own push worker off) and two
/// `patchdeck worker` processes on one PostgreSQL. Exactly one worker holds the lease and polls;
/// a command queued on the replica reaches the push agent through it at once (NOTIFY); when that
/// worker is killed, the other takes over and the next command is delivered by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_processes_share_the_push_hosts_through_a_lease() {
    let port = free_port_on("127.0.4.1".parse().unwrap()).port();
    let m = TestManager::start_with(Backend::Postgres, |c| c.push.enabled = false).await;
    let (admin, _) = token_user(&m, "root", Role::Admin).await;
    let (mut agent, host_id) = PushAgent::registered(&admin, "127.0.4.1", port).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("worker.toml");
    std::fs::write(&config, format!("[push]\nport = {port}\nhealth_interval_secs = 2\n")).unwrap();
    let mut first = WorkerProcess::start(&m, &config, dir.path().join("first.log"));
    eventually(LIMIT, "the first worker to take the lease", || first.log(), || async { first.leads().then_some(()) })
        .await;
    let mut second = WorkerProcess::start(&m, &config, dir.path().join("second.log"));
    eventually(
        LIMIT,
        "the second worker to stand by",
        || second.log(),
        || async { second.log().contains("another process holds the lease").then_some(()) },
    )
    .await;

    // The replica's clock is a test clock; the workers run on real time.
    eventually(
        LIMIT,
        "the push host to come online",
        || first.log(),
        || async { (host(&admin, host_id).await["status"] == "online").then_some(()) },
    )
    .await;
    let started = std::time::Instant::now();
    let id = queue(&admin, host_id, json!({ "type": "scan", "subsystems": ["system"] })).await;
    let done = finished(&admin, &id, LIMIT, || first.log()).await;
    assert_eq!(done["state"], "completed", "{done}");
    let took = started.elapsed();
    // The worker looks at queues every 10 s by itself; NOTIFY brings the command at once.
    assert!(took < Duration::from_secs(8), "the command took {took:?} to be relayed");
    assert!(!second.leads(), "only one worker may hold the lease:\n{}", second.log());

    // The leader dies; the other takes the lease (it tries every 15 s) and relays the next one.
    first.kill();
    eventually(
        Duration::from_secs(45),
        "the second worker to take over",
        || second.log(),
        || async { second.leads().then_some(()) },
    )
    .await;
    let id = queue(&admin, host_id, json!({ "type": "upgrade", "selection": { "mode": "security" } })).await;
    let done = finished(&admin, &id, LIMIT, || second.log()).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(agent.sb.version_of("other").as_deref(), Some("1.2-1"));
    assert_eq!(agent.sb.version_of("hello").as_deref(), Some("1.0-1"), "security only");

    second.kill();
    agent.stop();
    m.stop().await;
}

/// Stopping the background work does not wait out the push worker's lease retry period (a
/// manager restart that took 10 s made pull agents open their circuit breaker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_work_stops_promptly() {
    let m = TestManager::start(Backend::Sqlite).await;
    let background = patchdeck::server::Background::start(&m.state, "serve").await.unwrap();
    // Let its push worker take the lease and start polling.
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::time::timeout(Duration::from_secs(5), background.stop())
        .await
        .expect("the background work stops within seconds");
    m.stop().await;
}
