//! Sample mode (and whole batches) at F = 1 without DSP, encoded straight from the frame.
//!
//! A frame is channel-major (one ZeroMQ message per channel), an OSC sample message is one
//! row across the channels. The general path (`take_sample` → `emit_row` → `put_message`)
//! gathers one row with a stride of a whole channel (2 784 B for GUI blocks), copies it twice
//! and then byte-swaps it: ~2 ns per float in `cargo bench --bench encode -- output_pipeline`.
//! Here the datagrams of up to [`TILE`] consecutive rows are laid out in the arena first
//! (header bytes written once per row), then every channel's `TILE` consecutive samples (one
//! or two cache lines, read once) are byte-swapped into their slot in each of the tile's
//! datagrams. The bytes are exactly those of the general path (same header, same floats, same
//! order; `tests::tile_path_matches_the_general_path` compares the two for every header
//! option), only the order in which they are written differs.
//!
//! The frame was just written by the receiver on another core, so its lines are not in this
//! core's caches: each channel's lines for the next tile are requested (`Frame::prefetch`)
//! while the current tile is encoded, instead of one miss after another. In the bridge at
//! 1024 ch (`perf record -e cpu-clock -g -p <bridge pid> -- sleep 4` during
//! `--simulate 1024 --verify`, then `perf report --comm osc_tx_0`), that cut the encoder's
//! samples in `process` about 3.6 times, and `shard_frame_cost` p50 went from 2.1–3.3 to
//! 1.8–2.0 ms in 4 alternating runs each (`tools/ab.sh` with the bridges of 195384f^ and
//! 195384f, `1024 2`).
//!
//! `cargo bench --bench encode -- output_pipeline` (commit 02b49cd, idle VM, one run; 696-row
//! frames, a discarding transmitter, so hot caches and no prefetch effect), time per frame:
//!
//! | frame | this path | general path | ratio |
//! |---|---:|---:|---:|
//! | sample, 256 ch | 79.7 µs (0.45 ns/float) | 194.7 µs (1.09 ns/float) | 2.4× |
//! | sample, 1024 ch | 384 µs (0.54 ns/float) | 940 µs (1.32 ns/float) | 2.4× |
//! | batch 10, 256 ch | 108.9 µs | 311.9 µs | 2.9× |
//! | batch 10, 1024 ch | 412 µs | 1 605 µs | 3.9× |
//!
//! Rows go to the transmitter in whole GSO runs ([`Transmit::run_hint`]), so a 696-row block
//! at 256 ch leaves in 14 super-buffers (13 of 50 datagrams and one of 46) instead of 16. Batch and blob messages at F = 1
//! ([`OutputPipeline::batch_rows_direct`]) copy each channel's samples of a whole batch
//! straight from the frame, where they are already contiguous.

use super::osc::{self, MAX_UDP_PAYLOAD};
use super::{Addr, BundleMode, Mode, OutputPipeline, Transmit, NAN_COL, TRANSMIT_BATCH};
use crate::frame::Frame;
use std::time::Instant;

/// Rows encoded together: each channel contributes 16 consecutive samples (64 bytes).
pub(super) const TILE: usize = 16;

/// Bytes of tile datagrams kept below this, so that the rows being written stay in L1/L2.
const TILE_BYTES: usize = 48 * 1024;

impl OutputPipeline {
    /// Whether [`OutputPipeline::sample_rows_tiled`] applies to this output (it also checks the
    /// message size per frame).
    pub(super) fn tiled_eligible(&self) -> bool {
        self.fmt.mode == Mode::Sample && self.fmt.factor == 1 && self.tiled
    }

