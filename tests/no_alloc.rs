//! The hot path does not allocate: a counting global allocator counts allocations made on the
//! bridge's hot threads (`zmq_rx`, `osc_tx_0`, marked by `zmq2osc::hot`) while the real
//! engine receives from a real ZMQ publisher and sends to a real UDP socket, in each output
//! mode, and for over two seconds with TTL events, spikes, status messages and notices flowing
//! and a channel-set change in the middle. (libzmq's own C allocations do not go through
//! Rust's allocator and are not counted.)

mod common;

use common::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Counting;

static ARMED: AtomicBool = AtomicBool::new(false);
static HOT_ALLOCS: AtomicU64 = AtomicU64::new(0);
/// `NO_ALLOC_TRACE=1` prints a backtrace for each counted allocation (to find it).
static TRACE: AtomicBool = AtomicBool::new(false);
/// The tests share the counter: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the one-test-at-a-time lock and applies `NO_ALLOC_TRACE`.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    let g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    TRACE.store(
        std::env::var_os("NO_ALLOC_TRACE").is_some(),
        Ordering::SeqCst,
    );
    g
}

thread_local! {
    static IN_TRACE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn note() {
    if ARMED.load(Ordering::Relaxed) && zmq2osc::hot::is_hot() {
        HOT_ALLOCS.fetch_add(1, Ordering::Relaxed);
        if TRACE.load(Ordering::Relaxed) && !IN_TRACE.with(|t| t.replace(true)) {
            eprintln!("{}", std::backtrace::Backtrace::force_capture());
            IN_TRACE.with(|t| t.set(false));
        }
    }
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
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

/// Waits until `n` frames were handled: sent, or dropped by the queue policy when the unpaced
/// publisher outruns a debug build (those paths must not allocate either).
fn wait_emitted(eng: &zmq2osc::engine::Engine, n: u64) {
    let deadline = Instant::now() + WAIT;
    let done = || {
        let t = &eng.shared().tx[0];
        t.by_name("frames")
            + t.by_name("dropped_oldest")
            + eng.shared().rx.by_name("dropped_newest")
    };
    while done() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        done() >= n,
        "bridge did not process {n} frames: rx {:?} tx {:?}",
        eng.shared().rx.snapshot(),
        eng.shared().tx[0].snapshot()
    );
}

fn run(configure: impl Fn(&mut zmq2osc::config::Config)) {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    configure(&mut cfg);
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let ch: Vec<u32> = (0..16).collect();
    // A drain thread keeps the receiver's buffer from overflowing (not a hot thread).
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let drainer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut n = 0u64;
        while !s2.load(Ordering::Relaxed) {
            if rx.recv(&mut buf).is_ok() {
                n += 1;
            }
        }
        n
    });
    // Warm-up: channel set learned, layout set, every buffer touched once.
    let mut j = 0i64;
    for _ in 0..20 {
        send_block(&mut publ, &ch, j, 100);
        j += 100;
    }
    wait_emitted(&eng, 19);
    // Measured: steady state, with a timer-driven partial batch flush on the way.
    ARMED.store(true, Ordering::SeqCst);
    for _ in 0..100 {
        send_block(&mut publ, &ch, j, 100);
        j += 100;
    }
    wait_emitted(&eng, 119);
    std::thread::sleep(Duration::from_millis(30));
    ARMED.store(false, Ordering::SeqCst);
    let allocs = HOT_ALLOCS.swap(0, Ordering::SeqCst);
    let r = eng.shutdown();
    stop.store(true, Ordering::SeqCst);
    let received = drainer.join().unwrap();
    assert!(
        received > 0,
        "the receiver got nothing: the test measured nothing"
    );
    assert!(!r.failed);
    assert_eq!(
        allocs, 0,
        "hot threads allocated {allocs} times in steady state"
    );
}

#[test]
fn sample_mode_hot_path_does_not_allocate() {
    run(|c| c.osc.processing.downsampling_factor = 1);
}

#[test]
fn batch_mode_with_timer_flush_does_not_allocate() {
    run(|c| {
        c.osc.processing.downsampling_factor = 3;
        c.osc.processing.batch_size = 7;
        c.osc.processing.batch_timeout_ms = 10.0;
        c.performance.enable_batching = true;
    });
}

#[test]
fn per_channel_mode_does_not_allocate() {
    run(|c| {
        c.osc.processing.downsampling_factor = 10;
        c.osc.send_individual_channels = true;
    });
}

#[test]
fn new_output_features_do_not_allocate() {
    run(|c| {
        let port = c.osc.port;
        let text = format!(
            r#"{{"outputs": [{{"host": "127.0.0.1", "port": {port}, "max_datagram": 256, "sample_number": true,
                 "bundle": "sample_clock", "status": true, "notices": true, "events": true, "spikes": true,
                 "downsampling_factor": 1}},
                {{"host": "127.0.0.1", "port": {port}, "format": "blob", "batch_size": 3, "channels": "15,0-3",
                  "layout": "sparse", "pacing": "smooth"}}]}}"#
        );
        let (parsed, _) = zmq2osc::config::Config::from_json_str(&text).unwrap();
        c.outputs = parsed.outputs;
    });
}

