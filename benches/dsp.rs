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
//! Run: `cargo bench --bench dsp -- --warm-up-time 1 --measurement-time 2`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use zmq2osc::dsp::features::{Feature, FeatureConfig, FeatureExtractor};
use zmq2osc::dsp::fir::Decimator;

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

criterion_group!(benches, bench_decimator, bench_features);
criterion_main!(benches);
