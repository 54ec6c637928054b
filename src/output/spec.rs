//! What one output is: [`OutputSpec`] (destination + [`OutputFormat`]), the one type the
//! config loader produces (from `osc.*` or from each entry of `outputs`) and the engine runs.

use crate::config::values::json_enum;
use crate::config::DownsamplingMethod;
use crate::dsp::features::{Feature, FeatureConfig};
use std::time::Duration;

use super::osc::MAX_UDP_PAYLOAD;

json_enum! {
    /// Message layout of an output (the config's `format`).
    pub enum Mode {
        /// `{base}/sample` + N floats per output row.
        Sample = "sample",
        /// `{base}/batch/<k>` + int N + N·k floats, channel-major.
        Batch = "batch",
        /// One message per channel per output row at the channel's address.
        PerChannel = "per_channel",
        /// `{base}/blob` + int N + int k + one blob of N·k big-endian float32, channel-major.
        Blob = "blob",
    }
}

/// OSC bundles around each output row / batch (`bundle`: `false`/`"off"`, `true`/
/// `"immediate"`, `"sample_clock"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BundleMode {
    /// Plain messages (default, as the original).
    #[default]
    Off,
    /// Bundles with time tag 1 ("immediately").
    Immediate,
    /// Bundles whose time tag is derived from the sample clock (NTP time of the row's first
    /// sample: the wall clock of the block's arrival minus its age in samples).
    SampleClock,
}

impl<'de> serde::Deserialize<'de> for BundleMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        match v {
            serde_json::Value::Bool(false) => Ok(BundleMode::Off),
            serde_json::Value::Bool(true) => Ok(BundleMode::Immediate),
            _ => crate::config::values::check_choice(
                &v,
                |s| match s {
                    "off" => Some(BundleMode::Off),
                    "immediate" => Some(BundleMode::Immediate),
                    "sample_clock" => Some(BundleMode::SampleClock),
                    _ => None,
                },
                "false, true, \"off\", \"immediate\", \"sample_clock\"",
            )
            .map_err(D::Error::custom),
        }
    }
}

/// Receiver datagram-size profiles (`max_datagram` by name).
pub const SIZE_PROFILES: &[(&str, usize)] = &[
    ("lan", 1472),
    ("jumbo", 9216),
    ("loopback", 65507),
    ("python-osc", 8192),
    ("oscp5", 1536),
    ("oscjack", 4096),
];

/// One output: where it goes and what it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// `name`: shown in reports (`osc` for the original's output, else `output<i>`).
    pub name: String,
    /// `host`: unicast, broadcast or multicast group (default `osc.host`).
    pub host: String,
    /// `port` (default `osc.port`).
    pub port: u16,
    /// What to send.
    pub format: OutputFormat,
    /// `pacing: "smooth"`: spread each block's datagrams over the block's duration.
    pub pacing: bool,
    /// `multicast_ttl` for a multicast group destination (default 1).
    pub multicast_ttl: u32,
    /// `source`: the name of the ZMQ source (`zmq.sources`) this output carries; `None` =
    /// the first source.
    pub source: Option<String>,
}

/// What an output sends: message layout, downsampling, batching, extras.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFormat {
    /// Message layout (`format`).
    pub mode: Mode,
    /// `base_address` (default `osc.base_address`, `/data`).
    pub base_address: String,
    /// Per-channel address template (`osc.channel_address_format`, or an output's
    /// `address`): `{base}`, `{stream}`, `{name}`, `{ch}`, `{ch:03}`, `{index}`, or the
    /// original's `/ch{:03d}`.
    pub channel_address_format: String,
    /// Downsampling factor F ≥ 1.
    pub factor: usize,
    /// Downsampling method.
    pub method: DownsamplingMethod,
    /// Rows per batch (batch and blob modes).
    pub batch_size: usize,
    /// Partial-batch flush timeout.
    pub batch_timeout: Duration,
    /// Channel cap (`performance.max_channels`: buffer sizes).
    pub max_channels: usize,
    /// `channels`: selection in output order (`None` = every channel, ascending).
    pub selection: Option<Vec<u32>>,
    /// `names`: channel renames for `{name}`.
    pub names: Vec<(u32, String)>,
    /// `layout: "sparse"`: argument index = channel number (absent channels are NaN).
    pub sparse: bool,
    /// `max_datagram`: largest datagram this output may send.
    pub max_datagram: usize,
    /// Split larger messages into `…/part` messages (outputs under `outputs`) instead of
    /// refusing them (the original's formats, whose bytes must not change).
    pub split: bool,
    /// `sample_number`: append the row's first input sample index as two `i` (high, low).
    pub sample_number: bool,
    /// `bundle`: OSC bundles.
    pub bundle: BundleMode,
    /// `events`: send TTL events to `{base}/ttl`.
    pub events: bool,
    /// `spikes`: send spikes to `{base}/spike`.
    pub spikes: bool,
    /// `spike_waveform`: include spike waveforms.
    pub spike_waveform: bool,
    /// `status`: send `{base}/status` once a second.
    pub status: bool,
    /// `notices`: send `{base}/notice` on layout changes.
    pub notices: bool,
    /// `"format": "features"` (outputs only): instead of rows, `feature_rate` times a
    /// second one message per feature, `{base}/features/<name>` + one float per channel
    /// (`mode` is then [`Mode::Sample`] and downsampling does not apply).
    pub features: Option<FeatureConfig>,
}

impl Default for OutputFormat {
    /// The original's defaults with F = 1 (sample mode, `/data`, exact bytes, no extras).
    fn default() -> Self {
        OutputFormat {
            mode: Mode::Sample,
            base_address: "/data".into(),
            channel_address_format: "/ch{:03d}".into(),
            factor: 1,
            method: DownsamplingMethod::Average,
            batch_size: 1,
            batch_timeout: Duration::from_secs(1),
            max_channels: 1024,
            selection: None,
            names: Vec::new(),
            sparse: false,
            max_datagram: MAX_UDP_PAYLOAD,
            split: false,
            sample_number: false,
            bundle: BundleMode::Off,
            events: false,
            spikes: false,
            spike_waveform: false,
            status: false,
            notices: false,
            features: None,
        }
    }
}

/// The OSC address part of a feature: its [`Feature::label`] with `:` replaced by `_`
/// (`rms`, `band_alpha`, `band_8-12`, `mua_rate`): legal OSC 1.0 and a plain name for
/// TouchDesigner channels and Max `[route]`.
pub fn feature_address_name(f: &Feature) -> String {
    f.label().replace(':', "_")
}

/// The per-channel templates of an output: its `channel_address_format`, or for a
/// features output one per feature with `{feature}` replaced by the feature's address name.
///
/// # Errors
/// A template that does not compile, does not tell channels apart, or (features) gives two
/// features the same addresses (leave out `{feature}` only with a single feature).
pub fn channel_templates(fmt: &OutputFormat) -> Result<Vec<String>, String> {
    let t = &fmt.channel_address_format;
    let out: Vec<String> = match &fmt.features {
        None => vec![t.clone()],
        Some(fc) => fc
            .features
            .iter()
            .map(|f| t.replace("{feature}", &feature_address_name(f)))
            .collect(),
    };
    for x in &out {
        super::address::validate_address_template(x)?;
    }
    if out.len() > 1 && !t.contains("{feature}") {
        return Err(format!(
            "address template '{t}' must contain {{feature}} to tell the features apart"
        ));
    }
    Ok(out)
}
