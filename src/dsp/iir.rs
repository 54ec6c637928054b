//! Butterworth cascades of second-order sections, built from the `biquad` crate.
//!
//! The crate gives the sections (RBJ cookbook coefficients, each the bilinear transform of an
//! analog section pre-warped at its own centre) and their Direct Form 2 Transposed state;
//! this module places the sections:
//!
//! * [`Cascade::bandpass`]: a Butterworth band-pass of order `2N` — the analog low-pass
//!   prototype's poles moved by the low-pass → band-pass transform `s → (s² + ω0²)/(B·s)`,
//!   each resulting conjugate pair one `BandPass` section. Because every section's centre is
//!   the bilinear image of its analog centre, the cascade equals the bilinear transform of
//!   the analog band-pass with pre-warped edges, so the −3 dB edges land exactly on `lo` and
//!   `hi`. The overall gain is normalised to 1 at the band centre.
//! * [`Cascade::highpass`]: a Butterworth high-pass of order `2N` (`N` `HighPass` sections
//!   sharing the cut-off, with the Butterworth Q of each pole pair).
//!
//! Sections run in `f64`: a pole pair at 1 Hz with a 40 Hz rate is fine in f64, while a biquad
//! at 1 Hz / 30 kHz loses most of its precision even there — the band-power features
//! decimate first ([`crate::dsp::features`]) so their filters never run at 30 kHz.

use super::{invalid, DspError};
use biquad::{Biquad, Coefficients, DirectForm2Transposed, Type};
use std::f64::consts::PI;

/// A cascade of second-order sections with per-channel state.
#[derive(Debug, Clone)]
pub struct Cascade {
    coeffs: Vec<Coefficients<f64>>,
    gain: f64,
    /// `channels × sections`, channel-major.
    state: Box<[DirectForm2Transposed<f64>]>,
    fs: f64,
}

fn section(kind: Type<f64>, fs: f64, f: f64, q: f64) -> Result<Coefficients<f64>, DspError> {
    Coefficients::<f64>::from_normalized_params(kind, f / (fs / 2.0), q)
        .map_err(|e| DspError::Invalid(format!("biquad at {f} Hz, Q {q}, fs {fs}: {e:?}")))
}

fn check_rate(fs: f64) -> Result<(), DspError> {
    if fs.is_finite() && fs > 0.0 {
        Ok(())
    } else {
        invalid(format!("sample rate must be positive and finite, got {fs}"))
    }
}

impl Cascade {
    /// Butterworth band-pass `lo..hi` Hz (−3 dB edges) of order `2·n` at `fs`, for `channels`
    /// channels. `n` ≥ 1 is the prototype order (the number of sections).
    pub fn bandpass(
        fs: f64,
        lo: f64,
        hi: f64,
        n: usize,
        channels: usize,
    ) -> Result<Cascade, DspError> {
        check_rate(fs)?;
        if !(lo > 0.0 && hi > lo && hi < 0.49 * fs) {
            return invalid(format!(
                "band {lo}-{hi} Hz must satisfy 0 < lo < hi < 0.49 x sample rate ({fs} Hz)"
            ));
        }
        if n == 0 || n > 16 {
            return invalid(format!("band-pass prototype order must be 1..=16, got {n}"));
        }
        let warp = |f: f64| 2.0 * fs * (PI * f / fs).tan();
        let unwarp = |w: f64| (w / (2.0 * fs)).atan() * fs / PI;
        let (wl, wh) = (warp(lo), warp(hi));
        let w0 = (wl * wh).sqrt();
        let b = wh - wl;
        let mut coeffs = Vec::with_capacity(n);
        // Prototype poles in the upper half plane: exp(jπ(2k+n+1)/(2n)); a real pole (odd n)
        // at −1 maps to one conjugate pair.
        for k in 0..n {
            let th = PI * (2 * k + n + 1) as f64 / (2 * n) as f64;
            let (pr, pi) = (th.cos(), th.sin());
            if pi < -1e-12 {
                continue;
            }
            // Roots of s² − p·B·s + w0² = 0.
            let (br, bi) = (pr * b, pi * b);
            // disc = (pB)² − 4 w0²
            let (dr, di) = (br * br - bi * bi - 4.0 * w0 * w0, 2.0 * br * bi);
            let (sr, si) = csqrt(dr, di);
            let roots = [
                ((br + sr) / 2.0, (bi + si) / 2.0),
                ((br - sr) / 2.0, (bi - si) / 2.0),
            ];
            let real_pole = pi.abs() <= 1e-12;
            for (i, &(rr, ri)) in roots.iter().enumerate() {
                if real_pole && i == 1 {
                    break; // the two roots of a real prototype pole are conjugates: one section
                }
                let w = (rr * rr + ri * ri).sqrt();
                let q = w / (-2.0 * rr);
                coeffs.push(section(Type::BandPass, fs, unwarp(w), q)?);
            }
        }
        let mut c = Cascade::from_sections(coeffs, fs, channels);
        let g = c.magnitude(unwarp(w0));
        if !(g.is_finite() && g > 0.0) {
            return invalid(format!("band {lo}-{hi} Hz at {fs} Hz: degenerate filter"));
        }
        c.gain = 1.0 / g;
        Ok(c)
    }

