//! The DSP outputs: `downsampling_method: "lowpass"` (a [`Decimator`] before keeping one
//! row per F input samples) and `"format": "features"` (a [`FeatureExtractor`] sending one
//! message per feature `feature_rate` times a second).
//!
//! **Allocation.** The objects are designed for the stream's sample rate, which is known
//! only when the first frame arrives: they are built then (lazily, on the shard, before the
//! steady state), sized for every column the output can ever have (the selection's length,
//! the highest sparse slot + 1, or `performance.max_channels`), and rebuilt only when the
//! rate changes. A channel-set change at the same rate only resets them
//! ([`Decimator::reset`], [`FeatureExtractor::set_channels`]): no allocation. The decimator
//! holds `2·L` floats per slot (L taps, see the README's table), the extractor its windows.
//!
//! **State.** Column `i` of the layout is slot `i` of both objects. State carries across
//! frames and is reset wherever the pipeline resets its downsampling groups: a gap, a frame
//! dropped by the queue policy (a `seq` gap), a restart, a channel-set change.
//!
//! **Rows.** Lowpass rows fall where `decimate` rows fall (input F−1 of each group) and
//! carry the group's first input sample as their sample number; a block counts as out
//! ([`super::Transmit::block_sent`], `block_to_output`) once the row whose filter is centred
//! on its last sample is sent, so the filter's group delay shows there. A features message
//! carries the last input sample of its window as sample number.
//!
//! A rate the objects cannot be designed for (e.g. a band above 0.45·fs) sends nothing and
//! counts every frame in [`super::OutputCounters::dsp_unsupported`].

use super::{Addr, Mode, OutputPipeline, Transmit, NAN_COL};
use crate::config::DownsamplingMethod;
use crate::dsp::features::FeatureExtractor;
use crate::dsp::fir::Decimator;
use crate::frame::Frame;
use std::time::Instant;

/// Input samples fed to the decimator per call (bounds the output scratch).
const CHUNK: usize = 4096;

/// The output's DSP objects and their scratch.
#[derive(Default)]
pub(super) struct DspState {
    /// Rate the objects were built for (0: not built).
    rate: f64,
    /// Rate a build failed for (not retried on every frame).
    failed_rate: f64,
    /// Slots the objects are built with.
    slots: usize,
    dec: Option<Decimator>,
    fx: Option<FeatureExtractor>,
    /// `slots × stride` decimator outputs.
    lp_out: Vec<f32>,
    stride: usize,
    /// Feature values of one tick (`features × slots`).
    values: Vec<f32>,
    /// Per column, the channel fed to the extractor (a sparse NaN column reads a present
    /// channel and its values are replaced by NaN).
    src: Vec<u32>,
    /// Samples fed since the last feature tick.
    pending: bool,
    /// Group delay of the decimator, whole input samples.
    delay: usize,
}

impl DspState {
    /// Empty state for an output with at most `slots` columns.
    pub(super) fn new(slots: usize) -> Self {
        DspState {
            slots,
            src: Vec::with_capacity(slots),
            ..Default::default()
        }
    }
}

impl OutputPipeline {
    /// True when this output filters before decimating.
    pub(super) fn lowpass(&self) -> bool {
        self.fmt.features.is_none()
            && self.fmt.method == DownsamplingMethod::Lowpass
            && self.fmt.factor > 1
    }

    /// The filter's group delay in seconds (0 when this output does not filter or before
    /// the first frame).
    pub fn group_delay_seconds(&self) -> f64 {
        self.dsp
            .dec
            .as_ref()
            .map_or(0.0, |d| d.group_delay_seconds())
    }

    /// Builds the DSP objects for `f`'s rate if needed. False when they cannot be built for
    /// it (the frame is then counted and skipped). A (re)build forces a layout change.
    pub(super) fn dsp_ready(&mut self, f: &Frame) -> bool {
        let need_dec = self.lowpass();
        let need_fx = self.fmt.features.is_some();
        if !(need_dec || need_fx) {
            return true;
        }
        if !(f.sample_rate.is_finite() && f.sample_rate > 0.0) {
            // Nothing can be designed for it (and no error text is built on the shard).
            return false;
        }
        if self.dsp.rate == f.sample_rate {
            return true;
        }
        if self.dsp.failed_rate == f.sample_rate {
            return false;
        }
        let d = &mut self.dsp;
        let slots = d.slots;
        let built = (|| {
            let dec = if need_dec {
                Some(Decimator::new(
                    f.sample_rate,
                    self.fmt.factor as u32,
                    slots,
                )?)
            } else {
                None
            };
            let fx = match &self.fmt.features {
                Some(cfg) => Some(FeatureExtractor::new(cfg, f.sample_rate, slots)?),
                None => None,
            };
            Ok::<_, crate::dsp::DspError>((dec, fx))
        })();
        match built {
            Ok((dec, fx)) => {
                d.stride = CHUNK / self.fmt.factor.max(1) + 1;
                d.lp_out = if dec.is_some() {
                    vec![0.0; slots * d.stride]
                } else {
                    Vec::new()
                };
                d.delay = dec.as_ref().map_or(0, |x| (x.num_taps() - 1) / 2);
                d.values = fx
                    .as_ref()
                    .map_or_else(Vec::new, |x| vec![0.0; x.values_len()]);
                d.dec = dec;
                d.fx = fx;
                d.rate = f.sample_rate;
                d.failed_rate = 0.0;
                d.pending = false;
                // New objects: take the layout again (columns → slots).
                self.generation = None;
                true
            }
            Err(_) => {
                d.dec = None;
                d.fx = None;
                d.rate = 0.0;
                d.failed_rate = f.sample_rate;
                false
            }
        }
    }

