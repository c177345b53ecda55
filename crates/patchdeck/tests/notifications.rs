//! Notifications end to end, on SQLite and PostgreSQL: the admin API (CRUD, validation, secrets
//! that never come back, RBAC, audit), e-mail to a real SMTP server run by the test (Python's
//! aiosmtpd: STARTTLS and implicit TLS with a certificate made here, AUTH with a checked
//! password), webhooks to a real HTTP receiver that verifies the HMAC signature, retries with
//! backoff, permanent failures, two senders sharing one outbox, and the event sources (a host
//! going offline, an expiring certificate, the security digest).

mod common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use common::{Client, TestManager};
use hmac::{Hmac, Mac};
use jiff::{SignedDuration, Timestamp};
use patchdeck::notify::{NotificationEvent, Notifier};
use patchdeck::push::worker::PushStore;
use patchdeck_store::{
    DeliveryFilter, DeliveryStatus, HostStatus, NewCertificate, NewHost, NotificationDelivery, Role, Store, Transport,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;

const HOOK_SECRET: &str = "webhook signing secret 0123456789";
const SMTP_USER: &str = "patchdeck";
const SMTP_PASSWORD: &str = "smtp password 9876";

// ---------------------------------------------------------------------------------------------
// A real SMTP server (aiosmtpd)

/// The system Python (Debian's, where python3-aiosmtpd is installed), else `python3` on PATH.
fn python() -> PathBuf {
    let system = Path::new("/usr/bin/python3");
    if system.exists() {
        system.to_owned()
    } else {
        common::find_program("python3").expect("python3 is installed (scripts/test.sh installs it)")
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A TLS certificate for 127.0.0.1 from a CA made here: (CA PEM, certificate file, key file).
fn tls_files(dir: &Path) -> (String, PathBuf, PathBuf) {
    let ca = patchdeck_testkit::pki::Ca::new("Notification test CA");
    let leaf = ca.leaf("127.0.0.1", &["127.0.0.1", "localhost"], rcgen::ExtendedKeyUsagePurpose::ServerAuth, &[7, 1]);
    let cert = dir.join("smtp-cert.pem");
    let key = dir.join("smtp-key.pem");
    std::fs::write(&cert, leaf.cert.pem()).unwrap();
    std::fs::write(&key, leaf.key.serialize_pem()).unwrap();
    (ca.cert.pem(), cert, key)
}

struct SmtpServer {
    child: Child,
    port: u16,
    out: PathBuf,
    /// The CA that signed its certificate (PEM).
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    fn start(mode: &str, auth: bool) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let (ca_pem, cert, key) = tls_files(dir.path());
        let out = dir.path().join("messages.jsonl");
        let port = free_port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_server.py");
        let mut command = Command::new(python());
        command.arg(script).args(["--port", &port.to_string(), "--mode", mode]).arg("--out").arg(&out);
        command.arg("--cert").arg(&cert).arg("--key").arg(&key);
        if auth {
            command.args(["--user", SMTP_USER, "--password", SMTP_PASSWORD]);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start aiosmtpd");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("READY"), "the SMTP server did not start: {line:?}");
        SmtpServer { child, port, out, ca_pem, _dir: dir }
    }

    fn messages(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    async fn wait_for_messages(&self, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the SMTP server did not get {n} messages: {:?}", self.messages());
    }

    fn settings(&self, mode: &str, auth: bool) -> Value {
        let mut settings = json!({
            "host": "127.0.0.1", "port": self.port, "mode": mode,
            "from": "Patchdeck <patchdeck@example.com>", "ca_pem": self.ca_pem,
        });
        if auth {
            settings["username"] = json!(SMTP_USER);
        }
        settings
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The header `name` of a raw message.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let head = message.split("\r\n\r\n").next().unwrap_or(message);
    head.split("\r\n")
        .chain(head.split('\n'))
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(": ")))
        .map(str::trim)
}

// ---------------------------------------------------------------------------------------------
// A real webhook receiver

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Value,
    /// The signature and timestamp checked out as docs/notifications.md says a receiver checks.
    verified: bool,
}

#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<Received>>,
    /// Answer this many requests with `fail_status` before answering 204.
    fail_first: AtomicUsize,
    fail_status: Mutex<u16>,
}

/// What docs/notifications.md tells a receiver to do: recompute the HMAC over
/// "<timestamp>.<body>" with the shared secret, compare in constant time, and refuse a
/// timestamp more than five minutes away.
fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let (Some(ts), Some(sig)) = (headers.get("x-patchdeck-timestamp"), headers.get("x-patchdeck-signature")) else {
        return false;
    };
    let Ok(ts) = ts.to_str().unwrap_or_default().parse::<i64>() else { return false };
    if (Timestamp::now().as_second() - ts).abs() > 300 {
        return false;
    }
    let Some(hex) = sig.to_str().unwrap_or_default().strip_prefix("sha256=") else { return false };
    let Ok(expected) = data_encoding::HEXLOWER.decode(hex.as_bytes()) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn hook(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let verified = verify(&headers, &body);
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    receiver.requests.lock().unwrap().push(Received { headers, body, verified });
    let failing = receiver.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing {
        AxumStatus::from_u16(*receiver.fail_status.lock().unwrap()).unwrap()
    } else {
        AxumStatus::NO_CONTENT
    }
}

/// Serves the receiver on a loopback port; returns its `/hook` URL.
async fn start_receiver() -> (Arc<Receiver>, String) {
    let receiver = Arc::new(Receiver::default());
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, format!("http://127.0.0.1:{}/hook", addr.port()))
}

