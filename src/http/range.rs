//! The `Range` request header (RFC 9110 14.2), for a representation of a
//! known length: which single byte range to send, if any.
//!
//! Only one range is ever served. A request for several ranges gets the
//! whole representation (200), which RFC 9110 14.2 allows ("a server MAY
//! ignore the Range header field"), as does a header that does not parse
//! or names another unit.

/// What to answer a `Range` header with, for a representation of `len`
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Ignore the header: send the whole representation (200).
    Whole,
    /// Send bytes `first..=last` (206 with `Content-Range`).
    Part { first: u64, last: u64 },
    /// No range of the set overlaps the representation (416 with
    /// `Content-Range: bytes */len`).
    Unsatisfiable,
}

/// One `range-spec` of a `bytes` range set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-` (last None).
    From { first: u64, last: Option<u64> },
    /// `-suffix`: the last `suffix` bytes.
    Suffix(u64),
}

fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn spec(s: &[u8]) -> Option<Spec> {
    let dash = s.iter().position(|&b| b == b'-')?;
    let (first, last) = (&s[..dash], &s[dash + 1..]);
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    if last.is_empty() {
        return Some(Spec::From { first, last: None });
    }
    let last = digits(last)?;
    // "A range-spec is invalid if ... last-pos is less than first-pos."
    (last >= first).then_some(Spec::From {
        first,
        last: Some(last),
    })
}

/// Decides how to answer `value` (the `Range` field value) for a
/// representation of `len` bytes.
pub fn answer(value: &[u8], len: u64) -> RangeAnswer {
    let value = value.trim_ascii();
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeAnswer::Whole;
    };
    if !value[..eq].trim_ascii().eq_ignore_ascii_case(b"bytes") {
        return RangeAnswer::Whole;
    }
    // range-set = 1#range-spec: empty list elements are allowed and skipped.
    let mut specs = value[eq + 1..]
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|s| !s.is_empty());
    let Some(only) = specs.next() else {
        return RangeAnswer::Whole;
    };
    if specs.next().is_some() {
        return RangeAnswer::Whole;
    }
    match spec(only) {
        None => RangeAnswer::Whole,
        Some(Spec::From { first, .. }) if first >= len => RangeAnswer::Unsatisfiable,
        Some(Spec::From { first, last }) => RangeAnswer::Part {
            first,
            last: last.map_or(len - 1, |l| l.min(len - 1)),
        },
        Some(Spec::Suffix(0)) => RangeAnswer::Unsatisfiable,
        Some(Spec::Suffix(_)) if len == 0 => RangeAnswer::Unsatisfiable,
        Some(Spec::Suffix(n)) => RangeAnswer::Part {
            first: len - n.min(len),
            last: len - 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::RangeAnswer::*;
    use super::*;

    #[test]
    fn single_ranges_at_the_edges() {
        assert_eq!(answer(b"bytes=0-0", 10), Part { first: 0, last: 0 });
        assert_eq!(answer(b"bytes=9-9", 10), Part { first: 9, last: 9 });
        assert_eq!(answer(b"bytes=9-", 10), Part { first: 9, last: 9 });
        assert_eq!(answer(b"bytes=0-", 10), Part { first: 0, last: 9 });
        assert_eq!(answer(b"bytes=3-100", 10), Part { first: 3, last: 9 });
        assert_eq!(answer(b"bytes=-1", 10), Part { first: 9, last: 9 });
        assert_eq!(answer(b"bytes=-10", 10), Part { first: 0, last: 9 });
        assert_eq!(answer(b"bytes=-11", 10), Part { first: 0, last: 9 });
        assert_eq!(answer(b" Bytes = 2-4 ", 10), Part { first: 2, last: 4 });
        assert_eq!(answer(b"bytes=2-4,", 10), Part { first: 2, last: 4 });
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(answer(b"bytes=10-", 10), Unsatisfiable);
        assert_eq!(answer(b"bytes=10-20", 10), Unsatisfiable);
        assert_eq!(answer(b"bytes=-0", 10), Unsatisfiable);
        assert_eq!(answer(b"bytes=0-", 0), Unsatisfiable);
        assert_eq!(answer(b"bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn ignored_headers_get_the_whole_file() {
        for v in [
            &b"bytes=0-1,3-4"[..],
            b"bytes=0-1, 5-",
            b"items=0-1",
            b"bytes=5-2",
            b"bytes=a-b",
            b"bytes=",
            b"bytes",
            b"bytes=-",
            b"bytes=1",
            b"bytes=+1-2",
            b"bytes=99999999999999999999999-",
            b"",
        ] {
            assert_eq!(answer(v, 10), Whole, "{:?}", String::from_utf8_lossy(v));
        }
    }
}
