//! Unbounded cache: `@functools.cache` / `@lru_cache(maxsize=None)`, or a long-lived dict
//! used as a cache (named cache/memo/seen, or read-then-written memoization) that is never
//! evicted. A bounded `@lru_cache(maxsize=128)` is fine.

use super::{growths, quote, repeats, where_, Cx, Growth, Hit, Mode};
use crate::attribution::catalog::scope::lifetime;
use crate::attribution::catalog::syntax::{
    ancestors, calls, def_name, enclosing_function, key, own_descendants, text, Call,
};
use crate::attribution::LeakType;
use tree_sitter::Node;

pub const PATTERN: &str = "unbounded-cache";

pub fn check(cx: &Cx<'_>, unit: Node<'_>, mode: Mode) -> Option<Hit> {
    if unit.kind() == "decorator" {
        return decorator(cx, unit);
    }
    for growth in growths(cx, unit) {
        if let Some(hit) = dict_cache(cx, unit, &growth) {
            return Some(hit);
        }
    }
    if mode == Mode::Explain {
        // A line in the body of an unbounded memoized function: the cache is the decorator.
        let function = enclosing_function(unit)?;
        let decorated = function
            .parent()
            .filter(|p| p.kind() == "decorated_definition")?;
        let mut cursor = decorated.walk();
        let decorators: Vec<Node<'_>> = decorated
            .named_children(&mut cursor)
            .filter(|n| n.kind() == "decorator")
            .collect();
        return decorators.into_iter().find_map(|d| decorator(cx, d));
    }
    None
}

/// `@cache`, `@functools.cache`, `@lru_cache(None)`, `@lru_cache(maxsize=None)`.
fn decorator(cx: &Cx<'_>, unit: Node<'_>) -> Option<Hit> {
    let source = cx.source;
    let expr = unit.named_child(0)?;
    let unbounded = match expr.kind() {
        "identifier" | "attribute" => {
            let name = key(expr, source);
            name == "cache" || name == "functools.cache"
        }
        "call" => {
            let call = Call::of(expr, source)?;
            call.method == "lru_cache"
                && call
                    .kwarg("maxsize")
                    .or_else(|| call.args.first().copied())
                    .is_some_and(|size| size.kind() == "none")
        }
        _ => false,
    };
    if !unbounded {
        return None;
    }
    let function = ancestors(unit)
        .find(|n| n.kind() == "decorated_definition")?
        .child_by_field_name("definition")?;
    let name = def_name(function, source);
    let deco = quote(expr, source);
    let method = function
        .child_by_field_name("parameters")
        .and_then(|p| p.named_child(0))
        .is_some_and(|p| text(p, source) == "self");
    let method_note = if method {
        " As a method it also keeps every `self` it was called on alive."
    } else {
        ""
    };
    Some(Hit {
        pattern: PATTERN,
        leak_type: LeakType::UnboundedCache,
        message: format!(
            "`@{deco}` memoizes `{name}` without a size limit: every distinct argument tuple and \
             its result stay cached for the life of the process.{method_note}"
        ),
        fix: format!(
            "Bound the cache: `@functools.lru_cache(maxsize=1024)` on `{name}` evicts the least \
             recently used entries; if results may go stale use a TTL cache \
             (`cachetools.TTLCache`), or call `{name}.cache_clear()` when the inputs change."
        ),
        strong: true,
    })
}

/// A dict used as a cache, never evicted.
fn dict_cache(cx: &Cx<'_>, unit: Node<'_>, growth: &Growth<'_>) -> Option<Hit> {
    let source = cx.source;
    let name = quote(growth.container, source);
    let tail = crate::attribution::catalog::syntax::last_name(growth.container, source)
        .to_ascii_lowercase();
    let cache_named = ["cache", "memo", "seen"].iter().any(|w| tail.contains(w));
    let memoizes = growth.keyed && reads_before_write(cx, unit, growth.container);
    if !(cache_named || memoizes) || !(growth.keyed || growth.how == ".add(...)") {
        return None;
    }
    let life = lifetime(growth.container, unit, source, &cx.facts.globals);
    let evicted =
        cx.facts.shrinks(growth.container, source) || cx.facts.bounded(growth.container, source);
    let strong = life.long_lived() && !evicted && repeats(unit);
    if !strong && !life.long_lived() {
        return None;
    }
    let why = if memoizes {
        "is read and then written like a memo table"
    } else {
        "is named like a cache"
    };
    Some(Hit {
        pattern: PATTERN,
        leak_type: LeakType::UnboundedCache,
        message: if evicted {
            format!(
                "`{name}` {why} and gets a new entry {}; entries are evicted somewhere, check that eviction keeps up",
                where_(unit, source)
            )
        } else {
            format!(
                "`{name}` {why} and gets a new entry {} for every new key, but nothing in the file ever evicts one (no pop, del, clear or size limit)",
                where_(unit, source)
            )
        },
        fix: format!(
            "Bound `{name}`: replace the dict with `cachetools.LRUCache(maxsize=1024)` (or \
             `cachetools.TTLCache(maxsize=1024, ttl=300)` when entries go stale), or evict old \
             keys yourself (`{name}.pop(oldest_key)` once it holds more than a fixed number); \
             for a pure function, `@functools.lru_cache(maxsize=1024)` does both."
        ),
        strong,
    })
}

/// Whether the enclosing function reads `container` (`k in c`, `c.get(k)`, `c[k]`) before the
/// write at `unit`: get-then-set memoization.
fn reads_before_write(cx: &Cx<'_>, unit: Node<'_>, container: Node<'_>) -> bool {
    let source = cx.source;
    let Some(function) = enclosing_function(unit) else {
        return false;
    };
    let wanted = key(container, source);
    let before = |n: Node<'_>| n.start_byte() < unit.start_byte();
    let get = calls(function, source).into_iter().any(|call| {
        before(call.node)
            && call.method == "get"
            && call.receiver.is_some_and(|r| key(r, source) == wanted)
    });
    get || own_descendants(function).into_iter().any(|n| {
        before(n)
            && n.kind() == "comparison_operator"
            && n.child(1)
                .is_some_and(|op| matches!(op.kind(), "in" | "not in"))
            && n.named_child(1).is_some_and(|c| key(c, source) == wanted)
    })
}
