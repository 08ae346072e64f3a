//! The request-target and Host syntax (RFC 9112 3.2, RFC 3986 via RFC 9110
//! 4.1 and 7.2): which form a target has, whether its characters and
//! percent-escapes are valid, and whether an authority is a valid
//! `uri-host [":" port]`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scheme {
    /// origin-form or asterisk-form: no scheme of its own.
    None,
    Http,
    Https,
    /// An absolute-URI with a scheme this server does not serve.
    Other,
}

pub(super) struct Target<'a> {
    pub(super) scheme: Scheme,
    /// The authority of an http or https absolute-form target.
    pub(super) authority: Option<&'a [u8]>,
    /// What the application sees as path and query: the target itself
    /// (origin-form, "*"), or the part after the authority (absolute-form;
    /// empty for "http://host", which Request_Path reports as "/").
    pub(super) path_and_query: &'a [u8],
}

/// The form of the request-target (RFC 9112 3.2) and whether its syntax is
/// valid (RFC 3986 via RFC 9110 4.1); Err is the status to refuse with.
pub(super) fn classify_target<'a>(method: &str, target: &'a [u8]) -> Result<Target<'a>, u16> {
    if target.first() == Some(&b'/') {
        // origin-form = absolute-path [ "?" query ]
        if !valid_path_query(target) {
            return Err(400);
        }
        return Ok(Target {
            scheme: Scheme::None,
            authority: None,
            path_and_query: target,
        });
    }
    if target == b"*" {
        // asterisk-form, only for a server-wide OPTIONS (RFC 9112 3.2.4).
        if method != "OPTIONS" {
            return Err(400);
        }
        return Ok(Target {
            scheme: Scheme::None,
            authority: None,
            path_and_query: target,
        });
    }
    // absolute-form = absolute-URI = scheme ":" hier-part [ "?" query ]
    let Some(colon) = target.iter().position(|&b| b == b':') else {
        return Err(400);
    };
    let (scheme, rest) = (&target[..colon], &target[colon + 1..]);
    if !valid_scheme(scheme) {
        return Err(400);
    }
    let https = scheme.eq_ignore_ascii_case(b"https");
    if !https && !scheme.eq_ignore_ascii_case(b"http") {
        // A syntactically valid URI of another scheme: misdirected (421),
        // decided after the rest of the head; junk: 400.
        if !valid_uri_chars(rest) {
            return Err(400);
        }
        return Ok(Target {
            scheme: Scheme::Other,
            authority: None,
            // Empty, but inside the buffer: spans are offsets into it.
            path_and_query: &target[target.len()..],
        });
    }
    // http-URI = "http" "://" authority path-abempty [ "?" query ]
    // (RFC 9110 4.2.1; https the same, 4.2.2).
    let Some(after) = rest.strip_prefix(b"//") else {
        return Err(400);
    };
    let end = after
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(after.len());
    let (authority, path_and_query) = after.split_at(end);
    // A userinfo ("user@host") is refused (RFC 9110 4.2.4: treat it as an
    // error), and so is an empty host (4.2.1: MUST reject as invalid).
    if authority.contains(&b'@') || !valid_host(authority) {
        return Err(400);
    }
    match split_port(authority) {
        Some((host, _)) if !host.is_empty() => {}
        _ => return Err(400),
    }
    if !valid_path_query(path_and_query) {
        return Err(400);
    }
    Ok(Target {
        scheme: if https { Scheme::Https } else { Scheme::Http },
        authority: Some(authority),
        path_and_query,
    })
}

/// RFC 3986 unreserved and sub-delims, plus ":" and "@": a pchar without
/// the percent-encoding.
const PCHAR: [bool; 256] = super::alnum_and(b"-._~!$&'()*+,;=:@");
/// A path and its query: pchar, "/" and (only in the query) "?".
static PATH_CHARS: [bool; 256] = super::alnum_and(b"-._~!$&'()*+,;=:@/");
/// Everything an absolute-URI of another scheme may hold after "scheme:".
static URI_CHARS: [bool; 256] = super::alnum_and(b"-._~!$&'()*+,;=:@/?[]");

