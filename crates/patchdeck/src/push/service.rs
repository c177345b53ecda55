//! The push worker inside a running manager (`patchdeck serve` or `patchdeck worker`).
//!
//! - **One worker per database.** Every process with `push.enabled` tries to take the
//!   [`LeaseKey::PUSH_WORKER`] lease; the one that holds it runs the [`PushWorker`], the others
//!   try again every [`LEASE_RETRY`]. The holder checks its lease every [`LEASE_CHECK`] and stops
//!   when it is lost, so two processes never poll the same hosts for long. On SQLite the one
//!   process always holds it.
//! - **Commands reach it at once.** A command queued on any replica is announced through
//!   [`crate::hub::Hub::subscribe_queued`] (PostgreSQL `NOTIFY` across processes); the worker
//!   then looks at that host's queue. Missed announcements are caught by the worker's own
//!   periodic look ([`PushWorkerConfig::command_interval`]).
//! - **The store it writes through is the manager's**: [`ManagerPushStore`] stores what the
//!   worker learns and, like a pull check-in, audits finished commands and publishes command
//!   changes; the relay turns the worker's [`PushEvent`]s about host status, inventory and job
//!   progress into [`LiveEvent`]s on the event stream.

use std::time::Duration;

use jiff::Timestamp;
use patchdeck_proto::agent::CommandResult;
use patchdeck_proto::ScanReport;
use patchdeck_store::{Host, HostFilter, HostId, HostStatus, LeaseKey, Paging, Scope, Transport, MAX_PAGE_SIZE};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::client::{PushClientOptions, PushConnector};
use super::worker::{ClaimedCommand, PushEvent, PushStore, PushWorker, PushWorkerConfig};
use crate::hub::{HostChange, LiveEvent};
use crate::state::AppState;

/// How often a process without the lease tries to take it.
pub const LEASE_RETRY: Duration = Duration::from_secs(15);
/// How often the holder makes sure it still holds the lease.
pub const LEASE_CHECK: Duration = Duration::from_secs(10);
/// The actor of what the push worker does, in the audit log.
pub const ACTOR: &str = "system:push-worker";

/// [`PushStore`] over the manager's store, auditing and publishing like the pull path does.
#[derive(Debug, Clone)]
pub struct ManagerPushStore(pub AppState);

impl PushStore for ManagerPushStore {
    async fn push_hosts(&self) -> Result<Vec<Host>, patchdeck_store::Error> {
        let mut filter = HostFilter::new(Scope::All);
        filter.transport = Some(Transport::Push);
        let mut hosts = Vec::new();
        loop {
            filter.paging = Paging::new(MAX_PAGE_SIZE, hosts.len() as u64);
            let page = self.0.store().list_hosts(&filter).await?;
            let last = page.items.len() < MAX_PAGE_SIZE as usize;
            hosts.extend(page.items);
            if last || hosts.len() as u64 >= page.total {
                return Ok(hosts);
            }
        }
    }

    async fn set_host_status(
        &self,
        host: HostId,
        status: HostStatus,
        last_seen: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), patchdeck_store::Error> {
        // The worker reports `unreachable` once per transition, but a new lease holder starts
        // afresh: the stored status tells whether this is news.
        let was_unreachable = status == HostStatus::Unreachable
            && self.0.store().get_host(host).await?.is_some_and(|h| h.status == HostStatus::Unreachable);
        self.0.store().set_host_status(host, status, last_seen, now).await?;
        if status == HostStatus::Unreachable && !was_unreachable {
            crate::web::handlers::agent::notify_unreachable(&self.0, host).await;
        }
        Ok(())
    }

    async fn replace_inventory(
        &self,
        host: HostId,
        report: &ScanReport,
        hash: &str,
        now: Timestamp,
    ) -> Result<(), patchdeck_store::Error> {
        self.0.store().replace_inventory(host, report, hash, now).await
    }

