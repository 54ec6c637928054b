//! The running bridge: builds slabs, rings and sockets, spawns the threads, joins them.
//!
//! Threads (names as shown by `top -H`; with several sources (`zmq.sources`) each source
//! has its own `zmq_rx_<name>` and `zmq_hb_<name>` (`_<i>` when the name does not fit the
//! 15 bytes Linux allows), and each shard is fed by its own source's receiver only):
//!
//! * `zmq_rx` — ZMQ SUB receive, header parsing, frame assembly into slab frames; pushes
//!   complete frames into each shard's ring and recycles frames from the return rings.
//! * `osc_tx_0` — an encoder shard: owns one output (destination + format), downsamples,
//!   batches, encodes and sends. Frames of one output never split across shards.
//! * `zmq_hb` — heartbeat REQ to `data_port + 1` every `zmq.heartbeat_timeout` s, with a
//!   lazy-pirate reset of that socket (never the data socket) after
//!   `zmq.not_responding_timeout` s without a reply.
//!
//! The hot threads spin briefly when idle, then yield, then park (the receiver in `zmq_poll`, shards in
//! `thread::park_timeout`), so an idle bridge costs next to nothing. A panic in any thread
//! stops the bridge and is reported as a failure.
//!
//! Files: this one starts and stops; `receiver.rs` (`zmq_rx` loop), `shard.rs`
//! (`osc_tx_N` loop and pacing), `heartbeat.rs` (REQ and the data-socket monitor), `pin.rs`
//! (pinning and its report), `counters.rs` (each thread publishing into its own block of
//! [`crate::telemetry::counters`]) and `report.rs` (start-up layout, final ledger).

mod counters;
mod heartbeat;
mod pin;
mod receiver;
pub mod record;
mod report;
pub mod sched;
mod shard;

pub use crate::telemetry::counters::{Stats, HB_COUNTERS, HB_STATES, RX_COUNTERS, TX_COUNTERS};
pub use heartbeat::*;
pub use pin::{hot_thread_name, PinReport, PinRequest, ThreadPin};
use receiver::*;
pub use report::*;
use shard::*;

use crate::config::{Config, OverflowStrategy, PerformanceMode, SourceSpec};
use crate::frame::{frame_bytes, EventBuffer, Frame};
use crate::ingest::assembler::{Assembler, AssemblerConfig};
use crate::net::{SenderOptions, UdpSender};
use crate::output::{LayoutBoard, LayoutInfo, Mode, OutputFormat, OutputPipeline};
use crate::telemetry::counters::SourceInfo;
use crate::telemetry::latency::{Latencies, LatencyCollector};
use rtrb::RingBuffer;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Engine options that are not part of the original's config file.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Pinning: [`PinRequest::Auto`] pins when `performance.pin_threads` is on and there are
    /// enough cores; [`PinRequest::Force`] (`--pin`) pins regardless; [`PinRequest::Off`]
    /// (`--no-pin`) never.
    pub pin: PinRequest,
    /// UDP sender options.
    pub sender: SenderOptions,
    /// Log lines go to stderr when true.
    pub verbose: bool,
    /// `--record FILE`: write every ZeroMQ message received to this zmqcap file (gzip when it
    /// ends in `.gz`); with several sources, each source's file gets `.<name>` before the
    /// extension.
    pub record: Option<std::path::PathBuf>,
    /// Test hook (feature `test-hooks` only): the encoder shard panics after this many frames
    /// (proves that a dead thread stops the bridge with a failure instead of a silent stall).
    #[cfg(feature = "test-hooks")]
    pub panic_after_frames: Option<u64>,
}

impl EngineOptions {
    /// Options with every test hook off.
    pub fn new(pin: PinRequest, sender: SenderOptions, verbose: bool) -> Self {
        EngineOptions {
            pin,
            sender,
            verbose,
            record: None,
            #[cfg(feature = "test-hooks")]
            panic_after_frames: None,
        }
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions::new(PinRequest::Off, SenderOptions::default(), true)
    }
}

