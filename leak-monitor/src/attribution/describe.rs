//! What a site is: its leak type, the evidence quoted from the target's own source, and the fix.
//!
//! `describe_site` is the one place that decides it. For now it quotes the lines around the site,
//! read through `/proc/PID/root` (so a container's or chroot's files are the ones read), and says
//! honestly that the pattern is not classified; a pattern catalog will replace its body.

use super::{LeakType, Site};
use crate::resource::Resource;
use std::path::PathBuf;

/// Lines quoted before and after the site's line.
const CONTEXT_LINES: usize = 2;

/// The leak type, the evidence (source lines around the site) and the fix for one site.
pub fn describe_site(pid: i32, site: &Site, resource: Resource) -> (LeakType, String, String) {
    let evidence = read_source(pid, &site.file)
        .map(|source| quote(&source, site.line))
        .unwrap_or_default();
    let what = match resource {
        Resource::RssBytes => "memory",
        Resource::OpenFds => "file descriptors",
        Resource::Sockets => "sockets",
        Resource::Threads => "threads",
    };
    let fix = format!(
        "The pattern at {}:{} (in `{}`) is not classified yet, so no specific fix is suggested. \
         Growth of {what} was seen while this line ran: check what it creates or stores on \
         every call and whether that is ever released (closed, joined, removed from its \
         container, or bounded).",
        site.file, site.line, site.function
    );
    (LeakType::Unknown, evidence, fix)
}

/// The file as the target sees it: through its root, which differs in a container.
fn read_source(pid: i32, file: &str) -> Option<String> {
    if !file.starts_with('/') {
        return None;
    }
    let path = PathBuf::from(format!("/proc/{pid}/root{file}"));
    std::fs::read_to_string(path).ok()
}

/// `line` (1-based) with `CONTEXT_LINES` either side, numbered, the site's line marked `>`.
fn quote(source: &str, line: u32) -> String {
    let Ok(line) = usize::try_from(line) else {
        return String::new();
    };
    if line == 0 {
        return String::new();
    }
    let first = line.saturating_sub(CONTEXT_LINES).max(1);
    let last = line + CONTEXT_LINES;
    let width = last.to_string().len();
    source
        .lines()
        .enumerate()
        .map(|(i, text)| (i + 1, text))
        .filter(|(n, _)| (first..=last).contains(n))
        .map(|(n, text)| {
            let mark = if n == line { '>' } else { ' ' };
            format!("{mark} {n:>width$} | {text}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::attribution::{Frame, SiteMethod};
    use std::io::Write;

    fn site(file: &str, line: u32) -> Site {
        Site {
            file: file.to_string(),
            line,
            function: "handle".to_string(),
            share: 1.0,
            amount: 10.0,
            leak_type: LeakType::Unknown,
            evidence: String::new(),
            fix: String::new(),
            stack: vec![Frame {
                file: file.to_string(),
                line,
                function: "handle".to_string(),
            }],
            method: Some(SiteMethod::SampledAtGrowth),
        }
    }

    #[test]
    fn quotes_the_lines_around_the_site_from_the_targets_root() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            "a = 1\nb = 2\nc = []\nc.append(b)  # here\nd = 4\ne = 5\nf = 6\n"
        )
        .unwrap();
        let path = file.path().to_string_lossy().into_owned();
        let pid = i32::try_from(std::process::id()).unwrap();
        let (leak_type, evidence, fix) = describe_site(pid, &site(&path, 4), Resource::RssBytes);
        assert_eq!(leak_type, LeakType::Unknown);
        assert_eq!(
            evidence,
            "  2 | b = 2\n  3 | c = []\n> 4 | c.append(b)  # here\n  5 | d = 4\n  6 | e = 5"
        );
        assert!(fix.contains("not classified"), "{fix}");
        assert!(fix.contains(&format!("{path}:4")), "{fix}");
    }

    #[test]
    fn an_unreadable_file_gives_no_evidence() {
        let (_, evidence, _) = describe_site(1, &site("<frozen os>", 3), Resource::Threads);
        assert!(evidence.is_empty());
        assert_eq!(quote("x\n", 1), "> 1 | x");
        assert_eq!(quote("x\n", 0), "");
    }
}
