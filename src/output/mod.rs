//! One output stream: downsampling, batching and OSC encoding of frames into datagrams.
//!
//! This is the sans-IO heart of an encoder shard. It owns all its buffers (allocated in
//! [`OutputPipeline::new`]); processing a frame writes datagrams into a preallocated arena
//! and hands them to a [`Transmit`] in batches. Formats (spec §3.8, §4.1, README):
//!
//! * **sample** (`enable_batching` false): `{base}/sample` + N `f`, one message per output row;
//! * **batch**: `{base}/batch/<k>` + `i` N + N·k `f`, channel-major; a partial batch (timer
//!   after `batch_timeout_ms`, a channel-set change, or stop) carries its own k;
//! * **per-channel**: one `f` per channel and output row, at the channel's address;
//! * **blob** (new outputs only): `{base}/blob` + `i` N + `i` k + one blob of N·k big-endian
//!   float32, channel-major.
//!
//! Downsampling by F (`average`: float32 sequential sum ÷ F, bit-exact with the original's
//! numpy mean; `decimate`: sample F−1 of each group) carries its group across frames and
//! restarts at any discontinuity. Outputs configured under `outputs` may add: a channel
//! selection/order and sparse layout, the row's sample number (two `i`), OSC bundles, TTL
//! events and spikes, notices, a status message, and splitting of messages larger than the
//! output's datagram limit into `…/part` messages. With the original's keys only, the bytes
//! are exactly the original's and an oversized message is refused and counted.

pub mod osc;

use crate::config::{BundleMode, DownsamplingMethod};
use crate::frame::{EventKind, Frame};
use osc::MAX_UDP_PAYLOAD;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Datagrams handed to [`Transmit::transmit`] at most per call (sendmmsg batch size).
pub const TRANSMIT_BATCH: usize = 256;

/// Longest OSC address the pipeline builds (bytes).
pub const MAX_ADDRESS: usize = 240;

/// What the pipeline sends (the config's `format`): sample, batch, per-channel or blob.
pub use crate::config::OutputFormatKind as Mode;

/// Format of one output.
#[derive(Debug, Clone)]
pub struct OutputFormat {
    /// Message layout.
    pub mode: Mode,
    /// `osc.base_address` (default `/data`).
    pub base_address: String,
    /// Per-channel address template (`osc.channel_address_format`, or an output's `address`).
    pub channel_address_format: String,
    /// Downsampling factor F ≥ 1.
    pub factor: usize,
    /// Downsampling method.
    pub method: DownsamplingMethod,
    /// Rows per batch (batch and blob modes).
    pub batch_size: usize,
    /// Partial-batch flush timeout.
    pub batch_timeout: Duration,
    /// Channel cap (buffer sizes).
    pub max_channels: usize,
    /// Channel selection in output order (`None` = every channel, ascending).
    pub selection: Option<Vec<u32>>,
    /// Channel renames for `{name}`.
    pub names: Vec<(u32, String)>,
    /// Argument index = channel number (absent channels are NaN).
    pub sparse: bool,
    /// Largest datagram this output may send.
    pub max_datagram: usize,
    /// Split larger messages into `…/part` messages (new outputs) instead of refusing them
    /// (the original's formats, whose bytes must not change).
    pub split: bool,
    /// Append the row's first input sample index as two `i` (high, low 32 bits).
    pub sample_number: bool,
    /// OSC bundles.
    pub bundle: BundleMode,
    /// Send TTL events.
    pub events: bool,
    /// Send spikes.
    pub spikes: bool,
    /// Include spike waveforms.
    pub spike_waveform: bool,
    /// Send `{base}/status` once a second.
    pub status: bool,
    /// Send `{base}/notice` on layout changes.
    pub notices: bool,
}

impl Default for OutputFormat {
    /// The original's defaults with F = 1 (sample mode, `/data`, exact bytes, no extras).
    fn default() -> Self {
        OutputFormat {
            mode: Mode::Sample,
            base_address: "/data".into(),
            channel_address_format: "/ch{:03d}".into(),
            factor: 1,
            method: DownsamplingMethod::Average,
            batch_size: 1,
            batch_timeout: Duration::from_secs(1),
            max_channels: 1024,
            selection: None,
            names: Vec::new(),
            sparse: false,
            max_datagram: MAX_UDP_PAYLOAD,
            split: false,
            sample_number: false,
            bundle: BundleMode::Off,
            events: false,
            spikes: false,
            spike_waveform: false,
            status: false,
            notices: false,
        }
    }
}

/// Stream and channel names of the current layout, published by the receiver when the
/// channel set changes (read by shards only then: never on the per-block path).
#[derive(Debug, Clone, Default)]
pub struct LayoutInfo {
    /// Layout generation these names belong to.
    pub generation: u32,
    /// Stream name.
    pub stream: String,
    /// OE channel names by channel number (from `channel_name`, when the plugin sends it).
    pub names: Vec<(u32, String)>,
}

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
}

const FIFO_CAP: usize = 4096;
const NAN_COL: u32 = u32::MAX;

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
    arena: Vec<u8>,
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
    layout: Option<Arc<Mutex<LayoutInfo>>>,
    stream: String,
    /// Counters (plain; the shard thread publishes them).
    pub counters: OutputCounters,
}

