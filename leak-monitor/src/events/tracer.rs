//! The kernel side, from user space: loads the committed eBPF object, attaches its raw
//! tracepoints, keeps the `TARGETS` bitmap in step with the followed processes, and drains the ring
//! buffer on its own thread into the per-process ledgers.
//!
//! The draining thread is the only writer of the ledgers; the monitor reads counts and per-site
//! totals under the same lock. It also takes, every `COLLECT_EVERY`, the fds the kernel's
//! pairing kept open past `SURVIVOR_AGE` (`pairing`): most opens and closes of a followed
//! process never become events. A full ring buffer loses events (counted per kind by the kernel);
//! after a loss every ledger is re-read from procfs so it does not drift.

use super::allocations::AllocationProbes;
pub use super::allocations::AllocationsError;
use super::event::{self, metric_kind, Syscall, TraceEvent, Traced};
use super::gate::{Engagement, Gate, GateStats};
use super::ledger::{LedgerCounts, LiveBySite, SiteId, TargetLedger};
use super::pairing::{Extent, FdPairing, PairingSetting, SURVIVOR_AGE};
use super::pymaps::PyMaps;
use super::reconcile;
use super::target_bits::TargetBits;
use aya::maps::{Array, HashMap as BpfHashMap, MapData, PerCpuArray, PerCpuValues, RingBuf};
use aya::programs::raw_trace_point::RawTracePointLinkId;
use aya::programs::RawTracePoint;
use aya::util::nr_cpus;
use aya::{Ebpf, EbpfLoader};
use leak_monitor_common::{counter, kind, names, PageRun};
use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The programs attached from start to end, and the tracepoints they attach to.
const ALWAYS_ATTACHED: [(&str, &str); 2] = [
    (names::PROCESS_EXIT, "sched_process_exit"),
    (names::PROCESS_EXEC, "sched_process_exec"),
];

/// The programs attached as the `Gate` says (see `gate` for why).
const GATED: [(&str, &str); 2] = [
    (names::SYS_EXIT, "sys_exit"),
    (names::PAGE_FAULT_USER, "page_fault_user"),
];

/// How long the draining thread sleeps in poll(2) between drains. The kernel wakes it early only
/// when a batch of `WAKEUP_BYTES` is waiting, so this bounds how stale the ledgers get.
const POLL_TIMEOUT: Duration = Duration::from_millis(10);
/// While nothing arrives the sleep doubles up to this: an idle daemon woke 100 times a second
/// to find nothing, and read every drop counter each time.
const IDLE_POLL_TIMEOUT: Duration = Duration::from_millis(80);
/// The drop counters are read after a drain that found events, else this often: the kernel
/// drops only while events arrive faster than they are drained.
const DROPS_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How often the draining thread takes the survivors of the kernel's fd pairing.
const COLLECT_EVERY: Duration = Duration::from_millis(200);
/// Every this many collections each slot is read in full (`FD_CAP` entries); in between only
/// past the process's highest known fd until `SCAN_GAP` empty entries in a row
/// (`pairing::Extent`). A survivor beyond such a gap (opens closed out of order in a burst
/// between two collections) is taken at the next full read, with the time of its open, so its
/// site is the same. At 52 followed processes the full reads were 1.7 MB five times a second.
const FULL_SCAN_EVERY: u32 = 25;
const SCAN_GAP: u32 = 256;

/// Why tracing is off.
#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    #[error("eBPF tracing needs CAP_BPF and CAP_PERFMON (or root)")]
    NotPermitted,
    #[error("eBPF tracing is built for x86_64 only")]
    UnsupportedArch,
    #[error("the kernel refused the eBPF programs: {0}")]
    Load(String),
    #[error("cannot follow pid {pid} in the kernel: {why}")]
    Follow { pid: i32, why: String },
}

/// Blames a Python site for a creating event (fd, thread, page) when it arrives. Runs on the
/// draining thread, so it must be quick.
pub trait SiteResolver: Send {
    fn site_for(&mut self, traced: &Traced) -> Option<SiteId>;
    /// The process is no longer followed.
    fn forget(&mut self, _tgid: u32) {}
    /// The gated programs attached again: what the resolver learns from their events (new
    /// threads) went unreported while they were detached.
    fn programs_attached(&mut self) {}
}

