//! Evidence: the source lines around a site, numbered, the site line marked with `>`.

/// Lines before and after the site that the evidence shows.
const CONTEXT: u32 = 2;

/// `line` (1-based) with `CONTEXT` lines either side, as plain text:
///
/// ```text
///    15 |     def handle(self, key, page):
/// >  16 |         self._rendered[key] = page
///    17 |         return page
/// ```
///
/// Empty when the line is not in the source.
pub fn evidence(source: &str, line: u32) -> String {
    let first = line.saturating_sub(CONTEXT).max(1);
    let last = line.saturating_add(CONTEXT);
    let width = last.to_string().len();
    let mut out = String::new();
    let mut has_site = false;
    for (number, text) in (1u32..).zip(source.lines()) {
        if number < first {
            continue;
        }
        if number > last {
            break;
        }
        let marker = if number == line { '>' } else { ' ' };
        has_site |= number == line;
        let row = format!("{marker} {number:>width$} | {text}");
        out.push_str(row.trim_end());
        out.push('\n');
    }
    if has_site {
        out.truncate(out.trim_end_matches('\n').len());
        out
    } else {
        String::new()
    }
}
