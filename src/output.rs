//! One output stream: downsampling, batching and OSC encoding of frames into datagrams.
//!
//! This is the sans-IO heart of an encoder shard. It owns all its buffers (allocated in
//! [`OutputPipeline::new`]); processing a frame writes datagrams into a preallocated arena
//! and hands them to a [`Transmit`] in batches. Formats (spec §3.8, §4.1):
//!
//! * **sample** (`enable_batching` false): `{base}/sample` + N `f`, one message per output row;
//! * **batch**: `{base}/batch/<k>` + `i` N + N·k `f`, channel-major; a partial batch (timer
//!   after `batch_timeout_ms`, a channel-set change, or stop) carries its own k;
//! * **per-channel** (`send_individual_channels`): one `f` per channel and output row, at the
//!   address made from `channel_address_format` and the OE channel number.
//!
//! Downsampling by F (`average`: float32 sequential sum ÷ F, bit-exact with the original's
//! numpy mean; `decimate`: sample F−1 of each group) carries its group across frames and
//! restarts at any discontinuity.

use crate::config::DownsamplingMethod;
use crate::frame::Frame;
use crate::osc::{self, MAX_UDP_PAYLOAD};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Datagrams handed to [`Transmit::transmit`] at most per call (sendmmsg batch size).
pub const TRANSMIT_BATCH: usize = 256;

/// What the pipeline sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `{base}/sample` + N floats per output row.
    Sample,
    /// `{base}/batch/<k>` + `i` N + N·k floats, channel-major.
    Batch,
    /// One message per channel per output row, address from the channel template.
    PerChannel,
}

/// Format of one output.
#[derive(Debug, Clone)]
pub struct OutputFormat {
    /// Message layout.
    pub mode: Mode,
    /// `osc.base_address` (default `/data`).
    pub base_address: String,
    /// `osc.channel_address_format` (per-channel mode).
    pub channel_address_format: String,
    /// Downsampling factor F ≥ 1.
    pub factor: usize,
    /// Downsampling method.
    pub method: DownsamplingMethod,
    /// Rows per batch (batch mode).
    pub batch_size: usize,
    /// Partial-batch flush timeout.
    pub batch_timeout: Duration,
    /// Channel cap (buffer sizes).
    pub max_channels: usize,
}

/// Where datagrams go, and who hears that a block's output left.
pub trait Transmit {
    /// Sends `arena[off..off+len]` for each `(off, len)`, in order.
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]);
    /// The last datagram carrying output of a block that arrived at `arrival` has been sent.
    fn block_sent(&mut self, arrival: Instant, header_timestamp_ms: Option<i64>);
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
    /// Messages refused because they exceed the UDP limit (65 507 B).
    pub oversize: u64,
    /// Input samples (per channel) discarded from unfinished downsampling groups at a
    /// discontinuity or a channel-set change.
    pub group_samples_discarded: u64,
    /// Partial batches sent because the batch timeout passed.
    pub timer_flushes: u64,
    /// Partial batches sent because the channel set changed or the bridge stopped.
    pub forced_flushes: u64,
    /// Full batches sent.
    pub batches: u64,
}

/// Downsampling, batching, encoding. See the module doc.
pub struct OutputPipeline {
    fmt: OutputFormat,
    generation: Option<u32>,
    last_seq: u64,
    channels: Vec<u32>,
    n: usize,
    acc: Vec<f32>,
    pos: usize,
    row: Vec<f32>,
    batch: Vec<f32>,
    batch_k: usize,
    batch_started: Option<Instant>,
    sample_addr: Vec<u8>,
    batch_addr: Vec<u8>,
    hdr: Vec<u8>,
    chan_addrs: Vec<u8>,
    chan_off: Vec<(u32, u32)>,
    arena: Vec<u8>,
    dgrams: Vec<(u32, u32)>,
    rows_total: u64,
    arena_rows_end: u64,
    sent_rows: u64,
    fifo: VecDeque<(u64, Instant, Option<i64>)>,
    /// Counters (plain; the shard thread publishes them).
    pub counters: OutputCounters,
}

const FIFO_CAP: usize = 4096;

