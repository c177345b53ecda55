//! The audit log against real files, a real unix datagram socket standing in for journald, and
//! real UDP and TCP syslog collectors on loopback.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use jiff::Timestamp;
use patchdeck_agent::audit::{
    journald_detected, Actor, AuditConfig, AuditEvent, AuditLog, FileMode, FsyncPolicy, JournaldMode, Outcome,
    SyslogConfig, SyslogTransport,
};
use patchdeck_agent::jobs::ManualClock;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn file_config(dir: &Path) -> AuditConfig {
    let mut c = AuditConfig::default();
    c.file.path = dir.join("audit.jsonl");
    c.journald.mode = JournaldMode::Off;
    c
}

fn open(config: &AuditConfig, clock: &Arc<ManualClock>) -> AuditLog {
    AuditLog::open(config, clock.clone()).unwrap()
}

fn peer() -> Actor {
    Actor::Peer {
        addr: "127.0.0.2:50412".parse().unwrap(),
        cn: Some("manager.example".into()),
        serial: Some("01ab".into()),
        fingerprint: Some("9f86d081884c7d65".into()),
    }
}

fn request(id: &str, path: &str, status: u16) -> AuditEvent {
    AuditEvent::Request {
        actor: peer(),
        request_id: id.into(),
        method: "POST".into(),
        path: path.into(),
        status,
        duration_ms: 12,
    }
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn gunzip_lines(path: &Path) -> Vec<String> {
    let mut s = String::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap()).read_to_string(&mut s).unwrap();
    assert!(s.is_empty() || s.ends_with('\n'), "last line of {} is cut", path.display());
    s.lines().map(str::to_owned).collect()
}

fn request_ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["request_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn dir_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

#[test]
fn every_kind_is_written_as_one_json_line_in_schema_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T14:05:09.123456789Z")));
    let log = open(&file_config(dir.path()), &clock);
    log.record(request("req-1", "/api/v1/packages?token=s3cret&x=1", 200));
    log.record(request("req-2", "/api/v1/jobs", 403));
    log.record(AuditEvent::PackageOperation {
        actor: peer(),
        job_id: "job-7".into(),
        operation: "install".into(),
        packages: vec!["curl".into(), "openssl=3.0.2".into()],
        outcome: Outcome::Failure,
        error: Some("dpkg: error\nexit 100".into()),
    });
    log.record(AuditEvent::AuthFailure {
        actor: Actor::addr("[::1]:4000".parse().unwrap()),
        reason: "certificate revoked".into(),
    });
    log.record(AuditEvent::AllowlistDenied { addr: "10.1.2.3:5555".parse().unwrap() });
    log.record(AuditEvent::ConfigReload {
        source: "/etc/patchdeck/agent.yaml".into(),
        outcome: Outcome::Success,
        error: None,
    });
    log.record(AuditEvent::CertificateReload { outcome: Outcome::Failure, error: Some("ca.pem: \"bad\" PEM".into()) });
    log.flush();

    let path = dir.path().join("audit.jsonl");
    let peer = r#""actor":{"kind":"peer","addr":"127.0.0.2:50412","cn":"manager.example","serial":"01ab","fingerprint":"9f86d081884c7d65"}"#;
    let t = r#""ts":"2026-11-23T14:05:09.123456Z""#;
    assert_eq!(
        lines(&path),
        [
            format!(
                r#"{{{t},"event":"request",{peer},"outcome":"success","request_id":"req-1","method":"POST","path":"/api/v1/packages","status":200,"duration_ms":12}}"#
            ),
            format!(
                r#"{{{t},"event":"request",{peer},"outcome":"denied","request_id":"req-2","method":"POST","path":"/api/v1/jobs","status":403,"duration_ms":12}}"#
            ),
            format!(
                r#"{{{t},"event":"package_operation",{peer},"outcome":"failure","job_id":"job-7","operation":"install","packages":["curl","openssl=3.0.2"],"error":"dpkg: error\nexit 100"}}"#
            ),
            format!(
                r#"{{{t},"event":"auth_failure","actor":{{"kind":"peer","addr":"[::1]:4000"}},"outcome":"denied","reason":"certificate revoked"}}"#
            ),
            format!(
                r#"{{{t},"event":"allowlist_denied","actor":{{"kind":"peer","addr":"10.1.2.3:5555"}},"outcome":"denied"}}"#
            ),
            format!(
                r#"{{{t},"event":"config_reload","actor":{{"kind":"agent"}},"outcome":"success","source":"/etc/patchdeck/agent.yaml"}}"#
            ),
            format!(
                r#"{{{t},"event":"certificate_reload","actor":{{"kind":"agent"}},"outcome":"failure","error":"ca.pem: \"bad\" PEM"}}"#
            ),
        ]
    );
    assert!(!fs::read_to_string(&path).unwrap().contains("s3cret"));
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let stats = log.stats();
    assert_eq!((stats.recorded, stats.dropped, stats.sink_errors), (7, 0, 0));
}

