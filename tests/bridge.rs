//! End-to-end: a real ZMQ publisher (byte-faithful Open Ephys framing) → the bridge engine →
//! a real UDP socket, decoded with rosc. Loopback only, free ports, condition waits.

mod common;

use common::*;
use rosc::OscType;
use std::time::Duration;
use zmq2osc::config::DownsamplingMethod;

/// Values for channel c at sample j, as `send_block` makes them.
fn v(c: u32, j: i64) -> f32 {
    (c as i64 * 1000 + j) as f32
}

#[test]
fn sample_mode_full_rate_is_bit_exact_in_order() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let ch = [0, 1, 2, 3];
    for b in 0..10 {
        send_block(&mut publ, &ch, b * 16, 16);
    }
    // Block 0 is held while blocks 0 and 1 teach the channel set, then sent: 160 rows.
    let msgs = recv_until(&rx, |m| m.len() >= 160);
    assert_eq!(msgs.len(), 160);
    for (i, (addr, args)) in msgs.iter().enumerate() {
        let j = i as i64;
        assert_eq!(addr, "/data/sample");
        assert_eq!(args.len(), 4);
        assert_eq!(
            floats(args),
            ch.iter().map(|&c| v(c, j)).collect::<Vec<_>>()
        );
    }
    let r = eng.shutdown();
    let get = |n: &str| r.rx.iter().find(|(k, _)| *k == n).unwrap().1;
    assert_eq!(get("blocks_emitted"), 10);
    assert_eq!(get("blocks_learning"), 0);
    assert_eq!(get("malformed"), 0);
    assert!(!r.failed);
    assert_eq!(r.latencies.get("bridge_added").unwrap().len(), 10);
}

#[test]
fn batch_mode_average_matches_float32_math() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 3;
    cfg.osc.processing.batch_size = 4;
    cfg.performance.enable_batching = true;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let ch = [0, 1];
    // 10-sample blocks: groups of 3 straddle block boundaries.
    for b in 0..8 {
        send_block(&mut publ, &ch, 1000 + b * 10, 10);
    }
    // Output starts at block 0 (j = 1000, held while the set is learned): rows are groups
    // (1000..1002), (1003..1005), …
    let msgs = recv_until(&rx, |m| m.len() >= 5);
    assert_eq!(msgs.len(), 5);
    for (m, (addr, args)) in msgs.iter().enumerate() {
        assert_eq!(addr, "/data/batch/4");
        assert_eq!(args[0], OscType::Int(2));
        let got = floats(args);
        let mut want = Vec::new();
        for &c in &ch {
            for r in 0..4 {
                let j0 = 1000 + (m as i64 * 4 + r) * 3;
                let sum = v(c, j0) + v(c, j0 + 1) + v(c, j0 + 2);
                want.push(sum / 3.0f32);
            }
        }
        assert_eq!(got, want, "batch {m} (channel-major)");
    }
    eng.shutdown();
}

#[test]
fn decimate_and_partial_batch_flushed_by_timer_and_at_stop() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 2;
    cfg.osc.processing.downsampling_method = DownsamplingMethod::Decimate;
    cfg.osc.processing.batch_size = 100;
    cfg.osc.processing.batch_timeout_ms = 50.0;
    cfg.performance.enable_batching = true;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    for b in 0..3 {
        send_block(&mut publ, &[0], b * 8, 8);
    }
    // Blocks 0..2 give 12 decimated rows; nothing fills the batch of 100, so the timer
    // flushes a partial batch with its own k.
    let msgs = recv_until(&rx, |m| {
        m.iter().map(|x| floats(&x.1).len()).sum::<usize>() >= 12
    });
    let rows: Vec<f32> = msgs.iter().flat_map(|m| floats(&m.1)).collect();
    assert_eq!(rows, (0..12).map(|r| v(0, 2 * r + 1)).collect::<Vec<_>>());
    assert!(msgs.iter().all(|m| m.0.starts_with("/data/batch/")));
    // One more block; once the bridge has it, stop at once: its partial batch (4 rows)
    // must go out at stop (or by the timer), never be stranded.
    send_block(&mut publ, &[0], 24, 8);
    let deadline = std::time::Instant::now() + WAIT;
    while eng.shared().rx.by_name("blocks_emitted") < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = eng.shutdown();
    let tail = recv_until(&rx, |m| {
        m.iter().map(|x| floats(&x.1).len()).sum::<usize>() >= 4
    });
    let rows: Vec<f32> = tail.iter().flat_map(|m| floats(&m.1)).collect();
    assert_eq!(
        rows,
        (0..4).map(|r| v(0, 24 + 2 * r + 1)).collect::<Vec<_>>()
    );
    let tx = &r.tx[0];
    let get = |n: &str| tx.iter().find(|(k, _)| *k == n).unwrap().1;
    assert!(get("timer_flushes") >= 1);
}

