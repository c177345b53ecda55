//! The pull protocol between `patchdeck-agent` and the manager (`/agent/v1/...`).
//!
//! `docs/protocol.md` describes the exchange; this module is its wire format. In short:
//!
//! 1. `POST /agent/v1/enroll` (TLS, no client certificate): [`EnrollRequest`] with a registration
//!    token and a CSR → [`EnrollResponse`]: a client certificate, the CA chain and the manager's
//!    Ed25519 command-signing key, or "waiting for approval".
//! 2. Every later request is mutual TLS with that certificate and carries the machine ID in the
//!    [`MACHINE_ID_HEADER`] header.
//! 3. `POST /agent/v1/checkin`: [`CheckinRequest`] (metrics, command results, the inventory hash)
//!    → [`CheckinResponse`] (signed commands, whether the inventory is wanted, results stored,
//!    when to come back). The manager holds the request (long-poll) while it has nothing to say.
//! 4. `PUT /agent/v1/inventory`: [`InventoryUpload`], only when the manager asked for it.
//! 5. `POST /agent/v1/certificate`: [`RenewRequest`] → [`RenewResponse`], before expiry.
//!
//! Commands travel as [`SignedCommand`]s: the JSON of a [`CommandPayload`], signed with the
//! manager's command key together with a nonce and an expiry (5 minutes). The agent refuses a bad
//! signature, an expired command, a command for another host and a nonce it has seen.
//!
//! Field names and enum spellings are the contract; they are pinned by tests.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::inventory::{OsInfo, ScanReport};
pub use crate::orchestration::{
    CheckKind, CheckResult, DryRunPreview, HookOutcome, HookPhase, HookRun, Probe, HEALTH_CHECK_FAILED,
    POST_HOOK_FAILED, PRE_HOOK_FAILED,
};

/// Version of this protocol; sent by the agent in every request body.
pub const PROTOCOL_VERSION: u32 = 1;

/// The header carrying the agent's machine ID on every mutual-TLS request.
pub const MACHINE_ID_HEADER: &str = "patchdeck-machine-id";

/// Longest text output kept per command result (bytes); the agent truncates before sending.
pub const MAX_RESULT_OUTPUT_BYTES: usize = 64 * 1024;

/// Most results one check-in carries; the rest wait for the next one.
pub const MAX_RESULTS_PER_CHECKIN: usize = 100;

/// What `patchdeck-agent enroll` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub protocol_version: u32,
    /// The registration token, as shown once when it was created.
    pub token: String,
    /// PEM certificate signing request for the agent's new key (P-256 or Ed25519). Only the key
    /// is used.
    pub csr_pem: String,
    /// `/etc/machine-id` (32 lowercase hex digits).
    pub machine_id: String,
    pub hostname: String,
    pub fqdn: Option<String>,
    /// The host's IP addresses (loopback and link-local left out).
    #[serde(default)]
    pub addresses: Vec<String>,
    pub os: OsInfo,
    pub agent_version: String,
    /// Replace the certificate of a machine that is already enrolled (takes a seat).
    #[serde(default)]
    pub force: bool,
}

/// The manager's answer to an [`EnrollRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum EnrollResponse {
    /// Enrolled: the agent stores all of this and starts checking in.
    Enrolled(Enrollment),
    /// Held for an administrator's approval. The agent sends the same request again (same key,
    /// same token) after `retry_after_secs`; it takes no further seat.
    PendingApproval { host_id: i64, retry_after_secs: u64 },
}

/// The identity an enrolled agent keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrollment {
    pub host_id: i64,
    /// The client certificate (subject `CN=<host_id>`), PEM.
    pub certificate_pem: String,
    /// The CA certificate(s) that issued it and that issued the manager's own certificate.
    pub ca_pem: String,
    /// The manager's Ed25519 command-signing public key, standard base64 of the 32 raw bytes.
    pub command_key: String,
    /// `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub command_key_fingerprint: String,
}

