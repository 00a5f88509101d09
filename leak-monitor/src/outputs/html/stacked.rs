//! The memory breakdown over time as an inline SVG stacked area chart: one band per part,
//! bottom to top in the order of `Part::ALL`, with a legend naming each part, its last value
//! and whether it is an estimate.

use super::axis;
use super::escape;
use crate::humanize;
use crate::memory::parts::Part;
use crate::outputs::report::BreakdownReport;
use crate::resource::Unit;
use std::fmt::Write as _;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// One colour per part, in `Part::ALL` order.
const COLOURS: [&str; 7] = [
    "#2f6fdb", "#9bbcf0", "#d9822b", "#f3c999", "#b0413e", "#8a8f9c", "#6aa06a",
];

/// The chart and its legend; a note when there are fewer than two breakdowns.
pub fn stacked_chart(b: &BreakdownReport) -> String {
    if b.series.len() < 2 {
        return "<p class=\"muted\">One breakdown only: nothing to draw over time.</p>".into();
    }
    let value = |i: usize, part: Part| b.series[i].parts.get(part.as_str()).copied().unwrap_or(0);
    let totals: Vec<u64> = (0..b.series.len())
        .map(|i| Part::ALL.iter().map(|&p| value(i, p)).sum())
        .collect();
    let (t0, t1) = (
        b.series[0].at_seconds,
        b.series[b.series.len() - 1].at_seconds,
    );
    let hi = totals.iter().copied().max().unwrap_or(0) as f64;
    let (lo, hi) = axis::value_range(0.0, hi, Unit::Bytes);
    let x = |t: f64| LEFT + (t - t0) / (t1 - t0).max(f64::EPSILON) * (WIDTH - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (HEIGHT - TOP - BOTTOM);
    let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart stacked\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"resident memory by part over time\">"
    );
    for v in axis::value_ticks(lo, hi, Unit::Bytes) {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{yv:.1}\" x2=\"{right}\" y2=\"{yv:.1}\"/><text class=\"label\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            y(v) + 4.0,
            escape(&humanize::amount(Unit::Bytes, v)),
            yv = y(v),
        );
    }
    for (t, label) in axis::time_ticks(t0, t1) {
        let _ = write!(
            svg,
            "<text class=\"label time\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            x(t),
            HEIGHT - 10.0,
            escape(&label),
        );
    }
    let mut below = vec![0u64; b.series.len()];
    for (part, colour) in Part::ALL.iter().zip(COLOURS) {
        let above: Vec<u64> = (0..b.series.len())
            .map(|i| below[i] + value(i, *part))
            .collect();
        let mut path = String::new();
        for (i, point) in b.series.iter().enumerate() {
            let _ = write!(
                path,
                "{:.1},{:.1} ",
                x(point.at_seconds),
                y(above[i] as f64)
            );
        }
        for (i, point) in b.series.iter().enumerate().rev() {
            let _ = write!(
                path,
                "{:.1},{:.1} ",
                x(point.at_seconds),
                y(below[i] as f64)
            );
        }
        let _ = write!(
            svg,
            "<polygon class=\"band\" fill=\"{colour}\" points=\"{}\"><title>{}</title></polygon>",
            path.trim_end(),
            part.as_str()
        );
        below = above;
    }
    let _ = write!(
        svg,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{bottom}\" x2=\"{right}\" y2=\"{bottom}\"/></svg>"
    );
    svg.push_str("<p class=\"legend\">");
    let last = b.series.len() - 1;
    for (part, colour) in Part::ALL.iter().zip(COLOURS) {
        let estimate = if b.estimated.iter().any(|e| e == part.as_str()) {
            " (estimate)"
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<span class=\"swatch\" style=\"background:{colour}\"></span>{} {}{estimate} ",
            part.as_str(),
            escape(&humanize::amount(Unit::Bytes, value(last, *part) as f64)),
        );
    }
    svg.push_str("</p>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::Capabilities;
    use crate::outputs::fixtures::leaking_worker;
    use crate::outputs::report::Report;
    use std::time::SystemTime;

    #[test]
    fn one_band_per_part_and_a_legend() {
        let report = Report::build(
            &leaking_worker(7),
            &Capabilities::default(),
            SystemTime::now(),
        );
        let b = report.resources[0].breakdown.as_ref().unwrap();
        let svg = stacked_chart(b);
        assert_eq!(svg.matches("<polygon").count(), Part::ALL.len(), "{svg}");
        assert!(svg.contains("python_objects 74.0 MiB"), "{svg}");
        assert!(svg.contains("<title>c_allocator_free</title>"), "{svg}");
        let mut one = b.clone();
        one.series.truncate(1);
        assert!(stacked_chart(&one).contains("One breakdown only"));
    }
}
