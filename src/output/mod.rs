//! Output stage: one output stream per encoder shard — downsampling, batching and OSC
//! encoding of frames into datagrams (sans-IO: datagrams go to a [`Transmit`]).
//!
//! [`OutputPipeline`] owns all its buffers (allocated in [`OutputPipeline::new`]); processing
//! a frame writes datagrams into a preallocated arena and hands them over in batches.
//! Formats (spec §3.8, §4.1, README):
//!
//! * **sample** (`enable_batching` false): `{base}/sample` + N `f`, one message per output row;
//! * **batch**: `{base}/batch/<k>` + `i` N + N·k `f`, channel-major; a partial batch (timer
//!   after `batch_timeout_ms`, a channel-set change, or stop) carries its own k;
//! * **per-channel**: one `f` per channel and output row, at the channel's address;
//! * **blob** (new outputs only): `{base}/blob` + `i` N + `i` k + one blob of N·k big-endian
//!   float32, channel-major;
//! * **features** (new outputs only, `OutputFormat::features`): `feature_rate` times a second
//!   `{base}/features/<name>` + N `f` per feature, or with a `{feature}` address template one
//!   `f` per feature and channel (`dsp`).
//!
//! Files: [`spec`] (what an output is: [`OutputSpec`], [`OutputFormat`]), `pipeline`
//! (frames → rows → batches), `downsample` (average/decimate groups across frames), `dsp`
//! (`lowpass` filtering and the features output, on [`crate::dsp`]),
//! `encode` (messages, bundles, `…/part` splitting, the datagram arena), `events` (TTL,
//! spikes, status, notices), [`layout`] (channel-set changes, the lock-free layout board),
//! [`address`] (per-channel address templates), [`osc`] (OSC byte helpers).
//!
//! Downsampling by F (`average`: float32 sequential sum ÷ F, bit-exact with the original's
//! numpy mean; `decimate`: sample F−1 of each group) carries its group across frames and
//! restarts at any discontinuity. Outputs configured under `outputs` may add: a channel
//! selection/order and sparse layout, the row's sample number (two `i`), OSC bundles, TTL
//! events and spikes, notices, a status message, and splitting of messages larger than the
//! output's datagram limit into `…/part` messages. With the original's keys only, the bytes
//! are exactly the original's and an oversized message is refused and counted.

pub mod address;
mod downsample;
mod dsp;
mod encode;
mod events;
pub mod layout;
pub mod osc;
mod pipeline;
pub mod spec;
mod tile;

pub use layout::{LayoutBoard, LayoutCopy, LayoutInfo};
pub use spec::{BundleMode, Mode, OutputFormat, OutputSpec, SIZE_PROFILES};

use address::AddressTemplate;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Datagrams handed to [`Transmit::transmit`] at most per call (a whole 696-row block at 256
/// channels fits; the sender splits into GSO super-buffers and `sendmmsg` chunks itself).
pub const TRANSMIT_BATCH: usize = 1024;

/// Longest OSC address the pipeline builds (bytes).
pub const MAX_ADDRESS: usize = 240;

/// Counters the status message reports (read from the receiver's published counters).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StatusValues {
    /// Blocks received.
    pub received: u64,
    /// Datagrams sent (this output).
    pub sent: u64,
    /// Blocks dropped by the queue policy.
    pub dropped_policy: u64,
    /// Messages missing upstream (`message_num` gaps).
    pub upstream_gaps: u64,
    /// Malformed messages.
    pub malformed: u64,
    /// Incomplete blocks dropped.
    pub incomplete: u64,
    /// Current channel count.
    pub channels: u64,
    /// Current sample rate.
    pub rate: f32,
}

/// Where datagrams go, and who hears that a block's output left.
pub trait Transmit {
    /// Sends `arena[off..off+len]` for each `(off, len)`, in order.
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]);
    /// How many datagrams of `len` bytes the transmitter sends best together (one GSO
    /// super-buffer). The tiled sample path hands rows over in multiples of it, so a flush
    /// never leaves a short super-buffer in the middle of a block. Default 1: no preference.
    fn run_hint(&self, _len: usize) -> usize {
        1
    }
    /// The last datagram carrying output of a block that arrived at `arrival` has been sent.
    fn block_sent(&mut self, arrival: Instant, header_timestamp_ms: Option<i64>);
    /// Counters for the status message.
    fn status(&self) -> StatusValues {
        StatusValues::default()
    }
}

