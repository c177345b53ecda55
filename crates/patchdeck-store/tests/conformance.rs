//! One behaviour on both backends: every test here runs against SQLite and PostgreSQL.

use jiff::Timestamp;
use patchdeck_store::*;

mod harness {
    use patchdeck_store::{DatabaseConfig, Store, StoreOptions};
    use patchdeck_testkit::pg::TestDatabase;
    use sqlx::AnyPool;

    pub struct Harness {
        pub store: Store,
        pub config: DatabaseConfig,
        pub dir: tempfile::TempDir,
        _pg: Option<TestDatabase>,
    }

    impl Harness {
        pub async fn sqlite() -> Harness {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = DatabaseConfig::Sqlite { path: dir.path().join("patchdeck.db") };
            Self::open(config, dir, None).await
        }

        pub async fn postgres() -> Harness {
            let db = TestDatabase::create().await;
            let config = DatabaseConfig::Postgres { url: db.url().to_owned() };
            Self::open(config, tempfile::tempdir().expect("tempdir"), Some(db)).await
        }

        async fn open(config: DatabaseConfig, dir: tempfile::TempDir, pg: Option<TestDatabase>) -> Harness {
            // Small verification batches, so a short chain already spans several of them.
            let options = StoreOptions { audit_verify_batch: 50, ..StoreOptions::default() };
            let store = Store::connect_with(&config, &options).await.expect("connect");
            store.migrate().await.expect("migrate");
            Harness { store, config, dir, _pg: pg }
        }

        /// A separate pool on the same database, for what only an attacker with database
        /// access would do (tampering with the audit log).
        pub async fn raw(&self) -> AnyPool {
            sqlx::any::install_default_drivers();
            let url = match &self.config {
                DatabaseConfig::Sqlite { path } => format!("sqlite://{}", path.display()),
                DatabaseConfig::Postgres { url } => url.clone(),
            };
            AnyPool::connect(&url).await.expect("raw connection")
        }
    }
}
use harness::Harness;

macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let harness = super::Harness::sqlite().await;
                    super::$name(&harness).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let harness = super::Harness::postgres().await;
                    super::$name(&harness).await;
                }
            )+
        }
    };
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

const T0: i64 = 1_700_000_000;

fn new_user(name: &str, role: Role) -> NewUser {
    NewUser {
        username: name.into(),
        display_name: format!("{name} display"),
        role,
        password_hash: Some("$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA".into()),
        auth_source: AuthSource::Local,
        oidc: None,
        must_change_password: false,
    }
}

fn hash(label: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(label.as_bytes()).into()
}

fn new_host(hostname: &str, transport: Transport) -> NewHost {
    NewHost {
        hostname: hostname.into(),
        fqdn: None,
        address: None,
        transport,
        status: HostStatus::Pending,
        machine_id: None,
        os_name: Some("Debian GNU/Linux".into()),
        os_version: Some("12".into()),
    }
}

fn audit(at_s: i64, actor: &str, action: &str, outcome: AuditOutcome) -> NewAuditEntry {
    NewAuditEntry {
        at: at(at_s),
        actor: actor.into(),
        actor_user_id: None,
        action: action.into(),
        target: None,
        source_ip: Some("192.0.2.7".into()),
        outcome,
        details: serde_json::json!({ "n": at_s }),
    }
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.username.as_str()).collect()
}

fn hostnames(hosts: &[Host]) -> Vec<&str> {
    hosts.iter().map(|h| h.hostname.as_str()).collect()
}

conformance!(
    migrations_are_idempotent_and_the_pool_reports_stats,
    fleet_summary_severities_and_compliance_samples_respect_the_scope,
    users_create_get_and_conflict,
    users_list_filters_sorts_and_pages,
    users_update_delete_and_cascade,
    login_failures_lock_at_the_threshold_and_success_resets,
    totp_steps_cannot_be_replayed,
    recovery_codes_are_single_use,
    oidc_identities_are_unique_per_issuer,
    webauthn_credentials_and_sign_counts,
    groups_and_memberships,
    hosts_create_update_delete_and_conflicts,
    host_scope_filters_and_totals,
    host_search_escapes_wildcards_and_sorts_stably,
    registration_tokens_and_seat_errors,
    concurrent_seat_takers_get_exactly_the_seats,
    sessions_rotate_refresh_tokens,
    refresh_token_reuse_revokes_the_session,
    concurrent_rotation_of_one_token_is_reuse,
    sessions_expire_when_idle_and_absolutely,
    sessions_revocation_and_disabled_users,
    api_tokens_expiry_revocation_and_disabled_users,
    certificates_issue_list_and_revoke,
    audit_append_list_and_export,
    concurrent_audit_appends_never_fork_the_chain,
    audit_tampering_with_a_row_is_detected,
    audit_deleting_rows_is_detected,
    audit_pruning_keeps_the_chain_verifiable,
    audit_pruning_everything_then_appending,
    settings_round_trip,
    backup_of_a_live_database_restores,
    agent_enrollment_binds_the_machine_and_takes_a_seat,
    agent_enrollment_refusals_take_no_seat,
    agent_reenrollment_keeps_the_host,
    concurrent_enrollments_get_exactly_the_seats,
    concurrent_enrollments_of_one_machine_bind_it_once,
    checkins_record_facts_and_stale_hosts_go_offline,
    host_filters_for_agents,
    revoking_a_hosts_certificates,
    agent_identity_is_the_certificate_with_its_host,
    inventory_replacement_replaces_everything,
    fleet_package_search_compares_versions_by_key,
    inventory_of_5000_packages,
    commands_queue_claim_and_results,
    commands_cancel_list_and_prune,
    command_sweeper_times_out_what_will_not_finish,
    concurrent_claimers_get_each_command_once,
    concurrent_identical_results_apply_once,
);

async fn migrations_are_idempotent_and_the_pool_reports_stats(h: &Harness) {
    let store = &h.store;
    let alice = store.create_user(&new_user("alice", Role::Admin), at(T0)).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(store.get_user(alice.id).await.unwrap().unwrap(), alice, "data survives re-running migrations");
    // A second process (another store on the same database) migrating is a no-op too.
    let other = Store::connect(&h.config).await.unwrap();
    other.migrate().await.unwrap();
    assert_eq!(other.get_user(alice.id).await.unwrap().unwrap(), alice);
    assert_eq!(other.backend(), h.config.backend());
    store.ping().await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 1);
    let stats = store.pool_stats();
    assert!(stats.size >= 1, "{stats:?}");
    assert!(stats.idle <= stats.size, "{stats:?}");
    other.close().await;
    assert!(other.get_user(alice.id).await.is_err(), "a closed store refuses queries");
    assert!(other.ping().await.is_err(), "and says so when pinged");
}

async fn users_create_get_and_conflict(h: &Harness) {
    let store = &h.store;
    let alice = store.create_user(&new_user("  Alice ", Role::Admin), at(T0)).await.unwrap();
    assert_eq!(alice.username, "alice");
    assert_eq!(alice.display_name, "  Alice  display");
    assert_eq!(alice.role, Role::Admin);
    assert_eq!(alice.auth_source, AuthSource::Local);
    assert_eq!(alice.created_at, at(T0));
    assert_eq!(alice.updated_at, at(T0));
    assert!(!alice.disabled && !alice.must_change_password && !alice.totp_enabled);
    assert_eq!((alice.failed_logins, alice.locked_until, alice.last_login_at), (0, None, None));
    assert_eq!(store.get_user_by_username("ALICE").await.unwrap().unwrap(), alice);
    assert_eq!(store.get_user(alice.id).await.unwrap().unwrap(), alice);
    assert!(store.get_user(UserId(alice.id.0 + 1000)).await.unwrap().is_none());
    assert!(store.get_user_by_username("bob").await.unwrap().is_none());

    let err = store.create_user(&new_user("aLiCe", Role::Viewer), at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what == "username already exists"), "{err}");
    let err = store.create_user(&new_user("  ", Role::Viewer), at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");

    // SSO-only user without a password; Debug never shows secrets.
    let mut sso = new_user("carol", Role::Viewer);
    sso.password_hash = None;
    sso.auth_source = AuthSource::Oidc;
    let carol = store.create_user(&sso, at(T0)).await.unwrap();
    assert_eq!(carol.password_hash, None);
    assert_eq!(carol.auth_source, AuthSource::Oidc);
    let debug = format!("{alice:?} {:?}", new_user("x", Role::Admin));
    assert!(!debug.contains("argon2"), "{debug}");
    // Millisecond precision survives the round trip.
    let precise = Timestamp::from_millisecond(1_700_000_000_123).unwrap();
    let dave = store.create_user(&new_user("dave", Role::Operator), precise).await.unwrap();
    assert_eq!(store.get_user(dave.id).await.unwrap().unwrap().created_at, precise);
}

async fn users_list_filters_sorts_and_pages(h: &Harness) {
    let store = &h.store;
    let specs = [
        ("ab", Role::Operator, 5),
        ("a-c", Role::Admin, 1),
        ("zed", Role::Viewer, 3),
        ("b_x", Role::Operator, 2),
        ("bax", Role::Operator, 4),
    ];
    let mut ids = Vec::new();
    for (name, role, created) in specs {
        ids.push(store.create_user(&new_user(name, role), at(T0 + created)).await.unwrap().id);
    }
    store.record_login_success(ids[2], at(T0 + 100)).await.unwrap(); // zed
    store.record_login_success(ids[0], at(T0 + 50)).await.unwrap(); // ab

    let all = store.list_users(&UserFilter::default()).await.unwrap();
    assert_eq!(all.total, 5);
    // Code-point order on both backends ('-' < '_' < letters), not a locale's.
    assert_eq!(names(&all.items), ["a-c", "ab", "b_x", "bax", "zed"]);

    let desc = store.list_users(&UserFilter { dir: SortDir::Desc, ..Default::default() }).await.unwrap();
    assert_eq!(names(&desc.items), ["zed", "bax", "b_x", "ab", "a-c"]);

    let by_created = UserFilter { sort: UserSort::CreatedAt, ..Default::default() };
    assert_eq!(names(&store.list_users(&by_created).await.unwrap().items), ["a-c", "b_x", "zed", "bax", "ab"]);

    for dir in [SortDir::Asc, SortDir::Desc] {
        let by_login = UserFilter { sort: UserSort::LastLogin, dir, ..Default::default() };
        let page = store.list_users(&by_login).await.unwrap();
        let expected: &[&str] = match dir {
            SortDir::Asc => &["ab", "zed", "a-c", "b_x", "bax"],
            SortDir::Desc => &["zed", "ab", "bax", "b_x", "a-c"],
        };
        assert_eq!(names(&page.items), expected, "{dir:?}: never-logged-in users last, ties by id");
    }

    let operators = UserFilter { role: Some(Role::Operator), ..Default::default() };
    let page = store.list_users(&operators).await.unwrap();
    assert_eq!((names(&page.items), page.total), (vec!["ab", "b_x", "bax"], 3));

    let paged = UserFilter { paging: Paging::new(2, 1), ..Default::default() };
    let page = store.list_users(&paged).await.unwrap();
    assert_eq!((names(&page.items), page.total), (vec!["ab", "b_x"], 5));
    let count_only = UserFilter { role: Some(Role::Admin), paging: Paging::new(0, 0), ..Default::default() };
    let page = store.list_users(&count_only).await.unwrap();
    assert_eq!((page.items.len(), page.total), (0, 1));

    // `_` in a search matches only an underscore; search covers the display name too.
    let search = UserFilter { search: Some("B_".into()), ..Default::default() };
    assert_eq!(names(&store.list_users(&search).await.unwrap().items), ["b_x"]);
    let search = UserFilter { search: Some("ZED DISP".into()), ..Default::default() };
    assert_eq!(names(&store.list_users(&search).await.unwrap().items), ["zed"]);
    let search = UserFilter { search: Some("%".into()), ..Default::default() };
    assert_eq!(store.list_users(&search).await.unwrap().total, 0);
}

async fn users_update_delete_and_cascade(h: &Harness) {
    let store = &h.store;
    let bob = store.create_user(&new_user("bob", Role::Viewer), at(T0)).await.unwrap();
    let update = UserUpdate { display_name: Some("Robert".into()), role: Some(Role::Operator), disabled: None };
    let updated = store.update_user(bob.id, &update, at(T0 + 1)).await.unwrap();
    assert_eq!((updated.display_name.as_str(), updated.role, updated.disabled), ("Robert", Role::Operator, false));
    assert_eq!(updated.updated_at, at(T0 + 1));
    assert_eq!(updated.created_at, at(T0));
    let disable = UserUpdate { disabled: Some(true), ..Default::default() };
    let disabled = store.update_user(bob.id, &disable, at(T0 + 2)).await.unwrap();
    assert!(disabled.disabled);
    assert_eq!(disabled.display_name, "Robert", "unset fields stay");
    let missing = store.update_user(UserId(9999), &UserUpdate::default(), at(T0)).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound("user")), "{missing}");

    store.set_password(bob.id, "$argon2id$new", true, at(T0 + 3)).await.unwrap();
    let bob_now = store.get_user(bob.id).await.unwrap().unwrap();
    assert_eq!(bob_now.password_hash.as_deref(), Some("$argon2id$new"));
    assert!(bob_now.must_change_password);
    assert!(matches!(store.set_password(UserId(9999), "x", false, at(T0)).await, Err(Error::NotFound("user"))));

    // Deleting a user removes what hangs off it.
    let session = NewSession {
        user_id: bob.id,
        refresh_token_hash: hash("bob-refresh"),
        idle_timeout: jiff::SignedDuration::from_mins(30),
        absolute_lifetime: jiff::SignedDuration::from_hours(8),
        source_ip: None,
        user_agent: None,
        mfa_method: None,
    };
    let session = store.create_session(&session, at(T0)).await.unwrap();
    let token =
        NewApiToken { user_id: bob.id, token_hash: hash("bob-api"), label: "ci".into(), expires_at: at(T0 + 999) };
    let token = store.create_api_token(&token, at(T0)).await.unwrap();
    let group = store.create_group("ops", "", at(T0)).await.unwrap();
    store.add_user_to_group(bob.id, group.id).await.unwrap();
    store.delete_user(bob.id).await.unwrap();
    assert!(store.get_user(bob.id).await.unwrap().is_none());
    assert!(store.get_session(session.id).await.unwrap().is_none());
    assert!(store.get_api_token(token.id).await.unwrap().is_none());
    assert!(store.group_users(group.id).await.unwrap().is_empty());
    assert!(matches!(store.delete_user(bob.id).await, Err(Error::NotFound("user"))));
    // Ids are never reused, so a stale token naming bob cannot become someone else's.
    let eve = store.create_user(&new_user("eve", Role::Viewer), at(T0)).await.unwrap();
    assert!(eve.id > bob.id);
}

async fn login_failures_lock_at_the_threshold_and_success_resets(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("mallory-target", Role::Viewer), at(T0)).await.unwrap();
    let lockout = jiff::SignedDuration::from_mins(15);
    let first = store.record_login_failure(user.id, at(T0 + 1), 3, lockout).await.unwrap();
    assert_eq!(first, LoginFailure { failed_logins: 1, locked_until: None });
    let second = store.record_login_failure(user.id, at(T0 + 2), 3, lockout).await.unwrap();
    assert_eq!(second, LoginFailure { failed_logins: 2, locked_until: None });
    let third = store.record_login_failure(user.id, at(T0 + 3), 3, lockout).await.unwrap();
    assert_eq!(third, LoginFailure { failed_logins: 3, locked_until: Some(at(T0 + 3 + 900)) });
    let locked = store.get_user(user.id).await.unwrap().unwrap();
    assert!(locked.is_locked(at(T0 + 4)));
    assert!(!locked.is_locked(at(T0 + 3 + 900)));
    // Past the threshold every failure locks again, from its own time.
    let fourth = store.record_login_failure(user.id, at(T0 + 2000), 3, lockout).await.unwrap();
    assert_eq!(fourth, LoginFailure { failed_logins: 4, locked_until: Some(at(T0 + 2000 + 900)) });

    store.record_login_success(user.id, at(T0 + 3000)).await.unwrap();
    let reset = store.get_user(user.id).await.unwrap().unwrap();
    assert_eq!((reset.failed_logins, reset.locked_until, reset.last_login_at), (0, None, Some(at(T0 + 3000))));

    // Concurrent failures are all counted (the increment happens in SQL).
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.record_login_failure(user.id, at(T0 + 4000 + i), 100, lockout).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.get_user(user.id).await.unwrap().unwrap().failed_logins, 10);

    // A new password clears the lockout; max 0 never locks.
    store.record_login_failure(user.id, at(T0 + 5000), 1, lockout).await.unwrap();
    store.set_password(user.id, "$argon2id$fresh", false, at(T0 + 5001)).await.unwrap();
    let fresh = store.get_user(user.id).await.unwrap().unwrap();
    assert_eq!((fresh.failed_logins, fresh.locked_until), (0, None));
    let never = store.record_login_failure(user.id, at(T0 + 5002), 0, lockout).await.unwrap();
    assert_eq!(never.locked_until, None);
    let missing = store.record_login_failure(UserId(9999), at(T0), 3, lockout).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound("user")));
    assert!(matches!(store.record_login_success(UserId(9999), at(T0)).await, Err(Error::NotFound("user"))));
}

async fn totp_steps_cannot_be_replayed(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("totp", Role::Viewer), at(T0)).await.unwrap();
    let err = store.set_totp(user.id, None, true, at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    store.set_totp(user.id, Some(b"encrypted seed \x00\xff"), true, at(T0)).await.unwrap();
    let stored = store.get_user(user.id).await.unwrap().unwrap();
    assert_eq!(stored.totp_secret.as_deref(), Some(&b"encrypted seed \x00\xff"[..]));
    assert!(stored.totp_enabled);
    assert!(!format!("{stored:?}").contains("encrypted seed"));

    assert!(store.claim_totp_step(user.id, 100).await.unwrap());
    assert!(!store.claim_totp_step(user.id, 100).await.unwrap(), "same step twice");
    assert!(!store.claim_totp_step(user.id, 99).await.unwrap(), "an older step");
    assert!(store.claim_totp_step(user.id, 101).await.unwrap());
    assert_eq!(store.get_user(user.id).await.unwrap().unwrap().totp_last_step, Some(101));

    // Ten concurrent logins with the same code: one wins.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.claim_totp_step(user.id, 200).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);

    // A new seed forgets the old steps; removing it disables TOTP.
    store.set_totp(user.id, Some(b"another seed"), true, at(T0 + 1)).await.unwrap();
    assert!(store.claim_totp_step(user.id, 50).await.unwrap());
    store.set_totp(user.id, None, false, at(T0 + 2)).await.unwrap();
    let off = store.get_user(user.id).await.unwrap().unwrap();
    assert_eq!((off.totp_secret, off.totp_enabled, off.totp_last_step), (None, false, None));
    assert!(!store.claim_totp_step(UserId(9999), 1).await.unwrap());
    assert!(matches!(store.set_totp(UserId(9999), None, false, at(T0)).await, Err(Error::NotFound("user"))));
}

