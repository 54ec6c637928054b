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
