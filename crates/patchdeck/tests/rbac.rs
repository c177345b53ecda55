//! The route table, walked: every route the router registers is called by nobody, a viewer, an
//! operator and an admin, and must answer exactly as its `Permission` says; the table and the
//! OpenAPI document must list the same routes; and bad input on every route that takes a body
//! or a path id is a 4xx in the error envelope that changes nothing. On SQLite and PostgreSQL.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Client, TestManager};
use jiff::SignedDuration;
use patchdeck::web::authz::Permission;
use patchdeck::web::router::RouteSpec;
use patchdeck_crypto::token::OpaqueToken;
use patchdeck_store::{AuthSource, NewApiToken, NewSession, NewUser, NewWebauthnCredential, Role};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Public routes that authenticate with a credential of their own rather than the access token:
/// without one they answer 401 (or 403 `csrf_failed`), which is right for them.
const SELF_AUTHENTICATED: &[(&str, &str)] = &[("POST", "/api/v1/auth/refresh")];

/// Routes that answer with an endless stream (Server-Sent Events): only the status (and, for a
/// refusal, the error body) is read.
const STREAMS: &[&str] = &["/api/v1/events"];

/// Real objects for every `{param}` of the route table. They belong to a throwaway user, so
/// the destructive routes (delete a user, end sessions, revoke tokens) never hit the callers.
struct Fixtures {
    /// The throwaway user.
    user: i64,
    /// A session, an API token and a passkey of the throwaway user.
    session: i64,
    api_token: i64,
    passkey: i64,
    group: i64,
    host: i64,
    /// A certificate (the host's push-mode server certificate).
    serial: String,
    registration_token: i64,
    /// A pending command for `host`.
    command: String,
    /// A discovery (of one address where nothing listens).
    discovery: String,
    /// A maintenance window of `group` and a blackout of `group`.
    maintenance_window: i64,
    blackout: i64,
    /// A notification channel (a Slack-format webhook to a closed loopback port) and a rule.
    notification_channel: i64,
    notification_rule: i64,
    /// A deployment of `host`.
    deployment: i64,
}

