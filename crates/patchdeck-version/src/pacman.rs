//! Arch Linux (pacman / libalpm) versions, ordered exactly like
//! `alpm_pkg_vercmp()` and the `vercmp` tool.
//!
//! # Syntax
//!
//! `[epoch:]pkgver[-pkgrel]`, split by libalpm's `parseEVR()` (a copy of
//! rpm's, see [`crate::rpm::Evr`]); a missing or empty epoch is `0`.
//!
//! # Comparison
//!
//! `alpm_pkg_vercmp()` (lib/libalpm/version.c) compares epochs, then pkgvers,
//! then pkgrels, each with libalpm's own `rpmvercmp()` ([`alpm_rpmvercmp`]
//! here), **but compares pkgrels only when both versions have one**: `1.0`
//! equals both `1.0-1` and `1.0-2`.
//!
//! libalpm's `rpmvercmp` is a fork of an old rpm one and differs from rpm 4.18:
//!
//! * there is no `~` / `^` rule: they are ordinary separators;
//! * the *number* of separator characters before a segment matters, more is
//!   newer (`1.0.a` > `1.0a`, `1..0` > `1.0`), though which characters they
//!   are does not (`1.0_1` == `1.0.1`);
//! * when one string runs out, an alphabetic remainder that starts right
//!   after the previous segment is *older* (`1.0a` < `1.0`, `1.0rc1` < `1.0`),
//!   while a remainder starting with a separator or a digit is newer
//!   (`1.0~rc1` > `1.0`, `1.0.a` > `1.0`).
//!
//! Modelled as a sequence of "slots" (what follows the previous segment),
//! the order at each slot is: letter right after the previous segment < end
//! of string < digit right after the previous segment < one separator then
//! letters < one separator then digits < two separators then letters < ….
//!
//! # Validation
//!
//! Beyond the crate-wide rules, we reject an empty pkgver (`1:`, `-1`), an
//! empty pkgrel (`1.0-`) and a pkgver or pkgrel that ends with a separator
//! (`1.0.`, `1.0-1_`). makepkg never produces these, and for trailing
//! separators `alpm_pkg_vercmp` is not even transitive: `vercmp` answers
//! `1. < 1.1`, `1.1 < 1..a` and `1..a < 1.`. Every other string is accepted,
//! and for accepted versions the order above is a total order.
//!
//! # The missing-pkgrel rule and sort keys
//!
//! Because a missing pkgrel matches any pkgrel, [`compare`] is not transitive
//! across versions with and without pkgrel (`1.0-1` = `1.0` = `1.0-2`, yet
//! `1.0-1` < `1.0-2`), and no byte key can reproduce it. [`sort_key`] orders
//! by (epoch, pkgver, pkgrel) and treats a **missing pkgrel as lower than any
//! pkgrel**. So key order equals [`compare`] order whenever both versions
//! have a pkgrel, or both lack one, or their epoch or pkgver differ; the
//! only disagreement is epoch+pkgver equal with exactly one pkgrel missing,
//! where [`compare`] says `Equal` and the keys say "without pkgrel first".
//! For a range query this means `key(v) < key("1.0")` selects exactly the
//! versions older than `1.0` with any pkgrel, and `key(v) >= key("1.0")`
//! includes every `1.0-N` (which pacman considers equal to `1.0`).
//!
//! # Sort key
//!
//! key(epoch as unlimited-size number) ‖ key(pkgver) ‖ pkgrel, where the
//! pkgrel is `0x00` when absent or `0x01` followed by its key. A
//! pkgver/pkgrel key is the slot sequence: letters right after the previous
//! segment → `0x01`; end → `0x02`; digits right after the previous segment →
//! `0x03`; `n >= 1` separators → `0x04`, the length-encoded `n`, then `0x01`
//! (letters) or `0x02` (digits). Letters are followed by their bytes and
//! `0x00`, digits by the number.

use std::cmp::Ordering;

use crate::common::{check_chars, cmp_digit_runs, invalid, push_len, push_number};
use crate::rpm::Evr;
use crate::{InvalidReason, VersionError, VersionFormat};

const FORMAT: VersionFormat = VersionFormat::Pacman;

/// Checks the pacman-specific rules of one part (pkgver or pkgrel).
fn check_part(v: &str, part_name: &'static str, part: &str) -> Result<(), VersionError> {
    match part.as_bytes().last() {
        None => Err(invalid(FORMAT, v, InvalidReason::EmptyPart { part: part_name })),
        Some(&c) if !c.is_ascii_alphanumeric() => {
            Err(invalid(FORMAT, v, InvalidReason::TrailingSeparator { part: part_name, sep: char::from(c) }))
        }
        Some(_) => Ok(()),
    }
}

