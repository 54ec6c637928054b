//! The `outputs` list: several destinations, channel maps, size profiles with splitting,
//! sample numbers, bundles, blobs, events and spikes, status, notices and pacing — each
//! decoded from what really arrives on a UDP socket.

mod common;

use common::*;
use rosc::{OscBundle, OscPacket, OscType};
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use zmq2osc::config::Config;

/// Config from JSON with the test's ports filled in.
fn config_json(zport: u16, outputs: &str) -> Config {
    let text = format!(
        r#"{{"zmq": {{"host": "127.0.0.1", "data_port": {zport}}},
            "osc": {{"processing": {{"downsampling_factor": 1}}}},
            "performance": {{"pin_threads": false, "max_channels": 600, "max_block_samples": 4096,
                             "osc_queue_max_size": 16}},
            "outputs": {outputs}}}"#
    );
    let (cfg, warnings) = Config::from_json_str(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    cfg
}

/// Every packet (messages and bundles) until `pred` holds or the bound passes.
fn packets_until(s: &UdpSocket, pred: impl Fn(&[OscPacket]) -> bool) -> Vec<OscPacket> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !pred(&out) && Instant::now() < deadline {
        if let Ok(n) = s.recv(&mut buf) {
            out.push(rosc::decoder::decode_udp(&buf[..n]).expect("valid OSC").1);
        }
    }
    out
}

fn msg(p: &OscPacket) -> &rosc::OscMessage {
    match p {
        OscPacket::Message(m) => m,
        OscPacket::Bundle(_) => panic!("bundle where a message was expected"),
    }
}

fn v(c: u32, j: i64) -> f32 {
    (c as i64 * 1000 + j) as f32
}

#[test]
fn two_outputs_each_with_its_own_format_and_channel_map() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx_a, pa) = receiver();
    let (rx_b, pb) = receiver();
    let cfg = config_json(
        zport,
        &format!(
            r#"[{{"name": "all", "host": "127.0.0.1", "port": {pa}, "format": "sample"}},
                {{"name": "pick", "host": "127.0.0.1", "port": {pb}, "format": "batch", "batch_size": 2,
                  "downsampling_factor": 2, "channels": "3,1"}}]"#
        ),
    );
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    for b in 0..4 {
        send_block(&mut publ, &[0, 1, 2, 3], b * 4, 4);
    }
    // Blocks 0..3 (16 samples; block 0 held while the set is learned) reach both outputs.
    let a = packets_until(&rx_a, |p| p.len() >= 16);
    assert_eq!(a.len(), 16);
    assert_eq!(msg(&a[0]).addr, "/data/sample");
    assert_eq!(
        floats(&msg(&a[4]).args),
        vec![v(0, 4), v(1, 4), v(2, 4), v(3, 4)]
    );
    // Output B: channels 3 then 1, F = 2, batches of 2 rows: 16 samples → 8 rows → 4 batches.
    let b = packets_until(&rx_b, |p| p.len() >= 3);
    let m = msg(&b[0]);
    assert_eq!(m.addr, "/data/batch/2");
    assert_eq!(m.args[0], OscType::Int(2));
    let avg = |c: u32, j: i64| (v(c, j) + v(c, j + 1)) / 2.0;
    assert_eq!(
        floats(&m.args),
        vec![avg(3, 0), avg(3, 2), avg(1, 0), avg(1, 2)]
    );
    let r = eng.shutdown();
    assert_eq!(r.tx.len(), 2);
    assert!(r.ledger().1, "{}", r.ledger().0);
}

#[test]
fn per_channel_template_names_and_sparse_layout() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx_a, pa) = receiver();
    let (rx_b, pb) = receiver();
    let cfg = config_json(
        zport,
        &format!(
            r#"[{{"port": {pa}, "host": "127.0.0.1", "format": "per_channel", "base_address": "/oe",
                  "address": "{{base}}/{{stream}}/{{name}}", "names": {{"2": "Fp1"}}}},
                {{"port": {pb}, "host": "127.0.0.1", "layout": "sparse"}}]"#
        ),
    );
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    for b in 0..3 {
        send_block(&mut publ, &[0, 2], b * 2, 2);
    }
    let a = packets_until(&rx_a, |p| p.len() >= 4);
    let addrs: Vec<&str> = a.iter().map(|p| msg(p).addr.as_str()).collect();
    // Channel 0 keeps its OE name (CH1, sent by the publisher); channel 2 is renamed.
    assert_eq!(
        &addrs[..2],
        &["/oe/example_data/CH1", "/oe/example_data/Fp1"]
    );
    let b = packets_until(&rx_b, |p| !p.is_empty());
    let f = floats(&msg(&b[0]).args);
    assert_eq!(f.len(), 3, "sparse: argument index = channel number");
    assert_eq!(f[0], v(0, 0));
    assert!(f[1].is_nan());
    assert_eq!(f[2], v(2, 0));
    // The controller sees the same layout, without any lock on the hot threads.
    let l = eng
        .shared()
        .layout_snapshot()
        .expect("a layout was published");
    assert_eq!(l.stream, "example_data");
    assert_eq!(l.channels, vec![0, 2]);
    assert_eq!(l.rate, 30000.0);
    assert_eq!(
        l.names,
        vec![(0, "CH1".to_string()), (2, "CH3".to_string())],
        "OE names, not the output's renames"
    );
    assert_eq!(
        l.describe(),
        "stream \"example_data\": 2 channels @ 30000 Hz (names: CH1, CH3)"
    );
    eng.shutdown();
}

