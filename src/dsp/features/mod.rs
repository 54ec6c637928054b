//! Control-rate features of every channel (`"format": "features"`).
//!
//! A [`FeatureExtractor`] emits, `feature_rate` times per second (default 60), one value per
//! feature and channel computed over a sliding window of `feature_window_ms` (default
//! 250 ms):
//!
//! | name | value over the window |
//! |---|---|
//! | `rms` | √(mean x²) |
//! | `peak` | max \|x\| |
//! | `mean` | mean x |
//! | `line_length` | Σ \|x\[i\] − x\[i−1\]\| (not divided by the length) |
//! | `band:<name>`, `band:<lo>-<hi>` | mean square of the band-passed signal |
//! | `mua_rate` | threshold crossings per second |
//!
//! Named bands: delta 1–4, theta 4–8, alpha 8–12, beta 13–30, gamma 30–80, high_gamma
//! 80–200 Hz.
//!
//! **Windows without drift or allocation.** The window is kept as the last K per-tick blocks
//! (K = `round(feature_window_ms · feature_rate / 1000)`, at least 1; 250 ms at 60 Hz is 15
//! ticks). Each block holds exact partial sums of its own samples; a tick closes the current
//! block into a ring of K and combines the K blocks (O(K) per value, no running sum that
//! could drift, nothing to recompute). Until K ticks have passed after a reset the window is
//! shorter (values are over the samples seen). Ticks fall at samples `round(k · fs / rate)`
//! after the reset, so `rate × duration` values come out, whatever the block sizes.
//!
//! **Band power.** Each band first goes through an anti-alias [`Decimator`] by
//! `D = clamp(⌊fs / (10·hi)⌋, 1, 1000)` (pass edge `hi`, 60 dB on everything folding onto
//! `0..hi`), then through a Butterworth band-pass of order 12 ([`Cascade::bandpass`], six
//! `biquad` sections in f64) at `fs/D`. So the sections never run at 30 kHz (a pole pair at
//! 1 Hz there is numerically delicate) and the order-12 slopes put a 10 Hz tone ≥ 20 dB
//! lower in `beta` than in `alpha` for the cost of a few operations per 100 input samples.
//!
//! **`mua_rate`.** The signal is high-passed (`mua_highpass_hz`, default 300 Hz, 4th-order
//! Butterworth; 0 turns it off), its noise σ is `median |x| / 0.6745` from a running
//! histogram of every 4th sample ([`NoiseEstimator`]: first estimate after 50 ms, then
//! re-estimated and its counts halved every 0.5 s), the threshold is `k·σ` (`mua_threshold`,
//! default −4.5;
//! negative = downward crossings), and a crossing is counted when the signal goes beyond the
//! threshold at least `mua_refractory_ms` (default 1 ms) after the last counted one.
//!
//! **Normalisation** (`normalize`): `none`, `zscore` (value − mean) / std, or `minmax`
//! (value − min) / (max − min), against a running baseline of `normalize_window_s` (default
//! 10 s) of the same feature and channel, the current value included (so `minmax` is in
//! 0..1; a constant baseline gives 0 for `zscore` and 0.5 for `minmax`). The baseline is 16
//! blocks of ticks plus the current block, again exact block sums.
//!
//! **Memory.** Per channel: the window ring (K + 1 blocks), and per band the decimator's
//! history (`2·L` floats: alpha ≈ 10 KB, delta ≈ 30 KB per channel at 30 kHz) and six
//! sections; for `mua_rate` a 6 KB histogram. 256 channels with rms + alpha + mua: ≈ 4.5 MB.
//!
//! **Bad samples.** NaN/∞ samples spoil only the blocks they fall in (they leave the window
//! after K ticks); the band-pass and high-pass states are checked at each tick and reset if
//! they became non-finite ([`FeatureExtractor::nonfinite_resets`] counts it).

mod accum;
mod spec;

pub use spec::{Feature, FeatureConfig, Normalize, BAND_SECTIONS, NAMED_BANDS};

use super::fir::Decimator;
use super::iir::Cascade;
use super::noise::NoiseEstimator;
use super::{invalid, DspError};
use accum::{Acc, BandAcc, Lanes, NormAcc, NORM_BLOCKS};
use std::fmt;

