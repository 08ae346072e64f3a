//! `make install` / `make uninstall` into a temporary prefix, and the
//! example built out of tree against what was installed, the way a C
//! programmer would: nothing but `cc server.c $(pkg-config --cflags --libs
//! connection-core)` (shared), and the same with `pkg-config --static` and
//! the static archive (static). Both binaries serve `GET /` and exit 0 on
//! SIGINT; `ldd` shows that only the shared one needs
//! libconnection_core.so; after `make uninstall` the static one still runs
//! and the shared one no longer can. The CMake package and the man pages
//! are installed too (tests/packaging/cmake_package.rs and man_pages.rs use
//! them) and removed by uninstall.
//!
//! Fails (never skips) when make, cc, pkg-config, ldd or readelf is missing.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{ctest_target, make_in, require_tool, run, run_ok, BuildLock, Program, TempDir};

const CMD_TIMEOUT: Duration = Duration::from_secs(120);

const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");
const MINOR: &str = env!("CARGO_PKG_VERSION_MINOR");

/// The ABI version in the soname: MAJOR, or 0.MINOR before 1.0.
fn abi() -> String {
    if MAJOR == "0" {
        format!("0.{MINOR}")
    } else {
        MAJOR.to_owned()
    }
}

fn soname() -> String {
    format!("libconnection_core.so.{}", abi())
}

fn realname() -> String {
    format!("libconnection_core.so.{VERSION}")
}

