//! Debian versions, ordered exactly like dpkg.
//!
//! # Syntax
//!
//! `[epoch:]upstream_version[-debian_revision]`, split the way dpkg's
//! `parseversion()` (lib/dpkg/parsehelp.c) splits it: the epoch is everything
//! before the *first* `:`, the revision everything after the *last* `-`. A
//! missing epoch is `0`; a missing revision is the empty string, which
//! compares equal to `0` (so `1.0`, `1.0-0` and `0:1.0-0` are all equal).
//!
//! # Comparison
//!
//! `dpkg_version_compare()` (lib/dpkg/version.c): epochs numerically, then
//! upstream versions, then revisions, the latter two with `verrevcmp()`
//! ([`verrevcmp`] here). `verrevcmp` alternates between two phases until both
//! strings are exhausted:
//!
//! 1. the leading non-digit parts are compared character by character, where
//!    `~` sorts before everything (even before the end of the part, so
//!    `1.0~rc1 < 1.0`), then the end of the part, then letters (ASCII order),
//!    then all other characters (ASCII order, after all letters);
//! 2. the leading digit runs are compared as numbers of unlimited size
//!    (leading zeros ignored; an empty run counts as 0).
//!
//! # Validation
//!
//! We reject exactly what makes `dpkg --compare-versions` fail with exit code
//! 2 ("version has bad syntax" *errors*): an empty revision (`1.0-`), an empty
//! upstream version (`1:-1`), nothing after the colon (`1:`), and an epoch that
//! is empty, not a number, negative or above `INT_MAX` (2147483647). Like
//! dpkg's `strtol`, the epoch may carry a sign: `+1:1.0` is epoch 1 and
//! `-0:1.0` epoch 0.
//!
//! dpkg only *warns* (and then compares normally) when the upstream version
//! does not start with a digit or when a character outside dpkg's allowed set
//! appears (`1.0_1`). We accept those versions too, because
//! `dpkg --compare-versions` and apt do, and a patch manager has to order
//! whatever is installed; [`DebVersion::dpkg_warning`] reports dpkg's warning.
//!
//! Stricter than dpkg, in line with the crate-wide policy: the empty string
//! (dpkg treats it as "no version"), any whitespace (dpkg trims leading and
//! trailing blanks), control characters and non-ASCII bytes are rejected.
//!
//! # Sort key
//!
//! `epoch` (4 bytes, big-endian) ‖ key(upstream) ‖ key(revision), where a
//! `verrevcmp` key is the sequence of (non-digit part, number) pairs:
//! each non-digit character is mapped to one byte preserving dpkg's order
//! (`~` → `0x01`, letters → themselves, other characters → `0x80 | c`), the
//! end of the part is the byte `0x02`, and the number follows in the crate's
//! unlimited-length encoding. Trailing pairs equal to "nothing" (only possible
//! for an all-zero string such as `0`) are dropped, and the key ends with the
//! marker `02 00 02`, which sorts exactly like the implicit ("", 0) padding of
//! the shorter string in `verrevcmp` (after a `~`, before anything else).

use std::cmp::Ordering;

use crate::common::{check_chars, invalid, push_number};
use crate::{InvalidReason, VersionError, VersionFormat};

const FORMAT: VersionFormat = VersionFormat::Deb;

/// The largest epoch dpkg accepts (`INT_MAX`).
pub const MAX_EPOCH: u32 = i32::MAX as u32;

/// A parsed Debian version, borrowing from the input string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebVersion<'a> {
    /// The epoch (`0` when absent).
    pub epoch: u32,
    /// The upstream version (never empty).
    pub upstream: &'a str,
    /// The Debian revision (`""` when absent).
    pub revision: &'a str,
}

