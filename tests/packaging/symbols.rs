//! The shared library exports exactly the C API: the dynamic symbols that
//! `nm -D --defined-only` lists for libconnection_core.so are compared,
//! both ways, with the function declarations parsed from
//! include/connection.h. Nothing missing (a declared function the linker
//! would not find), nothing extra (Rust internals leaking into the ABI).
//! And neither release library carries the test support (the in-memory
//! transport and the scripted harness).

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use common::{cargo_bin, clean_build_env, ctest_target, require_tool, run_ok, BuildLock};

/// Function names declared in the header. Comments, preprocessor lines
/// (and the C++-only `extern "C"` lines) and brace blocks (struct and enum
/// bodies) are dropped; what is left is split into declarations at `;`; a
/// declaration that is not a typedef and has a `(` declares the function
/// whose name precedes the first `(`.
fn header_functions(text: &str) -> BTreeSet<String> {
    // 1. Comments.
    let mut code = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            let end = text[i + 2..]
                .find("*/")
                .map(|p| i + 2 + p + 2)
                .expect("unterminated comment in the header");
            code.push(' ');
            i = end;
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            i = text[i..].find('\n').map(|p| i + p).unwrap_or(b.len());
        } else if b[i] == b'"' {
            // String literals (macro values): skip whole.
            let end = text[i + 1..]
                .find('"')
                .map(|p| i + 1 + p + 1)
                .expect("unterminated string in the header");
            code.push_str("\"\"");
            i = end;
        } else {
            let c = text[i..].chars().next().unwrap();
            code.push(c);
            i += c.len_utf8();
        }
    }
    // 2. Preprocessor lines, and everything between `#ifdef __cplusplus`
    //    and its `#endif` (the extern "C" wrapper, which is C++ only).
    let mut kept = String::new();
    let mut in_cplusplus = false;
    for line in code.lines() {
        let t = line.trim_start();
        if in_cplusplus {
            if t.starts_with("#endif") {
                in_cplusplus = false;
            }
            continue;
        }
        if t.starts_with("#ifdef __cplusplus") {
            in_cplusplus = true;
            continue;
        }
        if t.starts_with('#') {
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    // 3. Brace blocks.
    let mut flat = String::new();
    let mut depth = 0usize;
    for c in kept.chars() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth
                    .checked_sub(1)
                    .expect("unbalanced braces in the header")
            }
            _ if depth == 0 => flat.push(c),
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced braces in the header");
    // 4. Declarations.
    let mut names = BTreeSet::new();
    for decl in flat.split(';') {
        let decl = decl.split_whitespace().collect::<Vec<_>>().join(" ");
        if decl.is_empty() || decl.starts_with("typedef") {
            continue;
        }
        let Some(paren) = decl.find('(') else {
            continue; // a variable? (none expected; nm would show it as extra)
        };
        let before = decl[..paren].trim_end();
        let name: String = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert!(
            !name.is_empty(),
            "cannot find a function name in the declaration {decl:?}"
        );
        assert!(
            names.insert(name.clone()),
            "{name} is declared twice in the header"
        );
    }
    names
}

/// Defined dynamic symbols of the shared library (`nm -D --defined-only`),
/// as (name, nm type letter).
fn exported_symbols(so: &std::path::Path) -> Vec<(String, String)> {
    let out = run_ok(
        Command::new("nm").arg("-D").arg("--defined-only").arg(so),
        std::time::Duration::from_secs(60),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            // "0000000000018800 T ConnectionConfig_Default"
            let mut parts = l.split_whitespace();
            let _addr = parts.next()?;
            let kind = parts.next()?;
            let name = parts.next()?;
            // Versioned names (name@VER / name@@VER) compare by name.
            let name = name.split('@').next().unwrap_or(name);
            Some((name.to_owned(), kind.to_owned()))
        })
        .collect()
}

