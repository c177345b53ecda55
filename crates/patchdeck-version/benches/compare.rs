//! Throughput of version comparison and sort-key construction per format on
//! a realistic mix of versions (as found in Debian 12, RHEL 9/Fedora,
//! Alpine 3.19 and Arch repositories), single-threaded.
//!
//! Run with `cargo bench -p patchdeck-version`. Goal: at least 5 million
//! validated comparisons per second per core for every format.

use std::hint::black_box;
use std::time::{Duration, Instant};

use patchdeck_version::{compare, sort_key, VersionFormat};

/// How long each measurement runs.
const MEASURE: Duration = Duration::from_millis(700);
/// Number of version pairs per format.
const PAIRS: usize = 4096;

const DEB: &[&str] = &[
    "2.36-9+deb12u4",
    "2.36-9+deb12u7",
    "1:9.18.24-1",
    "1:9.18.28-1~deb12u2",
    "3.0.11-1~deb12u2",
    "3.0.13-1~deb12u1",
    "7.88.1-10+deb12u5",
    "7.88.1-10+deb12u8",
    "252.22-1~deb12u1",
    "252.30-1~deb12u2",
    "1:1.2.13.dfsg-1",
    "1.21.23",
    "5.2.15-2+b2",
    "2.9.14+dfsg-1.3~deb12u1",
    "115.9.0esr-1~deb12u1",
    "6.1.0-18",
    "6.1.76-1",
    "2:8.2.3995-1ubuntu2.15",
    "1.0~rc3-2",
    "0.9.8c-1",
    "20230311",
    "3.11.2-6",
    "2.40.2-1",
    "13.0.0-2",
    "4.19.0-1+b1",
    "1:2.38.1-5+deb12u1",
    "2.06-13+deb12u1",
    "3.7.9-2+deb12u3",
    "1.6.1-2",
    "0.23.22-1",
    "10.2.1-6",
    "12.2.0-14",
    "2.35.2-2",
    "1:4.13+dfsg1-1+b1",
    "5.4-1ubuntu0.1",
];

const RPM: &[&str] = &[
    "5.14.0-362.24.1.el9_3",
    "5.14.0-427.13.1.el9_4",
    "2.34-83.el9.12",
    "2.34-100.el9_4.2",
    "1:3.0.7-25.el9_3",
    "1:3.0.7-27.el9",
    "4.18.0-513.24.1.el8_9",
    "3.9.18-1.fc39",
    "3.12.2-2.fc40",
    "2.02-150.fc38",
    "1:1.1.1k-12.el8_9",
    "0.9.1~rc1-2.fc40",
    "1.0^20230101git1234-1.fc39",
    "252-18.el9",
    "252-32.el9_4.6",
    "8.5.0-20.el9",
    "2.9.14-1.fc39",
    "7.76.1-29.el9_4.1",
    "2:8.2.2637-20.el9_1",
    "1.34.1-4.fc39",
    "3.0.9-1.fc39",
    "4.16.1.3-29.el9",
    "0.6.0-0.1.rc1.el9",
];

const APK: &[&str] = &[
    "1.2.3-r0",
    "3.1.4-r5",
    "2.40.2-r0",
    "1.36.1-r15",
    "1.36.1-r20",
    "3.0.12_p1-r0",
    "2.9.14_rc1-r1",
    "6.4_p20231125-r0",
    "1.2.13-r1",
    "0.9.8c-r1",
    "2023.12.1-r0",
    "1.0_alpha2-r0",
    "3.1.4-r4",
    "8.5.0-r0",
    "8.6.0-r0",
    "2.38-r1",
    "1.6.1-r2",
    "5.2.21-r0",
    "7.88.1-r1",
    "2.4.58-r0",
    "1.1.1w-r1",
    "3.1.4_git20240101-r0",
    "0.23.22-r0",
    "13.2.1_git20231014-r0",
];

const PACMAN: &[&str] = &[
    "6.8.9.arch1-2",
    "6.9.1.arch1-1",
    "2.39.3-1",
    "1:3.0.7-2",
    "1:3.3.0-1",
    "5.2.21-2",
    "1.2.13-5",
    "0.9.1rc1-1",
    "r123.abcdef-1",
    "7.88.1-1",
    "8.7.1-1",
    "2:9.0.2153-1",
    "24.1.3-1",
    "1.0.0.r45.g1234abc-1",
    "2.40.2-1",
    "13.2.1-5",
    "1:1.3.1-1",
    "3.12.2-2",
    "255.4-2",
    "6.2.0-1",
];

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// Pairs drawn from the list: mostly unrelated versions, a third of them
/// "same package, next build" (last digit bumped), some identical.
fn pairs(list: &[&str]) -> Vec<(String, String)> {
    let mut r = Rng(42);
    (0..PAIRS)
        .map(|_| {
            let a = list[r.below(list.len())].to_string();
            let b = match r.below(10) {
                0..=4 => list[r.below(list.len())].to_string(),
                5..=7 => {
                    let mut b = a.clone();
                    if let Some(i) = b.rfind(|c: char| c.is_ascii_digit() && c != '9') {
                        let d = b.as_bytes()[i] + 1;
                        b.replace_range(i..=i, &char::from(d).to_string());
                    }
                    b
                }
                _ => a.clone(),
            };
            (a, b)
        })
        .collect()
}

/// Runs `pass` (which performs `per_pass` operations) repeatedly for about
/// [`MEASURE`] and returns operations per second.
fn rate(per_pass: usize, mut pass: impl FnMut()) -> f64 {
    for _ in 0..3 {
        pass(); // warm-up
    }
    let start = Instant::now();
    let mut passes = 0u64;
    while start.elapsed() < MEASURE {
        pass();
        passes += 1;
    }
    (passes as f64 * per_pass as f64) / start.elapsed().as_secs_f64()
}

fn main() {
    println!("{:<8} {:>16} {:>14} {:>16} {:>14}", "format", "compare/s", "ns/compare", "sort_key/s", "key bytes avg");
    let mut all_ok = true;
    for (format, list) in [
        (VersionFormat::Deb, DEB),
        (VersionFormat::Rpm, RPM),
        (VersionFormat::Apk, APK),
        (VersionFormat::Pacman, PACMAN),
    ] {
        let pairs = pairs(list);
        for (a, b) in &pairs {
            compare(format, a, b).unwrap_or_else(|e| panic!("bench data: {e}"));
        }
        let compares = rate(pairs.len(), || {
            for (a, b) in &pairs {
                let _ = black_box(compare(format, black_box(a), black_box(b)));
            }
        });
        let keys = rate(pairs.len(), || {
            for (a, _) in &pairs {
                let _ = black_box(sort_key(format, black_box(a)));
            }
        });
        let key_bytes: usize = pairs.iter().map(|(a, _)| sort_key(format, a).unwrap().len()).sum();
        println!(
            "{:<8} {:>16.0} {:>14.1} {:>16.0} {:>14.1}",
            format,
            compares,
            1e9 / compares,
            keys,
            key_bytes as f64 / pairs.len() as f64
        );
        all_ok &= compares >= 5e6;
    }
    println!("goal (>= 5,000,000 compare/s per format, single core): {}", if all_ok { "met" } else { "NOT met" });
}
