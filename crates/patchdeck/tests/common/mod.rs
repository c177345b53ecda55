//! A real manager for integration tests: started in-process on a loopback port with HTTPS from
//! its own internal CA, on SQLite (a temporary data directory) or PostgreSQL (a fresh database
//! on the local server), and a client that keeps cookies and sends the CSRF header like the
//! web UI does.

#![allow(dead_code)]

pub mod agents;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use patchdeck::clock::ManualClock;
use patchdeck::config::ManagerConfig;
use patchdeck::server::Manager;
use patchdeck::state::AppState;
use patchdeck_crypto::token::OpaqueToken;
use patchdeck_store::{AuthSource, NewApiToken, NewUser, Role, User};
use patchdeck_testkit::pg::TestDatabase;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running manager.
pub struct TestManager {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub addr: SocketAddr,
    pub base: String,
    pub ca_pem: String,
    pub admin_password: String,
    pub data_dir: tempfile::TempDir,
    /// The configuration it was started with (listen address and public URL included).
    pub config: ManagerConfig,
    served: Option<Served>,
    _db: Option<TestDatabase>,
}

/// Runs the body once on SQLite and once on PostgreSQL:
/// `both_backends!(login_works, |m| async move { … });`
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let manager = common::TestManager::start(common::Backend::Sqlite).await;
                ($body)(manager).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let manager = common::TestManager::start(common::Backend::Postgres).await;
                ($body)(manager).await;
            }
        }
    };
}

/// A password every test user gets.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestManager {
    pub async fn start(backend: Backend) -> TestManager {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a manager, letting the test adjust the configuration first.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut ManagerConfig)) -> TestManager {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        let mut config = ManagerConfig {
            data_dir: data_dir.path().join("data"),
            database_url: db.as_ref().map(|d| d.url().to_owned()).unwrap_or_default(),
            ..ManagerConfig::default()
        };
        adjust(&mut config);
        let mut served = Served::serve(config).await;
        let config = served.state.config().clone();
        let admin_password = served.first_start.admin_password.take().expect("first start made an admin");
        TestManager {
            state: served.state.clone(),
            clock: served.clock.clone(),
            addr: served.addr,
            base: format!("https://localhost:{}", served.addr.port()),
            ca_pem: served.ca_pem.clone(),
            admin_password,
            data_dir,
            config,
            served: Some(served),
            _db: db,
        }
    }

    /// A client with no session.
    pub fn client(&self) -> Client {
        Client::new(&self.base, &self.ca_pem, self.addr)
    }

    /// Creates a user directly in the store with [`PASSWORD`], no forced change.
    pub async fn user(&self, username: &str, role: Role) -> User {
        let hash = patchdeck_crypto::password::hash(PASSWORD).expect("hash");
        self.state
            .store()
            .create_user(
                &NewUser {
                    username: username.into(),
                    display_name: username.into(),
                    role,
                    password_hash: Some(hash),
                    auth_source: AuthSource::Local,
                    oidc: None,
                    must_change_password: false,
                },
                self.state.now(),
            )
            .await
            .expect("create user")
    }

    /// Turns the "MFA required" setting off (most tests are not about MFA).
    pub async fn mfa_optional(&self) {
        self.state
            .store()
            .set_setting(patchdeck::settings::keys::MFA_REQUIRED, &json!(false), None, self.state.now())
            .await
            .expect("setting");
        self.state.settings_changed();
    }

    /// A signed-in client for a new user with `role` (MFA made optional).
    pub async fn signed_in(&self, username: &str, role: Role) -> (Client, User) {
        self.mfa_optional().await;
        let user = self.user(username, role).await;
        let client = self.client();
        let (status, body) = client.login(username, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ok", "{body}");
        (client, user)
    }

    pub fn advance(&self, by: SignedDuration) {
        self.clock.advance(by);
    }

    pub async fn stop(mut self) {
        if let Some(served) = self.served.take() {
            served.stop().await;
        }
    }

    /// Stops the manager (gracefully) and starts it again on the same port, data directory and
    /// database; `between` runs while it is down.
    pub async fn restart(&mut self, between: impl FnOnce(&ManagerConfig)) {
        if let Some(served) = self.served.take() {
            served.stop().await;
        }
        between(&self.config);
        let served = Served::serve_on(self.config.clone(), self.addr).await;
        self.state = served.state.clone();
        self.clock = served.clock.clone();
        self.served = Some(served);
    }
}

