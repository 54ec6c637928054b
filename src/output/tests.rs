//! Unit tests of the output pipeline: vectors of the original, bytes, timers, layout changes.

use super::*;
use crate::config::DownsamplingMethod;
use crate::frame::Discontinuity;
use crate::frame::Frame;
use rosc::{OscPacket, OscType};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Capture {
    msgs: Vec<Vec<u8>>,
    blocks: usize,
}
impl Transmit for Capture {
    fn transmit(&mut self, arena: &[u8], dgrams: &[(u32, u32)]) {
        for &(o, l) in dgrams {
            self.msgs.push(arena[o as usize..(o + l) as usize].to_vec());
        }
    }
    fn block_sent(&mut self, _: Instant, _: Option<i64>) {
        self.blocks += 1;
    }
}
impl Capture {
    fn decoded(&self) -> Vec<(String, Vec<OscType>)> {
        self.msgs
            .iter()
            .map(|m| match rosc::decoder::decode_udp(m).unwrap().1 {
                OscPacket::Message(m) => (m.addr, m.args),
                _ => panic!("bundle"),
            })
            .collect()
    }
}

fn fmt(mode: Mode, factor: usize, method: DownsamplingMethod, batch: usize) -> OutputFormat {
    OutputFormat {
        mode,
        factor,
        method,
        batch_size: batch,
        batch_timeout: Duration::from_secs(1),
        max_channels: 8,
        ..Default::default()
    }
}

/// Frame with values `c·1000 + j` for channels 0..n, samples `start..start+len`.
fn frame(seq: u64, n: u32, start: usize, len: usize) -> Frame {
    let mut f = Frame::new(8, 16);
    f.seq = seq;
    f.sample_num = start as i64;
    f.num_samples = len;
    f.channels = (0..n).collect();
    f.layout_generation = 1;
    for c in 0..n {
        for (k, v) in f.row_mut(c, len).iter_mut().enumerate() {
            *v = (c as usize * 1000 + start + k) as f32;
        }
    }
    f
}

fn floats(args: &[OscType]) -> Vec<f32> {
    args.iter()
        .filter_map(|a| match a {
            OscType::Float(x) => Some(*x),
            _ => None,
        })
        .collect()
}

#[test]
fn vector_f1_sample_mode() {
    let mut p = OutputPipeline::new(fmt(Mode::Sample, 1, DownsamplingMethod::Average, 1)).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 2, 0, 2), Instant::now(), &mut c);
    let d = c.decoded();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].0, "/data/sample");
    assert_eq!(floats(&d[0].1), vec![0.0, 1000.0]);
    assert_eq!(floats(&d[1].1), vec![1.0, 1001.0]);
    assert_eq!(c.blocks, 1);
}

#[test]
fn vector_f2_average_and_across_blocks() {
    let mut p = OutputPipeline::new(fmt(Mode::Sample, 2, DownsamplingMethod::Average, 1)).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 2, 0, 4), Instant::now(), &mut c);
    let d = c.decoded();
    assert_eq!(floats(&d[0].1), vec![0.5, 1000.5]);
    assert_eq!(floats(&d[1].1), vec![2.5, 1002.5]);
    // N=1, block A j=0..2, block B j=3..5 → [0.5], [2.5], [4.5].
    let mut p = OutputPipeline::new(fmt(Mode::Sample, 2, DownsamplingMethod::Average, 1)).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 1, 0, 3), Instant::now(), &mut c);
    assert_eq!(c.blocks, 0, "block A's last sample waits in the open group");
    p.process(&frame(2, 1, 3, 3), Instant::now(), &mut c);
    let got: Vec<Vec<f32>> = c.decoded().iter().map(|m| floats(&m.1)).collect();
    assert_eq!(got, vec![vec![0.5], vec![2.5], vec![4.5]]);
    assert_eq!(c.blocks, 2);
}