    async fn claim_commands(
        &self,
        host: HostId,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<ClaimedCommand>, patchdeck_store::Error> {
        let claimed = self.0.store().claim_commands(host, now, limit).await?;
        for record in &claimed {
            self.0.hub().publish_command(record).await;
        }
        Ok(claimed.into_iter().map(|record| ClaimedCommand { id: record.id, command: record.command }).collect())
    }

    async fn apply_command_result(
        &self,
        host: HostId,
        result: &CommandResult,
        now: Timestamp,
    ) -> Result<(), patchdeck_store::Error> {
        crate::web::handlers::agent::apply_result(&self.0, ACTOR, host, result, now).await
    }

    async fn command_job_id(&self, host: HostId, command_id: Uuid) -> Result<Option<Uuid>, patchdeck_store::Error> {
        let command = self.0.store().get_command(command_id).await?;
        Ok(command.filter(|c| c.host_id == host).and_then(|c| c.job_id))
    }
}

/// The worker's settings from `[push]`.
pub fn worker_config(state: &AppState) -> PushWorkerConfig {
    let push = &state.config().push;
    PushWorkerConfig {
        port: push.port,
        health_interval: Duration::from_secs(push.health_interval_secs),
        inventory_interval: Duration::from_secs(push.inventory_interval_secs),
        max_concurrent_calls: push.max_concurrent_calls,
        ..PushWorkerConfig::default()
    }
}

/// Runs the push worker whenever this process holds the lease, until `shutdown` is `true`.
/// `config` is normally [`worker_config`]; tests shorten its intervals.
pub async fn run(state: AppState, config: PushWorkerConfig, mut shutdown: watch::Receiver<bool>) {
    let options = PushClientOptions { port: config.port, ..PushClientOptions::default() };
    let connector = match PushConnector::new(state.push_identity(), options) {
        Ok(connector) => connector,
        Err(e) => {
            tracing::error!(error = %e, "the push worker cannot use the manager's push client certificate; push hosts are not polled");
            return;
        }
    };
    // Said once per wait, not at every try.
    let mut said_waiting = false;
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        match state.store().try_lease(LeaseKey::PUSH_WORKER).await {
            Ok(Some(lease)) => {
                tracing::info!("push worker: this process holds the lease and polls the push hosts");
                said_waiting = false;
                lead(&state, &connector, &config, lease, &mut shutdown).await;
            }
            Ok(None) if !said_waiting => {
                said_waiting = true;
                tracing::info!("push worker: another process holds the lease; standing by");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "push worker: could not take the lease"),
        }
        // `wait_for` looks at the current value first: a shutdown that `lead` already saw ends
        // this at once instead of after a whole retry period.
        tokio::select! {
            () = tokio::time::sleep(LEASE_RETRY) => {}
            () = shut_down(&mut shutdown) => return,
        }
    }
}

/// Completes once `shutdown` is (or already was) `true`, or its sender is gone.
async fn shut_down(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before anything else is awaited.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Runs the worker while `lease` holds and `shutdown` is not set.
async fn lead(
    state: &AppState,
    connector: &PushConnector,
    config: &PushWorkerConfig,
    mut lease: patchdeck_store::Lease,
    shutdown: &mut watch::Receiver<bool>,
) {
    let (events, _) = broadcast::channel(1024);
    let relay = tokio::spawn(relay(state.clone(), events.subscribe()));
    let worker =
        PushWorker::new(ManagerPushStore(state.clone()), connector.clone(), config.clone(), state.clock(), events);
    let (stop, stopped) = watch::channel(false);
    let mut running = std::pin::pin!(worker.clone().run(stopped));
    let mut queued = state.hub().subscribe_queued();
    let mut check = tokio::time::interval(LEASE_CHECK);
    check.tick().await;
    loop {
        tokio::select! {
            () = &mut running => break,
            host = queued.recv() => match host {
                Ok(host) => worker.wake_host(HostId(host)),
                Err(broadcast::error::RecvError::Lagged(_)) => worker.wake(),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = check.tick() => if let Err(e) = lease.check().await {
                tracing::warn!(error = %e, "push worker: lost the lease (database connection); stopping");
                break;
            },
            () = shut_down(shutdown) => break,
        }
    }
    let _ = stop.send(true);
    // `run` abandons work in flight once told to stop; commands it was following stay
    // `sent`/`running` until their result timeout.
    let _ = tokio::time::timeout(Duration::from_secs(5), &mut running).await;
    relay.abort();
    lease.release().await;
}

/// Publishes what the worker reports on the event stream (command results are published by
/// [`ManagerPushStore`], which has the stored record).
async fn relay(state: AppState, mut events: broadcast::Receiver<PushEvent>) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "push worker: the event relay fell behind");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let live = match event {
            PushEvent::HostStatus { host, status, .. } => {
                LiveEvent::Host { host_id: host.0, status: status.as_str().to_owned(), change: HostChange::Status }
            }
            PushEvent::Inventory { host, .. } => {
                let status = match state.store().get_host(host).await {
                    Ok(Some(h)) => h.status.as_str().to_owned(),
                    _ => HostStatus::Online.as_str().to_owned(),
                };
                LiveEvent::Host { host_id: host.0, status, change: HostChange::Inventory }
            }
            PushEvent::Job { host, command_id, job_id, status, progress, message, .. } => LiveEvent::Job {
                host_id: host.0,
                command_id,
                job_id,
                status: status.as_str().to_owned(),
                progress,
                message,
            },
            PushEvent::CommandResult { .. } => continue,
        };
        state.hub().publish(live).await;
    }
}
