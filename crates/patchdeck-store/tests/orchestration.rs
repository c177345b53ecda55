//! The job queue, worker heartbeats, deployments and group policies, on both backends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use patchdeck_store::*;
use patchdeck_testkit::pg::TestDatabase;

struct Harness {
    store: Store,
    config: DatabaseConfig,
    _dir: tempfile::TempDir,
    _pg: Option<TestDatabase>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig::Sqlite { path: dir.path().join("patchdeck.db") };
        Self::open(config, dir, None).await
    }

    async fn postgres() -> Harness {
        let db = TestDatabase::create().await;
        let config = DatabaseConfig::Postgres { url: db.url().to_owned() };
        Self::open(config, tempfile::tempdir().unwrap(), Some(db)).await
    }

    async fn open(config: DatabaseConfig, dir: tempfile::TempDir, pg: Option<TestDatabase>) -> Harness {
        let store = Store::connect(&config).await.unwrap();
        store.migrate().await.unwrap();
        Harness { store, config, _dir: dir, _pg: pg }
    }

    /// A second store on the same database: another process.
    async fn other(&self) -> Store {
        Store::connect(&self.config).await.unwrap()
    }
}

macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Harness::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::Harness::postgres().await).await;
                }
            )+
        }
    };
}

both!(
    jobs_queue_claim_and_finish,
    a_wakeup_during_a_run_runs_the_job_again,
    an_expired_claim_is_taken_over_and_the_late_finish_ignored,
    two_workers_never_run_one_job_at_once,
    workers_heartbeat_and_stop,
    deployments_hosts_and_transitions,
    group_policies_merge_per_host,
);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

const LOCK: SignedDuration = SignedDuration::from_secs(60);

async fn jobs_queue_claim_and_finish(h: &Harness) {
    let s = &h.store;
    s.enqueue_job("deployment:1", "deployment", at(10), at(0)).await.unwrap();
    // Not due yet.
    assert!(s.claim_jobs("w1", at(5), LOCK, 10).await.unwrap().is_empty());
    // Asking again for later keeps the earlier time; asking for earlier moves it.
    s.enqueue_job("deployment:1", "deployment", at(20), at(1)).await.unwrap();
    assert_eq!(s.get_job("deployment:1").await.unwrap().unwrap().run_at, at(10));
    s.enqueue_job("deployment:1", "deployment", at(4), at(2)).await.unwrap();
    let claimed = s.claim_jobs("w1", at(5), LOCK, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].key.as_str(), claimed[0].state, claimed[0].runs), ("deployment:1", JobState::Running, 1));
    assert_eq!(claimed[0].locked_by.as_deref(), Some("w1"));
    // Claimed once only.
    assert!(s.claim_jobs("w2", at(6), LOCK, 10).await.unwrap().is_empty());
    let counts = s.job_counts(at(6)).await.unwrap();
    assert_eq!((counts.running, counts.queued), (1, 0));

    // Again: queued for later.
    assert!(s.finish_job("deployment:1", "w1", &JobOutcome::Again(at(30)), at(7)).await.unwrap());
    let job = s.get_job("deployment:1").await.unwrap().unwrap();
    assert_eq!((job.state, job.run_at, job.locked_by), (JobState::Queued, at(30), None));

    // A failure counts and retries; giving up is `failed`.
    assert_eq!(s.claim_jobs("w1", at(30), LOCK, 10).await.unwrap().len(), 1);
    let error = JobOutcome::Error { message: "database went away".into(), retry_at: Some(at(40)) };
    assert!(s.finish_job("deployment:1", "w1", &error, at(31)).await.unwrap());
    let job = s.get_job("deployment:1").await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts, job.last_error.as_deref()), (JobState::Queued, 1, Some("database went away")));
    assert_eq!(s.claim_jobs("w1", at(40), LOCK, 10).await.unwrap().len(), 1);
    let give_up = JobOutcome::Error { message: "still broken".into(), retry_at: None };
    assert!(s.finish_job("deployment:1", "w1", &give_up, at(41)).await.unwrap());
    let job = s.get_job("deployment:1").await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Failed, 2));
    assert_eq!(s.job_counts(at(41)).await.unwrap().failed, 1);

    // A failed key asked for again starts over.
    s.enqueue_job("deployment:1", "deployment", at(50), at(42)).await.unwrap();
    let job = s.get_job("deployment:1").await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts, job.run_at), (JobState::Queued, 0, at(50)));
    assert_eq!(s.claim_jobs("w1", at(50), LOCK, 10).await.unwrap().len(), 1);
    assert!(s.finish_job("deployment:1", "w1", &JobOutcome::Done, at(51)).await.unwrap());
    assert_eq!(s.get_job("deployment:1").await.unwrap().unwrap().state, JobState::Done);
    // Pruning forgets finished keys only.
    s.enqueue_job("deployment:2", "deployment", at(60), at(52)).await.unwrap();
    assert_eq!(s.prune_jobs_before(at(100)).await.unwrap(), 1);
    assert!(s.get_job("deployment:1").await.unwrap().is_none());
    assert!(s.get_job("deployment:2").await.unwrap().is_some());
    // Bad keys are refused.
    assert!(matches!(s.enqueue_job("", "x", at(1), at(1)).await, Err(Error::Invalid(_))));
}