async fn recovery_codes_are_single_use(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("rc", Role::Viewer), at(T0)).await.unwrap();
    let other = store.create_user(&new_user("rc2", Role::Viewer), at(T0)).await.unwrap();
    let codes = [hash("code-1"), hash("code-2"), hash("code-3")];
    store.replace_recovery_codes(user.id, &codes).await.unwrap();
    store.replace_recovery_codes(other.id, &[hash("other-code")]).await.unwrap();
    assert_eq!(store.remaining_recovery_codes(user.id).await.unwrap(), 3);

    assert!(store.consume_recovery_code(user.id, &codes[0], at(T0)).await.unwrap());
    assert!(!store.consume_recovery_code(user.id, &codes[0], at(T0)).await.unwrap(), "second use");
    assert!(!store.consume_recovery_code(user.id, &hash("other-code"), at(T0)).await.unwrap(), "someone else's");
    assert!(!store.consume_recovery_code(user.id, &hash("nope"), at(T0)).await.unwrap());
    assert_eq!(store.remaining_recovery_codes(user.id).await.unwrap(), 2);

    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, code) = (store.clone(), codes[1]);
            tokio::spawn(async move { store.consume_recovery_code(user.id, &code, at(T0)).await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1, "concurrent use of one code succeeds once");
    assert_eq!(store.remaining_recovery_codes(user.id).await.unwrap(), 1);

    // New codes replace all old ones, used or not.
    store.replace_recovery_codes(user.id, &[hash("new-1"), hash("new-2")]).await.unwrap();
    assert_eq!(store.remaining_recovery_codes(user.id).await.unwrap(), 2);
    assert!(!store.consume_recovery_code(user.id, &codes[2], at(T0)).await.unwrap());
    assert!(store.consume_recovery_code(user.id, &hash("new-2"), at(T0)).await.unwrap());
    assert_eq!(store.remaining_recovery_codes(other.id).await.unwrap(), 1);
    let dup = store.replace_recovery_codes(user.id, &[hash("d"), hash("d")]).await.unwrap_err();
    assert!(matches!(dup, Error::Invalid(_)), "{dup}");
    let missing = store.replace_recovery_codes(UserId(9999), &codes).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound("user")), "{missing}");
}

async fn oidc_identities_are_unique_per_issuer(h: &Harness) {
    let store = &h.store;
    let identity = OidcIdentity { issuer: "https://login.example/tenant".into(), subject: "sub-123".into() };
    let mut sso = new_user("sso", Role::Viewer);
    sso.auth_source = AuthSource::Oidc;
    sso.password_hash = None;
    sso.oidc = Some(identity.clone());
    let sso = store.create_user(&sso, at(T0)).await.unwrap();
    assert_eq!(sso.oidc.as_ref(), Some(&identity));
    let found = store.get_user_by_oidc(&identity.issuer, &identity.subject).await.unwrap().unwrap();
    assert_eq!(found.id, sso.id);
    assert!(store.get_user_by_oidc("https://other.example", "sub-123").await.unwrap().is_none());

    let local = store.create_user(&new_user("local", Role::Operator), at(T0)).await.unwrap();
    let err = store.link_oidc(local.id, &identity, at(T0 + 1)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what == "OIDC identity already exists"), "{err}");
    let same_subject_other_issuer = OidcIdentity { issuer: "https://other.example".into(), subject: "sub-123".into() };
    let linked = store.link_oidc(local.id, &same_subject_other_issuer, at(T0 + 1)).await.unwrap();
    assert_eq!(linked.oidc, Some(same_subject_other_issuer));
    assert_eq!(linked.updated_at, at(T0 + 1));
    let err = store.link_oidc(UserId(9999), &identity, at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound("user")), "{err}");
}

async fn webauthn_credentials_and_sign_counts(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("passkey", Role::Viewer), at(T0)).await.unwrap();
    let other = store.create_user(&new_user("other", Role::Viewer), at(T0)).await.unwrap();
    let new = NewWebauthnCredential {
        user_id: user.id,
        credential_id: vec![1, 2, 3, 0, 255],
        public_key: vec![0xa5, 1, 2],
        sign_count: 5,
        name: "YubiKey".into(),
    };
    let key = store.add_webauthn_credential(&new, at(T0)).await.unwrap();
    assert_eq!((key.user_id, key.sign_count, key.last_used_at), (user.id, 5, None));
    let stolen = NewWebauthnCredential { user_id: other.id, ..new.clone() };
    let err = store.add_webauthn_credential(&stolen, at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what == "WebAuthn credential already exists"), "{err}");
    let orphan = NewWebauthnCredential { user_id: UserId(9999), credential_id: vec![9], ..new.clone() };
    let err = store.add_webauthn_credential(&orphan, at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::MissingReference("user")), "{err}");

    let counterless = NewWebauthnCredential { credential_id: vec![7; 16], sign_count: 0, name: "Phone".into(), ..new };
    let phone = store.add_webauthn_credential(&counterless, at(T0 + 1)).await.unwrap();
    let listed = store.list_webauthn_credentials(user.id).await.unwrap();
    assert_eq!(listed, vec![key.clone(), phone.clone()]);
    assert!(store.list_webauthn_credentials(other.id).await.unwrap().is_empty());
    assert_eq!(store.get_webauthn_credential(&[1, 2, 3, 0, 255]).await.unwrap().unwrap(), key);
    assert!(store.get_webauthn_credential(&[1, 2, 3]).await.unwrap().is_none());

    assert!(store.update_webauthn_sign_count(&key.credential_id, 6, at(T0 + 10)).await.unwrap());
    assert!(!store.update_webauthn_sign_count(&key.credential_id, 6, at(T0 + 11)).await.unwrap(), "not greater");
    assert!(!store.update_webauthn_sign_count(&key.credential_id, 2, at(T0 + 12)).await.unwrap(), "went back");
    assert!(!store.update_webauthn_sign_count(&key.credential_id, 0, at(T0 + 12)).await.unwrap(), "to zero");
    let key_now = store.get_webauthn_credential(&key.credential_id).await.unwrap().unwrap();
    assert_eq!((key_now.sign_count, key_now.last_used_at), (6, Some(at(T0 + 10))));
    assert!(store.update_webauthn_sign_count(&phone.credential_id, 0, at(T0 + 13)).await.unwrap(), "both zero");
    assert_eq!(
        store.get_webauthn_credential(&phone.credential_id).await.unwrap().unwrap().last_used_at,
        Some(at(T0 + 13))
    );
    assert!(!store.update_webauthn_sign_count(&[42], 9, at(T0)).await.unwrap());

    let err = store.delete_webauthn_credential(other.id, key.id).await.unwrap_err();
    assert!(matches!(err, Error::NotFound("WebAuthn credential")), "{err}");
    store.delete_webauthn_credential(user.id, key.id).await.unwrap();
    let left: Vec<_> = store.list_webauthn_credentials(user.id).await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(left, vec![phone.id]);
}

async fn groups_and_memberships(h: &Harness) {
    let store = &h.store;
    let web = store.create_group("web", "front ends", at(T0)).await.unwrap();
    let db = store.create_group("Databases", "", at(T0 + 1)).await.unwrap();
    assert_eq!((web.name.as_str(), web.description.as_str(), web.created_at), ("web", "front ends", at(T0)));
    let err = store.create_group("web", "again", at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what == "group name already exists"), "{err}");
    assert!(matches!(store.create_group(" ", "", at(T0)).await, Err(Error::Invalid(_))));
    let listed: Vec<String> = store.list_groups().await.unwrap().into_iter().map(|g| g.name).collect();
    assert_eq!(listed, ["Databases", "web"], "code-point order: upper case first");
    assert_eq!(store.get_group(db.id).await.unwrap().unwrap(), db);

    let renamed = store.update_group(db.id, &GroupUpdate { name: Some("db".into()), description: None }).await.unwrap();
    assert_eq!((renamed.name.as_str(), renamed.description.as_str()), ("db", ""));
    let described = GroupUpdate { name: None, description: Some("postgres".into()) };
    assert_eq!(store.update_group(db.id, &described).await.unwrap().description, "postgres");
    let clash = store.update_group(db.id, &GroupUpdate { name: Some("web".into()), description: None }).await;
    assert!(matches!(clash, Err(Error::Conflict(_))));
    let missing = store.update_group(GroupId(9999), &GroupUpdate::default()).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound("group")));

    let ann = store.create_user(&new_user("ann", Role::Operator), at(T0)).await.unwrap();
    let ben = store.create_user(&new_user("ben", Role::Operator), at(T0)).await.unwrap();
    let h1 = store.create_host(&new_host("h1", Transport::Pull), at(T0)).await.unwrap();
    let h2 = store.create_host(&new_host("h2", Transport::Pull), at(T0)).await.unwrap();
    store.add_user_to_group(ann.id, web.id).await.unwrap();
    store.add_user_to_group(ann.id, web.id).await.unwrap(); // idempotent
    store.add_user_to_group(ann.id, db.id).await.unwrap();
    store.add_user_to_group(ben.id, db.id).await.unwrap();
    store.add_host_to_group(h1.id, web.id).await.unwrap();
    store.add_host_to_group(h1.id, web.id).await.unwrap();
    store.add_host_to_group(h2.id, db.id).await.unwrap();
    let err = store.add_user_to_group(ann.id, GroupId(9999)).await.unwrap_err();
    assert!(matches!(err, Error::MissingReference("user or group")), "{err}");
    let err = store.add_host_to_group(HostId(9999), web.id).await.unwrap_err();
    assert!(matches!(err, Error::MissingReference("host or group")), "{err}");

    assert_eq!(store.user_group_ids(ann.id).await.unwrap(), vec![web.id, db.id]);
    assert_eq!(store.user_group_ids(ben.id).await.unwrap(), vec![db.id]);
    assert_eq!(store.host_group_ids(h1.id).await.unwrap(), vec![web.id]);
    assert_eq!(names(&store.group_users(db.id).await.unwrap()), ["ann", "ben"]);
    assert_eq!(hostnames(&store.group_hosts(web.id).await.unwrap()), ["h1"]);

    assert!(store.remove_user_from_group(ann.id, db.id).await.unwrap());
    assert!(!store.remove_user_from_group(ann.id, db.id).await.unwrap());
    assert!(store.remove_host_from_group(h2.id, db.id).await.unwrap());
    assert!(!store.remove_host_from_group(h2.id, db.id).await.unwrap());
    assert_eq!(names(&store.group_users(db.id).await.unwrap()), ["ben"]);

    store.delete_group(web.id).await.unwrap();
    assert!(store.get_group(web.id).await.unwrap().is_none());
    assert!(store.user_group_ids(ann.id).await.unwrap().is_empty());
    assert!(store.host_group_ids(h1.id).await.unwrap().is_empty());
    assert!(store.get_host(h1.id).await.unwrap().is_some(), "members outlive the group");
    assert!(matches!(store.delete_group(web.id).await, Err(Error::NotFound("group"))));
}

async fn hosts_create_update_delete_and_conflicts(h: &Harness) {
    let store = &h.store;
    let mut pull = new_host("web-1", Transport::Pull);
    pull.fqdn = Some("Web-1.Example.COM".into());
    pull.machine_id = Some("0123456789abcdef0123456789abcdef".into());
    let web1 = store.create_host(&pull, at(T0)).await.unwrap();
    assert_eq!(web1.fqdn.as_deref(), Some("web-1.example.com"));
    assert_eq!((web1.transport, web1.status, web1.last_seen_at), (Transport::Pull, HostStatus::Pending, None));
    assert_eq!(store.get_host(web1.id).await.unwrap().unwrap(), web1);
    assert_eq!(store.get_host_by_machine_id("0123456789abcdef0123456789abcdef").await.unwrap().unwrap(), web1);

    // Machine ids are unique; pull hosts may share an FQDN (cloned images).
    let err = store.create_host(&NewHost { hostname: "clone".into(), ..pull.clone() }, at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what == "machine id already exists"), "{err}");
    let twin = NewHost { machine_id: Some("fedcba9876543210fedcba9876543210".into()), ..pull.clone() };
    store.create_host(&twin, at(T0)).await.unwrap();

    // Push hosts are unique by FQDN (case-insensitively) and by address.
    let mut push = new_host("db-1", Transport::Push);
    push.fqdn = Some("db-1.example.com".into());
    push.address = Some("192.0.2.10".into());
    store.create_host(&push, at(T0)).await.unwrap();
    let same_fqdn = NewHost { address: None, fqdn: Some("DB-1.example.com".into()), ..push.clone() };
    let err = store.create_host(&same_fqdn, at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what == "push host FQDN already exists"), "{err}");
    let same_address = NewHost { fqdn: None, ..push.clone() };
    let err = store.create_host(&same_address, at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what == "push host address already exists"), "{err}");
    let pull_same_fqdn = NewHost { transport: Transport::Pull, ..push.clone() };
    store.create_host(&pull_same_fqdn, at(T0)).await.unwrap();
    assert!(matches!(store.create_host(&new_host(" ", Transport::Pull), at(T0)).await, Err(Error::Invalid(_))));

    let online = store.set_host_status(web1.id, HostStatus::Online, Some(at(T0 + 60)), at(T0 + 61)).await.unwrap();
    assert_eq!(
        (online.status, online.last_seen_at, online.updated_at),
        (HostStatus::Online, Some(at(T0 + 60)), at(T0 + 61))
    );
    let offline = store.set_host_status(web1.id, HostStatus::Offline, None, at(T0 + 900)).await.unwrap();
    assert_eq!((offline.status, offline.last_seen_at), (HostStatus::Offline, Some(at(T0 + 60))), "last seen stays");
    let missing = store.set_host_status(HostId(9999), HostStatus::Online, None, at(T0)).await.unwrap_err();
    assert!(matches!(missing, Error::NotFound("host")));

    store.delete_host(web1.id).await.unwrap();
    assert!(store.get_host(web1.id).await.unwrap().is_none());
    assert!(matches!(store.delete_host(web1.id).await, Err(Error::NotFound("host"))));
}

/// Groups A and B; hosts a1, a2 in A, b1 in B, ab in both, u1 and u2 in none.
async fn scoped_fleet(store: &Store) -> (GroupId, GroupId, std::collections::BTreeMap<&'static str, HostId>) {
    let a = store.create_group("A", "", at(T0)).await.unwrap().id;
    let b = store.create_group("B", "", at(T0)).await.unwrap().id;
    let mut hosts = std::collections::BTreeMap::new();
    for (i, (name, groups, transport, status)) in [
        ("a1", vec![a], Transport::Pull, HostStatus::Online),
        ("a2", vec![a], Transport::Push, HostStatus::Offline),
        ("b1", vec![b], Transport::Pull, HostStatus::Online),
        ("ab", vec![a, b], Transport::Pull, HostStatus::Online),
        ("u1", vec![], Transport::Push, HostStatus::Online),
        ("u2", vec![], Transport::Pull, HostStatus::Pending),
    ]
    .into_iter()
    .enumerate()
    {
        let mut new = new_host(name, transport);
        new.status = status;
        let host = store.create_host(&new, at(T0 + i as i64)).await.unwrap();
        for group in groups {
            store.add_host_to_group(host.id, group).await.unwrap();
        }
        hosts.insert(name, host.id);
    }
    (a, b, hosts)
}

async fn host_scope_filters_and_totals(h: &Harness) {
    let store = &h.store;
    let (a, b, hosts) = scoped_fleet(store).await;

    let all = store.list_hosts(&HostFilter::new(Scope::All)).await.unwrap();
    assert_eq!((hostnames(&all.items), all.total), (vec!["a1", "a2", "ab", "b1", "u1", "u2"], 6));

    let operator_a = HostFilter::new(Scope::Groups(vec![a]));
    let page = store.list_hosts(&operator_a).await.unwrap();
    assert_eq!((hostnames(&page.items), page.total), (vec!["a1", "a2", "ab", "u1", "u2"], 5), "own group + ungrouped");

    let paged = HostFilter { paging: Paging::new(2, 0), ..operator_a.clone() };
    let page = store.list_hosts(&paged).await.unwrap();
    assert_eq!((hostnames(&page.items), page.total), (vec!["a1", "a2"], 5), "total ignores paging, keeps scope");

    let no_groups = store.list_hosts(&HostFilter::new(Scope::Groups(vec![]))).await.unwrap();
    assert_eq!((hostnames(&no_groups.items), no_groups.total), (vec!["u1", "u2"], 2));

    let both = store.list_hosts(&HostFilter::new(Scope::Groups(vec![a, b]))).await.unwrap();
    assert_eq!(both.total, 6);

    // A group filter outside the scope shows only what the scope allows.
    let b_in_a_scope = HostFilter { group: Some(b), ..operator_a.clone() };
    let page = store.list_hosts(&b_in_a_scope).await.unwrap();
    assert_eq!((hostnames(&page.items), page.total), (vec!["ab"], 1));
    let b_for_admin = HostFilter { group: Some(b), ..HostFilter::new(Scope::All) };
    assert_eq!(hostnames(&store.list_hosts(&b_for_admin).await.unwrap().items), ["ab", "b1"]);

    let online_pull =
        HostFilter { status: Some(HostStatus::Online), transport: Some(Transport::Pull), ..operator_a.clone() };
    let page = store.list_hosts(&online_pull).await.unwrap();
    assert_eq!((hostnames(&page.items), page.total), (vec!["a1", "ab"], 2));
    let push = HostFilter { transport: Some(Transport::Push), ..HostFilter::new(Scope::Groups(vec![b])) };
    assert_eq!(hostnames(&store.list_hosts(&push).await.unwrap().items), ["u1"]);

    let scope_a = Scope::Groups(vec![a]);
    for (name, visible) in [("a1", true), ("ab", true), ("b1", false), ("u1", true)] {
        assert_eq!(store.host_visible(hosts[name], &scope_a).await.unwrap(), visible, "{name}");
    }
    assert!(store.host_visible(hosts["b1"], &Scope::All).await.unwrap());
    assert!(!store.host_visible(HostId(9999), &Scope::All).await.unwrap());
    assert!(!store.host_visible(hosts["a1"], &Scope::Groups(vec![])).await.unwrap());

    // Leaving its last group makes a host visible to every operator.
    store.remove_host_from_group(hosts["b1"], b).await.unwrap();
    assert!(store.host_visible(hosts["b1"], &scope_a).await.unwrap());
}