/// A check-in: the agent's periodic (long-poll) request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckinRequest {
    pub protocol_version: u32,
    pub agent_version: String,
    /// Light metrics, measured just before the request.
    pub metrics: Metrics,
    /// [`inventory_hash`] of the agent's latest scan; `None` before the first scan finished.
    pub inventory_hash: Option<String>,
    /// Results and progress of commands, oldest first; at most [`MAX_RESULTS_PER_CHECKIN`].
    #[serde(default)]
    pub results: Vec<CommandResult>,
    /// Commands the agent refused (bad signature, expired, replayed, not for this host).
    #[serde(default)]
    pub rejections: Vec<CommandRejection>,
    /// How long the agent is willing to wait for an answer (ms); the manager holds the request
    /// at most this long when it has nothing to say.
    pub wait_ms: u64,
}

/// What the manager answers to a check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckinResponse {
    /// Commands to run, in the order they were queued.
    #[serde(default)]
    pub commands: Vec<SignedCommand>,
    /// The manager's inventory hash differs: send `PUT /agent/v1/inventory` now.
    pub inventory_wanted: bool,
    /// Results (by `command_id` and `state`) the manager has stored: the agent may forget them.
    #[serde(default)]
    pub acked: Vec<ResultAck>,
    /// Wait this long before the next check-in (ms); 0: check in again at once (long-poll).
    pub next_checkin_ms: u64,
    /// The manager's clock, for the agent's log when clocks disagree.
    pub server_time: Timestamp,
}

/// One stored result: the agent deletes its copy of `command_id` in `state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultAck {
    pub command_id: Uuid,
    pub state: CommandState,
}

/// Light host metrics sent with every check-in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// `/proc/loadavg`: 1, 5 and 15 minutes.
    pub load: [f64; 3],
    pub cpu_count: u32,
    /// Busy share of all CPUs since the previous sample, 0–100; `None` on the first sample.
    pub cpu_percent: Option<f64>,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
    /// Local file systems (no pseudo or network file systems).
    #[serde(default)]
    pub disks: Vec<DiskUsage>,
    pub uptime_secs: u64,
    /// `/proc/sys/kernel/random/boot_id`: changes at every boot.
    pub boot_id: Option<String>,
    pub kernel: Option<String>,
    /// The host needs a reboot (from the latest scan's evidence).
    pub reboot_required: bool,
}

/// One mounted file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskUsage {
    pub mount_point: String,
    pub filesystem: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

/// `PUT /agent/v1/inventory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryUpload {
    pub protocol_version: u32,
    /// [`inventory_hash`] of `report`; the manager recomputes and checks it.
    pub hash: String,
    pub report: ScanReport,
}

/// `POST /agent/v1/certificate`: a new key for the same host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    pub protocol_version: u32,
    pub csr_pem: String,
}

/// The renewed certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewResponse {
    pub certificate_pem: String,
    pub ca_pem: String,
}

/// A command as delivered: a signed envelope around the JSON of a [`CommandPayload`].
///
/// Same JSON as `patchdeck_crypto::signing::SignedEnvelope`: `payload` (base64url), `nonce`,
/// `expires_at`, `signature` (base64url). The agent checks it with that type; this crate does no
/// cryptography.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub payload: String,
    pub nonce: String,
    pub expires_at: Timestamp,
    pub signature: String,
}

/// What a command says, inside the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandPayload {
    pub command_id: Uuid,
    /// The host it is for: the agent refuses a command for another host or machine.
    pub host_id: i64,
    pub machine_id: String,
    pub issued_at: Timestamp,
    pub command: Command,
}

