//! Helpers shared by the format modules: the common character check and the
//! building blocks of the sort-key encoding.

use std::cmp::Ordering;

use crate::{InvalidReason, VersionError, VersionFormat};

/// Builds a [`VersionError::Invalid`].
pub(crate) fn invalid(format: VersionFormat, version: &str, reason: InvalidReason) -> VersionError {
    VersionError::Invalid { format, version: version.to_owned(), reason }
}

/// The rule shared by every format: non-empty, printable ASCII, no whitespace.
pub(crate) fn check_chars(format: VersionFormat, v: &str) -> Result<(), VersionError> {
    if v.is_empty() {
        return Err(invalid(format, v, InvalidReason::Empty));
    }
    // Fast path: every byte is in '!'..='~'.
    if v.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    // Slow path, only to pick the most helpful message.
    let reason = if v.chars().any(char::is_whitespace) {
        InvalidReason::Whitespace
    } else if v.chars().any(char::is_control) {
        InvalidReason::Control
    } else {
        InvalidReason::NonAscii
    };
    Err(invalid(format, v, reason))
}

/// Strips leading `'0'` bytes.
pub(crate) fn strip_zeros(digits: &[u8]) -> &[u8] {
    let n = digits.iter().take_while(|&&b| b == b'0').count();
    &digits[n..]
}

/// Compares two runs of ASCII digits by numeric value, with no length limit:
/// leading zeros are ignored, then the longer number wins, then the digits
/// decide. (The rule of rpm's and libalpm's `rpmvercmp`.)
pub(crate) fn cmp_digit_runs(a: &[u8], b: &[u8]) -> Ordering {
    let (a, b) = (strip_zeros(a), strip_zeros(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Appends an order-preserving encoding of `n`: `0x00` for zero, otherwise
/// one byte holding the number of significant bytes of `n` followed by those
/// bytes big-endian. Smaller numbers always give byte-wise smaller encodings,
/// and no encoding is a prefix of another.
pub(crate) fn push_len(out: &mut Vec<u8>, n: usize) {
    let be = (n as u64).to_be_bytes();
    let skip = be.iter().take_while(|&&b| b == 0).count();
    // `skip` is at most 8, so the byte count fits in a u8.
    out.push((8 - skip) as u8);
    out.extend_from_slice(&be[skip..]);
}

/// Appends a digit run as an unlimited-length number: leading zeros are
/// stripped, then the length ([`push_len`]) and the digits are written. Byte
/// order of the encodings equals [`cmp_digit_runs`] order; runs with equal
/// value (`007` and `7`, `""` and `0`) get identical encodings.
pub(crate) fn push_number(out: &mut Vec<u8>, digits: &[u8]) {
    let digits = strip_zeros(digits);
    push_len(out, digits.len());
    out.extend_from_slice(digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(d: &str) -> Vec<u8> {
        let mut v = Vec::new();
        push_number(&mut v, d.as_bytes());
        v
    }

    #[test]
    fn length_encoding_is_order_preserving() {
        let lens = [0usize, 1, 2, 9, 255, 256, 257, 65535, 65536, 1 << 40, usize::MAX];
        for (i, &a) in lens.iter().enumerate() {
            for &b in &lens[i..] {
                let (mut ka, mut kb) = (Vec::new(), Vec::new());
                push_len(&mut ka, a);
                push_len(&mut kb, b);
                assert_eq!(ka.cmp(&kb), a.cmp(&b), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn number_encoding() {
        assert_eq!(num(""), num("0"));
        assert_eq!(num("0"), num("000"));
        assert_eq!(num("7"), num("007"));
        assert!(num("9") < num("10"));
        assert!(num("99999999999999999999999") < num("100000000000000000000000"));
        assert!(num("123") < num("124"));
        assert_eq!(cmp_digit_runs(b"0010", b"10"), Ordering::Equal);
        assert_eq!(cmp_digit_runs(b"9", b"10"), Ordering::Less);
    }
}