impl DebVersion<'_> {
    /// The warning dpkg prints for this version (and then ignores), if any,
    /// using dpkg's wording.
    pub fn dpkg_warning(&self) -> Option<&'static str> {
        if !self.upstream.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return Some("version number does not start with digit");
        }
        let ok = |c: u8, extra: &[u8]| c.is_ascii_alphanumeric() || extra.contains(&c);
        if !self.upstream.bytes().all(|c| ok(c, b".-+~:")) {
            return Some("invalid character in version number");
        }
        if !self.revision.bytes().all(|c| ok(c, b".+~")) {
            return Some("invalid character in revision number");
        }
        None
    }
}

/// Parses and validates a Debian version (see the module docs for the rules).
pub fn parse(v: &str) -> Result<DebVersion<'_>, VersionError> {
    check_chars(FORMAT, v)?;
    let err = |reason| invalid(FORMAT, v, reason);
    let (epoch, rest) = match v.find(':') {
        Some(colon) => {
            let epoch = parse_epoch(&v.as_bytes()[..colon]).map_err(err)?;
            let rest = &v[colon + 1..];
            if rest.is_empty() {
                return Err(err(InvalidReason::NothingAfterColon));
            }
            (epoch, rest)
        }
        None => (0, v),
    };
    let (upstream, revision) = match rest.rfind('-') {
        Some(hyphen) => {
            let revision = &rest[hyphen + 1..];
            if revision.is_empty() {
                return Err(err(InvalidReason::EmptyPart { part: "revision" }));
            }
            (&rest[..hyphen], revision)
        }
        None => (rest, ""),
    };
    if upstream.is_empty() {
        return Err(err(InvalidReason::EmptyPart { part: "upstream version" }));
    }
    Ok(DebVersion { epoch, upstream, revision })
}

/// Parses the epoch the way dpkg does with `strtol(…, 10)`: an optional sign,
/// then digits that must reach the colon.
fn parse_epoch(s: &[u8]) -> Result<u32, InvalidReason> {
    let (negative, digits) = match s.first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if s.is_empty() {
        return Err(InvalidReason::EpochEmpty);
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(InvalidReason::EpochNotNumber);
    }
    let digits = crate::common::strip_zeros(digits);
    if digits.is_empty() {
        return Ok(0); // "-0", "+00", "000"
    }
    if negative {
        return Err(InvalidReason::EpochNegative);
    }
    let too_big = InvalidReason::EpochTooBig { max: MAX_EPOCH };
    if digits.len() > 10 {
        return Err(too_big);
    }
    let value = digits.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    u32::try_from(value).ok().filter(|&e| e <= MAX_EPOCH).ok_or(too_big)
}

/// Checks that `v` is a valid Debian version.
pub fn validate(v: &str) -> Result<(), VersionError> {
    parse(v).map(|_| ())
}

/// Compares two Debian versions like `dpkg --compare-versions`.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    let (a, b) = (parse(a)?, parse(b)?);
    Ok(compare_parsed(&a, &b))
}