#[test]
fn mode_0640_is_applied_and_existing_lines_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let old = r#"{"ts":"2026-11-23T01:00:00.000000Z","event":"config_reload","actor":{"kind":"agent"},"outcome":"success","source":"x"}"#;
    fs::write(&path, format!("{old}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut config = file_config(dir.path());
    config.file.mode = FileMode::GroupRead;
    config.file.fsync = FsyncPolicy::Always;
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T14:00:00Z")));
    let log = open(&config, &clock);
    log.record(request("r", "/", 200));
    log.flush();
    let got = lines(&path);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], old);
    assert_eq!(request_ids(&got[1..]), ["r"]);
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
    assert_eq!(dir_names(dir.path()), BTreeSet::from(["audit.jsonl".to_owned()]));
}

#[test]
fn rotation_at_utc_midnight_loses_and_duplicates_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T23:59:59.900Z")));
    let log = open(&file_config(dir.path()), &clock);
    // A second thread records at full speed while the clock crosses midnight under it.
    let writer = {
        let log = log.clone();
        let clock = clock.clone();
        thread::spawn(move || {
            for i in 0..400 {
                if i == 200 {
                    clock.set(ts("2026-11-24T00:00:00Z"));
                }
                log.record(request(&format!("{i:03}"), "/", 200));
            }
        })
    };
    writer.join().unwrap();
    log.flush();

    let rotated = dir.path().join("audit-2026-11-23.jsonl.gz");
    assert_eq!(
        dir_names(dir.path()),
        BTreeSet::from(["audit.jsonl".to_owned(), "audit-2026-11-23.jsonl.gz".to_owned()])
    );
    let before = gunzip_lines(&rotated);
    let after = lines(&dir.path().join("audit.jsonl"));
    let want: Vec<String> = (0..400).map(|i| format!("{i:03}")).collect();
    assert_eq!(request_ids(&before), want[..200]);
    assert_eq!(request_ids(&after), want[200..]);
    assert!(before.iter().all(|l| l.contains(r#""ts":"2026-11-23T23:59:59.900000Z""#)));
    assert!(after.iter().all(|l| l.contains(r#""ts":"2026-11-24T00:00:00.000000Z""#)));
    assert_eq!(fs::metadata(&rotated).unwrap().permissions().mode() & 0o777, 0o600);

    // With no traffic at all, the next midnight still rotates (here on the flush; in production
    // within a second).
    clock.set(ts("2026-11-25T00:00:00.5Z"));
    log.flush();
    assert_eq!(request_ids(&gunzip_lines(&dir.path().join("audit-2026-11-24.jsonl.gz"))), want[200..]);
    assert_eq!(fs::read_to_string(dir.path().join("audit.jsonl")).unwrap(), "");
    log.record(request("next", "/", 200));
    log.flush();
    assert_eq!(request_ids(&lines(&dir.path().join("audit.jsonl"))), ["next"]);
    assert!(!dir.path().join("audit-2026-11-25.jsonl.gz").exists());
    assert_eq!(log.stats().dropped, 0);
}

#[test]
fn live_file_of_an_earlier_day_is_rotated_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let old = r#"{"ts":"2026-11-20T08:00:00.000000Z","event":"config_reload","actor":{"kind":"agent"},"outcome":"success","source":"x"}"#;
    fs::write(&path, format!("{old}\n{old}\n")).unwrap();
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T10:00:00Z")));
    let log = open(&file_config(dir.path()), &clock);
    log.record(request("new", "/", 200));
    log.flush();
    assert_eq!(gunzip_lines(&dir.path().join("audit-2026-11-20.jsonl.gz")), [old, old]);
    assert_eq!(request_ids(&lines(&path)), ["new"]);
}

#[test]
fn retention_deletes_rotated_files_past_the_limit_and_finishes_interrupted_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gz = |name: &str, line: &str| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(fs::File::create(d.join(name)).unwrap(), flate2::Compression::fast());
        e.write_all(line.as_bytes()).unwrap();
        e.finish().unwrap();
    };
    gz("audit-2026-10-01.jsonl.gz", "{}\n");
    gz("audit-2026-10-23.jsonl.gz", "{}\n");
    gz("audit-2026-10-23.1.jsonl.gz", "{}\n");
    gz("audit-2026-10-24.jsonl.gz", "{}\n");
    gz("audit-2026-11-22.jsonl.gz", "{}\n");
    // A rotation whose compression was interrupted: plain file and a partial .tmp.
    fs::write(d.join("audit-2026-11-21.jsonl"), "{\"a\":1}\n").unwrap();
    fs::write(d.join("audit-2026-11-21.jsonl.gz.tmp"), "partial").unwrap();
    // Not ours: left alone whatever their age.
    fs::write(d.join("other-2026-01-01.jsonl.gz"), "x").unwrap();
    fs::write(d.join("audit-notes.txt"), "x").unwrap();

    let clock = Arc::new(ManualClock::new(ts("2026-11-23T12:00:00Z")));
    let mut config = file_config(d);
    config.file.retention_days = 30;
    let log = open(&config, &clock);
    log.flush();
    let expect = |names: &[&str]| BTreeSet::from_iter(names.iter().map(|s| (*s).to_owned()));
    assert_eq!(
        dir_names(d),
        expect(&[
            "audit.jsonl",
            "audit-2026-10-24.jsonl.gz",
            "audit-2026-11-21.jsonl.gz",
            "audit-2026-11-22.jsonl.gz",
            "other-2026-01-01.jsonl.gz",
            "audit-notes.txt",
        ])
    );
    assert_eq!(gunzip_lines(&d.join("audit-2026-11-21.jsonl.gz")), ["{\"a\":1}"]);

    // A rotation sweeps too: on 2026-11-25 the oldest kept day is 2026-10-26.
    log.record(request("a", "/", 200));
    clock.set(ts("2026-11-25T00:00:01Z"));
    log.record(request("b", "/", 200));
    log.flush();
    assert_eq!(
        dir_names(d),
        expect(&[
            "audit.jsonl",
            "audit-2026-11-21.jsonl.gz",
            "audit-2026-11-22.jsonl.gz",
            "audit-2026-11-23.jsonl.gz",
            "other-2026-01-01.jsonl.gz",
            "audit-notes.txt",
        ])
    );
}

#[test]
fn concurrent_writers_produce_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T12:00:00Z")));
    let mut config = file_config(dir.path());
    config.queue_capacity = 8192;
    let log = open(&config, &clock);
    // A second, independent log on the same file (a second agent by mistake): O_APPEND keeps
    // each line whole even across processes' writers.
    let other = open(&config, &clock);
    let long = "x".repeat(3000);
    let mut threads = Vec::new();
    for t in 0..8 {
        let log = if t < 6 { log.clone() } else { other.clone() };
        let long = long.clone();
        threads.push(thread::spawn(move || {
            for i in 0..500 {
                log.record(request(&format!("{t}-{i}"), &format!("/{long}"), 200));
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    log.flush();
    other.flush();
    let content = fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(content.ends_with('\n'));
    let got: Vec<String> = content.lines().map(str::to_owned).collect();
    let ids = request_ids(&got);
    let unique: BTreeSet<_> = ids.iter().cloned().collect();
    let want: BTreeSet<_> = (0..8).flat_map(|t| (0..500).map(move |i| format!("{t}-{i}"))).collect();
    assert_eq!(ids.len(), 4000);
    assert_eq!(unique, want);
    // Each thread's own events stay in order.
    for t in 0..8 {
        let mine: Vec<u32> =
            ids.iter().filter_map(|id| id.strip_prefix(&format!("{t}-"))).map(|i| i.parse().unwrap()).collect();
        assert_eq!(mine, (0..500).collect::<Vec<_>>());
    }
    assert_eq!(log.stats().dropped + other.stats().dropped, 0);
}

#[test]
fn a_full_queue_drops_counts_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T12:00:00Z")));
    let mut config = file_config(dir.path());
    config.queue_capacity = 4;
    let log = open(&config, &clock);
    let guard = log.pause();
    for i in 0..10 {
        log.record(request(&i.to_string(), "/", 200));
    }
    let stats = log.stats();
    assert_eq!((stats.recorded, stats.dropped), (4, 6));
    drop(guard);
    log.flush();
    let got = lines(&dir.path().join("audit.jsonl"));
    assert_eq!(request_ids(&got[..4]), ["0", "1", "2", "3"]);
    assert_eq!(
        got[4..],
        [
            r#"{"ts":"2026-11-23T12:00:00.000000Z","event":"audit_dropped","actor":{"kind":"agent"},"outcome":"failure","count":6}"#
        ]
    );
    // Reported once: later flushes add nothing.
    log.flush();
    assert_eq!(lines(&dir.path().join("audit.jsonl")).len(), 5);
    assert_eq!(log.stats().dropped, 6);
}

/// Parses journald's native protocol: `NAME=value\n`, or `NAME\n` + u64 LE length + bytes + `\n`.
fn parse_journal(mut buf: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let nl = buf.iter().position(|&b| b == b'\n').expect("field ends with a newline");
        let line = &buf[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8(line[..eq].to_vec()).unwrap(),
                String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
            ));
            buf = &buf[nl + 1..];
        } else {
            let name = String::from_utf8(line.to_vec()).unwrap();
            let rest = &buf[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            let value = String::from_utf8(rest[8..8 + len].to_vec()).unwrap();
            assert_eq!(rest[8 + len], b'\n');
            out.push((name, value));
            buf = &rest[9 + len..];
        }
    }
    out
}

#[test]
fn journald_gets_native_protocol_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("journal.socket");
    let journal = UnixDatagram::bind(&socket_path).unwrap();
    journal.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut config = AuditConfig::default();
    config.file.enabled = false;
    config.journald.mode = JournaldMode::On;
    config.journald.socket = socket_path.clone();
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T14:05:09Z")));
    let log = open(&config, &clock);
    log.record(AuditEvent::PackageOperation {
        actor: peer(),
        job_id: "job-7".into(),
        operation: "install".into(),
        packages: vec!["curl".into(), "jq".into()],
        outcome: Outcome::Failure,
        error: Some("dpkg: error\nexit 100".into()),
    });
    log.record(AuditEvent::AllowlistDenied { addr: "10.1.2.3:5555".parse().unwrap() });
    log.flush();

    let mut buf = vec![0; 65536];
    let n = journal.recv(&mut buf).unwrap();
    // The multi-line value really uses the binary form.
    let raw = &buf[..n];
    let needle = b"PATCHDECK_ERROR\n\x14\0\0\0\0\0\0\0dpkg: error\nexit 100\n";
    assert!(raw.windows(needle.len()).any(|w| w == needle));
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        parse_journal(raw),
        [
            s("MESSAGE", "package_operation failure by manager.example (127.0.0.2:50412): job job-7 install [curl jq]"),
            s("PRIORITY", "4"),
            s("SYSLOG_IDENTIFIER", "patchdeck-agent"),
            s("PATCHDECK_TS", "2026-11-23T14:05:09.000000Z"),
            s("PATCHDECK_EVENT", "package_operation"),
            s("PATCHDECK_OUTCOME", "failure"),
            s("PATCHDECK_ACTOR_KIND", "peer"),
            s("PATCHDECK_ACTOR_ADDR", "127.0.0.2:50412"),
            s("PATCHDECK_ACTOR_CN", "manager.example"),
            s("PATCHDECK_ACTOR_SERIAL", "01ab"),
            s("PATCHDECK_ACTOR_FINGERPRINT", "9f86d081884c7d65"),
            s("PATCHDECK_JOB_ID", "job-7"),
            s("PATCHDECK_OPERATION", "install"),
            s("PATCHDECK_PACKAGES", "curl jq"),
            s("PATCHDECK_ERROR", "dpkg: error\nexit 100"),
        ]
    );
    let n = journal.recv(&mut buf).unwrap();
    let fields: BTreeMap<String, String> = parse_journal(&buf[..n]).into_iter().collect();
    assert_eq!(fields["PATCHDECK_EVENT"], "allowlist_denied");
    assert_eq!(fields["PRIORITY"], "5");
    assert_eq!(fields["PATCHDECK_ACTOR_ADDR"], "10.1.2.3:5555");
    assert_eq!(fields["MESSAGE"], "allowlist_denied denied by 10.1.2.3:5555: not on the allow-list");
    assert_eq!(log.stats().sink_errors, 0);
}

#[test]
fn journald_auto_needs_systemd_and_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("socket");
    let env = |set: &'static str| move |v: &str| (v == set).then(|| "8:1234".into());
    let none = |_: &str| None;
    assert!(!journald_detected(env("JOURNAL_STREAM"), &socket), "no socket");
    let _bound = UnixDatagram::bind(&socket).unwrap();
    assert!(journald_detected(env("JOURNAL_STREAM"), &socket));
    assert!(journald_detected(env("INVOCATION_ID"), &socket));
    assert!(!journald_detected(none, &socket), "not under systemd");
    assert!(!journald_detected(env("HOME"), &socket));
}

