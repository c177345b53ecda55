//! RPM versions, ordered exactly like rpm 4.18.
//!
//! # Syntax
//!
//! A full EVR string `[epoch:]version[-release]`, split the way rpm's
//! `parseEVR()` (rpmio/rpmver.c) splits it: the epoch is a (possibly empty)
//! run of leading digits followed by `:` (an empty epoch means `0`); the
//! release is everything after the *last* `-`. Without a leading `digits:`
//! there is no epoch, which compares like epoch `0`.
//!
//! # Comparison
//!
//! `rpmverCmp()` (what the Lua `rpm.vercmp(a, b)` of rpm 4.18 uses): epochs,
//! then versions, then releases, each with `rpmvercmp()` ([`rpmvercmp`] here).
//! A *missing* release sorts before *any* present release, even an empty or
//! tilde one: `rpm.vercmp("1.0", "1.0-1") == -1` and
//! `rpm.vercmp("1.0", "1.0-~") == -1`. (This differs from dependency
//! matching, `rpmverOverlap()`, where a missing release matches any release;
//! ordering installed packages is what Patchdeck needs, and that is total.)
//!
//! `rpmvercmp` splits both strings into segments and compares them pairwise:
//!
//! * characters other than ASCII letters, digits, `~` and `^` are separators
//!   and only delimit segments (`1.0a` == `1.0.a` == `1_0_a`);
//! * a segment is a maximal run of digits or a maximal run of letters;
//!   numeric segments compare as numbers of unlimited size (leading zeros
//!   stripped, longer wins), alphabetic ones with `strcmp`, and a numeric
//!   segment is newer than an alphabetic one;
//! * `~` sorts before everything, including the end of the string
//!   (`1.0~rc1 < 1.0`);
//! * `^` sorts after the end of the string but before any other segment
//!   (`1.0 < 1.0^git1 < 1.0.1`);
//! * when one string runs out, the other one is newer if it still has a
//!   segment.
//!
//! Seen as a token stream ending in an explicit end token, this is a plain
//! lexicographic comparison with `~` < end < `^` < letters < digits.
//!
//! # Validation
//!
//! `rpm.vercmp` accepts any non-empty string, so only the crate-wide rules
//! apply (non-empty; printable ASCII without whitespace).
//!
//! # Sort key
//!
//! key(epoch) ‖ key(version) ‖ release, where the epoch is an unlimited-size
//! number (`0` when absent), and the release is `0x00` when absent or `0x01`
//! followed by its key when present. A version/release key is the token
//! stream: `~` → `0x01`, end → `0x02`, `^` → `0x03`, an alphabetic segment →
//! `0x04`, its letters, `0x00`; a numeric segment → `0x05` and the number.

use std::cmp::Ordering;

use crate::common::{check_chars, cmp_digit_runs, push_number};
use crate::{VersionError, VersionFormat};

const FORMAT: VersionFormat = VersionFormat::Rpm;

/// An `[epoch:]version[-release]` string split like rpm's `parseEVR()`;
/// also used for pacman, whose `parseEVR()` is a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evr<'a> {
    /// The epoch digits (`Some("0")` for an empty epoch such as `:1.0`), or
    /// `None` when there is no epoch.
    pub epoch: Option<&'a str>,
    /// The version (may be empty, e.g. for `1:`).
    pub version: &'a str,
    /// The release after the last `-`, if there is a `-`.
    pub release: Option<&'a str>,
}

impl<'a> Evr<'a> {
    /// Splits an EVR string. Never fails: every string has a split.
    pub fn split(s: &'a str) -> Evr<'a> {
        let bytes = s.as_bytes();
        let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        // The release separator is searched after the epoch digits only
        // (they cannot contain a '-' anyway).
        let hyphen = s[digits..].rfind('-').map(|h| h + digits);
        let (epoch, version_start) = if bytes.get(digits) == Some(&b':') {
            (Some(if digits == 0 { "0" } else { &s[..digits] }), digits + 1)
        } else {
            (None, 0)
        };
        match hyphen {
            // With an epoch the hyphen is after the ':', so `h >= version_start`.
            Some(h) => Evr { epoch, version: &s[version_start..h], release: Some(&s[h + 1..]) },
            None => Evr { epoch, version: &s[version_start..], release: None },
        }
    }

    /// The epoch digits, `"0"` when absent.
    pub fn epoch_or_zero(&self) -> &'a str {
        self.epoch.unwrap_or("0")
    }
}

