//! `stress`: the results matrix from HEAD by one command.
//!
//! For each scenario the simulator ([`Simulator`]) and the verifying sink ([`Sink`]) run in this
//! process and share one [`BlockClock`], so end-to-end latency (simulator send of a block's last
//! message → datagram received) uses one monotonic clock. The bridge runs as a child process
//! (the `openephys-zmq2osc` binary next to this one) on fresh ports; this process reads its
//! CPU clock and samples `/proc/PID/task` for the per-thread split. When the simulator is done
//! and the sink has every row (or stopped receiving for 500 ms), the bridge gets SIGTERM, stops
//! gracefully and writes its **final JSON stats object** (`--stats-json`), which is where every
//! bridge counter in the results comes from (never the text report).
//!
//! Each repeat also measures two baselines per channel count: a **bare ZeroMQ drain** (a plain
//! SUB with the bridge's socket options receiving the same simulator stream into a buffer) and
//! a **raw UDP sender** (the same datagrams as sample mode, same GSO syscalls, no ZMQ).
//!
//! Outputs (under `--out`, rewritten by each matrix run): `matrix.csv` (every run plus a median
//! row per scenario), `matrix-median.csv`, `baseline.csv` (runs + medians), `bridge-extra.csv`,
//! `scaling.txt`, `summary.md`, `latency.svg`, `delivered.svg`, and the raw files of every run in
//! `raw/<scenario>/r<k>/`. The soak writes under `<out>/soak/` only.

use clap::Parser;
use hdrhistogram::Histogram;
use oe_testkit::sim::{self, BlockSize, SimConfig, Simulator};
use oe_testkit::sink::{BlockClock, Layout, Method, Sink, SinkConfig, SinkReport};
use oe_tools::stress::calc;
use oe_tools::stress::plot;
use oe_tools::stress::stats::{self, BridgeCounters, FinalStats};
use oe_tools::stress::table::{self, Cell, Row};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zmq2osc::net::{SenderOptions, UdpSender};

/// Largest UDP payload of an IPv4 datagram.
const UDP_MAX: usize = 65_507;
/// Sample rate of every run.
const RATE: f64 = 30_000.0;
/// Requested sink `SO_RCVBUF` (the same as the bridge's `--verify`).
const SINK_RCVBUF: usize = 8 << 20;
/// Part of the streaming time at the start excluded from the CPU figures (at most 30 % of a
/// short run, see [`warmup`]).
const CPU_WARMUP: Duration = Duration::from_millis(1500);
/// `/proc` sampling period of the bridge's threads.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// How long a bridge may take to subscribe before the row is given up.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(15);
/// The bridge's SUB socket options (`Engine::start` in src/engine/mod.rs): `ZMQ_RCVHWM` and
/// `ZMQ_RCVBUF` from the bridge's own constants, `ZMQ_MAXMSGSIZE` 4 × max(4 ×
/// `performance.max_block_samples` (default 2048), 65 536) bytes, linger 0. The drain
/// baseline uses the same.
const BRIDGE_RCVHWM: i32 = zmq2osc::engine::RCVHWM;
const BRIDGE_RCVBUF: i32 = zmq2osc::engine::RCVBUF;
const BRIDGE_MAXMSGSIZE: i64 = 4 * 65_536;

#[derive(Debug, Parser)]
#[command(
    name = "stress",
    about = "Results matrix for openephys-zmq2osc (simulator + sink in-process, bridge as a child)",
    after_help = "The full matrix (the default flags, 3 repeats) takes about 12 minutes; \
                  tools/results.sh builds and runs it into results/."
)]
struct Opt {
    /// Channel counts (0..N) of the full-rate rows (sample mode, F = 1).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16u32, 64, 256, 512, 1024, 2048])]
    channels: Vec<u32>,
    /// Output modes: sample, batch.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["sample".to_string(), "batch".to_string()])]
    modes: Vec<String>,
    /// Downsampling factors F.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1u32, 30])]
    factors: Vec<u32>,
    /// Channel counts that get every mode × factor; the other channel counts get the
    /// full-rate row (sample, F = 1) only (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    variants_at: Vec<u32>,
    /// Rows per batch in batch mode.
    #[arg(long, default_value_t = 10)]
    batch: u32,
    /// Simulator streaming time per run (s).
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Runs of every scenario and baseline; the CSVs keep every run plus a median row.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Block shape: `gui` (constant int(1024·fs/44100) = 696 at 30 kHz) or a fixed sample count.
    #[arg(long, default_value = "gui")]
    block: String,
    /// Simulator PUB high-water mark(s). 1000 = the plugin's libzmq default (faithful).
    #[arg(long, value_delimiter = ',', default_values_t = vec![100_000i32])]
    pub_hwm: Vec<i32>,
    /// Channel counts that also get a faithful row (PUB HWM 1000, sample mode, F = 1)
    /// (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1024u32])]
    faithful_at: Vec<u32>,
    /// Channel counts that also get a pinned full-rate row (the bridge runs with `--pin`)
    /// (0 = none).
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    pinned_at: Vec<u32>,
    /// Also run contended full-rate rows: a thread beside the simulator burns a core.
    #[arg(long)]
    contend: bool,
    /// `performance.realtime_priority` for an extra contended row per channel count (0 = none).
    #[arg(long, default_value_t = 20)]
    realtime: u8,
    /// Channel counts of the contended rows.
    #[arg(long, value_delimiter = ',', default_values_t = vec![256u32, 1024])]
    contend_at: Vec<u32>,
    /// Time of each baseline (bare ZeroMQ drain and raw UDP) per channel count and repeat (s);
    /// 0 skips the baselines.
    #[arg(long, default_value_t = 4.0)]
    baseline_seconds: f64,
    /// Output directory.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Smoke test: 16 and 256 channels, sample F = 1 only, 2 s, 1 repeat, 2 s baselines.
    #[arg(long)]
    quick: bool,
    /// Instead of the matrix: one long run (sample, F = 1) of this many seconds, sampled every
    /// 10 s, written under `<out>/soak/`.
    #[arg(long, value_name = "SECONDS")]
    soak: Option<f64>,
    /// Channels of the soak run.
    #[arg(long, default_value_t = 256)]
    soak_channels: u32,
    /// Instead of running: print the scaling fit of an existing matrix CSV (its median rows)
    /// and write it to `scaling.txt` beside the CSV.
    #[arg(long, value_name = "MATRIX_CSV")]
    fit: Option<PathBuf>,
    /// Blocks at the start of each run whose rows get no end-to-end latency sample (start-up;
    /// delivery counts every row regardless).
    #[arg(long, default_value_t = 2)]
    latency_skip_blocks: u64,
    /// Commit recorded in the CSVs (default: `git rev-parse --short HEAD` of the workspace,
    /// plus `-dirty` when files outside results/ differ from HEAD).
    #[arg(long)]
    commit: Option<String>,
    /// Bridge binary (default: `openephys-zmq2osc` next to this executable).
    #[arg(long)]
    bridge: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sample,
    Batch,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Sample => "sample",
            Mode::Batch => "batch",
        }
    }
}

#[derive(Debug, Clone)]
struct Scenario {
    channels: u32,
    mode: Mode,
    factor: u32,
    batch: u32,
    pub_hwm: i32,
    pinned: bool,
    contend: bool,
    /// `performance.realtime_priority` of the bridge (0 = off).
    realtime: u8,
    seconds: f64,
    block: BlockSize,
    block_samples: usize,
}

