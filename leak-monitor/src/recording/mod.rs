//! Record and replay: what the engine saw of each target (its samples, the early leaks
//! attribution agreed with, the resolved sites and census findings, the run's capabilities),
//! written as it goes, and the reports rebuilt from it offline through the same detectors.
//! An SRE records on a production host and reads it on a laptop; a bug report carries it.
//! The format is `format::FORMAT`, documented in docs/recording.md.

pub mod format;
mod recorder;
mod replay;

pub use recorder::{unix_seconds, RecordError, Recorder};
pub use replay::{replay, replay_lines, Replay, ReplayError, Replayed};

#[cfg(test)]
mod tests;
