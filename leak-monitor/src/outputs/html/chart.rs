//! A resource's series as an inline SVG line chart, with its trend line and its limit when the
//! limit is near enough to show, both labelled; a legend under it says what each line is. No
//! scripts, no external assets.

use super::axis;
use super::escape;
use crate::detection::Verdict;
use crate::humanize;
use crate::outputs::report::ResourceReport;
use std::fmt::Write as _;

/// About the width a chart gets in the page's two columns, so its text is drawn near 1:1.
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 210.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 30.0;

/// Draws `points` ((seconds since the start, value), oldest first) of one resource, then its
/// legend.
pub fn line_chart(resource: &ResourceReport, points: &[(f64, f64)]) -> String {
    if points.len() < 2 {
        return "<p class=\"muted\">Too few samples to draw.</p>".to_string();
    }
    let unit = resource.resource.unit();
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let trend_at = |t: f64| resource.last + resource.rate_per_second * (t - t1);
    let show_trend = resource.verdict != Verdict::Stable;
    let mut lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if show_trend {
        lo = lo.min(trend_at(t0));
        hi = hi.max(trend_at(t0));
    }
    // The limit is drawn only when it is within reach of the plotted range; otherwise it would
    // flatten the series into a line at the bottom (the legend still names it).
    let limit = resource
        .limit
        .filter(|&l| l > hi && l < hi + 2.0 * (hi - lo).max(1.0));
    if let Some(l) = limit {
        hi = l;
    }
    let (lo, hi) = axis::value_range(lo, hi, unit);
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0).max(f64::EPSILON) * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (HEIGHT - TOP - BOTTOM);
    let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{} over time\">",
        escape(resource.resource.as_str())
    );
    for v in axis::value_ticks(lo, hi, unit) {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{yv:.1}\" x2=\"{right}\" y2=\"{yv:.1}\"/><text class=\"label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y(v) + 4.0,
            escape(&humanize::amount(unit, v)),
            yv = y(v),
        );
    }
    for (t, label) in axis::time_ticks(t0, t1) {
        let _ = write!(
            svg,
            "<line class=\"axis\" x1=\"{xt:.1}\" y1=\"{bottom}\" x2=\"{xt:.1}\" y2=\"{}\"/><text class=\"label time\" x=\"{xt:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            HEIGHT - 10.0,
            escape(&label),
            xt = x(t),
        );
    }
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/><line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\"/>",
    );
    let limit_text = resource.limit.map(|l| {
        let when = resource
            .seconds_to_limit
            .map(|s| format!(", reached in {}", humanize::duration(s)))
            .unwrap_or_default();
        format!("limit {}{when}", humanize::amount(unit, l))
    });
    if let (Some(l), Some(text)) = (limit, &limit_text) {
        let _ = write!(
            svg,
            "<line class=\"limit\" x1=\"{LEFT}\" y1=\"{yl:.1}\" x2=\"{right}\" y2=\"{yl:.1}\"/><text class=\"label limit-label\" x=\"{}\" y=\"{:.1}\">{}</text>",
            LEFT + 6.0,
            y(l) + 13.0,
            escape(text),
            yl = y(l),
        );
    }
    let mut line = String::new();
    for &(t, v) in points {
        let _ = write!(line, "{:.1},{:.1} ", x(t), y(v));
    }
    let _ = write!(
        svg,
        "<polyline class=\"series\" points=\"{}\"/>",
        line.trim_end()
    );
    let trend_text = format!(
        "trend {}",
        humanize::per_second(unit, resource.rate_per_second)
    );
    if show_trend {
        let label_at = t0 + (t1 - t0) / 3.0;
        let _ = write!(
            svg,
            "<line class=\"trend\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"><title>{text}</title></line><text class=\"label trend-label\" x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
            x(t0),
            y(trend_at(t0)),
            x(t1),
            y(trend_at(t1)),
            x(label_at),
            // Above the line, a third of the way along, where a rising series leaves room;
            // below it when the line runs along the top.
            if y(trend_at(label_at)) - TOP > 18.0 {
                y(trend_at(label_at)) - 8.0
            } else {
                y(trend_at(label_at)) + 16.0
            },
            text = escape(&trend_text),
        );
    }
    svg.push_str("</svg>");

    // The legend: what each line is, and the limit even when it is too far away to draw.
    svg.push_str("<p class=\"legend\"><span class=\"key series\"></span>samples");
    if show_trend {
        let _ = write!(
            svg,
            " <span class=\"key trend\"></span>{}",
            escape(&trend_text)
        );
    }
    if let Some(text) = &limit_text {
        let off = if limit.is_some() {
            ""
        } else {
            " (off the chart)"
        };
        let _ = write!(
            svg,
            " <span class=\"key limit\"></span>{}{off}",
            escape(text)
        );
    }
    svg.push_str("</p>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::report::Report;

    const CONTRACT_EXAMPLE: &str = include_str!("../report/fixtures/contract_example.json");

    fn resource() -> ResourceReport {
        Report::from_json(CONTRACT_EXAMPLE)
            .expect("the contract example parses")
            .resources[0]
            .clone()
    }

    #[test]
    fn time_axis_is_in_seconds_and_the_trend_and_limit_are_labelled() {
        let r = resource();
        let points: Vec<(f64, f64)> = (0..=30)
            .map(|i| (f64::from(i), r.first + r.rate_per_second * f64::from(i)))
            .collect();
        let svg = line_chart(&r, &points);
        assert!(!svg.contains(" ms<"), "{svg}");
        assert!(
            svg.contains(">0 s</text>") && svg.contains(">30 s</text>"),
            "{svg}"
        );
        assert!(svg.contains("class=\"label trend-label\""), "{svg}");
        assert!(svg.contains("trend +2.5 MiB/s"), "{svg}");
        // The contract's limit (8 GiB) is far above the series: named in the legend.
        assert!(
            svg.contains("limit 8.0 GiB, reached in 53 min 48 s (off the chart)"),
            "{svg}"
        );
    }

    #[test]
    fn a_flat_zero_series_has_a_zero_to_one_axis() {
        let mut r = resource();
        r.resource = crate::resource::Resource::Threads;
        r.verdict = Verdict::Stable;
        r.limit = None;
        let points: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), 0.0)).collect();
        let svg = line_chart(&r, &points);
        assert!(!svg.contains(">-1</text>"), "{svg}");
        assert!(
            svg.contains(">0</text>") && svg.contains(">1</text>"),
            "{svg}"
        );
        assert!(!svg.contains("class=\"trend\""), "{svg}");
    }
}
