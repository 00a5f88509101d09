//! File-wide facts the patterns consult: module names, containers that are ever shrunk or
//! bounded, lists, unsubscribe calls, thread classes, and the loops that close or join.

use super::scope::module_names;
use super::syntax::{descendants, key, last_name, text, Call};
use std::collections::{HashMap, HashSet};
use tree_sitter::Node;

/// Methods that take entries out of a container.
const SHRINKS: &[&str] = &[
    "pop", "popitem", "clear", "remove", "discard", "popleft", "expire", "evict",
];
/// Constructors of containers that bound themselves.
const BOUNDED: &[&str] = &[
    "LRUCache",
    "TTLCache",
    "LFUCache",
    "MRUCache",
    "RRCache",
    "WeakValueDictionary",
    "WeakKeyDictionary",
    "WeakSet",
];
/// Methods that undo a registration.
pub const UNSUBSCRIBES: &[&str] = &[
    "disconnect",
    "unsubscribe",
    "remove_listener",
    "removeListener",
    "off",
    "remove_done_callback",
    "remove_handler",
    "removeHandler",
    "remove_callback",
    "unregister",
];

pub struct Facts {
    /// Names bound at module level.
    pub globals: HashSet<String>,
    /// Keys (and `.name` tails) of containers that something shrinks.
    shrunk: HashSet<String>,
    /// Keys of containers built bounded (`deque(maxlen=...)`, `LRUCache`, weak containers).
    bounded: HashSet<String>,
    /// Keys of names assigned a list.
    lists: HashSet<String>,
    /// (receiver key, argument keys) of every unsubscribe-style call.
    unsubscribes: Vec<(String, Vec<String>)>,
    /// Classes defined here that subclass `Thread`.
    pub thread_classes: HashSet<String>,
    /// Keys of containers iterated by a `for` loop that calls `.close()` on the loop variable.
    closed_loops: HashSet<String>,
    /// Same for `.join()`.
    joined_loops: HashSet<String>,
    /// How often each key is assigned, and the keys assigned an empty container outside a
    /// constructor: such an assignment empties the container only if it is not the only one.
    assignments: HashMap<String, usize>,
    resets: Vec<(String, Option<String>)>,
    /// The file uses an autograd framework (`torch`, `tensorflow`, `jax`) or tensors with a
    /// `grad_fn` / `.backward()`.
    pub tensor_code: bool,
}

/// Inserts a container key and, for attributes, its `.name` tail.
fn insert_key(set: &mut HashSet<String>, node: Node<'_>, source: &str) {
    set.insert(key(node, source));
    if node.kind() == "attribute" {
        set.insert(format!(".{}", last_name(node, source)));
    }
}

fn has_key(set: &HashSet<String>, node: Node<'_>, source: &str) -> bool {
    set.contains(&key(node, source))
        || (node.kind() == "attribute" && set.contains(&format!(".{}", last_name(node, source))))
}

impl Facts {
    pub fn collect(root: Node<'_>, source: &str) -> Facts {
        let mut facts = Facts {
            globals: module_names(root, source),
            shrunk: HashSet::new(),
            bounded: HashSet::new(),
            lists: HashSet::new(),
            unsubscribes: Vec::new(),
            thread_classes: HashSet::new(),
            closed_loops: HashSet::new(),
            joined_loops: HashSet::new(),
            assignments: HashMap::new(),
            resets: Vec::new(),
            tensor_code: false,
        };
        for node in descendants(root, |_| false) {
            if node.kind() == "identifier"
                && matches!(
                    text(node, source),
                    "torch" | "tensorflow" | "jax" | "grad_fn" | "backward" | "requires_grad"
                )
            {
                facts.tensor_code = true;
            }
            match node.kind() {
                "call" => facts.note_call(node, source),
                "delete_statement" => {
                    let mut cursor = node.walk();
                    let targets: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
                    for target in targets.iter().flat_map(|t| expand_list(*t)) {
                        let container = match target.kind() {
                            "subscript" => target.child_by_field_name("value"),
                            _ => Some(target),
                        };
                        if let Some(container) = container {
                            insert_key(&mut facts.shrunk, container, source);
                        }
                    }
                }
                "assignment" => facts.note_assignment(node, source),
                "class_definition" => {
                    let subclasses_thread =
                        node.child_by_field_name("superclasses")
                            .is_some_and(|supers| {
                                let mut cursor = supers.walk();
                                let found = supers
                                    .named_children(&mut cursor)
                                    .any(|s| last_name(s, source) == "Thread");
                                found
                            });
                    if subclasses_thread {
                        if let Some(name) = node.child_by_field_name("name") {
                            facts.thread_classes.insert(text(name, source).to_owned());
                        }
                    }
                }
                "for_statement" => facts.note_loop(node, source),
                _ => {}
            }
        }
        for (full, tail) in std::mem::take(&mut facts.resets) {
            if facts.assignments.get(&full).copied().unwrap_or(0) >= 2 {
                facts.shrunk.insert(full);
                facts.shrunk.extend(tail);
            }
        }
        facts
    }

