//! The fast path for request heads: one pass over the common, clearly valid
//! shape (a known method, a plain origin-form target, `HTTP/1.1`, CRLF
//! lines, one simple Host, simple header names and values). It answers only
//! when it is sure: the result is then exactly what the full parser
//! (`request::parse_head_full`, httparse plus the RFC 9112 rules) gives,
//! the same `Head` and the same header spans. Anything else, including a
//! head not complete yet or one near a limit, is left to the full parser
//! (`None`), which decides as it always did.

use super::head::{known_method, Framing, Head, HeaderSpan, Span};
use super::scan::{self, Digit, PlainHost, PlainName, Value};
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

/// A Host name byte in the one-pass check of `uri::valid_host`:
/// unreserved and sub-delims (a reg-name or an IPv4 address).
static HOST: [bool; 256] = super::alnum_and(b"-._~!$&'()*+,;=");

/// The head at the start of `buf` when it has the common shape and is
/// complete and valid; `headers` then holds its header spans. `None`: not
/// sure, the full parser decides (`headers` is then unspecified).
pub fn parse(buf: &[u8], limits: &ParseLimits, headers: &mut Vec<HeaderSpan>) -> Option<Head> {
    let mut head = Head::default();
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
    let sp = if buf.starts_with(b"GET /") {
        3
    } else {
        let sp = buf.iter().take(8).position(|&b| b == b' ')?;
        if !known_method(&buf[..sp]) || buf.get(sp + 1) != Some(&b'/') {
            return None;
        }
        sp
    };
    let path_start = sp + 1;
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
    if buf.get(i..i + 11)? != b" HTTP/1.1\r\n" || i + 9 > limits.max_request_line {
        return None;
    }
    // The request line's part of the head, written now rather than after
    // the header loop: its offsets need no register across the loop.
    (head.path, head.query) = match query_mark {
        Some(q) => (span(path_start, q - path_start), span(q + 1, i - q - 1)),
        None => (span(path_start, i - path_start), Span::default()),
    };
    head.method = span(0, sp);
    head.query_mark = query_mark.map(|q| q as u32);
    head.minor_version = 1;
    head.expect_continue = false;
    head.is_head_method = sp == 4 && buf.starts_with(b"HEAD");
    i += 11;

    // The header lines: name ":" *SP value CRLF, until an empty line.
    // Most clients send Host first (wrk, curl, browsers): its line is
    // taken before the loop, so a head with no other field never enters
    // the loop (nor sets up the scans of the other fields).
    headers.clear();
    let mut fields = Fields::default();
    if host_name_at(buf, i) {
        i = header_line(buf, i, true, limits, headers, &mut fields)?;
    }
    if *buf.get(i)? != b'\r' {
        loop {
            let is_host = host_name_at(buf, i);
            i = header_line(buf, i, is_host, limits, headers, &mut fields)?;
            if *buf.get(i)? == b'\r' {
                break;
            }
        }
    }
    if *buf.get(i + 1)? != b'\n' {
        return None;
    }
    i += 2;
    let Fields {
        content_length,
        hosts,
        conn_close,
    } = fields;
    if hosts != 1 {
        return None;
    }
    head.framing = match content_length {
        Some(0) | None => Framing::None,
        Some(n) if n <= limits.max_body_bytes as u64 => Framing::Length(n),
        Some(_) => return None,
    };
    head.len = i;
    head.keep_alive = !conn_close;
    Some(())
}

/// What the header lines said so far.
#[derive(Default)]
struct Fields {
    content_length: Option<u64>,
    hosts: u32,
    conn_close: bool,
}

/// Whether the header line at `i` names "Host" (any case), by one load
/// when eight bytes are there: "host:" once the name's letters are
/// lower-cased (`| 0x20` on those four bytes only, as in `is_host`). A
/// name `name_len` finds is then never "Host" (its ':' would have matched
/// here).
#[inline(always)]
fn host_name_at(buf: &[u8], i: usize) -> bool {
    match buf.get(i..i + 8) {
        Some(w) => {
            let x = u64::from_le_bytes(w.try_into().unwrap_or_default());
            (x | 0x2020_2020) & 0xff_ffff_ffff == u64::from_le_bytes(*b"host:\0\0\0")
        }
        None => matches!(buf.get(i..i + 5),
            Some([a, b, c, d, b':']) if is_host(&[*a, *b, *c, *d])),
    }
}

