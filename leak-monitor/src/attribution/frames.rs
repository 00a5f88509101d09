//! Which frame of a Python stack to blame, and whether a stack is waiting in a blocking call.
//!
//! The frame to blame is the innermost one in the user's code: for `socket.socket()` the innermost
//! frame is in the standard library's socket.py, and the line to fix is its caller. Standard
//! library files are recognised by their path (`<prefix>/lib/pythonX.Y/...`, frozen modules),
//! third-party packages by `site-packages`/`dist-packages`. Pure logic, no I/O.

use super::Frame;

/// Where a frame's code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The application's own code: the frames to blame.
    User,
    /// An installed third-party package (site-packages, dist-packages).
    ThirdParty,
    /// The standard library, frozen modules, `<string>`-like pseudo files.
    Stdlib,
}

/// Classifies a frame's file path.
pub fn origin(file: &str) -> Origin {
    if file.starts_with('<') {
        // <frozen importlib._bootstrap>, <string>, <stdin>: not a file the user can fix.
        return Origin::Stdlib;
    }
    if file.contains("/site-packages/") || file.contains("/dist-packages/") {
        return Origin::ThirdParty;
    }
    if stdlib_root(file).is_some() {
        return Origin::Stdlib;
    }
    Origin::User
}

/// The `<prefix>/lib/pythonX.Y/` (or `lib64`) root of a standard library path, when `file` is one.
pub fn stdlib_root(file: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(found) = file[from..].find("/lib") {
        let start = from + found;
        let rest = &file[start + 4..];
        let rest = rest.strip_prefix("64").unwrap_or(rest);
        if let Some(version) = rest.strip_prefix("/python") {
            let digits = version
                .find('/')
                .map(|end| &version[..end])
                .filter(|v| is_version(v));
            if let Some(v) = digits {
                let end = file.len() - version.len() + v.len() + 1;
                return Some(&file[..end]);
            }
        }
        from = start + 4;
    }
    None
}

/// `3.11`, `3.13t`, `2.7`: a major.minor directory name.
fn is_version(text: &str) -> bool {
    let text = text.strip_suffix('t').unwrap_or(text);
    let mut parts = text.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// The index of the frame to blame in `frames` (innermost first): the innermost user frame, else
/// the innermost third-party frame, else the innermost frame. None for an empty stack.
pub fn blamed_index(frames: &[Frame]) -> Option<usize> {
    let find = |wanted: Origin| frames.iter().position(|f| origin(&f.file) == wanted);
    find(Origin::User)
        .or_else(|| find(Origin::ThirdParty))
        .or(if frames.is_empty() { None } else { Some(0) })
}

/// Standard library functions that wait: a thread whose innermost frames are one of these is
/// blocked (sleeping in `time.sleep`, a C function, shows as the caller's line and is told by
/// the kernel's thread state instead).
const BLOCKING: &[(&str, &[&str])] = &[
    (
        "threading.py",
        &["wait", "_wait_for_tstate_lock", "join", "acquire"],
    ),
    ("queue.py", &["get", "put", "join"]),
    ("selectors.py", &["select"]),
    (
        "socket.py",
        &[
            "accept",
            "recv",
            "recv_into",
            "recvfrom",
            "readinto",
            "makefile",
        ],
    ),
    (
        "ssl.py",
        &["read", "recv", "recv_into", "accept", "do_handshake"],
    ),
    (
        "subprocess.py",
        &["wait", "_wait", "communicate", "_try_wait"],
    ),
    ("socketserver.py", &["serve_forever"]),
    ("connection.py", &["recv", "_recv", "poll", "wait", "_poll"]),
    ("base_events.py", &["_run_once", "run_forever", "select"]),
];

/// True when the stack is parked in a known blocking call of the standard library.
pub fn in_blocking_call(frames: &[Frame]) -> bool {
    // The wait is the innermost Python frame, or just below a helper of the same module.
    frames.iter().take(3).any(|frame| {
        origin(&frame.file) == Origin::Stdlib
            && BLOCKING.iter().any(|(file, functions)| {
                frame
                    .file
                    .strip_suffix(file)
                    .is_some_and(|dir| dir.ends_with('/'))
                    && functions.contains(&frame.function.as_str())
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(file: &str, line: u32, function: &str) -> Frame {
        Frame::new(file, line, function)
    }

    #[test]
    fn stdlib_roots_of_debian_pyenv_and_venv_layouts() {
        assert_eq!(
            stdlib_root("/usr/lib/python3.11/socket.py"),
            Some("/usr/lib/python3.11/")
        );
        assert_eq!(
            stdlib_root("/root/.pyenv/versions/3.11.9/lib/python3.11/threading.py"),
            Some("/root/.pyenv/versions/3.11.9/lib/python3.11/")
        );
        assert_eq!(
            stdlib_root("/opt/py/lib64/python3.13t/json/decoder.py"),
            Some("/opt/py/lib64/python3.13t/")
        );
        assert_eq!(stdlib_root("/srv/lib/pythonic/app.py"), None);
        assert_eq!(stdlib_root("/srv/library/python3.11x/app.py"), None);
        assert_eq!(stdlib_root("/srv/app/render.py"), None);
    }

    #[test]
    fn origins() {
        assert_eq!(origin("/usr/lib/python3.11/socket.py"), Origin::Stdlib);
        assert_eq!(origin("<frozen importlib._bootstrap>"), Origin::Stdlib);
        assert_eq!(
            origin("/srv/venv/lib/python3.11/site-packages/requests/api.py"),
            Origin::ThirdParty
        );
        assert_eq!(
            origin("/usr/lib/python3/dist-packages/yaml/__init__.py"),
            Origin::ThirdParty
        );
        assert_eq!(origin("/srv/app/client.py"), Origin::User);
    }

    #[test]
    fn the_caller_of_the_stdlib_is_blamed() {
        let stack = [
            frame("/usr/lib/python3.11/socket.py", 232, "__init__"),
            frame(
                "/srv/venv/lib/python3.11/site-packages/lib/pool.py",
                10,
                "new",
            ),
            frame("/srv/app/client.py", 88, "connect"),
            frame("/srv/app/main.py", 5, "<module>"),
        ];
        assert_eq!(blamed_index(&stack), Some(2));
        // Without user code, the innermost third-party frame; without that, the innermost.
        assert_eq!(blamed_index(&stack[..2]), Some(1));
        assert_eq!(blamed_index(&stack[..1]), Some(0));
        assert_eq!(blamed_index(&[]), None);
    }

    #[test]
    fn waits_are_blocking_calls_and_work_is_not() {
        let waiting = [
            frame("/usr/lib/python3.11/threading.py", 324, "wait"),
            frame("/usr/lib/python3.11/threading.py", 622, "wait"),
            frame("/srv/app/watch.py", 15, "watchdog"),
        ];
        assert!(in_blocking_call(&waiting));
        let working = [
            frame("/usr/lib/python3.11/json/encoder.py", 200, "encode"),
            frame("/srv/app/watch.py", 20, "handle"),
        ];
        assert!(!in_blocking_call(&working));
        // A user function that happens to be called `wait` is not the stdlib's.
        assert!(!in_blocking_call(&[frame(
            "/srv/app/threading.py",
            3,
            "wait"
        )]));
    }
}