/// Everything the manager can ask an agent to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Collect and report the named subsystems now (packages → a fresh inventory upload).
    Scan {
        subsystems: Vec<Subsystem>,
        /// Refresh package metadata first.
        #[serde(default)]
        refresh: bool,
    },
    /// Refresh package metadata (`apt-get update`, `dnf makecache`, …).
    RefreshMetadata,
    /// Upgrade installed packages.
    Upgrade {
        selection: Selection,
        /// Only compute the transaction; change nothing.
        #[serde(default)]
        dry_run: bool,
    },
    /// Install packages (`name` or `name=version`).
    Install {
        packages: Vec<String>,
        #[serde(default)]
        dry_run: bool,
    },
    /// Remove packages.
    Remove {
        packages: Vec<String>,
        #[serde(default)]
        dry_run: bool,
    },
    /// Restore the versions a previous command on this host changed.
    Rollback { command_id: Uuid },
    /// Reboot the host after `delay_secs` (rounded up to whole minutes).
    Reboot {
        #[serde(default)]
        delay_secs: u64,
        /// Reboot even while other jobs are pending or running.
        #[serde(default)]
        force: bool,
        /// A warning for logged-in users, broadcast with `wall` when the reboot is scheduled
        /// (`shutdown -r +N "message"`); one printable line of at most 256 characters
        /// ([`crate::orchestration::validate_reboot_message`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Rapid check-in: hold check-ins for at most `interval_secs` (fresh metrics each time) for
    /// `duration_secs`, or stop doing so.
    Heartbeat {
        enabled: bool,
        #[serde(default = "default_heartbeat_interval")]
        interval_secs: u64,
        #[serde(default = "default_heartbeat_duration")]
        duration_secs: u64,
    },
    /// Check the host now: each systemd unit must be active and each probe must pass. The
    /// result lists every check ([`CommandResult::checks`]); it fails with
    /// [`HEALTH_CHECK_FAILED`] when any check fails. Changes nothing.
    HealthCheck {
        /// Unit names; `.service` is added to a name without a unit suffix.
        #[serde(default)]
        units: Vec<String>,
        #[serde(default)]
        probes: Vec<Probe>,
    },
}

fn default_heartbeat_interval() -> u64 {
    10
}

fn default_heartbeat_duration() -> u64 {
    15 * 60
}

impl Command {
    /// The `type` tag, e.g. `upgrade`.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::Scan { .. } => "scan",
            Command::RefreshMetadata => "refresh_metadata",
            Command::Upgrade { .. } => "upgrade",
            Command::Install { .. } => "install",
            Command::Remove { .. } => "remove",
            Command::Rollback { .. } => "rollback",
            Command::Reboot { .. } => "reboot",
            Command::Heartbeat { .. } => "heartbeat",
            Command::HealthCheck { .. } => "health_check",
        }
    }

    /// Whether the command may change the host (packages or a reboot).
    pub fn is_disruptive(&self) -> bool {
        match self {
            Command::Upgrade { dry_run, .. } | Command::Install { dry_run, .. } | Command::Remove { dry_run, .. } => {
                !dry_run
            }
            Command::Rollback { .. } | Command::Reboot { .. } => true,
            Command::Scan { .. }
            | Command::RefreshMetadata
            | Command::Heartbeat { .. }
            | Command::HealthCheck { .. } => false,
        }
    }
}

/// What a scan collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subsystem {
    /// Installed packages and available updates (an inventory upload follows).
    Packages,
    /// CPU, memory, uptime, boot id (sent with the next check-in).
    System,
    /// File-system usage.
    Storage,
}

/// Which updates an [`Command::Upgrade`] applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Selection {
    /// Every available update.
    All,
    /// The updates the latest scan classifies as security fixes.
    Security,
    /// Exactly these `name=version` pairs (a deployment's frozen plan).
    Packages { packages: Vec<String> },
}

/// The lifecycle of a command, on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandState {
    /// Queued on the manager, not yet delivered.
    Pending,
    /// Delivered in a check-in response.
    Sent,
    /// The agent accepted it and started work.
    Running,
    Completed,
    Failed,
    /// No result in time (the manager's sweeper), or the agent's job timed out.
    TimedOut,
    /// Cancelled before delivery.
    Cancelled,
}

impl CommandState {
    pub const ALL: [CommandState; 7] = [
        CommandState::Pending,
        CommandState::Sent,
        CommandState::Running,
        CommandState::Completed,
        CommandState::Failed,
        CommandState::TimedOut,
        CommandState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandState::Pending => "pending",
            CommandState::Sent => "sent",
            CommandState::Running => "running",
            CommandState::Completed => "completed",
            CommandState::Failed => "failed",
            CommandState::TimedOut => "timed_out",
            CommandState::Cancelled => "cancelled",
        }
    }

    /// No further change will happen.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CommandState::Completed | CommandState::Failed | CommandState::TimedOut | CommandState::Cancelled
        )
    }
}

impl fmt::Display for CommandState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CommandState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CommandState::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| format!("unknown command state {s:?}"))
    }
}

