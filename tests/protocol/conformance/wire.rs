//! Reading what the server sent, twice over: a strict response parser of our
//! own, and h11 (python3-h11) as the independent one, through
//! tests/protocol/conformance/h11_check.py.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

/// One response as read off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Interim (1xx) statuses that came before it.
    pub info: Vec<u16>,
    pub status: u16,
    /// Field lines as sent ("Name: value").
    pub fields: Vec<String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.fields.iter().find_map(|f| {
            let (n, v) = f.split_once(':')?;
            n.eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
    pub fn has_field(&self, line: &str) -> bool {
        self.fields.iter().any(|f| f.eq_ignore_ascii_case(line))
    }
}

fn line(buf: &[u8], at: usize) -> Result<(&[u8], usize), String> {
    let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return Err(format!("no CRLF after offset {at}"));
    };
    let l = &buf[at..at + end];
    if l.contains(&b'\r') || l.contains(&b'\n') {
        return Err(format!("bare CR or LF in line at {at}: {:?}", show(l)));
    }
    Ok((l, at + end + 2))
}

pub fn show(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses `bytes` as a sequence of HTTP/1.1 responses, strictly: status line
/// `HTTP/1.1 DDD reason`, token field names, no bare CR/LF, framing by
/// RFC 9112 6.3 (`methods[i]` is the method of the i-th request; HEAD and
/// 1xx/204/304 have no body). Fails on anything else, including trailing
/// bytes that are not a complete response.
pub fn parse_responses(bytes: &[u8], methods: &[&str]) -> Result<Vec<Response>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut info = Vec::new();
    while at < bytes.len() {
        let method = methods.get(out.len()).copied().unwrap_or("GET");
        let (status_line, mut next) = line(bytes, at)?;
        let sl = std::str::from_utf8(status_line).map_err(|_| "status line not UTF-8")?;
        let rest = sl
            .strip_prefix("HTTP/1.1 ")
            .ok_or_else(|| format!("bad status line {sl:?} at {at}"))?;
        let code = rest.get(..3).ok_or("short status line")?;
        if !code.bytes().all(|b| b.is_ascii_digit())
            || rest.as_bytes().get(3).is_some_and(|&b| b != b' ')
        {
            return Err(format!("bad status code in {sl:?}"));
        }
        let status: u16 = code.parse().unwrap();
        if !(100..=599).contains(&status) {
            return Err(format!("status out of range: {sl:?}"));
        }
        let mut fields = Vec::new();
        loop {
            let (l, n) = line(bytes, next)?;
            next = n;
            if l.is_empty() {
                break;
            }
            let colon = l
                .iter()
                .position(|&b| b == b':')
                .ok_or_else(|| format!("field without colon: {:?}", show(l)))?;
            if colon == 0 || !l[..colon].iter().all(|&b| is_tchar(b)) {
                return Err(format!("bad field name: {:?}", show(l)));
            }
            if l[colon + 1..]
                .iter()
                .any(|&b| b < 0x20 && b != b'\t' || b == 0x7f)
            {
                return Err(format!("control byte in field value: {:?}", show(l)));
            }
            fields.push(String::from_utf8_lossy(l).into_owned());
        }
        let mut resp = Response {
            info: Vec::new(),
            status,
            fields,
            body: Vec::new(),
        };
        if (100..200).contains(&status) {
            if !resp.fields.is_empty() && status == 100 {
                return Err("100 Continue with fields".into());
            }
            info.push(status);
            at = next;
            continue;
        }
        let te = resp.header("Transfer-Encoding").map(str::to_owned);
        let cls: Vec<&str> = resp
            .fields
            .iter()
            .filter_map(|f| {
                f.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.trim())
            })
            .collect();
        if te.is_some() && !cls.is_empty() {
            return Err("response with both Transfer-Encoding and Content-Length".into());
        }
        if cls.len() > 1 {
            return Err("several Content-Length fields".into());
        }
        if status == 204 && !cls.is_empty() {
            return Err("204 with Content-Length".into());
        }
        let no_body = method == "HEAD" || status == 204 || status == 304;
        if no_body {
            at = next;
        } else if let Some(te) = te {
            if !te.eq_ignore_ascii_case("chunked") {
                return Err(format!("unexpected Transfer-Encoding {te:?}"));
            }
            let mut pos = next;
            loop {
                let (size_line, n) = line(bytes, pos)?;
                let hex = size_line.split(|&b| b == b';').next().unwrap();
                let s = std::str::from_utf8(hex)
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()));
                let size = s
                    .and_then(|s| usize::from_str_radix(s, 16).ok())
                    .ok_or_else(|| format!("bad chunk size {:?}", show(size_line)))?;
                pos = n;
                if size == 0 {
                    loop {
                        let (t, n) = line(bytes, pos)?;
                        pos = n;
                        if t.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                if bytes.len() < pos + size + 2 || &bytes[pos + size..pos + size + 2] != b"\r\n" {
                    return Err("chunk data not followed by CRLF".into());
                }
                resp.body.extend_from_slice(&bytes[pos..pos + size]);
                pos += size + 2;
            }
            at = pos;
        } else if let Some(cl) = cls.first() {
            if cl.is_empty() || !cl.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad Content-Length {cl:?}"));
            }
            let n: usize = cl.parse().map_err(|_| "Content-Length overflow")?;
            if bytes.len() < next + n {
                return Err(format!(
                    "body cut short: want {n}, have {}",
                    bytes.len() - next
                ));
            }
            resp.body = bytes[next..next + n].to_vec();
            at = next + n;
        } else {
            // Close-delimited.
            resp.body = bytes[next..].to_vec();
            at = bytes.len();
        }
        resp.info = std::mem::take(&mut info);
        out.push(resp);
    }
    if !info.is_empty() {
        return Err(format!("interim responses {info:?} with no final response"));
    }
    Ok(out)
}

