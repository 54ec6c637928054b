//! Typed, validated configuration for openephys-zmq2osc.
//!
//! Accepts the `config.json` files of the original Python bridge
//! (`peachiia/openephys-zmq2osc`, both the "minimal" format written by
//! `--create-config` and the "full" format written by `--create-config-dev`)
//! with the same defaults and the same key precedence, plus a few new keys of
//! ours (see [`PerformanceConfig`]).
//!
//! Differences from the original, on purpose:
//! * an unknown key is a warning (`unknown config key 'osc.prot' ignored`)
//!   instead of silently resetting *everything* to defaults;
//! * a value of the wrong type or out of range is an error ([`ConfigError`])
//!   naming the key path, instead of being accepted (or, for
//!   `osc.processing`, silently replaced by fallbacks);
//! * integral floats (`30.0`) are accepted where an integer is expected.
//!
//! The JSON is parsed into a [`serde_json::Value`] and walked by hand, so
//! every error names the full key path.

use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;

/// Name of the configuration file looked up in the current directory when no
/// explicit path is given.
pub const DEFAULT_CONFIG_FILE: &str = "config.json";

/// Largest accepted value (in seconds) for the `zmq.*` timeouts/intervals.
const MAX_SECONDS: f64 = 86_400.0;
/// Largest accepted value (in milliseconds) for the `*_ms` intervals/timeouts.
const MAX_MILLIS: f64 = 86_400_000.0;
/// Largest accepted `ui.refresh_rate` in Hz.
const MAX_REFRESH_HZ: f64 = 1_000.0;

/// Byte-exact output of the original's `--create-config` (minimal format:
/// `json.dump(indent=2)`, no trailing newline).
///
/// Parses to [`Config::default()`] with no warnings.
pub const MINIMAL_CONFIG_JSON: &str = r#"{
  "zmq": {
    "host": "localhost",
    "data_port": 5556,
    "app_uuid": "1618"
  },
  "osc": {
    "host": "127.0.0.1",
    "port": 10000,
    "base_address": "/data",
    "processing": {
      "downsampling_factor": 30,
      "downsampling_method": "average",
      "enable_batching": false,
      "batch_size": 1
    }
  },
  "performance": {
    "zmq_not_responding_timeout": 10.0,
    "zmq_data_timeout_seconds": 2.0,
    "zmq_auto_reinit_on_timeout": true,
    "osc_queue_max_size": 100,
    "osc_queue_overflow_strategy": "drop_oldest"
  }
}"#;

/// Byte-exact output of the original's `--create-config-dev` (full format:
/// `json.dump(asdict(config), indent=2)`, no trailing newline).
///
/// Parses to [`Config::default()`] with no warnings. Our new keys
/// (`performance.pin_threads`, `performance.max_channels`,
/// `performance.max_block_samples`) are deliberately not included so the
/// text stays identical to the original's.
pub const FULL_CONFIG_JSON: &str = r#"{
  "zmq": {
    "host": "localhost",
    "data_port": 5556,
    "heartbeat_timeout": 2.0,
    "not_responding_timeout": 10.0,
    "app_uuid": "1618",
    "buffer_size": 30000,
    "data_timeout_seconds": 2.0,
    "auto_reinit_on_timeout": true
  },
  "osc": {
    "host": "127.0.0.1",
    "port": 10000,
    "base_address": "/data",
    "send_individual_channels": false,
    "channel_address_format": "/ch{:03d}",
    "processing": {
      "downsampling_factor": 30,
      "downsampling_method": "average",
      "batch_size": 1,
      "batch_timeout_ms": 1000.0
    }
  },
  "ui": {
    "refresh_rate": 10,
    "theme": "default",
    "show_debug_info": false
  },
  "app": {
    "app_name": "OpenEphys - ZMQ to OSC",
    "app_version": "0.1.0",
    "log_level": "INFO",
    "config_file": "config.json"
  },
  "performance": {
    "osc_queue_max_size": 100,
    "osc_queue_overflow_strategy": "drop_oldest",
    "ui_update_interval_ms": 100,
    "metrics_collection_interval_ms": 250,
    "mode": "balanced",
    "enable_batching": false,
    "adaptive_batching": false
  }
}"#;

type CResult<T> = Result<T, ConfigError>;

// ---------------------------------------------------------------------------
// Error
// ---------------------------------------------------------------------------

/// A configuration error: a value of the wrong type or out of range, or a
/// file that cannot be read or parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path of the offending value (e.g.
    /// `osc.processing.downsampling_factor`); empty for file-level errors
    /// (missing/unreadable file, JSON syntax error, top level not an object).
    pub path: String,
    /// Human-readable description of the problem.
    pub message: String,
}

impl ConfigError {
    fn at(path: &str, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_string(),
            message: message.into(),
        }
    }

    fn file(message: impl Into<String>) -> Self {
        ConfigError::at("", message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "config error: {}", self.message)
        } else {
            write!(f, "config error at {}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------

/// `osc.processing.downsampling_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DownsamplingMethod {
    /// `"average"`: mean of each group of F input rows (default).
    #[default]
    Average,
    /// `"decimate"`: last row of each group of F input rows, no filter.
    Decimate,
}

impl DownsamplingMethod {
    /// JSON spelling (`"average"` / `"decimate"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            DownsamplingMethod::Average => "average",
            DownsamplingMethod::Decimate => "decimate",
        }
    }

    /// Parses the JSON spelling (exact, lowercase, as the original).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "average" => Some(DownsamplingMethod::Average),
            "decimate" => Some(DownsamplingMethod::Decimate),
            _ => None,
        }
    }
}

/// `app.log_level`.
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

    /// Parses `DEBUG`, `INFO`, `WARNING`, `WARN`, `ERROR`, `CRITICAL`
    /// (= [`LogLevel::Error`]), case-insensitively.
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

/// `performance.osc_queue_overflow_strategy`: what to do when the OSC send
/// queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowStrategy {
    /// `"drop_oldest"`: discard the oldest queued item (default).
    #[default]
    DropOldest,
    /// `"drop_newest"`: discard the item being enqueued.
    DropNewest,
    /// `"block"`: wait until there is room.
    Block,
}

impl OverflowStrategy {
    /// JSON spelling (`"drop_oldest"`, `"drop_newest"`, `"block"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            OverflowStrategy::DropOldest => "drop_oldest",
            OverflowStrategy::DropNewest => "drop_newest",
            OverflowStrategy::Block => "block",
        }
    }

    /// Parses the JSON spelling (exact).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "drop_oldest" => Some(OverflowStrategy::DropOldest),
            "drop_newest" => Some(OverflowStrategy::DropNewest),
            "block" => Some(OverflowStrategy::Block),
            _ => None,
        }
    }
}

/// `performance.mode` (unused by the original; kept for compatibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PerformanceMode {
    /// `"low_latency"`.
    LowLatency,
    /// `"balanced"` (default).
    #[default]
    Balanced,
    /// `"high_throughput"`.
    HighThroughput,
}

impl PerformanceMode {
    /// JSON spelling (`"low_latency"`, `"balanced"`, `"high_throughput"`).
    pub fn as_str(&self) -> &'static str {
        match self {
            PerformanceMode::LowLatency => "low_latency",
            PerformanceMode::Balanced => "balanced",
            PerformanceMode::HighThroughput => "high_throughput",
        }
    }

    /// Parses the JSON spelling (exact).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low_latency" => Some(PerformanceMode::LowLatency),
            "balanced" => Some(PerformanceMode::Balanced),
            "high_throughput" => Some(PerformanceMode::HighThroughput),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------
// Structs
// ---------------------------------------------------------------------------

/// The whole configuration (sections of `config.json`).
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Section `zmq`: connection to the Open Ephys ZMQ Interface.
    pub zmq: ZmqConfig,
    /// Section `osc`: OSC output (with nested `processing`).
    pub osc: OscConfig,
    /// Section `ui`: terminal UI.
    pub ui: UiConfig,
    /// Section `app`: application metadata and logging.
    pub app: AppConfig,
    /// Section `performance`: queueing, batching mode and our resource limits.
    pub performance: PerformanceConfig,
    /// `outputs` (**new**): a list of OSC outputs with their own destination, format,
    /// channel map and processing. Empty = the original's single output from `osc.*`.
    pub outputs: Vec<OutputConfig>,
    /// Key paths given explicitly in the file (so a `performance.mode` preset never
    /// overrides them).
    pub explicit: std::collections::BTreeSet<String>,
}

/// Section `zmq`.
#[derive(Debug, Clone, PartialEq)]
pub struct ZmqConfig {
    /// `zmq.host`: host of the ZMQ publisher (non-empty). Default `"localhost"`.
    pub host: String,
    /// `zmq.data_port`: data (SUB) port; the heartbeat port is `data_port + 1`,
    /// so the accepted range is 1..=65534. Default 5556.
    pub data_port: u16,
    /// `zmq.heartbeat_timeout`: heartbeat send interval in seconds
    /// (> 0, <= 86400). Default 2.0.
    pub heartbeat_timeout: f64,
    /// `zmq.not_responding_timeout`: seconds without a heartbeat reply before
    /// the server is considered not responding (> 0, <= 86400). Default 10.0.
    /// Also set by `performance.zmq_not_responding_timeout`, which wins.
    pub not_responding_timeout: f64,
    /// `zmq.app_uuid`: application id sent in heartbeats. Default `"1618"`.
    pub app_uuid: String,
    /// `zmq.buffer_size`: receive buffer size in samples (>= 1). Default 30000.
    pub buffer_size: u32,
    /// `zmq.data_timeout_seconds`: data inactivity (seconds) after which the
    /// connection is re-initialised (> 0, <= 86400). Default 2.0.
    /// Also set by `performance.zmq_data_timeout_seconds`, which wins.
    pub data_timeout_seconds: f64,
    /// `zmq.auto_reinit_on_timeout`: re-initialise on data timeout.
    /// Default true. Also set by `performance.zmq_auto_reinit_on_timeout`,
    /// which wins.
    pub auto_reinit_on_timeout: bool,
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
        }
    }
}

