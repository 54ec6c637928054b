//! `stress`: runs the bridge against the in-process simulator and verifying sink over a matrix of
//! channel counts, output modes and downsampling factors, and records delivery, end-to-end latency,
//! the bridge's CPU and memory, and a raw-UDP baseline.
//!
//! For each scenario, the simulator ([`Simulator`]) and the sink ([`Sink`]) run in this process and
//! share one [`BlockClock`], so end-to-end latency (simulator send of a block's last message →
//! datagram received) uses one monotonic clock. The bridge runs as a child process (the
//! `openephys-zmq2osc` binary next to this one) on fresh ports, and this process samples its CPU
//! time, RSS, fd count and thread count from `/proc` once a second.
//!
//! Outputs (under `--out`): `matrix.csv` (one row per run, appended), `latency-<scenario>.csv`
//! (end-to-end distribution), `bridge-hist-<scenario>.csv` (the bridge's own histograms),
//! `bridge-report-<scenario>.txt` (its stdout report), `bridge-extra.csv` (loss breakdown),
//! `baseline.csv` (raw UDP sender cost), `latency.svg`, `delivered.svg`, and with `--soak`,
//! `soak-<date>.csv`.

use clap::Parser;
use hdrhistogram::Histogram;
use oe_testkit::sim::{self, BlockSize, SimConfig, Simulator};
use oe_testkit::sink::{BlockClock, Layout, Method, Sink, SinkConfig, SinkReport};
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zmq2osc::net::{SenderOptions, UdpSender};

/// Largest UDP payload of an IPv4 datagram.
const UDP_MAX: usize = 65_507;
/// Sample rate of every run.
const RATE: f64 = 30_000.0;
/// Extra seconds the bridge runs beyond the simulator (connect time + tail).
const BRIDGE_EXTRA_S: f64 = 3.0;
/// Requested sink `SO_RCVBUF` (the same as the bridge's `--verify`).
const SINK_RCVBUF: usize = 8 << 20;
/// Part of the streaming time at the start excluded from the CPU figure.
const CPU_WARMUP: Duration = Duration::from_millis(1500);

const MATRIX_HEADER: &str = "scenario,version,commit,channels,mode,factor,batch,pub_hwm,seconds,\
datagrams_per_s,rows_expected,rows_delivered,delivered,clean,lost,kernel_drops,\
upstream_missing_msgs,blocks_incomplete,e2e_p50_ms,e2e_p90_ms,e2e_p99_ms,e2e_p999_ms,e2e_max_ms,\
bridge_p50_ms,bridge_p90_ms,bridge_p99_ms,bridge_p999_ms,bridge_max_ms,bridge_cpu_pct,\
bridge_rss_mb,datagrams_per_syscall,zmq_rx_cpu_pct,osc_tx_cpu_pct";

const EXTRA_HEADER: &str = "scenario,bridge_exit,sim_blocks,sim_data_msgs,sim_late_blocks,\
sim_max_late_ms,blocks_emitted,blocks_learning,blocks_incomplete_bridge,\
blocks_incomplete_upstream,dropped_newest,dropped_oldest,send_dropped,oversize,datagrams_sent,\
syscalls,gso_batches,sink_lost_in_sequence,duplicated,reordered,torn,bad_values,discontinuities,\
sink_rcvbuf,bridge_fds_max,bridge_threads_max,steady_window_s";

const BASELINE_HEADER: &str = "channels,datagram_bytes,block_samples,datagrams_per_s,seconds,\
baseline_cpu_pct,datagrams_per_syscall,delivered,kernel_drops,backend";

