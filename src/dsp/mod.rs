//! Sans-IO signal processing for the output shards: an anti-alias decimator
//! (`downsampling_method: "lowpass"`) and a control-rate feature extractor
//! (`"format": "features"`).
//!
//! Both follow the shard's rules: everything (filter taps, per-channel state, ring buffers,
//! scratch) is allocated in the constructor; the `process` calls only read and write that
//! memory, never allocate, lock or block. Per-channel state is carried across frames, so a
//! block split anywhere gives bit-identical output to one long block; `reset()` forgets it
//! (call it at a gap, a restart or a channel-set change, including a frame dropped by the
//! queue policy). Build a new object when the stream's rate or channel count changes.
//!
//! * [`fir`]: Kaiser-window FIR low-pass design and the polyphase [`fir::Decimator`]
//!   (one output computed per F inputs).
//! * [`iir`]: Butterworth band-pass and high-pass cascades of second-order sections built
//!   from the `biquad` crate's sections.
//! * [`features`]: `rms`, `peak`, `mean`, `line_length`, `band:<name>|<lo>-<hi>`,
//!   `mua_rate`, with `none`/`zscore`/`minmax` normalisation.
//! * [`noise`]: a fixed-histogram running median of |x| (robust noise level for `mua_rate`).
//!
//! ## Use from a shard
//!
//! Slot `i` of the objects is the i-th channel of the frame's channel list; build them when
//! the stream's rate or channel count changes, `reset()` them on `frame.discontinuity`.
//!
//! ```
//! use zmq2osc::dsp::features::{Feature, FeatureConfig, FeatureExtractor};
//! use zmq2osc::dsp::fir::Decimator;
//!
//! let (fs, channels, n) = (30000.0, 4, 696);
//! let rows: Vec<Vec<f32>> = (0..channels).map(|c| vec![c as f32; n]).collect();
//!
//! // downsampling_method "lowpass", F = 30: one output per 30 inputs and channel.
//! let mut dec = Decimator::new(fs, 30, channels).unwrap();
//! let mut out = vec![0.0f32; n / 30 + 1]; // allocated once, at start-up
//! for (ch, row) in rows.iter().enumerate() {
//!     let k = dec.process(ch, row, &mut out);
//!     assert_eq!(k, n / 30); // then send out[..k]
//! }
//!
//! // "format": "features"
//! let cfg = FeatureConfig {
//!     features: vec![Feature::parse("rms").unwrap(), Feature::parse("band:alpha").unwrap()],
//!     ..FeatureConfig::default()
//! };
//! let mut fx = FeatureExtractor::new(&cfg, fs, channels).unwrap();
//! let mut values = vec![0.0f32; fx.values_len()]; // allocated once
//! let mut ticks = 0;
//! fx.process(n, |ch| &rows[ch][..], &mut values, |_offset, v| {
//!     ticks += 1; // v[f * channels + ch]: send one message per tick
//!     assert_eq!(v.len(), 2 * channels);
//! });
//! assert_eq!(ticks, 1); // 696 samples at 30 kHz: one 60 Hz tick (at sample 500)
//! ```

pub mod features;
pub mod fir;
pub mod iir;
pub mod noise;

use std::fmt;

/// A DSP object could not be built from the given parameters, or a feature name is bad.
#[derive(Debug, Clone, PartialEq)]
pub enum DspError {
    /// A parameter is out of range; the text says which and why.
    Invalid(String),
    /// A feature name (`rms`, `band:alpha`, `band:8-12`, ...) could not be parsed.
    BadFeature {
        /// The name as given.
        name: String,
        /// Why it was refused, with the accepted forms.
        reason: String,
    },
}

impl fmt::Display for DspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DspError::Invalid(s) => f.write_str(s),
            DspError::BadFeature { name, reason } => {
                write!(f, "bad feature name {name:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for DspError {}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T, DspError> {
    Err(DspError::Invalid(msg.into()))
}
