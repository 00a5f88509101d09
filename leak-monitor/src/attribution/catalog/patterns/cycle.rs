//! Circular reference: objects that point at each other (`a.parent = b` with `b.child = a`,
//! `self.me = self`, `node.refs.append(node)`). Only the cyclic GC frees them, never while it
//! is disabled, and a `__del__` on such a class makes the cycle costlier to collect.

use super::{growths, quote, repeats, Cx, Hit, Mode};
use crate::attribution::catalog::syntax::{
    assignment_in, calls, def_name, enclosing_class, enclosing_function, key, own_descendants,
    root_name,
};
use crate::attribution::LeakType;
use tree_sitter::Node;

pub const PATTERN: &str = "circular-reference";

pub fn check(cx: &Cx<'_>, unit: Node<'_>, mode: Mode) -> Option<Hit> {
    let source = cx.source;
    if let Some(assignment) = assignment_in(unit) {
        let left = assignment.child_by_field_name("left")?;
        let right = assignment.child_by_field_name("right")?;
        if left.kind() == "attribute" && right.kind() == "identifier" {
            let holder = root_name(left, source)?;
            let target = key(right, source);
            if holder == target {
                return Some(hit(cx, unit, &quote(unit, source), None, mode));
            }
            if let Some(back) = back_reference(cx, unit, &target, holder) {
                return Some(hit(cx, unit, &quote(unit, source), Some(back), mode));
            }
        }
        return None;
    }
    // `node.children.append(node)`: a container held by the object it contains.
    for growth in growths(cx, unit) {
        let Some(value) = growth.value.filter(|v| v.kind() == "identifier") else {
            continue;
        };
        let value = key(value, source);
        let holder = root_name(growth.container, source)?;
        if holder == value {
            return Some(hit(cx, unit, &quote(unit, source), None, mode));
        }
        if mode == Mode::Explain {
            if let Some(back) = back_reference(cx, unit, &value, holder) {
                let mut weak = hit(cx, unit, &quote(unit, source), Some(back), mode);
                weak.strong = false;
                return Some(weak);
            }
        }
    }
    None
}

/// A statement in the same scope that makes `from` refer back to `to`:
/// `from.x = to`, `from.xs.append(to)`, `from.xs[k] = to`.
fn back_reference(cx: &Cx<'_>, unit: Node<'_>, from: &str, to: &str) -> Option<String> {
    let source = cx.source;
    let scope = enclosing_function(unit).or_else(|| unit.parent())?;
    for other in own_descendants(scope) {
        if other == unit || other.kind() != "expression_statement" {
            continue;
        }
        if let Some(assignment) = assignment_in(other) {
            let (Some(left), Some(right)) = (
                assignment.child_by_field_name("left"),
                assignment.child_by_field_name("right"),
            ) else {
                continue;
            };
            if matches!(left.kind(), "attribute" | "subscript")
                && root_name(left, source) == Some(from)
                && key(right, source) == to
            {
                return Some(quote(other, source));
            }
        }
        let appends = calls(other, source).into_iter().any(|call| {
            matches!(call.method.as_str(), "append" | "add" | "insert")
                && call
                    .receiver
                    .is_some_and(|r| root_name(r, source) == Some(from))
                && call.args.iter().any(|a| key(*a, source) == to)
        });
        if appends {
            return Some(quote(other, source));
        }
    }
    None
}

fn hit(cx: &Cx<'_>, unit: Node<'_>, line: &str, back: Option<String>, _mode: Mode) -> Hit {
    let source = cx.source;
    let class = enclosing_class(unit);
    let has_del = class.is_some_and(|c| {
        own_descendants(c.child_by_field_name("body").unwrap_or(c))
            .into_iter()
            .any(|n| n.kind() == "function_definition" && def_name(n, source) == "__del__")
    });
    let cycle = match &back {
        Some(back) => {
            format!("`{line}` together with `{back}` makes two objects refer to each other")
        }
        None => format!("`{line}` makes an object refer to itself"),
    };
    let del_note = if has_del {
        format!(
            "; class `{}` defines `__del__`, which runs only when the GC breaks the cycle",
            class.map(|c| def_name(c, source)).unwrap_or("")
        )
    } else {
        String::new()
    };
    Hit {
        pattern: PATTERN,
        leak_type: LeakType::CircularReference,
        message: format!(
            "{cycle}: reference counting never frees {them}, only the cyclic garbage collector does (never while `gc.disable()` is in effect){del_note}",
            them = if back.is_some() { "the pair" } else { "it" }
        ),
        fix: format!(
            "Break the cycle: hold the back-reference weakly (`weakref.ref(...)` / \
             `weakref.proxy(...)`, or a `weakref.WeakValueDictionary` for registries) instead of \
             `{line}`, or clear it when the objects are done (set the attribute to `None`){}.",
            if has_del {
                "; move `__del__` clean-up into an explicit `close()` or `weakref.finalize`"
            } else {
                ""
            }
        ),
        strong: repeats(unit),
    }
}
