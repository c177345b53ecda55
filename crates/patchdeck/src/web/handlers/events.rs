//! Events, live and recorded:
//!
//! * `GET /api/v1/events` — a Server-Sent Events stream of [`LiveEvent`]s (command progress,
//!   host status, enrollment and inventory changes) about the hosts in the caller's scope. The
//!   browser's `EventSource` sends the session cookies like any other GET.
//! * `GET /api/v1/security/events` (admins) — the audit log's security events: a machine ID that
//!   does not match its certificate, a machine that tried to enroll twice, commands agents
//!   refused, and requests refused for a role (`security.*` and `authz.denied`).
//!
//! The stream's wire format:
//!
//! ```text
//! : connected
//! retry: 5000
//!
//! event: command
//! data: {"type":"command","host_id":7,"command_id":"…","kind":"upgrade","state":"running"}
//!
//! event: resync
//! data: {"missed":12}
//! ```
//!
//! `event:` is the event's `type`; `data:` its JSON. A comment goes out every 15 seconds so
//! proxies keep the connection open. `resync` means events were lost (the client read too
//! slowly): reload what is shown. The stream re-checks the caller's credentials every minute and
//! ends when they are no longer valid (signed out, session or token revoked, account disabled,
//! access token expired); `EventSource` then reconnects with the current cookies. Which hosts are
//! in scope is cached per connection and forgotten at each re-check, so a change of group
//! membership applies within a minute. The stream also ends when the manager shuts down.

// utoipa's `path` macro spells the `IntoParams` query types out in full.
#![allow(unused_qualifications)]

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::HeaderName;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use patchdeck_store::{AuditEntry, AuditFilter, AuditId, HostId, Paging, Scope, SortDir};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use tokio::time::Instant;
use utoipa::IntoParams;

use crate::hub::LiveEvent;
use crate::state::AppState;
use crate::web::authz::{authenticate, Principal};
use crate::web::error::{ApiError, ApiResult};
use crate::web::handlers::audit::AuditView;
use crate::web::handlers::{ListResponse, PageParams};
use crate::web::{Json, Query};

/// How often a comment keeps an idle stream open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often an open stream re-checks the caller's credentials and forgets cached scope.
pub const RECHECK: Duration = Duration::from_secs(60);
/// How long `EventSource` waits before reconnecting (sent as `retry:`).
const RECONNECT: Duration = Duration::from_secs(5);

/// Live events about the hosts in the caller's scope, as Server-Sent Events (see the module
/// documentation for the format).
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    responses((status = 200, content_type = "text/event-stream",
        description = "`event: command|host|resync`, `data: <JSON>`; a comment every 15 s")))]
pub async fn stream_events(State(state): State<AppState>, principal: Principal, headers: HeaderMap) -> Response {
    // Subscribed before the response starts: nothing published after the client sees the
    // response headers is missed.
    let events = state.hub().subscribe();
    let feed = Feed {
        state,
        principal,
        headers,
        events,
        visible: HashMap::new(),
        recheck_at: Instant::now() + RECHECK,
        started: false,
    };
    let mut response = Sse::new(feed.into_stream()).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)).into_response();
    // Reverse proxies (nginx) must pass events on at once rather than buffer them.
    response.headers_mut().insert(HeaderName::from_static("x-accel-buffering"), HeaderValue::from_static("no"));
    response
}

/// One client's stream.
struct Feed {
    state: AppState,
    principal: Principal,
    /// The request's headers, to re-check its credentials.
    headers: HeaderMap,
    events: Receiver<LiveEvent>,
    /// Host id → in the caller's scope (admins skip the lookup).
    visible: HashMap<i64, bool>,
    recheck_at: Instant,
    started: bool,
}

