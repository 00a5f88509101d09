//! The report's `breakdown` of `rss_bytes` and its `memory_kind` (additions agreed in 2026-12):
//! each part of resident memory at the first and the last breakdown, how each was measured,
//! what kind of memory the growth is, and the fixes for that kind.

use crate::detection::Verdict;
use crate::humanize as human;
use crate::memory::advice;
use crate::memory::kind::{classify, GrowthShares, MemoryKind};
use crate::memory::parts::{Breakdown, Part};
use crate::memory::BreakdownFindings;
use crate::resource::Unit;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// First and last bytes of one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstLast {
    pub first: u64,
    pub last: u64,
}

/// `resources[].breakdown` of `rss_bytes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakdownReport {
    /// One entry per part (`python_objects`, `python_allocator_free`, `c_allocator`,
    /// `c_allocator_free`, `native`, `file`, `shmem`).
    #[serde(flatten)]
    pub parts: BTreeMap<String, FirstLast>,
    /// Parts whose figures are estimates, not read.
    pub estimated: Vec<String>,
    /// The sum of the mappings' resident bytes at the first and last breakdown (the parts add
    /// up to it).
    pub rss: FirstLast,
    /// The process's RSS (`/proc/PID/statm`) read right after each of those breakdowns.
    pub rss_statm: FirstLast,
    /// Seconds into the observation of the first and last breakdown.
    pub first_at_seconds: f64,
    pub last_at_seconds: f64,
    /// The share of the growth in live Python objects, native memory, and allocator free space.
    pub growth_shares: BTreeMap<String, f64>,
    /// How each part was measured or estimated.
    pub methods: BTreeMap<String, String>,
    /// Fixes for this kind of memory, most useful first.
    pub fixes: Vec<String>,
    /// Why a reader could not be used; retention that is also a leak.
    pub notes: Vec<String>,
    /// Shared libraries loaded in the target, other than the interpreter and the C library's
    /// own: the native code that native growth may come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub native_libraries: Vec<String>,
    /// Every breakdown kept, oldest first: seconds and bytes per part (for charts).
    pub series: Vec<SeriesPoint>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub at_seconds: f64,
    #[serde(flatten)]
    pub parts: BTreeMap<String, u64>,
}

/// Libraries every CPython process maps: not candidates for native growth.
const COMMON_LIBRARIES: &[&str] = &[
    "libc.so",
    "libc-",
    "ld-linux",
    "libm.so",
    "libpython",
    "libpthread",
    "libdl.so",
    "librt.so",
    "libutil.so",
    "libz.so",
    "liblzma",
    "libbz2",
    "libexpat",
];

fn method(part: Part, b: &Breakdown) -> String {
    let pymalloc = b.pymalloc.is_some();
    let glibc = b.glibc.is_some();
    match part {
        Part::PythonObjects if b.pymalloc.is_some_and(|p| p.sample_stride > 1) => format!("estimated: blocks in use in one pymalloc pool in {} (each header's count times its block size), scaled up: live Python objects of up to 512 bytes; larger objects are in the C allocator's part", b.pymalloc.map_or(1, |p| p.sample_stride)),
        Part::PythonObjects if pymalloc => "read: blocks in use in pymalloc's pools (each pool header's count times its block size), i.e. live Python objects of up to 512 bytes; larger objects are in the C allocator's part".into(),
        Part::PythonObjects if !b.python => "read: none (not a Python process)".into(),
        Part::PythonObjects => "not read: pymalloc's state is unknown for this interpreter, so small objects count as native".into(),
        Part::PythonAllocatorFree if pymalloc => "estimated: pymalloc's carved pools minus the blocks in use (pools are counted resident once carved)".into(),
        Part::PythonAllocatorFree if !b.python => "read: none (not a Python process)".into(),
        Part::PythonAllocatorFree => "not read (pymalloc's state is unknown)".into(),
        Part::CAllocator if glibc => "read: resident bytes of [heap] and glibc's thread-arena heaps (smaps), times the share in use from the arenas' malloc_state (system_mem minus top chunk and binned free chunks)".into(),
        Part::CAllocator => "estimated: resident bytes of [heap] and thread-arena heaps (smaps), all counted in use (glibc's arena headers could not be read)".into(),
        Part::CAllocatorFree if glibc => "read: the rest of those mappings' resident bytes, held free by glibc".into(),
        Part::CAllocatorFree => "not read (glibc's arena headers could not be read)".into(),
        Part::Native => "read: other private anonymous resident bytes (smaps), minus pymalloc's pools: C extensions, ctypes, malloc's mmapped blocks, thread stacks, copied pages of libraries".into(),
        Part::File => "read: resident file pages of the mappings (smaps Rss minus Anonymous)".into(),
        Part::Shmem => "read: resident bytes of shared memory mappings (tmpfs, memfd, SysV, shared anonymous)".into(),
    }
}

