//! The fast path for request heads: one pass over the common, clearly valid
//! shape (a known method, a plain origin-form target, `HTTP/1.1`, CRLF
//! lines, one simple Host, simple header names and values). It answers only
//! when it is sure: the result is then exactly what the full parser
//! (`request::parse_head_full`, httparse plus the RFC 9112 rules) gives,
//! the same `Head` and the same header spans. Anything else, including a
//! head not complete yet or one near a limit, is left to the full parser
//! (`None`), which decides as it always did.

use super::head::{known_method, Framing, Head, HeaderSpan, Span};
use super::ParseLimits;

/// What a byte may be in the fast path's request-target.
const T_OTHER: u8 = 0;
/// pchar (without '%') or '/': RFC 3986 via `uri::valid_path_query`.
const T_PLAIN: u8 = 1;
const T_QUERY: u8 = 2;
const T_PERCENT: u8 = 3;

static TARGET: [u8; 256] = {
    let plain = super::alnum_and(b"-._~!$&'()*+,;=:@/");
    let mut t = [T_OTHER; 256];
    let mut b = 0;
    while b < 256 {
        if plain[b] {
            t[b] = T_PLAIN;
        }
        b += 1;
    }
    t[b'?' as usize] = T_QUERY;
    t[b'%' as usize] = T_PERCENT;
    t
};

/// A header name: tchar (RFC 9110 5.6.2), exactly httparse's token set.
static NAME: [bool; 256] = super::alnum_and(b"!#$%&'*+-.^_`|~");

/// A header value byte the fast path takes: visible ASCII and SP. (HTAB,
/// obs-text and control bytes go to the full parser.)
static VALUE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = true;
        b += 1;
    }
    t
};

/// A Host name byte in the one-pass check of `uri::valid_host`:
/// unreserved and sub-delims (a reg-name or an IPv4 address).
static HOST: [bool; 256] = super::alnum_and(b"-._~!$&'()*+,;=");

/// The head at the start of `buf` when it has the common shape and is
/// complete and valid; `headers` then holds its header spans. `None`: not
/// sure, the full parser decides (`headers` is then unspecified).
pub fn parse(buf: &[u8], limits: &ParseLimits, headers: &mut Vec<HeaderSpan>) -> Option<Head> {
    let mut head = Head::EMPTY;
    parse_into(buf, limits, headers, &mut head).then_some(head)
}

/// `parse` writing the head into `head` (the caller's own, so the hot path
/// copies no `Head` around): true when it answered; false when the full
/// parser decides (`head` and `headers` are then unspecified).
/// Not inlined: inside its caller the loops' counters would live on the
/// stack.
#[inline(never)]
pub fn parse_into(
    buf: &[u8],
    limits: &ParseLimits,
    headers: &mut Vec<HeaderSpan>,
    head: &mut Head,
) -> bool {
    parse_fields(buf, limits, headers, head).is_some()
}

