//! Cookies by name from a Cookie field value (RFC 6265 4.2.1:
//! `cookie-string = cookie-pair *( ";" SP cookie-pair )`), read leniently
//! the way browsers send them, strictly where it matters for safety.
//!
//! Rules (README "Request helpers"):
//! * the value splits at ';'; each piece is trimmed of spaces and tabs;
//!   empty pieces, pieces without '=' and pieces with an empty name are
//!   skipped (malformed pairs are never an error, they are not cookies);
//! * the name is what precedes the first '=' (trimmed), compared exactly
//!   (case-sensitive); the value is the rest (trimmed), '=' included;
//! * a value in double quotes loses them (`"v"` gives `v`); the value is
//!   not decoded;
//! * the first matching pair wins; a matching value holding a control
//!   byte, or a double quote other than one enclosing pair, is
//!   `Malformed`.

use super::FieldError;

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Every well-formed pair of one Cookie field value: (name, raw value).
pub fn pairs(field: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    field.split(|&b| b == b';').filter_map(|piece| {
        let piece = trim(piece);
        let eq = piece.iter().position(|&b| b == b'=')?;
        let name = trim(&piece[..eq]);
        (!name.is_empty()).then(|| (name, trim(&piece[eq + 1..])))
    })
}

/// A raw cookie value with its quotes removed, or `Malformed`.
pub fn unquote(raw: &[u8]) -> Result<&[u8], FieldError> {
    let inner = match raw {
        [b'"', inner @ .., b'"'] => inner,
        _ => raw,
    };
    if inner.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'"') {
        return Err(FieldError::Malformed);
    }
    Ok(inner)
}

/// The value of cookie `name` in one Cookie field value: borrowed from it,
/// or `NotFound`, or `Malformed`.
pub fn find<'a>(field: &'a [u8], name: &[u8]) -> Result<&'a [u8], FieldError> {
    let (_, raw) = pairs(field)
        .find(|(n, _)| *n == name)
        .ok_or(FieldError::NotFound)?;
    unquote(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FieldError::*;

    #[test]
    fn cookie_table() {
        let cases: &[(&str, &str, Result<&str, FieldError>)] = &[
            ("a=1; b=2", "b", Ok("2")),
            ("a=1;b=2", "b", Ok("2")),
            ("  a = 1 ;  b=2  ", "a", Ok("1")),
            ("a=1; a=2", "a", Ok("1")),
            ("a=\"quoted v\"", "a", Ok("quoted v")),
            ("a=\"\"", "a", Ok("")),
            ("a=x=y==", "a", Ok("x=y==")),
            ("a=", "a", Ok("")),
            ("=v; a=1", "", Err(NotFound)),
            ("=v; a=1", "a", Ok("1")),
            ("noeq; a=1", "noeq", Err(NotFound)),
            ("noeq; a=1", "a", Ok("1")),
            ("A=1", "a", Err(NotFound)),
            ("a=\"x", "a", Err(Malformed)),
            ("a=x\"y\"", "a", Err(Malformed)),
            ("a=\x01", "a", Err(Malformed)),
            ("a=1\tb", "a", Err(Malformed)),
            (";;; a=1 ;;", "a", Ok("1")),
            ("", "a", Err(NotFound)),
            ("a=%41", "a", Ok("%41")),
        ];
        for (field, name, want) in cases {
            let got = find(field.as_bytes(), name.as_bytes()).map(|v| String::from_utf8_lossy(v));
            assert_eq!(got.as_deref(), want.as_deref(), "{field:?} {name}");
        }
    }
}
