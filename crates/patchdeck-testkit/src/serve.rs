//! The real `patchdeck-agent serve` as a separate process on an apt sandbox,
//! for end-to-end tests and benchmarks: certificates from a throw-away CA (or
//! a push bundle from another CA, such as the manager's), an allow-list
//! admitting 127.0.0.1, a free port on a loopback address of the test's
//! choice, an audit file, and the systemd notification socket the agent
//! reports `READY=1` and `STOPPING=1` on. [`agent_binary`] finds (building it
//! when needed) the agent binary for tests of other crates.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use rcgen::ExtendedKeyUsagePurpose;

use crate::pki::Ca;
use crate::AptSandbox;

/// Everything `serve` reads, written to a temporary directory.
#[derive(Debug)]
pub struct ServeFiles {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    /// The address the config makes the agent listen on.
    pub listen: SocketAddr,
    /// The port of [`ServeFiles::listen`].
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
        ServeFiles::at(sb, ca_name, server_serial, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Like [`ServeFiles::new`], but listening on `listen` (a loopback
    /// address such as 127.0.0.2, so that several agents look like several
    /// hosts) with the server certificate issued for its IP address. Port 0
    /// picks a free port on that address. The allow-list still admits only
    /// 127.0.0.1, the source address of loopback connections.
    pub fn at(sb: &AptSandbox, ca_name: &str, server_serial: &[u8], listen: SocketAddr) -> ServeFiles {
        let dir = tempfile::tempdir().expect("create the serve tempdir");
        let ca = Ca::new(ca_name);
        let ip = listen.ip().to_string();
        let server = ca.leaf("agent-under-test", &[ip.as_str()], ExtendedKeyUsagePurpose::ServerAuth, server_serial);
        let options = sb.options();
        let listen = if listen.port() == 0 { free_port_on(listen.ip()) } else { listen };
        let port = listen.port();
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
            listen,
            port,
        };
        files.write("ca.pem", &files.ca.cert.pem());
        files.write("server.pem", &server.cert.pem());
        files.write("server.key", &server.key.serialize_pem());
        files.write("allowlist", "127.0.0.1\n");
        files
    }

    /// Replaces the throw-away PKI by a push bundle from another CA (what
    /// `patchdeck admin add-push-host` writes): the agent then trusts client
    /// certificates of `ca_pem` and presents `server_cert_pem` with its key.
    /// [`ServeFiles::ca`] no longer has anything to do with the agent.
    pub fn install_bundle(&self, ca_pem: &str, server_cert_pem: &str, server_key_pem: &str) {
        self.write("ca.pem", ca_pem);
        self.write("server.pem", server_cert_pem);
        self.write("server.key", server_key_pem);
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
             push:\n  enabled: true\n  listen: {listen}\n  ca_bundle: {ca}\n  server_cert: {cert}\n  \
             server_key: {key}\n  allowlist: {allow}\n{push_extra}\
             audit:\n  file:\n    path: {audit}\n  journald:\n    mode: \"off\"\n{top_extra}",
            root = self.root.display(),
            apt_conf = self.apt_conf.display(),
            state = self.dir.path().join("state").display(),
            listen = self.listen,
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

/// A port nobody listens on at `ip` right now.
pub fn free_port_on(ip: IpAddr) -> SocketAddr {
    std::net::TcpListener::bind(SocketAddr::new(ip, 0)).expect("a free port").local_addr().expect("its address")
}

/// The `patchdeck-agent` binary of this build, for tests of crates other than the agent's (which
/// have `CARGO_BIN_EXE_patchdeck-agent`): `cargo build -p patchdeck-agent` into the target
/// directory of the running test, once per test process (a no-op when it is up to date), then
/// its path. Panics with cargo's output when the build fails.
pub fn agent_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // The test runs from <target>/<profile>/deps/<name>-<hash>.
        let exe = std::env::current_exe().expect("the test's own path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("the test runs in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let profile = profile_dir.file_name().and_then(|n| n.to_str()).expect("a profile directory name");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        // Without what cargo sets for the running test: build scripts that watch these (ring's
        // watches CARGO_MANIFEST_DIR and CARGO_PKG_*) would otherwise be rebuilt, and with them
        // everything above them, by this build and again by the next `cargo test`.
        for (key, _) in std::env::vars_os() {
            let Some(key) = key.to_str() else { continue };
            let set_by_cargo_for_tests = key.starts_with("CARGO_PKG_")
                || key.starts_with("CARGO_CFG_")
                || key.starts_with("CARGO_MANIFEST_")
                || key.starts_with("__CARGO")
                || matches!(
                    key,
                    "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                        | "OUT_DIR"
                );
            if set_by_cargo_for_tests {
                build.env_remove(key);
            }
        }
        build.args(["build", "--quiet", "-p", "patchdeck-agent", "--bin", "patchdeck-agent", "--manifest-path"]);
        build.arg(&manifest).arg("--target-dir").arg(target_dir);
        match profile {
            "debug" => {}
            "release" => {
                build.arg("--release");
            }
            other => {
                build.args(["--profile", other]);
            }
        }
        let output = build.output().expect("run cargo build -p patchdeck-agent");
        assert!(
            output.status.success(),
            "cargo build -p patchdeck-agent failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let bin = profile_dir.join("patchdeck-agent");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
    .clone()
}
