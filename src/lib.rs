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
//!            ┌──────▼────────┐                              ┌──────▼──────┐
//!            │   zmq_rx      │                              │   zmq_hb    │ heartbeat every 2 s,
//!            │ parse+assemble│                              └─────────────┘ lazy-pirate reset,
//!            └──┬─────────▲──┘                                              data-socket monitor
//!   Arc<Frame>  │         │  Arc<Frame> back (return ring per shard; a frame goes back to the
//!   frames ring │         │  free list once no shard holds it)
//!   per output  │         │
//!            ┌──▼─────────┴──┐
//!            │  osc_tx_N     │ one per output: downsample → batch → encode → sendmmsg/GSO → UDP
//!            └───────────────┘ (optional pacing over the block's duration)
//!
//!   every thread ──Relaxed stores──▶ its own counter block (telemetry::counters::Stats)
//!                                     ◀── status line, JSON stats, dashboard, final report
//! ```
//!
//! * **Modules.** `ingest` (ZMQ protocol, block assembly) → `frame` (slab frames) → `output`
//!   (downsampling, OSC encoding) → `net` (UDP send paths) form the data path; `engine` runs it
//!   on threads (`receiver`, `shard`, `heartbeat`, `pin`); `telemetry` holds what the threads
//!   publish (counter blocks, latency histograms) and its readers (live stats, dashboard) and
//!   imports nothing of the engine; `app` is the program (flags → engine → report), `main.rs`
//!   only calls it.
//! * **Frames.** The receiver fills a frame from its free list (all allocated at start-up)
//!   and hands every output an `Arc` handle to it (an atomic increment, no copy); shards
//!   return their handles through a return ring, and the frame is reused once the last one
//!   is back.
//! * **Who allocates when.** Every frame (slab buffer), ring, datagram arena and histogram is
//!   allocated before the hot threads start. Afterwards the hot path (receive, parse,
//!   assemble, downsample, encode, send, record latency) does not allocate, lock, format or
//!   log per message; `tests/no_alloc.rs` proves it with a counting global allocator.
//! * **What happens when full.** The frames ring holds `osc_queue_max_size` blocks; the
//!   overflow strategy decides: `drop_oldest` (the shard discards the oldest queued block),
//!   `drop_newest` (the receiver discards the new block) or `block` (the receiver stops
//!   reading ZMQ, so loss moves upstream into ZeroMQ's high-water mark, where it shows up as
//!   `message_num` gaps). Every drop is counted, by the thread that drops, in its own block.
//! * **Test hooks** (failure injection) exist only with the cargo feature `test-hooks`,
//!   which the test suite switches on through a self dev-dependency; normal and release
//!   builds have none.
//! * **Ordering.** A shard owns an output stream; a frame is never split across shards, so
//!   every datagram stream stays in order and downsampling state stays in one place.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod cli;
pub mod config;
pub mod dsp;
pub mod engine;
pub mod frame;
pub mod ingest;
pub mod net;
pub mod oscquery;
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
