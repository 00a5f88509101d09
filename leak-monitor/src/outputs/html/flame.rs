//! A flame graph of live growth by Python stack: each attributed site's stack weighted by the
//! growth it holds, drawn as inline SVG with no script. Every frame carries a `<title>` with its
//! full text (shown on hover), and a label cut only where the frame name has a boundary: the
//! whole `function (file.py:17)`, else the function, else the function's leading words, else
//! nothing; never a word cut in half.

use super::escape;
use crate::humanize;
use crate::outputs::report::ResourceReport;
use crate::resource::Amount;
use std::fmt::Write as _;

const WIDTH: f64 = 960.0;
const FRAME_HEIGHT: f64 = 18.0;
const TITLE_HEIGHT: f64 = 30.0;
const PAD: f64 = 8.0;
/// The width of one character of the labels' 12 px font, rounded up (monospace-ish estimate,
/// generous so a label never spills over its box).
const CHAR_WIDTH: f64 = 7.4;

/// One frame and the frames called from it, with the growth below it.
#[derive(Default)]
struct Node {
    name: String,
    value: f64,
    children: Vec<Node>,
}

impl Node {
    fn add(&mut self, path: &[String], value: f64) {
        self.value += value;
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let child = match self.children.iter().position(|c| &c.name == first) {
            Some(i) => &mut self.children[i],
            None => {
                self.children.push(Node {
                    name: first.clone(),
                    ..Node::default()
                });
                let last = self.children.len() - 1;
                &mut self.children[last]
            }
        };
        child.add(rest, value);
    }

    fn depth(&self) -> usize {
        1 + self.children.iter().map(Node::depth).max().unwrap_or(0)
    }
}

/// None when no site holds growth.
pub fn growth_flame_graph(resource: &ResourceReport) -> Option<String> {
    let mut root = Node {
        name: "all".to_string(),
        ..Node::default()
    };
    for site in resource
        .sites
        .iter()
        .filter(|site| site.amount >= Amount(1.0))
    {
        // Root frame first.
        let path: Vec<String> = if site.stack.is_empty() {
            vec![frame_name(&site.function, &site.file, site.line)]
        } else {
            site.stack
                .iter()
                .rev()
                .map(|f| frame_name(&f.function, &f.file, f.line))
                .collect()
        };
        root.add(&path, site.amount.0.round());
    }
    if root.value < 1.0 {
        return None;
    }
    let depth = root.depth();
    let height = TITLE_HEIGHT + depth as f64 * FRAME_HEIGHT + PAD;
    let title = format!("Live {} growth by Python stack", resource.resource);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"flamegraph\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{t}\"><text class=\"flame-title\" x=\"{}\" y=\"20\" text-anchor=\"middle\">{t}</text>",
        WIDTH / 2.0,
        t = escape(&title),
    );
    let unit = resource.resource.unit();
    let scale = (WIDTH - 2.0 * PAD) / root.value;
    // Root at the bottom, callees above their callers.
    let mut stack = vec![(&root, PAD, 0usize)];
    while let Some((node, x, level)) = stack.pop() {
        let width = node.value * scale;
        let y = height - PAD - (level as f64 + 1.0) * FRAME_HEIGHT;
        let full = format!(
            "{} ({}, {} of the growth)",
            node.name,
            humanize::amount(unit, node.value),
            humanize::percent(node.value / root.value)
        );
        let _ = write!(
            svg,
            "<g class=\"frame\"><title>{}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{}\" rx=\"2\" fill=\"{}\"/>",
            escape(&full),
            (width - 1.0).max(0.5),
            FRAME_HEIGHT - 1.0,
            color(&node.name),
        );
        if let Some(label) = fit_label(&node.name, width - 6.0) {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x + 3.0,
                y + FRAME_HEIGHT - 5.0,
                escape(&label)
            );
        }
        svg.push_str("</g>");
        let mut child_x = x;
        for child in &node.children {
            stack.push((child, child_x, level + 1));
            child_x += child.value * scale;
        }
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// Frame names as the flame graph shows them: `function (file.py:17)`.
fn frame_name(function: &str, file: &str, line: u32) -> String {
    let short = file.rsplit('/').next().unwrap_or(file);
    format!("{function} ({short}:{line})")
}

/// The longest label for `name` that fits in `room` pixels, cut only at a boundary: the whole
/// name, the function without its location, or the function's leading words (split at `_`, `.`
/// and `<`) followed by an ellipsis. None when not even one word fits.
fn fit_label(name: &str, room: f64) -> Option<String> {
    let fits = |text: &str| text.chars().count() as f64 * CHAR_WIDTH <= room;
    if fits(name) {
        return Some(name.to_string());
    }
    let function = name.split(" (").next().unwrap_or(name);
    if fits(function) {
        return Some(function.to_string());
    }
    let mut best = None;
    for (i, c) in function.char_indices().skip(1) {
        if matches!(c, '_' | '.' | '<' | ' ') {
            let candidate = format!("{}…", &function[..i]);
            if fits(&candidate) {
                best = Some(candidate);
            } else {
                break;
            }
        }
    }
    best
}

/// A warm colour picked by the frame's name, the same on every run.
fn color(name: &str) -> String {
    let hash = name.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    let red = 205 + hash % 50;
    let green = 80 + (hash >> 8) % 120;
    let blue = 40 + (hash >> 16) % 50;
    format!("rgb({red},{green},{blue})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_cut_at_boundaries_never_mid_word() {
        let name = "handle_request_with_retries (server.py:120)";
        assert_eq!(fit_label(name, 1000.0).as_deref(), Some(name));
        assert_eq!(
            fit_label(name, 28.0 * CHAR_WIDTH).as_deref(),
            Some("handle_request_with_retries")
        );
        assert_eq!(
            fit_label(name, 16.0 * CHAR_WIDTH).as_deref(),
            Some("handle_request…")
        );
        assert_eq!(
            fit_label(name, 8.0 * CHAR_WIDTH).as_deref(),
            Some("handle…")
        );
        assert_eq!(fit_label(name, 5.0 * CHAR_WIDTH), None);
    }

    #[test]
    fn every_frame_has_its_full_text_as_a_title() {
        let report = crate::outputs::report::Report::from_json(include_str!(
            "../report/fixtures/contract_example.json"
        ))
        .expect("the contract example parses");
        let svg = growth_flame_graph(&report.resources[0]).expect("a flame graph");
        assert!(svg.contains("<title>handle (render.py:17) ("), "{svg}");
        assert!(svg.contains("<title>all ("), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
        assert_eq!(
            svg.matches("<g class=\"frame\"><title>").count(),
            svg.matches("<rect").count()
        );
    }
}
