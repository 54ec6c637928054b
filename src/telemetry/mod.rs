//! Telemetry: the counter blocks every thread publishes and the shared statistics
//! ([`counters`]), latency histograms handed over from the hot threads ([`latency`]), live
//! statistics (JSON lines, status line: [`livestats`]), the terminal dashboard
//! ([`dashboard`]) and small OS helpers ([`sys`]). Written by the engine, read by the
//! controller; nothing here imports the engine.

pub mod counters;
pub mod dashboard;
pub mod latency;
pub mod livestats;
pub mod sys;