#[derive(Debug, Parser)]
#[command(
    name = "stress",
    about = "Stress-test matrix for openephys-zmq2osc (simulator + sink in-process, bridge as a child)"
)]
struct Opt {
    /// Channel counts (0..N) to run.
    #[arg(long, value_delimiter = ',', default_values_t = vec![16u32, 64, 256, 512, 1024, 2048])]
    channels: Vec<u32>,
    /// Output modes: sample, batch.
    #[arg(long, value_delimiter = ',', default_values_t = vec!["sample".to_string(), "batch".to_string()])]
    modes: Vec<String>,
    /// Downsampling factors F.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1u32, 30])]
    factors: Vec<u32>,
    /// Rows per batch in batch mode.
    #[arg(long, default_value_t = 10)]
    batch: u32,
    /// Simulator streaming time per scenario (s).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Block shape: `gui` (constant int(1024·fs/44100) = 696 at 30 kHz) or a fixed sample count.
    #[arg(long, default_value = "gui")]
    block: String,
    /// Simulator PUB high-water mark(s). 1000 = the plugin's libzmq default (faithful).
    #[arg(long, value_delimiter = ',', default_values_t = vec![100_000i32])]
    pub_hwm: Vec<i32>,
    /// Channel counts that also get a faithful row (PUB HWM 1000, sample mode, F = 1).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1024u32])]
    faithful_at: Vec<u32>,
    /// Raw UDP baseline time per channel count (s); 0 skips the baseline.
    #[arg(long, default_value_t = 5.0)]
    baseline_seconds: f64,
    /// Output directory.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// Smoke test: 16 and 256 channels, sample and batch, F = 1, 2 s, 1 s baseline.
    #[arg(long)]
    quick: bool,
    /// Instead of the matrix: one long run (256 ch, sample, F = 1) of this many seconds,
    /// sampled every 10 s into `soak-<date>.csv`.
    #[arg(long, value_name = "SECONDS")]
    soak: Option<f64>,
    /// Channels of the soak run.
    #[arg(long, default_value_t = 256)]
    soak_channels: u32,
    /// Blocks at the start of each run whose rows get no end-to-end latency sample (the bridge
    /// drops block 0 while learning the channel set and emits block 1 only when block 2 starts).
    #[arg(long, default_value_t = 2)]
    latency_skip_blocks: u64,
    /// Commit recorded in matrix.csv (default: `git rev-parse --short HEAD` in the crate dir).
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
        s
    }
    fn label(&self) -> String {
        format!(
            "{}ch {} F={}{} hwm={}",
            self.channels,
            self.mode.as_str(),
            self.factor,
            if self.mode == Mode::Batch {
                format!(" b={}", self.batch)
            } else {
                String::new()
            },
            self.pub_hwm
        )
    }
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
// /proc sampling
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct ProcSample {
    at: Instant,
    cpu_ticks: u64,
    /// CPU ticks of the `zmq_rx` thread and of all `osc_tx_*` threads.
    rx_ticks: u64,
    tx_ticks: u64,
    rss_kb: u64,
    fds: u64,
    threads: u64,
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

fn proc_sample(pid: u32) -> Option<ProcSample> {
    let at = Instant::now();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: field 3 (state) is f[0]; utime (14) is f[11], stime (15) is f[12].
    let cpu_ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
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
            let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            if comm == "zmq_rx" {
                rx_ticks += ticks;
            } else if comm.starts_with("osc_tx_") {
                tx_ticks += ticks;
            }
        }
    }
    Some(ProcSample {
        at,
        cpu_ticks,
        rx_ticks,
        tx_ticks,
        rss_kb: field("VmRSS:"),
        fds,
        threads: field("Threads:"),
    })
}

/// CPU of the samples between `from` and `to` as % of one core (first sample at or after `from`,
/// last at or before `to`); falls back to the whole list when the window holds < 2 samples.
fn cpu_pct(samples: &[ProcSample], from: Instant, to: Instant, tck: f64) -> (f64, f64) {
    cpu_pct_of(samples, from, to, tck, |s| s.cpu_ticks)
}

/// Like [`cpu_pct`] for the ticks `pick` selects (a thread group).
fn cpu_pct_of(
    samples: &[ProcSample],
    from: Instant,
    to: Instant,
    tck: f64,
    pick: fn(&ProcSample) -> u64,
) -> (f64, f64) {
    let win: Vec<&ProcSample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .collect();
    let (a, b) = if win.len() >= 2 {
        (win[0], win[win.len() - 1])
    } else if samples.len() >= 2 {
        (&samples[0], &samples[samples.len() - 1])
    } else {
        return (f64::NAN, 0.0);
    };
    let dt = b.at.duration_since(a.at).as_secs_f64();
    if dt <= 0.0 {
        return (f64::NAN, 0.0);
    }
    let cpu = (pick(b).saturating_sub(pick(a))) as f64 / tck;
    (100.0 * cpu / dt, dt)
}

// ---------------------------------------------------------------------------------------------
// Bridge report parsing
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct BridgeReport {
    datagrams_sent: u64,
    syscalls: u64,
    gso_batches: u64,
    send_dropped: u64,
    oversize: u64,
    blocks_emitted: u64,
    blocks_incomplete: u64,
    blocks_incomplete_upstream: u64,
    blocks_learning: u64,
    upstream_missing_msgs: u64,
    dropped_newest: u64,
    dropped_oldest: u64,
    /// count, p50, p90, p99, p99.9, max (ms) of `bridge_added`.
    bridge_added: Option<[f64; 6]>,
}

/// The number following the token sequence `key` in `line` (first occurrence).
fn after(line: &str, key: &[&str]) -> Option<u64> {
    let t: Vec<&str> = line.split_whitespace().collect();
    (0..t.len().saturating_sub(key.len())).find_map(|i| {
        if t[i..i + key.len()] == *key {
            t[i + key.len()]
                .trim_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        } else {
            None
        }
    })
}

