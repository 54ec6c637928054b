//! The running bridge: builds slabs, rings and sockets, spawns the threads, joins them.
//!
//! Threads (names as shown by `top -H`):
//!
//! * `zmq_rx` — ZMQ SUB receive, header parsing, frame assembly into slab frames; pushes
//!   complete frames into each shard's ring and recycles frames from the return rings.
//! * `osc_tx_0` — an encoder shard: owns one output (destination + format), downsamples,
//!   batches, encodes and sends. Frames of one output never split across shards.
//! * `zmq_hb` — heartbeat REQ to `data_port + 1` every `zmq.heartbeat_timeout` s, with a
//!   lazy-pirate reset of that socket (never the data socket) after
//!   `zmq.not_responding_timeout` s without a reply.
//!
//! The hot threads spin briefly when idle, then park (the receiver in `zmq_poll`, shards in
//! `thread::park_timeout`), so an idle bridge costs next to nothing. A panic in any thread
//! stops the bridge and is reported as a failure.

use crate::config::{Config, OverflowStrategy, PerformanceMode};
use crate::frame::{frame_bytes, EventBuffer, Frame};
use crate::ingest::assembler::{Assembler, AssemblerConfig, FrameIo, Reject};
use crate::ingest::protocol::{self, Envelope, Header, Malformed};
use crate::net::{RateLimitedLog, SenderOptions, UdpSender};
use crate::output::{LayoutInfo, Mode, OutputFormat, OutputPipeline, StatusValues, Transmit};
use crate::telemetry::latency::{
    span, CounterBlock, Latencies, LatencyCollector, LatencyPublisher,
};
use rtrb::{Consumer, Producer, RingBuffer};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Receiver counters (published by `zmq_rx`).
pub const RX_COUNTERS: &[&str] = &[
    "messages",
    "data_msgs",
    "ttl_events",
    "spikes",
    "malformed",
    "blocks_emitted",
    "blocks_incomplete",
    "blocks_incomplete_upstream",
    "blocks_learning",
    "blocks_no_frame",
    "extra_channel_msgs",
    "upstream_missing_msgs",
    "upstream_sample_gaps",
    "upstream_missing_samples",
    "backward_jumps",
    "restarts",
    "stream_changes",
    "channel_set_changes",
    "data_timeouts",
    "dropped_newest",
    "block_waits",
    "channels",
    "sample_rate_mhz",
    "zmq_errors",
    "blocks_opened",
    "bad_envelope",
    "too_few_frames",
    "too_many_frames",
    "bad_header",
    "unknown_type",
    "bad_num_samples",
    "payload_length",
    "channel_out_of_range",
    "bad_sample_rate",
    "block_size_mismatch",
    "duplicate_channel",
    "bad_event",
    "bad_spike",
    "late_msgs",
    "blocks_filled",
    "rows_filled",
];
const RX_MALFORMED_BASE: usize = 25;

/// Shard counters (published by each `osc_tx_N`).
pub const TX_COUNTERS: &[&str] = &[
    "frames",
    "dropped_oldest",
    "frames_skipped",
    "rows",
    "datagrams",
    "bytes",
    "oversize",
    "group_samples_discarded",
    "timer_flushes",
    "forced_flushes",
    "batches",
    "sent",
    "send_dropped",
    "refused",
    "would_block_dropped",
    "too_big",
    "other_errors",
    "syscalls",
    "gso_batches",
    "gso_fallbacks",
    "queued",
    "group_samples_pending",
    "split_messages",
    "ttl_sent",
    "spikes_sent",
    "status_sent",
    "notices_sent",
    // Written by the receiver (not the shard): what it dropped or waited for this output.
    "dropped_newest",
    "block_waits",
];
const TX_DROPPED_NEWEST: usize = 27;
const TX_BLOCK_WAITS: usize = 28;

/// Heartbeat counters (published by `zmq_hb`).
pub const HB_COUNTERS: &[&str] = &[
    "sent",
    "replies",
    "resets",
    "state",
    "data_connects",
    "data_disconnects",
    "data_handshake_failures",
    "data_manual_reconnects",
];

/// Heartbeat states as published in the `state` counter.
pub const HB_STATES: [&str; 4] = ["connecting", "online", "not_responding", "reconnecting"];

/// Engine options that are not part of the original's config file.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Pin hot threads to cores when there are enough cores.
    pub pin_threads: bool,
    /// UDP sender options.
    pub sender: SenderOptions,
    /// Log lines go to stderr when true.
    pub verbose: bool,
    /// Test hook: the encoder shard panics after this many frames (proves that a dead
    /// thread stops the bridge with a failure instead of a silent stall).
    #[doc(hidden)]
    pub panic_after_frames: Option<u64>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            pin_threads: false,
            sender: SenderOptions::default(),
            verbose: true,
            panic_after_frames: None,
        }
    }
}

/// State shared by the threads and the controller.
#[derive(Debug)]
pub struct Shared {
    /// Set to stop every thread.
    pub stop: AtomicBool,
    /// Set when a thread panicked or failed.
    pub failed: AtomicBool,
    /// Receiver counters ([`RX_COUNTERS`]).
    pub rx: CounterBlock,
    /// Shard counters ([`TX_COUNTERS`]), one block per output.
    pub tx: Vec<CounterBlock>,
    /// Heartbeat counters ([`HB_COUNTERS`]).
    pub hb: CounterBlock,
    /// Wall-clock ms of the last received message (0 = never).
    pub last_message_ms: AtomicU64,
    /// Set by the monitor when libzmq gave up on the data connection (it does not reconnect
    /// after a protocol error such as a message above ZMQ_MAXMSGSIZE); the receiver then
    /// connects again.
    pub reconnect_data: AtomicBool,
    /// Stream and channel names of the current layout (written on layout changes only).
    pub layout: Arc<Mutex<LayoutInfo>>,
    /// Latency histograms handed over by the hot threads once a second (the hot threads
    /// never lock this: they pass histograms through SPSC rings; only readers lock it).
    pub latency: Mutex<LatencyCollector>,
}

impl Shared {
    /// p50, p99 (ns) and count of a latency span so far (`None` before any value).
    pub fn latency_summary(&self, span: &str) -> Option<(u64, u64, u64)> {
        let mut c = self.latency.lock().ok()?;
        let h = c.collect().get(span)?;
        (!h.is_empty()).then(|| (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.len()))
    }

    /// A copy of every latency distribution handed over so far.
    pub fn latencies_so_far(&self) -> Latencies {
        match self.latency.lock() {
            Ok(mut c) => c.collect().clone(),
            Err(_) => Latencies::new(),
        }
    }
}

