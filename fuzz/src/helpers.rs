//! Fuzz targets for the request helpers (src/http/{path,query,cookie,
//! forwarded}.rs, `uri::host_parts`), shared with
//! tests/protocol/fuzz_replay.rs (which includes this file by path).
//!
//! Properties checked, besides "no panic":
//! * path: decoded output has no NUL, as many '/' as the input (decoding
//!   never makes one), is no longer than the input, re-encodes to an input
//!   that decodes to it again; the normalised path starts with '/', holds
//!   no empty, `.` or `..` segment, no NUL, is no longer than the input,
//!   equals a plain stack-based model, is a fixed point when it holds no
//!   '%'; a buffer one byte short gives TooLarge with the exact length;
//! * query/form: by name gives the value of the first piece (by index)
//!   whose decoded name matches; decoded outputs hold no NUL, are no longer
//!   than the raw text, and round-trip through form encoding;
//! * cookie: the value found is the first well-formed pair's, borrowed from
//!   the field, without control bytes or quotes;
//! * host: a split Host re-assembles to a value that splits the same; a
//!   Host that parse_head accepts splits (or has a port over 65535);
//! * forwarded: the address returned is the peer or one of the given
//!   elements; an untrusted peer is always returned as is; the result
//!   equals a plain model of the rule (right-most untrusted element, else
//!   the left-most, else X-Real-IP, else the peer); the text form parses
//!   back to the same address.

use std::net::IpAddr;

use connection_core::config::Limits;
use connection_core::http::forwarded::{client_addr, parse_element, parse_trusted, write_ip};
use connection_core::http::request::{parse_head, Parsed};
use connection_core::http::{cookie, path, query, uri, FieldError};

