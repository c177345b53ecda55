//! Pins the Linux_Patch_API contract (reference §3): every field name and
//! enum spelling we emit, every legacy spelling we accept, request
//! strictness, the §2.5 input rules, and round-trips of every type.
//!
//! A failure here means the wire format changed. The upstream lost reboots
//! to one drifted field name (`reboot` vs `allow_reboot`); change nothing
//! here without changing both ends on purpose.

use jiff::Timestamp;
use patchdeck_proto::lpa::jobs::{JobOperation, JobStatus};
use patchdeck_proto::lpa::validate::{glob_matches, validate_service_name, MAX_DELAY_SECONDS};
use patchdeck_proto::lpa::*;
use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use uuid::Uuid;

const REQ: &str = "0b5c5a4e-2a0f-4c1d-9a57-6f1e2d3c4b5a";
const JOB: &str = "7d9f4a12-3b6c-4e8d-a1f0-2c3b4d5e6f70";
const JOB2: &str = "c0ffee00-1234-4abc-8def-0123456789ab";

fn uuid(s: &str) -> Uuid {
    s.parse().unwrap()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn emit<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn parse<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

/// The error `parse_request` gives for `body`.
fn rejected<T: DeserializeOwned + Validate + std::fmt::Debug>(body: Value) -> ValidationError {
    parse_request::<T>(body.to_string().as_bytes()).expect_err("request should be refused")
}

/// The error `parse_query` gives for `query`.
fn rejected_query<T: DeserializeOwned + Validate + std::fmt::Debug>(query: &str) -> ValidationError {
    parse_query::<T>(query).expect_err("query should be refused")
}

fn assert_field(err: &ValidationError, field: &str, message_part: &str) {
    assert_eq!(err.field, field, "wrong field in {err}");
    assert!(err.message.contains(message_part), "message of {err} lacks {message_part:?}");
    assert!(err.to_string().starts_with(&format!("{field}: ")), "display of {err} does not start with the field");
}

fn package() -> Package {
    Package {
        name: "openssl".into(),
        version: "3.0.2-0ubuntu1.15".into(),
        status: PackageStatus::Upgradable,
        upgradable: true,
        latest_version: Some("3.0.2-0ubuntu1.18".into()),
        description: "Secure Sockets Layer toolkit".into(),
        dependencies: vec!["libc6".into(), "libssl3".into()],
        reverse_dependencies: vec!["ca-certificates".into()],
        install_date: Some("2026-01-02T03:04:05Z".into()),
        size_installed: Some("2133 KB".into()),
        cve_ids: vec!["CVE-2024-0727".into()],
    }
}

fn patch() -> Patch {
    Patch {
        name: "linux-image-generic".into(),
        current_version: "6.8.0-40.40".into(),
        available_version: "6.8.0-45.45".into(),
        severity: Severity::High,
        description: "Linux kernel image".into(),
        cve_ids: vec!["CVE-2024-1086".into()],
        requires_reboot: true,
    }
}

// ---------------------------------------------------------------- envelope

#[test]
fn envelope_success_is_exact() {
    let env = Envelope::ok(uuid(REQ), ts("2026-11-23T12:00:00Z"), JobDeleted::new(uuid(JOB)));
    assert_eq!(
        emit(&env),
        json!({
            "success": true,
            "request_id": REQ,
            "timestamp": "2026-11-23T12:00:00Z",
            "data": {"deleted": true, "job_id": JOB},
            "error": null
        })
    );
}

#[test]
fn envelope_error_is_exact() {
    let error = ApiError::new(ErrorCode::RebootBlocked, "Cannot reboot while 2 jobs are active")
        .with_details(json!({"active_jobs": 2}));
    let env = Envelope::<()>::err(uuid(REQ), ts("2026-11-23T12:00:00.5Z"), error);
    assert_eq!(
        emit(&env),
        json!({
            "success": false,
            "request_id": REQ,
            "timestamp": "2026-11-23T12:00:00.5Z",
            "data": null,
            "error": {
                "code": "REBOOT_BLOCKED",
                "message": "Cannot reboot while 2 jobs are active",
                "details": {"active_jobs": 2},
                "retryable": false
            }
        })
    );
    assert_eq!(env.error.as_ref().unwrap().http_status(), 409);
}

#[test]
fn envelope_parses_upstream_output() {
    // chrono's to_rfc3339 writes +00:00 and microseconds; an unknown code and
    // absent details/retryable must not fail the parse.
    let env: Envelope<Value> = parse(json!({
        "success": false,
        "request_id": REQ,
        "timestamp": "2026-11-23T12:00:00.123456+00:00",
        "data": null,
        "error": {"code": "SOMETHING_NEW", "message": "x"}
    }));
    assert_eq!(env.timestamp, ts("2026-11-23T12:00:00.123456Z"));
    let error = env.into_result().unwrap_err();
    assert_eq!(error.code, ErrorCode::UnknownError);
    assert_eq!(error.details, None);
    assert!(!error.retryable);
}

#[test]
fn envelope_refuses_a_bad_request_id_or_timestamp() {
    let bad_id =
        json!({"success": true, "request_id": "req-1", "timestamp": "2026-11-23T12:00:00Z", "data": 1, "error": null});
    let err = serde_json::from_value::<Envelope<u32>>(bad_id).unwrap_err().to_string();
    assert!(err.contains("UUID") || err.contains("uuid"), "{err}");
    let bad_ts = json!({"success": true, "request_id": REQ, "timestamp": "yesterday", "data": 1, "error": null});
    assert!(serde_json::from_value::<Envelope<u32>>(bad_ts).is_err());
}

#[test]
fn envelope_into_result() {
    let now = ts("2026-11-23T12:00:00Z");
    assert_eq!(Envelope::ok(uuid(REQ), now, 7u32).into_result(), Ok(7));
    let mut broken = Envelope::ok(uuid(REQ), now, 7u32);
    broken.data = None;
    assert_eq!(broken.into_result().unwrap_err().code, ErrorCode::UnknownError);
    let failed = Envelope::<u32>::err(uuid(REQ), now, ApiError::new(ErrorCode::QueueFull, "full"));
    let error = failed.into_result().unwrap_err();
    assert_eq!((error.code, error.retryable, error.http_status()), (ErrorCode::QueueFull, true, 429));
}

#[test]
fn validation_error_becomes_api_error_naming_the_field() {
    let err = rejected::<InstallRequest>(json!({"packages": [{"name": "-oFoo"}]}));
    let api = ApiError::from(err);
    assert_eq!(
        emit(&api),
        json!({
            "code": "VALIDATION_ERROR",
            "message": "packages[0].name: must start with a letter or digit (got '-')",
            "details": {"field": "packages[0].name"},
            "retryable": false
        })
    );
    assert_eq!(api.http_status(), 400);
}

// ---------------------------------------------------------------- error codes

/// Every code with its status and retryability: the whole table, literally.
const CODES: &[(&str, u16, bool)] = &[
    ("VALIDATION_ERROR", 400, false),
    ("PKG_NOT_FOUND", 404, false),
    ("PKG_MANAGER_ERROR", 500, true),
    ("QUEUE_FULL", 429, true),
    ("JOB_CREATE_ERROR", 500, true),
    ("SELF_UPDATE_IN_PROGRESS", 409, true),
    ("REBOOT_BLOCKED", 409, false),
    ("SYSTEM_INFO_ERROR", 500, true),
    ("INVALID_JOB_ID", 400, false),
    ("JOB_NOT_FOUND", 404, false),
    ("ROLLBACK_NOT_ALLOWED", 400, false),
    ("DELETE_NOT_ALLOWED", 409, false),
    ("JOB_DELETE_ERROR", 500, true),
    ("INVALID_SERVICE_NAME", 400, false),
    ("SERVICE_NOT_FOUND", 404, false),
    ("SERVICE_STATUS_ERROR", 500, true),
    ("FILE_INSTALL_DISABLED", 403, false),
    ("FILE_TOO_LARGE", 413, false),
    ("MISSING_FILE", 400, false),
    ("INVALID_FILENAME", 400, false),
    ("INVALID_EXTENSION", 400, false),
    ("STAGING_ERROR", 500, true),
    ("PACKAGE_DB_MUTATION_IN_PROGRESS", 409, false),
    ("ADMISSION_CLOSED", 409, true),
    ("AUTH_INVALID_CERT", 401, false),
    ("AUTH_CERT_EXPIRED", 401, false),
    ("AUTHZ_IP_DENIED", 403, false),
    ("JOB_TIMEOUT", 408, true),
    ("CONFIG_INVALID", 400, false),
    ("SERVICE_UNHEALTHY", 503, true),
    ("PKI_REPO_CONFIG_UNAVAILABLE", 404, false),
    ("PKG_DEPENDENCY_ERROR", 409, false),
    ("PKG_VERSION_CONFLICT", 409, false),
    ("PATCH_NOT_FOUND", 404, false),
    ("PATCH_APPLY_ERROR", 500, true),
    ("JOB_CANCELLED", 409, false),
    ("CONFIG_RELOAD_ERROR", 500, false),
    ("SYSTEM_REBOOT_ERROR", 500, false),
    ("INVALID_REQUEST", 400, false),
    ("RATE_LIMIT_EXCEEDED", 429, true),
    ("ENROLLMENT_DENIED", 403, false),
    ("ENROLLMENT_EXPIRED", 404, false),
    ("ENROLLMENT_TIMEOUT", 408, false),
    ("ENROLLMENT_RATE_LIMITED", 429, true),
    ("PKI_PROVISION_FAILED", 500, true),
    ("COMMAND_NOT_FOUND", 500, false),
    ("CACHE_REFRESH_ERROR", 500, true),
    ("NETWORK_ERROR", 500, true),
    ("GPG_ERROR", 500, false),
    ("DEPENDENCY_CONFLICT", 500, false),
    ("PERMISSION_DENIED", 500, false),
    ("REBOOT_ERROR", 500, false),
    ("TIMEOUT", 500, true),
    ("UNKNOWN_ERROR", 500, false),
    ("VERSION_UNAVAILABLE", 500, false),
    ("LOCKED", 500, true),
    ("UNSUPPORTED_OPERATION", 500, false),
    ("AGENT_RESTARTED", 500, false),
    ("VERIFICATION_FAILED", 500, false),
    ("EXCLUSIVE_IN_PROGRESS", 409, true),
    ("NOT_FOUND", 404, false),
    ("METHOD_NOT_ALLOWED", 405, false),
    ("PAYLOAD_TOO_LARGE", 413, false),
    ("INTERNAL_ERROR", 500, false),
];

#[test]
fn every_error_code_spelling_status_and_retryability() {
    assert_eq!(ErrorCode::ALL.len(), CODES.len(), "a code was added or removed: update CODES");
    for (code, &(wire, status, retryable)) in ErrorCode::ALL.iter().zip(CODES) {
        assert_eq!(emit(code), json!(wire));
        assert_eq!(parse::<ErrorCode>(json!(wire)), *code);
        assert_eq!(code.to_string(), wire);
        assert_eq!((code.http_status(), code.retryable()), (status, retryable), "{wire}");
        assert_eq!(ApiError::new(*code, "m").retryable, retryable, "{wire}");
        assert!(wire.chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{wire}");
    }
}

#[test]
fn unknown_error_codes_become_unknown_error() {
    for wire in ["SOMETHING_NEW", "queue_full", "", "Pkg_Not_Found"] {
        assert_eq!(parse::<ErrorCode>(json!(wire)), ErrorCode::UnknownError, "{wire:?}");
    }
    assert!(serde_json::from_value::<ErrorCode>(json!(42)).is_err(), "a non-string is still refused");
}

// ---------------------------------------------------------------- packages

#[test]
fn package_is_exact() {
    assert_eq!(
        emit(&package()),
        json!({
            "name": "openssl",
            "version": "3.0.2-0ubuntu1.15",
            "status": "upgradable",
            "upgradable": true,
            "latest_version": "3.0.2-0ubuntu1.18",
            "description": "Secure Sockets Layer toolkit",
            "dependencies": ["libc6", "libssl3"],
            "reverse_dependencies": ["ca-certificates"],
            "install_date": "2026-01-02T03:04:05Z",
            "size_installed": "2133 KB",
            "cve_ids": ["CVE-2024-0727"]
        })
    );
}

#[test]
fn package_optional_fields_are_null() {
    let p = Package { latest_version: None, install_date: None, size_installed: None, ..package() };
    let v = emit(&p);
    for key in ["latest_version", "install_date", "size_installed"] {
        assert_eq!(v[key], Value::Null, "{key} must be present as null");
    }
}

#[test]
fn package_parses_upstream_output() {
    // Upstream: capitalised status, no cve_ids.
    let p: Package = parse(json!({
        "name": "openssl", "version": "3.0.2", "status": "NotInstalled", "upgradable": false,
        "latest_version": null, "description": "", "dependencies": [], "reverse_dependencies": [],
        "install_date": null, "size_installed": null
    }));
    assert_eq!(p.status, PackageStatus::NotInstalled);
    assert!(p.cve_ids.is_empty());
}

#[test]
fn package_status_spellings() {
    let table = [
        (PackageStatus::Installed, "installed", "Installed"),
        (PackageStatus::Available, "available", "Available"),
        (PackageStatus::Upgradable, "upgradable", "Upgradable"),
        (PackageStatus::NotInstalled, "not_installed", "NotInstalled"),
    ];
    for (status, wire, legacy) in table {
        assert_eq!(emit(&status), json!(wire));
        assert_eq!(parse::<PackageStatus>(json!(wire)), status);
        assert_eq!(parse::<PackageStatus>(json!(legacy)), status);
    }
    assert!(serde_json::from_value::<PackageStatus>(json!("INSTALLED")).is_err());
}

#[test]
fn package_list_is_exact() {
    let list = PackageList { packages: vec![package()], total: 1234 };
    let v = emit(&list);
    assert_eq!(v.as_object().unwrap().keys().collect::<Vec<_>>(), ["packages", "total"]);
    assert_eq!(v["total"], json!(1234));
    assert_eq!(v["packages"][0], emit(&package()));
}

// ---------------------------------------------------------------- patches

#[test]
fn patch_is_exact() {
    assert_eq!(
        emit(&patch()),
        json!({
            "name": "linux-image-generic",
            "current_version": "6.8.0-40.40",
            "available_version": "6.8.0-45.45",
            "severity": "high",
            "description": "Linux kernel image",
            "cve_ids": ["CVE-2024-1086"],
            "requires_reboot": true
        })
    );
}

#[test]
fn severity_spellings() {
    let table: [(Severity, &str, &[&str]); 4] = [
        (Severity::Critical, "critical", &["Critical"]),
        (Severity::High, "high", &["High", "important", "Important"]),
        (Severity::Medium, "medium", &["Medium", "moderate", "Moderate"]),
        (Severity::Low, "low", &["Low"]),
    ];
    for (severity, wire, legacy) in table {
        assert_eq!(emit(&severity), json!(wire));
        assert_eq!(parse::<Severity>(json!(wire)), severity);
        for l in legacy {
            assert_eq!(parse::<Severity>(json!(l)), severity, "{l}");
        }
    }
    // Never guessed.
    for unknown in ["unknown", "none", ""] {
        assert!(serde_json::from_value::<Severity>(json!(unknown)).is_err(), "{unknown}");
    }
}

#[test]
fn patch_list_is_exact_and_counts() {
    let low = Patch { name: "tzdata".into(), severity: Severity::Low, requires_reboot: false, ..patch() };
    let critical = Patch { name: "openssl".into(), severity: Severity::Critical, requires_reboot: false, ..patch() };
    let list = PatchList::new(vec![patch(), low.clone(), critical.clone()]);
    assert_eq!(
        emit(&list),
        json!({
            "patches": [emit(&patch()), emit(&low), emit(&critical)],
            "total": 3,
            "security_updates": 2,
            "requires_reboot": true
        })
    );
    assert!(!PatchList::new(vec![low]).requires_reboot);
}

#[test]
fn patch_apply_request_is_exact() {
    let req =
        PatchApplyRequest { packages: Some(vec!["openssl".into()]), allow_reboot: true, reboot_delay_seconds: 60 };
    assert_eq!(emit(&req), json!({"packages": ["openssl"], "allow_reboot": true, "reboot_delay_seconds": 60}));
    assert_eq!(emit(&PatchApplyRequest::default()), json!({"allow_reboot": false, "reboot_delay_seconds": 0}));
}

#[test]
fn patch_apply_accepts_reboot_alias_and_manager_body() {
    // The alias that upstream 2.5.5 had to add.
    let req: PatchApplyRequest = parse_request(br#"{"reboot": true}"#).unwrap();
    assert!(req.allow_reboot);
    assert_eq!(req.selected(), None);
    // The manager's client always sends a list ([] = all) and no delay.
    let req: PatchApplyRequest = parse_request(br#"{"packages": [], "allow_reboot": true}"#).unwrap();
    assert_eq!((req.allow_reboot, req.reboot_delay_seconds, req.selected()), (true, 0, None));
    let req: PatchApplyRequest = parse_request(br#"{}"#).unwrap();
    assert_eq!(req, PatchApplyRequest::default());
    let req: PatchApplyRequest = parse_request(br#"{"packages": ["a", "b"]}"#).unwrap();
    assert_eq!(req.selected().unwrap(), ["a", "b"]);
}

#[test]
fn patch_apply_refuses_both_spellings_and_typos() {
    let err = rejected::<PatchApplyRequest>(json!({"reboot": true, "allow_reboot": false}));
    assert!(err.message.contains("duplicate field `allow_reboot`"), "{err}");
    let err = rejected::<PatchApplyRequest>(json!({"allow_rebot": true}));
    assert_field(&err, "allow_rebot", "unknown field `allow_rebot`");
    let err = rejected::<PatchApplyRequest>(json!({"allow_reboot": "yes"}));
    assert_field(&err, "allow_reboot", "expected a boolean");
    let err = rejected::<PatchApplyRequest>(json!({"reboot_delay_seconds": -1}));
    assert_field(&err, "reboot_delay_seconds", "invalid value");
    let err = rejected::<PatchApplyRequest>(json!({"packages": "openssl"}));
    assert_field(&err, "packages", "expected a sequence");
}

#[test]
fn patch_apply_validation() {
    let err = rejected::<PatchApplyRequest>(json!({"packages": ["ok", "-oAPT::Get=1"]}));
    assert_field(&err, "packages[1]", "must start with a letter or digit");
    let err = rejected::<PatchApplyRequest>(json!({"reboot_delay_seconds": MAX_DELAY_SECONDS + 1}));
    assert_field(&err, "reboot_delay_seconds", "at most 86400");
    let many: Vec<String> = (0..1001).map(|i| format!("p{i}")).collect();
    let err = rejected::<PatchApplyRequest>(json!({ "packages": many }));
    assert_field(&err, "packages", "at most 1000 items (got 1001)");
    assert!(parse_request::<PatchApplyRequest>(json!({"reboot_delay_seconds": 86400}).to_string().as_bytes()).is_ok());
}

// ---------------------------------------------------------------- install / update / remove

#[test]
fn install_request_is_exact() {
    let req = InstallRequest {
        packages: vec![
            PackageSpec { name: "nginx".into(), version: Some("1.24.0-1".into()) },
            PackageSpec { name: "curl".into(), version: None },
        ],
        options: Some(InstallOptions { force: false, no_recommends: true, allow_downgrade: true }),
    };
    let v = json!({
        "packages": [{"name": "nginx", "version": "1.24.0-1"}, {"name": "curl"}],
        "options": {"force": false, "no_recommends": true, "allow_downgrade": true}
    });
    assert_eq!(emit(&req), v);
    assert_eq!(parse_request::<InstallRequest>(v.to_string().as_bytes()).unwrap(), req);
}

#[test]
fn install_request_defaults() {
    let req: InstallRequest = parse_request(br#"{"packages": [{"name": "curl", "version": null}]}"#).unwrap();
    assert_eq!(req.options, None);
    assert_eq!(req.options(), InstallOptions::default());
    assert_eq!(req.packages[0].version, None);
    let req: InstallRequest = parse_request(br#"{"packages": [{"name": "curl"}], "options": {}}"#).unwrap();
    assert_eq!(req.options(), InstallOptions { force: false, no_recommends: false, allow_downgrade: false });
}

#[test]
fn install_request_is_strict_and_names_the_field() {
    let err = rejected::<InstallRequest>(json!({"packages": [{"name": "a"}], "optoins": {}}));
    assert_field(&err, "optoins", "unknown field `optoins`, expected `packages` or `options`");
    let err = rejected::<InstallRequest>(json!({"packages": [{"name": "a"}], "options": {"forse": true}}));
    assert_field(&err, "options.forse", "unknown field `forse`");
    let err = rejected::<InstallRequest>(json!({"packages": [{"name": "a"}, {"name": "b", "ver": "1"}]}));
    assert_field(&err, "packages[1].ver", "unknown field `ver`");
    let err = rejected::<InstallRequest>(json!({"packages": [{"name": "a"}], "options": {"force": "yes"}}));
    assert_field(&err, "options.force", "invalid type: string \"yes\", expected a boolean");
    let err = rejected::<InstallRequest>(json!({"packages": [{"name": "a"}, {"name": 5}]}));
    assert_field(&err, "packages[1].name", "invalid type: integer `5`, expected a string");
    let err = rejected::<InstallRequest>(json!({"packages": [{"version": "1"}]}));
    assert_field(&err, "packages[0].name", "missing field `name`");
    let err = rejected::<InstallRequest>(json!({}));
    assert_field(&err, "packages", "missing field `packages`");
    let err = rejected::<InstallRequest>(json!({"packages": ["nginx"]}));
    assert_field(&err, "packages[0]", "invalid type: string \"nginx\", expected a package spec object");
}

#[test]
fn requests_must_be_objects_not_arrays() {
    // serde's derive would take a struct as an array of its field values.
    let err = rejected::<InstallRequest>(json!([[{"name": "a"}], null]));
    assert_field(&err, "body", "invalid type: sequence, expected an install request object");
    let err = rejected::<InstallRequest>(json!({"packages": [["nginx", "1.0"]]}));
    assert_field(&err, "packages[0]", "invalid type: sequence, expected a package spec object");
    let err = rejected::<InstallRequest>(json!({"packages": [{"name": "a"}], "options": [true, false, false]}));
    assert_field(&err, "options", "invalid type: sequence, expected an options object");
    let err = rejected::<PatchApplyRequest>(json!([null, true, 0]));
    assert_field(&err, "body", "expected a patch apply request object");
    assert_field(&rejected::<RebootRequest>(json!([0, false])), "body", "expected a reboot request object");
    assert_field(&rejected::<UpdateRequest>(json!(["1.0"])), "body", "expected an update request object");
    assert_field(&rejected::<UpdateRequest>(json!("1.0")), "body", "invalid type: string");
}

#[test]
fn malformed_json_is_a_body_error() {
    let err = parse_request::<InstallRequest>(b"{\"packages\": [").unwrap_err();
    assert_eq!(err.field, "body");
    assert!(err.message.starts_with("invalid JSON at line 1"), "{err}");
    let err = parse_request::<InstallRequest>(br#"{"packages": [{"name": "a"}]} x"#).unwrap_err();
    assert_eq!(err.field, "body");
    assert!(err.message.contains("trailing"), "{err}");
    let err = parse_request::<InstallRequest>(b"[]").unwrap_err();
    assert_eq!(err.field, "body");
}

#[test]
fn install_request_validation() {
    let cases = [
        (json!({"packages": []}), "packages", "at least one item"),
        (json!({"packages": [{"name": ""}]}), "packages[0].name", "must not be empty"),
        (
            json!({"packages": [{"name": "a"}, {"name": "b"}, {"name": "-oFoo"}]}),
            "packages[2].name",
            "must start with a letter or digit",
        ),
        (
            json!({"packages": [{"name": "--allow-unauthenticated"}]}),
            "packages[0].name",
            "must start with a letter or digit",
        ),
        (json!({"packages": [{"name": "a..b"}]}), "packages[0].name", "must not contain `..`"),
        (json!({"packages": [{"name": "a/b"}]}), "packages[0].name", "contains '/'"),
        (json!({"packages": [{"name": "a b"}]}), "packages[0].name", "contains ' '"),
        (json!({"packages": [{"name": "a;rm"}]}), "packages[0].name", "contains ';'"),
        (json!({"packages": [{"name": "a$(id)"}]}), "packages[0].name", "contains '$'"),
        (json!({"packages": [{"name": "é"}]}), "packages[0].name", "must start with a letter or digit"),
        (json!({"packages": [{"name": "x".repeat(257)}]}), "packages[0].name", "at most 256 characters (got 257)"),
        (
            json!({"packages": [{"name": "a", "version": "-1"}]}),
            "packages[0].version",
            "must start with a letter or digit",
        ),
        (json!({"packages": [{"name": "a", "version": ""}]}), "packages[0].version", "must not be empty"),
        (json!({"packages": [{"name": "a", "version": "1..2"}]}), "packages[0].version", "`..`"),
        (json!({"packages": [{"name": "a", "version": "1 2"}]}), "packages[0].version", "contains ' '"),
        (json!({"packages": [{"name": "a", "version": "1*"}]}), "packages[0].version", "contains '*'"),
        (json!({"packages": [{"name": "a", "version": "1".repeat(257)}]}), "packages[0].version", "at most 256"),
        (
            json!({"packages": [{"name": "a"}, {"name": "a", "version": "2"}]}),
            "packages[1].name",
            "already listed as packages[0]",
        ),
    ];
    for (body, field, part) in cases {
        let err = rejected::<InstallRequest>(body.clone());
        assert_field(&err, field, part);
    }
    let many: Vec<Value> = (0..1001).map(|i| json!({"name": format!("p{i}")})).collect();
    assert_field(&rejected::<InstallRequest>(json!({ "packages": many })), "packages", "at most 1000 items");
}

#[test]
fn install_request_accepts_real_names_and_versions() {
    let longest = "x".repeat(256);
    let names = ["g++", "libstdc++6", "python3.12", "lib32z1", "0ad", "xorg-x11_fonts", &longest];
    let versions = ["1:2.38-4ubuntu2", "1.0~rc1-1", "2.0^git20240101", "1.2.3+dfsg-1", "1.0_beta", "r1234"];
    for name in names {
        for version in versions {
            let body = json!({"packages": [{"name": name, "version": version}]});
            parse_request::<InstallRequest>(body.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{name} {version}: {e}"));
        }
    }
}

#[test]
fn update_request_is_exact_and_strict() {
    assert_eq!(emit(&UpdateRequest::default()), json!({}));
    let req = UpdateRequest { version: Some("2.5.6".into()), options: Some(InstallOptions::default()) };
    let v = json!({"version": "2.5.6", "options": {"force": false, "no_recommends": false, "allow_downgrade": false}});
    assert_eq!(emit(&req), v);
    assert_eq!(parse_request::<UpdateRequest>(v.to_string().as_bytes()).unwrap(), req);
    assert_eq!(parse_request::<UpdateRequest>(b"{}").unwrap(), UpdateRequest::default());
    assert_field(&rejected::<UpdateRequest>(json!({"target_version": "1"})), "target_version", "unknown field");
    assert_field(&rejected::<UpdateRequest>(json!({"version": "-x"})), "version", "must start with a letter or digit");
    assert_field(&rejected::<UpdateRequest>(json!({"version": 2})), "version", "expected a string");
}

#[test]
fn remove_query() {
    assert_eq!(parse_query::<RemoveQuery>("").unwrap(), RemoveQuery { purge: false, force: false });
    assert_eq!(parse_query::<RemoveQuery>("purge=true").unwrap(), RemoveQuery { purge: true, force: false });
    assert_eq!(emit(&RemoveQuery { purge: true, force: true }), json!({"purge": true, "force": true}));
    assert_field(&rejected_query::<RemoveQuery>("purg=true"), "purg", "unknown field");
    assert_field(&rejected_query::<RemoveQuery>("purge=maybe"), "purge", "");
}

// ---------------------------------------------------------------- queries

#[test]
fn package_query_parses_every_parameter() {
    let q: PackageQuery = parse_query(
        "name=lib*ssl*&version=3.0.2&status=upgradable&upgradable=true&sort=version&order=desc&limit=10&offset=20",
    )
    .unwrap();
    assert_eq!(
        q,
        PackageQuery {
            name: Some("lib*ssl*".into()),
            version: Some("3.0.2".into()),
            status: Some(PackageStatus::Upgradable),
            upgradable: Some(true),
            sort: PackageSort::Version,
            order: SortOrder::Desc,
            limit: 10,
            offset: 20,
        }
    );
    assert_eq!(
        emit(&q),
        json!({"name": "lib*ssl*", "version": "3.0.2", "status": "upgradable", "upgradable": true,
               "sort": "version", "order": "desc", "limit": 10, "offset": 20})
    );
    assert_eq!(
        serde_urlencoded::to_string(&q).unwrap(),
        "name=lib*ssl*&version=3.0.2&status=upgradable&upgradable=true&sort=version&order=desc&limit=10&offset=20"
    );
}

#[test]
fn package_query_defaults_and_spellings() {
    let q: PackageQuery = parse_query("").unwrap();
    assert_eq!(q, PackageQuery::default());
    assert_eq!((q.limit, q.offset, q.sort, q.order), (100, 0, PackageSort::Name, SortOrder::Asc));
    assert_eq!(emit(&q), json!({"sort": "name", "order": "asc", "limit": 100, "offset": 0}));
    assert_eq!(parse_query::<PackageQuery>("status=Installed").unwrap().status, Some(PackageStatus::Installed));
    assert_eq!(parse_query::<PackageQuery>("sort=status").unwrap().sort, PackageSort::Status);
    assert_eq!(parse_query::<PackageQuery>("limit=1000").unwrap().limit, 1000);
    assert_eq!(parse_query::<PackageQuery>("name=*").unwrap().name.as_deref(), Some("*"));
}

#[test]
fn package_query_is_strict_and_validated() {
    assert_field(&rejected_query::<PackageQuery>("sortt=name"), "sortt", "unknown field `sortt`");
    assert_field(&rejected_query::<PackageQuery>("limit=abc"), "limit", "invalid digit");
    assert_field(&rejected_query::<PackageQuery>("limit=0"), "limit", "between 1 and 1000 (got 0)");
    assert_field(&rejected_query::<PackageQuery>("limit=1001"), "limit", "between 1 and 1000 (got 1001)");
    assert_field(&rejected_query::<PackageQuery>("offset=-1"), "offset", "invalid digit");
    assert_field(&rejected_query::<PackageQuery>("sort=size"), "sort", "unknown variant `size`");
    assert_field(&rejected_query::<PackageQuery>("order=up"), "order", "unknown variant `up`");
    assert_field(&rejected_query::<PackageQuery>("status=gone"), "status", "unknown variant `gone`");
    assert_field(&rejected_query::<PackageQuery>("upgradable=yes"), "upgradable", "");
    assert_field(&rejected_query::<PackageQuery>("name=-oFoo"), "name", "must start with a letter or digit");
    assert_field(&rejected_query::<PackageQuery>("name=lib..%2Fetc"), "name", "`..`");
    assert_field(&rejected_query::<PackageQuery>("name="), "name", "must not be empty");
    assert_field(&rejected_query::<PackageQuery>("version=1%3Bid"), "version", "contains ';'");
    let err = rejected_query::<PackageQuery>("limit=5&limit=6");
    assert!(err.message.contains("duplicate field `limit`"), "{err}");
}

#[test]
fn package_query_matches() {
    let p = package();
    let q = |s: &str| parse_query::<PackageQuery>(s).unwrap();
    assert!(q("").matches(&p));
    assert!(q("name=open*").matches(&p));
    assert!(q("name=*ssl").matches(&p));
    assert!(q("name=o*s*l").matches(&p));
    assert!(!q("name=ssl").matches(&p));
    assert!(q("status=upgradable&upgradable=true").matches(&p));
    assert!(!q("status=installed").matches(&p));
    assert!(!q("upgradable=false").matches(&p));
    assert!(q("version=3.0.2-0ubuntu1.15").matches(&p));
    assert!(!q("version=3.0.2").matches(&p));
}

#[test]
fn glob_rules() {
    for (pattern, name, expected) in [
        ("*", "", true),
        ("*", "anything", true),
        ("a*", "a", true),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "aXbY", false),
        ("*.so", "lib.so", true),
        ("lib", "libc", false),
        ("a**b", "ab", true),
        ("*ab", "aab", true),
    ] {
        assert_eq!(glob_matches(pattern, name), expected, "{pattern} ~ {name}");
    }
}

#[test]
fn job_query() {
    assert_eq!(parse_query::<JobQuery>("").unwrap(), JobQuery { status: None, limit: 50 });
    assert_eq!(emit(&JobQuery::default()), json!({"limit": 50}));
    for (spelling, status) in [
        ("pending", JobStatus::Pending),
        ("running", JobStatus::Running),
        ("completed", JobStatus::Completed),
        ("failed", JobStatus::Failed),
        ("cancelled", JobStatus::Cancelled),
        ("timed_out", JobStatus::TimedOut),
        ("timedout", JobStatus::TimedOut),
        ("timeout", JobStatus::TimedOut),
        ("queued", JobStatus::Pending),
        ("succeeded", JobStatus::Completed),
    ] {
        let q: JobQuery = parse_query(&format!("status={spelling}&limit=5")).unwrap();
        assert_eq!(q, JobQuery { status: Some(status), limit: 5 }, "{spelling}");
    }
    let q = JobQuery { status: Some(JobStatus::TimedOut), limit: 7 };
    assert_eq!(emit(&q), json!({"status": "timed_out", "limit": 7}));
    assert_field(&rejected_query::<JobQuery>("state=failed"), "state", "unknown field `state`");
    assert_field(&rejected_query::<JobQuery>("status=done"), "status", "unknown variant `done`");
    assert_field(&rejected_query::<JobQuery>("limit=0"), "limit", "between 1 and 1000");
}

// ---------------------------------------------------------------- system

#[test]
fn system_info_is_exact() {
    let info = SystemInfo {
        hostname: "web-01".into(),
        os: "Ubuntu".into(),
        os_version: "24.04".into(),
        kernel: "6.8.0-45-generic".into(),
        architecture: "x86_64".into(),
        last_update_check: Some(ts("2026-11-23T11:00:00Z")),
        last_update_apply: None,
        pending_reboot: true,
    };
    assert_eq!(
        emit(&info),
        json!({
            "hostname": "web-01", "os": "Ubuntu", "os_version": "24.04", "kernel": "6.8.0-45-generic",
            "architecture": "x86_64", "last_update_check": "2026-11-23T11:00:00Z", "last_update_apply": null,
            "pending_reboot": true
        })
    );
    // Upstream writes chrono's +00:00 form.
    let parsed: SystemInfo = parse(json!({
        "hostname": "web-01", "os": "Ubuntu", "os_version": "24.04", "kernel": "6.8.0-45-generic",
        "architecture": "x86_64", "last_update_check": "2026-11-23T11:00:00+00:00", "last_update_apply": null,
        "pending_reboot": true
    }));
    assert_eq!(parsed, info);
}

fn health() -> Health {
    Health {
        status: HealthStatus::Degraded,
        uptime_seconds: 86_400,
        version: "0.1.0".into(),
        last_cache_update: Some(ts("2026-11-23T07:00:00Z")),
        cache_status: CacheStatus::Stale,
        crl_status: Some(CrlStatus::Valid),
        crl_age_seconds: Some(3600),
        crl_next_update: Some(ts("2026-11-30T00:00:00Z")),
        gpg_key_status: Some(GpgKeyStatus::Valid),
        gpg_key_expires_at: None,
    }
}

#[test]
fn health_is_exact() {
    assert_eq!(
        emit(&health()),
        json!({
            "status": "degraded", "uptime_seconds": 86400, "version": "0.1.0",
            "last_cache_update": "2026-11-23T07:00:00Z", "cache_status": "stale",
            "crl_status": "valid", "crl_age_seconds": 3600, "crl_next_update": "2026-11-30T00:00:00Z",
            "gpg_key_status": "valid", "gpg_key_expires_at": null
        })
    );
}

#[test]
fn health_enum_spellings() {
    for (s, w) in [(HealthStatus::Healthy, "healthy"), (HealthStatus::Degraded, "degraded")] {
        assert_eq!(emit(&s), json!(w));
        assert_eq!(parse::<HealthStatus>(json!(w)), s);
    }
    assert_eq!(parse::<HealthStatus>(json!("ok")), HealthStatus::Healthy);
    for (s, w) in [
        (CacheStatus::Fresh, "fresh"),
        (CacheStatus::Stale, "stale"),
        (CacheStatus::Unknown, "unknown"),
        (CacheStatus::Failed, "failed"),
    ] {
        assert_eq!(emit(&s), json!(w));
        assert_eq!(parse::<CacheStatus>(json!(w)), s);
    }
    for (s, w) in [
        (CrlStatus::Valid, "valid"),
        (CrlStatus::Expired, "expired"),
        (CrlStatus::Missing, "missing"),
        (CrlStatus::Invalid, "invalid"),
        (CrlStatus::Degraded, "degraded"),
    ] {
        assert_eq!(emit(&s), json!(w));
        assert_eq!(parse::<CrlStatus>(json!(w)), s);
    }
    for (s, w) in [
        (GpgKeyStatus::Valid, "valid"),
        (GpgKeyStatus::Expired, "expired"),
        (GpgKeyStatus::Missing, "missing"),
        (GpgKeyStatus::Revoked, "revoked"),
    ] {
        assert_eq!(emit(&s), json!(w));
        assert_eq!(parse::<GpgKeyStatus>(json!(w)), s);
    }
}

#[test]
fn health_parses_an_older_agent() {
    let h: Health = parse(json!({"status": "healthy", "uptime_seconds": 5, "version": "2.3.0"}));
    assert_eq!(h.cache_status, CacheStatus::Unknown);
    assert_eq!((h.crl_status, h.gpg_key_status, h.last_cache_update), (None, None, None));
}

#[test]
fn service_status_is_exact() {
    let s = ServiceStatus {
        name: "nginx.service".into(),
        display_name: "A high performance web server".into(),
        active_state: "active".into(),
        sub_state: "running".into(),
        load_state: "loaded".into(),
        enabled_state: "enabled".into(),
        main_pid: Some(1234),
        healthy: true,
    };
    let v = json!({
        "name": "nginx.service", "display_name": "A high performance web server", "active_state": "active",
        "sub_state": "running", "load_state": "loaded", "enabled_state": "enabled", "main_pid": 1234, "healthy": true
    });
    assert_eq!(emit(&s), v);
    assert_eq!(emit(&ServiceStatus { main_pid: None, ..s })["main_pid"], Value::Null);
}

#[test]
fn service_names() {
    for ok in ["nginx", "nginx.service", "getty@tty1.service", "systemd-journald", "a_b+c", "0x"] {
        assert!(validate_service_name("name", ok).is_ok(), "{ok}");
    }
    for (bad, part) in [
        ("", "must not be empty"),
        ("-nginx", "must start with a letter or digit"),
        ("../etc/passwd", "must start with a letter or digit"),
        ("a..b", "`..`"),
        ("a/b", "contains '/'"),
        ("a b", "contains ' '"),
        ("a;b", "contains ';'"),
    ] {
        let err = validate_service_name("name", bad).unwrap_err();
        assert_field(&err, "name", part);
    }
    assert!(validate_service_name("name", &"s".repeat(257)).is_err());
}

#[test]
fn reboot_request_is_exact_strict_and_validated() {
    assert_eq!(emit(&RebootRequest::default()), json!({"delay_seconds": 0, "force": false}));
    let req = RebootRequest {
        delay_seconds: 300,
        force: true,
        reason: Some("kernel 6.8.0-45".into()),
        acknowledge_package_database_corruption_risk: true,
    };
    let v = json!({"delay_seconds": 300, "force": true, "reason": "kernel 6.8.0-45",
                   "acknowledge_package_database_corruption_risk": true});
    assert_eq!(emit(&req), v);
    assert_eq!(parse_request::<RebootRequest>(v.to_string().as_bytes()).unwrap(), req);
    assert_eq!(parse_request::<RebootRequest>(b"{}").unwrap(), RebootRequest::default());
    assert_field(&rejected::<RebootRequest>(json!({"delay": 5})), "delay", "unknown field `delay`");
    assert_field(&rejected::<RebootRequest>(json!({"force": 1})), "force", "expected a boolean");
    assert_field(&rejected::<RebootRequest>(json!({"delay_seconds": 86401})), "delay_seconds", "at most 86400");
    assert_field(&rejected::<RebootRequest>(json!({"reason": "a\nb"})), "reason", "control characters");
    assert_field(&rejected::<RebootRequest>(json!({"reason": "r".repeat(257)})), "reason", "at most 256");
    assert!(parse_request::<RebootRequest>(json!({"delay_seconds": 86400}).to_string().as_bytes()).is_ok());
}

// ---------------------------------------------------------------- 202 bodies, jobs

#[test]
fn job_accepted_is_exact_for_each_operation() {
    let id = uuid(JOB);
    assert_eq!(
        emit(&JobAccepted::install(id, vec!["nginx".into(), "curl".into()])),
        json!({"job_id": JOB, "status": "pending", "operation": "install", "packages": ["nginx", "curl"], "package": null})
    );
    assert_eq!(
        emit(&JobAccepted::update(id, JobOperation::Update, "nginx".into())),
        json!({"job_id": JOB, "status": "pending", "operation": "update", "packages": null, "package": "nginx"})
    );
    assert_eq!(
        emit(&JobAccepted::update(id, JobOperation::SelfUpdate, "linux-patch-api".into())),
        json!({"job_id": JOB, "status": "pending", "operation": "self_update", "packages": null, "package": "linux-patch-api"})
    );
    assert_eq!(
        emit(&JobAccepted::remove(id, "nginx".into())),
        json!({"job_id": JOB, "status": "pending", "operation": "remove", "packages": null, "package": "nginx"})
    );
    assert_eq!(
        emit(&JobAccepted::patch_apply(id, vec![], true)),
        json!({"job_id": JOB, "status": "pending", "operation": "patch_apply", "packages": [], "package": null,
               "packages_count": 0, "reboot_scheduled": true})
    );
}

#[test]
fn job_accepted_parses_upstream_output() {
    let a: JobAccepted = parse(json!({"job_id": JOB, "status": "pending", "operation": "patchapply",
                                      "packages": ["3 packages"], "package": null}));
    assert_eq!((a.operation, a.status, a.packages_count), (JobOperation::PatchApply, JobStatus::Pending, None));
    // Remove's upstream body has no `packages` key.
    let a: JobAccepted = parse(json!({"job_id": JOB, "status": "pending", "operation": "remove", "package": "x"}));
    assert_eq!(a, JobAccepted::remove(uuid(JOB), "x".into()));
}

#[test]
fn rollback_and_reboot_accepted_are_exact() {
    assert_eq!(
        emit(&RollbackAccepted::new(uuid(JOB2), uuid(JOB))),
        json!({"job_id": JOB2, "status": "pending", "operation": "rollback", "original_job_id": JOB, "exclusive_mode": true})
    );
    assert_eq!(
        emit(&RebootAccepted::new(uuid(JOB), ts("2026-11-23T12:05:00Z"), 300, false)),
        json!({"job_id": JOB, "status": "pending", "operation": "reboot", "scheduled_at": "2026-11-23T12:05:00Z",
               "delay_seconds": 300, "force": false})
    );
}

#[test]
fn job_list_and_deleted_are_exact() {
    let list = JobList { jobs: vec![json!({"job_id": JOB})], total: 9 };
    assert_eq!(emit(&list), json!({"jobs": [{"job_id": JOB}], "total": 9}));
    assert_eq!(emit(&JobDeleted::new(uuid(JOB))), json!({"deleted": true, "job_id": JOB}));
}

// ---------------------------------------------------------------- websocket

#[test]
fn client_messages_emit_action() {
    let id = uuid(JOB);
    assert_eq!(emit(&ClientMessage::Subscribe { job_id: Some(id) }), json!({"action": "subscribe", "job_id": JOB}));
    assert_eq!(emit(&ClientMessage::Subscribe { job_id: None }), json!({"action": "subscribe"}));
    assert_eq!(emit(&ClientMessage::Unsubscribe { job_id: id }), json!({"action": "unsubscribe", "job_id": JOB}));
    assert_eq!(emit(&ClientMessage::Ping), json!({"action": "ping"}));
}

#[test]
fn client_messages_accept_legacy_forms() {
    let id = uuid(JOB);
    let table = [
        (json!({"action": "subscribe", "job_id": JOB}), ClientMessage::Subscribe { job_id: Some(id) }),
        (json!({"action": "subscribe"}), ClientMessage::Subscribe { job_id: None }),
        (json!({"action": "subscribe", "job_id": null}), ClientMessage::Subscribe { job_id: None }),
        (json!({"action": "subscribe", "job_id": "all"}), ClientMessage::Subscribe { job_id: None }),
        (json!({"action": "subscribe", "job_id": ""}), ClientMessage::Subscribe { job_id: None }),
        (json!({"action": "unsubscribe", "job_id": JOB}), ClientMessage::Unsubscribe { job_id: id }),
        (json!({"type": "subscribe", "job_id": JOB}), ClientMessage::Subscribe { job_id: Some(id) }),
        (json!({"type": "subscribe_all"}), ClientMessage::Subscribe { job_id: None }),
        (json!({"action": "subscribe_all"}), ClientMessage::Subscribe { job_id: None }),
        (json!({"type": "unsubscribe", "job_id": JOB}), ClientMessage::Unsubscribe { job_id: id }),
        (json!({"type": "ping"}), ClientMessage::Ping),
        (json!({"action": "ping"}), ClientMessage::Ping),
        (json!({"action": "ping", "type": "ping"}), ClientMessage::Ping),
    ];
    for (raw, expected) in table {
        assert_eq!(parse_json::<ClientMessage>(raw.to_string().as_bytes()).unwrap(), expected, "{raw}");
    }
}

#[test]
fn client_messages_refuse_nonsense_naming_the_field() {
    let err = |v: Value| parse_json::<ClientMessage>(v.to_string().as_bytes()).unwrap_err();
    assert_field(&err(json!({"action": "subscribe", "jobid": JOB})), "jobid", "unknown field `jobid`");
    assert_field(&err(json!({"action": "watch"})), "action", "unknown variant `watch`");
    assert_field(&err(json!({"type": "watch"})), "type", "unknown variant `watch`");
    assert_field(&err(json!({"action": "subscribe", "job_id": "nope"})), "job_id", "is not a job id");
    assert_field(&err(json!({"action": "subscribe", "job_id": 5})), "job_id", "expected a string");
    assert_field(&err(json!({"job_id": JOB})), "action", "missing field `action`");
    assert_field(&err(json!({"action": "unsubscribe"})), "job_id", "missing field `job_id`");
    assert!(err(json!({"action": "subscribe", "type": "unsubscribe", "job_id": JOB})).message.contains("disagree"));
    assert!(err(json!({"type": "subscribe_all", "job_id": JOB})).message.contains("takes no job_id"));
}

#[test]
fn server_events_are_exact() {
    let now = ts("2026-11-23T12:00:00Z");
    let conn = uuid(REQ);
    let id = uuid(JOB);
    assert_eq!(
        emit(&ServerEvent::connected(conn, now)),
        json!({"event": "connected", "job_id": "", "status": "connected", "progress": 0,
               "message": format!("WebSocket connected: {REQ}"), "timestamp": "2026-11-23T12:00:00Z"})
    );
    assert_eq!(
        emit(&ServerEvent::subscribed(None, now)),
        json!({"event": "subscribed", "job_id": "all", "status": "subscribed", "progress": 0,
               "message": "Subscribed to all jobs", "timestamp": "2026-11-23T12:00:00Z"})
    );
    assert_eq!(
        emit(&ServerEvent::subscribed(Some(id), now)),
        json!({"event": "subscribed", "job_id": JOB, "status": "subscribed", "progress": 0,
               "message": format!("Subscribed to job {JOB}"), "timestamp": "2026-11-23T12:00:00Z"})
    );
    assert_eq!(
        emit(&ServerEvent::unsubscribed(id, now)),
        json!({"event": "unsubscribed", "job_id": JOB, "status": "unsubscribed", "progress": 0,
               "message": format!("Unsubscribed from job {JOB}"), "timestamp": "2026-11-23T12:00:00Z"})
    );
    assert_eq!(
        emit(&ServerEvent::invalid_message("action: unknown variant `watch`", now)),
        json!({"event": "error", "job_id": "", "status": "invalid_message", "progress": 0,
               "message": "action: unknown variant `watch`", "timestamp": "2026-11-23T12:00:00Z"})
    );
    assert_eq!(
        emit(&ServerEvent::pong(now)),
        json!({"event": "pong", "job_id": "", "status": "pong", "progress": 0, "message": "pong",
               "timestamp": "2026-11-23T12:00:00Z"})
    );
    assert_eq!(
        emit(&ServerEvent::job(id, JobStatus::Running, 10, "Cache refreshed, applying patches...", now)),
        json!({"event": "job_status", "job_id": JOB, "status": "running", "progress": 10,
               "message": "Cache refreshed, applying patches...", "timestamp": "2026-11-23T12:00:00Z"})
    );
    let failed = ServerEvent::job(id, JobStatus::Failed, 10, "Patch application failed", now)
        .with_error("E: Unable to fetch some archives", ErrorCode::NetworkError);
    let v = json!({"event": "job_status", "job_id": JOB, "status": "failed", "progress": 10,
                   "message": "Patch application failed", "timestamp": "2026-11-23T12:00:00Z",
                   "error": "E: Unable to fetch some archives", "error_code": "NETWORK_ERROR"});
    assert_eq!(emit(&failed), v);
    let mut complete = v.clone();
    complete["event"] = json!("job_complete");
    assert_eq!(emit(&failed.completion().unwrap()), complete);
    assert_eq!(
        emit(&ServerEvent::job(id, JobStatus::TimedOut, 100, "t", now))["status"],
        json!("timed_out"),
        "the WebSocket always said timed_out"
    );
}

#[test]
fn server_event_kinds_and_upstream_parse() {
    for (kind, wire) in [
        (EventKind::JobStatus, "job_status"),
        (EventKind::JobComplete, "job_complete"),
        (EventKind::Connected, "connected"),
        (EventKind::Subscribed, "subscribed"),
        (EventKind::Unsubscribed, "unsubscribed"),
        (EventKind::Error, "error"),
        (EventKind::Pong, "pong"),
    ] {
        assert_eq!(emit(&kind), json!(wire));
        assert_eq!(parse::<EventKind>(json!(wire)), kind);
    }
    let e: ServerEvent = parse(json!({"event": "job_status", "job_id": JOB, "status": "timedout", "progress": 100,
                                      "message": "m", "timestamp": "2026-11-23T12:00:00+00:00",
                                      "error_code": "SOMETHING_NEW"}));
    assert_eq!(e.job_status(), Some(JobStatus::TimedOut));
    assert_eq!(e.job_uuid(), Some(uuid(JOB)));
    assert_eq!(e.error_code, Some(ErrorCode::UnknownError));
    assert_eq!(ServerEvent::pong(ts("2026-11-23T12:00:00Z")).job_status(), None);
    assert_eq!(ServerEvent::job(uuid(JOB), JobStatus::Running, 200, "m", ts("2026-11-23T12:00:00Z")).progress, 100);
}

#[test]
fn completion_only_for_terminal_job_events() {
    let now = ts("2026-11-23T12:00:00Z");
    let id = uuid(JOB);
    for status in JobStatus::ALL {
        let e = ServerEvent::job(id, status, 50, "m", now);
        assert_eq!(e.completion().is_some(), status.is_terminal(), "{status:?}");
    }
    assert!(ServerEvent::connected(id, now).completion().is_none());
}

#[test]
fn subscription_rule() {
    let now = ts("2026-11-23T12:00:00Z");
    let (a, b, c) = (uuid(JOB), uuid(JOB2), uuid(REQ));
    let ev = |id| ServerEvent::job(id, JobStatus::Running, 1, "m", now);
    let mut sub = Subscription::default();
    // On connect: all jobs.
    assert_eq!(sub, Subscription::All);
    assert!(sub.wants(&ev(a)) && sub.wants(&ev(b)));
    // Unsubscribe while receiving all changes nothing.
    sub.apply(&ClientMessage::Unsubscribe { job_id: a });
    assert_eq!(sub, Subscription::All);
    // First subscribe with an id narrows.
    sub.apply(&ClientMessage::Subscribe { job_id: Some(a) });
    assert!(sub.wants(&ev(a)) && !sub.wants(&ev(b)));
    // Further subscribes add.
    sub.apply(&ClientMessage::Subscribe { job_id: Some(b) });
    assert!(sub.wants(&ev(a)) && sub.wants(&ev(b)) && !sub.wants(&ev(c)));
    // Unsubscribe removes; removing the last leaves nothing.
    sub.apply(&ClientMessage::Unsubscribe { job_id: a });
    assert!(!sub.wants(&ev(a)) && sub.wants(&ev(b)));
    sub.apply(&ClientMessage::Unsubscribe { job_id: b });
    assert!(!sub.wants(&ev(a)) && !sub.wants(&ev(b)));
    assert_eq!(sub, Subscription::Jobs(Default::default()));
    // Connection events always pass.
    assert!(sub.wants(&ServerEvent::pong(now)) && sub.wants(&ServerEvent::invalid_message("x", now)));
    assert!(sub.wants(&ServerEvent::subscribed(None, now)));
    // Ping changes nothing; subscribe without an id (or subscribe_all) returns to all.
    sub.apply(&ClientMessage::Ping);
    assert_eq!(sub, Subscription::Jobs(Default::default()));
    let all: ClientMessage = parse_json(br#"{"type":"subscribe_all"}"#).unwrap();
    sub.apply(&ClientMessage::Subscribe { job_id: Some(c) });
    sub.apply(&all);
    assert_eq!(sub, Subscription::All);
    // job_complete is filtered like job_status.
    sub.apply(&ClientMessage::Subscribe { job_id: Some(a) });
    let done = ServerEvent::job(b, JobStatus::Completed, 100, "m", now).completion().unwrap();
    assert!(!sub.wants(&done));
}

// ---------------------------------------------------------------- property tests

fn arb_uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

fn arb_ts() -> impl Strategy<Value = Timestamp> {
    // 1970..2100, nanosecond precision.
    (0i64..4_102_444_800, 0i32..1_000_000_000).prop_map(|(s, n)| Timestamp::new(s, n).unwrap())
}

fn arb_name() -> impl Strategy<Value = String> {
    "[a-z0-9][a-z0-9+_-]{0,20}(\\.[a-z0-9+_-]{1,5}){0,2}"
}

fn arb_version() -> impl Strategy<Value = String> {
    "[0-9]{1,2}(:[0-9a-z]{1,4})?([.+~_^-][0-9a-z]{1,4}){0,4}"
}

fn arb_text() -> impl Strategy<Value = String> {
    "\\PC{0,30}"
}

fn arb_package_status() -> impl Strategy<Value = PackageStatus> {
    prop_oneof![
        Just(PackageStatus::Installed),
        Just(PackageStatus::Available),
        Just(PackageStatus::Upgradable),
        Just(PackageStatus::NotInstalled)
    ]
}

fn arb_severity() -> impl Strategy<Value = Severity> {
    prop_oneof![Just(Severity::Low), Just(Severity::Medium), Just(Severity::High), Just(Severity::Critical)]
}

fn arb_job_status() -> impl Strategy<Value = JobStatus> {
    proptest::sample::select(JobStatus::ALL.to_vec())
}

fn arb_job_operation() -> impl Strategy<Value = JobOperation> {
    proptest::sample::select(JobOperation::ALL.to_vec())
}

fn arb_code() -> impl Strategy<Value = ErrorCode> {
    proptest::sample::select(ErrorCode::ALL.to_vec())
}

prop_compose! {
    fn arb_package()(
        name in arb_name(), version in arb_version(), status in arb_package_status(), upgradable: bool,
        latest_version in proptest::option::of(arb_version()), description in arb_text(),
        dependencies in proptest::collection::vec(arb_name(), 0..4),
        reverse_dependencies in proptest::collection::vec(arb_name(), 0..4),
        install_date in proptest::option::of(arb_text()), size_installed in proptest::option::of("[0-9]{1,6} KB"),
        cve_ids in proptest::collection::vec("CVE-20[0-9]{2}-[0-9]{4,6}", 0..3),
    ) -> Package {
        Package { name, version, status, upgradable, latest_version, description, dependencies,
                  reverse_dependencies, install_date, size_installed, cve_ids }
    }
}

prop_compose! {
    fn arb_patch()(
        name in arb_name(), current_version in arb_version(), available_version in arb_version(),
        severity in arb_severity(), description in arb_text(),
        cve_ids in proptest::collection::vec("CVE-20[0-9]{2}-[0-9]{4,6}", 0..3), requires_reboot: bool,
    ) -> Patch {
        Patch { name, current_version, available_version, severity, description, cve_ids, requires_reboot }
    }
}

prop_compose! {
    fn arb_api_error()(code in arb_code(), message in arb_text(), detail in proptest::option::of(any::<u32>()),
                       retryable: bool) -> ApiError {
        ApiError { code, message, details: detail.map(|d| json!({"n": d})), retryable }
    }
}

prop_compose! {
    fn arb_install_request()(
        specs in proptest::collection::btree_map(arb_name(), proptest::option::of(arb_version()), 1..8),
        options in proptest::option::of((any::<bool>(), any::<bool>(), any::<bool>())),
    ) -> InstallRequest {
        InstallRequest {
            packages: specs.into_iter().map(|(name, version)| PackageSpec { name, version }).collect(),
            options: options.map(|(force, no_recommends, allow_downgrade)| InstallOptions { force, no_recommends, allow_downgrade }),
        }
    }
}

prop_compose! {
    fn arb_package_query()(
        name in proptest::option::of("[a-z0-9*][a-z0-9*+_-]{0,10}"), version in proptest::option::of(arb_version()),
        status in proptest::option::of(arb_package_status()), upgradable in proptest::option::of(any::<bool>()),
        sort in prop_oneof![Just(PackageSort::Name), Just(PackageSort::Version), Just(PackageSort::Status)],
        order in prop_oneof![Just(SortOrder::Asc), Just(SortOrder::Desc)],
        limit in 1u32..=1000, offset in any::<u64>(),
    ) -> PackageQuery {
        PackageQuery { name, version, status, upgradable, sort, order, limit, offset }
    }
}

prop_compose! {
    fn arb_health()(
        status in prop_oneof![Just(HealthStatus::Healthy), Just(HealthStatus::Degraded)], uptime_seconds: u64,
        version in arb_version(), last_cache_update in proptest::option::of(arb_ts()),
        cache_status in prop_oneof![Just(CacheStatus::Fresh), Just(CacheStatus::Stale), Just(CacheStatus::Unknown), Just(CacheStatus::Failed)],
        crl_status in proptest::option::of(prop_oneof![Just(CrlStatus::Valid), Just(CrlStatus::Expired), Just(CrlStatus::Missing), Just(CrlStatus::Invalid), Just(CrlStatus::Degraded)]),
        crl_age_seconds in proptest::option::of(any::<u64>()), crl_next_update in proptest::option::of(arb_ts()),
        gpg_key_status in proptest::option::of(prop_oneof![Just(GpgKeyStatus::Valid), Just(GpgKeyStatus::Expired), Just(GpgKeyStatus::Missing), Just(GpgKeyStatus::Revoked)]),
        gpg_key_expires_at in proptest::option::of(arb_ts()),
    ) -> Health {
        Health { status, uptime_seconds, version, last_cache_update, cache_status, crl_status, crl_age_seconds,
                 crl_next_update, gpg_key_status, gpg_key_expires_at }
    }
}

prop_compose! {
    fn arb_client_message()(kind in 0u8..3, id in arb_uuid(), some: bool) -> ClientMessage {
        match kind {
            0 => ClientMessage::Subscribe { job_id: some.then_some(id) },
            1 => ClientMessage::Unsubscribe { job_id: id },
            _ => ClientMessage::Ping,
        }
    }
}

prop_compose! {
    fn arb_server_event()(
        id in arb_uuid(), status in arb_job_status(), progress in 0u8..=100, message in arb_text(), now in arb_ts(),
        failure in proptest::option::of((arb_text(), arb_code())), kind in 0u8..6,
    ) -> ServerEvent {
        match kind {
            0 => ServerEvent::connected(id, now),
            1 => ServerEvent::subscribed(Some(id), now),
            2 => ServerEvent::unsubscribed(id, now),
            3 => ServerEvent::invalid_message(message, now),
            4 => ServerEvent::pong(now),
            _ => {
                let e = ServerEvent::job(id, status, progress, message, now);
                match failure { Some((error, code)) => e.with_error(error, code), None => e }
            }
        }
    }
}

/// Serialises and parses back; the value must survive unchanged.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

/// A request must also survive the strict path, validation included.
fn request_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + Validate + PartialEq + std::fmt::Debug,
{
    round_trip(value)?;
    let text = serde_json::to_string(value).unwrap();
    let back: T = parse_request(text.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
    prop_assert_eq!(&back, value);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn envelope_round_trips(id in arb_uuid(), now in arb_ts(), list in proptest::collection::vec(arb_package(), 0..3),
                            error in arb_api_error(), ok: bool) {
        if ok {
            let total = list.len() as u64;
            round_trip(&Envelope::ok(id, now, PackageList { packages: list, total }))?;
        } else {
            round_trip(&Envelope::<PackageList>::err(id, now, error))?;
        }
    }

    #[test]
    fn package_and_patch_lists_round_trip(packages in proptest::collection::vec(arb_package(), 0..4),
                                          patches in proptest::collection::vec(arb_patch(), 0..4)) {
        round_trip(&PackageList { total: packages.len() as u64, packages })?;
        round_trip(&PatchList::new(patches))?;
    }

    #[test]
    fn system_types_round_trip(h in arb_health(), text in arb_text(), ts1 in proptest::option::of(arb_ts()),
                               pid in proptest::option::of(any::<u32>()), b: bool) {
        round_trip(&h)?;
        round_trip(&SystemInfo { hostname: text.clone(), os: text.clone(), os_version: text.clone(), kernel: text.clone(),
                                 architecture: text.clone(), last_update_check: ts1, last_update_apply: ts1, pending_reboot: b })?;
        round_trip(&ServiceStatus { name: text.clone(), display_name: text.clone(), active_state: text.clone(),
                                    sub_state: text.clone(), load_state: text.clone(), enabled_state: text, main_pid: pid, healthy: b })?;
    }

    #[test]
    fn accepted_bodies_round_trip(id in arb_uuid(), other in arb_uuid(), op in arb_job_operation(), names in proptest::collection::vec(arb_name(), 0..4),
                                  name in arb_name(), now in arb_ts(), delay in 0u64..=86_400, b: bool, st in arb_job_status()) {
        round_trip(&JobAccepted::install(id, names.clone()))?;
        round_trip(&JobAccepted::update(id, op, name.clone()))?;
        round_trip(&JobAccepted::remove(id, name))?;
        round_trip(&JobAccepted::patch_apply(id, names, b))?;
        round_trip(&RollbackAccepted::new(id, other))?;
        round_trip(&RebootAccepted::new(id, now, delay, b))?;
        round_trip(&JobDeleted::new(id))?;
        round_trip(&JobList { jobs: vec![st, st], total: 2 })?;
    }

    #[test]
    fn install_and_update_requests_round_trip(req in arb_install_request(), version in proptest::option::of(arb_version()),
                                              opts in proptest::option::of(any::<bool>())) {
        request_round_trip(&req)?;
        request_round_trip(&UpdateRequest { version, options: opts.map(|f| InstallOptions { force: f, ..Default::default() }) })?;
    }

    #[test]
    fn patch_apply_and_reboot_requests_round_trip(
        packages in proptest::option::of(proptest::collection::vec(arb_name(), 0..5)), allow_reboot: bool,
        delay in 0u64..=86_400, force: bool, reason in proptest::option::of("[ -~]{0,40}"), ack: bool,
    ) {
        request_round_trip(&PatchApplyRequest { packages, allow_reboot, reboot_delay_seconds: delay })?;
        request_round_trip(&RebootRequest { delay_seconds: delay, force, reason, acknowledge_package_database_corruption_risk: ack })?;
    }

    #[test]
    fn queries_round_trip_through_the_query_string(q in arb_package_query(), st in proptest::option::of(arb_job_status()),
                                                   limit in 1u32..=1000, purge: bool, force: bool) {
        let text = serde_urlencoded::to_string(&q).unwrap();
        prop_assert_eq!(parse_query::<PackageQuery>(&text).map_err(|e| TestCaseError::fail(e.to_string()))?, q.clone());
        round_trip(&q)?;
        let jq = JobQuery { status: st, limit };
        prop_assert_eq!(parse_query::<JobQuery>(&serde_urlencoded::to_string(jq).unwrap()).unwrap(), jq);
        round_trip(&jq)?;
        let rq = RemoveQuery { purge, force };
        prop_assert_eq!(parse_query::<RemoveQuery>(&serde_urlencoded::to_string(rq).unwrap()).unwrap(), rq);
    }

    #[test]
    fn websocket_messages_round_trip(m in arb_client_message(), e in arb_server_event()) {
        round_trip(&m)?;
        let text = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(parse_json::<ClientMessage>(text.as_bytes()).unwrap(), m);
        round_trip(&e)?;
    }

    #[test]
    fn error_codes_round_trip(e in arb_api_error()) {
        round_trip(&e)?;
    }

    #[test]
    fn validation_never_panics_and_refuses_leading_dashes(s in "\\PC{0,300}") {
        let body = json!({"packages": [{"name": s.clone(), "version": s.clone()}]}).to_string();
        let result = parse_request::<InstallRequest>(body.as_bytes());
        if s.starts_with('-') || s.contains("..") || s.is_empty() || s.chars().count() > 256 {
            prop_assert!(result.is_err());
        }
        if let Err(e) = result {
            prop_assert!(e.field.starts_with("packages[0]."), "{}", e);
        }
    }

    #[test]
    fn glob_star_alone_matches_every_name(name in arb_name()) {
        prop_assert!(glob_matches("*", &name));
        prop_assert!(glob_matches(&name, &name));
        let prefix: String = name.chars().take(2).collect();
        let pattern = format!("{prefix}*");
        prop_assert!(glob_matches(&pattern, &name));
    }
}