impl OutputPipeline {
    /// Allocates every buffer the pipeline will ever use.
    pub fn new(fmt: OutputFormat) -> Result<Self, String> {
        Self::with_layout(fmt, None)
    }

    /// Like [`OutputPipeline::new`], reading stream and channel names from `layout` when the
    /// channel set changes (for per-channel address templates and notices).
    pub fn with_layout(
        fmt: OutputFormat,
        layout: Option<Arc<Mutex<LayoutInfo>>>,
    ) -> Result<Self, String> {
        if fmt.factor == 0 || fmt.batch_size == 0 {
            return Err("downsampling factor and batch size must be ≥ 1".into());
        }
        if fmt.base_address.len() > 200 {
            return Err("base address longer than 200 bytes".into());
        }
        if fmt.mode == Mode::PerChannel {
            osc::validate_address_template(&fmt.channel_address_format)?;
        }
        if fmt.max_datagram < 64 || fmt.max_datagram > MAX_UDP_PAYLOAD {
            return Err(format!("max datagram must be 64..={MAX_UDP_PAYLOAD} bytes"));
        }
        let m = fmt.max_channels;
        let b = match fmt.mode {
            Mode::Batch | Mode::Blob => fmt.batch_size,
            _ => 1,
        };
        let base = &fmt.base_address;
        let largest = osc::message_len(MAX_ADDRESS, 8, m * b, 32).min(MAX_UDP_PAYLOAD) + 64;
        let arena_cap = (1 << 20).max(4 * largest);
        Ok(OutputPipeline {
            generation: None,
            last_seq: 0,
            cols: Vec::with_capacity(m),
            n: 0,
            acc: vec![0.0; m],
            pos: 0,
            group_start: 0,
            row: vec![0.0; m],
            row_start: 0,
            row_end_j: 0,
            batch: vec![0.0; m * b],
            batch_k: 0,
            batch_started: None,
            batch_first_sample: 0,
            scratch: Vec::with_capacity(m * b + crate::frame::MAX_WAVEFORM_FLOATS),
            addr_sample: format!("{base}/sample").into_bytes(),
            addr_batch: format!("{base}/batch/").into_bytes(),
            addr_blob: format!("{base}/blob").into_bytes(),
            addr_ttl: format!("{base}/ttl").into_bytes(),
            addr_spike: format!("{base}/spike").into_bytes(),
            addr_status: format!("{base}/status").into_bytes(),
            addr_notice: format!("{base}/notice").into_bytes(),
            chan_addrs: Vec::with_capacity(m * 64),
            chan_off: Vec::with_capacity(m),
            arena: Vec::with_capacity(arena_cap),
            dgrams: Vec::with_capacity(TRANSMIT_BATCH),
            rows_total: 0,
            arena_rows_end: 0,
            sent_rows: 0,
            fifo: VecDeque::with_capacity(FIFO_CAP),
            part_seq: 0,
            wall_of_arrival: SystemTime::now(),
            frame_rate: 30000.0,
            frame_len: 0,
            frame_sample: 0,
            next_status: None,
            layout,
            stream: String::with_capacity(256),
            counters: OutputCounters::default(),
            fmt,
        })
    }

    /// The format.
    pub fn format(&self) -> &OutputFormat {
        &self.fmt
    }

    /// Channels of the current layout, in output order (sparse: `u32::MAX` marks a NaN slot).
    pub fn channels(&self) -> &[u32] {
        &self.cols
    }

