//! The client's address behind trusted proxies: `Connection_SetTrustedProxies`
//! says which peers may name the client, `Request_ClientAddr` reads it. The
//! rules are in `http::forwarded` (and the README's "Request helpers").

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};

use super::connection::{with_live, Connection};
use super::error::*;
use super::guard_int;
use super::helpers::to_c_buf;
use super::request::{view, Request};
use crate::http::forwarded::{client_addr, forwarded_client, parse_trusted_proxies, write_ip};
use crate::http::FieldError;

/// Sets the proxies whose `X-Forwarded-For` / `X-Real-IP` headers
/// `Request_ClientAddr` believes: `list` holds IPv4/IPv6 addresses and CIDR
/// blocks separated by commas or spaces ("127.0.0.1, ::1, 10.0.0.0/8"), at
/// most 64, and the word `unix`: clients on a Unix domain socket listener
/// (a proxy on the same host, e.g. nginx's `proxy_pass http://unix:...`). NULL or "" trusts no proxy (the default): the client is then
/// always the peer. Replaces the previous list; copied (the string need
/// not outlive the call). Unrelated to `Connection_SetTrustedGateway`,
/// which is about `https` targets. Returns 0, `CONNECTION_ERR_INVALID` (an
/// entry is not an address or block, or more than 64; nothing changed),
/// `CONNECTION_ERR_NULL`, `CONNECTION_ERR_NOT_INITIALIZED`,
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread.
#[no_mangle]
pub unsafe extern "C" fn Connection_SetTrustedProxies(
    conn: *mut Connection,
    list: *const c_char,
) -> c_int {
    let set = |lp: crate::reactor::LoopPtr| {
        let text = if list.is_null() {
            ""
        } else {
            // SAFETY: contract: a non-NULL `list` is NUL-terminated.
            match unsafe { CStr::from_ptr(list) }.to_str() {
                Ok(t) => t,
                Err(_) => return CONNECTION_ERR_INVALID,
            }
        };
        let Some((parsed, unix)) = parse_trusted_proxies(text) else {
            return CONNECTION_ERR_INVALID;
        };
        lp.with(|el| el.set_trusted_proxies(parsed, unix));
        CONNECTION_OK
    };
    // SAFETY: `conn` is NULL or a Connection (contract); `with_live` passes
    // a live core, borrowed only for the call.
    unsafe { with_live(conn, set) }
}

/// The client's IP address as text ("192.0.2.7", "2001:db8::7"; an
/// IPv4-mapped IPv6 address as its IPv4 form), NUL-terminated into `buf`
/// (46 bytes always suffice); `len` gets its length (or the length needed).
/// The peer's address, unless the peer is one of the trusted proxies
/// (`Connection_SetTrustedProxies`): then the `X-Forwarded-For` addresses
/// (all such headers as one list, read right to left) are walked past
/// trusted proxies and the first untrusted one is the client (the
/// left-most if all are trusted); without `X-Forwarded-For`, a single
/// `X-Real-IP`; without either, the peer. Elements may carry a port or
/// brackets (`[::1]:80`). Returns 0, `CONNECTION_ERR_MALFORMED` (an element
/// met on the walk, or `X-Real-IP`, is not an IP address, or there are two
/// `X-Real-IP`), `CONNECTION_ERR_NOT_FOUND` (the peer has no IP address: a
/// Unix-socket client, unless `unix` is trusted and its headers name one),
/// `CONNECTION_ERR_TOO_LARGE`, `CONNECTION_ERR_NULL`,
/// `CONNECTION_ERR_WRONG_THREAD`.
///
/// Thread: the loop thread, during the handler.
#[no_mangle]
pub unsafe extern "C" fn Request_ClientAddr(
    req: *const Request,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> c_int {
    guard_int(|| {
        // SAFETY: contract: `req` NULL or the live handle of a callback.
        let r = match unsafe { view(req) } {
            Ok(r) => r,
            Err(code) => return code,
        };
        let named = |n: &'static [u8]| {
            let r = &r;
            move |h: &&crate::http::request::HeaderSpan| r.bytes(h.name).eq_ignore_ascii_case(n)
        };
        let xff = || {
            r.0.headers
                .iter()
                .rev()
                .filter(named(b"x-forwarded-for"))
                .map(|h| r.bytes(h.value))
        };
        let real_ip = || {
            r.0.headers
                .iter()
                .filter(named(b"x-real-ip"))
                .map(|h| r.bytes(h.value))
        };
        let found = match r.0.peer.to_socket_addr() {
            // A Unix-socket peer has no address: only a trusted one (`unix`
            // in the list) can name the client.
            None if r.0.trusted_unix => forwarded_client(&r.0.trusted_proxies, xff(), real_ip())
                .and_then(|ip| ip.ok_or(FieldError::NotFound)),
            None => Err(FieldError::NotFound),
            Some(peer) => client_addr(peer.ip(), &r.0.trusted_proxies, xff(), real_ip()),
        };
        // SAFETY: contract: `buf` has `cap` bytes; `len` NULL or writable.
        unsafe { to_c_buf(buf, cap, len, |out| write_ip(found?, out)) }
    })
}
