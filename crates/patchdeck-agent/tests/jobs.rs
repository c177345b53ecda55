//! The job engine end to end, against the REAL apt-get and dpkg on sandbox
//! roots built by `patchdeck-testkit` (local repositories with hello 1.0-1 →
//! 1.1-1, the security update other 1.0-1 → 1.2-1, and grower 1.0-1 → 2.0-1
//! which pulls in the new package newdep).
//!
//! Transactions are held in flight with the testkit's dpkg gate: a wrapper in
//! front of dpkg (apt's `Dir::Bin::dpkg`) that waits until the test opens the
//! gate. The only fake is the [`Rebooter`]: tests never reboot the machine.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patchdeck_agent::jobs::{
    procs, store, Clock, CommandRebooter, EngineConfig, EngineError, JobEngine, JobEvent, JobEventKind, JobRecord,
    JobRequest, ManualClock, PackageBackend, PatchApply, RebootError, Rebooter, RecordedChange, SystemClock,
    JOB_MARKER_ENV, RECORD_FORMAT, RESTART_REASON,
};
use patchdeck_pkg::{PackageName, PackageSpec};
use patchdeck_proto::lpa::jobs::{JobDetail, JobOperation, JobStatus};
use patchdeck_proto::BackendKind;
use patchdeck_testkit::AptSandbox;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Records reboot and restart requests instead of carrying them out.
#[derive(Debug, Default)]
struct FakeRebooter {
    calls: Mutex<Vec<Duration>>,
    restarts: Mutex<u32>,
}

impl FakeRebooter {
    fn calls(&self) -> Vec<Duration> {
        self.calls.lock().unwrap().clone()
    }
}

impl Rebooter for FakeRebooter {
    fn reboot(&self, delay: Duration, _message: Option<&str>) -> Result<String, RebootError> {
        self.calls.lock().unwrap().push(delay);
        Ok(format!("fake reboot in {}s", delay.as_secs()))
    }

    fn restart_agent(&self) -> Result<String, RebootError> {
        *self.restarts.lock().unwrap() += 1;
        Ok("fake restart of the agent".to_owned())
    }
}

struct Harness {
    state: tempfile::TempDir,
    engine: JobEngine,
    rebooter: Arc<FakeRebooter>,
}

fn backend(sb: &AptSandbox) -> PackageBackend {
    PackageBackend { kind: BackendKind::Apt, options: sb.options() }
}

fn harness(sb: &AptSandbox, config: EngineConfig) -> Harness {
    let state = tempfile::tempdir().unwrap();
    let rebooter = Arc::new(FakeRebooter::default());
    let engine = JobEngine::open(state.path(), config, backend(sb), rebooter.clone(), Arc::new(SystemClock)).unwrap();
    Harness { state, engine, rebooter }
}

fn specs(specs: &[&str]) -> Vec<PackageSpec> {
    specs.iter().map(|s| PackageSpec::parse(s).unwrap()).collect()
}

fn install(s: &[&str]) -> JobRequest {
    JobRequest::Install { packages: specs(s) }
}

fn versions(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
}

/// Waits (at most 2 minutes) for a job to finish.
async fn finished(engine: &JobEngine, id: Uuid) -> JobDetail {
    tokio::time::timeout(Duration::from_secs(120), engine.wait(id))
        .await
        .unwrap_or_else(|_| panic!("job {id} did not finish: {:#?}", engine.get(id)))
        .unwrap()
}

/// Polls `cond` every 50 ms for up to 60 s.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Every event of job `id` up to and including its last one.
async fn events_of(rx: &mut broadcast::Receiver<JobEvent>, id: Uuid) -> Vec<JobEvent> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), rx.recv()).await.unwrap().unwrap();
        if event.job_id != id {
            continue;
        }
        let done = event.kind == JobEventKind::Status && event.status.is_terminal();
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn change(name: &str, before: Option<&str>, after: Option<&str>) -> RecordedChange {
    RecordedChange {
        name: name.into(),
        arch: Some("all".into()),
        before: before.map(Into::into),
        after: after.map(Into::into),
    }
}

fn is_exclusive(err: EngineError, rollback: Uuid) {
    match err {
        EngineError::ExclusiveInProgress { job_id } => assert_eq!(job_id, rollback),
        other => panic!("expected ExclusiveInProgress, got {other}"),
    }
}

