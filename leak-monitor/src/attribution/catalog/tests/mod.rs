//! Unit tests of the catalog on small Python sources: one leaking snippet per pattern and a
//! near miss for each that must not be reported.

mod explain;
mod flow;
mod scan;

use super::{scan, Finding};

/// Patterns found, as (line, pattern).
fn found(source: &str) -> Vec<(u32, &'static str)> {
    scan(source)
        .into_iter()
        .map(|Finding { line, pattern, .. }| (line, pattern))
        .collect()
}