/// An HTTPS client that behaves like the web UI: keeps cookies, echoes the CSRF cookie.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    cookies: Arc<Mutex<HashMap<String, String>>>,
    bearer: Option<String>,
}

impl Client {
    fn new(base: &str, ca_pem: &str, addr: SocketAddr) -> Client {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA PEM");
        let http = reqwest::Client::builder()
            .add_root_certificate(ca)
            .resolve("localhost", addr)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Client { http, base: base.to_owned(), cookies: Arc::default(), bearer: None }
    }

    /// The same client authenticating with an API token instead of cookies.
    pub fn with_bearer(&self, token: &str) -> Client {
        Client { http: self.http.clone(), base: self.base.clone(), cookies: Arc::default(), bearer: Some(token.into()) }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies.lock().unwrap().insert(name.into(), value.into());
    }

    pub fn forget_cookie(&self, name: &str) {
        self.cookies.lock().unwrap().remove(name);
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty or not JSON).
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let response = self.raw(method, path, body).await;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends a request and returns the whole response.
    pub async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        let cookie_header = {
            let jar = self.cookies.lock().unwrap();
            jar.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
        };
        if !cookie_header.is_empty() {
            request = request.header("cookie", cookie_header);
        }
        if let Some(csrf) = self.cookie("pd_csrf") {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = text.contains("Max-Age=0");
            let mut jar = self.cookies.lock().unwrap();
            if expired || value.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
        response
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, path, None).await
    }

    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.post("/api/v1/auth/login", json!({ "username": username, "password": password })).await
    }
}

