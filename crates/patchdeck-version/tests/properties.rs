//! Property tests for every format: `compare` is reflexive, antisymmetric and
//! transitive, sort-key order equals comparison order, equal versions have
//! equal keys, and nothing panics on arbitrary input.
//!
//! Generators produce valid versions from small alphabets, so that equal,
//! near-equal and prefix-related versions are frequent. A second family
//! ("printable") takes arbitrary printable-ASCII strings and keeps the valid
//! ones, to reach syntax corners no hand-written grammar thinks of.
//!
//! pacman is special (see the `pacman` module docs): a missing pkgrel
//! compares equal to every pkgrel, which is not transitive. Transitivity is
//! therefore asserted for triples whose members all have a pkgrel or all lack
//! one, and key order is asserted to equal `compare` except for "same
//! epoch+pkgver, exactly one pkgrel missing", where the keys must put the
//! version without pkgrel first.

use std::cmp::Ordering;

use proptest::prelude::*;
use proptest::string::string_regex;

use patchdeck_version::{apk, compare, deb, pacman, rpm, sort_key, validate, VersionFormat};

fn regex(re: &str) -> BoxedStrategy<String> {
    string_regex(re).unwrap().boxed()
}

/// Arbitrary printable ASCII strings that are valid in `format`.
fn printable(format: VersionFormat) -> BoxedStrategy<String> {
    regex("[!-~]{1,10}").prop_filter("valid", move |v| validate(format, v).is_ok()).boxed()
}

fn deb_versions() -> BoxedStrategy<String> {
    prop_oneof![
        3 => regex("([01]{1,2}:)?[019][019aZ.+~]{0,7}(-[019aZ.+~]{1,4})?"),
        1 => regex("(00?:)?[019aZ.+~_:-]{1,8}")
            .prop_filter("valid", |v| deb::validate(v).is_ok()),
        1 => printable(VersionFormat::Deb),
    ]
    .boxed()
}

fn rpm_versions() -> BoxedStrategy<String> {
    prop_oneof![
        3 => regex("(([01]{1,2})?:)?[019aZ.~^_]{1,8}(-[019aZ.~^]{0,4})?"),
        1 => printable(VersionFormat::Rpm),
    ]
    .boxed()
}

fn pacman_versions_with(release: &'static str) -> BoxedStrategy<String> {
    regex(&format!("([01]{{0,2}}:)?[019aZ._+~]{{0,6}}[019aZ]{release}"))
        .prop_filter("valid", |v| pacman::validate(v).is_ok())
        .boxed()
}

fn pacman_versions() -> BoxedStrategy<String> {
    prop_oneof![
        2 => pacman_versions_with(""),
        2 => pacman_versions_with("-[019a._]{0,3}[019a]"),
        1 => printable(VersionFormat::Pacman),
    ]
    .boxed()
}

fn apk_versions() -> BoxedStrategy<String> {
    prop_oneof![
        4 => regex(
            "[0-2]{1,2}(\\.[0-2]{1,2}){0,3}[a-c]?\
             (_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-2]{0,2}){0,3}\
             (~[0-9a-f]{1,3})?(-r[0-2]{1,2})?"
        ),
        1 => apk_token_soup(),
    ]
    .boxed()
}

/// Random concatenations of apk token fragments, kept when valid: reaches
/// combinations (suffix chains, hashes, leading zeros) the regex does not.
fn apk_token_soup() -> BoxedStrategy<String> {
    let fragments = vec![
        "0", "1", "01", "10", "9", ".", ".0", ".1", ".01", "a", "z", "_p", "_rc", "_alpha", "_git", "_pre", "_cvs",
        "1", "~a", "~0f", "-r", "-r1", "-r01", "_",
    ];
    prop::collection::vec(prop::sample::select(fragments), 1..8)
        .prop_map(|parts| parts.concat())
        .prop_filter("valid", |v| apk::validate(v).is_ok())
        .boxed()
}

fn versions(format: VersionFormat) -> BoxedStrategy<String> {
    match format {
        VersionFormat::Deb => deb_versions(),
        VersionFormat::Rpm => rpm_versions(),
        VersionFormat::Apk => apk_versions(),
        VersionFormat::Pacman => pacman_versions(),
    }
}