/// Validates and splits a pacman version.
pub fn parse(v: &str) -> Result<Evr<'_>, VersionError> {
    check_chars(FORMAT, v)?;
    let evr = Evr::split(v);
    check_part(v, "pkgver", evr.version)?;
    if let Some(rel) = evr.release {
        check_part(v, "pkgrel", rel)?;
    }
    Ok(evr)
}

/// Checks that `v` is a valid pacman version.
pub fn validate(v: &str) -> Result<(), VersionError> {
    parse(v).map(|_| ())
}

/// Compares two pacman versions like `alpm_pkg_vercmp()` / `vercmp`,
/// including "a missing pkgrel equals any pkgrel".
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    let (ea, eb) = (parse(a)?, parse(b)?);
    if a == b {
        return Ok(Ordering::Equal);
    }
    Ok(compare_evr(&ea, &eb))
}

/// `alpm_pkg_vercmp()` on split versions.
pub fn compare_evr(a: &Evr<'_>, b: &Evr<'_>) -> Ordering {
    alpm_rpmvercmp(a.epoch_or_zero().as_bytes(), b.epoch_or_zero().as_bytes())
        .then_with(|| alpm_rpmvercmp(a.version.as_bytes(), b.version.as_bytes()))
        .then_with(|| match (a.release, b.release) {
            (Some(ra), Some(rb)) => alpm_rpmvercmp(ra.as_bytes(), rb.as_bytes()),
            _ => Ordering::Equal,
        })
}

