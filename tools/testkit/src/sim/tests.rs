use super::*;
use serde_json::Value;
use std::time::{Duration, Instant};

const EXAMPLE_18: &str = "{\r\n  \"message_num\": 1,\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"stream\": \"example_data\",\r\n    \"channel_num\": 0,\r\n    \"channel_name\": \"CH1\",\r\n    \"num_samples\": 4,\r\n    \"sample_num\": 30720,\r\n    \"sample_rate\": 30000.0\r\n  },\r\n  \"data_size\": 16,\r\n  \"timestamp\": 1753228800000\r\n}";

const EXAMPLE_15: &str = "{\r\n  \"message_num\": 7,\r\n  \"type\": \"event\",\r\n  \"content\": {\r\n    \"stream\": \"example_data\",\r\n    \"source_node\": 100,\r\n    \"type\": 3,\r\n    \"sample_num\": 31000\r\n  },\r\n  \"data_size\": 10,\r\n  \"timestamp\": 1753228800012\r\n}";

const RECV_TIMEOUT_MS: i32 = 5000;

#[test]
fn data_header_matches_spec_1_8() {
    assert_eq!(EXAMPLE_18.len(), 275);
    let h = juce_data_header(
        1,
        "example_data",
        0,
        Some("CH1"),
        4,
        30720,
        30000.0,
        Some(1_753_228_800_000),
    );
    assert_eq!(h, EXAMPLE_18);
    // Start of the hex dump of §1.8.
    assert_eq!(
        &h.as_bytes()[..8],
        &[0x7b, 0x0d, 0x0a, 0x20, 0x20, 0x22, 0x6d, 0x65]
    );
    assert_eq!(&h.as_bytes()[h.len() - 3..], &[0x0d, 0x0a, 0x7d]);
    // Optional keys absent.
    let h2 = juce_data_header(2, "s", 3, None, 1, 0, 30000.0, None);
    assert_eq!(
        h2,
        "{\r\n  \"message_num\": 2,\r\n  \"type\": \"data\",\r\n  \"content\": {\r\n    \"stream\": \"s\",\r\n    \"channel_num\": 3,\r\n    \"num_samples\": 1,\r\n    \"sample_num\": 0,\r\n    \"sample_rate\": 30000.0\r\n  },\r\n  \"data_size\": 4\r\n}"
    );
}

#[test]
fn event_header_matches_spec_1_5() {
    let h = juce_event_header(7, "example_data", 100, 31000, 10, Some(1_753_228_800_012));
    assert_eq!(h, EXAMPLE_15);
}

#[test]
fn spike_header_layout() {
    let h = juce_spike_header(
        9,
        "example_data",
        104,
        "Stereotrode 1",
        31005,
        2,
        40,
        0,
        &[-50.0, -50.0],
        Some(1_753_228_800_013),
    );
    let expected = "{\r\n  \"message_num\": 9,\r\n  \"type\": \"spike\",\r\n  \"spike\": {\r\n    \"stream\": \"example_data\",\r\n    \"source_node\": 104,\r\n    \"electrode\": \"Stereotrode 1\",\r\n    \"sample_num\": 31005,\r\n    \"num_channels\": 2,\r\n    \"num_samples\": 40,\r\n    \"sorted_id\": 0,\r\n    \"threshold\": [\r\n      -50.0,\r\n      -50.0\r\n    ]\r\n  },\r\n  \"timestamp\": 1753228800013\r\n}";
    assert_eq!(h, expected);
    let empty = juce_spike_header(1, "s", 1, "e", 0, 0, 0, 0, &[], None);
    assert!(empty.contains("\"threshold\": []\r\n  }\r\n}"));
}

#[test]
fn string_escaping() {
    let h = juce_event_header(1, "a\"b\\c\td\u{7}e\u{7f}f\u{e4}", 1, 0, 0, None);
    assert!(h.contains("\"stream\": \"a\\\"b\\\\c\\td\\u0007e\u{7f}f\u{e4}\""));
}

