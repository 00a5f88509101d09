//! `leak-monitor audit`: the static scan run by the real binary on the pattern corpus in
//! `tests/python/patterns/`. Every line marked `# LEAK` must be reported with the pattern its
//! file is named for, the `clean_*.py` decoys must yield nothing, and exit codes follow the
//! contract (0, 2 for bad paths, 3 with `--fail-on-finding`).

use crate::support::{leak_monitor, python_script};
use serde_json::Value;
use std::fs;
use std::path::PathBuf;

/// The pattern each leaking corpus file demonstrates, and its contract `leak_type`.
const CORPUS: &[(&str, &str, &str)] = &[
    (
        "unbounded_collection.py",
        "unbounded-collection",
        "unbounded_collection",
    ),
    ("unbounded_cache.py", "unbounded-cache", "unbounded_cache"),
    (
        "unbounded_memo_dict.py",
        "unbounded-cache",
        "unbounded_cache",
    ),
    (
        "circular_reference.py",
        "circular-reference",
        "circular_reference",
    ),
    ("event_handler.py", "event-handler", "event_handler"),
    (
        "resource_not_closed.py",
        "resource-not-closed",
        "resource_not_closed",
    ),
    (
        "socket_not_closed.py",
        "resource-not-closed",
        "resource_not_closed",
    ),
    (
        "tensor_accumulation.py",
        "tensor-accumulation",
        "tensor_accumulation",
    ),
    (
        "thread_not_joined.py",
        "thread-not-joined",
        "thread_not_joined",
    ),
];

fn corpus_dir() -> PathBuf {
    python_script("patterns")
}

fn corpus_files(prefix_clean: bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("clean_") == prefix_clean
        })
        .collect();
    files.sort();
    files
}

/// 1-based numbers of the lines marked `# LEAK`.
fn leak_lines(path: &PathBuf) -> Vec<u64> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .zip(1..)
        .filter(|(line, _)| line.trim_end().ends_with("# LEAK"))
        .map(|(_, n)| n)
        .collect()
}

fn audit_json(paths: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--json"];
    args.extend_from_slice(paths);
    let outcome = leak_monitor(&args);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let parsed: Value = serde_json::from_str(&outcome.stdout)
        .unwrap_or_else(|err| panic!("--json output is not JSON ({err}):\n{outcome}"));
    parsed.as_array().expect("a JSON array").clone()
}

#[test]
fn every_leak_line_is_found_with_its_pattern() {
    let dir = corpus_dir();
    let findings = audit_json(&[dir.to_str().unwrap()]);
    let leaking = corpus_files(false);
    assert_eq!(
        leaking.len(),
        CORPUS.len(),
        "every leaking corpus file needs an entry in CORPUS: {leaking:?}"
    );
    for (name, pattern, leak_type) in CORPUS {
        let path = dir.join(name);
        let lines = leak_lines(&path);
        assert!(!lines.is_empty(), "{name} has no `# LEAK` line");
        for line in lines {
            let hit = findings.iter().find(|f| {
                f["file"].as_str().is_some_and(|file| {
                    std::path::Path::new(file).file_name() == Some(name.as_ref())
                }) && f["line"].as_u64() == Some(line)
            });
            let hit = hit.unwrap_or_else(|| {
                panic!("{name}:{line} (# LEAK) not reported; findings: {findings:#?}")
            });
            assert_eq!(hit["pattern"], *pattern, "{name}:{line}: {hit}");
            assert_eq!(hit["leak_type"], *leak_type, "{name}:{line}: {hit}");
            assert!(
                hit["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{hit}"
            );
        }
    }
}

#[test]
fn clean_decoys_have_no_findings() {
    let clean = corpus_files(true);
    assert!(clean.len() >= 5, "too few decoys: {clean:?}");
    for path in clean {
        let path = path.to_str().unwrap();
        let outcome = leak_monitor(&["audit", "--fail-on-finding", path]);
        assert_eq!(outcome.code, Some(0), "{path}: {outcome}");
        assert_eq!(outcome.stdout, "", "{path}: {outcome}");
    }
}

#[test]
fn text_output_is_one_sorted_line_per_finding_matching_json() {
    let dir = corpus_dir();
    let dir = dir.to_str().unwrap();
    let outcome = leak_monitor(&["audit", dir]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    let json = audit_json(&[dir]);
    assert_eq!(lines.len(), json.len(), "{outcome}");
    let mut keys = Vec::new();
    for (line, finding) in lines.iter().zip(&json) {
        let expected = format!(
            "{}:{}: {}: ",
            finding["file"].as_str().unwrap(),
            finding["line"],
            finding["pattern"].as_str().unwrap()
        );
        assert!(line.starts_with(&expected), "{line:?} vs {expected:?}");
        keys.push((
            finding["file"].as_str().unwrap().to_owned(),
            finding["line"].as_u64().unwrap(),
        ));
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "findings are not sorted");
}

#[test]
fn fail_on_finding_exits_3_only_when_something_is_found() {
    let leak = corpus_dir().join("unbounded_collection.py");
    let outcome = leak_monitor(&["audit", "--fail-on-finding", leak.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(3), "{outcome}");
    assert!(outcome.stdout.contains("unbounded-collection"), "{outcome}");
    let outcome = leak_monitor(&["audit", leak.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
}

#[test]
fn missing_or_unreadable_paths_exit_2_with_one_line() {
    let outcome = leak_monitor(&["audit", "/no/such/dir/app.py"]);
    assert_eq!(outcome.code, Some(2), "{outcome}");
    assert_eq!(outcome.stderr.trim().lines().count(), 1, "{outcome}");
    assert!(outcome.stderr.contains("/no/such/dir/app.py"), "{outcome}");

    // Too big to be a source file: refused, not read.
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("huge.py");
    fs::write(&big, vec![b'#'; 17 * 1024 * 1024]).unwrap();
    let outcome = leak_monitor(&["audit", big.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(2), "{outcome}");
    assert_eq!(outcome.stderr.trim().lines().count(), 1, "{outcome}");

    let outcome = leak_monitor(&["audit"]);
    assert_eq!(outcome.code, Some(2), "no PATH given: {outcome}");
}

#[test]
fn broken_files_are_scanned_as_far_as_they_parse() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.py");
    fs::write(
        &broken,
        "EVENTS = []\n\ndef handle(e):\n    EVENTS.append(e)\n\ndef oops(:\n    return ((\n",
    )
    .unwrap();
    fs::write(dir.path().join("binary.py"), [0u8, 159, 146, 150, 255, 10]).unwrap();
    let findings = audit_json(&[dir.path().to_str().unwrap()]);
    assert_eq!(findings.len(), 1, "{findings:#?}");
    assert_eq!(findings[0]["line"], 4);
    assert_eq!(findings[0]["pattern"], "unbounded-collection");
}
