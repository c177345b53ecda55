//! The `audit:` section of `agent.yaml`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::AuditError;

/// Where the audit log goes. Every field has a default, so `audit: {}` is a complete section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// `false` turns the whole audit log off.
    pub enabled: bool,
    /// How many events may wait for the writer. When it is full, further events are counted as
    /// dropped and reported in an `audit_dropped` event.
    pub queue_capacity: usize,
    pub file: FileConfig,
    pub journald: JournaldConfig,
    /// Remote syslog; off when absent.
    pub syslog: Option<SyslogConfig>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            queue_capacity: 4096,
            file: FileConfig::default(),
            journald: JournaldConfig::default(),
            syslog: None,
        }
    }
}

/// The JSON-lines file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub enabled: bool,
    /// The live file. Rotated files sit next to it as `<stem>-YYYY-MM-DD.<ext>.gz`.
    pub path: PathBuf,
    /// The live and rotated files' permissions.
    pub mode: FileMode,
    pub fsync: FsyncPolicy,
    /// Rotated files whose day is more than this many days before today are deleted.
    pub retention_days: u32,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            enabled: true,
            path: PathBuf::from("/var/log/patchdeck/audit.jsonl"),
            mode: FileMode::default(),
            fsync: FsyncPolicy::default(),
            retention_days: 30,
        }
    }
}

/// File permissions. Written as a string in YAML (`"0600"`): a bare `0600` is the decimal 600
/// in YAML 1.2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileMode {
    /// Owner only.
    #[default]
    #[serde(rename = "0600")]
    OwnerOnly,
    /// Owner, and the group for reading (a log shipper in the file's group).
    #[serde(rename = "0640")]
    GroupRead,
}

impl FileMode {
    pub fn bits(self) -> u32 {
        match self {
            FileMode::OwnerOnly => 0o600,
            FileMode::GroupRead => 0o640,
        }
    }
}

/// When the file is fsynced. Rotation and [`super::AuditLog::flush`] always fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every line: nothing acknowledged to the writer is lost in a power cut; slowest.
    Always,
    /// Whenever the writer has emptied its queue: a burst costs one fsync. A power cut can lose
    /// the last burst.
    #[default]
    Batch,
    /// Leave it to the kernel (about 30 s).
    Never,
}

/// journald, through its native protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournaldConfig {
    pub mode: JournaldMode,
    /// journald's native socket.
    pub socket: PathBuf,
}

impl Default for JournaldConfig {
    fn default() -> Self {
        JournaldConfig { mode: JournaldMode::default(), socket: PathBuf::from("/run/systemd/journal/socket") }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournaldMode {
    /// On when the agent runs under systemd (`JOURNAL_STREAM` or `INVOCATION_ID` is set) and the
    /// socket exists.
    #[default]
    Auto,
    On,
    Off,
}

/// Remote syslog, RFC 5424.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the collector.
    pub address: String,
    #[serde(default)]
    pub transport: SyslogTransport,
    /// The syslog facility number, 0–23. Default 13, "log audit".
    #[serde(default = "default_facility")]
    pub facility: u8,
    /// The HOSTNAME field; the kernel's node name when absent.
    #[serde(default)]
    pub hostname: Option<String>,
}

fn default_facility() -> u8 {
    13
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    /// RFC 5426: one message per datagram.
    #[default]
    Udp,
    /// RFC 6587 octet counting: `LEN SP MSG`.
    Tcp,
}

impl AuditConfig {
    /// Checks what serde cannot; names the field that is wrong.
    pub fn validate(&self) -> Result<(), AuditError> {
        let bad = |field: &str, why: &str| Err(AuditError::Config(format!("audit.{field}: {why}")));
        if self.queue_capacity == 0 {
            return bad("queue_capacity", "must be at least 1");
        }
        if self.file.enabled {
            if !self.file.path.is_absolute() {
                return bad("file.path", "must be an absolute path");
            }
            if self.file.path.file_name().is_none() {
                return bad("file.path", "must name a file");
            }
            if self.file.retention_days == 0 {
                return bad("file.retention_days", "must be at least 1");
            }
        }
        if let Some(s) = &self.syslog {
            if s.facility > 23 {
                return bad("syslog.facility", "must be 0 to 23");
            }
            if s.address.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
                return bad("syslog.address", "must be host:port");
            }
            if let Some(h) = &s.hostname {
                if h.is_empty() || h.len() > 255 || !h.bytes().all(|b| (33..=126).contains(&b)) {
                    return bad("syslog.hostname", "must be 1 to 255 printable ASCII characters");
                }
            }
        }
        Ok(())
    }
}