/// The OSC address of a datagram (inside a bundle or not).
fn address_of(d: &[u8]) -> String {
    let m = if d.starts_with(b"#bundle\0") && d.len() > 20 {
        &d[20..]
    } else {
        d
    };
    let end = m.iter().position(|&b| b == 0).unwrap_or(m.len());
    String::from_utf8_lossy(&m[..end]).into_owned()
}

/// Two seconds or more of everything at once on the hot threads: blocks, TTL events and
/// spikes, once-a-second status messages, a channel-set change halfway (new columns, new
/// per-channel addresses built from the stream and channel names, notices), splitting,
/// bundles with sample-clock time tags.
#[test]
fn events_status_notices_and_a_channel_set_change_do_not_allocate() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    let text = format!(
        r#"{{"outputs": [
            {{"host": "127.0.0.1", "port": {oport}, "format": "per_channel",
              "address": "{{base}}/{{stream}}/{{name}}", "names": {{"3": "Fz"}},
              "downsampling_factor": 10, "events": true, "spikes": true, "spike_waveform": true,
              "status": true, "notices": true, "sample_number": true, "bundle": "sample_clock"}},
            {{"host": "127.0.0.1", "port": {oport}, "downsampling_factor": 1, "max_datagram": 64,
              "events": true, "spikes": true, "status": true, "notices": true}}]}}"#
    );
    let (parsed, warnings) = zmq2osc::config::Config::from_json_str(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    cfg.outputs = parsed.outputs;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    // Collects the addresses that arrive (not a hot thread).
    let drainer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut seen = std::collections::BTreeSet::new();
        while !s2.load(Ordering::Relaxed) {
            if let Ok(n) = rx.recv(&mut buf) {
                seen.insert(address_of(&buf[..n]));
            }
        }
        seen
    });
    let tx_sum = |name: &str| -> u64 { eng.shared().tx.iter().map(|t| t.by_name(name)).sum() };
    let first: Vec<u32> = (0..16).collect();
    let second: Vec<u32> = (0..8).chain(20..28).collect();
    let mut j = 0i64;
    let mut blocks = 0u64;
    let mut send = |publ: &mut oe_testkit::sim::Publisher, ch: &[u32], events: bool| {
        if events {
            publ.send_ttl("example_data", 100, j, 1, 1, 0b10, None)
                .unwrap();
            publ.send_spike("example_data", "Tetrode 1", j, 1, 4, 2, &[1.0; 4], None)
                .unwrap();
        }
        send_block(publ, ch, j, 100);
        j += 100;
        blocks += 1;
        blocks
    };
    // Warm-up: both channel sets and every kind of message once.
    for k in 0..20 {
        let ch = if k < 10 { &second } else { &first };
        let n = send(&mut publ, ch, k % 5 == 0);
        // A block goes out when the next one starts; a channel-set change costs two more
        // (the block cut short and the one the new set is learned from).
        wait_emitted(&eng, n.saturating_sub(4));
    }
    let before = |name: &str| tx_sum(name);
    let (ttl0, spikes0, notices0, status0) = (
        before("ttl_sent"),
        before("spikes_sent"),
        before("notices_sent"),
        before("status_sent"),
    );
    ARMED.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    let mut changed = false;
    let mut k = 0u32;
    while t0.elapsed() < Duration::from_millis(2100) {
        let ch = if t0.elapsed() < Duration::from_millis(1000) {
            &first
        } else {
            changed = true;
            &second
        };
        k += 1;
        // Each block waits for the bridge: paced by its progress, not by a clock.
        let n = send(&mut publ, ch, k.is_multiple_of(4));
        wait_emitted(&eng, n.saturating_sub(4));
    }
    let n = send(&mut publ, &second, true);
    wait_emitted(&eng, n - 4);
    ARMED.store(false, Ordering::SeqCst);
    let allocs = HOT_ALLOCS.swap(0, Ordering::SeqCst);
    let during = (
        tx_sum("ttl_sent") - ttl0,
        tx_sum("spikes_sent") - spikes0,
        tx_sum("notices_sent") - notices0,
        tx_sum("status_sent") - status0,
    );
    let r = eng.shutdown();
    stop.store(true, Ordering::SeqCst);
    let seen = drainer.join().unwrap();
    assert!(!r.failed);
    assert!(changed, "the channel set did not change while measured");
    let (ttl, spikes, notices, status) = during;
    assert!(
        ttl >= 2 && spikes >= 2,
        "events while measured: ttl {ttl}, spikes {spikes}"
    );
    assert!(
        notices >= 2,
        "a notice per output for the change: {notices}"
    );
    assert!(status >= 2, "status messages while measured: {status}");
    // Addresses sent on every row (a rare message could be lost by a starved receiver; the
    // counters above vouch for those).
    for a in [
        "/data/example_data/CH1",
        "/data/example_data/Fz",
        "/data/example_data/CH21",
        "/data/sample/part",
    ] {
        assert!(seen.contains(a), "{a} never arrived: {seen:?}");
    }
    assert_eq!(
        allocs, 0,
        "hot threads allocated {allocs} times with events, status, notices and a channel-set change"
    );
}

