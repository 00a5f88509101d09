//! The engine. A `TargetMonitor` follows one process: it samples procfs every tick, feeds the
//! trend detectors (`Trends`, which read nothing but their inputs, so a recording replays
//! through them) and arms attribution at the moments of growth. A `Fleet` is the daemon's set
//! of monitors: it finds new matching processes and drops ended ones.

mod fleet;
pub mod group;
mod rises;
mod snapshot;
mod target;
mod tracing;
pub mod trends;

pub use fleet::{Fleet, FleetTick};
pub use snapshot::{ResourceSeries, ResourceSnapshot, StacksStatus, TargetSnapshot};
pub use target::{Attribution, Ended, TargetMonitor, TickInputs};
pub use tracing::Tracing;
