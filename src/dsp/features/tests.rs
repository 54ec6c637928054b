//! Tests of the feature extractor on synthetic signals.

use super::*;
use oe_testkit::rng::Rng;
use std::f64::consts::PI;

const FS: f64 = 30000.0;

fn cfg(features: &[&str]) -> FeatureConfig {
    FeatureConfig {
        features: features
            .iter()
            .map(|s| Feature::parse(s).unwrap())
            .collect(),
        ..FeatureConfig::default()
    }
}

fn sine(fs: f64, f: f64, amp: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (amp * (2.0 * PI * f * i as f64 / fs).sin()) as f32)
        .collect()
}

/// Runs `x` (one row per channel, equal lengths) through `ex` in blocks of the given sizes
/// (cycled); returns every tick's (global end sample, values).
fn run(ex: &mut FeatureExtractor, x: &[Vec<f32>], sizes: &[usize]) -> Vec<(usize, Vec<f32>)> {
    let mut out = vec![0.0f32; ex.values_len()];
    let mut ticks = Vec::new();
    let len = x[0].len();
    let (mut i, mut k) = (0, 0);
    while i < len {
        let s = sizes[k % sizes.len()].min(len - i);
        ex.process(
            s,
            |c| &x[c][i..i + s],
            &mut out,
            |off, v| ticks.push((i + off, v.to_vec())),
        );
        i += s;
        k += 1;
    }
    ticks
}

#[test]
fn feature_names_parse_with_clear_errors() {
    assert_eq!(Feature::parse("rms").unwrap(), Feature::Rms);
    assert_eq!(Feature::parse(" mua_rate ").unwrap(), Feature::MuaRate);
    assert_eq!(
        Feature::parse("band:alpha").unwrap(),
        Feature::Band {
            name: Some("alpha"),
            lo: 8.0,
            hi: 12.0
        }
    );
    assert_eq!(
        Feature::parse("band:8-12.5").unwrap(),
        Feature::Band {
            name: None,
            lo: 8.0,
            hi: 12.5
        }
    );
    for s in [
        "rms",
        "peak",
        "mean",
        "line_length",
        "mua_rate",
        "band:high_gamma",
        "band:8-12.5",
    ] {
        assert_eq!(Feature::parse(s).unwrap().label(), s);
        assert_eq!(s.parse::<Feature>().unwrap().to_string(), s);
    }
    for (s, needle) in [
        ("power", "unknown feature"),
        ("band:", "neither a named band"),
        ("band:kappa", "neither a named band"),
        ("band:8-", "high edge"),
        ("band:x-12", "low edge"),
        ("band:12-8", "0 < lo < hi"),
        ("band:0-4", "0 < lo < hi"),
        ("band:nan-4", "low edge"),
    ] {
        let e = Feature::parse(s).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(needle), "{s}: {msg}");
        assert!(msg.contains(&format!("{s:?}")), "{msg}");
    }
    assert_eq!(Normalize::parse("zscore").unwrap(), Normalize::Zscore);
    assert_eq!(Normalize::parse("minmax").unwrap().as_str(), "minmax");
    assert!(Normalize::parse("l2").is_err());
}

#[test]
fn bad_configs_are_errors() {
    let ok = cfg(&["rms"]);
    assert!(FeatureExtractor::new(&ok, FS, 4).is_ok());
    for c in [
        FeatureConfig {
            feature_rate: 0.0,
            ..ok.clone()
        },
        FeatureConfig {
            feature_rate: f64::NAN,
            ..ok.clone()
        },
        FeatureConfig {
            feature_window_ms: -1.0,
            ..ok.clone()
        },
        FeatureConfig {
            normalize_window_s: 0.0,
            ..ok.clone()
        },
        FeatureConfig {
            features: vec![],
            ..ok.clone()
        },
        FeatureConfig {
            mua_threshold: 0.0,
            ..cfg(&["mua_rate"])
        },
        FeatureConfig {
            mua_refractory_ms: -1.0,
            ..cfg(&["mua_rate"])
        },
        FeatureConfig {
            mua_highpass_hz: 20000.0,
            ..cfg(&["mua_rate"])
        },
        cfg(&["band:100-500"]), // at 1 kHz: above 0.45 fs
    ] {
        assert!(FeatureExtractor::new(&c, 1000.0, 4).is_err(), "{c:?}");
    }
    assert!(FeatureExtractor::new(&ok, 0.0, 4).is_err());
}

