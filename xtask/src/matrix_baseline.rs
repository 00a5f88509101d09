//! `xtask/matrix-baseline.txt`: the rows of `cargo xtask matrix` and what each must keep (an
//! `ebpf_frames` site at the workload's line, the census's holder line, or nothing). The
//! matrix runs exactly these rows, so an interpreter that goes missing fails it too.

use anyhow::{bail, Context};

/// What a row must keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Verdict `leak` and an `ebpf_frames` site at the `# LEAK` line.
    EbpfFrames,
    /// Verdict `leak` and the top site a `heap_census` one at the `# LEAK` line.
    HeapCensus,
    /// Nothing: the row is shown, not judged.
    Nothing,
}

impl Expect {
    pub fn name(self) -> &'static str {
        match self {
            Expect::EbpfFrames => "ebpf_frames",
            Expect::HeapCensus => "heap_census",
            Expect::Nothing => "none",
        }
    }
}

/// One row of the baseline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// `3.12 pyenv venv` (see `matrix_interpreters`).
    pub interpreter: String,
    /// `rss_leak`: `tests/python/rss_leak.py`.
    pub workload: String,
    pub expect: Expect,
}

pub const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/matrix-baseline.txt");

pub fn load() -> anyhow::Result<Vec<Expected>> {
    let text = std::fs::read_to_string(PATH).with_context(|| PATH.to_owned())?;
    parse(&text).with_context(|| PATH.to_owned())
}

pub fn parse(text: &str) -> anyhow::Result<Vec<Expected>> {
    let mut rows: Vec<Expected> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        let [interpreter, workload, expect] = fields[..] else {
            bail!("line {}: want `interpreter | workload | expected`", n + 1);
        };
        let expect = match expect {
            "ebpf_frames" => Expect::EbpfFrames,
            "heap_census" => Expect::HeapCensus,
            "none" => Expect::Nothing,
            other => bail!("line {}: unknown expectation {other:?}", n + 1),
        };
        let interpreter = interpreter.split_whitespace().collect::<Vec<_>>().join(" ");
        if rows
            .iter()
            .any(|r| r.interpreter == interpreter && r.workload == workload)
        {
            bail!("line {}: {interpreter} | {workload} twice", n + 1);
        }
        rows.push(Expected {
            interpreter,
            workload: workload.to_owned(),
            expect,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_refuses_bad_ones() {
        let rows = parse("# c\n\n3.12  pyenv venv | rss_leak | ebpf_frames\n3.10 pyenv | held_service_dict | none\n").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].interpreter, "3.12 pyenv venv");
        assert_eq!(rows[0].expect, Expect::EbpfFrames);
        assert_eq!(rows[1].expect, Expect::Nothing);
        assert!(parse("3.12 pyenv | rss_leak").is_err());
        assert!(parse("3.12 pyenv | rss_leak | exact").is_err());
        assert!(parse("3.12 pyenv | a | none\n3.12 pyenv | a | none").is_err());
    }

    #[test]
    fn the_committed_baseline_parses() {
        let rows = load().unwrap();
        assert!(rows.len() >= 35, "{}", rows.len());
    }
}
