//! Protocol upgrade (RFC 9110 7.8): which requests may be upgraded, what
//! the application registered for the hand-off, and what it is handed.
//! The 101 head is composed in `exchange.rs`, the hand-off itself happens
//! in `progress.rs` once that head is out, and `driver.rs` calls the
//! application.

use std::os::fd::OwnedFd;
use std::os::raw::c_void;

use super::buffer::Buffer;
use super::error::Error;
use super::request::RequestView;
use crate::http::response::valid_header_name;

/// Called exactly once per accepted upgrade (C calling convention: the
/// application supplies it): with the descriptor (now the application's),
/// the bytes already read past the request and `CloseReason::Completed`;
/// or with fd -1, no data and why the connection ended before the 101 head
/// was out (the library closed the descriptor).
pub type UpgradeFn =
    unsafe extern "C" fn(user: *mut c_void, fd: i32, data: *const u8, len: usize, reason: i32);

/// What the application registered for one upgrade.
#[derive(Clone, Copy)]
pub struct Upgrade {
    pub on_upgrade: UpgradeFn,
    pub user: *mut c_void,
}

/// A connection taken out of the loop, on its way to the application.
pub struct Handoff {
    /// The socket, no longer in the epoll set nor in the connection table.
    pub fd: OwnedFd,
    /// Its unread input: bytes that followed the upgrade request.
    pub input: Buffer,
    pub upgrade: Upgrade,
}

/// A protocol name as in `Upgrade` (RFC 9110 7.8): `name ["/" version]`,
/// both tokens.
pub fn valid_protocol(protocol: &[u8]) -> bool {
    let mut parts = protocol.splitn(2, |&b| b == b'/');
    let name = parts.next().unwrap_or_default();
    valid_header_name(name) && parts.next().map_or(true, valid_header_name)
}

/// Whether `list` (a comma-separated header value) holds `item`, compared
/// without case.
fn list_has(list: &[u8], item: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(item))
}

/// Whether the request in `view` may be upgraded to `protocol`: HTTP/1.1,
/// an `Upgrade` header listing the protocol, `Connection` holding the
/// `upgrade` option (`Error::NotUpgrade` otherwise), and no body
/// (`Error::UpgradeBody`: the body would have to be read before the switch,
/// RFC 9110 7.8; the library refuses instead).
pub fn check_request(view: &RequestView, protocol: &[u8]) -> Result<(), Error> {
    if !valid_protocol(protocol) {
        return Err(Error::Invalid);
    }
    let (mut offered, mut connection_upgrade, mut body) = (false, false, false);
    for h in &view.headers {
        let (name, value) = (view.bytes(h.name), view.bytes(h.value));
        if name.eq_ignore_ascii_case(b"upgrade") {
            offered |= list_has(value, protocol);
        } else if name.eq_ignore_ascii_case(b"connection") {
            connection_upgrade |= list_has(value, b"upgrade");
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            body = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            body |= value.trim_ascii().iter().any(|&b| b != b'0');
        }
    }
    if view.minor_version != 1 || !offered || !connection_upgrade {
        return Err(Error::NotUpgrade);
    }
    if body {
        return Err(Error::UpgradeBody);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_protocol;

    #[test]
    fn protocol_names_are_tokens_with_an_optional_version() {
        for ok in [&b"websocket"[..], b"h2c", b"foo/1.0"] {
            assert!(valid_protocol(ok), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [&b""[..], b"a b", b"a/", b"/1", b"a/1/2", b"web\r\nX: y"] {
            assert!(!valid_protocol(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