struct Band {
    dec: Decimator,
    filt: Cascade,
    /// `channels × (K + 1)`: K closed blocks then the current one.
    acc: Box<[BandAcc]>,
}

struct Mua {
    hp: Option<Cascade>,
    noise: NoiseEstimator,
    sign: f32,
    k_abs: f32,
    refractory: u32,
    thr: Box<[f32]>,
    beyond: Box<[bool]>,
    since: Box<[u32]>,
    est_age: u64,
    epoch: u64,
    warm: u64,
    have_thr: bool,
}

/// Every this-many-th sample (by global index) feeds the noise histogram: 7500 samples/s at
/// 30 kHz are plenty for a median, and the histogram update is a large part of the cost.
const NOISE_STRIDE: u64 = 4;

/// Channels whose `mua_rate` loops run interleaved.
const MUA_GROUP: usize = 4;

impl Mua {
    /// High-passes, counts into the noise histograms and detects crossings for channels
    /// `c0 .. c0 + G` (segments of equal length); returns each channel's crossings.
    #[inline]
    #[allow(clippy::needless_range_loop)] // sample i of G rows side by side
    fn run<const G: usize>(&mut self, c0: usize, pos: u64, xs: [&[f32]; G]) -> [u64; G] {
        let n = xs[0].len();
        // Global sample index modulo NOISE_STRIDE: which samples feed the noise histogram.
        let mut phase = (pos % NOISE_STRIDE) as u32;
        let (sign, refr) = (self.sign, self.refractory);
        let thr: [f32; G] = std::array::from_fn(|g| self.thr[c0 + g]);
        let mut beyond: [bool; G] = std::array::from_fn(|g| self.beyond[c0 + g]);
        let mut since: [u32; G] = std::array::from_fn(|g| self.since[c0 + g]);
        let mut cross = [0u64; G];
        for i in 0..n {
            for g in 0..G {
                let v = xs[g][i];
                let y = match &mut self.hp {
                    Some(hp) => hp.run(c0 + g, v as f64) as f32,
                    None => v,
                };
                if phase == 0 {
                    self.noise.add(c0 + g, y);
                }
                let b = sign * y > thr[g];
                if b && !beyond[g] && since[g] >= refr {
                    cross[g] += 1;
                    since[g] = 0;
                }
                since[g] = since[g].saturating_add(1);
                beyond[g] = b;
            }
            phase += 1;
            if phase == NOISE_STRIDE as u32 {
                phase = 0;
            }
        }
        for g in 0..G {
            self.beyond[c0 + g] = beyond[g];
            self.since[c0 + g] = since[g];
        }
        cross
    }
}

/// Computes the configured features of many channels (see the module doc).
pub struct FeatureExtractor {
    features: Vec<Feature>,
    fs: f64,
    rate: f64,
    /// Channel slots in use (`..capacity`; see [`FeatureExtractor::set_channels`]).
    channels: usize,
    /// Channel slots allocated.
    capacity: usize,
    k: usize,
    need_basic: bool,
    /// `channels × (K + 1)`: K closed blocks then the current one.
    acc: Box<[Acc]>,
    lanes: Box<[Lanes]>,
    prev: Box<[f32]>,
    has_prev: Box<[bool]>,
    bands: Vec<Band>,
    /// Band index of each feature (for `Feature::Band`).
    band_of: Vec<usize>,
    mua: Option<Mua>,
    scratch: Box<[f32]>,
    ring_pos: usize,
    filled: usize,
    pos: u64,
    tick: u64,
    next_tick: u64,
    normalize: Normalize,
    norm_len: u64,
    /// `features × channels × (NORM_BLOCKS + 1)`.
    norm: Box<[NormAcc]>,
    norm_pos: usize,
    norm_filled: usize,
    norm_cur_n: u64,
    nonfinite_resets: u64,
}

impl fmt::Debug for FeatureExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeatureExtractor")
            .field("features", &self.features)
            .field("fs", &self.fs)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .field("window_ticks", &self.k)
            .finish_non_exhaustive()
    }
}

fn positive(v: f64, what: &str) -> Result<(), DspError> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        invalid(format!("{what} must be positive and finite, got {v}"))
    }
}

