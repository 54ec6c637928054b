use super::*;
use std::io;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

// ---- test-side signal and encoder (independent of the code under test) ----

fn tv(wrap: u32, ch: u32, j: i64) -> f32 {
    let w = i64::from(wrap);
    (i64::from(ch) * w + j.rem_euclid(w)) as f32
}

fn t_row(wrap: u32, chans: &[u32], f: u32, m: Method, s: i64) -> Vec<f32> {
    chans
        .iter()
        .map(|&ch| match (f, m) {
            (1, _) => tv(wrap, ch, s),
            (_, Method::Decimate) => tv(wrap, ch, s + i64::from(f) - 1),
            (_, Method::Average) => {
                let mut acc = tv(wrap, ch, s);
                for i in 1..i64::from(f) {
                    acc += tv(wrap, ch, s + i);
                }
                acc / f as f32
            }
        })
        .collect()
}

fn put_str(o: &mut Vec<u8>, s: &[u8]) {
    o.extend_from_slice(s);
    o.push(0);
    while o.len() & 3 != 0 {
        o.push(0);
    }
}

fn enc_sample(base: &str, vals: &[f32]) -> Vec<u8> {
    let mut o = Vec::new();
    put_str(&mut o, format!("{base}/sample").as_bytes());
    let mut tags = vec![b','];
    tags.resize(1 + vals.len(), b'f');
    put_str(&mut o, &tags);
    for v in vals {
        o.extend_from_slice(&v.to_be_bytes());
    }
    o
}

fn enc_batch(base: &str, rows: &[Vec<f32>]) -> Vec<u8> {
    let k = rows.len();
    let n = rows[0].len();
    let mut o = Vec::new();
    put_str(&mut o, format!("{base}/batch/{k}").as_bytes());
    let mut tags = b",i".to_vec();
    tags.resize(2 + n * k, b'f');
    put_str(&mut o, &tags);
    o.extend_from_slice(&(n as i32).to_be_bytes());
    for c in 0..n {
        for row in rows {
            o.extend_from_slice(&row[c].to_be_bytes());
        }
    }
    o
}

fn cfg(chans: Vec<u32>, layout: Layout, f: u32, m: Method) -> SinkConfig {
    let wrap = pattern_wrap(chans.last().copied().unwrap_or(0));
    SinkConfig {
        channels: chans,
        wrap,
        factor: f,
        method: m,
        layout,
        ..SinkConfig::default()
    }
}

/// Sends in chunks, waiting (condition, not sleep) until each chunk was received so the
/// receive buffer can never overflow.
fn send_paced(sink: &Sink, msgs: &[Vec<u8>]) {
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let start = sink.report().datagrams;
    let mut sent = 0u64;
    for chunk in msgs.chunks(64) {
        for m in chunk {
            tx.send_to(m, sink.local_addr()).unwrap();
        }
        sent += chunk.len() as u64;
        let target = start + sent;
        assert!(
            sink.wait_until(|r| r.datagrams >= target, T),
            "sink did not receive {target} datagrams"
        );
    }
}

fn run(c: SinkConfig, msgs: &[Vec<u8>]) -> SinkReport {
    let sink = Sink::start(c).unwrap();
    assert!(sink.effective_recv_buffer() > 0);
    send_paced(&sink, msgs);
    sink.stop()
}

fn sample_msgs(c: &SinkConfig, starts: impl IntoIterator<Item = i64>) -> Vec<Vec<u8>> {
    starts
        .into_iter()
        .map(|s| enc_sample("/data", &t_row(c.wrap, &c.channels, c.factor, c.method, s)))
        .collect()
}

fn assert_anomalies_zero(r: &SinkReport) {
    assert_eq!(r.malformed, 0, "{r:?}");
    assert_eq!(r.wrong_address, 0, "{r:?}");
    assert_eq!(r.duplicated_rows, 0, "{r:?}");
    assert_eq!(r.reordered_rows, 0, "{r:?}");
    assert_eq!(r.torn_rows, 0, "{r:?}");
    assert_eq!(r.bad_values, 0, "{r:?}");
    assert_eq!(r.discontinuities, 0, "{r:?}");
}

// ---- signal ----

