//! The breakdown of a target's resident memory: live Python objects, pymalloc's free space,
//! glibc malloc's heap (in use and free), other native memory, file-backed and shared memory;
//! and from its change over the observation, the kind of memory behind RSS growth (`kind`)
//! and what to do about it (`advice`).
//!
//! `smaps` is the one input that costs the target something (the kernel walks its page tables
//! under its mmap lock), so breakdowns are taken by the background thread every target shares
//! (`crate::background`, with the heap censuses): one at attach, then
//! while memory grows (armed by the engine like the heap census), else rarely, each paced to a
//! small share of the time since the last. pymalloc's and glibc's states are read with
//! `process_vm_readv` (nothing stops the target).

pub mod advice;
pub mod glibc;
pub mod kind;
mod pace;
pub mod parts;
pub mod pymalloc;
pub mod smaps;

use crate::background::{self, Paced};
use crate::pyframes::memory::{Memory, ProcessMemory};
use crate::pyframes::FramesError;
use crate::targets::runtime::PythonRuntime;
use parts::{Allocators, Breakdown};
use pymalloc::Locator;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Breakdowns kept for the chart; older ones are thinned (every other one dropped).
const KEPT: usize = 240;
/// A breakdown may take at most 1/PACE of the time to the next one.
const PACE: u32 = 50;

/// The cost of one breakdown.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cost {
    /// Reading smaps: about the time the target's mmap lock is held (taken per VMA walk).
    pub smaps_seconds: f64,
    /// The allocators' states, read with `process_vm_readv`.
    pub allocators_seconds: f64,
    /// Of which pymalloc's arenas and pools.
    pub pymalloc_seconds: f64,
    /// CPU time of the whole breakdown on the monitor's side.
    pub cpu_seconds: f64,
    pub mappings: usize,
}

/// What the breakdowns of one target have found so far.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BreakdownFindings {
    /// Oldest first; the first is from attach.
    pub series: Vec<Breakdown>,
    pub last_cost: Option<Cost>,
    pub error: Option<String>,
    /// Breakdowns attempted so far (the series is thinned; this is not).
    pub attempts: u64,
    /// Allocators preloaded or linked instead of glibc's (`libjemalloc`, `libmimalloc`...).
    pub other_allocator: Option<String>,
}

/// Reads breakdowns of one process.
pub struct BreakdownSource {
    pid: i32,
    memory: ProcessMemory,
    /// Where pymalloc's state is, once found; why not, for a Python target where it was not.
    locator: Result<Locator, String>,
    /// The target's interpreter, when it runs CPython (its pymalloc is looked for).
    python: Option<Arc<PythonRuntime>>,
    arenas: glibc::ArenaFinder,
}

impl BreakdownSource {
    /// `python`: the target's interpreter when it runs CPython.
    pub fn new(pid: i32, python: Option<Arc<PythonRuntime>>) -> BreakdownSource {
        let mut source = BreakdownSource {
            pid,
            memory: ProcessMemory { pid },
            locator: Err(parts::NOT_PYTHON.into()),
            python,
            arenas: glibc::ArenaFinder::default(),
        };
        if let Some(python) = &source.python {
            source.locator = source.locate_pymalloc(python);
        }
        source
    }

    fn locate_pymalloc(&self, python: &PythonRuntime) -> Result<Locator, String> {
        let runtime = python
            .interpreter()
            .map_err(|e| FramesError::from(e).to_string())?;
        let (_, minor) = runtime.major_minor();
        let path = python.runtime_file()?;
        if minor <= 11 {
            // 3.10/3.11: the statics from `.symtab`.
            let [arenas, maxarenas, current] = python.static_addresses([
                b"arenas",
                b"maxarenas",
                b"narenas_currently_allocated",
            ])?;
            let locator = Locator::Statics {
                arenas,
                maxarenas,
                current,
            };
            pymalloc::read(&self.memory, locator)?;
            return Ok(locator);
        }
        for m in python.data_mappings() {
            let len = m.end - m.start;
            if len <= 16 << 20 {
                let mut data = vec![0u8; usize::try_from(len).unwrap_or(0)];
                if self.memory.read(m.start, &mut data).is_ok() {
                    if let Some(at) = pymalloc::find_mgmt(m.start, &data) {
                        pymalloc::read(&self.memory, Locator::Mgmt(at))?;
                        return Ok(Locator::Mgmt(at));
                    }
                }
            }
        }
        Err(format!(
            "no _obmalloc_mgmt of CPython 3.{minor} in the writable data of {path}"
        ))
    }