async fn a_wakeup_during_a_run_runs_the_job_again(h: &Harness) {
    let s = &h.store;
    s.enqueue_job("deployment:3", "deployment", at(0), at(0)).await.unwrap();
    assert_eq!(s.claim_jobs("w1", at(1), LOCK, 10).await.unwrap().len(), 1);
    // A command finished while the job ran: asked for now.
    s.enqueue_job("deployment:3", "deployment", at(2), at(2)).await.unwrap();
    let job = s.get_job("deployment:3").await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Running, "a running key stays with its worker");
    assert!(s.claim_jobs("w2", at(3), LOCK, 10).await.unwrap().is_empty(), "and is not claimed twice");
    // The run says "done" or "later", but the wake-up wins: queued again at its time.
    assert!(s.finish_job("deployment:3", "w1", &JobOutcome::Done, at(4)).await.unwrap());
    let job = s.get_job("deployment:3").await.unwrap().unwrap();
    assert_eq!((job.state, job.run_at), (JobState::Queued, at(2)));
    assert_eq!(s.claim_jobs("w2", at(4), LOCK, 10).await.unwrap().len(), 1);
    assert!(s.finish_job("deployment:3", "w2", &JobOutcome::Again(at(100)), at(5)).await.unwrap());
    assert_eq!(s.get_job("deployment:3").await.unwrap().unwrap().run_at, at(100), "no wake-up this time");
}

async fn an_expired_claim_is_taken_over_and_the_late_finish_ignored(h: &Harness) {
    let s = &h.store;
    s.enqueue_job("deployment:4", "deployment", at(0), at(0)).await.unwrap();
    assert_eq!(s.claim_jobs("dead", at(1), LOCK, 10).await.unwrap().len(), 1);
    // Before the claim expires nobody else gets it; extending it keeps it.
    assert!(s.claim_jobs("w2", at(30), LOCK, 10).await.unwrap().is_empty());
    assert!(s.extend_job("deployment:4", "dead", at(90)).await.unwrap());
    assert!(s.claim_jobs("w2", at(80), LOCK, 10).await.unwrap().is_empty());
    // The worker died: after the claim runs out another one takes the job over.
    let taken = s.claim_jobs("w2", at(91), LOCK, 10).await.unwrap();
    assert_eq!((taken.len(), taken[0].runs), (1, 2));
    // The dead worker's late finish and extension change nothing.
    assert!(!s.finish_job("deployment:4", "dead", &JobOutcome::Done, at(92)).await.unwrap());
    assert!(!s.extend_job("deployment:4", "dead", at(500)).await.unwrap());
    assert_eq!(s.get_job("deployment:4").await.unwrap().unwrap().locked_by.as_deref(), Some("w2"));
    assert!(s.finish_job("deployment:4", "w2", &JobOutcome::Done, at(93)).await.unwrap());
}

/// Two workers (two connection pools, as two processes) claim from one queue as fast as they
/// can while jobs keep being re-queued: no job ever runs in both at once, and every run is
/// counted once.
async fn two_workers_never_run_one_job_at_once(h: &Harness) {
    let keys: Vec<String> = (0..12).map(|i| format!("deployment:{i}")).collect();
    for key in &keys {
        h.store.enqueue_job(key, "deployment", at(0), at(0)).await.unwrap();
    }
    let running: Arc<Mutex<HashMap<String, &'static str>>> = Arc::default();
    let runs = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for name in ["w1", "w2"] {
        let store = h.other().await;
        let running = running.clone();
        let runs = runs.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = 0u32;
            for round in 0..40 {
                let now = at(10 + round);
                for job in store.claim_jobs(name, now, LOCK, 3).await.unwrap() {
                    {
                        let mut running = running.lock().unwrap();
                        if let Some(other) = running.insert(job.key.clone(), name) {
                            panic!("{} runs in {name} while {other} runs it", job.key);
                        }
                    }
                    tokio::task::yield_now().await;
                    running.lock().unwrap().remove(&job.key);
                    runs.fetch_add(1, Ordering::SeqCst);
                    mine += 1;
                    // Due again at once: the other worker competes for it next round.
                    assert!(store.finish_job(&job.key, name, &JobOutcome::Again(now), now).await.unwrap());
                }
            }
            mine
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, runs.load(Ordering::SeqCst));
    assert!(total >= 12, "every job ran at least once ({total} runs)");
    let mut recorded = 0;
    for key in &keys {
        recorded += h.store.get_job(key).await.unwrap().unwrap().runs;
    }
    assert_eq!(recorded, u64::from(total), "each claim is one run");
}

