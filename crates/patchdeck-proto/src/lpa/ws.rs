//! The job WebSocket, `GET /api/v1/ws/jobs` (contract §3.6): client
//! messages, server events, and the subscription rule.
//!
//! # Subscription behaviour (ours; the upstream code and docs disagree)
//!
//! - On connect a client receives **all** jobs' events, and first a
//!   `connected` event.
//! - Its first `subscribe` with a `job_id` **narrows** the stream to the
//!   subscribed ids; each further `subscribe` with a `job_id` adds one. (The
//!   upstream code kept sending everything, so clients there had to filter
//!   themselves; clients that do so still work.)
//! - `subscribe` without a `job_id` (or with `"all"`), and the legacy
//!   `subscribe_all`, return to all jobs and forget the ids.
//! - `unsubscribe` removes an id. Removing the last id leaves the client
//!   subscribed to nothing (it does not fall back to all); while it receives
//!   all jobs, `unsubscribe` changes nothing.
//! - Each `subscribe` and `unsubscribe` is answered with `subscribed` or
//!   `unsubscribed`; a message that cannot be parsed with an `error` event
//!   (`status: "invalid_message"`), and the connection stays open.
//! - `connected`, `subscribed`, `unsubscribed`, `error` and `pong` always
//!   reach the client; only job events are filtered.
//! - Every job change is sent as `job_status`. When a job reaches a terminal
//!   state the server sends `job_status` and then `job_complete` with the
//!   same fields, so clients written against the upstream code (which only
//!   sent `job_status`) and against its docs (`job_complete`) both work.
//!
//! [`Subscription`] implements exactly this rule, so the server and tests
//! share it.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::errors::ErrorCode;
use super::jobs::JobStatus;

/// A message from client to server on `GET /api/v1/ws/jobs` (text frames,
/// JSON).
///
/// Emitted tagged by `action`: `{"action":"subscribe","job_id":"<uuid>"}`,
/// `{"action":"subscribe"}`, `{"action":"unsubscribe","job_id":"<uuid>"}`,
/// `{"action":"ping"}`. Also accepted: the documented legacy `type` key in
/// place of `action`, `subscribe_all` (= `subscribe` without a job), and a
/// `job_id` of `""` or `"all"` meaning no job. Unknown fields are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientMessage {
    /// Receive this job's events (narrowing from "all"), or all jobs if `None`.
    Subscribe {
        /// The job, or `None` for all jobs.
        job_id: Option<Uuid>,
    },
    /// Stop receiving this job's events.
    Unsubscribe {
        /// The job.
        job_id: Uuid,
    },
    /// Application-level ping (legacy docs); answered with `pong`. The
    /// server's own keepalive uses WebSocket ping frames.
    Ping,
}

impl Serialize for ClientMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (action, job_id) = match self {
            ClientMessage::Subscribe { job_id } => ("subscribe", *job_id),
            ClientMessage::Unsubscribe { job_id } => ("unsubscribe", Some(*job_id)),
            ClientMessage::Ping => ("ping", None),
        };
        let mut map = serializer.serialize_map(Some(1 + usize::from(job_id.is_some())))?;
        map.serialize_entry("action", action)?;
        if let Some(job_id) = job_id {
            map.serialize_entry("job_id", &job_id)?;
        }
        map.end()
    }
}

/// The verbs a client may send, under `action` or the legacy `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Verb {
    Subscribe,
    Unsubscribe,
    SubscribeAll,
    Ping,
}

/// A `job_id` in a client message: a UUID, or `""`/`"all"` for all jobs.
#[derive(Debug, Clone, Copy)]
struct JobRef(Option<Uuid>);