impl Receiver {
    fn fail(&self, times: usize, status: u16) {
        *self.fail_status.lock().unwrap() = status;
        self.fail_first.store(times, Ordering::SeqCst);
    }

    fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

async fn create(admin: &Client, path: &str, body: Value) -> Value {
    let (status, answer) = admin.post(path, body).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {answer}");
    answer
}

async fn webhook_channel(admin: &Client, name: &str, url: &str, format: &str) -> i64 {
    let mut body = json!({ "name": name, "kind": "webhook", "settings": { "url": url, "format": format } });
    if format == "generic" {
        body["secret"] = json!(HOOK_SECRET);
    }
    create(admin, "/api/v1/notification-channels", body).await["id"].as_i64().unwrap()
}

async fn rule(admin: &Client, name: &str, channel: i64, events: &[&str], recipients: &[&str]) -> i64 {
    let body = json!({ "name": name, "events": events, "channel_id": channel, "recipients": recipients });
    create(admin, "/api/v1/notification-rules", body).await["id"].as_i64().unwrap()
}

async fn deliveries(store: &Store) -> Vec<NotificationDelivery> {
    let filter = DeliveryFilter { paging: patchdeck_store::Paging::new(1000, 0), ..Default::default() };
    let mut items = store.list_notification_deliveries(&filter).await.unwrap().items;
    items.reverse();
    items
}

fn unreachable_event(host_id: i64) -> NotificationEvent {
    NotificationEvent::HostUnreachable {
        host_id,
        hostname: "web1".into(),
        status: "unreachable".into(),
        last_seen_at: Some(Timestamp::from_second(1_700_000_000).unwrap()),
    }
}

/// A manager whose own sender does not run: the test drives [`Notifier::send_due`] itself.
async fn quiet_manager(backend: common::Backend) -> TestManager {
    TestManager::start_with(backend, |c| {
        c.notifications.enabled = false;
        c.notifications.retry_delays_secs = vec![30, 60];
        c.notifications.digest_hour = 0;
    })
    .await
}

macro_rules! quiet_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(quiet_manager(common::Backend::Sqlite).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(quiet_manager(common::Backend::Postgres).await).await;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// The API

both_backends!(channels_and_rules_through_the_api, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (operator, _) = m.signed_in("olga", Role::Operator).await;
    let smtp = json!({
        "name": "mail", "kind": "smtp", "secret": SMTP_PASSWORD,
        "settings": { "host": "smtp.example.com", "mode": "starttls", "username": "pd", "from": "pd@example.com" },
    });
    let channel = create(&admin, "/api/v1/notification-channels", smtp.clone()).await;
    let id = channel["id"].as_i64().unwrap();
    assert_eq!((channel["secret_set"].clone(), channel["kind"].clone()), (json!(true), json!("smtp")));
    assert!(!channel.to_string().contains(SMTP_PASSWORD), "the password is never returned: {channel}");
    let (status, listed) = admin.get("/api/v1/notification-channels").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!listed.to_string().contains(SMTP_PASSWORD), "{listed}");
    assert_eq!(listed[0]["settings"]["host"], "smtp.example.com");
    let stored = m.state.store().get_notification_channel(patchdeck_store::NotificationChannelId(id)).await;
    let sealed = stored.unwrap().unwrap().secret.unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(SMTP_PASSWORD), "sealed at rest");