    /// One breakdown, and what it cost.
    pub fn take(&mut self, at_seconds: f64) -> Result<(Breakdown, Cost), String> {
        let cpu_before = thread_cpu_seconds();
        let began = Instant::now();
        let text = std::fs::read_to_string(format!("/proc/{}/smaps", self.pid))
            .map_err(|e| format!("/proc/{}/smaps: {e}", self.pid))?;
        let smaps_seconds = began.elapsed().as_secs_f64();
        let maps = smaps::parse(&text);
        let allocators_began = Instant::now();
        if let (Some(python), true) = (self.python.clone(), self.locator.is_err()) {
            // The interpreter may not have been ready at attach.
            self.locator = self.locate_pymalloc(&python);
        }
        let pymalloc = match &self.locator {
            Ok(locator) => pymalloc::read(&self.memory, *locator),
            Err(why) => Err(why.clone()),
        };
        let pymalloc_seconds = allocators_began.elapsed().as_secs_f64();
        let glibc = self
            .arenas
            .arenas(&self.memory, &maps)
            .and_then(|(arenas, layout)| glibc::read(&self.memory, &arenas, &layout));
        let memory = self.memory;
        let is_thread_heap = move |m: &smaps::Mapping| glibc::is_thread_heap(&memory, m);
        let mut breakdown = parts::compose(
            at_seconds,
            &maps,
            Allocators {
                pymalloc,
                glibc,
                is_thread_heap: &is_thread_heap,
            },
        );
        breakdown.statm_rss = statm_rss(self.pid).unwrap_or(0);
        let cost = Cost {
            smaps_seconds,
            allocators_seconds: allocators_began.elapsed().as_secs_f64(),
            pymalloc_seconds,
            cpu_seconds: thread_cpu_seconds() - cpu_before,
            mappings: maps.len(),
        };
        Ok((breakdown, cost))
    }

    /// What the target has done so far: its page faults and CPU ticks (every thread). A target
    /// whose activity did not change since a breakdown has not run, so its memory is as that
    /// breakdown found it. `None` when /proc/PID/stat cannot be read (then a breakdown is taken).
    pub fn activity(&self) -> Option<(u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        let fields = crate::targets::stat::parse_stat(&text)?;
        Some((fields.faults, fields.cpu_ticks))
    }

    /// An allocator other than glibc's in the target's mappings (preloaded or linked).
    pub fn other_allocator(&self) -> Option<String> {
        let maps = std::fs::read_to_string(format!("/proc/{}/maps", self.pid)).ok()?;
        advice::other_allocator(&maps)
    }
}

