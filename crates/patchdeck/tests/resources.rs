//! Groups, hosts, registration tokens and settings over the REST API, on SQLite and on
//! PostgreSQL: CRUD, validation, the operator scope, and the audit trail of every change.

mod common;

use common::{audit_log, column, id, invalid_field, new_group, token_user, Client, TestManager};
use jiff::SignedDuration;
use patchdeck_crypto::token::OpaqueToken;
use patchdeck_proto::inventory::{BackendKind, OsInfo, RebootStatus, ScanReport, SCAN_SCHEMA_VERSION};
use patchdeck_store::{HostId, HostStatus, Role, TakeSeatError};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// How many audit entries have this action and outcome `success`.
async fn successes(m: &TestManager, action: &str) -> usize {
    audit_log(m).await.iter().filter(|e| e.action == action && e.outcome.as_str() == "success").count()
}

async fn new_host(client: &Client, body: Value) -> Value {
    let (status, created) = client.post("/api/v1/hosts", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

both_backends!(groups_crud_and_memberships, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (operator, olga) = token_user(&m, "olga", Role::Operator).await;
    let (viewer, vic) = token_user(&m, "vic", Role::Viewer).await;

    let (status, web) = admin.post("/api/v1/groups", json!({ "name": "  web ", "description": "Web servers" })).await;
    assert_eq!(status, StatusCode::CREATED, "{web}");
    assert_eq!(web["name"], "web");
    assert_eq!(web["description"], "Web servers");
    let web_id = id(&web);
    let db_id = new_group(&admin, "db").await;
    // Validation and uniqueness.
    let (status, body) = admin.post("/api/v1/groups", json!({ "name": "web" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    for name in [String::new(), "   ".into(), "x".repeat(65), "bell\u{7}".into()] {
        let (status, body) = admin.post("/api/v1/groups", json!({ "name": name })).await;
        assert_eq!(invalid_field(status, &body), "name", "{name:?}");
    }
    let (status, body) = admin.post("/api/v1/groups", json!({ "name": "ok", "description": "d".repeat(501) })).await;
    assert_eq!(invalid_field(status, &body), "description");
    let (status, body) = admin.post("/api/v1/groups", json!({ "name": "ok", "colour": "red" })).await;
    assert_eq!(invalid_field(status, &body), "body");
    let (status, _) = admin.post("/api/v1/groups", json!({ "name": "é".repeat(64) })).await;
    assert_eq!(status, StatusCode::CREATED, "64 characters are fine, whatever their byte length");

    // Admins see every group, by name, paged.
    let (status, list) = admin.get("/api/v1/groups").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 3);
    assert_eq!(column(&list, "name")[..2], ["db".to_owned(), "web".to_owned()]);
    let (_, page) = admin.get("/api/v1/groups?limit=1&offset=1").await;
    assert_eq!(column(&page, "name"), ["web"]);
    assert_eq!(page["total"], 3);

    // Others see only their own groups; any other group is "not found".
    let (_, list) = operator.get("/api/v1/groups").await;
    assert_eq!(list["total"], 0, "{list}");
    let (status, body) = operator.get(&format!("/api/v1/groups/{web_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = admin.put(&format!("/api/v1/groups/{web_id}/users/{}", olga.id), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.put(&format!("/api/v1/groups/{web_id}/users/{}", olga.id), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "adding twice is fine");
    assert_eq!(
        admin.put(&format!("/api/v1/groups/{db_id}/users/{}", vic.id), json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, list) = operator.get("/api/v1/groups").await;
    assert_eq!(column(&list, "name"), ["web"]);
    assert_eq!(list["total"], 1);
    let (_, list) = viewer.get("/api/v1/groups").await;
    assert_eq!(column(&list, "name"), ["db"]);
    assert_eq!(operator.get(&format!("/api/v1/groups/{web_id}")).await.0, StatusCode::OK);
    let (status, hidden) = operator.get(&format!("/api/v1/groups/{db_id}")).await;
    let (_, missing) = operator.get("/api/v1/groups/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(hidden["error"]["message"], missing["error"]["message"], "no existence leak");
    assert_eq!(operator.get(&format!("/api/v1/groups/{db_id}/members")).await.0, StatusCode::NOT_FOUND);
    // Only admins change groups.
    let (status, body) = operator.post("/api/v1/groups", json!({ "name": "mine" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        operator.patch(&format!("/api/v1/groups/{web_id}"), json!({ "name": "x" })).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        operator.put(&format!("/api/v1/groups/{web_id}/users/{}", vic.id), json!({})).await.0,
        StatusCode::FORBIDDEN
    );

    // Update.
    let (status, body) = admin.patch(&format!("/api/v1/groups/{web_id}"), json!({ "description": "Front ends" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["name"].as_str(), body["description"].as_str()), (Some("web"), Some("Front ends")));
    let (status, _) = admin.patch(&format!("/api/v1/groups/{web_id}"), json!({ "name": "db" })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = admin.patch(&format!("/api/v1/groups/{web_id}"), json!({ "name": "" })).await;
    assert_eq!(invalid_field(status, &body), "name");
    let (status, body) = admin.patch(&format!("/api/v1/groups/{web_id}"), json!({ "name": "frontend" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "frontend");
    assert_eq!(admin.patch("/api/v1/groups/999999", json!({ "name": "z" })).await.0, StatusCode::NOT_FOUND);
    let updates_before = successes(&m, "group.update").await;
    assert_eq!(admin.patch(&format!("/api/v1/groups/{web_id}"), json!({})).await.0, StatusCode::OK);
    assert_eq!(successes(&m, "group.update").await, updates_before, "no change, no audit entry");

    // Hosts in groups, and the member list.
    let host = new_host(&admin, json!({ "fqdn": "www1.example.com" })).await;
    let host_id = id(&host);
    assert_eq!(
        admin.put(&format!("/api/v1/groups/{web_id}/hosts/{host_id}"), json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, members) = operator.get(&format!("/api/v1/groups/{web_id}/members")).await;
    assert_eq!(status, StatusCode::OK, "{members}");
    assert_eq!(members["users"].as_array().unwrap().len(), 1);
    assert_eq!(members["users"][0]["username"], "olga");
    assert_eq!(members["users"][0]["role"], "operator");
    assert!(members["users"][0].get("password_hash").is_none());
    assert_eq!(members["hosts"][0]["hostname"], "www1");
    let (_, detail) = admin.get(&format!("/api/v1/hosts/{host_id}")).await;
    assert_eq!(detail["group_ids"], json!([web_id]));
    // Unknown users, hosts and groups.
    assert_eq!(admin.put(&format!("/api/v1/groups/{web_id}/users/999999"), json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(admin.put(&format!("/api/v1/groups/{web_id}/hosts/999999"), json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        admin.put(&format!("/api/v1/groups/999999/users/{}", olga.id), json!({})).await.0,
        StatusCode::NOT_FOUND
    );

    // Removing members.
    assert_eq!(admin.delete(&format!("/api/v1/groups/{web_id}/users/{}", olga.id)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin.delete(&format!("/api/v1/groups/{web_id}/users/{}", olga.id)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(operator.get("/api/v1/groups").await.1["total"], 0, "the change applies at the next request");
    assert_eq!(operator.get(&format!("/api/v1/groups/{web_id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(admin.delete(&format!("/api/v1/groups/{web_id}/hosts/{host_id}")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin.delete(&format!("/api/v1/groups/{web_id}/hosts/{host_id}")).await.0, StatusCode::NOT_FOUND);
    let (_, members) = admin.get(&format!("/api/v1/groups/{web_id}/members")).await;
    assert_eq!(members, json!({ "users": [], "hosts": [] }));

    // Deleting a group ends its memberships; users stay.
    assert_eq!(operator.delete(&format!("/api/v1/groups/{db_id}")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.delete(&format!("/api/v1/groups/{db_id}")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin.get(&format!("/api/v1/groups/{db_id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(admin.delete(&format!("/api/v1/groups/{db_id}")).await.0, StatusCode::NOT_FOUND);
    assert!(m.state.store().user_group_ids(vic.id).await.unwrap().is_empty());
    assert_eq!(viewer.get("/api/v1/groups").await.1["total"], 0);

    for (action, expected) in [
        ("group.create", 3),
        ("group.update", 2),
        ("group.user_add", 2),
        ("group.user_remove", 1),
        ("group.host_add", 1),
        ("group.host_remove", 1),
        ("group.delete", 1),
    ] {
        assert_eq!(successes(&m, action).await, expected, "{action}");
    }
    let log = audit_log(&m).await;
    let update = log.iter().rev().find(|e| e.action == "group.update").unwrap();
    assert_eq!(update.actor, "user:root");
    assert_eq!(update.target.as_deref(), Some(format!("group:{web_id}").as_str()));
    assert_eq!(update.details["changes"]["name"], json!({ "old": "web", "new": "frontend" }));
    m.stop().await;
});

both_backends!(groups_show_member_counts, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (operator, olga) = token_user(&m, "olga", Role::Operator).await;
    let (_, vic) = token_user(&m, "vic", Role::Viewer).await;
    let (status, created) = admin.post("/api/v1/groups", json!({ "name": "web" })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!((created["host_count"].as_u64(), created["user_count"].as_u64()), (Some(0), Some(0)));
    let web = id(&created);
    let db = new_group(&admin, "db").await;
    let empty = new_group(&admin, "empty").await;
    let www1 = id(&new_host(&admin, json!({ "fqdn": "www1.example.com" })).await);
    let www2 = id(&new_host(&admin, json!({ "fqdn": "www2.example.com" })).await);
    let db1 = id(&new_host(&admin, json!({ "fqdn": "db1.example.com" })).await);
    new_host(&admin, json!({ "fqdn": "loose.example.com" })).await;
    for (group, host) in [(web, www1), (web, www2), (db, www2), (db, db1)] {
        let (status, _) = admin.put(&format!("/api/v1/groups/{group}/hosts/{host}"), json!({})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    for (group, user) in [(web, olga.id), (web, vic.id), (db, vic.id)] {
        let (status, _) = admin.put(&format!("/api/v1/groups/{group}/users/{user}"), json!({})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let counts = |list: &Value| -> Vec<(String, u64, u64)> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["name"].as_str().unwrap().to_owned(),
                    g["host_count"].as_u64().unwrap(),
                    g["user_count"].as_u64().unwrap(),
                )
            })
            .collect()
    };

    let (status, list) = admin.get("/api/v1/groups").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(counts(&list), [("db".to_owned(), 2, 1), ("empty".to_owned(), 0, 0), ("web".to_owned(), 2, 2)]);
    let (_, page) = admin.get("/api/v1/groups?limit=1&offset=2").await;
    assert_eq!(counts(&page), [("web".to_owned(), 2, 2)]);
    // One group, and a member of it: every host of a visible group is visible, so its count is
    // the same for an operator as for an admin.
    let (status, one) = admin.get(&format!("/api/v1/groups/{db}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!((one["host_count"].as_u64(), one["user_count"].as_u64()), (Some(2), Some(1)));
    let (_, list) = operator.get("/api/v1/groups").await;
    assert_eq!(counts(&list), [("web".to_owned(), 2, 2)]);
    let (_, one) = operator.get(&format!("/api/v1/groups/{web}")).await;
    assert_eq!((one["host_count"].as_u64(), one["user_count"].as_u64()), (Some(2), Some(2)));
    // An update answers with the counts too, and they follow membership changes.
    assert_eq!(admin.delete(&format!("/api/v1/groups/{web}/hosts/{www1}")).await.0, StatusCode::NO_CONTENT);
    let (status, body) = admin.patch(&format!("/api/v1/groups/{web}"), json!({ "description": "Front ends" })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["host_count"].as_u64(), body["user_count"].as_u64()), (Some(1), Some(2)));
    let (_, body) = admin.patch(&format!("/api/v1/groups/{empty}"), json!({})).await;
    assert_eq!((body["host_count"].as_u64(), body["user_count"].as_u64()), (Some(0), Some(0)));
    m.stop().await;
});

both_backends!(hosts_add_list_filter_sort_page_delete, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let group = new_group(&admin, "db").await;
    // Created a second apart, in an order that is not the hostname order.
    let web1 = new_host(&admin, json!({ "fqdn": " Web1.Example.COM. " })).await;
    assert_eq!(web1["hostname"], "web1");
    assert_eq!(web1["fqdn"], "web1.example.com");
    assert_eq!(web1["address"], Value::Null);
    assert_eq!(web1["transport"], "push", "hosts added by hand are push hosts by default");
    assert_eq!(web1["status"], "pending");
    assert_eq!(web1["group_ids"], json!([]));
    m.advance(SignedDuration::from_secs(1));
    let pull = new_host(&admin, json!({ "address": "10.0.0.5", "transport": "pull" })).await;
    assert_eq!((pull["hostname"].as_str(), pull["transport"].as_str()), (Some("10.0.0.5"), Some("pull")));
    m.advance(SignedDuration::from_secs(1));
    let v6 = new_host(&admin, json!({ "address": "2001:DB8:0:0::1", "hostname": "v6-box" })).await;
    assert_eq!(v6["address"], "2001:db8::1", "addresses are stored in canonical form");
    m.advance(SignedDuration::from_secs(1));
    let db1 =
        new_host(&admin, json!({ "fqdn": "db1.example.com", "address": "10.0.0.6", "groups": [group, group] })).await;
    assert_eq!(db1["group_ids"], json!([group]));
    assert!(web1.get("machine_id").is_none());

    // Validation: each problem names its field; nothing is created.
    let long_label = format!("{}.example.com", "a".repeat(64));
    let too_long = vec!["abcdefghi"; 26].join(".");
    let cases = [
        (json!({}), "fqdn"),
        (json!({ "hostname": "lonely" }), "fqdn"),
        (json!({ "fqdn": "bad_name.example.com" }), "fqdn"),
        (json!({ "fqdn": "-dash.example.com" }), "fqdn"),
        (json!({ "fqdn": "a..b" }), "fqdn"),
        (json!({ "fqdn": long_label }), "fqdn"),
        (json!({ "fqdn": too_long }), "fqdn"),
        (json!({ "fqdn": "10.0.0.1" }), "fqdn"),
        (json!({ "address": "300.1.1.1" }), "address"),
        (json!({ "address": "web1.example.com" }), "address"),
        (json!({ "address": "0.0.0.0" }), "address"),
        (json!({ "fqdn": "x.example.com", "transport": "carrier-pigeon" }), "transport"),
        (json!({ "fqdn": "x.example.com", "hostname": "has space" }), "hostname"),
        (json!({ "fqdn": "x.example.com", "groups": [999999] }), "groups"),
        (json!({ "fqdn": "x.example.com", "status": "online" }), "body"),
        (json!({ "fqdn": 42 }), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = admin.post("/api/v1/hosts", body.clone()).await;
        assert_eq!(invalid_field(status, &answer), field, "{body} -> {answer}");
    }
    let (status, body) = admin.post("/api/v1/hosts", json!({ "fqdn": "WEB1.example.com" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "a push host's FQDN is unique: {body}");
    let (status, body) = admin.post("/api/v1/hosts", json!({ "address": "10.0.0.6", "hostname": "dup" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "a push host's address is unique: {body}");

    let list = |query: &str| {
        let (admin, query) = (admin.clone(), query.to_owned());
        async move {
            let (status, body) = admin.get(&format!("/api/v1/hosts{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            body
        }
    };
    let all = list("").await;
    assert_eq!(all["total"], 4);
    assert_eq!(column(&all, "hostname"), ["10.0.0.5", "db1", "v6-box", "web1"]);
    assert_eq!(column(&list("?order=desc").await, "hostname"), ["web1", "v6-box", "db1", "10.0.0.5"]);
    assert_eq!(column(&list("?sort=created_at").await, "hostname"), ["web1", "10.0.0.5", "v6-box", "db1"]);
    assert_eq!(column(&list("?sort=created_at&order=desc").await, "hostname"), ["db1", "v6-box", "10.0.0.5", "web1"]);
    // Last contact: never-seen hosts come last in both directions.
    let now = m.state.now();
    let store = m.state.store();
    store.set_host_status(HostId(id(&web1)), HostStatus::Offline, Some(now), now).await.unwrap();
    let later = now + SignedDuration::from_mins(5);
    store.set_host_status(HostId(id(&v6)), HostStatus::Online, Some(later), later).await.unwrap();
    assert_eq!(column(&list("?sort=last_seen").await, "hostname")[..2], ["web1".to_owned(), "v6-box".to_owned()]);
    let by_seen_desc = column(&list("?sort=last_seen&order=desc").await, "hostname");
    assert_eq!(by_seen_desc[..2], ["v6-box".to_owned(), "web1".to_owned()]);
    assert!(by_seen_desc[2..].contains(&"db1".to_owned()) && by_seen_desc[2..].contains(&"10.0.0.5".to_owned()));
    // Filters, each with a matching total.
    let in_group = format!("?group={group}");
    for (query, expected) in [
        ("?status=online", vec!["v6-box"]),
        ("?status=offline", vec!["web1"]),
        ("?status=pending", vec!["10.0.0.5", "db1"]),
        ("?transport=pull", vec!["10.0.0.5"]),
        ("?transport=push&status=pending", vec!["db1"]),
        (in_group.as_str(), vec!["db1"]),
        ("?q=EXAMPLE", vec!["db1", "web1"]),
        ("?q=10.0.0", vec!["10.0.0.5", "db1"]),
        ("?q=2001:db8", vec!["v6-box"]),
        ("?q=%25", vec![]),
        ("?q=nothing-like-this", vec![]),
    ] {
        let body = list(query).await;
        assert_eq!(column(&body, "hostname"), expected, "{query}");
        assert_eq!(body["total"], expected.len(), "{query}");
    }
    // Scanned at least once, or never: web1 sends an inventory.
    let report = ScanReport {
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
        updates: vec![],
        reboot: RebootStatus::default(),
    };
    store.replace_inventory(HostId(id(&web1)), &report, "sha256:1", now).await.unwrap();
    for (query, expected) in [
        ("?scanned=true", vec!["web1"]),
        ("?scanned=false", vec!["10.0.0.5", "db1", "v6-box"]),
        ("?scanned=false&status=online", vec!["v6-box"]),
        ("?scanned=true&status=online", vec![]),
    ] {
        let body = list(query).await;
        assert_eq!(column(&body, "hostname"), expected, "{query}");
        assert_eq!(body["total"], expected.len(), "{query}");
    }
    // The status filter names every status, degraded included.
    assert_eq!(column(&list("?status=degraded").await, "hostname"), Vec::<String>::new());
    let (status, body) = admin.get("/api/v1/hosts?status=asleep").await;
    assert_eq!(invalid_field(status, &body), "status");
    assert_eq!(body["error"]["message"], "status: must be pending, online, degraded, offline or unreachable", "{body}");
    let (status, body) = admin.get("/api/v1/hosts?scanned=maybe").await;
    assert_eq!(invalid_field(status, &body), "query");
    assert!(body["error"]["message"].as_str().unwrap().contains("scanned"), "the message names the field: {body}");
    // Paging.
    let page = list("?limit=2").await;
    assert_eq!((column(&page, "hostname"), &page["total"]), (vec!["10.0.0.5".into(), "db1".into()], &json!(4)));
    let page = list("?limit=2&offset=2").await;
    assert_eq!(column(&page, "hostname"), ["v6-box", "web1"]);
    assert_eq!((page["limit"].as_u64(), page["offset"].as_u64()), (Some(2), Some(2)));
    let page = list("?offset=4").await;
    assert_eq!((page["items"].as_array().unwrap().len(), &page["total"]), (0, &json!(4)));
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?sort=ip", "sort"),
        ("?status=asleep", "status"),
        ("?transport=udp", "transport"),
        ("?order=sideways", "query"),
        ("?group=abc", "query"),
        ("?colour=red", "query"),
    ] {
        let (status, body) = admin.get(&format!("/api/v1/hosts{query}")).await;
        assert_eq!(invalid_field(status, &body), field, "{query}");
    }

    // One host, and deletion.
    let db1_id = id(&db1);
    let (status, detail) = admin.get(&format!("/api/v1/hosts/{db1_id}")).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!((detail["hostname"].as_str(), &detail["group_ids"]), (Some("db1"), &json!([group])));
    assert_eq!(admin.get("/api/v1/hosts/999999").await.0, StatusCode::NOT_FOUND);
    assert_eq!(admin.delete(&format!("/api/v1/hosts/{db1_id}")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(admin.get(&format!("/api/v1/hosts/{db1_id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(admin.delete(&format!("/api/v1/hosts/{db1_id}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(list("").await["total"], 3);
    let (_, members) = admin.get(&format!("/api/v1/groups/{group}/members")).await;
    assert_eq!(members["hosts"], json!([]), "the membership went with the host");

    assert_eq!(successes(&m, "host.create").await, 4);
    assert_eq!(successes(&m, "host.delete").await, 1);
    let log = audit_log(&m).await;
    let created = log.iter().find(|e| e.action == "host.create" && e.target == Some(format!("host:{db1_id}"))).unwrap();
    assert_eq!(created.details["groups"], json!([group]));
    assert_eq!(created.details["fqdn"], "db1.example.com");
    m.stop().await;
});

both_backends!(operators_and_viewers_see_only_their_scope, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (operator, olga) = token_user(&m, "olga", Role::Operator).await;
    let (viewer, vic) = token_user(&m, "vic", Role::Viewer).await;
    let (loner, _) = token_user(&m, "lou", Role::Operator).await;
    let a = new_group(&admin, "a").await;
    let b = new_group(&admin, "b").await;
    for user in [olga.id, vic.id] {
        assert_eq!(admin.put(&format!("/api/v1/groups/{a}/users/{user}"), json!({})).await.0, StatusCode::NO_CONTENT);
    }
    let mut ids = std::collections::HashMap::new();
    for (name, groups) in [
        ("a1", vec![a]),
        ("a2", vec![a]),
        ("ab", vec![a, b]),
        ("b1", vec![b]),
        ("b2", vec![b]),
        ("b3", vec![b]),
        ("u1", vec![]),
    ] {
        let host = new_host(&admin, json!({ "fqdn": format!("{name}.example.com"), "groups": groups })).await;
        ids.insert(name, id(&host));
    }
    let (_, all) = admin.get("/api/v1/hosts").await;
    assert_eq!(all["total"], 7);

    for client in [&operator, &viewer] {
        let (status, list) = client.get("/api/v1/hosts").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        assert_eq!(column(&list, "hostname"), ["a1", "a2", "ab", "u1"]);
        assert_eq!(list["total"], 4, "totals count only hosts in scope");
        let (_, page) = client.get("/api/v1/hosts?limit=1&offset=3").await;
        assert_eq!((column(&page, "hostname"), &page["total"]), (vec!["u1".to_owned()], &json!(4)));
        let (_, search) = client.get("/api/v1/hosts?q=b").await;
        assert_eq!((column(&search, "hostname"), &search["total"]), (vec!["ab".to_owned()], &json!(1)));
        let (_, by_group) = client.get(&format!("/api/v1/hosts?group={b}")).await;
        assert_eq!((column(&by_group, "hostname"), &by_group["total"]), (vec!["ab".to_owned()], &json!(1)));
        // A host outside the scope looks exactly like a missing one.
        let (status, hidden) = client.get(&format!("/api/v1/hosts/{}", ids["b1"])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{hidden}");
        let (_, missing) = client.get("/api/v1/hosts/999999").await;
        assert_eq!(hidden["error"]["message"], missing["error"]["message"]);
        let (status, ab) = client.get(&format!("/api/v1/hosts/{}", ids["ab"])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ab["group_ids"], json!([a]), "groups outside the caller's are not shown");
        assert_eq!(client.get(&format!("/api/v1/hosts/{}", ids["u1"])).await.0, StatusCode::OK);
    }
    // An operator without groups sees the ungrouped hosts only.
    let (_, list) = loner.get("/api/v1/hosts").await;
    assert_eq!((column(&list, "hostname"), &list["total"]), (vec!["u1".to_owned()], &json!(1)));

    // Deleting outside the scope: 404, and nothing changes.
    let (status, body) = operator.delete(&format!("/api/v1/hosts/{}", ids["b1"])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(admin.get(&format!("/api/v1/hosts/{}", ids["b1"])).await.0, StatusCode::OK);
    assert_eq!(admin.get("/api/v1/hosts").await.1["total"], 7);
    assert_eq!(successes(&m, "host.delete").await, 0);
    // Operators add hosts to their own groups or none, and delete in scope.
    let denied_before = audit_log(&m).await.iter().filter(|e| e.action == "authz.denied").count();
    let (status, body) = operator.post("/api/v1/hosts", json!({ "fqdn": "sneaky.example.com", "groups": [b] })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _) = operator.post("/api/v1/hosts", json!({ "fqdn": "sneaky.example.com", "groups": [999999] })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a missing group is refused like someone else's");
    let denied: Vec<_> = audit_log(&m).await.into_iter().filter(|e| e.action == "authz.denied").collect();
    assert_eq!(denied.len(), denied_before + 2);
    assert_eq!(denied.last().unwrap().actor, "user:olga");
    assert_eq!(admin.get("/api/v1/hosts?q=sneaky").await.1["total"], 0);
    let mine = new_host(&operator, json!({ "fqdn": "mine.example.com", "groups": [a] })).await;
    assert_eq!(mine["group_ids"], json!([a]));
    let loose = new_host(&operator, json!({ "address": "192.0.2.10" })).await;
    assert_eq!(loner.get(&format!("/api/v1/hosts/{}", id(&loose))).await.0, StatusCode::OK, "ungrouped: everyone's");
    assert_eq!(operator.delete(&format!("/api/v1/hosts/{}", ids["a1"])).await.0, StatusCode::NO_CONTENT);
    assert_eq!(operator.delete(&format!("/api/v1/hosts/{}", ids["u1"])).await.0, StatusCode::NO_CONTENT);
    assert_eq!(operator.get("/api/v1/hosts").await.1["total"], 4, "a2, ab, mine, loose");

    // Viewers read only: 403 forbidden, and the denial is audited.
    let denied_before = audit_log(&m).await.iter().filter(|e| e.action == "authz.denied").count();
    let (status, body) = viewer.post("/api/v1/hosts", json!({ "fqdn": "v.example.com" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, body) = viewer.delete(&format!("/api/v1/hosts/{}", ids["a2"])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(viewer.get(&format!("/api/v1/hosts/{}", ids["a2"])).await.0, StatusCode::OK, "still there");
    let log = audit_log(&m).await;
    let denied: Vec<_> = log.iter().filter(|e| e.action == "authz.denied").skip(denied_before).collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(denied.iter().all(|e| e.actor == "user:vic" && e.outcome.as_str() == "denied"));
    assert_eq!(denied[0].target.as_deref(), Some("POST /api/v1/hosts"));
    assert_eq!(denied[1].target, Some(format!("DELETE /api/v1/hosts/{}", ids["a2"])));
    assert_eq!(successes(&m, "host.create").await, 9);
    assert_eq!(successes(&m, "host.delete").await, 2);
    m.stop().await;
});

both_backends!(registration_tokens_are_shown_once_and_revocable, |m: TestManager| async move {
    let (admin, root) = m.signed_in("root", Role::Admin).await;
    let (operator, _) = token_user(&m, "olga", Role::Operator).await;
    let (status, created) = admin
        .post("/api/v1/registration-tokens", json!({ "label": "rack 4", "seats": 2, "expires_in_hours": 24 }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("pdk_reg_"), "{secret}");
    let public_url = &m.state.config().public_url;
    let fingerprint = m.state.keys().ca.fingerprint();
    assert_eq!(
        created["install_command"],
        format!("patchdeck-agent enroll --server {public_url} --token {secret} --ca-fingerprint {fingerprint}")
    );
    assert_eq!(created["status"], "active");
    assert_eq!((created["seats_total"].as_u64(), created["seats_used"].as_u64()), (Some(2), Some(0)));
    assert_eq!(created["created_by"], root.id.0);
    assert_eq!(created["revoked_at"], Value::Null);
    let first = id(&created);

    // The secret is never shown again.
    let (status, list) = admin.get("/api/v1/registration-tokens").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains(&secret));
    assert!(list["items"][0].get("token").is_none() && list["items"][0].get("token_hash").is_none());
    let (status, one) = admin.get(&format!("/api/v1/registration-tokens/{first}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!one.to_string().contains(&secret));
    assert_eq!(one["label"], "rack 4");
    assert_eq!(admin.get("/api/v1/registration-tokens/999999").await.0, StatusCode::NOT_FOUND);

    // The printed token works for enrollment: its hash takes seats.
    let hash = OpaqueToken::parse(&secret).unwrap().hash().0;
    let store = m.state.store();
    assert_eq!(store.take_seat(&hash, m.state.now()).await.unwrap().seats_used, 1);
    assert_eq!(store.take_seat(&hash, m.state.now()).await.unwrap().seats_used, 2);
    assert!(matches!(store.take_seat(&hash, m.state.now()).await, Err(TakeSeatError::NoSeatsLeft)));
    let (_, one) = admin.get(&format!("/api/v1/registration-tokens/{first}")).await;
    assert_eq!((one["status"].as_str(), one["seats_used"].as_u64()), (Some("used_up"), Some(2)));

    // Validation.
    for (body, field) in [
        (json!({ "label": "x", "seats": 0, "expires_in_hours": 1 }), "seats"),
        (json!({ "label": "x", "seats": 100_001, "expires_in_hours": 1 }), "seats"),
        (json!({ "label": "x", "seats": 1, "expires_in_hours": 0 }), "expires_in_hours"),
        (json!({ "label": "x", "seats": 1, "expires_in_hours": 8761 }), "expires_in_hours"),
        (json!({ "label": " ", "seats": 1, "expires_in_hours": 1 }), "label"),
        (json!({ "label": "x".repeat(101), "seats": 1, "expires_in_hours": 1 }), "label"),
        (json!({ "label": "x", "seats": -1, "expires_in_hours": 1 }), "body"),
        (json!({ "label": "x", "seats": 1 }), "body"),
        (json!({ "label": "x", "seats": 1, "expires_in_hours": 1, "token": "mine" }), "body"),
    ] {
        let (status, answer) = admin.post("/api/v1/registration-tokens", body.clone()).await;
        assert_eq!(invalid_field(status, &answer), field, "{body}");
    }
    // Only admins.
    let (status, body) = operator.get("/api/v1/registration-tokens").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (status, _) =
        operator.post("/api/v1/registration-tokens", json!({ "label": "x", "seats": 1, "expires_in_hours": 1 })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Expiry and revocation.
    let (_, short) =
        admin.post("/api/v1/registration-tokens", json!({ "label": "short", "seats": 1, "expires_in_hours": 1 })).await;
    let (status, revocable) = admin
        .post("/api/v1/registration-tokens", json!({ "label": "lab", "seats": 100_000, "expires_in_hours": 8760 }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{revocable}");
    let revocable_id = id(&revocable);
    assert_eq!(admin.delete(&format!("/api/v1/registration-tokens/{revocable_id}")).await.0, StatusCode::NO_CONTENT);
    let (status, body) = admin.delete(&format!("/api/v1/registration-tokens/{revocable_id}")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
    assert_eq!(admin.delete("/api/v1/registration-tokens/999999").await.0, StatusCode::NOT_FOUND);
    let revoked_hash = OpaqueToken::parse(revocable["token"].as_str().unwrap()).unwrap().hash().0;
    assert!(matches!(store.take_seat(&revoked_hash, m.state.now()).await, Err(TakeSeatError::Revoked)));
    // Past the session's idle limit too: carry on with an API token.
    let (_, api) = admin.post("/api/v1/auth/tokens", json!({ "label": "tests", "expires_in_days": 1 })).await;
    let admin = admin.with_bearer(api["token"].as_str().unwrap());
    m.advance(SignedDuration::from_hours(2));
    let (_, list) = admin.get("/api/v1/registration-tokens").await;
    assert_eq!(list["total"], 3);
    assert_eq!(column(&list, "label"), ["lab", "short", "rack 4"], "newest first");
    assert_eq!(column(&list, "status"), ["revoked", "expired", "used_up"]);
    assert!(list["items"][0]["revoked_at"].is_string());
    let (_, page) = admin.get("/api/v1/registration-tokens?limit=1&offset=1").await;
    assert_eq!((column(&page, "label"), &page["total"]), (vec!["short".to_owned()], &json!(3)));
    let short_hash = OpaqueToken::parse(short["token"].as_str().unwrap()).unwrap().hash().0;
    assert!(matches!(store.take_seat(&short_hash, m.state.now()).await, Err(TakeSeatError::Expired)));

    assert_eq!(successes(&m, "registration_token.create").await, 3);
    assert_eq!(successes(&m, "registration_token.revoke").await, 1);
    let log = serde_json::to_string(&audit_log(&m).await).unwrap();
    for token in [&secret, short["token"].as_str().unwrap(), revocable["token"].as_str().unwrap()] {
        assert!(!log.contains(token), "a token secret reached the audit log");
    }
    m.stop().await;
});

both_backends!(settings_read_patch_validate_and_audit, |m: TestManager| async move {
    let (admin, root) = m.signed_in("root", Role::Admin).await;
    let (viewer, _) = m.signed_in("vic", Role::Viewer).await;
    let (status, settings) = admin.get("/api/v1/settings").await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    // `signed_in` turned MFA off; the approval queue is off by default.
    assert_eq!(
        settings,
        json!({ "mfa_required": false, "enrollment_requires_approval": false, "deployments_require_approval": false })
    );
    let (status, body) = viewer.get("/api/v1/settings").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    assert_eq!(viewer.patch("/api/v1/settings", json!({ "mfa_required": true })).await.0, StatusCode::FORBIDDEN);

    let (status, body) = admin.patch("/api/v1/settings", json!({ "enrollment_requires_approval": true })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "mfa_required": false, "enrollment_requires_approval": true, "deployments_require_approval": false })
    );
    assert_eq!(admin.get("/api/v1/settings").await.1["enrollment_requires_approval"], true);
    let stored = m.state.store().list_settings().await.unwrap();
    let row = stored.iter().find(|s| s.key == "enrollment.requires_approval").unwrap();
    assert_eq!((&row.value, row.updated_by), (&json!(true), Some(root.id)));
    let log = audit_log(&m).await;
    let entry = log.iter().rev().find(|e| e.action == "settings.update").unwrap();
    assert_eq!(entry.actor, "user:root");
    assert_eq!(
        entry.details,
        json!({ "changes": {
            "enrollment_requires_approval": { "key": "enrollment.requires_approval", "old": false, "new": true }
        } })
    );

    // Nothing to change: no write, no audit entry.
    for body in [json!({}), json!({ "enrollment_requires_approval": true })] {
        let (status, answer) = admin.patch("/api/v1/settings", body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    assert_eq!(successes(&m, "settings.update").await, 1);
    // Validation.
    for body in [
        json!({ "mfa_required": "yes" }),
        json!({ "mfa_required": 1 }),
        json!({ "mfa_required": true, "smtp_host": "mail" }),
        json!([{ "mfa_required": true }]),
    ] {
        let (status, answer) = admin.patch("/api/v1/settings", body.clone()).await;
        assert_eq!(invalid_field(status, &answer), "body", "{body}");
    }
    assert_eq!(admin.get("/api/v1/settings").await.1["mfa_required"], false, "refused patches change nothing");
    assert_eq!(successes(&m, "settings.update").await, 1);

    // A change applies at once (the cache is dropped): requiring MFA restricts accounts without it.
    assert_eq!(viewer.get("/api/v1/hosts").await.0, StatusCode::OK);
    let (status, body) =
        admin.patch("/api/v1/settings", json!({ "mfa_required": true, "enrollment_requires_approval": false })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({ "mfa_required": true, "enrollment_requires_approval": false, "deployments_require_approval": false })
    );
    let (status, body) = viewer.get("/api/v1/hosts").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("mfa_enrollment_required")));
    let log = audit_log(&m).await;
    let entry = log.iter().rev().find(|e| e.action == "settings.update").unwrap();
    let changes = entry.details["changes"].as_object().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes["mfa_required"], json!({ "key": "auth.mfa_required", "old": false, "new": true }));
    assert_eq!(successes(&m, "settings.update").await, 2);
    m.stop().await;
});