#[test]
fn signal_definition() {
    assert_eq!(pattern_wrap(0), 1 << 24);
    assert_eq!(pattern_wrap(15), 1 << 20);
    assert_eq!(pattern_wrap(16), 1 << 19);
    assert_eq!(pattern_wrap(31), 1 << 19);
    assert_eq!(pattern_wrap(u32::MAX), 1);
    let w = pattern_wrap(15);
    assert_eq!(pattern_value(w, 3, 5), (3 * w + 5) as f32);
    assert_eq!(pattern_value(w, 3, i64::from(w) + 5), (3 * w + 5) as f32);
    assert_eq!(pattern_value(w, 15, -1), (16 * w - 1) as f32);
    assert_eq!(pattern_value(0, 7, 9), 7.0); // wrap 0 treated as 1, no panic
    for j in [0i64, 1, 12345, 1 << 40] {
        assert_eq!(pattern_value(w, 15, j), tv(w, 15, j));
    }
}

// ---- parser ----

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn parses_spec_byte_vectors() {
    // reference-spec §3.8 captures (format only; their values are not our signal).
    let b = hex(
        "2f646174 612f7361 6d706c65 00000000 2c666666 66000000 40400000 447ac000 44fa6000 453bb000",
    );
    let m = parse_osc_message(&b).unwrap();
    assert_eq!(m.address, "/data/sample");
    assert_eq!(m.type_tags, b"ffff");
    let v: Vec<OscArg> = m.args().collect();
    assert_eq!(v, [3.0, 1003.0, 2003.0, 3003.0].map(OscArg::Float).to_vec());
    let b = hex("2f646174 612f6261 7463682f 33000000 2c696666 66666666 00000000 00000002 3f000000 40200000 40900000 447a2000 447aa000 447b2000");
    let m = parse_osc_message(&b).unwrap();
    assert_eq!(m.address, "/data/batch/3");
    let v: Vec<OscArg> = m.args().collect();
    assert_eq!(v[0], OscArg::Int(2));
    assert_eq!(v[1..4], [0.5, 2.5, 4.5].map(OscArg::Float));
    assert_eq!(v[6], OscArg::Float(1004.5));
    assert_eq!(batch_shape(&m, "/data/batch/"), Some((2, 3)));
    // our encoder produces the same bytes
    assert_eq!(
        enc_batch(
            "/data",
            &[vec![0.5, 1000.5], vec![2.5, 1002.5], vec![4.5, 1004.5]]
        ),
        b
    );
    let b = hex("2f636830 30300000 2c660000 3fc00000");
    assert_eq!(parse_osc_message(&b).unwrap().address, "/ch000");
    // other tags are size-checked
    let mut o = Vec::new();
    put_str(&mut o, b"/x");
    put_str(&mut o, b",sbhTi");
    put_str(&mut o, b"hello");
    o.extend_from_slice(&3i32.to_be_bytes());
    o.extend_from_slice(&[1, 2, 3, 0]);
    o.extend_from_slice(&7i64.to_be_bytes());
    o.extend_from_slice(&(-5i32).to_be_bytes());
    let m = parse_osc_message(&o).unwrap();
    let v: Vec<OscArg> = m.args().collect();
    assert_eq!(v.len(), 5);
    assert_eq!(v[4], OscArg::Int(-5));
    assert!(parse_osc_message(&o[..o.len() - 4]).is_none());
}

// ---- (1) F = 1, sample mode ----

#[test]
fn sample_mode_f1_clean() {
    let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
    assert_eq!(c.wrap, 1 << 20);
    let msgs = sample_msgs(&c, 5000..6000);
    let r = run(c, &msgs);
    assert_eq!(r.datagrams, 1000);
    assert_eq!(r.rows, 1000);
    assert_eq!(r.clean_rows, 1000, "{r:?}");
    assert_eq!(r.lost_rows, 0);
    assert_anomalies_zero(&r);
    assert_eq!(r.channels_seen, 16);
    assert_eq!(r.bytes, 1000 * (16 + 20 + 64));
    assert!(r.first_at.unwrap() <= r.last_at.unwrap());
    assert!(r.latency.is_none());
    assert_eq!(r.kernel_drops, 0);
}