/// Events received and lost, per metric kind; and what the kernel's fd pairing did instead of
/// sending events (`PAIRING_COUNTS`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventStats {
    pub received: BTreeMap<&'static str, u64>,
    pub dropped: BTreeMap<&'static str, u64>,
    pub pairing: BTreeMap<&'static str, u64>,
}

/// The names of the fd pairing's counts: the kernel's per-CPU counters, and the survivors user
/// space took from its table.
pub const PAIRING_COUNTS: [&str; 7] = [
    "opens_paired",
    "closes_paired",
    "stacks_sampled",
    "stacks_skipped",
    "stacks_lost",
    "over_cap",
    "survivors",
];

/// The pairing count a kernel counter index holds.
fn pairing_count(index: u32) -> Option<&'static str> {
    Some(match index {
        counter::PAIRED_OPENS => "opens_paired",
        counter::PAIRED_CLOSES => "closes_paired",
        counter::STACKS_SAMPLED => "stacks_sampled",
        counter::STACKS_SKIPPED => "stacks_skipped",
        counter::STACKS_LOST => "stacks_lost",
        counter::OVER_CAP => "over_cap",
        _ => return None,
    })
}

#[derive(Default)]
struct Shared {
    ledgers: Mutex<HashMap<u32, TargetLedger>>,
    stats: Mutex<EventStats>,
    resolver: Mutex<Option<Box<dyn SiteResolver>>>,
    /// The kernel's fd pairing; `None` when its table could not be mapped (every open and
    /// close is then an event).
    pairing: Option<FdPairing>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep using it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Loaded and attached programs, and the thread that drains their events.
pub struct Tracer {
    shared: Arc<Shared>,
    targets: Mutex<TargetBits>,
    /// The frame-walk maps; `None` for an object built without them.
    py_maps: Option<PyMaps>,
    stop: Arc<AtomicBool>,
    drain: Option<JoinHandle<()>>,
    /// Allocator probes per process with allocation tracking on.
    allocations: Mutex<HashMap<u32, AllocationProbes>>,
    gated: Mutex<GatedPrograms>,
    // Keeps the programs loaded and attached; dropped last.
    ebpf: Mutex<Ebpf>,
}

/// The gate and the links of the gated programs while they are attached.
struct GatedPrograms {
    gate: Gate,
    links: Vec<(&'static str, RawTracePointLinkId)>,
    /// The page runs each CPU was extending; cleared before the programs attach again, so a
    /// run from before cannot add pages to the fresh page ledgers.
    runs: Option<PerCpuArray<MapData, PageRun>>,
}

impl Tracer {
    /// Loads and attaches everything, for good (`Engagement::Always`). Fails with the reason
    /// when this machine or this process cannot trace.
    pub fn start(privileges: crate::capabilities::Privileges) -> Result<Tracer, TracerError> {
        Tracer::start_with(privileges, Engagement::Always)
    }