#[test]
fn vector_f2_decimate_intended() {
    let mut p = OutputPipeline::new(fmt(Mode::Sample, 2, DownsamplingMethod::Decimate, 1)).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 2, 0, 4), Instant::now(), &mut c);
    let got: Vec<Vec<f32>> = c.decoded().iter().map(|m| floats(&m.1)).collect();
    assert_eq!(got, vec![vec![1.0, 1001.0], vec![3.0, 1003.0]]);
}

#[test]
fn vector_batch_bytes_exact() {
    // §3.8 / §4.3: F=2 average, B=3, N=2, j=0..5 → the exact 56-byte datagram.
    let want: Vec<u8> = [
        "2f646174612f62617463682f33000000",
        "2c69666666666666 00000000",
        "00000002",
        "3f000000 40200000 40900000",
        "447a2000 447aa000 447b2000",
    ]
    .concat()
    .split_whitespace()
    .collect::<String>()
    .as_bytes()
    .chunks(2)
    .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
    .collect();
    let mut p = OutputPipeline::new(fmt(Mode::Batch, 2, DownsamplingMethod::Average, 3)).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 2, 0, 6), Instant::now(), &mut c);
    assert_eq!(c.msgs, vec![want]);
}

#[test]
fn vector_batch_size_one() {
    let mut p = OutputPipeline::new(fmt(Mode::Batch, 1, DownsamplingMethod::Average, 1)).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 2, 0, 2), Instant::now(), &mut c);
    let d = c.decoded();
    assert_eq!(d[0].0, "/data/batch/1");
    assert_eq!(d[0].1[0], OscType::Int(2));
    assert_eq!(floats(&d[1].1), vec![1.0, 1001.0]);
}

#[test]
fn partial_batch_timer_and_finish() {
    let mut p = OutputPipeline::new(fmt(Mode::Batch, 1, DownsamplingMethod::Average, 10)).unwrap();
    let mut c = Capture::default();
    let t0 = Instant::now();
    p.process(&frame(1, 2, 0, 4), t0, &mut c);
    assert!(c.msgs.is_empty());
    assert_eq!(p.pending_rows(), 4);
    let due = p.poll(t0, &mut c).unwrap();
    assert!(c.msgs.is_empty());
    p.poll(due, &mut c);
    let d = c.decoded();
    assert_eq!(d[0].0, "/data/batch/4");
    assert_eq!(
        floats(&d[0].1),
        vec![0.0, 1.0, 2.0, 3.0, 1000.0, 1001.0, 1002.0, 1003.0]
    );
    assert_eq!(p.counters.timer_flushes, 1);
    p.process(&frame(2, 2, 4, 3), due, &mut c);
    p.finish(due, &mut c);
    assert_eq!(c.decoded()[1].0, "/data/batch/3");
    assert_eq!(c.blocks, 2);
}

#[test]
fn gap_restarts_group_and_layout_change_flushes() {
    let mut p = OutputPipeline::new(fmt(Mode::Sample, 2, DownsamplingMethod::Average, 1)).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 1, 0, 3), Instant::now(), &mut c);
    let mut f = frame(2, 1, 10, 2);
    f.discontinuity = Discontinuity {
        gap: true,
        layout: false,
    };
    p.process(&f, Instant::now(), &mut c);
    let got: Vec<Vec<f32>> = c.decoded().iter().map(|m| floats(&m.1)).collect();
    assert_eq!(
        got,
        vec![vec![0.5], vec![10.5]],
        "sample 2 of block A was not averaged with 10"
    );
    assert_eq!(p.counters.group_samples_discarded, 1);
    // A skipped sequence number (a frame dropped by policy) is a gap too.
    p.process(&frame(5, 1, 20, 3), Instant::now(), &mut c);
    p.process(&frame(7, 1, 30, 1), Instant::now(), &mut c);
    assert_eq!(p.counters.frames_skipped, 3);
    assert_eq!(floats(&c.decoded().last().unwrap().1), vec![20.5]);

    let mut p = OutputPipeline::new(fmt(Mode::Batch, 1, DownsamplingMethod::Average, 10)).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 2, 0, 2), Instant::now(), &mut c);
    let mut f = frame(2, 3, 2, 2);
    f.layout_generation = 2;
    p.process(&f, Instant::now(), &mut c);
    let d = c.decoded();
    assert_eq!(d[0].0, "/data/batch/2");
    assert_eq!(d[0].1[0], OscType::Int(2));
    assert_eq!(p.pending_rows(), 2);
    assert_eq!(p.channels(), &[0, 1, 2]);
}

