//! Reading a Prometheus text-format scrape into series, so tests can ask for a metric by name
//! and labels instead of matching strings.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Series {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// All sample lines of a scrape (comments skipped). Panics on a line it cannot read, quoting it.
pub fn parse(text: &str) -> Vec<Series> {
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| parse_line(line).unwrap_or_else(|| panic!("unreadable sample line: {line:?}")))
        .collect()
}

/// The series of `name` whose labels include every `(key, value)` of `with`.
pub fn find<'a>(series: &'a [Series], name: &str, with: &[(&str, &str)]) -> Vec<&'a Series> {
    series
        .iter()
        .filter(|s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(v)))
        .collect()
}

fn parse_line(line: &str) -> Option<Series> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    // A timestamp may follow the value; the value is the first field.
    let value = match rest.split_whitespace().next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number.parse().ok()?,
    };
    Some(Series {
        name,
        labels,
        value,
    })
}

/// Reads `key="value",...}` (escapes `\\`, `\"`, `\n` in values); returns the labels and what
/// follows the closing brace.
fn parse_labels(mut text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(after) = text.strip_prefix('}') {
            return Some((labels, after));
        }
        let (key, after_key) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after_key.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim().to_owned(), value);
        text = &after_key[end + 1..];
    }
}

#[test]
fn parses_labels_with_escapes_and_bare_series() {
    let series = parse(concat!(
        "# HELP x help\n",
        "# TYPE x gauge\n",
        "x{target=\"a,b\",site=\"f.py:3\",function=\"say \\\"hi\\\"\"} 2.5\n",
        "leak_monitor_targets 1\n",
    ));
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].label("target"), Some("a,b"));
    assert_eq!(series[0].label("function"), Some("say \"hi\""));
    assert_eq!(series[0].value, 2.5);
    assert_eq!(find(&series, "leak_monitor_targets", &[])[0].value, 1.0);
}
