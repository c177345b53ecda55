//! The `patchdeck` binary, run as an operator runs it: each test on its own data directory
//! (SQLite) or its own PostgreSQL database, and, where it matters, a real manager started on the
//! same storage afterwards to show that what the command line did works.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use common::{Backend, ExistingManager, PASSWORD};
use jiff::{SignedDuration, Timestamp};
use patchdeck::config::ManagerConfig;
use patchdeck::state::AppState;
use patchdeck_crypto::token::OpaqueToken;
use patchdeck_store::{AuditFilter, Store};
use patchdeck_testkit::pg::TestDatabase;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The binary, with none of the caller's `PATCHDECK_*` settings or log filter.
fn patchdeck() -> Command {
    let mut cmd = Command::cargo_bin("patchdeck").expect("the patchdeck binary is built");
    for var in [
        "PATCHDECK_CONFIG",
        "PATCHDECK_DATA_DIR",
        "PATCHDECK_DATABASE_URL",
        "PATCHDECK_LOG_FORMAT",
        "PATCHDECK_LISTEN",
        "PATCHDECK_PUBLIC_URL",
        "PATCHDECK_TLS_MODE",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.timeout(Duration::from_secs(60));
    cmd
}

/// Runs a command to its end without stalling the runtime the test (and a manager) runs on.
fn run(cmd: &mut Command) -> Output {
    tokio::task::block_in_place(|| cmd.output().expect("patchdeck runs"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8 standard output")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns standard output.
fn ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}\nstdout: {}\nstderr: {}", out.status, stdout(out), stderr(out));
    stdout(out)
}

/// Asserts that the command failed with `code` and no panic; returns standard error.
fn failed(out: &Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stdout: {}\nstderr: {err}", stdout(out));
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Storage for one test: a temporary data directory, plus a fresh database on PostgreSQL.
struct Env {
    backend: Backend,
    dir: tempfile::TempDir,
    db: Option<TestDatabase>,
}

impl Env {
    async fn new(backend: Backend) -> Env {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        Env { backend, dir: tempfile::tempdir().expect("temp dir"), db }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn database_url(&self) -> &str {
        self.db.as_ref().map_or("", |db| db.url())
    }

    fn config(&self) -> ManagerConfig {
        ManagerConfig {
            data_dir: self.data_dir(),
            database_url: self.database_url().to_owned(),
            ..ManagerConfig::default()
        }
    }

    /// `patchdeck <args>` on this storage with `stdin` as standard input.
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = patchdeck();
        cmd.arg("--data-dir").arg(self.data_dir());
        if let Some(db) = &self.db {
            cmd.args(["--database-url", db.url()]);
        }
        cmd.args(args).write_stdin(stdin);
        run(&mut cmd)
    }

    /// The store the command line wrote to (already migrated by it).
    async fn store(&self) -> Store {
        Store::connect(&self.config().database()).await.expect("open the store")
    }

    /// A real manager on this storage.
    async fn manager(&self) -> ExistingManager {
        ExistingManager::start(&self.data_dir(), self.database_url()).await
    }

    /// `admin create-user --username NAME --role ROLE --password-stdin`, password on stdin.
    fn create_user(&self, name: &str, role: &str, password: &str) -> Output {
        self.run(
            &["admin", "create-user", "--username", name, "--role", role, "--password-stdin"],
            &format!("{password}\n"),
        )
    }

    /// Five audit entries made by the command line: two users, then three tokens.
    fn populate(&self) {
        for name in ["ann", "ben"] {
            ok(&self.create_user(name, "viewer", PASSWORD));
        }
        for label in ["first", "second", "third"] {
            ok(&self.run(&["admin", "create-token", "--label", label], ""));
        }
    }
}

/// One test body on SQLite and on PostgreSQL.
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)(Env::new(Backend::Sqlite).await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)(Env::new(Backend::Postgres).await).await;
            }
        }
    };
}

