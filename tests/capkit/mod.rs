//! Shared by tests/fixtures.rs, tests/replay.rs and tests/learning.rs: the real-GUI fixtures,
//! a lossless gated publisher of recorded messages, the bridge engine configured for them, and
//! a UDP collector that keeps every datagram.
#![allow(dead_code)]

use oe_testkit::sim::Publisher;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zmq2osc::config::Config;
use zmq2osc::engine::{Engine, EngineOptions};
use zmq2osc::ingest::protocol::{parse_header_mut, Header};

/// Upper bound of every wait.
pub const WAIT: Duration = Duration::from_secs(60);

/// `shared/fixtures` of the workspace: `../shared/fixtures` from the workspace root (CI and
/// the main checkout), or the same path from a parent (a worktree one level deeper). Panics,
/// never skips, when it is missing.
pub fn fixtures_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for a in root.ancestors().skip(1) {
        let d = a.join("shared").join("fixtures");
        if d.join("README.md").is_file() {
            return d;
        }
    }
    panic!(
        "the real-GUI fixtures are missing: expected ../shared/fixtures next to {} (CI lays shared/ beside the clone)",
        root.display()
    );
}

/// A fixture's JSON description.
pub fn fixture_json(name: &str) -> serde_json::Value {
    let p = fixtures_dir().join(format!("{name}.json"));
    let t = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A fixture's records.
pub fn fixture_records(name: &str) -> Vec<oe_testkit::zmqcap::Record> {
    let p = fixtures_dir().join(format!("{name}.zmqcap.gz"));
    oe_testkit::zmqcap::read_all(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// Keeps every datagram that reaches a UDP socket, on its own thread.
pub struct Collector {
    pub port: u16,
    pub datagrams: Arc<Mutex<Vec<Vec<u8>>>>,
    /// `/data/sample` messages so far.
    pub rows: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Collector {
    pub fn start() -> Collector {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let _ = socket2::SockRef::from(&s).set_recv_buffer_size(8 << 20);
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let port = s.local_addr().unwrap().port();
        let datagrams = Arc::new(Mutex::new(Vec::new()));
        let rows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d2, r2, s2) = (datagrams.clone(), rows.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s2.load(Ordering::Relaxed) {
                if let Ok(n) = s.recv(&mut buf) {
                    if buf[..n].starts_with(b"/data/sample\0") {
                        r2.fetch_add(1, Ordering::Relaxed);
                    }
                    d2.lock().unwrap().push(buf[..n].to_vec());
                }
            }
            // Drain what is left.
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            while let Ok(n) = s.recv(&mut buf) {
                d2.lock().unwrap().push(buf[..n].to_vec());
            }
        });
        Collector {
            port,
            datagrams,
            rows,
            stop,
            thread: Some(thread),
        }
    }

    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Waits until `pred(rows)` holds; false after [`WAIT`].
    pub fn wait_rows(&self, pred: impl Fn(u64) -> bool) -> bool {
        let end = Instant::now() + WAIT;
        while Instant::now() < end {
            if pred(self.rows()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        pred(self.rows())
    }

    /// Stops and returns every datagram, in arrival order.
    pub fn finish(mut self) -> Vec<Vec<u8>> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.datagrams.lock().unwrap())
    }
}

/// The bridge in sample mode, F = 1, one output with sample numbers and TTL events.
pub fn bridge(zport: u16, oport: u16) -> Engine {
    bridge_recording(zport, oport, None)
}

/// [`bridge`], also recording what it receives (`--record`) when `record` is given.
pub fn bridge_recording(zport: u16, oport: u16, record: Option<PathBuf>) -> Engine {
    let text = format!(
        r#"{{"zmq": {{"host": "127.0.0.1", "data_port": {zport}}},
            "osc": {{"processing": {{"downsampling_factor": 1}}}},
            "performance": {{"pin_threads": false, "max_channels": 256, "max_block_samples": 2048,
                             "osc_queue_max_size": 64}},
            "outputs": [{{"port": {oport}, "host": "127.0.0.1", "format": "sample",
                          "sample_number": true, "events": true, "max_datagram": "loopback"}}]}}"#
    );
    let (cfg, warnings) = Config::from_json_str(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let opts = EngineOptions {
        verbose: false,
        record,
        ..Default::default()
    };
    Engine::start(&cfg, &opts).unwrap()
}

/// A lossless publisher (XPUB, HWM 0, heartbeats on port + 1) on a free port pair.
pub fn publisher(ctx: &zmq::Context) -> Publisher {
    Publisher::bind_pair_with_hwm(ctx, "127.0.0.1", 0, 0).unwrap()
}

/// What a DATA message means for the rows the bridge will output.
pub fn data_info(frames: &[Vec<u8>]) -> Option<(i64, i64)> {
    if frames.first().map(|f| f.as_slice()) != Some(b"DATA\0") || frames.len() < 2 {
        return None;
    }
    let mut h = frames[1].clone();
    let len = h.len();
    h.push(0);
    match parse_header_mut(&mut h, len) {
        Ok((Header::Data(d), _)) => Some((d.channel_num, d.num_samples)),
        _ => None,
    }
}

/// Publishes `messages` as fast as the bridge takes them without loss: after each complete
/// block (its channel `last_channel` message) it waits until the collector is at most
/// `window_rows` behind what was sent (the bridge holds the first block of an acquisition
/// until the second confirms the channel set, so the window spans two blocks at least).
pub fn publish_gated(
    publ: &mut Publisher,
    messages: &[Vec<Vec<u8>>],
    last_channel: i64,
    window_rows: u64,
    col: &Collector,
) -> u64 {
    let mut sent_rows = 0u64;
    for m in messages {
        let fr: Vec<&[u8]> = m.iter().map(|f| f.as_slice()).collect();
        publ.send_raw(&fr).unwrap();
        if let Some((ch, ns)) = data_info(m) {
            if ch == last_channel {
                sent_rows += ns as u64;
                assert!(
                    col.wait_rows(|r| r + window_rows >= sent_rows),
                    "the bridge stalled: {} rows out, {sent_rows} sent",
                    col.rows()
                );
            }
        }
    }
    sent_rows
}

/// One decoded OSC message.
pub type Msg = (String, Vec<rosc::OscType>);

pub fn decode(datagrams: &[Vec<u8>]) -> Vec<Msg> {
    datagrams
        .iter()
        .map(|d| match rosc::decoder::decode_udp(d) {
            Ok((_, rosc::OscPacket::Message(m))) => (m.addr, m.args),
            other => panic!("not an OSC message: {other:?}"),
        })
        .collect()
}

/// A `/data/sample` row: its floats and its sample number (the two ints, hi/lo).
pub fn row(args: &[rosc::OscType]) -> (Vec<f32>, i64) {
    let mut v = Vec::with_capacity(args.len());
    let mut ints = Vec::new();
    for a in args {
        match a {
            rosc::OscType::Float(x) => v.push(*x),
            rosc::OscType::Int(i) => ints.push(*i),
            other => panic!("unexpected argument {other:?}"),
        }
    }
    assert_eq!(ints.len(), 2, "sample number as (hi, lo)");
    let s = (i64::from(ints[0]) << 32) | i64::from(ints[1] as u32);
    (v, s)
}

/// Counter `name` of a report section.
pub fn counter(list: &[(&'static str, u64)], name: &str) -> u64 {
    list.iter()
        .find(|(k, _)| *k == name)
        .unwrap_or_else(|| panic!("no counter {name}"))
        .1
}
