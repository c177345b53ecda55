//! The OpenAPI document is generated from the code; this snapshot makes every change to the API
//! surface visible in review (and the web UI's typed client is generated from the same file).
//! After an intended change: `UPDATE_SNAPSHOTS=1 cargo test -p patchdeck --test openapi`.

use std::path::Path;

#[test]
fn openapi_document_matches_the_snapshot() {
    let current = format!("{}\n", patchdeck::web::openapi::document_json());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &current).expect("write the snapshot");
    }
    let saved = std::fs::read_to_string(&path).unwrap_or_default();
    if saved != current {
        let first = saved.lines().zip(current.lines()).position(|(a, b)| a != b).unwrap_or(0);
        panic!(
            "the OpenAPI document changed (first difference at line {}: {:?}).\n\
             Review it, then run: UPDATE_SNAPSHOTS=1 cargo test -p patchdeck --test openapi",
            first + 1,
            current.lines().nth(first).unwrap_or("")
        );
    }
}

#[test]
fn openapi_document_is_valid_json_with_paths_and_security() {
    let doc: serde_json::Value = serde_json::from_str(patchdeck::web::openapi::document_json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/api/v1/auth/login"));
    assert!(paths.contains_key("/api/v1/health"));
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("api_token") && schemes.contains_key("session"));
}

/// The web UI's client is generated from the document: every schema it references must be in it,
/// and every operation id must be unique.
#[test]
fn openapi_references_resolve_and_operation_ids_are_unique() {
    let doc: serde_json::Value = serde_json::from_str(patchdeck::web::openapi::document_json()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = patchdeck::web::openapi::document_json();
    let mut missing: Vec<&str> = text
        .split("\"$ref\": \"#/components/schemas/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|name| !schemas.contains_key(*name))
        .collect();
    missing.dedup();
    assert!(missing.is_empty(), "schemas referenced but not defined: {missing:?}");
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "operation ids are not unique");
}

/// Who may call what is part of the API's contract: a change to a route's permission must show
/// up in review. (The RBAC matrix in `tests/rbac.rs` checks that the table is enforced.)
#[tokio::test]
async fn route_permissions_match_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = patchdeck::config::ManagerConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: "https://localhost:8443".into(),
        ..patchdeck::config::ManagerConfig::default()
    }
    .validated()
    .unwrap();
    let manager =
        patchdeck::server::Manager::start(config, std::sync::Arc::new(patchdeck::clock::SystemClock)).await.unwrap();
    let mut lines: Vec<String> = manager
        .routes
        .iter()
        .map(|r| format!("{:<7} {:<48} {}", r.method.as_str(), r.path, serde_json::to_string(&r.permission).unwrap()))
        .collect();
    lines.sort();
    let current = format!("{}\n", lines.join("\n"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/permissions.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &current).expect("write the snapshot");
    }
    let saved = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        saved == current,
        "route permissions changed; review, then run UPDATE_SNAPSHOTS=1 cargo test -p patchdeck --test openapi\n--- saved\n{saved}\n--- now\n{current}"
    );
}