/// State shared by the threads and the controller: the stop/failure flags and the published
/// statistics ([`Stats`], reachable through `Deref`: `shared.rx`, `shared.tx[i]`, ...).
#[derive(Debug)]
pub struct Shared {
    /// Set to stop every thread.
    pub stop: AtomicBool,
    /// Set when a thread panicked or failed.
    pub failed: AtomicBool,
    /// Counter blocks, last message time and latency histograms (readers need only this).
    pub stats: Arc<Stats>,
    /// Per source: its reconnect flag and layout board.
    pub sources: Box<[SourceShared]>,
    /// The first source's layout board (`sources[0].layout`; what the OSCQuery namespace
    /// follows).
    pub layout: Arc<LayoutBoard>,
}

/// What one source's receiver and heartbeat threads share.
#[derive(Debug)]
pub struct SourceShared {
    /// Set by the source's monitor (in its heartbeat thread) when libzmq gave up on the data
    /// connection (it does not reconnect after a protocol error such as a message above
    /// ZMQ_MAXMSGSIZE); the source's receiver then connects again.
    pub reconnect_data: AtomicBool,
    /// Stream, channels, rate and channel names of the source's current layout: written by
    /// its receiver on layout changes only, read by its shards and the controller, all
    /// without a lock (a seqlock of atomics sized at start-up; see [`LayoutBoard`]).
    pub layout: Arc<LayoutBoard>,
}

impl std::ops::Deref for Shared {
    type Target = Stats;
    fn deref(&self) -> &Stats {
        &self.stats
    }
}

impl Shared {
    /// Stream, channels, rate and names of the (first source's) current layout (`None`
    /// before the first block). Allocates: for the controller (start-up/report text,
    /// dashboard).
    pub fn layout_snapshot(&self) -> Option<LayoutInfo> {
        self.layout.snapshot()
    }

    /// Source `i`'s current layout (`None` before its first block, or no such source).
    pub fn source_layout_snapshot(&self, i: usize) -> Option<LayoutInfo> {
        self.sources.get(i)?.layout.snapshot()
    }
}

/// One output as the engine runs it: the config's own type (see [`crate::output::spec`]).
pub use crate::output::OutputSpec;

/// What one output was set up as (for the start-up report).
#[derive(Debug, Clone)]
pub struct OutputLayout {
    /// Name.
    pub name: String,
    /// Resolved destination.
    pub destination: SocketAddr,
    /// UDP backend in use.
    pub udp_backend: &'static str,
    /// Effective SO_SNDBUF.
    pub send_buffer: usize,
    /// The format.
    pub format: OutputFormat,
    /// Pacing on.
    pub pacing: bool,
}

impl OutputLayout {
    /// One line: what goes where, how.
    pub fn describe(&self) -> String {
        let f = &self.format;
        let what = match (&f.features, f.mode) {
            (Some(fc), Mode::PerChannel) => format!(
                "{} per feature and channel ({} Hz)",
                f.channel_address_format, fc.feature_rate
            ),
            (Some(fc), _) => format!(
                "{}/features/<{}> ({} Hz)",
                f.base_address,
                fc.features
                    .iter()
                    .map(crate::output::spec::feature_address_name)
                    .collect::<Vec<_>>()
                    .join("|"),
                fc.feature_rate
            ),
            (None, Mode::Sample) => format!("{}/sample", f.base_address),
            (None, Mode::Batch) => format!(
                "{}/batch/{} (int N + N·{} floats, channel-major)",
                f.base_address, f.batch_size, f.batch_size
            ),
            (None, Mode::PerChannel) => format!("{} per channel", f.channel_address_format),
            (None, Mode::Blob) => format!(
                "{}/blob (N, k, blob of N·{} floats)",
                f.base_address, f.batch_size
            ),
        };
        let mut extras = Vec::new();
        if f.selection.is_some() {
            extras.push("channel map".to_string());
        }
        if f.sparse {
            extras.push("sparse".into());
        }
        if f.split {
            extras.push(format!("max {} B/datagram (split above)", f.max_datagram));
        }
        if f.sample_number {
            extras.push("sample numbers".into());
        }
        if f.bundle != crate::config::BundleMode::Off {
            extras.push("bundles".into());
        }
        for (on, what) in [
            (f.events, "ttl"),
            (f.spikes, "spikes"),
            (f.status, "status"),
            (f.notices, "notices"),
            (self.pacing, "paced"),
        ] {
            if on {
                extras.push(what.into());
            }
        }
        format!(
            "[{}] {} F={} {} -> udp://{} via {} (SO_SNDBUF {} KiB){}",
            self.name,
            what,
            f.factor,
            f.method.as_str(),
            self.destination,
            self.udp_backend,
            self.send_buffer / 1024,
            if extras.is_empty() {
                String::new()
            } else {
                format!("; {}", extras.join(", "))
            }
        )
    }
}