#[inline(always)]
fn parse_fields(
    buf: &[u8],
    limits: &ParseLimits,
    headers: &mut Vec<HeaderSpan>,
    head: &mut Head,
) -> Option<()> {
    // A head ending past the limit is the full parser's (431).
    let buf = &buf[..buf.len().min(limits.max_header_bytes)];

    // The request line: method SP origin-form SP "HTTP/1.1" CRLF.
    let sp = if buf.starts_with(b"GET ") {
        3
    } else {
        let sp = buf.iter().take(8).position(|&b| b == b' ')?;
        if !known_method(&buf[..sp]) {
            return None;
        }
        sp
    };
    let path_start = sp + 1;
    if buf.get(path_start) != Some(&b'/') {
        return None;
    }
    let mut i = path_start + 1;
    let mut query_mark = None;
    loop {
        match TARGET[*buf.get(i)? as usize] {
            T_PLAIN => i += 1,
            T_QUERY => {
                query_mark.get_or_insert(i);
                i += 1;
            }
            T_PERCENT => {
                let hex = buf.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                i += 3;
            }
            _ => break,
        }
    }
    let target_end = i;
    if buf.get(i..i + 11)? != b" HTTP/1.1\r\n" || i + 9 > limits.max_request_line {
        return None;
    }
    i += 11;

    // The header lines: name ":" *SP value CRLF, until an empty line.
    headers.clear();
    let mut content_length: Option<u64> = None;
    let mut hosts = 0u32;
    let mut conn_close = false;
    loop {
        if *buf.get(i)? == b'\r' {
            if *buf.get(i + 1)? != b'\n' {
                return None;
            }
            i += 2;
            break;
        }
        let name_start = i;
        // "Host:" (every request has one) without the byte loop. A name
        // the byte loop finds is never "Host" (its ':' would have matched
        // here).
        let is_host_line = matches!(buf.get(i..i + 5),
            Some([a, b, c, d, b':']) if is_host(&[*a, *b, *c, *d]));
        i += if is_host_line {
            4
        } else {
            name_len(&buf[i..])?
        };
        let name = &buf[name_start..i];
        // Usually one SP after the colon (name_len checked the ':').
        i += 1 + usize::from(buf.get(i + 1) == Some(&b' '));
        i += buf[i..].iter().position(|&b| b != b' ')?;
        let value_start = i;
        // `i` becomes the CR ending the value (the LF after it checked).
        let mut value_end;
        if is_host_line {
            // uri::valid_host's common case: name chars, then ":" digits.
            i += host_len(&buf[i..])?;
            hosts += 1;
            value_end = i;
        } else if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
            let mut n: u64 = 0;
            while let Some(d) = buf.get(i)?.checked_sub(b'0').filter(|&d| d < 10) {
                n = n.saturating_mul(10).saturating_add(u64::from(d));
                i += 1;
            }
            if content_length.is_some_and(|prev| prev != n) {
                return None;
            }
            content_length = Some(n);
            value_end = i;
        } else {
            if matches!(name.len(), 6 | 17) {
                // Expect and Transfer-Encoding: the full parser's.
                if name.eq_ignore_ascii_case(b"expect")
                    || name.eq_ignore_ascii_case(b"transfer-encoding")
                {
                    return None;
                }
            }
            i += value_len(&buf[i..])?;
            // httparse drops trailing whitespace (the value starts with a
            // non-SP byte, or is empty and refused below).
            value_end = i;
            while value_end > value_start && buf[value_end - 1] == b' ' {
                value_end -= 1;
            }
            if name.len() == 10 && name.eq_ignore_ascii_case(b"connection") {
                conn_close |= has_close(&buf[value_start..value_end]);
            }
        }
        // The value must end the line here; an empty value (whose span
        // httparse places differently) goes to the full parser.
        if buf[i] != b'\r' || *buf.get(i + 1)? != b'\n' || value_end == value_start {
            return None;
        }
        if headers.len() == limits.max_headers {
            return None;
        }
        headers.push(HeaderSpan {
            name: span(name_start, name.len()),
            value: span(value_start, value_end - value_start),
        });
        i += 2;
    }
    if hosts != 1 {
        return None;
    }
    head.framing = match content_length {
        Some(0) | None => Framing::None,
        Some(n) if n <= limits.max_body_bytes as u64 => Framing::Length(n),
        Some(_) => return None,
    };
    (head.path, head.query) = match query_mark {
        Some(q) => (
            span(path_start, q - path_start),
            span(q + 1, target_end - q - 1),
        ),
        None => (span(path_start, target_end - path_start), Span::default()),
    };
    head.len = i;
    head.method = span(0, sp);
    head.query_mark = query_mark.map(|q| q as u32);
    head.minor_version = 1;
    head.keep_alive = !conn_close;
    head.expect_continue = false;
    head.is_head_method = &buf[..sp] == b"HEAD";
    Some(())
}

