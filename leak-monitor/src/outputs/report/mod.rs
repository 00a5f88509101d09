//! Leak reports: the JSON report of the contract (`model`) and its Markdown rendering
//! (`markdown`), both built from a `TargetSnapshot`; the group report of a pool (`group`).

mod group;
mod markdown;
mod model;

pub use group::{GroupReport, GROUP_SCHEMA};
pub use markdown::render_markdown;
pub use model::{
    Observation, PerEvent, Report, ReportCapabilities, ReportTarget, ResourceReport, Schema,
    SiteReport, StackFrame, Timestamp, SCHEMA,
};
