//! Alpine (apk-tools) versions, ordered exactly like `apk_version_compare()`
//! of apk-tools 3 (src/version.c).
//!
//! # Syntax
//!
//! `digits{.digits}[letter]{_suffix[digits]}[~hash][-rdigits]`, e.g.
//! `1.2.3b_rc2_p1~1a2b3c-r4`:
//!
//! * a version starts with digits, followed by any number of `.digits`;
//! * then at most one lowercase letter;
//! * then any number of suffixes, each `_` + one of `alpha`, `beta`, `pre`,
//!   `rc` (pre-releases: older than the plain version) or `cvs`, `svn`,
//!   `git`, `hg`, `p` (post-releases: newer), each optionally followed by a
//!   number;
//! * then optionally `~` + lowercase hex digits (a commit hash);
//! * then optionally the package revision `-r` + digits.
//!
//! Anything else is invalid, and every function here returns an error for it
//! (apk itself compares invalid versions up to the first bad token, which is
//! what [`compare_raw`] reproduces).
//!
//! # Comparison
//!
//! apk splits both versions into typed tokens and walks them in parallel.
//! While both tokens have the same type they are compared by value:
//!
//! * the first number, suffix numbers and the revision numerically, as
//!   apk's `apk_blob_pull_uint()` reads them: into a `u64` that silently
//!   wraps around for numbers of 20+ digits (we reproduce the wrap-around);
//! * a `.digits` component numerically too, *unless either side starts with
//!   `0`*, in which case both are compared as strings (Gentoo's rule:
//!   `1.01 < 1.1`, `1.0 < 1.00`);
//! * letters and commit hashes as strings, suffixes by the order listed
//!   above.
//!
//! At the first position where the token types differ, a pre-release suffix
//! is older than anything; otherwise the token type decides, in the order
//! end < revision < commit hash < suffix number < post-release suffix <
//! letter < `.digits`. So `1.0_rc1 < 1.0 < 1.0-r1 < 1.0_p1 < 1.0a < 1.0.1`.
//!
//! # Sort key
//!
//! One rank byte per token in exactly that order (`_alpha` `0x01`, `_beta`
//! `0x02`, `_pre` `0x03`, `_rc` `0x04`, end `0x05`, revision `0x06`, hash
//! `0x07`, suffix number `0x08`, `_cvs`..`_p` `0x09`..`0x0d`, letter `0x0e`,
//! `.digits` `0x0f`, first number `0x10`), each followed by its value:
//! numbers as 8 big-endian bytes of the (wrapped) `u64`; letters as their
//! byte; hashes as their hex characters and `0x00`; a `.digits` component as
//! `0x00`, its digits and `0x00` when it starts with `0` (string comparison;
//! these all sort below) and otherwise as `0x01` and its 8-byte value. The
//! key ends with the end token `0x05`.

use std::cmp::Ordering;

use crate::common::{check_chars, invalid};
use crate::{InvalidReason, VersionError, VersionFormat};

const FORMAT: VersionFormat = VersionFormat::Apk;

/// apk's token types; the declaration order is apk's (`enum PARTS`), which
/// the comparison relies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix values as in apk (`SUFFIX_ALPHA` = 1 … `SUFFIX_P` = 10);
/// everything below [`SUFFIX_NONE`] is a pre-release.
const SUFFIXES: [(&[u8], u8); 9] = [
    (b"alpha", 1),
    (b"beta", 2),
    (b"pre", 3),
    (b"rc", 4),
    (b"cvs", 6),
    (b"svn", 7),
    (b"git", 8),
    (b"hg", 9),
    (b"p", 10),
];
const SUFFIX_NONE: u8 = 5;

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// Suffix value, for [`Kind::Suffix`].
    suffix: u8,
    /// Numeric value (wrapping `u64`), for digit tokens.
    number: u64,
    /// The token's text: digits, the letter, the suffix name or the hash.
    value: &'a [u8],
}

/// A tokenizer mirroring apk's `token_first()` / `token_next()`.
#[derive(Debug)]
struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    tok: Token<'a>,
    /// Offset and description of the first problem, once `tok` is invalid.
    problem: Option<(usize, &'static str)>,
}

impl<'a> Lexer<'a> {
    /// Starts lexing; the first token is already in `tok`.
    fn new(s: &'a [u8]) -> Self {
        let mut lexer = Lexer {
            s,
            pos: 0,
            tok: Token { kind: Kind::InitialDigit, suffix: 0, number: 0, value: &[] },
            problem: None,
        };
        lexer.digits(Kind::InitialDigit, "must start with a digit");
        lexer
    }

