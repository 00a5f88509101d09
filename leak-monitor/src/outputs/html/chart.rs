//! A resource's series as an inline SVG line chart, with its trend line and its limit when the
//! limit is near enough to show. No scripts, no external assets.

use super::escape;
use crate::detection::Verdict;
use crate::humanize;
use crate::outputs::report::ResourceReport;
use std::fmt::Write as _;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// Draws `points` ((seconds, value), oldest first) of one resource.
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
    // flatten the series into a line at the bottom.
    let limit = resource
        .limit
        .filter(|&l| l > hi && l < hi + 2.0 * (hi - lo).max(1.0));
    if let Some(l) = limit {
        hi = l;
    }
    if (hi - lo).abs() < f64::EPSILON {
        lo -= 1.0;
        hi += 1.0;
    }
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0).max(f64::EPSILON) * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (HEIGHT - TOP - BOTTOM);

    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{} over time\">",
        escape(resource.resource.as_str())
    );
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/><line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\"/>",
        b = HEIGHT - BOTTOM,
        r = WIDTH - RIGHT
    );
    for (value, anchor) in [(hi, TOP + 4.0), (lo, HEIGHT - BOTTOM)] {
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{}\" y=\"{anchor}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            escape(&humanize::amount(unit, value))
        );
    }
    let _ = write!(
        svg,
        "<text class=\"label\" x=\"{LEFT}\" y=\"{}\">{}</text><text class=\"label\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        HEIGHT - 8.0,
        escape(&humanize::duration(0.0_f64.max(t0))),
        WIDTH - RIGHT,
        HEIGHT - 8.0,
        escape(&humanize::duration(t1))
    );
    if let Some(l) = limit {
        let _ = write!(
            svg,
            "<line class=\"limit\" x1=\"{LEFT}\" y1=\"{yl:.1}\" x2=\"{r}\" y2=\"{yl:.1}\"/><text class=\"label\" x=\"{r}\" y=\"{ty:.1}\" text-anchor=\"end\">limit {}</text>",
            escape(&humanize::amount(unit, l)),
            yl = y(l),
            r = WIDTH - RIGHT,
            ty = y(l) + 12.0
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
    if show_trend {
        let _ = write!(
            svg,
            "<line class=\"trend\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"><title>trend {}</title></line>",
            x(t0),
            y(trend_at(t0)),
            x(t1),
            y(trend_at(t1)),
            escape(&humanize::rate(unit, resource.rate_per_second))
        );
    }
    svg.push_str("</svg>");
    svg
}
