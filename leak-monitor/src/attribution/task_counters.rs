//! The growth counters the stack probe reads many times a second, kept cheap: files opened once
//! and read again with `pread` (no path walk per read), and counts taken from `fstat` where the
//! kernel offers them (`/proc/PID/task` links one entry per thread; since Linux 6.2 the size of
//! `/proc/PID/fd` is the number of open fds), so no directory is listed per read.
//!
//! Per thread: its state and minor page faults (`/proc/PID/task/TID/stat`) and how many times
//! it was put on a CPU (`schedstat`'s third field): a thread whose count has not moved has not
//! run since, so its Python stack is where it was and need not be read again.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};

/// A thread at one read of its counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskState {
    /// The kernel had it running or runnable (state R).
    pub running: bool,
    pub minor_faults: u64,
}

/// The system call a thread is blocked in (`/proc/PID/task/TID/syscall`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockedCall {
    pub number: u64,
    pub args: [u64; 6],
}

/// One thread's counter files.
pub struct TaskFiles {
    stat: File,
    /// None when the kernel has no schedstat (then every read counts as "it ran").
    schedstat: Option<File>,
    /// None without CONFIG_HAVE_ARCH_TRACEHOOK (then no wake-up is foreseen).
    syscall: Option<File>,
}

impl TaskFiles {
    pub fn open(pid: i32, tid: u32) -> std::io::Result<TaskFiles> {
        let dir = format!("/proc/{pid}/task/{tid}");
        Ok(TaskFiles {
            stat: File::open(format!("{dir}/stat"))?,
            schedstat: File::open(format!("{dir}/schedstat")).ok(),
            syscall: File::open(format!("{dir}/syscall")).ok(),
        })
    }

    /// State and faults; None once the thread is gone.
    pub fn state(&self) -> Option<TaskState> {
        let mut buf = [0u8; 512];
        let n = self.stat.read_at(&mut buf, 0).ok()?;
        parse_stat(std::str::from_utf8(buf.get(..n)?).ok()?)
    }

    /// The call it is blocked in; None when it runs, or is not in a call.
    pub fn syscall(&self) -> Option<BlockedCall> {
        let mut buf = [0u8; 256];
        let n = self.syscall.as_ref()?.read_at(&mut buf, 0).ok()?;
        parse_syscall(std::str::from_utf8(buf.get(..n)?).ok()?)
    }

    /// Times it was scheduled in; None when unknown.
    pub fn runs(&self) -> Option<u64> {
        let mut buf = [0u8; 96];
        let n = self.schedstat.as_ref()?.read_at(&mut buf, 0).ok()?;
        parse_schedstat_runs(std::str::from_utf8(buf.get(..n)?).ok()?)
    }
}

/// The process-wide counts, each from one `fstat`.
pub struct ProcessCounts {
    task_dir: File,
    fd_dir: Option<File>,
}

impl ProcessCounts {
    pub fn open(pid: i32) -> std::io::Result<ProcessCounts> {
        let task_dir = File::open(format!("/proc/{pid}/task"))?;
        // An fd directory whose size is not its count (kernels before 6.2) reads 0: unused.
        let fd_dir = File::open(format!("/proc/{pid}/fd"))
            .ok()
            .filter(|dir| dir.metadata().is_ok_and(|m| m.size() > 0));
        Ok(ProcessCounts { task_dir, fd_dir })
    }

    /// The number of threads; 0 once the process is gone (its task directory then links none).
    pub fn threads(&self) -> u64 {
        // `.`, `..` and one link per thread.
        self.task_dir
            .metadata()
            .map_or(0, |m| m.nlink().saturating_sub(2))
    }

    pub fn open_fds(&self) -> Option<u64> {
        self.fd_dir.as_ref()?.metadata().ok().map(|m| m.size())
    }
}

/// State (field 3) and `minflt` (field 10) of a `/proc/PID/task/TID/stat` line.
fn parse_stat(stat: &str) -> Option<TaskState> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_ascii_whitespace();
    let state = fields.next()?;
    let minor_faults = fields.nth(6)?.parse().ok()?;
    Some(TaskState {
        running: state == "R",
        minor_faults,
    })
}

/// `NR arg1 .. arg6 sp pc` of a blocked thread; `running` or `-1 sp pc` otherwise.
fn parse_syscall(line: &str) -> Option<BlockedCall> {
    let mut fields = line.split_ascii_whitespace();
    let number = fields.next()?.parse().ok()?;
    let mut args = [0u64; 6];
    for arg in &mut args {
        *arg = u64::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
    }
    Some(BlockedCall { number, args })
}

/// The third field of `schedstat` (`run_ns wait_ns timeslices`).
fn parse_schedstat_runs(schedstat: &str) -> Option<u64> {
    schedstat.split_ascii_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_minor_faults_come_from_fields_three_and_ten() {
        let stat = "4242 (py (worker) 1) R 1 4242 4242 0 -1 4194560 1234 0 5 0 12 3 0 0 20 0 2 0";
        assert_eq!(
            parse_stat(stat),
            Some(TaskState {
                running: true,
                minor_faults: 1234
            })
        );
        let sleeping = stat.replace(") R ", ") S ");
        assert_eq!(parse_stat(&sleeping).map(|s| s.running), Some(false));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn blocked_calls_are_read_with_their_arguments() {
        let line = "230 0x1 0x1 0x7ffc66784910 0x0 0x0 0x0 0x7ffc667848f8 0x7efc4f2ed503\n";
        assert_eq!(
            parse_syscall(line),
            Some(BlockedCall {
                number: 230,
                args: [1, 1, 0x7ffc_6678_4910, 0, 0, 0]
            })
        );
        assert_eq!(parse_syscall("running\n"), None);
        assert_eq!(parse_syscall("-1 0x7ffc667848f8 0x7efc4f2ed503\n"), None);
    }

    #[test]
    fn runs_are_the_third_schedstat_field() {
        assert_eq!(parse_schedstat_runs("45589000 117444169 36\n"), Some(36));
        assert_eq!(parse_schedstat_runs("1 2"), None);
    }

    #[test]
    fn live_counts_of_this_process() {
        let pid = i32::try_from(std::process::id()).unwrap_or(0);
        let counts = ProcessCounts::open(pid).unwrap();
        assert!(counts.threads() >= 1);
        // This test's own thread: its faults are the ones it makes below.
        let me = std::fs::read_link("/proc/thread-self").unwrap();
        let tid: u32 = me.file_name().unwrap().to_str().unwrap().parse().unwrap();
        let files = TaskFiles::open(pid, tid).unwrap();
        assert!(files.runs().is_some_and(|runs| runs > 0));
        let before = files.state().unwrap();
        // Touch pages never touched before (a fresh mapping: heap memory may be pages another
        // test already faulted in): this thread's own faults rise.
        let len = 64 * 4096;
        // SAFETY: a new private anonymous mapping, written within its length, then unmapped.
        unsafe {
            let pages = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(pages, libc::MAP_FAILED);
            for page in (0..len).step_by(4096) {
                std::ptr::write_volatile(pages.cast::<u8>().add(page), 1);
            }
            libc::munmap(pages, len);
        }
        let after = files.state().unwrap();
        assert!(
            after.minor_faults > before.minor_faults,
            "{before:?} {after:?}"
        );
        // Other tests open and close fds meanwhile: only that the count is read.
        assert!(counts.open_fds().is_some_and(|fds| fds > 0));
    }
}