#[test]
fn sine_gives_rms_peak_mean_and_line_length() {
    let (a, f) = (3.0, 20.0);
    let c = cfg(&["rms", "peak", "mean", "line_length"]);
    let mut ex = FeatureExtractor::new(&c, FS, 2).unwrap();
    assert_eq!(ex.window_ticks(), 15);
    let x = vec![sine(FS, f, a, 60_000), sine(FS, f, 2.0 * a, 60_000)];
    let ticks = run(&mut ex, &x, &[1024]);
    assert_eq!(ticks.len(), 120);
    for (t, v) in ticks.iter().skip(15) {
        for ch in 0..2 {
            let amp = a * (ch + 1) as f64;
            let g = |fi: usize| v[fi * 2 + ch] as f64;
            assert!(
                (g(0) / (amp / 2f64.sqrt()) - 1.0).abs() < 0.01,
                "rms at {t}: {}",
                g(0)
            );
            assert!((g(1) / amp - 1.0).abs() < 0.001, "peak {}", g(1));
            assert!(g(2).abs() < 0.01 * amp, "mean {}", g(2));
            // 250 ms of a 20 Hz sine: 5 periods, 4·A each.
            let ll = 4.0 * amp * f * 0.25;
            assert!(
                (g(3) / ll - 1.0).abs() < 0.005,
                "line_length {} vs {ll}",
                g(3)
            );
        }
    }
}

fn band_powers(fs: f64, f: f64, a: f64, secs: f64, bands: &[&str]) -> Vec<f64> {
    let mut ex = FeatureExtractor::new(&cfg(bands), fs, 1).unwrap();
    let x = vec![sine(fs, f, a, (fs * secs) as usize)];
    let ticks = run(&mut ex, &x, &[777]);
    ticks.last().unwrap().1.iter().map(|&v| v as f64).collect()
}

fn db(x: f64) -> f64 {
    10.0 * x.log10()
}

#[test]
fn alpha_power_of_a_10_hz_sine() {
    let a = 2.0;
    for fs in [30000.0, 1000.0] {
        let p = band_powers(
            fs,
            10.0,
            a,
            4.0,
            &["band:alpha", "band:beta", "band:8-12", "band:theta"],
        );
        let expect = a * a / 2.0;
        assert!(
            db(p[0] / expect).abs() < 1.0,
            "fs {fs}: alpha {} vs {expect}",
            p[0]
        );
        assert!(
            db(p[0] / p[1]) >= 20.0,
            "fs {fs}: alpha {} beta {}",
            p[0],
            p[1]
        );
        assert!(
            db(p[0] / p[3]) >= 20.0,
            "fs {fs}: alpha {} theta {}",
            p[0],
            p[3]
        );
        assert_eq!(p[0], p[2]);
    }
}

#[test]
fn low_and_high_bands_at_30_khz() {
    // delta (1-4 Hz) at 30 kHz: the decimate-first design keeps it accurate.
    let p = band_powers(FS, 2.0, 1.0, 8.0, &["band:delta", "band:alpha"]);
    assert!(db(p[0] / 0.5).abs() < 1.0, "delta {}", p[0]);
    assert!(db(p[0] / p[1]) >= 20.0);
    let p = band_powers(FS, 130.0, 1.0, 1.0, &["band:high_gamma", "band:gamma"]);
    assert!(db(p[0] / 0.5).abs() < 1.0, "high_gamma {}", p[0]);
    assert!(db(p[0] / p[1]) >= 20.0);
}

