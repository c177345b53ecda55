//! Notification channels, rules and the delivery outbox, on SQLite and PostgreSQL: CRUD, atomic
//! claims (two store handles never claim one delivery), claim expiry, retries, the once-only
//! marks, the digest's memory and expiring certificates.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use patchdeck_proto::inventory::{
    AvailableUpdate, BackendKind, OsInfo, RebootStatus, ScanReport, SecurityClass, SecurityInfo, SCAN_SCHEMA_VERSION,
};
use patchdeck_store::*;
use patchdeck_testkit::pg::TestDatabase;
use serde_json::json;

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
        let store = Store::connect(&config).await.expect("connect");
        store.migrate().await.expect("migrate");
        Harness { store, config, _dir: dir, _pg: pg }
    }

    /// Another handle (its own pool) on the same database, like a second manager replica.
    async fn second(&self) -> Store {
        Store::connect(&self.config).await.expect("second handle")
    }
}

macro_rules! both {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Harness::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(&super::Harness::postgres().await).await;
                }
            )+
        }
    };
}

both!(
    channels_and_rules,
    claims_are_exclusive_across_handles,
    claims_lapse_and_retries_are_recorded,
    marks_are_taken_once,
    digest_reports_each_update_once,
    expiring_certificates_leave_out_replaced_ones,
);

const T0: i64 = 1_700_000_000;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(seconds).unwrap()
}

fn webhook(name: &str) -> NewNotificationChannel {
    NewNotificationChannel {
        name: name.into(),
        kind: ChannelKind::Webhook,
        settings: json!({ "url": "https://hooks.example.com/x", "format": "slack" }),
        secret: Some(vec![1, 2, 3]),
        enabled: true,
    }
}

fn rule(name: &str, channel: NotificationChannelId, events: &[&str]) -> NewNotificationRule {
    NewNotificationRule {
        name: name.into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        channel_id: channel,
        recipients: vec![],
        group_id: None,
        enabled: true,
    }
}

fn delivery(channel: NotificationChannelId, n: usize) -> NewDelivery {
    NewDelivery {
        channel_id: channel,
        rule_id: None,
        event: "host.unreachable".into(),
        event_id: format!("event-{n}"),
        recipients: vec!["ops@example.com".into()],
        payload: json!({ "n": n }),
    }
}

fn new_host(hostname: &str) -> NewHost {
    NewHost {
        hostname: hostname.into(),
        fqdn: None,
        address: None,
        transport: Transport::Pull,
        status: HostStatus::Online,
        machine_id: None,
        os_name: None,
        os_version: None,
    }
}

async fn channels_and_rules(h: &Harness) {
    let store = &h.store;
    let hook = store.create_notification_channel(&webhook("chat"), at(T0)).await.unwrap();
    assert_eq!(hook.secret.as_deref(), Some(&[1u8, 2, 3][..]));
    assert!(!format!("{hook:?}").contains("[1, 2, 3]"), "Debug hides the sealed secret");
    let err = store.create_notification_channel(&webhook(" chat "), at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(m) if m == "channel name already exists"), "{err}");
    let mut changed = webhook("chat-2");
    changed.secret = None;
    changed.enabled = false;
    let updated = store.update_notification_channel(hook.id, &changed, at(T0 + 1)).await.unwrap();
    assert_eq!((updated.name.as_str(), updated.secret.is_none(), updated.enabled), ("chat-2", true, false));
    assert_eq!(updated.updated_at, at(T0 + 1));
    let missing = store.update_notification_channel(NotificationChannelId(999), &changed, at(T0)).await;
    assert!(matches!(missing, Err(Error::NotFound(_))));

    let group = store.create_group("web", "", at(T0)).await.unwrap();
    let mut with_group = rule("r1", hook.id, &["host.unreachable"]);
    with_group.group_id = Some(group.id);
    let r1 = store.create_notification_rule(&with_group, at(T0)).await.unwrap();
    assert_eq!(r1.events, ["host.unreachable"]);
    let err = store.create_notification_rule(&rule("r1", hook.id, &["x"]), at(T0)).await.unwrap_err();
    assert!(matches!(&err, Error::Conflict(m) if m == "rule name already exists"), "{err}");
    let err = store.create_notification_rule(&rule("r2", NotificationChannelId(999), &["x"]), at(T0)).await;
    assert!(matches!(err, Err(Error::MissingReference(_))));

    // Only enabled rules on enabled channels are active.
    assert!(store.active_notification_rules().await.unwrap().is_empty(), "the channel is disabled");
    changed.enabled = true;
    store.update_notification_channel(hook.id, &changed, at(T0 + 2)).await.unwrap();
    let active = store.active_notification_rules().await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!((active[0].0.id, active[0].1.id), (r1.id, hook.id));
    let mut off = with_group.clone();
    off.enabled = false;
    store.update_notification_rule(r1.id, &off, at(T0 + 3)).await.unwrap();
    assert!(store.active_notification_rules().await.unwrap().is_empty());

    // A rule goes with its group; rules and deliveries go with their channel.
    store.delete_group(group.id).await.unwrap();
    assert!(store.get_notification_rule(r1.id).await.unwrap().is_none());
    let r3 = store.create_notification_rule(&rule("r3", hook.id, &["security.digest"]), at(T0)).await.unwrap();
    let ids = store.enqueue_notification_deliveries(&[delivery(hook.id, 1)], at(T0)).await.unwrap();
    store.delete_notification_rule(r3.id).await.unwrap();
    assert!(matches!(store.delete_notification_rule(r3.id).await, Err(Error::NotFound(_))));
    assert!(store.get_notification_delivery(ids[0]).await.unwrap().is_some(), "deliveries outlive their rule");
    store.delete_notification_channel(hook.id).await.unwrap();
    assert!(store.get_notification_delivery(ids[0]).await.unwrap().is_none());
    assert!(store.list_notification_channels().await.unwrap().is_empty());
}

