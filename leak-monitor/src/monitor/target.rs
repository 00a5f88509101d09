//! One followed process: procfs samples in, per-resource trends out, and (for a Python target
//! whose stacks can be read) growth attributed to source lines by the stack probe, armed when a
//! resource sets a new high or spikes.

use super::rises::{Rise, Rises};
use super::snapshot::{ResourceSeries, ResourceSnapshot, StacksStatus, TargetSnapshot};
use super::tracing::Tracing;
use super::trends::Trends;
use crate::attribution::frames::{origin, Origin};
use crate::attribution::held;
use crate::attribution::probe::{Probe, Reader};
use crate::attribution::stacks::StackError;
use crate::attribution::{describe_site, Description, LeakType, Site, SiteMethod};
use crate::detection::{Trend, Verdict};
use crate::events::event::monotonic_ns;
use crate::events::{LiveBySite, TracerError, HOLD};
use crate::memory::{BreakdownSource, BreakdownWatch};
use crate::pyframes::{FramesError, PyFrames};
use crate::pyheap::{HeapFindings, HeapSource, HeapWatch};
use crate::resource::{Amount, Resource, Seconds, Share};
use crate::sampling::{Limits, Sample, SampleError, Sampler};
use crate::targets::{self, runtime, GroupSource, TargetInfo};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often limits (fd soft limit, cgroup memory limit) are re-read: they rarely change, and
/// reading the cgroup walks several files.
const LIMITS_REFRESH: Duration = Duration::from_secs(30);

/// After memory last set a new high (or while its trend is not stable), heap censuses go on
/// this long: a slow leak's new highs can be far apart.
const CENSUS_HOLD: Duration = Duration::from_secs(60);
/// The share of a resource's growth its top site must have for an early leak verdict.
const EARLY_SITE_SHARE: Share = Share(0.5);

/// After a new high or a spike the stack probe reads for this many ticks (at least one second).
const ARM_TICKS: u32 = 3;

/// A Python target whose stacks could not be read is tried again this often (it may have been
/// caught starting up), at most `STACK_RETRIES` times; a denied permission is not retried.
const STACK_RETRY_EVERY: Duration = Duration::from_secs(10);
const STACK_RETRIES: u32 = 6;
/// A Python target without a discovered interpreter (identified from a recording or a test).
const NO_RUNTIME: &str = "the interpreter of this process was not discovered";

/// Rows of the type-growth table in a snapshot.
const HEAP_GROWTH_ROWS: usize = 10;

/// Sites per resource in a snapshot (the attributor keeps more to rank them), and the smallest
/// share a site needs to be shown: below it, a site is the noise of the sampling.
const SNAPSHOT_SITES: usize = 10;
const MIN_SITE_SHARE: Share = Share(0.01);

/// What `describe_site` said about a site: (file, line, resource) -> (type, evidence, fix).
type Descriptions = HashMap<(String, u32, Resource), Description>;

/// Why a target stopped being followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The process exited (or its PID now belongs to another process).
    Exited,
    /// Sampling failed for good, e.g. permission was lost.
    Failed(String),
}

