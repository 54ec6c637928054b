//! Several ZeroMQ sources in one bridge (`zmq.sources`): two publishers on two ports, one
//! bridge with two sources and one output per source. Every row of each output carries its
//! own source's values; stopping one publisher never stalls the other source's output; a
//! publisher restarted on the same port (message_num from 1 again) resumes its output and is
//! counted as a restart of that source only. The JSON stats, the final report and the
//! ledger show each source. With two sources the hot threads (each receiver, each encoder)
//! still allocate nothing in steady state (a counting global allocator, as in no_alloc.rs).

mod common;

use common::*;
use oe_testkit::sim::Publisher;
use rosc::OscPacket;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zmq2osc::config::Config;
use zmq2osc::engine::Engine;
use zmq2osc::telemetry::livestats;

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static HOT_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Tests that run an engine in this process take turns, so the allocation count of one
/// never sees another's start-up.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) && zmq2osc::hot::is_hot() {
            HOT_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) && zmq2osc::hot::is_hot() {
            HOT_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) && zmq2osc::hot::is_hot() {
            HOT_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const A_CH: [u32; 3] = [0, 1, 2];
const B_CH: [u32; 2] = [5, 6];
const BLOCK: usize = 32;

/// A publisher with heartbeat replies on a random free port pair.
fn publisher_hb(ctx: &zmq::Context) -> Publisher {
    Publisher::bind_with_heartbeat(ctx, "127.0.0.1", 0).expect("publisher")
}

/// Binds a publisher (with heartbeat replies) on `port`, retrying while the old one's port
/// is still being released.
fn rebind(ctx: &zmq::Context, port: u16) -> Publisher {
    let deadline = Instant::now() + WAIT;
    loop {
        match Publisher::bind_with_heartbeat(ctx, "127.0.0.1", port) {
            Ok(p) => return p,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot rebind {port}: {e}"),
        }
    }
}

fn config_text(pa: u16, pb: u16, oa: u16, ob: u16) -> String {
    format!(
        r#"{{
  "zmq": {{"host": "127.0.0.1", "data_port": {pa}, "heartbeat_timeout": 0.05,
           "not_responding_timeout": 0.5, "data_timeout_seconds": 120,
           "sources": [{{"name": "probeA"}}, {{"name": "probeB", "data_port": {pb}}}]}},
  "performance": {{"pin_threads": false, "max_channels": 64, "max_block_samples": 256,
                   "osc_queue_max_size": 16}},
  "outputs": [
    {{"name": "outA", "host": "127.0.0.1", "port": {oa}, "source": "probeA",
      "downsampling_factor": 1}},
    {{"name": "outB", "host": "127.0.0.1", "port": {ob}, "source": "probeB",
      "downsampling_factor": 1}}
  ]
}}"#
    )
}

/// Rows (the floats of each `/data/sample` message) received until one starts with `last`
/// (or the bound passes).
fn rows_until(s: &UdpSocket, last: f32) -> Vec<Vec<f32>> {
    s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let deadline = Instant::now() + WAIT;
    let mut out: Vec<Vec<f32>> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        if out.last().is_some_and(|r| r.first() == Some(&last)) {
            break;
        }
        if let Ok(n) = s.recv(&mut buf) {
            match rosc::decoder::decode_udp(&buf[..n]) {
                Ok((_, OscPacket::Message(m))) => {
                    assert!(m.addr.ends_with("/sample"), "unexpected address {}", m.addr);
                    out.push(floats(&m.args));
                }
                other => panic!("not an OSC message: {other:?}"),
            }
        }
    }
    out
}

/// The rows a block of `channels` from sample `j` must become (F = 1).
fn expected_rows(channels: &[u32], j: i64, n: usize) -> Vec<Vec<f32>> {
    (0..n as i64)
        .map(|k| {
            channels
                .iter()
                .map(|&c| (c as i64 * 1000 + j + k) as f32)
                .collect()
        })
        .collect()
}