    /// Processes one frame and sends what it produces (partial batches wait for their
    /// timer; see [`OutputPipeline::poll`]).
    pub fn process(&mut self, f: &Frame, now: Instant, tx: &mut dyn Transmit) {
        if f.num_samples > 0 {
            self.wall_of_arrival = SystemTime::now()
                .checked_sub(now.saturating_duration_since(f.arrival))
                .unwrap_or(UNIX_EPOCH);
        }
        if !f.events.is_empty() && (self.fmt.events || self.fmt.spikes) {
            self.send_events(f, tx);
        }
        if f.num_samples == 0 {
            // Events only.
            self.send_arena(tx);
            return;
        }
        let seq_gap = self.last_seq != 0 && f.seq != self.last_seq + 1;
        if seq_gap && f.seq > self.last_seq {
            self.counters.frames_skipped += f.seq - self.last_seq - 1;
        }
        self.last_seq = f.seq;
        if self.generation != Some(f.layout_generation) || f.discontinuity.layout {
            self.flush_batch(tx, false);
            self.reset_group();
            self.set_layout(f);
            if self.fmt.notices {
                self.send_notice(f, tx);
            }
        } else if f.discontinuity.gap || seq_gap {
            // With sample numbers a batch must not span a gap (it carries one first index);
            // the original's format keeps its rows together, as the original did.
            if self.fmt.sample_number || self.fmt.split {
                self.flush_batch(tx, false);
            }
            self.reset_group();
        }
        self.counters.frames += 1;
        self.frame_rate = f.sample_rate;
        self.frame_len = f.num_samples;
        self.frame_sample = f.sample_num;
        let n = self.n;
        let factor = self.fmt.factor;
        for j in 0..f.num_samples {
            if factor == 1 {
                for (i, &ch) in self.cols.iter().enumerate() {
                    self.row[i] = if ch == NAN_COL {
                        f32::NAN
                    } else {
                        f.sample(ch, j)
                    };
                }
                self.row_start = f.sample_num.saturating_add(j as i64);
            } else {
                if self.pos == 0 {
                    self.group_start = f.sample_num.saturating_add(j as i64);
                }
                match self.fmt.method {
                    DownsamplingMethod::Average => {
                        if self.pos == 0 {
                            for (i, &ch) in self.cols.iter().enumerate() {
                                self.acc[i] = if ch == NAN_COL {
                                    f32::NAN
                                } else {
                                    f.sample(ch, j)
                                };
                            }
                        } else {
                            for (i, &ch) in self.cols.iter().enumerate() {
                                if ch != NAN_COL {
                                    self.acc[i] += f.sample(ch, j);
                                }
                            }
                        }
                    }
                    DownsamplingMethod::Decimate => {
                        if self.pos == factor - 1 {
                            for (i, &ch) in self.cols.iter().enumerate() {
                                self.acc[i] = if ch == NAN_COL {
                                    f32::NAN
                                } else {
                                    f.sample(ch, j)
                                };
                            }
                        }
                    }
                }
                self.pos += 1;
                if self.pos < factor {
                    continue;
                }
                self.pos = 0;
                self.row_start = self.group_start;
                match self.fmt.method {
                    DownsamplingMethod::Average => {
                        let d = factor as f32;
                        for i in 0..n {
                            self.row[i] = self.acc[i] / d;
                        }
                    }
                    DownsamplingMethod::Decimate => self.row[..n].copy_from_slice(&self.acc[..n]),
                }
            }
            self.row_end_j = j;
            self.emit_row(now, tx);
        }
        // The block is fully out once the row holding its last sample is sent.
        let target = self.rows_total + u64::from(self.pos > 0);
        if target > self.sent_rows {
            if self.fifo.len() == FIFO_CAP {
                self.fifo.pop_front();
            }
            self.fifo
                .push_back((target, f.arrival, f.header_timestamp_ms));
        }
        if matches!(self.fmt.mode, Mode::Batch | Mode::Blob) && self.batch_due(now) {
            self.counters.timer_flushes += 1;
            self.flush_batch(tx, true);
        }
        if self.fmt.status {
            self.status_due(now, tx);
        }
        self.send_arena(tx);
    }

