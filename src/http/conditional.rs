//! Validators and preconditions for a file's representation (RFC 9110
//! 8.8, 13): the entity tag and `Last-Modified` made from what `fstat`
//! says, and the evaluation of `If-None-Match`, `If-Modified-Since` and
//! `If-Range`.
//!
//! The entity tag is **strong**: `"<mtime seconds hex>.<mtime nanoseconds
//! hex>-<size hex>"`. With the nanoseconds of the modification time and
//! the size, two different contents of one file get different tags unless
//! the file is rewritten within the file system's timestamp granularity
//! keeping its size; a strong tag is what lets `If-Range` (which needs a
//! strong comparison) resume a download.

use super::date::{format_http_date, parse_http_date};

/// The validators of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validators {
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: i64,
}

/// Longest entity tag `etag` writes: quotes, 16 + 8 + 16 hex digits, '.', '-'.
pub const ETAG_MAX: usize = 2 + 16 + 1 + 8 + 1 + 16;

fn push_hex(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

impl Validators {
    /// The strong entity tag, quotes included.
    pub fn etag(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        push_hex(out, self.mtime_sec as u64);
        out.push(b'.');
        push_hex(out, self.mtime_nsec as u64);
        out.push(b'-');
        push_hex(out, self.size);
        out.push(b'"');
    }

    /// The `Last-Modified` value.
    pub fn last_modified(&self) -> [u8; 29] {
        format_http_date(self.mtime_sec)
    }

    fn etag_matches(&self, tag: &[u8]) -> bool {
        let mut own = Vec::with_capacity(ETAG_MAX);
        self.etag(&mut own);
        own == tag
    }
}

/// `If-None-Match` (RFC 9110 13.1.2) with the weak comparison: true when
/// the condition is false, i.e. the client's copy is current (`*`, or one
/// of the listed tags, `W/` prefix ignored, equals ours).
pub fn none_match_fails(value: &[u8], v: &Validators) -> bool {
    let value = value.trim_ascii();
    if value == b"*" {
        return true;
    }
    value
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .map(|t| t.strip_prefix(b"W/").unwrap_or(t))
        .any(|t| v.etag_matches(t))
}

/// `If-Modified-Since` (RFC 9110 13.1.3): true when the condition is false
/// (not modified since that date). An unparsable date is ignored.
pub fn modified_since_fails(value: &[u8], v: &Validators) -> bool {
    parse_http_date(value).is_some_and(|since| v.mtime_sec <= since)
}

/// `If-Range` (RFC 9110 13.1.5): true when the range may be served. An
/// entity tag is compared strongly (a weak tag never matches); a date must
/// equal `Last-Modified` exactly.
pub fn if_range_holds(value: &[u8], v: &Validators) -> bool {
    let value = value.trim_ascii();
    if value.starts_with(b"\"") {
        return v.etag_matches(value);
    }
    if value.starts_with(b"W/") {
        return false;
    }
    parse_http_date(value) == Some(v.mtime_sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Validators = Validators {
        size: 0x1234,
        mtime_sec: 784_111_777,
        mtime_nsec: 5,
    };

    fn tag() -> Vec<u8> {
        let mut t = Vec::new();
        V.etag(&mut t);
        t
    }

    #[test]
    fn etag_and_last_modified() {
        assert_eq!(tag(), b"\"2ebc98a1.5-1234\"");
        assert!(tag().len() <= ETAG_MAX);
        assert_eq!(&V.last_modified(), b"Sun, 06 Nov 1994 08:49:37 GMT");
        let mut big = Vec::new();
        Validators {
            size: u64::MAX,
            mtime_sec: -1,
            mtime_nsec: 999_999_999,
        }
        .etag(&mut big);
        assert_eq!(big.len(), ETAG_MAX);
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        assert!(none_match_fails(b"*", &V));
        assert!(none_match_fails(&tag(), &V));
        let weak = [&b"W/"[..], &tag()].concat();
        assert!(none_match_fails(&weak, &V));
        let list = [&b"\"x\", "[..], &tag(), b" ,\"y\""].concat();
        assert!(none_match_fails(&list, &V));
        assert!(!none_match_fails(b"\"x\"", &V));
        assert!(!none_match_fails(b"\"2ebc98a1.5-1235\"", &V));
        assert!(!none_match_fails(b"", &V));
    }

    #[test]
    fn if_modified_since() {
        assert!(modified_since_fails(b"Sun, 06 Nov 1994 08:49:37 GMT", &V));
        assert!(modified_since_fails(b"Sun, 06 Nov 1994 08:49:38 GMT", &V));
        assert!(!modified_since_fails(b"Sun, 06 Nov 1994 08:49:36 GMT", &V));
        assert!(!modified_since_fails(b"garbage", &V));
    }

    #[test]
    fn if_range_is_strong_or_an_exact_date() {
        assert!(if_range_holds(&tag(), &V));
        assert!(!if_range_holds(&[&b"W/"[..], &tag()].concat(), &V));
        assert!(!if_range_holds(b"\"other\"", &V));
        assert!(if_range_holds(b"Sun, 06 Nov 1994 08:49:37 GMT", &V));
        assert!(!if_range_holds(b"Sun, 06 Nov 1994 08:49:38 GMT", &V));
        assert!(!if_range_holds(b"nonsense", &V));
    }
}