impl OutputPipeline {
    /// Allocates every buffer the pipeline will ever use.
    pub fn new(fmt: OutputFormat) -> Result<Self, String> {
        if fmt.factor == 0 || fmt.batch_size == 0 {
            return Err("downsampling factor and batch size must be ≥ 1".into());
        }
        if fmt.mode == Mode::PerChannel {
            osc::format_channel_address(&fmt.channel_address_format, 0)?;
        }
        let m = fmt.max_channels;
        let b = if fmt.mode == Mode::Batch {
            fmt.batch_size
        } else {
            1
        };
        let sample_addr = format!("{}/sample", fmt.base_address).into_bytes();
        let batch_addr = format!("{}/batch/", fmt.base_address).into_bytes();
        let largest = osc::message_len(batch_addr.len() + 20, 1, m * b, 4)
            .max(osc::message_len(sample_addr.len(), 0, m, 0))
            .min(MAX_UDP_PAYLOAD);
        let arena_cap = (1 << 20).max(2 * largest);
        Ok(OutputPipeline {
            generation: None,
            last_seq: 0,
            channels: Vec::with_capacity(m),
            n: 0,
            acc: vec![0.0; m],
            pos: 0,
            row: vec![0.0; m],
            batch: vec![0.0; m * b],
            batch_k: 0,
            batch_started: None,
            sample_addr,
            batch_addr,
            hdr: Vec::with_capacity(osc::message_len(64, 1, m, 4)),
            chan_addrs: Vec::with_capacity(m * 32),
            chan_off: Vec::with_capacity(m),
            arena: Vec::with_capacity(arena_cap),
            dgrams: Vec::with_capacity(TRANSMIT_BATCH),
            rows_total: 0,
            arena_rows_end: 0,
            sent_rows: 0,
            fifo: VecDeque::with_capacity(FIFO_CAP),
            counters: OutputCounters::default(),
            fmt,
        })
    }

    /// The format.
    pub fn format(&self) -> &OutputFormat {
        &self.fmt
    }

    /// Channels of the current layout.
    pub fn channels(&self) -> &[u32] {
        &self.channels
    }