/// A running bridge.
pub struct Engine {
    shared: Arc<Shared>,
    layout: Layout,
    rx: Vec<JoinHandle<Latencies>>,
    shards: Vec<JoinHandle<Latencies>>,
    hb: Vec<JoinHandle<()>>,
    /// `--record` writers (one per source), with their files.
    recorders: Vec<(std::path::PathBuf, record::Recorder)>,
    _ctx: zmq::Context,
}

struct PanicGuard(Arc<Shared>);
impl Drop for PanicGuard {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.failed.store(true, Ordering::SeqCst);
            self.0.stop.store(true, Ordering::SeqCst);
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Resolves `host:port` (first address).
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to no address"))
}

/// The output format the original's keys mean (exact original bytes; oversized messages
/// are refused, never split). See [`Config::legacy_output_format`].
pub fn output_format(cfg: &Config) -> OutputFormat {
    cfg.legacy_output_format()
}

/// The outputs a config describes: its `outputs` list, or the original's single output.
/// See [`Config::output_specs`].
pub fn output_specs(cfg: &Config) -> Vec<OutputSpec> {
    cfg.output_specs()
}

/// One step of a hot thread's idle wait, `idle` into a window of `spin`: true = poll again,
/// false = the window is over, park. The first fifth of the window spins (a message or block
/// due within microseconds is taken without a context switch); the rest gives the core away
/// between polls (`sched_yield`), so that on a machine with few cores the publisher and
/// libzmq's I/O threads run instead of a spinning poll. Measured at 256 ch, built-in simulator,
/// 6 pairs of 8 s runs against a pure spin: the publisher's burst (`block_spread` p50) 1.3
/// instead of 1.9 ms and end-to-end p50 0.2 ms lower in 5 of 6 pairs, CPU unchanged
/// (`tools/ab.sh` with the bridges of b4699e1^ and b4699e1, `256 3`).
#[inline]
pub(crate) fn idle_backoff(idle: Duration, spin: Duration) -> bool {
    if idle >= spin {
        return false;
    }
    if idle < spin / 5 {
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
    true
}

/// Idle spin before a hot thread parks, by `performance.mode`.
pub fn idle_spin(mode: PerformanceMode) -> Duration {
    match mode {
        PerformanceMode::LowLatency => Duration::from_micros(500),
        PerformanceMode::Balanced => Duration::from_micros(50),
        PerformanceMode::HighThroughput => Duration::from_micros(5),
    }
}

/// Name of a per-source thread: `prefix` alone with one source, else `prefix_<name>` when
/// that fits Linux's 15 bytes and is plain ASCII, else `prefix_<i>`.
pub fn source_thread_name(prefix: &str, name: &str, i: usize, sources: usize) -> String {
    if sources <= 1 {
        return prefix.to_string();
    }
    let n = format!("{prefix}_{name}");
    if n.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        n
    } else {
        format!("{prefix}_{i}")
    }
}

/// The heartbeat uuid of source `name`: `zmq.app_uuid` (or the per-run one for `"auto"`),
/// with `-<name>` appended when the config lists several sources, so the plugin lists each
/// source's bridge connection as its own app.
pub fn source_uuid(cfg: &Config, name: &str) -> String {
    let base = effective_uuid(&cfg.zmq.app_uuid);
    if cfg.zmq.sources.len() > 1 {
        format!("{base}-{name}")
    } else {
        base
    }
}

/// One source's sockets, made at start-up.
struct SourceSockets {
    sub: zmq::Socket,
    monitor: zmq::Socket,
    data_endpoint: String,
    heartbeat_endpoint: String,
}

/// `ZMQ_RCVHWM` of the data socket (messages).
pub const RCVHWM: i32 = 50_000;
/// `ZMQ_RCVBUF` of the data socket (bytes; the kernel may cap it at `net.core.rmem_max`).
pub const RCVBUF: i32 = 8 << 20;

