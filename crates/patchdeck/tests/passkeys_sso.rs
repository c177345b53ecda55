//! Passkeys with a software authenticator, and single sign-on against a real OIDC provider run by
//! the test, on SQLite and on PostgreSQL.

mod common;

use common::{Client, TestManager, PASSWORD};
use patchdeck_store::Role;
use patchdeck_testkit::oidc::{ProviderConfig, TestOidcProvider, TestUser};
use patchdeck_testkit::webauthn::SoftAuthenticator;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Registers a passkey for the signed-in `client`.
async fn add_passkey(m: &TestManager, client: &Client, authenticator: &mut SoftAuthenticator, name: &str) -> Value {
    let (status, start) = client.post("/api/v1/auth/mfa/passkeys/options", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let credential = authenticator.register(&start["options"], &m.base);
    let (status, added) = client
        .post(
            "/api/v1/auth/mfa/passkeys",
            json!({ "name": name, "ceremony": start["ceremony"], "credential": credential }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    added
}

/// Password step, then the passkey options; returns (mfa_token, options, ceremony).
async fn passkey_challenge(client: &Client, username: &str) -> (String, Value, String) {
    let (_, step) = client.login(username, PASSWORD).await;
    assert_eq!(step["status"], "mfa_required", "{step}");
    assert!(step["methods"].as_array().unwrap().contains(&json!("passkey")));
    let token = step["mfa_token"].as_str().unwrap().to_owned();
    let (status, start) = client.post("/api/v1/auth/login/passkey/options", json!({ "mfa_token": token })).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    (token, start["options"].clone(), start["ceremony"].as_str().unwrap().to_owned())
}

both_backends!(passkey_enrollment_and_login, |m: TestManager| async move {
    let (client, _) = m.signed_in("paula", Role::Operator).await;
    let mut key = SoftAuthenticator::new();
    let added = add_passkey(&m, &client, &mut key, "YubiKey").await;
    assert_eq!(added["name"], "YubiKey");
    let mut second = SoftAuthenticator::new_ed25519();
    add_passkey(&m, &client, &mut second, "Laptop").await;
    let (_, list) = client.get("/api/v1/auth/mfa/passkeys").await;
    assert_eq!(list.as_array().unwrap().len(), 2);

    // Login: password, then the passkey.
    let browser = m.client();
    let (token, options, ceremony) = passkey_challenge(&browser, "paula").await;
    let assertion = key.authenticate(&options, &m.base);
    let (status, body) = browser
        .post(
            "/api/v1/auth/login/passkey",
            json!({ "mfa_token": token, "ceremony": ceremony, "credential": assertion }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert!(browser.cookie("pd_access").is_some());
    // The same ceremony and ticket cannot be used again.
    let (status, _) = browser
        .post(
            "/api/v1/auth/login/passkey",
            json!({ "mfa_token": token, "ceremony": ceremony, "credential": assertion }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Ed25519 works as well.
    let browser = m.client();
    let (token, options, ceremony) = passkey_challenge(&browser, "paula").await;
    let assertion = second.authenticate(&options, &m.base);
    let (status, _) = browser
        .post(
            "/api/v1/auth/login/passkey",
            json!({ "mfa_token": token, "ceremony": ceremony, "credential": assertion }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<String> =
        m.state.store().audit_entries_after(None, 10_000).await.unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(actions.iter().filter(|a| *a == "mfa.passkey_added").count(), 2);
    m.stop().await;
});

both_backends!(bad_passkey_assertions_are_refused, |m: TestManager| async move {
    let (client, _) = m.signed_in("pete", Role::Viewer).await;
    let mut key = SoftAuthenticator::new();
    add_passkey(&m, &client, &mut key, "key").await;
    let attempt = |assertion: Value, token: String, ceremony: String| {
        let browser = client.clone();
        async move {
            browser
                .post(
                    "/api/v1/auth/login/passkey",
                    json!({ "mfa_token": token, "ceremony": ceremony, "credential": assertion }),
                )
                .await
                .0
        }
    };
    let fresh = m.client();
    // A phishing site's origin.
    let (token, options, ceremony) = passkey_challenge(&fresh, "pete").await;
    let assertion = key.authenticate(&options, "https://patchdeck.evil.example");
    assert_eq!(attempt(assertion, token, ceremony).await, StatusCode::UNAUTHORIZED);
    // An answer to another challenge.
    let (token, options, _) = passkey_challenge(&fresh, "pete").await;
    let (_, _, other_ceremony) = passkey_challenge(&fresh, "pete").await;
    let assertion = key.authenticate(&options, &m.base);
    assert_eq!(attempt(assertion, token, other_ceremony).await, StatusCode::UNAUTHORIZED);
    // A cloned authenticator: the signature counter goes backwards.
    let (token, options, ceremony) = passkey_challenge(&fresh, "pete").await;
    let good = key.authenticate(&options, &m.base);
    assert_eq!(attempt(good, token, ceremony).await, StatusCode::OK);
    key.replay_sign_count(1);
    let (token, options, ceremony) = passkey_challenge(&fresh, "pete").await;
    let cloned = key.authenticate(&options, &m.base);
    assert_eq!(attempt(cloned, token, ceremony).await, StatusCode::UNAUTHORIZED);
    // Another user's passkey does not sign pete in.
    let (other, _) = m.signed_in("olga", Role::Viewer).await;
    let mut olgas = SoftAuthenticator::new();
    add_passkey(&m, &other, &mut olgas, "olga's").await;
    let (token, options, ceremony) = passkey_challenge(&fresh, "pete").await;
    olgas.set_ignore_allow_list(true);
    let foreign = olgas.authenticate(&options, &m.base);
    assert_eq!(attempt(foreign, token, ceremony).await, StatusCode::UNAUTHORIZED);
    let failures = m
        .state
        .store()
        .audit_entries_after(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "auth.login" && e.outcome.as_str() == "failure")
        .count();
    assert!(failures >= 4, "every refused assertion is audited ({failures})");
    m.stop().await;
});

/// A provider whose one client may redirect to this manager's callback.
async fn provider_for(m: &TestManager) -> TestOidcProvider {
    let mut config = ProviderConfig::default();
    config.client.redirect_uris = vec![format!("{}/api/v1/auth/oidc/callback", m.base)];
    TestOidcProvider::start(config).await
}

async fn configure_sso(m: &TestManager, admin: &Client, provider: &TestOidcProvider, default_role: Value) -> Value {
    let (status, body) = admin
        .put(
            "/api/v1/settings/sso",
            json!({
                "enabled": true,
                "name": "Test IdP",
                "issuer_url": provider.issuer(),
                "client_id": provider.client().id,
                "client_secret": provider.client().secret,
                "role_map": { "admin": ["pd-admins"], "operator": ["pd-ops"], "viewer": ["pd-auditors"] },
                "default_role": default_role,
                "ca_pem": provider.ca_pem(),
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "SSO settings refused on {}: {body}", m.base);
    body
}

/// Runs the browser side of an SSO login; returns where the manager finally redirects to.
async fn sso_login(m: &TestManager, browser: &Client, provider: &TestOidcProvider) -> String {
    let response = browser.raw(reqwest::Method::GET, "/api/v1/auth/oidc/login", None).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let authorize = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(provider.issuer()), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256"), "{authorize}");
    let ca = reqwest::Certificate::from_pem(provider.ca_pem().unwrap().as_bytes()).unwrap();
    let idp = reqwest::Client::builder()
        .add_root_certificate(ca)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let back = idp.get(&authorize).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let path = callback.strip_prefix(&m.base).unwrap_or_else(|| panic!("redirected elsewhere: {callback}"));
    let done = browser.raw(reqwest::Method::GET, path, None).await;
    assert_eq!(done.status(), StatusCode::FOUND);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    for url in [&authorize, &callback, &location] {
        for secret in ["id_token", "access_token", "refresh_token", "client_secret"] {
            assert!(!url.contains(secret), "a token in a URL: {url}");
        }
    }
    location
}

both_backends!(sso_login_maps_roles_and_groups, |m: TestManager| async move {
    let provider = provider_for(&m).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    let (_, methods) = m.client().get("/api/v1/auth/methods").await;
    assert_eq!(methods["sso"]["enabled"], false);
    let settings = configure_sso(&m, &admin, &provider, Value::Null).await;
    assert_eq!(settings["client_secret_set"], true);
    assert!(!settings.to_string().contains(&provider.client().secret), "the secret is never returned");
    let (_, methods) = m.client().get("/api/v1/auth/methods").await;
    assert_eq!(methods["sso"], json!({ "enabled": true, "name": "Test IdP" }));
    let web = m.state.store().create_group("web", "", m.state.now()).await.unwrap();

    provider.set_next_user(TestUser::new("sam").with_roles(&["pd-ops"]).with_groups(&["web", "unknown-group"]));
    let browser = m.client();
    let landing = sso_login(&m, &browser, &provider).await;
    assert_eq!(landing, "/");
    let (status, me) = browser.get("/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["username"], "sam");
    assert_eq!(me["user"]["role"], "operator");
    assert_eq!(me["user"]["auth_source"], "oidc");
    assert_eq!(me["restriction"], Value::Null, "SSO users are not asked for local MFA");
    let sam = m.state.store().get_user_by_username("sam").await.unwrap().unwrap();
    let groups = m.state.store().user_group_ids(sam.id).await.unwrap();
    assert_eq!(groups.iter().map(|g| g.0).collect::<Vec<_>>(), vec![web.id.0]);

    // Next login: the provider now says admin and no groups; the account follows.
    provider.set_next_user(TestUser::new("sam").with_roles(&["pd-admins"]));
    let browser = m.client();
    assert_eq!(sso_login(&m, &browser, &provider).await, "/");
    let (_, me) = browser.get("/api/v1/auth/me").await;
    assert_eq!(me["user"]["role"], "admin");
    assert!(m.state.store().user_group_ids(sam.id).await.unwrap().is_empty());
    // An SSO account has no local password.
    let (status, _) = m.client().login("sam", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    m.stop().await;
});

both_backends!(sso_refusals, |m: TestManager| async move {
    let provider = provider_for(&m).await;
    let (admin, _) = m.signed_in("root", Role::Admin).await;
    // A provider that cannot be reached is refused when the settings are saved.
    let (status, body) = admin
        .put(
            "/api/v1/settings/sso",
            json!({ "enabled": true, "name": "x", "issuer_url": "https://127.0.0.1:9/", "client_id": "c",
                    "client_secret": "s", "role_map": {} }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    configure_sso(&m, &admin, &provider, Value::Null).await;
    // No mapped role and no default role: refused.
    provider.set_next_user(TestUser::new("nina").with_roles(&["someone-else"]));
    let browser = m.client();
    let landing = sso_login(&m, &browser, &provider).await;
    assert!(landing.starts_with("/login?sso_error="), "{landing}");
    assert!(browser.cookie("pd_access").is_none());
    // A local account of the same name is never taken over.
    m.user("lena", Role::Viewer).await;
    provider.set_next_user(TestUser::new("lena").with_roles(&["pd-admins"]));
    let landing = sso_login(&m, &m.client(), &provider).await;
    assert_eq!(landing, "/login?sso_error=username_taken");
    // A callback with a forged state is refused.
    provider.set_next_user(TestUser::new("sam").with_roles(&["pd-ops"]));
    let browser = m.client();
    let response = browser.raw(reqwest::Method::GET, "/api/v1/auth/oidc/login", None).await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let forged = browser.raw(reqwest::Method::GET, "/api/v1/auth/oidc/callback?code=abc&state=forged", None).await;
    assert_eq!(forged.headers()["location"], "/login?sso_error=failed");
    // Without the pending-login cookie (another browser) nothing happens.
    let stranger = m.client();
    let response = stranger.raw(reqwest::Method::GET, "/api/v1/auth/oidc/callback?code=abc&state=x", None).await;
    assert_eq!(response.headers()["location"], "/login?sso_error=expired");
    let failures = m
        .state
        .store()
        .audit_entries_after(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == "auth.login" && e.outcome.as_str() == "failure" && e.actor.starts_with("sso:"))
        .count();
    assert!(failures >= 4, "{failures}");
    m.stop().await;
});
