//! The push-mode HTTP API end to end: REAL mutual TLS over loopback (certificates made here with
//! rcgen), a real HTTP client (reqwest on rustls/ring, HTTP/1.1 and HTTP/2) and a real WebSocket
//! client, in front of the job engine on a REAL apt sandbox from `patchdeck-testkit` (hello 1.0-1 →
//! 1.1-1, the security update other 1.0-1 → 1.2-1, grower 1.0-1 → 2.0-1 pulling in newdep).
//!
//! The only fakes: the rebooter (tests never reboot the machine) and `systemctl` (a script: the
//! test machine has no running systemd). Timeouts only guard against hangs; no test asserts a
//! duration.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use patchdeck_agent::api::ratelimit::Rate;
use patchdeck_agent::api::router::ALLOWED_METHODS;
use patchdeck_agent::api::{
    ApiConfig, ApiState, Inventory, InventoryConfig, RateLimitConfig, ServeConfig, MAX_BODY_BYTES,
};
use patchdeck_agent::jobs::{EngineConfig, JobEngine, PackageBackend, RebootError, Rebooter, SystemClock};
use patchdeck_agent::transport::{AllowList, Listener, ServerTls, TlsPaths, TransportConfig};
use patchdeck_proto::BackendKind;
use patchdeck_testkit::pki::{Ca, Leaf};
use patchdeck_testkit::serve::ServeFiles;
use patchdeck_testkit::AptSandbox;
use rcgen::ExtendedKeyUsagePurpose;
use reqwest::{Method, StatusCode};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// Guard against hangs only.
const GUARD: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Test PKI

fn client_tls(ca: &Ca, leaf: &Leaf, alpn: &[&[u8]]) -> ClientConfig {
    ca.client_tls(leaf, alpn)
}

// ---------------------------------------------------------------------------------------------
// Harness

#[derive(Debug, Default)]
struct NoReboot;

impl Rebooter for NoReboot {
    fn reboot(&self, delay: Duration, _message: Option<&str>) -> Result<String, RebootError> {
        Ok(format!("test: would reboot in {}s", delay.as_secs()))
    }

    fn restart_agent(&self) -> Result<String, RebootError> {
        Ok("test: would restart the agent".to_owned())
    }
}

/// A fake `systemctl show`: `cron` is a running service, anything else is not found.
const FAKE_SYSTEMCTL: &str = r#"#!/bin/sh
for last; do :; done
case "$last" in
  cron) printf 'MainPID=421\nId=cron.service\nDescription=Regular background program processing daemon\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\n' ;;
  *) printf 'MainPID=0\nId=%s.service\nDescription=%s.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n' "$last" "$last" ;;
esac
"#;

struct Agent {
    _dir: tempfile::TempDir,
    ca: Ca,
    engine: JobEngine,
    inventory: Inventory,
    tls: ServerTls,
    systemctl: std::path::PathBuf,
    servers: Vec<(SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>)>,
}

