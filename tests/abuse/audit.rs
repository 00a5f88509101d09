//! `audit` on what is not a good Python file: a binary, a file that does not parse, a path that
//! does not exist. Each is named on stderr with what is wrong, and the others are still scanned.

use crate::support::leak_monitor;
use serde_json::Value;
use std::fs;

const LEAKY: &str = "EVENTS = []\n\ndef handle(e):\n    EVENTS.append(e)\n";
const BROKEN: &str =
    "SEEN = []\n\ndef handle(e):\n    SEEN.append(e)\n\ndef oops(:\n    return ((\n";

#[test]
fn binaries_broken_files_and_missing_paths_are_named_and_the_rest_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let leaky = dir.path().join("leaky.py");
    let broken = dir.path().join("broken.py");
    let binary = dir.path().join("tool");
    fs::write(&leaky, LEAKY).unwrap();
    fs::write(&broken, BROKEN).unwrap();
    fs::copy("/bin/true", &binary).unwrap();
    let missing = dir.path().join("missing.py");
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();

    // Without the missing path: every problem is a note, the scan succeeds.
    let outcome = leak_monitor(&[
        "audit",
        "--json",
        &path(&binary),
        &path(&broken),
        &path(&leaky),
    ]);
    assert_eq!(outcome.code, Some(0), "{outcome}");
    let findings: Value = serde_json::from_str(&outcome.stdout).unwrap();
    let files: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, [path(&broken), path(&leaky)], "{outcome}");
    let said = |needle: &str| outcome.stderr.lines().any(|l| l.contains(needle));
    assert!(
        said(&format!("{}: not Python source", path(&binary))),
        "{outcome}"
    );
    assert!(
        said(&format!("{}: syntax error at line 6", path(&broken))),
        "{outcome}"
    );

    // A missing path among them: exit 2 naming it, and the others are still scanned.
    let outcome = leak_monitor(&["audit", &path(&missing), &path(&leaky), &path(&broken)]);
    assert_eq!(outcome.code, Some(2), "{outcome}");
    assert!(outcome.stderr.contains(&path(&missing)), "{outcome}");
    assert_eq!(outcome.stdout.lines().count(), 2, "{outcome}");
    assert!(
        outcome.stdout.contains(&format!("{}:4:", path(&leaky))),
        "{outcome}"
    );
}
