//! The real `patchdeck-agent serve` as a separate process on an apt sandbox,
//! for end-to-end tests and benchmarks: certificates from a throw-away CA,
//! an allow-list admitting 127.0.0.1, a free port, an audit file, and the
//! systemd notification socket the agent reports `READY=1` and `STOPPING=1` on.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose;

use crate::pki::Ca;
use crate::AptSandbox;

/// Everything `serve` reads, written to a temporary directory.
#[derive(Debug)]
pub struct ServeFiles {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    /// The port the config makes the agent listen on (127.0.0.1).
    pub port: u16,
    /// The audit log the config points at.
    pub audit: PathBuf,
    ca_pem: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    allowlist: PathBuf,
    root: PathBuf,
    apt_conf: PathBuf,
}

impl ServeFiles {
    /// Certificates from a new CA named `ca_name`, a server certificate for
    /// 127.0.0.1 with serial `server_serial`, and an allow-list of 127.0.0.1.
    pub fn new(sb: &AptSandbox, ca_name: &str, server_serial: &[u8]) -> ServeFiles {
        let dir = tempfile::tempdir().expect("create the serve tempdir");
        let ca = Ca::new(ca_name);
        let server = ca.leaf("agent-under-test", &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, server_serial);
        let options = sb.options();
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        let files = ServeFiles {
            audit: dir.path().join("audit.jsonl"),
            ca_pem: dir.path().join("ca.pem"),
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            allowlist: dir.path().join("allowlist"),
            root: options.root.clone(),
            apt_conf: options.config_file.clone().expect("the sandbox has an apt config"),
            dir,
            ca,
            port,
        };
        files.write("ca.pem", &files.ca.cert.pem());
        files.write("server.pem", &server.cert.pem());
        files.write("server.key", &server.key.serialize_pem());
        files.write("allowlist", "127.0.0.1\n");
        files
    }

    /// Writes `name` in the directory, aside and renamed over as a
    /// deployment tool does, so a watcher never sees half a file.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).expect("write a serve file");
        std::fs::rename(&tmp, &path).expect("rename a serve file into place");
        path
    }

    /// The agent config: push on the sandbox with these files, the audit
    /// log to a file (journald off), `push_extra` lines appended to the
    /// `push:` section and `top_extra` sections appended at the end.
    pub fn config(&self, push_extra: &str, top_extra: &str) -> String {
        format!(
            "package_manager:\n  backend: apt\n  root: {root}\n  config_file: {apt_conf}\n\
             state_dir: {state}\n\
             push:\n  enabled: true\n  listen: 127.0.0.1:{port}\n  ca_bundle: {ca}\n  server_cert: {cert}\n  \
             server_key: {key}\n  allowlist: {allow}\n{push_extra}\
             audit:\n  file:\n    path: {audit}\n  journald:\n    mode: \"off\"\n{top_extra}",
            root = self.root.display(),
            apt_conf = self.apt_conf.display(),
            state = self.dir.path().join("state").display(),
            port = self.port,
            ca = self.ca_pem.display(),
            cert = self.cert.display(),
            key = self.key.display(),
            allow = self.allowlist.display(),
            audit = self.audit.display(),
        )
    }

    /// Starts `bin serve --config <config>` with stderr piped, and waits
    /// (at most `guard`) until it reports `READY=1`.
    pub fn spawn(&self, bin: &Path, config: &Path, guard: Duration) -> ServeProcess {
        let notify_path = self.dir.path().join("notify");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
        notify.set_read_timeout(Some(guard)).expect("notify socket timeout");
        let child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("PATCHDECK_AGENT_STATE_DIR")
            .env_remove("PATCHDECK_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start patchdeck-agent serve");
        let mut process = ServeProcess { child, notify };
        let ready = process.notification();
        assert_eq!(ready, "READY=1", "the agent did not report ready");
        process
    }
}

/// A running `serve`; killed if dropped before [`ServeProcess::stop`].
#[derive(Debug)]
pub struct ServeProcess {
    pub child: Child,
    notify: UnixDatagram,
}

impl ServeProcess {
    fn notification(&mut self) -> String {
        let mut buf = [0u8; 256];
        let n = self.notify.recv(&mut buf).expect("a notification from the agent");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Sends SIGTERM, checks the agent reports `STOPPING=1`, and waits for
    /// it to exit; returns its exit status and everything it wrote to stderr.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().expect("run kill").success());
        assert_eq!(self.notification(), "STOPPING=1", "the agent did not report stopping");
        let status = self.child.wait().expect("wait for the agent");
        let mut stderr = String::new();
        if let Some(pipe) = self.child.stderr.as_mut() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
