//! apk: every vector of apk-tools' own `test/version.data` (copied verbatim
//! to `tests/data/apk-version.data`, provenance in its header).
//!
//! For vectors whose versions are both valid, `compare` and the sort keys
//! must give the stated relation in both directions. Upstream keeps two
//! vectors with invalid versions (`1.0bc`, `23_foo`) to pin down how apk
//! compares garbage; for those, our validated API must return an error and
//! [`apk::compare_raw`] (which mirrors apk on invalid input) must still give
//! upstream's answer.

use std::cmp::Ordering;

use patchdeck_version::{apk, compare, sort_key, VersionFormat};

const DATA: &str = include_str!("data/apk-version.data");

fn vectors() -> Vec<(usize, &'static str, Ordering, &'static str)> {
    DATA.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let line = line.split('#').next().unwrap().trim();
            if line.is_empty() {
                return None;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [a, op, b] = fields[..] else {
                panic!("line {}: cannot parse {line:?}", n + 1);
            };
            let want = match op {
                "<" => Ordering::Less,
                "=" => Ordering::Equal,
                ">" => Ordering::Greater,
                _ => panic!("line {}: unknown operator {op:?}", n + 1),
            };
            Some((n + 1, a, want, b))
        })
        .collect()
}

#[test]
fn all_upstream_vectors() {
    let vectors = vectors();
    assert!(vectors.len() >= 700, "only {} vectors parsed", vectors.len());
    let (mut valid, mut invalid) = (0, 0);
    for (line, a, want, b) in vectors {
        assert_eq!(apk::compare_raw(a.as_bytes(), b.as_bytes()), want, "line {line}: raw {a} vs {b}");
        assert_eq!(apk::compare_raw(b.as_bytes(), a.as_bytes()), want.reverse(), "line {line}: raw {b} vs {a}");
        match compare(VersionFormat::Apk, a, b) {
            Ok(ord) => {
                valid += 1;
                assert_eq!(ord, want, "line {line}: {a} vs {b}");
                assert_eq!(compare(VersionFormat::Apk, b, a).unwrap(), want.reverse(), "line {line}");
                let ka = sort_key(VersionFormat::Apk, a).unwrap();
                let kb = sort_key(VersionFormat::Apk, b).unwrap();
                assert_eq!(ka.cmp(&kb), want, "line {line}: keys of {a} vs {b}");
            }
            Err(e) => {
                invalid += 1;
                assert!(
                    ["1.0bc", "23_foo"].contains(&a) || ["1.0bc", "23_foo"].contains(&b),
                    "line {line}: unexpected error {e}"
                );
            }
        }
    }
    eprintln!("apk vectors: {valid} valid pairs checked, {invalid} with invalid versions");
    assert_eq!(invalid, 2);
}