    /// Encodes every row of `f` (sample mode, F = 1, no DSP) as the general path would.
    /// Returns false, having done nothing, when a row does not fit one datagram (the general
    /// path then splits or refuses it, and counts that).
    pub(super) fn sample_rows_tiled(&mut self, f: &Frame, tx: &mut dyn Transmit) -> bool {
        let n = self.n;
        let ns = f.num_samples;
        let bundled = self.fmt.bundle != BundleMode::Off;
        let (_, ni) = self.sample_number_ints(0, &[]);
        let mut abuf = [0u8; 256];
        let alen = self.address(Addr::Sample, &mut abuf, b"");
        let bundle_head = if bundled { 20 } else { 0 };
        let ints_at = bundle_head + osc::osc_str_len(alen) + osc::osc_str_len(1 + ni + n);
        let floats_at = ints_at + 4 * ni;
        let total = floats_at + 4 * n;
        if total > self.fmt.max_datagram || total > MAX_UDP_PAYLOAD {
            return false;
        }
        // The header without time tag and ints, written once here and copied per row.
        let mut head = [0u8; 20 + 256 + 4];
        let tags_len = osc::osc_str_len(1 + ni + n);
        let fixed = {
            let mut p = 0;
            if bundled {
                head[..8].copy_from_slice(b"#bundle\0");
                head[16..20].copy_from_slice(&((total - 20) as u32).to_be_bytes());
                p = 20;
            }
            p += osc::put_str(&mut head[p..], &abuf[..alen]);
            p
        };
        let rows_per_tile = (TILE_BYTES / total).clamp(1, TILE);
        // Hand rows over in whole GSO super-buffers: flush at a multiple of the run length.
        let cap = (self.arena.len() / total).min(TRANSMIT_BATCH);
        let run = tx.run_hint(total).clamp(1, cap);
        let flush_at = cap / run * run;
        // The first tile's lines, all requested at once (the rest are requested a tile ahead).
        for &ch in &self.cols {
            if ch != NAN_COL {
                f.prefetch(ch, 0);
                f.prefetch(ch, TILE - 1);
            }
        }
        let mut j0 = 0;
        while j0 < ns {
            let mut room = flush_at
                .saturating_sub(self.dgrams.len())
                .min((self.arena.len() - self.arena_used) / total);
            if room == 0 {
                self.send_arena(tx);
                room = flush_at;
            }
            // The whole tile goes into one arena batch: no flush between reserving and filling.
            let t = rows_per_tile.min(ns - j0).min(room);
            let base = self.arena_used;
            self.arena_used += t * total;
            for r in 0..t {
                let j = j0 + r;
                self.row_end_j = j;
                let tag = self.row_timetag();
                let (ints, _) = self.sample_number_ints(f.sample_num.saturating_add(j as i64), &[]);
                let d = &mut self.arena[base + r * total..base + (r + 1) * total];
                d[..fixed].copy_from_slice(&head[..fixed]);
                if bundled {
                    d[8..16].copy_from_slice(&tag.to_be_bytes());
                }
                // Type tags: `,` `i`×ni `f`×n, NUL-padded.
                let tg = &mut d[fixed..fixed + tags_len];
                tg[0] = b',';
                tg[1..1 + ni].fill(b'i');
                tg[1 + ni..1 + ni + n].fill(b'f');
                tg[1 + ni + n..].fill(0);
                for (k, v) in ints[..ni].iter().enumerate() {
                    d[ints_at + 4 * k..ints_at + 4 * k + 4].copy_from_slice(&v.to_be_bytes());
                }
                self.dgrams.push(((base + r * total) as u32, total as u32));
            }
            let tile = &mut self.arena[base..base + t * total];
            // Four channels at a time: one 16-byte store per row instead of four 4-byte ones.
            let mut quads = self.cols.chunks_exact(4);
            let mut i = 0;
            for q in &mut quads {
                let at = floats_at + 4 * i;
                i += 4;
                if q.contains(&NAN_COL) {
                    for (k, &ch) in q.iter().enumerate() {
                        put_column(tile, total, at + 4 * k, f, ch, j0, t);
                    }
                    continue;
                }
                let next = j0 + t;
                for &ch in q {
                    f.prefetch(ch, next);
                    f.prefetch(ch, next + TILE - 1);
                }
                let s = [q[0], q[1], q[2], q[3]].map(|ch| &f.row(ch)[j0..j0 + t]);
                for (r, d) in tile.chunks_exact_mut(total).enumerate() {
                    let v = [s[0][r], s[1][r], s[2][r], s[3][r]].map(|x| x.to_bits().to_be());
                    d[at..at + 16].copy_from_slice(bytemuck::bytes_of(&v));
                }
            }
            for (k, &ch) in quads.remainder().iter().enumerate() {
                put_column(tile, total, floats_at + 4 * (i + k), f, ch, j0, t);
            }
            self.counters.datagrams += t as u64;
            self.counters.bytes += (t * total) as u64;
            self.counters.rows += t as u64;
            self.rows_total += t as u64;
            self.arena_rows_end = self.rows_total;
            j0 += t;
        }
        self.row_start = f.sample_num.saturating_add(ns as i64 - 1);
        true
    }
}

impl OutputPipeline {
    /// Whether [`OutputPipeline::batch_rows_direct`] applies (batch or blob mode, F = 1; the
    /// caller has ruled out lowpass and features).
    pub(super) fn batch_direct_eligible(&self) -> bool {
        matches!(self.fmt.mode, Mode::Batch | Mode::Blob) && self.fmt.factor == 1 && self.tiled
    }