impl<'de> Deserialize<'de> for JobRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        if s.is_empty() || s == "all" {
            return Ok(JobRef(None));
        }
        Uuid::parse_str(&s)
            .map(|id| JobRef(Some(id)))
            .map_err(|e| serde::de::Error::custom(format_args!("`{s}` is not a job id (a UUID or \"all\"): {e}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientMessage {
    #[serde(default)]
    action: Option<Verb>,
    #[serde(default, rename = "type")]
    kind: Option<Verb>,
    #[serde(default)]
    job_id: Option<JobRef>,
}

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = RawClientMessage::deserialize(deserializer)?;
        let verb = match (raw.action, raw.kind) {
            (Some(a), Some(t)) if a != t => {
                return Err(D::Error::custom("`action` and `type` disagree; send `action` only"));
            }
            (Some(v), _) | (None, Some(v)) => v,
            (None, None) => return Err(D::Error::missing_field("action")),
        };
        let job_id = raw.job_id.and_then(|r| r.0);
        match verb {
            Verb::Subscribe => Ok(ClientMessage::Subscribe { job_id }),
            Verb::SubscribeAll if job_id.is_some() => {
                Err(D::Error::custom("`subscribe_all` takes no job_id; use `subscribe` with a job_id"))
            }
            Verb::SubscribeAll => Ok(ClientMessage::Subscribe { job_id: None }),
            Verb::Unsubscribe => match job_id {
                Some(job_id) => Ok(ClientMessage::Unsubscribe { job_id }),
                None => Err(D::Error::missing_field("job_id")),
            },
            Verb::Ping => Ok(ClientMessage::Ping),
        }
    }
}

/// What a [`ServerEvent`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A job was created or changed (including its final change).
    JobStatus,
    /// A job reached a terminal state; follows that state's `job_status`.
    JobComplete,
    /// Sent once on connect; `job_id` is `""`, `status` is `connected`.
    Connected,
    /// Answer to `subscribe`; `job_id` is the id or `"all"`.
    Subscribed,
    /// Answer to `unsubscribe`; `job_id` is the id.
    Unsubscribed,
    /// The last client message was not understood; `status` is `invalid_message`.
    Error,
    /// Answer to `ping`; `status` is `pong`.
    Pong,
}

/// A message from server to client on `GET /api/v1/ws/jobs`. Always this
/// flat shape:
///
/// ```json
/// {"event":"job_status","job_id":"<uuid>","status":"running","progress":10,
///  "message":"Cache refreshed, applying patches...","timestamp":"2026-11-23T12:00:00Z"}
/// ```
///
/// `status` is a job status (`pending`, `running`, `completed`, `failed`,
/// `cancelled`, `timed_out`) for job events and a fixed word for the others
/// (`connected`, `subscribed`, `unsubscribed`, `invalid_message`, `pong`),
/// hence a string; [`ServerEvent::job_status`] reads it back. `error` and
/// `error_code` are only present on failure events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerEvent {
    /// What this event is about.
    pub event: EventKind,
    /// The job's id; `""` for connection events, `"all"` for `subscribed` to all.
    pub job_id: String,
    /// Job status, or the event's fixed word.
    pub status: String,
    /// 0–100.
    pub progress: u8,
    /// Human-readable text.
    pub message: String,
    /// When the event was produced (RFC 3339, UTC).
    pub timestamp: Timestamp,
    /// Short error text, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Error code, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<ErrorCode>,
}

impl ServerEvent {
    fn plain(event: EventKind, job_id: String, status: &str, message: String, now: Timestamp) -> Self {
        ServerEvent {
            event,
            job_id,
            status: status.to_owned(),
            progress: 0,
            message,
            timestamp: now,
            error: None,
            error_code: None,
        }
    }

    /// The first event of a connection.
    pub fn connected(connection_id: Uuid, now: Timestamp) -> Self {
        Self::plain(
            EventKind::Connected,
            String::new(),
            "connected",
            format!("WebSocket connected: {connection_id}"),
            now,
        )
    }

    /// Answer to `subscribe` (`None`: all jobs).
    pub fn subscribed(job_id: Option<Uuid>, now: Timestamp) -> Self {
        match job_id {
            Some(id) => {
                Self::plain(EventKind::Subscribed, id.to_string(), "subscribed", format!("Subscribed to job {id}"), now)
            }
            None => {
                Self::plain(EventKind::Subscribed, "all".into(), "subscribed", "Subscribed to all jobs".into(), now)
            }
        }
    }

