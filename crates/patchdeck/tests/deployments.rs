//! Deployments end to end: a real manager (its job worker running the engine) and real
//! `patchdeck-agent` processes on apt sandboxes — plans frozen from the scan, dry-run previews,
//! rings with a health-check failure that rolls a canary back and halts the rollout, approval,
//! maintenance windows, retries, cancel and rollback, the workers view, and the API's checks.

mod common;

use std::time::Duration;

use common::agents::{eventually, registration_token, TestAgent};
use common::{invalid_field, new_group, token_user, Backend, Client, TestManager};
use jiff::SignedDuration;
use patchdeck_store::Role;
use patchdeck_testkit::AptSandbox;
use reqwest::StatusCode;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(90);

fn agent(m: &TestManager, seed: u32) -> TestAgent {
    let sandbox = AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1"]).build();
    TestAgent::new(&m.base, &m.ca_pem, sandbox, seed, 20)
}

/// Enrolls and starts `count` agents and waits for each one's first inventory.
async fn fleet(m: &TestManager, admin: &Client, seeds: std::ops::Range<u32>) -> Vec<(TestAgent, i64)> {
    let token = registration_token(admin, 10).await;
    let mut agents = Vec::new();
    for seed in seeds {
        let mut a = agent(m, seed);
        let id = a.enroll_ok(&token);
        a.start();
        agents.push((a, id));
    }
    for (a, id) in &agents {
        eventually(
            LIMIT,
            "the first inventory",
            || a.log(),
            || async {
                let (_, body) = admin.get(&format!("/api/v1/hosts/{id}/updates")).await;
                (body["total"].as_u64().unwrap_or(0) >= 2).then_some(())
            },
        )
        .await;
    }
    agents
}