// ----- h11 -----------------------------------------------------------------

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/protocol/conformance/h11_check.py"
);

/// A Python 3 that can `import h11`. Debian's python3-h11 lives in the
/// system interpreter's dist-packages, which a pyenv/venv `python3` first on
/// PATH does not see: the system one is tried first.
pub fn python_with_h11() -> String {
    let candidates = ["/usr/bin/python3", "python3"];
    for py in candidates {
        let ok = Command::new(py)
            .args(["-c", "import h11"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py.to_string();
        }
    }
    panic!(
        "the independent response check needs h11 for Python 3 (tried {candidates:?}): \
         apt-get install python3-h11"
    );
}

/// One stream for h11 to read.
pub struct Record<'a> {
    pub name: String,
    pub methods: Vec<&'a str>,
    pub bytes: Vec<u8>,
}

/// Runs h11_check.py over all records at once; returns its JSON line per record.
pub fn h11_check(records: &[Record]) -> Vec<String> {
    let py = python_with_h11();
    let mut input = Vec::new();
    for r in records {
        assert!(!r.name.contains(' ') && !r.name.is_empty());
        let methods = if r.methods.is_empty() {
            "-".to_string()
        } else {
            r.methods.join(",")
        };
        input.extend_from_slice(format!("{} {} {}\n", r.name, methods, r.bytes.len()).as_bytes());
        input.extend_from_slice(&r.bytes);
    }
    let mut child = Command::new(&py)
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {py} {SCRIPT}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("h11_check.py output");
    writer.join().unwrap().expect("writing to h11_check.py");
    assert!(
        out.status.success(),
        "h11_check.py failed ({}): {}\n(apt-get install python3-h11 if h11 is missing)",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 from h11_check.py");
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), records.len(), "h11_check.py output: {text}");
    lines
}

