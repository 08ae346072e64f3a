//! c-examples/static.c with Response_SendFileRanged: Range (206, 416, edges),
//! If-Range, If-None-Match / If-Modified-Since (304) and HEAD answered with
//! exact bytes, for a file sent with sendfile and one small enough to be
//! read; every hostile path refused; and nginx (`sendfile on`) serving the
//! same directory gives the same status, Content-Range and bytes. SIGINT
//! exits 0; a missing or bad --root exits 2.
//!
//! Fails (never skips) without nginx: install nginx-light (.ci/run does).

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIG: usize = 200_000; // above the library's read-at-once size
const SMALL: usize = 5_000;
const TIMEOUT: Duration = Duration::from_secs(5);

/// Byte i of a test file.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// The served tree: files, an index, symlinks out of and inside the root.
fn make_root(dir: &Path) {
    fs::write(dir.join("big.bin"), content(BIG, 1)).unwrap();
    fs::write(dir.join("small.txt"), content(SMALL, 2)).unwrap();
    fs::write(dir.join("empty.txt"), b"").unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    fs::write(dir.join("sub/index.html"), b"<h1>index</h1>\n").unwrap();
    fs::create_dir(dir.join("a")).unwrap();
    symlink("/etc", dir.join("etc_link")).unwrap();
    symlink("/etc/passwd", dir.join("passwd_link")).unwrap();
    symlink("big.bin", dir.join("inner_link")).unwrap();
}

fn start_static(root: &Path) -> Program {
    let mut cmd = Command::new(example("static"));
    cmd.arg("--root")
        .arg(root)
        .args(["--port", "0", "--host", "127.0.0.1"]);
    Program::start("static", cmd)
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

fn ask(port: u16, raw: &str) -> Answer {
    request(port, raw.as_bytes(), TIMEOUT).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
}

fn get(port: u16, path: &str, extra: &str) -> Answer {
    ask(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n"),
    )
}

fn hdr<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    header(&a.1, name)
}

fn check(a: &Answer, status: u16, body: &[u8], content_range: Option<&str>, what: &str) {
    assert_eq!(a.0, status, "{what}: status; headers {:?}", a.1);
    assert!(
        a.2 == body,
        "{what}: body of {} bytes, want {}",
        a.2.len(),
        body.len()
    );
    assert_eq!(
        hdr(a, "content-range"),
        content_range,
        "{what}: Content-Range"
    );
    if status != 304 {
        assert_eq!(
            hdr(a, "content-length"),
            Some(&*body.len().to_string()),
            "{what}"
        );
    }
}