fn parse_bridge(stdout: &str) -> BridgeReport {
    let mut r = BridgeReport::default();
    for line in stdout.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        match first {
            "zmq" => {
                r.upstream_missing_msgs = after(line, &["upstream", "missing", "msgs"]).unwrap_or(0)
            }
            "blocks" => {
                r.blocks_emitted = after(line, &["emitted"]).unwrap_or(0);
                r.blocks_incomplete = after(line, &["incomplete"]).unwrap_or(0);
                r.blocks_incomplete_upstream = after(line, &["loss)"]).unwrap_or(0);
                r.blocks_learning = after(line, &["learning", "channels"]).unwrap_or(0);
            }
            "queue" => {
                r.dropped_newest = after(line, &["dropped", "newest"]).unwrap_or(0);
                r.dropped_oldest = after(line, &["dropped", "oldest"]).unwrap_or(0);
            }
            "osc" => {
                // "osc [name] … | queue: dropped newest N oldest N, …" (one line per output).
                r.dropped_newest = after(line, &["dropped", "newest"]).unwrap_or(0);
                r.dropped_oldest = after(line, &["oldest"]).unwrap_or(0);
                r.datagrams_sent = after(line, &["sent"]).unwrap_or(0);
                r.syscalls = after(line, &["syscalls"]).unwrap_or(0);
                r.gso_batches = after(line, &["gso", "batches"]).unwrap_or(0);
                r.send_dropped = after(line, &["send-dropped"]).unwrap_or(0);
                r.oversize = after(line, &["oversize", "refused"]).unwrap_or(0);
            }
            "bridge_added" => {
                let v: Vec<f64> = line
                    .split_whitespace()
                    .skip(1)
                    .map(|x| x.parse::<f64>().unwrap_or(f64::NAN))
                    .collect();
                if v.len() == 6 {
                    r.bridge_added = Some([v[0], v[1], v[2], v[3], v[4], v[5]]);
                }
            }
            _ => {}
        }
    }
    r
}

// ---------------------------------------------------------------------------------------------
// One scenario
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RunResult {
    sc: Scenario,
    datagrams_per_s: f64,
    rows_expected: u64,
    rows_delivered: u64,
    delivered: f64,
    clean: f64,
    lost: u64,
    kernel_drops: u64,
    bridge: BridgeReport,
    e2e: [f64; 5],
    cpu_pct: f64,
    /// CPU of the `zmq_rx` thread (ZMQ receive + assembly) and of the `osc_tx_*` threads
    /// (downsample + encode + send), % of one core.
    rx_cpu_pct: f64,
    tx_cpu_pct: f64,
    rss_mb: f64,
    dgrams_per_syscall: f64,
    extra: String,
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
}

struct Ctx {
    bridge: PathBuf,
    out: PathBuf,
    tmp: PathBuf,
    version: String,
    commit: String,
    tck: f64,
    latency_skip_blocks: u64,
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
  "performance": {{ "max_channels": {maxch}, "pin_threads": false }}
}}
"#,
        f = sc.factor,
        maxch = sc.channels.max(1024),
    )
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn fmt_dur(d: f64) -> String {
    let s = d.max(0.0).round() as u64;
    format!("{}m{:02}s", s / 60, s % 60)
}

struct Progress {
    start: Instant,
    total: usize,
    /// Estimated seconds of every step.
    est: Vec<f64>,
}

impl Progress {
    fn line(&self, i: usize, label: &str, within: f64, step_len: f64) {
        let elapsed = self.start.elapsed().as_secs_f64();
        let remaining: f64 =
            self.est[i + 1..].iter().sum::<f64>() + (self.est[i] - within).max(0.0);
        eprint!(
            "\r\x1b[2K[{}/{}] {label}  {:.0}/{:.0} s  elapsed {}  ETA {}",
            i + 1,
            self.total,
            within,
            step_len,
            fmt_dur(elapsed),
            fmt_dur(remaining)
        );
        let _ = std::io::stderr().flush();
    }
}

fn spawn_bridge(ctx: &Ctx, cfg: &Path, seconds: f64, hist: &Path, errlog: &Path) -> Child {
    let err = fs::File::create(errlog).expect("cannot create bridge stderr log");
    Command::new(&ctx.bridge)
        .arg("-c")
        .arg(cfg)
        .arg("--seconds")
        .arg(format!("{seconds}"))
        .arg("--stats-interval")
        .arg("0")
        .arg("--histogram-csv")
        .arg(hist)
        .arg("--no-pin")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", ctx.bridge.display()))
}

