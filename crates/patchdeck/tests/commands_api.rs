//! Commands, the enrollment approval queue, inventories, live events and security events over
//! the REST API, on SQLite and on PostgreSQL: queueing and following commands within the
//! caller's scope, validation, cancel and retry, approval with its audit trail, the fleet package
//! search, and the event stream that sends each user only the events of hosts they may see.

mod common;

use std::time::Duration;

use common::{audit_log, column, id, invalid_field, new_group, token_user, Client, EventStream, TestManager};
use jiff::{SignedDuration, Timestamp};
use patchdeck::audit::{AuditEvent, Outcome};
use patchdeck::hub::{HostChange, LiveEvent};
use patchdeck_proto::agent::{inventory_hash, CommandResult, CommandState, ResultError};
use patchdeck_proto::inventory::{
    AvailableUpdate, BackendKind, InstalledPackage, OsInfo, RebootStatus, ScanReport, SecurityClass, SecurityInfo,
    SCAN_SCHEMA_VERSION,
};
use patchdeck_store::{Approval, HostId, Role, User};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

fn uuid_of(body: &Value) -> String {
    let id = body["id"].as_str().unwrap_or_else(|| panic!("no id in {body}"));
    Uuid::parse_str(id).unwrap_or_else(|_| panic!("id {id} is not a UUID"));
    id.to_owned()
}

/// A pull host (approved, like every host an admin adds), optionally in a group.
async fn pull_host(admin: &Client, fqdn: &str, group: Option<i64>) -> i64 {
    let groups: Vec<i64> = group.into_iter().collect();
    let (status, body) =
        admin.post("/api/v1/hosts", json!({ "fqdn": fqdn, "transport": "pull", "groups": groups })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["approval"], "approved", "{body}");
    id(&body)
}

