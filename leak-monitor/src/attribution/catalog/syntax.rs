//! Thin helpers over the tree-sitter Python syntax tree: parsing, node text, finding the
//! statement at a line, walking without recursion, and taking calls apart.

use tree_sitter::{Node, Parser, Point, Tree};

/// Parses Python source. tree-sitter recovers from syntax errors, so a broken file still
/// yields a tree with ERROR nodes; `None` only if the parser itself cannot run.
pub fn parse(source: &str) -> Option<Tree> {
    let mut parser = Parser::new();
    parser
        .set_language(&tree_sitter_python::LANGUAGE.into())
        .ok()?;
    parser.parse(source, None)
}

/// The source text of a node ("" if it is not valid UTF-8, which `&str` input rules out).
pub fn text<'s>(node: Node<'_>, source: &'s str) -> &'s str {
    node.utf8_text(source.as_bytes()).unwrap_or("")
}

/// Node text with all whitespace removed, so `self . x` and `self.x` compare equal.
pub fn key(node: Node<'_>, source: &str) -> String {
    text(node, source)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect()
}

/// 1-based line of a node's first character.
pub fn line_of(node: Node<'_>) -> u32 {
    u32::try_from(node.start_position().row)
        .unwrap_or(u32::MAX - 1)
        .saturating_add(1)
}

/// Every descendant of `node` (itself included), depth first, without recursion. `prune`
/// stops the descent below a node (the node itself is still yielded).
pub fn descendants<'t>(node: Node<'t>, prune: impl Fn(Node<'t>) -> bool) -> Vec<Node<'t>> {
    let mut out = Vec::new();
    let mut stack = vec![node];
    while let Some(current) = stack.pop() {
        out.push(current);
        if current != node && prune(current) {
            continue;
        }
        let mut cursor = current.walk();
        let children: Vec<Node<'t>> = current.children(&mut cursor).collect();
        stack.extend(children.into_iter().rev());
    }
    out
}

/// Nested scopes, whose bodies belong to someone else.
pub fn is_scope(node: Node<'_>) -> bool {
    matches!(
        node.kind(),
        "function_definition" | "class_definition" | "lambda"
    )
}

/// Descendants of `node` that belong to its own scope (nested defs, classes and lambdas
/// are yielded but not entered).
pub fn own_descendants(node: Node<'_>) -> Vec<Node<'_>> {
    descendants(node, is_scope)
}

/// The statements the catalog judges: simple statements and decorators.
pub fn is_unit(node: Node<'_>) -> bool {
    matches!(
        node.kind(),
        "expression_statement" | "return_statement" | "decorator" | "with_clause"
    )
}

/// The innermost unit covering a 1-based line, if any.
pub fn unit_at_line<'t>(tree: &'t Tree, source: &str, line: u32) -> Option<Node<'t>> {
    let row = usize::try_from(line.checked_sub(1)?).ok()?;
    let text_line = source.lines().nth(row)?;
    // The token at the line's first character: a trailing comment must not widen the range.
    let indent = text_line.len() - text_line.trim_start().len();
    let start = Point::new(row, indent);
    let mut node = tree.root_node().descendant_for_point_range(start, start)?;
    loop {
        if is_unit(node) {
            return Some(node);
        }
        // A `with` header line: its items are judged like a statement.
        if node.kind() == "with_statement" && node.start_position().row == row {
            let mut cursor = node.walk();
            let clause = node
                .named_children(&mut cursor)
                .find(|n| n.kind() == "with_clause");
            return clause;
        }
        node = node.parent()?;
    }
}

