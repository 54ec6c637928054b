//! Running median of |x| on a fixed log-spaced histogram (no allocation after construction).
//!
//! Bins follow the float32 bit pattern: the exponent and the top [`SUB_BITS`] mantissa bits
//! of |x| pick the bin, so each octave has 32 bins (≈ 2.2 % wide) over `2^-24 .. 2^24`
//! (values outside are clamped into the end bins). The median is read off the cumulative
//! counts with linear interpolation inside its bin (error well under 1 %). To follow a
//! changing noise level the counts are halved at every [`NoiseEstimator::decay`] call, so the
//! estimate weighs the recent past (the caller decays every 0.5 s: a half-life of 0.5 s,
//! about one second of samples in the estimate).

/// Mantissa bits used below the exponent: 2^5 = 32 bins per octave.
pub const SUB_BITS: u32 = 5;
const LOW_EXP: i32 = -24;
const HIGH_EXP: i32 = 24;
/// Bins per estimator.
pub const BINS: usize = ((HIGH_EXP - LOW_EXP) as usize) << SUB_BITS;
const SHIFT: u32 = 23 - SUB_BITS;
/// `bits >> SHIFT` of the smallest binned value, 2^LOW_EXP.
const BASE: u32 = ((LOW_EXP + 127) as u32) << SUB_BITS;

/// Bin of |x| (NaN counts as the smallest bin).
#[inline]
pub fn bin_of(x: f32) -> usize {
    let key = (x.abs().to_bits() >> SHIFT).saturating_sub(BASE) as usize;
    key.min(BINS - 1)
}

/// Lower edge of bin `i`.
#[inline]
pub fn bin_floor(i: usize) -> f32 {
    f32::from_bits((i as u32 + BASE) << SHIFT)
}

/// Histogram-based running median of |x| for many channels.
#[derive(Debug, Clone)]
pub struct NoiseEstimator {
    /// `channels × BINS` counts.
    counts: Box<[u32]>,
    totals: Box<[u64]>,
}

impl NoiseEstimator {
    /// Empty histograms for `channels` channels.
    pub fn new(channels: usize) -> NoiseEstimator {
        NoiseEstimator {
            counts: vec![0u32; channels * BINS].into_boxed_slice(),
            totals: vec![0u64; channels].into_boxed_slice(),
        }
    }

    /// Counts |x| of one sample of channel `ch`.
    #[inline]
    pub fn add(&mut self, ch: usize, x: f32) {
        let c = &mut self.counts[ch * BINS + bin_of(x)];
        *c = c.saturating_add(1);
        self.totals[ch] += 1;
    }

    /// Samples currently weighing in channel `ch`'s histogram.
    pub fn total(&self, ch: usize) -> u64 {
        self.totals[ch]
    }

    /// Median of |x| of channel `ch` (None while empty).
    pub fn median(&self, ch: usize) -> Option<f32> {
        let total = self.totals[ch];
        if total == 0 {
            return None;
        }
        let half = total as f64 / 2.0;
        let counts = &self.counts[ch * BINS..(ch + 1) * BINS];
        let mut cum = 0.0f64;
        for (i, &c) in counts.iter().enumerate() {
            let next = cum + c as f64;
            if c > 0 && next >= half {
                let lo = bin_floor(i) as f64;
                let hi = if i + 1 < BINS {
                    bin_floor(i + 1) as f64
                } else {
                    lo * 2.0
                };
                let frac = (half - cum) / c as f64;
                return Some((lo + frac * (hi - lo)) as f32);
            }
            cum = next;
        }
        None
    }

    /// Halves channel `ch`'s counts (older samples weigh less).
    pub fn decay(&mut self, ch: usize) {
        let mut t = 0u64;
        for c in &mut self.counts[ch * BINS..(ch + 1) * BINS] {
            *c >>= 1;
            t += *c as u64;
        }
        self.totals[ch] = t;
    }

    /// Empties every histogram.
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.totals.fill(0);
    }

    /// Empties one channel's histogram.
    pub fn reset_channel(&mut self, ch: usize) {
        self.counts[ch * BINS..(ch + 1) * BINS].fill(0);
        self.totals[ch] = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_monotonic_and_edges_round_trip() {
        let mut last = 0;
        let mut x = 1e-6f32;
        while x < 1e6 {
            let b = bin_of(x);
            assert!(b >= last);
            assert!(bin_floor(b) <= x && (b + 1 == BINS || x < bin_floor(b + 1)));
            last = b;
            x *= 1.013;
        }
        assert_eq!(bin_of(0.0), 0);
        assert_eq!(bin_of(f32::INFINITY), BINS - 1);
        assert_eq!(bin_of(-3.0), bin_of(3.0));
    }

    #[test]
    fn median_of_uniform_values_within_one_percent() {
        let mut e = NoiseEstimator::new(2);
        assert_eq!(e.median(1), None);
        // |x| uniform on (0, 100): median 50. Channel 1 scaled by 1e-3.
        for i in 0..100_000 {
            let v = (i as f32 + 0.5) * 1e-3;
            e.add(0, -v);
            e.add(1, v * 1e-3);
        }
        let m0 = e.median(0).unwrap();
        let m1 = e.median(1).unwrap();
        assert!((m0 - 50.0).abs() < 0.5, "{m0}");
        assert!((m1 - 0.05).abs() < 0.0005, "{m1}");
        e.decay(0);
        assert!((e.total(0) as i64 - 50_000).abs() < 2000);
        e.reset_channel(0);
        assert_eq!(e.median(0), None);
        assert!(e.median(1).is_some());
        e.reset();
        assert_eq!(e.median(1), None);
    }
}
