//! `serve`'s view of pools: feeds every target to the group tracker, and when a group of more
//! than one process reaches `leak` for a resource, logs one line and writes a group report
//! (`{group}-group-leak-{stamp}.json`, and `.md` beside it) into `--report-dir`; while it leaks, writes it again when
//! the leaking line changes (the workers' attribution matures after the verdict).

use super::report_files::write_private;
use crate::detection::Verdict;
use crate::monitor::group::{GroupTracker, GroupView, MemberSample};
use crate::monitor::{Ended, TargetSnapshot};
use crate::outputs::report::{render_group_markdown, GroupReport};
use crate::resource::Resource;
use crate::targets::TargetId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct GroupAlerts {
    tracker: GroupTracker,
    /// The group each current target was last observed in: a target that joins a pool found
    /// from the process tree leaves the group of its process name.
    member_of: BTreeMap<TargetId, String>,
    report_dir: Option<PathBuf>,
    /// The resources each group was last seen to leak.
    leaking: BTreeMap<String, BTreeSet<Resource>>,
    /// The top line of each leaking group's resources when its report was last written.
    reported_lines: BTreeMap<String, BTreeSet<(Resource, String, u32)>>,
    log: fn(&str),
}

impl GroupAlerts {
    pub fn new(report_dir: Option<PathBuf>, log: fn(&str)) -> Self {
        GroupAlerts {
            tracker: GroupTracker::new(),
            member_of: BTreeMap::new(),
            report_dir,
            leaking: BTreeMap::new(),
            reported_lines: BTreeMap::new(),
            log,
        }
    }

    /// One tick: the targets that ended (with their last state) and the current ones. Returns
    /// every group's view, for the metrics.
    pub fn update(
        &mut self,
        ended: &[(TargetSnapshot, Ended)],
        current: &[TargetSnapshot],
    ) -> Vec<GroupView> {
        let now = SystemTime::now();
        let at = unix_seconds(now);
        for (snapshot, _) in ended {
            let info = &snapshot.info;
            self.observe(snapshot, at);
            self.member_of.remove(&info.id);
            self.tracker
                .ended(&info.group, info.id.pid, info.start_time_unix, at);
        }
        for snapshot in current {
            self.observe(snapshot, at);
        }
        let views = self.tracker.views(at);
        self.leaking
            .retain(|group, _| views.iter().any(|v| &v.group == group));
        self.reported_lines
            .retain(|group, _| self.leaking.contains_key(group));
        for view in views.iter().filter(|v| v.is_pool()) {
            self.check(view, now);
        }
        views
    }

    fn observe(&mut self, snapshot: &TargetSnapshot, at: f64) {
        let info = &snapshot.info;
        let before = self.member_of.insert(info.id, info.group.clone());
        if let Some(old) = before.filter(|old| *old != info.group) {
            self.tracker.moved(&old, info.id.pid, info.start_time_unix);
        }
        self.tracker
            .observe(&info.group, at, &MemberSample::from(snapshot));
        self.tracker.set_source(&info.group, info.group_source);
    }

    fn check(&mut self, view: &GroupView, now: SystemTime) {
        let leaking: BTreeSet<Resource> = view
            .resources
            .iter()
            .filter(|r| r.verdict == Verdict::Leak)
            .map(|r| r.resource)
            .collect();
        let before = self.leaking.entry(view.group.clone()).or_default();
        let new: Vec<Resource> = leaking.difference(before).copied().collect();
        let lines: BTreeSet<(Resource, String, u32)> = view
            .resources
            .iter()
            .filter(|r| leaking.contains(&r.resource))
            .filter_map(|r| {
                r.sites
                    .first()
                    .map(|s| (r.resource, s.file.clone(), s.line))
            })
            .collect();
        *before = leaking;
        let reported = self.reported_lines.entry(view.group.clone()).or_default();
        if new.is_empty() {
            if lines != *reported && !lines.is_empty() {
                *reported = lines;
                (self.log)(&format!("group {}: the leaking line changed", view.group));
                self.write(view, now);
            }
            return;
        }
        *reported = lines;
        for r in view.resources.iter().filter(|r| new.contains(&r.resource)) {
            let line = r
                .sites
                .first()
                .map(|s| format!("; top line {}:{}", s.file, s.line))
                .unwrap_or_default();
            (self.log)(&format!(
                "group {} ({} members, {} recycled): {}{line}",
                view.group, view.members, view.recycles_total, r.summary
            ));
        }
        self.write(view, now);
    }

    fn write(&self, view: &GroupView, now: SystemTime) {
        let Some(dir) = &self.report_dir else {
            return;
        };
        let path = dir.join(format!(
            "{}-group-leak-{}.json",
            super::report_files::sanitize(&view.group),
            unix_seconds(now) as u64
        ));
        let report = GroupReport::build(view, now);
        let result = report
            .to_json()
            .map_err(anyhow::Error::from)
            .and_then(|json| write_private(&path, &json))
            .and_then(|()| {
                write_private(&path.with_extension("md"), &render_group_markdown(&report))
            });
        match result {
            Ok(()) => (self.log)(&format!("group report written: {}", path.display())),
            Err(err) => (self.log)(&format!("cannot write group report: {err:#}")),
        }
    }
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
