//! Unit tests of the config loader: formats, precedence, presets, errors with key paths,
//! unknown-key warnings, outputs.

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
    assert!(MINIMAL_CONFIG_JSON.contains("\"enable_batching\": false,\n      \"batch_size\": 1\n"));
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
    // The full file sets the queue and batching keys itself; only the real-time preset applies.
    assert_eq!(
        w,
        vec!["performance.mode low_latency preset: performance.realtime_priority = 20"]
    );
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
        assert!(w.iter().any(|s| {
            s
            == "performance.zmq_data_timeout_seconds = 3.0 overrides zmq.data_timeout_seconds = 5.0"
        }));
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
        vec!["osc.processing.enable_batching = true overrides performance.enable_batching = false"]
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
    let (c, w) = Config::from_json_str(r#"{"performance": {"mode": "high_throughput"}}"#).unwrap();
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
    assert_eq!(o.format.selection, Some(vec![3, 0, 1]));
    assert_eq!(
        (o.format.max_datagram, o.format.bundle, o.pacing),
        (1536, BundleMode::SampleClock, true)
    );
    assert_eq!(o.format.mode, OutputFormatKind::Blob);
    assert_eq!(o.format.names, vec![(3, "Fz".to_string())]);
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

#[test]
fn key_paths_in_lists_and_sections() {
    for (text, path, msg) in [
        (r#"{"osc": null}"#, "osc", "invalid type: null, expected an object"),
        (r#"{"osc": {"processing": []}}"#, "osc.processing", "invalid type: sequence, expected an object"),
        (r#"{"outputs": [{}, {"port": 0}]}"#, "outputs[1].port", "expected an integer from 1 to 65535, got 0"),
        (r#"{"outputs": [[]]}"#, "outputs[0]", "invalid type: sequence, expected an object"),
        (r#"{"outputs": [{"bundle": "later"}]}"#, "outputs[0].bundle", "expected one of false, true, \"off\", \"immediate\", \"sample_clock\", got \"later\""),
        (r#"{"outputs": [{"format": null}]}"#, "outputs[0].format", "expected one of \"sample\", \"batch\", \"per_channel\", \"blob\", \"features\", got null"),
        (r#"{"outputs": [{"names": {"2": ""}}]}"#, "outputs[0].names.2", "expected a non-empty string, got \"\""),
        (r#"{"outputs": [{"channels": [0, 5000]}]}"#, "outputs[0].channels[1]", "expected an integer from 0 to 1023, got 5000"),
        (r#"{"performance": {"pin_threads": "yes"}}"#, "performance.pin_threads", "expected true or false, got \"yes\""),
        (r#"{"performance": {"missing_channel_policy": "zero"}}"#, "performance.missing_channel_policy", "expected one of \"skip\", \"nan\", \"hold\", got \"zero\""),
        (r#"{"app": {"log_level": 3}}"#, "app.log_level", "expected one of \"DEBUG\", \"INFO\", \"WARNING\", \"WARN\", \"ERROR\", \"CRITICAL\", got 3"),
    ] {
        let e = parse_err(text);
        assert_eq!((e.path.as_str(), e.message.as_str()), (path, msg), "{text}");
    }
    let many = format!(r#"{{"outputs": [{}]}}"#, vec!["{}"; 17].join(","));
    assert_eq!(parse_err(&many).path, "outputs");
    let (c, w) = parse(
        r#"{"outputs": [{"port": 9001}, {"bar": 1, "events": true}], "osc": {"processing": {"x\ty": 1}}}"#,
    );
    assert_eq!(
        w,
        vec![
            "unknown config key 'osc.processing.x\\ty' ignored",
            "unknown config key 'outputs[1].bar' ignored",
        ]
    );
    assert_eq!(c.outputs.len(), 2);
    assert_eq!(
        (c.outputs[0].name.as_str(), c.outputs[0].port),
        ("output0", 9001)
    );
    assert!(c.outputs[1].format.events && c.outputs[1].format.split);
    assert_eq!(c.output_specs(), c.outputs);
}

#[test]
fn legacy_output_and_every_new_key_logged() {
    let c = Config::default();
    let specs = c.output_specs();
    assert_eq!(specs.len(), 1);
    assert_eq!((specs[0].name.as_str(), specs[0].port), ("osc", 10000));
    assert_eq!(specs[0].format, c.legacy_output_format());
    assert!(!specs[0].format.split, "the original's bytes: never split");
    let (c, _) = parse(
        r#"{"performance": {"max_channels": 64, "max_block_samples": 100, "missing_channel_policy": "hold",
            "mode": "low_latency", "adaptive_batching": true}, "ui": {"theme": "dark"}}"#,
    );
    let lines = c.non_default_settings();
    for want in [
        "ui.theme = \"dark\" (default \"default\")",
        "performance.osc_queue_max_size = 10 (default 100)",
        "performance.mode = \"low_latency\" (default \"balanced\")",
        "performance.adaptive_batching = true (default false)",
        "performance.max_channels = 64 (default 1024)",
        "performance.max_block_samples = 100 (default 2048)",
        "performance.missing_channel_policy = \"hold\" (default \"skip\")",
        "performance.realtime_priority = 20 (default 0)",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "missing {want:?} in {lines:?}"
        );
    }
    assert_eq!(lines.len(), 8, "{lines:?}");
}

#[test]
fn oscquery_section_absent_means_off() {
    assert_eq!(parse("{}").0.oscquery, None);
    let (c, w) = parse(r#"{"oscquery": {"port": 0, "mdns": true, "x": 1}}"#);
    let q = c.oscquery.unwrap();
    assert_eq!((q.port, q.host.as_str(), q.mdns), (0, "127.0.0.1", true));
    assert_eq!(w, vec!["unknown config key 'oscquery.x' ignored"]);
    assert_eq!(parse(r#"{"oscquery": {}}"#).0.oscquery.unwrap().port, 5680);
    for (text, path) in [
        (r#"{"oscquery": null}"#, "oscquery"),
        (r#"{"oscquery": {"port": 70000}}"#, "oscquery.port"),
        (r#"{"oscquery": {"host": ""}}"#, "oscquery.host"),
        (r#"{"oscquery": {"mdns": "yes"}}"#, "oscquery.mdns"),
    ] {
        assert_eq!(parse_err(text).path, path, "{text}");
    }
}

#[test]
fn sources_parse_with_defaults_and_outputs_name_them() {
    let (c, w) = parse(
        r#"{"zmq": {"host": "10.0.0.5", "data_port": 5556, "app_uuid": "77",
                    "sources": [{"name": "probeA"},
                                {"name": "probeB", "host": "rig2", "data_port": 5560}]},
            "outputs": [{"port": 9000}, {"port": 9001, "source": "probeB"},
                        {"port": 9002, "source": "probeA"}]}"#,
    );
    assert!(w.is_empty(), "{w:?}");
    assert!(c.sources_listed());
    let s = c.source_specs();
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].name.as_str(), s[0].host.as_str(), s[0].data_port),
        ("probeA", "10.0.0.5", 5556),
        "host and port default to zmq.*"
    );
    assert_eq!(
        (s[1].name.as_str(), s[1].host.as_str(), s[1].data_port),
        ("probeB", "rig2", 5560)
    );
    assert_eq!(c.outputs[0].source, None, "default: the first source");
    assert_eq!(c.outputs[1].source.as_deref(), Some("probeB"));
    assert_eq!(c.output_source_indices(), vec![0, 1, 0]);
    // Sources do not appear among the logged non-default leaves (the start-up lines name them).
    assert!(c
        .non_default_settings()
        .iter()
        .all(|l| !l.contains("sources")));
}

#[test]
fn original_keys_are_one_source_named_zmq() {
    let (c, _) = parse(r#"{"zmq": {"host": "h", "data_port": 7000}}"#);
    assert!(!c.sources_listed());
    let s = c.source_specs();
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].name.as_str(), s[0].host.as_str(), s[0].data_port),
        (DEFAULT_SOURCE_NAME, "h", 7000)
    );
    assert_eq!(c.output_source_indices(), vec![0]);
    // An output may name the single source by that name; any other name is an error.
    let (c, _) = parse(r#"{"outputs": [{"source": "zmq"}]}"#);
    assert_eq!(c.output_source_indices(), vec![0]);
    let e = parse_err(r#"{"outputs": [{"source": "probeA"}]}"#);
    assert_eq!(e.path, "outputs[0].source", "{e}");
    assert!(e.message.contains("sources: zmq"), "{e}");
}

#[test]
fn source_errors_name_the_key() {
    for (bad, path) in [
        (r#"{"zmq": {"sources": []}}"#, "zmq.sources"),
        (r#"{"zmq": {"sources": {"name": "a"}}}"#, "zmq.sources"),
        (r#"{"zmq": {"sources": ["a"]}}"#, "zmq.sources[0]"),
        (
            r#"{"zmq": {"sources": [{"host": "x"}]}}"#,
            "zmq.sources[0].name",
        ),
        (
            r#"{"zmq": {"sources": [{"name": ""}]}}"#,
            "zmq.sources[0].name",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "a"}, {"name": "../etc/x"}]}}"#,
            "zmq.sources[1].name",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "probe A"}]}}"#,
            "zmq.sources[0].name",
        ),
        (
            r#"{"zmq": {"sources": [{"name": ".hidden"}]}}"#,
            "zmq.sources[0].name",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "Fp1-α"}]}}"#,
            "zmq.sources[0].name",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "a23456789012345678901234567890123"}]}}"#,
            "zmq.sources[0].name",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "a"}, {"name": "b"}, {"name": "a", "data_port": 9}]}}"#,
            "zmq.sources[2].name",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "a", "data_port": 65535}]}}"#,
            "zmq.sources[0].data_port",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "a", "host": 5}]}}"#,
            "zmq.sources[0].host",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "a"}]}, "outputs": [{}, {"source": "b"}]}"#,
            "outputs[1].source",
        ),
        (
            r#"{"zmq": {"sources": [{"name": "a"}]}, "outputs": [{"source": ""}]}"#,
            "outputs[0].source",
        ),
    ] {
        let e = parse_err(bad);
        assert_eq!(e.path, path, "{bad}: {e}");
    }
    let many: Vec<String> = (0..=MAX_SOURCES)
        .map(|i| format!(r#"{{"name": "s{i}", "data_port": {}}}"#, 6000 + 2 * i))
        .collect();
    let e = parse_err(&format!(
        r#"{{"zmq": {{"sources": [{}]}}}}"#,
        many.join(",")
    ));
    assert_eq!(e.path, "zmq.sources", "{e}");
    // Unknown keys inside an entry are warnings, as everywhere.
    let (_, w) = parse(r#"{"zmq": {"sources": [{"name": "a", "prot": 1}]}}"#);
    assert_eq!(
        w,
        vec!["unknown config key 'zmq.sources[0].prot' ignored".to_string()]
    );
    // Two sources on one endpoint: allowed, with a warning; so is a source no output
    // carries (the original's single output carries the first).
    let (_, w) = parse(r#"{"zmq": {"sources": [{"name": "a"}, {"name": "b"}]}}"#);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("'a' and 'b' both subscribe"), "{w:?}");
    assert!(w[1].starts_with("source 'b' feeds no output"), "{w:?}");
}

#[test]
fn realtime_priority_key_and_low_latency_preset() {
    assert_eq!(parse("{}").0.performance.realtime_priority, 0);
    assert_eq!(
        parse(r#"{"performance": {"realtime_priority": 50}}"#)
            .0
            .performance
            .realtime_priority,
        50
    );
    assert_eq!(
        parse_err(r#"{"performance": {"realtime_priority": 100}}"#).path,
        "performance.realtime_priority"
    );
    let (c, _) = parse(r#"{"performance": {"mode": "low_latency"}}"#);
    assert_eq!(c.performance.realtime_priority, 20);
    let (c, _) = parse(r#"{"performance": {"mode": "low_latency", "realtime_priority": 0}}"#);
    assert_eq!(
        c.performance.realtime_priority, 0,
        "an explicit key wins over the preset"
    );
}
