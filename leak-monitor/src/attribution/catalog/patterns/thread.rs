//! Thread never joined: `threading.Thread(...).start()` or `t.start()` with no `t.join()` for
//! that thread, in a function or loop that runs again and again (request handlers, loops).

use super::{quote, repeats, where_, Cx, Hit, Mode};
use crate::attribution::catalog::syntax::{
    ancestors, assignment_in, calls, descendants, enclosing_function, key, own_descendants, Call,
};
use crate::attribution::LeakType;
use tree_sitter::Node;

pub const PATTERN: &str = "thread-not-joined";

pub fn check(cx: &Cx<'_>, unit: Node<'_>, mode: Mode) -> Option<Hit> {
    let source = cx.source;
    for call in calls(unit, source) {
        if call.method != "start" || !call.args.is_empty() {
            continue;
        }
        let Some(receiver) = call.receiver else {
            continue;
        };
        if let Some(ctor) = Call::of(receiver, source).filter(|c| is_thread_ctor(cx, c)) {
            // Started without keeping a handle: it can never be joined.
            let name = quote(ctor.node, source);
            return Some(hit(
                cx,
                unit,
                &name,
                daemon(&ctor, source),
                None,
                repeats(unit),
            ));
        }
        let scope = enclosing_function(unit).unwrap_or_else(|| root(unit));
        let Some(ctor) = thread_assigned_to(cx, scope, receiver) else {
            if mode == Mode::Explain {
                let name = quote(receiver, source);
                return Some(hit(cx, unit, &name, false, None, false));
            }
            continue;
        };
        let joined = joined(cx, scope, receiver);
        let name = quote(receiver, source);
        return Some(hit(
            cx,
            unit,
            &name,
            daemon(&ctor, source),
            Some(quote(ctor.node, source)),
            !joined && repeats(unit),
        ));
    }
    if mode == Mode::Explain {
        // The constructor line itself: `t = threading.Thread(...)`.
        let ctor = calls(unit, source)
            .into_iter()
            .find(|c| is_thread_ctor(cx, c))?;
        let name = assignment_in(unit)
            .and_then(|a| a.child_by_field_name("left"))
            .map(|l| quote(l, source))
            .unwrap_or_else(|| quote(ctor.node, source));
        return Some(hit(cx, unit, &name, daemon(&ctor, source), None, false));
    }
    None
}

fn is_thread_ctor(cx: &Cx<'_>, call: &Call<'_>) -> bool {
    matches!(
        call.callee.as_str(),
        "threading.Thread" | "Thread" | "threading.Timer" | "Timer"
    ) || cx.facts.thread_classes.contains(&call.method)
}

fn daemon(ctor: &Call<'_>, source: &str) -> bool {
    ctor.kwarg("daemon")
        .is_some_and(|v| crate::attribution::catalog::syntax::text(v, source) == "True")
}

/// The thread constructor whose result `receiver` was assigned in `scope` (for `self.` names,
/// anywhere in the file).
fn thread_assigned_to<'t>(cx: &Cx<'_>, scope: Node<'t>, receiver: Node<'_>) -> Option<Call<'t>> {
    let source = cx.source;
    let wanted = key(receiver, source);
    let search = if receiver.kind() == "identifier" {
        scope
    } else {
        root(scope)
    };
    descendants(search, |_| false).into_iter().find_map(|n| {
        if n.kind() != "assignment" {
            return None;
        }
        let left = n.child_by_field_name("left")?;
        let call = Call::of(n.child_by_field_name("right")?, source)?;
        (key(left, source) == wanted && is_thread_ctor(cx, &call)).then_some(call)
    })
}

/// `t.join()` in the scope, or `t` kept in a container whose entries a loop joins.
fn joined(cx: &Cx<'_>, scope: Node<'_>, receiver: Node<'_>) -> bool {
    let source = cx.source;
    let wanted = key(receiver, source);
    let nodes = if receiver.kind() == "identifier" {
        own_descendants(scope)
    } else {
        descendants(root(scope), |_| false)
    };
    nodes
        .into_iter()
        .filter_map(|n| Call::of(n, source))
        .any(|call| {
            let on = call.receiver.is_some_and(|r| key(r, source) == wanted);
            let kept = call.args.iter().any(|a| key(*a, source) == wanted)
                && matches!(call.method.as_str(), "append" | "add" | "insert")
                && call
                    .receiver
                    .is_some_and(|r| cx.facts.joined_in_loop(r, source));
            (on && call.method == "join") || kept
        })
}

fn hit(
    cx: &Cx<'_>,
    unit: Node<'_>,
    thread: &str,
    daemon: bool,
    ctor: Option<String>,
    strong: bool,
) -> Hit {
    let source = cx.source;
    let started = ctor.map(|c| format!(" (`{c}`)")).unwrap_or_default();
    let daemon_note = if daemon {
        "; as a daemon thread it is never waited for, so one that blocks forever stays for the life of the process"
    } else {
        ""
    };
    let message = if strong {
        format!(
            "`{thread}`{started} is started {} and never joined: every run leaves one more thread, with its stack, behind{daemon_note}",
            where_(unit, source)
        )
    } else {
        format!(
            "`{thread}`{started} is started {}; it is joined or started once, so check that its target actually returns{daemon_note}",
            where_(unit, source)
        )
    };
    Hit {
        pattern: PATTERN,
        leak_type: LeakType::ThreadNotJoined,
        message,
        fix: format!(
            "{} once its work is done, and give the target an exit (a `threading.Event` it \
             checks instead of `while True`). For work per request, submit it to one bounded \
             pool created once: `POOL = concurrent.futures.ThreadPoolExecutor(max_workers=8)`, \
             `POOL.submit(fn, ...)`.",
            if thread.contains('(') {
                format!("Keep a handle and join it: `worker = {thread}`, `worker.start()`, then `worker.join(timeout=...)`")
            } else {
                format!("Join the thread: `{thread}.join(timeout=...)`")
            }
        ),
        strong,
    }
}

fn root(node: Node<'_>) -> Node<'_> {
    ancestors(node).last().unwrap_or(node)
}