/// `path-abempty [ "?" query ]` (or an absolute-path): pchar and "/", then
/// after the first "?" also "?"; "%" only as "%" HEXDIG HEXDIG; no
/// fragment, no space, no non-ASCII byte.
fn valid_path_query(s: &[u8]) -> bool {
    // The first "?" starts the query, where "?" is a plain character: so
    // "?" is valid anywhere.
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if PATH_CHARS[b as usize] || b == b'?' {
            i += 1;
        } else if b == b'%' && pct_encoded(s, i) {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

fn valid_uri_chars(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        if URI_CHARS[s[i] as usize] {
            i += 1;
        } else if s[i] == b'%' && pct_encoded(s, i) {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

fn pct_encoded(s: &[u8], at: usize) -> bool {
    s.len() > at + 2 && s[at + 1].is_ascii_hexdigit() && s[at + 2].is_ascii_hexdigit()
}

/// scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
fn valid_scheme(s: &[u8]) -> bool {
    s.first().is_some_and(u8::is_ascii_alphabetic)
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
}

/// `uri-host [ ":" port ]` split into host and port (None when the port
/// is not all digits or an IP literal is not closed).
pub(super) fn split_port(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let host_end = if value.first() == Some(&b'[') {
        value.iter().position(|&b| b == b']')? + 1
    } else {
        value.iter().position(|&b| b == b':').unwrap_or(value.len())
    };
    let (host, rest) = value.split_at(host_end);
    let port = match rest.split_first() {
        None => rest,
        Some((b':', port)) => port,
        Some(_) => return None,
    };
    port.iter().all(u8::is_ascii_digit).then_some((host, port))
}

/// A Host value is `uri-host [ ":" port ]` (RFC 9112 3.2, RFC 9110 7.2):
/// uri-host = IP-literal / IPv4address / reg-name (RFC 3986 3.2.2), port =
/// *DIGIT. An empty value is valid (RFC 9110 7.2), and so is an empty
/// reg-name before a port.
pub(super) fn valid_host(value: &[u8]) -> bool {
    // The common case, a name or an IPv4 address with an optional port, is
    // one pass: a table lookup per byte of the name, a digit check per byte
    // of the port.
    static SIMPLE: [bool; 256] = super::alnum_and(b"-._~!$&'()*+,;=");
    match value.iter().position(|&b| !SIMPLE[b as usize]) {
        None => return true,
        Some(colon) if value[colon] == b':' => {
            if value[colon + 1..].iter().all(u8::is_ascii_digit) {
                return true;
            }
        }
        Some(_) => {}
    }
    let Some((host, _port)) = split_port(value) else {
        return false;
    };
    if let Some(literal) = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) {
        return valid_ip_literal(literal);
    }
    // reg-name = *( unreserved / pct-encoded / sub-delims )
    let mut i = 0;
    while i < host.len() {
        let b = host[i];
        if PCHAR[b as usize] && b != b':' && b != b'@' {
            i += 1;
        } else if b == b'%' && pct_encoded(host, i) {
            i += 3;
        } else {
            return false;
        }
    }
    true
}

/// A Host value split into name and port, both borrowed from it: an IP
/// literal without its brackets (`[::1]:80` gives "::1" and 80); the port
/// None when absent or empty ("a" and "a:"). `Malformed` when the value is
/// not `uri-host [":" port]` (`valid_host`) or the port is over 65535
/// (leading zeros are accepted: "a:0080" is 80).
pub fn host_parts(value: &[u8]) -> Result<(&[u8], Option<u16>), super::FieldError> {
    let bad = super::FieldError::Malformed;
    if !valid_host(value) {
        return Err(bad);
    }
    let (host, port) = split_port(value).ok_or(bad)?;
    let host = match host {
        [b'[', inner @ .., b']'] => inner,
        _ => host,
    };
    if port.is_empty() {
        return Ok((host, None));
    }
    let mut n: u32 = 0;
    for &d in port {
        n = n * 10 + u32::from(d - b'0');
        if n > u32::from(u16::MAX) {
            return Err(bad);
        }
    }
    Ok((host, Some(n as u16)))
}

/// IP-literal = "[" ( IPv6address / IPvFuture ) "]", without the brackets.
fn valid_ip_literal(s: &[u8]) -> bool {
    if let Some(rest) = s.strip_prefix(b"v").or_else(|| s.strip_prefix(b"V")) {
        // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail.iter().all(|&b| PCHAR[b as usize] && b != b'@');
    }
    std::str::from_utf8(s).is_ok_and(|t| t.parse::<std::net::Ipv6Addr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::host_parts;
    use crate::http::FieldError::Malformed;

    #[test]
    fn host_parts_table() {
        type Want<'a> = Result<(&'a str, Option<u16>), crate::http::FieldError>;
        let cases: &[(&str, Want)] = &[
            ("example.com", Ok(("example.com", None))),
            ("example.com:8080", Ok(("example.com", Some(8080)))),
            ("example.com:", Ok(("example.com", None))),
            ("a:0080", Ok(("a", Some(80)))),
            ("a:65535", Ok(("a", Some(65535)))),
            ("a:65536", Err(Malformed)),
            ("a:99999999999999999999", Err(Malformed)),
            ("127.0.0.1:80", Ok(("127.0.0.1", Some(80)))),
            ("[::1]", Ok(("::1", None))),
            ("[::1]:443", Ok(("::1", Some(443)))),
            ("[::1]x", Err(Malformed)),
            ("[::1", Err(Malformed)),
            ("::1", Err(Malformed)),
            ("a:b", Err(Malformed)),
            ("a:-1", Err(Malformed)),
            ("", Ok(("", None))),
            (":80", Ok(("", Some(80)))),
        ];
        for (value, want) in cases {
            let got =
                host_parts(value.as_bytes()).map(|(h, p)| (std::str::from_utf8(h).unwrap(), p));
            assert_eq!(&got, want, "{value}");
        }
    }
}
