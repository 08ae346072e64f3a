//! `Request_ClientAddr` gives the peer, or, only when the peer is a
//! trusted proxy (`Connection_SetTrustedProxies`), the right-most untrusted
//! `X-Forwarded-For` address / `X-Real-IP`, as validated IP text; over real
//! sockets with IPv4 (127.0.0.1), IPv6 (::1) and Unix-socket peers (`unix`
//! trusted or not). Bad trusted lists
//! are refused.
#![allow(clippy::field_reassign_with_default)] // mirrors the C usage: Default, then set fields

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use connection_core::*;

const OK: c_int = CONNECTION_OK;
const MALFORMED: c_int = CONNECTION_ERR_MALFORMED;

unsafe extern "C" fn addr_handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    let mut buf = [0u8; 64];
    let mut len = 0usize;
    // SAFETY: live handles for the duration of the call; a 64-byte buffer.
    unsafe {
        let rc = Request_ClientAddr(req, buf.as_mut_ptr() as *mut c_char, 64, &mut len);
        let body = format!("{rc} {}", String::from_utf8_lossy(&buf[..len]));
        Response_Send(resp, body.as_ptr() as *const c_void, body.len());
    }
}

/// Runs a Connection listening on `host` (port 0) with the trusted list
/// `trusted`, after `setup` (more listeners), until `client` (given the
/// TCP port) has finished on its own thread; returns what it returned.
fn serve(
    host: &str,
    trusted: Option<&std::ffi::CStr>,
    setup: impl FnOnce(&mut Connection),
    client: impl FnOnce(u16) -> Vec<String> + Send + 'static,
) -> Vec<String> {
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let mut cfg = ConnectionConfig::default();
    let chost = std::ffi::CString::new(host).unwrap();
    cfg.host = chost.as_ptr();
    cfg.port = 0;
    // SAFETY: valid pointers to live locals.
    let port = unsafe {
        assert_eq!(Connection_InitWith(&mut conn, &cfg), OK, "listen on {host}");
        assert_eq!(
            Connection_SetHandler(&mut conn, Some(addr_handler), null_mut()),
            OK
        );
        let list = trusted.map_or(null(), |t| t.as_ptr());
        assert_eq!(Connection_SetTrustedProxies(&mut conn, list), OK);
        Connection_Port(&conn) as u16
    };
    setup(&mut conn);
    let client = std::thread::spawn(move || client(port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client.is_finished() {
        assert!(Instant::now() < deadline, "client did not finish");
        // SAFETY: initialised connection, used from this thread only.
        assert_eq!(unsafe { Connection_ProcessTimeout(&mut conn, 10) }, OK);
    }
    // SAFETY: initialised, no callback running.
    unsafe { Connection_Destroy(&mut conn) };
    client.join().unwrap()
}

/// Serves `requests` (header lines to add) from `host` with the trusted
/// list `trusted`, one keep-alive TCP connection; returns each response body.
fn client_addrs(host: &str, trusted: Option<&std::ffi::CStr>, requests: &[&str]) -> Vec<String> {
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let reqs: Vec<String> = requests
        .iter()
        .map(|h| format!("GET / HTTP/1.1\r\nHost: x\r\n{h}\r\n"))
        .collect();
    serve(
        host,
        trusted,
        |_| {},
        move |port| {
            let mut s = TcpStream::connect(format!("{bracketed}:{port}")).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut bodies = Vec::new();
            for r in reqs {
                s.write_all(r.as_bytes()).unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 1024];
                loop {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0, "server closed");
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).into_owned();
                    if let Some(at) = text.find("\r\n\r\n") {
                        let cl: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap();
                        if got.len() >= at + 4 + cl {
                            bodies.push(text[at + 4..at + 4 + cl].to_string());
                            break;
                        }
                    }
                }
            }
            bodies
        },
    )
}