#[test]
fn juce_double_cases() {
    assert_eq!(juce_double(30000.0), "30000.0");
    assert_eq!(juce_double(-50.0), "-50.0");
    assert_eq!(juce_double(1.0e6), "1.0e6");
    assert_eq!(juce_double(0.5), "0.5");
    assert_eq!(juce_double(f64::from(-47.3f32)), "-47.299999237060547");
    assert_eq!(juce_double(f64::from(29999.9f32)), "29999.900390625");
    assert_eq!(juce_double(f64::NAN), "null");
    assert_eq!(juce_double(f64::INFINITY), "null");
    assert_eq!(juce_double(0.0), "0.0");
    assert_eq!(juce_double(1.5e-7), "1.5e-7");
    assert_eq!(juce_double(12_345_678_901.0), "1.2345678901e10");
    assert_eq!(juce_double(-2.5e6), "-2.5e6");
    assert_eq!(juce_double(0.025), "0.025");
    assert_eq!(juce_double(364.0), "364.0");
}

#[test]
fn pattern_and_signal_exact() {
    assert_eq!(pattern_wrap(255), 65536);
    assert_eq!(pattern_wrap(1023), 16384);
    assert_eq!(pattern_wrap(7), 1 << 21);
    assert_eq!(pattern_wrap(0), 1 << 24);
    assert_eq!(pattern_wrap(u32::MAX), 1);
    for &max in &[7u32, 255, 1023, 383] {
        let w = pattern_wrap(max);
        let sig = Signal::Pattern { wrap: w };
        assert!(u64::from(max) * u64::from(w) + u64::from(w) <= 1 << 24);
        for &ch in &[0, max / 2, max] {
            for &j in &[0i64, 1, i64::from(w) - 1, i64::from(w), 123_456_789, -1] {
                let v = signal_value(&sig, ch, j);
                let expect = i64::from(ch) * i64::from(w) + j.rem_euclid(i64::from(w));
                assert_eq!(v as i64, expect);
                assert_eq!(f64::from(v), expect as f64, "exact");
            }
        }
    }
    assert_eq!(signal_value(&Signal::Ramp, 1, 3), 1003.0);
    assert_eq!(signal_value(&Signal::Ramp, 0, 0), 0.0);
    assert_eq!(signal_value(&Signal::Sine, 0, 0), 0.0);
    // 10 Hz at 30 kHz: quarter period = 750 samples → peak 100.
    assert!((signal_value(&Signal::Sine, 0, 750) - 100.0).abs() < 1e-3);
    assert_eq!(BlockSize::gui_block(30000.0), 696);
    assert_eq!(BlockSize::gui_block(40000.0), 928);
}

