//! leak-monitor: attach to live Python processes by PID, decide whether their memory, file
//! descriptors, sockets or threads leak, say how fast and when they hit their limit, and export it.
//!
//! The modules follow the data flow:
//! `targets` (which processes) -> `sampling` (procfs, every tick) -> `detection` (trend, verdicts)
//! -> `monitor` (the per-target engine that ties them together) -> `outputs` (Prometheus, reports).
//! `recording` writes what the monitor saw and replays it through the same detectors.
//! `commands` are the CLI verbs built on top; `main.rs` only parses and picks the exit code.
//! docs/architecture.md draws the flow.

pub mod attribution;
pub mod background;
pub mod capabilities;
pub mod cli;
pub mod commands;
pub mod detection;
pub mod events;
pub mod humanize;
pub mod memory;
pub mod monitor;
pub mod outputs;
pub mod pyframes;
pub mod pyheap;
pub mod recording;
pub mod resource;
pub mod sampling;
pub mod targets;

#[cfg(test)]
mod layering;
