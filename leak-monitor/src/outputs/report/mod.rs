//! Leak reports: the JSON report of the contract (`model`) and its Markdown rendering
//! (`markdown`), both built from a `TargetSnapshot`.

mod markdown;
mod model;

pub use markdown::render_markdown;
pub use model::{
    Observation, PerEvent, Report, ReportCapabilities, ReportTarget, ResourceReport, Schema,
    SiteReport, StackFrame, Timestamp, SCHEMA,
};
