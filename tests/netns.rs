//! Multicast and broadcast outputs, actually received, inside a network namespace whose one
//! interface is loopback (never on the machine's real interfaces).
//!
//! The outer test re-runs this test binary under `unshare -rn` (a new user + network namespace),
//! brings `lo` up with multicast on and a route for 224.0.0.0/4 on it, and runs the inner test
//! there. The inner test refuses to run anywhere else: it checks the marker variable and that
//! `lo` is the only interface it can see. A missing `unshare` or `ip` fails the test, never skips.
//!
//! Inside, the bridge (`--simulate 8`, F = 30, decimate) sends one output to the group 239.255.0.1 and one
//! to the namespace's broadcast address 127.255.255.255. Two sockets joined to the group each
//! get every datagram of the multicast output, and a socket bound to the wildcard address gets
//! every datagram of the broadcast output; the values are checked row by row.

mod common;

use rosc::{OscPacket, OscType};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 0, 1);
const BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);
const CHANNELS: usize = 8;
const F: f32 = 30.0;

#[test]
fn multicast_and_broadcast_outputs_are_received_in_a_loopback_namespace() {
    common::run_in_loopback_namespace("inner_multicast_and_broadcast");
}

/// A socket on `port` that receives the group's datagrams (several may share the port).
fn group_member(port: u16) -> UdpSocket {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    s.set_reuse_address(true).unwrap();
    s.set_recv_buffer_size(8 << 20).unwrap();
    s.bind(&SocketAddrV4::new(GROUP, port).into()).unwrap();
    s.join_multicast_v4(&GROUP, &Ipv4Addr::LOCALHOST).unwrap();
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// A socket on the wildcard address (receives broadcasts to `port`).
fn wildcard(port: u16) -> UdpSocket {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    s.set_recv_buffer_size(8 << 20).unwrap();
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
        .unwrap();
    let s: UdpSocket = s.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

/// Every `/data/sample` row a socket gets until it has been quiet for a while after `stop`.
fn drain(s: &UdpSocket, stop: &std::sync::atomic::AtomicBool) -> Vec<Vec<f32>> {
    let mut rows = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut quiet_since = Instant::now();
    let start = Instant::now();
    loop {
        match s.recv(&mut buf) {
            Ok(n) => {
                quiet_since = Instant::now();
                let (_, p) = rosc::decoder::decode_udp(&buf[..n]).expect("OSC");
                let OscPacket::Message(m) = p else {
                    panic!("unexpected bundle")
                };
                assert_eq!(m.addr, "/data/sample");
                rows.push(
                    m.args
                        .iter()
                        .map(|a| match a {
                            OscType::Float(f) => *f,
                            other => panic!("not a float: {other:?}"),
                        })
                        .collect(),
                );
            }
            Err(_) => {
                if stop.load(std::sync::atomic::Ordering::Acquire)
                    && quiet_since.elapsed() > Duration::from_millis(500)
                {
                    return rows;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "receiver ran 60 s"
                );
            }
        }
    }
}

/// Rows of the simulator's pattern decimated by F (exact integers in float32): channel c holds
/// c·wrap + t, the same t for all channels of a row, and t advances by F per row (2 s stay far
/// below the wrap).
fn check_rows(what: &str, rows: &[Vec<f32>]) {
    assert!(!rows.is_empty(), "{what}: nothing received");
    for r in rows {
        assert_eq!(r.len(), CHANNELS, "{what}: row of {} floats", r.len());
    }
    let t = |r: &Vec<f32>| r[0];
    // The wrap is the distance between two channels' values in the same row.
    let wrap = rows[0][1] - rows[0][0];
    assert!(wrap > 0.0, "{what}: bad first row {:?}", rows[0]);
    for (i, r) in rows.iter().enumerate() {
        for (c, v) in r.iter().enumerate() {
            assert_eq!(
                *v,
                t(r) + c as f32 * wrap,
                "{what}: row {i} channel {c}: {r:?}"
            );
        }
        if i > 0 {
            assert_eq!(
                t(r) - t(&rows[i - 1]),
                F,
                "{what}: row {i} does not follow row {}",
                i - 1
            );
        }
    }
}

#[test]
#[ignore = "runs only inside the namespace the test above makes"]
fn inner_multicast_and_broadcast() {
    common::assert_in_loopback_namespace();

    let mport = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bport = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let zport = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = group_member(mport);
    let b = group_member(mport);
    let c = wildcard(bport);

    let dir = common::tempdir("netns");
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"outputs": [
                {{"name": "group", "host": "{GROUP}", "port": {mport}, "multicast_ttl": 1,
                 "downsampling_method": "decimate"}},
                {{"name": "bcast", "host": "{BROADCAST}", "port": {bport},
                 "downsampling_method": "decimate"}}
            ]}}"#
        ),
    )
    .unwrap();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let (ra, rb, rc, final_line) = std::thread::scope(|s| {
        let ha = s.spawn(|| drain(&a, &stop));
        let hb = s.spawn(|| drain(&b, &stop));
        let hc = s.spawn(|| drain(&c, &stop));
        let out = common::bridge_bin()
            .args(["-c", cfg.to_str().unwrap()])
            .args(["--simulate", &CHANNELS.to_string(), "--seconds", "2"])
            .args(["--no-tui", "--zmq-port", &zport.to_string()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        stop.store(true, std::sync::atomic::Ordering::Release);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "bridge failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fin = stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["final"] == true)
            .unwrap_or_else(|| panic!("no final JSON line in {stdout}"));
        (
            ha.join().unwrap(),
            hb.join().unwrap(),
            hc.join().unwrap(),
            fin,
        )
    });

    // Both outputs carry the same rows in the same format, so each sends half of the total.
    let sent = final_line["tx"]["sent"].as_u64().unwrap();
    assert_eq!(final_line["tx"]["send_dropped"], 0, "{final_line}");
    println!(
        "sent {sent} in all: group members got {} and {}, broadcast receiver {}",
        ra.len(),
        rb.len(),
        rc.len()
    );
    assert!(sent > 2000, "outputs sent only {sent}");
    assert_eq!(
        sent % 2,
        0,
        "the two outputs sent different counts: {final_line}"
    );
    assert_eq!(ra.len() as u64, sent / 2, "first group member");
    assert_eq!(rb.len() as u64, sent / 2, "second group member");
    assert_eq!(rc.len() as u64, sent / 2, "broadcast receiver");
    assert_eq!(ra, rb);
    check_rows("multicast", &ra);
    check_rows("broadcast", &rc);
}
