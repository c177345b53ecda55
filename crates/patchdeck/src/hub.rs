//! Wake-ups for held check-ins, and the live event stream — within one process and, on
//! PostgreSQL, across every replica sharing the database.
//!
//! * A check-in with nothing to deliver is **held** ([`Hub::watch`]): it waits on its host's
//!   [`Notify`] until [`Hub::command_queued`] wakes it, the hold time ends, or the manager stops.
//!   The waiter is registered *before* the database is read for queued commands, so a command
//!   queued in between is never missed.
//! * [`Hub::publish`] sends a [`LiveEvent`] (command progress, push job progress, host status)
//!   to every subscriber of every replica ([`Hub::subscribe`]): the browser event stream relays
//!   them.
//! * A queued command is also announced to [`Hub::subscribe_queued`], where the push worker
//!   learns that a push host has work.
//!
//! On PostgreSQL both go through `NOTIFY` (channels [`COMMANDS_CHANNEL`] and [`EVENTS_CHANNEL`])
//! and come back to every replica, this one included, through its listener; on SQLite (one
//! process) they are delivered in memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use patchdeck_proto::agent::CommandState;
use patchdeck_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch, Notify};
use uuid::Uuid;

/// `NOTIFY` channel: payload is the host id that has a new command.
pub const COMMANDS_CHANNEL: &str = "patchdeck_commands";
/// `NOTIFY` channel: payload is a [`LiveEvent`] as JSON.
pub const EVENTS_CHANNEL: &str = "patchdeck_events";

/// Events buffered per subscriber; a slower one skips events and re-reads state.
const EVENT_CAPACITY: usize = 1024;

/// Something that changed, for live views.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A command was queued or changed state.
    Command {
        host_id: i64,
        #[schema(value_type = String)]
        command_id: Uuid,
        kind: String,
        #[schema(value_type = String)]
        state: CommandState,
    },
    /// A host's reachability changed (`online`, `offline`, `unreachable`, `degraded`) or it was enrolled,
    /// approved or its inventory changed (`status` stays as it is then).
    Host { host_id: i64, status: String, change: HostChange },
    /// A push host's agent job for a command made progress (relayed from the agent's own job
    /// stream). `status` is the Linux_Patch_API job status (`pending`, `running`, `completed`,
    /// `failed`, `cancelled`, `timed_out`).
    Job {
        host_id: i64,
        #[schema(value_type = String)]
        command_id: Uuid,
        #[schema(value_type = String)]
        job_id: Uuid,
        status: String,
        /// 0–100.
        progress: u8,
        message: String,
    },
    /// A deployment's status changed (`planning`, `awaiting_approval`, `running`, `halted`,
    /// `succeeded`, …). Sent to every signed-in viewer: it names no host.
    Deployment { deployment_id: i64, status: String },
    /// A host of a deployment moved (`queued`, `waiting_for_window`, `running`, `rebooting`,
    /// `verifying`, `succeeded`, `failed`, …).
    DeploymentHost { deployment_id: i64, host_id: i64, state: String },
}

/// What happened to a host, in a [`LiveEvent::Host`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostChange {
    Status,
    Enrolled,
    Approval,
    Inventory,
}

impl LiveEvent {
    /// The host the event is about (for scope checks); `None` for an event about no host.
    pub fn host_id(&self) -> Option<i64> {
        match self {
            LiveEvent::Command { host_id, .. }
            | LiveEvent::Host { host_id, .. }
            | LiveEvent::Job { host_id, .. }
            | LiveEvent::DeploymentHost { host_id, .. } => Some(*host_id),
            LiveEvent::Deployment { .. } => None,
        }
    }
}

/// See the module documentation. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Hub(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    waiters: Mutex<HashMap<i64, Arc<Notify>>>,
    events: broadcast::Sender<LiveEvent>,
    /// Hosts that got a command, wherever it was queued (the push worker listens).
    queued: broadcast::Sender<i64>,
    held: AtomicUsize,
    stopping: watch::Sender<bool>,
}

