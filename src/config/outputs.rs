//! The `outputs` list (new) and the original's single output: both become
//! [`OutputSpec`]s, the one type the engine runs.
//!
//! An entry's keys are defined once in [`OutputEntry`] (serde); keys it leaves out take
//! their defaults from `osc.*` when the entry is resolved ([`OutputEntry::resolve`]), after
//! the rest of the file is known.

use super::error::{CResult, ConfigError};
use super::values::{self, describe, MAX_MILLIS};
use super::{Config, DownsamplingMethod};
use crate::dsp::features::{Feature, FeatureConfig, FeatureExtractor, Normalize};
use crate::output::{BundleMode, Mode, OutputFormat, OutputSpec, SIZE_PROFILES};
use serde::de::{Deserializer, Error as _, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Most entries accepted in `outputs`.
pub const MAX_OUTPUTS: usize = 16;

/// One entry of `outputs` as written; `None` = not given (default applies).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, expecting = "an output object")]
pub struct OutputEntry {
    /// `name`: shown in reports. Default `output<i>`.
    #[serde(deserialize_with = "values::some_nonempty")]
    pub name: Option<String>,
    /// `host` (default `osc.host`): unicast, broadcast or multicast group.
    #[serde(deserialize_with = "values::some_nonempty")]
    pub host: Option<String>,
    /// `port` (default `osc.port`).
    #[serde(deserialize_with = "values::some_int::<_, _, 1, 65535>")]
    pub port: Option<u16>,
    /// `format`: `sample` (default), `batch`, `per_channel`, `blob`, `features`.
    #[serde(deserialize_with = "values::some")]
    pub format: Option<FormatKey>,
    /// `base_address` (default `osc.base_address`).
    #[serde(deserialize_with = "values::some_base_address")]
    pub base_address: Option<String>,
    /// `address` (per-channel format): template, default `{base}/ch{ch:03}`.
    #[serde(deserialize_with = "values::some_string")]
    pub address: Option<String>,
    /// `channels`: `"0-15,32"` or `[3, 1, "8-11"]` (checked against
    /// `performance.max_channels` when resolved).
    #[serde(deserialize_with = "values::some")]
    pub channels: Option<Value>,
    /// `names`: `{"0": "Fp1", …}` renames used by `{name}`.
    #[serde(deserialize_with = "values::some")]
    pub names: Option<Value>,
    /// `layout`: `dense` (default) or `sparse`.
    #[serde(deserialize_with = "values::some")]
    pub layout: Option<LayoutKind>,
    /// Downsampling factor (default `osc.processing.downsampling_factor`).
    #[serde(deserialize_with = "values::some_int::<_, _, 1, 1000>")]
    pub downsampling_factor: Option<u32>,
    /// Downsampling method (default `osc.processing.downsampling_method`).
    #[serde(deserialize_with = "values::some")]
    pub downsampling_method: Option<DownsamplingMethod>,
    /// Rows per batch (batch and blob formats; default `osc.processing.batch_size` in
    /// batching mode, else 10).
    #[serde(deserialize_with = "values::some_int::<_, _, 1, 1000>")]
    pub batch_size: Option<u32>,
    /// Partial-batch timer in ms (default `osc.processing.batch_timeout_ms`).
    #[serde(deserialize_with = "values::some_positive::<_, MAX_MILLIS>")]
    pub batch_timeout_ms: Option<f64>,
    /// `max_datagram`: bytes (64..=65507) or a profile name (lan 1472 default, jumbo 9216,
    /// loopback 65507, python-osc 8192, oscp5 1536, oscjack 4096).
    #[serde(deserialize_with = "values::some")]
    pub max_datagram: Option<Value>,
    /// `pacing`: `off` (default) or `smooth`.
    #[serde(deserialize_with = "values::some")]
    pub pacing: Option<Pacing>,
    /// `sample_number`: append the row's first input sample index as two `i`.
    #[serde(deserialize_with = "values::some_bool")]
    pub sample_number: Option<bool>,
    /// `bundle`: `false`/`"off"` (default), `true`/`"immediate"`, `"sample_clock"`.
    #[serde(deserialize_with = "values::some")]
    pub bundle: Option<BundleMode>,
    /// `events`: send TTL events to `{base}/ttl`.
    #[serde(deserialize_with = "values::some_bool")]
    pub events: Option<bool>,
    /// `spikes`: send spikes to `{base}/spike`.
    #[serde(deserialize_with = "values::some_bool")]
    pub spikes: Option<bool>,
    /// `spike_waveform`: include the waveform floats.
    #[serde(deserialize_with = "values::some_bool")]
    pub spike_waveform: Option<bool>,
    /// `status`: once a second `{base}/status` with counters.
    #[serde(deserialize_with = "values::some_bool")]
    pub status: Option<bool>,
    /// `notices`: `{base}/notice` when the channel set, stream or rate changes.
    #[serde(deserialize_with = "values::some_bool")]
    pub notices: Option<bool>,
    /// `multicast_ttl` (0..=255, default 1).
    #[serde(deserialize_with = "values::some_int::<_, _, 0, 255>")]
    pub multicast_ttl: Option<u32>,
    /// `source`: the name of the `zmq.sources` entry this output carries (default the
    /// first); checked once the whole file is read.
    #[serde(deserialize_with = "values::some_nonempty")]
    pub source: Option<String>,
    /// `features` (format `features`): names, e.g. `["rms", "band:alpha", "band:8-12",
    /// "mua_rate"]`; default `["rms"]`.
    #[serde(deserialize_with = "values::some")]
    pub features: Option<Value>,
    /// `feature_rate` in Hz (default 60).
    #[serde(deserialize_with = "values::some_positive::<_, 10_000>")]
    pub feature_rate: Option<f64>,
    /// `feature_window_ms` (default 250).
    #[serde(deserialize_with = "values::some_positive::<_, 60_000>")]
    pub feature_window_ms: Option<f64>,
    /// `normalize`: `none` (default), `zscore`, `minmax`.
    #[serde(deserialize_with = "values::some")]
    pub normalize: Option<NormalizeKey>,
    /// `normalize_window_s` (default 10).
    #[serde(deserialize_with = "values::some_positive::<_, 3600>")]
    pub normalize_window_s: Option<f64>,
    /// `mua_threshold`: k in threshold = k·σ (default −4.5; negative = downward crossings).
    #[serde(deserialize_with = "values::some")]
    pub mua_threshold: Option<Value>,
    /// `mua_refractory_ms` (≥ 0, default 1).
    #[serde(deserialize_with = "values::some")]
    pub mua_refractory_ms: Option<Value>,
    /// `mua_highpass_hz` (≥ 0, 0 = off, default 300).
    #[serde(deserialize_with = "values::some")]
    pub mua_highpass_hz: Option<Value>,
}

values::json_enum! {
    /// `outputs[].format`.
    pub enum FormatKey {
        /// [`Mode::Sample`].
        Sample = "sample",
        /// [`Mode::Batch`].
        Batch = "batch",
        /// [`Mode::PerChannel`].
        PerChannel = "per_channel",
        /// [`Mode::Blob`].
        Blob = "blob",
        /// Control-rate features ([`OutputFormat::features`]).
        Features = "features",
    }
}

values::json_enum! {
    /// `outputs[].normalize`.
    pub enum NormalizeKey {
        /// Raw values.
        None = "none",
        /// (value − mean) / std over `normalize_window_s`.
        Zscore = "zscore",
        /// (value − min) / (max − min) over `normalize_window_s`.
        Minmax = "minmax",
    }
}

/// Sample rate the feature settings are checked against at load (the stream's rate is
/// known only when it arrives; a setting that does not fit it is counted then).
pub const FEATURE_CHECK_RATE: f64 = 30_000.0;

/// Keys that only a `features` output reads.
const FEATURE_KEYS: [&str; 8] = [
    "features",
    "feature_rate",
    "feature_window_ms",
    "normalize",
    "normalize_window_s",
    "mua_threshold",
    "mua_refractory_ms",
    "mua_highpass_hz",
];

values::json_enum! {
    /// `outputs[].layout`.
    pub enum LayoutKind {
        /// Channels packed in selection order (default).
        Dense = "dense",
        /// Argument index = channel number; absent channels are NaN.
        Sparse = "sparse",
    }
}

values::json_enum! {
    /// `outputs[].pacing`.
    pub enum Pacing {
        /// Send as fast as encoded (default).
        Off = "off",
        /// Spread each block's datagrams over its duration.
        Smooth = "smooth",
    }
}

/// `outputs`: an array of at most [`MAX_OUTPUTS`] output objects.
pub fn output_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<OutputEntry>, D::Error> {
    struct List;
    impl<'de> Visitor<'de> for List {
        type Value = Vec<OutputEntry>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an array of output objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(values::Obj(e)) = seq.next_element::<values::Obj<OutputEntry>>()? {
                if out.len() == MAX_OUTPUTS {
                    return Err(A::Error::custom(format!("at most {MAX_OUTPUTS} outputs")));
                }
                out.push(e);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(List)
}

impl OutputEntry {
    /// The output this entry describes, defaults taken from `cfg` (`osc.*`,
    /// `performance.*`). `i` is its index (for the default name and key paths); warnings
    /// (e.g. a channel order a sparse layout ignores) go to `w`.
    ///
    /// # Errors
    /// A bad channel selection, rename, datagram size or per-channel template.
    pub fn resolve(&self, i: usize, cfg: &Config, w: &mut Vec<String>) -> CResult<OutputSpec> {
        let path = format!("outputs[{i}]");
        let p = |k: &str| format!("{path}.{k}");
        let pr = &cfg.osc.processing;
        let max_ch = cfg.performance.max_channels;
        let channels = self
            .channels
            .as_ref()
            .map(|v| parse_channel_list(v, &p("channels"), max_ch))
            .transpose()?;
        let mut names = Vec::new();
        if let Some(v) = &self.names {
            let kp = p("names");
            let Value::Object(nm) = v else {
                return Err(ConfigError::at(
                    &kp,
                    format!("expected an object, got {}", describe(v)),
                ));
            };
            for (ck, cv) in nm {
                let ch: u32 = ck.parse().ok().filter(|c| *c < max_ch).ok_or_else(|| {
                    ConfigError::at(
                        &kp,
                        format!("key '{ck}' is not a channel number below {max_ch}"),
                    )
                })?;
                let name = values::check_nonempty(cv)
                    .map_err(|e| ConfigError::at(&format!("{kp}.{ck}"), e))?;
                names.push((ch, name));
            }
        }
        let max_datagram = match &self.max_datagram {
            None => 1472,
            Some(v @ Value::String(s)) => SIZE_PROFILES
                .iter()
                .find(|(n, _)| n == s)
                .map(|(_, b)| *b)
                .ok_or_else(|| {
                    ConfigError::at(
                        &p("max_datagram"),
                        format!(
                            "unknown profile {}; use bytes (64..65507) or one of lan, jumbo, loopback, python-osc, oscp5, oscjack",
                            describe(v)
                        ),
                    )
                })?,
            Some(v) => values::check_int(v, 64, 65507)
                .map_err(|e| ConfigError::at(&p("max_datagram"), e))?,
        };
        let features = self.feature_config(&path, w)?;
        let mode = match self.format.unwrap_or(FormatKey::Sample) {
            FormatKey::Sample => Mode::Sample,
            // With an `address` template: one message per feature and channel.
            FormatKey::Features if self.address.is_some() => Mode::PerChannel,
            FormatKey::Features => Mode::Sample,
            FormatKey::Batch => Mode::Batch,
            FormatKey::PerChannel => Mode::PerChannel,
            FormatKey::Blob => Mode::Blob,
        };
        let address = self
            .address
            .clone()
            .unwrap_or_else(|| "{base}/ch{ch:03}".into());
        if mode == Mode::PerChannel {
            let probe = OutputFormat {
                channel_address_format: address.clone(),
                features: features.clone(),
                ..Default::default()
            };
            crate::output::spec::channel_templates(&probe)
                .map_err(|e| ConfigError::at(&p("address"), e))?;
        }
        let sparse = self.layout == Some(LayoutKind::Sparse);
        if sparse && channels.is_some() {
            w.push(format!(
                "{path}: layout 'sparse' places channels by number; the order given in 'channels' only selects"
            ));
        }
        let batch_size = self
            .batch_size
            .unwrap_or(if cfg.performance.enable_batching {
                pr.batch_size
            } else {
                10
            });
        let batch_timeout_ms = self.batch_timeout_ms.unwrap_or(pr.batch_timeout_ms);
        Ok(OutputSpec {
            name: self.name.clone().unwrap_or_else(|| format!("output{i}")),
            host: self.host.clone().unwrap_or_else(|| cfg.osc.host.clone()),
            port: self.port.unwrap_or(cfg.osc.port),
            pacing: self.pacing == Some(Pacing::Smooth),
            multicast_ttl: self.multicast_ttl.unwrap_or(1),
            source: self.source.clone(),
            format: OutputFormat {
                mode,
                base_address: self
                    .base_address
                    .clone()
                    .unwrap_or_else(|| cfg.osc.base_address.clone()),
                channel_address_format: address,
                // A features output does not downsample (its rate is `feature_rate`).
                factor: if features.is_some() {
                    1
                } else {
                    self.downsampling_factor.unwrap_or(pr.downsampling_factor) as usize
                },
                method: self.downsampling_method.unwrap_or(pr.downsampling_method),
                batch_size: batch_size as usize,
                batch_timeout: Duration::from_secs_f64(batch_timeout_ms / 1000.0),
                max_channels: max_ch as usize,
                selection: channels,
                names,
                sparse,
                max_datagram,
                split: true,
                sample_number: self.sample_number.unwrap_or(false),
                bundle: self.bundle.unwrap_or_default(),
                events: self.events.unwrap_or(false),
                spikes: self.spikes.unwrap_or(false),
                spike_waveform: self.spike_waveform.unwrap_or(false),
                status: self.status.unwrap_or(false),
                notices: self.notices.unwrap_or(false),
                features,
            },
        })
    }

    /// The feature settings of a `features` output (checked, with key paths); `None` for
    /// other formats (whose feature keys are warned about and ignored).
    fn feature_config(&self, path: &str, w: &mut Vec<String>) -> CResult<Option<FeatureConfig>> {
        let given = [
            self.features.is_some(),
            self.feature_rate.is_some(),
            self.feature_window_ms.is_some(),
            self.normalize.is_some(),
            self.normalize_window_s.is_some(),
            self.mua_threshold.is_some(),
            self.mua_refractory_ms.is_some(),
            self.mua_highpass_hz.is_some(),
        ];
        if self.format != Some(FormatKey::Features) {
            for (k, _) in FEATURE_KEYS.iter().zip(given).filter(|(_, g)| *g) {
                w.push(format!(
                    "{path}.{k} is ignored: only a \"format\": \"features\" output reads it"
                ));
            }
            return Ok(None);
        }
        if self.downsampling_factor.is_some() || self.downsampling_method.is_some() {
            w.push(format!(
                "{path}: downsampling does not apply to a features output (its rate is feature_rate)"
            ));
        }
        let p = |k: &str| format!("{path}.{k}");
        let mut fc = FeatureConfig::default();
        if let Some(v) = &self.features {
            let Value::Array(items) = v else {
                return Err(ConfigError::at(
                    &p("features"),
                    format!(
                        "expected an array of feature names like [\"rms\", \"band:alpha\"], got {}",
                        describe(v)
                    ),
                ));
            };
            if items.is_empty() {
                return Err(ConfigError::at(
                    &p("features"),
                    "at least one feature is needed",
                ));
            }
            fc.features.clear();
            for (j, it) in items.iter().enumerate() {
                let kp = format!("{path}.features[{j}]");
                let Value::String(name) = it else {
                    return Err(ConfigError::at(
                        &kp,
                        format!("expected a feature name, got {}", describe(it)),
                    ));
                };
                let f = Feature::parse(name).map_err(|e| ConfigError::at(&kp, e.to_string()))?;
                if fc.features.contains(&f) {
                    return Err(ConfigError::at(
                        &kp,
                        format!("feature {name:?} listed twice"),
                    ));
                }
                fc.features.push(f);
            }
        }
        if let Some(r) = self.feature_rate {
            fc.feature_rate = r;
        }
        if let Some(ms) = self.feature_window_ms {
            fc.feature_window_ms = ms;
        }
        if let Some(n) = self.normalize {
            fc.normalize = match n {
                NormalizeKey::None => Normalize::None,
                NormalizeKey::Zscore => Normalize::Zscore,
                NormalizeKey::Minmax => Normalize::Minmax,
            };
        }
        if let Some(s) = self.normalize_window_s {
            fc.normalize_window_s = s;
        }
        let number = |v: &Value, k: &str, ok: fn(f64) -> bool, what: &str| -> CResult<f64> {
            v.as_f64()
                .filter(|x| x.is_finite() && ok(*x))
                .ok_or_else(|| {
                    ConfigError::at(&p(k), format!("expected {what}, got {}", describe(v)))
                })
        };
        if let Some(v) = &self.mua_threshold {
            fc.mua_threshold = number(
                v,
                "mua_threshold",
                |x| x != 0.0 && x.abs() <= 100.0,
                "a non-zero number of noise sigmas within ±100 (negative: downward crossings)",
            )?;
        }
        if let Some(v) = &self.mua_refractory_ms {
            fc.mua_refractory_ms = number(
                v,
                "mua_refractory_ms",
                |x| (0.0..=1000.0).contains(&x),
                "a number of ms in 0..=1000",
            )?;
        }
        if let Some(v) = &self.mua_highpass_hz {
            fc.mua_highpass_hz = number(
                v,
                "mua_highpass_hz",
                |x| (0.0..=10_000.0).contains(&x),
                "a number of Hz in 0..=10000 (0 = off)",
            )?;
        }
        // Everything else (band edges, rates against each other) is the extractor's own
        // check, at the usual rate.
        FeatureExtractor::new(&fc, FEATURE_CHECK_RATE, 1).map_err(|e| {
            ConfigError::at(path, format!("{e} (checked at {FEATURE_CHECK_RATE} Hz)"))
        })?;
        Ok(Some(fc))
    }
}

impl Config {
    /// The output format the original's keys mean (exact original bytes; oversized messages
    /// are refused, never split).
    pub fn legacy_output_format(&self) -> OutputFormat {
        let p = &self.osc.processing;
        let mode = if self.osc.send_individual_channels {
            Mode::PerChannel
        } else if self.performance.enable_batching {
            Mode::Batch
        } else {
            Mode::Sample
        };
        OutputFormat {
            mode,
            base_address: self.osc.base_address.clone(),
            channel_address_format: self.osc.channel_address_format.clone(),
            factor: p.downsampling_factor as usize,
            method: p.downsampling_method,
            batch_size: self.effective_batch_size() as usize,
            batch_timeout: Duration::from_secs_f64(p.batch_timeout_ms / 1000.0),
            max_channels: self.performance.max_channels as usize,
            ..Default::default()
        }
    }

    /// The outputs this config describes: its `outputs` list, or the original's single
    /// output from `osc.*` (named `osc`).
    pub fn output_specs(&self) -> Vec<OutputSpec> {
        if !self.outputs.is_empty() {
            return self.outputs.clone();
        }
        vec![OutputSpec {
            name: "osc".into(),
            host: self.osc.host.clone(),
            port: self.osc.port,
            format: self.legacy_output_format(),
            pacing: false,
            multicast_ttl: 1,
            source: None,
        }]
    }
}

/// Parses a channel selection: `"0-15,32"`, or an array of numbers and range strings; every
/// channel below `max`, none twice, not empty.
///
/// # Errors
/// A malformed item or range, a channel at or above `max`, a repeat, an empty selection.
pub fn parse_channel_list(v: &Value, path: &str, max: u32) -> CResult<Vec<u32>> {
    let err = |why: String| ConfigError::at(path, why);
    let mut out = Vec::new();
    let mut add_item = |item: &str| -> CResult<()> {
        let item = item.trim();
        if item.is_empty() {
            return Ok(());
        }
        let (a, b) = match item.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (item, item),
        };
        let a: u32 = a
            .parse()
            .map_err(|_| err(format!("bad channel or range '{item}'")))?;
        let b: u32 = b
            .parse()
            .map_err(|_| err(format!("bad channel or range '{item}'")))?;
        if a > b || b >= max {
            return Err(err(format!(
                "channel range '{item}' must be ascending and below performance.max_channels ({max})"
            )));
        }
        out.extend(a..=b);
        Ok(())
    };
    match v {
        Value::String(s) => {
            for part in s.split(',') {
                add_item(part)?;
            }
        }
        Value::Array(items) => {
            for (i, it) in items.iter().enumerate() {
                match it {
                    Value::String(s) => add_item(s)?,
                    _ => {
                        let n: u32 = values::check_int(it, 0, i128::from(max) - 1)
                            .map_err(|e| ConfigError::at(&format!("{path}[{i}]"), e))?;
                        add_item(&n.to_string())?;
                    }
                }
            }
        }
        _ => {
            return Err(err(format!(
                "expected a string like \"0-15,32\" or an array, got {}",
                describe(v)
            )))
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &out {
        if !seen.insert(*c) {
            return Err(err(format!("channel {c} listed twice")));
        }
    }
    if out.is_empty() {
        return Err(err("the selection is empty".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod feature_tests {
    use crate::config::{Config, DownsamplingMethod};
    use crate::dsp::features::{Feature, Normalize};

    fn load(output: &str) -> Result<(Config, Vec<String>), crate::config::ConfigError> {
        Config::from_json_str(&format!(r#"{{"outputs": [{{"port": 9000}}, {output}]}}"#))
    }

    fn err_path(output: &str) -> String {
        match load(output) {
            Err(e) => e.path,
            Ok(_) => panic!("{output} was accepted"),
        }
    }

    #[test]
    fn feature_keys_are_read_with_defaults() {
        let (c, w) = load(
            r#"{"format": "features", "features": ["rms", "band:alpha", "band:8.5-12", "mua_rate"],
                "feature_rate": 30, "normalize": "minmax", "mua_threshold": 5,
                "mua_refractory_ms": 0.5, "mua_highpass_hz": 0}"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        let f = c.outputs[1].format.features.as_ref().unwrap();
        assert_eq!(f.features.len(), 4);
        assert_eq!(f.features[0], Feature::Rms);
        assert_eq!(
            (
                f.feature_rate,
                f.feature_window_ms,
                f.normalize,
                f.normalize_window_s
            ),
            (30.0, 250.0, Normalize::Minmax, 10.0)
        );
        assert_eq!(
            (f.mua_threshold, f.mua_refractory_ms, f.mua_highpass_hz),
            (5.0, 0.5, 0.0)
        );
        assert!(c.outputs[0].format.features.is_none());
        let (c, _) = load(r#"{"format": "features"}"#).unwrap();
        let f = c.outputs[1].format.features.as_ref().unwrap();
        assert_eq!(
            (f.features.clone(), f.feature_rate),
            (vec![Feature::Rms], 60.0)
        );
        assert_eq!(c.outputs[1].format.factor, 1, "no downsampling");
    }

    #[test]
    fn bad_feature_values_name_their_key() {
        for (o, path) in [
            (
                r#"{"format": "features", "features": ["rms", "band:nope"]}"#,
                "outputs[1].features[1]",
            ),
            (
                r#"{"format": "features", "features": ["rms", 3]}"#,
                "outputs[1].features[1]",
            ),
            (
                r#"{"format": "features", "features": ["rms", "rms"]}"#,
                "outputs[1].features[1]",
            ),
            (
                r#"{"format": "features", "features": []}"#,
                "outputs[1].features",
            ),
            (
                r#"{"format": "features", "features": "rms"}"#,
                "outputs[1].features",
            ),
            (
                r#"{"format": "features", "feature_rate": 0}"#,
                "outputs[1].feature_rate",
            ),
            (
                r#"{"format": "features", "feature_window_ms": -1}"#,
                "outputs[1].feature_window_ms",
            ),
            (
                r#"{"format": "features", "normalize": "z"}"#,
                "outputs[1].normalize",
            ),
            (
                r#"{"format": "features", "normalize_window_s": "10"}"#,
                "outputs[1].normalize_window_s",
            ),
            (
                r#"{"format": "features", "mua_threshold": 0}"#,
                "outputs[1].mua_threshold",
            ),
            (
                r#"{"format": "features", "mua_refractory_ms": -2}"#,
                "outputs[1].mua_refractory_ms",
            ),
            (
                r#"{"format": "features", "mua_highpass_hz": "300"}"#,
                "outputs[1].mua_highpass_hz",
            ),
            (r#"{"format": "featurez"}"#, "outputs[1].format"),
            // Checked against 30 kHz: a band above 0.45·fs.
            (
                r#"{"format": "features", "features": ["band:100-20000"]}"#,
                "outputs[1]",
            ),
        ] {
            assert_eq!(err_path(o), path, "{o}");
        }
    }

    #[test]
    fn a_features_address_template_needs_feature_with_several_features() {
        let (c, w) = load(
            r#"{"format": "features", "features": ["rms", "band:alpha"],
                "address": "{base}/features/{feature}/{name}"}"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.outputs[1].format.mode, crate::output::Mode::PerChannel);
        assert_eq!(
            err_path(
                r#"{"format": "features", "features": ["rms", "band:alpha"], "address": "{base}/f/{name}"}"#
            ),
            "outputs[1].address"
        );
        assert_eq!(
            err_path(r#"{"format": "features", "address": "{base}/{feature}"}"#),
            "outputs[1].address"
        );
        // One feature: {feature} may be left out.
        assert!(load(r#"{"format": "features", "address": "/rms/{ch}"}"#).is_ok());
    }

    #[test]
    fn lowpass_is_a_method_and_stray_feature_keys_warn() {
        let (c, w) = load(r#"{"downsampling_method": "lowpass", "feature_rate": 30}"#).unwrap();
        assert_eq!(c.outputs[1].format.method, DownsamplingMethod::Lowpass);
        assert!(
            w.iter()
                .any(|w| w.contains("outputs[1].feature_rate is ignored")),
            "{w:?}"
        );
        let (c, _) =
            Config::from_json_str(r#"{"osc": {"processing": {"downsampling_method": "lowpass"}}}"#)
                .unwrap();
        assert_eq!(
            c.output_specs()[0].format.method,
            DownsamplingMethod::Lowpass
        );
        let (_, w) = load(r#"{"format": "features", "downsampling_factor": 3}"#).unwrap();
        assert!(w.iter().any(|w| w.contains("does not apply")), "{w:?}");
    }
}
