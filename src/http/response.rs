//! Response heads: status lines, header validation, numbers without
//! allocation. Header text passed in by the application is checked here, so
//! response splitting is impossible through the API.

use super::scan;

/// Reason phrase for a status (any 3-digit code is allowed; unknown ones get "Unknown").
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Whether a response with this status may carry a body (RFC 9110 6.4.1).
pub fn status_allows_body(status: u16) -> bool {
    !(100..200).contains(&status) && status != 204 && status != 304
}

/// The bytes of an HTTP token (RFC 9110 5.6.2).
static TOKEN_CHARS: [bool; 256] = super::alnum_and(b"!#$%&'*+-.^_`|~");

/// An HTTP token (RFC 9110 5.6.2).
pub fn valid_header_name(name: &[u8]) -> bool {
    // Runs per header added. The usual name (letters and '-', all token
    // bytes) of eight bytes or more: a word at a time; any other name,
    // or one with another byte, by the table.
    if name.len() >= 8 && scan::all::<scan::PlainName>(name) {
        return true;
    }
    // A fold with no early exit: one table lookup and one AND per byte,
    // no branch per byte.
    !name.is_empty()
        && name
            .iter()
            .fold(true, |ok, &b| ok & TOKEN_CHARS[b as usize])
}

/// Field content: visible ASCII, obs-text, SP and HTAB; never CR, LF, NUL
/// or another control byte.
#[inline]
pub fn valid_header_value(value: &[u8]) -> bool {
    // Runs per header added, and values are mostly short: a 10-byte value
    // is two word checks instead of ten byte checks.
    scan::all::<scan::FieldContent>(value)
}

/// The header name in the NUL-terminated string at `name` (without its
/// NUL) if it is one `valid_header_name` takes, found in one pass that
/// both measures and checks it: the usual bytes (letters, '-') sixteen at
/// a time, then any other token bytes one by one.
///
/// # Safety
/// `name` points to a NUL-terminated string that stays unchanged, and
/// unfreed, for `'a`.
#[inline(always)]
pub unsafe fn c_header_name<'a>(name: *const u8) -> Option<&'a [u8]> {
    // SAFETY: contract. Each byte read below is the string's or its NUL:
    // the bytes before it were token bytes, so not the NUL (which no table
    // entry allows).
    unsafe {
        let mut n = scan::c_run::<scan::PlainName>(name);
        if *name.add(n) != 0 {
            while TOKEN_CHARS[*name.add(n) as usize] {
                n += 1;
            }
            if *name.add(n) != 0 {
                return None;
            }
        }
        (n > 0).then(|| std::slice::from_raw_parts(name, n))
    }
}

/// The header value in the NUL-terminated string at `value` (without its
/// NUL) if `valid_header_value` takes it, measured and checked in one pass.
///
/// # Safety
/// As for `c_header_name`.
#[inline(always)]
pub unsafe fn c_header_value<'a>(value: *const u8) -> Option<&'a [u8]> {
    // SAFETY: contract; `c_run` stops at the NUL at the latest, so byte
    // `n` is the string's or its NUL.
    unsafe {
        let n = scan::c_run::<scan::FieldContent>(value);
        (*value.add(n) == 0).then(|| std::slice::from_raw_parts(value, n))
    }
}

/// The decimal digits of `n`, right-aligned: they are `digits[start..]`.
fn decimal_digits(mut n: u64) -> ([u8; 20], usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return (digits, start);
        }
    }
}

/// Appends the decimal digits of `n`.
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let (digits, start) = decimal_digits(n);
    out.extend_from_slice(&digits[start..]);
}

/// Longest `Content-Length` line: the name, 20 digits and CRLF.
pub(crate) const CONTENT_LENGTH_LINE_MAX: usize = 38;

/// Appends `Content-Length: <n>\r\n`.
pub fn push_content_length(out: &mut Vec<u8>, n: u64) {
    out.reserve(CONTENT_LENGTH_LINE_MAX);
    let len = out.len();
    // SAFETY: `reserve` left CONTENT_LENGTH_LINE_MAX bytes of room after
    // `len`: the line without its CRLF takes at most 36 of them, the CRLF
    // the next 2; every byte up to the new length is written before
    // `set_len`.
    unsafe {
        let d = out.as_mut_ptr().add(len);
        let line = write_content_length(d, n);
        std::ptr::copy_nonoverlapping(b"\r\n".as_ptr(), d.add(line), 2);
        out.set_len(len + line + 2);
    }
}

