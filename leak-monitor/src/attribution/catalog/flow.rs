//! `locate`: from the line where the runtime saw a resource allocated to the line that keeps
//! it alive. The allocation (`payload = bytearray(n)`) rarely matches a pattern; the statement
//! that stores the value into long-lived state (`LOG.append(payload)`) does.
//!
//! The value is followed by name, forward, inside the enclosing function only: the names (or
//! `self.attr` keys) the line assigns, then every name a later statement derives from them or
//! stores them in (`loss = f(output)`, `out.append(x)`, `obj.attr = x`). In a constructor that
//! stores on `self`, a later statement that hands `self` out (`BUS.subscribe(self.on_event)`)
//! keeps the value too. Each later statement that mentions a followed value is judged by the
//! patterns; the first strong hit whose type fits the resource is where the value is kept.

use super::facts::Facts;
use super::patterns::{self, growths, Cx, Hit, Mode};
use super::syntax::{
    self, bound_names, enclosing_function, key, own_descendants, root_name, text, Call,
};
use super::{explanation_of, ranked, Explanation};
use crate::resource::Resource;
use std::collections::HashSet;
use tree_sitter::Node;

/// The statement that keeps the value alive, and why it leaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// 1-based line of the retaining statement.
    pub line: u32,
    /// Its explanation, the evidence quoted around `line`.
    pub explanation: Explanation,
}

/// Calls whose result does not hold their arguments (`n = len(payload)`).
const DETACHING: &[&str] = &[
    "len",
    "int",
    "float",
    "str",
    "bool",
    "hash",
    "id",
    "repr",
    "isinstance",
    "item",
    "tolist",
    "numel",
    "format",
    "type",
];

/// Where the value created at `line` ends up kept: this line itself when it matches a pattern,
/// else a later statement in the same function that stores the name this line assigns (or an
/// object holding it) into long-lived state and matches a pattern (append/add/setitem into a
/// module/class/self container, attribute store on self of a long-lived object, subscribe/
/// register of a bound method of `self` in `__init__`, ...). `None` when no pattern is found
/// in this function (the caller then tries the next outer frame of the stack: the line of the
/// call, e.g. `loss = model(batch)`, which this function judges the same way).
///
/// Only strong hits whose leak type fits `resource` count: a weak match (a local list, a
/// `with`, an unsubscribed handler) is no evidence that the value stays, so `explain` on the
/// blamed line remains the caller's fallback.
pub fn locate(source: &str, line: u32, resource: Resource) -> Option<Located> {
    let tree = syntax::parse(source)?;
    let origin = syntax::unit_at_line(&tree, source, line)?;
    let cx = Cx {
        source,
        facts: Facts::collect(tree.root_node(), source),
    };
    if let Some(hit) = strong_fit(&cx, origin, resource, Mode::Explain) {
        return Some(at_origin(&cx, origin, resource, hit));
    }
    let function = enclosing_function(origin)?;
    let constructor = matches!(syntax::def_name(function, source), "__init__" | "__new__");
    let mut flow = Flow {
        source,
        keys: HashSet::new(),
        self_escapes: false,
        constructor,
    };
    flow.absorb(&cx, origin, true);
    for later in own_descendants(function)
        .into_iter()
        .filter(|n| syntax::is_unit(*n) && n.start_byte() >= origin.end_byte())
    {
        if flow.keys.is_empty() && !flow.self_escapes {
            return None;
        }
        if flow.mentioned_in(later) {
            if let Some(hit) = strong_fit(&cx, later, resource, Mode::Explain) {
                let line = syntax::line_of(later);
                return Some(Located {
                    line,
                    explanation: explanation_of(source, line, hit),
                });
            }
        }
        flow.absorb(&cx, later, false);
    }
    None
}

/// Calls a thread rests in between the iterations of its loop.
const RESTING: &[&str] = &[
    "sleep", "wait", "wait_for", "join", "get", "select", "poll", "recv", "recvfrom", "accept",
    "acquire",
];

/// A sampled stack often finds a thread resting (`time.sleep(...)`, `event.wait()`) rather
/// than at the line that made the resource, which ran for microseconds just before. When the
/// line is such a call inside a loop, the loop's own statements are judged in order, and the
/// first strong hit whose type fits `resource` is the site. `None` for any other line.
pub fn locate_in_resting_loop(source: &str, line: u32, resource: Resource) -> Option<Located> {
    let tree = syntax::parse(source)?;
    let resting = syntax::unit_at_line(&tree, source, line)?;
    if !syntax::calls(resting, source)
        .iter()
        .any(|call| RESTING.contains(&call.method.as_str()))
    {
        return None;
    }
    let body = syntax::ancestors(resting)
        .take_while(|n| !syntax::is_scope(*n))
        .find(|n| matches!(n.kind(), "for_statement" | "while_statement"))?;
    let cx = Cx {
        source,
        facts: Facts::collect(tree.root_node(), source),
    };
    own_descendants(body)
        .into_iter()
        .filter(|n| syntax::is_unit(*n) && *n != resting)
        .find_map(|unit| {
            let hit = strong_fit(&cx, unit, resource, Mode::Explain)?;
            let line = syntax::line_of(unit);
            Some(Located {
                line,
                explanation: explanation_of(source, line, hit),
            })
        })
}

/// The best hit at `unit` when it is strong and its type fits `resource`.
fn strong_fit(cx: &Cx<'_>, unit: Node<'_>, resource: Resource, mode: Mode) -> Option<Hit> {
    ranked(patterns::check(cx, unit, mode), resource)
        .filter(|(score, _)| *score == 3)
        .map(|(_, hit)| hit)
}