/// The Python line native growth enters native code from: the top `rss_bytes` site.
pub struct CallingLine<'a> {
    pub file: &'a str,
    pub line: u32,
    pub evidence: &'a str,
}

/// For native growth: the Python line it enters native code from and the native code loaded
/// that it may be.
fn native_fix(
    kind: MemoryKind,
    site: Option<&CallingLine<'_>>,
    libraries: &[String],
) -> Option<String> {
    if kind != MemoryKind::Native {
        return None;
    }
    let site = site?;
    let names: Vec<&str> = libraries
        .iter()
        .map(|l| l.rsplit('/').next().unwrap_or(l))
        .collect();
    let into = if names.is_empty() {
        String::new()
    } else {
        format!(" into native code ({})", names.join(", "))
    };
    Some(format!(
        "native memory grows from {}:{} ({}){into}: free what that call allocates (for ctypes, the matching free), or release the object of the library that owns it",
        site.file,
        site.line,
        site.evidence.trim()
    ))
}

/// The kind and breakdown of `rss_bytes`, from the breakdowns taken; None without any.
///
/// `census_growth`: bytes the heap census saw Python types gain (GC-tracked objects only), used
/// when pymalloc's state is unknown to tell some Python growth from native growth.
pub fn build(
    findings: &BreakdownFindings,
    verdict: Verdict,
    top_site: Option<&CallingLine<'_>>,
    census_growth: Option<u64>,
) -> Option<(MemoryKind, BreakdownReport)> {
    let (first, last) = (findings.series.first()?, findings.series.last()?);
    let mut last = last.clone();
    let native_growth = last
        .get(Part::Native)
        .saturating_sub(first.get(Part::Native));
    let census_used = match census_growth {
        Some(grown) if last.pymalloc.is_none() && grown > 0 => {
            // pymalloc's arenas sit in `native`: move what the census saw grow out of it.
            let moved = grown.min(native_growth);
            last.bytes[0] += moved;
            last.bytes[4] -= moved;
            moved
        }
        Some(grown) if grown > 0 => {
            // Objects over 512 bytes (a bytearray's buffer, a big list's array) live in the C
            // allocator or in malloc's own mmaps: what the census saw added beyond pymalloc's
            // growth is taken out of those.
            let small = last
                .get(Part::PythonObjects)
                .saturating_sub(first.get(Part::PythonObjects));
            let large = grown.saturating_sub(small);
            let c_growth = last
                .get(Part::CAllocator)
                .saturating_sub(first.get(Part::CAllocator));
            let from_c = large.min(c_growth);
            let from_native = (large - from_c).min(native_growth);
            last.bytes[0] += from_c + from_native;
            last.bytes[2] -= from_c;
            last.bytes[4] -= from_native;
            from_c + from_native
        }
        _ => 0,
    };
    let census_used = census_used > 0;
    if census_used {
        last.estimated.push(Part::PythonObjects);
    }
    let last = &last;
    let mut kind = classify(first, last);
    // Without pymalloc's state the census undercounts Python objects (it sees only the
    // GC-tracked ones): native growth is not called native when the census saw Python growth
    // worth a tenth of it.
    if census_used
        && last.pymalloc.is_none()
        && kind == MemoryKind::Native
        && last.get(Part::PythonObjects) * 10 >= native_growth
    {
        kind = MemoryKind::Mixed;
    }
    let growth = GrowthShares::between(first, last);
    let mut notes = last.notes.clone();
    if census_used && last.pymalloc.is_some() {
        notes.push("objects over 512 bytes that the heap census saw added to growing containers are counted as Python objects (an estimate taken out of the C allocator's and native parts)".into());
    } else if census_used {
        notes.push("pymalloc's state is unknown: the growth of Python objects is the heap census's (GC-tracked objects only: their strings, bytes and ints are not counted), the rest of the anonymous growth counts as native".into());
    }
    if kind == MemoryKind::AllocatorRetention && verdict == Verdict::Leak {
        notes.push(
            "both a leak and allocator retention: live objects do not account for the growth, but the memory the allocators keep grows without bound; trim or change the allocator (fixes), and look for what keeps fragmenting it".into(),
        );
    }
    if let Some(name) = &findings.other_allocator {
        notes.push(format!(
            "{name} is mapped: if it replaces malloc, the C allocator's parts are read as if glibc's"
        ));
    }
    if let Some(cost) = findings.last_cost {
        notes.push(format!(
            "the last breakdown read smaps ({} mappings) in {:.1} ms (the target's mmap lock is taken meanwhile), the allocators in {:.1} ms, {:.1} ms of CPU",
            cost.mappings,
            cost.smaps_seconds * 1e3,
            cost.allocators_seconds * 1e3,
            cost.cpu_seconds * 1e3
        ));
    }
    let parts = Part::ALL
        .iter()
        .map(|&p| {
            (
                p.as_str().to_string(),
                FirstLast {
                    first: first.get(p),
                    last: last.get(p),
                },
            )
        })
        .collect();
    let growth_shares = growth
        .shares()
        .iter()
        .map(|(k, s)| (k.as_str().to_string(), (s * 1000.0).round() / 1000.0))
        .collect();
    let native_libraries: Vec<String> = last
        .libraries
        .iter()
        .filter(|l| !COMMON_LIBRARIES.iter().any(|c| l.contains(c)))
        // The standard library's own extensions, but ctypes: the door to any C library.
        .filter(|l| !l.contains("/lib-dynload/") || l.contains("/lib-dynload/_ctypes"))
        .cloned()
        .collect();
    Some((
        kind,
        BreakdownReport {
            parts,
            estimated: last
                .estimated
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            rss: FirstLast {
                first: first.smaps_rss,
                last: last.smaps_rss,
            },
            rss_statm: FirstLast {
                first: first.statm_rss,
                last: last.statm_rss,
            },
            first_at_seconds: first.at_seconds,
            last_at_seconds: last.at_seconds,
            growth_shares,
            methods: Part::ALL
                .iter()
                .map(|&p| {
                    let how = if census_used && p == Part::PythonObjects && last.pymalloc.is_some() {
                        format!("{} (plus, estimated: objects over 512 bytes the heap census saw added to growing containers)", method(p, last))
                    } else if census_used && p == Part::PythonObjects {
                        "estimated: the growth the heap census saw in Python types (GC-tracked objects' sizes times counts), taken out of native".to_string()
                    } else {
                        method(p, last)
                    };
                    (p.as_str().to_string(), how)
                })
                .collect(),
            fixes: native_fix(kind, top_site, &native_libraries)
                .into_iter()
                .chain(advice::fixes(
                    kind,
                    first,
                    last,
                    findings.other_allocator.as_deref(),
                ))
                .collect(),
            notes,
            native_libraries,
            series: findings
                .series
                .iter()
                .map(|b| SeriesPoint {
                    at_seconds: b.at_seconds,
                    parts: Part::ALL
                        .iter()
                        .map(|&p| (p.as_str().to_string(), b.get(p)))
                        .collect(),
                })
                .collect(),
        },
    ))
}