impl Agent {
    async fn start(sb: &AptSandbox, engine_config: EngineConfig) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Patchdeck API Test CA");
        let server = ca.leaf("agent-under-test", &["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth, &[0x10, 1]);
        let paths = TlsPaths {
            ca_bundle: dir.path().join("ca.pem"),
            server_cert: dir.path().join("server.pem"),
            server_key: dir.path().join("server.key"),
            crl: None,
        };
        std::fs::write(&paths.ca_bundle, ca.cert.pem()).unwrap();
        std::fs::write(&paths.server_cert, server.cert.pem()).unwrap();
        std::fs::write(&paths.server_key, server.key.serialize_pem()).unwrap();
        let systemctl = dir.path().join("systemctl");
        std::fs::write(&systemctl, FAKE_SYSTEMCTL).unwrap();
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let backend = PackageBackend { kind: BackendKind::Apt, options: sb.options() };
        let engine = JobEngine::open(
            &dir.path().join("state"),
            engine_config,
            backend.clone(),
            Arc::new(NoReboot),
            Arc::new(SystemClock),
        )
        .unwrap();
        let inventory = Inventory::load(
            backend,
            engine.clone(),
            InventoryConfig { max_age: Duration::from_secs(300), busy_poll: Duration::from_millis(100) },
        )
        .await
        .expect("first inventory snapshot");
        let tls = ServerTls::load(&paths).unwrap();
        Agent { _dir: dir, ca, engine, inventory, tls, systemctl, servers: Vec::new() }
    }

    /// Starts one more server over the same engine and inventory; returns its address.
    async fn serve(&mut self, rate_limits: RateLimitConfig) -> SocketAddr {
        let config = ApiConfig { rate_limits, systemctl: self.systemctl.clone(), ..ApiConfig::default() };
        let state = ApiState::new(self.engine.clone(), self.inventory.clone(), config);
        let allow = AllowList::from_entries(&["127.0.0.1"]).await.unwrap();
        let listener = Listener::bind("127.0.0.1:0", TransportConfig::new(allow, self.tls.clone())).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(patchdeck_agent::api::serve_with(listener, state, ServeConfig::default(), async {
            let _ = stopped.await;
        }));
        self.servers.push((addr, stop, task));
        addr
    }

    fn client(&self, addr: SocketAddr, cn: &str, serial: &[u8]) -> Client {
        let leaf = self.ca.leaf(cn, &[], ExtendedKeyUsagePurpose::ClientAuth, serial);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(client_tls(&self.ca, &leaf, &[b"http/1.1"]))
            .timeout(GUARD)
            .build()
            .unwrap();
        Client { http, base: format!("https://127.0.0.1:{}", addr.port()), leaf, addr }
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    leaf: Leaf,
    addr: SocketAddr,
}

struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn data(&self) -> &Value {
        &self.body["data"]
    }
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        check_envelope(&body);
        assert_eq!(headers.get("x-request-id").and_then(|v| v.to_str().ok()), body["request_id"].as_str());
        Reply { status, headers, body }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Polls a job until it is terminal.
    async fn finished(&self, id: &str) -> Value {
        for _ in 0..1200 {
            let reply = self.get(&format!("/api/v1/jobs/{id}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            let status = reply.data()["status"].as_str().unwrap().to_owned();
            if !matches!(status.as_str(), "pending" | "running") {
                return reply.data().clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("job {id} did not finish");
    }

    /// Polls until `cond` holds for the reply of `GET path`.
    async fn until(&self, path: &str, what: &str, cond: impl Fn(&Reply) -> bool) -> Reply {
        for _ in 0..600 {
            let reply = self.get(path).await;
            if cond(&reply) {
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting until {what}");
    }
}

/// Every response is the §3.2 envelope: exactly these keys, a UUID v4 and an RFC 3339 time.
fn check_envelope(body: &Value) {
    assert_eq!(keys(body), set(&["success", "request_id", "timestamp", "data", "error"]), "{body}");
    let id = Uuid::parse_str(body["request_id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 4);
    body["timestamp"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    if body["success"] == json!(true) {
        assert!(body["error"].is_null() && !body["data"].is_null(), "{body}");
    } else {
        assert!(body["data"].is_null(), "{body}");
        assert_eq!(keys(&body["error"]), set(&["code", "message", "details", "retryable"]), "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

fn generous() -> RateLimitConfig {
    RateLimitConfig { reads: Rate { per_minute: 6000, burst: 1000 }, mutations: Rate { per_minute: 6000, burst: 1000 } }
}

fn installed_sandbox() -> AptSandbox {
    AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1", "grower=1.0-1"]).build()
}

const PACKAGE_KEYS: &[&str] = &[
    "name",
    "version",
    "status",
    "upgradable",
    "latest_version",
    "description",
    "dependencies",
    "reverse_dependencies",
    "install_date",
    "size_installed",
    "cve_ids",
];

// ---------------------------------------------------------------------------------------------
// Reads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_have_the_contract_shape() {
    let sb = installed_sandbox();
    let mut agent = Agent::start(&sb, EngineConfig::default()).await;
    let addr = agent.serve(generous()).await;
    let c = agent.client(addr, "manager", &[0x42]);

    // GET /packages: every installed package, sorted by name, with the update's data.
    let r = c.get("/api/v1/packages").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(keys(r.data()), set(&["packages", "total"]));
    assert_eq!(r.data()["total"], json!(3));
    let names: Vec<&str> =
        r.data()["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["grower", "hello", "other"]);
    let hello = &r.data()["packages"][1];
    assert_eq!(keys(hello), set(PACKAGE_KEYS));
    assert_eq!(
        (&hello["version"], &hello["status"], &hello["upgradable"], &hello["latest_version"]),
        (&json!("1.0-1"), &json!("upgradable"), &json!(true), &json!("1.1-1"))
    );
    assert_eq!(hello["cve_ids"], json!([]));
    assert!(hello["install_date"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok(), "{hello}");

    // Filters, sort, paging; a trailing slash is tolerated; `total` counts every match.
    let r = c.get("/api/v1/packages/?name=*e*&sort=name&order=desc&limit=1&offset=1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.data()["total"], json!(3));
    assert_eq!(r.data()["packages"][0]["name"], json!("hello"));
    let r = c.get("/api/v1/packages?name=hel*&upgradable=true").await;
    assert_eq!(r.data()["total"], json!(1));
    let r = c.get("/api/v1/packages?status=installed").await;
    assert_eq!(r.data()["total"], json!(0), "every installed package has an update in the sandbox");

    // GET /packages/{name}.
    let r = c.get("/api/v1/packages/other").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(keys(r.data()), set(PACKAGE_KEYS));
    assert_eq!(r.data()["latest_version"], json!("1.2-1"));
    let r = c.get("/api/v1/packages/newdep").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "PKG_NOT_FOUND"));

    // GET /patches: severity from the security class (the security-suite update is `high`).
    let r = c.get("/api/v1/patches").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(keys(r.data()), set(&["patches", "total", "security_updates", "requires_reboot"]));
    assert_eq!((&r.data()["total"], &r.data()["security_updates"]), (&json!(3), &json!(1)));
    let patches = r.data()["patches"].as_array().unwrap();
    for p in patches {
        assert_eq!(
            keys(p),
            set(&[
                "name",
                "current_version",
                "available_version",
                "severity",
                "description",
                "cve_ids",
                "requires_reboot"
            ])
        );
    }
    let other = patches.iter().find(|p| p["name"] == "other").unwrap();
    assert_eq!((&other["current_version"], &other["available_version"]), (&json!("1.0-1"), &json!("1.2-1")));
    assert_eq!(other["severity"], json!("high"));
    let hello = patches.iter().find(|p| p["name"] == "hello").unwrap();
    assert_eq!(hello["severity"], json!("low"));

    // Health, twice, and system info.
    for path in ["/health", "/api/v1/health", "/health/"] {
        let r = c.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        let k = keys(r.data());
        assert!(set(&["status", "uptime_seconds", "version", "cache_status"]).is_subset(&k), "{path}: {}", r.data());
        assert_eq!(r.data()["status"], json!("healthy"));
        assert_eq!(r.data()["version"], json!(env!("CARGO_PKG_VERSION")));
    }
    let r = c.get("/api/v1/system/info").await;
    assert_eq!(r.status, StatusCode::OK);
    let k = keys(r.data());
    assert!(set(&["hostname", "os", "os_version", "kernel", "architecture", "pending_reboot"]).is_subset(&k));
    assert_eq!(r.data()["pending_reboot"], json!(false));
    assert!(!r.data()["kernel"].as_str().unwrap().is_empty());

    // Jobs: none yet.
    let r = c.get("/api/v1/jobs").await;
    assert_eq!(r.data(), &json!({"jobs": [], "total": 0}));

    // Services through systemctl.
    let r = c.get("/api/v1/system/services/cron").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.data(),
        &json!({"name": "cron", "display_name": "Regular background program processing daemon",
                "active_state": "active", "sub_state": "running", "load_state": "loaded",
                "enabled_state": "enabled", "main_pid": 421, "healthy": true})
    );
    let r = c.get("/api/v1/system/services/nosuch").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "SERVICE_NOT_FOUND"));
    let r = c.get("/api/v1/system/services/bad;name").await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "INVALID_SERVICE_NAME"));

    // Every request id is fresh.
    let a = c.get("/health").await.body["request_id"].clone();
    let b = c.get("/health").await.body["request_id"].clone();
    assert_ne!(a, b);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_envelopes_with_the_right_status() {
    let sb = installed_sandbox();
    let mut agent = Agent::start(&sb, EngineConfig::default()).await;
    let addr = agent.serve(generous()).await;
    let c = agent.client(addr, "manager", &[0x42]);

    // Unknown path → 404; known path, wrong method → 405 with Allow.
    let r = c.get("/api/v1/nope").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "NOT_FOUND"));
    let r = c.call(Method::PATCH, "/api/v1/packages", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"));
    assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
    assert_eq!(r.body["error"]["details"]["allowed_methods"], json!(["GET", "HEAD", "POST"]));
    let r = c.call(Method::POST, "/api/v1/jobs/", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = c.call(Method::GET, "/api/v1/patches/apply", None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.header("allow").unwrap().contains("POST"));

    // Every route: the methods it does not serve get 405 with exactly its `Allow`; the ones it does
    // serve do not (sent with an invalid body or path parameter so nothing runs).
    for (pattern, allowed) in ALLOWED_METHODS {
        let path = pattern.replace("/packages/{}", "/packages/-bad").replace("{}", "not-a-uuid");
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let request = c
                .http
                .request(method.clone(), format!("{}{path}", c.base))
                .header("content-type", "application/json")
                .body("{");
            let r = c.send(request).await;
            if allowed.split(", ").any(|m| m == method.as_str()) {
                assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                if method != Method::GET {
                    assert!(r.status.is_client_error(), "{method} {path}: {}", r.body);
                }
            } else {
                assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_eq!(r.header("allow"), Some(*allowed), "{method} {path}");
            }
        }
    }

    // Strict bodies: the error names the field.
    let r = c.call(Method::POST, "/api/v1/packages", Some(json!({"packages": [{"name": "-rf"}]}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    assert_eq!(r.body["error"]["details"]["field"], json!("packages[0].name"));
    let r =
        c.call(Method::POST, "/api/v1/packages", Some(json!({"packages": [{"name": "hello", "versoin": "1"}]}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"]["details"]["field"].as_str().unwrap().contains("versoin"), "{}", r.body);
    let r = c.call(Method::POST, "/api/v1/packages", Some(json!({"packages": []}))).await;
    assert_eq!(r.body["error"]["details"]["field"], json!("packages"));
    let r = c.call(Method::POST, "/api/v1/patches/apply", Some(json!({"allow_reboot": "yes"}))).await;
    assert_eq!(r.body["error"]["details"]["field"], json!("allow_reboot"));
    let r = c.call(Method::POST, "/api/v1/packages", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    let r = c.get("/api/v1/packages?limit=0").await;
    assert_eq!(r.body["error"]["details"]["field"], json!("limit"));
    let r = c.get("/api/v1/packages?colour=red").await;
    assert_eq!(r.body["error"]["details"]["field"], json!("colour"));

    // A body needs Content-Type: application/json.
    let url = format!("{}/api/v1/patches/apply", c.base);
    let r = c.send(c.http.post(&url).body("{}")).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    assert_eq!(r.body["error"]["details"]["field"], json!("content-type"));
    let r = c.send(c.http.post(&url).header("content-type", "text/plain").body("{}")).await;
    assert_eq!(r.body["error"]["details"]["field"], json!("content-type"));
    assert!(r.body["error"]["message"].as_str().unwrap().contains("application/json"));

    // Over 1 MiB → 413, whether announced or streamed.
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let r = c.send(c.http.post(&url).header("content-type", "application/json").body(big.clone())).await;
    assert_eq!((r.status, r.code()), (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"));
    let stream = futures_util::stream::iter(
        big.chunks(64 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let r = c
        .send(c.http.post(&url).header("content-type", "application/json").body(reqwest::Body::wrap_stream(stream)))
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Job ids.
    let r = c.get("/api/v1/jobs/not-a-uuid").await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "INVALID_JOB_ID"));
    let missing = Uuid::new_v4();
    let r = c.get(&format!("/api/v1/jobs/{missing}")).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "JOB_NOT_FOUND"));
    let r = c.call(Method::POST, &format!("/api/v1/jobs/{missing}/rollback"), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "JOB_NOT_FOUND"));
    let r = c.call(Method::DELETE, &format!("/api/v1/jobs/{missing}"), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "JOB_NOT_FOUND"));

    // Unsupported options are refused, not ignored.
    let r = c.call(Method::DELETE, "/api/v1/packages/hello?purge=true", None).await;
    assert_eq!(r.body["error"]["details"]["field"], json!("purge"));

    // An oversized header is refused by hyper (HTTP/1.1: 431), HTTP/2 too.
    let huge = "x".repeat(16 * 1024);
    let response = c.http.get(format!("{}/health", c.base)).header("x-big", &huge).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let h2 = reqwest::Client::builder()
        .use_preconfigured_tls(client_tls(&agent.ca, &c.leaf, &[b"h2"]))
        .http2_prior_knowledge()
        .timeout(GUARD)
        .build()
        .unwrap();
    let ok = h2.get(format!("{}/health", c.base)).send().await.unwrap();
    assert_eq!((ok.status(), ok.version()), (StatusCode::OK, reqwest::Version::HTTP_2));
    match h2.get(format!("{}/health", c.base)).header("x-big", &huge).send().await {
        Ok(response) => assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => assert!(!e.is_timeout(), "refused, not hung: {e}"),
    }
    let _ = c.addr;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_per_client_and_spare_health() {
    let sb = installed_sandbox();
    let mut agent = Agent::start(&sb, EngineConfig::default()).await;
    let tight =
        RateLimitConfig { reads: Rate { per_minute: 1, burst: 3 }, mutations: Rate { per_minute: 1, burst: 1 } };
    let addr = agent.serve(tight).await;
    let a = agent.client(addr, "manager-a", &[0xa1]);
    let b = agent.client(addr, "manager-b", &[0xb2]);

    for _ in 0..3 {
        assert_eq!(a.get("/api/v1/packages").await.status, StatusCode::OK);
    }
    let r = a.get("/api/v1/patches").await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED"));
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.body["error"]["details"]["retry_after_seconds"], json!(retry));
    assert_eq!(r.body["error"]["retryable"], json!(true));
    // Health and system info are exempt; another client has its own bucket.
    for _ in 0..5 {
        assert_eq!(a.get("/health").await.status, StatusCode::OK);
        assert_eq!(a.get("/api/v1/system/info").await.status, StatusCode::OK);
    }
    assert_eq!(b.get("/api/v1/packages").await.status, StatusCode::OK);
    // Mutations have their own, smaller bucket.
    let r = a.call(Method::POST, "/api/v1/packages", Some(json!({"packages": [{"name": "-bad"}]}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = a.call(Method::POST, "/api/v1/packages", Some(json!({"packages": [{"name": "-bad"}]}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED"));
    assert!(r.header("retry-after").is_some());
}

// ---------------------------------------------------------------------------------------------
// Mutations

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn websocket(agent: &Agent, c: &Client) -> Ws {
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client_tls(&agent.ca, &c.leaf, &[b"http/1.1"])));
    let tcp = tokio::net::TcpStream::connect(c.addr).await.unwrap();
    let stream = tls.connect(ServerName::IpAddress(c.addr.ip().into()), tcp).await.unwrap();
    let url = format!("wss://127.0.0.1:{}/api/v1/ws/jobs", c.addr.port());
    let (ws, response) = tokio_tungstenite::client_async(url, stream).await.expect("websocket upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

/// The next text event (pings are answered by tungstenite itself).
async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(GUARD, ws.next()).await.expect("event in time").expect("open").unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

async fn send_ws(ws: &mut Ws, value: Value) {
    ws.send(Message::Text(value.to_string().into())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_then_rollback_with_websocket_events() {
    let sb = installed_sandbox();
    let mut agent = Agent::start(&sb, EngineConfig::default()).await;
    let addr = agent.serve(generous()).await;
    let c = agent.client(addr, "manager", &[0x42]);

    let mut ws = websocket(&agent, &c).await;
    let connected = next_event(&mut ws).await;
    assert_eq!(
        (&connected["event"], &connected["job_id"], &connected["status"]),
        (&json!("connected"), &json!(""), &json!("connected"))
    );
    assert_eq!(keys(&connected), set(&["event", "job_id", "status", "progress", "message", "timestamp"]));
    // A message that cannot be parsed gets an error event; the connection stays open.
    send_ws(&mut ws, json!({"action": "dance"})).await;
    let error = next_event(&mut ws).await;
    assert_eq!((&error["event"], &error["status"]), (&json!("error"), &json!("invalid_message")));

    // Install newdep at an exact version.
    let r = c
        .call(Method::POST, "/api/v1/packages", Some(json!({"packages": [{"name": "newdep", "version": "1.0-1"}]})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.data()["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.data(),
        &json!({"job_id": id, "status": "pending", "operation": "install", "packages": ["newdep"], "package": null})
    );
    // Narrow the stream to this job, then collect its events until job_complete.
    send_ws(&mut ws, json!({"action": "subscribe", "job_id": id})).await;
    let mut events = Vec::new();
    loop {
        let event = next_event(&mut ws).await;
        let kind = event["event"].as_str().unwrap().to_owned();
        if kind == "job_status" || kind == "job_complete" {
            assert_eq!(event["job_id"], json!(id));
        }
        events.push(event);
        if kind == "job_complete" {
            break;
        }
    }
    assert!(events.iter().any(|e| e["event"] == "subscribed" && e["job_id"] == json!(id)), "{events:?}");
    let last_status = events.iter().rev().find(|e| e["event"] == "job_status").unwrap();
    assert_eq!(last_status["status"], json!("completed"));
    assert_eq!(events.last().unwrap()["status"], json!("completed"));

    let job = c.finished(&id).await;
    assert_eq!(job["status"], json!("completed"), "{job}");
    assert_eq!(sb.version_of("newdep").as_deref(), Some("1.0-1"));
    // The inventory is taken again after the job: the package shows as installed.
    let r = c.until("/api/v1/packages/newdep", "newdep is in the inventory", |r| r.status == StatusCode::OK).await;
    assert_eq!((&r.data()["version"], &r.data()["status"]), (&json!("1.0-1"), &json!("installed")));
    let r = c.get("/api/v1/jobs?status=completed").await;
    assert_eq!(r.data()["total"], json!(1));
    assert_eq!(r.data()["jobs"][0]["job_id"], json!(id));

    // Roll it back: newdep is removed again.
    let r = c.call(Method::POST, &format!("/api/v1/jobs/{id}/rollback"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let rollback = r.data()["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.data(),
        &json!({"job_id": rollback, "status": "pending", "operation": "rollback", "original_job_id": id,
                "exclusive_mode": true})
    );
    let done = c.finished(&rollback).await;
    assert_eq!(done["status"], json!("completed"), "{done}");
    assert_eq!(sb.version_of("newdep"), None);
    c.until("/api/v1/packages/newdep", "newdep is gone from the inventory", |r| r.status == StatusCode::NOT_FOUND)
        .await;
    // The narrowed WebSocket saw nothing of the rollback job: the next event is the pong.
    send_ws(&mut ws, json!({"action": "ping"})).await;
    assert_eq!(next_event(&mut ws).await["event"], json!("pong"));

    // Finished jobs can be deleted.
    let r = c.call(Method::DELETE, &format!("/api/v1/jobs/{rollback}"), None).await;
    assert_eq!(r.data(), &json!({"deleted": true, "job_id": rollback}));
    assert_eq!(c.get(&format!("/api/v1/jobs/{rollback}")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_apply_update_and_remove() {
    let sb = installed_sandbox();
    let mut agent = Agent::start(&sb, EngineConfig::default()).await;
    let addr = agent.serve(generous()).await;
    let c = agent.client(addr, "manager", &[0x42]);

    // Apply only the security update, with the legacy `reboot` spelling.
    let r = c.call(Method::POST, "/api/v1/patches/apply/", Some(json!({"packages": ["other"], "reboot": false}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.data()["operation"], json!("patch_apply"));
    let id = r.data()["job_id"].as_str().unwrap().to_owned();
    assert_eq!(c.finished(&id).await["status"], json!("completed"));
    assert_eq!(sb.version_of("other").as_deref(), Some("1.2-1"));
    let r = c.until("/api/v1/patches", "the applied patch is gone", |r| r.data()["total"] == json!(2)).await;
    assert_eq!(r.data()["security_updates"], json!(0));

    // PUT /packages/{name}: update hello (no body).
    let r = c.call(Method::PUT, "/api/v1/packages/hello", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.data()["package"], json!("hello"));
    assert_eq!(r.data()["operation"], json!("update"));
    assert_eq!(c.finished(r.data()["job_id"].as_str().unwrap()).await["status"], json!("completed"));
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.1-1"));

    // Everything else: grower 2.0-1 pulls in newdep.
    let r = c.call(Method::POST, "/api/v1/patches/apply", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(c.finished(r.data()["job_id"].as_str().unwrap()).await["status"], json!("completed"));
    assert_eq!(sb.version_of("grower").as_deref(), Some("2.0-1"));
    let r = c.until("/api/v1/patches", "no patch is left", |r| r.data()["total"] == json!(0)).await;
    assert_eq!(r.data()["patches"], json!([]));
    let r = c.get("/api/v1/packages/grower").await;
    assert_eq!((&r.data()["version"], &r.data()["upgradable"]), (&json!("2.0-1"), &json!(false)));

    // DELETE /packages/{name}.
    let r = c.call(Method::DELETE, "/api/v1/packages/hello", None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!((&r.data()["operation"], &r.data()["package"]), (&json!("remove"), &json!("hello")));
    assert_eq!(c.finished(r.data()["job_id"].as_str().unwrap()).await["status"], json!("completed"));
    assert_eq!(sb.version_of("hello"), None);
    c.until("/api/v1/packages/hello", "hello is gone", |r| r.status == StatusCode::NOT_FOUND).await;

    // system/info now knows when updates were last applied.
    let r = c.get("/api/v1/system/info").await;
    assert!(r.data()["last_update_apply"].is_string(), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_map_to_their_codes() {
    let sb = AptSandbox::builder().dpkg_gate().installed(&["hello=1.0-1", "other=1.0-1"]).build();
    sb.open_gate();
    let config = EngineConfig { max_queue_depth: 2, ..EngineConfig::default() };
    let mut agent = Agent::start(&sb, config).await;
    let addr = agent.serve(generous()).await;
    let c = agent.client(addr, "manager", &[0x42]);

    // A completed job to roll back later.
    let r = c.call(Method::PUT, "/api/v1/packages/hello", Some(json!({"version": "1.1-1"}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let update = r.data()["job_id"].as_str().unwrap().to_owned();
    assert_eq!(c.finished(&update).await["status"], json!("completed"));

    // Hold a transaction in dpkg.
    sb.close_gate();
    let r = c.call(Method::POST, "/api/v1/packages", Some(json!({"packages": [{"name": "newdep"}]}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let held = r.data()["job_id"].as_str().unwrap().to_owned();
    for _ in 0..1200 {
        if !sb.gated_pids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!sb.gated_pids().is_empty(), "the install is held in dpkg");

    // A reboot while a job runs: 409 REBOOT_BLOCKED naming the job.
    let r = c.call(Method::POST, "/api/v1/system/reboot", Some(json!({"delay_seconds": 0}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "REBOOT_BLOCKED"));
    assert_eq!(r.body["error"]["details"]["running_jobs"], json!([held]));
    // Deleting a running job: 409 DELETE_NOT_ALLOWED.
    let r = c.call(Method::DELETE, &format!("/api/v1/jobs/{held}"), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "DELETE_NOT_ALLOWED"));
    // Rolling back a running job: 400 ROLLBACK_NOT_ALLOWED.
    let r = c.call(Method::POST, &format!("/api/v1/jobs/{held}/rollback"), None).await;
    assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "ROLLBACK_NOT_ALLOWED"));
    // Fill the queue (depth 2): the next submission is 429 QUEUE_FULL with Retry-After.
    let r = c.call(Method::POST, "/api/v1/patches/apply", Some(json!({"packages": ["other"]}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let queued = r.data()["job_id"].as_str().unwrap().to_owned();
    let r = c.call(Method::DELETE, "/api/v1/packages/other", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "QUEUE_FULL"));
    assert_eq!(r.header("retry-after"), Some("60"));
    assert_eq!(r.body["error"]["retryable"], json!(true));

    // Let them finish; then a rollback held in dpkg runs in exclusive mode.
    sb.open_gate();
    assert_eq!(c.finished(&held).await["status"], json!("completed"));
    assert_eq!(c.finished(&queued).await["status"], json!("completed"));
    sb.close_gate();
    let r = c.call(Method::POST, &format!("/api/v1/jobs/{update}/rollback"), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let rollback = r.data()["job_id"].as_str().unwrap().to_owned();
    let r = c.call(Method::POST, "/api/v1/packages", Some(json!({"packages": [{"name": "grower"}]}))).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "EXCLUSIVE_IN_PROGRESS"));
    assert_eq!(r.header("retry-after"), Some("60"));
    // Reads stay allowed meanwhile.
    assert_eq!(c.get("/api/v1/packages").await.status, StatusCode::OK);
    sb.open_gate();
    assert_eq!(c.finished(&rollback).await["status"], json!("completed"));
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.0-1"));

    // With nothing running, a reboot is accepted (the rebooter is a fake).
    let r = c.call(Method::POST, "/api/v1/system/reboot", Some(json!({"delay_seconds": 60, "force": false}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(keys(r.data()), set(&["job_id", "status", "operation", "scheduled_at", "delay_seconds", "force"]));
    assert_eq!((&r.data()["operation"], &r.data()["delay_seconds"]), (&json!("reboot"), &json!(60)));
}

// ---------------------------------------------------------------------------------------------
// Shutdown

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting() {
    let sb = installed_sandbox();
    let mut agent = Agent::start(&sb, EngineConfig::default()).await;
    let addr = agent.serve(generous()).await;
    let c = agent.client(addr, "manager", &[0x42]);
    assert_eq!(c.get("/health").await.status, StatusCode::OK);
    let (_, stop, task) = agent.servers.pop().unwrap();
    stop.send(()).unwrap();
    tokio::time::timeout(GUARD, task).await.expect("serve returns").unwrap().unwrap();
    // A new connection is no longer accepted.
    let fresh = agent.client(addr, "manager", &[0x43]);
    assert!(fresh.http.get(format!("{}/health", fresh.base)).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_in_flight_requests() {
    let sb = installed_sandbox();
    let mut agent = Agent::start(&sb, EngineConfig::default()).await;
    let addr = agent.serve(generous()).await;
    let c = agent.client(addr, "manager", &[0x42]);
    // Open the connection (kept alive by the client's pool) so the next request reuses it.
    assert_eq!(c.get("/health").await.status, StatusCode::OK);
    // A request whose body is still being sent when shutdown starts.
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    tx.send(b"{\"unknown\":".to_vec()).await.unwrap();
    let request = c
        .http
        .post(format!("{}/api/v1/patches/apply", c.base))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let in_flight = tokio::spawn(request);
    // Give the server time to read the head of the request (ordering only, nothing is timed).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, stop, task) = agent.servers.pop().unwrap();
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "serve waits for the request in flight");
    tx.send(b"1}".to_vec()).await.unwrap();
    drop(tx);
    let response = tokio::time::timeout(GUARD, in_flight).await.unwrap().unwrap().expect("the request completes");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["field"], json!("unknown"));
    tokio::time::timeout(GUARD, task).await.expect("serve returns").unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_websocket_client_is_closed() {
    let sb = installed_sandbox();
    let mut agent = Agent::start(&sb, EngineConfig::default()).await;
    let addr = agent.serve(generous()).await;
    let c = agent.client(addr, "manager", &[0x42]);
    let mut ws = websocket(&agent, &c).await;
    assert_eq!(next_event(&mut ws).await["event"], json!("connected"));
    // Read nothing (so no pong goes back) for longer than the idle limit.
    tokio::time::sleep(Duration::from_secs(16)).await;
    let mut pings = 0;
    let closed = loop {
        match tokio::time::timeout(GUARD, ws.next()).await.expect("closed in time") {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|f| f.reason.to_string()),
            None | Some(Err(_)) => break None,
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
    };
    assert!(pings >= 1, "the server pinged");
    assert_eq!(closed.as_deref(), Some("idle"));
}

// ---------------------------------------------------------------------------------------------
// The whole service, as systemd runs it

/// `patchdeck-agent serve` as a real process: it tells systemd it is ready, serves the API over
/// mutual TLS with the allow-list, runs a patch job on the sandbox, audits requests, jobs and
/// denied connections, and on SIGTERM stops and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_runs_the_whole_service_and_stops_on_sigterm() {
    let sb = AptSandbox::builder().installed(&["hello=1.0-1"]).build();
    sb.refresh();
    let files = ServeFiles::new(&sb, "Patchdeck API Test CA", &[0x20, 1]);
    let (ca, port, audit) = (&files.ca, files.port, &files.audit);
    let config = files.write("agent.yaml", &files.config("  reload_interval_secs: 1\n", ""));
    let mut agent = files.spawn(Path::new(env!("CARGO_BIN_EXE_patchdeck-agent")), &config, GUARD);

    let leaf = ca.leaf("manager-7", &[], ExtendedKeyUsagePurpose::ClientAuth, &[0x30, 7]);
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(client_tls(ca, &leaf, &[b"http/1.1"]))
        .timeout(GUARD)
        .build()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = Client { http, base: format!("https://{addr}"), leaf, addr };
    let health = client.get("/api/v1/health").await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    let packages = client.get("/api/v1/packages?name=hello").await;
    assert_eq!(packages.data()["packages"][0]["latest_version"], "1.1-1", "{}", packages.body);
    let accepted = client.call(Method::POST, "/api/v1/patches/apply", Some(json!({"packages": ["hello"]}))).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    let job = client.finished(accepted.data()["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.1-1"));

    // A peer off the allow-list gets nothing at all.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut denied = socket.connect(addr).await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut denied, &mut got).await;
    assert!(got.is_empty(), "a denied peer received {} bytes", got.len());

    let (status, stderr) = agent.stop();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains(&format!("patchdeck-agent ready (apt) listening on 127.0.0.1:{port}")), "{stderr}");

    let lines: Vec<Value> =
        std::fs::read_to_string(audit).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find = |event: &str, cond: &dyn Fn(&Value) -> bool| lines.iter().any(|l| l["event"] == event && cond(l));
    assert!(
        find("request", &|l| l["path"] == "/api/v1/health" && l["status"] == 200 && l["actor"]["cn"] == "manager-7"),
        "{lines:#?}"
    );
    assert!(
        find("package_operation", &|l| l["operation"] == "patch_apply"
            && l["outcome"] == "success"
            && l["actor"]["cn"] == "manager-7"),
        "the job is audited with the client that asked for it: {lines:#?}"
    );
    assert!(
        find("allowlist_denied", &|l| l["actor"]["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.2"))),
        "{lines:#?}"
    );
}

/// `patchdeck-agent serve` reloads its config file: an invalid file is refused and audited and the
/// limits in force stay (all of them, even the valid keys of the refused file); a valid file puts
/// tighter rate limits in force at once and names the keys that wait for a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serve_command_reloads_its_config_file_and_refuses_an_invalid_one() {
    let sb = AptSandbox::builder().installed(&["hello=1.0-1"]).build();
    let files = ServeFiles::new(&sb, "Patchdeck API Test CA", &[0x21, 1]);
    let (ca, port, audit) = (&files.ca, files.port, &files.audit);
    // The config, with `push_extra` lines appended to the `push:` section and `jobs` as given.
    let config_text =
        |push_extra: &str, jobs: &str| files.config(push_extra, &format!("jobs:\n  max_concurrent: {jobs}\n"));
    let file = |name: &str, text: &str| files.write(name, text);
    let config = file("agent.yaml", &config_text("  reload_interval_secs: 1\n", "5"));
    let mut agent = files.spawn(Path::new(env!("CARGO_BIN_EXE_patchdeck-agent")), &config, GUARD);

    let leaf = ca.leaf("manager-8", &[], ExtendedKeyUsagePurpose::ClientAuth, &[0x30, 8]);
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(client_tls(ca, &leaf, &[b"http/1.1"]))
        .timeout(GUARD)
        .build()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let client = Client { http, base: format!("https://{addr}"), leaf, addr };
    // A cheap mutation: refused by validation (400) unless the rate limit refuses it first (429).
    let mutate = || client.call(Method::POST, "/api/v1/packages", Some(json!({"packages": [{"name": "-bad"}]})));
    let audit_lines = || -> Vec<Value> {
        std::fs::read_to_string(audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let config_source = config.display().to_string();
    let reloads = |outcome: &str| {
        audit_lines()
            .into_iter()
            .filter(|l| {
                l["event"] == "config_reload" && l["source"] == config_source.as_str() && l["outcome"] == outcome
            })
            .collect::<Vec<_>>()
    };
    let wait_for = |outcome: &'static str| {
        let reloads = &reloads;
        async move {
            for _ in 0..600 {
                if let Some(line) = reloads(outcome).into_iter().next() {
                    return line;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no config_reload {outcome} in the audit log: {:#?}", audit_lines());
        }
    };

    // The default limits: a burst of 10 mutations.
    for _ in 0..2 {
        assert_eq!(mutate().await.status, StatusCode::BAD_REQUEST);
    }

    // An invalid file, whose valid keys would allow one mutation: refused as a whole.
    file(
        "agent.yaml",
        &config_text("  reload_interval_secs: 0\n  mutations_burst: 1\n  mutations_per_minute: 1\n", "5"),
    );
    let refused = wait_for("failure").await;
    let error = refused["error"].as_str().unwrap();
    assert!(error.contains("push.reload_interval_secs must be between 1 and 3600, got 0"), "{refused}");
    assert!(error.contains(&config_source), "{refused}");
    assert!(reloads("success").is_empty(), "{:#?}", audit_lines());
    for _ in 0..3 {
        let r = mutate().await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "the old limits stay in force: {}", r.body);
    }

    // A valid file: two more mutations at most, then 429; jobs.max_concurrent waits for a restart.
    file(
        "agent.yaml",
        &config_text("  reload_interval_secs: 1\n  mutations_burst: 2\n  mutations_per_minute: 1\n", "2"),
    );
    let applied = wait_for("success").await;
    assert_eq!(applied["error"], "takes effect at the next restart: jobs.max_concurrent", "{applied}");
    for _ in 0..2 {
        assert_eq!(mutate().await.status, StatusCode::BAD_REQUEST);
    }
    let r = mutate().await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED"), "{}", r.body);
    // Reads keep their own, unchanged limits.
    assert_eq!(client.get("/api/v1/packages?name=hello").await.status, StatusCode::OK);

    let (status, stderr) = agent.stop();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("config reload refused; the configuration in force stays"), "{stderr}");
    assert!(stderr.contains("takes effect at the next restart: jobs.max_concurrent"), "{stderr}");

    // After the flush at exit: exactly one refusal and one success for the config file, in order.
    let lines = audit_lines();
    let reload_outcomes: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "config_reload" && l["source"] == config_source.as_str())
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(reload_outcomes, ["failure", "success"], "{lines:#?}");
    assert!(
        lines.iter().any(|l| l["event"] == "request" && l["status"] == 429 && l["actor"]["cn"] == "manager-8"),
        "{lines:#?}"
    );
}
