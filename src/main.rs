//! `openephys-zmq2osc`: the bridge binary. Thin: flags → config → engine → report → exit code.

use clap::Parser;
use mimalloc::MiMalloc;
use oe_testkit::{sim, sink};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zmq2osc::cli::{exit, Args};
use zmq2osc::config::{Config, LogLevel, FULL_CONFIG_JSON, MINIMAL_CONFIG_JSON};
use zmq2osc::engine::{self, Engine, EngineOptions};
use zmq2osc::net::SenderOptions;
use zmq2osc::output::Mode;
use zmq2osc::telemetry::dashboard::{self, Dashboard, DashboardInfo};
use zmq2osc::telemetry::livestats;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

type Fail = (u8, String);

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => ExitCode::from(code),
        Err((code, msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(code)
        }
    }
}

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

fn run(args: Args) -> Result<u8, Fail> {
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
    let mut stats_out: Option<Box<dyn Write>> = match &args.stats_json {
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
    if info {
        for line in cfg.non_default_settings() {
            eprintln!("setting: {line}");
        }
    }

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
    let zctx = zmq::Context::new();
    let clock = Arc::new(sink::BlockClock::new(4096));
    let simulator = match args.simulate {
        None => None,
        Some(n) => {
            if n == 0 || n > cfg.performance.max_channels {
                return Err((
                    exit::CONFIG,
                    format!(
                        "--simulate takes 1..={} channels (performance.max_channels)",
                        cfg.performance.max_channels
                    ),
                ));
            }
            let block = match args.sim_block_size {
                Some(b) => sim::BlockSize::Fixed(b),
                None => sim::BlockSize::Gui,
            };
            let sc = sim::SimConfig {
                bind_host: "127.0.0.1".into(),
                data_port: cfg.zmq.data_port,
                channels: (0..n).collect(),
                sample_rate: args.sim_rate,
                block,
                signal: sim::Signal::Pattern {
                    wrap: sim::pattern_wrap(n - 1),
                },
                wait_for_subscriber: true,
                ..Default::default()
            };
            let c = clock.clone();
            let observer: sim::BlockObserver = Box::new(move |sn, ns, _, t| c.record(sn, ns, t));
            Some(
                sim::Simulator::start(sc, &zctx, Some(observer))
                    .map_err(|e| (exit::STARTUP, format!("simulator: {e}")))?,
            )
        }
    };
    let verifier = if args.verify {
        let Some(n) = args.simulate else {
            return Err((exit::CONFIG, "--verify needs --simulate".into()));
        };
        let spec = engine::output_specs(&cfg).remove(0);
        let fmt = spec.format;
        let layout = match fmt.mode {
            Mode::Sample => sink::Layout::Sample,
            Mode::Batch => sink::Layout::Batch,
            Mode::PerChannel | Mode::Blob => {
                return Err((
                    exit::CONFIG,
                    "--verify checks sample and batch formats only".into(),
                ))
            }
        };
        let bind = engine::resolve(&spec.host, spec.port).map_err(|e| (exit::CONFIG, e))?;
        let sc = sink::SinkConfig {
            bind,
            recv_buffer_bytes: 8 << 20,
            base_address: cfg.osc.base_address.clone(),
            layout,
            channels: (0..n).collect(),
            wrap: sim::pattern_wrap(n - 1),
            factor: fmt.factor as u32,
            method: match fmt.method {
                zmq2osc::config::DownsamplingMethod::Average => sink::Method::Average,
                zmq2osc::config::DownsamplingMethod::Decimate => sink::Method::Decimate,
            },
            block_clock: Some(clock.clone()),
        };
        Some(sink::Sink::start(sc).map_err(|e| {
            (
                exit::STARTUP,
                format!("verifier cannot listen on {bind}: {e}"),
            )
        })?)
    } else {
        None
    };

    let sender = SenderOptions {
        force_portable: args.portable_udp,
        use_gso: !args.no_gso,
        ..Default::default()
    };
    let opts = EngineOptions {
        pin_threads: !args.no_pin,
        sender,
        verbose: warn,
        panic_after_frames: None,
    };
    let eng = Engine::start(&cfg, &opts).map_err(|e| (exit::STARTUP, e))?;
    if info {
        print_startup(&cfg, &eng);
    }

    let started = Instant::now();
    let shared = eng.shared().clone();
    // Each output (shard) has its own ring; "queued" is summed over them.
    let ring_capacity = eng.layout().ring_capacity * eng.layout().outputs.len().max(1);
    let dash = if tui {
        match Dashboard::start(shared.clone(), started, dashboard_info(&cfg, &eng)) {
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
        if let (Some(i), Some(t), Some(p)) = (hist_every, next_hist, &args.histogram_csv) {
            if now >= t {
                if let Err(e) = eng.shared().latencies_so_far().write_csv(p) {
                    eprintln!("cannot write {}: {e}", p.display());
                }
                next_hist = Some(t + i);
            }
        }
        if let (Some(i), Some(t)) = (interval, next_stats) {
            if now >= t {
                let sample = livestats::Sample::take(&shared, started);
                if let Some(w) = stats_out.as_mut() {
                    let line = livestats::json_line(&sample, &prev_sample, ring_capacity, false);
                    write_json_line(w.as_mut(), &line);
                    prev_sample = sample.clone();
                }
                if status_lines {
                    eprintln!("{}", status_line(&sample, &prev_status));
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
    let sim_stats = simulator.map(|s| s.stop());
    let report = eng.shutdown();
    if let Some(w) = stats_out.as_mut() {
        // The final counters as one more JSON object ("final": true), before the report.
        let sample = livestats::Sample::take(&shared, started);
        let line = livestats::json_line(&sample, &prev_sample, ring_capacity, true);
        write_json_line(w.as_mut(), &line);
    }
    drop(stats_out);
    let verify = verifier.map(|v| {
        v.wait_for_rows(u64::MAX, Duration::from_millis(200));
        v.stop()
    });

    println!(
        "{}",
        final_report(
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

/// Writes one JSON line (a failed write, e.g. a closed pipe, is ignored: stats are advisory).
fn write_json_line(w: &mut dyn Write, line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = w.write_all(buf.as_bytes()).and_then(|_| w.flush());
}

fn dashboard_info(cfg: &Config, eng: &Engine) -> DashboardInfo {
    let l = eng.layout();
    let fmt = engine::output_format(cfg);
    DashboardInfo {
        data_endpoint: l.data_endpoint.clone(),
        heartbeat: format!(
            "{} as ZMQ2OSC-{}",
            l.heartbeat_endpoint,
            engine::effective_uuid(&cfg.zmq.app_uuid)
                .chars()
                .take(4)
                .collect::<String>()
        ),
        output: l
            .outputs
            .iter()
            .map(|o| o.describe())
            .collect::<Vec<_>>()
            .join(" | "),
        ring_capacity: l.ring_capacity * l.outputs.len().max(1),
        policy: cfg
            .performance
            .osc_queue_overflow_strategy
            .as_str()
            .to_string(),
        factor: fmt.factor,
    }
}

fn print_startup(cfg: &Config, eng: &Engine) {
    let l = eng.layout();
    eprintln!("openephys-zmq2osc {}", env!("CARGO_PKG_VERSION"));
    eprintln!(
        "  ZMQ data   {} (SUB)   heartbeat {} as {}",
        l.data_endpoint,
        l.heartbeat_endpoint,
        engine::heartbeat_message(&engine::effective_uuid(&cfg.zmq.app_uuid))
    );
    for o in &l.outputs {
        eprintln!("  OSC        {}", o.describe());
    }
    eprintln!(
        "  slab       {} frames × {} ch × {} samples = {:.1} MiB reserved (ring {} blocks, policy {}); \
         memory is touched only as blocks use it",
        l.slab_frames,
        cfg.performance.max_channels,
        cfg.performance.max_block_samples,
        l.slab_bytes as f64 / (1 << 20) as f64,
        l.ring_capacity,
        cfg.performance.osc_queue_overflow_strategy.as_str()
    );
    eprintln!("  pinning    {}", l.pinning);
}

/// The stderr status line, from the same samples as the JSON stats (outputs summed).
fn status_line(cur: &livestats::Sample, prev: &livestats::Sample) -> String {
    let r = livestats::Rates::between(prev, cur);
    let d = cur.drops();
    let lat = cur.bridge_added.map_or(String::new(), |(p50, p99, _)| {
        format!(
            " | bridge_added p50 {:.2} p99 {:.2} ms",
            p50 as f64 / 1e6,
            p99 as f64 / 1e6
        )
    });
    format!(
        "[{:7.1}s] zmq {:>7.0} msg/s {:>4.0} blocks/s {} ch @ {:.1} Hz | osc {:>7.0} dgram/s {:>6.2} MB/s queue {} | \
         lost: incomplete {} upstream-msgs {} policy {} send {} malformed {} | heartbeat {}{lat}",
        cur.t,
        r.zmq_msgs,
        r.blocks,
        cur.rx("channels"),
        cur.sample_rate_hz(),
        r.datagrams,
        r.mbytes,
        cur.tx("queued"),
        d.incomplete + d.incomplete_upstream,
        d.upstream_missing_msgs,
        d.dropped_newest + d.dropped_oldest,
        d.send_failed,
        d.malformed,
        cur.hb_state(),
    )
}

fn final_report(
    r: &engine::Report,
    sim: Option<&sim::SimStats>,
    verify: Option<&sink::SinkReport>,
    elapsed: Duration,
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let get = |v: &[(&str, u64)], n: &str| v.iter().find(|(k, _)| *k == n).map_or(0, |x| x.1);
    let _ = writeln!(
        s,
        "== openephys-zmq2osc report ({:.1} s) ==",
        elapsed.as_secs_f64()
    );
    if let Some(st) = sim {
        let _ = writeln!(
            s,
            "simulator  blocks {}  data messages {}  ttl events {}  late blocks {} (max {:.1} ms behind)",
            st.blocks,
            st.data_messages,
            st.event_messages,
            st.late_blocks,
            st.max_lateness.as_secs_f64() * 1e3
        );
    }
    let _ = writeln!(
        s,
        "zmq        messages {}  data {}  ttl {}  spikes {}  malformed {}  upstream missing msgs {}  sample gaps {} ({} samples)",
        get(&r.rx, "messages"),
        get(&r.rx, "data_msgs"),
        get(&r.rx, "ttl_events"),
        get(&r.rx, "spikes"),
        get(&r.rx, "malformed"),
        get(&r.rx, "upstream_missing_msgs"),
        get(&r.rx, "upstream_sample_gaps"),
        get(&r.rx, "upstream_missing_samples"),
    );
    let _ = writeln!(
        s,
        "blocks     emitted {} (filled {}, {} channel rows)  incomplete {}  incomplete(upstream loss) {}  while learning channels {}  no free frame {}  restarts {}  loops {}  late msgs {}  stream changes {}  channel-set changes {}",
        get(&r.rx, "blocks_emitted"),
        get(&r.rx, "blocks_filled"),
        get(&r.rx, "rows_filled"),
        get(&r.rx, "blocks_incomplete"),
        get(&r.rx, "blocks_incomplete_upstream"),
        get(&r.rx, "blocks_learning"),
        get(&r.rx, "blocks_no_frame"),
        get(&r.rx, "restarts"),
        get(&r.rx, "backward_jumps"),
        get(&r.rx, "late_msgs"),
        get(&r.rx, "stream_changes"),
        get(&r.rx, "channel_set_changes"),
    );
    for (i, tx) in r.tx.iter().enumerate() {
        let name = r.outputs.get(i).map_or("osc", String::as_str);
        let _ = writeln!(
            s,
            "osc [{name}] frames {}  rows {}  datagrams {}  sent {}  send-dropped {} (refused {})  oversize refused {}  split {}  syscalls {}  gso batches {}  | queue: dropped newest {} oldest {}, block waits {}  | ttl {} spikes {} status {} notices {}",
            get(tx, "frames"),
            get(tx, "rows"),
            get(tx, "datagrams"),
            get(tx, "sent"),
            get(tx, "send_dropped"),
            get(tx, "refused"),
            get(tx, "oversize"),
            get(tx, "split_messages"),
            get(tx, "syscalls"),
            get(tx, "gso_batches"),
            get(tx, "dropped_newest"),
            get(tx, "dropped_oldest"),
            get(tx, "block_waits"),
            get(tx, "ttl_sent"),
            get(tx, "spikes_sent"),
            get(tx, "status_sent"),
            get(tx, "notices_sent"),
        );
    }
    let malformed: Vec<String> =
        r.rx.iter()
            .skip_while(|(k, _)| *k != "bad_envelope")
            .take_while(|(k, _)| *k != "late_msgs")
            .filter(|(_, v)| *v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
    if !malformed.is_empty() {
        let _ = writeln!(s, "malformed  {}", malformed.join("  "));
    }
    let _ = writeln!(s, "{}", r.ledger().0);
    let _ = writeln!(
        s,
        "heartbeat  sent {}  replies {}  socket resets {}  | data connection: connects {}  disconnects {}  handshake failures {}  reconnects after protocol errors {}",
        get(&r.hb, "sent"),
        get(&r.hb, "replies"),
        get(&r.hb, "resets"),
        get(&r.hb, "data_connects"),
        get(&r.hb, "data_disconnects"),
        get(&r.hb, "data_handshake_failures"),
        get(&r.hb, "data_manual_reconnects"),
    );
    if let Some(v) = verify {
        let delivered = if v.rows + v.lost_rows > 0 {
            v.rows as f64 / (v.rows + v.lost_rows) as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "verifier   rows {}  clean {}  lost {}  duplicated {}  reordered {}  torn {}  bad values {}  kernel drops {}  delivered {:.4}",
            v.rows, v.clean_rows, v.lost_rows, v.duplicated_rows, v.reordered_rows, v.torn_rows, v.bad_values, v.kernel_drops, delivered
        );
        if let Some(h) = &v.latency {
            if !h.is_empty() {
                let _ = writeln!(
                    s,
                    "end-to-end (simulator send -> OSC received) ms: p50 {:.3}  p99 {:.3}  max {:.3}",
                    h.value_at_quantile(0.5) as f64 / 1e6,
                    h.value_at_quantile(0.99) as f64 / 1e6,
                    h.max() as f64 / 1e6
                );
            }
        }
    }
    s.push_str(&r.latencies.table());
    s
}
