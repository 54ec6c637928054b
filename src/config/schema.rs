//! The keys of `config.json`, each defined once: a serde-derived struct per section whose
//! fields are the keys, with their checks (`deserialize_with`, see [`super::values`]) and
//! their defaults (the section's `Default`, used for every missing key). Unknown keys are not
//! listed anywhere: whatever serde ignores is reported as a warning by the loader.
//!
//! Two keys of the original's minimal format are spellings of other keys and are folded
//! into them by the loader (they are `None` in a loaded config): `performance.zmq_*` →
//! `zmq.*`, `osc.processing.enable_batching` → `performance.enable_batching`.

use super::values::{self, json_enum, MAX_MILLIS, MAX_SECONDS};
use serde::{Deserialize, Serialize};

/// Largest accepted `ui.refresh_rate` in Hz.
const MAX_REFRESH_HZ: u64 = 1_000;

json_enum! {
    /// `osc.processing.downsampling_method`.
    #[derive(Default)]
    pub enum DownsamplingMethod {
        /// `"average"`: mean of each group of F input rows (default).
        #[default]
        Average = "average",
        /// `"decimate"`: last row of each group of F input rows, no filter.
        Decimate = "decimate",
        /// `"lowpass"`: a Kaiser-window FIR anti-alias filter (flat within 0.5 dB to
        /// 0.8·fs/(2F), ≥ 60 dB on what would fold in), then one row per F input rows
        /// ([`crate::dsp::fir::Decimator`]).
        Lowpass = "lowpass",
    }
}

json_enum! {
    /// `performance.osc_queue_overflow_strategy`: what to do when the OSC send queue is full.
    #[derive(Default)]
    pub enum OverflowStrategy {
        /// `"drop_oldest"`: discard the oldest queued item (default).
        #[default]
        DropOldest = "drop_oldest",
        /// `"drop_newest"`: discard the item being enqueued.
        DropNewest = "drop_newest",
        /// `"block"`: wait until there is room.
        Block = "block",
    }
}

json_enum! {
    /// `performance.mode`: presets (see [`super::Config::apply_mode_presets`]) and the idle
    /// spin of the hot threads.
    #[derive(Default)]
    pub enum PerformanceMode {
        /// `"low_latency"`.
        LowLatency = "low_latency",
        /// `"balanced"` (default).
        #[default]
        Balanced = "balanced",
        /// `"high_throughput"`.
        HighThroughput = "high_throughput",
    }
}

json_enum! {
    /// `performance.missing_channel_policy`: what to do with a block that lacks some
    /// channels of the set.
    #[derive(Default)]
    pub enum MissingChannelPolicy {
        /// Drop the block (counted; default).
        #[default]
        Skip = "skip",
        /// Send it with the missing channels as NaN (counted).
        Nan = "nan",
        /// Send it with each missing channel's last sent value (counted).
        Hold = "hold",
    }
}

/// `app.log_level` (case-insensitive; `WARN` = `WARNING`, `CRITICAL` = `ERROR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// `"ERROR"` (also accepts `"CRITICAL"`).
    Error,
    /// `"WARNING"` (also accepts `"WARN"`).
    Warning,
    /// `"INFO"` (default).
    #[default]
    Info,
    /// `"DEBUG"`.
    Debug,
}

impl LogLevel {
    /// JSON spelling (`"ERROR"`, `"WARNING"`, `"INFO"`, `"DEBUG"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warning => "WARNING",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
        }
    }

    /// Parses `DEBUG`, `INFO`, `WARNING`, `WARN`, `ERROR`, `CRITICAL` (= [`LogLevel::Error`]),
    /// case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "DEBUG" => Some(LogLevel::Debug),
            "INFO" => Some(LogLevel::Info),
            "WARNING" | "WARN" => Some(LogLevel::Warning),
            "ERROR" | "CRITICAL" => Some(LogLevel::Error),
            _ => None,
        }
    }
}

impl Serialize for LogLevel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for LogLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        values::check_choice(
            &v,
            LogLevel::parse,
            "\"DEBUG\", \"INFO\", \"WARNING\", \"WARN\", \"ERROR\", \"CRITICAL\"",
        )
        .map_err(D::Error::custom)
    }
}

