//! What is notified: the events, their kinds, and how each reads as a subject line and a
//! plain-text body.

use std::fmt::Write as _;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Every event kind, as rules name them.
pub const EVENT_KINDS: &[&str] = &[
    "deployment.finished",
    "deployment.failed",
    "deployment.halted",
    "host.unreachable",
    "security.digest",
    "certificate.expiring",
];

/// The kind of a channel's test message (never matched by rules).
pub const TEST_KIND: &str = "test";

/// One security update in a digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DigestItem {
    pub host_id: i64,
    pub hostname: String,
    pub package: String,
    pub arch: String,
    pub current_version: String,
    pub version: String,
    /// Severity as the advisory spells it, where known.
    pub severity: Option<String>,
    /// CVE ids, where known.
    #[serde(default)]
    pub cves: Vec<String>,
}

/// Something worth telling someone about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data")]
pub enum NotificationEvent {
    #[serde(rename = "deployment.finished")]
    DeploymentFinished { deployment_id: i64, name: String, succeeded: u32, failed: u32, skipped: u32 },
    #[serde(rename = "deployment.failed")]
    DeploymentFailed { deployment_id: i64, name: String, succeeded: u32, failed: u32, reason: String },
    #[serde(rename = "deployment.halted")]
    DeploymentHalted { deployment_id: i64, name: String, ring: String, success_rate: f64, threshold: f64 },
    #[serde(rename = "host.unreachable")]
    HostUnreachable { host_id: i64, hostname: String, status: String, last_seen_at: Option<Timestamp> },
    #[serde(rename = "security.digest")]
    SecurityDigest { hosts: u32, updates: u32, items: Vec<DigestItem> },
    #[serde(rename = "certificate.expiring")]
    CertificateExpiring { serial: String, subject: String, host_id: Option<i64>, expires_at: Timestamp },
    /// A channel's test message (`POST /notification-channels/{id}/test`); no rule matches it.
    #[serde(rename = "test")]
    Test { channel: String },
}

