//! A flame graph of live growth by Python stack: each attributed site's stack weighted by the
//! growth it holds. Rendered by inferno as an SVG that works inline, without the network.

use crate::outputs::report::ResourceReport;

/// None when no site carries a stack, or when inferno cannot draw it.
pub fn growth_flame_graph(resource: &ResourceReport) -> Option<String> {
    let lines: Vec<String> = resource
        .sites
        .iter()
        .filter(|site| site.amount >= 1.0)
        .map(|site| {
            // Folded format: root frame first, frames joined by ';', then the weight.
            let frames: Vec<String> = if site.stack.is_empty() {
                vec![frame_name(&site.function, &site.file, site.line)]
            } else {
                site.stack
                    .iter()
                    .rev()
                    .map(|f| frame_name(&f.function, &f.file, f.line))
                    .collect()
            };
            format!("{} {}", frames.join(";"), site.amount.round() as u64)
        })
        .collect();
    if lines.is_empty() {
        return None;
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("Live {} growth by Python stack", resource.resource);
    options.count_name = match resource.resource.unit() {
        crate::resource::Unit::Bytes => "bytes".to_string(),
        crate::resource::Unit::Count => resource.resource.as_str().to_string(),
    };
    options.image_width = Some(960);
    let mut svg = Vec::new();
    inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
        .ok()?;
    let svg = String::from_utf8(svg).ok()?;
    // Inline in HTML: drop the XML prolog and doctype, keep the <svg> element.
    let start = svg.find("<svg")?;
    Some(svg[start..].to_string())
}

/// Frame names must not contain the folded format's frame separator.
fn frame_name(function: &str, file: &str, line: u32) -> String {
    let short = file.rsplit('/').next().unwrap_or(file);
    format!("{function} ({short}:{line})").replace(';', ",")
}
