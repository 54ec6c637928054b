//! The whole in-process path of one block, without ZeroMQ and on one thread:
//! JUCE header bytes → `protocol::parse_header` → `Assembler` (payload copied into the frame
//! row) → complete `Frame` → `OutputPipeline` (sample mode, F = 1) → `UdpSender` → a blocked
//! loopback receiver (bound, never read: sender-side cost only, see `udp.rs`).
//!
//! 256 channels × 696 samples at 30 kHz: one iteration = **one block** = 256 DATA messages in,
//! 696 OSC datagrams of 1 304 B out. Throughput is in datagrams. Group
//! `pipeline/256ch_696_sample_F1`:
//!
//! * `gso`: `UdpSender` with UDP GSO (runs of 50 datagrams per `sendmsg`), the default.
//! * `sendmmsg`: GSO off, for comparison.
//!
//! How to read it: the real-time budget per block is 696 / 30 000 s = **23.2 ms**, so
//! time per block ÷ 23.2 ms = fraction of one core. limits.md §4 estimates ~4 % for the
//! encode + GSO send part at 256 ch (1.0–1.1 µs + 0.2 µs per datagram), 14–17 % with
//! sendmmsg, and measured 20.7–26.5 % paced without GSO; its ZMQ receive share
//! (5–6 %) is not in this bench (parsing and assembly are). Flat out and warm, this bench is
//! a lower bound of the paced cost.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use oe_testkit::sim::juce_data_header;
use std::net::UdpSocket;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zmq2osc::config::DownsamplingMethod;
use zmq2osc::frame::Frame;
use zmq2osc::ingest::assembler::{Assembler, AssemblerConfig, FrameIo};
use zmq2osc::ingest::protocol::{parse_header, Header};
use zmq2osc::net::{SenderOptions, UdpSender};
use zmq2osc::output::{Mode, OutputFormat, OutputPipeline, Transmit};

const CHANNELS: usize = 256;
const BLOCK: usize = 696;
const RATE: f64 = 30_000.0;
const CYCLE: usize = 8;

/// Free list + the one emitted frame waiting for the output side.
struct Io {
    free: Vec<Arc<Frame>>,
    ready: Option<Arc<Frame>>,
}

impl FrameIo for Io {
    fn take(&mut self) -> Option<Arc<Frame>> {
        self.free.pop()
    }
    fn give(&mut self, frame: Arc<Frame>) {
        self.free.push(frame)
    }
    fn emit(&mut self, frame: Arc<Frame>) {
        if let Some(old) = self.ready.replace(frame) {
            self.free.push(old);
        }
    }
}

struct Tx {
    sender: UdpSender,
    blocks: u64,
}

impl Transmit for Tx {
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
        self.sender.send_batch(arena, dgrams);
    }
    fn block_sent(&mut self, _arrival: Instant, _ts: Option<i64>) {
        self.blocks += 1;
    }
}

struct Bridge {
    asm: Assembler,
    io: Io,
    pipeline: OutputPipeline,
    tx: Tx,
    headers: Vec<Vec<u8>>,
    payload: Vec<Vec<u8>>,
    next: usize,
}

impl Bridge {
    fn new(dest: std::net::SocketAddr, use_gso: bool) -> Self {
        let cfg = AssemblerConfig::default();
        let io = Io {
            free: (0..4)
                .map(|_| Arc::new(Frame::new(cfg.max_channels, cfg.max_block_samples)))
                .collect(),
            ready: None,
        };
        let pipeline = OutputPipeline::new(OutputFormat {
            mode: Mode::Sample,
            base_address: "/data".into(),
            channel_address_format: "/ch{:03d}".into(),
            factor: 1,
            method: DownsamplingMethod::Average,
            batch_size: 1,
            batch_timeout: Duration::from_secs(1),
            max_channels: cfg.max_channels,
            ..Default::default()
        })
        .expect("pipeline");
        let sender = UdpSender::connect(
            dest,
            &SenderOptions {
                use_gso,
                ..Default::default()
            },
        )
        .expect("UdpSender::connect");
        // 8 blocks of header bytes, cycled (every 8th block looks like a new acquisition
        // and a backward sample_num jump; the output side sees a gap, which at F = 1 costs nothing).
        let headers = (0..CYCLE * CHANNELS)
            .map(|i| {
                let (blk, ch) = (i / CHANNELS, i % CHANNELS);
                let name = format!("CH{}", ch + 1);
                juce_data_header(
                    i as i64 + 1,
                    "example_data",
                    ch as u32,
                    Some(&name),
                    BLOCK,
                    (blk * BLOCK) as i64,
                    RATE,
                    Some(1_700_000_000_000 + blk as i64 * 23),
                )
                .into_bytes()
            })
            .collect();
        let payload = (0..CHANNELS)
            .map(|ch| {
                (0..BLOCK)
                    .flat_map(|j| ((ch * 1000 + j) as f32).to_le_bytes())
                    .collect()
            })
            .collect();
        Bridge {
            asm: Assembler::new(cfg),
            io,
            pipeline,
            tx: Tx { sender, blocks: 0 },
            headers,
            payload,
            next: 0,
        }
    }

    /// One block in, its datagrams out.
    fn block(&mut self) {
        let now = Instant::now();
        let base = self.next * CHANNELS;
        self.next = (self.next + 1) % CYCLE;
        for (hb, p) in self.headers[base..base + CHANNELS]
            .iter()
            .zip(&self.payload)
        {
            if let Ok(Header::Data(h)) = parse_header(hb) {
                self.asm
                    .observe_message_num(h.message_num, now, &mut self.io);
                if let Ok(row) = self.asm.begin_data(&h, now, &mut self.io) {
                    row.copy_from_slice(p);
                    let _ = self.asm.end_data(p.len(), false, now, &mut self.io);
                }
            }
        }
        if let Some(f) = self.io.ready.take() {
            self.pipeline.process(&f, Instant::now(), &mut self.tx);
            self.io.free.push(f);
        }
    }
}

fn bench_pipeline(c: &mut Criterion) {
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind receiver"); // blocked: never read
    let dest = rx.local_addr().expect("local addr");
    let mut g = c.benchmark_group(format!("pipeline/{CHANNELS}ch_{BLOCK}_sample_F1"));
    g.throughput(Throughput::Elements(BLOCK as u64));
    for (name, gso) in [("gso", true), ("sendmmsg", false)] {
        let mut br = Bridge::new(dest, gso);
        // Learn the channel set and check output flows, outside the timing.
        for _ in 0..3 {
            br.block();
        }
        assert_eq!(br.asm.channel_set().len(), CHANNELS);
        assert!(br.pipeline.counters.datagrams >= BLOCK as u64);
        let want = if gso { "sendmmsg+gso" } else { "sendmmsg" };
        eprintln!(
            "pipeline bench {name}: measured send path {}{}",
            br.tx.sender.backend(),
            if br.tx.sender.backend() == want {
                String::new()
            } else {
                format!(" (wanted {want}: not available here)")
            }
        );
        g.bench_function(name, |b| b.iter(|| br.block()));
        let s = br.tx.sender.stats();
        if s.dropped() > 0 {
            eprintln!("pipeline bench {name}: sender-side drops: {s:?}");
        }
        assert_eq!(br.asm.counters.malformed_total(), 0);
        black_box(br.tx.blocks);
    }
    g.finish();
    drop(rx);
}

criterion_group!(benches, bench_pipeline);
criterion_main!(benches);