impl NotificationEvent {
    /// `deployment.finished`, `host.unreachable`, … (see [`EVENT_KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DeploymentFinished { .. } => "deployment.finished",
            Self::DeploymentFailed { .. } => "deployment.failed",
            Self::DeploymentHalted { .. } => "deployment.halted",
            Self::HostUnreachable { .. } => "host.unreachable",
            Self::SecurityDigest { .. } => "security.digest",
            Self::CertificateExpiring { .. } => "certificate.expiring",
            Self::Test { .. } => TEST_KIND,
        }
    }

    /// The host the event is about, for a rule's group filter.
    pub fn host_id(&self) -> Option<i64> {
        match self {
            Self::HostUnreachable { host_id, .. } => Some(*host_id),
            Self::CertificateExpiring { host_id, .. } => *host_id,
            _ => None,
        }
    }

    /// The event as its `data` (the payload without the kind).
    pub fn data(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .ok()
            .and_then(|mut v| v.get_mut("data").map(serde_json::Value::take))
            .unwrap_or_default()
    }

    /// One line: the e-mail subject, the chat message's first line, the webhook's `summary`.
    pub fn summary(&self) -> String {
        match self {
            Self::DeploymentFinished { name, succeeded, failed, skipped, .. } => {
                format!("Deployment \"{name}\" finished: {succeeded} succeeded, {failed} failed, {skipped} skipped")
            }
            Self::DeploymentFailed { name, reason, .. } => format!("Deployment \"{name}\" failed: {reason}"),
            Self::DeploymentHalted { name, ring, success_rate, threshold, .. } => format!(
                "Deployment \"{name}\" halted in ring \"{ring}\": success rate {:.0}% below {:.0}%",
                success_rate * 100.0,
                threshold * 100.0
            ),
            Self::HostUnreachable { hostname, status, .. } => format!("Host {hostname} is {status}"),
            Self::SecurityDigest { hosts, updates, .. } => {
                format!("{updates} new security update{} on {hosts} host{}", plural(*updates), plural(*hosts))
            }
            Self::CertificateExpiring { subject, expires_at, .. } => {
                format!("Certificate for {subject} expires on {}", expires_at.strftime("%Y-%m-%d %H:%M UTC"))
            }
            Self::Test { channel } => format!("Patchdeck test message for channel \"{channel}\""),
        }
    }

    /// The plain-text body of an e-mail (and the rest of a chat message).
    pub fn body(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.summary());
        let _ = writeln!(out);
        match self {
            Self::DeploymentFinished { deployment_id, succeeded, failed, skipped, .. } => {
                let _ = writeln!(out, "Deployment: #{deployment_id}");
                let _ = writeln!(out, "Succeeded: {succeeded}\nFailed: {failed}\nSkipped: {skipped}");
            }
            Self::DeploymentFailed { deployment_id, succeeded, failed, reason, .. } => {
                let _ = writeln!(out, "Deployment: #{deployment_id}");
                let _ = writeln!(out, "Succeeded: {succeeded}\nFailed: {failed}\nReason: {reason}");
            }
            Self::DeploymentHalted { deployment_id, ring, success_rate, threshold, .. } => {
                let _ = writeln!(out, "Deployment: #{deployment_id}\nRing: {ring}");
                let _ =
                    writeln!(out, "Success rate: {:.1}%\nThreshold: {:.1}%", success_rate * 100.0, threshold * 100.0);
                let _ = writeln!(out, "\nThe deployment waits for an operator to resume or cancel it.");
            }
            Self::HostUnreachable { host_id, hostname, status, last_seen_at } => {
                let _ = writeln!(out, "Host: {hostname} (#{host_id})\nStatus: {status}");
                match last_seen_at {
                    Some(at) => {
                        let _ = writeln!(out, "Last seen: {}", at.strftime("%Y-%m-%d %H:%M:%S UTC"));
                    }
                    None => {
                        let _ = writeln!(out, "Last seen: never");
                    }
                }
            }
            Self::SecurityDigest { items, .. } => {
                for item in items {
                    let _ = write!(
                        out,
                        "- {}: {} {} -> {}",
                        item.hostname, item.package, item.current_version, item.version
                    );
                    if let Some(severity) = &item.severity {
                        let _ = write!(out, " [{severity}]");
                    }
                    if !item.cves.is_empty() {
                        let _ = write!(out, " ({})", item.cves.join(", "));
                    }
                    let _ = writeln!(out);
                }
            }
            Self::CertificateExpiring { serial, subject, host_id, expires_at } => {
                let _ = writeln!(out, "Subject: {subject}\nSerial: {serial}");
                if let Some(host) = host_id {
                    let _ = writeln!(out, "Host: #{host}");
                }
                let _ = writeln!(out, "Expires: {}", expires_at.strftime("%Y-%m-%d %H:%M:%S UTC"));
                let _ = writeln!(out, "\nAgents renew their certificates themselves; one that did not may be offline.");
            }
            Self::Test { .. } => {
                let _ = writeln!(out, "If you can read this, the channel works.");
            }
        }
        let _ = write!(out, "\n-- \nSent by Patchdeck");
        out
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What the outbox stores for an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub occurred_at: Timestamp,
    #[serde(flatten)]
    pub event: NotificationEvent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_and_round_trip() {
        let event = NotificationEvent::HostUnreachable {
            host_id: 4,
            hostname: "web1".into(),
            status: "offline".into(),
            last_seen_at: None,
        };
        assert!(EVENT_KINDS.contains(&event.kind()));
        let stored = StoredEvent { occurred_at: Timestamp::UNIX_EPOCH, event: event.clone() };
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["kind"], "host.unreachable");
        assert_eq!(json["data"]["hostname"], "web1");
        assert_eq!(serde_json::from_value::<StoredEvent>(json).unwrap().event, event);
        assert_eq!(event.data()["host_id"], 4);
        assert_eq!(event.summary(), "Host web1 is offline");
        assert!(event.body().contains("Last seen: never"));
    }

    #[test]
    fn digest_lists_every_item() {
        let item = DigestItem {
            host_id: 1,
            hostname: "db1".into(),
            package: "openssl".into(),
            arch: "amd64".into(),
            current_version: "3.0.1".into(),
            version: "3.0.2".into(),
            severity: Some("high".into()),
            cves: vec!["CVE-2026-0001".into()],
        };
        let event = NotificationEvent::SecurityDigest { hosts: 1, updates: 1, items: vec![item] };
        assert_eq!(event.summary(), "1 new security update on 1 host");
        assert!(event.body().contains("- db1: openssl 3.0.1 -> 3.0.2 [high] (CVE-2026-0001)"), "{}", event.body());
    }
}
