//! One bridge run: the bridge as a child, simulator and sink in-process.

use super::cpu::*;
use super::rows::*;
use super::scenarios::*;
use crate::stress::calc;
use crate::stress::stats::{self, BridgeCounters, FinalStats};
use crate::stress::table::{Cell, Row};
use hdrhistogram::Histogram;
use oe_testkit::sim::{self, SimConfig, Simulator};
use oe_testkit::sink::{BlockClock, Layout, Method, Sink, SinkConfig, SinkReport};
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Ctx {
    pub bridge: PathBuf,
    pub version: String,
    pub commit: String,
    pub tck: f64,
    pub latency_skip_blocks: u64,
}

/// State shared with the simulator's block observer.
pub struct ObserverState {
    pub clock: Arc<BlockClock>,
    pub samples: AtomicU64,
    pub first: Mutex<Option<Instant>>,
    pub last: Mutex<Option<Instant>>,
}

/// Per-10-s sampling of a soak run.
pub struct SoakLog {
    pub file: fs::File,
    pub every: Duration,
    pub header_written: bool,
}

#[derive(Debug, Clone)]
pub struct RunResult {
    pub sc: Scenario,
    pub run: String,
    /// Bridge exit code (-1: killed or unknown).
    pub exit: i32,
    /// What went wrong, empty when the run was clean (a start-up failure, a missing final
    /// stats object, a kill after a hang).
    pub error: String,
    pub counters: Option<BridgeCounters>,
    pub final_rss_mb: f64,
    pub samples_published: u64,
    pub rows_expected: u64,
    pub rows_delivered: u64,
    pub datagrams_per_s: f64,
    pub rep: SinkReport,
    pub e2e: [f64; 5],
    /// bridge_added p50, p90, p99, p99.9, max (ms) from its histogram CSV.
    pub bridge_added: [f64; 5],
    pub cpu_pct: f64,
    pub rx_cpu_pct: f64,
    pub tx_cpu_pct: f64,
    pub rss_mb: f64,
    pub fds: u64,
    pub threads: u64,
    pub window_s: f64,
    pub sim_blocks: u64,
    pub sim_data_msgs: u64,
    pub sim_late_blocks: u64,
    pub sim_max_late_ms: f64,
    pub rcvbuf: usize,
    /// The sink's buffer was set with `SO_RCVBUFFORCE`.
    pub rcvbuf_forced: bool,
    /// Sink receiver thread CPU, % of one core over the stream time.
    pub sink_cpu_pct: f64,
    /// This process (simulator, its libzmq threads, sink, burner) over the bridge's CPU window.
    pub instrument_cpu_pct: f64,
}

impl RunResult {
    pub fn frac(&self, n: u64) -> f64 {
        calc::ratio(n as f64, self.rows_expected as f64)
    }
    /// Samples the simulator published ÷ what real time asks for over the streaming time
    /// (below 1 when the publisher fell behind; it stops at the end of `seconds`).
    pub fn sim_rate(&self) -> f64 {
        calc::ratio(self.samples_published as f64, self.sc.seconds * RATE)
    }
}

pub fn bridge_config(sc: &Scenario, data_port: u16, osc_port: u16) -> String {
    let batching = sc.mode == Mode::Batch;
    let batch = if batching { sc.batch } else { 1 };
    format!(
        r#"{{
  "zmq": {{ "host": "127.0.0.1", "data_port": {data_port} }},
  "osc": {{
    "host": "127.0.0.1",
    "port": {osc_port},
    "processing": {{
      "downsampling_factor": {f},
      "downsampling_method": "average",
      "enable_batching": {batching},
      "batch_size": {batch}
    }}
  }},
  "performance": {{ "max_channels": {maxch}, "pin_threads": {pin}, "realtime_priority": {rt} }}
}}
"#,
        f = sc.factor,
        maxch = sc.channels.max(1024),
        pin = sc.pinned,
        rt = sc.realtime,
    )
}

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The bridge command line of a run (also recorded in the README).
pub fn bridge_args(sc: &Scenario, cfg: &Path, dir: &Path, max_seconds: f64) -> Vec<String> {
    let mut a = vec![
        "-c".to_string(),
        cfg.display().to_string(),
        "--no-tui".into(),
        "--seconds".into(),
        format!("{max_seconds}"),
        // Only the final object is needed: one interval longer than the run.
        "--stats-interval".into(),
        format!("{}", max_seconds + 60.0),
        "--stats-json".into(),
        dir.join("stats.jsonl").display().to_string(),
        "--histogram-csv".into(),
        dir.join("bridge-hist.csv").display().to_string(),
    ];
    a.push(if sc.pinned { "--pin" } else { "--no-pin" }.into());
    a
}