impl Feed {
    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        stream::unfold(self, |mut feed| async move {
            let event = feed.next().await?;
            Some((Ok(event), feed))
        })
    }

    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        if !self.started {
            self.started = true;
            return Some(Event::default().comment("connected").retry(RECONNECT));
        }
        loop {
            let received = tokio::select! {
                () = self.state.hub().stopped() => return None,
                () = tokio::time::sleep_until(self.recheck_at) => {
                    if !self.recheck().await {
                        return None;
                    }
                    continue;
                }
                received = self.events.recv() => received,
            };
            match received {
                Ok(event) => {
                    let visible = match event.host_id() {
                        Some(host) => self.in_scope(host).await,
                        None => true,
                    };
                    if visible {
                        return Some(to_sse(&event));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(user = %self.principal.user.username, missed, "event stream lagged");
                    return Some(Event::default().event("resync").data(json!({ "missed": missed }).to_string()));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// Authenticates the request again (it may have been signed out, revoked or disabled, and
    /// its groups may have changed); `false` ends the stream.
    async fn recheck(&mut self) -> bool {
        self.recheck_at = Instant::now() + RECHECK;
        let source = self.principal.source_ip.clone();
        match authenticate(&self.state, &Method::GET, &self.headers, source).await {
            Ok(principal) if principal.restriction.is_none() && principal.user.id == self.principal.user.id => {
                self.principal = principal;
                self.visible.clear();
                true
            }
            Ok(_) => false,
            Err(e) if e.status.is_server_error() => {
                // The database is briefly unavailable: keep the stream, try again later.
                self.recheck_at = Instant::now() + Duration::from_secs(5);
                true
            }
            Err(_) => false,
        }
    }

    async fn in_scope(&mut self, host: i64) -> bool {
        let scope = self.principal.scope();
        if scope == Scope::All {
            return true;
        }
        if let Some(visible) = self.visible.get(&host) {
            return *visible;
        }
        match self.state.store().host_visible(HostId(host), &scope).await {
            Ok(visible) => {
                self.visible.insert(host, visible);
                visible
            }
            Err(e) => {
                tracing::warn!(error = %e, host.id = host, "could not check an event's scope; not sending it");
                false
            }
        }
    }
}

/// `event:` is the event's `type` tag, `data:` its JSON.
fn to_sse(event: &LiveEvent) -> Event {
    let data = serde_json::to_value(event).unwrap_or(Value::Null);
    let kind = data.get("type").and_then(Value::as_str).unwrap_or("message").to_owned();
    Event::default().event(kind).data(data.to_string())
}

// ---------------------------------------------------------------------------------------------
// Security events

/// Actions that are security events (each an action prefix of the audit log).
pub const SECURITY_ACTIONS: [&str; 2] = ["security.", "authz.denied"];
/// Rows read from the audit log at a time while merging.
const CHUNK: u32 = 500;
/// Deepest page of security events (use the audit export for more).
const MAX_OFFSET: u64 = 10_000;

/// Page and time window of the security events.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SecurityEventQuery {
    /// From this time (RFC 3339).
    pub from: Option<String>,
    /// Before this time (RFC 3339).
    pub to: Option<String>,
    pub limit: Option<u32>,
    /// At most 10000.
    pub offset: Option<u64>,
}

/// Security events, newest first: `security.machine_id_mismatch`,
/// `security.duplicate_machine_id`, `security.command_rejected`, … and `authz.denied`.
#[utoipa::path(get, path = "/api/v1/security/events", tag = "audit", params(SecurityEventQuery),
    responses((status = 200, body = ListResponse<AuditView>), (status = 400)))]
pub async fn list_security_events(
    State(state): State<AppState>,
    Query(q): Query<SecurityEventQuery>,
) -> ApiResult<Json<ListResponse<AuditView>>> {
    let paging = PageParams { limit: q.limit, offset: q.offset }.paging()?;
    if paging.offset > MAX_OFFSET {
        return Err(ApiError::validation("offset", format!("must be at most {MAX_OFFSET}")));
    }
    let window = AuditFilter {
        from: parse_time("from", q.from.as_deref())?,
        to: parse_time("to", q.to.as_deref())?,
        order: SortDir::Desc,
        ..AuditFilter::default()
    };
    // The audit filter takes one action prefix: read each newest first and merge by id.
    let mut sources: Vec<Newest> = SECURITY_ACTIONS.iter().map(|prefix| Newest::new(&window, prefix)).collect();
    for source in &mut sources {
        source.fill(&state).await?;
    }
    let total = sources.iter().map(|s| s.total).sum();
    let wanted = usize::try_from(paging.offset + u64::from(paging.limit)).unwrap_or(usize::MAX);
    let mut items = Vec::with_capacity(usize::try_from(paging.limit).unwrap_or(0));
    let mut taken = 0;
    while taken < wanted {
        for source in &mut sources {
            source.fill(&state).await?;
        }
        let newest = sources.iter_mut().filter(|s| !s.buffer.is_empty()).max_by_key(|s| s.buffer.front().map(|e| e.id));
        let Some(entry) = newest.and_then(|s| s.buffer.pop_front()) else { break };
        if taken >= usize::try_from(paging.offset).unwrap_or(usize::MAX) {
            items.push(AuditView::from(&entry));
        }
        taken += 1;
    }
    Ok(Json(ListResponse { items, total, limit: paging.limit, offset: paging.offset }))
}

/// The entries of one action prefix, newest first, read in chunks.
struct Newest {
    filter: AuditFilter,
    buffer: VecDeque<AuditEntry>,
    before: Option<AuditId>,
    exhausted: bool,
    total: u64,
}

impl Newest {
    fn new(window: &AuditFilter, prefix: &str) -> Self {
        let filter = AuditFilter { action_prefix: Some(prefix.to_owned()), ..window.clone() };
        Newest { filter, buffer: VecDeque::new(), before: None, exhausted: false, total: 0 }
    }

    /// Reads the next chunk when the buffer is empty.
    async fn fill(&mut self, state: &AppState) -> ApiResult<()> {
        if !self.buffer.is_empty() || self.exhausted {
            return Ok(());
        }
        let filter = AuditFilter { before_id: self.before, paging: Paging::new(CHUNK, 0), ..self.filter.clone() };
        let page = state.store().list_audit(&filter).await?;
        if self.before.is_none() {
            self.total = page.total;
        }
        self.exhausted = page.items.len() < CHUNK as usize;
        self.before = page.items.last().map(|e| e.id).or(self.before);
        self.buffer.extend(page.items);
        Ok(())
    }
}

fn parse_time(field: &str, value: Option<&str>) -> ApiResult<Option<jiff::Timestamp>> {
    value
        .map(|v| v.parse::<jiff::Timestamp>().map_err(|_| ApiError::validation(field, "must be an RFC 3339 time")))
        .transpose()
}
