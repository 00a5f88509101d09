//! What a site is: the line to show, its leak type, the evidence quoted from the target's own
//! source, and the fix.
//!
//! `describe_site` is the one place that decides it. The runtime blames the line where a
//! resource was created (a page faulted in at `payload = bytearray(...)`); the pattern and its fix
//! are often where the object is kept (`LOG.append(payload)`). So the catalog's `locate` follows
//! the value from the blamed line within its function, then from each outer frame's call line,
//! and the first pattern found names the site. A sampled stack may find the thread resting
//! (`time.sleep`) after the line that leaked: then the loop around the rest is searched. When
//! none is found the blamed line is explained as it is. Files are read as the target sees them, through `/proc/PID/root`.

use super::catalog::{explain, locate, locate_in_resting_loop};
use super::frames::{blamed_index, origin, Origin};
use super::source::read_target_source;
use super::{Frame, LeakType, Site};
use crate::resource::Resource;

/// User frames tried from the blamed one outwards.
const MAX_FRAMES_TRIED: usize = 6;

/// What the outputs show for a site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// The line the site is reported at (where the pattern is), with its file and function.
    pub frame: Frame,
    pub leak_type: LeakType,
    pub evidence: String,
    pub fix: String,
}

/// Describes one site; `site.stack` (innermost first) lets the search move to callers.
pub fn describe_site(pid: i32, site: &Site, resource: Resource) -> Description {
    let blamed = Frame {
        file: site.file.clone(),
        line: site.line,
        function: site.function.clone(),
    };
    let start = site
        .stack
        .iter()
        .position(|f| *f == blamed)
        .or_else(|| blamed_index(&site.stack))
        .unwrap_or(0);
    let candidates = std::iter::once(&blamed).chain(
        site.stack
            .iter()
            .skip(start + 1)
            .filter(|f| origin(&f.file) == Origin::User),
    );
    for frame in candidates.take(MAX_FRAMES_TRIED) {
        let Ok(source) = read_target_source(pid, &frame.file) else {
            continue;
        };
        let located = locate(&source, frame.line, resource)
            .or_else(|| locate_in_resting_loop(&source, frame.line, resource));
        if let Some(located) = located {
            return Description {
                frame: Frame {
                    file: frame.file.clone(),
                    line: located.line,
                    function: frame.function.clone(),
                },
                leak_type: located.explanation.leak_type,
                evidence: located.explanation.evidence,
                fix: located.explanation.fix,
            };
        }
    }
    match read_target_source(pid, &blamed.file) {
        Ok(source) => {
            let explanation = explain(&source, blamed.line, resource);
            Description {
                frame: blamed,
                leak_type: explanation.leak_type,
                evidence: explanation.evidence,
                fix: explanation.fix,
            }
        }
        Err(err) => Description {
            fix: format!(
                "The source of {}:{} (in `{}`) could not be read ({err}), so the line could not be \
                 classified. Check what it creates or stores on every call and whether that is \
                 ever released (closed, joined, removed from its container, or bounded).",
                blamed.file, blamed.line, blamed.function
            ),
            frame: blamed,
            leak_type: LeakType::Unknown,
            evidence: String::new(),
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::attribution::SiteMethod;
    use crate::resource::{Amount, Share};
    use std::io::Write;

    fn frame(file: &str, line: u32, function: &str) -> Frame {
        Frame::new(file, line, function)
    }

    fn site(stack: Vec<Frame>) -> Site {
        let top = stack[0].clone();
        Site {
            file: top.file,
            line: top.line,
            function: top.function,
            share: Share(1.0),
            amount: Amount(10.0),
            leak_type: LeakType::Unknown,
            evidence: String::new(),
            fix: String::new(),
            stack,
            method: Some(SiteMethod::EbpfFrames),
            holder: None,
        }
    }

    fn source_file(text: &str) -> (tempfile::NamedTempFile, String) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(file, "{text}").unwrap();
        let path = file.path().to_string_lossy().into_owned();
        (file, path)
    }

    fn me() -> i32 {
        i32::try_from(std::process::id()).unwrap()
    }

    #[test]
    fn the_allocation_line_moves_to_where_the_value_is_kept() {
        let (_file, path) = source_file(
            "_seen = []\n\ndef handle(request):\n    payload = bytearray(10)\n    _seen.append(payload)\n    return 1\n",
        );
        let d = describe_site(
            me(),
            &site(vec![frame(&path, 4, "handle")]),
            Resource::RssBytes,
        );
        assert_eq!(d.frame.line, 5);
        assert_eq!(d.leak_type, LeakType::UnboundedCollection);
        assert!(
            d.evidence.contains("_seen.append(payload)"),
            "{}",
            d.evidence
        );
        assert!(d.fix.contains("_seen"), "{}", d.fix);
    }

    #[test]
    fn a_value_returned_to_the_caller_is_followed_there() {
        let (_file, path) = source_file(
            "LOSSES = []\n\ndef make():\n    return bytearray(10)\n\ndef step():\n    loss = make()\n    LOSSES.append(loss)\n",
        );
        let stack = vec![frame(&path, 4, "make"), frame(&path, 7, "step")];
        let d = describe_site(me(), &site(stack), Resource::RssBytes);
        assert_eq!((d.frame.line, d.frame.function.as_str()), (8, "step"));
    }

    #[test]
    fn an_unreadable_file_is_unknown_and_says_why() {
        let d = describe_site(
            1,
            &site(vec![frame("<frozen os>", 3, "f")]),
            Resource::Threads,
        );
        assert_eq!(d.leak_type, LeakType::Unknown);
        assert_eq!(d.frame.line, 3);
        assert!(d.evidence.is_empty());
        assert!(d.fix.contains("could not be read"), "{}", d.fix);
    }
}
