//! The request path percent-decoded, and decoded then normalised, into the
//! caller's buffer (nothing allocated).
//!
//! Rules (README "Request helpers"):
//! * decoding: `%XX` becomes the byte XX; '+' stays '+'. A '%' not followed
//!   by two hex digits, `%00` and `%2F`/`%2f` are refused (`BadEscape`), a
//!   NUL byte too (`Malformed`; a parsed request never holds one): the
//!   output never holds a NUL, and decoding never creates a '/', so the
//!   segments of the decoded path are those of the raw path;
//! * normalising decodes first, then removes `.` segments, resolves `..`
//!   against the segment before it and collapses runs of '/' into one; so
//!   `%2e%2e` is a `..`. A `..` with nothing before it to remove is refused
//!   (`AboveRoot`), never clamped. The result starts with '/' and ends with
//!   '/' when the last raw segment was empty, `.` or `..` ("/a/b/.." gives
//!   "/a/"). A path that does not start with '/' ("*") is `Malformed`.

use super::percent::{check, decode_into, decoded, Mode};
use super::FieldError;

/// `raw` percent-decoded into `out` (see the module rules): the length, or
/// `BadEscape`, or `TooLarge(needed)`.
pub fn decode(raw: &[u8], out: &mut [u8]) -> Result<usize, FieldError> {
    decode_into(raw, Mode::Path, out)
}

/// What a raw segment is once decoded.
#[derive(PartialEq, Eq)]
enum Seg {
    /// Empty or `.`: removed.
    Skip,
    /// `..`: removes the segment before it.
    Up,
    /// Anything else, `len` bytes once decoded.
    Keep(usize),
}

fn classify(raw: &[u8]) -> Result<Seg, FieldError> {
    let len = check(raw, Mode::Path)?;
    let dots = len <= 2 && decoded(raw, Mode::Path).all(|b| b == b'.');
    Ok(match (len, dots) {
        (0, _) | (1, true) => Seg::Skip,
        (2, true) => Seg::Up,
        _ => Seg::Keep(len),
    })
}

/// Writes into `out` from the end backwards, counting what does not fit.
struct Backwards<'a> {
    out: &'a mut [u8],
    /// Bytes produced so far (the result's length once done).
    len: usize,
}

impl Backwards<'_> {
    fn fits(&self, n: usize) -> bool {
        self.len + n <= self.out.len()
    }

    fn byte(&mut self, b: u8) {
        if self.fits(1) {
            let at = self.out.len() - self.len - 1;
            self.out[at] = b;
        }
        self.len += 1;
    }

    fn segment(&mut self, raw: &[u8], len: usize) {
        if self.fits(len) {
            let end = self.out.len() - self.len;
            for (slot, b) in self.out[end - len..end]
                .iter_mut()
                .zip(decoded(raw, Mode::Path))
            {
                *slot = b;
            }
        }
        self.len += len;
    }
}

/// `raw` decoded then normalised into `out` (see the module rules): the
/// length, or `BadEscape`, `AboveRoot`, `Malformed`, `TooLarge(needed)`.
///
/// The segments are walked from the last to the first, counting the `..`
/// still to apply, so the result is built without a stack: written from
/// the end of `out` backwards, then moved to its start.
pub fn normalize(raw: &[u8], out: &mut [u8]) -> Result<usize, FieldError> {
    let Some(rest) = raw.strip_prefix(b"/") else {
        return Err(FieldError::Malformed);
    };
    // The escapes first, left to right, so the error does not depend on
    // the direction of the walk below.
    check(raw, Mode::Path)?;
    let mut w = Backwards { out, len: 0 };
    let mut up = 0usize;
    let mut last = true;
    for raw_seg in rest.rsplit(|&b| b == b'/') {
        let seg = classify(raw_seg)?;
        if last {
            // A directory ("/a/", "/a/.", "/a/..") keeps its final '/'.
            // With nothing kept, that '/' is the whole result.
            // (The last segment, when kept, is never removed: no `..`
            // follows it.)
            if !matches!(seg, Seg::Keep(_)) {
                w.byte(b'/');
            }
            last = false;
        }
        match seg {
            Seg::Skip => {}
            Seg::Up => up += 1,
            Seg::Keep(_) if up > 0 => up -= 1,
            Seg::Keep(len) => {
                w.segment(raw_seg, len);
                w.byte(b'/');
            }
        }
    }
    if up > 0 {
        return Err(FieldError::AboveRoot);
    }
    let len = w.len;
    let out = w.out;
    if len > out.len() {
        return Err(FieldError::TooLarge(len));
    }
    out.copy_within(out.len() - len.., 0);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FieldError::*;

    fn norm(raw: &str) -> Result<String, FieldError> {
        let mut out = [0u8; 64];
        let n = normalize(raw.as_bytes(), &mut out)?;
        Ok(String::from_utf8_lossy(&out[..n]).into_owned())
    }

    #[test]
    fn normalize_table() {
        let cases: &[(&str, Result<&str, FieldError>)] = &[
            ("/", Ok("/")),
            ("/a", Ok("/a")),
            ("/a/", Ok("/a/")),
            ("/a/b/c", Ok("/a/b/c")),
            ("//a///b//", Ok("/a/b/")),
            ("/./a/./b/.", Ok("/a/b/")),
            ("/a/b/..", Ok("/a/")),
            ("/a/b/../", Ok("/a/")),
            ("/a/b/../c", Ok("/a/c")),
            ("/a/../../b", Err(AboveRoot)),
            ("/..", Err(AboveRoot)),
            ("/../a", Err(AboveRoot)),
            ("/a/..", Ok("/")),
            ("/a/../", Ok("/")),
            ("/.", Ok("/")),
            ("//", Ok("/")),
            ("/%2e%2e/etc", Err(AboveRoot)),
            ("/a/%2E%2e", Ok("/")),
            ("/a/%2e/b", Ok("/a/b")),
            ("/...", Ok("/...")),
            ("/..a/.b", Ok("/..a/.b")),
            ("/a%20b/c%25d", Ok("/a b/c%d")),
            ("/a%2Fb", Err(BadEscape)),
            ("/a%00", Err(BadEscape)),
            ("/a%zz", Err(BadEscape)),
            ("/a%4", Err(BadEscape)),
            ("*", Err(Malformed)),
            ("", Err(Malformed)),
            ("/\0", Err(Malformed)),
            ("/a%zz/\0", Err(BadEscape)),
            ("/\0/a%zz", Err(Malformed)),
            ("a/b", Err(Malformed)),
        ];
        for (raw, want) in cases {
            assert_eq!(norm(raw).as_deref(), want.as_deref(), "{raw}");
        }
    }

    #[test]
    fn too_small_reports_the_normalised_length() {
        let raw = b"/aaaaaaaa/../b/";
        let mut small = [0u8; 2];
        assert_eq!(normalize(raw, &mut small), Err(TooLarge(3)));
        let mut exact = [0u8; 3];
        assert_eq!(normalize(raw, &mut exact), Ok(3));
        assert_eq!(&exact, b"/b/");
    }

    #[test]
    fn decode_keeps_dots_and_slashes() {
        let mut out = [0u8; 32];
        let n = decode(b"//a/../%41+", &mut out).unwrap();
        assert_eq!(&out[..n], b"//a/../A+");
        assert_eq!(decode(b"/a%2fb", &mut out), Err(BadEscape));
    }
}