impl FeatureExtractor {
    /// Builds the extractor for `channels` channels of a stream at `fs` Hz (allocates all
    /// state; call again when the rate or the channel count changes).
    pub fn new(
        cfg: &FeatureConfig,
        fs: f64,
        channels: usize,
    ) -> Result<FeatureExtractor, DspError> {
        positive(fs, "sample rate")?;
        positive(cfg.feature_rate, "feature_rate")?;
        positive(cfg.feature_window_ms, "feature_window_ms")?;
        positive(cfg.normalize_window_s, "normalize_window_s")?;
        if cfg.feature_rate > fs / 2.0 {
            return invalid(format!(
                "feature_rate {} Hz must not exceed half the sample rate ({} Hz)",
                cfg.feature_rate,
                fs / 2.0
            ));
        }
        if cfg.features.is_empty() {
            return invalid("features: at least one feature is needed");
        }
        let hop_max = (fs / cfg.feature_rate).ceil() as usize + 1;
        let k = ((cfg.feature_window_ms / 1000.0 * cfg.feature_rate).round() as usize).max(1);
        let mut bands: Vec<Band> = Vec::new();
        let mut band_of = vec![usize::MAX; cfg.features.len()];
        for (i, f) in cfg.features.iter().enumerate() {
            if let Feature::Band { lo, hi, .. } = *f {
                if hi >= 0.45 * fs {
                    return invalid(format!(
                        "feature {f}: the band's high edge must be below 0.45 x the sample rate ({} Hz)",
                        0.45 * fs
                    ));
                }
                let d = (fs / (10.0 * hi)).floor().clamp(1.0, 1000.0) as u32;
                let fsd = fs / d as f64;
                let dec = Decimator::with_edges(fs, d, hi, fsd - hi, 65.0, channels)?;
                let filt = Cascade::bandpass(fsd, lo, hi, BAND_SECTIONS, channels)?;
                band_of[i] = bands.len();
                bands.push(Band {
                    dec,
                    filt,
                    acc: vec![BandAcc::default(); channels * (k + 1)].into_boxed_slice(),
                });
            }
        }
        let mua = if cfg.features.contains(&Feature::MuaRate) {
            if !(cfg.mua_threshold.is_finite() && cfg.mua_threshold != 0.0) {
                return invalid(format!(
                    "mua_threshold must be a non-zero number (negative = downward), got {}",
                    cfg.mua_threshold
                ));
            }
            if !(cfg.mua_refractory_ms.is_finite() && cfg.mua_refractory_ms >= 0.0) {
                return invalid(format!(
                    "mua_refractory_ms must be >= 0, got {}",
                    cfg.mua_refractory_ms
                ));
            }
            let hp = if cfg.mua_highpass_hz == 0.0 {
                None
            } else {
                Some(Cascade::highpass(fs, cfg.mua_highpass_hz, 2, channels)?)
            };
            Some(Mua {
                hp,
                noise: NoiseEstimator::new(channels),
                sign: cfg.mua_threshold.signum() as f32,
                k_abs: cfg.mua_threshold.abs() as f32,
                refractory: (cfg.mua_refractory_ms * fs / 1000.0)
                    .round()
                    .min(u32::MAX as f64) as u32,
                thr: vec![f32::NAN; channels].into_boxed_slice(),
                beyond: vec![false; channels].into_boxed_slice(),
                since: vec![u32::MAX; channels].into_boxed_slice(),
                est_age: 0,
                epoch: (0.5 * fs).round().max(1.0) as u64,
                warm: (0.05 * fs).round().max(1.0) as u64,
                have_thr: false,
            })
        } else {
            None
        };
        let nf = cfg.features.len();
        let norm_ticks = (cfg.normalize_window_s * cfg.feature_rate).round().max(1.0) as u64;
        let (norm_len, norm) = if cfg.normalize == Normalize::None {
            (1, Vec::new())
        } else {
            (
                norm_ticks.div_ceil(NORM_BLOCKS as u64),
                vec![NormAcc::default(); nf * channels * (NORM_BLOCKS + 1)],
            )
        };
        let need_basic = cfg.features.iter().any(|f| {
            matches!(
                f,
                Feature::Rms | Feature::Peak | Feature::Mean | Feature::LineLength
            )
        });
        let mut x = FeatureExtractor {
            features: cfg.features.clone(),
            fs,
            rate: cfg.feature_rate,
            channels,
            capacity: channels,
            k,
            need_basic,
            acc: vec![Acc::default(); channels * (k + 1)].into_boxed_slice(),
            lanes: vec![Lanes::default(); channels].into_boxed_slice(),
            prev: vec![0.0; channels].into_boxed_slice(),
            has_prev: vec![false; channels].into_boxed_slice(),
            bands,
            band_of,
            mua,
            scratch: vec![0.0; hop_max + 2].into_boxed_slice(),
            ring_pos: 0,
            filled: 0,
            pos: 0,
            tick: 0,
            next_tick: 0,
            normalize: cfg.normalize,
            norm_len,
            norm: norm.into_boxed_slice(),
            norm_pos: 0,
            norm_filled: 0,
            norm_cur_n: 0,
            nonfinite_resets: 0,
        };
        x.reset();
        Ok(x)
    }

