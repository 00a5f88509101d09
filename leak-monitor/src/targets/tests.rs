//! identify / discover / is_alive / is_python against real processes.

use super::stat::parse_stat;
use super::{discover, identify, is_alive, is_python, Selector, TargetError, TargetId};
use crate::sampling::testkit::{python3, unique_marker, PyChild};
use std::process::{Command, Stdio};

fn start_ticks(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    parse_stat(&text).unwrap().start_ticks
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap()
        .trim_end()
        .to_owned()
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn identify_a_python_child() {
    let marker = unique_marker("identify");
    let mut child = PyChild::spawn(&[&marker]);
    let version = child.run("import platform; result = platform.python_version()");
    let pid = child.pid();

    let info = identify(pid, None).unwrap();
    assert_eq!(
        info.id,
        TargetId {
            pid,
            start_ticks: start_ticks(pid)
        }
    );
    assert_eq!(info.group, comm(pid));
    assert_eq!(info.cmdline.first().map(String::as_str), Some(python3()));
    assert_eq!(info.cmdline.get(1).map(String::as_str), Some("-c"));
    assert_eq!(info.cmdline.last(), Some(&marker));
    let exe = info.exe.clone().unwrap();
    let exe_name = exe.file_name().unwrap().to_str().unwrap();
    assert!(exe_name.starts_with("python"), "{exe:?}");
    // The full version, as the interpreter itself reports it.
    assert_eq!(
        info.python_version.as_deref(),
        Some(version.trim_matches('\''))
    );
    assert!(is_python(&info));
    assert!(
        (info.start_time_unix - now_unix()).abs() < 120.0,
        "{}",
        info.start_time_unix
    );

    let named = identify(pid, Some("web")).unwrap();
    assert_eq!(named.group, "web");
}

#[test]
fn identify_a_statically_linked_python() {
    // Debian's interpreter has Py_Version in the executable, pyenv's in libpython.
    let debian = "/usr/bin/python3.11";
    if !std::path::Path::new(debian).exists() {
        eprintln!("skipped: no {debian}");
        return;
    }
    let mut child = PyChild::spawn_with(debian, &[]);
    let version = child.run("import platform; result = platform.python_version()");
    let info = identify(child.pid(), None).unwrap();
    assert_eq!(
        info.python_version.as_deref(),
        Some(version.trim_matches('\''))
    );
}

#[test]
fn a_program_that_is_not_python() {
    let mut sleeper = Command::new("sleep")
        .arg("600")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = i32::try_from(sleeper.id()).unwrap();
    let info = identify(pid, None);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let info = info.unwrap();
    assert_eq!(info.group, "sleep");
    assert_eq!(info.python_version, None);
    assert!(!is_python(&info));
}

#[test]
fn identify_errors_say_what_to_do() {
    let err = identify(i32::MAX, None).unwrap_err();
    assert!(matches!(err, TargetError::NoSuchProcess { pid: i32::MAX }));
    assert_eq!(
        err.to_string(),
        format!("no process with PID {} (check the PID with `ps`)", i32::MAX)
    );
    assert!(matches!(
        identify(0, None),
        Err(TargetError::NoSuchProcess { .. })
    ));
    assert!(matches!(
        identify(-3, None),
        Err(TargetError::NoSuchProcess { .. })
    ));

    let mut child = PyChild::spawn(&[]);
    let pid = child.pid();
    child.kill_and_reap();
    assert!(matches!(
        identify(pid, None),
        Err(TargetError::NoSuchProcess { .. })
    ));
}

#[test]
fn identify_refuses_kernel_threads() {
    // PID 2 is kthreadd where the kernel's threads are visible.
    let is_kthreadd = std::fs::read_to_string("/proc/2/stat")
        .ok()
        .and_then(|t| parse_stat(&t).map(|s| s.is_kernel_thread()))
        .unwrap_or(false);
    if !is_kthreadd {
        eprintln!("skipped: no kernel thread at PID 2 in this PID namespace");
        return;
    }
    let err = identify(2, None).unwrap_err();
    assert!(matches!(err, TargetError::KernelThread { pid: 2 }), "{err}");
    assert!(!err.to_string().contains('\n'));
}

#[test]
fn discover_by_match_pid_and_python() {
    let marker = unique_marker("discover");
    let a = PyChild::spawn(&[&marker, "role-a"]);
    let b = PyChild::spawn(&[&marker, "role-b"]);
    let other = PyChild::spawn(&[]);

    let by_name = Selector::parse_match(&format!("workers={marker}")).unwrap();
    let mut found = discover(&[by_name]);
    found.sort_by_key(|t| t.id.pid);
    let pids: Vec<i32> = found.iter().map(|t| t.id.pid).collect();
    let mut expected = vec![a.pid(), b.pid()];
    expected.sort();
    assert_eq!(pids, expected);
    assert!(found.iter().all(|t| t.group == "workers"));

    // The command line is matched joined with spaces.
    let joined = Selector::parse_match(&format!("{marker} role-b$")).unwrap();
    let found = discover(&[joined]);
    assert_eq!(
        found.iter().map(|t| t.id.pid).collect::<Vec<_>>(),
        [b.pid()]
    );
    assert_eq!(found[0].group, comm(b.pid()));

    let found = discover(&[Selector::Pid(other.pid())]);
    assert_eq!(
        found.iter().map(|t| t.id.pid).collect::<Vec<_>>(),
        [other.pid()]
    );

    let pythons = discover(&[Selector::Python]);
    for child in [&a, &b, &other] {
        assert!(
            pythons.iter().any(|t| t.id.pid == child.pid()),
            "{}",
            child.pid()
        );
    }
    assert!(pythons.iter().all(is_python));

    // The first selector that picks a process names its group.
    let found = discover(&[
        Selector::parse_match(&format!("first={marker} role-a")).unwrap(),
        Selector::parse_match(&format!("second={marker}")).unwrap(),
    ]);
    let group_of = |pid| {
        found
            .iter()
            .find(|t| t.id.pid == pid)
            .map(|t| t.group.clone())
    };
    assert_eq!(group_of(a.pid()).as_deref(), Some("first"));
    assert_eq!(group_of(b.pid()).as_deref(), Some("second"));
}

#[test]
fn discover_never_returns_ourselves() {
    let me = i32::try_from(std::process::id()).unwrap();
    assert!(discover(&[Selector::Pid(me)]).is_empty());
    // Our own command line matches its own name, and is still left out.
    let own = Selector::parse_match("leak_monitor").unwrap();
    assert!(discover(&[own]).iter().all(|t| t.id.pid != me));
}

#[test]
fn is_alive_follows_pid_and_start_time() {
    let mut child = PyChild::spawn(&[]);
    let pid = child.pid();
    let id = TargetId {
        pid,
        start_ticks: start_ticks(pid),
    };
    assert!(is_alive(id));
    // The same PID with another start time is another process (a reused PID).
    assert!(!is_alive(TargetId {
        pid,
        start_ticks: id.start_ticks + 1
    }));
    child.kill_leave_zombie();
    assert!(!is_alive(id), "a zombie is not alive");
    child.kill_and_reap();
    assert!(!is_alive(id));
    assert!(!is_alive(TargetId {
        pid: i32::MAX,
        start_ticks: 0
    }));
}