async fn mfa_optional(state: &AppState) {
    state
        .store()
        .set_setting(patchdeck::settings::keys::MFA_REQUIRED, &json!(false), None, state.now())
        .await
        .expect("setting");
    state.settings_changed();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// `… with password XYZ` / `new password for alice: XYZ` → `XYZ`.
fn password_in(text: &str, after: &str) -> String {
    let rest = text.split_once(after).unwrap_or_else(|| panic!("{after:?} in {text:?}")).1;
    let password = rest.split_whitespace().next().expect("a password").to_owned();
    assert!(password.len() >= 20, "{password}");
    password
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_needs_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(patchdeck().arg("--data-dir").arg(dir.path()).arg("worker"));
    let err = failed(&out, 1);
    assert!(err.contains("shares a PostgreSQL database"), "{err}");
    assert!(!dir.path().join("patchdeck.db").exists(), "nothing is created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_config_prints_the_commented_defaults() {
    let out = run(patchdeck().arg("print-config"));
    let text = ok(&out);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert_eq!(text, patchdeck::config::EXAMPLE);
    assert!(text.starts_with('#'), "commented: {text}");
    assert!(text.lines().filter(|l| l.starts_with('#')).count() > 20, "commented: {text}");
    let parsed: ManagerConfig = toml::from_str(&text).expect("the example is valid TOML for the config");
    assert_eq!(parsed, ManagerConfig::default());
}

on_both_backends!(migrate_is_idempotent, |env: Env| async move {
    let expected = match env.backend {
        Backend::Sqlite => "database is up to date (sqlite)\n",
        Backend::Postgres => "database is up to date (postgres)\n",
    };
    for _ in 0..2 {
        assert_eq!(ok(&env.run(&["migrate"], "")), expected);
    }
    if env.backend == Backend::Sqlite {
        assert_eq!(mode(&env.data_dir()), 0o700);
        assert_eq!(mode(&env.data_dir().join("patchdeck.db")), 0o600);
    }
    let store = env.store().await;
    assert_eq!(store.count_users().await.unwrap(), 0, "migrate creates no account");
    let report = store.verify_audit_chain().await.unwrap();
    assert!(report.is_intact() && report.checked == 0, "{report:?}");
    store.close().await;
});

on_both_backends!(create_user_then_sign_in, |env: Env| async move {
    let out = env.create_user("alice", "operator", PASSWORD);
    assert_eq!(ok(&out), "created alice (operator)\n");
    assert!(!stderr(&out).contains(PASSWORD), "the password is never logged");
    // The name is normalized before the duplicate check.
    let err = failed(&env.create_user("Alice", "viewer", "another long password"), 1);
    assert!(err.contains("a user with that name already exists"), "{err}");
    let out = env.create_user("bob", "viewer", "short");
    let err = failed(&out, 1);
    assert!(err.contains("password: must be at least 12 characters"), "{err}");
    assert!(stdout(&out).is_empty());
    let out = env.run(&["admin", "create-user", "--username", "bad name", "--role", "viewer"], "");
    assert!(failed(&out, 1).contains("username: must be"), "{}", stderr(&out));
    // Without --password-stdin a password is generated, printed once, and must be changed.
    let text = ok(&env.run(&["admin", "create-user", "--username", "carol", "--role", "viewer"], ""));
    assert!(text.starts_with("created carol (viewer) with password "), "{text}");
    assert!(text.contains("must be changed at first login"), "{text}");
    let generated = password_in(&text, "with password ");

    let m = env.manager().await;
    assert!(m.first_start.admin_password.is_none(), "accounts exist, so no first admin is made");
    mfa_optional(&m.state).await;
    let client = m.client();
    let (status, body) = client.login("alice", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["restriction"], Value::Null, "a chosen password needs no change: {body}");
    assert_eq!(body["user"]["role"], "operator", "{body}");
    let (status, body) = m.client().login("carol", &generated).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["restriction"], "password_change", "{body}");
    assert_eq!(m.client().login("bob", "short").await.0, StatusCode::UNAUTHORIZED, "bob was not created");

    let entries = m.state.store().list_audit(&AuditFilter::default()).await.unwrap().items;
    let created: Vec<_> = entries
        .iter()
        .filter(|e| e.actor == "cli" && e.action == "user.create")
        .map(|e| e.target.clone().unwrap_or_default())
        .collect();
    assert_eq!(created, ["user:carol", "user:alice"], "newest first");
    m.stop().await;
});

on_both_backends!(reset_password_replaces_it_and_forces_a_change, |env: Env| async move {
    ok(&env.create_user("alice", "operator", PASSWORD));
    let m = env.manager().await;
    mfa_optional(&m.state).await;
    let signed_in = m.client();
    assert_eq!(signed_in.login("alice", PASSWORD).await.0, StatusCode::OK);
    assert_eq!(signed_in.get("/api/v1/auth/me").await.0, StatusCode::OK);
    // Lock the account with wrong passwords: the reset also unlocks it.
    let other = m.client();
    for _ in 0..5 {
        assert_eq!(other.login("alice", "wrong password!").await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(other.login("alice", PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS);

    // Run while the manager serves, as an operator would.
    let text = ok(&env.run(&["admin", "reset-password", "alice"], ""));
    assert!(text.starts_with("new password for alice: "), "{text}");
    let new_password = password_in(&text, "new password for alice: ");
    assert_eq!(signed_in.get("/api/v1/auth/me").await.0, StatusCode::UNAUTHORIZED, "its sessions ended");
    let (status, body) = m.client().login("alice", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old password no longer works: {body}");
    let (status, body) = m.client().login("alice", &new_password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["restriction"], "password_change", "{body}");

    let out = env.run(&["admin", "reset-password", "nobody"], "");
    assert!(failed(&out, 1).contains("no user named \"nobody\""), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    let resets = m
        .state
        .store()
        .list_audit(&AuditFilter { action_prefix: Some("user.password_reset".into()), ..AuditFilter::default() })
        .await
        .unwrap();
    assert_eq!(resets.total, 1);
    assert_eq!(resets.items[0].actor, "cli");
    assert_eq!(resets.items[0].target.as_deref(), Some("user:alice"));
    m.stop().await;
});

on_both_backends!(create_token_prints_only_a_token_with_its_seats, |env: Env| async move {
    let before = Timestamp::now();
    let out = env.run(&["admin", "create-token", "--seats", "3", "--expires", "2h", "--label", "lab"], "");
    let text = ok(&out);
    let line = text.strip_suffix('\n').expect("one line");
    assert!(!line.contains('\n') && !line.contains(' '), "only the token on stdout: {text:?}");
    assert!(line.starts_with("pdk_reg_"), "{line}");
    assert!(stderr(&out).contains("3 seat(s)"), "{}", stderr(&out));
    let hash = OpaqueToken::parse(line).expect("a well-formed token").hash().0;

    let store = env.store().await;
    let now = Timestamp::now();
    for used in 1..=3 {
        let token = store.take_seat(&hash, now).await.expect("a seat is left");
        assert_eq!(token.seats_used, used);
        assert_eq!(token.label, "lab");
        assert_eq!(token.created_by, None, "made on the command line");
        let lifetime = token.expires_at.duration_since(before);
        assert!(
            lifetime >= SignedDuration::from_hours(2) && lifetime < SignedDuration::from_mins(125),
            "expires {} ({lifetime})",
            token.expires_at
        );
    }
    let refused = store.take_seat(&hash, now).await.expect_err("only three seats");
    assert!(matches!(refused, patchdeck_store::TakeSeatError::NoSeatsLeft), "{refused:?}");

    for (args, reason) in [
        (["--expires", "0h"], "between 1 minute and 365 days"),
        (["--seats", "0"], "--seats must be between 1 and 100000"),
        (["--expires", "soon"], "is not a lifetime like 30m, 24h or 7d"),
    ] {
        let out = env.run(&["admin", "create-token", args[0], args[1]], "");
        assert!(failed(&out, 1).contains(reason), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "no token printed for {args:?}");
    }
    let tokens = store.list_registration_tokens(patchdeck_store::Paging::new(10, 0)).await.unwrap();
    assert_eq!(tokens.total, 1, "refused tokens are not stored");
    store.close().await;
});

/// The key files a restored data directory needs besides the database.
const KEY_FILES: [&str; 10] = [
    "ca.crt",
    "ca.key",
    "server.crt",
    "server.key",
    "server.names",
    "push-client.crt",
    "push-client.key",
    "session-signing.key",
    "command-signing.key",
    "secret.key",
];

on_both_backends!(backup_writes_a_restorable_copy_on_sqlite_only, |env: Env| async move {
    let target_dir = tempfile::tempdir().unwrap();
    let target = target_dir.path().join("patchdeck-backup.db");
    let target_arg = target.to_str().unwrap();
    if env.backend == Backend::Postgres {
        let out = env.run(&["backup", target_arg], "");
        let err = failed(&out, 1);
        assert!(err.contains("pg_dump"), "{err}");
        assert!(!target.exists(), "no file is left behind");
        return;
    }
    // First start (keys, CA, admin), then some command-line work.
    let m = env.manager().await;
    let ca_fingerprint = m.state.keys().ca.fingerprint();
    m.stop().await;
    env.populate();
    let verified = ok(&env.run(&["audit", "verify"], ""));
    assert_eq!(verified, "audit chain intact: 8 entries checked\n");

    let text = ok(&env.run(&["backup", target_arg], ""));
    assert_eq!(text, format!("backup written to {target_arg}\n"));
    assert_eq!(mode(&target), 0o600, "the copy holds password hashes");
    let err = failed(&env.run(&["backup", target_arg], ""), 1);
    assert!(err.contains("already exists"), "{err}");
    // Later changes are not in the copy.
    ok(&env.run(&["admin", "create-token", "--label", "after the backup"], ""));

    let restored = target_dir.path().join("restored");
    std::fs::create_dir(&restored).unwrap();
    std::fs::set_permissions(&restored, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(&target, restored.join("patchdeck.db")).unwrap();
    for name in KEY_FILES {
        std::fs::copy(env.data_dir().join(name), restored.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let out = run(patchdeck().arg("--data-dir").arg(&restored).args(["audit", "verify"]));
    assert_eq!(ok(&out), "audit chain intact: 8 entries checked\n");
    // The restored directory serves: same CA, same accounts.
    let m = ExistingManager::start(&restored, "").await;
    assert_eq!(m.state.keys().ca.fingerprint(), ca_fingerprint);
    assert!(!m.first_start.created_ca && m.first_start.admin_password.is_none());
    let (status, body) = m.client().login("ann", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    m.stop().await;
});

/// Entry 3 of the five [`Env::populate`] makes is in the middle of the chain.
const MIDDLE: i64 = 3;

on_both_backends!(audit_verify_finds_an_edited_entry, |env: Env| async move {
    env.populate();
    assert_eq!(ok(&env.run(&["audit", "verify"], "")), "audit chain intact: 5 entries checked\n");
    common::tamper(&env.config(), &format!("UPDATE audit_log SET action = 'user.delete' WHERE id = {MIDDLE}")).await;
    let out = env.run(&["audit", "verify"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("audit chain BROKEN at entry {MIDDLE} (2 entries checked before it)\n"));
});

on_both_backends!(audit_verify_finds_a_deleted_entry, |env: Env| async move {
    env.populate();
    assert_eq!(ok(&env.run(&["audit", "verify"], "")), "audit chain intact: 5 entries checked\n");
    common::tamper(&env.config(), &format!("DELETE FROM audit_log WHERE id = {MIDDLE}")).await;
    let out = env.run(&["audit", "verify"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("audit chain BROKEN at entry {MIDDLE} (2 entries checked before it)\n"));
});

on_both_backends!(audit_export_prints_json_lines_oldest_first, |env: Env| async move {
    env.populate();
    let text = ok(&env.run(&["audit", "export"], ""));
    let entries: Vec<Value> =
        text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect();
    assert_eq!(entries.len(), 5, "{text}");
    let mut prev_hash = "0".repeat(64);
    for (n, entry) in entries.iter().enumerate() {
        assert_eq!(entry["id"], json!(n + 1), "oldest first: {entry}");
        entry["at"].as_str().unwrap().parse::<Timestamp>().unwrap_or_else(|e| panic!("{e}: {entry}"));
        assert_eq!(entry["actor"], "cli", "{entry}");
        assert_eq!(entry["outcome"], "success", "{entry}");
        let hash = entry["hash"].as_str().unwrap();
        assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{entry}");
        assert_eq!(entry["prev_hash"], prev_hash.as_str(), "chained: {entry}");
        prev_hash = hash.to_owned();
    }
    let actions: Vec<&str> = entries.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, [["user.create"; 2].as_slice(), &["registration_token.create"; 3]].concat());
    assert_eq!(entries[0]["target"], "user:ann");
    // Only the entries after a given id.
    let text = ok(&env.run(&["audit", "export", "--after", "3"], ""));
    let ids: Vec<i64> =
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [4, 5]);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(patchdeck().arg("--data-dir").arg(&data).args(["--database-url", "mysql://x", "migrate"]));
    let err = failed(&out, 2);
    assert!(err.contains("postgres://"), "{err}");
    assert!(stdout(&out).is_empty());
    assert!(!data.exists(), "nothing is created for a refused config");

    let missing = dir.path().join("missing.toml");
    let out = run(patchdeck().arg("--data-dir").arg(&data).arg("--config").arg(&missing).arg("migrate"));
    let err = failed(&out, 2);
    assert!(err.contains(&format!("reading {}", missing.display())) && err.contains("No such file"), "{err}");

    let out = run(patchdeck().arg("--data-dir").arg(&data).arg("--config").arg(dir.path()).arg("migrate"));
    let err = failed(&out, 2);
    assert!(err.contains(&format!("reading {}", dir.path().display())), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[auth]\nlockout_treshold = 3\n").unwrap();
    let out = run(patchdeck().arg("--data-dir").arg(&data).arg("--config").arg(&bad).arg("migrate"));
    let err = failed(&out, 2);
    assert!(err.contains("is not a valid config file") && err.contains("lockout_treshold"), "{err}");
    assert!(!data.exists());
}
