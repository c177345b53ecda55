//! Synthetic host data: a small inventory (50 installed packages of a Debian 12 host, 0–3 updates)
//! and fresh light metrics for every check-in. Deterministic per agent, so the inventory hash is
//! the same in every run and a re-run does not upload again.

use jiff::Timestamp;
use patchdeck_proto::agent::{inventory_hash, CheckinRequest, DiskUsage, Metrics, PROTOCOL_VERSION};
use patchdeck_proto::inventory::{
    AvailableUpdate, BackendKind, InstalledPackage, OsInfo, RebootStatus, ScanReport, SecurityClass, SecurityInfo,
    SCAN_SCHEMA_VERSION,
};
use patchdeck_version::VersionFormat;

/// What the simulated agents report as their version.
pub const AGENT_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-sim");

const KERNEL: &str = "6.1.0-28-amd64";

/// xorshift64*, seeded through splitmix64: cheap, good enough for jitter and picks.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    /// A seed from the operating system's random source.
    pub fn from_os() -> anyhow::Result<Self> {
        Ok(Rng::new(getrandom::u64().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is negligible for our ranges).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Name, version, architecture and installed size (KiB) of the 50 packages every host has.
const PACKAGES: [(&str, &str, &str, u64); 50] = [
    ("adduser", "3.134", "all", 849),
    ("apt", "2.6.1", "amd64", 4234),
    ("base-files", "12.4+deb12u8", "amd64", 349),
    ("bash", "5.2.15-2+b7", "amd64", 7164),
    ("bsdutils", "1:2.38.1-5+deb12u2", "amd64", 335),
    ("ca-certificates", "20230311", "all", 382),
    ("coreutils", "9.1-1", "amd64", 18062),
    ("curl", "7.88.1-10+deb12u8", "amd64", 500),
    ("dash", "0.5.12-2", "amd64", 191),
    ("debconf", "1.5.82", "all", 520),
    ("debian-archive-keyring", "2023.3+deb12u1", "all", 245),
    ("diffutils", "1:3.8-4", "amd64", 1592),
    ("dpkg", "1.21.22", "amd64", 6405),
    ("e2fsprogs", "1.47.0-2", "amd64", 1490),
    ("findutils", "4.9.0-4", "amd64", 1640),
    ("gcc-12-base", "12.2.0-14", "amd64", 92),
    ("gpgv", "2.2.40-1.1", "amd64", 905),
    ("grep", "3.8-5", "amd64", 1260),
    ("gzip", "1.12-1", "amd64", 243),
    ("hostname", "3.23+nmu1", "amd64", 50),
    ("init-system-helpers", "1.65.2", "all", 133),
    ("libacl1", "2.3.1-3", "amd64", 46),
    ("libapt-pkg6.0", "2.6.1", "amd64", 3320),
    ("libc-bin", "2.36-9+deb12u9", "amd64", 2560),
    ("libc6", "2.36-9+deb12u9", "amd64", 12988),
    ("libcurl4", "7.88.1-10+deb12u8", "amd64", 949),
    ("libgnutls30", "3.7.9-2+deb12u3", "amd64", 3290),
    ("libpam-modules", "1.5.2-6+deb12u1", "amd64", 1031),
    ("libssl3", "3.0.15-1~deb12u1", "amd64", 6281),
    ("libsystemd0", "252.31-1~deb12u1", "amd64", 929),
    ("libudev1", "252.31-1~deb12u1", "amd64", 254),
    ("libzstd1", "1.5.4+dfsg2-5", "amd64", 836),
    ("linux-image-amd64", "6.1.119-1", "amd64", 13),
    ("login", "1:4.13+dfsg1-1+b1", "amd64", 2575),
    ("logrotate", "3.21.0-1", "amd64", 162),
    ("mount", "2.38.1-5+deb12u2", "amd64", 454),
    ("ncurses-base", "6.4-4", "all", 393),
    ("netbase", "6.4", "all", 41),
    ("openssh-client", "1:9.2p1-2+deb12u3", "amd64", 4992),
    ("openssh-server", "1:9.2p1-2+deb12u3", "amd64", 1968),
    ("openssl", "3.0.15-1~deb12u1", "amd64", 2277),
    ("passwd", "1:4.13+dfsg1-1+b1", "amd64", 2825),
    ("perl-base", "5.36.0-7+deb12u1", "amd64", 7620),
    ("procps", "2:4.0.2-3", "amd64", 2360),
    ("sed", "4.9-1", "amd64", 1012),
    ("sudo", "1.9.13p3-1+deb12u1", "amd64", 6320),
    ("systemd", "252.31-1~deb12u1", "amd64", 24082),
    ("tar", "1.34+dfsg-1.2+deb12u1", "amd64", 3144),
    ("tzdata", "2024b-0+deb12u1", "all", 2952),
    ("util-linux", "2.38.1-5+deb12u2", "amd64", 3561),
];

/// Updates a host may have: name, candidate, security fix, CVEs, reboot likely.
const UPDATES: [(&str, &str, bool, &[&str], bool); 3] = [
    ("libssl3", "3.0.16-1~deb12u1", true, &["CVE-2024-13176"], false),
    ("linux-image-amd64", "6.1.123-1", true, &["CVE-2024-53103", "CVE-2024-53141"], true),
    ("tzdata", "2025a-0+deb12u1", false, &[], false),
];

/// The OS every simulated host runs.
pub fn os() -> OsInfo {
    OsInfo {
        id: "debian".into(),
        id_like: Vec::new(),
        version_id: Some("12".into()),
        pretty_name: Some("Debian GNU/Linux 12 (bookworm)".into()),
        kernel: Some(KERNEL.into()),
        arch: Some("x86_64".into()),
    }
}

/// Agent `index`'s scan: the 50 packages and `index % 4` of the updates (so hosts differ).
pub fn scan_report(index: usize, now: Timestamp) -> ScanReport {
    let installed = PACKAGES
        .iter()
        .map(|&(name, version, arch, size_kib)| InstalledPackage {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            source_package: None,
            source_version: None,
            origin: Some("Debian".into()),
            installed_at: None,
            size_bytes: Some(size_kib * 1024),
            held: false,
        })
        .collect();
    let updates = UPDATES
        .iter()
        .take(index % 4)
        .map(|&(name, candidate, security, cves, reboot_likely)| {
            let current = PACKAGES.iter().find(|p| p.0 == name).map_or("0", |p| p.1);
            let (class, reason, repository) = if security {
                (SecurityClass::Security, "candidate comes from suite bookworm-security", "bookworm-security")
            } else {
                (SecurityClass::NotSecurity, "candidate comes from suite bookworm-updates", "bookworm-updates")
            };
            AvailableUpdate {
                name: name.into(),
                arch: "amd64".into(),
                current_version: current.into(),
                candidate_version: candidate.into(),
                repository: Some(repository.into()),
                security: SecurityInfo::new(class, reason),
                cves: cves.iter().map(|c| (*c).to_owned()).collect(),
                reboot_likely,
            }
        })
        .collect();
    ScanReport {
        schema_version: SCAN_SCHEMA_VERSION,
        scanned_at: now,
        os: os(),
        backend: BackendKind::Apt,
        version_format: VersionFormat::Deb,
        last_refresh: Some(now),
        installed,
        updates,
        reboot: RebootStatus { running_kernel: Some(KERNEL.into()), ..RebootStatus::default() },
    }
}

/// The inventory hash of agent `index`'s scan (independent of the scan time).
pub fn report_hash(index: usize) -> String {
    inventory_hash(&scan_report(index, Timestamp::UNIX_EPOCH))
}

/// Rounds to `places` decimals, as a real agent's readings look (`/proc/loadavg` has two).
fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

/// Fresh light metrics: a busy-ish 4-CPU, 8 GiB host with one 50 GB disk.
pub fn metrics(rng: &mut Rng, boot_id: &str, uptime_secs: u64) -> Metrics {
    const GIB: u64 = 1 << 30;
    let load1 = round(rng.unit() * 2.0, 2);
    Metrics {
        load: [load1, round(load1 * 0.9, 2), round(load1 * 0.8, 2)],
        cpu_count: 4,
        cpu_percent: Some(round(rng.unit() * 60.0, 1)),
        memory_total_bytes: 8 * GIB,
        memory_available_bytes: 2 * GIB + rng.below(4 * GIB),
        swap_total_bytes: GIB,
        swap_free_bytes: GIB - rng.below(GIB / 8),
        disks: vec![DiskUsage {
            mount_point: "/".into(),
            filesystem: "ext4".into(),
            total_bytes: 50_000_000_000,
            available_bytes: 20_000_000_000 + rng.below(10_000_000_000),
        }],
        uptime_secs,
        boot_id: Some(boot_id.to_owned()),
        kernel: Some(KERNEL.into()),
        reboot_required: false,
    }
}

/// A check-in with fresh metrics, the given inventory hash, no results, waiting `wait_ms`.
pub fn checkin(rng: &mut Rng, boot_id: &str, uptime_secs: u64, hash: &str, wait_ms: u64) -> CheckinRequest {
    CheckinRequest {
        protocol_version: PROTOCOL_VERSION,
        agent_version: AGENT_VERSION.into(),
        metrics: metrics(rng, boot_id, uptime_secs),
        inventory_hash: Some(hash.to_owned()),
        results: Vec::new(),
        rejections: Vec::new(),
        wait_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_hash_is_stable_across_scans_and_differs_between_hosts() {
        let a = inventory_hash(&scan_report(7, Timestamp::from_second(1_800_000_000).unwrap()));
        let b = inventory_hash(&scan_report(7, Timestamp::from_second(1_900_000_000).unwrap()));
        assert_eq!(a, b, "the scan time is not part of the hash");
        assert_eq!(a, report_hash(7));
        assert_ne!(report_hash(1), report_hash(2), "hosts with different updates hash differently");
        assert_eq!(report_hash(1), report_hash(5), "index % 4 picks the updates");
        let report = scan_report(3, Timestamp::UNIX_EPOCH);
        assert_eq!(report.installed.len(), 50);
        assert_eq!(report.updates.len(), 3);
        assert_eq!(report.security_update_count(), 2);
        assert_eq!(report.updates[0].current_version, "3.0.15-1~deb12u1");
    }

    #[test]
    fn a_checkin_body_stays_under_one_kib() {
        let mut rng = Rng::new(1);
        let boot_id = uuid::Uuid::new_v4().to_string();
        for _ in 0..1000 {
            let body = serde_json::to_vec(&checkin(&mut rng, &boot_id, 86_400 * 400, &report_hash(3), 300_000))
                .expect("serialises");
            assert!(body.len() < 1024, "{} bytes: {}", body.len(), String::from_utf8_lossy(&body));
            let back: CheckinRequest = serde_json::from_slice(&body).expect("the manager's type reads it");
            assert_eq!(back.inventory_hash.as_deref(), Some(report_hash(3).as_str()));
        }
    }

    #[test]
    fn rng_is_deterministic_per_seed_and_stays_in_range() {
        let (mut a, mut b) = (Rng::new(42), Rng::new(42));
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::new(43).next_u64(), xs[0]);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
            seen[a.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|&n| (800..1200).contains(&n)), "roughly uniform: {seen:?}");
    }
}