/// Checks that `v` is a valid RPM EVR string.
pub fn validate(v: &str) -> Result<(), VersionError> {
    check_chars(FORMAT, v)
}

/// Compares two EVR strings like rpm 4.18's `rpm.vercmp()` / `rpmverCmp()`.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    validate(a)?;
    validate(b)?;
    Ok(compare_evr(&Evr::split(a), &Evr::split(b)))
}

/// rpm's `rpmverCmp()` on split EVRs: epoch, version, then release, where a
/// missing release sorts before any present one.
pub fn compare_evr(a: &Evr<'_>, b: &Evr<'_>) -> Ordering {
    // Epochs are digit strings, for which rpmvercmp is numeric comparison.
    cmp_digit_runs(a.epoch_or_zero().as_bytes(), b.epoch_or_zero().as_bytes())
        .then_with(|| rpmvercmp(a.version.as_bytes(), b.version.as_bytes()))
        .then_with(|| match (a.release, b.release) {
            (Some(ra), Some(rb)) => rpmvercmp(ra.as_bytes(), rb.as_bytes()),
            (ra, rb) => ra.is_some().cmp(&rb.is_some()),
        })
}

/// One token of rpmvercmp's view of a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Tilde,
    End,
    Caret,
    Alpha(&'a [u8]),
    Num(&'a [u8]),
}

/// Splits a string into rpmvercmp tokens, skipping separators; yields
/// [`Token::End`] forever once the string is exhausted.
#[derive(Debug)]
struct Tokens<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a [u8]) -> Self {
        Tokens { s, i: 0 }
    }

    fn next_token(&mut self) -> Token<'a> {
        let s = self.s;
        while self.i < s.len() && !is_token_char(s[self.i]) {
            self.i += 1;
        }
        let Some(&c) = s.get(self.i) else {
            return Token::End;
        };
        let start = self.i;
        self.i += 1;
        match c {
            b'~' => Token::Tilde,
            b'^' => Token::Caret,
            c if c.is_ascii_digit() => {
                while self.i < s.len() && s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                Token::Num(&s[start..self.i])
            }
            _ => {
                while self.i < s.len() && s[self.i].is_ascii_alphabetic() {
                    self.i += 1;
                }
                Token::Alpha(&s[start..self.i])
            }
        }
    }
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'~' || c == b'^'
}

fn rank(t: &Token<'_>) -> u8 {
    match t {
        Token::Tilde => 1,
        Token::End => 2,
        Token::Caret => 3,
        Token::Alpha(_) => 4,
        Token::Num(_) => 5,
    }
}