/// Follows one process.
pub struct TargetMonitor {
    info: TargetInfo,
    sampler: Sampler,
    limits: Limits,
    limits_read_at: Instant,
    /// The detectors and published verdicts, fed at seconds since `started`.
    trends: Trends,
    /// Per resource: the highest value seen and the rises that engage the kernel tracer.
    highs: Vec<ResourceHigh>,
    latest: Option<Sample>,
    /// The resources whose early leak attribution agreed with at the last publish.
    agreed_early: Vec<Resource>,
    started: Instant,
    last_sample_at: Option<Instant>,
    /// CLOCK_MONOTONIC ns of the last sample, the kernel events' clock: once the process has
    /// exited, its sites are read as of then (its exit ended all its threads).
    last_sample_ns: Option<u64>,
    samples: u64,
    interval: Duration,
    ended: Option<Ended>,
    /// The eBPF tracer following this process, when tracing is on.
    tracing: Option<Arc<Tracing>>,
    /// The kernel walks this process's Python frames at each event (exact sites); when set,
    /// sites come from the ledgers and the sampling probe is not needed.
    frames: Option<PyFrames>,
    /// Why the kernel does not walk this process's frames, though tracing is on.
    frames_off: Option<String>,
    /// See `TargetSnapshot::allocations`.
    allocations: Option<Result<(), String>>,
    stacks: StacksStatus,
    probe: Option<Probe>,
    /// Whether and when to try attaching the stack reader again.
    stack_retry: Option<(Instant, u32)>,
    /// Site descriptions read once (they read source files).
    descriptions: Mutex<Descriptions>,
    /// Why the tracer's gated programs could not be attached at this target's growth (said
    /// once on stderr).
    engage_failed: Option<String>,
    /// Censuses of the Python heap, taken while memory grows; why not, for a Python target
    /// whose heap cannot be read; None for other targets.
    heap: Option<Result<HeapWatch, String>>,
    /// Breakdowns of resident memory (parts per allocator), taken in the background; why not
    /// (no attribution asked for, or no thread).
    breakdown: Result<BreakdownWatch, String>,
    /// The lines that fill the census's holders, found once per holder.
    fills: Mutex<held::FillCache>,
    /// What this target is read with beyond procfs (kept to start it after an exec).
    attribution: Attribution,
    /// The process name when attached: the `target` label, unless a `--match` name gave it.
    attached_comm: String,
}

/// What a monitor reads of a Python target beyond procfs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attribution {
    /// Python stacks (the probe's and the kernel's frame walk) at the moments of growth.
    pub stacks: bool,
    /// Censuses of the Python heap while memory grows (needs `stacks`).
    pub heap_census: bool,
}

impl Default for Attribution {
    fn default() -> Self {
        Attribution {
            stacks: true,
            heap_census: true,
        }
    }
}

impl TargetMonitor {
    /// Attaches to the process and takes the first sample, so an unusable target fails here.
    pub fn attach(info: TargetInfo, interval: Duration) -> Result<Self, SampleError> {
        TargetMonitor::attach_with(info, interval, Attribution::default())
    }

    /// `attach`, with Python stacks and the heap census on or off (stacks off: procfs only,
    /// e.g. to measure what attribution costs).
    pub fn attach_with(
        info: TargetInfo,
        interval: Duration,
        attribution: Attribution,
    ) -> Result<Self, SampleError> {
        let sampler = Sampler::attach_target(info.id)?;
        let limits = sampler.limits()?;
        let stacks = attribution.stacks;
        let heap = heap_census(&info, attribution);
        let attached_comm = read_comm(info.id.pid).unwrap_or_default();
        let (stacks, probe, retryable) = if stacks {
            start_probe(&info)
        } else {
            (
                StacksStatus::Off("stack attribution was switched off".to_string()),
                None,
                false,
            )
        };
        let now = Instant::now();
        let breakdown = start_breakdown(&info, attribution, now);
        let mut monitor = TargetMonitor {
            info,
            sampler,
            limits,
            limits_read_at: now,
            trends: Trends::new(0.0),
            highs: Resource::ALL
                .iter()
                .map(|&r| ResourceHigh::new(r))
                .collect(),
            latest: None,
            agreed_early: Vec::new(),
            started: now,
            last_sample_at: None,
            last_sample_ns: None,
            samples: 0,
            interval,
            ended: None,
            tracing: None,
            frames: None,
            frames_off: None,
            allocations: None,
            stack_retry: retryable.then_some((now, 0)),
            stacks,
            probe,
            descriptions: Mutex::new(HashMap::new()),
            engage_failed: None,
            heap,
            breakdown,
            fills: Mutex::default(),
            attribution,
            attached_comm,
        };
        monitor.tick(now)?;
        Ok(monitor)
    }

    /// Recompute trends at most this often (default: every tick). A trend costs up to ~0.5 ms
    /// per resource at the tracker's cap, so a daemon following many targets spaces them out;
    /// a verdict is seconds to minutes in the making anyway.
    pub fn set_trend_refresh(&mut self, every: Duration) {
        self.trends.set_refresh_every(every.as_secs_f64());
    }