/// Poisson spikes of `amp` noise σ in Gaussian noise: (measured mua_rate, injected rate)
/// over non-overlapping windows after a 1 s warm-up.
fn spikes_in_noise(amp: f64, seed: u64) -> (f64, f64) {
    let (sigma, rate, secs) = (10.0, 50.0, 12.0);
    let n = (FS * secs) as usize;
    let mut rng = Rng(seed);
    let mut x: Vec<f32> = (0..n).map(|_| (sigma * rng.gauss()) as f32).collect();
    // Spikes: 0.4 ms biphasic, peak −amp·σ; intervals 2 ms + exponential (mean 1/rate).
    let shape = [
        -0.3, -0.7, -1.0, -0.8, -0.4, 0.1, 0.3, 0.35, 0.3, 0.2, 0.1, 0.05,
    ];
    let mut spikes = Vec::new();
    let mut t = 0.0;
    loop {
        t += 0.002 + -(rng.uniform().ln()) * (1.0 / rate - 0.002);
        let i = (t * FS) as usize;
        if i + shape.len() >= n {
            break;
        }
        for (k, s) in shape.iter().enumerate() {
            x[i + k] += (amp * sigma * s) as f32;
        }
        spikes.push(i + 2);
    }
    let mut ex = FeatureExtractor::new(&cfg(&["mua_rate"]), FS, 1).unwrap();
    let ticks = run(&mut ex, &[x], &[640]);
    let k = ex.window_ticks();
    let (mut counted, mut from, mut to) = (0.0, usize::MAX, 0);
    for (end, v) in ticks.iter().skip(60).step_by(k) {
        counted += v[0] as f64 * ex.window_seconds();
        from = from.min(end - (ex.window_seconds() * FS) as usize);
        to = *end;
    }
    let injected = spikes.iter().filter(|&&s| s >= from && s < to).count() as f64;
    let span = (to - from) as f64 / FS;
    (counted / span, injected / span)
}

#[test]
fn mua_rate_of_poisson_spikes_in_noise() {
    let (measured, truth) = spikes_in_noise(10.0, 0x9E37_79B9_7F4A_7C15);
    assert!(
        (measured / truth - 1.0).abs() < 0.10,
        "mua_rate {measured:.1}/s, injected {truth:.1}/s"
    );
    // The threshold is relative to the noise: spikes of 3σ mostly stay under 4.5σ.
    let (measured, truth) = spikes_in_noise(3.0, 5);
    assert!(
        measured < 0.4 * truth,
        "3σ spikes: {measured:.1}/s of {truth:.1}/s"
    );
    // Noise alone: (almost) no crossings.
    let (measured, _) = spikes_in_noise(0.0, 6);
    assert!(measured < 1.0, "noise-only mua_rate {measured}");
}

#[test]
fn positive_threshold_counts_upward_crossings() {
    let n = (FS * 3.0) as usize;
    let mut rng = Rng(7);
    let mut x: Vec<f32> = (0..n).map(|_| rng.gauss() as f32).collect();
    // One upward spike every 600 samples: 50 per second.
    for i in (3000..n - 10).step_by(600) {
        x[i] += 20.0;
        x[i + 1] += 15.0;
    }
    let up = FeatureConfig {
        mua_threshold: 4.5,
        mua_highpass_hz: 0.0,
        ..cfg(&["mua_rate"])
    };
    let down = FeatureConfig {
        mua_highpass_hz: 0.0,
        ..cfg(&["mua_rate"])
    };
    let last = |c: &FeatureConfig| {
        let mut ex = FeatureExtractor::new(c, FS, 1).unwrap();
        run(&mut ex, &[x.clone()], &[1000]).last().unwrap().1[0]
    };
    assert!((last(&up) - 50.0).abs() <= 4.0, "up {}", last(&up));
    assert!(last(&down) < 4.0, "down {}", last(&down));
}