fn ranges_and_conditions(port: u16, path: &str, file: &[u8]) {
    let n = file.len();
    let whole = get(port, path, "");
    check(&whole, 200, file, None, "whole");
    assert_eq!(hdr(&whole, "accept-ranges"), Some("bytes"));
    let etag = hdr(&whole, "etag").expect("ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong: {etag}"
    );
    let lm = hdr(&whole, "last-modified")
        .expect("Last-Modified")
        .to_owned();

    let part = |range: &str| get(port, path, &format!("Range: {range}\r\n"));
    let cr = |a: usize, b: usize| format!("bytes {a}-{b}/{n}");
    check(&part("bytes=0-0"), 206, &file[..1], Some(&cr(0, 0)), "0-0");
    let last = format!("bytes={}-{}", n - 1, n - 1);
    check(
        &part(&last),
        206,
        &file[n - 1..],
        Some(&cr(n - 1, n - 1)),
        "last byte",
    );
    check(
        &part("bytes=-1"),
        206,
        &file[n - 1..],
        Some(&cr(n - 1, n - 1)),
        "-1",
    );
    let longer = format!("bytes=-{}", n + 10);
    check(
        &part(&longer),
        206,
        file,
        Some(&cr(0, n - 1)),
        "suffix longer than the file",
    );
    check(
        &part("bytes=100-"),
        206,
        &file[100..],
        Some(&cr(100, n - 1)),
        "100-",
    );
    let over = format!("bytes=10-{}", n + 1000);
    check(
        &part(&over),
        206,
        &file[10..],
        Some(&cr(10, n - 1)),
        "last beyond the end",
    );
    let beyond = format!("bytes={n}-");
    let star = format!("bytes */{n}");
    check(
        &part(&beyond),
        416,
        b"",
        Some(&star),
        "first beyond the end",
    );
    check(&part("bytes=-0"), 416, b"", Some(&star), "-0");
    check(&part("bytes=0-1,5-6"), 200, file, None, "multi-range");
    check(&part("bytes=5-1"), 200, file, None, "invalid range");
    check(&part("lines=1-2"), 200, file, None, "other unit");

    let with = |h: &str| get(port, path, &format!("Range: bytes=1-3\r\n{h}\r\n"));
    let r13 = Some(cr(1, 3));
    check(
        &with(&format!("If-Range: {etag}")),
        206,
        &file[1..4],
        r13.as_deref(),
        "If-Range etag",
    );
    check(
        &with("If-Range: \"nope\""),
        200,
        file,
        None,
        "If-Range other etag",
    );
    check(
        &with(&format!("If-Range: W/{etag}")),
        200,
        file,
        None,
        "If-Range weak etag",
    );
    check(
        &with(&format!("If-Range: {lm}")),
        206,
        &file[1..4],
        r13.as_deref(),
        "If-Range date",
    );
    let other_date = "If-Range: Sun, 06 Nov 1994 08:49:37 GMT";
    check(&with(other_date), 200, file, None, "If-Range other date");

    let cond = |h: &str| get(port, path, &format!("{h}\r\n"));
    for h in [
        format!("If-None-Match: {etag}"),
        format!("If-None-Match: \"x\", W/{etag}"),
        "If-None-Match: *".to_owned(),
        format!("If-Modified-Since: {lm}"),
        "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT".to_owned(),
        format!("If-None-Match: {etag}\r\nRange: bytes=0-0"),
    ] {
        let a = cond(&h);
        check(&a, 304, b"", None, &h);
        assert_eq!(hdr(&a, "etag"), Some(&*etag), "{h}: 304 carries the ETag");
        assert_eq!(hdr(&a, "content-length"), None, "{h}");
    }
    for h in [
        "If-None-Match: \"x\"".to_owned(),
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT".to_owned(),
        format!("If-None-Match: \"x\"\r\nIf-Modified-Since: {lm}"),
        "If-Modified-Since: not a date".to_owned(),
    ] {
        check(&cond(&h), 200, file, None, &h);
    }

    // HEAD: the GET's head, no body (the next response on the same
    // connection starts right after it).
    let mut c = Conn::open(port);
    let wire = format!(
        "HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\nHEAD {path} HTTP/1.1\r\nHost: t\r\nRange: bytes=1-2\r\n\r\n\
         HEAD {path} HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\nGET {path} HTTP/1.1\r\nHost: t\r\nRange: bytes=-2\r\n\r\n"
    );
    c.send(wire.as_bytes()).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let (status, h) = c.read_head(deadline).unwrap();
    assert_eq!(
        (status, header(&h, "content-length")),
        (200, Some(&*n.to_string()))
    );
    assert_eq!(header(&h, "etag"), Some(&*etag));
    let (status, h) = c.read_head(deadline).unwrap();
    assert_eq!(
        (status, header(&h, "content-range")),
        (206, Some(&*cr(1, 2)))
    );
    assert_eq!(header(&h, "content-length"), Some("2"));
    let (status, _) = c.read_head(deadline).unwrap();
    assert_eq!(status, 304);
    let a = c.read_response(deadline).unwrap();
    check(
        &a,
        206,
        &file[n - 2..],
        Some(&cr(n - 2, n - 1)),
        "GET after the HEADs",
    );
}