/// Percent-decoding written the plain way; the first problem from the
/// left decides the error. `path`: '+' stays, `%2F` refused; else '+' is
/// a space.
fn decode_model(raw: &[u8], path: bool) -> Result<Vec<u8>, FieldError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            0 => return Err(FieldError::Malformed),
            b'%' => {
                let h = raw
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let b = h
                    .filter(|h| !h.starts_with(['+', '-']))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(FieldError::BadEscape)?;
                if b == 0 || (path && b == b'/') {
                    return Err(FieldError::BadEscape);
                }
                out.push(b);
                i += 3;
            }
            b'+' if !path => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn encode(bytes: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || (b == b'/' && !plus) {
            out.push(b);
        } else if b == b' ' && plus {
            out.push(b'+');
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// Checks that a buffer one byte short of `len` gives `TooLarge(len)`.
fn check_short(len: usize, f: impl FnOnce(&mut [u8]) -> Result<usize, FieldError>) {
    if len > 0 {
        let mut small = vec![0u8; len - 1];
        assert_eq!(f(&mut small), Err(FieldError::TooLarge(len)));
    }
}

/// The normalisation rules written the obvious way (a stack of segments).
fn normalize_model(raw: &[u8]) -> Result<Vec<u8>, FieldError> {
    let rest = raw.strip_prefix(b"/").ok_or(FieldError::Malformed)?;
    decode_model(raw, true)?;
    let mut segs: Vec<Vec<u8>> = Vec::new();
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    let mut dir = false;
    for (i, p) in parts.iter().enumerate() {
        let d = decode_model(p, true)?;
        let last = i + 1 == parts.len();
        match &d[..] {
            b"" | b"." => dir = last,
            b".." => {
                segs.pop().ok_or(FieldError::AboveRoot)?;
                dir = last;
            }
            _ => {
                segs.push(d);
                dir = false;
            }
        }
    }
    let mut out = Vec::new();
    for s in &segs {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if dir || segs.is_empty() {
        out.push(b'/');
    }
    Ok(out)
}

pub fn path_target(data: &[u8]) {
    let mut out = vec![0u8; data.len() + 1];
    let got = path::decode(data, &mut out).map(|n| out[..n].to_vec());
    assert_eq!(
        got,
        decode_model(data, true),
        "decode differs from the model"
    );
    match path::decode(data, &mut out) {
        Ok(n) => {
            let d = &out[..n];
            assert!(n <= data.len());
            assert!(!d.contains(&0), "NUL in decoded path");
            let slashes = |s: &[u8]| s.iter().filter(|&&b| b == b'/').count();
            assert_eq!(slashes(d), slashes(data), "decoding made a '/'");
            let mut again = vec![0u8; 3 * n + 1];
            let m = path::decode(&encode(d, false), &mut again).unwrap();
            assert_eq!(&again[..m], d, "round trip");
            check_short(n, |b| path::decode(data, b));
        }
        Err(e) => assert!(matches!(e, FieldError::BadEscape | FieldError::Malformed)),
    }
    let got = path::normalize(data, &mut out).map(|n| out[..n].to_vec());
    assert_eq!(
        got,
        normalize_model(data),
        "normalize differs from the model"
    );
    if let Ok(p) = got {
        assert!(p.len() <= data.len() && p.starts_with(b"/") && !p.contains(&0));
        for seg in p[1..].split(|&b| b == b'/') {
            assert!(seg != b"." && seg != b"..", "dot segment left");
        }
        assert!(!p.windows(2).any(|w| w == b"//"), "empty segment left");
        if !p.contains(&b'%') {
            let mut again = vec![0u8; p.len() + 1];
            let m = path::normalize(&p, &mut again).unwrap();
            assert_eq!(&again[..m], &p[..], "not a fixed point");
        }
        check_short(p.len(), |b| path::normalize(data, b));
    }
}

/// `[name_len, name..., input...]`.
pub fn query_target(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = (k as usize).min(rest.len());
    let (name, input) = rest.split_at(k);
    let mut out = vec![0u8; input.len() + 1];
    let mut first_match = None;
    for i in 0..1000 {
        let Some((n, v)) = query::at(input, i) else {
            break;
        };
        assert!(!n.contains(&b'&') && !v.contains(&b'&') && !n.contains(&b'='));
        for raw in [n, v] {
            let model = decode_model(raw, false);
            match query::decode(raw, &mut out) {
                Ok(len) => {
                    let d = &out[..len];
                    assert!(len <= raw.len() && !d.contains(&0));
                    assert_eq!(model.as_deref(), Ok(d));
                    let mut again = vec![0u8; 3 * len + 1];
                    let m = query::decode(&encode(d, true), &mut again).unwrap();
                    assert_eq!(&again[..m], d, "round trip");
                    check_short(len, |b| query::decode(raw, b));
                }
                Err(e) => assert_eq!(Err(e), model),
            }
        }
        if first_match.is_none() && decode_model(n, false).is_ok_and(|d| d == name) {
            first_match = Some(v);
        }
    }
    let want = match first_match {
        None => Err(FieldError::NotFound),
        Some(v) => query::decode(v, &mut out).map(|n| out[..n].to_vec()),
    };
    let mut out2 = vec![0u8; input.len() + 1];
    let got = query::find(input, name, &mut out2).map(|n| out2[..n].to_vec());
    assert_eq!(got, want, "by name differs from the first match by index");
}

/// `[name_len, name..., field...]`.
pub fn cookie_target(data: &[u8]) {
    let Some((&k, rest)) = data.split_first() else {
        return;
    };
    let k = (k as usize).min(rest.len());
    let (name, field) = rest.split_at(k);
    let got = cookie::find(field, name);
    let first = cookie::pairs(field).find(|(n, _)| *n == name);
    for (n, v) in cookie::pairs(field) {
        assert!(!n.is_empty() && !n.contains(&b';') && !v.contains(&b';'));
        for s in [n, v] {
            assert!(!s.starts_with(b" ") && !s.ends_with(b" "), "untrimmed");
        }
    }
    match (first, got) {
        (None, r) => assert_eq!(r, Err(FieldError::NotFound)),
        (Some((_, raw)), Ok(v)) => {
            let range = field.as_ptr_range();
            assert!(range.contains(&v.as_ptr()) || v.is_empty(), "not borrowed");
            assert!(v.len() <= raw.len());
            assert!(!v.iter().any(|&b| b < 0x20 || b == 0x7f || b == b'"'));
        }
        (Some(_), r) => assert_eq!(r, Err(FieldError::Malformed)),
    }
}

pub fn host_target(data: &[u8]) {
    let got = uri::host_parts(data);
    if let Ok((h, port)) = got {
        assert!(h.len() <= data.len());
        let mut again = Vec::new();
        if data.first() == Some(&b'[') {
            again.push(b'[');
            again.extend_from_slice(h);
            again.push(b']');
        } else {
            again.extend_from_slice(h);
        }
        if let Some(p) = port {
            again.extend_from_slice(format!(":{p}").as_bytes());
        }
        assert_eq!(uri::host_parts(&again), Ok((h, port)), "re-assembled");
    }
    if data.iter().any(|&b| b == b'\r' || b == b'\n') {
        return;
    }
    let mut req = b"GET / HTTP/1.1\r\nHost: ".to_vec();
    req.extend_from_slice(data);
    req.extend_from_slice(b"\r\n\r\n");
    let mut headers = Vec::new();
    if let Parsed::Complete(_) = parse_head(&req, &Limits::default().parse(), &mut headers) {
        // The parser trims the value's surrounding whitespace.
        let trimmed = data.trim_ascii();
        assert!(
            matches!(uri::host_parts(trimmed), Ok(_) | Err(FieldError::Malformed)),
            "accepted Host does not split"
        );
        if let Err(e) = uri::host_parts(trimmed) {
            let digits = trimmed.rsplit(|&b| b == b':').next().unwrap_or(b"");
            assert!(e == FieldError::Malformed && digits.len() >= 5, "{e:?}");
        }
    }
}

const PEERS: [&str; 6] = [
    "10.0.0.1",
    "::1",
    "203.0.113.9",
    "::ffff:10.0.0.1",
    "2001:db8::1",
    "127.0.0.1",
];
const LISTS: [&str; 4] = [
    "",
    "10.0.0.0/8, ::1",
    "0.0.0.0/0 ::/0",
    "127.0.0.1 2001:db8::/32",
];

/// `[selector, lines...]`: peer = PEERS[s % 6], list = LISTS[s / 6 % 4];
/// lines split at '\n', a line starting with 'R' is an X-Real-IP value
/// (the rest of it), others X-Forwarded-For values.
pub fn forwarded_target(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        if let Some(list) = parse_trusted(text) {
            assert!(list.len() <= 64);
        }
    }
    let peer: IpAddr = PEERS[sel as usize % 6].parse().unwrap();
    let list = parse_trusted(LISTS[sel as usize / 6 % 4]).unwrap();
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let xff: Vec<&[u8]> = lines
        .iter()
        .filter(|l| l.first() != Some(&b'R'))
        .copied()
        .collect();
    let real: Vec<&[u8]> = lines.iter().filter_map(|l| l.strip_prefix(b"R")).collect();
    let got = client_addr(peer, &list, xff.iter().rev().copied(), real.iter().copied());
    let trusted = |ip: IpAddr| list.iter().any(|c| c.contains(ip));
    let peer = peer.to_canonical();
    if !trusted(peer) {
        assert_eq!(got, Ok(peer));
        return;
    }
    // The rule written as a plain model: every element in order, walked
    // from the right past trusted ones.
    let all: Vec<&[u8]> = xff
        .iter()
        .flat_map(|l| l.split(|&b| b == b','))
        .filter(|e| !e.iter().all(|&b| b == b' ' || b == b'\t'))
        .collect();
    let mut model = None;
    for e in all.iter().rev() {
        match parse_element(e) {
            None => {
                model = Some(Err(FieldError::Malformed));
                break;
            }
            Some(ip) if !trusted(ip) => {
                model = Some(Ok(ip));
                break;
            }
            Some(ip) => model = Some(Ok(ip)),
        }
    }
    let model = model.unwrap_or_else(|| match real.len() {
        0 => Ok(peer),
        1 => parse_element(real[0]).ok_or(FieldError::Malformed),
        _ => Err(FieldError::Malformed),
    });
    assert_eq!(got, model, "client address differs from the model");
    let Ok(ip) = got else {
        return;
    };
    let elements: Vec<IpAddr> = all.iter().filter_map(|e| parse_element(e)).collect();
    let from_real = real.iter().filter_map(|r| parse_element(r));
    assert!(
        ip == peer || elements.contains(&ip) || from_real.clone().any(|r| r == ip),
        "{ip} came from nowhere"
    );
    if trusted(ip) && elements.contains(&ip) {
        assert!(elements.iter().all(|&e| trusted(e)));
        assert_eq!(Some(&ip), elements.first(), "not the left-most");
    }
    let mut text = [0u8; 46];
    let n = write_ip(ip, &mut text).unwrap();
    let back: IpAddr = std::str::from_utf8(&text[..n]).unwrap().parse().unwrap();
    assert_eq!(back, ip);
}
