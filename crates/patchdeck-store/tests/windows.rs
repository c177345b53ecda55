//! Maintenance windows and blackouts on both backends: CRUD, validation, the CHECK on host or
//! group, inheritance through groups, scoped listings, and cascades.

use jiff::civil::{date, time, Weekday};
use jiff::Timestamp;
use patchdeck_schedule::{MonthlyRule, Recurrence};
use patchdeck_store::*;
use patchdeck_testkit::pg::TestDatabase;

struct Harness {
    store: Store,
    config: DatabaseConfig,
    _dir: tempfile::TempDir,
    _pg: Option<TestDatabase>,
}

impl Harness {
    async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = DatabaseConfig::Sqlite { path: dir.path().join("patchdeck.db") };
        Self::open(config, dir, None).await
    }

    async fn postgres() -> Harness {
        let db = TestDatabase::create().await;
        let config = DatabaseConfig::Postgres { url: db.url().to_owned() };
        Self::open(config, tempfile::tempdir().expect("tempdir"), Some(db)).await
    }

    async fn open(config: DatabaseConfig, dir: tempfile::TempDir, pg: Option<TestDatabase>) -> Harness {
        let store = Store::connect_with(&config, &StoreOptions::default()).await.expect("connect");
        store.migrate().await.expect("migrate");
        Harness { store, config, _dir: dir, _pg: pg }
    }
}

macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let harness = super::Harness::sqlite().await;
                    super::$name(&harness.store, &harness.config).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let harness = super::Harness::postgres().await;
                    super::$name(&harness.store, &harness.config).await;
                }
            )+
        }
    };
}

both!(
    windows_create_get_update_delete,
    windows_are_checked,
    windows_for_a_host_include_its_groups,
    window_listing_follows_the_scope,
    blackouts_create_list_update_delete,
    blackouts_for_a_host_are_global_and_its_groups,
    deleting_a_host_or_group_deletes_its_windows,
    the_database_refuses_a_window_for_both_or_neither,
);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

const T0: i64 = 1_700_000_000;

fn host(hostname: &str) -> NewHost {
    NewHost {
        hostname: hostname.into(),
        fqdn: None,
        address: None,
        transport: Transport::Pull,
        status: HostStatus::Pending,
        machine_id: None,
        os_name: None,
        os_version: None,
    }
}

fn window(name: &str, target: WindowTarget) -> WindowFields {
    WindowFields {
        name: name.into(),
        target,
        recurrence: Recurrence::Weekly { days: vec![Weekday::Saturday, Weekday::Sunday] },
        start_time: time(2, 30, 0, 0),
        duration_minutes: 180,
        time_zone: "Europe/Berlin".into(),
        enabled: true,
    }
}

fn blackout(name: &str, group_id: Option<GroupId>, from: i64, to: i64) -> BlackoutFields {
    BlackoutFields { name: name.into(), group_id, starts_at: at(from), ends_at: at(to), reason: "freeze".into() }
}

fn names(windows: &[MaintenanceWindow]) -> Vec<&str> {
    windows.iter().map(|w| w.fields.name.as_str()).collect()
}

fn blackout_names(blackouts: &[Blackout]) -> Vec<&str> {
    blackouts.iter().map(|b| b.fields.name.as_str()).collect()
}

async fn windows_create_get_update_delete(store: &Store, _config: &DatabaseConfig) {
    let admin = store
        .create_user(
            &NewUser {
                username: "root".into(),
                display_name: "Root".into(),
                role: Role::Admin,
                password_hash: None,
                auth_source: AuthSource::Local,
                oidc: None,
                must_change_password: false,
            },
            at(T0),
        )
        .await
        .unwrap();
    let web = store.create_host(&host("web1"), at(T0)).await.unwrap();
    let fields = window("weekend", WindowTarget::Host(web.id));
    let created = store.create_maintenance_window(&fields, Some(admin.id), at(T0)).await.unwrap();
    assert_eq!(created.fields, fields);
    assert_eq!((created.created_by, created.created_at, created.updated_at), (Some(admin.id), at(T0), at(T0)));
    assert_eq!(store.get_maintenance_window(created.id).await.unwrap(), Some(created.clone()));

    let changed = WindowFields {
        name: "month end".into(),
        recurrence: Recurrence::Monthly(MonthlyRule::NthWeekday { nth: -1, weekday: Weekday::Friday }),
        start_time: time(23, 15, 0, 0),
        duration_minutes: 7 * 24 * 60,
        time_zone: "Pacific/Chatham".into(),
        enabled: false,
        ..fields.clone()
    };
    let updated = store.update_maintenance_window(created.id, &changed, at(T0 + 60)).await.unwrap();
    assert_eq!(updated.fields, changed);
    assert_eq!((updated.created_at, updated.updated_at), (at(T0), at(T0 + 60)));
    assert_eq!(store.get_maintenance_window(created.id).await.unwrap(), Some(updated));
    let once = WindowFields { recurrence: Recurrence::Once { date: date(2024, 2, 29) }, ..fields.clone() };
    let once = store.create_maintenance_window(&once, None, at(T0)).await.unwrap();
    assert_eq!(once.fields.recurrence, Recurrence::Once { date: date(2024, 2, 29) });
    assert_eq!(once.created_by, None);

    store.delete_maintenance_window(created.id).await.unwrap();
    assert_eq!(store.get_maintenance_window(created.id).await.unwrap(), None);
    assert!(matches!(store.delete_maintenance_window(created.id).await, Err(Error::NotFound("maintenance window"))));
    let missing = store.update_maintenance_window(created.id, &fields, at(T0)).await;
    assert!(matches!(missing, Err(Error::NotFound("maintenance window"))), "{missing:?}");
    // A user who created windows can be deleted; the windows stay.
    store.delete_user(admin.id).await.unwrap();
}

