//! `serve --config FILE` refuses malformed files through the real binary: exit 2 and one line
//! on stderr that names the file and the offending key (or line).

use crate::support::leak_monitor;
use std::fs;

/// Runs `serve --config FILE` on `text`; returns the single stderr line and the file's path.
fn refused(text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leak-monitor.toml");
    fs::write(&path, text).unwrap();
    let path = path.display().to_string();
    let outcome = leak_monitor(&["serve", "--config", &path, "--listen", "127.0.0.1:1"]);
    assert_eq!(outcome.code, Some(2), "{text:?}:\n{outcome}");
    let stderr = outcome.stderr.trim_end();
    assert!(
        !stderr.is_empty() && !stderr.contains('\n'),
        "not one line for {text:?}:\n{outcome}"
    );
    assert!(stderr.starts_with("leak-monitor: "), "{stderr}");
    assert!(stderr.contains(&path), "the file is not named: {stderr}");
    (stderr.to_owned(), path)
}

#[test]
fn unknown_key_is_named() {
    let (err, _) = refused("pids = [1]\nlisten_address = \"127.0.0.1:9464\"\n");
    assert!(err.contains("unknown field `listen_address`"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn wrong_type_names_the_key_and_line() {
    let (err, _) = refused("python = true\npids = \"1234\"\n");
    assert!(err.contains("line 2, key `pids`"), "{err}");
    let (err, _) = refused("python = \"yes\"\n");
    assert!(err.contains("key `python`"), "{err}");
}

#[test]
fn bad_regex_names_the_key() {
    let (err, _) = refused("match = [\"celery\", \"web=gunicorn(worker\"]\n");
    assert!(err.contains("key `match[1]`"), "{err}");
    assert!(err.contains("gunicorn(worker"), "{err}");
}

#[test]
fn bad_listen_address_names_the_key() {
    let (err, _) = refused("python = true\nlisten = \"localhost\"\n");
    assert!(err.contains("line 2, key `listen`"), "{err}");
    assert!(err.contains("socket address"), "{err}");
}

#[test]
fn out_of_range_interval_names_the_key() {
    let (err, _) = refused("python = true\ninterval_ms = 5\n");
    assert!(err.contains("key `interval_ms`"), "{err}");
    assert!(err.contains("10 to 3600000"), "{err}");
}

#[test]
fn toml_syntax_error_gives_the_line() {
    let (err, _) = refused("python = true\npids = [1, 2\n");
    assert!(err.contains("line 2") || err.contains("line 3"), "{err}");
}

#[test]
fn missing_file_is_named() {
    let outcome = leak_monitor(&["serve", "--config", "/nonexistent/leak-monitor.toml"]);
    assert_eq!(outcome.code, Some(2), "{outcome}");
    let stderr = outcome.stderr.trim_end();
    assert!(!stderr.contains('\n'), "{stderr}");
    assert!(
        stderr.contains("cannot read config /nonexistent/leak-monitor.toml"),
        "{stderr}"
    );
}