    /// The features, in output order.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }
    /// Channel slots in use (as built, or as set by [`Self::set_channels`]).
    pub fn channels(&self) -> usize {
        self.channels
    }
    /// Stream sample rate (Hz).
    pub fn sample_rate(&self) -> f64 {
        self.fs
    }
    /// Emission rate (Hz).
    pub fn feature_rate(&self) -> f64 {
        self.rate
    }
    /// Ticks in a full window (the window is this many ticks long).
    pub fn window_ticks(&self) -> usize {
        self.k
    }
    /// Length of a full window in seconds (`window_ticks / feature_rate`).
    pub fn window_seconds(&self) -> f64 {
        self.k as f64 / self.rate
    }
    /// Length of the value slice a tick fills: `features × channels`.
    pub fn values_len(&self) -> usize {
        self.features.len() * self.channels
    }
    /// Ticks emitted since the last reset.
    pub fn ticks(&self) -> u64 {
        self.tick
    }
    /// Times a band-pass or high-pass state went non-finite (NaN/∞ input) and was reset.
    pub fn nonfinite_resets(&self) -> u64 {
        self.nonfinite_resets
    }

    /// Channel slots allocated (the `channels` given to [`FeatureExtractor::new`]).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Uses the first `channels` slots (at most [`Self::capacity`]) from now on and forgets
    /// all state, as [`Self::reset`]: a channel-set change without reallocating (the shard
    /// builds the extractor once for its largest channel count). [`Self::values_len`]
    /// follows: `features × channels`.
    pub fn set_channels(&mut self, channels: usize) -> Result<(), DspError> {
        if channels > self.capacity {
            return invalid(format!(
                "{channels} channels exceed the {} the feature extractor was built for",
                self.capacity
            ));
        }
        self.channels = channels;
        self.reset();
        Ok(())
    }

    /// Forgets all signal state: windows, filters, noise estimates, baselines, tick phase.
    /// Call at a gap, a restart or a channel-set change.
    pub fn reset(&mut self) {
        self.acc.fill(Acc::default());
        self.lanes.fill(Lanes::default());
        self.prev.fill(0.0);
        self.has_prev.fill(false);
        for b in &mut self.bands {
            b.dec.reset();
            b.filt.reset();
            b.acc.fill(BandAcc::default());
        }
        if let Some(m) = &mut self.mua {
            if let Some(hp) = &mut m.hp {
                hp.reset();
            }
            m.noise.reset();
            m.thr.fill(f32::NAN);
            m.beyond.fill(false);
            m.since.fill(u32::MAX);
            m.est_age = 0;
            m.have_thr = false;
        }
        self.ring_pos = 0;
        self.filled = 0;
        self.pos = 0;
        self.tick = 0;
        self.next_tick = self.tick_at(1);
        self.norm.fill(NormAcc::default());
        self.norm_pos = 0;
        self.norm_filled = 0;
        self.norm_cur_n = 0;
    }

    fn tick_at(&self, k: u64) -> u64 {
        (k as f64 * self.fs / self.rate).round() as u64
    }

