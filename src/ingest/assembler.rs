//! Frame assembly: per-channel DATA messages → whole blocks, keyed by `(stream, sample_num)`.
//!
//! The plugin sends one message per selected channel per block, all sharing `sample_num`
//! (spec §1.4, §1.11). This module turns them into [`Frame`]s without looking at arrival
//! order for anything but "a newer block has started":
//!
//! * The **channel set** is learned: a block whose observed channels equal those of the block
//!   before it (both free of upstream `message_num` gaps) defines the set. It is re-learned the
//!   same way when the mask is edited live (channels removed or added), so sparse selections
//!   (0, 2, 5) and changing selections work.
//! * A block is **emitted the moment its last expected channel arrives** (no waiting for the
//!   next block). A block still missing channels when a newer `sample_num` arrives, or when a
//!   short deadline passes, is dropped and counted (with its upstream share, when
//!   `message_num` gaps show the publisher or ZMQ lost messages).
//! * `message_num` resets (new acquisition), backward `sample_num` jumps (File Reader loop),
//!   forward gaps and stream/sample-rate changes are detected and counted; the next frame
//!   carries a [`Discontinuity`] so the downsampling group restarts.
//!
//! Payloads are received straight into the frame's row: [`Assembler::begin_data`] hands out
//! the destination bytes, [`Assembler::end_data`] validates what arrived. Nothing here
//! allocates once the assembler and its frames exist (a stream rename longer than any seen
//! before is the one exception).

use crate::config::MissingChannelPolicy;
use crate::frame::{ChannelSet, Discontinuity, Frame};
use crate::ingest::protocol::{sample_rate_ok, DataHeader, Malformed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where frames come from and go to.
pub trait FrameIo {
    /// A free frame, if any.
    fn take(&mut self) -> Option<Arc<Frame>>;
    /// Returns an unused frame to the free list.
    fn give(&mut self, frame: Arc<Frame>);
    /// Hands a complete frame to the output side.
    fn emit(&mut self, frame: Arc<Frame>);
}

impl FrameIo for (Vec<Arc<Frame>>, Vec<Arc<Frame>>) {
    fn take(&mut self) -> Option<Arc<Frame>> {
        self.0.pop()
    }
    fn give(&mut self, frame: Arc<Frame>) {
        self.0.push(frame)
    }
    fn emit(&mut self, frame: Arc<Frame>) {
        self.1.push(frame)
    }
}

/// Limits and timing of the assembler.
#[derive(Debug, Clone)]
pub struct AssemblerConfig {
    /// Channel numbers must be below this (slab row count).
    pub max_channels: usize,
    /// `num_samples` must not exceed this (slab row length).
    pub max_block_samples: usize,
    /// Lower bound of the incomplete-block deadline (the deadline is two block durations,
    /// at least this). It only matters when no newer block follows (end of acquisition, a
    /// stalled publisher): complete blocks go out at once whatever it is.
    pub min_deadline: Duration,
    /// No message for this long = acquisition stopped (`zmq.data_timeout_seconds`).
    pub data_timeout: Duration,
    /// On data timeout, forget the channel set and counters' continuity
    /// (`zmq.auto_reinit_on_timeout`).
    pub auto_reinit: bool,
    /// A block still missing channels of the set when it closes: drop, or fill and send.
    pub missing: MissingChannelPolicy,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            max_channels: 1024,
            max_block_samples: 2048,
            min_deadline: Duration::from_millis(100),
            data_timeout: Duration::from_secs(2),
            auto_reinit: true,
            missing: MissingChannelPolicy::Skip,
        }
    }
}

/// A rejected DATA message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Malformed (counted by kind).
    Malformed(Malformed),
    /// The block was already emitted and this channel is not in the current set (a channel
    /// added live; counted, and used to re-learn the set).
    NotInSet,
    /// No free frame for this block (output side too slow; counted).
    NoFrame,
    /// The message belongs to a block already closed by its deadline (counted).
    Late,
}

/// Counters kept by the assembler (plain integers; the receiver thread publishes them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsmCounters {
    /// DATA messages seen (valid or not).
    pub data_msgs: u64,
    /// Distinct blocks started (each ends emitted, dropped for one of the reasons below, or
    /// still open).
    pub blocks_opened: u64,
    /// Rejected messages by kind ([`Malformed::ALL`] order).
    pub malformed: [u64; Malformed::COUNT],
    /// Frames handed to the output side.
    pub blocks_emitted: u64,
    /// Blocks dropped because a channel of the set was missing and no upstream gap explains it.
    pub blocks_incomplete: u64,
    /// Blocks dropped incomplete while `message_num` gaps show upstream loss.
    pub blocks_incomplete_upstream: u64,
    /// Blocks dropped while the channel set was still being learned (held blocks that the
    /// learned set did not confirm, or that the hold could not keep; 0 on a clean start).
    pub blocks_learning: u64,
    /// Blocks held while the channel set was (re-)learned and then emitted, late and in order,
    /// once the set confirmed them (included in `blocks_emitted`).
    pub blocks_held_late: u64,
    /// Held blocks given up because the hold ([`HOLD_BLOCKS`]) or the frame pool was full
    /// (each is also counted in `blocks_learning` or `blocks_incomplete`).
    pub blocks_hold_overflow: u64,
    /// Headers cut by the GUI's non-ASCII length bug and repaired (see
    /// [`crate::ingest::protocol::truncated_header_cut`]); the caller counts them here.
    pub headers_repaired: u64,
    /// Headers read by the full JSON parse instead of the scanner (events, spikes, repairs,
    /// any layout other than the plugin's exact DATA layout).
    pub headers_json: u64,
    /// Blocks lost because no free frame was available.
    pub blocks_no_frame: u64,
    /// Messages for channels outside the current set after their block was emitted.
    pub extra_channel_msgs: u64,
    /// Messages missing upstream according to `message_num` gaps.
    pub upstream_missing_msgs: u64,
    /// Forward `sample_num` gaps between consecutive blocks (whole blocks never seen).
    pub upstream_sample_gaps: u64,
    /// Samples (per channel) in those gaps.
    pub upstream_missing_samples: u64,
    /// Backward `sample_num` jumps within an acquisition (File Reader loop).
    pub backward_jumps: u64,
    /// New acquisitions detected by a `message_num` reset.
    pub restarts: u64,
    /// Stream name or sample-rate changes.
    pub stream_changes: u64,
    /// Channel sets learned or re-learned.
    pub channel_set_changes: u64,
    /// Data inactivity timeouts.
    pub data_timeouts: u64,
    /// Messages for a block already closed by its deadline (dropped; not a restart).
    pub late_msgs: u64,
    /// Blocks sent with missing channels filled (`nan`/`hold` policy); included in
    /// `blocks_emitted`.
    pub blocks_filled: u64,
    /// Channel rows filled in those blocks.
    pub rows_filled: u64,
}