impl Fixtures {
    async fn create(m: &TestManager, admin: &Client) -> Fixtures {
        let store = m.state.store();
        let now = m.state.now();
        let new = NewUser {
            username: "throwaway".into(),
            display_name: "Throwaway".into(),
            role: Role::Viewer,
            password_hash: None,
            auth_source: AuthSource::Local,
            oidc: None,
            must_change_password: false,
        };
        let user = store.create_user(&new, now).await.unwrap();
        let session = NewSession {
            user_id: user.id,
            refresh_token_hash: OpaqueToken::generate("rt").unwrap().hash().0,
            idle_timeout: SignedDuration::from_hours(1),
            absolute_lifetime: SignedDuration::from_hours(12),
            source_ip: None,
            user_agent: None,
            mfa_method: None,
        };
        let session = store.create_session(&session, now).await.unwrap();
        let api_token = NewApiToken {
            user_id: user.id,
            token_hash: OpaqueToken::generate("api").unwrap().hash().0,
            label: "throwaway".into(),
            expires_at: now + SignedDuration::from_hours(24),
        };
        let api_token = store.create_api_token(&api_token, now).await.unwrap();
        let passkey = NewWebauthnCredential {
            user_id: user.id,
            credential_id: b"rbac-matrix-credential".to_vec(),
            public_key: vec![0xa5; 77],
            sign_count: 0,
            name: "lost key".into(),
        };
        let passkey = store.add_webauthn_credential(&passkey, now).await.unwrap();
        let (status, group) = admin.post("/api/v1/groups", json!({ "name": "matrix" })).await;
        assert_eq!(status, StatusCode::CREATED, "{group}");
        let (status, host) = admin.post("/api/v1/hosts", json!({ "fqdn": "matrix.example.com" })).await;
        assert_eq!(status, StatusCode::CREATED, "{host}");
        let host = host["id"].as_i64().unwrap();
        let (status, bundle) = admin.post(&format!("/api/v1/hosts/{host}/push-bundle"), json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{bundle}");
        let (status, token) = admin
            .post("/api/v1/registration-tokens", json!({ "label": "matrix", "seats": 1, "expires_in_hours": 1 }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{token}");
        let command = patchdeck_store::NewCommand {
            host: patchdeck_store::HostId(host),
            command: patchdeck_proto::agent::Command::RefreshMetadata,
            created_by: None,
            retry_of: None,
            deliver_by: now + SignedDuration::from_hours(1),
        };
        let command = store.queue_command(&command, now).await.unwrap().id.to_string();
        let (status, discovery) = admin.post("/api/v1/discoveries", json!({ "cidr": "127.0.0.1/32", "port": 9 })).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{discovery}");
        let group_id = group["id"].as_i64().unwrap();
        let (status, window) = admin
            .post(
                "/api/v1/maintenance-windows",
                json!({ "name": "matrix", "group_id": group_id, "recurrence": { "kind": "daily" },
                        "start_time": "02:00", "duration_minutes": 60, "time_zone": "UTC" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{window}");
        let (status, blackout) = admin
            .post(
                "/api/v1/blackouts",
                json!({ "name": "matrix", "group_id": group_id, "starts_at": "2030-01-01T00:00:00Z",
                        "ends_at": "2030-01-02T00:00:00Z" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{blackout}");
        let (status, channel) = admin
            .post(
                "/api/v1/notification-channels",
                json!({ "name": "matrix", "kind": "webhook",
                        "settings": { "url": "http://127.0.0.1:9/hook", "format": "slack" } }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{channel}");
        let notification_channel = channel["id"].as_i64().unwrap();
        let (status, rule) = admin
            .post(
                "/api/v1/notification-rules",
                json!({ "name": "matrix", "events": ["host.unreachable"], "channel_id": notification_channel }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{rule}");
        let (status, deployment) = admin
            .post(
                "/api/v1/deployments",
                json!({ "name": "matrix", "target": { "host_ids": [host] }, "selection": { "type": "all" },
                        "schedule": "now" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{deployment}");
        Fixtures {
            deployment: deployment["id"].as_i64().unwrap(),
            maintenance_window: window["id"].as_i64().unwrap(),
            blackout: blackout["id"].as_i64().unwrap(),
            notification_channel,
            notification_rule: rule["id"].as_i64().unwrap(),
            command,
            discovery: discovery["id"].as_str().unwrap().to_owned(),
            user: user.id.0,
            session: session.id.0,
            api_token: api_token.id.0,
            passkey: passkey.id.0,
            group: group["id"].as_i64().unwrap(),
            host,
            serial: bundle["serial"].as_str().unwrap().to_owned(),
            registration_token: token["id"].as_i64().unwrap(),
        }
    }

    /// The value for `{name}` after the path segment `parent`.
    fn value(&self, path: &str, parent: &str, name: &str) -> String {
        match (parent, name) {
            ("users", "id") | (_, "user_id") => self.user.to_string(),
            ("groups", "id") => self.group.to_string(),
            ("hosts", "id") | ("enrollments", "id") | (_, "host_id") => self.host.to_string(),
            ("commands", "id") => self.command.clone(),
            ("discoveries", "id") => self.discovery.clone(),
            ("registration-tokens", "id") => self.registration_token.to_string(),
            ("sessions", "id") => self.session.to_string(),
            ("tokens", "id") => self.api_token.to_string(),
            ("passkeys", "id") => self.passkey.to_string(),
            ("maintenance-windows", "id") => self.maintenance_window.to_string(),
            ("blackouts", "id") => self.blackout.to_string(),
            (_, "serial") => self.serial.clone(),
            ("notification-channels", "id") => self.notification_channel.to_string(),
            ("notification-rules", "id") => self.notification_rule.to_string(),
            ("deployments", "id") => self.deployment.to_string(),
            _ => panic!("no fixture for {{{name}}} in {path}: add one to Fixtures"),
        }
    }

    /// `path` with every `{param}` filled in, except parameter number `bad.0` which becomes
    /// `bad.1`.
    fn fill(&self, path: &str, bad: Option<(usize, &str)>) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        let mut param = 0;
        let mut out = Vec::with_capacity(segments.len());
        for (i, segment) in segments.iter().enumerate() {
            let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                out.push((*segment).to_owned());
                continue;
            };
            let value = match bad {
                Some((index, value)) if index == param => value.to_owned(),
                _ => self.value(path, segments[i - 1], name),
            };
            out.push(value);
            param += 1;
        }
        out.join("/")
    }
}

fn params(path: &str) -> usize {
    path.matches('{').count()
}

fn takes_body(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// The route table of the running manager.
fn route_table(m: &TestManager) -> Vec<RouteSpec> {
    patchdeck::web::router::api(m.state.clone()).1
}

/// Every operation of the OpenAPI document, and whether it declares a request body.
fn openapi_operations() -> BTreeMap<(String, String), bool> {
    let document = patchdeck::web::openapi::document();
    let mut operations = BTreeMap::new();
    for (path, item) in &document.paths.paths {
        let methods = [
            ("GET", &item.get),
            ("PUT", &item.put),
            ("POST", &item.post),
            ("DELETE", &item.delete),
            ("OPTIONS", &item.options),
            ("HEAD", &item.head),
            ("PATCH", &item.patch),
            ("TRACE", &item.trace),
        ];
        for (method, operation) in methods {
            if let Some(operation) = operation {
                operations.insert((method.to_owned(), path.clone()), operation.request_body.is_some());
            }
        }
    }
    operations
}

/// Order for the matrix: harmless routes first, then deletions, then deletions of the objects
/// other routes use, then logout (which ends the caller's session).
fn rank(spec: &RouteSpec) -> u8 {
    if spec.path == "/api/v1/auth/logout" {
        3
    } else if spec.method == Method::DELETE
        && ["/api/v1/users/{id}", "/api/v1/groups/{id}", "/api/v1/hosts/{id}"].contains(&spec.path)
    {
        2
    } else if spec.method == Method::DELETE {
        1
    } else {
        0
    }
}

fn route_name(spec: &RouteSpec) -> String {
    format!("{} {}", spec.method, spec.path)
}

both_backends!(every_route_answers_as_its_permission_says, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (operator, olga) = m.signed_in("olga", Role::Operator).await;
    let (viewer, vic) = m.signed_in("vic", Role::Viewer).await;
    let nobody = m.client();
    let fixtures = Fixtures::create(&m, &admin).await;
    // Members of the group, so the scoped routes answer them with the object, not 404.
    for user in [olga.id, vic.id] {
        let (status, body) = admin.put(&format!("/api/v1/groups/{}/users/{user}", fixtures.group), json!({})).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }

    // The table and the OpenAPI document list the same routes.
    let mut specs = route_table(&m);
    let table: BTreeSet<(String, String)> = specs.iter().map(|s| (s.method.to_string(), s.path.to_owned())).collect();
    assert_eq!(table.len(), specs.len(), "a route is registered twice");
    let documented: BTreeSet<(String, String)> = openapi_operations().into_keys().collect();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&table).collect();
    assert!(undocumented.is_empty(), "routes missing from the OpenAPI document: {undocumented:?}");
    assert!(unrouted.is_empty(), "OpenAPI operations with no route: {unrouted:?}");

    specs.sort_by_key(rank);
    let denied_before = m.state.store().audit_entries_after(None, 10_000).await.unwrap();
    let denied_before = denied_before.iter().filter(|e| e.action == "authz.denied").count();
    let callers = [
        (&nobody, None),
        (&viewer, Some(Role::Viewer)),
        (&operator, Some(Role::Operator)),
        (&admin, Some(Role::Admin)),
    ];
    let mut failures = Vec::new();
    let mut denials = 0;
    let mut calls = 0;
    for spec in &specs {
        let path = fixtures.fill(spec.path, None);
        let body = takes_body(&spec.method).then(|| json!({}));
        let public = spec.permission == Permission::Public;
        let self_authenticated = SELF_AUTHENTICATED.contains(&(spec.method.as_str(), spec.path));
        for (client, role) in &callers {
            let (status, answer) = if STREAMS.contains(&spec.path) {
                let response = client.raw(spec.method.clone(), &path, body.clone()).await;
                let status = response.status();
                let answer =
                    if status.is_success() { Value::Null } else { response.json().await.unwrap_or(Value::Null) };
                (status, answer)
            } else {
                client.send(spec.method.clone(), &path, body.clone()).await
            };
            calls += 1;
            let who = role.map_or("nobody", |r| r.as_str());
            let code = answer["error"]["code"].as_str().unwrap_or_default().to_owned();
            let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            let problem = match role {
                // Agent routes accept no user credential at all: only an agent's client certificate.
                _ if spec.permission == Permission::Agent => (status != StatusCode::UNAUTHORIZED
                    || code != "client_certificate_required")
                    .then(|| "expected 401 client_certificate_required without an agent certificate".to_owned()),
                None if public && self_authenticated => {
                    let own_reason = (status == StatusCode::UNAUTHORIZED && code == "unauthorized")
                        || (status == StatusCode::FORBIDDEN && code == "csrf_failed");
                    (!own_reason)
                        .then(|| "expected 401 unauthorized or 403 csrf_failed without its credential".to_owned())
                }
                None if public => refused.then(|| "a public route refused".to_owned()),
                None => (status != StatusCode::UNAUTHORIZED || code != "unauthorized")
                    .then(|| "expected 401 unauthorized without credentials".to_owned()),
                Some(role) if spec.permission.allows(*role) => {
                    refused.then(|| "an allowed role was refused".to_owned())
                }
                Some(_) => {
                    denials += 1;
                    (status != StatusCode::FORBIDDEN || code != "forbidden")
                        .then(|| "expected 403 forbidden for a role the permission excludes".to_owned())
                }
            };
            if let Some(problem) = problem {
                failures.push(format!(
                    "{} as {who} ({:?}): {problem}; got {status} {answer}",
                    route_name(spec),
                    spec.permission
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {calls} calls misbehaved:\n{}", failures.len(), failures.join("\n"));
    assert!(denials > 0, "no route refused any role");
    // Every refusal for a role is in the audit log.
    let log = m.state.store().audit_entries_after(None, 10_000).await.unwrap();
    let denied = log.iter().filter(|e| e.action == "authz.denied").count() - denied_before;
    assert_eq!(denied, denials, "one authz.denied entry per refused call");
    m.stop().await;
});

/// Raw requests (any body, any content type) as the admin, with an API token.
struct Raw {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Raw {
    fn new(m: &TestManager, token: &str) -> Raw {
        let ca = reqwest::Certificate::from_pem(m.ca_pem.as_bytes()).unwrap();
        let http = reqwest::Client::builder().add_root_certificate(ca).resolve("localhost", m.addr).build().unwrap();
        Raw { http, base: m.base.clone(), token: token.to_owned() }
    }

    async fn send(&self, method: Method, path: &str, body: Option<(&str, &str)>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body.to_owned());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or(Value::Null))
    }
}

/// Everything bad input could have changed: the listings an admin sees, the throwaway user's
/// credentials, the settings, and the audit log without the entries that requests themselves
/// cause (`authz.denied`, `auth.*`).
async fn snapshot(m: &TestManager, admin: &Client, fixtures: &Fixtures) -> Value {
    let mut state = serde_json::Map::new();
    let user = fixtures.user;
    let group = fixtures.group;
    let host = fixtures.host;
    for path in [
        "/api/v1/users?limit=500".to_owned(),
        "/api/v1/hosts?limit=500".to_owned(),
        "/api/v1/groups?limit=500".to_owned(),
        "/api/v1/registration-tokens?limit=500".to_owned(),
        "/api/v1/certificates?limit=500".to_owned(),
        "/api/v1/auth/tokens".to_owned(),
        "/api/v1/auth/sessions".to_owned(),
        "/api/v1/settings".to_owned(),
        "/api/v1/settings/sso".to_owned(),
        format!("/api/v1/users/{user}/sessions"),
        format!("/api/v1/groups/{group}/members"),
        format!("/api/v1/hosts/{host}"),
        "/api/v1/maintenance-windows?limit=500".to_owned(),
        "/api/v1/blackouts?limit=500".to_owned(),
    ] {
        let (status, body) = admin.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        state.insert(path, body);
    }
    let store = m.state.store();
    let throwaway = patchdeck_store::UserId(user);
    let passkeys = store.list_webauthn_credentials(throwaway).await.unwrap();
    state.insert("passkeys".into(), json!(passkeys.iter().map(|p| p.id.0).collect::<Vec<_>>()));
    let tokens = store.list_api_tokens(throwaway).await.unwrap();
    state.insert("throwaway tokens".into(), json!(tokens));
    state.insert("settings rows".into(), json!(store.list_settings().await.unwrap()));
    let log = store.audit_entries_after(None, 10_000).await.unwrap();
    let changes: Vec<&str> = log
        .iter()
        .filter(|e| e.action != "authz.denied" && !e.action.starts_with("auth."))
        .map(|e| e.action.as_str())
        .collect();
    state.insert("audit".into(), json!(changes));
    Value::Object(state)
}

/// A 4xx in the error envelope, or why not.
fn envelope_problem(status: StatusCode, body: &Value) -> Option<String> {
    let error = &body["error"];
    let non_empty = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    if !status.is_client_error() {
        return Some(format!("status {status}"));
    }
    if !non_empty(&error["code"]) || !non_empty(&error["message"]) || !non_empty(&error["request_id"]) {
        return Some(format!("no error envelope: {body}"));
    }
    None
}

both_backends!(bad_input_is_refused_and_changes_nothing, |m: TestManager| async move {
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let fixtures = Fixtures::create(&m, &admin).await;
    let (status, token) =
        admin.post("/api/v1/auth/tokens", json!({ "label": "bad input", "expires_in_days": 1 })).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let raw = Raw::new(&m, token["token"].as_str().unwrap());
    assert_eq!(raw.send(Method::GET, "/api/v1/auth/me", None).await.0, StatusCode::OK);

    let specs = route_table(&m);
    let operations = openapi_operations();
    let bad_bodies: [(&str, &str, &str); 4] = [
        ("non-JSON", "text/plain", "name=web&seats=3"),
        ("malformed JSON", "application/json", "{\"name\": \"web\", "),
        ("an array", "application/json", "[{\"name\": \"web\"}]"),
        ("an unknown field", "application/json", "{\"unexpected_field\": true}"),
    ];
    let before = snapshot(&m, &admin, &fixtures).await;
    let mut failures = Vec::new();
    let mut body_routes = Vec::new();
    let mut id_routes = 0;
    for spec in &specs {
        let declares_body = operations[&(spec.method.to_string(), spec.path.to_owned())];
        if declares_body {
            body_routes.push(route_name(spec));
            let path = fixtures.fill(spec.path, None);
            for (what, content_type, body) in bad_bodies {
                let (status, answer) = raw.send(spec.method.clone(), &path, Some((content_type, body))).await;
                if let Some(problem) = envelope_problem(status, &answer) {
                    failures.push(format!("{} with {what}: {problem}", route_name(spec)));
                }
            }
        }
        if params(spec.path) > 0 {
            id_routes += 1;
        }
        for index in 0..params(spec.path) {
            for bad in ["abc", "-1"] {
                let path = fixtures.fill(spec.path, Some((index, bad)));
                let body = takes_body(&spec.method).then_some(("application/json", "{}"));
                let (status, answer) = raw.send(spec.method.clone(), &path, body).await;
                if let Some(problem) = envelope_problem(status, &answer) {
                    failures.push(format!("{} as {path}: {problem}", route_name(spec)));
                }
            }
        }
    }
    assert!(failures.is_empty(), "bad input was not refused properly:\n{}", failures.join("\n"));
    // The routes this covered include every body-taking route of the resources in this file.
    for route in [
        "POST /api/v1/groups",
        "PATCH /api/v1/groups/{id}",
        "POST /api/v1/hosts",
        "POST /api/v1/registration-tokens",
        "PATCH /api/v1/settings",
        "POST /api/v1/users",
    ] {
        assert!(body_routes.iter().any(|r| r == route), "{route} declares no request body");
    }
    assert!(id_routes >= 20, "only {id_routes} routes with path ids");
    let after = snapshot(&m, &admin, &fixtures).await;
    if before != after {
        let changed: Vec<&String> = before
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| after.get(k.as_str()) != Some(v))
            .map(|(k, _)| k)
            .collect();
        panic!("bad input changed {changed:?}:\nbefore {before}\nafter {after}");
    }
    m.stop().await;
});
