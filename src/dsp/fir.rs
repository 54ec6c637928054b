//! Kaiser-window FIR low-pass design and an integer polyphase decimator.
//!
//! [`Decimator`] implements `downsampling_method: "lowpass"`: for a stream at `fs` and an
//! integer factor F it designs, at construction, a linear-phase low-pass whose passband is
//! flat within 0.5 dB up to `0.8 · fs/(2F)` and which attenuates by at least 60 dB every
//! frequency that folds into that passband (`≥ fs/F − 0.8 · fs/(2F)`). The cut-off sits at
//! the output Nyquist frequency `fs/(2F)`; the Kaiser window is designed for 65 dB so the
//! float32 taps keep a margin over the 60 dB promise. The filter has `≈ 20·F` taps, so the
//! cost is about 20 multiply-adds per *input* sample whatever F is, because only one output
//! is computed per F inputs (the polyphase saving: the F−1 discarded outputs are never
//! computed).
//!
//! **Why not a crate.** `rubato` resamples audio by arbitrary ratios with sinc interpolation
//! or FFTs over fixed-size chunks (the caller's block sizes vary) and recomputes
//! interpolation kernels; `biquad` is IIR only (no linear phase, no decimation). Neither
//! keeps one compact per-channel history for integer decimation, so the filter is
//! hand-written here: a Kaiser design (closed-form, easy to check) and a dot product over a
//! doubled ring buffer, which the compiler vectorises.
//!
//! **State.** Each channel keeps the last `L` input samples (stored twice, so the window is
//! always one contiguous slice) and its phase within the current group of F. After
//! [`Decimator::reset`] the history is primed with the channel's first sample (a DC offset
//! does not ring), outputs come at inputs F−1, 2F−1, … of the new segment — the same grouping
//! as `average` and `decimate`.
//!
//! **Delay.** The filter is linear-phase with odd length `L`, so every frequency is delayed
//! by exactly `(L−1)/2` input samples ([`Decimator::group_delay_samples`]). At 30 kHz:
//! F = 2 → 20 samples (0.67 ms), F = 10 → 100 (3.33 ms), F = 30 → 299 (9.97 ms), F = 100 →
//! 994 (33.1 ms), F = 300 → 2981 (99.4 ms); at 1 kHz, F = 4 → 40 samples (40 ms). The
//! `group_delay_table` test prints this table.
//!
//! **Bad samples.** A NaN or ∞ input spoils the outputs whose window holds it (the next
//! `L` inputs) and then leaves the history: a FIR has no lasting state to poison.
//!
//! **Memory.** `2·L` floats per channel (F = 30: 4.8 KB per channel; F = 1000: 160 KB per
//! channel, 41 MB for 256 channels — a multi-stage cascade would cut that; not done).

use super::{invalid, DspError};

/// Attenuation (dB) the Kaiser design aims at; the verified promise is 60 dB.
pub const DESIGN_ATTENUATION_DB: f64 = 65.0;