/// The blamed line matches itself. A line in the body of an unbounded memoized function
/// matches only through its decorator, which is what keeps the results: locate that.
fn at_origin(cx: &Cx<'_>, origin: Node<'_>, resource: Resource, hit: Hit) -> Located {
    let decorator = (hit.pattern == patterns::CACHE
        && strong_fit(cx, origin, resource, Mode::Scan).is_none())
    .then(|| enclosing_function(origin))
    .flatten()
    .and_then(|f| f.parent())
    .filter(|p| p.kind() == "decorated_definition")
    .and_then(|decorated| {
        let mut cursor = decorated.walk();
        let decorators: Vec<Node<'_>> = decorated
            .named_children(&mut cursor)
            .filter(|n| n.kind() == "decorator")
            .collect();
        decorators.into_iter().find_map(|d| {
            strong_fit(cx, d, resource, Mode::Scan)
                .filter(|h| h.pattern == patterns::CACHE)
                .map(|h| (d, h))
        })
    });
    let (unit, hit) = decorator.unwrap_or((origin, hit));
    let line = syntax::line_of(unit);
    Located {
        line,
        explanation: explanation_of(cx.source, line, hit),
    }
}

/// The values followed through one function body.
struct Flow<'s> {
    source: &'s str,
    /// Names (`payload`) and attribute keys (`self.buffer`) that hold the value.
    keys: HashSet<String>,
    /// The value is stored on `self` in a constructor: handing `self` out keeps it.
    self_escapes: bool,
    constructor: bool,
}

impl Flow<'_> {
    /// Whether `node` reads a followed value (or hands out `self` when that keeps it).
    fn mentioned_in(&self, node: Node<'_>) -> bool {
        own_descendants(node).into_iter().any(|n| match n.kind() {
            "attribute" => self.keys.contains(&key(n, self.source)),
            "identifier" if !is_label(n) => {
                let name = text(n, self.source);
                self.keys.contains(name) || (self.self_escapes && name == "self" && escapes(n))
            }
            _ => false,
        })
    }

    /// Follows what `unit` does with the value: names assigned from it hold it, containers
    /// it is added to hold it, a name rebound to something else no longer does. At the
    /// origin line the whole right-hand side is the value.
    fn absorb(&mut self, cx: &Cx<'_>, unit: Node<'_>, origin: bool) {
        let source = self.source;
        let carries = |flow: &Self, value: Node<'_>| {
            origin || (flow.mentioned_in(value) && !detaching(value, source))
        };
        if let Some(inner) = unit.named_child(0).filter(|_| unit.kind() != "decorator") {
            if let (Some(left), Some(right)) = (
                inner.child_by_field_name("left"),
                inner.child_by_field_name("right"),
            ) {
                match inner.kind() {
                    "assignment" | "augmented_assignment" if carries(self, right) => {
                        self.hold(left);
                    }
                    "assignment" => {
                        for name in bound_names(left) {
                            self.keys.remove(text(name, source));
                        }
                    }
                    _ => {}
                }
            }
        }
        for growth in growths(cx, unit) {
            if growth.value.is_some_and(|v| carries(self, v)) {
                self.hold(growth.container);
            }
        }
    }

    /// Records that `target` now holds the value: a name, a `self.attr` chain, or the object
    /// whose attribute or item it is stored in.
    fn hold(&mut self, target: Node<'_>) {
        let source = self.source;
        let names = bound_names(target);
        if !names.is_empty() {
            self.keys
                .extend(names.iter().map(|n| text(*n, source).to_owned()));
            return;
        }
        let target = match target.kind() {
            "subscript" => match target.child_by_field_name("value") {
                Some(value) => value,
                None => return,
            },
            _ => target,
        };
        match root_name(target, source) {
            Some("self" | "cls") if target.kind() == "attribute" => {
                self.keys.insert(key(target, source));
                self.self_escapes |= self.constructor;
            }
            Some("self" | "cls") | None => {}
            Some(root) => {
                self.keys.insert(root.to_owned());
            }
        }
    }
}

/// An identifier that names an attribute or a keyword, not a value (`x` in `a.x`, `k=`).
fn is_label(node: Node<'_>) -> bool {
    node.parent().is_some_and(|p| {
        (p.kind() == "attribute" && p.child_by_field_name("attribute") == Some(node))
            || (p.kind() == "keyword_argument" && p.child_by_field_name("name") == Some(node))
    })
}

/// Whether `self` here is handed out: a call argument or the value of an assignment.
fn escapes(node: Node<'_>) -> bool {
    let mut current = node;
    while let Some(parent) = current.parent() {
        match parent.kind() {
            "argument_list" => return true,
            "assignment" | "augmented_assignment"
                if parent.child_by_field_name("right") == Some(current) =>
            {
                return true
            }
            kind if syntax::is_unit(parent) || syntax::is_scope(parent) || kind == "module" => {
                return false
            }
            _ => {}
        }
        current = parent;
    }
    false
}

/// A value that does not keep its operands: `len(x)`, `x.item()`, `x == y`, `not x`.
fn detaching(value: Node<'_>, source: &str) -> bool {
    match value.kind() {
        "comparison_operator" | "not_operator" => true,
        _ => Call::of(value, source).is_some_and(|c| DETACHING.contains(&c.method.as_str())),
    }
}
