//! The audit log over the API: listing with filters and paging, chain verification (and what a
//! row edited behind the manager's back does to it), the JSON-lines export, and who may see it.

mod common;

use common::{Client, TestManager, PASSWORD};
use patchdeck::audit::{AuditEvent, Outcome};
use patchdeck_store::{AuditEntry, AuditFilter, Role};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A few state changes through the API, by the admin `root`, and two failed logins.
async fn some_activity(m: &TestManager) -> Client {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    for name in ["u1", "u2", "u3"] {
        let (status, body) =
            admin.post("/api/v1/users", json!({ "username": name, "role": "viewer", "password": PASSWORD })).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(m.client().login("u1", "wrong password!").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(m.client().login("ghost", "wrong password!").await.0, StatusCode::UNAUTHORIZED);
    admin
}

/// Every entry through the API, newest first (one page of up to 500).
async fn everything(admin: &Client) -> Vec<Value> {
    let (status, page) = admin.get("/api/v1/audit?limit=500").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap().clone();
    assert_eq!(page["total"], items.len(), "all on one page");
    items
}

/// The ids of a listing, asserting its total.
async fn ids(admin: &Client, query: &str, total: usize) -> Vec<i64> {
    let (status, page) = admin.get(&format!("/api/v1/audit?{query}")).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    assert_eq!(page["total"], total, "{query}: {page}");
    page["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

fn ids_where(all: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<i64> {
    all.iter().filter(|e| keep(e)).map(|e| e["id"].as_i64().unwrap()).collect()
}

fn field_of(body: &Value) -> &str {
    body["error"]["details"]["field"].as_str().unwrap_or_default()
}

both_backends!(listing_filters_and_pages_newest_first, |m: TestManager| async move {
    let admin = some_activity(&m).await;
    let all = everything(&admin).await;
    let stored = m.state.store().list_audit(&AuditFilter::default()).await.unwrap().total;
    assert_eq!(all.len() as u64, stored);
    let all_ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(all_ids.windows(2).all(|w| w[0] > w[1]), "newest first: {all_ids:?}");
    assert_eq!(all[0]["action"], "auth.login", "the last thing done comes first");
    assert_eq!(all[0]["actor"], "user:ghost");
    assert_eq!(all[0]["outcome"], "failure");
    for key in ["id", "at", "actor", "action", "outcome", "details", "hash", "prev_hash"] {
        assert!(all.iter().all(|e| !e[key].is_null()), "{key} in every entry");
    }

    // Each filter returns exactly the matching entries, in the same order.
    let auth = ids_where(&all, |e| e["action"].as_str().unwrap().starts_with("auth."));
    assert!(auth.len() >= 3, "root's login and two failures: {all:?}");
    assert_eq!(ids(&admin, "action=auth.", auth.len()).await, auth);
    assert_eq!(ids(&admin, "action=AUTH.", 0).await, Vec::<i64>::new(), "the prefix is case-sensitive");
    let failures = ids_where(&all, |e| e["outcome"] == "failure");
    assert_eq!(failures.len(), 2, "{all:?}");
    assert_eq!(ids(&admin, "outcome=failure", 2).await, failures);
    let by_root = ids_where(&all, |e| e["actor"] == "user:root");
    assert!(by_root.len() >= 4, "{all:?}");
    assert_eq!(ids(&admin, "actor=user:root", by_root.len()).await, by_root);
    let (_, page) = admin.get("/api/v1/audit?actor=user%3Aroot&action=user.create").await;
    let targets: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["user:u3", "user:u2", "user:u1"]);
    assert_eq!(ids(&admin, "target=user:u2", 1).await.len(), 1);
    assert_eq!(ids(&admin, "from=2000-01-01T00:00:00Z", all.len()).await, all_ids);
    let later = m.state.now() + jiff::SignedDuration::from_hours(1);
    assert_eq!(ids(&admin, &format!("from={later}"), 0).await, Vec::<i64>::new());
    assert_eq!(ids(&admin, &format!("to={later}"), all.len()).await, all_ids);

    // Paging: consecutive pages make up the whole list; the total stays that of the filter.
    let mut paged = Vec::new();
    for offset in (0..all.len()).step_by(3) {
        let (status, page) = admin.get(&format!("/api/v1/audit?limit=3&offset={offset}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], all.len());
        assert_eq!(page["limit"], 3);
        assert_eq!(page["offset"], offset);
        paged.extend(page["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()));
    }
    assert_eq!(paged, all_ids);
    assert_eq!(ids(&admin, &format!("limit=3&offset={}", all.len()), all.len()).await, Vec::<i64>::new());

    // Bad values are refused, naming the field.
    for (query, field) in [
        ("outcome=maybe", "outcome"),
        ("from=yesterday", "from"),
        ("to=2024-13-01", "to"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
    ] {
        let (status, body) = admin.get(&format!("/api/v1/audit?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(field_of(&body), field, "{query}: {body}");
    }
    let (status, body) = admin.get("/api/v1/audit?acter=user:root").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown filters are not ignored: {body}");
    m.stop().await;
});

both_backends!(verify_finds_an_entry_edited_in_the_database, |m: TestManager| async move {
    let admin = some_activity(&m).await;
    let before = m.state.store().list_audit(&AuditFilter::default()).await.unwrap().total;
    let (status, report) = admin.get("/api/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report, json!({ "status": "intact", "checked": before, "first_broken": null }));

    let total = m.state.store().list_audit(&AuditFilter::default()).await.unwrap().total;
    assert_eq!(total, before + 1, "the check itself is audited");
    let middle = i64::try_from(total / 2).unwrap();
    assert!(middle > 1 && middle < i64::try_from(total).unwrap());
    common::tamper(m.state.config(), &format!("UPDATE audit_log SET action = action || '-edited' WHERE id = {middle}"))
        .await;
    let (status, report) = admin.get("/api/v1/audit/verify").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["status"], "broken", "{report}");
    assert_eq!(report["first_broken"], middle, "{report}");
    assert_eq!(report["checked"], middle - 1, "{report}");
    // The failed check is recorded, and the log can still be read.
    assert_eq!(ids(&admin, "action=audit.verify&outcome=failure", 1).await.len(), 1);
    // Newest first, and the failed check added one more entry.
    let offset = total + 1 - u64::try_from(middle).unwrap();
    let (_, page) = admin.get(&format!("/api/v1/audit?limit=1&offset={offset}")).await;
    let edited = &page["items"][0];
    assert_eq!(edited["id"], middle, "{page}");
    assert!(edited["action"].as_str().unwrap().ends_with("-edited"), "{edited}");
    m.stop().await;
});

both_backends!(export_streams_every_entry_as_json_lines, |m: TestManager| async move {
    let admin = some_activity(&m).await;
    // More than one batch of the stream (1000 entries).
    for n in 0..1000 {
        let event = AuditEvent::new("system", "test.bulk", Outcome::Success).details(json!({ "n": n }));
        m.state.store().append_audit(&event.into_entry(m.state.now())).await.unwrap();
    }
    let response = admin.raw(Method::GET, "/api/v1/audit/export", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(header("content-type"), "application/x-ndjson");
    assert!(header("content-disposition").starts_with("attachment"), "{}", header("content-disposition"));
    let text = response.text().await.unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<Value> =
        text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect();

    let mut stored = Vec::new();
    loop {
        let batch = m.state.store().audit_entries_after(stored.last().map(|e: &AuditEntry| e.id), 1000).await.unwrap();
        if batch.is_empty() {
            break;
        }
        stored.extend(batch);
    }
    assert!(stored.len() > 1000, "{}", stored.len());
    assert_eq!(lines.len(), stored.len(), "every entry, once");
    let mut prev_hash = "0".repeat(64);
    for (line, entry) in lines.iter().zip(&stored) {
        assert_eq!(line["id"], entry.id.0, "oldest first: {line}");
        assert_eq!(line["action"], entry.action.as_str());
        assert_eq!(line["actor"], entry.actor.as_str());
        assert_eq!(line["outcome"], entry.outcome.as_str());
        line["at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
        assert_eq!(line["prev_hash"], prev_hash.as_str(), "{line}");
        let hash = line["hash"].as_str().unwrap();
        assert_eq!(hash, data_encoding::HEXLOWER.encode(&entry.computed_hash()), "checkable offline: {line}");
        prev_hash = hash.to_owned();
    }
    // The export itself is audited (before it streams, so it is in it).
    let last = lines.last().unwrap();
    assert_eq!(last["action"], "audit.export", "{last}");
    assert_eq!(last["actor"], "user:root", "{last}");
    assert_eq!(ids(&admin, "action=audit.export", 1).await.len(), 1);
    m.stop().await;
});

both_backends!(only_admins_see_the_audit_log, |m: TestManager| async move {
    let (viewer, _) = m.signed_in("vic", Role::Viewer).await;
    let (operator, _) = m.signed_in("otto", Role::Operator).await;
    for client in [&viewer, &operator] {
        for path in ["/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/export"] {
            let (status, body) = client.get(path).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
            assert_eq!(body["error"]["code"], "forbidden", "{path}: {body}");
        }
    }
    assert_eq!(m.client().get("/api/v1/audit").await.0, StatusCode::UNAUTHORIZED);
    let denied = m
        .state
        .store()
        .list_audit(&AuditFilter { action_prefix: Some("authz.denied".into()), ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(denied.total, 6, "{:?}", denied.items);
    let exports = m
        .state
        .store()
        .list_audit(&AuditFilter { action_prefix: Some("audit.".into()), ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(exports.total, 0, "nothing was verified or exported");
    m.stop().await;
});