/// Section `osc`.
#[derive(Debug, Clone, PartialEq)]
pub struct OscConfig {
    /// `osc.host`: destination host (non-empty). Default `"127.0.0.1"`.
    pub host: String,
    /// `osc.port`: destination UDP port (1..=65535). Default 10000.
    pub port: u16,
    /// `osc.base_address`: OSC address prefix; must start with `/`, must not
    /// end with `/`, and must not contain whitespace, control characters or
    /// OSC pattern characters (`#*,?[]{}`). Default `"/data"`.
    pub base_address: String,
    /// `osc.send_individual_channels`. Default false.
    pub send_individual_channels: bool,
    /// `osc.channel_address_format`: must start with `/`. Default `"/ch{:03d}"`.
    pub channel_address_format: String,
    /// Section `osc.processing`.
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
///
/// The key `osc.processing.enable_batching` (minimal format) is accepted here
/// but stored in [`PerformanceConfig::enable_batching`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingConfig {
    /// `osc.processing.downsampling_factor` F (1..=1000). Default 30.
    pub downsampling_factor: u32,
    /// `osc.processing.downsampling_method`. Default [`DownsamplingMethod::Average`].
    pub downsampling_method: DownsamplingMethod,
    /// `osc.processing.batch_size` B (1..=1000), stored as given; see
    /// [`Config::effective_batch_size`]. Default 1.
    pub batch_size: u32,
    /// `osc.processing.batch_timeout_ms` T (> 0, <= 86400000). Default 1000.0.
    pub batch_timeout_ms: f64,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            downsampling_factor: 30,
            downsampling_method: DownsamplingMethod::Average,
            batch_size: 1,
            batch_timeout_ms: 1000.0,
        }
    }
}

/// Section `ui`.
#[derive(Debug, Clone, PartialEq)]
pub struct UiConfig {
    /// `ui.refresh_rate`: UI refresh rate in Hz (> 0, <= 1000). Default 10.
    pub refresh_rate: f64,
    /// `ui.theme`. Default `"default"`.
    pub theme: String,
    /// `ui.show_debug_info`. Default false.
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

/// Section `app`.
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// `app.app_name`. Default `"OpenEphys - ZMQ to OSC"`.
    pub app_name: String,
    /// `app.app_version`. Default `"0.1.0"`.
    pub app_version: String,
    /// `app.log_level`. Default [`LogLevel::Info`].
    pub log_level: LogLevel,
    /// `app.config_file`. Default `"config.json"`.
    pub config_file: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            app_name: "OpenEphys - ZMQ to OSC".to_string(),
            app_version: "0.1.0".to_string(),
            log_level: LogLevel::Info,
            config_file: DEFAULT_CONFIG_FILE.to_string(),
        }
    }
}

/// Section `performance`.
///
/// Also accepts the minimal-format keys `zmq_not_responding_timeout`,
/// `zmq_data_timeout_seconds` and `zmq_auto_reinit_on_timeout`, which are
/// stored in [`ZmqConfig`] (and win over the `zmq.*` spelling).
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceConfig {
    /// `performance.osc_queue_max_size` (1..=100000). Default 100.
    pub osc_queue_max_size: u32,
    /// `performance.osc_queue_overflow_strategy`. Default
    /// [`OverflowStrategy::DropOldest`].
    pub osc_queue_overflow_strategy: OverflowStrategy,
    /// `performance.ui_update_interval_ms` (> 0, <= 86400000). Default 100.
    pub ui_update_interval_ms: f64,
    /// `performance.metrics_collection_interval_ms` (> 0, <= 86400000).
    /// Default 250.
    pub metrics_collection_interval_ms: f64,
    /// `performance.mode`. Default [`PerformanceMode::Balanced`].
    pub mode: PerformanceMode,
    /// `performance.enable_batching`: batch mode instead of sample mode.
    /// Default false. `osc.processing.enable_batching`, if present, wins.
    pub enable_batching: bool,
    /// `performance.adaptive_batching`. Default false.
    pub adaptive_batching: bool,
    /// `performance.pin_threads` (**new**, not in the original): pin the
    /// worker threads to CPU cores where supported. Default true.
    pub pin_threads: bool,
    /// `performance.max_channels` (**new**, not in the original): largest
    /// channel count accepted in a data message (1..=16384). Default 1024.
    pub max_channels: u32,
    /// `performance.max_block_samples` (**new**, not in the original):
    /// largest number of samples per channel accepted in one data message
    /// (1..=1048576). Default 2048.
    pub max_block_samples: u32,
    /// `performance.missing_channel_policy` (**new**): what to do with a block that is still
    /// missing channels when the next block starts (upstream loss, e.g. the plugin's PUB
    /// queue overflowing at 1000+ channels): `skip` (drop the block, default), `nan` (send it
    /// with the missing channels as NaN) or `hold` (with each missing channel's last value).
    pub missing_channel_policy: MissingChannelPolicy,
}

/// What to do with a block that lacks some channels of the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingChannelPolicy {
    /// Drop the block (counted).
    Skip,
    /// Send it with the missing channels as NaN (counted).
    Nan,
    /// Send it with each missing channel's last sent value (counted).
    Hold,
}

impl MissingChannelPolicy {
    /// JSON spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            MissingChannelPolicy::Skip => "skip",
            MissingChannelPolicy::Nan => "nan",
            MissingChannelPolicy::Hold => "hold",
        }
    }
    /// Parses the JSON spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "skip" => MissingChannelPolicy::Skip,
            "nan" => MissingChannelPolicy::Nan,
            "hold" => MissingChannelPolicy::Hold,
            _ => return None,
        })
    }
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
        }
    }
}

// ---------------------------------------------------------------------------
// Value helpers
// ---------------------------------------------------------------------------

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Short JSON rendering of a value for error messages.
fn describe(v: &Value) -> String {
    const MAX: usize = 80;
    let s = v.to_string();
    if s.chars().count() > MAX {
        let mut t: String = s.chars().take(MAX - 3).collect();
        t.push_str("...");
        t
    } else {
        s
    }
}

fn js(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn jf(f: f64) -> String {
    Value::from(f).to_string()
}

fn as_object<'v>(v: &'v Value, path: &str) -> CResult<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| ConfigError::at(path, format!("expected an object, got {}", describe(v))))
}

/// Warns about every key of `map` not in `known`.
fn warn_unknown(
    map: &Map<String, Value>,
    prefix: &str,
    known: &[&str],
    warnings: &mut Vec<String>,
) {
    for k in map.keys() {
        if !known.contains(&k.as_str()) {
            warnings.push(format!(
                "unknown config key '{}' ignored",
                join(prefix, &k.escape_debug().to_string())
            ));
        }
    }
}

/// A JSON integer, or a float with an integral value.
fn integer_value(v: &Value) -> Option<i128> {
    let Value::Number(n) = v else { return None };
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    let f = n.as_f64()?;
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 {
        Some(f as i128)
    } else {
        None
    }
}

fn int_in<T: TryFrom<i128>>(v: &Value, path: &str, min: i128, max: i128) -> CResult<T> {
    let err = || {
        ConfigError::at(
            path,
            format!(
                "expected an integer from {min} to {max}, got {}",
                describe(v)
            ),
        )
    };
    match integer_value(v) {
        Some(n) if (min..=max).contains(&n) => T::try_from(n).map_err(|_| err()),
        _ => Err(err()),
    }
}

/// A finite number `> 0` and `<= max`.
fn positive(v: &Value, path: &str, max: f64) -> CResult<f64> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() && f > 0.0 && f <= max => Ok(f),
            _ => Err(ConfigError::at(
                path,
                format!("expected a number > 0 and <= {max}, got {}", describe(v)),
            )),
        },
        _ => Err(ConfigError::at(
            path,
            format!("expected a number > 0 and <= {max}, got {}", describe(v)),
        )),
    }
}

fn boolean(v: &Value, path: &str) -> CResult<bool> {
    v.as_bool().ok_or_else(|| {
        ConfigError::at(path, format!("expected true or false, got {}", describe(v)))
    })
}

fn string(v: &Value, path: &str) -> CResult<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| ConfigError::at(path, format!("expected a string, got {}", describe(v))))
}

fn nonempty_string(v: &Value, path: &str) -> CResult<String> {
    match v.as_str() {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(ConfigError::at(
            path,
            format!("expected a non-empty string, got {}", describe(v)),
        )),
    }
}

fn choice<T>(v: &Value, path: &str, parse: fn(&str) -> Option<T>, names: &str) -> CResult<T> {
    v.as_str().and_then(parse).ok_or_else(|| {
        ConfigError::at(
            path,
            format!("expected one of {names}, got {}", describe(v)),
        )
    })
}

fn base_address(v: &Value, path: &str) -> CResult<String> {
    let s = string(v, path)?;
    let bad = |why: &str| {
        ConfigError::at(
            path,
            format!("expected an OSC address {why}, got {}", describe(v)),
        )
    };
    if !s.starts_with('/') {
        return Err(bad("starting with '/'"));
    }
    if s.ends_with('/') {
        return Err(bad("not ending with '/'"));
    }
    if s.chars().any(|c| {
        c.is_whitespace()
            || c.is_control()
            || matches!(c, '#' | '*' | ',' | '?' | '[' | ']' | '{' | '}')
    }) {
        return Err(bad(
            "without whitespace, control or pattern characters (#*,?[]{})",
        ));
    }
    Ok(s)
}

