//! Name scopes: which names a function binds, and how long a container named in a statement
//! lives (a `self.` attribute or a module global outlives the call; a local dies with it).

use super::syntax::{
    ancestors, bound_names, enclosing_class, enclosing_function, own_descendants, root_name, text,
};
use std::collections::HashSet;
use tree_sitter::Node;

/// How long the object an expression names outlives the statement that touches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// `self.x` / `cls.x`: lives as long as the object (or class).
    Instance,
    /// A module-level name, or an attribute of one (a class, an imported module).
    Global,
    /// A variable of an enclosing function, kept alive by the closure.
    Closure,
    /// A class-body name.
    ClassBody,
    /// A parameter: whatever the caller passed.
    Param,
    /// Bound in this function: dies when it returns.
    Local,
    Unknown,
}

impl Lifetime {
    pub fn long_lived(self) -> bool {
        matches!(
            self,
            Lifetime::Instance | Lifetime::Global | Lifetime::Closure | Lifetime::ClassBody
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Lifetime::Instance => "an attribute that lives as long as its object",
            Lifetime::Global => "a module-level object that lives as long as the process",
            Lifetime::Closure => "a closure variable that outlives each call",
            Lifetime::ClassBody => "a class attribute shared by every instance",
            Lifetime::Param => "a parameter",
            Lifetime::Local => "a local variable",
            Lifetime::Unknown => "a name of unknown lifetime",
        }
    }
}

/// The names one function binds.
#[derive(Default)]
pub struct Locals {
    pub params: HashSet<String>,
    pub assigned: HashSet<String>,
    pub globals: HashSet<String>,
    pub nonlocals: HashSet<String>,
    /// The first parameter's name (`self` / `cls` in methods).
    pub first_param: Option<String>,
}

impl Locals {
    pub fn of(function: Node<'_>, source: &str) -> Locals {
        let mut locals = Locals::default();
        if let Some(params) = function.child_by_field_name("parameters") {
            let mut cursor = params.walk();
            for param in params.named_children(&mut cursor) {
                let name = match param.kind() {
                    "identifier" => Some(param),
                    "default_parameter" | "typed_default_parameter" => {
                        param.child_by_field_name("name")
                    }
                    _ => param
                        .named_child(0)
                        .filter(|n| n.kind() == "identifier")
                        .or_else(|| param.named_child(0).and_then(|n| n.named_child(0))),
                };
                if let Some(name) = name {
                    let name = text(name, source).to_owned();
                    if locals.first_param.is_none() {
                        locals.first_param = Some(name.clone());
                    }
                    locals.params.insert(name);
                }
            }
        }
        let Some(body) = function.child_by_field_name("body") else {
            return locals;
        };
        for node in own_descendants(body) {
            let targets: Vec<Node<'_>> = match node.kind() {
                "assignment" | "augmented_assignment" | "for_statement" => node
                    .child_by_field_name("left")
                    .map(bound_names)
                    .unwrap_or_default(),
                "named_expression" => node.child_by_field_name("name").into_iter().collect(),
                "as_pattern_target" => match node.named_child(0) {
                    Some(inner) => bound_names(inner),
                    None => vec![node],
                },
                "function_definition" | "class_definition" => {
                    node.child_by_field_name("name").into_iter().collect()
                }
                "global_statement" | "nonlocal_statement" => {
                    let set = if node.kind() == "global_statement" {
                        &mut locals.globals
                    } else {
                        &mut locals.nonlocals
                    };
                    let mut cursor = node.walk();
                    for name in node.named_children(&mut cursor) {
                        set.insert(text(name, source).to_owned());
                    }
                    Vec::new()
                }
                _ => Vec::new(),
            };
            for target in targets {
                locals.assigned.insert(text(target, source).to_owned());
            }
        }
        locals
    }
}

/// Names bound at module level: assignments, imports, defs and classes.
pub fn module_names(root: Node<'_>, source: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for node in own_descendants(root) {
        match node.kind() {
            "assignment" | "augmented_assignment" | "for_statement" => {
                if let Some(left) = node.child_by_field_name("left") {
                    names.extend(
                        bound_names(left)
                            .iter()
                            .map(|n| text(*n, source).to_owned()),
                    );
                }
            }
            "function_definition" | "class_definition" => {
                if let Some(name) = node.child_by_field_name("name") {
                    names.insert(text(name, source).to_owned());
                }
            }
            "import_statement" | "import_from_statement" => {
                let mut cursor = node.walk();
                for name in node.children_by_field_name("name", &mut cursor) {
                    let bound = if name.kind() == "aliased_import" {
                        name.child_by_field_name("alias")
                            .map(|a| text(a, source).to_owned())
                    } else {
                        text(name, source).split('.').next().map(str::to_owned)
                    };
                    names.extend(bound);
                }
            }
            _ => {}
        }
    }
    names
}

/// How long the container `expr` (touched by the statement `at`) lives.
pub fn lifetime(expr: Node<'_>, at: Node<'_>, source: &str, globals: &HashSet<String>) -> Lifetime {
    let Some(root) = root_name(expr, source) else {
        return Lifetime::Unknown;
    };
    let chained = expr.kind() != "identifier";
    let Some(function) = enclosing_function(at) else {
        let in_class = enclosing_class(at).is_some();
        return if in_class && !chained {
            Lifetime::ClassBody
        } else {
            Lifetime::Global
        };
    };
    let locals = Locals::of(function, source);
    if chained && (root == "self" || root == "cls") {
        return Lifetime::Instance;
    }
    if locals.globals.contains(root) {
        return Lifetime::Global;
    }
    if locals.nonlocals.contains(root) {
        return Lifetime::Closure;
    }
    if locals.params.contains(root) {
        return Lifetime::Param;
    }
    if locals.assigned.contains(root) {
        return Lifetime::Local;
    }
    for outer in ancestors(function).filter(|n| n.kind() == "function_definition") {
        let outer_locals = Locals::of(outer, source);
        if outer_locals.assigned.contains(root) || outer_locals.params.contains(root) {
            return Lifetime::Closure;
        }
    }
    if globals.contains(root) {
        Lifetime::Global
    } else {
        Lifetime::Unknown
    }
}