async fn host_search_escapes_wildcards_and_sorts_stably(h: &Harness) {
    let store = &h.store;
    let mut ids = std::collections::BTreeMap::new();
    for (name, fqdn, address) in [
        ("web_1", None, None),
        ("webx1", None, None),
        ("100%host", None, None),
        ("100xhost", None, None),
        ("db", Some("db.Internal.example"), Some("10.1.2.3")),
        ("Zeta", None, None),
        ("back\\slash", None, None),
    ] {
        let mut new = new_host(name, Transport::Pull);
        new.fqdn = fqdn.map(str::to_owned);
        new.address = address.map(str::to_owned);
        // Same creation time for all: the id breaks ties.
        ids.insert(name, store.create_host(&new, at(T0)).await.unwrap().id);
    }
    let search = |text: &str| HostFilter { search: Some(text.into()), ..HostFilter::new(Scope::All) };
    for (text, expected) in [
        ("web_1", vec!["web_1"]),
        ("WEB", vec!["web_1", "webx1"]),
        ("100%", vec!["100%host"]),
        ("internal.EX", vec!["db"]),
        ("10.1.2", vec!["db"]),
        ("k\\s", vec!["back\\slash"]),
        ("_", vec!["web_1"]),
        ("%", vec!["100%host"]),
        ("", vec!["100%host", "100xhost", "Zeta", "back\\slash", "db", "web_1", "webx1"]),
    ] {
        let page = store.list_hosts(&search(text)).await.unwrap();
        assert_eq!(hostnames(&page.items), expected, "search {text:?}");
        assert_eq!(page.total, expected.len() as u64, "search {text:?}");
    }

    let desc = HostFilter { dir: SortDir::Desc, ..HostFilter::new(Scope::All) };
    let page = store.list_hosts(&desc).await.unwrap();
    assert_eq!(hostnames(&page.items), ["webx1", "web_1", "db", "back\\slash", "Zeta", "100xhost", "100%host"]);

    // Created at the same time: ordered by id, both ways.
    let by_created = HostFilter { sort: HostSort::CreatedAt, ..HostFilter::new(Scope::All) };
    let asc: Vec<HostId> = store.list_hosts(&by_created).await.unwrap().items.iter().map(|h| h.id).collect();
    let mut sorted = asc.clone();
    sorted.sort();
    assert_eq!(asc, sorted);
    let by_created_desc = HostFilter { dir: SortDir::Desc, ..by_created };
    let desc: Vec<HostId> = store.list_hosts(&by_created_desc).await.unwrap().items.iter().map(|h| h.id).collect();
    sorted.reverse();
    assert_eq!(desc, sorted);

    // Last seen: never-seen hosts last in both directions; pages do not overlap.
    store.set_host_status(ids["db"], HostStatus::Online, Some(at(T0 + 5)), at(T0 + 5)).await.unwrap();
    store.set_host_status(ids["Zeta"], HostStatus::Online, Some(at(T0 + 9)), at(T0 + 9)).await.unwrap();
    for (dir, first_two) in [(SortDir::Asc, ["db", "Zeta"]), (SortDir::Desc, ["Zeta", "db"])] {
        let filter = HostFilter { sort: HostSort::LastSeen, dir, ..HostFilter::new(Scope::All) };
        let page = store.list_hosts(&filter).await.unwrap();
        assert_eq!(hostnames(&page.items)[..2], first_two, "{dir:?}");
    }
    let mut seen = Vec::new();
    for offset in (0..7).step_by(3) {
        let filter =
            HostFilter { sort: HostSort::LastSeen, paging: Paging::new(3, offset), ..HostFilter::new(Scope::All) };
        seen.extend(store.list_hosts(&filter).await.unwrap().items.into_iter().map(|h| h.id));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7, "paging with a stable tiebreak visits every host once");
}

async fn registration_tokens_and_seat_errors(h: &Harness) {
    let store = &h.store;
    let admin = store.create_user(&new_user("admin", Role::Admin), at(T0)).await.unwrap();
    let new = NewRegistrationToken {
        token_hash: hash("reg-1"),
        label: "rack 4".into(),
        seats_total: 2,
        expires_at: at(T0 + 3600),
        created_by: Some(admin.id),
    };
    let token = store.create_registration_token(&new, at(T0)).await.unwrap();
    assert_eq!((token.seats_total, token.seats_used, token.created_by), (2, 0, Some(admin.id)));
    let err = store.create_registration_token(&new, at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what == "registration token already exists"), "{err}");
    let zero = NewRegistrationToken { token_hash: hash("zero"), seats_total: 0, ..new.clone() };
    assert!(matches!(store.create_registration_token(&zero, at(T0)).await, Err(Error::Invalid(_))));

    let taken = store.take_seat(&hash("reg-1"), at(T0 + 1)).await.unwrap();
    assert_eq!((taken.id, taken.seats_used), (token.id, 1));
    assert_eq!(store.take_seat(&hash("reg-1"), at(T0 + 2)).await.unwrap().seats_used, 2);
    assert!(matches!(store.take_seat(&hash("reg-1"), at(T0 + 3)).await, Err(TakeSeatError::NoSeatsLeft)));
    assert!(store.release_seat(token.id).await.unwrap());
    assert_eq!(store.take_seat(&hash("reg-1"), at(T0 + 4)).await.unwrap().seats_used, 2);
    assert!(matches!(store.take_seat(&hash("unknown"), at(T0)).await, Err(TakeSeatError::NotFound)));
    // Expiry is exclusive: at expires_at the token is expired.
    let short = NewRegistrationToken { token_hash: hash("short"), expires_at: at(T0 + 10), ..new.clone() };
    let short = store.create_registration_token(&short, at(T0)).await.unwrap();
    assert!(matches!(store.take_seat(&hash("short"), at(T0 + 10)).await, Err(TakeSeatError::Expired)));
    assert_eq!(store.get_registration_token(short.id).await.unwrap().unwrap().seats_used, 0);

    let revoked = store.revoke_registration_token(short.id, at(T0 + 5)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(T0 + 5)));
    assert!(matches!(store.take_seat(&hash("short"), at(T0 + 1)).await, Err(TakeSeatError::Revoked)));
    let err = store.revoke_registration_token(short.id, at(T0 + 6)).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    let err = store.revoke_registration_token(RegistrationTokenId(9999), at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound("registration token")), "{err}");

    let page = store.list_registration_tokens(Paging::default()).await.unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.items.iter().map(|t| t.id).collect::<Vec<_>>(), vec![short.id, token.id], "newest first");
    let page = store.list_registration_tokens(Paging::new(1, 1)).await.unwrap();
    assert_eq!((page.items.len(), page.total, page.items[0].id), (1, 2, token.id));

    // Deleting the creator keeps the token.
    store.delete_user(admin.id).await.unwrap();
    assert_eq!(store.get_registration_token(token.id).await.unwrap().unwrap().created_by, None);
}

async fn concurrent_seat_takers_get_exactly_the_seats(h: &Harness) {
    let store = &h.store;
    let new = NewRegistrationToken {
        token_hash: hash("busy"),
        label: "busy".into(),
        seats_total: 5,
        expires_at: at(T0 + 3600),
        created_by: None,
    };
    let token = store.create_registration_token(&new, at(T0)).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_seat(&hash("busy"), at(T0 + 1)).await })
        })
        .collect();
    let (mut taken, mut full) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(token) => taken.push(token.seats_used),
            Err(TakeSeatError::NoSeatsLeft) => full += 1,
            Err(other) => panic!("unexpected refusal: {other}"),
        }
    }
    taken.sort();
    assert_eq!(taken, [1, 2, 3, 4, 5], "each winner got a distinct seat");
    assert_eq!(full, 15);
    assert_eq!(store.get_registration_token(token.id).await.unwrap().unwrap().seats_used, 5);
}

const IDLE: jiff::SignedDuration = jiff::SignedDuration::from_mins(30);

fn login(user: UserId, refresh: &str) -> NewSession {
    NewSession {
        user_id: user,
        refresh_token_hash: hash(refresh),
        idle_timeout: IDLE,
        absolute_lifetime: jiff::SignedDuration::from_hours(8),
        source_ip: Some("198.51.100.4".into()),
        user_agent: Some("Firefox".into()),
        mfa_method: Some("totp".into()),
    }
}

async fn sessions_rotate_refresh_tokens(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("sess", Role::Viewer), at(T0)).await.unwrap();
    let session = store.create_session(&login(user.id, "rt-1"), at(T0)).await.unwrap();
    assert_eq!((session.user_id, session.created_at, session.last_used_at), (user.id, at(T0), at(T0)));
    assert_eq!(session.idle_expires_at, at(T0 + 1800));
    assert_eq!(session.absolute_expires_at, at(T0 + 8 * 3600));
    assert_eq!((session.source_ip.as_deref(), session.mfa_method.as_deref()), (Some("198.51.100.4"), Some("totp")));
    assert!(session.is_active(at(T0 + 1)));
    assert!(store.session_active(session.id, at(T0 + 1)).await.unwrap());
    assert_eq!(store.get_session(session.id).await.unwrap().unwrap(), session);

    let outcome = store.rotate_refresh(&hash("rt-1"), &hash("rt-2"), at(T0 + 600), IDLE).await.unwrap();
    let RotateOutcome::Rotated { session: rotated, user_id } = outcome else { panic!("{outcome:?}") };
    assert_eq!((rotated.id, user_id), (session.id, user.id));
    assert_eq!((rotated.last_used_at, rotated.idle_expires_at), (at(T0 + 600), at(T0 + 600 + 1800)));
    let outcome = store.rotate_refresh(&hash("rt-2"), &hash("rt-3"), at(T0 + 1200), IDLE).await.unwrap();
    assert!(matches!(outcome, RotateOutcome::Rotated { .. }), "{outcome:?}");
    let unknown = store.rotate_refresh(&hash("never-issued"), &hash("x"), at(T0 + 1200), IDLE).await.unwrap();
    assert_eq!(unknown, RotateOutcome::Invalid);

    // Near the absolute end the idle expiry is capped by it.
    let short = NewSession { absolute_lifetime: jiff::SignedDuration::from_hours(1), ..login(user.id, "s-1") };
    let short = store.create_session(&short, at(T0)).await.unwrap();
    let step = store.rotate_refresh(&hash("s-1"), &hash("s-2"), at(T0 + 1700), IDLE).await.unwrap();
    assert!(matches!(step, RotateOutcome::Rotated { .. }), "{step:?}");
    let late = store.rotate_refresh(&hash("s-2"), &hash("s-3"), at(T0 + 3400), IDLE).await.unwrap();
    let RotateOutcome::Rotated { session: late, .. } = late else { panic!("{late:?}") };
    assert_eq!((late.id, late.idle_expires_at), (short.id, at(T0 + 3600)));
    let after_end = store.rotate_refresh(&hash("s-3"), &hash("s-4"), at(T0 + 3600), IDLE).await.unwrap();
    assert_eq!(after_end, RotateOutcome::Invalid);
    assert!(!store.session_active(short.id, at(T0 + 3600)).await.unwrap());
    store.revoke_session(short.id, "test", at(T0 + 3601)).await.unwrap();

    let second = store.create_session(&login(user.id, "other-rt"), at(T0 + 5)).await.unwrap();
    let listed: Vec<SessionId> = store.list_sessions(user.id).await.unwrap().iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![second.id, short.id, session.id], "newest first");
    let dup = store.create_session(&login(user.id, "other-rt"), at(T0 + 6)).await.unwrap_err();
    assert!(matches!(&dup, Error::Conflict(what) if what == "refresh token already exists"), "{dup}");
    let orphan = store.create_session(&login(UserId(9999), "orphan"), at(T0)).await.unwrap_err();
    assert!(matches!(orphan, Error::MissingReference("user")), "{orphan}");

    assert_eq!(store.delete_sessions_expired_before(at(T0 + 3600)).await.unwrap(), 0, "strictly before");
    assert_eq!(store.delete_sessions_expired_before(at(T0 + 3601)).await.unwrap(), 1);
    assert!(store.get_session(short.id).await.unwrap().is_none());
    assert_eq!(store.delete_sessions_expired_before(at(T0 + 8 * 3600 + 6)).await.unwrap(), 2);
    assert!(store.get_session(session.id).await.unwrap().is_none());
}

async fn refresh_token_reuse_revokes_the_session(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("victim", Role::Viewer), at(T0)).await.unwrap();
    let session = store.create_session(&login(user.id, "a"), at(T0)).await.unwrap();
    let rotated = store.rotate_refresh(&hash("a"), &hash("b"), at(T0 + 10), IDLE).await.unwrap();
    assert!(matches!(rotated, RotateOutcome::Rotated { .. }));
    // The thief replays the old token: the whole session dies, including the legitimate "b".
    let replay = store.rotate_refresh(&hash("a"), &hash("c"), at(T0 + 20), IDLE).await.unwrap();
    assert_eq!(replay, RotateOutcome::Reused { session_id: session.id });
    let revoked = store.get_session(session.id).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at(T0 + 20)));
    assert_eq!(revoked.revoked_reason.as_deref(), Some(REUSE_REASON));
    assert!(!store.session_active(session.id, at(T0 + 21)).await.unwrap());
    assert_eq!(store.rotate_refresh(&hash("b"), &hash("d"), at(T0 + 30), IDLE).await.unwrap(), RotateOutcome::Invalid);
    assert_eq!(store.rotate_refresh(&hash("c"), &hash("e"), at(T0 + 30), IDLE).await.unwrap(), RotateOutcome::Invalid);
    // Other sessions of the user are untouched.
    let other = store.create_session(&login(user.id, "z"), at(T0 + 40)).await.unwrap();
    assert!(store.session_active(other.id, at(T0 + 41)).await.unwrap());
}

async fn concurrent_rotation_of_one_token_is_reuse(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("racer", Role::Viewer), at(T0)).await.unwrap();
    let session = store.create_session(&login(user.id, "shared"), at(T0)).await.unwrap();
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store.rotate_refresh(&hash("shared"), &hash(&format!("next-{i}")), at(T0 + 1), IDLE).await.unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let rotated = outcomes.iter().filter(|o| matches!(o, RotateOutcome::Rotated { .. })).count();
    let reused = outcomes.iter().filter(|o| **o == RotateOutcome::Reused { session_id: session.id }).count();
    assert_eq!((rotated, reused), (1, 5), "{outcomes:?}");
    assert!(!store.session_active(session.id, at(T0 + 2)).await.unwrap());
}

async fn sessions_expire_when_idle_and_absolutely(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("idle", Role::Viewer), at(T0)).await.unwrap();
    let session = store.create_session(&login(user.id, "idle-1"), at(T0)).await.unwrap();
    assert!(store.session_active(session.id, at(T0 + 1799)).await.unwrap());
    assert!(!store.session_active(session.id, at(T0 + 1800)).await.unwrap(), "idle timeout reached");
    let outcome = store.rotate_refresh(&hash("idle-1"), &hash("idle-2"), at(T0 + 1800), IDLE).await.unwrap();
    assert_eq!(outcome, RotateOutcome::Invalid);
    // Invalid changes nothing: the token is not marked used, so it is not "reuse" later either.
    let again = store.rotate_refresh(&hash("idle-1"), &hash("idle-3"), at(T0 + 1801), IDLE).await.unwrap();
    assert_eq!(again, RotateOutcome::Invalid);
    assert_eq!(store.get_session(session.id).await.unwrap().unwrap().revoked_at, None);

    // Idle timeout longer than the lifetime: the absolute expiry wins from the start.
    let long_idle = NewSession {
        idle_timeout: jiff::SignedDuration::from_hours(24),
        absolute_lifetime: jiff::SignedDuration::from_hours(1),
        ..login(user.id, "abs-1")
    };
    let capped = store.create_session(&long_idle, at(T0)).await.unwrap();
    assert_eq!(capped.idle_expires_at, at(T0 + 3600));
    let overflow = NewSession { absolute_lifetime: jiff::SignedDuration::MAX, ..login(user.id, "abs-2") };
    assert!(matches!(store.create_session(&overflow, at(T0)).await, Err(Error::Invalid(_))));
}

async fn sessions_revocation_and_disabled_users(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("rev", Role::Operator), at(T0)).await.unwrap();
    let other = store.create_user(&new_user("bystander", Role::Operator), at(T0)).await.unwrap();
    let s1 = store.create_session(&login(user.id, "r1"), at(T0)).await.unwrap();
    let s2 = store.create_session(&login(user.id, "r2"), at(T0)).await.unwrap();
    let s3 = store.create_session(&login(user.id, "r3"), at(T0)).await.unwrap();
    let bystander = store.create_session(&login(other.id, "b1"), at(T0)).await.unwrap();

    assert!(store.revoke_session(s1.id, "logout", at(T0 + 1)).await.unwrap());
    assert!(!store.revoke_session(s1.id, "admin", at(T0 + 2)).await.unwrap(), "already revoked");
    let s1_now = store.get_session(s1.id).await.unwrap().unwrap();
    assert_eq!((s1_now.revoked_at, s1_now.revoked_reason.as_deref()), (Some(at(T0 + 1)), Some("logout")));
    assert!(!s1_now.is_active(at(T0 + 3)));
    assert!(matches!(store.revoke_session(SessionId(9999), "x", at(T0)).await, Err(Error::NotFound("session"))));
    assert_eq!(
        store.rotate_refresh(&hash("r1"), &hash("r1b"), at(T0 + 3), IDLE).await.unwrap(),
        RotateOutcome::Invalid
    );

    assert_eq!(store.revoke_user_sessions(user.id, "password changed", at(T0 + 5)).await.unwrap(), 2);
    for id in [s2.id, s3.id] {
        assert!(!store.session_active(id, at(T0 + 6)).await.unwrap());
        assert_eq!(store.get_session(id).await.unwrap().unwrap().revoked_reason.as_deref(), Some("password changed"));
    }
    assert!(store.session_active(bystander.id, at(T0 + 6)).await.unwrap());

    // A disabled user's sessions stop working at once, without revocation.
    let fresh = store.create_session(&login(user.id, "r4"), at(T0 + 7)).await.unwrap();
    assert!(store.session_active(fresh.id, at(T0 + 8)).await.unwrap());
    store.update_user(user.id, &UserUpdate { disabled: Some(true), ..Default::default() }, at(T0 + 9)).await.unwrap();
    assert!(!store.session_active(fresh.id, at(T0 + 10)).await.unwrap());
    assert!(!store.session_active(SessionId(9999), at(T0)).await.unwrap());
}

