//! # openephys-zmq2osc
//!
//! A bridge from the Open Ephys GUI's "ZMQ Interface" plugin (ZeroMQ PUB, one message per
//! channel per block) to OSC over UDP, built to carry 256+ channels at 30 kHz.
//!
//! ## Architecture
//!
//! ```text
//!            ZMQ SUB (tcp://host:5556)                      REQ (tcp://host:5557)
//!                   │                                              │
//!            ┌──────▼───────┐  Box<Frame> (SPSC rtrb ring)  ┌──────▼──────┐
//!            │   zmq_rx     │──────────────────────────────▶│   zmq_hb    │ heartbeat every 2 s,
//!            │ parse+assemble│                               └─────────────┘ lazy-pirate reset
//!            └──────┬───────┘
//!                   │ frames ring (bound = performance.osc_queue_max_size)
//!            ┌──────▼───────┐
//!            │  osc_tx_0    │ downsample → batch → encode → sendmmsg/GSO → UDP
//!            └──────┬───────┘
//!                   │ return ring (frames recycled to zmq_rx)
//! ```
//!
//! * **Who allocates when.** Every frame (slab buffer), ring, datagram arena and histogram is
//!   allocated before the hot threads start. Afterwards the hot path (receive, parse,
//!   assemble, downsample, encode, send, record latency) does not allocate, lock, format or
//!   log per message; `tests/no_alloc.rs` proves it with a counting global allocator.
//! * **What happens when full.** The frames ring holds `osc_queue_max_size` blocks; the
//!   overflow strategy decides: `drop_oldest` (the shard discards the oldest queued block),
//!   `drop_newest` (the receiver discards the new block) or `block` (the receiver stops
//!   reading ZMQ, so loss moves upstream into ZeroMQ's high-water mark, where it shows up as
//!   `message_num` gaps). Every drop is counted.
//! * **Ordering.** A shard owns an output stream; a frame is never split across shards, so
//!   every datagram stream stays in order and downsampling state stays in one place.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod cli;
pub mod config;
pub mod dsp;
pub mod engine;
pub mod frame;
pub mod ingest;
pub mod net;
pub mod output;
pub mod telemetry;

/// Marks the hot threads, so a test's counting allocator can tell their allocations apart.
pub mod hot {
    use std::cell::Cell;

    thread_local! {
        static HOT: Cell<bool> = const { Cell::new(false) };
    }

    /// Called by `zmq_rx` and `osc_tx_N` once their buffers exist, before their loops.
    pub fn mark_current_thread_hot() {
        HOT.with(|h| h.set(true));
    }

    /// True on a hot thread (never allocates; safe to call from a global allocator).
    pub fn is_hot() -> bool {
        HOT.try_with(|h| h.get()).unwrap_or(false)
    }
}
