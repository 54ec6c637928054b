//! OSC encoding cost, in **ns per float** (criterion's time ÷ the `elements` throughput, or
//! 1 / the `elem/s` figure it prints).
//!
//! Two groups of groups:
//!
//! * `osc_message/<mode>_<channels>x<rows>`: one message encoded into a preallocated buffer.
//!   `hand` is the crate's own `osc::{put_str, put_tags, put_floats}` from floats already in
//!   message order (the pure byte swap); `rosc` is `rosc::encoder::encode` of a prebuilt
//!   `OscMessage` (a fresh `Vec` per call, as a rosc user writes it); `rosc_into` is
//!   `rosc::encoder::encode_into` into a reused `Vec`. Before timing, the three byte strings
//!   are asserted identical. Compare with limits.md §3 columns "hand-written, `to_be_bytes`
//!   loop" and "rosc `encode_into`, prebuilt msg".
//! * `output_pipeline/<mode>_<channels>ch_696`: the real `zmq2osc::output::OutputPipeline`
//!   processing one 696-sample `Frame` (F = 1) into a `Transmit` that discards the datagrams.
//!   This is gather-from-channel-major-rows (the transpose) + encode + arena bookkeeping.
//!   Sample mode gives 696 datagrams per frame; batch 10 gives 69.6 on average. Compare with
//!   limits.md §3 "transpose from channel-major, sample-outer" (0.85–1.1 ns/float).
//!   One frame of output is decoded with rosc and checked before timing. Each is measured
//!   twice: `process_frame` (straight from the frame, `output::tile`: tiled sample rows or
//!   whole batches, what the bridge runs) and `process_frame_general` (the same frames row by
//!   row through the general path; the bytes are the same).
//!
//! Throughput is in floats (`elements`).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rosc::{OscMessage, OscPacket, OscType};
use std::time::{Duration, Instant};
use zmq2osc::config::DownsamplingMethod;
use zmq2osc::frame::Frame;
use zmq2osc::output::osc;
use zmq2osc::output::{Mode, OutputFormat, OutputPipeline, Transmit};

const BLOCK: usize = 696;

/// Deterministic, non-trivial float values (no denormals, no repeats that a compressor would like).
fn value(ch: usize, j: usize) -> f32 {
    (ch as f32) * 0.25 - (j as f32) * 1.5e-3 + 0.123
}

/// Hand-written encoder for one message: sample mode (`rows == 1`) or batch (`/batch/<rows>`,
/// `i` N, then the floats in message order). Returns bytes written.
fn encode_hand(out: &mut [u8], addr: &[u8], batch_n: Option<i32>, floats: &[f32]) -> usize {
    let mut p = osc::put_str(out, addr);
    match batch_n {
        None => p += osc::put_tags(&mut out[p..], b"", floats.len()),
        Some(n) => {
            p += osc::put_tags(&mut out[p..], b"i", floats.len());
            out[p..p + 4].copy_from_slice(&n.to_be_bytes());
            p += 4;
        }
    }
    p += osc::put_floats(&mut out[p..], floats);
    p
}

fn bench_message(c: &mut Criterion) {
    for (channels, rows) in [(256usize, 1usize), (1024, 1), (256, 10), (1024, 10)] {
        let nf = channels * rows;
        let floats: Vec<f32> = (0..nf).map(|i| value(i / rows, i % rows)).collect();
        let (addr, batch_n, mode) = if rows == 1 {
            ("/data/sample".to_string(), None, "sample")
        } else {
            (
                format!("/data/batch/{rows}"),
                Some(channels as i32),
                "batch",
            )
        };
        let mut args = Vec::with_capacity(nf + 1);
        if let Some(n) = batch_n {
            args.push(OscType::Int(n));
        }
        args.extend(floats.iter().map(|&v| OscType::Float(v)));
        let packet = OscPacket::Message(OscMessage {
            addr: addr.clone(),
            args,
        });

        // Correctness, once, outside the timed loops.
        let len = osc::message_len(
            addr.len(),
            usize::from(batch_n.is_some()),
            nf,
            4 * usize::from(batch_n.is_some()),
        );
        let mut out = vec![0u8; len];
        let n = encode_hand(&mut out, addr.as_bytes(), batch_n, &floats);
        assert_eq!(n, len);
        let reference = rosc::encoder::encode(&packet).expect("rosc encode");
        assert_eq!(out, reference, "hand-written bytes differ from rosc");
        let mut reused = Vec::with_capacity(len);
        rosc::encoder::encode_into(&packet, &mut reused).expect("rosc encode_into");
        assert_eq!(reused, reference);

        let mut g = c.benchmark_group(format!("osc_message/{mode}_{channels}x{rows}"));
        g.throughput(Throughput::Elements(nf as u64));
        g.bench_function("hand", |b| {
            b.iter(|| {
                encode_hand(
                    black_box(&mut out),
                    addr.as_bytes(),
                    batch_n,
                    black_box(&floats),
                )
            })
        });
        g.bench_function("rosc", |b| {
            b.iter(|| rosc::encoder::encode(black_box(&packet)).expect("rosc encode"))
        });
        g.bench_function("rosc_into", |b| {
            b.iter(|| {
                reused.clear();
                rosc::encoder::encode_into(black_box(&packet), &mut reused).expect("encode_into");
                black_box(reused.len())
            })
        });
        g.finish();
    }
}