async fn deployment(client: &Client, id: i64) -> Value {
    let (status, body) = client.get(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn deployment_hosts(client: &Client, id: i64) -> Vec<Value> {
    let (status, body) = client.get(&format!("/api/v1/deployments/{id}/hosts?limit=100")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

fn host_row(hosts: &[Value], host: i64) -> Value {
    hosts.iter().find(|h| h["host_id"] == host).cloned().unwrap_or_else(|| panic!("host {host} in {hosts:?}"))
}

/// Waits for the deployment to reach `status`, moving the manager's clock on by `tick` each
/// round (timers: soak, backoff, splay) — `tick` zero leaves the clock alone.
async fn until_status(
    m: &TestManager,
    client: &Client,
    id: i64,
    status: &str,
    tick: SignedDuration,
    logs: impl Fn() -> String,
) -> Value {
    eventually(LIMIT, &format!("deployment {id} to be {status}"), logs, || async {
        if !tick.is_zero() {
            m.advance(tick);
            m.state.job_wake().wake();
        }
        let body = deployment(client, id).await;
        (body["status"] == status).then_some(body)
    })
    .await
}

fn create_body(name: &str, hosts: &[i64], extra: Value) -> Value {
    let mut body = json!({ "name": name, "target": { "host_ids": hosts }, "selection": { "type": "security" }, "schedule": "now", "reboot_policy": "never" });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn audit_actions(admin: &Client, action: &str) -> Vec<Value> {
    let (status, body) = admin.get(&format!("/api/v1/audit?action={action}&limit=200")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Three hosts, two rings: the canary group's host installs the planned version, fails its
/// health check (a closed port), is rolled back to the version it had, and the rollout halts
/// before the other hosts are touched. Once the cause is fixed, a retry patches the canary, its
/// ring soaks, the other hosts follow, and the whole deployment is then rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_canary_failing_its_health_check_is_rolled_back_and_halts_the_rollout() {
    let m = TestManager::start(Backend::Sqlite).await;
    let (admin, _) = token_user(&m, "root2", Role::Admin).await;
    let agents = fleet(&m, &admin, 40..43).await;
    let logs = || agents.iter().map(|(a, _)| a.log()).collect::<Vec<_>>().join("\n---\n");
    let ids: Vec<i64> = agents.iter().map(|(_, id)| *id).collect();
    let canary = new_group(&admin, "canary").await;
    let (status, body) = admin.put(&format!("/api/v1/groups/{canary}/hosts/{}", ids[0]), json!({})).await;
    assert!(status.is_success(), "{body}");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (status, body) = admin
        .put(
            &format!("/api/v1/groups/{canary}/policy"),
            json!({ "require_approval": false, "health_units": [],
                    "health_probes": [{ "type": "tcp", "address": closed.to_string(), "timeout_secs": 2 }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, created) = admin
        .post(
            "/api/v1/deployments",
            create_body(
                "security, canary first",
                &ids,
                json!({
                    "rollback_on_failure": true,
                    "rings": [
                        { "name": "canary", "group_id": canary, "success_threshold": 100, "soak_minutes": 30 },
                        { "name": "rest" }
                    ]
                }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let dep = created["id"].as_i64().unwrap();
    assert_eq!(created["status"], "planning");
    assert_eq!(created["rings"].as_array().unwrap().len(), 2);

    // The plan is frozen: exactly other=1.2-1 on every host, previewed by a dry run.
    let hosts = deployment_hosts(&admin, dep).await;
    for row in &hosts {
        assert_eq!(row["plan"], json!([{ "name": "other", "arch": "all", "from": "1.0-1", "to": "1.2-1" }]), "{row}");
    }
    assert_eq!(host_row(&hosts, ids[0])["ring"], 0);
    assert_eq!(host_row(&hosts, ids[1])["ring"], 1);

    let halted = until_status(&m, &admin, dep, "halted", SignedDuration::ZERO, logs).await;
    assert!(halted["reason"].as_str().unwrap().contains("canary"), "{halted}");
    assert_eq!(halted["rings"][0]["group_id"], canary, "{halted}");
    assert_eq!(halted["rings"][0]["hosts"], json!({ "rolled_back": 1 }), "{halted}");
    assert_eq!(halted["rings"][1]["hosts"], json!({ "queued": 2 }), "{halted}");
    let (_, list) = admin.get("/api/v1/deployments?status=halted").await;
    assert_eq!((list["total"].as_u64(), list["items"][0]["total_hosts"].as_u64()), (Some(1), Some(3)), "{list}");
    let hosts = deployment_hosts(&admin, dep).await;
    let first = host_row(&hosts, ids[0]);
    assert_eq!(first["state"], "rolled_back", "{first}");
    assert_eq!(first["error_code"], "health_check_failed", "{first}");
    let preview = &first["preview"];
    assert_eq!(preview["available"], true, "{preview}");
    assert_eq!(preview["upgrades"][0]["name"], "other", "{preview}");
    assert!(
        first["apply_command"].is_string()
            && first["health_command"].is_string()
            && first["rollback_command"].is_string()
    );
    // Installed, then rolled back to what it had.
    assert_eq!(agents[0].0.sandbox.version_of("other").as_deref(), Some("1.0-1"));
    let (_, apply) = admin.get(&format!("/api/v1/commands/{}", first["apply_command"].as_str().unwrap())).await;
    assert_eq!(apply["state"], "completed", "{apply}");
    // The later ring never started.
    for (a, id) in &agents[1..] {
        assert_eq!(host_row(&hosts, *id)["state"], "queued");
        assert_eq!(a.sandbox.version_of("other").as_deref(), Some("1.0-1"));
    }
    assert!(!audit_actions(&admin, "deployment.create").await.is_empty());
    let statuses = audit_actions(&admin, "deployment.status").await;
    assert!(statuses.iter().any(|e| e["details"]["to"] == "halted"), "{statuses:?}");

    // The cause is fixed (the probe goes) and the deployment retried: the canary patches
    // again, its ring now reaches its threshold and the rollout goes on to the other hosts.
    let (status, body) =
        admin.put(&format!("/api/v1/groups/{canary}/policy"), json!({ "require_approval": false })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin.post(&format!("/api/v1/deployments/{dep}/retry"), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("running")), "{body}");
    // The canary's ring soaks for 30 minutes (of the manager's clock) before the rest start.
    eventually(LIMIT, "the canary patched and soaking", logs, || async {
        let d = deployment(&admin, dep).await;
        (d["rings"][0]["hosts"] == json!({ "succeeded": 1 })).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let soaking = deployment(&admin, dep).await;
    assert_eq!(
        (soaking["current_ring"].as_u64(), soaking["rings"][1]["hosts"].clone()),
        (Some(0), json!({ "queued": 2 })),
        "{soaking}"
    );
    let done = until_status(&m, &admin, dep, "succeeded", SignedDuration::from_mins(2), logs).await;
    assert_eq!(done["hosts"], json!({ "succeeded": 3 }), "{done}");
    assert_eq!(done["current_ring"], 1, "{done}");
    assert_eq!(done["rings"][0]["hosts"], json!({ "succeeded": 1 }), "{done}");
    for (a, _) in &agents {
        assert_eq!(a.sandbox.version_of("other").as_deref(), Some("1.2-1"));
    }
    assert_eq!(audit_actions(&admin, "deployment.retry").await[0]["details"]["hosts"], 1);

    // Rolled back as a whole: every host returns to 1.0-1.
    let (status, body) = admin.post(&format!("/api/v1/deployments/{dep}/rollback"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rolled = until_status(&m, &admin, dep, "rolled_back", SignedDuration::ZERO, logs).await;
    assert_eq!(rolled["hosts"], json!({ "rolled_back": 3 }), "{rolled}");
    for (a, _) in &agents {
        assert_eq!(a.sandbox.version_of("other").as_deref(), Some("1.0-1"));
    }
    assert_eq!(audit_actions(&admin, "deployment.rollback").await.len(), 1);
    let dep2 = dep;
    // A final deployment cannot be approved or retried.
    let (status, _) = admin.post(&format!("/api/v1/deployments/{dep2}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = admin.post(&format!("/api/v1/deployments/{dep2}/retry"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The workers view: this manager's worker, alive (its next heartbeat, 10 s apart, catches
    // up with the clock the test moved), with runs.
    let workers = eventually(LIMIT, "a healthy worker", String::new, || async {
        let (status, workers) = admin.get("/api/v1/workers").await;
        assert_eq!(status, StatusCode::OK, "{workers}");
        (workers["healthy"] == 1).then_some(workers)
    })
    .await;
    assert!(workers["workers"][0]["jobs_run"].as_u64().is_some(), "{workers}");
    for (mut a, _) in agents {
        a.stop();
    }
}

/// With approval required, a plan waits; its creator cannot approve it, a second operator can.
/// A deployment for a window waits for the host's window (and its splay), then runs inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approval_and_maintenance_windows_gate_a_deployment() {
    let m = TestManager::start(Backend::Postgres).await;
    let (admin, _) = token_user(&m, "root2", Role::Admin).await;
    let agents = fleet(&m, &admin, 50..52).await;
    let logs = || agents.iter().map(|(a, _)| a.log()).collect::<Vec<_>>().join("\n---\n");
    let ids: Vec<i64> = agents.iter().map(|(_, id)| *id).collect();
    let (status, body) = admin.patch("/api/v1/settings", json!({ "deployments_require_approval": true })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (alice, _) = token_user(&m, "alice", Role::Operator).await;
    let (bob, _) = token_user(&m, "bob", Role::Operator).await;

    // A daily window around now for the first host; none for the second.
    let now = m.state.now().to_zoned(jiff::tz::TimeZone::UTC);
    let start = now.time().saturating_sub(SignedDuration::from_mins(30));
    let (status, body) = admin
        .post(
            "/api/v1/maintenance-windows",
            json!({ "name": "nightly", "host_id": ids[0], "recurrence": { "kind": "daily" },
                    "start_time": start.strftime("%H:%M").to_string(), "duration_minutes": 240, "time_zone": "UTC" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, created) = alice
        .post(
            "/api/v1/deployments",
            create_body(
                "in the window",
                &ids,
                json!({ "schedule": "window", "selection": { "type": "packages", "packages": ["hello"] } }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let dep = created["id"].as_i64().unwrap();
    assert_eq!(created["requires_approval"], true);
    until_status(&m, &alice, dep, "awaiting_approval", SignedDuration::ZERO, logs).await;
    let (status, body) = alice.post(&format!("/api/v1/deployments/{dep}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(audit_actions(&admin, "deployment.approve").await[0]["outcome"], "denied");
    let (status, body) = bob.post(&format!("/api/v1/deployments/{dep}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "running");
    assert!(body["approved_by"].as_i64().is_some(), "{body}");

    // The host without a window waits and says why; the other runs once its splay is reached
    // (the clock moves a minute a round).
    eventually(LIMIT, "the first host patched", logs, || async {
        m.advance(SignedDuration::from_mins(1));
        m.state.job_wake().wake();
        let hosts = deployment_hosts(&alice, dep).await;
        (host_row(&hosts, ids[0])["state"] == "succeeded").then_some(())
    })
    .await;
    assert_eq!(agents[0].0.sandbox.version_of("hello").as_deref(), Some("1.1-1"));
    let hosts = deployment_hosts(&alice, dep).await;
    let waiting = host_row(&hosts, ids[1]);
    assert_eq!(waiting["state"], "waiting_for_window", "{waiting}");
    assert!(waiting["error_message"].as_str().unwrap().contains("no maintenance window"), "{waiting}");
    assert_eq!(agents[1].0.sandbox.version_of("hello").as_deref(), Some("1.0-1"));
    // The running deployment is still running (one host waits); cancel ends it.
    let (status, body) = bob.post(&format!("/api/v1/deployments/{dep}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually(LIMIT, "the waiting host cancelled", logs, || async {
        let hosts = deployment_hosts(&alice, dep).await;
        (host_row(&hosts, ids[1])["state"] == "cancelled").then_some(())
    })
    .await;
    for (mut a, _) in agents {
        a.stop();
    }
}

fn script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Points the agent's hooks, boot id and reboot command at its test directory: the reboot
/// command is a script standing in for `shutdown` that records its arguments and "boots" by
/// writing a new boot id. With `refuse`, a pre-patch hook says no. Returns the reboot record.
fn orchestrated(a: &TestAgent, refuse: bool) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = a.dir.path().to_owned();
    let hooks = dir.join("hooks");
    std::fs::create_dir_all(hooks.join("pre-patch.d")).unwrap();
    for d in [&hooks, &hooks.join("pre-patch.d")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    if refuse {
        script(&hooks.join("pre-patch.d/10-drain"), "echo 'replica lag too high' >&2; exit 1");
    }
    let boot_id = dir.join("boot_id");
    std::fs::write(&boot_id, "11111111-1111-4111-8111-111111111111\n").unwrap();
    let record = dir.join("reboot-args");
    let reboot = dir.join("reboot");
    script(
        &reboot,
        &format!(
            "printf '%s\\n' \"$@\" > {record}\necho 22222222-2222-4222-8222-222222222222 > {boot}",
            record = record.display(),
            boot = boot_id.display()
        ),
    );
    let mut config = std::fs::read_to_string(&a.config).unwrap();
    config.push_str(&format!(
        "hooks:\n  dir: {hooks}\n  timeout_secs: 30\n\
         reboot:\n  command: [{reboot}, now]\n  delayed_command: [{reboot}, \"+{{minutes}}\"]\n  \
         boot_id_path: {boot}\n",
        hooks = hooks.display(),
        reboot = reboot.display(),
        boot = boot_id.display(),
    ));
    std::fs::write(&a.config, config).unwrap();
    record
}

/// `reboot_policy: always`: the host installs, is told to reboot with a warning, comes back with
/// a new boot id and succeeds; a host whose pre-patch hook refuses is skipped untouched, and the
/// deployment still succeeds (a finished notification is queued for the rule that wants it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reboot_flow_and_a_refusing_pre_hook() {
    let m = TestManager::start(Backend::Sqlite).await;
    let (admin, _) = token_user(&m, "root2", Role::Admin).await;
    let token = registration_token(&admin, 2).await;
    let mut a = agent(&m, 60);
    let mut b = agent(&m, 61);
    let ha = a.enroll_ok(&token);
    let hb = b.enroll_ok(&token);
    let reboot_record = orchestrated(&a, false);
    orchestrated(&b, true);
    a.start();
    b.start();
    for (agent, id) in [(&a, ha), (&b, hb)] {
        eventually(
            LIMIT,
            "the first inventory and boot id",
            || agent.log(),
            || async {
                let (_, h) = admin.get(&format!("/api/v1/hosts/{id}")).await;
                let (_, u) = admin.get(&format!("/api/v1/hosts/{id}/updates")).await;
                (h["boot_id"] == "11111111-1111-4111-8111-111111111111" && u["total"].as_u64() >= Some(2)).then_some(())
            },
        )
        .await;
    }
    let log_files = [a.dir.path().join("agent.log"), b.dir.path().join("agent.log")];
    let logs =
        || log_files.iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect::<Vec<_>>().join("\n---\n");
    // Someone wants to know when deployments finish (a receiver that is not there: the delivery
    // is queued and retried, which is all this test looks at).
    let (status, channel) = admin
        .post(
            "/api/v1/notification-channels",
            json!({ "name": "ops", "kind": "webhook", "secret": "s3cret-s3cret-s3cret", "settings": { "url": "http://127.0.0.1:9/hook", "format": "generic" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{channel}");
    let (status, rule) = admin
        .post(
            "/api/v1/notification-rules",
            json!({ "name": "deployments", "events": ["deployment.finished", "deployment.failed"], "channel_id": channel["id"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");

    let body = create_body(
        "hello with a reboot",
        &[ha, hb],
        json!({ "selection": { "type": "packages", "packages": ["hello"] }, "reboot_policy": "always", "reboot_delay_secs": 60 }),
    );
    let (status, created) = admin.post("/api/v1/deployments", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let dep = created["id"].as_i64().unwrap();

    // Host A asks for its reboot (with the warning); the agent "reboots" and comes back.
    eventually(LIMIT, "host A rebooting", logs, || async {
        let hosts = deployment_hosts(&admin, dep).await;
        (host_row(&hosts, ha)["state"] == "rebooting" && reboot_record.exists()).then_some(())
    })
    .await;
    let args = std::fs::read_to_string(&reboot_record).unwrap();
    assert!(args.starts_with("+1\n") && args.contains("hello with a reboot"), "{args}");
    a.stop();
    a.start();
    // The engine looks again every 10 s of the manager's clock.
    let done = until_status(&m, &admin, dep, "succeeded", SignedDuration::from_secs(11), logs).await;
    assert_eq!((done["hosts"]["succeeded"].as_u64(), done["hosts"]["skipped"].as_u64()), (Some(1), Some(1)), "{done}");
    let hosts = deployment_hosts(&admin, dep).await;
    assert!(host_row(&hosts, ha)["reboot_command"].is_string());
    assert_eq!(a.sandbox.version_of("hello").as_deref(), Some("1.1-1"));
    let refused = host_row(&hosts, hb);
    assert_eq!(refused["error_code"], "pre_hook_failed", "{refused}");
    assert!(refused["error_message"].as_str().unwrap().contains("replica lag too high"), "{refused}");
    assert_eq!(b.sandbox.version_of("hello").as_deref(), Some("1.0-1"));
    let (_, h) = admin.get(&format!("/api/v1/hosts/{ha}")).await;
    assert_eq!(h["boot_id"], "22222222-2222-4222-8222-222222222222");
    let (_, deliveries) = admin.get("/api/v1/notification-deliveries").await;
    let finished: Vec<&Value> =
        deliveries["items"].as_array().unwrap().iter().filter(|d| d["event"] == "deployment.finished").collect();
    assert_eq!(finished.len(), 1, "{deliveries}");
    assert_eq!(finished[0]["payload"]["data"]["deployment_id"], dep, "{deliveries}");
    a.stop();
    b.stop();
}

/// What the API refuses, and who may do what.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_api_validates_and_authorises() {
    let m = TestManager::start(Backend::Sqlite).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (viewer, viewer_user) = m.signed_in("vera", Role::Viewer).await;
    let (operator, _) = m.signed_in("otto", Role::Operator).await;
    let host = admin.post("/api/v1/hosts", json!({ "address": "192.0.2.10" })).await.1["id"].as_i64().unwrap();
    let group = new_group(&admin, "web").await;
    let (status, body) = admin.put(&format!("/api/v1/groups/{group}/hosts/{host}"), json!({})).await;
    assert!(status.is_success(), "{body}");

    let cases = [
        (json!({ "name": "", "target": { "host_ids": [host] }, "selection": { "type": "all" } }), "name"),
        (json!({ "name": "x", "target": {}, "selection": { "type": "all" } }), "target"),
        (
            json!({ "name": "x", "target": { "host_ids": [99999] }, "selection": { "type": "all" } }),
            "target.host_ids[0]",
        ),
        (
            json!({ "name": "x", "target": { "host_ids": [host] }, "selection": { "type": "all" }, "schedule": "later" }),
            "schedule",
        ),
        (
            json!({ "name": "x", "target": { "host_ids": [host] }, "selection": { "type": "all" }, "reboot_policy": "maybe" }),
            "reboot_policy",
        ),
        (
            json!({ "name": "x", "target": { "host_ids": [host] }, "selection": { "type": "packages", "packages": [] } }),
            "selection.packages",
        ),
        (
            json!({ "name": "x", "target": { "host_ids": [host] }, "selection": { "type": "packages", "packages": ["a=1"] } }),
            "selection.packages[0]",
        ),
        (
            json!({ "name": "x", "target": { "host_ids": [host] }, "selection": { "type": "all" }, "reboot_delay_secs": 100000 }),
            "reboot_delay_secs",
        ),
        (
            json!({ "name": "x", "target": { "host_ids": [host] }, "selection": { "type": "all" }, "rings": [{ "percent": 50 }, { "percent": 20 }, {}] }),
            "rings[1].percent",
        ),
        (
            json!({ "name": "x", "target": { "host_ids": [host] }, "selection": { "type": "all" }, "rings": [{}, {}] }),
            "rings[0].percent",
        ),
        (
            json!({ "name": "x", "target": { "host_ids": [host] }, "selection": { "type": "all" }, "rings": [{ "percent": 10, "success_threshold": 150 }, {}] }),
            "rings[0].success_threshold",
        ),
        (
            json!({ "name": "x", "target": { "group_ids": [424242] }, "selection": { "type": "all" } }),
            "target.group_ids[0]",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = admin.post("/api/v1/deployments", body.clone()).await;
        assert_eq!(invalid_field(status, &answer), field, "{body} → {answer}");
    }

    // A host with no inventory has nothing to do: skipped at once, and the deployment succeeds.
    let (status, created) = admin.post("/api/v1/deployments", create_body("empty", &[host], json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let dep = created["id"].as_i64().unwrap();
    let done = until_status(&m, &admin, dep, "succeeded", SignedDuration::ZERO, String::new).await;
    assert_eq!(done["hosts"]["skipped"], 1, "{done}");
    let rows = deployment_hosts(&admin, dep).await;
    assert_eq!(rows[0]["error_code"], "nothing_to_do");

    // Viewers read but do not create; operators outside the host's group neither see nor patch it.
    let (status, _) = viewer.get(&format!("/api/v1/deployments/{dep}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the viewer is in no group: the host is outside its scope");
    let (status, _) = admin.put(&format!("/api/v1/groups/{group}/users/{}", viewer_user.id), json!({})).await;
    assert!(status.is_success());
    let (status, seen) = viewer.get(&format!("/api/v1/deployments/{dep}")).await;
    assert_eq!((status, seen["hosts"]["skipped"].as_u64()), (StatusCode::OK, Some(1)), "{seen}");
    let (status, _) = viewer.post("/api/v1/deployments", create_body("v", &[host], json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = operator.get(&format!("/api/v1/deployments/{dep}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = operator.post("/api/v1/deployments", create_body("o", &[host], json!({}))).await;
    assert_eq!(invalid_field(status, &answer), "target.host_ids[0]");
    let (status, list) = operator.get("/api/v1/deployments").await;
    assert_eq!((status, list["total"].as_u64()), (StatusCode::OK, Some(0)), "{list}");
    // Filters are checked.
    let (status, _) = admin.get("/api/v1/deployments?status=sideways").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin.get(&format!("/api/v1/deployments/{dep}/hosts?state=sideways")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Group policy: admins only, checked like the agent checks it.
    let (status, _) =
        operator.put(&format!("/api/v1/groups/{group}/policy"), json!({ "require_approval": true })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) = admin
        .put(
            &format!("/api/v1/groups/{group}/policy"),
            json!({ "require_approval": true, "health_probes": [{ "type": "tcp" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = admin
        .put(
            &format!("/api/v1/groups/{group}/policy"),
            json!({ "require_approval": true, "health_units": ["nginx.service"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, policy) = admin.get(&format!("/api/v1/groups/{group}/policy")).await;
    assert_eq!(policy["health_units"], json!(["nginx.service"]));
    assert_eq!(audit_actions(&admin, "group.policy").await.len(), 1);
    // The group now requires approval for its host.
    let (_, created) = admin.post("/api/v1/deployments", create_body("needs approval", &[host], json!({}))).await;
    assert_eq!(created["requires_approval"], true, "{created}");

    // Workers: admins only; a worker not heard from is reported stale.
    let (status, _) = operator.get("/api/v1/workers").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    m.advance(SignedDuration::from_mins(5));
    let (_, workers) = admin.get("/api/v1/workers").await;
    assert_eq!(workers["workers"][0]["stale"], true, "{workers}");
    assert_eq!(workers["healthy"], 0, "{workers}");
}
