//! The HTML report (`--html`): one self-contained page (no scripts or assets from the network)
//! with each resource's chart and trend, a flame graph of live growth by Python stack, and the
//! same sections as the Markdown report.

mod axis;
mod chart;
mod flame;
mod ranking;
mod stacked;

use crate::attribution::Holder;
use crate::detection::Verdict;
use crate::humanize;
use crate::monitor::ResourceSeries;
use crate::outputs::report::{Report, ResourceReport};
use crate::resource::Unit;
use std::fmt::Write as _;

/// Renders the reports; `series[i]` holds the samples of `reports[i]`'s resources.
pub fn render(reports: &[Report], series: &[Vec<ResourceSeries>]) -> String {
    let mut page = String::from(HEAD);
    for (i, report) in reports.iter().enumerate() {
        let samples = series.get(i).map(Vec::as_slice).unwrap_or(&[]);
        render_report(&mut page, report, samples);
    }
    page.push_str("</body></html>\n");
    page
}

fn render_report(page: &mut String, report: &Report, series: &[ResourceSeries]) {
    let target = &report.target;
    let _ = write!(
        page,
        "<section class=\"target\"><h1>Memory Leak Report: pid {}</h1><p class=\"cmd\"><code>{}</code></p>",
        target.pid,
        escape(&target.cmdline.join(" "))
    );
    let owner: Vec<String> = target
        .labels
        .owner_parts()
        .into_iter()
        .map(|(what, name, detail)| {
            let detail = detail
                .map(|d| format!(" ({})", escape(d)))
                .unwrap_or_default();
            format!("{what} <code>{}</code>{detail}", escape(&name))
        })
        .collect();
    if !owner.is_empty() {
        let _ = write!(page, "<p class=\"owner\">{}</p>", owner.join(", "));
    }
    let _ = write!(
        page,
        "<p class=\"muted\">{} &middot; observed {} ({} samples every {}) &middot; generated {}</p>",
        escape(&target.python_version.as_deref().map(|v| format!("Python {v}")).unwrap_or_else(|| "not Python".into())),
        escape(&humanize::duration(report.observation.duration_seconds)),
        report.observation.samples,
        escape(&humanize::duration(report.observation.interval_seconds)),
        escape(&report.generated_at.to_string()),
    );
    page.push_str("<table><tr><th>resource</th><th>verdict</th><th>pattern</th><th>first</th><th>last</th><th>rate</th><th>time to limit</th><th>confidence</th></tr>");
    for r in &report.resources {
        let unit = r.resource.unit();
        let _ = write!(
            page,
            "<tr><td>{}</td><td><span class=\"verdict {v}\">{v}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.resource,
            r.growth_pattern.as_str(),
            escape(&humanize::amount(unit, r.first)),
            escape(&humanize::amount(unit, r.last)),
            escape(&humanize::rate(unit, r.rate_per_second)),
            r.seconds_to_limit.map(|s| humanize::duration(s.0)).unwrap_or_else(|| "&mdash;".into()),
            humanize::percent(r.confidence),
            v = r.verdict.as_str(),
        );
    }
    page.push_str("</table>");

    page.push_str("<h2>Resources over time</h2><div class=\"charts\">");
    for r in &report.resources {
        let points = series
            .iter()
            .find(|s| s.resource == r.resource)
            .map(|s| s.points.as_slice())
            .unwrap_or(&[]);
        let _ = write!(
            page,
            "<figure><figcaption>{} <span class=\"verdict {v}\">{v}</span></figcaption>{}</figure>",
            r.resource,
            chart::line_chart(r, points),
            v = r.verdict.as_str()
        );
    }
    page.push_str("</div>");

    for r in &report.resources {
        if let (Some(kind), Some(b)) = (r.memory_kind, &r.breakdown) {
            let _ = write!(
                page,
                "<h2>Memory breakdown: {}</h2>{}",
                kind.as_str(),
                stacked::stacked_chart(b)
            );
            if !b.fixes.is_empty() {
                page.push_str("<ul class=\"fixes\">");
                for fix in &b.fixes {
                    let _ = write!(page, "<li>{}</li>", escape(fix));
                }
                page.push_str("</ul>");
            }
        }
    }

    page.push_str("<h2>Live growth by Python stack</h2>");
    let flames: Vec<String> = report
        .resources
        .iter()
        .filter_map(flame::growth_flame_graph)
        .collect();
    if flames.is_empty() {
        page.push_str(
            "<p class=\"muted\">No growth is attributed to Python stacks in this report.</p>",
        );
    }
    for svg in flames {
        let _ = write!(page, "<div class=\"flame\">{svg}</div>");
    }

    for r in report
        .resources
        .iter()
        .filter(|r| r.verdict != Verdict::Stable)
    {
        render_sites(page, r);
    }
    if !report.capabilities.notes.is_empty() {
        page.push_str("<h2>Notes</h2><ul>");
        for note in &report.capabilities.notes {
            let _ = write!(page, "<li>{}</li>", escape(note));
        }
        page.push_str("</ul>");
    }
    page.push_str("</section>");
}

