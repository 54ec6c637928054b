//! Every real-GUI capture in `shared/fixtures` (Open Ephys GUI 1.0.1, ZMQ Interface) replayed
//! through the bridge: a real XPUB socket sends the recorded frames (gated, lossless), the
//! engine runs in sample mode with F = 1, a UDP socket receives. Every row is checked with the
//! fixture's `row_check` formula, in order, with its sample number; counts, TTL events and the
//! receiver's counters are compared with the fixture's JSON.

mod capkit;

use capkit::*;
use oe_testkit::zmqcap::Record;
use rosc::OscType;
use zmq2osc::ingest::protocol::{parse_header_mut, Header};

/// The value the recording holds for channel `c` at file index `i` (fixtures README).
fn formula(c: usize, i: i64, off: i64) -> f32 {
    match c {
        0 => (i % 32768) as f32,
        1 => (i / 32768) as f32,
        _ => (((i + 7 * c as i64 + off) % 32768) - 16384) as f32,
    }
}

/// `row_check` of the fixtures: the file index is recovered from channels 0 and 1 and every
/// channel must match the formula at that index.
fn row_check(r: &[f32], n: usize, off: i64) -> Option<i64> {
    if r.len() != n || !r.iter().all(|v| v.is_finite()) {
        return None;
    }
    let i = r[1] as i64 * 32768 + r[0] as i64;
    (0..n).all(|c| r[c] == formula(c, i, off)).then_some(i)
}