/// Modified Bessel function of the first kind, order 0 (series; converges fast for β ≤ 20).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    let mut k = 1.0;
    while term > 1e-17 * sum {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

/// Designs a linear-phase low-pass FIR with a Kaiser window.
///
/// `pass_hz` is the last frequency that must stay in the passband, `stop_hz` the first that
/// must be attenuated by `atten_db`; the cut-off lies midway. Returns an odd number of taps
/// whose sum is 1 (unity DC gain). Errors if the edges are not `0 < pass < stop ≤ fs/2`.
pub fn kaiser_lowpass(
    fs: f64,
    pass_hz: f64,
    stop_hz: f64,
    atten_db: f64,
) -> Result<Vec<f64>, DspError> {
    if !(fs.is_finite() && fs > 0.0) {
        return invalid(format!("sample rate must be positive and finite, got {fs}"));
    }
    if !(pass_hz > 0.0 && stop_hz > pass_hz && stop_hz <= fs / 2.0 + 1e-9) {
        return invalid(format!(
            "low-pass edges must satisfy 0 < pass ({pass_hz} Hz) < stop ({stop_hz} Hz) <= fs/2 ({} Hz)",
            fs / 2.0
        ));
    }
    if !(atten_db > 0.0 && atten_db < 200.0) {
        return invalid(format!(
            "attenuation must be in (0, 200) dB, got {atten_db}"
        ));
    }
    let a = atten_db;
    let beta = if a > 50.0 {
        0.1102 * (a - 8.7)
    } else if a >= 21.0 {
        0.5842 * (a - 21.0).powf(0.4) + 0.07886 * (a - 21.0)
    } else {
        0.0
    };
    let dw = 2.0 * std::f64::consts::PI * (stop_hz - pass_hz) / fs;
    let mut m = ((a - 7.95) / (2.285 * dw)).ceil().max(2.0) as usize;
    if m % 2 == 1 {
        m += 1; // L = m + 1 odd: an integer group delay of m/2 samples
    }
    if m > 4_000_000 {
        return invalid(format!(
            "a low-pass with a {} Hz transition at {fs} Hz would need {m} taps (too many)",
            stop_hz - pass_hz
        ));
    }
    let fc = (pass_hz + stop_hz) / 2.0 / fs; // cycles per sample
    let i0b = bessel_i0(beta);
    let half = m as f64 / 2.0;
    let mut h: Vec<f64> = (0..=m)
        .map(|n| {
            let t = n as f64 - half;
            let sinc = if t == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * t).sin() / (std::f64::consts::PI * t)
            };
            let r = t / half;
            let w = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / i0b;
            sinc * w
        })
        .collect();
    let s: f64 = h.iter().sum();
    for v in &mut h {
        *v /= s;
    }
    Ok(h)
}

/// Magnitude of the FIR `taps` at `f_hz` for a stream at `fs` (direct DTFT, f64).
pub fn fir_magnitude(taps: &[f32], fs: f64, f_hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * f_hz / fs;
    let (c, s) = (w.cos(), w.sin());
    // Rotate a unit phasor instead of calling sin/cos per tap; renormalise now and then.
    let (mut pr, mut pi) = (1.0f64, 0.0f64);
    let (mut re, mut im) = (0.0f64, 0.0f64);
    for (k, &h) in taps.iter().enumerate() {
        let h = h as f64;
        re += h * pr;
        im -= h * pi;
        let (nr, ni) = (pr * c - pi * s, pr * s + pi * c);
        pr = nr;
        pi = ni;
        if k % 1024 == 1023 {
            let n = (pr * pr + pi * pi).sqrt();
            pr /= n;
            pi /= n;
        }
    }
    (re * re + im * im).sqrt()
}

/// Lanes of the dot product: enough independent accumulators to hide the add latency.
const LANES: usize = 16;

/// Dot product in [`LANES`] lanes (vectorised by the compiler); `a.len() == b.len()`, a
/// multiple of `LANES`.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for i in 0..w {
            acc[i] += acc[i + w];
        }
    }
    acc[0]
}

/// Integer decimator with a Kaiser anti-alias FIR and per-channel state (see the module doc).
#[derive(Debug, Clone)]
pub struct Decimator {
    fs: f64,
    factor: usize,
    /// Designed length (odd).
    len: usize,
    /// Padded length (multiple of [`LANES`], ≥ len): the history window.
    plen: usize,
    /// Taps reversed and zero-padded at the front: `rev[j]` multiplies the j-th oldest sample.
    rev: Box<[f32]>,
    /// `channels × 2·plen` history, each sample written at `pos` and `pos + plen`.
    hist: Box<[f32]>,
    pos: Box<[u32]>,
    phase: Box<[u32]>,
    primed: Box<[bool]>,
}

impl Decimator {
    /// The `downsampling_method: "lowpass"` decimator for `channels` channels at `fs` Hz by
    /// `factor` (≥ 1; 1 is a pass-through), with the spec's edges: pass `0.8·fs/(2F)`,
    /// stop `fs/F − 0.8·fs/(2F)`, [`DESIGN_ATTENUATION_DB`].
    pub fn new(fs: f64, factor: u32, channels: usize) -> Result<Decimator, DspError> {
        if factor == 0 {
            return invalid("decimation factor must be at least 1");
        }
        let f = factor as f64;
        let pass = 0.8 * fs / (2.0 * f);
        Decimator::with_edges(
            fs,
            factor,
            pass,
            fs / f - pass,
            DESIGN_ATTENUATION_DB,
            channels,
        )
    }