fn slash_string(v: &Value, path: &str) -> CResult<String> {
    let s = string(v, path)?;
    if s.starts_with('/') {
        Ok(s)
    } else {
        Err(ConfigError::at(
            path,
            format!("expected a string starting with '/', got {}", describe(v)),
        ))
    }
}

// ---------------------------------------------------------------------------
// Section parsers
// ---------------------------------------------------------------------------

fn parse_zmq(m: &Map<String, Value>, z: &mut ZmqConfig, w: &mut Vec<String>) -> CResult<()> {
    const P: &str = "zmq";
    warn_unknown(
        m,
        P,
        &[
            "host",
            "data_port",
            "heartbeat_timeout",
            "not_responding_timeout",
            "app_uuid",
            "buffer_size",
            "data_timeout_seconds",
            "auto_reinit_on_timeout",
        ],
        w,
    );
    let p = |k: &str| join(P, k);
    if let Some(v) = m.get("host") {
        z.host = nonempty_string(v, &p("host"))?;
    }
    if let Some(v) = m.get("data_port") {
        z.data_port = int_in(v, &p("data_port"), 1, 65534)?;
    }
    if let Some(v) = m.get("heartbeat_timeout") {
        z.heartbeat_timeout = positive(v, &p("heartbeat_timeout"), MAX_SECONDS)?;
    }
    if let Some(v) = m.get("not_responding_timeout") {
        z.not_responding_timeout = positive(v, &p("not_responding_timeout"), MAX_SECONDS)?;
    }
    if let Some(v) = m.get("app_uuid") {
        z.app_uuid = string(v, &p("app_uuid"))?;
    }
    if let Some(v) = m.get("buffer_size") {
        z.buffer_size = int_in(v, &p("buffer_size"), 1, i128::from(u32::MAX))?;
    }
    if let Some(v) = m.get("data_timeout_seconds") {
        z.data_timeout_seconds = positive(v, &p("data_timeout_seconds"), MAX_SECONDS)?;
    }
    if let Some(v) = m.get("auto_reinit_on_timeout") {
        z.auto_reinit_on_timeout = boolean(v, &p("auto_reinit_on_timeout"))?;
    }
    Ok(())
}

/// Returns the value of `osc.processing.enable_batching`, if present.
fn parse_processing(
    m: &Map<String, Value>,
    pc: &mut ProcessingConfig,
    w: &mut Vec<String>,
) -> CResult<Option<bool>> {
    const P: &str = "osc.processing";
    warn_unknown(
        m,
        P,
        &[
            "downsampling_factor",
            "downsampling_method",
            "batch_size",
            "batch_timeout_ms",
            "enable_batching",
        ],
        w,
    );
    let p = |k: &str| join(P, k);
    if let Some(v) = m.get("downsampling_factor") {
        pc.downsampling_factor = int_in(v, &p("downsampling_factor"), 1, 1000)?;
    }
    if let Some(v) = m.get("downsampling_method") {
        pc.downsampling_method = choice(
            v,
            &p("downsampling_method"),
            DownsamplingMethod::parse,
            "\"average\", \"decimate\"",
        )?;
    }
    if let Some(v) = m.get("batch_size") {
        pc.batch_size = int_in(v, &p("batch_size"), 1, 1000)?;
    }
    if let Some(v) = m.get("batch_timeout_ms") {
        pc.batch_timeout_ms = positive(v, &p("batch_timeout_ms"), MAX_MILLIS)?;
    }
    m.get("enable_batching")
        .map(|v| boolean(v, &p("enable_batching")))
        .transpose()
}

/// Returns the value of `osc.processing.enable_batching`, if present.
fn parse_osc(
    m: &Map<String, Value>,
    o: &mut OscConfig,
    w: &mut Vec<String>,
) -> CResult<Option<bool>> {
    const P: &str = "osc";
    warn_unknown(
        m,
        P,
        &[
            "host",
            "port",
            "base_address",
            "send_individual_channels",
            "channel_address_format",
            "processing",
        ],
        w,
    );
    let p = |k: &str| join(P, k);
    if let Some(v) = m.get("host") {
        o.host = nonempty_string(v, &p("host"))?;
    }
    if let Some(v) = m.get("port") {
        o.port = int_in(v, &p("port"), 1, 65535)?;
    }
    if let Some(v) = m.get("base_address") {
        o.base_address = base_address(v, &p("base_address"))?;
    }
    if let Some(v) = m.get("send_individual_channels") {
        o.send_individual_channels = boolean(v, &p("send_individual_channels"))?;
    }
    if let Some(v) = m.get("channel_address_format") {
        o.channel_address_format = slash_string(v, &p("channel_address_format"))?;
    }
    match m.get("processing") {
        Some(v) => {
            let pm = as_object(v, &p("processing"))?;
            parse_processing(pm, &mut o.processing, w)
        }
        None => Ok(None),
    }
}

fn parse_ui(m: &Map<String, Value>, u: &mut UiConfig, w: &mut Vec<String>) -> CResult<()> {
    const P: &str = "ui";
    warn_unknown(m, P, &["refresh_rate", "theme", "show_debug_info"], w);
    let p = |k: &str| join(P, k);
    if let Some(v) = m.get("refresh_rate") {
        u.refresh_rate = positive(v, &p("refresh_rate"), MAX_REFRESH_HZ)?;
    }
    if let Some(v) = m.get("theme") {
        u.theme = string(v, &p("theme"))?;
    }
    if let Some(v) = m.get("show_debug_info") {
        u.show_debug_info = boolean(v, &p("show_debug_info"))?;
    }
    Ok(())
}

fn parse_app(m: &Map<String, Value>, a: &mut AppConfig, w: &mut Vec<String>) -> CResult<()> {
    const P: &str = "app";
    warn_unknown(
        m,
        P,
        &["app_name", "app_version", "log_level", "config_file"],
        w,
    );
    let p = |k: &str| join(P, k);
    if let Some(v) = m.get("app_name") {
        a.app_name = string(v, &p("app_name"))?;
    }
    if let Some(v) = m.get("app_version") {
        a.app_version = string(v, &p("app_version"))?;
    }
    if let Some(v) = m.get("log_level") {
        a.log_level = choice(
            v,
            &p("log_level"),
            LogLevel::parse,
            "\"DEBUG\", \"INFO\", \"WARNING\", \"WARN\", \"ERROR\", \"CRITICAL\"",
        )?;
    }
    if let Some(v) = m.get("config_file") {
        a.config_file = string(v, &p("config_file"))?;
    }
    Ok(())
}

