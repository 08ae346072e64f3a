//! `make install` ships a CMake package: an out-of-tree project
//! (`tests/fixtures/cmake-consumer`) finds it with `find_package` in a
//! DESTDIR-staged install (so its paths must be relative to the config
//! file: relocatable), links `connection-core::shared` and
//! `connection-core::static`, and both programs serve a request and exit 0;
//! `ldd` shows the static one needs no libconnection_core.so; a version the
//! package is not compatible with is refused; `make uninstall` leaves no
//! file under the prefix.
//!
//! Fails (never skips) when cmake, make, cc or ldd is missing.

#[path = "../common/mod.rs"]
mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{make_in, require_tool, run, run_ok, BuildLock, TempDir};

const CMD_TIMEOUT: Duration = Duration::from_secs(300);
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Every file (not directory) under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if fs::symlink_metadata(&path).expect("lstat").is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn make(args: &[String]) -> Output {
    let mut cmd = make_in(&common::repo_root());
    cmd.args(args);
    run_ok(&mut cmd, common::BUILD_TIMEOUT)
}

/// A clean environment for cmake and the programs it builds: nothing from
/// the caller's search paths.
fn clean(cmd: &mut Command) -> &mut Command {
    for v in [
        "CMAKE_PREFIX_PATH",
        "LD_LIBRARY_PATH",
        "LIBRARY_PATH",
        "CPATH",
        "C_INCLUDE_PATH",
        "PKG_CONFIG_PATH",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

fn ldd(bin: &Path) -> String {
    let out = run_ok(clean(Command::new("ldd").arg(bin)), CMD_TIMEOUT);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn find_package_links_shared_and_static() {
    require_tool("cmake", "--version", "cmake");
    require_tool("make", "--version", "make");
    require_tool("cc", "--version", "gcc");
    require_tool("ldd", "--version", "libc-bin");

    let tmp = TempDir::new("cmake");
    let stage = tmp.path().join("stage");
    let args = |target: &str| {
        vec![
            target.to_owned(),
            "PREFIX=/opt/connection-core-cmake".to_owned(),
            format!("DESTDIR={}", stage.display()),
        ]
    };
    {
        let _lock = BuildLock::acquire();
        make(&args("install"));
    }
    let root = stage.join("opt/connection-core-cmake");
    let files = files_under(&root);
    for f in [
        "lib/cmake/connection-core/connection-coreConfig.cmake",
        "lib/cmake/connection-core/connection-coreConfigVersion.cmake",
    ] {
        assert!(
            files.iter().any(|x| x == f),
            "not installed: {f} ({files:?})"
        );
    }

    // ---- configure, build and run the consumer ----------------------------
    let fixture = common::repo_root().join("tests/fixtures/cmake-consumer");
    let build = tmp.path().join("build");
    let out = run_ok(
        clean(
            Command::new("cmake")
                .arg("-S")
                .arg(&fixture)
                .arg("-B")
                .arg(&build)
                .arg(format!("-DCMAKE_PREFIX_PATH={}", root.display())),
        ),
        CMD_TIMEOUT,
    );
    eprintln!("cmake configure:\n{}", String::from_utf8_lossy(&out.stdout));
    let out = run_ok(
        clean(Command::new("cmake").arg("--build").arg(&build)),
        CMD_TIMEOUT,
    );
    eprintln!("cmake --build:\n{}", String::from_utf8_lossy(&out.stdout));

    // The static target brings the system libraries the archive needs (the
    // list Makefile's LIBS_PRIVATE and the .pc file's Libs.private carry);
    // with glibc >= 2.34 most live in libc, so a link without them would
    // still succeed here, but not on older or other C libraries: check the
    // link line itself.
    let link = fs::read_to_string(build.join("CMakeFiles/consumer-static.dir/link.txt"))
        .expect("consumer-static's link line");
    let words: Vec<&str> = link.split_whitespace().collect();
    for lib in ["-lutil", "-lrt", "-lm", "-ldl"] {
        assert!(
            words.contains(&lib),
            "consumer-static links without {lib}: {link}"
        );
    }
    assert!(
        words.iter().any(|w| *w == "-pthread" || *w == "-lpthread"),
        "consumer-static links without threads: {link}"
    );
    assert!(
        words.iter().any(|w| w.ends_with("/libconnection_core.a")),
        "consumer-static does not link the archive: {link}"
    );

    for name in ["consumer-shared", "consumer-static"] {
        let out = run_ok(clean(&mut Command::new(build.join(name))), CMD_TIMEOUT);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with(&format!("ok {VERSION} ")),
            "{name} printed {text:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{name}: {}", text.trim());
    }
    let shared = ldd(&build.join("consumer-shared"));
    let want = format!("{}", root.join("lib").display());
    assert!(
        shared.contains("libconnection_core.so") && shared.contains(&want),
        "consumer-shared should load libconnection_core.so from {want}:\n{shared}"
    );
    let statik = ldd(&build.join("consumer-static"));
    assert!(
        !statik.contains("libconnection_core"),
        "consumer-static needs the shared library:\n{statik}"
    );
    eprintln!("ldd consumer-shared:\n{shared}ldd consumer-static:\n{statik}");

    // ---- versions: a newer minor or another major is refused -------------
    let probe = tmp.path().join("probe");
    fs::create_dir_all(&probe).unwrap();
    for (asked, ok) in [
        ("0.3", true),
        ("0.2", false),
        ("0.4", false),
        ("1.0", false),
    ] {
        fs::write(
            probe.join("CMakeLists.txt"),
            format!(
                "cmake_minimum_required(VERSION 3.16)\nproject(p C)\n\
                 find_package(connection-core {asked} REQUIRED)\n"
            ),
        )
        .unwrap();
        let dir = tmp.path().join(format!("probe-build-{asked}"));
        let out = run(
            clean(
                Command::new("cmake")
                    .arg("-S")
                    .arg(&probe)
                    .arg("-B")
                    .arg(&dir)
                    .arg(format!("-DCMAKE_PREFIX_PATH={}", root.display())),
            ),
            CMD_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out.status.success(),
            ok,
            "find_package(connection-core {asked}) against {VERSION}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // ---- make uninstall ---------------------------------------------------
    make(&args("uninstall"));
    let left = files_under(&stage);
    assert!(left.is_empty(), "left after make uninstall: {left:?}");
}
