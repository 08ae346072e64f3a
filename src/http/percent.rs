//! Percent-decoding for the request helpers: a strict check of every
//! escape, then the `percent-encoding` crate's decoder (an iterator over
//! bytes: nothing is allocated), written into the caller's buffer.
//!
//! The crate's decoder is lenient (an invalid escape passes through as
//! text), so the escapes are checked here first: every '%' must be
//! followed by two hex digits, and no escape may decode to NUL (the
//! results are C strings) or, where the caller says so, to '/'. A NUL
//! byte in the input itself is `Malformed`.

use percent_encoding::percent_decode;

use super::FieldError;

/// Which escapes are refused besides invalid ones and `%00`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A path: `%2F` is refused too (decoding must not create separators),
    /// and '+' is a plus.
    Path,
    /// A query or form value (application/x-www-form-urlencoded): '+' is a
    /// space, `%2F` decodes to '/'.
    Form,
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Checks every escape of `raw` and returns its decoded length: the first
/// problem from the left decides the error (`Malformed` for a NUL byte,
/// `BadEscape` for an escape).
pub fn check(raw: &[u8], mode: Mode) -> Result<usize, FieldError> {
    let mut len = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == 0 {
            // Not from a request head (the parser refuses it), but a form
            // body may hold one: the results are C strings.
            return Err(FieldError::Malformed);
        }
        if raw[i] == b'%' {
            let (Some(hi), Some(lo)) = (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) else {
                return Err(FieldError::BadEscape);
            };
            let byte = hi << 4 | lo;
            if byte == 0 || (byte == b'/' && mode == Mode::Path) {
                return Err(FieldError::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
        len += 1;
    }
    Ok(len)
}

/// The decoded bytes of `raw`, which `check` accepted: the crate's
/// decoder, with '+' as a space in `Mode::Form`. Allocates nothing.
pub fn decoded(raw: &[u8], mode: Mode) -> impl Iterator<Item = u8> + '_ {
    let plus = mode == Mode::Form;
    raw.split(move |&b| plus && b == b'+')
        .enumerate()
        .flat_map(|(i, piece)| {
            (i > 0)
                .then_some(b' ')
                .into_iter()
                .chain(percent_decode(piece))
        })
}

/// Decodes `raw` into `out`: the decoded length, or `TooLarge(needed)`
/// (nothing useful written), or `BadEscape`.
pub fn decode_into(raw: &[u8], mode: Mode, out: &mut [u8]) -> Result<usize, FieldError> {
    let len = check(raw, mode)?;
    if len > out.len() {
        return Err(FieldError::TooLarge(len));
    }
    for (slot, b) in out.iter_mut().zip(decoded(raw, mode)) {
        *slot = b;
    }
    Ok(len)
}

/// Whether the decoded form of `raw` (which `check` accepted) equals `want`.
pub fn decoded_eq(raw: &[u8], mode: Mode, want: &[u8]) -> bool {
    decoded(raw, mode).eq(want.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(raw: &str, mode: Mode) -> Result<String, FieldError> {
        let mut out = [0u8; 64];
        let n = decode_into(raw.as_bytes(), mode, &mut out)?;
        Ok(String::from_utf8_lossy(&out[..n]).into_owned())
    }

    #[test]
    fn escapes_table() {
        use FieldError::*;
        let cases: &[(&str, Mode, Result<&str, FieldError>)] = &[
            ("abc", Mode::Path, Ok("abc")),
            ("a%20b", Mode::Path, Ok("a b")),
            ("a+b", Mode::Path, Ok("a+b")),
            ("a+b", Mode::Form, Ok("a b")),
            ("a%2Bb", Mode::Form, Ok("a+b")),
            ("%2f", Mode::Form, Ok("/")),
            ("%2f", Mode::Path, Err(BadEscape)),
            ("%2F", Mode::Path, Err(BadEscape)),
            ("%00", Mode::Form, Err(BadEscape)),
            ("%00", Mode::Path, Err(BadEscape)),
            ("%zz", Mode::Form, Err(BadEscape)),
            ("%4", Mode::Form, Err(BadEscape)),
            ("%", Mode::Path, Err(BadEscape)),
            ("a%4g", Mode::Path, Err(BadEscape)),
            ("%25", Mode::Path, Ok("%")),
            ("%2525", Mode::Path, Ok("%25")),
            ("%C3%A9", Mode::Form, Ok("é")),
            ("++", Mode::Form, Ok("  ")),
            ("", Mode::Form, Ok("")),
            ("a\0b", Mode::Form, Err(Malformed)),
            ("\0%zz", Mode::Path, Err(Malformed)),
            ("%zz\0", Mode::Path, Err(BadEscape)),
        ];
        for (raw, mode, want) in cases {
            assert_eq!(
                dec(raw, *mode).as_deref(),
                want.as_deref(),
                "{raw} {mode:?}"
            );
        }
    }

    #[test]
    fn too_small_reports_the_length() {
        let mut out = [0u8; 2];
        assert_eq!(
            decode_into(b"a%20bc", Mode::Path, &mut out),
            Err(FieldError::TooLarge(4))
        );
        assert_eq!(decode_into(b"a%20", Mode::Path, &mut out), Ok(2));
        assert_eq!(&out, b"a ");
    }
}