    /// Follows this process in the kernel too: its fd, thread and page ledgers start now,
    /// seeded from procfs. Unfollowed when the monitor is dropped.
    ///
    /// For a Python process the kernel also walks its frames at each event, so every ledger
    /// entry gets its exact source line; the sampling probe is then stopped (it would only cost).
    pub fn trace_with(&mut self, tracing: Arc<Tracing>) -> Result<(), TracerError> {
        let pid = self.info.id.pid;
        // Following again (a reused PID): the old walk goes first, so its teardown cannot
        // remove the new one's kernel entries.
        self.frames = None;
        tracing.tracer.follow(pid)?;
        self.walk_frames(&tracing);
        self.tracing = Some(tracing);
        Ok(())
    }

    /// The kernel's walk of a Python target's frames (and its allocator, when tracked), on a
    /// target the tracer follows.
    fn walk_frames(&mut self, tracing: &Tracing) {
        let pid = self.info.id.pid;
        if targets::is_python(&self.info) {
            self.frames_off = None;
            let attached = match &self.info.runtime {
                Some(python) => PyFrames::attach(python, &tracing.tracer),
                None => Err(FramesError::Proc(NO_RUNTIME.to_string())),
            };
            match attached {
                Ok(frames) => {
                    tracing.sites.add(frames.resolver());
                    self.frames = Some(frames);
                    self.probe = None;
                }
                Err(err) => self.frames_off = Some(err.to_string()),
            }
            if tracing.allocations {
                // Heap blocks without the stack that made them blame nothing.
                self.allocations = Some(if self.frames.is_some() {
                    tracing
                        .tracer
                        .track_allocations(pid)
                        .map_err(|e| e.to_string())
                } else {
                    Err("the kernel does not walk this target's Python frames".into())
                });
            }
        }
    }

    pub fn tracing(&self) -> Option<&Arc<Tracing>> {
        self.tracing.as_ref()
    }

    /// Puts this target in the pool `group` found from the process tree (`group::pool_groups`);
    /// true when that changed its group.
    pub fn join_pool(&mut self, group: &str) -> bool {
        if self.info.group == group && self.info.group_source == GroupSource::Parent {
            return false;
        }
        self.info.group = group.to_string();
        self.info.group_source = GroupSource::Parent;
        true
    }

    pub fn info(&self) -> &TargetInfo {
        &self.info
    }

    pub fn ended(&self) -> Option<&Ended> {
        self.ended.as_ref()
    }

    /// Takes one sample. On error the monitor keeps what it has; a gone process is marked ended
    /// (its PID and start time are checked, so a reused PID is not mistaken for it).
    pub fn tick(&mut self, now: Instant) -> Result<(), SampleError> {
        if self.ended.is_some() {
            return Ok(());
        }
        // No separate liveness check: the sampler reads through handles bound to the attached
        // process, so an exited process (or a reused PID) is `Gone` from the sample itself.
        let sample = match self.sampler.sample() {
            Ok(sample) => sample,
            Err(err) => {
                self.ended = Some(match &err {
                    SampleError::Gone { .. } => Ended::Exited,
                    SampleError::PermissionDenied { .. } => Ended::Failed(err.to_string()),
                    // A transient read error: keep following.
                    SampleError::Io { .. } => return Err(err),
                });
                return Err(err);
            }
        };
        if now.duration_since(self.limits_read_at) >= LIMITS_REFRESH {
            // Keep the old limits when the re-read fails: they are still the best we know.
            if let Ok(limits) = self.sampler.limits() {
                self.limits = limits;
            }
            self.limits_read_at = now;
        }
        let t = self.seconds_at(now);
        let mut grew = false;
        let mut rise = Rise::None;
        for high in &mut self.highs {
            let (new_high, rose) = high.observe(sample.value(high.resource), now);
            grew |= new_high;
            rise = rise.max(rose);
        }
        let memory_grows = self
            .highs
            .iter()
            .any(|h| h.resource == Resource::RssBytes && h.last_was_new)
            || self.trends.trend(Resource::RssBytes).verdict != Verdict::Stable;
        grew |= !self.trends.observe(t, &sample, &self.limits).is_empty();
        self.publish_trends(t);
        self.follow_exec();
        self.retry_stacks(now);
        self.gate_tracing(rise, now, &sample);
        if memory_grows {
            if let Some(Ok(heap)) = &self.heap {
                heap.arm(now + CENSUS_HOLD);
            }
            if let Ok(breakdown) = &self.breakdown {
                breakdown.arm(now + CENSUS_HOLD);
            }
        }
        if grew {
            if let Some(probe) = &self.probe {
                let armed_for = (self.interval * ARM_TICKS).max(Duration::from_secs(1));
                probe.arm(now + armed_for);
            }
        }
        if let Some(frames) = &self.frames {
            // A thread started or ended: the kernel's walk needs its map (THREAD_NEW only
            // reports the starts while the syscall programs are attached).
            if self
                .latest
                .as_ref()
                .is_some_and(|l| l.threads != sample.threads)
            {
                frames.refresh_soon();
            }
        }
        self.latest = Some(sample);
        self.last_sample_at = Some(now);
        self.last_sample_ns = Some(monotonic_ns());
        self.samples += 1;
        Ok(())
    }