async fn api_tokens_expiry_revocation_and_disabled_users(h: &Harness) {
    let store = &h.store;
    let user = store.create_user(&new_user("scripter", Role::Operator), at(T0)).await.unwrap();
    let admin = store.create_user(&new_user("root", Role::Admin), at(T0)).await.unwrap();
    let new = NewApiToken { user_id: user.id, token_hash: hash("api-1"), label: "ci".into(), expires_at: at(T0 + 100) };
    let token = store.create_api_token(&new, at(T0)).await.unwrap();
    assert_eq!(
        (token.user_id, token.label.as_str(), token.last_used_at, token.revoked_at),
        (user.id, "ci", None, None)
    );
    let dup = store.create_api_token(&new, at(T0)).await.unwrap_err();
    assert_eq!(dup.to_string(), "API token already exists", "no hash in the message");
    let orphan = NewApiToken { user_id: UserId(9999), token_hash: hash("orphan"), ..new.clone() };
    assert!(matches!(store.create_api_token(&orphan, at(T0)).await, Err(Error::MissingReference("user"))));

    let (found, owner) = store.find_active_api_token(&hash("api-1"), at(T0 + 1)).await.unwrap().unwrap();
    assert_eq!((found.clone(), owner.id, owner.username.as_str()), (token.clone(), user.id, "scripter"));
    assert!(store.find_active_api_token(&hash("api-1"), at(T0 + 100)).await.unwrap().is_none(), "expired");
    assert!(store.find_active_api_token(&hash("nope"), at(T0 + 1)).await.unwrap().is_none());

    // Touch writes at most once a minute.
    store.touch_api_token(token.id, at(T0 + 10)).await.unwrap();
    store.touch_api_token(token.id, at(T0 + 30)).await.unwrap();
    assert_eq!(store.get_api_token(token.id).await.unwrap().unwrap().last_used_at, Some(at(T0 + 10)));
    store.touch_api_token(token.id, at(T0 + 71)).await.unwrap();
    assert_eq!(store.get_api_token(token.id).await.unwrap().unwrap().last_used_at, Some(at(T0 + 71)));

    let second = NewApiToken { token_hash: hash("api-2"), label: "backup".into(), ..new.clone() };
    let second = store.create_api_token(&second, at(T0 + 1)).await.unwrap();
    let third = NewApiToken { user_id: admin.id, token_hash: hash("api-3"), label: "admin".into(), ..new.clone() };
    let third = store.create_api_token(&third, at(T0 + 2)).await.unwrap();
    let mine: Vec<ApiTokenId> = store.list_api_tokens(user.id).await.unwrap().iter().map(|t| t.id).collect();
    assert_eq!(mine, vec![second.id, token.id]);
    let all = store.list_all_api_tokens(Paging::default()).await.unwrap();
    assert_eq!((all.total, all.items[0].id), (3, third.id));

    let revoked = store.revoke_api_token(second.id, at(T0 + 5)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(at(T0 + 5)));
    assert!(store.find_active_api_token(&hash("api-2"), at(T0 + 6)).await.unwrap().is_none(), "revoked");
    assert!(matches!(store.revoke_api_token(second.id, at(T0 + 7)).await, Err(Error::Conflict(_))));
    assert!(matches!(store.revoke_api_token(ApiTokenId(9999), at(T0)).await, Err(Error::NotFound("API token"))));

    store.update_user(user.id, &UserUpdate { disabled: Some(true), ..Default::default() }, at(T0 + 8)).await.unwrap();
    assert!(store.find_active_api_token(&hash("api-1"), at(T0 + 9)).await.unwrap().is_none(), "owner disabled");
    assert!(store.find_active_api_token(&hash("api-3"), at(T0 + 9)).await.unwrap().is_some());
}

fn certificate(serial: &str, kind: CertificateKind, host: Option<HostId>) -> NewCertificate {
    NewCertificate {
        serial: serial.into(),
        kind,
        common_name: format!("cn-{serial}"),
        host_id: host,
        not_before: at(T0),
        not_after: at(T0 + 86_400 * 90),
        pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
    }
}

async fn certificates_issue_list_and_revoke(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("agent-1", Transport::Pull), at(T0)).await.unwrap();
    let server = store.insert_certificate(&certificate("0A1B2C", CertificateKind::Server, None), at(T0)).await.unwrap();
    assert_eq!((server.serial.as_str(), server.kind, server.revoked_at), ("0a1b2c", CertificateKind::Server, None));
    assert_eq!((server.not_before, server.not_after), (at(T0), at(T0 + 86_400 * 90)));
    let client = certificate("ff01", CertificateKind::Client, Some(host.id));
    let client = store.insert_certificate(&client, at(T0 + 1)).await.unwrap();
    let push =
        store.insert_certificate(&certificate("ee02", CertificateKind::PushClient, None), at(T0 + 2)).await.unwrap();

    let dup =
        store.insert_certificate(&certificate("0a1b2c", CertificateKind::Client, None), at(T0)).await.unwrap_err();
    assert!(matches!(&dup, Error::Conflict(what) if what == "certificate serial already exists"), "{dup}");
    for bad in ["", "xyz", "0x12", &"a".repeat(41)] {
        let err = store.insert_certificate(&certificate(bad, CertificateKind::Client, None), at(T0)).await;
        assert!(matches!(err, Err(Error::Invalid(_))), "{bad:?}");
    }
    let orphan = certificate("dd", CertificateKind::Client, Some(HostId(9999)));
    assert!(matches!(store.insert_certificate(&orphan, at(T0)).await, Err(Error::MissingReference("host"))));
    let backwards = NewCertificate { not_after: at(T0), ..certificate("cc", CertificateKind::Client, None) };
    assert!(matches!(store.insert_certificate(&backwards, at(T0)).await, Err(Error::Invalid(_))));

    assert_eq!(store.get_certificate_by_serial("0A1B2C").await.unwrap().unwrap(), server);
    assert!(store.get_certificate_by_serial("beef").await.unwrap().is_none());
    assert!(store.get_certificate_by_serial("not hex").await.unwrap().is_none());

    let all = store.list_certificates(&CertificateFilter::default()).await.unwrap();
    assert_eq!(all.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![push.id, client.id, server.id]);
    assert_eq!(all.total, 3);
    let clients = CertificateFilter { kind: Some(CertificateKind::Client), ..Default::default() };
    assert_eq!(store.list_certificates(&clients).await.unwrap().items, vec![client.clone()]);
    let of_host = CertificateFilter { host_id: Some(host.id), ..Default::default() };
    assert_eq!(store.list_certificates(&of_host).await.unwrap().total, 1);

    let revoked = store.revoke_certificate("FF01", "key_compromise", at(T0 + 50)).await.unwrap();
    assert_eq!((revoked.revoked_at, revoked.revocation_reason.as_deref()), (Some(at(T0 + 50)), Some("key_compromise")));
    let again = store.revoke_certificate("ff01", "superseded", at(T0 + 60)).await.unwrap_err();
    assert!(matches!(&again, Error::Conflict(what) if what == "certificate already revoked"), "{again}");
    assert!(matches!(store.revoke_certificate("abcd", "x", at(T0)).await, Err(Error::NotFound("certificate"))));
    assert!(matches!(store.revoke_certificate("zz", "x", at(T0)).await, Err(Error::NotFound("certificate"))));
    store.revoke_certificate("ee02", "superseded", at(T0 + 40)).await.unwrap();

    let only_revoked = CertificateFilter { revoked: Some(true), ..Default::default() };
    assert_eq!(store.list_certificates(&only_revoked).await.unwrap().total, 2);
    let unrevoked = CertificateFilter { revoked: Some(false), ..Default::default() };
    assert_eq!(store.list_certificates(&unrevoked).await.unwrap().items, vec![server.clone()]);
    let crl = store.list_revoked_certificates().await.unwrap();
    assert_eq!(
        crl,
        vec![
            RevokedCertificate { serial: "ee02".into(), revoked_at: at(T0 + 40), reason: Some("superseded".into()) },
            RevokedCertificate {
                serial: "ff01".into(),
                revoked_at: at(T0 + 50),
                reason: Some("key_compromise".into())
            },
        ]
    );

    // A deleted host's certificates stay, for the CRL.
    store.delete_host(host.id).await.unwrap();
    let kept = store.get_certificate_by_serial("ff01").await.unwrap().unwrap();
    assert_eq!((kept.host_id, kept.revoked_at), (None, Some(at(T0 + 50))));
}

async fn audit_append_list_and_export(h: &Harness) {
    let store = &h.store;
    let alice = store.create_user(&new_user("alice", Role::Admin), at(T0)).await.unwrap();
    let mut first = audit(T0 + 1, "user:alice", "auth.login", AuditOutcome::Success);
    first.actor_user_id = Some(alice.id);
    first.details = serde_json::json!({ "mfa": "totp", "nested": { "b": [1, 2.5, null], "a": "ü\"\n" } });
    let first = store.append_audit(&first).await.unwrap();
    assert_eq!((first.id, first.prev_hash.clone()), (AuditId(1), vec![0; 32]));
    assert_eq!(first.hash.len(), 32);
    assert_eq!(first.computed_hash().to_vec(), first.hash);
    let mut second = audit(T0 + 2, "user:bob", "auth.login", AuditOutcome::Failure);
    second.target = Some("user:bob".into());
    let second = store.append_audit(&second).await.unwrap();
    assert_eq!((second.id, second.prev_hash.clone()), (AuditId(2), first.hash.clone()));
    store.append_audit(&audit(T0 + 3, "user:alice", "host.delete", AuditOutcome::Denied)).await.unwrap();
    store.append_audit(&audit(T0 + 4, "system", "authz.check", AuditOutcome::Success)).await.unwrap();
    store.append_audit(&audit(T0 + 5, "cli", "AUTH.reset", AuditOutcome::Success)).await.unwrap();

    let ids = |page: &Page<AuditEntry>| page.items.iter().map(|e| e.id.0).collect::<Vec<_>>();
    let all = store.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!((ids(&all), all.total), (vec![5, 4, 3, 2, 1], 5), "newest first by default");
    assert_eq!(all.items[4], first, "read back exactly as appended");

    let by_actor = AuditFilter { actor: Some("user:alice".into()), ..Default::default() };
    assert_eq!(ids(&store.list_audit(&by_actor).await.unwrap()), [3, 1]);
    let prefix = AuditFilter { action_prefix: Some("auth.".into()), ..Default::default() };
    assert_eq!(ids(&store.list_audit(&prefix).await.unwrap()), [2, 1], "prefix is case-sensitive and literal");
    let prefix = AuditFilter { action_prefix: Some("auth".into()), ..Default::default() };
    assert_eq!(ids(&store.list_audit(&prefix).await.unwrap()), [4, 2, 1]);
    let failures = AuditFilter { outcome: Some(AuditOutcome::Failure), ..Default::default() };
    assert_eq!(ids(&store.list_audit(&failures).await.unwrap()), [2]);
    let target = AuditFilter { target: Some("user:bob".into()), ..Default::default() };
    assert_eq!(ids(&store.list_audit(&target).await.unwrap()), [2]);
    let window =
        AuditFilter { from: Some(at(T0 + 2)), to: Some(at(T0 + 4)), order: SortDir::Asc, ..Default::default() };
    assert_eq!(ids(&store.list_audit(&window).await.unwrap()), [2, 3], "from inclusive, to exclusive");
    let cursor = AuditFilter { before_id: Some(AuditId(4)), paging: Paging::new(2, 0), ..Default::default() };
    let page = store.list_audit(&cursor).await.unwrap();
    assert_eq!((ids(&page), page.total), (vec![3, 2], 3));
    let after = AuditFilter { after_id: Some(AuditId(3)), ..Default::default() };
    assert_eq!(ids(&store.list_audit(&after).await.unwrap()), [5, 4]);

    // Export: JSON lines in id order, each verifiable offline.
    let mut exported = Vec::new();
    let mut cursor = None;
    loop {
        let batch = store.audit_entries_after(cursor, 2).await.unwrap();
        let Some(last) = batch.last() else { break };
        cursor = Some(last.id);
        exported.extend(batch);
    }
    assert_eq!(exported.iter().map(|e| e.id.0).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    for pair in exported.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    for entry in &exported {
        assert_eq!(entry.computed_hash().to_vec(), entry.hash, "entry {}", entry.id);
    }
    let line = serde_json::to_value(&exported[0]).unwrap();
    assert_eq!(line["id"], 1);
    assert_eq!(line["actor_user_id"], alice.id.0);
    assert_eq!(line["outcome"], "success");
    assert_eq!(line["prev_hash"], "0".repeat(64));
    assert_eq!(line["hash"].as_str().unwrap().len(), 64);
    assert_eq!(line["details"]["nested"]["a"], "ü\"\n");

    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(report, ChainReport { checked: 5, first_broken: None });
    // Audit entries survive the deletion of their actor.
    store.delete_user(alice.id).await.unwrap();
    assert_eq!(store.list_audit(&AuditFilter::default()).await.unwrap().items[4].actor_user_id, Some(alice.id));
    assert!(store.verify_audit_chain().await.unwrap().is_intact());
}

async fn concurrent_audit_appends_never_fork_the_chain(h: &Harness) {
    let store = &h.store;
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..10 {
                    let entry = audit(T0 + i, &format!("host:{task}"), "host.checkin", AuditOutcome::Success);
                    ids.push(store.append_audit(&entry).await.unwrap().id.0);
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    ids.sort();
    assert_eq!(ids, (1..=80).collect::<Vec<_>>(), "dense ids, none issued twice");
    let entries = store.audit_entries_after(None, 1000).await.unwrap();
    assert_eq!(entries.len(), 80);
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "entry {} links to {}", pair[1].id, pair[0].id);
    }
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 80, first_broken: None });
}

async fn append_n(store: &Store, n: i64) {
    for i in 1..=n {
        store.append_audit(&audit(T0 + i, "system", "test.event", AuditOutcome::Success)).await.unwrap();
    }
}

async fn audit_tampering_with_a_row_is_detected(h: &Harness) {
    let store = &h.store;
    append_n(store, 12).await;
    let raw = h.raw().await;
    sqlx::query("UPDATE audit_log SET action = 'test.innocent' WHERE id = 5").execute(&raw).await.unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 4, first_broken: Some(AuditId(5)) });
    sqlx::query("UPDATE audit_log SET action = 'test.event' WHERE id = 5").execute(&raw).await.unwrap();
    assert!(store.verify_audit_chain().await.unwrap().is_intact(), "restored");

    // Changing a field the UI does not show (details) or a NULL is caught the same way.
    sqlx::query("UPDATE audit_log SET details = '{\"n\":0}' WHERE id = 9").execute(&raw).await.unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap().first_broken, Some(AuditId(9)));
    sqlx::query(&format!("UPDATE audit_log SET details = '{{\"n\":{}}}' WHERE id = 9", T0 + 9))
        .execute(&raw)
        .await
        .unwrap();
    assert!(store.verify_audit_chain().await.unwrap().is_intact());
    sqlx::query("UPDATE audit_log SET source_ip = NULL WHERE id = 2").execute(&raw).await.unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap().first_broken, Some(AuditId(2)));
    raw.close().await;
}

async fn audit_deleting_rows_is_detected(h: &Harness) {
    let store = &h.store;
    append_n(store, 120).await; // more than two verification batches
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 120, first_broken: None });
    let raw = h.raw().await;
    // The newest entry: what remains is a valid chain, but it no longer ends at the head.
    sqlx::query("DELETE FROM audit_log WHERE id = 120").execute(&raw).await.unwrap();
    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(report, ChainReport { checked: 119, first_broken: Some(AuditId(120)) });
    // A middle entry, in the second batch.
    sqlx::query("DELETE FROM audit_log WHERE id = 70").execute(&raw).await.unwrap();
    let report = store.verify_audit_chain().await.unwrap();
    assert_eq!(report, ChainReport { checked: 69, first_broken: Some(AuditId(70)) });
    // The oldest entry, deleted behind the pruner's back.
    sqlx::query("DELETE FROM audit_log WHERE id = 1").execute(&raw).await.unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 0, first_broken: Some(AuditId(1)) });
    raw.close().await;
}

async fn audit_pruning_keeps_the_chain_verifiable(h: &Harness) {
    let store = &h.store;
    append_n(store, 10).await; // entry i at T0 + i
    assert_eq!(store.prune_audit_before(at(T0)).await.unwrap(), 0, "nothing older");
    assert_eq!(store.prune_audit_before(at(T0 + 5)).await.unwrap(), 4);
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 6, first_broken: None });
    let left = store.audit_entries_after(None, 100).await.unwrap();
    assert_eq!(left.first().map(|e| e.id), Some(AuditId(5)));
    assert_eq!(store.prune_audit_before(at(T0 + 5)).await.unwrap(), 0, "pruning again is a no-op");

    // New entries continue the chain and the id sequence.
    let next = store.append_audit(&audit(T0 + 11, "system", "test.after", AuditOutcome::Success)).await.unwrap();
    assert_eq!(next.id, AuditId(11));
    assert!(store.verify_audit_chain().await.unwrap().is_intact());

    // An entry with an older time after a newer one: pruning stops at the first newer entry.
    store.append_audit(&audit(T0 + 1, "system", "test.clock-skew", AuditOutcome::Success)).await.unwrap();
    assert_eq!(store.prune_audit_before(at(T0 + 8)).await.unwrap(), 3); // ids 5, 6, 7
    assert_eq!(store.audit_entries_after(None, 1).await.unwrap()[0].id, AuditId(8));
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 5, first_broken: None });

    // After pruning, deleting a middle entry is still found.
    let raw = h.raw().await;
    sqlx::query("DELETE FROM audit_log WHERE id = 10").execute(&raw).await.unwrap();
    assert_eq!(store.verify_audit_chain().await.unwrap().first_broken, Some(AuditId(10)));
    raw.close().await;
    // Pruning past the hole re-anchors at the oldest remaining entry: what is kept verifies.
    assert_eq!(store.prune_audit_before(at(T0 + 11)).await.unwrap(), 2); // ids 8 and 9
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 2, first_broken: None });
}