async fn claims_are_exclusive_across_handles(h: &Harness) {
    let channel = h.store.create_notification_channel(&webhook("c"), at(T0)).await.unwrap();
    let all: Vec<NewDelivery> = (0..120).map(|n| delivery(channel.id, n)).collect();
    let ids = h.store.enqueue_notification_deliveries(&all, at(T0)).await.unwrap();
    assert_eq!(ids.len(), 120);
    let other = h.second().await;
    let lock = SignedDuration::from_mins(5);
    let claim_all = |store: Store| async move {
        let mut mine = Vec::new();
        loop {
            let claimed = store.claim_notification_deliveries(at(T0 + 1), 7, lock).await.unwrap();
            if claimed.is_empty() {
                return mine;
            }
            for d in claimed {
                assert_eq!((d.status, d.attempts), (DeliveryStatus::Sending, 1));
                mine.push(d.id);
            }
        }
    };
    let (a, b, c) = tokio::join!(
        tokio::spawn(claim_all(h.store.clone())),
        tokio::spawn(claim_all(other.clone())),
        tokio::spawn(claim_all(other.clone()))
    );
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let mut seen = BTreeSet::new();
    for id in a.iter().chain(&b).chain(&c) {
        assert!(seen.insert(*id), "delivery {id} claimed twice");
    }
    assert_eq!(seen, ids.into_iter().collect::<BTreeSet<_>>(), "every delivery claimed once");
    // Nothing is due before the lock lapses.
    assert!(h.store.claim_notification_deliveries(at(T0 + 2), 100, lock).await.unwrap().is_empty());
}