/// A manager serving on a loopback port (with its own CA's HTTPS) until stopped or dropped.
pub struct Served {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    pub first_start: patchdeck::server::FirstStart,
    pub addr: SocketAddr,
    pub ca_pem: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A manager started on a data directory and database that already exist (say, ones the
/// `patchdeck` binary set up), so tests can sign in with what the command line made. It owns
/// neither: the first admin is made only if the database has no user.
pub type ExistingManager = Served;

impl Served {
    /// Starts `config` (its listen address and public URL are set here) with a manual clock
    /// starting at the system time.
    pub async fn serve(config: ManagerConfig) -> Served {
        Self::serve_on(config, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Like [`Served::serve`], on `addr` (port 0: any free port).
    pub async fn serve_on(mut config: ManagerConfig, addr: SocketAddr) -> Served {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        config.listen = addr;
        config.public_url = format!("https://localhost:{}", addr.port());
        let clock = Arc::new(ManualClock::default());
        let mut manager =
            Manager::start(config.validated().expect("valid config"), clock.clone()).await.expect("manager starts");
        let state = manager.state.clone();
        let first_start = std::mem::take(&mut manager.first_start);
        let ca_pem = state.keys().ca.cert_pem().to_owned();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            manager
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .expect("serve");
        });
        Served { state, clock, first_start, addr, ca_pem, shutdown: Some(tx), task: Some(task) }
    }

    /// Serves `data_dir` and `database_url` (empty: the SQLite file in `data_dir`).
    pub async fn start(data_dir: &std::path::Path, database_url: &str) -> Served {
        Self::serve(ManagerConfig {
            data_dir: data_dir.to_owned(),
            database_url: database_url.to_owned(),
            ..ManagerConfig::default()
        })
        .await
    }

    /// A client with no session.
    pub fn client(&self) -> Client {
        Client::new(&format!("https://localhost:{}", self.addr.port()), &self.ca_pem, self.addr)
    }

    /// Stops serving and waits for the server (and its database pool) to close.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Runs one SQL statement on a manager's database behind its back, as someone with access to
/// the database could: with the `sqlite3` shell on the SQLite file when it is installed (sqlx
/// otherwise), with sqlx on PostgreSQL. Panics unless the statement changed exactly one row.
pub async fn tamper(config: &ManagerConfig, sql: &str) {
    use sqlx::{Connection, Executor};
    let changed = if !config.database_url.is_empty() {
        let mut conn = sqlx::PgConnection::connect(&config.database_url).await.expect("connect to PostgreSQL");
        let changed = conn.execute(sql).await.expect("tampering statement").rows_affected();
        let _ = conn.close().await;
        changed
    } else if let Some(shell) = find_program("sqlite3") {
        let output = tokio::task::block_in_place(|| {
            std::process::Command::new(shell)
                .args(["-batch", "-cmd", ".timeout 10000"])
                .arg(config.sqlite_path())
                .arg(format!("{sql}; SELECT changes();"))
                .output()
                .expect("sqlite3 runs")
        });
        assert!(output.status.success(), "sqlite3 failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().parse().expect("changes() is a number")
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(config.sqlite_path())
            .busy_timeout(Duration::from_secs(10));
        let mut conn = sqlx::SqliteConnection::connect_with(&options).await.expect("open the SQLite file");
        let changed = conn.execute(sql).await.expect("tampering statement").rows_affected();
        let _ = conn.close().await;
        changed
    };
    assert_eq!(changed, 1, "{sql} should change one row");
}

/// The first `name` on `PATH`.
pub fn find_program(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

// Helpers for API tests.

/// A new user with `role` and a client authenticated by an API token minted in the store. Unlike
/// [`TestManager::signed_in`] this costs no Argon2 work, which keeps the tests fast; admins sign
/// in for real, so both kinds of credentials are exercised.
pub async fn token_user(m: &TestManager, username: &str, role: Role) -> (Client, User) {
    let store = m.state.store();
    let now = m.state.now();
    let new = NewUser {
        username: username.into(),
        display_name: username.into(),
        role,
        password_hash: None,
        auth_source: AuthSource::Local,
        oidc: None,
        must_change_password: false,
    };
    let user = store.create_user(&new, now).await.unwrap();
    let token = OpaqueToken::generate("api").unwrap();
    let expires_at = now + SignedDuration::from_hours(24 * 30);
    let new = NewApiToken { user_id: user.id, token_hash: token.hash().0, label: "tests".into(), expires_at };
    store.create_api_token(&new, now).await.unwrap();
    (m.client().with_bearer(token.expose()), user)
}

/// Every audit entry so far, oldest first.
pub async fn audit_log(m: &TestManager) -> Vec<patchdeck_store::AuditEntry> {
    m.state.store().audit_entries_after(None, 10_000).await.unwrap()
}

pub fn id(body: &Value) -> i64 {
    body["id"].as_i64().unwrap_or_else(|| panic!("no id in {body}"))
}

/// The `field` of a 400 answer, after checking the envelope.
pub fn invalid_field(status: StatusCode, body: &Value) -> String {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "validation_error", "{body}");
    body["error"]["details"]["field"].as_str().unwrap_or_default().to_owned()
}

/// The values of `key` in the `items` of a list answer.
pub fn column(list: &Value, key: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| match &item[key] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

pub async fn new_group(admin: &Client, name: &str) -> i64 {
    let (status, body) = admin.post("/api/v1/groups", json!({ "name": name, "description": "" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    id(&body)
}

/// An open event stream and the text read from it so far.
pub struct EventStream {
    response: reqwest::Response,
    /// Everything read so far.
    pub text: String,
}

impl EventStream {
    pub async fn open(client: &Client) -> EventStream {
        let response = client.raw(Method::GET, "/api/v1/events", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let mut stream = EventStream { response, text: String::new() };
        stream.read_until(": connected").await;
        stream
    }

    /// Reads until the text contains `needle` (at most 10 seconds).
    pub async fn read_until(&mut self, needle: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !self.text.contains(needle) {
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} within 10 s; got:\n{}", self.text))
                .expect("stream readable")
                .expect("stream still open");
            self.text.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// The `data:` of each event of type `kind` so far.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        self.text
            .split("\n\n")
            .filter(|block| block.lines().any(|line| line == format!("event: {kind}")))
            .filter_map(|block| block.lines().find_map(|line| line.strip_prefix("data: ")))
            .map(|data| serde_json::from_str(data).expect("JSON data"))
            .collect()
    }
}
