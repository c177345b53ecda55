//! Exact package version ordering for the four package formats Patchdeck
//! manages, plus order-preserving binary sort keys.
//!
//! "Is this version newer?" must give the same answer the distribution's own
//! package manager gives, otherwise Patchdeck would offer downgrades or miss
//! security updates. Each format therefore has its own module that
//! re-implements the upstream comparison function (never a generic "semver-ish"
//! guess) and is tested differentially against the real tool:
//!
//! | format | module | upstream function |
//! |---|---|---|
//! | Debian, Ubuntu | [`deb`] | dpkg `verrevcmp()` / `dpkg_version_compare()` |
//! | RHEL, Fedora, SUSE | [`rpm`] | rpm `rpmvercmp()` / `rpmverCmp()` (rpm 4.18) |
//! | Alpine | [`apk`] | apk-tools `apk_version_compare()` |
//! | Arch | [`pacman`] | libalpm `alpm_pkg_vercmp()` |
//!
//! # API
//!
//! * [`compare`] answers "how does `a` order relative to `b`?".
//! * [`sort_key`] turns a version into bytes whose plain byte-wise
//!   (lexicographic) order equals [`compare`]'s order, so the manager can store
//!   them in a SQLite `BLOB` / PostgreSQL `bytea` column and answer "which hosts
//!   run something older than X" with an index range scan
//!   (`WHERE key < ?`). Versions that compare equal (deb `1.0` and `0:1.0-0`)
//!   get identical keys. The only documented exception is pacman's "a missing
//!   pkgrel matches any pkgrel" rule, see [`pacman`].
//! * [`validate`] checks a version without comparing it.
//!
//! The hot path ([`compare`] and the per-format `compare` functions) works on
//! byte slices and never allocates.
//!
//! # Validation policy
//!
//! Every function returns [`VersionError`] for versions the format considers
//! invalid, instead of guessing an order. Rules shared by all formats:
//!
//! * the version must not be empty;
//! * it may contain only printable ASCII without whitespace (`!` to `~`).
//!   Package versions in real repositories never contain anything else, and
//!   for non-ASCII bytes some tools give CPU-dependent answers (dpkg's
//!   ordering of bytes >= 0x80 depends on whether `char` is signed, i.e.
//!   differs between amd64 and arm64), so we refuse rather than guess.
//!
//! Each module documents its own additional rules and every place where it is
//! stricter than the tool.
//!
//! # Sort key encoding
//!
//! Each module describes its key layout. The building blocks shared by all are:
//!
//! * numbers compared "by value with unlimited length" (dpkg, rpm, pacman)
//!   are stored as *length, then digits* with leading zeros stripped; the
//!   length itself uses an order-preserving variable-length encoding (one byte
//!   giving the number of length bytes, then the length big-endian; zero is a
//!   single `0x00`). A longer number therefore sorts after a shorter one, and
//!   equal-length numbers compare digit by digit;
//! * strings compared with `strcmp`-like semantics are stored followed by a
//!   terminator byte that is smaller than every byte they can contain;
//! * every component key is *prefix-free* (no key is a proper prefix of
//!   another), so keys of several components can simply be concatenated.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

pub mod apk;
mod common;
pub mod deb;
pub mod pacman;
pub mod rpm;

/// The version syntax / ordering rules of one package manager family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionFormat {
    /// dpkg / apt (Debian, Ubuntu, ...).
    Deb,
    /// rpm (RHEL, Fedora, SUSE, ...).
    Rpm,
    /// apk-tools (Alpine).
    Apk,
    /// pacman / libalpm (Arch).
    Pacman,
}

impl VersionFormat {
    /// Every format, in declaration order.
    pub const ALL: [VersionFormat; 4] =
        [VersionFormat::Deb, VersionFormat::Rpm, VersionFormat::Apk, VersionFormat::Pacman];

