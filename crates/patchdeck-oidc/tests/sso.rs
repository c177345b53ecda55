//! The whole single sign-on flow against a real OpenID Connect provider on loopback (HTTPS with a
//! test CA): discovery, the authorization redirect followed with a real HTTP client, the code
//! exchange and ID-token validation; and every way it must fail.

use std::error::Error as _;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use patchdeck_oidc::{
    http_client_builder, CallbackParams, ClientSecret, Identity, MappedRole, OidcClient, OidcError, OidcSettings,
    PendingLogin,
};
use patchdeck_testkit::oidc::{ClientAuthMethod, IdTokenFault, ProviderConfig, TestOidcProvider, TestUser};
use serde_json::json;

async fn provider() -> TestOidcProvider {
    TestOidcProvider::start(ProviderConfig::default()).await
}

fn settings(provider: &TestOidcProvider) -> OidcSettings {
    let mut settings = OidcSettings::new(provider.issuer(), &provider.client().id, &provider.client().redirect_uris[0]);
    settings.role_map.admin = vec!["pd-admin".into()];
    settings.role_map.operator = vec!["pd-ops".into()];
    settings.role_map.viewer = vec!["staff".into()];
    settings
}

fn http(provider: &TestOidcProvider) -> reqwest::Client {
    let mut builder = http_client_builder();
    if let Some(pem) = provider.ca_pem() {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn secret(provider: &TestOidcProvider) -> ClientSecret {
    ClientSecret::new(&provider.client().secret)
}

async fn discover(provider: &TestOidcProvider, settings: &OidcSettings) -> OidcClient {
    OidcClient::discover(settings, secret(provider), http(provider)).await.unwrap()
}

/// What the browser does: follows the authorization URL and comes back with the query of the
/// redirect to the manager's callback.
async fn authorize(provider: &TestOidcProvider, url: &url::Url) -> CallbackParams {
    let response = http(provider).get(url.clone()).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::FOUND, "{:?}", response.text().await);
    let location = response.headers()[reqwest::header::LOCATION].to_str().unwrap().to_owned();
    let location = url::Url::parse(&location).unwrap();
    assert!(location.as_str().starts_with(&provider.client().redirect_uris[0]), "{location}");
    CallbackParams::from_query(location.query().unwrap_or_default()).unwrap()
}

/// A login of `user` up to the callback.
async fn start_login(
    provider: &TestOidcProvider,
    client: &OidcClient,
    user: TestUser,
) -> (PendingLogin, CallbackParams) {
    provider.set_next_user(user);
    let (url, pending) = client.begin();
    let callback = authorize(provider, &url).await;
    (pending, callback)
}

async fn login(provider: &TestOidcProvider, client: &OidcClient, user: TestUser) -> Result<Identity, OidcError> {
    let (pending, callback) = start_login(provider, client, user).await;
    client.complete_callback(&pending, &callback).await
}

/// The error, its message and its sources hold none of `secrets`.
fn assert_no_secrets(err: &OidcError, secrets: &[&str]) {
    let mut text = format!("{err} {err:?}");
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(&format!(" {s} {s:?}"));
        source = s.source();
    }
    for secret in secrets {
        assert!(!text.contains(secret), "the error reveals a secret: {text}");
    }
}

fn alice() -> TestUser {
    TestUser::new("alice").with_roles(&["staff", "pd-ops"]).with_groups(&["eng", "oncall"])
}

