//! Which reports of a report directory to compare: per program, its newest process against the
//! process before it (the last deploy against the one before). Pure: reports in, pairs out.
//!
//! A program is its command line in its place: the Kubernetes namespace, else the systemd unit.
//! Not the container id or `identity`: a deploy starts a new container, and that is the very
//! change to compare across.

use crate::outputs::report::Report;
use std::collections::BTreeMap;

/// Two reports of one program: `old` of the process before, `new` of the newest.
pub struct Release<'a, T> {
    pub program: String,
    pub old: &'a T,
    pub new: &'a T,
}

/// Pairs per program, ordered by program; programs seen in one process only are left out.
/// `report` reads the report out of each item (which may carry its file name).
pub fn releases<T>(items: &[T], report: impl Fn(&T) -> &Report) -> Vec<Release<'_, T>> {
    // Program -> process (start time, pid) -> its newest report.
    let mut programs: BTreeMap<String, BTreeMap<(u64, i32), &T>> = BTreeMap::new();
    for item in items {
        let r = report(item);
        let process = (r.target.start_time_unix.to_bits(), r.target.pid);
        let newest = programs
            .entry(program(r))
            .or_default()
            .entry(process)
            .or_insert(item);
        if report(newest).generated_at < r.generated_at {
            *newest = item;
        }
    }
    programs
        .into_iter()
        .filter_map(|(program, processes)| {
            // Start times are positive, so their bit patterns sort as the numbers do.
            let mut latest = processes.into_values().rev();
            let new = latest.next()?;
            let old = latest.next()?;
            Some(Release { program, old, new })
        })
        .collect()
}

/// `namespace shop: python3 app.py`, `unit web.service: ...`, or the command line alone.
fn program(report: &Report) -> String {
    let labels = &report.target.labels;
    let command = report.target.cmdline.join(" ");
    match (&labels.namespace, &labels.unit) {
        (Some(namespace), _) => format!("namespace {namespace}: {command}"),
        (None, Some(unit)) => format!("unit {unit}: {command}"),
        (None, None) => command,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // A test that fails on unwrap says where.
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const EXAMPLE: &str = include_str!("../report/fixtures/contract_example.json");

    fn report(name: &str, cmd: &str, pid: i32, started: f64, generated: u64) -> (String, Report) {
        let mut r = Report::from_json(EXAMPLE).unwrap();
        r.target.cmdline = cmd.split(' ').map(str::to_owned).collect();
        r.target.pid = pid;
        r.target.start_time_unix = started;
        r.generated_at =
            crate::outputs::report::Timestamp::new(UNIX_EPOCH + Duration::from_secs(generated));
        (name.to_owned(), r)
    }

    fn names(items: &[(String, Report)]) -> Vec<(String, String, String)> {
        releases(items, |(_, r)| r)
            .into_iter()
            .map(|p| (p.program, p.old.0.clone(), p.new.0.clone()))
            .collect()
    }

    #[test]
    fn the_newest_process_against_the_one_before_each_with_its_newest_report() {
        let items = vec![
            report("a-first", "python3 app.py", 10, 1000.0, 2000),
            report("a-second-early", "python3 app.py", 20, 3000.0, 3100),
            report("a-second-late", "python3 app.py", 20, 3000.0, 3900),
            report("a-oldest", "python3 app.py", 5, 500.0, 600),
            report("a-first-late", "python3 app.py", 10, 1000.0, 2500),
            report("b-alone", "python3 batch.py", 30, 100.0, 200),
        ];
        assert_eq!(
            names(&items),
            [(
                "python3 app.py".to_owned(),
                "a-first-late".to_owned(),
                "a-second-late".to_owned()
            )]
        );
    }

    #[test]
    fn programs_are_apart_by_namespace_or_unit_not_by_container() {
        let mut items = vec![
            report("shop-old", "python3 app.py", 10, 1000.0, 2000),
            report("shop-new", "python3 app.py", 20, 3000.0, 4000),
            report("test-old", "python3 app.py", 11, 1000.0, 2000),
            report("test-new", "python3 app.py", 21, 3000.0, 4000),
        ];
        for (i, (_, r)) in items.iter_mut().enumerate() {
            r.target.labels.namespace = Some(if i < 2 { "shop" } else { "test" }.into());
            // Each deploy runs in a new container.
            r.target.labels.container_id = Some(format!("c{i}"));
        }
        let got = names(&items);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].0, "namespace shop: python3 app.py");
        assert_eq!(
            (got[0].1.as_str(), got[0].2.as_str()),
            ("shop-old", "shop-new")
        );
        assert_eq!(
            (got[1].1.as_str(), got[1].2.as_str()),
            ("test-old", "test-new")
        );
    }
}
