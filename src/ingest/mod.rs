//! Ingest, sans-IO: the Open Ephys ZMQ wire protocol (envelopes, JUCE JSON headers) and the
//! assembler that turns per-channel messages into whole-block frames. Nothing here owns a socket,
//! a thread or a clock; the receiver thread in `engine` drives it.

pub mod assembler;
pub mod protocol;
pub mod scan;
