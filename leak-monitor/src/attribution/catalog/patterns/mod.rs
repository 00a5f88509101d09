//! The pattern catalog: one module per leak pattern, each judging one statement. `check` runs
//! them in order of specificity (a tensor appended to a global list is a tensor leak first).

mod cache;
mod closing;
mod collection;
mod cycle;
mod handler;
mod tensor;
mod thread;

pub use cache::PATTERN as CACHE;

use super::facts::Facts;
use super::syntax::{calls, def_name, enclosing_function, text};
use crate::attribution::LeakType;
use tree_sitter::Node;

/// What the patterns look at: the file's text and its file-wide facts.
pub struct Cx<'s> {
    pub source: &'s str,
    pub facts: Facts,
}

/// `Scan` reports statements; `Explain` also judges a statement by its surroundings (the
/// body of an unbounded `@cache` function) and keeps weak matches for the runtime hint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Scan,
    Explain,
}

/// One pattern matched at one statement.
pub struct Hit {
    pub pattern: &'static str,
    pub leak_type: LeakType,
    pub message: String,
    pub fix: String,
    /// All the pattern's conditions hold (what `scan` reports). A weak hit has the shape of
    /// the pattern but static evidence against it (a `with`, a `.close()`, a local list).
    pub strong: bool,
}

/// One pattern's judgement of one statement.
type Check = fn(&Cx<'_>, Node<'_>, Mode) -> Option<Hit>;

/// Every pattern that matches `unit`, most specific first.
pub fn check(cx: &Cx<'_>, unit: Node<'_>, mode: Mode) -> Vec<Hit> {
    let checks: [Check; 7] = [
        tensor::check,
        cache::check,
        cycle::check,
        handler::check,
        closing::check,
        thread::check,
        collection::check,
    ];
    checks
        .iter()
        .filter_map(|check| check(cx, unit, mode))
        .collect()
}

/// Methods that add to a container.
const GROW: &[&str] = &[
    "append",
    "extend",
    "add",
    "insert",
    "setdefault",
    "appendleft",
    "extendleft",
    "update",
];

/// A statement adding to a container.
pub struct Growth<'t> {
    pub container: Node<'t>,
    /// What is added, when there is one value.
    pub value: Option<Node<'t>>,
    /// `.append(...)`, `[...] = `, `+=`.
    pub how: String,
    /// `c[k] = v` or `c.setdefault(k, v)`: keyed storage.
    pub keyed: bool,
}

/// The containers `unit` adds to.
pub fn growths<'t>(cx: &Cx<'_>, unit: Node<'t>) -> Vec<Growth<'t>> {
    let source = cx.source;
    let mut found = Vec::new();
    for call in calls(unit, source) {
        let Some(receiver) = call.receiver else {
            continue;
        };
        if !GROW.contains(&call.method.as_str())
            || !matches!(receiver.kind(), "identifier" | "attribute" | "subscript")
        {
            continue;
        }
        let value = match call.method.as_str() {
            "insert" | "setdefault" => call.args.get(1).copied(),
            _ => call.args.first().copied(),
        };
        found.push(Growth {
            container: receiver,
            value,
            how: format!(".{}(...)", call.method),
            keyed: call.method == "setdefault",
        });
    }
    let Some(inner) = unit.named_child(0) else {
        return found;
    };
    let (Some(left), Some(right)) = (
        inner.child_by_field_name("left"),
        inner.child_by_field_name("right"),
    ) else {
        return found;
    };
    match inner.kind() {
        "assignment" if left.kind() == "subscript" => {
            // A slice rewrites in place; a constant key (`buf[0] = b`) rewrites one slot.
            let sliced = left.child_by_field_name("subscript").is_some_and(|s| {
                matches!(
                    s.kind(),
                    "slice" | "integer" | "string" | "unary_operator" | "true" | "false" | "none"
                )
            });
            if let (Some(container), false) = (left.child_by_field_name("value"), sliced) {
                found.push(Growth {
                    container,
                    value: Some(right),
                    how: "[...] = ...".to_owned(),
                    keyed: true,
                });
            }
        }
        "augmented_assignment" => {
            let op = inner
                .child_by_field_name("operator")
                .map(|o| text(o, source))
                .unwrap_or("");
            let listy = cx.facts.is_list(left, source)
                || matches!(right.kind(), "list" | "list_comprehension");
            if matches!(op, "+=" | "|=") && listy {
                found.push(Growth {
                    container: left,
                    value: Some(right),
                    how: format!("{op} ..."),
                    keyed: false,
                });
            }
        }
        _ => {}
    }
    found
}

/// "in `handle`" or "at module level", for messages.
pub fn where_(unit: Node<'_>, source: &str) -> String {
    match enclosing_function(unit) {
        Some(function) => format!("in `{}`", def_name(function, source)),
        None => "at module level".to_owned(),
    }
}

/// A short quote of a node for messages: its text on one line, cut at 60 characters.
pub fn quote(node: Node<'_>, source: &str) -> String {
    let flat = text(node, source)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() > 60 {
        let cut: String = flat.chars().take(57).collect();
        format!("{cut}...")
    } else {
        flat
    }
}

/// Whether the statement runs once per call or iteration (inside a function or a loop).
pub fn repeats(unit: Node<'_>) -> bool {
    enclosing_function(unit).is_some() || super::syntax::in_loop(unit)
}

/// Whether the enclosing function is a constructor (runs once per object).
pub fn in_constructor(unit: Node<'_>, source: &str) -> bool {
    enclosing_function(unit).is_some_and(|f| matches!(def_name(f, source), "__init__" | "__new__"))
}
