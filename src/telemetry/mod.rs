//! Telemetry: latency histograms handed over from the hot threads, live statistics (JSON lines,
//! status line) and the terminal dashboard. Written by the engine, read by the controller.

pub mod dashboard;
pub mod latency;
pub mod livestats;
