//! The pattern catalog: known Python leak patterns, recognised on the syntax tree of the
//! target's own source (tree-sitter, so broken files are still read as far as they parse).
//!
//! `explain` judges one line where the runtime saw a resource grow, using the resource as a
//! hint; `scan` audits a whole file statically. Each pattern lives in `patterns/` and yields
//! a message and a fix that quote the names on that line.

mod evidence;
mod facts;
mod fill;
mod flow;
mod patterns;
mod scope;
mod syntax;
#[cfg(test)]
mod tests;

use crate::attribution::LeakType;
use crate::resource::Resource;
use patterns::{Cx, Hit, Mode};
use std::collections::BTreeMap;

pub use evidence::evidence;
pub use fill::{fill_lines, method_calls, FillLine};
pub use flow::{locate, locate_in_resting_loop, Located};

/// Why a line leaks and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub leak_type: LeakType,
    /// The source lines around the site, the site line marked with `>`.
    pub evidence: String,
    /// The leak-free version, written for the names on that line.
    pub fix: String,
    /// Short pattern id (`unbounded-cache`, ..., `unknown`).
    pub pattern: &'static str,
}

/// One static finding of `scan`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub line: u32,
    pub pattern: &'static str,
    pub leak_type: LeakType,
    pub message: String,
}

/// The pattern id for lines that match no pattern.
pub const UNKNOWN: &str = "unknown";

/// Explains the growth of `resource` seen at `line` (1-based) of `source`.
pub fn explain(source: &str, line: u32, resource: Resource) -> Explanation {
    match best_hit(source, line, resource) {
        Some(hit) => explanation_of(source, line, hit),
        None => Explanation {
            leak_type: LeakType::Unknown,
            evidence: evidence(source, line),
            fix: format!(
                "No known leak pattern at this line; {} grew while it ran. Look for what this \
                 line keeps alive beyond the call (containers it adds to, objects it stores on \
                 long-lived state, handles it does not close), and compare snapshots \
                 (`tracemalloc` for memory, `ls -l /proc/PID/fd` for descriptors) taken a \
                 minute apart.",
                resource_words(resource)
            ),
            pattern: UNKNOWN,
        },
    }
}

/// The first line (1-based) where `source` does not parse as Python, if any: `scan` still
/// reads the rest, and `audit` says where its reading may be off.
pub fn first_syntax_error(source: &str) -> Option<u32> {
    let tree = syntax::parse(source)?;
    let root = tree.root_node();
    if !root.has_error() {
        return None;
    }
    syntax::descendants(root, |n| !n.has_error())
        .into_iter()
        .filter_map(|n| {
            if n.is_missing() {
                return Some(syntax::line_of(n));
            }
            // An ERROR node may open with the well-formed statements it swallowed (a whole
            // module's, from line 1): the error starts at its first child that is not one.
            let mut cursor = n.walk();
            let first_bad = n.children(&mut cursor).find(|child| {
                child.has_error()
                    || !(child.kind().ends_with("statement")
                        || child.kind().ends_with("definition"))
            });
            n.is_error()
                .then(|| syntax::line_of(first_bad.unwrap_or(n)))
        })
        .min()
}

/// Statically audits a whole file: every statement that matches a pattern, one finding per
/// line (the most specific pattern), sorted by line.
pub fn scan(source: &str) -> Vec<Finding> {
    let Some(tree) = syntax::parse(source) else {
        return Vec::new();
    };
    let root = tree.root_node();
    let cx = Cx {
        source,
        facts: facts::Facts::collect(root, source),
    };
    let mut by_line: BTreeMap<u32, Finding> = BTreeMap::new();
    for unit in syntax::descendants(root, |_| false)
        .into_iter()
        .filter(|n| syntax::is_unit(*n))
    {
        let line = syntax::line_of(unit);
        if by_line.contains_key(&line) {
            continue;
        }
        if let Some(hit) = patterns::check(&cx, unit, Mode::Scan)
            .into_iter()
            .find(|h| h.strong)
        {
            by_line.insert(
                line,
                Finding {
                    line,
                    pattern: hit.pattern,
                    leak_type: hit.leak_type,
                    message: hit.message,
                },
            );
        }
    }
    by_line.into_values().collect()
}

/// The hit at `line` that best explains growth of `resource`: one whose leak type fits the
/// resource first, then a strong one. A weak hit of a type that does not fit is dropped.
fn best_hit(source: &str, line: u32, resource: Resource) -> Option<Hit> {
    let tree = syntax::parse(source)?;
    let root = tree.root_node();
    let unit = syntax::unit_at_line(&tree, source, line)?;
    let cx = Cx {
        source,
        facts: facts::Facts::collect(root, source),
    };
    ranked(patterns::check(&cx, unit, Mode::Explain), resource).map(|(_, hit)| hit)
}

/// The explanation of `hit`, found at `line`, with the evidence around that line.
fn explanation_of(source: &str, line: u32, hit: Hit) -> Explanation {
    Explanation {
        leak_type: hit.leak_type,
        evidence: evidence(source, line),
        fix: hit.fix,
        pattern: hit.pattern,
    }
}

/// The best of `hits` for `resource` with its score (2 if the type fits, +1 if strong).
fn ranked(hits: Vec<Hit>, resource: Resource) -> Option<(u8, Hit)> {
    // Stable: among equal scores the most specific pattern (first) wins.
    let mut scored: Vec<(u8, Hit)> = hits
        .into_iter()
        .map(|hit| {
            let fits = hit.leak_type.keeps(resource);
            (u8::from(fits) * 2 + u8::from(hit.strong), hit)
        })
        .filter(|(score, _)| *score > 0)
        .collect();
    scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    scored.into_iter().next()
}

fn resource_words(resource: Resource) -> &'static str {
    match resource {
        Resource::RssBytes => "resident memory",
        Resource::OpenFds => "the open file descriptors",
        Resource::Sockets => "the open sockets",
        Resource::Threads => "the thread count",
    }
}

/// The pattern ids the catalog can report, for docs and tests.
pub const PATTERNS: [&str; 7] = [
    "unbounded-collection",
    "unbounded-cache",
    "circular-reference",
    "event-handler",
    "resource-not-closed",
    "tensor-accumulation",
    "thread-not-joined",
];
