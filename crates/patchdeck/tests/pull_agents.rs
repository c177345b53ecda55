//! Pull mode end to end: a real manager and real `patchdeck-agent` processes, each with its own
//! state directory, machine ID and apt sandbox — enrollment, check-in, inventory, signed commands,
//! results, certificates, and the failures in between.

mod common;

use std::time::Duration;

use common::agents::{eventually, finished, queue, registration_token, TestAgent};
use common::{column, Backend, Client, TestManager};
use jiff::SignedDuration;
use patchdeck_store::Role;
use patchdeck_testkit::AptSandbox;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(60);

fn stderr(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn sandbox() -> AptSandbox {
    AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1"]).build()
}

fn agent(m: &TestManager, seed: u32) -> TestAgent {
    TestAgent::new(&m.base, &m.ca_pem, sandbox(), seed, 20)
}

async fn audit_actions(admin: &Client, action: &str) -> Vec<Value> {
    let (status, body) = admin.get(&format!("/api/v1/audit?action={action}&limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn host(admin: &Client, id: i64) -> Value {
    let (status, body) = admin.get(&format!("/api/v1/hosts/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Posts a check-in with the agent's own certificate and `machine_id` in the header.
async fn raw_checkin(m: &TestManager, agent: &TestAgent, machine_id: &str) -> (StatusCode, Value) {
    let response = agent
        .mtls_client(m.addr)
        .post(format!("{}/agent/v1/checkin", m.base))
        .header("patchdeck-machine-id", machine_id)
        .json(&json!({
            "protocol_version": 1, "agent_version": "test", "metrics": {
                "load": [0.0, 0.0, 0.0], "cpu_count": 1, "cpu_percent": null, "memory_total_bytes": 1,
                "memory_available_bytes": 1, "swap_total_bytes": 0, "swap_free_bytes": 0, "disks": [],
                "uptime_secs": 1, "boot_id": null, "kernel": null, "reboot_required": false
            },
            "inventory_hash": null, "wait_ms": 0
        }))
        .send()
        .await
        .expect("check-in request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

both_backends!(enrollment_takes_seats_once_and_refuses_what_it_must, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let token = registration_token(&admin, 2).await;

    let a1 = agent(&m, 1);
    let a2 = agent(&m, 2);
    let a3 = agent(&m, 3);
    let h1 = a1.enroll_ok(&token);
    let h2 = a2.enroll_ok(&token);
    assert_ne!(h1, h2);
    let out = a3.enroll(&token, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("token_exhausted"), "{}", stderr(&out));

    // The command key's fingerprint is printed by the agent and is the manager's.
    let fingerprint = m.state.keys().command_key.fingerprint();
    let out = a1.enroll(&token, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("already enrolled"), "{}", stderr(&out));
    let identity = std::fs::read_to_string(a1.state_dir.join("pull/identity.json")).unwrap();
    assert!(identity.contains(&fingerprint), "{identity}");
    let (_, tokens) = admin.get("/api/v1/registration-tokens").await;
    assert_eq!(tokens["items"][0]["seats_used"], 2, "re-running enroll takes no seat: {tokens}");

    // Enrolled hosts: pull, pending until their first check-in, bound to their machine ID.
    let h = host(&admin, h1).await;
    assert_eq!((h["transport"].as_str(), h["status"].as_str()), (Some("pull"), Some("pending")), "{h}");

    // The same machine ID from another state directory (a cloned VM): refused and recorded …
    let token2 = registration_token(&admin, 5).await;
    let clone = agent(&m, 1);
    let out = clone.enroll(&token2, &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("machine_already_enrolled"), "{}", stderr(&out));
    assert_eq!(audit_actions(&admin, "security.duplicate_machine_id").await.len(), 1);
    // … unless forced: same host, new certificate, the old one revoked.
    let out = clone.enroll(&token2, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(clone.host_id(), h1);
    let (status, body) = raw_checkin(&m, &a1, &a1.machine_id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("certificate_revoked")),
        "{body}"
    );
    let (status, body) = raw_checkin(&m, &clone, &clone.machine_id).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A machine ID other than the bound one: refused and recorded as a security event.
    let (status, body) = raw_checkin(&m, &a2, &common::agents::machine_id(99)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("machine_id_mismatch")),
        "{body}"
    );
    assert_eq!(audit_actions(&admin, "security.machine_id_mismatch").await.len(), 1);

    // No certificate at all: 401 on every agent route.
    for path in ["/agent/v1/checkin", "/agent/v1/certificate"] {
        let (status, body) = admin.post(path, json!({})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("client_certificate_required"))
        );
    }

    // A revoked token, and an expired one.
    let (_, created) = admin
        .post("/api/v1/registration-tokens", json!({ "label": "revoked", "seats": 5, "expires_in_hours": 1 }))
        .await;
    let (status, _) = admin.delete(&format!("/api/v1/registration-tokens/{}", created["id"])).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let out = agent(&m, 4).enroll(created["token"].as_str().unwrap(), &[]);
    assert!(stderr(&out).contains("token_revoked"), "{}", stderr(&out));
    let short = registration_token(&admin, 5).await;
    m.advance(SignedDuration::from_hours(2));
    let out = agent(&m, 5).enroll(&short, &[]);
    assert!(stderr(&out).contains("token_expired"), "{}", stderr(&out));
    let out = agent(&m, 6).enroll("pdk_reg_nonsense", &[]);
    assert!(!out.status.success());
    // Two hours on, the admin's session has ended too.
    assert_eq!(admin.login("root", common::PASSWORD).await.0, StatusCode::OK);
    // Every enrollment is audited: two accepted, four refused (seats, revoked, expired, unknown).
    let enrolls = audit_actions(&admin, "host.enroll").await;
    let outcomes: Vec<_> = enrolls.iter().map(|e| e["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "success").count(), 2, "{enrolls:?}");
    assert_eq!(outcomes.iter().filter(|o| *o == "denied").count(), 4, "{enrolls:?}");
    assert_eq!(audit_actions(&admin, "host.reenroll").await.len(), 1);
});

/// How soon after an administrator's decision the agent hears of it: well under the manager's
/// 30 s `retry_after_secs`, which the agents below replace with 1 s.
const AFTER_DECISION: Duration = Duration::from_secs(20);

/// The waiting enrollment of `agent`, once the manager lists it.
async fn pending_enrollment(admin: &Client, agent: &TestAgent, log: impl Fn() -> String) -> Value {
    eventually(LIMIT, "the enrollment to wait for approval", log, || async {
        let (status, body) = admin.get("/api/v1/enrollments").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"].as_array().and_then(|items| items.iter().find(|e| e["machine_id"] == agent.machine_id).cloned())
    })
    .await
}

/// The client certificates the manager issued to `host`.
async fn client_certificates(admin: &Client, host: i64) -> Vec<Value> {
    let (status, body) = admin.get("/api/v1/certificates?kind=client").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().cloned().unwrap_or_default().into_iter().filter(|c| c["host_id"] == host).collect()
}

/// Audit entries of `action` about `host`.
async fn audited(admin: &Client, action: &str, host: i64) -> Vec<Value> {
    let target = format!("host:{host}");
    audit_actions(admin, action).await.into_iter().filter(|e| e["target"] == target.as_str()).collect()
}

// With approval required, real agents wait: no certificate, no commands, not in the host list.
// Approved, an agent gets its certificate at its next attempt and checks in with its inventory;
// rejected, `enroll` says so and fails, and no certificate is ever issued.
both_backends!(enrollment_waits_for_approval_and_ends_as_the_admin_decides, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (status, body) = admin.patch("/api/v1/settings", json!({ "enrollment_requires_approval": true })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = registration_token(&admin, 2).await;
    let knob = ("PATCHDECK_AGENT_APPROVAL_RETRY_SECS".to_owned(), "1".to_owned());

    // Agent A: `serve` enrolls by itself (the token from its environment) and waits.
    let mut a = agent(&m, 40);
    a.env.push(("PATCHDECK_ENROLL_TOKEN".into(), token.clone()));
    a.env.push(knob.clone());
    a.start();
    let waiting = pending_enrollment(&admin, &a, || a.log()).await;
    let ha = waiting["id"].as_i64().expect("host id");
    assert_eq!((waiting["approval"].as_str(), waiting["transport"].as_str()), (Some("pending"), Some("pull")));
    // It asks again every second with the same request, which takes no further seat.
    eventually(
        LIMIT,
        "agent A to ask again",
        || a.log(),
        || async { (a.log().matches("enrollment waits for an administrator's approval").count() >= 3).then_some(()) },
    )
    .await;
    let (_, tokens) = admin.get("/api/v1/registration-tokens").await;
    assert_eq!(tokens["items"][0]["seats_used"], 1, "{tokens}");
    // Meanwhile: no certificate on either side, not a managed host, and no commands.
    assert!(!a.state_dir.join("pull/client.crt").exists() && !a.state_dir.join("pull/identity.json").exists());
    assert!(client_certificates(&admin, ha).await.is_empty());
    let (_, hosts) = admin.get("/api/v1/hosts").await;
    assert_eq!(hosts["total"], 0, "{hosts}");
    let scan = json!({ "type": "scan", "subsystems": ["system"] });
    let (status, body) = admin.post(&format!("/api/v1/hosts/{ha}/commands"), scan.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("approval"), "{body}");
    let (status, commands) = admin.get(&format!("/api/v1/commands?host={ha}")).await;
    assert_eq!((status, &commands["total"]), (StatusCode::OK, &json!(0)), "{commands}");
    let enrolled = audited(&admin, "host.enroll", ha).await;
    assert_eq!(enrolled.len(), 1, "{enrolled:?}");
    assert_eq!(enrolled[0]["details"]["approval"], "pending", "{enrolled:?}");

    // Approved: the next attempt gets the certificate, then check-in and inventory follow.
    let (status, body) = admin.post(&format!("/api/v1/enrollments/{ha}/approve"), json!({})).await;
    assert_eq!((status, body["approval"].as_str()), (StatusCode::OK, Some("approved")), "{body}");
    let approved_at = std::time::Instant::now();
    let online = eventually(
        AFTER_DECISION,
        "agent A enrolled and online",
        || a.log(),
        || async {
            let h = host(&admin, ha).await;
            (h["status"] == "online").then_some(h)
        },
    )
    .await;
    eprintln!("agent A online {:?} after the approval", approved_at.elapsed());
    assert_eq!(online["approval"], "approved", "{online}");
    first_inventory(&admin, ha, &a).await;
    eprintln!("agent A's inventory stored {:?} after the approval", approved_at.elapsed());
    assert!(host(&admin, ha).await["installed_count"].as_i64() >= Some(2));
    assert_eq!(a.host_id(), ha);
    let certificates = client_certificates(&admin, ha).await;
    assert_eq!(certificates.len(), 1, "{certificates:?}");
    assert!(certificates[0]["revoked_at"].is_null(), "{certificates:?}");
    let approvals = audited(&admin, "host.approve", ha).await;
    assert_eq!((approvals.len(), approvals[0]["actor"].as_str()), (1, Some("user:root")), "{approvals:?}");
    let (_, left) = admin.get("/api/v1/enrollments").await;
    assert_eq!(left["total"], 0, "{left}");
    // Commands reach it now.
    let id = queue(&admin, ha, scan).await;
    assert_eq!(finished(&admin, &id, LIMIT, || a.log()).await["state"], "completed");
    a.stop();

    // Agent B: `enroll` waits, is rejected, says so and fails.
    let mut b = agent(&m, 41);
    b.env.push(knob);
    let child = b.spawn_enroll(&token);
    let waiting = pending_enrollment(&admin, &b, String::new).await;
    let hb = waiting["id"].as_i64().expect("host id");
    let (status, body) = admin.post(&format!("/api/v1/enrollments/{hb}/reject"), json!({})).await;
    assert_eq!((status, body["approval"].as_str()), (StatusCode::OK, Some("rejected")), "{body}");
    let out = tokio::time::timeout(AFTER_DECISION, tokio::task::spawn_blocking(move || child.wait_with_output()))
        .await
        .expect("enroll ends after the rejection")
        .expect("join")
        .expect("enroll output");
    assert!(!out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains("Waiting for an administrator to approve host"), "{said}");
    assert!(said.contains("enrollment_rejected"), "{said}");
    assert!(!b.state_dir.join("pull/client.crt").exists() && !b.state_dir.join("pull/identity.json").exists());
    assert!(client_certificates(&admin, hb).await.is_empty());
    let rejections = audited(&admin, "host.reject", hb).await;
    assert_eq!((rejections.len(), rejections[0]["actor"].as_str()), (1, Some("user:root")), "{rejections:?}");
    let (_, rejected) = admin.get("/api/v1/enrollments?approval=rejected").await;
    assert_eq!(column(&rejected, "id"), [hb.to_string()], "{rejected}");
    // Running it again changes nothing: still rejected, still no seat taken.
    let out = b.enroll(&token, &[]);
    assert!(!out.status.success() && stderr(&out).contains("enrollment_rejected"), "{}", stderr(&out));
    let (_, tokens) = admin.get("/api/v1/registration-tokens").await;
    assert_eq!(tokens["items"][0]["seats_used"], 2, "{tokens}");
    assert!(client_certificates(&admin, hb).await.is_empty());
});

/// Counts the manager's answered inventory uploads (from its own metrics).
async fn inventory_uploads(admin: &Client) -> u64 {
    let response = admin.raw(Method::GET, "/metrics", None).await;
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("patchdeck_http_requests_total{") && l.contains("route=\"/agent/v1/inventory\""))
        .filter(|l| l.contains("status=\"204\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

async fn updates_of(admin: &Client, host: i64) -> Vec<Value> {
    let (status, body) = admin.get(&format!("/api/v1/hosts/{host}/updates")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the agent's first inventory (with its updates) is stored.
async fn first_inventory(admin: &Client, host: i64, agent: &TestAgent) {
    eventually(
        LIMIT,
        "the first inventory",
        || agent.log(),
        || async { (!updates_of(admin, host).await.is_empty()).then_some(()) },
    )
    .await;
}

/// Check-in, inventory, an exact-version upgrade, its rollback, and an unchanged inventory not
/// uploaded again — with two agents at once, each on its own sandbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn agents_check_in_report_inventory_and_run_signed_commands() {
    let m = TestManager::start(Backend::Sqlite).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let token = registration_token(&admin, 2).await;
    let mut a = agent(&m, 10);
    let mut b = agent(&m, 11);
    let ha = a.enroll_ok(&token);
    let hb = b.enroll_ok(&token);
    a.start();
    b.start();

    for (agent, id) in [(&a, ha), (&b, hb)] {
        let updates = eventually(
            LIMIT,
            "the inventory with its updates",
            || agent.log(),
            || async {
                let updates = updates_of(&admin, id).await;
                (!updates.is_empty()).then_some(updates)
            },
        )
        .await;
        let other = updates.iter().find(|u| u["name"] == "other").expect("other has an update");
        assert_eq!(other["candidate_version"], "1.2-1");
        assert_eq!(other["classification"], "security", "{other}");
        assert!(other["reason"].as_str().unwrap().contains("security"), "{other}");
        let h = host(&admin, id).await;
        assert_eq!(h["status"], "online", "{h}");
        assert!(h["installed_count"].as_i64().unwrap() >= 2, "{h}");
    }
    let (status, hits) = admin.get("/api/v1/packages/search?name=hello&lt=1.1-1").await;
    assert_eq!(status, StatusCode::OK, "{hits}");
    assert_eq!(hits["total"], 2, "both hosts have hello older than 1.1-1: {hits}");

    // An exact-version upgrade on host A only, delivered by the held check-in.
    let uploads_before = inventory_uploads(&admin).await;
    let started = std::time::Instant::now();
    let id = queue(
        &admin,
        ha,
        json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": ["hello=1.1-1"] } }),
    )
    .await;
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(done["state"], "completed", "{done}\n{}", a.log());
    let change =
        done["changes"].as_array().unwrap().iter().find(|c| c["name"] == "hello").cloned().expect("hello changed");
    assert_eq!((change["from"].as_str(), change["to"].as_str()), (Some("1.0-1"), Some("1.1-1")), "{done}");
    assert_eq!(a.sandbox.version_of("hello").as_deref(), Some("1.1-1"));
    assert_eq!(b.sandbox.version_of("hello").as_deref(), Some("1.0-1"), "host B untouched");
    eprintln!("upgrade finished {:?} after it was queued", started.elapsed());
    // The new inventory follows.
    eventually(
        LIMIT,
        "the post-upgrade inventory",
        || a.log(),
        || async {
            let hits = admin.get("/api/v1/packages/search?name=hello&eq=1.1-1").await.1;
            (hits["total"] == 1).then_some(())
        },
    )
    .await;
    assert!(inventory_uploads(&admin).await > uploads_before);

    // Roll the command back: the old version returns.
    let id = queue(&admin, ha, json!({ "type": "rollback", "command_id": id })).await;
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(done["state"], "completed", "{done}\n{}", a.log());
    assert_eq!(a.sandbox.version_of("hello").as_deref(), Some("1.0-1"));

    // A rescan of an unchanged host sends its hash but no inventory.
    eventually(
        LIMIT,
        "the post-rollback inventory",
        || a.log(),
        || async {
            let hits = admin.get("/api/v1/packages/search?name=hello&eq=1.0-1").await.1;
            (hits["total"] == 2).then_some(())
        },
    )
    .await;
    let uploads = inventory_uploads(&admin).await;
    let id = queue(&admin, hb, json!({ "type": "scan", "subsystems": ["packages", "system", "storage"] })).await;
    assert_eq!(finished(&admin, &id, LIMIT, || b.log()).await["state"], "completed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(inventory_uploads(&admin).await, uploads, "an unchanged inventory is not uploaded again");

    // A dry run changes nothing and reports the transaction.
    let id =
        queue(&admin, hb, json!({ "type": "upgrade", "selection": { "mode": "security" }, "dry_run": true })).await;
    let done = finished(&admin, &id, LIMIT, || b.log()).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert!(done["changes"].as_array().unwrap().iter().any(|c| c["name"] == "other" && c["to"] == "1.2-1"), "{done}");
    assert_eq!(b.sandbox.version_of("other").as_deref(), Some("1.0-1"));

    // Metrics arrived with the check-ins.
    let h = host(&admin, hb).await;
    assert!(h["metrics"]["memory_total_bytes"].as_u64().unwrap() > 0, "{h}");
    a.stop();
    b.stop();
}

fn gated_sandbox() -> AptSandbox {
    AptSandbox::builder().dpkg_gate().installed(&["hello=1.0-1", "other=1.0-1"]).build()
}

/// Waits until the command reports `running`.
async fn running(admin: &Client, id: &str, agent: &TestAgent) {
    eventually(
        LIMIT,
        "the command to run",
        || agent.log(),
        || async {
            let (_, body) = admin.get(&format!("/api/v1/commands/{id}")).await;
            (body["state"] == "running").then_some(())
        },
    )
    .await;
}

/// `command.finish` audit entries for one command: a result is recorded exactly once.
async fn finishes(admin: &Client, id: &str) -> usize {
    let (status, body) = admin.get(&format!("/api/v1/audit?action=command.finish&target=command:{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().len()
}

/// The agent is killed (SIGKILL) while dpkg runs; after its restart the command ends `failed`
/// (the engine never re-runs a job it lost), and that result reaches the database once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_killed_mid_command_reports_the_outcome_exactly_once() {
    let m = TestManager::start(Backend::Sqlite).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let token = registration_token(&admin, 1).await;
    let mut a = TestAgent::new(&m.base, &m.ca_pem, gated_sandbox(), 20, 20);
    a.sandbox.open_gate();
    let id_host = a.enroll_ok(&token);
    a.start();
    first_inventory(&admin, id_host, &a).await;

    a.sandbox.close_gate();
    let id = queue(&admin, id_host, json!({ "type": "upgrade", "selection": { "mode": "all" } })).await;
    running(&admin, &id, &a).await;
    eventually(
        LIMIT,
        "dpkg to reach the gate",
        || a.log(),
        || async { (!a.sandbox.gated_pids().is_empty()).then_some(()) },
    )
    .await;
    a.kill();
    a.sandbox.open_gate();
    a.start();
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(done["error_code"], "AGENT_RESTARTED", "{done}");
    // Give the agent a few more check-ins to send anything twice, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(finishes(&admin, &id).await, 1);
    a.stop();
}

/// A `patchdeck serve` process (the real binary) on the test manager's data directory and
/// database, listening on `port`.
struct ManagerProcess {
    child: std::process::Child,
    port: u16,
}

impl ManagerProcess {
    async fn start(config: &patchdeck::config::ManagerConfig, port: u16) -> ManagerProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_patchdeck"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&config.data_dir)
            .args(["--database-url", &config.database_url])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--public-url", &format!("https://localhost:{port}")])
            .args(["--log-format", "text"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start patchdeck serve");
        let process = ManagerProcess { child, port };
        eventually(LIMIT, "patchdeck serve to listen", String::new, || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
        })
        .await;
        process
    }

    /// SIGKILL: no graceful anything.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ManagerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The manager process is killed (SIGKILL) while the agent's check-in is held and its command
/// runs; a new process comes up on the same port. The agent keeps the result, backs off,
/// reconnects by itself and delivers it — once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_manager_loses_no_result() {
    let m = TestManager::start(Backend::Postgres).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut process = ManagerProcess::start(&m.config, port).await;
    let token = registration_token(&admin, 1).await;
    let mut a = TestAgent::new(&format!("https://localhost:{}", process.port), &m.ca_pem, gated_sandbox(), 21, 20);
    a.sandbox.open_gate();
    let host_id = a.enroll_ok(&token);
    a.start();
    first_inventory(&admin, host_id, &a).await;
    a.sandbox.close_gate();
    // Queued on the in-process manager; delivered by the process (same PostgreSQL).
    let id = queue(&admin, host_id, json!({ "type": "install", "packages": ["grower=2.0-1"] })).await;
    running(&admin, &id, &a).await;
    process.kill();
    // While the manager is gone the job finishes; its result waits in the agent's outbox.
    a.sandbox.open_gate();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, still) = admin.get(&format!("/api/v1/commands/{id}")).await;
    assert_eq!(still["state"], "running", "nobody could have stored the result yet: {still}");
    let _process = ManagerProcess::start(&m.config, port).await;
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(done["state"], "completed", "{done}\n{}", a.log());
    assert_eq!(a.sandbox.version_of("grower").as_deref(), Some("2.0-1"));
    assert!(
        done["changes"].as_array().unwrap().iter().any(|c| c["name"] == "newdep" && c["action"] == "install"),
        "{done}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(finishes(&admin, &id).await, 1);
    a.stop();
}

/// A command signed with a key the agent did not pin is refused and reported; a command
/// delivered a second time (its row reset behind the manager's back) is refused as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_and_replayed_commands_are_refused() {
    let mut m = TestManager::start(Backend::Sqlite).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let token = registration_token(&admin, 1).await;
    let mut a = agent(&m, 22);
    let host_id = a.enroll_ok(&token);
    a.start();
    eventually(
        LIMIT,
        "the host online",
        || a.log(),
        || async { (host(&admin, host_id).await["status"] == "online").then_some(()) },
    )
    .await;

    // A replay: a completed command put back in the queue.
    let id = queue(&admin, host_id, json!({ "type": "refresh_metadata" })).await;
    assert_eq!(finished(&admin, &id, LIMIT, || a.log()).await["state"], "completed");
    common::tamper(&m.config, &format!("UPDATE commands SET state = 'pending', finished_at = NULL WHERE id = '{id}'"))
        .await;
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(
        (done["state"].as_str(), done["error_code"].as_str()),
        (Some("failed"), Some("rejected_replayed")),
        "{done}"
    );

    // Another signing key: the manager restarted with a key the agent never pinned.
    let key_file = m.config.data_dir.join("command-signing.key");
    let original = std::fs::read(&key_file).unwrap();
    m.restart(|_| {
        let other = patchdeck_crypto::signing::SigningKey::generate().unwrap();
        std::fs::write(&key_file, other.to_pkcs8_pem().as_bytes()).unwrap();
    })
    .await;
    let id = queue(&admin, host_id, json!({ "type": "reboot", "delay_secs": 600 })).await;
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(
        (done["state"].as_str(), done["error_code"].as_str()),
        (Some("failed"), Some("rejected_bad_signature")),
        "{done}"
    );
    let rejected = audit_actions(&admin, "security.command_rejected").await;
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    m.restart(|_| std::fs::write(&key_file, &original).unwrap()).await;
    a.stop();
}

/// A certificate close to expiry is renewed by the agent itself; a revoked one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_renew_themselves_and_revocation_cuts_an_agent_off() {
    let m = TestManager::start(Backend::Sqlite).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let token = registration_token(&admin, 1).await;
    let mut a = agent(&m, 23);
    let host_id = a.enroll_ok(&token);
    let first = std::fs::read_to_string(a.state_dir.join("pull/client.crt")).unwrap();
    // Renew whenever fewer than 400 days are left: at once.
    a.env.push(("PATCHDECK_AGENT_RENEW_BEFORE_SECS".into(), (400 * 86_400).to_string()));
    a.start();
    let certs = eventually(
        LIMIT,
        "a renewed certificate",
        || a.log(),
        || async {
            let (_, body) = admin.get("/api/v1/certificates?kind=client").await;
            let items = body["items"].as_array().cloned().unwrap_or_default();
            (items.len() >= 2).then_some(items)
        },
    )
    .await;
    assert!(certs.iter().all(|c| c["host_id"] == host_id), "{certs:?}");
    eventually(
        LIMIT,
        "the new certificate on disk",
        || a.log(),
        || async {
            let now = std::fs::read_to_string(a.state_dir.join("pull/client.crt")).unwrap();
            (now != first).then_some(())
        },
    )
    .await;
    // It keeps working with the new one.
    let id = queue(&admin, host_id, json!({ "type": "scan", "subsystems": ["system"] })).await;
    assert_eq!(finished(&admin, &id, LIMIT, || a.log()).await["state"], "completed");
    a.stop();

    // Revoke the current certificate: the next request is refused.
    let serial =
        patchdeck_crypto::ca::serial_of(&std::fs::read_to_string(a.state_dir.join("pull/client.crt")).unwrap())
            .unwrap()
            .to_hex();
    let (status, body) =
        admin.post(&format!("/api/v1/certificates/{serial}/revoke"), json!({ "reason": "test" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = raw_checkin(&m, &a, &a.machine_id).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("certificate_revoked")),
        "{body}"
    );
}

/// Scale-out: two replicas on one PostgreSQL. A command queued on replica A reaches an agent
/// long-polling replica B within a second (LISTEN/NOTIFY), and is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_queued_on_one_replica_reaches_an_agent_held_by_another() {
    let m = TestManager::start(Backend::Postgres).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let replica_b = common::Served::serve(m.config.clone()).await;
    let b_url = format!("https://localhost:{}", replica_b.addr.port());
    let token = registration_token(&admin, 1).await;
    // Held for up to 60 s at a time: only a wake-up can deliver a command quickly.
    let mut a = TestAgent::new(&b_url, &m.ca_pem, sandbox(), 30, 60);
    let host_id = a.enroll_ok(&token);
    a.start();
    first_inventory(&admin, host_id, &a).await;
    // Let the agent settle into a held check-in on B.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let id = queue(&admin, host_id, json!({ "type": "scan", "subsystems": ["system"] })).await;
        running_or_done(&admin, &id, &a).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "the command took {took:?} to reach the agent");
        eprintln!("queued on A, running on the agent held by B after {took:?}");
        assert_eq!(finished(&admin, &id, LIMIT, || a.log()).await["state"], "completed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    a.stop();
    replica_b.stop().await;
}

async fn running_or_done(admin: &Client, id: &str, agent: &TestAgent) {
    eventually(
        LIMIT,
        "the command to start",
        || agent.log(),
        || async {
            let (_, body) = admin.get(&format!("/api/v1/commands/{id}")).await;
            matches!(body["state"].as_str(), Some("running" | "completed" | "failed")).then_some(())
        },
    )
    .await;
}

/// Writes an executable shell script.
fn script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// Orchestration through the manager with a real agent on an apt sandbox: an upgrade whose local
// pre-patch hook fails changes nothing and is reported as `pre_hook_failed` with the hook's
// output; a health check fails on a closed port; a reboot with a warning runs the configured
// reboot command (a script standing in for `shutdown`: it records its arguments and "boots"
// by writing a new boot id), and the restarted agent's first check-ins show the new boot id.
both_backends!(hooks_health_checks_and_reboots_through_the_manager, |m: TestManager| async move {
    use std::os::unix::fs::PermissionsExt;

    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let token = registration_token(&admin, 1).await;
    let mut a = agent(&m, 70);
    let host_id = a.enroll_ok(&token);

    let dir = a.dir.path().to_owned();
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(hooks.join("pre-patch.d")).unwrap();
    for d in [&hooks, &hooks.join("pre-patch.d")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    script(&hooks.join("pre-patch.d/10-drain"), "echo \"node busy, not draining $PATCHDECK_PACKAGES\" >&2; exit 2");
    let boot_id = dir.join("boot_id");
    std::fs::write(&boot_id, "11111111-1111-4111-8111-111111111111\n").unwrap();
    let reboot_args = dir.join("reboot-args");
    let reboot = dir.join("reboot");
    script(
        &reboot,
        &format!(
            "printf '%s\\n' \"$@\" > {args}\necho 22222222-2222-4222-8222-222222222222 > {boot}",
            args = reboot_args.display(),
            boot = boot_id.display()
        ),
    );
    let unit = dir.join("is-active");
    script(&unit, "echo inactive; exit 3");
    let mut config = std::fs::read_to_string(&a.config).unwrap();
    config.push_str(&format!(
        "hooks:\n  dir: {hooks}\n  timeout_secs: 30\n\
         health:\n  unit_command: [{unit}]\n\
         reboot:\n  command: [{reboot}, now]\n  delayed_command: [{reboot}, \"+{{minutes}}\"]\n  \
         boot_id_path: {boot}\n",
        hooks = hooks.display(),
        unit = unit.display(),
        reboot = reboot.display(),
        boot = boot_id.display(),
    ));
    std::fs::write(&a.config, config).unwrap();
    a.start();
    eventually(
        LIMIT,
        "the host online with its boot id",
        || a.log(),
        || async {
            let h = host(&admin, host_id).await;
            (h["status"] == "online" && h["boot_id"] == "11111111-1111-4111-8111-111111111111").then_some(())
        },
    )
    .await;

    // The pre-hook refuses: nothing changes, the command fails with the hook's words.
    let upgrade = json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": ["hello=1.1-1"] } });
    let id = queue(&admin, host_id, upgrade).await;
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(
        (done["state"].as_str(), done["error_code"].as_str()),
        (Some("failed"), Some("pre_hook_failed")),
        "{done}"
    );
    let message = done["error_message"].as_str().unwrap();
    assert!(message.contains("10-drain") && message.contains("node busy, not draining hello"), "{done}");
    let output = done["output"].as_str().unwrap();
    assert!(output.contains("[pre-patch 10-drain] node busy, not draining hello"), "{output}");
    assert_eq!(done["changes"], json!([]), "{done}");
    assert_eq!(a.sandbox.version_of("hello").as_deref(), Some("1.0-1"));

    // A health check: a port nobody listens on, and a unit the stand-in says is inactive.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let check = json!({ "type": "health_check", "units": ["nginx"],
                        "probes": [{ "type": "tcp", "address": closed, "timeout_secs": 5 }] });
    let id = queue(&admin, host_id, check).await;
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(
        (done["state"].as_str(), done["error_code"].as_str(), done["kind"].as_str()),
        (Some("failed"), Some("health_check_failed"), Some("health_check")),
        "{done}"
    );
    let output = done["output"].as_str().unwrap();
    assert!(
        output.contains(&format!("FAIL tcp {closed}")) && output.contains("FAIL unit nginx.service: inactive"),
        "{output}"
    );
    // The manager checks what it queues.
    let (status, body) = admin
        .post(&format!("/api/v1/hosts/{host_id}/commands"), json!({ "type": "health_check", "units": ["-x"] }))
        .await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("units[0]")));

    // A reboot with a warning for logged-in users.
    let reboot_cmd = json!({ "type": "reboot", "delay_secs": 60, "message": "Patching: rebooting in 1 minute" });
    let id = queue(&admin, host_id, reboot_cmd).await;
    let done = finished(&admin, &id, LIMIT, || a.log()).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(std::fs::read_to_string(&reboot_args).unwrap(), "+1\nPatching: rebooting in 1 minute\n");
    // The host "reboots": the agent stops and starts again, and reports the new boot id.
    a.stop();
    a.start();
    let h = eventually(
        LIMIT,
        "the new boot id",
        || a.log(),
        || async {
            let h = host(&admin, host_id).await;
            (h["boot_id"] == "22222222-2222-4222-8222-222222222222").then_some(h)
        },
    )
    .await;
    assert!(h["kernel"].as_str().is_some_and(|k| !k.is_empty()), "{h}");
    a.stop();
});