fn cmp(format: VersionFormat, a: &str, b: &str) -> Ordering {
    compare(format, a, b).unwrap()
}

fn key(format: VersionFormat, v: &str) -> Vec<u8> {
    sort_key(format, v).unwrap()
}

fn has_pkgrel(v: &str) -> bool {
    rpm::Evr::split(v).release.is_some()
}

/// The key order `compare` promises (see the module docs for pacman).
fn expected_key_order(format: VersionFormat, a: &str, b: &str) -> Ordering {
    let c = cmp(format, a, b);
    if format == VersionFormat::Pacman && c == Ordering::Equal && has_pkgrel(a) != has_pkgrel(b) {
        has_pkgrel(a).cmp(&has_pkgrel(b))
    } else {
        c
    }
}

/// Transitivity on all orderings of a triple.
fn assert_transitive(format: VersionFormat, t: [&str; 3]) -> Result<(), TestCaseError> {
    for (x, y, z) in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)] {
        let (a, b, c) = (t[x], t[y], t[z]);
        let (ab, bc, ac) = (cmp(format, a, b), cmp(format, b, c), cmp(format, a, c));
        if ab != Ordering::Greater && bc != Ordering::Greater {
            prop_assert_ne!(ac, Ordering::Greater, "{} <= {} <= {} but {} > {}", a, b, c, a, c);
        }
        if ab == Ordering::Equal && bc == Ordering::Equal {
            prop_assert_eq!(ac, Ordering::Equal, "{} = {} = {} but {} != {}", a, b, c, a, c);
        }
        if ab == Ordering::Less && bc == Ordering::Less {
            prop_assert_eq!(ac, Ordering::Less, "{} < {} < {} but not {} < {}", a, b, c, a, c);
        }
    }
    Ok(())
}

fn formats() -> impl Strategy<Value = VersionFormat> {
    prop::sample::select(VersionFormat::ALL.to_vec())
}