/// The header line at `i` (not the empty line; `is_host_line` from
/// `host_name_at`): its spans pushed to `headers`, what it says noted in
/// `fields`. Returns where the next line starts; None when the full
/// parser decides.
#[inline(always)]
fn header_line(
    buf: &[u8],
    mut i: usize,
    is_host_line: bool,
    limits: &ParseLimits,
    headers: &mut Vec<HeaderSpan>,
    fields: &mut Fields,
) -> Option<usize> {
    let name_start = i;
    i += if is_host_line {
        4
    } else {
        name_len(&buf[i..])?
    };
    let name = &buf[name_start..i];
    // Usually one SP after the colon (name_len checked the ':'), then
    // the value; else every SP skipped.
    i = match buf.get(i + 1..i + 3) {
        Some([b' ', b]) if *b != b' ' => i + 2,
        _ => i + 1 + buf[i + 1..].iter().position(|&b| b != b' ')?,
    };
    let value_start = i;
    // `i` becomes the CR ending the value (the LF after it checked).
    let mut value_end;
    if is_host_line {
        // uri::valid_host's common case: name chars, then ":" digits.
        i += host_len(&buf[i..])?;
        fields.hosts += 1;
        value_end = i;
    } else if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
        let mut n: u64 = 0;
        while let Some(d) = buf.get(i)?.checked_sub(b'0').filter(|&d| d < 10) {
            n = n.saturating_mul(10).saturating_add(u64::from(d));
            i += 1;
        }
        if fields.content_length.is_some_and(|prev| prev != n) {
            return None;
        }
        fields.content_length = Some(n);
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
        i += scan::run::<Value>(&buf[i..]);
        // httparse drops trailing whitespace (the value starts with a
        // non-SP byte, or is empty and refused below).
        value_end = i;
        while value_end > value_start && buf[value_end - 1] == b' ' {
            value_end -= 1;
        }
        if name.len() == 10 && name.eq_ignore_ascii_case(b"connection") {
            // Browsers' "keep-alive" (no "close" in it) without the split.
            let value = &buf[value_start..value_end];
            fields.conn_close |= !value.eq_ignore_ascii_case(b"keep-alive") && has_close(value);
        }
    }
    // The value must end the line here; an empty value (whose span
    // httparse places differently) goes to the full parser.
    if !matches!(buf.get(i..), Some([b'\r', b'\n', ..])) || value_end == value_start {
        return None;
    }
    if headers.len() == limits.max_headers {
        return None;
    }
    headers.push(HeaderSpan {
        name: span(name_start, name.len()),
        value: span(value_start, value_end - value_start),
    });
    Some(i + 2)
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

/// The length of the Host value at the start of `s` in `uri::valid_host`'s
/// common case: HOST bytes, then perhaps ':' and digits; the byte after it
/// is neither (the caller checks it is the CR). None when `s` ends first.
/// The usual letters, digits, '-' and '.' and the port's digits many at a
/// time (scan.rs); any other HOST byte from there one by one.
#[inline(always)]
fn host_len(s: &[u8]) -> Option<usize> {
    let mut i = scan::run::<PlainHost>(s);
    // Usually the wide scan stopped at the port's ':'. Else from the byte
    // it stopped at (a HOST byte it does not know, or the end of the
    // name), as a byte loop from the start.
    if *s.get(i)? != b':' {
        i += s[i..].iter().position(|&b| !HOST[b as usize])?;
        if s[i] != b':' {
            return Some(i);
        }
    }
    i += 1;
    i += scan::run::<Digit>(&s[i..]);
    (i < s.len()).then_some(i)
}

/// The length of the header name at the start of `s` when a ':' ends it
/// and every byte before is a NAME byte (at least one); else None. The
/// usual name (letters and '-') many at a time (scan.rs); any other name
/// byte by byte. Inlined: a call would cost about what the scan does.
#[inline(always)]
fn name_len(s: &[u8]) -> Option<usize> {
    let end = scan::run::<PlainName>(s);
    if end > 0 && s.get(end) == Some(&b':') {
        return Some(end);
    }
    let end = s.iter().position(|&b| !NAME[b as usize])?;
    (end > 0 && s[end] == b':').then_some(end)
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

    /// The name and Host scans against byte-by-byte models: every byte
    /// value at every position of a name or a Host value.
    #[test]
    fn name_and_host_scans_match_byte_loops() {
        for b in 0..=255u8 {
            for at in 0..24 {
                let mut s = *b"Accept-Language-Extra:x\r\n";
                s[at] = b;
                let stop = s.iter().position(|&c| !NAME[c as usize]).unwrap();
                let want = (stop > 0 && s[stop] == b':').then_some(stop);
                assert_eq!(name_len(&s), want, "name, {b:#x} at {at}");

                let mut h = *b"www.example-1.org:8080\r\n";
                h[at] = b;
                let mut i = h.iter().position(|&c| !HOST[c as usize]).unwrap();
                if h[i] == b':' {
                    i += 1 + h[i + 1..].iter().position(|c| !c.is_ascii_digit()).unwrap();
                }
                assert_eq!(host_len(&h), Some(i), "host, {b:#x} at {at}");
            }
        }
    }
}
