//! The web UI end to end in a real browser: Debian's Chromium, headless, driven by playwright-core
//! (`web/e2e/ui.e2e.mjs`) against this manager (SQLite) with a real agent on an apt sandbox.
//!
//! The script signs in for the first time (forced password change and TOTP enrollment), signs in
//! again with TOTP, creates a registration token and hands it over (`token.txt`); this test
//! enrolls and starts the agent with it and answers with the host (`host.json`). The script then
//! sees the host and its updates, deploys them and watches the deployment finish live, creates a
//! maintenance window, creates an operator and checks what it cannot see, saving screenshots of
//! the main pages (to `$PATCHDECK_UI_SCREENSHOTS`, or `ui-screenshots` under cargo's test
//! temporary directory). Afterwards this test checks on the server that each step really happened.
//!
//! Needs `node` with `web/node_modules` installed (`npm ci`), the UI built into the manager
//! (`npm run build` before cargo), and `/usr/bin/chromium` (or `$PATCHDECK_CHROMIUM`);
//! `scripts/test.sh` provides all three.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::agents::TestAgent;
use common::{audit_log, find_program, id, token_user, Backend, TestManager};
use jiff::Timestamp;
use patchdeck_store::Role;
use patchdeck_testkit::AptSandbox;
use reqwest::StatusCode;
use serde_json::json;

/// The whole script, including a deployment and two TOTP step waits, must end within this.
const LIMIT: Duration = Duration::from_secs(600);

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

fn screenshots_dir() -> PathBuf {
    std::env::var_os("PATCHDECK_UI_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"))
}

/// Ends the browser script if the test fails before it does.
struct Script(Child);

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_web_ui_works_end_to_end_in_chromium() {
    assert!(
        patchdeck::web::ui::built(),
        "the web UI is not built into this test binary: run `npm ci && npm run build` in web/ before cargo"
    );
    let node = find_program("node").expect("node (Node.js 20) is needed for the browser tests");
    let chromium = std::env::var_os("PATCHDECK_CHROMIUM").map(PathBuf::from).unwrap_or("/usr/bin/chromium".into());
    assert!(chromium.is_file(), "{} is missing: install Debian's `chromium` package", chromium.display());
    assert!(
        web_dir().join("node_modules/playwright-core").is_dir(),
        "web/node_modules has no playwright-core: run `npm ci` in web/"
    );

    let m = TestManager::start(Backend::Sqlite).await;
    // TOTP codes come from the wall clock: the manager's clock follows it.
    let clock = m.clock.clone();
    let follower = tokio::spawn(async move {
        loop {
            let (now, then) = (Timestamp::now(), patchdeck::clock::Clock::now(&*clock));
            if now > then {
                clock.advance(now.duration_since(then));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (api, _) = token_user(&m, "e2e-checks", Role::Admin).await;
    let web = common::new_group(&api, "web").await;
    let db = common::new_group(&api, "db").await;
    let (status, body) = api.post("/api/v1/hosts", json!({ "fqdn": "web-1.example.com", "groups": [web] })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let handshake = tempfile::tempdir().unwrap();
    let ca_file = handshake.path().join("manager-ca.pem");
    std::fs::write(&ca_file, &m.ca_pem).unwrap();
    let shots = screenshots_dir();
    let _ = std::fs::remove_dir_all(&shots);
    let sandbox = AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1"]).build();
    let mut agent = TestAgent::new(&m.base, &m.ca_pem, sandbox, 7, 20);

    let mut script = Script(
        Command::new(node)
            .arg("e2e/ui.e2e.mjs")
            .current_dir(web_dir())
            .env("PD_URL", &m.base)
            .env("PD_CA", &ca_file)
            .env("PD_ADMIN_PASSWORD", &m.admin_password)
            .env("PD_HANDSHAKE", handshake.path())
            .env("PD_SCREENSHOTS", &shots)
            .env("PD_CHROMIUM", &chromium)
            .spawn()
            .expect("start node e2e/ui.e2e.mjs"),
    );
    let started = Instant::now();
    let mut host_id = None;
    let exit = loop {
        if let Some(exit) = script.0.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < LIMIT,
            "the browser script took longer than {LIMIT:?}; agent log:\n{}",
            agent.log()
        );
        let token_file = handshake.path().join("token.txt");
        if host_id.is_none() && token_file.is_file() {
            let token = std::fs::read_to_string(&token_file).unwrap();
            let enrolling = Instant::now();
            let id = agent.enroll_ok(token.trim());
            agent.start();
            println!("[web_ui] the agent enrolled as host {id} in {:?}", enrolling.elapsed());
            let (status, host) = api.get(&format!("/api/v1/hosts/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{host}");
            let answer = json!({ "id": id, "hostname": host["hostname"] });
            let partial = handshake.path().join("host.json.partial");
            std::fs::write(&partial, answer.to_string()).unwrap();
            std::fs::rename(partial, handshake.path().join("host.json")).unwrap();
            host_id = Some(id);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(exit.success(), "the browser script failed ({exit}); agent log:\n{}", agent.log());
    let host = host_id.expect("the script handed over a registration token");

    // The deployment really patched the agent's machine.
    let (_, deployments) = api.get("/api/v1/deployments").await;
    let deployment = &deployments["items"][0];
    assert_eq!(
        (deployment["name"].as_str(), deployment["status"].as_str()),
        (Some("e2e: patch the rack"), Some("succeeded"))
    );
    assert_eq!(agent.sandbox.version_of("hello").as_deref(), Some("1.1-1"));
    assert_eq!(agent.sandbox.version_of("other").as_deref(), Some("1.2-1"));
    // The window, the operator and the group memberships made in the browser.
    let (_, windows) = api.get("/api/v1/maintenance-windows").await;
    let window = windows["items"].as_array().unwrap().iter().find(|w| w["name"] == "Weekend night").cloned();
    assert_eq!(window.map(|w| w["group_id"].clone()), Some(json!(db)), "{windows}");
    let (_, users) = api.get("/api/v1/users?q=olga").await;
    let olga = &users["items"][0];
    assert_eq!(
        (olga["role"].as_str(), olga["must_change_password"].as_bool()),
        (Some("operator"), Some(false)),
        "{olga}"
    );
    assert_eq!(olga["totp_enabled"], true, "{olga}");
    let (_, members) = api.get(&format!("/api/v1/groups/{web}/members")).await;
    assert!(members.to_string().contains("\"olga\""), "{members}");
    let (_, members) = api.get(&format!("/api/v1/groups/{db}/members")).await;
    assert!(members["hosts"].as_array().unwrap().iter().any(|h| id(h) == host), "{members}");
    // Each step of the admin is in the audit log under their name.
    let log = audit_log(&m).await;
    let by = |actor: &str, action: &str| log.iter().any(|e| e.actor == actor && e.action == action);
    for action in
        ["user.password_change", "mfa.totp_enabled", "registration_token.create", "deployment.create", "user.create"]
    {
        assert!(by("user:admin", action), "no {action} by the admin in the audit log");
    }
    for page in [
        "mfa-setup",
        "login-mfa",
        "hosts",
        "host-updates",
        "deployment",
        "maintenance-calendar",
        "dashboard",
        "dashboard-dark",
        "operator-hosts",
    ] {
        let file = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("screenshot {}: {e}", file.display()));
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{} is not a real screenshot", file.display());
    }
    println!("screenshots: {}", shots.display());
    follower.abort();
    agent.stop();
    m.stop().await;
}
