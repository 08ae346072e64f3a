//! A short, bounded fuzz replay inside `cargo test` (no nightly needed):
//! every file under fuzz/seeds/<target>/ and fuzz/regressions/<target>/
//! goes through the same code the cargo-fuzz targets run
//! (fuzz/src/targets.rs, included here by path). A crash the fuzzers found
//! is saved under fuzz/regressions/<target>/ and fails this test until the
//! library is fixed.
//!
//! The seeds are the requests of the conformance table
//! (tests/protocol/conformance/cases.rs); `WRITE_FUZZ_SEEDS=1 cargo test --test
//! fuzz_replay` rewrites them after the table changes.

#[path = "conformance/cases.rs"]
mod cases;
#[allow(dead_code)]
#[path = "../../fuzz/src/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::path::{Path, PathBuf};

const TARGETS: [&str; 8] = [
    "parse_head",
    "fast_head",
    "state_machine",
    "path",
    "query",
    "cookie",
    "host",
    "forwarded",
];
/// Bounds on the replay, so it stays short whatever is committed.
const MAX_FILES: usize = 2000;
const MAX_FILE_BYTES: u64 = 256 * 1024;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory name of a target's seeds and regressions: fast_head takes
/// parse_head's (the same input, request bytes) and its own regressions.
fn seed_dir<'a>(target: &'a str, kind: &str) -> &'a str {
    match (target, kind) {
        ("fast_head", "seeds") => "parse_head",
        _ => target,
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

fn run(target: &str, data: &[u8]) {
    match target {
        "parse_head" => targets::parse_head_target(data),
        "fast_head" => targets::fast_head_target(data),
        "state_machine" => {
            targets::state_machine_target(data);
        }
        "path" => helpers::path_target(data),
        "query" => helpers::query_target(data),
        "cookie" => helpers::cookie_target(data),
        "host" => helpers::host_target(data),
        "forwarded" => helpers::forwarded_target(data),
        _ => unreachable!(),
    }
}

/// The state_machine seed for a case: one piece (or the case's own first
/// cut, then the rest), unlimited sends, no FIN.
fn state_machine_seed(case: &cases::Case) -> Vec<u8> {
    let first = case.cuts.first().copied().filter(|&c| c < 256).unwrap_or(0);
    let mut v = vec![0u8, 0, first as u8, 0, 0, 0];
    v.extend_from_slice(&case.request);
    v
}

#[test]
fn seeds_and_regressions_replay() {
    let mut total = 0;
    let mut failures = Vec::new();
    for target in TARGETS {
        for kind in ["seeds", "regressions"] {
            let dir = root().join("fuzz").join(kind).join(seed_dir(target, kind));
            for path in files(&dir) {
                total += 1;
                assert!(total <= MAX_FILES, "more than {MAX_FILES} replay files");
                let len = std::fs::metadata(&path).unwrap().len();
                assert!(len <= MAX_FILE_BYTES, "{} is {len} bytes", path.display());
                let data = std::fs::read(&path).unwrap();
                let result = std::panic::catch_unwind(|| run(target, &data));
                if let Err(e) = result {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!(
                        "{target} {}: {msg}\n  input: {}",
                        path.strip_prefix(root()).unwrap_or(&path).display(),
                        data.escape_ascii()
                    ));
                }
            }
        }
    }
    for target in TARGETS {
        let seeds = files(&root().join("fuzz/seeds").join(seed_dir(target, "seeds"))).len();
        assert!(seeds > 0, "no seeds under fuzz/seeds/{target}");
    }
    eprintln!("fuzz replay: {total} inputs, {} fail", failures.len());
    assert!(
        failures.is_empty(),
        "{} fuzz inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every request of the conformance table is a seed of both targets (set
/// WRITE_FUZZ_SEEDS=1 to write them); seeds_and_regressions_replay runs them.
#[test]
fn conformance_requests_are_seeds() {
    let write = std::env::var_os("WRITE_FUZZ_SEEDS").is_some();
    let mut missing = Vec::new();
    for case in cases::all_cases() {
        for (target, bytes) in [
            ("parse_head", case.request.clone()),
            ("state_machine", state_machine_seed(&case)),
        ] {
            let path = root()
                .join("fuzz/seeds")
                .join(target)
                .join(format!("{}.bin", case.name));
            if write {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                missing.push(path.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "seed files missing or stale (run WRITE_FUZZ_SEEDS=1 cargo test --test fuzz_replay): {missing:?}"
    );
}