/// Section `zmq`: connection to the Open Ephys ZMQ Interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, expecting = "an object")]
pub struct ZmqConfig {
    /// `zmq.host`: host of the ZMQ publisher (non-empty). Default `"localhost"`.
    #[serde(deserialize_with = "values::nonempty")]
    pub host: String,
    /// `zmq.data_port`: data (SUB) port; the heartbeat port is `data_port + 1`, so the
    /// accepted range is 1..=65534. Default 5556.
    #[serde(deserialize_with = "values::int::<_, _, 1, 65534>")]
    pub data_port: u16,
    /// `zmq.heartbeat_timeout`: heartbeat send interval in seconds (> 0, <= 86400).
    /// Default 2.0.
    #[serde(deserialize_with = "values::positive::<_, MAX_SECONDS>")]
    pub heartbeat_timeout: f64,
    /// `zmq.not_responding_timeout`: seconds without a heartbeat reply before the server is
    /// considered not responding (> 0, <= 86400). Default 10.0. Also set by
    /// `performance.zmq_not_responding_timeout`, which wins.
    #[serde(deserialize_with = "values::positive::<_, MAX_SECONDS>")]
    pub not_responding_timeout: f64,
    /// `zmq.app_uuid`: application id sent in heartbeats. Default `"1618"`.
    #[serde(deserialize_with = "values::string")]
    pub app_uuid: String,
    /// `zmq.buffer_size`: receive buffer size in samples (>= 1). Default 30000.
    #[serde(deserialize_with = "values::int::<_, _, 1, 4294967295>")]
    pub buffer_size: u32,
    /// `zmq.data_timeout_seconds`: data inactivity (seconds) after which the connection is
    /// re-initialised (> 0, <= 86400). Default 2.0. Also set by
    /// `performance.zmq_data_timeout_seconds`, which wins.
    #[serde(deserialize_with = "values::positive::<_, MAX_SECONDS>")]
    pub data_timeout_seconds: f64,
    /// `zmq.auto_reinit_on_timeout`: re-initialise on data timeout. Default true. Also set
    /// by `performance.zmq_auto_reinit_on_timeout`, which wins.
    #[serde(deserialize_with = "values::boolean")]
    pub auto_reinit_on_timeout: bool,
    /// `zmq.sources` (**new**): several publishers, each `{name, host, data_port}` (host and
    /// port default to the keys above; the heartbeat settings above apply to each). Empty
    /// (absent) = the keys above are the one source. See [`super::sources`].
    #[serde(deserialize_with = "super::sources::source_list", skip_serializing)]
    pub sources: Vec<super::sources::SourceEntry>,
}

impl Default for ZmqConfig {
    fn default() -> Self {
        ZmqConfig {
            host: "localhost".to_string(),
            data_port: 5556,
            heartbeat_timeout: 2.0,
            not_responding_timeout: 10.0,
            app_uuid: "1618".to_string(),
            buffer_size: 30000,
            data_timeout_seconds: 2.0,
            auto_reinit_on_timeout: true,
            sources: Vec::new(),
        }
    }
}

/// Section `osc`: the original's single OSC output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, expecting = "an object")]
pub struct OscConfig {
    /// `osc.host`: destination host (non-empty). Default `"127.0.0.1"`.
    #[serde(deserialize_with = "values::nonempty")]
    pub host: String,
    /// `osc.port`: destination UDP port (1..=65535). Default 10000.
    #[serde(deserialize_with = "values::int::<_, _, 1, 65535>")]
    pub port: u16,
    /// `osc.base_address`: OSC address prefix; must start with `/`, must not end with `/`,
    /// and must not contain whitespace, control characters or OSC pattern characters
    /// (`#*,?[]{}`). Default `"/data"`.
    #[serde(deserialize_with = "values::base_address")]
    pub base_address: String,
    /// `osc.send_individual_channels`. Default false.
    #[serde(deserialize_with = "values::boolean")]
    pub send_individual_channels: bool,
    /// `osc.channel_address_format`: must start with `/`. Default `"/ch{:03d}"`.
    #[serde(deserialize_with = "values::slash_string")]
    pub channel_address_format: String,
    /// Section `osc.processing`.
    #[serde(deserialize_with = "values::object")]
    pub processing: ProcessingConfig,
}

impl Default for OscConfig {
    fn default() -> Self {
        OscConfig {
            host: "127.0.0.1".to_string(),
            port: 10000,
            base_address: "/data".to_string(),
            send_individual_channels: false,
            channel_address_format: "/ch{:03d}".to_string(),
            processing: ProcessingConfig::default(),
        }
    }
}