// ---- (2) gaps, duplicates, torn rows, reordering, bad values, restarts ----

#[test]
fn sample_mode_gap_counts_lost() {
    let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
    let msgs = sample_msgs(&c, (0..1000).filter(|s| !(100..110).contains(s)));
    let r = run(c, &msgs);
    assert_eq!(r.rows, 990);
    assert_eq!(r.lost_rows, 10, "{r:?}");
    assert_eq!(r.clean_rows, 990);
    assert_anomalies_zero(&r);
}

#[test]
fn sample_mode_duplicate() {
    let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
    let starts = (0..1000).flat_map(|s| if s == 500 { vec![s, s] } else { vec![s] });
    let msgs = sample_msgs(&c, starts);
    let r = run(c, &msgs);
    assert_eq!(r.rows, 1001);
    assert_eq!(r.duplicated_rows, 1, "{r:?}");
    assert_eq!(r.clean_rows, 1000);
    assert_eq!(r.lost_rows, 0);
    assert_eq!(r.reordered_rows + r.torn_rows + r.bad_values, 0);
}

#[test]
fn sample_mode_torn_row() {
    let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
    let mut msgs = sample_msgs(&c, 0..1000);
    let mut row = t_row(c.wrap, &c.channels, 1, Method::Average, 300);
    row[5] = tv(c.wrap, 5, 700);
    msgs[300] = enc_sample("/data", &row);
    let r = run(c, &msgs);
    assert_eq!(r.torn_rows, 1, "{r:?}");
    assert_eq!(r.clean_rows, 999);
    assert_eq!(r.lost_rows, 0);
    assert_eq!(r.bad_values, 0);
    assert_eq!(r.duplicated_rows + r.reordered_rows + r.discontinuities, 0);
}

#[test]
fn sample_mode_reorder_bad_values_and_restart() {
    let c = cfg((0..16).collect(), Layout::Sample, 1, Method::Average);
    let mut msgs = sample_msgs(&c, 100_000..101_000);
    msgs.swap(200, 201);
    let mut row = t_row(c.wrap, &c.channels, 1, Method::Average, 100_400);
    row[3] = tv(c.wrap, 9, 100_400); // another channel's value
    row[4] = 0.5; // not a signal value
    msgs[400] = enc_sample("/data", &row);
    // restart far behind: discontinuity, not loss
    msgs.extend(sample_msgs(&c, 0..50));
    let r = run(c, &msgs);
    assert_eq!(r.reordered_rows, 1, "{r:?}");
    assert_eq!(r.lost_rows, 0, "{r:?}");
    assert_eq!(r.bad_values, 2, "{r:?}");
    assert_eq!(r.torn_rows, 0);
    assert_eq!(r.discontinuities, 1);
    assert_eq!(r.rows, 1050);
    // not clean: row 200 (late) and row 400 (bad values)
    assert_eq!(r.clean_rows, 1048);
}

// ---- (3) batch mode, average F = 30, phase != 0, wrap straddle ----

#[test]
fn batch_mode_average_f30_straddles_wrap() {
    let c = cfg(vec![0, 1, 2, 3, 7, 31], Layout::Batch, 30, Method::Average);
    let w = i64::from(c.wrap);
    assert_eq!(w, 1 << 19);
    let a = 3 * w + (w - 1343); // phase: arbitrary absolute start
    let starts: Vec<i64> = (0..200).map(|r| a + 30 * r).collect();
    assert!(
        starts.iter().any(|s| s.rem_euclid(w) > w - 30),
        "a group must straddle the wrap point"
    );
    let rows: Vec<Vec<f32>> = starts
        .iter()
        .map(|&s| t_row(c.wrap, &c.channels, 30, Method::Average, s))
        .collect();
    // batch sizes: 10 x10, then partial flushes 3 and 7, then 9 x10
    let mut sizes = vec![10; 10];
    sizes.extend([3, 7]);
    sizes.extend(vec![10; 9]);
    let mut msgs = Vec::new();
    let mut i = 0;
    for k in sizes {
        msgs.push(enc_batch("/data", &rows[i..i + k]));
        i += k;
    }
    assert_eq!(i, 200);
    let r = run(c, &msgs);
    assert_eq!(r.datagrams, 21);
    assert_eq!(r.rows, 200);
    assert_eq!(r.clean_rows, 200, "{r:?}");
    assert_eq!(r.lost_rows, 0);
    assert_anomalies_zero(&r);
    assert_eq!(r.channels_seen, 6);
}