async fn audit_pruning_everything_then_appending(h: &Harness) {
    let store = &h.store;
    append_n(store, 3).await;
    assert_eq!(store.prune_audit_before(at(T0 + 1000)).await.unwrap(), 3);
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 0, first_broken: None });
    assert!(store.list_audit(&AuditFilter::default()).await.unwrap().items.is_empty());
    let next = store.append_audit(&audit(T0 + 2000, "system", "test.again", AuditOutcome::Success)).await.unwrap();
    assert_eq!(next.id, AuditId(4), "ids are never reused, even after pruning everything");
    assert_eq!(store.verify_audit_chain().await.unwrap(), ChainReport { checked: 1, first_broken: None });
}

async fn settings_round_trip(h: &Harness) {
    let store = &h.store;
    let admin = store.create_user(&new_user("admin", Role::Admin), at(T0)).await.unwrap();
    assert_eq!(store.get_setting("smtp").await.unwrap(), None);
    let smtp = serde_json::json!({ "host": "mail.example", "port": 587, "tls": true });
    store.set_setting("smtp", &smtp, Some(admin.id), at(T0)).await.unwrap();
    assert_eq!(store.get_setting("smtp").await.unwrap(), Some(smtp));
    store.set_setting("smtp", &serde_json::json!({ "host": "relay" }), None, at(T0 + 1)).await.unwrap();
    store.set_setting("a.first", &serde_json::json!(42), Some(admin.id), at(T0 + 2)).await.unwrap();
    store.set_setting("Z.upper", &serde_json::json!([1, "two"]), None, at(T0 + 3)).await.unwrap();
    let listed = store.list_settings().await.unwrap();
    assert_eq!(listed.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(), ["Z.upper", "a.first", "smtp"]);
    let smtp = &listed[2];
    assert_eq!(
        (smtp.value.clone(), smtp.updated_at, smtp.updated_by),
        (serde_json::json!({ "host": "relay" }), at(T0 + 1), None)
    );
    assert_eq!(listed[1].updated_by, Some(admin.id));
    assert!(matches!(store.set_setting(" ", &serde_json::json!(1), None, at(T0)).await, Err(Error::Invalid(_))));
    let orphan = store.set_setting("x", &serde_json::json!(1), Some(UserId(9999)), at(T0)).await;
    assert!(matches!(orphan, Err(Error::MissingReference("user"))));
    assert!(store.delete_setting("smtp").await.unwrap());
    assert!(!store.delete_setting("smtp").await.unwrap());
    assert_eq!(store.get_setting("smtp").await.unwrap(), None);
    store.delete_user(admin.id).await.unwrap();
    assert_eq!(store.list_settings().await.unwrap()[1].updated_by, None, "the value outlives its author");
}

async fn backup_of_a_live_database_restores(h: &Harness) {
    let store = &h.store;
    let target = h.dir.path().join("backup.db");
    if store.backend() == Backend::Postgres {
        let err = store.backup_to(&target).await.unwrap_err();
        assert!(matches!(&err, Error::Unsupported(text) if text.contains("pg_dump")), "{err}");
        assert!(!target.exists());
        return;
    }
    let alice = store.create_user(&new_user("alice", Role::Admin), at(T0)).await.unwrap();
    append_n(store, 50).await;

    // A writer keeps appending while the backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut appended = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || appended < 20 {
                store.append_audit(&audit(T0 + 100, "system", "test.live", AuditOutcome::Success)).await.unwrap();
                appended += 1;
            }
            appended
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    store.backup_to(&target).await.unwrap();
    let during = store.list_audit(&AuditFilter { paging: Paging::new(0, 0), ..Default::default() }).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let appended = writer.await.unwrap();
    assert!(appended >= 20);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let err = store.backup_to(&target).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "an existing file is never overwritten: {err}");

    let restored = Store::connect(&DatabaseConfig::Sqlite { path: target.clone() }).await.unwrap();
    restored.migrate().await.unwrap();
    assert_eq!(restored.get_user(alice.id).await.unwrap().unwrap(), alice);
    let report = restored.verify_audit_chain().await.unwrap();
    assert!(report.is_intact(), "the snapshot is transactionally consistent: {report:?}");
    let copied = restored.audit_entries_after(None, 1000).await.unwrap();
    assert!(copied.len() >= 50 && copied.len() as u64 <= during.total, "{} of {}", copied.len(), during.total);
    let live = store.audit_entries_after(None, copied.len() as u32).await.unwrap();
    assert_eq!(copied, live, "the backup is a prefix of the live log");
    // The restored database is a working store.
    restored.append_audit(&audit(T0 + 999, "system", "test.restored", AuditOutcome::Success)).await.unwrap();
    assert!(restored.verify_audit_chain().await.unwrap().is_intact());
    restored.close().await;
}

// ---------------------------------------------------------------------------------------------
// Agents: enrollment, check-ins, inventory and commands.

use patchdeck_proto::agent::{
    Command, CommandResult, CommandState, Metrics, PackageChange, ResultError, Selection, Subsystem,
};
use patchdeck_proto::inventory::{
    AvailableUpdate, BackendKind, InstalledPackage, OsInfo, RebootStatus, ScanReport, SecurityClass, SecurityInfo,
    TxAction, SCAN_SCHEMA_VERSION,
};
use uuid::Uuid;

fn agent_host(hostname: &str, machine_id: &str, approval: Approval) -> NewAgentHost {
    NewAgentHost {
        hostname: hostname.into(),
        fqdn: Some(format!("{}.Example.com", hostname.to_uppercase())),
        addresses: vec!["192.0.2.10".into(), "2001:db8::10".into()],
        machine_id: machine_id.into(),
        os_name: Some("debian".into()),
        os_version: Some("12".into()),
        os_pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
        kernel: Some("6.1.0-18-amd64".into()),
        arch: Some("x86_64".into()),
        agent_version: "0.1.0".into(),
        approval,
        pending_csr: None,
    }
}

fn machine(n: u32) -> String {
    format!("{n:032x}")
}

async fn seats(store: &Store, label: &str, seats_total: u32) -> RegistrationToken {
    let new = NewRegistrationToken {
        token_hash: hash(label),
        label: label.into(),
        seats_total,
        expires_at: at(T0 + 3600),
        created_by: None,
    };
    store.create_registration_token(&new, at(T0)).await.unwrap()
}

async fn seats_used(store: &Store, token: &RegistrationToken) -> u32 {
    store.get_registration_token(token.id).await.unwrap().unwrap().seats_used
}

async fn agent_enrollment_binds_the_machine_and_takes_a_seat(h: &Harness) {
    let store = &h.store;
    let token = seats(store, "rack", 3).await;
    let new = agent_host("web-1", &machine(1), Approval::Approved);
    let host = store.enroll_agent_host(&hash("rack"), &new, at(T0 + 1)).await.unwrap();
    assert_eq!(
        (host.transport, host.status, host.approval, host.machine_id.as_deref()),
        (Transport::Pull, HostStatus::Pending, Approval::Approved, Some(machine(1).as_str()))
    );
    assert_eq!((host.hostname.as_str(), host.fqdn.as_deref()), ("web-1", Some("web-1.example.com")));
    assert_eq!(host.addresses, ["192.0.2.10", "2001:db8::10"]);
    assert_eq!((host.os_name.as_deref(), host.os_version.as_deref()), (Some("debian"), Some("12")));
    assert_eq!(host.os_pretty_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    assert_eq!((host.kernel.as_deref(), host.arch.as_deref()), (Some("6.1.0-18-amd64"), Some("x86_64")));
    assert_eq!((host.agent_version.as_deref(), host.registration_token_id), (Some("0.1.0"), Some(token.id)));
    assert_eq!((host.inventory_hash.as_deref(), host.metrics.as_ref(), host.reboot_required), (None, None, false));
    assert_eq!((host.installed_count, host.updates_count, host.security_updates_count), (0, 0, 0));
    assert_eq!((host.created_at, host.updated_at), (at(T0 + 1), at(T0 + 1)));
    assert_eq!(store.get_host(host.id).await.unwrap().unwrap(), host);
    assert_eq!(seats_used(store, &token).await, 1);
    assert_eq!(store.pending_csr(host.id).await.unwrap(), None);

    // Held for approval, with the CSR to sign later.
    let held = NewAgentHost { pending_csr: Some("-----BEGIN CERTIFICATE REQUEST-----".into()), ..new.clone() };
    let held = NewAgentHost { machine_id: machine(2), approval: Approval::Pending, ..held };
    let pending = store.enroll_agent_host(&hash("rack"), &held, at(T0 + 2)).await.unwrap();
    assert_eq!(pending.approval, Approval::Pending);
    assert_eq!(store.pending_csr(pending.id).await.unwrap().as_deref(), Some("-----BEGIN CERTIFICATE REQUEST-----"));
    let listed = store.list_hosts(&HostFilter::new(Scope::All)).await.unwrap();
    assert_eq!(listed.items.iter().map(|h| h.id).collect::<Vec<_>>(), [host.id], "pending hosts are not listed");
    let asked = HostFilter { approval: Some(Approval::Pending), ..HostFilter::new(Scope::All) };
    assert_eq!(store.list_hosts(&asked).await.unwrap().items, std::slice::from_ref(&pending));

    let approved = store.set_host_approval(pending.id, Approval::Approved, at(T0 + 3)).await.unwrap();
    assert_eq!((approved.approval, approved.updated_at), (Approval::Approved, at(T0 + 3)));
    store.clear_pending_csr(pending.id).await.unwrap();
    assert_eq!(store.pending_csr(pending.id).await.unwrap(), None);
    assert_eq!(store.list_hosts(&HostFilter::new(Scope::All)).await.unwrap().total, 2);
    let rejected = store.set_host_approval(pending.id, Approval::Rejected, at(T0 + 4)).await.unwrap();
    assert_eq!(rejected.approval, Approval::Rejected);
    let missing = HostId(9999);
    assert!(matches!(store.set_host_approval(missing, Approval::Approved, at(T0)).await, Err(Error::NotFound("host"))));
    assert!(matches!(store.pending_csr(missing).await, Err(Error::NotFound("host"))));
    assert!(matches!(store.clear_pending_csr(missing).await, Err(Error::NotFound("host"))));

    // Hosts added by an administrator are approved; deleting the token keeps the host.
    let push = store.create_host(&new_host("db-1", Transport::Push), at(T0)).await.unwrap();
    assert_eq!((push.approval, push.addresses.len(), push.registration_token_id), (Approval::Approved, 0, None));
}

async fn agent_enrollment_refusals_take_no_seat(h: &Harness) {
    let store = &h.store;
    let token = seats(store, "one", 2).await;
    let first = store
        .enroll_agent_host(&hash("one"), &agent_host("a", &machine(1), Approval::Approved), at(T0 + 1))
        .await
        .unwrap();

    // The machine id is bound: refused, and the seat is given back.
    let clone = agent_host("clone", &machine(1), Approval::Approved);
    match store.enroll_agent_host(&hash("one"), &clone, at(T0 + 2)).await {
        Err(EnrollError::MachineAlreadyEnrolled(id)) => assert_eq!(id, first.id),
        other => panic!("expected MachineAlreadyEnrolled, got {other:?}"),
    }
    assert_eq!(seats_used(store, &token).await, 1);

    // Bad input is refused before anything is written.
    for bad in [agent_host(" ", &machine(3), Approval::Approved), agent_host("b", "  ", Approval::Approved)] {
        let err = store.enroll_agent_host(&hash("one"), &bad, at(T0 + 2)).await.unwrap_err();
        assert!(matches!(err, EnrollError::Store(Error::Invalid(_))), "{err:?}");
    }
    assert_eq!(seats_used(store, &token).await, 1);

    // Token refusals, with take_seat's precedence: unknown, revoked, expired, full.
    let next = agent_host("b", &machine(2), Approval::Approved);
    let seat_error = |result: Result<Host, EnrollError>| match result {
        Err(EnrollError::Seat(err)) => err,
        other => panic!("expected a seat error, got {other:?}"),
    };
    let err = seat_error(store.enroll_agent_host(&hash("nope"), &next, at(T0 + 2)).await);
    assert!(matches!(err, TakeSeatError::NotFound), "{err}");
    let err = seat_error(store.enroll_agent_host(&hash("one"), &next, at(T0 + 3600)).await);
    assert!(matches!(err, TakeSeatError::Expired), "{err}");
    store.enroll_agent_host(&hash("one"), &next, at(T0 + 3)).await.unwrap();
    let third = agent_host("c", &machine(3), Approval::Approved);
    let err = seat_error(store.enroll_agent_host(&hash("one"), &third, at(T0 + 4)).await);
    assert!(matches!(err, TakeSeatError::NoSeatsLeft), "{err}");
    store.revoke_registration_token(token.id, at(T0 + 5)).await.unwrap();
    let err = seat_error(store.enroll_agent_host(&hash("one"), &third, at(T0 + 3600)).await);
    assert!(matches!(err, TakeSeatError::Revoked), "revoked wins over expired: {err}");
    assert!(store.get_host_by_machine_id(&machine(3)).await.unwrap().is_none());
}

async fn agent_reenrollment_keeps_the_host(h: &Harness) {
    let store = &h.store;
    let token = seats(store, "re", 4).await;
    let other_token = seats(store, "other", 1).await;
    let original = store
        .enroll_agent_host(&hash("re"), &agent_host("old-name", &machine(7), Approval::Approved), at(T0 + 1))
        .await
        .unwrap();
    let group = store.create_group("web", "", at(T0)).await.unwrap();
    store.add_host_to_group(original.id, group.id).await.unwrap();
    store.set_host_status(original.id, HostStatus::Online, Some(at(T0 + 5)), at(T0 + 5)).await.unwrap();

    let again = NewAgentHost {
        hostname: "new-name".into(),
        fqdn: None,
        addresses: vec!["198.51.100.7".into()],
        os_version: Some("13".into()),
        agent_version: "0.2.0".into(),
        pending_csr: Some("csr".into()),
        ..agent_host("x", &machine(7), Approval::Approved)
    };
    let host = store.reenroll_agent_host(&hash("other"), original.id, &again, at(T0 + 10)).await.unwrap();
    assert_eq!(host.id, original.id);
    assert_eq!((host.hostname.as_str(), host.fqdn.as_deref()), ("new-name", None));
    assert_eq!((host.addresses.as_slice(), host.os_version.as_deref()), (&["198.51.100.7".to_owned()][..], Some("13")));
    assert_eq!((host.agent_version.as_deref(), host.registration_token_id), (Some("0.2.0"), Some(other_token.id)));
    assert_eq!((host.status, host.last_seen_at, host.created_at), (HostStatus::Online, Some(at(T0 + 5)), at(T0 + 1)));
    assert_eq!(store.host_group_ids(host.id).await.unwrap(), [group.id], "groups stay");
    assert_eq!(store.pending_csr(host.id).await.unwrap().as_deref(), Some("csr"));
    assert_eq!((seats_used(store, &token).await, seats_used(store, &other_token).await), (1, 1));

    // Judged like a new enrollment: it may become pending; a rejected host stays rejected.
    let pending = NewAgentHost { approval: Approval::Pending, ..again.clone() };
    let host = store.reenroll_agent_host(&hash("re"), original.id, &pending, at(T0 + 11)).await.unwrap();
    assert_eq!(host.approval, Approval::Pending);
    store.set_host_approval(original.id, Approval::Rejected, at(T0 + 12)).await.unwrap();
    let host = store.reenroll_agent_host(&hash("re"), original.id, &again, at(T0 + 13)).await.unwrap();
    assert_eq!(host.approval, Approval::Rejected);
    assert_eq!(seats_used(store, &token).await, 3);

    // No host, or the machine id of another host: refused without a seat.
    let err = store.reenroll_agent_host(&hash("re"), HostId(9999), &again, at(T0 + 14)).await.unwrap_err();
    assert!(matches!(err, EnrollError::Store(Error::NotFound("host"))), "{err:?}");
    let neighbour = store
        .enroll_agent_host(&hash("re"), &agent_host("n", &machine(8), Approval::Approved), at(T0 + 15))
        .await
        .unwrap();
    assert_eq!(seats_used(store, &token).await, 4);
    store.release_seat(token.id).await.unwrap();
    let steal = NewAgentHost { machine_id: machine(8), ..again.clone() };
    match store.reenroll_agent_host(&hash("re"), original.id, &steal, at(T0 + 16)).await {
        Err(EnrollError::MachineAlreadyEnrolled(id)) => assert_eq!(id, neighbour.id),
        other => panic!("expected MachineAlreadyEnrolled, got {other:?}"),
    }
    assert_eq!(seats_used(store, &token).await, 3);
    let err = store.reenroll_agent_host(&hash("other"), original.id, &again, at(T0 + 17)).await.unwrap_err();
    assert!(matches!(err, EnrollError::Seat(TakeSeatError::NoSeatsLeft)), "{err:?}");
}

async fn concurrent_enrollments_get_exactly_the_seats(h: &Harness) {
    let store = &h.store;
    let token = seats(store, "burst", 5).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let new = agent_host(&format!("h{i}"), &machine(100 + i), Approval::Approved);
            tokio::spawn(async move { store.enroll_agent_host(&hash("burst"), &new, at(T0 + 1)).await })
        })
        .collect();
    let (mut enrolled, mut full) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(host) => enrolled.push(host.id),
            Err(EnrollError::Seat(TakeSeatError::NoSeatsLeft)) => full += 1,
            Err(other) => panic!("unexpected refusal: {other:?}"),
        }
    }
    assert_eq!((enrolled.len(), full), (5, 3));
    assert_eq!(seats_used(store, &token).await, 5);
    assert_eq!(store.list_hosts(&HostFilter::new(Scope::All)).await.unwrap().total, 5, "one host per seat");
}