fn replay_fixture(name: &str) {
    let j = fixture_json(name);
    let n = j["channels"].as_u64().unwrap() as usize;
    let off = j["value_formula"]["offset"].as_i64().unwrap();
    let file_len = j["value_formula"]["recording_samples"].as_i64().unwrap();
    let segments = j["segments"].as_array().unwrap();
    // The bridge must output every complete block, even those whose headers were cut by the
    // non-ASCII bug: all rows the payloads hold, not just the fixture's `expected_rows`.
    let blocks = j["blocks"].as_u64().unwrap();
    let rows_in_payloads: u64 = segments
        .iter()
        .map(|s| {
            assert_eq!(
                s["block_sizes"],
                serde_json::json!([696]),
                "{name}: GUI blocks"
            );
            s["blocks"].as_u64().unwrap() * 696
        })
        .sum();
    let expected_rows = j["expected_rows"].as_u64().unwrap();
    let invalid = j["invalid_json_data_headers"].as_u64().unwrap();
    if invalid == 0 {
        assert_eq!(rows_in_payloads, expected_rows);
    }
    let events: Vec<&serde_json::Value> = j["events"].as_array().unwrap().iter().collect();
    let records: Vec<Record> = fixture_records(name);
    assert_eq!(records.len() as u64, j["total_messages"].as_u64().unwrap());

    // The parser on the real bytes: every header parses, the cut ones repaired.
    let mut repaired = 0u64;
    for r in &records {
        let mut h = r.frames[1].clone();
        let len = h.len();
        h.push(0);
        let (hdr, rep) = parse_header_mut(&mut h, len).unwrap_or_else(|e| {
            panic!(
                "{name}: header not accepted ({e:?}): {:?}",
                String::from_utf8_lossy(&r.frames[1])
            )
        });
        repaired += u64::from(rep);
        if let Header::Data(d) = hdr {
            assert_eq!(d.num_samples * 4, r.frames[2].len() as i64);
            if rep {
                let want = j["channel_names"][d.channel_num as usize].as_str().unwrap();
                assert_eq!(
                    d.channel_name.as_deref(),
                    Some(want),
                    "names survive the cut"
                );
            }
        }
    }
    assert_eq!(
        repaired, invalid,
        "{name}: every cut header repaired, no other"
    );

    let ctx = zmq::Context::new();
    let col = Collector::start();
    let mut publ = publisher(&ctx);
    let eng = bridge(publ.port(), col.port);
    publ.wait_for_subscriber(WAIT).unwrap();
    let messages: Vec<Vec<Vec<u8>>> = records.into_iter().map(|r| r.frames).collect();
    let sent = publish_gated(&mut publ, &messages, n as i64 - 1, 3 * 696, &col);
    assert_eq!(sent, rows_in_payloads);
    assert!(
        col.wait_rows(|r| r >= rows_in_payloads),
        "{name}: {} of {rows_in_payloads} rows",
        col.rows()
    );
    // The events of the last block ride on it; let the bridge finish before reading counters.
    let report = eng.shutdown();
    let msgs = decode(&col.finish());

    // Rows: every one passes row_check, in order, with its sample number.
    let rows: Vec<(Vec<f32>, i64)> = msgs
        .iter()
        .filter(|(a, _)| a == "/data/sample")
        .map(|(_, args)| row(args))
        .collect();
    assert_eq!(rows.len() as u64, rows_in_payloads, "{name}: rows");
    let mut backward = 0;
    let mut prev: Option<(i64, i64)> = None;
    for (k, (r, s)) in rows.iter().enumerate() {
        let i = row_check(r, n, off)
            .unwrap_or_else(|| panic!("{name}: row {k} fails row_check: {r:?}"));
        assert_eq!(
            s.rem_euclid(file_len),
            i,
            "{name}: row {k}: sample number {s} vs file index {i}"
        );
        if let Some((pi, ps)) = prev {
            if i == (pi + 1) % file_len {
                // in order (the File Reader's loop wraps the file index)
            } else {
                panic!("{name}: row {k}: file index {i} after {pi}");
            }
            if *s < ps {
                backward += 1;
            }
        }
        prev = Some((i, *s));
    }
    let want_backward: u64 = segments
        .iter()
        .map(|s| s["sample_num_backward_steps"].as_u64().unwrap())
        .sum();
    assert_eq!(
        backward, want_backward,
        "{name}: sample numbers going back at a loop"
    );

    // TTL events: all of them, in order, on their samples.
    let ttl: Vec<(i32, i32, i64)> = msgs
        .iter()
        .filter(|(a, _)| a == "/data/ttl")
        .map(|(_, a)| match a.as_slice() {
            [OscType::Int(line), OscType::Int(state), OscType::Int(hi), OscType::Int(lo), ..] => (
                *line,
                *state,
                (i64::from(*hi) << 32) | i64::from(*lo as u32),
            ),
            other => panic!("bad /data/ttl {other:?}"),
        })
        .collect();
    let want_ttl: Vec<(i32, i32, i64)> = events
        .iter()
        .map(|e| {
            let p = e["payload_hex"].as_str().unwrap();
            let b = |k: usize| i32::from_str_radix(&p[2 * k..2 * k + 2], 16).unwrap();
            (b(0), b(1), e["sample_num"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(ttl, want_ttl, "{name}: TTL events");

    // The receiver's books.
    let rx = &report.rx;
    assert_eq!(counter(rx, "malformed"), 0, "{name}: {rx:?}");
    assert_eq!(
        counter(rx, "blocks_learning"),
        0,
        "{name}: nothing lost while learning"
    );
    assert_eq!(counter(rx, "blocks_incomplete"), 0);
    assert_eq!(counter(rx, "blocks_incomplete_upstream"), 0);
    assert_eq!(counter(rx, "blocks_emitted"), blocks);
    assert_eq!(
        counter(rx, "upstream_missing_msgs"),
        0,
        "{name}: upstream loss"
    );
    assert_eq!(
        counter(rx, "restarts"),
        segments.len() as u64 - 1,
        "{name}: message_num restarts"
    );
    assert_eq!(counter(rx, "backward_jumps"), want_backward);
    assert_eq!(counter(rx, "ttl_events"), events.len() as u64);
    assert_eq!(
        counter(rx, "data_msgs"),
        j["data_messages"].as_u64().unwrap()
    );
    for t in &report.tx {
        assert_eq!(counter(t, "rows"), rows_in_payloads);
    }
    assert!(!report.failed);
}

#[test]
fn gui_32ch_start_stop() {
    replay_fixture("gui-32ch-start-stop");
}

#[test]
fn gui_16ch_loop_restart() {
    replay_fixture("gui-16ch-loop-restart");
}

#[test]
fn gui_8ch_nonascii_every_cut_header_repaired() {
    replay_fixture("gui-8ch-nonascii");
}

#[test]
fn gui_128ch() {
    replay_fixture("gui-128ch");
}

#[test]
fn fixture_counts_match_their_readme() {
    // The README's table: events 51 / 47 / 21 / 21, rows 151032 / 141288 / 0 (60552
    // recoverable) / 60552.
    for (name, ev, rows) in [
        ("gui-32ch-start-stop", 51, 151032),
        ("gui-16ch-loop-restart", 47, 141288),
        ("gui-8ch-nonascii", 21, 0),
        ("gui-128ch", 21, 60552),
    ] {
        let j = fixture_json(name);
        assert_eq!(j["event_messages"].as_u64(), Some(ev), "{name}");
        assert_eq!(j["expected_rows"].as_u64(), Some(rows), "{name}");
    }
}
