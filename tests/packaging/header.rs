//! The committed header is what the build generates, and it compiles
//! cleanly as C99 and C++ with both gcc and clang.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_header_matches_the_build() {
    // The build (which ran before this test) generated the header into
    // OUT_DIR; any difference from the committed file means someone changed
    // the API without refreshing the header, or edited the header by hand.
    let generated = std::fs::read_to_string(env!("CONNECTION_GENERATED_HEADER"))
        .expect("the build generates the header");
    let committed = std::fs::read_to_string(root().join("include/connection.h"))
        .expect("include/connection.h is committed");
    assert!(
        generated == committed,
        "include/connection.h differs from the generated header: run `make header` and commit it"
    );
}

fn compile(compiler: &str, args: &[&str]) {
    let dir = std::env::temp_dir().join(format!("conn-header-{}-{compiler}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("use.c");
    // Use every kind of declaration, so unused-typedef-style warnings and
    // C++ incompatibilities surface.
    std::fs::write(
        &src,
        r#"#include "connection.h"
static void handler(const Request *req, Response *resp, void *user) {
    size_t len = 0;
    (void)user;
    (void)Request_Path(req, &len);
    (void)Response_Send(resp, "x", 1);
}
int main(void) {
    ConnectionConfig cfg;
    ConnectionStats stats;
    Connection conn;
    ConnectionHandler h = handler;
    ConnectionCloseReason r = CONNECTION_CLOSE_COMPLETED;
    (void)ConnectionConfig_Default(&cfg);
    (void)h; (void)r; (void)stats; (void)conn;
    return CONNECTION_VERSION_MAJOR * 0 + (Connection_StrError(CONNECTION_ERR_NULL) == 0);
}
"#,
    )
    .unwrap();
    let include = root().join("include");
    let out = Command::new(compiler)
        .args(args)
        .arg("-fsyntax-only")
        .arg("-I")
        .arg(&include)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| {
            panic!("{compiler} is needed for this test (apt-get install gcc g++ clang): {e}")
        });
    assert!(
        out.status.success(),
        "{compiler} {args:?} rejected the header:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const C_FLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"];
const CXX_FLAGS: &[&str] = &[
    "-x",
    "c++",
    "-std=c++11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
];

#[test]
fn header_compiles_as_c99_with_gcc() {
    compile("gcc", C_FLAGS);
}

#[test]
fn header_compiles_as_cxx_with_gcc() {
    compile("g++", CXX_FLAGS);
}

#[test]
fn header_compiles_as_c99_with_clang() {
    compile("clang", C_FLAGS);
}

#[test]
fn header_compiles_as_cxx_with_clang() {
    compile("clang++", CXX_FLAGS);
}