    /// Feeds the next `n` samples of every channel: `row(c)` is channel `c`'s samples (at
    /// least `n` of them; `c` in `0..channels`). At every tick that falls inside, writes
    /// `features × channels` values into `out[..values_len()]` (feature-major:
    /// `out[f · channels + c]`) and calls `on_tick(offset, values)`, where `offset` is how
    /// many of the `n` samples the tick's window ends after. Never allocates.
    ///
    /// # Panics
    /// If a row is shorter than `n` or `out` is shorter than [`Self::values_len`] (caller bugs).
    pub fn process<'a, R, T>(&mut self, n: usize, row: R, out: &mut [f32], mut on_tick: T)
    where
        R: Fn(usize) -> &'a [f32],
        T: FnMut(usize, &[f32]),
    {
        let vl = self.values_len();
        assert!(out.len() >= vl, "feature output slice too short");
        let mut a = 0;
        while a < n {
            let to_tick = (self.next_tick - self.pos) as usize;
            let b = n.min(a + to_tick);
            for c in 0..self.channels {
                let r = row(c);
                assert!(
                    r.len() >= n,
                    "row {c} has {} samples, expected {n}",
                    r.len()
                );
                self.feed_channel(c, &r[a..b]);
            }
            if let Some(m) = &mut self.mua {
                // Four channels at a time: their high-pass recursions are independent, so
                // the CPU overlaps four latency chains instead of waiting on one.
                let kk = self.k;
                let mut c = 0;
                while c + MUA_GROUP <= self.channels {
                    let xs: [&[f32]; MUA_GROUP] = std::array::from_fn(|g| &row(c + g)[a..b]);
                    let cross = m.run(c, self.pos, xs);
                    for (g, &n) in cross.iter().enumerate() {
                        self.acc[(c + g) * (kk + 1) + kk].cross += n;
                    }
                    c += MUA_GROUP;
                }
                while c < self.channels {
                    let cross = m.run(c, self.pos, [&row(c)[a..b]]);
                    self.acc[c * (kk + 1) + kk].cross += cross[0];
                    c += 1;
                }
            }
            self.pos += (b - a) as u64;
            if let Some(m) = &mut self.mua {
                m.est_age += (b - a) as u64;
            }
            a = b;
            if self.pos == self.next_tick {
                self.emit(&mut out[..vl]);
                on_tick(a, &out[..vl]);
            }
        }
    }

    /// Accumulates one segment (never crossing a tick) of channel `c` into its current block.
    fn feed_channel(&mut self, c: usize, x: &[f32]) {
        if x.is_empty() {
            return;
        }
        let kk = self.k;
        if self.need_basic {
            let first = if self.has_prev[c] { self.prev[c] } else { x[0] };
            let pk = self.lanes[c].add(self.pos, first, x);
            let cur = &mut self.acc[c * (kk + 1) + kk];
            cur.peak = cur.peak.max(pk);
            self.prev[c] = x[x.len() - 1];
            self.has_prev[c] = true;
        }
        self.acc[c * (kk + 1) + kk].n += x.len() as u64;
        for band in &mut self.bands {
            let m = band.dec.process(c, x, &mut self.scratch);
            let mut ss = 0.0f64;
            for &y in &self.scratch[..m] {
                let z = band.filt.run(c, y as f64);
                ss += z * z;
            }
            let cur = &mut band.acc[c * (kk + 1) + kk];
            cur.sumsq += ss;
            cur.n += m as u64;
        }
    }

