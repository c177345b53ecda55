//! Maintenance windows and blackouts over the real API, on SQLite and PostgreSQL: CRUD and its
//! audit entries, validation naming the field, who may do what, occurrences for a host, a group
//! and the fleet with blackouts cut out, and a host's next window (inherited from its group,
//! clipped by a blackout, caught up after a missed window).

mod common;

use common::{audit_log, id, invalid_field, token_user, Client, TestManager};
use jiff::{SignedDuration, Timestamp};
use patchdeck_store::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Moves the manager's clock to `at` (it only moves forward; tests start before 2030).
fn travel_to(m: &TestManager, at: &str) {
    let at: Timestamp = at.parse().unwrap();
    let now = m.state.now();
    assert!(at >= now, "the clock only moves forward");
    m.advance(at.duration_since(now));
}

async fn new_host(admin: &Client, fqdn: &str) -> i64 {
    let (status, body) = admin.post("/api/v1/hosts", json!({ "fqdn": fqdn })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id(&body)
}

async fn new_group(admin: &Client, name: &str) -> i64 {
    common::new_group(admin, name).await
}

async fn join(admin: &Client, group: i64, host: i64) {
    let (status, body) = admin.put(&format!("/api/v1/groups/{group}/hosts/{host}"), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

/// A weekend window (02:00 Berlin, 3 hours) for a group.
fn weekend(group: i64) -> Value {
    json!({
        "name": "weekend",
        "group_id": group,
        "recurrence": { "kind": "weekly", "days": ["sunday", "saturday", "sunday"] },
        "start_time": "02:00",
        "duration_minutes": 180,
        "time_zone": "Europe/Berlin",
    })
}

async fn create(client: &Client, path: &str, body: Value) -> Value {
    let (status, answer) = client.post(path, body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer
}

fn actions(log: &[patchdeck_store::AuditEntry], prefix: &str) -> Vec<(String, String)> {
    log.iter()
        .filter(|e| e.action.starts_with(prefix))
        .map(|e| (e.action.clone(), e.target.clone().unwrap_or_default()))
        .collect()
}

both_backends!(windows_and_blackouts_crud_is_audited, |m: TestManager| async move {
    travel_to(&m, "2030-06-03T00:00:00Z");
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let group = new_group(&admin, "web").await;
    let host = new_host(&admin, "web1.example.com").await;

    let window = create(&admin, "/api/v1/maintenance-windows", weekend(group)).await;
    let wid = id(&window);
    assert_eq!(window["group_id"], group);
    assert_eq!(window["host_id"], Value::Null);
    assert_eq!(window["recurrence"], json!({ "kind": "weekly", "days": ["saturday", "sunday"] }), "sorted, once each");
    assert_eq!(window["start_time"], "02:00");
    assert_eq!(window["enabled"], true);
    // Saturday 2030-06-08 02:00 in Berlin (UTC+2).
    assert_eq!(window["next_occurrence"], json!({ "start": "2030-06-08T00:00:00Z", "end": "2030-06-08T03:00:00Z" }));
    let (status, got) = admin.get(&format!("/api/v1/maintenance-windows/{wid}")).await;
    assert_eq!((status, got["name"].clone()), (StatusCode::OK, json!("weekend")));

    let own = json!({
        "name": "nightly", "host_id": host, "recurrence": { "kind": "daily" },
        "start_time": "23:30", "duration_minutes": 45, "time_zone": "America/New_York", "enabled": false,
    });
    let own = create(&admin, "/api/v1/maintenance-windows", own).await;
    let (_, list) = admin.get("/api/v1/maintenance-windows").await;
    assert_eq!(list["total"], 2);
    let (_, list) = admin.get(&format!("/api/v1/maintenance-windows?host_id={host}")).await;
    assert_eq!(common::column(&list, "name"), ["nightly"]);
    let (_, list) = admin.get(&format!("/api/v1/maintenance-windows?group_id={group}")).await;
    assert_eq!(common::column(&list, "name"), ["weekend"]);

    let replaced = json!({
        "name": "month end", "group_id": group,
        "recurrence": { "kind": "monthly", "rule": "nth_weekday", "nth": -1, "weekday": "friday" },
        "start_time": "20:00", "duration_minutes": 600, "time_zone": "Asia/Kolkata",
    });
    let (status, updated) = admin.put(&format!("/api/v1/maintenance-windows/{wid}"), replaced).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["recurrence"]["weekday"], "friday");
    // The last Friday of June 2030 is the 28th; 20:00 in Kolkata is 14:30 UTC.
    assert_eq!(updated["next_occurrence"]["start"], "2030-06-28T14:30:00Z");
    let (status, _) = admin.delete(&format!("/api/v1/maintenance-windows/{}", id(&own))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.get(&format!("/api/v1/maintenance-windows/{}", id(&own))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let freeze = json!({ "name": "year end", "starts_at": "2030-12-20T00:00:00Z", "ends_at": "2031-01-05T00:00:00Z",
                         "reason": "change freeze" });
    let freeze = create(&admin, "/api/v1/blackouts", freeze).await;
    let bid = id(&freeze);
    assert_eq!((freeze["group_id"].clone(), freeze["reason"].clone()), (Value::Null, json!("change freeze")));
    let moved = json!({ "name": "year end", "group_id": group, "starts_at": "2030-12-21T00:00:00Z",
                        "ends_at": "2031-01-06T00:00:00Z" });
    let (status, moved) = admin.put(&format!("/api/v1/blackouts/{bid}"), moved).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!((moved["group_id"].clone(), moved["starts_at"].clone()), (json!(group), json!("2030-12-21T00:00:00Z")));
    let (_, list) = admin.get("/api/v1/blackouts?current=true").await;
    assert_eq!(list["total"], 1);
    let (status, _) = admin.delete(&format!("/api/v1/blackouts/{bid}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.delete(&format!("/api/v1/blackouts/{bid}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let log = audit_log(&m).await;
    let w = |a: &str, i: i64| (a.to_owned(), format!("maintenance_window:{i}"));
    assert_eq!(
        actions(&log, "maintenance_window."),
        [
            w("maintenance_window.create", wid),
            w("maintenance_window.create", id(&own)),
            w("maintenance_window.update", wid),
            w("maintenance_window.delete", id(&own)),
        ]
    );
    let b = |a: &str| (a.to_owned(), format!("blackout:{bid}"));
    assert_eq!(actions(&log, "blackout."), [b("blackout.create"), b("blackout.update"), b("blackout.delete")]);
    let update = log.iter().find(|e| e.action == "maintenance_window.update").unwrap();
    assert_eq!(update.details["old"]["name"], "weekend");
    assert_eq!(update.details["new"]["time_zone"], "Asia/Kolkata");
    assert!(log.iter().filter(|e| e.action.starts_with("blackout.")).all(|e| e.actor == "user:root"));
    m.stop().await;
});

both_backends!(bad_windows_and_blackouts_name_the_field, |m: TestManager| async move {
    travel_to(&m, "2030-06-03T00:00:00Z");
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let group = new_group(&admin, "web").await;
    let host = new_host(&admin, "web1.example.com").await;
    let with = |changes: Value| {
        let mut body = weekend(group);
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (with(json!({ "time_zone": "Mars/Olympus_Mons" })), "time_zone"),
        (with(json!({ "recurrence": { "kind": "weekly", "days": [] } })), "recurrence.days"),
        (
            with(json!({ "recurrence": { "kind": "monthly", "rule": "nth_weekday", "nth": 5, "weekday": "monday" } })),
            "recurrence.nth",
        ),
        (with(json!({ "recurrence": { "kind": "monthly", "rule": "day_of_month", "day": 0 } })), "recurrence.day"),
        (with(json!({ "duration_minutes": 0 })), "duration_minutes"),
        (with(json!({ "duration_minutes": 10_081 })), "duration_minutes"),
        (with(json!({ "start_time": "24:00" })), "start_time"),
        (with(json!({ "start_time": "2:30" })), "start_time"),
        (with(json!({ "name": "  " })), "name"),
        (with(json!({ "host_id": host })), "host_id"),
        (with(json!({ "group_id": null })), "host_id"),
        (with(json!({ "recurrence": { "kind": "weekly", "days": ["funday"] } })), "body"),
        (with(json!({ "recurrence": { "kind": "hourly" } })), "body"),
    ];
    for (body, field) in cases {
        let (status, answer) = admin.post("/api/v1/maintenance-windows", body.clone()).await;
        assert_eq!(invalid_field(status, &answer), field, "{body} → {answer}");
    }
    let (status, answer) = admin.post("/api/v1/maintenance-windows", with(json!({ "group_id": 9999 }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    // A one-off window in the past is accepted; it simply never opens.
    let past = with(json!({ "recurrence": { "kind": "once", "date": "2020-01-01" } }));
    let past = create(&admin, "/api/v1/maintenance-windows", past).await;
    assert_eq!(past["next_occurrence"], Value::Null);

    let blackout = |starts: &str, ends: &str| json!({ "name": "x", "starts_at": starts, "ends_at": ends });
    for (body, field) in [
        (blackout("2030-06-02T00:00:00Z", "2030-06-02T00:00:00Z"), "ends_at"),
        (blackout("2030-06-02T00:00:00Z", "2030-06-01T00:00:00Z"), "ends_at"),
        (blackout("yesterday", "2030-06-01T00:00:00Z"), "starts_at"),
        (
            json!({ "name": "x", "group_id": 9999, "starts_at": "2030-06-01T00:00:00Z", "ends_at": "2030-06-02T00:00:00Z" }),
            "group_id",
        ),
        (json!({ "name": "", "starts_at": "2030-06-01T00:00:00Z", "ends_at": "2030-06-02T00:00:00Z" }), "name"),
    ] {
        let (status, answer) = admin.post("/api/v1/blackouts", body.clone()).await;
        assert_eq!(invalid_field(status, &answer), field, "{body} → {answer}");
    }

    let occurrences = "/api/v1/maintenance-windows/occurrences";
    for (query, field) in [
        ("from=2030-06-01T00:00:00Z&to=2030-09-02T00:00:00Z", "to"),
        ("from=2030-06-01T00:00:00Z&to=2030-06-01T00:00:00Z", "to"),
        ("from=june&to=2030-06-02T00:00:00Z", "from"),
        (&format!("from=2030-06-01T00:00:00Z&to=2030-06-02T00:00:00Z&host_id={host}&group_id={group}"), "host_id"),
    ] {
        let (status, answer) = admin.get(&format!("{occurrences}?{query}")).await;
        assert_eq!(invalid_field(status, &answer), field, "{query} → {answer}");
    }
    let (status, answer) = admin.get(&format!("/api/v1/hosts/{host}/next-window?splay=1.5")).await;
    assert_eq!(invalid_field(status, &answer), "splay");
    // Nothing was stored but the past one-off window.
    let (_, list) = admin.get("/api/v1/maintenance-windows").await;
    assert_eq!(list["total"], 1);
    let (_, list) = admin.get("/api/v1/blackouts").await;
    assert_eq!(list["total"], 0);
    m.stop().await;
});

both_backends!(viewers_read_operators_manage_their_scope_admins_freeze, |m: TestManager| async move {
    travel_to(&m, "2030-06-03T00:00:00Z");
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (operator, olga) = token_user(&m, "olga", Role::Operator).await;
    let (viewer, vic) = token_user(&m, "vic", Role::Viewer).await;
    let ours = new_group(&admin, "ours").await;
    let theirs = new_group(&admin, "theirs").await;
    let our_host = new_host(&admin, "ours.example.com").await;
    let their_host = new_host(&admin, "theirs.example.com").await;
    join(&admin, ours, our_host).await;
    join(&admin, theirs, their_host).await;
    for user in [olga.id, vic.id] {
        let (status, _) = admin.put(&format!("/api/v1/groups/{ours}/users/{user}"), json!({})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let their_window = create(&admin, "/api/v1/maintenance-windows", weekend(theirs)).await;
    let their_freeze = json!({ "name": "theirs", "group_id": theirs, "starts_at": "2030-07-01T00:00:00Z",
                               "ends_at": "2030-07-02T00:00:00Z" });
    let their_freeze = create(&admin, "/api/v1/blackouts", their_freeze).await;
    let global = json!({ "name": "global", "starts_at": "2030-07-01T00:00:00Z", "ends_at": "2030-07-02T00:00:00Z" });
    create(&admin, "/api/v1/blackouts", global).await;

    // A viewer reads but never writes.
    let (status, answer) = viewer.post("/api/v1/maintenance-windows", weekend(ours)).await;
    assert_eq!((status, answer["error"]["code"].clone()), (StatusCode::FORBIDDEN, json!("forbidden")));
    let (status, _) = viewer.delete(&format!("/api/v1/maintenance-windows/{}", id(&their_window))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // An operator manages windows of their groups and hosts; others do not exist for them.
    let ours_window = create(&operator, "/api/v1/maintenance-windows", weekend(ours)).await;
    let mut host_window = weekend(ours);
    host_window["group_id"] = Value::Null;
    host_window["host_id"] = json!(our_host);
    create(&operator, "/api/v1/maintenance-windows", host_window.clone()).await;
    let (status, _) = operator.post("/api/v1/maintenance-windows", weekend(theirs)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    host_window["host_id"] = json!(their_host);
    let (status, _) = operator.post("/api/v1/maintenance-windows", host_window).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let their_path = format!("/api/v1/maintenance-windows/{}", id(&their_window));
    for (status, _) in [
        operator.get(&their_path).await,
        operator.put(&their_path, weekend(ours)).await,
        operator.delete(&their_path).await,
        viewer.get(&their_path).await,
    ] {
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // Nor can they move their own window to another group.
    let ours_path = format!("/api/v1/maintenance-windows/{}", id(&ours_window));
    let (status, _) = operator.put(&ours_path, weekend(theirs)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = viewer.get("/api/v1/maintenance-windows").await;
    assert_eq!(list["total"], 2, "{list}");
    let (status, _) = operator.delete(&ours_path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Blackouts are admins' to set; everyone sees the global ones and their groups'.
    let freeze = json!({ "name": "mine", "group_id": ours, "starts_at": "2030-07-01T00:00:00Z",
                         "ends_at": "2030-07-02T00:00:00Z" });
    for client in [&operator, &viewer] {
        let (status, _) = client.post("/api/v1/blackouts", freeze.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _) = operator.delete(&format!("/api/v1/blackouts/{}", id(&their_freeze))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = viewer.get("/api/v1/blackouts").await;
    assert_eq!(common::column(&list, "name"), ["global"]);
    let (status, _) = viewer.get(&format!("/api/v1/blackouts/{}", id(&their_freeze))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = admin.get("/api/v1/blackouts").await;
    assert_eq!(list["total"], 2);

    // The fleet calendar of a viewer holds only what they may see.
    let (status, fleet) =
        viewer.get("/api/v1/maintenance-windows/occurrences?from=2030-06-03T00:00:00Z&to=2030-06-10T00:00:00Z").await;
    assert_eq!(status, StatusCode::OK, "{fleet}");
    assert!(fleet["items"].as_array().unwrap().iter().all(|o| o["window_id"] != id(&their_window)), "{fleet}");
    assert_eq!(fleet["items"].as_array().unwrap().len(), 2, "the host window on Saturday and Sunday: {fleet}");
    let (status, _) = viewer.get(&format!("/api/v1/hosts/{their_host}/next-window")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    m.stop().await;
});

both_backends!(occurrences_for_a_host_a_group_and_the_fleet, |m: TestManager| async move {
    travel_to(&m, "2030-06-03T00:00:00Z");
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let web = new_group(&admin, "web").await;
    let db = new_group(&admin, "db").await;
    let h1 = new_host(&admin, "h1.example.com").await;
    let h2 = new_host(&admin, "h2.example.com").await;
    join(&admin, web, h1).await;
    let group_window = id(&create(&admin, "/api/v1/maintenance-windows", weekend(web)).await);
    let nightly = json!({ "name": "nightly", "host_id": h1, "recurrence": { "kind": "daily" },
                          "start_time": "22:00", "duration_minutes": 60, "time_zone": "UTC" });
    let nightly = id(&create(&admin, "/api/v1/maintenance-windows", nightly).await);
    let month_end = json!({ "name": "month end", "host_id": h2,
                            "recurrence": { "kind": "monthly", "rule": "day_of_month", "day": 31 },
                            "start_time": "01:00", "duration_minutes": 120, "time_zone": "UTC" });
    let month_end = id(&create(&admin, "/api/v1/maintenance-windows", month_end).await);
    let mut db_window = weekend(db);
    db_window["enabled"] = json!(false);
    create(&admin, "/api/v1/maintenance-windows", db_window).await;
    // A global freeze over the first hour of Saturday's window, and one for db only.
    for (name, group) in [("saturday", Value::Null), ("db", json!(db))] {
        let freeze = json!({ "name": name, "group_id": group, "starts_at": "2030-06-08T00:00:00Z",
                             "ends_at": "2030-06-08T01:00:00Z" });
        create(&admin, "/api/v1/blackouts", freeze).await;
    }

    let occurrences = |query: String| {
        let admin = admin.clone();
        async move {
            let (status, body) = admin.get(&format!("/api/v1/maintenance-windows/occurrences?{query}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["items"].as_array().unwrap().clone()
        }
    };
    let week = "from=2030-06-03T00:00:00Z&to=2030-06-10T00:00:00Z";
    // h1: its own nightly window every day, and its group's weekend window.
    let host = occurrences(format!("{week}&host_id={h1}")).await;
    let of =
        |items: &[Value], window: i64| items.iter().filter(|o| o["window_id"] == window).cloned().collect::<Vec<_>>();
    assert_eq!(host.len(), 9, "{host:?}");
    assert_eq!(of(&host, nightly).len(), 7);
    let weekend_items = of(&host, group_window);
    assert_eq!(weekend_items.len(), 2);
    assert_eq!(weekend_items[0]["group_id"], web);
    assert_eq!(weekend_items[0]["group_name"], "web");
    assert_eq!(weekend_items[0]["time_zone"], "Europe/Berlin");
    assert_eq!(
        (weekend_items[0]["host_id"].clone(), weekend_items[0]["host_name"].clone()),
        (Value::Null, Value::Null)
    );
    let nightly_items = of(&host, nightly);
    assert_eq!(nightly_items[0]["host_name"], "h1");
    assert_eq!(nightly_items[0]["time_zone"], "UTC");
    assert_eq!(nightly_items[0]["group_name"], Value::Null);
    assert_eq!(
        (weekend_items[0]["start"].clone(), weekend_items[0]["end"].clone()),
        (json!("2030-06-08T00:00:00Z"), json!("2030-06-08T03:00:00Z"))
    );
    assert_eq!(
        weekend_items[0]["blocked"],
        json!([{ "start": "2030-06-08T00:00:00Z", "end": "2030-06-08T01:00:00Z" }])
    );
    assert_eq!(weekend_items[1]["blocked"], json!([]));
    let starts: Vec<&str> = host.iter().map(|o| o["start"].as_str().unwrap()).collect();
    assert!(starts.windows(2).all(|p| p[0] <= p[1]), "in start order: {starts:?}");

    // The group: its own windows only.
    let group = occurrences(format!("{week}&group_id={web}")).await;
    assert_eq!(
        group.iter().map(|o| o["window_id"].as_i64().unwrap()).collect::<Vec<_>>(),
        [group_window, group_window]
    );
    assert_eq!(group[0]["blocked"].as_array().unwrap().len(), 1);

    // The fleet over June: every enabled window; June has no 31st, so the 30th.
    let fleet = occurrences("from=2030-06-03T00:00:00Z&to=2030-07-01T00:00:00Z".into()).await;
    assert_eq!(of(&fleet, nightly).len(), 28);
    assert_eq!(of(&fleet, group_window).len(), 8);
    let month = of(&fleet, month_end);
    assert_eq!(month.len(), 1);
    assert_eq!((month[0]["start"].clone(), month[0]["host_id"].clone()), (json!("2030-06-30T01:00:00Z"), json!(h2)));
    assert_eq!(month[0]["host_name"], "h2", "every target named in the fleet view");
    assert!(of(&fleet, nightly).iter().all(|o| o["host_name"] == "h1"));
    assert!(of(&fleet, group_window).iter().all(|o| o["group_name"] == "web" && o["time_zone"] == "Europe/Berlin"));
    assert_eq!(fleet.len(), 37, "the disabled db window is left out");

    // Across spring forward in New York (2031-03-09): 02:30 does not exist and runs at 03:00 EDT.
    let h3 = new_host(&admin, "h3.example.com").await;
    let early = json!({ "name": "early", "host_id": h3, "recurrence": { "kind": "daily" },
                        "start_time": "02:30", "duration_minutes": 30, "time_zone": "America/New_York" });
    create(&admin, "/api/v1/maintenance-windows", early).await;
    let dst = occurrences(format!("from=2031-03-08T00:00:00Z&to=2031-03-11T00:00:00Z&host_id={h3}")).await;
    let starts: Vec<&str> = dst.iter().map(|o| o["start"].as_str().unwrap()).collect();
    assert_eq!(starts, ["2031-03-08T07:30:00Z", "2031-03-09T07:00:00Z", "2031-03-10T06:30:00Z"]);
    m.stop().await;
});

both_backends!(occurrences_name_only_the_callers_groups, |m: TestManager| async move {
    travel_to(&m, "2030-06-03T00:00:00Z");
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (viewer, vic) = token_user(&m, "vic", Role::Viewer).await;
    let web = new_group(&admin, "web").await;
    let secret = new_group(&admin, "secret").await;
    let (status, _) = admin.put(&format!("/api/v1/groups/{web}/users/{}", vic.id), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let host = new_host(&admin, "both.example.com").await;
    join(&admin, web, host).await;
    join(&admin, secret, host).await;
    let ours = id(&create(&admin, "/api/v1/maintenance-windows", weekend(web)).await);
    let theirs = id(&create(&admin, "/api/v1/maintenance-windows", weekend(secret)).await);
    let path = format!(
        "/api/v1/maintenance-windows/occurrences?from=2030-06-03T00:00:00Z&to=2030-06-10T00:00:00Z&host_id={host}"
    );
    let names = |body: &Value, window: i64| -> Vec<Value> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["window_id"] == window)
            .map(|o| o["group_name"].clone())
            .collect()
    };
    // The host's calendar holds the windows of all its groups; a viewer in only one of them sees
    // the other's id (as before) but not its name.
    let (status, seen) = viewer.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(names(&seen, ours), [json!("web"), json!("web")]);
    assert_eq!(names(&seen, theirs), [Value::Null, Value::Null]);
    let (_, all) = admin.get(&path).await;
    assert_eq!(names(&all, theirs), [json!("secret"), json!("secret")]);
    m.stop().await;
});

both_backends!(next_window_inherits_clips_and_catches_up, |m: TestManager| async move {
    travel_to(&m, "2030-06-03T00:00:00Z");
    // API tokens, which outlive the days this test moves the clock by (a session would not).
    let (admin, _) = token_user(&m, "root", Role::Admin).await;
    let (viewer, vic) = token_user(&m, "vic", Role::Viewer).await;
    let web = new_group(&admin, "web").await;
    let (status, _) = admin.put(&format!("/api/v1/groups/{web}/users/{}", vic.id), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let member = new_host(&admin, "member.example.com").await;
    let loner = new_host(&admin, "loner.example.com").await;
    join(&admin, web, member).await;
    create(&admin, "/api/v1/maintenance-windows", weekend(web)).await;
    let freeze = json!({ "name": "saturday", "starts_at": "2030-06-08T00:00:00Z", "ends_at": "2030-06-08T01:00:00Z" });
    create(&admin, "/api/v1/blackouts", freeze).await;

    let next = |host: i64, query: &'static str| {
        let viewer = viewer.clone();
        async move {
            let (status, body) = viewer.get(&format!("/api/v1/hosts/{host}/next-window{query}")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    // No window applies: null, and why.
    let none = next(loner, "").await;
    assert_eq!(
        (none["open"].clone(), none["reason"].clone(), none["windows"].clone()),
        (Value::Null, json!("no_windows"), json!(0))
    );
    assert_eq!(none["splay_start"], Value::Null);

    // Inherited from the group, with the blackout cut off the front: Saturday 01:00–03:00 UTC.
    let saturday = json!({ "start": "2030-06-08T01:00:00Z", "end": "2030-06-08T03:00:00Z" });
    let body = next(member, "").await;
    assert_eq!(
        (body["open"].clone(), body["open_now"].clone(), body["reason"].clone()),
        (saturday.clone(), json!(false), Value::Null)
    );
    assert_eq!(body["windows"], 1);
    let splay: Timestamp = body["splay_start"].as_str().unwrap().parse().unwrap();
    let open_start: Timestamp = "2030-06-08T01:00:00Z".parse().unwrap();
    assert!(open_start <= splay && splay < open_start + SignedDuration::from_hours(1), "first half: {splay}");
    assert_eq!(next(member, "").await["splay_start"], body["splay_start"], "the same every time");
    assert_eq!(next(member, "?splay=0").await["splay_start"], "2030-06-08T01:00:00Z");

    // In the blackout: blocked now, the open part after it is next.
    travel_to(&m, "2030-06-08T00:30:00Z");
    let body = next(member, "").await;
    assert_eq!(
        (body["blocked_now"].clone(), body["open_now"].clone(), body["open"].clone()),
        (json!(true), json!(false), saturday.clone())
    );
    // Inside the window: open now.
    travel_to(&m, "2030-06-08T01:30:00Z");
    let body = next(member, "").await;
    assert_eq!((body["open_now"].clone(), body["open"].clone()), (json!(true), saturday));
    // Offline through Saturday's window: Sunday's serves it (catch-up).
    travel_to(&m, "2030-06-08T05:00:00Z");
    let body = next(member, "").await;
    assert_eq!(body["open"], json!({ "start": "2030-06-09T00:00:00Z", "end": "2030-06-09T03:00:00Z" }));
    assert_eq!(body["open_now"], false);

    // Only a past one-off window: none within the horizon.
    let mut once = weekend(web);
    once["group_id"] = Value::Null;
    once["host_id"] = json!(loner);
    once["recurrence"] = json!({ "kind": "once", "date": "2030-06-01" });
    create(&admin, "/api/v1/maintenance-windows", once).await;
    let body = next(loner, "").await;
    assert_eq!(
        (body["open"].clone(), body["reason"].clone(), body["windows"].clone()),
        (Value::Null, json!("none_within_horizon"), json!(1))
    );
    m.stop().await;
});
