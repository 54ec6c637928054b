//! Feature names, normalisation modes and the extractor's parameters (config keys).

use crate::dsp::{invalid, DspError};
use std::fmt;

/// The named bands of `band:<name>` (name, low edge Hz, high edge Hz).
pub const NAMED_BANDS: [(&str, f64, f64); 6] = [
    ("delta", 1.0, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 12.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 80.0),
    ("high_gamma", 80.0, 200.0),
];

/// Prototype order of the band-pass filters (sections; the band-pass order is twice this).
pub const BAND_SECTIONS: usize = 6;

/// One feature.
#[derive(Debug, Clone, PartialEq)]
pub enum Feature {
    /// Root mean square.
    Rms,
    /// Max |x|.
    Peak,
    /// Mean.
    Mean,
    /// Sum of |x\[i\] − x\[i−1\]|.
    LineLength,
    /// Mean square of the band-passed signal.
    Band {
        /// The name it was given with (`alpha`), or `None` for `band:<lo>-<hi>`.
        name: Option<&'static str>,
        /// Low edge (Hz, −3 dB).
        lo: f64,
        /// High edge (Hz, −3 dB).
        hi: f64,
    },
    /// Threshold crossings per second.
    MuaRate,
}

const ACCEPTED: &str =
    "accepted: rms, peak, mean, line_length, mua_rate, band:<name> (delta, theta, alpha, beta, gamma, high_gamma) or band:<lo>-<hi> in Hz";

impl Feature {
    /// Parses `rms`, `peak`, `mean`, `line_length`, `mua_rate`, `band:alpha`, `band:8-12`.
    pub fn parse(s: &str) -> Result<Feature, DspError> {
        let bad = |reason: String| DspError::BadFeature {
            name: s.to_string(),
            reason,
        };
        let t = s.trim();
        match t {
            "rms" => return Ok(Feature::Rms),
            "peak" => return Ok(Feature::Peak),
            "mean" => return Ok(Feature::Mean),
            "line_length" => return Ok(Feature::LineLength),
            "mua_rate" => return Ok(Feature::MuaRate),
            _ => {}
        }
        let Some(spec) = t.strip_prefix("band:") else {
            return Err(bad(format!("unknown feature; {ACCEPTED}")));
        };
        if let Some(&(name, lo, hi)) = NAMED_BANDS.iter().find(|b| b.0 == spec) {
            return Ok(Feature::Band {
                name: Some(name),
                lo,
                hi,
            });
        }
        let Some((a, b)) = spec.split_once('-') else {
            return Err(bad(format!(
                "{spec:?} is neither a named band nor <lo>-<hi>; {ACCEPTED}"
            )));
        };
        let num = |v: &str, which: &str| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| bad(format!("{which} edge {v:?} is not a number (Hz)")))
        };
        let (lo, hi) = (num(a, "low")?, num(b, "high")?);
        if !(lo > 0.0 && hi > lo) {
            return Err(bad(format!(
                "band edges must satisfy 0 < lo < hi, got {lo}-{hi} Hz"
            )));
        }
        Ok(Feature::Band { name: None, lo, hi })
    }

    /// Canonical name (`rms`, `band:alpha`, `band:8-12`), e.g. for OSC addresses.
    pub fn label(&self) -> String {
        match self {
            Feature::Rms => "rms".into(),
            Feature::Peak => "peak".into(),
            Feature::Mean => "mean".into(),
            Feature::LineLength => "line_length".into(),
            Feature::MuaRate => "mua_rate".into(),
            Feature::Band { name: Some(n), .. } => format!("band:{n}"),
            Feature::Band { name: None, lo, hi } => format!("band:{lo}-{hi}"),
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

impl std::str::FromStr for Feature {
    type Err = DspError;
    fn from_str(s: &str) -> Result<Feature, DspError> {
        Feature::parse(s)
    }
}

/// Normalisation of feature values against a running baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Normalize {
    /// Raw values.
    #[default]
    None,
    /// (value − mean) / std of the baseline.
    Zscore,
    /// (value − min) / (max − min) of the baseline.
    Minmax,
}

impl Normalize {
    /// Parses `none`, `zscore`, `minmax`.
    pub fn parse(s: &str) -> Result<Normalize, DspError> {
        match s.trim() {
            "none" => Ok(Normalize::None),
            "zscore" => Ok(Normalize::Zscore),
            "minmax" => Ok(Normalize::Minmax),
            _ => invalid(format!(
                "normalize must be one of none, zscore, minmax; got {s:?}"
            )),
        }
    }
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Normalize::None => "none",
            Normalize::Zscore => "zscore",
            Normalize::Minmax => "minmax",
        }
    }
}

/// Parameters of a [`FeatureExtractor`](super::FeatureExtractor) (the output's config keys).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureConfig {
    /// Features, in output order.
    pub features: Vec<Feature>,
    /// `feature_rate` (Hz), default 60.
    pub feature_rate: f64,
    /// `feature_window_ms`, default 250.
    pub feature_window_ms: f64,
    /// `normalize`, default none.
    pub normalize: Normalize,
    /// `normalize_window_s`, default 10.
    pub normalize_window_s: f64,
    /// `mua_threshold`: k in threshold = k·σ, default −4.5 (negative: downward crossings).
    pub mua_threshold: f64,
    /// `mua_refractory_ms`, default 1.
    pub mua_refractory_ms: f64,
    /// `mua_highpass_hz` (0 = off), default 300.
    pub mua_highpass_hz: f64,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        FeatureConfig {
            features: vec![Feature::Rms],
            feature_rate: 60.0,
            feature_window_ms: 250.0,
            normalize: Normalize::None,
            normalize_window_s: 10.0,
            mua_threshold: -4.5,
            mua_refractory_ms: 1.0,
            mua_highpass_hz: 300.0,
        }
    }
}
