//! Sink configuration and report.

use super::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;

/// OSC message layout the bridge emits (reference-spec §3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// `{base}/sample`, `,f…f`: one row per datagram.
    #[default]
    Sample,
    /// `{base}/batch/<k>`, `,i f…f`: int32 N then N·k floats, channel-major.
    Batch,
    /// Any stream: no value check. Counts messages per address, rows (`…/sample` = 1,
    /// `…/batch/<k>` = k), sizes, gaps and reorders from the sample-number arguments (two
    /// ints, hi/lo, when the output sends them) and inter-arrival times; see
    /// [`AnyStats`].
    Any,
}

/// Downsampling method of the bridge (reference-spec §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// f32 sequential sum of the F samples, then f32 division by F.
    #[default]
    Average,
    /// Sample F−1 of each group.
    Decimate,
}

/// Configuration of a [`Sink`].
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Address to bind (`127.0.0.1:0` for tests).
    pub bind: SocketAddr,
    /// Requested receive buffer in bytes (0 = leave the OS default). On Linux the sink first
    /// tries `SO_RCVBUFFORCE` (not capped by `net.core.rmem_max`; needs `CAP_NET_ADMIN`) and
    /// falls back to `SO_RCVBUF`; see [`Sink::effective_recv_buffer`] and
    /// [`Sink::recv_buffer_forced`] for what the kernel granted.
    pub recv_buffer_bytes: usize,
    /// OSC base address, e.g. `/data`.
    pub base_address: String,
    /// Expected message layout; messages of the other layout count as `wrong_address`.
    pub layout: Layout,
    /// Expected OE channel numbers, strictly ascending (position i of a row = `channels[i]`).
    pub channels: Vec<u32>,
    /// Signal wrap length ([`pattern_wrap`] of the largest channel number).
    pub wrap: u32,
    /// Downsampling factor F (≥ 1, < `wrap`).
    pub factor: u32,
    /// Downsampling method (ignored when `factor == 1`).
    pub method: Method,
    /// Send times of simulator blocks, for latency measurement.
    pub block_clock: Option<Arc<BlockClock>>,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            recv_buffer_bytes: 8 << 20,
            base_address: "/data".to_string(),
            layout: Layout::Sample,
            channels: Vec::new(),
            wrap: pattern_wrap(0),
            factor: 1,
            method: Method::Average,
            block_clock: None,
        }
    }
}

/// Counters of a [`Sink`] (live snapshot or final).
#[derive(Debug, Clone, Default)]
pub struct SinkReport {
    /// UDP datagrams received (all, including malformed).
    pub datagrams: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// Datagrams that are not a valid OSC message of the expected shape (or were truncated).
    pub malformed: u64,
    /// Valid OSC messages with an address other than the configured layout's.
    pub wrong_address: u64,
    /// Output time points received (sample: 1 per datagram; batch: k per datagram).
    pub rows: u64,
    /// Rows whose every value matched the expected channel and sample and were in order.
    pub clean_rows: u64,
    /// Expected rows never received (gaps in the row sequence; reduced again when a missing
    /// row arrives late).
    pub lost_rows: u64,
    /// Rows received again.
    pub duplicated_rows: u64,
    /// Rows received after a later row (late, not seen before).
    pub reordered_rows: u64,
    /// Rows whose values come from different samples.
    pub torn_rows: u64,
    /// Values that decode to the wrong channel or fail the exact recomputation (plus values
    /// missing from / in excess of the expected channel count).
    pub bad_values: u64,
    /// Restarts of the sequence handled by re-inferring the phase (not counted as loss).
    pub discontinuities: u64,
    /// This socket's kernel drops (Linux: `SO_RXQ_OVFL` counter and, at stop, the
    /// `/proc/net/udp` `drops` column; 0 elsewhere).
    pub kernel_drops: u64,
    /// Receive calls that returned datagrams (Linux: `recvmmsg`; 0 elsewhere).
    pub recv_calls: u64,
    /// Of those, calls that filled the whole batch (a backlog was waiting in the socket).
    pub full_batches: u64,
    /// CPU time of the receiver thread (ns, Linux; set when the thread stops, 0 before).
    pub thread_cpu_ns: u64,
    /// Largest number of values per row seen in a well-formed message.
    pub channels_seen: usize,
    /// Arrival time of the first datagram.
    pub first_at: Option<Instant>,
    /// Arrival time of the last datagram.
    pub last_at: Option<Instant>,
    /// [`Layout::Any`] statistics (empty in the other layouts).
    pub any: AnyStats,
    /// End-to-end latency in ns (block sent → datagram received), one entry per non-duplicate
    /// row whose last input sample was found in the [`BlockClock`]; `None` without a clock.
    pub latency: Option<Histogram<u64>>,
}