/// Section `osc.processing` (downsampling and batching).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, expecting = "an object")]
pub struct ProcessingConfig {
    /// `osc.processing.downsampling_factor` F (1..=1000). Default 30.
    #[serde(deserialize_with = "values::int::<_, _, 1, 1000>")]
    pub downsampling_factor: u32,
    /// `osc.processing.downsampling_method`. Default [`DownsamplingMethod::Average`].
    pub downsampling_method: DownsamplingMethod,
    /// `osc.processing.batch_size` B (1..=1000), stored as given; see
    /// [`super::Config::effective_batch_size`]. Default 1.
    #[serde(deserialize_with = "values::int::<_, _, 1, 1000>")]
    pub batch_size: u32,
    /// `osc.processing.batch_timeout_ms` T (> 0, <= 86400000). Default 1000.0.
    #[serde(deserialize_with = "values::positive::<_, MAX_MILLIS>")]
    pub batch_timeout_ms: f64,
    /// `osc.processing.enable_batching` (minimal format): folded into
    /// [`PerformanceConfig::enable_batching`] at load (wins over it); `None` afterwards.
    #[serde(deserialize_with = "values::some_bool", skip_serializing)]
    pub enable_batching: Option<bool>,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            downsampling_factor: 30,
            downsampling_method: DownsamplingMethod::Average,
            batch_size: 1,
            batch_timeout_ms: 1000.0,
            enable_batching: None,
        }
    }
}

/// Section `ui`: terminal UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, expecting = "an object")]
pub struct UiConfig {
    /// `ui.refresh_rate`: UI refresh rate in Hz (> 0, <= 1000). Default 10.
    #[serde(deserialize_with = "values::positive::<_, MAX_REFRESH_HZ>")]
    pub refresh_rate: f64,
    /// `ui.theme`. Default `"default"`.
    #[serde(deserialize_with = "values::string")]
    pub theme: String,
    /// `ui.show_debug_info`. Default false.
    #[serde(deserialize_with = "values::boolean")]
    pub show_debug_info: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            refresh_rate: 10.0,
            theme: "default".to_string(),
            show_debug_info: false,
        }
    }
}

/// Section `app`: application metadata and logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, expecting = "an object")]
pub struct AppConfig {
    /// `app.app_name`. Default `"OpenEphys - ZMQ to OSC"`.
    #[serde(deserialize_with = "values::string")]
    pub app_name: String,
    /// `app.app_version`. Default `"0.1.0"`.
    #[serde(deserialize_with = "values::string")]
    pub app_version: String,
    /// `app.log_level`. Default [`LogLevel::Info`].
    pub log_level: LogLevel,
    /// `app.config_file`. Default `"config.json"`.
    #[serde(deserialize_with = "values::string")]
    pub config_file: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            app_name: "OpenEphys - ZMQ to OSC".to_string(),
            app_version: "0.1.0".to_string(),
            log_level: LogLevel::Info,
            config_file: super::DEFAULT_CONFIG_FILE.to_string(),
        }
    }
}