/// Progress or outcome of one command, reported by the agent. A command reports `running` once,
/// then one terminal state; each report stays on the agent's disk until the manager acknowledges
/// it, so the manager may see a report more than once and keeps the first of each state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandResult {
    pub command_id: Uuid,
    /// `running`, `completed`, `failed` or `timed_out`.
    pub state: CommandState,
    pub at: Timestamp,
    /// The agent's job for it, where one was made (for logs and rollback).
    pub job_id: Option<Uuid>,
    /// Why it failed: a stable code (`PACKAGE_NOT_FOUND`, `JOB_TIMEOUT`, …) and a message.
    pub error: Option<ResultError>,
    /// The package manager's output, truncated to [`MAX_RESULT_OUTPUT_BYTES`].
    #[serde(default)]
    pub output: String,
    /// What changed (or, for a dry run, would change), per package.
    #[serde(default)]
    pub changes: Vec<PackageChange>,
    /// Whether the host needs a reboot after this command. For a dry run: whether it would
    /// after the real run (the prediction of [`DryRunPreview::reboot_required`]).
    #[serde(default)]
    pub reboot_required: bool,
    /// The local pre- and post-patch hooks run around a package job, in the order they ran
    /// (absent: none ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
    /// Every check of a `health_check` command, in the order asked (units, then probes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckResult>,
    /// A dry run's changes by kind, with the reboot prediction (boxed: most results have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<Box<DryRunPreview>>,
}

/// A failed command's reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultError {
    pub code: String,
    pub message: String,
}

/// One package a command changed (or would change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageChange {
    pub name: String,
    pub arch: Option<String>,
    /// `install`, `upgrade`, `downgrade`, `reinstall` or `remove`.
    pub action: crate::inventory::TxAction,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// A command the agent would not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRejection {
    /// The command id, when the payload could be read. For a bad signature it is only the id
    /// the payload claims: the manager uses it to fail that command of this host, nothing more.
    pub command_id: Option<Uuid>,
    pub nonce: String,
    pub reason: RejectionReason,
    pub message: String,
}

/// Why an agent refused a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    BadSignature,
    Expired,
    Replayed,
    WrongHost,
    Malformed,
}

impl RejectionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::BadSignature => "bad_signature",
            RejectionReason::Expired => "expired",
            RejectionReason::Replayed => "replayed",
            RejectionReason::WrongHost => "wrong_host",
            RejectionReason::Malformed => "malformed",
        }
    }
}

/// The error body of every `/agent/v1` failure (same envelope as the manager's REST API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentErrorBody {
    pub error: AgentError,
}

/// A failure's stable `code` (`invalid_token`, `token_exhausted`, `machine_id_mismatch`,
/// `certificate_revoked`, `machine_already_enrolled`, `enrollment_rejected`, …) and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentError {
    pub code: String,
    pub message: String,
}

/// The inventory hash: `sha256:` and the hex SHA-256 of the canonical JSON of the parts of a scan
/// that matter to the manager — os, backend, installed packages (sorted), updates (sorted) and
/// reboot status, but not the scan's timestamps — so an unchanged host hashes the same at every
/// scan.
pub fn inventory_hash(report: &ScanReport) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(inventory_hash_input(report));
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn inventory_hash_input(report: &ScanReport) -> Vec<u8> {
    #[derive(Serialize)]
    struct Hashed<'a> {
        schema_version: u32,
        os: &'a OsInfo,
        backend: crate::inventory::BackendKind,
        installed: &'a [crate::inventory::InstalledPackage],
        updates: &'a [crate::inventory::AvailableUpdate],
        reboot: &'a crate::inventory::RebootStatus,
    }
    let mut installed = report.installed.clone();
    installed.sort_by(|a, b| (&a.name, &a.arch, &a.version).cmp(&(&b.name, &b.arch, &b.version)));
    let mut updates = report.updates.clone();
    updates.sort_by(|a, b| (&a.name, &a.arch).cmp(&(&b.name, &b.arch)));
    let hashed = Hashed {
        schema_version: report.schema_version,
        os: &report.os,
        backend: report.backend,
        installed: &installed,
        updates: &updates,
        reboot: &report.reboot,
    };
    serde_json::to_vec(&hashed).expect("scan reports serialise")
}
