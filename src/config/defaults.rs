//! The config files `--create-config` and `--create-config-dev` write: byte-exact copies of
//! the original's, each parsing to [`super::Config::default()`] with no warnings.

/// Byte-exact output of the original's `--create-config` (minimal format:
/// `json.dump(indent=2)`, no trailing newline).
///
/// Parses to [`super::Config::default()`] with no warnings.
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
/// Parses to [`super::Config::default()`] with no warnings. Our new keys
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