#[test]
fn per_channel_and_base_address() {
    let mut f = fmt(Mode::PerChannel, 1, DownsamplingMethod::Average, 1);
    f.base_address = "/oe".into();
    let mut p = OutputPipeline::new(f).unwrap();
    let mut c = Capture::default();
    let mut fr = frame(1, 3, 0, 1);
    fr.channels = vec![0, 2];
    p.process(&fr, Instant::now(), &mut c);
    let d = c.decoded();
    assert_eq!(d[0], ("/ch000".into(), vec![OscType::Float(0.0)]));
    assert_eq!(d[1], ("/ch002".into(), vec![OscType::Float(2000.0)]));

    let mut f = fmt(Mode::Sample, 1, DownsamplingMethod::Average, 1);
    f.base_address = "/oe".into();
    let mut p = OutputPipeline::new(f).unwrap();
    let mut c = Capture::default();
    p.process(&frame(1, 1, 0, 1), Instant::now(), &mut c);
    assert_eq!(c.decoded()[0].0, "/oe/sample");
}

#[test]
fn average_is_float32_sequential_sum() {
    // Values where f64 and f32 sums differ: the result must be the f32 computation.
    let mut p = OutputPipeline::new(fmt(Mode::Sample, 3, DownsamplingMethod::Average, 1)).unwrap();
    let mut c = Capture::default();
    let mut f = frame(1, 1, 0, 3);
    let vals = [16_777_216.0f32, 1.0, 1.0];
    f.row_mut(0, 3).copy_from_slice(&vals);
    p.process(&f, Instant::now(), &mut c);
    let want = ((vals[0] + vals[1]) + vals[2]) / 3.0f32;
    assert_eq!(floats(&c.decoded()[0].1), vec![want]);
    assert_ne!(want, ((16_777_216.0f64 + 2.0) / 3.0) as f32);
}

#[test]
fn oversize_messages_are_refused_and_counted() {
    let mut f = fmt(Mode::Batch, 1, DownsamplingMethod::Average, 1000);
    f.max_channels = 32;
    let mut p = OutputPipeline::new(f).unwrap();
    let mut c = Capture::default();
    let mut fr = Frame::new(32, 1000);
    fr.seq = 1;
    fr.num_samples = 1000;
    fr.channels = (0..32).collect();
    fr.layout_generation = 1;
    p.process(&fr, Instant::now(), &mut c);
    assert!(c.msgs.is_empty());
    assert_eq!(p.counters.oversize, 1);
    assert_eq!(c.blocks, 1, "the block is accounted for, not stuck");
}

/// Frame `seq` at 30 kHz with channels 0..n holding `x[c][start..start+len]`.
fn signal_frame(seq: u64, x: &[Vec<f32>], start: usize, len: usize) -> Frame {
    let mut f = Frame::new(8, 64);
    f.seq = seq;
    f.sample_num = start as i64;
    f.num_samples = len;
    f.sample_rate = 30000.0;
    f.channels = (0..x.len() as u32).collect();
    f.layout_generation = 1;
    for (c, row) in x.iter().enumerate() {
        f.row_mut(c as u32, len)
            .copy_from_slice(&row[start..start + len]);
    }
    f
}

fn lowpass_fmt(factor: usize) -> OutputFormat {
    OutputFormat {
        sample_number: true,
        ..fmt(Mode::Sample, factor, DownsamplingMethod::Lowpass, 1)
    }
}

/// (sample number, floats) of each message.
fn numbered(c: &Capture) -> Vec<(i64, Vec<f32>)> {
    c.decoded()
        .iter()
        .map(|(_, a)| {
            let i: Vec<i32> = a
                .iter()
                .filter_map(|v| match v {
                    OscType::Int(i) => Some(*i),
                    _ => None,
                })
                .collect();
            (((i[0] as i64) << 32) | i[1] as u32 as i64, floats(a))
        })
        .collect()
}