fn syslog_config(addr: SocketAddr, transport: SyslogTransport) -> AuditConfig {
    let mut config = AuditConfig::default();
    config.file.enabled = false;
    config.journald.mode = JournaldMode::Off;
    config.syslog =
        Some(SyslogConfig { address: addr.to_string(), transport, facility: 13, hostname: Some("host-1".into()) });
    config
}

fn tricky_request() -> AuditEvent {
    request("req-\"9\"", "/api/v1/x]y\\z?secret=1", 500)
}

fn expected_syslog(pid: u32) -> [String; 2] {
    let actor = r#"actor_kind="peer" actor_addr="127.0.0.2:50412" actor_cn="manager.example" actor_serial="01ab" actor_fingerprint="9f86d081884c7d65""#;
    [
        format!(
            r#"<108>1 2026-11-23T14:05:09.250000Z host-1 patchdeck-agent {pid} request [patchdeck@32473 ts="2026-11-23T14:05:09.250000Z" event="request" outcome="failure" {actor} request_id="req-\"9\"" method="POST" path="/api/v1/x\]y\\z" status="500" duration_ms="12"] request failure by manager.example (127.0.0.2:50412): POST /api/v1/x]y\z -> 500 in 12 ms"#
        ),
        format!(
            r#"<110>1 2026-11-23T14:05:09.250000Z host-1 patchdeck-agent {pid} config_reload [patchdeck@32473 ts="2026-11-23T14:05:09.250000Z" event="config_reload" outcome="success" actor_kind="agent" source="/etc/patchdeck/agent.yaml"] config_reload success by agent: configuration reload from /etc/patchdeck/agent.yaml"#
        ),
    ]
}

