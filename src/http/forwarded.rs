//! The client's address behind trusted proxies: the peer, or what
//! `X-Forwarded-For` / `X-Real-IP` say when the peer is a trusted proxy.
//!
//! Rules (README "Request helpers"):
//! * trusted proxies are a list of IP addresses and CIDR blocks set by the
//!   application; with none, or when the peer is not in the list, the
//!   client is the peer and the headers are ignored (anyone can send them);
//! * when the peer is trusted: the `X-Forwarded-For` field lines, last to
//!   first, each list right to left (empty elements skipped), are walked
//!   past trusted addresses; the first address that is not trusted is the
//!   client. If all are trusted, the left-most one is. Without any
//!   `X-Forwarded-For` element, a single `X-Real-IP` is used; without
//!   either, the peer;
//! * an element must be an IPv4 or IPv6 address, optionally in brackets or
//!   with a port ("1.2.3.4:80", `[::1]:80`); anything else met on the walk
//!   is `Malformed` (so is more than one `X-Real-IP`);
//! * IPv4-mapped IPv6 addresses count as their IPv4 address, both for
//!   matching and in the result.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::FieldError;

/// Most entries a trusted-proxy list may hold.
const MAX_TRUSTED: usize = 64;

/// An address block: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// "addr" or "addr/prefix" (prefix at most 32 or 128).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (a, p.parse::<u8>().ok()?)
            }
            Some(_) => return None,
            None => (s, 128),
        };
        let addr = addr.parse::<IpAddr>().ok()?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max && s.contains('/') {
            return None;
        }
        Some(Cidr {
            addr,
            prefix: prefix.min(max),
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A trusted-proxy list of addresses and blocks only: entries separated by
/// commas and/or spaces. None when an entry is invalid (`unix` included)
/// or there are more than `MAX_TRUSTED`.
pub fn parse_trusted(list: &str) -> Option<Vec<Cidr>> {
    match parse_trusted_proxies(list)? {
        (v, false) => Some(v),
        (_, true) => None,
    }
}

/// One forwarded element: an address, perhaps bracketed, perhaps with a
/// port; surrounding spaces and tabs allowed.
pub fn parse_element(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    let ip = if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = s.parse::<SocketAddr>() {
        sa.ip()
    } else {
        IpAddr::V6(
            s.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<Ipv6Addr>()
                .ok()?,
        )
    };
    Some(ip.to_canonical())
}

/// A trusted-proxy list that may also hold the word `unix` (any case):
/// peers on a Unix domain socket (a proxy on the same host, e.g. nginx's
/// `proxy_pass http://unix:...`) are trusted too. The addresses and
/// blocks, and whether `unix` was listed; None when an entry is invalid
/// or there are more than `MAX_TRUSTED` addresses and blocks.
pub fn parse_trusted_proxies(list: &str) -> Option<(Vec<Cidr>, bool)> {
    let mut v = Vec::new();
    let mut unix = false;
    for entry in list.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
        if entry.eq_ignore_ascii_case("unix") {
            unix = true;
        } else if v.len() == MAX_TRUSTED {
            return None;
        } else {
            v.push(Cidr::parse(entry)?);
        }
    }
    Some((v, unix))
}

fn trusted(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

/// The client address (see the module rules). `xff_last_first`: the
/// X-Forwarded-For field values, last line first; `real_ip`: the
/// X-Real-IP field values, in any order.
pub fn client_addr<'a>(
    peer: IpAddr,
    list: &[Cidr],
    xff_last_first: impl Iterator<Item = &'a [u8]>,
    real_ip: impl Iterator<Item = &'a [u8]>,
) -> Result<IpAddr, FieldError> {
    let peer = peer.to_canonical();
    if !trusted(list, peer) {
        return Ok(peer);
    }
    Ok(forwarded_client(list, xff_last_first, real_ip)?.unwrap_or(peer))
}

/// The client a trusted peer names (see the module rules): from
/// `X-Forwarded-For`, else a single `X-Real-IP`; None when it names none.
pub fn forwarded_client<'a>(
    list: &[Cidr],
    xff_last_first: impl Iterator<Item = &'a [u8]>,
    mut real_ip: impl Iterator<Item = &'a [u8]>,
) -> Result<Option<IpAddr>, FieldError> {
    let mut leftmost = None;
    for line in xff_last_first {
        for element in line.rsplit(|&b| b == b',') {
            if element.iter().all(|&b| b == b' ' || b == b'\t') {
                continue;
            }
            let ip = parse_element(element).ok_or(FieldError::Malformed)?;
            if !trusted(list, ip) {
                return Ok(Some(ip));
            }
            leftmost = Some(ip);
        }
    }
    if leftmost.is_some() {
        return Ok(leftmost);
    }
    match (real_ip.next(), real_ip.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => parse_element(v).map(Some).ok_or(FieldError::Malformed),
        (Some(_), Some(_)) => Err(FieldError::Malformed),
    }
}

