//! `/api/v1/discoveries…` (admins only): finding Linux_Patch_API agents in an address range
//! ([`crate::push::discovery`]: TCP, mutual TLS with the manager's push client certificate, and
//! the health call, 128 probes at a time, 1.5 s each).
//!
//! A discovery runs in the background of the replica that started it; its progress, and at the
//! end (or when cancelled) the hosts that answered, are read with `GET`. Discoveries are kept in
//! memory only: the last [`KEEP`] of them, until the process restarts. To add a found agent,
//! create a push host with its address (`POST /api/v1/hosts`), then give the agent its bundle
//! (`POST /api/v1/hosts/{id}/push-bundle`) if it does not trust the manager yet.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::StatusCode;
use ipnet::IpNet;
use jiff::Timestamp;
use patchdeck_store::{HostFilter, Scope, Transport};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{AuditEvent, Outcome};
use crate::push::discovery::{address_count, discover, Discovery, DiscoveryOptions, DiscoveryProgress};
use crate::state::AppState;
use crate::web::authz::Principal;
use crate::web::error::{ApiError, ApiResult};
use crate::web::{Json, Path};

/// Discoveries remembered (running or finished); the oldest finished one is forgotten first.
pub const KEEP: usize = 20;
/// Discoveries running at once, per replica.
pub const MAX_RUNNING: usize = 2;

/// The discoveries of this process.
#[derive(Debug, Default)]
pub struct Discoveries(Mutex<VecDeque<Arc<Run>>>);

impl Discoveries {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Run>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: Uuid) -> Option<Arc<Run>> {
        self.lock().iter().find(|r| r.id == id).cloned()
    }
}

/// One discovery.
#[derive(Debug)]
struct Run {
    id: Uuid,
    cidr: IpNet,
    port: u16,
    started_by: String,
    started_at: Timestamp,
    progress: watch::Receiver<DiscoveryProgress>,
    cancel: watch::Sender<bool>,
    outcome: Mutex<Option<(Timestamp, Result<Discovery, String>)>>,
}

impl Run {
    fn finished(&self) -> bool {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }
}

/// Start a discovery.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartDiscoveryRequest {
    /// The range, e.g. `10.0.4.0/24` (at most a /16, or a /112 for IPv6); a bare address
    /// probes that one address.
    pub cidr: String,
    /// The agents' port; defaults to `push.port` (12443).
    pub port: Option<u16>,
}

/// How far a discovery has come.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveryProgressView {
    /// Addresses probed so far.
    pub probed: u64,
    /// Addresses to probe.
    pub total: u64,
    /// Addresses where something accepted the connection.
    pub listening: u64,
    /// Agents found.
    pub found: u64,
}

impl From<DiscoveryProgress> for DiscoveryProgressView {
    fn from(p: DiscoveryProgress) -> Self {
        DiscoveryProgressView { probed: p.probed, total: p.total, listening: p.listening, found: p.found }
    }
}

/// An address that accepted a connection on the agents' port.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveredHostView {
    pub address: String,
    /// The name in its server certificate (when the TLS handshake worked).
    pub fqdn_from_cert: Option<String>,
    /// The agent's version, from its health answer.
    pub version: Option<String>,
    /// Whether it answered as a Linux_Patch_API agent the manager can talk to.
    pub answered_as_lpa: bool,
    /// Why not, otherwise (e.g. the agent does not accept this manager's certificate).
    pub reason: Option<String>,
    /// The push host already registered with this address, if any.
    pub host_id: Option<i64>,
}

/// A discovery and what it found.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveryView {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub cidr: String,
    pub port: u16,
    /// `running`, `completed`, `cancelled` or `failed`.
    pub state: String,
    pub progress: DiscoveryProgressView,
    /// Who started it.
    pub started_by: String,
    #[schema(value_type = String)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<Timestamp>,
    /// Why it failed.
    pub error: Option<String>,
    /// The addresses that accepted a connection, by address (listed once it has ended).
    pub hosts: Vec<DiscoveredHostView>,
}

/// Discoveries of this replica, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiscoveryList {
    pub items: Vec<DiscoveryView>,
}

/// The range and how many addresses it has, or why it is refused.
fn parse_cidr(text: &str) -> ApiResult<(IpNet, u64)> {
    let text = text.trim();
    let cidr = match text.parse::<IpNet>() {
        Ok(cidr) => cidr,
        Err(_) => text
            .parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| ApiError::validation("cidr", "must be an address range such as 10.0.4.0/24"))?,
    };
    let count = address_count(cidr).map_err(|e| ApiError::validation("cidr", e))?;
    Ok((cidr.trunc(), count))
}

async fn view(state: &AppState, run: &Run) -> ApiResult<DiscoveryView> {
    let progress = *run.progress.borrow();
    let outcome = run.outcome.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let (state_name, finished_at, error, found) = match outcome {
        None => ("running", None, None, None),
        Some((at, Err(e))) => ("failed", Some(at), Some(e), None),
        Some((at, Ok(d))) => (if d.cancelled { "cancelled" } else { "completed" }, Some(at), None, Some(d)),
    };
    let mut hosts = Vec::new();
    for h in found.map(|d| d.hosts).unwrap_or_default() {
        let address = h.address.to_string();
        hosts.push(DiscoveredHostView {
            host_id: registered(state, &address).await?,
            address,
            fqdn_from_cert: h.fqdn_from_cert,
            version: h.version,
            answered_as_lpa: h.answered_as_lpa,
            reason: h.reason,
        });
    }
    Ok(DiscoveryView {
        id: run.id,
        cidr: run.cidr.to_string(),
        port: run.port,
        state: state_name.into(),
        progress: progress.into(),
        started_by: run.started_by.clone(),
        started_at: run.started_at,
        finished_at,
        error,
        hosts,
    })
}