    /// The lowercase name used by [`fmt::Display`], [`FromStr`] and serde.
    pub const fn as_str(self) -> &'static str {
        match self {
            VersionFormat::Deb => "deb",
            VersionFormat::Rpm => "rpm",
            VersionFormat::Apk => "apk",
            VersionFormat::Pacman => "pacman",
        }
    }
}

impl fmt::Display for VersionFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so that width/alignment flags work (`{:<8}`).
        f.pad(self.as_str())
    }
}

impl FromStr for VersionFormat {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VersionFormat::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| VersionError::UnknownFormat { given: s.to_owned() })
    }
}

/// Why a version or a format name was rejected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum VersionError {
    /// The version is not valid in the given format.
    #[error("invalid {format} version {version:?}: {reason}")]
    Invalid {
        /// The format whose rules were applied.
        format: VersionFormat,
        /// The offending version, verbatim.
        version: String,
        /// What is wrong with it.
        reason: InvalidReason,
    },
    /// [`VersionFormat::from_str`] got an unknown name.
    #[error("unknown version format {given:?}: expected one of deb, rpm, apk, pacman")]
    UnknownFormat {
        /// The name that was given.
        given: String,
    },
}

/// What is wrong with an invalid version (see [`VersionError::Invalid`]).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidReason {
    /// The version is the empty string.
    #[error("is empty")]
    Empty,
    /// The version contains whitespace.
    #[error("contains whitespace")]
    Whitespace,
    /// The version contains a control character (other than whitespace).
    #[error("contains a control character")]
    Control,
    /// The version contains a character outside ASCII.
    #[error("contains a non-ASCII character")]
    NonAscii,
    /// deb: the part before the first `:` is empty.
    #[error("epoch is empty")]
    EpochEmpty,
    /// deb: the part before the first `:` is not a number.
    #[error("epoch is not a number")]
    EpochNotNumber,
    /// deb: the epoch is negative.
    #[error("epoch is negative")]
    EpochNegative,
    /// deb: the epoch is larger than dpkg's limit (`INT_MAX`).
    #[error("epoch is too big (maximum {max})")]
    EpochTooBig {
        /// The largest accepted epoch.
        max: u32,
    },
    /// deb: nothing follows the epoch's `:`.
    #[error("nothing after the epoch colon")]
    NothingAfterColon,
    /// A named part of the version (upstream version, revision, pkgver,
    /// pkgrel) is empty, e.g. deb `1.0-`.
    #[error("{part} is empty")]
    EmptyPart {
        /// Which part.
        part: &'static str,
    },
    /// pacman: a part ends with a separator; `alpm_pkg_vercmp` is not
    /// transitive for such versions (see [`pacman`]).
    #[error("{part} ends with the separator {sep:?}")]
    TrailingSeparator {
        /// Which part (`pkgver` or `pkgrel`).
        part: &'static str,
        /// The offending separator character.
        sep: char,
    },
    /// apk: the version does not follow the apk-tools grammar
    /// `digits{.digits}[letter]{_suffix[digits]}[~hash][-rdigits]`.
    #[error("{problem} at byte {offset}")]
    Syntax {
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong there.
        problem: &'static str,
    },
}

/// Compares two versions of the given format.
///
/// Returns how `a` orders relative to `b` (`Less` means `a` is older), exactly
/// as the format's package manager would decide, or an error if either
/// version is invalid. Never allocates when both versions are valid.
///
/// ```
/// use std::cmp::Ordering;
/// use patchdeck_version::{compare, VersionFormat};
///
/// assert_eq!(compare(VersionFormat::Deb, "1.0~rc1", "1.0").unwrap(), Ordering::Less);
/// assert_eq!(compare(VersionFormat::Pacman, "1.0~rc1", "1.0").unwrap(), Ordering::Greater);
/// ```
pub fn compare(format: VersionFormat, a: &str, b: &str) -> Result<Ordering, VersionError> {
    match format {
        VersionFormat::Deb => deb::compare(a, b),
        VersionFormat::Rpm => rpm::compare(a, b),
        VersionFormat::Apk => apk::compare(a, b),
        VersionFormat::Pacman => pacman::compare(a, b),
    }
}

