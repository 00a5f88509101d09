//! The diff as Markdown: a verdict line per resource, then the leaking lines that changed.

use super::{Change, Observed, ReportDiff, ResourceDiff, SiteDiff};
use crate::humanize as human;
use crate::resource::PerSecond;
use std::fmt::Write as _;

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::NewLeak => "new leak",
            Change::Fixed => "fixed",
            Change::Worse => "worse",
            Change::Better => "better",
            Change::Unchanged => "unchanged",
        }
    }
}

// `write!` into a String cannot fail; its Result is ignored throughout.
pub fn render_markdown(diff: &ReportDiff) -> String {
    let mut out = String::from("## Leak Report Diff\n\n");
    let _ = writeln!(
        out,
        "**Old:** pid {}, `{}`, {}  ",
        diff.old.pid,
        cell(&diff.old.cmdline.join(" ")),
        diff.old.generated_at
    );
    let _ = writeln!(
        out,
        "**New:** pid {}, `{}`, {}  ",
        diff.new.pid,
        cell(&diff.new.cmdline.join(" ")),
        diff.new.generated_at
    );
    let s = &diff.summary;
    let _ = writeln!(
        out,
        "**Summary:** {} new leak(s), {} fixed, {} worse, {} better; {} new leaking line(s), {} \
         fixed line(s).\n",
        s.new_leaks, s.fixed_leaks, s.worse, s.better, s.new_leaking_lines, s.fixed_lines
    );
    out.push_str("| resource | change | old | new |\n| --- | --- | --- | --- |\n");
    for row in &diff.resources {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.resource,
            row.change.as_str(),
            observed(row, row.old),
            observed(row, row.new)
        );
    }
    for row in diff.resources.iter().filter(|r| !r.sites.is_empty()) {
        let _ = writeln!(out, "\n### {}: {}\n", row.resource, row.change.as_str());
        out.push_str("| line | function | change | old rate | new rate |\n");
        out.push_str("| --- | --- | --- | --- | --- |\n");
        for site in &row.sites {
            site_row(&mut out, row, site);
        }
    }
    out
}

fn observed(row: &ResourceDiff, side: Option<Observed>) -> String {
    match side {
        Some(o) => format!(
            "{} at {}",
            o.verdict.as_str(),
            human::per_second(row.resource.unit(), o.rate_per_second)
        ),
        None => "not observed".to_owned(),
    }
}

fn site_row(out: &mut String, row: &ResourceDiff, site: &SiteDiff) {
    let rate = |r: Option<PerSecond>| {
        r.map_or_else(
            || "-".to_owned(),
            |r| human::per_second(row.resource.unit(), r),
        )
    };
    let moved = site
        .old_line
        .map(|l| format!(" (was line {l})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "| `{}:{}`{moved} | `{}` | {} | {} | {} |",
        cell(&site.file),
        site.line,
        cell(&site.function),
        site.change.as_str(),
        rate(site.old_rate_per_second),
        rate(site.new_rate_per_second)
    );
}

/// Text for a table cell inside a code span: a `|` would end the cell, a backtick the span,
/// and a newline the row. Paths and names from reports are the target's, so anything goes.
fn cell(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '|' => '¦',
            '`' => '\'',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}