/// The push host with exactly this address.
async fn registered(state: &AppState, address: &str) -> ApiResult<Option<i64>> {
    let mut filter = HostFilter::new(Scope::All);
    filter.transport = Some(Transport::Push);
    filter.search = Some(address.to_owned());
    let page = state.store().list_hosts(&filter).await?;
    Ok(page.items.iter().find(|h| h.address.as_deref() == Some(address)).map(|h| h.id.0))
}

fn load(state: &AppState, id: &str) -> ApiResult<Arc<Run>> {
    let id = Uuid::parse_str(id).map_err(|_| ApiError::not_found("discovery"))?;
    state.discoveries().get(id).ok_or_else(|| ApiError::not_found("discovery"))
}

/// Starts probing a range for agents; returns at once (`202`) with the discovery to poll.
#[utoipa::path(post, path = "/api/v1/discoveries", tag = "discoveries", request_body = StartDiscoveryRequest,
    responses((status = 202, body = DiscoveryView), (status = 400), (status = 409)))]
pub async fn start_discovery(
    State(state): State<AppState>,
    principal: Principal,
    Json(body): Json<StartDiscoveryRequest>,
) -> ApiResult<(StatusCode, Json<DiscoveryView>)> {
    let (cidr, total) = parse_cidr(&body.cidr)?;
    let port = body.port.unwrap_or(state.config().push.port);
    if port == 0 {
        return Err(ApiError::validation("port", "must be 1–65535"));
    }
    let options = DiscoveryOptions { port, ..DiscoveryOptions::default() };
    let (progress_tx, progress) = watch::channel(DiscoveryProgress { total, ..DiscoveryProgress::default() });
    let (cancel, cancelled) = watch::channel(false);
    let run = Arc::new(Run {
        id: Uuid::new_v4(),
        cidr,
        port,
        started_by: principal.actor(),
        started_at: state.now(),
        progress,
        cancel,
        outcome: Mutex::new(None),
    });
    {
        let mut runs = state.discoveries().lock();
        if runs.iter().filter(|r| !r.finished()).count() >= MAX_RUNNING {
            return Err(ApiError::conflict(format!(
                "{MAX_RUNNING} discoveries are running already; wait for one to end or cancel it"
            )));
        }
        while runs.len() >= KEEP {
            let Some(oldest) = runs.iter().rposition(|r| r.finished()) else { break };
            runs.remove(oldest);
        }
        runs.push_front(run.clone());
    }
    state
        .audit(
            AuditEvent::new(principal.actor(), "discovery.start", Outcome::Success)
                .user(principal.user_id())
                .target(format!("discovery:{}", run.id))
                .source(principal.source_ip.clone())
                .details(json!({ "cidr": cidr.to_string(), "port": port })),
        )
        .await;
    let task_state = state.clone();
    let task_run = run.clone();
    tokio::spawn(async move {
        let result = discover(task_run.cidr, &options, task_state.push_identity(), &progress_tx, cancelled).await;
        let result = result.map_err(|e| e.to_string());
        let details = match &result {
            Ok(d) => json!({ "cancelled": d.cancelled, "probed": d.progress.probed, "found": d.progress.found }),
            Err(e) => json!({ "error": e }),
        };
        let outcome = if result.is_ok() { Outcome::Success } else { Outcome::Failure };
        *task_run.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some((task_state.now(), result));
        task_state
            .audit(
                AuditEvent::new(task_run.started_by.clone(), "discovery.finish", outcome)
                    .target(format!("discovery:{}", task_run.id))
                    .details(details),
            )
            .await;
    });
    Ok((StatusCode::ACCEPTED, Json(view(&state, &run).await?)))
}

/// This replica's discoveries, newest first.
#[utoipa::path(get, path = "/api/v1/discoveries", tag = "discoveries",
    responses((status = 200, body = DiscoveryList)))]
pub async fn list_discoveries(State(state): State<AppState>) -> ApiResult<Json<DiscoveryList>> {
    let runs: Vec<Arc<Run>> = state.discoveries().lock().iter().cloned().collect();
    let mut items = Vec::with_capacity(runs.len());
    for run in runs {
        items.push(view(&state, &run).await?);
    }
    Ok(Json(DiscoveryList { items }))
}

/// One discovery: its progress, and once it has ended, what it found.
#[utoipa::path(get, path = "/api/v1/discoveries/{id}", tag = "discoveries", params(("id" = String, Path)),
    responses((status = 200, body = DiscoveryView), (status = 404)))]
pub async fn get_discovery(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<DiscoveryView>> {
    let run = load(&state, &id)?;
    Ok(Json(view(&state, &run).await?))
}

/// Stops a running discovery; what it found so far is kept (`state` becomes `cancelled` within a
/// moment).
#[utoipa::path(post, path = "/api/v1/discoveries/{id}/cancel", tag = "discoveries", params(("id" = String, Path)),
    responses((status = 202, body = DiscoveryView), (status = 404), (status = 409)))]
pub async fn cancel_discovery(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<DiscoveryView>)> {
    let run = load(&state, &id)?;
    if run.finished() {
        return Err(ApiError::conflict("the discovery has ended already"));
    }
    run.cancel.send_replace(true);
    state
        .audit(
            AuditEvent::new(principal.actor(), "discovery.cancel", Outcome::Success)
                .user(principal.user_id())
                .target(format!("discovery:{}", run.id))
                .source(principal.source_ip.clone()),
        )
        .await;
    Ok((StatusCode::ACCEPTED, Json(view(&state, &run).await?)))
}