/// Compares two already parsed versions (dpkg's `dpkg_version_compare()`).
pub fn compare_parsed(a: &DebVersion<'_>, b: &DebVersion<'_>) -> Ordering {
    a.epoch
        .cmp(&b.epoch)
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

/// dpkg's ordering weight of a non-digit character (`order()` in dpkg).
///
/// Bytes >= 0x80 get the weight they have on amd64, where `char` is signed
/// (`c + 256` with negative `c`); the validated API never passes them. NUL,
/// which a C string cannot contain, is treated like punctuation.
fn order(c: u8) -> i32 {
    match c {
        b'~' => -1,
        c if c.is_ascii_alphabetic() => i32::from(c),
        c if c >= 0x80 => i32::from(c),
        c => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp()`: compares two upstream versions or two revisions.
///
/// Works on arbitrary bytes and never panics; only the result's sign matters
/// (dpkg returns a difference of weights).
pub fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let is_digit_at = |s: &[u8], i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        // Phase 1: non-digit prefixes, character by character. The end of the
        // prefix (a digit or the end of the string) has weight 0.
        loop {
            let wa = a.get(i).filter(|c| !c.is_ascii_digit()).map(|&c| order(c));
            let wb = b.get(j).filter(|c| !c.is_ascii_digit()).map(|&c| order(c));
            if wa.is_none() && wb.is_none() {
                break;
            }
            let (wa, wb) = (wa.unwrap_or(0), wb.unwrap_or(0));
            if wa != wb {
                return wa.cmp(&wb);
            }
            // Equal non-zero weights: both sides had a character.
            i += 1;
            j += 1;
        }
        // Phase 2: digit runs as numbers of unlimited size.
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while is_digit_at(a, i) && is_digit_at(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if is_digit_at(a, i) {
            return Ordering::Greater;
        }
        if is_digit_at(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// Returns the order-preserving sort key of a Debian version (layout in the
/// module docs).
pub fn sort_key(v: &str) -> Result<Vec<u8>, VersionError> {
    let p = parse(v)?;
    let mut out = Vec::with_capacity(8 + 2 * v.len());
    out.extend_from_slice(&p.epoch.to_be_bytes());
    push_verrev_key(&mut out, p.upstream.as_bytes());
    push_verrev_key(&mut out, p.revision.as_bytes());
    Ok(out)
}

/// End of a non-digit part (dpkg weight 0).
const PART_END: u8 = 0x02;
/// End of a whole `verrevcmp` key: compares like the ("", 0) padding pairs.
const KEY_END: [u8; 3] = [PART_END, 0x00, PART_END];

/// Key byte of a (printable ASCII, non-digit) character, preserving dpkg's
/// order: `~` < end of part < letters < everything else.
fn key_byte(c: u8) -> u8 {
    match c {
        b'~' => 0x01,
        c if c.is_ascii_alphabetic() => c,
        c => 0x80 | c,
    }
}

fn push_verrev_key(out: &mut Vec<u8>, s: &[u8]) {
    // A string of zeros (or nothing) is all padding: only the end marker.
    if s.iter().all(|&c| c == b'0') {
        out.extend_from_slice(&KEY_END);
        return;
    }
    let mut i = 0;
    while i < s.len() {
        let start = i;
        while i < s.len() && !s[i].is_ascii_digit() {
            i += 1;
        }
        out.extend(s[start..i].iter().map(|&c| key_byte(c)));
        out.push(PART_END);
        let start = i;
        while i < s.len() && s[i].is_ascii_digit() {
            i += 1;
        }
        push_number(out, &s[start..i]);
    }
    out.extend_from_slice(&KEY_END);
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

    /// Hand-picked cases; every expectation was checked with
    /// `dpkg --compare-versions` (dpkg 1.21).
    const CASES: &[(&str, &str, Ordering)] = &[
        ("1.0", "1.0", Equal),
        ("1.0", "1.0-0", Equal),
        ("1.0", "0:1.0-0", Equal),
        ("1.0", "1.00", Equal),
        ("01", "1", Equal),
        ("1.0", "1.0.0", Less),
        ("1.0~rc1", "1.0", Less),
        ("1.0~rc1", "1.0~rc2", Less),
        ("1.0~~", "1.0~", Less),
        ("1.0~", "1.0", Less),
        ("1.0", "1.0a", Less),
        ("1.0a", "1.0+", Less),
        ("1.0a", "1.0.", Less),
        ("1.0+", "1.0.", Less),
        ("1.0rc1", "1.0", Greater),
        ("1.0-1", "1.0", Greater),
        ("1.0.a", "1.0a", Greater),
        ("1.0_1", "1.0.1", Greater),
        ("1:0.1", "2.0", Greater),
        ("0:2.0", "2.0", Equal),
        ("+1:1.0", "1:1.0", Equal),
        ("-0:1.0", "1.0", Equal),
        ("1.0-1", "1.0-1.1", Less),
        ("1.0-1~bpo1", "1.0-1", Less),
        ("1.0-1+deb12u1", "1.0-1", Greater),
        ("1.0-1ubuntu1", "1.0-1", Greater),
        ("2.30-1", "2.4-1", Greater),
        ("1-2-3", "1-2", Greater),   // upstream "1-2" rev "3" vs upstream "1" rev "2"
        ("1:2:3", "1:2.3", Greater), // ':' sorts after '.'
        ("1.2.3", "1.2.3.", Less),
        ("99999999999999999999999", "99999999999999999999998", Greater),
        ("1.000000000000000000001", "1.1", Equal),
        ("a", "1", Greater), // dpkg warns, then compares: letters > end-of-part
        ("Z", "a", Less),
        ("0", "0~", Greater),
        ("0", "0a", Less),
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
    fn equal_versions_have_equal_keys() {
        assert_eq!(key("1.0"), key("0:1.0-0"));
        assert_eq!(key("01"), key("1"));
        assert_eq!(key("1.0"), key("00:1.0-00"));
        assert_eq!(key("1a"), key("1a0"));
    }

    #[test]
    fn validation_matches_dpkg_errors() {
        let reason = |v: &str| match parse(v) {
            Err(VersionError::Invalid { reason, .. }) => reason,
            other => panic!("{v}: expected an error, got {other:?}"),
        };
        assert_eq!(reason(""), InvalidReason::Empty);
        assert_eq!(reason("1 0"), InvalidReason::Whitespace);
        assert_eq!(reason(" 1.0"), InvalidReason::Whitespace);
        assert_eq!(reason("1.0\u{7f}"), InvalidReason::Control);
        assert_eq!(reason("1.0é"), InvalidReason::NonAscii);
        assert_eq!(reason(":1.0"), InvalidReason::EpochEmpty);
        assert_eq!(reason("a:1.0"), InvalidReason::EpochNotNumber);
        assert_eq!(reason("1.0:1"), InvalidReason::EpochNotNumber);
        assert_eq!(reason("+:1"), InvalidReason::EpochNotNumber);
        assert_eq!(reason("-1:1.0"), InvalidReason::EpochNegative);
        assert_eq!(reason("2147483648:1"), InvalidReason::EpochTooBig { max: MAX_EPOCH });
        assert_eq!(reason("1:"), InvalidReason::NothingAfterColon);
        assert_eq!(reason("1.0-"), InvalidReason::EmptyPart { part: "revision" });
        assert_eq!(reason("1:-1"), InvalidReason::EmptyPart { part: "upstream version" });
        assert_eq!(parse("2147483647:1").unwrap().epoch, MAX_EPOCH);
        assert_eq!(parse("0000000000002:1").unwrap().epoch, 2);
    }

    #[test]
    fn warnings_are_accepted_and_reported() {
        assert_eq!(parse("a1").unwrap().dpkg_warning(), Some("version number does not start with digit"));
        assert_eq!(parse("1.0_1").unwrap().dpkg_warning(), Some("invalid character in version number"));
        assert_eq!(parse("1.0-1_1").unwrap().dpkg_warning(), Some("invalid character in revision number"));
        assert_eq!(parse("1:1.0+dfsg-1~bpo1").unwrap().dpkg_warning(), None);
    }

    #[test]
    fn parse_splits_like_dpkg() {
        let p = parse("3:1.2-3-4").unwrap();
        assert_eq!((p.epoch, p.upstream, p.revision), (3, "1.2-3", "4"));
        let p = parse("1:2:3").unwrap();
        assert_eq!((p.epoch, p.upstream, p.revision), (1, "2:3", ""));
    }

    #[test]
    fn verrevcmp_never_panics_on_odd_bytes() {
        for (a, b) in [(&b""[..], &b""[..]), (b"\0", b""), (b"\xff", b"z"), (b"0\x00", b"0"), (b"~\0~", b"~")] {
            let _ = verrevcmp(a, b);
        }
        assert_eq!(verrevcmp(b"\xc3", b"z"), Greater); // amd64 dpkg
        assert_eq!(verrevcmp(b"\xc3", b"."), Less);
    }
}
