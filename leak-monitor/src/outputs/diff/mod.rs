//! What changed between two leak reports of one program (before and after a deploy): per
//! resource, a leak that is new, fixed, worse or better; per source line, the leaking lines that
//! are new, gone, or grow faster or slower. Pure: two `Report`s in, a `ReportDiff` out, rendered
//! as JSON (schema `leak-monitor/diff/v1`) or Markdown (`markdown`).
//!
//! Rates are compared, not amounts: two observations of different lengths attribute different
//! totals to the same steady leak. Sites are matched by file and line, then by file and function
//! for what is left, since an edit above a leaking line moves it.

mod markdown;
mod releases;

pub use markdown::render_markdown;
pub use releases::{releases, Release};

use crate::detection::Verdict;
use crate::outputs::report::{Report, ResourceReport, SiteReport};
use crate::resource::{PerSecond, Resource, Seconds};
use serde::Serialize;

/// The value of the diff's `schema` field.
pub const SCHEMA: &str = "leak-monitor/diff/v1";

/// A rate counts as changed when the new one is this far from the old, either way: the
/// detectors' own rate estimates move by a few percent between runs of the same code.
pub const RATE_CHANGE: f64 = 0.25;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportDiff {
    pub schema: &'static str,
    pub old: Side,
    pub new: Side,
    /// Every resource of either report, new leaks first, then fixed, worse, better, unchanged.
    pub resources: Vec<ResourceDiff>,
    pub summary: Summary,
}