    /// Engages the tracer's gated programs as `Rise::engages` says, and lets them go when no
    /// target's hold lasts.
    fn gate_tracing(&mut self, rise: Rise, now: Instant, sample: &Sample) {
        let Some(tracing) = &self.tracing else {
            return;
        };
        tracing
            .tracer
            .resync_if_drifted(self.info.id.pid, sample.fds.total(), sample.threads);
        let suspected = self.trends.any_suspected();
        let engage = rise.engages(suspected, || tracing.tracer.gate_stats().attached);
        let settled = if engage {
            tracing.tracer.engage(self.info.id.pid, now + HOLD)
        } else {
            tracing.tracer.settle(now)
        };
        if let Err(err) = settled {
            if self.engage_failed.is_none() {
                eprintln!(
                    "leak-monitor: pid {}: {err}; its new fds, threads and pages are not traced",
                    self.info.id.pid
                );
            }
            self.engage_failed = Some(err.to_string());
        }
    }

    /// A target caught before it exec'd its interpreter (a pyenv shim, a shell wrapper, `env`):
    /// while it is not known as Python, its executable is checked each tick; once it changes,
    /// the target is identified again (its command line, version and, unless a `--match` name
    /// gave it, its `target` label) and, Python now, gets its stacks, census and frame walk.
    fn follow_exec(&mut self) {
        if targets::is_python(&self.info) {
            return;
        }
        let pid = self.info.id.pid;
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        if exe.is_none() || exe == self.info.exe {
            return;
        }
        let named = (self.info.group != self.attached_comm).then_some(self.info.group.as_str());
        let was_named = named.is_some();
        let Ok(info) = targets::identify(pid, named) else {
            return;
        };
        if info.id != self.info.id {
            return;
        }
        // A pool's name came from the process tree, not a selector.
        let source = self.info.group_source;
        self.info = TargetInfo {
            group_source: if was_named { source } else { info.group_source },
            ..info
        };
        if !targets::is_python(&self.info) || !self.attribution.stacks {
            return;
        }
        // The interpreter has just started: read it once it is initialised (`retry_stacks`).
        self.stacks = StacksStatus::Off("the interpreter is starting".to_string());
        let now = Instant::now();
        self.stack_retry = Some((now.checked_sub(STACK_RETRY_EVERY).unwrap_or(now), 0));
    }

    /// Tries the stack reader again when its last attempt may have caught the target too early.
    fn retry_stacks(&mut self, now: Instant) {
        let Some((since, tries)) = self.stack_retry else {
            return;
        };
        if now.duration_since(since) < STACK_RETRY_EVERY {
            return;
        }
        let (stacks, probe, retryable) = start_probe(&self.info);
        let tries = tries + 1;
        self.stack_retry = (retryable && tries < STACK_RETRIES).then_some((now, tries));
        self.stacks = stacks;
        self.probe = probe;
        if self.stacks == StacksStatus::On {
            self.python_ready();
        }
    }

