//! Unbounded collection: a long-lived container (module global, class or `self.` attribute,
//! closure variable) that a repeated statement adds to and nothing ever takes from.

use super::{growths, in_constructor, quote, repeats, where_, Cx, Growth, Hit, Mode};
use crate::attribution::catalog::scope::{lifetime, Lifetime};
use crate::attribution::LeakType;
use tree_sitter::Node;

pub const PATTERN: &str = "unbounded-collection";

pub fn check(cx: &Cx<'_>, unit: Node<'_>, _mode: Mode) -> Option<Hit> {
    let source = cx.source;
    let mut best: Option<Hit> = None;
    for growth in growths(cx, unit) {
        let life = lifetime(growth.container, unit, source, &cx.facts.globals);
        let shrinks = cx.facts.shrinks(growth.container, source);
        let bounded = cx.facts.bounded(growth.container, source);
        let once_per_object = life == Lifetime::Instance && in_constructor(unit, source);
        let strong = life.long_lived() && !shrinks && !bounded && !once_per_object && repeats(unit);
        let hit = hit(cx, unit, &growth, life, shrinks || bounded, strong);
        if strong {
            return Some(hit);
        }
        best.get_or_insert(hit);
    }
    best
}

fn hit(
    cx: &Cx<'_>,
    unit: Node<'_>,
    growth: &Growth<'_>,
    life: Lifetime,
    evicted: bool,
    strong: bool,
) -> Hit {
    let source = cx.source;
    let name = quote(growth.container, source);
    let message = if evicted {
        format!(
            "`{name}{}` adds to `{name}` {}; something removes entries elsewhere, check that it keeps up",
            growth.how,
            where_(unit, source)
        )
    } else {
        format!(
            "`{name}{}` {} adds to `{name}`, {}, and nothing in the file pops, deletes or clears it",
            growth.how,
            where_(unit, source),
            life.describe()
        )
    };
    let fix = if growth.keyed {
        format!(
            "Bound `{name}`: delete entries when their work is done (`del {name}[key]` or \
             `{name}.pop(key, None)`), or cap it and evict the oldest when full:\n\
             \x20   if len({name}) >= MAX_ENTRIES:\n\
             \x20       {name}.pop(next(iter({name})))\n\
             \x20   {line}",
            line = quote(unit, source)
        )
    } else {
        format!(
            "Bound `{name}`: if only recent items matter, make it \
             `collections.deque(maxlen=10_000)` so old items fall off; otherwise drain it \
             (`{name}.clear()` after processing a batch), or keep the list local to the call \
             that uses it instead of {}.",
            life.describe()
        )
    };
    Hit {
        pattern: PATTERN,
        leak_type: LeakType::UnboundedCollection,
        message,
        fix,
        strong,
    }
}