#[test]
fn ranges_conditionals_and_head_give_exact_bytes() {
    let tmp = TempDir::new("static");
    make_root(tmp.path());
    let server = start_static(tmp.path());
    ranges_and_conditions(server.port, "/big.bin", &content(BIG, 1));
    ranges_and_conditions(server.port, "/small.txt", &content(SMALL, 2));
    ranges_and_conditions(server.port, "/inner_link", &content(BIG, 1));
    let empty = get(server.port, "/empty.txt", "");
    check(&empty, 200, b"", None, "empty file");
    let a = get(server.port, "/empty.txt", "Range: bytes=0-\r\n");
    check(&a, 416, b"", Some("bytes */0"), "range of an empty file");
    let a = get(server.port, "/sub/", "");
    check(&a, 200, b"<h1>index</h1>\n", None, "index.html");
    assert_eq!(hdr(&a, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(get(server.port, "/sub", "").0, 301);
    let mut server = server;
    assert_eq!(server.interrupt().code(), Some(0), "SIGINT: drain, exit 0");
    // A root that does not exist, or none: exit 2.
    for args in [&["--root", "/nonexistent/dir"][..], &[]] {
        let out = Command::new(example("static")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn hostile_paths_are_all_refused() {
    let tmp = TempDir::new("static-hostile");
    make_root(tmp.path());
    let server = start_static(tmp.path());
    let passwd = fs::read("/etc/passwd").unwrap_or_default();
    let long = format!("/{}", "a/".repeat(3000));
    let targets = [
        "/../etc/passwd",
        "/%2e%2e/",
        "/%2e%2e/etc/passwd",
        "/%2E%2E%2Fetc/passwd",
        "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/a/%2f../",
        "/a/..%2f..%2fetc/passwd",
        "/sub/../../etc/passwd",
        "/%00",
        "/big.bin%00.txt",
        "/..%5c",
        "/..%5c..%5cetc%5cpasswd",
        "/..\\..\\etc\\passwd",
        "//etc/passwd",
        "/etc_link/passwd",
        "/etc_link/",
        "/passwd_link",
        "http://127.0.0.1/../etc/passwd",
        "http://127.0.0.1//etc/passwd",
        "/%",
        "/%zz",
        &long,
    ];
    for target in targets {
        let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let a = ask(server.port, &raw);
        assert!(
            [400, 403, 404, 414].contains(&a.0),
            "{target:?}: got {} {:?}",
            a.0,
            String::from_utf8_lossy(&a.2[..a.2.len().min(200)])
        );
        assert!(
            passwd.is_empty() || a.2 != passwd,
            "{target:?} served /etc/passwd"
        );
        assert!(!a.2.windows(5).any(|w| w == b"root:"), "{target:?}");
    }
    // What is inside the root stays reachable, also through escapes.
    assert_eq!(get(server.port, "/%62ig.bin", "").2, content(BIG, 1));
    assert_eq!(get(server.port, "/sub/index%2ehtml", "").0, 200);
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        send_signal(self.0.id() as i32, libc::SIGQUIT);
        if wait_child(&mut self.0, Duration::from_secs(10)).is_none() {
            // SAFETY: kill(2) on nginx's own process group.
            unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
            let _ = wait_child(&mut self.0, Duration::from_secs(5));
        }
    }
}

fn start_nginx(root: &Path, dir: &Path) -> (Nginx, u16) {
    let bin = nginx_program();
    let version = nginx_version(&bin);
    let port = free_port();
    let d = dir.display();
    // SAFETY: geteuid has no preconditions.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let conf = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\n{user}\npid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\nevents {{ worker_connections 64; }}\nhttp {{\n{}\
         \x20   access_log off;\n    sendfile on;\n    server {{\n        listen 127.0.0.1:{port};\n\
         \x20       root {};\n    }}\n}}\n",
        nginx_temp_paths(dir, &version),
        root.display()
    );
    let path = dir.join("nginx.conf");
    fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.arg("-p").arg(format!("{d}/")).arg("-c").arg(&path);
    if nginx_version_at_least(&version, (1, 19, 5)) {
        cmd.arg("-e").arg(dir.join("error.log"));
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    use std::os::unix::process::CommandExt;
    let nginx = Nginx(cmd.spawn().unwrap_or_else(|e| panic!("spawn nginx: {e}")));
    assert!(
        wait_until(Duration::from_secs(10), || try_connect(port).is_ok()),
        "nginx did not listen on {port}: {}",
        fs::read_to_string(dir.join("error.log")).unwrap_or_default()
    );
    (nginx, port)
}

#[test]
fn nginx_serving_the_same_directory_gives_the_same_bytes() {
    let tmp = TempDir::new("static-nginx");
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    make_root(&root);
    let ours = start_static(&root);
    let (_nginx, theirs) = start_nginx(&root, tmp.path());
    let mut compared = 0;
    for path in [
        "/big.bin",
        "/small.txt",
        "/empty.txt",
        "/sub/",
        "/inner_link",
    ] {
        for range in [
            "",
            "bytes=0-0",
            "bytes=-1",
            "bytes=-999999",
            "bytes=7-",
            "bytes=3-30",
        ] {
            if path == "/empty.txt" && !range.is_empty() {
                continue; // nginx answers a range of an empty file with 200
            }
            let extra = if range.is_empty() {
                String::new()
            } else {
                format!("Range: {range}\r\n")
            };
            let a = get(ours.port, path, &extra);
            let b = get(theirs, path, &extra);
            let what = format!("{path} {range:?}");
            assert_eq!(a.0, b.0, "{what}: status");
            assert_eq!(hdr(&a, "content-range"), hdr(&b, "content-range"), "{what}");
            assert_eq!(
                hdr(&a, "content-length"),
                hdr(&b, "content-length"),
                "{what}"
            );
            assert!(
                a.2 == b.2,
                "{what}: bodies differ ({} vs {} bytes)",
                a.2.len(),
                b.2.len()
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 25);
}