#[test]
fn batch_mode_average_loss_and_torn() {
    let c = cfg(vec![0, 1, 2, 3, 7, 31], Layout::Batch, 30, Method::Average);
    let a = 17;
    let mut rows: Vec<Vec<f32>> = (0..100)
        .map(|r| t_row(c.wrap, &c.channels, 30, Method::Average, a + 30 * r))
        .collect();
    rows[55][2] = rows[70][2]; // torn
    let mut msgs: Vec<Vec<u8>> = rows.chunks(10).map(|b| enc_batch("/data", b)).collect();
    msgs.remove(3); // rows 30..40 lost
    let r = run(c, &msgs);
    assert_eq!(r.rows, 90);
    assert_eq!(r.lost_rows, 10, "{r:?}");
    assert_eq!(r.torn_rows, 1, "{r:?}");
    assert_eq!(r.clean_rows, 89);
    assert_eq!(r.bad_values + r.discontinuities + r.duplicated_rows, 0);
}

#[test]
fn average_inversion_finds_every_group() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for (max_ch, f, n_random) in [(31u32, 30u32, 300), (31, 2, 100), (1023, 1000, 6)] {
        let wrap = pattern_wrap(max_ch);
        let c = SinkConfig {
            channels: vec![0, max_ch / 2, max_ch],
            wrap,
            factor: f,
            method: Method::Average,
            ..SinkConfig::default()
        };
        let v = Verifier::new(&c);
        let w = i64::from(wrap);
        let fi = i64::from(f);
        let mut starts: Vec<i64> = vec![0, 1, w / 2, w - fi, w - fi + 1, w - 2, w - 1];
        starts.extend((0..n_random).map(|_| rnd() as i64 % w));
        starts.extend((0..n_random / 4).map(|_| w - 1 - rnd() as i64 % fi.max(2)));
        for &ch in &c.channels {
            for &s in &starts {
                let val = v.group_value(ch, s);
                assert_eq!(val, t_row(wrap, &[ch], f, Method::Average, s)[0]);
                // with a hint (the expected row in sequence tracking) the group is always
                // found; for F = 1000 at high channels up to ~18 starts share one value, so
                // the hint must be close.
                let off = if f <= 30 { 3 * fi } else { 0 };
                let hint = Some((s + off).rem_euclid(w) as u32);
                let cs = v.candidates(ch, val, hint);
                assert!(cs.contains(s as u32), "ch {ch} s {s} f {f}");
                if f <= 30 {
                    // moderate F: found even without a hint
                    assert!(
                        v.candidates(ch, val, None).contains(s as u32),
                        "ch {ch} s {s}"
                    );
                }
                // and a value of another channel never decodes for this one
                let other = if ch == 0 { max_ch } else { 0 };
                assert_eq!(v.candidates(other, val, hint).n, 0);
            }
        }
    }
}

// ---- (4) decimate F = 2 ----

#[test]
fn sample_mode_decimate_f2() {
    let c = cfg(vec![0, 1, 2, 3], Layout::Sample, 2, Method::Decimate);
    let starts = (0..500).filter(|&r| r != 250).map(|r| 1 + 2 * r);
    let msgs = sample_msgs(&c, starts);
    // decimate emits sample F-1 of each group
    assert_eq!(
        msgs[0],
        enc_sample(
            "/data",
            &[
                2.0,
                (c.wrap + 2) as f32,
                (2 * c.wrap + 2) as f32,
                (3 * c.wrap + 2) as f32
            ]
        )
    );
    let r = run(c, &msgs);
    assert_eq!(r.rows, 499);
    assert_eq!(r.lost_rows, 1, "{r:?}");
    assert_eq!(r.clean_rows, 499);
    assert_anomalies_zero(&r);
}

// ---- (5) latency via BlockClock ----

