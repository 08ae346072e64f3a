//! The in-memory exchange tests run clean under Miri with Stacked Borrows:
//! application callbacks read the request and answer through the response
//! while the loop is borrowed only briefly (the callback invariant in
//! src/reactor/driver.rs), and no pointer the application holds is
//! invalidated by those borrows.
//!
//! Runs `cargo +nightly miri test --features testing --lib
//! testing::harness::tests` in a target directory of its own. Needs the
//! nightly toolchain with the miri component (`.ci/run` adds it); without
//! it the test fails and says so.

#[path = "../common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use common::{clean_build_env, repo_root, run_ok};

#[test]
fn in_memory_exchanges_are_clean_under_stacked_borrows() {
    let probe = Command::new("cargo")
        .args(["+nightly", "miri", "--version"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "Miri is needed for this test: rustup toolchain install nightly && \
             rustup component add --toolchain nightly miri rust-src (.ci/run does this)"
        ),
    }
    let mut cmd = Command::new("cargo");
    clean_build_env(&mut cmd)
        .args([
            "+nightly",
            "miri",
            "test",
            "--features",
            "testing",
            "--lib",
            "testing::harness::tests",
        ])
        .env("CARGO_TARGET_DIR", repo_root().join("target").join("miri"))
        // Stacked Borrows is Miri's default aliasing model.
        .env_remove("MIRIFLAGS")
        .current_dir(repo_root());
    let out = run_ok(&mut cmd, Duration::from_secs(900));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("test result: ok")
            && text.contains("request_is_readable_after_responding ... ok"),
        "Miri did not run the exchange tests:\n{text}"
    );
}