/// Every non-directory entry under `dir`, relative to it.
fn files_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            if meta.is_dir() {
                walk(base, &path, out);
            } else {
                out.insert(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn dirs_under(dir: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if fs::symlink_metadata(&path).expect("lstat").is_dir() {
                out.insert(path.strip_prefix(base).unwrap().display().to_string());
                walk(base, &path, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

fn make(args: &[String]) -> Output {
    let mut cmd = make_in(&common::repo_root());
    cmd.args(args);
    run_ok(&mut cmd, common::BUILD_TIMEOUT)
}

fn same_bytes(a: &Path, b: &Path) {
    let x = fs::read(a).unwrap_or_else(|e| panic!("read {}: {e}", a.display()));
    let y = fs::read(b).unwrap_or_else(|e| panic!("read {}: {e}", b.display()));
    assert!(
        x == y,
        "{} differs from {} ({} vs {} bytes)",
        a.display(),
        b.display(),
        x.len(),
        y.len()
    );
}

fn expect_symlink(path: &Path, to: &str) {
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{} is missing: {e}", path.display()));
    assert!(
        meta.file_type().is_symlink(),
        "{} is not a symlink",
        path.display()
    );
    let target = fs::read_link(path).unwrap();
    assert_eq!(
        target,
        PathBuf::from(to),
        "{} points to {} (want the relative name {to})",
        path.display(),
        target.display()
    );
    assert!(path.exists(), "{} dangles", path.display());
}

fn readelf_dynamic(path: &Path) -> String {
    let out = run_ok(Command::new("readelf").arg("-d").arg(path), CMD_TIMEOUT);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(name, value)` of the .pc file's `Name: value` fields and `name=value`
/// variables.
fn pc_fields(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let colon = l.find(':');
            let eq = l.find('=');
            let at = match (colon, eq) {
                (Some(c), Some(e)) => c.min(e),
                (Some(c), None) => c,
                (None, Some(e)) => e,
                (None, None) => return None,
            };
            Some((l[..at].trim().to_owned(), l[at + 1..].trim().to_owned()))
        })
        .collect()
}

fn pc_field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("connection-core.pc has no {name}: {fields:?}"))
}

fn pkg_config(pc_dir: &Path, args: &[&str]) -> String {
    let out = run_ok(
        Command::new("pkg-config")
            .args(args)
            .env("PKG_CONFIG_PATH", pc_dir)
            .env_remove("PKG_CONFIG_SYSROOT_DIR"),
        CMD_TIMEOUT,
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `sh -c SCRIPT` in `dir` with PKG_CONFIG_PATH set; panics on failure.
fn shell(dir: &Path, pc_dir: &Path, script: &str) -> Output {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PKG_CONFIG_PATH", pc_dir)
        .env_remove("PKG_CONFIG_SYSROOT_DIR")
        .env_remove("CPATH")
        .env_remove("C_INCLUDE_PATH")
        .env_remove("LIBRARY_PATH")
        .env_remove("LD_LIBRARY_PATH");
    let out = run_ok(&mut cmd, CMD_TIMEOUT);
    eprintln!("$ {script}\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn ldd(bin: &Path, lib_dir: &Path) -> String {
    let out = run_ok(
        Command::new("ldd").arg(bin).env("LD_LIBRARY_PATH", lib_dir),
        CMD_TIMEOUT,
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `bin --port 0 --host 127.0.0.1`, checks GET / and a clean SIGINT exit.
fn serve_once(name: &str, bin: &Path, lib_dir: Option<&Path>) {
    let mut cmd = Command::new(bin);
    cmd.args(["--port", "0", "--host", "127.0.0.1"])
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("CONNECTION_LOG");
    if let Some(dir) = lib_dir {
        cmd.env("LD_LIBRARY_PATH", dir);
    }
    let mut p = Program::start(name, cmd);
    let (status, _, body) = common::get(p.port, "/");
    assert_eq!(
        (status, body.as_slice()),
        (200, common::HELLO),
        "{name}: GET / -> {status} {:?}",
        String::from_utf8_lossy(&body)
    );
    let status = p.interrupt();
    assert_eq!(
        status.code(),
        Some(0),
        "{name}: exit after SIGINT: {}; stderr:\n{}",
        common::describe_status(status),
        p.stderr_text()
    );
    eprintln!(
        "{name}: served GET / on port {} and exited 0 on SIGINT",
        p.port
    );
}

#[test]
fn install_build_out_of_tree_and_uninstall() {
    require_tool("make", "--version", "make");
    require_tool("cc", "--version", "gcc");
    require_tool("pkg-config", "--version", "pkg-config");
    require_tool("ldd", "--version", "libc-bin");
    require_tool("readelf", "--version", "binutils");

    let tmp = TempDir::new("install");
    let prefix = tmp.path().join("prefix");
    let lib = prefix.join("lib");
    let include = prefix.join("include");
    let pc_dir = lib.join("pkgconfig");

    // Files and directories that were there before: uninstall must leave them.
    for dir in [&include, &pc_dir, &prefix.join("share")] {
        fs::create_dir_all(dir).unwrap();
    }
    let foreign = [
        "include/other.h",
        "lib/libother.so",
        "lib/pkgconfig/other.pc",
    ];
    for f in foreign {
        fs::write(prefix.join(f), "not ours\n").unwrap();
    }
    let dirs_before = dirs_under(&prefix);

    // ---- make install --------------------------------------------------
    {
        // Hold the build lock while installing and comparing with the build.
        let _lock = BuildLock::acquire();
        let out = make(&["install".into(), format!("PREFIX={}", prefix.display())]);
        eprintln!("make install:\n{}", String::from_utf8_lossy(&out.stdout));
        let build = ctest_target().join("release");

        same_bytes(
            &include.join("connection.h"),
            &common::repo_root().join("include/connection.h"),
        );
        same_bytes(
            &lib.join("libconnection_core.a"),
            &build.join("libconnection_core.a"),
        );
        let real = lib.join(realname());
        same_bytes(&real, &build.join("libconnection_core.so"));
        let meta = fs::symlink_metadata(&real).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{} is not a regular file",
            real.display()
        );
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o755,
            "{} mode",
            real.display()
        );
        for f in [
            "include/connection.h",
            "lib/libconnection_core.a",
            "lib/pkgconfig/connection-core.pc",
        ] {
            let mode = fs::metadata(prefix.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "{f} mode {mode:o}");
        }
        expect_symlink(&lib.join(soname()), &realname());
        expect_symlink(&lib.join("libconnection_core.so"), &soname());
        let dynamic = readelf_dynamic(&real);
        assert!(
            dynamic.contains(&format!("Library soname: [{}]", soname())),
            "{} does not carry the soname {}:\n{dynamic}",
            real.display(),
            soname()
        );
    }

    let mut expected: BTreeSet<String> = foreign.iter().map(|s| s.to_string()).collect();
    for f in [
        "include/connection.h".to_owned(),
        "lib/libconnection_core.a".to_owned(),
        format!("lib/{}", realname()),
        format!("lib/{}", soname()),
        "lib/libconnection_core.so".to_owned(),
        "lib/pkgconfig/connection-core.pc".to_owned(),
        "lib/cmake/connection-core/connection-coreConfig.cmake".to_owned(),
        "lib/cmake/connection-core/connection-coreConfigVersion.cmake".to_owned(),
    ] {
        expected.insert(f);
    }
    // Every committed man page (tests/packaging/man_pages.rs checks them).
    for page in fs::read_dir(common::repo_root().join("man/man3")).unwrap() {
        let name = page.unwrap().file_name().into_string().unwrap();
        expected.insert(format!("share/man/man3/{name}"));
    }
    assert_eq!(files_under(&prefix), expected, "files after make install");

    // ---- the .pc file ---------------------------------------------------
    let pc_text = fs::read_to_string(pc_dir.join("connection-core.pc")).unwrap();
    eprintln!("connection-core.pc:\n{pc_text}");
    let pc = pc_fields(&pc_text);
    assert_eq!(pc_field(&pc, "prefix"), prefix.display().to_string());
    assert_eq!(pc_field(&pc, "Name"), "connection-core");
    assert_eq!(pc_field(&pc, "Version"), VERSION);
    assert_eq!(pc_field(&pc, "Description"), env!("CARGO_PKG_DESCRIPTION"));
    assert_eq!(pc_field(&pc, "Cflags"), "-I${includedir}");
    assert_eq!(pc_field(&pc, "Libs"), "-L${libdir} -lconnection_core");
    let private: BTreeSet<&str> = pc_field(&pc, "Libs.private").split_whitespace().collect();
    for l in ["-lpthread", "-ldl", "-lm", "-lrt", "-lutil"] {
        assert!(private.contains(l), "Libs.private lacks {l}: {private:?}");
    }
    assert_eq!(
        pkg_config(&pc_dir, &["--modversion", "connection-core"]),
        VERSION
    );
    assert_eq!(
        pkg_config(&pc_dir, &["--cflags", "connection-core"]),
        format!("-I{}", include.display())
    );
    assert_eq!(
        pkg_config(&pc_dir, &["--libs", "connection-core"]),
        format!("-L{} -lconnection_core", lib.display())
    );

    // ---- build the example out of tree ----------------------------------
    let build_dir = tmp.path().join("build");
    fs::create_dir_all(&build_dir).unwrap();
    fs::copy(
        common::repo_root().join("c-examples/server.c"),
        build_dir.join("server.c"),
    )
    .unwrap();

    // Shared: exactly what the issue asks a user to type.
    shell(
        &build_dir,
        &pc_dir,
        "cc -o server-shared server.c $(pkg-config --cflags --libs connection-core)",
    );
    // Static: pkg-config --static adds Libs.private; -Bstatic around
    // -lconnection_core makes the linker take the .a although the .so sits
    // next to it (the system libraries stay shared).
    shell(
        &build_dir,
        &pc_dir,
        "cc -o server-static server.c $(pkg-config --static --cflags --libs connection-core \
         | sed 's/-lconnection_core/-Wl,-Bstatic & -Wl,-Bdynamic/')",
    );
    let shared_bin = build_dir.join("server-shared");
    let static_bin = build_dir.join("server-static");

    let shared_ldd = ldd(&shared_bin, &lib);
    let want = format!("{} => {}", soname(), lib.join(soname()).display());
    assert!(
        shared_ldd.contains(&want),
        "ldd server-shared does not resolve {} from the prefix (want {want:?}):\n{shared_ldd}",
        soname()
    );
    assert!(
        readelf_dynamic(&shared_bin).contains(&format!("Shared library: [{}]", soname())),
        "server-shared does not record NEEDED {}",
        soname()
    );
    let static_ldd = ldd(&static_bin, &lib);
    assert!(
        !static_ldd.contains("libconnection_core"),
        "server-static still needs the shared library:\n{static_ldd}"
    );
    eprintln!("ldd server-shared:\n{shared_ldd}ldd server-static:\n{static_ldd}");

    // The installed header's version macros and the installed library's
    // Connection_Version() agree with Cargo.toml.
    fs::write(
        build_dir.join("version.c"),
        "#include <connection.h>\n#include <stdio.h>\n#include <string.h>\n\
         int main(void) {\n\
             printf(\"%d.%d.%d %s %s\\n\", CONNECTION_VERSION_MAJOR, CONNECTION_VERSION_MINOR,\n\
                    CONNECTION_VERSION_PATCH, CONNECTION_VERSION_STRING, Connection_Version());\n\
             return strcmp(Connection_Version(), CONNECTION_VERSION_STRING) != 0;\n\
         }\n",
    )
    .unwrap();
    shell(
        &build_dir,
        &pc_dir,
        "cc -std=c99 -Wall -Wextra -pedantic -Werror -o version version.c \
         $(pkg-config --cflags --libs connection-core)",
    );
    let out = run_ok(
        Command::new(build_dir.join("version")).env("LD_LIBRARY_PATH", &lib),
        CMD_TIMEOUT,
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{VERSION} {VERSION} {VERSION}"),
        "version macros / Connection_Version() of the installed library"
    );

    serve_once("server-shared", &shared_bin, Some(&lib));
    serve_once("server-static", &static_bin, None);

    // ---- make uninstall -------------------------------------------------
    make(&["uninstall".into(), format!("PREFIX={}", prefix.display())]);
    let left = files_under(&prefix);
    let foreign_set: BTreeSet<String> = foreign.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        left, foreign_set,
        "after make uninstall: files of ours left, or files not ours removed"
    );
    // Directories stay (they may hold other packages' files), except our
    // own CMake package directory.
    let dirs_after = dirs_under(&prefix);
    assert!(
        dirs_after.is_superset(&dirs_before),
        "make uninstall must not remove directories: before {dirs_before:?}, after {dirs_after:?}"
    );
    assert!(
        !dirs_after.contains("lib/cmake/connection-core"),
        "make uninstall leaves lib/cmake/connection-core"
    );

    // The static build needs nothing that was installed; the shared one does.
    serve_once("server-static (after uninstall)", &static_bin, None);
    let mut cmd = Command::new(&shared_bin);
    cmd.args(["--port", "0", "--host", "127.0.0.1"])
        .env("LD_LIBRARY_PATH", &lib);
    let out = run(&mut cmd, CMD_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(&soname()),
        "server-shared should fail to load without {} (status {}, stderr {err:?})",
        soname(),
        common::describe_status(out.status)
    );
}

/// DESTDIR staging, as a distribution package build does it: files land
/// under DESTDIR+PREFIX, the .pc file names PREFIX alone.
#[test]
fn install_with_destdir() {
    require_tool("make", "--version", "make");
    let tmp = TempDir::new("destdir");
    let stage = tmp.path().join("stage");
    let args = |target: &str| {
        vec![
            target.to_owned(),
            "PREFIX=/opt/connection-core".to_owned(),
            format!("DESTDIR={}", stage.display()),
        ]
    };
    {
        let _lock = BuildLock::acquire();
        make(&args("install"));
    }
    let root = stage.join("opt/connection-core");
    let files = files_under(&root);
    assert!(
        files.contains("lib/pkgconfig/connection-core.pc")
            && files.contains("include/connection.h"),
        "DESTDIR install wrote {files:?}"
    );
    assert_eq!(
        files_under(&stage).len(),
        files.len(),
        "files outside DESTDIR/PREFIX"
    );
    let pc = fs::read_to_string(root.join("lib/pkgconfig/connection-core.pc")).unwrap();
    assert!(
        pc.lines().any(|l| l == "prefix=/opt/connection-core"),
        "the .pc file must name PREFIX without DESTDIR:\n{pc}"
    );
    make(&args("uninstall"));
    assert!(
        files_under(&stage).is_empty(),
        "left after uninstall: {:?}",
        files_under(&stage)
    );
}
