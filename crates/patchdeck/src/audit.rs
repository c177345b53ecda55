//! Recording to the hash-chained audit log. Every state change and security event goes through
//! [`AuditEvent`]; the chain itself (hashing, verification, pruning) lives in the store.

use patchdeck_store::{NewAuditEntry, UserId};
use serde_json::Value;

pub use patchdeck_store::AuditOutcome as Outcome;

/// One audit record being built: `AuditEvent::new(actor, "user.create", Outcome::Success)`.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: String,
    pub actor_user_id: Option<UserId>,
    pub action: &'static str,
    pub target: Option<String>,
    pub source_ip: Option<String>,
    pub outcome: Outcome,
    pub details: Value,
}

impl AuditEvent {
    /// `actor` is `user:<name>`, `system`, `cli` or `host:<id>`; `action` is `resource.verb`.
    pub fn new(actor: impl Into<String>, action: &'static str, outcome: Outcome) -> Self {
        AuditEvent {
            actor: actor.into(),
            actor_user_id: None,
            action,
            target: None,
            source_ip: None,
            outcome,
            details: Value::Object(Default::default()),
        }
    }

    pub fn user(mut self, id: UserId) -> Self {
        self.actor_user_id = Some(id);
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn source(mut self, ip: Option<String>) -> Self {
        self.source_ip = ip;
        self
    }

    /// Extra facts (never a secret: no passwords, tokens, keys or codes).
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn into_entry(self, at: jiff::Timestamp) -> NewAuditEntry {
        NewAuditEntry {
            at,
            actor: self.actor,
            actor_user_id: self.actor_user_id,
            action: self.action.to_owned(),
            target: self.target,
            source_ip: self.source_ip,
            outcome: self.outcome,
            details: self.details,
        }
    }
}