impl Scenario {
    fn name(&self) -> String {
        let mut s = format!(
            "{}ch-{}-F{}",
            self.channels,
            self.mode.as_str(),
            self.factor
        );
        if self.mode == Mode::Batch {
            let _ = write!(s, "-b{}", self.batch);
        }
        let _ = write!(s, "-hwm{}", self.pub_hwm);
        if self.pinned {
            s.push_str("-pin");
        }
        if self.contend {
            s.push_str("-contend");
        }
        if self.realtime > 0 {
            let _ = write!(s, "-rt{}", self.realtime);
        }
        s
    }
    /// Sample mode at F = 1: exactly what the raw UDP baseline sends.
    fn full_rate(&self) -> bool {
        self.mode == Mode::Sample && self.factor == 1
    }
}

/// The CPU warm-up of a run of `seconds`: [`CPU_WARMUP`], or 30 % of a shorter run.
fn warmup(seconds: f64) -> Duration {
    CPU_WARMUP.min(Duration::from_secs_f64((seconds * 0.3).max(0.0)))
}

fn pad4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// OSC size of one batch message (`/data/batch/<k>`, `,i` + N·k `f`).
fn batch_bytes(channels: usize, k: usize) -> usize {
    let addr = format!("/data/batch/{k}");
    pad4(addr.len() + 1) + pad4(channels * k + 3) + 4 + 4 * channels * k
}

// ---------------------------------------------------------------------------------------------
// CPU clocks and /proc
// ---------------------------------------------------------------------------------------------

/// CPU time (ns) of a Linux CPU-time clock id.
fn clock_ns(clk: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame; clock_gettime writes only
    // into it and reports an invalid clock id (e.g. an exited process) as an error.
    let rc = unsafe { libc::clock_gettime(clk, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// CPU time of the calling thread (ns).
fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0)
}

/// The CPU-time clock of a whole process (Linux `MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)`,
/// what `clock_getcpuclockid` returns): all its threads, ns resolution.
fn process_cpu_ns(pid: u32) -> Option<u64> {
    clock_ns(((!(pid as libc::clockid_t)) << 3) | 2)
}

/// The CPU-time clock of a thread of this process (`MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED)`).
fn own_thread_cpu_ns(tid: u32) -> Option<u64> {
    clock_ns(((!(tid as libc::clockid_t)) << 3) | 6)
}

fn own_tids() -> BTreeSet<u32> {
    fs::read_dir("/proc/self/task")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf only reads a system constant; it has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[derive(Debug, Clone, Copy)]
struct ProcSample {
    at: Instant,
    /// Whole-process CPU (ns, process CPU clock).
    cpu_ns: u64,
    /// CPU ticks of the `zmq_rx` thread and of all `osc_tx_*` threads.
    rx_ticks: u64,
    tx_ticks: u64,
    rss_kb: u64,
    fds: u64,
    threads: u64,
}

fn proc_sample(pid: u32) -> Option<ProcSample> {
    let at = Instant::now();
    let cpu_ns = process_cpu_ns(pid)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let (mut rx_ticks, mut tx_ticks) = (0, 0);
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let Ok(st) = fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            let (Some(a), Some(b)) = (st.find('('), st.rfind(')')) else {
                continue;
            };
            let comm = &st[a + 1..b];
            let f: Vec<&str> = st[b + 1..].split_whitespace().collect();
            // After the comm: utime (field 14) is f[11], stime (15) is f[12].
            let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if comm == "zmq_rx" {
                rx_ticks += ticks;
            } else if comm.starts_with("osc_tx") {
                tx_ticks += ticks;
            }
        }
    }
    Some(ProcSample {
        at,
        cpu_ns,
        rx_ticks,
        tx_ticks,
        rss_kb: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
    })
}

/// The first sample at or after `from` and the last at or before `to` (NaN window when fewer
/// than two samples fall inside).
fn window(samples: &[ProcSample], from: Instant, to: Instant) -> Option<(ProcSample, ProcSample)> {
    let a = samples.iter().find(|s| s.at >= from)?;
    let b = samples.iter().rev().find(|s| s.at <= to)?;
    (b.at > a.at).then_some((*a, *b))
}

/// % of one core between two samples for the quantity `pick` (in seconds of CPU).
fn pct(a: &ProcSample, b: &ProcSample, pick: impl Fn(&ProcSample) -> f64) -> f64 {
    let dt = b.at.duration_since(a.at).as_secs_f64();
    calc::ratio(100.0 * (pick(b) - pick(a)).max(0.0), dt)
}

// ---------------------------------------------------------------------------------------------
// One bridge run
// ---------------------------------------------------------------------------------------------

struct Ctx {
    bridge: PathBuf,
    version: String,
    commit: String,
    tck: f64,
    latency_skip_blocks: u64,
}