/// Resident bytes from `/proc/PID/statm` (its second field, in pages).
fn statm_rss(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// CPU time of the calling thread.
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if ok {
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    } else {
        0.0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Shared {
    started: Instant,
    source: Mutex<BreakdownSource>,
    growing_until: Mutex<Option<Instant>>,
    /// The gap between breakdowns while memory grows (`pace::GROWING_GAP` until the part that
    /// grows is settled).
    pace: Mutex<(pace::Pace, Duration)>,
    /// When the last breakdown began and how long it took.
    last: Mutex<Option<(Instant, Duration)>>,
    /// The target's activity (`BreakdownSource::activity`) when the last breakdown was taken.
    last_activity: Mutex<Option<(u64, u64)>>,
    stop: AtomicBool,
    /// Take one now (the end of a run), whatever the pace.
    now: AtomicBool,
    /// Shared with the snapshots: a tick hands them a reference, not a copy of the series
    /// (copied only when a breakdown lands while a snapshot still holds the old one).
    findings: Mutex<Arc<BreakdownFindings>>,
}

/// Breakdowns of one target, taken in the background by the worker every target shares
/// (`crate::background`).
pub struct BreakdownWatch {
    shared: Arc<Shared>,
}

impl BreakdownWatch {
    /// Hands the source to the background worker; it takes the first breakdown at once.
    /// `started`: the start of the observation (breakdowns are timed from it, like the samples).
    pub fn start(source: BreakdownSource, started: Instant) -> std::io::Result<BreakdownWatch> {
        let shared = Arc::new(Shared {
            started,
            growing_until: Mutex::new(None),
            pace: Mutex::new((pace::Pace::default(), pace::GROWING_GAP)),
            last: Mutex::new(None),
            last_activity: Mutex::new(None),
            stop: AtomicBool::new(false),
            now: AtomicBool::new(false),
            findings: Mutex::new(Arc::new(BreakdownFindings {
                other_allocator: source.other_allocator(),
                ..BreakdownFindings::default()
            })),
            source: Mutex::new(source),
        });
        background::shared().add(background::weak(&shared))?;
        background::shared().wake();
        Ok(BreakdownWatch { shared })
    }

    /// Memory grows: take breakdowns more often until `until`.
    pub fn arm(&self, until: Instant) {
        let extended = {
            let mut armed = lock(&self.shared.growing_until);
            let extends = armed.is_none_or(|at| at < until);
            if armed.is_none_or(|at| at <= Instant::now()) {
                // Growth again after it had stopped: a new episode, at the full pace.
                let mut pace = lock(&self.shared.pace);
                pace.0.restart();
                pace.1 = pace::GROWING_GAP;
            }
            if extends {
                *armed = Some(until);
            }
            extends
        };
        if extended {
            background::shared().wake();
        }
    }

    /// Takes one breakdown now (the end of a run: the report's last figures are current), and
    /// waits for it up to `timeout`.
    pub fn take_now(&self, timeout: Duration) {
        let before = lock(&self.shared.findings).attempts;
        self.shared.now.store(true, Ordering::Relaxed);
        background::shared().wake();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline && lock(&self.shared.findings).attempts == before {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn findings(&self) -> Arc<BreakdownFindings> {
        Arc::clone(&lock(&self.shared.findings))
    }
}

impl Paced for Shared {
    /// Always due at some point: retention shows while RSS stays flat, so breakdowns go on when
    /// memory does not grow, only further apart.
    fn due_at(&self, now: Instant) -> Option<Instant> {
        if self.now.load(Ordering::Relaxed) {
            return Some(now);
        }
        let Some((at, spent)) = *lock(&self.last) else {
            return Some(now);
        };
        let growing = lock(&self.growing_until).is_some_and(|until| now < until);
        let gap = if growing {
            lock(&self.pace).1
        } else {
            pace::IDLE_GAP
        };
        Some(at + gap.max(spent * PACE))
    }

    /// An idle breakdown (not asked for now, memory not growing) of a target that has not run
    /// since the last one is skipped: it would find the same parts. A fleet of sleeping
    /// processes then costs a read of /proc/PID/stat each per gap instead of a walk of smaps.
    fn run_once(&self) {
        let asked = self.now.swap(false, Ordering::Relaxed);
        let began = Instant::now();
        let growing = lock(&self.growing_until).is_some_and(|until| began < until);
        let mut source = lock(&self.source);
        let activity = source.activity();
        let unchanged = activity.is_some() && *lock(&self.last_activity) == activity;
        if unchanged && !asked && !growing {
            drop(source);
            let mut last = lock(&self.last);
            let spent = last.map_or(Duration::ZERO, |(_, spent)| spent);
            *last = Some((began, spent));
            return;
        }
        let at = began.duration_since(self.started).as_secs_f64();
        let result = source.take(at);
        drop(source);
        *lock(&self.last_activity) = activity;
        let mut shared = lock(&self.findings);
        let findings = Arc::make_mut(&mut shared);
        findings.attempts += 1;
        match result {
            Ok((breakdown, cost)) => {
                let lead = findings
                    .series
                    .last()
                    .and_then(|before| pace::lead(before, &breakdown));
                let mut pace = lock(&self.pace);
                pace.1 = pace.0.after(lead);
                drop(pace);
                if findings.series.len() >= KEPT {
                    thin(&mut findings.series);
                }
                findings.series.push(breakdown);
                findings.last_cost = Some(cost);
                findings.error = None;
            }
            Err(why) => {
                let mut pace = lock(&self.pace);
                pace.1 = pace.0.after(None);
                drop(pace);
                findings.error = Some(why);
            }
        }
        drop(shared);
        *lock(&self.last) = Some((began, began.elapsed()));
    }

    fn stopped(&self) -> &AtomicBool {
        &self.stop
    }
}

/// Drops every other breakdown but the first and the last.
fn thin(series: &mut Vec<Breakdown>) {
    let last = series.len().saturating_sub(1);
    let mut i = 0;
    series.retain(|_| {
        let keep = i == 0 || i == last || i % 2 == 0;
        i += 1;
        keep
    });
}

impl Drop for BreakdownWatch {
    fn drop(&mut self) {
        // A breakdown under way finishes on the worker (its results are dropped with it).
        self.shared.stop.store(true, Ordering::Relaxed);
        background::shared().wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_reads_skip_what_cannot_be_read() {
        let data: Vec<u64> = (0..3000).collect();
        let base = data.as_ptr() as u64;
        let mut addresses: Vec<u64> = (0..3000).map(|i| base + i * 8).collect();
        // An unmapped address in the middle of the second batch.
        addresses[1500] = 8;
        let mut out = vec![0u8; addresses.len() * 8];
        let memory = ProcessMemory {
            pid: std::process::id() as i32,
        };
        let ok = memory.read_many(&addresses, &mut out);
        assert_eq!(ok.iter().filter(|o| !**o).count(), 1);
        assert!(!ok[1500]);
        for i in [0usize, 1499, 1501, 2999] {
            assert_eq!(
                u64::from_le_bytes(out[i * 8..i * 8 + 8].try_into().unwrap()),
                i as u64
            );
        }
    }

    #[test]
    fn thinning_keeps_the_ends() {
        let mut series: Vec<Breakdown> = (0..10)
            .map(|i| Breakdown {
                at_seconds: f64::from(i),
                ..Breakdown::default()
            })
            .collect();
        thin(&mut series);
        let at: Vec<f64> = series.iter().map(|b| b.at_seconds).collect();
        assert_eq!(at, vec![0.0, 2.0, 4.0, 6.0, 8.0, 9.0]);
    }
}
