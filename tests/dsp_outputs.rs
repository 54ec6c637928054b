//! The DSP outputs through the whole bridge: a real ZMQ publisher sends 30 kHz blocks of 696
//! samples (as fast as it can: the bridge works on sample numbers), the engine runs
//! `downsampling_method: "lowpass"` and `"format": "features"` outputs, and a real UDP
//! receiver decodes what arrives with rosc.

mod common;

use common::*;
use oe_testkit::rng::Rng;
use rosc::OscType;
use std::f64::consts::PI;
use zmq2osc::config::Config;

const FS: f64 = 30000.0;
const BLOCK: usize = 696;

/// Publishes `secs` of signal: channel `c` gets `signal(c, i)` at absolute sample `i`.
fn publish(
    cfg_text: &str,
    channels: &[u32],
    secs: f64,
    signal: impl Fn(u32, usize) -> f64,
) -> (Vec<Msg>, zmq2osc::engine::Report) {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    let (parsed, warnings) =
        Config::from_json_str(&cfg_text.replace("PORT", &oport.to_string())).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    cfg.outputs = parsed.outputs;
    cfg.performance.max_block_samples = 1024;
    // Nothing may be dropped: a dropped frame is a gap and resets the filters.
    cfg.performance.osc_queue_max_size = 64;
    cfg.performance.osc_queue_overflow_strategy = zmq2osc::config::OverflowStrategy::Block;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let total = (secs * FS) as usize;
    let mut start = 0;
    while start < total {
        for &c in channels {
            let v: Vec<f32> = (start..start + BLOCK)
                .map(|i| signal(c, i) as f32)
                .collect();
            publ.send_data("example_data", c, None, start as i64, FS, &v, None)
                .unwrap();
        }
        start += BLOCK;
    }
    // One more block pushes the last one out of the receiver.
    for &c in channels {
        publ.send_data(
            "example_data",
            c,
            None,
            start as i64,
            FS,
            &[0.0; BLOCK],
            None,
        )
        .unwrap();
    }
    let blocks = (start / BLOCK) as u64;
    let frames = |e: &zmq2osc::engine::Engine| -> u64 {
        e.shared()
            .tx
            .iter()
            .map(|t| t.by_name("frames"))
            .min()
            .unwrap_or(0)
    };
    let mut msgs = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while frames(&eng) < blocks && std::time::Instant::now() < deadline {
        msgs.extend(recv_some(&rx));
    }
    let r = eng.shutdown();
    // Drain what is still in the socket.
    loop {
        let more = recv_some(&rx);
        if more.is_empty() {
            break;
        }
        msgs.extend(more);
    }
    (msgs, r)
}

/// Whatever is queued in the socket now (one read timeout ends it).
fn recv_some(s: &std::net::UdpSocket) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = s.recv(&mut buf) {
        if let Ok((_, rosc::OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n]) {
            out.push((m.addr, m.args));
        }
    }
    out
}

/// (sample number, floats) of every message at `addr` (sample numbers as two ints).
fn rows(msgs: &[Msg], addr: &str) -> Vec<(i64, Vec<f32>)> {
    msgs.iter()
        .filter(|(a, _)| a == addr)
        .map(|(_, args)| {
            let ints: Vec<i32> = args
                .iter()
                .filter_map(|a| match a {
                    OscType::Int(i) => Some(*i),
                    _ => None,
                })
                .collect();
            let sn = ((ints[0] as i64) << 32) | (ints[1] as u32 as i64);
            (sn, floats(args))
        })
        .collect()
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

/// Amplitude of a sinusoid from its RMS over `ys`.
fn amplitude(ys: &[f64]) -> f64 {
    (2.0 * ys.iter().map(|y| y * y).sum::<f64>() / ys.len() as f64).sqrt()
}

#[test]
fn lowpass_keeps_the_band_and_removes_what_would_alias_average_does_not() {
    // F = 30: 1 kHz out, pass edge 400 Hz. Channel 0: 100 Hz in band. Channel 1: 1030 Hz,
    // which folds onto 30 Hz.
    let text = r#"{"outputs": [
        {"host": "127.0.0.1", "port": PORT, "base_address": "/lp", "downsampling_factor": 30,
         "downsampling_method": "lowpass", "sample_number": true, "max_datagram": "loopback"},
        {"host": "127.0.0.1", "port": PORT, "base_address": "/avg", "downsampling_factor": 30,
         "downsampling_method": "average", "sample_number": true, "max_datagram": "loopback"}]}"#;
    let freq = [100.0, 1030.0];
    let (msgs, r) = publish(text, &[0, 1], 3.0, |c, i| {
        (2.0 * PI * freq[c as usize] * i as f64 / FS).sin()
    });
    assert!(!r.failed);
    for base in ["/lp", "/avg"] {
        let rs = rows(&msgs, &format!("{base}/sample"));
        assert!(rs.len() >= 2900, "{base}: {} rows", rs.len());
        // Rows carry the first input sample of their group: consecutive groups, no gap.
        for w in rs.windows(2) {
            assert_eq!(w[1].0 - w[0].0, 30, "{base}: rows not consecutive");
        }
        assert_eq!(rs[0].0 % 30, 0);
    }
    // Skip the filter's start (599 taps = 20 rows) and measure over 2 s (whole periods of
    // 100 Hz and of the 30 Hz alias).
    let measure = |base: &str, col: usize| -> f64 {
        let rs = rows(&msgs, &format!("{base}/sample"));
        let ys: Vec<f64> = rs[100..2100].iter().map(|(_, v)| v[col] as f64).collect();
        amplitude(&ys)
    };
    let pass = measure("/lp", 0);
    let (alias_lp, alias_avg) = (measure("/lp", 1), measure("/avg", 1));
    eprintln!(
        "lowpass F=30: 100 Hz at {:.3} dB; 1030 Hz (alias 30 Hz): lowpass {:.1} dB, average {:.1} dB",
        db(pass),
        db(alias_lp),
        db(alias_avg)
    );
    assert!(db(pass).abs() <= 0.5, "in-band tone at {:.3} dB", db(pass));
    assert!(
        db(alias_lp) <= -60.0,
        "lowpass alias at {:.1} dB",
        db(alias_lp)
    );
    // A 30-sample mean only has a sinc null near 1 kHz: the 1030 Hz tone comes through at
    // about −31 dB, as a 30 Hz tone that was never in the signal.
    assert!(
        db(alias_avg) > -40.0,
        "average alias at {:.1} dB",
        db(alias_avg)
    );
    assert!(db(alias_avg) - db(alias_lp) > 25.0);
}