/// Publishes blocks on `p` until its output shows a row of this run (first value at least
/// the first sample sent now); returns the next sample number. Blocks sent while the
/// bridge (re)learns the channel set are dropped there (counted), which is why this loops.
fn warm_up(p: &mut Publisher, channels: &[u32], rx: &UdpSocket, mut j: i64) -> i64 {
    let start = j;
    rx.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let mut buf = vec![0u8; 65536];
    let t = Instant::now();
    while t.elapsed() < WAIT {
        send_block(p, channels, j, BLOCK);
        j += BLOCK as i64;
        while let Ok(n) = rx.recv(&mut buf) {
            if let Ok((_, OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n]) {
                let first = floats(&m.args).first().copied().unwrap_or(-1.0);
                if first >= (channels[0] as i64 * 1000 + start) as f32 {
                    // Let the rest of what was sent arrive, then drop it: the checked
                    // phase starts on a clean socket at sample `j`.
                    let last = (channels[0] as i64 * 1000 + j - 1) as f32;
                    let _ = rows_until(rx, last);
                    return j;
                }
            }
        }
    }
    panic!("output of channels {channels:?} never started");
}

/// Sends one block on `p` and checks that exactly its rows arrive on `rx`, in order, with
/// the block's own values.
fn block_arrives(p: &mut Publisher, channels: &[u32], rx: &UdpSocket, j: i64, what: &str) {
    send_block(p, channels, j, BLOCK);
    let want = expected_rows(channels, j, BLOCK);
    let got = rows_until(rx, want.last().unwrap()[0]);
    assert_eq!(got, want, "{what}: block at sample {j}");
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn two_sources_each_feed_their_own_output_and_survive_a_restart() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let mut pa = publisher_hb(&ctx);
    let mut pb = publisher_hb(&ctx);
    let (port_a, port_b) = (pa.port(), pb.port());
    let (rxa, oa) = receiver();
    let (rxb, ob) = receiver();
    let (cfg, warnings) =
        Config::from_json_str(&config_text(port_a, port_b, oa, ob)).expect("config");
    assert!(warnings.is_empty(), "{warnings:?}");
    let eng = start(&cfg);
    let started = Instant::now();
    let l = eng.layout();
    assert_eq!(l.sources.len(), 2);
    assert_eq!(l.sources[0].name, "probeA");
    assert_eq!(l.sources[0].receiver_thread, "zmq_rx_probeA");
    assert_eq!(l.sources[1].receiver_thread, "zmq_rx_probeB");
    assert_eq!(l.output_sources, vec![0, 1]);
    assert_eq!(
        l.sources[1].data_endpoint,
        format!("tcp://127.0.0.1:{port_b}")
    );
    assert_ne!(
        l.sources[0].uuid, l.sources[1].uuid,
        "one heartbeat identity each"
    );
    assert!(l.sources[1].uuid.ends_with("-probeB"));
    #[cfg(target_os = "linux")]
    {
        // One receiver and one heartbeat thread per source, under their own names (each
        // thread sets its name itself once it runs: wait for it).
        let names = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .map(|d| {
                    d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                        .map(|n| n.trim().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        for want in [
            "zmq_rx_probeA",
            "zmq_rx_probeB",
            "zmq_hb_probeA",
            "zmq_hb_probeB",
        ] {
            wait_for(want, || names().iter().any(|n| n == want));
        }
    }

    // Both outputs running, then every row of every block checked: A's values on A's
    // output, B's on B's (B's channels and sample numbers differ from A's, so a row of
    // the other source could not pass).
    let mut ja = warm_up(&mut pa, &A_CH, &rxa, 0);
    let mut jb = warm_up(&mut pb, &B_CH, &rxb, 100_000);
    for _ in 0..10 {
        block_arrives(&mut pa, &A_CH, &rxa, ja, "source A, both running");
        block_arrives(&mut pb, &B_CH, &rxb, jb, "source B, both running");
        ja += BLOCK as i64;
        jb += BLOCK as i64;
    }
    // Each source's heartbeat goes to its own publisher.
    wait_for("heartbeats on both publishers", || {
        pa.heartbeats_answered() > 0 && pb.heartbeats_answered() > 0
    });
    let stats = eng.stats().clone();
    wait_for("both heartbeats online", || {
        stats.hb[0].state.get() == 1 && stats.hb[1].state.get() == 1
    });

    // B goes away: A's output keeps flowing, block after block, while B's heartbeat
    // notices.
    let before_gone = livestats::Sample::take(&stats, started);
    drop(pb);
    for _ in 0..10 {
        block_arrives(&mut pa, &A_CH, &rxa, ja, "source A while B is gone");
        ja += BLOCK as i64;
    }
    wait_for("B's heartbeat not responding", || {
        stats.hb[1].state.get() >= 2
    });
    block_arrives(
        &mut pa,
        &A_CH,
        &rxa,
        ja,
        "source A after B's heartbeat gave up",
    );
    ja += BLOCK as i64;
    assert_eq!(stats.hb[0].state.get(), 1, "A's heartbeat stays online");
    assert_eq!(stats.rx[1].restarts.get(), 0);

    // B restarts on the same port: a new acquisition, message_num from 1, sample_num from 0.
    // (Waiting for the bridge's subscription first, so its first message is message_num 1:
    // a publisher that sent past the old one's last number before the bridge reconnected
    // would look like upstream loss, not a restart.)
    let mut pb = rebind(&ctx, port_b);
    pb.wait_for_subscriber(WAIT)
        .expect("the bridge reconnects to B");
    let mut jb = warm_up(&mut pb, &B_CH, &rxb, 0);
    for _ in 0..5 {
        block_arrives(&mut pb, &B_CH, &rxb, jb, "source B after its restart");
        block_arrives(&mut pa, &A_CH, &rxa, ja, "source A after B's restart");
        ja += BLOCK as i64;
        jb += BLOCK as i64;
    }
    wait_for("B's restart counted", || stats.rx[1].restarts.get() >= 1);
    wait_for("B's heartbeat online again", || {
        stats.hb[1].state.get() == 1
    });

    // JSON stats: top-level rx/hb are the sums, `sources` holds each.
    let now = livestats::Sample::take(&stats, started);
    let v: serde_json::Value =
        serde_json::from_str(&livestats::json_line(&now, &before_gone, 16, false, &[])).unwrap();
    let src = v["sources"].as_array().expect("sources array");
    assert_eq!(src.len(), 2, "{v}");
    assert_eq!(src[0]["name"], "probeA");
    assert_eq!(src[1]["name"], "probeB");
    assert_eq!(src[1]["endpoint"], format!("tcp://127.0.0.1:{port_b}"));
    assert_eq!(src[0]["hb_state"], "online");
    assert!(src[1]["rx"]["restarts"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(src[0]["rx"]["restarts"], 0, "{v}");
    for key in ["messages", "blocks_emitted", "data_msgs"] {
        assert_eq!(
            v["rx"][key].as_u64().unwrap(),
            src[0]["rx"][key].as_u64().unwrap() + src[1]["rx"][key].as_u64().unwrap(),
            "rx.{key} is the sum over sources: {v}"
        );
    }
    assert!(
        src[1]["hb"]["data_disconnects"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert_eq!(src[0]["hb"]["data_disconnects"], 0, "{v}");

    let r = eng.shutdown();
    assert!(!r.failed);
    assert!(r.sources_listed);
    assert_eq!(r.sources.len(), 2);
    let get = |v: &[(&str, u64)], n: &str| v.iter().find(|(k, _)| *k == n).unwrap().1;
    assert!(get(&r.sources[1].rx, "restarts") >= 1);
    assert_eq!(get(&r.sources[0].rx, "restarts"), 0);
    // Each output encoded what its own source emitted (F = 1: every block).
    let frames = |i: usize| get(&r.tx[i], "frames");
    assert_eq!(frames(0), get(&r.sources[0].rx, "blocks_emitted"));
    assert_eq!(frames(1), get(&r.sources[1].rx, "blocks_emitted"));
    assert_ne!(frames(0), frames(1));
    let (ledger, balanced) = r.ledger();
    assert!(balanced, "{ledger}");
    assert!(
        ledger.contains("ledger     <probeA> blocks received"),
        "{ledger}"
    );
    assert!(
        ledger.contains("ledger     <probeB> blocks received"),
        "{ledger}"
    );
    assert!(ledger.contains("[outB] from <probeB>"), "{ledger}");
    let text = zmq2osc::app::text::final_report(&r, None, None, Duration::from_secs(1));
    assert!(
        text.contains("source     <probeA> tcp://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains(&format!("source     <probeB> tcp://127.0.0.1:{port_b}")),
        "{text}"
    );
    drop(pa);
    drop(pb);
}

/// With only the original keys, the bridge is exactly one source as before: no `sources` in
/// the JSON, no source lines in the report, thread names unchanged.
#[test]
fn original_keys_mean_one_unlisted_source() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let (mut p, zp) = publisher(&ctx);
    let (rx, op) = receiver();
    let mut cfg = config(zp, op);
    cfg.osc.processing.downsampling_factor = 1;
    let eng: Engine = start(&cfg);
    let started = Instant::now();
    let l = eng.layout();
    assert_eq!(l.sources.len(), 1);
    assert!(!l.sources_listed);
    assert_eq!(l.sources[0].receiver_thread, "zmq_rx");
    assert_eq!(l.sources[0].uuid, "1618");
    warm_up(&mut p, &A_CH, &rx, 0);
    let s = livestats::Sample::take(eng.stats(), started);
    assert!(s.sources.is_empty());
    let v: serde_json::Value =
        serde_json::from_str(&livestats::json_line(&s, &s, 16, false, &[])).unwrap();
    assert!(v.get("sources").is_none(), "{v}");
    let r = eng.shutdown();
    assert!(!r.sources_listed);
    let (ledger, ok) = r.ledger();
    assert!(ok, "{ledger}");
    assert!(ledger.starts_with("ledger     blocks received"), "{ledger}");
    assert!(!ledger.contains(" from <"), "{ledger}");
    let text = zmq2osc::app::text::final_report(&r, None, None, Duration::from_secs(1));
    assert!(!text.contains("source     <"), "{text}");
}

/// The binary: an output naming no source is a config error (exit 2) naming the key path.
#[test]
fn unknown_source_is_a_config_error_naming_the_key() {
    let dir = tempdir("sources-bad");
    let path = dir.join("bad.json");
    std::fs::write(
        &path,
        r#"{"zmq": {"sources": [{"name": "probeA"}, {"name": "probeB", "data_port": 6000}]},
            "outputs": [{"port": 9000}, {"port": 9001, "source": "probeC"}]}"#,
    )
    .unwrap();
    let out = bridge_bin()
        .args(["--config", path.to_str().unwrap(), "--seconds", "0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outputs[1].source"), "{err}");
    assert!(err.contains("probeC"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary with two sources: start-up lines, status lines, JSON stats and the final
/// report each show both sources, with each source's own counters.
#[test]
fn binary_shows_every_source() {
    let ctx = zmq::Context::new();
    let mut pa = publisher_hb(&ctx);
    let mut pb = publisher_hb(&ctx);
    let (rxa, oa) = receiver();
    let (rxb, ob) = receiver();
    let dir = tempdir("sources-bin");
    let path = dir.join("two.json");
    std::fs::write(&path, config_text(pa.port(), pb.port(), oa, ob)).unwrap();
    let child = bridge_bin()
        .args(["--config", path.to_str().unwrap()])
        .args(["--seconds", "3", "--stats-interval", "0.2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both publishers stream until their outputs run, then the bridge stops by itself.
    let _ = warm_up(&mut pa, &A_CH, &rxa, 0);
    let _ = warm_up(&mut pb, &B_CH, &rxb, 100_000);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["probeA", "probeB"] {
        assert!(
            stderr.contains(&format!("  source     <{name}> ZMQ data tcp://127.0.0.1:")),
            "{stderr}"
        );
        assert!(stderr.contains(&format!("<{name}> ")), "{stderr}");
    }
    assert!(stderr.contains(" | sources: <probeA> "), "{stderr}");
    assert!(stderr.contains("(from <probeB>)"), "{stderr}");
    let last: serde_json::Value = stdout
        .lines()
        .rfind(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("JSON lines");
    assert_eq!(last["final"], true);
    let src = last["sources"].as_array().expect("sources");
    assert_eq!(
        src.iter().map(|s| s["name"].clone()).collect::<Vec<_>>(),
        ["probeA", "probeB"]
    );
    for s in src {
        assert!(s["rx"]["blocks_emitted"].as_u64().unwrap() > 0, "{s}");
    }
    assert_eq!(
        last["rx"]["messages"].as_u64().unwrap(),
        src[0]["rx"]["messages"].as_u64().unwrap() + src[1]["rx"]["messages"].as_u64().unwrap()
    );
    assert!(
        stdout.contains("source     <probeA> tcp://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("source     <probeB> tcp://127.0.0.1:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ledger     <probeB> blocks received"),
        "{stdout}"
    );
    assert!(!stdout.contains("NOT BALANCED"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two sources streaming at once: no hot thread (either receiver, either encoder) allocates
/// in steady state.
#[test]
fn two_sources_hot_threads_do_not_allocate() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let mut pa = publisher_hb(&ctx);
    let mut pb = publisher_hb(&ctx);
    let (rxa, oa) = receiver();
    let (rxb, ob) = receiver();
    let (cfg, _) = Config::from_json_str(&config_text(pa.port(), pb.port(), oa, ob)).unwrap();
    let eng = start(&cfg);
    pa.wait_for_subscriber(WAIT).unwrap();
    pb.wait_for_subscriber(WAIT).unwrap();
    // Drain threads keep the receivers' buffers from overflowing (not hot threads).
    let stop = Arc::new(AtomicBool::new(false));
    let drain = |s: UdpSocket| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let mut buf = vec![0u8; 65536];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if s.recv(&mut buf).is_ok() {
                    n += 1;
                }
            }
            n
        })
    };
    let (da, db) = (drain(rxa), drain(rxb));
    let stats = eng.stats().clone();
    // Frames each output handled: sent, or dropped by the queue policy.
    let handled = |i: usize| {
        stats.tx[i].frames.get()
            + stats.tx[i].dropped_oldest.get()
            + stats.rx_out[i].dropped_newest.get()
    };
    let (mut ja, mut jb) = (0i64, 100_000i64);
    // Warm-up: channel sets learned, layouts set, every buffer touched once.
    for _ in 0..20 {
        send_block(&mut pa, &A_CH, ja, BLOCK);
        send_block(&mut pb, &B_CH, jb, BLOCK);
        ja += BLOCK as i64;
        jb += BLOCK as i64;
    }
    wait_for("warm-up", || handled(0) >= 19 && handled(1) >= 19);
    let (h0, h1) = (handled(0), handled(1));
    ARMED.store(true, Ordering::SeqCst);
    for _ in 0..100 {
        send_block(&mut pa, &A_CH, ja, BLOCK);
        send_block(&mut pb, &B_CH, jb, BLOCK);
        ja += BLOCK as i64;
        jb += BLOCK as i64;
    }
    wait_for("steady state", || {
        handled(0) >= h0 + 100 && handled(1) >= h1 + 100
    });
    ARMED.store(false, Ordering::SeqCst);
    let allocs = HOT_ALLOCS.swap(0, Ordering::SeqCst);
    let r = eng.shutdown();
    stop.store(true, Ordering::SeqCst);
    let (na, nb) = (da.join().unwrap(), db.join().unwrap());
    assert!(na > 0 && nb > 0, "a receiver got nothing: {na} {nb}");
    assert!(!r.failed);
    assert!(r.ledger().1, "{}", r.ledger().0);
    assert_eq!(
        allocs, 0,
        "hot threads allocated {allocs} times in steady state"
    );
}

/// `GET /` of an OSCQuery server: the namespace JSON.
fn oscquery_root(addr: std::net::SocketAddr) -> serde_json::Value {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").expect("a whole HTTP answer");
    serde_json::from_str(body).unwrap()
}

/// OSCQuery with two sources: each output's addresses follow its own source's layout (A's
/// three channels on `/a/sample`, B's two on `/b/sample`).
#[test]
fn oscquery_namespace_follows_each_outputs_own_source() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let mut pa = publisher_hb(&ctx);
    let mut pb = publisher_hb(&ctx);
    let (rxa, oa) = receiver();
    let (rxb, ob) = receiver();
    let text = config_text(pa.port(), pb.port(), oa, ob)
        .replace(
            r#""source": "probeA","#,
            r#""source": "probeA", "base_address": "/a","#,
        )
        .replace(
            r#""source": "probeB","#,
            r#""source": "probeB", "base_address": "/b","#,
        );
    let (cfg, _) = Config::from_json_str(&text).unwrap();
    let eng = start(&cfg);
    let q = zmq2osc::oscquery::OscQuery::start(
        &zmq2osc::oscquery::Options {
            bind: "127.0.0.1:0".parse().unwrap(),
            mdns: false,
            name: "sources-test".into(),
        },
        zmq2osc::oscquery::bridge::snapshot("sources-test", &cfg.output_specs(), None),
    )
    .unwrap();
    let _ = warm_up(&mut pa, &A_CH, &rxa, 0);
    let _ = warm_up(&mut pb, &B_CH, &rxb, 100_000);
    let mut seen = Vec::new();
    zmq2osc::app::discovery::follow(&q, &cfg, eng.shared(), &mut seen);
    assert_eq!(seen.len(), 2, "one layout generation per source");
    assert!(seen.iter().all(Option::is_some), "{seen:?}");
    let v = oscquery_root(q.local_addr());
    let ty = |base: &str| v["CONTENTS"][base]["CONTENTS"]["sample"]["TYPE"].clone();
    assert_eq!(ty("a"), "fff", "{v}");
    assert_eq!(ty("b"), "ff", "{v}");
    let root = v["DESCRIPTION"].as_str().unwrap();
    assert!(root.contains("source 'probeA': stream"), "{root}");
    assert!(root.contains("source 'probeB': stream"), "{root}");
    drop(q);
    let r = eng.shutdown();
    assert!(!r.failed);
}
