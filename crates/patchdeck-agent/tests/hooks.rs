//! Pre- and post-patch hooks: real executables in a temporary hooks directory, run by the real
//! job engine around real apt transactions on sandbox roots (`patchdeck-testkit`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use patchdeck_agent::jobs::hooks::{run_phase, HookContext, HookSettings, MAX_HOOK_OUTPUT_BYTES};
use patchdeck_agent::jobs::{EngineConfig, JobEngine, JobRequest, PackageBackend, RebootError, Rebooter, SystemClock};
use patchdeck_pkg::PackageSpec;
use patchdeck_proto::lpa::jobs::JobStatus;
use patchdeck_proto::orchestration::{HookOutcome, HookPhase, HookRun};
use patchdeck_proto::BackendKind;
use patchdeck_testkit::AptSandbox;
use uuid::Uuid;

#[derive(Debug)]
struct NoReboot;

impl Rebooter for NoReboot {
    fn reboot(&self, delay: Duration, _message: Option<&str>) -> Result<String, RebootError> {
        Ok(format!("(test) no reboot in {}s", delay.as_secs()))
    }
    fn restart_agent(&self) -> Result<String, RebootError> {
        Ok("(test) no restart".to_owned())
    }
}

/// A hooks directory with `pre-patch.d/` and `post-patch.d/` (mode 0755, as on a host).
struct Hooks {
    dir: tempfile::TempDir,
}