fn render_sites(page: &mut String, resource: &ResourceReport) {
    let unit = resource.resource.unit();
    if let Some(why) = ranking::explain(resource) {
        let _ = write!(page, "<p class=\"ranking\">{}</p>", escape(&why));
    }
    for site in &resource.sites {
        let _ = write!(
            page,
            "<article class=\"site\"><h3>File: {}:{}</h3><p>{} in <code>{}</code>: {} ({} of the attributed {} growth), leak type <b>{}</b>, pattern {}.</p>{}<h4>Evidence</h4><pre class=\"code\" data-scrolls=\"x\">{}</pre><h4>Fix</h4><pre class=\"fix\">{}</pre></article>",
            escape(&site.file),
            site.line,
            resource.resource,
            escape(&site.function),
            escape(&humanize::amount(unit, site.amount)),
            humanize::percent(site.share),
            resource.resource,
            escape(&serde_json::to_value(site.leak_type).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()),
            resource.growth_pattern.as_str(),
            site.holder.as_ref().map(held_by).unwrap_or_default(),
            escape(&site.evidence),
            escape(&site.fix),
        );
    }
}

/// The "Held by" section of a site the heap census found.
fn held_by(holder: &Holder) -> String {
    let items = if holder.item_types.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = holder
            .item_types
            .iter()
            .map(|t| format!("<code>{}</code>", escape(t)))
            .collect();
        format!(" Entries: {}.", names.join(", "))
    };
    format!(
        "<h4>Held by</h4><p><code>{}</code> ({}): {} -> {} entries, {} entries; its entries keep about {}.{items}</p>",
        escape(&holder.path),
        escape(&holder.type_name),
        holder.len_first,
        holder.len_last,
        escape(&humanize::per_second(Unit::Count, holder.growth_per_second)),
        escape(&humanize::amount(Unit::Bytes, holder.retained_bytes.as_f64())),
    )
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const HEAD: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>leak-monitor report</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#1d2330;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde}
table{border-collapse:collapse;width:100%}td,th{padding:4px 8px;border-bottom:1px solid #eef;text-align:left}
code,pre{font-family:ui-monospace,monospace;font-size:12.5px}pre{background:#f6f7f9;padding:10px;overflow-x:auto}
pre.fix{white-space:pre-wrap;overflow-wrap:anywhere;overflow-x:visible}.cmd,p,li,td,h3{overflow-wrap:anywhere}
.ranking{background:#fff8e6;border-left:3px solid #e0a800;padding:6px 10px}
.muted{color:#667}.verdict{padding:1px 7px;border-radius:8px;font-size:12px;font-weight:600}
.verdict.leak{background:#fde2e1;color:#a3160f}.verdict.growing{background:#fff1d6;color:#8a5a00}.verdict.stable{background:#e3f4e6;color:#1f6b35}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:12px}figure{margin:0}figcaption{font-weight:600;margin-bottom:2px}
.chart{width:100%;height:auto;background:#fbfbfd}.chart .axis{stroke:#99a}.chart .series{fill:none;stroke:#2f6fdb;stroke-width:1.6}
.chart .grid{stroke:#e6e8ee}.chart .trend{stroke:#d0342c;stroke-dasharray:5 4;stroke-width:1.4}.chart .limit{stroke:#a3160f;stroke-width:1.2;stroke-dasharray:2 3}
.chart .label{font-size:11px;fill:#556}.chart .trend-label{fill:#d0342c;font-weight:600}.chart .limit-label{fill:#a3160f}
.legend{margin:2px 0 0;font-size:12px;color:#556}.key{display:inline-block;width:18px;height:0;margin:0 4px 3px 8px;border-top:2px solid}
.swatch{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
.key.series{border-color:#2f6fdb;margin-left:0}.key.trend{border-top:2px dashed #d0342c}.key.limit{border-top:2px dotted #a3160f}
.flame svg{width:100%;height:auto}.flamegraph text{font:12px ui-monospace,monospace;fill:#1d2330}.flamegraph .flame-title{font:600 15px system-ui,sans-serif}
.flamegraph .frame:hover rect{stroke:#1d2330;stroke-width:1}.site{border-left:3px solid #d0342c;padding-left:12px;margin:18px 0}
</style></head><body>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::report::Report;
    use crate::resource::{Resource, Share};

    const CONTRACT_EXAMPLE: &str = include_str!("../report/fixtures/contract_example.json");

    #[test]
    fn renders_charts_flame_graph_and_escaped_sections() {
        let report = Report::from_json(CONTRACT_EXAMPLE).expect("the contract example parses");
        let series = vec![ResourceSeries {
            resource: Resource::RssBytes,
            points: (0..60)
                .map(|i| (i as f64, 26_214_400.0 + 2_603_827.2 * i as f64))
                .collect(),
        }];
        let page = render(std::slice::from_ref(&report), &[series]);
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<polyline class=\"series\""), "a line chart");
        assert!(page.contains("class=\"trend\""), "a trend line for a leak");
        assert!(
            page.contains("Live rss_bytes growth by Python stack"),
            "a flame graph"
        );
        assert!(page.contains("File: /srv/app/render.py:17"));
        assert!(page.contains("self._rendered[key] = bytearray(page) + bytearray(6000)"));
        assert!(!page.contains("<script src="), "self-contained");
    }

    #[test]
    fn close_sites_of_different_kinds_get_a_sentence_on_their_order() {
        let mut report = Report::from_json(CONTRACT_EXAMPLE).expect("the contract example parses");
        let resource = &mut report.resources[0];
        let mut churn = resource.sites[0].clone();
        churn.line = 9;
        churn.share = Share(0.5);
        churn.leak_type = crate::attribution::LeakType::Unknown;
        resource.sites[0].share = Share(0.45);
        resource.sites.insert(0, churn);
        let page = render(std::slice::from_ref(&report), &[]);
        let at = page
            .find("<p class=\"ranking\">")
            .expect("a ranking sentence");
        let first_site = page.find("<article class=\"site\">").expect("sites");
        assert!(at < first_site, "the sentence comes before the sites");
        assert!(
            page[at..].contains("render.py:9 (unknown, handle)"),
            "{page}"
        );

        report.resources[0].sites.remove(0);
        let page = render(std::slice::from_ref(&report), &[]);
        assert!(
            !page.contains("class=\"ranking\""),
            "one site needs no sentence"
        );
    }

    #[test]
    fn names_the_owner_escaped_and_only_when_known() {
        let mut report = Report::from_json(CONTRACT_EXAMPLE).expect("the contract example parses");
        let plain = render(std::slice::from_ref(&report), &[]);
        assert!(!plain.contains("class=\"owner\""));
        report.target.labels.namespace = Some("shop".into());
        report.target.labels.pod = Some("web<1>".into());
        report.target.labels.qos_class = Some("burstable".into());
        report.target.labels.unit = Some("web.service".into());
        let page = render(std::slice::from_ref(&report), &[]);
        assert!(
            page.contains(
                "<p class=\"owner\">pod <code>shop/web&lt;1&gt;</code> (burstable), unit \
                 <code>web.service</code></p>"
            ),
            "{page}"
        );
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
