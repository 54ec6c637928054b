//! The Open Ephys GUI quits and comes back, again and again: the bridge re-learns the stream,
//! resumes output, its heartbeat recovers, and its file descriptors and threads stay constant
//! (the original leaked a ZMQ context and socket per reconnect). Alone in its own test binary
//! so no other test's sockets disturb the counts.

mod common;

use common::*;
use oe_testkit::sim::Publisher;
use std::time::{Duration, Instant};

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// Binds a publisher (with heartbeat replies) on `port`, retrying while the old one's port is
/// still being released.
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

/// Publishes blocks until a datagram of this round (value ≥ the round's first sample)
/// arrives; returns how long that took.
fn resume(publ: &mut Publisher, rx: &std::net::UdpSocket, j: &mut i64) -> Duration {
    let t = Instant::now();
    let start = *j;
    rx.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
    let mut buf = [0u8; 2048];
    while t.elapsed() < WAIT {
        send_block(publ, &[0, 1, 2], *j, 64);
        *j += 64;
        while let Ok(n) = rx.recv(&mut buf) {
            if let Ok((_, rosc::OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n]) {
                if floats(&m.args).first().is_some_and(|&v| v >= start as f32) {
                    return t.elapsed();
                }
            }
        }
    }
    panic!("output did not resume");
}

#[cfg(target_os = "linux")]
#[test]
fn gui_restarts_leak_nothing_and_output_resumes() {
    let ctx = zmq::Context::new();
    let (first, zport) = publisher(&ctx);
    drop(first);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    cfg.zmq.heartbeat_timeout = 0.05;
    cfg.zmq.not_responding_timeout = 0.3;
    let eng = start(&cfg);
    let mut j = 0i64;
    let mut baseline = None;
    let mut worst = Duration::ZERO;
    for round in 0..6 {
        let mut publ = rebind(&ctx, zport);
        let took = resume(&mut publ, &rx, &mut j);
        worst = worst.max(took);
        // Stream a while, as an acquisition does (message_num grows well past where the next
        // "GUI" will start, so its reset is recognisable).
        for _ in 0..20 {
            send_block(&mut publ, &[0, 1, 2], j, 64);
            j += 64;
        }
        // Heartbeat answered by this incarnation of the "GUI".
        let deadline = Instant::now() + WAIT;
        while publ.heartbeats_answered() == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            publ.heartbeats_answered() > 0,
            "round {round}: no heartbeat reached the new GUI"
        );
        drop(publ);
        if round == 1 {
            // Baseline once the counts stop moving (libzmq closes sockets asynchronously).
            let mut last = (fds(), threads());
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                std::thread::sleep(Duration::from_millis(50));
                let now = (fds(), threads());
                if now == last || Instant::now() > deadline {
                    break;
                }
                last = now;
            }
            baseline = Some(last);
        }
        if round > 1 {
            // libzmq closes sockets asynchronously: wait (bounded) for the counts to settle
            // back; a leak never does.
            let (f0, t0) = baseline.unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while (fds() > f0 || threads() != t0) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let (f, t) = (fds(), threads());
            assert!(f <= f0, "round {round}: {f} fds, {f0} after round 1");
            assert_eq!(t, t0, "round {round}: threads changed");
        }
    }
    eprintln!("slowest resume after a GUI restart: {worst:?}");
    let r = eng.shutdown();
    assert!(!r.failed);
    let get = |n: &str| r.rx.iter().find(|(k, _)| *k == n).unwrap().1;
    assert!(
        get("restarts") >= 5,
        "each new GUI restarts message_num: {:?}",
        r.rx
    );
    assert!(r.ledger().1, "{}", r.ledger().0);
}
