//! Sites from the heap census: each growing container that a path names, at the line that
//! fills it. The census says *what* keeps the memory (`app.SERVICE._sessions`, a dict, +250
//! entries/s); the catalog's parser finds the statements that add to it in the files that
//! define the path's module and classes; the catalog explains that line (leak type, evidence,
//! fix). These sites answer "what is kept", where page faults answer "who touched new memory
//! first", which under allocation churn is the churn.

use super::catalog::{explain, fill_lines, method_calls};
use super::source::read_target_source;
use super::{Frame, Holder, LeakType, Site, SiteMethod};
use crate::pyheap::growth::GrowingHolder;
use crate::pyheap::items::Items;
use crate::pyheap::roots::Path;
use crate::pyheap::HeapFindings;
use crate::resource::Resource;
use crate::resource::{Amount, Bytes, Seconds, Share};
use std::collections::HashMap;

/// Holders turned into sites at most.
const MAX_HELD_SITES: usize = 4;

/// Where a holder is filled, explained: found once per holder path (it reads and parses the
/// target's files), then reused for every snapshot.
#[derive(Clone, Debug, PartialEq)]
pub struct FillSite {
    frame: Frame,
    /// Innermost first: the adding line, then the caller that passes what it stores.
    stack: Vec<Frame>,
    leak_type: LeakType,
    evidence: String,
    /// The catalog's fix, when it recognised the line.
    fix: Option<String>,
}

/// Fill sites by holder path; None: no line fills it in the files the path names.
pub type FillCache = HashMap<String, Option<FillSite>>;

/// The census's sites for `rss_bytes`, fastest-growing holder first, with `amount` the bytes
/// its growth keeps over `observed_seconds` at the rate the censuses saw.
pub fn held_sites(
    pid: i32,
    findings: &HeapFindings,
    observed_seconds: f64,
    cache: &mut FillCache,
) -> Vec<Site> {
    findings
        .holders
        .iter()
        .filter_map(|(holder, items)| {
            let path = holder.path.as_ref()?;
            let fill = cache
                .entry(path.display())
                .or_insert_with(|| fill_site(pid, path))
                .as_ref()?;
            Some(site_of(fill, holder, items.as_ref(), observed_seconds))
        })
        .take(MAX_HELD_SITES)
        .collect()
}

/// The holder as the contract shows it.
pub fn holder_of(holder: &GrowingHolder, items: Option<&Items>) -> Holder {
    let mean = items.map_or(8.0, |i| i.mean_bytes);
    Holder {
        path: holder.path.as_ref().map_or_else(
            || format!("<{} at {:#x}>", holder.type_name, holder.address),
            |p| p.display(),
        ),
        type_name: holder.type_name.clone(),
        len_first: holder.len_first,
        len_last: holder.len_last,
        growth_per_second: holder.growth_per_second,
        retained_bytes: Bytes((holder.len_last as f64 * mean) as u64),
        item_types: items.map(|i| i.types.clone()).unwrap_or_default(),
    }
}

/// Finds the line that fills the container at `path`, in the files the path names.
fn fill_site(pid: i32, path: &Path) -> Option<FillSite> {
    let names = path.names();
    let function = path.frame_function();
    // The first file with a line that fills the container.
    let (file, source, fill) = path.files.iter().find_map(|file| {
        let source = read_target_source(pid, file).ok()?;
        let fill = fill_lines(&source, &names, function).into_iter().next()?;
        Some((file.clone(), source, fill))
    })?;
    let fill_frame = Frame::new(&file, fill.line, &fill.function);
    // A method storing its parameter (`subscribe(handler)`): the fix is at its callers.
    let caller = fill
        .stores_parameter_of
        .as_deref()
        .zip(names.len().checked_sub(2).map(|i| names[i]))
        .and_then(|(method, owner)| {
            path.files.iter().find_map(|file| {
                let source = read_target_source(pid, file).ok()?;
                let (line, function) = method_calls(&source, owner, method).into_iter().next()?;
                Some((Frame::new(file, line, &function), source))
            })
        });
    let (frame, source, stack) = match caller {
        Some((frame, caller_source)) => (frame.clone(), caller_source, vec![fill_frame, frame]),
        None => (fill_frame.clone(), source, vec![fill_frame]),
    };
    let explanation = explain(&source, frame.line, Resource::RssBytes);
    let known = explanation.leak_type != LeakType::Unknown;
    Some(FillSite {
        frame,
        stack,
        // The census has seen it grow without bound, whatever the line looks like.
        leak_type: if known {
            explanation.leak_type
        } else {
            LeakType::UnboundedCollection
        },
        evidence: explanation.evidence,
        fix: known.then_some(explanation.fix),
    })
}

