//! The pipeline's frame path: a frame's rows (downsampled), sample/per-channel messages or
//! batches, timers (partial batches, status), block-sent notifications, stop.

use super::osc::{self, MAX_UDP_PAYLOAD};
use super::*;
use crate::frame::Frame;
use std::time::Duration;

impl OutputPipeline {
    /// Allocates every buffer the pipeline will ever use.
    pub fn new(fmt: OutputFormat) -> Result<Self, String> {
        Self::with_layout(fmt, None)
    }

    /// Like [`OutputPipeline::new`], reading stream and channel names from `layout` when the
    /// channel set changes (for per-channel address templates and notices).
    pub fn with_layout(
        fmt: OutputFormat,
        layout: Option<Arc<LayoutBoard>>,
    ) -> Result<Self, String> {
        if fmt.factor == 0 || fmt.batch_size == 0 {
            return Err("downsampling factor and batch size must be ≥ 1".into());
        }
        if fmt.base_address.len() > 200 {
            return Err("base address longer than 200 bytes".into());
        }
        let per_channel = fmt.mode == Mode::PerChannel;
        let address_templates = if per_channel {
            spec::channel_templates(&fmt)?
                .iter()
                .map(|t| AddressTemplate::compile(t))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            Vec::new()
        };
        let per_addr = address_templates.len().max(1);
        if fmt.max_datagram < 64 || fmt.max_datagram > MAX_UDP_PAYLOAD {
            return Err(format!("max datagram must be 64..={MAX_UDP_PAYLOAD} bytes"));
        }
        let m = fmt.max_channels;
        let b = match fmt.mode {
            Mode::Batch | Mode::Blob => fmt.batch_size,
            _ => 1,
        };
        let base = &fmt.base_address;
        let mut addr_features = Vec::new();
        let mut feat_off = Vec::new();
        if let Some(fc) = &fmt.features {
            for feat in &fc.features {
                let a = format!("{base}/features/{}", spec::feature_address_name(feat));
                if a.len() > MAX_ADDRESS {
                    return Err(format!(
                        "feature address '{a}' longer than {MAX_ADDRESS} bytes"
                    ));
                }
                feat_off.push((addr_features.len() as u32, a.len() as u32));
                addr_features.extend_from_slice(a.as_bytes());
            }
        }
        let slots = match (&fmt.selection, fmt.sparse) {
            (Some(sel), false) => sel.len(),
            (Some(sel), true) => sel
                .iter()
                .map(|&c| c as usize + 1)
                .max()
                .unwrap_or(1)
                .min(m),
            (None, _) => m,
        };
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
            // Every channel's address at its longest: a layout change never grows these.
            chan_addrs: Vec::with_capacity(if per_channel {
                per_addr * m * MAX_ADDRESS
            } else {
                0
            }),
            chan_off: Vec::with_capacity(if per_channel { per_addr * m } else { 0 }),
            // Unit tests start from garbage too (see `send_arena`).
            arena: vec![if cfg!(test) { 0xA5 } else { 0 }; arena_cap],
            arena_used: 0,
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
            layout_copy: LayoutCopy::new(m, per_channel),
            address_templates,
            stream: String::with_capacity(layout::STREAM_CAP),
            dsp: dsp::DspState::new(slots),
            addr_features,
            feat_off,
            counters: OutputCounters::default(),
            tiled: true,
            fmt,
        })
    }

    /// Turns the paths that encode straight from the frame at F = 1 (`tile`: tiled sample
    /// rows, whole batches) on or off (on by default). Off, every row takes the general path;
    /// the bytes are the same either way. For benchmarks and tests that compare the two.
    pub fn set_tiled(&mut self, on: bool) {
        self.tiled = on;
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
        if !self.dsp_ready(f) {
            self.counters.dsp_unsupported += 1;
            self.send_arena(tx);
            return;
        }
        if self.generation != Some(f.layout_generation) || f.discontinuity.layout {
            self.flush_batch(tx, false);
            self.reset_group();
            self.set_layout(f);
            self.dsp_layout();
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
        if self.fmt.features.is_some() {
            self.process_features(f, tx);
        } else if self.lowpass() {
            self.process_lowpass(f, now, tx);
        } else if self.tiled_eligible() && self.sample_rows_tiled(f, tx) {
            // Every row encoded straight from the frame (`tile`).
        } else if self.batch_direct_eligible() {
            self.batch_rows_direct(f, now, tx);
        } else {
            for j in 0..f.num_samples {
                if !self.take_sample(f, j) {
                    continue;
                }
                self.row_end_j = j;
                self.emit_row(now, tx);
            }
        }
        // The block is fully out once the row holding its last sample is sent.
        let target = self.rows_total + self.rows_owed();
        if target > self.sent_rows {
            if self.fifo.len() == FIFO_CAP {
                self.fifo.pop_front();
            }
            self.fifo
                .push_back((target, f.arrival, f.header_timestamp_ms));
        }
        self.timer_work(now, tx);
    }

    /// Timer work: flushes a partial batch whose timeout passed, sends the status message.
    /// Returns when to call again.
    pub fn poll(&mut self, now: Instant, tx: &mut dyn Transmit) -> Option<Instant> {
        self.timer_work(now, tx);
        let batch = self.batch_started.map(|t| t + self.fmt.batch_timeout);
        match (batch, self.next_status) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A partial batch whose timeout passed, a status message that is due; then everything
    /// waiting in the arena goes out.
    fn timer_work(&mut self, now: Instant, tx: &mut dyn Transmit) {
        if matches!(self.fmt.mode, Mode::Batch | Mode::Blob) && self.batch_due(now) {
            self.counters.timer_flushes += 1;
            self.flush_batch(tx, true);
        }
        if self.fmt.status {
            self.status_due(now, tx);
        }
        self.send_arena(tx);
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

    fn reset_group(&mut self) {
        self.dsp_reset();
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

    pub(super) fn emit_row(&mut self, now: Instant, tx: &mut dyn Transmit) {
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
    pub(super) fn row_timetag(&self) -> u64 {
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
    pub(super) fn sample_number_ints(&self, sample: i64, prefix: &[i32]) -> ([i32; 8], usize) {
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
}
