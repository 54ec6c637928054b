//! Exact per-block sums: the building blocks of the drift-free sliding windows.

/// Exact sums of one block of samples of one channel.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Acc {
    pub(super) n: u64,
    pub(super) sum: f64,
    pub(super) sumsq: f64,
    pub(super) peak: f32,
    pub(super) line: f64,
    pub(super) cross: u64,
}

impl Acc {
    pub(super) fn merge(&mut self, o: &Acc) {
        self.n += o.n;
        self.sum += o.sum;
        self.sumsq += o.sumsq;
        self.peak = self.peak.max(o.peak);
        self.line += o.line;
        self.cross += o.cross;
    }
}

/// Exact sums of one block of band-passed samples.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BandAcc {
    pub(super) n: u64,
    pub(super) sumsq: f64,
}

/// Baseline statistics of one block of ticks.
#[derive(Debug, Clone, Copy)]
pub(super) struct NormAcc {
    pub(super) n: u64,
    pub(super) sum: f64,
    pub(super) sumsq: f64,
    pub(super) min: f64,
    pub(super) max: f64,
}

impl Default for NormAcc {
    fn default() -> Self {
        NormAcc {
            n: 0,
            sum: 0.0,
            sumsq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

impl NormAcc {
    pub(super) fn add(&mut self, v: f64) {
        self.n += 1;
        self.sum += v;
        self.sumsq += v * v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
    pub(super) fn merge(&mut self, o: &NormAcc) {
        self.n += o.n;
        self.sum += o.sum;
        self.sumsq += o.sumsq;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// Blocks in a normalisation baseline (plus the current one).
pub(super) const NORM_BLOCKS: usize = 16;

/// Per-channel running sums of the current block in 8 lanes; sample `i` after the reset
/// always goes to lane `i % 8`, so the sums do not depend on how the stream is split into
/// blocks (bit-identical results), and the lanes vectorise.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Lanes {
    pub(super) s: [f64; 8],
    pub(super) q: [f64; 8],
    pub(super) l: [f64; 8],
}

pub(super) fn fold8(a: &[f64; 8]) -> f64 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

impl Lanes {
    /// Adds the segment `x` whose first sample has global index `pos`; `prev` is the sample
    /// before it (or `x[0]` when there is none). Returns max |x| of the segment.
    #[inline]
    pub(super) fn add(&mut self, pos: u64, prev: f32, x: &[f32]) -> f32 {
        let mut lane = (pos % 8) as usize;
        let mut peak = 0.0f32;
        let mut i = 0;
        let mut p = prev;
        // Head: the first sample (its predecessor is `prev`) and up to lane 0.
        while i < x.len() && (i == 0 || lane != 0) {
            let v = x[i];
            self.s[lane] += v as f64;
            self.q[lane] += (v as f64) * (v as f64);
            self.l[lane] += (v - p).abs() as f64;
            peak = peak.max(v.abs());
            p = v;
            lane = (lane + 1) % 8;
            i += 1;
        }
        if i == x.len() {
            return peak;
        }
        // Body: whole groups of 8 starting at lane 0; x[i - 1] exists.
        let body = (x.len() - i) / 8 * 8;
        let cur = &x[i..i + body];
        let before = &x[i - 1..i - 1 + body];
        let mut pk = [0.0f32; 8];
        for (c, b) in cur.chunks_exact(8).zip(before.chunks_exact(8)) {
            for j in 0..8 {
                let v = c[j];
                let d = v as f64;
                self.s[j] += d;
                self.q[j] += d * d;
                self.l[j] += (v - b[j]).abs() as f64;
                pk[j] = pk[j].max(v.abs());
            }
        }
        peak = pk.iter().fold(peak, |a, &b| a.max(b));
        i += body;
        // Tail, from lane 0.
        let mut lane = 0;
        while i < x.len() {
            let v = x[i];
            self.s[lane] += v as f64;
            self.q[lane] += (v as f64) * (v as f64);
            self.l[lane] += (v - x[i - 1]).abs() as f64;
            peak = peak.max(v.abs());
            lane += 1;
            i += 1;
        }
        peak
    }

    /// Moves the sums into `acc` and clears the lanes.
    pub(super) fn drain_into(&mut self, acc: &mut Acc) {
        acc.sum += fold8(&self.s);
        acc.sumsq += fold8(&self.q);
        acc.line += fold8(&self.l);
        *self = Lanes::default();
    }
}