async fn workers_heartbeat_and_stop(h: &Harness) {
    let s = &h.store;
    let worker = |id: &str, started: Timestamp| WorkerRecord {
        id: id.into(),
        hostname: "manager-1".into(),
        pid: 4242,
        version: "0.1.0".into(),
        role: "serve".into(),
        started_at: started,
        heartbeat_at: started,
        jobs_run: 0,
        stopped_at: None,
    };
    s.register_worker(&worker("a", at(0))).await.unwrap();
    s.register_worker(&worker("b", at(5))).await.unwrap();
    assert!(s.heartbeat_worker("a", at(20), 3).await.unwrap());
    assert!(s.heartbeat_worker("a", at(30), 2).await.unwrap());
    assert!(!s.heartbeat_worker("nobody", at(30), 2).await.unwrap(), "an unknown worker registers again");
    let workers = s.list_workers().await.unwrap();
    assert_eq!(workers.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!((workers[0].heartbeat_at, workers[0].jobs_run, workers[0].pid), (at(30), 5, 4242));
    s.stop_worker("a", at(40)).await.unwrap();
    assert_eq!(s.list_workers().await.unwrap()[0].stopped_at, Some(at(40)));
    assert_eq!(s.prune_workers_before(at(10)).await.unwrap(), 1, "b was last heard at 5");
    assert_eq!(s.list_workers().await.unwrap().len(), 1);
}

fn new_deployment(name: &str) -> NewDeployment {
    NewDeployment {
        name: name.into(),
        status: DeploymentStatus::Planning,
        target: serde_json::json!({ "host_ids": [1, 2] }),
        selection: serde_json::json!({ "type": "security" }),
        schedule: Schedule::Now,
        reboot_policy: RebootPolicy::IfNeeded,
        reboot_delay_secs: 60,
        rollback_on_failure: true,
        rings: vec![
            RingSpec {
                name: "canary".into(),
                success_threshold: 1.0,
                soak_secs: 600,
                group_id: Some(3),
                percent: None,
            },
            RingSpec { name: "rest".into(), success_threshold: 0.95, soak_secs: 0, group_id: None, percent: None },
        ],
        requires_approval: false,
        created_by: None,
    }
}

fn host(name: &str) -> NewHost {
    NewHost {
        hostname: name.into(),
        fqdn: None,
        address: None,
        transport: Transport::Pull,
        status: HostStatus::Online,
        machine_id: None,
        os_name: None,
        os_version: None,
    }
}

async fn deployments_hosts_and_transitions(h: &Harness) {
    let s = &h.store;
    let web = s.create_host(&host("web-1"), at(0)).await.unwrap();
    let db = s.create_host(&host("db-1"), at(0)).await.unwrap();
    let group = s.create_group("web", "", at(0)).await.unwrap();
    s.add_host_to_group(web.id, group.id).await.unwrap();
    let plan =
        vec![PlannedPackage { name: "openssl".into(), arch: "amd64".into(), from: "3.0.1".into(), to: "3.0.2".into() }];
    let hosts = [
        NewDeploymentHost {
            host: web.id,
            ring: 0,
            state: HostRunState::Planning,
            plan: plan.clone(),
            error_code: None,
            error_message: None,
        },
        NewDeploymentHost {
            host: db.id,
            ring: 1,
            state: HostRunState::Skipped,
            plan: Vec::new(),
            error_code: Some("nothing_to_do".into()),
            error_message: Some("no update matches the selection".into()),
        },
    ];
    assert!(matches!(s.create_deployment(&new_deployment("  "), &hosts, at(1)).await, Err(Error::Invalid(_))));
    let d = s.create_deployment(&new_deployment("October security"), &hosts, at(1)).await.unwrap();
    assert_eq!((d.status, d.current_ring, d.rings.len()), (DeploymentStatus::Planning, 0, 2));
    assert_eq!(s.get_deployment(d.id).await.unwrap().unwrap(), d);

    let rows = s.deployment_hosts(d.id).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.hostname.as_str(), r.state)).collect::<Vec<_>>(),
        [("web-1", HostRunState::Planning), ("db-1", HostRunState::Skipped)]
    );
    assert_eq!(rows[0].plan, plan);
    assert_eq!(rows[1].finished_at, Some(at(1)), "a host skipped from the start is finished");

    // The engine's write names the state it leaves; a stale one changes nothing.
    let mut web_row = rows[0].clone();
    let command = uuid::Uuid::new_v4();
    web_row.state = HostRunState::Queued;
    web_row.preview_command = Some(command);
    web_row.preview = Some(serde_json::json!({ "upgrades": 1 }));
    assert!(s.save_deployment_host(&web_row, HostRunState::Planning, at(2)).await.unwrap());
    assert!(!s.save_deployment_host(&web_row, HostRunState::Planning, at(3)).await.unwrap());
    let stored = &s.deployment_hosts(d.id).await.unwrap()[0];
    assert_eq!((stored.state, stored.preview_command), (HostRunState::Queued, Some(command)));
    assert_eq!(s.deployments_for_command(web.id, command).await.unwrap(), [d.id]);
    assert!(s.deployments_for_command(db.id, command).await.unwrap().is_empty());

    // Scoped listings: an operator of "web" sees it (web-1 is in scope); of no group sees db-1
    // (ungrouped) too, so sees it as well; a scope with another group only does not.
    let other = s.create_group("other", "", at(0)).await.unwrap();
    let only_other = Scope::Groups(vec![other.id]);
    let db_moved = s.add_host_to_group(db.id, other.id).await;
    db_moved.unwrap();
    let filter = |scope: Scope| DeploymentFilter { scope, status: None, paging: Paging::default() };
    assert_eq!(s.list_deployments(&filter(Scope::All)).await.unwrap().total, 1);
    assert_eq!(s.list_deployments(&filter(Scope::Groups(vec![group.id]))).await.unwrap().total, 1);
    assert_eq!(s.list_deployments(&filter(only_other.clone())).await.unwrap().total, 1);
    let scoped = s.list_deployment_hosts(d.id, &only_other, None, Paging::default()).await.unwrap();
    assert_eq!(scoped.items.iter().map(|r| r.hostname.as_str()).collect::<Vec<_>>(), ["db-1"]);
    assert_eq!(
        s.deployment_host_counts(d.id, &Scope::All).await.unwrap(),
        [(0, HostRunState::Queued, 1), (1, HostRunState::Skipped, 1)]
    );
    assert_eq!(s.deployment_host_counts(d.id, &only_other).await.unwrap(), [(1, HostRunState::Skipped, 1)]);
    let skipped = s.list_deployment_hosts(d.id, &Scope::All, Some(HostRunState::Skipped), Paging::default()).await;
    assert_eq!(skipped.unwrap().total, 1);
    let running =
        DeploymentFilter { scope: Scope::All, status: Some(DeploymentStatus::Running), paging: Paging::default() };
    assert_eq!(s.list_deployments(&running).await.unwrap().total, 0);

    // The engine saves status changes conditionally too.
    let mut changed = d.clone();
    changed.status = DeploymentStatus::AwaitingApproval;
    assert!(s.save_deployment(&changed, DeploymentStatus::Planning, at(4)).await.unwrap());
    assert!(!s.save_deployment(&changed, DeploymentStatus::Planning, at(4)).await.unwrap());

    // Approval only from awaiting_approval.
    let user = s
        .create_user(
            &NewUser {
                username: "alice".into(),
                display_name: "Alice".into(),
                role: Role::Admin,
                password_hash: None,
                auth_source: AuthSource::Local,
                oidc: None,
                must_change_password: false,
            },
            at(0),
        )
        .await
        .unwrap();
    let approved = s.approve_deployment(d.id, user.id, at(5)).await.unwrap();
    assert_eq!(
        (approved.status, approved.approved_by, approved.started_at),
        (DeploymentStatus::Running, Some(user.id), Some(at(5)))
    );
    assert!(matches!(s.approve_deployment(d.id, user.id, at(6)).await, Err(Error::Conflict(_))));

    // A user's transition: cancel from running; a final deployment cannot be cancelled.
    let cancelled = s
        .transition_deployment(d.id, &[DeploymentStatus::Running], DeploymentStatus::Cancelled, Some("by alice"), at(7))
        .await
        .unwrap();
    assert_eq!(
        (cancelled.status, cancelled.finished_at, cancelled.reason.as_deref()),
        (DeploymentStatus::Cancelled, Some(at(7)), Some("by alice"))
    );
    let again =
        s.transition_deployment(d.id, &[DeploymentStatus::Running], DeploymentStatus::Cancelled, None, at(8)).await;
    assert!(matches!(again, Err(Error::Conflict(message)) if message.contains("cancelled")));
    let missing = s
        .transition_deployment(
            DeploymentId(999),
            &[DeploymentStatus::Running],
            DeploymentStatus::Cancelled,
            None,
            at(8),
        )
        .await;
    assert!(matches!(missing, Err(Error::NotFound(_))));

    // Retry moves failed hosts back to queued and clears their error.
    let mut failed = s.deployment_hosts(d.id).await.unwrap()[0].clone();
    failed.state = HostRunState::Failed;
    failed.attempts = 2;
    failed.error_code = Some("install_failed".into());
    failed.rollback_command = Some(uuid::Uuid::new_v4());
    assert!(s.save_deployment_host(&failed, HostRunState::Queued, at(9)).await.unwrap());
    let retry = [HostRunState::Failed, HostRunState::RolledBack];
    assert_eq!(s.reset_deployment_hosts(d.id, &retry, HostRunState::Queued, at(10)).await.unwrap(), 1);
    let retried = &s.deployment_hosts(d.id).await.unwrap()[0];
    assert_eq!((retried.state, retried.attempts, retried.error_code.as_deref()), (HostRunState::Queued, 0, None));
    assert_eq!((retried.rollback_command, retried.preview_command), (None, Some(command)), "the plan's dry run stays");

    // A deleted host leaves its deployments.
    s.delete_host(db.id).await.unwrap();
    assert_eq!(s.deployment_hosts(d.id).await.unwrap().len(), 1);

    // Retention: a deployment that finished before the cutoff goes, with its hosts; one that
    // has not finished stays, however old.
    let open = s.create_deployment(&new_deployment("still running"), &[], at(0)).await.unwrap();
    assert_eq!(s.prune_deployments_finished_before(at(7)).await.unwrap(), 0, "finished at 7 is not before 7");
    assert_eq!(s.prune_deployments_finished_before(at(100)).await.unwrap(), 1);
    assert!(s.get_deployment(d.id).await.unwrap().is_none());
    assert!(s.deployment_hosts(d.id).await.unwrap().is_empty());
    assert!(s.get_deployment(open.id).await.unwrap().is_some());
}

