//! Simulator configuration (with fault injection) and statistics.

use super::*;
use std::time::{Duration, Instant};

/// Fault injection for the [`Simulator`]. Block indices are 0-based and count every block of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Probability that a channel message is dropped (not sent). The plugin's counter is still
    /// incremented, so receivers see a `message_num` gap, like a PUB high-water-mark drop. Drawn from
    /// a deterministic PRNG seeded with `seed`. Values outside `0..=1` are clamped; NaN means 0.
    pub drop_probability: f64,
    /// Seed for the drop PRNG and for [`BlockSize::Jitter`].
    pub seed: u64,
    /// Every k blocks (before blocks k, 2k, …) a new acquisition starts: `message_num` restarts at 1
    /// while `sample_num` continues (GUI 1.0.1, spec §6.2). No pause is inserted.
    pub restart_every_blocks: Option<u64>,
    /// Every k blocks (before blocks k, 2k, …) the File Reader loops: `sample_num` jumps back to
    /// [`SimConfig::start_sample`], `message_num` continues.
    pub loop_every_blocks: Option<u64>,
    /// From block k on, publish this channel set instead of [`SimConfig::channels`] (live mask edit).
    /// The set is sorted and de-duplicated.
    pub channel_change: Option<(u64, Vec<u32>)>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop_probability: 0.0,
            seed: 0x5EED_0E0E_2025_0707,
            restart_every_blocks: None,
            loop_every_blocks: None,
            channel_change: None,
        }
    }
}

/// Configuration of a [`Simulator`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Interface to bind: `"127.0.0.1"` (default) or `"*"` for all interfaces (what the plugin does).
    pub bind_host: String,
    /// Data (PUB) port; the heartbeat REP socket is bound on `data_port + 1`. `0` picks a random free
    /// pair in 20000..60000 (retrying on `EADDRINUSE`); see [`Simulator::data_port`].
    pub data_port: u16,
    /// Bind the REP socket and answer heartbeats as in spec §2.1.
    pub heartbeat: bool,
    /// Open Ephys local channel numbers to publish (sorted and de-duplicated by the simulator).
    pub channels: Vec<u32>,
    /// Stream name (`content.stream`).
    pub stream: String,
    /// Sample rate in Hz (> 0). Sent as the plugin does: through `float32` (29999.9 → 29999.900390625).
    pub sample_rate: f64,
    /// Block size policy.
    pub block: BlockSize,
    /// Payload values.
    pub signal: Signal,
    /// `sample_num` of the first block (and the File Reader loop target).
    pub start_sample: i64,
    /// Stop after this many blocks.
    pub max_blocks: Option<u64>,
    /// Stop after this much time since streaming started (i.e. after the subscriber arrived).
    pub duration: Option<Duration>,
    /// Pace block k at `t0 + (samples before block k) / sample_rate` on a monotonic clock; `false`
    /// sends as fast as possible.
    pub realtime: bool,
    /// `ZMQ_SNDHWM` of the data socket; 1000 is the libzmq default (the plugin sets no option).
    pub send_hwm: i32,
    /// Use an XPUB socket and start streaming only after a subscription message arrives (avoids the
    /// slow-joiner loss in tests). `false` = plain PUB that streams immediately, like the plugin.
    pub wait_for_subscriber: bool,
    /// Include `content.channel_name` = `"CH{n+1}"` (plugin ≥ 0.3.3).
    pub channel_names: bool,
    /// Include the top-level `"timestamp"` in ms since the Unix epoch (plugin ≥ 0.3.2).
    pub timestamps: bool,
    /// Send a TTL event (line 0, toggling on/off; word = state of line 0) before the data of every
    /// block whose index is a multiple of k (blocks 0, k, 2k, …). Its `sample_num` is the block's.
    pub ttl_every_blocks: Option<u64>,
    /// Fault injection.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind_host: "127.0.0.1".to_string(),
            data_port: 5556,
            heartbeat: true,
            channels: (0..8).collect(),
            stream: "example_data".to_string(),
            sample_rate: 30_000.0,
            block: BlockSize::Gui,
            signal: Signal::Pattern {
                wrap: pattern_wrap(7),
            },
            start_sample: 0,
            max_blocks: None,
            duration: None,
            realtime: true,
            send_hwm: 1000,
            wait_for_subscriber: true,
            channel_names: true,
            timestamps: true,
            ttl_every_blocks: None,
            faults: Faults::default(),
        }
    }
}

/// Statistics of a [`Simulator`] run.
#[derive(Debug, Clone, Default)]
pub struct SimStats {
    /// Blocks completed (all their messages handed to ZMQ).
    pub blocks: u64,
    /// DATA messages handed to ZMQ (excluding fault drops).
    pub data_messages: u64,
    /// EVENT (TTL) messages handed to ZMQ.
    pub event_messages: u64,
    /// Channel messages not sent because of [`Faults::drop_probability`] (their `message_num` was
    /// consumed, so receivers see gaps).
    pub dropped_by_fault: u64,
    /// Always `true` in snapshots produced by the simulator: messages a PUB/XPUB socket discards at
    /// its high-water mark (slow subscriber) are invisible to the sender, so "handed to ZMQ" above does
    /// not mean "delivered". Receivers must count drops from `message_num` gaps.
    pub hwm_dropped_unknown: bool,
    /// Heartbeat requests answered (any of the three replies).
    pub heartbeats_answered: u64,
    /// Blocks sent more than one block period behind their schedule (realtime mode only).
    pub late_blocks: u64,
    /// Largest observed lateness of a block against its schedule (realtime mode only).
    pub max_lateness: Duration,
    /// Acquisition restarts injected ([`Faults::restart_every_blocks`]).
    pub restarts: u64,
    /// File Reader loops injected ([`Faults::loop_every_blocks`]).
    pub loops: u64,
    /// Error that ended the simulator thread early (send failure, panicking observer), if any.
    pub error: Option<String>,
}

/// Called after the last message of each block was sent, with `(sample_num, num_samples,
/// channels in that block (including fault-dropped ones), Instant just after the last send)`.
pub type BlockObserver = Box<dyn FnMut(i64, usize, usize, Instant) + Send>;