/// Writes `Content-Length: <n>` (without its CRLF) at `d`; returns its
/// length (at most CONTENT_LENGTH_LINE_MAX - 2).
///
/// # Safety
/// `d` is valid for writing `CONTENT_LENGTH_LINE_MAX` bytes.
#[inline(always)]
pub(crate) unsafe fn write_content_length(d: *mut u8, n: u64) -> usize {
    let digit = |v: u64| b'0' + (v % 10) as u8;
    // SAFETY: every write is inside the first CONTENT_LENGTH_LINE_MAX
    // bytes at `d` (contract): the name is 16 bytes, at most 20 digits.
    unsafe {
        std::ptr::copy_nonoverlapping(b"Content-Length: ".as_ptr(), d, 16);
        // Hot path (every response): up to three digits, in place, with no
        // division loop and no copy call.
        match n {
            0..=9 => {
                *d.add(16) = digit(n);
                17
            }
            10..=99 => {
                *d.add(16) = digit(n / 10);
                *d.add(17) = digit(n);
                18
            }
            100..=999 => {
                *d.add(16) = digit(n / 100);
                *d.add(17) = digit(n / 10);
                *d.add(18) = digit(n);
                19
            }
            _ => {
                let (digits, start) = decimal_digits(n);
                let count = digits.len() - start;
                std::ptr::copy_nonoverlapping(digits[start..].as_ptr(), d.add(16), count);
                16 + count
            }
        }
    }
}

