//! Block sizes and the test signals the simulator sends.

/// How many samples each simulated block carries.
#[derive(Debug, Clone, PartialEq)]
pub enum BlockSize {
    /// What the GUI does with a File Reader source: `int(1024 * fs / 44100)` samples per block,
    /// constant (696 at 30 kHz, 928 at 40 kHz; spec §6.1).
    Gui,
    /// Every block has exactly this many samples (must be > 0).
    Fixed(usize),
    /// Blocks alternate between the two sizes, starting with the first (hardware-like 696/697).
    Alternating(usize, usize),
    /// Sizes drawn uniformly from `min..=max` by a deterministic PRNG seeded from [`Faults::seed`].
    Jitter {
        /// Smallest block (must be > 0).
        min: usize,
        /// Largest block (must be >= `min`).
        max: usize,
    },
}

impl BlockSize {
    /// The GUI block size for a sample rate: `int(1024 * fs / 44100)` (at least 1).
    pub fn gui_block(sample_rate: f64) -> usize {
        let n = (1024.0 * sample_rate / 44100.0).floor();
        if n.is_finite() && n >= 1.0 {
            n as usize
        } else {
            1
        }
    }
}

/// The values the simulator puts in the payload. `j` is the absolute stream sample index
/// (`sample_num + i`), `ch` the Open Ephys local channel number.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// `(ch * wrap + (j mod wrap)) as f32` — exact (every value distinct and exactly representable)
    /// while `ch * wrap + wrap <= 2^24`; see [`pattern_wrap`]. A `wrap` of 0 is treated as 1.
    Pattern {
        /// Period of the per-channel ramp.
        wrap: u32,
    },
    /// `ch * 1000 + j` (the acceptance vectors of spec §4.3), computed in `f64`, then rounded to `f32`.
    Ramp,
    /// `100 * sin(2π (10 + ch) j / fs)` µV. [`signal_value`] assumes fs = 30 kHz; the simulator uses
    /// the configured sample rate (see [`signal_value_fs`]).
    Sine,
}

/// The largest `wrap` such that [`Signal::Pattern`] is exact for channels `0..=max_channel_num`:
/// `2^24 / next_power_of_two(max_channel_num + 1)` (255 → 65536, 1023 → 16384, 7 → 2097152).
/// Never returns 0 (returns 1 when more than 2^24 channels are requested, where exactness is lost).
pub fn pattern_wrap(max_channel_num: u32) -> u32 {
    let p = (u64::from(max_channel_num) + 1).next_power_of_two();
    let w = (1u64 << 24) / p;
    w.max(1) as u32
}

/// [`Signal::Pattern`] value of channel `ch` at absolute sample index `j`:
/// `(ch * wrap + (j mod wrap)) as f32` (`wrap == 0` is treated as 1). The sink checks received
/// values against this same function.
pub fn pattern_value(wrap: u32, ch: u32, j: i64) -> f32 {
    let w = i64::from(wrap.max(1));
    let v = i64::from(ch) * w + j.rem_euclid(w);
    v as f32
}

/// Value of sample `j` of channel `ch` (for [`Signal::Sine`] with a 30 kHz sample rate).
pub fn signal_value(sig: &Signal, ch: u32, j: i64) -> f32 {
    signal_value_fs(sig, ch, j, 30_000.0)
}

/// Value of sample `j` of channel `ch` for a stream sampled at `sample_rate` Hz (only
/// [`Signal::Sine`] depends on the rate). This is what the [`Simulator`] sends.
pub fn signal_value_fs(sig: &Signal, ch: u32, j: i64, sample_rate: f64) -> f32 {
    match sig {
        Signal::Pattern { wrap } => pattern_value(*wrap, ch, j),
        Signal::Ramp => (f64::from(ch) * 1000.0 + j as f64) as f32,
        Signal::Sine => {
            if !(sample_rate.is_finite() && sample_rate > 0.0) {
                return 0.0;
            }
            let f = 10.0 + f64::from(ch);
            // Reduce the phase in whole periods of the (rational) frequency to keep precision.
            let cycles = f * j as f64 / sample_rate;
            let phase = cycles - cycles.floor();
            (100.0 * (std::f64::consts::TAU * phase).sin()) as f32
        }
    }
}
