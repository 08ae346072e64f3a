//! The request helpers through the exported C functions give exactly the
//! documented results: path decoding and normalisation, query and form
//! parameters, cookies and Host parts, including malformed escapes,
//! buffers too small (with the needed length), `..` above the root,
//! duplicates, empty values and names without values. Driven in memory
//! (the client address, which needs real peers, is in client_addr.rs).

use std::cell::RefCell;
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{null, null_mut};

use connection_core::config::Limits;
use connection_core::harness::run_exchange_handled;
use connection_core::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    PathDecoded(usize),
    PathNormalized(usize),
    Query(&'static str, usize),
    QueryAt(usize, usize),
    Form(&'static str),
    FormAt(usize),
    Cookie(&'static str, usize),
    Host,
    /// PathDecoded with a NULL buffer and a cap of 0: the length only.
    PathLength,
    /// PathDecoded called from another thread.
    OtherThread,
}

thread_local! {
    static OP: RefCell<Option<Op>> = const { RefCell::new(None) };
    static RESULT: RefCell<Option<(c_int, String)>> = const { RefCell::new(None) };
}

/// The result as text; a broken convention shows as a mismatch (a panic
/// cannot leave the C handler).
fn text(buf: &[u8], len: usize, rc: c_int) -> String {
    if rc == CONNECTION_OK {
        if buf.get(len) != Some(&0) {
            return "NOT NUL-TERMINATED".into();
        }
        String::from_utf8_lossy(&buf[..len]).into_owned()
    } else if rc == CONNECTION_ERR_TOO_LARGE {
        format!("need {len}")
    } else if len != 0 {
        format!("LENGTH {len} ON ERROR")
    } else if buf.first().is_some_and(|&b| b != 0) {
        "BUFFER NOT EMPTIED ON ERROR".into()
    } else {
        String::new()
    }
}

/// Runs one helper on the live request.
unsafe fn run(req: *const Request, op: Op) -> (c_int, String) {
    let mut buf = [0xAAu8; 128];
    let mut name = [0xAAu8; 64];
    let mut len = 99usize;
    let mut name_len = 99usize;
    let b = buf.as_mut_ptr() as *mut c_char;
    let n = name.as_mut_ptr() as *mut c_char;
    // SAFETY: `req` is live (we are in the handler); buffers as passed.
    unsafe {
        match op {
            Op::PathDecoded(cap) => {
                let rc = Request_PathDecoded(req, b, cap, &mut len);
                (rc, text(&buf[..cap], len, rc))
            }
            Op::PathNormalized(cap) => {
                let rc = Request_PathNormalized(req, b, cap, &mut len);
                (rc, text(&buf[..cap], len, rc))
            }
            Op::Query(key, cap) => {
                let key = std::ffi::CString::new(key).unwrap();
                let rc = Request_QueryParam(req, key.as_ptr(), b, cap, &mut len);
                (rc, text(&buf[..cap], len, rc))
            }
            Op::QueryAt(i, cap) => {
                let rc = Request_QueryParamAt(req, i, n, 64, &mut name_len, b, cap, &mut len);
                let v = text(&buf[..cap], len, rc);
                if rc == CONNECTION_OK || rc == CONNECTION_ERR_TOO_LARGE {
                    (
                        rc,
                        format!("{}={v}", String::from_utf8_lossy(&name[..name_len])),
                    )
                } else {
                    (rc, v)
                }
            }
            Op::Form(key) => {
                let key = std::ffi::CString::new(key).unwrap();
                let mut blen = 0;
                let body = Request_Body(req, &mut blen) as *const c_void;
                let rc = Connection_FormParam(body, blen, key.as_ptr(), b, 128, &mut len);
                (rc, text(&buf, len, rc))
            }
            Op::FormAt(i) => {
                let mut blen = 0;
                let body = Request_Body(req, &mut blen) as *const c_void;
                let rc =
                    Connection_FormParamAt(body, blen, i, n, 64, &mut name_len, b, 128, &mut len);
                let v = text(&buf, len, rc);
                if rc == CONNECTION_OK {
                    (
                        rc,
                        format!("{}={v}", String::from_utf8_lossy(&name[..name_len])),
                    )
                } else {
                    (rc, v)
                }
            }
            Op::Cookie(key, cap) => {
                let key = std::ffi::CString::new(key).unwrap();
                let rc = Request_Cookie(req, key.as_ptr(), b, cap, &mut len);
                (rc, text(&buf[..cap], len, rc))
            }
            Op::Host => {
                let mut host: *const c_char = null();
                let mut port: c_int = 7;
                let rc = Request_Host(req, &mut host, &mut len, &mut port);
                if rc != CONNECTION_OK {
                    return (rc, String::new());
                }
                let h = std::slice::from_raw_parts(host as *const u8, len);
                (rc, format!("{}|{port}", String::from_utf8_lossy(h)))
            }
            Op::PathLength => {
                let rc = Request_PathDecoded(req, null_mut(), 0, &mut len);
                (rc, text(&[], len, rc))
            }
            Op::OtherThread => {
                let r = req as usize;
                let rc = std::thread::spawn(move || {
                    let mut out = [0u8; 64];
                    let mut l = 0;
                    Request_PathDecoded(r as *const Request, out.as_mut_ptr() as _, 64, &mut l)
                })
                .join()
                .unwrap();
                (rc, String::new())
            }
        }
    }
}

unsafe extern "C" fn handler(req: *const Request, resp: *mut Response, _user: *mut c_void) {
    let op = OP.with(|o| o.borrow().expect("an op"));
    // SAFETY: live handles for the duration of the call.
    let result = unsafe { run(req, op) };
    RESULT.with(|r| *r.borrow_mut() = Some(result));
    // SAFETY: as above.
    unsafe { Response_Send(resp, null(), 0) };
}

fn helper(request: &str, op: Op) -> (c_int, String) {
    OP.with(|o| *o.borrow_mut() = Some(op));
    RESULT.with(|r| *r.borrow_mut() = None);
    let out = run_exchange_handled(
        Limits::default(),
        Some(handler),
        &[request.as_bytes()],
        false,
        0,
    );
    assert!(
        out.sent.starts_with(b"HTTP/1.1 200"),
        "{request:?}: {}",
        String::from_utf8_lossy(&out.sent)
    );
    RESULT.with(|r| r.borrow_mut().take()).expect("handler ran")
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n")
}

fn check(cases: &[(String, Op, c_int, &str)]) {
    let mut failures = Vec::new();
    for (request, op, code, want) in cases {
        let got = helper(request, *op);
        if got != (*code, want.to_string()) {
            failures.push(format!(
                "{op:?} on {request:?}: got {got:?}, want ({code}, {want:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const OK: c_int = CONNECTION_OK;
const BAD_ESCAPE: c_int = CONNECTION_ERR_BAD_ESCAPE;
const ABOVE: c_int = CONNECTION_ERR_ABOVE_ROOT;
const NOT_FOUND: c_int = CONNECTION_ERR_NOT_FOUND;
const MALFORMED: c_int = CONNECTION_ERR_MALFORMED;
const TOO_LARGE: c_int = CONNECTION_ERR_TOO_LARGE;

#[test]
fn path_table() {
    use Op::*;
    check(&[
        (get("/a%20b/c"), PathDecoded(64), OK, "/a b/c"),
        (get("/a+b"), PathDecoded(64), OK, "/a+b"),
        (get("//a/./../b"), PathDecoded(64), OK, "//a/./../b"),
        (get("/%25"), PathDecoded(64), OK, "/%"),
        (get("/a%2Fb"), PathDecoded(64), BAD_ESCAPE, ""),
        (get("/a%2fb"), PathDecoded(64), BAD_ESCAPE, ""),
        (get("/a%00b"), PathDecoded(64), BAD_ESCAPE, ""),
        (get("/a%C3%A9"), PathDecoded(64), OK, "/aé"),
        (get("/abcdef"), PathDecoded(7), TOO_LARGE, "need 7"),
        (get("/abcdef"), PathDecoded(8), OK, "/abcdef"),
        (get("/abc%20"), PathLength, TOO_LARGE, "need 5"),
        (get("http://h"), PathDecoded(64), OK, "/"),
        (
            "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n".into(),
            PathDecoded(64),
            OK,
            "*",
        ),
        (get("/"), PathNormalized(64), OK, "/"),
        (get("//a///b//"), PathNormalized(64), OK, "/a/b/"),
        (get("/a/./b/../c"), PathNormalized(64), OK, "/a/c"),
        (get("/a/b/.."), PathNormalized(64), OK, "/a/"),
        (get("/a/.."), PathNormalized(64), OK, "/"),
        (get("/.."), PathNormalized(64), ABOVE, ""),
        (get("/a/../../etc/passwd"), PathNormalized(64), ABOVE, ""),
        (get("/%2e%2e/etc"), PathNormalized(64), ABOVE, ""),
        (get("/a/%2E%2e/b"), PathNormalized(64), OK, "/b"),
        (get("/..%2fetc"), PathNormalized(64), BAD_ESCAPE, ""),
        (get("/x%00/.."), PathNormalized(64), BAD_ESCAPE, ""),
        (get("/a%20b/./c?q=1"), PathNormalized(64), OK, "/a b/c"),
        (
            get("/aaaaaaaa/../b"),
            PathNormalized(2),
            TOO_LARGE,
            "need 2",
        ),
        (get("/aaaaaaaa/../b"), PathNormalized(3), OK, "/b"),
        (
            "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n".into(),
            PathNormalized(64),
            MALFORMED,
            "",
        ),
        (get("/x"), OtherThread, CONNECTION_ERR_WRONG_THREAD, ""),
    ]);
}

#[test]
fn query_table() {
    use Op::*;
    check(&[
        (get("/?a=1&b=2"), Query("b", 64), OK, "2"),
        (get("/?a=1&a=2"), Query("a", 64), OK, "1"),
        (get("/?a=1&a=2"), QueryAt(1, 64), OK, "a=2"),
        (get("/?a=1&a=2"), QueryAt(2, 64), NOT_FOUND, ""),
        (get("/?a=&b"), Query("a", 64), OK, ""),
        (get("/?a=&b"), Query("b", 64), OK, ""),
        (get("/?a=&b"), QueryAt(1, 64), OK, "b="),
        (get("/?&&a=1&&"), QueryAt(0, 64), OK, "a=1"),
        (get("/?q=a+b%2Bc"), Query("q", 64), OK, "a b+c"),
        (get("/?a+b=1"), Query("a b", 64), OK, "1"),
        (get("/?p=%2F"), Query("p", 64), OK, "/"),
        (get("/?x=a=b"), Query("x", 64), OK, "a=b"),
        (get("/?a=1;b=2"), Query("b", 64), NOT_FOUND, ""),
        (get("/?a=%00"), Query("a", 64), BAD_ESCAPE, ""),
        (get("/?a=%00&b=1"), QueryAt(0, 64), BAD_ESCAPE, ""),
        (get("/?a=%00&b=1"), QueryAt(1, 64), OK, "b=1"),
        (get("/?A=1"), Query("a", 64), NOT_FOUND, ""),
        (get("/"), Query("a", 64), NOT_FOUND, ""),
        (get("/?v=hello"), Query("v", 5), TOO_LARGE, "need 5"),
        (get("/?v=hello"), QueryAt(0, 5), TOO_LARGE, "v=need 5"),
        (get("/?v=hello"), Query("v", 6), OK, "hello"),
    ]);
}

fn post(body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn form_table() {
    use Op::*;
    check(&[
        (post("a=1&b=x+y"), Form("b"), OK, "x y"),
        (post("a=1&a=2"), Form("a"), OK, "1"),
        (post("a=1&a=2"), FormAt(1), OK, "a=2"),
        (post("flag"), Form("flag"), OK, ""),
        (post("a=%zz"), Form("a"), BAD_ESCAPE, ""),
        (post("a=%4"), Form("a"), BAD_ESCAPE, ""),
        (post("a=%"), FormAt(0), BAD_ESCAPE, ""),
        (post("%zz=1&zz=2"), Form("zz"), OK, "2"),
        (post("%zz=1&zz=2"), FormAt(0), BAD_ESCAPE, ""),
        (post("n=%E2%9C%93"), Form("n"), OK, "✓"),
        (post(""), Form("a"), NOT_FOUND, ""),
        (post("a=1"), FormAt(1), NOT_FOUND, ""),
        (post("a=x\0y"), Form("a"), MALFORMED, ""),
        (post("a\0=1&a=2"), Form("a"), OK, "2"),
        (post("a\0=1&a=2"), FormAt(0), MALFORMED, ""),
    ]);
}

#[test]
fn form_param_arguments() {
    let mut buf = [0u8; 8];
    let mut len = 0;
    // SAFETY: valid buffers, or NULLs the functions must refuse.
    unsafe {
        let b = buf.as_mut_ptr() as *mut c_char;
        assert_eq!(
            Connection_FormParam(null(), 0, c"a".as_ptr(), b, 8, &mut len),
            NOT_FOUND
        );
        assert_eq!(
            Connection_FormParam(null(), 3, c"a".as_ptr(), b, 8, &mut len),
            CONNECTION_ERR_NULL
        );
        let data = b"a=1";
        let d = data.as_ptr() as *const c_void;
        assert_eq!(
            Connection_FormParam(d, 3, null(), b, 8, &mut len),
            CONNECTION_ERR_NULL
        );
        assert_eq!(
            Connection_FormParam(d, 3, c"a".as_ptr(), null_mut(), 8, &mut len),
            CONNECTION_ERR_NULL
        );
        assert_eq!(
            Connection_FormParam(d, 3, c"a".as_ptr(), b, 8, null_mut()),
            OK
        );
        assert_eq!(&buf[..2], b"1\0");
        // A length-only call: NULL buffer, cap 0.
        assert_eq!(
            Connection_FormParam(d, 3, c"a".as_ptr(), null_mut(), 0, &mut len),
            TOO_LARGE
        );
        assert_eq!(len, 1);
        assert_eq!(
            Request_PathDecoded(null(), b, 8, &mut len),
            CONNECTION_ERR_NULL
        );
    }
}

fn with_cookies(lines: &[&str]) -> String {
    let mut s = "GET / HTTP/1.1\r\nHost: h\r\n".to_string();
    for l in lines {
        s += &format!("Cookie: {l}\r\n");
    }
    s + "\r\n"
}

#[test]
fn cookie_table() {
    use Op::*;
    check(&[
        (with_cookies(&["a=1; b=2"]), Cookie("b", 64), OK, "2"),
        (with_cookies(&["a=1;b=2"]), Cookie("b", 64), OK, "2"),
        (with_cookies(&["a = 1 ;  b=2"]), Cookie("a", 64), OK, "1"),
        (with_cookies(&["a=1; a=2"]), Cookie("a", 64), OK, "1"),
        (with_cookies(&["x=1", "a=2"]), Cookie("a", 64), OK, "2"),
        (with_cookies(&["a=1", "a=2"]), Cookie("a", 64), OK, "1"),
        (
            with_cookies(&["s=\"quoted v\""]),
            Cookie("s", 64),
            OK,
            "quoted v",
        ),
        (with_cookies(&["t=ab==c="]), Cookie("t", 64), OK, "ab==c="),
        (with_cookies(&["e="]), Cookie("e", 64), OK, ""),
        (with_cookies(&["=v; a=1"]), Cookie("", 64), NOT_FOUND, ""),
        (with_cookies(&["=v; a=1"]), Cookie("a", 64), OK, "1"),
        (
            with_cookies(&["noeq; a=1"]),
            Cookie("noeq", 64),
            NOT_FOUND,
            "",
        ),
        (with_cookies(&["noeq; a=1"]), Cookie("a", 64), OK, "1"),
        (with_cookies(&["q=\"x"]), Cookie("q", 64), MALFORMED, ""),
        (with_cookies(&["q=x\ty"]), Cookie("q", 64), MALFORMED, ""),
        (with_cookies(&["A=1"]), Cookie("a", 64), NOT_FOUND, ""),
        (with_cookies(&[]), Cookie("a", 64), NOT_FOUND, ""),
        (with_cookies(&["p=%41"]), Cookie("p", 64), OK, "%41"),
        (
            with_cookies(&["long=abcdef"]),
            Cookie("long", 6),
            TOO_LARGE,
            "need 6",
        ),
    ]);
}

fn host(value: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: {value}\r\n\r\n")
}

#[test]
fn host_table() {
    use Op::*;
    check(&[
        (host("example.com"), Host, OK, "example.com|-1"),
        (host("Example.COM:8080"), Host, OK, "Example.COM|8080"),
        (host("example.com:"), Host, OK, "example.com|-1"),
        (host("a:0080"), Host, OK, "a|80"),
        (host("127.0.0.1:80"), Host, OK, "127.0.0.1|80"),
        (host("[::1]"), Host, OK, "::1|-1"),
        (host("[2001:db8::1]:443"), Host, OK, "2001:db8::1|443"),
        (host("a:65535"), Host, OK, "a|65535"),
        (host("a:65536"), Host, MALFORMED, ""),
        (host("a:0"), Host, OK, "a|0"),
        (host(""), Host, OK, "|-1"),
        ("GET / HTTP/1.0\r\n\r\n".into(), Host, NOT_FOUND, ""),
    ]);
}
