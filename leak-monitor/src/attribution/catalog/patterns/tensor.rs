//! Tensor accumulation: a loss or model output appended to a list or summed into a running
//! total while still attached to its autograd graph (no `.item()`, `.detach()`, `.cpu()`),
//! so every iteration's graph stays alive.

use super::{growths, in_constructor, quote, repeats, Cx, Hit, Mode};
use crate::attribution::catalog::scope::lifetime;
use crate::attribution::catalog::syntax::{
    enclosing_function, in_loop, key, own_descendants, text, Call,
};
use crate::attribution::LeakType;
use tree_sitter::Node;

pub const PATTERN: &str = "tensor-accumulation";

/// Calls that turn a tensor into a number or cut it from the graph.
const DETACHES: &[&str] = &["item", "detach", "cpu", "numpy", "tolist", "float", "int"];
/// Words in a callee that produce graph-attached tensors.
const PRODUCERS: &[&str] = &[
    "model",
    "criterion",
    "loss",
    "net",
    "forward",
    "layer",
    "encoder",
    "decoder",
];
/// Names that hold tensors by convention.
const TENSOR_NAMES: &[&str] = &[
    "loss",
    "logits",
    "output",
    "outputs",
    "pred",
    "preds",
    "prediction",
    "tensor",
    "activation",
    "hidden",
    "embedding",
    "y_hat",
];

pub fn check(cx: &Cx<'_>, unit: Node<'_>, mode: Mode) -> Option<Hit> {
    let source = cx.source;
    let (target, value, how) = accumulation(cx, unit)?;
    let (origin, proven) = tensor_origin(cx, unit, value, 0)?;
    let life = lifetime(target, unit, source, &cx.facts.globals);
    let accumulates = (life.long_lived() && !in_constructor(unit, source)) || in_loop(unit);
    // Without an ML framework (or a tensor with `grad_fn`) in sight, names prove nothing.
    let strong = proven && cx.facts.tensor_code && accumulates && repeats(unit);
    if !strong && mode == Mode::Scan {
        return None;
    }
    let t = quote(target, source);
    let v = quote(value, source);
    Some(Hit {
        pattern: PATTERN,
        leak_type: LeakType::TensorAccumulation,
        message: format!(
            "`{}` {how} `{v}` into `{t}`; `{v}` {origin} and still carries its autograd graph, so every step's graph (activations included) stays in memory",
            quote(unit, source)
        ),
        fix: if how == "adds" {
            format!("Accumulate a number, not the graph: `{t} += {v}.item()` (or `{v}.detach()` to keep a tensor).")
        } else {
            format!("Store a plain number: `{t}.append({v}.item())`, or `{v}.detach().cpu()` to keep the values as a tensor without the graph.")
        },
        strong,
    })
}

/// `c.append(v)` / `c.extend(v)` / `total += v`.
fn accumulation<'t>(cx: &Cx<'_>, unit: Node<'t>) -> Option<(Node<'t>, Node<'t>, &'static str)> {
    let source = cx.source;
    if let Some(growth) = growths(cx, unit)
        .into_iter()
        .find(|g| !g.keyed && g.value.is_some())
    {
        return Some((growth.container, growth.value?, "appends"));
    }
    let inner = unit.named_child(0)?;
    let op = inner.child_by_field_name("operator")?;
    if inner.kind() != "augmented_assignment" || text(op, source) != "+=" {
        return None;
    }
    Some((
        inner.child_by_field_name("left")?,
        inner.child_by_field_name("right")?,
        "adds",
    ))
}

/// Where a tensor value comes from, and whether that is proven (a model/criterion call)
/// rather than guessed from its name. None when it is detached or clearly not a tensor.
/// `depth` bounds the walk through definitions (`x = x + y` refers to itself).
fn tensor_origin(
    cx: &Cx<'_>,
    unit: Node<'_>,
    value: Node<'_>,
    depth: u8,
) -> Option<(String, bool)> {
    const MAX_DEPTH: u8 = 4;
    if depth > MAX_DEPTH {
        return None;
    }
    let source = cx.source;
    match value.kind() {
        "call" => {
            let call = Call::of(value, source)?;
            if DETACHES.contains(&call.method.as_str()) {
                return None;
            }
            producer(&call).then(|| ("comes straight from a model call".to_owned(), true))
        }
        "binary_operator" => {
            let left = value.child_by_field_name("left")?;
            let right = value.child_by_field_name("right")?;
            tensor_origin(cx, unit, left, depth + 1)
                .or_else(|| tensor_origin(cx, unit, right, depth + 1))
        }
        "identifier" => {
            let name = key(value, source);
            let lower = name.to_ascii_lowercase();
            let named = TENSOR_NAMES.contains(&lower.as_str()) || lower.contains("loss");
            match definition(cx, unit, &name) {
                Some(right) => match Call::of(right, source) {
                    Some(call) if DETACHES.contains(&call.method.as_str()) => None,
                    Some(call) if producer(&call) => {
                        Some((format!("is the result of `{}`", quote(right, source)), true))
                    }
                    _ if right.kind() == "binary_operator" => {
                        tensor_origin(cx, unit, right, depth + 1).map(|(o, p)| (o, p || named))
                    }
                    _ => named.then(|| ("is named like a tensor".to_owned(), false)),
                },
                None => named.then(|| ("is named like a tensor".to_owned(), false)),
            }
        }
        _ => None,
    }
}

/// A call whose callee has a model word as a whole name part: `model(x)`, `self.net(x)`,
/// `loss_fn(a, b)`, `model.forward(x)` (not `net.supernet()`).
fn producer(call: &Call<'_>) -> bool {
    let callee = call.callee.to_ascii_lowercase();
    let last = callee.rsplit('.').next().unwrap_or("");
    let parts: Vec<&str> = last.split('_').collect();
    let named = PRODUCERS.iter().any(|word| parts.contains(word));
    let forward = last == "forward";
    (named || forward) && !DETACHES.contains(&call.method.as_str())
}

/// The right-hand side of the last assignment to `name` before `unit` in its function.
fn definition<'t>(cx: &Cx<'_>, unit: Node<'t>, name: &str) -> Option<Node<'t>> {
    let scope = enclosing_function(unit)?;
    own_descendants(scope)
        .into_iter()
        .rfind(|n| {
            n.kind() == "assignment"
                && n.start_byte() < unit.start_byte()
                && n.child_by_field_name("left")
                    .is_some_and(|l| key(l, cx.source) == name)
        })
        .and_then(|n| n.child_by_field_name("right"))
}
