//! Health checks against real services on loopback: a TCP listener, an HTTP server (axum over
//! a real socket), a port nobody listens on, and units asked through a script standing in for
//! `systemctl is-active`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use patchdeck_agent::health::{run_checks, HealthSettings};
use patchdeck_proto::agent::Probe;
use patchdeck_proto::orchestration::{CheckKind, CheckResult};

/// A `systemctl is-active` stand-in: `nginx.service` and `ssh.socket` are active, anything
/// else is inactive; it records its arguments.
fn unit_script(dir: &std::path::Path) -> HealthSettings {
    let script = dir.join("is-active");
    let args = dir.join("args");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\ncase \"$2\" in\n  nginx.service|ssh.socket) echo active; exit 0;;\n  \
             crashed.service) echo failed; exit 3;;\n  *) echo inactive; exit 3;;\nesac\n",
            args.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    HealthSettings { unit_command: vec![script.display().to_string()], ca_cert: None }
}

/// An HTTP server on 127.0.0.1 with `/ok` (200), `/empty` (204), `/down` (503), `/slow` (3 s).
async fn http_server() -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route("/down", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "maintenance") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A port on 127.0.0.1 that nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn find<'a>(results: &'a [CheckResult], target: &str) -> &'a CheckResult {
    results.iter().find(|r| r.target == target).unwrap_or_else(|| panic!("no result for {target}: {results:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn units_and_probes_pass_and_fail_for_real_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let settings = unit_script(dir.path());
    let web = http_server().await;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap().to_string();
    let closed = format!("127.0.0.1:{}", closed_port());
    let http = |path: &str, expect: Option<u16>, timeout_secs: u64| Probe::Http {
        url: format!("http://{web}{path}"),
        expect_status: expect,
        timeout_secs,
    };
    let units = vec!["nginx".to_owned(), "ssh.socket".to_owned(), "postgresql".to_owned(), "crashed".to_owned()];
    let probes = vec![
        http("/ok", None, 5),
        http("/empty", Some(204), 5),
        http("/down", None, 5),
        http("/ok", Some(204), 5),
        http("/slow", None, 1),
        Probe::Tcp { address: tcp_addr.clone(), timeout_secs: 5 },
        Probe::Tcp { address: closed.clone(), timeout_secs: 5 },
        Probe::Http { url: format!("http://{closed}/health"), expect_status: None, timeout_secs: 5 },
    ];
    let results = run_checks(&settings, &units, &probes).await.unwrap();
    assert_eq!(results.len(), 12, "one result per check");
    let kinds: Vec<CheckKind> = results.iter().map(|r| r.kind).collect();
    assert_eq!(&kinds[..4], [CheckKind::Unit; 4], "units first, in the order asked");

    let unit = |name: &str| find(&results, name).clone();
    assert_eq!((unit("nginx.service").passed, unit("nginx.service").detail.as_str()), (true, "active"));
    assert!(unit("ssh.socket").passed);
    assert_eq!((unit("postgresql.service").passed, unit("postgresql.service").detail.as_str()), (false, "inactive"));
    assert_eq!(unit("crashed.service").detail, "failed");
    let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
    assert!(args.lines().any(|l| l == "-- nginx.service"), "the unit follows `--`: {args}");

    let probe = |i: usize| &results[4 + i];
    assert!(probe(0).passed && probe(0).detail == "HTTP 200 OK", "{:?}", probe(0));
    assert!(probe(1).passed && probe(1).detail == "HTTP 204 No Content", "{:?}", probe(1));
    assert!(!probe(2).passed && probe(2).detail == "expected 2xx, got HTTP 503 Service Unavailable", "{:?}", probe(2));
    assert!(!probe(3).passed && probe(3).detail == "expected HTTP 204, got HTTP 200 OK", "{:?}", probe(3));
    assert!(!probe(4).passed && probe(4).detail == "no answer within 1 s", "{:?}", probe(4));
    assert!(probe(5).passed && probe(5).detail.starts_with(&format!("connected to {tcp_addr}")), "{:?}", probe(5));
    assert!(!probe(6).passed && probe(6).detail.contains("refused"), "{:?}", probe(6));
    assert_eq!(probe(6).target, closed);
    assert!(!probe(7).passed && !probe(7).detail.is_empty(), "{:?}", probe(7));
    drop(tcp);
}

#[tokio::test]
async fn https_without_a_usable_ca_bundle_fails_and_bad_lists_are_refused() {
    let settings = HealthSettings {
        unit_command: vec!["systemctl".into(), "is-active".into()],
        ca_cert: Some("/nonexistent/ca.pem".into()),
    };
    let https = Probe::Http { url: "https://127.0.0.1:1/".into(), expect_status: None, timeout_secs: 2 };
    let results = run_checks(&settings, &[], &[https]).await.unwrap();
    assert!(!results[0].passed);
    assert!(results[0].detail.contains("/nonexistent/ca.pem"), "{:?}", results[0]);

    let err = run_checks(&settings, &["bad name".into()], &[]).await.unwrap_err();
    assert_eq!(err.field, "units[0]");
    let err = run_checks(&settings, &[], &[]).await.unwrap_err();
    assert_eq!(err.field, "units");
    let ftp = Probe::Http { url: "ftp://127.0.0.1/".into(), expect_status: None, timeout_secs: 2 };
    assert_eq!(run_checks(&settings, &[], &[ftp]).await.unwrap_err().field, "probes[0].url");
}
