//! Query strings and `application/x-www-form-urlencoded` bodies: one
//! parser for both (WHATWG URL "application/x-www-form-urlencoded
//! parsing", without its lossy UTF-8 step: bytes stay bytes).
//!
//! Rules (README "Request helpers"):
//! * the input splits at '&' only (';' is an ordinary byte); empty pieces
//!   ("a=1&&b=2", a trailing '&') are skipped and not counted;
//! * a piece splits at its first '=' into name and value; a piece without
//!   '=' is a name with an empty value; "=v" has an empty name;
//! * names and values decode with '+' as a space and `%XX` as the byte XX;
//!   an invalid escape or `%00` is `BadEscape`, a NUL byte `Malformed`
//!   (for by-name lookups, a piece whose name does not decode never
//!   matches);
//! * by name: the first piece whose decoded name equals the name exactly
//!   (case-sensitive); by index: every piece in order, duplicates included.

use super::percent::{check, decode_into, decoded_eq, Mode};
use super::FieldError;

/// One raw piece: its name and value, not decoded (value empty when the
/// piece has no '=').
pub fn pieces(input: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    input
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(eq) => (&p[..eq], &p[eq + 1..]),
            None => (p, &p[p.len()..]),
        })
}

/// The raw value of the first piece whose decoded name is `name`.
pub fn find_raw<'a>(input: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    pieces(input)
        .find(|(n, _)| check(n, Mode::Form).is_ok() && decoded_eq(n, Mode::Form, name))
        .map(|(_, v)| v)
}

/// The decoded value of the first piece named `name`, into `out`: its
/// length, or `NotFound`, `BadEscape`, `Malformed`, `TooLarge(needed)`.
pub fn find(input: &[u8], name: &[u8], out: &mut [u8]) -> Result<usize, FieldError> {
    let raw = find_raw(input, name).ok_or(FieldError::NotFound)?;
    decode(raw, out)
}

/// Piece `index` (0-based, empty pieces not counted), raw.
pub fn at(input: &[u8], index: usize) -> Option<(&[u8], &[u8])> {
    pieces(input).nth(index)
}

/// A raw name or value decoded into `out` (form rules).
pub fn decode(raw: &[u8], out: &mut [u8]) -> Result<usize, FieldError> {
    decode_into(raw, Mode::Form, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FieldError::*;

    fn get(input: &str, name: &str) -> Result<String, FieldError> {
        let mut out = [0u8; 64];
        let n = find(input.as_bytes(), name.as_bytes(), &mut out)?;
        Ok(String::from_utf8_lossy(&out[..n]).into_owned())
    }

    #[test]
    fn by_name_table() {
        let cases: &[(&str, &str, Result<&str, FieldError>)] = &[
            ("a=1&b=2", "b", Ok("2")),
            ("a=1&a=2", "a", Ok("1")),
            ("a=&b=2", "a", Ok("")),
            ("flag&b=2", "flag", Ok("")),
            ("a=1", "A", Err(NotFound)),
            ("", "a", Err(NotFound)),
            ("=v", "", Ok("v")),
            ("q=a+b%2Bc", "q", Ok("a b+c")),
            ("a+b=1", "a b", Ok("1")),
            ("a%20b=1", "a b", Ok("1")),
            ("x=a=b", "x", Ok("a=b")),
            ("&&a=1&&", "a", Ok("1")),
            ("a=1;b=2", "a", Ok("1;b=2")),
            ("a=%zz", "a", Err(BadEscape)),
            ("a=%4", "a", Err(BadEscape)),
            ("a=%00", "a", Err(BadEscape)),
            ("%zz=1&%7a%7a=2", "zz", Ok("2")),
            ("p=%2F", "p", Ok("/")),
            ("p=a\0", "p", Err(Malformed)),
            ("p\0=1&p=2", "p", Ok("2")),
        ];
        for (input, name, want) in cases {
            assert_eq!(
                get(input, name).as_deref(),
                want.as_deref(),
                "{input} {name}"
            );
        }
    }

    #[test]
    fn by_index_enumerates_duplicates_and_skips_empty_pieces() {
        let input = b"a=1&&a=2&flag&=e&";
        let all: Vec<_> = (0..).map_while(|i| at(input, i)).collect();
        let want: Vec<(&[u8], &[u8])> =
            vec![(b"a", b"1"), (b"a", b"2"), (b"flag", b""), (b"", b"e")];
        assert_eq!(all, want);
    }
}
