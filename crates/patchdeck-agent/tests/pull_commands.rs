//! Pull-mode commands end to end on the agent's side: signed commands are verified with a real
//! Ed25519 key, run through the real job engine against the REAL apt-get and dpkg on sandbox
//! roots (`patchdeck-testkit`), and their results land in the real outbox. The check-in with a
//! manager is tested with the manager. The only fake is the rebooter: tests never reboot.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use patchdeck_agent::health::HealthSettings;
use patchdeck_agent::jobs::{
    procs, EngineConfig, JobEngine, JobErrorCode, PackageBackend, RebootError, Rebooter, SystemClock,
};
use patchdeck_agent::pull::commands::{self, Accepted, Books, Runner};
use patchdeck_agent::pull::ledger::CommandLedger;
use patchdeck_agent::pull::outbox::Outbox;
use patchdeck_agent::pull::scanner::Scanner;
use patchdeck_agent::pull::seen::SeenStore;
use patchdeck_agent::pull::PullPaths;
use patchdeck_agent::scan::RefreshPolicy;
use patchdeck_crypto::signing::{SignedEnvelope, SigningKey};
use patchdeck_proto::agent::{
    Command, CommandPayload, CommandResult, CommandState, PackageChange, Selection, SignedCommand,
};
use patchdeck_proto::{BackendKind, TxAction};
use patchdeck_testkit::AptSandbox;
use uuid::Uuid;

const HOST: i64 = 42;
const MACHINE: &str = "5e7a1c2b3d4f40a1b2c3d4e5f6a7b8c9";

#[derive(Debug, Default)]
struct NoReboot;

impl Rebooter for NoReboot {
    fn reboot(&self, delay: Duration, _message: Option<&str>) -> Result<String, RebootError> {
        Ok(format!("(test) reboot in {}s not carried out", delay.as_secs()))
    }
    fn restart_agent(&self) -> Result<String, RebootError> {
        Ok("(test) restart not carried out".to_owned())
    }
}

/// The agent's side of pull mode on a sandbox, minus the network.
struct Agent {
    key: SigningKey,
    paths: PullPaths,
    engine: JobEngine,
    books: Arc<Mutex<Books>>,
    scanner: Arc<Scanner>,
    runner: Runner,
    seen: SeenStore,
}

fn backend(sb: &AptSandbox) -> PackageBackend {
    PackageBackend { kind: BackendKind::Apt, options: sb.options() }
}

impl Agent {
    /// Opens everything on `state` as `serve` would at start.
    async fn open(sb: &AptSandbox, state: &std::path::Path, key: SigningKey, rebooter: Arc<dyn Rebooter>) -> Agent {
        let config = EngineConfig { hooks: None, ..EngineConfig::default() };
        Agent::open_with(sb, state, key, rebooter, config, HealthSettings::default()).await
    }

    /// [`Agent::open`] with the engine's settings (hooks) and the health-check settings.
    async fn open_with(
        sb: &AptSandbox,
        state: &std::path::Path,
        key: SigningKey,
        rebooter: Arc<dyn Rebooter>,
        config: EngineConfig,
        health: HealthSettings,
    ) -> Agent {
        let engine = JobEngine::open(state, config, backend(sb), rebooter, Arc::new(SystemClock)).unwrap();
        let paths = PullPaths::new(state);
        std::fs::create_dir_all(paths.dir()).unwrap();
        let books = Arc::new(Mutex::new(Books {
            outbox: Outbox::open(&paths.outbox()).unwrap(),
            ledger: CommandLedger::open(&paths.commands()).unwrap(),
        }));
        let scanner = Arc::new(Scanner::load(backend(sb), paths.inventory()));
        let runner = Runner::new(
            engine.clone(),
            backend(sb),
            Arc::clone(&scanner),
            Arc::clone(&books),
            Arc::new(SystemClock),
            health,
        );
        let seen = SeenStore::open(&paths.seen()).unwrap();
        Agent { key, paths, engine, books, scanner, runner, seen }
    }

