//! Building blocks of the `stress` tool (the results matrix).
//!
//! * [`stats`]: reads what the bridge writes for machines: the final JSON stats object of
//!   `--stats-json` and the `--histogram-csv` distributions (never the text report);
//! * [`calc`]: medians, ratios, the least-squares scaling fit and the expected-rows rule;
//! * [`table`]: named CSV rows (header and values from one list, so they cannot drift apart)
//!   and the median row of repeated runs;
//! * [`plot`]: the SVG plots.

pub mod calc;
pub mod plot;
pub mod stats;
pub mod table;
