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

mod counters;
mod heartbeat;
mod receiver;
mod report;
mod shard;

pub use counters::*;
pub use heartbeat::*;
use receiver::*;
pub use report::*;
use shard::*;

use crate::config::{Config, OverflowStrategy, PerformanceMode};
use crate::frame::{frame_bytes, EventBuffer, Frame};
use crate::ingest::assembler::{Assembler, AssemblerConfig};
use crate::net::{SenderOptions, UdpSender};
use crate::output::{LayoutBoard, LayoutInfo, Mode, OutputFormat, OutputPipeline};
use crate::telemetry::latency::{CounterBlock, Latencies, LatencyCollector};
use rtrb::{Consumer, Producer, RingBuffer};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Stream, channels, rate and channel names of the current layout: written by the
    /// receiver on layout changes only, read by shards and the controller, all without a
    /// lock (a seqlock of atomics sized at start-up; see [`LayoutBoard`]).
    pub layout: Arc<LayoutBoard>,
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

    /// Stream, channels, rate and names of the current layout (`None` before the first
    /// block). Allocates: for the controller (start-up/report text, dashboard).
    pub fn layout_snapshot(&self) -> Option<LayoutInfo> {
        self.layout.snapshot()
    }

    /// A copy of every latency distribution handed over so far.
    pub fn latencies_so_far(&self) -> Latencies {
        match self.latency.lock() {
            Ok(mut c) => c.collect().clone(),
            Err(_) => Latencies::new(),
        }
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
/// are refused, never split). See [`Config::legacy_output_format`].
pub fn output_format(cfg: &Config) -> OutputFormat {
    cfg.legacy_output_format()
}

/// The outputs a config describes: its `outputs` list, or the original's single output.
/// See [`Config::output_specs`].
pub fn output_specs(cfg: &Config) -> Vec<OutputSpec> {
    cfg.output_specs()
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

        let layout_info = Arc::new(LayoutBoard::new(max_channels));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::protocol::Malformed;

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
