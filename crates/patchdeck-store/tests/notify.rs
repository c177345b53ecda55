//! PostgreSQL NOTIFY/LISTEN and leases through the store; SQLite has no notifications and grants every lease.

use std::time::Duration;

use patchdeck_store::{DatabaseConfig, LeaseKey, Notification, Store};
use patchdeck_testkit::pg::TestDatabase;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_notifications_reach_every_listener() {
    let db = TestDatabase::create().await;
    let config = DatabaseConfig::Postgres { url: db.url().to_owned() };
    let a = Store::connect(&config).await.unwrap();
    let b = Store::connect(&config).await.unwrap();
    let mut on_a = a.listen(&["patchdeck_test"]).await.unwrap().expect("PostgreSQL listens");
    let mut on_b = b.listen(&["patchdeck_test", "other"]).await.unwrap().expect("PostgreSQL listens");

    assert!(a.notify("patchdeck_test", "host:7").await.unwrap());
    let expected = Notification { channel: "patchdeck_test".into(), payload: "host:7".into() };
    for listener in [&mut on_a, &mut on_b] {
        let got = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.unwrap().unwrap();
        assert_eq!(got, expected);
    }
    assert!(b.notify("other", "x").await.unwrap());
    let got = tokio::time::timeout(Duration::from_secs(5), on_b.recv()).await.unwrap().unwrap();
    assert_eq!(got.channel, "other");
    // `a` does not listen on "other": nothing arrives.
    assert!(tokio::time::timeout(Duration::from_millis(300), on_a.recv()).await.is_err());
}

#[tokio::test]
async fn sqlite_has_no_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&DatabaseConfig::Sqlite { path: dir.path().join("db") }).await.unwrap();
    assert!(!store.notify("patchdeck_test", "x").await.unwrap());
    assert!(store.listen(&["patchdeck_test"]).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_is_held_by_one_process_at_a_time() {
    let db = TestDatabase::create().await;
    let config = DatabaseConfig::Postgres { url: db.url().to_owned() };
    let a = Store::connect(&config).await.unwrap();
    let b = Store::connect(&config).await.unwrap();
    let key = LeaseKey::PUSH_WORKER;

    let mut held = a.try_lease(key).await.unwrap().expect("nobody holds it yet");
    held.check().await.unwrap();
    assert!(b.try_lease(key).await.unwrap().is_none(), "a second process must not get it");
    assert!(a.try_lease(key).await.unwrap().is_none(), "nor a second connection of the same one");
    // Another key is independent.
    let other = b.try_lease(LeaseKey(42)).await.unwrap().expect("another key is free");

    held.release().await;
    let mut taken = b.try_lease(key).await.unwrap().expect("free again after release");
    taken.check().await.unwrap();
    // Dropping the lease (a crashed process) frees it too, once its connection closes.
    drop(taken);
    let mut again = None;
    for _ in 0..50 {
        again = a.try_lease(key).await.unwrap();
        if again.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "a dropped lease must become free");
    drop(other);
}

#[tokio::test]
async fn sqlite_lease_is_always_granted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&DatabaseConfig::Sqlite { path: dir.path().join("db") }).await.unwrap();
    let mut lease = store.try_lease(LeaseKey::PUSH_WORKER).await.unwrap().expect("one process owns SQLite");
    lease.check().await.unwrap();
    assert_eq!(lease.key(), LeaseKey::PUSH_WORKER);
}