#[test]
fn emission_count_is_rate_times_duration() {
    for (rate, secs) in [(60.0, 3.3), (70.0, 3.3), (1.0, 2.5), (250.0, 1.0)] {
        let c = FeatureConfig {
            feature_rate: rate,
            ..cfg(&["rms"])
        };
        let mut ex = FeatureExtractor::new(&c, FS, 1).unwrap();
        let n = (FS * secs) as usize;
        let x = vec![vec![1.0f32; n]];
        let ticks = run(&mut ex, &x, &[1, 696, 1024, 37, 4096]);
        assert_eq!(
            ticks.len() as u64,
            (rate * secs).floor() as u64,
            "rate {rate}"
        );
        assert_eq!(ex.ticks(), ticks.len() as u64);
        for (k, (end, _)) in ticks.iter().enumerate() {
            let expect = ((k + 1) as f64 * FS / rate).round() as usize;
            assert_eq!(*end, expect);
        }
    }
}

fn mixed_signal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let t = i as f64 / FS;
            let spike = if i % 997 < 3 { -80.0 } else { 0.0 };
            (5.0 * (2.0 * PI * 10.0 * t).sin() + 3.0 * rng.gauss() + spike + 50.0) as f32
        })
        .collect()
}

fn all_features(normalize: Normalize) -> FeatureConfig {
    FeatureConfig {
        normalize,
        normalize_window_s: 1.0,
        ..cfg(&[
            "rms",
            "peak",
            "mean",
            "line_length",
            "band:alpha",
            "band:150-300",
            "mua_rate",
        ])
    }
}

#[test]
fn block_splits_give_identical_values() {
    let n = (FS * 1.5) as usize;
    let x = vec![mixed_signal(n, 1), mixed_signal(n, 2)];
    for norm in [Normalize::None, Normalize::Zscore] {
        let c = all_features(norm);
        let mut one = FeatureExtractor::new(&c, FS, 2).unwrap();
        let whole = run(&mut one, &x, &[n]);
        let mut split = FeatureExtractor::new(&c, FS, 2).unwrap();
        let parts = run(&mut split, &x, &[1, 2, 696, 1023, 7, 500, 3000]);
        assert_eq!(whole.len(), 90);
        assert_eq!(whole, parts);
    }
}

#[test]
fn reset_forgets_everything() {
    let n = (FS * 1.0) as usize;
    let a = vec![mixed_signal(n, 3)];
    let b = vec![mixed_signal(n, 4)];
    let c = all_features(Normalize::Minmax);
    let mut fresh = FeatureExtractor::new(&c, FS, 1).unwrap();
    let expect = run(&mut fresh, &b, &[640]);
    let mut used = FeatureExtractor::new(&c, FS, 1).unwrap();
    run(&mut used, &a, &[640]);
    // A partial block, then reset mid-way between ticks.
    let mut out = vec![0.0; used.values_len()];
    used.process(123, |_| &a[0][..123], &mut out, |_, _| {});
    used.reset();
    assert_eq!(used.ticks(), 0);
    assert_eq!(run(&mut used, &b, &[640]), expect);
}

#[test]
fn normalize_maps_a_stationary_feature() {
    let n = (FS * 6.0) as usize;
    let mut rng = Rng(11);
    let x = vec![(0..n)
        .map(|_| (4.0 * rng.gauss()) as f32)
        .collect::<Vec<_>>()];
    let mk = |norm| FeatureConfig {
        normalize: norm,
        normalize_window_s: 2.0,
        ..cfg(&["rms", "line_length"])
    };
    let mut mm = FeatureExtractor::new(&mk(Normalize::Minmax), FS, 1).unwrap();
    let ticks = run(&mut mm, &x, &[1024]);
    for (_, v) in &ticks {
        for &val in v {
            assert!((0.0..=1.0).contains(&val), "minmax {val}");
        }
    }
    let spread = ticks
        .iter()
        .skip(120)
        .map(|t| t.1[0])
        .fold((1.0f32, 0.0f32), |a, v| (a.0.min(v), a.1.max(v)));
    assert!(
        spread.1 - spread.0 > 0.5,
        "minmax uses the range: {spread:?}"
    );
    let mut z = FeatureExtractor::new(&mk(Normalize::Zscore), FS, 1).unwrap();
    let ticks = run(&mut z, &x, &[1024]);
    let tail: Vec<f64> = ticks.iter().skip(120).map(|t| t.1[0] as f64).collect();
    let mean = tail.iter().sum::<f64>() / tail.len() as f64;
    let sd = (tail.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / tail.len() as f64).sqrt();
    assert!(tail.iter().all(|v| v.abs() < 5.0));
    assert!(
        mean.abs() < 0.5 && sd > 0.5 && sd < 2.0,
        "zscore mean {mean} sd {sd}"
    );
    // A doubling of the amplitude stands out.
    let mut y = x[0].clone();
    for v in &mut y[n / 2..] {
        *v *= 2.0;
    }
    let mut z = FeatureExtractor::new(&mk(Normalize::Zscore), FS, 1).unwrap();
    let ticks = run(&mut z, &[y], &[1024]);
    let after = ticks.iter().find(|t| t.0 >= n / 2 + 7500).unwrap().1[0];
    assert!(after > 3.0, "zscore after a step {after}");
}