fn expect(host: &str, trusted: Option<&std::ffi::CStr>, cases: &[(&str, &str)]) {
    let headers: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let got = client_addrs(host, trusted, &headers);
    let want: Vec<String> = cases.iter().map(|c| c.1.to_string()).collect();
    let failures: Vec<String> = cases
        .iter()
        .zip(&got)
        .filter(|(c, g)| c.1 != g.as_str())
        .map(|(c, g)| {
            format!(
                "{host} trusting {trusted:?}, {:?}: got {g:?}, want {:?}",
                c.0, c.1
            )
        })
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn client_addr_ipv4_untrusted_peer_ignores_the_headers() {
    expect(
        "127.0.0.1",
        None,
        &[
            ("", "0 127.0.0.1"),
            ("X-Forwarded-For: 1.2.3.4\r\n", "0 127.0.0.1"),
            ("X-Real-IP: 1.2.3.4\r\n", "0 127.0.0.1"),
            ("X-Forwarded-For: garbage\r\n", "0 127.0.0.1"),
        ],
    );
    expect(
        "127.0.0.1",
        Some(c"10.0.0.0/8"),
        &[("X-Forwarded-For: 1.2.3.4\r\n", "0 127.0.0.1")],
    );
}

#[test]
fn client_addr_ipv4_trusted_proxy_chain() {
    let xff = |v: &str| format!("X-Forwarded-For: {v}\r\n");
    let bad = format!("{MALFORMED} ");
    let cases: Vec<(String, &str)> = vec![
        (xff("1.2.3.4"), "0 1.2.3.4"),
        (xff("6.6.6.6, 1.2.3.4"), "0 1.2.3.4"),
        (xff("6.6.6.6, 1.2.3.4, 10.0.0.9"), "0 1.2.3.4"),
        (xff("10.0.0.8, 10.0.0.9"), "0 10.0.0.8"),
        (xff("6.6.6.6") + &xff("1.2.3.4, 10.0.0.9"), "0 1.2.3.4"),
        (xff("garbage, 1.2.3.4"), "0 1.2.3.4"),
        (xff("1.2.3.4, unknown"), &bad),
        (xff("[2001:db8::7]:443"), "0 2001:db8::7"),
        (xff("1.2.3.4:5678"), "0 1.2.3.4"),
        (xff("::ffff:1.2.3.4"), "0 1.2.3.4"),
        ("X-Real-IP: 5.6.7.8\r\n".into(), "0 5.6.7.8"),
        ("X-Real-IP: nope\r\n".into(), &bad),
        ("X-Real-IP: 5.6.7.8\r\nX-Real-IP: 9.9.9.9\r\n".into(), &bad),
        (xff("1.2.3.4") + "X-Real-IP: 5.6.7.8\r\n", "0 1.2.3.4"),
        (String::new(), "0 127.0.0.1"),
    ];
    let cases: Vec<(&str, &str)> = cases.iter().map(|(h, w)| (h.as_str(), *w)).collect();
    expect("127.0.0.1", Some(c"127.0.0.1, 10.0.0.0/8"), &cases);
}

#[test]
fn client_addr_ipv6_peers() {
    expect("::1", None, &[("X-Forwarded-For: 1.2.3.4\r\n", "0 ::1")]);
    expect(
        "::1",
        Some(c"::1 2001:db8::/32"),
        &[
            ("X-Forwarded-For: 2001:db9::1\r\n", "0 2001:db9::1"),
            (
                "X-Forwarded-For: 2001:db9::1, 2001:db8::5\r\n",
                "0 2001:db9::1",
            ),
            (
                "X-Forwarded-For: 1.2.3.4, [2001:db8::5]:80\r\n",
                "0 1.2.3.4",
            ),
            ("", "0 ::1"),
        ],
    );
}

#[test]
fn trusted_proxy_lists_are_validated() {
    let mut conn = Connection {
        _private_core: null_mut(),
        _private_stop_fd: -1,
        _private_magic: 0,
    };
    let mut cfg = ConnectionConfig::default();
    cfg.host = c"127.0.0.1".as_ptr();
    cfg.port = 0;
    // SAFETY: valid pointers to live locals.
    unsafe {
        assert_eq!(
            Connection_SetTrustedProxies(null_mut(), null()),
            CONNECTION_ERR_NULL
        );
        assert_eq!(Connection_InitWith(&mut conn, &cfg), OK);
        for bad in [
            c"10.0.0.0/33",
            c"localhost",
            c"1.2.3.4:80",
            c"::/129",
            c"10.0.0.1/",
        ] {
            assert_eq!(
                Connection_SetTrustedProxies(&mut conn, bad.as_ptr()),
                CONNECTION_ERR_INVALID,
                "{bad:?}"
            );
        }
        let many = std::ffi::CString::new(vec!["10.0.0.1"; 65].join(",")).unwrap();
        assert_eq!(
            Connection_SetTrustedProxies(&mut conn, many.as_ptr()),
            CONNECTION_ERR_INVALID
        );
        for good in [c"", c"127.0.0.1", c" 10.0.0.0/8,, ::1\t2001:db8::/32 "] {
            assert_eq!(
                Connection_SetTrustedProxies(&mut conn, good.as_ptr()),
                OK,
                "{good:?}"
            );
        }
        assert_eq!(Connection_SetTrustedProxies(&mut conn, null()), OK);
        for code in [
            CONNECTION_ERR_BAD_ESCAPE,
            CONNECTION_ERR_ABOVE_ROOT,
            CONNECTION_ERR_NOT_FOUND,
            MALFORMED,
        ] {
            let msg = std::ffi::CStr::from_ptr(Connection_StrError(code));
            assert_ne!(msg.to_bytes(), b"unknown error code", "{code}");
        }
        Connection_Destroy(&mut conn);
    }
}

/// Over a Unix-socket listener: the peer has no IP address, so the answer
/// is `CONNECTION_ERR_NOT_FOUND`, unless `unix` is in the trusted list:
/// then the forwarding headers name the client (nginx's `proxy_pass
/// http://unix:...` is the usual case).
fn unix_client_addrs(trusted: Option<&std::ffi::CStr>, requests: &[&str]) -> Vec<String> {
    use std::os::unix::net::UnixStream;
    let dir = std::env::temp_dir().join(format!("cc-client-addr-{}", std::process::id()));
    let _ = std::fs::create_dir(&dir);
    let path = dir.join(format!("s{}", requests.len()));
    let _ = std::fs::remove_file(&path);
    let cpath = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let reqs: Vec<String> = requests
        .iter()
        .map(|h| format!("GET / HTTP/1.1\r\nHost: x\r\n{h}Connection: close\r\n\r\n"))
        .collect();
    let bodies = serve(
        "127.0.0.1",
        trusted,
        // SAFETY: a live Connection on this thread; a NUL-terminated path.
        |conn| assert!(unsafe { Connection_AddListenUnix(conn, cpath.as_ptr(), 0o600) } >= 0),
        move |_| {
            let mut bodies = Vec::new();
            for r in reqs {
                let mut s = UnixStream::connect(&path).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                s.write_all(r.as_bytes()).unwrap();
                let mut got = String::new();
                s.read_to_string(&mut got).unwrap();
                let at = got.find("\r\n\r\n").expect("a response");
                bodies.push(got[at + 4..].to_string());
            }
            bodies
        },
    );
    let _ = std::fs::remove_dir_all(&dir);
    bodies
}

#[test]
fn client_addr_over_a_unix_socket() {
    let not_found = format!("{CONNECTION_ERR_NOT_FOUND} ");
    let xff = "X-Forwarded-For: 192.0.2.7\r\n";
    // Untrusted (no list, or addresses only): no address to give.
    assert_eq!(
        unix_client_addrs(None, &[xff]),
        std::slice::from_ref(&not_found)
    );
    assert_eq!(
        unix_client_addrs(Some(c"127.0.0.1, ::1"), &[xff]),
        std::slice::from_ref(&not_found)
    );
    // `unix` trusted: the headers name the client.
    assert_eq!(
        unix_client_addrs(
            Some(c"unix, 10.0.0.0/8"),
            &[
                xff,
                "X-Forwarded-For: 192.0.2.7, 10.1.2.3\r\n",
                "X-Real-IP: 2001:db8::7\r\n",
                "",
                "X-Forwarded-For: nonsense\r\n",
            ]
        ),
        [
            "0 192.0.2.7".to_string(),
            "0 192.0.2.7".to_string(),
            "0 2001:db8::7".to_string(),
            not_found,
            format!("{MALFORMED} "),
        ]
    );
}
