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
