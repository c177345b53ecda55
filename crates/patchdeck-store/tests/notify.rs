//! PostgreSQL NOTIFY/LISTEN through the store; SQLite says it has none.

use std::time::Duration;

use patchdeck_store::{DatabaseConfig, Notification, Store};
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