    /// The interpreter can be read now (after its start-up or an exec): the heap census and the
    /// kernel's frame walk that could not start before it was initialised.
    fn python_ready(&mut self) {
        // Discovered before the interpreter's library was mapped: discovered again, once.
        if self
            .info
            .runtime
            .as_ref()
            .is_none_or(|r| r.interpreter().is_err())
        {
            self.info.runtime = runtime::discover(self.info.id.pid).map(Arc::new);
        }
        if !matches!(self.heap, Some(Ok(_))) {
            self.heap = heap_census(&self.info, self.attribution);
        }
        if self.frames.is_none() {
            if let Some(tracing) = self.tracing.clone() {
                self.walk_frames(&tracing);
            }
        }
    }

    /// Whether this target's Python stacks are read, and why not.
    pub fn stacks_status(&self) -> &StacksStatus {
        &self.stacks
    }

    /// The stack probe, when this target's stacks are read.
    pub fn probe(&self) -> Option<&Probe> {
        self.probe.as_ref()
    }

    /// The current trend of one resource (refreshed at most every few seconds).
    pub fn trend(&self, resource: Resource) -> Trend {
        self.trends.trend(resource)
    }

    /// Publishes the trends computed this tick: an early leak (every gate passed but time) is
    /// a leak when attribution agrees (`Trends::publish`).
    fn publish_trends(&mut self, t: f64) {
        self.agreed_early = self
            .trends
            .early_candidates()
            .into_iter()
            .filter(|&resource| self.growth_does_not_give_back(resource))
            .collect();
        self.trends.publish(t, &self.agreed_early);
    }

