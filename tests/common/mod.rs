//! Shared helpers for the integration tests: a real ZMQ publisher on a free port pair, the
//! bridge engine pointed at it, and a real UDP receiver that decodes with rosc.
#![allow(dead_code)]

use oe_testkit::sim::Publisher;
use rosc::{OscPacket, OscType};
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use zmq2osc::config::Config;
use zmq2osc::engine::{Engine, EngineOptions, PinRequest};

/// Upper bound for any wait in a test.
pub const WAIT: Duration = Duration::from_secs(20);

/// A publisher bound on a random free port (retrying until the port and port+1 are free).
pub fn publisher(ctx: &zmq::Context) -> (Publisher, u16) {
    let mut seed = std::process::id() as u64 ^ (Instant::now().elapsed().as_nanos() as u64);
    for _ in 0..200 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 20_000 + ((seed >> 33) % 40_000) as u16;
        // The heartbeat port (port+1) must be free too, so the bridge's REQ finds nobody
        // else's REP there.
        let Ok(probe) = std::net::TcpListener::bind(("127.0.0.1", port + 1)) else {
            continue;
        };
        drop(probe);
        // Tests publish as fast as they can: keep ZeroMQ from dropping at the publisher.
        if let Ok(p) = Publisher::bind_with_hwm(ctx, "127.0.0.1", port, 1_000_000) {
            return (p, port);
        }
    }
    panic!("no free port pair found");
}

/// A UDP receiver on a free port, with a big buffer and a read timeout.
pub fn receiver() -> (UdpSocket, u16) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sock = socket2::SockRef::from(&s);
    let _ = sock.set_recv_buffer_size(8 << 20);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// A config pointing at the publisher and the receiver, pinning off.
pub fn config(zmq_port: u16, osc_port: u16) -> Config {
    let mut c = Config::default();
    c.zmq.host = "127.0.0.1".into();
    c.zmq.data_port = zmq_port;
    c.osc.port = osc_port;
    c.performance.pin_threads = false;
    c.performance.max_channels = 64;
    c.performance.max_block_samples = 256;
    c.performance.osc_queue_max_size = 16;
    c
}

/// Starts the engine quietly, without pinning.
pub fn start(cfg: &Config) -> Engine {
    let opts = EngineOptions {
        pin: PinRequest::Off,
        verbose: false,
        ..Default::default()
    };
    Engine::start(cfg, &opts).unwrap()
}

/// One decoded OSC message.
pub type Msg = (String, Vec<OscType>);

/// Receives until `pred(all messages so far)` holds or the bound passes.
pub fn recv_until(s: &UdpSocket, pred: impl Fn(&[Msg]) -> bool) -> Vec<Msg> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !pred(&out) && Instant::now() < deadline {
        if let Ok(n) = s.recv(&mut buf) {
            match rosc::decoder::decode_udp(&buf[..n]) {
                Ok((_, OscPacket::Message(m))) => out.push((m.addr, m.args)),
                other => panic!("not an OSC message: {other:?}"),
            }
        }
    }
    out
}

/// Float arguments of a message.
pub fn floats(args: &[OscType]) -> Vec<f32> {
    args.iter()
        .filter_map(|a| match a {
            OscType::Float(x) => Some(*x),
            _ => None,
        })
        .collect()
}

/// Sends one block: for each channel, values `ch·1000 + j` (j = absolute sample index).
pub fn send_block(p: &mut Publisher, channels: &[u32], sample_num: i64, n: usize) {
    send_block_on(p, "example_data", 30000.0, channels, sample_num, n);
}

/// Like [`send_block`] on a given stream and rate.
pub fn send_block_on(
    p: &mut Publisher,
    stream: &str,
    rate: f64,
    channels: &[u32],
    sample_num: i64,
    n: usize,
) {
    for &c in channels {
        let v: Vec<f32> = (0..n as i64)
            .map(|k| (c as i64 * 1000 + sample_num + k) as f32)
            .collect();
        let name = format!("CH{}", c + 1);
        p.send_data(
            stream,
            c,
            Some(&name),
            sample_num,
            rate,
            &v,
            Some(oe_testkit::sim::now_ms()),
        )
        .unwrap();
    }
}

/// The bridge binary built for these tests.
pub fn bridge_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_openephys-zmq2osc"))
}

/// A fresh, empty temporary directory for one test.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("z2o-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free TCP port whose +1 is free too (ZMQ data + heartbeat), and a free UDP port.
pub fn free_ports() -> (u16, u16) {
    for _ in 0..100 {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            return (p, u.local_addr().unwrap().port());
        }
    }
    panic!("no free ports");
}

/// Marker variable set for a test re-run inside a loopback-only network namespace.
pub const NETNS_MARKER: &str = "ZMQ2OSC_TEST_IN_NETNS";

/// Re-runs the ignored test `inner` of this test binary inside a new user + network namespace
/// (`unshare -rn`) whose one interface is loopback, up, with multicast on and a route for
/// 224.0.0.0/4; fails (never skips) when that cannot be done or the inner test fails.
pub fn run_in_loopback_namespace(inner: &str) {
    let me = std::env::current_exe().unwrap();
    let setup = "set -e; ip link set lo up; ip link set lo multicast on; \
                 ip route add 224.0.0.0/4 dev lo; exec \"$0\" \"$@\"";
    let out = std::process::Command::new("unshare")
        .args(["-rn", "sh", "-c", setup])
        .arg(&me)
        .args([
            "--exact",
            inner,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NETNS_MARKER, "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux) for the namespace: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "inner test failed in the namespace ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The inner test really ran (the filter matched one test and it passed).
    assert!(
        stdout.contains("1 passed"),
        "inner test did not run:\n{stdout}"
    );
}

/// For the inner test: panics unless it runs in the namespace [`run_in_loopback_namespace`]
/// made (the marker is set and loopback is the only interface, from /proc/net/dev, which is
/// per namespace where /sys may still show the host's).
pub fn assert_in_loopback_namespace() {
    assert_eq!(
        std::env::var(NETNS_MARKER).as_deref(),
        Ok("1"),
        "this test multicasts: run it only through its outer test"
    );
    let ifs: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .collect();
    assert_eq!(ifs, ["lo"], "not in a loopback-only namespace");
}