/// Parses `performance`, including the minimal-format `zmq_*` keys, which
/// override `cfg.zmq` (warning when `zmq_section` also set them differently).
fn parse_performance(
    m: &Map<String, Value>,
    cfg: &mut Config,
    zmq_section: Option<&Map<String, Value>>,
    w: &mut Vec<String>,
) -> CResult<()> {
    const P: &str = "performance";
    warn_unknown(
        m,
        P,
        &[
            "osc_queue_max_size",
            "osc_queue_overflow_strategy",
            "ui_update_interval_ms",
            "metrics_collection_interval_ms",
            "mode",
            "enable_batching",
            "adaptive_batching",
            "zmq_not_responding_timeout",
            "zmq_data_timeout_seconds",
            "zmq_auto_reinit_on_timeout",
            "pin_threads",
            "max_channels",
            "max_block_samples",
            "missing_channel_policy",
        ],
        w,
    );
    let p = |k: &str| join(P, k);
    let in_zmq = |k: &str| zmq_section.is_some_and(|z| z.contains_key(k));
    let pf = &mut cfg.performance;
    if let Some(v) = m.get("osc_queue_max_size") {
        pf.osc_queue_max_size = int_in(v, &p("osc_queue_max_size"), 1, 100_000)?;
    }
    if let Some(v) = m.get("osc_queue_overflow_strategy") {
        pf.osc_queue_overflow_strategy = choice(
            v,
            &p("osc_queue_overflow_strategy"),
            OverflowStrategy::parse,
            "\"drop_oldest\", \"drop_newest\", \"block\"",
        )?;
    }
    if let Some(v) = m.get("ui_update_interval_ms") {
        pf.ui_update_interval_ms = positive(v, &p("ui_update_interval_ms"), MAX_MILLIS)?;
    }
    if let Some(v) = m.get("metrics_collection_interval_ms") {
        pf.metrics_collection_interval_ms =
            positive(v, &p("metrics_collection_interval_ms"), MAX_MILLIS)?;
    }
    if let Some(v) = m.get("mode") {
        pf.mode = choice(
            v,
            &p("mode"),
            PerformanceMode::parse,
            "\"low_latency\", \"balanced\", \"high_throughput\"",
        )?;
    }
    if let Some(v) = m.get("enable_batching") {
        pf.enable_batching = boolean(v, &p("enable_batching"))?;
    }
    if let Some(v) = m.get("adaptive_batching") {
        pf.adaptive_batching = boolean(v, &p("adaptive_batching"))?;
    }
    if let Some(v) = m.get("pin_threads") {
        pf.pin_threads = boolean(v, &p("pin_threads"))?;
    }
    if let Some(v) = m.get("max_channels") {
        pf.max_channels = int_in(v, &p("max_channels"), 1, 16_384)?;
    }
    if let Some(v) = m.get("missing_channel_policy") {
        pf.missing_channel_policy = choice(
            v,
            &p("missing_channel_policy"),
            MissingChannelPolicy::parse,
            "skip, nan, hold",
        )?;
    }
    if let Some(v) = m.get("max_block_samples") {
        pf.max_block_samples = int_in(v, &p("max_block_samples"), 1, 1_048_576)?;
    }

    // Minimal-format keys: copied over zmq.* (they win, as in the original).
    let z = &mut cfg.zmq;
    if let Some(v) = m.get("zmq_not_responding_timeout") {
        let new = positive(v, &p("zmq_not_responding_timeout"), MAX_SECONDS)?;
        if in_zmq("not_responding_timeout") && new != z.not_responding_timeout {
            w.push(format!(
                "performance.zmq_not_responding_timeout = {} overrides zmq.not_responding_timeout = {}",
                jf(new),
                jf(z.not_responding_timeout)
            ));
        }
        z.not_responding_timeout = new;
    }
    if let Some(v) = m.get("zmq_data_timeout_seconds") {
        let new = positive(v, &p("zmq_data_timeout_seconds"), MAX_SECONDS)?;
        if in_zmq("data_timeout_seconds") && new != z.data_timeout_seconds {
            w.push(format!(
                "performance.zmq_data_timeout_seconds = {} overrides zmq.data_timeout_seconds = {}",
                jf(new),
                jf(z.data_timeout_seconds)
            ));
        }
        z.data_timeout_seconds = new;
    }
    if let Some(v) = m.get("zmq_auto_reinit_on_timeout") {
        let new = boolean(v, &p("zmq_auto_reinit_on_timeout"))?;
        if in_zmq("auto_reinit_on_timeout") && new != z.auto_reinit_on_timeout {
            w.push(format!(
                "performance.zmq_auto_reinit_on_timeout = {new} overrides zmq.auto_reinit_on_timeout = {}",
                z.auto_reinit_on_timeout
            ));
        }
        z.auto_reinit_on_timeout = new;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Config API
// ---------------------------------------------------------------------------

impl Config {
    /// Parses and validates a `config.json` text (minimal or full format).
    ///
    /// Returns the configuration and a list of warnings (unknown keys, which
    /// are ignored; a minimal-format key overriding a different value given
    /// under its full-format spelling). Missing keys keep their defaults.
    ///
    /// Precedence (as the original): `performance.zmq_not_responding_timeout`,
    /// `performance.zmq_data_timeout_seconds` and
    /// `performance.zmq_auto_reinit_on_timeout` win over the corresponding
    /// `zmq.*` keys; `osc.processing.enable_batching` wins over
    /// `performance.enable_batching`.
    ///
    /// # Errors
    /// JSON syntax errors (with serde_json's line/column), a top level or
    /// section that is not an object, and any value of the wrong type or out
    /// of range (the error names the key path).
    pub fn from_json_str(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let root: Value = serde_json::from_str(text)
            .map_err(|e| ConfigError::file(format!("invalid JSON: {e}")))?;
        let Value::Object(top) = &root else {
            return Err(ConfigError::file(format!(
                "expected a JSON object at the top level, got {}",
                describe(&root)
            )));
        };
        let mut w = Vec::new();
        let mut cfg = Config::default();
        warn_unknown(
            top,
            "",
            &["zmq", "osc", "ui", "app", "performance", "outputs"],
            &mut w,
        );
        collect_paths(&root, "", &mut cfg.explicit);

        let zmq = top.get("zmq").map(|v| as_object(v, "zmq")).transpose()?;
        if let Some(m) = zmq {
            parse_zmq(m, &mut cfg.zmq, &mut w)?;
        }
        let mut processing_batching = None;
        if let Some(v) = top.get("osc") {
            processing_batching = parse_osc(as_object(v, "osc")?, &mut cfg.osc, &mut w)?;
        }
        if let Some(v) = top.get("ui") {
            parse_ui(as_object(v, "ui")?, &mut cfg.ui, &mut w)?;
        }
        if let Some(v) = top.get("app") {
            parse_app(as_object(v, "app")?, &mut cfg.app, &mut w)?;
        }
        let mut perf_has_batching = false;
        if let Some(v) = top.get("performance") {
            let m = as_object(v, "performance")?;
            perf_has_batching = m.contains_key("enable_batching");
            parse_performance(m, &mut cfg, zmq, &mut w)?;
        }
        if let Some(b) = processing_batching {
            if perf_has_batching && b != cfg.performance.enable_batching {
                w.push(format!(
                    "osc.processing.enable_batching = {b} overrides performance.enable_batching = {}",
                    cfg.performance.enable_batching
                ));
            }
            cfg.performance.enable_batching = b;
        }
        for line in cfg.apply_mode_presets() {
            w.push(line);
        }
        if let Some(v) = top.get("outputs") {
            cfg.outputs = parse_outputs(v, &cfg, &mut w)?;
        }
        Ok((cfg, w))
    }

    /// Loads the configuration file.
    ///
    /// `None` → `config.json` in the current directory; if it does not exist
    /// the defaults are returned with the note
    /// `Config file config.json not found, using defaults`.
    /// `Some(path)` → that file, which must exist.
    ///
    /// # Errors
    /// An explicit file that does not exist, read errors and JSON syntax
    /// errors (naming the file), and every error of [`Config::from_json_str`].
    pub fn load(path: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
        Config::load_from(Path::new(""), path)
    }

    /// Like [`Config::load`], but with `None` looks for `config.json` in
    /// `default_dir` instead of the current directory. An explicit `path` is
    /// used as given.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_from(
        default_dir: &Path,
        path: Option<&Path>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let file = match path {
            Some(p) => p.to_path_buf(),
            None => default_dir.join(DEFAULT_CONFIG_FILE),
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if path.is_none() {
                    return Ok((
                        Config::default(),
                        vec![format!(
                            "Config file {DEFAULT_CONFIG_FILE} not found, using defaults"
                        )],
                    ));
                }
                return Err(ConfigError::file(format!(
                    "config file '{}' not found",
                    file.display()
                )));
            }
            Err(e) => {
                return Err(ConfigError::file(format!(
                    "cannot read config file '{}': {e}",
                    file.display()
                )));
            }
        };
        Config::from_json_str(&text).map_err(|e| {
            if e.path.is_empty() {
                ConfigError::file(format!("config file '{}': {}", file.display(), e.message))
            } else {
                e
            }
        })
    }

    /// Applies the presets of `performance.mode` to every key the file did not set
    /// explicitly, and returns one line per preset applied.
    ///
    /// * `balanced` (what generated files hold): nothing changes — the original's wire
    ///   behaviour.
    /// * `low_latency`: `osc_queue_max_size` 10 (a stale queue is worse than a drop), plain
    ///   messages (`enable_batching` false); hot threads spin 500 µs before parking.
    /// * `high_throughput`: `enable_batching` true with `batch_size` 10 (10× fewer
    ///   datagrams), `osc_queue_max_size` 200; hot threads park after 5 µs.
    ///
    /// Every output keeps its own shard whatever the mode.
    pub fn apply_mode_presets(&mut self) -> Vec<String> {
        let mut applied = Vec::new();
        let explicit = |k: &str| self.explicit.contains(k);
        let mut set = |key: &str, explicit_keys: &[&str], apply: &mut dyn FnMut()| {
            if !explicit_keys.iter().any(|k| explicit(k)) {
                apply();
                applied.push(key.to_string());
            }
        };
        let mut p = self.performance.clone();
        let mut pr = self.osc.processing.clone();
        match self.performance.mode {
            PerformanceMode::Balanced => {}
            PerformanceMode::LowLatency => {
                set(
                    "performance.osc_queue_max_size = 10",
                    &["performance.osc_queue_max_size"],
                    &mut || p.osc_queue_max_size = 10,
                );
                set(
                    "performance.enable_batching = false",
                    &[
                        "performance.enable_batching",
                        "osc.processing.enable_batching",
                    ],
                    &mut || p.enable_batching = false,
                );
            }
            PerformanceMode::HighThroughput => {
                set(
                    "performance.enable_batching = true",
                    &[
                        "performance.enable_batching",
                        "osc.processing.enable_batching",
                    ],
                    &mut || p.enable_batching = true,
                );
                set(
                    "osc.processing.batch_size = 10",
                    &["osc.processing.batch_size"],
                    &mut || pr.batch_size = 10,
                );
                set(
                    "performance.osc_queue_max_size = 200",
                    &["performance.osc_queue_max_size"],
                    &mut || p.osc_queue_max_size = 200,
                );
            }
        }
        self.performance = p;
        self.osc.processing = pr;
        applied
            .into_iter()
            .map(|a| {
                format!(
                    "performance.mode {} preset: {a}",
                    self.performance.mode.as_str()
                )
            })
            .collect()
    }

    /// Batch size actually used: `osc.processing.batch_size` when
    /// `performance.enable_batching` is true, else 1 (the original forces
    /// B = 1 in sample mode).
    pub fn effective_batch_size(&self) -> u32 {
        if self.performance.enable_batching {
            self.osc.processing.batch_size
        } else {
            1
        }
    }

    /// One line per leaf value that differs from the default, in key order
    /// (the order of the full format, new keys last), e.g.
    /// `osc.port = 9000 (default 10000)`. Values are rendered as JSON.
    pub fn non_default_settings(&self) -> Vec<String> {
        let defaults = Config::default().leaves();
        self.leaves()
            .into_iter()
            .zip(defaults)
            .filter(|((_, v), (_, d))| v != d)
            .map(|((k, v), (_, d))| format!("{k} = {v} (default {d})"))
            .collect()
    }

    /// All leaf values, rendered as JSON, in key order.
    fn leaves(&self) -> Vec<(&'static str, String)> {
        let z = &self.zmq;
        let o = &self.osc;
        let pr = &o.processing;
        let u = &self.ui;
        let a = &self.app;
        let pf = &self.performance;
        vec![
            ("zmq.host", js(&z.host)),
            ("zmq.data_port", z.data_port.to_string()),
            ("zmq.heartbeat_timeout", jf(z.heartbeat_timeout)),
            ("zmq.not_responding_timeout", jf(z.not_responding_timeout)),
            ("zmq.app_uuid", js(&z.app_uuid)),
            ("zmq.buffer_size", z.buffer_size.to_string()),
            ("zmq.data_timeout_seconds", jf(z.data_timeout_seconds)),
            (
                "zmq.auto_reinit_on_timeout",
                z.auto_reinit_on_timeout.to_string(),
            ),
            ("osc.host", js(&o.host)),
            ("osc.port", o.port.to_string()),
            ("osc.base_address", js(&o.base_address)),
            (
                "osc.send_individual_channels",
                o.send_individual_channels.to_string(),
            ),
            ("osc.channel_address_format", js(&o.channel_address_format)),
            (
                "osc.processing.downsampling_factor",
                pr.downsampling_factor.to_string(),
            ),
            (
                "osc.processing.downsampling_method",
                js(pr.downsampling_method.as_str()),
            ),
            ("osc.processing.batch_size", pr.batch_size.to_string()),
            ("osc.processing.batch_timeout_ms", jf(pr.batch_timeout_ms)),
            ("ui.refresh_rate", jf(u.refresh_rate)),
            ("ui.theme", js(&u.theme)),
            ("ui.show_debug_info", u.show_debug_info.to_string()),
            ("app.app_name", js(&a.app_name)),
            ("app.app_version", js(&a.app_version)),
            ("app.log_level", js(a.log_level.as_str())),
            ("app.config_file", js(&a.config_file)),
            (
                "performance.osc_queue_max_size",
                pf.osc_queue_max_size.to_string(),
            ),
            (
                "performance.osc_queue_overflow_strategy",
                js(pf.osc_queue_overflow_strategy.as_str()),
            ),
            (
                "performance.ui_update_interval_ms",
                jf(pf.ui_update_interval_ms),
            ),
            (
                "performance.metrics_collection_interval_ms",
                jf(pf.metrics_collection_interval_ms),
            ),
            ("performance.mode", js(pf.mode.as_str())),
            (
                "performance.enable_batching",
                pf.enable_batching.to_string(),
            ),
            (
                "performance.adaptive_batching",
                pf.adaptive_batching.to_string(),
            ),
            ("performance.pin_threads", pf.pin_threads.to_string()),
            ("performance.max_channels", pf.max_channels.to_string()),
            (
                "performance.max_block_samples",
                pf.max_block_samples.to_string(),
            ),
            (
                "performance.missing_channel_policy",
                js(pf.missing_channel_policy.as_str()),
            ),
        ]
    }
}