fn reload() -> AuditEvent {
    AuditEvent::ConfigReload { source: "/etc/patchdeck/agent.yaml".into(), outcome: Outcome::Success, error: None }
}

#[test]
fn syslog_over_udp_sends_rfc5424_with_escaped_structured_data() {
    let collector = UdpSocket::bind("127.0.0.1:0").unwrap();
    collector.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T14:05:09.25Z")));
    let log = open(&syslog_config(collector.local_addr().unwrap(), SyslogTransport::Udp), &clock);
    log.record(tricky_request());
    log.record(reload());
    log.flush();
    let mut buf = vec![0; 65536];
    let mut got = Vec::new();
    for _ in 0..2 {
        let n = collector.recv(&mut buf).unwrap();
        got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
    }
    assert_eq!(got, expected_syslog(std::process::id()));
    assert_eq!(log.stats().sink_errors, 0);
}

#[test]
fn syslog_over_tcp_uses_octet_counting() {
    let collector = TcpListener::bind("127.0.0.1:0").unwrap();
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T14:05:09.25Z")));
    let log = open(&syslog_config(collector.local_addr().unwrap(), SyslogTransport::Tcp), &clock);
    log.record(tricky_request());
    log.record(reload());
    log.flush();
    let (stream, _) = collector.accept().unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(stream);
    let mut got = Vec::new();
    for _ in 0..2 {
        let mut len = Vec::new();
        reader.read_until(b' ', &mut len).unwrap();
        let len: usize = std::str::from_utf8(&len[..len.len() - 1]).unwrap().parse().unwrap();
        let mut msg = vec![0; len];
        reader.read_exact(&mut msg).unwrap();
        got.push(String::from_utf8(msg).unwrap());
    }
    assert_eq!(got, expected_syslog(std::process::id()));
    assert_eq!(log.stats().sink_errors, 0);
}