impl AsmCounters {
    /// Count one rejected message.
    #[inline]
    pub fn count(&mut self, kind: Malformed) {
        self.malformed[kind as usize] += 1;
    }
    /// Total rejected messages.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

/// Most blocks held back while the channel set is (re-)learned. Learning needs two blocks that
/// agree, so one held block is the normal case; a few more cover a selection edited twice in a
/// row. The engine's pool has spare frames for them (see `engine`); when the pool runs dry the
/// oldest held block is given up first (counted).
pub const HOLD_BLOCKS: usize = 3;

/// A closed block kept until the channel set decides whether it is complete.
struct Held {
    frame: Option<Arc<Frame>>,
    key: i64,
    num_samples: usize,
    seen: ChannelSet,
    last_ts: Option<i64>,
    at: Instant,
    /// Held while no set was known (dropped as `blocks_learning`, else `blocks_incomplete`).
    learning: bool,
}

/// Converts a float slice to its bytes (always aligned, since f32 alignment ≥ u8's).
#[inline]
fn as_bytes_mut(row: &mut [f32]) -> &mut [u8] {
    bytemuck::cast_slice_mut(row)
}

/// The assembler. One per receiver thread.
pub struct Assembler {
    cfg: AssemblerConfig,
    stream: String,
    rate: f64,
    have_stream: bool,
    last_msg_num: Option<i64>,
    gap_pending: bool,
    set: ChannelSet,
    generation: u32,
    last_closed: ChannelSet,
    last_closed_valid: bool,
    // The open (newest) block.
    open: bool,
    key: i64,
    num_samples: usize,
    seen: ChannelSet,
    in_set: usize,
    frame: Option<Arc<Frame>>,
    emitted: bool,
    lossy: bool,
    deadline: Instant,
    deadline_span: Duration,
    /// When the open block's latest message arrived (arrival of a block emitted late).
    last_msg_at: Instant,
    last_ts: Option<i64>,
    // The row being received.
    row: Option<u32>,
    prev_open_end: Option<i64>,
    closed_key: Option<i64>,
    /// Last sample sent per channel (for the `hold` policy).
    last_vals: Vec<f32>,
    /// Closing because the bridge stops (no fill).
    stopping: bool,
    /// Closing because the open block's deadline passed.
    timed_out: bool,
    last_emitted_end: Option<i64>,
    pending: Discontinuity,
    seq: u64,
    last_activity: Option<Instant>,
    /// Blocks held back (oldest first), `held_len` of them in use.
    held: Vec<Held>,
    held_len: usize,
    /// Counters (read them, publish them; the assembler only adds).
    pub counters: AsmCounters,
}

impl Assembler {
    /// A new assembler.
    pub fn new(cfg: AssemblerConfig) -> Self {
        let n = cfg.max_channels;
        Assembler {
            stream: String::with_capacity(256),
            rate: 0.0,
            have_stream: false,
            last_msg_num: None,
            gap_pending: false,
            set: ChannelSet::with_capacity(n),
            generation: 0,
            last_closed: ChannelSet::with_capacity(n),
            last_closed_valid: false,
            open: false,
            key: 0,
            num_samples: 0,
            seen: ChannelSet::with_capacity(n),
            in_set: 0,
            frame: None,
            emitted: false,
            lossy: false,
            deadline: Instant::now(),
            deadline_span: Duration::ZERO,
            last_msg_at: Instant::now(),
            last_ts: None,
            row: None,
            prev_open_end: None,
            closed_key: None,
            last_vals: vec![f32::NAN; n],
            stopping: false,
            timed_out: false,
            last_emitted_end: None,
            pending: Discontinuity::default(),
            seq: 0,
            last_activity: None,
            held: (0..HOLD_BLOCKS)
                .map(|_| Held {
                    frame: None,
                    key: 0,
                    num_samples: 0,
                    seen: ChannelSet::with_capacity(n),
                    last_ts: None,
                    at: Instant::now(),
                    learning: false,
                })
                .collect(),
            held_len: 0,
            counters: AsmCounters::default(),
            cfg,
        }
    }

    /// The current (learned) channel set; empty while learning.
    pub fn channel_set(&self) -> &[u32] {
        self.set.as_slice()
    }
    /// Blocks currently held back while the channel set is (re-)learned (each counted in
    /// `blocks_opened`, not yet ended; their frames are out of the pool).
    pub fn held_blocks(&self) -> usize {
        self.held_len
    }
    /// Current stream name and sample rate, once data was seen.
    pub fn stream(&self) -> Option<(&str, f64)> {
        self.have_stream
            .then_some((self.stream.as_str(), self.rate))
    }

    /// Feeds the shared `message_num` of every parsed header (data, event, spike): counts
    /// upstream gaps, detects a new acquisition (reset to a lower value).
    pub fn observe_message_num(&mut self, n: Option<i64>, now: Instant, io: &mut dyn FrameIo) {
        self.last_activity = Some(now);
        let Some(n) = n else { return };
        if let Some(last) = self.last_msg_num {
            if n == last.wrapping_add(1) {
                // in order
            } else if n == last {
                // A duplicate (not a restart): nothing to count against the stream.
            } else if n > last {
                let missing = n.saturating_sub(last).saturating_sub(1) as u64;
                self.counters.upstream_missing_msgs =
                    self.counters.upstream_missing_msgs.saturating_add(missing);
                self.mark_gap();
            } else if last > i32::MAX as i64 - 1_000_000 && n < i32::MIN as i64 + 1_000_000 {
                // int32 wrap of the plugin's counter (§1.7).
                let missing = (i32::MAX as i64 - last) + (n - i32::MIN as i64);
                if missing > 0 {
                    self.counters.upstream_missing_msgs += missing as u64;
                    self.mark_gap();
                }
            } else {
                // Reset: a new acquisition. sample_num may continue (GUI 1.0.1) or restart.
                self.counters.restarts += 1;
                self.close(io);
                self.resolve_held(io);
                self.prev_open_end = None;
                self.closed_key = None;
                self.pending.gap = true;
            }
        }
        self.last_msg_num = Some(n);
    }