#[test]
fn sparse_channels_in_ascending_order() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let ch = [0, 2, 5];
    for b in 0..4 {
        send_block(&mut publ, &ch, b * 4, 4);
    }
    let msgs = recv_until(&rx, |m| m.len() >= 16);
    assert_eq!(msgs.len(), 16);
    assert_eq!(floats(&msgs[0].1), vec![v(0, 0), v(2, 0), v(5, 0)]);
    assert_eq!(floats(&msgs[4].1), vec![v(0, 4), v(2, 4), v(5, 4)]);
    eng.shutdown();
}

#[test]
fn channel_set_change_and_restart() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 2;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    for b in 0..3 {
        send_block(&mut publ, &[0, 1, 2, 3], b * 4, 4);
    }
    // Live mask edit: channel 1 removed.
    for b in 3..6 {
        send_block(&mut publ, &[0, 2, 3], b * 4, 4);
    }
    let msgs = recv_until(&rx, |m| m.iter().any(|x| x.1.len() == 3) && m.len() >= 6);
    assert!(msgs.iter().any(|m| m.1.len() == 4));
    let three: Vec<_> = msgs.iter().filter(|m| m.1.len() == 3).collect();
    // The first block after the edit is held, then confirmed by the re-learned set.
    assert_eq!(floats(&three[0].1)[1], (v(2, 12) + v(2, 13)) / 2.0);
    // New acquisition: message_num back to 1, sample_num continues (GUI 1.0.1) with an
    // odd offset so a group straddling the restart would be visible.
    publ.set_message_num(1);
    for b in 0..3 {
        send_block(&mut publ, &[0, 2, 3], 25 + b * 4, 4);
    }
    let after = recv_until(&rx, |m| {
        m.iter()
            .any(|x| floats(&x.1)[0] == (v(0, 25) + v(0, 26)) / 2.0)
    });
    assert!(after
        .iter()
        .any(|x| floats(&x.1)[0] == (v(0, 25) + v(0, 26)) / 2.0));
    // Let the bridge take in every message before stopping (else the last block is cut).
    let deadline = std::time::Instant::now() + WAIT;
    while eng.shared().rx.by_name("messages") < 30 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let r = eng.shutdown();
    let get = |n: &str| r.rx.iter().find(|(k, _)| *k == n).unwrap().1;
    assert_eq!(get("restarts"), 1);
    assert!(get("channel_set_changes") >= 2);
    assert_eq!(get("blocks_incomplete"), 0, "{:?}", r.rx);
}

#[test]
fn bad_input_is_counted_and_good_data_keeps_flowing() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    send_block(&mut publ, &[0, 1], 0, 2);
    send_block(&mut publ, &[0, 1], 2, 2);
    publ.send_raw(&[b"DATA"]).unwrap();
    publ.send_raw(&[b"NOPE\0", b"{}", b""]).unwrap();
    publ.send_raw(&[b"DATA\0", b"{\"type\": \"data\", \"content\": {", b"1234"])
        .unwrap();
    publ.send_raw(&[b"DATA\0", b"not json", b"1234"]).unwrap();
    publ.send_raw(&[b"EVENT\0", b"{\"type\": \"param\"}"])
        .unwrap();
    send_block(&mut publ, &[0, 1], 4, 2);
    send_block(&mut publ, &[0, 1], 6, 2);
    let msgs = recv_until(&rx, |m| m.len() >= 8);
    let firsts: Vec<f32> = msgs.iter().map(|m| floats(&m.1)[0]).collect();
    assert_eq!(firsts, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let r = eng.shutdown();
    let get = |n: &str| r.rx.iter().find(|(k, _)| *k == n).unwrap().1;
    assert_eq!(get("too_few_frames"), 1);
    assert_eq!(get("bad_envelope"), 1);
    assert_eq!(get("bad_header"), 2);
    assert_eq!(get("unknown_type"), 1);
    assert_eq!(get("malformed"), 5);
}

