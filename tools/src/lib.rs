//! Library side of the `oe-tools` binaries: the arithmetic, parsing and table code of `stress`,
//! kept here so it is unit-tested without a long run.

pub mod stress;
