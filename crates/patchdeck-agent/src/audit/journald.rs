//! journald's native protocol: one datagram per entry on `/run/systemd/journal/socket`.
//!
//! Each field is `NAME=value\n`; a value that contains a newline is sent as `NAME\n`, its length
//! as a little-endian u64, the bytes, then `\n`.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::event::{actor_fields, format_ts, Stamped};
use super::Outcome;

/// Whether `auto` turns journald on: the agent runs under systemd (systemd sets `JOURNAL_STREAM`
/// for a unit whose output goes to the journal and `INVOCATION_ID` for every unit) and the
/// native socket exists.
pub fn journald_detected(env: impl Fn(&str) -> Option<OsString>, socket: &Path) -> bool {
    let under_systemd = ["JOURNAL_STREAM", "INVOCATION_ID"].iter().any(|v| env(v).is_some_and(|s| !s.is_empty()));
    under_systemd && socket.exists()
}

#[derive(Debug)]
pub(crate) struct JournaldSink {
    socket: UnixDatagram,
    path: PathBuf,
}

impl JournaldSink {
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        Ok(JournaldSink { socket: UnixDatagram::unbound()?, path: path.to_path_buf() })
    }

    pub(crate) fn write(&self, rec: &Stamped) -> io::Result<()> {
        let entry = encode(rec);
        self.socket.send_to(&entry, &self.path).map(|_| ())
    }
}

fn priority(rec: &Stamped) -> u8 {
    match (rec.event.kind(), rec.event.outcome()) {
        ("audit_dropped", _) => 3,
        (_, Outcome::Success) => 6,
        (_, Outcome::Denied) => 5,
        (_, Outcome::Failure) => 4,
    }
}

fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    } else {
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'\n');
}

/// The entry's bytes. Field names: `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, then
/// `PATCHDECK_TS`, `PATCHDECK_EVENT`, `PATCHDECK_OUTCOME`, `PATCHDECK_ACTOR_<KEY>` and
/// `PATCHDECK_<FIELD>` (upper case; lists space-separated).
pub(crate) fn encode(rec: &Stamped) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    field(&mut out, "MESSAGE", &rec.summary());
    field(&mut out, "PRIORITY", &priority(rec).to_string());
    field(&mut out, "SYSLOG_IDENTIFIER", "patchdeck-agent");
    field(&mut out, "PATCHDECK_TS", &format_ts(rec.ts));
    field(&mut out, "PATCHDECK_EVENT", rec.event.kind());
    field(&mut out, "PATCHDECK_OUTCOME", rec.event.outcome().as_str());
    for (k, v) in actor_fields(&rec.event.actor()) {
        field(&mut out, &format!("PATCHDECK_ACTOR_{}", k.to_ascii_uppercase()), &v);
    }
    for (k, v) in rec.event.fields() {
        field(&mut out, &format!("PATCHDECK_{}", k.to_ascii_uppercase()), &v.to_text());
    }
    out
}