async fn concurrent_enrollments_of_one_machine_bind_it_once(h: &Harness) {
    let store = &h.store;
    let token = seats(store, "twins", 10).await;
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            let new = agent_host(&format!("twin{i}"), &machine(42), Approval::Approved);
            tokio::spawn(async move { store.enroll_agent_host(&hash("twins"), &new, at(T0 + 1)).await })
        })
        .collect();
    let (mut winners, mut refused) = (Vec::new(), Vec::new());
    for task in tasks {
        match task.await.unwrap() {
            Ok(host) => winners.push(host.id),
            Err(EnrollError::MachineAlreadyEnrolled(id)) => refused.push(id),
            Err(other) => panic!("unexpected refusal: {other:?}"),
        }
    }
    assert_eq!((winners.len(), refused.len()), (1, 5));
    assert!(refused.iter().all(|id| *id == winners[0]), "every refusal names the winner");
    assert_eq!(seats_used(store, &token).await, 1, "refused enrollments gave their seats back");
}

fn metrics(boot_id: Option<&str>, kernel: Option<&str>, reboot_required: bool) -> Metrics {
    Metrics {
        load: [0.5, 0.25, 0.125],
        cpu_count: 4,
        cpu_percent: Some(12.5),
        memory_total_bytes: 8 << 30,
        memory_available_bytes: 6 << 30,
        uptime_secs: 3600,
        boot_id: boot_id.map(str::to_owned),
        kernel: kernel.map(str::to_owned),
        reboot_required,
        ..Metrics::default()
    }
}

fn checkin(agent_version: &str, metrics: Metrics) -> CheckinFacts {
    CheckinFacts { agent_version: agent_version.into(), metrics }
}

async fn checkins_record_facts_and_stale_hosts_go_offline(h: &Harness) {
    let store = &h.store;
    seats(store, "ci", 5).await;
    let enroll = |n: u32| agent_host(&format!("pull{n}"), &machine(n), Approval::Approved);
    let host = store.enroll_agent_host(&hash("ci"), &enroll(1), at(T0)).await.unwrap();
    let fresh = store.enroll_agent_host(&hash("ci"), &enroll(2), at(T0)).await.unwrap();
    let push = store.create_host(&new_host("push", Transport::Push), at(T0)).await.unwrap();

    let facts = checkin("0.1.1", metrics(Some("boot-1"), Some("6.1.0-20-amd64"), true));
    let outcome = store.record_checkin(host.id, &facts, at(T0 + 10)).await.unwrap();
    assert_eq!(outcome, CheckinOutcome { previous_status: HostStatus::Pending, inventory_hash: None });
    let seen = store.get_host(host.id).await.unwrap().unwrap();
    assert_eq!(
        (seen.status, seen.last_seen_at, seen.metrics_at),
        (HostStatus::Online, Some(at(T0 + 10)), Some(at(T0 + 10)))
    );
    assert_eq!((seen.agent_version.as_deref(), seen.boot_id.as_deref()), (Some("0.1.1"), Some("boot-1")));
    assert_eq!((seen.kernel.as_deref(), seen.reboot_required), (Some("6.1.0-20-amd64"), true));
    let stored: Metrics = serde_json::from_value(seen.metrics.clone().unwrap()).unwrap();
    assert_eq!(stored, facts.metrics, "metrics round-trip as JSON");

    // Missing boot id and kernel keep the stored ones; the reboot flag always follows.
    let quiet = checkin("0.1.1", metrics(None, None, false));
    let outcome = store.record_checkin(host.id, &quiet, at(T0 + 20)).await.unwrap();
    assert_eq!(outcome.previous_status, HostStatus::Online);
    let seen = store.get_host(host.id).await.unwrap().unwrap();
    assert_eq!((seen.boot_id.as_deref(), seen.kernel.as_deref()), (Some("boot-1"), Some("6.1.0-20-amd64")));
    assert!(!seen.reboot_required);

    // The stored inventory hash comes back, so the caller can ask for a new inventory.
    let report = scan(BackendKind::Apt, vec![package("bash", "5.2.15-2+b2")], vec![]);
    store.replace_inventory(host.id, &report, "sha256:0123", at(T0 + 21)).await.unwrap();
    let outcome = store.record_checkin(host.id, &quiet, at(T0 + 30)).await.unwrap();
    assert_eq!(outcome.inventory_hash.as_deref(), Some("sha256:0123"));

    // Stale pull hosts go offline; push hosts and fresh pull hosts do not.
    store.record_checkin(fresh.id, &quiet, at(T0 + 600)).await.unwrap();
    store.set_host_status(push.id, HostStatus::Online, Some(at(T0)), at(T0)).await.unwrap();
    let offline = store.mark_pull_hosts_offline(at(T0 + 300), at(T0 + 601)).await.unwrap();
    assert_eq!(offline, [host.id]);
    let gone = store.get_host(host.id).await.unwrap().unwrap();
    assert_eq!(
        (gone.status, gone.last_seen_at, gone.updated_at),
        (HostStatus::Offline, Some(at(T0 + 30)), at(T0 + 601))
    );
    assert_eq!(store.get_host(push.id).await.unwrap().unwrap().status, HostStatus::Online);
    assert_eq!(store.get_host(fresh.id).await.unwrap().unwrap().status, HostStatus::Online);
    assert!(store.mark_pull_hosts_offline(at(T0 + 300), at(T0 + 602)).await.unwrap().is_empty(), "once");

    // Its next check-in brings it back and says where it came from.
    let outcome = store.record_checkin(host.id, &quiet, at(T0 + 700)).await.unwrap();
    assert_eq!(outcome.previous_status, HostStatus::Offline);
    assert_eq!(store.get_host(host.id).await.unwrap().unwrap().status, HostStatus::Online);
    let err = store.record_checkin(HostId(9999), &quiet, at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound("host")), "{err}");
}

async fn host_filters_for_agents(h: &Harness) {
    let store = &h.store;
    seats(store, "f", 5).await;
    let deb = store.create_host(&new_host("deb1", Transport::Pull), at(T0)).await.unwrap();
    let rhel = store.create_host(&new_host("rhel1", Transport::Pull), at(T0)).await.unwrap();
    let never = store.create_host(&new_host("never", Transport::Pull), at(T0)).await.unwrap();
    let pending = store
        .enroll_agent_host(&hash("f"), &agent_host("pend1", &machine(1), Approval::Pending), at(T0))
        .await
        .unwrap();
    let rejected = store
        .enroll_agent_host(&hash("f"), &agent_host("rej1", &machine(2), Approval::Approved), at(T0))
        .await
        .unwrap();
    store.set_host_approval(rejected.id, Approval::Rejected, at(T0)).await.unwrap();

    let mut deb_scan = scan(
        BackendKind::Apt,
        vec![package("openssl", "3.0.11-1~deb12u2"), package("libc6", "2.36-9+deb12u3")],
        vec![
            update("openssl", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", SecurityClass::Security),
            update("libc6", "2.36-9+deb12u3", "2.36-9+deb12u4", SecurityClass::Security),
        ],
    );
    deb_scan.reboot.required = true;
    store.replace_inventory(deb.id, &deb_scan, "sha256:deb", at(T0)).await.unwrap();
    let mut rhel_scan = scan(
        BackendKind::Dnf,
        vec![package("openssl", "1:3.0.7-24.el9")],
        vec![update("openssl", "1:3.0.7-24.el9", "1:3.0.7-25.el9", SecurityClass::NotSecurity)],
    );
    rhel_scan.os = OsInfo {
        id: "rhel".into(),
        version_id: Some("9.3".into()),
        pretty_name: Some("Red Hat Enterprise Linux 9.3 (Plow)".into()),
        ..OsInfo::default()
    };
    store.replace_inventory(rhel.id, &rhel_scan, "sha256:rhel", at(T0)).await.unwrap();
    let quiet = checkin("0.1.0", metrics(None, None, true));
    store.record_checkin(deb.id, &quiet, at(T0 + 10)).await.unwrap();
    let quiet = checkin("0.1.0", metrics(None, None, false));
    store.record_checkin(rhel.id, &quiet, at(T0 + 20)).await.unwrap();

    let names = |page: Page<Host>| page.items.iter().map(|h| h.hostname.clone()).collect::<Vec<_>>();
    let list = |filter: HostFilter| async move { names(store.list_hosts(&filter).await.unwrap()) };
    let all = HostFilter::new(Scope::All);
    assert_eq!(list(all.clone()).await, ["deb1", "never", "rhel1"], "approved only by default");
    let waiting = store.list_hosts(&HostFilter { approval: Some(Approval::Pending), ..all.clone() }).await.unwrap();
    assert_eq!((waiting.items.iter().map(|h| h.id).collect::<Vec<_>>(), waiting.total), (vec![pending.id], 1));
    assert_eq!(list(HostFilter { approval: Some(Approval::Rejected), ..all.clone() }).await, ["rej1"]);
    // `never` keeps the OS name it was created with ("Debian GNU/Linux").
    assert_eq!(list(HostFilter { os: Some("DEBIAN".into()), ..all.clone() }).await, ["deb1", "never"]);
    assert_eq!(list(HostFilter { os: Some("red hat".into()), ..all.clone() }).await, ["rhel1"]);
    assert_eq!(list(HostFilter { os: Some("plow)".into()), ..all.clone() }).await, ["rhel1"]);
    assert_eq!(list(HostFilter { has_security_updates: Some(true), ..all.clone() }).await, ["deb1"]);
    assert_eq!(list(HostFilter { has_security_updates: Some(false), ..all.clone() }).await, ["never", "rhel1"]);
    assert_eq!(list(HostFilter { reboot_required: Some(true), ..all.clone() }).await, ["deb1"]);
    assert_eq!(list(HostFilter { reboot_required: Some(false), ..all.clone() }).await, ["never", "rhel1"]);
    assert_eq!(list(HostFilter { seen_before: Some(at(T0 + 20)), ..all.clone() }).await, ["deb1"], "exclusive");
    assert_eq!(list(HostFilter { seen_after: Some(at(T0 + 20)), ..all.clone() }).await, ["rhel1"], "inclusive");
    let window = HostFilter { seen_after: Some(at(T0 + 10)), seen_before: Some(at(T0 + 21)), ..all.clone() };
    assert_eq!(list(window).await, ["deb1", "rhel1"]);

    let by_security = HostFilter { sort: HostSort::SecurityUpdates, dir: SortDir::Desc, ..all.clone() };
    let page = store.list_hosts(&by_security).await.unwrap();
    assert_eq!(page.items.iter().map(|h| h.id).collect::<Vec<_>>(), [deb.id, never.id, rhel.id], "ties by id desc");
    let by_security = HostFilter { sort: HostSort::SecurityUpdates, ..all.clone() };
    let page = store.list_hosts(&by_security).await.unwrap();
    assert_eq!(page.items.iter().map(|h| h.id).collect::<Vec<_>>(), [rhel.id, never.id, deb.id]);

    // The scope still applies, to rows and total.
    let group = store.create_group("g", "", at(T0)).await.unwrap();
    store.add_host_to_group(deb.id, group.id).await.unwrap();
    let outside = HostFilter { has_security_updates: Some(true), ..HostFilter::new(Scope::Groups(vec![])) };
    let page = store.list_hosts(&outside).await.unwrap();
    assert_eq!((page.items.len(), page.total), (0, 0));
}

async fn revoking_a_hosts_certificates(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("agent", Transport::Pull), at(T0)).await.unwrap();
    let other = store.create_host(&new_host("other", Transport::Pull), at(T0)).await.unwrap();
    for (serial, owner) in [("0b", host.id), ("0a", host.id), ("0c", host.id), ("0d", other.id)] {
        store.insert_certificate(&certificate(serial, CertificateKind::Client, Some(owner)), at(T0)).await.unwrap();
    }
    store.revoke_certificate("0c", "key_compromise", at(T0 + 1)).await.unwrap();
    let revoked = store.revoke_host_certificates(host.id, "superseded", at(T0 + 2)).await.unwrap();
    assert_eq!(revoked, ["0a", "0b"]);
    let earlier = store.get_certificate_by_serial("0c").await.unwrap().unwrap();
    assert_eq!((earlier.revoked_at, earlier.revocation_reason.as_deref()), (Some(at(T0 + 1)), Some("key_compromise")));
    let now = store.get_certificate_by_serial("0a").await.unwrap().unwrap();
    assert_eq!((now.revoked_at, now.revocation_reason.as_deref()), (Some(at(T0 + 2)), Some("superseded")));
    assert_eq!(store.get_certificate_by_serial("0d").await.unwrap().unwrap().revoked_at, None);
    assert!(store.revoke_host_certificates(host.id, "superseded", at(T0 + 3)).await.unwrap().is_empty());
}

/// The one-query lookup behind every agent request reads exactly what the two separate lookups
/// read, although certificates and hosts share column names (`id`, `created_at`).
async fn agent_identity_is_the_certificate_with_its_host(h: &Harness) {
    let store = &h.store;
    // Ids and times that differ between the two tables, so a column read from the wrong side shows.
    store.create_host(&new_host("padding", Transport::Pull), at(T0)).await.unwrap();
    let bound = NewHost { machine_id: Some("m-1".into()), ..new_host("agent", Transport::Pull) };
    let host = store.create_host(&bound, at(T0 + 1)).await.unwrap();
    let host = store.set_host_status(host.id, HostStatus::Online, Some(at(T0 + 2)), at(T0 + 3)).await.unwrap();
    let client = store
        .insert_certificate(&certificate("AB01", CertificateKind::Client, Some(host.id)), at(T0 + 7))
        .await
        .unwrap();
    let server =
        store.insert_certificate(&certificate("cd02", CertificateKind::Server, None), at(T0 + 8)).await.unwrap();
    assert_ne!(client.id.0, host.id.0);

    let (certificate, joined) = store.agent_identity("ab01").await.unwrap().expect("known serial");
    assert_eq!(certificate, client);
    assert_eq!(joined.as_ref(), Some(&host));
    assert_eq!(joined, store.get_host(host.id).await.unwrap());
    assert_eq!(store.agent_identity("CD02").await.unwrap(), Some((server, None)), "a certificate of no host");
    assert_eq!(store.agent_identity("beef").await.unwrap(), None);
    assert_eq!(store.agent_identity("not hex").await.unwrap(), None);

    // Revoked: still found (the caller refuses it); host deleted: the certificate stays, alone.
    let revoked = store.revoke_certificate("ab01", "superseded", at(T0 + 9)).await.unwrap();
    assert_eq!(store.agent_identity("ab01").await.unwrap(), Some((revoked.clone(), Some(host.clone()))));
    store.delete_host(host.id).await.unwrap();
    let orphan = Certificate { host_id: None, ..revoked };
    assert_eq!(store.agent_identity("ab01").await.unwrap(), Some((orphan, None)));
}

fn package(name: &str, version: &str) -> InstalledPackage {
    InstalledPackage {
        name: name.into(),
        version: version.into(),
        arch: "amd64".into(),
        source_package: Some(format!("{name}-src")),
        source_version: None,
        origin: Some("Debian:12/stable".into()),
        installed_at: None,
        size_bytes: Some(1024),
        held: false,
    }
}

fn update(name: &str, current: &str, candidate: &str, class: SecurityClass) -> AvailableUpdate {
    let security = SecurityInfo {
        class,
        reason: format!("candidate {candidate} classified {class:?}"),
        advisory_id: (class == SecurityClass::Security).then(|| format!("DSA-{name}")),
        severity: (class == SecurityClass::Security).then(|| "important".to_owned()),
    };
    AvailableUpdate {
        name: name.into(),
        arch: "amd64".into(),
        current_version: current.into(),
        candidate_version: candidate.into(),
        repository: Some("bookworm-security".into()),
        security,
        cves: if class == SecurityClass::Security { vec!["CVE-2024-0727".into()] } else { vec![] },
        reboot_likely: name == "libc6",
    }
}

fn scan(backend: BackendKind, installed: Vec<InstalledPackage>, updates: Vec<AvailableUpdate>) -> ScanReport {
    ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at: at(T0 + 100),
        os: OsInfo {
            id: "debian".into(),
            id_like: vec![],
            version_id: Some("12".into()),
            pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
            kernel: Some("6.1.0-18-amd64".into()),
            arch: Some("x86_64".into()),
        },
        backend,
        version_format: backend.version_format(),
        last_refresh: None,
        installed,
        updates,
        reboot: RebootStatus::default(),
    }
}

fn package_names(page: &Page<HostPackage>) -> Vec<&str> {
    page.items.iter().map(|p| p.name.as_str()).collect()
}