#[allow(clippy::too_many_lines)]
fn run_scenario(
    ctx: &Ctx,
    sc: &Scenario,
    progress: &Progress,
    step: usize,
    mut soak: Option<&mut SoakLog>,
) -> RunResult {
    let name = sc.name();
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
        // Rows of blocks not recorded in the clock get no latency sample (start-up excluded).
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

    let cfg_path = ctx.tmp.join(format!("{name}.json"));
    fs::write(
        &cfg_path,
        bridge_config(sc, simulator.data_port(), sink.local_addr().port()),
    )
    .expect("write bridge config");
    let hist = ctx.out.join(format!("bridge-hist-{name}.csv"));
    let errlog = ctx.tmp.join(format!("{name}.stderr"));
    let bridge_seconds = sc.seconds + BRIDGE_EXTRA_S;
    let mut child = spawn_bridge(ctx, &cfg_path, bridge_seconds, &hist, &errlog);
    let pid = child.id();
    let mut stdout_pipe = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout_pipe.read_to_string(&mut s);
        s
    });

    // Sample /proc once a second until the bridge exits.
    let t_start = Instant::now();
    let hard_deadline = t_start + Duration::from_secs_f64(bridge_seconds + 20.0);
    let mut samples: Vec<ProcSample> = Vec::new();
    let mut next = t_start;
    let mut soak_prev: Option<(Instant, u64, SinkReport)> = None;
    let mut next_soak = t_start + soak.as_ref().map_or(Duration::MAX / 4, |s| s.every);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait on bridge") {
            break Some(st);
        }
        let now = Instant::now();
        if now >= hard_deadline {
            eprintln!("\nbridge did not exit in time; killing pid {pid}");
            let _ = child.kill();
            break child.wait().ok();
        }
        if now >= next {
            if let Some(s) = proc_sample(pid) {
                samples.push(s);
            }
            next += Duration::from_secs(1);
            progress.line(
                step,
                &sc.label(),
                t_start.elapsed().as_secs_f64(),
                sc.seconds,
            );
        }
        if let Some(log) = soak.as_deref_mut() {
            if now >= next_soak {
                next_soak += log.every;
                let rep = sink.report();
                let last = *samples.last().expect("at least one /proc sample");
                write_soak_row(
                    log,
                    t_start,
                    &obs,
                    sc,
                    &rep,
                    last,
                    soak_prev.as_ref(),
                    ctx.tck,
                );
                soak_prev = Some((last.at, last.cpu_ticks, rep));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = reader.join().unwrap_or_default();
    let sim_stats = if simulator.is_finished() {
        simulator.wait()
    } else {
        simulator.stop()
    };
    let samples_sent = obs.samples.load(Ordering::Relaxed);
    sink.wait_for_rows(u64::MAX, Duration::from_millis(300));
    let rcvbuf = sink.effective_recv_buffer();
    let rep = sink.stop();
    drop(zctx);

    let br = parse_bridge(&stdout);
    let _ = fs::write(
        ctx.out.join(format!("bridge-report-{name}.txt")),
        format!(
            "# {name}: {} -c <config> --seconds {bridge_seconds} --stats-interval 0 --histogram-csv {} --no-pin\n# config:\n{}\n{stdout}",
            ctx.bridge.display(),
            hist.display(),
            fs::read_to_string(&cfg_path).unwrap_or_default()
        ),
    );
    let exit = status.and_then(|s| s.code()).unwrap_or(-1);
    if exit != 0 || stdout.is_empty() {
        let err = fs::read_to_string(&errlog).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(10).collect();
        eprintln!(
            "\n{name}: bridge exit {exit}; stderr tail:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    // Delivery. The bridge spends the first block learning the channel set (by design; reported as
    // `blocks while learning channels`), so expected rows start at the second block.
    let first_block = sc.block_samples as u64;
    let learn = br.blocks_learning.max(1) * first_block;
    let rows_expected = samples_sent.saturating_sub(learn) / u64::from(sc.factor);
    let rows_delivered = rep.rows.saturating_sub(rep.duplicated_rows);
    let frac = |n: u64| {
        if rows_expected > 0 {
            n as f64 / rows_expected as f64
        } else {
            0.0
        }
    };
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
        write_latency_csv(&ctx.out.join(format!("latency-{name}.csv")), h);
    }
    let first = *obs.first.lock().unwrap_or_else(|p| p.into_inner());
    let last = *obs.last.lock().unwrap_or_else(|p| p.into_inner());
    let stream_s = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).as_secs_f64() + sc.block_samples as f64 / RATE,
        _ => sc.seconds,
    };
    let (from, to) = match (first, last) {
        (Some(a), Some(b)) => (a + CPU_WARMUP, b),
        _ => (t_start, Instant::now()),
    };
    let (cpu, window) = cpu_pct(&samples, from, to, ctx.tck);
    let (rx_cpu, _) = cpu_pct_of(&samples, from, to, ctx.tck, |s| s.rx_ticks);
    let (tx_cpu, _) = cpu_pct_of(&samples, from, to, ctx.tck, |s| s.tx_ticks);
    let rss_kb = samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let threads = samples.iter().map(|s| s.threads).max().unwrap_or(0);
    let extra = format!(
        "{name},{exit},{},{},{},{:.2},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{fds},{threads},{window:.1}",
        sim_stats.blocks,
        sim_stats.data_messages,
        sim_stats.late_blocks,
        sim_stats.max_lateness.as_secs_f64() * 1e3,
        br.blocks_emitted,
        br.blocks_learning,
        br.blocks_incomplete,
        br.blocks_incomplete_upstream,
        br.dropped_newest,
        br.dropped_oldest,
        br.send_dropped,
        br.oversize,
        br.datagrams_sent,
        br.syscalls,
        br.gso_batches,
        rep.lost_rows,
        rep.duplicated_rows,
        rep.reordered_rows,
        rep.torn_rows,
        rep.bad_values,
        rep.discontinuities,
        rcvbuf,
    );
    RunResult {
        sc: sc.clone(),
        datagrams_per_s: br.datagrams_sent as f64 / stream_s,
        rows_expected,
        rows_delivered,
        delivered: frac(rows_delivered),
        clean: frac(rep.clean_rows),
        lost: rows_expected.saturating_sub(rows_delivered),
        kernel_drops: rep.kernel_drops,
        e2e,
        cpu_pct: cpu,
        rx_cpu_pct: rx_cpu,
        tx_cpu_pct: tx_cpu,
        rss_mb: rss_kb as f64 / 1024.0,
        dgrams_per_syscall: if br.syscalls > 0 {
            br.datagrams_sent as f64 / br.syscalls as f64
        } else {
            f64::NAN
        },
        bridge: br,
        extra,
    }
}