    /// A decimator with custom low-pass edges (used by the band-power features, which only
    /// need their band protected). `pass_hz`/`stop_hz`/`atten_db` as in [`kaiser_lowpass`].
    pub fn with_edges(
        fs: f64,
        factor: u32,
        pass_hz: f64,
        stop_hz: f64,
        atten_db: f64,
        channels: usize,
    ) -> Result<Decimator, DspError> {
        if factor == 0 {
            return invalid("decimation factor must be at least 1");
        }
        if !(fs.is_finite() && fs > 0.0) {
            return invalid(format!("sample rate must be positive and finite, got {fs}"));
        }
        let taps: Vec<f64> = if factor == 1 {
            vec![1.0]
        } else {
            kaiser_lowpass(fs, pass_hz, stop_hz.min(fs / 2.0), atten_db)?
        };
        let len = taps.len();
        let plen = if factor == 1 {
            0
        } else {
            len.div_ceil(LANES) * LANES
        };
        let mut rev = vec![0.0f32; plen];
        // rev[plen-1-k] = h[k]: the newest sample (index plen-1 of the window) gets h[0].
        for (k, &h) in taps.iter().enumerate().take(plen) {
            rev[plen - 1 - k] = h as f32;
        }
        Ok(Decimator {
            fs,
            factor: factor as usize,
            len,
            plen,
            rev: rev.into_boxed_slice(),
            hist: vec![0.0f32; channels * 2 * plen].into_boxed_slice(),
            pos: vec![0u32; channels].into_boxed_slice(),
            phase: vec![0u32; channels].into_boxed_slice(),
            primed: vec![false; channels].into_boxed_slice(),
        })
    }

    /// Decimation factor F.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Input sample rate (Hz).
    pub fn sample_rate(&self) -> f64 {
        self.fs
    }

    /// Output sample rate `fs / F` (Hz).
    pub fn output_rate(&self) -> f64 {
        self.fs / self.factor as f64
    }

    /// Number of channels the state was sized for.
    pub fn channels(&self) -> usize {
        self.pos.len()
    }

    /// Filter length in taps (odd; 1 for F = 1).
    pub fn num_taps(&self) -> usize {
        self.len
    }

    /// The designed taps (float32, as used), oldest-first order `h[0..L]`.
    pub fn taps(&self) -> Vec<f32> {
        if self.factor == 1 {
            return vec![1.0];
        }
        let mut t: Vec<f32> = self.rev[self.plen - self.len..].to_vec();
        t.reverse();
        t
    }

    /// Group delay in input samples, `(L−1)/2` (0 for F = 1).
    pub fn group_delay_samples(&self) -> f64 {
        (self.len - 1) as f64 / 2.0
    }

    /// Group delay in seconds.
    pub fn group_delay_seconds(&self) -> f64 {
        self.group_delay_samples() / self.fs
    }

    /// Magnitude response of the designed filter at `f_hz` (before decimation).
    pub fn magnitude(&self, f_hz: f64) -> f64 {
        fir_magnitude(&self.taps(), self.fs, f_hz)
    }

    /// Forgets every channel's history and group phase (gap, restart, channel-set change).
    pub fn reset(&mut self) {
        self.pos.fill(0);
        self.phase.fill(0);
        self.primed.fill(false);
    }

    /// Forgets one channel's history and group phase.
    pub fn reset_channel(&mut self, ch: usize) {
        self.pos[ch] = 0;
        self.phase[ch] = 0;
        self.primed[ch] = false;
    }

    /// Outputs the next `n` inputs of channel `ch` will produce.
    #[inline]
    pub fn outputs_for(&self, ch: usize, n: usize) -> usize {
        (self.phase[ch] as usize + n) / self.factor
    }