    /// Timer work: flushes a partial batch whose timeout passed, sends the status message.
    /// Returns when to call again.
    pub fn poll(&mut self, now: Instant, tx: &mut dyn Transmit) -> Option<Instant> {
        if matches!(self.fmt.mode, Mode::Batch | Mode::Blob) && self.batch_due(now) {
            self.counters.timer_flushes += 1;
            self.flush_batch(tx, true);
        }
        if self.fmt.status {
            self.status_due(now, tx);
        }
        self.send_arena(tx);
        let batch = self.batch_started.map(|t| t + self.fmt.batch_timeout);
        match (batch, self.next_status) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Flushes everything pending (partial batch) at stop.
    pub fn finish(&mut self, _now: Instant, tx: &mut dyn Transmit) {
        self.flush_batch(tx, false);
        self.send_arena(tx);
    }

    /// Rows waiting in an unfinished batch.
    pub fn pending_rows(&self) -> usize {
        self.batch_k
    }

    /// Input samples (per channel) held in an unfinished downsampling group.
    pub fn pending_group_samples(&self) -> usize {
        self.pos
    }

    fn batch_due(&self, now: Instant) -> bool {
        self.batch_k > 0
            && self
                .batch_started
                .is_some_and(|t| now.duration_since(t) >= self.fmt.batch_timeout)
    }

    fn status_due(&mut self, now: Instant, tx: &mut dyn Transmit) {
        match self.next_status {
            None => self.next_status = Some(now + Duration::from_secs(1)),
            Some(t) if now >= t => {
                self.next_status = Some(now + Duration::from_secs(1));
                let s = tx.status();
                let c = |v: u64| (v & 0x7fff_ffff) as i32;
                let ints = [
                    c(s.received),
                    c(s.sent),
                    c(s.dropped_policy),
                    c(s.upstream_gaps),
                    c(s.malformed),
                    c(s.incomplete),
                    c(s.channels),
                ];
                self.scratch.clear();
                self.scratch.push(s.rate);
                self.put_message(tx, Addr::Status, &ints, &[], 1, false, 1);
                self.counters.status_sent += 1;
            }
            Some(_) => {}
        }
    }

    fn reset_group(&mut self) {
        if self.pos > 0 {
            self.counters.group_samples_discarded += self.pos as u64;
            self.pos = 0;
            // Blocks whose last sample sat in the discarded group will never be sent.
            let keep = self.rows_total;
            while self.fifo.back().is_some_and(|e| e.0 > keep) {
                self.fifo.pop_back();
            }
        }
    }

    fn set_layout(&mut self, f: &Frame) {
        self.generation = Some(f.layout_generation);
        self.cols.clear();
        if self.fmt.sparse {
            let present = |c: u32| f.channels.binary_search(&c).is_ok();
            let highest = match &self.fmt.selection {
                Some(sel) => sel.iter().copied().max(),
                None => f.channels.last().copied(),
            };
            if let Some(h) = highest {
                for c in 0..=h.min(self.fmt.max_channels as u32 - 1) {
                    let selected = self.fmt.selection.as_ref().is_none_or(|s| s.contains(&c));
                    self.cols
                        .push(if selected && present(c) { c } else { NAN_COL });
                }
            }
        } else {
            match &self.fmt.selection {
                Some(sel) => {
                    for &c in sel {
                        if f.channels.binary_search(&c).is_ok() {
                            self.cols.push(c);
                        }
                    }
                }
                None => self.cols.extend_from_slice(&f.channels),
            }
        }
        self.n = self.cols.len();
        self.stream.clear();
        let mut names: Vec<(u32, String)> = Vec::new();
        if let Some(l) = &self.layout {
            if let Ok(info) = l.lock() {
                // Names of another layout generation would be wrong here: fall back instead.
                if info.generation == f.layout_generation {
                    self.stream.push_str(&info.stream);
                    if self.fmt.mode == Mode::PerChannel {
                        names = info.names.clone();
                    }
                }
            }
        }
        if self.fmt.mode == Mode::PerChannel {
            self.chan_addrs.clear();
            self.chan_off.clear();
            for (index, &ch) in self.cols.iter().enumerate() {
                let renamed = self
                    .fmt
                    .names
                    .iter()
                    .find(|(c, _)| *c == ch)
                    .map(|x| x.1.as_str());
                let oe = names.iter().find(|(c, _)| *c == ch).map(|x| x.1.as_str());
                let fallback = format!("CH{}", ch as u64 + 1);
                let vars = osc::AddressVars {
                    base: &self.fmt.base_address,
                    stream: &self.stream,
                    name: renamed.or(oe).unwrap_or(&fallback),
                    ch,
                    index: index as u32,
                };
                // Validated at construction; a failure here can only be an odd name.
                let mut a = osc::format_address(&self.fmt.channel_address_format, &vars)
                    .unwrap_or_else(|_| format!("/ch{ch}"));
                let mut cut = MAX_ADDRESS.min(a.len());
                while !a.is_char_boundary(cut) {
                    cut -= 1;
                }
                a.truncate(cut);
                let off = self.chan_addrs.len();
                self.chan_addrs.extend_from_slice(a.as_bytes());
                self.chan_off.push((off as u32, a.len() as u32));
            }
        }
    }

    fn emit_row(&mut self, now: Instant, tx: &mut dyn Transmit) {
        self.counters.rows += 1;
        self.rows_total += 1;
        let n = self.n;
        let tag = self.row_timetag();
        match self.fmt.mode {
            Mode::Sample => {
                self.scratch.clear();
                self.scratch.extend_from_slice(&self.row[..n]);
                let (ints, ni) = self.sample_number_ints(self.row_start, &[]);
                self.put_message(tx, Addr::Sample, &ints[..ni], &[], n, false, tag);
                self.arena_rows_end = self.rows_total;
            }
            Mode::PerChannel => {
                let (ints, ni) = self.sample_number_ints(self.row_start, &[]);
                for i in 0..n {
                    self.scratch.clear();
                    self.scratch.push(self.row[i]);
                    self.put_message(tx, Addr::Channel(i), &ints[..ni], &[], 1, false, tag);
                }
                self.arena_rows_end = self.rows_total;
            }
            Mode::Batch | Mode::Blob => {
                let k = self.batch_k;
                self.batch[k * n..(k + 1) * n].copy_from_slice(&self.row[..n]);
                if k == 0 {
                    self.batch_started = Some(now);
                    self.batch_first_sample = self.row_start;
                }
                self.batch_k += 1;
                if self.batch_k == self.fmt.batch_size {
                    self.counters.batches += 1;
                    self.flush_batch(tx, false);
                }
            }
        }
    }

    /// NTP time tag of the current row (bundles): 1 = immediately, or the sample clock.
    fn row_timetag(&self) -> u64 {
        match self.fmt.bundle {
            BundleMode::SampleClock => {
                // The row's last input sample arrived with the block's end.
                let behind = (self.frame_len.saturating_sub(1 + self.row_end_j)) as f64
                    / self.frame_rate.max(1.0);
                ntp_timetag(
                    self.wall_of_arrival
                        .checked_sub(Duration::from_secs_f64(behind))
                        .unwrap_or(self.wall_of_arrival),
                )
            }
            _ => 1,
        }
    }

    /// `prefix` ints followed, if enabled, by the sample number as (high, low).
    fn sample_number_ints(&self, sample: i64, prefix: &[i32]) -> ([i32; 8], usize) {
        let mut ints = [0i32; 8];
        ints[..prefix.len()].copy_from_slice(prefix);
        let mut n = prefix.len();
        if self.fmt.sample_number {
            ints[n] = (sample >> 32) as i32;
            ints[n + 1] = sample as i32;
            n += 2;
        }
        (ints, n)
    }

    /// Encodes the rows held in the batch buffer as one batch or blob message.
    fn flush_batch(&mut self, tx: &mut dyn Transmit, timer: bool) {
        let k = self.batch_k;
        if k == 0 {
            return;
        }
        if k < self.fmt.batch_size && !timer {
            self.counters.forced_flushes += 1;
        }
        self.batch_k = 0;
        self.batch_started = None;
        let n = self.n;
        // Channel-major: ch0 s1…sk, ch1 s1…sk, …
        self.scratch.clear();
        for i in 0..n {
            for r in 0..k {
                self.scratch.push(self.batch[r * n + i]);
            }
        }
        let tag = self.row_timetag();
        if self.fmt.mode == Mode::Blob {
            let (ints, ni) =
                self.sample_number_ints(self.batch_first_sample, &[n as i32, k as i32]);
            self.put_message(tx, Addr::Blob, &ints[..ni], &[], n * k, true, tag);
        } else {
            let (ints, ni) = self.sample_number_ints(self.batch_first_sample, &[n as i32]);
            self.put_message(tx, Addr::Batch(k), &ints[..ni], &[], n * k, false, tag);
        }
        self.arena_rows_end = self.rows_total;
    }

    fn send_events(&mut self, f: &Frame, tx: &mut dyn Transmit) {
        for e in &f.events {
            match e.kind {
                EventKind::Ttl if self.fmt.events => {
                    let ints = [
                        e.line as i32,
                        e.state as i32,
                        (e.sample_num >> 32) as i32,
                        e.sample_num as i32,
                        (e.word >> 32) as i32,
                        e.word as i32,
                    ];
                    self.scratch.clear();
                    self.put_message(tx, Addr::Ttl, &ints, &[], 0, false, 1);
                    self.counters.ttl_sent += 1;
                }
                EventKind::Spike if self.fmt.spikes => {
                    let name_end = (e.name_off + e.name_len) as usize;
                    let name = f
                        .event_text
                        .get(e.name_off as usize..name_end)
                        .unwrap_or(b"");
                    self.scratch.clear();
                    if self.fmt.spike_waveform {
                        let w_end = (e.wave_off + e.wave_len) as usize;
                        if let Some(w) = f.waveforms.get(e.wave_off as usize..w_end) {
                            self.scratch.extend_from_slice(w);
                        }
                    }
                    let ints = [
                        e.sorted_id,
                        (e.sample_num >> 32) as i32,
                        e.sample_num as i32,
                    ];
                    let nf = self.scratch.len();
                    self.put_message(tx, Addr::Spike, &ints, name, nf, false, 1);
                    self.counters.spikes_sent += 1;
                }
                _ => {}
            }
        }
    }

    fn send_notice(&mut self, f: &Frame, tx: &mut dyn Transmit) {
        // {base}/notice ,s i f: stream name, channel count, sample rate.
        let ints = [self.n as i32];
        self.scratch.clear();
        self.scratch.push(f.sample_rate as f32);
        let stream = std::mem::take(&mut self.stream);
        self.put_message(tx, Addr::Notice, &ints, stream.as_bytes(), 1, false, 1);
        self.stream = stream;
        self.counters.notices_sent += 1;
    }

    /// Copies the address of `a` into `buf`; returns its length.
    fn address(&self, a: Addr, buf: &mut [u8; 256], suffix: &[u8]) -> usize {
        let mut digits = [0u8; 20];
        let (p1, p2): (&[u8], &[u8]) = match a {
            Addr::Sample => (&self.addr_sample, b""),
            Addr::Batch(k) => (&self.addr_batch, osc::itoa(k as u64, &mut digits)),
            Addr::Blob => (&self.addr_blob, b""),
            Addr::Channel(i) => {
                let (o, l) = self.chan_off[i];
                (&self.chan_addrs[o as usize..(o + l) as usize], b"")
            }
            Addr::Ttl => (&self.addr_ttl, b""),
            Addr::Spike => (&self.addr_spike, b""),
            Addr::Status => (&self.addr_status, b""),
            Addr::Notice => (&self.addr_notice, b""),
        };
        let mut len = 0;
        for part in [p1, p2, suffix] {
            let take = part.len().min(buf.len() - len);
            buf[len..len + take].copy_from_slice(&part[..take]);
            len += take;
        }
        len
    }

    /// Writes one OSC message — address `a`, int args `ints`, an optional string arg `text`
    /// (after the ints), then `nf` floats from `self.scratch` (as `f` args or one blob) —
    /// wrapped in a bundle if configured, split into `…/part` messages if it exceeds the
    /// datagram limit and splitting is on, else refused and counted.
    #[allow(clippy::too_many_arguments)]
    fn put_message(
        &mut self,
        tx: &mut dyn Transmit,
        a: Addr,
        ints: &[i32],
        text: &[u8],
        nf: usize,
        blob: bool,
        timetag: u64,
    ) {
        let bundled = self.fmt.bundle != BundleMode::Off;
        let bundle_overhead = if bundled { 20 } else { 0 };
        let mut abuf = [0u8; 256];
        let alen = self.address(a, &mut abuf, b"");
        let has_text = !text.is_empty() || matches!(a, Addr::Spike | Addr::Notice);
        let size = |alen: usize, ni: usize, nf: usize| {
            let ntags = ni + usize::from(has_text) + if blob { 1 } else { nf };
            osc::osc_str_len(alen)
                + osc::osc_str_len(1 + ntags)
                + 4 * ni
                + if has_text {
                    osc::osc_str_len(text.len())
                } else {
                    0
                }
                + if blob { 4 + osc::pad4(4 * nf) } else { 4 * nf }
                + bundle_overhead
        };
        let whole = size(alen, ints.len(), nf);
        let limit = self.fmt.max_datagram;
        if whole <= limit {
            self.write_message(
                tx,
                &abuf[..alen],
                ints,
                text,
                has_text,
                0,
                nf,
                blob,
                timetag,
                whole,
            );
            return;
        }
        if !self.fmt.split {
            self.counters.oversize += 1;
            return;
        }
        // Split: `{address}/part` with ints (seq, part, parts, offset) + the original ints,
        // then a slice of the floats. A receiver reassembles by seq, placing each slice at
        // its offset.
        let plen = self.address(a, &mut abuf, b"/part");
        let mut pints = [0i32; 12];
        let pni = 4 + ints.len();
        pints[4..pni].copy_from_slice(ints);
        let fixed = size(plen, pni, 0);
        if fixed + 8 > limit {
            self.counters.oversize += 1;
            return;
        }
        let mut chunk = (limit - fixed) / if blob { 4 } else { 5 };
        while chunk > 1 && size(plen, pni, chunk) > limit {
            chunk -= 1;
        }
        let parts = nf.div_ceil(chunk.max(1));
        self.part_seq = self.part_seq.wrapping_add(1) & 0x7fff_ffff;
        self.counters.split_messages += 1;
        for p in 0..parts {
            let off = p * chunk;
            let len = chunk.min(nf - off);
            pints[0] = self.part_seq as i32;
            pints[1] = p as i32;
            pints[2] = parts as i32;
            pints[3] = off as i32;
            let total = size(plen, pni, len);
            self.write_message(
                tx,
                &abuf[..plen],
                &pints[..pni],
                text,
                has_text,
                off,
                len,
                blob,
                timetag,
                total,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn write_message(
        &mut self,
        tx: &mut dyn Transmit,
        addr: &[u8],
        ints: &[i32],
        text: &[u8],
        has_text: bool,
        f_off: usize,
        nf: usize,
        blob: bool,
        timetag: u64,
        total: usize,
    ) {
        let Some(s) = self.reserve(total, tx) else {
            return;
        };
        let buf = &mut self.arena[s..s + total];
        let mut p = 0;
        if self.fmt.bundle != BundleMode::Off {
            buf[..8].copy_from_slice(b"#bundle\0");
            buf[8..16].copy_from_slice(&timetag.to_be_bytes());
            buf[16..20].copy_from_slice(&((total - 20) as u32).to_be_bytes());
            p = 20;
        }
        p += osc::put_str(&mut buf[p..], addr);
        // Type tags: , i… [s] (f… | b)
        let ntags = ints.len() + usize::from(has_text) + if blob { 1 } else { nf };
        let tl = osc::osc_str_len(1 + ntags);
        buf[p] = b',';
        let mut t = p + 1;
        for _ in ints {
            buf[t] = b'i';
            t += 1;
        }
        if has_text {
            buf[t] = b's';
            t += 1;
        }
        if blob {
            buf[t] = b'b';
            t += 1;
        } else {
            buf[t..t + nf].fill(b'f');
            t += nf;
        }
        buf[t..p + tl].fill(0);
        p += tl;
        for v in ints {
            buf[p..p + 4].copy_from_slice(&v.to_be_bytes());
            p += 4;
        }
        if has_text {
            p += osc::put_str(&mut buf[p..], text);
        }
        let vals = &self.scratch[f_off..f_off + nf];
        if blob {
            buf[p..p + 4].copy_from_slice(&((4 * nf) as u32).to_be_bytes());
            p += 4;
            p += osc::put_floats(&mut buf[p..], vals);
            let padded = osc::pad4(4 * nf) - 4 * nf;
            buf[p..p + padded].fill(0);
            p += padded;
        } else {
            p += osc::put_floats(&mut buf[p..], vals);
        }
        debug_assert_eq!(p, total);
    }

    /// Room for one datagram of `len` bytes at the end of the arena (flushing first when
    /// full). `None` (counted) when it exceeds the UDP limit.
    fn reserve(&mut self, len: usize, tx: &mut dyn Transmit) -> Option<usize> {
        if len > MAX_UDP_PAYLOAD {
            self.counters.oversize += 1;
            return None;
        }
        if self.arena.len() + len > self.arena.capacity() || self.dgrams.len() == TRANSMIT_BATCH {
            self.send_arena(tx);
        }
        let start = self.arena.len();
        self.arena.resize(start + len, 0);
        self.dgrams.push((start as u32, len as u32));
        self.counters.datagrams += 1;
        self.counters.bytes += len as u64;
        Some(start)
    }

    fn send_arena(&mut self, tx: &mut dyn Transmit) {
        if !self.dgrams.is_empty() {
            tx.transmit(&self.arena, &self.dgrams);
            self.arena.clear();
            self.dgrams.clear();
        }
        self.sent_rows = self.arena_rows_end;
        while let Some(&(target, arrival, ts)) = self.fifo.front() {
            if target > self.sent_rows {
                break;
            }
            self.fifo.pop_front();
            tx.block_sent(arrival, ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Discontinuity;
    use rosc::{OscPacket, OscType};

    #[derive(Default)]
    struct Capture {
        msgs: Vec<Vec<u8>>,
        blocks: usize,
    }
    impl Transmit for Capture {
        fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
            for &(o, l) in dgrams {
                self.msgs.push(arena[o as usize..(o + l) as usize].to_vec());
            }
        }
        fn block_sent(&mut self, _: Instant, _: Option<i64>) {
            self.blocks += 1;
        }
    }
    impl Capture {
        fn decoded(&self) -> Vec<(String, Vec<OscType>)> {
            self.msgs
                .iter()
                .map(|m| match rosc::decoder::decode_udp(m).unwrap().1 {
                    OscPacket::Message(m) => (m.addr, m.args),
                    _ => panic!("bundle"),
                })
                .collect()
        }
    }

    fn fmt(mode: Mode, factor: usize, method: DownsamplingMethod, batch: usize) -> OutputFormat {
        OutputFormat {
            mode,
            factor,
            method,
            batch_size: batch,
            batch_timeout: Duration::from_secs(1),
            max_channels: 8,
            ..Default::default()
        }
    }

    /// Frame with values `c·1000 + j` for channels 0..n, samples `start..start+len`.
    fn frame(seq: u64, n: u32, start: usize, len: usize) -> Frame {
        let mut f = Frame::new(8, 16);
        f.seq = seq;
        f.sample_num = start as i64;
        f.num_samples = len;
        f.channels = (0..n).collect();
        f.layout_generation = 1;
        for c in 0..n {
            for (k, v) in f.row_mut(c, len).iter_mut().enumerate() {
                *v = (c as usize * 1000 + start + k) as f32;
            }
        }
        f
    }

    fn floats(args: &[OscType]) -> Vec<f32> {
        args.iter()
            .filter_map(|a| match a {
                OscType::Float(x) => Some(*x),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn vector_f1_sample_mode() {
        let mut p =
            OutputPipeline::new(fmt(Mode::Sample, 1, DownsamplingMethod::Average, 1)).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 2, 0, 2), Instant::now(), &mut c);
        let d = c.decoded();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0, "/data/sample");
        assert_eq!(floats(&d[0].1), vec![0.0, 1000.0]);
        assert_eq!(floats(&d[1].1), vec![1.0, 1001.0]);
        assert_eq!(c.blocks, 1);
    }

    #[test]
    fn vector_f2_average_and_across_blocks() {
        let mut p =
            OutputPipeline::new(fmt(Mode::Sample, 2, DownsamplingMethod::Average, 1)).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 2, 0, 4), Instant::now(), &mut c);
        let d = c.decoded();
        assert_eq!(floats(&d[0].1), vec![0.5, 1000.5]);
        assert_eq!(floats(&d[1].1), vec![2.5, 1002.5]);
        // N=1, block A j=0..2, block B j=3..5 → [0.5], [2.5], [4.5].
        let mut p =
            OutputPipeline::new(fmt(Mode::Sample, 2, DownsamplingMethod::Average, 1)).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 1, 0, 3), Instant::now(), &mut c);
        assert_eq!(c.blocks, 0, "block A's last sample waits in the open group");
        p.process(&frame(2, 1, 3, 3), Instant::now(), &mut c);
        let got: Vec<Vec<f32>> = c.decoded().iter().map(|m| floats(&m.1)).collect();
        assert_eq!(got, vec![vec![0.5], vec![2.5], vec![4.5]]);
        assert_eq!(c.blocks, 2);
    }

    #[test]
    fn vector_f2_decimate_intended() {
        let mut p =
            OutputPipeline::new(fmt(Mode::Sample, 2, DownsamplingMethod::Decimate, 1)).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 2, 0, 4), Instant::now(), &mut c);
        let got: Vec<Vec<f32>> = c.decoded().iter().map(|m| floats(&m.1)).collect();
        assert_eq!(got, vec![vec![1.0, 1001.0], vec![3.0, 1003.0]]);
    }