    fn note_call(&mut self, node: Node<'_>, source: &str) {
        let Some(call) = Call::of(node, source) else {
            return;
        };
        let Some(receiver) = call.receiver else {
            return;
        };
        if SHRINKS.contains(&call.method.as_str()) {
            insert_key(&mut self.shrunk, receiver, source);
        }
        if UNSUBSCRIBES.contains(&call.method.as_str()) {
            let args = call.args.iter().map(|a| key(*a, source)).collect();
            self.unsubscribes.push((key(receiver, source), args));
        }
    }

    fn note_assignment(&mut self, node: Node<'_>, source: &str) {
        let (Some(left), Some(right)) = (
            node.child_by_field_name("left"),
            node.child_by_field_name("right"),
        ) else {
            return;
        };
        // `c[:] = ...` / `c[:n] = ...` rewrite the container in place.
        if left.kind() == "subscript"
            && left
                .child_by_field_name("subscript")
                .is_some_and(|s| s.kind() == "slice")
        {
            if let Some(container) = left.child_by_field_name("value") {
                insert_key(&mut self.shrunk, container, source);
            }
        }
        let in_init = super::syntax::enclosing_function(node)
            .map(|f| super::syntax::def_name(f, source))
            .is_some_and(|name| name == "__init__" || name == "__new__");
        let in_function = super::syntax::enclosing_function(node).is_some();
        match right.kind() {
            "list" | "list_comprehension" => {
                insert_key(&mut self.lists, left, source);
            }
            // `c = c[-n:]` keeps only the tail.
            "subscript"
                if right
                    .child_by_field_name("value")
                    .is_some_and(|v| key(v, source) == key(left, source)) =>
            {
                insert_key(&mut self.shrunk, left, source);
            }
            "call" => {
                if let Some(call) = Call::of(right, source) {
                    if call.method == "list" {
                        insert_key(&mut self.lists, left, source);
                    }
                    let bounded_deque = call.method == "deque"
                        && (call.args.len() >= 2
                            || call.kwarg("maxlen").is_some_and(|v| v.kind() != "none"));
                    if bounded_deque || BOUNDED.contains(&call.method.as_str()) {
                        insert_key(&mut self.bounded, left, source);
                    }
                }
            }
            _ => {}
        }
        // A reset outside construction (`self.cache = {}` in `reset()`) empties it, when it
        // is not the container's first and only assignment.
        *self.assignments.entry(key(left, source)).or_default() += 1;
        if in_function && !in_init && is_empty_container(right, source) {
            let tail =
                (left.kind() == "attribute").then(|| format!(".{}", last_name(left, source)));
            self.resets.push((key(left, source), tail));
        }
    }

    fn note_loop(&mut self, node: Node<'_>, source: &str) {
        let (Some(left), Some(right), Some(body)) = (
            node.child_by_field_name("left"),
            node.child_by_field_name("right"),
            node.child_by_field_name("body"),
        ) else {
            return;
        };
        // `for c in list(self.conns)` / `self.conns.values()` iterate the container too.
        let mut container = right;
        while let Some(call) = Call::of(container, source) {
            match (call.receiver, call.args.first()) {
                (Some(receiver), _) if matches!(call.method.as_str(), "values" | "copy") => {
                    container = receiver
                }
                (None, Some(arg)) if matches!(call.method.as_str(), "list" | "tuple") => {
                    container = *arg
                }
                _ => break,
            }
        }
        let var = key(left, source);
        for call in descendants(body, |_| false)
            .into_iter()
            .filter_map(|n| Call::of(n, source))
        {
            let on_var = call.receiver.is_some_and(|r| key(r, source) == var);
            if on_var && call.method == "close" {
                insert_key(&mut self.closed_loops, container, source);
            }
            if on_var && call.method == "join" {
                insert_key(&mut self.joined_loops, container, source);
            }
        }
    }

    pub fn shrinks(&self, container: Node<'_>, source: &str) -> bool {
        has_key(&self.shrunk, container, source)
    }

    pub fn bounded(&self, container: Node<'_>, source: &str) -> bool {
        has_key(&self.bounded, container, source)
    }

    pub fn is_list(&self, container: Node<'_>, source: &str) -> bool {
        has_key(&self.lists, container, source)
    }

    pub fn closed_in_loop(&self, container: Node<'_>, source: &str) -> bool {
        has_key(&self.closed_loops, container, source)
    }

    pub fn joined_in_loop(&self, container: Node<'_>, source: &str) -> bool {
        has_key(&self.joined_loops, container, source)
    }

    /// Whether some call undoes a registration on `receiver` or of `handler`.
    pub fn unsubscribed(&self, receiver: &str, handler: &str) -> bool {
        self.unsubscribes
            .iter()
            .any(|(r, args)| r == receiver || args.iter().any(|a| a == handler))
    }
}

fn expand_list(node: Node<'_>) -> Vec<Node<'_>> {
    if node.kind() == "expression_list" {
        let mut cursor = node.walk();
        node.named_children(&mut cursor).collect()
    } else {
        vec![node]
    }
}

fn is_empty_container(node: Node<'_>, source: &str) -> bool {
    match node.kind() {
        "list" | "dictionary" | "set" => node.named_child_count() == 0,
        "call" => Call::of(node, source).is_some_and(|c| {
            c.args.is_empty()
                && matches!(
                    c.method.as_str(),
                    "dict" | "list" | "set" | "OrderedDict" | "defaultdict"
                )
        }),
        _ => false,
    }
}