async fn join(admin: &Client, group: i64, user: &User) {
    let (status, body) = admin.put(&format!("/api/v1/groups/{group}/users/{}", user.id), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

async fn queue(client: &Client, host: i64, command: Value) -> Value {
    let (status, body) = client.post(&format!("/api/v1/hosts/{host}/commands"), command).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn scan() -> Value {
    json!({ "type": "scan", "subsystems": ["packages"] })
}

/// The scope fixture: an operator in group `web`; hosts in `web`, ungrouped, and in `db`.
struct Fleet {
    admin: Client,
    operator: Client,
    olga: User,
    viewer: Client,
    web_group: i64,
    db_group: i64,
    web: i64,
    free: i64,
    db: i64,
}

async fn fleet(m: &TestManager) -> Fleet {
    let (admin, _) = token_user(m, "root", Role::Admin).await;
    let (operator, olga) = token_user(m, "olga", Role::Operator).await;
    let (viewer, vic) = token_user(m, "vic", Role::Viewer).await;
    let web_group = new_group(&admin, "web").await;
    let db_group = new_group(&admin, "db").await;
    join(&admin, web_group, &olga).await;
    join(&admin, web_group, &vic).await;
    let web = pull_host(&admin, "web1.example.com", Some(web_group)).await;
    let free = pull_host(&admin, "free1.example.com", None).await;
    let db = pull_host(&admin, "db1.example.com", Some(db_group)).await;
    Fleet { admin, operator, olga, viewer, web_group, db_group, web, free, db }
}

both_backends!(commands_are_queued_listed_cancelled_and_retried_within_scope, |m: TestManager| async move {
    let f = fleet(&m).await;

    // Queue: the operator on a host of their group.
    let created = queue(&f.operator, f.web, scan()).await;
    let web_scan = uuid_of(&created);
    assert_eq!(created["host_id"], f.web);
    assert_eq!(created["kind"], "scan");
    assert_eq!(created["state"], "pending");
    assert_eq!(created["command"], json!({ "type": "scan", "subsystems": ["packages"], "refresh": false }));
    assert_eq!(created["created_by"], f.olga.id.0);
    assert_eq!(created["retry_of"], Value::Null);
    let created_at: Timestamp = created["created_at"].as_str().unwrap().parse().unwrap();
    let deliver_by: Timestamp = created["deliver_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(deliver_by.duration_since(created_at), SignedDuration::from_secs(3600), "command_delivery_timeout_secs");
    let entry = audit_log(&m).await.into_iter().rev().find(|e| e.action == "command.queue").expect("audited");
    assert_eq!(entry.actor, "user:olga");
    assert_eq!(entry.actor_user_id, Some(f.olga.id));
    assert_eq!(entry.target.as_deref(), Some(format!("command:{web_scan}").as_str()));
    assert_eq!(entry.details["kind"], "scan");
    assert_eq!(entry.details["host"], f.web);

    // ... on an ungrouped host too; another group's host is 404, and viewers may not queue.
    let free_upgrade =
        uuid_of(&queue(&f.operator, f.free, json!({ "type": "upgrade", "selection": { "mode": "security" } })).await);
    let (status, body) = f.operator.post(&format!("/api/v1/hosts/{}/commands", f.db), scan()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = f.viewer.post(&format!("/api/v1/hosts/{}/commands", f.web), scan()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let db_reboot = uuid_of(&queue(&f.admin, f.db, json!({ "type": "reboot", "delay_secs": 300 })).await);

    // Lists: the operator sees the commands of its group and of ungrouped hosts, newest first.
    let (status, list) = f.operator.get("/api/v1/commands").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(column(&list, "id"), [free_upgrade.clone(), web_scan.clone()]);
    assert_eq!(list["total"], 2);
    let (_, list) = f.admin.get("/api/v1/commands").await;
    assert_eq!(column(&list, "id"), [db_reboot.clone(), free_upgrade.clone(), web_scan.clone()]);
    let (_, list) = f.viewer.get("/api/v1/commands?kind=upgrade").await;
    assert_eq!(column(&list, "id"), [free_upgrade.as_str()]);
    let (_, list) = f.operator.get(&format!("/api/v1/commands?host={}", f.db)).await;
    assert_eq!(list["total"], 0, "{list}");
    let (_, list) = f.admin.get(&format!("/api/v1/commands?host={}&state=pending", f.db)).await;
    assert_eq!(column(&list, "id"), [db_reboot.as_str()]);
    let (status, list) = f.operator.get(&format!("/api/v1/hosts/{}/commands", f.web)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(column(&list, "id"), [web_scan.as_str()]);
    let (status, _) = f.operator.get(&format!("/api/v1/hosts/{}/commands", f.db)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = f.admin.get("/api/v1/commands?state=done").await;
    assert_eq!(invalid_field(status, &body), "state");
    let (status, body) = f.admin.get("/api/v1/commands?kind=dance").await;
    assert_eq!(invalid_field(status, &body), "kind");

    // One command: another group's host's command is 404 for every verb.
    let (status, body) = f.viewer.get(&format!("/api/v1/commands/{web_scan}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], web_scan.as_str());
    for (method, path) in [
        (Method::GET, format!("/api/v1/commands/{db_reboot}")),
        (Method::POST, format!("/api/v1/commands/{db_reboot}/cancel")),
        (Method::POST, format!("/api/v1/commands/{db_reboot}/retry")),
        (Method::GET, format!("/api/v1/commands/{}", Uuid::new_v4())),
    ] {
        let (status, body) = f.operator.send(method.clone(), &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, body) = f.admin.get("/api/v1/commands/not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Cancel: only while pending.
    let (status, cancelled) = f.operator.post(&format!("/api/v1/commands/{web_scan}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    assert!(cancelled["finished_at"].is_string(), "{cancelled}");
    let (status, body) = f.operator.post(&format!("/api/v1/commands/{web_scan}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let cancels: Vec<_> = audit_log(&m).await.into_iter().filter(|e| e.action == "command.cancel").collect();
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].target.as_deref(), Some(format!("command:{web_scan}").as_str()));
    let (status, body) = f.viewer.post(&format!("/api/v1/commands/{free_upgrade}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // A delivered command can no longer be cancelled; a failed one can be retried.
    let store = m.state.store();
    let claimed = store.claim_commands(HostId(f.free), m.state.now(), 20).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let (status, body) = f.operator.post(&format!("/api/v1/commands/{free_upgrade}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = f.operator.post(&format!("/api/v1/commands/{free_upgrade}/retry"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a sent command cannot be retried: {body}");
    let failure = CommandResult {
        command_id: Uuid::parse_str(&free_upgrade).unwrap(),
        state: CommandState::Failed,
        at: m.state.now(),
        job_id: Some(Uuid::new_v4()),
        error: Some(ResultError { code: "LOCKED".into(), message: "dpkg is locked".into() }),
        output: "E: Could not get lock /var/lib/dpkg/lock-frontend".into(),
        changes: Vec::new(),
        reboot_required: false,
        hooks: Vec::new(),
        checks: Vec::new(),
        preview: None,
    };
    store.apply_command_result(HostId(f.free), &failure, m.state.now()).await.unwrap();
    let (_, failed) = f.operator.get(&format!("/api/v1/commands/{free_upgrade}")).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error_code"], "LOCKED");
    assert_eq!(failed["error_message"], "dpkg is locked");
    assert_eq!(failed["output"], "E: Could not get lock /var/lib/dpkg/lock-frontend");
    assert!(failed["job_id"].is_string() && failed["sent_at"].is_string(), "{failed}");

    for old in [&free_upgrade, &web_scan] {
        let (status, retry) = f.operator.post(&format!("/api/v1/commands/{old}/retry"), json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{retry}");
        assert_eq!(retry["retry_of"], old.as_str());
        assert_eq!(retry["state"], "pending");
        assert_ne!(retry["id"], old.as_str());
        let (_, original) = f.operator.get(&format!("/api/v1/commands/{old}")).await;
        assert_eq!(retry["command"], original["command"]);
        assert_eq!(retry["host_id"], original["host_id"]);
        let entry = audit_log(&m).await.into_iter().rev().find(|e| e.action == "command.retry").expect("audited");
        assert_eq!(entry.target.as_deref(), Some(format!("command:{}", uuid_of(&retry)).as_str()));
        assert_eq!(entry.details["retry_of"], old.as_str());
    }
    let (status, body) = f.admin.post(&format!("/api/v1/commands/{db_reboot}/retry"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "a pending command cannot be retried: {body}");

    // Rollback names a finished command of the same host.
    let (status, body) = f
        .admin
        .post(&format!("/api/v1/hosts/{}/commands", f.web), json!({ "type": "rollback", "command_id": free_upgrade }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "another host's command: {body}");
    let rollback = queue(&f.operator, f.free, json!({ "type": "rollback", "command_id": free_upgrade })).await;
    assert_eq!(rollback["kind"], "rollback");
    m.stop().await;
});

both_backends!(hosts_that_cannot_take_commands_are_refused, |m: TestManager| async move {
    let f = fleet(&m).await;
    let (status, push) = f.admin.post("/api/v1/hosts", json!({ "fqdn": "push1.example.com" })).await;
    assert_eq!(status, StatusCode::CREATED, "{push}");
    // A push host takes what its API can do, but no dry run and no rapid check-in.
    let push = id(&push);
    let dry = json!({ "type": "upgrade", "selection": { "mode": "all" }, "dry_run": true });
    let (status, body) = f.admin.post(&format!("/api/v1/hosts/{push}/commands"), dry).await;
    assert_eq!(status, StatusCode::CONFLICT, "push host dry run: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no dry run"), "{body}");
    let heartbeat = json!({ "type": "heartbeat", "enabled": true });
    let (status, body) = f.admin.post(&format!("/api/v1/hosts/{push}/commands"), heartbeat).await;
    assert_eq!(status, StatusCode::CONFLICT, "push host heartbeat: {body}");
    let check = json!({ "type": "health_check", "probes": [{ "type": "tcp", "address": "127.0.0.1:22" }] });
    let (status, body) = f.admin.post(&format!("/api/v1/hosts/{push}/commands"), check).await;
    assert_eq!(status, StatusCode::CONFLICT, "push host health check: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("no health checks"), "{body}");
    let store = m.state.store();
    store.set_host_approval(HostId(f.free), Approval::Pending, m.state.now()).await.unwrap();
    let (status, body) = f.admin.post(&format!("/api/v1/hosts/{}/commands", f.free), scan()).await;
    assert_eq!(status, StatusCode::CONFLICT, "pending host: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("approval"), "{body}");
    store.set_host_approval(HostId(f.free), Approval::Rejected, m.state.now()).await.unwrap();
    let (status, body) = f.admin.post(&format!("/api/v1/hosts/{}/commands", f.free), scan()).await;
    assert_eq!(status, StatusCode::CONFLICT, "rejected host: {body}");
    let (_, list) = f.admin.get("/api/v1/commands").await;
    assert_eq!(list["total"], 0, "{list}");
    m.stop().await;
});

both_backends!(bad_commands_are_refused_and_queue_nothing, |m: TestManager| async move {
    let f = fleet(&m).await;
    let many: Vec<String> = (0..1001).map(|i| format!("pkg{i}")).collect();
    let path = format!("/api/v1/hosts/{}/commands", f.web);
    for (body, field) in [
        (json!({ "type": "frobnicate" }), "type"),
        (json!({ "subsystems": ["packages"] }), "type"),
        (
            json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": ["openssl"] } }),
            "selection.packages[0]",
        ),
        (
            json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": ["openssl=3.0.13", "bash=5 .2"] } }),
            "selection.packages[1]",
        ),
        (json!({ "type": "upgrade", "selection": { "mode": "packages", "packages": [] } }), "selection.packages"),
        (json!({ "type": "install", "packages": ["--allow-downgrades"] }), "packages[0]"),
        (json!({ "type": "install", "packages": [""] }), "packages[0]"),
        (json!({ "type": "install", "packages": ["a".repeat(600)] }), "packages[0]"),
        (json!({ "type": "install", "packages": many }), "packages"),
        (json!({ "type": "remove", "packages": ["vim", "vim"] }), "packages[1]"),
        (json!({ "type": "reboot", "delay_secs": 86_401 }), "delay_secs"),
        (json!({ "type": "heartbeat", "enabled": true, "interval_secs": 0 }), "interval_secs"),
        (json!({ "type": "heartbeat", "enabled": true, "duration_secs": 200_000 }), "duration_secs"),
        (json!({ "type": "rollback" }), "command_id"),
        (json!({ "type": "scan", "subsystems": [] }), "subsystems"),
        (json!({ "type": "scan", "subsystems": ["packages"], "now": true }), "now"),
    ] {
        let (status, answer) = f.operator.post(&path, body.clone()).await;
        assert_eq!(invalid_field(status, &answer), field, "{body}: {answer}");
    }
    // Fleet requests: one of hosts and group, at most 1000 hosts, and the command checked.
    let hosts: Vec<i64> = (1..=1001).collect();
    for (body, field) in [
        (json!({ "hosts": hosts, "command": scan() }), "hosts"),
        (json!({ "hosts": [], "command": scan() }), "hosts"),
        (json!({ "command": scan() }), "hosts"),
        (json!({ "hosts": [f.web], "group": f.web_group, "command": scan() }), "hosts"),
        (json!({ "hosts": [f.web], "command": { "type": "reboot", "delay_secs": -1 } }), "command"),
        (json!({ "hosts": [f.web], "command": { "type": "install", "packages": ["x y"] } }), "command.packages[0]"),
    ] {
        let (status, answer) = f.operator.post("/api/v1/commands", body.clone()).await;
        assert_eq!(invalid_field(status, &answer), field, "{body}: {answer}");
    }
    let (_, list) = f.admin.get("/api/v1/commands").await;
    assert_eq!(list["total"], 0, "{list}");
    assert!(!audit_log(&m).await.iter().any(|e| e.action == "command.queue"));
    m.stop().await;
});

both_backends!(fleet_commands_address_visible_hosts_or_a_group, |m: TestManager| async move {
    let f = fleet(&m).await;
    let (status, body) = f
        .operator
        .post("/api/v1/commands", json!({ "hosts": [f.web, f.free, f.web], "command": { "type": "refresh_metadata" } }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(column(&json!({ "items": body["commands"] }), "host_id"), [f.web.to_string(), f.free.to_string()]);
    assert_eq!(body["skipped"], json!([]));
    assert_eq!(audit_log(&m).await.iter().filter(|e| e.action == "command.queue").count(), 2);

    // One host out of scope: 404 naming it, and nothing queued.
    let (status, body) =
        f.operator.post("/api/v1/commands", json!({ "hosts": [f.web, f.db], "command": scan() })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["details"]["host_id"], f.db);
    let (_, list) = f.admin.get("/api/v1/commands").await;
    assert_eq!(list["total"], 2, "{list}");

    // A group: its hosts that can take commands; the others are listed as skipped.
    let web2 = pull_host(&f.admin, "web2.example.com", Some(f.web_group)).await;
    m.state.store().set_host_approval(HostId(web2), Approval::Pending, m.state.now()).await.unwrap();
    let (status, body) = f.operator.post("/api/v1/commands", json!({ "group": f.web_group, "command": scan() })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(column(&json!({ "items": body["commands"] }), "host_id"), [f.web.to_string()]);
    assert_eq!(body["skipped"][0]["host_id"], web2, "{body}");
    let (status, body) = f.operator.post("/api/v1/commands", json!({ "group": f.db_group, "command": scan() })).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another group: {body}");
    let (status, body) = f.admin.post("/api/v1/commands", json!({ "group": f.db_group, "command": scan() })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["commands"][0]["host_id"], f.db);
    m.stop().await;
});

both_backends!(enrollments_are_approved_or_rejected_with_an_audit_trail, |m: TestManager| async move {
    let (admin, _) = token_user(&m, "root", Role::Admin).await;
    let (operator, _) = token_user(&m, "olga", Role::Operator).await;
    let store = m.state.store();
    let first = pull_host(&admin, "new1.example.com", None).await;
    let second = pull_host(&admin, "new2.example.com", None).await;
    for host in [first, second] {
        store.set_host_approval(HostId(host), Approval::Pending, m.state.now()).await.unwrap();
    }
    // The second has a certificate (say, from an earlier forced enrollment).
    let (status, bundle) = admin.post(&format!("/api/v1/hosts/{second}/push-bundle"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{bundle}");
    let serial = bundle["serial"].as_str().unwrap().to_owned();

    let (status, queue) = admin.get("/api/v1/enrollments").await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(column(&queue, "id"), [first.to_string(), second.to_string()]);
    assert_eq!(column(&queue, "approval"), ["pending", "pending"]);
    let (_, hosts) = admin.get("/api/v1/hosts").await;
    assert_eq!(hosts["total"], 0, "waiting hosts are not in the host list: {hosts}");
    let (status, body) = operator.get("/api/v1/enrollments").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = operator.post(&format!("/api/v1/enrollments/{first}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let mut events = m.state.hub().subscribe();
    let (status, approved) = admin.post(&format!("/api/v1/enrollments/{first}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["approval"], "approved");
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await.unwrap().unwrap();
    assert!(
        matches!(event, LiveEvent::Host { host_id, change: HostChange::Approval, .. } if host_id == first),
        "{event:?}"
    );
    let (status, body) = admin.post(&format!("/api/v1/enrollments/{first}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (_, hosts) = admin.get("/api/v1/hosts").await;
    assert_eq!(column(&hosts, "id"), [first.to_string()]);

    let (status, rejected) = admin.post(&format!("/api/v1/enrollments/{second}/reject"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["approval"], "rejected");
    let certificate = store.get_certificate_by_serial(&serial).await.unwrap().unwrap();
    assert!(certificate.revoked_at.is_some(), "the rejected host's certificate is revoked");
    let (status, body) = admin.post(&format!("/api/v1/enrollments/{second}/approve"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = admin.post("/api/v1/enrollments/999999/reject", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (_, queue) = admin.get("/api/v1/enrollments").await;
    assert_eq!(queue["total"], 0, "{queue}");
    let (_, refused) = admin.get("/api/v1/enrollments?approval=rejected").await;
    assert_eq!(column(&refused, "id"), [second.to_string()]);
    let (status, body) = admin.get("/api/v1/enrollments?approval=maybe").await;
    assert_eq!(invalid_field(status, &body), "approval");

    let log = audit_log(&m).await;
    let approve = log.iter().find(|e| e.action == "host.approve").expect("approval audited");
    assert_eq!(approve.actor, "user:root");
    assert_eq!(approve.target.as_deref(), Some(format!("host:{first}").as_str()));
    let reject = log.iter().find(|e| e.action == "host.reject").expect("rejection audited");
    assert_eq!(reject.target.as_deref(), Some(format!("host:{second}").as_str()));
    assert_eq!(reject.details["revoked_certificates"], json!([serial]));
    assert_eq!(log.iter().filter(|e| e.action.starts_with("host.approve") || e.action == "host.reject").count(), 2);
    m.stop().await;
});

both_backends!(deleting_a_host_revokes_its_certificates, |m: TestManager| async move {
    let (admin, _) = token_user(&m, "root", Role::Admin).await;
    let host = pull_host(&admin, "gone.example.com", None).await;
    let (status, bundle) = admin.post(&format!("/api/v1/hosts/{host}/push-bundle"), json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{bundle}");
    let serial = bundle["serial"].as_str().unwrap().to_owned();
    let (status, body) = admin.delete(&format!("/api/v1/hosts/{host}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let certificate = m.state.store().get_certificate_by_serial(&serial).await.unwrap().unwrap();
    assert!(certificate.revoked_at.is_some());
    assert_eq!(certificate.revocation_reason.as_deref(), Some("host deleted"));
    let entry = audit_log(&m).await.into_iter().rev().find(|e| e.action == "host.delete").unwrap();
    assert_eq!(entry.details["revoked_certificates"], json!([serial]));
    m.stop().await;
});

/// A scan report with `installed` (name, version) packages and `updates` (name, from, to,
/// security).
fn report(backend: BackendKind, installed: &[(&str, &str)], updates: &[(&str, &str, &str, bool)]) -> ScanReport {
    let arch = if backend == BackendKind::Apt { "amd64" } else { "x86_64" };
    ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at: Timestamp::now(),
        os: OsInfo {
            id: if backend == BackendKind::Apt { "debian".into() } else { "rocky".into() },
            id_like: Vec::new(),
            version_id: Some(if backend == BackendKind::Apt { "12".into() } else { "9.3".into() }),
            pretty_name: None,
            kernel: Some("6.1.0-18-amd64".into()),
            arch: Some("x86_64".into()),
        },
        backend,
        version_format: backend.version_format(),
        last_refresh: None,
        installed: installed
            .iter()
            .map(|(name, version)| InstalledPackage {
                name: (*name).into(),
                version: (*version).into(),
                arch: arch.into(),
                source_package: None,
                source_version: None,
                origin: None,
                installed_at: None,
                size_bytes: None,
                held: false,
            })
            .collect(),
        updates: updates
            .iter()
            .map(|(name, from, to, security)| AvailableUpdate {
                name: (*name).into(),
                arch: arch.into(),
                current_version: (*from).into(),
                candidate_version: (*to).into(),
                repository: Some("bookworm-security".into()),
                security: if *security {
                    SecurityInfo {
                        class: SecurityClass::Security,
                        reason: "candidate comes from suite bookworm-security".into(),
                        advisory_id: Some("DSA-5678-1".into()),
                        severity: Some("high".into()),
                    }
                } else {
                    SecurityInfo::new(SecurityClass::NotSecurity, "not from a security suite")
                },
                cves: if *security { vec!["CVE-2024-0727".into()] } else { Vec::new() },
                reboot_likely: false,
            })
            .collect(),
        reboot: RebootStatus::default(),
    }
}

both_backends!(inventories_are_listed_and_searched_across_formats, |m: TestManager| async move {
    let f = fleet(&m).await;
    let store = m.state.store();
    let now = m.state.now();
    let debian = report(
        BackendKind::Apt,
        &[("openssl", "3.0.11-1~deb12u2"), ("bash", "5.2.15-2+b2"), ("libssl3", "3.0.11-1~deb12u2")],
        &[("openssl", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", true), ("bash", "5.2.15-2+b2", "5.2.15-2+b7", false)],
    );
    let rocky_old = report(BackendKind::Dnf, &[("openssl", "3.0.7-27.el9"), ("bash", "5.1.8-9.el9")], &[]);
    let rocky_new = report(BackendKind::Dnf, &[("openssl", "3.2.2-6.el9")], &[]);
    let debian_fixed = report(BackendKind::Apt, &[("openssl", "3.0.13-1~deb12u1")], &[]);
    let extra = pull_host(&f.admin, "free2.example.com", None).await;
    for (host, report) in [(f.web, &debian), (f.free, &rocky_old), (f.db, &rocky_new), (extra, &debian_fixed)] {
        store.replace_inventory(HostId(host), report, &inventory_hash(report), now).await.unwrap();
    }

    // One host's packages and updates.
    let (status, packages) = f.operator.get(&format!("/api/v1/hosts/{}/packages", f.web)).await;
    assert_eq!(status, StatusCode::OK, "{packages}");
    assert_eq!(column(&packages, "name"), ["bash", "libssl3", "openssl"]);
    assert_eq!(packages["items"][2]["version"], "3.0.11-1~deb12u2");
    let (_, packages) = f.operator.get(&format!("/api/v1/hosts/{}/packages?q=SSL&limit=1", f.web)).await;
    assert_eq!(column(&packages, "name"), ["libssl3"]);
    assert_eq!(packages["total"], 2);
    let (status, _) = f.operator.get(&format!("/api/v1/hosts/{}/packages", f.db)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, updates) = f.viewer.get(&format!("/api/v1/hosts/{}/updates", f.web)).await;
    assert_eq!(status, StatusCode::OK, "{updates}");
    assert_eq!(column(&updates, "name"), ["bash", "openssl"]);
    let (_, updates) = f.viewer.get(&format!("/api/v1/hosts/{}/updates?security_only=true", f.web)).await;
    assert_eq!(column(&updates, "name"), ["openssl"]);
    let update = &updates["items"][0];
    assert_eq!(update["classification"], "security");
    assert_eq!(update["reason"], "candidate comes from suite bookworm-security");
    assert_eq!(update["advisory"], "DSA-5678-1");
    assert_eq!(update["severity"], "high");
    assert_eq!(update["cves"], json!(["CVE-2024-0727"]));
    assert_eq!(update["candidate_version"], "3.0.13-1~deb12u1");
    let (status, body) = f.viewer.get(&format!("/api/v1/hosts/{}/updates?security_only=maybe", f.web)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The host list shows the counts and filters by them.
    let (_, host) = f.admin.get(&format!("/api/v1/hosts/{}", f.web)).await;
    assert_eq!(host["installed_count"], 3, "{host}");
    assert_eq!(host["updates_count"], 2);
    assert_eq!(host["security_updates_count"], 1);
    assert_eq!(host["backend"], "apt");
    let (_, hosts) = f.admin.get("/api/v1/hosts?security_updates=true").await;
    assert_eq!(column(&hosts, "id"), [f.web.to_string()]);
    let (_, hosts) = f.admin.get("/api/v1/hosts?security_updates=false&os=rocky&sort=hostname").await;
    assert_eq!(column(&hosts, "id"), [f.db.to_string(), f.free.to_string()]);
    let (_, hosts) = f.admin.get("/api/v1/hosts?sort=security_updates&order=desc&limit=1").await;
    assert_eq!(column(&hosts, "id"), [f.web.to_string()]);

    // openssl older than 3.0.13, on deb and rpm hosts alike, within the caller's scope.
    let (status, hits) = f.admin.get("/api/v1/packages/search?name=openssl&lt=3.0.13").await;
    assert_eq!(status, StatusCode::OK, "{hits}");
    let mut found: Vec<(String, String)> = column(&hits, "host_id").into_iter().zip(column(&hits, "version")).collect();
    found.sort();
    let mut expected =
        vec![(f.web.to_string(), "3.0.11-1~deb12u2".to_owned()), (f.free.to_string(), "3.0.7-27.el9".to_owned())];
    expected.sort();
    assert_eq!(found, expected, "{hits}");
    assert_eq!(hits["total"], 2);
    let (_, hits) = f.operator.get("/api/v1/packages/search?name=openssl&ge=3.0.13").await;
    assert_eq!(column(&hits, "host_id"), [extra.to_string()], "db1 is outside the operator's scope: {hits}");
    let (_, hits) = f.admin.get("/api/v1/packages/search?name=openssl").await;
    assert_eq!(hits["total"], 4, "{hits}");
    let (status, body) = f.admin.get("/api/v1/packages/search?name=openssl&lt=3&gt=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = f.admin.get("/api/v1/packages/search?name=open%20ssl").await;
    assert_eq!(invalid_field(status, &body), "name");
    let (status, body) = f.admin.get("/api/v1/packages/search?name=openssl&lt=3.0%3B13").await;
    assert_eq!(invalid_field(status, &body), "lt");
    m.stop().await;
});

both_backends!(the_dashboard_counts_the_callers_hosts_and_keeps_a_daily_trend, |m: TestManager| async move {
    let f = fleet(&m).await;
    let store = m.state.store();
    let vulnerable = report(BackendKind::Apt, &[], &[("openssl", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", true)]);
    let clean = report(BackendKind::Apt, &[], &[("bash", "5.2.15-2+b2", "5.2.15-2+b7", false)]);
    for (host, report) in [(f.web, &vulnerable), (f.db, &vulnerable), (f.free, &clean)] {
        store.replace_inventory(HostId(host), report, &inventory_hash(report), m.state.now()).await.unwrap();
    }
    // Yesterday's sample, taken by the hourly upkeep; then the web host is patched.
    patchdeck::server::run_upkeep(&m.state).await;
    m.advance(SignedDuration::from_hours(24));
    store.replace_inventory(HostId(f.web), &clean, &inventory_hash(&clean), m.state.now()).await.unwrap();

    let (status, admin) = f.admin.get("/api/v1/dashboard").await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    assert_eq!(
        admin["hosts"],
        json!({ "total": 3, "pending": 3, "online": 0, "offline": 0, "unreachable": 0, "degraded": 0,
                "reboot_required": 0, "unscanned": 0 })
    );
    assert_eq!(admin["compliance"], json!({ "scanned": 3, "compliant": 2, "percent": 66.7 }));
    assert_eq!(
        admin["security_updates"],
        json!({ "total": 1, "hosts": 1,
                "by_severity": { "critical": 0, "high": 1, "medium": 0, "low": 0, "unspecified": 0 } })
    );
    let trend = admin["trend"].as_array().unwrap();
    assert_eq!(trend.len(), 2, "yesterday's sample and today, live: {trend:?}");
    assert_eq!((&trend[0]["compliant"], &trend[0]["percent"]), (&json!(1), &json!(33.3)));
    assert_eq!((&trend[1]["compliant"], &trend[1]["percent"]), (&json!(2), &json!(66.7)));
    let today = m.state.now().to_zoned(jiff::tz::TimeZone::UTC).date().to_string();
    assert_eq!(trend[1]["day"], today);

    // The operator sees the web host and the ungrouped one, now and in the trend.
    let (_, olga) = f.operator.get("/api/v1/dashboard").await;
    assert_eq!((&olga["hosts"]["total"], &olga["compliance"]["compliant"]), (&json!(2), &json!(2)), "{olga}");
    assert_eq!(olga["security_updates"]["hosts"], 0, "the db host's update is out of scope");
    let trend: Vec<(i64, i64)> = olga["trend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["scanned"].as_i64().unwrap(), d["compliant"].as_i64().unwrap()))
        .collect();
    assert_eq!(trend, [(2, 1), (2, 2)]);

    let (_, one_day) = f.viewer.get("/api/v1/dashboard?days=1").await;
    assert_eq!(one_day["trend"].as_array().unwrap().len(), 1, "only today: {one_day}");
    for bad in ["0", "366", "many"] {
        let (status, body) = f.viewer.get(&format!("/api/v1/dashboard?days={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "days={bad}: {body}");
    }
    let (status, body) = f.viewer.get("/api/v1/dashboard?days=0").await;
    assert_eq!(invalid_field(status, &body), "days");

    // The configuration page's numbers, for admins only.
    let (status, config) = f.admin.get("/api/v1/settings/config").await;
    assert_eq!(status, StatusCode::OK, "{config}");
    let settings = m.state.config();
    assert_eq!(config["agents"]["checkin_interval_secs"], settings.agents.checkin_interval_secs);
    assert_eq!(config["audit"]["retention_days"], settings.audit.retention_days);
    assert_eq!(config["auth"]["lockout_threshold"], settings.auth.lockout_threshold);
    let (status, token) = f
        .admin
        .post("/api/v1/registration-tokens", json!({ "label": "dash", "seats": 1, "expires_in_hours": 1 }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let ca = config["signing"]["ca_fingerprint"].as_str().unwrap();
    assert!(token["install_command"].as_str().unwrap().ends_with(&format!("--ca-fingerprint {ca}")), "{token}");
    assert!(!config["signing"]["command_key_fingerprint"].as_str().unwrap().is_empty());
    assert_eq!(f.operator.get("/api/v1/settings/config").await.0, StatusCode::FORBIDDEN);
    m.stop().await;
});

both_backends!(live_events_reach_only_the_users_who_may_see_the_host, |m: TestManager| async move {
    let f = fleet(&m).await;
    // A signed-in browser session (cookies) for the admin, an API token for the operator.
    let (browser, _) = m.signed_in("ada", Role::Admin).await;
    let mut admin_events = EventStream::open(&browser).await;
    let mut operator_events = EventStream::open(&f.operator).await;
    let (status, _) = m.client().get("/api/v1/events").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A command on a host outside the operator's scope, then one inside it.
    let hidden = uuid_of(&queue(&f.admin, f.db, scan()).await);
    let shown = uuid_of(&queue(&f.admin, f.web, scan()).await);
    admin_events.read_until(&shown).await;
    let seen: Vec<String> =
        admin_events.events("command").iter().map(|e| e["command_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(seen, [hidden.clone(), shown.clone()]);
    let first = &admin_events.events("command")[0];
    assert_eq!(first["type"], "command");
    assert_eq!(first["host_id"], f.db);
    assert_eq!(first["kind"], "scan");
    assert_eq!(first["state"], "pending");

    // Events arrive in order: once the operator has the second, the first was filtered out.
    operator_events.read_until(&shown).await;
    let seen: Vec<String> =
        operator_events.events("command").iter().map(|e| e["command_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(seen, [shown.as_str()], "{}", operator_events.text);
    assert!(!operator_events.text.contains(&hidden));

    // Host events are scoped the same way.
    m.state.hub().publish(LiveEvent::Host { host_id: f.db, status: "online".into(), change: HostChange::Status }).await;
    m.state
        .hub()
        .publish(LiveEvent::Host { host_id: f.free, status: "online".into(), change: HostChange::Status })
        .await;
    operator_events.read_until("event: host").await;
    admin_events.read_until(&format!("\"host_id\":{}", f.free)).await;
    assert_eq!(admin_events.events("host").len(), 2);
    let hosts: Vec<Value> = operator_events.events("host").iter().map(|e| e["host_id"].clone()).collect();
    assert_eq!(hosts, [json!(f.free)]);
    drop(admin_events);
    drop(operator_events);
    m.stop().await;
});

both_backends!(security_events_list_security_actions_newest_first, |m: TestManager| async move {
    let f = fleet(&m).await;
    m.state
        .audit(
            AuditEvent::new("host:7", "security.machine_id_mismatch", Outcome::Denied)
                .target("host:7")
                .details(json!({ "certificate_serial": "0a" })),
        )
        .await;
    // A viewer trying to queue a command: authz.denied.
    let (status, _) = f.viewer.post(&format!("/api/v1/hosts/{}/commands", f.web), scan()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    m.state.audit(AuditEvent::new("anonymous", "security.duplicate_machine_id", Outcome::Denied)).await;
    queue(&f.admin, f.web, scan()).await;

    let (status, events) = f.admin.get("/api/v1/security/events").await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert_eq!(
        column(&events, "action"),
        ["security.duplicate_machine_id", "authz.denied", "security.machine_id_mismatch"]
    );
    assert_eq!(events["total"], 3);
    let (_, page) = f.admin.get("/api/v1/security/events?limit=1&offset=1").await;
    assert_eq!(column(&page, "action"), ["authz.denied"]);
    assert_eq!(page["total"], 3);
    let (_, page) = f.admin.get("/api/v1/security/events?limit=5&offset=3").await;
    assert_eq!(page["items"], json!([]));
    let (status, body) = f.operator.get("/api/v1/security/events").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = f.admin.get("/api/v1/security/events?from=yesterday").await;
    assert_eq!(invalid_field(status, &body), "from");
    m.stop().await;
});
