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

use crate::assembler::{Assembler, AssemblerConfig, FrameIo, Reject};
use crate::config::{Config, OverflowStrategy};
use crate::frame::{frame_bytes, Frame};
use crate::metrics::{span, CounterBlock, Latencies};
use crate::net::{RateLimitedLog, SenderOptions, UdpSender};
use crate::output::{Mode, OutputFormat, OutputPipeline, Transmit};
use crate::protocol::{self, Envelope, Header, Malformed};
use rtrb::{Consumer, Producer, RingBuffer};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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
];

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
    /// Shard counters ([`TX_COUNTERS`]), one block per shard.
    pub tx: Vec<CounterBlock>,
    /// Heartbeat counters ([`HB_COUNTERS`]).
    pub hb: CounterBlock,
    /// Wall-clock ms of the last received message (0 = never).
    pub last_message_ms: AtomicU64,
    /// Set by the monitor when libzmq gave up on the data connection (it does not reconnect
    /// after a protocol error such as a message above ZMQ_MAXMSGSIZE); the receiver then
    /// connects again.
    pub reconnect_data: AtomicBool,
}

/// What the engine was started with (for the start-up report).
#[derive(Debug, Clone)]
pub struct Layout {
    /// ZMQ data endpoint.
    pub data_endpoint: String,
    /// Heartbeat endpoint.
    pub heartbeat_endpoint: String,
    /// OSC destination.
    pub destination: SocketAddr,
    /// Frames in the slab pool.
    pub slab_frames: usize,
    /// Bytes of sample memory reserved by the pool.
    pub slab_bytes: usize,
    /// Ring capacity (blocks) between receiver and shard.
    pub ring_capacity: usize,
    /// UDP backend in use.
    pub udp_backend: &'static str,
    /// Effective SO_SNDBUF.
    pub send_buffer: usize,
    /// Core ids the hot threads were pinned to (empty = not pinned) and why.
    pub pinning: String,
}

