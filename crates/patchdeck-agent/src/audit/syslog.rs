//! Remote syslog: RFC 5424 messages over UDP (RFC 5426) or TCP with octet counting (RFC 6587).
//!
//! ```text
//! <PRI>1 TIMESTAMP HOSTNAME patchdeck-agent PROCID EVENT [patchdeck@32473 ts="…" event="…" …] SUMMARY
//! ```
//!
//! The structured-data element carries the same names as the JSON schema, the actor flattened as
//! `actor_kind`, `actor_addr`, … In param values `"`, `\` and `]` are escaped with `\`
//! (RFC 5424 §6.3.3). MSG is UTF-8 without a BOM.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use super::config::{SyslogConfig, SyslogTransport};
use super::event::{actor_fields, format_ts, Stamped};
use super::Outcome;

/// The SD-ID. 32473 is the private enterprise number that RFC 5612 reserves for documentation;
/// it stays until Patchdeck has its own.
pub const SD_ID: &str = "patchdeck@32473";

const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed TCP connect, messages fail at once (counted as sink errors) for this long, so
/// that a collector that is down does not hold the writer for a timeout on every event.
const RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Conn {
    Udp(UdpSocket),
    Tcp { stream: Option<TcpStream>, down_until: Option<Instant> },
}

#[derive(Debug)]
pub(crate) struct SyslogSink {
    address: String,
    hostname: String,
    facility: u8,
    pid: u32,
    conn: Conn,
}

impl SyslogSink {
    pub(crate) fn open(cfg: &SyslogConfig) -> io::Result<Self> {
        let hostname = match &cfg.hostname {
            Some(h) => h.clone(),
            None => {
                let n = rustix::system::uname().nodename().to_string_lossy().into_owned();
                if n.is_empty() {
                    "-".to_owned()
                } else {
                    n
                }
            }
        };
        let conn = match cfg.transport {
            SyslogTransport::Udp => {
                let target = resolve(&cfg.address)?;
                let bind: SocketAddr = if target.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
                let sock = UdpSocket::bind(bind)?;
                sock.connect(target)?;
                Conn::Udp(sock)
            }
            SyslogTransport::Tcp => Conn::Tcp { stream: None, down_until: None },
        };
        Ok(SyslogSink { address: cfg.address.clone(), hostname, facility: cfg.facility, pid: std::process::id(), conn })
    }

    pub(crate) fn write(&mut self, rec: &Stamped) -> io::Result<()> {
        let msg = format_message(rec, self.facility, &self.hostname, self.pid);
        match &mut self.conn {
            Conn::Udp(sock) => sock.send(msg.as_bytes()).map(|_| ()),
            Conn::Tcp { stream, down_until } => {
                let frame = format!("{} {msg}", msg.len());
                // One reconnect per message: a collector that restarted gets the message on a
                // fresh connection.
                for attempt in 0..2 {
                    if stream.is_none() {
                        if down_until.is_some_and(|t| Instant::now() < t) {
                            return Err(io::Error::new(io::ErrorKind::NotConnected, "syslog collector unreachable"));
                        }
                        let s = match connect(&self.address) {
                            Ok(s) => s,
                            Err(e) => {
                                *down_until = Some(Instant::now() + RETRY_AFTER);
                                return Err(e);
                            }
                        };
                        *down_until = None;
                        *stream = Some(s);
                    }
                    let Some(s) = stream.as_mut() else { continue };
                    match s.write_all(frame.as_bytes()) {
                        Ok(()) => return Ok(()),
                        Err(e) => {
                            *stream = None;
                            if attempt == 1 {
                                return Err(e);
                            }
                        }
                    }
                }
                Ok(())
            }
        }
    }
}

fn connect(address: &str) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&resolve(address)?, IO_TIMEOUT)?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

fn resolve(address: &str) -> io::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{address}: no address")))
}

fn severity(rec: &Stamped) -> u8 {
    match (rec.event.kind(), rec.event.outcome()) {
        ("audit_dropped", _) => 3,
        (_, Outcome::Success) => 6,
        (_, Outcome::Denied) => 5,
        (_, Outcome::Failure) => 4,
    }
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped.
pub(crate) fn escape_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The RFC 5424 message (no framing).
pub(crate) fn format_message(rec: &Stamped, facility: u8, hostname: &str, pid: u32) -> String {
    let pri = u16::from(facility) * 8 + u16::from(severity(rec));
    let ts = format_ts(rec.ts);
    let mut sd =
        format!("[{SD_ID} ts=\"{ts}\" event=\"{}\" outcome=\"{}\"", rec.event.kind(), rec.event.outcome().as_str());
    for (k, v) in actor_fields(&rec.event.actor()) {
        sd.push_str(&format!(" actor_{k}=\"{}\"", escape_param(&v)));
    }
    for (k, v) in rec.event.fields() {
        sd.push_str(&format!(" {k}=\"{}\"", escape_param(&v.to_text())));
    }
    sd.push(']');
    format!("<{pri}>1 {ts} {hostname} patchdeck-agent {pid} {} {sd} {}", rec.event.kind(), rec.summary())
}