#[test]
fn latency_from_block_clock() {
    let clock = Arc::new(BlockClock::new(4096));
    let mut c = cfg((0..8).collect(), Layout::Sample, 1, Method::Average);
    c.block_clock = Some(clock.clone());
    let sink = Sink::start(c.clone()).unwrap();
    let t0 = Instant::now();
    for b in 0..10 {
        clock.record(b * 100, 100, Instant::now());
    }
    // rows 1000..1100 belong to no recorded block: no latency sample for them
    let msgs = sample_msgs(&c, 0..1100);
    send_paced(&sink, &msgs);
    let r = sink.stop();
    let elapsed = t0.elapsed();
    assert_eq!(r.clean_rows, 1100, "{r:?}");
    let h = r.latency.unwrap();
    assert_eq!(h.len(), 1000);
    assert!(h.min() >= 1);
    assert!(
        h.max() <= elapsed.as_nanos() as u64 + 1_000_000,
        "max {} ns",
        h.max()
    );
}

#[test]
fn latency_uses_block_of_last_input_sample() {
    let clock = Arc::new(BlockClock::new(16));
    let c = SinkConfig {
        channels: vec![0, 1],
        wrap: pattern_wrap(1),
        factor: 3,
        method: Method::Decimate,
        block_clock: Some(clock.clone()),
        ..SinkConfig::default()
    };
    let t0 = Instant::now();
    clock.record(0, 4, t0);
    clock.record(4, 4, t0 + Duration::from_secs(1));
    let mut v = Verifier::new(&c);
    // group 3..=5: last input sample 5 is in the second block
    let msg = enc_sample("/data", &t_row(c.wrap, &c.channels, 3, Method::Decimate, 3));
    v.handle_datagram(&msg, false, t0 + Duration::from_millis(1005));
    assert_eq!(v.report.clean_rows, 1);
    let h = v.report.latency.as_ref().unwrap();
    assert_eq!(h.len(), 1);
    let ms = h.max() as f64 / 1e6;
    assert!((ms - 5.0).abs() < 0.01, "{ms}");
}

#[test]
fn block_clock_lookup_and_ring() {
    let clock = BlockClock::new(4);
    assert_eq!(clock.lookup(0), None);
    assert_eq!(clock.latest_sample(), None);
    let t0 = Instant::now();
    for b in 0..10i64 {
        clock.record(b * 100, 100, t0 + Duration::from_millis(b as u64));
    }
    assert_eq!(clock.latest_sample(), Some(999));
    assert_eq!(clock.lookup(950), Some(t0 + Duration::from_millis(9)));
    assert_eq!(clock.lookup(600), Some(t0 + Duration::from_millis(6)));
    assert_eq!(clock.lookup(599), None); // overwritten
    assert_eq!(clock.lookup(1000), None);
    assert_eq!(clock.lookup(-1), None);
    assert!(format!("{clock:?}").contains("capacity: 4"));
}