    /// Batch and blob messages at F = 1, as the general path sends them: a batch carried over
    /// from the previous frame is finished row by row, every whole batch inside the frame is
    /// copied channel by channel (each channel's `batch_size` samples are contiguous in the
    /// frame, as in the message) instead of being gathered row by row and transposed back,
    /// and the remaining rows start the batch the next frame or the timer completes.
    pub(super) fn batch_rows_direct(&mut self, f: &Frame, now: Instant, tx: &mut dyn Transmit) {
        let ns = f.num_samples;
        let b = self.fmt.batch_size;
        let mut j = 0;
        while j < ns && self.batch_k > 0 {
            self.general_row(f, j, now, tx);
            j += 1;
        }
        while ns - j >= b {
            let n = self.n;
            self.scratch.clear();
            for &ch in &self.cols {
                if ch == NAN_COL {
                    self.scratch.extend(std::iter::repeat_n(f32::NAN, b));
                } else {
                    // The end of this channel's next batch, requested now (see `Frame::prefetch`).
                    f.prefetch(ch, j + 2 * b - 1);
                    self.scratch.extend_from_slice(&f.row(ch)[j..j + b]);
                }
            }
            self.counters.rows += b as u64;
            self.rows_total += b as u64;
            self.counters.batches += 1;
            self.row_end_j = j + b - 1;
            self.row_start = f.sample_num.saturating_add(self.row_end_j as i64);
            let first = f.sample_num.saturating_add(j as i64);
            let tag = self.row_timetag();
            if self.fmt.mode == Mode::Blob {
                let (ints, ni) = self.sample_number_ints(first, &[n as i32, b as i32]);
                self.put_message(tx, Addr::Blob, &ints[..ni], &[], n * b, true, tag);
            } else {
                let (ints, ni) = self.sample_number_ints(first, &[n as i32]);
                self.put_message(tx, Addr::Batch(b), &ints[..ni], &[], n * b, false, tag);
            }
            self.arena_rows_end = self.rows_total;
            j += b;
        }
        while j < ns {
            self.general_row(f, j, now, tx);
            j += 1;
        }
    }

    /// Row `j` of `f` through the general path (F = 1: every sample is a row).
    fn general_row(&mut self, f: &Frame, j: usize, now: Instant, tx: &mut dyn Transmit) {
        if self.take_sample(f, j) {
            self.row_end_j = j;
            self.emit_row(now, tx);
        }
    }
}

