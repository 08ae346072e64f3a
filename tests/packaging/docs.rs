//! `cargo doc` builds without a warning. Runs in its own target
//! directory so the nested cargo never waits on the outer `cargo test`.

use std::path::Path;
use std::process::Command;

#[test]
fn cargo_doc_has_no_warnings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["doc", "--no-deps", "--lib"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", root.join("target").join("ctest-doc"))
        .env("RUSTDOCFLAGS", "-D warnings")
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo doc");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo doc failed:\n{stderr}");
    assert!(!stderr.contains("warning"), "cargo doc warned:\n{stderr}");
}