/// rpm's `rpmvercmp()`: compares two version (or release) strings.
///
/// Works on arbitrary bytes (non-ASCII bytes are separators, as with rpm's
/// locale-independent `risalnum`) and never panics.
pub fn rpmvercmp(a: &[u8], b: &[u8]) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut ta, mut tb) = (Tokens::new(a), Tokens::new(b));
    loop {
        let (x, y) = (ta.next_token(), tb.next_token());
        let ord = match (x, y) {
            (Token::End, Token::End) => return Ordering::Equal,
            (Token::Alpha(p), Token::Alpha(q)) => p.cmp(q),
            (Token::Num(p), Token::Num(q)) => cmp_digit_runs(p, q),
            (x, y) => rank(&x).cmp(&rank(&y)),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
}

/// Returns the order-preserving sort key of an RPM EVR string (layout in the
/// module docs).
pub fn sort_key(v: &str) -> Result<Vec<u8>, VersionError> {
    validate(v)?;
    let evr = Evr::split(v);
    let mut out = Vec::with_capacity(8 + 2 * v.len());
    push_number(&mut out, evr.epoch_or_zero().as_bytes());
    push_vercmp_key(&mut out, evr.version.as_bytes());
    match evr.release {
        None => out.push(0x00),
        Some(r) => {
            out.push(0x01);
            push_vercmp_key(&mut out, r.as_bytes());
        }
    }
    Ok(out)
}

/// Appends the key of one rpmvercmp string (token stream ending in End).
fn push_vercmp_key(out: &mut Vec<u8>, s: &[u8]) {
    let mut tokens = Tokens::new(s);
    loop {
        let t = tokens.next_token();
        out.push(rank(&t));
        match t {
            Token::End => return,
            Token::Tilde | Token::Caret => {}
            Token::Alpha(letters) => {
                out.extend_from_slice(letters);
                out.push(0x00);
            }
            Token::Num(digits) => push_number(out, digits),
        }
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

    /// Hand-picked cases; every expectation was checked with rpm 4.18's
    /// `rpm.vercmp`.
    const CASES: &[(&str, &str, Ordering)] = &[
        ("1.0", "1.0", Equal),
        ("1.0", "1.0.", Equal),
        ("1.0a", "1.0.a", Equal),
        ("1_0", "1.0", Equal),
        ("01", "1", Equal),
        ("1.0", "1.0a", Less),
        ("1.0", "1.0.0", Less),
        ("1.0a", "1.0.1", Less),
        ("1.0~rc1", "1.0", Less),
        ("1.0~rc1", "1.0~rc2", Less),
        ("1.0~~", "1.0~", Less),
        ("1.0^", "1.0", Greater),
        ("1.0^git1", "1.0", Greater),
        ("1.0^git1", "1.0.1", Less),
        ("1.0^git1", "1.0~rc1", Greater),
        ("1.0^1", "1.0^a", Greater),
        ("1.0rc1", "1.0", Greater),
        ("a", "b", Less),
        ("abc", "ab", Greater),
        ("ab1", "abc", Less),
        ("Z", "a", Less),
        ("99999999999999999999999", "99999999999999999999998", Greater),
        ("1.0-1", "1.0", Greater),
        ("1.0", "1.0-~", Less),
        ("1.0-", "1.0", Greater),
        ("1.0-", "1.0-0", Less),
        ("1:1", "2", Greater),
        (":1", "0:1", Equal),
        ("0:1.0", "1.0", Equal),
        ("00:1", "0:1", Equal),
        ("1:", "0:", Greater),
        ("a:1", "1", Less), // no epoch: version "a:1"
        ("1:2:3", "1:2.3", Equal),
        ("1.0-1-2", "1.0-1.2", Greater),
        ("-1", "0-1", Less),
        ("1.0-1.el9", "1.0-1.el9_2", Less),
        ("2.02-150.fc38", "2.02-99.fc38", Greater),
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
    fn split_like_rpm() {
        let e = Evr::split("2:1.0-3-4");
        assert_eq!(e.epoch, Some("2"));
        assert_eq!((e.version, e.release), ("1.0-3", Some("4")));
        let e = Evr::split(":5");
        assert_eq!((e.epoch, e.version, e.release), (Some("0"), "5", None));
        let e = Evr::split("12-3");
        assert_eq!((e.epoch, e.version, e.release), (None, "12", Some("3")));
        let e = Evr::split("1.0-1:2");
        assert_eq!((e.epoch, e.version, e.release), (None, "1.0", Some("1:2")));
    }

    #[test]
    fn validation() {
        assert!(validate("").is_err());
        assert!(validate("1 0").is_err());
        assert!(validate("1.0\t").is_err());
        assert!(validate("1.0-1.el9").is_ok());
        assert!(validate("-").is_ok());
    }
}
