//! The bridge as a program: flags → settings → engine (+ simulator / verifier) → live
//! statistics (status line, JSON lines, dashboard) → final report → exit code. `main.rs` only
//! parses the flags and calls [`run`].

pub mod demo;
pub mod discovery;
pub mod text;

use crate::cli::{exit, Args};
use crate::config::{Config, LogLevel, FULL_CONFIG_JSON, MINIMAL_CONFIG_JSON};
use crate::engine::{Engine, EngineOptions, PinRequest};
use crate::net::SenderOptions;
use crate::telemetry::dashboard::{self, Dashboard};
use crate::telemetry::livestats;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A failure: exit code and message.
pub type Fail = (u8, String);

fn write_config(path: &Path, text: &str, what: &str) -> Result<u8, Fail> {
    std::fs::write(path, text).map_err(|e| {
        (
            exit::CONFIG,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
    println!("{what} configuration created at {}", path.display());
    Ok(exit::OK)
}

/// Runs the bridge as the command line asks; returns the exit code ([`exit`]) or a failure
/// (exit code and message for stderr).
pub fn run(args: Args) -> Result<u8, Fail> {
    if args.create_config {
        let p = args
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("config.json"));
        return write_config(&p, MINIMAL_CONFIG_JSON, "Minimal");
    }
    if args.create_config_dev {
        let p = args
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from("config-dev.json"));
        return write_config(&p, FULL_CONFIG_JSON, "Full");
    }
    let Settings {
        cfg,
        info,
        warn,
        tui,
        mut stats_out,
    } = settings(&args)?;

    // SIGINT / SIGTERM: the first asks for a graceful stop, a second exits at once.
    let term = Arc::new(AtomicBool::new(false));
    if tui {
        // Registered first so it runs before the immediate exit on a second signal.
        dashboard::install_signal_restore(&term)
            .map_err(|e| (exit::STARTUP, format!("signal handler: {e}")))?;
    }
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, term.clone());
        let _ = signal_hook::flag::register(sig, term.clone());
    }

    // Optional in-process simulator and verifier.
    let mut demo = demo::start(&args, &cfg)?;

    let sender = SenderOptions {
        force_portable: args.portable_udp,
        use_gso: !args.no_gso,
        ..Default::default()
    };
    let pin = if args.no_pin {
        PinRequest::Off
    } else if args.pin {
        PinRequest::Force
    } else {
        PinRequest::Auto
    };
    let mut opts = EngineOptions::new(pin, sender, warn);
    opts.record = args.record.clone();
    let eng = Engine::start(&cfg, &opts).map_err(|e| (exit::STARTUP, e))?;
    if info {
        text::print_startup(&cfg, &eng);
    }

    let oscquery = match &cfg.oscquery {
        Some(q) => Some(discovery::start(q, &cfg, info)?),
        None => None,
    };
    let mut layout_seen = Vec::new();

    let started = Instant::now();
    let shared = eng.stats().clone();
    let mut extra = vec![("pinning", eng.layout().pinning.to_json())];
    if let Some(q) = &oscquery {
        extra.push(("oscquery", discovery::json(q)));
    }
    // Each output (shard) has its own ring; "queued" is summed over them.
    let ring_capacity = eng.layout().ring_capacity * eng.layout().outputs.len().max(1);
    let dash = if tui {
        match Dashboard::start(shared.clone(), started, text::dashboard_info(&cfg, &eng)) {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("warning: cannot start the dashboard ({e}); running headless");
                None
            }
        }
    } else {
        None
    };
    // While the dashboard owns the terminal, the status line would scribble over it.
    let status_lines = info && !(dash.is_some() && std::io::stderr().is_terminal());
    let mut prev_sample = livestats::Sample::take(&shared, started);
    let deadline = args.seconds.map(|s| started + Duration::from_secs_f64(s));
    let interval =
        (args.stats_interval > 0.0).then(|| Duration::from_secs_f64(args.stats_interval));
    let mut next_stats = interval.map(|i| started + i);
    let hist_every = args
        .histogram_interval
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    let mut next_hist = hist_every.map(|i| started + i);
    let mut prev_status = prev_sample.clone();
    let mut failed_early = false;
    let mut next_layout_check = oscquery.as_ref().map(|_| started);
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if term.load(Ordering::SeqCst) || deadline.is_some_and(|d| now >= d) {
            break;
        }
        if eng.has_failed() {
            failed_early = true;
            break;
        }
        if let (Some(q), Some(t)) = (&oscquery, next_layout_check) {
            if now >= t {
                discovery::follow(q, &cfg, eng.shared(), &mut layout_seen);
                next_layout_check = Some(t + Duration::from_millis(200));
            }
        }
        if let (Some(i), Some(t), Some(p)) = (hist_every, next_hist, &args.histogram_csv) {
            if now >= t {
                if let Err(e) = eng.stats().latencies_so_far().write_csv(p) {
                    eprintln!("cannot write {}: {e}", p.display());
                }
                next_hist = Some(t + i);
            }
        }
        if let (Some(i), Some(t)) = (interval, next_stats) {
            if now >= t {
                let sample = livestats::Sample::take(&shared, started);
                if let Some(w) = stats_out.as_mut() {
                    let line =
                        livestats::json_line(&sample, &prev_sample, ring_capacity, false, &extra);
                    text::write_json_line(w.as_mut(), &line);
                    prev_sample = sample.clone();
                }
                if status_lines {
                    let kernel = demo.verifier.as_ref().map(|v| v.report().kernel_drops);
                    eprintln!("{}", text::status_line(&sample, &prev_status, kernel));
                }
                prev_status = sample;
                next_stats = Some(t + i);
            }
        }
    }
    if let Some(d) = dash {
        let cost = d.stop(); // restores the terminal
        if info {
            eprintln!(
                "dashboard: {} frames; render thread CPU {} over {:.1} s = {} of one core",
                cost.frames,
                cost.cpu
                    .map_or("n/a".into(), |c| format!("{:.1} ms", c.as_secs_f64() * 1e3)),
                cost.wall.as_secs_f64(),
                cost.percent_of_core()
                    .map_or("n/a".into(), |p| format!("{p:.3} %"))
            );
        }
    }
    if info {
        eprintln!("stopping: flushing and joining threads…");
    }
    // Stop the source first so the bridge sees every block it was sent.
    let sim_stats = demo.simulator.take().map(|s| s.stop());
    let report = eng.shutdown();
    if let Some(w) = stats_out.as_mut() {
        // The final counters as one more JSON object ("final": true), before the report.
        let sample = livestats::Sample::take(&shared, started);
        let line = livestats::json_line(&sample, &prev_sample, ring_capacity, true, &extra);
        text::write_json_line(w.as_mut(), &line);
    }
    drop(stats_out);
    let verify = demo.verifier.take().map(|v| {
        v.wait_for_rows(u64::MAX, Duration::from_millis(200));
        v.stop()
    });

    println!(
        "{}",
        text::final_report(
            &report,
            sim_stats.as_ref(),
            verify.as_ref(),
            started.elapsed()
        )
    );
    if let Some(p) = &args.histogram_csv {
        report.latencies.write_csv(p).map_err(|e| {
            (
                exit::RUNTIME_FAILURE,
                format!("cannot write {}: {e}", p.display()),
            )
        })?;
        eprintln!("latency histograms written to {}", p.display());
    }
    if report.failed || failed_early {
        eprintln!("error: a bridge thread failed (see the message above); output had stopped");
        return Ok(exit::RUNTIME_FAILURE);
    }
    Ok(exit::OK)
}