    fn seconds_at(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.started).as_secs_f64()
    }

    /// What the last tick fed the detectors, for a recording: its time, sample and limits, and
    /// the early leaks attribution agreed with (`None` before the first sample).
    pub fn last_tick(&self) -> Option<TickInputs<'_>> {
        Some(TickInputs {
            seq: self.samples,
            t: self.seconds_at(self.last_sample_at?),
            sample: self.latest.as_ref()?,
            limits: &self.limits,
            agreed_early: &self.agreed_early,
        })
    }

    /// The early leaks attribution agreed with at the last publish.
    pub fn agreed_early(&self) -> &[Resource] {
        &self.agreed_early
    }

    /// The trend refresh period, seconds (0: every sample).
    pub fn trend_refresh_seconds(&self) -> f64 {
        self.trends.refresh_every()
    }

    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Whether the growth of `resource` comes from a source that does not give back: its top
    /// site, with most of the growth, is a line the catalog knows for this kind of leak (a
    /// file never closed, a thread never joined, a collection that only grows).
    fn growth_does_not_give_back(&self, resource: Resource) -> bool {
        let growth = self.trends.growth(resource);
        let live = self.live_by_site();
        let heap = self.heap_findings();
        let findings = heap.as_ref().and_then(|h| h.as_deref().ok());
        self.sites(resource, growth, live.as_ref(), findings)
            .first()
            .is_some_and(|top| top.share >= EARLY_SITE_SHARE && top.leak_type.keeps(resource))
    }

    /// The samples kept for every resource, for charts.
    pub fn series(&self) -> Vec<ResourceSeries> {
        self.trends.series()
    }

    pub fn snapshot(&self) -> TargetSnapshot {
        // One walk of the ledgers serves every resource's sites.
        let live = self.live_by_site();
        let heap = self.heap_findings();
        let findings = heap.as_ref().and_then(|h| h.as_deref().ok());
        let resources = Resource::ALL
            .iter()
            .filter_map(|&resource| {
                let figures = self.trends.figures(resource)?;
                let heap_growth = match (resource, findings) {
                    (Resource::RssBytes, Some(f)) => {
                        f.types.iter().take(HEAP_GROWTH_ROWS).cloned().collect()
                    }
                    _ => Vec::new(),
                };
                let growth = figures.last - figures.first;
                Some(ResourceSnapshot::new(
                    resource,
                    figures,
                    self.limits.for_resource(resource).map(Amount),
                    self.sites(resource, growth, live.as_ref(), findings),
                    heap_growth,
                ))
            })
            .collect::<Vec<_>>();
        let observed_seconds = self
            .last_sample_at
            .map(|at| Seconds::from_duration(at.duration_since(self.started)))
            .unwrap_or_default();
        TargetSnapshot {
            info: self.info.clone(),
            latest: self.latest.clone().unwrap_or_default(),
            limits: self.limits,
            resources,
            observed_seconds,
            samples: self.samples,
            interval_seconds: Seconds::from_duration(self.interval),
            ledgers: self
                .tracing
                .as_ref()
                .and_then(|t| t.tracer.counts(self.info.id.pid)),
            kernel_frames_off: self.frames_off.clone(),
            allocations: self.allocations.clone(),
            kernel_tracing: self
                .tracing
                .as_ref()
                .map(|t| (t.tracer.gate_stats(), self.engage_failed.clone())),
            stacks: self.stacks.clone(),
            heap,
            memory: match &self.breakdown {
                Ok(watch) => Ok(watch.findings()),
                Err(why) => Err(why.clone()),
            },
        }
    }

    /// The eBPF ledgers' live amounts per site, when the kernel walks this target's frames (as
    /// of the last sample once the target has ended).
    fn live_by_site(&self) -> Option<LiveBySite> {
        self.frames
            .as_ref()
            .zip(self.tracing.as_ref())
            .and_then(|(_, tracing)| {
                let as_of = self.ended.as_ref().and(self.last_sample_ns);
                tracing.tracer.live_by_site(self.info.id.pid, as_of)
            })
    }

    /// Takes a last breakdown of a live target's memory before its final report, so the
    /// report ends on current figures (waits up to 2 s).
    pub fn final_breakdown(&self) {
        if let (Ok(watch), None) = (&self.breakdown, &self.ended) {
            watch.take_now(Duration::from_secs(2));
        }
    }

    /// What the heap censuses found, or why there are none.
    fn heap_findings(&self) -> Option<Result<Arc<HeapFindings>, String>> {
        self.heap.as_ref().map(|heap| match heap {
            Ok(watch) => Ok(watch.findings()),
            Err(why) => Err(why.clone()),
        })
    }

    /// The top sites of `resource`, their amounts adding up to `growth` (none without growth).
    /// `live`: the eBPF ledgers' live amounts, when the kernel walks this target's frames.
    /// For `rss_bytes`, the heap census's holders come first (`held::merge`).
    fn sites(
        &self,
        resource: Resource,
        growth: Amount,
        live: Option<&LiveBySite>,
        heap: Option<&HeapFindings>,
    ) -> Vec<Site> {
        let others = self.runtime_sites(resource, growth, live);
        match heap {
            Some(findings) if resource == Resource::RssBytes && growth > Amount::ZERO => {
                held::merge(self.held_sites(findings), others, growth)
            }
            _ => others,
        }
    }

    /// The census's sites, read once per holder and line (they read source files).
    fn held_sites(&self, findings: &HeapFindings) -> Vec<Site> {
        let observed = self
            .last_sample_at
            .map_or(0.0, |at| at.duration_since(self.started).as_secs_f64());
        let mut fills = self.fills.lock().unwrap_or_else(PoisonError::into_inner);
        held::held_sites(self.info.id.pid, findings, observed, &mut fills)
    }

    /// Sites from the runtime's view: the kernel's frames on the ledgers, or sampled stacks.
    fn runtime_sites(
        &self,
        resource: Resource,
        growth: Amount,
        live: Option<&LiveBySite>,
    ) -> Vec<Site> {
        if self.frames.is_some() {
            return live.map_or_else(Vec::new, |live| self.kernel_sites(resource, live));
        }
        let Some(probe) = &self.probe else {
            return Vec::new();
        };
        if growth <= Amount::ZERO {
            return Vec::new();
        }
        let sampled = probe.with_attributor(|a| a.sites(resource, growth));
        let sites = sampled
            .into_iter()
            .take(SNAPSHOT_SITES)
            .filter(|s| s.share >= MIN_SITE_SHARE)
            .map(|s| Site {
                file: s.frame.file,
                line: s.frame.line,
                function: s.frame.function,
                share: s.share,
                amount: s.amount,
                leak_type: LeakType::Unknown,
                evidence: String::new(),
                fix: String::new(),
                stack: s.stack,
                method: Some(SiteMethod::SampledAtGrowth),
                holder: None,
            })
            .collect();
        self.described(sites, resource)
    }

    /// Sites from the eBPF ledgers: live entries per Python line, the line read in the kernel
    /// at each creating event. Amounts are exact: live fds, sockets, threads, or resident bytes
    /// of the pages each line made resident since attach.
    fn kernel_sites(&self, resource: Resource, live: &LiveBySite) -> Vec<Site> {
        let Some(tracing) = &self.tracing else {
            return Vec::new();
        };
        let amounts = live_amounts(live, resource);
        let total: u64 = amounts.values().sum();
        if total == 0 {
            return Vec::new();
        }
        let mut ranked: Vec<(u32, u64)> = amounts.iter().map(|(id, n)| (*id, *n)).collect();
        ranked.sort_by_key(|&(_, amount)| std::cmp::Reverse(amount));
        let sites: Vec<Site> = {
            let table = tracing.sites.table.lock();
            ranked
                .into_iter()
                .filter_map(|(id, amount)| {
                    let site = table.get(id)?;
                    let share = Share::of(amount as f64, total as f64);
                    Some(Site {
                        file: site.blamed.file.clone(),
                        line: site.blamed.line,
                        function: site.blamed.function.clone(),
                        share,
                        amount: Amount(amount as f64),
                        leak_type: LeakType::Unknown,
                        evidence: String::new(),
                        fix: String::new(),
                        stack: site.stack.clone(),
                        method: Some(SiteMethod::EbpfFrames),
                        holder: None,
                    })
                })
                .filter(|s| s.share >= MIN_SITE_SHARE)
                .take(SNAPSHOT_SITES)
                .collect()
        };
        self.described(sites, resource)
    }

    /// Fills each site's leak type, evidence and fix (read once per line and resource), moving it
    /// to the line where the catalog found the pattern; sites that land on one line are merged.
    fn described(&self, sites: Vec<Site>, resource: Resource) -> Vec<Site> {
        let mut descriptions = self
            .descriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut merged: Vec<Site> = Vec::with_capacity(sites.len());
        for mut site in sites {
            let key = (site.file.clone(), site.line, resource);
            let description = descriptions
                .entry(key)
                .or_insert_with(|| describe_site(self.info.id.pid, &site, resource))
                .clone();
            site.file = description.frame.file;
            site.line = description.frame.line;
            site.function = description.frame.function;
            site.leak_type = description.leak_type;
            site.evidence = description.evidence;
            site.fix = description.fix;
            match merged
                .iter_mut()
                .find(|m| m.file == site.file && m.line == site.line)
            {
                Some(same) => {
                    same.share += site.share;
                    same.amount += site.amount;
                }
                None => merged.push(site),
            }
        }
        merged.sort_by(|a, b| b.amount.total_cmp(&a.amount));
        merged
    }
}

