//! The audit events and their one rendering into named fields, shared by every sink.

use std::fmt::Write as _;
use std::net::SocketAddr;

use jiff::Timestamp;

use crate::transport::PeerIdentity;

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A network peer of the push API. The certificate fields are absent when the peer never
    /// presented a verified certificate (an allow-list denial, a failed handshake).
    Peer { addr: SocketAddr, cn: Option<String>, serial: Option<String>, fingerprint: Option<String> },
    /// The agent itself: reloads, scheduled or pull-mode work.
    Agent,
}

impl Actor {
    /// A peer known only by its address.
    pub fn addr(addr: SocketAddr) -> Self {
        Actor::Peer { addr, cn: None, serial: None, fingerprint: None }
    }

    fn kind(&self) -> &'static str {
        match self {
            Actor::Peer { .. } => "peer",
            Actor::Agent => "agent",
        }
    }
}

impl From<&PeerIdentity> for Actor {
    fn from(id: &PeerIdentity) -> Self {
        Actor::Peer {
            addr: id.addr,
            cn: id.subject_cn.clone(),
            serial: Some(id.serial_hex.clone()),
            fingerprint: Some(id.sha256_fingerprint.clone()),
        }
    }
}

/// How an event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    /// The outcome of an HTTP request from its status: 401 and 403 are `denied`, other 4xx and
    /// 5xx are `failure`, everything below 400 is `success`.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 | 403 => Outcome::Denied,
            400.. => Outcome::Failure,
            _ => Outcome::Success,
        }
    }
}

/// One thing worth auditing. The types have no field that could hold a secret (no header, no
/// body, no token, no key); [`AuditEvent::Request`] paths lose their query string when recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// One HTTP request of the push API, after the response was decided.
    Request {
        actor: Actor,
        request_id: String,
        method: String,
        /// The request path. Anything from `?` on is dropped before it is written.
        path: String,
        status: u16,
        duration_ms: u64,
    },
    /// A package operation of the job engine, when it ends.
    PackageOperation {
        actor: Actor,
        job_id: String,
        /// `install`, `upgrade`, `remove`, `downgrade`, `rollback`…
        operation: String,
        packages: Vec<String>,
        outcome: Outcome,
        /// Why it failed, when it did.
        error: Option<String>,
    },
    /// A peer was refused at authentication (bad, unknown, revoked or missing certificate).
    AuthFailure { actor: Actor, reason: String },
    /// A connection from an address that is not on the allow-list was closed.
    AllowlistDenied { addr: SocketAddr },
    /// The configuration was reloaded (or a reload was refused).
    ConfigReload { source: String, outcome: Outcome, error: Option<String> },
    /// The TLS certificates (server certificate, CA, CRL) were reloaded (or a reload was refused).
    CertificateReload { outcome: Outcome, error: Option<String> },
    /// Events were dropped because the audit queue was full. Written by the writer itself, so it
    /// cannot be dropped in turn.
    AuditDropped { count: u64 },
}

/// A field value as every sink sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Str(String),
    Num(u64),
    List(Vec<String>),
}

impl Value {
    /// The value as one line of text (lists are joined with single spaces; package names never
    /// contain whitespace).
    pub(crate) fn to_text(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::Num(n) => n.to_string(),
            Value::List(l) => l.join(" "),
        }
    }
}

impl AuditEvent {
    /// The `event` name: snake_case, stable.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::Request { .. } => "request",
            AuditEvent::PackageOperation { .. } => "package_operation",
            AuditEvent::AuthFailure { .. } => "auth_failure",
            AuditEvent::AllowlistDenied { .. } => "allowlist_denied",
            AuditEvent::ConfigReload { .. } => "config_reload",
            AuditEvent::CertificateReload { .. } => "certificate_reload",
            AuditEvent::AuditDropped { .. } => "audit_dropped",
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            AuditEvent::Request { status, .. } => Outcome::from_status(*status),
            AuditEvent::PackageOperation { outcome, .. }
            | AuditEvent::ConfigReload { outcome, .. }
            | AuditEvent::CertificateReload { outcome, .. } => *outcome,
            AuditEvent::AuthFailure { .. } | AuditEvent::AllowlistDenied { .. } => Outcome::Denied,
            AuditEvent::AuditDropped { .. } => Outcome::Failure,
        }
    }

    pub fn actor(&self) -> Actor {
        match self {
            AuditEvent::Request { actor, .. }
            | AuditEvent::PackageOperation { actor, .. }
            | AuditEvent::AuthFailure { actor, .. } => actor.clone(),
            AuditEvent::AllowlistDenied { addr } => Actor::addr(*addr),
            AuditEvent::ConfigReload { .. }
            | AuditEvent::CertificateReload { .. }
            | AuditEvent::AuditDropped { .. } => Actor::Agent,
        }
    }

    /// The fields of this kind, in schema order (after `ts`, `event`, `actor`, `outcome`).
    /// Absent optional fields are left out.
    pub(crate) fn fields(&self) -> Vec<(&'static str, Value)> {
        let s = |v: &str| Value::Str(v.to_owned());
        let mut out = Vec::new();
        match self {
            AuditEvent::Request { request_id, method, path, status, duration_ms, .. } => {
                out.push(("request_id", s(request_id)));
                out.push(("method", s(method)));
                out.push(("path", s(strip_query(path))));
                out.push(("status", Value::Num(u64::from(*status))));
                out.push(("duration_ms", Value::Num(*duration_ms)));
            }
            AuditEvent::PackageOperation { job_id, operation, packages, error, .. } => {
                out.push(("job_id", s(job_id)));
                out.push(("operation", s(operation)));
                out.push(("packages", Value::List(packages.clone())));
                if let Some(e) = error {
                    out.push(("error", s(e)));
                }
            }
            AuditEvent::AuthFailure { reason, .. } => out.push(("reason", s(reason))),
            AuditEvent::AllowlistDenied { .. } => {}
            AuditEvent::ConfigReload { source, error, .. } => {
                out.push(("source", s(source)));
                if let Some(e) = error {
                    out.push(("error", s(e)));
                }
            }
            AuditEvent::CertificateReload { error, .. } => {
                if let Some(e) = error {
                    out.push(("error", s(e)));
                }
            }
            AuditEvent::AuditDropped { count } => out.push(("count", Value::Num(*count))),
        }
        out
    }
}

fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

/// The actor as flat `(name, value)` pairs: `kind`, then `addr`, `cn`, `serial`, `fingerprint`
/// when known.
pub(crate) fn actor_fields(actor: &Actor) -> Vec<(&'static str, String)> {
    let mut out = vec![("kind", actor.kind().to_owned())];
    if let Actor::Peer { addr, cn, serial, fingerprint } = actor {
        out.push(("addr", addr.to_string()));
        for (name, v) in [("cn", cn), ("serial", serial), ("fingerprint", fingerprint)] {
            if let Some(v) = v {
                out.push((name, v.clone()));
            }
        }
    }
    out
}

/// An event with its time: what travels to the writer.
#[derive(Debug, Clone)]
pub(crate) struct Stamped {
    pub ts: Timestamp,
    pub event: AuditEvent,
}

/// `ts` as written everywhere: RFC 3339, UTC, microseconds, `Z`.
pub(crate) fn format_ts(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl Stamped {
    /// One JSON object, without the newline. Keys in schema order.
    pub(crate) fn to_json(&self) -> String {
        fn put(out: &mut String, key: &str, value: &serde_json::Value) {
            if !out.ends_with('{') {
                out.push(',');
            }
            let _ = write!(out, "{}:{}", serde_json::Value::from(key), value);
        }
        let mut out = String::from("{");
        put(&mut out, "ts", &format_ts(self.ts).into());
        put(&mut out, "event", &self.event.kind().into());
        // Written by hand, not through `serde_json::Map`, which would sort the keys.
        let mut actor = String::from("{");
        for (k, v) in actor_fields(&self.event.actor()) {
            put(&mut actor, k, &v.into());
        }
        actor.push('}');
        let _ = write!(out, ",\"actor\":{actor}");
        put(&mut out, "outcome", &self.event.outcome().as_str().into());
        for (k, v) in self.event.fields() {
            let v = match v {
                Value::Str(s) => serde_json::Value::from(s),
                Value::Num(n) => serde_json::Value::from(n),
                Value::List(l) => serde_json::Value::from(l),
            };
            put(&mut out, k, &v);
        }
        out.push('}');
        out
    }

    /// A one-line human summary: journald's `MESSAGE` and the syslog MSG.
    pub(crate) fn summary(&self) -> String {
        let who = match self.event.actor() {
            Actor::Agent => "agent".to_owned(),
            Actor::Peer { addr, cn, .. } => match cn {
                Some(cn) => format!("{cn} ({addr})"),
                None => addr.to_string(),
            },
        };
        let detail = match &self.event {
            AuditEvent::Request { method, path, status, duration_ms, .. } => {
                format!("{method} {} -> {status} in {duration_ms} ms", strip_query(path))
            }
            AuditEvent::PackageOperation { job_id, operation, packages, .. } => {
                format!("job {job_id} {operation} [{}]", packages.join(" "))
            }
            AuditEvent::AuthFailure { reason, .. } => format!("authentication failed: {reason}"),
            AuditEvent::AllowlistDenied { .. } => "not on the allow-list".to_owned(),
            AuditEvent::ConfigReload { source, .. } => format!("configuration reload from {source}"),
            AuditEvent::CertificateReload { .. } => "certificate reload".to_owned(),
            AuditEvent::AuditDropped { count } => format!("{count} audit events dropped: queue full"),
        };
        format!("{} {} by {who}: {detail}", self.event.kind(), self.event.outcome().as_str())
    }
}