/// The innermost function definition enclosing `node` (not `node` itself).
pub fn enclosing_function(node: Node<'_>) -> Option<Node<'_>> {
    ancestors(node).find(|n| n.kind() == "function_definition")
}

/// The innermost class definition enclosing `node`.
pub fn enclosing_class(node: Node<'_>) -> Option<Node<'_>> {
    ancestors(node).find(|n| n.kind() == "class_definition")
}

/// Parents of `node`, innermost first.
pub fn ancestors(node: Node<'_>) -> impl Iterator<Item = Node<'_>> {
    std::iter::successors(node.parent(), |n| n.parent())
}

/// Whether `node` sits inside a `for`/`while` loop of its own scope.
pub fn in_loop(node: Node<'_>) -> bool {
    for ancestor in ancestors(node) {
        match ancestor.kind() {
            "for_statement" | "while_statement" => return true,
            kind if is_scope_kind(kind) => return false,
            _ => {}
        }
    }
    false
}

fn is_scope_kind(kind: &str) -> bool {
    matches!(kind, "function_definition" | "class_definition" | "lambda")
}

/// The name of a function or class definition.
pub fn def_name<'s>(def: Node<'_>, source: &'s str) -> &'s str {
    def.child_by_field_name("name")
        .map(|n| text(n, source))
        .unwrap_or("")
}

/// A call taken apart: `recv.method(args)` or `name(args)`.
pub struct Call<'t> {
    pub node: Node<'t>,
    /// The whole callee, whitespace removed: `threading.Thread`, `self.items.append`.
    pub callee: String,
    /// The object a method is called on (`self.items` in `self.items.append(x)`).
    pub receiver: Option<Node<'t>>,
    /// The last name of the callee (`append`, `Thread`, `open`).
    pub method: String,
    pub args: Vec<Node<'t>>,
    pub kwargs: Vec<(String, Node<'t>)>,
}

impl<'t> Call<'t> {
    pub fn of(node: Node<'t>, source: &str) -> Option<Call<'t>> {
        if node.kind() != "call" {
            return None;
        }
        let function = node.child_by_field_name("function")?;
        let (receiver, method) = match function.kind() {
            "attribute" => (
                function.child_by_field_name("object"),
                function
                    .child_by_field_name("attribute")
                    .map(|n| text(n, source).to_owned())
                    .unwrap_or_default(),
            ),
            "identifier" => (None, text(function, source).to_owned()),
            _ => (None, String::new()),
        };
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        if let Some(list) = node.child_by_field_name("arguments") {
            let mut cursor = list.walk();
            for arg in list.named_children(&mut cursor) {
                if arg.kind() == "keyword_argument" {
                    if let (Some(name), Some(value)) = (
                        arg.child_by_field_name("name"),
                        arg.child_by_field_name("value"),
                    ) {
                        kwargs.push((text(name, source).to_owned(), value));
                    }
                } else if arg.kind() != "comment" {
                    args.push(arg);
                }
            }
        }
        Some(Call {
            node,
            callee: key(function, source),
            receiver,
            method,
            args,
            kwargs,
        })
    }

    pub fn kwarg(&self, name: &str) -> Option<Node<'t>> {
        self.kwargs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    }
}

/// Every call in `node`'s own scope.
pub fn calls<'t>(node: Node<'t>, source: &str) -> Vec<Call<'t>> {
    own_descendants(node)
        .into_iter()
        .filter_map(|n| Call::of(n, source))
        .collect()
}

/// The leftmost name of an expression: `self` in `self.a.b[c]`, `CACHE` in `CACHE[k]`.
pub fn root_name<'s>(mut node: Node<'_>, source: &'s str) -> Option<&'s str> {
    loop {
        match node.kind() {
            "identifier" => return Some(text(node, source)),
            "attribute" => node = node.child_by_field_name("object")?,
            "subscript" => node = node.child_by_field_name("value")?,
            "call" => node = node.child_by_field_name("function")?,
            "parenthesized_expression" => node = node.named_child(0)?,
            _ => return None,
        }
    }
}

/// The last name of an attribute chain (`_rendered` in `self._rendered`), or the identifier.
pub fn last_name<'s>(node: Node<'_>, source: &'s str) -> &'s str {
    match node.kind() {
        "attribute" => node
            .child_by_field_name("attribute")
            .map(|n| text(n, source))
            .unwrap_or(""),
        "subscript" => node
            .child_by_field_name("value")
            .map(|n| last_name(n, source))
            .unwrap_or(""),
        _ => text(node, source),
    }
}

/// The identifiers bound by an assignment target (`a`, `a, b`, `(a, [b, c])`).
pub fn bound_names<'t>(target: Node<'t>) -> Vec<Node<'t>> {
    match target.kind() {
        "identifier" => vec![target],
        "pattern_list"
        | "tuple_pattern"
        | "list_pattern"
        | "expression_list"
        | "tuple"
        | "list"
        | "parenthesized_expression"
        | "list_splat_pattern" => {
            let mut cursor = target.walk();
            let children: Vec<Node<'t>> = target.named_children(&mut cursor).collect();
            children.into_iter().flat_map(bound_names).collect()
        }
        _ => Vec::new(),
    }
}

/// The expression statement's assignment, if it is one.
pub fn assignment_in(unit: Node<'_>) -> Option<Node<'_>> {
    let inner = unit.named_child(0)?;
    (inner.kind() == "assignment").then_some(inner)
}
