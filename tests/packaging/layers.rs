//! The library's layers import only downward, and no module imports
//! another that imports it back: `sys` (system calls) < `http` (sans-IO
//! HTTP) < `reactor` (the event loop) < `ffi` (the C boundary), with
//! `testing` (test support) beside `ffi` on top. Read from the source text.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first, and what each may import from the crate.
const LAYERS: &[(&str, &[&str])] = &[
    ("sys", &["sys"]),
    ("http", &["http"]),
    ("reactor", &["reactor", "http", "sys"]),
    ("ffi", &["ffi", "reactor", "http", "sys"]),
    ("testing", &["testing", "ffi", "reactor", "http", "sys"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: src/reactor/event_loop.rs -> reactor::event_loop,
/// src/reactor/mod.rs -> reactor.
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Code without comments (line comments and doc comments), so a path named
/// in prose does not count as an import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every crate module a file names: `crate::a::b` and `super::b` paths,
/// resolved to module paths (as long as they name modules that exist).
fn imports(file: &Path, modules: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let text = code_of(&fs::read_to_string(file).expect("read a source file"));
    let me = module_of(file);
    let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
    let mut found = BTreeSet::new();
    let bytes = text.as_bytes();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            // `super` of a mod.rs is its parent; of a plain file, its folder.
            let mut b = me.clone();
            b.pop();
            if is_mod_rs {
                b.pop();
            }
            b
        }),
    ] {
        let mut from = 0;
        while let Some(pos) = text[from..].find(prefix) {
            let start = from + pos;
            from = start + prefix.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            let rest: String = text[from..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut path = base.clone();
            let mut longest = None;
            for seg in rest.split("::").filter(|s| !s.is_empty()) {
                path.push(seg.to_string());
                if modules.contains(&path) {
                    longest = Some(path.clone());
                } else {
                    break;
                }
            }
            if let Some(m) = longest {
                if m != me {
                    found.insert(m);
                }
            }
        }
    }
    found
}

fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    files
        .iter()
        .map(|f| (module_of(f), imports(f, &modules)))
        .collect()
}

#[test]
fn layers_import_only_downward() {
    let graph = graph();
    assert!(
        graph.len() > 20,
        "the scan found too few modules: {:?}",
        graph.keys()
    );
    let mut wrong = Vec::new();
    for (module, imports) in &graph {
        let Some(layer) = module.first() else {
            continue; // lib.rs: the crate root re-exports the API
        };
        let allowed = LAYERS
            .iter()
            .find(|(name, _)| name == layer)
            .unwrap_or_else(|| panic!("src/{layer} is not in a known layer"))
            .1;
        for import in imports {
            let target = import.first().expect("a module path");
            if !allowed.contains(&target.as_str()) {
                wrong.push(format!(
                    "{} imports {}",
                    module.join("::"),
                    import.join("::")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let graph = graph();
    // Depth-first search for a cycle among modules (a folder's mod.rs only
    // declares its children, so parent-to-child edges are left out).
    fn visit(
        m: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|s| s == m).unwrap_or(0);
                let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.join("::")).collect();
                cycle.push(m.join("::"));
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(m.clone(), 1);
        stack.push(m.clone());
        for next in graph.get(m).into_iter().flatten() {
            if next.starts_with(m) {
                continue;
            }
            if let Some(c) = visit(next, graph, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(m.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if m.is_empty() {
            continue;
        }
        let mut stack = Vec::new();
        if let Some(cycle) = visit(m, &graph, &mut state, &mut stack) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}
