//! Running a real nginx (Debian's nginx-light) beside our server: finding
//! it, reading its version and build options, and the temp-path directives
//! that keep everything it writes in a test's own directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `nginx` from PATH, else from the sbin directories a non-root PATH
/// often lacks (Debian installs it as /usr/sbin/nginx).
pub fn nginx_program() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| "nginx".into())
}

/// What `nginx -V` prints (version and configure arguments); panics,
/// naming the package, when nginx cannot be run.
pub fn nginx_version(bin: &Path) -> String {
    match Command::new(bin).arg("-V").output() {
        Ok(out) => {
            String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout)
        }
        Err(e) => panic!(
            "nginx is needed by this test but cannot be run ({e}): install nginx-light \
             (apt-get install nginx-light; .ci/run installs it)"
        ),
    }
}

/// Whether `nginx -V` output names a version of at least `want`.
pub fn nginx_version_at_least(v: &str, want: (u32, u32, u32)) -> bool {
    // "nginx version: nginx/1.22.1 ..."
    let Some(ver) = v.split("nginx/").nth(1) else {
        return false;
    };
    let nums: Vec<u32> = ver
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|n| n.parse().unwrap_or(0))
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
        nums.get(2).copied().unwrap_or(0),
    ) >= want
}

/// `*_temp_path` directives (one per line, indented for an `http` block)
/// that put nginx's temporary files under `dir`, for the modules this
/// build has (`version` is `nginx -V` output).
pub fn nginx_temp_paths(dir: &Path, version: &str) -> String {
    let d = dir.display();
    let mut lines =
        format!("    client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n");
    for (module, directive) in [
        ("fastcgi", "fastcgi_temp_path"),
        ("uwsgi", "uwsgi_temp_path"),
        ("scgi", "scgi_temp_path"),
    ] {
        if !version.contains(&format!("--without-http_{module}_module")) {
            lines.push_str(&format!("    {directive} {d}/{module};\n"));
        }
    }
    lines
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}
