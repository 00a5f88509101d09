//! The engine. A `TargetMonitor` follows one process: it samples procfs every tick, feeds the
//! trend detector per resource, and keeps the growth spikes for the stack sampler. A `Fleet` is
//! the daemon's set of monitors: it finds new matching processes and drops ended ones.

mod fleet;
pub mod group;
mod rises;
mod snapshot;
mod target;
mod tracing;

pub use fleet::{Fleet, FleetTick};
pub use snapshot::{ResourceSeries, ResourceSnapshot, StacksStatus, TargetSnapshot};
pub use target::{Attribution, Ended, TargetMonitor};
pub use tracing::Tracing;