/// Which report a side of the diff is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Side {
    pub pid: i32,
    pub cmdline: Vec<String>,
    pub generated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Leaking now, not before (or a site that did not leak before).
    NewLeak,
    /// Leaking before, not now.
    Fixed,
    /// Leaking in both, faster now.
    Worse,
    /// Leaking in both, slower now.
    Better,
    Unchanged,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResourceDiff {
    pub resource: Resource,
    pub change: Change,
    /// Absent when the report did not observe this resource.
    pub old: Option<Observed>,
    pub new: Option<Observed>,
    /// Sites in either report, in the order of `change`, then largest new rate first.
    pub sites: Vec<SiteDiff>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Observed {
    pub verdict: Verdict,
    pub rate_per_second: PerSecond,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SiteDiff {
    pub file: String,
    /// The line in the new report (the old one's when the site is gone).
    pub line: u32,
    /// The line in the old report, when it moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_line: Option<u32>,
    pub function: String,
    pub change: Change,
    /// The site's share of the resource's growth per second of observation; absent on the side
    /// where it was not found.
    pub old_rate_per_second: Option<PerSecond>,
    pub new_rate_per_second: Option<PerSecond>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub new_leaks: usize,
    pub fixed_leaks: usize,
    pub worse: usize,
    pub better: usize,
    /// Leaking lines in the new report that no leaking line of the old one matches.
    pub new_leaking_lines: usize,
    /// Leaking lines of the old report that no longer leak.
    pub fixed_lines: usize,
}

/// Compares `old` with `new`.
pub fn diff(old: &Report, new: &Report) -> ReportDiff {
    let mut resources: Vec<Resource> = old
        .resources
        .iter()
        .chain(&new.resources)
        .map(|r| r.resource)
        .collect();
    resources.sort();
    resources.dedup();
    let mut rows: Vec<ResourceDiff> = resources
        .into_iter()
        .map(|resource| {
            let find = |report: &'_ Report| -> Option<(ResourceReport, Seconds)> {
                let found = report.resources.iter().find(|r| r.resource == resource)?;
                Some((found.clone(), report.observation.duration_seconds))
            };
            diff_resource(resource, find(old).as_ref(), find(new).as_ref())
        })
        .collect();
    rows.sort_by_key(|r| r.change);
    let mut summary = Summary::default();
    for row in &rows {
        match row.change {
            Change::NewLeak => summary.new_leaks += 1,
            Change::Fixed => summary.fixed_leaks += 1,
            Change::Worse => summary.worse += 1,
            Change::Better => summary.better += 1,
            Change::Unchanged => {}
        }
        for site in &row.sites {
            match site.change {
                Change::NewLeak => summary.new_leaking_lines += 1,
                Change::Fixed => summary.fixed_lines += 1,
                _ => {}
            }
        }
    }
    ReportDiff {
        schema: SCHEMA,
        old: side(old),
        new: side(new),
        resources: rows,
        summary,
    }
}

fn side(report: &Report) -> Side {
    Side {
        pid: report.target.pid,
        cmdline: report.target.cmdline.clone(),
        generated_at: report.generated_at.to_string(),
        identity: report.target.identity.clone(),
    }
}

fn is_leak(resource: Option<&(ResourceReport, Seconds)>) -> bool {
    resource.is_some_and(|(r, _)| r.verdict == Verdict::Leak)
}

fn diff_resource(
    resource: Resource,
    old: Option<&(ResourceReport, Seconds)>,
    new: Option<&(ResourceReport, Seconds)>,
) -> ResourceDiff {
    let observed = |side: Option<&(ResourceReport, Seconds)>| {
        side.map(|(r, _)| Observed {
            verdict: r.verdict,
            rate_per_second: r.rate_per_second,
        })
    };
    let change = match (is_leak(old), is_leak(new)) {
        (false, true) => Change::NewLeak,
        (true, false) => Change::Fixed,
        (true, true) => {
            let rate = |side: Option<&(ResourceReport, Seconds)>| {
                side.map_or(PerSecond::ZERO, |(r, _)| r.rate_per_second)
            };
            compare_rates(rate(old), rate(new))
        }
        (false, false) => Change::Unchanged,
    };
    // Sites count as leaking only where their resource leaks: a `growing` resource's sites are
    // leads, not leaks.
    let sites_of = |side: Option<&(ResourceReport, Seconds)>| -> Vec<(SiteReport, PerSecond)> {
        match side {
            Some((r, seconds)) if r.verdict == Verdict::Leak => r
                .sites
                .iter()
                .map(|s| (s.clone(), per_second(s.amount.0, *seconds)))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut sites = diff_sites(sites_of(old), sites_of(new));
    sites.sort_by(|a, b| {
        a.change.cmp(&b.change).then(
            b.new_rate_per_second
                .unwrap_or(PerSecond::ZERO)
                .0
                .total_cmp(&a.new_rate_per_second.unwrap_or(PerSecond::ZERO).0),
        )
    });
    ResourceDiff {
        resource,
        change,
        old: observed(old),
        new: observed(new),
        sites,
    }
}

/// A site's growth over the observation as a rate (0 for an observation of no length).
fn per_second(amount: f64, observed: Seconds) -> PerSecond {
    if observed.0 > 0.0 {
        PerSecond(amount / observed.0)
    } else {
        PerSecond::ZERO
    }
}

fn compare_rates(old: PerSecond, new: PerSecond) -> Change {
    let (old, new) = (old.0, new.0);
    let scale = old.abs().max(f64::MIN_POSITIVE);
    let relative = (new - old) / scale;
    if relative > RATE_CHANGE {
        Change::Worse
    } else if relative < -RATE_CHANGE {
        Change::Better
    } else {
        Change::Unchanged
    }
}

/// Pairs sites by (file, line), then the rest by (file, function); unpaired old sites are
/// fixed, unpaired new ones new.
fn diff_sites(
    old: Vec<(SiteReport, PerSecond)>,
    new: Vec<(SiteReport, PerSecond)>,
) -> Vec<SiteDiff> {
    let mut old: Vec<Option<(SiteReport, PerSecond)>> = old.into_iter().map(Some).collect();
    let mut out = Vec::new();
    let mut unpaired_new = Vec::new();
    for (site, rate) in new {
        let exact = old.iter().position(|o| {
            o.as_ref()
                .is_some_and(|(s, _)| s.file == site.file && s.line == site.line)
        });
        match exact.and_then(|i| old[i].take()) {
            Some((was, old_rate)) => out.push(paired(&was, old_rate, site, rate)),
            None => unpaired_new.push((site, rate)),
        }
    }
    for (site, rate) in unpaired_new {
        let moved = old.iter().position(|o| {
            o.as_ref()
                .is_some_and(|(s, _)| s.file == site.file && s.function == site.function)
        });
        match moved.and_then(|i| old[i].take()) {
            Some((was, old_rate)) => out.push(paired(&was, old_rate, site, rate)),
            None => out.push(SiteDiff {
                file: site.file,
                line: site.line,
                old_line: None,
                function: site.function,
                change: Change::NewLeak,
                old_rate_per_second: None,
                new_rate_per_second: Some(rate),
            }),
        }
    }
    for (site, rate) in old.into_iter().flatten() {
        out.push(SiteDiff {
            file: site.file,
            line: site.line,
            old_line: None,
            function: site.function,
            change: Change::Fixed,
            old_rate_per_second: Some(rate),
            new_rate_per_second: None,
        });
    }
    out
}

fn paired(old: &SiteReport, old_rate: PerSecond, new: SiteReport, new_rate: PerSecond) -> SiteDiff {
    SiteDiff {
        old_line: (old.line != new.line).then_some(old.line),
        file: new.file,
        line: new.line,
        function: new.function,
        change: compare_rates(old_rate, new_rate),
        old_rate_per_second: Some(old_rate),
        new_rate_per_second: Some(new_rate),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests;