async fn windows_are_checked(store: &Store, _config: &DatabaseConfig) {
    let web = store.create_host(&host("web1"), at(T0)).await.unwrap();
    let ok = window("w", WindowTarget::Host(web.id));
    let bad = [
        WindowFields { name: " ".into(), ..ok.clone() },
        WindowFields { name: "x".repeat(101), ..ok.clone() },
        WindowFields { time_zone: "Mars/Olympus".into(), ..ok.clone() },
        WindowFields { duration_minutes: 0, ..ok.clone() },
        WindowFields { duration_minutes: 10_081, ..ok.clone() },
        WindowFields { start_time: time(2, 30, 15, 0), ..ok.clone() },
        WindowFields { recurrence: Recurrence::Weekly { days: vec![] }, ..ok.clone() },
        WindowFields { recurrence: Recurrence::Monthly(MonthlyRule::DayOfMonth { day: 32 }), ..ok.clone() },
    ];
    for fields in bad {
        let err = store.create_maintenance_window(&fields, None, at(T0)).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{fields:?}: {err}");
    }
    let nowhere = WindowFields { time_zone: "Nowhere".into(), ..ok.clone() };
    let err = store.create_maintenance_window(&nowhere, None, at(T0)).await.unwrap_err();
    assert!(err.to_string().contains("time_zone"), "{err}");
    let orphan = window("w", WindowTarget::Host(HostId(9999)));
    let err = store.create_maintenance_window(&orphan, None, at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::MissingReference(_)), "{err}");
    let orphan = window("w", WindowTarget::Group(GroupId(9999)));
    let err = store.create_maintenance_window(&orphan, None, at(T0)).await.unwrap_err();
    assert!(matches!(err, Error::MissingReference(_)), "{err}");
    assert!(store.list_maintenance_windows(&WindowFilter::new(Scope::All)).await.unwrap().is_empty());
}

async fn windows_for_a_host_include_its_groups(store: &Store, _config: &DatabaseConfig) {
    let web = store.create_group("web", "", at(T0)).await.unwrap();
    let eu = store.create_group("eu", "", at(T0)).await.unwrap();
    let other = store.create_group("other", "", at(T0)).await.unwrap();
    let h1 = store.create_host(&host("h1"), at(T0)).await.unwrap();
    let h2 = store.create_host(&host("h2"), at(T0)).await.unwrap();
    store.add_host_to_group(h1.id, web.id).await.unwrap();
    store.add_host_to_group(h1.id, eu.id).await.unwrap();
    store.add_host_to_group(h2.id, other.id).await.unwrap();
    for (name, target, enabled) in [
        ("h1 own", WindowTarget::Host(h1.id), true),
        ("web", WindowTarget::Group(web.id), true),
        ("eu", WindowTarget::Group(eu.id), true),
        ("eu disabled", WindowTarget::Group(eu.id), false),
        ("other", WindowTarget::Group(other.id), true),
        ("h2 own", WindowTarget::Host(h2.id), true),
    ] {
        store.create_maintenance_window(&WindowFields { enabled, ..window(name, target) }, None, at(T0)).await.unwrap();
    }
    assert_eq!(names(&store.windows_for_host(h1.id).await.unwrap()), ["h1 own", "web", "eu"]);
    assert_eq!(names(&store.windows_for_host(h2.id).await.unwrap()), ["other", "h2 own"]);
    assert_eq!(names(&store.windows_for_group(eu.id).await.unwrap()), ["eu"]);
    store.remove_host_from_group(h1.id, web.id).await.unwrap();
    assert_eq!(names(&store.windows_for_host(h1.id).await.unwrap()), ["h1 own", "eu"], "membership decides");
    let by_host = WindowFilter { host: Some(h1.id), ..WindowFilter::new(Scope::All) };
    assert_eq!(names(&store.list_maintenance_windows(&by_host).await.unwrap()), ["h1 own"]);
    let by_group = WindowFilter { group: Some(eu.id), ..WindowFilter::new(Scope::All) };
    assert_eq!(names(&store.list_maintenance_windows(&by_group).await.unwrap()), ["eu", "eu disabled"]);
    let enabled = WindowFilter { enabled_only: true, ..WindowFilter::new(Scope::All) };
    assert_eq!(store.list_maintenance_windows(&enabled).await.unwrap().len(), 5);
}

