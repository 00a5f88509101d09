//! Parsing of /proc/PID/status: the resident memory split, the thread count and the state,
//! which is all the per-tick memory figures need (statm has no anon/file/shmem split).

use super::Memory;
use crate::resource::Bytes;

/// The fields of /proc/PID/status the sampler uses. `None` where a line is missing or malformed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusFields {
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: Option<char>,
    /// `None` without a `VmRSS:` line: kernel threads and zombies have no address space.
    pub memory: Option<Memory>,
    pub threads: Option<u64>,
}

impl StatusFields {
    /// A zombie (`Z`) or dead (`X`) task has exited: nothing left to sample.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, Some('Z' | 'X'))
    }
}

/// Parses the text of /proc/PID/status. Never fails: unknown, missing or malformed lines leave
/// their field empty.
pub fn parse_status(text: &str) -> StatusFields {
    let mut fields = StatusFields::default();
    let (mut rss, mut anon, mut file, mut shmem) = (None, None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "State" => fields.state = value.trim_start().chars().next(),
            "VmRSS" => rss = parse_kib(value),
            "RssAnon" => anon = parse_kib(value),
            "RssFile" => file = parse_kib(value),
            "RssShmem" => shmem = parse_kib(value),
            "Threads" => fields.threads = value.trim().parse().ok(),
            _ => {}
        }
    }
    // Kernels before 4.5 have VmRSS but not the split: report the total with a zero split.
    fields.memory = rss.map(|total| Memory {
        total,
        anon: anon.unwrap_or_default(),
        file: file.unwrap_or_default(),
        shmem: shmem.unwrap_or_default(),
    });
    fields
}

/// `"   1234 kB"` -> 1234 KiB in bytes.
fn parse_kib(value: &str) -> Option<Bytes> {
    let mut words = value.split_whitespace();
    let number: u64 = words.next()?.parse().ok()?;
    if words.next() != Some("kB") {
        return None;
    }
    number.checked_mul(1024).map(Bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON_STATUS: &str = "Name:\tpython3.11\nUmask:\t0022\nState:\tS (sleeping)\n\
Tgid:\t4242\nNgid:\t0\nPid:\t4242\nPPid:\t1\nVmPeak:\t   30000 kB\nVmSize:\t   29788 kB\n\
VmLck:\t       0 kB\nVmHWM:\t   10004 kB\nVmRSS:\t    9876 kB\nRssAnon:\t    4096 kB\n\
RssFile:\t    5712 kB\nRssShmem:\t      68 kB\nVmData:\t    5000 kB\nThreads:\t3\n\
SigQ:\t0/95744\nCpus_allowed_list:\t0-1\nvoluntary_ctxt_switches:\t12\n";

    #[test]
    fn parses_memory_split_threads_and_state() {
        let fields = parse_status(PYTHON_STATUS);
        assert_eq!(fields.state, Some('S'));
        assert_eq!(fields.threads, Some(3));
        let memory = fields.memory.unwrap();
        assert_eq!(memory.total, Bytes(9876 * 1024));
        assert_eq!(memory.anon, Bytes(4096 * 1024));
        assert_eq!(memory.file, Bytes(5712 * 1024));
        assert_eq!(memory.shmem, Bytes(68 * 1024));
        assert!(!fields.has_exited());
    }

    #[test]
    fn zombie_has_no_memory_and_has_exited() {
        let fields = parse_status("Name:\tpython3\nState:\tZ (zombie)\nTgid:\t7\nThreads:\t1\n");
        assert_eq!(fields.memory, None);
        assert!(fields.has_exited());
    }

    #[test]
    fn a_process_name_with_colons_does_not_confuse_the_parser() {
        let fields = parse_status("Name:\tVmRSS: 1 kB\nState:\tR (running)\nVmRSS:\t2 kB\n");
        assert_eq!(fields.memory.map(|m| m.total), Some(Bytes(2048)));
    }

    #[test]
    fn old_kernel_without_split_reports_total_only() {
        let fields = parse_status("State:\tS (sleeping)\nVmRSS:\t100 kB\nThreads:\t1\n");
        let memory = fields.memory.unwrap();
        assert_eq!(memory.total, Bytes(102_400));
        assert_eq!(memory.anon, Bytes(0));
    }

    #[test]
    fn malformed_input_yields_empty_fields() {
        for text in [
            "",
            ":::",
            "VmRSS:",
            "VmRSS:\tlots kB",
            "VmRSS:\t12 MB",
            "VmRSS:\t99999999999999999999 kB",
            "VmRSS:\t18446744073709551615 kB",
            "Threads:\t-1",
            "State:",
            "\u{0}\u{ffff}\n\n",
        ] {
            let fields = parse_status(text);
            assert_eq!(fields.memory, None, "{text:?}");
            assert_eq!(fields.threads, None, "{text:?}");
        }
    }
}