#[tokio::test]
async fn login_over_https_maps_role_and_groups() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    assert!(!format!("{client:?}").contains(&provider.client().secret));

    provider.set_next_user(alice());
    let (url, pending) = client.begin();
    let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let param = |name: &str| query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(param("response_type"), Some("code"));
    assert_eq!(param("code_challenge_method"), Some("S256"));
    assert_eq!(param("state"), Some(pending.state()));
    assert_eq!(param("scope"), Some("openid profile email"));
    assert!(param("nonce").is_some_and(|n| n.len() >= 22));
    assert!(!url.as_str().contains(&provider.client().secret));

    let callback = authorize(&provider, &url).await;
    assert_eq!(callback.state.as_deref(), Some(pending.state()));
    assert_eq!(callback.iss.as_deref(), Some(provider.issuer()));
    let code = callback.code.clone().unwrap();
    let identity = client.complete(&pending, callback.state.as_deref().unwrap(), &code).await.unwrap();
    assert_eq!(
        identity,
        Identity {
            subject: "sub-alice".into(),
            issuer: provider.issuer().into(),
            username: "alice".into(),
            email: Some("alice@example.test".into()),
            email_verified: true,
            display_name: Some("Test User alice".into()),
            role: MappedRole::Operator,
            groups: vec!["eng".into(), "oncall".into()],
        }
    );
    assert_eq!(provider.last_client_auth(), Some(ClientAuthMethod::ClientSecretBasic));
}

#[tokio::test]
async fn client_secret_post_when_the_provider_only_offers_it() {
    let provider = TestOidcProvider::start(ProviderConfig {
        auth_method: ClientAuthMethod::ClientSecretPost,
        ..Default::default()
    })
    .await;
    let client = discover(&provider, &settings(&provider)).await;
    let identity = login(&provider, &client, alice()).await.unwrap();
    assert_eq!(identity.role, MappedRole::Operator);
    assert_eq!(provider.last_client_auth(), Some(ClientAuthMethod::ClientSecretPost));
}

#[tokio::test]
async fn role_mapping_highest_wins_nested_claims_default_and_refusal() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;

    let both = TestUser::new("root").with_roles(&["staff", "pd-admin", "pd-ops"]);
    assert_eq!(login(&provider, &client, both).await.unwrap().role, MappedRole::Admin);

    // No mapped role and no default: refused, naming the user.
    let nobody = TestUser::new("mallory").with_roles(&["contractor"]);
    let err = login(&provider, &client, nobody.clone()).await.unwrap_err();
    match &err {
        OidcError::NoRole { subject, username, claim } => {
            assert_eq!((subject.as_str(), username.as_str(), claim.as_str()), ("sub-mallory", "mallory", "roles"));
        }
        other => panic!("expected NoRole, got {other:?}"),
    }
    assert!(err.is_user_facing());

    // With a default role they get it.
    let mut with_default = settings(&provider);
    with_default.default_role = Some(MappedRole::Viewer);
    let client = discover(&provider, &with_default).await;
    assert_eq!(login(&provider, &client, nobody).await.unwrap().role, MappedRole::Viewer);

    // A Keycloak-style nested claim, and a group claim under another name.
    let mut keycloak = settings(&provider);
    keycloak.role_claim = "realm_access.roles".into();
    keycloak.group_claim = "team".into();
    let client = discover(&provider, &keycloak).await;
    let mut user = TestUser::new("kc").with_roles(&["pd-admin"]);
    user.extra_claims.insert("realm_access".into(), json!({"roles": ["offline_access", "pd-ops"]}));
    user.extra_claims.insert("team".into(), json!("blue"));
    let identity = login(&provider, &client, user).await.unwrap();
    assert_eq!(identity.role, MappedRole::Operator, "the top-level `roles` claim must not count");
    assert_eq!(identity.groups, ["blue"]);

    // A claim of the wrong shape is a clear configuration error.
    let mut wrong = settings(&provider);
    wrong.role_claim = "realm_access".into();
    let client = discover(&provider, &wrong).await;
    let mut user = TestUser::new("kc2");
    user.extra_claims.insert("realm_access".into(), json!({"roles": ["pd-ops"]}));
    match login(&provider, &client, user).await {
        Err(OidcError::ClaimType { claim }) => assert_eq!(claim, "realm_access"),
        other => panic!("expected ClaimType, got {other:?}"),
    }
}

#[tokio::test]
async fn claims_missing_from_the_id_token_come_from_userinfo() {
    let provider =
        TestOidcProvider::start(ProviderConfig { claims_in_userinfo_only: true, ..Default::default() }).await;
    let client = discover(&provider, &settings(&provider)).await;
    let identity = login(&provider, &client, alice()).await.unwrap();
    assert_eq!(identity.role, MappedRole::Operator);
    assert_eq!(identity.groups, ["eng", "oncall"]);
}