async fn window_listing_follows_the_scope(store: &Store, _config: &DatabaseConfig) {
    let web = store.create_group("web", "", at(T0)).await.unwrap();
    let db = store.create_group("db", "", at(T0)).await.unwrap();
    let in_web = store.create_host(&host("in-web"), at(T0)).await.unwrap();
    let in_db = store.create_host(&host("in-db"), at(T0)).await.unwrap();
    let loose = store.create_host(&host("loose"), at(T0)).await.unwrap();
    store.add_host_to_group(in_web.id, web.id).await.unwrap();
    store.add_host_to_group(in_db.id, db.id).await.unwrap();
    for (name, target) in [
        ("in-web", WindowTarget::Host(in_web.id)),
        ("in-db", WindowTarget::Host(in_db.id)),
        ("loose", WindowTarget::Host(loose.id)),
        ("web", WindowTarget::Group(web.id)),
        ("db", WindowTarget::Group(db.id)),
    ] {
        store.create_maintenance_window(&window(name, target), None, at(T0)).await.unwrap();
    }
    let list = |scope| async move { store.list_maintenance_windows(&WindowFilter::new(scope)).await.unwrap() };
    assert_eq!(names(&list(Scope::All).await), ["in-web", "in-db", "loose", "web", "db"]);
    assert_eq!(names(&list(Scope::Groups(vec![web.id])).await), ["in-web", "loose", "web"]);
    assert_eq!(names(&list(Scope::Groups(vec![])).await), ["loose"], "ungrouped hosts are everyone's");
    assert_eq!(names(&list(Scope::Groups(vec![web.id, db.id])).await), ["in-web", "in-db", "loose", "web", "db"]);
}

async fn blackouts_create_list_update_delete(store: &Store, _config: &DatabaseConfig) {
    let web = store.create_group("web", "", at(T0)).await.unwrap();
    let db = store.create_group("db", "", at(T0)).await.unwrap();
    let global = store.create_blackout(&blackout("year end", None, T0 + 100, T0 + 200), None, at(T0)).await.unwrap();
    assert_eq!(global.fields, blackout("year end", None, T0 + 100, T0 + 200));
    assert_eq!(global.interval().start, at(T0 + 100));
    let web_freeze =
        store.create_blackout(&blackout("web launch", Some(web.id), T0, T0 + 50), None, at(T0)).await.unwrap();
    store.create_blackout(&blackout("db migration", Some(db.id), T0 + 10, T0 + 20), None, at(T0)).await.unwrap();
    assert_eq!(store.get_blackout(global.id).await.unwrap(), Some(global.clone()));

    let list = |filter: BlackoutFilter| async move { store.list_blackouts(&filter).await.unwrap() };
    assert_eq!(
        blackout_names(&list(BlackoutFilter::new(Scope::All)).await),
        ["web launch", "db migration", "year end"]
    );
    assert_eq!(
        blackout_names(&list(BlackoutFilter::new(Scope::Groups(vec![web.id]))).await),
        ["web launch", "year end"]
    );
    assert_eq!(blackout_names(&list(BlackoutFilter::new(Scope::Groups(vec![]))).await), ["year end"]);
    let global_only = BlackoutFilter { global_only: true, ..BlackoutFilter::new(Scope::All) };
    assert_eq!(blackout_names(&list(global_only).await), ["year end"]);
    let of_db = BlackoutFilter { group: Some(db.id), ..BlackoutFilter::new(Scope::All) };
    assert_eq!(blackout_names(&list(of_db).await), ["db migration"]);
    let current = BlackoutFilter { ending_after: Some(at(T0 + 20)), ..BlackoutFilter::new(Scope::All) };
    assert_eq!(blackout_names(&list(current).await), ["web launch", "year end"], "ended ones drop out");

    let moved = blackout("web launch, moved", Some(db.id), T0 + 500, T0 + 900);
    let updated = store.update_blackout(web_freeze.id, &moved).await.unwrap();
    assert_eq!((updated.fields.clone(), updated.created_at), (moved, web_freeze.created_at));
    for bad in
        [blackout("empty", None, T0, T0), blackout("backwards", None, T0 + 10, T0), blackout("", None, T0, T0 + 1)]
    {
        assert!(matches!(store.create_blackout(&bad, None, at(T0)).await, Err(Error::Invalid(_))), "{bad:?}");
        assert!(matches!(store.update_blackout(global.id, &bad).await, Err(Error::Invalid(_))), "{bad:?}");
    }
    let orphan = store.create_blackout(&blackout("x", Some(GroupId(9999)), T0, T0 + 1), None, at(T0)).await;
    assert!(matches!(orphan, Err(Error::MissingReference(_))), "{orphan:?}");
    store.delete_blackout(global.id).await.unwrap();
    assert_eq!(store.get_blackout(global.id).await.unwrap(), None);
    assert!(matches!(store.delete_blackout(global.id).await, Err(Error::NotFound("blackout"))));
    assert!(matches!(
        store.update_blackout(global.id, &blackout("x", None, T0, T0 + 1)).await,
        Err(Error::NotFound(_))
    ));
}