    /// Feeds `input` (the next samples of channel `ch`) and writes the outputs it completes
    /// to the front of `out`; returns how many. Never allocates.
    ///
    /// # Panics
    /// If `ch ≥ channels()` or `out` is shorter than [`Decimator::outputs_for`]`(ch,
    /// input.len())` (a caller bug, not a data error: size `out` as `n / F + 1`).
    #[inline]
    pub fn process(&mut self, ch: usize, input: &[f32], out: &mut [f32]) -> usize {
        let need = self.outputs_for(ch, input.len());
        assert!(
            out.len() >= need,
            "decimator output slice too short: {} < {need}",
            out.len()
        );
        if self.factor == 1 {
            out[..input.len()].copy_from_slice(input);
            return input.len();
        }
        if input.is_empty() {
            return 0;
        }
        let plen = self.plen;
        let f = self.factor;
        let hist = &mut self.hist[ch * 2 * plen..(ch + 1) * 2 * plen];
        if !self.primed[ch] {
            hist.fill(input[0]);
            self.primed[ch] = true;
        }
        let mut pos = self.pos[ch] as usize;
        let mut phase = self.phase[ch] as usize;
        let mut i = 0;
        let mut o = 0;
        while i < input.len() {
            let k = (f - phase).min(input.len() - i).min(plen - pos);
            let chunk = &input[i..i + k];
            hist[pos..pos + k].copy_from_slice(chunk);
            hist[pos + plen..pos + plen + k].copy_from_slice(chunk);
            pos += k;
            if pos == plen {
                pos = 0;
            }
            phase += k;
            i += k;
            if phase == f {
                phase = 0;
                out[o] = dot(&hist[pos..pos + plen], &self.rev);
                o += 1;
            }
        }
        self.pos[ch] = pos as u32;
        self.phase[ch] = phase as u32;
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    fn db(x: f64) -> f64 {
        20.0 * x.max(1e-300).log10()
    }

    /// Worst passband deviation (dB) and best stopband attenuation (dB) on a dense grid.
    fn response_extremes(d: &Decimator) -> (f64, f64) {
        let fs = d.sample_rate();
        let f = d.factor() as f64;
        let pass = 0.8 * fs / (2.0 * f);
        let stop = fs / f - pass;
        let taps = d.taps();
        let step = fs / (4.0 * taps.len() as f64); // 4 points per main-lobe width
        let mut worst_pass: f64 = 0.0;
        let mut fr = 0.0;
        while fr <= pass {
            worst_pass = worst_pass.max(db(fir_magnitude(&taps, fs, fr)).abs());
            fr += step;
        }
        worst_pass = worst_pass.max(db(fir_magnitude(&taps, fs, pass)).abs());
        let mut worst_stop: f64 = f64::NEG_INFINITY;
        let mut fr = stop;
        while fr <= fs / 2.0 {
            worst_stop = worst_stop.max(db(fir_magnitude(&taps, fs, fr)));
            fr += step;
        }
        (worst_pass, -worst_stop)
    }

    #[test]
    fn designed_response_meets_the_spec() {
        for &(fs, f) in &[
            (30000.0, 2),
            (30000.0, 10),
            (30000.0, 30),
            (30000.0, 100),
            (30000.0, 300),
            (1000.0, 4),
            (40000.0, 7),
        ] {
            let d = Decimator::new(fs, f, 1).unwrap();
            assert_eq!(d.num_taps() % 2, 1);
            let (ripple, atten) = response_extremes(&d);
            assert!(
                ripple <= 0.5,
                "fs {fs} F {f}: passband deviation {ripple:.3} dB"
            );
            assert!(
                atten >= 60.0,
                "fs {fs} F {f}: alias attenuation {atten:.1} dB"
            );
        }
    }

    #[test]
    fn factor_one_is_a_pass_through() {
        let mut d = Decimator::new(30000.0, 1, 2).unwrap();
        assert_eq!(d.num_taps(), 1);
        assert_eq!(d.group_delay_samples(), 0.0);
        assert_eq!(d.taps(), vec![1.0]);
        let x = [1.0f32, -2.5, 3.25, f32::MAX];
        let mut out = [0.0f32; 4];
        assert_eq!(d.process(1, &x, &mut out), 4);
        assert_eq!(out, x);
    }

    fn tone(fs: f64, f: f64, amp: f64, n: usize, start: usize) -> Vec<f32> {
        (start..start + n)
            .map(|i| (amp * (2.0 * PI * f * i as f64 / fs).sin()) as f32)
            .collect()
    }

    /// Amplitude of the component at `f` (least-squares fit of a sine and a cosine).
    fn amplitude(y: &[f32], fs: f64, f: f64) -> f64 {
        let (mut ss, mut cc, mut sc, mut ys, mut yc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &v) in y.iter().enumerate() {
            let w = 2.0 * PI * f * i as f64 / fs;
            let (s, c) = (w.sin(), w.cos());
            ss += s * s;
            cc += c * c;
            sc += s * c;
            ys += v as f64 * s;
            yc += v as f64 * c;
        }
        let det = ss * cc - sc * sc;
        let a = (ys * cc - yc * sc) / det;
        let b = (yc * ss - ys * sc) / det;
        (a * a + b * b).sqrt()
    }

    fn decimate_all(d: &mut Decimator, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; x.len() / d.factor() + 1];
        let n = d.process(0, x, &mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn tones_in_band_pass_and_aliasing_tones_are_60_db_down() {
        for &(fs, f) in &[(30000.0, 10u32), (30000.0, 30), (1000.0, 4)] {
            let ff = f as f64;
            let out_fs = fs / ff;
            let pass = 0.8 * fs / (2.0 * ff);
            let mut d = Decimator::new(fs, f, 1).unwrap();
            let skip = d.num_taps() / d.factor() + 2;
            let n = (d.num_taps() * 6).max(40 * f as usize);
            for &ft in &[0.1 * pass, 0.55 * pass, pass] {
                d.reset();
                let y = decimate_all(&mut d, &tone(fs, ft, 1.0, n, 0));
                let a = amplitude(&y[skip..], out_fs, ft);
                assert!(
                    db(a).abs() <= 0.5,
                    "fs {fs} F {f} tone {ft}: {:.3} dB",
                    db(a)
                );
            }
            // Tones that fold onto 0.5·pass and onto pass.
            for &ft in &[fs / ff - 0.5 * pass, fs / ff + pass, 2.0 * fs / ff - pass] {
                if ft >= fs / 2.0 {
                    continue;
                }
                let alias = {
                    let r = ft % out_fs;
                    if r > out_fs / 2.0 {
                        out_fs - r
                    } else {
                        r
                    }
                };
                d.reset();
                let y = decimate_all(&mut d, &tone(fs, ft, 1.0, n, 0));
                let a = amplitude(&y[skip..], out_fs, alias);
                assert!(db(a) <= -60.0, "fs {fs} F {f} tone {ft}: {:.1} dB", db(a));
            }
        }
    }

    #[test]
    fn block_splits_are_bit_identical_and_reset_restarts() {
        let fs = 30000.0;
        let mut whole = Decimator::new(fs, 30, 3).unwrap();
        let x: Vec<f32> = (0..20_000)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.01 + (i as f32 * 0.001).sin())
            .collect();
        let mut ref_out = vec![0.0f32; x.len() / 30 + 1];
        let n_ref = whole.process(1, &x, &mut ref_out);
        assert_eq!(n_ref, x.len() / 30);
        let mut split = Decimator::new(fs, 30, 3).unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0.0f32; 2000];
        let sizes = [1usize, 29, 30, 31, 640, 1, 1, 2047, 17, 3000];
        let mut i = 0;
        let mut k = 0;
        while i < x.len() {
            let s = sizes[k % sizes.len()].min(x.len() - i);
            let n = split.process(1, &x[i..i + s], &mut buf);
            got.extend_from_slice(&buf[..n]);
            i += s;
            k += 1;
        }
        assert_eq!(got, ref_out[..n_ref].to_vec());
        // Other channels untouched: channel 0 from scratch equals a fresh decimator.
        let mut fresh = Decimator::new(fs, 30, 1).unwrap();
        let mut a = vec![0.0f32; 100];
        let mut b = vec![0.0f32; 100];
        let na = split.process(0, &x[..3000], &mut a);
        let nb = fresh.process(0, &x[..3000], &mut b);
        assert_eq!(a[..na], b[..nb]);
        // Reset: the same input again gives the same output as the first time.
        split.reset();
        let mut again = vec![0.0f32; x.len() / 30 + 1];
        let n = split.process(1, &x, &mut again);
        assert_eq!(again[..n], ref_out[..n_ref]);
        split.reset_channel(1);
        let n = split.process(1, &x, &mut again);
        assert_eq!(again[..n], ref_out[..n_ref]);
    }

