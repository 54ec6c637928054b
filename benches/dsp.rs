//! Cost of the sans-IO DSP core (`src/dsp/`) per input sample per channel.
//!
//! Each iteration feeds one block of 256 channels × 1024 samples at 30 kHz (channel rows
//! contiguous, as in a `Frame`), so **ns per input sample per channel = iteration time /
//! 262 144**; criterion's throughput line (elements/s, one element = one sample of one
//! channel) gives the same number inverted. The signal is noise plus a 10 Hz sine and
//! occasional spikes; state carries across iterations as in a shard.
//!
//! * `decimator/lowpass_F{10,30,100}`: `downsampling_method: "lowpass"` (aim ≤ 5 ns).
//! * `features/rms+alpha+mua`: the brief's feature set, default parameters; plus each
//!   feature alone to show where the time goes.
//!
//! * `output/{lowpass_F30,features_rms+alpha+mua}`: the same through a whole
//!   `OutputPipeline` (the shard's work: filtering or features, OSC encoding into the
//!   datagram arena; the transmitter discards the datagrams), 256 channels selected.
//!
//! Run: `cargo bench --bench dsp -- --warm-up-time 1 --measurement-time 2`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Instant;
use zmq2osc::config::DownsamplingMethod;
use zmq2osc::dsp::features::{Feature, FeatureConfig, FeatureExtractor};
use zmq2osc::dsp::fir::Decimator;
use zmq2osc::frame::Frame;
use zmq2osc::output::{OutputFormat, OutputPipeline, Transmit};

const FS: f64 = 30000.0;
const CH: usize = 256;
const N: usize = 1024;

fn block() -> Vec<f32> {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut v = Vec::with_capacity(CH * N);
    for c in 0..CH {
        for i in 0..N {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let t = i as f32 / FS as f32;
            let spike = if (i + 37 * c) % 499 < 3 { -200.0 } else { 0.0 };
            v.push(40.0 * noise + 30.0 * (2.0 * std::f32::consts::PI * 10.0 * t).sin() + spike);
        }
    }
    v
}

fn bench_decimator(c: &mut Criterion) {
    let data = block();
    let mut g = c.benchmark_group("decimator");
    g.throughput(Throughput::Elements((CH * N) as u64));
    for f in [10u32, 30, 100] {
        let mut d = Decimator::new(FS, f, CH).unwrap();
        let mut out = vec![0.0f32; N / f as usize + 1];
        g.bench_function(format!("lowpass_F{f}"), |b| {
            b.iter(|| {
                let mut total = 0;
                for ch in 0..CH {
                    total += d.process(ch, &data[ch * N..(ch + 1) * N], &mut out);
                }
                black_box((total, out[0]))
            })
        });
    }
    g.finish();
}

fn bench_features(c: &mut Criterion) {
    let data = block();
    let mut g = c.benchmark_group("features");
    g.throughput(Throughput::Elements((CH * N) as u64));
    for (name, feats) in [
        ("rms+alpha+mua", &["rms", "band:alpha", "mua_rate"][..]),
        ("rms", &["rms"][..]),
        ("alpha", &["band:alpha"][..]),
        ("mua", &["mua_rate"][..]),
    ] {
        let cfg = FeatureConfig {
            features: feats.iter().map(|s| Feature::parse(s).unwrap()).collect(),
            ..FeatureConfig::default()
        };
        let mut ex = FeatureExtractor::new(&cfg, FS, CH).unwrap();
        let mut out = vec![0.0f32; ex.values_len()];
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut ticks = 0u32;
                ex.process(
                    N,
                    |ch| &data[ch * N..(ch + 1) * N],
                    &mut out,
                    |_, v| {
                        ticks += 1;
                        black_box(v[0]);
                    },
                );
                black_box(ticks)
            })
        });
    }
    g.finish();
}

/// Discards datagrams (the send path has its own benches).
struct Discard(u64);
impl Transmit for Discard {
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
        self.0 += dgrams.len() as u64 + arena.len() as u64;
    }
    fn block_sent(&mut self, _: Instant, _: Option<i64>) {}
}

fn bench_output(c: &mut Criterion) {
    let data = block();
    let mut frame = Frame::new(CH, N);
    frame.num_samples = N;
    frame.sample_rate = FS;
    frame.channels = (0..CH as u32).collect();
    frame.layout_generation = 1;
    for ch in 0..CH {
        frame
            .row_mut(ch as u32, N)
            .copy_from_slice(&data[ch * N..(ch + 1) * N]);
    }
    let base = OutputFormat {
        max_channels: CH,
        max_datagram: 65507,
        split: true,
        ..Default::default()
    };
    let lowpass = OutputFormat {
        factor: 30,
        method: DownsamplingMethod::Lowpass,
        ..base.clone()
    };
    let features = OutputFormat {
        features: Some(FeatureConfig {
            features: ["rms", "band:alpha", "mua_rate"]
                .iter()
                .map(|s| Feature::parse(s).unwrap())
                .collect(),
            ..FeatureConfig::default()
        }),
        ..base
    };
    let mut g = c.benchmark_group("output");
    g.throughput(Throughput::Elements((CH * N) as u64));
    for (name, fmt) in [
        ("lowpass_F30", lowpass),
        ("features_rms+alpha+mua", features),
    ] {
        let mut p = OutputPipeline::new(fmt).unwrap();
        let mut tx = Discard(0);
        let mut seq = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                // Consecutive blocks: no gap, state carries on.
                seq += 1;
                frame.seq = seq;
                frame.sample_num = (seq * N as u64) as i64;
                p.process(&frame, Instant::now(), &mut tx);
                black_box(tx.0)
            })
        });
        assert_eq!(p.counters.frames_skipped, 0);
    }
    g.finish();
}

criterion_group!(benches, bench_decimator, bench_features, bench_output);
criterion_main!(benches);
