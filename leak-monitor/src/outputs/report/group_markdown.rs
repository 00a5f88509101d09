//! The group report in Markdown, written beside the JSON one: the pool's verdict per resource
//! with its one-line summary, the growth of a worker over its life, restarts a minute, the
//! growth per request where requests are counted, the leaking lines merged across workers, and
//! the members' lifetimes.

use super::group::{GroupReport, GroupResourceReport};
use crate::detection::Verdict;
use crate::humanize as human;
use crate::resource::Resource;
use std::fmt::Write as _;

/// Members listed in the lifetimes table: the latest.
const MEMBER_ROWS: usize = 20;
/// Lines listed per resource.
const SITE_ROWS: usize = 5;

pub fn render_group_markdown(report: &GroupReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Group Leak Report: {}", report.group);
    let _ = writeln!(
        out,
        "\nGroup `{}` ({}), {} members seen, {} recycled; generated {}.",
        report.group,
        match report.source.as_str() {
            "match" => "named by `--match`",
            "parent" => "a master and the workers it forked",
            _ => "processes of one name",
        },
        report.members.len(),
        report.recycles_total,
        report.generated_at
    );
    out.push_str("\n| resource | verdict | growth per worker life | worker lifetime (median) | restarts/min | per request |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for r in &report.resources {
        let unit = r.report.resource.unit();
        let _ = writeln!(
            out,
            "| {} | {}{} | {} | {} | {:.1} | {} |",
            r.report.resource,
            r.report.verdict.as_str(),
            if r.masked_by_recycling {
                " (masked by recycling)"
            } else {
                ""
            },
            human::amount(unit, r.per_worker_growth),
            r.median_lifetime_seconds
                .map_or("-".to_string(), human::duration),
            r.recycles_per_minute,
            per_request(r).unwrap_or_else(|| "-".to_string()),
        );
    }
    for r in report
        .resources
        .iter()
        .filter(|r| r.report.verdict != Verdict::Stable)
    {
        resource_section(&mut out, r);
    }
    members_section(&mut out, report);
    out
}

/// `20.0 KiB per request`, when requests were counted.
fn per_request(r: &GroupResourceReport) -> Option<String> {
    let per = r.report.per_event.as_ref()?;
    Some(format!(
        "{} per {}",
        human::amount(r.report.resource.unit(), per.amount),
        per.event
    ))
}

fn resource_section(out: &mut String, r: &GroupResourceReport) {
    let unit = r.report.resource.unit();
    let _ = writeln!(
        out,
        "\n### {}: {}",
        r.report.resource,
        r.report.verdict.as_str()
    );
    let _ = writeln!(out, "\n{}", r.summary);
    let _ = writeln!(
        out,
        "\n- Each worker grows {} over its life ({}/s while it lives); {} of {} judged workers grew.",
        human::amount(unit, r.per_worker_growth),
        human::amount(unit, r.report.rate_per_second.0),
        r.members_grown,
        r.members_judged
    );
    if let Some(requests) = r.requests_per_worker {
        let _ = writeln!(
            out,
            "- A worker serves ~{requests:.0} requests before it is recycled."
        );
    }
    if let Some(per) = per_request(r) {
        let _ = writeln!(out, "- Impact: {per}.");
    }
    let _ = writeln!(
        out,
        "- Group total: {} -> {}.",
        human::amount(unit, r.report.first),
        human::amount(unit, r.report.last)
    );
    if r.report.sites.is_empty() {
        out.push_str("\nNo line attributed yet (the workers' attribution needs their stacks).\n");
        return;
    }
    out.push_str("\nLeaking lines, merged across the workers:\n\n| line | function | share | amount | leak type |\n|---|---|---|---|---|\n");
    for site in r.report.sites.iter().take(SITE_ROWS) {
        let _ = writeln!(
            out,
            "| `{}:{}` | `{}` | {} | {} | {} |",
            site.file,
            site.line,
            site.function,
            human::percent(site.share),
            human::amount(unit, site.amount),
            serde_json::to_value(site.leak_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        );
    }
    if let Some(top) = r.report.sites.first() {
        if !top.evidence.trim().is_empty() {
            let _ = writeln!(out, "\n```python\n{}\n```", top.evidence.trim_end());
        }
        if !top.fix.trim().is_empty() {
            let _ = writeln!(out, "\nFix: {}", top.fix.trim());
        }
    }
}

fn members_section(out: &mut String, report: &GroupReport) {
    let resources: Vec<Resource> = Resource::ALL
        .into_iter()
        .filter(|r| {
            report
                .members
                .iter()
                .any(|m| m.growth.contains_key(r.as_str()))
        })
        .collect();
    let total = report.members.len();
    if total > MEMBER_ROWS {
        let _ = writeln!(out, "\n### Members (latest {MEMBER_ROWS} of {total})\n");
    } else {
        let _ = writeln!(out, "\n### Members ({total})\n");
    }
    out.push_str("| pid | life | ended |");
    for r in &resources {
        let _ = write!(out, " {r} growth |");
    }
    out.push_str("\n|---|---|---|");
    out.push_str(&"---|".repeat(resources.len()));
    out.push('\n');
    let skip = report.members.len().saturating_sub(MEMBER_ROWS);
    for m in report.members.iter().skip(skip) {
        let _ = write!(
            out,
            "| {} | {} | {} |",
            m.pid,
            human::duration(m.life_seconds),
            if m.end.is_some() { "yes" } else { "running" }
        );
        for r in &resources {
            let growth = m.growth.get(r.as_str()).copied().unwrap_or(0.0);
            let _ = write!(out, " {} |", human::amount(r.unit(), growth));
        }
        out.push('\n');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;
    use crate::outputs::fixtures::leaking_web_group;
    use std::time::UNIX_EPOCH;

    #[test]
    fn the_markdown_has_the_verdict_lifetimes_and_the_line() {
        let view = &leaking_web_group();
        let text = render_group_markdown(&GroupReport::build(view, UNIX_EPOCH));
        assert!(text.starts_with("## Group Leak Report: web\n"), "{text}");
        assert!(text.contains("| rss_bytes | leak |"), "{text}");
        assert!(text.contains("### rss_bytes: leak"), "{text}");
        assert!(text.contains("| `/srv/app/render.py:17` |"), "{text}");
        assert!(text.contains("### Members (2)"), "{text}");
        assert!(
            text.contains("| 42 |") && text.contains("| yes |"),
            "{text}"
        );
        assert!(
            text.contains("| 41 |") && text.contains("| running |"),
            "{text}"
        );
    }
}