    // Validation names the field.
    let bad = |patch: Value| {
        let mut body = smtp.clone();
        body["name"] = json!("other");
        for (k, v) in patch.as_object().unwrap() {
            if k == "settings" {
                for (sk, sv) in v.as_object().unwrap() {
                    body["settings"][sk] = sv.clone();
                }
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    for (body, field) in [
        (bad(json!({ "kind": "pigeon" })), "kind"),
        (bad(json!({ "name": " " })), "name"),
        (bad(json!({ "settings": { "mode": "none" } })), "settings.mode"),
        (bad(json!({ "settings": { "from": "nobody" } })), "settings.from"),
        (bad(json!({ "settings": { "ca_pem": "not a certificate" } })), "settings.ca_pem"),
        (bad(json!({ "settings": { "bogus": 1 } })), "settings"),
        (bad(json!({ "secret": null })), "secret"),
        (
            json!({ "name": "hook", "kind": "webhook", "settings": { "url": "http://hooks.example.com/x", "format": "slack" } }),
            "settings.url",
        ),
        (
            json!({ "name": "hook", "kind": "webhook", "settings": { "url": "https://hooks.example.com/x", "format": "generic" } }),
            "secret",
        ),
        (
            json!({ "name": "hook", "kind": "webhook", "settings": { "url": "https://hooks.example.com/x", "format": "teams" } }),
            "settings",
        ),
    ] {
        let (status, answer) = admin.post("/api/v1/notification-channels", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}: {answer}");
    }
    let (status, answer) = admin.post("/api/v1/notification-channels", smtp.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let none_mode = json!({ "name": "local relay", "kind": "smtp",
        "settings": { "host": "127.0.0.1", "port": 25, "mode": "none", "from": "pd@example.com" } });
    let local = create(&admin, "/api/v1/notification-channels", none_mode).await;
    assert_eq!(local["secret_set"], false);

    // Update: the secret stays unless given; "" clears it (then the username must go too).
    let update = json!({ "name": "mail", "enabled": false,
        "settings": { "host": "smtp2.example.com", "mode": "tls", "username": "pd", "from": "pd@example.com" } });
    let (status, updated) = admin.put(&format!("/api/v1/notification-channels/{id}"), update.clone()).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((updated["secret_set"].clone(), updated["enabled"].clone()), (json!(true), json!(false)));
    assert_eq!(updated["settings"]["host"], "smtp2.example.com");
    let mut clear = update.clone();
    clear["secret"] = json!("");
    let (status, answer) = admin.put(&format!("/api/v1/notification-channels/{id}"), clear.clone()).await;
    assert_eq!((status, answer["error"]["details"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("secret")));
    clear["settings"].as_object_mut().unwrap().remove("username");
    let (status, cleared) = admin.put(&format!("/api/v1/notification-channels/{id}"), clear).await;
    assert_eq!((status, cleared["secret_set"].clone()), (StatusCode::OK, json!(false)), "{cleared}");

    // Rules: events and recipients are checked against the channel.
    let hook = webhook_channel(&admin, "hook", "https://hooks.example.com/x", "slack").await;
    let group = create(&admin, "/api/v1/groups", json!({ "name": "web" })).await["id"].as_i64().unwrap();
    for (body, field) in [
        (json!({ "name": "r", "events": [], "channel_id": id, "recipients": ["a@example.com"] }), "events"),
        (
            json!({ "name": "r", "events": ["host.exploded"], "channel_id": id, "recipients": ["a@example.com"] }),
            "events[0]",
        ),
        (json!({ "name": "r", "events": ["host.unreachable"], "channel_id": id }), "recipients"),
        (
            json!({ "name": "r", "events": ["host.unreachable"], "channel_id": id, "recipients": ["a@example.com", "nope"] }),
            "recipients[1]",
        ),
        (
            json!({ "name": "r", "events": ["host.unreachable"], "channel_id": hook, "recipients": ["a@example.com"] }),
            "recipients",
        ),
        (json!({ "name": "r", "events": ["host.unreachable"], "channel_id": 9999 }), "channel_id"),
        (json!({ "name": "r", "events": ["host.unreachable"], "channel_id": hook, "group_id": 9999 }), "group_id"),
    ] {
        let (status, answer) = admin.post("/api/v1/notification-rules", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{body}: {answer}");
    }
    let body = json!({ "name": "ops", "events": ["host.unreachable", "security.digest", "host.unreachable"],
        "channel_id": id, "recipients": [" ops@example.com "], "group_id": group });
    let rule = create(&admin, "/api/v1/notification-rules", body).await;
    assert_eq!(rule["events"], json!(["host.unreachable", "security.digest"]));
    assert_eq!((rule["recipients"].clone(), rule["group_id"].clone()), (json!(["ops@example.com"]), json!(group)));
    let rule_id = rule["id"].as_i64().unwrap();
    let change = json!({ "name": "ops", "events": ["certificate.expiring"], "channel_id": hook, "enabled": false });
    let (status, changed) = admin.put(&format!("/api/v1/notification-rules/{rule_id}"), change).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!((changed["channel_id"].clone(), changed["enabled"].clone()), (json!(hook), json!(false)));
    assert_eq!(changed["group_id"], Value::Null);
    let (status, one) = admin.get(&format!("/api/v1/notification-rules/{rule_id}")).await;
    assert_eq!((status, one["events"].clone()), (StatusCode::OK, json!(["certificate.expiring"])));

    // Operators see none of it.
    for path in ["/api/v1/notification-channels", "/api/v1/notification-rules", "/api/v1/notification-deliveries"] {
        let (status, answer) = operator.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
    }
    let (status, _) = operator.post(&format!("/api/v1/notification-channels/{hook}/test"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Deliveries: paged and filtered by status.
    let (status, page) = admin.get("/api/v1/notification-deliveries?status=failed&limit=10").await;
    assert_eq!((status, page["total"].clone()), (StatusCode::OK, json!(0)), "{page}");
    let (status, answer) = admin.get("/api/v1/notification-deliveries?status=lost").await;
    assert_eq!((status, answer["error"]["details"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("status")));

    // Deletions, and everything audited without a secret.
    let (status, _) = admin.delete(&format!("/api/v1/notification-rules/{rule_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.delete(&format!("/api/v1/notification-channels/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.get(&format!("/api/v1/notification-channels/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let log = m.state.store().audit_entries_after(None, 10_000).await.unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).filter(|a| a.starts_with("notification_")).collect();
    for action in [
        "notification_channel.create",
        "notification_channel.update",
        "notification_channel.delete",
        "notification_rule.create",
        "notification_rule.update",
        "notification_rule.delete",
    ] {
        assert!(actions.contains(&action), "{action} missing from {actions:?}");
    }
    let text = serde_json::to_string(&log.iter().map(|e| &e.details).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains(SMTP_PASSWORD) && !text.contains(HOOK_SECRET), "no secret in the audit log");
    m.stop().await;
});

// ---------------------------------------------------------------------------------------------
// E-mail

both_backends!(email_over_starttls_and_implicit_tls, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;

    // STARTTLS with AUTH: the test action reports success, the server got the message.
    let server = SmtpServer::start("starttls", true);
    let body = json!({ "name": "mail", "kind": "smtp", "secret": SMTP_PASSWORD, "settings": server.settings("starttls", true) });
    let channel = create(&admin, "/api/v1/notification-channels", body).await["id"].as_i64().unwrap();
    let (status, result) = admin
        .post(&format!("/api/v1/notification-channels/{channel}/test"), json!({ "recipients": ["ops@example.com"] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result, json!({ "delivered": true, "error": null }));
    let message = &server.wait_for_messages(1).await[0];
    assert_eq!(message["mail_from"], "patchdeck@example.com");
    assert_eq!(message["rcpt_tos"], json!(["ops@example.com"]));
    assert_eq!((message["login"].clone(), message["encrypted"].clone()), (json!(SMTP_USER), json!(true)));
    let data = message["data"].as_str().unwrap();
    assert_eq!(header(data, "Subject"), Some("Patchdeck test message for channel \"mail\""), "{data}");
    assert_eq!(header(data, "From"), Some("Patchdeck <patchdeck@example.com>"), "{data}");
    assert!(data.contains("If you can read this, the channel works."), "{data}");
    let (status, result) = admin.post(&format!("/api/v1/notification-channels/{channel}/test"), json!({})).await;
    assert_eq!((status, result["error"]["details"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("recipients")));

    // A wrong password: reported plainly, nothing delivered.
    let mut wrong = json!({ "name": "mail", "enabled": true, "secret": "not the password", "settings": server.settings("starttls", true) });
    let (status, _) = admin.put(&format!("/api/v1/notification-channels/{channel}"), wrong.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, result) = admin
        .post(&format!("/api/v1/notification-channels/{channel}/test"), json!({ "recipients": ["ops@example.com"] }))
        .await;
    assert_eq!((status, result["delivered"].clone()), (StatusCode::OK, json!(false)), "{result}");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("535") || error.to_lowercase().contains("auth"), "{error}");
    assert_eq!(server.messages().len(), 1);
    // A CA the server's certificate does not chain to: the TLS handshake is refused.
    wrong["secret"] = json!(SMTP_PASSWORD);
    wrong["settings"]["ca_pem"] = json!(patchdeck_testkit::pki::Ca::new("Other CA").cert.pem());
    admin.put(&format!("/api/v1/notification-channels/{channel}"), wrong).await;
    let (_, result) = admin
        .post(&format!("/api/v1/notification-channels/{channel}/test"), json!({ "recipients": ["ops@example.com"] }))
        .await;
    assert_eq!(result["delivered"], false, "{result}");
    let log = m.state.store().audit_entries_after(None, 10_000).await.unwrap();
    let tests: Vec<_> = log.iter().filter(|e| e.action == "notification_channel.test").collect();
    assert_eq!(tests.len(), 3, "every test action is audited");
    assert_eq!(tests[1].outcome, patchdeck_store::AuditOutcome::Failure);

    // No TLS: allowed to a loopback relay only, without AUTH.
    let plain = SmtpServer::start("none", false);
    let mut settings = plain.settings("none", false);
    settings.as_object_mut().unwrap().remove("ca_pem");
    let body = json!({ "name": "local relay", "kind": "smtp", "settings": settings });
    let local = create(&admin, "/api/v1/notification-channels", body).await["id"].as_i64().unwrap();
    let (_, result) = admin
        .post(&format!("/api/v1/notification-channels/{local}/test"), json!({ "recipients": ["root@example.com"] }))
        .await;
    assert_eq!(result, json!({ "delivered": true, "error": null }));
    let message = &plain.wait_for_messages(1).await[0];
    assert_eq!(
        (message["rcpt_tos"].clone(), message["encrypted"].clone()),
        (json!(["root@example.com"]), json!(false))
    );

    // Implicit TLS, through a rule, the outbox and the running sender (woken by the event).
    let tls = SmtpServer::start("tls", true);
    let body =
        json!({ "name": "mail-tls", "kind": "smtp", "secret": SMTP_PASSWORD, "settings": tls.settings("tls", true) });
    let channel = create(&admin, "/api/v1/notification-channels", body).await["id"].as_i64().unwrap();
    rule(&admin, "deployments", channel, &["deployment.failed"], &["ops@example.com", "lead@example.com"]).await;
    let event = NotificationEvent::DeploymentFailed {
        deployment_id: 42,
        name: "December patches".into(),
        succeeded: 7,
        failed: 3,
        reason: "ring canary failed".into(),
    };
    m.state.notifier().emit(event).await.unwrap();
    let message = &tls.wait_for_messages(1).await[0];
    assert_eq!(message["rcpt_tos"], json!(["ops@example.com", "lead@example.com"]));
    assert_eq!((message["login"].clone(), message["encrypted"].clone()), (json!(SMTP_USER), json!(true)));
    let data = message["data"].as_str().unwrap();
    assert_eq!(header(data, "Subject"), Some("Deployment \"December patches\" failed: ring canary failed"), "{data}");
    assert!(data.contains("Deployment: #42") && data.contains("Failed: 3"), "{data}");
    let sent =
        common::agents::eventually(Duration::from_secs(10), "the delivery is marked sent", String::new, || async {
            deliveries(m.state.store()).await.into_iter().find(|d| d.status == DeliveryStatus::Sent)
        })
        .await;
    assert_eq!((sent.event.as_str(), sent.attempts), ("deployment.failed", 1));
    m.stop().await;
});

// ---------------------------------------------------------------------------------------------
// Webhooks

quiet_backends!(webhooks_are_signed_retried_and_given_up, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (receiver, url) = start_receiver().await;
    let generic = webhook_channel(&admin, "generic", &url, "generic").await;
    rule(&admin, "hosts", generic, &["host.unreachable"], &[]).await;
    let notifier = m.state.notifier();
    let store = m.state.store();

    // Two failures (503, then 429), then success: retried after 30 s, then 60 s.
    receiver.fail(1, 503);
    notifier.emit(unreachable_event(5)).await.unwrap();
    assert_eq!(notifier.send_due().await.unwrap(), 1);
    let d = &deliveries(store).await[0];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 1));
    assert!(d.last_error.as_deref().unwrap().contains("503"), "{:?}", d.last_error);
    assert_eq!(d.next_attempt_at.as_millisecond(), (m.state.now() + SignedDuration::from_secs(30)).as_millisecond());
    assert_eq!(notifier.send_due().await.unwrap(), 0, "not due before the backoff");
    receiver.fail(1, 429);
    m.advance(SignedDuration::from_secs(30));
    assert_eq!(notifier.send_due().await.unwrap(), 1);
    let d = &deliveries(store).await[0];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Pending, 2));
    assert_eq!(d.next_attempt_at.as_millisecond(), (m.state.now() + SignedDuration::from_secs(60)).as_millisecond());
    m.advance(SignedDuration::from_secs(60));
    assert_eq!(notifier.send_due().await.unwrap(), 1);
    let d = &deliveries(store).await[0];
    assert_eq!((d.status, d.attempts, d.last_error.clone()), (DeliveryStatus::Sent, 3, None));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    for r in &requests {
        assert!(r.verified, "the signature checks out: {:?}", r.headers);
        assert_eq!(r.headers["x-patchdeck-event"], "host.unreachable");
        assert_eq!(r.headers["x-patchdeck-delivery"], d.id.to_string().as_str(), "one delivery id on every attempt");
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let body = &requests[2].body;
    assert_eq!(body["id"], d.id.to_string());
    assert_eq!(body["event"], "host.unreachable");
    assert_eq!(body["summary"], "Host web1 is unreachable");
    assert_eq!(
        body["data"],
        json!({ "host_id": 5, "hostname": "web1", "status": "unreachable",
        "last_seen_at": "2023-11-14T22:13:20Z" })
    );
    assert!(body["occurred_at"].as_str().unwrap().parse::<Timestamp>().is_ok());

    // A receiver that keeps failing: failed after the last attempt (1 + 2 retries).
    receiver.fail(10, 502);
    notifier.emit(unreachable_event(6)).await.unwrap();
    for wait in [0, 30, 60] {
        m.advance(SignedDuration::from_secs(wait));
        assert_eq!(notifier.send_due().await.unwrap(), 1);
    }
    let d = &deliveries(store).await[1];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 3));
    assert!(d.last_error.as_deref().unwrap().contains("502"), "{:?}", d.last_error);
    m.advance(SignedDuration::from_hours(2));
    assert_eq!(notifier.send_due().await.unwrap(), 0, "a failed delivery is not tried again");

    // 410 Gone is permanent at once; 408 is not.
    receiver.fail(1, 410);
    notifier.emit(unreachable_event(7)).await.unwrap();
    notifier.send_due().await.unwrap();
    let d = &deliveries(store).await[2];
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 1));
    receiver.fail(1, 408);
    notifier.emit(unreachable_event(8)).await.unwrap();
    notifier.send_due().await.unwrap();
    assert_eq!(deliveries(store).await[3].status, DeliveryStatus::Pending);

    // Admins see the failures (signed in again: the clock moved past the session).
    let admin = m.client();
    assert_eq!(admin.login("root", common::PASSWORD).await.0, StatusCode::OK);
    let (status, page) = admin.get("/api/v1/notification-deliveries?status=failed").await;
    assert_eq!((status, page["total"].clone()), (StatusCode::OK, json!(2)), "{page}");
    assert_eq!(page["items"][0]["event"], "host.unreachable");
    assert!(page["items"][0]["last_error"].as_str().unwrap().contains("410"), "{page}");
    m.stop().await;
});

quiet_backends!(slack_discord_and_the_test_action, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (receiver, url) = start_receiver().await;
    let slack = webhook_channel(&admin, "slack", &url, "slack").await;
    let discord = webhook_channel(&admin, "discord", &url, "discord").await;
    let generic = webhook_channel(&admin, "generic", &url, "generic").await;
    for channel in [slack, discord, generic] {
        let (status, result) = admin.post(&format!("/api/v1/notification-channels/{channel}/test"), json!({})).await;
        assert_eq!((status, result.clone()), (StatusCode::OK, json!({ "delivered": true, "error": null })));
    }
    let requests = receiver.requests();
    assert_eq!(requests.len(), 3);
    let text = requests[0].body["text"].as_str().unwrap();
    assert!(text.starts_with("*Patchdeck test message for channel \"slack\"*"), "{text}");
    assert_eq!(requests[0].body.as_object().unwrap().len(), 1, "Slack gets only text");
    let content = requests[1].body["content"].as_str().unwrap();
    assert!(content.contains("the channel works"), "{content}");
    assert!(requests[2].verified, "generic test messages are signed too");
    assert_eq!(requests[2].body["event"], "test");
    assert!(requests[0].headers.get("x-patchdeck-signature").is_none(), "chat formats are not signed");

    // A test against a receiver that refuses: the error in plain words.
    receiver.fail(1, 500);
    let (_, result) = admin.post(&format!("/api/v1/notification-channels/{slack}/test"), json!({})).await;
    assert_eq!(result["delivered"], false);
    assert!(result["error"].as_str().unwrap().contains("500"), "{result}");
    let (_, result) = admin
        .post(&format!("/api/v1/notification-channels/{slack}/test"), json!({ "recipients": ["a@example.com"] }))
        .await;
    assert_eq!(result["error"]["details"]["field"], "recipients", "webhooks take no recipients");

    // Nothing listens: the error names the origin only (Slack and Discord keep a secret in the path).
    let closed = format!("http://127.0.0.1:{}/services/T000/B000/secret-path-token", free_port());
    let gone = webhook_channel(&admin, "gone", &closed, "slack").await;
    let (_, result) = admin.post(&format!("/api/v1/notification-channels/{gone}/test"), json!({})).await;
    let error = result["error"].as_str().unwrap();
    assert!(error.starts_with("POST http://127.0.0.1:"), "{error}");
    assert!(!error.contains("secret-path-token"), "{error}");

    // A digest as chat: one line per update.
    rule(&admin, "digest", discord, &["security.digest"], &[]).await;
    let item = patchdeck::notify::DigestItem {
        host_id: 1,
        hostname: "db1".into(),
        package: "openssl".into(),
        arch: "amd64".into(),
        current_version: "3.0.1-1".into(),
        version: "3.0.2-1".into(),
        severity: Some("high".into()),
        cves: vec!["CVE-2026-0001".into()],
    };
    m.state
        .notifier()
        .emit(NotificationEvent::SecurityDigest { hosts: 1, updates: 1, items: vec![item] })
        .await
        .unwrap();
    m.state.notifier().send_due().await.unwrap();
    let content = receiver.requests()[4].body["content"].as_str().unwrap().to_owned();
    assert!(content.starts_with("*1 new security update on 1 host*"), "{content}");
    assert!(content.contains("- db1: openssl 3.0.1-1 -> 3.0.2-1 [high] (CVE-2026-0001)"), "{content}");
    m.stop().await;
});

quiet_backends!(two_senders_never_deliver_one_delivery_twice, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (receiver, url) = start_receiver().await;
    let channel = webhook_channel(&admin, "generic", &url, "generic").await;
    rule(&admin, "all", channel, &["host.unreachable"], &[]).await;
    for host in 0..40 {
        m.state.notifier().emit(unreachable_event(host)).await.unwrap();
    }
    // A second replica: its own store handle (pool) and notifier on the same database.
    let other_store = Store::connect(&m.config.database()).await.unwrap();
    let other =
        Notifier::new(other_store, m.state.clock(), m.state.keys().secret_key.clone(), m.config.notifications.clone());
    let drain = |notifier: Notifier| async move {
        let mut claimed = 0;
        loop {
            match notifier.send_due().await.unwrap() {
                0 => return claimed,
                n => claimed += n,
            }
        }
    };
    let (a, b) = tokio::join!(tokio::spawn(drain(m.state.notifier())), tokio::spawn(drain(other.clone())));
    assert_eq!(a.unwrap() + b.unwrap(), 40);
    let ids: Vec<String> =
        receiver.requests().iter().map(|r| r.headers["x-patchdeck-delivery"].to_str().unwrap().to_owned()).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), unique.len()), (40, 40), "every delivery sent exactly once");
    assert!(deliveries(m.state.store()).await.iter().all(|d| d.status == DeliveryStatus::Sent && d.attempts == 1));
    m.stop().await;
});