async fn inventory_replacement_replaces_everything(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("inv", Transport::Pull), at(T0)).await.unwrap();
    let bystander = store.create_host(&new_host("bystander", Transport::Pull), at(T0)).await.unwrap();
    let mut held = package("zlib1g", "1:1.2.13.dfsg-1");
    held.held = true;
    let first = scan(
        BackendKind::Apt,
        vec![package("openssl", "3.0.11-1~deb12u2"), held, package("bash", "5.2.15-2+b2")],
        vec![
            update("openssl", "3.0.11-1~deb12u2", "3.0.13-1~deb12u1", SecurityClass::Security),
            update("bash", "5.2.15-2+b2", "5.2.15-2+b3", SecurityClass::NotSecurity),
        ],
    );
    store.replace_inventory(host.id, &first, "sha256:first", at(T0 + 200)).await.unwrap();
    store.replace_inventory(bystander.id, &first, "sha256:first", at(T0 + 200)).await.unwrap();

    let row = store.get_host(host.id).await.unwrap().unwrap();
    assert_eq!((row.inventory_hash.as_deref(), row.scanned_at), (Some("sha256:first"), Some(at(T0 + 100))));
    assert_eq!((row.backend.as_deref(), row.version_format.as_deref()), (Some("apt"), Some("deb")));
    assert_eq!((row.os_name.as_deref(), row.os_version.as_deref()), (Some("debian"), Some("12")));
    assert_eq!(row.os_pretty_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"));
    assert_eq!((row.kernel.as_deref(), row.arch.as_deref()), (Some("6.1.0-18-amd64"), Some("x86_64")));
    assert_eq!((row.installed_count, row.updates_count, row.security_updates_count), (3, 2, 1));
    assert_eq!((row.reboot_required, row.updated_at), (false, at(T0 + 200)));

    let packages = store.list_host_packages(host.id, &PackageFilter::default()).await.unwrap();
    assert_eq!((package_names(&packages), packages.total), (vec!["bash", "openssl", "zlib1g"], 3));
    let zlib = &packages.items[2];
    assert_eq!(
        (zlib.version.as_str(), zlib.held, zlib.format),
        ("1:1.2.13.dfsg-1", true, patchdeck_version::VersionFormat::Deb)
    );
    assert_eq!(
        (zlib.source_package.as_deref(), zlib.origin.as_deref()),
        (Some("zlib1g-src"), Some("Debian:12/stable"))
    );
    let search = PackageFilter { search: Some("SSL".into()), ..PackageFilter::default() };
    assert_eq!(package_names(&store.list_host_packages(host.id, &search).await.unwrap()), ["openssl"]);
    let paged = PackageFilter { paging: Paging::new(1, 1), ..PackageFilter::default() };
    let page = store.list_host_packages(host.id, &paged).await.unwrap();
    assert_eq!((package_names(&page), page.total), (vec!["openssl"], 3));

    let updates = store.list_host_updates(host.id, &UpdateFilter::default()).await.unwrap();
    assert_eq!(updates.items.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(), ["bash", "openssl"]);
    let security = UpdateFilter { security_only: true, ..UpdateFilter::default() };
    let security = store.list_host_updates(host.id, &security).await.unwrap();
    assert_eq!(security.total, 1);
    let openssl = &security.items[0];
    assert_eq!(
        (openssl.security_class, openssl.security_reason.as_str()),
        (SecurityClass::Security, "candidate 3.0.13-1~deb12u1 classified Security")
    );
    assert_eq!(
        (openssl.current_version.as_str(), openssl.candidate_version.as_str()),
        ("3.0.11-1~deb12u2", "3.0.13-1~deb12u1")
    );
    assert_eq!((openssl.advisory_id.as_deref(), openssl.severity.as_deref()), (Some("DSA-openssl"), Some("important")));
    assert_eq!(
        (openssl.cves.as_slice(), openssl.repository.as_deref()),
        (&["CVE-2024-0727".to_owned()][..], Some("bookworm-security"))
    );
    let search = UpdateFilter { search: Some("bas".into()), ..UpdateFilter::default() };
    assert_eq!(
        store.list_host_updates(host.id, &search).await.unwrap().items[0].security_class,
        SecurityClass::NotSecurity
    );

    // The second scan replaces every row; the other host keeps its own.
    let mut second = scan(
        BackendKind::Apt,
        vec![package("curl", "7.88.1-10+deb12u5"), package("openssl", "3.0.13-1~deb12u1")],
        vec![],
    );
    second.reboot.required = true;
    second.os.pretty_name = None;
    store.replace_inventory(host.id, &second, "sha256:second", at(T0 + 300)).await.unwrap();
    let packages = store.list_host_packages(host.id, &PackageFilter::default()).await.unwrap();
    assert_eq!((package_names(&packages), packages.total), (vec!["curl", "openssl"], 2));
    assert_eq!(packages.items[1].version, "3.0.13-1~deb12u1");
    assert_eq!(store.list_host_updates(host.id, &UpdateFilter::default()).await.unwrap().total, 0);
    let row = store.get_host(host.id).await.unwrap().unwrap();
    assert_eq!((row.installed_count, row.updates_count, row.security_updates_count), (2, 0, 0));
    assert_eq!((row.inventory_hash.as_deref(), row.reboot_required), (Some("sha256:second"), true));
    assert_eq!(row.os_pretty_name.as_deref(), Some("Debian GNU/Linux 12 (bookworm)"), "absent facts are kept");
    assert_eq!(store.list_host_packages(bystander.id, &PackageFilter::default()).await.unwrap().total, 3);

    // A package listed twice is refused and changes nothing; so is an unknown host.
    let twice = scan(BackendKind::Apt, vec![package("a", "1"), package("a", "1")], vec![]);
    let err = store.replace_inventory(host.id, &twice, "sha256:twice", at(T0 + 400)).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(what) if what.contains("twice")), "{err}");
    assert_eq!(store.get_host(host.id).await.unwrap().unwrap().inventory_hash.as_deref(), Some("sha256:second"));
    assert_eq!(store.list_host_packages(host.id, &PackageFilter::default()).await.unwrap().total, 2);
    let err = store.replace_inventory(HostId(9999), &second, "sha256:x", at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::NotFound("host")), "{err}");

    // Deleting the host deletes its inventory.
    store.delete_host(host.id).await.unwrap();
    assert_eq!(store.list_host_packages(host.id, &PackageFilter::default()).await.unwrap().total, 0);
}

async fn fleet_package_search_compares_versions_by_key(h: &Harness) {
    let store = &h.store;
    let (a, _b, hosts) = scoped_fleet(store).await;
    let mut broken = package("openssl", "1.0-");
    broken.arch = "i386".into();
    let installs: [(&str, BackendKind, Vec<InstalledPackage>); 6] = [
        // deb: the epoch makes 1:1.0 newer than any 3.x; the unparseable version has no key.
        ("a1", BackendKind::Apt, vec![package("openssl", "1:1.0"), broken]),
        // deb: a tilde pre-release is older than the release.
        ("a2", BackendKind::Apt, vec![package("openssl", "3.0.13~rc1")]),
        // deb: equal to 3.0.13 although spelled differently.
        ("ab", BackendKind::Apt, vec![package("openssl", "0:3.0.13-0"), package("libssl3", "3.0.1")]),
        // rpm: 3.0.9 < 3.0.13 (as text it would be greater).
        ("b1", BackendKind::Dnf, vec![package("openssl", "3.0.9-1.el9")]),
        // rpm: the epoch wins.
        ("u1", BackendKind::Dnf, vec![package("openssl", "1:3.0.1-1.el9")]),
        // pacman: 3.0.13-1 equals 3.0.13 (a missing pkgrel matches any pkgrel).
        ("u2", BackendKind::Pacman, vec![package("openssl", "3.0.13-1")]),
    ];
    for (name, backend, installed) in installs {
        store.replace_inventory(hosts[name], &scan(backend, installed, vec![]), "sha256:x", at(T0)).await.unwrap();
    }
    let search = |scope: Scope, version: Option<(VersionCmp, &str)>| {
        let query = FleetPackageQuery {
            scope,
            name: "openssl".into(),
            version: version.map(|(cmp, v)| (cmp, v.to_owned())),
            paging: Paging::default(),
        };
        async move {
            let page = store.search_fleet_packages(&query).await.unwrap();
            let hits: Vec<String> = page.items.iter().map(|hit| format!("{}:{}", hit.hostname, hit.version)).collect();
            assert_eq!(hits.len() as u64, page.total.min(50));
            (hits, page.total)
        }
    };
    let v = "3.0.13";
    assert_eq!(search(Scope::All, Some((VersionCmp::Lt, v))).await.0, ["a2:3.0.13~rc1", "b1:3.0.9-1.el9"]);
    assert_eq!(
        search(Scope::All, Some((VersionCmp::Le, v))).await.0,
        ["a2:3.0.13~rc1", "ab:0:3.0.13-0", "b1:3.0.9-1.el9", "u2:3.0.13-1"]
    );
    assert_eq!(search(Scope::All, Some((VersionCmp::Eq, v))).await.0, ["ab:0:3.0.13-0", "u2:3.0.13-1"]);
    assert_eq!(
        search(Scope::All, Some((VersionCmp::Ge, v))).await.0,
        ["a1:1:1.0", "ab:0:3.0.13-0", "u1:1:3.0.1-1.el9", "u2:3.0.13-1"]
    );
    assert_eq!(search(Scope::All, Some((VersionCmp::Gt, v))).await.0, ["a1:1:1.0", "u1:1:3.0.1-1.el9"]);
    // dpkg: 1:1.0 > 9.9, and 1.0- (invalid) matches no comparison.
    assert_eq!(
        search(Scope::All, Some((VersionCmp::Lt, "9.9"))).await.0,
        ["a2:3.0.13~rc1", "ab:0:3.0.13-0", "b1:3.0.9-1.el9", "u2:3.0.13-1"]
    );
    assert_eq!(search(Scope::All, Some((VersionCmp::Eq, "1:1.0-0"))).await.0, ["a1:1:1.0"]);
    // pacman with a pkgrel compares it.
    assert_eq!(search(Scope::All, Some((VersionCmp::Lt, "3.0.13-2"))).await.0.last().unwrap(), "u2:3.0.13-1");
    assert_eq!(
        search(Scope::All, Some((VersionCmp::Gt, "3.0.13-0.1"))).await.0,
        ["a1:1:1.0", "u1:1:3.0.1-1.el9", "u2:3.0.13-1"]
    );

    // Without a version every installed openssl is a hit, ordered by hostname, host, arch.
    let (all, total) = search(Scope::All, None).await;
    assert_eq!(
        all,
        ["a1:1:1.0", "a1:1.0-", "a2:3.0.13~rc1", "ab:0:3.0.13-0", "b1:3.0.9-1.el9", "u1:1:3.0.1-1.el9", "u2:3.0.13-1"]
    );
    assert_eq!(total, 7);

    // The scope limits rows and total: group A plus the ungrouped hosts, not b1.
    let (hits, total) = search(Scope::Groups(vec![a]), Some((VersionCmp::Lt, v))).await;
    assert_eq!((hits, total), (vec!["a2:3.0.13~rc1".to_owned()], 1));
    let (hits, total) = search(Scope::Groups(vec![]), None).await;
    assert_eq!((hits, total), (vec!["u1:1:3.0.1-1.el9".to_owned(), "u2:3.0.13-1".to_owned()], 2));
    let paged =
        FleetPackageQuery { scope: Scope::All, name: "openssl".into(), version: None, paging: Paging::new(2, 2) };
    let page = store.search_fleet_packages(&paged).await.unwrap();
    assert_eq!(
        (page.items.iter().map(|hit| hit.hostname.as_str()).collect::<Vec<_>>(), page.total),
        (vec!["a2", "ab"], 7)
    );
    let hit = &page.items[1];
    assert_eq!(
        (hit.host_id, hit.name.as_str(), hit.arch.as_str(), hit.format),
        (hosts["ab"], "openssl", "amd64", patchdeck_version::VersionFormat::Deb)
    );

    // Exact names only; a version no format accepts is refused.
    let prefix = FleetPackageQuery { name: "openss".into(), ..paged.clone() };
    assert_eq!(store.search_fleet_packages(&prefix).await.unwrap().total, 0);
    let bad = FleetPackageQuery { version: Some((VersionCmp::Lt, "3.0 13".into())), ..paged };
    assert!(matches!(store.search_fleet_packages(&bad).await, Err(Error::Invalid(_))));
}

async fn inventory_of_5000_packages(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("big", Transport::Pull), at(T0)).await.unwrap();
    let report = |revision: u32| {
        let installed = (0..5000).map(|i| package(&format!("pkg-{i:05}"), &format!("1.{i}-{revision}"))).collect();
        let updates = (0..300)
            .map(|i| {
                let name = format!("pkg-{i:05}");
                let class = if i % 3 == 0 { SecurityClass::Security } else { SecurityClass::NotSecurity };
                update(&name, &format!("1.{i}-{revision}"), &format!("1.{i}-{}", revision + 1), class)
            })
            .collect();
        scan(BackendKind::Apt, installed, updates)
    };
    for revision in [1, 2] {
        let started = std::time::Instant::now();
        store.replace_inventory(host.id, &report(revision), &format!("sha256:{revision}"), at(T0)).await.unwrap();
        // Reported, not asserted (tests never assert timings; see docs/benchmarks.md).
        eprintln!(
            "{:?}: replace_inventory of 5000 packages and 300 updates took {:?}",
            store.backend(),
            started.elapsed()
        );
    }
    let row = store.get_host(host.id).await.unwrap().unwrap();
    assert_eq!((row.installed_count, row.updates_count, row.security_updates_count), (5000, 300, 100));
    let page = store
        .list_host_packages(host.id, &PackageFilter { paging: Paging::new(1000, 4990), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.total, 5000);
    assert_eq!(package_names(&page), (4990..5000).map(|i| format!("pkg-{i:05}")).collect::<Vec<_>>());
    assert!(page.items.iter().all(|p| p.version.ends_with("-2")), "only the second scan's rows remain");
    assert_eq!(
        store
            .list_host_updates(host.id, &UpdateFilter { security_only: true, ..Default::default() })
            .await
            .unwrap()
            .total,
        100
    );
    let query = FleetPackageQuery {
        scope: Scope::All,
        name: "pkg-04999".into(),
        version: Some((VersionCmp::Lt, "1.4999-3".into())),
        paging: Paging::default(),
    };
    assert_eq!(store.search_fleet_packages(&query).await.unwrap().items[0].version, "1.4999-2");
}

fn scan_command() -> Command {
    Command::Scan { subsystems: vec![Subsystem::Packages], refresh: true }
}

fn new_command(host: HostId, command: Command) -> NewCommand {
    NewCommand { host, command, created_by: None, retry_of: None, deliver_by: at(T0 + 300) }
}

fn result(id: Uuid, state: CommandState) -> CommandResult {
    CommandResult {
        command_id: id,
        state,
        at: at(T0 + 1_000_000),
        job_id: None,
        error: None,
        output: String::new(),
        changes: vec![],
        reboot_required: false,
        hooks: Vec::new(),
        checks: Vec::new(),
        preview: None,
    }
}

fn ids(commands: &[CommandRecord]) -> Vec<Uuid> {
    commands.iter().map(|c| c.id).collect()
}

async fn commands_queue_claim_and_results(h: &Harness) {
    let store = &h.store;
    let admin = store.create_user(&new_user("admin", Role::Admin), at(T0)).await.unwrap();
    let host = store.create_host(&new_host("agent", Transport::Pull), at(T0)).await.unwrap();
    let other = store.create_host(&new_host("other", Transport::Pull), at(T0)).await.unwrap();

    let upgrade = Command::Upgrade { selection: Selection::Security, dry_run: false };
    let first = NewCommand { created_by: Some(admin.id), ..new_command(host.id, scan_command()) };
    let first = store.queue_command(&first, at(T0)).await.unwrap();
    assert_eq!((first.state, first.kind.as_str(), &first.command), (CommandState::Pending, "scan", &scan_command()));
    assert_eq!(
        (first.host_id, first.created_by, first.created_at, first.deliver_by),
        (host.id, Some(admin.id), at(T0), at(T0 + 300))
    );
    assert_eq!((first.sent_at, first.started_at, first.finished_at, first.output.as_deref()), (None, None, None, None));
    assert_eq!(store.get_command(first.id).await.unwrap().unwrap(), first);
    // Queued within the same millisecond: delivered in queue order all the same.
    let second = store.queue_command(&new_command(host.id, upgrade.clone()), at(T0)).await.unwrap();
    let third = store
        .queue_command(&new_command(host.id, Command::Reboot { delay_secs: 60, force: false, message: None }), at(T0))
        .await
        .unwrap();
    let elsewhere = store.queue_command(&new_command(other.id, scan_command()), at(T0)).await.unwrap();

    assert!(matches!(
        store.queue_command(&new_command(HostId(9999), scan_command()), at(T0)).await,
        Err(Error::MissingReference(_))
    ));
    let late = NewCommand { deliver_by: at(T0), ..new_command(host.id, scan_command()) };
    assert!(matches!(store.queue_command(&late, at(T0)).await, Err(Error::Invalid(_))));
    let orphan = NewCommand { retry_of: Some(Uuid::new_v4()), ..new_command(host.id, scan_command()) };
    assert!(matches!(store.queue_command(&orphan, at(T0)).await, Err(Error::MissingReference(_))));

    // Delivery: oldest first, each once.
    assert!(store.has_pending_commands(host.id, at(T0 + 1)).await.unwrap());
    assert!(!store.has_pending_commands(host.id, at(T0 + 300)).await.unwrap(), "past its deadline");
    assert!(store.claim_commands(host.id, at(T0 + 1), 0).await.unwrap().is_empty());
    let claimed = store.claim_commands(host.id, at(T0 + 1), 2).await.unwrap();
    assert_eq!(ids(&claimed), [first.id, second.id]);
    assert!(claimed.iter().all(|c| c.state == CommandState::Sent && c.sent_at == Some(at(T0 + 1))));
    assert_eq!(ids(&store.claim_commands(host.id, at(T0 + 2), 10).await.unwrap()), [third.id]);
    assert!(store.claim_commands(host.id, at(T0 + 3), 10).await.unwrap().is_empty());
    assert!(!store.has_pending_commands(host.id, at(T0 + 3)).await.unwrap());
    assert!(store.has_pending_commands(other.id, at(T0 + 3)).await.unwrap());

    // running, once.
    let job = Uuid::new_v4();
    let running = CommandResult { job_id: Some(job), ..result(first.id, CommandState::Running) };
    let ResultOutcome::Applied(record) = store.apply_command_result(host.id, &running, at(T0 + 10)).await.unwrap()
    else {
        panic!("running applies")
    };
    assert_eq!(
        (record.state, record.started_at, record.job_id, record.updated_at),
        (CommandState::Running, Some(at(T0 + 10)), Some(job), at(T0 + 10))
    );
    let again = store.apply_command_result(host.id, &running, at(T0 + 11)).await.unwrap();
    assert_eq!(again, ResultOutcome::Duplicate(record.clone()), "a repeated report changes nothing");
    // Another host's command, or no command at all.
    assert_eq!(store.apply_command_result(other.id, &running, at(T0 + 11)).await.unwrap(), ResultOutcome::Unknown);
    let stray = result(elsewhere.id, CommandState::Completed);
    assert_eq!(store.apply_command_result(host.id, &stray, at(T0 + 11)).await.unwrap(), ResultOutcome::Unknown);
    assert_eq!(store.get_command(elsewhere.id).await.unwrap().unwrap().state, CommandState::Pending);
    let nothing = result(Uuid::new_v4(), CommandState::Running);
    assert_eq!(store.apply_command_result(host.id, &nothing, at(T0 + 11)).await.unwrap(), ResultOutcome::Unknown);
    let bogus = result(first.id, CommandState::Sent);
    assert!(matches!(store.apply_command_result(host.id, &bogus, at(T0 + 11)).await, Err(Error::Invalid(_))));

    // completed, once, with everything it reports.
    let change = PackageChange {
        name: "openssl".into(),
        arch: Some("amd64".into()),
        action: TxAction::Upgrade,
        from: Some("3.0.11".into()),
        to: Some("3.0.13".into()),
    };
    let done = CommandResult {
        job_id: Some(job),
        output: "Setting up openssl (3.0.13) ...".into(),
        changes: vec![change.clone()],
        reboot_required: true,
        ..result(first.id, CommandState::Completed)
    };
    let ResultOutcome::Applied(record) = store.apply_command_result(host.id, &done, at(T0 + 20)).await.unwrap() else {
        panic!("completed applies")
    };
    assert_eq!(
        (record.state, record.started_at, record.finished_at),
        (CommandState::Completed, Some(at(T0 + 10)), Some(at(T0 + 20)))
    );
    assert_eq!(
        (record.output.as_deref(), record.changes.as_slice(), record.reboot_required),
        (Some("Setting up openssl (3.0.13) ..."), &[change][..], true)
    );
    assert_eq!((record.error_code.as_deref(), record.job_id), (None, Some(job)));
    for late in [done.clone(), running.clone(), result(first.id, CommandState::Failed)] {
        let outcome = store.apply_command_result(host.id, &late, at(T0 + 30)).await.unwrap();
        assert_eq!(outcome, ResultOutcome::Duplicate(record.clone()), "{:?} after completed", late.state);
    }

    // A final report straight from `sent`.
    let failed = CommandResult {
        error: Some(ResultError { code: "PACKAGE_NOT_FOUND".into(), message: "no such package".into() }),
        ..result(second.id, CommandState::Failed)
    };
    let ResultOutcome::Applied(record) = store.apply_command_result(host.id, &failed, at(T0 + 40)).await.unwrap()
    else {
        panic!("failed applies from sent")
    };
    assert_eq!((record.state, record.started_at, record.finished_at), (CommandState::Failed, None, Some(at(T0 + 40))));
    assert_eq!(
        (record.error_code.as_deref(), record.error_message.as_deref()),
        (Some("PACKAGE_NOT_FOUND"), Some("no such package"))
    );
    assert_eq!(record.command, upgrade);

    // A rejection fails a command that is not final, once.
    let ResultOutcome::Applied(record) = store
        .reject_command(host.id, third.id, "bad_signature", "signature does not verify", at(T0 + 50))
        .await
        .unwrap()
    else {
        panic!("rejection applies")
    };
    assert_eq!((record.state, record.error_code.as_deref()), (CommandState::Failed, Some("rejected_bad_signature")));
    assert_eq!(
        (record.error_message.as_deref(), record.finished_at),
        (Some("signature does not verify"), Some(at(T0 + 50)))
    );
    let again = store.reject_command(host.id, third.id, "replayed", "seen", at(T0 + 51)).await.unwrap();
    assert_eq!(again, ResultOutcome::Duplicate(record));
    assert_eq!(
        store.reject_command(other.id, third.id, "expired", "x", at(T0 + 51)).await.unwrap(),
        ResultOutcome::Unknown
    );
    assert!(store.get_command(Uuid::new_v4()).await.unwrap().is_none());
}