/// Equality of the settings (which keys were spelled out explicitly does not matter).
impl PartialEq for Config {
    fn eq(&self, o: &Self) -> bool {
        self.zmq == o.zmq
            && self.osc == o.osc
            && self.ui == o.ui
            && self.app == o.app
            && self.performance == o.performance
            && self.outputs == o.outputs
    }
}

// ---------------------------------------------------------------------------
// Outputs (new)
// ---------------------------------------------------------------------------

/// Message layout of an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormatKind {
    /// `{base}/sample` + N floats per output row.
    Sample,
    /// `{base}/batch/<k>` + int N + N·k floats, channel-major.
    Batch,
    /// One message per channel per output row at the channel's address.
    PerChannel,
    /// `{base}/blob` + int N + int k + one blob of N·k big-endian float32, channel-major.
    Blob,
}

impl OutputFormatKind {
    /// JSON spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            OutputFormatKind::Sample => "sample",
            OutputFormatKind::Batch => "batch",
            OutputFormatKind::PerChannel => "per_channel",
            OutputFormatKind::Blob => "blob",
        }
    }
    /// Parses the JSON spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sample" => OutputFormatKind::Sample,
            "batch" => OutputFormatKind::Batch,
            "per_channel" => OutputFormatKind::PerChannel,
            "blob" => OutputFormatKind::Blob,
            _ => return None,
        })
    }
}

/// OSC bundles around each output row / batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleMode {
    /// Plain messages (default, as the original).
    Off,
    /// Bundles with time tag 1 ("immediately").
    Immediate,
    /// Bundles whose time tag is derived from the sample clock (NTP time of the row's first
    /// sample: the wall clock of the block's arrival minus its age in samples).
    SampleClock,
}

/// Receiver datagram-size profiles.
pub const SIZE_PROFILES: &[(&str, usize)] = &[
    ("lan", 1472),
    ("jumbo", 9216),
    ("loopback", 65507),
    ("python-osc", 8192),
    ("oscp5", 1536),
    ("oscjack", 4096),
];

/// One entry of `outputs`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputConfig {
    /// `name`: shown in reports. Default `output<i>`.
    pub name: String,
    /// `host` (default `osc.host`): unicast, broadcast or multicast group.
    pub host: String,
    /// `port` (default `osc.port`).
    pub port: u16,
    /// `format`: `sample` (default), `batch`, `per_channel`, `blob`.
    pub format: OutputFormatKind,
    /// `base_address` (default `osc.base_address`).
    pub base_address: String,
    /// `address` (per-channel format): template with `{base}`, `{stream}`, `{name}`,
    /// `{ch}`, `{ch:03}`, `{index}`, or the original's `/ch{:03d}`. Default `{base}/ch{ch:03}`.
    pub address: String,
    /// `channels`: selection and order, e.g. `"0-15,32"` or `[3, 1, "8-11"]`. None = all.
    pub channels: Option<Vec<u32>>,
    /// `names`: `{"0": "Fp1", …}` renames used by `{name}` (default: the OE channel name).
    pub names: Vec<(u32, String)>,
    /// `layout`: `dense` (default) or `sparse` (argument index = channel number, absent
    /// channels are NaN).
    pub sparse: bool,
    /// Downsampling factor (default `osc.processing.downsampling_factor`).
    pub downsampling_factor: u32,
    /// Downsampling method.
    pub downsampling_method: DownsamplingMethod,
    /// Rows per batch (batch and blob formats).
    pub batch_size: u32,
    /// Partial-batch timer (ms).
    pub batch_timeout_ms: f64,
    /// `max_datagram`: bytes or a profile name (lan 1472 default, jumbo 9216, loopback 65507,
    /// python-osc 8192, oscp5 1536, oscjack 4096). Larger messages are split (see README).
    pub max_datagram: usize,
    /// `pacing`: `off` (default) or `smooth` (spread each block's datagrams over its duration).
    pub pacing: bool,
    /// `sample_number`: append the row's first input sample index as two `i` (high, low 32 bits).
    pub sample_number: bool,
    /// `bundle`: `false`/`"off"` (default), `"immediate"` (time tag 1), `"sample_clock"`.
    pub bundle: BundleMode,
    /// `events`: send TTL events to `{base}/ttl` (i line, i state, i sample_num hi, lo, i word hi, lo).
    pub events: bool,
    /// `spikes`: send spikes to `{base}/spike` (s electrode, i sorted_id, i sample_num hi, lo
    /// [, f waveform…]).
    pub spikes: bool,
    /// `spike_waveform`: include the waveform floats.
    pub spike_waveform: bool,
    /// `status`: once a second `{base}/status` with counters.
    pub status: bool,
    /// `notices`: `{base}/notice` when the channel set, stream or rate changes.
    pub notices: bool,
    /// `multicast_ttl` for a multicast group destination (default 1).
    pub multicast_ttl: u32,
}

fn collect_paths(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                collect_paths(v, &join(prefix, k), out);
            }
        }
        _ => {
            if !prefix.is_empty() {
                out.insert(prefix.to_string());
            }
        }
    }
}

/// Parses a channel selection: `"0-15,32"`, or an array of numbers and range strings.
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
                        let n: u32 = int_in(it, &format!("{path}[{i}]"), 0, i128::from(max) - 1)?;
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

