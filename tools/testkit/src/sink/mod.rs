//! OSC receiver / verifier for stress tools and tests.
//!
//! A [`Sink`] binds a UDP socket, receives the OSC datagrams the bridge emits
//! (`{base}/sample` or `{base}/batch/<k>`, see reference-spec §3.8), decodes them with an
//! allocation-free parser ([`parse_osc_message`]) and checks every value against the
//! deterministic test signal ([`pattern_value`]) after the bridge's downsampling
//! (reference-spec §3.7). It counts delivered, lost, duplicated, reordered and torn rows and,
//! when a [`BlockClock`] is shared with the simulator, measures end-to-end latency.
//!
//! # Sequence tracking
//!
//! Rows are identified by the absolute index `s` of the first input sample of their group
//! (`s = a + r·F`, `a` = phase). The signal only carries `s mod wrap`; the sink maps it back to
//! an absolute index by continuity (the candidate closest to the expected next index, i.e. a
//! signed distance `d` in `(-wrap/2, wrap/2]`). Then:
//! * `d == 0`: in order;
//! * `d > 0` and a multiple of `F`: `d / F` rows lost (forward jumps up to `wrap/2`);
//! * `d < 0` and within [`HISTORY_ROWS`] rows: duplicated (row already seen) or reordered (row
//!   not seen yet; it had been counted as lost, so `lost_rows` is decremented);
//! * a backward jump beyond the history, or a jump that is not a multiple of `F` (phase
//!   change): discontinuity — the phase is re-inferred and nothing is counted as lost.
//!
//! Rows that never arrive after the last received row cannot be detected (the sink does not
//! know how many rows were sent); callers compare `rows` with what they sent.
//!
//! Files: `config.rs` ([`SinkConfig`], [`SinkReport`]), `any.rs` (the `--any` statistics),
//! `clock.rs` ([`BlockClock`]), `parse.rs` (OSC parsing), `verify.rs` (the verifier),
//! `receiver.rs` ([`Sink`]), `net.rs` (the receive loops, `recvmmsg`: the sink's only `unsafe`),
//! `tests.rs`. The test signal is the simulator's ([`crate::sim::pattern_value`]).

use std::time::Duration;

/// Backward window (in rows) within which a late row is classified as duplicated/reordered
/// instead of a discontinuity.
pub const HISTORY_ROWS: usize = 4096;

/// Receive timeout of the receiver thread; bounds how long [`Sink::stop`] takes.
const RECV_TIMEOUT: Duration = Duration::from_millis(50);

/// Maximum number of decoding candidates kept per value (average mode can be ambiguous).
const MAX_CANDS: usize = 16;

/// 2^24: every signal value is an integer below this, hence exact in `f32`.
const VALUE_LIMIT: u64 = 1 << 24;

mod any;
mod clock;
mod config;
mod net;
mod parse;
mod receiver;
mod verify;

pub use any::*;
pub use clock::*;
pub use config::*;
use net::*;
pub use parse::*;
pub use receiver::*;
use verify::*;

// One definition of the test signal: the simulator's.
pub use crate::sim::{pattern_value, pattern_wrap};

#[cfg(test)]
mod tests;
