//! Man pages: the committed `man/man3` is what `man/generate.py` makes of
//! the committed header (like header.rs for the header: `make man`
//! refreshes it); every function the header declares has its page, every
//! type a `.so` page; `make install` puts them under `share/man/man3` where
//! each renders with `groff -ww` and `man --warnings -l` without a single
//! warning; `make uninstall` leaves no file under the prefix.
//!
//! Fails (never skips) when python3, groff, man or make is missing.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{make_in, require_tool, run_ok, BuildLock, TempDir};

const CMD_TIMEOUT: Duration = Duration::from_secs(60);

fn pages_in(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// The functions and typedef names `include/connection.h` declares.
fn declared() -> (Vec<String>, Vec<String>) {
    let header = fs::read_to_string(common::repo_root().join("include/connection.h")).unwrap();
    let mut functions = Vec::new();
    let mut types = Vec::new();
    for line in header.lines() {
        if line.starts_with("typedef") {
            let name = if let Some(at) = line.find("(*") {
                line[at + 2..].split(')').next().unwrap()
            } else if line.ends_with('{') {
                continue;
            } else {
                line.trim_end_matches(';').rsplit(' ').next().unwrap()
            };
            types.push(name.to_owned());
        } else if let Some(name) = line.strip_prefix("} ").and_then(|n| n.strip_suffix(';')) {
            types.push(name.to_owned());
        } else if line.ends_with(");") && !line.starts_with(' ') && line.contains('(') {
            let before = &line[..line.find('(').unwrap()];
            functions.push(before.rsplit([' ', '*']).next().unwrap().to_owned());
        }
    }
    (functions, types)
}

#[test]
fn committed_pages_are_up_to_date() {
    require_tool("python3", "--version", "python3");
    let tmp = TempDir::new("man-gen");
    let out_dir = tmp.path().join("man3");
    let root = common::repo_root();
    run_ok(
        Command::new("python3")
            .arg(root.join("man/generate.py"))
            .arg(root.join("include/connection.h"))
            .arg(&out_dir),
        CMD_TIMEOUT,
    );
    let committed = root.join("man/man3");
    assert_eq!(
        pages_in(&out_dir),
        pages_in(&committed),
        "man/man3 is out of date: run `make man` and commit it"
    );
    for page in pages_in(&out_dir) {
        let fresh = fs::read(out_dir.join(&page)).unwrap();
        let old = fs::read(committed.join(&page)).unwrap();
        assert!(
            fresh == old,
            "man/man3/{page} is out of date: run `make man` and commit it"
        );
    }

    let (functions, types) = declared();
    assert!(functions.len() > 30, "found only {functions:?}");
    let pages = pages_in(&committed);
    for f in &functions {
        let page = format!("{f}.3");
        assert!(pages.contains(&page), "no man page for {f}");
        let text = fs::read_to_string(committed.join(&page)).unwrap();
        let name_line = format!(".SH NAME\n{} \\- ", f.replace('\\', "\\e"));
        assert!(text.contains(&name_line), "{page} lacks its NAME line");
        assert!(
            text.contains(".SH THREADS\n"),
            "{page} does not say its threads"
        );
    }
    for t in &types {
        assert!(
            pages.contains(&format!("{t}.3")),
            "no man page for type {t}"
        );
    }
    assert!(pages.contains("connection-core.3"));
}

/// `page` (in `man_root`/man3) renders with no warning from groff or man.
fn check_page(man_root: &Path, page: &str) {
    let rel = format!("man3/{page}");
    // groff itself, every warning on; -s follows .so links.
    let out = run_ok(
        Command::new("groff")
            .args(["-s", "-man", "-Tutf8", "-ww", "-z"])
            .arg(&rel)
            .current_dir(man_root),
        CMD_TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "groff warns on {rel}:\n{err}");
    // man -l, as a reader would run it (from the man root, where .so
    // links resolve), with man-db's warnings on.
    let out = run_ok(
        Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&rel)
            .current_dir(man_root)
            .env("MANWIDTH", "80")
            .env_remove("MANPAGER")
            .env_remove("PAGER")
            .env_remove("MANOPT"),
        CMD_TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "man --warnings -l {rel} warns:\n{err}");
    // Without a terminal man overstrikes bold text ("N\x08N"): drop that.
    let mut text = String::new();
    for c in String::from_utf8_lossy(&out.stdout).chars() {
        if c == '\u{8}' {
            text.pop();
        } else {
            text.push(c);
        }
    }
    assert!(
        text.contains("NAME") && text.lines().count() > 8,
        "man -l {rel} rendered almost nothing:\n{text}"
    );
}

#[test]
fn installed_pages_render_without_warnings() {
    require_tool("make", "--version", "make");
    require_tool("groff", "--version", "groff");
    require_tool("man", "--version", "man-db");

    let tmp = TempDir::new("man-install");
    let prefix = tmp.path().join("prefix");
    let make = |target: &str| {
        let mut cmd = make_in(&common::repo_root());
        cmd.arg(target).arg(format!("PREFIX={}", prefix.display()));
        run_ok(&mut cmd, common::BUILD_TIMEOUT)
    };
    {
        let _lock = BuildLock::acquire();
        make("install");
    }
    let man_root = prefix.join("share/man");
    let installed = pages_in(&man_root.join("man3"));
    assert_eq!(
        installed,
        pages_in(&common::repo_root().join("man/man3")),
        "installed pages"
    );
    // Four at a time: each `man` run is a pipeline of several processes.
    let pages: Vec<&String> = installed.iter().collect();
    std::thread::scope(|scope| {
        for part in pages.chunks(pages.len().div_ceil(4)) {
            let man_root = &man_root;
            scope.spawn(move || {
                for page in part {
                    check_page(man_root, page);
                }
            });
        }
    });
    eprintln!("{} pages render without warnings", installed.len());

    make("uninstall");
    let mut left = Vec::new();
    let mut stack = vec![prefix.clone()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                left.push(e.path());
            }
        }
    }
    assert!(left.is_empty(), "left after make uninstall: {left:?}");
}
