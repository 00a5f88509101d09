//! Growth attribution without eBPF: stack samples weighted by the growth around them.
//!
//! While a target grows, its thread stacks are read in quick succession (see `probe`). Each
//! read comes with growth counters, counted just before and just after the stacks are read:
//! every thread's minor page faults (a resident page appears when first touched) and the
//! process's open fd and thread counts. A sample is credited with the growth during its read
//! (a window of ~0.1 ms, so the line read is very likely the one growing), plus, at
//! `WINDOW_WEIGHT`, the growth in the wider window from the read before to the read after:
//! per thread for memory, per process for fds, sockets and threads. A read that took far longer
//! than usual (the reader was preempted) has a stretched window: its growth counts at
//! `WINDOW_WEIGHT` too. The credit goes to the sample's blamed site
//! (`frames::blamed_index`), so lines seen while something grows collect weight, and lines seen
//! while nothing grows collect none.
//!
//! Threads are not all equal candidates. A sample counts in full when the thread moved there
//! since its previous read (its stack changed) and is working: running (kernel state R) outside a
//! known blocking call, or inside a library call made from the blamed line (`Thread.start`
//! waiting for the new thread, a `connect`). A thread found where it was at its previous read is
//! resting there: asleep (`time.sleep`), parked in a known blocking call (`Condition.wait`,
//! `queue.get`, `select`, `accept`, `recv`...), or runnable but not yet run (state R on a busy
//! machine); growth seen around it happened on a trip elsewhere between the reads. Such samples,
//! and those of threads that stopped at a wait, are idle: their credit is scaled down by
//! `IDLE_FACTOR` (kept, not dropped: it is the fallback when no working thread is seen).
//!
//! Per resource at most `MAX_SITES` sites are kept (the smallest is evicted for a new one). The
//! sites' weights become shares, and amounts scaled so that they add up to the observed growth.
//! Pure logic: fed observations, unit-tested without a process.

use super::frames::{blamed_index, in_blocking_call};
use super::Frame;
use crate::resource::{Amount, Resource, Share};
use std::collections::HashMap;
use std::time::Duration;

/// Sites kept per resource; the smallest is evicted for a new one.
pub const MAX_SITES: usize = 64;
/// Weight of a sample from a thread that was idle around it, relative to an active one.
pub const IDLE_FACTOR: f64 = 1e-3;
/// Weight of growth in the window around a read (from the read before to the read after)
/// relative to growth during the read itself, which is far more likely at the line read.
pub const WINDOW_WEIGHT: f64 = 0.05;
/// A read that took more than this many times the usual read time was stretched (the reader was
/// preempted on a busy machine): what grew during it may have grown at other lines, so it counts
/// like growth in the wider window.
pub const STRETCHED_READ: f64 = 2.0;
/// Weight of the newest read time in the running mean of read times.
const READ_TIME_SMOOTHING: f64 = 0.05;
/// Bytes per page fault (the x86-64 and arm64 base page size).
const PAGE_BYTES: f64 = 4096.0;

/// One thread at one read.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadObservation {
    pub os_tid: u32,
    /// The kernel had it running (state R) at the read.
    pub running: bool,
    /// Innermost frame first.
    pub frames: Vec<Frame>,
    /// Its minor page faults since it started (`/proc/PID/task/TID/stat`), when read.
    pub minor_faults: Option<u64>,
    /// The page faults it made while its stack was being read (counted just before and after).
    pub faults_during: u64,
}

/// One read of all threads, with the process's counters read alongside.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub threads: Vec<ThreadObservation>,
    pub open_fds: Option<u64>,
    pub thread_count: Option<u64>,
    /// fds and threads the process gained while its stacks were being read.
    pub fds_during: u64,
    pub threads_during: u64,
    /// How long the read took, counters included (zero when unknown).
    pub read_time: Duration,
}

/// A site with its share of the attributed growth, before it is described.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledSite {
    /// The blamed frame.
    pub frame: Frame,
    /// The full stack of the heaviest sample at this site, innermost first.
    pub stack: Vec<Frame>,
    pub share: Share,
    /// All sites of a resource add up to the growth asked for.
    pub amount: Amount,
}