#[test]
fn oversized_frames_split_into_parts_that_reassemble() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, port) = receiver();
    let cfg = config_json(
        zport,
        &format!(
            r#"[{{"port": {port}, "host": "127.0.0.1", "max_datagram": "lan", "sample_number": true}}]"#
        ),
    );
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let ch: Vec<u32> = (0..512).collect();
    for b in 0..3 {
        send_block(&mut publ, &ch, b * 2, 2);
    }
    // 512 floats do not fit 1472 bytes: each row comes as parts. Read until some row has all
    // of its parts.
    let complete_row = |p: &[OscPacket]| {
        let mut count: std::collections::HashMap<i32, (i32, i32)> = Default::default();
        p.iter().any(|pk| {
            let OscPacket::Message(m) = pk else {
                return false;
            };
            let (OscType::Int(seq), OscType::Int(parts)) = (&m.args[0], &m.args[2]) else {
                return false;
            };
            let e = count.entry(*seq).or_insert((0, *parts));
            e.0 += 1;
            e.0 == e.1
        })
    };
    let p = packets_until(&rx, complete_row);
    let mut rows: std::collections::BTreeMap<i32, Vec<f32>> = Default::default();
    let mut sample: std::collections::BTreeMap<i32, i64> = Default::default();
    for pk in &p {
        let m = msg(pk);
        assert_eq!(m.addr, "/data/sample/part");
        let bytes = rosc::encoder::encode(pk).unwrap();
        assert!(bytes.len() <= 1472, "datagram of {} bytes", bytes.len());
        let ints: Vec<i32> = m
            .args
            .iter()
            .filter_map(|a| {
                if let OscType::Int(i) = a {
                    Some(*i)
                } else {
                    None
                }
            })
            .collect();
        let (seq, part, parts, off) = (ints[0], ints[1], ints[2], ints[3] as usize);
        let (hi, lo) = (ints[4] as i64, ints[5] as u32 as i64);
        sample.insert(seq, (hi << 32) | lo);
        let row = rows.entry(seq).or_insert_with(|| vec![f32::NAN; 512]);
        let vals = floats(&m.args);
        row[off..off + vals.len()].copy_from_slice(&vals);
        assert!(part < parts && parts >= 2);
    }
    // Every complete row holds exactly the values of its sample number.
    let mut complete = 0;
    for (seq, row) in &rows {
        if row.iter().any(|x| x.is_nan()) {
            continue; // a part still in flight when we stopped reading
        }
        let j = sample[seq];
        assert_eq!(
            row,
            &ch.iter().map(|&c| v(c, j)).collect::<Vec<_>>(),
            "row of sample {j}"
        );
        complete += 1;
    }
    assert!(complete >= 1);
    let r = eng.shutdown();
    assert!(r.tx[0]
        .iter()
        .any(|(k, n)| *k == "split_messages" && *n >= 2));
}