async fn group_policies_merge_per_host(h: &Harness) {
    let s = &h.store;
    let web = s.create_host(&host("web-1"), at(0)).await.unwrap();
    let a = s.create_group("a", "", at(0)).await.unwrap();
    let b = s.create_group("b", "", at(0)).await.unwrap();
    s.add_host_to_group(web.id, a.id).await.unwrap();
    s.add_host_to_group(web.id, b.id).await.unwrap();
    assert_eq!(s.group_policy(a.id).await.unwrap(), GroupPolicy::default());
    assert_eq!(s.host_policy(web.id).await.unwrap(), GroupPolicy::default());
    let probe = serde_json::json!({ "type": "tcp", "address": "127.0.0.1:80", "timeout_secs": 5 });
    s.set_group_policy(
        a.id,
        &GroupPolicy {
            require_approval: false,
            health_units: vec!["nginx.service".into()],
            health_probes: vec![probe.clone()],
        },
        at(1),
    )
    .await
    .unwrap();
    s.set_group_policy(
        b.id,
        &GroupPolicy {
            require_approval: true,
            health_units: vec!["nginx.service".into(), "sshd.service".into()],
            health_probes: vec![probe.clone()],
        },
        at(1),
    )
    .await
    .unwrap();
    let merged = s.host_policy(web.id).await.unwrap();
    assert!(merged.require_approval);
    assert_eq!(merged.health_units, ["nginx.service", "sshd.service"]);
    assert_eq!(merged.health_probes, [probe]);
    // Setting again replaces.
    s.set_group_policy(b.id, &GroupPolicy::default(), at(2)).await.unwrap();
    assert!(!s.host_policy(web.id).await.unwrap().require_approval);
    assert!(matches!(
        s.set_group_policy(GroupId(999), &GroupPolicy::default(), at(2)).await,
        Err(Error::MissingReference(_))
    ));
}