    /// Answer to `unsubscribe`.
    pub fn unsubscribed(job_id: Uuid, now: Timestamp) -> Self {
        Self::plain(
            EventKind::Unsubscribed,
            job_id.to_string(),
            "unsubscribed",
            format!("Unsubscribed from job {job_id}"),
            now,
        )
    }

    /// Answer to a message that could not be parsed; `message` says why.
    pub fn invalid_message(message: impl Into<String>, now: Timestamp) -> Self {
        Self::plain(EventKind::Error, String::new(), "invalid_message", message.into(), now)
    }

    /// Answer to `ping`.
    pub fn pong(now: Timestamp) -> Self {
        Self::plain(EventKind::Pong, String::new(), "pong", "pong".into(), now)
    }

    /// A job changed (`job_status`). `progress` above 100 is sent as 100.
    pub fn job(job_id: Uuid, status: JobStatus, progress: u8, message: impl Into<String>, now: Timestamp) -> Self {
        ServerEvent {
            event: EventKind::JobStatus,
            job_id: job_id.to_string(),
            status: status.as_str().to_owned(),
            progress: progress.min(100),
            message: message.into(),
            timestamp: now,
            error: None,
            error_code: None,
        }
    }

    /// Adds the failure fields.
    pub fn with_error(mut self, error: impl Into<String>, code: ErrorCode) -> Self {
        self.error = Some(error.into());
        self.error_code = Some(code);
        self
    }

    /// The `job_complete` that follows a terminal `job_status`: the same
    /// event under the other name. `None` unless `self` is a job event with
    /// a terminal status.
    pub fn completion(&self) -> Option<Self> {
        let terminal = self.event == EventKind::JobStatus && self.job_status().is_some_and(JobStatus::is_terminal);
        terminal.then(|| ServerEvent { event: EventKind::JobComplete, ..self.clone() })
    }

    /// The job status of a job event (legacy spellings accepted); `None` for
    /// other events.
    pub fn job_status(&self) -> Option<JobStatus> {
        match self.event {
            EventKind::JobStatus | EventKind::JobComplete => JobStatus::parse(&self.status),
            _ => None,
        }
    }

    /// The job id of a job event; `None` for other events.
    pub fn job_uuid(&self) -> Option<Uuid> {
        match self.event {
            EventKind::JobStatus | EventKind::JobComplete => Uuid::parse_str(&self.job_id).ok(),
            _ => None,
        }
    }
}

/// Which jobs' events one WebSocket connection receives: the rule in the
/// module docs. Starts at [`Subscription::All`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Subscription {
    /// Every job (the state on connect).
    #[default]
    All,
    /// Only these jobs (possibly none).
    Jobs(BTreeSet<Uuid>),
}

impl Subscription {
    /// Applies a client message.
    pub fn apply(&mut self, message: &ClientMessage) {
        match *message {
            ClientMessage::Subscribe { job_id: None } => *self = Subscription::All,
            ClientMessage::Subscribe { job_id: Some(id) } => match self {
                Subscription::All => *self = Subscription::Jobs(BTreeSet::from([id])),
                Subscription::Jobs(ids) => {
                    ids.insert(id);
                }
            },
            ClientMessage::Unsubscribe { job_id } => {
                if let Subscription::Jobs(ids) = self {
                    ids.remove(&job_id);
                }
            }
            ClientMessage::Ping => {}
        }
    }

    /// Whether `event` goes to this connection: connection events always,
    /// job events if their job is subscribed.
    pub fn wants(&self, event: &ServerEvent) -> bool {
        match event.event {
            EventKind::JobStatus | EventKind::JobComplete => match self {
                Subscription::All => true,
                Subscription::Jobs(ids) => event.job_uuid().is_some_and(|id| ids.contains(&id)),
            },
            _ => true,
        }
    }
}