#[test]
fn heartbeat_reply_rules() {
    assert_eq!(
        heartbeat_reply(br#"{"application":"x","uuid":"u","type":"heartbeat"}"#),
        REPLY_HEARTBEAT
    );
    assert_eq!(heartbeat_reply(br#"{"application":"x"}"#), REPLY_HEARTBEAT);
    assert_eq!(
        heartbeat_reply(br#"{"type":"event","event":{}}"#),
        REPLY_EVENT
    );
    assert_eq!(heartbeat_reply(b"not json"), REPLY_INVALID);
    assert_eq!(heartbeat_reply(b"{\"a\":"), REPLY_INVALID);
    // Leniency observed on GUI 1.0.1 (§6.6).
    assert_eq!(heartbeat_reply(b""), REPLY_HEARTBEAT);
    assert_eq!(
        heartbeat_reply(br#"{"type":"heartbeat"} trailing"#),
        REPLY_HEARTBEAT
    );
    assert_eq!(
        heartbeat_reply(br#"{"type":"heartbeat",}"#),
        REPLY_HEARTBEAT
    );
    assert_eq!(REPLY_HEARTBEAT.len(), 18);
    assert_eq!(REPLY_EVENT.len(), 24);
    assert_eq!(REPLY_INVALID.len(), 30);
}

// ---- helpers for socket tests -----------------------------------------------------------

fn sub(ctx: &zmq::Context, ep: &str) -> zmq::Socket {
    let s = ctx.socket(zmq::SUB).expect("sub socket");
    s.set_linger(0).expect("linger");
    s.set_rcvtimeo(RECV_TIMEOUT_MS).expect("rcvtimeo");
    s.set_subscribe(b"").expect("subscribe");
    s.connect(ep).expect("connect");
    s
}

fn recv_n(s: &zmq::Socket, n: usize) -> Vec<Vec<Vec<u8>>> {
    (0..n)
        .map(|i| {
            s.recv_multipart(0)
                .unwrap_or_else(|e| panic!("message {i}/{n}: {e}"))
        })
        .collect()
}

fn assert_no_more(s: &zmq::Socket) {
    s.set_rcvtimeo(100).expect("rcvtimeo");
    assert!(s.recv_multipart(0).is_err(), "unexpected extra message");
}

fn header(m: &[Vec<u8>]) -> Value {
    serde_json::from_slice(&m[1]).expect("header JSON")
}

fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn base_cfg() -> SimConfig {
    SimConfig {
        data_port: 0,
        channels: vec![0, 2, 5, 7],
        block: BlockSize::Fixed(16),
        realtime: false,
        max_blocks: Some(5),
        ..SimConfig::default()
    }
}

/// Runs a simulator to completion and returns (stats, messages).
fn run_all(cfg: SimConfig) -> (SimStats, Vec<Vec<Vec<u8>>>) {
    let ctx = zmq::Context::new();
    let sim = Simulator::start(cfg, &ctx, None).expect("start");
    let s = sub(&ctx, &sim.data_endpoint());
    let stats = sim.wait();
    assert!(stats.error.is_none(), "{:?}", stats.error);
    let n = (stats.data_messages + stats.event_messages) as usize;
    let msgs = recv_n(&s, n);
    assert_no_more(&s);
    (stats, msgs)
}

#[test]
fn end_to_end_stream() {
    let cfg = SimConfig {
        ttl_every_blocks: Some(2),
        ..base_cfg()
    };
    let wrap = pattern_wrap(7);
    let sig = cfg.signal.clone();
    let (stats, msgs) = run_all(cfg);
    assert_eq!(stats.blocks, 5);
    assert_eq!(stats.data_messages, 20);
    assert_eq!(stats.event_messages, 3);
    assert!(stats.hwm_dropped_unknown);
    assert_eq!(msgs.len(), 23);
    assert_eq!(sig, Signal::Pattern { wrap });

    let mut idx = 0;
    let mut expect_msg = 1i64;
    let mut ttl_state = 0u8;
    for block in 0..5i64 {
        let sample_num = block * 16;
        if block % 2 == 0 {
            let m = &msgs[idx];
            idx += 1;
            assert_eq!(m.len(), 3);
            assert_eq!(m[0], b"EVENT\0");
            let h = header(m);
            assert_eq!(h["message_num"], expect_msg);
            expect_msg += 1;
            assert_eq!(h["type"], "event");
            assert_eq!(h["content"]["stream"], "example_data");
            assert_eq!(h["content"]["source_node"], 100);
            assert_eq!(h["content"]["type"], 3);
            assert_eq!(h["content"]["sample_num"], sample_num);
            assert_eq!(h["data_size"], 10);
            assert!(h["timestamp"].as_i64().is_some());
            ttl_state ^= 1;
            let mut p = vec![0u8, ttl_state];
            p.extend_from_slice(&u64::from(ttl_state).to_le_bytes());
            assert_eq!(m[2], p);
        }
        for &ch in &[0u32, 2, 5, 7] {
            let m = &msgs[idx];
            idx += 1;
            assert_eq!(m.len(), 3);
            assert_eq!(m[0], b"DATA\0");
            let text = std::str::from_utf8(&m[1]).expect("utf8");
            assert!(text.contains("\r\n  \"content\": {\r\n"));
            assert!(!text.ends_with('\n'));
            let h = header(m);
            let keys: Vec<&str> = h
                .as_object()
                .expect("obj")
                .keys()
                .map(|s| s.as_str())
                .collect();
            assert_eq!(keys.len(), 5);
            assert_eq!(h["message_num"], expect_msg);
            expect_msg += 1;
            assert_eq!(h["type"], "data");
            let c = &h["content"];
            assert_eq!(c["stream"], "example_data");
            assert_eq!(c["channel_num"], ch);
            assert_eq!(c["channel_name"], format!("CH{}", ch + 1));
            assert_eq!(c["num_samples"], 16);
            assert_eq!(c["sample_num"], sample_num);
            assert_eq!(c["sample_rate"].as_f64(), Some(30000.0));
            assert_eq!(h["data_size"], 64);
            let ts = h["timestamp"].as_i64().expect("timestamp");
            assert!((now_ms() - ts).abs() < 60_000);
            assert_eq!(m[2].len(), 64);
            let v = floats(&m[2]);
            for (i, x) in v.iter().enumerate() {
                assert_eq!(*x, signal_value(&sig, ch, sample_num + i as i64));
            }
        }
    }
    assert_eq!(idx, msgs.len());
}

#[test]
fn heartbeat_and_stop_while_waiting() {
    let ctx = zmq::Context::new();
    let cfg = SimConfig {
        data_port: 0,
        ..SimConfig::default()
    };
    let sim = Simulator::start(cfg, &ctx, None).expect("start");
    let req = ctx.socket(zmq::REQ).expect("req");
    req.set_linger(0).expect("linger");
    req.set_rcvtimeo(RECV_TIMEOUT_MS).expect("rcvtimeo");
    req.connect(&sim.heartbeat_endpoint().expect("hb"))
        .expect("connect");
    let cases: [(&[u8], &[u8]); 3] = [
        (
            br#"{"application": "test", "uuid": "abc", "type": "heartbeat"}"#,
            b"heartbeat received",
        ),
        (b"{not json", b"JSON message could not be read"),
        (br#"{"type": "event"}"#, b"message correctly parsed"),
    ];
    for (request, reply) in cases {
        req.send(request, 0).expect("send");
        let r = req.recv_bytes(0).expect("reply");
        assert_eq!(r, reply);
    }
    assert_eq!(sim.stats().heartbeats_answered, 3);
    assert!(!sim.is_finished());
    let t = Instant::now();
    let stats = sim.stop();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(stats.blocks, 0);
    assert_eq!(stats.heartbeats_answered, 3);
}

#[test]
fn stop_while_streaming_realtime() {
    let ctx = zmq::Context::new();
    let cfg = SimConfig {
        data_port: 0,
        wait_for_subscriber: false,
        heartbeat: false,
        ..SimConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let obs: BlockObserver = Box::new(move |sn, n, chans, _t| {
        let _ = tx.send((sn, n, chans));
    });
    let sim = Simulator::start(cfg, &ctx, Some(obs)).expect("start");
    assert_eq!(sim.heartbeat_port(), None);
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(rx.recv_timeout(Duration::from_secs(5)).expect("block"));
    }
    assert_eq!(got, vec![(0, 696, 8), (696, 696, 8), (1392, 696, 8)]);
    let t = Instant::now();
    let stats = sim.stop();
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(stats.blocks >= 3);
    assert_eq!(stats.data_messages, stats.blocks * 8);
}

#[test]
fn duration_realtime_pacing() {
    let ctx = zmq::Context::new();
    let cfg = SimConfig {
        data_port: 0,
        wait_for_subscriber: false,
        heartbeat: false,
        channels: vec![0],
        block: BlockSize::Fixed(300), // 10 ms at 30 kHz
        duration: Some(Duration::from_millis(200)),
        ..SimConfig::default()
    };
    let t = Instant::now();
    let sim = Simulator::start(cfg, &ctx, None).expect("start");
    let stats = sim.wait();
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(180) && el < Duration::from_secs(3),
        "{el:?}"
    );
    // Blocks 0..20 are due before 200 ms (block 0 at t0); allow scheduling slack.
    assert!((15..=20).contains(&stats.blocks), "{}", stats.blocks);
}

fn message_nums(msgs: &[Vec<Vec<u8>>]) -> Vec<i64> {
    msgs.iter()
        .map(|m| header(m)["message_num"].as_i64().expect("num"))
        .collect()
}

fn sample_nums(msgs: &[Vec<Vec<u8>>]) -> Vec<i64> {
    msgs.iter()
        .map(|m| header(m)["content"]["sample_num"].as_i64().expect("sn"))
        .collect()
}

#[test]
fn fault_restart() {
    let cfg = SimConfig {
        channels: vec![3],
        max_blocks: Some(6),
        start_sample: 1000,
        faults: Faults {
            restart_every_blocks: Some(2),
            ..Faults::default()
        },
        ..base_cfg()
    };
    let (stats, msgs) = run_all(cfg);
    assert_eq!(stats.restarts, 2);
    assert_eq!(message_nums(&msgs), vec![1, 2, 1, 2, 1, 2]);
    assert_eq!(sample_nums(&msgs), vec![1000, 1016, 1032, 1048, 1064, 1080]);
}

#[test]
fn fault_loop() {
    let cfg = SimConfig {
        channels: vec![1],
        max_blocks: Some(5),
        start_sample: 100,
        faults: Faults {
            loop_every_blocks: Some(2),
            ..Faults::default()
        },
        ..base_cfg()
    };
    let (stats, msgs) = run_all(cfg);
    assert_eq!(stats.loops, 2);
    assert_eq!(message_nums(&msgs), vec![1, 2, 3, 4, 5]);
    assert_eq!(sample_nums(&msgs), vec![100, 116, 100, 116, 100]);
}

#[test]
fn fault_channel_change() {
    let cfg = SimConfig {
        channels: vec![0, 1],
        max_blocks: Some(4),
        faults: Faults {
            channel_change: Some((2, vec![9, 4])),
            ..Faults::default()
        },
        ..base_cfg()
    };
    let (_, msgs) = run_all(cfg);
    let chans: Vec<i64> = msgs
        .iter()
        .map(|m| header(m)["content"]["channel_num"].as_i64().expect("ch"))
        .collect();
    assert_eq!(chans, vec![0, 1, 0, 1, 4, 9, 4, 9]);
    assert_eq!(sample_nums(&msgs), vec![0, 0, 16, 16, 32, 32, 48, 48]);
}

#[test]
fn fault_drops() {
    let cfg = SimConfig {
        channels: (0..8).collect(),
        max_blocks: Some(20),
        faults: Faults {
            drop_probability: 0.5,
            seed: 42,
            ..Faults::default()
        },
        ..base_cfg()
    };
    let (stats, msgs) = run_all(cfg);
    assert!(stats.dropped_by_fault > 20 && stats.dropped_by_fault < 140);
    assert_eq!(stats.data_messages + stats.dropped_by_fault, 160);
    assert_eq!(msgs.len() as u64, stats.data_messages);
    let nums = message_nums(&msgs);
    assert!(nums.windows(2).all(|w| w[1] > w[0]));
    let last = *nums.last().expect("some");
    let gaps = last - nums.len() as i64; // numbers consumed but never seen
    let tail = 160 - last; // drops after the last received message
    assert_eq!((gaps + tail) as u64, stats.dropped_by_fault);
}

#[test]
fn publisher_low_level() {
    let ctx = zmq::Context::new();
    let mut p = Publisher::bind_with_heartbeat(&ctx, "127.0.0.1", 0).expect("bind");
    let s = sub(&ctx, &p.connect_endpoint());
    p.wait_for_subscriber(Duration::from_secs(5)).expect("sub");
    p.set_message_num(i64::from(i32::MAX));
    p.send_data("st", 5, None, 42, 29999.9, &[0.0, -12.5], None)
        .expect("data");
    p.send_event_bytes("st", 100, 43, &[], Some(1)).expect("ev");
    assert_eq!(p.next_message_num(), i64::from(i32::MIN) + 1);
    p.set_message_num(1);
    p.send_spike("st", "Tetrode 1", 44, 2, 2, 0, &[1.0, 2.0, 3.0, 4.0], None)
        .expect("spike");
    assert!(p.send_spike("st", "x", 0, 2, 2, 0, &[1.0], None).is_err());
    p.send_data("CH\u{e4}3", 0, Some("CH\u{e4}3"), 0, 30000.0, &[1.0], None)
        .expect("utf8");
    p.send_raw(&[b"garbage"]).expect("raw");
    let m = recv_n(&s, 5);
    let h0 = header(&m[0]);
    assert_eq!(h0["message_num"], i64::from(i32::MAX));
    assert_eq!(h0["content"]["sample_rate"].as_f64(), Some(29999.900390625));
    assert!(std::str::from_utf8(&m[0][1])
        .expect("utf8")
        .contains("\"sample_rate\": 29999.900390625\r\n"));
    assert_eq!(floats(&m[0][2]), vec![0.0, -12.5]);
    assert_eq!(m[1].len(), 2);
    assert_eq!(m[1][0], b"EVENT\0");
    assert_eq!(header(&m[1])["message_num"], i64::from(i32::MIN));
    assert_eq!(header(&m[1])["data_size"], 0);
    let h2 = header(&m[2]);
    assert_eq!(m[2][0], b"EVENT\0");
    assert_eq!(h2["message_num"], 1);
    assert_eq!(h2["type"], "spike");
    assert!(h2.get("data_size").is_none());
    assert_eq!(floats(&m[2][2]), vec![1.0, 2.0, 3.0, 4.0]);
    // JUCE header-length bug: two non-ASCII chars → 2 bytes missing → invalid JSON.
    assert!(serde_json::from_slice::<Value>(&m[3][1]).is_err());
    let full = juce_data_header(2, "CH\u{e4}3", 0, Some("CH\u{e4}3"), 1, 0, 30000.0, None);
    assert_eq!(m[3][1], &full.as_bytes()[..full.len() - 2]);
    assert_eq!(m[4], vec![b"garbage".to_vec()]);

    let req = ctx.socket(zmq::REQ).expect("req");
    req.set_linger(0).expect("linger");
    req.set_rcvtimeo(RECV_TIMEOUT_MS).expect("rcvtimeo");
    let hp = p.heartbeat_port().expect("hb port");
    assert_eq!(hp, p.port() + 1);
    req.connect(&format!("tcp://127.0.0.1:{hp}"))
        .expect("connect");
    req.send("{}", 0).expect("send");
    assert_eq!(req.recv_bytes(0).expect("reply"), b"heartbeat received");
    assert_eq!(p.heartbeats_answered(), 1);
}

#[test]
fn invalid_configs_rejected() {
    let ctx = zmq::Context::new();
    for cfg in [
        SimConfig {
            block: BlockSize::Fixed(0),
            ..base_cfg()
        },
        SimConfig {
            sample_rate: f64::NAN,
            ..base_cfg()
        },
        SimConfig {
            block: BlockSize::Jitter { min: 5, max: 4 },
            ..base_cfg()
        },
    ] {
        assert!(Simulator::start(cfg, &ctx, None).is_err());
    }
}

#[test]
fn jitter_and_alternating_sizes() {
    for (block, check) in [
        (
            BlockSize::Alternating(696, 697),
            Box::new(|v: &[i64]| {
                v.iter()
                    .enumerate()
                    .all(|(i, &n)| n == 696 + (i as i64 % 2))
            }) as Box<dyn Fn(&[i64]) -> bool>,
        ),
        (
            BlockSize::Jitter { min: 10, max: 20 },
            Box::new(|v: &[i64]| v.iter().all(|&n| (10..=20).contains(&n))),
        ),
    ] {
        let cfg = SimConfig {
            channels: vec![0],
            max_blocks: Some(8),
            block,
            ..base_cfg()
        };
        let (_, msgs) = run_all(cfg);
        let ns: Vec<i64> = msgs
            .iter()
            .map(|m| header(m)["content"]["num_samples"].as_i64().expect("n"))
            .collect();
        assert!(check(&ns), "{ns:?}");
        let sn = sample_nums(&msgs);
        for i in 1..sn.len() {
            assert_eq!(sn[i], sn[i - 1] + ns[i - 1]);
        }
    }
}
