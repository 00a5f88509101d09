//! What leak-monitor produces: Prometheus metrics (`metrics`) served over HTTP (`http`), and leak
//! reports as JSON and Markdown (`report`) and HTML (`html`). Everything here renders a `TargetSnapshot`; nothing here
//! samples or decides. `diff` compares two reports.

pub mod diff;
pub mod html;
pub mod http;
pub mod metrics;
pub mod report;

#[cfg(test)]
pub(crate) mod fixtures;
