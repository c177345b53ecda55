//! The internal CA over HTTPS, checked from the outside with the real `openssl` command line:
//! the published CA and CRL, certificates issued from CSRs, renewal, revocation, push-mode
//! bundles, their audit trail, and the key files on disk.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{ExistingManager, TestManager};
use jiff::{SignedDuration, Timestamp};
use patchdeck_store::{AuditFilter, HostStatus, NewHost, Role, Transport};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A scratch directory where `openssl` runs.
struct Openssl {
    binary: PathBuf,
    dir: tempfile::TempDir,
}

impl Openssl {
    /// Fails (never skips) when `openssl` is missing: these tests are about what it accepts.
    fn new() -> Openssl {
        let binary = common::find_program("openssl")
            .or_else(|| Some(PathBuf::from("/usr/bin/openssl")).filter(|p| p.is_file()))
            .expect(
                "the CA tests check certificates with the openssl command line; install it (apt-get install openssl)",
            );
        Openssl { binary, dir: tempfile::tempdir().expect("temp dir") }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Runs `openssl ARGS` (words separated by spaces; none here contains one) in the scratch
    /// directory: whether it succeeded, and its stdout and stderr together.
    fn run(&self, args: &str) -> (bool, String) {
        let output = tokio::task::block_in_place(|| {
            std::process::Command::new(&self.binary)
                .args(args.split_whitespace())
                .current_dir(self.dir.path())
                .stdin(std::process::Stdio::null())
                .output()
                .expect("openssl runs")
        });
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }

    /// Like [`Self::run`], asserting success; returns the output.
    fn ok(&self, args: &str) -> String {
        let (success, text) = self.run(args);
        assert!(success, "openssl {args} failed:\n{text}");
        text
    }

    /// A P-256 key `NAME.key` and a CSR `NAME.csr` for it (subject CN=ignored); returns the CSR.
    fn ec_csr(&self, name: &str) -> String {
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        self.ok(&format!(
            "req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=ignored -keyout {key} -out {csr}"
        ));
        self.read(&csr)
    }

    /// An Ed25519 key and CSR, like [`Self::ec_csr`].
    fn ed25519_csr(&self, name: &str) -> String {
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        self.ok(&format!("genpkey -algorithm ed25519 -out {key}"));
        self.ok(&format!("req -new -key {key} -subj /CN=ignored -out {csr}"));
        self.read(&csr)
    }

    /// Whether `cert` verifies against `ca.pem`, with extra `openssl verify` options.
    fn verify(&self, cert: &str, options: &str) -> (bool, String) {
        self.run(&format!("verify -CAfile ca.pem {options} {cert}"))
    }

    /// The public key (PEM) of a certificate file.
    fn cert_public_key(&self, cert: &str) -> String {
        self.ok(&format!("x509 -in {cert} -noout -pubkey"))
    }

    /// The public key (PEM) of a private key file.
    fn key_public_key(&self, key: &str) -> String {
        self.ok(&format!("pkey -in {key} -pubout"))
    }
}

/// The first PEM certificate in `text`.
fn first_certificate(text: &str) -> String {
    let start = text.find("-----BEGIN CERTIFICATE-----").expect("a certificate");
    let end = text[start..].find("-----END CERTIFICATE-----").expect("its end") + start;
    format!("{}-----END CERTIFICATE-----\n", &text[start..end])
}

/// GET of a public PEM endpoint: asserts 200 and the PEM content type; returns the body.
async fn get_pem(m: &TestManager, path: &str) -> String {
    let response = m.client().raw(Method::GET, path, None).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(content_type.as_deref(), Some("application/x-pem-file"), "{path}");
    response.text().await.expect("body")
}

/// `serial` (lower-case hex of whole bytes) as `openssl` prints it: upper case.
fn openssl_serial(serial: &str) -> String {
    serial.to_ascii_uppercase()
}

both_backends!(ca_certificate_verifies_the_managers_own_server_certificate, |m: TestManager| async move {
    let ssl = Openssl::new();
    let ca = get_pem(&m, "/api/v1/ca/certificate").await;
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(ca, m.ca_pem);
    ssl.write("ca.pem", &ca);
    let text = ssl.ok("x509 -in ca.pem -noout -subject -ext basicConstraints,keyUsage");
    assert!(text.contains("CA:TRUE") && text.contains("Certificate Sign") && text.contains("CRL Sign"), "{text}");
    // What the listener really presents.
    let port = m.addr.port().to_string();
    let connect = format!("127.0.0.1:{port}");
    let shown = ssl.ok(&format!("s_client -connect {connect} -servername localhost -showcerts"));
    let served = first_certificate(&shown);
    ssl.write("server.pem", &served);
    let on_disk = std::fs::read_to_string(m.state.config().data_dir.join("server.crt")).unwrap();
    assert_eq!(served, first_certificate(&on_disk), "the listener serves data_dir/server.crt");
    let (verified, text) = ssl.verify("server.pem", "-purpose sslserver -verify_hostname localhost");
    assert!(verified, "{text}");
    let (verified, text) = ssl.verify("server.pem", "-verify_ip 127.0.0.1");
    assert!(verified, "{text}");
    // A CA that did not issue it does not verify it.
    ssl.ok(concat!(
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=other",
        " -keyout other.key -out other.pem -days 1"
    ));
    let (verified, text) = ssl.run("verify -CAfile other.pem server.pem");
    assert!(!verified, "{text}");
    m.stop().await;
});

both_backends!(issue_renew_revoke_with_openssl, |m: TestManager| async move {
    let ssl = Openssl::new();
    ssl.write("ca.pem", &get_pem(&m, "/api/v1/ca/certificate").await);
    let (admin, _) = m.signed_in("root", Role::Admin).await;

    // Issue from a P-256 CSR: only its key is used, the CN is the one asked for.
    let csr = ssl.ec_csr("host7");
    let (status, issued) = admin.post("/api/v1/certificates", json!({ "csr": csr, "common_name": "host-7" })).await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    assert_eq!(issued["kind"], "client");
    assert_eq!(issued["common_name"], "host-7");
    assert_eq!(issued["revoked_at"], Value::Null);
    let serial = issued["serial"].as_str().unwrap().to_owned();
    ssl.write("host7.pem", issued["pem"].as_str().unwrap());
    let (verified, text) = ssl.verify("host7.pem", "-purpose sslclient");
    assert!(verified, "{text}");
    let subject = ssl.ok("x509 -in host7.pem -noout -subject -nameopt RFC2253");
    assert_eq!(subject.trim(), "subject=CN=host-7");
    let printed = ssl.ok("x509 -in host7.pem -noout -serial");
    assert_eq!(printed.trim(), format!("serial={}", openssl_serial(&serial)));
    assert_eq!(ssl.cert_public_key("host7.pem"), ssl.key_public_key("host7.key"), "the CSR's key is certified");
    // Default validity: 365 days from now (the manager's clock is the system time here).
    let not_after: Timestamp = issued["not_after"].as_str().unwrap().parse().unwrap();
    let expected = m.state.now() + SignedDuration::from_hours(24 * 365);
    assert!((not_after - expected).get_seconds().abs() <= 2, "{not_after} vs {expected}");
    ssl.ok("x509 -in host7.pem -noout -checkend 31449600");
    let (still_valid, text) = ssl.run("x509 -in host7.pem -noout -checkend 31622400");
    assert!(!still_valid, "expires within 366 days: {text}");

    // Ed25519 keys are accepted too.
    let csr = ssl.ed25519_csr("host8");
    let (status, ed) = admin.post("/api/v1/certificates", json!({ "csr": csr, "common_name": "host-8" })).await;
    assert_eq!(status, StatusCode::CREATED, "{ed}");
    ssl.write("host8.pem", ed["pem"].as_str().unwrap());
    let (verified, text) = ssl.verify("host8.pem", "");
    assert!(verified, "{text}");
    assert!(ssl.ok("x509 -in host8.pem -noout -text").contains("ED25519"));
    assert_eq!(ssl.cert_public_key("host8.pem"), ssl.key_public_key("host8.key"));

    // Renewal: a new certificate (new serial, same CN) for a new key.
    let csr = ssl.ec_csr("host7-next");
    let (status, renewed) = admin.post(&format!("/api/v1/certificates/{serial}/renew"), json!({ "csr": csr })).await;
    assert_eq!(status, StatusCode::CREATED, "{renewed}");
    let renewed_serial = renewed["serial"].as_str().unwrap().to_owned();
    assert_ne!(renewed_serial, serial);
    assert_eq!(renewed["common_name"], "host-7");
    ssl.write("host7-next.pem", renewed["pem"].as_str().unwrap());
    let subject = ssl.ok("x509 -in host7-next.pem -noout -subject -nameopt RFC2253");
    assert_eq!(subject.trim(), "subject=CN=host-7");
    assert_eq!(ssl.cert_public_key("host7-next.pem"), ssl.key_public_key("host7-next.key"));

    // Revocation shows in the public CRL at once.
    let (status, revoked) =
        admin.post(&format!("/api/v1/certificates/{serial}/revoke"), json!({ "reason": "key compromised" })).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["revocation_reason"], "key compromised");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let crl = get_pem(&m, "/api/v1/ca/crl").await;
    assert!(crl.starts_with("-----BEGIN X509 CRL-----"), "{crl}");
    ssl.write("crl.pem", &crl);
    let text = ssl.ok("crl -in crl.pem -CAfile ca.pem -noout");
    assert!(text.contains("verify OK"), "the CRL is signed by the CA: {text}");
    let listing = ssl.ok("crl -in crl.pem -noout -text");
    assert!(listing.contains(&format!("Serial Number: {}", openssl_serial(&serial))), "{listing}");
    assert!(!listing.contains(&openssl_serial(&renewed_serial)), "{listing}");
    let (verified, text) = ssl.verify("host7.pem", "-crl_check -CRLfile crl.pem");
    assert!(!verified, "a revoked certificate must fail: {text}");
    assert!(text.contains("certificate revoked"), "{text}");
    let (verified, text) = ssl.verify("host7-next.pem", "-crl_check -CRLfile crl.pem");
    assert!(verified, "the renewed certificate is not revoked: {text}");

    // Refusals.
    let (status, body) =
        admin.post(&format!("/api/v1/certificates/{serial}/revoke"), json!({ "reason": "again" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = admin.post(&format!("/api/v1/certificates/{serial}/renew"), json!({ "csr": csr })).await;
    assert_eq!(status, StatusCode::CONFLICT, "a revoked certificate is not renewed: {body}");
    let (status, body) =
        admin.post("/api/v1/certificates", json!({ "csr": "not a CSR", "common_name": "host-9" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"]["field"], "csr", "{body}");
    ssl.ok("req -new -newkey rsa:2048 -nodes -subj /CN=rsa -keyout rsa.key -out rsa.csr");
    let (status, body) =
        admin.post("/api/v1/certificates", json!({ "csr": ssl.read("rsa.csr"), "common_name": "host-9" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"]["field"], "csr", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("unsupported key"), "{body}");
    let (status, body) =
        admin.post("/api/v1/certificates", json!({ "csr": ssl.ec_csr("x"), "common_name": "a b" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["details"]["field"], "common_name", "{body}");
    let (status, _) = admin.post("/api/v1/certificates/00ff/revoke", json!({ "reason": "unknown" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Only admins.
    let (viewer, _) = m.signed_in("vera", Role::Viewer).await;
    let (status, _) = viewer.post("/api/v1/certificates", json!({ "csr": ssl.ec_csr("v"), "common_name": "v" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Every change is in the audit log, by the admin, naming the certificate.
    let entries = m
        .state
        .store()
        .list_audit(&AuditFilter { action_prefix: Some("certificate.".into()), ..AuditFilter::default() })
        .await
        .unwrap()
        .items;
    let seen: Vec<(String, String)> =
        entries.iter().rev().map(|e| (e.action.clone(), e.target.clone().unwrap_or_default())).collect();
    let ed_serial = ed["serial"].as_str().unwrap();
    let expected: Vec<(String, String)> = [
        ("certificate.issue", serial.as_str()),
        ("certificate.issue", ed_serial),
        ("certificate.renew", renewed_serial.as_str()),
        ("certificate.revoke", serial.as_str()),
    ]
    .iter()
    .map(|(action, serial)| ((*action).to_owned(), format!("certificate:{serial}")))
    .collect();
    assert_eq!(seen, expected);
    assert!(entries.iter().all(|e| e.actor == "user:root" && e.outcome.as_str() == "success"), "{entries:?}");
    m.stop().await;
});

both_backends!(push_bundle_is_a_server_certificate_for_the_host, |m: TestManager| async move {
    let ssl = Openssl::new();
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let host = m
        .state
        .store()
        .create_host(
            &NewHost {
                hostname: "web-1".into(),
                fqdn: Some("Web-1.Example.test".into()),
                address: Some("10.20.30.40".into()),
                transport: Transport::Push,
                status: HostStatus::Pending,
                machine_id: None,
                os_name: Some("Debian GNU/Linux".into()),
                os_version: Some("12".into()),
            },
            m.state.now(),
        )
        .await
        .unwrap();
    let (status, bundle) = admin.post(&format!("/api/v1/hosts/{}/push-bundle", host.id.0), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{bundle}");
    assert_eq!(bundle["ca_certificate"], m.ca_pem.as_str());
    ssl.write("ca.pem", bundle["ca_certificate"].as_str().unwrap());
    ssl.write("server.pem", bundle["server_certificate"].as_str().unwrap());
    ssl.write("server.key", bundle["server_key"].as_str().unwrap());
    let (verified, text) = ssl.verify("server.pem", "-purpose sslserver -verify_hostname web-1.example.test");
    assert!(verified, "{text}");
    let (verified, text) = ssl.verify("server.pem", "-verify_ip 10.20.30.40");
    assert!(verified, "{text}");
    let san = ssl.ok("x509 -in server.pem -noout -ext subjectAltName");
    assert!(san.contains("DNS:web-1.example.test") && san.contains("IP Address:10.20.30.40"), "{san}");
    assert_eq!(ssl.cert_public_key("server.pem"), ssl.key_public_key("server.key"), "the key is the certificate's");
    // The manager keeps the certificate, not the key.
    let (status, stored) = admin.get(&format!("/api/v1/certificates/{}", bundle["serial"].as_str().unwrap())).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["kind"], "server");
    assert_eq!(stored["host_id"], host.id.0);
    assert_eq!(stored["hostname"], "web-1");
    assert_eq!(stored["pem"], bundle["server_certificate"]);
    assert!(!stored.to_string().contains("PRIVATE KEY"));
    let issued = m
        .state
        .store()
        .list_audit(&AuditFilter { action_prefix: Some("certificate.issue".into()), ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(issued.total, 1);
    assert_eq!(
        issued.items[0].target.as_deref(),
        Some(format!("certificate:{}", stored["serial"].as_str().unwrap()).as_str())
    );
    assert_eq!(issued.items[0].details["host_id"], host.id.0);
    assert!(!issued.items[0].details.to_string().contains("PRIVATE"), "no key in the audit log");
    // The list names each certificate's host (looked up for the whole page at once); a
    // certificate without a host has none.
    let csr = ssl.ec_csr("loose");
    let (status, loose) = admin.post("/api/v1/certificates", json!({ "csr": csr, "common_name": "loose" })).await;
    assert_eq!(status, StatusCode::CREATED, "{loose}");
    assert_eq!((loose["host_id"].clone(), loose["hostname"].clone()), (Value::Null, Value::Null));
    let (status, list) = admin.get("/api/v1/certificates").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["items"].as_array().unwrap();
    let of = |serial: &Value| items.iter().find(|c| c["serial"] == *serial).unwrap_or_else(|| panic!("{list}"));
    assert_eq!(of(&bundle["serial"])["hostname"], "web-1");
    assert_eq!(of(&loose["serial"])["hostname"], Value::Null);
    let (_, for_host) = admin.get(&format!("/api/v1/certificates?host_id={}", host.id.0)).await;
    assert_eq!(for_host["items"].as_array().unwrap().len(), 1, "{for_host}");
    assert_eq!(for_host["items"][0]["hostname"], "web-1");
    let (status, _) = admin.post("/api/v1/hosts/999999/push-bundle", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    m.stop().await;
});

/// What the listener at `port` presents as its own certificate (PEM).
fn served_certificate(ssl: &Openssl, port: u16) -> String {
    let connect = format!("127.0.0.1:{port}");
    first_certificate(&ssl.ok(&format!("s_client -connect {connect} -servername localhost -showcerts")))
}

both_backends!(a_new_ca_gets_a_new_server_certificate, |m: TestManager| async move {
    let ssl = Openssl::new();
    let dir = m.state.config().data_dir.clone();
    let old_server = served_certificate(&ssl, m.addr.port());
    // The operator replaces the CA (deleting both files makes a new one at the next start).
    std::fs::remove_file(dir.join("ca.crt")).unwrap();
    std::fs::remove_file(dir.join("ca.key")).unwrap();
    let second = ExistingManager::start(&dir, &m.state.config().database_url).await;
    assert!(second.first_start.created_ca);
    let new_ca = second.state.keys().ca.cert_pem().to_owned();
    assert_ne!(new_ca, m.ca_pem);
    ssl.write("ca.pem", &new_ca);
    let served = served_certificate(&ssl, second.addr.port());
    assert_ne!(served, old_server, "the old CA's certificate is not served any more");
    ssl.write("server.pem", &served);
    let (verified, text) = ssl.verify("server.pem", "-purpose sslserver -verify_hostname localhost");
    assert!(verified, "the served certificate is the new CA's: {text}");
    second.stop().await;
    m.stop().await;
});

both_backends!(key_files_are_private, |m: TestManager| async move {
    let dir = m.state.config().data_dir.clone();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    for name in ["ca.key", "server.key", "push-client.key", "session-signing.key", "command-signing.key", "secret.key"]
    {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    if m.state.config().database_url.is_empty() {
        assert_eq!(mode(&m.state.config().sqlite_path()), 0o600, "the database holds password hashes");
    }
    m.stop().await;
});