    /// Signs `command` as the manager does, verifies it as the check-in loop does, and starts it.
    fn deliver(&mut self, command: Command) -> Uuid {
        let payload = CommandPayload {
            command_id: Uuid::new_v4(),
            host_id: HOST,
            machine_id: MACHINE.to_owned(),
            issued_at: Timestamp::now(),
            command,
        };
        let envelope =
            SignedEnvelope::seal(&self.key, serde_json::to_vec(&payload).unwrap(), Timestamp::now()).unwrap();
        let signed: SignedCommand = serde_json::from_value(serde_json::to_value(&envelope).unwrap()).unwrap();
        let now = Timestamp::now();
        let verified = commands::verify(&signed, &self.key.verifying_key(), HOST, MACHINE, &self.seen, now).unwrap();
        self.seen.remember(payload.command_id, &verified.nonce, verified.expires_at, now).unwrap();
        assert_eq!(self.runner.accept(verified), Accepted::Started);
        payload.command_id
    }

    fn result(&self, id: Uuid, state: CommandState) -> Option<CommandResult> {
        self.books.lock().unwrap().outbox.get(id, state).map(|e| e.result.clone())
    }

    /// Waits for the command's terminal result.
    async fn finished(&self, id: Uuid) -> CommandResult {
        for _ in 0..1200 {
            let done = {
                let books = self.books.lock().unwrap();
                [CommandState::Completed, CommandState::Failed, CommandState::TimedOut]
                    .into_iter()
                    .find_map(|s| books.outbox.get(id, s).map(|e| e.result.clone()))
            };
            if let Some(done) = done {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("command {id} did not finish within a minute");
    }
}

fn change(name: &str, action: TxAction, from: Option<&str>, to: Option<&str>) -> PackageChange {
    PackageChange {
        name: name.to_owned(),
        arch: Some("all".to_owned()),
        action,
        from: from.map(Into::into),
        to: to.map(Into::into),
    }
}

/// `arch` as the job recorded it may be absent or `all`; compare without it.
fn without_arch(changes: &[PackageChange]) -> Vec<PackageChange> {
    let mut out: Vec<PackageChange> =
        changes.iter().map(|c| PackageChange { arch: Some("all".into()), ..c.clone() }).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_upgrade_dry_run_real_run_and_rollback_by_command_id() {
    let sb = AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1"]).build();
    let state = tempfile::tempdir().unwrap();
    let mut agent = Agent::open(&sb, state.path(), SigningKey::generate().unwrap(), Arc::new(NoReboot)).await;
    agent.scanner.scan(RefreshPolicy::Never, true).await.unwrap();

    // A dry run plans with the package manager and changes nothing.
    let dry = agent.deliver(Command::Upgrade { selection: Selection::Security, dry_run: true });
    let planned = agent.finished(dry).await;
    assert_eq!(planned.state, CommandState::Completed, "{planned:#?}");
    assert_eq!(planned.job_id, None);
    assert_eq!(without_arch(&planned.changes), [change("other", TxAction::Upgrade, Some("1.0-1"), Some("1.2-1"))]);
    assert!(agent.result(dry, CommandState::Running).is_some(), "running was reported first");
    assert_eq!(sb.version_of("other").as_deref(), Some("1.0-1"));

    // The real run: only the security update, as a job, reported running with its job id first.
    let upgrade = agent.deliver(Command::Upgrade { selection: Selection::Security, dry_run: false });
    let done = agent.finished(upgrade).await;
    assert_eq!(done.state, CommandState::Completed, "{done:#?}");
    let job = done.job_id.expect("a job");
    assert_eq!(agent.result(upgrade, CommandState::Running).unwrap().job_id, Some(job));
    assert_eq!(without_arch(&done.changes), [change("other", TxAction::Upgrade, Some("1.0-1"), Some("1.2-1"))]);
    assert!(done.error.is_none() && !done.reboot_required);
    assert!(done.output.contains("Setting up other (1.2-1)"), "{}", done.output);
    assert_eq!((sb.version_of("other").as_deref(), sb.version_of("hello").as_deref()), (Some("1.2-1"), Some("1.0-1")));
    // The scan after the command no longer lists the security update.
    let (report, _) = agent.scanner.latest().unwrap();
    assert_eq!(report.security_update_count(), 0, "{:#?}", report.updates);
    // Nothing left to do: completes without a job.
    let again = agent.deliver(Command::Upgrade { selection: Selection::Security, dry_run: false });
    let nothing = agent.finished(again).await;
    assert_eq!((nothing.state, nothing.job_id, nothing.changes.len()), (CommandState::Completed, None, 0));

    // Rollback names the command; the ledger knows its job.
    let rollback = agent.deliver(Command::Rollback { command_id: upgrade });
    let rolled = agent.finished(rollback).await;
    assert_eq!(rolled.state, CommandState::Completed, "{rolled:#?}");
    assert_eq!(without_arch(&rolled.changes), [change("other", TxAction::Downgrade, Some("1.2-1"), Some("1.0-1"))]);
    assert_eq!(sb.version_of("other").as_deref(), Some("1.0-1"));
    assert_eq!(agent.engine.record(rolled.job_id.unwrap()).unwrap().detail.rollback_job_id, Some(job));

    // A rollback of a command that ran no job, and an install of what does not exist, fail with codes.
    let unknown = agent.deliver(Command::Rollback { command_id: Uuid::new_v4() });
    let failed = agent.finished(unknown).await;
    assert_eq!((failed.state, failed.error.unwrap().code.as_str()), (CommandState::Failed, "ROLLBACK_NOT_ALLOWED"));
    let missing = agent.deliver(Command::Install { packages: vec!["nothere".to_owned()], dry_run: false });
    let failed = agent.finished(missing).await;
    assert_eq!(failed.state, CommandState::Failed);
    assert_eq!(failed.error.as_ref().unwrap().code, JobErrorCode::PkgNotFound.as_str(), "{failed:#?}");
    let bad = agent.deliver(Command::Install { packages: vec!["-oops".to_owned()], dry_run: false });
    let failed = agent.finished(bad).await;
    assert_eq!(failed.error.as_ref().unwrap().code, "VALIDATION_ERROR", "{failed:#?}");

    // Every command is in the ledger with its final result written, and nothing is in flight.
    let books = agent.books.lock().unwrap();
    assert!(books.ledger.unreported().is_empty());
    assert_eq!(books.ledger.job_of(upgrade), Some(job));
    drop(books);
    assert_eq!(agent.runner.active(), 0);
}

/// A command whose job a restart interrupted gets exactly one terminal result, at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_each_command_gets_exactly_one_terminal_result() {
    let sb = AptSandbox::builder().dpkg_gate().installed(&["hello=1.0-1"]).build();
    let state = tempfile::tempdir().unwrap();
    let key = SigningKey::generate().unwrap();

    // First process: an install held in flight at the dpkg gate when the "agent dies".
    let mut first = Agent::open(&sb, state.path(), key.clone(), Arc::new(NoReboot)).await;
    sb.close_gate();
    let held = first.deliver(Command::Install { packages: vec!["grower".to_owned()], dry_run: false });
    for _ in 0..600 {
        if !sb.gated_pids().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!sb.gated_pids().is_empty(), "the install reached dpkg");
    let running = first.result(held, CommandState::Running).expect("running was reported");
    let job = running.job_id.unwrap();
    assert!(first.result(held, CommandState::Failed).is_none());
    let seen_path = first.paths.seen();
    drop(first);

    // Second process on the same state: the engine marks the job failed (AGENT_RESTARTED), and
    // recovery writes the command's one terminal result.
    let second = Agent::open(&sb, state.path(), key.clone(), Arc::new(NoReboot)).await;
    assert_eq!(second.engine.recovered(), [job]);
    second.runner.recover().await;
    let result = second.result(held, CommandState::Failed).expect("a terminal result after the restart");
    assert_eq!(result.job_id, Some(job));
    assert_eq!(result.error.as_ref().unwrap().code, JobErrorCode::AgentRestarted.as_str());
    assert!(second.books.lock().unwrap().ledger.unreported().is_empty());
    // Running recovery again (another restart) adds nothing.
    let outbox_len = second.books.lock().unwrap().outbox.len();
    second.runner.recover().await;
    assert_eq!(second.books.lock().unwrap().outbox.len(), outbox_len);
    // The command cannot be delivered again: the replay store survived.
    assert!(SeenStore::open(&seen_path).unwrap().contains(Some(held), "any nonce"));

    // Let the first process's dpkg finish so that the sandbox can be removed.
    sb.open_gate();
    for _ in 0..1200 {
        if procs::find_marked(&[job]).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes an executable shell script.
fn script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Orchestration through signed commands: the dry run's preview, an upgrade whose pre-hook
/// fails, a health check, and a reboot with a warning, each with its structured result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previews_hooks_health_checks_and_reboot_warnings_reach_the_results() {
    use std::os::unix::fs::PermissionsExt;

    use patchdeck_agent::jobs::{CommandRebooter, HookSettings};
    use patchdeck_proto::orchestration::{CheckKind, HookOutcome, HookPhase, Probe};

    let sb = AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1"]).build();
    let state = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let hooks_dir = files.path().join("hooks");
    std::fs::create_dir_all(hooks_dir.join("pre-patch.d")).unwrap();
    for dir in [&hooks_dir, &hooks_dir.join("pre-patch.d")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    script(&hooks_dir.join("pre-patch.d/10-drain"), "echo \"cannot drain: $PATCHDECK_PACKAGES\"; exit 4");
    let unit = files.path().join("is-active");
    script(&unit, "[ \"$2\" = cron.service ] && { echo active; exit 0; }; echo inactive; exit 3");
    let reboot_args = files.path().join("reboot-args");
    let reboot = files.path().join("reboot");
    script(&reboot, &format!("printf '%s\\n' \"$@\" > {}", reboot_args.display()));
    let rebooter = CommandRebooter {
        immediate: vec![reboot.display().to_string(), "now".into()],
        delayed: vec![reboot.display().to_string(), "+{minutes}".into()],
        ..CommandRebooter::default()
    };
    let config = EngineConfig {
        hooks: Some(HookSettings { dir: hooks_dir.clone(), timeout: Duration::from_secs(30) }),
        ..EngineConfig::default()
    };
    let health = HealthSettings { unit_command: vec![unit.display().to_string()], ca_cert: None };
    let mut agent =
        Agent::open_with(&sb, state.path(), SigningKey::generate().unwrap(), Arc::new(rebooter), config, health).await;
    agent.scanner.scan(RefreshPolicy::Never, true).await.unwrap();

    // The dry run: upgrades by kind, no reboot predicted for these packages, no hooks run.
    let dry = agent.deliver(Command::Upgrade { selection: Selection::All, dry_run: true });
    let planned = agent.finished(dry).await;
    assert_eq!(planned.state, CommandState::Completed, "{planned:#?}");
    let preview = planned.preview.as_ref().expect("a dry run carries its preview");
    let mut upgrades: Vec<(&str, Option<&str>, Option<&str>)> =
        preview.upgrades.iter().map(|c| (c.name.as_str(), c.from.as_deref(), c.to.as_deref())).collect();
    upgrades.sort();
    assert_eq!(upgrades, [("hello", Some("1.0-1"), Some("1.1-1")), ("other", Some("1.0-1"), Some("1.2-1"))]);
    assert!(preview.installs.is_empty() && preview.removals.is_empty());
    assert!(!preview.reboot_required && !planned.reboot_required, "{preview:#?}");
    assert!(planned.output.contains("no reboot would be needed"), "{}", planned.output);
    assert!(planned.hooks.is_empty());

    // The real upgrade: the pre-hook refuses, nothing changes, the hook's run is in the result.
    let upgrade = agent.deliver(Command::Upgrade {
        selection: Selection::Packages { packages: vec!["hello=1.1-1".into()] },
        dry_run: false,
    });
    let refused = agent.finished(upgrade).await;
    assert_eq!(refused.state, CommandState::Failed, "{refused:#?}");
    assert_eq!(refused.error.as_ref().unwrap().code, "pre_hook_failed");
    assert!(refused.error.as_ref().unwrap().message.contains("cannot drain: hello"), "{refused:#?}");
    assert_eq!(refused.hooks.len(), 1);
    let hook = &refused.hooks[0];
    assert_eq!(
        (hook.phase, hook.name.as_str(), hook.outcome, hook.exit_code),
        (HookPhase::Pre, "10-drain", HookOutcome::Failed, Some(4))
    );
    assert!(hook.output.starts_with("cannot drain: hello\n"), "{}", hook.output);
    assert!(refused.output.contains("[pre-patch 10-drain] cannot drain: hello"), "{}", refused.output);
    assert!(refused.changes.is_empty(), "nothing changed, nothing to roll back: {refused:#?}");
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.0-1"));

    // A health check: an active unit, an inactive one, a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let check = agent.deliver(Command::HealthCheck {
        units: vec!["cron".into(), "nginx".into()],
        probes: vec![Probe::Tcp { address: closed.clone(), timeout_secs: 5 }],
    });
    let checked = agent.finished(check).await;
    assert_eq!(checked.state, CommandState::Failed, "{checked:#?}");
    assert_eq!(checked.job_id, None, "a health check is no job");
    let error = checked.error.as_ref().unwrap();
    assert_eq!(error.code, "health_check_failed");
    assert!(error.message.starts_with("2 of 3 check(s) failed"), "{}", error.message);
    let summary: Vec<(CheckKind, &str, bool)> =
        checked.checks.iter().map(|c| (c.kind, c.target.as_str(), c.passed)).collect();
    assert_eq!(
        summary,
        [
            (CheckKind::Unit, "cron.service", true),
            (CheckKind::Unit, "nginx.service", false),
            (CheckKind::Tcp, closed.as_str(), false)
        ]
    );
    assert!(checked.output.contains("FAIL tcp"), "{}", checked.output);
    let ok = agent.deliver(Command::HealthCheck { units: vec!["cron".into()], probes: vec![] });
    let passed = agent.finished(ok).await;
    assert_eq!((passed.state, passed.error.as_ref()), (CommandState::Completed, None), "{passed:#?}");
    let bad = agent.deliver(Command::HealthCheck { units: vec!["a;b".into()], probes: vec![] });
    let refused = agent.finished(bad).await;
    assert_eq!(refused.error.as_ref().unwrap().code, "VALIDATION_ERROR", "{refused:#?}");

    // A reboot with a warning: the message is the last argument of the delayed command.
    let warned = agent.deliver(Command::Reboot {
        delay_secs: 90,
        force: true,
        message: Some("Patching: rebooting in 2 minutes".into()),
    });
    let done = agent.finished(warned).await;
    assert_eq!(done.state, CommandState::Completed, "{done:#?}");
    assert_eq!(std::fs::read_to_string(&reboot_args).unwrap(), "+2\nPatching: rebooting in 2 minutes\n");
    let now = agent.deliver(Command::Reboot { delay_secs: 0, force: true, message: None });
    assert_eq!(agent.finished(now).await.state, CommandState::Completed);
    assert_eq!(std::fs::read_to_string(&reboot_args).unwrap(), "now\n");
}
