//! Parsing of /proc/PID/stat: the process name, state, flags and start time that identify a
//! process and tell kernel threads apart.

/// `PF_KTHREAD` in the `flags` field (include/linux/sched.h).
const PF_KTHREAD: u32 = 0x0020_0000;

/// The fields of /proc/PID/stat used to identify a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFields<'a> {
    /// `comm`, the name between the parentheses (may itself contain `)` and spaces).
    pub comm: &'a str,
    pub state: char,
    pub ppid: i32,
    pub flags: u32,
    /// Field 22: clock ticks after boot at which the process started.
    pub start_ticks: u64,
    /// Fields 10 and 12: minor and major page faults (of every thread, in /proc/PID/stat).
    pub faults: u64,
    /// Fields 14 and 15: user and system CPU time in clock ticks (every thread).
    pub cpu_ticks: u64,
}

impl StatFields<'_> {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// A zombie (`Z`) or dead (`X`) process has exited.
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the one line of /proc/PID/stat: `pid (comm) state ppid pgrp session tty_nr tpgid flags
/// ... starttime ...`. The name is delimited by the first `(` and the *last* `)` because it can
/// contain both. `None` when malformed.
pub fn parse_stat(text: &str) -> Option<StatFields<'_>> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?;
    let mut fields = text.get(close + 1..)?.split_ascii_whitespace();
    let mut state_chars = fields.next()?.chars();
    let state = state_chars.next()?;
    if state_chars.next().is_some() {
        return None;
    }
    let ppid = fields.next()?.parse().ok()?;
    // pgrp, session, tty_nr, tpgid, then flags.
    let flags = fields.nth(4)?.parse().ok()?;
    let mut number = || -> Option<u64> { fields.next()?.parse().ok() };
    let (minflt, _cminflt, majflt, _cmajflt) = (number()?, number()?, number()?, number()?);
    let (utime, stime) = (number()?, number()?);
    // cutime cstime priority nice num_threads itrealvalue, then starttime.
    let start_ticks = fields.nth(6)?.parse().ok()?;
    Some(StatFields {
        comm,
        state,
        ppid,
        flags,
        start_ticks,
        faults: minflt + majflt,
        cpu_ticks: utime + stime,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PYTHON: &str = "4242 (python3.11) S 1 4242 4242 34816 4242 4194304 1506 0 0 0 \
        12 3 0 0 20 0 3 0 987654 31002624 2469 18446744073709551615 1 1 0 0 0 0 0 16781312 \
        134217730 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn parses_a_python_process() {
        let stat = parse_stat(PYTHON).unwrap();
        assert_eq!(stat.comm, "python3.11");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.ppid, 1);
        assert_eq!(stat.start_ticks, 987_654);
        assert_eq!(stat.faults, 1506);
        assert_eq!(stat.cpu_ticks, 15);
        assert!(!stat.is_kernel_thread());
        assert!(!stat.has_exited());
    }

    #[test]
    fn names_with_parentheses_and_spaces() {
        let text = "7 (my (odd) name) Z 1 7 7 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        let stat = parse_stat(text).unwrap();
        assert_eq!(stat.comm, "my (odd) name");
        assert_eq!(stat.start_ticks, 55);
        assert!(stat.has_exited());
    }

    #[test]
    fn kernel_threads_are_flagged() {
        let text = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 3 0 0";
        assert!(parse_stat(text).unwrap().is_kernel_thread());
    }

    #[test]
    fn malformed_lines_are_rejected() {
        for text in [
            "",
            "(",
            ")(",
            "1 (a)",
            "1 (a) S",
            "1 (a) SS 1 1 1 1 1 1 0 0 0 0 0 0 0 0 0 0 1 0 5",
            "1 (a) S x 1 1 1 1 1 0 0 0 0 0 0 0 0 0 0 1 0 5",
            "1 (a) S 1 1 1 1 1 -4 0 0 0 0 0 0 0 0 0 0 1 0 5",
            "1 (a) S 1 1 1 1 1 1 0 0 0 0 0 0 0 0 0 0 1 0",
            "1 (a) S 1 1 1 1 1 1 0 0 0 0 0 0 0 0 0 0 1 0 -5",
            "1 (\u{e9}) \u{e9}\u{e9} 1",
        ] {
            assert_eq!(parse_stat(text), None, "{text:?}");
        }
    }
}