fn open_source(
    ctx: &zmq::Context,
    src: &SourceSpec,
    max_block: usize,
) -> Result<SourceSockets, String> {
    let data_endpoint = format!("tcp://{}:{}", src.host, src.data_port);
    let heartbeat_endpoint = format!("tcp://{}:{}", src.host, src.data_port as u32 + 1);
    let sub = ctx
        .socket(zmq::SUB)
        .map_err(|e| format!("zmq socket: {e}"))?;
    let largest_msg = (max_block * 4).max(1 << 16) as i64;
    // A large queue in libzmq and a large kernel receive buffer: when the receiver or libzmq's
    // I/O thread is descheduled (a publisher busy on the same cores), the plugin's PUB queue
    // (1 000 messages) keeps draining into the kernel instead of overflowing.
    sub.set_maxmsgsize(largest_msg * 4)
        .and_then(|_| sub.set_rcvhwm(RCVHWM))
        .and_then(|_| sub.set_rcvbuf(RCVBUF))
        .and_then(|_| sub.set_linger(0))
        .and_then(|_| sub.set_subscribe(b""))
        .map_err(|e| format!("zmq socket options: {e}"))?;
    // Watch the data connection: libzmq drops a peer that exceeds ZMQ_MAXMSGSIZE (and a
    // GUI that quits) without telling the socket's user; the monitor tells us. The monitor
    // socket is connected before the data socket connects, so no event is missed.
    static MONITORS: AtomicU64 = AtomicU64::new(0);
    let monitor_endpoint = format!(
        "inproc://zmq2osc-monitor-{}-{}",
        std::process::id(),
        MONITORS.fetch_add(1, Ordering::Relaxed)
    );
    sub.monitor(&monitor_endpoint, zmq::SocketEvent::ALL as i32)
        .map_err(|e| format!("zmq monitor: {e}"))?;
    let monitor = ctx
        .socket(zmq::PAIR)
        .and_then(|m| {
            m.set_linger(0)
                .and_then(|_| m.connect(&monitor_endpoint))
                .map(|_| m)
        })
        .map_err(|e| format!("zmq monitor socket: {e}"))?;
    sub.connect(&data_endpoint)
        .map_err(|e| format!("cannot connect to {data_endpoint}: {e}"))?;
    Ok(SourceSockets {
        sub,
        monitor,
        data_endpoint,
        heartbeat_endpoint,
    })
}

