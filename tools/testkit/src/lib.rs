//! Test instruments shared by the bridge's `--simulate`/`--verify`, its tests and the tools in
//! `tools/`: [`sim`], a byte-faithful publisher of what the Open Ephys ZMQ Interface sends, and
//! [`sink`], an OSC receiver that checks every value it gets. Both use one definition of the
//! test signal (`pattern`), so they cannot drift apart.
#![deny(missing_docs)]

pub mod recording;
pub mod replay;
pub mod rng;
pub mod sim;
pub mod sink;
pub mod zmqcap;