// ---------------------------------------------------------------------------------------------
// Event sources

fn scan_report(now: Timestamp) -> patchdeck_proto::ScanReport {
    use patchdeck_proto::inventory::{
        AvailableUpdate, BackendKind, OsInfo, RebootStatus, ScanReport, SecurityClass, SecurityInfo,
        SCAN_SCHEMA_VERSION,
    };
    let update = |name: &str, current: &str, candidate: &str, class: SecurityClass| AvailableUpdate {
        name: name.into(),
        arch: "amd64".into(),
        current_version: current.into(),
        candidate_version: candidate.into(),
        repository: Some("bookworm-security".into()),
        security: SecurityInfo {
            class,
            reason: "test".into(),
            advisory_id: None,
            severity: (class == SecurityClass::Security).then(|| "high".to_owned()),
        },
        cves: if class == SecurityClass::Security { vec!["CVE-2026-0001".into()] } else { vec![] },
        reboot_likely: false,
    };
    ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at: now,
        os: OsInfo {
            id: "debian".into(),
            id_like: vec![],
            version_id: Some("12".into()),
            pretty_name: None,
            kernel: None,
            arch: None,
        },
        backend: BackendKind::Apt,
        version_format: BackendKind::Apt.version_format(),
        last_refresh: None,
        installed: vec![],
        updates: vec![
            update("openssl", "3.0.1-1", "3.0.2-1", SecurityClass::Security),
            update("vim", "9.0-1", "9.1-1", SecurityClass::NotSecurity),
        ],
        reboot: RebootStatus::default(),
    }
}