#[test]
fn bundles_blobs_events_spikes_and_notices() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx_a, pa) = receiver();
    let (rx_b, pb) = receiver();
    let cfg = config_json(
        zport,
        &format!(
            r#"[{{"port": {pa}, "host": "127.0.0.1", "bundle": "immediate", "events": true,
                  "spikes": true, "spike_waveform": true, "notices": true}},
                {{"port": {pb}, "host": "127.0.0.1", "format": "blob", "batch_size": 2}}]"#
        ),
    );
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    send_block(&mut publ, &[0, 1], 0, 2);
    send_block(&mut publ, &[0, 1], 2, 2);
    publ.send_ttl("example_data", 100, 4, 2, 1, 0b100, None)
        .unwrap();
    publ.send_spike(
        "example_data",
        "Tetrode 1",
        5,
        2,
        3,
        7,
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        None,
    )
    .unwrap();
    send_block(&mut publ, &[0, 1], 4, 2);
    // Block 0 is held while the set is learned, then sent before block 1.
    let a = packets_until(&rx_a, |p| p.len() >= 8);
    let mut seen = Vec::new();
    for pk in &a {
        let OscPacket::Bundle(OscBundle { timetag, content }) = pk else {
            panic!("expected bundles")
        };
        assert_eq!(
            (timetag.seconds, timetag.fractional),
            (0, 1),
            "time tag 1 = immediately"
        );
        let m = msg(&content[0]);
        seen.push((m.addr.clone(), m.args.clone()));
    }
    let order: Vec<&str> = seen.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(
        order,
        [
            "/data/notice",
            "/data/sample",
            "/data/sample",
            "/data/sample",
            "/data/sample",
            "/data/ttl",
            "/data/spike",
            "/data/sample"
        ]
    );
    assert_eq!(
        seen[0].1,
        vec![
            OscType::Int(2),
            OscType::String("example_data".into()),
            OscType::Float(30000.0)
        ]
    );
    assert_eq!(
        seen[5].1,
        vec![
            OscType::Int(2),
            OscType::Int(1),
            OscType::Int(0),
            OscType::Int(4),
            OscType::Int(0),
            OscType::Int(4)
        ]
    );
    assert_eq!(
        &seen[6].1[..4],
        &[
            OscType::Int(7),
            OscType::Int(0),
            OscType::Int(5),
            OscType::String("Tetrode 1".into())
        ]
    );
    assert_eq!(floats(&seen[6].1), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    // Blob output: N, k, then one blob of big-endian floats, channel-major.
    let b = packets_until(&rx_b, |p| !p.is_empty());
    let m = msg(&b[0]);
    assert_eq!(m.addr, "/data/blob");
    assert_eq!(&m.args[..2], &[OscType::Int(2), OscType::Int(2)]);
    let OscType::Blob(bytes) = &m.args[2] else {
        panic!("no blob")
    };
    let vals: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(vals, vec![v(0, 0), v(0, 1), v(1, 0), v(1, 1)]);
    eng.shutdown();
}

#[test]
fn status_message_once_a_second() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, port) = receiver();
    let cfg = config_json(
        zport,
        &format!(r#"[{{"port": {port}, "host": "127.0.0.1", "status": true}}]"#),
    );
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let mut j = 0;
    let deadline = Instant::now() + WAIT;
    let mut status = None;
    let mut buf = vec![0u8; 65536];
    rx.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    while status.is_none() && Instant::now() < deadline {
        send_block(&mut publ, &[0, 1], j, 30);
        j += 30;
        while let Ok(n) = rx.recv(&mut buf) {
            if let Ok((_, OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n]) {
                if m.addr == "/data/status" {
                    status = Some(m);
                }
            }
        }
    }
    let m = status.expect("no status message");
    assert_eq!(m.args.len(), 8);
    let OscType::Int(received) = m.args[0] else {
        panic!()
    };
    assert!(received > 0);
    assert_eq!(m.args[6], OscType::Int(2), "channels");
    assert_eq!(m.args[7], OscType::Float(30000.0));
    eng.shutdown();
}

#[test]
fn pacing_spreads_a_block_over_its_duration() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx_p, pp) = receiver();
    let (rx_u, pu) = receiver();
    let cfg = config_json(
        zport,
        &format!(
            r#"[{{"port": {pp}, "host": "127.0.0.1", "pacing": "smooth"}},
                {{"port": {pu}, "host": "127.0.0.1"}}]"#
        ),
    );
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    // 3000-sample blocks = 100 ms each at 30 kHz; the pacer learns the volume from one block.
    for b in 0..4 {
        send_block(&mut publ, &[0], b * 3000, 3000);
    }
    let spread = |rx: &UdpSocket| {
        let mut buf = [0u8; 256];
        let mut times = Vec::new();
        let deadline = Instant::now() + WAIT;
        while times.len() < 9000 && Instant::now() < deadline {
            if rx.recv(&mut buf).is_ok() {
                times.push(Instant::now());
            }
        }
        // Spread of the last block's 3000 datagrams.
        let last = &times[times.len() - 3000..];
        last[last.len() - 1].duration_since(last[0])
    };
    let paced = spread(&rx_p);
    let burst = spread(&rx_u);
    eprintln!("last block: paced over {paced:?}, unpaced over {burst:?}");
    assert!(
        paced >= Duration::from_millis(45),
        "paced block spread only {paced:?}"
    );
    eng.shutdown();
}