/// What the flags and the config file settle before anything starts.
struct Settings {
    cfg: Config,
    /// Info lines (start-up, status line) on stderr.
    info: bool,
    /// Warnings on stderr.
    warn: bool,
    /// The live dashboard owns the terminal.
    tui: bool,
    /// Where the JSON stats lines go (`None` = nowhere).
    stats_out: Option<Box<dyn Write>>,
}

/// Loads the config, applies the flags' overrides and checks the flags.
fn settings(args: &Args) -> Result<Settings, Fail> {
    let (mut cfg, notes) =
        Config::load(args.config.as_deref()).map_err(|e| (exit::CONFIG, e.to_string()))?;
    let info = cfg.app.log_level != LogLevel::Error && cfg.app.log_level != LogLevel::Warning;
    let warn = cfg.app.log_level != LogLevel::Error;
    for n in &notes {
        if warn {
            eprintln!("config: {n}");
        }
    }
    if let Some(h) = &args.zmq_host {
        cfg.zmq.host = h.clone();
    }
    if let Some(p) = args.zmq_port.filter(|p| *p != 0) {
        if p == u16::MAX {
            return Err((
                exit::CONFIG,
                "--zmq-port must be below 65535 (heartbeat uses port+1)".into(),
            ));
        }
        cfg.zmq.data_port = p;
    }
    if let Some(h) = &args.osc_host {
        cfg.osc.host = h.clone();
    }
    if let Some(p) = args.osc_port.filter(|p| *p != 0) {
        cfg.osc.port = p;
    }
    if !args.seconds.is_none_or(|s| s.is_finite() && s > 0.0) {
        return Err((exit::CONFIG, "--seconds must be > 0".into()));
    }
    if !(args.stats_interval.is_finite() && args.stats_interval >= 0.0) {
        return Err((exit::CONFIG, "--stats-interval must be >= 0".into()));
    }
    // The live dashboard when stdout is a terminal (unless --no-tui); headless otherwise:
    // JSON stats lines on stdout (or appended to --stats-json), human status line on stderr.
    let tui = !args.no_tui && std::io::stdout().is_terminal();
    // --stats-interval 0 turns the JSON lines off too.
    let stats_out: Option<Box<dyn Write>> = match &args.stats_json {
        _ if args.stats_interval == 0.0 => None,
        Some(p) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| (exit::CONFIG, format!("cannot open {}: {e}", p.display())))?,
        )),
        None if !tui => Some(Box::new(std::io::stdout())),
        None => None,
    };
    if args.simulate.is_some() {
        cfg.zmq.host = "127.0.0.1".into();
    }
    if let Some(p) = args.oscquery_port {
        cfg.oscquery.get_or_insert_with(Default::default).port = p;
    }
    if info {
        for line in cfg.non_default_settings() {
            eprintln!("setting: {line}");
        }
    }
    Ok(Settings {
        cfg,
        info,
        warn,
        tui,
        stats_out,
    })
}