quiet_backends!(events_come_from_hosts_certificates_and_inventories, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (_, url) = start_receiver().await;
    let channel = webhook_channel(&admin, "all", &url, "slack").await;
    rule(&admin, "all", channel, &["host.unreachable", "certificate.expiring", "security.digest"], &[]).await;
    let store = m.state.store();
    let notifier = m.state.notifier();
    let count = |kind: &'static str| async move { deliveries(store).await.iter().filter(|d| d.event == kind).count() };

    // A pull host that goes silent is marked offline once, and notified once.
    let host = store
        .create_host(
            &NewHost {
                hostname: "web1".into(),
                fqdn: None,
                address: None,
                transport: Transport::Pull,
                status: HostStatus::Online,
                machine_id: None,
                os_name: None,
                os_version: None,
            },
            m.state.now(),
        )
        .await
        .unwrap();
    store.set_host_status(host.id, HostStatus::Online, Some(m.state.now()), m.state.now()).await.unwrap();
    patchdeck::web::handlers::agent::agent_upkeep(&m.state).await.unwrap();
    assert_eq!(count("host.unreachable").await, 0, "still online");
    m.advance(SignedDuration::from_mins(15));
    patchdeck::web::handlers::agent::agent_upkeep(&m.state).await.unwrap();
    patchdeck::web::handlers::agent::agent_upkeep(&m.state).await.unwrap();
    assert_eq!(count("host.unreachable").await, 1, "one notification per transition");
    let d = deliveries(store).await.into_iter().find(|d| d.event == "host.unreachable").unwrap();
    assert_eq!(d.payload["data"]["hostname"], "web1");
    assert_eq!(d.payload["data"]["status"], "offline");

    // A push host the push worker finds unreachable: notified when it becomes so, not again
    // while it stays so (a new lease holder reports it again: the stored status decides).
    let push = store
        .create_host(
            &NewHost {
                hostname: "db1".into(),
                fqdn: Some("db1.example.com".into()),
                address: None,
                transport: Transport::Push,
                status: HostStatus::Online,
                machine_id: None,
                os_name: None,
                os_version: None,
            },
            m.state.now(),
        )
        .await
        .unwrap();
    let push_store = patchdeck::push::service::ManagerPushStore(m.state.clone());
    for _ in 0..2 {
        push_store.set_host_status(push.id, HostStatus::Unreachable, None, m.state.now()).await.unwrap();
    }
    assert_eq!(count("host.unreachable").await, 2, "one more, for the push host");
    let d = deliveries(store).await.into_iter().rfind(|d| d.event == "host.unreachable").unwrap();
    assert_eq!(
        (d.payload["data"]["hostname"].clone(), d.payload["data"]["status"].clone()),
        (json!("db1"), json!("unreachable"))
    );
    push_store.set_host_status(push.id, HostStatus::Online, Some(m.state.now()), m.state.now()).await.unwrap();
    push_store.set_host_status(push.id, HostStatus::Unreachable, None, m.state.now()).await.unwrap();
    assert_eq!(count("host.unreachable").await, 3, "unreachable again after it came back");

    // A certificate expiring within 14 days: notified once, however often the check runs.
    let now = m.state.now();
    let cert = |serial: &str, days: i64| NewCertificate {
        serial: serial.into(),
        kind: patchdeck_store::CertificateKind::Client,
        common_name: format!("agent-{serial}"),
        host_id: Some(host.id),
        not_before: now - SignedDuration::from_hours(24 * 300),
        not_after: now + SignedDuration::from_hours(24 * days),
        pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
    };
    store.insert_certificate(&cert("a1", 10), now).await.unwrap();
    store.insert_certificate(&cert("b2", 40), now).await.unwrap();
    assert_eq!(notifier.check_certificates().await.unwrap(), 1);
    assert_eq!(notifier.check_certificates().await.unwrap(), 0);
    assert_eq!(count("certificate.expiring").await, 1);
    let d = deliveries(store).await.into_iter().find(|d| d.event == "certificate.expiring").unwrap();
    assert_eq!(
        (d.payload["data"]["serial"].clone(), d.payload["data"]["host_id"].clone()),
        (json!("a1"), json!(host.id.0))
    );

    // The digest: nothing when nothing is new; one delivery with the new security updates.
    assert_eq!(notifier.send_security_digest().await.unwrap(), 0);
    assert_eq!(count("security.digest").await, 0);
    let report = scan_report(now);
    store.replace_inventory(host.id, &report, "sha256:1", now).await.unwrap();
    assert_eq!(notifier.send_security_digest().await.unwrap(), 1);
    assert_eq!(notifier.send_security_digest().await.unwrap(), 0, "nothing new the next day");
    assert_eq!(count("security.digest").await, 1);
    let d = deliveries(store).await.into_iter().find(|d| d.event == "security.digest").unwrap();
    assert_eq!(d.payload["data"]["updates"], 1);
    assert_eq!(d.payload["data"]["items"][0]["package"], "openssl");
    assert_eq!(d.payload["data"]["items"][0]["cves"], json!(["CVE-2026-0001"]));

    // The daily checks send the digest once per day, across calls (and replicas).
    let mut report = scan_report(now);
    report.updates[0].name = "libssl3".into();
    store.replace_inventory(host.id, &report, "sha256:2", now).await.unwrap();
    notifier.daily_checks().await.unwrap();
    notifier.daily_checks().await.unwrap();
    assert_eq!(count("security.digest").await, 2, "today's digest, once");
    let d = deliveries(store).await.into_iter().rfind(|d| d.event == "security.digest").unwrap();
    assert_eq!(d.payload["data"]["items"][0]["package"], "libssl3");
    m.advance(SignedDuration::from_hours(24));
    notifier.daily_checks().await.unwrap();
    assert_eq!(count("security.digest").await, 2, "the next day has nothing new");
    let admin = m.client();
    assert_eq!(admin.login("root", common::PASSWORD).await.0, StatusCode::OK, "signed in again a day later");

    // A rule limited to a group sees only its hosts.
    let group = create(&admin, "/api/v1/groups", json!({ "name": "db" })).await["id"].as_i64().unwrap();
    let body = json!({ "name": "db only", "events": ["host.unreachable"], "channel_id": channel, "group_id": group });
    create(&admin, "/api/v1/notification-rules", body).await;
    let before = count("host.unreachable").await;
    notifier.emit(unreachable_event(host.id.0)).await.unwrap();
    assert_eq!(count("host.unreachable").await, before + 1, "only the rule without a group");
    let (status, _) = admin.put(&format!("/api/v1/groups/{group}/hosts/{}", host.id.0), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    notifier.emit(unreachable_event(host.id.0)).await.unwrap();
    assert_eq!(count("host.unreachable").await, before + 3, "both rules");
    m.stop().await;
});
