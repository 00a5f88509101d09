//! When the costly kernel programs are attached.
//!
//! Any program on the syscall exit path, even one that returns at once, puts every task of the
//! machine on the kernel's slow syscall path: measured here, an open/close loop ran ~6% slower
//! with a do-nothing program on the tracepoint of a syscall it never makes, ~9% with one on
//! `sys_exit`, ~14% with the tgid looked up in a hash map (`tests/python/syscall_floor.py`;
//! fentry, which would hook `fd_install` alone, is refused by this kernel). A process that is not
//! growing gains nothing from it: its fds and pages come and go. So by default the `sys_exit`
//! and page-fault programs are attached only while some followed process grows (the monitor
//! calls `engage` at its repeated new highs and while its trend says growing or leak), and
//! detached once none has for `HOLD`. Thread exits and
//! execs stay traced all the time: they are rare and their programs cost nothing between them.
//!
//! What the ledgers miss while detached is read back from procfs: at each tick whose sample
//! disagrees with the fd or thread ledger (so a blamed fd closed meanwhile does not stay
//! blamed), and when the programs attach again; fds and threads created meanwhile are
//! pre-existing. The page ledger keeps its pages while detached (what a leak that stopped made
//! resident stays blamed on its line) and starts over at the next attach, since the pages given
//! back meanwhile were not seen.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long the programs stay attached after the last growth that engaged them.
pub const HOLD: Duration = Duration::from_secs(60);

/// When the syscall and page-fault programs are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engagement {
    /// While a followed process grows, and for a minute after (the default).
    #[default]
    OnGrowth,
    /// From start to end: every fd, thread and page is traced, at the cost of the syscall slow
    /// path for the whole machine.
    Always,
}

impl Engagement {
    pub fn as_str(self) -> &'static str {
        match self {
            Engagement::OnGrowth => "on-growth",
            Engagement::Always => "always",
        }
    }
}

/// Which processes want the programs attached, and until when. Pure logic: the tracer attaches
/// and detaches to follow `wanted`.
#[derive(Debug)]
pub struct Gate {
    policy: Engagement,
    holds: HashMap<u32, Instant>,
    /// Since when the programs have been attached, as the tracer last reported.
    attached_since: Option<Instant>,
    attached_before: Duration,
    engagements: u64,
}

/// How much the programs were attached, for reports and metrics.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GateStats {
    pub policy: Engagement,
    pub attached: bool,
    /// Times the programs were attached.
    pub engagements: u64,
    pub attached_seconds: f64,
}

impl Gate {
    pub fn new(policy: Engagement) -> Self {
        Gate {
            policy,
            holds: HashMap::new(),
            attached_since: None,
            attached_before: Duration::ZERO,
            engagements: 0,
        }
    }

    /// `tgid` grew: it wants the programs until `until` (a later hold is kept).
    pub fn engage(&mut self, tgid: u32, until: Instant) {
        let hold = self.holds.entry(tgid).or_insert(until);
        *hold = (*hold).max(until);
    }

    /// `tgid` is no longer followed.
    pub fn release(&mut self, tgid: u32) {
        self.holds.remove(&tgid);
    }

    /// Whether the programs should be attached at `now`.
    pub fn wanted(&self, now: Instant) -> bool {
        self.policy == Engagement::Always || self.holds.values().any(|&until| until > now)
    }

    /// Drops the holds that ended.
    pub fn expire(&mut self, now: Instant) {
        self.holds.retain(|_, until| *until > now);
    }

    pub fn attached(&self) -> bool {
        self.attached_since.is_some()
    }

    /// The tracer attached (`true`) or detached (`false`) the programs at `now`.
    pub fn record(&mut self, attached: bool, now: Instant) {
        match (self.attached_since, attached) {
            (None, true) => {
                self.attached_since = Some(now);
                self.engagements += 1;
            }
            (Some(since), false) => {
                self.attached_before += now.saturating_duration_since(since);
                self.attached_since = None;
            }
            _ => {}
        }
    }

    pub fn stats(&self, now: Instant) -> GateStats {
        let current = self
            .attached_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        GateStats {
            policy: self.policy,
            attached: self.attached(),
            engagements: self.engagements,
            attached_seconds: (self.attached_before + current).as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn always_is_always_wanted() {
        let gate = Gate::new(Engagement::Always);
        assert!(gate.wanted(Instant::now()));
    }

    #[test]
    fn on_growth_is_wanted_while_a_hold_lasts() {
        let t0 = Instant::now();
        let mut gate = Gate::new(Engagement::OnGrowth);
        assert!(!gate.wanted(t0));
        gate.engage(7, t0 + Duration::from_secs(10));
        gate.engage(7, t0 + Duration::from_secs(5)); // an earlier end does not shorten it
        gate.engage(8, t0 + Duration::from_secs(3));
        assert!(gate.wanted(t0 + Duration::from_secs(9)));
        gate.expire(t0 + Duration::from_secs(4));
        assert!(gate.wanted(t0 + Duration::from_secs(9)));
        assert!(!gate.wanted(t0 + Duration::from_secs(10)));
        gate.release(7);
        assert!(!gate.wanted(t0 + Duration::from_secs(4)));
    }

    #[test]
    fn attached_time_adds_up_over_engagements() {
        let t0 = Instant::now();
        let mut gate = Gate::new(Engagement::OnGrowth);
        gate.record(true, t0);
        gate.record(true, t0 + Duration::from_secs(1)); // already attached: no new engagement
        gate.record(false, t0 + Duration::from_secs(2));
        gate.record(true, t0 + Duration::from_secs(10));
        let stats = gate.stats(t0 + Duration::from_secs(13));
        assert_eq!(stats.engagements, 2);
        assert!(stats.attached);
        assert!((stats.attached_seconds - 5.0).abs() < 1e-9);
    }
}