/// Discards datagrams (touching only their count and total length, so nothing is optimised away).
#[derive(Default)]
struct Discard {
    datagrams: u64,
    bytes: u64,
    blocks: u64,
    keep_first: Option<Vec<u8>>,
    capture: bool,
}

impl Transmit for Discard {
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
        if self.capture && self.keep_first.is_none() {
            let (o, l) = dgrams[0];
            self.keep_first = Some(arena[o as usize..(o + l) as usize].to_vec());
        }
        self.datagrams += dgrams.len() as u64;
        self.bytes += dgrams.iter().map(|d| u64::from(d.1)).sum::<u64>();
        black_box(arena.as_ptr());
    }
    fn block_sent(&mut self, _arrival: Instant, _ts: Option<i64>) {
        self.blocks += 1;
    }
}

fn make_frame(channels: usize) -> Frame {
    let mut f = Frame::new(channels, BLOCK);
    f.num_samples = BLOCK;
    f.sample_rate = 30_000.0;
    f.channels = (0..channels as u32).collect();
    f.layout_generation = 1;
    for ch in 0..channels {
        for (j, v) in f.row_mut(ch as u32, BLOCK).iter_mut().enumerate() {
            *v = value(ch, j);
        }
    }
    f
}

fn make_pipeline(mode: Mode, channels: usize, batch: usize) -> OutputPipeline {
    OutputPipeline::new(OutputFormat {
        mode,
        base_address: "/data".into(),
        channel_address_format: "/ch{:03d}".into(),
        factor: 1,
        method: DownsamplingMethod::Average,
        batch_size: batch,
        // Never fires during a run: the timer path is not what is measured here.
        batch_timeout: Duration::from_secs(3600),
        max_channels: channels,
        ..Default::default()
    })
    .expect("pipeline")
}

fn bench_pipeline(c: &mut Criterion) {
    for (mode, batch, name) in [
        (Mode::Sample, 1usize, "sample"),
        (Mode::Batch, 10, "batch10"),
    ] {
        for channels in [256usize, 1024] {
            let mut frame = make_frame(channels);
            let mut p = make_pipeline(mode, channels, batch);

            // Correctness, once: the first datagram of frame 1 decodes to what the frame holds.
            let mut tx = Discard {
                capture: true,
                ..Default::default()
            };
            frame.seq = 1;
            p.process(&frame, Instant::now(), &mut tx);
            let first = tx.keep_first.take().expect("a datagram");
            let msg = match rosc::decoder::decode_udp(&first).expect("decodes").1 {
                OscPacket::Message(m) => m,
                OscPacket::Bundle(_) => panic!("bundle"),
            };
            let rows = if mode == Mode::Sample { 1 } else { batch };
            let mut want: Vec<OscType> = Vec::new();
            if mode == Mode::Batch {
                want.push(OscType::Int(channels as i32));
            }
            for ch in 0..channels {
                for j in 0..rows {
                    want.push(OscType::Float(value(ch, j)));
                }
            }
            assert_eq!(
                msg.addr,
                if rows == 1 {
                    "/data/sample".to_string()
                } else {
                    format!("/data/batch/{rows}")
                }
            );
            assert!(msg.args == want, "pipeline output differs from the frame");
            if mode == Mode::Sample {
                assert_eq!(tx.datagrams, BLOCK as u64);
            }

            let mut g = c.benchmark_group(format!("output_pipeline/{name}_{channels}ch_{BLOCK}"));
            g.throughput(Throughput::Elements((channels * BLOCK) as u64));
            g.bench_function(BenchmarkId::new("process_frame", "F1"), |b| {
                b.iter(|| {
                    frame.seq += 1; // consecutive frames: no gap, the batch carries across frames
                    p.process(black_box(&frame), Instant::now(), &mut tx);
                })
            });
            // The same frames through the general row-at-a-time path, for the ratio.
            let mut general = make_pipeline(mode, channels, batch);
            general.set_tiled(false);
            g.bench_function(BenchmarkId::new("process_frame_general", "F1"), |b| {
                b.iter(|| {
                    frame.seq += 1;
                    general.process(black_box(&frame), Instant::now(), &mut tx);
                })
            });
            g.finish();
            black_box((tx.datagrams, tx.bytes, tx.blocks));
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench_message, bench_pipeline
}
criterion_main!(benches);
