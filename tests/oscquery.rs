//! The OSCQuery server: its HTTP answers read with a plain HTTP client and a JSON parser, its
//! bounds against bad clients, and its mDNS advertisement seen by an independent mDNS
//! implementation (python-zeroconf) inside a loopback-only network namespace.

mod common;

use serde_json::Value;
use std::io::BufRead;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use zmq2osc::oscquery::namespace::{HostInfo, Method, Snapshot};
use zmq2osc::oscquery::{Options, OscQuery};

fn snapshot(channels: usize) -> Snapshot {
    Snapshot {
        host: HostInfo {
            name: "test bridge".into(),
            osc_ip: "127.0.0.1".into(),
            osc_port: 10000,
        },
        description: "test".into(),
        methods: vec![Method {
            path: "/data/sample".into(),
            type_tag: "f".repeat(channels),
            description: format!("{channels} channels"),
        }],
    }
}

fn start(mdns: bool) -> OscQuery {
    OscQuery::start(
        &Options {
            bind: "127.0.0.1:0".parse().unwrap(),
            mdns,
            name: "zmq2osc-test".into(),
        },
        snapshot(4),
    )
    .unwrap()
}

/// Sends `raw` and returns (status, headers, body) of the answer.
fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn get(addr: SocketAddr, target: &str) -> (u16, Value) {
    let (st, head, body) = exchange(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    if st == 200 {
        assert!(head.contains("Content-Type: application/json"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
    }
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap()
    };
    (st, v)
}

#[test]
fn namespace_host_info_and_updates_over_http() {
    let q = start(false);
    let a = q.local_addr();
    let (st, v) = get(a, "/");
    assert_eq!(st, 200);
    let s = &v["CONTENTS"]["data"]["CONTENTS"]["sample"];
    assert_eq!(s["FULL_PATH"], "/data/sample");
    assert_eq!(s["TYPE"], "ffff");
    assert_eq!(s["ACCESS"], 1);
    assert_eq!(get(a, "/data/sample?TYPE").1["TYPE"], "ffff");
    let (st, h) = get(a, "/?HOST_INFO");
    assert_eq!(st, 200);
    assert_eq!(h["NAME"], "test bridge");
    assert_eq!(h["OSC_PORT"], 10000);
    assert_eq!(h["OSC_TRANSPORT"], "UDP");
    assert_eq!(get(a, "/nothing").0, 404);
    assert_eq!(get(a, "/data?BOGUS").0, 400);
    // The namespace follows what the controller hands over.
    q.update(snapshot(8));
    assert_eq!(get(a, "/data/sample?TYPE").1["TYPE"], "ffffffff");
    let (ok, rejected) = q.counts();
    assert_eq!((ok, rejected), (4, 2));
}

#[test]
fn bad_clients_get_4xx_and_never_stall_the_server() {
    let q = start(false);
    let a = q.local_addr();
    assert_eq!(exchange(a, b"POST / HTTP/1.1\r\n\r\n").0, 405);
    assert_eq!(exchange(a, b"GET / SPDY/9\r\n\r\n").0, 400);
    assert_eq!(exchange(a, b"\x00\x01garbage\r\n\r\n").0, 400);
    // A head larger than the bound.
    let mut big = b"GET /".to_vec();
    big.resize(20_000, b'a');
    big.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&big); // the server may close before reading it all
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // A client that sends half a request and waits: cut off after the request timeout...
    let t = Instant::now();
    let mut slow = TcpStream::connect(a).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"));
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    // ...and the server answers normally afterwards.
    assert_eq!(get(a, "/").0, 200);
}

/// Needs python3 with zeroconf, so it is ignored in the README's test command and run by
/// `.ci/run` (which installs zeroconf) as
/// `cargo test --test oscquery -- --ignored --exact mdns_advertisement_is_seen_by_python_zeroconf_in_a_loopback_namespace`.
#[test]
#[ignore = "needs python3 with zeroconf (python3 -m pip install zeroconf)"]
fn mdns_advertisement_is_seen_by_python_zeroconf_in_a_loopback_namespace() {
    common::run_in_loopback_namespace("inner_mdns");
}

#[test]
#[ignore = "runs only inside the namespace the test above makes"]
fn inner_mdns() {
    common::assert_in_loopback_namespace();

    let q = start(true);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oscquery/browse.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("20")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 (with zeroconf installed): {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python-zeroconf found no _oscjson._tcp service: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    println!("zeroconf saw {v}");
    assert_eq!(v["name"], "zmq2osc-test._oscjson._tcp.local.");
    assert_eq!(v["port"], q.local_addr().port());
    assert_eq!(v["addresses"], serde_json::json!(["127.0.0.1"]));
    // What it advertises answers OSCQuery.
    let addr: SocketAddr = format!("127.0.0.1:{}", v["port"]).parse().unwrap();
    assert_eq!(get(addr, "/data/sample?TYPE").1["TYPE"], "ffff");
}

/// The bridge itself (binary, `--oscquery-port 0`) fed by a publisher: the namespace shows
/// every output's addresses with their types, and follows a channel-set change and a rate
/// change.
#[test]
fn the_bridge_serves_its_outputs_and_follows_layout_changes() {
    let ctx = zmq::Context::new();
    let (mut publisher, zport) = common::publisher(&ctx);
    let (_rx, oport) = common::receiver();
    let dir = common::tempdir("oscquery");
    let cfg = dir.join("config.json");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"zmq": {{"host": "127.0.0.1", "data_port": {zport}}},
                "performance": {{"pin_threads": false, "max_channels": 64}},
                "oscquery": {{"port": 0}},
                "outputs": [
                  {{"name": "rows", "host": "127.0.0.1", "port": {oport}, "events": true}},
                  {{"name": "each", "host": "127.0.0.1", "port": {oport}, "format": "per_channel",
                    "address": "{{base}}/{{stream}}/{{name}}", "downsampling_factor": 30}}
                ]}}"#
        ),
    )
    .unwrap();
    let mut child = common::bridge_bin()
        .args(["-c", cfg.to_str().unwrap(), "--no-tui", "--seconds", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let _guard = Kill(child);
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let url = loop {
        let l = lines
            .recv_timeout(common::WAIT)
            .expect("no oscquery line from the bridge");
        if let Some(rest) = l.strip_prefix("oscquery: http://") {
            break rest.split('/').next().unwrap().to_string();
        }
    };
    let addr: SocketAddr = url.parse().unwrap();

    // Before any data: the layout-independent address only.
    let (st, v) = get(addr, "/");
    assert_eq!(st, 200);
    assert_eq!(v["CONTENTS"]["data"]["CONTENTS"]["ttl"]["TYPE"], "iiiiii");
    assert!(v["CONTENTS"]["data"]["CONTENTS"].get("sample").is_none());

    // Feeds blocks of `chans` at `rate` until `done(namespace)` holds.
    let mut sample_num = 0i64;
    let mut feed_until = |chans: &[u32], rate: f64, done: &dyn Fn(&Value) -> bool| {
        let t = Instant::now();
        loop {
            common::send_block_on(&mut publisher, "probe", rate, chans, sample_num, 64);
            sample_num += 64;
            let (st, v) = get(addr, "/");
            assert_eq!(st, 200);
            if done(&v) {
                return v;
            }
            assert!(
                t.elapsed() < common::WAIT,
                "namespace never became right: {v}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let data = |v: &Value| v["CONTENTS"]["data"].clone();
    let v = feed_until(&[0, 1, 2, 3], 30000.0, &|v| {
        data(v)["CONTENTS"]["sample"]["TYPE"] == "ffff"
    });
    let d = data(&v);
    assert_eq!(d["CONTENTS"]["sample"]["FULL_PATH"], "/data/sample");
    assert_eq!(d["CONTENTS"]["sample"]["ACCESS"], 1);
    let desc = d["CONTENTS"]["sample"]["DESCRIPTION"].as_str().unwrap();
    assert!(
        desc.contains("4 channels") && desc.contains("30000 Hz"),
        "{desc}"
    );
    // The per-channel output: one method per channel, named by the plugin's names.
    let probe = &d["CONTENTS"]["probe"]["CONTENTS"];
    for n in ["CH1", "CH2", "CH3", "CH4"] {
        assert_eq!(probe[n]["TYPE"], "f", "{probe}");
        assert_eq!(probe[n]["FULL_PATH"], format!("/data/probe/{n}"));
    }
    assert_eq!(get(addr, "/data/probe/CH2?TYPE").1["TYPE"], "f");

    // A live channel-set change: six channels.
    let v = feed_until(&[0, 1, 2, 3, 4, 5], 30000.0, &|v| {
        data(v)["CONTENTS"]["sample"]["TYPE"] == "ffffff"
    });
    assert_eq!(
        data(&v)["CONTENTS"]["probe"]["CONTENTS"]["CH6"]["TYPE"],
        "f"
    );
    // A rate change.
    let v = feed_until(&[0, 1, 2, 3, 4, 5], 20000.0, &|v| {
        data(v)["CONTENTS"]["sample"]["DESCRIPTION"]
            .as_str()
            .is_some_and(|d| d.contains("20000 Hz"))
    });
    assert!(v["DESCRIPTION"].as_str().unwrap().contains("20000"), "{v}");
    // HOST_INFO names the first output's destination.
    let h = get(addr, "/?HOST_INFO").1;
    assert_eq!(h["OSC_PORT"], oport);
    assert_eq!(h["OSC_IP"], "127.0.0.1");
}

/// A client that asks for a large namespace and reads it a trickle at a time holds the server
/// for at most the request + reply bound (each write making progress does not extend it): the
/// next client is answered.
#[test]
fn a_client_that_reads_slowly_is_cut_off() {
    let big = Snapshot {
        methods: (0..40_000)
            .map(|i| Method {
                path: format!("/data/m{i}"),
                type_tag: "f".repeat(64),
                description: "x".repeat(200),
            })
            .collect(),
        ..snapshot(4)
    };
    let q = OscQuery::start(
        &Options {
            bind: "127.0.0.1:0".parse().unwrap(),
            mdns: false,
            name: "big".into(),
        },
        big,
    )
    .unwrap();
    let a = q.local_addr();
    let mut stuck = TcpStream::connect(a).unwrap();
    stuck.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    // 5 KiB a second from a reply of megabytes: each of the server's writes makes a little
    // progress, for minutes, unless the server bounds the whole reply.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d2 = done.clone();
    let trickle = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end && !d2.load(std::sync::atomic::Ordering::Relaxed) {
            match stuck.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let (st, v) = get(a, "/data/m7?TYPE");
    assert_eq!(st, 200);
    assert_eq!(v["TYPE"], "f".repeat(64));
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    trickle.join().unwrap();
}