/// Appends `HTTP/1.1 <status> <reason>\r\n`. Answers always say HTTP/1.1
/// (RFC 9110 2.5), also to HTTP/1.0 clients.
pub fn push_status_line(out: &mut Vec<u8>, status: u16) {
    match status {
        200 => out.extend_from_slice(b"HTTP/1.1 200 OK\r\n"),
        _ => {
            out.extend_from_slice(b"HTTP/1.1 ");
            push_decimal(out, status as u64);
            out.push(b' ');
            out.extend_from_slice(reason_phrase(status).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Appends a chunk-size line. Fixed width (8 hex digits) so the space can be
/// reserved before the producer writes the data; leading zeros are valid
/// (chunk-size = 1*HEXDIG).
pub fn chunk_size_line(len: usize) -> [u8; 10] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut line = *b"00000000\r\n";
    let mut n = len;
    for i in (0..8).rev() {
        line[i] = HEX[n & 0xf];
        n >>= 4;
    }
    line
}

/// Appends `src`, as `extend_from_slice` does, without a call to `memcpy`
/// for up to 32 bytes when the room is already there (the usual case on
/// the keep-alive path: the head is reserved in one go): two overlapping
/// fixed-size copies, which compile to a few loads and stores.
#[inline(always)]
pub fn extend_short(out: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if n > SHORT_MAX || out.capacity() - out.len() < n {
        out.extend_from_slice(src);
        return;
    }
    let len = out.len();
    // SAFETY: `n <= SHORT_MAX` bytes of spare capacity follow `len`
    // (checked above), and `src`, a shared slice, cannot overlap them.
    unsafe {
        copy_short(src, out.as_mut_ptr().add(len));
        // The `n` bytes after `len` were all written just above.
        out.set_len(len + n);
    }
}

/// Copies `src` to `dst`: `copy_short` when short, else `memcpy`.
///
/// # Safety
/// `dst` is valid for writing `src.len()` bytes that do not overlap `src`.
#[inline(always)]
pub unsafe fn copy_bytes(src: &[u8], dst: *mut u8) {
    // SAFETY: forwarded contract (`copy_short` only for up to SHORT_MAX).
    unsafe {
        if src.len() <= SHORT_MAX {
            copy_short(src, dst);
        } else {
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
        }
    }
}

/// Longest copy `copy_short` takes.
pub(crate) const SHORT_MAX: usize = 32;

/// Copies `src` (at most `SHORT_MAX` bytes) to `dst` with two overlapping
/// fixed-size copies, no call to `memcpy`.
///
/// # Safety
/// `src.len() <= SHORT_MAX`, and `dst` is valid for writing `src.len()`
/// bytes that do not overlap `src`.
#[inline(always)]
pub unsafe fn copy_short(src: &[u8], dst: *mut u8) {
    let (s, d, n) = (src.as_ptr(), dst, src.len());
    debug_assert!(n <= SHORT_MAX);
    // SAFETY: each copy reads inside `src` (offsets `0..w` and `n - w..n`
    // with `w <= n`) and writes the same offsets inside the `n` bytes at
    // `d` (contract: writable, not overlapping `src`). Together the two
    // copies cover all `n` bytes.
    unsafe {
        if n >= 16 {
            std::ptr::copy_nonoverlapping(s, d, 16);
            std::ptr::copy_nonoverlapping(s.add(n - 16), d.add(n - 16), 16);
        } else if n >= 8 {
            std::ptr::copy_nonoverlapping(s, d, 8);
            std::ptr::copy_nonoverlapping(s.add(n - 8), d.add(n - 8), 8);
        } else if n >= 4 {
            std::ptr::copy_nonoverlapping(s, d, 4);
            std::ptr::copy_nonoverlapping(s.add(n - 4), d.add(n - 4), 4);
        } else if n > 0 {
            *d = *s;
            *d.add(n / 2) = *s.add(n / 2);
            *d.add(n - 1) = *s.add(n - 1);
        }
    }
}

/// The last chunk of a chunked body, with an empty trailer section.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Appends `data` framed as one chunk (size line, data, CRLF).
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&chunk_size_line(data.len()));
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time name check against the byte-by-byte token rule:
    /// every byte value at every position of names of 1 to 25 bytes.
    #[test]
    fn header_name_words_match_byte_model() {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        let base = b"Content-Type-Extra-Longer";
        for len in 1..=base.len() {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut name = base[..len].to_vec();
                    name[at] = b;
                    let want = name.iter().all(|&c| token(c));
                    assert_eq!(valid_header_name(&name), want, "{b:#x} at {at} of {len}");
                }
            }
        }
    }

    /// The C-string checks against the slice checks on the string up to
    /// its NUL: every byte value at every position of names and values of
    /// every length up to 34, at every offset from a sixteen-byte boundary.
    #[test]
    fn c_string_checks_match_slice_checks() {
        #[repr(align(16))]
        struct Aligned([u8; 64]);
        let mut buf = Aligned([0; 64]);
        for skip in 0..16 {
            for len in 0..34 {
                for at in 0..len.max(1) {
                    for b in 0..=255u8 {
                        buf.0 = [0; 64];
                        let s = &mut buf.0[skip..];
                        s[..len].copy_from_slice(&b"Content-Type-X-Forwarded-For-Agent"[..len]);
                        if len > 0 {
                            s[at] = b;
                        }
                        s[len + 1..].fill(b'a');
                        let whole = std::ffi::CStr::from_bytes_until_nul(s).unwrap().to_bytes();
                        // SAFETY: `s` holds a NUL at `len` at the latest.
                        let (name, value) =
                            unsafe { (c_header_name(s.as_ptr()), c_header_value(s.as_ptr())) };
                        let want = |ok: bool| ok.then_some(whole);
                        let ctx = format!("{b:#x} at {at} of {len}, offset {skip}");
                        assert_eq!(name, want(valid_header_name(whole)), "name {ctx}");
                        assert_eq!(value, want(valid_header_value(whole)), "value {ctx}");
                    }
                }
            }
        }
    }

    #[test]
    fn header_checks() {
        assert!(valid_header_name(b"X-Thing"));
        assert!(!valid_header_name(b"X Thing"));
        assert!(!valid_header_name(b"X:"));
        assert!(!valid_header_name(b""));
        assert!(valid_header_value(b"a b\tc"));
        assert!(!valid_header_value(b"a\r\nSet-Cookie: x"));
        assert!(!valid_header_value(b"a\0"));
    }

    /// Every byte value at every position of values 1 to 24 bytes long
    /// (so in the byte loop, in a whole word and in the overlapping last
    /// word) is judged as the one-byte rule says: the edge bytes 0x00,
    /// 0x09, 0x0a, 0x0d, 0x1f, 0x20, 0x7e, 0x7f, 0x80, 0xff among them.
    #[test]
    fn header_values_byte_by_byte() {
        let allowed = |b: u8| b == b'\t' || (b >= 0x20 && b != 0x7f);
        for (b, ok) in [
            (0x00, false),
            (0x09, true),
            (0x0a, false),
            (0x0d, false),
            (0x1f, false),
            (0x20, true),
            (0x7e, true),
            (0x7f, false),
            (0x80, true),
            (0xff, true),
        ] {
            assert_eq!(allowed(b), ok, "byte {b:#04x}");
        }
        for len in 1..=24 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    assert_eq!(
                        valid_header_value(&v),
                        allowed(b),
                        "byte {b:#04x} at {pos} of {len}"
                    );
                }
            }
        }
        // Neighbouring bytes do not mask each other (a borrow or carry
        // between bytes would).
        assert!(!valid_header_value(b"\x80\x1f\x80\x7f\xff\x00\x20\x09"));
        assert!(valid_header_value(b"\x20\x80\x7e\x09\xff\x21\x20\x09\x80"));
        assert!(valid_header_value(b""));
    }

    /// Every length from 0 to 40 (each copy width, both ends of each,
    /// and the fallback past 32), with and without room reserved, appends
    /// exactly the source after what was there.
    #[test]
    fn short_appends_copy_every_byte() {
        let src: Vec<u8> = (1..=40u8).collect();
        for n in 0..=40 {
            for reserve in [false, true] {
                let mut out = b"ab".to_vec();
                if reserve {
                    out.reserve(n);
                } else {
                    out.shrink_to_fit();
                }
                extend_short(&mut out, &src[..n]);
                let mut want = b"ab".to_vec();
                want.extend_from_slice(&src[..n]);
                assert_eq!(out, want, "{n} bytes, reserved: {reserve}");
            }
        }
    }

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        push_decimal(&mut v, 0);
        v.push(b' ');
        push_decimal(&mut v, 1_048_576);
        assert_eq!(v, b"0 1048576");
        for n in [7, 10, 42, 99, 100, 505, 999, 1000, 4096, u64::MAX] {
            let mut v = Vec::new();
            push_decimal(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
        assert_eq!(&chunk_size_line(4096), b"00001000\r\n");
    }

    #[test]
    fn content_length_lines() {
        // Every length through the fixed-array cases and past them, then
        // the large ones.
        let large = [65_535, 1 << 40, u64::MAX];
        for n in (0..=1100).chain(large) {
            let mut v = b"x".to_vec();
            push_content_length(&mut v, n);
            assert_eq!(v, format!("xContent-Length: {n}\r\n").as_bytes());
        }
    }

    /// The in-place line is `Content-Length: <n>` for every length through
    /// the in-place digits and past them, and writes nothing past its
    /// length.
    #[test]
    fn in_place_content_length() {
        for n in (0..=1100).chain([65_535, 1 << 40, u64::MAX]) {
            let mut room = [b'#'; CONTENT_LENGTH_LINE_MAX + 1];
            // SAFETY: `room` has more than CONTENT_LENGTH_LINE_MAX bytes.
            let len = unsafe { write_content_length(room.as_mut_ptr(), n) };
            assert_eq!(&room[..len], format!("Content-Length: {n}").as_bytes());
            assert!(room[len..].iter().all(|&b| b == b'#'), "{n}");
        }
    }

    #[test]
    fn decimals() {
        for n in (0..=1100).chain([65_535, 1 << 40, u64::MAX]) {
            let mut v = b"x".to_vec();
            push_decimal(&mut v, n);
            assert_eq!(v, format!("x{n}").as_bytes());
        }
    }

    #[test]
    fn status_lines() {
        for (status, line) in [
            (200, &b"HTTP/1.1 200 OK\r\n"[..]),
            (404, b"HTTP/1.1 404 Not Found\r\n"),
            (599, b"HTTP/1.1 599 Unknown\r\n"),
        ] {
            let mut v = Vec::new();
            push_status_line(&mut v, status);
            assert_eq!(v, line);
        }
    }
}