/// An address written as text into `out` ("192.0.2.1", "2001:db8::1"):
/// the length, or `TooLarge(needed)`. 46 bytes always suffice.
pub fn write_ip(ip: IpAddr, out: &mut [u8]) -> Result<usize, FieldError> {
    use std::io::Write;
    let mut text = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    let _ = write!(cursor, "{ip}");
    let n = cursor.position() as usize;
    let dst = out.get_mut(..n).ok_or(FieldError::TooLarge(n))?;
    dst.copy_from_slice(&text[..n]);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use FieldError::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(peer: &str, list: &str, xff: &[&str], real: &[&str]) -> Result<String, FieldError> {
        let list = parse_trusted(list).unwrap();
        let xff = xff.iter().rev().map(|s| s.as_bytes());
        let real = real.iter().map(|s| s.as_bytes());
        client_addr(ip(peer), &list, xff, real).map(|a| a.to_string())
    }

    #[test]
    fn client_table() {
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a [&'a str],
            &'a [&'a str],
            Result<&'a str, FieldError>,
        );
        let cases: &[Case] = &[
            ("10.0.0.1", "", &["1.2.3.4"], &[], Ok("10.0.0.1")),
            ("10.0.0.1", "10.0.0.2", &["1.2.3.4"], &[], Ok("10.0.0.1")),
            ("10.0.0.1", "10.0.0.0/8", &["1.2.3.4"], &[], Ok("1.2.3.4")),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["6.6.6.6, 1.2.3.4, 10.1.1.1"],
                &[],
                Ok("1.2.3.4"),
            ),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["6.6.6.6", "1.2.3.4", "10.1.1.1"],
                &[],
                Ok("1.2.3.4"),
            ),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["10.2.2.2, 10.1.1.1"],
                &[],
                Ok("10.2.2.2"),
            ),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["garbage, 1.2.3.4"],
                &[],
                Ok("1.2.3.4"),
            ),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["1.2.3.4, garbage"],
                &[],
                Err(Malformed),
            ),
            ("10.0.0.1", "10.0.0.0/8", &["unknown"], &[], Err(Malformed)),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &[" , ,1.2.3.4 , "],
                &[],
                Ok("1.2.3.4"),
            ),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["[2001:db8::1]:443"],
                &[],
                Ok("2001:db8::1"),
            ),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["1.2.3.4:5678"],
                &[],
                Ok("1.2.3.4"),
            ),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["::ffff:1.2.3.4"],
                &[],
                Ok("1.2.3.4"),
            ),
            ("10.0.0.1", "10.0.0.0/8", &[], &["1.2.3.4"], Ok("1.2.3.4")),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &[],
                &["1.2.3.4", "5.6.7.8"],
                Err(Malformed),
            ),
            ("10.0.0.1", "10.0.0.0/8", &[], &["nope"], Err(Malformed)),
            ("10.0.0.1", "10.0.0.0/8", &[], &[], Ok("10.0.0.1")),
            (
                "10.0.0.1",
                "10.0.0.0/8",
                &["5.5.5.5"],
                &["1.2.3.4"],
                Ok("5.5.5.5"),
            ),
            ("::1", "::1", &["2001:db8::7"], &[], Ok("2001:db8::7")),
            (
                "::ffff:127.0.0.1",
                "127.0.0.1",
                &["1.2.3.4"],
                &[],
                Ok("1.2.3.4"),
            ),
            ("::ffff:127.0.0.1", "", &["1.2.3.4"], &[], Ok("127.0.0.1")),
            (
                "2001:db8::5",
                "2001:db8::/32",
                &["2001:db9::1"],
                &[],
                Ok("2001:db9::1"),
            ),
            (
                "2001:db9::5",
                "2001:db8::/32",
                &["1.2.3.4"],
                &[],
                Ok("2001:db9::5"),
            ),
        ];
        for (peer, list, xff, real, want) in cases {
            assert_eq!(
                client(peer, list, xff, real).as_deref(),
                want.as_deref(),
                "{peer} {list} {xff:?} {real:?}"
            );
        }
    }

    #[test]
    fn trusted_lists() {
        assert_eq!(parse_trusted_proxies("unix").unwrap(), (vec![], true));
        let (v, unix) = parse_trusted_proxies("127.0.0.1, UNIX ::1").unwrap();
        assert_eq!((v.len(), unix), (2, true));
        assert!(!parse_trusted_proxies("::1").unwrap().1);
        assert_eq!(parse_trusted_proxies("unix, bad"), None);
        assert_eq!(parse_trusted("").unwrap().len(), 0);
        assert_eq!(parse_trusted("127.0.0.1, ::1 10.0.0.0/8").unwrap().len(), 3);
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/x",
            "host",
            "1.2.3.4:80",
        ] {
            assert_eq!(parse_trusted(bad), None, "{bad}");
        }
        let many = vec!["1.1.1.1"; MAX_TRUSTED + 1].join(",");
        assert_eq!(parse_trusted(&many), None);
        let all4 = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all4.contains(ip("8.8.8.8")) && !all4.contains(ip("::2")));
    }

    #[test]
    fn ip_text() {
        let mut out = [0u8; 46];
        let n = write_ip(ip("2001:db8::1"), &mut out).unwrap();
        assert_eq!(&out[..n], b"2001:db8::1");
        assert_eq!(write_ip(ip("1.2.3.4"), &mut out[..6]), Err(TooLarge(7)));
    }
}
