//! Command-line flags: the original's (§3.10) plus ours. Parsing only; no side effects.

use clap::{ArgAction, Parser};
use std::path::PathBuf;

/// Exit codes (documented in the README).
pub mod exit {
    /// Normal end (also after SIGINT/SIGTERM).
    pub const OK: u8 = 0;
    /// A thread panicked or failed at run time.
    pub const RUNTIME_FAILURE: u8 = 1;
    /// Bad configuration or flags.
    pub const CONFIG: u8 = 2;
    /// Start-up failed (socket, resolve, bind).
    pub const STARTUP: u8 = 3;
}

/// Open Ephys ZMQ Interface → OSC bridge (drop-in replacement for the Python
/// openephys-zmq2osc, for 256+ channels at 30 kHz).
#[derive(Debug, Parser)]
#[command(
    name = "openephys-zmq2osc",
    version,
    disable_version_flag = true,
    after_help = "Examples:\n  \
        openephys-zmq2osc                              # config.json in this folder, else defaults\n  \
        openephys-zmq2osc -c my.json --osc-port 9000   # overrides take effect\n  \
        openephys-zmq2osc --simulate 256 --seconds 10  # built-in Open Ephys simulator, no GUI needed\n  \
        openephys-zmq2osc --create-config              # write config.json (minimal format)\n\n\
        Exit codes: 0 ok (also after Ctrl+C / SIGTERM), 1 runtime failure, 2 bad config or flags, 3 start-up failure."
)]
pub struct Args {
    /// Config file (default: config.json in the current folder; missing = defaults). Also the
    /// output path of --create-config / --create-config-dev.
    #[arg(short = 'c', long = "config", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Write the minimal config (to --config or config.json) and exit.
    #[arg(long)]
    pub create_config: bool,
    /// Write the full config with every key (to --config or config-dev.json) and exit.
    #[arg(long)]
    pub create_config_dev: bool,
    /// Override zmq.host (Open Ephys GUI host) [config default: localhost].
    #[arg(long, value_name = "HOST")]
    pub zmq_host: Option<String>,
    /// Override zmq.data_port (heartbeat uses PORT+1) [config default: 5556]; 0 = keep config.
    #[arg(long, value_name = "PORT")]
    pub zmq_port: Option<u16>,
    /// Override osc.host (OSC destination) [config default: 127.0.0.1].
    #[arg(long, value_name = "HOST")]
    pub osc_host: Option<String>,
    /// Override osc.port [config default: 10000]; 0 = keep config.
    #[arg(long, value_name = "PORT")]
    pub osc_port: Option<u16>,
    /// Run the built-in Open Ephys simulator with N channels (0..N) on 127.0.0.1:<zmq port>
    /// and bridge it, so the bridge can be tried without the GUI.
    #[arg(long, value_name = "N")]
    pub simulate: Option<u32>,
    /// Simulator block size in samples [default: GUI-like, int(1024·rate/44100) = 696 at 30 kHz].
    #[arg(long, value_name = "SAMPLES")]
    pub sim_block_size: Option<usize>,
    /// Simulator sample rate in Hz.
    #[arg(long, value_name = "HZ", default_value_t = 30000.0)]
    pub sim_rate: f64,
    /// Also receive and verify the OSC output in-process (with --simulate): reports delivered,
    /// lost and torn samples and end-to-end latency.
    #[arg(long)]
    pub verify: bool,
    /// Stop after this many seconds (default: run until Ctrl+C / SIGTERM).
    #[arg(long, value_name = "SECONDS")]
    pub seconds: Option<f64>,
    /// Write the latency distributions as CSV at exit.
    #[arg(long, value_name = "PATH")]
    pub histogram_csv: Option<PathBuf>,
    /// Also rewrite --histogram-csv every SECONDS while running (cumulative so far).
    #[arg(long, value_name = "SECONDS", requires = "histogram_csv")]
    pub histogram_interval: Option<f64>,
    /// Every SECONDS: a status line on stderr and, headless, one JSON object of every counter
    /// (on stdout, or appended to --stats-json) (0 = never).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub stats_interval: f64,
    /// No live dashboard: run headless even when stdout is a terminal (headless is automatic
    /// when stdout is not a terminal). Headless prints one JSON object per --stats-interval on
    /// stdout (unless --stats-json is given), then the final report.
    #[arg(long)]
    pub no_tui: bool,
    /// Append the JSON stats lines (one object per --stats-interval) to PATH instead of
    /// stdout. Works with the dashboard too.
    #[arg(long, value_name = "PATH")]
    pub stats_json: Option<PathBuf>,
    /// Never pin threads to cores (overrides performance.pin_threads).
    #[arg(long, conflicts_with = "pin")]
    pub no_pin: bool,
    /// Pin the hot threads (zmq_rx, osc_tx_N) to cores even when there are fewer cores than
    /// hot threads + 1 (distinct cores while they last, then wrapping round). Without it,
    /// performance.pin_threads pins only when there are enough cores.
    #[arg(long)]
    pub pin: bool,
    /// Send with a plain send() loop instead of sendmmsg/UDP GSO (the portable path used on
    /// macOS and Windows).
    #[arg(long)]
    pub portable_udp: bool,
    /// Disable UDP GSO (use sendmmsg only).
    #[arg(long)]
    pub no_gso: bool,
    /// Record every ZeroMQ message received to FILE (zmqcap, gzip if it ends in .gz; one file
    /// per source, `.<name>` added, with several sources), while bridging. `oe-simulator
    /// --replay FILE` plays it back.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Serve OSCQuery (the outputs' addresses, for discovery) on this port; 0 = any free port.
    /// Turns the server on with the config's `oscquery` host/mdns (default 127.0.0.1, off).
    #[arg(long, value_name = "PORT")]
    pub oscquery_port: Option<u16>,
    /// Print version and exit.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_parse() {
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "x",
            "-c",
            "a.json",
            "--zmq-host",
            "h",
            "--zmq-port",
            "6000",
            "--osc-host",
            "o",
            "--osc-port",
            "9000",
        ])
        .unwrap();
        assert_eq!(a.config.unwrap().to_str(), Some("a.json"));
        assert_eq!((a.zmq_port, a.osc_port), (Some(6000), Some(9000)));
        assert!(Args::try_parse_from(["x", "--osc-port", "70000"]).is_err());
        let a = Args::try_parse_from(["x", "--no-tui", "--stats-json", "s.jsonl"]).unwrap();
        assert!(a.no_tui);
        assert_eq!(a.stats_json.unwrap().to_str(), Some("s.jsonl"));
        assert!(Args::try_parse_from(["x", "--pin"]).unwrap().pin);
        assert!(Args::try_parse_from(["x", "--pin", "--no-pin"]).is_err());
        let v = Args::try_parse_from(["x", "-v"]).unwrap_err();
        assert_eq!(v.kind(), clap::error::ErrorKind::DisplayVersion);
    }
}
