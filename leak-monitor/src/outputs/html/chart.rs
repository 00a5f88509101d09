//! A resource's series as an inline SVG line chart, with its trend line and its limit when the
//! limit is near enough to show, both labelled; a legend under it says what each line is. No
//! scripts, no external assets.

use super::axis;
use super::escape;
use crate::detection::Verdict;
use crate::humanize;
use crate::outputs::report::ResourceReport;
use crate::resource::Unit;
use std::fmt::Write as _;

/// About the width a chart gets in the page's two columns, so its text is drawn near 1:1.
const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 210.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 30.0;

/// Where a chart's values and times land: the plotted ranges mapped onto the drawing area.
struct Plot {
    t0: f64,
    t1: f64,
    lo: f64,
    hi: f64,
}

impl Plot {
    fn x(&self, t: f64) -> f64 {
        LEFT + (t - self.t0) / (self.t1 - self.t0).max(f64::EPSILON) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        TOP + (self.hi - v) / (self.hi - self.lo) * (HEIGHT - TOP - BOTTOM)
    }
}

/// The lines a chart draws beside its samples, with their texts.
struct Guides {
    /// The trend line's text, when the verdict is not `stable`.
    trend: Option<String>,
    /// The limit's text, when there is one; `limit_drawn` when it is near enough to draw.
    limit: Option<String>,
    limit_drawn: Option<f64>,
}

/// Draws `points` ((seconds since the start, value), oldest first) of one resource, then its
/// legend.
pub fn line_chart(resource: &ResourceReport, points: &[(f64, f64)]) -> String {
    if points.len() < 2 {
        return "<p class=\"muted\">Too few samples to draw.</p>".to_string();
    }
    let unit = resource.resource.unit();
    let (t0, t1) = (points[0].0, points[points.len() - 1].0);
    let trend_at = |t: f64| resource.last.0 + resource.rate_per_second.0 * (t - t1);
    let show_trend = resource.verdict != Verdict::Stable;
    let mut lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if show_trend {
        lo = lo.min(trend_at(t0));
        hi = hi.max(trend_at(t0));
    }
    // The limit is drawn only when it is within reach of the plotted range; otherwise it would
    // flatten the series into a line at the bottom (the legend still names it).
    let limit_drawn = resource
        .limit
        .map(f64::from)
        .filter(|&l| l > hi && l < hi + 2.0 * (hi - lo).max(1.0));
    if let Some(l) = limit_drawn {
        hi = l;
    }
    let (lo, hi) = axis::value_range(lo, hi, unit);
    let plot = Plot { t0, t1, lo, hi };
    let guides = Guides {
        trend: show_trend.then(|| {
            format!(
                "trend {}",
                humanize::per_second(unit, resource.rate_per_second)
            )
        }),
        limit: resource.limit.map(|l| {
            let when = resource
                .seconds_to_limit
                .map(|s| format!(", reached in {}", humanize::duration(s.0)))
                .unwrap_or_default();
            format!("limit {}{when}", humanize::amount(unit, l))
        }),
        limit_drawn,
    };

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{} over time\">",
        escape(resource.resource.as_str())
    );
    draw_axes(&mut svg, &plot, unit);
    if let (Some(l), Some(text)) = (guides.limit_drawn, &guides.limit) {
        draw_limit(&mut svg, &plot, l, text);
    }
    draw_series(&mut svg, &plot, points);
    if let Some(text) = &guides.trend {
        draw_trend(&mut svg, &plot, trend_at, text);
    }
    svg.push_str("</svg>");
    legend(&mut svg, &guides);
    svg
}

/// The value grid with its labels, the time ticks, and the two axes.
fn draw_axes(svg: &mut String, plot: &Plot, unit: Unit) {
    let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
    for v in axis::value_ticks(plot.lo, plot.hi, unit) {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{yv:.1}\" x2=\"{right}\" y2=\"{yv:.1}\"/><text class=\"label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            plot.y(v) + 4.0,
            escape(&humanize::amount(unit, v)),
            yv = plot.y(v),
        );
    }
    for (t, label) in axis::time_ticks(plot.t0, plot.t1) {
        let _ = write!(
            svg,
            "<line class=\"axis\" x1=\"{xt:.1}\" y1=\"{bottom}\" x2=\"{xt:.1}\" y2=\"{}\"/><text class=\"label time\" x=\"{xt:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            HEIGHT - 10.0,
            escape(&label),
            xt = plot.x(t),
        );
    }
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/><line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{bottom}\"/>",
    );
}

fn draw_limit(svg: &mut String, plot: &Plot, limit: f64, text: &str) {
    let right = WIDTH - RIGHT;
    let _ = write!(
        svg,
        "<line class=\"limit\" x1=\"{LEFT}\" y1=\"{yl:.1}\" x2=\"{right}\" y2=\"{yl:.1}\"/><text class=\"label limit-label\" x=\"{}\" y=\"{:.1}\">{}</text>",
        LEFT + 6.0,
        plot.y(limit) + 13.0,
        escape(text),
        yl = plot.y(limit),
    );
}

fn draw_series(svg: &mut String, plot: &Plot, points: &[(f64, f64)]) {
    let mut line = String::new();
    for &(t, v) in points {
        let _ = write!(line, "{:.1},{:.1} ", plot.x(t), plot.y(v));
    }
    let _ = write!(
        svg,
        "<polyline class=\"series\" points=\"{}\"/>",
        line.trim_end()
    );
}

/// The trend line over the plotted time, labelled a third of the way along: above the line,
/// where a rising series leaves room; below it when the line runs along the top.
fn draw_trend(svg: &mut String, plot: &Plot, trend_at: impl Fn(f64) -> f64, text: &str) {
    let (t0, t1) = (plot.t0, plot.t1);
    let label_at = t0 + (t1 - t0) / 3.0;
    let label_y = plot.y(trend_at(label_at));
    let _ = write!(
        svg,
        "<line class=\"trend\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"><title>{text}</title></line><text class=\"label trend-label\" x=\"{:.1}\" y=\"{:.1}\">{text}</text>",
        plot.x(t0),
        plot.y(trend_at(t0)),
        plot.x(t1),
        plot.y(trend_at(t1)),
        plot.x(label_at),
        if label_y - TOP > 18.0 {
            label_y - 8.0
        } else {
            label_y + 16.0
        },
        text = escape(text),
    );
}

/// What each line is, and the limit even when it is too far away to draw.
fn legend(svg: &mut String, guides: &Guides) {
    svg.push_str("<p class=\"legend\"><span class=\"key series\"></span>samples");
    if let Some(text) = &guides.trend {
        let _ = write!(svg, " <span class=\"key trend\"></span>{}", escape(text));
    }
    if let Some(text) = &guides.limit {
        let off = if guides.limit_drawn.is_some() {
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
            .map(|i| (f64::from(i), r.first.0 + r.rate_per_second.0 * f64::from(i)))
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
