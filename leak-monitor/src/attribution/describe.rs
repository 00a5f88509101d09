//! What a site is: its leak type, the evidence quoted from the target's own source, and the fix.
//!
//! `describe_site` is the one place that decides it: it reads the site's file as the target sees
//! it (through `/proc/PID/root`, so a container's files are the ones read) and hands the source
//! to the pattern catalog, which parses it and classifies the line for the resource that grew.

use super::catalog::explain;
use super::source::read_target_source;
use super::{LeakType, Site};
use crate::resource::Resource;

/// The leak type, the evidence (source lines around the site) and the fix for one site.
pub fn describe_site(pid: i32, site: &Site, resource: Resource) -> (LeakType, String, String) {
    match read_target_source(pid, &site.file) {
        Ok(source) => {
            let explanation = explain(&source, site.line, resource);
            (explanation.leak_type, explanation.evidence, explanation.fix)
        }
        Err(err) => (
            LeakType::Unknown,
            String::new(),
            format!(
                "The source of {}:{} (in `{}`) could not be read ({err}), so the line could not be \
                 classified. Check what it creates or stores on every call and whether that is \
                 ever released (closed, joined, removed from its container, or bounded).",
                site.file, site.line, site.function
            ),
        ),
    }
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
    fn classifies_the_site_from_the_targets_own_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        write!(
            file,
            "_seen = []\n\ndef handle(request):\n    _seen.append(request)\n    return len(_seen)\n"
        )
        .unwrap();
        let path = file.path().to_string_lossy().into_owned();
        let pid = i32::try_from(std::process::id()).unwrap();
        let (leak_type, evidence, fix) = describe_site(pid, &site(&path, 4), Resource::RssBytes);
        assert_eq!(leak_type, LeakType::UnboundedCollection);
        assert!(
            evidence.contains(">") && evidence.contains("_seen.append(request)"),
            "{evidence}"
        );
        assert!(fix.contains("_seen"), "{fix}");
    }

    #[test]
    fn an_unreadable_file_is_unknown_and_says_why() {
        let (leak_type, evidence, fix) =
            describe_site(1, &site("<frozen os>", 3), Resource::Threads);
        assert_eq!(leak_type, LeakType::Unknown);
        assert!(evidence.is_empty());
        assert!(fix.contains("could not be read"), "{fix}");
    }
}
