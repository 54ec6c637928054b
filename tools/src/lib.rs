//! Library side of the `oe-tools` binaries: the code of `stress` (scenarios, one run, baselines,
//! CSV rows, arithmetic, parsing, tables, plots), kept here so it is unit-tested without a long
//! run; the binary keeps the command line and `main`.

pub mod stress;