/// Final results of a run.
#[derive(Debug)]
pub struct Report {
    /// Merged latency histograms.
    pub latencies: Latencies,
    /// Receiver counters at exit.
    pub rx: Vec<(&'static str, u64)>,
    /// Shard counters at exit.
    pub tx: Vec<Vec<(&'static str, u64)>>,
    /// Heartbeat counters at exit.
    pub hb: Vec<(&'static str, u64)>,
    /// A thread panicked or failed.
    pub failed: bool,
}

impl Report {
    fn rx(&self, n: &str) -> u64 {
        self.rx.iter().find(|(k, _)| *k == n).map_or(0, |x| x.1)
    }
    fn tx(&self, n: &str) -> u64 {
        self.tx
            .iter()
            .map(|t| t.iter().find(|(k, _)| *k == n).map_or(0, |x| x.1))
            .sum()
    }

    /// The books: every block received is accounted for exactly once, every block emitted is
    /// encoded or dropped by the queue policy, every datagram built is sent or failed.
    /// Returns the text and whether all three balance.
    pub fn ledger(&self) -> (String, bool) {
        let opened = self.rx("blocks_opened");
        let emitted = self.rx("blocks_emitted");
        let inc = self.rx("blocks_incomplete");
        let up = self.rx("blocks_incomplete_upstream");
        let learn = self.rx("blocks_learning");
        let noframe = self.rx("blocks_no_frame");
        let frames = self.tx("frames");
        let oldest = self.tx("dropped_oldest");
        let newest = self.rx("dropped_newest");
        let queued = self.tx("queued");
        let built = self.tx("datagrams");
        let sent = self.tx("sent");
        let failed = self.tx("send_dropped");
        let b1 = opened == emitted + inc + up + learn + noframe;
        let b2 = emitted == frames + oldest + newest + queued;
        let b3 = built == sent + failed;
        let mark = |b: bool| if b { "balanced" } else { "NOT BALANCED" };
        let text = format!(
            "ledger     blocks received {opened} = sent on {emitted} + incomplete {inc} + incomplete(upstream loss) {up} \
             + learning {learn} + no free frame {noframe}  [{}]\n\
             ledger     blocks sent on {emitted} = encoded {frames} + dropped oldest {oldest} + dropped newest {newest} \
             + still queued {queued}  [{}]\n\
             ledger     datagrams built {built} = sent {sent} + failed to send {failed}  [{}]; \
             refused as oversize {}; samples discarded in unfinished groups {} (+{} held at stop); \
             upstream: {} messages missing by message_num, {} samples by sample_num",
            mark(b1),
            mark(b2),
            mark(b3),
            self.tx("oversize"),
            self.tx("group_samples_discarded"),
            self.tx("group_samples_pending"),
            self.rx("upstream_missing_msgs"),
            self.rx("upstream_missing_samples"),
        );
        (text, b1 && b2 && b3)
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

/// The output format the original's config means.
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
    }
}

impl Engine {
    /// Validates, allocates everything, connects sockets and starts the threads.
    pub fn start(cfg: &Config, opts: &EngineOptions) -> Result<Engine, String> {
        let max_channels = cfg.performance.max_channels as usize;
        let max_block = cfg.performance.max_block_samples as usize;
        let queue = cfg.performance.osc_queue_max_size as usize;
        let policy = cfg.performance.osc_queue_overflow_strategy;
        // drop_oldest: the shard trims the queue back to `queue` when it pops, so the ring
        // needs headroom for what arrives while the shard is busy with one block.
        let headroom = if policy == OverflowStrategy::DropOldest {
            queue.clamp(4, 64)
        } else {
            0
        };
        let ring_capacity = queue + headroom;
        let pool = ring_capacity + 4;
        let slab_bytes = pool * frame_bytes(max_channels, max_block);

        let fmt = output_format(cfg);
        let pipeline = OutputPipeline::new(fmt)?;
        let dest = resolve(&cfg.osc.host, cfg.osc.port)?;
        let sender = UdpSender::connect(dest, &opts.sender)
            .map_err(|e| format!("cannot open UDP socket to {dest}: {e}"))?;
        let udp_backend = sender.backend();
        let send_buffer = sender.effective_send_buffer();

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
            .and_then(|_| sub.connect(&data_endpoint))
            .map_err(|e| format!("cannot connect to {data_endpoint}: {e}"))?;
        // Watch the data connection: libzmq drops a peer that exceeds ZMQ_MAXMSGSIZE (and a
        // GUI that quits) without telling the socket's user; the monitor tells us.
        static MONITORS: AtomicU64 = AtomicU64::new(0);
        let monitor_endpoint = format!(
            "inproc://zmq2osc-monitor-{}-{}",
            std::process::id(),
            MONITORS.fetch_add(1, Ordering::Relaxed)
        );
        sub.monitor(&monitor_endpoint, zmq::SocketEvent::ALL as i32)
            .map_err(|e| format!("zmq monitor: {e}"))?;

        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            rx: CounterBlock::new(RX_COUNTERS),
            tx: vec![CounterBlock::new(TX_COUNTERS)],
            hb: CounterBlock::new(HB_COUNTERS),
            last_message_ms: AtomicU64::new(0),
            reconnect_data: AtomicBool::new(false),
        });

        // Slab: every frame allocated now.
        let free: Vec<Box<Frame>> = (0..pool)
            .map(|_| Frame::new(max_channels, max_block))
            .collect();
        let (frames_tx, frames_rx) = RingBuffer::<Box<Frame>>::new(ring_capacity);
        let (ret_tx, ret_rx) = RingBuffer::<Box<Frame>>::new(pool);

        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let hot_threads = 2;
        let (pin_rx, pin_tx, pinning) = if !opts.pin_threads || !cfg.performance.pin_threads {
            (None, None, "off".to_string())
        } else if cores.len() < hot_threads + 1 {
            (
                None,
                None,
                format!(
                    "skipped: {} cores < {} (2 hot threads + libzmq I/O and other processes)",
                    cores.len(),
                    hot_threads + 1
                ),
            )
        } else {
            let n = cores.len();
            (
                Some(cores[n - 1]),
                Some(cores[n - 2]),
                format!(
                    "zmq_rx on core {}, osc_tx_0 on core {}",
                    cores[n - 1].id,
                    cores[n - 2].id
                ),
            )
        };

        // Shard thread.
        let shard_shared = shared.clone();
        let shard_policy = policy;
        let panic_after = opts.panic_after_frames;
        let shard = thread::Builder::new()
            .name("osc_tx_0".into())
            .spawn(move || {
                let _g = PanicGuard(shard_shared.clone());
                if let Some(c) = pin_tx {
                    core_affinity::set_for_current(c);
                }
                run_shard(
                    shard_shared,
                    0,
                    frames_rx,
                    ret_tx,
                    pipeline,
                    sender,
                    shard_policy,
                    queue,
                    panic_after,
                )
            })
            .map_err(|e| format!("spawn osc_tx_0: {e}"))?;

        let asm_cfg = AssemblerConfig {
            max_channels,
            max_block_samples: max_block,
            min_deadline: Duration::from_millis(10),
            data_timeout: Duration::from_secs_f64(cfg.zmq.data_timeout_seconds),
            auto_reinit: cfg.zmq.auto_reinit_on_timeout,
        };
        let rx_shared = shared.clone();
        let shard_thread = shard.thread().clone();
        let verbose = opts.verbose;
        let rx_endpoint = data_endpoint.clone();
        let rx = thread::Builder::new()
            .name("zmq_rx".into())
            .spawn(move || {
                let _g = PanicGuard(rx_shared.clone());
                if let Some(c) = pin_rx {
                    core_affinity::set_for_current(c);
                }
                let io = RxIo {
                    free,
                    ring: frames_tx,
                    ret: ret_rx,
                    shard: shard_thread,
                    policy,
                    dropped_newest: 0,
                    block_waits: 0,
                    shared: rx_shared.clone(),
                };
                run_receiver(
                    rx_shared,
                    sub,
                    &rx_endpoint,
                    Assembler::new(asm_cfg),
                    io,
                    max_block,
                    verbose,
                )
            })
            .map_err(|e| format!("spawn zmq_rx: {e}"))?;

        let hb_shared = shared.clone();
        let hb_ctx = ctx.clone();
        let hb_cfg = HeartbeatConfig::from_config(cfg, &heartbeat_endpoint);
        let monitor = hb_ctx
            .socket(zmq::PAIR)
            .and_then(|m| {
                m.set_linger(0)
                    .and_then(|_| m.connect(&monitor_endpoint))
                    .map(|_| m)
            })
            .map_err(|e| format!("zmq monitor socket: {e}"))?;
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
                destination: dest,
                slab_frames: pool,
                slab_bytes,
                ring_capacity,
                udp_backend,
                send_buffer,
                pinning,
            },
            rx: Some(rx),
            shards: vec![shard],
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
        Report {
            latencies,
            rx: self.shared.rx.snapshot(),
            tx: self.shared.tx.iter().map(|c| c.snapshot()).collect(),
            hb: self.shared.hb.snapshot(),
            failed: failed || self.shared.failed.load(Ordering::SeqCst),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Receiver

// Frames stay boxed in the free list: they move through the rings as pointers, never copied.
#[allow(clippy::vec_box)]
struct RxIo {
    free: Vec<Box<Frame>>,
    ring: Producer<Box<Frame>>,
    ret: Consumer<Box<Frame>>,
    shard: Thread,
    policy: OverflowStrategy,
    dropped_newest: u64,
    block_waits: u64,
    shared: Arc<Shared>,
}

impl RxIo {
    fn recycle(&mut self) {
        while let Ok(f) = self.ret.pop() {
            self.free.push(f);
        }
    }
}

impl FrameIo for RxIo {
    fn take(&mut self) -> Option<Box<Frame>> {
        if self.free.is_empty() {
            self.recycle();
        }
        self.free.pop()
    }
    fn give(&mut self, frame: Box<Frame>) {
        self.free.push(frame);
    }
    fn emit(&mut self, frame: Box<Frame>) {
        let mut frame = frame;
        loop {
            match self.ring.push(frame) {
                Ok(()) => {
                    self.shard.unpark();
                    return;
                }
                Err(rtrb::PushError::Full(f)) => {
                    if self.policy != OverflowStrategy::Block
                        || self.shared.stop.load(Ordering::Relaxed)
                    {
                        // drop_newest, or drop_oldest with the shard stalled past the ring's
                        // headroom: the new block is the one lost.
                        self.dropped_newest += 1;
                        self.free.push(f);
                        return;
                    }
                    // block: stop reading ZMQ until the shard makes room; ZeroMQ's
                    // high-water mark then drops upstream (visible as message_num gaps).
                    self.block_waits += 1;
                    self.shard.unpark();
                    frame = f;
                    self.recycle();
                    thread::park_timeout(Duration::from_micros(200));
                }
            }
        }
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
        io.dropped_newest,
        io.block_waits,
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

fn run_receiver(
    shared: Arc<Shared>,
    sub: zmq::Socket,
    endpoint: &str,
    mut asm: Assembler,
    mut io: RxIo,
    max_block: usize,
    verbose: bool,
) -> Latencies {
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
    let spin = Duration::from_micros(50);
    crate::hot::mark_current_thread_hot();

    while !shared.stop.load(Ordering::Relaxed) {
        let n = match sub.recv_into(&mut env, zmq::DONTWAIT) {
            Ok(n) => n,
            Err(zmq::Error::EAGAIN) => {
                let now = Instant::now();
                io.recycle();
                asm.poll(now, &mut io);
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
                publish_rx(
                    &shared,
                    &asm,
                    &io,
                    messages,
                    zmq_errors,
                    (ttl_events, spikes),
                );
                // Park in zmq_poll until data, the next assembler deadline, or 10 ms.
                let wait = asm.next_deadline().map_or(10, |d| {
                    d.saturating_duration_since(now).as_millis().clamp(1, 10) as i64
                });
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
            publish_rx(
                &shared,
                &asm,
                &io,
                messages,
                zmq_errors,
                (ttl_events, spikes),
            );
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
                    Err(Reject::Malformed(_) | Reject::NotInSet | Reject::NoFrame) => {
                        drain(&sub, &mut scratch);
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
                        if protocol::parse_ttl(&scratch[..10]).is_ok() {
                            ttl_events += 1;
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
                } else if want != Some(got as i64) {
                    asm.counters.count(Malformed::BadSpike);
                } else {
                    spikes += 1;
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
    // Stop: emit a complete open block, then hang up (the shard drains and finishes).
    asm.flush(&mut io);
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
}

impl Transmit for ShardTx {
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
        self.sender.send_batch(arena, dgrams);
    }
    fn block_sent(&mut self, arrival: Instant, _header_timestamp_ms: Option<i64>) {
        self.lat
            .record(span::BLOCK_TO_OUTPUT, arrival.elapsed().as_nanos() as u64);
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
    ];
    for (i, v) in vals.iter().enumerate() {
        c.set(i, *v);
    }
}

#[allow(clippy::too_many_arguments)]
fn run_shard(
    shared: Arc<Shared>,
    index: usize,
    mut frames: Consumer<Box<Frame>>,
    mut ret: Producer<Box<Frame>>,
    mut pipeline: OutputPipeline,
    sender: UdpSender,
    policy: OverflowStrategy,
    queue_max: usize,
    panic_after: Option<u64>,
) -> Latencies {
    let mut tx = ShardTx {
        sender,
        lat: Latencies::new(),
    };
    let counters = &shared.tx[index];
    let mut dropped_oldest = 0u64;
    let mut idle_since: Option<Instant> = None;
    let spin = Duration::from_micros(50);
    let mut oversize_logged = 0u64;
    let mut log = RateLimitedLog::default();
    crate::hot::mark_current_thread_hot();
    loop {
        if policy == OverflowStrategy::DropOldest {
            while frames.slots() > queue_max {
                if let Ok(f) = frames.pop() {
                    dropped_oldest += 1;
                    let _ = ret.push(f);
                }
            }
        }
        match frames.pop() {
            Ok(f) => {
                idle_since = None;
                let now = Instant::now();
                tx.lat.record(
                    span::QUEUE_WAIT,
                    now.duration_since(f.arrival).as_nanos() as u64,
                );
                if panic_after.is_some_and(|n| pipeline.counters.frames >= n) {
                    panic!("osc_tx_{index}: injected failure (test hook)");
                }
                let before = pipeline.counters.datagrams;
                pipeline.process(&f, now, &mut tx);
                let done = Instant::now();
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
                        let d = wall_ms() - ts;
                        if d >= 0 {
                            tx.lat.record(span::PUBLISHER_TO_WIRE, d as u64 * 1_000_000);
                        }
                    }
                }
                // The return ring holds the whole pool: this push cannot fail.
                let _ = ret.push(f);
                publish_tx(counters, &pipeline, &tx, dropped_oldest, frames.slots());
                if pipeline.counters.oversize > oversize_logged {
                    oversize_logged = pipeline.counters.oversize;
                    if log.admit(crate::net::LogKind::TooBig, now).is_some() {
                        eprintln!(
                            "osc_tx_{index}: refused {} message(s) larger than the UDP limit of {} bytes: \
                             lower osc.processing.batch_size or the channel count",
                            oversize_logged,
                            crate::osc::MAX_UDP_PAYLOAD
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
                let wait = due
                    .map_or(Duration::from_millis(20), |d| {
                        d.saturating_duration_since(now)
                    })
                    .min(Duration::from_millis(20));
                thread::park_timeout(wait);
            }
        }
    }
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

impl HeartbeatConfig {
    /// From the config file's keys.
    pub fn from_config(cfg: &Config, endpoint: &str) -> Self {
        HeartbeatConfig {
            endpoint: endpoint.to_string(),
            message: heartbeat_message(&cfg.zmq.app_uuid),
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
    fn counter_tables_line_up() {
        assert_eq!(RX_COUNTERS.len(), RX_MALFORMED_BASE + Malformed::COUNT);
        for (k, m) in Malformed::ALL.iter().enumerate() {
            assert_eq!(RX_COUNTERS[RX_MALFORMED_BASE + k], m.name());
        }
    }
}