fn parse_outputs(v: &Value, cfg: &Config, w: &mut Vec<String>) -> CResult<Vec<OutputConfig>> {
    let Value::Array(items) = v else {
        return Err(ConfigError::at(
            "outputs",
            format!("expected an array of output objects, got {}", describe(v)),
        ));
    };
    if items.len() > 16 {
        return Err(ConfigError::at("outputs", "at most 16 outputs"));
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("outputs[{i}]");
        let m = as_object(item, &path)?;
        let p = |k: &str| format!("{path}.{k}");
        warn_unknown(
            m,
            &path,
            &[
                "name",
                "host",
                "port",
                "format",
                "base_address",
                "address",
                "channels",
                "names",
                "layout",
                "downsampling_factor",
                "downsampling_method",
                "batch_size",
                "batch_timeout_ms",
                "max_datagram",
                "pacing",
                "sample_number",
                "bundle",
                "events",
                "spikes",
                "spike_waveform",
                "status",
                "notices",
                "multicast_ttl",
            ],
            w,
        );
        let pr = &cfg.osc.processing;
        let mut o = OutputConfig {
            name: format!("output{i}"),
            host: cfg.osc.host.clone(),
            port: cfg.osc.port,
            format: OutputFormatKind::Sample,
            base_address: cfg.osc.base_address.clone(),
            address: "{base}/ch{ch:03}".into(),
            channels: None,
            names: Vec::new(),
            sparse: false,
            downsampling_factor: pr.downsampling_factor,
            downsampling_method: pr.downsampling_method,
            batch_size: if cfg.performance.enable_batching {
                pr.batch_size
            } else {
                10
            },
            batch_timeout_ms: pr.batch_timeout_ms,
            max_datagram: 1472,
            pacing: false,
            sample_number: false,
            bundle: BundleMode::Off,
            events: false,
            spikes: false,
            spike_waveform: false,
            status: false,
            notices: false,
            multicast_ttl: 1,
        };
        let max_ch = cfg.performance.max_channels;
        for (k, v) in m {
            let kp = p(k);
            match k.as_str() {
                "name" => o.name = nonempty_string(v, &kp)?,
                "host" => o.host = nonempty_string(v, &kp)?,
                "port" => o.port = int_in(v, &kp, 1, 65535)?,
                "format" => {
                    o.format = choice(v, &kp, OutputFormatKind::parse, "sample, batch, per_channel, blob")?
                }
                "base_address" => o.base_address = base_address(v, &kp)?,
                "address" => o.address = string(v, &kp)?,
                "channels" => o.channels = Some(parse_channel_list(v, &kp, max_ch)?),
                "names" => {
                    let nm = as_object(v, &kp)?;
                    for (ck, cv) in nm {
                        let ch: u32 = ck.parse().ok().filter(|c| *c < max_ch).ok_or_else(|| {
                            ConfigError::at(&kp, format!("key '{ck}' is not a channel number below {max_ch}"))
                        })?;
                        o.names.push((ch, nonempty_string(cv, &format!("{kp}.{ck}"))?));
                    }
                }
                "layout" => {
                    o.sparse = choice(
                        v,
                        &kp,
                        |s| match s {
                            "dense" => Some(false),
                            "sparse" => Some(true),
                            _ => None,
                        },
                        "dense, sparse",
                    )?
                }
                "downsampling_factor" => o.downsampling_factor = int_in(v, &kp, 1, 1000)?,
                "downsampling_method" => {
                    o.downsampling_method = choice(v, &kp, DownsamplingMethod::parse, "average, decimate")?
                }
                "batch_size" => o.batch_size = int_in(v, &kp, 1, 1000)?,
                "batch_timeout_ms" => o.batch_timeout_ms = positive(v, &kp, MAX_MILLIS)?,
                "max_datagram" => {
                    o.max_datagram = match v {
                        Value::String(s) => SIZE_PROFILES
                            .iter()
                            .find(|(n, _)| n == s)
                            .map(|(_, b)| *b)
                            .ok_or_else(|| {
                                ConfigError::at(
                                    &kp,
                                    format!(
                                        "unknown profile {}; use bytes (64..65507) or one of lan, jumbo, loopback, python-osc, oscp5, oscjack",
                                        describe(v)
                                    ),
                                )
                            })?,
                        _ => int_in(v, &kp, 64, 65507)?,
                    }
                }
                "pacing" => {
                    o.pacing = choice(
                        v,
                        &kp,
                        |s| match s {
                            "off" => Some(false),
                            "smooth" => Some(true),
                            _ => None,
                        },
                        "off, smooth",
                    )?
                }
                "sample_number" => o.sample_number = boolean(v, &kp)?,
                "bundle" => {
                    o.bundle = match v {
                        Value::Bool(false) => BundleMode::Off,
                        Value::Bool(true) => BundleMode::Immediate,
                        _ => choice(
                            v,
                            &kp,
                            |s| match s {
                                "off" => Some(BundleMode::Off),
                                "immediate" => Some(BundleMode::Immediate),
                                "sample_clock" => Some(BundleMode::SampleClock),
                                _ => None,
                            },
                            "off, immediate, sample_clock",
                        )?,
                    }
                }
                "events" => o.events = boolean(v, &kp)?,
                "spikes" => o.spikes = boolean(v, &kp)?,
                "spike_waveform" => o.spike_waveform = boolean(v, &kp)?,
                "status" => o.status = boolean(v, &kp)?,
                "notices" => o.notices = boolean(v, &kp)?,
                "multicast_ttl" => o.multicast_ttl = int_in(v, &kp, 0, 255)?,
                _ => {}
            }
        }
        if o.format == OutputFormatKind::PerChannel {
            crate::output::osc::validate_address_template(&o.address)
                .map_err(|e| ConfigError::at(&p("address"), e))?;
        }
        if o.sparse && o.channels.is_some() {
            w.push(format!(
                "{path}: layout 'sparse' places channels by number; the order given in 'channels' only selects"
            ));
        }
        out.push(o);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn parse(text: &str) -> (Config, Vec<String>) {
        match Config::from_json_str(text) {
            Ok(r) => r,
            Err(e) => panic!("unexpected error for {text}: {e}"),
        }
    }

    fn parse_err(text: &str) -> ConfigError {
        match Config::from_json_str(text) {
            Ok(r) => panic!("expected an error for {text}, got {r:?}"),
            Err(e) => e,
        }
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "zmq2osc-config-test-{}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ));
            std::fs::create_dir_all(&dir).expect("create temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.zmq.host, "localhost");
        assert_eq!(c.zmq.data_port, 5556);
        assert_eq!(c.zmq.heartbeat_timeout, 2.0);
        assert_eq!(c.zmq.not_responding_timeout, 10.0);
        assert_eq!(c.zmq.app_uuid, "1618");
        assert_eq!(c.zmq.buffer_size, 30000);
        assert_eq!(c.zmq.data_timeout_seconds, 2.0);
        assert!(c.zmq.auto_reinit_on_timeout);
        assert_eq!(c.osc.host, "127.0.0.1");
        assert_eq!(c.osc.port, 10000);
        assert_eq!(c.osc.base_address, "/data");
        assert!(!c.osc.send_individual_channels);
        assert_eq!(c.osc.channel_address_format, "/ch{:03d}");
        assert_eq!(c.osc.processing.downsampling_factor, 30);
        assert_eq!(
            c.osc.processing.downsampling_method,
            DownsamplingMethod::Average
        );
        assert_eq!(c.osc.processing.batch_size, 1);
        assert_eq!(c.osc.processing.batch_timeout_ms, 1000.0);
        assert_eq!(c.ui.refresh_rate, 10.0);
        assert_eq!(c.ui.theme, "default");
        assert!(!c.ui.show_debug_info);
        assert_eq!(c.app.app_name, "OpenEphys - ZMQ to OSC");
        assert_eq!(c.app.app_version, "0.1.0");
        assert_eq!(c.app.log_level, LogLevel::Info);
        assert_eq!(c.app.config_file, "config.json");
        let p = &c.performance;
        assert_eq!(p.osc_queue_max_size, 100);
        assert_eq!(p.osc_queue_overflow_strategy, OverflowStrategy::DropOldest);
        assert_eq!(p.ui_update_interval_ms, 100.0);
        assert_eq!(p.metrics_collection_interval_ms, 250.0);
        assert_eq!(p.mode, PerformanceMode::Balanced);
        assert!(!p.enable_batching);
        assert!(!p.adaptive_batching);
        assert!(p.pin_threads);
        assert_eq!(p.max_channels, 1024);
        assert_eq!(p.max_block_samples, 2048);
        assert_eq!(c.effective_batch_size(), 1);
        assert!(c.non_default_settings().is_empty());
    }

    #[test]
    fn empty_object_gives_defaults() {
        assert_eq!(parse("{}"), (Config::default(), vec![]));
    }

    #[test]
    fn minimal_and_full_formats() {
        assert_eq!(parse(MINIMAL_CONFIG_JSON), (Config::default(), vec![]));
        assert_eq!(parse(FULL_CONFIG_JSON), (Config::default(), vec![]));
        for t in [MINIMAL_CONFIG_JSON, FULL_CONFIG_JSON] {
            assert!(t.starts_with("{\n  \"zmq\": {\n    \"host\": \"localhost\",\n"));
            assert!(t.ends_with("\n  }\n}"));
        }
        assert!(
            MINIMAL_CONFIG_JSON.contains("\"enable_batching\": false,\n      \"batch_size\": 1\n")
        );
        assert!(FULL_CONFIG_JSON.contains("\"batch_timeout_ms\": 1000.0\n"));
        assert_eq!(MINIMAL_CONFIG_JSON.lines().count(), 25);
        assert_eq!(FULL_CONFIG_JSON.lines().count(), 45);
    }

    #[test]
    fn full_format_values_apply() {
        let text = FULL_CONFIG_JSON
            .replace("\"port\": 10000", "\"port\": 9000")
            .replace("\"batch_size\": 1,", "\"batch_size\": 50,")
            .replace("\"enable_batching\": false", "\"enable_batching\": true")
            .replace("\"log_level\": \"INFO\"", "\"log_level\": \"warn\"")
            .replace("\"mode\": \"balanced\"", "\"mode\": \"low_latency\"")
            .replace("\"drop_oldest\"", "\"block\"")
            .replace("\"average\"", "\"decimate\"");
        let (c, w) = parse(&text);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.osc.port, 9000);
        assert_eq!(c.osc.processing.batch_size, 50);
        assert!(c.performance.enable_batching);
        assert_eq!(c.effective_batch_size(), 50);
        assert_eq!(c.app.log_level, LogLevel::Warning);
        assert_eq!(c.performance.mode, PerformanceMode::LowLatency);
        assert_eq!(
            c.performance.osc_queue_overflow_strategy,
            OverflowStrategy::Block
        );
        assert_eq!(
            c.osc.processing.downsampling_method,
            DownsamplingMethod::Decimate
        );
    }

    #[test]
    fn batch_size_forced_to_one_in_sample_mode() {
        let (c, _) = parse(r#"{"osc": {"processing": {"batch_size": 10}}}"#);
        assert_eq!(c.osc.processing.batch_size, 10);
        assert_eq!(c.effective_batch_size(), 1);
    }

    #[test]
    fn zmq_mapping_precedence() {
        // Minimal keys alone.
        let (c, w) = parse(
            r#"{"performance": {"zmq_not_responding_timeout": 7, "zmq_data_timeout_seconds": 3.5,
                "zmq_auto_reinit_on_timeout": false}}"#,
        );
        assert!(w.is_empty());
        assert_eq!(c.zmq.not_responding_timeout, 7.0);
        assert_eq!(c.zmq.data_timeout_seconds, 3.5);
        assert!(!c.zmq.auto_reinit_on_timeout);

        // Both spellings: performance.* wins, whatever the order in the file.
        for text in [
            r#"{"zmq": {"data_timeout_seconds": 5.0, "not_responding_timeout": 20,
                        "auto_reinit_on_timeout": true},
                "performance": {"zmq_data_timeout_seconds": 3.0, "zmq_not_responding_timeout": 8,
                                "zmq_auto_reinit_on_timeout": false}}"#,
            r#"{"performance": {"zmq_data_timeout_seconds": 3.0, "zmq_not_responding_timeout": 8,
                                "zmq_auto_reinit_on_timeout": false},
                "zmq": {"data_timeout_seconds": 5.0, "not_responding_timeout": 20,
                        "auto_reinit_on_timeout": true}}"#,
        ] {
            let (c, w) = parse(text);
            assert_eq!(c.zmq.data_timeout_seconds, 3.0);
            assert_eq!(c.zmq.not_responding_timeout, 8.0);
            assert!(!c.zmq.auto_reinit_on_timeout);
            assert_eq!(w.len(), 3, "{w:?}");
            assert!(w.iter().any(|s| s
                == "performance.zmq_data_timeout_seconds = 3.0 overrides zmq.data_timeout_seconds = 5.0"));
        }

        // zmq.* alone applies.
        let (c, _) = parse(r#"{"zmq": {"data_timeout_seconds": 5}}"#);
        assert_eq!(c.zmq.data_timeout_seconds, 5.0);

        // Same value in both: no warning.
        let (_, w) = parse(
            r#"{"zmq": {"data_timeout_seconds": 5}, "performance": {"zmq_data_timeout_seconds": 5.0}}"#,
        );
        assert!(w.is_empty());

        // Minimal keys are validated under their own path.
        let e = parse_err(r#"{"performance": {"zmq_data_timeout_seconds": 0}}"#);
        assert_eq!(e.path, "performance.zmq_data_timeout_seconds");
    }

    #[test]
    fn enable_batching_precedence() {
        let (c, w) = parse(r#"{"osc": {"processing": {"enable_batching": true}}}"#);
        assert!(c.performance.enable_batching);
        assert!(w.is_empty());

        let (c, w) = parse(
            r#"{"osc": {"processing": {"enable_batching": true, "batch_size": 4}},
                "performance": {"enable_batching": false}}"#,
        );
        assert!(c.performance.enable_batching);
        assert_eq!(c.effective_batch_size(), 4);
        assert_eq!(
            w,
            vec![
                "osc.processing.enable_batching = true overrides performance.enable_batching = false"
            ]
        );

        let (c, _) = parse(
            r#"{"performance": {"enable_batching": true},
                "osc": {"processing": {"enable_batching": false}}}"#,
        );
        assert!(!c.performance.enable_batching);

        let (c, _) = parse(r#"{"performance": {"enable_batching": true}}"#);
        assert!(c.performance.enable_batching);

        let e = parse_err(r#"{"osc": {"processing": {"enable_batching": 1}}}"#);
        assert_eq!(e.path, "osc.processing.enable_batching");
    }

    #[test]
    fn integral_float_accepted() {
        let (c, w) = parse(
            r#"{"osc": {"port": 9000.0, "processing": {"downsampling_factor": 30.0, "batch_size": 2.0}}}"#,
        );
        assert!(w.is_empty());
        assert_eq!(c.osc.port, 9000);
        assert_eq!(c.osc.processing.downsampling_factor, 30);
        assert_eq!(c.osc.processing.batch_size, 2);
    }

    #[test]
    fn bad_downsampling_factor_rejected() {
        for (bad, got) in [
            ("30.5", "30.5"),
            ("\"30\"", "\"30\""),
            ("0", "0"),
            ("1001", "1001"),
            ("true", "true"),
            ("null", "null"),
            ("-3", "-3"),
            ("[30]", "[30]"),
            ("1e300", "1e300"),
        ] {
            let e = parse_err(&format!(
                r#"{{"osc": {{"processing": {{"downsampling_factor": {bad}}}}}}}"#
            ));
            assert_eq!(e.path, "osc.processing.downsampling_factor");
            let msg = e.to_string();
            assert!(msg.starts_with(
                "config error at osc.processing.downsampling_factor: expected an integer from 1 to 1000, got "
            ), "{msg}");
            if bad != "1e300" {
                assert!(msg.ends_with(got), "{msg}");
            }
        }
        assert_eq!(
            parse_err(r#"{"osc": {"processing": {"downsampling_factor": 30.5}}}"#).to_string(),
            "config error at osc.processing.downsampling_factor: expected an integer from 1 to 1000, got 30.5"
        );
    }

    #[test]
    fn other_values_rejected() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"osc": {"processing": {"batch_size": 1001}}}"#,
                "osc.processing.batch_size",
            ),
            (
                r#"{"osc": {"processing": {"batch_size": 0}}}"#,
                "osc.processing.batch_size",
            ),
            (
                r#"{"osc": {"processing": {"batch_timeout_ms": 0}}}"#,
                "osc.processing.batch_timeout_ms",
            ),
            (
                r#"{"osc": {"processing": {"batch_timeout_ms": -1.5}}}"#,
                "osc.processing.batch_timeout_ms",
            ),
            (
                r#"{"osc": {"processing": {"batch_timeout_ms": "10"}}}"#,
                "osc.processing.batch_timeout_ms",
            ),
            (
                r#"{"osc": {"processing": {"downsampling_method": "median"}}}"#,
                "osc.processing.downsampling_method",
            ),
            (
                r#"{"osc": {"processing": {"downsampling_method": "Average"}}}"#,
                "osc.processing.downsampling_method",
            ),
            (r#"{"osc": {"processing": []}}"#, "osc.processing"),
            (r#"{"osc": {"port": 0}}"#, "osc.port"),
            (r#"{"osc": {"port": 65536}}"#, "osc.port"),
            (r#"{"osc": {"port": "9000"}}"#, "osc.port"),
            (r#"{"osc": {"host": ""}}"#, "osc.host"),
            (r#"{"osc": {"host": 1}}"#, "osc.host"),
            (r#"{"osc": {"base_address": "data"}}"#, "osc.base_address"),
            (r#"{"osc": {"base_address": "/data/"}}"#, "osc.base_address"),
            (r#"{"osc": {"base_address": "/"}}"#, "osc.base_address"),
            (r#"{"osc": {"base_address": ""}}"#, "osc.base_address"),
            (r#"{"osc": {"base_address": "/da ta"}}"#, "osc.base_address"),
            (r#"{"osc": {"base_address": "/d*"}}"#, "osc.base_address"),
            (
                r#"{"osc": {"channel_address_format": "ch{:03d}"}}"#,
                "osc.channel_address_format",
            ),
            (
                r#"{"osc": {"send_individual_channels": "false"}}"#,
                "osc.send_individual_channels",
            ),
            (r#"{"osc": null}"#, "osc"),
            (r#"{"zmq": {"host": ""}}"#, "zmq.host"),
            (r#"{"zmq": {"data_port": 65535}}"#, "zmq.data_port"),
            (
                r#"{"zmq": {"heartbeat_timeout": 0}}"#,
                "zmq.heartbeat_timeout",
            ),
            (
                r#"{"zmq": {"not_responding_timeout": 1e9}}"#,
                "zmq.not_responding_timeout",
            ),
            (r#"{"zmq": {"buffer_size": 0}}"#, "zmq.buffer_size"),
            (
                r#"{"zmq": {"auto_reinit_on_timeout": 1}}"#,
                "zmq.auto_reinit_on_timeout",
            ),
            (r#"{"zmq": {"app_uuid": 1618}}"#, "zmq.app_uuid"),
            (r#"{"zmq": "x"}"#, "zmq"),
            (r#"{"ui": {"refresh_rate": 0}}"#, "ui.refresh_rate"),
            (r#"{"ui": {"theme": null}}"#, "ui.theme"),
            (r#"{"app": {"log_level": "verbose"}}"#, "app.log_level"),
            (
                r#"{"performance": {"osc_queue_max_size": 0}}"#,
                "performance.osc_queue_max_size",
            ),
            (
                r#"{"performance": {"osc_queue_max_size": 100001}}"#,
                "performance.osc_queue_max_size",
            ),
            (
                r#"{"performance": {"osc_queue_overflow_strategy": "drop"}}"#,
                "performance.osc_queue_overflow_strategy",
            ),
            (r#"{"performance": {"mode": "fast"}}"#, "performance.mode"),
            (
                r#"{"performance": {"ui_update_interval_ms": 0}}"#,
                "performance.ui_update_interval_ms",
            ),
            (
                r#"{"performance": {"metrics_collection_interval_ms": -1}}"#,
                "performance.metrics_collection_interval_ms",
            ),
            (
                r#"{"performance": {"pin_threads": "yes"}}"#,
                "performance.pin_threads",
            ),
            (
                r#"{"performance": {"max_channels": 16385}}"#,
                "performance.max_channels",
            ),
            (
                r#"{"performance": {"max_block_samples": 0}}"#,
                "performance.max_block_samples",
            ),
            (
                r#"{"performance": {"max_block_samples": 1048577}}"#,
                "performance.max_block_samples",
            ),
        ];
        for (text, path) in cases {
            let e = parse_err(text);
            assert_eq!(&e.path, path, "{text}: {e}");
            assert!(e
                .to_string()
                .starts_with(&format!("config error at {path}: ")));
        }
    }

    #[test]
    fn mode_presets_apply_only_to_keys_not_given() {
        let (c, w) =
            Config::from_json_str(r#"{"performance": {"mode": "high_throughput"}}"#).unwrap();
        assert!(c.performance.enable_batching);
        assert_eq!(c.osc.processing.batch_size, 10);
        assert_eq!(c.performance.osc_queue_max_size, 200);
        assert_eq!(w.len(), 3, "{w:?}");
        let (c, _) = Config::from_json_str(
            r#"{"osc": {"processing": {"enable_batching": false, "batch_size": 3}}, "performance": {"mode": "high_throughput"}}"#,
        )
        .unwrap();
        assert!(!c.performance.enable_batching, "explicit keys win");
        assert_eq!(c.osc.processing.batch_size, 3);
        let (c, _) = Config::from_json_str(r#"{"performance": {"mode": "low_latency"}}"#).unwrap();
        assert_eq!(c.performance.osc_queue_max_size, 10);
        let (c, w) = Config::from_json_str(FULL_CONFIG_JSON).unwrap();
        assert_eq!(c, Config::default(), "balanced = the original's behaviour");
        assert!(w.is_empty());
    }

    #[test]
    fn outputs_parse_and_validate() {
        let (c, w) = Config::from_json_str(
            r#"{"outputs": [{"port": 9000, "format": "blob", "channels": [3, "0-1"], "max_datagram": "oscp5",
                 "bundle": "sample_clock", "names": {"3": "Fz"}, "pacing": "smooth"},
                {"host": "239.1.2.3", "multicast_ttl": 4, "format": "per_channel", "address": "{base}/{name}"}]}"#,
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.outputs.len(), 2);
        let o = &c.outputs[0];
        assert_eq!(o.channels, Some(vec![3, 0, 1]));
        assert_eq!(
            (o.max_datagram, o.bundle, o.pacing),
            (1536, BundleMode::SampleClock, true)
        );
        assert_eq!(o.host, "127.0.0.1", "defaults from osc.*");
        assert_eq!(c.outputs[1].multicast_ttl, 4);
        for (bad, path) in [
            (r#"[{"format": "csv"}]"#, "outputs[0].format"),
            (r#"[{"channels": "5-2"}]"#, "outputs[0].channels"),
            (r#"[{"channels": [1, 1]}]"#, "outputs[0].channels"),
            (r#"[{"max_datagram": "huge"}]"#, "outputs[0].max_datagram"),
            (
                r#"[{"format": "per_channel", "address": "/same"}]"#,
                "outputs[0].address",
            ),
            (r#"{"port": 1}"#, "outputs"),
        ] {
            let e = Config::from_json_str(&format!(r#"{{"outputs": {bad}}}"#)).unwrap_err();
            assert_eq!(e.path, path, "{bad}: {e}");
        }
        let (_, w) = Config::from_json_str(r#"{"outputs": [{"prot": 1}]}"#).unwrap();
        assert_eq!(
            w,
            vec!["unknown config key 'outputs[0].prot' ignored".to_string()]
        );
    }

    #[test]
    fn file_level_errors() {
        for text in ["[]", "null", "1", "\"x\""] {
            let e = parse_err(text);
            assert!(e.path.is_empty());
            assert!(e.message.contains("top level"), "{e}");
        }
        let e = parse_err("{\n  \"osc\": {\n    \"port\": 1,\n  }\n}");
        assert!(e.path.is_empty());
        assert!(e.message.contains("line 4 column 3"), "{e}");
        let e = parse_err("");
        assert!(e.message.starts_with("invalid JSON"), "{e}");
    }

    #[test]
    fn log_levels() {
        for (s, l) in [
            ("DEBUG", LogLevel::Debug),
            ("debug", LogLevel::Debug),
            ("Info", LogLevel::Info),
            ("WARNING", LogLevel::Warning),
            ("WARN", LogLevel::Warning),
            ("error", LogLevel::Error),
            ("CRITICAL", LogLevel::Error),
        ] {
            let (c, _) = parse(&format!(r#"{{"app": {{"log_level": "{s}"}}}}"#));
            assert_eq!(c.app.log_level, l);
        }
        assert_eq!(LogLevel::Warning.as_str(), "WARNING");
        assert_eq!(OverflowStrategy::DropNewest.as_str(), "drop_newest");
        assert_eq!(PerformanceMode::HighThroughput.as_str(), "high_throughput");
        assert_eq!(DownsamplingMethod::Decimate.as_str(), "decimate");
    }

    #[test]
    fn unknown_keys_warned_and_ignored() {
        let (c, w) = parse(
            r#"{"osc": {"prot": 9000, "port": 9001, "processing": {"factor": 2, "batch_size": 3}},
                "extra": {"a": 1},
                "zmq": {"host": "example.org", "hots": "x"},
                "performance": {"max_channels": 64, "zmq_foo": true}}"#,
        );
        assert_eq!(c.osc.port, 9001);
        assert_eq!(c.osc.processing.batch_size, 3);
        assert_eq!(c.zmq.host, "example.org");
        assert_eq!(c.performance.max_channels, 64);
        assert_eq!(c.ui, UiConfig::default());
        for key in [
            "osc.prot",
            "osc.processing.factor",
            "extra",
            "zmq.hots",
            "performance.zmq_foo",
        ] {
            let msg = format!("unknown config key '{key}' ignored");
            assert!(w.contains(&msg), "missing {msg:?} in {w:?}");
        }
        assert_eq!(w.len(), 5, "{w:?}");
        // An unknown section is not validated (any JSON value is ignored).
        let (c, w) = parse(r#"{"legacy": 5}"#);
        assert_eq!(c, Config::default());
        assert_eq!(w, vec!["unknown config key 'legacy' ignored"]);
    }

    #[test]
    fn missing_explicit_file_is_error() {
        let dir = TempDir::new();
        let p = dir.0.join("nope.json");
        let e = Config::load_from(&dir.0, Some(&p)).expect_err("must fail");
        assert!(e.path.is_empty());
        assert_eq!(
            e.message,
            format!("config file '{}' not found", p.display())
        );
    }

    #[test]
    fn missing_default_file_gives_defaults() {
        let dir = TempDir::new();
        let (c, w) = Config::load_from(&dir.0, None).expect("defaults");
        assert_eq!(c, Config::default());
        assert_eq!(w, vec!["Config file config.json not found, using defaults"]);
    }

    #[test]
    fn loads_default_and_explicit_files() {
        let dir = TempDir::new();
        std::fs::write(dir.0.join("config.json"), r#"{"osc": {"port": 9000}}"#).expect("write");
        let (c, w) = Config::load_from(&dir.0, None).expect("load");
        assert!(w.is_empty());
        assert_eq!(c.osc.port, 9000);

        let p = dir.0.join("other.json");
        std::fs::write(&p, FULL_CONFIG_JSON).expect("write");
        let (c, w) = Config::load_from(&dir.0, Some(&p)).expect("load");
        assert!(w.is_empty());
        assert_eq!(c, Config::default());

        // Syntax error names the file and the position.
        std::fs::write(&p, "{\n  \"osc\": ,\n}").expect("write");
        let e = Config::load_from(&dir.0, Some(&p)).expect_err("syntax");
        assert!(e.message.contains(&p.display().to_string()), "{e}");
        assert!(e.message.contains("line 2 column"), "{e}");

        // Validation errors keep their key path.
        std::fs::write(&p, r#"{"osc": {"port": 0}}"#).expect("write");
        let e = Config::load_from(&dir.0, Some(&p)).expect_err("invalid");
        assert_eq!(e.path, "osc.port");

        // A directory cannot be read.
        let e = Config::load_from(&dir.0, Some(&dir.0)).expect_err("dir");
        assert!(e.message.contains("cannot read config file"), "{e}");
    }

    #[test]
    fn non_default_settings_lines() {
        let (c, _) = parse(
            r#"{"performance": {"pin_threads": false, "zmq_data_timeout_seconds": 3},
                "osc": {"port": 9000, "host": "10.0.0.2",
                        "processing": {"downsampling_method": "decimate", "batch_timeout_ms": 50}},
                "app": {"log_level": "debug"}}"#,
        );
        assert_eq!(
            c.non_default_settings(),
            vec![
                "zmq.data_timeout_seconds = 3.0 (default 2.0)",
                "osc.host = \"10.0.0.2\" (default \"127.0.0.1\")",
                "osc.port = 9000 (default 10000)",
                "osc.processing.downsampling_method = \"decimate\" (default \"average\")",
                "osc.processing.batch_timeout_ms = 50.0 (default 1000.0)",
                "app.log_level = \"DEBUG\" (default \"INFO\")",
                "performance.pin_threads = false (default true)",
            ]
        );
    }

    #[test]
    fn error_display() {
        let e = ConfigError {
            path: String::new(),
            message: "boom".into(),
        };
        assert_eq!(e.to_string(), "config error: boom");
        let e: Box<dyn std::error::Error> = Box::new(ConfigError {
            path: "a.b".into(),
            message: "bad".into(),
        });
        assert_eq!(e.to_string(), "config error at a.b: bad");
    }

    #[test]
    fn no_panic_on_odd_input() {
        for text in [
            "{\"osc\": {\"port\": 1e400}}",
            "{\"osc\": {\"port\": -0.0}}",
            "{\"osc\": {\"port\": 18446744073709551616}}",
            "{\"osc\": {\"port\": -9223372036854775809}}",
            "{\"\\u0000\": 1}",
            "{\"osc\": {\"host\": \"\\ud800\"}}",
            "\u{feff}{}",
        ] {
            let _ = Config::from_json_str(text);
        }
        let long = format!(r#"{{"osc": {{"host": ["{}"]}}}}"#, "x".repeat(500));
        let e = parse_err(&long);
        assert!(e.message.len() < 200 && e.message.ends_with("..."), "{e}");
    }
}
