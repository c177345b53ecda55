//! Sign-in, sessions and API tokens against a real manager, on SQLite and on PostgreSQL.

mod common;

use common::{Client, TestManager, PASSWORD};
use jiff::SignedDuration;
use patchdeck_crypto::totp::TotpSecret;
use patchdeck_store::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The audit actions recorded so far, oldest first.
async fn audit_actions(m: &TestManager) -> Vec<(String, String)> {
    let page = m.state.store().audit_entries_after(None, 10_000).await.unwrap();
    page.into_iter().map(|e| (e.action, e.outcome.as_str().to_owned())).collect()
}

fn current_code(secret: &str, m: &TestManager) -> String {
    let secret = TotpSecret::from_base32(secret).unwrap();
    secret.code_at(m.state.now()).unwrap().to_string()
}

both_backends!(first_admin_must_change_password_then_enroll_mfa, |m: TestManager| async move {
    let client = m.client();
    let (status, body) = client.login("admin", &m.admin_password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["restriction"], "password_change");
    // Restricted: nothing but the account endpoints.
    let (status, body) = client.get("/api/v1/auth/tokens").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "password_change_required");
    let (status, body) = client
        .post("/api/v1/auth/password", json!({ "current_password": m.admin_password, "new_password": "short" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"]["field"], "new_password");
    let (status, _) = client
        .post("/api/v1/auth/password", json!({ "current_password": m.admin_password, "new_password": PASSWORD }))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // MFA is required by default: the next restriction is enrollment.
    let (_, me) = client.get("/api/v1/auth/me").await;
    assert_eq!(me["restriction"], "mfa_enrollment", "{me}");
    let (status, setup) = client.post("/api/v1/auth/mfa/totp", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    assert!(setup["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    let (status, body) = client.post("/api/v1/auth/mfa/totp/confirm", json!({ "code": "000000" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let code = current_code(setup["secret"].as_str().unwrap(), &m);
    let (status, codes) = client.post("/api/v1/auth/mfa/totp/confirm", json!({ "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{codes}");
    let recovery: Vec<String> =
        codes["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery.len(), 10);
    let (_, me) = client.get("/api/v1/auth/me").await;
    assert_eq!(me["restriction"], Value::Null, "{me}");
    assert_eq!(client.get("/api/v1/auth/tokens").await.0, StatusCode::OK);

    // A new login now needs the second factor.
    let other = m.client();
    let (status, step) = other.login("admin", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(step["status"], "mfa_required");
    assert!(other.cookie("pd_access").is_none(), "no session before the second factor");
    let token = step["mfa_token"].as_str().unwrap();
    // The code used for enrollment cannot be replayed.
    let (status, _) =
        other.post("/api/v1/auth/login/mfa", json!({ "mfa_token": token, "method": "totp", "code": code })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    m.advance(SignedDuration::from_secs(30));
    let code = current_code(setup["secret"].as_str().unwrap(), &m);
    let (status, body) =
        other.post("/api/v1/auth/login/mfa", json!({ "mfa_token": token, "method": "totp", "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    // A recovery code works once.
    let third = m.client();
    let (_, step) = third.login("admin", PASSWORD).await;
    let token = step["mfa_token"].as_str().unwrap();
    let use_code = |c: &Client, code: &str| {
        let (c, token, code) = (c.clone(), token.to_owned(), code.to_owned());
        async move {
            c.post("/api/v1/auth/login/mfa", json!({ "mfa_token": token, "method": "recovery_code", "code": code }))
                .await
                .0
        }
    };
    assert_eq!(use_code(&third, &recovery[0].to_uppercase()).await, StatusCode::OK);
    let fourth = m.client();
    let (_, step) = fourth.login("admin", PASSWORD).await;
    let token = step["mfa_token"].as_str().unwrap().to_owned();
    let (status, _) = fourth
        .post("/api/v1/auth/login/mfa", json!({ "mfa_token": token, "method": "recovery_code", "code": recovery[0] }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let actions = audit_actions(&m).await;
    for expected in ["user.password_change", "mfa.totp_enabled", "mfa.recovery_code_used"] {
        assert!(actions.iter().any(|(a, o)| a == expected && o == "success"), "{expected} in {actions:?}");
    }
    m.stop().await;
});

both_backends!(wrong_passwords_lock_the_account, |m: TestManager| async move {
    m.mfa_optional().await;
    m.user("olivia", Role::Operator).await;
    let client = m.client();
    for _ in 0..5 {
        let (status, body) = client.login("olivia", "wrong password!").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["message"], "wrong username or password");
        assert!(body["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    }
    // Locked: even the right password is refused, with a wait.
    let response = client
        .raw(reqwest::Method::POST, "/api/v1/auth/login", Some(json!({ "username": "olivia", "password": PASSWORD })))
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().get("retry-after").is_some());
    // The lock ends after the lockout time.
    m.advance(SignedDuration::from_mins(16));
    let (status, body) = client.login("olivia", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Unknown users get the same answer as wrong passwords.
    let (status, body) = client.login("nobody", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "wrong username or password");
    let actions = audit_actions(&m).await;
    assert!(actions.iter().any(|(a, _)| a == "auth.lockout"), "{actions:?}");
    assert!(actions.iter().filter(|(a, o)| a == "auth.login" && o == "failure").count() >= 6);
    m.stop().await;
});

both_backends!(refresh_rotates_and_reuse_ends_the_session, |m: TestManager| async move {
    let (client, _) = m.signed_in("rita", Role::Viewer).await;
    let first_refresh = client.cookie("pd_refresh").unwrap();
    let first_access = client.cookie("pd_access").unwrap();
    // Without the CSRF header a refresh is refused.
    let bare = m.client();
    bare.set_cookie("pd_refresh", &first_refresh);
    assert_eq!(bare.post("/api/v1/auth/refresh", json!({})).await.0, StatusCode::FORBIDDEN);
    let (status, body) = client.post("/api/v1/auth/refresh", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second_refresh = client.cookie("pd_refresh").unwrap();
    assert_ne!(first_refresh, second_refresh);
    assert_ne!(first_access, client.cookie("pd_access").unwrap());
    assert_eq!(client.get("/api/v1/auth/me").await.0, StatusCode::OK);
    // A thief replays the first refresh token: the whole session ends, for both.
    let thief = m.client();
    thief.set_cookie("pd_refresh", &first_refresh);
    thief.set_cookie("pd_csrf", "x");
    let (status, _) = thief.post("/api/v1/auth/refresh", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = client.get("/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the access token's session was revoked");
    let (status, _) = client.post("/api/v1/auth/refresh", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let actions = audit_actions(&m).await;
    assert!(actions.iter().any(|(a, o)| a == "auth.refresh_reuse" && o == "denied"), "{actions:?}");
    m.stop().await;
});

both_backends!(sessions_expire_when_idle_and_can_be_revoked, |m: TestManager| async move {
    let (client, _) = m.signed_in("ivan", Role::Viewer).await;
    // The access token lasts 15 minutes; after that a refresh gives a new one.
    m.advance(SignedDuration::from_mins(16));
    assert_eq!(client.get("/api/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(client.post("/api/v1/auth/refresh", json!({})).await.0, StatusCode::OK);
    assert_eq!(client.get("/api/v1/auth/me").await.0, StatusCode::OK);
    // An hour without refreshing ends the session.
    m.advance(SignedDuration::from_mins(61));
    assert_eq!(client.post("/api/v1/auth/refresh", json!({})).await.0, StatusCode::UNAUTHORIZED);

    // Revocation by the user, from another session.
    let (a, _) = (m.client(), ());
    let (status, _) = a.login("ivan", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);
    let b = m.client();
    b.login("ivan", PASSWORD).await;
    let (_, me_b) = b.get("/api/v1/auth/me").await;
    let b_session = me_b["session_id"].as_i64().unwrap();
    let (_, sessions) = a.get("/api/v1/auth/sessions").await;
    assert!(sessions.as_array().unwrap().iter().any(|s| s["id"] == b_session && s["current"] == false));
    assert_eq!(a.delete(&format!("/api/v1/auth/sessions/{b_session}")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(b.get("/api/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    // Logout ends a's own session and clears its cookies.
    assert_eq!(a.post("/api/v1/auth/logout", json!({})).await.0, StatusCode::NO_CONTENT);
    assert!(a.cookie("pd_access").is_none());
    m.stop().await;
});

both_backends!(unsafe_requests_need_the_csrf_header, |m: TestManager| async move {
    let (client, _) = m.signed_in("carl", Role::Viewer).await;
    let csrf = client.cookie("pd_csrf").unwrap();
    client.forget_cookie("pd_csrf");
    let (status, body) = client.post("/api/v1/auth/tokens", json!({ "label": "x", "expires_in_days": 1 })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "csrf_failed");
    client.set_cookie("pd_csrf", &csrf);
    let (status, _) = client.post("/api/v1/auth/tokens", json!({ "label": "x", "expires_in_days": 1 })).await;
    assert_eq!(status, StatusCode::CREATED);
    m.stop().await;
});

both_backends!(api_tokens_act_for_their_owner_until_revoked_or_expired, |m: TestManager| async move {
    let (client, _) = m.signed_in("tess", Role::Viewer).await;
    let (status, body) = client.post("/api/v1/auth/tokens", json!({ "label": "ci", "expires_in_days": 0 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["details"]["field"], "expires_in_days");
    let (status, created) = client.post("/api/v1/auth/tokens", json!({ "label": "ci", "expires_in_days": 2 })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap();
    assert!(secret.starts_with("pdk_api_"));
    let script = client.with_bearer(secret);
    let (status, me) = script.get("/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["username"], "tess");
    // Limited to the owner's rights: a viewer's token cannot reach admin endpoints.
    assert_eq!(script.get("/metrics").await.0, StatusCode::FORBIDDEN);
    // The listing never shows the secret or its hash.
    let (_, list) = client.get("/api/v1/auth/tokens").await;
    assert!(!list.to_string().contains(secret));
    assert_eq!(list[0]["label"], "ci");
    // Expiry.
    m.advance(SignedDuration::from_hours(49));
    assert_eq!(script.get("/api/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    // Revocation.
    let (client, _) = m.signed_in("tess2", Role::Admin).await;
    let (_, created) = client.post("/api/v1/auth/tokens", json!({ "label": "prom", "expires_in_days": 30 })).await;
    let script = client.with_bearer(created["token"].as_str().unwrap());
    let (status, metrics) = script.send(reqwest::Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK, "{metrics}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(client.delete(&format!("/api/v1/auth/tokens/{id}")).await.0, StatusCode::NO_CONTENT);
    assert_eq!(script.get("/api/v1/auth/me").await.0, StatusCode::UNAUTHORIZED);
    // Garbage bearer tokens are refused plainly.
    let (status, body) = m.client().with_bearer("not-a-token").get("/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    m.stop().await;
});

both_backends!(upkeep_prunes_the_audit_log_past_retention_and_says_so, |m: TestManager| async move {
    m.mfa_optional().await;
    m.client().login("nobody", "wrong password").await;
    let before = m.state.store().audit_entries_after(None, 10_000).await.unwrap().len();
    assert!(before >= 2);
    m.advance(SignedDuration::from_hours(24 * 184));
    patchdeck::server::run_upkeep(&m.state).await;
    let after = m.state.store().audit_entries_after(None, 10_000).await.unwrap();
    // Only the records of the pruning are left: the audit log's, then the operational data's
    // (this process's job worker, last heard 184 days ago on the moved clock).
    let actions: Vec<&str> = after.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["audit.prune", "data.prune"], "{after:?}");
    assert_eq!(after[0].details["deleted"], before as u64);
    assert_eq!(after[1].details["workers"], 1, "{after:?}");
    assert!(m.state.store().verify_audit_chain().await.unwrap().first_broken.is_none());
    m.stop().await;
});