/// Section `performance`: queueing, batching mode and our resource limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, expecting = "an object")]
pub struct PerformanceConfig {
    /// `performance.osc_queue_max_size` (1..=100000). Default 100.
    #[serde(deserialize_with = "values::int::<_, _, 1, 100000>")]
    pub osc_queue_max_size: u32,
    /// `performance.osc_queue_overflow_strategy`. Default [`OverflowStrategy::DropOldest`].
    pub osc_queue_overflow_strategy: OverflowStrategy,
    /// `performance.ui_update_interval_ms` (> 0, <= 86400000). Default 100.
    #[serde(deserialize_with = "values::positive::<_, MAX_MILLIS>")]
    pub ui_update_interval_ms: f64,
    /// `performance.metrics_collection_interval_ms` (> 0, <= 86400000). Default 250.
    #[serde(deserialize_with = "values::positive::<_, MAX_MILLIS>")]
    pub metrics_collection_interval_ms: f64,
    /// `performance.mode`. Default [`PerformanceMode::Balanced`].
    pub mode: PerformanceMode,
    /// `performance.enable_batching`: batch mode instead of sample mode. Default false.
    /// `osc.processing.enable_batching`, if present, wins.
    #[serde(deserialize_with = "values::boolean")]
    pub enable_batching: bool,
    /// `performance.adaptive_batching`. Default false.
    #[serde(deserialize_with = "values::boolean")]
    pub adaptive_batching: bool,
    /// `performance.pin_threads` (**new**): pin the worker threads to CPU cores where
    /// supported. Default true.
    #[serde(deserialize_with = "values::boolean")]
    pub pin_threads: bool,
    /// `performance.max_channels` (**new**): largest channel count accepted in a data
    /// message (1..=16384). Default 1024.
    #[serde(deserialize_with = "values::int::<_, _, 1, 16384>")]
    pub max_channels: u32,
    /// `performance.max_block_samples` (**new**): largest number of samples per channel
    /// accepted in one data message (1..=1048576). Default 2048.
    #[serde(deserialize_with = "values::int::<_, _, 1, 1048576>")]
    pub max_block_samples: u32,
    /// `performance.missing_channel_policy` (**new**): what to do with a block that is still
    /// missing channels when the next block starts (upstream loss, e.g. the plugin's PUB
    /// queue overflowing at 1000+ channels): `skip` (drop the block, default), `nan` (send
    /// it with the missing channels as NaN) or `hold` (with each missing channel's last
    /// value).
    pub missing_channel_policy: MissingChannelPolicy,
    /// `performance.realtime_priority` (**new**): 1..=99 puts the hot threads (and libzmq's
    /// I/O thread) on the `SCHED_FIFO` real-time scheduler at this priority, so they win the
    /// CPU when data arrives even when a publisher keeps the cores busy; 0 = off (default;
    /// `low_latency` mode presets 20). Needs CAP_SYS_NICE or an RLIMIT_RTPRIO; without it
    /// the start-up line says so and the threads keep the normal scheduler.
    #[serde(deserialize_with = "values::int::<_, _, 0, 99>")]
    pub realtime_priority: u8,
    /// `performance.zmq_not_responding_timeout` (minimal format): folded into
    /// [`ZmqConfig::not_responding_timeout`] at load; `None` afterwards.
    #[serde(
        deserialize_with = "values::some_positive::<_, MAX_SECONDS>",
        skip_serializing
    )]
    pub zmq_not_responding_timeout: Option<f64>,
    /// `performance.zmq_data_timeout_seconds` (minimal format): folded into
    /// [`ZmqConfig::data_timeout_seconds`] at load; `None` afterwards.
    #[serde(
        deserialize_with = "values::some_positive::<_, MAX_SECONDS>",
        skip_serializing
    )]
    pub zmq_data_timeout_seconds: Option<f64>,
    /// `performance.zmq_auto_reinit_on_timeout` (minimal format): folded into
    /// [`ZmqConfig::auto_reinit_on_timeout`] at load; `None` afterwards.
    #[serde(deserialize_with = "values::some_bool", skip_serializing)]
    pub zmq_auto_reinit_on_timeout: Option<bool>,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        PerformanceConfig {
            osc_queue_max_size: 100,
            osc_queue_overflow_strategy: OverflowStrategy::DropOldest,
            ui_update_interval_ms: 100.0,
            metrics_collection_interval_ms: 250.0,
            mode: PerformanceMode::Balanced,
            enable_batching: false,
            adaptive_batching: false,
            pin_threads: true,
            max_channels: 1024,
            max_block_samples: 2048,
            missing_channel_policy: MissingChannelPolicy::Skip,
            realtime_priority: 0,
            zmq_not_responding_timeout: None,
            zmq_data_timeout_seconds: None,
            zmq_auto_reinit_on_timeout: None,
        }
    }
}

/// Section `oscquery` (**new**; absent = off): an OSCQuery server describing every output's
/// addresses, so receivers can discover the streams (see [`crate::oscquery`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, expecting = "an object")]
pub struct OscQueryConfig {
    /// `oscquery.port`: HTTP port (0 = any free port, printed at start). Default 5680.
    #[serde(deserialize_with = "values::int::<_, _, 0, 65535>")]
    pub port: u16,
    /// `oscquery.host`: address to listen on. Default `127.0.0.1` (this machine only); name
    /// a LAN address (or `0.0.0.0`) to let other machines query it.
    #[serde(deserialize_with = "values::nonempty")]
    pub host: String,
    /// `oscquery.mdns`: advertise the server as `_oscjson._tcp` over mDNS. Default false.
    #[serde(deserialize_with = "values::boolean")]
    pub mdns: bool,
}

impl Default for OscQueryConfig {
    fn default() -> Self {
        OscQueryConfig {
            port: 5680,
            host: "127.0.0.1".into(),
            mdns: false,
        }
    }
}