#[test]
fn non_finite_samples_do_not_stick() {
    let n = (FS * 2.0) as usize;
    let mut x = sine(FS, 10.0, 1.0, n);
    for v in &mut x[3000..3010] {
        *v = f32::NAN;
    }
    x[4000] = f32::INFINITY;
    let c = cfg(&["rms", "band:alpha", "mua_rate"]);
    let mut ex = FeatureExtractor::new(&c, FS, 1).unwrap();
    let ticks = run(&mut ex, &[x], &[640]);
    assert!(ex.nonfinite_resets() > 0);
    let last = &ticks.last().unwrap().1;
    assert!(last.iter().all(|v| v.is_finite()), "{last:?}");
    assert!((last[0] as f64 - 0.5f64.sqrt()).abs() < 0.01);
}

#[test]
fn channels_are_independent_and_match_single_channel_runs() {
    // Six channels: one interleaved group of four for mua_rate, then two alone.
    let n = (FS * 0.8) as usize;
    let x: Vec<Vec<f32>> = (0..6).map(|c| mixed_signal(n, 20 + c)).collect();
    let c = all_features(Normalize::Zscore);
    let nf = c.features.len();
    let mut all = FeatureExtractor::new(&c, FS, 6).unwrap();
    let many = run(&mut all, &x, &[696]);
    for ch in 0..6 {
        let mut one = FeatureExtractor::new(&c, FS, 1).unwrap();
        let single = run(&mut one, &x[ch..ch + 1], &[696]);
        assert_eq!(single.len(), many.len());
        for (s, m) in single.iter().zip(&many) {
            assert_eq!(s.0, m.0);
            for f in 0..nf {
                assert_eq!(
                    s.1[f],
                    m.1[f * 6 + ch],
                    "channel {ch} feature {f} at {}",
                    s.0
                );
            }
        }
    }
}

#[test]
fn fewer_channels_in_a_larger_extractor_match_an_exact_one() {
    let c = cfg(&["rms", "band:alpha", "mua_rate"]);
    let fs = 30000.0;
    let mut rng = Rng(7);
    let x: Vec<Vec<f32>> = (0..3)
        .map(|k| {
            let s = sine(fs, 10.0 + k as f64, 1.0 + k as f64, 30000);
            s.iter().map(|v| v + 0.1 * rng.gauss() as f32).collect()
        })
        .collect();
    let mut exact = FeatureExtractor::new(&c, fs, 3).unwrap();
    let want = run(&mut exact, &x, &[696]);
    let mut big = FeatureExtractor::new(&c, fs, 8).unwrap();
    assert_eq!(big.capacity(), 8);
    // Fed 8 channels first: set_channels must forget all of it.
    let eight: Vec<Vec<f32>> = (0..8).map(|_| sine(fs, 50.0, 3.0, 5000)).collect();
    run(&mut big, &eight, &[1000]);
    big.set_channels(3).unwrap();
    assert_eq!((big.channels(), big.values_len()), (3, 9));
    let got = run(&mut big, &x, &[696]);
    assert_eq!(got, want);
    assert!(big.set_channels(9).is_err(), "above the capacity");
}