    /// Whether the short incomplete-block deadline may close the open block: only where an
    /// incomplete block can be told from a slow one, i.e. without message numbers (old
    /// plugins), or once the stream showed a `message_num` gap during this block. In a
    /// gap-free stream the missing channels are still on their way (the plugin sends every
    /// channel of a block; a publisher descheduled mid-block only delays them), and if they
    /// never come, the next block or the data timeout closes the block and counts it.
    fn deadline_applies(&self) -> bool {
        self.lossy || self.last_msg_num.is_none()
    }

    fn mark_gap(&mut self) {
        if self.open {
            self.lossy = true;
        }
        self.gap_pending = true;
    }

    /// Starts receiving one DATA message: validates the header, handles stream changes and
    /// block boundaries, and returns the bytes the payload must be written to
    /// (`4 · num_samples`). Call [`Assembler::end_data`] after writing.
    pub fn begin_data(
        &mut self,
        h: &DataHeader<'_>,
        now: Instant,
        io: &mut dyn FrameIo,
    ) -> Result<&mut [u8], Reject> {
        self.counters.data_msgs += 1;
        self.row = None;
        let bad = |s: &mut Self, k: Malformed| {
            s.counters.count(k);
            Err(Reject::Malformed(k))
        };
        if h.num_samples <= 0 || h.num_samples as u64 > self.cfg.max_block_samples as u64 {
            return bad(self, Malformed::BadNumSamples);
        }
        if h.channel_num < 0 || h.channel_num as u64 >= self.cfg.max_channels as u64 {
            return bad(self, Malformed::ChannelOutOfRange);
        }
        if !sample_rate_ok(h.sample_rate) {
            return bad(self, Malformed::BadSampleRate);
        }
        let ns = h.num_samples as usize;
        let ch = h.channel_num as u32;

        if !self.have_stream || h.stream != self.stream.as_str() || h.sample_rate != self.rate {
            self.change_stream(&h.stream, h.sample_rate, io);
        }

        if self.open && h.sample_num != self.key {
            // A newer (or, after a loop, an older) block has started.
            self.close(io);
        }
        if !self.open {
            if self.closed_key == Some(h.sample_num) {
                // The rest of a block its deadline already closed (a stalled publisher).
                self.counters.late_msgs += 1;
                return Err(Reject::Late);
            }
            self.open_block(h.sample_num, ns, now, io);
        }
        if self.gap_pending {
            self.lossy = true;
            self.gap_pending = false;
        }
        if ns != self.num_samples {
            return bad(self, Malformed::BlockSizeMismatch);
        }
        if self.seen.contains(ch) {
            return bad(self, Malformed::DuplicateChannel);
        }
        if self.emitted {
            // The block already went out; a channel arriving now is outside the set.
            self.seen.insert(ch);
            self.counters.extra_channel_msgs += 1;
            return Err(Reject::NotInSet);
        }
        // The free list only holds frames no shard still reads: get_mut succeeds.
        let Some(frame) = self.frame.as_mut().and_then(Arc::get_mut) else {
            return Err(Reject::NoFrame);
        };
        self.row = Some(ch);
        self.last_ts = h.timestamp;
        Ok(as_bytes_mut(frame.row_mut(ch, ns)))
    }

    /// Finishes the message started by [`Assembler::begin_data`]: `received` is the payload's
    /// real length, `extra_frames` whether more frames followed it. A valid payload marks the
    /// channel present; a complete block is emitted at once.
    pub fn end_data(
        &mut self,
        received: usize,
        extra_frames: bool,
        now: Instant,
        io: &mut dyn FrameIo,
    ) -> Result<(), Malformed> {
        let Some(ch) = self.row.take() else {
            return Ok(());
        };
        if extra_frames {
            self.counters.count(Malformed::TooManyFrames);
            return Err(Malformed::TooManyFrames);
        }
        if received != self.num_samples * 4 {
            self.counters.count(Malformed::PayloadLength);
            return Err(Malformed::PayloadLength);
        }
        if cfg!(target_endian = "big") {
            if let Some(f) = self.frame.as_mut().and_then(Arc::get_mut) {
                for v in f.row_mut(ch, self.num_samples) {
                    *v = f32::from_bits(v.to_bits().swap_bytes());
                }
            }
        }
        self.seen.insert(ch);
        // The deadline runs from the block's latest message: a slow but steady publisher is
        // never cut off mid-block.
        self.deadline = now + self.deadline_span;
        self.last_msg_at = now;
        if self.set.contains(ch) {
            self.in_set += 1;
        }
        // Learning: a block whose channels equal the previous (gap-free) block's defines the
        // set the moment it is complete, so it goes out on time.
        if self.set.is_empty()
            && !self.lossy
            && self.last_closed_valid
            && !self.seen.is_empty()
            && self.seen == self.last_closed
        {
            self.set.copy_from(&self.seen);
            self.generation = self.generation.wrapping_add(1);
            self.pending.layout = true;
            self.counters.channel_set_changes += 1;
            self.in_set = self.set.len();
        }
        if !self.set.is_empty() && self.in_set == self.set.len() {
            if let Some(f) = self.frame.take() {
                // Blocks held while learning go first, in order (complete ones late).
                self.resolve_held(io);
                let (key, ns, ts) = (self.key, self.num_samples, self.last_ts);
                self.emit(f, key, ns, ts, now, io);
                self.emitted = true;
            }
        }
        Ok(())
    }

    /// Abandons the message started by [`Assembler::begin_data`] (its payload frame was
    /// missing); counts it as [`Malformed::TooFewFrames`].
    pub fn abort_data(&mut self) {
        if self.row.take().is_some() {
            self.counters.count(Malformed::TooFewFrames);
        }
    }

    /// Time-driven work: drops an incomplete block whose deadline passed, handles the data
    /// inactivity timeout. Call it when the socket is idle (and now and then when busy).
    pub fn poll(&mut self, now: Instant, io: &mut dyn FrameIo) {
        if self.open && !self.emitted && now >= self.deadline && self.deadline_applies() {
            // The rest never came: under a known set the block is incomplete, not held.
            self.timed_out = true;
            self.close(io);
            self.timed_out = false;
        }
        if let Some(t) = self.last_activity {
            if now.duration_since(t) >= self.cfg.data_timeout {
                self.last_activity = None;
                self.counters.data_timeouts += 1;
                self.close(io);
                self.resolve_held(io);
                if self.cfg.auto_reinit {
                    self.reinit();
                }
            }
        }
    }

    /// Closes the open block (at shutdown): emits it if complete, else drops it and counts.
    pub fn flush(&mut self, io: &mut dyn FrameIo) {
        // A block cut off by the stop is not filled: its missing channels were never lost.
        self.stopping = true;
        self.close(io);
        self.resolve_held(io);
        self.stopping = false;
    }