async fn blackouts_for_a_host_are_global_and_its_groups(store: &Store, _config: &DatabaseConfig) {
    let web = store.create_group("web", "", at(T0)).await.unwrap();
    let db = store.create_group("db", "", at(T0)).await.unwrap();
    let h = store.create_host(&host("h"), at(T0)).await.unwrap();
    store.add_host_to_group(h.id, web.id).await.unwrap();
    store.create_blackout(&blackout("global", None, T0 + 30, T0 + 40), None, at(T0)).await.unwrap();
    store.create_blackout(&blackout("web", Some(web.id), T0 + 10, T0 + 20), None, at(T0)).await.unwrap();
    store.create_blackout(&blackout("db", Some(db.id), T0, T0 + 5), None, at(T0)).await.unwrap();
    assert_eq!(blackout_names(&store.blackouts_for_host(h.id).await.unwrap()), ["web", "global"]);
    assert_eq!(blackout_names(&store.blackouts_for_group(db.id).await.unwrap()), ["db", "global"]);
    let loose = store.create_host(&host("loose"), at(T0)).await.unwrap();
    assert_eq!(blackout_names(&store.blackouts_for_host(loose.id).await.unwrap()), ["global"]);
}

async fn deleting_a_host_or_group_deletes_its_windows(store: &Store, _config: &DatabaseConfig) {
    let web = store.create_group("web", "", at(T0)).await.unwrap();
    let h = store.create_host(&host("h"), at(T0)).await.unwrap();
    let own = store.create_maintenance_window(&window("own", WindowTarget::Host(h.id)), None, at(T0)).await.unwrap();
    let group = store.create_maintenance_window(&window("group", WindowTarget::Group(web.id)), None, at(T0)).await;
    let group = group.unwrap();
    let freeze = store.create_blackout(&blackout("web", Some(web.id), T0, T0 + 1), None, at(T0)).await.unwrap();
    store.delete_host(h.id).await.unwrap();
    assert_eq!(store.get_maintenance_window(own.id).await.unwrap(), None);
    assert!(store.get_maintenance_window(group.id).await.unwrap().is_some());
    store.delete_group(web.id).await.unwrap();
    assert_eq!(store.get_maintenance_window(group.id).await.unwrap(), None);
    assert_eq!(store.get_blackout(freeze.id).await.unwrap(), None);
}

/// The CHECK behind `WindowTarget`: a row written past the store (an old version, a hand edit)
/// still cannot belong to both a host and a group, or to neither.
async fn the_database_refuses_a_window_for_both_or_neither(store: &Store, config: &DatabaseConfig) {
    let web = store.create_group("web", "", at(T0)).await.unwrap();
    let h = store.create_host(&host("h"), at(T0)).await.unwrap();
    sqlx::any::install_default_drivers();
    let url = match config {
        DatabaseConfig::Sqlite { path } => format!("sqlite://{}", path.display()),
        DatabaseConfig::Postgres { url } => url.clone(),
    };
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    let insert = "INSERT INTO maintenance_windows (name, host_id, group_id, recurrence, start_time, \
                  duration_minutes, time_zone, enabled, created_at, updated_at) \
                  VALUES ('x', $1, $2, '{\"kind\":\"daily\"}', '02:00', 60, 'UTC', 1, 0, 0)";
    for (host_id, group_id) in [(Some(h.id.0), Some(web.id.0)), (None, None)] {
        let err = sqlx::query(insert).bind(host_id).bind(group_id).execute(&raw).await.unwrap_err();
        assert!(err.to_string().to_lowercase().contains("check"), "{err}");
    }
    sqlx::query(insert).bind(Some(h.id.0)).bind(None::<i64>).execute(&raw).await.unwrap();
    assert_eq!(names(&store.windows_for_host(h.id).await.unwrap()), ["x"], "a row written by hand reads back");
    raw.close().await;
}