pub fn spawn_bridge(ctx: &Ctx, args: &[String], dir: &Path) -> Result<Child, String> {
    let out = fs::File::create(dir.join("report.txt")).map_err(|e| e.to_string())?;
    let err = fs::File::create(dir.join("stderr.txt")).map_err(|e| e.to_string())?;
    Command::new(&ctx.bridge)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", ctx.bridge.display()))
}

pub fn stderr_tail(dir: &Path, n: usize) -> String {
    let err = fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
    let tail: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(n)
        .collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Spins until `stop` (the `--contend` load: a thread beside the simulator burning a core).
pub fn spawn_burner(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::Builder::new()
        .name("contend".into())
        .spawn(move || {
            let mut x = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..10_000 {
                    x = std::hint::black_box(
                        x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1),
                    );
                }
            }
            x
        })
        .expect("spawn contend thread")
}

#[allow(clippy::too_many_lines)]
pub fn run_scenario(
    ctx: &Ctx,
    sc: &Scenario,
    run: &str,
    dir: &Path,
    mut soak: Option<&mut SoakLog>,
) -> RunResult {
    let _ = fs::create_dir_all(dir);
    let _ = fs::remove_file(dir.join("stats.jsonl"));
    let clock = Arc::new(BlockClock::new(8192));
    let layout = match sc.mode {
        Mode::Sample => Layout::Sample,
        Mode::Batch => Layout::Batch,
    };
    let wrap = sim::pattern_wrap(sc.channels - 1);
    let sink = Sink::start(SinkConfig {
        bind: ([127, 0, 0, 1], 0).into(),
        recv_buffer_bytes: SINK_RCVBUF,
        base_address: "/data".into(),
        layout,
        channels: (0..sc.channels).collect(),
        wrap,
        factor: sc.factor,
        method: Method::Average,
        block_clock: Some(clock.clone()),
    })
    .expect("sink start");
    let obs = Arc::new(ObserverState {
        clock: clock.clone(),
        samples: AtomicU64::new(0),
        first: Mutex::new(None),
        last: Mutex::new(None),
    });
    let o2 = obs.clone();
    let skip = ctx.latency_skip_blocks;
    let mut seen = 0u64;
    let observer: sim::BlockObserver = Box::new(move |sn, ns, _, t| {
        // Rows of blocks not recorded in the clock get no latency sample (start-up excluded
        // from the latency only; delivery counts every sample published).
        if seen >= skip {
            o2.clock.record(sn, ns, t);
        }
        seen += 1;
        o2.samples.fetch_add(ns as u64, Ordering::Relaxed);
        let mut f = o2.first.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(t);
        }
        drop(f);
        *o2.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
    });
    let burner_stop = Arc::new(AtomicBool::new(false));
    let burner = sc.contend.then(|| spawn_burner(burner_stop.clone()));
    let zctx = zmq::Context::new();
    let simulator = Simulator::start(
        SimConfig {
            bind_host: "127.0.0.1".into(),
            data_port: 0,
            channels: (0..sc.channels).collect(),
            sample_rate: RATE,
            block: sc.block.clone(),
            signal: sim::Signal::Pattern { wrap },
            duration: Some(Duration::from_secs_f64(sc.seconds)),
            realtime: true,
            send_hwm: sc.pub_hwm,
            wait_for_subscriber: true,
            ..SimConfig::default()
        },
        &zctx,
        Some(observer),
    )
    .expect("simulator start");

    let cfg_path = dir.join("config.json");
    fs::write(
        &cfg_path,
        bridge_config(sc, simulator.data_port(), sink.local_addr().port()),
    )
    .expect("write bridge config");
    // The bridge is stopped with SIGTERM once the stream is through; --seconds is a backstop.
    let max_seconds = sc.seconds + 60.0;
    let args = bridge_args(sc, &cfg_path, dir, max_seconds);
    let _ = fs::write(
        dir.join("command.txt"),
        format!("{} {}\n", ctx.bridge.display(), args.join(" ")),
    );
    let mut errors: Vec<String> = Vec::new();
    let mut child = match spawn_bridge(ctx, &args, dir) {
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(e);
            None
        }
    };

    // Sample the bridge until the stream is through, then stop it.
    let t_start = Instant::now();
    let mut samples: Vec<ProcSample> = Vec::new();
    let mut next = t_start;
    let mut soak_prev: Option<(Instant, u64, SinkReport)> = None;
    let mut next_soak = t_start + soak.as_ref().map_or(Duration::MAX / 4, |s| s.every);
    let mut status = None;
    let mut terminated_at: Option<Instant> = None;
    while let Some(ch) = child.as_mut() {
        if let Ok(Some(st)) = ch.try_wait() {
            status = Some(st);
            break;
        }
        let now = Instant::now();
        let pid = ch.id();
        let started = obs
            .first
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !started && now.duration_since(t_start) > SUBSCRIBE_TIMEOUT {
            errors.push(format!(
                "the bridge did not subscribe within {} s; killed",
                SUBSCRIBE_TIMEOUT.as_secs()
            ));
            let _ = ch.kill();
            status = ch.wait().ok();
            break;
        }
        if terminated_at.is_none() && simulator.is_finished() {
            // Every published row should be out: wait while the sink still makes progress.
            let expected = calc::rows_expected(obs.samples.load(Ordering::Relaxed), sc.factor);
            wait_for_sink(&sink, expected);
            if let Some(s) = proc_sample(pid) {
                samples.push(s);
            }
            sigterm(pid);
            terminated_at = Some(Instant::now());
        }
        if terminated_at.is_some_and(|t| now.duration_since(t) > Duration::from_secs(15)) {
            errors.push("the bridge did not exit within 15 s of SIGTERM; killed".into());
            let _ = ch.kill();
            status = ch.wait().ok();
            break;
        }
        if now >= next && terminated_at.is_none() {
            if let Some(s) = proc_sample(pid) {
                samples.push(s);
            }
            next += SAMPLE_EVERY;
            eprint!(
                "\r\x1b[2K  {} run {run}: {:.0}/{:.0} s",
                sc.name(),
                t_start.elapsed().as_secs_f64(),
                sc.seconds
            );
            let _ = std::io::stderr().flush();
        }
        if let Some(log) = soak.as_deref_mut() {
            if now >= next_soak {
                next_soak += log.every;
                let rep = sink.report();
                if let Some(last) = samples.last().copied() {
                    write_soak_row(log, t_start, &obs, sc, &rep, last, soak_prev.as_ref());
                    soak_prev = Some((last.at, last.cpu_ns, rep));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let exit = status.and_then(|s| s.code()).unwrap_or(-1);
    let stream_started = obs
        .first
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_some();
    if child.is_some() && terminated_at.is_none() && errors.is_empty() {
        errors.push(if stream_started {
            format!("the bridge exited with code {exit} during the run")
        } else {
            format!("the bridge exited at start-up with code {exit}")
        });
    }
    if exit != 0 && errors.is_empty() {
        errors.push(format!("the bridge exited with code {exit}"));
    }
    let sim_stats = if simulator.is_finished() {
        simulator.wait()
    } else {
        simulator.stop()
    };
    burner_stop.store(true, Ordering::Relaxed);
    if let Some(b) = burner {
        let _ = b.join();
    }
    let samples_published = obs.samples.load(Ordering::Relaxed);
    let rows_expected = calc::rows_expected(samples_published, sc.factor);
    // Rows flushed at the bridge's stop (e.g. a last partial batch) are still on their way.
    sink.wait_for_rows(rows_expected, Duration::from_millis(300));
    let rcvbuf = sink.effective_recv_buffer();
    let rcvbuf_forced = sink.recv_buffer_forced();
    let rep = sink.stop();
    drop(zctx);

    // The bridge's counters: its final JSON stats object.
    let final_stats = fs::read_to_string(dir.join("stats.jsonl"))
        .map_err(|e| format!("no stats file: {e}"))
        .and_then(|t| FinalStats::from_lines(&t));
    let (counters, final_rss_mb) = match final_stats {
        Ok(f) => match BridgeCounters::from_final(&f) {
            Ok(c) => (
                Some(c),
                f.rss_bytes.map_or(f64::NAN, |b| b as f64 / 1048576.0),
            ),
            Err(e) => {
                errors.push(e);
                (None, f64::NAN)
            }
        },
        Err(e) => {
            errors.push(e);
            (None, f64::NAN)
        }
    };
    let bridge_added = fs::read_to_string(dir.join("bridge-hist.csv"))
        .ok()
        .and_then(|t| stats::hist_quantiles(&t, "bridge_added").ok())
        .map_or([f64::NAN; 5], |q| q.ms);
    if !errors.is_empty() {
        let tail = stderr_tail(dir, 6);
        if !tail.is_empty() {
            errors.push(format!("stderr: {tail}"));
        }
        eprintln!("\n{} run {run}: {}", sc.name(), errors.join("; "));
    }

    let e2e = match &rep.latency {
        Some(h) if !h.is_empty() => [
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.9)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
        ],
        _ => [f64::NAN; 5],
    };
    if let Some(h) = &rep.latency {
        write_latency_csv(&dir.join("latency.csv"), h);
    }
    let first = *obs.first.lock().unwrap_or_else(|p| p.into_inner());
    let last = *obs.last.lock().unwrap_or_else(|p| p.into_inner());
    let stream_s = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64() + sc.block_samples as f64 / RATE,
        _ => f64::NAN,
    };
    let win = match (first, last) {
        (Some(a), Some(b)) => window(&samples, a + warmup(sc.seconds), b),
        _ => None,
    };
    // The sink thread's whole CPU time (it idles before and after the stream) over the
    // stream time: % of one core while data flows.
    let sink_cpu_pct = calc::ratio(100.0 * rep.thread_cpu_ns as f64 / 1e9, stream_s);
    let tck = ctx.tck;
    let (cpu, rx_cpu, tx_cpu, window_s, instrument_cpu_pct) = match &win {
        Some((a, b)) => (
            pct(a, b, |s| s.cpu_ns as f64 / 1e9),
            pct(a, b, |s| s.rx_ticks as f64 / tck),
            pct(a, b, |s| s.tx_ticks as f64 / tck),
            b.at.duration_since(a.at).as_secs_f64(),
            pct(a, b, |s| s.own_cpu_ns as f64 / 1e9),
        ),
        None => (f64::NAN, f64::NAN, f64::NAN, 0.0, f64::NAN),
    };
    RunResult {
        sc: sc.clone(),
        run: run.to_string(),
        exit,
        error: errors.join("; "),
        datagrams_per_s: counters.map_or(f64::NAN, |c| c.sent as f64 / stream_s),
        counters,
        final_rss_mb,
        samples_published,
        rows_expected,
        rows_delivered: rep.rows.saturating_sub(rep.duplicated_rows),
        rep,
        e2e,
        bridge_added,
        cpu_pct: cpu,
        rx_cpu_pct: rx_cpu,
        tx_cpu_pct: tx_cpu,
        rss_mb: samples
            .iter()
            .map(|s| s.rss_kb)
            .max()
            .map_or(f64::NAN, |kb| kb as f64 / 1024.0),
        fds: samples.iter().map(|s| s.fds).max().unwrap_or(0),
        threads: samples.iter().map(|s| s.threads).max().unwrap_or(0),
        window_s,
        sim_blocks: sim_stats.blocks,
        sim_data_msgs: sim_stats.data_messages,
        sim_late_blocks: sim_stats.late_blocks,
        sim_max_late_ms: sim_stats.max_lateness.as_secs_f64() * 1e3,
        rcvbuf,
        rcvbuf_forced,
        sink_cpu_pct,
        instrument_cpu_pct,
    }
}

/// Waits until the sink has `expected` rows, or has received nothing new for 500 ms (a
/// bridge that lost rows never gets there), or 30 s passed (a bridge far behind).
pub fn wait_for_sink(sink: &Sink, expected: u64) {
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut prev = u64::MAX;
    while Instant::now() < give_up {
        if sink.wait_for_rows(expected, Duration::from_millis(500)) {
            return;
        }
        let rows = sink.report().rows;
        if rows == prev {
            return;
        }
        prev = rows;
    }
}

pub fn write_soak_row(
    log: &mut SoakLog,
    t0: Instant,
    obs: &ObserverState,
    sc: &Scenario,
    rep: &SinkReport,
    cur: ProcSample,
    prev: Option<&(Instant, u64, SinkReport)>,
) {
    let rows_sent = calc::rows_expected(obs.samples.load(Ordering::Relaxed), sc.factor);
    let (cpu, interval) = match prev {
        Some((at, ns, prev_rep)) => {
            let dt = cur.at.duration_since(*at).as_secs_f64();
            let cpu = calc::ratio(100.0 * cur.cpu_ns.saturating_sub(*ns) as f64 / 1e9, dt);
            let interval = match (&rep.latency, &prev_rep.latency) {
                (Some(a), Some(b)) => {
                    let mut d = a.clone();
                    d.subtract(b).is_ok().then_some(d)
                }
                _ => None,
            };
            (cpu, interval)
        }
        None => (f64::NAN, rep.latency.clone()),
    };
    let lat = |h: &Option<Histogram<u64>>, q: f64| match h {
        Some(h) if !h.is_empty() => {
            if q >= 1.0 {
                ms(h.max())
            } else {
                ms(h.value_at_quantile(q))
            }
        }
        _ => f64::NAN,
    };
    // The first row has no CPU interval: an empty cell, not NaN.
    let mut row = Row::default();
    row.push("t_s", Cell::Num(t0.elapsed().as_secs_f64(), 1))
        .push("bridge_rss_mb", n2(cur.rss_kb as f64 / 1024.0))
        .push("bridge_fds", Cell::Int(cur.fds))
        .push("bridge_threads", Cell::Int(cur.threads))
        .push("bridge_cpu_pct", n2(cpu))
        .push("rows_sent", Cell::Int(rows_sent))
        .push(
            "rows_delivered",
            Cell::Int(rep.rows.saturating_sub(rep.duplicated_rows)),
        )
        .push("sink_lost_rows", Cell::Int(rep.lost_rows))
        .push("kernel_drops", Cell::Int(rep.kernel_drops))
        .push("torn_or_bad", Cell::Int(rep.torn_rows + rep.bad_values))
        .push("e2e_p50_ms", n3(lat(&interval, 0.5)))
        .push("e2e_p99_ms", n3(lat(&interval, 0.99)))
        .push("e2e_p999_ms", n3(lat(&interval, 0.999)))
        .push("e2e_max_ms", n3(lat(&interval, 1.0)));
    if !log.header_written {
        let _ = writeln!(log.file, "{}", row.header());
        log.header_written = true;
    }
    let _ = writeln!(log.file, "{}", row.line());
    let _ = log.file.flush();
}

pub fn write_latency_csv(path: &Path, h: &Histogram<u64>) {
    let mut out = String::from("metric,percentile,value_us,count_in_step,total_count\n");
    if !h.is_empty() {
        for v in h.iter_quantiles(4) {
            let _ = writeln!(
                out,
                "e2e,{:.6},{:.3},{},{}",
                v.quantile_iterated_to() * 100.0,
                v.value_iterated_to() as f64 / 1e3,
                v.count_since_last_iteration(),
                h.len()
            );
        }
    }
    let _ = fs::write(path, out);
}
