//! The modules' imports run one way: a test reads the sources and fails on a cycle between
//! top-level modules (`a` uses `b` and `b`, through any others, uses `a`), naming it. Test code
//! and comments do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module -> the top-level modules its (non-test) code names as `crate::NAME`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap().map(Result::unwrap) {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "lib" || name == "main" {
            continue;
        }
        let files = modules.entry(name).or_default();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .into_iter()
        .map(|(module, files)| {
            let used = files
                .iter()
                .filter(|f| !is_test_file(f))
                .flat_map(|f| crate_paths(&std::fs::read_to_string(f).unwrap()))
                .filter(|used| *used != module && names.contains(used))
                .collect();
            (module, used)
        })
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn is_test_file(path: &Path) -> bool {
    let name = path.file_stem().unwrap().to_string_lossy();
    name == "tests"
        || name == "testkit"
        || name == "fixtures"
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// The NAMEs of `crate::NAME` in code, before any `#[cfg(test)]` module and outside comments.
fn crate_paths(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]\nmod").next().unwrap_or(source);
    code.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .flat_map(|line| {
            line.match_indices("crate::").map(move |(at, m)| {
                line[at + m.len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
        })
        .collect()
}

/// A cycle through `start`, as the modules along it, if there is one.
fn cycle_from(start: &str, graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn top_level_modules_import_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    assert!(graph.contains_key("monitor") && graph["monitor"].contains("detection"));
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_from(m, &graph))
        .map(|cycle| cycle.join(" -> "))
        .collect();
    assert!(
        cycles.is_empty(),
        "module cycles (move the shared type down, or pass it in):\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_check_sees_a_cycle_and_ignores_comments_and_tests() {
    assert_eq!(
        crate_paths("use crate::a::B; // crate::c\n/// crate::d\nfn f() { crate::e::g() }\n#[cfg(test)]\nmod tests { use crate::h; }"),
        ["a", "e"]
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, uses)| (m.to_string(), uses.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(cycle_from("a", &graph).unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(cycle_from("d", &graph), None);
}