/// The ledger's live amounts per site for one resource.
/// With allocation tracking, resident bytes are blamed on the lines that hold heap blocks: the
/// lines that faulted new pages in may only have extended a heap that others fill.
fn live_amounts(live: &LiveBySite, resource: Resource) -> &std::collections::BTreeMap<u32, u64> {
    match resource {
        Resource::RssBytes if !live.heap_bytes.is_empty() => &live.heap_bytes,
        Resource::RssBytes => &live.rss_bytes,
        Resource::OpenFds => &live.fds,
        Resource::Sockets => &live.sockets,
        Resource::Threads => &live.threads,
    }
}

/// The heap census a target gets: none unless it is Python with stacks on; why not, when off.
fn heap_census(info: &TargetInfo, attribution: Attribution) -> Option<Result<HeapWatch, String>> {
    if !attribution.stacks || !targets::is_python(info) {
        None
    } else if attribution.heap_census {
        Some(start_census(info))
    } else {
        Some(Err(
            "the heap census was switched off (--no-heap-census)".to_string()
        ))
    }
}

fn read_comm(pid: i32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_owned())
}

/// Starts the breakdowns of a target's memory, unless only procfs is asked for.
fn start_breakdown(
    info: &TargetInfo,
    attribution: Attribution,
    started: Instant,
) -> Result<BreakdownWatch, String> {
    if !attribution.stacks {
        return Err("the memory breakdown is off with stack attribution".to_string());
    }
    let python = targets::is_python(info).then(|| info.runtime.clone());
    let source = BreakdownSource::new(info.id.pid, python.flatten());
    BreakdownWatch::start(source, started)
        .map_err(|e| format!("cannot start the breakdown thread: {e}"))
}