#[test]
fn receiver_absent_then_present_output_resumes() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    // Reserve a port, then close it: nobody listens there at first.
    let (tmp, oport) = receiver();
    drop(tmp);
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let mut j = 0;
    // Send until the bridge reports refusals (the ICMP error arrives asynchronously).
    let deadline = std::time::Instant::now() + WAIT;
    while eng.shared().tx[0].by_name("refused") == 0 && std::time::Instant::now() < deadline {
        send_block(&mut publ, &[0], j, 8);
        j += 8;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(eng.shared().tx[0].by_name("refused") > 0);
    let rx = std::net::UdpSocket::bind(("127.0.0.1", oport)).unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut got = None;
    let mut buf = vec![0u8; 65536];
    rx.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    // The first datagrams after the receiver appears may still meet the pending refusal.
    while got.is_none() && std::time::Instant::now() < deadline {
        send_block(&mut publ, &[0], j, 8);
        j += 8;
        if let Ok(n) = rx.recv(&mut buf) {
            got = Some(rosc::decoder::decode_udp(&buf[..n]).unwrap().1);
        }
    }
    let Some(rosc::OscPacket::Message(m)) = got else {
        panic!("output did not resume")
    };
    // A block sent before the receiver appeared may still be in the bridge's queue on a
    // loaded machine: any value we published is fine, the point is that output resumed.
    let first = floats(&m.args)[0];
    assert!(first >= 0.0 && first < j as f32 && first.fract() == 0.0);
    assert!(!eng.shutdown().failed);
}

#[test]
fn heartbeat_reaches_data_port_plus_one_with_original_identity() {
    let ctx = zmq::Context::new();
    let (publ, zport) = publisher(&ctx);
    let rep = ctx.socket(zmq::REP).unwrap();
    rep.bind(&format!("tcp://127.0.0.1:{}", zport + 1)).unwrap();
    rep.set_rcvtimeo(20_000).unwrap();
    let (_rx, oport) = receiver();
    let cfg = config(zport, oport);
    let eng = start(&cfg);
    let msg = rep.recv_bytes(0).unwrap();
    assert_eq!(
        std::str::from_utf8(&msg).unwrap(),
        r#"{"application": "ZMQ2OSC-1618", "uuid": "1618", "type": "heartbeat"}"#
    );
    rep.send("heartbeat received", 0).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while eng.shared().hb.by_name("replies") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(eng.shared().hb.by_name("replies"), 1);
    assert_eq!(eng.shared().hb.by_name("state"), 1, "online");
    drop(publ);
    eng.shutdown();
}

#[test]
fn a_dead_thread_stops_the_bridge_as_a_failure() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (_rx, oport) = receiver();
    let cfg = config(zport, oport);
    let opts = zmq2osc::engine::EngineOptions {
        verbose: false,
        panic_after_frames: Some(2),
        ..Default::default()
    };
    let eng = zmq2osc::engine::Engine::start(&cfg, &opts).unwrap();
    publ.wait_for_subscriber(WAIT).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut j = 0;
    while !eng.has_failed() && std::time::Instant::now() < deadline {
        send_block(&mut publ, &[0, 1], j, 32);
        j += 32;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(eng.has_failed());
    let r = eng.shutdown();
    assert!(r.failed);
}

#[test]
fn portable_udp_path_carries_the_same_bytes() {
    // The plain send() loop macOS and Windows use, forced on Linux.
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    let opts = zmq2osc::engine::EngineOptions {
        verbose: false,
        sender: zmq2osc::net::SenderOptions {
            force_portable: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let eng = zmq2osc::engine::Engine::start(&cfg, &opts).unwrap();
    assert_eq!(eng.layout().outputs[0].udp_backend, "portable");
    publ.wait_for_subscriber(WAIT).unwrap();
    for b in 0..3 {
        send_block(&mut publ, &[0, 3], b * 8, 8);
    }
    let msgs = recv_until(&rx, |m| m.len() >= 24);
    assert_eq!(msgs.len(), 24);
    for (i, (addr, args)) in msgs.iter().enumerate() {
        let j = i as i64;
        assert_eq!(addr, "/data/sample");
        assert_eq!(floats(args), vec![v(0, j), v(3, j)]);
    }
    let r = eng.shutdown();
    assert!(r.ledger().1, "{}", r.ledger().0);
}