    /// Loads every program and attaches them, then detaches the gated ones again unless the
    /// policy is `Always` (so a kernel that refuses them fails here, not at the first growth).
    pub fn start_with(
        privileges: crate::capabilities::Privileges,
        policy: Engagement,
    ) -> Result<Tracer, TracerError> {
        if !cfg!(target_arch = "x86_64") {
            return Err(TracerError::UnsupportedArch);
        }
        if !privileges.can_load_bpf() {
            return Err(TracerError::NotPermitted);
        }
        let load =
            |what: &str, err: &dyn std::fmt::Display| TracerError::Load(format!("{what}: {err}"));
        // The programs need no CO-RE relocations, so the kernel's BTF (megabytes) is not parsed.
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .load(super::OBJECT)
            .map_err(|e| load("loading the object", &e))?;
        for (name, _) in ALWAYS_ATTACHED.iter().chain(&GATED) {
            raw_tracepoint(&mut ebpf, name)?
                .load()
                .map_err(|e| load(name, &e))?;
        }
        for (name, tracepoint) in ALWAYS_ATTACHED {
            raw_tracepoint(&mut ebpf, name)?
                .attach(tracepoint)
                .map_err(|e| load(&format!("attaching {tracepoint}"), &e))?;
        }
        let mut gated = GatedPrograms {
            gate: Gate::new(policy),
            links: attach_gated(&mut ebpf)?,
            runs: None,
        };
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| TracerError::Load(format!("map {name} missing from the object")))
        };
        let targets = TargetBits::new(
            Array::try_from(take(names::TARGETS)?).map_err(|e| load("TARGETS", &e))?,
        );
        let ring = RingBuf::try_from(take(names::EVENTS)?).map_err(|e| load("EVENTS", &e))?;
        let counters =
            PerCpuArray::try_from(take(names::COUNTERS)?).map_err(|e| load("COUNTERS", &e))?;
        let py_threads = ebpf
            .take_map(names::PY_THREADS)
            .and_then(|m| BpfHashMap::try_from(m).ok());
        let py_layout = ebpf
            .take_map(names::PY_LAYOUT)
            .and_then(|m| BpfHashMap::try_from(m).ok());
        let py_maps = py_threads
            .zip(py_layout)
            .map(|(threads, layouts)| PyMaps::new(threads, layouts));
        gated.runs = ebpf
            .take_map(names::PAGE_RUNS)
            .and_then(|m| PerCpuArray::try_from(m).ok());
        match policy {
            Engagement::Always => gated.gate.record(true, Instant::now()),
            // Attached only to see that the kernel takes them.
            Engagement::OnGrowth => gated.detach_links(&mut ebpf),
        }

        let pairing = pairing(&mut ebpf);
        if let Some(pairing) = &pairing {
            pairing.set_attached(gated.gate.attached());
        }
        let shared = Arc::new(Shared {
            pairing,
            ..Shared::default()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let drain = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("leak-monitor-events".into())
                .spawn(move || Drainer::new(shared, ring, counters).run(&stop))
                .map_err(|e| load("starting the event thread", &e))?
        };
        Ok(Tracer {
            shared,
            targets: Mutex::new(targets),
            py_maps,
            stop,
            drain: Some(drain),
            allocations: Mutex::new(HashMap::new()),
            gated: Mutex::new(gated),
            ebpf: Mutex::new(ebpf),
        })
    }

    /// A followed process grew: the gated programs stay attached until `until` at least
    /// (attached now if they were not). Their first attach after a pause re-reads the ledgers.
    pub fn engage(&self, pid: i32, until: Instant) -> Result<(), TracerError> {
        let Ok(tgid) = u32::try_from(pid) else {
            return Ok(());
        };
        let mut gated = lock(&self.gated);
        gated.gate.engage(tgid, until);
        self.settle_locked(&mut gated, Instant::now())
    }

    /// Attaches or detaches the gated programs as the gate wants at `now`; the monitors call it
    /// at each tick.
    pub fn settle(&self, now: Instant) -> Result<(), TracerError> {
        self.settle_locked(&mut lock(&self.gated), now)
    }

