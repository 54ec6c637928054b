//! `--pin` pins for real, and the report says where: the bridge runs as a child process with
//! `--pin`; its JSON stats name each hot thread's core; `/proc/<pid>/task/*/comm` and
//! `Cpus_allowed_list` must agree; so must the start-up line. The only test with pinning on.
#![cfg(target_os = "linux")]

mod common;

use common::{bridge_bin, free_ports, tempdir, WAIT};
use std::collections::HashMap;
use std::process::Stdio;
use std::time::Instant;

/// Thread name -> `Cpus_allowed_list` of every thread of `pid`.
fn thread_cpus(pid: u32) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for t in dir.flatten() {
        let p = t.path();
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(p.join("comm")),
            std::fs::read_to_string(p.join("status")),
        ) else {
            continue;
        };
        if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
            let cpus = l["Cpus_allowed_list:".len()..].trim().to_string();
            out.insert(comm.trim().to_string(), cpus);
        }
    }
    out
}

#[test]
fn pinned_threads_sit_on_the_cores_the_report_names() {
    let d = tempdir("pin");
    let stats = d.join("stats.jsonl");
    let (zp, op) = free_ports();
    let _rx = std::net::UdpSocket::bind(("127.0.0.1", op)).ok();
    let child = bridge_bin()
        .args(["--pin", "--simulate", "4", "--seconds", "30"])
        .args(["--stats-interval", "0.1", "--no-tui"])
        .args(["--stats-json", stats.to_str().unwrap()])
        .args(["--zmq-port", &zp.to_string(), "--osc-port", &op.to_string()])
        .current_dir(&d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();

    // The first JSON object carries the pinning report.
    let deadline = Instant::now() + WAIT;
    let report = loop {
        let text = std::fs::read_to_string(&stats).unwrap_or_default();
        if let Some(l) = text.lines().next() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            break v["pinning"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "no JSON stats line from the bridge"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(report["requested"], "force", "{report}");
    assert!(report["skipped"].is_null(), "{report}");
    let threads = report["threads"].as_array().expect("threads").clone();
    let names: Vec<&str> = threads
        .iter()
        .map(|t| t["thread"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["zmq_rx", "osc_tx_0"], "{report}");

    // Every hot thread runs on exactly the core the report names.
    let on_proc = thread_cpus(pid);
    let mut lines = Vec::new();
    for t in &threads {
        let name = t["thread"].as_str().unwrap();
        let core = t["core"].as_u64().unwrap();
        assert_eq!(t["ok"], true, "{report}");
        assert_eq!(
            on_proc.get(name).map(String::as_str),
            Some(core.to_string().as_str()),
            "{name}: /proc says {:?}, the report says core {core}; all threads: {on_proc:?}",
            on_proc.get(name)
        );
        lines.push(format!("{name} on core {core} (ok)"));
    }

    // SIGTERM: a graceful stop, exit 0.
    let rc = unsafe_kill(pid);
    assert_eq!(rc, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let startup = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("pinning"))
        .unwrap_or_else(|| panic!("no pinning line in\n{stderr}"));
    assert!(
        startup.contains(&format!("force: {}", lines.join(", "))),
        "{startup}"
    );
    // The final JSON object says the same.
    let text = std::fs::read_to_string(&stats).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["final"], true);
    assert_eq!(last["pinning"], report);
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: u32) -> i32 {
    // SAFETY: kill(2) with a pid we own (our child, not yet reaped, so the pid cannot have
    // been reused) and a valid signal number; no memory is passed.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }
}