/// The Markdown section of a breakdown: the kind, a table of the parts, how each was
/// measured, and the fixes.
pub fn render_markdown(out: &mut String, kind: MemoryKind, verdict: Verdict, b: &BreakdownReport) {
    let both = if kind == MemoryKind::AllocatorRetention && verdict == Verdict::Leak {
        " (and a leak: the retained memory keeps growing)"
    } else {
        ""
    };
    let _ = writeln!(out, "\n### Memory breakdown: {}{both}\n", kind.as_str());
    let bytes = |v: u64| human::amount(Unit::Bytes, v as f64);
    let shares: Vec<String> = b
        .growth_shares
        .iter()
        .map(|(k, v)| format!("{k} {:.0}%", v * 100.0))
        .collect();
    let _ = writeln!(
        out,
        "Resident memory from {} to {} between {:.0} s and {:.0} s; growth by kind: {}.\n",
        bytes(b.rss.first),
        bytes(b.rss.last),
        b.first_at_seconds,
        b.last_at_seconds,
        shares.join(", ")
    );
    let _ = writeln!(out, "| part | first | last | measured |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for part in Part::ALL {
        let name = part.as_str();
        let Some(fl) = b.parts.get(name) else {
            continue;
        };
        let how = b.methods.get(name).map_or("", String::as_str);
        let estimate = if b.estimated.iter().any(|e| e == name) {
            " (estimate)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {}{estimate} |",
            bytes(fl.first),
            bytes(fl.last),
            how.replace('|', "\\|")
        );
    }
    if !b.native_libraries.is_empty() && kind != MemoryKind::PythonObjects {
        let _ = writeln!(
            out,
            "\nNative code loaded (where native growth can come from): {}.",
            b.native_libraries.join(", ")
        );
    }
    for note in &b.notes {
        let _ = writeln!(out, "\n- {note}");
    }
    if !b.fixes.is_empty() {
        let _ = writeln!(out, "\n#### Fix\n");
        for fix in &b.fixes {
            let _ = writeln!(out, "- {fix}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::Capabilities;
    use crate::outputs::fixtures::leaking_worker;
    use crate::outputs::report::{render_markdown as markdown, Report};
    use std::time::SystemTime;

    #[test]
    fn without_pymalloc_the_census_tells_python_growth_from_native() {
        const MIB: u64 = 1 << 20;
        let at = |native: u64| Breakdown {
            bytes: [0, 0, 4 * MIB, 0, native, 9 * MIB, 0],
            ..Breakdown::default()
        };
        let findings = BreakdownFindings {
            series: vec![at(10 * MIB), at(70 * MIB)],
            ..BreakdownFindings::default()
        };
        let kind = |census| build(&findings, Verdict::Leak, None, census).unwrap().0;
        assert_eq!(kind(None), MemoryKind::Native);
        assert_eq!(kind(Some(0)), MemoryKind::Native);
        assert_eq!(kind(Some(55 * MIB)), MemoryKind::PythonObjects);
        assert_eq!(kind(Some(25 * MIB)), MemoryKind::Mixed);
        assert_eq!(kind(Some(10 * MIB)), MemoryKind::Mixed);
        let (_, report) = build(&findings, Verdict::Leak, None, Some(25 * MIB)).unwrap();
        assert!(report.estimated.contains(&"python_objects".to_string()));
        assert!(report.methods["python_objects"].contains("heap census"));
        let sum: u64 = report.parts.values().map(|p| p.last).sum();
        assert_eq!(sum, 83 * MIB);
    }

    #[test]
    fn large_objects_the_census_saw_are_python_objects_not_c_heap() {
        use crate::memory::pymalloc::PymallocState;
        const MIB: u64 = 1 << 20;
        let at = |python: u64, c: u64| Breakdown {
            bytes: [python, MIB, c, 0, 2 * MIB, 9 * MIB, 0],
            pymalloc: Some(PymallocState::default()),
            python: true,
            ..Breakdown::default()
        };
        let findings = BreakdownFindings {
            series: vec![at(4 * MIB, 2 * MIB), at(5 * MIB, 52 * MIB)],
            ..BreakdownFindings::default()
        };
        let kind = |census| build(&findings, Verdict::Leak, None, census).unwrap().0;
        assert_eq!(kind(None), MemoryKind::Native);
        // The census saw 46 MiB added; 1 MiB of it is pymalloc's growth already.
        assert_eq!(kind(Some(46 * MIB)), MemoryKind::PythonObjects);
        let (_, report) = build(&findings, Verdict::Leak, None, Some(46 * MIB)).unwrap();
        assert_eq!(report.parts["python_objects"].last, 50 * MIB);
        assert_eq!(report.parts["c_allocator"].last, 7 * MIB);
        assert!(report.estimated.contains(&"python_objects".to_string()));
    }

    #[test]
    fn the_report_carries_the_kind_and_parts_that_add_up() {
        let report = Report::build(
            &leaking_worker(7),
            &Capabilities::default(),
            SystemTime::now(),
        );
        let rss = &report.resources[0];
        assert_eq!(rss.memory_kind, Some(MemoryKind::PythonObjects));
        let b = rss.breakdown.as_ref().unwrap();
        let sum: u64 = b.parts.values().map(|p| p.last).sum();
        assert_eq!(sum, b.rss.last);
        assert_eq!(b.series.len(), 3);
        assert!(b.growth_shares["python_objects"] > 0.9);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["resources"][0]["memory_kind"], "python_objects");
        assert_eq!(
            json["resources"][0]["breakdown"]["python_objects"]["last"],
            74u64 << 20
        );
        // `replay` and `diff` read reports back.
        let back = Report::from_json(&report.to_json().unwrap()).unwrap();
        assert_eq!(back.resources[0].breakdown, rss.breakdown);
        assert_eq!(back.resources[0].memory_kind, rss.memory_kind);
        let text = markdown(&[report]);
        assert!(
            text.contains("### Memory breakdown: python_objects"),
            "{text}"
        );
        assert!(text.contains("| python_objects | 10"), "{text}");
    }
}