impl Hub {
    pub fn new(store: Store) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (queued, _) = broadcast::channel(EVENT_CAPACITY);
        Hub(Arc::new(Inner {
            store,
            waiters: Mutex::new(HashMap::new()),
            events,
            queued,
            held: AtomicUsize::new(0),
            stopping: watch::channel(false).0,
        }))
    }

    /// On PostgreSQL, starts listening for other replicas' (and our own) notifications; `None`
    /// on SQLite. The task ends when the hub stops.
    pub async fn start_listener(&self) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let Some(mut listener) = self.0.store.listen(&[COMMANDS_CHANNEL, EVENTS_CHANNEL]).await? else {
            return Ok(None);
        };
        let hub = self.clone();
        let mut stopping = self.0.stopping.subscribe();
        Ok(Some(tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    received = listener.recv() => received,
                    _ = stopping.wait_for(|stop| *stop) => return,
                };
                match received {
                    Ok(n) if n.channel == COMMANDS_CHANNEL => match n.payload.parse::<i64>() {
                        Ok(host) => hub.wake(host),
                        Err(_) => tracing::warn!(payload = %n.payload, "ignoring a malformed command notification"),
                    },
                    Ok(n) => match serde_json::from_str::<LiveEvent>(&n.payload) {
                        Ok(event) => {
                            let _ = hub.0.events.send(event);
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring a malformed event notification"),
                    },
                    Err(e) => {
                        // Notifications sent while the connection was down are lost: wake every
                        // held check-in so each re-reads its queue.
                        tracing::warn!(error = %e, "lost the PostgreSQL notification connection; reconnecting");
                        hub.wake_all();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })))
    }

    /// Registers a held check-in of `host`; it counts in [`Hub::held`] until dropped.
    pub fn watch(&self, host: i64) -> HostWatch {
        let notify = {
            let mut waiters = self.0.waiters.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(waiters.entry(host).or_default())
        };
        self.0.held.fetch_add(1, Ordering::Relaxed);
        HostWatch { hub: self.clone(), host, notify, stopping: self.0.stopping.subscribe() }
    }

    /// Check-ins held right now (in this process).
    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::Relaxed)
    }

    /// Wakes the check-in of `host` wherever it is held.
    pub async fn command_queued(&self, host: i64) {
        match self.0.store.notify(COMMANDS_CHANNEL, &host.to_string()).await {
            Ok(true) => {}
            Ok(false) => self.wake(host),
            Err(e) => {
                tracing::warn!(error = %e, host.id = host, "NOTIFY failed; waking local check-ins only");
                self.wake(host);
            }
        }
    }

    /// Sends `event` to every subscriber of every replica.
    pub async fn publish(&self, event: LiveEvent) {
        let sent = match serde_json::to_string(&event) {
            Ok(json) => self.0.store.notify(EVENTS_CHANNEL, &json).await,
            Err(e) => {
                tracing::error!(error = %e, "an event did not serialise");
                return;
            }
        };
        match sent {
            Ok(true) => {}
            Ok(false) => {
                let _ = self.0.events.send(event);
            }
            Err(e) => {
                tracing::warn!(error = %e, "NOTIFY failed; the event reaches this replica only");
                let _ = self.0.events.send(event);
            }
        }
    }

    /// Publishes a command's current state.
    pub async fn publish_command(&self, command: &patchdeck_store::CommandRecord) {
        self.publish(LiveEvent::Command {
            host_id: command.host_id.0,
            command_id: command.id,
            kind: command.kind.clone(),
            state: command.state,
        })
        .await;
    }

    /// Publishes a change of a host (`status` is its reachability now).
    pub async fn publish_host(&self, host_id: i64, status: &str, change: HostChange) {
        self.publish(LiveEvent::Host { host_id, status: status.to_owned(), change }).await;
    }

    /// Live events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.0.events.subscribe()
    }

    /// The ids of hosts that get a command from now on, queued on any replica (for the push
    /// worker, which delivers commands itself). A receiver that lags has missed some: it should
    /// look at every host's queue.
    pub fn subscribe_queued(&self) -> broadcast::Receiver<i64> {
        self.0.queued.subscribe()
    }

    /// Completes once the hub stops (manager shutdown), so long-lived streams end with it.
    pub async fn stopped(&self) {
        let mut stopping = self.0.stopping.subscribe();
        let _ = stopping.wait_for(|stop| *stop).await;
    }

    /// Releases every held check-in (at shutdown) and stops the listener.
    pub fn stop(&self) {
        let _ = self.0.stopping.send(true);
        self.wake_all();
    }

    fn wake(&self, host: i64) {
        // No push worker listening is fine.
        let _ = self.0.queued.send(host);
        let notify = self.0.waiters.lock().unwrap_or_else(PoisonError::into_inner).get(&host).cloned();
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }

    fn wake_all(&self) {
        let all: Vec<_> = self.0.waiters.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        for notify in all {
            notify.notify_waiters();
        }
    }
}

/// A held check-in's registration; see [`Hub::watch`].
#[derive(Debug)]
pub struct HostWatch {
    hub: Hub,
    host: i64,
    notify: Arc<Notify>,
    stopping: watch::Receiver<bool>,
}

impl HostWatch {
    /// Waits until a command is queued for the host (after this call started: call it, then read
    /// the queue, then await), the manager stops, or `limit` passes. Returns `true` when woken.
    pub async fn wait(&mut self, limit: Duration, queue_empty: impl std::future::Future<Output = bool>) -> bool {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if *self.stopping.borrow() || !queue_empty.await {
            return true;
        }
        tokio::select! {
            () = notified => true,
            _ = self.stopping.wait_for(|stop| *stop) => true,
            () = tokio::time::sleep(limit) => false,
        }
    }
}

impl Drop for HostWatch {
    fn drop(&mut self) {
        self.hub.0.held.fetch_sub(1, Ordering::Relaxed);
        let mut waiters = self.hub.0.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's own reference and ours: nobody else holds this host's check-in.
        if Arc::strong_count(&self.notify) <= 2 {
            waiters.remove(&self.host);
        }
    }
}
