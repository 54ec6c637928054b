//! Overload and hostile peers: the books balance under every queue policy, and a message
//! above the size cap costs a counted reconnect, not the bridge.

mod common;

use common::*;
use std::time::{Duration, Instant};
use zmq2osc::config::OverflowStrategy;

/// Floods a deliberately slow output (per-channel mode: 16 datagrams per sample) so the queue
/// overflows, then checks that every block is accounted for exactly once.
fn overload(policy: OverflowStrategy) -> zmq2osc::engine::Report {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    cfg.osc.send_individual_channels = true;
    cfg.performance.osc_queue_max_size = 2;
    cfg.performance.osc_queue_overflow_strategy = policy;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    let ch: Vec<u32> = (0..16).collect();
    for b in 0..300 {
        send_block(&mut publ, &ch, b * 256, 256);
    }
    // Wait until the bridge has seen the last block (or the policy made it drop upstream).
    let deadline = Instant::now() + WAIT;
    let total = 300 * 16;
    while Instant::now() < deadline {
        let r = &eng.shared().rx;
        if r.by_name("messages") + r.by_name("upstream_missing_msgs") >= total {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = eng.shutdown();
    drop(rx);
    r
}

fn get(v: &[(&'static str, u64)], n: &str) -> u64 {
    v.iter().find(|(k, _)| *k == n).map_or(0, |x| x.1)
}

#[test]
fn overload_drop_oldest_books_balance() {
    let r = overload(OverflowStrategy::DropOldest);
    let (text, ok) = r.ledger();
    assert!(ok, "{text}");
    assert!(
        get(&r.tx[0], "dropped_oldest") > 0,
        "no overload happened:\n{text}"
    );
    assert!(!r.failed);
}

#[test]
fn overload_drop_newest_books_balance() {
    let r = overload(OverflowStrategy::DropNewest);
    let (text, ok) = r.ledger();
    assert!(ok, "{text}");
    assert!(
        get(&r.rx, "dropped_newest") > 0,
        "no overload happened:\n{text}"
    );
    assert_eq!(get(&r.tx[0], "dropped_oldest"), 0);
}

#[test]
fn overload_block_moves_loss_upstream_and_books_balance() {
    let r = overload(OverflowStrategy::Block);
    let (text, ok) = r.ledger();
    assert!(ok, "{text}");
    assert_eq!(get(&r.rx, "dropped_newest"), 0, "{text}");
    assert_eq!(get(&r.tx[0], "dropped_oldest"), 0, "{text}");
    assert!(
        get(&r.rx, "block_waits") > 0,
        "the receiver never had to wait:\n{text}"
    );
}

#[test]
fn oversize_message_costs_a_counted_reconnect_only() {
    let ctx = zmq::Context::new();
    let (mut publ, zport) = publisher(&ctx);
    let (rx, oport) = receiver();
    let mut cfg = config(zport, oport);
    cfg.osc.processing.downsampling_factor = 1;
    let eng = start(&cfg);
    publ.wait_for_subscriber(WAIT).unwrap();
    for b in 0..3 {
        send_block(&mut publ, &[0, 1], b * 4, 4);
    }
    let first = recv_until(&rx, |m| m.len() >= 8);
    assert_eq!(first.len(), 8);
    // 4 MiB frame: far above ZMQ_MAXMSGSIZE; libzmq drops the connection.
    let huge = vec![0u8; 4 << 20];
    publ.send_raw(&[b"DATA\0", b"{}", &huge]).unwrap();
    let deadline = Instant::now() + WAIT;
    while eng.shared().hb.by_name("data_disconnects") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(eng.shared().hb.by_name("data_disconnects") >= 1);
    // The SUB reconnects by itself: keep publishing until output comes back.
    let mut j = 12;
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.is_empty() && Instant::now() < deadline {
        send_block(&mut publ, &[0, 1], j, 4);
        j += 4;
        got = recv_until_for(&rx, Duration::from_millis(50));
    }
    assert!(!got.is_empty(), "no output after the reconnect");
    let r = eng.shutdown();
    assert!(!r.failed);
    assert!(r.ledger().1, "{}", r.ledger().0);
}

/// Receives whatever arrives within `d`.
fn recv_until_for(s: &std::net::UdpSocket, d: Duration) -> Vec<Msg> {
    let end = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    while Instant::now() < end {
        if let Ok(n) = s.recv(&mut buf) {
            if let Ok((_, rosc::OscPacket::Message(m))) = rosc::decoder::decode_udp(&buf[..n]) {
                out.push((m.addr, m.args));
            }
        }
    }
    out
}
