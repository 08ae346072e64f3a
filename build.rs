//! Generates the C header with cbindgen (pinned in Cargo.toml) into
//! OUT_DIR — the build never writes into the source tree — and checks with
//! the system C compiler (through `cc`) that it compiles cleanly as C99 and
//! as C++ with every warning an error. The committed include/connection.h
//! is compared with it by a test (tests/packaging/header.rs); `make header` refreshes
//! the committed copy.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");

    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("read cbindgen.toml");
    let version = |name: &str| std::env::var(name).expect("cargo sets the version");
    config.after_includes = Some(format!(
        "\n#define CONNECTION_VERSION_MAJOR {}\n#define CONNECTION_VERSION_MINOR {}\n#define CONNECTION_VERSION_PATCH {}\n#define CONNECTION_VERSION_STRING \"{}\"",
        version("CARGO_PKG_VERSION_MAJOR"),
        version("CARGO_PKG_VERSION_MINOR"),
        version("CARGO_PKG_VERSION_PATCH"),
        version("CARGO_PKG_VERSION"),
    ));
    // The shared library's soname carries the ABI version: MAJOR, or
    // 0.MINOR before 1.0 (where, as in Cargo's semver, a minor release may
    // break compatibility).
    let major = version("CARGO_PKG_VERSION_MAJOR");
    let abi = if major == "0" {
        format!("0.{}", version("CARGO_PKG_VERSION_MINOR"))
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libconnection_core.so.{abi}");
    println!("cargo:rustc-env=CONNECTION_ABI_VERSION={abi}");

    let bindings = cbindgen::Builder::new()
        .with_crate(&root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let header = out.join("include").join("connection.h");
    std::fs::create_dir_all(header.parent().expect("include/")).expect("create OUT_DIR/include");
    // write_to_file only rewrites the file when its content changed.
    bindings.write_to_file(&header);
    println!(
        "cargo:rustc-env=CONNECTION_GENERATED_HEADER={}",
        header.display()
    );

    check_header_compiles(&header);
}

/// Compiles a translation unit that includes the header, with -fsyntax-only,
/// as C99 and as C++11, treating warnings as errors.
fn check_header_compiles(header: &Path) {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let include_dir = header.parent().expect("include/");
    for (file, flags) in [
        (
            "check.c",
            &["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"][..],
        ),
        (
            "check.cpp",
            &[
                "-x",
                "c++",
                "-std=c++11",
                "-Wall",
                "-Wextra",
                "-pedantic",
                "-Werror",
            ][..],
        ),
    ] {
        let src = out.join(file);
        std::fs::write(
            &src,
            "#include \"connection.h\"\nint connection_header_check;\n",
        )
        .expect("write header check");
        let compiler = cc::Build::new()
            .cargo_metadata(false)
            .cpp(file.ends_with(".cpp"))
            .opt_level(0)
            .get_compiler();
        let mut cmd: Command = compiler.to_command();
        cmd.args(flags)
            .arg("-fsyntax-only")
            .arg("-I")
            .arg(include_dir)
            .arg(&src);
        let result = cmd.output().expect("run the C compiler");
        if !result.status.success() {
            panic!(
                "include/connection.h does not compile cleanly ({file} {flags:?}):\n{}",
                String::from_utf8_lossy(&result.stderr)
            );
        }
    }
}