    /// Closes the blocks, computes every value into `out`, advances the tick.
    fn emit(&mut self, out: &mut [f32]) {
        let kk = self.k;
        let ch = self.channels;
        let slot = self.ring_pos;
        self.filled = (self.filled + 1).min(kk);
        self.ring_pos = (self.ring_pos + 1) % kk;
        // Close the current blocks into ring slot `slot`.
        for c in 0..ch {
            let base = c * (kk + 1);
            self.lanes[c].drain_into(&mut self.acc[base + kk]);
            self.acc[base + slot] = self.acc[base + kk];
            self.acc[base + kk] = Acc::default();
            for band in &mut self.bands {
                band.acc[base + slot] = band.acc[base + kk];
                band.acc[base + kk] = BandAcc::default();
            }
        }
        let filled = self.filled;
        // Until the ring is full, only slots 0..filled hold blocks (the ring starts at slot 0).
        let valid = |i: usize| filled == kk || i < filled;
        for c in 0..ch {
            let base = c * (kk + 1);
            let mut w = Acc::default();
            for i in 0..kk {
                if valid(i) {
                    w.merge(&self.acc[base + i]);
                }
            }
            let secs = w.n as f64 / self.fs;
            let nn = w.n.max(1) as f64;
            for (fi, f) in self.features.iter().enumerate() {
                let v = match f {
                    Feature::Rms => (w.sumsq / nn).sqrt(),
                    Feature::Peak => w.peak as f64,
                    Feature::Mean => w.sum / nn,
                    Feature::LineLength => w.line,
                    Feature::MuaRate => {
                        if secs > 0.0 {
                            w.cross as f64 / secs
                        } else {
                            0.0
                        }
                    }
                    Feature::Band { .. } => {
                        let band = &self.bands[self.band_of[fi]];
                        let (mut s, mut n) = (0.0, 0u64);
                        for i in 0..kk {
                            if valid(i) {
                                s += band.acc[base + i].sumsq;
                                n += band.acc[base + i].n;
                            }
                        }
                        if n > 0 {
                            s / n as f64
                        } else {
                            0.0
                        }
                    }
                };
                out[fi * ch + c] = v as f32;
            }
        }
        self.check_filters();
        self.update_threshold();
        if self.normalize != Normalize::None {
            self.apply_normalization(out);
        }
        self.tick += 1;
        self.next_tick = self.tick_at(self.tick + 1);
    }

    /// Resets filter states that went non-finite (NaN/∞ input).
    fn check_filters(&mut self) {
        for c in 0..self.channels {
            for band in &mut self.bands {
                if !band.filt.run_is_finite(c) {
                    band.filt.reset_channel(c);
                    self.nonfinite_resets += 1;
                }
            }
            if let Some(hp) = self.mua.as_mut().and_then(|m| m.hp.as_mut()) {
                if !hp.run_is_finite(c) {
                    hp.reset_channel(c);
                    self.nonfinite_resets += 1;
                }
            }
        }
    }

    /// Re-estimates the crossing thresholds (first after 50 ms, then every 0.5 s).
    fn update_threshold(&mut self) {
        let Some(m) = &mut self.mua else { return };
        let due = m.est_age >= m.epoch;
        if !(due || (!m.have_thr && self.pos >= m.warm)) {
            return;
        }
        for c in 0..self.channels {
            if let Some(med) = m.noise.median(c) {
                m.thr[c] = m.k_abs * med / 0.6745;
            }
            if due {
                m.noise.decay(c);
            }
        }
        m.have_thr = true;
        if due {
            m.est_age = 0;
        }
    }

    fn apply_normalization(&mut self, out: &mut [f32]) {
        let nb = NORM_BLOCKS + 1;
        let cur_i = NORM_BLOCKS;
        for (i, v) in out.iter_mut().enumerate() {
            let base = i * nb;
            let val = *v as f64;
            self.norm[base + cur_i].add(val);
            let mut s = self.norm[base + cur_i];
            for j in 0..NORM_BLOCKS {
                if j < self.norm_filled || self.norm_filled == NORM_BLOCKS {
                    s.merge(&self.norm[base + j]);
                }
            }
            let r = match self.normalize {
                Normalize::Zscore => {
                    let n = s.n as f64;
                    let mean = s.sum / n;
                    let var = (s.sumsq / n - mean * mean).max(0.0);
                    let sd = var.sqrt();
                    if sd > 1e-12 * mean.abs().max(1e-30) {
                        (val - mean) / sd
                    } else {
                        0.0
                    }
                }
                Normalize::Minmax => {
                    let range = s.max - s.min;
                    if range > 0.0 {
                        (val - s.min) / range
                    } else {
                        0.5
                    }
                }
                Normalize::None => val,
            };
            *v = r as f32;
        }
        self.norm_cur_n += 1;
        if self.norm_cur_n == self.norm_len {
            let slot = self.norm_pos;
            for i in 0..out.len() {
                let base = i * nb;
                self.norm[base + slot] = self.norm[base + cur_i];
                self.norm[base + cur_i] = NormAcc::default();
            }
            self.norm_pos = (self.norm_pos + 1) % NORM_BLOCKS;
            self.norm_filled = (self.norm_filled + 1).min(NORM_BLOCKS);
            self.norm_cur_n = 0;
        }
    }
}

#[cfg(test)]
mod tests;