/// libalpm's `rpmvercmp()`: compares two pkgvers (or pkgrels, or epochs).
///
/// Works on arbitrary bytes (anything but ASCII letters and digits is a
/// separator, as with `isalnum` in the C locale) and never panics. Not
/// transitive for strings ending in a separator (see the module docs).
pub fn alpm_rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    // `one`/`two` walk the strings; `prev1`/`prev2` mark the end of the
    // previous segment, so `one - prev1` is the separator length.
    let (mut one, mut two) = (0, 0);
    let (mut prev1, mut prev2) = (0, 0);
    while one < a.len() && two < b.len() {
        while one < a.len() && !a[one].is_ascii_alphanumeric() {
            one += 1;
        }
        while two < b.len() && !b[two].is_ascii_alphanumeric() {
            two += 1;
        }
        if one == a.len() || two == b.len() {
            break;
        }
        // Different separator lengths: the longer one is newer.
        let (sep1, sep2) = (one - prev1, two - prev2);
        if sep1 != sep2 {
            return sep1.cmp(&sep2);
        }
        // The segment type is taken from `a`; `b` must have the same type.
        let is_num = a[one].is_ascii_digit();
        let same_kind = |c: &u8| {
            if is_num {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let end1 = one + a[one..].iter().take_while(|c| same_kind(c)).count();
        let end2 = two + b[two..].iter().take_while(|c| same_kind(c)).count();
        if end2 == two {
            // Numeric segments are newer than alphabetic ones.
            return if is_num { Ordering::Greater } else { Ordering::Less };
        }
        let ord = if is_num { cmp_digit_runs(&a[one..end1], &b[two..end2]) } else { a[one..end1].cmp(&b[two..end2]) };
        if ord != Ordering::Equal {
            return ord;
        }
        (one, two) = (end1, end2);
        (prev1, prev2) = (end1, end2);
    }
    if one == a.len() && two == b.len() {
        return Ordering::Equal;
    }
    // "The final showdown": a remainder that starts with a letter loses
    // against the end of the other string; anything else wins.
    let (c1, c2) = (a.get(one), b.get(two));
    let is_alpha = |c: Option<&u8>| c.is_some_and(u8::is_ascii_alphabetic);
    if (c1.is_none() && !is_alpha(c2)) || is_alpha(c1) {
        Ordering::Less
    } else {
        Ordering::Greater
    }
}

/// Returns the order-preserving sort key of a pacman version (layout and the
/// missing-pkgrel caveat in the module docs).
pub fn sort_key(v: &str) -> Result<Vec<u8>, VersionError> {
    let evr = parse(v)?;
    let mut out = Vec::with_capacity(8 + 2 * v.len());
    push_number(&mut out, evr.epoch_or_zero().as_bytes());
    push_slots_key(&mut out, evr.version.as_bytes());
    match evr.release {
        None => out.push(0x00),
        Some(r) => {
            out.push(0x01);
            push_slots_key(&mut out, r.as_bytes());
        }
    }
    Ok(out)
}

/// Appends the slot-sequence key of a validated pkgver or pkgrel (non-empty,
/// ending in a letter or digit).
fn push_slots_key(out: &mut Vec<u8>, s: &[u8]) {
    let mut i = 0;
    loop {
        let seg_start = i + s[i..].iter().take_while(|c| !c.is_ascii_alphanumeric()).count();
        let Some(&c) = s.get(seg_start) else {
            // Validation guarantees no trailing separators, so this is a
            // plain end of string.
            out.push(0x02);
            return;
        };
        let is_num = c.is_ascii_digit();
        let seps = seg_start - i;
        match (seps, is_num) {
            (0, false) => out.push(0x01),
            (0, true) => out.push(0x03),
            (n, _) => {
                out.push(0x04);
                push_len(out, n);
                out.push(if is_num { 0x02 } else { 0x01 });
            }
        }
        let seg_len = s[seg_start..]
            .iter()
            .take_while(|c| if is_num { c.is_ascii_digit() } else { c.is_ascii_alphabetic() })
            .count();
        let seg = &s[seg_start..seg_start + seg_len];
        if is_num {
            push_number(out, seg);
        } else {
            out.extend_from_slice(seg);
            out.push(0x00);
        }
        i = seg_start + seg_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    fn cmp(a: &str, b: &str) -> Ordering {
        compare(a, b).unwrap_or_else(|e| panic!("{e}"))
    }

    fn key(v: &str) -> Vec<u8> {
        sort_key(v).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Hand-picked cases; every expectation was checked with pacman's
    /// `vercmp`.
    const CASES: &[(&str, &str, Ordering)] = &[
        ("1.0", "1.0", Equal),
        ("01", "1", Equal),
        ("1.0_1", "1.0.1", Equal),
        ("1+1", "1.1", Equal),
        ("1.0", "1.0a", Greater),
        ("1.0a", "1.0b", Less),
        ("1.0rc1", "1.0", Less),
        ("1.0~rc1", "1.0", Greater),
        ("1.0.a", "1.0a", Greater),
        ("1.0.a", "1.0", Greater),
        ("1.0", "1.0.0", Less),
        ("1..0", "1.0", Greater),
        ("1..a", "1.1", Greater),
        ("1a1", "1a", Greater),
        ("1a", "1", Less),
        ("_1", "1", Greater),
        ("a", "1", Less),
        ("1.0", "1.0.1", Less),
        ("1.10", "1.9", Greater),
        ("99999999999999999999999", "99999999999999999999998", Greater),
        ("1:1.0", "2.0", Greater),
        (":1.0", "0:1.0", Equal),
        ("a:1", "1", Less), // no epoch: pkgver "a:1"
        ("1.0-2", "1.0-1", Greater),
        ("1.0-1.a", "1.0-1", Greater),
        ("1.0-10", "1.0-9", Greater),
        ("1.0-1.1", "1.0-1", Greater),
    ];

    #[test]
    fn hand_picked_cases() {
        for &(a, b, want) in CASES {
            assert_eq!(cmp(a, b), want, "{a} vs {b}");
            assert_eq!(cmp(b, a), want.reverse(), "{b} vs {a}");
            assert_eq!(key(a).cmp(&key(b)), want, "keys of {a} vs {b}");
        }
    }

    #[test]
    fn missing_pkgrel_matches_any_pkgrel() {
        assert_eq!(cmp("1.0-1", "1.0"), Equal);
        assert_eq!(cmp("1.0", "1.0-2"), Equal);
        assert_eq!(cmp("1.0-1", "1.0-2"), Less);
        // Keys: a missing pkgrel is lower than any pkgrel.
        assert!(key("1.0") < key("1.0-1"));
        assert!(key("1.0-1") < key("1.0-2"));
        // ... but never crosses a pkgver boundary.
        assert!(key("0.9-99") < key("1.0"));
        assert!(key("1.0-99") < key("1.0.1"));
        assert!(key("1.0-99") < key("1.0.1-0"));
    }

    #[test]
    fn validation() {
        let reason = |v: &str| match parse(v) {
            Err(VersionError::Invalid { reason, .. }) => reason,
            other => panic!("{v}: expected an error, got {other:?}"),
        };
        assert_eq!(reason(""), InvalidReason::Empty);
        assert_eq!(reason("1.0 "), InvalidReason::Whitespace);
        assert_eq!(reason("1:"), InvalidReason::EmptyPart { part: "pkgver" });
        assert_eq!(reason("-1"), InvalidReason::EmptyPart { part: "pkgver" });
        assert_eq!(reason("1.0-"), InvalidReason::EmptyPart { part: "pkgrel" });
        assert_eq!(reason("1.0."), InvalidReason::TrailingSeparator { part: "pkgver", sep: '.' });
        assert_eq!(reason("1.0-1_"), InvalidReason::TrailingSeparator { part: "pkgrel", sep: '_' });
        assert!(validate("1:2.3.4+r45+gdeadbeef-2").is_ok());
    }

    #[test]
    fn trailing_separators_are_not_transitive_in_alpm() {
        // Why they are rejected: alpm's answers form a cycle.
        assert_eq!(alpm_rpmvercmp(b"1.", b"1.1"), Less);
        assert_eq!(alpm_rpmvercmp(b"1.1", b"1..a"), Less);
        assert_eq!(alpm_rpmvercmp(b"1..a", b"1."), Less);
    }
}