    #[test]
    fn dc_offset_does_not_ring_after_reset() {
        for f in [30u32, 1000] {
            let mut d = Decimator::new(30000.0, f, 1).unwrap();
            let y = decimate_all(&mut d, &vec![1000.0f32; 60_000]);
            assert_eq!(y.len(), 60_000 / f as usize);
            for v in y {
                assert!((v - 1000.0).abs() < 0.05, "F {f}: {v}");
            }
        }
    }

    #[test]
    fn a_nan_leaves_after_the_filter_length() {
        let mut d = Decimator::new(30000.0, 10, 1).unwrap();
        let mut x = vec![1.0f32; 3000];
        x[100] = f32::NAN;
        let y = decimate_all(&mut d, &x);
        assert!(y[10..20].iter().any(|v| v.is_nan()));
        let clean = (100 + d.num_taps()) / 10 + 1;
        assert!(
            y[clean..].iter().all(|v| (v - 1.0).abs() < 1e-3),
            "{:?}",
            &y[clean..]
        );
    }

    #[test]
    fn group_delay_is_half_the_length_and_shows_in_a_step() {
        let fs = 30000.0;
        let mut d = Decimator::new(fs, 10, 1).unwrap();
        let gd = d.group_delay_samples();
        assert_eq!(gd, ((d.num_taps() - 1) / 2) as f64);
        assert!((d.group_delay_seconds() - gd / fs).abs() < 1e-15);
        // An impulse at input 0 peaks in the output whose input index is closest to gd.
        let mut x = vec![0.0f32; d.num_taps() * 2];
        x[0] = 1.0;
        let mut y = vec![0.0f32; x.len()];
        let primed = d.process(0, &[0.0], &mut y); // prime with 0
        assert_eq!(primed, 0);
        let n = d.process(0, &x, &mut y);
        let (imax, _) =
            y[..n]
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        // Output j covers input index (j+1)·F − 1 of the whole stream (1 sample primed).
        let at = ((imax + 1) * 10 - 1) as f64 - 1.0;
        assert!((at - gd).abs() <= 5.0, "peak at input {at}, delay {gd}");
    }

    #[test]
    fn group_delay_table() {
        // Printed for the README (`cargo test group_delay_table -- --nocapture`).
        for &(fs, f) in &[
            (30000.0, 2u32),
            (30000.0, 10),
            (30000.0, 30),
            (30000.0, 100),
            (30000.0, 300),
            (1000.0, 4),
        ] {
            let d = Decimator::new(fs, f, 0).unwrap();
            println!(
                "fs {fs} F {f}: {} taps, group delay {} samples = {:.3} ms",
                d.num_taps(),
                d.group_delay_samples(),
                d.group_delay_seconds() * 1e3
            );
            assert!(d.group_delay_seconds() < 25.0 * f as f64 / fs);
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Decimator::new(30000.0, 0, 1).is_err());
        assert!(Decimator::new(0.0, 10, 1).is_err());
        assert!(Decimator::new(f64::INFINITY, 10, 1).is_err());
        assert!(Decimator::with_edges(30000.0, 10, 2000.0, 1000.0, 60.0, 1).is_err());
        assert!(kaiser_lowpass(30000.0, 100.0, 200.0, 0.0).is_err());
    }
}