    /// Butterworth high-pass at `fc` Hz (−3 dB) of order `2·n` at `fs`, for `channels` channels.
    pub fn highpass(fs: f64, fc: f64, n: usize, channels: usize) -> Result<Cascade, DspError> {
        check_rate(fs)?;
        if !(fc > 0.0 && fc < 0.49 * fs) {
            return invalid(format!(
                "high-pass cut-off {fc} Hz must be in (0, 0.49 x sample rate = {} Hz)",
                0.49 * fs
            ));
        }
        if n == 0 || n > 16 {
            return invalid(format!("high-pass section count must be 1..=16, got {n}"));
        }
        let order = 2 * n;
        let coeffs = (0..n)
            .map(|k| {
                let q = 1.0 / (2.0 * (PI * (2 * k + 1) as f64 / (2 * order) as f64).sin());
                section(Type::HighPass, fs, fc, q)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Cascade::from_sections(coeffs, fs, channels))
    }

    fn from_sections(coeffs: Vec<Coefficients<f64>>, fs: f64, channels: usize) -> Cascade {
        let state = (0..channels)
            .flat_map(|_| coeffs.iter().map(|&c| DirectForm2Transposed::<f64>::new(c)))
            .collect::<Vec<_>>()
            .into_boxed_slice();
        Cascade {
            coeffs,
            gain: 1.0,
            state,
            fs,
        }
    }

    /// Number of second-order sections.
    pub fn sections(&self) -> usize {
        self.coeffs.len()
    }

    /// Magnitude response at `f_hz` (gain included).
    pub fn magnitude(&self, f_hz: f64) -> f64 {
        let w = 2.0 * PI * f_hz / self.fs;
        let (c1, s1, c2, s2) = (w.cos(), w.sin(), (2.0 * w).cos(), (2.0 * w).sin());
        let mut mag = self.gain;
        for c in &self.coeffs {
            // H = (b0 + b1 z⁻¹ + b2 z⁻²) / (1 + a1 z⁻¹ + a2 z⁻²), z⁻¹ = e^{−jw}
            let (nr, ni) = (c.b0 + c.b1 * c1 + c.b2 * c2, -(c.b1 * s1 + c.b2 * s2));
            let (dr, di) = (1.0 + c.a1 * c1 + c.a2 * c2, -(c.a1 * s1 + c.a2 * s2));
            mag *= ((nr * nr + ni * ni) / (dr * dr + di * di)).sqrt();
        }
        mag
    }

    /// Filters one sample of channel `ch`.
    #[inline]
    pub fn run(&mut self, ch: usize, x: f64) -> f64 {
        let n = self.coeffs.len();
        let mut y = x * self.gain;
        for s in &mut self.state[ch * n..(ch + 1) * n] {
            y = s.run(y);
        }
        y
    }

    /// True while channel `ch`'s state is finite (false after a NaN/∞ went through).
    pub fn run_is_finite(&self, ch: usize) -> bool {
        let n = self.coeffs.len();
        self.state[ch * n..(ch + 1) * n]
            .iter()
            .all(|s| s.s1.is_finite() && s.s2.is_finite())
    }

    /// Zeroes every channel's state.
    pub fn reset(&mut self) {
        for s in self.state.iter_mut() {
            s.reset_state();
        }
    }

    /// Zeroes one channel's state.
    pub fn reset_channel(&mut self, ch: usize) {
        let n = self.coeffs.len();
        for s in &mut self.state[ch * n..(ch + 1) * n] {
            s.reset_state();
        }
    }
}

/// Principal square root of a complex number.
fn csqrt(re: f64, im: f64) -> (f64, f64) {
    let r = (re * re + im * im).sqrt();
    let a = ((r + re) / 2.0).max(0.0).sqrt();
    let b = ((r - re) / 2.0).max(0.0).sqrt();
    (a, if im < 0.0 { -b } else { b })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(x: f64) -> f64 {
        20.0 * x.log10()
    }

    #[test]
    fn bandpass_edges_are_minus_3_db_and_centre_is_0_db() {
        for &(fs, lo, hi, n) in &[
            (300.0, 8.0, 12.0, 6),
            (40.0, 1.0, 4.0, 6),
            (2000.0, 80.0, 200.0, 4),
            (30000.0, 300.0, 3000.0, 2),
            (1000.0, 13.0, 30.0, 5),
        ] {
            let c = Cascade::bandpass(fs, lo, hi, n, 1).unwrap();
            assert_eq!(c.sections(), n);
            let f0 = (lo * hi).sqrt();
            assert!(
                (db(c.magnitude(lo)) + 3.01).abs() < 0.3,
                "lo {}",
                db(c.magnitude(lo))
            );
            assert!(
                (db(c.magnitude(hi)) + 3.01).abs() < 0.3,
                "hi {}",
                db(c.magnitude(hi))
            );
            assert!(db(c.magnitude(f0)).abs() < 0.3);
        }
    }

    #[test]
    fn highpass_is_butterworth() {
        let c = Cascade::highpass(30000.0, 300.0, 2, 1).unwrap();
        assert!((db(c.magnitude(300.0)) + 3.01).abs() < 0.05);
        assert!(db(c.magnitude(3000.0)).abs() < 0.01);
        // 4th order: −24 dB/octave well below the cut-off.
        assert!(db(c.magnitude(30.0)) < -75.0);
    }

    #[test]
    fn running_a_sine_matches_the_response() {
        let fs = 300.0;
        let mut c = Cascade::bandpass(fs, 8.0, 12.0, 6, 2).unwrap();
        for &(f, ch) in &[(10.0, 0usize), (20.0, 1usize)] {
            let mut peak: f64 = 0.0;
            for i in 0..6000 {
                let y = c.run(ch, (2.0 * PI * f * i as f64 / fs).sin());
                if i > 3000 {
                    peak = peak.max(y.abs());
                }
            }
            assert!((peak - c.magnitude(f)).abs() < 0.01 * c.magnitude(f).max(1e-3));
        }
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Cascade::bandpass(300.0, 12.0, 8.0, 4, 1).is_err());
        assert!(Cascade::bandpass(300.0, 8.0, 200.0, 4, 1).is_err());
        assert!(Cascade::bandpass(f64::NAN, 8.0, 12.0, 4, 1).is_err());
        assert!(Cascade::highpass(1000.0, 600.0, 2, 1).is_err());
        assert!(Cascade::highpass(1000.0, 100.0, 0, 1).is_err());
    }
}
