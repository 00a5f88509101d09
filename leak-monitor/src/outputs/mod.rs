//! What leak-monitor produces: Prometheus metrics (`metrics`) served over HTTP (`http`), and leak
//! reports as JSON and Markdown (`report`). Everything here renders a `TargetSnapshot`; nothing here
//! samples or decides.

pub mod http;
pub mod metrics;
pub mod report;

#[cfg(test)]
pub(crate) mod fixtures;
