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
use crate::pyheap::HeapFindings;
use crate::resource::Resource;

/// Holders turned into sites at most.
const MAX_HELD_SITES: usize = 4;

/// The census's sites for `rss_bytes`, fastest-growing holder first, with `amount` the bytes
/// its growth keeps over `observed_seconds` at the rate the censuses saw.
pub fn held_sites(pid: i32, findings: &HeapFindings, observed_seconds: f64) -> Vec<Site> {
    findings
        .holders
        .iter()
        .filter(|(h, _)| h.path.is_some())
        .filter_map(|(holder, items)| held_site(pid, holder, items.as_ref(), observed_seconds))
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
        retained_bytes: (holder.len_last as f64 * mean) as u64,
        item_types: items.map(|i| i.types.clone()).unwrap_or_default(),
    }
}

fn held_site(
    pid: i32,
    holder: &GrowingHolder,
    items: Option<&Items>,
    observed_seconds: f64,
) -> Option<Site> {
    let path = holder.path.as_ref()?;
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
    let (site_frame, site_source, stack) = match caller {
        Some((frame, caller_source)) => (frame.clone(), caller_source, vec![fill_frame, frame]),
        None => (fill_frame.clone(), source, vec![fill_frame]),
    };
    let explanation = explain(&site_source, site_frame.line, Resource::RssBytes);
    let holder = holder_of(holder, items);
    let per_item = items.map_or(8.0, |i| i.mean_bytes);
    let amount = holder.growth_per_second * observed_seconds * per_item;
    let (leak_type, fix) = match explanation.leak_type {
        // The census has seen it grow without bound, whatever the line looks like.
        LeakType::Unknown => (
            LeakType::UnboundedCollection,
            format!(
                "`{}` ({}) grew from {} to {} entries while memory grew, and nothing takes \
                 entries out. Bound it (a maximum size with eviction, `collections.deque(maxlen=N)`, \
                 `functools.lru_cache(maxsize=N)`), remove entries when their work is done, or \
                 hold them weakly (`weakref.WeakValueDictionary`).",
                holder.path, holder.type_name, holder.len_first, holder.len_last
            ),
        ),
        other => (other, explanation.fix),
    };
    Some(Site {
        file: site_frame.file.clone(),
        line: site_frame.line,
        function: site_frame.function.clone(),
        share: 0.0,
        amount,
        leak_type,
        evidence: explanation.evidence,
        fix,
        stack,
        method: Some(SiteMethod::HeapCensus),
        holder: Some(holder),
    })
}

/// Puts the census's sites first (what is kept beats what touched new pages first) and
/// shares the growth: each census site its estimated share of `growth`, the other sites the
/// rest in their own proportions.
pub fn merge(held: Vec<Site>, others: Vec<Site>, growth: f64) -> Vec<Site> {
    if held.is_empty() {
        return others;
    }
    let mut out = Vec::with_capacity(held.len() + others.len());
    let mut taken = 0.0;
    for mut site in held {
        site.share = if growth > 0.0 {
            (site.amount / growth).clamp(0.0, 1.0 - taken)
        } else {
            0.0
        };
        taken += site.share;
        out.push(site);
    }
    let rest = 1.0 - taken;
    for mut site in others {
        if out
            .iter()
            .any(|s| s.file == site.file && s.line == site.line)
        {
            continue;
        }
        site.share *= rest;
        out.push(site);
    }
    out
}