#[tokio::test]
async fn username_falls_back_to_verified_email_then_subject() {
    let provider = provider().await;
    let mut settings = settings(&provider);
    settings.default_role = Some(MappedRole::Viewer);
    let client = discover(&provider, &settings).await;

    let mut user = TestUser::new("bob");
    user.preferred_username = None;
    assert_eq!(login(&provider, &client, user.clone()).await.unwrap().username, "bob@example.test");
    user.email_verified = false;
    let identity = login(&provider, &client, user).await.unwrap();
    assert_eq!(identity.username, "sub-bob", "an unverified address must not become the username");
    assert_eq!(identity.email.as_deref(), Some("bob@example.test"));
    assert!(!identity.email_verified);
}

#[tokio::test]
async fn wrong_state_is_refused_before_the_code_is_spent() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    let (pending, callback) = start_login(&provider, &client, alice()).await;
    let code = callback.code.clone().unwrap();

    // The callback of another login (a login CSRF) or a forged state.
    let (_, other_pending) = client.begin();
    for state in [other_pending.state(), "", &pending.state()[1..]] {
        let err = client.complete(&pending, state, &code).await.unwrap_err();
        assert!(matches!(err, OidcError::StateMismatch), "{err:?}");
        assert_no_secrets(&err, &[&code]);
    }
    assert_eq!(provider.token_requests(), 0);
    // The genuine callback still works.
    assert_eq!(client.complete_callback(&pending, &callback).await.unwrap().username, "alice");
}

#[tokio::test]
async fn a_code_is_single_use() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    let (pending, callback) = start_login(&provider, &client, alice()).await;
    client.complete_callback(&pending, &callback).await.unwrap();
    let err = client.complete_callback(&pending, &callback).await.unwrap_err();
    match &err {
        OidcError::TokenRejected { error } => assert_eq!(error, "invalid_grant"),
        other => panic!("expected TokenRejected, got {other:?}"),
    }
    assert_no_secrets(&err, &[callback.code.as_deref().unwrap(), &provider.client().secret]);
}

#[tokio::test]
async fn a_tampered_pkce_verifier_is_refused() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    let (pending, callback) = start_login(&provider, &client, alice()).await;

    let mut stored = serde_json::to_value(&pending).unwrap();
    let verifier = stored["pkce_verifier"].as_str().unwrap().to_owned();
    stored["pkce_verifier"] = json!(verifier.chars().rev().collect::<String>());
    let tampered: PendingLogin = serde_json::from_value(stored).unwrap();

    let err = client.complete_callback(&tampered, &callback).await.unwrap_err();
    match &err {
        OidcError::TokenRejected { error } => assert_eq!(error, "invalid_grant"),
        other => panic!("expected TokenRejected, got {other:?}"),
    }
    assert_no_secrets(&err, &[&verifier, callback.code.as_deref().unwrap()]);
    assert_eq!(provider.last_client_auth(), None, "no token was issued");
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused() {
    let provider = provider().await;
    let client = OidcClient::discover(&settings(&provider), ClientSecret::new("guess"), http(&provider)).await.unwrap();
    let err = login(&provider, &client, alice()).await.unwrap_err();
    match &err {
        OidcError::TokenRejected { error } => assert_eq!(error, "invalid_client"),
        other => panic!("expected TokenRejected, got {other:?}"),
    }
    assert_no_secrets(&err, &["guess"]);
}