    #[test]
    fn vector_batch_bytes_exact() {
        // §3.8 / §4.3: F=2 average, B=3, N=2, j=0..5 → the exact 56-byte datagram.
        let want: Vec<u8> = [
            "2f646174612f62617463682f33000000",
            "2c69666666666666 00000000",
            "00000002",
            "3f000000 40200000 40900000",
            "447a2000 447aa000 447b2000",
        ]
        .concat()
        .split_whitespace()
        .collect::<String>()
        .as_bytes()
        .chunks(2)
        .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
        .collect();
        let mut p =
            OutputPipeline::new(fmt(Mode::Batch, 2, DownsamplingMethod::Average, 3)).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 2, 0, 6), Instant::now(), &mut c);
        assert_eq!(c.msgs, vec![want]);
    }

    #[test]
    fn vector_batch_size_one() {
        let mut p =
            OutputPipeline::new(fmt(Mode::Batch, 1, DownsamplingMethod::Average, 1)).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 2, 0, 2), Instant::now(), &mut c);
        let d = c.decoded();
        assert_eq!(d[0].0, "/data/batch/1");
        assert_eq!(d[0].1[0], OscType::Int(2));
        assert_eq!(floats(&d[1].1), vec![1.0, 1001.0]);
    }

    #[test]
    fn partial_batch_timer_and_finish() {
        let mut p =
            OutputPipeline::new(fmt(Mode::Batch, 1, DownsamplingMethod::Average, 10)).unwrap();
        let mut c = Capture::default();
        let t0 = Instant::now();
        p.process(&frame(1, 2, 0, 4), t0, &mut c);
        assert!(c.msgs.is_empty());
        assert_eq!(p.pending_rows(), 4);
        let due = p.poll(t0, &mut c).unwrap();
        assert!(c.msgs.is_empty());
        p.poll(due, &mut c);
        let d = c.decoded();
        assert_eq!(d[0].0, "/data/batch/4");
        assert_eq!(
            floats(&d[0].1),
            vec![0.0, 1.0, 2.0, 3.0, 1000.0, 1001.0, 1002.0, 1003.0]
        );
        assert_eq!(p.counters.timer_flushes, 1);
        p.process(&frame(2, 2, 4, 3), due, &mut c);
        p.finish(due, &mut c);
        assert_eq!(c.decoded()[1].0, "/data/batch/3");
        assert_eq!(c.blocks, 2);
    }

    #[test]
    fn gap_restarts_group_and_layout_change_flushes() {
        let mut p =
            OutputPipeline::new(fmt(Mode::Sample, 2, DownsamplingMethod::Average, 1)).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 1, 0, 3), Instant::now(), &mut c);
        let mut f = frame(2, 1, 10, 2);
        f.discontinuity = Discontinuity {
            gap: true,
            layout: false,
        };
        p.process(&f, Instant::now(), &mut c);
        let got: Vec<Vec<f32>> = c.decoded().iter().map(|m| floats(&m.1)).collect();
        assert_eq!(
            got,
            vec![vec![0.5], vec![10.5]],
            "sample 2 of block A was not averaged with 10"
        );
        assert_eq!(p.counters.group_samples_discarded, 1);
        // A skipped sequence number (a frame dropped by policy) is a gap too.
        p.process(&frame(5, 1, 20, 3), Instant::now(), &mut c);
        p.process(&frame(7, 1, 30, 1), Instant::now(), &mut c);
        assert_eq!(p.counters.frames_skipped, 3);
        assert_eq!(floats(&c.decoded().last().unwrap().1), vec![20.5]);

        let mut p =
            OutputPipeline::new(fmt(Mode::Batch, 1, DownsamplingMethod::Average, 10)).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 2, 0, 2), Instant::now(), &mut c);
        let mut f = frame(2, 3, 2, 2);
        f.layout_generation = 2;
        p.process(&f, Instant::now(), &mut c);
        let d = c.decoded();
        assert_eq!(d[0].0, "/data/batch/2");
        assert_eq!(d[0].1[0], OscType::Int(2));
        assert_eq!(p.pending_rows(), 2);
        assert_eq!(p.channels(), &[0, 1, 2]);
    }

    #[test]
    fn per_channel_and_base_address() {
        let mut f = fmt(Mode::PerChannel, 1, DownsamplingMethod::Average, 1);
        f.base_address = "/oe".into();
        let mut p = OutputPipeline::new(f).unwrap();
        let mut c = Capture::default();
        let mut fr = frame(1, 3, 0, 1);
        fr.channels = vec![0, 2];
        p.process(&fr, Instant::now(), &mut c);
        let d = c.decoded();
        assert_eq!(d[0], ("/ch000".into(), vec![OscType::Float(0.0)]));
        assert_eq!(d[1], ("/ch002".into(), vec![OscType::Float(2000.0)]));

        let mut f = fmt(Mode::Sample, 1, DownsamplingMethod::Average, 1);
        f.base_address = "/oe".into();
        let mut p = OutputPipeline::new(f).unwrap();
        let mut c = Capture::default();
        p.process(&frame(1, 1, 0, 1), Instant::now(), &mut c);
        assert_eq!(c.decoded()[0].0, "/oe/sample");
    }

    #[test]
    fn average_is_float32_sequential_sum() {
        // Values where f64 and f32 sums differ: the result must be the f32 computation.
        let mut p =
            OutputPipeline::new(fmt(Mode::Sample, 3, DownsamplingMethod::Average, 1)).unwrap();
        let mut c = Capture::default();
        let mut f = frame(1, 1, 0, 3);
        let vals = [16_777_216.0f32, 1.0, 1.0];
        f.row_mut(0, 3).copy_from_slice(&vals);
        p.process(&f, Instant::now(), &mut c);
        let want = ((vals[0] + vals[1]) + vals[2]) / 3.0f32;
        assert_eq!(floats(&c.decoded()[0].1), vec![want]);
        assert_ne!(want, ((16_777_216.0f64 + 2.0) / 3.0) as f32);
    }

    #[test]
    fn oversize_messages_are_refused_and_counted() {
        let mut f = fmt(Mode::Batch, 1, DownsamplingMethod::Average, 1000);
        f.max_channels = 32;
        let mut p = OutputPipeline::new(f).unwrap();
        let mut c = Capture::default();
        let mut fr = Frame::new(32, 1000);
        fr.seq = 1;
        fr.num_samples = 1000;
        fr.channels = (0..32).collect();
        fr.layout_generation = 1;
        p.process(&fr, Instant::now(), &mut c);
        assert!(c.msgs.is_empty());
        assert_eq!(p.counters.oversize, 1);
        assert_eq!(c.blocks, 1, "the block is accounted for, not stuck");
    }
}