    /// True while a block is open (counted in `blocks_opened`, not yet ended).
    pub fn has_open_block(&self) -> bool {
        self.open && !self.emitted && self.frame.is_some()
    }

    /// The earliest instant at which [`Assembler::poll`] has work, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        let d = (self.open && !self.emitted && self.deadline_applies()).then_some(self.deadline);
        let t = self.last_activity.map(|t| t + self.cfg.data_timeout);
        match (d, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn reinit(&mut self) {
        self.set.clear();
        self.last_closed_valid = false;
        self.last_msg_num = None;
        self.prev_open_end = None;
        self.closed_key = None;
        self.last_emitted_end = None;
        self.pending.gap = true;
        self.pending.layout = true;
        self.generation = self.generation.wrapping_add(1);
        self.have_stream = false;
    }

    fn change_stream(&mut self, stream: &str, rate: f64, io: &mut dyn FrameIo) {
        self.close(io);
        self.resolve_held(io);
        if self.have_stream {
            self.counters.stream_changes += 1;
        }
        self.stream.clear();
        self.stream.push_str(stream);
        self.rate = rate;
        self.have_stream = true;
        self.set.clear();
        self.last_closed_valid = false;
        self.generation = self.generation.wrapping_add(1);
        self.pending = Discontinuity {
            gap: true,
            layout: true,
        };
        self.prev_open_end = None;
        self.closed_key = None;
        self.last_emitted_end = None;
    }

    fn open_block(&mut self, key: i64, ns: usize, now: Instant, io: &mut dyn FrameIo) {
        if let Some(end) = self.prev_open_end {
            if key > end {
                self.counters.upstream_sample_gaps += 1;
                self.counters.upstream_missing_samples = self
                    .counters
                    .upstream_missing_samples
                    .saturating_add(key.saturating_sub(end) as u64);
            } else if key < end {
                self.counters.backward_jumps += 1;
            }
        }
        self.prev_open_end = Some(key.saturating_add(ns as i64));
        self.counters.blocks_opened += 1;
        self.open = true;
        self.key = key;
        self.num_samples = ns;
        self.seen.clear();
        self.in_set = 0;
        self.emitted = false;
        self.lossy = false;
        self.last_ts = None;
        // Rates are validated (≥ 0.001 Hz); still, never let a duration overflow.
        let block = Duration::try_from_secs_f64(2.0 * ns as f64 / self.rate)
            .unwrap_or(Duration::from_secs(3600))
            .min(Duration::from_secs(3600));
        self.deadline_span = block.max(self.cfg.min_deadline);
        self.deadline = now + self.deadline_span;
        self.last_msg_at = now;
        self.frame = io.take();
        if self.frame.is_none() && self.held_len > 0 {
            // Holding must not starve the pool: give up the oldest held block (counted).
            self.drop_oldest_held(io);
            self.frame = io.take();
        }
        if self.frame.is_none() {
            self.counters.blocks_no_frame += 1;
        }
    }

    /// Closes the open block: learns the channel set from it, emits it if it is complete
    /// under the (possibly just re-learned) set, otherwise drops and counts it.
    fn close(&mut self, io: &mut dyn FrameIo) {
        if !self.open {
            return;
        }
        self.open = false;
        self.row = None;
        self.closed_key = Some(self.key);
        let mut adopted = false;
        if self.lossy && self.set.is_empty() && self.cfg.missing != MissingChannelPolicy::Skip {
            // Every block may lose messages upstream (1000+ channels at the plugin's default
            // high-water mark): learn the union of channels seen, once it stops growing.
            let was_valid = self.last_closed_valid;
            if !was_valid {
                self.last_closed.clear();
            }
            let before = self.last_closed.len();
            for &c in self.seen.as_slice() {
                self.last_closed.insert(c);
            }
            if was_valid && self.last_closed.len() == before && before > 0 {
                self.set.copy_from(&self.last_closed);
                self.generation = self.generation.wrapping_add(1);
                self.pending.layout = true;
                self.counters.channel_set_changes += 1;
            }
            self.last_closed_valid = true;
        } else if self.lossy {
            self.last_closed_valid = false;
        } else {
            if self.seen != self.set
                && !self.seen.is_empty()
                && self.last_closed_valid
                && self.last_closed == self.seen
            {
                let first = self.set.is_empty();
                self.set.copy_from(&self.seen);
                self.generation = self.generation.wrapping_add(1);
                self.pending.layout = true;
                self.counters.channel_set_changes += 1;
                adopted = !first || !self.emitted;
            }
            self.last_closed.copy_from(&self.seen);
            self.last_closed_valid = true;
        }
        if let Some(mut f) = self.frame.take() {
            let complete = !self.set.is_empty() && self.seen.is_superset_of(&self.set);
            let fill = !complete
                && !self.stopping
                && !self.emitted
                && !self.set.is_empty()
                && self.cfg.missing != MissingChannelPolicy::Skip
                && self.in_set > 0;
            if complete && (adopted || !self.emitted) {
                // Complete under the (re-)learned set: emit late rather than lose it, after
                // the blocks held before it.
                self.resolve_held(io);
                let (key, ns, ts, at) =
                    (self.key, self.num_samples, self.last_ts, self.last_msg_at);
                self.emit(f, key, ns, ts, at, io);
            } else if fill {
                // Missing channels filled (NaN or last value), counted; the block goes out.
                if let Some(fm) = Arc::get_mut(&mut f) {
                    let ns = self.num_samples;
                    for &c in self.set.as_slice() {
                        if !self.seen.contains(c) {
                            let v = match self.cfg.missing {
                                MissingChannelPolicy::Hold => self.last_vals[c as usize],
                                _ => f32::NAN,
                            };
                            fm.row_mut(c, ns).fill(v);
                            self.counters.rows_filled += 1;
                        }
                    }
                }
                self.counters.blocks_filled += 1;
                self.resolve_held(io);
                let (key, ns, ts, at) =
                    (self.key, self.num_samples, self.last_ts, self.last_msg_at);
                self.emit(f, key, ns, ts, at, io);
            } else if !self.lossy && !self.stopping && (self.set.is_empty() || !self.timed_out) {
                // Not complete under the set we know (none yet, or the selection was edited):
                // hold it until the next blocks (re-)learn the set, which may confirm it.
                self.hold(f, io);
            } else {
                if self.set.is_empty() {
                    self.counters.blocks_learning += 1;
                } else if self.lossy {
                    self.counters.blocks_incomplete_upstream += 1;
                } else {
                    self.counters.blocks_incomplete += 1;
                }
                io.give(f);
            }
        }
    }

    /// Keeps a closed block for later (see [`HOLD_BLOCKS`]).
    fn hold(&mut self, f: Arc<Frame>, io: &mut dyn FrameIo) {
        if self.held_len == HOLD_BLOCKS {
            self.drop_oldest_held(io);
        }
        let learning = self.set.is_empty();
        let h = &mut self.held[self.held_len];
        h.frame = Some(f);
        h.key = self.key;
        h.num_samples = self.num_samples;
        h.seen.copy_from(&self.seen);
        h.last_ts = self.last_ts;
        h.at = self.last_msg_at;
        h.learning = learning;
        self.held_len += 1;
    }

    /// Gives up the oldest held block (hold or pool full): counted as dropped.
    fn drop_oldest_held(&mut self, io: &mut dyn FrameIo) {
        if self.held_len == 0 {
            return;
        }
        self.counters.blocks_hold_overflow += 1;
        let h = &mut self.held[0];
        let learning = h.learning;
        let frame = h.frame.take();
        self.held[..self.held_len].rotate_left(1);
        self.held_len -= 1;
        self.count_dropped(learning, false);
        if let Some(f) = frame {
            io.give(f);
        }
    }

    fn count_dropped(&mut self, learning: bool, lossy: bool) {
        if learning {
            self.counters.blocks_learning += 1;
        } else if lossy {
            self.counters.blocks_incomplete_upstream += 1;
        } else {
            self.counters.blocks_incomplete += 1;
        }
    }

    /// Ends every held block, oldest first: emitted (late) when complete under the current
    /// set, else dropped and counted. Called before anything newer is emitted and whenever the
    /// continuity they belong to ends (restart, stream change, timeout, stop).
    fn resolve_held(&mut self, io: &mut dyn FrameIo) {
        for i in 0..self.held_len {
            let Some(f) = self.held[i].frame.take() else {
                continue;
            };
            let ok = !self.set.is_empty() && self.held[i].seen.is_superset_of(&self.set);
            if ok {
                let h = &self.held[i];
                let (key, ns, ts, at) = (h.key, h.num_samples, h.last_ts, h.at);
                self.counters.blocks_held_late += 1;
                self.emit(f, key, ns, ts, at, io);
            } else {
                let learning = self.held[i].learning;
                self.count_dropped(learning, false);
                io.give(f);
            }
        }
        self.held_len = 0;
    }

    fn emit(
        &mut self,
        mut frame: Arc<Frame>,
        key: i64,
        num_samples: usize,
        last_ts: Option<i64>,
        now: Instant,
        io: &mut dyn FrameIo,
    ) {
        let Some(f) = Arc::get_mut(&mut frame) else {
            // Unreachable by construction (see begin_data); never hand out a shared frame.
            self.counters.blocks_no_frame += 1;
            return;
        };
        self.seq += 1;
        f.seq = self.seq;
        f.sample_num = key;
        f.num_samples = num_samples;
        f.sample_rate = self.rate;
        f.channels.clear();
        f.channels.extend_from_slice(self.set.as_slice());
        f.layout_generation = self.generation;
        let mut disc = self.pending;
        if let Some(end) = self.last_emitted_end {
            if end != key {
                disc.gap = true;
            }
        }
        f.discontinuity = disc;
        self.pending = Discontinuity::default();
        self.last_emitted_end = Some(key.saturating_add(num_samples as i64));
        f.arrival = now;
        f.header_timestamp_ms = last_ts;
        if self.cfg.missing == MissingChannelPolicy::Hold && num_samples > 0 {
            for &c in self.set.as_slice() {
                self.last_vals[c as usize] = f.sample(c, num_samples - 1);
            }
        }
        self.counters.blocks_emitted += 1;
        io.emit(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    type Io = (Vec<Arc<Frame>>, Vec<Arc<Frame>>);

    fn io(n: usize) -> Io {
        (
            (0..n).map(|_| Arc::new(Frame::new(64, 64))).collect(),
            Vec::new(),
        )
    }

    fn asm() -> Assembler {
        Assembler::new(AssemblerConfig {
            max_channels: 64,
            max_block_samples: 64,
            ..Default::default()
        })
    }

    fn hdr(mn: i64, ch: i64, sample_num: i64, ns: i64) -> DataHeader<'static> {
        DataHeader {
            message_num: Some(mn),
            stream: Cow::Borrowed("example_data"),
            channel_num: ch,
            channel_name: None,
            num_samples: ns,
            sample_num,
            sample_rate: 30000.0,
            data_size: Some(ns * 4),
            timestamp: Some(1),
        }
    }

    /// Feeds one message whose values are `ch·1000 + sample index`.
    fn feed(a: &mut Assembler, io: &mut Io, h: &DataHeader<'_>) -> Result<(), Reject> {
        let now = Instant::now();
        a.observe_message_num(h.message_num, now, io);
        let row = a.begin_data(h, now, io)?;
        let vals: Vec<u8> = (0..h.num_samples)
            .flat_map(|j| ((h.channel_num * 1000 + h.sample_num + j) as f32).to_le_bytes())
            .collect();
        row.copy_from_slice(&vals);
        a.end_data(vals.len(), false, now, io)
            .map_err(Reject::Malformed)
    }

    /// Sends blocks of `ns` samples for `channels`, message_num continuing from `*mn`.
    fn blocks(
        a: &mut Assembler,
        io: &mut Io,
        mn: &mut i64,
        start: i64,
        n: usize,
        ns: i64,
        channels: &[i64],
    ) {
        for b in 0..n as i64 {
            for &c in channels {
                *mn += 1;
                let _ = feed(a, io, &hdr(*mn, c, start + b * ns, ns));
            }
        }
    }

    #[test]
    fn learns_set_then_emits_each_block_on_its_last_channel() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 4, &[0, 1, 2]);
        // Block 0 is held; block 1 agrees with it → set learned on block 1's last channel,
        // block 0 goes out first (late), then block 1 on time; block 2 on its last channel.
        assert_eq!(a.channel_set(), &[0, 1, 2]);
        let emitted: Vec<i64> = io.1.iter().map(|f| f.sample_num).collect();
        assert_eq!(emitted, vec![0, 4, 8]);
        assert_eq!(a.counters.blocks_learning, 0);
        assert_eq!(a.counters.blocks_held_late, 1);
        assert_eq!(io.1[0].row(1), &[1000.0, 1001.0, 1002.0, 1003.0]);
        assert!(io.1[0].discontinuity.layout);
        let f = &io.1[2];
        assert_eq!(f.channels, vec![0, 1, 2]);
        assert_eq!(f.row(2), &[2008.0, 2009.0, 2010.0, 2011.0]);
        assert!(!f.discontinuity.gap, "block 8 follows block 4");
    }