/// Whether a header name is "Host", in any case: `| 0x20` turns only the
/// upper-case letters into the lower-case ones compared with.
fn is_host(name: &[u8]) -> bool {
    match name {
        [a, b, c, d] => {
            u32::from_le_bytes([*a, *b, *c, *d]) | 0x2020_2020 == u32::from_le_bytes(*b"host")
        }
        _ => false,
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// SWAR (eight bytes in a u64, the first in the low bits): the top bit of
/// each byte of `x` below `n` (n <= 0x80) is set. Bits above the first set
/// one may be wrong (a borrow), so only the lowest set bit is to be used.
fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
}

/// SWAR: the top bit of each byte of `x` equal to `b` (lowest one exact).
fn equal(x: u64, b: u8) -> u64 {
    below(x ^ (ONES * u64::from(b)), 1)
}

/// How many bytes at the start of `s` are VALUE bytes; None when they all
/// are (the line does not end in `s`). Eight bytes at a time while it can:
/// a byte below 0x20, 0x7f or at/above 0x80 stops it.
fn value_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().ok()?);
        let stop = below(x, 0x20) | equal(x, 0x7f) | (x & HIGH);
        if stop != 0 {
            return Some(i + (stop.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    Some(i + s[i..].iter().position(|&b| !VALUE[b as usize])?)
}

/// The length of the Host value at the start of `s` in `uri::valid_host`'s
/// common case: HOST bytes, then perhaps ':' and digits; the byte after it
/// is neither (the caller checks it is the CR). None when `s` ends first.
/// Eight bytes at a time over the usual letters, digits, '-' and '.' and
/// over the port's digits; any other byte, or the last few, one by one.
/// Inlined: a call would cost as much as the scan of a usual Host.
#[inline(always)]
fn host_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let stop = not_plain_host(u64::from_le_bytes(chunk.try_into().ok()?));
        if stop != 0 {
            i += (stop.trailing_zeros() / 8) as usize;
            break;
        }
        i += 8;
    }
    // From the first byte the word scan stopped at (a HOST byte it does
    // not know, or the end of the name), as a byte loop from the start.
    i += s[i..].iter().position(|&b| !HOST[b as usize])?;
    if s[i] != b':' {
        return Some(i);
    }
    i += 1;
    if let Some(chunk) = s.get(i..i + 8) {
        let stop = not_digit(u64::from_le_bytes(chunk.try_into().ok()?));
        if stop != 0 {
            return Some(i + (stop.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    Some(i + s[i..].iter().position(|&b| !b.is_ascii_digit())?)
}

/// SWAR, exact per byte: the top bit of each byte of `t` (every byte's
/// top bit set, so no borrow crosses a byte) whose low seven bits are at
/// least `n` (n <= 0x80).
fn at_least(t: u64, n: u8) -> u64 {
    (t - ONES * u64::from(n)) & HIGH
}

/// SWAR, exact per byte: the top bit of each byte of `x` that is not an
/// ASCII letter, digit, '-' or '.'.
fn not_plain_host(x: u64) -> u64 {
    let t = x | HIGH;
    // '-', '.', '/' and the digits are 0x2d..=0x39; '/' is taken out.
    let dash_to_nine = at_least(t, 0x2d) & !at_least(t, 0x3a);
    // (v + 0x7f) has its top bit set unless v is 0 (v < 0x80: no carry).
    let slash = !(((x ^ ONES * 0x2f) & !HIGH) + !HIGH) & HIGH;
    // Lower case: only letters land in 0x61..=0x7a after `| 0x20`.
    let y = t | (ONES * 0x20);
    let letter = at_least(y, 0x61) & !at_least(y, 0x7b);
    let plain = ((dash_to_nine & !slash) | letter) & !x;
    !plain & HIGH
}

/// SWAR, exact per byte: the top bit of each byte of `x` that is not an
/// ASCII digit.
fn not_digit(x: u64) -> u64 {
    let t = x | HIGH;
    let digit = at_least(t, 0x30) & !at_least(t, 0x3a) & !x;
    !digit & HIGH
}

/// The length of the header name at the start of `s` when a ':' ends it
/// and every byte before is a NAME byte (at least one); else None. The
/// usual name (letters and '-') with one test per eight bytes; any other
/// name as `any_name_len` finds it.
fn name_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(chunk) = s.get(i..i + 8) {
        let stop = not_letter_or_hyphen(u64::from_le_bytes(chunk.try_into().ok()?));
        if stop != 0 {
            let end = i + (stop.trailing_zeros() / 8) as usize;
            if end > 0 && s[end] == b':' {
                return Some(end);
            }
            break;
        }
        i += 8;
    }
    any_name_len(s)
}

/// SWAR, exact per byte: the top bit of each byte of `x` that is not an
/// ASCII letter or '-'.
fn not_letter_or_hyphen(x: u64) -> u64 {
    let t = x | HIGH;
    let y = t | (ONES * 0x20);
    let letter = at_least(y, 0x61) & !at_least(y, 0x7b);
    let hyphen = !(((x ^ ONES * 0x2d) & !HIGH) + !HIGH) & HIGH;
    !((letter | hyphen) & !x) & HIGH
}

/// `name_len` for any name. Finds the first ':' or byte outside
/// 0x21..=0x7e eight bytes at a time, and on the way whether the name is
/// only letters and '-'; any other name is checked byte by byte.
#[inline(never)]
fn any_name_len(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    let mut plain = true;
    let end = loop {
        let Some(chunk) = s.get(i..i + 8) else {
            let stop = |&b: &u8| b == b':' || !(0x21..0x7f).contains(&b);
            plain = false;
            break i + s[i..].iter().position(stop)?;
        };
        let x = u64::from_le_bytes(chunk.try_into().ok()?);
        let stop = below(x, 0x21) | equal(x, 0x7f) | equal(x, b':') | (x & HIGH);
        if stop != 0 {
            let n = stop.trailing_zeros() / 8;
            // The top bits of the n name bytes in this chunk (all in
            // 0x21..=0x7e, below the first stop).
            let mask = HIGH & ((1u64 << (8 * n)) - 1);
            plain &= letters_or_hyphen(x, mask);
            break i + n as usize;
        }
        plain &= letters_or_hyphen(x, HIGH);
        i += 8;
    };
    let ok = plain || s[..end].iter().all(|&b| NAME[b as usize]);
    (end > 0 && s[end] == b':' && ok).then_some(end)
}

/// SWAR: whether every byte of `x` whose top bit is in `mask` is an ASCII
/// letter or '-', given that those bytes are within 0x21..=0x7e. Exact per
/// byte (no borrow crosses a byte: every sum stays below 0x100).
fn letters_or_hyphen(x: u64, mask: u64) -> bool {
    // Lower case: a letter is then 0x61..=0x7a. Only '-' (and CR, not in
    // range) has 0x2d after `| 0x20`; only letters land in 0x61..=0x7a.
    let y = (x & !HIGH) | (ONES * 0x20);
    let at_least_a = (y + ONES * (0x80 - 0x61)) & HIGH;
    let below_brace = !(y + ONES * (0x80 - 0x7b)) & HIGH;
    let v = y ^ (ONES * 0x2d);
    let hyphen = !(((v & !HIGH) + !HIGH) | v) & HIGH;
    ((at_least_a & below_brace) | hyphen) & mask == mask
}

fn span(start: usize, len: usize) -> Span {
    Span {
        start: start as u32,
        len: len as u32,
    }
}

/// Whether a Connection value lists "close": comma-separated tokens with
/// optional SP around them, as the full parser splits them ("keep-alive"
/// changes nothing in HTTP/1.1).
fn has_close(value: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eight-at-a-time scans against byte-by-byte models: every byte
    /// value at every position of a 12-byte name or value.
    #[test]
    fn swar_scans_match_byte_loops() {
        for b in 0..=255u8 {
            for at in 0..12 {
                let mut s = *b"Accept-Lang:x\r\n";
                s[at] = b;
                let want_value = s.iter().position(|&c| !VALUE[c as usize]);
                assert_eq!(value_len(&s), want_value, "value, {b:#x} at {at}");
                let stop = s.iter().position(|&c| !NAME[c as usize]).unwrap();
                let want_name = (stop > 0 && s[stop] == b':').then_some(stop);
                assert_eq!(name_len(&s), want_name, "name, {b:#x} at {at}");
            }
            for at in 0..8 {
                let mut w = *b"a1-.Zz09";
                w[at] = b;
                let x = u64::from_le_bytes(w);
                let plain = b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
                let first = (not_plain_host(x).trailing_zeros() / 8) as usize;
                assert_eq!(first, if plain { 8 } else { at }, "host, {b:#x} at {at}");
                let mut n = *b"Ab-Yz-mM";
                n[at] = b;
                let first =
                    (not_letter_or_hyphen(u64::from_le_bytes(n)).trailing_zeros() / 8) as usize;
                let simple = b.is_ascii_alphabetic() || b == b'-';
                assert_eq!(first, if simple { 8 } else { at }, "name, {b:#x} at {at}");
                let mut d = *b"01234567";
                d[at] = b;
                let first = (not_digit(u64::from_le_bytes(d)).trailing_zeros() / 8) as usize;
                assert_eq!(
                    first,
                    if b.is_ascii_digit() { 8 } else { at },
                    "digit, {b:#x} at {at}"
                );
            }
            let x = u64::from_le_bytes([b, b'a', b'Z', b'-', b, b'q', b'M', b]);
            let simple = b.is_ascii_alphabetic() || b == b'-';
            if (0x21..0x7f).contains(&b) {
                assert_eq!(letters_or_hyphen(x, HIGH), simple, "{b:#x}");
            }
        }
    }
}