/// Starts the heap census of a Python target; why not, when its heap cannot be read.
fn start_census(info: &TargetInfo) -> Result<HeapWatch, String> {
    let python = info.runtime.as_deref().ok_or(NO_RUNTIME)?;
    let source = HeapSource::attach(python)
        .map_err(|e| format!("the heap census cannot read this interpreter: {e}"))?;
    HeapWatch::start(source, is_user_file)
        .map_err(|e| format!("cannot start the background reader thread: {e}"))
}

fn is_user_file(file: &str) -> bool {
    origin(file) == Origin::User
}

/// Attaches the stack reader to a Python target and starts its probe; a failure is a status,
/// never an error of the monitor. The flag says whether a later attempt may succeed (the target
/// may have been caught starting up; a denied permission or a non-Python target will not change).
fn start_probe(info: &TargetInfo) -> (StacksStatus, Option<Probe>, bool) {
    if !targets::is_python(info) {
        return (StacksStatus::NotPython, None, false);
    }
    let pid = info.id.pid;
    let reader = match Reader::attach(pid, info.runtime.as_deref()) {
        Ok(reader) => reader,
        Err(err) => {
            let retryable = matches!(err, StackError::NotPython { .. } | StackError::Other { .. });
            return (StacksStatus::Off(err.to_string()), None, retryable);
        }
    };
    match Probe::start(pid, reader) {
        Ok(probe) => (StacksStatus::On, Some(probe), false),
        Err(err) => (
            StacksStatus::Off(format!("cannot start the stack probe thread: {err}")),
            None,
            false,
        ),
    }
}

/// The highest value one resource has reached, and its rises: a new high arms the stack probe,
/// a rise engages the kernel tracer.
struct ResourceHigh {
    resource: Resource,
    high: Option<f64>,
    last_was_new: bool,
    rises: Rises,
}

impl ResourceHigh {
    fn new(resource: Resource) -> Self {
        ResourceHigh {
            resource,
            high: None,
            last_was_new: false,
            rises: Rises::new(resource),
        }
    }

    /// Whether `value` is a new high, and how it rises.
    fn observe(&mut self, value: f64, now: Instant) -> (bool, Rise) {
        let rise = self.rises.observe(value, now);
        self.last_was_new = self.high.is_some_and(|high| value > high);
        self.high = Some(self.high.map_or(value, |high| high.max(value)));
        (self.last_was_new, rise)
    }
}

/// What one tick fed the detectors (`TargetMonitor::last_tick`).
pub struct TickInputs<'a> {
    /// Counts the samples taken: a recording writes each once.
    pub seq: u64,
    /// Seconds since the observation started.
    pub t: f64,
    pub sample: &'a Sample,
    pub limits: &'a Limits,
    pub agreed_early: &'a [Resource],
}

impl Drop for TargetMonitor {
    fn drop(&mut self) {
        if let Some(tracing) = &self.tracing {
            // The kernel stops walking before the process is forgotten.
            self.frames = None;
            tracing.sites.remove(self.info.id.pid as u32);
            tracing.tracer.unfollow(self.info.id.pid);
        }
    }
}