#[allow(clippy::too_many_arguments)]
fn write_soak_row(
    log: &mut SoakLog,
    t0: Instant,
    obs: &ObserverState,
    sc: &Scenario,
    rep: &SinkReport,
    cur: ProcSample,
    prev: Option<&(Instant, u64, SinkReport)>,
    tck: f64,
) {
    let samples = obs.samples.load(Ordering::Relaxed);
    let rows_sent = samples.saturating_sub(sc.block_samples as u64) / u64::from(sc.factor);
    let (cpu, interval) = match prev {
        Some((at, ticks, prev_rep)) => {
            let dt = cur.at.duration_since(*at).as_secs_f64();
            let cpu = 100.0 * cur.cpu_ticks.saturating_sub(*ticks) as f64 / tck / dt.max(1e-9);
            let interval = match (&rep.latency, &prev_rep.latency) {
                (Some(a), Some(b)) => {
                    let mut d = a.clone();
                    if d.subtract(b).is_ok() {
                        Some(d)
                    } else {
                        None
                    }
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
    let _ = writeln!(
        log.file,
        "{:.1},{:.2},{},{},{:.2},{},{},{},{},{},{:.3},{:.3},{:.3},{:.3}",
        t0.elapsed().as_secs_f64(),
        cur.rss_kb as f64 / 1024.0,
        cur.fds,
        cur.threads,
        cpu,
        rows_sent,
        rep.rows.saturating_sub(rep.duplicated_rows),
        rep.lost_rows,
        rep.kernel_drops,
        rep.torn_rows + rep.bad_values,
        lat(&interval, 0.5),
        lat(&interval, 0.99),
        lat(&interval, 0.999),
        lat(&interval, 1.0),
    );
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

fn f3(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        String::new()
    }
}

fn matrix_row(ctx: &Ctx, r: &RunResult, scenario_prefix: &str) -> String {
    let b = r.bridge.bridge_added.unwrap_or([f64::NAN; 6]);
    format!(
        "{scenario_prefix}{},{},{},{},{},{},{},{},{},{:.1},{},{},{:.6},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.1},{},{:.2},{:.2}",
        r.sc.name(),
        ctx.version,
        ctx.commit,
        r.sc.channels,
        r.sc.mode.as_str(),
        r.sc.factor,
        if r.sc.mode == Mode::Batch { r.sc.batch } else { 1 },
        r.sc.pub_hwm,
        r.sc.seconds,
        r.datagrams_per_s,
        r.rows_expected,
        r.rows_delivered,
        r.delivered,
        r.clean,
        r.lost,
        r.kernel_drops,
        r.bridge.upstream_missing_msgs,
        r.bridge.blocks_incomplete + r.bridge.blocks_incomplete_upstream,
        f3(r.e2e[0]),
        f3(r.e2e[1]),
        f3(r.e2e[2]),
        f3(r.e2e[3]),
        f3(r.e2e[4]),
        f3(b[1]),
        f3(b[2]),
        f3(b[3]),
        f3(b[4]),
        f3(b[5]),
        if r.cpu_pct.is_finite() { format!("{:.2}", r.cpu_pct) } else { String::new() },
        r.rss_mb,
        f3(r.dgrams_per_syscall),
        r.rx_cpu_pct,
        r.tx_cpu_pct,
    )
}

fn append_line(path: &Path, header: &str, line: &str) {
    let new = !path.exists();
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    if new {
        let _ = writeln!(f, "{header}");
    }
    let _ = writeln!(f, "{line}");
}

// ---------------------------------------------------------------------------------------------
// Raw UDP baseline
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Baseline {
    channels: u32,
    bytes: usize,
    dgrams_per_s: f64,
    cpu_pct: f64,
    per_syscall: f64,
    delivered: f64,
    kernel_drops: u64,
    backend: &'static str,
    seconds: f64,
    block: usize,
}

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec owned by this frame; CLOCK_THREAD_CPUTIME_ID is
    // supported on Linux, and clock_gettime writes only into `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sends what sample mode sends for `channels` (30 000 equal datagrams/s, one burst per block)
/// with `UdpSender` (GSO on) to a verifying sink, and measures the sender thread's CPU.
fn run_baseline(channels: u32, block: usize, seconds: f64) -> Baseline {
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
    let stop = Arc::new(AtomicBool::new(false));
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
        let warm = (0.5 * RATE / block as f64).ceil() as u64;
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
        stop.store(true, Ordering::Release);
        (
            100.0 * cpu as f64 / 1e9 / wall,
            sent as f64 / wall,
            sent as f64 / sys.max(1) as f64,
            blocks * block as u64,
            tx.backend(),
        )
    });
    let (cpu, rate, per_sys, total_rows, backend) = handle.join().expect("baseline thread");
    sink.wait_for_rows(total_rows, Duration::from_millis(500));
    let rep = sink.stop();
    Baseline {
        channels,
        bytes: size,
        dgrams_per_s: rate,
        cpu_pct: cpu,
        per_syscall: per_sys,
        delivered: rep.clean_rows as f64 / total_rows.max(1) as f64,
        kernel_drops: rep.kernel_drops,
        backend,
        seconds,
        block,
    }
}

// ---------------------------------------------------------------------------------------------
// Plots
// ---------------------------------------------------------------------------------------------

fn plot_latency(path: &Path, rows: &[&RunResult]) -> Result<(), String> {
    use plotters::prelude::*;
    let pts: Vec<(f64, [f64; 4])> = rows
        .iter()
        .filter(|r| r.e2e[0].is_finite())
        .map(|r| {
            (
                f64::from(r.sc.channels),
                [r.e2e[0], r.e2e[1], r.e2e[2], r.e2e[3]],
            )
        })
        .collect();
    if pts.is_empty() {
        return Err("no latency points".into());
    }
    let xmin = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) / 1.5;
    let xmax = pts.iter().map(|p| p.0).fold(0.0, f64::max) * 1.5;
    let ymin = pts
        .iter()
        .flat_map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        / 2.0;
    let ymax = pts.iter().flat_map(|p| p.1).fold(0.0, f64::max) * 2.0;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "End-to-end latency (simulator send -> OSC received), sample mode, F=1",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin..xmax).log_scale(), (ymin..ymax).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("channels")
        .y_desc("latency (ms, log)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.2}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let names = ["p50", "p90", "p99", "p99.9"];
    let colors = [BLUE, GREEN, MAGENTA, RED];
    for (i, name) in names.iter().enumerate() {
        let c = colors[i];
        let series: Vec<(f64, f64)> = pts.iter().map(|p| (p.0, p.1[i])).collect();
        chart
            .draw_series(LineSeries::new(series.clone(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(series.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn plot_delivered(path: &Path, results: &[RunResult]) -> Result<(), String> {
    use plotters::prelude::*;
    let mut groups: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in results {
        let key = if r.sc.pub_hwm == 1000 {
            format!(
                "{} F={} (PUB HWM 1000, faithful)",
                r.sc.mode.as_str(),
                r.sc.factor
            )
        } else {
            format!("{} F={}", r.sc.mode.as_str(), r.sc.factor)
        };
        let p = (f64::from(r.sc.channels), r.delivered);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => g.1.push(p),
            None => groups.push((key, vec![p])),
        }
    }
    if groups.is_empty() {
        return Err("no points".into());
    }
    let xs = results.iter().map(|r| f64::from(r.sc.channels));
    let xmin = xs.clone().fold(f64::INFINITY, f64::min) / 1.5;
    let xmax = xs.fold(0.0, f64::max) * 1.5;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Delivered fraction (rows received / rows sent) vs channels",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin..xmax).log_scale(), -0.02f64..1.08f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("channels")
        .y_desc("delivered")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [BLUE, GREEN, MAGENTA, RED, CYAN, BLACK, YELLOW];
    for (i, (key, pts)) in groups.iter().enumerate() {
        let c = colors[i % colors.len()];
        let mut pts = pts.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(key.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------

fn cmd_out(cmd: &str, args: &[&str], dir: &Path) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
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

fn main() -> std::process::ExitCode {
    let mut o = Opt::parse();
    if o.quick {
        o.channels = vec![16, 256];
        o.factors = vec![1];
        o.seconds = 2.0;
        o.baseline_seconds = 1.0;
        o.faithful_at = vec![];
    }
    let (block, block_samples) = match parse_block(&o.block) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let mut modes = Vec::new();
    for m in &o.modes {
        match m.as_str() {
            "sample" => modes.push(Mode::Sample),
            "batch" => modes.push(Mode::Batch),
            m => {
                eprintln!("error: unknown mode {m} (sample, batch)");
                return std::process::ExitCode::from(2);
            }
        }
    }
    if o.channels.contains(&0) || o.factors.contains(&0) || o.batch == 0 {
        eprintln!("error: channels, factors and --batch must be > 0");
        return std::process::ExitCode::from(2);
    }
    let bridge = o.bridge.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("openephys-zmq2osc")))
            .unwrap_or_else(|| PathBuf::from("openephys-zmq2osc"))
    });
    if !bridge.exists() {
        eprintln!(
            "error: bridge binary {} not found (build with --bins)",
            bridge.display()
        );
        return std::process::ExitCode::from(2);
    }
    fs::create_dir_all(&o.out).expect("create --out");
    let tmp = std::env::temp_dir().join(format!("zmq2osc-stress-{}", std::process::id()));
    fs::create_dir_all(&tmp).expect("create temp dir");
    let ctx = Ctx {
        bridge,
        out: o.out.clone(),
        tmp,
        version: env!("CARGO_PKG_VERSION").to_string(),
        commit: o.commit.clone().unwrap_or_else(|| {
            cmd_out(
                "git",
                &["rev-parse", "--short", "HEAD"],
                Path::new(env!("CARGO_MANIFEST_DIR")),
            )
        }),
        tck: clk_tck(),
        latency_skip_blocks: o.latency_skip_blocks,
    };
    let date = cmd_out("date", &["+%Y%m%d-%H%M%S"], Path::new("."));

    if let Some(secs) = o.soak {
        let sc = Scenario {
            channels: o.soak_channels.max(1),
            mode: Mode::Sample,
            factor: 1,
            batch: 1,
            pub_hwm: *o.pub_hwm.first().unwrap_or(&100_000),
            seconds: secs,
            block,
            block_samples,
        };
        let path = o.out.join(format!("soak-{date}.csv"));
        let mut file = fs::File::create(&path).expect("create soak csv");
        let _ = writeln!(
            file,
            "t_s,bridge_rss_mb,bridge_fds,bridge_threads,bridge_cpu_pct,rows_sent,rows_delivered,\
             sink_lost_rows,kernel_drops,torn_or_bad,e2e_p50_ms,e2e_p99_ms,e2e_p999_ms,e2e_max_ms"
        );
        let mut log = SoakLog {
            file,
            every: Duration::from_secs(10),
        };
        let progress = Progress {
            start: Instant::now(),
            total: 1,
            est: vec![secs + BRIDGE_EXTRA_S + 2.0],
        };
        let r = run_scenario(&ctx, &sc, &progress, 0, Some(&mut log));
        eprintln!();
        let line = matrix_row(&ctx, &r, "soak-");
        append_line(&o.out.join("matrix.csv"), MATRIX_HEADER, &line);
        append_line(
            &o.out.join("bridge-extra.csv"),
            EXTRA_HEADER,
            &format!("soak-{}", r.extra),
        );
        println!(
            "soak {} s at {} ch: delivered {:.6} ({} of {}), lost {}, kernel drops {}, e2e p50 {} p99 {} max {} ms, bridge CPU {:.1} %, RSS {:.1} MB -> {}",
            secs,
            sc.channels,
            r.delivered,
            r.rows_delivered,
            r.rows_expected,
            r.lost,
            r.kernel_drops,
            f3(r.e2e[0]),
            f3(r.e2e[2]),
            f3(r.e2e[4]),
            r.cpu_pct,
            r.rss_mb,
            path.display()
        );
        let _ = fs::remove_dir_all(&ctx.tmp);
        return std::process::ExitCode::SUCCESS;
    }

    // Build the matrix.
    let mut scenarios = Vec::new();
    let mut skipped = Vec::new();
    for &ch in &o.channels {
        for &mode in &modes {
            for &f in &o.factors {
                for &hwm in &o.pub_hwm {
                    let sc = Scenario {
                        channels: ch,
                        mode,
                        factor: f,
                        batch: if mode == Mode::Batch { o.batch } else { 1 },
                        pub_hwm: hwm,
                        seconds: o.seconds,
                        block: block.clone(),
                        block_samples,
                    };
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
                if mode == Mode::Sample
                    && f == 1
                    && o.faithful_at.contains(&ch)
                    && !o.pub_hwm.contains(&1000)
                {
                    scenarios.push(Scenario {
                        channels: ch,
                        mode,
                        factor: 1,
                        batch: 1,
                        pub_hwm: 1000,
                        seconds: o.seconds,
                        block: block.clone(),
                        block_samples,
                    });
                }
            }
        }
    }
    for s in &skipped {
        eprintln!("skipped {s}");
    }
    let mut baseline_channels: Vec<u32> = o.channels.clone();
    baseline_channels.sort_unstable();
    baseline_channels.dedup();
    if o.baseline_seconds <= 0.0 {
        baseline_channels.clear();
    }
    let mut est: Vec<f64> = scenarios
        .iter()
        .map(|s| s.seconds + BRIDGE_EXTRA_S + 1.0)
        .collect();
    est.extend(baseline_channels.iter().map(|_| o.baseline_seconds + 0.7));
    let progress = Progress {
        start: Instant::now(),
        total: est.len(),
        est,
    };

    let matrix = o.out.join("matrix.csv");
    let mut results = Vec::new();
    for (i, sc) in scenarios.iter().enumerate() {
        let r = run_scenario(&ctx, sc, &progress, i, None);
        append_line(&matrix, MATRIX_HEADER, &matrix_row(&ctx, &r, ""));
        append_line(&o.out.join("bridge-extra.csv"), EXTRA_HEADER, &r.extra);
        eprintln!(
            "\r\x1b[2K[{}/{}] {}: delivered {:.4}  e2e p50 {} p99 {} ms  CPU {:.1} % (zmq_rx {:.1}, osc_tx {:.1})  upstream missing {}  kernel drops {}",
            i + 1,
            progress.total,
            sc.label(),
            r.delivered,
            f3(r.e2e[0]),
            f3(r.e2e[2]),
            r.cpu_pct,
            r.rx_cpu_pct,
            r.tx_cpu_pct,
            r.bridge.upstream_missing_msgs,
            r.kernel_drops
        );
        results.push(r);
    }

    let mut baselines = Vec::new();
    for (k, &ch) in baseline_channels.iter().enumerate() {
        let step = scenarios.len() + k;
        progress.line(
            step,
            &format!("baseline {ch}ch raw UDP"),
            0.0,
            o.baseline_seconds,
        );
        let b = run_baseline(ch, block_samples, o.baseline_seconds);
        append_line(
            &o.out.join("baseline.csv"),
            BASELINE_HEADER,
            &format!(
                "{},{},{},{:.1},{},{:.2},{:.3},{:.6},{},{}",
                b.channels,
                b.bytes,
                b.block,
                b.dgrams_per_s,
                b.seconds,
                b.cpu_pct,
                b.per_syscall,
                b.delivered,
                b.kernel_drops,
                b.backend
            ),
        );
        eprintln!(
            "\r\x1b[2K[{}/{}] baseline {ch}ch: {} B x {:.0}/s  CPU {:.2} %  delivered {:.4}",
            step + 1,
            progress.total,
            b.bytes,
            b.dgrams_per_s,
            b.cpu_pct,
            b.delivered
        );
        baselines.push(b);
    }

    // Plots (this invocation's rows).
    let lat_rows: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.sc.mode == Mode::Sample && r.sc.factor == 1 && r.sc.pub_hwm != 1000)
        .collect();
    if let Err(e) = plot_latency(&o.out.join("latency.svg"), &lat_rows) {
        eprintln!("latency.svg not written: {e}");
    }
    if let Err(e) = plot_delivered(&o.out.join("delivered.svg"), &results) {
        eprintln!("delivered.svg not written: {e}");
    }

    // Summary.
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8}",
        "scenario",
        "delivered",
        "e2e p50",
        "e2e p99",
        "br p99",
        "CPU %",
        "RSS MB",
        "upstream",
        "dg/sys"
    );
    for r in &results {
        println!(
            "{:<34} {:>9.4} {:>9} {:>9} {:>9} {:>8.1} {:>8.1} {:>9} {:>8}",
            r.sc.name(),
            r.delivered,
            f3(r.e2e[0]),
            f3(r.e2e[2]),
            f3(r.bridge.bridge_added.map_or(f64::NAN, |b| b[3])),
            r.cpu_pct,
            r.rss_mb,
            r.bridge.upstream_missing_msgs,
            f3(r.dgrams_per_syscall)
        );
    }
    if !baselines.is_empty() {
        println!(
            "\nbridge CPU (sample F=1) vs raw UDP baseline CPU (same datagrams, same pacing, GSO):"
        );
        for b in &baselines {
            let bridge = results.iter().find(|r| {
                r.sc.channels == b.channels
                    && r.sc.mode == Mode::Sample
                    && r.sc.factor == 1
                    && r.sc.pub_hwm != 1000
            });
            match bridge {
                Some(r) => println!(
                    "  {:>5} ch: whole bridge {:6.1} % (zmq_rx {:5.1} %, osc_tx {:5.1} %)  baseline {:5.2} %  \
                     encode+send (osc_tx) / baseline {:4.2}x  whole bridge / baseline {:4.1}x",
                    b.channels,
                    r.cpu_pct,
                    r.rx_cpu_pct,
                    r.tx_cpu_pct,
                    b.cpu_pct,
                    r.tx_cpu_pct / b.cpu_pct,
                    r.cpu_pct / b.cpu_pct
                ),
                None => println!("  {:>5} ch: baseline {:5.2} %", b.channels, b.cpu_pct),
            }
        }
    }
    for s in &skipped {
        println!("skipped {s}");
    }
    let _ = fs::remove_dir_all(&ctx.tmp);
    std::process::ExitCode::SUCCESS
}