/// Counters of one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputCounters {
    /// Frames processed.
    pub frames: u64,
    /// Frames missing in the sequence (dropped before reaching this pipeline).
    pub frames_skipped: u64,
    /// Output rows (time points after downsampling).
    pub rows: u64,
    /// Datagrams handed to the transmitter.
    pub datagrams: u64,
    /// Bytes handed to the transmitter.
    pub bytes: u64,
    /// Messages refused because they exceed the datagram limit (and splitting is off).
    pub oversize: u64,
    /// Messages split into parts.
    pub split_messages: u64,
    /// Input samples (per channel) discarded from unfinished downsampling groups at a
    /// discontinuity or a channel-set change.
    pub group_samples_discarded: u64,
    /// Partial batches sent because the batch timeout passed.
    pub timer_flushes: u64,
    /// Partial batches sent because the channel set changed or the bridge stopped.
    pub forced_flushes: u64,
    /// Full batches sent.
    pub batches: u64,
    /// TTL events sent.
    pub ttl_sent: u64,
    /// Spikes sent.
    pub spikes_sent: u64,
    /// Status messages sent.
    pub status_sent: u64,
    /// Notices sent.
    pub notices_sent: u64,
    /// Frames not sent because the lowpass filter or the features could not be designed
    /// for the stream's sample rate (e.g. a band above 0.45·fs).
    pub dsp_unsupported: u64,
}

pub(crate) const FIFO_CAP: usize = 4096;
pub(crate) const NAN_COL: u32 = u32::MAX;

/// Which address a message goes to.
#[derive(Clone, Copy)]
enum Addr {
    Sample,
    Batch(usize),
    Blob,
    Channel(usize),
    Ttl,
    Spike,
    Status,
    Notice,
    Feature(usize),
}

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

fn ntp_timetag(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_OFFSET;
    let frac = ((d.subsec_nanos() as u64) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Downsampling, batching, encoding. See the module doc.
pub struct OutputPipeline {
    fmt: OutputFormat,
    generation: Option<u32>,
    last_seq: u64,
    cols: Vec<u32>,
    n: usize,
    acc: Vec<f32>,
    pos: usize,
    group_start: i64,
    row: Vec<f32>,
    row_start: i64,
    row_end_j: usize,
    batch: Vec<f32>,
    batch_k: usize,
    batch_started: Option<Instant>,
    batch_first_sample: i64,
    scratch: Vec<f32>,
    addr_sample: Vec<u8>,
    addr_batch: Vec<u8>,
    addr_blob: Vec<u8>,
    addr_ttl: Vec<u8>,
    addr_spike: Vec<u8>,
    addr_status: Vec<u8>,
    addr_notice: Vec<u8>,
    chan_addrs: Vec<u8>,
    chan_off: Vec<(u32, u32)>,
    /// Datagram bytes, allocated once at start-up (zeroed; its pages become resident on first
    /// use, like the slab's); `arena[..arena_used]` holds the datagrams not yet handed to the
    /// transmitter, each written whole (unit tests poison the rest to check that).
    arena: Vec<u8>,
    arena_used: usize,
    dgrams: Vec<(u32, u32)>,
    rows_total: u64,
    arena_rows_end: u64,
    sent_rows: u64,
    fifo: VecDeque<(u64, Instant, Option<i64>)>,
    part_seq: u32,
    wall_of_arrival: SystemTime,
    frame_rate: f64,
    frame_len: usize,
    frame_sample: i64,
    next_status: Option<Instant>,
    layout: Option<Arc<LayoutBoard>>,
    layout_copy: LayoutCopy,
    /// Per-channel templates: one, or one per feature (`{feature}` filled in).
    address_templates: Vec<AddressTemplate>,
    stream: String,
    dsp: dsp::DspState,
    addr_features: Vec<u8>,
    feat_off: Vec<(u32, u32)>,
    /// Counters (plain; the shard thread publishes them).
    pub counters: OutputCounters,
    /// Sample mode at F = 1 encodes from the frame a tile of rows at a time (`tile`).
    tiled: bool,
}

#[cfg(test)]
mod tests;