async fn commands_cancel_list_and_prune(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("agent", Transport::Pull), at(T0)).await.unwrap();
    let grouped = store.create_host(&new_host("grouped", Transport::Pull), at(T0)).await.unwrap();
    let group = store.create_group("hidden", "", at(T0)).await.unwrap();
    store.add_host_to_group(grouped.id, group.id).await.unwrap();

    let pending = store.queue_command(&new_command(host.id, scan_command()), at(T0)).await.unwrap();
    let cancelled = store.cancel_command(pending.id, at(T0 + 5)).await.unwrap();
    assert_eq!((cancelled.state, cancelled.finished_at), (CommandState::Cancelled, Some(at(T0 + 5))));
    let err = store.cancel_command(pending.id, at(T0 + 6)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what.contains("cancelled")), "{err}");
    let sent = store.queue_command(&new_command(host.id, Command::RefreshMetadata), at(T0 + 1)).await.unwrap();
    store.claim_commands(host.id, at(T0 + 2), 10).await.unwrap();
    let err = store.cancel_command(sent.id, at(T0 + 6)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(what) if what.contains("sent")), "{err}");
    assert!(matches!(store.cancel_command(Uuid::new_v4(), at(T0)).await, Err(Error::NotFound("command"))));
    assert_eq!(store.claim_commands(host.id, at(T0 + 7), 10).await.unwrap().len(), 0, "cancelled is never delivered");

    let done = CommandResult { ..result(sent.id, CommandState::Completed) };
    store.apply_command_result(host.id, &done, at(T0 + 100)).await.unwrap();
    let retry = NewCommand { retry_of: Some(sent.id), ..new_command(host.id, Command::RefreshMetadata) };
    let retry = store.queue_command(&retry, at(T0 + 101)).await.unwrap();
    assert_eq!(retry.retry_of, Some(sent.id));
    let hidden = store.queue_command(&new_command(grouped.id, Command::RefreshMetadata), at(T0 + 102)).await.unwrap();

    // Newest first; scope, host, state and kind filters apply to rows and total.
    let list = |filter: CommandFilter| async move {
        let page = store.list_commands(&filter).await.unwrap();
        (ids(&page.items), page.total)
    };
    assert_eq!(list(CommandFilter::new(Scope::All)).await, (vec![hidden.id, retry.id, sent.id, pending.id], 4));
    assert_eq!(list(CommandFilter::new(Scope::Groups(vec![]))).await, (vec![retry.id, sent.id, pending.id], 3));
    assert_eq!(list(CommandFilter::new(Scope::Groups(vec![group.id]))).await.1, 4);
    let of_grouped = CommandFilter { host: Some(grouped.id), ..CommandFilter::new(Scope::Groups(vec![])) };
    assert_eq!(list(of_grouped).await, (vec![], 0), "a host outside the scope shows nothing");
    let by_state = CommandFilter { state: Some(CommandState::Pending), ..CommandFilter::new(Scope::All) };
    assert_eq!(list(by_state).await, (vec![hidden.id, retry.id], 2));
    let by_kind = CommandFilter { kind: Some("scan".into()), host: Some(host.id), ..CommandFilter::new(Scope::All) };
    assert_eq!(list(by_kind).await, (vec![pending.id], 1));
    let paged = CommandFilter { paging: Paging::new(1, 1), ..CommandFilter::new(Scope::All) };
    assert_eq!(list(paged).await, (vec![retry.id], 4));

    // Pruning removes finished commands only; a retry loses its link to a pruned command.
    assert_eq!(store.prune_commands_finished_before(at(T0 + 5)).await.unwrap(), 0, "exclusive");
    assert_eq!(store.prune_commands_finished_before(at(T0 + 101)).await.unwrap(), 2);
    assert!(
        store.get_command(pending.id).await.unwrap().is_none() && store.get_command(sent.id).await.unwrap().is_none()
    );
    assert_eq!(store.get_command(retry.id).await.unwrap().unwrap().retry_of, None);
    assert_eq!(list(CommandFilter::new(Scope::All)).await.1, 2);

    // Deleting a host deletes its commands.
    store.delete_host(grouped.id).await.unwrap();
    assert!(store.get_command(hidden.id).await.unwrap().is_none());
}

async fn command_sweeper_times_out_what_will_not_finish(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("agent", Transport::Pull), at(T0)).await.unwrap();
    let run_timeout = jiff::SignedDuration::from_mins(5);
    let soon = NewCommand { deliver_by: at(T0 + 60), ..new_command(host.id, scan_command()) };
    let sent = store.queue_command(&new_command(host.id, Command::RefreshMetadata), at(T0)).await.unwrap();
    let running = store.queue_command(&new_command(host.id, scan_command()), at(T0)).await.unwrap();
    assert_eq!(store.claim_commands(host.id, at(T0 + 10), 2).await.unwrap().len(), 2);
    let undelivered = store.queue_command(&soon, at(T0)).await.unwrap();
    let later = NewCommand { deliver_by: at(T0 + 600), ..new_command(host.id, scan_command()) };
    let later = store.queue_command(&later, at(T0)).await.unwrap();
    store.apply_command_result(host.id, &result(running.id, CommandState::Running), at(T0 + 100)).await.unwrap();

    assert!(store.sweep_commands(at(T0 + 59), run_timeout).await.unwrap().is_empty());
    let swept = store.sweep_commands(at(T0 + 60), run_timeout).await.unwrap();
    assert_eq!(ids(&swept), [undelivered.id], "the deadline is inclusive");
    assert_eq!(
        (swept[0].state, swept[0].error_code.as_deref(), swept[0].finished_at),
        (CommandState::TimedOut, Some(NOT_DELIVERED), Some(at(T0 + 60)))
    );
    assert!(swept[0].error_message.is_some());

    // Delivered at T0+10: no result by T0+310 is silence.
    assert!(store.sweep_commands(at(T0 + 310), run_timeout).await.unwrap().is_empty());
    let swept = store.sweep_commands(at(T0 + 311), run_timeout).await.unwrap();
    assert_eq!((ids(&swept), swept[0].error_code.as_deref()), (vec![sent.id], Some(NO_RESULT)));
    // Started at T0+100: its clock runs from the start.
    let swept = store.sweep_commands(at(T0 + 401), run_timeout).await.unwrap();
    assert_eq!((ids(&swept), swept[0].error_code.as_deref()), (vec![running.id], Some(NO_RESULT)));

    // A late final report does not undo the timeout.
    let late =
        store.apply_command_result(host.id, &result(running.id, CommandState::Completed), at(T0 + 402)).await.unwrap();
    let ResultOutcome::Duplicate(record) = late else { panic!("late result is a duplicate: {late:?}") };
    assert_eq!((record.state, record.error_code.as_deref()), (CommandState::TimedOut, Some(NO_RESULT)));

    // Past its deadline a pending command is not delivered, then swept.
    assert!(!store.has_pending_commands(host.id, at(T0 + 600)).await.unwrap());
    assert!(store.claim_commands(host.id, at(T0 + 600), 10).await.unwrap().is_empty());
    assert_eq!(ids(&store.sweep_commands(at(T0 + 600), run_timeout).await.unwrap()), [later.id]);
    assert!(store.sweep_commands(at(T0 + 10_000), run_timeout).await.unwrap().is_empty(), "final states stay");
    assert!(matches!(store.sweep_commands(at(T0), jiff::SignedDuration::MAX).await, Err(Error::Invalid(_))));
}

async fn concurrent_claimers_get_each_command_once(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("busy", Transport::Pull), at(T0)).await.unwrap();
    let other = store.create_host(&new_host("other", Transport::Pull), at(T0)).await.unwrap();
    let mut queued = Vec::new();
    for _ in 0..50 {
        queued.push(store.queue_command(&new_command(host.id, scan_command()), at(T0)).await.unwrap().id);
    }
    for _ in 0..5 {
        store.queue_command(&new_command(other.id, scan_command()), at(T0)).await.unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = store.claim_commands(host.id, at(T0 + 1), 3).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|c| c.id));
                }
            })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let unique: std::collections::HashSet<_> = claimed.iter().copied().collect();
    assert_eq!(claimed.len(), 50, "no command was handed out twice");
    assert_eq!(unique, queued.iter().copied().collect(), "every command was handed out");
    assert!(store.claim_commands(host.id, at(T0 + 2), 100).await.unwrap().is_empty());
    let others =
        CommandFilter { host: Some(other.id), state: Some(CommandState::Pending), ..CommandFilter::new(Scope::All) };
    assert_eq!(store.list_commands(&others).await.unwrap().total, 5, "another host's queue is untouched");
}

async fn concurrent_identical_results_apply_once(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("agent", Transport::Pull), at(T0)).await.unwrap();
    let command = store.queue_command(&new_command(host.id, scan_command()), at(T0)).await.unwrap();
    store.claim_commands(host.id, at(T0 + 1), 1).await.unwrap();
    let report = CommandResult { output: "done".into(), ..result(command.id, CommandState::Completed) };
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            let report = report.clone();
            tokio::spawn(async move { store.apply_command_result(host.id, &report, at(T0 + 10 + i)).await.unwrap() })
        })
        .collect();
    let (mut applied, mut duplicates) = (Vec::new(), 0);
    for task in tasks {
        match task.await.unwrap() {
            ResultOutcome::Applied(record) => applied.push(record),
            ResultOutcome::Duplicate(_) => duplicates += 1,
            ResultOutcome::Unknown => panic!("the command exists"),
        }
    }
    assert_eq!((applied.len(), duplicates), (1, 7));
    assert_eq!(store.get_command(command.id).await.unwrap().unwrap(), applied[0], "stored once, by the winner");
}

async fn fleet_summary_severities_and_compliance_samples_respect_the_scope(h: &Harness) {
    let store = &h.store;
    let web = store.create_group("web", "", at(T0)).await.unwrap();
    let db = store.create_group("db", "", at(T0)).await.unwrap();
    let host =
        |name: &'static str| async move { store.create_host(&new_host(name, Transport::Pull), at(T0)).await.unwrap() };
    // web-1: web, 2 security updates (important, critical), needs a reboot, online.
    // web-2: web and db, compliant. db-1: db, 1 security update (no severity), offline.
    // loose: no group, compliant. fresh: never scanned. waiting: enrolled, not approved.
    let (web1, web2, db1, loose, _fresh) =
        (host("web-1").await, host("web-2").await, host("db-1").await, host("loose").await, host("fresh").await);
    let waiting = store.create_host(&new_host("waiting", Transport::Pull), at(T0)).await.unwrap();
    store.set_host_approval(waiting.id, Approval::Pending, at(T0)).await.unwrap();
    for (host, group) in [(web1.id, web.id), (web2.id, web.id), (web2.id, db.id), (db1.id, db.id)] {
        store.add_host_to_group(host, group).await.unwrap();
    }
    let mut critical = update("openssl", "3.0.11-1", "3.0.13-1", SecurityClass::Security);
    critical.security.severity = Some("Critical".into());
    let mut web1_scan = scan(
        BackendKind::Apt,
        vec![],
        vec![
            update("libc6", "2.36-9", "2.36-9+deb12u4", SecurityClass::Security),
            critical,
            update("bash", "5.2.15-2+b2", "5.2.15-2+b3", SecurityClass::NotSecurity),
        ],
    );
    web1_scan.reboot.required = true;
    store.replace_inventory(web1.id, &web1_scan, "sha256:w1", at(T0 + 10)).await.unwrap();
    let mut unrated = update("curl", "7.88.1-10", "7.88.1-10+deb12u5", SecurityClass::Security);
    unrated.security.severity = None;
    store
        .replace_inventory(db1.id, &scan(BackendKind::Apt, vec![], vec![unrated]), "sha256:d1", at(T0 + 10))
        .await
        .unwrap();
    for compliant in [web2.id, loose.id, waiting.id] {
        store
            .replace_inventory(compliant, &scan(BackendKind::Apt, vec![], vec![]), "sha256:c", at(T0 + 10))
            .await
            .unwrap();
    }
    store.set_host_status(web1.id, HostStatus::Online, Some(at(T0 + 20)), at(T0 + 20)).await.unwrap();
    store.set_host_status(db1.id, HostStatus::Offline, None, at(T0 + 20)).await.unwrap();

    let all = store.fleet_summary(&Scope::All).await.unwrap();
    assert_eq!(
        all,
        FleetSummary {
            total: 5,
            pending: 3,
            online: 1,
            offline: 1,
            unreachable: 0,
            degraded: 0,
            reboot_required: 1,
            unscanned: 1,
            scanned: 4,
            compliant: 2,
        },
        "the unapproved host counts nowhere; the unscanned one in neither part of compliance"
    );
    let (severity, hosts) = store.security_updates_by_severity(&Scope::All).await.unwrap();
    assert_eq!(severity, SeverityCounts { critical: 1, high: 1, medium: 0, low: 0, unspecified: 1 });
    assert_eq!(hosts, 2, "two hosts have security updates; the bash update is not one");

    // A user of group db sees db-1, web-2 (also in db) and the ungrouped hosts.
    let db_scope = Scope::Groups(vec![db.id]);
    let scoped = store.fleet_summary(&db_scope).await.unwrap();
    assert_eq!((scoped.total, scoped.scanned, scoped.compliant, scoped.offline), (4, 3, 2, 1), "{scoped:?}");
    let (severity, hosts) = store.security_updates_by_severity(&db_scope).await.unwrap();
    assert_eq!((severity.total(), severity.unspecified, hosts), (1, 1, 1));

    // Samples: one per day; a later sample of the same day replaces the earlier one.
    let day1 = at(T0 + 30);
    store.record_compliance_sample(day1).await.unwrap();
    let fixed = scan(BackendKind::Apt, vec![], vec![]);
    store.replace_inventory(db1.id, &fixed, "sha256:d1b", at(T0 + 40)).await.unwrap();
    let day2 = at(T0 + 86_400);
    store.record_compliance_sample(day2).await.unwrap();
    store.replace_inventory(web1.id, &fixed, "sha256:w1b", at(T0 + 86_500)).await.unwrap();
    store.record_compliance_sample(at(T0 + 86_600)).await.unwrap();
    let (first, second) = (utc_day(day1), utc_day(day2));
    let trend = store.compliance_trend(&Scope::All, first, second).await.unwrap();
    assert_eq!(
        trend,
        vec![
            ComplianceSample { day: first, scanned: 4, compliant: 2 },
            ComplianceSample { day: second, scanned: 4, compliant: 4 },
        ],
        "the second day's latest sample wins"
    );
    let trend = store.compliance_trend(&db_scope, first, second).await.unwrap();
    assert_eq!(
        trend.iter().map(|s| (s.scanned, s.compliant)).collect::<Vec<_>>(),
        vec![(3, 2), (3, 3)],
        "web-2 (in web and db) counts once; web-1 is not in db's scope"
    );
    let web_only = store.compliance_trend(&Scope::Groups(vec![web.id]), second, second).await.unwrap();
    assert_eq!((web_only[0].scanned, web_only[0].compliant), (3, 3), "web-1, web-2 and the ungrouped host");
    assert!(store
        .compliance_trend(&Scope::All, second.tomorrow().unwrap(), second.tomorrow().unwrap())
        .await
        .unwrap()
        .is_empty());

    // Samples older than the kept period go when a new one is taken.
    let much_later = at(T0 + 86_400 * (COMPLIANCE_SAMPLE_DAYS + 5));
    store.record_compliance_sample(much_later).await.unwrap();
    let kept = store.compliance_trend(&Scope::All, first, utc_day(much_later)).await.unwrap();
    assert_eq!(kept.iter().map(|s| s.day).collect::<Vec<_>>(), vec![utc_day(much_later)]);
}