impl Hooks {
    fn new() -> Hooks {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["", "pre-patch.d", "post-patch.d"] {
            let path = dir.path().join(sub);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Hooks { dir }
    }

    fn settings(&self, timeout: Duration) -> HookSettings {
        HookSettings { dir: self.dir.path().to_owned(), timeout }
    }

    /// Writes a shell hook with `mode`.
    fn add(&self, phase: HookPhase, name: &str, body: &str, mode: u32) -> PathBuf {
        let path = self.dir.path().join(phase.dir_name()).join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// A file hooks can write to, to show what they saw.
    fn trace(&self) -> PathBuf {
        self.dir.path().join("trace")
    }

    fn traced(&self) -> String {
        std::fs::read_to_string(self.trace()).unwrap_or_default()
    }
}

fn context() -> HookContext {
    HookContext {
        job_id: Uuid::from_u128(7),
        command: "update".into(),
        packages: vec!["hello".into(), "other".into()],
        succeeded: None,
    }
}

fn run(hooks: &Hooks, phase: HookPhase, timeout: Duration) -> (Vec<HookRun>, Vec<String>) {
    let mut log = Vec::new();
    let runs = run_phase(&hooks.settings(timeout), phase, &context(), &mut |line| log.push(line));
    (runs, log)
}

#[test]
fn hooks_run_in_name_order_with_the_job_in_their_environment() {
    let hooks = Hooks::new();
    let trace = hooks.trace();
    let body = format!(
        "echo \"$(basename \"$0\") $PATCHDECK_JOB_ID $PATCHDECK_COMMAND $PATCHDECK_PHASE [$PATCHDECK_PACKAGES] \
         ${{PATCHDECK_RESULT:-none}} $LC_ALL\" >> {}\necho out; echo err >&2",
        trace.display()
    );
    for name in ["20-second", "10-first", "3-third"] {
        hooks.add(HookPhase::Pre, name, &body, 0o755);
    }
    let (runs, log) = run(&hooks, HookPhase::Pre, Duration::from_secs(30));
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["10-first", "20-second", "3-third"], "byte order of the names");
    assert!(runs.iter().all(|r| r.outcome == HookOutcome::Passed && r.exit_code == Some(0)), "{runs:#?}");
    assert!(runs.iter().all(|r| r.phase == HookPhase::Pre));
    let job = Uuid::from_u128(7);
    assert_eq!(
        hooks.traced(),
        format!(
            "10-first {job} update pre [hello other] none C\n20-second {job} update pre [hello other] none C\n\
             3-third {job} update pre [hello other] none C\n"
        )
    );
    // stdout and stderr are both captured, and each line reaches the job log with its hook.
    assert!(runs[0].output.contains("out\n") && runs[0].output.contains("err\n"), "{:?}", runs[0].output);
    assert!(log.iter().any(|l| l == "[pre-patch 10-first] out"), "{log:#?}");

    // Post-hooks learn how the transaction went.
    hooks.add(HookPhase::Post, "50-post", &body, 0o700);
    let mut seen = Vec::new();
    let post = HookContext { succeeded: Some(false), ..context() };
    let runs = run_phase(&hooks.settings(Duration::from_secs(30)), HookPhase::Post, &post, &mut |l| seen.push(l));
    assert_eq!(runs.len(), 1);
    assert!(hooks.traced().ends_with(&format!("50-post {job} update post [hello other] failed C\n")));
}

#[test]
fn a_failing_pre_hook_stops_the_phase_but_post_hooks_all_run() {
    let hooks = Hooks::new();
    let trace = hooks.trace();
    hooks.add(HookPhase::Pre, "10-fails", "echo cannot drain the node; exit 3", 0o755);
    hooks.add(HookPhase::Pre, "20-never", &format!("echo ran >> {}", trace.display()), 0o755);
    let (runs, _) = run(&hooks, HookPhase::Pre, Duration::from_secs(30));
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!((runs[0].outcome, runs[0].exit_code), (HookOutcome::Failed, Some(3)));
    assert!(runs[0].output.starts_with("cannot drain the node\n"), "{}", runs[0].output);
    assert!(runs[0].output.contains("exited with code 3"), "{}", runs[0].output);
    assert_eq!(hooks.traced(), "", "the hook after the failure did not run");

    hooks.add(HookPhase::Post, "10-fails", "exit 1", 0o755);
    hooks.add(HookPhase::Post, "20-still-runs", &format!("echo ran >> {}", trace.display()), 0o755);
    let (runs, _) = run(&hooks, HookPhase::Post, Duration::from_secs(30));
    assert_eq!(runs.iter().map(|r| r.outcome).collect::<Vec<_>>(), [HookOutcome::Failed, HookOutcome::Passed]);
    assert_eq!(hooks.traced(), "ran\n");
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_process_group() {
    let hooks = Hooks::new();
    let pid_file = hooks.dir.path().join("child.pid");
    // A child in the hook's process group that would outlive the hook.
    hooks.add(
        HookPhase::Pre,
        "10-hangs",
        &format!("sleep 300 & echo $! > {}\necho waiting\nwait", pid_file.display()),
        0o755,
    );
    let started = Instant::now();
    let (runs, _) = run(&hooks, HookPhase::Pre, Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!((runs[0].outcome, runs[0].exit_code), (HookOutcome::TimedOut, None), "{runs:#?}");
    assert!(runs[0].output.contains("waiting\n") && runs[0].output.contains("timeout"), "{}", runs[0].output);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    // Gone, or a zombie waiting for its reaper: either way no longer running.
    assert!(stat.is_empty() || stat.contains(") Z "), "the hook's child survived: {stat}");
}

#[test]
fn unsafe_hooks_are_skipped_and_reported() {
    let hooks = Hooks::new();
    let trace = hooks.trace();
    let runs_marker = format!("echo $(basename $0) >> {}", trace.display());
    hooks.add(HookPhase::Pre, "10-group-writable", &runs_marker, 0o775);
    hooks.add(HookPhase::Pre, "20-world-writable", &runs_marker, 0o757);
    hooks.add(HookPhase::Pre, "30-not-executable", &runs_marker, 0o644);
    let foreign = hooks.add(HookPhase::Pre, "40-foreign-owner", &runs_marker, 0o755);
    rustix::fs::chown(&foreign, Some(rustix::fs::Uid::from_raw(4242)), None).unwrap();
    let target = hooks.add(HookPhase::Post, "real", &runs_marker, 0o755);
    std::os::unix::fs::symlink(&target, hooks.dir.path().join("pre-patch.d/50-symlink")).unwrap();
    std::fs::create_dir(hooks.dir.path().join("pre-patch.d/60-directory")).unwrap();
    hooks.add(HookPhase::Pre, "70-fine", &runs_marker, 0o750);

    let (runs, log) = run(&hooks, HookPhase::Pre, Duration::from_secs(30));
    let outcome = |name: &str| runs.iter().find(|r| r.name == name).map(|r| (r.outcome, r.output.clone())).unwrap();
    for (name, why) in [
        ("10-group-writable", "writable by group or others (mode 0775)"),
        ("20-world-writable", "writable by group or others (mode 0757)"),
        ("30-not-executable", "is not executable"),
        ("40-foreign-owner", "owned by uid 4242"),
        ("50-symlink", "symbolic link"),
        ("60-directory", "not a regular file"),
    ] {
        let (got, output) = outcome(name);
        assert_eq!(got, HookOutcome::Skipped, "{name}");
        assert!(output.contains(why), "{name}: {output}");
    }
    assert_eq!(outcome("70-fine").0, HookOutcome::Passed);
    assert_eq!(hooks.traced(), "70-fine\n", "only the safe hook ran");
    assert!(log.iter().any(|l| l.contains("10-group-writable skipped")), "{log:#?}");

    // A phase directory others may write to: nothing in it runs.
    let pre = hooks.dir.path().join("pre-patch.d");
    std::fs::set_permissions(&pre, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (runs, _) = run(&hooks, HookPhase::Pre, Duration::from_secs(30));
    assert!(runs.iter().all(|r| r.outcome == HookOutcome::Skipped), "{runs:#?}");
    assert!(runs.iter().all(|r| r.output.contains("writable by group or others (mode 0777)")));
    assert_eq!(hooks.traced(), "70-fine\n");

    // No directory at all: no hooks, nothing reported.
    let none = HookSettings { dir: hooks.dir.path().join("missing"), timeout: Duration::from_secs(1) };
    assert!(run_phase(&none, HookPhase::Pre, &context(), &mut |_| {}).is_empty());
}

#[test]
fn hook_output_is_bounded_keeping_the_end() {
    let hooks = Hooks::new();
    hooks.add(
        HookPhase::Pre,
        "10-chatty",
        "seq 1 100000; head -c 300000 /dev/zero | tr '\\0' x; echo; echo the end",
        0o755,
    );
    let (runs, log) = run(&hooks, HookPhase::Pre, Duration::from_secs(60));
    let output = &runs[0].output;
    assert_eq!(runs[0].outcome, HookOutcome::Passed);
    assert!(output.len() <= MAX_HOOK_OUTPUT_BYTES, "{}", output.len());
    assert!(output.starts_with("[... earlier output truncated ...]\n"));
    assert!(output.ends_with("the end\n"), "{}", &output[output.len() - 50..]);
    assert!(log.len() > 100_000, "every line reached the job log");
}

fn backend(sb: &AptSandbox) -> PackageBackend {
    PackageBackend { kind: BackendKind::Apt, options: sb.options() }
}

fn engine(sb: &AptSandbox, state: &Path, hooks: &Hooks) -> JobEngine {
    let config = EngineConfig { hooks: Some(hooks.settings(Duration::from_secs(30))), ..EngineConfig::default() };
    JobEngine::open(state, config, backend(sb), Arc::new(NoReboot), Arc::new(SystemClock)).unwrap()
}

fn update(spec: &str) -> JobRequest {
    JobRequest::Update { packages: vec![PackageSpec::parse(spec).unwrap()] }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_hook_changes_nothing_and_a_failing_post_hook_keeps_the_changes() {
    let sb = AptSandbox::builder().installed(&["hello=1.0-1", "other=1.0-1"]).build();
    let state = tempfile::tempdir().unwrap();
    let hooks = Hooks::new();
    let trace = hooks.trace();
    let engine = engine(&sb, state.path(), &hooks);

    // A pre-hook that fails: the update never runs, post-hooks are not run either.
    hooks.add(HookPhase::Pre, "10-drain", "echo 'load balancer refused the drain' >&2; exit 7", 0o755);
    hooks.add(HookPhase::Post, "10-undrain", &format!("echo post >> {}", trace.display()), 0o755);
    let job = engine.submit(update("hello=1.1-1")).await.unwrap();
    let detail = engine.wait(job.job_id).await.unwrap();
    assert_eq!(detail.status, JobStatus::Failed, "{detail:#?}");
    assert_eq!(detail.error_code.as_deref(), Some("pre_hook_failed"));
    let error = detail.error.unwrap();
    assert!(error.contains("10-drain") && error.contains("exit code 7"), "{error}");
    assert!(error.contains("load balancer refused the drain") && error.contains("nothing was changed"), "{error}");
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.0-1"));
    assert!(detail.logs.iter().any(|l| l == "[pre-patch 10-drain] load balancer refused the drain"));
    let record = engine.record(job.job_id).unwrap();
    assert_eq!(record.hooks.len(), 1, "{:#?}", record.hooks);
    assert_eq!(hooks.traced(), "", "no post-hook after a failed pre-hook");

    // Passing pre-hooks, a failing post-hook: the update stands, the job says post_hook_failed.
    hooks.add(HookPhase::Pre, "10-drain", &format!("echo \"pre $PATCHDECK_PACKAGES\" >> {}", trace.display()), 0o755);
    hooks.add(
        HookPhase::Post,
        "20-smoke-test",
        &format!("echo \"post $PATCHDECK_RESULT $PATCHDECK_PACKAGES\" >> {}; exit 1", trace.display()),
        0o755,
    );
    let job = engine.submit(update("hello=1.1-1")).await.unwrap();
    let detail = engine.wait(job.job_id).await.unwrap();
    assert_eq!(detail.status, JobStatus::Failed, "{detail:#?}");
    assert_eq!(detail.error_code.as_deref(), Some("post_hook_failed"));
    assert!(detail.error.unwrap().contains("the package changes stand"));
    assert_eq!(sb.version_of("hello").as_deref(), Some("1.1-1"));
    assert_eq!(hooks.traced(), "pre hello\npost\npost success hello\n");
    let record = engine.record(job.job_id).unwrap();
    assert_eq!(record.changes.len(), 1, "the change is recorded, so it can be rolled back");
    let order: Vec<(HookPhase, &str, HookOutcome)> =
        record.hooks.iter().map(|r| (r.phase, r.name.as_str(), r.outcome)).collect();
    assert_eq!(
        order,
        [
            (HookPhase::Pre, "10-drain", HookOutcome::Passed),
            (HookPhase::Post, "10-undrain", HookOutcome::Passed),
            (HookPhase::Post, "20-smoke-test", HookOutcome::Failed),
        ]
    );

    // Nothing to change: no hooks at all.
    std::fs::remove_file(trace).unwrap();
    let job = engine.submit(update("hello=1.1-1")).await.unwrap();
    let detail = engine.wait(job.job_id).await.unwrap();
    assert_eq!(detail.status, JobStatus::Completed, "{detail:#?}");
    assert!(engine.record(job.job_id).unwrap().hooks.is_empty());
    assert_eq!(hooks.traced(), "");

    // A reboot job is not a package job: no hooks.
    let reboot = JobRequest::Reboot { delay: Duration::ZERO, force: true, message: None };
    let job = engine.submit(reboot).await.unwrap();
    engine.wait(job.job_id).await.unwrap();
    assert!(engine.record(job.job_id).unwrap().hooks.is_empty());
}
