//! Every kind of bad input from the ZMQ side, through a real socket into the real engine:
//! each is counted by kind and skipped, and valid data around it is forwarded bit-exact.

mod common;

use common::*;
use oe_testkit::sim::{juce_data_header, now_ms, Publisher};

fn hdr(mn: i64, ch: u32, ns: usize, sample_num: i64, rate: f64) -> String {
    juce_data_header(
        mn,
        "example_data",
        ch,
        Some("CH1"),
        ns,
        sample_num,
        rate,
        Some(now_ms()),
    )
}

fn le(vals: &[f32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Sends a raw data message with an explicit header text and payload (message_num taken from
/// the publisher so the stream has no gaps).
fn raw(p: &mut Publisher, header: impl Fn(i64) -> String, frames_after: &[&[u8]]) {
    let mn = p.next_message_num();
    let h = header(mn);
    let mut frames: Vec<&[u8]> = vec![b"DATA\0", h.as_bytes()];
    frames.extend_from_slice(frames_after);
    p.send_raw(&frames).unwrap();
}

#[test]
fn every_bad_input_kind_is_counted_and_valid_data_survives_bit_exact() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let ch = [0u32, 1];
    send_block(&mut publ, &ch, 0, 2);
    send_block(&mut publ, &ch, 2, 2);

    let payload = le(&[1.0, 2.0]);
    // Frames: 1 frame, 2 frames (data without payload), 4 frames, empty frames.
    publ.send_raw(&[b"DATA\0"]).unwrap();
    raw(&mut publ, |mn| hdr(mn, 0, 2, 4, 30000.0), &[]);
    raw(
        &mut publ,
        |mn| hdr(mn, 0, 2, 4, 30000.0),
        &[&payload, b"extra"],
    );
    publ.send_raw(&[b"", b"", b""]).unwrap();
    publ.send_raw(&[b"DATA\0", b"", b""]).unwrap();
    // Missing and mistyped keys; unknown type; event with a bad TTL payload.
    raw(
        &mut publ,
        |mn| {
            format!(
                r#"{{"message_num": {mn}, "type": "data", "content": {{"stream": "example_data", "channel_num": 0}}}}"#
            )
        },
        &[&payload],
    );
    raw(
        &mut publ,
        |mn| hdr(mn, 0, 2, 4, 30000.0).replace("\"channel_num\": 0", "\"channel_num\": \"zero\""),
        &[&payload],
    );
    raw(
        &mut publ,
        |mn| hdr(mn, 0, 2, 4, 30000.0).replace("\"type\": \"data\"", "\"type\": \"param\""),
        &[&payload],
    );
    // num_samples 0, negative, 2^31; payload length wrong; huge channel; absurd rates.
    raw(&mut publ, |mn| hdr(mn, 0, 0, 4, 30000.0), &[b""]);
    raw(
        &mut publ,
        |mn| hdr(mn, 0, 2, 4, 30000.0).replace("\"num_samples\": 2", "\"num_samples\": -2"),
        &[&payload],
    );
    raw(
        &mut publ,
        |mn| hdr(mn, 0, 2, 4, 30000.0).replace("\"num_samples\": 2", "\"num_samples\": 2147483648"),
        &[&payload],
    );
    raw(&mut publ, |mn| hdr(mn, 0, 2, 4, 30000.0), &[&payload[..7]]);
    raw(
        &mut publ,
        |mn| hdr(mn, 4_000_000, 2, 4, 30000.0),
        &[&payload],
    );
    raw(&mut publ, |mn| hdr(mn, 0, 2, 4, 1e12), &[&payload]);
    raw(
        &mut publ,
        |mn| hdr(mn, 0, 2, 4, 30000.0).replace("30000.0", "null"),
        &[&payload],
    );
    {
        let mn = publ.next_message_num();
        let h = format!(
            r#"{{"message_num": {mn}, "type": "event", "content": {{"stream": "example_data", "source_node": 100, "type": 3, "sample_num": 4}}, "data_size": 10}}"#
        );
        publ.send_raw(&[b"EVENT\0", h.as_bytes(), b"short"])
            .unwrap();
    }
    // Valid blocks after all that, one with data_size lying (the payload is the truth) and
    // NaN / Inf samples (forwarded as values).
    for c in ch {
        let vals = [f32::NAN, f32::INFINITY];
        raw(
            &mut publ,
            |mn| hdr(mn, c, 2, 4, 30000.0).replace("\"data_size\": 8", "\"data_size\": 999"),
            &[&le(&vals)],
        );
    }
    send_block(&mut publ, &ch, 6, 2);

    // Block 0 is held while the channel set is learned, then sent (nothing lost).
    let msgs = recv_until(&rx, |m| m.len() >= 8);
    let rows: Vec<Vec<f32>> = msgs.iter().skip(2).map(|m| floats(&m.1)).collect();
    assert_eq!(floats(&msgs[0].1), vec![0.0, 1000.0]);
    assert_eq!(floats(&msgs[1].1), vec![1.0, 1001.0]);
    assert_eq!(rows[0], vec![2.0, 1002.0]);
    assert_eq!(rows[1], vec![3.0, 1003.0]);
    assert!(rows[2][0].is_nan() && rows[2][1].is_nan());
    assert_eq!((rows[3][0], rows[3][1]), (f32::INFINITY, f32::INFINITY));
    assert_eq!(rows[4], vec![6.0, 1006.0]);
    assert_eq!(rows[5], vec![7.0, 1007.0]);

    let deadline = std::time::Instant::now() + WAIT;
    while eng.shared().rx.by_name("blocks_emitted") < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let r = eng.shutdown();
    let get = |n: &str| r.rx.iter().find(|(k, _)| *k == n).unwrap().1;
    let counted = [
        ("too_few_frames", 2),
        ("too_many_frames", 1),
        ("bad_envelope", 1),
        ("bad_header", 3),
        ("unknown_type", 1),
        ("bad_num_samples", 3),
        ("payload_length", 1),
        ("channel_out_of_range", 1),
        ("bad_sample_rate", 2),
        ("bad_event", 1),
    ];
    for (k, n) in counted {
        assert_eq!(get(k), n, "{k}: {:?}", r.rx);
    }
    assert_eq!(get("malformed"), counted.iter().map(|c| c.1).sum::<u64>());
    assert!(r.ledger().1, "{}", r.ledger().0);
}