#[test]
fn features_of_sines_and_spikes_arrive_correct() {
    let secs = 8.0;
    let n = (secs * FS) as usize + 2 * BLOCK;
    // Channel 1: Gaussian noise σ = 10 with Poisson spikes (0.4 ms, peak −100) at ~40/s.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut spiky: Vec<f64> = (0..n).map(|_| 10.0 * rng.gauss()).collect();
    let shape = [
        -0.3, -0.7, -1.0, -0.8, -0.4, 0.1, 0.3, 0.35, 0.3, 0.2, 0.1, 0.05,
    ];
    let mut spikes = Vec::new();
    let mut t = 0.0;
    loop {
        t += 0.002 + -(rng.uniform().ln()) * (1.0 / 40.0 - 0.002);
        let i = (t * FS) as usize;
        if i + shape.len() >= n {
            break;
        }
        for (k, s) in shape.iter().enumerate() {
            spiky[i + k] += 100.0 * s;
        }
        spikes.push((i + 2) as i64);
    }
    let a = 50.0;
    let text = r#"{"outputs": [
        {"host": "127.0.0.1", "port": PORT, "format": "features", "sample_number": true,
         "features": ["rms", "band:alpha", "band:beta", "mua_rate"]}]}"#;
    let (msgs, r) = publish(text, &[0, 1], secs, |c, i| match c {
        0 => a * (2.0 * PI * 10.0 * i as f64 / FS).sin(),
        _ => spiky[i],
    });
    assert!(!r.failed);
    let feat = |name: &str| rows(&msgs, &format!("/data/features/{name}"));
    let rms = feat("rms");
    // 60 ticks a second; skip the first second (windows and filters settling).
    assert!(
        rms.len() as f64 >= 60.0 * (secs - 0.1),
        "{} rms messages",
        rms.len()
    );
    for w in rms.windows(2) {
        assert_eq!(w[1].0 - w[0].0, 500, "ticks every 500 samples, no gap");
    }
    // The signal ends at `secs` (a block of zeros follows).
    let end = (secs * FS) as i64;
    let settled = |v: &[(i64, Vec<f32>)], col: usize| -> Vec<f64> {
        v.iter()
            .filter(|(s, _)| (30000..end).contains(s))
            .map(|(_, x)| x[col] as f64)
            .collect()
    };
    for x in settled(&rms, 0) {
        let want = a / 2f64.sqrt();
        assert!((x / want - 1.0).abs() < 0.01, "rms {x}, want {want}");
    }
    let alpha = settled(&feat("band_alpha"), 0);
    let beta = settled(&feat("band_beta"), 0);
    assert!(!alpha.is_empty() && alpha.len() == beta.len());
    for (al, be) in alpha.iter().zip(&beta) {
        let want = a * a / 2.0;
        assert!(
            (10.0 * (al / want).log10()).abs() <= 1.0,
            "alpha {al}, want {want}"
        );
        assert!(10.0 * (al / be).log10() >= 20.0, "alpha {al} beta {be}");
    }
    // mua_rate over non-overlapping 250 ms windows (every 15th tick) after the first second
    // against the spikes injected in the same span.
    let mua = feat("mua_rate");
    let win = 7500i64;
    let (mut counted, mut from, mut to) = (0.0, i64::MAX, 0);
    for (last, v) in mua
        .iter()
        .filter(|(s, _)| (30000..end).contains(s))
        .step_by(15)
    {
        counted += v[1] as f64 * 0.25;
        from = from.min(last + 1 - win);
        to = last + 1;
    }
    let injected = spikes.iter().filter(|&&s| s >= from && s < to).count() as f64;
    eprintln!("mua_rate: counted {counted:.0} spikes, injected {injected}");
    assert!(injected > 150.0, "{injected} spikes");
    assert!(
        (counted / injected - 1.0).abs() < 0.10,
        "mua counted {counted:.0}, injected {injected}"
    );
    // The sine channel has no spikes.
    assert!(settled(&mua, 0).iter().all(|&x| x < 1.0));
}

#[test]
fn a_bad_feature_exits_2_naming_its_key() {
    let d = tempdir("badfeature");
    std::fs::write(
        d.join("bad.json"),
        r#"{"outputs": [{"format": "features", "features": ["rms", "band:alfa"]}]}"#,
    )
    .unwrap();
    let out = bridge_bin()
        .args(["-c", "bad.json"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outputs[0].features[1]"), "{err}");
    assert!(
        err.contains("alpha"),
        "the message lists the named bands: {err}"
    );
}

#[test]
fn the_features_example_loads_without_warnings() {
    let text = include_str!("../examples/features.json");
    let (c, w) = Config::from_json_str(text).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let specs = c.output_specs();
    let f = specs[0].format.features.as_ref().unwrap();
    assert_eq!(f.features.len(), 5);
    assert_eq!(
        specs[1].format.method,
        zmq2osc::config::DownsamplingMethod::Lowpass
    );
}