/// State shared with the simulator's block observer.
struct ObserverState {
    clock: Arc<BlockClock>,
    samples: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

/// Per-10-s sampling of a soak run.
struct SoakLog {
    file: fs::File,
    every: Duration,
    header_written: bool,
}

#[derive(Debug, Clone)]
struct RunResult {
    sc: Scenario,
    run: String,
    /// Bridge exit code (-1: killed or unknown).
    exit: i32,
    /// What went wrong, empty when the run was clean (a start-up failure, a missing final
    /// stats object, a kill after a hang).
    error: String,
    counters: Option<BridgeCounters>,
    final_rss_mb: f64,
    samples_published: u64,
    rows_expected: u64,
    rows_delivered: u64,
    datagrams_per_s: f64,
    rep: SinkReport,
    e2e: [f64; 5],
    /// bridge_added p50, p90, p99, p99.9, max (ms) from its histogram CSV.
    bridge_added: [f64; 5],
    cpu_pct: f64,
    rx_cpu_pct: f64,
    tx_cpu_pct: f64,
    rss_mb: f64,
    fds: u64,
    threads: u64,
    window_s: f64,
    sim_blocks: u64,
    sim_data_msgs: u64,
    sim_late_blocks: u64,
    sim_max_late_ms: f64,
    rcvbuf: usize,
}

impl RunResult {
    fn frac(&self, n: u64) -> f64 {
        calc::ratio(n as f64, self.rows_expected as f64)
    }
}

fn bridge_config(sc: &Scenario, data_port: u16, osc_port: u16) -> String {
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

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The bridge command line of a run (also recorded in the README).
fn bridge_args(sc: &Scenario, cfg: &Path, dir: &Path, max_seconds: f64) -> Vec<String> {
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

fn spawn_bridge(ctx: &Ctx, args: &[String], dir: &Path) -> Result<Child, String> {
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

fn stderr_tail(dir: &Path, n: usize) -> String {
    let err = fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
    let tail: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .rev()
        .take(n)
        .collect();
    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

fn sigterm(pid: u32) {
    // SAFETY: kill() only sends a signal to the child we spawned (pid from `Child::id`, not yet
    // reaped, so it cannot have been reused); it touches no memory.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Spins until `stop` (the `--contend` load: a thread beside the simulator burning a core).
fn spawn_burner(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
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
fn run_scenario(
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
    let tck = ctx.tck;
    let (cpu, rx_cpu, tx_cpu, window_s) = match &win {
        Some((a, b)) => (
            pct(a, b, |s| s.cpu_ns as f64 / 1e9),
            pct(a, b, |s| s.rx_ticks as f64 / tck),
            pct(a, b, |s| s.tx_ticks as f64 / tck),
            b.at.duration_since(a.at).as_secs_f64(),
        ),
        None => (f64::NAN, f64::NAN, f64::NAN, 0.0),
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
    }
}

/// Waits until the sink has `expected` rows, or has received nothing new for 500 ms (a
/// bridge that lost rows never gets there), or 30 s passed (a bridge far behind).
fn wait_for_sink(sink: &Sink, expected: u64) {
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

fn write_soak_row(
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

fn write_latency_csv(path: &Path, h: &Histogram<u64>) {
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

// ---------------------------------------------------------------------------------------------
// CSV rows
// ---------------------------------------------------------------------------------------------

fn yes_no(b: bool) -> Cell {
    Cell::text(if b { "yes" } else { "no" })
}

fn n3(x: f64) -> Cell {
    Cell::Num(x, 3)
}

fn n2(x: f64) -> Cell {
    Cell::Num(x, 2)
}

/// One `matrix.csv` row. `base`: that repeat's (drain CPU %, raw UDP CPU %) at this channel
/// count, used for full-rate rows only (the baselines send what sample mode at F = 1 sends).
fn matrix_row(ctx: &Ctx, r: &RunResult, base: Option<(f64, f64)>) -> Row {
    let c = r.counters;
    let cnt = |f: fn(&BridgeCounters) -> u64| {
        c.as_ref()
            .map_or(Cell::Num(f64::NAN, 0), |c| Cell::Int(f(c)))
    };
    let (drain, udp) = match base {
        Some(b) if r.sc.full_rate() => b,
        _ => (f64::NAN, f64::NAN),
    };
    let sc = &r.sc;
    let mut row = Row::default();
    row.push("scenario", Cell::text(sc.name()))
        .push("run", Cell::text(&r.run))
        .push("commit", Cell::text(&ctx.commit))
        .push("version", Cell::text(&ctx.version))
        .push("channels", Cell::Int(sc.channels.into()))
        .push("mode", Cell::text(sc.mode.as_str()))
        .push("factor", Cell::Int(sc.factor.into()))
        .push(
            "batch",
            Cell::Int(if sc.mode == Mode::Batch { sc.batch } else { 1 }.into()),
        )
        .push("pub_hwm", Cell::Int(sc.pub_hwm.max(0) as u64))
        .push("pinned", yes_no(sc.pinned))
        .push("contend", yes_no(sc.contend))
        .push("realtime", Cell::text(sc.realtime.to_string()))
        .push("seconds", Cell::Num(sc.seconds, 1))
        .push("bridge_exit", Cell::text(r.exit.to_string()))
        .push("error", Cell::text(&r.error))
        .push("datagrams_per_s", Cell::Num(r.datagrams_per_s, 1))
        .push("rows_expected", Cell::Int(r.rows_expected))
        .push("rows_delivered", Cell::Int(r.rows_delivered))
        .push("delivered", Cell::Num(r.frac(r.rows_delivered), 6))
        .push("clean", Cell::Num(r.frac(r.rep.clean_rows), 6))
        .push(
            "lost",
            Cell::Int(r.rows_expected.saturating_sub(r.rows_delivered)),
        )
        .push("kernel_drops", Cell::Int(r.rep.kernel_drops))
        .push("upstream_missing_msgs", cnt(|c| c.upstream_missing_msgs))
        .push("blocks_learning", cnt(|c| c.blocks_learning))
        .push(
            "blocks_incomplete",
            cnt(|c| c.blocks_incomplete + c.blocks_incomplete_upstream),
        )
        .push("dropped_newest", cnt(|c| c.dropped_newest))
        .push("dropped_oldest", cnt(|c| c.dropped_oldest))
        .push("send_dropped", cnt(|c| c.send_dropped));
    for (i, name) in E2E_COLS.iter().enumerate() {
        row.push(name, n3(r.e2e[i]));
    }
    for (i, name) in BRIDGE_COLS.iter().enumerate() {
        row.push(name, n3(r.bridge_added[i]));
    }
    row.push("bridge_cpu_pct", n2(r.cpu_pct))
        .push("zmq_rx_cpu_pct", n2(r.rx_cpu_pct))
        .push("osc_tx_cpu_pct", n2(r.tx_cpu_pct))
        .push("drain_cpu_pct", n2(drain))
        .push("udp_baseline_cpu_pct", n2(udp))
        .push("cpu_ratio", n3(calc::cpu_ratio(r.cpu_pct, drain, udp)))
        .push("bridge_rss_mb", Cell::Num(r.rss_mb, 1))
        .push(
            "datagrams_per_syscall",
            n3(c.map_or(f64::NAN, |c| calc::ratio(c.sent as f64, c.syscalls as f64))),
        );
    row
}

const E2E_COLS: [&str; 5] = [
    "e2e_p50_ms",
    "e2e_p90_ms",
    "e2e_p99_ms",
    "e2e_p999_ms",
    "e2e_max_ms",
];
const BRIDGE_COLS: [&str; 5] = [
    "bridge_p50_ms",
    "bridge_p90_ms",
    "bridge_p99_ms",
    "bridge_p999_ms",
    "bridge_max_ms",
];

fn extra_row(ctx: &Ctx, r: &RunResult) -> Row {
    let c = r.counters;
    let cnt = |f: fn(&BridgeCounters) -> u64| {
        c.as_ref()
            .map_or(Cell::Num(f64::NAN, 0), |c| Cell::Int(f(c)))
    };
    let mut row = Row::default();
    row.push("scenario", Cell::text(r.sc.name()))
        .push("run", Cell::text(&r.run))
        .push("commit", Cell::text(&ctx.commit))
        .push("sim_samples", Cell::Int(r.samples_published))
        .push("sim_blocks", Cell::Int(r.sim_blocks))
        .push("sim_data_msgs", Cell::Int(r.sim_data_msgs))
        .push("sim_late_blocks", Cell::Int(r.sim_late_blocks))
        .push("sim_max_late_ms", n2(r.sim_max_late_ms))
        .push("zmq_messages", cnt(|c| c.messages))
        .push("blocks_emitted", cnt(|c| c.blocks_emitted))
        .push("blocks_incomplete_bridge", cnt(|c| c.blocks_incomplete))
        .push(
            "blocks_incomplete_upstream",
            cnt(|c| c.blocks_incomplete_upstream),
        )
        .push("blocks_filled", cnt(|c| c.blocks_filled))
        .push("malformed", cnt(|c| c.malformed))
        .push("late_msgs", cnt(|c| c.late_msgs))
        .push("oversize", cnt(|c| c.oversize))
        .push("datagrams_sent", cnt(|c| c.sent))
        .push("syscalls", cnt(|c| c.syscalls))
        .push("gso_batches", cnt(|c| c.gso_batches))
        .push("final_rss_mb", Cell::Num(r.final_rss_mb, 1))
        .push("sink_lost_in_sequence", Cell::Int(r.rep.lost_rows))
        .push("duplicated", Cell::Int(r.rep.duplicated_rows))
        .push("reordered", Cell::Int(r.rep.reordered_rows))
        .push("torn", Cell::Int(r.rep.torn_rows))
        .push("bad_values", Cell::Int(r.rep.bad_values))
        .push("discontinuities", Cell::Int(r.rep.discontinuities))
        .push("sink_rcvbuf", Cell::Int(r.rcvbuf as u64))
        .push("bridge_fds_max", Cell::Int(r.fds))
        .push("bridge_threads_max", Cell::Int(r.threads))
        .push("cpu_window_s", Cell::Num(r.window_s, 1));
    row
}

// ---------------------------------------------------------------------------------------------
// Baselines: bare ZeroMQ drain and raw UDP sender
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Drain {
    msgs_per_s: f64,
    mb_per_s: f64,
    /// The receiving thread (thread CPU clock), % of one core.
    thread_cpu_pct: f64,
    /// The drain's own libzmq context threads (I/O + reaper), % of one core.
    io_cpu_pct: f64,
    /// Messages received ÷ data messages the simulator published.
    received: f64,
}

struct DrainMark {
    at: Instant,
    thread_ns: u64,
    io_ns: u64,
    msgs: u64,
    bytes: u64,
}

fn io_ns(tids: &[u32]) -> u64 {
    tids.iter().filter_map(|&t| own_thread_cpu_ns(t)).sum()
}

/// A plain SUB with the bridge's socket options on the same simulator stream as a full-rate
/// row, receiving every frame into one buffer and discarding it: the least any ZeroMQ client
/// spends on this stream. CPU = the receiving thread plus this SUB's own libzmq I/O thread (the
/// bridge's CPU includes its libzmq I/O thread too), over the stream minus the warm-up.
fn run_drain(channels: u32, block: &BlockSize, seconds: f64, hwm: i32) -> Result<Drain, String> {
    let sim_ctx = zmq::Context::new();
    let simulator = Simulator::start(
        SimConfig {
            bind_host: "127.0.0.1".into(),
            data_port: 0,
            heartbeat: false,
            channels: (0..channels).collect(),
            sample_rate: RATE,
            block: block.clone(),
            signal: sim::Signal::Pattern {
                wrap: sim::pattern_wrap(channels - 1),
            },
            duration: Some(Duration::from_secs_f64(seconds)),
            realtime: true,
            send_hwm: hwm,
            wait_for_subscriber: true,
            ..SimConfig::default()
        },
        &sim_ctx,
        None,
    )?;
    // The drain's libzmq threads: the ones that appear when its context makes its first socket.
    let before = own_tids();
    let dctx = zmq::Context::new();
    let sub = dctx.socket(zmq::SUB).map_err(|e| e.to_string())?;
    let io_tids: Vec<u32> = own_tids().difference(&before).copied().collect();
    sub.set_maxmsgsize(BRIDGE_MAXMSGSIZE)
        .and_then(|_| sub.set_rcvhwm(BRIDGE_RCVHWM))
        .and_then(|_| sub.set_rcvbuf(BRIDGE_RCVBUF))
        .and_then(|_| sub.set_linger(0))
        .and_then(|_| sub.set_subscribe(b""))
        .and_then(|_| sub.connect(&simulator.data_endpoint()))
        .map_err(|e| format!("drain socket: {e}"))?;
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let warm = warmup(seconds);
    let handle = std::thread::Builder::new()
        .name("drain".into())
        .spawn(move || -> Result<(DrainMark, DrainMark, u64), String> {
            let mut buf = vec![0u8; BRIDGE_MAXMSGSIZE as usize];
            let (mut msgs, mut bytes) = (0u64, 0u64);
            let mut first: Option<Instant> = None;
            let mut mark: Option<DrainMark> = None;
            let mut end: Option<DrainMark> = None;
            let give_up =
                Instant::now() + SUBSCRIBE_TIMEOUT + Duration::from_secs_f64(seconds * 2.0);
            loop {
                match sub.recv_into(&mut buf, zmq::DONTWAIT) {
                    Ok(n) => {
                        bytes += n as u64;
                        if !sub.get_rcvmore().unwrap_or(false) {
                            msgs += 1;
                        }
                        if mark.is_none() {
                            let now = Instant::now();
                            let f = *first.get_or_insert(now);
                            if now.duration_since(f) >= warm {
                                mark = Some(DrainMark {
                                    at: now,
                                    thread_ns: thread_cpu_ns(),
                                    io_ns: io_ns(&io_tids),
                                    msgs,
                                    bytes,
                                });
                            }
                        }
                    }
                    Err(zmq::Error::EAGAIN) => {
                        let now = Instant::now();
                        if d2.load(Ordering::Acquire) || now > give_up {
                            // The stream is over: close the window, then take what is queued.
                            let e = end.get_or_insert_with(|| DrainMark {
                                at: now,
                                thread_ns: thread_cpu_ns(),
                                io_ns: io_ns(&io_tids),
                                msgs,
                                bytes,
                            });
                            if now.duration_since(e.at) > Duration::from_millis(200) {
                                break;
                            }
                        }
                        let mut items = [sub.as_poll_item(zmq::POLLIN)];
                        let _ = zmq::poll(&mut items, 10);
                    }
                    Err(e) => return Err(format!("drain receive: {e}")),
                }
            }
            let end = end.ok_or("drain ended without a window")?;
            let mark = mark.ok_or("the drain received less than the warm-up")?;
            Ok((mark, end, msgs))
        })
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + SUBSCRIBE_TIMEOUT + Duration::from_secs_f64(seconds * 2.0);
    while !simulator.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Release);
    let res = handle
        .join()
        .map_err(|_| "drain thread panicked".to_string())?;
    let sim_stats = simulator.stop();
    let (a, b, total) = res?;
    let wall = b.at.duration_since(a.at).as_secs_f64();
    Ok(Drain {
        msgs_per_s: calc::ratio((b.msgs - a.msgs) as f64, wall),
        mb_per_s: calc::ratio((b.bytes - a.bytes) as f64 / 1e6, wall),
        thread_cpu_pct: calc::ratio(100.0 * (b.thread_ns - a.thread_ns) as f64 / 1e9, wall),
        io_cpu_pct: calc::ratio(100.0 * b.io_ns.saturating_sub(a.io_ns) as f64 / 1e9, wall),
        received: calc::ratio(total as f64, sim_stats.data_messages as f64),
    })
}

#[derive(Debug, Clone)]
struct UdpBaseline {
    bytes: usize,
    dgrams_per_s: f64,
    cpu_pct: f64,
    per_syscall: f64,
    delivered: f64,
    kernel_drops: u64,
    backend: &'static str,
}

/// Sends what sample mode sends for `channels` (30 000 equal datagrams/s, one burst per block)
/// with `UdpSender` (GSO on) to a verifying sink, and measures the sender thread's CPU.
fn run_udp_baseline(channels: u32, block: usize, seconds: f64) -> UdpBaseline {
    let wrap = sim::pattern_wrap(channels - 1);
    let sink = Sink::start(SinkConfig {
        bind: ([127, 0, 0, 1], 0).into(),
        recv_buffer_bytes: SINK_RCVBUF,
        base_address: "/data".into(),
        layout: Layout::Sample,
        channels: (0..channels).collect(),
        wrap,
        factor: 1,
        method: Method::Average,
        block_clock: None,
    })
    .expect("baseline sink");
    let template = rosc::encoder::encode(&rosc::OscPacket::Message(rosc::OscMessage {
        addr: "/data/sample".into(),
        args: vec![rosc::OscType::Float(0.0); channels as usize],
    }))
    .expect("encode template");
    let size = template.len();
    let head = size - 4 * channels as usize;
    let dest = sink.local_addr();
    let handle = std::thread::spawn(move || {
        let mut tx = UdpSender::connect(
            dest,
            &SenderOptions {
                use_gso: true,
                ..SenderOptions::default()
            },
        )
        .expect("baseline sender");
        let mut arena = Vec::with_capacity(block * size);
        for _ in 0..block {
            arena.extend_from_slice(&template);
        }
        let dgrams: Vec<(u32, u32)> = (0..block)
            .map(|i| ((i * size) as u32, size as u32))
            .collect();
        let blocks = (seconds * RATE / block as f64).round() as u64;
        let warm = (warmup(seconds).as_secs_f64() * RATE / block as f64).ceil() as u64;
        let t0 = Instant::now();
        let mut cpu0 = thread_cpu_ns();
        let mut wall0 = t0;
        let mut stats0 = tx.stats();
        for k in 0..blocks {
            let due = t0 + Duration::from_secs_f64(k as f64 * block as f64 / RATE);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if k == warm {
                cpu0 = thread_cpu_ns();
                wall0 = Instant::now();
                stats0 = tx.stats();
            }
            let j0 = k as i64 * block as i64;
            for r in 0..block {
                let j = (j0 + r as i64).rem_euclid(i64::from(wrap)) as u64;
                let base = r * size + head;
                for ch in 0..channels as usize {
                    let v = (ch as u64 * u64::from(wrap) + j) as f32;
                    arena[base + 4 * ch..base + 4 * ch + 4].copy_from_slice(&v.to_be_bytes());
                }
            }
            tx.send_batch(&arena, &dgrams);
        }
        // Close the last period before reading the clocks (the rate covers whole periods).
        let end = t0 + Duration::from_secs_f64(blocks as f64 * block as f64 / RATE);
        let now = Instant::now();
        if end > now {
            std::thread::sleep(end - now);
        }
        let cpu = thread_cpu_ns().saturating_sub(cpu0);
        let wall = wall0.elapsed().as_secs_f64();
        let s = tx.stats();
        let sent = s.datagrams_sent - stats0.datagrams_sent;
        let sys = s.syscalls - stats0.syscalls;
        (
            calc::ratio(100.0 * cpu as f64 / 1e9, wall),
            calc::ratio(sent as f64, wall),
            calc::ratio(sent as f64, sys as f64),
            blocks * block as u64,
            tx.backend(),
        )
    });
    let (cpu, rate, per_sys, total_rows, backend) = handle.join().expect("baseline thread");
    sink.wait_for_rows(total_rows, Duration::from_millis(500));
    let rep = sink.stop();
    UdpBaseline {
        bytes: size,
        dgrams_per_s: rate,
        cpu_pct: cpu,
        per_syscall: per_sys,
        delivered: calc::ratio(rep.clean_rows as f64, total_rows as f64),
        kernel_drops: rep.kernel_drops,
        backend,
    }
}

fn baseline_row(
    ctx: &Ctx,
    ch: u32,
    run: &str,
    seconds: f64,
    d: &Result<Drain, String>,
    u: &UdpBaseline,
) -> Row {
    let dv = |f: fn(&Drain) -> f64| d.as_ref().map_or(f64::NAN, f);
    let drain_total = dv(|d| d.thread_cpu_pct + d.io_cpu_pct);
    let mut row = Row::default();
    row.push("channels", Cell::Int(ch.into()))
        .push("run", Cell::text(run))
        .push("commit", Cell::text(&ctx.commit))
        .push("seconds", Cell::Num(seconds, 1))
        .push(
            "drain_error",
            Cell::text(d.as_ref().err().cloned().unwrap_or_default()),
        )
        .push("drain_msgs_per_s", Cell::Num(dv(|d| d.msgs_per_s), 1))
        .push("drain_mb_per_s", n2(dv(|d| d.mb_per_s)))
        .push("drain_thread_cpu_pct", n2(dv(|d| d.thread_cpu_pct)))
        .push("drain_zmq_io_cpu_pct", n2(dv(|d| d.io_cpu_pct)))
        .push("drain_cpu_pct", n2(drain_total))
        .push("drain_received", Cell::Num(dv(|d| d.received), 6))
        .push("udp_datagram_bytes", Cell::Int(u.bytes as u64))
        .push("udp_datagrams_per_s", Cell::Num(u.dgrams_per_s, 1))
        .push("udp_cpu_pct", n2(u.cpu_pct))
        .push("udp_datagrams_per_syscall", n3(u.per_syscall))
        .push("udp_delivered", Cell::Num(u.delivered, 6))
        .push("udp_kernel_drops", Cell::Int(u.kernel_drops))
        .push("udp_backend", Cell::text(u.backend))
        .push("drain_plus_udp_cpu_pct", n2(drain_total + u.cpu_pct));
    row
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

/// A CSV written row by row (the header with the first row), so a crashed run keeps its rows.
struct CsvOut {
    path: PathBuf,
    started: bool,
}

impl CsvOut {
    fn create(path: PathBuf) -> CsvOut {
        let _ = fs::remove_file(&path);
        CsvOut {
            path,
            started: false,
        }
    }
    fn write(&mut self, row: &Row) {
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.path.display()));
        if !self.started {
            let _ = writeln!(f, "{}", row.header());
            self.started = true;
        }
        let _ = writeln!(f, "{}", row.line());
    }
}

fn cmd_out(cmd: &str, args: &[&str], dir: &Path) -> Option<String> {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// `git rev-parse --short HEAD` of the workspace, plus `-dirty` when tracked or untracked files
/// outside results/ differ from HEAD (results/ is what a run writes).
fn head_commit() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let Some(head) = cmd_out("git", &["rev-parse", "--short", "HEAD"], root) else {
        return "unknown".into();
    };
    let dirty = cmd_out(
        "git",
        &["status", "--porcelain", "--", ".", ":(exclude)results"],
        root,
    )
    .is_none_or(|s| !s.is_empty());
    if dirty {
        format!("{head}-dirty")
    } else {
        head
    }
}

fn parse_block(s: &str) -> Result<(BlockSize, usize), String> {
    if s == "gui" {
        Ok((BlockSize::Gui, BlockSize::gui_block(RATE)))
    } else {
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok((BlockSize::Fixed(n), n)),
            _ => Err(format!("--block must be `gui` or a sample count, not {s}")),
        }
    }
}

fn fmt_dur(d: f64) -> String {
    let s = d.max(0.0).round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}

fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "-".into()
    }
}

fn f1(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "-".into()
    }
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

fn write_scaling(csv_path: &Path, out: &Path) -> Result<String, String> {
    let csv = fs::read_to_string(csv_path)
        .map_err(|e| format!("cannot read {}: {e}", csv_path.display()))?;
    let rep = table::scaling_report(&csv)?;
    fs::write(out, &rep).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(rep)
}

fn run_soak(ctx: &Ctx, o: &Opt, block: BlockSize, block_samples: usize) -> ExitCode {
    let secs = o.soak.unwrap_or(0.0);
    let sc = Scenario {
        channels: o.soak_channels.max(1),
        mode: Mode::Sample,
        factor: 1,
        batch: 1,
        pub_hwm: *o.pub_hwm.first().unwrap_or(&100_000),
        pinned: false,
        contend: false,
        realtime: 0,
        seconds: secs,
        block,
        block_samples,
    };
    let date = cmd_out("date", &["-u", "+%Y%m%d-%H%M%S"], Path::new(".")).unwrap_or_default();
    let dir = o.out.join("soak").join(format!("soak-{date}"));
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let path = o.out.join("soak").join(format!("soak-{date}.csv"));
    let file = fs::File::create(&path).expect("create soak csv");
    let mut log = SoakLog {
        file,
        every: Duration::from_secs(10),
        header_written: false,
    };
    let r = run_scenario(ctx, &sc, "soak", &dir, Some(&mut log));
    eprintln!();
    let mut m = CsvOut::create(o.out.join("soak").join(format!("soak-{date}-matrix.csv")));
    m.write(&matrix_row(ctx, &r, None));
    let mut x = CsvOut::create(o.out.join("soak").join(format!("soak-{date}-extra.csv")));
    x.write(&extra_row(ctx, &r));
    println!(
        "soak {secs} s at {} ch: delivered {} ({} of {}), kernel drops {}, e2e p50 {} p99 {} max {} ms, \
         bridge CPU {} %, RSS {} MB{} -> {}",
        sc.channels,
        f3(r.frac(r.rows_delivered)),
        r.rows_delivered,
        r.rows_expected,
        r.rep.kernel_drops,
        f3(r.e2e[0]),
        f3(r.e2e[2]),
        f3(r.e2e[4]),
        f1(r.cpu_pct),
        f1(r.rss_mb),
        if r.error.is_empty() { String::new() } else { format!(", error: {}", r.error) },
        path.display()
    );
    if r.error.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[allow(clippy::too_many_lines)]
fn main() -> ExitCode {
    let mut o = Opt::parse();
    if let Some(csv) = &o.fit {
        let out = csv.with_file_name("scaling.txt");
        return match write_scaling(csv, &out) {
            Ok(rep) => {
                print!("{rep}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if o.quick {
        o.channels = vec![16, 256];
        o.variants_at = vec![];
        o.faithful_at = vec![];
        o.pinned_at = vec![];
        o.seconds = 2.0;
        o.baseline_seconds = 2.0;
        o.repeat = 1;
    }
    let (block, block_samples) = match parse_block(&o.block) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut modes = Vec::new();
    for m in &o.modes {
        match m.as_str() {
            "sample" => modes.push(Mode::Sample),
            "batch" => modes.push(Mode::Batch),
            m => {
                eprintln!("error: unknown mode {m} (sample, batch)");
                return ExitCode::from(2);
            }
        }
    }
    if o.channels.contains(&0) || o.factors.contains(&0) || o.batch == 0 || o.repeat == 0 {
        eprintln!("error: channels, factors, --batch and --repeat must be > 0");
        return ExitCode::from(2);
    }
    if !(o.seconds.is_finite() && o.seconds >= 1.0) {
        eprintln!("error: --seconds must be at least 1");
        return ExitCode::from(2);
    }
    let bridge = o.bridge.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("openephys-zmq2osc")))
            .unwrap_or_else(|| PathBuf::from("openephys-zmq2osc"))
    });
    if !bridge.exists() {
        eprintln!(
            "error: bridge binary {} not found (cargo build --release -p openephys-zmq2osc)",
            bridge.display()
        );
        return ExitCode::from(2);
    }
    if let Err(e) = fs::create_dir_all(&o.out) {
        eprintln!("error: cannot create {}: {e}", o.out.display());
        return ExitCode::from(2);
    }
    let ctx = Ctx {
        bridge,
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: o.commit.clone().unwrap_or_else(head_commit),
        tck: clk_tck(),
        latency_skip_blocks: o.latency_skip_blocks,
    };
    if o.soak.is_some() {
        return run_soak(&ctx, &o, block, block_samples);
    }

    // The scenarios.
    let mk = |channels, mode, factor, pub_hwm, pinned, contend| Scenario {
        channels,
        mode,
        factor,
        batch: if mode == Mode::Batch { o.batch } else { 1 },
        pub_hwm,
        pinned,
        contend,
        realtime: 0,
        seconds: o.seconds,
        block: block.clone(),
        block_samples,
    };
    let mut scenarios = Vec::new();
    let mut skipped = Vec::new();
    for &ch in &o.channels {
        for &mode in &modes {
            for &f in &o.factors {
                let full = mode == Mode::Sample && f == 1;
                if !full && !o.variants_at.contains(&ch) {
                    continue;
                }
                for &hwm in &o.pub_hwm {
                    let sc = mk(ch, mode, f, hwm, false, false);
                    if mode == Mode::Batch && batch_bytes(ch as usize, o.batch as usize) > UDP_MAX {
                        skipped.push(format!(
                            "{}: a batch of {} rows x {ch} ch is {} B > {UDP_MAX} B (one UDP datagram); the bridge refuses it by design",
                            sc.name(),
                            o.batch,
                            batch_bytes(ch as usize, o.batch as usize)
                        ));
                        continue;
                    }
                    scenarios.push(sc);
                }
            }
        }
        let hwm = *o.pub_hwm.first().unwrap_or(&100_000);
        if o.faithful_at.contains(&ch) && !o.pub_hwm.contains(&1000) {
            scenarios.push(mk(ch, Mode::Sample, 1, 1000, false, false));
        }
        if o.pinned_at.contains(&ch) {
            scenarios.push(mk(ch, Mode::Sample, 1, hwm, true, false));
        }
        if o.contend && o.contend_at.contains(&ch) {
            scenarios.push(mk(ch, Mode::Sample, 1, hwm, false, true));
            // The same competing publisher, the bridge on the real-time scheduler
            // (`performance.realtime_priority`; the row's stderr says if it was refused).
            if o.realtime > 0 {
                let mut sc = mk(ch, Mode::Sample, 1, hwm, false, true);
                sc.realtime = o.realtime;
                scenarios.push(sc);
            }
        }
    }
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let mut baseline_channels: Vec<u32> = scenarios
        .iter()
        .filter(|s| s.full_rate())
        .map(|s| s.channels)
        .collect();
    baseline_channels.sort_unstable();
    baseline_channels.dedup();
    if o.baseline_seconds <= 0.0 {
        baseline_channels.clear();
    }
    let per_repeat: f64 = scenarios.iter().map(|s| s.seconds + 2.5).sum::<f64>()
        + baseline_channels.len() as f64 * (2.0 * o.baseline_seconds + 1.0);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    eprintln!(
        "stress: commit {}, {} scenarios + {} baseline channel counts, {} repeat(s), about {} in all",
        ctx.commit,
        scenarios.len(),
        baseline_channels.len(),
        o.repeat,
        fmt_dur(per_repeat * f64::from(o.repeat))
    );

    let t0 = Instant::now();
    let mut matrix = CsvOut::create(o.out.join("matrix.csv"));
    let mut extra = CsvOut::create(o.out.join("bridge-extra.csv"));
    let mut base_csv = CsvOut::create(o.out.join("baseline.csv"));
    let raw = o.out.join("raw");
    let _ = fs::remove_dir_all(&raw);
    // rows[scenario][repeat], base_rows[channel index][repeat]
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(); scenarios.len()];
    let mut results: Vec<Vec<RunResult>> = vec![Vec::new(); scenarios.len()];
    let mut base_rows: Vec<Vec<Row>> = vec![Vec::new(); baseline_channels.len()];
    let hwm = *o.pub_hwm.first().unwrap_or(&100_000);
    for k in 1..=o.repeat {
        let run = k.to_string();
        // Baselines of this repeat, per channel count: (drain CPU, raw UDP CPU).
        let mut base: Vec<(u32, (f64, f64))> = Vec::new();
        for (bi, &ch) in baseline_channels.iter().enumerate() {
            eprint!(
                "\r\x1b[2K[run {k}/{}] baselines {ch} ch  elapsed {}",
                o.repeat,
                fmt_dur(t0.elapsed().as_secs_f64())
            );
            let d = run_drain(ch, &block, o.baseline_seconds, hwm);
            let u = run_udp_baseline(ch, block_samples, o.baseline_seconds);
            let row = baseline_row(&ctx, ch, &run, o.baseline_seconds, &d, &u);
            if let Err(e) = &d {
                eprintln!("\ndrain {ch} ch run {run}: {e}");
            }
            base.push((
                ch,
                (row.num("drain_cpu_pct").unwrap_or(f64::NAN), u.cpu_pct),
            ));
            base_csv.write(&row);
            base_rows[bi].push(row);
        }
        for (i, sc) in scenarios.iter().enumerate() {
            let dir = raw.join(sc.name()).join(format!("r{k}"));
            let r = run_scenario(&ctx, sc, &run, &dir, None);
            let b = base.iter().find(|b| b.0 == sc.channels).map(|b| b.1);
            let row = matrix_row(&ctx, &r, b);
            matrix.write(&row);
            extra.write(&extra_row(&ctx, &r));
            eprintln!(
                "\r\x1b[2K[run {k}/{}] {}: delivered {}  e2e p50 {} p99 {} ms  CPU {} % (zmq_rx {}, osc_tx {}), ratio {}{}  elapsed {}",
                o.repeat,
                sc.name(),
                f3(r.frac(r.rows_delivered)),
                f3(r.e2e[0]),
                f3(r.e2e[2]),
                f1(r.cpu_pct),
                f1(r.rx_cpu_pct),
                f1(r.tx_cpu_pct),
                row.num("cpu_ratio").map_or("-".into(), f3),
                if r.error.is_empty() { String::new() } else { format!("  ERROR {}", r.error) },
                fmt_dur(t0.elapsed().as_secs_f64())
            );
            rows[i].push(row);
            results[i].push(r);
        }
    }

    // Median rows.
    let mut medians = Vec::new();
    for r in &rows {
        if let Some(m) = table::median_row(r, "run", "median") {
            if o.repeat > 1 {
                matrix.write(&m);
            }
            medians.push(m);
        }
    }
    let mut median_csv = CsvOut::create(o.out.join("matrix-median.csv"));
    for m in &medians {
        median_csv.write(m);
    }
    let mut base_medians = Vec::new();
    for r in &base_rows {
        if let Some(m) = table::median_row(r, "run", "median") {
            if o.repeat > 1 {
                base_csv.write(&m);
            }
            base_medians.push(m);
        }
    }

    // Plots and the scaling fit, from the median rows.
    let lat: Vec<(f64, [f64; 4])> = medians
        .iter()
        .zip(&scenarios)
        .filter(|(_, s)| s.full_rate() && s.pub_hwm != 1000 && !s.pinned && !s.contend)
        .map(|(m, s)| {
            let v = |c: &str| m.num(c).unwrap_or(f64::NAN);
            (
                f64::from(s.channels),
                [
                    v(E2E_COLS[0]),
                    v(E2E_COLS[1]),
                    v(E2E_COLS[2]),
                    v(E2E_COLS[3]),
                ],
            )
        })
        .collect();
    if let Err(e) = plot::plot_latency(&o.out.join("latency.svg"), &lat) {
        eprintln!("latency.svg not written: {e}");
    }
    let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (m, s) in medians.iter().zip(&scenarios) {
        let mut key = format!("{} F={}", s.mode.as_str(), s.factor);
        if s.pub_hwm == 1000 {
            key.push_str(" (PUB HWM 1000, faithful)");
        }
        if s.pinned {
            key.push_str(" pinned");
        }
        if s.realtime > 0 {
            let _ = write!(key, " realtime {}", s.realtime);
        }
        if s.contend {
            key.push_str(" contended");
        }
        let p = (
            f64::from(s.channels),
            m.num("delivered").unwrap_or(f64::NAN),
        );
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    if let Err(e) = plot::plot_delivered(&o.out.join("delivered.svg"), &groups) {
        eprintln!("delivered.svg not written: {e}");
    }
    let scaling = match write_scaling(&o.out.join("matrix-median.csv"), &o.out.join("scaling.txt"))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("scaling.txt not written: {e}");
            format!("(no fit: {e})\n")
        }
    };

    // Summary (also written as summary.md for the README).
    let mut md = String::new();
    let date = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"], Path::new(".")).unwrap_or_default();
    let uname = cmd_out("uname", &["-r"], Path::new(".")).unwrap_or_default();
    let ncpu = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        md,
        "# Results of commit {}\n\n{date}, {ncpu} CPUs, kernel {uname}, {} repeat(s) of {} s per row, \
         baselines {} s. Command:\n\n```sh\n{command}\n```\n",
        ctx.commit, o.repeat, o.seconds, o.baseline_seconds
    );
    let _ = writeln!(
        md,
        "## Medians (of {} runs)\n\n| scenario | delivered | clean | e2e p50 / p99 ms | bridge_added p99 ms | bridge CPU % | zmq_rx % | osc_tx % | drain + UDP % | ratio | RSS MB | errors |\n|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
        o.repeat
    );
    for (m, res) in medians.iter().zip(&results) {
        let v = |c: &str| m.num(c).unwrap_or(f64::NAN);
        let errs = res.iter().filter(|r| !r.error.is_empty()).count();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            m.get("scenario").map_or(String::new(), |c| match c {
                Cell::Text(t) => t.clone(),
                _ => String::new(),
            }),
            f3(v("delivered")),
            f3(v("clean")),
            f3(v("e2e_p50_ms")),
            f3(v("e2e_p99_ms")),
            f3(v("bridge_p99_ms")),
            f1(v("bridge_cpu_pct")),
            f1(v("zmq_rx_cpu_pct")),
            f1(v("osc_tx_cpu_pct")),
            f1(v("drain_cpu_pct") + v("udp_baseline_cpu_pct")),
            f3(v("cpu_ratio")),
            f1(v("bridge_rss_mb")),
            if errs == 0 {
                "0".to_string()
            } else {
                format!("{errs} of {}", res.len())
            }
        );
    }
    let _ = writeln!(
        md,
        "\n## Baselines (medians)\n\n| channels | drain thread % | drain libzmq I/O % | drain total % | raw UDP % | UDP dgrams/syscall |\n|---:|---:|---:|---:|---:|---:|"
    );
    for m in &base_medians {
        let v = |c: &str| m.num(c).unwrap_or(f64::NAN);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            v("channels"),
            f1(v("drain_thread_cpu_pct")),
            f1(v("drain_zmq_io_cpu_pct")),
            f1(v("drain_cpu_pct")),
            f1(v("udp_cpu_pct")),
            f1(v("udp_datagrams_per_syscall"))
        );
    }
    let _ = writeln!(md, "\n## Scaling\n\n```\n{}```", scaling);
    for s in &skipped {
        let _ = writeln!(md, "\nskipped {s}");
    }
    let _ = fs::write(o.out.join("summary.md"), &md);
    println!("{md}");
    let failed: usize = results
        .iter()
        .flatten()
        .filter(|r| !r.error.is_empty())
        .count();
    eprintln!(
        "done in {}: {} run(s), {failed} with errors (see the `error` column)",
        fmt_dur(t0.elapsed().as_secs_f64()),
        results.iter().map(Vec::len).sum::<usize>()
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(mode: Mode, factor: u32, pinned: bool) -> Scenario {
        Scenario {
            channels: 256,
            mode,
            factor,
            batch: if mode == Mode::Batch { 10 } else { 1 },
            pub_hwm: 100_000,
            pinned,
            contend: false,
            realtime: 0,
            seconds: 5.0,
            block: BlockSize::Gui,
            block_samples: 696,
        }
    }

    fn result(s: Scenario) -> RunResult {
        RunResult {
            sc: s,
            run: "1".into(),
            exit: 0,
            error: String::new(),
            counters: Some(BridgeCounters {
                sent: 150_000,
                syscalls: 2_500,
                upstream_missing_msgs: 3,
                ..BridgeCounters::default()
            }),
            final_rss_mb: 50.0,
            samples_published: 150_336,
            rows_expected: 150_336,
            rows_delivered: 149_640,
            datagrams_per_s: 30_000.0,
            rep: SinkReport::default(),
            e2e: [1.0, 2.0, 3.0, 4.0, 5.0],
            bridge_added: [0.5, 0.6, 0.7, 0.8, 0.9],
            cpu_pct: 9.0,
            rx_cpu_pct: 3.0,
            tx_cpu_pct: 4.0,
            rss_mb: 51.0,
            fds: 28,
            threads: 6,
            window_s: 3.5,
            sim_blocks: 216,
            sim_data_msgs: 55_296,
            sim_late_blocks: 0,
            sim_max_late_ms: 0.1,
            rcvbuf: 8 << 20,
        }
    }

    fn ctx() -> Ctx {
        Ctx {
            bridge: PathBuf::from("b"),
            version: "0.1.0".into(),
            commit: "abc1234-dirty".into(),
            tck: 100.0,
            latency_skip_blocks: 2,
        }
    }

    #[test]
    fn matrix_columns() {
        let r = result(sc(Mode::Sample, 1, true));
        let row = matrix_row(&ctx(), &r, Some((2.0, 1.0)));
        let header = row.header();
        assert_eq!(
            table::split_csv(&row.line()).len(),
            table::split_csv(&header).len()
        );
        for c in [
            "scenario",
            "run",
            "commit",
            "pinned",
            "contend",
            "bridge_exit",
            "error",
            "rows_expected",
            "delivered",
            "zmq_rx_cpu_pct",
            "osc_tx_cpu_pct",
            "drain_cpu_pct",
            "udp_baseline_cpu_pct",
            "cpu_ratio",
        ] {
            assert!(header.split(',').any(|h| h == c), "missing column {c}");
        }
        assert_eq!(row.get("commit"), Some(&Cell::text("abc1234-dirty")));
        assert_eq!(row.get("pinned"), Some(&Cell::text("yes")));
        assert_eq!(
            row.get("scenario"),
            Some(&Cell::text("256ch-sample-F1-hwm100000-pin"))
        );
        // Every published row is expected: 696 missing rows are a loss, not excused.
        assert_eq!(row.num("lost"), Some(696.0));
        assert!((row.num("delivered").unwrap() - 149_640.0 / 150_336.0).abs() < 1e-6);
        assert_eq!(row.num("cpu_ratio"), Some(3.0));
        assert_eq!(row.num("datagrams_per_syscall"), Some(60.0));
        assert_eq!(row.num("upstream_missing_msgs"), Some(3.0));
        // The baselines send what sample F = 1 sends: no ratio for other rows.
        let b = matrix_row(
            &ctx(),
            &result(sc(Mode::Batch, 30, false)),
            Some((2.0, 1.0)),
        );
        assert_eq!(b.num("cpu_ratio"), None);
        assert_eq!(b.num("drain_cpu_pct"), None);
        assert_eq!(b.header(), header);
        // A failed run: counters empty, not zero.
        let mut f = result(sc(Mode::Sample, 1, false));
        f.counters = None;
        f.exit = 2;
        f.error =
            "the bridge exited at start-up with code 2; stderr: error: unexpected argument '--pin'"
                .into();
        let fr = matrix_row(&ctx(), &f, None);
        assert_eq!(fr.num("upstream_missing_msgs"), None);
        assert_eq!(fr.header(), header);
        assert_eq!(
            table::split_csv(&fr.line()).len(),
            header.split(',').count()
        );
    }

    #[test]
    fn bridge_command_line() {
        let a = bridge_args(
            &sc(Mode::Sample, 1, true),
            Path::new("c.json"),
            Path::new("d"),
            66.0,
        );
        assert!(a.contains(&"--pin".to_string()) && !a.contains(&"--no-pin".to_string()));
        let i = a.iter().position(|x| x == "--stats-json").unwrap();
        assert_eq!(a[i + 1], "d/stats.jsonl");
        let i = a.iter().position(|x| x == "--stats-interval").unwrap();
        assert!(
            a[i + 1].parse::<f64>().unwrap() > 66.0,
            "JSON stats must be on"
        );
        let a = bridge_args(
            &sc(Mode::Sample, 1, false),
            Path::new("c.json"),
            Path::new("d"),
            66.0,
        );
        assert!(a.contains(&"--no-pin".to_string()));
        assert!(bridge_config(&sc(Mode::Sample, 1, true), 1, 2).contains("\"pin_threads\": true"));
    }

    /// A bridge that exits at start-up (here: a script rejecting its flags, as a bridge without
    /// `--pin` does) ends the row at once with its exit code and stderr, no hang, no counters.
    #[test]
    fn bridge_failing_at_start_up_is_reported() {
        let dir = std::env::temp_dir().join(format!("stress-startup-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let script = dir.join("fake-bridge.sh");
        fs::write(
            &script,
            "#!/bin/sh\necho \"error: unexpected argument '--pin' found\" >&2\nexit 2\n",
        )
        .unwrap();
        let mut perm = fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        fs::set_permissions(&script, perm).unwrap();
        let mut c = ctx();
        c.bridge = script;
        let mut s = sc(Mode::Sample, 1, true);
        s.channels = 8;
        let t0 = Instant::now();
        let r = run_scenario(&c, &s, "1", &dir.join("run"), None);
        assert!(
            t0.elapsed() < SUBSCRIBE_TIMEOUT,
            "waited for the subscribe timeout"
        );
        assert_eq!(r.exit, 2);
        assert!(
            r.error
                .contains("the bridge exited at start-up with code 2")
                && r.error.contains("unexpected argument '--pin'"),
            "{}",
            r.error
        );
        assert!(r.counters.is_none());
        assert_eq!(r.rows_expected, 0);
        let row = matrix_row(&c, &r, None);
        assert_eq!(row.num("delivered"), None);
        let _ = fs::remove_dir_all(&dir);
    }

    /// The drain receives every message of a short real stream on loopback and measures a CPU.
    #[test]
    fn drain_receives_the_whole_stream() {
        let d = run_drain(8, &BlockSize::Fixed(300), 1.5, 100_000).unwrap();
        assert_eq!(d.received, 1.0);
        assert!(d.thread_cpu_pct.is_finite() && d.thread_cpu_pct >= 0.0);
        assert!(d.io_cpu_pct.is_finite() && d.io_cpu_pct >= 0.0);
        assert!(d.msgs_per_s > 0.0 && d.mb_per_s > 0.0);
    }

    #[test]
    fn extra_and_baseline_columns() {
        let r = result(sc(Mode::Sample, 1, false));
        let e = extra_row(&ctx(), &r);
        assert_eq!(
            table::split_csv(&e.line()).len(),
            e.header().split(',').count()
        );
        let u = UdpBaseline {
            bytes: 1044,
            dgrams_per_s: 30_000.0,
            cpu_pct: 3.0,
            per_syscall: 58.0,
            delivered: 1.0,
            kernel_drops: 0,
            backend: "gso",
        };
        let d = Ok(Drain {
            msgs_per_s: 11_000.0,
            mb_per_s: 31.0,
            thread_cpu_pct: 1.5,
            io_cpu_pct: 2.5,
            received: 1.0,
        });
        let b = baseline_row(&ctx(), 256, "1", 4.0, &d, &u);
        assert_eq!(b.num("drain_cpu_pct"), Some(4.0));
        assert_eq!(b.num("drain_plus_udp_cpu_pct"), Some(7.0));
        let b2 = baseline_row(&ctx(), 256, "2", 4.0, &Err("x, y".into()), &u);
        assert_eq!(b2.header(), b.header());
        assert_eq!(b2.num("drain_cpu_pct"), None);
        assert_eq!(
            table::split_csv(&b2.line()).len(),
            b.header().split(',').count()
        );
    }
}
