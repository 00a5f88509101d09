//! The Markdown report, in the shape of CONTRACT.md: per target a `## Memory Leak Report` with a
//! summary table of every resource, then one `### File: {file}:{line}` section per attributed site
//! (Leak Type, Growth Pattern, Memory Impact, Evidence, Detection, Fix). A growing resource with no
//! attributed site gets a section that says so and why, with its pattern, impact and detection.

use super::model::{Report, ResourceReport, SiteReport};
use crate::attribution::{Holder, LeakType, SiteMethod};
use crate::detection::{DetectorConfig, GrowthPattern, Verdict};
use crate::humanize as human;
use crate::resource::{Amount, Resource, Unit};
use std::fmt::Write as _;

/// All reports, one after the other.
pub fn render_markdown(reports: &[Report]) -> String {
    let mut out = String::new();
    for (i, report) in reports.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        render_report(&mut out, report);
    }
    out
}

/// `container `3f4a5b6c7d8e` (containerd), pod `shop/web-7d9f` (burstable), unit `web.service``.
fn owner_line(labels: &crate::targets::TargetLabels) -> Option<String> {
    let parts: Vec<String> = labels
        .owner_parts()
        .into_iter()
        .map(|(what, name, detail)| match detail {
            Some(detail) => format!("{what} {} ({detail})", code_span(&name)),
            None => format!("{what} {}", code_span(&name)),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

// `write!` into a String cannot fail; its Result is ignored throughout.
fn render_report(out: &mut String, report: &Report) {
    let target = &report.target;
    let observation = &report.observation;
    out.push_str("## Memory Leak Report\n\n");
    let _ = write!(
        out,
        "**Target:** pid {}, {}",
        target.pid,
        code_span(&command_line(&target.cmdline))
    );
    let details: Vec<String> = [
        target.exe.clone(),
        target
            .python_version
            .as_ref()
            .map(|v| format!("Python {v}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !details.is_empty() {
        let _ = write!(out, " ({})", details.join(", "));
    }
    let _ = writeln!(out, "  ");
    if let Some(owner) = owner_line(&target.labels) {
        let _ = writeln!(out, "**Owner:** {owner}  ");
    }
    let _ = writeln!(
        out,
        "**Observed:** {} at one sample every {} ({} samples); report generated {}.  ",
        human::duration(observation.duration_seconds),
        human::duration(observation.interval_seconds),
        observation.samples,
        report.generated_at,
    );
    let capabilities = &report.capabilities;
    let _ = writeln!(
        out,
        "**Capabilities:** procfs {}, eBPF {}, Python stacks {}.",
        on_off(capabilities.procfs),
        on_off(capabilities.ebpf),
        on_off(capabilities.python_stacks),
    );
    for note in &capabilities.notes {
        let _ = writeln!(out, "- {}", one_line(note));
    }
    if let Some(ledgers) = &report.ledgers {
        let _ = writeln!(
            out,
            "\n**Kernel ledgers (eBPF, live since attach):** {} fds ({} pre-existing), {} sockets, \
             {} threads ({} pre-existing), {} new resident pages{}, {} connections accepted.",
            ledgers.fds,
            ledgers.fds_preexisting,
            ledgers.sockets,
            ledgers.threads,
            ledgers.threads_preexisting,
            ledgers.new_resident_pages,
            if ledgers.untracked_pages > 0 {
                format!(" (+{} past the ledger cap)", ledgers.untracked_pages)
            } else {
                String::new()
            },
            ledgers.accepts,
        );
    }
    let _ = writeln!(
        out,
        "\n{}\n",
        verdict_summary(&report.resources, report.observation.duration_seconds.0)
    );

    summary_table(out, &report.resources);
    for resource in &report.resources {
        if let (Some(kind), Some(b)) = (resource.memory_kind, &resource.breakdown) {
            super::breakdown::render_markdown(out, kind, resource.verdict, b);
        }
    }

    for resource in &report.resources {
        if resource.verdict == Verdict::Stable {
            continue;
        }
        if resource.sites.is_empty() {
            unattributed_section(out, report, resource);
        }
        for site in &resource.sites {
            site_section(out, report, resource, site);
        }
        heap_growth(out, resource);
    }
}

/// The types whose instance count kept rising across the heap censuses.
fn heap_growth(out: &mut String, resource: &ResourceReport) {
    if resource.heap_growth.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n### Heap growth by type\n");
    let _ = writeln!(
        out,
        "| type | objects first | objects last | bytes (estimate) |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for row in &resource.heap_growth {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            one_line(&row.type_name).replace('|', "\\|"),
            row.count_first,
            row.count_last,
            human::amount(Unit::Bytes, row.bytes_estimate as f64),
        );
    }
}

/// The verdicts in one sentence; a run too short for a leak verdict says so, with what grew.
fn verdict_summary(resources: &[ResourceReport], seconds: f64) -> String {
    let named = |verdict: Verdict| -> Vec<&str> {
        resources
            .iter()
            .filter(|r| r.verdict == verdict)
            .map(|r| r.resource.as_str())
            .collect()
    };
    let (leaks, growing) = (named(Verdict::Leak), named(Verdict::Growing));
    let mut parts = Vec::new();
    if !leaks.is_empty() {
        parts.push(format!("**leak** in {}", leaks.join(", ")));
    }
    let floor = DetectorConfig::default().min_leak_seconds;
    if !growing.is_empty() && seconds < floor {
        let seen: Vec<String> = resources
            .iter()
            .filter(|r| r.verdict == Verdict::Growing)
            .map(|r| {
                let unit = r.resource.unit();
                format!(
                    "{} +{}",
                    r.resource,
                    human::amount(unit, (r.last - r.first).max(Amount::ZERO))
                )
            })
            .collect();
        parts.push(format!(
            "too short to decide: {} in {} (a leak verdict needs {} or more)",
            seen.join(", "),
            human::duration(seconds),
            human::duration(floor)
        ));
    } else if !growing.is_empty() {
        parts.push(format!(
            "growing, not yet a confident leak: {}",
            growing.join(", ")
        ));
    }
    if parts.is_empty() {
        "**Verdict:** no resource grows.".to_string()
    } else {
        format!("**Verdict:** {}.", parts.join("; "))
    }
}

fn summary_table(out: &mut String, resources: &[ResourceReport]) {
    out.push_str(
        "| Resource | Verdict | Pattern | First → Last | Rate | Time to limit | Confidence |\n",
    );
    out.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for r in resources {
        let unit = r.resource.unit();
        let verdict = match r.verdict {
            Verdict::Leak => "**leak**",
            other => other.as_str(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} → {} | {} | {} | {} |",
            r.resource,
            verdict,
            r.growth_pattern.as_str(),
            human::amount(unit, r.first),
            human::amount(unit, r.last),
            human::rate(unit, r.rate_per_second),
            r.seconds_to_limit
                .map_or_else(|| "—".to_string(), |s| human::duration(s.0)),
            human::percent(r.confidence),
        );
    }
}

fn site_section(out: &mut String, report: &Report, resource: &ResourceReport, site: &SiteReport) {
    let unit = resource.resource.unit();
    let _ = writeln!(out, "\n### File: {}:{}\n", one_line(&site.file), site.line);
    let _ = writeln!(
        out,
        "In `{}`: {} of the {} growth attributed to source lines ({}).",
        one_line(&site.function),
        human::percent(site.share),
        resource.resource,
        human::amount(unit, site.amount),
    );

    let _ = writeln!(out, "\n#### Leak Type\n");
    let (name, meaning) = describe_leak_type(site.leak_type);
    let _ = writeln!(out, "`{name}`: {meaning}");

    growth_pattern(out, resource);

    memory_impact(out, resource);
    let _ = writeln!(
        out,
        "- Attributed to this line: {}",
        human::amount(unit, site.amount)
    );

    if let Some(holder) = &site.holder {
        held_by(out, holder);
    }

    let _ = writeln!(out, "\n#### Evidence\n");
    if site.evidence.trim().is_empty() {
        let _ = writeln!(
            out,
            "The source of {}:{} could not be read.",
            site.file, site.line
        );
    } else {
        out.push_str(&code_block("python", &site.evidence));
    }
    if !site.stack.is_empty() {
        let _ = writeln!(out, "\nPython stack, innermost first:\n");
        for frame in &site.stack {
            let _ = writeln!(
                out,
                "- `{}:{}` in `{}`",
                frame.file,
                frame.line,
                one_line(&frame.function)
            );
        }
    }

    detection(out, report, resource);
    let _ = writeln!(
        out,
        "- Source line: {}; {}:{} accounts for {} of the attributed growth.",
        describe_method(site.method),
        one_line(&site.file),
        site.line,
        human::percent(site.share),
    );

    let _ = writeln!(out, "\n#### Fix\n");
    if site.fix.trim().is_empty() {
        let _ = writeln!(out, "No fix is known for this pattern.");
    } else {
        let _ = writeln!(out, "{}", site.fix.trim_end());
    }
}

/// What keeps the memory: the holder the heap census named.
fn held_by(out: &mut String, holder: &Holder) {
    let _ = writeln!(out, "\n#### Held by\n");
    let _ = writeln!(
        out,
        "`{}` ({}): {} -> {} entries, {} entries; its entries keep about {}.",
        one_line(&holder.path),
        one_line(&holder.type_name),
        holder.len_first,
        holder.len_last,
        human::per_second(Unit::Count, holder.growth_per_second),
        human::amount(Unit::Bytes, holder.retained_bytes.as_f64()),
    );
    if !holder.item_types.is_empty() {
        let items: Vec<String> = holder
            .item_types
            .iter()
            .map(|t| format!("`{}`", one_line(t)))
            .collect();
        let _ = writeln!(out, "Entries: {}.", items.join(", "));
    }
}

fn unattributed_section(out: &mut String, report: &Report, resource: &ResourceReport) {
    let _ = writeln!(
        out,
        "\n### Resource: {} (no source line attributed)\n",
        resource.resource
    );
    let capabilities = &report.capabilities;
    let why = if !capabilities.python_stacks {
        "Python stack attribution is not available in this run".to_string()
    } else if report.target.python_version.is_none() {
        "the target was not recognised as a Python process".to_string()
    } else {
        "no Python stack could be tied to this growth during the observation".to_string()
    };
    let _ = write!(
        out,
        "No Python source line is attributed to this growth yet: {why}"
    );
    if capabilities.notes.is_empty() {
        out.push_str(".\n");
    } else {
        let notes: Vec<String> = capabilities.notes.iter().map(|n| one_line(n)).collect();
        let _ = writeln!(out, " ({}).", notes.join("; "));
    }
    growth_pattern(out, resource);
    memory_impact(out, resource);
    detection(out, report, resource);
}

fn growth_pattern(out: &mut String, resource: &ResourceReport) {
    let unit = resource.resource.unit();
    let _ = writeln!(out, "\n#### Growth Pattern\n");
    let _ = writeln!(
        out,
        "`{}`: {} {} went from {} to {}.",
        resource.growth_pattern.as_str(),
        describe_pattern(resource.growth_pattern),
        resource.resource,
        human::amount(unit, resource.first),
        human::amount(unit, resource.last),
    );
}

fn memory_impact(out: &mut String, resource: &ResourceReport) {
    let unit = resource.resource.unit();
    let _ = writeln!(out, "\n#### Memory Impact\n");
    let _ = writeln!(
        out,
        "- Growth rate: {}",
        human::rate(unit, resource.rate_per_second)
    );
    if let Some(per_event) = &resource.per_event {
        let _ = writeln!(
            out,
            "- Per event: {} per `{}`",
            human::amount(unit, per_event.amount),
            one_line(&per_event.event)
        );
    }
    let limit = resource.limit.map(|l| human::amount(unit, l));
    let time_to_limit = match (resource.seconds_to_limit, limit) {
        (Some(seconds), Some(limit)) => format!("{} (limit {limit})", human::duration(seconds.0)),
        (Some(seconds), None) => human::duration(seconds.0),
        (None, Some(limit)) => format!("not reached at the current rate (limit {limit})"),
        (None, None) => "unknown: no limit is known for this resource".to_string(),
    };
    let _ = writeln!(out, "- Time to limit: {time_to_limit}");
}

fn detection(out: &mut String, report: &Report, resource: &ResourceReport) {
    let observation = &report.observation;
    let _ = writeln!(out, "\n#### Detection\n");
    let _ = writeln!(
        out,
        "- Measured: {}",
        describe_measurement(resource.resource)
    );
    let _ = writeln!(
        out,
        "- How: one sample every {} for {} ({} samples), from outside the process: no restart, \
         no code injected.",
        human::duration(observation.interval_seconds),
        human::duration(observation.duration_seconds),
        observation.samples,
    );
    let _ = writeln!(
        out,
        "- Verdict: `{}` with confidence {}. A leak is growth that is sustained and keeps setting \
         new highs; warm-up, a cache filling to its bound and GC sawtooth are not leaks.",
        resource.verdict.as_str(),
        human::percent(resource.confidence),
    );
    let floor = DetectorConfig::default().min_leak_seconds;
    if let Some(since) = resource.verdict_since_seconds.filter(|s| s.0 < floor) {
        let _ = writeln!(
            out,
            "- Called a leak at {}, before the {} the series alone needs: it passed every other \
             test at stricter levels, and its top line is one that never gives back what it makes.",
            human::duration(since.0),
            human::duration(floor),
        );
    }
    if !resource.verdict_changes.is_empty() {
        let changes: Vec<String> = resource
            .verdict_changes
            .iter()
            .map(|c| {
                format!(
                    "{} → {} at {}",
                    c.from.as_str(),
                    c.to.as_str(),
                    human::duration(c.at_seconds)
                )
            })
            .collect();
        let _ = writeln!(out, "- Verdict changes: {}.", changes.join(", "));
    }
    let _ = writeln!(
        out,
        "- Reproduce: {}",
        code_span(&reproduce_command(report))
    );
}

/// The command that observes the same target the same way.
fn reproduce_command(report: &Report) -> String {
    let observation = &report.observation;
    // The report covers first to last sample; ask for at least that long, in whole seconds.
    let duration = observation.duration_seconds.0.ceil().max(1.0);
    let interval_ms = (observation.interval_seconds.0 * 1000.0).round().max(1.0);
    format!(
        "leak-monitor run --pid {} --duration {duration:.0} --interval {interval_ms:.0} --markdown report.md",
        report.target.pid
    )
}

/// How a site was attributed, for the Detection section.
fn describe_method(method: Option<SiteMethod>) -> String {
    let how = match method {
        Some(SiteMethod::SampledAtGrowth) => {
            "Python stacks read from outside (py-spy, without pausing the process) while the \
             resource grew, each read weighted by the growth around it (the thread's new pages \
             for memory, the process's new fds or threads otherwise); the blamed frame is the \
             innermost one outside the standard library and installed packages"
        }
        Some(SiteMethod::EbpfLedger) => {
            "a ledger of the creating events traced with eBPF, each holding the creating \
             thread's Python stack"
        }
        Some(SiteMethod::EbpfFrames) => {
            "Python frames walked in the kernel at each creating event (eBPF)"
        }
        Some(SiteMethod::HeapCensus) => {
            "censuses of the Python heap read from outside while memory grew (every object on \
             the collector's lists and the containers reachable from module globals and thread \
             frames): the container named below kept growing, and this is the line that adds to it"
        }
        None => return "attributed from the Python stacks at this resource's growth".to_string(),
    };
    match method {
        Some(method) => format!("method `{}`: {how}", method.as_str()),
        None => how.to_string(),
    }
}

fn describe_measurement(resource: Resource) -> &'static str {
    match resource {
        Resource::RssBytes => "resident memory (RSS: anonymous, file-backed and shared pages) from /proc/PID/status",
        Resource::OpenFds => "open file descriptors, the entries of /proc/PID/fd",
        Resource::Sockets => "sockets: socket descriptors in /proc/PID/fd, matched with the /proc/net tables for protocol and state",
        Resource::Threads => "threads, from /proc/PID/status",
    }
}

fn describe_pattern(pattern: GrowthPattern) -> &'static str {
    match pattern {
        GrowthPattern::Linear => "it grows by a steady amount per second, the mark of something kept on every request or iteration;",
        GrowthPattern::Quadratic => "its growth speeds up over time: each step keeps more than the one before;",
        GrowthPattern::Exponential => "it grows by a steady factor, doubling at a steady pace;",
        GrowthPattern::Step => "it grows in jumps with flat stretches between, as when batches or rare events keep something;",
        GrowthPattern::Sawtooth => "it rises and drops back, as garbage collection or periodic cleanup does;",
        GrowthPattern::Plateau => "it grew and then levelled off, as warm-up or a cache reaching its bound does;",
        GrowthPattern::Flat => "it did not change significantly;",
    }
}

/// The contract name of a leak type and what it means.
fn describe_leak_type(leak_type: LeakType) -> (&'static str, &'static str) {
    match leak_type {
        LeakType::UnboundedCollection => ("unbounded_collection", "a list, dict or set that only ever gains entries."),
        LeakType::UnboundedCache => ("unbounded_cache", "a cache with no size bound or eviction (for example `functools.lru_cache(maxsize=None)` or a dict used as a cache)."),
        LeakType::CircularReference => ("circular_reference", "objects that refer to each other, kept alive until the cycle collector runs, or forever when it cannot free them."),
        LeakType::EventHandler => ("event_handler", "callbacks or listeners registered again and again and never removed; each keeps its closure alive."),
        LeakType::ResourceNotClosed => ("resource_not_closed", "files, sockets or other handles opened and never closed."),
        LeakType::TensorAccumulation => ("tensor_accumulation", "tensors kept across iterations, often with their autograd graph (for example summing a loss without `.item()`)."),
        LeakType::ThreadNotJoined => ("thread_not_joined", "threads started and never finished or joined."),
        LeakType::Unknown => ("unknown", "growth at this line that matches none of the known patterns."),
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// A command line as a shell would take it back: arguments with spaces or quotes are quoted.
fn command_line(args: &[String]) -> String {
    if args.is_empty() {
        return "(no command line)".to_string();
    }
    args.iter()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if plain {
                arg.clone()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text as a Markdown code span, with a fence longer than any backtick run inside it.
fn code_span(text: &str) -> String {
    let text = one_line(text);
    let fence = "`".repeat(longest_backtick_run(&text) + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// Text as a fenced code block that its own backticks cannot close.
fn code_block(language: &str, text: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(text).max(2) + 1);
    format!(
        "{fence}{language}\n{}\n{fence}\n",
        text.trim_end_matches('\n')
    )
}

fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Newlines would break a heading, a table row or a list item apart.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests;