    #[test]
    fn first_partial_block_is_dropped_and_counted() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 10);
        // Joined mid-block: only channels 2, 3 of block 0.
        blocks(&mut a, &mut io, &mut mn, 0, 1, 2, &[2, 3]);
        blocks(&mut a, &mut io, &mut mn, 2, 4, 2, &[0, 1, 2, 3]);
        assert_eq!(a.channel_set(), &[0, 1, 2, 3]);
        // Block 0 (channels 2, 3 only) is genuinely incomplete; block 2 was held and is
        // confirmed by block 4.
        assert_eq!(a.counters.blocks_learning, 1);
        assert_eq!(
            io.1.iter().map(|f| f.sample_num).collect::<Vec<_>>(),
            vec![2, 4, 6, 8]
        );
    }

    #[test]
    fn sparse_channels() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 4, 3, &[0, 2, 5]);
        assert_eq!(a.channel_set(), &[0, 2, 5]);
        let f = io.1.last().unwrap();
        assert_eq!(f.row(5), &[5009.0, 5010.0, 5011.0]);
    }

    #[test]
    fn missing_channel_drops_block_without_stalling() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1, 2]);
        let before = io.1.len();
        // Block at 6 lacks channel 1 and no message_num gap explains it... but here it is a
        // one-off loss (the message is gone), so message_num skips: counted as upstream.
        mn += 1;
        feed(&mut a, &mut io, &hdr(mn, 0, 6, 2)).unwrap();
        mn += 2;
        feed(&mut a, &mut io, &hdr(mn, 2, 6, 2)).unwrap();
        blocks(&mut a, &mut io, &mut mn, 8, 2, 2, &[0, 1, 2]);
        assert_eq!(a.counters.blocks_incomplete_upstream, 1);
        assert_eq!(a.counters.upstream_missing_msgs, 1);
        assert_eq!(io.1.len(), before + 2);
        let f = &io.1[before];
        assert_eq!(f.sample_num, 8);
        assert!(
            f.discontinuity.gap,
            "group must restart after the dropped block"
        );
        assert_eq!(
            a.channel_set(),
            &[0, 1, 2],
            "an upstream loss does not re-learn"
        );
    }

    #[test]
    fn channel_removed_live_is_relearned() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1, 2]);
        blocks(&mut a, &mut io, &mut mn, 6, 4, 2, &[0, 2]);
        assert_eq!(a.channel_set(), &[0, 2]);
        assert_eq!(
            a.counters.blocks_incomplete, 0,
            "the first block after the edit is held, then confirmed by the re-learned set"
        );
        assert_eq!(
            io.1.iter().map(|f| f.sample_num).collect::<Vec<_>>(),
            vec![0, 2, 4, 6, 8, 10, 12],
            "every block, in order"
        );
        assert_eq!(a.counters.blocks_held_late, 2);
        let last = io.1.last().unwrap();
        assert_eq!(last.channels, vec![0, 2]);
        assert!(io
            .1
            .iter()
            .any(|f| f.discontinuity.layout && f.channels == vec![0, 2]));
    }

    #[test]
    fn channel_added_live_is_relearned_without_loss() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1]);
        let n0 = io.1.len();
        blocks(&mut a, &mut io, &mut mn, 6, 4, 2, &[0, 1, 3]);
        assert_eq!(a.channel_set(), &[0, 1, 3]);
        assert_eq!(io.1.len(), n0 + 4, "every block still went out");
        assert_eq!(io.1.last().unwrap().channels, vec![0, 1, 3]);
        assert!(a.counters.extra_channel_msgs >= 1);
    }

    #[test]
    fn restart_and_loop_are_detected() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 100, 3, 2, &[0, 1]);
        // File Reader loop: sample_num jumps back, message_num continues.
        blocks(&mut a, &mut io, &mut mn, 0, 2, 2, &[0, 1]);
        assert_eq!(a.counters.backward_jumps, 1);
        let f = io.1.iter().find(|f| f.sample_num == 0).unwrap();
        assert!(f.discontinuity.gap);
        // New acquisition: message_num resets to 1, sample_num continues (GUI 1.0.1).
        let mut mn2 = 0;
        blocks(&mut a, &mut io, &mut mn2, 4, 2, 2, &[0, 1]);
        assert_eq!(a.counters.restarts, 1);
        let f = io.1.iter().find(|f| f.sample_num == 4).unwrap();
        assert!(f.discontinuity.gap, "a new acquisition restarts the group");
        assert_eq!(io.1.last().unwrap().sample_num, 6);
    }

    #[test]
    fn stream_change_relearns() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1]);
        let mut mn2 = 0;
        for b in 0..3 {
            for c in [0, 1, 2, 3] {
                mn2 += 1;
                let mut h = hdr(mn2, c, b * 4, 4);
                h.stream = Cow::Borrowed("other");
                h.sample_rate = 40000.0;
                let _ = feed(&mut a, &mut io, &h);
            }
        }
        assert_eq!(a.counters.stream_changes, 1);
        assert_eq!(a.stream(), Some(("other", 40000.0)));
        let f = io.1.last().unwrap();
        assert_eq!(
            (f.channels.len(), f.sample_rate, f.num_samples),
            (4, 40000.0, 4)
        );
        assert!(io
            .1
            .iter()
            .any(|f| f.sample_rate == 40000.0 && f.discontinuity.layout));
    }

    #[test]
    fn bad_messages_are_counted_and_skipped() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1]);
        let now = Instant::now();
        assert_eq!(
            a.begin_data(&hdr(99, 0, 6, 0), now, &mut io).err(),
            Some(Reject::Malformed(Malformed::BadNumSamples))
        );
        assert_eq!(
            a.begin_data(&hdr(99, 0, 6, 65), now, &mut io).err(),
            Some(Reject::Malformed(Malformed::BadNumSamples))
        );
        assert_eq!(
            a.begin_data(&hdr(99, 64, 6, 2), now, &mut io).err(),
            Some(Reject::Malformed(Malformed::ChannelOutOfRange))
        );
        assert_eq!(
            a.begin_data(&hdr(99, -1, 6, 2), now, &mut io).err(),
            Some(Reject::Malformed(Malformed::ChannelOutOfRange))
        );
        let mut h = hdr(99, 0, 6, 2);
        h.sample_rate = f64::INFINITY;
        assert_eq!(
            a.begin_data(&h, now, &mut io).err(),
            Some(Reject::Malformed(Malformed::BadSampleRate))
        );
        // Wrong payload length: channel not marked, block cannot complete with it.
        mn += 1;
        a.observe_message_num(Some(mn), now, &mut io);
        a.begin_data(&hdr(mn, 0, 6, 2), now, &mut io).unwrap();
        assert_eq!(
            a.end_data(7, false, now, &mut io),
            Err(Malformed::PayloadLength)
        );
        // Resend correctly, then a duplicate.
        mn += 1;
        feed(&mut a, &mut io, &hdr(mn, 0, 6, 2)).unwrap();
        mn += 1;
        assert_eq!(
            feed(&mut a, &mut io, &hdr(mn, 0, 6, 2)),
            Err(Reject::Malformed(Malformed::DuplicateChannel))
        );
        mn += 1;
        feed(&mut a, &mut io, &hdr(mn, 1, 6, 2)).unwrap();
        assert_eq!(io.1.last().unwrap().sample_num, 6, "pipeline keeps going");
        assert_eq!(a.counters.malformed_total(), 7);
    }

    #[test]
    fn missing_channels_filled_with_nan_or_last_value() {
        for (policy, want) in [
            (MissingChannelPolicy::Nan, None),
            (MissingChannelPolicy::Hold, Some(1005.0f32)),
        ] {
            let mut a = Assembler::new(AssemblerConfig {
                max_channels: 64,
                max_block_samples: 64,
                missing: policy,
                ..Default::default()
            });
            let (mut io, mut mn) = (io(8), 0);
            blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1, 2]);
            // Block at 6: channel 1 lost upstream.
            mn += 1;
            feed(&mut a, &mut io, &hdr(mn, 0, 6, 2)).unwrap();
            mn += 2;
            feed(&mut a, &mut io, &hdr(mn, 2, 6, 2)).unwrap();
            blocks(&mut a, &mut io, &mut mn, 8, 1, 2, &[0, 1, 2]);
            let f =
                io.1.iter()
                    .find(|f| f.sample_num == 6)
                    .expect("block 6 sent");
            assert_eq!(f.row(0), &[6.0, 7.0]);
            match want {
                None => assert!(f.row(1).iter().all(|v| v.is_nan())),
                Some(v) => assert_eq!(f.row(1), &[v, v], "last value of channel 1 (sample 5)"),
            }
            assert_eq!((a.counters.blocks_filled, a.counters.rows_filled), (1, 1));
            assert_eq!(a.counters.blocks_incomplete_upstream, 0);
        }
    }

    #[test]
    fn fill_policy_learns_the_set_under_chronic_upstream_loss() {
        let mut a = Assembler::new(AssemblerConfig {
            max_channels: 64,
            max_block_samples: 64,
            missing: MissingChannelPolicy::Nan,
            ..Default::default()
        });
        let (mut io, mut mn) = (io(8), 0);
        // Every block loses one message upstream (a different channel each time).
        for b in 0..6i64 {
            for c in 0..4i64 {
                mn += 1;
                if c == b % 4 {
                    continue;
                }
                let _ = feed(&mut a, &mut io, &hdr(mn, c, b * 2, 2));
            }
        }
        assert_eq!(a.channel_set(), &[0, 1, 2, 3]);
        assert!(a.counters.blocks_filled >= 1, "{:?}", a.counters);
    }

    #[test]
    fn stop_does_not_fill_a_block_cut_off_mid_way() {
        let mut a = Assembler::new(AssemblerConfig {
            max_channels: 64,
            max_block_samples: 64,
            missing: MissingChannelPolicy::Nan,
            ..Default::default()
        });
        let (mut io, mut mn) = (io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1, 2]);
        let sent = io.1.len();
        mn += 1;
        feed(&mut a, &mut io, &hdr(mn, 0, 6, 2)).unwrap();
        a.flush(&mut io);
        assert_eq!(io.1.len(), sent);
        assert_eq!(a.counters.blocks_filled, 0);
    }

    #[test]
    fn duplicate_message_num_is_not_a_restart_and_stream_change_forgets_closed_key() {
        let (mut a, mut io) = (asm(), io(8));
        let now = Instant::now();
        a.observe_message_num(Some(5), now, &mut io);
        a.observe_message_num(Some(5), now, &mut io);
        assert_eq!(a.counters.restarts, 0);
        let mut mn = 5;
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1]);
        // A new stream whose first block has the sample_num the old stream's last block had.
        for b in 0..3 {
            for c in [0, 1] {
                mn += 1;
                let mut h = hdr(mn, c, 4 + b * 2, 2);
                h.stream = Cow::Borrowed("other");
                let _ = feed(&mut a, &mut io, &h);
            }
        }
        assert_eq!(a.counters.late_msgs, 0);
        assert_eq!(a.counters.stream_changes, 1);
    }

    #[test]
    fn deadline_drops_incomplete_block() {
        // A message_num gap inside the block: its missing channel was lost upstream.
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1]);
        mn += 1;
        feed(&mut a, &mut io, &hdr(mn, 0, 6, 2)).unwrap();
        a.observe_message_num(Some(mn + 5), Instant::now(), &mut io);
        let d = a.next_deadline().unwrap();
        a.poll(d, &mut io);
        assert_eq!(a.counters.blocks_incomplete_upstream, 1);
        assert_eq!(io.0.len(), 8 - io.1.len(), "frame returned to the pool");
        // Without message numbers (old plugins) the deadline is the only way to tell.
        let (mut a, mut io) = (asm(), self::tests::io(8));
        for b in 0..3 {
            for c in 0..2 {
                let mut h = hdr(0, c, b * 2, 2);
                h.message_num = None;
                feed(&mut a, &mut io, &h).unwrap();
            }
        }
        let mut h = hdr(0, 0, 6, 2);
        h.message_num = None;
        feed(&mut a, &mut io, &h).unwrap();
        let d = a.next_deadline().unwrap();
        a.poll(d, &mut io);
        assert_eq!(a.counters.blocks_incomplete, 1);
    }

    #[test]
    fn a_publisher_stalled_mid_block_is_waited_for() {
        // Gap-free message numbers: the rest of the block is on its way, however late.
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 2, &[0, 1]);
        let emitted = a.counters.blocks_emitted;
        mn += 1;
        feed(&mut a, &mut io, &hdr(mn, 0, 6, 2)).unwrap();
        assert_eq!(
            a.next_deadline(),
            a.last_activity.map(|t| t + a.cfg.data_timeout)
        );
        a.poll(Instant::now() + Duration::from_millis(500), &mut io);
        assert_eq!(a.counters.blocks_incomplete, 0);
        mn += 1;
        feed(&mut a, &mut io, &hdr(mn, 1, 6, 2)).unwrap();
        assert_eq!(a.counters.blocks_emitted, emitted + 1);
        // If the rest never comes, the data timeout closes the block and counts it.
        mn += 1;
        feed(&mut a, &mut io, &hdr(mn, 0, 8, 2)).unwrap();
        let t = a.next_deadline().unwrap();
        a.poll(t, &mut io);
        assert_eq!(a.counters.blocks_incomplete, 1);
        assert_eq!(a.counters.data_timeouts, 1);
    }

    #[test]
    fn pool_exhaustion_is_counted_not_fatal() {
        let (mut a, mut io, mut mn) = (asm(), io(2), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 6, 2, &[0, 1]);
        assert!(a.counters.blocks_no_frame > 0);
        io.0.append(&mut io.1);
        blocks(&mut a, &mut io, &mut mn, 12, 2, 2, &[0, 1]);
        assert_eq!(io.1.len(), 2);
    }

    #[test]
    fn message_num_wrap_is_not_a_restart() {
        let (mut a, mut io) = (asm(), io(4));
        let now = Instant::now();
        a.observe_message_num(Some(i32::MAX as i64), now, &mut io);
        a.observe_message_num(Some(i32::MIN as i64), now, &mut io);
        assert_eq!(
            (a.counters.restarts, a.counters.upstream_missing_msgs),
            (0, 0)
        );
        a.observe_message_num(Some(i32::MIN as i64 + 3), now, &mut io);
        assert_eq!(a.counters.upstream_missing_msgs, 2);
    }

    /// Emitted sample numbers.
    fn keys(io: &Io) -> Vec<i64> {
        io.1.iter().map(|f| f.sample_num).collect()
    }

    #[test]
    fn clean_start_loses_nothing_gui_blocks() {
        let mut a = Assembler::new(AssemblerConfig {
            max_channels: 64,
            max_block_samples: 1024,
            ..Default::default()
        });
        let mut io: Io = (
            (0..6).map(|_| Arc::new(Frame::new(64, 1024))).collect(),
            Vec::new(),
        );
        let mut mn = 0;
        blocks(
            &mut a,
            &mut io,
            &mut mn,
            0,
            5,
            696,
            &[0, 1, 2, 3, 4, 5, 6, 7],
        );
        assert_eq!(keys(&io), vec![0, 696, 1392, 2088, 2784]);
        assert_eq!(a.counters.blocks_learning, 0);
        assert_eq!(io.1[0].row(7)[695], (7000 + 695) as f32);
    }

    #[test]
    fn clean_start_loses_nothing_sparse_and_after_timeout() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 3, 16, &[1, 4, 9]);
        assert_eq!(keys(&io), vec![0, 16, 32]);
        // Pause longer than the data timeout: the set is forgotten and learned again, and
        // the first block after the pause is not lost either.
        let later = Instant::now() + Duration::from_secs(3);
        a.poll(later, &mut io);
        assert_eq!(a.counters.data_timeouts, 1);
        io.0.append(&mut io.1);
        let mut mn2 = 0;
        blocks(&mut a, &mut io, &mut mn2, 48, 3, 16, &[1, 4, 9]);
        assert_eq!(keys(&io), vec![48, 64, 80]);
        assert_eq!(a.counters.blocks_learning, 0);
        assert_eq!(a.counters.channel_set_changes, 2);
    }

    #[test]
    fn held_block_not_confirmed_is_counted_once() {
        let (mut a, mut io, mut mn) = (asm(), io(8), 0);
        // Block 0 has channels 0..3, then channel 3 is deselected: block 0 is a superset of
        // the learned set {0,1,2}, so it goes out with those rows.
        blocks(&mut a, &mut io, &mut mn, 0, 1, 2, &[0, 1, 2, 3]);
        blocks(&mut a, &mut io, &mut mn, 2, 3, 2, &[0, 1, 2]);
        assert_eq!(keys(&io), vec![0, 2, 4, 6]);
        assert_eq!(io.1[0].channels, vec![0, 1, 2]);
        // Joined mid-block (only the last channel of block 0): dropped as learning.
        let (mut a, mut io, mut mn) = (asm(), self::io(8), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 1, 2, &[1]);
        blocks(&mut a, &mut io, &mut mn, 2, 3, 2, &[0, 1]);
        // Block 0 ({1}) is not confirmed by the set {0, 1} learned at block 4: dropped, counted
        // once; block 2 (held: it disagreed with block 0) is confirmed and goes out first.
        assert_eq!(keys(&io), vec![2, 4, 6]);
        assert_eq!(a.counters.blocks_learning, 1);
    }

    #[test]
    fn hold_is_bounded_and_never_starves_the_pool() {
        // Channel sets that never agree: every block is held, the hold stays bounded, the
        // overflow is counted and the books balance.
        let (mut a, mut io, mut mn) = (asm(), io(HOLD_BLOCKS + 2), 0);
        for b in 0..10i64 {
            let chans: &[i64] = if b % 2 == 0 { &[0, 1] } else { &[2, 3] };
            blocks(&mut a, &mut io, &mut mn, b * 2, 1, 2, chans);
            assert!(a.held_blocks() <= HOLD_BLOCKS);
            let c = &a.counters;
            assert_eq!(
                c.blocks_opened,
                c.blocks_emitted
                    + c.blocks_incomplete
                    + c.blocks_learning
                    + c.blocks_no_frame
                    + a.held_blocks() as u64
                    + u64::from(a.has_open_block())
            );
        }
        assert!(a.counters.blocks_hold_overflow > 0);
        assert_eq!(
            a.counters.blocks_no_frame, 0,
            "held blocks yield their frames first"
        );
        a.flush(&mut io);
        assert_eq!(a.held_blocks(), 0);
        assert_eq!(io.0.len() + io.1.len(), HOLD_BLOCKS + 2);
    }

    #[test]
    fn tiny_pool_gives_up_held_block_for_a_new_one() {
        // Two frames: block 0 held, block 1 open, block 2 needs the held block's frame.
        let (mut a, mut io, mut mn) = (asm(), io(2), 0);
        blocks(&mut a, &mut io, &mut mn, 0, 1, 2, &[0, 1, 2]);
        blocks(&mut a, &mut io, &mut mn, 2, 1, 2, &[0, 1]);
        assert_eq!(a.held_blocks(), 1);
        blocks(&mut a, &mut io, &mut mn, 4, 1, 2, &[0]);
        assert_eq!(a.counters.blocks_hold_overflow, 1);
        assert_eq!(a.counters.blocks_no_frame, 0);
    }
}