async fn claims_lapse_and_retries_are_recorded(h: &Harness) {
    let store = &h.store;
    let channel = store.create_notification_channel(&webhook("c"), at(T0)).await.unwrap();
    let lock = SignedDuration::from_secs(60);
    let [id] = store.enqueue_notification_deliveries(&[delivery(channel.id, 1)], at(T0 + 10)).await.unwrap()[..] else {
        panic!("one id")
    };
    assert!(store.claim_notification_deliveries(at(T0 + 9), 10, lock).await.unwrap().is_empty(), "not due yet");
    let first = store.claim_notification_deliveries(at(T0 + 10), 10, lock).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].locked_until, Some(at(T0 + 70)));
    assert_eq!(first[0].payload, json!({ "n": 1 }));
    // The sender died: the claim lapses and the delivery comes back with a second attempt.
    assert!(store.claim_notification_deliveries(at(T0 + 69), 10, lock).await.unwrap().is_empty());
    let second = store.claim_notification_deliveries(at(T0 + 70), 10, lock).await.unwrap();
    assert_eq!(second[0].attempts, 2);
    // The first sender wakes up late: its outcome is not recorded.
    assert!(!store.mark_notification_sent(id, 1, at(T0 + 71)).await.unwrap());
    // The second attempt fails for a reason that may pass: pending again, with the error.
    let long_error = "é".repeat(5000);
    assert!(store.mark_notification_failed(id, 2, &long_error, Some(at(T0 + 200))).await.unwrap());
    let pending = store.get_notification_delivery(id).await.unwrap().unwrap();
    assert_eq!(
        (pending.status, pending.next_attempt_at, pending.locked_until),
        (DeliveryStatus::Pending, at(T0 + 200), None)
    );
    assert!(pending.last_error.as_ref().unwrap().len() <= 2000);
    assert!(store.claim_notification_deliveries(at(T0 + 199), 10, lock).await.unwrap().is_empty(), "backoff");
    let third = store.claim_notification_deliveries(at(T0 + 200), 10, lock).await.unwrap();
    assert_eq!(third[0].attempts, 3);
    assert!(store.mark_notification_sent(id, 3, at(T0 + 201)).await.unwrap());
    let sent = store.get_notification_delivery(id).await.unwrap().unwrap();
    assert_eq!((sent.status, sent.sent_at, sent.last_error), (DeliveryStatus::Sent, Some(at(T0 + 201)), None));
    assert!(!store.mark_notification_failed(id, 3, "late", None).await.unwrap(), "a sent delivery stays sent");

    // A permanent failure; then the listing filters, and pruning keeps what is not finished.
    let ids = store
        .enqueue_notification_deliveries(&[delivery(channel.id, 2), delivery(channel.id, 3)], at(T0 + 300))
        .await
        .unwrap();
    let claimed = store.claim_notification_deliveries(at(T0 + 300), 1, lock).await.unwrap();
    assert_eq!(claimed[0].id, ids[0], "oldest due first");
    assert!(store.mark_notification_failed(ids[0], 1, "410 Gone", None).await.unwrap());
    let failed = store
        .list_notification_deliveries(&DeliveryFilter { status: Some(DeliveryStatus::Failed), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((failed.total, failed.items[0].id), (1, ids[0]));
    assert_eq!(failed.items[0].last_error.as_deref(), Some("410 Gone"));
    let every = store.list_notification_deliveries(&DeliveryFilter::default()).await.unwrap();
    assert_eq!(every.items.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1], ids[0], id], "newest first");
    assert_eq!(store.prune_notification_deliveries(at(T0 + 10_000)).await.unwrap(), 2, "sent and failed");
    let left = store.list_notification_deliveries(&DeliveryFilter::default()).await.unwrap();
    assert_eq!(left.items.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1]]);
}

async fn marks_are_taken_once(h: &Harness) {
    let other = h.second().await;
    let (a, b) = tokio::join!(
        h.store.take_notification_mark("security.digest:2026-12-04", at(T0)),
        other.take_notification_mark("security.digest:2026-12-04", at(T0))
    );
    assert!(a.unwrap() ^ b.unwrap(), "exactly one of two racing replicas takes a mark");
    assert!(!h.store.take_notification_mark("security.digest:2026-12-04", at(T0)).await.unwrap());
    assert!(h.store.take_notification_mark("certificate.expiring:ab", at(T0)).await.unwrap());
    assert_eq!(h.store.prune_notification_marks("security.digest:", at(T0 + 1)).await.unwrap(), 1);
    assert!(h.store.take_notification_mark("security.digest:2026-12-04", at(T0 + 2)).await.unwrap());
    assert!(!h.store.take_notification_mark("certificate.expiring:ab", at(T0 + 2)).await.unwrap());
}

fn update(name: &str, candidate: &str, class: SecurityClass) -> AvailableUpdate {
    AvailableUpdate {
        name: name.into(),
        arch: "amd64".into(),
        current_version: "1.0-1".into(),
        candidate_version: candidate.into(),
        repository: Some("bookworm-security".into()),
        security: SecurityInfo {
            class,
            reason: "test".into(),
            advisory_id: None,
            severity: (class == SecurityClass::Security).then(|| "high".to_owned()),
        },
        cves: if class == SecurityClass::Security { vec!["CVE-2026-1234".into()] } else { vec![] },
        reboot_likely: false,
    }
}

fn report(updates: Vec<AvailableUpdate>) -> ScanReport {
    ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at: at(T0),
        os: OsInfo {
            id: "debian".into(),
            id_like: vec![],
            version_id: Some("12".into()),
            pretty_name: None,
            kernel: None,
            arch: None,
        },
        backend: BackendKind::Apt,
        version_format: BackendKind::Apt.version_format(),
        last_refresh: None,
        installed: vec![],
        updates,
        reboot: RebootStatus::default(),
    }
}

