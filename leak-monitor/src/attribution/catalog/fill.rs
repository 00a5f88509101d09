//! The lines that fill a named container: given the names a heap census found a growing
//! container under (`SERVICE`, `_sessions`; `_audit_log`; a frame's `seen`), the statements of
//! a file that add entries to it (`.append`, `.add`, `.update`, `.setdefault`, `x[k] = v`,
//! `x += ...`). When the adding line is a method's own parameter being stored (an
//! `EventBus.subscribe(handler)` that appends `handler`), the calls of that method on the
//! holder's owner (`BUS.subscribe(conn.on_event)`) are where the fix goes, and are returned as
//! the callers.

use super::syntax::{
    def_name, descendants, enclosing_class, enclosing_function, last_name, line_of, parse,
    root_name, text, Call,
};
use tree_sitter::Node;

/// Methods that add entries to a container.
const ADDS: &[&str] = &[
    "append",
    "extend",
    "insert",
    "add",
    "update",
    "setdefault",
    "appendleft",
    "extendleft",
    "__setitem__",
];

/// A statement that adds to the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillLine {
    pub line: u32,
    /// The enclosing function (`<module>` at top level).
    pub function: String,
    /// The method the line is in, when it stores one of that method's parameters: calls of it
    /// are searched next (`subscribe`).
    pub stores_parameter_of: Option<String>,
}

/// Does `expr` name the container: its last name is the last of `names`, and a single name
/// (a global or a local) is a bare identifier?
fn names_container(expr: Node<'_>, source: &str, names: &[&str]) -> bool {
    let Some(last) = names.last() else {
        return false;
    };
    if last_name(expr, source) != *last {
        return false;
    }
    match names.len() {
        1 => expr.kind() == "identifier",
        _ => expr.kind() == "attribute",
    }
}

/// The statements of `source` that add to the container named by `names` (outermost first),
/// only inside `function` when given (a frame's local), in file order.
pub fn fill_lines(source: &str, names: &[&str], function: Option<&str>) -> Vec<FillLine> {
    let Some(tree) = parse(source) else {
        return Vec::new();
    };
    let mut out: Vec<FillLine> = Vec::new();
    for node in descendants(tree.root_node(), |_| false) {
        let container = match node.kind() {
            "call" => Call::of(node, source)
                .filter(|c| ADDS.contains(&c.method.as_str()))
                .and_then(|c| c.receiver),
            "assignment" | "augmented_assignment" => node
                .child_by_field_name("left")
                .map(|left| match left.kind() {
                    "subscript" => left.child_by_field_name("value").unwrap_or(left),
                    _ => left,
                })
                .filter(|_| {
                    node.kind() == "augmented_assignment"
                        || node
                            .child_by_field_name("left")
                            .is_some_and(|l| l.kind() == "subscript")
                }),
            _ => None,
        };
        let Some(container) = container else {
            continue;
        };
        if !names_container(container, source, names) {
            continue;
        }
        let def = enclosing_function(node);
        let function_name = def.map_or("<module>", |d| def_name(d, source)).to_owned();
        if function.is_some_and(|f| f.rsplit('.').next() != Some(function_name.as_str())) {
            continue;
        }
        let line = line_of(node);
        if out.iter().any(|f| f.line == line) {
            continue;
        }
        let stores_parameter_of = def
            .filter(|d| enclosing_class(*d).is_some() && def_name(*d, source) != "__init__")
            .filter(|d| stores_a_parameter(node, *d, source))
            .map(|d| def_name(d, source).to_owned());
        out.push(FillLine {
            line,
            function: function_name,
            stores_parameter_of,
        });
    }
    // Lines inside functions first: a module-level fill is usually the initial contents.
    out.sort_by_key(|f| (f.function == "<module>", f.line));
    out
}

/// Does the adding statement store one of the method's own parameters (other than `self`)
/// as it is (`self._handlers.append(handler)`)? A value built from them
/// (`self._sessions[sid] = Session(sid)`) is made here: the fix is here too.
fn stores_a_parameter(statement: Node<'_>, def: Node<'_>, source: &str) -> bool {
    let Some(parameters) = def.child_by_field_name("parameters") else {
        return false;
    };
    let names: Vec<&str> = descendants(parameters, |_| false)
        .into_iter()
        .filter(|n| n.kind() == "identifier")
        .map(|n| text(n, source))
        .filter(|n| !matches!(*n, "self" | "cls"))
        .collect();
    let value = match statement.kind() {
        "call" => Call::of(statement, source).and_then(|c| c.args.last().copied()),
        _ => statement.child_by_field_name("right"),
    };
    value.is_some_and(|v| v.kind() == "identifier" && names.contains(&text(v, source)))
}

/// The lines that call `method` on a receiver whose last name is `owner` (`BUS.subscribe(...)`),
/// with the enclosing function of each.
pub fn method_calls(source: &str, owner: &str, method: &str) -> Vec<(u32, String)> {
    let Some(tree) = parse(source) else {
        return Vec::new();
    };
    descendants(tree.root_node(), |_| false)
        .into_iter()
        .filter_map(|node| Call::of(node, source))
        .filter(|c| c.method == method)
        .filter(|c| {
            c.receiver.is_some_and(|r| {
                last_name(r, source) == owner || root_name(r, source) == Some(owner)
            })
        })
        .map(|c| {
            let function = enclosing_function(c.node).map_or("<module>", |d| def_name(d, source));
            (line_of(c.node), function.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "\
import time

class SessionService:
    def __init__(self):
        self._sessions = {}

    def open(self, sid, payload):
        self._sessions[sid] = Session(sid, payload)

    def close(self, sid):
        self._sessions.pop(sid, None)

SERVICE = SessionService()
_audit_log = []
_audit_log.append('started')

def handle(i):
    _audit_log.append(i)
    SERVICE.open(i, b'x')

class EventBus:
    def __init__(self):
        self._handlers = []

    def subscribe(self, handler):
        self._handlers.append(handler)

BUS = EventBus()

def connect(conn):
    BUS.subscribe(conn.on_event)

def worker(q):
    seen = []
    while True:
        seen.append(q.get())
        seen += [1]
";

    #[test]
    fn finds_the_lines_that_fill_each_kind_of_holder() {
        let lines = |names: &[&str], f: Option<&str>| {
            fill_lines(SERVICE, names, f)
                .into_iter()
                .map(|l| l.line)
                .collect::<Vec<_>>()
        };
        let service = fill_lines(SERVICE, &["SERVICE", "_sessions"], None);
        assert_eq!(service.len(), 1);
        assert_eq!(
            (service[0].line, service[0].stores_parameter_of.as_deref()),
            (8, None)
        );
        // The call in a function first, the module-level initial entry after.
        assert_eq!(lines(&["_audit_log"], None), vec![18, 15]);
        assert_eq!(lines(&["seen"], Some("worker")), vec![36, 37]);
        assert!(lines(&["seen"], Some("other")).is_empty());
        let bus = fill_lines(SERVICE, &["BUS", "_handlers"], None);
        assert_eq!(bus.len(), 1);
        assert_eq!(bus[0].line, 26);
        assert_eq!(bus[0].stores_parameter_of.as_deref(), Some("subscribe"));
        assert_eq!(
            method_calls(SERVICE, "BUS", "subscribe"),
            vec![(31, "connect".to_owned())]
        );
    }
}