fn site_of(
    fill: &FillSite,
    holder: &GrowingHolder,
    items: Option<&Items>,
    observed_seconds: f64,
) -> Site {
    let holder = holder_of(holder, items);
    let per_item = items.map_or(8.0, |i| i.mean_bytes);
    let fix = fill.fix.clone().unwrap_or_else(|| {
        format!(
            "`{}` ({}) grew from {} to {} entries while memory grew, and nothing takes \
             entries out. Bound it (a maximum size with eviction, `collections.deque(maxlen=N)`, \
             `functools.lru_cache(maxsize=N)`), remove entries when their work is done, or \
             hold them weakly (`weakref.WeakValueDictionary`).",
            holder.path, holder.type_name, holder.len_first, holder.len_last
        )
    });
    Site {
        file: fill.frame.file.clone(),
        line: fill.frame.line,
        function: fill.frame.function.clone(),
        share: Share(0.0),
        amount: holder.growth_per_second.over(Seconds(observed_seconds)) * per_item,
        leak_type: fill.leak_type,
        evidence: fill.evidence.clone(),
        fix,
        stack: fill.stack.clone(),
        method: Some(SiteMethod::HeapCensus),
        holder: Some(holder),
    }
}

/// Puts the census's sites first (what is kept beats what touched new pages first) and
/// shares the growth: each census site its estimated share of `growth`, the other sites the
/// rest in their own proportions. The runtime's sites all stay, even on a census site's line:
/// another method's view of the same line is evidence too.
pub fn merge(held: Vec<Site>, others: Vec<Site>, growth: Amount) -> Vec<Site> {
    if held.is_empty() {
        return others;
    }
    let mut out = Vec::with_capacity(held.len() + others.len());
    let mut taken = 0.0;
    for mut site in held {
        site.share = Share(Share::of(site.amount.0, growth.0).0.clamp(0.0, 1.0 - taken));
        taken += site.share.0;
        out.push(site);
    }
    let rest = 1.0 - taken;
    for mut site in others {
        site.share *= rest;
        out.push(site);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyheap::roots::Step;
    use crate::resource::PerSecond;
    use std::sync::Arc;

    const BUS: &str = "\
class EventBus:
    def __init__(self):
        self._handlers = []

    def subscribe(self, handler):
        self._handlers.append(handler)

BUS = EventBus()

def connect(conn):
    BUS.subscribe(conn.on_event)
";

    fn growing(path: Path) -> GrowingHolder {
        GrowingHolder {
            address: 0x1000,
            type_name: "list".into(),
            path: Some(Arc::new(path)),
            len_first: 100,
            len_last: 1100,
            seconds: 10.0,
            growth_per_second: PerSecond(100.0),
            censuses: 5,
        }
    }

    #[test]
    fn a_stored_handler_is_blamed_on_the_call_that_subscribes_it_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bus.py");
        std::fs::write(&file, BUS).unwrap();
        let file = file.to_string_lossy().into_owned();
        let path = Path {
            steps: vec![
                Step::Module("bus".into()),
                Step::Attr("BUS".into()),
                Step::Attr("_handlers".into()),
            ],
            files: vec![file.clone()],
        };
        let items = Items {
            mean_bytes: 500.0,
            types: vec!["method of Connection".into()],
        };
        let findings = HeapFindings {
            holders: vec![(growing(path), Some(items))],
            ..HeapFindings::default()
        };
        let mut cache = FillCache::new();
        let pid = std::process::id() as i32;
        let sites = held_sites(pid, &findings, 20.0, &mut cache);
        assert_eq!(sites.len(), 1);
        let site = &sites[0];
        assert_eq!((site.file.as_str(), site.line), (file.as_str(), 11));
        assert_eq!(
            site.stack.iter().map(|f| f.line).collect::<Vec<_>>(),
            vec![6, 11]
        );
        assert_eq!(site.method, Some(SiteMethod::HeapCensus));
        // 100 entries/s for 20 s, 500 bytes each.
        assert_eq!(site.amount, Amount(1_000_000.0));
        let holder = site.holder.as_ref().unwrap();
        assert_eq!(holder.path, "bus.BUS._handlers");
        assert_eq!(holder.retained_bytes, Bytes(550_000));
        // Found once: a second snapshot reads nothing (the file is gone, the site stays).
        std::fs::remove_file(&file).unwrap();
        assert_eq!(held_sites(pid, &findings, 20.0, &mut cache).len(), 1);
    }

    #[test]
    fn census_sites_come_first_and_shares_add_up() {
        let site = |line: u32, amount: f64, share: f64| Site {
            file: "/a.py".into(),
            line,
            function: "f".into(),
            share: Share(share),
            amount: Amount(amount),
            leak_type: LeakType::Unknown,
            evidence: String::new(),
            fix: String::new(),
            stack: Vec::new(),
            method: None,
            holder: None,
        };
        let merged = merge(
            vec![site(5, 300.0, 0.0)],
            vec![site(9, 800.0, 0.8), site(5, 100.0, 0.2)],
            Amount(1000.0),
        );
        let lines: Vec<u32> = merged.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![5, 9, 5]);
        assert!((merged[0].share.0 - 0.3).abs() < 1e-9);
        assert!((merged[1].share.0 - 0.56).abs() < 1e-9);
        let total: f64 = merged.iter().map(|s| s.share.0).sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