/// Logs in with `fault` built into the ID token and returns the error.
async fn login_with_fault(fault: IdTokenFault) -> OidcError {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    provider.set_id_token_fault(Some(fault));
    let (pending, callback) = start_login(&provider, &client, alice()).await;
    let err = client.complete_callback(&pending, &callback).await.unwrap_err();
    let stored = serde_json::to_value(&pending).unwrap();
    assert_no_secrets(
        &err,
        &[
            callback.code.as_deref().unwrap(),
            stored["nonce"].as_str().unwrap(),
            stored["pkce_verifier"].as_str().unwrap(),
            &provider.client().secret,
            "eyJ", // the start of any JWT
        ],
    );
    assert_eq!(provider.token_requests(), 1, "{fault:?}: the exchange itself succeeded");
    err
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_refused() {
    let err = login_with_fault(IdTokenFault::ForeignKey).await;
    assert!(matches!(err, OidcError::BadSignature(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let err = login_with_fault(IdTokenFault::WrongAudience).await;
    assert!(matches!(err, OidcError::WrongAudience(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    let err = login_with_fault(IdTokenFault::WrongIssuer).await;
    assert!(matches!(err, OidcError::WrongIssuer(_)), "{err:?}");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let err = login_with_fault(IdTokenFault::Expired).await;
    assert!(matches!(err, OidcError::Expired(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_with_another_nonce_is_refused() {
    let err = login_with_fault(IdTokenFault::WrongNonce).await;
    assert!(matches!(err, OidcError::NonceMismatch(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_whose_at_hash_does_not_match_is_refused() {
    let err = login_with_fault(IdTokenFault::WrongAtHash).await;
    assert!(matches!(err, OidcError::AccessTokenHashMismatch), "{err:?}");
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    let provider = provider().await;
    // The manager's clock lags the provider's by ten minutes.
    let client =
        discover(&provider, &settings(&provider)).await.with_clock(|| Timestamp::now() - SignedDuration::from_mins(10));
    let err = login(&provider, &client, alice()).await.unwrap_err();
    assert!(matches!(&err, OidcError::Expired(reason) if reason.contains("future")), "{err:?}");
}

#[tokio::test]
async fn the_signing_key_may_rotate_after_discovery() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    assert_eq!(login(&provider, &client, alice()).await.unwrap().username, "alice");
    assert_eq!(provider.jwks_requests(), 1);
    provider.rotate_signing_key();
    assert_eq!(login(&provider, &client, alice()).await.unwrap().username, "alice");
    assert_eq!(provider.jwks_requests(), 2, "the JWKS is fetched again once for the unknown kid");
    assert_eq!(login(&provider, &client, alice()).await.unwrap().username, "alice");
    assert_eq!(provider.jwks_requests(), 2, "and then kept");
}

#[tokio::test]
async fn a_stale_login_is_refused_by_the_injected_clock() {
    let provider = provider().await;
    let now = Arc::new(Mutex::new(Timestamp::now()));
    let clock = now.clone();
    let client = discover(&provider, &settings(&provider)).await.with_clock(move || *clock.lock().unwrap());
    let (pending, callback) = start_login(&provider, &client, alice()).await;
    assert_eq!(pending.created_at(), *now.lock().unwrap());
    *now.lock().unwrap() += SignedDuration::from_mins(11);
    let err = client.complete_callback(&pending, &callback).await.unwrap_err();
    assert!(matches!(err, OidcError::LoginExpired { age_secs: 660, limit_secs: 600 }), "{err:?}");
    assert!(err.is_user_facing());
    assert_eq!(provider.token_requests(), 0);
}

#[tokio::test]
async fn a_refusal_at_the_provider_comes_back_as_denied() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    // Nobody logs in: the provider answers login_required.
    let (url, pending) = client.begin();
    let callback = authorize(&provider, &url).await;
    assert_eq!(callback.code, None);
    let err = client.complete_callback(&pending, &callback).await.unwrap_err();
    match &err {
        OidcError::AuthorizationDenied { error } => assert_eq!(error, "login_required"),
        other => panic!("expected AuthorizationDenied, got {other:?}"),
    }
    // A forged error without the right state is a state mismatch, not a denial.
    let forged = CallbackParams { state: Some("forged".into()), ..callback };
    assert!(matches!(client.complete_callback(&pending, &forged).await, Err(OidcError::StateMismatch)));
}

#[tokio::test]
async fn a_callback_naming_another_issuer_is_refused() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    let (pending, mut callback) = start_login(&provider, &client, alice()).await;
    callback.iss = Some("https://evil.test".into());
    match client.complete_callback(&pending, &callback).await {
        Err(OidcError::CallbackIssuerMismatch { expected, found }) => {
            assert_eq!((expected.as_str(), found.as_str()), (provider.issuer(), "https://evil.test"));
        }
        other => panic!("expected CallbackIssuerMismatch, got {other:?}"),
    }
    assert_eq!(provider.token_requests(), 0);
}

#[tokio::test]
async fn discovery_requires_the_exact_issuer() {
    let provider = TestOidcProvider::start(ProviderConfig {
        advertised_issuer: Some("https://id.elsewhere.test".into()),
        ..Default::default()
    })
    .await;
    let err = OidcClient::discover(&settings(&provider), secret(&provider), http(&provider)).await.unwrap_err();
    match err {
        OidcError::IssuerMismatch { expected, found } => {
            assert_eq!(expected, provider.issuer());
            assert_eq!(found, "https://id.elsewhere.test");
        }
        other => panic!("expected IssuerMismatch, got {other:?}"),
    }

    // Even a trailing slash is another issuer.
    let provider = self::provider().await;
    let mut slash = settings(&provider);
    slash.issuer_url.push('/');
    let err = OidcClient::discover(&slash, secret(&provider), http(&provider)).await.unwrap_err();
    assert!(matches!(err, OidcError::IssuerMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn discovery_needs_the_test_ca() {
    let provider = provider().await;
    let untrusting = http_client_builder().build().unwrap();
    let err = OidcClient::discover(&settings(&provider), secret(&provider), untrusting).await.unwrap_err();
    match &err {
        OidcError::Transport { what, url, .. } => {
            assert_eq!(*what, "discovery document");
            assert_eq!(url, &format!("{}/.well-known/openid-configuration", provider.issuer()));
        }
        other => panic!("expected Transport, got {other:?}"),
    }
}

#[tokio::test]
async fn an_http_issuer_needs_the_explicit_flag() {
    let provider = TestOidcProvider::start(ProviderConfig { tls: false, ..Default::default() }).await;
    assert!(provider.issuer().starts_with("http://"));
    assert_eq!(provider.ca_pem(), None);

    let mut settings = settings(&provider);
    let err = OidcClient::discover(&settings, secret(&provider), http(&provider)).await.unwrap_err();
    match &err {
        OidcError::InsecureUrl { what, url } => {
            assert_eq!((*what, url.as_str()), ("issuer_url", provider.issuer()))
        }
        other => panic!("expected InsecureUrl, got {other:?}"),
    }
    assert_eq!(provider.jwks_requests(), 0, "nothing was fetched");

    settings.allow_insecure_http = true;
    let client = discover(&provider, &settings).await;
    assert_eq!(login(&provider, &client, alice()).await.unwrap().role, MappedRole::Operator);
}

/// The test provider itself refuses malformed authorization requests, as a real one does.
#[tokio::test]
async fn the_provider_validates_authorization_requests() {
    let provider = provider().await;
    let client = discover(&provider, &settings(&provider)).await;
    let (url, _pending) = client.begin();
    let with = |name: &str, value: Option<&str>| {
        let mut changed = url.clone();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().filter(|(n, _)| n != name).collect();
        let mut query = changed.query_pairs_mut();
        query.clear().extend_pairs(pairs);
        if let Some(value) = value {
            query.append_pair(name, value);
        }
        drop(query);
        changed
    };

    // Not redirected: the client or the redirect URI is unknown.
    for bad in [with("client_id", Some("intruder")), with("redirect_uri", Some("https://evil.test/cb"))] {
        provider.set_next_user(alice());
        let response = http(&provider).get(bad).send().await.unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::BAD_REQUEST);
    }
    // Redirected back with an error and no code.
    for (bad, error) in [
        (with("code_challenge_method", Some("plain")), "invalid_request"),
        (with("code_challenge", None), "invalid_request"),
        (with("nonce", None), "invalid_request"),
        (with("response_type", Some("token")), "unsupported_response_type"),
        (with("scope", Some("profile")), "invalid_scope"),
    ] {
        provider.set_next_user(alice());
        let callback = authorize(&provider, &bad).await;
        assert_eq!((callback.error.as_deref(), callback.code), (Some(error), None), "{bad}");
    }
}
