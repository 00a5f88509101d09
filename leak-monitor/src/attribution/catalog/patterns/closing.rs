//! Resource not closed: `open(...)`, sockets, `sqlite3.connect`, `urlopen`, temp files,
//! `subprocess.Popen`, `os.open`/`os.pipe`, selectors, accepted connections, opened outside a
//! `with` and kept (assigned, stored in a container, returned) with no `.close()`.

use super::{growths, quote, where_, Cx, Hit, Mode};
use crate::attribution::catalog::syntax::{
    ancestors, bound_names, calls, enclosing_function, is_scope, key, own_descendants, Call,
};
use crate::attribution::LeakType;
use tree_sitter::Node;

pub const PATTERN: &str = "resource-not-closed";

/// Callees that return something holding a file descriptor, and what to call it.
const OPENERS: &[(&str, &str)] = &[
    ("open", "file"),
    ("io.open", "file"),
    ("codecs.open", "file"),
    ("os.fdopen", "file"),
    ("socket.socket", "socket"),
    ("socket.create_connection", "socket"),
    ("create_connection", "socket"),
    ("socket.socketpair", "socket pair"),
    ("socket.fromfd", "socket"),
    ("sqlite3.connect", "database connection"),
    ("urllib.request.urlopen", "HTTP response"),
    ("request.urlopen", "HTTP response"),
    ("urlopen", "HTTP response"),
    ("tempfile.TemporaryFile", "temporary file"),
    ("tempfile.NamedTemporaryFile", "temporary file"),
    ("tempfile.SpooledTemporaryFile", "temporary file"),
    ("NamedTemporaryFile", "temporary file"),
    ("TemporaryFile", "temporary file"),
    ("tempfile.mkstemp", "file descriptor"),
    ("subprocess.Popen", "child process"),
    ("Popen", "child process"),
    ("os.open", "file descriptor"),
    ("os.pipe", "pipe"),
    ("os.dup", "file descriptor"),
    ("os.memfd_create", "file descriptor"),
    ("selectors.DefaultSelector", "selector"),
    ("selectors.EpollSelector", "selector"),
    ("selectors.PollSelector", "selector"),
    ("selectors.SelectSelector", "selector"),
    ("select.epoll", "epoll object"),
    ("select.kqueue", "kqueue object"),
];

/// Calls that release what an opener returned.
const CLOSERS: &[&str] = &[
    "close",
    "__exit__",
    "wait",
    "communicate",
    "detach",
    "shutdown_and_close",
];

pub fn check(cx: &Cx<'_>, unit: Node<'_>, mode: Mode) -> Option<Hit> {
    let source = cx.source;
    let mut weak = None;
    for call in calls(unit, source) {
        let Some(what) = opener(&call) else { continue };
        let hit = judge(cx, unit, &call, what);
        match hit {
            Some(hit) if hit.strong => return Some(hit),
            Some(hit) => {
                weak.get_or_insert(hit);
            }
            None => {}
        }
    }
    if mode == Mode::Explain && weak.is_none() {
        // `self.conns.append(conn)`: the runtime saw fds grow where an opened resource is kept.
        for growth in growths(cx, unit) {
            let value = growth.value.filter(|v| v.kind() == "identifier")?;
            weak = Some(Hit {
                pattern: PATTERN,
                leak_type: LeakType::ResourceNotClosed,
                message: format!(
                    "`{}` keeps `{}` in `{}`; if it holds a file descriptor it stays open for as long as the container keeps it",
                    quote(unit, source),
                    quote(value, source),
                    quote(growth.container, source)
                ),
                fix: format!(
                    "Close what you keep: when an entry of `{c}` is done, take it out and close \
                     it (`{c}.pop(...).close()` or `{c}.remove(x); x.close()`), or do the work \
                     inside `with` so it closes itself.",
                    c = quote(growth.container, source)
                ),
                strong: false,
            });
        }
    }
    weak
}