    /// Maps the new columns onto the slots and forgets all signal state (end of
    /// `set_layout`; no allocation).
    pub(super) fn dsp_layout(&mut self) {
        let d = &mut self.dsp;
        if let Some(fx) = &mut d.fx {
            // set_layout never makes more columns than slots.
            let _ = fx.set_channels(self.n.min(d.slots));
        }
        d.src.clear();
        let present = self.cols.iter().copied().find(|&c| c != NAN_COL);
        for &c in &self.cols {
            d.src.push(if c == NAN_COL {
                present.unwrap_or(0)
            } else {
                c
            });
        }
        self.dsp_reset();
    }

    /// Forgets all signal state (gap, restart, channel-set change).
    pub(super) fn dsp_reset(&mut self) {
        if let Some(dec) = &mut self.dsp.dec {
            dec.reset();
        }
        if let Some(fx) = &mut self.dsp.fx {
            fx.reset();
        }
        self.dsp.pending = false;
    }

    /// Rows that must still be sent before every sample of the last frame is out.
    pub(super) fn rows_owed(&self) -> u64 {
        if self.fmt.features.is_some() {
            u64::from(self.dsp.pending)
        } else if self.lowpass() {
            // The row centred on the last sample: `delay` inputs after it.
            (self.pos + self.dsp.delay).div_ceil(self.fmt.factor) as u64
        } else {
            u64::from(self.pos > 0)
        }
    }

    /// Lowpass path of a frame: filter each column, emit the rows it completes.
    pub(super) fn process_lowpass(&mut self, f: &Frame, now: Instant, tx: &mut dyn Transmit) {
        let mut d = std::mem::take(&mut self.dsp);
        if let Some(dec) = d.dec.as_mut() {
            let fac = self.fmt.factor;
            let n = f.num_samples;
            let stride = d.stride;
            let mut a = 0;
            while a < n {
                let b = n.min(a + CHUNK);
                let phase = self.pos;
                let slots = dec.channels();
                for (i, &ch) in self.cols.iter().enumerate().take(slots) {
                    if ch != NAN_COL {
                        dec.process(
                            i,
                            &f.row(ch)[a..b],
                            &mut d.lp_out[i * stride..(i + 1) * stride],
                        );
                    }
                }
                // Every column is in the same phase (all reset together).
                let k = (phase + b - a) / fac;
                for r in 0..k {
                    let j = a + (fac - 1 - phase) + r * fac;
                    self.row_start = if r == 0 && phase > 0 {
                        self.group_start
                    } else {
                        f.sample_num.saturating_add((j + 1 - fac) as i64)
                    };
                    for i in 0..self.n {
                        self.row[i] = if self.cols[i] == NAN_COL || i >= slots {
                            f32::NAN
                        } else {
                            d.lp_out[i * stride + r]
                        };
                    }
                    self.row_end_j = j;
                    self.emit_row(now, tx);
                }
                let pos = (phase + b - a) % fac;
                if pos > 0 && (k > 0 || phase == 0) {
                    self.group_start = f.sample_num.saturating_add((b - pos) as i64);
                }
                self.pos = pos;
                a = b;
            }
        }
        self.dsp = d;
    }

    /// Features path of a frame: feed every column, send each tick's messages.
    pub(super) fn process_features(&mut self, f: &Frame, tx: &mut dyn Transmit) {
        let mut d = std::mem::take(&mut self.dsp);
        if let (Some(fx), true) = (d.fx.as_mut(), self.n > 0) {
            let n = f.num_samples;
            let vl = fx.values_len();
            let src = &d.src;
            let mut last = None;
            fx.process(
                n,
                |i| f.row(src[i]),
                &mut d.values[..vl],
                |off, v| {
                    last = Some(off);
                    self.emit_features(f, off, v, tx);
                },
            );
            d.pending = match last {
                Some(off) => off < n,
                None => d.pending || n > 0,
            };
        }
        self.dsp = d;
    }

    /// One tick: one message per feature, `{base}/features/<name>` + one float per column.
    fn emit_features(&mut self, f: &Frame, off: usize, v: &[f32], tx: &mut dyn Transmit) {
        // The extractor's channel count (the columns, unless they exceeded the slots).
        let nf = self.feat_off.len().max(1);
        let n = v.len() / nf;
        self.counters.rows += 1;
        self.rows_total += 1;
        self.row_end_j = off.saturating_sub(1);
        let tag = self.row_timetag();
        let last = f.sample_num.saturating_add(off as i64 - 1);
        let (ints, ni) = self.sample_number_ints(last, &[]);
        if self.fmt.mode == Mode::PerChannel {
            // `address` with `{feature}`: one message per feature and channel.
            for fi in 0..nf {
                for i in 0..n.min(self.cols.len()) {
                    self.scratch.clear();
                    self.scratch.push(if self.cols[i] == NAN_COL {
                        f32::NAN
                    } else {
                        v[fi * n + i]
                    });
                    let a = Addr::Channel(fi * self.n + i);
                    self.put_message(tx, a, &ints[..ni], &[], 1, false, tag);
                }
            }
            self.arena_rows_end = self.rows_total;
            return;
        }
        for fi in 0..nf {
            self.scratch.clear();
            self.scratch.extend_from_slice(&v[fi * n..(fi + 1) * n]);
            for i in 0..n.min(self.cols.len()) {
                if self.cols[i] == NAN_COL {
                    self.scratch[i] = f32::NAN;
                }
            }
            self.put_message(tx, Addr::Feature(fi), &ints[..ni], &[], n, false, tag);
        }
        self.arena_rows_end = self.rows_total;
    }
}