impl Engine {
    /// Validates, allocates everything, connects sockets and starts the threads: per
    /// source a receiver and a heartbeat thread, per output a shard fed by its source's
    /// receiver only.
    pub fn start(cfg: &Config, opts: &EngineOptions) -> Result<Engine, String> {
        let max_channels = cfg.performance.max_channels as usize;
        let max_block = cfg.performance.max_block_samples as usize;
        let queue = cfg.performance.osc_queue_max_size as usize;
        let policy = cfg.performance.osc_queue_overflow_strategy;
        // A hot thread that got the real-time scheduler parks without spinning (see
        // `Pinner::pin`); the others spin as the mode says.
        let spin = idle_spin(cfg.performance.mode);
        // drop_oldest: the shard trims the queue back to `queue` when it pops, so the ring
        // needs headroom for what arrives while the shard is busy with one block.
        let headroom = if policy == OverflowStrategy::DropOldest {
            queue.clamp(4, 64)
        } else {
            0
        };
        let ring_capacity = queue + headroom;
        let specs = output_specs(cfg);
        let sources = cfg.source_specs();
        let n_src = sources.len();
        // Each output carries exactly one source (validated at load; an unknown name here
        // can only come from a config built in code).
        let mut output_source = Vec::with_capacity(specs.len());
        for spec in &specs {
            let s = match &spec.source {
                None => 0,
                Some(name) => sources
                    .iter()
                    .position(|s| &s.name == name)
                    .ok_or_else(|| format!("output '{}': no source named '{name}'", spec.name))?,
            };
            output_source.push(s);
        }
        // Per source: each of its shards may hold a full ring plus the block it works on;
        // the receiver one open block and one waiting to be pushed.
        let pools: Vec<usize> = (0..n_src)
            .map(|s| output_source.iter().filter(|&&o| o == s).count() * (ring_capacity + 1) + 3)
            .collect();
        let pool_total: usize = pools.iter().sum();
        let slab_bytes = pool_total * frame_bytes(max_channels, max_block);

        let boards: Vec<Arc<LayoutBoard>> = (0..n_src)
            .map(|_| Arc::new(LayoutBoard::new(max_channels)))
            .collect();
        let mut outputs = Vec::new();
        let mut starts = Vec::new();
        let mut producers = Vec::new();
        let mut ret_consumers = Vec::new();
        for (spec, &src) in specs.iter().zip(&output_source) {
            let pipeline =
                OutputPipeline::with_layout(spec.format.clone(), Some(boards[src].clone()))
                    .map_err(|e| format!("output '{}': {e}", spec.name))?;
            let dest = resolve(&spec.host, spec.port)?;
            let mut sopts = opts.sender.clone();
            sopts.multicast_ttl = spec.multicast_ttl;
            sopts.broadcast = dest.ip().is_ipv4()
                && (spec.host == "255.255.255.255"
                    || matches!(dest.ip(), std::net::IpAddr::V4(a) if a.octets()[3] == 255));
            let sender = UdpSender::connect(dest, &sopts).map_err(|e| {
                format!(
                    "output '{}': cannot open UDP socket to {dest}: {e}",
                    spec.name
                )
            })?;
            outputs.push(OutputLayout {
                name: spec.name.clone(),
                destination: dest,
                udp_backend: sender.backend(),
                send_buffer: sender.effective_send_buffer(),
                format: spec.format.clone(),
                pacing: spec.pacing,
            });
            let (ptx, crx) = RingBuffer::<Arc<Frame>>::new(ring_capacity);
            let (rtx, rrx) = RingBuffer::<Arc<Frame>>::new(pools[src]);
            producers.push(Some(ptx));
            ret_consumers.push(Some(rrx));
            starts.push(ShardStart {
                name: spec.name.clone(),
                source: src,
                frames: crx,
                ret: rtx,
                pipeline,
                sender,
                pacing: spec.pacing,
                #[cfg(feature = "test-hooks")]
                panic_after: opts.panic_after_frames,
            });
        }

        let ctx = zmq::Context::new();
        // libzmq starts its I/O and reaper threads with the first socket, unnamed: they are the
        // threads that appear now with this thread's name.
        let threads_before = sched::threads_named("");
        let mut sockets = Vec::with_capacity(n_src);
        for src in &sources {
            sockets.push(open_source(&ctx, src, max_block).map_err(|e| {
                if n_src > 1 {
                    format!("source '{}': {e}", src.name)
                } else {
                    e
                }
            })?);
        }
        let libzmq_threads = sched::new_threads_like_current(&threads_before);

        let hot_threads = n_src + specs.len();
        let (collector, lat_pubs) = LatencyCollector::new(hot_threads, Duration::from_secs(1));
        let mut lat_pubs: Vec<Option<_>> = lat_pubs.into_iter().map(Some).collect();
        let infos = sources
            .iter()
            .zip(&sockets)
            .map(|(s, k)| SourceInfo {
                name: s.name.clone(),
                endpoint: k.data_endpoint.clone(),
            })
            .collect();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            stats: Arc::new(Stats::with_sources(
                infos,
                cfg.sources_listed(),
                specs.len(),
                collector,
            )),
            sources: boards
                .iter()
                .map(|b| SourceShared {
                    reconnect_data: AtomicBool::new(false),
                    layout: b.clone(),
                })
                .collect(),
            layout: boards[0].clone(),
        });

        let pin_request = opts.pin;
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let pin_plan = match pin_request {
            PinRequest::Auto if !cfg.performance.pin_threads => {
                Err("performance.pin_threads is false (--pin forces pinning)".to_string())
            }
            r => pin::plan(r, &cores, hot_threads),
        };
        let pin_results = pin::PinResults::new(hot_threads, cfg.performance.realtime_priority);
        let core_of = |i: usize| pin_plan.as_ref().ok().map(|p| p[i]);
        let mut hot_names: Vec<String> = sources
            .iter()
            .enumerate()
            .map(|(i, s)| source_thread_name("zmq_rx", &s.name, i, n_src))
            .collect();

        // Shard threads (hot threads n_src..).
        let mut shard_handles = Vec::new();
        for (index, st) in starts.into_iter().enumerate() {
            let s2 = shared.clone();
            let pinner = pin_results.pinner(n_src + index, core_of(n_src + index));
            let verbose = opts.verbose;
            let lp = lat_pubs[n_src + index].take().ok_or("latency publisher")?;
            let name = format!("osc_tx_{index}");
            hot_names.push(name.clone());
            let h = thread::Builder::new()
                .name(name)
                .spawn(move || {
                    let _g = PanicGuard(s2.clone());
                    let spin = if pinner.pin() { Duration::ZERO } else { spin };
                    run_shard(s2, index, st, policy, queue, spin, verbose, lp)
                })
                .map_err(|e| format!("spawn osc_tx_{index}: {e}"))?;
            shard_handles.push(h);
        }

        let asm_cfg = AssemblerConfig {
            max_channels,
            max_block_samples: max_block,
            min_deadline: Duration::from_millis(100),
            data_timeout: Duration::from_secs_f64(cfg.zmq.data_timeout_seconds),
            auto_reinit: cfg.zmq.auto_reinit_on_timeout,
            missing: cfg.performance.missing_channel_policy,
        };
        let verbose = opts.verbose;
        let mut rx_handles = Vec::with_capacity(n_src);
        let mut recorders = Vec::new();
        let mut hb_handles = Vec::with_capacity(n_src);
        let mut source_layouts = Vec::with_capacity(n_src);
        for (si, (src, socks)) in sources.iter().zip(sockets).enumerate() {
            let SourceSockets {
                sub,
                monitor,
                data_endpoint,
                heartbeat_endpoint,
            } = socks;
            // This source's outputs: their rings and return rings, nobody else's.
            let mut links = Vec::new();
            for (o, &os) in output_source.iter().enumerate() {
                if os != si {
                    continue;
                }
                let (Some(ring), Some(ret)) = (producers[o].take(), ret_consumers[o].take()) else {
                    return Err(format!("output {o}: ring already taken"));
                };
                links.push(ShardLink {
                    ring,
                    ret,
                    output: o,
                    thread: shard_handles[o].thread().clone(),
                    tallies: Default::default(),
                });
            }
            // Slab: every frame of this source allocated now.
            let free: Vec<Arc<Frame>> = (0..pools[si])
                .map(|_| Arc::new(Frame::new(max_channels, max_block)))
                .collect();
            let rx_shared = shared.clone();
            let rx_endpoint = data_endpoint.clone();
            let rx_pinner = pin_results.pinner(si, core_of(si));
            let rx_lat_pub = lat_pubs[si].take().ok_or("latency publisher")?;
            let rx_name = hot_names[si].clone();
            let board = boards[si].clone();
            let asm_cfg = asm_cfg.clone();
            let tap = match &opts.record {
                Some(p) => {
                    let path = record::source_path(p, &src.name, n_src);
                    // 64 MiB: over 2 s of 256 ch at 30 kHz if the disk stalls.
                    let (tap, rec) = record::start(&path, 64 << 20)
                        .map_err(|e| format!("--record {}: {e}", path.display()))?;
                    recorders.push((path, rec));
                    Some(tap)
                }
                None => None,
            };
            let rx = thread::Builder::new()
                .name(rx_name.clone())
                .spawn(move || {
                    let _g = PanicGuard(rx_shared.clone());
                    let spin = if rx_pinner.pin() {
                        Duration::ZERO
                    } else {
                        spin
                    };
                    let io = RxIo {
                        free,
                        links,
                        policy,
                        shared: rx_shared.clone(),
                        source: si,
                        layout: board,
                        events: EventBuffer::new(),
                        events_since: None,
                        stream: String::with_capacity(crate::output::layout::STREAM_CAP),
                        names: (0..max_channels)
                            .map(|_| String::with_capacity(crate::output::layout::NAME_CAP))
                            .collect(),
                        published_generation: None,
                    };
                    run_receiver(
                        rx_shared,
                        sub,
                        &rx_endpoint,
                        Assembler::new(asm_cfg),
                        io,
                        max_block,
                        spin,
                        verbose,
                        rx_lat_pub,
                        tap,
                    )
                })
                .map_err(|e| format!("spawn {rx_name}: {e}"))?;
            rx_handles.push(rx);

            let hb_shared = shared.clone();
            let hb_ctx = ctx.clone();
            let uuid = source_uuid(cfg, &src.name);
            let hb_cfg = HeartbeatConfig::with_uuid(cfg, &heartbeat_endpoint, &uuid);
            let data_ep = data_endpoint.clone();
            let hb_name = source_thread_name("zmq_hb", &src.name, si, n_src);
            let hb = thread::Builder::new()
                .name(hb_name.clone())
                .spawn(move || {
                    let _g = PanicGuard(hb_shared.clone());
                    run_heartbeat(hb_shared, si, hb_ctx, hb_cfg, monitor, &data_ep, verbose)
                })
                .map_err(|e| format!("spawn {hb_name}: {e}"))?;
            hb_handles.push(hb);
            source_layouts.push(SourceLayout {
                name: src.name.clone(),
                data_endpoint,
                heartbeat_endpoint,
                uuid,
                outputs: (0..specs.len())
                    .filter(|&o| output_source[o] == si)
                    .collect(),
                receiver_thread: rx_name,
                slab_frames: pools[si],
            });
        }
        // Every hot thread has pinned itself (or failed to) before it starts its loop.
        // libzmq's own I/O threads carry every message before the receiver sees it: on the
        // real-time scheduler too when asked (found by name: libzmq starts them itself).
        let zmq_io = if cfg.performance.realtime_priority > 0 {
            if libzmq_threads.is_empty() {
                vec![sched::SchedOutcome {
                    thread: "libzmq".into(),
                    ok: false,
                    why: "its threads were not found in /proc/self/task".into(),
                }]
            } else {
                libzmq_threads
                    .iter()
                    .map(|&tid| {
                        sched::set_thread(
                            &format!("libzmq (tid {tid})"),
                            tid,
                            cfg.performance.realtime_priority,
                        )
                    })
                    .collect()
            }
        } else {
            Vec::new()
        };
        let pinning = pin_results.report(pin_request, pin_plan, &hot_names, zmq_io);

        Ok(Engine {
            shared,
            layout: Layout {
                data_endpoint: source_layouts[0].data_endpoint.clone(),
                heartbeat_endpoint: source_layouts[0].heartbeat_endpoint.clone(),
                sources: source_layouts,
                sources_listed: cfg.sources_listed(),
                output_sources: output_source,
                outputs,
                slab_frames: pool_total,
                slab_bytes,
                ring_capacity,
                pinning,
                spin,
            },
            rx: rx_handles,
            recorders,
            shards: shard_handles,
            hb: hb_handles,
            _ctx: ctx,
        })
    }

    /// Shared counters and flags.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The published statistics alone (what the dashboard and live stats read).
    pub fn stats(&self) -> &Arc<Stats> {
        &self.shared.stats
    }

    /// What was set up.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// True once a thread stopped on its own (panic or fatal error).
    pub fn has_failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
            || self.rx.iter().any(|h| h.is_finished())
            || self.shards.iter().any(|h| h.is_finished())
    }

    /// Asks every thread to stop (flush, then exit).
    pub fn request_stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }

    /// Stops (if not yet), joins every thread, and returns the final report.
    pub fn shutdown(mut self) -> Report {
        self.request_stop();
        let mut failed = self.shared.failed.load(Ordering::SeqCst);
        let mut latencies = Latencies::new();
        for h in self.rx.drain(..) {
            match h.join() {
                Ok(l) => latencies.merge(&l),
                Err(_) => failed = true,
            }
        }
        // The receivers are gone: what they taped is all in the rings; write it out.
        let recorded = self
            .recorders
            .drain(..)
            .map(|(path, rec)| {
                let stats = rec.stats().clone();
                let result = rec.finish().map_err(|e| e.to_string());
                RecordReport {
                    path,
                    written: stats.written.load(Ordering::Relaxed),
                    dropped: stats.dropped.load(Ordering::Relaxed),
                    failed: stats.failed.load(Ordering::Relaxed),
                    error: result.err(),
                }
            })
            .collect();
        for h in self.shards.drain(..) {
            match h.join() {
                Ok(l) => latencies.merge(&l),
                Err(_) => failed = true,
            }
        }
        for h in self.hb.drain(..) {
            if h.join().is_err() {
                failed = true;
            }
        }
        // Everything the threads handed over while running (collected after they stopped,
        // so nothing is left in the rings), plus what each returned.
        latencies.merge(&self.shared.latencies_so_far());
        let sources = (0..self.shared.rx.len())
            .map(|i| SourceReport {
                name: self
                    .layout
                    .sources
                    .get(i)
                    .map_or_else(String::new, |s| s.name.clone()),
                endpoint: self
                    .layout
                    .sources
                    .get(i)
                    .map_or_else(String::new, |s| s.data_endpoint.clone()),
                rx: RX_COUNTERS
                    .iter()
                    .copied()
                    .zip(self.shared.rx[i].values())
                    .collect(),
                hb: HB_COUNTERS
                    .iter()
                    .copied()
                    .zip(self.shared.hb[i].values())
                    .collect(),
            })
            .collect();
        Report {
            latencies,
            recorded,
            sources,
            sources_listed: self.layout.sources_listed,
            output_sources: self.layout.output_sources.clone(),
            rx: self.shared.rx.snapshot(),
            tx: (0..self.shared.tx.len())
                .map(|i| self.shared.tx_snapshot(i))
                .collect(),
            outputs: self.layout.outputs.iter().map(|o| o.name.clone()).collect(),
            hb: self.shared.hb.snapshot(),
            failed: failed || self.shared.failed.load(Ordering::SeqCst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_json_matches_original() {
        assert_eq!(
            heartbeat_message("1618"),
            r#"{"application": "ZMQ2OSC-1618", "uuid": "1618", "type": "heartbeat"}"#
        );
        assert_eq!(
            heartbeat_message("abcdef-12"),
            r#"{"application": "ZMQ2OSC-abcd", "uuid": "abcdef-12", "type": "heartbeat"}"#
        );
        assert_eq!(
            heartbeat_message("a\"b"),
            r#"{"application": "ZMQ2OSC-a\"b", "uuid": "a\"b", "type": "heartbeat"}"#
        );
    }

    #[test]
    fn auto_uuid_is_stable_per_run_and_distinct_from_default() {
        let a = effective_uuid("auto");
        assert_eq!(a, effective_uuid("auto"));
        assert_eq!(a.len(), 8);
        assert_eq!(effective_uuid("1618"), "1618");
        assert!(heartbeat_message(&a).contains(&format!("ZMQ2OSC-{}", &a[..4])));
    }

    #[test]
    fn per_source_thread_names_fit_linux() {
        assert_eq!(source_thread_name("zmq_rx", "probeA", 0, 1), "zmq_rx");
        assert_eq!(
            source_thread_name("zmq_rx", "probeA", 0, 2),
            "zmq_rx_probeA"
        );
        assert_eq!(source_thread_name("zmq_hb", "B", 1, 2), "zmq_hb_B");
        // Too long for 15 bytes, or not plain ASCII (a NUL would even make spawn fail).
        assert_eq!(
            source_thread_name("zmq_rx", "probe_left_A", 3, 4),
            "zmq_rx_3"
        );
        assert_eq!(source_thread_name("zmq_rx", "a\0b", 1, 2), "zmq_rx_1");
        assert_eq!(source_thread_name("zmq_rx", "sonde-é", 1, 2), "zmq_rx_1");
        for n in ["zmq_rx_probeA", "zmq_rx_3"] {
            assert!(n.len() <= 15);
        }
    }

    #[test]
    fn heartbeat_uuid_per_source() {
        let (one, _) = Config::from_json_str(r#"{"zmq": {"sources": [{"name": "a"}]}}"#).unwrap();
        assert_eq!(source_uuid(&one, "a"), "1618", "one source: unchanged");
        let (two, _) = Config::from_json_str(
            r#"{"zmq": {"app_uuid": "77", "sources": [{"name": "a"}, {"name": "b", "data_port": 7000}]}}"#,
        )
        .unwrap();
        assert_eq!(source_uuid(&two, "a"), "77-a");
        assert_eq!(source_uuid(&two, "b"), "77-b");
        let (auto, _) = Config::from_json_str(
            r#"{"zmq": {"app_uuid": "auto", "sources": [{"name": "a"}, {"name": "b", "data_port": 7000}]}}"#,
        )
        .unwrap();
        let (a, b) = (source_uuid(&auto, "a"), source_uuid(&auto, "b"));
        assert_ne!(a, b);
        assert_eq!(a, format!("{}-a", effective_uuid("auto")));
    }
}