/// The JSON line h11_check.py prints for a stream h11 accepts whose
/// responses are `resps` and whose close is `close`.
pub fn h11_line(name: &str, resps: &[Response], close: bool) -> String {
    let items: Vec<String> = resps
        .iter()
        .map(|r| {
            let info: Vec<String> = r.info.iter().map(|s| s.to_string()).collect();
            format!(
                "{{\"body\":{},\"info\":[{}],\"status\":{}}}",
                r.body.len(),
                info.join(","),
                r.status
            )
        })
        .collect();
    format!(
        "{{\"error\":null,\"name\":\"{name}\",\"responses\":[{}],\"server_close\":{close}}}",
        items.join(",")
    )
}

// ----- llhttp (the second request oracle) -----------------------------------

const LLHTTP_DRIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/protocol/conformance/llhttp_check.c"
);
/// Where Debian's node-llhttp package puts llhttp's C sources and header.
const LLHTTP_SOURCES: &str = "/usr/share/llhttp";
const LLHTTP_INCLUDE: &str = "/usr/share/include/llhttp";

/// What llhttp made of one client byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Llhttp {
    /// This many complete requests, nothing left over.
    Ok(usize),
    /// This many complete requests, then an unfinished one.
    Partial(usize),
    /// This many complete requests, then a parse error (errno name, reason).
    Error(usize, String),
}

/// Builds tests/protocol/conformance/llhttp_check.c against llhttp (package
/// node-llhttp) with gcc, once per test binary directory.
pub fn llhttp_binary() -> std::path::PathBuf {
    let sources: Vec<String> = ["llhttp.c", "api.c", "http.c"]
        .iter()
        .map(|f| format!("{LLHTTP_SOURCES}/{f}"))
        .collect();
    for s in sources
        .iter()
        .cloned()
        .chain([format!("{LLHTTP_INCLUDE}/llhttp.h")])
    {
        assert!(
            std::path::Path::new(&s).exists(),
            "the second request oracle needs llhttp's C sources ({s} is missing): \
             apt-get install node-llhttp"
        );
    }
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("llhttp_check");
    let status = Command::new("gcc")
        .args(["-O1", "-w", "-I", LLHTTP_INCLUDE, LLHTTP_DRIVER])
        .args(&sources)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("running gcc for the llhttp oracle: {e} (apt-get install gcc)"));
    assert!(status.success(), "building {LLHTTP_DRIVER} failed");
    out
}

/// Runs every `(name, bytes)` through llhttp; returns llhttp's version
/// ("8.1.0") and one verdict per record.
pub fn llhttp_check(records: &[(&str, &[u8])]) -> (String, Vec<Llhttp>) {
    let bin = llhttp_binary();
    let mut input = Vec::new();
    for (name, bytes) in records {
        assert!(!name.contains(' ') && !name.is_empty());
        input.extend_from_slice(format!("{name} {}\n", bytes.len()).as_bytes());
        input.extend_from_slice(bytes);
    }
    let mut child = Command::new(&bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("llhttp_check output");
    writer.join().unwrap().expect("writing to llhttp_check");
    assert!(out.status.success(), "llhttp_check failed ({})", out.status);
    let text = String::from_utf8(out.stdout).expect("UTF-8 from llhttp_check");
    let mut lines: Vec<&str> = text.lines().collect();
    let version = lines
        .pop()
        .and_then(|l| l.strip_prefix("llhttp "))
        .expect("llhttp_check ends with its llhttp version")
        .to_string();
    assert_eq!(lines.len(), records.len(), "llhttp_check output: {text}");
    let verdicts = lines
        .iter()
        .zip(records)
        .map(|(line, (name, _))| {
            let mut f = line.splitn(4, ' ');
            assert_eq!(f.next(), Some(*name), "llhttp_check output order: {line}");
            let kind = f.next().unwrap_or("");
            let n: usize = f.next().and_then(|n| n.parse().ok()).expect(line);
            match kind {
                "ok" => Llhttp::Ok(n),
                "partial" => Llhttp::Partial(n),
                "error" => Llhttp::Error(n, f.next().unwrap_or("").to_string()),
                _ => panic!("llhttp_check: {line}"),
            }
        })
        .collect();
    (version, verdicts)
}
