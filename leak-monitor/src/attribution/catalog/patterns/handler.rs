//! Event handler never unsubscribed: a bound method, lambda or closure registered
//! (`.connect`, `.subscribe`, `.add_listener`, `.on`, `add_done_callback`, `atexit.register`)
//! each time a function runs, on an emitter that outlives it, with no matching removal.

use super::{quote, where_, Cx, Hit, Mode};
use crate::attribution::catalog::scope::{lifetime, Lifetime};
use crate::attribution::catalog::syntax::{
    calls, def_name, enclosing_function, in_loop, key, own_descendants, Call,
};
use crate::attribution::LeakType;
use tree_sitter::Node;

pub const PATTERN: &str = "event-handler";

/// Registration methods and the call that undoes each.
const REGISTRATIONS: &[(&str, &str)] = &[
    ("connect", "disconnect"),
    ("subscribe", "unsubscribe"),
    ("add_listener", "remove_listener"),
    ("addListener", "removeListener"),
    ("on", "off"),
    ("add_done_callback", "remove_done_callback"),
    ("add_handler", "remove_handler"),
    ("addHandler", "removeHandler"),
    ("add_callback", "remove_callback"),
    ("register", "unregister"),
    ("signal", "signal"),
];

pub fn check(cx: &Cx<'_>, unit: Node<'_>, mode: Mode) -> Option<Hit> {
    calls(unit, cx.source)
        .into_iter()
        .find_map(|call| registration(cx, unit, &call, mode))
}

fn registration(cx: &Cx<'_>, unit: Node<'_>, call: &Call<'_>, mode: Mode) -> Option<Hit> {
    let source = cx.source;
    let (_, undo) = REGISTRATIONS.iter().find(|(m, _)| *m == call.method)?;
    let receiver = call.receiver?;
    let is_signal = call.callee == "signal.signal";
    if call.method == "register" && call.callee != "atexit.register" {
        return None;
    }
    if call.method == "signal" && !is_signal {
        return None;
    }
    let handler = if is_signal {
        call.args.get(1).copied()
    } else {
        call.args
            .first()
            .copied()
            .or_else(|| call.kwarg("callback"))
            .or_else(|| call.kwarg("handler"))
    }?;
    let kind = handler_kind(handler, unit, source)?;
    let function = enclosing_function(unit);
    let repeated = function.is_some() || in_loop(unit);
    let emitter = lifetime(receiver, unit, source, &cx.facts.globals);
    let emitter_dies = emitter == Lifetime::Local;
    let recv = key(receiver, source);
    let handler_text = key(handler, source);
    let removed = cx.facts.unsubscribed(&recv, &handler_text);
    // `signal.signal` replaces the previous handler instead of adding one.
    let strong = repeated && !emitter_dies && !removed && !is_signal && kind != "a function";
    if !strong && mode == Mode::Scan {
        return None;
    }
    let handler_q = quote(handler, source);
    let recv_q = quote(receiver, source);
    let message = if is_signal {
        format!(
            "`{}` installs {kind} `{handler_q}` {}; each call replaces the previous handler, and the installed one keeps what it references alive",
            quote(call.node, source),
            where_(unit, source)
        )
    } else if removed {
        format!(
            "`{}` registers {kind} {} and something removes handlers from `{recv_q}`; check that every registration is undone",
            quote(call.node, source),
            where_(unit, source)
        )
    } else {
        format!(
            "`{}` registers {kind} on `{recv_q}` every time it runs ({}), and nothing in the file removes it (no {undo}): each registration keeps the handler and everything it references alive",
            quote(call.node, source),
            where_(unit, source)
        )
    };
    let fix = format!(
        "Undo the registration when the subscriber is done: keep the handle and call \
         `{recv_q}.{undo}({handler_q})` from its `close()`/`__exit__`, register once instead of \
         on every call, or let the emitter hold it weakly (`weakref.WeakMethod({handler_q})`) so \
         it does not keep the subscriber alive."
    );
    Some(Hit {
        pattern: PATTERN,
        leak_type: LeakType::EventHandler,
        message,
        fix,
        strong,
    })
}

/// What is registered: a bound method, a lambda, or a function defined in this call (a
/// closure). Plain data arguments (`sock.connect(addr)`) are not handlers.
fn handler_kind(handler: Node<'_>, unit: Node<'_>, source: &str) -> Option<&'static str> {
    match handler.kind() {
        "lambda" => Some("a lambda"),
        "attribute" => Some("a bound method"),
        "call" if Call::of(handler, source).is_some_and(|c| c.method == "partial") => {
            Some("a partial")
        }
        "identifier" => {
            let name = key(handler, source);
            let local_def = enclosing_function(unit).is_some_and(|f| {
                own_descendants(f).into_iter().any(|n| {
                    n != f && n.kind() == "function_definition" && def_name(n, source) == name
                })
            });
            Some(if local_def { "a closure" } else { "a function" })
        }
        _ => None,
    }
}