fn opener(call: &Call<'_>) -> Option<&'static str> {
    if call.method == "accept" && call.args.is_empty() && call.receiver.is_some() {
        return Some("accepted connection");
    }
    OPENERS
        .iter()
        .find(|(name, _)| *name == call.callee)
        .map(|(_, what)| *what)
}

/// Decides whether the resource opened by `call` is left open.
fn judge(cx: &Cx<'_>, unit: Node<'_>, call: &Call<'_>, what: &'static str) -> Option<Hit> {
    let source = cx.source;
    let opened = quote(call.node, source);
    let managed = ancestors(call.node)
        .take_while(|n| !is_scope(*n))
        .any(|n| n.kind() == "with_item")
        || wrapped_in_closer(call.node, source);
    if managed {
        return Some(Hit {
            pattern: PATTERN,
            leak_type: LeakType::ResourceNotClosed,
            message: format!(
                "`{opened}` opens a {what} under a context manager {}; it is closed when the block ends, so a growing count here means the block itself does not end (a loop or a blocking call inside it)",
                where_(unit, source)
            ),
            fix: format!(
                "The `with` closes the {what} only when its block exits: keep the block short, \
                 move long-running loops out of it, and check for `{opened}` inside a loop that \
                 never leaves the block."
            ),
            strong: false,
        });
    }
    let scope = enclosing_function(unit).unwrap_or_else(|| root_of(unit));
    let parent = call.node.parent()?;
    let (kept_in, closed) = match parent.kind() {
        "assignment" if parent.child_by_field_name("right") == Some(call.node) => {
            let left = parent.child_by_field_name("left")?;
            let targets = match left.kind() {
                "identifier" | "pattern_list" | "tuple_pattern" => {
                    let names = bound_names(left);
                    // `conn, addr = s.accept()` / `fd, path = mkstemp()`: the first is the resource.
                    if what == "pipe" || what == "socket pair" {
                        names
                    } else {
                        names.into_iter().take(1).collect()
                    }
                }
                _ => vec![left],
            };
            let closed = targets.iter().all(|t| released(cx, scope, *t));
            (quote(left, source), closed)
        }
        "argument_list" => {
            let holder = parent.parent().and_then(|p| Call::of(p, source))?;
            if !matches!(
                holder.method.as_str(),
                "append" | "add" | "insert" | "appendleft" | "setdefault"
            ) {
                // Passed to a function that uses it and drops it: closed by refcounting.
                return None;
            }
            let container = holder.receiver?;
            let closed =
                cx.facts.closed_in_loop(container, source) || cx.facts.shrinks(container, source);
            (quote(container, source), closed)
        }
        "return_statement" => ("the caller".to_owned(), false),
        _ => return None,
    };
    let strong = !closed && super::repeats(unit);
    let message = if kept_in == "the caller" {
        format!(
            "`{opened}` opens a {what} and returns it to the caller {} with no `with`: unless every caller closes it, each call leaves one more descriptor open",
            where_(unit, source)
        )
    } else if strong {
        format!(
            "`{opened}` opens a {what} kept in `{kept_in}` {} with no `with` and no `.close()`: each call leaves one more descriptor open",
            where_(unit, source)
        )
    } else {
        format!(
            "`{opened}` opens a {what} kept in `{kept_in}` {}; it is closed on some path, check every path (exceptions, early returns) closes it",
            where_(unit, source)
        )
    };
    let fix = if kept_in == "the caller" {
        format!(
            "The {what} is handed to the caller: make the caller use it as a context manager \
             (`with {}(...) as r:`), or return the data instead of the open {what}.",
            call.callee
        )
    } else if what == "pipe" || what.contains("descriptor") {
        format!(
            "Close the descriptor on every path: `try: ... finally: os.close({kept_in})` (for \
             `os.pipe()` both ends), or wrap it at once in a file object used as \
             `with os.fdopen(fd) as f:`."
        )
    } else {
        format!(
            "Use it as a context manager so it is closed on every path:\n\
             \x20   with {opened} as {}:\n\
             \x20       ...\n\
             If it must outlive the function, close it where its owner is done with it \
             (`{kept_in}.close()`, or pop and close entries of a container).",
            if kept_in.contains(['.', '[', ',']) || kept_in == "the caller" {
                "resource"
            } else {
                kept_in.as_str()
            }
        )
    };
    Some(Hit {
        pattern: PATTERN,
        leak_type: LeakType::ResourceNotClosed,
        message,
        fix,
        strong,
    })
}

/// `contextlib.closing(open(...))`, `stack.enter_context(open(...))`.
fn wrapped_in_closer(node: Node<'_>, source: &str) -> bool {
    node.parent()
        .filter(|p| p.kind() == "argument_list")
        .and_then(|p| p.parent())
        .and_then(|p| Call::of(p, source))
        .is_some_and(|c| matches!(c.method.as_str(), "closing" | "enter_context"))
}

/// Whether the name or attribute a resource was stored in is closed: `x.close()`,
/// `os.close(x)`, `with x:`, `closing(x)`, or stored on and closed through `self.`.
fn released(cx: &Cx<'_>, scope: Node<'_>, target: Node<'_>) -> bool {
    let source = cx.source;
    let wanted = key(target, source);
    // Attributes outlive the function: any method may close them.
    let search = if target.kind() == "identifier" {
        scope
    } else {
        root_of(scope)
    };
    let nodes = if target.kind() == "identifier" {
        own_descendants(search)
    } else {
        crate::attribution::catalog::syntax::descendants(search, |_| false)
    };
    nodes.into_iter().any(|n| {
        if let Some(call) = Call::of(n, source) {
            let on_target = call.receiver.is_some_and(|r| key(r, source) == wanted);
            let given = call.args.iter().any(|a| key(*a, source) == wanted);
            return (on_target && CLOSERS.contains(&call.method.as_str()))
                || (given
                    && matches!(
                        call.callee.as_str(),
                        "os.close" | "closing" | "contextlib.closing"
                    ))
                || (given && call.method == "enter_context")
                || (given && is_container_kept(cx, &call));
        }
        n.kind() == "with_item"
            && n.named_child(0).is_some_and(|v| {
                key(v, source) == wanted
                    || v.kind() == "as_pattern"
                        && v.named_child(0).is_some_and(|e| key(e, source) == wanted)
            })
    })
}

/// `self.conns.append(conn)` where the container's entries are closed in a loop elsewhere.
fn is_container_kept(cx: &Cx<'_>, call: &Call<'_>) -> bool {
    matches!(
        call.method.as_str(),
        "append" | "add" | "insert" | "appendleft"
    ) && call
        .receiver
        .is_some_and(|r| cx.facts.closed_in_loop(r, cx.source) || cx.facts.shrinks(r, cx.source))
}

fn root_of(node: Node<'_>) -> Node<'_> {
    ancestors(node).last().unwrap_or(node)
}