async fn digest_reports_each_update_once(h: &Harness) {
    let store = &h.store;
    let web = store.create_host(&new_host("web1"), at(T0)).await.unwrap();
    let db = store.create_host(&new_host("db1"), at(T0)).await.unwrap();
    assert!(store.take_new_security_updates(at(T0)).await.unwrap().is_empty(), "nothing yet");
    let web_updates =
        vec![update("openssl", "3.0.2-1", SecurityClass::Security), update("vim", "9.1-1", SecurityClass::NotSecurity)];
    store.replace_inventory(web.id, &report(web_updates), "h1", at(T0)).await.unwrap();
    store
        .replace_inventory(db.id, &report(vec![update("libc6", "2.36-9", SecurityClass::Security)]), "h2", at(T0))
        .await
        .unwrap();
    let first = store.take_new_security_updates(at(T0 + 1)).await.unwrap();
    let names: Vec<(&str, &str)> = first.iter().map(|u| (u.hostname.as_str(), u.name.as_str())).collect();
    assert_eq!(names, [("db1", "libc6"), ("web1", "openssl")], "security only, by host then package");
    assert_eq!(first[1].severity.as_deref(), Some("high"));
    assert_eq!(first[1].cves, ["CVE-2026-1234"]);
    assert_eq!((first[1].current_version.as_str(), first[1].candidate_version.as_str()), ("1.0-1", "3.0.2-1"));
    assert!(store.take_new_security_updates(at(T0 + 2)).await.unwrap().is_empty(), "nothing new");

    // A newer candidate is news; the old one is forgotten once it is gone.
    store
        .replace_inventory(web.id, &report(vec![update("openssl", "3.0.3-1", SecurityClass::Security)]), "h3", at(T0))
        .await
        .unwrap();
    let second = store.take_new_security_updates(at(T0 + 3)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!((second[0].host_id, second[0].candidate_version.as_str()), (web.id, "3.0.3-1"));
    // Gone and back again: reported again.
    store.replace_inventory(db.id, &report(vec![]), "h4", at(T0)).await.unwrap();
    assert!(store.take_new_security_updates(at(T0 + 4)).await.unwrap().is_empty());
    store
        .replace_inventory(db.id, &report(vec![update("libc6", "2.36-9", SecurityClass::Security)]), "h5", at(T0))
        .await
        .unwrap();
    assert_eq!(store.take_new_security_updates(at(T0 + 5)).await.unwrap().len(), 1);
}

fn certificate(serial: &str, cn: &str, host: Option<HostId>, not_after: i64) -> NewCertificate {
    NewCertificate {
        serial: serial.into(),
        kind: CertificateKind::Client,
        common_name: cn.into(),
        host_id: host,
        not_before: at(T0 - 86_400 * 30),
        not_after: at(not_after),
        pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
    }
}

async fn expiring_certificates_leave_out_replaced_ones(h: &Harness) {
    let store = &h.store;
    let host = store.create_host(&new_host("agent"), at(T0)).await.unwrap();
    let day = 86_400;
    store.insert_certificate(&certificate("0a", "agent-a", Some(host.id), T0 + 5 * day), at(T0)).await.unwrap();
    // Renewed: the old one expires soon, but a newer one replaces it.
    store.insert_certificate(&certificate("0b", "agent-b", None, T0 + 3 * day), at(T0)).await.unwrap();
    store.insert_certificate(&certificate("0c", "agent-b", None, T0 + 300 * day), at(T0)).await.unwrap();
    // Far away, already expired, revoked.
    store.insert_certificate(&certificate("0d", "agent-d", None, T0 + 60 * day), at(T0)).await.unwrap();
    store.insert_certificate(&certificate("0e", "agent-e", None, T0 - day), at(T0)).await.unwrap();
    store.insert_certificate(&certificate("0f", "agent-f", None, T0 + day), at(T0)).await.unwrap();
    store.revoke_certificate("0f", "superseded", at(T0)).await.unwrap();
    let expiring = store.expiring_certificates(at(T0), at(T0 + 14 * day)).await.unwrap();
    assert_eq!(expiring.len(), 1, "{expiring:?}");
    assert_eq!(
        (expiring[0].serial.as_str(), expiring[0].common_name.as_str(), expiring[0].host_id),
        ("0a", "agent-a", Some(host.id))
    );
    assert_eq!(expiring[0].not_after, at(T0 + 5 * day));
}
