//! `--record`: what the bridge receives is written to a zmqcap file, byte for byte, while it
//! bridges; replaying that file through a fresh bridge gives the very same OSC datagrams.

mod capkit;

use capkit::*;
use oe_testkit::replay::{ReplayConfig, Replayer, Speed};
use std::sync::Arc;

#[test]
fn record_then_replay_gives_identical_osc_bytes() {
    let name = "gui-8ch-nonascii";
    let records = fixture_records(name);
    let rows = 87 * 696u64;
    let ctx = zmq::Context::new();
    let dir = std::env::temp_dir().join(format!("z2o-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("session.zmqcap.gz");

    // Live, recording.
    let col = Collector::start();
    let mut publ = publisher(&ctx);
    let eng = bridge_recording(publ.port(), col.port, Some(file.clone()));
    publ.wait_for_subscriber(WAIT).unwrap();
    let messages: Vec<Vec<Vec<u8>>> = records.iter().map(|r| r.frames.clone()).collect();
    publish_gated(&mut publ, &messages, 7, 3 * 696, &col);
    assert!(col.wait_rows(|r| r >= rows));
    let report = eng.shutdown();
    let live = col.finish();
    drop(publ);
    assert_eq!(report.recorded.len(), 1);
    let r = &report.recorded[0];
    assert_eq!(
        (r.written, r.dropped, r.failed, r.error.clone()),
        (messages.len() as u64, 0, 0, None),
        "{r:?}"
    );

    // The file holds every message the publisher sent, frame for frame, in order.
    let taped = oe_testkit::zmqcap::read_all(&file).unwrap();
    assert_eq!(taped.len(), messages.len());
    for (i, (t, m)) in taped.iter().zip(&messages).enumerate() {
        assert_eq!(&t.frames, m, "message {i}");
    }
    assert!(taped.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));

    // Replayed into a fresh bridge: the same datagrams.
    let col = Collector::start();
    let rep = Replayer::start(
        &ctx,
        Arc::new(taped),
        1,
        ReplayConfig {
            speed: Speed::Original,
            ..ReplayConfig::default()
        },
    )
    .unwrap();
    let eng = bridge(rep.port(), col.port);
    assert!(
        col.wait_rows(|r| r >= rows),
        "{} of {rows} rows",
        col.rows()
    );
    let st = rep.wait();
    assert_eq!(st.error, None);
    eng.shutdown();
    let replayed = col.finish();
    assert_eq!(replayed.len(), live.len());
    assert!(
        replayed == live,
        "the replay's datagrams differ from the live run's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
