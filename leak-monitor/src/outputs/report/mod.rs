//! Leak reports: the JSON report of the contract (`model`) and its Markdown rendering
//! (`markdown`), both built from a `TargetSnapshot`; the group report of a pool (`group`) and
//! its Markdown rendering (`group_markdown`).

mod breakdown;
mod group;
mod group_markdown;
mod markdown;
mod model;

pub use breakdown::{BreakdownReport, FirstLast, SeriesPoint};
pub use group::{GroupReport, GROUP_SCHEMA};
pub use group_markdown::render_group_markdown;
pub use markdown::render_markdown;
pub use model::{
    Observation, PerEvent, Report, ReportCapabilities, ReportTarget, ResourceReport, Schema,
    SiteReport, StackFrame, Timestamp, SCHEMA,
};