    fn settle_locked(&self, gated: &mut GatedPrograms, now: Instant) -> Result<(), TracerError> {
        gated.gate.expire(now);
        match (gated.gate.wanted(now), gated.gate.attached()) {
            (true, false) => {
                // The pages given back while detached were not seen: the page ledgers start
                // over, before the first new fault can arrive.
                gated.clear_runs();
                for ledger in lock(&self.shared.ledgers).values_mut() {
                    ledger.pages.clear();
                }
                gated.links = attach_gated(&mut lock(&self.ebpf))?;
                gated.gate.record(true, now);
                if let Some(pairing) = &self.shared.pairing {
                    pairing.set_attached(true);
                }
                // The fds and threads that came and went meanwhile: procfs has them, read after
                // the attach (as in `follow`) so none created in between is missed.
                for (tgid, ledger) in lock(&self.shared.ledgers).iter_mut() {
                    resync(*tgid, ledger);
                }
                if let Some(resolver) = lock(&self.shared.resolver).as_mut() {
                    resolver.programs_attached();
                }
            }
            (false, true) => {
                gated.detach(&mut lock(&self.ebpf), now);
                if let Some(pairing) = &self.shared.pairing {
                    pairing.set_attached(false);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// While the gated programs are detached the ledgers see no fd or thread come or go: the
    /// monitor passes the counts of its latest sample, and a ledger that disagrees is re-read
    /// from procfs (so a blamed fd closed meanwhile is not kept alive).
    pub fn resync_if_drifted(&self, pid: i32, fds: u64, threads: u64) {
        let Ok(tgid) = u32::try_from(pid) else {
            return;
        };
        if lock(&self.gated).gate.attached() {
            return;
        }
        if let Some(ledger) = lock(&self.shared.ledgers).get_mut(&tgid) {
            if ledger.fds.len() as u64 != fds || ledger.threads.len() as u64 != threads {
                resync(tgid, ledger);
            }
        }
    }

    /// The gate's policy and how long the gated programs were attached.
    pub fn gate_stats(&self) -> GateStats {
        lock(&self.gated).gate.stats(Instant::now())
    }

    /// The kernel's Python frame-walk maps (`crate::pyframes::PyFrames` fills them).
    pub fn python_maps(&self) -> Option<PyMaps> {
        self.py_maps.clone()
    }

    /// Installs the resolver that blames Python sites for new entries.
    pub fn set_resolver(&self, resolver: Box<dyn SiteResolver>) {
        *lock(&self.shared.resolver) = Some(resolver);
    }

    /// Starts following a process: the kernel filter first, then the ledger is seeded from
    /// procfs, so nothing created in between is missed (an fd seen both ways keeps its event).
    pub fn follow(&self, pid: i32) -> Result<(), TracerError> {
        let tgid = u32::try_from(pid).map_err(|_| TracerError::Follow {
            pid,
            why: "not a valid pid".into(),
        })?;
        lock(&self.targets)
            .set(tgid)
            .map_err(|why| TracerError::Follow { pid, why })?;
        // Past `MAX_FD_SLOTS` followed processes, the others' fds are events as before.
        if let Some(pairing) = &self.shared.pairing {
            pairing.assign(tgid);
        }
        let listed = reconcile::list(pid);
        let mut ledgers = lock(&self.shared.ledgers);
        let ledger = ledgers.entry(tgid).or_default();
        if let Ok(listing) = listed {
            ledger.reconcile(listing.fds, listing.threads);
        }
        Ok(())
    }

    /// Tracks the heap blocks of a followed process too (uprobes on its allocator; every
    /// malloc and free it makes then traps into the kernel, so this costs the target).
    pub fn track_allocations(&self, pid: i32) -> Result<(), AllocationsError> {
        let tgid = u32::try_from(pid).map_err(|_| AllocationsError::NoLibc(pid))?;
        let mut ebpf = lock(&self.ebpf);
        if let Some(old) = lock(&self.allocations).remove(&tgid) {
            old.detach(&mut ebpf);
        }
        let probes = AllocationProbes::attach(&mut ebpf, pid)?;
        lock(&self.allocations).insert(tgid, probes);
        Ok(())
    }

    /// Stops following a process and forgets its ledger.
    pub fn unfollow(&self, pid: i32) {
        let Ok(tgid) = u32::try_from(pid) else {
            return;
        };
        if let Some(probes) = lock(&self.allocations).remove(&tgid) {
            probes.detach(&mut lock(&self.ebpf));
        }
        lock(&self.targets).clear(tgid);
        if let Some(pairing) = &self.shared.pairing {
            pairing.release(tgid);
        }
        {
            let mut gated = lock(&self.gated);
            gated.gate.release(tgid);
            // Detaching cannot fail; attaching is not wanted with one hold fewer.
            let _ = self.settle_locked(&mut gated, Instant::now());
        }
        lock(&self.shared.ledgers).remove(&tgid);
        if let Some(resolver) = lock(&self.shared.resolver).as_mut() {
            resolver.forget(tgid);
        }
    }

    /// The ledger sizes of one process, `None` when it is not followed.
    pub fn counts(&self, pid: i32) -> Option<LedgerCounts> {
        let tgid = u32::try_from(pid).ok()?;
        lock(&self.shared.ledgers)
            .get(&tgid)
            .map(TargetLedger::counts)
    }

    /// Live amounts per site of one process; with `as_of_ns`, its threads as they were then
    /// (see `TargetLedger::live_by_site_as_of`).
    pub fn live_by_site(&self, pid: i32, as_of_ns: Option<u64>) -> Option<LiveBySite> {
        let tgid = u32::try_from(pid).ok()?;
        lock(&self.shared.ledgers)
            .get(&tgid)
            .map(|ledger| ledger.live_by_site_as_of(as_of_ns))
    }

    pub fn stats(&self) -> EventStats {
        lock(&self.shared.stats).clone()
    }
}

/// A loaded program of the object, as a raw tracepoint.
fn raw_tracepoint<'a>(
    ebpf: &'a mut Ebpf,
    name: &str,
) -> Result<&'a mut RawTracePoint, TracerError> {
    ebpf.program_mut(name)
        .ok_or_else(|| TracerError::Load(format!("program {name} missing from the object")))?
        .try_into()
        .map_err(|e| TracerError::Load(format!("{name}: {e}")))
}

/// The fd pairing of the loaded object, unless it is turned off or cannot work here (then every
/// open and close is an event, as without it; a note says why).
fn pairing(ebpf: &mut Ebpf) -> Option<FdPairing> {
    let one_in = match PairingSetting::from_env() {
        Ok(PairingSetting::Off) => return None,
        Ok(PairingSetting::SampleOneIn(n)) => n,
        Err(why) => {
            eprintln!("leak-monitor: {why}; using the default");
            leak_monitor_common::SAMPLE_ONE_IN
        }
    };
    let maps = (
        ebpf.take_map(names::FD_TABLE)?,
        ebpf.take_map(names::FD_SLOTS)?,
        ebpf.take_map(names::FD_STACKS)?,
        ebpf.take_map(names::FD_SAMPLING)?,
        ebpf.take_map(names::SLOT_OWNERS)?,
    );
    FdPairing::new(maps.0, maps.1, maps.2, maps.3, maps.4, one_in)
        .map_err(|why| {
            eprintln!("leak-monitor: fd pairing off ({why}): every open and close is an event")
        })
        .ok()
}

fn attach_gated(ebpf: &mut Ebpf) -> Result<Vec<(&'static str, RawTracePointLinkId)>, TracerError> {
    let mut links = Vec::with_capacity(GATED.len());
    for (name, tracepoint) in GATED {
        let attached = raw_tracepoint(ebpf, name)?.attach(tracepoint);
        match attached {
            Ok(link) => links.push((name, link)),
            Err(err) => {
                // All or none.
                for (name, link) in links {
                    if let Ok(program) = raw_tracepoint(ebpf, name) {
                        let _ = program.detach(link);
                    }
                }
                return Err(TracerError::Load(format!("attaching {tracepoint}: {err}")));
            }
        }
    }
    Ok(links)
}

impl GatedPrograms {
    fn detach(&mut self, ebpf: &mut Ebpf, now: Instant) {
        self.detach_links(ebpf);
        self.gate.record(false, now);
    }

    fn detach_links(&mut self, ebpf: &mut Ebpf) {
        for (name, link) in self.links.drain(..) {
            if let Ok(program) = raw_tracepoint(ebpf, name) {
                // Fails only for a link already gone.
                let _ = program.detach(link);
            }
        }
    }

    fn clear_runs(&mut self) {
        let Some(runs) = self.runs.as_mut() else {
            return;
        };
        let Ok(cpus) = nr_cpus() else {
            return;
        };
        for slot in 0..runs.len() {
            if let Ok(values) = PerCpuValues::try_from(vec![PageRun::default(); cpus]) {
                let _ = runs.set(slot, values, 0);
            }
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.drain.take() {
            let _ = thread.join();
        }
    }
}

/// The draining thread's state.
struct Drainer {
    shared: Arc<Shared>,
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, u64>,
    /// Kernel drop counts already accounted for, per counter index.
    seen_dropped: [u64; counter::LEN as usize],
    batch: Vec<Traced>,
    last_collect: Instant,
    /// Survivor collections so far (every `FULL_SCAN_EVERY`th reads the table in full).
    collections: u32,
}

impl Drainer {
    fn new(
        shared: Arc<Shared>,
        ring: RingBuf<MapData>,
        counters: PerCpuArray<MapData, u64>,
    ) -> Self {
        Drainer {
            shared,
            ring,
            counters,
            seen_dropped: [0; counter::LEN as usize],
            batch: Vec::with_capacity(4096),
            last_collect: Instant::now(),
            collections: 0,
        }
    }

    fn run(mut self, stop: &AtomicBool) {
        let mut timeout = POLL_TIMEOUT;
        let mut drops_checked = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            self.wait_readable(timeout);
            let drained = self.drain_once();
            timeout = if drained > 0 {
                POLL_TIMEOUT
            } else {
                (timeout * 2).min(IDLE_POLL_TIMEOUT)
            };
            if self.last_collect.elapsed() >= COLLECT_EVERY {
                self.last_collect = Instant::now();
                self.take_survivors();
            }
            if drained > 0 || drops_checked.elapsed() >= DROPS_CHECK_EVERY {
                self.check_drops();
                drops_checked = Instant::now();
            }
        }
    }

    /// Feeds the ledgers the opens the kernel paired no close with for `SURVIVOR_AGE`, as
    /// opens at the time they were made.
    fn take_survivors(&mut self) {
        let Some(pairing) = &self.shared.pairing else {
            return;
        };
        if !pairing.attached() {
            return;
        }
        self.collections = self.collections.wrapping_add(1);
        let full = self.collections.is_multiple_of(FULL_SCAN_EVERY);
        let tgids = pairing.tgids();
        let scans: Vec<(u32, Extent)> = {
            let ledgers = lock(&self.shared.ledgers);
            tgids
                .into_iter()
                .map(|tgid| {
                    let highest = ledgers.get(&tgid).and_then(|l| l.fds.highest());
                    let extent = if full {
                        Extent::Full
                    } else {
                        Extent::Past {
                            past: highest.and_then(|fd| u32::try_from(fd).ok()).unwrap_or(0),
                            gap: SCAN_GAP,
                        }
                    };
                    (tgid, extent)
                })
                .collect()
        };
        let now = event::monotonic_ns();
        self.batch.clear();
        for (tgid, extent) in scans {
            for survivor in
                pairing.take_survivors(tgid, extent, now, SURVIVOR_AGE.as_nanos() as u64)
            {
                let call = Syscall(survivor.call);
                self.batch.push(Traced {
                    tgid,
                    // The opening thread is kept with the stack; without one, the process.
                    tid: survivor.tid.unwrap_or(tgid),
                    ts_ns: survivor.opened_ns,
                    event: TraceEvent::FdOpened {
                        fd: survivor.fd,
                        kind: call.fd_kind().unwrap_or(crate::sampling::FdKind::Other),
                        call,
                        copied_from: None,
                    },
                    stack: survivor.stack,
                });
            }
        }
        if !self.batch.is_empty() {
            *lock(&self.shared.stats)
                .pairing
                .entry("survivors")
                .or_default() += self.batch.len() as u64;
            self.apply_batch();
            self.batch.clear();
        }
    }

    fn wait_readable(&self, timeout: Duration) {
        let mut pollfd = libc::pollfd {
            fd: self.ring.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call; the fd is owned by `self.ring`.
        unsafe { libc::poll(&mut pollfd, 1, timeout.as_millis() as libc::c_int) };
    }

    /// Applies what the ring buffer holds; returns the number of records read.
    fn drain_once(&mut self) -> usize {
        self.batch.clear();
        let mut undecodable = 0u64;
        let mut records = 0;
        loop {
            let (decoded, second) = {
                let Some(item) = self.ring.next() else {
                    break;
                };
                records += 1;
                // `decode` checks the record's length; the item is released at once.
                (event::decode(&item), event::pair_second_bytes(&item))
            };
            match decoded {
                Ok(traced) => {
                    self.batch.push(traced);
                    self.batch.extend(second);
                }
                Err(_) => undecodable += 1,
            }
            if self.batch.len() >= 4096 {
                self.apply_batch();
                self.batch.clear();
            }
        }
        self.apply_batch();
        if undecodable > 0 {
            *lock(&self.shared.stats)
                .dropped
                .entry("undecodable")
                .or_default() += undecodable;
        }
        records
    }

    fn apply_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        {
            let mut stats = lock(&self.shared.stats);
            for traced in &self.batch {
                *stats
                    .received
                    .entry(metric_kind(&traced.event))
                    .or_default() += 1;
            }
        }
        let mut resolver = lock(&self.shared.resolver);
        let mut ledgers = lock(&self.shared.ledgers);
        for traced in &self.batch {
            let Some(ledger) = ledgers.get_mut(&traced.tgid) else {
                continue;
            };
            let site = match (creates(&traced.event), resolver.as_mut()) {
                (true, Some(resolver)) => resolver.site_for(traced),
                _ => None,
            };
            ledger.apply(traced, site);
            // Fds closed without a close event: the pairing table's entries for them are stale.
            if let Some(pairing) = &self.shared.pairing {
                match traced.event {
                    TraceEvent::FdRangeClosed { first, last } => {
                        pairing.clear(traced.tgid, first, last)
                    }
                    TraceEvent::Exec => pairing.clear(traced.tgid, 0, i32::MAX),
                    _ => {}
                }
            }
        }
        // Exec closed the close-on-exec fds without close events: re-read those from procfs.
        for (tgid, ledger) in ledgers.iter_mut().filter(|(_, l)| l.needs_resync) {
            resync(*tgid, ledger);
        }
    }

    /// Reads the kernel's drop counters; new drops mean the ledgers may have missed events, so
    /// each is re-read from procfs.
    fn check_drops(&mut self) {
        let mut new_drops = false;
        let mut stats = None;
        for index in 0..counter::LEN {
            let Ok(values) = self.counters.get(&index, 0) else {
                continue;
            };
            let total: u64 = values.iter().sum();
            if let Some(name) = pairing_count(index) {
                let stats = stats.get_or_insert_with(|| lock(&self.shared.stats));
                stats.pairing.insert(name, total);
                continue;
            }
            if index >= counter::DROPS_END {
                continue;
            }
            let seen = &mut self.seen_dropped[index as usize];
            if total > *seen {
                let delta = total - *seen;
                *seen = total;
                let stats = stats.get_or_insert_with(|| lock(&self.shared.stats));
                *stats.dropped.entry(dropped_kind(index)).or_default() += delta;
                new_drops = true;
            }
        }
        drop(stats);
        if new_drops {
            for (tgid, ledger) in lock(&self.shared.ledgers).iter_mut() {
                resync(*tgid, ledger);
            }
        }
    }
}

/// Events that create an entry a site can be blamed for.
fn creates(event: &TraceEvent) -> bool {
    matches!(
        event,
        TraceEvent::FdOpened { .. }
            | TraceEvent::ThreadCreated { .. }
            | TraceEvent::PageFault { .. }
            | TraceEvent::Allocated { .. }
    )
}

fn resync(tgid: u32, ledger: &mut TargetLedger) {
    if let Ok(listing) = reconcile::list(tgid as i32) {
        ledger.reconcile(listing.fds, listing.threads);
    }
}

/// The metric kind of a kernel drop counter index (the event kind it was counted under).
fn dropped_kind(index: u32) -> &'static str {
    match index {
        kind::FD_OPEN | kind::FD_OPEN_PAIR => "fd_open",
        kind::FD_CLOSE | kind::FD_CLOSE_RANGE => "fd_close",
        kind::THREAD_NEW => "thread_new",
        kind::THREAD_EXIT => "thread_exit",
        kind::EXEC => "exec",
        kind::FORK => "fork",
        kind::PAGE_FAULT | kind::PAGE_RUN => "page_fault",
        kind::ALLOC => "alloc",
        kind::FREE => "free",
        kind::UNMAP | kind::BRK | kind::REMAP => "unmap",
        _ => "other",
    }
}