/// Growth in the window before a read, per resource signal.
#[derive(Clone, Debug, Default)]
struct Growth {
    /// Per thread: page faults (bytes) since the previous read.
    thread_bytes: HashMap<u32, f64>,
    fds: f64,
    threads: f64,
}

/// A read waiting for the read after it, which closes its window.
struct Pending {
    observation: Observation,
    /// Per thread seen in the previous read: whether its stack differs from that read.
    previous: HashMap<u32, Previous>,
    before: Growth,
}

#[derive(Clone, Copy, Debug)]
struct Previous {
    changed: bool,
}

#[derive(Clone, Debug)]
struct Entry {
    weight: f64,
    stack: Vec<Frame>,
    /// The weight of the sample `stack` came from.
    stack_weight: f64,
}

/// The attributed weight of each resource's sites.
#[derive(Default)]
pub struct SampledAttributor {
    pending: Option<Pending>,
    ledgers: HashMap<Resource, HashMap<Frame, Entry>>,
    samples: u64,
    /// Running mean of read times, in seconds.
    usual_read_time: Option<f64>,
}

impl SampledAttributor {
    pub fn new() -> Self {
        SampledAttributor::default()
    }

    /// Forgets the last read, e.g. after sampling paused: the growth across a gap cannot be
    /// placed. What was attributed stays.
    pub fn break_window(&mut self) {
        self.pending = None;
    }

    /// Reads taken and credited so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Takes the next read: it closes the previous read's window, which is then credited.
    pub fn observe(&mut self, observation: Observation) {
        let (before, previous) = match &self.pending {
            Some(previous) => (
                growth_between(&previous.observation, &observation),
                stacks_changed(&previous.observation, &observation),
            ),
            // The first read has no window before it and nothing to compare its stacks to.
            None => (Growth::default(), HashMap::new()),
        };
        let next = Pending {
            observation,
            previous,
            before,
        };
        if let Some(previous) = self.pending.replace(next) {
            let after = self
                .pending
                .as_ref()
                .map(|p| p.before.clone())
                .unwrap_or_default();
            self.credit(&previous, &after);
        }
    }

    fn credit(&mut self, read: &Pending, after: &Growth) {
        self.samples += 1;
        let during_weight = self.during_weight(read.observation.read_time);
        let working: Vec<bool> = read
            .observation
            .threads
            .iter()
            .map(|t| {
                blamed_index(&t.frames)
                    .is_some_and(|b| is_working(t, read.previous.get(&t.os_tid), b))
            })
            .collect();
        // The idle fallback is shared by the idle threads, so many identical sleepers (say, the
        // leaked threads themselves) do not outweigh the one that made them.
        let idle = working.iter().filter(|w| !**w).count().max(1) as f64;
        for (thread, &is_busy) in read.observation.threads.iter().zip(&working) {
            let Some(blamed) = blamed_index(&thread.frames) else {
                continue;
            };
            let factor = if is_busy { 1.0 } else { IDLE_FACTOR / idle };
            let tid = thread.os_tid;
            let own_bytes = |g: &Growth| g.thread_bytes.get(&tid).copied().unwrap_or(0.0);
            let (b, o) = (&read.before, &read.observation);
            let rss = during_weight * thread.faults_during as f64 * PAGE_BYTES
                + WINDOW_WEIGHT * (own_bytes(b) + own_bytes(after));
            let fds = during_weight * o.fds_during as f64 + WINDOW_WEIGHT * (b.fds + after.fds);
            let threads = during_weight * o.threads_during as f64
                + WINDOW_WEIGHT * (b.threads + after.threads);
            let signals = [
                (Resource::RssBytes, rss),
                (Resource::OpenFds, fds),
                (Resource::Sockets, fds),
                (Resource::Threads, threads),
            ];
            for (resource, signal) in signals {
                if signal > 0.0 {
                    let ledger = self.ledgers.entry(resource).or_default();
                    add(ledger, &thread.frames, blamed, signal * factor);
                }
            }
        }
    }

    /// The weight of growth during a read that took `read_time`: full for a read of the usual
    /// length, `WINDOW_WEIGHT` for a stretched one. Updates the usual read time.
    fn during_weight(&mut self, read_time: Duration) -> f64 {
        let seconds = read_time.as_secs_f64();
        if seconds <= 0.0 {
            return 1.0;
        }
        let usual = self.usual_read_time.unwrap_or(seconds);
        self.usual_read_time = Some(usual + READ_TIME_SMOOTHING * (seconds - usual));
        if seconds > STRETCHED_READ * usual {
            WINDOW_WEIGHT
        } else {
            1.0
        }
    }