/// Returns the order-preserving binary sort key of a version.
///
/// For valid `a` and `b`, `sort_key(f, a)?.cmp(&sort_key(f, b)?)` equals
/// `compare(f, a, b)?` (pacman: see [`pacman`] for the one documented
/// exception), and equal versions get identical keys.
///
/// ```
/// use patchdeck_version::{sort_key, VersionFormat};
///
/// let k = |v| sort_key(VersionFormat::Deb, v).unwrap();
/// assert!(k("1.0~rc1") < k("1.0"));
/// assert_eq!(k("1.0"), k("0:1.0-0"));
/// ```
pub fn sort_key(format: VersionFormat, v: &str) -> Result<Vec<u8>, VersionError> {
    match format {
        VersionFormat::Deb => deb::sort_key(v),
        VersionFormat::Rpm => rpm::sort_key(v),
        VersionFormat::Apk => apk::sort_key(v),
        VersionFormat::Pacman => pacman::sort_key(v),
    }
}

/// Checks that `v` is a valid version of the given format.
pub fn validate(format: VersionFormat, v: &str) -> Result<(), VersionError> {
    match format {
        VersionFormat::Deb => deb::validate(v),
        VersionFormat::Rpm => rpm::validate(v),
        VersionFormat::Apk => apk::validate(v),
        VersionFormat::Pacman => pacman::validate(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in VersionFormat::ALL {
            assert_eq!(f.to_string().parse::<VersionFormat>().unwrap(), f);
            assert_eq!(format!("{f:>7}").trim_start(), f.as_str());
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{f}\""));
            assert_eq!(serde_json::from_str::<VersionFormat>(&json).unwrap(), f);
        }
    }

    #[test]
    fn unknown_format_lists_valid_ones() {
        let err = "dpkg".parse::<VersionFormat>().unwrap_err();
        assert_eq!(err.to_string(), "unknown version format \"dpkg\": expected one of deb, rpm, apk, pacman");
    }

    #[test]
    fn error_message_names_version_and_problem() {
        let err = validate(VersionFormat::Deb, "1 0").unwrap_err();
        assert_eq!(err.to_string(), "invalid deb version \"1 0\": contains whitespace");
        let err = validate(VersionFormat::Apk, "1.0-x").unwrap_err();
        assert_eq!(err.to_string(), "invalid apk version \"1.0-x\": expected \"-r\" followed by digits at byte 3");
    }

    #[test]
    fn top_level_dispatch() {
        // The documented tool disagreements, through the top-level API.
        use Ordering::*;
        use VersionFormat::*;
        let table: &[(&str, &str, [Ordering; 3])] = &[
            ("1.0", "1.0a", [Less, Less, Greater]),
            ("1.0~rc1", "1.0", [Less, Less, Greater]),
            ("1.0rc1", "1.0", [Greater, Greater, Less]),
            ("1.0-1", "1.0", [Greater, Greater, Equal]),
            ("1.0.a", "1.0a", [Greater, Equal, Greater]),
            ("1.0_1", "1.0.1", [Greater, Equal, Equal]),
        ];
        for (a, b, want) in table {
            for (f, w) in [Deb, Rpm, Pacman].into_iter().zip(want) {
                assert_eq!(compare(f, a, b).unwrap(), *w, "{f}: {a} vs {b}");
                assert_eq!(compare(f, b, a).unwrap(), w.reverse(), "{f}: {b} vs {a}");
            }
        }
        assert_eq!(compare(Apk, "1.0_rc1", "1.0").unwrap(), Less);
        for f in VersionFormat::ALL {
            assert!(compare(f, "", "1").is_err());
            assert!(sort_key(f, "").is_err());
        }
    }
}
