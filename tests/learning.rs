//! Nothing is lost while the channel set is learned: through the real bridge (a real ZMQ
//! publisher, the engine, a UDP receiver), the first block of every acquisition reaches the
//! output and `blocks_learning` reads 0, with GUI blocks (696), fixed blocks, a sparse
//! selection, a live selection change and a new acquisition after a data timeout.

mod capkit;

use capkit::*;
use oe_testkit::sim::Publisher;
use std::time::{Duration, Instant};
use zmq2osc::config::Config;
use zmq2osc::engine::{Engine, EngineOptions};

fn value(c: u32, j: i64) -> f32 {
    (c as i64 * 100_000 + j % 100_000) as f32
}

fn send_block(p: &mut Publisher, channels: &[u32], sample_num: i64, n: usize) {
    for &c in channels {
        let v: Vec<f32> = (0..n as i64).map(|k| value(c, sample_num + k)).collect();
        p.send_data(
            "example_data",
            c,
            Some(&format!("CH{}", c + 1)),
            sample_num,
            30000.0,
            &v,
            Some(1),
        )
        .unwrap();
    }
}

fn engine(zport: u16, oport: u16, data_timeout: f64) -> Engine {
    let text = format!(
        r#"{{"zmq": {{"host": "127.0.0.1", "data_port": {zport}, "data_timeout_seconds": {data_timeout}}},
            "osc": {{"processing": {{"downsampling_factor": 1}}}},
            "performance": {{"pin_threads": false, "max_channels": 64, "max_block_samples": 1024,
                             "osc_queue_max_size": 64}},
            "outputs": [{{"port": {oport}, "host": "127.0.0.1", "format": "sample",
                          "sample_number": true, "max_datagram": "loopback"}}]}}"#
    );
    let (cfg, warnings) = Config::from_json_str(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let opts = EngineOptions {
        verbose: false,
        ..Default::default()
    };
    Engine::start(&cfg, &opts).unwrap()
}

/// Sends `phases` (channel set, block count) back to back with `n`-sample blocks and checks
/// that every sample of every block arrives, in order, with the channels of its block. A
/// channel *added* live is only known once two blocks agree: the blocks before carry the
/// previous set's channels (nothing lost, the new channel joins late).
fn run(phases: &[(&[u32], usize)], n: usize) {
    let ctx = zmq::Context::new();
    let col = Collector::start();
    let mut publ = publisher(&ctx);
    let eng = engine(publ.port(), col.port, 2.0);
    publ.wait_for_subscriber(WAIT).unwrap();
    let mut want: Vec<(Vec<f32>, i64)> = Vec::new();
    let mut also: Vec<Option<Vec<f32>>> = Vec::new();
    let mut s = 0i64;
    let mut prev: &[u32] = &[];
    for (chans, blocks) in phases {
        let added = !prev.is_empty() && chans.iter().any(|c| !prev.contains(c));
        for b in 0..*blocks {
            send_block(&mut publ, chans, s, n);
            for j in s..s + n as i64 {
                want.push((chans.iter().map(|&c| value(c, j)).collect(), j));
                // The first two blocks after an addition may still carry the old set.
                also.push((added && b < 2).then(|| {
                    prev.iter()
                        .filter(|c| chans.contains(c))
                        .map(|&c| value(c, j))
                        .collect()
                }));
            }
            s += n as i64;
        }
        prev = chans;
    }
    assert!(
        col.wait_rows(|r| r >= want.len() as u64),
        "{} of {} rows",
        col.rows(),
        want.len()
    );
    let report = eng.shutdown();
    let got: Vec<(Vec<f32>, i64)> = decode(&col.finish())
        .iter()
        .filter(|(a, _)| a == "/data/sample")
        .map(|(_, a)| row(a))
        .collect();
    assert_eq!(got.len(), want.len());
    for (k, ((g, gs), (w, ws))) in got.iter().zip(&want).enumerate() {
        assert_eq!(gs, ws, "row {k}: in order");
        assert!(
            g == w || also[k].as_ref() == Some(g),
            "row {k} (sample {ws}): {g:?}, want {w:?}"
        );
    }
    assert_eq!(
        got.last().unwrap().0,
        want.last().unwrap().0,
        "the new set in the end"
    );
    let rx = &report.rx;
    assert_eq!(counter(rx, "blocks_learning"), 0, "{rx:?}");
    assert_eq!(counter(rx, "blocks_incomplete"), 0, "{rx:?}");
    assert_eq!(
        counter(rx, "blocks_emitted"),
        phases.iter().map(|p| p.1 as u64).sum::<u64>()
    );
}

#[test]
fn clean_start_with_gui_blocks() {
    run(&[(&[0, 1, 2, 3, 4, 5, 6, 7], 4)], 696);
}

#[test]
fn clean_start_with_fixed_blocks() {
    run(&[(&[0, 1, 2, 3], 5)], 64);
}

#[test]
fn clean_start_with_a_sparse_selection() {
    run(&[(&[1, 4, 9, 33], 4)], 128);
}

#[test]
fn live_selection_change_loses_no_block() {
    // Channels deselected, then added back.
    run(
        &[(&[0, 1, 2, 3], 3), (&[0, 2], 3), (&[0, 1, 2, 3, 5], 3)],
        96,
    );
}

#[test]
fn new_acquisition_after_a_data_timeout_loses_no_block() {
    let ctx = zmq::Context::new();
    let col = Collector::start();
    let mut publ = publisher(&ctx);
    let eng = engine(publ.port(), col.port, 0.2);
    publ.wait_for_subscriber(WAIT).unwrap();
    let ch = [0u32, 1, 2];
    for b in 0..3 {
        send_block(&mut publ, &ch, b * 696, 696);
    }
    assert!(col.wait_rows(|r| r >= 3 * 696));
    // Paused longer than data_timeout_seconds: the bridge forgets the channel set.
    let end = Instant::now() + WAIT;
    while eng.shared().rx.by_name("data_timeouts") < 1 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(eng.shared().rx.by_name("data_timeouts"), 1);
    // Play again: message_num restarts at 1, sample_num continues (GUI 1.0.1).
    publ.set_message_num(1);
    for b in 3..6 {
        send_block(&mut publ, &ch, b * 696, 696);
    }
    assert!(col.wait_rows(|r| r >= 6 * 696), "{} rows", col.rows());
    let report = eng.shutdown();
    let rows: Vec<i64> = decode(&col.finish())
        .iter()
        .filter(|(a, _)| a == "/data/sample")
        .map(|(_, a)| row(a).1)
        .collect();
    assert_eq!(rows, (0..6 * 696).collect::<Vec<i64>>());
    let rx = &report.rx;
    assert_eq!(counter(rx, "blocks_learning"), 0, "{rx:?}");
    assert_eq!(counter(rx, "channel_set_changes"), 2, "learned twice");
    assert_eq!(counter(rx, "blocks_emitted"), 6);
}