#[test]
fn a_failing_sink_is_counted_and_the_others_still_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = file_config(dir.path());
    // Nobody listens on this socket path: every journald write fails.
    config.journald.mode = JournaldMode::On;
    config.journald.socket = dir.path().join("missing.socket");
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T12:00:00Z")));
    let log = open(&config, &clock);
    log.record(request("a", "/", 200));
    log.record(request("b", "/", 200));
    log.flush();
    assert_eq!(request_ids(&lines(&dir.path().join("audit.jsonl"))), ["a", "b"]);
    assert_eq!(log.stats().sink_errors, 2);
}

#[test]
fn config_defaults_and_strictness() {
    let c: AuditConfig = serde_yaml_ng::from_str("{}").unwrap();
    assert_eq!(c, AuditConfig::default());
    assert!(c.enabled);
    assert_eq!(c.file.path, PathBuf::from("/var/log/patchdeck/audit.jsonl"));
    assert_eq!(c.file.retention_days, 30);
    assert_eq!(c.file.mode, FileMode::OwnerOnly);
    assert_eq!(c.file.fsync, FsyncPolicy::Batch);
    assert_eq!(c.journald.mode, JournaldMode::Auto);
    assert_eq!(c.syslog, None);

    let c: AuditConfig = serde_yaml_ng::from_str(
        "file: {path: /srv/audit.jsonl, mode: \"0640\", fsync: always, retention_days: 7}\n\
         journald: {mode: off}\n\
         syslog: {address: 'logs.example:6514', transport: tcp}\n",
    )
    .unwrap();
    assert_eq!(c.file.mode, FileMode::GroupRead);
    assert_eq!(c.file.retention_days, 7);
    let s = c.syslog.as_ref().unwrap();
    assert_eq!((s.transport, s.facility, s.hostname.as_deref()), (SyslogTransport::Tcp, 13, None));
    c.validate().unwrap();

    let err = serde_yaml_ng::from_str::<AuditConfig>("file: {pth: /x}").unwrap_err().to_string();
    assert!(err.contains("unknown field `pth`"), "{err}");
    assert!(serde_yaml_ng::from_str::<AuditConfig>("file: {mode: 0644}").is_err());

    let invalid = |yaml: &str, needle: &str| {
        let c: AuditConfig = serde_yaml_ng::from_str(yaml).unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(needle), "{yaml}: {err}");
    };
    invalid("file: {path: relative.jsonl}", "audit.file.path");
    invalid("file: {retention_days: 0}", "audit.file.retention_days");
    invalid("queue_capacity: 0", "audit.queue_capacity");
    invalid("syslog: {address: nohost}", "audit.syslog.address");
    invalid("syslog: {address: 'h:1', facility: 24}", "audit.syslog.facility");
    invalid("syslog: {address: 'h:1', hostname: 'a b'}", "audit.syslog.hostname");
}

#[test]
fn disabled_log_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = file_config(dir.path());
    config.enabled = false;
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T12:00:00Z")));
    let log = open(&config, &clock);
    log.record(request("a", "/", 200));
    log.flush();
    assert!(dir_names(dir.path()).is_empty());
    assert_eq!(log.stats().recorded, 0);
}

#[test]
fn a_syslog_collector_that_is_down_does_not_stop_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut config = syslog_config(port, SyslogTransport::Tcp);
    config.file = file_config(dir.path()).file;
    let clock = Arc::new(ManualClock::new(ts("2026-11-23T12:00:00Z")));
    let log = open(&config, &clock);
    log.record(request("a", "/", 200));
    log.record(request("b", "/", 200));
    log.flush();
    assert_eq!(request_ids(&lines(&dir.path().join("audit.jsonl"))), ["a", "b"]);
    // Refused once, then skipped (not retried) while the collector is down.
    assert_eq!(log.stats().sink_errors, 2);
}