    /// The sites of `resource`, largest first, with amounts scaled to add up to `growth`.
    pub fn sites(&self, resource: Resource, growth: Amount) -> Vec<SampledSite> {
        let Some(ledger) = self.ledgers.get(&resource) else {
            return Vec::new();
        };
        let total: f64 = ledger.values().map(|e| e.weight).sum();
        if total <= 0.0 {
            return Vec::new();
        }
        let growth = growth.max(Amount::ZERO);
        let mut sites: Vec<SampledSite> = ledger
            .iter()
            .map(|(frame, entry)| SampledSite {
                frame: frame.clone(),
                stack: entry.stack.clone(),
                share: Share::of(entry.weight, total),
                amount: Amount(growth.0 * entry.weight / total),
            })
            .collect();
        sites.sort_by(|a, b| {
            b.share
                .total_cmp(&a.share)
                .then_with(|| a.frame.file.cmp(&b.frame.file))
                .then_with(|| a.frame.line.cmp(&b.frame.line))
        });
        sites
    }
}

fn add(ledger: &mut HashMap<Frame, Entry>, frames: &[Frame], blamed: usize, weight: f64) {
    let Some(frame) = frames.get(blamed) else {
        return;
    };
    if let Some(entry) = ledger.get_mut(frame) {
        entry.weight += weight;
        if weight > entry.stack_weight {
            entry.stack = frames.to_vec();
            entry.stack_weight = weight;
        }
        return;
    }
    if ledger.len() >= MAX_SITES {
        let smallest = ledger
            .iter()
            .min_by(|a, b| a.1.weight.total_cmp(&b.1.weight))
            .map(|(frame, _)| frame.clone());
        if let Some(smallest) = smallest {
            ledger.remove(&smallest);
        }
    }
    ledger.insert(
        frame.clone(),
        Entry {
            weight,
            stack: frames.to_vec(),
            stack_weight: weight,
        },
    );
}

/// Growth from one read to the next: only increases count (a drop is not negative growth).
fn growth_between(from: &Observation, to: &Observation) -> Growth {
    let faults_before: HashMap<u32, u64> = from
        .threads
        .iter()
        .filter_map(|t| t.minor_faults.map(|f| (t.os_tid, f)))
        .collect();
    let thread_bytes = to
        .threads
        .iter()
        .filter_map(|t| {
            let now = t.minor_faults?;
            // A thread new since the last read made all its faults in between.
            let then = faults_before.get(&t.os_tid).copied().unwrap_or(0);
            Some((t.os_tid, now.saturating_sub(then) as f64 * PAGE_BYTES))
        })
        .collect();
    let rise = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64,
        _ => 0.0,
    };
    Growth {
        thread_bytes,
        fds: rise(from.open_fds, to.open_fds),
        threads: rise(from.thread_count, to.thread_count),
    }
}

/// Per thread of `to` also in `from`: whether its stack changed.
/// A thread not in `from` is new: nothing to compare.
fn stacks_changed(from: &Observation, to: &Observation) -> HashMap<u32, Previous> {
    let before: HashMap<u32, &ThreadObservation> =
        from.threads.iter().map(|t| (t.os_tid, t)).collect();
    to.threads
        .iter()
        .filter_map(|t| {
            let then = before.get(&t.os_tid)?;
            Some((
                t.os_tid,
                Previous {
                    changed: then.frames != t.frames,
                },
            ))
        })
        .collect()
}

/// Whether the thread was working at the sample (see the module doc); `blamed` indexes its
/// blamed frame.
fn is_working(thread: &ThreadObservation, previous: Option<&Previous>, blamed: usize) -> bool {
    let moved = previous.is_some_and(|p| p.changed);
    // Just arrived in a library call made from the blamed line: doing that line's work.
    let in_call = blamed > 0;
    moved && ((thread.running && !in_blocking_call(&thread.frames)) || in_call)
}

#[cfg(test)]
#[path = "sampled_tests.rs"]
#[allow(clippy::unwrap_used)]
mod tests;
