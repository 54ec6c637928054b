//! Headless mode as a script would use it: `--stats-json PATH` gets one JSON object per
//! `--stats-interval`, every counter by name, growing; without it, the JSON lines go to stdout
//! (stdout is a pipe here, so the dashboard stays off) before the final report.

mod common;

use common::{bridge_bin as bin, free_ports as ports, tempdir};

fn run(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let (zp, op) = ports();
    // A receiver on the OSC port so sends are not refused (it is never read; the kernel
    // buffer absorbs 1.5 s at 1 000 datagrams/s).
    let _rx = std::net::UdpSocket::bind(("127.0.0.1", op)).ok();
    bin()
        .args([
            "--simulate",
            "8",
            "--seconds",
            "1.5",
            "--stats-interval",
            "0.2",
        ])
        .args(["--zmq-port", &zp.to_string(), "--osc-port", &op.to_string()])
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn check_lines(lines: &[serde_json::Value]) {
    // 1.5 s / 0.2 s = 7 periodic objects (timing on a busy machine may lose one or two),
    // then the final one.
    assert!(lines.len() >= 4, "only {} JSON lines", lines.len());
    let (last, periodic) = lines.split_last().unwrap();
    assert_eq!(last["final"], true);
    assert!(periodic.iter().all(|v| v["final"] == false));
    let mut prev_t = -1.0;
    let mut prev_msgs = 0;
    for v in lines {
        let t = v["t"].as_f64().expect("t");
        assert!(t > prev_t, "t not increasing: {t} after {prev_t}");
        prev_t = t;
        for block in ["rx", "tx", "hb"] {
            assert!(v[block].is_object(), "{block} missing in {v}");
        }
        for key in [
            "messages",
            "blocks_emitted",
            "malformed",
            "dropped_newest",
            "channels",
        ] {
            assert!(v["rx"][key].is_u64(), "rx.{key} missing in {v}");
        }
        for key in ["sent", "bytes", "dropped_oldest", "send_dropped", "queued"] {
            assert!(v["tx"][key].is_u64(), "tx.{key} missing in {v}");
        }
        for key in ["state", "sent", "data_connects"] {
            assert!(v["hb"][key].is_u64(), "hb.{key} missing in {v}");
        }
        for key in [
            "zmq_msgs_per_s",
            "blocks_per_s",
            "datagrams_per_s",
            "mb_per_s",
        ] {
            assert!(v["rates"][key].is_number(), "rates.{key} missing in {v}");
        }
        assert!(v["queue"]["capacity"].as_u64().unwrap() > 0);
        let msgs = v["rx"]["messages"].as_u64().unwrap();
        assert!(msgs >= prev_msgs, "messages went backwards");
        prev_msgs = msgs;
    }
    // Counters grow while the simulator runs: 8 ch at 30 kHz in 696-sample blocks is
    // ~43 blocks/s = ~345 messages/s; output at F = 30 is 1 000 datagrams/s.
    let first = &lines[0];
    assert!(
        last["rx"]["messages"].as_u64().unwrap() > first["rx"]["messages"].as_u64().unwrap(),
        "rx.messages did not grow"
    );
    assert!(last["rx"]["messages"].as_u64().unwrap() > 100, "{last}");
    assert!(last["tx"]["sent"].as_u64().unwrap() > 500, "{last}");
    assert_eq!(last["rx"]["channels"], 8);
    assert!(
        periodic
            .iter()
            .any(|v| v["rates"]["datagrams_per_s"].as_f64().unwrap() > 100.0),
        "no interval with datagrams flowing"
    );
}

#[test]
fn stats_json_file_gets_one_object_per_interval() {
    let d = tempdir("file");
    let path = d.join("stats.jsonl");
    // Appends: an existing line stays first.
    std::fs::write(&path, "{\"earlier\": true}\n").unwrap();
    let out = run(&d, &["--stats-json", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.remove(0)["earlier"], true);
    check_lines(&lines);
    // With --stats-json, stdout holds only the report; the status lines are on stderr.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("== openephys-zmq2osc report"),
        "{stdout}"
    );
    assert!(stderr.contains(" msg/s "), "{stderr}");
}

#[test]
fn headless_stdout_is_json_lines_then_the_report() {
    let d = tempdir("stdout");
    let out = run(&d, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No escape sequences: the dashboard is off when stdout is not a terminal.
    assert!(!stdout.contains('\x1b'));
    let report_at = stdout
        .find("== openephys-zmq2osc report")
        .expect("report on stdout");
    let lines: Vec<serde_json::Value> = stdout[..report_at]
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    check_lines(&lines);
    assert!(stdout[report_at..].lines().all(|l| !l.starts_with('{')));
}

#[test]
fn bad_stats_flags_exit_2() {
    let d = tempdir("bad");
    let out = bin()
        .args(["--stats-interval=-1", "--seconds", "0.1"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args([
            "--stats-json",
            "/nonexistent-dir/x.jsonl",
            "--seconds",
            "0.1",
        ])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/x.jsonl"));
}

/// `name value` pairs after `lost:` in a status line.
fn lost_fields(line: &str) -> Vec<(String, u64)> {
    let rest = &line[line.find("lost:").expect("lost:") + 5..];
    let rest = &rest[..rest.find('|').unwrap_or(rest.len())];
    let words: Vec<&str> = rest.split_whitespace().collect();
    words
        .chunks(2)
        .map(|c| (c[0].to_string(), c[1].parse().expect(c[1])))
        .collect()
}

#[test]
fn status_line_lost_fields_name_every_cause_and_match_the_json() {
    // Nobody listens on the OSC port: sends are refused, so `send` must grow; the first
    // block is dropped while the channel set is learned. --verify is off, so no `kernel`.
    let d = tempdir("lost");
    let path = d.join("stats.jsonl");
    let (zp, op) = ports();
    let out = bin()
        .args([
            "--simulate",
            "8",
            "--seconds",
            "1.2",
            "--stats-interval",
            "0.2",
        ])
        .args(["--zmq-port", &zp.to_string(), "--osc-port", &op.to_string()])
        .args(["--stats-json", path.to_str().unwrap()])
        .current_dir(&d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let status: Vec<&str> = stderr.lines().filter(|l| l.contains("lost:")).collect();
    let json: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["final"] == false)
        .collect();
    assert!(status.len() >= 2, "{stderr}");
    // One status line and one JSON object per interval, from the same reading.
    assert_eq!(status.len(), json.len(), "{stderr}");
    for (line, v) in status.iter().zip(&json) {
        let f = lost_fields(line);
        let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "incomplete",
                "upstream-msgs",
                "learning",
                "no-frame",
                "policy",
                "send",
                "oversize",
                "malformed",
                "late"
            ],
            "{line}"
        );
        let rx = |k: &str| v["rx"][k].as_u64().unwrap();
        let tx = |k: &str| v["tx"][k].as_u64().unwrap();
        let want = [
            rx("blocks_incomplete") + rx("blocks_incomplete_upstream"),
            rx("upstream_missing_msgs"),
            rx("blocks_learning"),
            rx("blocks_no_frame"),
            tx("dropped_oldest") + tx("dropped_newest"),
            tx("send_dropped"),
            tx("oversize"),
            rx("malformed"),
            rx("late_msgs"),
        ];
        let got: Vec<u64> = f.iter().map(|(_, n)| *n).collect();
        assert_eq!(got, want, "{line}\n{v}");
    }
    let last = lost_fields(status.last().unwrap());
    assert_eq!(last[2].0, "learning", "{stderr}");
    assert_eq!(
        last[2].1, 0,
        "a clean start loses nothing while learning: {stderr}"
    );
    assert!(last[5].1 > 0, "refused sends are not shown: {stderr}");
}

#[test]
fn status_line_shows_kernel_drops_with_verify() {
    let d = tempdir("kernel");
    let (zp, op) = ports();
    let out = bin()
        .args(["--simulate", "4", "--verify", "--seconds", "0.8"])
        .args(["--stats-interval", "0.2", "--stats-json"])
        .arg(d.join("s.jsonl"))
        .args(["--zmq-port", &zp.to_string(), "--osc-port", &op.to_string()])
        .current_dir(&d)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("lost:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let f = lost_fields(line);
    assert_eq!(f.last().unwrap().0, "kernel", "{line}");
    // The verifier listens: nothing is refused.
    assert_eq!(f[5], ("send".to_string(), 0), "{line}");
}
