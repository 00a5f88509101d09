//! Why the top site comes first, when that is not obvious: the two largest sites hold close
//! shares of the growth and are of different kinds (say an `unknown` line of churn ranked above
//! a line the pattern catalog recognises as an unbounded collection). Sites are ranked by the
//! growth measured at them in this run, not by how sure the catalog is; the sentence says so.

use crate::attribution::LeakType;
use crate::humanize;
use crate::outputs::report::{ResourceReport, SiteReport};
use crate::resource::Share;

/// The second site's share is "close" when it is at least this fraction of the first's.
const CLOSE: f64 = 0.6;

/// A sentence explaining the order of the top two sites, or None when it needs none.
pub fn explain(resource: &ResourceReport) -> Option<String> {
    let [first, second, ..] = resource.sites.as_slice() else {
        return None;
    };
    if first.leak_type == second.leak_type
        || first.share <= Share(0.0)
        || second.share < first.share * CLOSE
    {
        return None;
    }
    let mut text = format!(
        "Sites are ranked by the share of the {} growth measured at them in this run: {} ({}, {}) comes first with {}, {} ({}, {}) second with {}. The shares are close, so the order could change in a longer run.",
        resource.resource,
        place(first),
        kind(first.leak_type),
        first.function,
        humanize::percent(first.share),
        place(second),
        kind(second.leak_type),
        second.function,
        humanize::percent(second.share),
    );
    if first.leak_type == LeakType::Unknown {
        text.push_str(&format!(
            " The first line matches no known leak pattern (it may be churn: memory that is allocated and freed again), while the second is a recognised {}, which keeps growing by construction: look at it too.",
            kind(second.leak_type)
        ));
    } else if second.leak_type == LeakType::Unknown {
        text.push_str(" The second line matches no known leak pattern.");
    }
    Some(text)
}

fn place(site: &SiteReport) -> String {
    let short = site.file.rsplit('/').next().unwrap_or(&site.file);
    format!("{short}:{}", site.line)
}

fn kind(leak_type: LeakType) -> String {
    serde_json::to_value(leak_type)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_else(|| "unknown".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::report::Report;

    fn resource_with(shares: [(f64, LeakType); 2]) -> ResourceReport {
        let report = Report::from_json(include_str!("../report/fixtures/contract_example.json"))
            .expect("the contract example parses");
        let mut resource = report.resources[0].clone();
        let template = resource.sites[0].clone();
        resource.sites = shares
            .iter()
            .enumerate()
            .map(|(i, &(share, leak_type))| SiteReport {
                line: 10 + i as u32,
                share: Share(share),
                leak_type,
                ..template.clone()
            })
            .collect();
        resource
    }

    #[test]
    fn close_sites_of_different_kinds_are_explained() {
        let r = resource_with([
            (0.52, LeakType::Unknown),
            (0.41, LeakType::UnboundedCollection),
        ]);
        let why = explain(&r).expect("an explanation");
        assert!(why.contains("render.py:10 (unknown, handle)"), "{why}");
        assert!(
            why.contains("render.py:11 (unbounded collection, handle)"),
            "{why}"
        );
        assert!(why.contains("52 %") && why.contains("41 %"), "{why}");
        assert!(why.contains("recognised unbounded collection"), "{why}");
    }

    #[test]
    fn distant_shares_or_the_same_kind_need_no_explanation() {
        let far = resource_with([
            (0.9, LeakType::Unknown),
            (0.1, LeakType::UnboundedCollection),
        ]);
        assert_eq!(explain(&far), None);
        let same = resource_with([(0.5, LeakType::Unknown), (0.45, LeakType::Unknown)]);
        assert_eq!(explain(&same), None);
    }
}