/// A process that is gone or a zombie (in a container nobody may reap it).
fn process_gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_apply_records_old_versions_and_an_exclusive_rollback_restores_them() {
    let sb = AptSandbox::builder().dpkg_gate().installed(&["hello=1.0-1", "other=1.0-1", "grower=1.0-1"]).build();
    sb.open_gate();
    let h = harness(&sb, EngineConfig::default());
    let engine = &h.engine;
    let mut rx = engine.subscribe();

    let request = PatchApply { allow_reboot: true, ..PatchApply::default() };
    let job = engine.submit(JobRequest::PatchApply(request)).await.unwrap();
    assert_eq!((job.status, job.operation, job.exclusive_mode), (JobStatus::Pending, JobOperation::PatchApply, false));
    let done = finished(engine, job.job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:#?}");
    assert_eq!(done.progress, 100);
    assert_eq!(done.exit_code, Some(0));
    assert!(done.command_stdout.as_deref().unwrap_or("").contains("Setting up hello (1.1-1)"), "{done:#?}");
    assert_eq!(
        sb.versions(),
        versions(&[("grower", "2.0-1"), ("hello", "1.1-1"), ("newdep", "1.0-1"), ("other", "1.2-1")])
    );
    // The exact versions before the job, including the package it newly installed.
    let mut changes = engine.record(job.job_id).unwrap().changes;
    changes.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        changes,
        [
            change("grower", Some("1.0-1"), Some("2.0-1")),
            change("hello", Some("1.0-1"), Some("1.1-1")),
            change("newdep", None, Some("1.0-1")),
            change("other", Some("1.0-1"), Some("1.2-1")),
        ]
    );
    assert!(
        done.logs.iter().any(|l| l == "plan (install): newdep:all: was not installed -> 1.0-1"),
        "{:#?}",
        done.logs
    );
    assert!(done.logs.iter().any(|l| l == "no reboot needed"), "{:#?}", done.logs);
    assert!(h.rebooter.calls().is_empty(), "the sandbox needs no reboot");

    // The subscriber saw the job in order: created, running, the documented
    // progress points, output lines, and the end.
    let events = events_of(&mut rx, job.job_id).await;
    assert_eq!(events[0].status, JobStatus::Pending);
    assert!(events.windows(2).all(|w| w[0].progress <= w[1].progress), "progress went backwards");
    let messages: Vec<&str> =
        events.iter().filter(|e| e.kind == JobEventKind::Status).map(|e| e.message.as_str()).collect();
    let at = |m: &str| messages.iter().position(|x| *x == m).unwrap_or_else(|| panic!("no {m:?} in {messages:#?}"));
    assert!(
        at("running") < at("Refreshing package index...")
            && at("Refreshing package index...") < at("Cache refreshed, applying patches...")
    );
    assert!(events.iter().any(|e| e.log.as_deref() == Some("Setting up hello (1.1-1) ...")), "output is streamed");
    let last = events.last().unwrap();
    assert_eq!((last.status, last.progress, last.message.as_str()), (JobStatus::Completed, 100, done.message.as_str()));
    // And the record on disk is the record in memory.
    let file = store::record_path(&store::jobs_dir(h.state.path()), job.job_id);
    let on_disk: JobRecord = serde_json::from_slice(&fs::read(file).unwrap()).unwrap();
    assert_eq!(on_disk, engine.record(job.job_id).unwrap());

    // Roll back, held in flight at the gate: it runs alone.
    sb.close_gate();
    let rollback = engine.rollback(job.job_id).await.unwrap();
    assert!(rollback.exclusive_mode);
    assert_eq!((rollback.rollback_job_id, rollback.operation), (Some(job.job_id), JobOperation::Rollback));
    until("the rollback's dpkg run is held", || !sb.gated_pids().is_empty()).await;
    assert_eq!(engine.get(rollback.job_id).unwrap().status, JobStatus::Running);
    for request in [
        install(&["hello"]),
        JobRequest::Update { packages: specs(&["hello"]) },
        JobRequest::Remove { packages: vec![PackageName::parse("hello").unwrap()] },
        JobRequest::PatchApply(PatchApply::default()),
        JobRequest::Reboot { delay: Duration::ZERO, force: true, message: None },
        JobRequest::Rollback { job_id: job.job_id },
    ] {
        is_exclusive(engine.submit(request).await.unwrap_err(), rollback.job_id);
    }
    assert_eq!(engine.active_jobs(), [rollback.job_id], "nothing else was queued");
    sb.open_gate();
    let rolled = finished(engine, rollback.job_id).await;
    assert_eq!(rolled.status, JobStatus::Completed, "{rolled:#?}");
    assert_eq!(sb.versions(), versions(&[("grower", "1.0-1"), ("hello", "1.0-1"), ("other", "1.0-1")]));
    assert!(rolled.logs.iter().any(|l| l.starts_with("removing newly installed newdep")), "{:#?}", rolled.logs);

    // Exclusive mode ends with the rollback.
    let after = engine.submit(install(&["hello"])).await.unwrap();
    assert_eq!(finished(engine, after.job_id).await.status, JobStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_whose_old_version_vanished_fails_naming_it() {
    let sb = AptSandbox::builder().installed(&["hello=1.0-1"]).build();
    let h = harness(&sb, EngineConfig::default());
    let engine = &h.engine;

    let update = engine.submit(JobRequest::Update { packages: specs(&["hello"]) }).await.unwrap();
    let done = finished(engine, update.job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:#?}");
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.1-1"));

    sb.remove_from_repo("hello", "1.0-1");
    sb.refresh();
    let rollback = engine.rollback(update.job_id).await.unwrap();
    let failed = finished(engine, rollback.job_id).await;
    assert_eq!(failed.status, JobStatus::Failed, "{failed:#?}");
    assert_eq!(failed.error_code.as_deref(), Some("VERSION_UNAVAILABLE"));
    let error = failed.error.unwrap();
    assert!(error.contains("hello version 1.0-1 is not available"), "{error}");
    assert!(error.contains(&update.job_id.to_string()), "{error}");
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.1-1"), "nothing changed");

    // A rollback that changed nothing has nothing to roll back.
    match engine.rollback(rollback.job_id).await.unwrap_err() {
        EngineError::RollbackNotAllowed { job_id, reason } => {
            assert_eq!(job_id, rollback.job_id);
            assert!(reason.contains("no package changes"), "{reason}");
        }
        other => panic!("expected RollbackNotAllowed, got {other}"),
    }
    // The failed rollback released exclusive mode.
    let remove = engine.submit(JobRequest::Remove { packages: vec![PackageName::parse("hello").unwrap()] }).await;
    let remove = finished(engine, remove.unwrap().job_id).await;
    assert_eq!(remove.status, JobStatus::Completed);
    assert_eq!(sb.version_of("hello"), None);
    // Rolling back a removal installs the exact version that was removed.
    let reinstall = engine.rollback(remove.job_id).await.unwrap();
    let reinstall = finished(engine, reinstall.job_id).await;
    assert_eq!(reinstall.status, JobStatus::Completed, "{reinstall:#?}");
    assert!(reinstall.logs.iter().any(|l| l == "re-installing hello=1.1-1"), "{:#?}", reinstall.logs);
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.1-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_jobs_run_at_once_behind_one_transaction_and_a_full_queue_refuses() {
    let sb = AptSandbox::builder().dpkg_gate().build();
    sb.refresh();
    let config = EngineConfig { max_queue_depth: 8, event_capacity: 100_000, ..EngineConfig::default() };
    assert_eq!((config.max_concurrent, EngineConfig::default().max_queue_depth), (5, 100));
    let h = harness(&sb, config);
    let engine = &h.engine;
    let mut rx = engine.subscribe();

    let first = engine.submit(install(&["hello=1.0-1"])).await.unwrap();
    until("the first transaction is held in dpkg", || !sb.gated_pids().is_empty()).await;
    let mut ids = vec![first.job_id];
    for _ in 0..6 {
        ids.push(engine.submit(install(&["other=1.0-1"])).await.unwrap().job_id);
    }
    // Five run: the first inside dpkg, four waiting for the one package transaction.
    until("five jobs run, four of them waiting for the transaction", || {
        let running = engine.list(Some(JobStatus::Running), 100);
        running.len() == 5
            && running
                .iter()
                .filter(|j| j.job_id != first.job_id)
                .all(|j| engine.get(j.job_id).unwrap().message == "waiting for another package transaction to finish")
    })
    .await;
    assert_eq!(engine.list(Some(JobStatus::Pending), 100).len(), 2);
    assert_eq!(sb.gated_pids().len(), 1, "one transaction at a time");

    ids.push(engine.submit(install(&["other=1.0-1"])).await.unwrap().job_id);
    match engine.submit(install(&["other=1.0-1"])).await.unwrap_err() {
        err @ EngineError::QueueFull { .. } => {
            assert_eq!(err.code(), "QUEUE_FULL");
            let EngineError::QueueFull { depth, retry_after } = err else { unreachable!() };
            assert_eq!((depth, retry_after), (8, Duration::from_secs(60)));
        }
        other => panic!("expected QueueFull, got {other}"),
    }
    assert_eq!(engine.active_jobs().len(), 8);

    sb.open_gate();
    for id in &ids {
        let job = finished(engine, *id).await;
        assert_eq!(job.status, JobStatus::Completed, "{job:#?}");
    }
    assert_eq!(sb.versions(), versions(&[("hello", "1.0-1"), ("other", "1.0-1")]));

    // Never more than five running at once, and five were.
    let (mut running_now, mut most) = (std::collections::HashSet::new(), 0);
    while let Ok(event) = rx.try_recv() {
        if event.kind != JobEventKind::Status {
            continue;
        }
        match event.status {
            JobStatus::Running => {
                running_now.insert(event.job_id);
            }
            status if status.is_terminal() => {
                running_now.remove(&event.job_id);
            }
            _ => {}
        }
        most = most.max(running_now.len());
    }
    assert_eq!(most, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_package_command_times_out_and_its_process_group_is_killed() {
    let sb = AptSandbox::builder().dpkg_gate().build();
    sb.refresh();
    let h = harness(&sb, EngineConfig { job_timeout: Duration::from_secs(4), ..EngineConfig::default() });
    let engine = &h.engine;

    let job = engine.submit(install(&["hello=1.0-1"])).await.unwrap();
    let done = finished(engine, job.job_id).await;
    assert_eq!(done.status, JobStatus::TimedOut, "{done:#?}");
    assert_eq!(done.error_code.as_deref(), Some("JOB_TIMEOUT"));
    let error = done.error.unwrap();
    assert!(error.contains("did not finish within 4s") && error.contains("stopped process group"), "{error}");

    // The hung dpkg (and apt-get above it) are gone.
    let held = sb.gated_pids();
    assert_eq!(held.len(), 1, "{held:?}");
    until("the hung dpkg is gone", || process_gone(held[0])).await;
    assert!(procs::find_marked(&[job.job_id]).is_empty());

    // The transaction permit came back and the package lock is free.
    sb.open_gate();
    let next = engine.submit(install(&["hello=1.0-1"])).await.unwrap();
    let next = finished(engine, next.job_id).await;
    assert_eq!(next.status, JobStatus::Completed, "{next:#?}");
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.0-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_command_past_its_own_timeout_makes_the_job_timed_out() {
    let sb = AptSandbox::builder().dpkg_gate().transaction_timeout(Duration::from_secs(2)).build();
    sb.refresh();
    let h = harness(&sb, EngineConfig::default());
    let job = h.engine.submit(install(&["hello=1.0-1"])).await.unwrap();
    let done = finished(&h.engine, job.job_id).await;
    assert_eq!(done.status, JobStatus::TimedOut, "{done:#?}");
    assert_eq!(done.error_code.as_deref(), Some("TIMEOUT"));
    assert!(done.error.unwrap().contains("did not finish within 2s"));
    // apt runs dpkg in a session of its own, out of reach of a process-group
    // kill: the package layer stops it through the command's marker before the
    // command returns, so the engine finds nothing left to stop.
    assert!(!done.logs.iter().any(|l| l.contains("that outlived the timed-out command")), "{:#?}", done.logs);
    let held = sb.gated_pids();
    assert!(process_gone(held[0]), "dpkg {} outlived its job", held[0]);
    assert!(procs::find_marked(&[job.job_id]).is_empty());
    assert_eq!(sb.version_of("hello"), None);
}

/// A record as a killed agent leaves it.
fn interrupted_record(id: Uuid, status: JobStatus, seq: u64, agent_pid: u32) -> JobRecord {
    let now = jiff::Timestamp::now();
    JobRecord {
        format: RECORD_FORMAT,
        detail: JobDetail {
            job_id: id,
            operation: JobOperation::Install,
            status,
            progress: 10,
            message: "installing other=1.0-1".into(),
            created_at: now,
            completed_at: None,
            packages: vec!["other=1.0-1".into()],
            logs: vec![format!("started by agent process {agent_pid}")],
            error: None,
            error_code: None,
            exit_code: None,
            command_stdout: None,
            command_stderr: None,
            rollback_job_id: None,
            exclusive_mode: false,
        },
        seq,
        agent_pid: (status == JobStatus::Running).then_some(agent_pid),
        started_at: (status == JobStatus::Running).then_some(now),
        changes: Vec::new(),
        requested_by: None,
        hooks: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_interrupted_jobs_fail_and_no_transaction_starts_until_leftovers_exit() {
    let sb = AptSandbox::builder().build();
    sb.refresh();
    let state = tempfile::tempdir().unwrap();
    let jobs_dir = store::jobs_dir(state.path());
    fs::create_dir_all(&jobs_dir).unwrap();

    // The agent that ran job X was killed with -9: its pid is dead...
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let (x, y) = (Uuid::new_v4(), Uuid::new_v4());
    store::write_record(&jobs_dir, &interrupted_record(x, JobStatus::Running, 0, dead_pid)).unwrap();
    store::write_record(&jobs_dir, &interrupted_record(y, JobStatus::Pending, 1, dead_pid)).unwrap();
    // ...but X's package manager lives on in its own process group, as apt does.
    let finished_marker = state.path().join("leftover-finished");
    let mut leftover = Command::new("sh")
        .arg("-c")
        .arg(format!("sleep 3; touch '{}'", finished_marker.display()))
        .env(JOB_MARKER_ENV, x.to_string())
        .process_group(0)
        .spawn()
        .unwrap();

    let open = || {
        JobEngine::open(
            state.path(),
            EngineConfig { leftover_poll: Duration::from_millis(100), ..EngineConfig::default() },
            backend(&sb),
            Arc::new(FakeRebooter::default()),
            Arc::new(SystemClock),
        )
        .unwrap()
    };
    let engine = open();
    let mut recovered = engine.recovered().to_vec();
    recovered.sort();
    let mut expected = vec![x, y];
    expected.sort();
    assert_eq!(recovered, expected);
    // The agent restarts again before running anything: the second start has
    // nothing left to mark but must still know about X's survivor.
    drop(engine);
    let engine = open();
    assert!(engine.recovered().is_empty());
    for id in [x, y] {
        let job = engine.get(id).unwrap();
        assert_eq!(job.status, JobStatus::Failed);
        assert_eq!((job.error.as_deref(), job.error_code.as_deref()), (Some(RESTART_REASON), Some("AGENT_RESTARTED")));
        assert!(job.completed_at.is_some());
        assert_eq!(job.message, "agent restarted while the job was running");
    }
    // Failed on disk too, before anything else runs.
    let on_disk: JobRecord = serde_json::from_slice(&fs::read(store::record_path(&jobs_dir, x)).unwrap()).unwrap();
    assert_eq!(on_disk.detail.status, JobStatus::Failed);

    // A new package job waits for X's surviving process to exit.
    let job = engine.submit(install(&["hello=1.0-1"])).await.unwrap();
    let done = finished(&engine, job.job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:#?}");
    assert!(finished_marker.exists(), "the transaction started before the leftover process exited");
    assert!(
        done.logs.iter().any(|l| l.starts_with("waiting for package manager processes left by the previous agent")
            && l.contains(&x.to_string())),
        "{:#?}",
        done.logs
    );
    leftover.wait().unwrap();

    // Nothing ran twice: X's install of `other` never happened again.
    assert_eq!(sb.versions(), versions(&[("hello", "1.0-1")]));
    assert_eq!(engine.list(None, 100).len(), 3);

    // Reopening again changes nothing.
    drop(engine);
    let engine = open();
    assert!(engine.recovered().is_empty());
    assert_eq!(engine.get(x).unwrap(), on_disk.detail);
    assert_eq!(engine.get(job.job_id).unwrap().status, JobStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reboots_are_blocked_while_jobs_run_unless_forced_and_patch_apply_reboots_only_when_needed() {
    let sb = AptSandbox::builder().dpkg_gate().installed(&["hello=1.0-1"]).build();
    let h = harness(&sb, EngineConfig::default());
    let engine = &h.engine;

    let held = engine.submit(install(&["other=1.0-1"])).await.unwrap();
    until("the install is held in dpkg", || !sb.gated_pids().is_empty()).await;
    match engine.submit(JobRequest::Reboot { delay: Duration::ZERO, force: false, message: None }).await.unwrap_err() {
        err @ EngineError::RebootBlocked { .. } => {
            assert_eq!(err.code(), "REBOOT_BLOCKED");
            let EngineError::RebootBlocked { running_jobs } = err else { unreachable!() };
            assert_eq!(running_jobs, [held.job_id]);
        }
        other => panic!("expected RebootBlocked, got {other}"),
    }
    // Neither deleted nor rolled back while it runs.
    assert!(matches!(
        engine.delete(held.job_id),
        Err(EngineError::DeleteNotAllowed { status: JobStatus::Running, .. })
    ));
    assert!(matches!(engine.rollback(held.job_id).await, Err(EngineError::RollbackNotAllowed { .. })));

    let forced = engine
        .submit(JobRequest::Reboot { delay: Duration::from_secs(120), force: true, message: None })
        .await
        .unwrap();
    let forced = finished(engine, forced.job_id).await;
    assert_eq!(forced.status, JobStatus::Completed, "{forced:#?}");
    assert_eq!(h.rebooter.calls(), [Duration::from_secs(120)]);
    assert_eq!(engine.get(held.job_id).unwrap().status, JobStatus::Running, "the reboot did not wait for it");
    sb.open_gate();
    assert_eq!(finished(engine, held.job_id).await.status, JobStatus::Completed);

    // patch_apply reboots only when allowed and the host needs it.
    let no_reboot = PatchApply { allow_reboot: true, ..PatchApply::default() };
    let job = engine.submit(JobRequest::PatchApply(no_reboot)).await.unwrap();
    assert_eq!(finished(engine, job.job_id).await.status, JobStatus::Completed);
    assert_eq!(h.rebooter.calls().len(), 1, "not needed, so no reboot");

    sb.set_reboot_required();
    let job = engine.submit(JobRequest::PatchApply(PatchApply::default())).await.unwrap();
    let done = finished(engine, job.job_id).await;
    assert!(done.logs.iter().any(|l| l.contains("not rebooting because allow_reboot is false")), "{:#?}", done.logs);
    assert_eq!(h.rebooter.calls().len(), 1);

    let allowed = PatchApply { allow_reboot: true, reboot_delay: Duration::from_secs(30), ..PatchApply::default() };
    let job = engine.submit(JobRequest::PatchApply(allowed)).await.unwrap();
    let done = finished(engine, job.job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:#?}");
    assert!(done.message.ends_with("reboot scheduled in 30s"), "{}", done.message);
    assert_eq!(h.rebooter.calls(), [Duration::from_secs(120), Duration::from_secs(30)]);

    // A reboot never cuts off other jobs: of two patch_apply jobs submitted
    // together, the one finishing first leaves the reboot to the other.
    let allowed = PatchApply { allow_reboot: true, ..PatchApply::default() };
    let first = engine.submit(JobRequest::PatchApply(allowed.clone())).await.unwrap();
    let second = engine.submit(JobRequest::PatchApply(allowed)).await.unwrap();
    let (first, second) = (finished(engine, first.job_id).await, finished(engine, second.job_id).await);
    let skipped =
        |d: &JobDetail| d.logs.iter().any(|l| l.contains("not rebooting: 1 other job(s) are pending or running"));
    assert_eq!([skipped(&first), skipped(&second)].iter().filter(|s| **s).count(), 1, "{first:#?}\n{second:#?}");
    assert_eq!(h.rebooter.calls().len(), 3, "exactly one of them rebooted");

    // The real rebooter's commands (never run here).
    let real = CommandRebooter::default();
    assert_eq!(real.command_for(Duration::ZERO, None), ["systemctl", "reboot"]);
    assert_eq!(real.command_for(Duration::from_secs(90), None), ["shutdown", "-r", "+2"]);
    // A warning goes to shutdown, which broadcasts it with wall; with no delay, `+0` is now.
    let warn = Some("Patching: rebooting, save your work");
    assert_eq!(
        real.command_for(Duration::from_secs(300), warn),
        ["shutdown", "-r", "+5", "Patching: rebooting, save your work"]
    );
    assert_eq!(real.command_for(Duration::ZERO, warn), ["shutdown", "-r", "+0", "Patching: rebooting, save your work"]);
}

/// How a self-update fails on a root without a package manager.
const SELF_UPDATE_FAILURE: &str = "PKG_MANAGER_ERROR";

/// A backend whose root has no package manager.
fn unused_backend(dir: &Path) -> PackageBackend {
    PackageBackend { kind: BackendKind::Apt, options: patchdeck_pkg::BackendOptions::with_root(dir.join("no-root")) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_delete_retention_self_update_and_restart_without_package_jobs() {
    let state = tempfile::tempdir().unwrap();
    let start: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let open = |clock: Arc<dyn Clock>| {
        JobEngine::open(
            state.path(),
            EngineConfig { keep_terminal: 3, ..EngineConfig::default() },
            unused_backend(state.path()),
            Arc::new(FakeRebooter::default()),
            clock,
        )
        .unwrap()
    };
    let engine = open(clock.clone());

    let mut ids = Vec::new();
    for i in 0..4 {
        let job = engine.submit(JobRequest::SelfUpdate { target_version: Some(format!("0.{i}.0")) }).await.unwrap();
        assert_eq!(job.created_at, clock.now());
        let done = finished(&engine, job.job_id).await;
        // This engine's backend points at a root with no package manager: the update fails.
        assert_eq!(done.status, JobStatus::Failed);
        assert_eq!(done.error_code.as_deref(), Some(SELF_UPDATE_FAILURE), "{done:#?}");
        assert_eq!(done.completed_at, Some(clock.now()));
        ids.push(job.job_id);
        clock.advance(Duration::from_secs(60));
    }
    let reboot =
        engine.submit(JobRequest::Reboot { delay: Duration::ZERO, force: false, message: None }).await.unwrap();
    assert_eq!(finished(&engine, reboot.job_id).await.status, JobStatus::Completed);

    // Only the newest three finished jobs are kept, on disk too.
    let listed: Vec<Uuid> = engine.list(None, 10).into_iter().map(|j| j.job_id).collect();
    assert_eq!(listed, [reboot.job_id, ids[3], ids[2]]);
    let files = fs::read_dir(store::jobs_dir(state.path())).unwrap().count();
    assert_eq!(files, 3);
    assert!(matches!(engine.get(ids[0]), Err(EngineError::NotFound(_))));
    let failed: Vec<Uuid> = engine.list(Some(JobStatus::Failed), 1).into_iter().map(|j| j.job_id).collect();
    assert_eq!(failed, [ids[3]]);
    let summary = &engine.list(Some(JobStatus::Completed), 10)[0];
    assert_eq!((summary.job_id, summary.operation), (reboot.job_id, JobOperation::Reboot));

    // Optional fields are omitted on the wire when absent.
    let wire = serde_json::to_value(engine.get(reboot.job_id).unwrap()).unwrap();
    for absent in ["error", "error_code", "exit_code", "command_stdout", "command_stderr", "rollback_job_id"] {
        assert!(wire.get(absent).is_none(), "{absent} in {wire}");
    }
    assert_eq!((wire["progress"].as_u64(), wire["exclusive_mode"].as_bool()), (Some(100), Some(false)));
    assert_eq!(wire["status"], "completed");
    let summary = serde_json::to_value(&engine.list(Some(JobStatus::Failed), 1)[0]).unwrap();
    assert_eq!(summary["error_code"], SELF_UPDATE_FAILURE);
    assert_eq!(summary["operation"], "self_update");

    // Delete.
    engine.delete(reboot.job_id).unwrap();
    assert!(matches!(engine.get(reboot.job_id), Err(EngineError::NotFound(_))));
    assert!(matches!(engine.delete(reboot.job_id), Err(EngineError::NotFound(_))));
    assert!(!store::record_path(&store::jobs_dir(state.path()), reboot.job_id).exists());

    // Bad requests are refused before they become jobs.
    let err = engine.submit(JobRequest::Install { packages: Vec::new() }).await.unwrap_err();
    assert_eq!(err.code(), "VALIDATION_ERROR");

    // A restart loads the same jobs; an unreadable record is set aside, not lost.
    let before = engine.list(None, 10);
    drop(engine);
    let corrupt = store::jobs_dir(state.path()).join(format!("{}.json", Uuid::new_v4()));
    fs::write(&corrupt, "{ not json").unwrap();
    let engine = open(Arc::new(SystemClock));
    assert_eq!(engine.list(None, 10), before);
    assert!(!corrupt.exists());
    assert!(corrupt.with_file_name(format!("{}.corrupt", corrupt.file_name().unwrap().to_str().unwrap())).exists());
}

/// Set in the child agent process of [`kill_9_of_the_agent_mid_transaction`]: the state dir.
const CHILD_STATE: &str = "PATCHDECK_TEST_CHILD_AGENT_STATE";
const CHILD_ROOT: &str = "PATCHDECK_TEST_CHILD_AGENT_ROOT";
const CHILD_APT_CONF: &str = "PATCHDECK_TEST_CHILD_AGENT_APT_CONF";

/// The child agent: opens the engine, starts an install and waits to be killed.
async fn child_agent(state: &str) {
    let root = std::env::var(CHILD_ROOT).unwrap();
    let options = patchdeck_pkg::BackendOptions {
        config_file: Some(std::env::var(CHILD_APT_CONF).unwrap().into()),
        ..patchdeck_pkg::BackendOptions::with_root(root)
    };
    let engine = JobEngine::open(
        Path::new(state),
        EngineConfig::default(),
        PackageBackend { kind: BackendKind::Apt, options },
        Arc::new(FakeRebooter::default()),
        Arc::new(SystemClock),
    )
    .unwrap();
    engine.submit(install(&["hello=1.0-1"])).await.unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    panic!("the child agent was not killed");
}

/// A real crash: a child process runs the engine (this very test, re-run in
/// child mode), its install is held inside dpkg, and it is killed with
/// SIGKILL. apt and dpkg live on in their own process group and session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_agent_mid_transaction() {
    if let Ok(state) = std::env::var(CHILD_STATE) {
        return child_agent(&state).await;
    }
    let sb = AptSandbox::builder().dpkg_gate().build();
    sb.refresh();
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill_9_of_the_agent_mid_transaction", "--nocapture", "--test-threads=1"])
        .env(CHILD_STATE, state.path())
        .env(CHILD_ROOT, &sb.root)
        .env(CHILD_APT_CONF, &sb.apt_conf)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    until("the child agent's install is held in dpkg", || !sb.gated_pids().is_empty()).await;
    let jobs_dir = store::jobs_dir(state.path());
    let (records, problems) = store::load_records(&jobs_dir).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let [record] = records.as_slice() else { panic!("{records:#?}") };
    let job_id = record.id();
    assert_eq!(record.detail.status, JobStatus::Running);
    assert_eq!(record.agent_pid, Some(child.id()));

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let survivors = procs::find_marked(&[job_id]);
    assert!(!survivors.is_empty(), "the package manager outlives the agent");

    let engine = JobEngine::open(
        state.path(),
        EngineConfig { leftover_poll: Duration::from_millis(100), ..EngineConfig::default() },
        backend(&sb),
        Arc::new(FakeRebooter::default()),
        Arc::new(SystemClock),
    )
    .unwrap();
    assert_eq!(engine.recovered(), [job_id]);
    let crashed = engine.get(job_id).unwrap();
    assert_eq!((crashed.status, crashed.error_code.as_deref()), (JobStatus::Failed, Some("AGENT_RESTARTED")));

    let next = engine.submit(install(&["hello=1.0-1"])).await.unwrap();
    until("the new job waits for the survivors", || {
        engine.get(next.job_id).unwrap().message.starts_with("waiting for package manager processes left by")
    })
    .await;
    assert_eq!(sb.gated_pids().len(), 1, "no second transaction started");
    sb.open_gate();
    let done = finished(&engine, next.job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:#?}");
    assert!(procs::find_marked(&[job_id]).is_empty());
    // The surviving apt finished the crashed job's transaction; the new job
    // found nothing left to do instead of installing a second time.
    assert_eq!(sb.versions(), versions(&[("hello", "1.0-1")]));
    assert!(done.logs.iter().any(|l| l == "install hello=1.0-1: nothing to do"), "{:#?}", done.logs);
    assert!(engine.record(next.job_id).unwrap().changes.is_empty());
    assert_eq!(engine.get(job_id).unwrap(), crashed, "the crashed job was not run again");
}

/// The agent updates its own package, alone, and asks to be restarted; the
/// update can be rolled back like any package job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_update_upgrades_the_agent_package_alone_and_asks_for_a_restart() {
    use patchdeck_testkit::apt::Repo;
    use patchdeck_testkit::Deb;
    let sb = AptSandbox::builder()
        .deb(Deb::new("patchdeck-agent", "1.0-1", Repo::Main, ""))
        .deb(Deb::new("patchdeck-agent", "1.1-1", Repo::Main, ""))
        .installed(&["patchdeck-agent=1.0-1", "hello=1.0-1"])
        .dpkg_gate()
        .build();
    let h = harness(&sb, EngineConfig::default());
    let engine = &h.engine;

    // Not while another job runs.
    let held = engine.submit(install(&["other=1.0-1"])).await.unwrap();
    until("the install is held in dpkg", || !sb.gated_pids().is_empty()).await;
    match engine.submit(JobRequest::SelfUpdate { target_version: None }).await.unwrap_err() {
        err @ EngineError::SelfUpdateBlocked { .. } => assert_eq!(err.code(), "PACKAGE_DB_MUTATION_IN_PROGRESS"),
        other => panic!("expected SelfUpdateBlocked, got {other}"),
    }
    sb.open_gate();
    assert_eq!(finished(engine, held.job_id).await.status, JobStatus::Completed);

    // Alone: while it runs, every other change is refused.
    sb.close_gate();
    let update = engine.submit(JobRequest::SelfUpdate { target_version: None }).await.unwrap();
    assert!(update.exclusive_mode);
    until("the self-update is held in dpkg", || !sb.gated_pids().is_empty()).await;
    match engine.submit(install(&["grower=1.0-1"])).await.unwrap_err() {
        err @ EngineError::SelfUpdateInProgress { .. } => assert_eq!(err.code(), "SELF_UPDATE_IN_PROGRESS"),
        other => panic!("expected SelfUpdateInProgress, got {other}"),
    }
    sb.open_gate();
    let done = finished(engine, update.job_id).await;
    assert_eq!(done.status, JobStatus::Completed, "{done:#?}");
    assert_eq!(sb.version_of("patchdeck-agent").as_deref(), Some("1.1-1"));
    assert!(done.message.contains("updated to patchdeck-agent=1.1-1"), "{}", done.message);
    assert_eq!(*h.rebooter.restarts.lock().unwrap(), 1, "the restart was requested once");
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.0-1"), "nothing else was upgraded");

    // Up to date: nothing to do, no restart.
    let again = engine.submit(JobRequest::SelfUpdate { target_version: None }).await.unwrap();
    let again = finished(engine, again.job_id).await;
    assert_eq!(again.status, JobStatus::Completed);
    assert!(again.message.contains("already up to date"), "{}", again.message);
    assert_eq!(*h.rebooter.restarts.lock().unwrap(), 1);

    // Rolled back like any package job.
    let rollback = engine.rollback(update.job_id).await.unwrap();
    assert_eq!(finished(engine, rollback.job_id).await.status, JobStatus::Completed);
    assert_eq!(sb.version_of("patchdeck-agent").as_deref(), Some("1.0-1"));
}