    fn fail(&mut self, at: usize, problem: &'static str) {
        self.tok.kind = Kind::Invalid;
        self.problem = Some((at, problem));
    }

    /// Reads a digit run into a token of `kind` (`token_parse_digits()`).
    fn digits(&mut self, kind: Kind, if_empty: &'static str) {
        let start = self.pos;
        let rest = &self.s[start..];
        let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let value = &rest[..n];
        self.pos += n;
        if value.is_empty() {
            self.fail(start, if_empty);
            return;
        }
        let number = value.iter().fold(0u64, |acc, &d| acc.wrapping_mul(10).wrapping_add(u64::from(d - b'0')));
        self.tok = Token { kind, suffix: 0, number, value };
    }

    /// Advances to the next token (`token_next()`); a no-op once at the end
    /// or at an invalid token.
    fn advance(&mut self) {
        let prev = self.tok.kind;
        if prev >= Kind::End {
            return;
        }
        let Some(&c) = self.s.get(self.pos) else {
            self.tok.kind = Kind::End;
            return;
        };
        let at = self.pos;
        match c {
            b'a'..=b'z' => {
                if prev > Kind::Digit {
                    return self.fail(at, "unexpected letter");
                }
                self.pos += 1;
                self.tok = Token { kind: Kind::Letter, suffix: 0, number: 0, value: &self.s[at..at + 1] };
            }
            b'.' => {
                if prev > Kind::Digit {
                    return self.fail(at, "unexpected '.'");
                }
                self.pos += 1;
                self.digits(Kind::Digit, "expected digits after '.'");
            }
            b'0'..=b'9' => match prev {
                // Unreachable in practice (digit runs are read greedily),
                // but this is what apk would do.
                Kind::InitialDigit | Kind::Digit => self.digits(Kind::Digit, ""),
                Kind::Suffix => self.digits(Kind::SuffixNo, ""),
                _ => self.fail(at, "unexpected digit"),
            },
            b'_' => {
                if prev > Kind::SuffixNo {
                    return self.fail(at, "unexpected '_'");
                }
                let start = at + 1;
                let n = self.s[start..].iter().take_while(|c| c.is_ascii_lowercase()).count();
                let name = &self.s[start..start + n];
                let Some(&(_, suffix)) = SUFFIXES.iter().find(|(s, _)| *s == name) else {
                    return self
                        .fail(at, "unknown suffix (expected _alpha, _beta, _pre, _rc, _cvs, _svn, _git, _hg or _p)");
                };
                self.pos = start + n;
                self.tok = Token { kind: Kind::Suffix, suffix, number: 0, value: name };
            }
            b'~' => {
                if prev >= Kind::CommitHash {
                    return self.fail(at, "unexpected '~'");
                }
                let start = at + 1;
                let n = self.s[start..].iter().take_while(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')).count();
                if n == 0 {
                    return self.fail(at, "expected hex digits after '~'");
                }
                self.pos = start + n;
                self.tok = Token { kind: Kind::CommitHash, suffix: 0, number: 0, value: &self.s[start..start + n] };
            }
            b'-' => {
                if prev >= Kind::RevisionNo {
                    return self.fail(at, "unexpected '-'");
                }
                if self.s.get(at + 1) != Some(&b'r') {
                    return self.fail(at, "expected \"-r\" followed by digits");
                }
                self.pos += 2;
                self.digits(Kind::RevisionNo, "expected \"-r\" followed by digits");
                if self.problem.is_some() {
                    // Report the problem at the '-', like the message says.
                    self.problem = Some((at, "expected \"-r\" followed by digits"));
                }
            }
            _ => self.fail(at, "unexpected character"),
        }
    }
}

/// apk's `token_cmp()` for two tokens of the same kind.
fn token_cmp(a: &Token<'_>, b: &Token<'_>) -> Ordering {
    match a.kind {
        Kind::Digit if a.value.first() == Some(&b'0') || b.value.first() == Some(&b'0') => a.value.cmp(b.value),
        Kind::Digit | Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => a.number.cmp(&b.number),
        Kind::Letter => a.value.first().cmp(&b.value.first()),
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        Kind::CommitHash | Kind::End | Kind::Invalid => a.value.cmp(b.value),
    }
}

/// `apk_version_compare()` on arbitrary bytes, *including invalid versions*,
/// which apk compares token by token up to the first invalid token. Never
/// panics. Prefer [`compare`], which rejects invalid versions.
pub fn compare_raw(a: &[u8], b: &[u8]) -> Ordering {
    let (mut la, mut lb) = (Lexer::new(a), Lexer::new(b));
    while la.tok.kind == lb.tok.kind && la.tok.kind < Kind::End {
        let ord = token_cmp(&la.tok, &lb.tok);
        if ord != Ordering::Equal {
            return ord;
        }
        la.advance();
        lb.advance();
    }
    let (ta, tb) = (la.tok, lb.tok);
    if ta.kind == tb.kind {
        return Ordering::Equal;
    }
    // The first differing token type decides: a pre-release suffix is older
    // than anything, otherwise the *higher* token type is older.
    if ta.kind == Kind::Suffix && ta.suffix < SUFFIX_NONE {
        return Ordering::Less;
    }
    if tb.kind == Kind::Suffix && tb.suffix < SUFFIX_NONE {
        return Ordering::Greater;
    }
    tb.kind.cmp(&ta.kind)
}

/// Checks that `v` is a valid apk version (`apk_version_validate()`).
pub fn validate(v: &str) -> Result<(), VersionError> {
    check_chars(FORMAT, v)?;
    let mut lexer = Lexer::new(v.as_bytes());
    while lexer.tok.kind < Kind::End {
        lexer.advance();
    }
    match lexer.problem {
        None => Ok(()),
        Some((offset, problem)) => Err(invalid(FORMAT, v, InvalidReason::Syntax { offset, problem })),
    }
}

/// Compares two apk versions like `apk version -t` / `apk_version_compare()`.
pub fn compare(a: &str, b: &str) -> Result<Ordering, VersionError> {
    validate(a)?;
    validate(b)?;
    Ok(compare_raw(a.as_bytes(), b.as_bytes()))
}

/// Key rank of a (valid) token; see the module docs.
fn rank(t: &Token<'_>) -> u8 {
    match t.kind {
        Kind::Suffix if t.suffix < SUFFIX_NONE => t.suffix,
        Kind::End => 0x05,
        Kind::RevisionNo => 0x06,
        Kind::CommitHash => 0x07,
        Kind::SuffixNo => 0x08,
        Kind::Suffix => t.suffix + 3,
        Kind::Letter => 0x0e,
        Kind::Digit => 0x0f,
        Kind::InitialDigit => 0x10,
        // Not reachable for validated versions.
        Kind::Invalid => 0xff,
    }
}

/// Returns the order-preserving sort key of an apk version (layout in the
/// module docs).
pub fn sort_key(v: &str) -> Result<Vec<u8>, VersionError> {
    validate(v)?;
    let mut out = Vec::with_capacity(4 * v.len() + 8);
    let mut lexer = Lexer::new(v.as_bytes());
    loop {
        let t = lexer.tok;
        out.push(rank(&t));
        match t.kind {
            Kind::End | Kind::Invalid => return Ok(out),
            Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => {
                out.extend_from_slice(&t.number.to_be_bytes());
            }
            Kind::Digit if t.value.first() == Some(&b'0') => {
                out.push(0x00);
                out.extend_from_slice(t.value);
                out.push(0x00);
            }
            Kind::Digit => {
                out.push(0x01);
                out.extend_from_slice(&t.number.to_be_bytes());
            }
            Kind::Letter => out.extend_from_slice(t.value),
            Kind::CommitHash => {
                out.extend_from_slice(t.value);
                out.push(0x00);
            }
            Kind::Suffix => {}
        }
        lexer.advance();
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

    /// Hand-picked cases (derived from apk-tools' version.c rules; the
    /// upstream test vectors are in tests/apk_vectors.rs).
    const CASES: &[(&str, &str, Ordering)] = &[
        ("1.0", "1.0", Equal),
        ("01", "1", Equal),
        ("1.0-r01", "1.0-r1", Equal),
        ("1.0_p01", "1.0_p1", Equal),
        ("1.01", "1.1", Less),
        ("1.0", "1.00", Less),
        ("1.09", "1.1", Less),
        ("1.9", "1.10", Less),
        ("1.0_alpha", "1.0_beta", Less),
        ("1.0_beta", "1.0_pre", Less),
        ("1.0_pre", "1.0_rc", Less),
        ("1.0_rc", "1.0", Less),
        ("1.0", "1.0-r1", Less),
        ("1.0-r1", "1.0_cvs", Less),
        ("1.0_cvs", "1.0_svn", Less),
        ("1.0_svn", "1.0_git", Less),
        ("1.0_git", "1.0_hg", Less),
        ("1.0_hg", "1.0_p", Less),
        ("1.0_p", "1.0a", Less),
        ("1.0a", "1.0.1", Less),
        ("1.0_rc1", "1.0_rc2", Less),
        ("1.0_rc", "1.0_rc1", Less),   // a suffix number is newer than nothing
        ("1.0_rc1", "1.0_rc_p", Less), // suffix number < post-release suffix
        ("1.0_alpha_pre2", "1.0_alpha", Less),
        ("1.0_p1_p1", "1.0_p1", Greater),
        ("1.0_p1-r1", "1.0_p1", Greater),
        ("1.0~abc", "1.0", Greater),
        ("1.0~abc", "1.0-r1", Greater),
        ("1.0~abc", "1.0~abd", Less),
        ("1.0~ab", "1.0~abc", Less),
        ("1.0~1234-r1", "1.0~2345-r0", Less),
        ("1.0~1234", "1.0_p1", Less),
        ("1.0_pre1~1234", "1.0", Less),
        ("1.0z", "1.0a", Greater),
        ("1.0a-r1", "1.0a", Greater),
        // u64 wrap-around, as apk_blob_pull_uint() does it.
        ("18446744073709551616", "0", Equal),
        ("18446744073709551617", "2", Less),
        ("1.0-r18446744073709551616", "1.0-r0", Equal),
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
    fn validity() {
        for v in [
            "1",
            "1.2.3",
            "1.2.3a",
            "0.1_pre2",
            "0.1_pre2~1234abcd",
            "0.1_p1_pre2",
            "0.1_alpha1_pre2",
            "0.1_git20240101_pre1",
            "1.0-r0",
            "1.0~abc-r1",
        ] {
            assert!(validate(v).is_ok(), "{v} should be valid: {:?}", validate(v));
        }
        for (v, offset, problem) in [
            ("", 0, ""),
            ("a", 0, "must start with a digit"),
            (".1", 0, "must start with a digit"),
            ("-r1", 0, "must start with a digit"),
            ("0.1bc", 4, "unexpected letter"),
            ("0.1a1", 4, "unexpected digit"),
            ("0.1a.1", 4, "unexpected '.'"),
            ("0.1.", 4, "expected digits after '.'"),
            ("0.1_", 3, "unknown suffix"),
            ("0.1_foo", 3, "unknown suffix"),
            ("0.1_1_alpha", 3, "unknown suffix"),
            ("0.1_pre2~", 8, "expected hex digits after '~'"),
            ("0.1_pre2~1234xbcd", 13, "unexpected letter"),
            ("0.1_pre2~abc_pre1", 12, "unexpected '_'"),
            ("0.1-pre1", 3, "expected \"-r\""),
            ("0.1-r", 3, "expected \"-r\""),
            ("0.1-r2_p1", 6, "unexpected '_'"),
            ("0.1-r2-r3", 6, "unexpected '-'"),
            ("0.1-r2.1", 6, "unexpected '.'"),
            ("1.0A", 3, "unexpected character"),
        ] {
            match validate(v) {
                Err(VersionError::Invalid { reason: InvalidReason::Syntax { offset: o, problem: p }, .. }) => {
                    assert_eq!(o, offset, "{v}");
                    assert!(p.starts_with(problem), "{v}: {p}");
                }
                Err(VersionError::Invalid { reason: InvalidReason::Empty, .. }) if v.is_empty() => {}
                other => panic!("{v}: expected a syntax error, got {other:?}"),
            }
        }
    }

    #[test]
    fn raw_compare_handles_invalid_like_apk() {
        // apk stops at the first differing token type, before the junk.
        assert_eq!(compare_raw(b"1.0", b"1.0bc"), Less);
        assert_eq!(compare_raw(b"23_foo", b"4_beta"), Greater);
        assert_eq!(compare_raw(b"x", b"y"), Equal); // both invalid at once
        assert_eq!(compare_raw(b"", b"1"), Less); // invalid is the "highest" type: oldest
        assert!(compare("1.0", "1.0bc").is_err());
    }
}