/// A format and two of its versions; the second is often derived from the
/// first so that near-equal pairs are common.
fn pair() -> impl Strategy<Value = (VersionFormat, String, String)> {
    formats().prop_flat_map(|f| {
        let v = versions(f);
        (Just(f), v.clone(), v)
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1500,
        // Do not write regression files into the source tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn reflexive((f, a, _b) in pair()) {
        prop_assert_eq!(cmp(f, &a, &a), Ordering::Equal);
        prop_assert_eq!(key(f, &a), key(f, &a));
    }

    #[test]
    fn antisymmetric((f, a, b) in pair()) {
        prop_assert_eq!(cmp(f, &a, &b), cmp(f, &b, &a).reverse(), "{}: {} vs {}", f, a, b);
    }

    #[test]
    fn key_order_equals_compare((f, a, b) in pair()) {
        let (ka, kb) = (key(f, &a), key(f, &b));
        prop_assert_eq!(ka.cmp(&kb), expected_key_order(f, &a, &b), "{}: {} vs {}", f, a, b);
        // Equal versions have identical keys (pacman: same pkgrel presence).
        if cmp(f, &a, &b) == Ordering::Equal
            && (f != VersionFormat::Pacman || has_pkgrel(&a) == has_pkgrel(&b))
        {
            prop_assert_eq!(ka, kb);
        }
    }

    #[test]
    fn key_order_with_near_equal_suffixes(
        (f, a) in formats().prop_flat_map(|f| (Just(f), versions(f))),
        suffix in prop::sample::select(vec![
            "", "~", "0", ".0", "a", ".a", "^", "^1", "~1", "_p1", "_rc1", "-r1", "-1", "-0", "+1", "..1",
        ]),
    ) {
        let b = format!("{a}{suffix}");
        if validate(f, &b).is_ok() {
            prop_assert_eq!(key(f, &a).cmp(&key(f, &b)), expected_key_order(f, &a, &b), "{}: {} vs {}", f, a, b);
            prop_assert_eq!(cmp(f, &a, &b), cmp(f, &b, &a).reverse());
        }
    }

    #[test]
    fn transitive(f in formats(), seed in any::<u64>()) {
        // Three versions from the same generator (for pacman: all with or
        // all without pkgrel).
        let strategy = if f == VersionFormat::Pacman {
            if seed % 2 == 0 { pacman_versions_with("") } else { pacman_versions_with("-[019a._]{0,3}[019a]") }
        } else {
            versions(f)
        };
        let mut runner = proptest::test_runner::TestRunner::new_with_rng(
            ProptestConfig::default(),
            proptest::test_runner::TestRng::from_seed(
                proptest::test_runner::RngAlgorithm::ChaCha,
                &[seed.to_le_bytes(), seed.to_be_bytes(), [7; 8], [9; 8]].concat(),
            ),
        );
        let mut draw = || strategy.new_tree(&mut runner).unwrap().current();
        let t = [draw(), draw(), draw()];
        assert_transitive(f, [&t[0], &t[1], &t[2]])?;
    }

    #[test]
    fn sorted_lists_are_consistent(
        (f, vs) in formats().prop_flat_map(|f| (Just(f), prop::collection::vec(versions(f), 2..24)))
    ) {
        // Sorting by key gives an order that compare agrees with pairwise.
        let mut sorted = vs.clone();
        sorted.sort_by_cached_key(|v| key(f, v));
        for i in 0..sorted.len() {
            for j in i + 1..sorted.len() {
                let c = cmp(f, &sorted[i], &sorted[j]);
                let pacman_exception = f == VersionFormat::Pacman
                    && has_pkgrel(&sorted[i]) != has_pkgrel(&sorted[j]);
                if !pacman_exception {
                    prop_assert_ne!(c, Ordering::Greater, "{}: {} sorted before {}", f, sorted[i], sorted[j]);
                }
            }
        }
    }

    #[test]
    fn never_panics_on_arbitrary_strings(s in any::<String>(), t in any::<String>()) {
        for f in VersionFormat::ALL {
            let valid = validate(f, &s).is_ok();
            prop_assert_eq!(sort_key(f, &s).is_ok(), valid);
            prop_assert_eq!(compare(f, &s, &s).is_ok(), valid);
            let _ = compare(f, &s, &t);
        }
    }

    #[test]
    fn never_panics_on_tricky_strings(s in "[0-9a-zA-Z:~^._+ -]{0,12}", t in "[0-9a-z:~^._+-]{0,12}") {
        for f in VersionFormat::ALL {
            let valid = validate(f, &s).is_ok();
            prop_assert_eq!(sort_key(f, &s).is_ok(), valid);
            if let (Ok(c), true) = (compare(f, &s, &t), valid) {
                prop_assert_eq!(c, cmp(f, &t, &s).reverse());
            }
        }
    }

    #[test]
    fn raw_comparators_never_panic(a in prop::collection::vec(any::<u8>(), 0..16),
                                   b in prop::collection::vec(any::<u8>(), 0..16)) {
        let _ = deb::verrevcmp(&a, &b);
        let _ = rpm::rpmvercmp(&a, &b);
        let _ = pacman::alpm_rpmvercmp(&a, &b);
        let _ = apk::compare_raw(&a, &b);
        prop_assert_eq!(rpm::rpmvercmp(&a, &b), rpm::rpmvercmp(&b, &a).reverse());
        prop_assert_eq!(deb::verrevcmp(&a, &b), deb::verrevcmp(&b, &a).reverse());
    }
}

/// The documented non-transitivity of pacman's missing-pkgrel rule.
#[test]
fn pacman_missing_pkgrel_is_not_transitive() {
    let f = VersionFormat::Pacman;
    assert_eq!(cmp(f, "1.0-2", "1.0"), Ordering::Equal);
    assert_eq!(cmp(f, "1.0", "1.0-1"), Ordering::Equal);
    assert_eq!(cmp(f, "1.0-1", "1.0-2"), Ordering::Less);
    // Keys give the total order 1.0 < 1.0-1 < 1.0-2.
    assert!(key(f, "1.0") < key(f, "1.0-1"));
    assert!(key(f, "1.0-1") < key(f, "1.0-2"));
}