/// Builds the release libraries as `make` does (no features; cargo decides
/// freshness) in target/ctest, and holds the lock tests/common builds
/// under, so no other test process rebuilds them while the caller looks.
fn build_release() -> BuildLock {
    let lock = BuildLock::acquire();
    let mut cmd = Command::new(cargo_bin());
    clean_build_env(&mut cmd)
        .args(["build", "--release"])
        .current_dir(common::repo_root())
        .env("CARGO_TARGET_DIR", ctest_target());
    run_ok(&mut cmd, common::BUILD_TIMEOUT);
    lock
}

#[test]
fn shared_library_exports_exactly_the_header_functions() {
    require_tool("nm", "--version", "binutils");

    let root = common::repo_root();
    let target = ctest_target();
    let _lock = build_release();

    let header_path = root.join("include").join("connection.h");
    let header = fs::read_to_string(&header_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", header_path.display()));
    let declared = header_functions(&header);
    // The parser must have seen the API, not an empty or mangled header.
    for known in [
        "ConnectionConfig_Default",
        "Connection_Init",
        "Connection_ProcessTimeout",
        "Connection_SetLogger",
        "Connection_Version",
        "Request_Header",
        "Response_Stream",
    ] {
        assert!(
            declared.contains(known),
            "the header parser did not find {known}; it found {declared:?}"
        );
    }

    let so = target.join("release").join("libconnection_core.so");
    assert!(so.is_file(), "{} was not built", so.display());
    let symbols = exported_symbols(&so);
    let non_functions: Vec<&(String, String)> = symbols
        .iter()
        .filter(|(_, kind)| !matches!(kind.as_str(), "T" | "t" | "W" | "i"))
        .collect();
    let exported: BTreeSet<String> = symbols.iter().map(|(n, _)| n.clone()).collect();

    let missing: Vec<&String> = declared.difference(&exported).collect();
    let extra: Vec<&String> = exported.difference(&declared).collect();
    eprintln!(
        "{} functions declared in {}, {} symbols exported by {}",
        declared.len(),
        header_path.display(),
        exported.len(),
        so.display()
    );
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the shared library's exports differ from the header:\n  declared but not exported: {missing:?}\n  \
         exported but not declared: {extra:?}"
    );
    assert!(
        non_functions.is_empty(),
        "exported symbols that are not functions: {non_functions:?}"
    );
    for name in &exported {
        assert!(
            ["Connection_", "ConnectionConfig_", "Request_", "Response_"]
                .iter()
                .any(|p| name.starts_with(p)),
            "exported symbol {name} is outside the API's prefixes"
        );
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn release_libraries_carry_no_test_support() {
    let target = ctest_target();
    let _lock = build_release();
    for name in ["libconnection_core.a", "libconnection_core.so"] {
        let lib = target.join("release").join(name);
        let bytes = fs::read(&lib).unwrap_or_else(|e| panic!("read {}: {e}", lib.display()));
        // The release profile keeps line tables and symbol names (debug = 1):
        // the loop's own source file must be named, or the check below
        // proves nothing. (With LTO the .a keeps only the C API in its
        // symbol table, so the names are looked for in the whole file.)
        assert!(
            contains(&bytes, "reactor/event_loop.rs"),
            "{name}: no debug names of the library's own code"
        );
        // A build with the `testing` feature names these (checked once by
        // hand: `cargo build --release --features testing` puts
        // MemorySocket in both libraries).
        for marker in ["MemorySocket", "testing/harness.rs", "run_exchange"] {
            assert!(
                !contains(&bytes, marker),
                "{name} carries test support ({marker})"
            );
        }
    }
}

#[test]
fn header_parser_sees_declarations_and_skips_the_rest() {
    let text = r#"
/* comment with Fake_Function(int); inside */
#define X_MACRO(a) (a)
typedef void (*Callback)(void *user);
typedef struct S { int (*field)(void); int x; } S;
typedef enum E { A = 0, B = 1 } E;
#ifdef __cplusplus
extern "C" {
#endif
/** Doc. */
int Connection_A(struct S *s);
const char *Request_B(const struct S *s, size_t *len);
void Response_C(void);
#ifdef __cplusplus
}  // extern "C"
#endif
"#;
    let names: Vec<String> = header_functions(text).into_iter().collect();
    assert_eq!(names, ["Connection_A", "Request_B", "Response_C"]);
}