    /// Processes one frame and sends what it produces (partial batches wait for their
    /// timer; see [`OutputPipeline::poll`]).
    pub fn process(&mut self, f: &Frame, now: Instant, tx: &mut dyn Transmit) {
        let seq_gap = self.last_seq != 0 && f.seq != self.last_seq + 1;
        if seq_gap && f.seq > self.last_seq {
            self.counters.frames_skipped += f.seq - self.last_seq - 1;
        }
        self.last_seq = f.seq;
        if self.generation != Some(f.layout_generation) || f.discontinuity.layout {
            self.flush_batch(now, tx, false);
            self.reset_group();
            self.set_layout(f);
        } else if f.discontinuity.gap || seq_gap {
            self.reset_group();
        }
        self.counters.frames += 1;
        let n = self.n;
        let factor = self.fmt.factor;
        for j in 0..f.num_samples {
            if factor == 1 {
                for (i, &ch) in self.channels.iter().enumerate() {
                    self.row[i] = f.sample(ch, j);
                }
            } else {
                match self.fmt.method {
                    DownsamplingMethod::Average => {
                        if self.pos == 0 {
                            for (i, &ch) in self.channels.iter().enumerate() {
                                self.acc[i] = f.sample(ch, j);
                            }
                        } else {
                            for (i, &ch) in self.channels.iter().enumerate() {
                                self.acc[i] += f.sample(ch, j);
                            }
                        }
                    }
                    DownsamplingMethod::Decimate => {
                        if self.pos == factor - 1 {
                            for (i, &ch) in self.channels.iter().enumerate() {
                                self.acc[i] = f.sample(ch, j);
                            }
                        }
                    }
                }
                self.pos += 1;
                if self.pos < factor {
                    continue;
                }
                self.pos = 0;
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
        if self.fmt.mode == Mode::Batch && self.batch_due(now) {
            self.counters.timer_flushes += 1;
            self.flush_batch(now, tx, true);
        }
        self.send_arena(tx);
    }

    /// Timer work: flushes a partial batch whose timeout passed. Returns when to call again.
    pub fn poll(&mut self, now: Instant, tx: &mut dyn Transmit) -> Option<Instant> {
        if self.fmt.mode == Mode::Batch && self.batch_due(now) {
            self.counters.timer_flushes += 1;
            self.flush_batch(now, tx, true);
            self.send_arena(tx);
        }
        self.batch_started.map(|t| t + self.fmt.batch_timeout)
    }

    /// Flushes everything pending (partial batch) at stop.
    pub fn finish(&mut self, now: Instant, tx: &mut dyn Transmit) {
        self.flush_batch(now, tx, false);
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
        self.channels.clear();
        self.channels.extend_from_slice(&f.channels);
        self.n = self.channels.len();
        let n = self.n;
        // Sample-mode header: address + type tags are fixed for a channel count.
        self.hdr.clear();
        if self.fmt.mode == Mode::Sample {
            let len = osc::osc_str_len(self.sample_addr.len()) + osc::osc_str_len(1 + n);
            self.hdr.resize(len, 0);
            let k = osc::put_str(&mut self.hdr, &self.sample_addr);
            osc::put_tags(&mut self.hdr[k..], b"", n);
        }
        if self.fmt.mode == Mode::PerChannel {
            self.chan_addrs.clear();
            self.chan_off.clear();
            for &ch in &self.channels {
                // Validated at construction; cannot fail here.
                let a = osc::format_channel_address(&self.fmt.channel_address_format, ch)
                    .unwrap_or_default();
                let off = self.chan_addrs.len();
                let len = osc::osc_str_len(a.len());
                self.chan_addrs.resize(off + len, 0);
                osc::put_str(&mut self.chan_addrs[off..], a.as_bytes());
                self.chan_off.push((off as u32, len as u32));
            }
        }
    }

    fn emit_row(&mut self, now: Instant, tx: &mut dyn Transmit) {
        self.counters.rows += 1;
        self.rows_total += 1;
        let n = self.n;
        match self.fmt.mode {
            Mode::Sample => {
                let len = self.hdr.len() + 4 * n;
                if let Some(s) = self.reserve(len, tx) {
                    let buf = &mut self.arena[s..s + len];
                    let h = self.hdr.len();
                    buf[..h].copy_from_slice(&self.hdr);
                    osc::put_floats(&mut buf[h..], &self.row[..n]);
                }
                self.arena_rows_end = self.rows_total;
            }
            Mode::PerChannel => {
                for i in 0..n {
                    let (off, alen) = self.chan_off[i];
                    let len = alen as usize + 8;
                    let v = self.row[i];
                    let Some(s) = self.reserve(len, tx) else {
                        continue;
                    };
                    let buf = &mut self.arena[s..s + len];
                    let a = alen as usize;
                    buf[..a].copy_from_slice(&self.chan_addrs[off as usize..off as usize + a]);
                    buf[a..a + 4].copy_from_slice(b",f\0\0");
                    buf[a + 4..a + 8].copy_from_slice(&v.to_bits().to_be_bytes());
                }
                self.arena_rows_end = self.rows_total;
            }
            Mode::Batch => {
                let k = self.batch_k;
                self.batch[k * n..(k + 1) * n].copy_from_slice(&self.row[..n]);
                if k == 0 {
                    self.batch_started = Some(now);
                }
                self.batch_k += 1;
                if self.batch_k == self.fmt.batch_size {
                    self.counters.batches += 1;
                    self.flush_batch(now, tx, false);
                }
            }
        }
    }

    /// Encodes the rows held in the batch buffer as one `/batch/<k>` message.
    fn flush_batch(&mut self, _now: Instant, tx: &mut dyn Transmit, timer: bool) {
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
        let mut digits = [0u8; 20];
        let kd = osc::itoa(k as u64, &mut digits);
        let addr_len = self.batch_addr.len() + kd.len();
        let len = osc::message_len(addr_len, 1, n * k, 4);
        let mut addr = [0u8; 128];
        let a = self.batch_addr.len().min(addr.len() - 20);
        addr[..a].copy_from_slice(&self.batch_addr[..a]);
        addr[a..a + kd.len()].copy_from_slice(kd);
        let alen = a + kd.len();
        if let Some(s) = self.reserve(len, tx) {
            let buf = &mut self.arena[s..s + len];
            let mut p = osc::put_str(buf, &addr[..alen]);
            p += osc::put_tags(&mut buf[p..], b"i", n * k);
            buf[p..p + 4].copy_from_slice(&(n as i32).to_be_bytes());
            p += 4;
            // Channel-major: ch0 s1…sk, ch1 s1…sk, …
            for i in 0..n {
                for r in 0..k {
                    let v = self.batch[r * n + i];
                    buf[p..p + 4].copy_from_slice(&v.to_bits().to_be_bytes());
                    p += 4;
                }
            }
            debug_assert_eq!(p, len);
        }
        self.arena_rows_end = self.rows_total;
    }

    /// Room for one datagram of `len` bytes at the end of the arena (flushing first when
    /// full). `None` (counted) when the message exceeds the UDP limit.
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
            base_address: "/data".into(),
            channel_address_format: "/ch{:03d}".into(),
            factor,
            method,
            batch_size: batch,
            batch_timeout: Duration::from_secs(1),
            max_channels: 8,
        }
    }

    /// Frame with values `c·1000 + j` for channels 0..n, samples `start..start+len`.
    fn frame(seq: u64, n: u32, start: usize, len: usize) -> Box<Frame> {
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
