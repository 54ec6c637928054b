//! The binary as a user runs it: generated config files, flags, exit codes, the demo with the
//! built-in simulator, and a graceful SIGTERM.

mod common;

use common::{bridge_bin as bin, free_ports as ports, tempdir};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The exact files of spec §3.9, typed in (no trailing newline).
const MINIMAL: &str = "{\n  \"zmq\": {\n    \"host\": \"localhost\",\n    \"data_port\": 5556,\n    \"app_uuid\": \"1618\"\n  },\n  \"osc\": {\n    \"host\": \"127.0.0.1\",\n    \"port\": 10000,\n    \"base_address\": \"/data\",\n    \"processing\": {\n      \"downsampling_factor\": 30,\n      \"downsampling_method\": \"average\",\n      \"enable_batching\": false,\n      \"batch_size\": 1\n    }\n  },\n  \"performance\": {\n    \"zmq_not_responding_timeout\": 10.0,\n    \"zmq_data_timeout_seconds\": 2.0,\n    \"zmq_auto_reinit_on_timeout\": true,\n    \"osc_queue_max_size\": 100,\n    \"osc_queue_overflow_strategy\": \"drop_oldest\"\n  }\n}";

#[test]
fn create_config_writes_the_original_files() {
    let d = tempdir("create");
    let out = bin()
        .arg("--create-config")
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(d.join("config.json")).unwrap(),
        MINIMAL
    );
    let out = bin()
        .arg("--create-config-dev")
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(out.status.success());
    let full = std::fs::read_to_string(d.join("config-dev.json")).unwrap();
    assert!(full.starts_with("{\n  \"zmq\": {\n    \"host\": \"localhost\",\n    \"data_port\": 5556,\n    \"heartbeat_timeout\": 2.0,"));
    assert!(full.ends_with("    \"adaptive_batching\": false\n  }\n}"));
    let out = bin()
        .args(["--create-config", "-c", "x.json"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(d.join("x.json")).unwrap(), MINIMAL);
}

#[test]
fn version_and_help() {
    let out = bin().arg("-v").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "openephys-zmq2osc 0.1.0"
    );
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--create-config-dev",
        "--zmq-host",
        "--zmq-port",
        "--osc-host",
        "--osc-port",
        "--simulate",
        "--histogram-csv",
        "--pin",
        "--no-pin",
        "Exit codes",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    // --pin and --no-pin contradict each other: a flag error (exit 2), nothing started.
    let out = bin().args(["--pin", "--no-pin"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-pin"));
}

#[test]
fn config_errors_name_the_key_and_exit_2() {
    let d = tempdir("bad");
    std::fs::write(
        d.join("bad.json"),
        r#"{"osc": {"processing": {"downsampling_factor": 30.5}}}"#,
    )
    .unwrap();
    let out = bin()
        .args(["-c", "bad.json"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("osc.processing.downsampling_factor"), "{err}");
    let out = bin()
        .args(["-c", "missing.json"])
        .current_dir(&d)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[test]
fn unknown_key_warns_and_overrides_apply() {
    let d = tempdir("warn");
    let (zp, op) = ports();
    std::fs::write(
        d.join("config.json"),
        r#"{"osc": {"prot": 1, "port": 9}, "zmq": {"data_port": 7}}"#,
    )
    .unwrap();
    let out = bin()
        .args([
            "--zmq-host",
            "127.0.0.1",
            "--zmq-port",
            &zp.to_string(),
            "--osc-port",
            &op.to_string(),
            "--seconds",
            "0.3",
        ])
        .current_dir(&d)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown config key 'osc.prot'"), "{err}");
    assert!(
        err.contains(&format!("tcp://127.0.0.1:{zp} (SUB)")),
        "{err}"
    );
    assert!(err.contains(&format!("udp://127.0.0.1:{op}")), "{err}");
}

#[test]
fn demo_with_simulator_delivers_everything_and_writes_histograms() {
    let d = tempdir("demo");
    let (zp, op) = ports();
    std::fs::write(
        d.join("config.json"),
        r#"{"osc": {"processing": {"downsampling_factor": 1}}}"#,
    )
    .unwrap();
    let out = bin()
        .args([
            "--simulate",
            "16",
            "--verify",
            "--seconds",
            "1.5",
            "--histogram-csv",
            "h.csv",
        ])
        .args(["--zmq-port", &zp.to_string(), "--osc-port", &op.to_string()])
        .current_dir(&d)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("verifier"))
        .expect("verifier line");
    assert!(
        line.contains("lost 0 ") && line.contains("torn 0 ") && line.contains("bad values 0 "),
        "{line}"
    );
    let rows: u64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(rows > 10_000, "{line}");
    let csv = std::fs::read_to_string(d.join("h.csv")).unwrap();
    assert!(csv.starts_with("metric,percentile,value_us,count_at_or_below,total_count\n"));
    assert!(csv.lines().any(|l| l.starts_with("bridge_added,")));
}

#[cfg(unix)]
#[test]
fn sigterm_flushes_and_exits_zero() {
    let d = tempdir("term");
    let (zp, op) = ports();
    let mut child = bin()
        .args([
            "--simulate",
            "8",
            "--zmq-port",
            &zp.to_string(),
            "--osc-port",
            &op.to_string(),
        ])
        .current_dir(&d)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is running (its start-up report is complete), then SIGTERM.
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let t = Instant::now();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("no start-up output");
        if line.contains("pinning") {
            break;
        }
    }
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    use std::io::Read;
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let err = reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(out.contains("== openephys-zmq2osc report"), "{out}");
    assert!(out.contains("bridge_added"));
}