/// Writes samples `j0..j0 + t` of channel `ch` (NaN for [`NAN_COL`]) at byte `at` of each of
/// the tile's `t` datagrams of `total` bytes.
fn put_column(tile: &mut [u8], total: usize, at: usize, f: &Frame, ch: u32, j0: usize, t: usize) {
    if ch == NAN_COL {
        for d in tile.chunks_exact_mut(total) {
            d[at..at + 4].copy_from_slice(&f32::NAN.to_bits().to_be_bytes());
        }
        return;
    }
    f.prefetch(ch, j0 + t);
    f.prefetch(ch, j0 + t + TILE - 1);
    let src = &f.row(ch)[j0..j0 + t];
    for (d, v) in tile.chunks_exact_mut(total).zip(src) {
        d[at..at + 4].copy_from_slice(&v.to_bits().to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Discontinuity;
    use crate::output::OutputFormat;
    use std::time::Duration;

    #[derive(Default)]
    struct Capture {
        msgs: Vec<Vec<u8>>,
        /// Datagrams per `transmit` call.
        batches: Vec<usize>,
        blocks: usize,
        /// What `run_hint` answers (0 = like 1).
        run: usize,
    }
    impl Transmit for Capture {
        fn run_hint(&self, _len: usize) -> usize {
            self.run
        }
        fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
            self.batches.push(dgrams.len());
            for &(o, l) in dgrams {
                self.msgs.push(arena[o as usize..(o + l) as usize].to_vec());
            }
        }
        fn block_sent(&mut self, _: Instant, _: Option<i64>) {
            self.blocks += 1;
        }
    }

    /// A frame of channels `chans` (values distinct per channel and sample, some negative,
    /// one NaN and one infinity), `len` samples from `start`.
    fn frame(seq: u64, chans: &[u32], start: i64, len: usize, generation: u32) -> Frame {
        let mut f = Frame::new(64, 1024);
        f.seq = seq;
        f.sample_num = start;
        f.num_samples = len;
        f.channels = chans.to_vec();
        f.layout_generation = generation;
        f.sample_rate = 30_000.0;
        for &c in chans {
            for (k, v) in f.row_mut(c, len).iter_mut().enumerate() {
                *v = match (c, k) {
                    (3, 5) => f32::NAN,
                    (4, 7) => f32::NEG_INFINITY,
                    _ => (c as f32) * 1000.5 - (start as f32 + k as f32) * 0.25,
                };
            }
        }
        f
    }

    /// Frame 1 of channels 0..n, `len` samples from 0, sample k of channel c = c·1000 + k.
    fn wide_frame(n: u32, len: usize) -> Frame {
        let mut f = Frame::new(n as usize, len);
        f.seq = 1;
        f.num_samples = len;
        f.channels = (0..n).collect();
        f.layout_generation = 1;
        f.sample_rate = 30_000.0;
        f.discontinuity = Discontinuity::default();
        for c in 0..n {
            for (k, v) in f.row_mut(c, len).iter_mut().enumerate() {
                *v = (c as usize * 1000 + k) as f32;
            }
        }
        f
    }

    /// Runs the same frames through the tiled and the general path; returns both captures.
    fn both(fmt: &OutputFormat, frames: &[Frame]) -> [Capture; 2] {
        [true, false].map(|on| {
            let mut p = OutputPipeline::new(fmt.clone()).unwrap();
            p.set_tiled(on);
            assert_eq!(p.tiled_eligible() || p.batch_direct_eligible(), on);
            let mut c = Capture::default();
            for f in frames {
                p.process(f, Instant::now(), &mut c);
            }
            c
        })
    }

    /// Masks the time tag of a bundle (taken from the wall clock at each `process`).
    fn masked(m: &[u8]) -> Vec<u8> {
        let mut m = m.to_vec();
        if m.starts_with(b"#bundle\0") {
            m[8..16].fill(0);
        }
        m
    }

    /// Both paths sent the same datagrams (time tags masked) and reported the same blocks.
    fn assert_same(fast: &Capture, general: &Capture, fmt: &OutputFormat) {
        assert_eq!(fast.msgs.len(), general.msgs.len(), "{fmt:?}");
        for (k, (a, b)) in fast.msgs.iter().zip(&general.msgs).enumerate() {
            assert_eq!(masked(a), masked(b), "datagram {k} of {fmt:?}");
        }
        assert_eq!(fast.blocks, general.blocks, "{fmt:?}");
    }

    #[test]
    fn tile_path_matches_the_general_path() {
        let all: Vec<u32> = (0..40).collect();
        let frames = vec![
            frame(1, &all, 0, 37, 1),
            frame(2, &all, 37, 16, 1),
            frame(3, &all, 53, 1, 1),
            // A gap, then a new channel set.
            frame(4, &all, 900, 200, 1),
            frame(5, &[0, 3, 4, 9, 31], 1100, 40, 2),
        ];
        let base = OutputFormat {
            max_channels: 64,
            ..Default::default()
        };
        let variants = [
            base.clone(),
            OutputFormat {
                sample_number: true,
                ..base.clone()
            },
            OutputFormat {
                bundle: BundleMode::Immediate,
                sample_number: true,
                ..base.clone()
            },
            OutputFormat {
                bundle: BundleMode::SampleClock,
                ..base.clone()
            },
            // Sparse selection: missing channels are NaN slots.
            OutputFormat {
                selection: Some(vec![31, 3, 2, 60]),
                sparse: true,
                ..base.clone()
            },
            OutputFormat {
                selection: Some(vec![9, 4, 0]),
                base_address: "/a/much/longer/base/address".into(),
                ..base.clone()
            },
        ];
        for fmt in &variants {
            let [tiled, general] = both(fmt, &frames);
            assert_same(&tiled, &general, fmt);
            assert!(tiled.msgs.len() >= 294, "{fmt:?}");
            assert_eq!(tiled.blocks, frames.len());
            // Bundled rows: the time tags rise through a block, by the same steps as the general
            // path's (each path reads the wall clock once per frame, so only steps compare).
            if fmt.bundle == BundleMode::SampleClock {
                let tag = |m: &Vec<u8>| u64::from_be_bytes(m[8..16].try_into().unwrap()) as i64;
                for (a, b) in tiled.msgs[..37]
                    .windows(2)
                    .zip(general.msgs[..37].windows(2))
                {
                    let (sa, sb) = (tag(&a[1]) - tag(&a[0]), tag(&b[1]) - tag(&b[0]));
                    assert!(sa > 0);
                    // 1/30 000 s is 143 165.6 NTP fraction units (plus rounding through ns).
                    assert!(
                        (sa - sb).abs() <= 1 && (sa - 143_166).abs() <= 8,
                        "{sa} {sb}"
                    );
                }
            }
        }
    }

    #[test]
    fn batch_direct_matches_the_general_path() {
        let all: Vec<u32> = (0..40).collect();
        let frames = vec![
            frame(1, &all, 0, 37, 1),
            frame(2, &all, 37, 16, 1),
            frame(3, &all, 53, 1, 1),
            frame(4, &all, 54, 200, 1),
            // A gap (the carried batch is flushed first), then a new channel set.
            frame(5, &all, 900, 33, 1),
            frame(6, &[0, 3, 4, 9, 31], 933, 40, 2),
        ];
        let mut n = 0;
        for mode in [Mode::Batch, Mode::Blob] {
            for batch_size in [1, 7, 10, 16] {
                let base = OutputFormat {
                    mode,
                    batch_size,
                    max_channels: 64,
                    batch_timeout: Duration::from_secs(3600),
                    ..Default::default()
                };
                for fmt in [
                    base.clone(),
                    OutputFormat {
                        sample_number: true,
                        bundle: BundleMode::SampleClock,
                        ..base.clone()
                    },
                    OutputFormat {
                        selection: Some(vec![31, 3, 2, 60]),
                        sparse: true,
                        ..base.clone()
                    },
                    // 40 × 16 floats do not fit 1 000 B: split into parts.
                    OutputFormat {
                        max_datagram: 1000,
                        split: true,
                        sample_number: true,
                        ..base.clone()
                    },
                ] {
                    let [direct, general] = both(&fmt, &frames);
                    assert_same(&direct, &general, &fmt);
                    n += direct.msgs.len();
                }
            }
        }
        assert!(n > 1000);
    }

    #[test]
    fn rows_that_do_not_fit_a_datagram_take_the_general_path() {
        let all: Vec<u32> = (0..40).collect();
        let frames = [frame(1, &all, 0, 20, 1)];
        // 40 floats need 160 B of arguments + header: split into parts at 128 B.
        let fmt = OutputFormat {
            max_channels: 64,
            max_datagram: 128,
            split: true,
            ..Default::default()
        };
        let [tiled, general] = both(&fmt, &frames);
        assert_eq!(tiled.msgs, general.msgs);
        assert!(tiled.msgs.len() > 20);
        let mut p = OutputPipeline::new(fmt).unwrap();
        let mut c = Capture::default();
        p.process(&frames[0], Instant::now(), &mut c);
        assert_eq!(p.counters.split_messages, 20);
    }

    #[test]
    fn a_tile_is_never_cut_by_a_flush_and_batches_stay_bounded() {
        // 1000 channels: a row is 5 020 B, so a tile is 9 rows and the 1 MiB arena holds
        // 208 rows: the arena forces flushes, cutting tiles.
        let f = wide_frame(1000, 1000);
        let fmt = OutputFormat {
            max_channels: 1000,
            ..Default::default()
        };
        let [tiled, general] = both(&fmt, &[f]);
        assert_eq!(tiled.msgs, general.msgs);
        assert_eq!(tiled.msgs.len(), 1000);
        assert!(tiled.batches.iter().all(|&b| b <= TRANSMIT_BATCH));
        assert!(tiled.batches.len() > 3);
        // Row 999, channel 999: the last float of the last datagram.
        let last = tiled.msgs.last().unwrap();
        let v = f32::from_be_bytes(last[last.len() - 4..].try_into().unwrap());
        assert_eq!(v, 999_999.0);
    }

    #[test]
    fn rows_are_handed_over_in_whole_gso_runs() {
        // 1000 channels, 1000 rows of 5 020 B: the 1 MiB arena holds 208 rows = 13 GSO runs of
        // 16, so every flush but a block's last carries 208 rows.
        let mut f = wide_frame(1000, 1000);
        let fmt = OutputFormat {
            max_channels: 1000,
            ..Default::default()
        };
        let mut p = OutputPipeline::new(fmt).unwrap();
        let mut c = Capture {
            run: 16,
            ..Default::default()
        };
        p.process(&f, Instant::now(), &mut c);
        f.seq = 2;
        f.sample_num = 1000;
        p.process(&f, Instant::now(), &mut c);
        assert_eq!(c.msgs.len(), 2000);
        assert_eq!(
            c.batches,
            vec![208, 208, 208, 208, 168, 208, 208, 208, 208, 168]
        );
        // At 256 channels a 696-row block goes out in one call.
        let f = wide_frame(256, 696);
        let mut p = OutputPipeline::new(OutputFormat {
            max_channels: 256,
            ..Default::default()
        })
        .unwrap();
        let mut c = Capture {
            run: 50,
            ..Default::default()
        };
        p.process(&f, Instant::now(), &mut c);
        assert_eq!(c.batches, vec![696]);
    }
}
