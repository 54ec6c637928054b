//! Replay through the real bridge: an Open Ephys binary-format recording written by the test
//! plays back bit-exact (values, order, TTL events on their samples), and a real-GUI capture
//! replayed by the replay engine (as `oe-simulator --replay` does) gives the very datagrams the
//! bridge output from the capture's live publication; looped, message_num continues and
//! sample_num goes back like the File Reader's.

mod capkit;

use capkit::*;
use oe_testkit::recording::{self, write_npy, RecordingSource};
use oe_testkit::replay::{MessageSource, ReplayConfig, Replayer, Speed};
use rosc::OscType;
use std::path::Path;
use std::sync::Arc;

const CH: usize = 3;
const SAMPLES: usize = 2000;
const FIRST_SAMPLE_NUMBER: i64 = 5000;

fn raw(c: usize, i: usize) -> i16 {
    (((i as i64 * 37 + c as i64 * 9001) % 65536) - 32768) as i16
}

const BIT_VOLTS: [f64; CH] = [0.195, 1.0, 2.5];

/// A tiny recording: 3 channels (one non-ASCII name), 2000 samples, TTL on lines 2 and 0.
fn write_recording(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let folder = "File_Reader-100.example_data";
    let cdir = dir.join("continuous").join(folder);
    let edir = dir.join("events").join(folder).join("TTL");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::create_dir_all(&edir).unwrap();
    let oebin = serde_json::json!({
        "GUI version": "1.0.1",
        "continuous": [{
            "folder_name": format!("{folder}/"),
            "sample_rate": 30000.0,
            "source_processor_name": "File Reader",
            "source_processor_id": 100,
            "stream_name": "example_data",
            "num_channels": CH,
            "channels": [
                {"channel_name": "CH1", "bit_volts": BIT_VOLTS[0], "units": "uV"},
                {"channel_name": "Fp2-α", "bit_volts": BIT_VOLTS[1], "units": "uV"},
                {"channel_name": "AUX3", "bit_volts": BIT_VOLTS[2], "units": "mV"}
            ]
        }],
        "events": [{"folder_name": format!("{folder}/TTL/"), "stream_name": "example_data", "type": "int16"}],
        "spikes": []
    });
    std::fs::write(
        dir.join("structure.oebin"),
        serde_json::to_string_pretty(&oebin).unwrap(),
    )
    .unwrap();
    let mut dat = Vec::new();
    for i in 0..SAMPLES {
        for c in 0..CH {
            dat.extend_from_slice(&raw(c, i).to_le_bytes());
        }
    }
    std::fs::write(cdir.join("continuous.dat"), dat).unwrap();
    let sn: Vec<u8> = (0..SAMPLES as i64)
        .flat_map(|i| (FIRST_SAMPLE_NUMBER + i).to_le_bytes())
        .collect();
    write_npy(&cdir.join("sample_numbers.npy"), "<i8", SAMPLES, &sn).unwrap();
    let ev_sn: Vec<i64> = vec![100, 900, 1500]
        .into_iter()
        .map(|i| FIRST_SAMPLE_NUMBER + i)
        .collect();
    let ev_state: Vec<i16> = vec![3, -3, 1];
    write_npy(
        &edir.join("sample_numbers.npy"),
        "<i8",
        3,
        &ev_sn
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    write_npy(
        &edir.join("states.npy"),
        "<i2",
        3,
        &ev_state
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<_>>(),
    )
    .unwrap();
}

#[test]
fn recording_plays_back_bit_exact_with_events_on_their_samples() {
    let dir = std::env::temp_dir().join(format!("z2o-rec-{}", std::process::id()));
    write_recording(&dir);
    let rec = Arc::new(recording::load(&dir).unwrap());
    assert_eq!(
        (rec.channels(), rec.samples(), rec.ttl.len()),
        (CH, SAMPLES, 3)
    );
    let mut src = RecordingSource::new(rec.clone(), 1);
    assert_eq!(src.block_size(), 696);
    let mut messages = Vec::new();
    while let Some((_, m)) = src.next_message() {
        messages.push(m);
    }
    // 3 blocks (696, 696, 608) × 3 channels + 3 events.
    assert_eq!(messages.len(), 3 * CH + 3);

    let ctx = zmq::Context::new();
    let col = Collector::start();
    let mut publ = publisher(&ctx);
    let eng = bridge(publ.port(), col.port);
    publ.wait_for_subscriber(WAIT).unwrap();
    let sent = publish_gated(&mut publ, &messages, CH as i64 - 1, 3 * 696, &col);
    assert_eq!(sent, SAMPLES as u64);
    assert!(
        col.wait_rows(|r| r >= SAMPLES as u64),
        "{} rows",
        col.rows()
    );
    let report = eng.shutdown();
    let msgs = decode(&col.finish());
    let rows: Vec<(Vec<f32>, i64)> = msgs
        .iter()
        .filter(|(a, _)| a == "/data/sample")
        .map(|(_, a)| row(a))
        .collect();
    assert_eq!(rows.len(), SAMPLES);
    for (i, (v, s)) in rows.iter().enumerate() {
        assert_eq!(*s, i as i64, "file index as sample_num");
        let want: Vec<u32> = (0..CH)
            .map(|c| (f32::from(raw(c, i)) * BIT_VOLTS[c] as f32).to_bits())
            .collect();
        let got: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, want, "row {i}");
    }
    let ttl: Vec<(i32, i32, i64, i64)> = msgs
        .iter()
        .filter(|(a, _)| a == "/data/ttl")
        .map(|(_, a)| match a.as_slice() {
            [OscType::Int(l), OscType::Int(st), OscType::Int(hi), OscType::Int(lo), OscType::Int(whi), OscType::Int(wlo)] => (
                *l,
                *st,
                (i64::from(*hi) << 32) | i64::from(*lo as u32),
                (i64::from(*whi) << 32) | i64::from(*wlo as u32),
            ),
            other => panic!("bad /data/ttl {other:?}"),
        })
        .collect();
    assert_eq!(
        ttl,
        vec![(2, 1, 100, 0b100), (2, 0, 900, 0), (0, 1, 1500, 0b1)]
    );
    let rx = &report.rx;
    assert_eq!(
        counter(rx, "malformed"),
        0,
        "the non-ASCII name's cut headers are repaired"
    );
    assert_eq!(counter(rx, "blocks_learning"), 0);
    assert_eq!(counter(rx, "blocks_emitted"), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_recordings_name_the_file_and_the_problem() {
    let dir = std::env::temp_dir().join(format!("z2o-badrec-{}", std::process::id()));
    write_recording(&dir);
    let dat = dir.join("continuous/File_Reader-100.example_data/continuous.dat");
    let bytes = std::fs::read(&dat).unwrap();
    std::fs::write(&dat, &bytes[..bytes.len() - 1]).unwrap();
    let e = recording::load(&dir).unwrap_err();
    assert!(
        e.contains("continuous.dat") && e.contains("truncated"),
        "{e}"
    );
    std::fs::write(&dat, &bytes[..bytes.len() - 6]).unwrap();
    let e = recording::load(&dir).unwrap_err();
    assert!(
        e.contains("sample_numbers.npy") && e.contains("2000 sample numbers for 1999 samples"),
        "{e}"
    );
    std::fs::write(dir.join("structure.oebin"), "{\"continuous\": [").unwrap();
    let e = recording::load(&dir).unwrap_err();
    assert!(e.contains("structure.oebin") && e.contains("JSON"), "{e}");
    let e = recording::load(&dir.join("nowhere")).unwrap_err();
    assert!(
        e.contains("structure.oebin") && e.contains("cannot read"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn replayed_capture_gives_the_live_datagrams_and_loops_like_the_file_reader() {
    let name = "gui-8ch-nonascii";
    let records = fixture_records(name);
    let rows = 87 * 696u64;
    let ctx = zmq::Context::new();

    // Live publication (gated, as fast as the bridge takes it).
    let col = Collector::start();
    let mut publ = publisher(&ctx);
    let eng = bridge(publ.port(), col.port);
    publ.wait_for_subscriber(WAIT).unwrap();
    let messages: Vec<Vec<Vec<u8>>> = records.iter().map(|r| r.frames.clone()).collect();
    publish_gated(&mut publ, &messages, 7, 3 * 696, &col);
    assert!(col.wait_rows(|r| r >= rows));
    eng.shutdown();
    let live = col.finish();
    drop(publ);

    // The replay engine, original pacing, twice through the capture.
    let col = Collector::start();
    let rep = Replayer::start(
        &ctx,
        Arc::new(records),
        2,
        ReplayConfig {
            speed: Speed::Original,
            ..ReplayConfig::default()
        },
    )
    .unwrap();
    let eng = bridge(rep.port(), col.port);
    assert!(
        col.wait_rows(|r| r >= 2 * rows),
        "{} of {} rows",
        col.rows(),
        2 * rows
    );
    let st = rep.wait();
    assert_eq!((st.messages, st.loops, st.error), (2 * 717, 2, None));
    let report = eng.shutdown();
    let replayed = col.finish();

    assert_eq!(live.len() as u64, rows + 21, "rows and TTL events");
    assert_eq!(replayed.len(), 2 * live.len());
    assert!(
        replayed[..live.len()] == live[..],
        "first pass: the live datagrams, byte for byte"
    );
    assert!(
        replayed[live.len()..] == live[..],
        "the loop sends the file again, sample numbers included"
    );
    let rx = &report.rx;
    assert_eq!(
        counter(rx, "restarts"),
        0,
        "message_num continues across the loop"
    );
    assert_eq!(counter(rx, "upstream_missing_msgs"), 0);
    assert_eq!(
        counter(rx, "backward_jumps"),
        1,
        "sample_num goes back at the loop"
    );
    assert_eq!(counter(rx, "blocks_learning"), 0);
    assert_eq!(counter(rx, "malformed"), 0);
}

#[test]
fn osc_sink_any_mode_measures_a_replayed_gui_stream() {
    use oe_testkit::sink::{Layout, Sink, SinkConfig};
    let records = fixture_records("gui-8ch-nonascii");
    let rows = 87 * 696u64;
    let ctx = zmq::Context::new();
    let sink = Sink::start(SinkConfig {
        layout: Layout::Any,
        ..SinkConfig::default()
    })
    .unwrap();
    let rep = Replayer::start(&ctx, Arc::new(records), 2, ReplayConfig::default()).unwrap();
    let eng = bridge(rep.port(), sink.local_addr().port());
    assert!(
        sink.wait_for_rows(2 * rows, WAIT),
        "{:?}",
        sink.report().any
    );
    rep.wait();
    eng.shutdown();
    let r = sink.stop();
    let a = &r.any;
    assert_eq!(a.rows, 2 * rows);
    assert_eq!(a.numbered, 2 * rows, "every row carries its sample number");
    assert_eq!((a.gaps, a.gap_samples), (0, 0), "{a:?}");
    assert_eq!(a.reorders, 1, "the loop: sample numbers go back once");
    assert_eq!(r.kernel_drops, 0);
    assert!(a
        .addresses
        .iter()
        .any(|(k, n)| k == "/data/ttl" && *n == 42));
    assert_eq!(a.arrival_hist.iter().sum::<u64>(), a.messages - 1);
    // A 2 s capture played twice at its own pace: 48 ms between blocks at the stop of a pass,
    // tens of µs between the rows of one block.
    assert!(a.max_gap_us >= 10_000, "{a:?}");
}
