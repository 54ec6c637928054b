//! Building blocks of the `stress` tool (the results matrix).
//!
//! * [`stats`]: reads what the bridge writes for machines: the final JSON stats object of
//!   `--stats-json` and the `--histogram-csv` distributions (never the text report);
//! * [`calc`]: medians, ratios, the least-squares scaling fit and the expected-rows rule;
//! * [`table`]: named CSV rows (header and values from one list, so they cannot drift apart)
//!   and the median row of repeated runs;
//! * [`plot`]: the SVG plots;
//! * [`stages`]: the stage-by-stage latency breakdown (`stages.csv`, `stages.svg`, the
//!   summary table) from the raw span histograms;
//! * [`scenarios`]: the scenario description and the run constants;
//! * [`run`]: one bridge run (bridge child, simulator and sink in-process);
//! * [`cpu`]: CPU clocks, `/proc` sampling and SIGTERM (the only `unsafe` of the tool);
//! * [`baseline`]: the bare ZeroMQ drain and raw UDP baselines;
//! * [`rows`]: the CSV rows of a run;
//! * [`files`]: output files, the commit and number formatting;
//! * [`opt`]: the command line; [`soak`]: the soak run.
//!
//! The `stress` binary is `main`.

pub mod baseline;
pub mod calc;
pub mod cpu;
pub mod files;
pub mod opt;
pub mod plot;
pub mod rows;
pub mod run;
pub mod scenarios;
pub mod soak;
pub mod stages;
pub mod stats;
pub mod table;

#[cfg(test)]
mod tests;
