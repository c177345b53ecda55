//! Real `patchdeck-agent` processes in pull mode for the manager's end-to-end tests: each with its
//! own state directory, machine ID and apt sandbox, enrolled with the real `enroll` command and
//! checking in with `serve`.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use patchdeck_testkit::AptSandbox;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::Client;

/// One agent under test.
pub struct TestAgent {
    pub dir: tempfile::TempDir,
    pub state_dir: PathBuf,
    pub config: PathBuf,
    pub machine_id: String,
    pub server: String,
    pub ca_file: PathBuf,
    pub sandbox: AptSandbox,
    /// Extra environment for `serve` (test knobs).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
}

/// The agent binary (built on first use).
pub fn agent_bin() -> PathBuf {
    patchdeck_testkit::serve::agent_binary()
}

/// A machine ID unique to `seed`.
pub fn machine_id(seed: u32) -> String {
    format!("{:032x}", 0x5eed_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(seed))
}

impl TestAgent {
    /// An agent for the manager at `server` (trusting `ca_pem`), on `sandbox`, not enrolled yet.
    /// `wait_secs` is how long its check-ins may be held.
    pub fn new(server: &str, ca_pem: &str, sandbox: AptSandbox, seed: u32, wait_secs: u64) -> TestAgent {
        let dir = tempfile::tempdir().expect("agent dir");
        let state_dir = dir.path().join("state");
        let machine_id = machine_id(seed);
        std::fs::write(dir.path().join("machine-id"), format!("{machine_id}\n")).unwrap();
        let ca_file = dir.path().join("manager-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let options = sandbox.options();
        let config = dir.path().join("agent.yaml");
        std::fs::write(
            &config,
            format!(
                "package_manager:\n  backend: apt\n  root: {root}\n  config_file: {apt_conf}\n\
                 state_dir: {state}\n\
                 push:\n  enabled: false\n\
                 pull:\n  server: {server}\n  ca_cert: {ca}\n  wait_secs: {wait_secs}\n\
                 audit:\n  file:\n    path: {audit}\n  journald:\n    mode: \"off\"\n",
                root = options.root.display(),
                apt_conf = options.config_file.as_ref().expect("apt config").display(),
                state = state_dir.display(),
                ca = ca_file.display(),
                audit = dir.path().join("audit.jsonl").display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("agent.log");
        TestAgent {
            dir,
            state_dir,
            config,
            machine_id,
            server: server.to_owned(),
            ca_file,
            sandbox,
            env: Vec::new(),
            child: None,
            log,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(agent_bin());
        command
            .arg("--config")
            .arg(&self.config)
            .env("PATCHDECK_MACHINE_ID_FILE", self.dir.path().join("machine-id"))
            .env_remove("PATCHDECK_AGENT_STATE_DIR")
            .env_remove("PATCHDECK_SERVER")
            .env_remove("PATCHDECK_ENROLL_TOKEN")
            .env_remove("PATCHDECK_CA_FINGERPRINT")
            .env("PATCHDECK_LOG", "info");
        command
    }

    /// Runs `patchdeck-agent enroll --token TOKEN` plus `extra` arguments.
    pub fn enroll(&self, token: &str, extra: &[&str]) -> Output {
        let mut command = self.command();
        command.args(["enroll", "--server", &self.server, "--token", token, "--ca-cert"]).arg(&self.ca_file);
        command.args(extra);
        tokio::task::block_in_place(|| command.output().expect("run patchdeck-agent enroll"))
    }

    /// Starts `patchdeck-agent enroll --token TOKEN` with the test knobs of [`Self::env`], without
    /// waiting: for an enrollment that waits for an administrator. Its output is piped.
    pub fn spawn_enroll(&self, token: &str) -> Child {
        let mut command = self.command();
        command.args(["enroll", "--server", &self.server, "--token", token, "--ca-cert"]).arg(&self.ca_file);
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        command.spawn().expect("start patchdeck-agent enroll")
    }

    /// Enrolls and panics unless it worked.
    pub fn enroll_ok(&self, token: &str) -> i64 {
        let out = self.enroll(token, &[]);
        assert!(out.status.success(), "enroll failed: {}", String::from_utf8_lossy(&out.stderr));
        self.host_id()
    }

    /// The host id from the agent's identity file.
    pub fn host_id(&self) -> i64 {
        let text = std::fs::read_to_string(self.state_dir.join("pull/identity.json")).expect("identity.json");
        let identity: Value = serde_json::from_str(&text).expect("identity JSON");
        identity["host_id"].as_i64().expect("host_id")
    }

    /// Starts `patchdeck-agent serve` (stderr to a log file).
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut command = self.command();
        command.arg("serve").stdout(Stdio::null()).stderr(Stdio::from(log));
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        self.child = Some(command.spawn().expect("start patchdeck-agent serve"));
    }

    /// SIGKILL, as a crash or power loss would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = child.wait();
        }
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// An HTTP client presenting this agent's certificate (as the agent itself would).
    pub fn mtls_client(&self, manager: std::net::SocketAddr) -> reqwest::Client {
        let pull = self.state_dir.join("pull");
        let mut identity = std::fs::read(pull.join("client.crt")).unwrap();
        identity.extend(std::fs::read(pull.join("client.key")).unwrap());
        let ca = std::fs::read(pull.join("ca.crt")).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .identity(reqwest::Identity::from_pem(&identity).unwrap())
            .resolve("localhost", manager)
            .build()
            .unwrap()
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `limit` with `what` and
/// `context()` (an agent's log, say).
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, context: impl Fn() -> String, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}\n--- context ---\n{}", context());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a registration token with `seats` via the API; returns the secret.
pub async fn registration_token(admin: &Client, seats: u32) -> String {
    let (status, created) = admin
        .post("/api/v1/registration-tokens", json!({ "label": "e2e", "seats": seats, "expires_in_hours": 1 }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["token"].as_str().unwrap().to_owned()
}

/// Queues `command` for `host` via the API; returns the command id.
pub async fn queue(client: &Client, host: i64, command: Value) -> String {
    let (status, body) = client.post(&format!("/api/v1/hosts/{host}/commands"), command).await;
    assert!(status == StatusCode::CREATED || status == StatusCode::OK, "{status}: {body}");
    body["id"].as_str().expect("command id").to_owned()
}

/// Waits until the command reaches a final state; returns it.
pub async fn finished(client: &Client, id: &str, limit: Duration, context: impl Fn() -> String) -> Value {
    eventually(limit, &format!("command {id} to finish"), context, || async {
        let (status, body) = client.get(&format!("/api/v1/commands/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        matches!(body["state"].as_str(), Some("completed" | "failed" | "timed_out" | "cancelled")).then_some(body)
    })
    .await
}