#[test]
fn block_clock_concurrent_reads_are_consistent() {
    let clock = Arc::new(BlockClock::new(64));
    let t0 = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let hits = Arc::new(AtomicU64::new(0));
    let reader = {
        let (clock, done, hits) = (clock.clone(), done.clone(), hits.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                if let Some(latest) = clock.latest_sample() {
                    let j = latest - 5;
                    if let Some(t) = clock.lookup(j) {
                        // block b covers samples 10b..10b+9 and was sent at t0 + b µs
                        assert_eq!(t, t0 + Duration::from_micros(j as u64 / 10));
                        hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    // keep writing until the reader has checked enough lookups (bounded)
    let mut b = 0u64;
    while b < 50_000_000 && (b < 100_000 || hits.load(Ordering::Relaxed) < 10_000) {
        clock.record(b as i64 * 10, 10, t0 + Duration::from_micros(b));
        b += 1;
    }
    done.store(true, Ordering::Release);
    reader.join().unwrap();
    assert!(hits.load(Ordering::Relaxed) >= 10_000);
}

// ---- (6) malformed datagrams ----

#[test]
fn malformed_datagrams_are_counted() {
    let c = cfg(vec![0, 1, 2, 3], Layout::Sample, 1, Method::Average);
    let valid = enc_sample("/data", &t_row(c.wrap, &c.channels, 1, Method::Average, 0));
    let mut wrong_tags = Vec::new();
    put_str(&mut wrong_tags, b"/data/sample");
    put_str(&mut wrong_tags, b",fi");
    wrong_tags.extend_from_slice(&[0; 8]);
    let mut unknown_tag = Vec::new();
    put_str(&mut unknown_tag, b"/data/sample");
    put_str(&mut unknown_tag, b",fx");
    unknown_tag.extend_from_slice(&[0; 8]);
    let mut bundle = b"#bundle\0".to_vec();
    bundle.extend_from_slice(&1u64.to_be_bytes());
    bundle.extend_from_slice(&(valid.len() as i32).to_be_bytes());
    bundle.extend_from_slice(&valid);
    let mut no_args = Vec::new();
    put_str(&mut no_args, b"/data/sample");
    put_str(&mut no_args, b",");
    let mut other = Vec::new();
    put_str(&mut other, b"/other");
    put_str(&mut other, b",f");
    other.extend_from_slice(&1f32.to_be_bytes());
    let mut with_extra = valid.clone();
    with_extra.push(0);
    let malformed: Vec<Vec<u8>> = vec![
        valid[..valid.len() - 4].to_vec(), // truncated
        wrong_tags,
        unknown_tag,
        with_extra, // not a multiple of 4
        Vec::new(), // empty datagram
        b"hello world!".to_vec(),
        bundle,
        b"/data/sample".to_vec(), // no terminating NUL
        no_args,
    ];
    let wrong: Vec<Vec<u8>> = vec![enc_batch("/data", &[vec![0.0; 4]]), other];
    let mut msgs = malformed.clone();
    msgs.extend(wrong);
    msgs.push(valid);
    let r = run(c, &msgs);
    assert_eq!(r.datagrams, 12);
    assert_eq!(r.malformed, malformed.len() as u64, "{r:?}");
    assert_eq!(r.wrong_address, 2);
    assert_eq!(r.rows, 1);
    assert_eq!(r.clean_rows, 1);
}

#[test]
fn malformed_batches_and_odd_values() {
    let c = cfg(vec![0, 1], Layout::Batch, 1, Method::Average);
    let mut v = Verifier::new(&c);
    let now = Instant::now();
    let good = enc_batch(
        "/data",
        &[vec![0.0, c.wrap as f32], vec![1.0, (c.wrap + 1) as f32]],
    );
    // N says 3 but only 4 floats for k = 2
    let mut bad_n = good.clone();
    let off = bad_n.len() - 4 * 4 - 4;
    bad_n[off..off + 4].copy_from_slice(&3i32.to_be_bytes());
    let mut neg_n = good.clone();
    neg_n[off..off + 4].copy_from_slice(&(-2i32).to_be_bytes());
    let mut k0 = Vec::new();
    put_str(&mut k0, b"/data/batch/0");
    put_str(&mut k0, b",i");
    k0.extend_from_slice(&2i32.to_be_bytes());
    let mut kx = good.clone();
    kx[12] = b'x'; // "/data/batch/x"
    for m in [&bad_n, &neg_n, &k0, &kx] {
        v.handle_datagram(m, false, now);
    }
    v.handle_datagram(&good, true, now); // truncated by the kernel
    assert_eq!(v.report.malformed, 5);
    v.handle_datagram(&good, false, now);
    assert_eq!(v.report.rows, 2);
    assert_eq!(v.report.clean_rows, 2);
    // NaN / inf / negative / too many values: bad values, no panic
    let odd = enc_batch("/data", &[vec![f32::NAN, f32::INFINITY, -1.0]]);
    v.handle_datagram(&odd, false, now);
    assert_eq!(v.report.rows, 3);
    assert_eq!(v.report.bad_values, 3);
    assert_eq!(v.report.clean_rows, 2);
}

#[test]
fn fuzzed_datagrams_never_panic() {
    let mut seed = 42u64;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let now = Instant::now();
    let cases = [
        cfg(vec![0, 1, 2, 3, 7, 31], Layout::Batch, 30, Method::Average),
        cfg((0..16).collect(), Layout::Sample, 1, Method::Average),
        cfg(vec![0, 5], Layout::Sample, 4, Method::Decimate),
    ];
    for c in cases {
        let rows: Vec<Vec<f32>> = (0..4)
            .map(|r| {
                t_row(
                    c.wrap,
                    &c.channels,
                    c.factor,
                    c.method,
                    90 + r * i64::from(c.factor),
                )
            })
            .collect();
        let valid = match c.layout {
            Layout::Batch => enc_batch("/data", &rows),
            Layout::Sample | Layout::Any => enc_sample("/data", &rows[0]),
        };
        let mut v = Verifier::new(&c);
        for len in 0..=valid.len() {
            v.handle_datagram(&valid[..len], false, now);
        }
        for _ in 0..300 {
            let mut m = valid.clone();
            for _ in 0..1 + rnd() % 4 {
                let i = rnd() % m.len();
                m[i] = rnd() as u8;
            }
            v.handle_datagram(&m, false, now);
            let g: Vec<u8> = (0..rnd() % 64).map(|_| rnd() as u8).collect();
            v.handle_datagram(&g, false, now);
        }
        assert!(v.report.datagrams > 600);
    }
}

// ---- misc ----

#[test]
fn config_validation_and_timeouts() {
    let bad = [
        cfg(vec![], Layout::Sample, 1, Method::Average),
        cfg(vec![2, 1], Layout::Sample, 1, Method::Average),
        cfg(vec![0], Layout::Sample, 0, Method::Average),
        SinkConfig {
            channels: vec![0, 16],
            wrap: pattern_wrap(15),
            ..SinkConfig::default()
        },
    ];
    for c in bad {
        assert_eq!(
            Sink::start(c).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
    let sink = Sink::start(cfg(vec![0], Layout::Sample, 1, Method::Average)).unwrap();
    let t = Instant::now();
    assert!(!sink.wait_for_rows(1, Duration::from_millis(60)));
    assert!(t.elapsed() >= Duration::from_millis(60));
    let t = Instant::now();
    let r = sink.stop();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(r.datagrams, 0);
    // Drop without stop() also shuts the thread down
    drop(Sink::start(cfg(vec![0], Layout::Sample, 1, Method::Average)).unwrap());
}

/// Floods a tiny receive buffer, then sends single marker rows until one gets through:
/// every row is either received or reported as a kernel drop, and the gaps match.
#[cfg(target_os = "linux")]
#[test]
fn kernel_drops_account_for_every_missing_row() {
    let mut c = cfg((0..256).collect(), Layout::Sample, 1, Method::Average);
    c.recv_buffer_bytes = 1; // kernel minimum
    let sink = Sink::start(c.clone()).unwrap();
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let flood = 20_000i64;
    for m in sample_msgs(&c, 0..flood) {
        tx.send_to(&m, sink.local_addr()).unwrap();
    }
    let mut next = flood;
    let mut through = false;
    for _ in 0..100 {
        tx.send_to(&sample_msgs(&c, [next])[0], sink.local_addr())
            .unwrap();
        next += 1;
        let target = next as u64;
        if sink.wait_until(
            |r| r.rows + r.lost_rows >= target,
            Duration::from_millis(200),
        ) {
            through = true;
            break;
        }
    }
    assert!(through);
    let r = sink.stop();
    assert!(r.kernel_drops > 0, "{r:?}");
    assert_eq!(r.rows + r.kernel_drops, next as u64, "{r:?}");
    assert_eq!(r.lost_rows, r.kernel_drops);
    assert_eq!(r.clean_rows, r.rows);
}

#[cfg(target_os = "linux")]
#[test]
fn proc_udp_drops_for_own_socket() {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let ino = linux::socket_inode(&s).unwrap();
    assert_eq!(linux::proc_udp_drops(ino), Some(0));
}

#[test]
fn any_layout_counts_rows_gaps_reorders_and_arrivals() {
    fn msg(addr: &str, floats: usize, sample: Option<i64>) -> Vec<u8> {
        // Like the bridge: the sample number (hi, lo) before the floats.
        let mut args = Vec::new();
        let mut tags = String::from(",");
        if let Some(s) = sample {
            args.push(((s >> 32) as i32).to_be_bytes().to_vec());
            args.push((s as i32).to_be_bytes().to_vec());
            tags.push_str("ii");
        }
        args.push(rosc_free_f(floats));
        tags.push_str(&"f".repeat(floats));
        let mut out = Vec::new();
        for t in [addr, tags.as_str()] {
            out.extend_from_slice(t.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        for a in args {
            out.extend_from_slice(&a);
        }
        out
    }
    fn rosc_free_f(n: usize) -> Vec<u8> {
        (0..n).flat_map(|k| (k as f32).to_be_bytes()).collect()
    }
    let mut v = Verifier::new(&SinkConfig {
        layout: Layout::Any,
        ..SinkConfig::default()
    });
    let t0 = Instant::now();
    let mut t = t0;
    // Samples 10, 11, 12, (13, 14 lost), 15, 14 (late), 16; then a batch and a TTL.
    for s in [10, 11, 12, 15, 14, 16] {
        t += Duration::from_micros(50);
        v.handle_datagram(&msg("/data/sample", 4, Some(s)), false, t);
    }
    t += Duration::from_millis(20);
    v.handle_datagram(&msg("/data/batch/8", 9, None), false, t);
    v.handle_datagram(&msg("/data/ttl", 0, Some(3000)), false, t);
    let a = &v.report.any;
    assert_eq!(a.messages, 8);
    assert_eq!(a.rows, 6 + 8);
    assert_eq!(v.report.rows, 14);
    assert_eq!((a.gaps, a.gap_samples, a.reorders), (2, 3, 1));
    assert_eq!(a.numbered, 6);
    assert_eq!(a.arrival_hist[1], 5, "five 50 µs gaps");
    assert_eq!(a.arrival_hist[4], 1, "one 20 ms gap");
    assert!(a.max_gap_us >= 20_000);
    assert!(a.addresses.iter().any(|(k, n)| k == "/data/ttl" && *n == 1));
    assert!(a.min_bytes < a.max_bytes);
    assert!(a.histogram_text().contains("<100µs"));
}

/// F = 1 fast path (the modulo once per row) on sparse channel numbers across the wrap: every
/// row clean, and one wrong value still found (torn). The receiver's own statistics are set.
#[test]
fn sample_mode_f1_sparse_channels_across_the_wrap() {
    let c = cfg(vec![3, 7, 100, 1000], Layout::Sample, 1, Method::Average);
    let w = i64::from(c.wrap);
    let mut msgs = sample_msgs(&c, w - 300..w + 300);
    let mut row = t_row(c.wrap, &c.channels, 1, Method::Average, w + 10);
    row[3] = tv(c.wrap, 1000, w + 11);
    msgs[310] = enc_sample("/data", &row);
    let r = run(c, &msgs);
    assert_eq!(r.rows, 600);
    assert_eq!(r.clean_rows, 599, "{r:?}");
    assert_eq!(r.torn_rows, 1, "{r:?}");
    assert_eq!(r.lost_rows + r.bad_values + r.discontinuities, 0, "{r:?}");
    #[cfg(target_os = "linux")]
    {
        assert!(r.recv_calls > 0 && r.recv_calls <= 600, "{r:?}");
        assert!(r.full_batches <= r.recv_calls);
        assert!(r.thread_cpu_ns > 0, "{r:?}");
    }
}

/// A request above `net.core.rmem_max`: granted in full with `SO_RCVBUFFORCE` (root /
/// CAP_NET_ADMIN; Linux reports twice the request), else capped by the `SO_RCVBUF` fallback.
#[cfg(target_os = "linux")]
#[test]
fn recv_buffer_force_or_capped_fallback() {
    let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(212_992);
    let mut c = cfg(vec![0], Layout::Sample, 1, Method::Average);
    c.recv_buffer_bytes = max + (1 << 20);
    let sink = Sink::start(c.clone()).unwrap();
    let eff = sink.effective_recv_buffer();
    if sink.recv_buffer_forced() {
        assert_eq!(eff, 2 * c.recv_buffer_bytes, "{sink:?}");
    } else {
        assert!(eff <= 2 * max, "{sink:?}");
    }
    // Both paths still deliver.
    let msgs = sample_msgs(&c, 0..10);
    send_paced(&sink, &msgs);
    assert_eq!(sink.stop().clean_rows, 10);
}
