//! `performance.realtime_priority`: the hot threads and libzmq's own threads run on
//! `SCHED_FIFO` when permitted, and the report (start-up line, JSON `pinning.realtime`) says
//! what each thread got; checked against `/proc/<pid>/task/*/stat` (field 41, the policy).
#![cfg(target_os = "linux")]

mod common;

use common::{bridge_bin, free_ports, tempdir, WAIT};
use std::process::Stdio;
use std::time::Instant;

/// Thread name -> scheduling policy (0 = SCHED_OTHER, 1 = SCHED_FIFO) of every thread of `pid`.
fn policies(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state …`: fields after the closing parenthesis start at field 3.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let name = stat[stat.find('(').unwrap() + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        if let Some(p) = fields.get(41 - 3).and_then(|p| p.parse().ok()) {
            out.push((name, p));
        }
    }
    out
}

/// The bridge runs as this test's child, with the same rights.
fn root() -> bool {
    zmq2osc::engine::sched::fifo_permitted(10)
}

#[test]
fn hot_threads_get_fifo_or_the_report_says_why_not() {
    let d = tempdir("realtime");
    let stats = d.join("stats.jsonl");
    let cfg = d.join("config.json");
    std::fs::write(&cfg, r#"{"performance": {"realtime_priority": 10}}"#).unwrap();
    let (zp, op) = free_ports();
    let _rx = std::net::UdpSocket::bind(("127.0.0.1", op)).ok();
    let mut child = bridge_bin()
        .args(["-c", cfg.to_str().unwrap(), "--no-pin"])
        .args(["--simulate", "4", "--seconds", "30"])
        .args(["--stats-interval", "0.1", "--no-tui"])
        .args(["--stats-json", stats.to_str().unwrap()])
        .args(["--zmq-port", &zp.to_string(), "--osc-port", &op.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + WAIT;
    let rt = loop {
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        if let Some(l) = text.lines().next() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            break v["pinning"]["realtime"].clone();
        }
        assert!(Instant::now() < deadline, "no JSON stats");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let seen = policies(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(rt["policy"], "SCHED_FIFO", "{rt}");
    assert_eq!(rt["priority"], 10);
    let threads = rt["threads"].as_array().unwrap();
    let named = |n: &str| {
        threads
            .iter()
            .find(|t| t["thread"] == n)
            .unwrap_or_else(|| panic!("{n} not in {rt}"))
    };
    for hot in ["zmq_rx", "osc_tx_0"] {
        let t = named(hot);
        let policy = seen
            .iter()
            .find(|(n, _)| n == hot)
            .unwrap_or_else(|| panic!("{hot} not running: {seen:?}"))
            .1;
        if root() {
            assert_eq!(t["ok"], true, "{t}");
            assert_eq!(policy, 1, "{hot} is not SCHED_FIFO: {seen:?}");
        } else {
            assert_eq!(t["ok"], false, "{t}");
            assert!(t["why"].as_str().unwrap().contains("not permitted"), "{t}");
            assert_eq!(policy, 0);
        }
    }
    // libzmq's own threads are reached too (as root); the report lists them.
    let lib: Vec<_> = threads
        .iter()
        .filter(|t| t["thread"].as_str().unwrap().starts_with("libzmq"))
        .collect();
    assert!(!lib.is_empty(), "libzmq's threads are not in {rt}");
    if root() {
        assert!(lib.iter().all(|t| t["ok"] == true), "{rt}");
        let fifo = seen.iter().filter(|(_, p)| *p == 1).count();
        assert!(fifo >= 2 + lib.len(), "{seen:?}");
    }
}