fn sines(len: usize) -> Vec<Vec<f32>> {
    (0..2)
        .map(|c| {
            (0..len)
                .map(|i| ((i as f32) * 0.05 * (c + 1) as f32).sin() * 100.0)
                .collect()
        })
        .collect()
}

/// Runs `x` through a fresh pipeline in blocks of the given sizes (cycled).
fn run_blocks(f: OutputFormat, x: &[Vec<f32>], sizes: &[usize]) -> (Capture, OutputPipeline) {
    let mut p = OutputPipeline::new(f).unwrap();
    let mut c = Capture::default();
    let (mut at, mut k) = (0, 0);
    while at < x[0].len() {
        let len = sizes[k % sizes.len()].min(x[0].len() - at);
        p.process(
            &signal_frame(k as u64 + 1, x, at, len),
            Instant::now(),
            &mut c,
        );
        at += len;
        k += 1;
    }
    (c, p)
}

#[test]
fn lowpass_rows_are_the_decimators_at_the_decimate_positions_whatever_the_blocks() {
    let x = sines(640);
    let (c, p) = run_blocks(lowpass_fmt(4), &x, &[64]);
    let got = numbered(&c);
    assert_eq!(got.len(), 160);
    // Sample numbers: the first input sample of each group, as with average/decimate.
    for (r, (sn, _)) in got.iter().enumerate() {
        assert_eq!(*sn, 4 * r as i64);
    }
    // Values: the dsp decimator's, channel by channel.
    let mut dec = crate::dsp::fir::Decimator::new(30000.0, 4, 2).unwrap();
    for (ch, row) in x.iter().enumerate() {
        let mut out = vec![0.0; 161];
        let k = dec.process(ch, row, &mut out);
        let col: Vec<f32> = got.iter().map(|(_, v)| v[ch]).collect();
        assert_eq!(col, out[..k].to_vec(), "channel {ch}");
    }
    assert!(p.group_delay_seconds() > 0.0);
    // Blocks of odd sizes give the same rows.
    let (c2, _) = run_blocks(lowpass_fmt(4), &x, &[7, 13, 64, 1, 30]);
    assert_eq!(numbered(&c2), got);
}

#[test]
fn lowpass_state_resets_at_a_gap_and_the_block_waits_for_the_group_delay() {
    let x = sines(640);
    let mut p = OutputPipeline::new(lowpass_fmt(2)).unwrap();
    let mut c = Capture::default();
    p.process(&signal_frame(1, &x, 0, 64), Instant::now(), &mut c);
    // F = 2 at 30 kHz: 41 taps, 20 samples of delay: a block is out once the row 20 samples
    // past its last sample is sent (the next block).
    assert_eq!(c.blocks, 0);
    p.process(&signal_frame(2, &x, 64, 64), Instant::now(), &mut c);
    assert_eq!(c.blocks, 1);
    // Frame 3 is lost (seq gap): what follows starts from a clean filter.
    let n0 = c.msgs.len();
    p.process(&signal_frame(4, &x, 192, 64), Instant::now(), &mut c);
    let after_gap: Vec<_> = numbered(&c).split_off(n0);
    let mut fresh = OutputPipeline::new(lowpass_fmt(2)).unwrap();
    let mut c2 = Capture::default();
    fresh.process(&signal_frame(1, &x, 192, 64), Instant::now(), &mut c2);
    assert_eq!(after_gap, numbered(&c2));
    assert_eq!(p.counters.frames_skipped, 1);
}

fn features_fmt(names: &[&str]) -> OutputFormat {
    OutputFormat {
        features: Some(crate::dsp::features::FeatureConfig {
            features: names
                .iter()
                .map(|s| crate::dsp::features::Feature::parse(s).unwrap())
                .collect(),
            ..Default::default()
        }),
        ..fmt(Mode::Sample, 1, DownsamplingMethod::Average, 1)
    }
}

