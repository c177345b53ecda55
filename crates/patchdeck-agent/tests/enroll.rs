//! `patchdeck-agent enroll`, run as a user would run it: argument errors, an unreachable
//! manager, an existing enrollment, and how the CA fingerprint decides whom to trust. The
//! fingerprint tests use a real HTTPS server, OpenSSL's `s_server -WWW`, serving the CA
//! certificate as a file; the manager's side of enrollment is tested with the manager.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use jiff::{SignedDuration, Timestamp};
use patchdeck_agent::pull::{Identity, PullPaths};
use patchdeck_crypto::ca::CertificateAuthority;
use patchdeck_crypto::signing::SigningKey;

const MACHINE_ID: &str = "5e7a1c2b3d4f40a1b2c3d4e5f6a7b8c9";

/// The agent with a clean environment: an empty config file, its own state directory and
/// machine ID file.
struct Agent {
    dir: tempfile::TempDir,
}

impl Agent {
    fn new() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.yaml"), "pull:\n  request_timeout_secs: 5\n").unwrap();
        std::fs::write(dir.path().join("machine-id"), format!("{MACHINE_ID}\n")).unwrap();
        Agent { dir }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn enroll(&self) -> Command {
        let mut cmd = Command::cargo_bin("patchdeck-agent").expect("binary is built");
        for var in
            ["PATCHDECK_SERVER", "PATCHDECK_ENROLL_TOKEN", "PATCHDECK_CA_FINGERPRINT", "PATCHDECK_AGENT_STATE_DIR"]
        {
            cmd.env_remove(var);
        }
        cmd.env("PATCHDECK_AGENT_CONFIG", self.dir.path().join("agent.yaml"))
            .env("PATCHDECK_MACHINE_ID_FILE", self.dir.path().join("machine-id"))
            .arg("enroll")
            .arg("--state-dir")
            .arg(self.state_dir());
        cmd
    }
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

#[test]
fn without_a_way_to_trust_the_manager_it_refuses() {
    let agent = Agent::new();
    let (code, stdout, stderr) =
        run(agent.enroll().args(["--server", "https://127.0.0.1:8443", "--token", "pdk_reg_x"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.starts_with("error: refusing to enroll without a way to trust the manager"), "{stderr}");
    assert!(stderr.contains("--ca-fingerprint") && stderr.contains("--ca-cert"), "{stderr}");
    assert!(!agent.state_dir().join("pull/enroll.key").exists(), "no key is made before trust is settled");
}

#[test]
fn a_malformed_fingerprint_is_named() {
    let agent = Agent::new();
    let (code, _, stderr) = run(agent.enroll().args([
        "--server",
        "https://127.0.0.1:8443",
        "--token",
        "pdk_reg_x",
        "--ca-fingerprint",
        "3f:1c:e9",
    ]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("invalid --ca-fingerprint") && stderr.contains("\"3f:1c:e9\""), "{stderr}");
    assert!(stderr.contains("64 hexadecimal digits"), "{stderr}");
}

#[test]
fn missing_server_or_token_and_a_plain_http_server_are_named() {
    let agent = Agent::new();
    let (code, _, stderr) = run(agent.enroll().args(["--token", "pdk_reg_x", "--ca-fingerprint", &"ab".repeat(32)]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no manager URL") && stderr.contains("--server"), "{stderr}");
    let (code, _, stderr) =
        run(agent.enroll().args(["--server", "https://127.0.0.1:8443", "--ca-fingerprint", &"ab".repeat(32)]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no registration token") && stderr.contains("--token"), "{stderr}");
    let (code, _, stderr) = run(agent.enroll().args([
        "--server",
        "http://127.0.0.1:8443",
        "--token",
        "t",
        "--ca-fingerprint",
        &"ab".repeat(32),
    ]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("must be an https:// URL"), "{stderr}");
}

#[test]
fn an_unreachable_manager_is_a_clear_error_naming_the_url() {
    let agent = Agent::new();
    let server = format!("https://127.0.0.1:{}", closed_port());
    let (code, _, stderr) = run(agent.enroll().args([
        "--server",
        &server,
        "--token",
        "pdk_reg_x",
        "--ca-fingerprint",
        &"AB:".repeat(31).chars().chain("AB".chars()).collect::<String>(),
    ]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&format!("could not reach {server}/api/v1/ca/certificate")), "{stderr}");
    assert!(stderr.to_lowercase().contains("connect"), "the cause is shown: {stderr}");
}

#[test]
fn an_enrolled_agent_says_so_and_sends_nothing() {
    let agent = Agent::new();
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("Test CA", now, SignedDuration::from_hours(24)).unwrap();
    let (csr, key) = patchdeck_crypto::ca::make_csr("pending").unwrap();
    let cert = ca.sign_client_csr(&csr, "12", now, SignedDuration::from_hours(1)).unwrap();
    let command_key = SigningKey::generate().unwrap().verifying_key();
    let identity = Identity {
        server: "https://manager.example:8443".to_owned(),
        host_id: 12,
        machine_id: MACHINE_ID.to_owned(),
        command_key,
        command_key_fingerprint: command_key.fingerprint(),
        enrolled_at: now,
        cert_pem: cert.cert_pem,
        key_pem: zeroize::Zeroizing::new(key.expose().to_owned()),
        ca_pem: ca.cert_pem().to_owned(),
        not_before: cert.not_before,
        not_after: cert.not_after,
    };
    let paths = PullPaths::new(&agent.state_dir());
    identity.save(&paths).unwrap();
    let mode = std::fs::metadata(paths.client_key()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // No trust flag, and a server nobody listens on: neither matters, nothing is sent.
    let server = format!("https://127.0.0.1:{}", closed_port());
    let (code, stdout, stderr) = run(agent.enroll().args(["--server", &server, "--token", "pdk_reg_x"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "already enrolled as host 12 with https://manager.example:8443\n");
    // `--force` does try to enroll again.
    let (code, _, stderr) = run(agent.enroll().args(["--server", &server, "--token", "t", "--force"]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("refusing to enroll without a way to trust the manager"), "{stderr}");
}

/// OpenSSL's HTTPS file server: answers `GET /api/v1/ca/certificate` with `ca_file`. It
/// answers no POST, so an enrollment request to it times out.
struct HttpsFileServer {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl HttpsFileServer {
    fn start(cert_pem: &str, key_pem: &str, ca_file: &str) -> HttpsFileServer {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &Path, text: &str| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(&root.path().join("api/v1/ca/certificate"), ca_file);
        write(&root.path().join("server.pem"), cert_pem);
        write(&root.path().join("server.key"), key_pem);
        let port = closed_port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-WWW", "-quiet", "-cert", "server.pem", "-key", "server.key", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .current_dir(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl (the Debian package openssl) runs the test's HTTPS server");
        let mut server = HttpsFileServer { child, port, _root: root };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                server.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                panic!("openssl s_server exited ({status}): {err}");
            }
            assert!(Instant::now() < deadline, "openssl s_server did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for HttpsFileServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn manager_pki() -> (CertificateAuthority, String, String) {
    let now = Timestamp::now();
    let ca = CertificateAuthority::generate("Manager CA", now, SignedDuration::from_hours(24)).unwrap();
    let (issued, key) =
        ca.issue_server_cert(&[], &[Ipv4Addr::LOCALHOST.into()], now, SignedDuration::from_hours(1)).unwrap();
    (ca, issued.cert_pem, key.expose().to_owned())
}

#[test]
fn a_ca_certificate_with_another_fingerprint_is_refused() {
    let (ca, cert, key) = manager_pki();
    let server = HttpsFileServer::start(&cert, &key, ca.cert_pem());
    let agent = Agent::new();
    let wrong = "0".repeat(64);
    let (code, _, stderr) =
        run(agent.enroll().args(["--server", &server.url(), "--token", "pdk_reg_x", "--ca-fingerprint", &wrong]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("has SHA-256 fingerprint {}, not {wrong}: refusing to trust it", ca.fingerprint())),
        "{stderr}"
    );
    assert!(!agent.state_dir().join("pull/enroll.key").exists(), "nothing was prepared for an untrusted manager");
}

#[test]
fn the_pinned_ca_is_then_the_only_root() {
    let (ca, cert, key) = manager_pki();
    // Colons and upper case, as `openssl x509 -fingerprint` prints it.
    let fingerprint = ca
        .fingerprint()
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");

    // The server's certificate comes from the pinned CA: trusted; the enrollment request goes
    // out (this file server never answers a POST, so it times out).
    let server = HttpsFileServer::start(&cert, &key, ca.cert_pem());
    let agent = Agent::new();
    let (code, _, stderr) =
        run(agent.enroll().args(["--server", &server.url(), "--token", "pdk_reg_x", "--ca-fingerprint", &fingerprint]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("Trusting the CA certificate from {}/api/v1/ca/certificate", server.url())),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{}/agent/v1/enroll did not answer within 5s", server.url())), "{stderr}");
    let enroll_key = agent.state_dir().join("pull/enroll.key");
    assert_eq!(
        std::fs::metadata(&enroll_key).unwrap().permissions().mode() & 0o777,
        0o600,
        "key stored before sending"
    );
    assert!(std::fs::read_to_string(&enroll_key).unwrap().contains("PRIVATE KEY"));

    // The same CA file, but the server presents a certificate the CA did not issue: the CA
    // download (unverified) succeeds, the enrollment request (verified) does not.
    let other = CertificateAuthority::generate("Other CA", Timestamp::now(), SignedDuration::from_hours(24)).unwrap();
    let (impostor, impostor_key) = other
        .issue_server_cert(&[], &[Ipv4Addr::LOCALHOST.into()], Timestamp::now(), SignedDuration::from_hours(1))
        .unwrap();
    let server = HttpsFileServer::start(&impostor.cert_pem, impostor_key.expose(), ca.cert_pem());
    let agent = Agent::new();
    let (code, _, stderr) =
        run(agent.enroll().args(["--server", &server.url(), "--token", "pdk_reg_x", "--ca-fingerprint", &fingerprint]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("Trusting the CA certificate"), "{stderr}");
    assert!(stderr.contains(&format!("could not reach {}/agent/v1/enroll", server.url())), "{stderr}");
    assert!(stderr.contains("UnknownIssuer") || stderr.contains("certificate"), "{stderr}");
}
