//! Byte-faithful simulator of the Open Ephys GUI "ZMQ Interface" publisher.
//!
//! This module reproduces what the real plugin (main HEAD, as run inside GUI 1.0.1 / JUCE 8) puts on
//! the wire (reference spec §1, §2.1, §6):
//!
//! * a `PUB` (or `XPUB`, see [`SimConfig::wait_for_subscriber`]) socket on the data port and a `REP`
//!   heartbeat socket on data port + 1;
//! * multipart messages `DATA\0` / `EVENT\0` (NUL included) + JUCE-formatted JSON header (CRLF, 2-space
//!   indentation, fixed key order, no trailing newline) + little-endian `float32` payload;
//! * one DATA message per selected channel per block, ascending channel order, all sharing
//!   `sample_num`; TTL events of a block are sent before its data;
//! * `message_num` pre-incremented from 1 per acquisition, shared by data, events and spikes, with
//!   signed 32-bit wrap-around;
//! * heartbeat replies `heartbeat received` / `message correctly parsed` /
//!   `JSON message could not be read` (raw bytes, no NUL);
//! * the JUCE header-length bug: frame 1 is cut to the header's *character* count, so non-ASCII names
//!   produce a truncated (invalid) header, exactly like GUI 1.0.x (can be disabled per [`Publisher`]).
//!
//! Two levels are offered: [`Simulator`] (a self-timed acquisition on its own thread, with fault
//! injection) and [`Publisher`] (exact, message-by-message control for tests).
//!
//! Files: `signal.rs` (block sizes, the test signals), `config.rs` ([`SimConfig`], [`Faults`],
//! [`SimStats`]), `juce.rs` (header writer, [`juce_double`]), `heartbeat.rs` (the REP socket),
//! `publisher.rs` (binding, [`Publisher`]), `simulator.rs` ([`Simulator`]: pacing, faults),
//! `tests.rs`.

use std::time::Duration;

/// Envelope (frame 0) of continuous-data messages: `DATA` plus its C string terminator (5 bytes).
pub const DATA_ENVELOPE: &[u8] = b"DATA\0";
/// Envelope (frame 0) of TTL-event and spike messages: `EVENT` plus its C string terminator (6 bytes).
pub const EVENT_ENVELOPE: &[u8] = b"EVENT\0";
/// Heartbeat reply to valid JSON whose `type` is not `"event"` (18 bytes, no NUL).
pub const REPLY_HEARTBEAT: &[u8] = b"heartbeat received";
/// Heartbeat reply to valid JSON whose `type` is `"event"` (24 bytes, no NUL).
pub const REPLY_EVENT: &[u8] = b"message correctly parsed";
/// Heartbeat reply to a request that is not valid JSON (30 bytes, no NUL).
pub const REPLY_INVALID: &[u8] = b"JSON message could not be read";
/// `source_node` used by the simulator for TTL events (a File Reader / source processor id).
pub const TTL_SOURCE_NODE: i64 = 100;
/// `source_node` used by [`Publisher::send_spike`] (a Spike Detector processor id).
pub const SPIKE_SOURCE_NODE: i64 = 104;

/// Size of the plugin's heartbeat receive buffer: longer requests are truncated (spec §2.1).
const HEARTBEAT_BUFFER: usize = 64_000;
/// Granularity of every wait loop, so that `stop()` is honoured within a few tens of milliseconds.
const POLL_SLICE_MS: i64 = 20;
/// Final part of a pacing wait that is spun instead of slept.
const SPIN_WINDOW: Duration = Duration::from_micros(200);
/// Linger applied when the simulator ends by itself (max_blocks / duration), so the tail of the stream
/// still reaches connected subscribers after the socket is closed.
const NATURAL_END_LINGER_MS: i32 = 1000;

mod config;
mod heartbeat;
mod juce;
mod publisher;
mod signal;
mod simulator;

pub use config::*;
pub use heartbeat::*;
pub use juce::*;
pub use publisher::*;
pub use signal::*;
pub use simulator::*;

#[cfg(test)]
mod tests;