#[test]
fn features_send_one_message_per_feature_and_tick() {
    // 640 samples at 30 kHz: ticks at 500 (one).
    let x = sines(1200);
    let (c, p) = run_blocks(features_fmt(&["rms", "band:8-12", "mua_rate"]), &x, &[64]);
    let d = c.decoded();
    let addrs: Vec<&str> = d.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        addrs,
        [
            "/data/features/rms",
            "/data/features/band_8-12",
            "/data/features/mua_rate",
            "/data/features/rms",
            "/data/features/band_8-12",
            "/data/features/mua_rate"
        ]
    );
    assert!(d.iter().all(|m| floats(&m.1).len() == 2));
    assert_eq!(p.counters.rows, 2);
    // The same through one extractor.
    let cfg = features_fmt(&["rms", "band:8-12", "mua_rate"])
        .features
        .unwrap();
    let mut fx = crate::dsp::features::FeatureExtractor::new(&cfg, 30000.0, 2).unwrap();
    let mut v = vec![0.0; fx.values_len()];
    let mut want = Vec::new();
    fx.process(1200, |c| &x[c][..], &mut v, |_, v| want.push(v.to_vec()));
    assert_eq!(floats(&d[0].1), want[0][0..2].to_vec());
    assert_eq!(floats(&d[4].1), want[1][2..4].to_vec());
}

#[test]
fn features_at_a_rate_they_cannot_be_designed_for_are_counted_and_skipped() {
    // high_gamma (80-200 Hz) needs fs > 444 Hz.
    let mut p = OutputPipeline::new(features_fmt(&["band:high_gamma"])).unwrap();
    let mut c = Capture::default();
    let x = sines(64);
    let mut f = signal_frame(1, &x, 0, 64);
    f.sample_rate = 400.0;
    p.process(&f, Instant::now(), &mut c);
    f.seq = 2;
    p.process(&f, Instant::now(), &mut c);
    assert_eq!(p.counters.dsp_unsupported, 2);
    assert!(c.msgs.is_empty());
    // At 30 kHz it works.
    f.seq = 3;
    f.sample_rate = 30000.0;
    p.process(&f, Instant::now(), &mut c);
    assert_eq!(p.counters.dsp_unsupported, 2);
}

#[test]
fn a_zero_or_nan_rate_is_counted_not_designed_for() {
    let x = sines(64);
    for rate in [0.0, f64::NAN] {
        let mut p = OutputPipeline::new(lowpass_fmt(4)).unwrap();
        let mut c = Capture::default();
        let mut f = signal_frame(1, &x, 0, 64);
        f.sample_rate = rate;
        p.process(&f, Instant::now(), &mut c);
        assert_eq!(p.counters.dsp_unsupported, 1, "rate {rate}");
        assert!(c.msgs.is_empty());
    }
}

#[test]
fn features_with_a_feature_template_send_one_message_per_feature_and_channel() {
    let x = sines(600);
    let mut f = features_fmt(&["rms", "band:alpha"]);
    f.mode = Mode::PerChannel;
    f.channel_address_format = "{base}/features/{feature}/{name}".into();
    f.sample_number = true;
    let (c, _) = run_blocks(f, &x, &[64]);
    let d = c.decoded();
    let addrs: Vec<&str> = d.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        addrs,
        [
            "/data/features/rms/CH1",
            "/data/features/rms/CH2",
            "/data/features/band_alpha/CH1",
            "/data/features/band_alpha/CH2"
        ]
    );
    // One float each, after the sample number (last sample of the window: 499).
    for m in &d {
        assert_eq!(m.1.len(), 3);
        assert_eq!((&m.1[0], &m.1[1]), (&OscType::Int(0), &OscType::Int(499)));
    }
    let (whole, _) = run_blocks(features_fmt(&["rms", "band:alpha"]), &x, &[64]);
    let w = whole.decoded();
    assert_eq!(floats(&w[0].1), [floats(&d[0].1), floats(&d[1].1)].concat());
    assert_eq!(floats(&w[1].1), [floats(&d[2].1), floats(&d[3].1)].concat());
}