/// One output as the engine runs it.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    /// Name in reports.
    pub name: String,
    /// Destination host.
    pub host: String,
    /// Destination port.
    pub port: u16,
    /// What to send.
    pub format: OutputFormat,
    /// Spread each block's datagrams over the block's duration.
    pub pacing: bool,
    /// Multicast TTL.
    pub multicast_ttl: u32,
}

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
        let what = match f.mode {
            Mode::Sample => format!("{}/sample", f.base_address),
            Mode::Batch => format!(
                "{}/batch/{} (int N + N·{} floats, channel-major)",
                f.base_address, f.batch_size, f.batch_size
            ),
            Mode::PerChannel => format!("{} per channel", f.channel_address_format),
            Mode::Blob => format!(
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

/// What the engine was started with (for the start-up report).
#[derive(Debug, Clone)]
pub struct Layout {
    /// ZMQ data endpoint.
    pub data_endpoint: String,
    /// Heartbeat endpoint.
    pub heartbeat_endpoint: String,
    /// The outputs, one shard each.
    pub outputs: Vec<OutputLayout>,
    /// Frames in the slab pool.
    pub slab_frames: usize,
    /// Bytes of sample memory reserved by the pool.
    pub slab_bytes: usize,
    /// Ring capacity (blocks) between receiver and each shard.
    pub ring_capacity: usize,
    /// Core ids the hot threads were pinned to (empty = not pinned) and why.
    pub pinning: String,
    /// Idle spin before parking.
    pub spin: Duration,
}

/// Final results of a run.
#[derive(Debug)]
pub struct Report {
    /// Merged latency histograms.
    pub latencies: Latencies,
    /// Receiver counters at exit.
    pub rx: Vec<(&'static str, u64)>,
    /// Shard counters at exit, one list per output.
    pub tx: Vec<Vec<(&'static str, u64)>>,
    /// Output names, in `tx` order.
    pub outputs: Vec<String>,
    /// Heartbeat counters at exit.
    pub hb: Vec<(&'static str, u64)>,
    /// A thread panicked or failed.
    pub failed: bool,
}

fn lookup(v: &[(&'static str, u64)], n: &str) -> u64 {
    v.iter().find(|(k, _)| *k == n).map_or(0, |x| x.1)
}

impl Report {
    fn rx(&self, n: &str) -> u64 {
        lookup(&self.rx, n)
    }

    /// The books: every block received is accounted for exactly once; for every output,
    /// every block sent on is encoded or dropped by the queue policy, and every datagram
    /// built is sent or failed. Returns the text and whether everything balances.
    pub fn ledger(&self) -> (String, bool) {
        let opened = self.rx("blocks_opened");
        let emitted = self.rx("blocks_emitted");
        let inc = self.rx("blocks_incomplete");
        let up = self.rx("blocks_incomplete_upstream");
        let learn = self.rx("blocks_learning");
        let noframe = self.rx("blocks_no_frame");
        let b1 = opened == emitted + inc + up + learn + noframe;
        let mark = |b: bool| if b { "balanced" } else { "NOT BALANCED" };
        let mut ok = b1;
        let mut text = format!(
            "ledger     blocks received {opened} = sent on {emitted} (of which {} with missing channels filled) + incomplete {inc} \
             + incomplete(upstream loss) {up} + learning {learn} + no free frame {noframe}  [{}]; upstream: {} messages missing by message_num, {} samples by sample_num",
            self.rx("blocks_filled"),
            mark(b1),
            self.rx("upstream_missing_msgs"),
            self.rx("upstream_missing_samples"),
        );
        for (i, t) in self.tx.iter().enumerate() {
            let g = |n: &str| lookup(t, n);
            let b2 =
                emitted == g("frames") + g("dropped_oldest") + g("dropped_newest") + g("queued");
            let b3 = g("datagrams") == g("sent") + g("send_dropped");
            ok &= b2 && b3;
            let name = self.outputs.get(i).map_or("output", String::as_str);
            text.push_str(&format!(
                "\nledger     [{name}] blocks sent on {emitted} = encoded {} + dropped oldest {} + dropped newest {} \
                 + still queued {}  [{}]; datagrams built {} = sent {} + failed to send {}  [{}]; \
                 refused as oversize {}; samples discarded in unfinished groups {} (+{} held at stop)",
                g("frames"),
                g("dropped_oldest"),
                g("dropped_newest"),
                g("queued"),
                mark(b2),
                g("datagrams"),
                g("sent"),
                g("send_dropped"),
                mark(b3),
                g("oversize"),
                g("group_samples_discarded"),
                g("group_samples_pending"),
            ));
        }
        (text, ok)
    }
}

/// A running bridge.
pub struct Engine {
    shared: Arc<Shared>,
    layout: Layout,
    rx: Option<JoinHandle<Latencies>>,
    shards: Vec<JoinHandle<Latencies>>,
    hb: Option<JoinHandle<()>>,
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
/// are refused, never split).
pub fn output_format(cfg: &Config) -> OutputFormat {
    let p = &cfg.osc.processing;
    let mode = if cfg.osc.send_individual_channels {
        Mode::PerChannel
    } else if cfg.performance.enable_batching {
        Mode::Batch
    } else {
        Mode::Sample
    };
    OutputFormat {
        mode,
        base_address: cfg.osc.base_address.clone(),
        channel_address_format: cfg.osc.channel_address_format.clone(),
        factor: p.downsampling_factor as usize,
        method: p.downsampling_method,
        batch_size: cfg.effective_batch_size() as usize,
        batch_timeout: Duration::from_secs_f64(p.batch_timeout_ms / 1000.0),
        max_channels: cfg.performance.max_channels as usize,
        ..Default::default()
    }
}

/// The outputs a config describes: its `outputs` list, or the original's single output.
pub fn output_specs(cfg: &Config) -> Vec<OutputSpec> {
    if cfg.outputs.is_empty() {
        return vec![OutputSpec {
            name: "osc".into(),
            host: cfg.osc.host.clone(),
            port: cfg.osc.port,
            format: output_format(cfg),
            pacing: false,
            multicast_ttl: 1,
        }];
    }
    cfg.outputs
        .iter()
        .map(|o| OutputSpec {
            name: o.name.clone(),
            host: o.host.clone(),
            port: o.port,
            pacing: o.pacing,
            multicast_ttl: o.multicast_ttl,
            format: OutputFormat {
                mode: o.format,
                base_address: o.base_address.clone(),
                channel_address_format: o.address.clone(),
                factor: o.downsampling_factor as usize,
                method: o.downsampling_method,
                batch_size: o.batch_size as usize,
                batch_timeout: Duration::from_secs_f64(o.batch_timeout_ms / 1000.0),
                max_channels: cfg.performance.max_channels as usize,
                selection: o.channels.clone(),
                names: o.names.clone(),
                sparse: o.sparse,
                max_datagram: o.max_datagram,
                split: true,
                sample_number: o.sample_number,
                bundle: o.bundle,
                events: o.events,
                spikes: o.spikes,
                spike_waveform: o.spike_waveform,
                status: o.status,
                notices: o.notices,
            },
        })
        .collect()
}

/// Idle spin before a hot thread parks, by `performance.mode`.
pub fn idle_spin(mode: PerformanceMode) -> Duration {
    match mode {
        PerformanceMode::LowLatency => Duration::from_micros(500),
        PerformanceMode::Balanced => Duration::from_micros(50),
        PerformanceMode::HighThroughput => Duration::from_micros(5),
    }
}

struct ShardStart {
    name: String,
    frames: Consumer<Arc<Frame>>,
    ret: Producer<Arc<Frame>>,
    pipeline: OutputPipeline,
    sender: UdpSender,
    pacing: bool,
}

impl Engine {
    /// Validates, allocates everything, connects sockets and starts the threads.
    pub fn start(cfg: &Config, opts: &EngineOptions) -> Result<Engine, String> {
        let max_channels = cfg.performance.max_channels as usize;
        let max_block = cfg.performance.max_block_samples as usize;
        let queue = cfg.performance.osc_queue_max_size as usize;
        let policy = cfg.performance.osc_queue_overflow_strategy;
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
        // Each shard may hold a full ring plus the block it works on; the receiver one open
        // block and one waiting to be pushed.
        let pool = specs.len() * (ring_capacity + 1) + 3;
        let slab_bytes = pool * frame_bytes(max_channels, max_block);

        let layout_info = Arc::new(Mutex::new(LayoutInfo::default()));
        let mut outputs = Vec::new();
        let mut starts = Vec::new();
        let mut producers = Vec::new();
        let mut ret_consumers = Vec::new();
        for spec in &specs {
            let pipeline =
                OutputPipeline::with_layout(spec.format.clone(), Some(layout_info.clone()))
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
            let (rtx, rrx) = RingBuffer::<Arc<Frame>>::new(pool);
            producers.push(ptx);
            ret_consumers.push(rrx);
            starts.push(ShardStart {
                name: spec.name.clone(),
                frames: crx,
                ret: rtx,
                pipeline,
                sender,
                pacing: spec.pacing,
            });
        }

        let ctx = zmq::Context::new();
        let data_endpoint = format!("tcp://{}:{}", cfg.zmq.host, cfg.zmq.data_port);
        let heartbeat_endpoint = format!("tcp://{}:{}", cfg.zmq.host, cfg.zmq.data_port as u32 + 1);
        let sub = ctx
            .socket(zmq::SUB)
            .map_err(|e| format!("zmq socket: {e}"))?;
        let largest_msg = (max_block * 4).max(1 << 16) as i64;
        sub.set_maxmsgsize(largest_msg * 4)
            .and_then(|_| sub.set_rcvhwm(10_000))
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

        let (collector, mut lat_pubs) =
            LatencyCollector::new(1 + specs.len(), Duration::from_secs(1));
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            rx: CounterBlock::new(RX_COUNTERS),
            tx: specs
                .iter()
                .map(|_| CounterBlock::new(TX_COUNTERS))
                .collect(),
            hb: CounterBlock::new(HB_COUNTERS),
            last_message_ms: AtomicU64::new(0),
            reconnect_data: AtomicBool::new(false),
            layout: layout_info,
            latency: Mutex::new(collector),
        });
        let rx_lat_pub = lat_pubs.remove(0);

        // Slab: every frame allocated now.
        let free: Vec<Arc<Frame>> = (0..pool)
            .map(|_| Arc::new(Frame::new(max_channels, max_block)))
            .collect();

        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let hot_threads = 1 + specs.len();
        let pin = opts.pin_threads && cfg.performance.pin_threads;
        let (pins, pinning): (Vec<Option<core_affinity::CoreId>>, String) = if !pin {
            (vec![None; hot_threads], "off".to_string())
        } else if cores.len() < hot_threads + 1 {
            (
                vec![None; hot_threads],
                format!(
                    "skipped: {} cores < {} ({} hot threads + libzmq I/O and other processes)",
                    cores.len(),
                    hot_threads + 1,
                    hot_threads
                ),
            )
        } else {
            let n = cores.len();
            let p: Vec<_> = (0..hot_threads).map(|i| Some(cores[n - 1 - i])).collect();
            let desc = p
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let name = if i == 0 {
                        "zmq_rx".to_string()
                    } else {
                        format!("osc_tx_{}", i - 1)
                    };
                    format!("{name} on core {}", c.map_or(0, |c| c.id))
                })
                .collect::<Vec<_>>()
                .join(", ");
            (p, desc)
        };

        // Shard threads.
        let mut shard_handles = Vec::new();
        for (index, st) in starts.into_iter().enumerate() {
            let s2 = shared.clone();
            let core = pins[index + 1];
            let panic_after = opts.panic_after_frames;
            let verbose = opts.verbose;
            let lp = lat_pubs.remove(0);
            let h = thread::Builder::new()
                .name(format!("osc_tx_{index}"))
                .spawn(move || {
                    let _g = PanicGuard(s2.clone());
                    if let Some(c) = core {
                        core_affinity::set_for_current(c);
                    }
                    run_shard(s2, index, st, policy, queue, spin, panic_after, verbose, lp)
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
        let rx_shared = shared.clone();
        let links: Vec<ShardLink> = producers
            .into_iter()
            .zip(ret_consumers)
            .zip(&shard_handles)
            .map(|((ring, ret), h)| ShardLink {
                ring,
                ret,
                thread: h.thread().clone(),
                dropped_newest: 0,
                block_waits: 0,
            })
            .collect();
        let verbose = opts.verbose;
        let rx_endpoint = data_endpoint.clone();
        let rx_core = pins[0];
        let rx = thread::Builder::new()
            .name("zmq_rx".into())
            .spawn(move || {
                let _g = PanicGuard(rx_shared.clone());
                if let Some(c) = rx_core {
                    core_affinity::set_for_current(c);
                }
                let io = RxIo {
                    free,
                    links,
                    policy,
                    shared: rx_shared.clone(),
                    events: EventBuffer::new(),
                    events_since: None,
                    stream: String::with_capacity(256),
                    names: vec![String::new(); max_channels],
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
                )
            })
            .map_err(|e| format!("spawn zmq_rx: {e}"))?;

        let hb_shared = shared.clone();
        let hb_ctx = ctx.clone();
        let hb_cfg = HeartbeatConfig::from_config(cfg, &heartbeat_endpoint);
        let data_ep = data_endpoint.clone();
        let hb = thread::Builder::new()
            .name("zmq_hb".into())
            .spawn(move || {
                let _g = PanicGuard(hb_shared.clone());
                run_heartbeat(hb_shared, hb_ctx, hb_cfg, monitor, &data_ep, verbose)
            })
            .map_err(|e| format!("spawn zmq_hb: {e}"))?;

        Ok(Engine {
            shared,
            layout: Layout {
                data_endpoint,
                heartbeat_endpoint,
                outputs,
                slab_frames: pool,
                slab_bytes,
                ring_capacity,
                pinning,
                spin,
            },
            rx: Some(rx),
            shards: shard_handles,
            hb: Some(hb),
            _ctx: ctx,
        })
    }

    /// Shared counters and flags.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// What was set up.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// True once a thread stopped on its own (panic or fatal error).
    pub fn has_failed(&self) -> bool {
        self.shared.failed.load(Ordering::SeqCst)
            || self.rx.as_ref().is_some_and(|h| h.is_finished())
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
        if let Some(h) = self.rx.take() {
            match h.join() {
                Ok(l) => latencies.merge(&l),
                Err(_) => failed = true,
            }
        }
        for h in self.shards.drain(..) {
            match h.join() {
                Ok(l) => latencies.merge(&l),
                Err(_) => failed = true,
            }
        }
        if let Some(h) = self.hb.take() {
            if h.join().is_err() {
                failed = true;
            }
        }
        // Everything the threads handed over while running (collected after they stopped,
        // so nothing is left in the rings), plus what each returned.
        latencies.merge(&self.shared.latencies_so_far());
        Report {
            latencies,
            rx: self.shared.rx.snapshot(),
            tx: self.shared.tx.iter().map(|c| c.snapshot()).collect(),
            outputs: self.layout.outputs.iter().map(|o| o.name.clone()).collect(),
            hb: self.shared.hb.snapshot(),
            failed: failed || self.shared.failed.load(Ordering::SeqCst),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver

struct ShardLink {
    ring: Producer<Arc<Frame>>,
    ret: Consumer<Arc<Frame>>,
    thread: Thread,
    dropped_newest: u64,
    block_waits: u64,
}

struct RxIo {
    free: Vec<Arc<Frame>>,
    links: Vec<ShardLink>,
    policy: OverflowStrategy,
    shared: Arc<Shared>,
    /// TTL events and spikes waiting to ride on the next frame.
    events: EventBuffer,
    events_since: Option<Instant>,
    /// Current stream name and OE channel names (updated when they change).
    stream: String,
    names: Vec<String>,
    published_generation: Option<u32>,
}

impl RxIo {
    /// Takes a frame back from a shard: onto the free list once no shard holds it.
    fn reclaim(&mut self, mut f: Arc<Frame>) {
        if Arc::get_mut(&mut f).is_some() {
            self.free.push(f);
        }
        // else: another shard still reads it and will return its own handle; dropping this
        // one only decrements the count (the last handle always comes back here).
    }

    fn recycle(&mut self) {
        for i in 0..self.links.len() {
            while let Ok(f) = self.links[i].ret.pop() {
                self.reclaim(f);
            }
        }
    }

    /// Publishes stream and channel names for a new layout (on layout changes only).
    fn publish_layout(&mut self, f: &Frame) {
        // Events-only frames carry no layout; never publish from them.
        if f.num_samples == 0 || self.published_generation == Some(f.layout_generation) {
            return;
        }
        self.published_generation = Some(f.layout_generation);
        if let Ok(mut info) = self.shared.layout.lock() {
            info.generation = f.layout_generation;
            info.stream.clone_from(&self.stream);
            info.names.clear();
            for &c in &f.channels {
                if let Some(n) = self.names.get(c as usize).filter(|n| !n.is_empty()) {
                    info.names.push((c, n.clone()));
                }
            }
        }
    }

    /// Sends pending events on their own when no block is coming to carry them.
    fn flush_events(&mut self, now: Instant) {
        if self.events.is_empty()
            || self
                .events_since
                .is_some_and(|t| now.duration_since(t) < Duration::from_millis(50))
        {
            return;
        }
        let Some(mut frame) = self.take() else { return };
        if let Some(f) = Arc::get_mut(&mut frame) {
            f.seq = 0;
            f.num_samples = 0;
            f.channels.clear();
            f.arrival = now;
            f.header_timestamp_ms = None;
        }
        self.events_since = None;
        self.emit(frame);
    }
}

impl FrameIo for RxIo {
    /// A frame for a newly opened block: it takes the events received before the block's
    /// first message (the plugin sends a block's events first).
    fn take(&mut self) -> Option<Arc<Frame>> {
        if self.free.is_empty() {
            self.recycle();
        }
        let mut frame = self.free.pop()?;
        if let Some(f) = Arc::get_mut(&mut frame) {
            if self.events.is_empty() {
                f.events.clear();
            } else {
                self.events.move_into(f);
                self.events_since = None;
            }
        }
        Some(frame)
    }
    /// A dropped block's frame: its events still go out (as an events-only frame).
    fn give(&mut self, mut frame: Arc<Frame>) {
        let has_events = Arc::get_mut(&mut frame).is_some_and(|f| {
            if f.events.is_empty() {
                return false;
            }
            f.seq = 0;
            f.num_samples = 0;
            f.channels.clear();
            true
        });
        if has_events {
            self.emit(frame);
        } else {
            self.reclaim(frame);
        }
    }
    fn emit(&mut self, frame: Arc<Frame>) {
        self.publish_layout(&frame);
        let n = self.links.len();
        for i in 0..n {
            // One handle per shard (an atomic increment, no allocation).
            let mut handle = Arc::clone(&frame);
            loop {
                match self.links[i].ring.push(handle) {
                    Ok(()) => {
                        self.links[i].thread.unpark();
                        break;
                    }
                    Err(rtrb::PushError::Full(h)) => {
                        if self.policy != OverflowStrategy::Block
                            || self.shared.stop.load(Ordering::Relaxed)
                        {
                            // drop_newest, or drop_oldest with the shard stalled past the
                            // ring's headroom: this output loses the new block.
                            if h.num_samples > 0 {
                                self.links[i].dropped_newest += 1;
                            }
                            self.reclaim(h);
                            break;
                        }
                        // block: stop reading ZMQ until the shard makes room; ZeroMQ's
                        // high-water mark then drops upstream (visible as message_num gaps).
                        self.links[i].block_waits += 1;
                        self.links[i].thread.unpark();
                        handle = h;
                        self.recycle();
                        thread::park_timeout(Duration::from_micros(200));
                    }
                }
            }
        }
        // Our own handle: back to the free list if every shard dropped the frame, else
        // released (the shards return theirs through the rings).
        self.reclaim(frame);
    }
}

fn publish_rx(
    shared: &Shared,
    asm: &Assembler,
    io: &RxIo,
    messages: u64,
    zmq_errors: u64,
    ev: (u64, u64),
) {
    let c = &asm.counters;
    let r = &shared.rx;
    let vals = [
        messages,
        c.data_msgs,
        ev.0,
        ev.1,
        c.malformed_total(),
        c.blocks_emitted,
        c.blocks_incomplete,
        c.blocks_incomplete_upstream,
        c.blocks_learning,
        c.blocks_no_frame,
        c.extra_channel_msgs,
        c.upstream_missing_msgs,
        c.upstream_sample_gaps,
        c.upstream_missing_samples,
        c.backward_jumps,
        c.restarts,
        c.stream_changes,
        c.channel_set_changes,
        c.data_timeouts,
        io.links.iter().map(|l| l.dropped_newest).sum(),
        io.links.iter().map(|l| l.block_waits).sum(),
        asm.channel_set().len() as u64,
        asm.stream().map_or(0, |(_, rate)| (rate * 1000.0) as u64),
        zmq_errors,
        c.blocks_opened,
    ];
    for (i, v) in vals.iter().enumerate() {
        r.set(i, *v);
    }
    for (k, v) in c.malformed.iter().enumerate() {
        r.set(RX_MALFORMED_BASE + k, *v);
    }
    r.set(RX_MALFORMED_BASE + Malformed::COUNT, c.late_msgs);
    r.set(RX_MALFORMED_BASE + Malformed::COUNT + 1, c.blocks_filled);
    r.set(RX_MALFORMED_BASE + Malformed::COUNT + 2, c.rows_filled);
    for (l, t) in io.links.iter().zip(&shared.tx) {
        t.set(TX_DROPPED_NEWEST, l.dropped_newest);
        t.set(TX_BLOCK_WAITS, l.block_waits);
    }
}

/// Receives the rest of a multipart message into `scratch` (discarding it).
fn drain(sub: &zmq::Socket, scratch: &mut [u8]) -> usize {
    let mut n = 0;
    while sub.get_rcvmore().unwrap_or(false) {
        if sub.recv_into(scratch, 0).is_err() {
            break;
        }
        n += 1;
    }
    n
}

#[allow(clippy::too_many_arguments)]
fn run_receiver(
    shared: Arc<Shared>,
    sub: zmq::Socket,
    endpoint: &str,
    mut asm: Assembler,
    mut io: RxIo,
    max_block: usize,
    spin: Duration,
    verbose: bool,
    mut lat_pub: LatencyPublisher,
) -> Latencies {
    let max_channels = io.names.len();
    let mut lat = Latencies::new();
    let mut env = [0u8; 16];
    let mut hdr = vec![0u8; 64 * 1024];
    let mut scratch = vec![0u8; (max_block * 4).max(64 * 1024)];
    let mut messages = 0u64;
    let mut zmq_errors = 0u64;
    let mut ttl_events = 0u64;
    let mut spikes = 0u64;
    let mut block_first: Option<(i64, Instant)> = None;
    let mut idle_since: Option<Instant> = None;
    let mut log = RateLimitedLog::default();
    crate::hot::mark_current_thread_hot();
    // Counters and latency histograms go to the controller together.
    macro_rules! publish {
        ($now:expr) => {
            publish_rx(
                &shared,
                &asm,
                &io,
                messages,
                zmq_errors,
                (ttl_events, spikes),
            );
            lat_pub.maybe_publish(&mut lat, $now);
        };
    }

    while !shared.stop.load(Ordering::Relaxed) {
        let n = match sub.recv_into(&mut env, zmq::DONTWAIT) {
            Ok(n) => n,
            Err(zmq::Error::EAGAIN) => {
                let now = Instant::now();
                io.recycle();
                asm.poll(now, &mut io);
                if !asm.has_open_block() {
                    io.flush_events(now);
                }
                if shared.reconnect_data.swap(false, Ordering::Relaxed) {
                    let _ = sub.disconnect(endpoint);
                    if let Err(e) = sub.connect(endpoint) {
                        zmq_errors += 1;
                        if verbose {
                            eprintln!("zmq_rx: reconnect to {endpoint} failed: {e}");
                        }
                    }
                }
                let since = *idle_since.get_or_insert(now);
                if now.duration_since(since) < spin {
                    std::hint::spin_loop();
                    continue;
                }
                publish!(now);
                // Park in zmq_poll until data, the next deadline, or 10 ms.
                let mut wait = asm.next_deadline().map_or(10, |d| {
                    d.saturating_duration_since(now).as_millis().clamp(1, 10) as i64
                });
                if !io.events.is_empty() {
                    wait = wait.min(5);
                }
                let mut items = [sub.as_poll_item(zmq::POLLIN)];
                let _ = zmq::poll(&mut items, wait);
                continue;
            }
            Err(zmq::Error::ETERM) => break,
            Err(e) => {
                zmq_errors += 1;
                if verbose
                    && log
                        .admit(crate::net::LogKind::Other, Instant::now())
                        .is_some()
                {
                    eprintln!("zmq_rx: receive error: {e}");
                }
                // A persistent error must not spin a core.
                thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        idle_since = None;
        messages += 1;
        let now = Instant::now();
        shared
            .last_message_ms
            .store(wall_ms() as u64, Ordering::Relaxed);
        if messages.is_multiple_of(1024) {
            publish!(now);
            // No asm.poll() here: deadlines only apply once the socket is drained, so a
            // receiver descheduled for a while never drops a block whose rest is queued.
        }
        let more = sub.get_rcvmore().unwrap_or(false);
        let envelope = if n <= env.len() {
            protocol::parse_envelope(&env[..n])
        } else {
            None
        };
        let Some(envelope) = envelope else {
            asm.counters.count(Malformed::BadEnvelope);
            drain(&sub, &mut scratch);
            continue;
        };
        if !more {
            asm.counters.count(Malformed::TooFewFrames);
            continue;
        }
        let hn = match sub.recv_into(&mut hdr, 0) {
            Ok(hn) => hn,
            Err(_) => {
                zmq_errors += 1;
                drain(&sub, &mut scratch);
                continue;
            }
        };
        let more = sub.get_rcvmore().unwrap_or(false);
        let parsed = if hn <= hdr.len() {
            protocol::parse_header(&hdr[..hn])
        } else {
            Err(Malformed::BadHeader)
        };
        let h = match parsed {
            Ok(h) => h,
            Err(k) => {
                asm.counters.count(k);
                if more {
                    drain(&sub, &mut scratch);
                }
                continue;
            }
        };
        asm.observe_message_num(h.message_num(), now, &mut io);
        match (envelope, h) {
            (Envelope::Data, Header::Data(d)) => {
                if !more {
                    asm.counters.count(Malformed::TooFewFrames);
                    continue;
                }
                // Names for address templates and notices (copied only when they change).
                if io.stream != d.stream {
                    io.stream.clear();
                    io.stream.push_str(&d.stream);
                }
                if let (Some(name), Some(slot)) = (
                    d.channel_name.as_deref(),
                    usize::try_from(d.channel_num)
                        .ok()
                        .and_then(|c| io.names.get_mut(c)),
                ) {
                    if slot != name {
                        slot.clear();
                        slot.push_str(name);
                    }
                }
                match block_first {
                    Some((s, _)) if s == d.sample_num => {}
                    _ => block_first = Some((d.sample_num, now)),
                }
                match asm.begin_data(&d, now, &mut io) {
                    Ok(row) => {
                        let got = sub.recv_into(row, 0).unwrap_or(usize::MAX);
                        let extra = sub.get_rcvmore().unwrap_or(false);
                        let before = asm.counters.blocks_emitted;
                        let _ = asm.end_data(got, extra, now, &mut io);
                        if extra {
                            drain(&sub, &mut scratch);
                        }
                        if asm.counters.blocks_emitted != before {
                            if let Some((_, first)) = block_first {
                                lat.record(
                                    span::BLOCK_SPREAD,
                                    now.duration_since(first).as_nanos() as u64,
                                );
                            }
                        }
                    }
                    Err(reject) => {
                        drain(&sub, &mut scratch);
                        // Above a configured cap: say which cap, at most once a second (the
                        // message is only formatted when it is printed).
                        let cap = match reject {
                            Reject::Malformed(Malformed::ChannelOutOfRange) => Some((
                                "channel_num",
                                d.channel_num,
                                "performance.max_channels",
                                max_channels as i64,
                            )),
                            Reject::Malformed(Malformed::BadNumSamples) if d.num_samples > 0 => {
                                Some((
                                    "num_samples",
                                    d.num_samples,
                                    "performance.max_block_samples",
                                    max_block as i64,
                                ))
                            }
                            _ => None,
                        };
                        if let Some((what, value, key, limit)) = cap {
                            if verbose && log.admit(crate::net::LogKind::TooBig, now).is_some() {
                                eprintln!(
                                    "zmq_rx: dropped a message with {what} {value}: the cap is {key} = {limit} \
                                     (raise it in the config if this is real data); counted as malformed"
                                );
                            }
                        }
                    }
                }
            }
            (Envelope::Event, Header::Event(e)) => {
                if e.data_size > 0 || more {
                    if !more {
                        asm.counters.count(Malformed::TooFewFrames);
                        continue;
                    }
                    let got = sub.recv_into(&mut scratch, 0).unwrap_or(usize::MAX);
                    let extra = drain(&sub, &mut scratch);
                    if extra > 0 {
                        asm.counters.count(Malformed::TooManyFrames);
                    } else if e.event_type == 3 && got.min(scratch.len()) == 10 {
                        if let Ok(t) = protocol::parse_ttl(&scratch[..10]) {
                            ttl_events += 1;
                            if io.events.push_ttl(e.sample_num, t.line, t.state, t.word) {
                                io.events_since.get_or_insert(now);
                            }
                        }
                    } else if e.event_type == 3 || got as i64 != e.data_size {
                        asm.counters.count(Malformed::BadEvent);
                    }
                }
            }
            (Envelope::Event, Header::Spike(s)) => {
                if !more {
                    asm.counters.count(Malformed::TooFewFrames);
                    continue;
                }
                let got = sub.recv_into(&mut scratch, 0).unwrap_or(usize::MAX);
                let extra = drain(&sub, &mut scratch);
                let want = s
                    .num_channels
                    .checked_mul(s.num_samples)
                    .and_then(|v| v.checked_mul(4));
                if extra > 0 {
                    asm.counters.count(Malformed::TooManyFrames);
                } else if want != Some(got as i64) || got > scratch.len() || s.num_channels < 0 {
                    asm.counters.count(Malformed::BadSpike);
                } else {
                    spikes += 1;
                    if io.events.push_spike(
                        s.sample_num,
                        &s.electrode,
                        s.sorted_id,
                        s.num_channels as usize,
                        s.num_samples as usize,
                        &scratch[..got],
                    ) {
                        io.events_since.get_or_insert(now);
                    }
                }
            }
            _ => {
                asm.counters.count(Malformed::UnknownType);
                if more {
                    drain(&sub, &mut scratch);
                }
            }
        }
    }
    // Stop: emit a complete open block and pending events, then hang up (shards drain and
    // finish).
    asm.flush(&mut io);
    io.events_since = None;
    io.flush_events(Instant::now());
    publish_rx(
        &shared,
        &asm,
        &io,
        messages,
        zmq_errors,
        (ttl_events, spikes),
    );
    drop(io);
    lat
}

// ---------------------------------------------------------------------------------------------
// Shard

struct ShardTx {
    sender: UdpSender,
    lat: Latencies,
    shared: Arc<Shared>,
    index: usize,
    /// Pacing: spread a block's datagrams over `pace_span` from `pace_start`.
    pacing: bool,
    pace_start: Instant,
    pace_span: Duration,
    pace_expected: u64,
    pace_sent: u64,
}

impl ShardTx {
    fn begin_frame(&mut self, now: Instant, span: Duration, expected: u64) {
        self.pace_start = now;
        self.pace_span = span;
        self.pace_expected = expected.max(1);
        self.pace_sent = 0;
    }
}

impl Transmit for ShardTx {
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
        if !self.pacing || self.pace_span.is_zero() {
            self.sender.send_batch(arena, dgrams);
            return;
        }
        // Pacing: datagram k of this block is due at start + k·span/expected; send what is
        // due in small groups (still one syscall each, GSO-eligible), sleep until the next.
        let mut i = 0;
        while i < dgrams.len() {
            let due = self.pace_start
                + self
                    .pace_span
                    .mul_f64((self.pace_sent as f64 / self.pace_expected as f64).min(1.0));
            let now = Instant::now();
            if due > now {
                let wait = due - now;
                if wait > Duration::from_micros(300) {
                    thread::sleep(wait - Duration::from_micros(200));
                }
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            }
            let group = (dgrams.len() - i).min(8);
            self.sender.send_batch(arena, &dgrams[i..i + group]);
            i += group;
            self.pace_sent += group as u64;
        }
    }
    fn block_sent(&mut self, arrival: Instant, _header_timestamp_ms: Option<i64>) {
        self.lat
            .record(span::BLOCK_TO_OUTPUT, arrival.elapsed().as_nanos() as u64);
    }
    fn status(&self) -> StatusValues {
        let r = &self.shared.rx;
        let t = &self.shared.tx[self.index];
        StatusValues {
            received: r.by_name("blocks_opened"),
            sent: self.sender.stats().datagrams_sent,
            dropped_policy: t.by_name("dropped_oldest") + t.by_name("dropped_newest"),
            upstream_gaps: r.by_name("upstream_missing_msgs"),
            malformed: r.by_name("malformed"),
            incomplete: r.by_name("blocks_incomplete") + r.by_name("blocks_incomplete_upstream"),
            channels: r.by_name("channels"),
            rate: r.by_name("sample_rate_mhz") as f32 / 1000.0,
        }
    }
}

fn publish_tx(
    c: &CounterBlock,
    p: &OutputPipeline,
    tx: &ShardTx,
    dropped_oldest: u64,
    queued: usize,
) {
    let o = &p.counters;
    let s = tx.sender.stats();
    let vals = [
        o.frames,
        dropped_oldest,
        o.frames_skipped,
        o.rows,
        o.datagrams,
        o.bytes,
        o.oversize,
        o.group_samples_discarded,
        o.timer_flushes,
        o.forced_flushes,
        o.batches,
        s.datagrams_sent,
        s.dropped(),
        s.refused,
        s.would_block_dropped,
        s.too_big,
        s.other_errors,
        s.syscalls,
        s.gso_batches,
        s.gso_fallbacks,
        queued as u64,
        p.pending_group_samples() as u64,
        o.split_messages,
        o.ttl_sent,
        o.spikes_sent,
        o.status_sent,
        o.notices_sent,
    ];
    debug_assert_eq!(vals.len(), TX_DROPPED_NEWEST);
    for (i, v) in vals.iter().enumerate() {
        c.set(i, *v);
    }
}

#[allow(clippy::too_many_arguments)]
fn run_shard(
    shared: Arc<Shared>,
    index: usize,
    st: ShardStart,
    policy: OverflowStrategy,
    queue_max: usize,
    spin: Duration,
    panic_after: Option<u64>,
    verbose: bool,
    mut lat_pub: LatencyPublisher,
) -> Latencies {
    let ShardStart {
        name,
        mut frames,
        mut ret,
        mut pipeline,
        sender,
        pacing,
    } = st;
    let mut tx = ShardTx {
        sender,
        lat: Latencies::new(),
        shared: shared.clone(),
        index,
        pacing,
        pace_start: Instant::now(),
        pace_span: Duration::ZERO,
        pace_expected: 1,
        pace_sent: 0,
    };
    let counters = &shared.tx[index];
    let mut dropped_oldest = 0u64;
    let mut idle_since: Option<Instant> = None;
    let mut oversize_logged = 0u64;
    let mut last_frame_dgrams = 0u64;
    let mut log = RateLimitedLog::default();
    crate::hot::mark_current_thread_hot();
    loop {
        if policy == OverflowStrategy::DropOldest {
            while frames.slots() > queue_max {
                if let Ok(f) = frames.pop() {
                    if f.num_samples > 0 {
                        dropped_oldest += 1;
                    }
                    let _ = ret.push(f);
                }
            }
        }
        match frames.pop() {
            Ok(f) => {
                idle_since = None;
                let now = Instant::now();
                if f.num_samples > 0 {
                    tx.lat.record(
                        span::QUEUE_WAIT,
                        now.duration_since(f.arrival).as_nanos() as u64,
                    );
                }
                if panic_after.is_some_and(|n| pipeline.counters.frames >= n) {
                    panic!("osc_tx_{index}: injected failure (test hook)");
                }
                if pacing && f.num_samples > 0 {
                    // Spread over 90 % of the block's duration, at the last block's volume.
                    let d = Duration::from_secs_f64(f.num_samples as f64 / f.sample_rate.max(1.0));
                    tx.begin_frame(now, d.mul_f64(0.9), last_frame_dgrams);
                } else {
                    tx.pace_span = Duration::ZERO;
                }
                let before = pipeline.counters.datagrams;
                pipeline.process(&f, now, &mut tx);
                let done = Instant::now();
                last_frame_dgrams = pipeline.counters.datagrams - before;
                if f.num_samples > 0 {
                    tx.lat.record(
                        span::SHARD_FRAME_COST,
                        done.duration_since(now).as_nanos() as u64,
                    );
                    if pipeline.counters.datagrams != before {
                        // process() returns after the send carrying its last datagram returned.
                        tx.lat.record(
                            span::BRIDGE_ADDED,
                            done.duration_since(f.arrival).as_nanos() as u64,
                        );
                        if let Some(ts) = f.header_timestamp_ms {
                            let d = wall_ms().saturating_sub(ts);
                            if d >= 0 {
                                tx.lat.record(
                                    span::PUBLISHER_TO_WIRE,
                                    (d as u64).saturating_mul(1_000_000),
                                );
                            }
                        }
                    }
                }
                // The return ring holds the whole pool: this push cannot fail.
                let _ = ret.push(f);
                publish_tx(counters, &pipeline, &tx, dropped_oldest, frames.slots());
                lat_pub.maybe_publish(&mut tx.lat, done);
                if pipeline.counters.oversize > oversize_logged {
                    oversize_logged = pipeline.counters.oversize;
                    if verbose && log.admit(crate::net::LogKind::TooBig, now).is_some() {
                        eprintln!(
                            "osc_tx_{index} ({name}): refused {} message(s) larger than the datagram limit of {} bytes: \
                             lower osc.processing.batch_size or the channel count, or use an `outputs` entry (which splits)",
                            oversize_logged,
                            pipeline.format().max_datagram
                        );
                    }
                }
            }
            Err(_) => {
                if frames.is_abandoned() && frames.is_empty() {
                    break;
                }
                let now = Instant::now();
                let due = pipeline.poll(now, &mut tx);
                let since = *idle_since.get_or_insert(now);
                if now.duration_since(since) < spin {
                    std::hint::spin_loop();
                    continue;
                }
                publish_tx(counters, &pipeline, &tx, dropped_oldest, 0);
                lat_pub.maybe_publish(&mut tx.lat, now);
                let wait = due
                    .map_or(Duration::from_millis(20), |d| {
                        d.saturating_duration_since(now)
                    })
                    .min(Duration::from_millis(20));
                thread::park_timeout(wait);
            }
        }
    }
    tx.pace_span = Duration::ZERO;
    pipeline.finish(Instant::now(), &mut tx);
    publish_tx(counters, &pipeline, &tx, dropped_oldest, 0);
    tx.lat
}

// ---------------------------------------------------------------------------------------------
// Heartbeat

/// Heartbeat identity and timing.
#[derive(Debug, Clone)]
pub struct HeartbeatConfig {
    /// REQ endpoint (`tcp://host:data_port+1`).
    pub endpoint: String,
    /// The single-frame JSON sent.
    pub message: String,
    /// Send interval (`zmq.heartbeat_timeout`).
    pub interval: Duration,
    /// Reset the REQ socket after this long without a reply (`zmq.not_responding_timeout`).
    pub not_responding: Duration,
}

/// `{"application": "ZMQ2OSC-<uuid[:4]>", "uuid": "<uuid>", "type": "heartbeat"}` with
/// Python `json.dumps` separators, as the original sends.
pub fn heartbeat_message(uuid: &str) -> String {
    let short: String = uuid.chars().take(4).collect();
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    format!(
        "{{\"application\": {}, \"uuid\": {}, \"type\": \"heartbeat\"}}",
        q(&format!("ZMQ2OSC-{short}")),
        q(uuid)
    )
}

/// The heartbeat uuid: `zmq.app_uuid`, or for `"auto"` one generated per run, so several
/// bridges on one GUI each get their own entry in the plugin's list of connected apps.
pub fn effective_uuid(configured: &str) -> String {
    use std::sync::OnceLock;
    static AUTO: OnceLock<String> = OnceLock::new();
    if configured != "auto" {
        return configured.to_string();
    }
    AUTO.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        format!("{:08x}", h.finish() as u32)
    })
    .clone()
}

impl HeartbeatConfig {
    /// From the config file's keys.
    pub fn from_config(cfg: &Config, endpoint: &str) -> Self {
        HeartbeatConfig {
            endpoint: endpoint.to_string(),
            message: heartbeat_message(&effective_uuid(&cfg.zmq.app_uuid)),
            interval: Duration::from_secs_f64(cfg.zmq.heartbeat_timeout),
            not_responding: Duration::from_secs_f64(cfg.zmq.not_responding_timeout),
        }
    }
}

fn new_req(ctx: &zmq::Context, endpoint: &str) -> Option<zmq::Socket> {
    let s = ctx.socket(zmq::REQ).ok()?;
    s.set_linger(0).ok()?;
    s.connect(endpoint).ok()?;
    Some(s)
}

/// Data-socket monitor counts: (connects, disconnects, handshake failures).
#[derive(Default)]
struct MonitorCounts {
    connects: u64,
    disconnects: u64,
    handshake_failures: u64,
    manual_reconnects: u64,
    /// A disconnect not yet followed by libzmq's own reconnect attempt.
    lost_since: Option<Instant>,
}

/// Reads pending monitor events of the data socket (2-frame: u16 event + u32 value, endpoint).
fn read_monitor(m: &zmq::Socket, counts: &mut MonitorCounts, endpoint: &str, verbose: bool) {
    let mut ev = [0u8; 16];
    let mut addr = [0u8; 256];
    while let Ok(n) = m.recv_into(&mut ev, zmq::DONTWAIT) {
        if m.get_rcvmore().unwrap_or(false) {
            let _ = m.recv_into(&mut addr, 0);
        }
        if n < 6 {
            continue;
        }
        let id = u16::from_le_bytes([ev[0], ev[1]]) as u32;
        if id == zmq::SocketEvent::CONNECT_RETRIED as u32
            || id == zmq::SocketEvent::CONNECT_DELAYED as u32
        {
            counts.lost_since = None;
        }
        if id == zmq::SocketEvent::CONNECTED as u32 {
            counts.lost_since = None;
            counts.connects += 1;
            if verbose && counts.disconnects > 0 {
                eprintln!("zmq: data connection to {endpoint} re-established");
            }
        } else if id == zmq::SocketEvent::DISCONNECTED as u32 {
            counts.disconnects += 1;
            counts.lost_since = Some(Instant::now());
            if verbose {
                eprintln!(
                    "zmq: data connection to {endpoint} lost (GUI stopped, or a message above the size cap); reconnecting"
                );
            }
        } else if id == zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as u32
            || id == zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as u32
            || id == zmq::SocketEvent::HANDSHAKE_FAILED_AUTH as u32
        {
            counts.handshake_failures += 1;
        }
    }
}

fn run_heartbeat(
    shared: Arc<Shared>,
    ctx: zmq::Context,
    cfg: HeartbeatConfig,
    monitor: zmq::Socket,
    data_endpoint: &str,
    verbose: bool,
) {
    let c = &shared.hb;
    let mut mon = MonitorCounts::default();
    let (mut sent, mut replies, mut resets) = (0u64, 0u64, 0u64);
    let mut state = 0u64;
    let mut req = new_req(&ctx, &cfg.endpoint);
    let mut waiting = false;
    let mut next_send = Instant::now();
    let mut sent_at = Instant::now();
    let mut last_reply = Instant::now();
    let mut buf = [0u8; 256];
    let mut warned = false;
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let Some(sock) = req.as_ref() else {
            // Socket creation failed (should not happen); retry later.
            thread::sleep(Duration::from_millis(100));
            req = new_req(&ctx, &cfg.endpoint);
            continue;
        };
        if !waiting && now >= next_send {
            if sock.send(cfg.message.as_bytes(), zmq::DONTWAIT).is_ok() {
                sent += 1;
                waiting = true;
                sent_at = now;
            }
            next_send = now + cfg.interval;
        }
        let mut items = [
            sock.as_poll_item(zmq::POLLIN),
            monitor.as_poll_item(zmq::POLLIN),
        ];
        let _ = zmq::poll(&mut items, 100);
        if items[1].is_readable() {
            read_monitor(&monitor, &mut mon, data_endpoint, verbose);
        }
        // libzmq reconnects by itself after a connection error (announced by a
        // CONNECT_RETRIED event), but not after a protocol error: then we do it.
        if mon
            .lost_since
            .is_some_and(|t| t.elapsed() > Duration::from_millis(500))
        {
            mon.lost_since = None;
            mon.manual_reconnects += 1;
            shared.reconnect_data.store(true, Ordering::Relaxed);
        }
        if items[0].is_readable() {
            if sock.recv_into(&mut buf, zmq::DONTWAIT).is_ok() {
                replies += 1;
                waiting = false;
                last_reply = Instant::now();
                if state != 1 && verbose && warned {
                    eprintln!("heartbeat: {} answers again", cfg.endpoint);
                }
                warned = false;
                state = 1;
            }
        } else if waiting {
            let now = Instant::now();
            if now.duration_since(sent_at) > cfg.interval && state != 2 {
                state = 2;
                if verbose && !warned {
                    eprintln!(
                        "heartbeat: no reply from {} (Open Ephys GUI not running, or no ZMQ Interface there); retrying",
                        cfg.endpoint
                    );
                    warned = true;
                }
            }
            if now.duration_since(last_reply.max(sent_at - cfg.interval)) >= cfg.not_responding {
                // Lazy pirate: drop the REQ socket (its request may be stuck on a dead
                // connection) and make a new one. The data socket is left alone.
                state = 3;
                resets += 1;
                req = new_req(&ctx, &cfg.endpoint);
                waiting = false;
                last_reply = now;
                next_send = now;
            }
        }
        let vals = [
            sent,
            replies,
            resets,
            state,
            mon.connects,
            mon.disconnects,
            mon.handshake_failures,
            mon.manual_reconnects,
        ];
        for (i, v) in vals.iter().enumerate() {
            c.set(i, *v);
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
    fn counter_tables_line_up() {
        assert_eq!(RX_COUNTERS.len(), RX_MALFORMED_BASE + Malformed::COUNT + 3);
        for (k, m) in Malformed::ALL.iter().enumerate() {
            assert_eq!(RX_COUNTERS[RX_MALFORMED_BASE + k], m.name());
        }
    }
}