#[test]
fn the_counter_sees_allocations_on_a_hot_thread() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let h = std::thread::spawn(|| {
        zmq2osc::hot::mark_current_thread_hot();
        ARMED.store(true, Ordering::SeqCst);
        let v = std::hint::black_box(vec![1u8; 10]);
        ARMED.store(false, Ordering::SeqCst);
        v.len()
    });
    assert_eq!(h.join().unwrap(), 10);
    assert!(HOT_ALLOCS.swap(0, Ordering::SeqCst) >= 1);
}

/// The DSP outputs (`downsampling_method: "lowpass"`, `"format": "features"`) in steady
/// state, with a change to a larger channel set never seen before while measured: the filters
/// and the feature extractor are built at the first frame for every slot the output can
/// have, so the change only resets them.
#[test]
fn lowpass_and_features_with_an_unseen_channel_set_do_not_allocate() {
    let _serial = serial();
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    let text = format!(
        r#"{{"outputs": [
            {{"host": "127.0.0.1", "port": {oport}, "base_address": "/lp", "downsampling_factor": 30,
              "downsampling_method": "lowpass", "sample_number": true}},
            {{"host": "127.0.0.1", "port": {oport}, "format": "features", "sample_number": true,
              "features": ["rms", "band:alpha", "band:8-12", "mua_rate"], "normalize": "zscore"}},
            {{"host": "127.0.0.1", "port": {oport}, "format": "features", "features": ["rms", "band:alpha"],
              "address": "{{base}}/pc/{{feature}}/{{name}}"}}]}}"#
    );
    let (parsed, warnings) = zmq2osc::config::Config::from_json_str(&text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    cfg.outputs = parsed.outputs;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let drainer = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut seen = std::collections::BTreeMap::<String, u64>::new();
        while !s2.load(Ordering::Relaxed) {
            if let Ok(n) = rx.recv(&mut buf) {
                *seen.entry(address_of(&buf[..n])).or_default() += 1;
            }
        }
        seen
    });
    // Every output keeps up (the features output is the slower one in a debug build).
    let wait_both = |eng: &zmq2osc::engine::Engine, n: u64| {
        let deadline = Instant::now() + WAIT;
        let done = |i: usize| {
            let t = &eng.shared().tx[i];
            t.by_name("frames")
                + t.by_name("dropped_oldest")
                + eng.shared().rx_out[i].by_name("dropped_newest")
        };
        let all = || (0..3).all(|i| done(i) >= n);
        while !all() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(all(), "bridge did not process {n} frames");
    };
    let first: Vec<u32> = (0..16).collect();
    let second: Vec<u32> = (0..8).chain(20..36).collect();
    let mut j = 0i64;
    let mut blocks = 0u64;
    let mut send = |publ: &mut oe_testkit::sim::Publisher, ch: &[u32]| {
        send_block(publ, ch, j, 100);
        j += 100;
        blocks += 1;
        blocks
    };
    // Warm-up: the first channel set only (the objects are built at its first frame).
    for _ in 0..40 {
        let n = send(&mut publ, &first);
        wait_both(&eng, n.saturating_sub(4));
    }
    let rows = |name: &str| -> u64 { eng.shared().tx[1].by_name(name) };
    let lp_rows = || eng.shared().tx[0].by_name("rows");
    ARMED.store(true, Ordering::SeqCst);
    // 0.5 s of signal on the first set, then 1 s on the second (unseen, larger) set.
    for k in 0..450 {
        let ch = if k < 150 { &first } else { &second };
        let n = send(&mut publ, ch);
        wait_both(&eng, n.saturating_sub(4));
    }
    let (feat_ticks, lp) = (rows("rows"), lp_rows());
    let n = send(&mut publ, &second);
    wait_both(&eng, n - 4);
    ARMED.store(false, Ordering::SeqCst);
    let allocs = HOT_ALLOCS.swap(0, Ordering::SeqCst);
    let r = eng.shutdown();
    stop.store(true, Ordering::SeqCst);
    let seen = drainer.join().unwrap();
    assert!(!r.failed);
    // 1.5 s + warm-up: ~90 feature ticks and ~1600 lowpass rows were made.
    assert!(
        feat_ticks >= 60,
        "feature ticks: {feat_ticks} ({:?})",
        r.tx[1]
    );
    assert!(lp >= 1000, "lowpass rows: {lp}");
    for a in [
        "/lp/sample",
        "/data/features/rms",
        "/data/features/band_alpha",
        "/data/features/band_8-12",
        "/data/features/mua_rate",
        // Per-channel feature addresses, built at the change for the new channels.
        "/data/pc/rms/CH21",
        "/data/pc/band_alpha/CH36",
    ] {
        assert!(seen.contains_key(a), "{a} never arrived: {seen:?}");
    }
    assert_eq!(
        allocs, 0,
        "hot threads allocated {allocs} times with lowpass, features and a channel-set change"
    );
}
